"""Run records as they happen: the recorder port, an in-memory recorder, and trajectories built from records.

The engine writes one record per step when the step happens (a run or level starting, each model reply,
each finished cell, each sub-call with its prompt and reply, each limit hit, each ending), so a store
behind this port loses at most the step in progress when the process dies. A trajectory is a fold over
a run's records (`build_trajectory`): the engine builds its result that way, and a store can rebuild
the trajectory of a run that never ended.

    RunStarted ─┬─ LevelStarted(root) ── IterationRecorded ── CellRecorded ... ── LevelEnded(root) ── RunEnded
                └─ LevelStarted(rlm-3, parent root) ... LevelEnded(rlm-3)     (a child RLM, at depth 1+)
       SubCallRecorded and LimitHit arrive whenever they happen, tagged with the level that made them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from ..status import RunStatus
from .trajectory import CellRecord, IterationRecord, RunMetadata, SubCallRecord, Trajectory

ROOT = "root"
# A sub-call's prompt and reply are kept up to this many characters each, in records and trajectories.
MAX_RECORDED_TEXT = 100_000


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: str
    tenant: str
    query: str
    root_model: str
    max_depth: int
    started_unix: float


@dataclass(frozen=True, slots=True)
class LevelStarted:
    run_id: str
    level: str  # "root", or "rlm-<sub-call id>" for a child RLM
    parent: str | None
    depth: int
    query: str
    model: str


@dataclass(frozen=True, slots=True)
class IterationRecorded:
    """The model's reply for one iteration (its cells follow as CellRecorded)."""

    run_id: str
    level: str
    iteration: IterationRecord


@dataclass(frozen=True, slots=True)
class CellRecorded:
    run_id: str
    level: str
    iteration: int
    cell: CellRecord


@dataclass(frozen=True, slots=True)
class SubCallRecorded:
    run_id: str
    level: str
    subcall: SubCallRecord


@dataclass(frozen=True, slots=True)
class LimitHit:
    run_id: str
    level: str
    limit: RunStatus
    message: str


@dataclass(frozen=True, slots=True)
class LevelEnded:
    run_id: str
    level: str
    status: RunStatus
    answer: str | None
    error: str | None
    metadata: RunMetadata


@dataclass(frozen=True, slots=True)
class RunEnded:
    run_id: str
    status: RunStatus
    answer: str | None
    error: str | None
    metadata: RunMetadata
    ended_unix: float


Record = (
    RunStarted
    | LevelStarted
    | IterationRecorded
    | CellRecorded
    | SubCallRecorded
    | LimitHit
    | LevelEnded
    | RunEnded
)


class RunRecorder(Protocol):
    async def write(self, record: Record) -> None:
        """Keep one record. Returns once it is kept (durably, for a store that promises so)."""
        ...


class NullRecorder:
    """Keeps nothing: for callers that want only the run's result."""

    async def write(self, record: Record) -> None:
        return None


class MemoryRecorder:
    """Keeps the records of the last `max_runs` runs in memory, oldest forgotten first."""

    def __init__(self, max_runs: int = 100) -> None:
        self._max_runs = max_runs
        self._runs: OrderedDict[str, list[Record]] = OrderedDict()

    async def write(self, record: Record) -> None:
        records = self._runs.get(record.run_id)
        if records is None:
            records = self._runs[record.run_id] = []
            while len(self._runs) > self._max_runs:
                self._runs.popitem(last=False)
        records.append(record)

    def runs(self) -> list[str]:
        return list(self._runs)

    def records(self, run_id: str) -> list[Record]:
        return list(self._runs.get(run_id, ()))


def clip(text: str, limit: int = MAX_RECORDED_TEXT) -> str:
    """A text kept whole up to `limit` characters, else cut with a note saying how long it was."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[cut: {len(text):,} characters, kept {limit:,}]"


def build_trajectory(records: Sequence[Record], level: str = ROOT) -> Trajectory:
    """The trajectory of one level of a run, from its records. The root's holds every sub-call and
    every child level (each child with its own sub-calls); a level that has not ended yet is shown as
    running, with what it did so far."""
    started = next((r for r in records if isinstance(r, LevelStarted) and r.level == level), None)
    ended = next((r for r in records if isinstance(r, LevelEnded) and r.level == level), None)
    cells: dict[int, list[CellRecord]] = {}
    for r in records:
        if isinstance(r, CellRecorded) and r.level == level:
            cells.setdefault(r.iteration, []).append(r.cell)
    iterations = tuple(
        replace(
            r.iteration,
            cells=tuple(cells.get(r.iteration.index, ())),
            repl_s=sum(c.duration_s for c in cells.get(r.iteration.index, ())),
        )
        for r in records
        if isinstance(r, IterationRecorded) and r.level == level
    )
    subcalls = tuple(
        r.subcall for r in records if isinstance(r, SubCallRecorded) and (level == ROOT or r.level == level)
    )
    children: tuple[Trajectory, ...] = ()
    if level == ROOT:
        children = tuple(
            build_trajectory(records, r.level)
            for r in records
            if isinstance(r, LevelEnded) and r.level != ROOT
        )
    if ended is not None:
        status, answer, error, metadata = ended.status, ended.answer, ended.error, ended.metadata
    else:
        status, answer, error = RunStatus.RUNNING, None, None
        metadata = _partial_metadata(started.depth if started else 0, iterations, subcalls)
    return Trajectory(
        started.query if started else "",
        answer,
        status,
        error,
        metadata,
        iterations,
        subcalls,
        children,
    )


def _partial_metadata(
    depth: int, iterations: tuple[IterationRecord, ...], subcalls: tuple[SubCallRecord, ...]
) -> RunMetadata:
    """What can be said of a level that never ended (the process died mid-run)."""
    return RunMetadata(
        status=RunStatus.RUNNING,
        max_depth=0,
        actual_depth=depth,
        iterations=len(iterations),
        subcall_count=len(subcalls),
        total_s=0.0,
        codegen_s=sum(i.model_s for i in iterations),
        repl_s=sum(i.repl_s for i in iterations),
        context_bytes=0,
        context_files=0,
        generated_code_chars=sum(len(c.code) for i in iterations for c in i.cells),
        prompt_tokens=sum(i.prompt_tokens for i in iterations),
        completion_tokens=sum(i.completion_tokens for i in iterations),
        cost_usd=None,
        bytes_read=0,
        files_read=0,
        cache_hit_rate=0.0,
        sandbox_starts=0,
    )
