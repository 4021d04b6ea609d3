"""The LLM adapter on the `openai` SDK (async): any OpenAI-compatible endpoint. The only module that
imports `openai`; its errors are translated here into LLMError, and so is a reply that is not a chat
completion at all (an HTML page from a proxy, JSON of some other API).

The SDK's own retries are off: RetryPolicy decides (through calls.complete_with_retries), so retries
are bounded, logged and counted, and a retried stream is not shown twice. The API key lives in this
object only: it is never logged, never put in a trajectory or a sandbox.

Streamed requests ask for usage (`stream_options={"include_usage": True}`). An endpoint that refuses
that option with 400 or 422 is asked again without it, once; when that gets past the refusal, the
provider remembers that this endpoint does not take the option (one warning), and from then on streams
without it and estimates usage, as it does for any server that sends none.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import openai

from ..errors import LLMError
from .calls import (
    complete_with_retries,
    completion_text,
    connection_error,
    describe_body,
    estimate_usage,
    field_of,
    not_a_completion,
    status_error,
    usage_of,
)
from .loops import loop_end
from .retry import RetryPolicy
from .types import Completion, Message, OnReset, OnText, Usage

log = logging.getLogger(__name__)

_OPTION_REFUSED = frozenset({400, 422})  # how servers say "unknown field" (422: FastAPI/pydantic ones)


def _unwatched(piece: str) -> None:
    """The listener of a reply streamed with nobody watching it."""


class OpenAIProvider:
    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str,
        request_timeout_s: float = 120.0,
        retry: RetryPolicy | None = None,
        stream: bool = False,
        stop_repeating: bool = False,
    ) -> None:
        """`stream`: every reply is asked for as a stream, with or without a listener (see
        LLMEndpoint.stream). `stop_repeating`: a streamed reply that loops is read no further than
        one turn of its loop (LLMEndpoint.stop_repeating)."""
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "unset", timeout=request_timeout_s, max_retries=0
        )
        self._retry = retry or RetryPolicy()
        self._timeout_s = request_timeout_s
        self._chat: Any = self._client.chat.completions  # typed loosely: payloads are built here
        self._stream_usage = True  # False once this endpoint refused stream_options
        self._always_stream = stream
        self._stop_repeating = stop_repeating

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIProvider(base_url={str(self._client.base_url)!r})"

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
        payload = [{"role": m.role, "content": m.content} for m in messages]
        cap: dict[str, Any] = {"max_tokens": max_tokens} if max_tokens else {}
        if temperature is not None:
            cap["temperature"] = temperature
        if stop:
            cap["stop"] = list(stop)
        started = time.perf_counter()

        async def attempt(emit: OnText | None) -> tuple[str, Usage]:
            # The SDK's timeout bounds each read; this bounds the whole reply, so a stream that trickles
            # forever, or a server that never finishes, ends too.
            try:
                async with asyncio.timeout(self._timeout_s):
                    if emit is None and not self._always_stream:
                        return await self._once(payload, model, cap)
                    return await self._streamed(payload, model, emit or _unwatched, cap)
            except TimeoutError:
                raise LLMError(
                    f"the model endpoint did not finish its reply within {self._timeout_s:g} s "
                    "(the request timeout: --request-timeout, endpoints.*.request_timeout_s)",
                    retryable=True,
                ) from None

        text, usage, attempts = await complete_with_retries(attempt, self._retry, on_text, on_reset)
        return Completion(text, usage, model, time.perf_counter() - started, attempts)

    async def _once(
        self, payload: list[dict[str, str]], model: str, cap: dict[str, Any]
    ) -> tuple[str, Usage]:
        try:
            reply = await self._chat.create(model=model, messages=payload, **cap)
        except openai.OpenAIError as exc:
            raise _translate(exc) from exc
        except ValueError as exc:  # a JSON content type on a body that is not JSON
            raise not_a_completion(f"a body that is not JSON ({exc})") from exc
        if isinstance(reply, str):  # the SDK hands back the text of a body that is not JSON
            raise not_a_completion(describe_body(reply))
        text = completion_text(reply)
        return text, estimate_usage(payload, text, usage_of(field_of(reply, "usage")))

    async def _streamed(
        self, payload: list[dict[str, str]], model: str, emit: OnText, cap: dict[str, Any]
    ) -> tuple[str, Usage]:
        if not self._stream_usage:
            return await self._stream(payload, model, emit, cap, include_usage=False)
        try:
            return await self._stream(payload, model, emit, cap, include_usage=True)
        except LLMError as refused:
            if refused.status not in _OPTION_REFUSED:
                raise
            try:
                result = await self._stream(payload, model, emit, cap, include_usage=False)
            except LLMError as again:
                if again.status in _OPTION_REFUSED:  # refused either way: the option was not the cause
                    raise
                self._drop_stream_options(refused)
                raise
            self._drop_stream_options(refused)
            return result

    def _drop_stream_options(self, refused: LLMError) -> None:
        if self._stream_usage:
            self._stream_usage = False
            log.warning(
                "the model endpoint %s refused stream_options (HTTP %s); streaming without it from now "
                "on, with token usage estimated",
                self._client.base_url,
                refused.status,
            )

    async def _stream(
        self,
        payload: list[dict[str, str]],
        model: str,
        emit: OnText,
        cap: dict[str, Any],
        *,
        include_usage: bool,
    ) -> tuple[str, Usage]:
        options: dict[str, Any] = {"stream_options": {"include_usage": True}} if include_usage else {}
        options.update(cap)
        try:
            stream = await self._chat.create(model=model, messages=payload, stream=True, **options)
        except openai.OpenAIError as exc:
            raise _translate(exc) from exc
        pieces: list[str] = []
        usage = Usage()
        chunks = 0
        watch = _LoopWatch() if self._stop_repeating else None
        try:
            content_type = str(stream.response.headers.get("content-type", ""))
            if content_type and "event-stream" not in content_type:
                text, usage = await _whole_body(stream.response, content_type)
                emit(text)
                return text, estimate_usage(payload, text, usage)
            iterator = stream.__aiter__()
            while True:
                try:
                    chunk = await iterator.__anext__()
                except StopAsyncIteration:
                    break
                except openai.OpenAIError as exc:
                    raise _translate(exc) from exc
                except ValueError as exc:  # an event whose data is not JSON
                    raise not_a_completion(f"a stream event that is not JSON ({exc})") from exc
                raw_usage = field_of(chunk, "usage")
                if raw_usage is not None:
                    usage = usage_of(raw_usage)
                choices = field_of(chunk, "choices")
                if not isinstance(choices, list):
                    continue  # not a chat.completion.chunk (a keep-alive, a vendor's event): skip it
                chunks += 1
                for choice in choices:
                    piece = field_of(field_of(choice, "delta"), "content")
                    if isinstance(piece, str) and piece:
                        pieces.append(piece)
                        emit(piece)
                        if watch is not None:
                            watch.text += piece
                if watch is not None and watch.looping():
                    log.warning(
                        "the reply of %s started looping: read no further after %s characters, one "
                        "turn of the loop kept at %s (endpoints.*.stop_repeating)",
                        model,
                        f"{watch.seen:,}",
                        f"{watch.cut:,}",
                    )
                    break  # closing the stream tells the server to stop generating
        finally:
            await stream.close()
        if chunks == 0 and usage.total == 0:
            raise not_a_completion("a stream without a single chat completion chunk")
        generated = "".join(pieces)
        # A cut loop: the reply is its kept part (the relay then gives the listener exactly that), and
        # its usage is what was generated.
        text = watch.kept if watch is not None and watch.cut else generated
        return text, estimate_usage(payload, generated, usage)

    async def aclose(self) -> None:
        await self._client.close()


class _LoopWatch:
    """Looks for a loop in a streaming reply (loops.loop_end) each time CHECK_EVERY more characters
    have come."""

    CHECK_EVERY = 40

    def __init__(self) -> None:
        self.text = ""  # the reply so far
        self.seen = 0  # the reply's length when last looked at
        self.cut = 0  # where a looping reply ends

    def looping(self) -> bool:
        if len(self.text) - self.seen < self.CHECK_EVERY:
            return False
        self.seen = len(self.text)
        cut = loop_end(self.text)
        self.cut = cut or 0
        return cut is not None

    @property
    def kept(self) -> str:
        return self.text[: self.cut]


async def _whole_body(response: Any, content_type: str) -> tuple[str, Usage]:
    """A streamed request answered with one body: a chat completion in JSON (some servers ignore
    `stream`) is taken as the reply; anything else is not a chat completion."""
    try:
        body = await response.aread()
    except Exception as exc:  # the transport's error while reading: the connection broke
        raise connection_error() from exc
    try:
        data = json.loads(body)
    except ValueError:
        raise not_a_completion(describe_body(body, content_type)) from None
    if not isinstance(data, Mapping):
        raise not_a_completion(describe_body(body, content_type))
    try:
        text = completion_text(data)
    except LLMError:
        raise not_a_completion(describe_body(body, content_type)) from None
    return text, usage_of(data.get("usage"))


def _translate(exc: openai.OpenAIError) -> LLMError:
    """openai's exceptions -> LLMError, with whether a retry may help. Every openai error maps here."""
    if isinstance(exc, openai.APIStatusError):
        header = exc.response.headers.get("retry-after") if exc.response is not None else None
        return status_error(exc.status_code, _brief(exc), header)
    if isinstance(exc, openai.APITimeoutError):
        return LLMError("the model endpoint did not answer in time", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return connection_error()
    return LLMError(f"the model call failed: {type(exc).__name__}: {_brief(exc)}")


def _brief(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc)
    return text.splitlines()[0][:200] if text else type(exc).__name__
