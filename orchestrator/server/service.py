"""The servicer of rlm.v1.RLMService: convert, delegate to the one Orchestrator, convert back.

Every handler finds its tenant (`current_tenant()`, set by the auth interceptor), asks the quota policy
before acting, and runs on the orchestrator; protobuf is read and written in convert.py only. Errors
leave by one path (`_unary` / `_stream`): one of ours (RLMError) becomes its status from errors.WIRE with
its message, its class in the `x-rlm-error` trailer; a QuotaError's message starts with `quota <name>:`
and the `x-rlm-quota` trailer names it. Another tenant's run, session or context is looked up exactly as
a missing one, so the NotFoundError (and its text) is the same.

Runs are tasks of the servicer (`_active`), so CancelRun can stop one and a drain can stop them all;
the handler that started a run waits for it, and its own cancellation (the client's cancel or
deadline) cancels the run and waits until the run's sandboxes are removed. A cancelled run is
recorded as cancelled: the engine records its levels' endings, and `ServerRecorder.end_unfinished`
writes the run's.

Tokens per day: every model call of a run is charged to its tenant from the run's records, as they are
written (`ServerRecorder`): IterationRecorded (the root's and child RLMs' own replies) and
SubCallRecorded of kind "llm" (an `llm_query`; an "rlm" sub-call's tokens are its child's iterations,
already counted). Records rather than a wrapped provider, because sub-calls are answered by the
sandbox's own host server, where no per-call context says whose run it is, and the Orchestrator has
one provider for all runs. After charging, a tenant at its quota gets QuotaError from the write: an
`llm_query` then fails in the sandbox with LimitExceededError, and the run ends at its next model
reply with status `error` and the quota named in `error`; a run is refused before it starts
(RESOURCE_EXHAUSTED) when the day's quota is already spent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import grpc
from grpc import aio
from rlm_proto.v1 import service_pb2 as pb
from rlm_proto.v1 import service_pb2_grpc as pb_grpc

from ..config import RLMConfig, Runtime, SandboxLimits
from ..context.registry import ContextRegistry
from ..context.sources import ContextSource, InMemoryContext
from ..core import Orchestrator
from ..errors import (
    InvalidInputError,
    NotFoundError,
    QuotaError,
    RLMError,
    grpc_status,
)
from ..rlm.events import Event
from ..rlm.records import (
    IterationRecorded,
    Record,
    RunEnded,
    RunStarted,
    SubCallRecorded,
    build_trajectory,
)
from ..rlm.result import RLMResult
from ..rlm.trajectory import Trajectory
from ..sandbox.session import SandboxSession
from ..status import RunStatus
from ..store.sql import SqlRunStore
from . import convert
from .auth import ERROR_TRAILER, QUOTA_TRAILER
from .metrics import Metrics
from .quotas import QuotaPolicy
from .sessions import SessionRegistry
from .tenants import Tenant

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
CANCELLED_REASON = "the run was cancelled"


class Unimplemented(Exception):
    """A request field the server reserves but does not serve yet: UNIMPLEMENTED."""


# ---- the recorder in front of the store ------------------------------------------------------------


@dataclass
class _RunState:
    tenant: Tenant
    started: bool = False
    ended: bool = False
    records: list[Record] = field(default_factory=list)


class ServerRecorder:
    """The orchestrator's RunRecorder in the server: every record goes to the run store; the records
    of a run bound to a tenant also charge its model calls' tokens (see the module's docstring), and
    are kept until the run ends so an unfinished run can be ended (`end_unfinished`)."""

    def __init__(self, store: Any, policy: QuotaPolicy, metrics: Metrics | None = None) -> None:
        self._store = store
        self._policy = policy
        self._metrics = metrics
        self._runs: dict[str, _RunState] = {}

    def bind(self, run_id: str, tenant: Tenant) -> None:
        self._runs[run_id] = _RunState(tenant)

    def unbind(self, run_id: str) -> None:
        self._runs.pop(run_id, None)

    def records(self, run_id: str) -> list[Record]:
        state = self._runs.get(run_id)
        return list(state.records) if state is not None else []

    async def write(self, record: Record) -> None:
        await self._store.write(record)
        if isinstance(record, RunEnded) and self._metrics is not None:
            self._metrics.run_ended(record.status.value)
        state = self._runs.get(record.run_id)
        if state is None:
            return
        state.records.append(record)
        if isinstance(record, RunStarted):
            state.started = True
        elif isinstance(record, RunEnded):
            state.ended = True
        tokens = 0
        if isinstance(record, IterationRecorded):
            tokens = record.iteration.prompt_tokens + record.iteration.completion_tokens
        elif isinstance(record, SubCallRecorded) and record.subcall.kind == "llm":
            tokens = record.subcall.prompt_tokens + record.subcall.completion_tokens
        if tokens:
            await self._policy.charge_tokens(state.tenant, tokens)
            await self._policy.check_tokens(state.tenant)  # QuotaError once the day's quota is spent

    async def end_unfinished(self, run_id: str, status: RunStatus, error: str) -> None:
        """Write the RunEnded a run never wrote (it was cancelled), from its root level's ending."""
        state = self._runs.get(run_id)
        if state is None or not state.started or state.ended:
            return
        trajectory = build_trajectory(state.records)
        metadata = replace(trajectory.metadata, status=status)
        await self.write(RunEnded(run_id, status, trajectory.answer, error, metadata, time.time()))


# ---- the error path ----------------------------------------------------------------------------------


async def _abort(context: aio.ServicerContext, exc: BaseException) -> None:
    """The one way an error leaves: its status (errors.WIRE), its message, and trailers naming its
    class (`x-rlm-error`, which the client raises again) and, for a quota, the quota (`x-rlm-quota`)."""
    if isinstance(exc, Unimplemented):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, str(exc))
    assert isinstance(exc, RLMError)
    message = exc.message
    trailers = [(ERROR_TRAILER, type(exc).__name__)]
    if isinstance(exc, QuotaError):
        trailers.append((QUOTA_TRAILER, exc.quota))
        prefix = f"quota {exc.quota}: "
        message = message if message.startswith(prefix) else prefix + message
    context.set_trailing_metadata(tuple(trailers))
    await context.abort(grpc.StatusCode[grpc_status(exc)], message)


def _unary(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    @functools.wraps(method)
    async def handler(self: Any, request: Any, context: aio.ServicerContext) -> T:
        try:
            return await method(self, request, context)
        except (RLMError, Unimplemented) as exc:
            await _abort(context, exc)
            raise AssertionError("unreachable: abort raises") from exc

    return handler


def _stream(method: Callable[..., AsyncIterator[T]]) -> Callable[..., AsyncIterator[T]]:
    @functools.wraps(method)
    async def handler(self: Any, request: Any, context: aio.ServicerContext) -> AsyncIterator[T]:
        try:
            async for message in method(self, request, context):
                yield message
        except (RLMError, Unimplemented) as exc:
            await _abort(context, exc)

    return handler


# ---- the servicer ------------------------------------------------------------------------------------


@dataclass(eq=False)
class _ActiveRun:
    tenant: str
    task: asyncio.Task[Any]


class RLMServicer(pb_grpc.RLMServiceServicer):
    """rlm.v1.RLMService over one Orchestrator. Thin: see the module's docstring."""

    def __init__(
        self,
        orchestrator: Orchestrator,
        *,
        store: SqlRunStore,
        recorder: ServerRecorder,
        registry: ContextRegistry,
        policy: QuotaPolicy,
        sessions: SessionRegistry,
        current_tenant: Callable[[], Tenant],
        kept: SessionRegistry | None = None,
    ) -> None:
        self._orch = orchestrator
        self._store = store
        self._recorder = recorder
        self._registry = registry
        self._policy = policy
        self._sessions = sessions
        # Runs kept for continuing (keep_sandbox), by run id; idle ones close as sessions do.
        self._kept = kept if kept is not None else SessionRegistry(sessions.idle_s)
        self._tenant = current_tenant
        self._active: dict[str, _ActiveRun] = {}

    @property
    def active_runs(self) -> int:
        return len(self._active)

    # -- what requests share --------------------------------------------------------------------------

    async def _source(self, tenant: Tenant, ref: pb.ContextRef) -> ContextSource:
        wanted = convert.context_request(ref)
        if wanted.context_id is not None:
            return await self._registry.source(tenant.name, wanted.context_id)
        assert wanted.value is not None
        return await asyncio.to_thread(InMemoryContext, wanted.value)

    @contextlib.asynccontextmanager
    async def _sandbox(
        self, tenant: Tenant, ref: pb.ContextRef, options: pb.SandboxOptions
    ) -> AsyncIterator[SandboxSession]:
        """A fresh sandbox over the request's context, within the tenant's limits, holding one of its
        sandboxes for as long as it lives."""
        limits, runtime = self._policy.sandbox_limits(
            tenant, self._orch.settings.sandbox.limits, convert.sandbox_fields(options)
        )
        async with self._policy.sandbox(tenant):
            source = await self._source(tenant, ref)
            try:
                async with self._orch.open_sandbox(
                    source, runtime=runtime, limits=limits, tenant=tenant.name
                ) as session:
                    yield session
            finally:
                await asyncio.to_thread(source.close)

    def _run_config(self, tenant: Tenant, requested: Mapping[str, object]) -> RLMConfig:
        """The operator's run settings, lowered where the request asks, within the tenant's quotas."""
        base = self._orch.settings.run
        changes: dict[str, Any] = {}
        for key, value in requested.items():
            if key in ("root_model", "sub_model", "recursive_llm_query"):
                changes[key] = value
                continue
            limit = getattr(base, key)
            if key == "deadline_s" and (not isinstance(value, float) or not math.isfinite(value)):
                raise InvalidInputError(f"deadline_s must be a finite number, got {value!r}")
            if value > limit:
                raise InvalidInputError(f"{key} {value!r} is above this operator's limit of {limit}")
            changes[key] = value
        config = replace(base, **changes)
        self._policy.check_model(tenant, config.root_model)
        self._policy.check_model(tenant, config.sub)
        allowed = []
        for model in config.allowed_models:  # models code may name: the operator's the tenant may use
            try:
                self._policy.check_model(tenant, model)
            except QuotaError:
                continue
            allowed.append(model)
        if "deadline_s" in changes:  # asked for: refused above the tenant's max_run_s
            deadline = self._policy.run_deadline(tenant, config.deadline_s)
        else:  # the operator's, within the tenant's max_run_s
            deadline = min(config.deadline_s, self._policy.run_deadline(tenant, None))
        return replace(config, allowed_models=tuple(allowed), deadline_s=deadline)

    # -- Execute --------------------------------------------------------------------------------------

    @_unary
    async def Execute(self, request: pb.ExecuteRequest, context: aio.ServicerContext) -> pb.ExecuteResponse:
        tenant = self._tenant()
        _check_code(request.code)
        async with self._sandbox(tenant, request.context, request.sandbox) as session:
            result = await session.run(request.code)
        return pb.ExecuteResponse(result=convert.cell_outcome(result))

    @_stream
    async def ExecuteStream(
        self, request: pb.ExecuteRequest, context: aio.ServicerContext
    ) -> AsyncIterator[pb.ExecuteEvent]:
        tenant = self._tenant()
        _check_code(request.code)
        async with self._sandbox(tenant, request.context, request.sandbox) as session:
            pieces: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue()
            cell = asyncio.create_task(
                session.run(request.code, on_output=lambda stream, text: pieces.put_nowait((stream, text)))
            )
            cell.add_done_callback(lambda _task: pieces.put_nowait(None))
            try:
                while (piece := await pieces.get()) is not None:
                    yield convert.output_chunk(*piece)
                result = cell.result()
            finally:
                if not cell.done():
                    cell.cancel()
                    await asyncio.gather(cell, return_exceptions=True)
        yield pb.ExecuteEvent(result=convert.cell_outcome(result))

    # -- sessions -------------------------------------------------------------------------------------

    @_unary
    async def OpenSession(
        self, request: pb.OpenSessionRequest, context: aio.ServicerContext
    ) -> pb.OpenSessionResponse:
        tenant = self._tenant()
        stack = AsyncExitStack()
        try:
            session = await stack.enter_async_context(self._sandbox(tenant, request.context, request.sandbox))
            session_id = await self._sessions.add(tenant.name, session, stack)
        except BaseException:
            await asyncio.shield(stack.aclose())
            raise
        return pb.OpenSessionResponse(
            session_id=session_id, idle_timeout_s=self._sessions.idle_s, runtime=session.spec.runtime.value
        )

    @_unary
    async def RunCell(self, request: pb.RunCellRequest, context: aio.ServicerContext) -> pb.RunCellResponse:
        tenant = self._tenant()
        timeout = request.timeout_s if request.HasField("timeout_s") else None
        cap = request.max_output_bytes if request.HasField("max_output_bytes") else None
        async with self._sessions.use(tenant.name, request.session_id) as session:
            result = await session.run(request.code, timeout_s=timeout, max_output_bytes=cap)
        return pb.RunCellResponse(result=convert.cell_outcome(result))

    @_unary
    async def CloseSession(
        self, request: pb.CloseSessionRequest, context: aio.ServicerContext
    ) -> pb.CloseSessionResponse:
        await self._sessions.close(self._tenant().name, request.session_id)
        return pb.CloseSessionResponse()

    # -- runs -----------------------------------------------------------------------------------------

    async def _start_run(
        self, tenant: Tenant, request: pb.RunRequest, emit: Callable[[Event], None] | None
    ) -> tuple[str, asyncio.Task[Trajectory]]:
        """Check the request, then start the run as a task of the servicer; its id and task."""
        follows, keep = request.continue_run_id, request.keep_sandbox
        if follows:
            self._kept.check(tenant.name, follows)  # NOT_FOUND now, before anything starts
        if not request.query.strip():
            raise InvalidInputError("the query must be a non-empty string")
        config = self._run_config(tenant, convert.run_fields(request.options))
        limits, runtime = self._policy.sandbox_limits(
            tenant, self._orch.settings.sandbox.limits, convert.sandbox_fields(request.sandbox)
        )
        await self._policy.check_tokens(tenant)
        run_id = secrets.token_hex(8)
        ref = request.context
        query = request.query

        async def run() -> Trajectory:
            self._recorder.bind(run_id, tenant)
            try:
                if follows or keep:
                    turn = await self._conversation(
                        tenant, ref, query, follows, keep, config, runtime, limits, emit, run_id
                    )
                    return turn.trajectory
                async with self._policy.sandbox(tenant):
                    source = await self._source(tenant, ref)
                    try:
                        result = await self._orch.run(
                            context=source,
                            query=query,
                            config=config,
                            runtime=runtime,
                            limits=limits,
                            tenant=tenant.name,
                            emit=emit,
                            stream=emit is not None,
                            run_id=run_id,
                            sandbox_lease=lambda: self._policy.sandbox(tenant),  # child RLMs' sandboxes
                        )
                    finally:
                        await asyncio.to_thread(source.close)
                return result.trajectory
            except asyncio.CancelledError:
                await asyncio.shield(
                    self._recorder.end_unfinished(run_id, RunStatus.CANCELLED, CANCELLED_REASON)
                )
                raise
            finally:
                self._recorder.unbind(run_id)
                self._active.pop(run_id, None)

        task = asyncio.create_task(run(), name=f"rlm-run-{run_id}")
        self._active[run_id] = _ActiveRun(tenant.name, task)
        return run_id, task

    async def _conversation(
        self,
        tenant: Tenant,
        ref: pb.ContextRef,
        query: str,
        follows: str,
        keep: bool,
        config: RLMConfig,
        runtime: Runtime,
        limits: SandboxLimits,
        emit: Callable[[Event], None] | None,
        run_id: str,
    ) -> RLMResult:
        """A run that starts a conversation (keep_sandbox) or continues one (continue_run_id): the
        earlier turns' sandbox and namespace, their answers as `history`, a new context as context_N.
        A kept conversation holds one of the tenant's sandboxes until it ends or sits idle for
        server.session_idle_s; it is found by the id of any of its runs."""
        stream = emit is not None
        if follows:
            later = None
            if ref.WhichOneof("source") is not None:
                wanted = convert.context_request(ref)
                if wanted.context_id is not None:
                    raise InvalidInputError(
                        "a continued run adds its context inline (a text, texts or files): a stored "
                        "context cannot be mounted into a sandbox already running"
                    )
                later = wanted.value
            async with self._kept.use(tenant.name, follows) as conversation:
                turn = await conversation.query(query, context=later, emit=emit, stream=stream, run_id=run_id)
                if keep:
                    self._kept.alias(tenant.name, follows, run_id)
            if not keep:
                await self._kept.close(tenant.name, follows)
            return turn
        stack = AsyncExitStack()
        try:
            await stack.enter_async_context(self._policy.sandbox(tenant))
            source = await self._source(tenant, ref)
            stack.push_async_callback(asyncio.to_thread, source.close)
            conversation = self._orch.session(
                source, config=config, runtime=runtime, limits=limits, tenant=tenant.name
            )
            stack.push_async_callback(conversation.aclose)
            turn = await conversation.query(query, emit=emit, stream=stream, run_id=run_id)
        except BaseException:
            await asyncio.shield(stack.aclose())
            raise
        await self._kept.add(tenant.name, conversation, stack, session_id=run_id)
        return turn

    async def _outcome(self, tenant: Tenant, run_id: str, task: asyncio.Task[Trajectory]) -> Trajectory:
        """The run's trajectory once its task is done: a cancelled run's, rebuilt from the store."""
        if not task.cancelled():
            return task.result()  # an RLMError raised before the run started leaves from here
        trajectory = await self._store.trajectory(tenant.name, run_id)
        if trajectory is None:
            raise RLMError(f"run {run_id} was cancelled before it started")
        return trajectory

    async def _wait(self, task: asyncio.Task[Trajectory]) -> None:
        """Wait for the run; if the handler is cancelled (the client's cancel or deadline, a drain),
        cancel the run and wait until it has cleaned up (its sandboxes removed, its end recorded)."""
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise

    @_unary
    async def Run(self, request: pb.RunRequest, context: aio.ServicerContext) -> pb.RunResponse:
        tenant = self._tenant()
        run_id, task = await self._start_run(tenant, request, None)
        await self._wait(task)
        return convert.run_response(run_id, await self._outcome(tenant, run_id, task))

    @_stream
    async def RunStream(
        self, request: pb.RunRequest, context: aio.ServicerContext
    ) -> AsyncIterator[pb.RunEvent]:
        tenant = self._tenant()
        events: asyncio.Queue[Event | None] = asyncio.Queue()
        run_id, task = await self._start_run(tenant, request, events.put_nowait)
        task.add_done_callback(lambda _task: events.put_nowait(None))
        try:
            yield convert.accepted(run_id)
            while (event := await events.get()) is not None:
                message = convert.run_event(run_id, event)
                if message is not None:
                    yield message
            yield convert.final_event(run_id, await self._outcome(tenant, run_id, task))
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    @_unary
    async def GetRun(self, request: pb.GetRunRequest, context: aio.ServicerContext) -> pb.GetRunResponse:
        tenant = self._tenant()
        run = await self._store.get_run(tenant.name, request.run_id)
        if run is None:
            raise _no_run(request.run_id)
        trajectory = None
        if request.include_trajectory:
            trajectory = await self._store.trajectory(tenant.name, request.run_id)
        return convert.get_run_response(run, trajectory)

    @_unary
    async def ListRuns(
        self, request: pb.ListRunsRequest, context: aio.ServicerContext
    ) -> pb.ListRunsResponse:
        tenant = self._tenant()
        size = request.page_size or DEFAULT_PAGE_SIZE
        if size > MAX_PAGE_SIZE:
            raise InvalidInputError(f"page_size is at most {MAX_PAGE_SIZE}, got {size}")
        runs, token = await self._store.list_runs(
            tenant.name,
            statuses=[convert.run_status_from(s) for s in request.statuses],
            since_unix=request.created_after_unix if request.HasField("created_after_unix") else None,
            until_unix=request.created_before_unix if request.HasField("created_before_unix") else None,
            page_size=size,
            page_token=request.page_token,
        )
        return convert.list_runs_response(runs, token)

    @_unary
    async def CancelRun(
        self, request: pb.CancelRunRequest, context: aio.ServicerContext
    ) -> pb.CancelRunResponse:
        tenant = self._tenant()
        active = self._active.get(request.run_id)
        if active is not None and active.tenant == tenant.name:
            active.task.cancel()
            await asyncio.gather(active.task, return_exceptions=True)
        run = await self._store.get_run(tenant.name, request.run_id)
        if run is None:
            raise _no_run(request.run_id)
        return pb.CancelRunResponse(status=convert.RUN_STATUS[run.status])

    async def drain(self) -> None:
        """Cancel every run still going and wait until each has cleaned up and recorded its end."""
        tasks = [a.task for a in self._active.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- contexts -------------------------------------------------------------------------------------

    @_unary
    async def UploadContext(
        self, request_iterator: AsyncIterator[pb.UploadContextRequest], context: aio.ServicerContext
    ) -> pb.ContextInfo:
        tenant = self._tenant()
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("kind") != "header":
            raise InvalidInputError("an upload starts with its header (the context's name)")
        upload = await self._registry.create_upload(
            tenant.name, first.header.name, tenant.quotas.context_bytes
        )
        try:
            async for message in request_iterator:
                if message.WhichOneof("kind") != "chunk":
                    raise InvalidInputError("after the header, an upload sends only chunks of the archive")
                await upload.feed(message.chunk)
            info = await upload.finish()
        except BaseException:
            await asyncio.shield(upload.abort())
            raise
        return convert.context_info(info)

    @_unary
    async def ListContexts(
        self, request: pb.ListContextsRequest, context: aio.ServicerContext
    ) -> pb.ListContextsResponse:
        tenant = self._tenant()
        contexts = await self._registry.list(tenant.name)
        used = await self._registry.bytes_used(tenant.name)
        return pb.ListContextsResponse(contexts=[convert.context_info(c) for c in contexts], bytes_used=used)

    @_unary
    async def DeleteContext(
        self, request: pb.DeleteContextRequest, context: aio.ServicerContext
    ) -> pb.DeleteContextResponse:
        await self._registry.delete(self._tenant().name, request.context_id)
        return pb.DeleteContextResponse()


def _no_run(run_id: str) -> NotFoundError:
    return NotFoundError(f"no such run: {run_id[:64]!r}")


def _check_code(code: str) -> None:
    """What a sandbox would refuse, refused before one starts."""
    if "\x00" in code:
        raise InvalidInputError("code contains a NUL byte")
