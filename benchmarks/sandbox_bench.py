"""Sandbox core benchmark: cold and warm start to first cell result, and cell round trip.

    python benchmarks/sandbox_bench.py [--starts 15] [--cells 300] [--out benchmarks/results/sandbox.json]
    figures = await measure(starts=15, cells=300)          # what `rlm bench sandbox` calls

Cold start is measured from asking for a sandbox to holding the first cell's result (`pass`), beside a
bare `docker run --rm IMAGE python3 -c pass` timed in the same run and interleaved with it, so machine
noise hits both alike. Warm start is the same request served by a warm pool holding one idle sandbox
(the context attached at hand-out), each sample taken once the pool has refilled. Medians, p95 and p99
are reported. Targets (issue 2): cold start <= 1.3x the bare run; round trip p50 <= 2 ms and p99 <= 10
ms under runc.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import report

from orchestrator.config import DEFAULT_IMAGE, Runtime, SandboxLimits
from orchestrator.sandbox import SandboxManager
from orchestrator.settings import PoolProfile, PoolSettings


def bare_docker_run(runtime: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--runtime",
            runtime,
            "--network",
            "none",
            DEFAULT_IMAGE,
            "python3",
            "-c",
            "pass",
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


async def cold_starts(
    manager: SandboxManager, context: str, runtime: str, n: int
) -> tuple[list[float], list[float]]:
    ours, bare = [], []
    for _ in range(n):
        bare.append(await asyncio.to_thread(bare_docker_run, runtime))
        started = time.perf_counter()
        session = await manager.start_session(context, runtime=runtime)
        result = await session.run("pass")
        ours.append(time.perf_counter() - started)
        assert result.ok, result
        await manager.close_session(session)
    return ours, bare


async def round_trips(manager: SandboxManager, context: str, runtime: str, n: int) -> list[float]:
    async with manager.open(context, runtime=runtime, limits=SandboxLimits()) as session:
        for _ in range(20):  # warm-up
            await session.run("pass")
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            await session.run("pass")
            samples.append(time.perf_counter() - started)
    return samples


async def warm_starts(context: str, runtime: str, n: int) -> list[float]:
    """`n` requests, each served by a pool of one idle sandbox once it has refilled."""
    samples = []
    async with SandboxManager() as manager:
        pool = manager.use_pool(
            PoolSettings(
                enabled=True,
                min=1,
                max=1,
                per_tenant_share=1.0,
                profiles=(PoolProfile(runtime=Runtime(runtime)),),
            )
        )
        await pool.start()
        for _ in range(n):
            while not (pool.stats().size >= 1 and all(p.starting == 0 for p in pool.stats().profiles)):
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)  # the refill's CPU settles
            started = time.perf_counter()
            session = await manager.start_session(context, runtime=runtime)
            result = await session.run("pass")
            samples.append(time.perf_counter() - started)
            assert result.ok, result
            await manager.close_session(session)
        hits = pool.stats().hits
    assert hits >= n, f"only {hits} of {n} warm starts came from the pool"
    return samples


def _spread(prefix: str, values: list[float], scale: float = 1e3) -> dict[str, float]:
    return {
        f"{prefix}_p50": report.percentile(values, 50) * scale,
        f"{prefix}_p95": report.percentile(values, 95) * scale,
        f"{prefix}_p99": report.percentile(values, 99) * scale,
    }


async def measure(starts: int = 15, cells: int = 300, quick: bool = False) -> dict[str, object]:
    """Every figure of this benchmark, as the JSON written (`quick`: 3 starts, 50 cells)."""
    if quick:
        starts, cells = 3, 50
    results: dict[str, object] = {"benchmark": "sandbox", "runtimes": {}}
    with tempfile.TemporaryDirectory() as context:
        Path(context, "a.txt").write_text("x")
        Path(context).chmod(0o755)
        async with SandboxManager() as manager:
            warm = await manager.start_session(context)  # engine check and image cache, not timed
            await manager.close_session(warm)
            for runtime in ("runc", "runsc"):
                ours, bare = await cold_starts(manager, context, runtime, starts)
                cells_s = await round_trips(manager, context, runtime, cells)
                warm_s = await warm_starts(context, runtime, starts)
                figures = {
                    "cold_start_median_s": statistics.median(ours),
                    "warm_start_median_s": statistics.median(warm_s),
                    "bare_docker_run_median_s": statistics.median(bare),
                    "cold_start_ratio": statistics.median(ours) / statistics.median(bare),
                    "warm_start_ratio": statistics.median(warm_s) / statistics.median(bare),
                    **_spread("cold_start_ms", ours),
                    **_spread("warm_start_ms", warm_s),
                    **_spread("bare_docker_run_ms", bare),
                    "cell_rtt_p50_ms": report.percentile(cells_s, 50) * 1e3,
                    "cell_rtt_p95_ms": report.percentile(cells_s, 95) * 1e3,
                    "cell_rtt_p99_ms": report.percentile(cells_s, 99) * 1e3,
                    "cold_start_samples_s": ours,
                    "warm_start_samples_s": warm_s,
                    "bare_docker_run_samples_s": bare,
                    "cell_rtt_samples_ms": [c * 1e3 for c in cells_s],
                    "starts": starts,
                    "cells": cells,
                }
                results["runtimes"][runtime] = figures  # type: ignore[index]
                print(
                    f"{runtime:5}  cold start {figures['cold_start_median_s'] * 1e3:6.0f} ms, warm "
                    f"{figures['warm_start_median_s'] * 1e3:5.0f} ms "
                    f"(bare docker run {figures['bare_docker_run_median_s'] * 1e3:4.0f} ms, "
                    f"ratio {figures['cold_start_ratio']:.2f} / {figures['warm_start_ratio']:.2f})  "
                    f"cell round trip p50 {figures['cell_rtt_p50_ms']:.2f} ms  "
                    f"p95 {figures['cell_rtt_p95_ms']:.2f} ms  "
                    f"p99 {figures['cell_rtt_p99_ms']:.2f} ms",
                    flush=True,
                )
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=15)
    parser.add_argument("--cells", type=int, default=300)
    parser.add_argument("--out", default="benchmarks/results/sandbox.json")
    args = parser.parse_args()
    results = await measure(args.starts, args.cells)
    results["machine"] = {"cpus": os.cpu_count(), "kernel": platform.release()}
    report.write(results, args.out)


if __name__ == "__main__":
    asyncio.run(main())
