"""The host end of one sandbox's socket: a grpc.aio server serving rlm.v1.SandboxHost.

One server per sandbox, bound to that sandbox's own Unix socket: the socket a call arrives on says which
sandbox made it. The per-sandbox token in `x-rlm-token` metadata is checked on every call by an
interceptor, in constant time. The session stream carries cells down and results up. Context callbacks
are served from the run's ContextStore; a callback with nothing to serve it answers UNIMPLEMENTED, which
the runtime turns into a clear "not available" error.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hmac
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import grpc
from grpc import aio
from rlm_proto.v1 import sandbox_pb2 as pb
from rlm_proto.v1 import sandbox_pb2_grpc as pb_grpc

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import RLMError, grpc_status, sandbox_error_kind
from .tools import ToolCalls

if TYPE_CHECKING:
    from ..context.store import ContextStore

TOKEN_HEADER = "x-rlm-token"
ERROR_TRAILER = "x-rlm-error"
READ_CHUNK_BYTES = 1024**2
CALLBACK_SLOTS = 4  # per sandbox
CALLBACK_THREADS = 16  # per manager: the pool every sandbox's context callbacks share

T = TypeVar("T")
log = logging.getLogger(__name__)


class SubCalls(Protocol):
    """Who answers a sandbox's llm_query / rlm_query: the run's engine (depth and budget are its own)."""

    async def llm_query(self, prompt: str, model: str, recursive: bool) -> str: ...
    async def llm_query_batched(self, prompts: list[str], model: str, recursive: bool) -> list[str]: ...


# A running cell's output, passed on as the sandbox sends it: (stream "stdout" or "stderr", text).
OnOutput = Callable[[str, str], None]


class _Outbox(asyncio.Queue[pb.HostMessage | None]):
    """The session stream's messages down. One message may be held back until the next is put, and
    then go first: the configure message of a hand-out travels with the first cell, so the runtime
    (idle until then) wakes once for both rather than twice."""

    def __init__(self) -> None:
        super().__init__()
        self.held: pb.HostMessage | None = None

    def put_nowait(self, item: pb.HostMessage | None) -> None:
        if self.held is not None:
            held, self.held = self.held, None
            if item is not None:  # the stream closing first: nothing was left to configure
                super().put_nowait(held)
        super().put_nowait(item)


class SessionClosed(Exception):
    """The sandbox's session stream ended (its process died, or it was closed)."""


class _TokenInterceptor(aio.ServerInterceptor):
    def __init__(self, token: str) -> None:
        self._token = token.encode()  # replaced, not added to, by rebind: one token is valid at a time

        async def deny(request: Any, context: aio.ServicerContext) -> Any:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad or missing sandbox token")

        self._deny_unary = grpc.unary_unary_rpc_method_handler(deny)
        self._deny_stream = grpc.stream_stream_rpc_method_handler(deny)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        sent = next((v for k, v in details.invocation_metadata or () if k == TOKEN_HEADER), "")
        sent_bytes = sent.encode() if isinstance(sent, str) else bytes(sent)
        if hmac.compare_digest(sent_bytes, self._token):
            return await continuation(details)
        return self._deny_stream if details.method.endswith("/Session") else self._deny_unary

    def rebind(self, token: str) -> None:
        self._token = token.encode()


class _Servicer(pb_grpc.SandboxHostServicer):
    def __init__(self, endpoint: HostEndpoint) -> None:
        self._endpoint = endpoint

    async def Session(
        self, request_iterator: AsyncIterator[pb.SandboxMessage], context: aio.ServicerContext
    ) -> AsyncIterator[pb.HostMessage]:
        endpoint = self._endpoint
        if endpoint.attached:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, "this sandbox already has a session")
        endpoint.attached = True
        reader = asyncio.create_task(endpoint.consume(request_iterator))
        getter: asyncio.Task[pb.HostMessage | None] | None = None
        try:
            while True:
                getter = asyncio.create_task(endpoint.outbox.get())
                await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    break
                message = getter.result()
                if message is None:
                    break
                yield message
        finally:
            if getter is not None:
                getter.cancel()
            reader.cancel()
            endpoint.mark_closed()

    # -- callbacks: the context store's (LLM calls come with the RLM engine) ----------------------

    async def _store(self, context: aio.ServicerContext) -> ContextStore:
        if self._endpoint.store is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not available in this session")
        assert self._endpoint.store is not None
        return self._endpoint.store

    async def _serve(self, context: aio.ServicerContext, fn: Callable[..., T], *args: Any) -> T:
        """Run a store call in a worker thread; refusals leave as a status plus the error's class.

        A sandbox runs at most CALLBACK_SLOTS calls at once, on a pool of their own, so one sandbox's
        greps cannot starve the others or the Docker calls.
        """
        try:
            async with self._endpoint.callback_slots:
                return await self._endpoint.in_worker(fn, *args)
        except RLMError as exc:
            code, kind = _status_for(exc)
            context.set_trailing_metadata(((ERROR_TRAILER, kind),))
            await context.abort(code, exc.message)
        except Exception:
            await self._internal(context)
        raise AssertionError("unreachable: abort raises")

    async def ReadFile(
        self, request: pb.ReadFileRequest, context: aio.ServicerContext
    ) -> AsyncIterator[pb.FileChunk]:
        store = await self._store(context)
        length = None if request.length < 0 else int(request.length)
        data = await self._serve(context, store.read, request.path, int(request.offset), length)
        for start in range(0, len(data), READ_CHUNK_BYTES):
            yield pb.FileChunk(data=data[start : start + READ_CHUNK_BYTES])

    async def ListFiles(self, request: pb.ListFilesRequest, context: aio.ServicerContext) -> pb.FileList:
        store = await self._store(context)
        found = await self._serve(context, store.list_files, request.directory, request.glob)
        return pb.FileList(paths=found)

    async def SearchFiles(self, request: pb.SearchFilesRequest, context: aio.ServicerContext) -> pb.FileList:
        store = await self._store(context)
        return pb.FileList(paths=await self._serve(context, store.search_files, request.pattern))

    async def FileInfo(self, request: pb.FileInfoRequest, context: aio.ServicerContext) -> pb.FileMetadata:
        store = await self._store(context)
        info = await self._serve(context, store.file_info, request.path)
        lines = -1 if info["lines"] is None else info["lines"]
        return pb.FileMetadata(
            path=info["path"], size=info["size"], lines=lines, modified_unix=info["modified"]
        )

    async def Stats(self, request: pb.StatsRequest, context: aio.ServicerContext) -> pb.ContextStats:
        store = await self._store(context)
        stats = await self._serve(context, store.stats)
        return pb.ContextStats(
            file_count=stats["file_count"],
            total_bytes=stats["total_bytes"],
            files_by_extension=stats["files_by_extension"],
        )

    async def Grep(self, request: pb.GrepRequest, context: aio.ServicerContext) -> pb.GrepResponse:
        store = await self._store(context)
        found, truncated = await self._serve(
            context, store.grep, request.pattern, request.glob, int(request.max_matches)
        )
        return pb.GrepResponse(
            matches=[pb.GrepMatch(path=m.path, line_number=m.line_number, line=m.line) for m in found],
            truncated=truncated,
        )

    # -- LLM sub-calls: the run's engine answers them; depth and budget live there, not in requests --

    async def _subcalls(self, context: aio.ServicerContext) -> SubCalls:
        if self._endpoint.subcalls is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not available in this session")
        assert self._endpoint.subcalls is not None
        return self._endpoint.subcalls

    async def _internal(self, context: aio.ServicerContext) -> None:
        log.exception("sub-call failed")
        context.set_trailing_metadata(((ERROR_TRAILER, "HostCallError"),))
        await context.abort(grpc.StatusCode.INTERNAL, "the host could not serve this call")

    async def _refuse(self, context: aio.ServicerContext, exc: RLMError) -> None:
        code, kind = _status_for(exc)
        context.set_trailing_metadata(((ERROR_TRAILER, kind),))
        await context.abort(code, exc.message)

    async def LlmQuery(
        self, request: pb.LlmQueryRequest, context: aio.ServicerContext
    ) -> pb.LlmQueryResponse:
        handler = await self._subcalls(context)
        try:
            with self._endpoint.subcall_in_flight():
                text = await handler.llm_query(request.prompt, request.model, request.recursive)
        except RLMError as exc:
            await self._refuse(context, exc)
        except Exception:
            await self._internal(context)
        return pb.LlmQueryResponse(text=text)

    async def LlmQueryBatched(
        self, request: pb.LlmQueryBatchedRequest, context: aio.ServicerContext
    ) -> pb.LlmQueryBatchedResponse:
        handler = await self._subcalls(context)
        try:
            with self._endpoint.subcall_in_flight():
                texts = await handler.llm_query_batched(
                    list(request.prompts), request.model, request.recursive
                )
        except RLMError as exc:
            await self._refuse(context, exc)
        except Exception:
            await self._internal(context)
        return pb.LlmQueryBatchedResponse(texts=texts)

    async def ToolCall(
        self, request: pb.ToolCallRequest, context: aio.ServicerContext
    ) -> pb.ToolCallResponse:
        """A custom tool, run by the run's handler (which counts it, bounds its time, and keeps the
        functions on the host); what the function raised is an answer, not an RPC error."""
        handler = self._endpoint.subcalls
        if not isinstance(handler, ToolCalls):
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "no tools are available in this session")
        assert isinstance(handler, ToolCalls)
        try:
            with self._endpoint.subcall_in_flight():
                outcome = await handler.call_tool(request.name, request.arguments_json)
        except RLMError as exc:
            await self._refuse(context, exc)
        except Exception:
            await self._internal(context)
        if outcome.result_json is None:
            error = pb.ToolError(type=outcome.error_type, message=outcome.error_message)
            return pb.ToolCallResponse(error=error)
        return pb.ToolCallResponse(result_json=outcome.result_json)


def _status_for(exc: RLMError) -> tuple[grpc.StatusCode, str]:
    """The status and the sandbox-side exception class for one of our errors (one table: errors.py)."""
    return grpc.StatusCode[grpc_status(exc)], sandbox_error_kind(exc)


class HostEndpoint:
    """The server on one sandbox's channel, and the session stream's state.

    Made and started when the sandbox is created, with nothing to serve: callbacks answer UNIMPLEMENTED
    until `attach` gives it a run's store and sub-call handler and sends the context's descriptor down.
    """

    def __init__(
        self,
        address: str,
        token: str,
        max_output_bytes: int,
        *,
        socket_path: str | None = None,
        clock: Clock | None = None,
        callbacks: ThreadPoolExecutor | None = None,
    ) -> None:
        self.address = address
        # The pool context callbacks run on: the manager's, shut down with it. Without one, a pool of
        # this endpoint's own, shut down by stop().
        self._own_pool = callbacks is None
        self._pool = callbacks or ThreadPoolExecutor(CALLBACK_SLOTS, thread_name_prefix="rlm-callback")
        self.socket_path = socket_path
        self.store: ContextStore | None = None
        self.subcalls: SubCalls | None = None
        self._clock = clock or SYSTEM_CLOCK
        self._token = token
        self._max_output_bytes = max_output_bytes
        # A result holds four capped texts (stdout, stderr, final, traceback) and a short message, and a
        # batch of sub-call prompts may be tens of MB; anything larger is not from our runtime.
        self._max_receive = max(4 * max_output_bytes + 1024**2, 32 * 1024**2)
        self.outbox = _Outbox()
        self.callback_slots = asyncio.Semaphore(CALLBACK_SLOTS)
        self._subcalls_active = 0
        self._paused_total = 0.0
        self._paused_since = 0.0
        self.resumed = asyncio.Event()  # set whenever no sub-call is in flight
        self.resumed.set()
        self._inflight: set[concurrent.futures.Future[Any]] = set()
        self.attached = False
        self._interceptor: _TokenInterceptor | None = None
        self._server: aio.Server | None = None
        self._hello: asyncio.Future[pb.Hello] | None = None
        self._closed = asyncio.Event()
        self._pending: dict[int, asyncio.Future[pb.CellResult]] = {}
        # Per running cell that asked for its output: the callback, and bytes passed on per stream.
        self._outputs: dict[int, tuple[OnOutput, int, dict[str, int]]] = {}

    @property
    def token(self) -> str:
        """The token the server accepts now (the creation token until attach binds the session's)."""
        return self._token

    def attach(self, store: ContextStore, subcalls: SubCalls | None, config: pb.SessionConfig | None) -> None:
        """Give the sandbox a run: its store and sub-call handler serve from now on; the context's
        descriptor goes down with the first message after it (a cell, a binding), ahead of it. A
        config with a session_token rebinds the token: from now on only it is accepted (the open
        session stream stays open; the sandbox calls back only from a cell, by then configured)."""
        if config is not None and config.session_token:
            self._token = config.session_token
            if self._interceptor is not None:
                self._interceptor.rebind(config.session_token)
        self.store = store
        self.subcalls = subcalls
        if config is not None:
            self.outbox.held = pb.HostMessage(configure=config)

    async def start(self, uid: int | None) -> None:
        loop = asyncio.get_running_loop()
        self._hello = loop.create_future()
        self._interceptor = _TokenInterceptor(self._token)
        self._server = aio.server(
            interceptors=[self._interceptor],
            options=[
                ("grpc.max_receive_message_length", self._max_receive),
                ("grpc.max_send_message_length", 64 * 1024**2),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=64,
        )
        pb_grpc.add_SandboxHostServicer_to_server(_Servicer(self), self._server)
        self._server.add_insecure_port(self.address)
        await self._server.start()
        if self.socket_path is not None:
            _grant_socket(self.socket_path, uid)

    async def wait_hello(self) -> pb.Hello:
        assert self._hello is not None, "start() first"
        closed = asyncio.ensure_future(self._closed.wait())
        waiting: list[asyncio.Future[Any]] = [self._hello, closed]
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        if not self._hello.done():
            raise SessionClosed("the sandbox closed its session before saying hello")
        return self._hello.result()

    async def consume(self, messages: AsyncIterator[pb.SandboxMessage]) -> None:
        """Read what the sandbox sends until its stream ends."""
        try:
            async for message in messages:
                kind = message.WhichOneof("kind")
                if kind == "hello" and self._hello is not None and not self._hello.done():
                    self._hello.set_result(message.hello)
                elif kind == "output":
                    self._relay_output(message.output)
                elif kind == "result":
                    self._outputs.pop(message.result.cell_id, None)
                    waiter = self._pending.pop(message.result.cell_id, None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(message.result)
        except (grpc.RpcError, asyncio.CancelledError):
            pass
        finally:
            self.mark_closed()

    def _relay_output(self, output: pb.CellOutput) -> None:
        """One piece of a running cell's output to its callback. Trust nothing from the sandbox: a
        piece for no cell that asked, or past the cell's cap on that stream, is dropped."""
        entry = self._outputs.get(output.cell_id)
        if entry is None or output.stream not in ("stdout", "stderr"):
            return
        callback, cap, sent = entry
        data = output.text.encode("utf-8", "replace")
        room = cap - sent[output.stream]
        if room <= 0:
            return
        if len(data) > room:
            data = data[:room]
        sent[output.stream] += len(data)
        text = data.decode("utf-8", "ignore")
        if not text:
            return
        try:
            callback(output.stream, text)
        except Exception:  # the listener's bug must not end the sandbox's session
            log.exception("an output callback failed")

    def mark_closed(self) -> None:
        self._closed.set()
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(SessionClosed("the sandbox's session ended"))
        self._pending.clear()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def execute(
        self,
        cell_id: int,
        code: str,
        max_output_bytes: int,
        read_budget_bytes: int = 0,
        on_output: OnOutput | None = None,
    ) -> pb.CellResult:
        """Send one cell down and wait for its result. Raises SessionClosed if the sandbox dies first.

        With `on_output`, the sandbox sends the cell's output as it is written and each piece is passed
        to it, on the event loop, before the result returns (at most max_output_bytes per stream)."""
        if self.closed:
            raise SessionClosed("the sandbox's session has ended")
        waiter: asyncio.Future[pb.CellResult] = asyncio.get_running_loop().create_future()
        self._pending[cell_id] = waiter
        if on_output is not None:
            self._outputs[cell_id] = (on_output, max_output_bytes, {"stdout": 0, "stderr": 0})
        try:
            await self.outbox.put(
                pb.HostMessage(
                    execute=pb.ExecuteCell(
                        cell_id=cell_id,
                        code=code,
                        max_output_bytes=max_output_bytes,
                        read_budget_bytes=read_budget_bytes,
                        stream_output=on_output is not None,
                    )
                )
            )
            return await waiter
        finally:
            self._pending.pop(cell_id, None)
            self._outputs.pop(cell_id, None)

    @property
    def paused(self) -> bool:
        """True while the host is answering one of this sandbox's sub-calls."""
        return self._subcalls_active > 0

    def paused_s(self) -> float:
        """Seconds so far during which at least one sub-call of this sandbox was in flight."""
        extra = self._clock.now() - self._paused_since if self._subcalls_active else 0.0
        return self._paused_total + extra

    @contextlib.contextmanager
    def subcall_in_flight(self) -> Iterator[None]:
        if self._subcalls_active == 0:
            self._paused_since = self._clock.now()
            self.resumed.clear()
        self._subcalls_active += 1
        try:
            yield
        finally:
            self._subcalls_active -= 1
            if self._subcalls_active == 0:
                self._paused_total += self._clock.now() - self._paused_since
                self.resumed.set()

    async def in_worker(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn in the callback pool; stop() waits for every call still running there."""
        future = self._pool.submit(partial(fn, *args))
        self._inflight.add(future)
        future.add_done_callback(self._inflight.discard)
        return await asyncio.wrap_future(future)

    async def stop(self, grace_s: float = 0.2) -> None:
        """Stop serving; returns once no callback of this sandbox still runs (its store may then close)."""
        self.outbox.put_nowait(None)  # ends the stream: the runtime exits by itself
        self.mark_closed()
        if self._server is not None:
            server, self._server = self._server, None
            await server.stop(grace_s)
        if self._inflight:  # bounded: every store call runs under the regex deadline or is plain I/O
            await asyncio.to_thread(concurrent.futures.wait, list(self._inflight))
        if self._own_pool:
            self._pool.shutdown(wait=False)


def _grant_socket(path: str, uid: int | None) -> None:
    """Only the sandbox's user may connect: chown to it when we can, else a token-guarded 0666."""
    if uid is not None and os.geteuid() == 0:
        os.chown(path, uid, uid)
        os.chmod(path, 0o600)
    else:
        os.chmod(path, 0o666)
