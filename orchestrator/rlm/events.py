"""Typed events a run emits as it goes (RLMAgent.run_stream yields them)."""

from __future__ import annotations

from dataclasses import dataclass

from ..status import RunStatus
from .trajectory import CellRecord, SubCallRecord, Trajectory


@dataclass(frozen=True, slots=True)
class IterationStarted:
    index: int
    depth: int
    elapsed_s: float


@dataclass(frozen=True, slots=True)
class ModelText:
    """A piece of the root model's reply, as it streams."""

    text: str
    depth: int


@dataclass(frozen=True, slots=True)
class ModelTextReset:
    """The root model's reply streamed so far is void (a retry answered differently, or the call
    failed): drop the ModelText pieces seen since the last reset; the reply starts again."""

    depth: int


@dataclass(frozen=True, slots=True)
class CodeStarted:
    code: str
    depth: int


@dataclass(frozen=True, slots=True)
class CellFinished:
    cell: CellRecord
    depth: int


@dataclass(frozen=True, slots=True)
class SubCallStarted:
    id: int
    kind: str  # "llm", "rlm" (a child RLM) or "tool"
    depth: int
    prompt_chars: int
    model: str = ""  # the model asked (a tool's name for a tool call)
    preview: str = ""  # the prompt's first 80 characters


@dataclass(frozen=True, slots=True)
class SubCallFinished:
    record: SubCallRecord


@dataclass(frozen=True, slots=True)
class FinalAnswer:
    answer: str | None
    status: RunStatus
    trajectory: Trajectory


@dataclass(frozen=True, slots=True)
class RunError:
    message: str


Event = (
    IterationStarted
    | ModelText
    | ModelTextReset
    | CodeStarted
    | CellFinished
    | SubCallStarted
    | SubCallFinished
    | FinalAnswer
    | RunError
)
