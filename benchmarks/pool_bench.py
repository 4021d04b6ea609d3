"""Warm pool benchmark: the whole sweep, written to benchmarks/results/pool.json.

    python benchmarks/pool_bench.py [--runtimes runc,runsc] [--bursts 1,8,32] [--rlm-runs 5]
                                    [--out benchmarks/results/pool.json]

For each runtime, pool warm and cold, and each burst: hand-out plus the first trivial cell, p50/p95/p99,
beside a bare `docker run` timed in the same run (orchestrator/pool_bench.py, the same figures as
`rlm bench pool --json`). Then an RLM at depth 2 whose root starts 8 child RLMs with
`rlm_query_batched`, end to end against the scripted model (tests/fake_llm.py, an OpenAI-compatible
HTTP server, through the real openai client), with the pool (root and children warm, contexts attached
late) and without: the run's wall time, median and p95 over `--rlm-runs` runs. The machine's load
average is recorded beside each figure: these are 2 shared cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import report

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.fake_llm, from a checkout

from orchestrator.config import LLMEndpoint, RLMConfig, Runtime, SandboxConfig, SandboxLimits
from orchestrator.core import Orchestrator
from orchestrator.pool_bench import measure, percentile, wait_settled
from orchestrator.settings import PoolProfile, PoolSettings, Settings
from tests.fake_llm import FakeLLM, Reply, Seen, repl

CHILDREN = 8


def _script(seen: Seen, index: int) -> Reply | str:
    if not seen.system:
        return f"echo:{seen.last_user}"
    if seen.body["messages"][1]["content"].startswith("The query: child"):
        return repl("FINAL(read_file('README.md').strip())")
    prompts = [f"child {i}" for i in range(CHILDREN)]
    return repl(f"FINAL(' | '.join(rlm_query_batched({prompts!r})))")


def _context() -> str:
    root = Path(tempfile.mkdtemp(prefix="rlm-pool-rlm-"))
    (root / "README.md").write_text("a small context\n")
    (root / "data.txt").write_text("x\n" * 100)
    root.chmod(0o755)
    return str(root)


async def rlm_depth2(runtime: str, with_pool: bool, runs: int) -> dict[str, Any]:
    """An RLM at depth 2 with 8 batched children, `runs` times; its wall time per run."""
    rt = Runtime.parse(runtime)
    limits = SandboxLimits(cell_timeout_s=60)
    context = _context()
    times: list[float] = []
    meta: dict[str, Any] = {}
    with FakeLLM(_script) as fake:
        pool = PoolSettings(
            enabled=with_pool,
            min=CHILDREN + 1,
            max=CHILDREN + 1,
            per_tenant_share=1.0,
            profiles=(PoolProfile(runtime=rt, limits=limits),),
        )
        settings = Settings(
            sandbox=SandboxConfig(runtime=rt, limits=limits),
            run=RLMConfig(root_model="root-m", sub_model="sub-m", max_depth=2),
            endpoints=(LLMEndpoint(base_url=fake.url, api_key="sk-bench", max_retries=0),),
            pool=pool,
        )
        async with Orchestrator(settings) as orch:
            await orch.run(context=context, query="warm-up", tenant="bench")  # host checks, caches
            for _ in range(runs):
                if orch.pool is not None:
                    await wait_settled(orch.pool, CHILDREN + 1, 600)
                else:
                    await asyncio.sleep(0.5)
                started = time.perf_counter()
                result = await orch.run(context=context, query="the question", tenant="bench")
                times.append(time.perf_counter() - started)
                if result.status != "completed":
                    raise RuntimeError(f"the run ended {result.status}: {result.trajectory.error}")
                m = result.metadata
                meta = {
                    "sandbox_starts": m.sandbox_starts,
                    "pooled_sandboxes": m.pooled_sandboxes,
                    "context_path": m.context_path,
                }
    return {
        "runtime": rt.value,
        "pool": "warm" if with_pool else "cold",
        "children": CHILDREN,
        "runs": runs,
        "median_s": round(statistics.median(times), 3),
        "p95_s": round(percentile(times, 95), 3),
        "min_s": round(min(times), 3),
        **meta,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    bursts = [int(b) for b in args.bursts.split(",")]
    handout: list[dict[str, Any]] = []
    for runtime in runtimes:
        for pool in ("warm", "cold"):
            for burst in bursts:
                figures = await measure(runtime=runtime, burst=burst, pool=pool)
                figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
                handout.append(figures)
                print(
                    f"{runtime} {pool:4} burst {burst:2}: p50 {figures['p50_ms']:8.2f} ms  p95 "
                    f"{figures['p95_ms']:8.2f}  p99 {figures['p99_ms']:8.2f}  docker run "
                    f"{figures['docker_run_ms']} ms  (load {figures['load_average'][0]})",
                    flush=True,
                )
    rlm: list[dict[str, Any]] = []
    for runtime in runtimes:
        for with_pool in (True, False):
            figures = await rlm_depth2(runtime, with_pool, args.rlm_runs)
            figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
            rlm.append(figures)
            print(
                f"RLM depth 2, {CHILDREN} children, {runtime} {figures['pool']}: median "
                f"{figures['median_s']} s, p95 {figures['p95_s']} s ({figures['pooled_sandboxes']} of "
                f"{figures['sandbox_starts']} sandboxes warm, context {figures['context_path']})",
                flush=True,
            )
    return {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "handout": handout,
        "rlm_depth2": rlm,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runtimes", default="runc,runsc")
    parser.add_argument("--bursts", default="1,8,32")
    parser.add_argument("--rlm-runs", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/pool.json")
    arguments = parser.parse_args()
    report.write(asyncio.run(main(arguments)), arguments.out)
