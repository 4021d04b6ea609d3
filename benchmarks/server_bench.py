"""`rlm serve` benchmark: many clients running short cells through Execute and through sessions.

    python benchmarks/server_bench.py [--clients 1,4,16,32] [--execute-cells 2] [--session-cells 40]
                                      [--overhead-cells 300] [--runtime runc] [--out FILE]
    figures = await measure(clients=(1, 4, 16, 32))          # what `rlm bench server` calls

An in-process RLMServer on 127.0.0.1 (real gRPC over TCP, the auth interceptor, the SQLite run store,
real Docker sandboxes) and one tenant whose quotas do not bind. For each number of concurrent clients:

- Execute: each client runs `--execute-cells` cells, each in a fresh sandbox (start, cell, removal);
- session: each client opens a session and runs `--session-cells` short cells in it;

reporting cells/s, p50/p99 latency per call and failures; and, while the sessions are open, each
session sandbox's memory (the container's cgroup usage less inactive file pages, as `docker stats`
shows it). Then the server's own overhead per RunCell: the p50 of RunCell over gRPC minus the p50 of
SandboxSession.run on a sandbox the same process holds, both running `pass` (target <= 1 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import docker
import report

from orchestrator.client import RLMClient
from orchestrator.config import Runtime, SandboxConfig, SandboxLimits
from orchestrator.context.sources import InMemoryContext
from orchestrator.sandbox.backend import LABEL_MANAGED, LABEL_OWNER
from orchestrator.server.app import RLMServer
from orchestrator.server.tenants import Tenant, TenantQuotas, key_digest, new_api_key
from orchestrator.settings import ServerSettings, Settings, StorageSettings

CELL = "x = sum(range(1000))\nprint(x)"


def _settings(data_dir: str, key: str, runtime: str) -> Settings:
    quotas = TenantQuotas(
        max_sandboxes=1000, calls_per_s=1_000_000, burst=1_000_000, runtimes=(Runtime(runtime),)
    )
    return Settings(
        sandbox=SandboxConfig(runtime=Runtime(runtime), limits=SandboxLimits(memory_bytes=256 * 1024**2)),
        storage=StorageSettings(data_dir=data_dir),
        server=ServerSettings(session_idle_s=3600),
        tenants=(Tenant("bench", (key_digest(key),), quotas),),
    )


async def _timed(call: Any) -> tuple[float, bool]:
    started = time.perf_counter()
    try:
        result = await call
        ok = result.stdout.text == "499500\n"
    except Exception:
        ok = False
    return time.perf_counter() - started, ok


def _summary(latencies: list[float], failures: int, wall_s: float) -> dict[str, Any]:
    done = len(latencies)
    return {
        "cells": done,
        "failures": failures,
        "wall_s": round(wall_s, 3),
        "cells_per_s": round((done - failures) / wall_s, 2) if wall_s else 0.0,
        "p50_ms": round(report.percentile(latencies, 50) * 1000, 2) if latencies else None,
        "p99_ms": round(report.percentile(latencies, 99) * 1000, 2) if latencies else None,
    }


async def execute_level(client: RLMClient, clients: int, cells: int) -> dict[str, Any]:
    latencies: list[float] = []
    failures = 0

    async def one() -> None:
        nonlocal failures
        for _ in range(cells):
            took, ok = await _timed(client.execute(CELL, context="bench"))
            latencies.append(took)
            failures += not ok

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(clients)))
    return _summary(latencies, failures, time.perf_counter() - started)


def _memory(engine: docker.DockerClient, owner: str) -> list[int]:
    sizes = []
    for container in engine.containers.list(filters={"label": f"{LABEL_MANAGED}=1"}):
        if container.labels.get(LABEL_OWNER) != owner:
            continue
        stats = container.stats(stream=False)["memory_stats"]
        inactive = stats.get("stats", {}).get("inactive_file", 0)
        sizes.append(int(stats.get("usage", 0)) - int(inactive))
    return sizes


async def session_level(
    client: RLMClient, clients: int, cells: int, engine: docker.DockerClient, owner: str
) -> dict[str, Any]:
    latencies: list[float] = []
    failures = 0
    sessions = await asyncio.gather(*(client.open_session(context="bench") for _ in range(clients)))

    async def one(session_id: str) -> None:
        nonlocal failures
        for _ in range(cells):
            took, ok = await _timed(client.run_cell(session_id, CELL))
            latencies.append(took)
            failures += not ok

    started = time.perf_counter()
    await asyncio.gather(*(one(s) for s in sessions))
    wall = time.perf_counter() - started
    memory = await asyncio.to_thread(_memory, engine, owner)
    await asyncio.gather(*(client.close_session(s) for s in sessions))
    figures = _summary(latencies, failures, wall)
    figures["memory_per_session_mib_p50"] = round(statistics.median(memory) / 1024**2, 1) if memory else None
    figures["memory_per_session_mib_max"] = round(max(memory) / 1024**2, 1) if memory else None
    return figures


async def overhead(server: RLMServer, client: RLMClient, cells: int) -> dict[str, Any]:
    """RunCell over gRPC vs SandboxSession.run in this process, both `pass`, p50 of each."""
    assert server.orchestrator is not None
    direct: list[float] = []
    async with server.orchestrator.open_sandbox(InMemoryContext("bench"), tenant="bench") as session:
        for _ in range(20):
            await session.run("pass")
        for _ in range(cells):
            started = time.perf_counter()
            await session.run("pass")
            direct.append(time.perf_counter() - started)
    over_grpc: list[float] = []
    session_id = await client.open_session(context="bench")
    for _ in range(20):
        await client.run_cell(session_id, "pass")
    for _ in range(cells):
        started = time.perf_counter()
        await client.run_cell(session_id, "pass")
        over_grpc.append(time.perf_counter() - started)
    await client.close_session(session_id)
    p50_direct, p50_grpc = statistics.median(direct), statistics.median(over_grpc)
    return {
        "cells": cells,
        "direct_p50_ms": round(p50_direct * 1000, 3),
        "grpc_p50_ms": round(p50_grpc * 1000, 3),
        "overhead_p50_ms": round((p50_grpc - p50_direct) * 1000, 3),
        "target_ms": 1.0,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    key = new_api_key()
    engine = docker.from_env(timeout=60)
    with tempfile.TemporaryDirectory() as data_dir:
        server = RLMServer(_settings(data_dir, key, args.runtime), listen="127.0.0.1:0")
        await server.start()
        assert server.orchestrator is not None
        owner = server.orchestrator.manager.owner
        try:
            async with RLMClient(f"127.0.0.1:{server.port}", key) as client:
                await client.execute("pass", context="warm")  # host checks, image, seccomp: once
                levels = []
                for clients in args.clients:
                    print(f"{clients} client(s): Execute ...", flush=True)
                    executed = await execute_level(client, clients, args.execute_cells)
                    print(f"{clients} client(s): sessions ...", flush=True)
                    sessions = await session_level(client, clients, args.session_cells, engine, owner)
                    levels.append({"clients": clients, "execute": executed, "session": sessions})
                print("overhead per RunCell ...", flush=True)
                cost = await overhead(server, client, args.overhead_cells)
        finally:
            await server.stop(grace_s=5)
    return {
        "benchmark": "server",
        "runtime": args.runtime,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "cell": CELL,
        "execute_cells_per_client": args.execute_cells,
        "session_cells_per_client": args.session_cells,
        "levels": levels,
        "overhead": cost,
    }


async def measure(
    clients: tuple[int, ...] = (1, 4, 16, 32),
    execute_cells: int = 2,
    session_cells: int = 40,
    overhead_cells: int = 300,
    runtime: str = "runc",
    quick: bool = False,
) -> dict[str, Any]:
    """Every figure of this benchmark, as the JSON written (`quick`: 1 and 4 clients, fewer cells)."""
    if quick:
        clients, session_cells, overhead_cells = (1, 4), 10, 50
    args = argparse.Namespace(
        clients=list(clients),
        execute_cells=execute_cells,
        session_cells=session_cells,
        overhead_cells=overhead_cells,
        runtime=runtime,
    )
    figures = await main(args)
    print(_table(figures), flush=True)
    return figures


def _table(figures: dict[str, Any]) -> str:
    rows = [
        "| clients | Execute cells/s | Execute p50 / p99 ms | fail | session cells/s | session p50 / p99 ms "
        "| fail | MiB per session (p50 / max) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for level in figures["levels"]:
        e, s = level["execute"], level["session"]
        rows.append(
            f"| {level['clients']} | {e['cells_per_s']} | {e['p50_ms']} / {e['p99_ms']} | {e['failures']} "
            f"| {s['cells_per_s']} | {s['p50_ms']} / {s['p99_ms']} | {s['failures']} "
            f"| {s['memory_per_session_mib_p50']} / {s['memory_per_session_mib_max']} |"
        )
    o = figures["overhead"]
    rows.append("")
    rows.append(
        f"RunCell over gRPC p50 {o['grpc_p50_ms']} ms vs SandboxSession.run p50 {o['direct_p50_ms']} ms: "
        f"server overhead {o['overhead_p50_ms']} ms per cell (target <= {o['target_ms']} ms)"
    )
    return "\n".join(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 16, 32])
    parser.add_argument("--execute-cells", type=int, default=2)
    parser.add_argument("--session-cells", type=int, default=40)
    parser.add_argument("--overhead-cells", type=int, default=300)
    parser.add_argument("--runtime", default="runc", choices=["runc", "runsc"])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "server.json"))
    arguments = parser.parse_args()
    results = asyncio.run(main(arguments))
    report.write(results, arguments.out)
    print(_table(results))
