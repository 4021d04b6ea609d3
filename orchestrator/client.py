"""A small typed client of `rlm serve` (rlm.v1.RLMService): async, with a blocking wrapper.

    async with RLMClient("127.0.0.1:50051", api_key) as client:
        result = await client.execute("print(len(context))", context="some text")
        async with client.session(context_id=ctx.context_id) as s:
            await s.run("x = 1"); print((await s.run("x + 1")).stdout.text)
        run = await client.run("Which service fails most?", context_id=ctx.context_id)
        print(run.answer, run.status, run.metadata.iterations)

Results are the orchestrator's own frozen values (CellResult, RLMResult with its Trajectory,
RunMetadata, RunStatus) or the frozen dataclasses here (RunInfo, RunPage, ContextInfo, OutputChunk,
RunAccepted); protobuf stays inside this module. A refused call raises the RLMError subclass the server
raised (it names the class in the `x-rlm-error` trailer), else the one its status code maps to: NOT_FOUND
is NotFoundError, RESOURCE_EXHAUSTED a QuotaError (`.quota` set) or RunLimitError, INVALID_ARGUMENT an
InvalidInputError, FAILED_PRECONDITION a SandboxClosedError, UNAVAILABLE an EngineUnavailableError,
anything else (UNAUTHENTICATED, DEADLINE_EXCEEDED, ...) a plain RLMError. Each carries `.grpc_code`,
the status name. Contexts: `context=` a text, a list of texts or a dict of name -> text (inline, small),
or `context_id=` one uploaded with `upload_context` (a directory, a .tar/.tar.gz file, or tar bytes).
"""

from __future__ import annotations

import asyncio
import json
import os
import tarfile
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import grpc
from grpc import aio
from rlm_proto.v1 import service_pb2 as pb
from rlm_proto.v1 import service_pb2_grpc as pb_grpc

from . import errors
from .errors import (
    EngineUnavailableError,
    InvalidInputError,
    NotFoundError,
    QuotaError,
    RLMError,
    RunLimitError,
    SandboxClosedError,
)
from .rlm.events import (
    CellFinished,
    CodeStarted,
    Event,
    IterationStarted,
    ModelText,
    ModelTextReset,
    SubCallFinished,
    SubCallStarted,
)
from .rlm.result import RLMResult
from .rlm.trajectory import CellRecord, RunMetadata, SubCallRecord, Trajectory
from .sandbox.results import CellError, CellResult, Output
from .status import CellStatus, RunStatus

T = TypeVar("T")
UPLOAD_CHUNK_BYTES = 1024**2
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024**2

ContextValue = str | Sequence[str] | Mapping[str, str]


# ---- what the client returns ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutputChunk:
    """A piece of a running cell's output: stream is "stdout" or "stderr"."""

    stream: str
    text: str


@dataclass(frozen=True, slots=True)
class RunAccepted:
    """RunStream's first event."""

    run_id: str


@dataclass(frozen=True, slots=True)
class RunInfo:
    run_id: str
    status: RunStatus
    query: str
    answer: str | None
    error: str | None
    root_model: str
    created_unix: float
    ended_unix: float | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    metadata: RunMetadata | None = None  # GetRun: once the run ended
    trajectory: Trajectory | None = None  # GetRun with trajectory=True


@dataclass(frozen=True, slots=True)
class RunPage:
    runs: tuple[RunInfo, ...]
    next_page_token: str  # "": the last page


@dataclass(frozen=True, slots=True)
class ContextInfo:
    context_id: str
    name: str
    kind: str  # "upload" or "directory"
    file_count: int
    total_bytes: int
    created_unix: float


# ---- errors back from status codes ----------------------------------------------------------------------

_BY_CODE: dict[grpc.StatusCode, type[RLMError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInputError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RunLimitError,
    grpc.StatusCode.FAILED_PRECONDITION: SandboxClosedError,
    grpc.StatusCode.UNAVAILABLE: EngineUnavailableError,
}


def error_from(exc: grpc.RpcError) -> RLMError:
    """The RLMError a failed call stands for (see the module's docstring)."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    message = (exc.details() if hasattr(exc, "details") else None) or str(code)
    trailers = dict(exc.trailing_metadata() or ()) if hasattr(exc, "trailing_metadata") else {}
    quota = trailers.get("x-rlm-quota")
    named = {cls.__name__: cls for cls in errors.all_error_classes()}.get(
        str(trailers.get("x-rlm-error", ""))
    )
    error: RLMError | None = None
    if quota is not None or named is QuotaError:
        error = QuotaError(message, quota=str(quota or ""))
    elif named is not None:
        try:
            error = named(message)
        except TypeError:  # a class that needs more than a message (ContextPathError): by code
            error = None
    if error is None:
        error = _BY_CODE.get(code, RLMError)(message)
    error.grpc_code = getattr(code, "name", str(code))  # type: ignore[attr-defined]
    return error


async def _call(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except grpc.RpcError as exc:
        raise error_from(exc) from None


async def _stream(call: Any) -> AsyncIterator[Any]:
    try:
        async for message in call:
            yield message
    except grpc.RpcError as exc:
        raise error_from(exc) from None
    finally:
        call.cancel()  # a no-op once the stream ended; stops the server's work if we left early


# ---- the edge: requests and replies ----------------------------------------------------------------------

_CELL = {v: CellStatus[k.removeprefix("CELL_STATUS_")] for k, v in pb.CellStatus.items() if v}
_RUN = {v: RunStatus[k.removeprefix("RUN_STATUS_")] for k, v in pb.RunStatus.items() if v}
_RUN_BACK = {v: k for k, v in _RUN.items()}
_STREAM = {pb.OUTPUT_STREAM_STDOUT: "stdout", pb.OUTPUT_STREAM_STDERR: "stderr"}
_SIZE_KEYS = ("memory", "tmpfs", "file_size")


def _context(context: ContextValue | None, context_id: str | None) -> pb.ContextRef:
    if (context is None) == (context_id is None):
        raise InvalidInputError("give a context (text, list of texts, or dict) or a context_id, not both")
    if context_id is not None:
        return pb.ContextRef(context_id=context_id)
    if isinstance(context, str):
        return pb.ContextRef(text=context)
    if isinstance(context, Mapping):
        return pb.ContextRef(files=pb.TextMap(items=dict(context)))
    return pb.ContextRef(texts=pb.TextList(items=list(context or ())))


def _sandbox(options: Mapping[str, object] | None) -> pb.SandboxOptions:
    """Sandbox options named as config.limits_from_request names them (memory="256m", cpus=0.5, ...)."""
    values = dict(options or {})
    for key in _SIZE_KEYS:
        if key in values:
            values[key] = str(values[key])
    try:
        return pb.SandboxOptions(**values)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"bad sandbox options: {exc}") from None


def _run_options(options: Mapping[str, object] | None) -> pb.RunOptions:
    try:
        return pb.RunOptions(**dict(options or {}))  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"bad run options: {exc}") from None


def _cell(m: pb.CellOutcome) -> CellResult:
    error = CellError(m.error.type, m.error.message, m.error.traceback) if m.HasField("error") else None
    return CellResult(
        status=_CELL.get(m.status, CellStatus.INVALID),
        stdout=Output(m.stdout.text, m.stdout.total_bytes, m.stdout.truncated),
        stderr=Output(m.stderr.text, m.stderr.total_bytes, m.stderr.truncated),
        error=error,
        final=m.final if m.HasField("final") else None,
        final_truncated=m.final_truncated,
        duration_s=m.duration_s,
    )


def _metadata(m: pb.RunMetadata) -> RunMetadata:
    return RunMetadata(
        status=_RUN.get(m.status, RunStatus.ERROR),
        max_depth=m.max_depth,
        actual_depth=m.actual_depth,
        iterations=m.iterations,
        subcall_count=m.subcall_count,
        total_s=m.total_s,
        codegen_s=m.codegen_s,
        repl_s=m.repl_s,
        context_bytes=m.context_bytes,
        context_files=m.context_files,
        generated_code_chars=m.generated_code_chars,
        prompt_tokens=m.prompt_tokens,
        completion_tokens=m.completion_tokens,
        cost_usd=m.cost_usd if m.HasField("cost_usd") else None,
        bytes_read=m.bytes_read,
        files_read=m.files_read,
        cache_hit_rate=m.cache_hit_rate,
        sandbox_starts=m.sandbox_starts,
    )


def _trajectory(text: str) -> Trajectory | None:
    return Trajectory.from_json(json.loads(text)) if text else None


def _result(m: pb.RunResponse) -> RLMResult:
    trajectory = _trajectory(m.trajectory_json)
    if trajectory is None:  # never from our server; a minimal one rather than a crash
        trajectory = Trajectory("", None, _RUN.get(m.status, RunStatus.ERROR), m.error, _metadata(m.metadata))
    answer = m.answer if m.HasField("answer") else None
    return RLMResult(answer, _RUN.get(m.status, RunStatus.ERROR), trajectory, m.run_id)


def _run_info(m: pb.RunSummary, meta: pb.RunMetadata | None = None, trajectory: str = "") -> RunInfo:
    return RunInfo(
        run_id=m.run_id,
        status=_RUN.get(m.status, RunStatus.ERROR),
        query=m.query,
        answer=m.answer if m.HasField("answer") else None,
        error=m.error or None,
        root_model=m.root_model,
        created_unix=m.created_unix,
        ended_unix=m.ended_unix if m.HasField("ended_unix") else None,
        prompt_tokens=m.prompt_tokens,
        completion_tokens=m.completion_tokens,
        cost_usd=m.cost_usd if m.HasField("cost_usd") else None,
        metadata=_metadata(meta) if meta is not None else None,
        trajectory=_trajectory(trajectory),
    )


def _context_info(m: pb.ContextInfo) -> ContextInfo:
    return ContextInfo(m.context_id, m.name, m.kind, m.file_count, m.total_bytes, m.created_unix)


def _event(m: pb.RunEvent) -> Event | RunAccepted | RLMResult | None:
    kind = m.WhichOneof("kind")
    if kind == "accepted":
        return RunAccepted(m.accepted.run_id)
    if kind == "iteration_started":
        e = m.iteration_started
        return IterationStarted(e.index, e.depth, e.elapsed_s)
    if kind == "model_text":
        return ModelText(m.model_text.text, m.model_text.depth)
    if kind == "model_text_reset":
        return ModelTextReset(m.model_text_reset.depth)
    if kind == "code_started":
        return CodeStarted(m.code_started.code, m.code_started.depth)
    if kind == "cell_finished":
        c = m.cell_finished.cell
        record = CellRecord(
            c.code,
            _CELL.get(c.status, CellStatus.INVALID),
            c.stdout,
            c.stderr,
            c.error if c.HasField("error") else None,
            c.final if c.HasField("final") else None,
            c.duration_s,
        )
        return CellFinished(record, m.cell_finished.depth)
    if kind == "subcall_started":
        s = m.subcall_started
        return SubCallStarted(s.id, s.kind, s.depth, s.prompt_chars)
    if kind == "subcall_finished":
        f = m.subcall_finished
        return SubCallFinished(
            SubCallRecord(
                f.id,
                f.parent,
                f.depth,
                f.kind,
                f.model,
                f.prompt_chars,
                f.reply_chars,
                f.prompt_tokens,
                f.completion_tokens,
                f.duration_s,
                f.error if f.HasField("error") else None,
            )
        )
    if kind == "result":
        return _result(m.result)
    return None


def _archive(source: str | os.PathLike[str] | bytes) -> tuple[Iterator[bytes], Callable[[], None]]:
    """The upload's bytes in chunks: tar bytes as given, a .tar/.tar.gz file as it is, a directory
    packed (gzip) into a temporary file first. Also a function that removes what was made."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        chunks = (data[i : i + UPLOAD_CHUNK_BYTES] for i in range(0, len(data), UPLOAD_CHUNK_BYTES))
        return chunks, lambda: None
    path = Path(source)
    handle: IO[bytes]
    if path.is_dir():
        handle = tempfile.TemporaryFile()
        with tarfile.open(fileobj=handle, mode="w:gz") as tar:
            for child in sorted(path.iterdir()):
                tar.add(child, arcname=child.name)
        handle.seek(0)
    elif path.is_file():
        handle = path.open("rb")
    else:
        raise InvalidInputError(f"nothing to upload at {path}: not a directory or an archive")

    def read() -> Iterator[bytes]:
        while data := handle.read(UPLOAD_CHUNK_BYTES):
            yield data

    return read(), handle.close


# ---- the client -------------------------------------------------------------------------------------------


class RLMClient:
    """One channel to `rlm serve`, authenticated with one tenant's API key. Use inside an event loop."""

    def __init__(
        self,
        address: str,
        api_key: str,
        *,
        tls_ca: str | os.PathLike[str] | None = None,
        client_cert: str | os.PathLike[str] | None = None,
        client_key: str | os.PathLike[str] | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ]
        if tls_ca is not None or client_cert is not None:
            from .server.tls import channel_credentials

            creds = channel_credentials(tls_ca, client_cert, client_key)
            self._channel = aio.secure_channel(address, creds, options=options)
        else:
            self._channel = aio.insecure_channel(address, options=options)
        self._stub = pb_grpc.RLMServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),)

    async def __aenter__(self) -> RLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    def _kw(self, deadline: float | None) -> dict[str, Any]:
        return {"metadata": self._metadata, "timeout": deadline}

    # -- cells ----------------------------------------------------------------------------------------

    async def execute(
        self,
        code: str,
        *,
        context: ContextValue | None = None,
        context_id: str | None = None,
        sandbox: Mapping[str, object] | None = None,
        deadline: float | None = None,
    ) -> CellResult:
        """Run `code` once in a fresh sandbox over the context; the cell's result."""
        request = pb.ExecuteRequest(
            context=_context(context, context_id), code=code, sandbox=_sandbox(sandbox)
        )
        reply = await _call(self._stub.Execute(request, **self._kw(deadline)))
        return _cell(reply.result)

    async def execute_stream(
        self,
        code: str,
        *,
        context: ContextValue | None = None,
        context_id: str | None = None,
        sandbox: Mapping[str, object] | None = None,
        deadline: float | None = None,
    ) -> AsyncIterator[OutputChunk | CellResult]:
        """As execute, yielding OutputChunks as the code writes them, then the CellResult."""
        request = pb.ExecuteRequest(
            context=_context(context, context_id), code=code, sandbox=_sandbox(sandbox)
        )
        async for event in _stream(self._stub.ExecuteStream(request, **self._kw(deadline))):
            if event.WhichOneof("kind") == "output":
                yield OutputChunk(_STREAM.get(event.output.stream, "stdout"), event.output.text)
            else:
                yield _cell(event.result)

    async def open_session(
        self,
        *,
        context: ContextValue | None = None,
        context_id: str | None = None,
        sandbox: Mapping[str, object] | None = None,
        deadline: float | None = None,
    ) -> str:
        request = pb.OpenSessionRequest(context=_context(context, context_id), sandbox=_sandbox(sandbox))
        reply = await _call(self._stub.OpenSession(request, **self._kw(deadline)))
        return reply.session_id

    async def run_cell(
        self,
        session_id: str,
        code: str,
        *,
        timeout_s: float | None = None,
        max_output_bytes: int | None = None,
        deadline: float | None = None,
    ) -> CellResult:
        """One cell in the session (`timeout_s`: the cell's own limit; `deadline`: the call's, in seconds)."""
        request = pb.RunCellRequest(session_id=session_id, code=code)
        if timeout_s is not None:
            request.timeout_s = timeout_s
        if max_output_bytes is not None:
            request.max_output_bytes = max_output_bytes
        reply = await _call(self._stub.RunCell(request, **self._kw(deadline)))
        return _cell(reply.result)

    async def close_session(self, session_id: str, *, deadline: float | None = None) -> None:
        await _call(
            self._stub.CloseSession(pb.CloseSessionRequest(session_id=session_id), **self._kw(deadline))
        )

    def session(
        self,
        *,
        context: ContextValue | None = None,
        context_id: str | None = None,
        sandbox: Mapping[str, object] | None = None,
    ) -> Session:
        """`async with client.session(context=...) as s: await s.run(code)`; closed on exit."""
        return Session(self, context, context_id, sandbox)

    # -- runs -----------------------------------------------------------------------------------------

    def _run_request(
        self,
        query: str,
        context: ContextValue | None,
        context_id: str | None,
        options: Mapping[str, object] | None,
        sandbox: Mapping[str, object] | None,
        continue_run_id: str = "",
        keep_sandbox: bool = False,
    ) -> pb.RunRequest:
        # A continued run may bring no context (it has the conversation's).
        none = continue_run_id and context is None and context_id is None
        return pb.RunRequest(
            context=pb.ContextRef() if none else _context(context, context_id),
            query=query,
            options=_run_options(options),
            sandbox=_sandbox(sandbox),
            continue_run_id=continue_run_id,
            keep_sandbox=keep_sandbox,
        )

    async def run(
        self,
        query: str,
        *,
        context: ContextValue | None = None,
        context_id: str | None = None,
        options: Mapping[str, object] | None = None,
        sandbox: Mapping[str, object] | None = None,
        deadline: float | None = None,
        continue_run_id: str = "",
        keep_sandbox: bool = False,
    ) -> RLMResult:
        """One RLM run to its end. `options`: RunOptions' fields (root_model, max_iterations, ...).
        `keep_sandbox` keeps its sandbox for a follow-up run naming it in `continue_run_id`."""
        request = self._run_request(
            query, context, context_id, options, sandbox, continue_run_id, keep_sandbox
        )
        return _result(await _call(self._stub.Run(request, **self._kw(deadline))))

    async def run_stream(
        self,
        query: str,
        *,
        context: ContextValue | None = None,
        context_id: str | None = None,
        options: Mapping[str, object] | None = None,
        sandbox: Mapping[str, object] | None = None,
        deadline: float | None = None,
        continue_run_id: str = "",
        keep_sandbox: bool = False,
    ) -> AsyncIterator[Event | RunAccepted | RLMResult]:
        """RunAccepted (the run id), the engine's events (orchestrator.rlm.events), then the RLMResult."""
        request = self._run_request(
            query, context, context_id, options, sandbox, continue_run_id, keep_sandbox
        )
        async for message in _stream(self._stub.RunStream(request, **self._kw(deadline))):
            event = _event(message)
            if event is not None:
                yield event

    async def get_run(
        self, run_id: str, *, trajectory: bool = False, deadline: float | None = None
    ) -> RunInfo:
        request = pb.GetRunRequest(run_id=run_id, include_trajectory=trajectory)
        reply = await _call(self._stub.GetRun(request, **self._kw(deadline)))
        return _run_info(
            reply.run, reply.metadata if reply.HasField("metadata") else None, reply.trajectory_json
        )

    async def list_runs(
        self,
        *,
        statuses: Iterable[RunStatus | str] = (),
        created_after: float | None = None,
        created_before: float | None = None,
        page_size: int = 0,
        page_token: str = "",
        deadline: float | None = None,
    ) -> RunPage:
        """One page of this tenant's runs, newest first; pass `next_page_token` for the next."""
        request = pb.ListRunsRequest(
            page_size=page_size,
            page_token=page_token,
            statuses=[_RUN_BACK[RunStatus(s)] for s in statuses],
        )
        if created_after is not None:
            request.created_after_unix = created_after
        if created_before is not None:
            request.created_before_unix = created_before
        reply = await _call(self._stub.ListRuns(request, **self._kw(deadline)))
        return RunPage(tuple(_run_info(r) for r in reply.runs), reply.next_page_token)

    async def cancel_run(self, run_id: str, *, deadline: float | None = None) -> RunStatus:
        """Stop a running run; its status once stopped (CANCELLED, or how it had ended)."""
        reply = await _call(self._stub.CancelRun(pb.CancelRunRequest(run_id=run_id), **self._kw(deadline)))
        return _RUN.get(reply.status, RunStatus.ERROR)

    # -- contexts -------------------------------------------------------------------------------------

    async def upload_context(
        self,
        source: str | os.PathLike[str] | bytes,
        *,
        name: str | None = None,
        deadline: float | None = None,
    ) -> ContextInfo:
        """Upload a directory, a .tar/.tar.gz file, or tar bytes; the stored context."""
        label = name or (Path(source).name if not isinstance(source, bytes | bytearray) else "upload")
        chunks, done = await asyncio.to_thread(_archive, source)

        async def requests() -> AsyncIterator[pb.UploadContextRequest]:
            yield pb.UploadContextRequest(header=pb.UploadHeader(name=label))
            while (data := await asyncio.to_thread(next, chunks, None)) is not None:
                yield pb.UploadContextRequest(chunk=data)

        try:
            reply = await _call(self._stub.UploadContext(requests(), **self._kw(deadline)))
        finally:
            await asyncio.to_thread(done)
        return _context_info(reply)

    async def list_contexts(self, *, deadline: float | None = None) -> tuple[ContextInfo, ...]:
        reply = await _call(self._stub.ListContexts(pb.ListContextsRequest(), **self._kw(deadline)))
        return tuple(_context_info(c) for c in reply.contexts)

    async def delete_context(self, context_id: str, *, deadline: float | None = None) -> None:
        await _call(
            self._stub.DeleteContext(pb.DeleteContextRequest(context_id=context_id), **self._kw(deadline))
        )


class Session:
    """A REPL session of the server, as an async context manager (opened on enter, closed on exit)."""

    def __init__(
        self,
        client: RLMClient,
        context: ContextValue | None,
        context_id: str | None,
        sandbox: Mapping[str, object] | None,
    ) -> None:
        self._client = client
        self._open = (context, context_id, sandbox)
        self.session_id = ""

    async def __aenter__(self) -> Session:
        context, context_id, sandbox = self._open
        self.session_id = await self._client.open_session(
            context=context, context_id=context_id, sandbox=sandbox
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session_id:
            try:
                await self._client.close_session(self.session_id)
            except (NotFoundError, SandboxClosedError):
                pass  # expired, or its sandbox ended: nothing left to close

    async def run(self, code: str, **options: Any) -> CellResult:
        return await self._client.run_cell(self.session_id, code, **options)


class SyncRLMClient:
    """RLMClient for code without an event loop: the same methods, blocking, on a private loop.
    Streaming methods return lists."""

    def __init__(self, address: str, api_key: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._client: RLMClient = self._loop.run_until_complete(self._make(address, api_key, options))

    @staticmethod
    async def _make(address: str, api_key: str, options: dict[str, Any]) -> RLMClient:
        return RLMClient(address, api_key, **options)

    def __enter__(self) -> SyncRLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._loop.is_closed():
            self._loop.run_until_complete(self._client.close())
            self._loop.close()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name in ("execute_stream", "run_stream"):
            return lambda *a, **kw: self._loop.run_until_complete(_collect(method(*a, **kw)))
        if name == "session":
            raise AttributeError("session() is async only: use open_session/run_cell/close_session")
        return lambda *a, **kw: self._loop.run_until_complete(method(*a, **kw))


async def _collect(stream: AsyncIterator[T]) -> list[T]:
    return [item async for item in stream]


__all__ = [
    "ContextInfo",
    "OutputChunk",
    "RLMClient",
    "RunAccepted",
    "RunInfo",
    "RunPage",
    "Session",
    "SyncRLMClient",
    "error_from",
]
