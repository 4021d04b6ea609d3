"""One suite for every LLMProvider: OpenAIProvider against the scripted HTTP server (tests/fake_llm.py,
through the real openai client), the in-process ScriptedProvider (tests/fakes/llm.py), and the
orchestrator's RoutingProvider over it, each driven by the same script and held to the same observable
behaviour.

Retries: the fake runs its requests through the adapter's own retry loop
(`orchestrator.llm.calls.complete_with_retries`), so the suite checks the same things of both: the
outcome, `Completion.attempts`, and the requests the endpoint saw. The adapter's extras that have no
in-process meaning (stream_options refused, a stream answered with a page) are tested against the
HTTP server alone, at the end.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from orchestrator.config import LLMEndpoint
from orchestrator.errors import InvalidInputError, LLMError
from orchestrator.llm import LLMProvider, Message, OpenAIProvider, RetryPolicy, Usage
from orchestrator.llm.routing import RoutingProvider

from .fake_llm import FakeLLM, Reply, Script, Seen, usage_for
from .fakes.llm import ScriptedProvider, in_order

FAST = RetryPolicy(max_retries=2, base_delay_s=0.001, max_delay_s=0.005)
LONG = "Streaming keeps its order: ünïcödé, emoji 🙂, and\nnew lines, over many pieces."
NOT_A_COMPLETION = "not an OpenAI chat completion"


@dataclass
class Endpoint:
    provider: LLMProvider
    requests: list[Seen]  # every request the endpoint saw, one per attempt


@dataclass
class Listener:
    """An on_text/on_reset pair that keeps what a screen would show."""

    pieces: list[str] = field(default_factory=list)
    resets: int = 0
    shown: str = ""

    def text(self, piece: str) -> None:
        assert piece, "on_text is never given an empty piece"
        self.pieces.append(piece)
        self.shown += piece

    def reset(self) -> None:
        self.resets += 1
        self.shown = ""


Open = Callable[..., Endpoint]


@pytest.fixture(params=["openai-http", "scripted", "routing"])
async def endpoint(request: pytest.FixtureRequest) -> AsyncIterator[Open]:
    """A function making a provider of the parametrised kind, driven by the given script."""
    opened: list[tuple[LLMProvider, FakeLLM | None]] = []

    def open_(script: Script, retry: RetryPolicy = FAST) -> Endpoint:
        if request.param == "scripted":
            fake = ScriptedProvider(script, retry=retry)
            opened.append((fake, None))
            return Endpoint(fake, fake.requests)
        if request.param == "routing":  # the orchestrator's router, over one in-process fake
            inner = ScriptedProvider(script, retry=retry)
            made: list[LLMEndpoint] = []

            def make(endpoint: LLMEndpoint) -> LLMProvider:
                assert not made, "the router made a second provider for one endpoint"
                made.append(endpoint)
                return inner

            router = RoutingProvider([LLMEndpoint(name="default")], make)
            opened.append((router, None))
            return Endpoint(router, inner.requests)
        server = FakeLLM(script).__enter__()
        provider = OpenAIProvider(base_url=server.url, api_key="sk-test", retry=retry)
        opened.append((provider, server))
        return Endpoint(provider, server.requests)

    yield open_
    for provider, server in opened:
        await provider.aclose()
        if server is not None:
            server.__exit__(None, None, None)


def _user(text: str = "hello") -> list[Message]:
    return [Message("user", text)]


async def test_text_and_model_round_trip(endpoint: Open) -> None:
    """The reply's text comes back as the script wrote it, under the model asked for."""
    ep = endpoint(lambda seen, i: f"{seen.body['model']} says {seen.last_user}")
    completion = await ep.provider.complete(_user("hi"), model="model-a")
    assert (completion.text, completion.model, completion.attempts) == ("model-a says hi", "model-a", 1)
    assert ep.requests[0].body["model"] == "model-a" and completion.duration_s >= 0


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_temperature_reaches_the_endpoint_and_none_is_sent_unasked(
    endpoint: Open, streamed: bool
) -> None:
    """complete(temperature=T) asks the endpoint for T; without one the request names none (the
    endpoint's default: the local model's server has its own)."""
    ep = endpoint(lambda seen, i: "ok")
    listener = Listener()
    on_text = listener.text if streamed else None
    on_reset = listener.reset if streamed else None
    await ep.provider.complete(_user(), model="m", on_text=on_text, on_reset=on_reset, temperature=0.7)
    await ep.provider.complete(_user(), model="m", on_text=on_text, on_reset=on_reset)
    assert ep.requests[0].body["temperature"] == 0.7 and "temperature" not in ep.requests[1].body


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_reply_ends_before_its_first_stop_string(endpoint: Open, streamed: bool) -> None:
    """complete(stop=...) ends the reply before the first stop string it would write (OpenAI's
    semantics: the string itself is not in the reply); without, the request names none."""
    reply = "print(1)\n```\nOutput of block 1:\n1\n```repl\nFINAL(1)\n```"
    ep = endpoint(lambda seen, i: reply)
    listener = Listener()
    on_text, on_reset = (listener.text, listener.reset) if streamed else (None, None)
    cut = await ep.provider.complete(
        _user(), model="m", on_text=on_text, on_reset=on_reset, stop=("\nOutput of block", "never")
    )
    whole = await ep.provider.complete(_user(), model="m")
    assert cut.text == "print(1)\n```" and whole.text == reply
    assert listener.shown == (cut.text if streamed else "")
    assert ep.requests[0].body["stop"] == ["\nOutput of block", "never"] and "stop" not in ep.requests[1].body


@pytest.mark.parametrize("streamed", [False, True])
async def test_usage_counts_prompt_and_completion(endpoint: Open, streamed: bool) -> None:
    """Usage is positive both ways and is what the endpoint reports, streamed or not."""
    ep = endpoint(lambda seen, i: LONG)
    completion = await ep.provider.complete(_user(), model="m", on_text=Listener().text if streamed else None)
    expected = usage_for(LONG)
    assert completion.usage == Usage(expected["prompt_tokens"], expected["completion_tokens"])
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    assert completion.usage.total == completion.usage.prompt_tokens + completion.usage.completion_tokens


async def test_streamed_pieces_join_to_the_plain_reply(endpoint: Open) -> None:
    """A streamed reply arrives in several pieces that join, each character once, to the plain reply."""
    ep = endpoint(lambda seen, i: LONG)
    plain = await ep.provider.complete(_user(), model="m")
    listener = Listener()
    streamed = await ep.provider.complete(_user(), model="m", on_text=listener.text, on_reset=listener.reset)
    assert plain.text == streamed.text == LONG == "".join(listener.pieces)
    assert len(listener.pieces) > 1 and listener.resets == 0
    assert ep.requests[1].body["stream"] is True and not ep.requests[0].body.get("stream")


@pytest.mark.parametrize("streamed", [False, True])
async def test_429_and_5xx_are_retried_then_succeed(endpoint: Open, streamed: bool) -> None:
    """A rate limit and a server error are retried (Retry-After honoured) and the third try answers."""
    ep = endpoint(in_order(Reply(status=429, headers={"Retry-After": "0"}), Reply(status=503), "at last"))
    listener = Listener()
    completion = await ep.provider.complete(
        _user(), model="m", on_text=listener.text if streamed else None, on_reset=listener.reset
    )
    assert (completion.text, completion.attempts, len(ep.requests)) == ("at last", 3, 3)
    assert listener.shown == ("at last" if streamed else "")


async def test_400_is_not_retried(endpoint: Open) -> None:
    """A request the endpoint refuses as wrong fails at once: LLMError, status 400, not retryable."""
    ep = endpoint(lambda seen, i: Reply(status=400))
    with pytest.raises(LLMError) as caught:
        await ep.provider.complete(_user(), model="m")
    assert (caught.value.status, caught.value.retryable, len(ep.requests)) == (400, False, 1)


async def test_400_on_a_stream_is_not_retried(endpoint: Open) -> None:
    """Streamed, a 400 fails the same way (the HTTP adapter asks once more without stream_options)."""
    ep = endpoint(lambda seen, i: Reply(status=400))
    listener = Listener()
    with pytest.raises(LLMError) as caught:
        await ep.provider.complete(_user(), model="m", on_text=listener.text, on_reset=listener.reset)
    assert (caught.value.status, caught.value.retryable) == (400, False)
    assert len(ep.requests) <= 2 and listener.pieces == []


@pytest.mark.parametrize("streamed", [False, True])
async def test_persistent_500_fails_after_every_retry(endpoint: Open, streamed: bool) -> None:
    """A 500 on every try raises LLMError (status 500, retryable) after max_retries + 1 requests."""
    ep = endpoint(lambda seen, i: Reply(status=500))
    with pytest.raises(LLMError) as caught:
        await ep.provider.complete(_user(), model="m", on_text=Listener().text if streamed else None)
    assert (caught.value.status, caught.value.retryable) == (500, True)
    assert len(ep.requests) == FAST.max_retries + 1


async def test_messages_arrive_in_order_with_roles(endpoint: Open) -> None:
    """The conversation reaches the endpoint whole: every message, in order, with its role."""
    ep = endpoint(lambda seen, i: "ok")
    conversation = [
        Message("system", "be brief"),
        Message("user", "first"),
        Message("assistant", "an answer"),
        Message("user", "second"),
    ]
    await ep.provider.complete(conversation, model="m")
    sent = [(m["role"], m["content"]) for m in ep.requests[0].body["messages"]]
    assert sent == [(m.role, m.content) for m in conversation]
    assert ep.requests[0].system == "be brief" and ep.requests[0].last_user == "second"


async def test_aclose_is_idempotent(endpoint: Open) -> None:
    """aclose can be called twice; a closed provider refuses to send rather than hang."""
    ep = endpoint(lambda seen, i: "ok")
    await ep.provider.complete(_user(), model="m")
    await ep.provider.aclose()
    await ep.provider.aclose()
    with pytest.raises(RuntimeError):
        await ep.provider.complete(_user(), model="m")


async def test_a_stream_cut_midway_is_retried_and_shown_once(endpoint: Open) -> None:
    """A stream that breaks after 20 characters is retried; the listener sees the reply once, no reset."""
    ep = endpoint(in_order(Reply(LONG, cut_after_chars=20), LONG))
    listener = Listener()
    completion = await ep.provider.complete(
        _user(), model="m", on_text=listener.text, on_reset=listener.reset
    )
    assert completion.text == LONG and completion.attempts == 2 and len(ep.requests) == 2
    assert "".join(listener.pieces) == LONG and listener.resets == 0


async def test_a_retry_that_answers_differently_resets_the_listener(endpoint: Open) -> None:
    """When the retry's reply departs from the text already shown, the listener is reset first."""
    ep = endpoint(in_order(Reply("Hello there, my friend", cut_after_chars=15), "Hello world"))
    listener = Listener()
    completion = await ep.provider.complete(
        _user(), model="m", on_text=listener.text, on_reset=listener.reset
    )
    assert completion.text == listener.shown == "Hello world" and listener.resets == 1
    assert "there" not in listener.shown


async def test_a_retry_that_answers_shorter_resets_the_listener(endpoint: Open) -> None:
    """A retry whose whole reply is a prefix of what was shown leaves the listener holding just it."""
    ep = endpoint(in_order(Reply("Hello there, my friend", cut_after_chars=15), "Hello"))
    listener = Listener()
    completion = await ep.provider.complete(
        _user(), model="m", on_text=listener.text, on_reset=listener.reset
    )
    assert completion.text == listener.shown == "Hello" and listener.resets == 1


async def test_a_stream_that_never_completes_leaves_nothing_shown(endpoint: Open) -> None:
    """Cut on every try, the call fails (retryable) and the listener is told to drop what it was shown."""
    ep = endpoint(lambda seen, i: Reply(LONG, cut_after_chars=12))
    listener = Listener()
    with pytest.raises(LLMError) as caught:
        await ep.provider.complete(_user(), model="m", on_text=listener.text, on_reset=listener.reset)
    assert caught.value.retryable and caught.value.status is None
    assert listener.shown == "" and listener.resets == 1 and "".join(listener.pieces) == LONG[:12]
    assert len(ep.requests) == FAST.max_retries + 1


async def test_a_plain_reply_cut_midway_is_retried(endpoint: Open) -> None:
    """A non-streamed reply whose connection breaks mid-body is retried like a connection error."""
    ep = endpoint(in_order(Reply("whole", cut_after_chars=2), "whole"))
    completion = await ep.provider.complete(_user(), model="m")
    assert (completion.text, completion.attempts) == ("whole", 2)


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"),
        ('{"result": "an answer from another API"}', "application/json"),
        ('{"choices": [{"text": "a legacy completion"}]}', "application/json"),
        ('{"choices": ', "application/json"),
        ("[1, 2, 3]", "application/json"),
    ],
    ids=["html", "other-json", "legacy", "broken-json", "json-list"],
)
async def test_a_reply_that_is_not_a_chat_completion_is_an_llm_error(
    endpoint: Open, streamed: bool, body: str, content_type: str
) -> None:
    """A 200 whose body is not a chat completion raises a non-retryable LLMError saying so."""
    ep = endpoint(lambda seen, i: Reply(body=body, content_type=content_type))
    listener = Listener()
    with pytest.raises(LLMError, match=NOT_A_COMPLETION) as caught:
        await ep.provider.complete(_user(), model="m", on_text=listener.text if streamed else None)
    assert caught.value.retryable is False and len(ep.requests) == 1 and listener.pieces == []


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_json_completion_body_is_read_streamed_or_not(endpoint: Open, streamed: bool) -> None:
    """A plain JSON chat completion is the reply even to a streamed request (some servers ignore stream)."""
    body = '{"choices": [{"index": 0, "message": {"role": "assistant", "content": "plain"}}], ' + (
        '"usage": {"prompt_tokens": 3, "completion_tokens": 2}}'
    )
    ep = endpoint(lambda seen, i: Reply(body=body, content_type="application/json"))
    listener = Listener()
    completion = await ep.provider.complete(_user(), model="m", on_text=listener.text if streamed else None)
    assert completion.text == "plain" and completion.usage == Usage(3, 2)
    assert listener.shown == ("plain" if streamed else "")


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_completion_without_usage_gets_an_estimate(endpoint: Open, streamed: bool) -> None:
    """A reply whose server reports no usage is counted at 4 characters a token, at least 1 each way."""
    body = '{"choices": [{"index": 0, "message": {"role": "assistant", "content": "twelve chars"}}]}'
    ep = endpoint(lambda seen, i: Reply(body=body, content_type="application/json"))
    completion = await ep.provider.complete(
        _user("a prompt"), model="m", on_text=Listener().text if streamed else None
    )
    assert completion.usage == Usage(len("a prompt") // 4 + 1, len("twelve chars") // 4 + 1)


# The HTTP adapter alone: what only a real wire can do.


async def test_refused_stream_options_are_dropped_once_and_remembered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An endpoint answering 400 to stream_options is asked again without, one warning, then never again."""
    with FakeLLM(lambda seen, i: LONG, reject_stream_options=True) as fake:
        provider = OpenAIProvider(base_url=fake.url, api_key="sk-test", retry=FAST)
        listener = Listener()
        with caplog.at_level(logging.WARNING, logger="orchestrator.llm"):
            first = await provider.complete(
                _user(), model="m", on_text=listener.text, on_reset=listener.reset
            )
            second = await provider.complete(_user(), model="m", on_text=Listener().text)
            plain = await provider.complete(_user(), model="m")
        await provider.aclose()
    assert first.text == second.text == plain.text == LONG == listener.shown and first.attempts == 1
    assert ["stream_options" in seen.body for seen in fake.requests] == [True, False, False, False]
    assert fake.rejected == 1
    estimated = Usage(len("hello") // 4 + 1, len(LONG) // 4 + 1)  # the server sent no usage
    assert first.usage == second.usage == estimated and plain.usage.prompt_tokens == 10
    warnings = [r for r in caplog.records if "stream_options" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "sk-test" not in caplog.text


async def test_a_400_for_another_reason_keeps_stream_options(caplog: pytest.LogCaptureFixture) -> None:
    """A streamed 400 that stream_options did not cause is raised, and the option stays on."""
    script = in_order(Reply(status=400), Reply(status=400), "fine")
    with FakeLLM(script) as fake:
        provider = OpenAIProvider(base_url=fake.url, api_key="sk-test", retry=FAST)
        with caplog.at_level(logging.WARNING, logger="orchestrator.llm"), pytest.raises(LLMError) as caught:
            await provider.complete(_user(), model="m", on_text=Listener().text)
        completion = await provider.complete(_user(), model="m", on_text=Listener().text)
        await provider.aclose()
    assert caught.value.status == 400 and completion.text == "fine"
    assert ["stream_options" in seen.body for seen in fake.requests] == [True, False, True]
    assert not [r for r in caplog.records if "stream_options" in r.getMessage()]


@pytest.mark.parametrize("always", [False, True])
async def test_an_endpoint_set_to_stream_streams_every_reply(always: bool) -> None:
    """OpenAIProvider(stream=True) (LLMEndpoint.stream) asks for a stream with nobody watching too,
    so a server that stops on a disconnect stops a reply the timeout gave up on; the reply and its
    usage are the same as asked for plainly."""
    with FakeLLM(lambda seen, i: LONG) as fake:
        provider = OpenAIProvider(base_url=fake.url, api_key="sk-test", retry=FAST, stream=always)
        completion = await provider.complete(_user(), model="m")
        await provider.aclose()
    assert completion.text == LONG
    assert completion.usage.completion_tokens == usage_for(LONG)["completion_tokens"]
    assert bool(fake.requests[0].body.get("stream")) is always


async def test_an_html_page_for_a_stream_is_an_llm_error() -> None:
    """A proxy's HTML page served to a streamed request raises, quoting the page, rather than read as ''."""
    page = "<html><body>Service Unavailable</body></html>"
    with FakeLLM(lambda seen, i: Reply(body=page, content_type="text/html; charset=utf-8")) as fake:
        provider = OpenAIProvider(base_url=fake.url, api_key="sk-test", retry=FAST)
        with pytest.raises(LLMError, match="Service Unavailable") as caught:
            await provider.complete(_user(), model="m", on_text=Listener().text)
        await provider.aclose()
    assert NOT_A_COMPLETION in caught.value.message and "text/html" in caught.value.message


async def test_an_event_stream_without_chunks_is_an_llm_error() -> None:
    """An event stream with no chat completion chunk in it is not taken for an empty reply."""
    body = 'data: {"unrelated": true}\n\ndata: [DONE]\n\n'
    with FakeLLM(lambda seen, i: Reply(body=body, content_type="text/event-stream")) as fake:
        provider = OpenAIProvider(base_url=fake.url, api_key="sk-test", retry=FAST)
        with pytest.raises(LLMError, match=NOT_A_COMPLETION):
            await provider.complete(_user(), model="m", on_text=Listener().text)
        await provider.aclose()


# The in-process fake alone: what it records, and what only it can be scripted to do.


async def test_scripted_provider_records_calls_and_raises_scripted_errors() -> None:
    """It records each call's messages and model, raises an error the script returns, and never sleeps."""
    flaky = LLMError("overloaded", status=503, retryable=True, retry_after_s=30.0)
    fake = ScriptedProvider(in_order(flaky, "done"), retry=RetryPolicy(max_retries=1, max_delay_s=60))
    completion = await fake.complete([Message("system", "s"), Message("user", "u")], model="big")
    assert completion.text == "done" and completion.attempts == 2
    assert [(c.model, c.messages, c.streamed) for c in fake.calls] == [
        ("big", (Message("system", "s"), Message("user", "u")), False)
    ]
    assert fake.waits == [30.0] and completion.duration_s < 1  # the wait was chosen, not slept
    with pytest.raises(AssertionError, match="extra"):
        await fake.complete(_user(), model="big")


async def test_scripted_provider_calls_are_in_flight_together() -> None:
    """Concurrent calls overlap in the fake as they would on a server."""
    import asyncio

    fake = ScriptedProvider(lambda seen, i: seen.last_user.upper())
    texts = await asyncio.gather(*(fake.complete(_user(w), model="m") for w in ["a", "b", "c"]))
    assert [t.text for t in texts] == ["A", "B", "C"] and fake.max_in_flight == 3


async def test_a_looping_stream_is_read_no_further_than_one_turn(caplog: pytest.LogCaptureFixture) -> None:
    """stop_repeating (for small models): a streamed reply that writes the same paragraph again and
    again (recorded from the 1.5B model, three copies of one block in 950 tokens) is read until its
    loop is plain, one turn of it kept, and the stream closed; a reply that does not loop is whole."""
    turn = "```repl\nprint(sum(amounts))\n```\nThe output will show the total of the amount column.\n"
    looping = "First I read the file.\n" + turn * 40
    varied = "".join(f"line {n}: {LONG}\n" for n in range(30))  # alike, but no two lines the same
    with FakeLLM(lambda seen, i: looping if seen.last_user == "loop" else varied) as fake:
        provider = OpenAIProvider(base_url=fake.url, api_key="sk-test", retry=FAST, stop_repeating=True)
        listener = Listener()
        with caplog.at_level(logging.WARNING, logger="orchestrator.llm"):
            cut = await provider.complete(_user("loop"), model="m", on_text=listener.text)
            whole = await provider.complete(_user("plain"), model="m", on_text=Listener().text)
        await provider.aclose()
    assert cut.text == "First I read the file.\n" + turn and cut.attempts == 1
    assert len(listener.shown) < len(looping) // 4  # the rest of the loop was never read
    assert whole.text == varied
    assert caplog.text.count("started looping") == 1


def test_stop_repeating_needs_a_streaming_endpoint() -> None:
    with pytest.raises(InvalidInputError, match="stop_repeating needs stream"):
        LLMEndpoint(name="local", stop_repeating=True)
    assert LLMEndpoint(name="local", stream=True, stop_repeating=True).stop_repeating
