"""One status vocabulary, end to end: how a run ended and how a cell ended.

Both are str enums, so they are their values in JSON, in a database column and on the wire.
"""

from __future__ import annotations

import enum


class RunStatus(enum.StrEnum):
    RUNNING = "running"  # in flight (only ever seen in a run store)
    COMPLETED = "completed"  # the code or the reply gave a final answer
    MAX_ITERATIONS = "max_iterations"  # the iteration limit; answered when asked at the limit
    MAX_SUBCALLS = "max_subcalls"  # a sub-call was refused at the limit; the run ended at its next turn
    MAX_TOKENS = "max_tokens"
    DEADLINE = "deadline"
    STALLED = "stalled"  # the model wrote replies with no code and no final answer, several in a row
    LLM_ERROR = "llm_error"  # the model endpoint failed after retries, or refused the request
    SANDBOX_ERROR = "sandbox_error"  # the engine, the image or the seccomp profile was unavailable
    CANCELLED = "cancelled"  # the caller cancelled it
    ERROR = "error"  # another of our errors (RLMError); never a bug of ours, which is raised

    @property
    def is_limit(self) -> bool:
        return self in _LIMITS


_LIMITS = frozenset(
    {RunStatus.MAX_ITERATIONS, RunStatus.MAX_SUBCALLS, RunStatus.MAX_TOKENS, RunStatus.DEADLINE}
)


class CellStatus(enum.StrEnum):
    OK = "ok"  # the cell ran to its end
    ERROR = "error"  # the cell raised; the traceback is in `error`
    TIMEOUT = "timeout"  # the cell ran past its wall-clock limit: the sandbox was killed
    OOM = "oom"  # the sandbox ran out of memory and the kernel killed it
    KILLED = "killed"  # the sandbox died for another reason (exit, signal, pids) mid-cell
    INVALID = "invalid"  # the input was refused before anything ran
    UNAVAILABLE = "unavailable"  # no sandbox could be had: the engine, image or seccomp profile is missing

    @property
    def sandbox_died(self) -> bool:
        return self in (CellStatus.TIMEOUT, CellStatus.OOM, CellStatus.KILLED)
