"""Makes sandboxes, keeps track of them, and reaps any that lost their owner."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from rlm_proto.v1 import sandbox_pb2 as pb

from ..config import ContextLimits, Runtime, SandboxConfig, SandboxLimits
from ..context.sources import ContextShape, ContextSource, FileSystemContext
from ..context.store import ContextStore
from ..errors import EngineUnavailableError, InvalidInputError, SandboxClosedError, SandboxStartError
from ..security import seccomp
from .backend import LABEL_OWNER, LABEL_SANDBOX, SandboxBackend, SandboxSpec
from .docker_backend import SOCKET_NAME, DockerBackend
from .host_server import HostEndpoint, SubCalls
from .ownership import OwnerId, is_orphan
from .session import SandboxSession

log = logging.getLogger(__name__)

ContextLike = str | os.PathLike[str] | ContextSource
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

# Measured here: under runsc a pids limit of 32 stops the container starting (the Sentry's threads are in
# the container's cgroup) and 64 stops our runtime connecting (gRPC's threads); 80 works. 96 keeps a margin.
RUNSC_MIN_PIDS = 96
SOCKET_DIR_PREFIX = "rlm-sbx-"


class SandboxManager:
    """Opens sandboxes; at start-up and at shutdown removes every managed container with no live owner."""

    def __init__(self, config: SandboxConfig | None = None, backend: SandboxBackend | None = None) -> None:
        self.config = config or SandboxConfig()
        self._backend: SandboxBackend = backend or DockerBackend(allow_weak_host=self.config.allow_weak_host)
        self._owner = OwnerId.new()
        self._sessions: set[SandboxSession] = set()
        self._starting: set[str] = set()  # sandbox ids between "create" and "hello"
        self._checked: set[str] = set()
        self._seccomp: str | None = None
        self._closed = False

    async def __aenter__(self) -> SandboxManager:
        await self.reap()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def reap(self) -> int:
        """Remove our own leftovers and every orphan (owner gone). Returns how many were removed.

        Sandboxes this manager has open or is starting are never touched. Socket directories left by a
        crashed process are removed too, once no container claims them and they are older than any start.
        """
        host = socket.gethostname()
        mine = str(self._owner)
        keep = {s.sandbox_id for s in self._sessions} | self._starting
        managed = await self._backend.list_managed()
        doomed = [
            c
            for c in managed
            if c.labels.get(LABEL_SANDBOX) not in keep
            and (c.labels.get(LABEL_OWNER) == mine or is_orphan(c.labels.get(LABEL_OWNER), host))
        ]
        await asyncio.gather(*(self._backend.remove(c.container_id) for c in doomed))
        if doomed:
            log.info("reaped %d sandbox container(s) with no live owner", len(doomed))
        claimed = keep | {c.labels.get(LABEL_SANDBOX, "") for c in managed if c not in doomed}
        _remove_stale_socket_dirs(self.config.socket_root or tempfile.gettempdir(), claimed)
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
        """Start a sandbox (see open()); `subcalls` answers its llm_query / rlm_query calls."""
        if not _TENANT.fullmatch(tenant):
            raise InvalidInputError(f"a tenant id is 1-64 letters, digits, '-', '_' or '.': {tenant[:80]!r}")
        store, owns_source = _store_for(context, include, exclude, store, context_limits)
        try:
            return await self._start(store, owns_source, runtime, limits, subcalls, tenant)
        except BaseException:
            if owns_source:
                store.source.close()
            raise

    async def _start(
        self,
        store: ContextStore,
        owns_source: bool,
        runtime: Runtime | str | None,
        limits: SandboxLimits | None,
        subcalls: SubCalls | None,
        tenant: str,
    ) -> SandboxSession:
        if self._closed:
            raise SandboxClosedError("the sandbox manager is closed")
        rt = Runtime.parse(runtime) if isinstance(runtime, str) else runtime or self.config.runtime
        limits = limits or self.config.limits
        if rt is Runtime.RUNSC and limits.pids < RUNSC_MIN_PIDS:
            raise InvalidInputError(
                f"runsc needs a pids limit of at least {RUNSC_MIN_PIDS} "
                f"(got {limits.pids}): gVisor's own threads count against it"
            )
        context_root = await asyncio.to_thread(store.source.root) if store.source.mountable else None
        shape = await asyncio.to_thread(store.shape)  # indexes the context once, off the event loop
        if rt.value not in self._checked:
            await self._backend.check(self.config.image, rt.value)
            self._checked.add(rt.value)
        sandbox_id = secrets.token_hex(6)
        socket_dir = tempfile.mkdtemp(prefix=f"{SOCKET_DIR_PREFIX}{sandbox_id}-", dir=self.config.socket_root)
        os.chmod(socket_dir, 0o711)  # the sandbox user may reach the socket, not list the directory
        spec = SandboxSpec(
            sandbox_id=sandbox_id,
            image=self.config.image,
            runtime=rt,
            limits=limits,
            context_dir=context_root,
            socket_dir=socket_dir,
            token=secrets.token_urlsafe(32),
            owner=str(self._owner),
            uid=self.config.sandbox_uid,
            seccomp=self._seccomp_profile(),
            tenant=tenant,
        )
        endpoint = HostEndpoint(
            os.path.join(socket_dir, SOCKET_NAME),
            spec.token,
            limits.max_output_bytes,
            store=store,
            subcalls=subcalls,
            config=pb.SessionConfig(
                context=_descriptor(shape, store.limits, mounted=context_root is not None)
            ),
        )
        self._starting.add(sandbox_id)
        start: asyncio.Future[str] | None = None
        try:
            await endpoint.start(uid=spec.uid)
            start = asyncio.ensure_future(self._backend.start(spec))
            container_id = await asyncio.shield(start)
            await self._await_hello(endpoint, container_id, limits.start_timeout_s)
            session = SandboxSession(spec, container_id, endpoint, self._backend, store, owns_source)
        except BaseException:
            # Shielded: even a cancelled start waits for the create to land, then removes what it made.
            await asyncio.shield(self._abandon_start(start, endpoint, socket_dir))
            raise
        finally:
            self._starting.discard(sandbox_id)
        if self._closed:  # the manager closed while this one was starting
            await session.aclose()
            raise SandboxClosedError("the sandbox manager closed while the sandbox was starting")
        self._sessions.add(session)
        return session

    def _seccomp_profile(self) -> str:
        """Our hardened profile's text, read once. Missing or unreadable: no sandbox starts."""
        if self._seccomp is None:
            path = self.config.seccomp_profile
            try:
                text = Path(path).read_text()
                seccomp.verify(json.loads(text))  # a stale or tampered profile is no profile
            except (OSError, ValueError) as exc:
                raise EngineUnavailableError(
                    f"no usable seccomp profile at {path} ({exc}): run `make setup`, "
                    "or point SandboxConfig.seccomp_profile at one"
                ) from exc
            self._seccomp = text
        return self._seccomp

    async def _abandon_start(
        self, start: asyncio.Future[str] | None, endpoint: HostEndpoint, socket_dir: str
    ) -> None:
        try:
            if start is not None:
                await asyncio.wait([start])
                if not start.cancelled() and start.exception() is None:
                    await self._backend.remove(start.result())
        finally:
            await endpoint.stop()
            shutil.rmtree(socket_dir, ignore_errors=True)

    async def _await_hello(self, endpoint: HostEndpoint, container_id: str, timeout_s: float) -> None:
        """Wait for the runtime's hello; a runtime that dies first is reported at once, with its log."""
        hello = asyncio.ensure_future(endpoint.wait_hello())
        exited = asyncio.ensure_future(self._backend.wait_exit(container_id, timeout_s))
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
        tail = (await self._backend.logs_tail(container_id)).strip()
        raise SandboxStartError(f"the sandbox runtime {why}" + (f"; its log: {tail}" if tail else ""))

    async def close_session(self, session: SandboxSession) -> None:
        self._sessions.discard(session)
        await session.aclose()

    async def aclose(self) -> None:
        """Destroy every open sandbox, then reap. Safe to call twice; no sandbox starts afterwards."""
        if self._closed:
            return
        self._closed = True
        sessions, self._sessions = list(self._sessions), set()
        try:
            await asyncio.gather(*(s.aclose() for s in sessions), return_exceptions=True)
            await self.reap()
        finally:
            await self._backend.aclose()


def _remove_stale_socket_dirs(root: str, claimed: set[str], min_age_s: float = 600.0) -> None:
    """Remove socket directories of sandboxes no container claims, once older than any start can take."""
    now = time.time()
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(SOCKET_DIR_PREFIX) or not entry.is_dir(follow_symlinks=False):
            continue
        sandbox_id = entry.name[len(SOCKET_DIR_PREFIX) :].split("-", 1)[0]
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > min_age_s
        except OSError:
            continue
        if sandbox_id not in claimed and old:
            shutil.rmtree(entry.path, ignore_errors=True)


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
