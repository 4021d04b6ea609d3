"""Metrics: a registry of their own, served as Prometheus text over HTTP on a port of their own."""

from __future__ import annotations

import asyncio
import urllib.request

from orchestrator.server.metrics import Metrics


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain")
        return str(reply.read().decode())


async def test_a_scrape_over_http_shows_a_counter_after_an_increment() -> None:
    """start_http on port 0 serves the registry: a run counted is in the next scrape; stop() closes it."""
    metrics = Metrics()
    endpoint = metrics.start_http("127.0.0.1:0")
    try:
        assert endpoint.port > 0
        before = await asyncio.to_thread(_scrape, endpoint.port)
        assert 'rlm_runs_total{status="completed"}' not in before
        metrics.run_ended("completed")
        after = await asyncio.to_thread(_scrape, endpoint.port)
        assert 'rlm_runs_total{status="completed"} 1.0' in after
    finally:
        endpoint.stop()
        endpoint.stop()  # idempotent


def test_every_metric_is_exposed() -> None:
    """Runs by status, sandboxes live, quota refusals by quota, call latency by method and code, and the
    warm pool's size, hits and misses are all in the text format."""
    metrics = Metrics()
    metrics.run_ended("deadline")
    metrics.sandboxes_live.inc()
    metrics.quota_refused("tokens_per_day")
    metrics.call_ended("/rlm.v1.Rlm/Run", "OK", 0.02)
    metrics.pool_changed(3, hit=True)
    metrics.pool_changed(2, miss=True)
    text = metrics.render().decode()
    for line in (
        'rlm_runs_total{status="deadline"} 1.0',
        "rlm_sandboxes_live 1.0",
        'rlm_quota_refusals_total{quota="tokens_per_day"} 1.0',
        'rlm_call_duration_seconds_bucket{code="OK",le="0.05",method="/rlm.v1.Rlm/Run"} 1.0',
        "rlm_pool_size 2.0",
        "rlm_pool_hits_total 1.0",
        "rlm_pool_misses_total 1.0",
    ):
        assert line in text, line


def test_two_metrics_objects_do_not_share_counts() -> None:
    """Each Metrics has its own registry (not prometheus_client's global), so two never collide."""
    first, second = Metrics(), Metrics()
    first.run_ended("completed")
    assert 'rlm_runs_total{status="completed"}' not in second.render().decode()
