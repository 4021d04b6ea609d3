"""Protobuf at the edge: RLMService's messages to the orchestrator's values and back. Nothing else in the
server touches a generated message's fields; nothing here decides anything (limits, quotas and
tenants are the servicer's and the policy's).

Requests become plain values: `sandbox_fields` gives exactly the keys of config.limits_from_request that
the request set (so what the wire cannot name, a request cannot set), `run_fields` the RLMConfig fields
a request set, `context_request` what the context is. Results become messages: cells, runs, events,
stored runs, contexts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rlm_proto.v1 import service_pb2 as pb

from ..context.registry import ContextInfo
from ..errors import InvalidInputError
from ..rlm.events import (
    CellFinished,
    CodeStarted,
    Event,
    IterationStarted,
    ModelText,
    ModelTextReset,
    SubCallFinished,
    SubCallStarted,
)
from ..rlm.trajectory import CellRecord, RunMetadata, Trajectory
from ..sandbox.results import CellError, CellResult, Output
from ..status import CellStatus, RunStatus
from ..store.sql import StoredRun

# ---- statuses ----------------------------------------------------------------------------------------

# Each status is its enum value of the same name (RUN_STATUS_COMPLETED for RunStatus.COMPLETED).
RUN_STATUS: dict[RunStatus, Any] = {s: pb.RunStatus.Value(f"RUN_STATUS_{s.name}") for s in RunStatus}
CELL_STATUS: dict[CellStatus, Any] = {s: pb.CellStatus.Value(f"CELL_STATUS_{s.name}") for s in CellStatus}
RUN_STATUS_BACK: dict[int, RunStatus] = {v: k for k, v in RUN_STATUS.items()}
CELL_STATUS_BACK: dict[int, CellStatus] = {v: k for k, v in CELL_STATUS.items()}
STREAM: dict[str, Any] = {"stdout": pb.OUTPUT_STREAM_STDOUT, "stderr": pb.OUTPUT_STREAM_STDERR}
STREAM_BACK: dict[int, str] = {v: k for k, v in STREAM.items()}


def run_status_from(value: int) -> RunStatus:
    if value not in RUN_STATUS_BACK:
        raise InvalidInputError(f"unknown run status {value}")
    return RUN_STATUS_BACK[value]


# ---- requests ------------------------------------------------------------------------------------------

# SandboxOptions field -> limits_from_request key: the same names, each read as the wire gives it.
_SANDBOX_KEYS = (
    "memory",
    "cpus",
    "pids",
    "nofile",
    "tmpfs",
    "file_size",
    "timeout",
    "max_output_bytes",
    "runtime",
)
_RUN_KEYS = (
    "root_model",
    "sub_model",
    "max_depth",
    "max_iterations",
    "max_subcalls",
    "max_tokens",
    "deadline_s",
    "recursive_llm_query",
)


def sandbox_fields(options: pb.SandboxOptions) -> dict[str, object]:
    """The sandbox options the request set, keyed as config.limits_from_request reads them."""
    return {key: getattr(options, key) for key in _SANDBOX_KEYS if options.HasField(key)}


def run_fields(options: pb.RunOptions) -> dict[str, object]:
    """The RLMConfig fields the request set."""
    return {key: getattr(options, key) for key in _RUN_KEYS if options.HasField(key)}


@dataclass(frozen=True, slots=True)
class ContextRequest:
    """A request's context: an uploaded one by id, or inline (a text, a list of texts, a mapping)."""

    context_id: str | None = None
    value: str | list[str] | dict[str, str] | None = None


def context_request(ref: pb.ContextRef) -> ContextRequest:
    kind = ref.WhichOneof("source")
    if kind is None:
        raise InvalidInputError("a context is required: context_id, text, texts or files")
    if kind == "context_id":
        return ContextRequest(context_id=ref.context_id)
    if kind == "text":
        return ContextRequest(value=ref.text)
    if kind == "texts":
        return ContextRequest(value=list(ref.texts.items))
    return ContextRequest(value=dict(ref.files.items))


# ---- cells ---------------------------------------------------------------------------------------------


def _output(out: Output) -> pb.OutputText:
    return pb.OutputText(text=out.text, total_bytes=out.total_bytes, truncated=out.truncated)


def cell_outcome(result: CellResult) -> pb.CellOutcome:
    message = pb.CellOutcome(
        status=CELL_STATUS[result.status],
        stdout=_output(result.stdout),
        stderr=_output(result.stderr),
        final_truncated=result.final_truncated,
        duration_s=result.duration_s,
    )
    if result.error is not None:
        message.error.CopyFrom(
            pb.CellException(
                type=result.error.type, message=result.error.message, traceback=result.error.traceback
            )
        )
    if result.final is not None:
        message.final = result.final
    return message


def cell_result(message: pb.CellOutcome) -> CellResult:
    """The client's side: a CellOutcome back as the orchestrator's CellResult."""
    error = None
    if message.HasField("error"):
        error = CellError(message.error.type, message.error.message, message.error.traceback)
    return CellResult(
        status=CELL_STATUS_BACK.get(message.status, CellStatus.INVALID),
        stdout=Output(message.stdout.text, message.stdout.total_bytes, message.stdout.truncated),
        stderr=Output(message.stderr.text, message.stderr.total_bytes, message.stderr.truncated),
        error=error,
        final=message.final if message.HasField("final") else None,
        final_truncated=message.final_truncated,
        duration_s=message.duration_s,
    )


def output_chunk(stream: str, text: str) -> pb.ExecuteEvent:
    return pb.ExecuteEvent(output=pb.OutputChunk(stream=STREAM[stream], text=text))


# ---- runs ----------------------------------------------------------------------------------------------

_METADATA_FIELDS = (
    "max_depth",
    "actual_depth",
    "iterations",
    "subcall_count",
    "total_s",
    "codegen_s",
    "repl_s",
    "context_bytes",
    "context_files",
    "generated_code_chars",
    "prompt_tokens",
    "completion_tokens",
    "bytes_read",
    "files_read",
    "cache_hit_rate",
    "sandbox_starts",
)


def run_metadata(meta: RunMetadata) -> pb.RunMetadata:
    message = pb.RunMetadata(
        status=RUN_STATUS[meta.status], **{name: getattr(meta, name) for name in _METADATA_FIELDS}
    )
    if meta.cost_usd is not None:
        message.cost_usd = meta.cost_usd
    return message


def metadata_from(message: pb.RunMetadata) -> RunMetadata:
    values: dict[str, Any] = {name: getattr(message, name) for name in _METADATA_FIELDS}
    return RunMetadata(
        status=RUN_STATUS_BACK.get(message.status, RunStatus.ERROR),
        cost_usd=message.cost_usd if message.HasField("cost_usd") else None,
        **values,
    )


def trajectory_json(trajectory: Trajectory) -> str:
    return json.dumps(trajectory.to_json(), ensure_ascii=False, allow_nan=True)


def run_response(run_id: str, trajectory: Trajectory) -> pb.RunResponse:
    message = pb.RunResponse(
        run_id=run_id,
        status=RUN_STATUS[trajectory.status],
        error=trajectory.error or "",
        metadata=run_metadata(trajectory.metadata),
        trajectory_json=trajectory_json(trajectory),
    )
    if trajectory.answer is not None:
        message.answer = trajectory.answer
    return message


def _cell_record(cell: CellRecord) -> pb.CellRecord:
    message = pb.CellRecord(
        code=cell.code,
        status=CELL_STATUS[cell.status],
        stdout=cell.stdout,
        stderr=cell.stderr,
        duration_s=cell.duration_s,
    )
    if cell.error is not None:
        message.error = cell.error
    if cell.final is not None:
        message.final = cell.final
    return message


def run_event(run_id: str, event: Event) -> pb.RunEvent | None:
    """One engine event on the wire; None for an event the stream does not carry (FinalAnswer and
    RunError: the servicer ends the stream with the run's result itself)."""
    if isinstance(event, IterationStarted):
        return pb.RunEvent(
            run_id=run_id,
            iteration_started=pb.IterationStarted(
                index=event.index, depth=event.depth, elapsed_s=event.elapsed_s
            ),
        )
    if isinstance(event, ModelText):
        return pb.RunEvent(run_id=run_id, model_text=pb.ModelText(text=event.text, depth=event.depth))
    if isinstance(event, ModelTextReset):
        return pb.RunEvent(run_id=run_id, model_text_reset=pb.ModelTextReset(depth=event.depth))
    if isinstance(event, CodeStarted):
        return pb.RunEvent(run_id=run_id, code_started=pb.CodeStarted(code=event.code, depth=event.depth))
    if isinstance(event, CellFinished):
        return pb.RunEvent(
            run_id=run_id, cell_finished=pb.CellFinished(cell=_cell_record(event.cell), depth=event.depth)
        )
    if isinstance(event, SubCallStarted):
        return pb.RunEvent(
            run_id=run_id,
            subcall_started=pb.SubCallStarted(
                id=event.id, kind=event.kind, depth=event.depth, prompt_chars=event.prompt_chars
            ),
        )
    if isinstance(event, SubCallFinished):
        r = event.record
        finished = pb.SubCallFinished(
            id=r.id,
            parent=r.parent,
            depth=r.depth,
            kind=r.kind,
            model=r.model,
            prompt_chars=r.prompt_chars,
            reply_chars=r.reply_chars,
            prompt_tokens=r.prompt_tokens,
            completion_tokens=r.completion_tokens,
            duration_s=r.duration_s,
        )
        if r.error is not None:
            finished.error = r.error
        return pb.RunEvent(run_id=run_id, subcall_finished=finished)
    return None


def accepted(run_id: str) -> pb.RunEvent:
    return pb.RunEvent(run_id=run_id, accepted=pb.RunAccepted(run_id=run_id))


def final_event(run_id: str, trajectory: Trajectory) -> pb.RunEvent:
    return pb.RunEvent(run_id=run_id, result=run_response(run_id, trajectory))


def run_summary(run: StoredRun) -> pb.RunSummary:
    message = pb.RunSummary(
        run_id=run.run_id,
        status=RUN_STATUS[run.status],
        query=run.query,
        error=run.error or "",
        root_model=run.root_model,
        created_unix=run.created_unix,
        prompt_tokens=run.prompt_tokens,
        completion_tokens=run.completion_tokens,
    )
    if run.answer is not None:
        message.answer = run.answer
    if run.ended_unix is not None:
        message.ended_unix = run.ended_unix
    if run.cost_usd is not None:
        message.cost_usd = run.cost_usd
    return message


def get_run_response(run: StoredRun, trajectory: Trajectory | None) -> pb.GetRunResponse:
    message = pb.GetRunResponse(run=run_summary(run))
    if run.metadata is not None:
        message.metadata.CopyFrom(run_metadata(run.metadata))
    if trajectory is not None:
        message.trajectory_json = trajectory_json(trajectory)
    return message


def list_runs_response(runs: Iterable[StoredRun], next_token: str) -> pb.ListRunsResponse:
    return pb.ListRunsResponse(runs=[run_summary(r) for r in runs], next_page_token=next_token)


# ---- contexts ------------------------------------------------------------------------------------------


def context_info(info: ContextInfo) -> pb.ContextInfo:
    return pb.ContextInfo(
        context_id=info.context_id,
        name=info.name,
        file_count=info.files,
        total_bytes=info.bytes,
        created_unix=info.created_unix,
        kind=info.kind,
    )
