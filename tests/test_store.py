"""The run store on both of its databases: every test that touches one runs on SQLite (a file in
tmp_path) and on PostgreSQL (a fresh schema of the test cluster; never skipped when CI is set)."""

from __future__ import annotations

import asyncio
import datetime
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
import typing
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from orchestrator.config import RLMConfig
from orchestrator.core import Orchestrator
from orchestrator.errors import InvalidInputError, StoreError
from orchestrator.rlm.records import (
    CellRecorded,
    IterationRecorded,
    LevelEnded,
    LevelStarted,
    LimitHit,
    MemoryRecorder,
    Record,
    RunEnded,
    RunStarted,
    SubCallRecorded,
    build_trajectory,
)
from orchestrator.rlm.trajectory import CellRecord, IterationRecord, RunMetadata, SubCallRecord
from orchestrator.settings import Settings, StorageSettings
from orchestrator.status import CellStatus, RunStatus
from orchestrator.store import SqlRunStore, database_url, open_store, record_from_json, record_to_json
from orchestrator.store.codec import KINDS
from orchestrator.store.migrate import head_revision
from orchestrator.store.schema import metadata as schema_metadata

from .fake_llm import Seen, repl
from .fakes.llm import ScriptedProvider
from .fakes.process_backend import ProcessBackend

REASON = "the orchestrator stopped (crash or kill -9) while this run was in flight"
REPO = Path(__file__).resolve().parent.parent


# --- fixtures and record builders ------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> StorageSettings:
    if request.param == "sqlite":
        return StorageSettings(data_dir=str(tmp_path / "data"))
    return StorageSettings(database_url=request.getfixturevalue("postgres_schema_url"))


@pytest.fixture
async def store(storage: StorageSettings) -> AsyncIterator[SqlRunStore]:
    async with open_store(storage) as opened:
        yield opened


def _meta(status: RunStatus = RunStatus.COMPLETED, **changes: typing.Any) -> RunMetadata:
    base = RunMetadata(
        status=status,
        max_depth=2,
        actual_depth=1,
        iterations=2,
        subcall_count=2,
        total_s=3.25,
        codegen_s=1.5,
        repl_s=0.75,
        context_bytes=1234,
        context_files=3,
        generated_code_chars=42,
        prompt_tokens=300,
        completion_tokens=70,
        cost_usd=0.000123,
        bytes_read=99,
        files_read=2,
        cache_hit_rate=0.5,
        sandbox_starts=2,
    )
    return replace(base, **changes)


def _cell(code: str, stdout: str = "", status: CellStatus = CellStatus.OK) -> CellRecord:
    return CellRecord(code, status, stdout, "", None if status is CellStatus.OK else "Traceback", None, 0.25)


def _iteration(index: int, depth: int = 0) -> IterationRecord:
    return IterationRecord(index, depth, f"reply {index} ```repl ...```", (), 100, 20, 0.5, 0.0)


def _subcall(id: int, parent: str = "root", kind: str = "llm", depth: int = 1) -> SubCallRecord:
    return SubCallRecord(id, parent, depth, kind, "sub-m", 5, 7, 10, 3, 0.125, None, "hello", "world")


def _run_records(run_id: str, tenant: str = "acme", ended: bool = True) -> list[Record]:
    """A whole run by hand: the root level, a child RLM with its own sub-call, a limit hit, the end."""
    records: list[Record] = [
        RunStarted(run_id, tenant, "how many errors? ünïcödé", "root-m", 2, 1_700_000_000.125),
        LevelStarted(run_id, "root", None, 0, "how many errors? ünïcödé", "root-m"),
        IterationRecorded(run_id, "root", _iteration(1)),
        CellRecorded(run_id, "root", 1, _cell("print(1)", "1\n")),
        CellRecorded(run_id, "root", 1, _cell("1/0", status=CellStatus.ERROR)),
        SubCallRecorded(run_id, "root", _subcall(1)),
        LevelStarted(run_id, "rlm-2", "root", 1, "child question", "sub-m"),
        IterationRecorded(run_id, "rlm-2", _iteration(1, depth=1)),
        CellRecorded(run_id, "rlm-2", 1, _cell("FINAL('x')")),
        SubCallRecorded(run_id, "rlm-2", _subcall(3, parent="rlm-2", depth=2)),
        LevelEnded(run_id, "rlm-2", RunStatus.COMPLETED, "x", None, _meta(actual_depth=1)),
        SubCallRecorded(run_id, "root", _subcall(2, kind="rlm")),
        LimitHit(run_id, "root", RunStatus.MAX_SUBCALLS, "sub-call limit 2 reached"),
        IterationRecorded(run_id, "root", _iteration(2)),
    ]
    if ended:
        records += [
            LevelEnded(run_id, "root", RunStatus.COMPLETED, "42", None, _meta()),
            RunEnded(run_id, RunStatus.COMPLETED, "42", None, _meta(), 1_700_000_003.5),
        ]
    return records


async def _write_all(store: SqlRunStore, records: list[Record]) -> None:
    for record in records:
        await store.write(record)


async def _add_run(
    store: SqlRunStore, run_id: str, tenant: str, created: float, status: RunStatus | None
) -> None:
    """A minimal run: started at `created`, ended with `status` (None: still running)."""
    await store.write(RunStarted(run_id, tenant, f"query {run_id}", "root-m", 1, created))
    if status is not None:
        await store.write(RunEnded(run_id, status, None, "why", _meta(status), created + 1))


# --- JSON form of the records ------------------------------------------------------------------------


def _one_of_each() -> list[Record]:
    records = _run_records("r1")
    by_kind = {type(r): r for r in records}
    assert set(by_kind) == set(typing.get_args(Record)) == set(KINDS.values())
    return list(by_kind.values())


@pytest.mark.parametrize("record", _one_of_each(), ids=lambda r: type(r).__name__)
def test_every_record_type_round_trips_through_json(record: Record) -> None:
    """record_from_json(record_to_json(r)) is r again, also after json.dumps and json.loads."""
    data = record_to_json(record)
    assert record_from_json(data) == record
    assert record_from_json(json.loads(json.dumps(data))) == record
    assert type(record_from_json(json.loads(json.dumps(data)))) is type(record)


def test_odd_values_round_trip_and_bad_json_is_refused() -> None:
    """NUL, lone surrogates and non-finite floats survive JSON; unknown kinds and fields are refused."""
    cell = CellRecord("print()", CellStatus.OK, "a\x00b \ud800 é", "", None, None, math.inf)
    back = record_from_json(json.loads(json.dumps(record_to_json(CellRecorded("r", "root", 1, cell)))))
    assert isinstance(back, CellRecorded) and back.cell == cell
    meta = record_to_json(RunEnded("r", RunStatus.ERROR, None, "e", _meta(cache_hit_rate=math.nan), 1.0))
    ended = record_from_json(json.loads(json.dumps(meta, allow_nan=False)))
    assert isinstance(ended, RunEnded) and math.isnan(ended.metadata.cache_hit_rate)
    with pytest.raises(ValueError, match="unknown record kind"):
        record_from_json({"kind": "nope"})
    with pytest.raises(ValueError, match="unknown fields"):
        record_from_json({**record_to_json(_run_records("r")[0]), "extra": 1})
    with pytest.raises(ValueError, match="not a RunStatus"):
        record_from_json({**record_to_json(_run_records("r")[-1]), "status": "bogus"})


# --- writing and reading back ------------------------------------------------------------------------


async def test_records_rebuild_the_trajectory(store: SqlRunStore) -> None:
    """Hand-built records come back in order, and the trajectory rebuilt from them is build_trajectory's."""
    records = _run_records("run-a")
    await _write_all(store, records)
    assert await store.records("acme", "run-a") == records
    assert await store.trajectory("acme", "run-a") == build_trajectory(records)
    run = await store.get_run("acme", "run-a")
    assert run is not None and run.ended
    assert (run.status, run.answer, run.error) == (RunStatus.COMPLETED, "42", None)
    assert (run.query, run.root_model, run.max_depth) == ("how many errors? ünïcödé", "root-m", 2)
    assert (run.created_unix, run.ended_unix) == (1_700_000_000.125, 1_700_000_003.5)
    assert (run.prompt_tokens, run.completion_tokens, run.cost_usd) == (300, 70, 0.000123)
    assert run.metadata == _meta()
    assert run.to_json()["metadata"]["status"] == "completed"


async def test_a_run_in_flight_reads_as_running(store: SqlRunStore) -> None:
    """A run without its ending is `running`, and its trajectory shows what it did so far."""
    records = _run_records("run-b", ended=False)
    await _write_all(store, records)
    run = await store.get_run("acme", "run-b")
    assert run is not None and run.status is RunStatus.RUNNING and not run.ended
    assert run.ended_unix is None and run.metadata is None and run.prompt_tokens == 0
    trajectory = await store.trajectory("acme", "run-b")
    assert trajectory == build_trajectory(records)
    assert trajectory is not None and trajectory.status is RunStatus.RUNNING
    assert len(trajectory.iterations) == 2 and len(trajectory.children) == 1


async def test_engine_records_rebuild_the_engine_trajectory(
    store: SqlRunStore, tmp_path: Path, context_dir: Path
) -> None:
    """A scripted run on the process backend, recorded by the store: the same records as MemoryRecorder's,
    and the stored trajectory equals the run's own."""

    def script(seen: Seen, index: int) -> str:
        if seen.body["model"] == "sub-m":
            return f"echo:{seen.last_user}"
        if index == 0:
            return repl("x = llm_query('ping')\nprint(x, len(read_file('hello.txt')))")
        return repl("FINAL(x)")

    memory = MemoryRecorder()

    class Both:
        async def write(self, record: Record) -> None:
            await memory.write(record)
            await store.write(record)

    settings = Settings(run=RLMConfig(root_model="root-m", sub_model="sub-m"))
    orch = Orchestrator(
        settings,
        backend=ProcessBackend(state_dir=tmp_path / "backend"),
        provider=ScriptedProvider(script),
        recorder=Both(),
    )
    async with orch:
        result = await orch.run(context=context_dir, query="say ping", tenant="acme")
    assert result.status == "completed" and result.answer == "echo:ping"
    assert await store.records("acme", result.run_id) == memory.records(result.run_id)
    assert await store.trajectory("acme", result.run_id) == result.trajectory
    run = await store.get_run("acme", result.run_id)
    assert run is not None and run.metadata == result.metadata and run.answer == "echo:ping"


async def test_text_the_databases_cannot_hold_is_kept_in_records(store: SqlRunStore) -> None:
    """NUL and lone surrogates are kept exactly in the records; the runs row holds U+FFFD for a NUL."""
    odd = "before\x00after \ud83d end"
    await store.write(RunStarted("run-odd", "acme", odd, "root-m", 1, 1.0))
    await store.write(CellRecorded("run-odd", "root", 1, _cell("print(odd)", odd)))
    records = await store.records("acme", "run-odd")
    assert records is not None and records[0] == RunStarted("run-odd", "acme", odd, "root-m", 1, 1.0)
    assert isinstance(records[1], CellRecorded) and records[1].cell.stdout == odd
    run = await store.get_run("acme", "run-odd")
    assert run is not None and run.query.startswith("before\ufffdafter ")


async def test_refused_writes_say_why(store: SqlRunStore) -> None:
    """A record of a run never started, a second start of a run and bad ids are refused, naming the run."""
    with pytest.raises(StoreError, match="ghost"):
        await store.write(LevelStarted("ghost", "root", None, 0, "q", "m"))
    with pytest.raises(StoreError, match="ghost"):
        await store.write(RunEnded("ghost", RunStatus.COMPLETED, "a", None, _meta(), 2.0))
    await _add_run(store, "twice", "acme", 1.0, None)
    with pytest.raises(StoreError, match="twice"):
        await _add_run(store, "twice", "acme", 1.0, None)
    with pytest.raises(InvalidInputError, match="tenant"):
        await store.write(RunStarted("r", "", "q", "m", 1, 1.0))
    with pytest.raises(InvalidInputError, match="run_id"):
        await store.write(RunStarted("x" * 129, "acme", "q", "m", 1, 1.0))
    kept = [RunStarted("twice", "acme", "query twice", "root-m", 1, 1.0)]
    assert await store.records("acme", "twice") == kept


async def test_a_cancelled_write_still_commits(store: SqlRunStore) -> None:
    """Once made, a write completes even when its caller is cancelled: a run's records have no holes."""
    await _add_run(store, "run-c", "acme", 1.0, None)
    record = LevelStarted("run-c", "root", None, 0, "q", "m")
    busy = store._writer.submit(time.sleep, 0.3)  # the writer is busy: the write waits in its queue
    task = asyncio.create_task(store.write(record))
    await asyncio.sleep(0)  # the write is handed to the store's thread
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not busy.done()
    await store.write(IterationRecorded("run-c", "root", _iteration(1)))
    records = await store.records("acme", "run-c")
    assert records is not None and [type(r) for r in records] == [RunStarted, LevelStarted, IterationRecorded]


# --- tenants, listing, pagination ----------------------------------------------------------------------


async def test_another_tenants_run_is_the_same_as_a_missing_one(store: SqlRunStore) -> None:
    """get_run, records, trajectory and list_runs never show a run to another tenant."""
    await _write_all(store, _run_records("secret", tenant="acme"))
    assert await store.get_run("acme", "secret") is not None
    for tenant, run_id in (("evil", "secret"), ("acme", "missing"), ("evil", "missing"), ("a\x00", "secret")):
        assert await store.get_run(tenant, run_id) is None
        assert await store.records(tenant, run_id) is None
        assert await store.trajectory(tenant, run_id) is None
    assert await store.list_runs("evil") == ([], "")
    assert [r.run_id for r in (await store.list_runs("acme"))[0]] == ["secret"]


async def test_pages_are_newest_first_and_filters_apply(store: SqlRunStore) -> None:
    """Keyset pages cover every run once, newest first (ties by id); status and time filters apply;
    a tampered token, a token of another listing and a bad page size are InvalidInputError."""
    plan = [
        ("r0", 100.0, RunStatus.COMPLETED),
        ("r1", 101.0, RunStatus.ERROR),
        ("r2", 102.0, RunStatus.COMPLETED),
        ("r3", 102.0, None),
        ("r4", 102.0, RunStatus.COMPLETED),
        ("r5", 103.0, RunStatus.MAX_ITERATIONS),
        ("r6", 104.0, None),
    ]
    for run_id, created, status in plan:
        await _add_run(store, run_id, "acme", created, status)
    await _add_run(store, "other", "globex", 103.5, RunStatus.COMPLETED)

    seen, token, pages = [], "", 0
    while True:
        page, token = await store.list_runs("acme", page_size=2, page_token=token)
        seen += [r.run_id for r in page]
        pages += 1
        if not token:
            break
    assert seen == ["r6", "r5", "r4", "r3", "r2", "r1", "r0"] and pages == 4

    done, token = await store.list_runs("acme", statuses=[RunStatus.COMPLETED, "max_iterations"])
    assert [r.run_id for r in done] == ["r5", "r4", "r2", "r0"] and token == ""
    running, _ = await store.list_runs("acme", statuses=["running"])
    assert [r.run_id for r in running] == ["r6", "r3"] and all(r.status is RunStatus.RUNNING for r in running)
    window, _ = await store.list_runs("acme", since_unix=102, until_unix=104)
    assert [r.run_id for r in window] == ["r5", "r4", "r3", "r2"]
    first, token = await store.list_runs("acme", statuses=["completed"], page_size=1)
    second, _ = await store.list_runs("acme", statuses=["completed"], page_size=1, page_token=token)
    assert [r.run_id for r in first + second] == ["r4", "r2"]

    for bad in (token[:-3] + "abc", token[:5], "not a token!", "e30", token + "x" * 7):
        with pytest.raises(InvalidInputError, match="page_token"):
            await store.list_runs("acme", statuses=["completed"], page_size=1, page_token=bad)
    for other in ({"tenant": "globex"}, {"statuses": ["error"]}, {"since_unix": 1.0}):
        args = {"tenant": "acme", "statuses": ["completed"], **other}
        with pytest.raises(InvalidInputError, match="another listing"):
            await store.list_runs(args.pop("tenant"), page_size=1, page_token=token, **args)  # type: ignore[arg-type]
    for size in (0, -1, 1001, True, 2.0):
        with pytest.raises(InvalidInputError, match="page_size"):
            await store.list_runs("acme", page_size=size)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="unknown run status"):
        await store.list_runs("acme", statuses=["finished"])


# --- crashes and recovery ---------------------------------------------------------------------------


async def test_a_run_left_running_is_recovered_as_error(storage: StorageSettings) -> None:
    """A store closed mid-run (no RunEnded) and reopened: recover marks the run error with the reason,
    writes the endings it lacked (its trajectory says error and keeps what it did), and leaves ended
    runs alone; a second recover finds nothing."""
    async with open_store(storage) as first:
        await _write_all(first, _run_records("finished"))
        await _write_all(first, _run_records("crashed", ended=False))
        await _add_run(first, "barely", "acme", 5.0, None)  # died right after RunStarted
    async with open_store(storage) as second:
        assert sorted(await second.recover(REASON)) == ["barely", "crashed"]
        assert await second.recover(REASON) == []
        run = await second.get_run("acme", "crashed")
        assert run is not None and (run.status, run.error, run.answer) == (RunStatus.ERROR, REASON, None)
        assert run.ended_unix is not None and run.metadata is not None
        assert run.metadata.status is RunStatus.ERROR and run.metadata.iterations == 2
        trajectory = await second.trajectory("acme", "crashed")
        assert trajectory is not None and (trajectory.status, trajectory.error) == (RunStatus.ERROR, REASON)
        assert len(trajectory.iterations) == 2 and len(trajectory.subcalls) == 3
        records = await second.records("acme", "crashed")
        assert records is not None and records[: len(_run_records("crashed", ended=False))] == _run_records(
            "crashed", ended=False
        )
        assert isinstance(records[-1], RunEnded) and records[-1].error == REASON
        barely = await second.trajectory("acme", "barely")
        assert barely is not None and (barely.status, barely.query) == (RunStatus.ERROR, "query barely")
        finished = await second.get_run("acme", "finished")
        assert finished is not None and finished.status is RunStatus.COMPLETED and finished.error is None


_WRITER = """
import asyncio, os, sys
from orchestrator.rlm.records import RunStarted, SubCallRecorded
from orchestrator.rlm.trajectory import SubCallRecord
from orchestrator.settings import StorageSettings
from orchestrator.store import open_store

async def main():
    settings = StorageSettings(data_dir=os.environ["DATA_DIR"], database_url=os.environ["DATABASE_URL"])
    store = open_store(settings)
    await store.open()
    await store.write(RunStarted("killed", "acme", "q", "m", 1, 1.0))
    for i in range(1, 100_000):
        sub = SubCallRecord(i, "root", 1, "llm", "m", 1, 1, 1, 1, 0.1, None, "p" * 20_000, "r" * 20_000)
        await store.write(SubCallRecorded("killed", "root", sub))
        print(i, flush=True)

asyncio.run(main())
"""


async def test_sigkill_mid_write_loses_nothing_committed(storage: StorageSettings) -> None:
    """A child writing records as fast as it can is killed with SIGKILL: every write it saw return is
    there, the records are whole and in sequence, the database is not corrupt, and the run recovers."""
    env = {**os.environ, "DATA_DIR": storage.data_dir, "DATABASE_URL": storage.database_url}
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER], stdout=subprocess.PIPE, env=env, cwd=REPO, text=True
    )
    assert child.stdout is not None
    confirmed = 0
    try:
        for line in child.stdout:
            confirmed = int(line)
            if confirmed >= 40:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL and confirmed >= 40

    async with open_store(storage) as store:
        records = await store.records("acme", "killed")
        assert records is not None
        subcalls = [r.subcall.id for r in records if isinstance(r, SubCallRecorded)]
        assert subcalls == list(range(1, len(subcalls) + 1)) and len(subcalls) >= confirmed
        assert all(len(r.subcall.prompt) == 20_000 for r in records if isinstance(r, SubCallRecorded))
        assert await store.recover(REASON) == ["killed"]
    if store.path is not None:
        with sqlite3.connect(store.path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


# --- tokens per day ---------------------------------------------------------------------------------


async def test_tokens_per_day_sum_exactly_under_concurrency(storage: StorageSettings) -> None:
    """Two stores on one database add tokens concurrently (200 UPSERTs): the day's count is exact, and
    other days and tenants are apart."""
    day = datetime.date(2030, 1, 2)
    async with open_store(storage) as one, open_store(storage) as two:
        totals = await asyncio.gather(
            *(store.add_tokens("acme", n, day) for n in range(1, 101) for store in (one, two))
        )
        assert await one.tokens_today("acme", day) == await two.tokens_today("acme", day) == 2 * 5050
        assert max(totals) == 2 * 5050 and len(set(totals)) == len(totals)
        assert await one.tokens_today("acme", datetime.date(2030, 1, 3)) == 0
        assert await one.tokens_today("globex", day) == 0
        assert await one.add_tokens("acme", 7) == 7  # today, UTC
        assert await two.tokens_today("acme") == 7
        assert await one.tokens_today("acme", datetime.datetime.now(datetime.UTC).date()) == 7
        for bad in (-1, 1.5, True):
            with pytest.raises(InvalidInputError, match="tokens"):
                await one.add_tokens("acme", bad)  # type: ignore[arg-type]


# --- schema and migrations -----------------------------------------------------------------------


async def test_migrations_build_the_schema_and_run_once(storage: StorageSettings) -> None:
    """The migrated schema is the metadata's (Alembic finds no difference); opening again, and opening
    twice at once on a fresh database, migrate nothing and lose nothing; a schema newer than the code
    is refused."""
    one, two = open_store(storage), open_store(storage)
    await asyncio.gather(one.open(), two.open())
    await _add_run(one, "kept", "acme", 1.0, RunStatus.COMPLETED)
    await asyncio.gather(one.aclose(), two.aclose())
    async with open_store(storage) as again:
        assert (await again.get_run("acme", "kept")) is not None
    engine = sa.create_engine(database_url(storage))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert context.get_current_revision() == head_revision()
            assert compare_metadata(context, schema_metadata) == []
            assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
            conn.execute(sa.text("UPDATE alembic_version SET version_num = 'f00d'"))  # a newer schema
            conn.commit()
    finally:
        engine.dispose()
    newer = open_store(storage)
    with pytest.raises(StoreError, match="revision 'f00d', which this version does not know"):
        await newer.open()
    await newer.aclose()


# --- files, life cycle, unreachable databases ---------------------------------------------------------


async def test_sqlite_file_modes_and_wal(tmp_path: Path) -> None:
    """The SQLite store makes <data_dir>/runs.db 0600 in a 0700 directory, in WAL mode."""
    settings = StorageSettings(data_dir=str(tmp_path / "deep" / "data"))
    async with open_store(settings) as store:
        await _add_run(store, "r", "acme", 1.0, None)
        path = tmp_path / "deep" / "data" / "runs.db"
        assert store.path == path
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700
        assert (path.parent / "runs.db-wal").stat().st_mode & 0o777 == 0o600
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_life_cycle(storage: StorageSettings) -> None:
    """Use before open and after close is StoreError; open and aclose are idempotent."""
    store = open_store(storage)
    with pytest.raises(StoreError, match="not open"):
        await store.get_run("acme", "r")
    await asyncio.gather(store.open(), store.open())
    await store.open()
    await store.aclose()
    await asyncio.gather(store.aclose(), store.aclose())
    with pytest.raises(StoreError, match="closed"):
        await store.write(RunStarted("r", "acme", "q", "m", 1, 1.0))
    with pytest.raises(StoreError, match="closed"):
        await store.open()


async def test_an_unreachable_database_is_a_store_error_without_the_password() -> None:
    """PostgreSQL that refuses connections: StoreError naming the server, the password hidden."""
    settings = StorageSettings(database_url="postgresql://rlm:s3cret-PASSWORD@127.0.0.1:1/rlm")
    store = open_store(settings)
    with pytest.raises(StoreError) as caught:
        await store.open()
    await store.aclose()
    message = caught.value.message
    assert "cannot open the database" in message and "127.0.0.1:1/rlm" in message, message
    assert "s3cret-PASSWORD" not in message and "***" in message
    assert "s3cret-PASSWORD" not in repr(caught.value.__cause__) and caught.value.code == "UNAVAILABLE"


async def test_a_wrong_password_is_a_store_error_without_it(postgres_server: str) -> None:
    """The test server refuses a wrong password: StoreError saying so, without the password."""
    url = sa.make_url(postgres_server).set(password="wrong-PASSWORD-123")
    store = open_store(StorageSettings(database_url=url.render_as_string(hide_password=False)))
    with pytest.raises(StoreError, match="password authentication failed") as caught:
        await store.open()
    await store.aclose()
    assert "wrong-PASSWORD-123" not in caught.value.message


async def test_an_unusable_sqlite_path_is_a_store_error(tmp_path: Path) -> None:
    """A data_dir beneath a regular file: StoreError naming the file it could not make."""
    (tmp_path / "file").write_text("")
    store = open_store(StorageSettings(data_dir=str(tmp_path / "file" / "data")))
    with pytest.raises(StoreError, match="cannot open the database") as caught:
        await store.open()
    await store.aclose()
    assert str(tmp_path / "file" / "data" / "runs.db") in caught.value.message


def test_database_urls() -> None:
    """Empty: SQLite in data_dir; postgres(ql):// goes to psycopg 3; a SQLite URL needs an absolute path."""
    assert str(database_url(StorageSettings(data_dir="/srv/rlm"))) == "sqlite:////srv/rlm/runs.db"
    pg = database_url(StorageSettings(database_url="postgres://u:p@db:5433/runs"))
    assert pg.drivername == "postgresql+psycopg" and (pg.host, pg.port, pg.database) == ("db", 5433, "runs")
    assert database_url(StorageSettings(database_url="sqlite:////x/y.db")).database == "/x/y.db"
    for relative in ("sqlite://", "sqlite:///:memory:", "sqlite:///runs.db"):
        with pytest.raises(StoreError, match="absolute file path"):
            database_url(StorageSettings(database_url=relative))
