"""Prometheus metrics of `rlm serve`, served as text on a port of their own (off by default).

    metrics = Metrics()                         # a registry of its own, not prometheus_client's global
    endpoint = metrics.start_http("127.0.0.1:9464")
    metrics.run_ended("completed"); metrics.call_ended("/rlm.v1.Rlm/Run", "OK", 0.2)
    endpoint.stop()

No label holds a tenant's name, a key, a model's prompt or anything a caller sent: only statuses,
quota names, gRPC method names and codes, whose sets are fixed. `prometheus_client` is the reference
client, well kept, and does the text format, the histogram buckets and a threaded HTTP server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import start_http_server

# gRPC calls range from a health check (sub-millisecond) to a run (up to hours).
_CALL_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0, 1800.0, 7200.0)
# A warm hand-out takes milliseconds; a wait for a start, or a cold one, a quarter second and more.
_HANDOUT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0)


class Metrics:
    """Every metric of the server, in `registry`. Methods are cheap and safe from any thread."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs = Counter("rlm_runs", "Runs ended, by their status.", ["status"], registry=r)
        self.sandboxes_live = Gauge("rlm_sandboxes_live", "Sandboxes held by tenants now.", registry=r)
        self.quota_refusals = Counter(
            "rlm_quota_refusals", "Calls refused by a tenant quota, by quota.", ["quota"], registry=r
        )
        self.call_seconds = Histogram(
            "rlm_call_duration_seconds",
            "gRPC calls by method and status code, with their duration.",
            ["method", "code"],
            buckets=_CALL_BUCKETS,
            registry=r,
        )
        # The warm pool's hook: it sets its size and counts hand-outs from it (hits) and cold starts.
        self.pool_size = Gauge("rlm_pool_size", "Idle sandboxes in the warm pool.", registry=r)
        self.pool_hits = Counter("rlm_pool_hits", "Sandboxes handed out from the warm pool.", registry=r)
        self.pool_misses = Counter(
            "rlm_pool_misses",
            "Requests the pool did not serve at once: they waited for a start, or started cold.",
            registry=r,
        )
        self.pool_handout_seconds = Histogram(
            "rlm_pool_handout_seconds",
            "From a request to a pooled sandbox attached to its run (context and token bound).",
            buckets=_HANDOUT_BUCKETS,
            registry=r,
        )
        self.pool_start_failures = Counter(
            "rlm_pool_start_failures", "Sandboxes the warm pool failed to start.", registry=r
        )

    def run_ended(self, status: str) -> None:
        self.runs.labels(status=status).inc()

    def quota_refused(self, quota: str) -> None:
        self.quota_refusals.labels(quota=quota).inc()

    def call_ended(self, method: str, code: str, seconds: float) -> None:
        self.call_seconds.labels(method=method, code=code).observe(max(0.0, seconds))

    def pool_changed(
        self,
        size: int,
        *,
        hit: bool = False,
        miss: bool = False,
        handout_s: float | None = None,
        start_failed: bool = False,
    ) -> None:
        """The warm pool's one hook (sandbox.pool.PoolListener): its size now, and what happened: a
        hit or a miss, a hand-out's latency, a failed start."""
        self.pool_size.set(size)
        if hit:
            self.pool_hits.inc()
        if miss:
            self.pool_misses.inc()
        if handout_s is not None:
            self.pool_handout_seconds.observe(max(0.0, handout_s))
        if start_failed:
            self.pool_start_failures.inc()

    def render(self) -> bytes:
        """The text exposition format, as a scrape gets it."""
        return generate_latest(self.registry)

    def start_http(self, listen: str) -> MetricsEndpoint:
        """Serve the metrics over HTTP on `listen` ("host:port"; port 0: any free) in a thread."""
        host, _, port = listen.rpartition(":")
        host = host.strip("[]")  # "[::1]:9464"
        server, thread = start_http_server(int(port), addr=host, registry=self.registry)
        return MetricsEndpoint(port=int(server.server_port), _server=server, _thread=thread)


@dataclass
class MetricsEndpoint:
    """A running metrics HTTP server; `stop()` (or calling it) shuts it and joins its thread. Idempotent."""

    port: int
    _server: Any
    _thread: Any

    def stop(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        server.shutdown()
        server.server_close()
        self._thread.join(timeout=10)

    __call__ = stop
