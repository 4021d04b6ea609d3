"""What a run did, kept whole: every iteration's reply, code and output, every sub-call, the metadata.

Plain frozen values with a JSON form, so a run can be written to a file and read back (and later stored
by the multi-tenant API or drawn by a trajectory view). No secret ever enters one: no API key, no
token, no endpoint credentials.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..status import CellStatus, RunStatus


@dataclass(frozen=True, slots=True)
class CellRecord:
    code: str
    status: CellStatus
    stdout: str
    stderr: str
    error: str | None
    final: str | None
    duration_s: float
    # The sub-calls this cell made that succeeded (as the official REPL's rlm_calls: failed ones are in
    # the trajectory's subcalls only), in the order made, with their texts (each clipped as there).
    subcalls: tuple[SubCallRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class IterationRecord:
    index: int
    depth: int
    reply: str
    cells: tuple[CellRecord, ...]
    prompt_tokens: int
    completion_tokens: int
    model_s: float
    repl_s: float


@dataclass(frozen=True, slots=True)
class SubCallRecord:
    id: int
    parent: str  # "root", or the id of the child run that made it, e.g. "rlm-3"
    depth: int
    kind: str  # "llm" or "rlm"
    model: str
    prompt_chars: int
    reply_chars: int
    prompt_tokens: int
    completion_tokens: int
    duration_s: float
    error: str | None = None
    prompt: str = ""  # the texts themselves, each kept up to records.MAX_RECORDED_TEXT characters
    reply: str = ""


@dataclass(frozen=True, slots=True)
class RunMetadata:
    status: RunStatus
    max_depth: int
    actual_depth: int
    iterations: int
    subcall_count: int
    total_s: float
    codegen_s: float  # time waiting for the root (and child) models' replies
    repl_s: float  # time running cells in sandboxes
    context_bytes: int
    context_files: int
    generated_code_chars: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    bytes_read: int
    files_read: int
    cache_hit_rate: float
    sandbox_starts: int
    # How this level's (last) sandbox got its context: "mount" (mounted at start), "late-mount" (a warm
    # pool's sandbox, mounted at hand-out), "grpc" (every read over the socket); "": no sandbox (or a
    # record from before the pool).
    context_path: str = ""
    pooled_sandboxes: int = 0  # of sandbox_starts: those that came warm from the pool


@dataclass(frozen=True, slots=True)
class Trajectory:
    query: str
    answer: str | None
    status: RunStatus
    error: str | None
    metadata: RunMetadata
    iterations: tuple[IterationRecord, ...] = ()
    subcalls: tuple[SubCallRecord, ...] = ()
    children: tuple[Trajectory, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trajectory:
        return cls(
            query=data["query"],
            answer=data["answer"],
            status=RunStatus(data["status"]),
            error=data.get("error"),
            metadata=RunMetadata(**{**data["metadata"], "status": RunStatus(data["metadata"]["status"])}),
            iterations=tuple(
                IterationRecord(
                    **{
                        **it,
                        "cells": tuple(
                            CellRecord(
                                **{
                                    **c,
                                    "status": CellStatus(c["status"]),
                                    "subcalls": tuple(SubCallRecord(**s) for s in c.get("subcalls", ())),
                                }
                            )
                            for c in it["cells"]
                        ),
                    }
                )
                for it in data.get("iterations", ())
            ),
            subcalls=tuple(SubCallRecord(**s) for s in data.get("subcalls", ())),
            children=tuple(cls.from_json(c) for c in data.get("children", ())),
        )

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> Trajectory:
        return cls.from_json(json.loads(Path(path).read_text()))
