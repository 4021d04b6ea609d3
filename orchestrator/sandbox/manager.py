"""Makes sandboxes, attaches runs to them, keeps track of them, and reaps any that lost their owner."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import socket
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from rlm_proto.v1 import sandbox_pb2 as pb

from ..clock import SYSTEM_CLOCK, Clock
from ..config import ContextLimits, Runtime, SandboxConfig, SandboxLimits
from ..context import pack as context_pack
from ..context.sources import ContextShape, ContextSource, FileSystemContext
from ..context.store import ContextStore
from ..errors import InvalidInputError, SandboxClosedError, SandboxStartError
from .backend import CallbackChannel, NotSupported, SandboxBackend, SandboxSpec
from .docker_backend import DockerBackend
from .host_server import CALLBACK_THREADS, HostEndpoint, SubCalls
from .ownership import OwnerId, reapable
from .pool import PoolListener, WarmPool
from .session import Sandbox, SandboxSession
from .tools import ToolCalls

if TYPE_CHECKING:
    from ..settings import PoolSettings

log = logging.getLogger(__name__)

ContextLike = str | os.PathLike[str] | ContextSource
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class SandboxManager:
    """Creates sandboxes, attaches runs to them, and reaps every managed sandbox with no live owner.

    Long-lived: one per orchestrator process, shared by every run. The backend is checked once per
    runtime (host checks, image, seccomp profile); reaping happens when the manager starts and closes.
    A sandbox is created idle (started, its runtime connected, nothing attached) and then attached to
    exactly one run's store and sub-call handler; `start_session` does both. Every sandbox this manager
    made and has not yet removed, attached or not, is its own and never reaped while it lives.

    With a warm pool (`use_pool`), `start_session` takes an idle pooled sandbox when the pool serves
    the request and attaches the run's context to it then (late mount, else over the socket); the
    pool creates and destroys through this manager, so the manager stays the only owner of sandboxes.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        backend: SandboxBackend | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.config = config or SandboxConfig()
        self._backend: SandboxBackend = backend or DockerBackend.from_config(self.config)
        self._clock = clock or SYSTEM_CLOCK
        self._owner = OwnerId.new()
        self._live: dict[str, Sandbox] = {}  # created and not yet removed: idle or attached
        self._sessions: set[SandboxSession] = set()
        self._starting: set[str] = set()  # sandbox ids between "create" and "hello"
        self._checks: dict[Runtime, asyncio.Future[None]] = {}
        self._callbacks: ThreadPoolExecutor | None = None  # context callbacks of every sandbox; made on use
        self._closed = False
        self.pool: WarmPool | None = None
        self._packs = context_pack.PackCache()  # runsc sandboxes' packed contexts, one per store

    def use_pool(
        self, settings: PoolSettings, *, clock: Clock | None = None, listener: PoolListener | None = None
    ) -> WarmPool:
        """Serve start_session from a warm pool of these settings (started by `await pool.start()`,
        closed with the manager)."""
        if self.pool is not None:
            raise InvalidInputError("this manager has a warm pool already")
        self.pool = WarmPool(self, settings, clock or self._clock, listener=listener)
        return self.pool

    def holds(self, sandbox: Sandbox) -> bool:
        """True while `sandbox` is this manager's (created, not yet removed)."""
        return self._live.get(sandbox.sandbox_id) is sandbox

    @property
    def backend(self) -> SandboxBackend:
        return self._backend

    @property
    def owner(self) -> str:
        return str(self._owner)

    def live_sandboxes(self) -> int:
        """Sandboxes this manager holds now, idle or attached, starting included."""
        return len(self._live) + len(self._starting)

    async def __aenter__(self) -> SandboxManager:
        await self.reap()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def reap(self) -> int:
        """Remove our own leftovers and every orphan (owner gone). Returns how many were removed.

        Sandboxes this manager holds (starting, idle or attached) are never touched. Channels left by a
        crashed process are removed too, once no sandbox claims them.
        """
        keep = set(self._live) | self._starting
        managed = await self._backend.list_managed()
        doomed = reapable(managed, live=keep, me=str(self._owner), host=socket.gethostname())
        await asyncio.gather(*(self._backend.remove(m.handle) for m in doomed))
        if doomed:
            log.info("reaped %d sandbox(es) with no live owner", len(doomed))
        claimed = keep | {m.sandbox_id for m in managed if m not in doomed}
        await self._backend.remove_stale_channels(claimed)
        return len(doomed)

    @asynccontextmanager
    async def open(
        self,
        context: ContextLike | None = None,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        store: ContextStore | None = None,
        context_limits: ContextLimits | None = None,
        runtime: Runtime | str | None = None,
        limits: SandboxLimits | None = None,
        subcalls: SubCalls | None = None,
        tenant: str = "default",
    ) -> AsyncIterator[SandboxSession]:
        """Start a sandbox over a context (mounted read-only at /context) and destroy it on exit.

        `context` is a directory (narrowed by `include`/`exclude` globs) or a ContextSource such as
        InMemoryContext. Pass `store` instead to share one run's store (cache, budget, accounting)
        between sandboxes, as nested calls of a run do.
        """
        session = await self.start_session(
            context,
            include=include,
            exclude=exclude,
            store=store,
            context_limits=context_limits,
            runtime=runtime,
            limits=limits,
            subcalls=subcalls,
            tenant=tenant,
        )
        try:
            yield session
        finally:
            await self.close_session(session)

    async def start_session(
        self,
        context: ContextLike | None = None,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        store: ContextStore | None = None,
        context_limits: ContextLimits | None = None,
        runtime: Runtime | str | None = None,
        limits: SandboxLimits | None = None,
        subcalls: SubCalls | None = None,
        tenant: str = "default",
    ) -> SandboxSession:
        """Create a sandbox over the context and attach it (see open()); `subcalls` answers its
        llm_query / rlm_query calls. With a warm pool that serves this runtime and these limits, an
        idle pooled sandbox is taken instead and the context attached to it."""
        _check_tenant(tenant)
        started = self._clock.now()
        store, owns_source = _store_for(context, include, exclude, store, context_limits)
        try:
            # One trip off the event loop: the root to mount and the shape (indexing the context once).
            prepared = await asyncio.to_thread(_prepare, store)
            context_root = prepared[0]
            sandbox = None
            if self.pool is not None:
                rt = Runtime.parse(runtime) if isinstance(runtime, str) else runtime or self.config.runtime
                sandbox = await self.pool.acquire(tenant, rt, limits or self.config.limits)
            if sandbox is None:
                sandbox = await self.create(
                    runtime=runtime, limits=limits, context_dir=context_root, tenant=tenant
                )
        except BaseException:
            if owns_source:
                store.source.close()
            raise
        try:
            session = await self.attach(
                sandbox, store, subcalls=subcalls, owns_source=owns_source, tenant=tenant, _prepared=prepared
            )
        except BaseException:
            await asyncio.shield(self.discard(sandbox))
            if owns_source:
                store.source.close()
            raise
        if self.pool is not None and sandbox.pool_profile is not None:
            self.pool.handed_out(sandbox, self._clock.now() - started)
        return session

    async def create(
        self,
        *,
        runtime: Runtime | str | None = None,
        limits: SandboxLimits | None = None,
        context_dir: str | None = None,
        tenant: str = "default",
        late_context: bool = False,
    ) -> Sandbox:
        """Start an idle sandbox: running, its runtime connected, no run attached (callbacks refused).

        `context_dir` is mounted at start; `late_context` (never with it) prepares the sandbox to get
        its context at attach instead, as a warm pool's sandboxes are."""
        if self._closed:
            raise SandboxClosedError("the sandbox manager is closed")
        _check_tenant(tenant)
        rt = Runtime.parse(runtime) if isinstance(runtime, str) else runtime or self.config.runtime
        limits = limits or self.config.limits
        await self._check(rt)  # first: the backend learns the machine's limits there
        self._backend.validate(rt, limits)
        sandbox_id = secrets.token_hex(6)
        spec = SandboxSpec(
            sandbox_id=sandbox_id,
            image=self.config.image,
            runtime=rt,
            limits=limits,
            context_dir=context_dir,
            token=secrets.token_urlsafe(32),
            owner=str(self._owner),
            tenant=tenant,
            late_context=late_context and context_dir is None,
        )
        self._starting.add(sandbox_id)
        try:
            sandbox = await self._start(spec)
        finally:
            self._starting.discard(sandbox_id)
        if self._closed:  # the manager closed while this one was starting
            await self._destroy(sandbox)
            raise SandboxClosedError("the sandbox manager closed while the sandbox was starting")
        self._live[sandbox_id] = sandbox
        return sandbox

    async def _check(self, runtime: Runtime) -> None:
        """The backend's checks for this runtime, once: concurrent first callers share one check."""
        check = self._checks.get(runtime)
        if check is None:
            check = asyncio.ensure_future(self._backend.check(self.config.image, runtime))
            self._checks[runtime] = check
        try:
            await asyncio.shield(check)
        except BaseException:
            if check.done() and self._checks.get(runtime) is check:
                del self._checks[runtime]  # a failed check is tried again next time
            raise

    async def _start(self, spec: SandboxSpec) -> Sandbox:
        channel = await self._backend.open_channel(spec.sandbox_id)
        endpoint = HostEndpoint(
            channel.address,
            spec.token,
            spec.limits.max_output_bytes,
            socket_path=channel.socket_path,
            clock=self._clock,
            callbacks=self._callback_pool(),
        )
        start: asyncio.Future[str] | None = None
        try:
            await endpoint.start(uid=channel.peer_uid)
            start = asyncio.ensure_future(self._backend.start(spec, channel))
            handle = await asyncio.shield(start)
            await self._await_hello(endpoint, handle, spec.limits.start_timeout_s)
        except BaseException:
            # Shielded: even a cancelled start waits for the create to land, then removes what it made.
            await asyncio.shield(self._abandon_start(start, endpoint, channel))
            raise
        return Sandbox(spec, handle, channel, endpoint)

    def _callback_pool(self) -> ThreadPoolExecutor:
        if self._callbacks is None:
            self._callbacks = ThreadPoolExecutor(CALLBACK_THREADS, thread_name_prefix="rlm-callback")
        return self._callbacks

    async def attach(
        self,
        sandbox: Sandbox,
        store: ContextStore,
        *,
        subcalls: SubCalls | None = None,
        owns_source: bool = False,
        tenant: str | None = None,
        _prepared: tuple[str | None, ContextShape] | None = None,
    ) -> SandboxSession:
        """Give an idle sandbox its run: the store and sub-call handler it is served from. Once only.

        The run's tenant (default: the one it was created for) and a fresh per-session token are bound
        now: the token goes down in the configure message and from then on is the only one the host
        accepts. A sandbox created with late_context gets the store's directory attached read-only at
        /context here, when the backend can (else, or for a narrowed context, every read goes over the
        socket); `sandbox.context_path` says which.
        """
        if self._live.get(sandbox.sandbox_id) is not sandbox or sandbox.attached:
            raise SandboxClosedError(f"sandbox {sandbox.sandbox_id} is not an idle sandbox of this manager")
        if tenant is not None:
            _check_tenant(tenant)
        if _prepared is None:
            _prepared = await asyncio.to_thread(_prepare, store)
        root, shape = _prepared
        if sandbox.spec.context_dir is not None:
            if root != sandbox.spec.context_dir:
                raise InvalidInputError("this sandbox has another context mounted than the run's store")
            path = "mount"
        elif sandbox.spec.late_context and root is not None:
            sandbox.attached = True  # from here on, no second attach (nor the pool) may take it
            try:
                await self._backend.attach_context(sandbox.handle, root)
                path = "late-mount"
            except NotSupported:
                path = "grpc"
        else:
            path = "grpc"
        sandbox.attached = True
        sandbox.context_path = path
        sandbox.tenant = tenant or sandbox.spec.tenant
        if path != "grpc" and sandbox.spec.runtime is Runtime.RUNSC:
            await self._give_pack(sandbox, store, shape)
        config = pb.SessionConfig(
            context=_descriptor(shape, store.limits, mounted=path != "grpc"),
            session_token=secrets.token_urlsafe(32),
            tools=_tool_specs(subcalls),
        )
        sandbox.endpoint.attach(store, subcalls, config)
        session = SandboxSession(
            sandbox, self._backend, store, owns_source, clock=self._clock, on_closed=self._forget
        )
        self._sessions.add(session)
        return session

    async def _give_pack(self, sandbox: Sandbox, store: ContextStore, shape: ContextShape) -> None:
        """A runsc sandbox over many files gets them packed in one file beside its socket (see
        context/pack.py: gVisor opens files slowly); built once per store, linked per sandbox."""
        socket_path, uid = sandbox.channel.socket_path, sandbox.channel.peer_uid
        if socket_path is None or uid is None or not context_pack.wanted(shape.file_count, shape.total_bytes):
            return  # no socket directory, or no user of its own to give the pack to (non-root)
        limit = store.limits.max_file_bytes

        def link() -> None:
            built = self._packs.get(store, store.source, limit, uid)
            if built is not None:
                built.link_into(os.path.dirname(socket_path))

        try:
            await asyncio.to_thread(link)
        except OSError as exc:  # no pack: read_file reads file by file, as without one
            log.warning("no context pack for sandbox %s: %s", sandbox.sandbox_id, exc)

    async def discard(self, sandbox: Sandbox) -> None:
        """Destroy a sandbox that was never attached (or whose attach failed)."""
        if self._live.get(sandbox.sandbox_id) is sandbox and not any(
            s.sandbox is sandbox for s in self._sessions
        ):
            await self._destroy(sandbox)

    async def _destroy(self, sandbox: Sandbox) -> None:
        try:
            await self._backend.remove(sandbox.handle)
        finally:
            await sandbox.endpoint.stop()
            await self._backend.close_channel(sandbox.channel)
            self._gone(sandbox)

    def _forget(self, session: SandboxSession) -> None:
        """A session's sandbox is gone (closed, timed out, died): it is no longer this manager's."""
        self._sessions.discard(session)
        self._gone(session.sandbox)

    def _gone(self, sandbox: Sandbox) -> None:
        if self._live.get(sandbox.sandbox_id) is sandbox:
            del self._live[sandbox.sandbox_id]
        if self.pool is not None and sandbox.pool_profile is not None:
            self.pool.released(sandbox)  # the tenant's share of the pool frees

    async def _abandon_start(
        self, start: asyncio.Future[str] | None, endpoint: HostEndpoint, channel: CallbackChannel
    ) -> None:
        try:
            if start is not None:
                await asyncio.wait([start])
                if not start.cancelled() and start.exception() is None:
                    await self._backend.remove(start.result())
        finally:
            await endpoint.stop()
            await self._backend.close_channel(channel)

    async def _await_hello(self, endpoint: HostEndpoint, handle: str, timeout_s: float) -> None:
        """Wait for the runtime's hello; a runtime that dies first is reported at once, with its log."""
        hello = asyncio.ensure_future(endpoint.wait_hello())
        exited = asyncio.ensure_future(self._backend.wait_exit(handle, timeout_s))
        try:
            done, _ = await asyncio.wait(
                [hello, exited], timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in (hello, exited):
                task.cancel()
        if hello in done and hello.exception() is None:
            return
        if (
            exited in done
            and not exited.cancelled()
            and exited.exception() is None
            and not exited.result().running
        ):
            why = f"exited before connecting (exit code {exited.result().exit_code})"
        elif hello in done:
            why = str(hello.exception())
        else:
            why = f"did not connect within {timeout_s:g} s"
        tail = (await self._backend.logs_tail(handle)).strip()
        raise SandboxStartError(f"the sandbox runtime {why}" + (f"; its log: {tail}" if tail else ""))

    async def close_session(self, session: SandboxSession) -> None:
        await session.aclose()

    async def aclose(self) -> None:
        """Destroy every sandbox, then reap. Safe to call twice; no sandbox starts afterwards."""
        if self._closed:
            return
        self._closed = True
        if self.pool is not None:
            await self.pool.aclose()  # no refill starts from here on
        sessions = list(self._sessions)
        idle = [s for s in self._live.values() if not s.attached]
        try:
            await asyncio.gather(*(s.aclose() for s in sessions), return_exceptions=True)
            await asyncio.gather(*(self._destroy(s) for s in idle), return_exceptions=True)
            await self.reap()
        finally:
            for check in self._checks.values():
                check.cancel()
            if self._callbacks is not None:  # every endpoint has stopped: no callback still runs
                self._callbacks.shutdown(wait=True)
                self._callbacks = None
            await self._backend.aclose()


def _prepare(store: ContextStore) -> tuple[str | None, ContextShape]:
    """The directory to mount (None: a context that may not be mounted whole) and the context's shape."""
    return (store.source.root() if store.source.mountable else None), store.shape()


def _check_tenant(tenant: str) -> None:
    if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
        raise InvalidInputError(f"a tenant id is 1-64 letters, digits, '-', '_' or '.': {str(tenant)[:80]!r}")


def _store_for(
    context: ContextLike | None,
    include: Sequence[str],
    exclude: Sequence[str],
    store: ContextStore | None,
    context_limits: ContextLimits | None,
) -> tuple[ContextStore, bool]:
    """The run's store, and whether the session made (and so closes) its source."""
    if store is not None:
        if context is not None or include or exclude or context_limits is not None:
            raise InvalidInputError("pass either a store or a context (with its options), not both")
        return store, False
    if context is None:
        raise InvalidInputError("a sandbox needs a context: a directory, a ContextSource, or a store")
    if isinstance(context, (str, os.PathLike)):
        path = Path(context).expanduser()
        if path.exists() and not path.is_dir():
            raise InvalidInputError(f"context is not a directory: {context}")
        if not path.exists():
            raise InvalidInputError(f"context directory does not exist: {context}")
        return ContextStore(FileSystemContext(path, include, exclude), context_limits), True
    if include or exclude:
        raise InvalidInputError("include/exclude apply to a directory context; set them on the source")
    return ContextStore(context, context_limits), False


def _tool_specs(subcalls: SubCalls | None) -> list[pb.ToolSpec]:
    """The run's custom tools, named for the sandbox (never the functions: those stay here)."""
    if not isinstance(subcalls, ToolCalls):
        return []
    return [
        pb.ToolSpec(name=t.name, description=t.description, callable=t.callable, value_json=t.value_json)
        for t in subcalls.tool_specs()
    ]


def _descriptor(shape: ContextShape, limits: ContextLimits, mounted: bool) -> pb.ContextDescriptor:
    return pb.ContextDescriptor(
        kind=shape.kind,
        mounted=mounted,
        file_count=shape.file_count,
        total_bytes=shape.total_bytes,
        files_by_extension=shape.files_by_extension,
        entries=[pb.ContextEntry(name=name, path=path) for name, path in shape.entries],
        max_file_bytes=limits.max_file_bytes,
    )


@asynccontextmanager
async def open_sandbox(
    context: ContextLike,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    context_limits: ContextLimits | None = None,
    runtime: Runtime | str | None = None,
    limits: SandboxLimits | None = None,
    config: SandboxConfig | None = None,
) -> AsyncIterator[SandboxSession]:
    """One sandbox with a manager of its own: `async with open_sandbox(dir) as s: await s.run(code)`."""
    async with (
        SandboxManager(config) as manager,
        manager.open(
            context,
            include=include,
            exclude=exclude,
            context_limits=context_limits,
            runtime=runtime,
            limits=limits,
        ) as session,
    ):
        yield session
