"""The crash-safe run store: SQLite by default, PostgreSQL when configured (see sql.py)."""

from .codec import record_from_json, record_to_json
from .sql import SqlRunStore, StoredRun, database_url, open_store

__all__ = ["SqlRunStore", "StoredRun", "database_url", "open_store", "record_from_json", "record_to_json"]
