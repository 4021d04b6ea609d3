"""Where a warm pool's burst goes: per request, when each step of hand-out plus first cell ended.

    python benchmarks/pool_timeline.py [--runtime runc] [--burst 32] [--rounds 3] [--admit K] [--json F]

The same requests as `rlm bench pool` (orchestrator/pool_bench.py: a small directory context, a warm
pool of `burst` sandboxes, every request released at once, `pass` as the first cell), with each step
timed from the release: the context indexed (`prepared`), the context mounted in the sandbox
(`mounted`), the session ready, the first cell's result (`done`). `--admit K` lets at most K requests
through at once, in arrival order (K=1: one after the other), to show what admission would buy. Per
round it prints the wall time, the machine's CPU busy time (/proc/stat, 10 ms ticks) and this
process's CPU, so a burst can be told CPU-bound (busy near 2 x wall on 2 cores) from waiting.

A diagnostic, not a figure of record: it wraps the manager's steps to time them (see _instrument).
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator import pool_bench
from orchestrator.config import Runtime, SandboxConfig, SandboxLimits
from orchestrator.sandbox import SandboxManager
from orchestrator.sandbox import manager as manager_module
from orchestrator.sandbox.docker_backend import DockerBackend

STEPS = ("prepared", "mounted", "session", "done")
_request: contextvars.ContextVar[int] = contextvars.ContextVar("request", default=-1)
_marks: dict[int, dict[str, float]] = {}
_released = [0.0]


def _mark(step: str) -> None:
    _marks.setdefault(_request.get(), {})[step] = (time.perf_counter() - _released[0]) * 1000


def _instrument() -> None:
    """Time the steps the manager takes in worker threads and in the backend (wrapped in place)."""
    prepare = manager_module._prepare

    def timed_prepare(store: Any) -> Any:
        result = prepare(store)
        _mark("prepared")
        return result

    manager_module._prepare = timed_prepare
    attach = DockerBackend.attach_context

    async def timed_attach(self: DockerBackend, handle: str, context_dir: str) -> None:
        await attach(self, handle, context_dir)
        _mark("mounted")

    DockerBackend.attach_context = timed_attach  # type: ignore[method-assign]


def _busy_ms() -> int:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) * 10  # all but idle and iowait, in 10 ms ticks


def _own_cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (usage.ru_utime + usage.ru_stime) * 1000


async def run(runtime: str, burst: int, rounds: int, admit: int | None) -> list[dict[str, Any]]:
    rt = Runtime.parse(runtime)
    limits = SandboxLimits(cell_timeout_s=60)
    config = SandboxConfig(runtime=rt, limits=limits, runtimes=tuple(dict.fromkeys((Runtime.RUNC, rt))))
    context = pool_bench._context()
    settings = pool_bench.burst_pool(rt, limits, burst)
    gate_size = admit or burst
    results = []
    async with SandboxManager(config) as manager:
        pool = manager.use_pool(settings)
        await pool.start()
        for number in range(rounds):
            await pool_bench.wait_settled(pool, burst, 600)
            _marks.clear()
            gate, admission, sessions = asyncio.Event(), asyncio.Semaphore(gate_size), []

            async def one(
                index: int, gate: asyncio.Event, admission: asyncio.Semaphore, sessions: list[Any]
            ) -> None:
                _request.set(index)
                await gate.wait()
                async with admission:
                    session = await manager.start_session(context, runtime=rt, tenant=pool_bench.TENANT)
                    _mark("session")
                    sessions.append(session)
                    await session.run("pass")
                    _mark("done")

            tasks = [asyncio.create_task(one(i, gate, admission, sessions)) for i in range(burst)]
            await asyncio.sleep(0.05)  # every task waits at the gate
            busy, own = _busy_ms(), _own_cpu_ms()
            _released[0] = time.perf_counter()
            gate.set()
            await asyncio.gather(*tasks)
            wall = (time.perf_counter() - _released[0]) * 1000
            busy, own = _busy_ms() - busy, _own_cpu_ms() - own
            await asyncio.gather(*(s.aclose() for s in sessions))
            done = sorted(m["done"] for m in _marks.values())
            row = {
                "round": number,
                "wall_ms": round(wall, 1),
                "machine_busy_ms": busy,
                "orchestrator_cpu_ms": round(own, 1),
                "first_done_ms": round(done[0], 1),
                "p50_done_ms": round(pool_bench.percentile(done, 50), 1),
                "requests": {i: {k: round(v, 2) for k, v in m.items()} for i, m in sorted(_marks.items())},
            }
            results.append(row)
            print(
                f"round {number}: wall {wall:.1f} ms, machine busy {busy} ms, orchestrator CPU {own:.1f} ms;"
                f" first done {done[0]:.1f} ms, p50 {row['p50_done_ms']} ms, last {done[-1]:.1f} ms"
            )
            print("  request " + " ".join(f"{s:>9}" for s in STEPS))
            for index, marks in sorted(_marks.items(), key=lambda item: item[1]["done"]):
                print(f"  {index:7d} " + " ".join(f"{marks.get(s, float('nan')):9.1f}" for s in STEPS))
    p50s = [r["p50_done_ms"] for r in results]
    print(f"p50 of the rounds: median {statistics.median(p50s):.1f} ms ({', '.join(map(str, p50s))})")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtime", default="runc")
    parser.add_argument("--burst", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--admit", type=int, default=None, help="at most K requests at once, in order")
    parser.add_argument("--json", type=Path, default=None, help="write the rounds here")
    args = parser.parse_args()
    _instrument()
    results = asyncio.run(run(args.runtime, args.burst, args.rounds, args.admit))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
