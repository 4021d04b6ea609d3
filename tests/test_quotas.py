"""QuotaPolicy: every quota refused as QuotaError naming it, on a fake wall clock, with no sleeps."""

from __future__ import annotations

import datetime

import pytest

from orchestrator.config import Runtime, SandboxConfig, SandboxLimits
from orchestrator.errors import InvalidInputError, NotFoundError, QuotaError
from orchestrator.server.metrics import Metrics
from orchestrator.server.quotas import MemoryTokenCounter, QuotaPolicy, TokenCounter
from orchestrator.server.tenants import Tenant, TenantQuotas

MIB = 1024**2
OPERATOR = SandboxLimits(memory_bytes=2048 * MIB, cpus=4.0)
SMALL = Tenant(
    "small",
    quotas=TenantQuotas(
        max_sandboxes=2,
        max_memory_bytes=256 * MIB,
        max_cpus=0.5,
        max_run_s=60,
        tokens_per_day=1000,
        context_bytes=10 * MIB,
        models=("gpt-4o-mini",),
    ),
)
HARDENED = Tenant("hardened", quotas=TenantQuotas(runtimes=(Runtime.RUNSC,)))
ROOMY = Tenant("roomy", quotas=TenantQuotas(max_memory_bytes=8192 * MIB, max_cpus=16))
# 2026-03-01 23:59:00 UTC
BEFORE_MIDNIGHT = datetime.datetime(2026, 3, 1, 23, 59, tzinfo=datetime.UTC).timestamp()


class WallClock:
    """Unix seconds that move only when the test says."""

    def __init__(self, now: float = BEFORE_MIDNIGHT) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _policy(
    clock: WallClock | None = None, sandbox: SandboxConfig | None = None, metrics: Metrics | None = None
) -> QuotaPolicy:
    return QuotaPolicy(
        (SMALL, HARDENED, ROOMY), MemoryTokenCounter(), clock or WallClock(), sandbox=sandbox, metrics=metrics
    )


def _refused(quota: str) -> pytest.RaisesExc[QuotaError]:
    return pytest.raises(QuotaError, match=quota)


def test_a_request_within_the_quotas_gets_its_limits() -> None:
    """What the request names is kept; what it leaves out is the operator's value capped at the quota."""
    limits, runtime = _policy().sandbox_limits(SMALL, OPERATOR, {"memory": "128m", "timeout": 5})
    assert (limits.memory_bytes, limits.cpus, limits.cell_timeout_s) == (128 * MIB, 0.5, 5.0)
    assert runtime is Runtime.RUNC
    limits, _ = _policy().sandbox_limits(ROOMY, OPERATOR, {})
    assert (limits.memory_bytes, limits.cpus) == (2048 * MIB, 4.0)  # the operator's lower limits win


@pytest.mark.parametrize(
    ("request_", "quota", "limit"),
    [
        ({"memory": "512m"}, "max_memory_bytes", "256m"),
        ({"memory": "64g"}, "max_memory_bytes", "256m"),  # above the operator's too: the quota is named
        ({"cpus": 1}, "max_cpus", "0.5"),
    ],
)
def test_memory_and_cpus_above_the_tenants_ceiling_are_quota_errors(
    request_: dict[str, object], quota: str, limit: str
) -> None:
    """Asking for more memory or CPUs than the tenant's ceiling is QuotaError naming it and its limit."""
    with _refused(quota) as caught:
        _policy().sandbox_limits(SMALL, OPERATOR, request_)
    assert caught.value.quota == quota and limit in caught.value.message
    assert caught.value.code == "RESOURCE_EXHAUSTED"


def test_above_the_operators_limits_is_still_bad_input() -> None:
    """Within the tenant's quota but above the operator's limits: the operator's refusal, bad input."""
    with pytest.raises(InvalidInputError, match="above this operator's limit") as caught:
        _policy().sandbox_limits(ROOMY, OPERATOR, {"memory": "4g"})
    assert not isinstance(caught.value, QuotaError)
    with pytest.raises(InvalidInputError, match="may not set 'privileged'"):
        _policy().sandbox_limits(ROOMY, OPERATOR, {"privileged": True})


def test_a_tenant_required_to_use_runsc() -> None:
    """A tenant whose runtimes quota is runsc gets runsc when it names none, and runc is refused."""
    policy = _policy()
    assert policy.sandbox_limits(HARDENED, OPERATOR, {})[1] is Runtime.RUNSC
    assert policy.sandbox_limits(HARDENED, OPERATOR, {"runtime": "runsc"})[1] is Runtime.RUNSC
    with _refused("runtimes") as caught:
        policy.sandbox_limits(HARDENED, OPERATOR, {"runtime": "runc"})
    assert caught.value.quota == "runtimes" and "runsc" in caught.value.message


def test_runtimes_the_operator_does_not_offer() -> None:
    """The operator's offer bounds every tenant: a runtime not offered is bad input, and a tenant whose
    allowed runtimes are none of those offered is refused by its runtimes quota."""
    only_runc = SandboxConfig(runtimes=(Runtime.RUNC,))
    policy = _policy(sandbox=only_runc)
    with pytest.raises(InvalidInputError, match="not offered here"):
        policy.sandbox_limits(SMALL, OPERATOR, {"runtime": "runsc"})
    with _refused("runtimes"):
        policy.sandbox_limits(HARDENED, OPERATOR, {})
    runsc_default = _policy(sandbox=SandboxConfig(runtime=Runtime.RUNSC))
    assert runsc_default.sandbox_limits(SMALL, OPERATOR, {})[1] is Runtime.RUNSC


async def test_concurrent_sandboxes_are_refused_not_queued() -> None:
    """max_sandboxes 2: a third is refused at once; leaving one frees it, also when the body raised."""
    metrics = Metrics()
    policy = _policy(metrics=metrics)
    async with policy.sandbox(SMALL), policy.sandbox(SMALL):
        assert policy.live_sandboxes(SMALL) == 2
        with _refused("max_sandboxes") as caught:
            async with policy.sandbox(SMALL):
                pass
        assert "max_sandboxes quota of 2" in caught.value.message
        async with policy.sandbox(HARDENED):  # another tenant's count is its own
            assert policy.live_sandboxes("hardened") == 1
        assert "rlm_sandboxes_live 2.0" in metrics.render().decode()
    with pytest.raises(ValueError):
        async with policy.sandbox(SMALL):
            raise ValueError("the body failed")
    assert policy.live_sandboxes(SMALL) == 0
    scrape = metrics.render().decode()
    assert "rlm_sandboxes_live 0.0" in scrape
    assert 'rlm_quota_refusals_total{quota="max_sandboxes"} 1.0' in scrape


def test_run_deadline_is_the_quota_or_less_and_more_is_refused() -> None:
    """No deadline asked: max_run_s; less: what was asked; more: refused (never quietly cut)."""
    policy = _policy()
    assert policy.run_deadline(SMALL) == 60 and policy.run_deadline(SMALL, 0) == 60
    assert policy.run_deadline(SMALL, 30) == 30
    with _refused("max_run_s") as caught:
        policy.run_deadline(SMALL, 61)
    assert "60 s" in caught.value.message
    with pytest.raises(InvalidInputError):
        policy.run_deadline(SMALL, -1)
    with pytest.raises(InvalidInputError):
        policy.run_deadline(SMALL, float("nan"))


def test_models_quota() -> None:
    """A tenant with a models quota may name only those; an empty one allows any."""
    policy = _policy()
    policy.check_model(SMALL, "gpt-4o-mini")
    with _refused("models") as caught:
        policy.check_model(SMALL, "gpt-4o")
    assert caught.value.quota == "models" and "gpt-4o-mini" in caught.value.message
    policy.check_model(ROOMY, "anything")


async def test_tokens_per_day_in_utc_days_of_the_injected_clock() -> None:
    """Tokens count toward today's total (UTC); once it reaches the quota the next check is refused;
    at midnight UTC the count starts again."""
    clock = WallClock()
    counter = MemoryTokenCounter()
    policy = QuotaPolicy((SMALL,), counter, clock)
    assert await policy.check_tokens(SMALL) == 1000
    assert await policy.charge_tokens(SMALL, 600) == 600
    assert await policy.check_tokens(SMALL) == 400
    assert await policy.charge_tokens(SMALL, 600) == 1200  # spent already: counted, never refused
    with _refused("tokens_per_day") as caught:
        await policy.check_tokens(SMALL)
    assert "1200" in caught.value.message and "1000" in caught.value.message
    assert await counter.tokens_today("small", datetime.date(2026, 3, 1)) == 1200
    clock.now += 60  # 00:00 UTC on 2 March
    assert policy.today() == datetime.date(2026, 3, 2)
    assert await policy.check_tokens(SMALL) == 1000


def test_context_bytes_quota() -> None:
    """Stored contexts up to context_bytes are allowed; one more byte is refused naming the quota."""
    policy = _policy()
    policy.check_context_bytes(SMALL, 4 * MIB, 6 * MIB)
    with _refused("context_bytes") as caught:
        policy.check_context_bytes(SMALL, 4 * MIB, 6 * MIB + 1)
    assert "10m" in caught.value.message
    with pytest.raises(InvalidInputError):
        policy.check_context_bytes(SMALL, -1, 0)


def test_an_unknown_tenant_is_not_found_and_configured_quotas_win() -> None:
    """The policy uses the quotas configured under a name, never a Tenant object made by a caller."""
    policy = _policy()
    with pytest.raises(NotFoundError):
        policy.check_model(Tenant("stranger"), "m")
    forged = Tenant("small", quotas=TenantQuotas(max_run_s=7 * 86400))
    with _refused("max_run_s"):
        policy.run_deadline(forged, 3600)


def test_the_run_store_is_a_token_counter() -> None:
    """SqlRunStore satisfies TokenCounter by its own methods (the day passed in is the policy's)."""
    import inspect

    store = pytest.importorskip("orchestrator.store.sql").SqlRunStore
    for name in ("add_tokens", "tokens_today"):
        wanted = list(inspect.signature(getattr(TokenCounter, name)).parameters)
        assert list(inspect.signature(getattr(store, name)).parameters) == wanted
        assert inspect.iscoroutinefunction(getattr(store, name))


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"max_sandboxes": -1}, "max_sandboxes"),
        ({"max_memory_bytes": MIB}, "max_memory_bytes"),
        ({"max_cpus": 0}, "max_cpus"),
        ({"max_run_s": 0}, "max_run_s"),
        ({"tokens_per_day": -1}, "tokens_per_day"),
        ({"context_bytes": -1}, "context_bytes"),
        ({"runtimes": ()}, "runtimes"),
        ({"runtimes": (Runtime.RUNC, Runtime.RUNC)}, "runtimes"),
        ({"models": ("",)}, "model name"),
        ({"calls_per_s": 0}, "calls_per_s"),
        ({"burst": 0}, "burst"),
    ],
)
def test_quotas_are_validated(changes: dict[str, object], needle: str) -> None:
    """Each quota out of range is refused when made, naming it."""
    with pytest.raises(InvalidInputError, match=needle):
        TenantQuotas(**changes)  # type: ignore[arg-type]
