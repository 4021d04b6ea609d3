"""The REPL sessions of `rlm serve`: one sandbox each, its tenant's only, closed when idle.

    sessions = SessionRegistry(idle_s=600, clock=clock)
    sid = await sessions.add(tenant, session, stack)   # the stack holds the sandbox and its quota slot
    async with sessions.use(tenant, sid) as s: await s.run(code)
    await sessions.close(tenant, sid)
    await sessions.expire_idle()                        # what the sweeper calls; tests call it directly

A session is looked up by (tenant, id): another tenant's id and a missing one give the same
NotFoundError. A session is idle when no cell is running and none has started for `idle_s` on the
injected clock; `expire_idle()` closes those (the sandbox is removed, the quota slot freed). A session
whose sandbox died (a cell timed out, ran out of memory or was killed) is closed at once; its id is
then FAILED_PRECONDITION (SandboxClosedError) for a while rather than NOT_FOUND, so the caller learns
why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import NotFoundError, SandboxClosedError
from ..sandbox.session import SessionState

log = logging.getLogger(__name__)

_ENDED_KEPT = 1024  # ended sessions remembered, to say why their id no longer works


@dataclass(eq=False)
class _Entry:
    tenant: str
    session_id: str
    session: Any  # a SandboxSession (REPL sessions), or an RLMSession (runs kept for continuing)
    stack: AsyncExitStack
    last_used: float
    busy: int = 0
    closing: asyncio.Future[None] | None = field(default=None)


class SessionRegistry:
    def __init__(self, idle_s: float, *, clock: Clock | None = None) -> None:
        self.idle_s = idle_s
        self._clock = clock or SYSTEM_CLOCK
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._ended: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._sweeper: asyncio.Task[None] | None = None

    def _unique(self) -> list[_Entry]:
        return list({id(e): e for e in self._entries.values()}.values())  # aliases: one entry

    def __len__(self) -> int:
        return len(self._unique())

    def count(self, tenant: str) -> int:
        return sum(1 for e in self._unique() if e.tenant == tenant)

    async def add(
        self, tenant: str, session: Any, stack: AsyncExitStack, session_id: str | None = None
    ) -> str:
        """Keep an open session; `stack` closes it (and frees what it holds). Returns its id (a new
        random one unless given: a kept run is found by its run id)."""
        session_id = session_id or secrets.token_hex(16)
        self._entries[(tenant, session_id)] = _Entry(tenant, session_id, session, stack, self._clock.now())
        return session_id

    def check(self, tenant: str, session_id: str) -> None:
        """Raise as a lookup would (NotFoundError, or SandboxClosedError for one that ended)."""
        self._lookup(tenant, session_id)

    def alias(self, tenant: str, session_id: str, new_id: str) -> None:
        """Let the session also be found as `new_id` (a continued run's id finds its conversation)."""
        entry = self._lookup(tenant, session_id)
        self._entries[(tenant, new_id)] = entry

    def _lookup(self, tenant: str, session_id: str) -> _Entry:
        key = (tenant, session_id)
        entry = self._entries.get(key)
        if entry is not None and entry.closing is None:
            return entry
        reason = self._ended.get(key)
        if reason is not None:
            raise SandboxClosedError(f"the session has ended ({reason})")
        raise NotFoundError(f"no such session: {session_id[:64]!r}")

    @contextlib.asynccontextmanager
    async def use(self, tenant: str, session_id: str) -> AsyncIterator[Any]:
        """The session for one cell: not idle meanwhile. A sandbox that died in it closes the session."""
        entry = self._lookup(tenant, session_id)
        entry.busy += 1
        entry.last_used = self._clock.now()
        try:
            yield entry.session
        finally:
            entry.busy -= 1
            entry.last_used = self._clock.now()
            if getattr(entry.session, "state", None) is SessionState.CLOSED:
                await asyncio.shield(self._close(entry, "its sandbox ended"))

    async def close(self, tenant: str, session_id: str) -> None:
        await self._close(self._lookup(tenant, session_id), "closed by the client")

    async def _close(self, entry: _Entry, reason: str) -> None:
        if entry.closing is None:
            entry.closing = asyncio.ensure_future(self._teardown(entry, reason))
        await asyncio.shield(entry.closing)

    async def _teardown(self, entry: _Entry, reason: str) -> None:
        keys = [key for key, e in self._entries.items() if e is entry]  # its id and any aliases
        for key in keys:
            self._ended[key] = reason
        while len(self._ended) > _ENDED_KEPT:
            self._ended.popitem(last=False)
        try:
            await entry.stack.aclose()
        finally:
            for key in keys:
                self._entries.pop(key, None)

    async def expire_idle(self) -> list[str]:
        """Close every session idle for `idle_s` or more; their ids."""
        now = self._clock.now()
        idle = [
            e
            for e in self._unique()
            if e.busy == 0 and e.closing is None and now - e.last_used >= self.idle_s
        ]
        reason = f"idle for {self.idle_s:g} s"
        results = await asyncio.gather(*(self._close(e, reason) for e in idle), return_exceptions=True)
        for entry, result in zip(idle, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("closing the idle session %s failed: %s", entry.session_id, result)
            else:
                log.info("closed session %s of %s: %s", entry.session_id, entry.tenant, reason)
        return [e.session_id for e in idle]

    def start_sweeper(self, interval_s: float | None = None) -> None:
        """Expire idle sessions every `interval_s` (default: a quarter of idle_s, 1 to 30 s)."""
        every = interval_s or min(max(self.idle_s / 4, 1.0), 30.0)

        async def sweep() -> None:
            while True:
                await self._clock.sleep(every)
                try:
                    await self.expire_idle()
                except Exception:
                    log.exception("the idle-session sweep failed")

        if self._sweeper is None:
            self._sweeper = asyncio.create_task(sweep(), name="rlm-session-sweeper")

    async def aclose(self) -> None:
        """Stop the sweeper and close every session."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        entries = self._unique()
        await asyncio.gather(*(self._close(e, "the server stopped") for e in entries), return_exceptions=True)
