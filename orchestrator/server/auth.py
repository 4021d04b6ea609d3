"""Who is calling: API keys checked by a gRPC interceptor, the tenant set for the call, one log line each.

    interceptor = AuthInterceptor(settings.tenants, limiter=RateLimiter(), log=logging.getLogger("rlm.calls"))
    server = grpc.aio.server(interceptors=[interceptor])
    ...
    tenant = current_tenant()       # in a servicer method: the caller's Tenant

A call carries `authorization: Bearer rlm_...`. The key is hashed and compared with every tenant's
digests in constant time (tenants.TenantKeys); a missing, malformed or unknown key gets the same
UNAUTHENTICATED and the same message. Then the tenant's rate limit (`calls_per_s`, `burst`) takes one
token, or the call is refused with RESOURCE_EXHAUSTED naming `calls_per_s`. The health and reflection
services need no key. Every authenticated call ends with ONE structured log line (JSON: tenant,
method, code, duration_ms, peer); it never holds a key, a token, a request or a reply.

The handler's behaviour is wrapped, not replaced, so the same code serves unary and streaming
methods, and the tenant is set in the task that runs the servicer.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import grpc
from grpc import aio

from .ratelimit import RateLimiter
from .tenants import Tenant, TenantKeys

if TYPE_CHECKING:
    from .metrics import Metrics

UNAUTHENTICATED_MESSAGE = "missing, malformed or unknown API key (send 'authorization: Bearer <key>')"
PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")  # no key needed
QUOTA_TRAILER = "x-rlm-quota"  # names the quota a RESOURCE_EXHAUSTED refusal is about
ERROR_TRAILER = "x-rlm-error"  # the error class, as the sandbox host's refusals carry it

_CURRENT: contextvars.ContextVar[Tenant | None] = contextvars.ContextVar("rlm_tenant", default=None)
_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
_MAKERS = {
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}


def current_tenant() -> Tenant:
    """The tenant of the call being served; RuntimeError outside an authenticated call (a bug)."""
    tenant = _CURRENT.get()
    if tenant is None:
        raise RuntimeError("no authenticated tenant here: is the AuthInterceptor installed?")
    return tenant


def bearer_key(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The key of the one `authorization: Bearer <key>` header, else None (none, several, other scheme)."""
    values = [v for k, v in metadata or () if k == "authorization"]
    if len(values) != 1 or not isinstance(values[0], str):
        return None
    scheme, _, key = values[0].strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key.strip()


class AuthInterceptor(aio.ServerInterceptor):
    """Authenticates every call but health and reflection, rate-limits it, logs it when it ends."""

    def __init__(
        self,
        tenants: Iterable[Tenant],
        *,
        limiter: RateLimiter,
        log: logging.Logger,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = TenantKeys(tenants)
        self._limiter = limiter
        self._log = log
        self._metrics = metrics
        self._clock = clock

    def update(self, tenants: Iterable[Tenant]) -> None:
        """Replace the tenants (a reload): calls that start after this use the new keys and quotas."""
        self._keys = TenantKeys(tenants)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = details.method
        handler = await continuation(details)
        if method.startswith(PUBLIC_PREFIXES) or handler is None:
            return handler  # an unknown method is UNIMPLEMENTED whoever asks: the API is public
        tenant = self._keys.resolve(bearer_key(details.invocation_metadata))
        for kind in _KINDS:
            behaviour = getattr(handler, kind)
            if behaviour is not None:
                wrapped = self._wrap(behaviour, method, tenant)
                return _MAKERS[kind](
                    wrapped,
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler

    def _wrap(self, behaviour: Callable[..., Any], method: str, tenant: Tenant | None) -> Callable[..., Any]:
        if inspect.isasyncgenfunction(behaviour):

            async def streaming(request: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
                started = self._clock()
                outcome = "UNKNOWN"
                try:
                    await self._admit(tenant, context)
                    # Set in this RPC's own task, whose context dies with it: nothing to reset.
                    _CURRENT.set(tenant)
                    async for reply in behaviour(request, context):
                        yield reply
                    outcome = _code(context, "OK")
                except BaseException as exc:
                    outcome = _failed(exc, context)
                    raise
                finally:
                    self._ended(tenant, method, outcome, started, context)

            return streaming

        async def unary(request: Any, context: aio.ServicerContext) -> Any:
            started = self._clock()
            outcome = "UNKNOWN"
            token = None
            try:
                await self._admit(tenant, context)
                token = _CURRENT.set(tenant)
                result = behaviour(request, context)
                if inspect.isawaitable(result):
                    result = await result
                outcome = _code(context, "OK")
                return result
            except BaseException as exc:
                outcome = _failed(exc, context)
                raise
            finally:
                if token is not None:
                    _CURRENT.reset(token)
                self._ended(tenant, method, outcome, started, context)

        return unary

    async def _admit(self, tenant: Tenant | None, context: aio.ServicerContext) -> None:
        if tenant is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)
            return
        wait_s = self._limiter.take(tenant)
        if wait_s > 0:
            if self._metrics is not None:
                self._metrics.quota_refused("calls_per_s")
            quotas = tenant.quotas
            context.set_trailing_metadata(((ERROR_TRAILER, "QuotaError"), (QUOTA_TRAILER, "calls_per_s")))
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"rate limit: this tenant's calls_per_s quota is {quotas.calls_per_s:g} "
                f"(burst {quotas.burst}); retry in {wait_s:.3f} s",
            )

    def _ended(
        self, tenant: Tenant | None, method: str, code: str, started: float, context: aio.ServicerContext
    ) -> None:
        seconds = max(0.0, self._clock() - started)
        if self._metrics is not None:
            self._metrics.call_ended(method, code, seconds)
        if tenant is None:
            return  # refused before it was anyone's call: counted in the metrics, not logged
        line = {
            "event": "call",
            "tenant": tenant.name,
            "method": method,
            "code": code,
            "duration_ms": round(seconds * 1000, 3),
            "peer": context.peer(),
        }
        self._log.info(json.dumps(line, separators=(",", ":")))


def _code(context: aio.ServicerContext, default: str) -> str:
    """The status the servicer set (set_code, or abort), else `default`."""
    try:
        code = context.code()
    except Exception:  # not every grpc build keeps it readable
        return default
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), default)
    return default


def _failed(exc: BaseException, context: aio.ServicerContext) -> str:
    if isinstance(exc, asyncio.CancelledError):
        return "CANCELLED"
    if isinstance(exc, aio.AbortError):
        return _code(context, "UNKNOWN")
    return "UNKNOWN"  # an exception from the servicer: gRPC answers UNKNOWN
