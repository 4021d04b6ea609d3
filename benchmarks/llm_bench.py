"""Sub-call benchmark: llm_query overhead, and llm_query_batched against one call after another.

    python benchmarks/llm_bench.py [--calls 300] [--out benchmarks/results/llm.json]
    figures = await measure(calls=300)          # what `rlm bench llm` calls

Uses the scripted OpenAI-compatible server (orchestrator/bench/scripted_server.py, the tests' FakeLLM)
through the real openai client.
- overhead: each llm_query timed inside the sandbox, minus the model call as the host timed it (the
  provider's round trip to an instant server): what the sandbox, gRPC and the engine add. p50 over
  --calls calls; the full round trip is reported beside it.
- batching: 32 sub-calls to a server answering in 200 ms, as one llm_query_batched and as 32
  llm_query one after another, in the same sandbox.
Targets (issue 4): overhead p50 <= 1 ms; batched <= 0.5 s and >= 12x faster than sequential.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report

from orchestrator import LLMEndpoint, RLMAgent, RLMConfig
from orchestrator.bench.scripted_server import Reply, Seen, repl
from orchestrator.bench.scripted_server import ScriptedLLMServer as FakeLLM


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--out", default="benchmarks/results/llm.json")
    args = parser.parse_args()
    report.write(await measure(args.calls), args.out)


async def measure(calls: int = 300, quick: bool = False) -> dict[str, object]:
    """Every figure of this benchmark, as the JSON written (`quick`: 50 calls)."""
    if quick:
        calls = 50
    overhead_code = f"""
import time, json
for _ in range(20):
    llm_query('warm')
times = []
for i in range({calls}):
    t = time.perf_counter()
    llm_query('instant')
    times.append(time.perf_counter() - t)
print(json.dumps(times))
"""
    batch_code = """
import time, json
t = time.perf_counter()
r = llm_query_batched([f'slow {i}' for i in range(32)])
batched = time.perf_counter() - t
t = time.perf_counter()
s = [llm_query(f'slow {i}') for i in range(32)]
sequential = time.perf_counter() - t
assert r == s
print(json.dumps([batched, sequential]))
"""
    turns = iter([repl(overhead_code), repl(batch_code), 'FINAL("done")'])

    def script(seen: Seen, index: int) -> Reply | str:
        if seen.body["model"] == "root-m":
            return next(turns)
        prompt = seen.last_user
        return Reply(f"re:{prompt}", delay_s=0.2 if prompt.startswith("slow") else 0.0)

    with tempfile.TemporaryDirectory() as ctx, FakeLLM(script) as fake:
        Path(ctx, "a.txt").write_text("x")
        agent = RLMAgent(
            RLMConfig(root_model="root-m", sub_model="sub-m", max_subcalls=10_000),
            endpoint=LLMEndpoint(base_url=fake.url),
            api_key="bench",
        )
        result = await agent.run(context=Path(ctx), query="benchmark")
        await agent.aclose()
    cells = [cell for it in result.trajectory.iterations for cell in it.cells]
    sandbox_times = json.loads(cells[0].stdout)
    batched, sequential = json.loads(cells[1].stdout)
    host_times = [s.duration_s for s in result.trajectory.subcalls if s.prompt_chars == len("instant")]
    overheads = [a - b for a, b in zip(sandbox_times, host_times[-len(sandbox_times) :], strict=True)]
    figures = {
        "benchmark": "llm",
        "calls": calls,
        "overhead_p50_ms": report.percentile(overheads, 50) * 1e3,
        "overhead_p95_ms": report.percentile(overheads, 95) * 1e3,
        "overhead_p99_ms": report.percentile(overheads, 99) * 1e3,
        "round_trip_p95_ms": report.percentile(sandbox_times, 95) * 1e3,
        "round_trip_p99_ms": report.percentile(sandbox_times, 99) * 1e3,
        "overhead_samples_ms": [o * 1e3 for o in overheads],
        "round_trip_p50_ms": report.percentile(sandbox_times, 50) * 1e3,
        "model_call_p50_ms": statistics.median(host_times) * 1e3,
        "batched_32_s": batched,
        "sequential_32_s": sequential,
        "batch_speedup": sequential / batched,
        "max_in_flight_at_server": fake.max_in_flight,
    }
    print(
        f"llm_query overhead p50 {figures['overhead_p50_ms']:.2f} ms, "
        f"p99 {figures['overhead_p99_ms']:.2f} ms "
        f"(round trip p50 {figures['round_trip_p50_ms']:.2f} ms, of which the model call "
        f"{figures['model_call_p50_ms']:.2f} ms)"
    )
    print(
        f"32 sub-calls at 200 ms: batched {batched:.3f} s, sequential {sequential:.3f} s, "
        f"speed-up {figures['batch_speedup']:.1f}x (server saw up to {fake.max_in_flight} at once)"
    )
    return figures


if __name__ == "__main__":
    asyncio.run(main())
