"""When to retry a failed model call, and how long to wait: pure, with the clock left to the caller."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 3  # attempts = 1 + max_retries
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0

    def delay(
        self, attempt: int, retry_after_s: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before retry number `attempt` (1-based): the server's Retry-After if it gave
        one (capped), otherwise exponential backoff with full jitter."""
        if retry_after_s is not None and retry_after_s >= 0:
            return min(retry_after_s, self.max_delay_s)
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return (rng or random).uniform(ceiling / 2, ceiling)


def is_retryable_status(status: int | None) -> bool:
    """429 and 5xx are worth another try; other statuses mean the request itself is wrong."""
    return status is not None and (status == 429 or 500 <= status <= 599)
