"""Makes sandboxes, keeps track of them, and reaps any that lost their owner."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from ..config import Runtime, SandboxConfig, SandboxLimits
from ..errors import InvalidInputError, SandboxStartError
from .backend import LABEL_OWNER, SandboxBackend, SandboxSpec
from .docker_backend import SOCKET_NAME, DockerBackend
from .host_server import HostEndpoint, SessionClosed
from .ownership import OwnerId, is_orphan
from .session import SandboxSession

log = logging.getLogger(__name__)

# Measured here: under runsc a pids limit of 32 stops the container starting (the Sentry's threads are in
# the container's cgroup) and 64 stops our runtime connecting (gRPC's threads); 80 works. 96 keeps a margin.
RUNSC_MIN_PIDS = 96


class SandboxManager:
    """Opens sandboxes; at start-up and at shutdown removes every managed container with no live owner."""

    def __init__(self, config: SandboxConfig | None = None, backend: SandboxBackend | None = None) -> None:
        self.config = config or SandboxConfig()
        self._backend: SandboxBackend = backend or DockerBackend()
        self._owner = OwnerId.new()
        self._sessions: set[SandboxSession] = set()
        self._checked: set[str] = set()

    async def __aenter__(self) -> SandboxManager:
        await self.reap()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def reap(self) -> int:
        """Remove our own leftovers and every orphan (owner gone). Returns how many were removed."""
        host = socket.gethostname()
        mine = str(self._owner)
        live = {s.container_id for s in self._sessions}
        doomed = [
            c.container_id
            for c in await self._backend.list_managed()
            if c.container_id not in live
            and (c.labels.get(LABEL_OWNER) == mine or is_orphan(c.labels.get(LABEL_OWNER), host))
        ]
        await asyncio.gather(*(self._backend.remove(cid) for cid in doomed))
        if doomed:
            log.info("reaped %d sandbox container(s) with no live owner", len(doomed))
        return len(doomed)

    @asynccontextmanager
    async def open(
        self,
        context_dir: str | os.PathLike[str],
        *,
        runtime: Runtime | str | None = None,
        limits: SandboxLimits | None = None,
    ) -> AsyncIterator[SandboxSession]:
        """Start a sandbox over `context_dir` (mounted read-only at /context) and destroy it on exit."""
        session = await self.start_session(context_dir, runtime=runtime, limits=limits)
        try:
            yield session
        finally:
            await self.close_session(session)

    async def start_session(
        self,
        context_dir: str | os.PathLike[str],
        *,
        runtime: Runtime | str | None = None,
        limits: SandboxLimits | None = None,
    ) -> SandboxSession:
        rt = Runtime.parse(runtime) if isinstance(runtime, str) else runtime or self.config.runtime
        limits = limits or self.config.limits
        if rt is Runtime.RUNSC and limits.pids < RUNSC_MIN_PIDS:
            raise InvalidInputError(
                f"runsc needs a pids limit of at least {RUNSC_MIN_PIDS} "
                f"(got {limits.pids}): gVisor's own threads count against it"
            )
        context = _context_dir(context_dir)
        if rt.value not in self._checked:
            await self._backend.check(self.config.image, rt.value)
            self._checked.add(rt.value)
        socket_dir = tempfile.mkdtemp(prefix="rlm-sbx-", dir=self.config.socket_root)
        os.chmod(socket_dir, 0o711)  # the sandbox user may reach the socket, not list the directory
        spec = SandboxSpec(
            sandbox_id=secrets.token_hex(6),
            image=self.config.image,
            runtime=rt,
            limits=limits,
            context_dir=context,
            socket_dir=socket_dir,
            token=secrets.token_urlsafe(32),
            owner=str(self._owner),
            uid=self.config.sandbox_uid,
        )
        endpoint = HostEndpoint(os.path.join(socket_dir, SOCKET_NAME), spec.token, limits.max_output_bytes)
        container_id: str | None = None
        try:
            await endpoint.start(uid=spec.uid)
            container_id = await self._backend.start(spec)
            await self._await_hello(endpoint, container_id, limits.start_timeout_s)
        except BaseException:
            if container_id is not None:
                await self._backend.remove(container_id)
            await endpoint.stop()
            shutil.rmtree(socket_dir, ignore_errors=True)
            raise
        session = SandboxSession(spec, container_id, endpoint, self._backend)
        self._sessions.add(session)
        return session

    async def _await_hello(self, endpoint: HostEndpoint, container_id: str, timeout_s: float) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                await endpoint.wait_hello()
        except (TimeoutError, SessionClosed) as exc:
            why = f"did not connect within {timeout_s:g} s" if isinstance(exc, TimeoutError) else str(exc)
            tail = (await self._backend.logs_tail(container_id)).strip()
            raise SandboxStartError(
                f"the sandbox runtime {why}" + (f"; its log: {tail}" if tail else "")
            ) from exc

    async def close_session(self, session: SandboxSession) -> None:
        self._sessions.discard(session)
        await session.aclose()

    async def aclose(self) -> None:
        """Destroy every open sandbox, then reap. Safe to call twice."""
        sessions, self._sessions = list(self._sessions), set()
        await asyncio.gather(*(s.aclose() for s in sessions), return_exceptions=True)
        await self.reap()
        await self._backend.aclose()


def _context_dir(path: str | os.PathLike[str]) -> str:
    resolved = Path(path).expanduser().resolve()
    if not resolved.exists():
        raise InvalidInputError(f"context directory does not exist: {path}")
    if not resolved.is_dir():
        raise InvalidInputError(f"context is not a directory: {path}")
    return str(resolved)


@asynccontextmanager
async def open_sandbox(
    context_dir: str | os.PathLike[str],
    *,
    runtime: Runtime | str | None = None,
    limits: SandboxLimits | None = None,
    config: SandboxConfig | None = None,
) -> AsyncIterator[SandboxSession]:
    """One sandbox with a manager of its own: `async with open_sandbox(dir) as s: await s.run(code)`."""
    async with (
        SandboxManager(config) as manager,
        manager.open(context_dir, runtime=runtime, limits=limits) as session,
    ):
        yield session
