"""The parts of `rlm bench` this package adds to the sub-parser of orchestrator/bench_cli.py.

    rlm bench oolong [--offline | --local-model | --model M [--base-url URL]] [--sizes 100,200,500]
                     [--tokens N,...] [--seed S] [--tasks 1,4,11-20] [--contenders rlm,direct,...]
                     [--questions FILE] [--runtime runc|runsc] [--window TOKENS] [--json] [--out FILE]
                     [--write-tasks DIR] [--no-progress]
    rlm bench all | sandbox | llm | context | server | capacity [--quick] [--results DIR] [--bench-dir DIR]
    rlm bench plots [--results DIR]

`oolong` ships with the package. The platform's parts are the measuring programs of a source
checkout's benchmarks/ (`make bench` runs `rlm bench all`): each writes `<results>/<part>.json`, and
`plots` draws `<results>/*.png` and `summary.md` from them (matplotlib: the `bench` extra). A progress
bar shows where it is (tqdm, also the `bench` extra; without it, one line per step).

Exit status: 0 done; 1 a part failed, or an offline OOLONG-Pairs task scored below 1.0 (the scripted
model is always right, so the harness is broken); 2 bad input; 3 Docker, the image or the endpoint is
unavailable. Each part's main takes the parsed flags and the environment (read by the entry point only).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..cli_common import EXIT_FAILED, EXIT_INVALID, EXIT_OK, run_until_signalled
from ..errors import InvalidInputError
from ..settings import Settings, load_settings
from . import suite
from .machine import describe
from .oolong_bench import ENDPOINT_LABEL, OFFLINE_LABEL, OolongOptions, dump_tasks, run_endpoint, run_offline
from .oolong_harness import CONTENDERS, TaskResult, summarise, table
from .oolong_questions import QuestionFileError, read_trec

DEFAULT_RESULTS = "benchmarks/results"


def add_parts(parts: Any) -> None:
    """Register oolong, the platform's parts, all and plots on `rlm bench`'s sub-parsers."""
    _add_oolong(parts)
    for name, part in suite.PARTS.items():
        p = parts.add_parser(name, help=part.help, description=part.help)
        _suite_flags(p)
        p.set_defaults(bench_main=_suite_main)
    every = parts.add_parser("all", help="every part in turn, then the plots (what make bench runs)")
    _suite_flags(every)
    every.add_argument("--skip", default="", metavar="PARTS", help="comma-separated parts to leave out")
    every.set_defaults(bench_main=_all_main)
    plots = parts.add_parser("plots", help="draw the PNG plots and summary.md from the results' JSON")
    plots.add_argument("--results", default=DEFAULT_RESULTS, metavar="DIR", help=f"default {DEFAULT_RESULTS}")
    plots.set_defaults(bench_main=_plots_main)


def _suite_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="fewer repeats (a check, not figures to quote)")
    p.add_argument("--results", default=DEFAULT_RESULTS, metavar="DIR", help=f"default {DEFAULT_RESULTS}")
    p.add_argument("--bench-dir", default=None, metavar="DIR", help="the checkout's benchmarks/")


def _add_oolong(parts: Any) -> None:
    p = parts.add_parser(
        "oolong",
        help="OOLONG-Pairs: F1 per size and contender, with tokens, cost and time per task",
        description="OOLONG-Pairs (the RLM paper's benchmark): generated tasks, contenders side by side.",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--offline",
        action="store_true",
        help="a scripted model that is always right: checks the harness, measures platform overhead",
    )
    where.add_argument("--local-model", action="store_true", help="the local model (rlm local-model start)")
    p.add_argument("--config", default=None, metavar="FILE", help="settings file (TOML); default $RLM_CONFIG")
    p.add_argument("--model", default=None, help="root model (default: run.root_model)")
    p.add_argument("--sub-model", default=None, help="sub-call model (default: run.sub_model, else the root)")
    p.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint (default: $OPENAI_BASE_URL)")
    p.add_argument("--sizes", default="100,200,500", help="entries per list, comma-separated")
    p.add_argument("--tokens", default="", help="token lengths (chars / 4), each made into a size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tasks", default="1-20", help="task numbers, e.g. 1,4,11-20")
    p.add_argument("--contenders", default=",".join(CONTENDERS), help=f"of {', '.join(CONTENDERS)}")
    p.add_argument("--questions", default=None, metavar="FILE", help="TREC lines: LABEL:fine question")
    p.add_argument("--runtime", default="runc", choices=("runc", "runsc"))
    p.add_argument(
        "--window",
        type=int,
        default=None,
        metavar="TOKENS",
        help="the model's window, for the direct call (default 128000; the local model's n_ctx)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per size and contender, a line each")
    p.add_argument("--out", default=None, metavar="FILE", help="also write every task's figures as JSON")
    p.add_argument("--write-tasks", default=None, metavar="DIR", help="write the tasks (context, gold), stop")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--pool", action="store_true", help="sandboxes from a warm pool of 4 (as rlm serve runs)")
    p.set_defaults(bench_main=_oolong_main)


def _numbers(text: str, what: str) -> list[int]:
    found: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise InvalidInputError(f"{what}: {part!r} is not a number or a range a-b")
        found += range(int(m[1]), int(m[2] or m[1]) + 1)
    return list(dict.fromkeys(found))


def oolong_options(args: argparse.Namespace, window: int) -> OolongOptions:
    """The options of `rlm bench oolong`'s flags; InvalidInputError for a bad one."""
    sizes = _numbers(args.sizes, "--sizes") if args.sizes else []
    tokens = _numbers(args.tokens, "--tokens") if args.tokens else []
    if (not sizes and not tokens) or any(n < 1 for n in [*sizes, *tokens]):
        raise InvalidInputError("give at least one size (--sizes) or token length (--tokens), each >= 1")
    numbers = _numbers(args.tasks, "--tasks")
    if not numbers or any(not 1 <= n <= 20 for n in numbers):
        raise InvalidInputError("--tasks: the task numbers are 1 to 20")
    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = [c for c in contenders if c not in CONTENDERS]
    if unknown or not contenders:
        raise InvalidInputError(f"--contenders: unknown {unknown}; known: {', '.join(CONTENDERS)}")
    questions = None
    if args.questions:
        try:
            questions = read_trec(Path(args.questions))
        except OSError as exc:
            raise InvalidInputError(f"cannot read {args.questions}: {exc.strerror}") from None
        except QuestionFileError as exc:
            raise InvalidInputError(str(exc)) from None
    return OolongOptions(
        sizes=tuple(sizes),
        tokens=tuple(tokens),
        seed=args.seed,
        numbers=tuple(numbers),
        contenders=tuple(contenders),
        runtime=args.runtime,
        window_tokens=window,
        questions=questions,
        progress=not args.no_progress,
        pool=args.pool,
    )


def _running_local_model(rlm: list[str]) -> tuple[str, str, int] | None:
    """The local model already running (whatever its settings): base URL, model id, window."""
    status = subprocess.run([*rlm, "status", "--json"], capture_output=True, text=True, check=False)
    try:
        state = json.loads(status.stdout)
    except ValueError:
        return None
    if not state.get("running") or not state.get("base_url"):
        return None
    return str(state["base_url"]), str(state["model_id"]), int(state.get("n_ctx") or 16384)


def _local_model() -> tuple[str, str, int, bool]:
    """The local model: the one running, used as it is (a start with other settings would restart it
    under whoever else uses it), else started; base URL, model id, window, whether we started it."""
    rlm = [sys.executable, "-m", "orchestrator.cli", "local-model"]
    running = _running_local_model(rlm)
    if running is not None:
        return (*running, False)
    was_running = False
    out = subprocess.run([*rlm, "start"], stdout=subprocess.PIPE, text=True, check=False)
    if out.returncode != 0:
        raise InvalidInputError("the local model did not start (its messages are above)")
    assignments = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    base_url = shlex.split(assignments["OPENAI_BASE_URL"])[0]
    model = shlex.split(assignments["RLM_LOCAL_MODEL"])[0]
    status = subprocess.run([*rlm, "status", "--json"], capture_output=True, text=True, check=False)
    try:
        n_ctx = int(json.loads(status.stdout).get("n_ctx") or 0)
    except (ValueError, AttributeError):
        n_ctx = 0
    return base_url, model, n_ctx or 16384, not was_running


def _endpoint_settings(args: argparse.Namespace, settings: Settings, environ: Mapping[str, str]) -> Settings:
    run = settings.run
    if args.model:
        run = replace(run, root_model=args.model)
    if args.sub_model:
        run = replace(run, sub_model=args.sub_model)
    endpoint = settings.endpoint_for(run.root_model)
    if args.base_url:
        endpoint = replace(endpoint, base_url=args.base_url)
    if not endpoint.base_url and not endpoint.api_key:
        raise InvalidInputError(
            "no model endpoint: set OPENAI_API_KEY (or OPENAI_BASE_URL, --base-url), use --local-model, "
            "or --offline for the scripted model (platform overhead only)"
        )
    if not endpoint.api_key:  # a local server takes any key; the SDK wants one
        endpoint = replace(endpoint, api_key=environ.get(endpoint.api_key_env, "") or "none")
    endpoints = tuple(endpoint if e.name == endpoint.name else e for e in settings.endpoints)
    return replace(settings, run=run, endpoints=endpoints)


def _oolong_main(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    settings = load_settings(args.config, environ)
    options = oolong_options(args, args.window or 128_000)
    if args.write_tasks:
        for path in dump_tasks(options, args.write_tasks):
            print(path)
        return EXIT_OK
    stop_local = False
    model, label, mode = "scripted (offline)", OFFLINE_LABEL, "offline"
    if not args.offline:
        label, mode = ENDPOINT_LABEL, "endpoint"
        if args.local_model:
            base_url, local, n_ctx, stop_local = _local_model()
            args.base_url, args.model = base_url, args.model or local
            options = replace(options, window_tokens=args.window or n_ctx)
            mode = "local-model"
        settings = _endpoint_settings(args, settings, environ)
        model = settings.run.root_model + (
            f" (sub-calls {settings.run.sub})" if settings.run.sub_model else ""
        )
    started = time.monotonic()
    try:
        runner = run_offline if args.offline else run_endpoint
        results: list[TaskResult] = run_until_signalled(lambda: runner(options, settings))
    finally:
        if stop_local:
            subprocess.run([sys.executable, "-m", "orchestrator.cli", "local-model", "stop"], check=False)
    took = time.monotonic() - started
    common: dict[str, Any] = {"mode": mode, "model": model, "label": label, "seed": options.seed}
    common.update(runtime=options.runtime, pool=options.pool)
    summary = summarise(results, **common)
    if args.json:
        for line in summary:
            print(json.dumps(line))
    else:
        print(f"OOLONG-Pairs, {mode}: {label}; model {model}; seed {options.seed}; runtime {options.runtime}")
        print(table(summary))
        print(f"({len(results)} tasks in {took:.0f} s)")
    if args.out:
        body = {"benchmark": "oolong", "summary": summary, "tasks": [r.to_json() for r in results], **common}
        body.update(machine=describe(), took_s=round(took, 1))
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(body, indent=1) + "\n")
        print(f"wrote {out}", file=sys.stderr)
    bad = [f"size {r.size} task {r.task} {r.contender}: F1 {r.f1:.3f}" for r in results if r.f1 < 1.0]
    if args.offline and bad:
        print("rlm: the scripted model is always right, so the harness is broken: " + "; ".join(bad[:5]))
        return EXIT_FAILED
    return EXIT_OK


def _suite_main(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    bench_dir = suite.find_benchmarks(args.bench_dir)
    ok = suite.run_parts([args.part], bench_dir, Path(args.results), quick=args.quick)
    suite.draw(Path(args.results))
    return EXIT_OK if ok else EXIT_FAILED


def _all_main(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    bench_dir = suite.find_benchmarks(args.bench_dir)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = skip - set(suite.ALL)
    if unknown:
        raise InvalidInputError(f"--skip: unknown parts {sorted(unknown)}; known: {', '.join(suite.ALL)}")
    ok = suite.run_parts(
        [n for n in suite.ALL if n not in skip], bench_dir, Path(args.results), quick=args.quick
    )
    suite.draw(Path(args.results))
    return EXIT_OK if ok else EXIT_FAILED


def _plots_main(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    return EXIT_OK if suite.draw(Path(args.results)) else EXIT_INVALID
