"""Sandbox core benchmark: cold start to first cell result, and cell round trip in an open sandbox.

    python benchmarks/sandbox_bench.py [--starts 15] [--cells 300] [--out benchmarks/results/sandbox.json]

Cold start is measured from asking for a sandbox to holding the first cell's result (`pass`), beside a
bare `docker run --rm IMAGE python3 -c pass` timed in the same run and interleaved with it, so machine
noise hits both alike. Medians are compared. Targets (issue 2): cold start <= 1.3x the bare run; round
trip p50 <= 2 ms and p99 <= 10 ms under runc.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import report

from orchestrator.config import DEFAULT_IMAGE, SandboxLimits
from orchestrator.sandbox import SandboxManager


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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=15)
    parser.add_argument("--cells", type=int, default=300)
    parser.add_argument("--out", default="benchmarks/results/sandbox.json")
    args = parser.parse_args()
    results: dict[str, object] = {
        "machine": {"cpus": __import__("os").cpu_count(), "kernel": platform.release()},
        "runtimes": {},
    }
    with tempfile.TemporaryDirectory() as context:
        Path(context, "a.txt").write_text("x")
        async with SandboxManager() as manager:
            warm = await manager.start_session(context)  # engine check and image cache, not timed
            await manager.close_session(warm)
            for runtime in ("runc", "runsc"):
                ours, bare = await cold_starts(manager, context, runtime, args.starts)
                cells = await round_trips(manager, context, runtime, args.cells)
                figures = {
                    "cold_start_median_s": statistics.median(ours),
                    "bare_docker_run_median_s": statistics.median(bare),
                    "cold_start_ratio": statistics.median(ours) / statistics.median(bare),
                    "cell_rtt_p50_ms": report.percentile(cells, 50) * 1e3,
                    "cell_rtt_p95_ms": report.percentile(cells, 95) * 1e3,
                    "cell_rtt_p99_ms": report.percentile(cells, 99) * 1e3,
                    "starts": args.starts,
                    "cells": args.cells,
                }
                results["runtimes"][runtime] = figures  # type: ignore[index]
                print(
                    f"{runtime:5}  cold start {figures['cold_start_median_s'] * 1e3:6.0f} ms  "
                    f"(bare docker run {figures['bare_docker_run_median_s'] * 1e3:4.0f} ms, "
                    f"ratio {figures['cold_start_ratio']:.2f})  cell round trip p50 "
                    f"{figures['cell_rtt_p50_ms']:.2f} ms  p95 {figures['cell_rtt_p95_ms']:.2f} ms  "
                    f"p99 {figures['cell_rtt_p99_ms']:.2f} ms"
                )
    report.write(results, args.out)


if __name__ == "__main__":
    asyncio.run(main())
