"""Schema migrations by Alembic, applied programmatically when a store opens (no alembic.ini).

`upgrade(engine)` brings a database to the newest revision shipped in `migrations/versions/`, in one
transaction, under a lock so that processes opening one database together migrate it once: on
PostgreSQL a transaction-scoped advisory lock, on SQLite the write lock (`BEGIN IMMEDIATE`). A database
already at head is left as it is; one at a revision this code does not know (a newer orchestrator
migrated it) is refused.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# pg_advisory_xact_lock key: "rlm-store" as a number; any constant shared by all our processes will do.
_PG_LOCK_KEY = 0x726C6D2D73746F


class UnknownRevisionError(Exception):
    """The database is at a revision this code does not ship."""


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """Alembic's configuration for our migrations, bound to `connection` (env.py requires one)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migration shipped"
    return head


def current_revision(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: sa.Engine) -> str | None:
    """Migrate the database to head; returns the revision it was at before (None: an empty database)."""
    script = ScriptDirectory.from_config(alembic_config())
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # the first statement: the write lock, held to commit
        elif conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        before = current_revision(conn)
        if before is not None and before not in {s.revision for s in script.walk_revisions()}:
            raise UnknownRevisionError(
                f"the database's schema is at revision {before!r}, which this version does not know "
                "(was it migrated by a newer orchestrator?)"
            )
        if before != script.get_current_head():
            command.upgrade(alembic_config(conn), "head")
        conn.commit()
    return before
