"""`rlm serve`: the gRPC server, built from the settings, and its life from start to drain.

    exit_code = asyncio.run(serve(load_settings(path, os.environ), listen="127.0.0.1:50051"))

    server = RLMServer(settings, listen="127.0.0.1:0")   # tests: ports (backend, provider, clock) too
    port = await server.start()
    ...
    await server.stop()                                   # the drain, as on SIGTERM

At start: the run store is opened (migrated) and `recover()` ends every run a crash left `running` as
`error`; the Orchestrator, whose recorder is the store (behind the servicer's ServerRecorder), starts
and reaps the sandboxes those runs' dead server left; the context registry opens under
`storage.data_dir/contexts`; idle sessions are swept every few seconds. The grpc.aio server serves
rlm.v1.RLMService behind the auth interceptor (an API key per tenant, its call rate), with standard
health checking (grpc.health.v1.Health: SERVING while up, NOT_SERVING from the drain on) and server
reflection, both without a key; every message is bounded by `server.max_message_bytes`. TLS (and mTLS)
comes from `server.tls_*` (tls.py); a listener off loopback without TLS is refused (tls.check_listen).

Stop (SIGTERM or SIGINT in `serve`): health goes NOT_SERVING, the server stops accepting calls and gives
those in flight `server.drain_grace_s`; then runs still going are cancelled (recorded as cancelled, and
a RunStream's last event says so), and LAST_WORDS_S later every call left is cancelled; sessions are
closed, the orchestrator closed (no sandbox left), the store and the registry closed. `serve` then
returns 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from rlm_proto.v1 import service_pb2 as pb
from rlm_proto.v1 import service_pb2_grpc as pb_grpc

from ..clock import SYSTEM_CLOCK, Clock
from ..context.registry import ContextRegistry
from ..core import Orchestrator
from ..llm.types import LLMProvider
from ..sandbox.backend import SandboxBackend
from ..settings import Settings
from ..store.sql import SqlRunStore, open_store
from . import tls
from .metrics import Metrics, MetricsEndpoint
from .quotas import QuotaPolicy
from .service import RLMServicer, ServerRecorder
from .sessions import SessionRegistry
from .tenants import Tenant

log = logging.getLogger("rlm.serve")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RLMService"].full_name  # "rlm.v1.RLMService"
RECOVER_REASON = "the server stopped (a crash or kill -9) while this run was in flight"
CONTEXTS_DIR = "contexts"
LAST_WORDS_S = 2.0  # after the drain grace, for cancelled runs' calls to send their last message


class RLMServer:
    """One `rlm serve`: every part built from `settings`; the ports may be passed in (tests)."""

    def __init__(
        self,
        settings: Settings,
        *,
        listen: str | None = None,
        backend: SandboxBackend | None = None,
        provider: LLMProvider | None = None,
        clock: Clock | None = None,
        interceptors: list[aio.ServerInterceptor] | None = None,
        current_tenant: Callable[[], Tenant] | None = None,
    ) -> None:
        self.settings = settings
        # May name port 0 (any free port), which a settings file may not: kept beside the settings.
        self.listen = listen or settings.server.listen
        self._backend = backend
        self._provider = provider
        self._clock = clock or SYSTEM_CLOCK
        self._interceptors = interceptors
        self._current_tenant = current_tenant
        self.port = 0
        self.metrics = Metrics()
        self.store: SqlRunStore | None = None
        self.orchestrator: Orchestrator | None = None
        self.registry: ContextRegistry | None = None
        self.sessions: SessionRegistry | None = None
        self.kept: SessionRegistry | None = None
        self.servicer: RLMServicer | None = None
        self.health: Any = None
        self._server: aio.Server | None = None
        self._metrics_endpoint: MetricsEndpoint | None = None
        self._stopping: asyncio.Future[None] | None = None

    async def start(self) -> int:
        """Open everything and listen; the port bound (for a listen address with port 0, the one
        chosen)."""
        s = self.settings
        # The rule for clear text looks at the host only; port 0 is not a port the settings accept.
        host, _, port = self.listen.rpartition(":")
        shown = self.listen if self.listen.startswith("unix:") or port != "0" else f"{host}:1"
        tls.check_listen(replace(s.server, listen=shown), log)
        credentials = tls.server_credentials(s.server)
        self.store = open_store(s.storage)
        await self.store.open()
        recovered = await self.store.recover(RECOVER_REASON)
        if recovered:
            log.warning("marked %d run(s) left running by a stopped server as failed", len(recovered))
        policy = QuotaPolicy(s.tenants, self.store, sandbox=s.sandbox, metrics=self.metrics)
        recorder = ServerRecorder(self.store, policy, self.metrics)
        self.orchestrator = Orchestrator(
            s,
            backend=self._backend,
            provider=self._provider,
            recorder=recorder,
            clock=self._clock,
            pool_listener=self.metrics,  # the warm pool's size, hits, misses, hand-outs, failures
        )
        await self.orchestrator.start()  # reaps the sandboxes of the server that died
        self.registry = await asyncio.to_thread(ContextRegistry, Path(s.storage.data_dir) / CONTEXTS_DIR)
        self.sessions = SessionRegistry(s.server.session_idle_s, clock=self._clock)
        self.sessions.start_sweeper()
        self.kept = SessionRegistry(s.server.session_idle_s, clock=self._clock)  # runs kept to continue
        self.kept.start_sweeper()
        interceptors, current_tenant = self._auth(s)
        self.servicer = RLMServicer(
            self.orchestrator,
            store=self.store,
            recorder=recorder,
            registry=self.registry,
            policy=policy,
            sessions=self.sessions,
            current_tenant=current_tenant,
            kept=self.kept,
        )
        size = s.server.max_message_bytes
        self._server = aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", size),
                ("grpc.max_send_message_length", size),
                ("grpc.so_reuseport", 0),
            ],
        )
        pb_grpc.add_RLMServiceServicer_to_server(self.servicer, self._server)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable_server_reflection(
            (
                SERVICE_NAME,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self._server,
        )
        self.port = tls.add_port(self._server, self.listen, credentials)
        await self._server.start()
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        if s.server.metrics_listen:
            self._metrics_endpoint = await asyncio.to_thread(self.metrics.start_http, s.server.metrics_listen)
        log.info(
            "rlm serve listening on %s (TLS %s, %d tenant(s))",
            self.address,
            "off" if credentials is None else ("mTLS" if s.server.tls_client_ca else "on"),
            len(s.tenants),
        )
        return self.port

    @property
    def address(self) -> str:
        if self.listen.startswith("unix:"):
            return self.listen
        return f"{self.listen.rpartition(':')[0]}:{self.port}"

    def _auth(self, s: Settings) -> tuple[list[aio.ServerInterceptor], Callable[[], Tenant]]:
        if self._interceptors is not None and self._current_tenant is not None:
            return self._interceptors, self._current_tenant
        from .auth import AuthInterceptor, current_tenant
        from .ratelimit import RateLimiter

        interceptor = AuthInterceptor(
            s.tenants, limiter=RateLimiter(), log=logging.getLogger("rlm.calls"), metrics=self.metrics
        )
        return [interceptor], current_tenant

    async def wait(self) -> None:
        assert self._server is not None
        await self._server.wait_for_termination()

    async def stop(self, grace_s: float | None = None) -> None:
        """The drain (see the module's docstring). Idempotent; concurrent callers share one."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(grace_s))
        await asyncio.shield(self._stopping)

    async def _stop(self, grace_s: float | None) -> None:
        grace = self.settings.server.drain_grace_s if grace_s is None else grace_s
        try:
            if self.health is not None:
                await self.health.enter_graceful_shutdown()
            if self._server is not None:
                # New calls are refused from now on; those in flight get the grace. Runs still going
                # then are cancelled, and their calls get a moment to say so (RunStream's last event
                # is the CANCELLED result) before the server cancels whatever is left.
                stopping = asyncio.ensure_future(self._server.stop(grace + LAST_WORDS_S))
                try:
                    await asyncio.wait_for(asyncio.shield(stopping), grace)
                except TimeoutError:
                    if self.servicer is not None:
                        await self.servicer.drain()
                await stopping
            if self.servicer is not None:
                await self.servicer.drain()
            if self.sessions is not None:
                await self.sessions.aclose()
                if self.kept is not None:
                    await self.kept.aclose()
        finally:
            try:
                if self.orchestrator is not None:
                    await self.orchestrator.aclose()
            finally:
                if self.store is not None:
                    await self.store.aclose()
                if self.registry is not None:
                    self.registry.close()
                if self._metrics_endpoint is not None:
                    await asyncio.to_thread(self._metrics_endpoint.stop)


async def serve(settings: Settings, listen: str | None = None) -> int:
    """Run the server until SIGTERM or SIGINT, then drain; 0 once everything is closed."""
    server = RLMServer(settings, listen=listen)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await server.start()
        await stop.wait()
        log.info("rlm serve: stopping (drain grace %g s)", settings.server.drain_grace_s)
    finally:
        await server.stop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    log.info("rlm serve: stopped")
    return 0


# ---- `rlm serve` ---------------------------------------------------------------------------------------


def add_serve_parser(sub: Any) -> None:
    """`rlm serve --config FILE [--listen HOST:PORT]`, registered by cli.py."""
    serve_cmd = sub.add_parser(
        "serve", help="serve the gRPC API (rlm.v1.RLMService) to the configured tenants"
    )
    serve_cmd.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="settings file (TOML); default $RLM_CONFIG, then built-in defaults",
    )
    serve_cmd.add_argument(
        "--listen", default=None, metavar="HOST:PORT", help="address to listen on; default server.listen"
    )


def serve_main(args: Any, environ: Mapping[str, str]) -> int:
    """Load the settings, log to stderr, serve until SIGTERM or SIGINT (then drain, exit 0)."""
    from ..cli_common import guarded
    from ..settings import load_settings

    def body() -> int:
        settings = load_settings(args.config, environ)
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
        return asyncio.run(serve(settings, args.listen))

    return guarded(body)
