"""The run store: every record of every run, kept so that a crash loses at most the step in progress.

    store = open_store(settings.storage)           # no I/O yet
    await store.open()                             # the database made or migrated to head
    orch = Orchestrator(settings, recorder=store)  # each record committed before the engine goes on
    ...
    await store.recover("the orchestrator stopped (crash or kill -9) while this run was in flight")
    await store.aclose()

One schema (schema.py) on two databases: SQLite by default, the file `<data_dir>/runs.db` (the directory
made 0700, the file 0600) in WAL mode with `synchronous=FULL` and foreign keys on; PostgreSQL when
`storage.database_url` is a `postgresql://` URL (driver psycopg 3). Alembic's migrations (migrate.py)
run at `open()`.

Every blocking call runs off the event loop: writes (records, recovery, tokens) on one thread of the
store's own, in the order they were made, each its own transaction; reads on a small pool of its own
(SQLite's WAL lets them read while a write commits). `write` returns once its transaction committed;
a write whose caller is cancelled still completes, so a run's records have no holes. `aclose()` waits
for the writes already made, then stops both pools and the engine's connections: a closed store leaves
no thread or connection behind.

Errors of SQLAlchemy and the drivers leave this module as StoreError, naming what failed and the
database (a file path, or the URL with its password hidden); the password never appears in a message.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import enum
import functools
import hashlib
import json
import logging
import math
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import alembic.util
import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from ..errors import InvalidInputError, StoreError
from ..rlm.records import (
    ROOT,
    LevelEnded,
    LevelStarted,
    Record,
    RunEnded,
    RunStarted,
    build_trajectory,
)
from ..rlm.trajectory import RunMetadata, Trajectory
from ..settings import StorageSettings
from ..status import RunStatus
from . import migrate
from .codec import metadata_from_json, metadata_to_json, record_from_json, record_to_json
from .schema import MAX_ID_CHARS, MAX_MODEL_CHARS, run_records, runs, token_usage

log = logging.getLogger(__name__)

T = TypeVar("T")

SQLITE_FILE = "runs.db"
MAX_PAGE_SIZE = 1000
_READERS = 4
_SQLITE_BUSY_TIMEOUT_S = 15.0  # a write waits this long for another process's write lock
_PG_CONNECT_TIMEOUT_S = 10
_TOKEN_VERSION = 1


@dataclass(frozen=True, slots=True)
class StoredRun:
    """One run as the store knows it: running (status `running`, no ending yet) or ended."""

    run_id: str
    tenant: str
    query: str
    status: RunStatus
    answer: str | None
    error: str | None
    root_model: str
    max_depth: int
    created_unix: float
    ended_unix: float | None
    prompt_tokens: int  # 0 until the run ends (the totals come with its ending)
    completion_tokens: int
    cost_usd: float | None
    metadata: RunMetadata | None  # None until the run ends

    @property
    def ended(self) -> bool:
        return self.status is not RunStatus.RUNNING

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "tenant": self.tenant,
            "query": self.query,
            "status": self.status.value,
            "answer": self.answer,
            "error": self.error,
            "root_model": self.root_model,
            "max_depth": self.max_depth,
            "created_unix": self.created_unix,
            "ended_unix": self.ended_unix,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": self.cost_usd,
            "metadata": metadata_to_json(self.metadata) if self.metadata is not None else None,
        }


class _State(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


def open_store(settings: StorageSettings) -> SqlRunStore:
    """The store `settings` name (no I/O: `await store.open()` makes or migrates the database)."""
    return SqlRunStore(settings)


def database_url(settings: StorageSettings) -> sa.URL:
    """The SQLAlchemy URL of the store's database. Raises StoreError for a URL it cannot use (the
    message never repeats the URL: it may hold a password)."""
    if not settings.database_url:
        return sa.URL.create("sqlite", database=str(_data_dir(settings) / SQLITE_FILE))
    try:
        url = sa.make_url(settings.database_url)
    except sa.exc.ArgumentError:
        raise StoreError("storage.database_url is not a URL SQLAlchemy can read") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = os.path.expanduser(url.database or "")
        if not os.path.isabs(path):
            raise StoreError(
                "storage.database_url: a SQLite store needs an absolute file path (sqlite:////abs/path.db)"
            )
        return url.set(drivername="sqlite", database=path)
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    raise StoreError(f"storage.database_url: unsupported database {backend!r} (sqlite or postgresql)")


class SqlRunStore:
    """The run store on SQLite or PostgreSQL; a RunRecorder (`write`) with reads, recovery and quotas."""

    def __init__(self, settings: StorageSettings) -> None:
        self._url = database_url(settings)
        self._password = self._url.password if isinstance(self._url.password, str) else None
        self.dialect = self._url.get_backend_name()  # "sqlite" or "postgresql"
        if self.dialect == "sqlite":
            assert self._url.database is not None
            self.path: Path | None = Path(self._url.database)
            self.where = f"SQLite {self.path}"
        else:
            self.path = None
            self.where = f"PostgreSQL {self._url.render_as_string(hide_password=True)}"
        self._engine = self._make_engine()
        self._state = _State.NEW
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="rlm-store-write")
        self._readers = ThreadPoolExecutor(_READERS, thread_name_prefix="rlm-store-read")
        self._opening: asyncio.Future[None] | None = None
        self._closing: asyncio.Future[None] | None = None

    # --- life cycle -------------------------------------------------------------------------------

    async def open(self) -> None:
        """Make the database (SQLite: its directory and file) and migrate it to head. Idempotent;
        concurrent callers share one opening; after a failure the next call tries again."""
        if self._state is _State.OPEN:
            return
        self._check_not_closed()
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._submit_write("open the database", self._open_sync))
        opening = self._opening
        try:
            await asyncio.shield(opening)
        except BaseException:
            if self._opening is opening and opening.done():
                self._opening = None  # failed: the next open() starts over
            raise
        if self._state is _State.NEW:
            self._state = _State.OPEN

    async def aclose(self) -> None:
        """Wait for the writes already made, then stop the threads and close every connection.
        Idempotent; the store cannot be opened again."""
        if self._closing is None:
            self._state = _State.CLOSED
            self._closing = asyncio.ensure_future(asyncio.to_thread(self._close_sync))
        await asyncio.shield(self._closing)

    async def __aenter__(self) -> SqlRunStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- the recorder port ------------------------------------------------------------------------

    async def write(self, record: Record) -> None:
        """Append one record to its run (RunStarted makes the run, RunEnded ends it); returns once
        committed."""
        _check_id("run_id", record.run_id)
        if isinstance(record, RunStarted):
            _check_id("tenant", record.tenant)
            _check_text("root_model", record.root_model, MAX_MODEL_CHARS)
        await self._write_call(f"store a record of run {record.run_id}", self._write_sync, record)

    # --- reads ------------------------------------------------------------------------------------

    async def get_run(self, tenant: str, run_id: str) -> StoredRun | None:
        """The run, or None when there is none with that id for this tenant (another tenant's run
        included: the same answer as a missing one)."""
        if not (_is_id(tenant) and _is_id(run_id)):
            return None
        return await self._read_call(f"read run {run_id}", self._get_run_sync, tenant, run_id)

    async def records(self, tenant: str, run_id: str) -> list[Record] | None:
        """The run's records in the order they were written, or None as for get_run."""
        if not (_is_id(tenant) and _is_id(run_id)):
            return None
        return await self._read_call(f"read the records of run {run_id}", self._records_sync, tenant, run_id)

    async def trajectory(self, tenant: str, run_id: str) -> Trajectory | None:
        """The run's trajectory rebuilt from its records (a run still in flight shows as running,
        with what it did so far), or None as for get_run."""
        records = await self.records(tenant, run_id)
        return build_trajectory(records) if records is not None else None

    async def list_runs(
        self,
        tenant: str,
        *,
        statuses: Iterable[RunStatus | str] = (),
        since_unix: float | None = None,
        until_unix: float | None = None,
        page_size: int = 50,
        page_token: str = "",
    ) -> tuple[list[StoredRun], str]:
        """One page of the tenant's runs, newest first, and the token of the next page ("" after the
        last). Filters: status among `statuses` (none: any), created at or after `since_unix` and
        before `until_unix`. A token works only with the tenant and filters it came with; a token
        this store did not make is InvalidInputError."""
        wanted = sorted({_status(s) for s in statuses})
        for name, bound in (("since_unix", since_unix), ("until_unix", until_unix)):
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int | float)):
                raise InvalidInputError(f"{name} must be a number of seconds, got {bound!r}")
            if bound is not None and not math.isfinite(bound):
                raise InvalidInputError(f"{name} must be finite, got {bound!r}")
        if type(page_size) is not int or not 0 < page_size <= MAX_PAGE_SIZE:
            raise InvalidInputError(f"page_size must be an int in [1, {MAX_PAGE_SIZE}], got {page_size!r}")
        if not isinstance(page_token, str):
            raise InvalidInputError("page_token must be a str")
        listing = _fingerprint(tenant, wanted, since_unix, until_unix)
        after = _read_token(page_token, listing) if page_token else None
        if not _is_id(tenant):
            return [], ""
        rows = await self._read_call(
            f"list the runs of tenant {tenant!r}",
            self._list_sync,
            tenant,
            wanted,
            since_unix,
            until_unix,
            page_size + 1,
            after,
        )
        page, more = rows[:page_size], len(rows) > page_size
        token = _make_token(page[-1].created_unix, page[-1].run_id, listing) if more else ""
        return page, token

    # --- recovery and quotas ----------------------------------------------------------------------

    async def recover(self, reason: str) -> list[str]:
        """End every run still `running` as `error` with `reason`, and return their ids (oldest first).

        For each, the store writes the endings its engine never wrote (LevelEnded for each level
        left open, deepest first, then RunEnded), so its trajectory shows the error and keeps what
        the run did. Called by the server when it starts. Which runs belong to this orchestrator: for
        now, every run in the database (one orchestrator per database); orchestrators sharing a
        PostgreSQL database must not call it while another one runs."""
        _check_text("reason", reason, 10_000)
        if not reason.strip():
            raise InvalidInputError("recover needs a reason")
        return await self._write_call("recover the runs left running", self._recover_sync, reason)

    async def add_tokens(self, tenant: str, n: int, day: datetime.date | None = None) -> int:
        """Add `n` tokens to the tenant's count for `day` (default: today, UTC) and return the new
        count. Atomic (one UPSERT), also across processes sharing the database."""
        _check_id("tenant", tenant)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidInputError(f"tokens must be an int >= 0, got {n!r}")
        return await self._write_call(
            f"count tokens of tenant {tenant!r}", self._add_tokens_sync, tenant, n, _day(day)
        )

    async def tokens_today(self, tenant: str, day: datetime.date | None = None) -> int:
        """The tenant's tokens counted for `day` (default: today, UTC)."""
        if not _is_id(tenant):
            return 0
        return await self._read_call(
            f"read the tokens of tenant {tenant!r}", self._tokens_sync, tenant, _day(day)
        )

    # --- running calls off the loop, errors translated --------------------------------------------

    def _check_not_closed(self) -> None:
        if self._state is _State.CLOSED:
            raise StoreError(f"the run store ({self.where}) is closed")

    def _check_open(self) -> None:
        self._check_not_closed()
        if self._state is not _State.OPEN:
            raise StoreError(f"the run store ({self.where}) is not open: await store.open() first")

    async def _write_call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        self._check_open()
        return await self._submit_write(what, fn, *args)

    async def _submit_write(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        future = self._writer.submit(self._translated, what, fn, *args)
        # Shielded: once submitted, a write completes even if its caller is cancelled.
        return await asyncio.shield(asyncio.wrap_future(future))

    async def _read_call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        self._check_open()
        return await asyncio.wrap_future(self._readers.submit(self._translated, what, fn, *args))

    def _translated(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except (StoreError, InvalidInputError):
            raise
        except (
            sa.exc.SQLAlchemyError,
            sqlite3.Error,
            psycopg.Error,
            OSError,
            ValueError,
            migrate.UnknownRevisionError,
            alembic.util.CommandError,
        ) as exc:
            message = self._scrub(f"run store ({self.where}): cannot {what}: {_reason(exc)}")
            leaks = self._password is not None and self._password in str(exc)
            raise StoreError(message) from (None if leaks else exc)

    def _scrub(self, text: str) -> str:
        if self._password and len(self._password) >= 4:  # a shorter one would garble the message
            text = text.replace(self._password, "***")
        return text

    # --- the blocking side, on the store's threads ------------------------------------------------

    def _make_engine(self) -> sa.Engine:
        dumps = functools.partial(json.dumps, allow_nan=False, separators=(",", ":"))
        if self.dialect == "sqlite":
            engine = sa.create_engine(
                self._url,
                connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S},
                pool_size=_READERS + 1,
                json_serializer=dumps,
                json_deserializer=json.loads,
            )
            sa.event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in self._url.query:
            connect_args["connect_timeout"] = _PG_CONNECT_TIMEOUT_S
        if "application_name" not in self._url.query:
            connect_args["application_name"] = "rlm-orchestrator"
        return sa.create_engine(
            self._url,
            connect_args=connect_args,
            pool_size=_READERS + 1,
            pool_pre_ping=True,  # a connection PostgreSQL dropped (restart, idle timeout) is replaced
            json_serializer=dumps,
            json_deserializer=json.loads,
        )

    def _open_sync(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            os.close(fd)  # SQLite's -wal and -shm files take the database file's mode
        before = migrate.upgrade(self._engine)
        if before != migrate.head_revision():
            log.info("run store %s migrated from %s to %s", self.where, before, migrate.head_revision())

    def _close_sync(self) -> None:
        self._writer.shutdown(wait=True)  # the writes already made complete first
        self._readers.shutdown(wait=True)  # and the reads (short) answer their callers
        self._engine.dispose()

    def _write_sync(self, record: Record) -> None:
        body = record_to_json(record)
        with self._engine.begin() as conn:
            if isinstance(record, RunStarted):
                conn.execute(
                    runs.insert().values(
                        run_id=record.run_id,
                        tenant=record.tenant,
                        query=_text(record.query),
                        status=RunStatus.RUNNING.value,
                        root_model=_text(record.root_model),
                        max_depth=record.max_depth,
                        created_unix=record.started_unix,
                        prompt_tokens=0,
                        completion_tokens=0,
                    )
                )
            elif isinstance(record, RunEnded):
                ended = conn.execute(
                    runs.update().where(runs.c.run_id == record.run_id).values(**_ending(record))
                )
                if ended.rowcount != 1:
                    raise StoreError(f"run store ({self.where}): run {record.run_id} ended but never started")
            _append(conn, record.run_id, body)

    def _get_run_sync(self, tenant: str, run_id: str) -> StoredRun | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(runs).where(runs.c.run_id == run_id, runs.c.tenant == tenant)
            ).one_or_none()
        return _stored_run(row) if row is not None else None

    def _records_sync(self, tenant: str, run_id: str) -> list[Record] | None:
        query = (
            sa.select(run_records.c.body)
            .join(runs, runs.c.run_id == run_records.c.run_id)
            .where(runs.c.run_id == run_id, runs.c.tenant == tenant)
            .order_by(run_records.c.seq)
        )
        with self._engine.connect() as conn:
            bodies = conn.execute(query).scalars().all()
        # RunStarted and the runs row are one transaction: a run has at least one record.
        return [record_from_json(b) for b in bodies] if bodies else None

    def _list_sync(
        self,
        tenant: str,
        statuses: Sequence[str],
        since_unix: float | None,
        until_unix: float | None,
        limit: int,
        after: tuple[float, str] | None,
    ) -> list[StoredRun]:
        query = sa.select(runs).where(runs.c.tenant == tenant)
        if statuses:
            query = query.where(runs.c.status.in_(statuses))
        if since_unix is not None:
            query = query.where(runs.c.created_unix >= since_unix)
        if until_unix is not None:
            query = query.where(runs.c.created_unix < until_unix)
        if after is not None:
            created, run_id = after
            query = query.where(
                sa.or_(
                    runs.c.created_unix < created,
                    sa.and_(runs.c.created_unix == created, runs.c.run_id < run_id),
                )
            )
        query = query.order_by(runs.c.created_unix.desc(), runs.c.run_id.desc()).limit(limit)
        with self._engine.connect() as conn:
            return [_stored_run(row) for row in conn.execute(query)]

    def _recover_sync(self, reason: str) -> list[str]:
        with self._engine.connect() as conn:
            running = (
                conn.execute(
                    sa.select(runs.c.run_id)
                    .where(runs.c.status == RunStatus.RUNNING.value)
                    .order_by(runs.c.created_unix, runs.c.run_id)
                )
                .scalars()
                .all()
            )
        recovered = []
        for run_id in running:
            with self._engine.begin() as conn:
                bodies = conn.execute(
                    sa.select(run_records.c.body)
                    .where(run_records.c.run_id == run_id)
                    .order_by(run_records.c.seq)
                ).scalars()
                endings = _endings([record_from_json(b) for b in bodies], reason, time.time())
                ended = endings[-1]
                assert isinstance(ended, RunEnded)
                # Guarded by status: a run that ended meanwhile (its RunEnded committed) is left alone.
                done = conn.execute(
                    runs.update()
                    .where(runs.c.run_id == run_id, runs.c.status == RunStatus.RUNNING.value)
                    .values(**_ending(ended))
                )
                if done.rowcount != 1:
                    continue
                for record in endings:
                    _append(conn, run_id, record_to_json(record))
            recovered.append(run_id)
        if recovered:
            log.warning("run store %s: %d run(s) left running marked as error", self.where, len(recovered))
        return recovered

    def _add_tokens_sync(self, tenant: str, n: int, day: datetime.date) -> int:
        insert = (pg_dialect.insert if self.dialect == "postgresql" else sqlite_dialect.insert)(token_usage)
        values = insert.values(tenant=tenant, day=day, tokens=n)
        stmt = values.on_conflict_do_update(
            index_elements=[token_usage.c.tenant, token_usage.c.day],
            set_={"tokens": token_usage.c.tokens + values.excluded.tokens},
        ).returning(token_usage.c.tokens)
        with self._engine.begin() as conn:
            return int(conn.execute(stmt).scalar_one())

    def _tokens_sync(self, tenant: str, day: datetime.date) -> int:
        with self._engine.connect() as conn:
            query = sa.select(token_usage.c.tokens).where(
                token_usage.c.tenant == tenant, token_usage.c.day == day
            )
            tokens = conn.execute(query).scalar_one_or_none()
        return int(tokens or 0)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # a commit is on disk (not only in the OS) when it returns
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _append(conn: sa.Connection, run_id: str, body: dict[str, Any]) -> None:
    """Insert one record as the run's next (seq from 1). Writes are serialised on the store's writer
    thread, and one run is written by one process, so max + 1 is never taken twice."""
    next_seq = (
        sa.select(sa.func.coalesce(sa.func.max(run_records.c.seq), 0) + 1)
        .where(run_records.c.run_id == run_id)
        .scalar_subquery()
    )
    conn.execute(run_records.insert().values(run_id=run_id, seq=next_seq, kind=body["kind"], body=body))


def _ending(record: RunEnded) -> dict[str, Any]:
    return {
        "status": record.status.value,
        "answer": _text(record.answer),
        "error": _text(record.error),
        "ended_unix": record.ended_unix,
        "prompt_tokens": record.metadata.prompt_tokens,
        "completion_tokens": record.metadata.completion_tokens,
        "cost_usd": record.metadata.cost_usd,
        "metadata": metadata_to_json(record.metadata),
    }


def _endings(records: list[Record], reason: str, ended_unix: float) -> list[Record]:
    """The records a run that never ended lacks: its root's start if even that is missing, LevelEnded
    (error, `reason`) for each level left open, deepest (latest started) first, then RunEnded."""
    started = next((r for r in records if isinstance(r, RunStarted)), None)
    if started is None:
        raise ValueError("a run without its RunStarted record")
    run_id = started.run_id
    added: list[Record] = []
    if not any(isinstance(r, LevelStarted) and r.level == ROOT for r in records):
        added.append(LevelStarted(run_id, ROOT, None, 0, started.query, started.root_model))
    ended = {r.level for r in records if isinstance(r, LevelEnded)}
    levels = [r.level for r in [*records, *added] if isinstance(r, LevelStarted)]
    open_levels = [level for level in levels if level not in ended]
    for level in reversed(open_levels):
        partial = build_trajectory([*records, *added], level).metadata
        metadata = replace(partial, status=RunStatus.ERROR)
        if level == ROOT:
            metadata = replace(metadata, max_depth=started.max_depth)
        added.append(LevelEnded(run_id, level, RunStatus.ERROR, None, reason, metadata))
    root = next(r for r in [*records, *added] if isinstance(r, LevelEnded) and r.level == ROOT)
    added.append(RunEnded(run_id, RunStatus.ERROR, None, reason, root.metadata, ended_unix))
    return added


def _stored_run(row: sa.Row[Any]) -> StoredRun:
    m = row._mapping
    return StoredRun(
        run_id=m["run_id"],
        tenant=m["tenant"],
        query=m["query"],
        status=RunStatus(m["status"]),
        answer=m["answer"],
        error=m["error"],
        root_model=m["root_model"],
        max_depth=int(m["max_depth"]),
        created_unix=float(m["created_unix"]),
        ended_unix=float(m["ended_unix"]) if m["ended_unix"] is not None else None,
        prompt_tokens=int(m["prompt_tokens"]),
        completion_tokens=int(m["completion_tokens"]),
        cost_usd=float(m["cost_usd"]) if m["cost_usd"] is not None else None,
        metadata=metadata_from_json(m["metadata"]) if m["metadata"] is not None else None,
    )


def _data_dir(settings: StorageSettings) -> Path:
    return Path(os.path.expanduser(settings.data_dir))


def _day(day: datetime.date | None) -> datetime.date:
    if day is None:
        return datetime.datetime.now(datetime.UTC).date()
    if isinstance(day, datetime.datetime) or not isinstance(day, datetime.date):
        raise InvalidInputError(f"day must be a datetime.date, got {day!r}")
    return day


def _status(value: RunStatus | str) -> str:
    try:
        return RunStatus(value).value
    except ValueError:
        raise InvalidInputError(f"unknown run status {value!r}") from None


def _is_id(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ID_CHARS
        and "\x00" not in value
        and _encodable(value)
    )


def _check_id(name: str, value: object) -> None:
    if not _is_id(value):
        raise InvalidInputError(
            f"{name} must be a non-empty str of at most {MAX_ID_CHARS} characters, without NUL, "
            f"got {value!r:.200}"
        )


def _check_text(name: str, value: object, limit: int) -> None:
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidInputError(f"{name} must be a str of at most {limit} characters")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def _text(text: str | None) -> str | None:
    """Text for a column of `runs`: NUL and lone surrogates, which PostgreSQL's text (and UTF-8)
    cannot hold, replaced; the records keep the text exactly (JSON escapes them)."""
    if text is None:
        return None
    text = text.replace("\x00", "\ufffd")
    return text if _encodable(text) else text.encode("utf-8", "replace").decode("utf-8")


_BACKGROUND = re.compile(r"\s*\(Background on this error at: \S+\)")


def _reason(exc: BaseException) -> str:
    """One line saying why: the driver's own message when there is one, without SQL or parameters."""
    inner = getattr(exc, "orig", None) or exc
    text = _BACKGROUND.sub("", str(inner)) or type(inner).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "; ".join(lines)[:500]


def _fingerprint(tenant: str, statuses: Sequence[str], since: float | None, until: float | None) -> str:
    listing = json.dumps([tenant, list(statuses), since, until], separators=(",", ":"))
    return hashlib.sha256(listing.encode("utf-8", "replace")).hexdigest()[:16]


def _make_token(created_unix: float, run_id: str, listing: str) -> str:
    raw = json.dumps([_TOKEN_VERSION, created_unix, run_id, listing], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _read_token(token: str, listing: str) -> tuple[float, str]:
    bad = InvalidInputError("page_token is not a token this listing gave (tampered with, or cut)")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw.decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise bad from None
    if not (
        isinstance(data, list)
        and len(data) == 4
        and data[0] == _TOKEN_VERSION
        and isinstance(data[1], int | float)
        and not isinstance(data[1], bool)
        and math.isfinite(data[1])
        and _is_id(data[2])
        and isinstance(data[3], str)
    ):
        raise bad
    if data[3] != listing:
        raise InvalidInputError("page_token belongs to another listing (another tenant or other filters)")
    return float(data[1]), data[2]
