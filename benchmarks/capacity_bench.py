"""Capacity benchmark: an idle sandbox's memory, and the most sandboxes this machine holds at once.

    python benchmarks/capacity_bench.py [--idle 10] [--max 512] [--out benchmarks/results/capacity.json]
    figures = await measure(idle=10, most=512)          # what `rlm bench capacity` calls

- idle memory: `--idle` sandboxes per runtime, each open over a small context with one cell run, then
  each container's memory as `docker stats` shows it (cgroup usage less inactive file pages); p50, p95,
  max. Target (issue 14): under 25 MB (runc).
- most at once (runc): sandboxes opened 4 at a time and kept open, up to `--max` or the first that fails
  to start or to answer; then one cell in every one of them at once (each must answer), the time that
  took, the host's memory in use (MemAvailable's drop) and the orchestrator's RSS. Target: 64 on a
  2-core, 24 GB machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import docker
import report

from orchestrator.config import SandboxLimits
from orchestrator.errors import RLMError
from orchestrator.sandbox import SandboxManager, SandboxSession
from orchestrator.sandbox.backend import LABEL_MANAGED, LABEL_OWNER

MIB = 1024**2


def _available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def container_memory(owner: str) -> list[int]:
    """Each of this owner's containers' memory: cgroup usage less inactive file pages."""
    engine = docker.from_env(timeout=120)
    sizes = []
    for container in engine.containers.list(filters={"label": f"{LABEL_MANAGED}=1"}):
        if container.labels.get(LABEL_OWNER) != owner:
            continue
        stats = container.stats(stream=False)["memory_stats"]
        inactive = stats.get("stats", {}).get(
            "inactive_file", stats.get("stats", {}).get("total_inactive_file", 0)
        )
        sizes.append(int(stats.get("usage", 0)) - int(inactive))
    engine.close()
    return sizes


async def idle_memory(context: str, runtime: str, n: int) -> dict[str, Any]:
    async with SandboxManager() as manager:
        sessions = []
        try:
            for _ in range(n):
                session = await manager.start_session(context, runtime=runtime)
                assert (await session.run("x = 1")).ok
                sessions.append(session)
            await asyncio.sleep(1.0)  # start-up's transient pages settle
            sizes = await asyncio.to_thread(container_memory, manager.owner)
        finally:
            await asyncio.gather(*(manager.close_session(s) for s in sessions), return_exceptions=True)
    mib = [s / MIB for s in sizes]
    return {
        "sandboxes": n,
        "idle_mib_p50": statistics.median(mib),
        "idle_mib_p95": report.percentile(mib, 95),
        "idle_mib_max": max(mib),
        "idle_mib_samples": mib,
    }


async def most_at_once(context: str, most: int) -> dict[str, Any]:
    """Open runc sandboxes 4 at a time until `most` or the first failure; then a cell in each at once."""
    before_mem, before_rss = _available(), _rss()
    sessions: list[SandboxSession] = []
    failure = None
    limits = SandboxLimits(memory_bytes=128 * MIB)
    started = time.perf_counter()
    async with SandboxManager() as manager:
        try:
            while len(sessions) < most and failure is None:
                wave = min(4, most - len(sessions))
                opened = await asyncio.gather(
                    *(manager.start_session(context, limits=limits) for _ in range(wave)),
                    return_exceptions=True,
                )
                for item in opened:
                    if isinstance(item, BaseException):
                        failure = failure or f"start: {item}"
                    else:
                        sessions.append(item)
                print(f"  {len(sessions)} sandboxes open", flush=True)
            open_s = time.perf_counter() - started
            t0 = time.perf_counter()

            async def cell(s: SandboxSession) -> float:
                t = time.perf_counter()
                result = await s.run("sum(range(1000))")
                if not result.ok:
                    raise RLMError(f"a cell failed: {result.status}")
                return time.perf_counter() - t

            answered = await asyncio.gather(*(cell(s) for s in sessions), return_exceptions=True)
            all_cells_s = time.perf_counter() - t0
            latencies = [a for a in answered if isinstance(a, float)]
            failed = [a for a in answered if not isinstance(a, float)]
            if failed and failure is None:
                failure = f"cell: {failed[0]}"
            used, rss = before_mem - _available(), _rss() - before_rss
            held = len(latencies)
        finally:
            await asyncio.gather(*(manager.close_session(s) for s in sessions), return_exceptions=True)
    return {
        "asked": most,
        "held": held,
        "first_failure": failure,
        "open_all_s": open_s,
        "one_cell_each_at_once_s": all_cells_s,
        "cell_p50_ms": statistics.median(latencies) * 1e3 if latencies else None,
        "cell_p99_ms": report.percentile(latencies, 99) * 1e3 if latencies else None,
        "host_memory_used_mib": used / MIB,
        "host_memory_per_sandbox_mib": used / MIB / max(1, held),
        "orchestrator_rss_growth_mib": rss / MIB,
        "orchestrator_rss_per_sandbox_mib": rss / MIB / max(1, held),
        "memory_limit_per_sandbox_mib": limits.memory_bytes // MIB,
        "target": 64,
    }


async def measure(idle: int = 10, most: int = 512, quick: bool = False) -> dict[str, Any]:
    """Every figure of this benchmark, as the JSON written (`quick`: 3 idle, 16 at once)."""
    if quick:
        idle, most = 3, 16
    figures: dict[str, Any] = {"benchmark": "capacity", "idle": {}}
    with tempfile.TemporaryDirectory() as context:
        Path(context, "a.txt").write_text("x")
        Path(context).chmod(0o755)
        for runtime in ("runc", "runsc"):
            f = figures["idle"][runtime] = await idle_memory(context, runtime, idle)
            print(
                f"{runtime:5} idle sandbox memory p50 {f['idle_mib_p50']:.1f} MiB, "
                f"p95 {f['idle_mib_p95']:.1f}, max {f['idle_mib_max']:.1f} (target < 25 MB under runc)",
                flush=True,
            )
        m = figures["most"] = await most_at_once(context, most)
    print(
        f"most at once (runc): {m['held']} of {m['asked']} asked ({m['first_failure'] or 'no failure'}); "
        f"opened in {m['open_all_s']:.1f} s, one cell in each at once {m['one_cell_each_at_once_s']:.2f} s; "
        f"host memory {m['host_memory_per_sandbox_mib']:.1f} MiB and orchestrator RSS "
        f"{m['orchestrator_rss_per_sandbox_mib']:.2f} MiB per sandbox (target 64)",
        flush=True,
    )
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=10)
    parser.add_argument("--max", type=int, default=512)
    parser.add_argument("--out", default="benchmarks/results/capacity.json")
    args = parser.parse_args()
    report.write(await measure(args.idle, args.max), args.out)


if __name__ == "__main__":
    asyncio.run(main())
