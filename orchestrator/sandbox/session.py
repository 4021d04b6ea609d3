"""One sandbox, one REPL session: run cells, enforce the wall clock, report how each cell ended."""

from __future__ import annotations

import asyncio
import enum
import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from rlm_proto.v1 import sandbox_pb2 as pb

from ..clock import SYSTEM_CLOCK, Clock
from ..context.store import ContextStore, ContextUsage
from ..errors import InvalidInputError, SandboxClosedError
from .backend import CallbackChannel, SandboxBackend, SandboxSpec
from .host_server import HostEndpoint, OnOutput, SessionClosed, SubCalls
from .results import CellError, CellResult, CellStatus, Output

# How long to wait for a dead sandbox's state to settle before reading why it died.
_EXIT_SETTLE_S = 10.0
# Well under the 64 MiB message limit of the wire, even at 4 bytes a character.
MAX_CODE_CHARS = 8 * 1024**2
# A bound variable's JSON goes down in pieces of this many characters (at most 4 MiB of UTF-8 each).
BIND_PIECE_CHARS = 1024**2


class SessionState(enum.Enum):
    READY = "ready"
    CLOSED = "closed"


class Sandbox:
    """A started sandbox: its spec, the backend's handle, its callback channel and the host's endpoint.

    Idle until the manager attaches a run to it; then owned by that run's SandboxSession.
    """

    def __init__(
        self, spec: SandboxSpec, handle: str, channel: CallbackChannel, endpoint: HostEndpoint
    ) -> None:
        self.spec = spec
        self.handle = handle
        self.channel = channel
        self.endpoint = endpoint
        self.attached = False
        # The manager's records, which (unlike the engine's labels) change at hand-out:
        self.tenant = spec.tenant  # the run's tenant once attached (a pooled one is created as "pool")
        self.pool_profile: str | None = None  # the warm pool's profile it was started for
        self.context_path = ""  # once attached: "mount", "late-mount" or "grpc" (see manager.attach)

    @property
    def sandbox_id(self) -> str:
        return self.spec.sandbox_id


class SandboxSession:
    """A running sandbox attached to one run. Made by SandboxManager; not constructed directly."""

    def __init__(
        self,
        sandbox: Sandbox,
        backend: SandboxBackend,
        store: ContextStore,
        owns_source: bool = False,
        *,
        clock: Clock | None = None,
        on_closed: Callable[[SandboxSession], None] | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.spec = sandbox.spec
        self.container_id = sandbox.handle
        self.channel = sandbox.channel
        self.store = store  # the run's context store: shared with nested calls of the same run
        self._owns_source = owns_source
        self._endpoint = sandbox.endpoint
        self._backend = backend
        self._clock = clock or SYSTEM_CLOCK
        self._on_closed = on_closed
        self._lock = asyncio.Lock()  # one cell at a time: a REPL has one namespace
        self._cell_id = 0
        self._close_reason: str | None = None
        self._closing: asyncio.Task[None] | None = None
        self.state = SessionState.READY
        # Files under the context's root this session's cells opened in the sandbox, however they
        # opened them (the runtime's count: a claim of the sandbox's, for telling, never for limits).
        self.files_opened = 0

    @property
    def sandbox_id(self) -> str:
        return self.spec.sandbox_id

    @property
    def token(self) -> str:
        """The token the sandbox's host server accepts now: the session's own, bound at attach."""
        return self._endpoint.token

    @property
    def context_path(self) -> str:
        """How the context reaches the code: "mount" (at start), "late-mount" (at hand-out, a warm
        pool's sandbox) or "grpc" (not mounted: every read over the socket)."""
        return self.sandbox.context_path

    @property
    def mounted(self) -> bool:
        """The context's files are at /context in the sandbox (its cells' working directory)."""
        return self.context_path in ("mount", "late-mount")

    @property
    def pooled(self) -> bool:
        """True when the sandbox came warm from the pool."""
        return self.sandbox.pool_profile is not None

    @property
    def usage(self) -> ContextUsage:
        """What this run read from its context so far (shared by every session on the same store)."""
        return self.store.usage

    async def run(
        self,
        code: str,
        *,
        timeout_s: float | None = None,
        max_output_bytes: int | None = None,
        on_output: OnOutput | None = None,
    ) -> CellResult:
        """Run one cell. Never raises for what the code does; raises if the session is closed.

        `timeout_s` and `max_output_bytes` may lower the session's limits for this cell, never raise them.
        `on_output(stream, text)` gets the cell's output while it runs ("stdout" or "stderr", in the
        order written; at most the output cap per stream), every piece before this returns.
        """
        _check_code(code)
        limits = self.spec.limits
        timeout = limits.cell_timeout_s if timeout_s is None else _positive_seconds(timeout_s)
        timeout = min(timeout, limits.cell_timeout_s)
        cap = limits.max_output_bytes
        if max_output_bytes is not None:
            if max_output_bytes < 0:
                raise InvalidInputError(f"max_output_bytes must not be negative, got {max_output_bytes}")
            cap = min(max_output_bytes, cap)
        async with self._lock:
            if self.state is SessionState.CLOSED:
                raise SandboxClosedError(f"sandbox {self.sandbox_id} is closed ({self._close_reason})")
            self._cell_id += 1
            started = self._clock.now()
            try:
                reply = await self._within(
                    self._endpoint.execute(
                        self._cell_id, code, cap, self.store.remaining_read_bytes(), on_output
                    ),
                    timeout,
                )
            except TimeoutError:
                await self._end(f"the cell ran past its {timeout:g} s limit")
                message = f"the cell ran past its {timeout:g} s limit; the sandbox was killed"
                return CellResult(
                    CellStatus.TIMEOUT,
                    duration_s=self._clock.now() - started,
                    error=CellError("Timeout", message),
                )
            except SessionClosed:
                return await self._died(self._clock.now() - started)
            except asyncio.CancelledError:
                # The cell is still running in the sandbox: a later cell must not queue behind it.
                await asyncio.shield(self._end("a cell was cancelled"))
                raise
            self.store.record_reads(int(reply.reads.bytes), int(reply.reads.files))
            self.files_opened += min(int(reply.reads.opened), 1_000_000)
            return _from_proto(reply, cap)

    async def _within(self, cell: Coroutine[Any, Any, pb.CellResult], limit_s: float) -> pb.CellResult:
        """Await the cell within `limit_s` seconds of its own time: time the host spends answering its
        sub-calls (a model's reply, a child RLM) stops the clock, since the code is only waiting."""
        task = asyncio.ensure_future(cell)
        endpoint, clock = self._endpoint, self._clock
        paused_at_start = endpoint.paused_s()
        started = clock.now()
        try:
            while True:
                if endpoint.paused:  # the clock is stopped: wake when the cell ends or the sub-calls do
                    waker: asyncio.Future[Any] = asyncio.ensure_future(endpoint.resumed.wait())
                else:
                    own = clock.now() - started - (endpoint.paused_s() - paused_at_start)
                    if own >= limit_s:
                        raise TimeoutError
                    waker = asyncio.ensure_future(clock.sleep(limit_s - own))
                try:
                    done, _ = await asyncio.wait({task, waker}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waker.cancel()
                if task in done:
                    return task.result()
        finally:
            if not task.done():
                task.cancel()

    async def _died(self, elapsed: float) -> CellResult:
        try:
            exit_info = await self._backend.wait_exit(self.container_id, _EXIT_SETTLE_S)
        finally:
            await self._end("the sandbox died")
        if exit_info.oom_killed:
            status, message = CellStatus.OOM, "the sandbox ran out of memory and was killed"
        else:
            status = CellStatus.KILLED
            message = f"the sandbox died mid-cell (exit code {exit_info.exit_code})"
        self._close_reason = message
        return CellResult(status, error=CellError(status.value.upper(), message), duration_s=elapsed)

    async def _end(self, reason: str) -> None:
        """Kill and remove the container: a dead or timed-out session leaves nothing behind.

        Every caller, concurrent or later, waits for the same removal to finish.
        """
        if self._closing is None:
            self.state = SessionState.CLOSED
            self._close_reason = reason
            self._closing = asyncio.ensure_future(self._teardown())
        await asyncio.shield(self._closing)

    async def _teardown(self) -> None:
        try:
            await self._backend.remove(self.container_id)
        finally:
            try:
                await self._endpoint.stop()
                await self._backend.close_channel(self.channel)
                if self._owns_source:
                    self.store.source.close()
            finally:
                if self._on_closed is not None:
                    self._on_closed(self)

    def set_subcalls(self, subcalls: SubCalls | None) -> None:
        """Serve this sandbox's sub-calls (and tools) from another handler from now on: a multi-turn
        RLM session hands its sandbox to each new run's."""
        self._endpoint.subcalls = subcalls

    def bind(self, name: str, value: Any) -> None:
        """Give the namespace `name` = value (any JSON value) before the next cell runs; the runtime
        restores it after a cell that overwrites it (`answer` excepted). Sent in pieces of at most
        BIND_PIECE_CHARS, so a large value (a later turn's context) fits the wire."""
        if not name.isidentifier():
            raise InvalidInputError(f"not a variable name: {name!r}")
        if self.state is SessionState.CLOSED:
            raise SandboxClosedError(f"sandbox {self.sandbox_id} is closed ({self._close_reason})")
        try:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{name} must be a JSON value: {exc}") from None
        pieces = [text[i : i + BIND_PIECE_CHARS] for i in range(0, len(text), BIND_PIECE_CHARS)] or [""]
        for index, piece in enumerate(pieces):
            binding = pb.Binding(name=name, json=piece, more=index < len(pieces) - 1)
            self._endpoint.outbox.put_nowait(pb.HostMessage(bind=binding))

    async def aclose(self) -> None:
        """Destroy the sandbox. Safe to call twice, and concurrently."""
        await self._end("closed")

    async def __aenter__(self) -> SandboxSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _check_code(code: object) -> None:
    if not isinstance(code, str):
        raise InvalidInputError(f"code must be a str, not {type(code).__name__}")
    if "\x00" in code:
        raise InvalidInputError("code contains a NUL byte")
    if len(code) > MAX_CODE_CHARS:
        raise InvalidInputError(f"code is longer than {MAX_CODE_CHARS} characters")


def _positive_seconds(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise InvalidInputError(f"timeout must be a positive number of seconds, got {value}")
    return float(value)


def _output(captured: pb.CapturedOutput, cap: int) -> Output:
    # Trust nothing from the sandbox: cut again to the cap we asked for.
    data = captured.text.encode("utf-8", "replace")
    truncated = captured.truncated or len(data) > cap
    text = data[:cap].decode("utf-8", "ignore") if len(data) > cap else captured.text
    return Output(text=text, total_bytes=max(int(captured.total_bytes), len(data)), truncated=truncated)


def _from_proto(reply: pb.CellResult, cap: int) -> CellResult:
    error = None
    if reply.HasField("error"):
        error = CellError(reply.error.type, reply.error.message, reply.error.traceback)
    final = _output(pb.CapturedOutput(text=reply.final, truncated=reply.final_truncated), cap)
    return CellResult(
        status=CellStatus.ERROR if error else CellStatus.OK,
        stdout=_output(reply.stdout, cap),
        stderr=_output(reply.stderr, cap),
        error=error,
        final=final.text if reply.has_final else None,
        final_truncated=final.truncated,
        duration_s=reply.duration_s,
        restored=tuple(str(name)[:100] for name in reply.restored[:64]),  # from the sandbox: bounded
    )
