"""`rlm bench PART`: the benchmarks that ship with the command, one sub-command per part.

    rlm bench pool [--runtime runc|runsc] [--burst N] [--pool warm|cold] [--rounds N] [--json]

`pool`: hand-out plus the first trivial cell, from the warm pool or cold, in bursts of N requests at
once, beside a bare `docker run` timed in the same run (orchestrator/pool_bench.py). With --json, one
object: p50_ms, p95_ms, p99_ms, burst, runtime, pool, docker_run_ms, and the rest of the figures.
benchmarks/pool_bench.py runs the whole sweep and writes benchmarks/results/pool.json.

A part is added with `parts.add_parser(NAME)` in `add_bench_parser` and a `bench_main` default.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Mapping
from typing import Any

from .bench.commands import add_parts
from .cli_common import EXIT_OK, guarded
from .errors import InvalidInputError


def add_bench_parser(sub: Any) -> None:
    bench = sub.add_parser(
        "bench",
        help="run one of the shipped benchmarks (rlm bench PART)",
        description="The benchmarks that ship with rlm, one part each.",
    )
    parts = bench.add_subparsers(dest="part", required=True, metavar="PART", parser_class=type(bench))
    pool = parts.add_parser(
        "pool",
        help="the warm pool: hand-out plus the first cell, warm or cold, beside a bare docker run",
        description=(
            "Time hand-out plus the first trivial cell (`pass`) for bursts of requests released at "
            "once, from a warm pool or started cold, beside a bare `docker run` of the same image."
        ),
    )
    pool.add_argument("--runtime", default="runc", choices=["runc", "runsc"], help="default: runc")
    pool.add_argument("--burst", type=int, default=1, metavar="N", help="requests at once (default 1)")
    pool.add_argument("--pool", default="warm", choices=["warm", "cold"], help="default: warm")
    pool.add_argument(
        "--rounds",
        type=int,
        default=None,
        metavar="N",
        help="bursts to time (default: about 64 warm samples, 16 cold)",
    )
    pool.add_argument(
        "--baseline-runs", type=int, default=5, metavar="N", help="bare docker runs timed (default 5)"
    )
    pool.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="settings file (the sandbox's image, seccomp "
        "profile, mount_root); default $RLM_CONFIG, then built-in defaults",
    )
    pool.add_argument("--json", action="store_true", help="print one JSON object")
    pool.set_defaults(bench_main=_pool_main)
    add_parts(parts)  # oolong, sandbox, llm, context, server, capacity, all, plots (bench/commands.py)


def bench_main(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    main = args.bench_main
    return guarded(lambda: main(args, environ))


def _pool_main(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from .pool_bench import measure
    from .settings import load_settings

    if args.burst < 1 or args.burst > 256:
        raise InvalidInputError(f"--burst must be in [1, 256], got {args.burst}")
    if args.rounds is not None and args.rounds < 1:
        raise InvalidInputError(f"--rounds must be at least 1, got {args.rounds}")
    settings = load_settings(args.config, environ)
    figures = asyncio.run(
        measure(
            runtime=args.runtime,
            burst=args.burst,
            pool=args.pool,
            rounds=args.rounds,
            baseline_runs=max(1, args.baseline_runs),
            config=settings.sandbox,
        )
    )
    figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(figures))
    else:
        print(
            f"{figures['runtime']} {figures['pool']} burst {figures['burst']}: hand-out + first cell "
            f"p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, p99 {figures['p99_ms']} ms "
            f"({figures['samples']} samples); docker run {figures['docker_run_ms']} ms"
        )
    return EXIT_OK
