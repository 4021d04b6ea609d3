"""Tenants' quotas, as one pure policy object: the servicer asks it before acting, and it refuses.

    policy = QuotaPolicy(settings.tenants, store, sandbox=settings.sandbox)    # store: a TokenCounter
    limits, runtime = policy.sandbox_limits(tenant, settings.sandbox.limits, request)
    async with policy.sandbox(tenant):                  # one of the tenant's max_sandboxes
        deadline_s = policy.run_deadline(tenant, requested_s)
        policy.check_model(tenant, model)
        await policy.check_tokens(tenant)               # before each model call
        await policy.charge_tokens(tenant, used)        # after it, whatever it cost

Every refusal is `QuotaError(message, quota=NAME)`, NAME the TenantQuotas field, and leaves by gRPC
as RESOURCE_EXHAUSTED; the message names the quota and its limit. Nothing here waits: a full quota is
refused at once, never queued. Days are UTC days of the injected wall clock (Unix seconds), which is
also the day handed to the token counter, so a test moves midnight by moving its clock.
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, NoReturn, Protocol

from ..config import Runtime, SandboxConfig, SandboxLimits, limits_from_request
from ..errors import InvalidInputError, NotFoundError, QuotaError
from .tenants import Tenant, TenantQuotas

if TYPE_CHECKING:
    from .metrics import Metrics


class TokenCounter(Protocol):
    """Tokens used per tenant per UTC day. The run store (orchestrator/store/sql.py) is one."""

    async def add_tokens(self, tenant: str, n: int, day: datetime.date) -> int:
        """Add `n` to the tenant's count for `day`; the new count."""
        ...

    async def tokens_today(self, tenant: str, day: datetime.date) -> int:
        """The tenant's count for `day`."""
        ...


class MemoryTokenCounter:
    """A TokenCounter in a dict, for tests and for a server without a store; forgets at exit."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, datetime.date], int] = {}

    async def add_tokens(self, tenant: str, n: int, day: datetime.date) -> int:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidInputError(f"tokens must be an int >= 0, got {n!r}")
        total = self._counts.get((tenant, day), 0) + n
        self._counts[(tenant, day)] = total
        return total

    async def tokens_today(self, tenant: str, day: datetime.date) -> int:
        return self._counts.get((tenant, day), 0)


class QuotaPolicy:
    """The quotas of the tenants it was given; state (live sandboxes) is per tenant name.

    `tenants` are the configured tenants: a method given a Tenant uses the configured quotas of that
    name, so a caller cannot pass quotas of its own making; an unknown name is NotFoundError.
    `sandbox` is the operator's sandbox configuration: the runtimes offered and the default one.
    """

    def __init__(
        self,
        tenants: Iterable[Tenant],
        tokens: TokenCounter,
        clock: Callable[[], float] = time.time,
        *,
        sandbox: SandboxConfig | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._tenants = {t.name: t for t in tenants}
        self._tokens = tokens
        self._clock = clock
        self._sandbox = sandbox or SandboxConfig()
        self._metrics = metrics
        self._live: dict[str, int] = {}

    # --- sandboxes ---------------------------------------------------------------------------------

    def sandbox_limits(
        self, tenant: Tenant | str, base: SandboxLimits, request: Mapping[str, object]
    ) -> tuple[SandboxLimits, Runtime]:
        """A tenant's sandbox request -> its limits and runtime, within the operator's and its own.

        `base` is the operator's limits (settings.sandbox.limits), which a request may only lower
        (InvalidInputError above them, from config.limits_from_request). Memory or CPUs above the
        tenant's ceiling, or a runtime it may not use, is QuotaError; what the request leaves out is
        the operator's value, capped at the tenant's ceiling. A tenant limited to runsc gets runsc when
        it names no runtime.
        """
        quotas = self._quotas(tenant)
        # Read the request once with no ceiling on memory and CPUs and every runtime allowed, so a value
        # above the tenant's quota is refused as a quota even when it is above the operator's limits too.
        roomy = replace(base, memory_bytes=max(base.memory_bytes, 2**62), cpus=256.0)
        asked, named = limits_from_request(request, roomy, tuple(Runtime))
        if "memory" in request and asked.memory_bytes > quotas.max_memory_bytes:
            self._refuse(
                "max_memory_bytes",
                f"memory {request['memory']!r} is above this tenant's max_memory_bytes quota of "
                f"{_size(quotas.max_memory_bytes)}",
            )
        if "cpus" in request and asked.cpus > quotas.max_cpus:
            self._refuse(
                "max_cpus",
                f"cpus {request['cpus']!r} is above this tenant's max_cpus quota of {quotas.max_cpus:g}",
            )
        if named is not None and named not in quotas.runtimes:
            self._refuse("runtimes", f"runtime {named.value!r} is not allowed: {_runtimes_quota(quotas)}")
        limits, named = limits_from_request(request, base, self._sandbox.runtimes)
        limits = replace(
            limits,
            memory_bytes=min(limits.memory_bytes, quotas.max_memory_bytes),
            cpus=min(limits.cpus, quotas.max_cpus),
        )
        return limits, named or self._default_runtime(quotas)

    def _default_runtime(self, quotas: TenantQuotas) -> Runtime:
        """The operator's default runtime if the tenant may use it, else the tenant's first offered."""
        if self._sandbox.runtime in quotas.runtimes:
            return self._sandbox.runtime
        for runtime in quotas.runtimes:
            if runtime in self._sandbox.runtimes:
                return runtime
        offered = ", ".join(r.value for r in self._sandbox.runtimes)
        self._refuse("runtimes", f"none is offered here ({offered}): {_runtimes_quota(quotas)}")

    @asynccontextmanager
    async def sandbox(self, tenant: Tenant | str) -> AsyncIterator[None]:
        """Hold one of the tenant's `max_sandboxes` for the body; refused at once when all are held."""
        quotas = self._quotas(tenant)
        name = _name(tenant)
        live = self._live.get(name, 0)
        if live >= quotas.max_sandboxes:
            self._refuse(
                "max_sandboxes",
                f"this tenant has {live} sandboxes live, its max_sandboxes quota of "
                f"{quotas.max_sandboxes} (close one, or wait for a run to end)",
            )
        self._live[name] = live + 1  # no await between the check and this: no other task comes between
        if self._metrics is not None:
            self._metrics.sandboxes_live.inc()
        try:
            yield
        finally:
            self._live[name] -= 1
            if self._metrics is not None:
                self._metrics.sandboxes_live.dec()

    def live_sandboxes(self, tenant: Tenant | str) -> int:
        """How many of the tenant's sandboxes are held now."""
        return self._live.get(_name(tenant), 0)

    # --- runs --------------------------------------------------------------------------------------

    def run_deadline(self, tenant: Tenant | str, requested_s: float | None = None) -> float:
        """The wall clock a run gets: what was asked (None or 0: the tenant's max_run_s).

        Asking for more than max_run_s is refused, not quietly cut: a client that planned for an hour
        should hear that it gets less before the run starts, not find its run ended early.
        """
        quotas = self._quotas(tenant)
        if requested_s is None or requested_s == 0:
            return quotas.max_run_s
        if not math.isfinite(requested_s) or requested_s < 0:
            raise InvalidInputError(
                f"a run deadline must be a positive number of seconds, got {requested_s!r}"
            )
        if requested_s > quotas.max_run_s:
            self._refuse(
                "max_run_s",
                f"a run of {requested_s:g} s is above this tenant's max_run_s quota of "
                f"{quotas.max_run_s:g} s",
            )
        return float(requested_s)

    def check_model(self, tenant: Tenant | str, model: str) -> None:
        """Refuse a model the tenant may not use (an empty `models` quota allows any)."""
        quotas = self._quotas(tenant)
        if quotas.models and model not in quotas.models:
            self._refuse(
                "models",
                f"model {model[:200]!r} is not among this tenant's models quota ({', '.join(quotas.models)})",
            )

    # --- tokens ------------------------------------------------------------------------------------

    def today(self) -> datetime.date:
        """Today, as a UTC day of the injected clock."""
        return datetime.datetime.fromtimestamp(self._clock(), datetime.UTC).date()

    async def check_tokens(self, tenant: Tenant | str) -> int:
        """Tokens the tenant has left today; QuotaError once today's total reached tokens_per_day."""
        quotas = self._quotas(tenant)
        used = await self._tokens.tokens_today(_name(tenant), self.today())
        if used >= quotas.tokens_per_day:
            self._refuse(
                "tokens_per_day",
                f"this tenant used {used} tokens today (UTC), its tokens_per_day quota is "
                f"{quotas.tokens_per_day}",
            )
        return quotas.tokens_per_day - used

    async def charge_tokens(self, tenant: Tenant | str, n: int) -> int:
        """Count `n` tokens to today's total and return it. Never refuses: they were spent already;
        the next check_tokens refuses once the total reached the quota."""
        self._quotas(tenant)
        return await self._tokens.add_tokens(_name(tenant), n, self.today())

    # --- stored contexts ---------------------------------------------------------------------------

    def check_context_bytes(self, tenant: Tenant | str, used: int, incoming: int) -> None:
        """Refuse storing `incoming` more bytes when the tenant holds `used` and the sum passes its quota."""
        quotas = self._quotas(tenant)
        if used < 0 or incoming < 0:
            raise InvalidInputError("context sizes must not be negative")
        if used + incoming > quotas.context_bytes:
            self._refuse(
                "context_bytes",
                f"storing {_size(incoming)} more would pass this tenant's context_bytes quota of "
                f"{_size(quotas.context_bytes)} ({_size(used)} stored)",
            )

    # --- helpers -----------------------------------------------------------------------------------

    def _quotas(self, tenant: Tenant | str) -> TenantQuotas:
        configured = self._tenants.get(_name(tenant))
        if configured is None:
            raise NotFoundError(f"no tenant {_name(tenant)[:80]!r}")
        return configured.quotas

    def _refuse(self, quota: str, message: str) -> NoReturn:
        if self._metrics is not None:
            self._metrics.quota_refused(quota)
        raise QuotaError(message, quota=quota)


def _name(tenant: Tenant | str) -> str:
    return tenant if isinstance(tenant, str) else tenant.name


def _runtimes_quota(quotas: TenantQuotas) -> str:
    return f"this tenant's runtimes quota is {', '.join(r.value for r in quotas.runtimes)}"


def _size(n: int) -> str:
    for unit, scale in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return f"{n} bytes"
