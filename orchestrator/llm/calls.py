"""What every provider does around its requests, whatever the endpoint: retries by a RetryPolicy, a
streamed reply's text relayed to its listener once across those retries, and the LLMErrors a failed
request becomes. OpenAIProvider and the tests' in-process fake both run their requests through
`complete_with_retries`, so the two behave the same from the caller's side.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from ..errors import LLMError
from .retry import RetryPolicy, is_retryable_status
from .types import OnReset, OnText, Usage

log = logging.getLogger(__name__)

Attempt = Callable[[OnText | None], Awaitable[tuple[str, Usage]]]
"""One request: given where to send the reply's pieces (None: do not stream), the reply and its usage,
or an LLMError (`retryable` when another request may help)."""


async def complete_with_retries(
    attempt: Attempt,
    policy: RetryPolicy,
    on_text: OnText | None = None,
    on_reset: OnReset | None = None,
    *,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> tuple[str, Usage, int]:
    """Run `attempt` until it succeeds, fails for good or runs out of retries; returns the reply, its
    usage and how many attempts it took. With `on_text`, each attempt streams through a TextRelay, so
    the listener ends up holding exactly the final reply (or nothing, when this raises)."""
    relay = TextRelay(on_text, on_reset) if on_text is not None else None
    tries = 0
    try:
        while True:
            tries += 1
            if relay is not None:
                relay.begin()
            try:
                text, usage = await attempt(relay.piece if relay is not None else None)
            except LLMError as exc:
                if not exc.retryable or tries > policy.max_retries:
                    raise
                wait = policy.delay(tries, exc.retry_after_s)
                log.warning("model call failed (%s); retry %d in %.2f s", exc.message, tries, wait)
                await sleep(wait)
                continue
            if relay is not None:
                relay.finish(text)
            return text, usage, tries
    except BaseException:
        if relay is not None:
            relay.abandon()
        raise


class TextRelay:
    """Passes the pieces of a reply that may be requested several times to one listener, so that it sees
    each character of the final reply once and keeps no text the final reply does not contain.

    The first attempt streams as it comes. A retry that repeats what the listener already holds is
    silent until it goes past it, then only the new part is passed on. A retry that departs from it (or
    ends short of it, or a call that fails for good) makes the relay call `on_reset`, after which the
    listener holds nothing and the pieces start again from the reply's first character. Without
    `on_reset` nothing can be withdrawn: a departing retry is then passed on in full after the old text.
    """

    def __init__(self, on_text: OnText, on_reset: OnReset | None = None) -> None:
        self._on_text = on_text
        self._on_reset = on_reset
        self._held: list[str] = []  # what the listener holds since its last reset, as given
        self._previous = ""  # during a retry: what the listener held when it began
        self._replayed = 0  # during a retry: how much of `_previous` this attempt has repeated
        self._replaying = False

    def begin(self) -> None:
        """A new attempt starts: its pieces are compared with what the listener holds."""
        self._previous = "".join(self._held)
        self._held = [self._previous] if self._previous else []
        self._replayed = 0
        self._replaying = bool(self._previous)

    def piece(self, piece: str) -> None:
        """The current attempt's next piece of text."""
        if not piece:
            return
        if not self._replaying:
            self._give(piece)
            return
        start = self._replayed
        overlap = self._previous[start : start + len(piece)]
        if piece.startswith(overlap):
            self._replayed += len(overlap)
            if len(piece) > len(overlap):  # past what the listener holds: the rest is new
                self._replaying = False
                self._give(piece[len(overlap) :])
            return
        # The retry departs from what the listener holds: void that (when the listener can be told), then
        # give this attempt's text so far.
        self._replaying = False
        self._reset()
        self._give(self._previous[:start] + piece)

    def finish(self, text: str) -> None:
        """The current attempt succeeded with `text`: make sure that is what the listener holds."""
        held = "".join(self._held)
        self._replaying = False
        if held == text:
            return
        if self._reset() and text:
            self._give(text)

    def abandon(self) -> None:
        """The call failed for good: the listener should hold nothing."""
        self._replaying = False
        if self._held:
            self._reset()

    def _give(self, text: str) -> None:
        if text:
            self._held.append(text)
            self._on_text(text)

    def _reset(self) -> bool:
        if self._on_reset is None:
            return False
        self._held = []
        self._on_reset()
        return True


_ERROR_CODE = re.compile(r"^Error code: \d+")  # the SDK's own prefix: the status is said already
_HINTS = {
    401: " (check the API key: the variable the endpoint's api_key_env names, OPENAI_API_KEY by default)",
    403: " (the key lacks access to this model or endpoint)",
    404: " (check the base URL, which usually ends in /v1, and the model name)",
    413: " (the request is too large for this endpoint: a smaller context per call, or another model)",
}


def status_error(status: int, detail: str, retry_after: str | None = None) -> LLMError:
    """The endpoint answered an HTTP error status: retryable for 429 and 5xx, with its Retry-After."""
    try:
        retry_after_s = float(retry_after) if retry_after is not None else None
    except ValueError:
        retry_after_s = None
    detail = _ERROR_CODE.sub("", detail).strip(" -")
    hint = _HINTS.get(status, "")
    return LLMError(
        f"the model endpoint answered {status}" + (f": {detail}" if detail else " with no message") + hint,
        status=status,
        retryable=is_retryable_status(status),
        retry_after_s=retry_after_s,
    )


def connection_error() -> LLMError:
    """The endpoint could not be reached, or the connection broke before the reply was complete."""
    return LLMError("cannot reach the model endpoint", retryable=True)


def not_a_completion(what: str) -> LLMError:
    """The endpoint answered 200 with something else (an HTML page from a proxy, JSON of another API):
    another try would get the same, so it is not retried."""
    return LLMError(f"the model endpoint answered something that is not an OpenAI chat completion: {what}")


def describe_body(body: str | bytes, content_type: str | None = None) -> str:
    """A short, printable description of a body, for an error message."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    shown = " ".join(text.split())[:120]
    kind = f"{content_type} " if content_type else ""
    return f"{kind}{shown!r}" + ("..." if len(text) > 120 else "")


def completion_text(reply: Any) -> str:
    """The first choice's text, from an SDK object or its JSON; LLMError when the reply has no such
    shape. An empty `choices` list, or a message without content (a refusal, a tool call), is ''."""
    choices = field_of(reply, "choices")
    if not isinstance(choices, list):
        raise not_a_completion(f"a reply without choices: {describe_body(_as_json(reply))}")
    if not choices:
        return ""
    message = field_of(choices[0], "message")
    if message is None:
        raise not_a_completion(f"a choice without a message: {describe_body(_as_json(choices[0]))}")
    content = field_of(message, "content")
    if content is None:
        return ""
    if not isinstance(content, str):
        raise not_a_completion(f"a message whose content is not text: {describe_body(_as_json(content))}")
    return content


def _as_json(value: Any) -> str:
    """What the server sent, for a message: an SDK model as the JSON it was built from."""
    to_json = getattr(value, "to_json", None)
    try:
        return str(to_json(indent=None)) if callable(to_json) else json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def field_of(obj: Any, name: str) -> Any:
    """A field of an SDK model or of parsed JSON, None when absent (models built from a body of the wrong
    shape lack fields rather than fail)."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def usage_of(raw: Any) -> Usage:
    def count(name: str) -> int:
        try:
            return max(0, int(field_of(raw, name) or 0))
        except (TypeError, ValueError):
            return 0

    return Usage(count("prompt_tokens"), count("completion_tokens"))


def estimate_usage(payload: Sequence[Mapping[str, str]], text: str, reported: Usage | None = None) -> Usage:
    """The usage the server reported, or, when it reported none, an estimate: 4 characters a token, at
    least 1 each way."""
    if reported is not None and reported.total > 0:
        return reported
    return Usage(sum(len(m["content"]) for m in payload) // 4 + 1, len(text) // 4 + 1)
