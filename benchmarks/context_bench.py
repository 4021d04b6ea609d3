"""Context API benchmark: read every file and grep a word, through the sandbox API and locally.

    python benchmarks/context_bench.py [--repeats 5] [--runtime runc|runsc]... [--out FILE]
    figures = await measure(repeats=5)          # what `rlm bench context` calls: runc and runsc

Generates a context the size of the seed's example (8,466 files, 44.63 MB; benchmarks/gen_context.py),
then measures in one run, as medians (and p95) over the repeats, under each runtime:
- a sandbox program reading every file through read_file, and one grepping a word through grep;
- the same two done by a plain local Python process;
- the orchestrator's peak RSS growth over all of it (VmHWM, reset first), with a 10 MiB cache.
Targets (issue 3): reading everything through the API <= 1 s and <= 3x the local program; RSS growth
<= cache size + 30 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report
from gen_context import generate

from orchestrator.config import ContextLimits
from orchestrator.sandbox import SandboxManager

READ_ALL = """
import time
t = time.perf_counter()
n = 0
for path in list_files():
    n += len(read_file(path))
print(time.perf_counter() - t, n)
"""
GREP = """
import time
t = time.perf_counter()
hits = grep(r"\\bneedle\\b", max_matches=10000)
print(time.perf_counter() - t, len(hits))
"""
LOCAL = """
import os, re, sys, time
root = sys.argv[1]
paths = [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
t = time.perf_counter()
n = 0
for p in paths:
    with open(p, encoding="utf-8", errors="replace") as fh:
        n += len(fh.read())
read_s = time.perf_counter() - t
t = time.perf_counter()
word = re.compile(r"\\bneedle\\b")
hits = 0
for p in paths:
    with open(p, encoding="utf-8", errors="replace") as fh:
        hits += sum(1 for line in fh.read().splitlines() if word.search(line))
print(read_s, time.perf_counter() - t, n, hits)
"""


async def _runtime(root: Path, runtime: str, repeats: int, planted: int) -> dict[str, object]:
    limits = ContextLimits(max_read_bytes=1 << 40)  # the budget is not what is measured here
    async with SandboxManager() as manager:
        report.peak_rss_reset()
        before = report.peak_rss()
        reads, greps, cell_reads = [], [], []
        for _ in range(repeats):
            async with manager.open(root, runtime=runtime, context_limits=limits) as session:
                started = time.perf_counter()
                read = await session.run(READ_ALL)
                cell_reads.append(time.perf_counter() - started)
                grep = await session.run(GREP)
                assert read.ok and grep.ok, (read.error, grep.error)
                reads.append(float(read.stdout.text.split()[0]))
                greps.append(float(grep.stdout.text.split()[0]))
                assert int(grep.stdout.text.split()[1]) == planted
        growth = report.peak_rss() - before
    return {
        "api_read_all_s": statistics.median(reads),
        "api_read_all_p95_s": report.percentile(reads, 95),
        "api_read_all_cell_s": statistics.median(cell_reads),
        "api_grep_s": statistics.median(greps),
        "api_grep_p95_s": report.percentile(greps, 95),
        "api_read_all_samples_s": reads,
        "api_grep_samples_s": greps,
        "cache_bytes": limits.cache_bytes,
        "orchestrator_peak_rss_growth_bytes": growth,
    }


async def measure(
    repeats: int = 5, runtimes: tuple[str, ...] = ("runc", "runsc"), quick: bool = False
) -> dict[str, object]:
    """Every figure of this benchmark, per runtime, as the JSON written (`quick`: 2 repeats)."""
    if quick:
        repeats = 2
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp, "ctx")
        planted = generate(root, 8466, 44.63, 7)
        local = [
            subprocess.run(
                [sys.executable, "-c", LOCAL, str(root)], capture_output=True, text=True, check=True
            ).stdout.split()
            for _ in range(repeats + 1)
        ][1:]
        local_read = statistics.median(float(r[0]) for r in local)
        local_grep = statistics.median(float(r[1]) for r in local)
        figures: dict[str, object] = {
            "benchmark": "context",
            "files": 8466,
            "bytes": sum(p.stat().st_size for p in root.rglob("*") if p.is_file()),
            "planted_matches": planted,
            "repeats": repeats,
            "local_read_all_s": local_read,
            "local_grep_s": local_grep,
            "runtimes": {},
        }
        for runtime in runtimes:
            f = await _runtime(root, runtime, repeats, planted)
            f["read_ratio"] = float(f["api_read_all_s"]) / local_read  # type: ignore[arg-type]
            f["grep_ratio"] = float(f["api_grep_s"]) / local_grep  # type: ignore[arg-type]
            figures["runtimes"][runtime] = f  # type: ignore[index]
            print(
                f"{runtime:5} read every file: API {f['api_read_all_s']:.3f} s "
                f"(cell {f['api_read_all_cell_s']:.3f} s), local {local_read:.3f} s, "
                f"ratio {f['read_ratio']:.2f}; grep a word: API {f['api_grep_s']:.3f} s, "
                f"local {local_grep:.3f} s, ratio {f['grep_ratio']:.2f}; orchestrator peak RSS growth "
                f"{int(f['orchestrator_peak_rss_growth_bytes']) / 1e6:.1f} MB",  # type: ignore[call-overload]
                flush=True,
            )
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runtime", action="append", choices=("runc", "runsc"), help="default: both")
    parser.add_argument("--out", default="benchmarks/results/context.json")
    args = parser.parse_args()
    report.write(await measure(args.repeats, tuple(args.runtime or ("runc", "runsc"))), args.out)


if __name__ == "__main__":
    asyncio.run(main())
