"""The warm pool's benchmark: hand-out plus the first trivial cell, warm or cold, beside `docker run`.

    figures = await measure(runtime="runc", burst=32, pool="warm", rounds=3)   # one configuration
    rlm bench pool --runtime runc --burst 32 --json                          # the same, one object

A sample is one request's time from the moment its burst was released (every request of a burst at
once) to holding the result of its first cell (`pass`) in a session over a small directory context:
the context indexed, a sandbox handed out (warm: from the pool, the context attached late; cold: a
sandbox started with the context mounted), the run's token bound, the cell run. Warm rounds start
once the pool holds `burst` idle sandboxes and no start is in flight (the refill after a round is not
measured); cold rounds start with nothing running. `docker_run_ms` is the median of a bare
`docker run --rm --network none IMAGE python3 -c pass` timed in the same run. A warm configuration
also gives `idle_cpu_ms_per_s`: the CPU one idle pooled sandbox uses per second while it waits for
its run (the median over the pool, read from the container's cgroup over IDLE_WINDOW_S), what a pool
costs the machine while nobody asks for it.

benchmarks/pool_bench.py runs the whole sweep (single and bursts of 8 and 32, warm and cold, runc and
runsc, and an RLM at depth 2 with 8 batched children) and writes benchmarks/results/pool.json.
"""

from __future__ import annotations

import asyncio
import glob
import math
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .config import Runtime, SandboxConfig, SandboxLimits
from .sandbox import SandboxManager
from .sandbox.pool import WarmPool
from .settings import PoolProfile, PoolSettings

TENANT = "bench"
IDLE_WINDOW_S = 3.0


def percentile(values: list[float], pct: float) -> float:
    """The nearest-rank percentile (p99 of 100 samples is the 99th smallest)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))]


def bare_docker_run(runtime: str, image: str) -> float:
    """Seconds a bare `docker run --rm --network none IMAGE python3 -c pass` takes."""
    started = time.perf_counter()
    subprocess.run(
        ["docker", "run", "--rm", "--runtime", runtime, "--network", "none", image, "python3", "-c", "pass"],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def _context() -> str:
    root = Path(tempfile.mkdtemp(prefix="rlm-pool-bench-"))
    (root / "notes").mkdir()
    for i in range(20):
        (root / "notes" / f"n{i}.txt").write_text(f"note {i}\n" * 20)
    (root / "README.md").write_text("# a small context\n")
    for path in (root, root / "notes"):
        path.chmod(0o755)
    return str(root)


def burst_pool(runtime: Runtime, limits: SandboxLimits, burst: int) -> PoolSettings:
    """The pool a burst is measured on: `burst` idle sandboxes of one profile, one tenant may take all."""
    return PoolSettings(
        enabled=True,
        min=burst,
        max=burst,
        per_tenant_share=1.0,
        start_concurrency=2,
        profiles=(PoolProfile(runtime=runtime, limits=limits),),
    )


def container_cpu_us(container_id: str) -> int:
    """CPU the container has used so far, from its cgroup (v2 or v1, as Docker lays them out)."""
    for pattern, unit in (
        (f"/sys/fs/cgroup/system.slice/docker-{container_id}*.scope/cpu.stat", "usage_usec"),
        (f"/sys/fs/cgroup/docker/{container_id}*/cpu.stat", "usage_usec"),
        (f"/sys/fs/cgroup/cpuacct/docker/{container_id}*/cpuacct.usage", "ns"),
    ):
        for path in glob.glob(pattern):
            text = Path(path).read_text()
            if unit == "ns":
                return int(text) // 1000
            for line in text.splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1])
    raise FileNotFoundError(f"no cgroup CPU account found for container {container_id}")


async def idle_cpu_ms_per_s(pool: WarmPool, window_s: float = IDLE_WINDOW_S) -> float | None:
    """The median CPU (ms per second) of the pool's idle sandboxes over `window_s`; None when their
    cgroups cannot be read here (another backend, or no access)."""
    sandboxes = pool.idle_sandboxes()
    try:
        before = [container_cpu_us(s.handle) for s in sandboxes]
        await asyncio.sleep(window_s)
        after = [container_cpu_us(s.handle) for s in sandboxes]
    except (OSError, ValueError):
        return None
    if not sandboxes:
        return None
    return round(statistics.median((b - a) / 1000 / window_s for a, b in zip(before, after, strict=True)), 2)


async def wait_settled(pool: WarmPool, size: int, timeout_s: float) -> None:
    """Until `size` sandboxes are idle and no start is in flight, then a moment for the CPU to settle."""
    deadline = time.monotonic() + timeout_s
    while True:
        stats = pool.stats()
        if stats.size >= size and all(p.starting == 0 for p in stats.profiles):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"the pool did not fill to {size} within {timeout_s:g} s: {stats}")
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)


async def _burst(
    manager: SandboxManager, context: str, runtime: Runtime, burst: int, paths: set[str]
) -> list[float]:
    """`burst` requests released at once; each one's seconds from the release to its first result."""
    gate = asyncio.Event()
    released = 0.0
    sessions = []

    async def one() -> float:
        await gate.wait()
        session = await manager.start_session(context, runtime=runtime, tenant=TENANT)
        sessions.append(session)
        result = await session.run("pass")
        elapsed = time.perf_counter() - released
        if not result.ok:
            raise RuntimeError(f"the first cell failed: {result}")
        paths.add(session.context_path)
        return elapsed

    tasks = [asyncio.create_task(one()) for _ in range(burst)]
    await asyncio.sleep(0.05)  # every task waits at the gate
    released = time.perf_counter()
    gate.set()
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        await asyncio.gather(*(s.aclose() for s in sessions), return_exceptions=True)


async def measure(
    *,
    runtime: str = "runc",
    burst: int = 1,
    pool: str = "warm",
    rounds: int | None = None,
    baseline_runs: int = 5,
    config: SandboxConfig | None = None,
    fill_timeout_s: float = 600.0,
) -> dict[str, Any]:
    """One configuration: `rounds` bursts of `burst` requests, warm or cold; the figures as a dict."""
    if pool not in ("warm", "cold"):
        raise ValueError("pool is warm or cold")
    rt = Runtime.parse(runtime)
    if rounds is None:  # about 64 warm samples (at least 2 rounds), 16 cold ones
        rounds = max(2, math.ceil(64 / burst)) if pool == "warm" else max(1, math.ceil(16 / burst))
    base = config or SandboxConfig()
    limits = base.limits if base.limits != SandboxLimits() else SandboxLimits(cell_timeout_s=60)
    config = SandboxConfig(
        image=base.image,
        runtime=rt,
        limits=limits,
        socket_root=base.socket_root,
        sandbox_uid=base.sandbox_uid,
        seccomp_profile=base.seccomp_profile,
        allow_weak_host=base.allow_weak_host,
        docker_url=base.docker_url,
        runtimes=tuple(dict.fromkeys((*base.runtimes, rt))),
        mount_root=base.mount_root,
    )
    context = _context()
    samples: list[float] = []
    paths: set[str] = set()
    idle_cpu: float | None = None
    async with SandboxManager(config) as manager:
        warm: WarmPool | None = None
        if pool == "warm":
            warm = manager.use_pool(burst_pool(rt, limits, burst))
            await warm.start()
            await wait_settled(warm, burst, fill_timeout_s)
            idle_cpu = await idle_cpu_ms_per_s(warm)
        else:  # the host checks, once, outside the samples
            session = await manager.start_session(context, runtime=rt, tenant=TENANT)
            await session.aclose()
        for _ in range(rounds):
            if warm is not None:
                await wait_settled(warm, burst, fill_timeout_s)
            else:
                await asyncio.sleep(0.5)
            samples += await _burst(manager, context, rt, burst, paths)
        stats = warm.stats() if warm is not None else None
    baseline = [
        await asyncio.to_thread(bare_docker_run, rt.value, config.image) for _ in range(baseline_runs)
    ]
    figures: dict[str, Any] = {
        "runtime": rt.value,
        "burst": burst,
        "pool": pool,
        "rounds": rounds,
        "samples": len(samples),
        "p50_ms": round(percentile(samples, 50) * 1000, 2),
        "p95_ms": round(percentile(samples, 95) * 1000, 2),
        "p99_ms": round(percentile(samples, 99) * 1000, 2),
        "mean_ms": round(statistics.fmean(samples) * 1000, 2),
        "max_ms": round(max(samples) * 1000, 2),
        "docker_run_ms": round(statistics.median(baseline) * 1000, 1),
        "context_path": sorted(paths),
    }
    if stats is not None:
        figures["hits"] = stats.hits
        figures["misses"] = stats.misses
        figures["start_failures"] = stats.start_failures
        figures["idle_cpu_ms_per_s"] = idle_cpu
    return figures
