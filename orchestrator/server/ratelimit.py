"""Per-tenant rate limits on calls: a token bucket each, pure, on an injected monotonic clock.

    limiter = RateLimiter(clock=time.monotonic)
    wait_s = limiter.take(tenant)   # 0.0: go ahead; otherwise the call is refused, retry in wait_s

A bucket holds up to `burst` tokens and refills at `calls_per_s`; a call takes one. The limiter is
used from the server's event loop only (not thread-safe, by design: no lock on the hot path).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .tenants import Tenant


@dataclass(slots=True)
class TokenBucket:
    """`burst` tokens at most, refilled at `rate` per second; starts full."""

    rate: float
    burst: int
    tokens: float
    stamp: float

    @classmethod
    def full(cls, rate: float, burst: int, now: float) -> TokenBucket:
        return cls(rate=rate, burst=burst, tokens=float(burst), stamp=now)

    def take(self, now: float) -> float:
        """Take one token at `now`: 0.0 when there was one, else the seconds until there is (none taken)."""
        elapsed = max(0.0, now - self.stamp)  # a clock that stepped back refills nothing
        self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate)
        self.stamp = max(self.stamp, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """One bucket per tenant, made on its first call from its quotas (`calls_per_s`, `burst`)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, tenant: Tenant) -> float:
        """0.0 when `tenant` may make a call now (one is counted), else how long until it may."""
        now = self._clock()
        rate, burst = tenant.quotas.calls_per_s, tenant.quotas.burst
        bucket = self._buckets.get(tenant.name)
        if bucket is None or (bucket.rate, bucket.burst) != (rate, burst):  # new, or its quotas changed
            bucket = self._buckets[tenant.name] = TokenBucket.full(rate, burst, now)
        return bucket.take(now)
