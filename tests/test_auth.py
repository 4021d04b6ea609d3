"""The auth interceptor on a real grpc.aio server (port 0) with a tiny generic servicer."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from grpc import aio

from orchestrator.server import tenants as tenants_module
from orchestrator.server.auth import (
    QUOTA_TRAILER,
    UNAUTHENTICATED_MESSAGE,
    AuthInterceptor,
    bearer_key,
    current_tenant,
)
from orchestrator.server.metrics import Metrics
from orchestrator.server.ratelimit import RateLimiter, TokenBucket
from orchestrator.server.tenants import Tenant, TenantKeys, TenantQuotas, key_digest, new_api_key

ACME_KEY, ACME_OLD_KEY, BETA_KEY = new_api_key(), new_api_key(), new_api_key()
ACME = Tenant("acme", (key_digest(ACME_KEY), key_digest(ACME_OLD_KEY)), TenantQuotas(calls_per_s=1, burst=3))
BETA = Tenant("beta", (key_digest(BETA_KEY),), TenantQuotas(calls_per_s=1000, burst=1000))
SECRET_PAYLOAD = b"print(open('/context/secret').read())"


class FakeTime:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def _whoami(request: bytes, context: aio.ServicerContext) -> bytes:
    return current_tenant().name.encode()


async def _count(request: bytes, context: aio.ServicerContext) -> AsyncIterator[bytes]:
    for i in range(3):
        yield f"{current_tenant().name}:{i}".encode()


async def _written(request: bytes, context: aio.ServicerContext) -> None:
    await context.write(current_tenant().name.encode())
    await context.write(b"done")


async def _gather(requests: AsyncIterator[bytes], context: aio.ServicerContext) -> bytes:
    return b"".join([r async for r in requests]) + current_tenant().name.encode()


async def _echo(requests: AsyncIterator[bytes], context: aio.ServicerContext) -> AsyncIterator[bytes]:
    async for request in requests:
        yield request + b"@" + current_tenant().name.encode()


async def _missing(request: bytes, context: aio.ServicerContext) -> bytes:
    await context.abort(grpc.StatusCode.NOT_FOUND, "no such run")
    raise AssertionError("unreachable")


async def _broken(request: bytes, context: aio.ServicerContext) -> bytes:
    raise ValueError("a bug")


async def _health(request: bytes, context: aio.ServicerContext) -> bytes:
    return b"SERVING"


@dataclass
class Served:
    target: str
    clock: FakeTime
    log: Lines
    metrics: Metrics
    interceptor: AuthInterceptor
    channels: list[aio.Channel] = field(default_factory=list)

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.lines]


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    clock, lines, metrics = FakeTime(), Lines(), Metrics()
    log = logging.getLogger("test.rlm.calls")
    log.setLevel(logging.INFO)
    log.addHandler(lines)
    interceptor = AuthInterceptor(
        (ACME, BETA), limiter=RateLimiter(clock), log=log, metrics=metrics, clock=clock
    )
    server = aio.server(interceptors=[interceptor])
    test_methods = {
        "WhoAmI": grpc.unary_unary_rpc_method_handler(_whoami),
        "Count": grpc.unary_stream_rpc_method_handler(_count),
        "Written": grpc.unary_stream_rpc_method_handler(_written),
        "Gather": grpc.stream_unary_rpc_method_handler(_gather),
        "Echo": grpc.stream_stream_rpc_method_handler(_echo),
        "Missing": grpc.unary_unary_rpc_method_handler(_missing),
        "Broken": grpc.unary_unary_rpc_method_handler(_broken),
    }
    health = {"Check": grpc.unary_unary_rpc_method_handler(_health)}
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler("test.v1.Test", test_methods),
            grpc.method_handlers_generic_handler("grpc.health.v1.Health", health),
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    state = Served(f"127.0.0.1:{port}", clock, lines, metrics, interceptor)
    try:
        yield state
    finally:
        for channel in state.channels:
            await channel.close()
        await server.stop(None)
        log.removeHandler(lines)


def _channel(served: Served) -> aio.Channel:
    channel = aio.insecure_channel(served.target)
    served.channels.append(channel)
    return channel


def _auth(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


async def _call(served: Served, method: str, metadata: Any = None, request: bytes = b"") -> bytes:
    return await _channel(served).unary_unary(f"/test.v1.Test/{method}")(request, metadata=metadata)


async def _refusal(served: Served, method: str, metadata: Any) -> aio.AioRpcError:
    with pytest.raises(aio.AioRpcError) as caught:
        await _call(served, method, metadata)
    return caught.value


async def test_a_valid_key_sets_the_callers_tenant(served: Served) -> None:
    """Each tenant's key makes current_tenant() that tenant in the servicer; a second key works as well."""
    assert await _call(served, "WhoAmI", _auth(ACME_KEY)) == b"acme"
    assert await _call(served, "WhoAmI", _auth(ACME_OLD_KEY)) == b"acme"
    assert await _call(served, "WhoAmI", _auth(BETA_KEY)) == b"beta"
    scheme_case = (("authorization", f"bearer {BETA_KEY}"),)
    assert await _call(served, "WhoAmI", scheme_case) == b"beta"


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        (("authorization", ""),),
        (("authorization", "Bearer"),),
        (("authorization", f"Basic {ACME_KEY}"),),
        (("authorization", ACME_KEY),),
        (("authorization", "Bearer rlm_not-a-key-of-anyone-here-at-all"),),
        (("authorization", "Bearer " + ACME_KEY[:-1]),),
        (("authorization", "Bearer " + key_digest(ACME_KEY)),),
        (("authorization", f"Bearer {ACME_KEY}"), ("authorization", f"Bearer {BETA_KEY}")),
        (("x-rlm-token", ACME_KEY),),
    ],
)
async def test_missing_malformed_and_wrong_keys_get_one_answer(served: Served, metadata: Any) -> None:
    """No key, a malformed one, a wrong one, a hash, two headers: UNAUTHENTICATED with one message."""
    refused = await _refusal(served, "WhoAmI", metadata)
    assert refused.code() is grpc.StatusCode.UNAUTHENTICATED
    assert refused.details() == UNAUTHENTICATED_MESSAGE
    assert served.log.lines == []  # refused before it was anyone's call


async def test_streaming_methods_are_authenticated_too(served: Served) -> None:
    """Server-, client- and bidirectional streams see the tenant, and refuse a call without a key."""
    channel = _channel(served)
    count = channel.unary_stream("/test.v1.Test/Count")
    assert [r async for r in count(b"", metadata=_auth(BETA_KEY))] == [b"beta:0", b"beta:1", b"beta:2"]
    written = channel.unary_stream("/test.v1.Test/Written")
    assert [r async for r in written(b"", metadata=_auth(BETA_KEY))] == [b"beta", b"done"]

    async def requests() -> AsyncIterator[bytes]:
        for chunk in (b"a", b"b"):
            yield chunk

    gather = channel.stream_unary("/test.v1.Test/Gather")
    assert await gather(requests(), metadata=_auth(BETA_KEY)) == b"abbeta"
    echo = channel.stream_stream("/test.v1.Test/Echo")
    assert [r async for r in echo(requests(), metadata=_auth(BETA_KEY))] == [b"a@beta", b"b@beta"]
    for call in (count(b""), echo(requests())):
        with pytest.raises(aio.AioRpcError) as caught:
            _ = [r async for r in call]
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(aio.AioRpcError) as refused:
        await gather(requests())
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert [line["method"] for line in served.lines()] == [
        "/test.v1.Test/Count",
        "/test.v1.Test/Written",
        "/test.v1.Test/Gather",
        "/test.v1.Test/Echo",
    ]


async def test_health_needs_no_key_and_is_not_logged(served: Served) -> None:
    """grpc.health.v1.Health answers without a key, and health probes do not fill the call log."""
    health = _channel(served).unary_unary("/grpc.health.v1.Health/Check")
    assert await health(b"") == b"SERVING"
    assert served.log.lines == []


async def test_an_unknown_method_is_unimplemented(served: Served) -> None:
    """A method no servicer has is UNIMPLEMENTED, with or without a key: the API's shape is public."""
    for metadata in (None, _auth(ACME_KEY)):
        refused = await _refusal(served, "Nothing", metadata)
        assert refused.code() is grpc.StatusCode.UNIMPLEMENTED


async def test_the_rate_limit_refuses_past_the_burst_and_refills(served: Served) -> None:
    """acme (1 call/s, burst 3): the 4th call at once is RESOURCE_EXHAUSTED naming calls_per_s, with
    the quota in a trailer; a second later one call more passes. beta is not slowed by acme."""
    for _ in range(3):
        assert await _call(served, "WhoAmI", _auth(ACME_KEY)) == b"acme"
    refused = await _refusal(served, "WhoAmI", _auth(ACME_KEY))
    assert refused.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "calls_per_s" in refused.details() and "retry in 1.000 s" in refused.details()
    assert (QUOTA_TRAILER, "calls_per_s") in tuple(refused.trailing_metadata() or ())
    assert await _call(served, "WhoAmI", _auth(BETA_KEY)) == b"beta"
    served.clock.now += 1.0
    assert await _call(served, "WhoAmI", _auth(ACME_KEY)) == b"acme"
    assert (await _refusal(served, "WhoAmI", _auth(ACME_KEY))).code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    codes = [(line["tenant"], line["code"]) for line in served.lines()]
    assert codes.count(("acme", "RESOURCE_EXHAUSTED")) == 2 and ("beta", "OK") in codes
    scrape = served.metrics.render().decode()
    assert 'rlm_quota_refusals_total{quota="calls_per_s"} 2.0' in scrape


async def test_one_log_line_per_call_with_its_code_and_no_secret(served: Served) -> None:
    """Each authenticated call ends in one JSON line: tenant, method, code, duration_ms, peer; never the
    key, its hash, or what the call carried."""
    served.clock.now += 0  # durations come from the injected clock: 0 here
    await _call(served, "WhoAmI", _auth(BETA_KEY), SECRET_PAYLOAD)
    assert (await _refusal(served, "Missing", _auth(BETA_KEY))).code() is grpc.StatusCode.NOT_FOUND
    assert (await _refusal(served, "Broken", _auth(BETA_KEY))).code() is grpc.StatusCode.UNKNOWN
    lines = served.lines()
    assert [(x["method"], x["code"]) for x in lines] == [
        ("/test.v1.Test/WhoAmI", "OK"),
        ("/test.v1.Test/Missing", "NOT_FOUND"),
        ("/test.v1.Test/Broken", "UNKNOWN"),
    ]
    for line in lines:
        assert set(line) == {"event", "tenant", "method", "code", "duration_ms", "peer"}
        assert line["tenant"] == "beta" and line["duration_ms"] == 0 and line["peer"].startswith("ipv4:")
    text = "\n".join(served.log.lines)
    for secret in (BETA_KEY, key_digest(BETA_KEY), SECRET_PAYLOAD.decode(), "a bug"):
        assert secret not in text
    scrape = served.metrics.render().decode()
    assert 'rlm_call_duration_seconds_count{code="NOT_FOUND",method="/test.v1.Test/Missing"} 1.0' in scrape


async def test_update_replaces_the_keys(served: Served) -> None:
    """After update() (a reload) a removed key is refused and the tenant's remaining key still works."""
    served.interceptor.update([Tenant("acme", (key_digest(ACME_KEY),), ACME.quotas), BETA])
    refused = await _refusal(served, "WhoAmI", _auth(ACME_OLD_KEY))
    assert refused.code() is grpc.StatusCode.UNAUTHENTICATED
    assert await _call(served, "WhoAmI", _auth(ACME_KEY)) == b"acme"


def test_current_tenant_outside_a_call_is_a_bug() -> None:
    """current_tenant() outside an authenticated call raises rather than answering for nobody."""
    with pytest.raises(RuntimeError, match="AuthInterceptor"):
        current_tenant()


def test_bearer_key_reads_one_header() -> None:
    """bearer_key takes exactly one authorization header with the Bearer scheme."""
    assert bearer_key((("authorization", "Bearer  k1 "),)) == "k1"
    assert bearer_key((("authorization", "Bearer k1"), ("authorization", "Bearer k2"))) is None
    assert bearer_key((("authorization", b"Bearer k1"),)) is None
    assert bearer_key(None) is None


@pytest.fixture
def compared(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    seen: list[bytes] = []
    real = tenants_module.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        seen.append(a)
        return real(a, b)

    monkeypatch.setattr(tenants_module.hmac, "compare_digest", counting)
    yield seen


def test_every_digest_is_compared_whatever_matches(compared: list[bytes]) -> None:
    """resolve() compares the presented key with every digest of every tenant, in constant time,
    whether the first digest matches, the last, none, or the key is malformed."""
    keys = TenantKeys((ACME, BETA))
    every = 3
    for presented, expected in [
        (ACME_KEY, ACME),
        (BETA_KEY, BETA),
        (new_api_key(), None),
        ("garbage", None),
        (None, None),
        ("x" * 10_000, None),
    ]:
        compared.clear()
        assert keys.resolve(presented) == expected
        assert len(compared) == every


def test_token_bucket_is_pure_arithmetic() -> None:
    """A bucket starts full, refuses with the wait until a token, refills at its rate, caps at burst,
    and ignores a clock that steps back."""
    bucket = TokenBucket.full(rate=2.0, burst=2, now=0.0)
    assert [bucket.take(0.0), bucket.take(0.0)] == [0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.25) == pytest.approx(0.25)
    assert bucket.take(0.5) == 0.0
    assert bucket.take(100.0) == 0.0 and bucket.take(100.0) == 0.0 and bucket.take(100.0) > 0
    assert bucket.take(50.0) > 0


def test_a_tenants_changed_quotas_make_a_new_bucket() -> None:
    """When a tenant's calls_per_s or burst change (a reload), its bucket is made anew from them."""
    clock = FakeTime()
    limiter = RateLimiter(clock)
    one = Tenant("acme", (), TenantQuotas(calls_per_s=1, burst=1))
    assert limiter.take(one) == 0.0 and limiter.take(one) > 0
    assert limiter.take(Tenant("acme", (), TenantQuotas(calls_per_s=1, burst=5))) == 0.0
