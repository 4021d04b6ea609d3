"""A run's budget: iterations, sub-calls, tokens and the wall clock. Pure, with an injected clock.

One budget serves a whole run, its child RLMs included; only the host touches it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..config import RLMConfig
from ..errors import RunLimitError
from ..llm.types import Usage
from ..status import RunStatus


class RunBudget:
    def __init__(self, config: RLMConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self.subcalls = 0
        self.subcalls_refused = False
        self.usage = Usage()

    def elapsed(self) -> float:
        return self._clock() - self._started

    def remaining_s(self) -> float:
        return self._config.deadline_s - self.elapsed()

    def exhausted(self) -> RunStatus | None:
        """The limit that ends the run now, if any: MAX_SUBCALLS, MAX_TOKENS or DEADLINE."""
        if self.subcalls_refused:
            return RunStatus.MAX_SUBCALLS
        if self.usage.total >= self._config.max_tokens:
            return RunStatus.MAX_TOKENS
        if self.remaining_s() <= 0:
            return RunStatus.DEADLINE
        return None

    def take_subcall(self) -> None:
        """Count one sub-call, or refuse it with the limit that stops it."""
        with self._lock:
            reason = self.exhausted()
            if reason is not None and reason is not RunStatus.MAX_SUBCALLS:
                raise RunLimitError(f"the run's {reason.value.replace('_', ' ')} limit is reached")
            if self.subcalls >= self._config.max_subcalls:
                self.subcalls_refused = True  # the run ends at its next turn
                raise RunLimitError(f"the run's limit of {self._config.max_subcalls} sub-calls is reached")
            self.subcalls += 1

    def add(self, usage: Usage) -> None:
        with self._lock:
            self.usage = self.usage + usage
