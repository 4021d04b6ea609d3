"""Alembic's environment for the run store, run by `orchestrator.store.migrate.upgrade` only.

The caller passes an open connection, already in a transaction (and holding the migration lock), in
`config.attributes["connection"]`; nothing here reads a file, the environment or a URL. To write a
new migration, change `orchestrator/store/schema.py`, then let Alembic compare it with a scratch
database at head and review what it wrote in versions/:

    from alembic import command
    from orchestrator.store.migrate import alembic_config, upgrade
    engine = sqlalchemy.create_engine("sqlite:////tmp/scratch.db")
    with engine.begin() as conn:
        upgrade(conn)
        command.revision(alembic_config(conn), message="what changed", autogenerate=True)
"""

from __future__ import annotations

from alembic import context

from orchestrator.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run store migrations run through orchestrator.store.sql.migrate, with a connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
