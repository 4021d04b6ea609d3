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
    attempts: int = 1


class LLMProvider(Protocol):
    async def complete(
        self, messages: Sequence[Message], *, model: str, on_text: Callable[[str], None] | None = None
    ) -> Completion:
        """One chat completion. With `on_text`, the reply streams and each piece is passed to it."""
        ...

    async def aclose(self) -> None: ...
