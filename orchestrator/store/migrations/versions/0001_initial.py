"""The run store's first schema: runs, run_records, token_usage.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("root_model", sa.String(256), nullable=False),
        sa.Column("max_depth", sa.Integer(), nullable=False),
        sa.Column("created_unix", sa.Double(), nullable=False),
        sa.Column("ended_unix", sa.Double(), nullable=True),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Double(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name="pk_runs"),
    )
    op.create_index("ix_runs_tenant_created_unix_run_id", "runs", ["tenant", "created_unix", "run_id"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_table(
        "run_records",
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name="fk_run_records_run_id_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "seq", name="pk_run_records"),
    )
    op.create_table(
        "token_usage",
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "day", name="pk_token_usage"),
    )


def downgrade() -> None:
    op.drop_table("token_usage")
    op.drop_table("run_records")
    op.drop_index("ix_runs_status", table_name="runs")
    op.drop_index("ix_runs_tenant_created_unix_run_id", table_name="runs")
    op.drop_table("runs")
