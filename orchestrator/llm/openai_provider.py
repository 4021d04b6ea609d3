"""The LLM adapter on the `openai` SDK (async): any OpenAI-compatible endpoint. The only module that
imports `openai`; its errors are translated here into LLMError.

The SDK's own retries are off: RetryPolicy decides, so retries are bounded, logged and counted. The
API key lives in this object only: it is never logged, never put in a trajectory or a sandbox.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import openai

from ..errors import LLMError
from .retry import RetryPolicy, is_retryable_status
from .types import Completion, Message, Usage

log = logging.getLogger(__name__)


class OpenAIProvider:
    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str,
        request_timeout_s: float = 120.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "unset", timeout=request_timeout_s, max_retries=0
        )
        self._retry = retry or RetryPolicy()
        self._chat: Any = self._client.chat.completions  # typed loosely: payloads are built here

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIProvider(base_url={str(self._client.base_url)!r})"

    async def complete(
        self, messages: Sequence[Message], *, model: str, on_text: Callable[[str], None] | None = None
    ) -> Completion:
        payload = [{"role": m.role, "content": m.content} for m in messages]
        started = time.perf_counter()
        attempt = 0
        while True:
            attempt += 1
            try:
                if on_text is None:
                    text, usage = await self._once(payload, model)
                else:
                    text, usage = await self._streamed(payload, model, on_text)
                return Completion(text, usage, model, time.perf_counter() - started, attempt)
            except LLMError as exc:
                if not exc.retryable or attempt > self._retry.max_retries:
                    raise
                wait = self._retry.delay(attempt, exc.retry_after_s)
                log.warning("model call failed (%s); retry %d in %.2f s", exc.message, attempt, wait)
                await asyncio.sleep(wait)

    async def _once(self, payload: list[dict[str, str]], model: str) -> tuple[str, Usage]:
        try:
            reply = await self._chat.create(model=model, messages=payload)
        except openai.OpenAIError as exc:
            raise _translate(exc) from exc
        text = (reply.choices[0].message.content or "") if reply.choices else ""
        return text, _usage(reply.usage)

    async def _streamed(
        self, payload: list[dict[str, str]], model: str, on_text: Callable[[str], None]
    ) -> tuple[str, Usage]:
        pieces: list[str] = []
        usage = Usage()
        try:
            stream = await self._chat.create(
                model=model,
                messages=payload,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = _usage(chunk.usage)
                for choice in chunk.choices:
                    piece = choice.delta.content if choice.delta else None
                    if piece:
                        pieces.append(piece)
                        on_text(piece)
        except openai.OpenAIError as exc:
            raise _translate(exc) from exc
        text = "".join(pieces)
        if usage.total == 0:  # the server ignored include_usage: estimate (4 characters a token)
            usage = Usage(sum(len(m["content"]) for m in payload) // 4 + 1, len(text) // 4 + 1)
        return text, usage

    async def aclose(self) -> None:
        await self._client.close()


def _usage(raw: Any) -> Usage:
    if raw is None:
        return Usage()
    return Usage(int(getattr(raw, "prompt_tokens", 0) or 0), int(getattr(raw, "completion_tokens", 0) or 0))


def _translate(exc: openai.OpenAIError) -> LLMError:
    """openai's exceptions -> LLMError, with whether a retry may help. Every openai error maps here."""
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        header = exc.response.headers.get("retry-after") if exc.response is not None else None
        try:
            retry_after = float(header) if header is not None else None
        except ValueError:
            retry_after = None
        return LLMError(
            f"the model endpoint answered {status}: {_brief(exc)}",
            status=status,
            retryable=is_retryable_status(status),
            retry_after_s=retry_after,
        )
    if isinstance(exc, openai.APITimeoutError):
        return LLMError("the model endpoint did not answer in time", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return LLMError("cannot reach the model endpoint", retryable=True)
    return LLMError(f"the model call failed: {type(exc).__name__}: {_brief(exc)}")


def _brief(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc)
    return text.splitlines()[0][:200] if text else type(exc).__name__
