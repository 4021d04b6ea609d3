"""Values and the provider protocol at the seam between the RLM engine and a model endpoint."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Message:
    role: str  # "system", "user" or "assistant"
    content: str


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens
        )

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    usage: Usage
    model: str
    duration_s: float
    attempts: int = 1  # requests the retry policy made (1: no retry)


OnText = Callable[[str], None]
"""Receives the next piece of a streamed reply (never empty)."""

OnReset = Callable[[], None]
"""Says that every piece given to on_text so far is void (a retry answered differently, or the call
failed): the listener should drop them; the next pieces start the reply again from its beginning."""


class LLMProvider(Protocol):
    async def complete(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        on_text: OnText | None = None,
        on_reset: OnReset | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] = (),
    ) -> Completion:
        """One chat completion, retried by the provider's RetryPolicy (429, 5xx, connection errors);
        raises LLMError when it fails for good (`status`, `retryable` say how). With `max_tokens` (when
        positive), the reply has at most that many completion tokens. With `temperature`, the request
        samples at that temperature; without, at the endpoint's default. With `stop` (at most 4
        strings, as OpenAI's API takes them), the reply ends before the first of them it would write.

        With `on_text`, the reply streams and its pieces are passed to it as they come, retries included:
        when this returns, the pieces given since the last `on_reset` join to exactly `Completion.text`;
        when it raises, `on_reset` has been called if anything was given. A retry that repeats the text
        already given passes on only what comes after it, so no character is seen twice. Pass `on_reset`
        whenever you pass `on_text`: without it, text once given cannot be withdrawn, and a retry that
        departs from it is given in full after it."""
        ...

    async def aclose(self) -> None:
        """Release the provider's connections. Idempotent."""
        ...
