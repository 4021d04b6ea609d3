"""The warm pool: sandboxes started ahead of demand, each handed out once, then destroyed.

    pool = WarmPool(manager, settings.pool)          # the manager owns every sandbox; the pool asks it
    await pool.start()                               # fills each profile to `min` in the background
    sandbox = await pool.acquire("acme", Runtime.RUNC, limits)   # an idle sandbox, or None: start cold
    session = await manager.attach(sandbox, store, tenant="acme")  # the run, token and tenant bound now

One pool per manager, keyed by `PoolKey(runtime, limits)`: a profile of the settings names each key kept
warm. A pooled sandbox is created idle (runtime connected, nothing attached, tenant "pool" on its
labels, a context slot ready), handed to exactly one run, and destroyed when that run's session ends:
it never comes back, so nothing (a file in /tmp, a variable, a process) carries from one session to the
next. The pool refills in the background (at most `start_concurrency` starts at once); idle sandboxes
beyond `min` retire after `idle_retire_s`; idle ones that died are replaced.

Fairness and back-pressure: when a profile has nothing idle, requests wait in arrival order, each for
at most `wait_s` (then SandboxStartError, retryable: UNAVAILABLE); a tenant holds at most its share of a
profile (`per_tenant_share` of `max`, handed out or waited for), and past it is told to start cold, so
one tenant's burst cannot empty the pool for the others. A start that fails is retried with backoff and
counted; after three failures in a row the requests waiting are failed with the reason rather than
left to their deadline.

The pool's clock (injected) drives its waits, backoff and retirement; `stats()` is the Python accessor
of its figures, and a listener (the server's Metrics) hears every change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..clock import SYSTEM_CLOCK, Clock
from ..config import Runtime, SandboxLimits
from ..errors import SandboxClosedError, SandboxStartError

if TYPE_CHECKING:
    from ..settings import PoolSettings
    from .manager import SandboxManager
    from .session import Sandbox

log = logging.getLogger(__name__)

POOL_TENANT = "pool"  # the tenant label of a pooled sandbox until (and after) hand-out: labels are fixed
FAIL_WAITERS_AFTER = 3  # failed starts in a row after which the waiting requests are failed
MAX_BACKOFF_S = 30.0
REFILL_DELAY_S = 0.1  # a refill after a hand-out waits this long: a burst's hand-outs go first
_LATENCIES = 1024  # hand-out latencies kept for the percentiles


@dataclass(frozen=True, slots=True)
class PoolKey:
    runtime: Runtime
    limits: SandboxLimits


class PoolListener(Protocol):
    """Told of every change (the server's Metrics): the idle size now, and what just happened."""

    def pool_changed(
        self,
        size: int,
        *,
        hit: bool = False,
        miss: bool = False,
        handout_s: float | None = None,
        start_failed: bool = False,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class ProfileStats:
    name: str
    runtime: str
    idle: int
    starting: int
    in_use: int  # handed out and not yet destroyed
    waiting: int


@dataclass(frozen=True, slots=True)
class PoolStats:
    """The pool's figures since it started (the Python accessor; the server exports the same)."""

    size: int  # idle sandboxes, every profile
    hits: int  # hand-outs of a sandbox that was idle when asked for
    misses: int  # requests that waited for a start, or were told to start cold
    unpooled: int  # of the misses: no profile serves that runtime and limits, or the pool is closed
    over_share: int  # of the misses: the tenant held its share already
    timeouts: int  # waits that reached their deadline
    start_failures: int
    last_start_failure: str | None
    retired: int  # idle sandboxes destroyed past idle_retire_s, or found dead
    handout_p50_ms: float | None  # acquire + attach (context, token), over the last 1024 hand-outs
    handout_p95_ms: float | None
    handout_p99_ms: float | None
    profiles: tuple[ProfileStats, ...] = ()


@dataclass(eq=False)
class _Waiter:
    tenant: str
    future: asyncio.Future[Sandbox]


@dataclass(eq=False)
class _Profile:
    name: str
    key: PoolKey
    idle: deque[tuple[Sandbox, float]] = field(default_factory=deque)  # (sandbox, idle since), oldest first
    starting: int = 0
    waiters: deque[_Waiter] = field(default_factory=deque)
    held: dict[str, int] = field(default_factory=dict)  # tenant -> handed out or waited for
    failures_in_a_row: int = 0


class WarmPool:
    """Idle sandboxes per profile, created and destroyed through the manager (see the module's doc)."""

    def __init__(
        self,
        manager: SandboxManager,
        settings: PoolSettings,
        clock: Clock | None = None,
        *,
        listener: PoolListener | None = None,
        refill_delay_s: float = REFILL_DELAY_S,
    ) -> None:
        self._manager = manager
        self.settings = settings
        self._clock = clock or SYSTEM_CLOCK
        self.listener = listener
        self._refill_delay_s = refill_delay_s
        self._profiles: dict[PoolKey, _Profile] = {}
        for profile in settings.profiles:
            key = PoolKey(profile.runtime or manager.config.runtime, profile.limits or manager.config.limits)
            if key not in self._profiles:  # two names for one key: one pool
                self._profiles[key] = _Profile(profile.name, key)
        self._share = settings.tenant_share()
        self._slots: asyncio.Semaphore | None = None  # made on the loop, at start
        self._tasks: set[asyncio.Task[None]] = set()
        self._handed: dict[str, tuple[_Profile, str]] = {}  # sandbox id -> (profile, tenant)
        self._latencies: deque[float] = deque(maxlen=_LATENCIES)
        self._maintainer: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False
        self._hits = self._misses = self._unpooled = self._over_share = self._timeouts = 0
        self._start_failures = self._retired = 0
        self._last_failure: str | None = None

    # -- the caller's side --------------------------------------------------------------------------

    def serves(self, runtime: Runtime, limits: SandboxLimits) -> bool:
        return PoolKey(runtime, limits) in self._profiles

    async def start(self) -> None:
        """Begin filling every profile to `min`, and the upkeep (retirement, dead ones replaced)."""
        if self._started or self._closed:
            return
        self._started = True
        self._slots = asyncio.Semaphore(self.settings.start_concurrency)
        self._maintainer = asyncio.create_task(self._maintain())
        for profile in self._profiles.values():
            self._kick(profile)

    async def acquire(
        self, tenant: str, runtime: Runtime, limits: SandboxLimits, deadline_s: float | None = None
    ) -> Sandbox | None:
        """An idle sandbox of this runtime and limits, created for nobody; None when the pool does not
        serve this request (no such profile, the tenant's share held, closed): start one cold.

        Waits in order, up to `deadline_s` (default wait_s), when none is idle; raises
        SandboxStartError past it, or when starts keep failing.
        """
        profile = self._profiles.get(PoolKey(runtime, limits))
        if profile is None or self._closed or not self._started:
            self._missed(unpooled=True)
            return None
        if profile.held.get(tenant, 0) >= self._share:
            self._missed(over_share=True)
            return None
        profile.held[tenant] = profile.held.get(tenant, 0) + 1  # held until the sandbox is gone
        try:
            sandbox = self._take_idle(profile)
            if sandbox is not None:
                self._hits += 1
                self._notify(hit=True)
                self._kick(profile, refill=True)
            else:
                self._missed()
                sandbox = await self._wait(
                    profile, tenant, self.settings.wait_s if deadline_s is None else deadline_s
                )
        except BaseException:
            self._unhold(profile, tenant)
            raise
        self._handed[sandbox.sandbox_id] = (profile, tenant)
        return sandbox

    def handed_out(self, sandbox: Sandbox, seconds: float) -> None:
        """The manager attached a pooled sandbox in `seconds` since the request (hand-out latency)."""
        self._latencies.append(seconds)
        self._notify(handout_s=seconds)

    def released(self, sandbox: Sandbox) -> None:
        """A sandbox the pool handed out is gone (its session ended, or its attach failed)."""
        entry = self._handed.pop(sandbox.sandbox_id, None)
        if entry is not None:
            self._unhold(*entry)

    def stats(self) -> PoolStats:
        ordered = sorted(self._latencies)
        profiles = tuple(
            ProfileStats(
                p.name,
                str(p.key.runtime),
                len(p.idle),
                p.starting,
                sum(1 for prof, _t in self._handed.values() if prof is p),
                sum(1 for w in p.waiters if not w.future.done()),
            )
            for p in self._profiles.values()
        )
        return PoolStats(
            size=self.size(),
            hits=self._hits,
            misses=self._misses,
            unpooled=self._unpooled,
            over_share=self._over_share,
            timeouts=self._timeouts,
            start_failures=self._start_failures,
            last_start_failure=self._last_failure,
            retired=self._retired,
            handout_p50_ms=_percentile_ms(ordered, 50),
            handout_p95_ms=_percentile_ms(ordered, 95),
            handout_p99_ms=_percentile_ms(ordered, 99),
            profiles=profiles,
        )

    def size(self) -> int:
        return sum(len(p.idle) for p in self._profiles.values())

    def idle_sandboxes(self) -> list[Sandbox]:
        """The idle sandboxes now, every profile (to look at: taking one is acquire's job)."""
        return [s for p in self._profiles.values() for s, _t in p.idle]

    def holds(self, sandbox: Sandbox) -> bool:
        """True while `sandbox` is idle in this pool."""
        return any(s is sandbox for p in self._profiles.values() for s, _t in p.idle)

    async def aclose(self) -> None:
        """Stop refilling, fail the waiting requests, destroy every idle sandbox. Idempotent."""
        if self._closed:
            return
        self._closed = True
        tasks = [*self._tasks, *([self._maintainer] if self._maintainer is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        idle = []
        for profile in self._profiles.values():
            for waiter in profile.waiters:
                if not waiter.future.done():
                    waiter.future.set_exception(SandboxClosedError("the warm pool is closed"))
            profile.waiters.clear()
            idle += [s for s, _t in profile.idle]
            profile.idle.clear()
        await asyncio.gather(*(self._manager.discard(s) for s in idle), return_exceptions=True)
        self._notify()

    # -- inside -------------------------------------------------------------------------------------

    def _usable(self, sandbox: Sandbox) -> bool:
        return not sandbox.endpoint.closed and self._manager.holds(sandbox)

    def _take_idle(self, profile: _Profile) -> Sandbox | None:
        """The newest idle sandbox that still lives (the oldest are the ones to retire)."""
        while profile.idle:
            sandbox, _since = profile.idle.pop()
            if self._usable(sandbox):
                self._notify()
                return sandbox
            self._retired += 1
            self._spawn(self._manager.discard(sandbox))
        return None

    async def _wait(self, profile: _Profile, tenant: str, deadline_s: float) -> Sandbox:
        waiter = _Waiter(tenant, asyncio.get_running_loop().create_future())
        profile.waiters.append(waiter)
        self._kick(profile)
        try:
            async with self._clock.timeout(deadline_s):
                return await asyncio.shield(waiter.future)
        except BaseException as exc:
            future = waiter.future
            if future.done() and not future.cancelled() and future.exception() is None:
                sandbox = future.result()  # delivered as the wait ended: never lost
                if isinstance(exc, TimeoutError):
                    return sandbox
                self._deliver(profile, sandbox)  # the caller went away: the next one gets it
                raise
            if not future.done():
                future.cancel()
            with contextlib.suppress(ValueError):
                profile.waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                self._timeouts += 1
                raise SandboxStartError(
                    f"no warm sandbox ({profile.name}, {profile.key.runtime}) became free within "
                    f"{deadline_s:g} s: the pool is busy; try again (or raise pool.max or pool.wait_s)"
                ) from None
            raise

    def _deliver(self, profile: _Profile, sandbox: Sandbox) -> None:
        """A sandbox ready for use: to the oldest request still waiting, else idle."""
        while profile.waiters:
            waiter = profile.waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_result(sandbox)
                return
        profile.idle.append((sandbox, self._clock.now()))
        self._notify()

    def _kick(self, profile: _Profile, *, refill: bool = False) -> None:
        """Start what the profile lacks: up to `min` idle, and one per request waiting, within `max`."""
        if self._closed or not self._started:
            return
        waiting = sum(1 for w in profile.waiters if not w.future.done())
        have = len(profile.idle) + profile.starting
        want = max(self.settings.min - have, waiting - profile.starting)
        for _ in range(max(0, min(want, self.settings.max - have))):
            profile.starting += 1
            delay = self._refill_delay_s if refill and not waiting else 0.0
            self._spawn(self._start_one(profile, delay))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start_one(self, profile: _Profile, delay_s: float) -> None:
        backoff = 0.0
        try:
            if delay_s:
                await self._clock.sleep(delay_s)
            assert self._slots is not None
            async with self._slots:
                if self._closed:
                    return
                try:
                    sandbox = await self._manager.create(
                        runtime=profile.key.runtime,
                        limits=profile.key.limits,
                        tenant=POOL_TENANT,
                        late_context=True,
                    )
                except SandboxClosedError:
                    return
                except Exception as exc:  # our errors and bugs alike: counted, said, retried
                    backoff = self._start_failed(profile, exc)
                else:
                    profile.failures_in_a_row = 0
                    sandbox.pool_profile = profile.name
                    self._deliver(profile, sandbox)
            if backoff:
                await self._clock.sleep(backoff)  # still counted as starting: no retry storm meanwhile
        finally:
            profile.starting -= 1
            self._kick(profile)

    def _start_failed(self, profile: _Profile, exc: Exception) -> float:
        self._start_failures += 1
        profile.failures_in_a_row += 1
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        self._last_failure = message
        log.warning(
            "the warm pool could not start a %s sandbox (%s): %s", profile.key.runtime, profile.name, message
        )
        self._notify(start_failed=True)
        if profile.failures_in_a_row >= FAIL_WAITERS_AFTER:
            while profile.waiters:
                waiter = profile.waiters.popleft()
                if not waiter.future.done():
                    waiter.future.set_exception(
                        SandboxStartError(f"the warm pool cannot start sandboxes ({profile.name}): {message}")
                    )
        return min(MAX_BACKOFF_S, 0.25 * 2 ** (profile.failures_in_a_row - 1))

    async def _maintain(self) -> None:
        """Retire idle sandboxes beyond min past idle_retire_s, replace dead ones; every few seconds."""
        tick = min(5.0, self.settings.idle_retire_s / 2)
        while not self._closed:
            await self._clock.sleep(tick)
            try:
                self._upkeep()
            except Exception:  # never let the upkeep die: the pool would stop refilling
                log.exception("the warm pool's upkeep failed")

    def _upkeep(self) -> None:
        now = self._clock.now()
        for profile in self._profiles.values():
            alive = deque((s, t) for s, t in profile.idle if self._usable(s))
            doomed = [s for s, _t in profile.idle if not self._usable(s)]
            while len(alive) > self.settings.min and alive[0][1] + self.settings.idle_retire_s <= now:
                doomed.append(alive.popleft()[0])
            profile.idle = alive
            for sandbox in doomed:
                self._retired += 1
                self._spawn(self._manager.discard(sandbox))
            if doomed:
                self._notify()
            self._kick(profile)

    def _missed(self, *, unpooled: bool = False, over_share: bool = False) -> None:
        self._misses += 1
        self._unpooled += unpooled
        self._over_share += over_share
        self._notify(miss=True)

    def _unhold(self, profile: _Profile, tenant: str) -> None:
        left = profile.held.get(tenant, 0) - 1
        if left > 0:
            profile.held[tenant] = left
        else:
            profile.held.pop(tenant, None)

    def _notify(self, **event: object) -> None:
        if self.listener is None:
            return
        try:
            self.listener.pool_changed(self.size(), **event)  # type: ignore[arg-type]
        except Exception:  # a listener's bug must not break hand-outs
            log.exception("the warm pool's listener failed")


def _percentile_ms(ordered: list[float], pct: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))
    return round(ordered[index] * 1000, 3)
