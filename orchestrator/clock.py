"""Time, injected: the run, the session and the budget read it here, so tests can drive it.

`SystemClock` is the monotonic clock and asyncio's timers. A test passes a clock of its own (see
tests/fakes/clock.py) whose time moves only when the test says, so deadlines and sub-call clocks are
checked without depending on the machine's speed.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractAsyncContextManager
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once `seconds` have passed on this clock."""
        ...

    def timeout(self, seconds: float) -> AbstractAsyncContextManager[object]:
        """Like asyncio.timeout: the body is cancelled after `seconds`, and TimeoutError raised."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))

    def timeout(self, seconds: float) -> AbstractAsyncContextManager[object]:
        return asyncio.timeout(max(seconds, 0.0))


SYSTEM_CLOCK = SystemClock()
