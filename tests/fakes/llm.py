"""An LLMProvider in process, for fast engine tests: no network, no threads, no sleeps. FOR TESTS ONLY.

`ScriptedProvider(script)` is scripted like tests/fake_llm.py's HTTP server, with the same kind of
script: a function `(seen, index) -> Reply | str`, where `seen` is the same `Seen` view of the request
(`seen.body["model"]`, `seen.body["messages"]` as role/content dicts, `seen.body["stream"]`,
`seen.last_user`, `seen.system`) and `index` counts the requests made so far, retries included. One
script can drive both; tests/test_llm_conformance.py holds the two to the same behaviour. The script
may also return an exception, which that request raises (e.g. `LLMError(..., status=503,
retryable=True)`); an exception the script itself raises propagates as is, so a broken test shows.

What a Reply becomes, as OpenAIProvider makes it of the HTTP server's answer:

- `text`: the reply; with `on_text` it streams in the server's pieces (`fake_llm.pieces`).
- `status` other than 200: the adapter's LLMError (`status`, retryable for 429 and 5xx, Retry-After
  read from `headers`).
- `cut_after_chars=N`: the connection breaks: a stream gives its first N characters, then the request
  raises the adapter's retryable "cannot reach the model endpoint".
- `body`: a raw body: a chat completion in JSON gives its text and usage, anything else the adapter's
  non-retryable "not an OpenAI chat completion".
- `delay_s`: ignored; the fake never waits.

Usage is `fake_llm.usage_for(text)`: what the server reports; for a raw body without usage, the
adapter's estimate (`orchestrator.llm.calls.estimate_usage`). Retries run through the adapter's own
loop (`orchestrator.llm.calls.complete_with_retries`) with this provider's RetryPolicy, so a retried
stream reaches `on_text`/`on_reset` exactly as it does from the adapter; the waits the policy chose are
recorded in `waits`, never slept. Each request yields to the event loop once (`asyncio.sleep(0)`), so
calls made concurrently are in flight together (`max_in_flight`), as on a server.

Recorded: `calls` (one per `complete`: messages, model, whether it streamed), `requests` (one `Seen`
per request, as FakeLLM records them), `waits`, `max_in_flight`, `closed` (how many times `aclose`
ran). After `aclose`, `complete` raises RuntimeError: a closed client cannot send.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, overload

from orchestrator.errors import LLMError
from orchestrator.llm.calls import (
    complete_with_retries,
    completion_text,
    connection_error,
    describe_body,
    estimate_usage,
    not_a_completion,
    status_error,
    usage_of,
)
from orchestrator.llm.retry import RetryPolicy
from orchestrator.llm.types import Completion, Message, OnReset, OnText, Usage

from ..fake_llm import Reply, Seen, pieces, stopped, usage_for
from ..fake_llm import Script as HTTPScript

Script = Callable[[Seen, int], Reply | str | BaseException]


@dataclass(frozen=True)
class Call:
    messages: tuple[Message, ...]
    model: str
    streamed: bool


class ScriptedProvider:
    def __init__(self, script: Script, *, retry: RetryPolicy | None = None) -> None:
        self.script = script
        self.retry = retry or RetryPolicy()
        self.calls: list[Call] = []
        self.requests: list[Seen] = []
        self.waits: list[float] = []
        self.max_in_flight = 0
        self.max_tokens: list[int | None] = []  # the cap each complete() was given
        self.temperatures: list[float | None] = []  # the temperature each complete() was given
        self.closed = 0
        self._in_flight = 0

    def __repr__(self) -> str:
        return f"ScriptedProvider({len(self.calls)} calls, {len(self.requests)} requests)"

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
        self.max_tokens.append(max_tokens)
        self.temperatures.append(temperature)
        if self.closed:
            raise RuntimeError("ScriptedProvider: complete() after aclose()")
        given = tuple(messages)
        self.calls.append(Call(given, model, on_text is not None))
        body = {
            "model": model,
            "messages": [{"role": m.role, "content": m.content} for m in given],
            "stream": on_text is not None,
            **({"temperature": temperature} if temperature is not None else {}),
            **({"stop": list(stop)} if stop else {}),
        }
        started = time.perf_counter()

        async def attempt(emit: OnText | None) -> tuple[str, Usage]:
            return await self._request(body, emit)

        text, usage, attempts = await complete_with_retries(
            attempt, self.retry, on_text, on_reset, sleep=self._wait
        )
        return Completion(text, usage, model, time.perf_counter() - started, attempts)

    async def aclose(self) -> None:
        self.closed += 1

    async def _wait(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def _request(self, body: dict[str, Any], emit: OnText | None) -> tuple[str, Usage]:
        seen = Seen(json.loads(json.dumps(body)), {}, time.monotonic())
        index = len(self.requests)
        self.requests.append(seen)
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            await asyncio.sleep(0)  # a yield, not a wait: concurrent calls are in flight together
            outcome = self.script(seen, index)
            if isinstance(outcome, BaseException):
                raise outcome
            reply = Reply(outcome) if isinstance(outcome, str) else outcome
            text, usage = _answer(stopped(reply, body.get("stop")), emit)
            return text, estimate_usage(body["messages"], text, usage)
        finally:
            seen.finished = time.monotonic()
            self._in_flight -= 1


def _answer(reply: Reply, emit: OnText | None) -> tuple[str, Usage]:
    headers = {k.lower(): v for k, v in reply.headers.items()}
    if reply.status != 200:
        detail = describe_body(reply.body) if reply.body is not None else f"scripted {reply.status}"
        raise status_error(reply.status, detail, headers.get("retry-after"))
    if reply.body is not None:
        text, usage = _raw(reply.body, reply.content_type)
        if emit is not None:
            emit(text)
        return text, usage
    usage = _usage(reply.text)
    cut = reply.cut_after_chars
    if emit is None:
        if cut is not None:
            raise connection_error()
        return reply.text, usage
    sent = 0
    for piece in pieces(reply.text):
        if cut is not None:
            piece = piece[: max(0, cut - sent)]
            if not piece:
                break
        sent += len(piece)
        emit(piece)
    if cut is not None:
        raise connection_error()
    return reply.text, usage


def _raw(body: str | bytes, content_type: str) -> tuple[str, Usage]:
    """A raw 200 body, read as the adapter reads one: a chat completion in JSON, or an error."""
    if "event-stream" in content_type:
        raise AssertionError("ScriptedProvider does not parse raw event streams: script the text")
    try:
        data = json.loads(body)
    except ValueError:
        raise not_a_completion(describe_body(body, content_type)) from None
    if not isinstance(data, dict):
        raise not_a_completion(describe_body(body, content_type))
    try:
        return completion_text(data), usage_of(data.get("usage"))
    except LLMError:
        raise not_a_completion(describe_body(body, content_type)) from None


def _usage(text: str) -> Usage:
    counted = usage_for(text)
    return Usage(counted["prompt_tokens"], counted["completion_tokens"])


@overload
def in_order(*replies: Reply | str) -> HTTPScript: ...
@overload
def in_order(*replies: Reply | str | BaseException) -> Script: ...
def in_order(*replies: Reply | str | BaseException) -> Script:
    """A script giving these replies to the requests in turn (retries take their turn too); made of
    Replies and texts alone, it drives FakeLLM as well."""

    def script(seen: Seen, index: int) -> Reply | str | BaseException:
        if index >= len(replies):
            raise AssertionError(f"the script has {len(replies)} replies; request {index + 1} is extra")
        return replies[index]

    return script
