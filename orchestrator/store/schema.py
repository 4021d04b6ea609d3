"""The run store's schema, one for SQLite and PostgreSQL (SQLAlchemy Core). Alembic's migrations in
`migrations/versions/` build exactly this (tests/test_store.py compares the two on both databases): a
change here needs a new migration.

    runs          one row per run: who, what, how it ended, its totals; (tenant, created_unix, run_id)
                  indexed for listing a tenant's runs newest first
    run_records   every record of a run (orchestrator/rlm/records.py), in order (seq from 1), as JSON
    token_usage   tokens used per tenant per UTC day, for the tokens-per-day quota

JSON columns are PostgreSQL's `json`, not `jsonb`: jsonb refuses the escape \\u0000, and a cell's
output may hold a NUL. PostgreSQL's text cannot hold one either, so the store writes U+FFFD for a NUL
in the text columns of `runs` (query, answer, error); the records keep the text exactly.
"""

from __future__ import annotations

import sqlalchemy as sa

# Longest ids the store accepts (checked before a write: PostgreSQL would refuse, SQLite would not).
MAX_ID_CHARS = 128
MAX_MODEL_CHARS = 256

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(MAX_ID_CHARS), primary_key=True),
    sa.Column("tenant", sa.String(MAX_ID_CHARS), nullable=False),
    sa.Column("query", sa.Text(), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("answer", sa.Text(), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("root_model", sa.String(MAX_MODEL_CHARS), nullable=False),
    sa.Column("max_depth", sa.Integer(), nullable=False),
    sa.Column("created_unix", sa.Double(), nullable=False),
    sa.Column("ended_unix", sa.Double(), nullable=True),
    sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
    sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
    sa.Column("cost_usd", sa.Double(), nullable=True),
    sa.Column("metadata", sa.JSON(), nullable=True),  # RunMetadata's JSON once the run ended
    sa.Index(None, "tenant", "created_unix", "run_id"),
    sa.Index(None, "status"),
)

run_records = sa.Table(
    "run_records",
    metadata,
    sa.Column(
        "run_id", sa.String(MAX_ID_CHARS), sa.ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("body", sa.JSON(), nullable=False),  # codec.record_to_json
)

token_usage = sa.Table(
    "token_usage",
    metadata,
    sa.Column("tenant", sa.String(MAX_ID_CHARS), primary_key=True),
    sa.Column("day", sa.Date(), primary_key=True),  # the UTC date
    sa.Column("tokens", sa.BigInteger(), nullable=False),
)
