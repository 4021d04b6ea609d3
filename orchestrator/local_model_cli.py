"""`rlm local-model`: a local OpenAI-compatible endpoint for the demo, the real-model tests and offline use.

    rlm local-model setup  [--cache DIR] [--small | --model-file GGUF]   # runtime + weights, idempotent
    rlm local-model start  [--cache DIR] [--small | --model-file GGUF] [--n-ctx N] [--port P]
    rlm local-model stop   [--cache DIR]
    rlm local-model status [--cache DIR] [--json]

`start` does `setup` first, then starts the server (or reuses the running one) and prints, on stdout,
`RLM_LOCAL_MODEL=<model id>` and, last, `OPENAI_BASE_URL=http://127.0.0.1:PORT/v1`: shell assignments,
so `eval "$(rlm local-model start)"` sets both. Progress goes to stderr.

Exit status: 0 done (status: running), 1 status: not running, 2 bad input, 3 a step failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from .local_model import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_N_CTX,
    DEFAULT_TEMPERATURE,
    QWEN_CODER_0_5B,
    QWEN_CODER_1_5B,
    CachePaths,
    LocalModelError,
    ModelFileError,
    ModelSpec,
    Reporter,
    check_gguf,
    elapsed,
    ensure_model,
    install_runtime,
    rss_bytes,
    running_server,
    server_answers,
    start_server,
    stop_server,
)

DEFAULT_CACHE = "~/.cache/rlm/local-model"
EXIT_OK, EXIT_NOT_RUNNING, EXIT_INVALID, EXIT_FAILED = 0, 1, 2, 3


def add_local_model_parser(sub: Any) -> None:
    """Register `rlm local-model` on the `rlm` command's sub-parsers."""
    parser = sub.add_parser(
        "local-model",
        help="a local model server (llama.cpp, Qwen2.5-Coder-1.5B) for the demo, tests and offline use",
        description="Install, start and stop a local OpenAI-compatible model server.",
    )
    parser.add_argument("action", choices=("setup", "start", "stop", "status"))
    parser.add_argument("--cache", default=DEFAULT_CACHE, metavar="DIR", help=f"default {DEFAULT_CACHE}")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--small",
        action="store_true",
        help=f"the 0.5B model ({QWEN_CODER_0_5B.size / 1e6:.0f} MB; worse code)",
    )
    which.add_argument("--model-file", metavar="GGUF", help="serve this GGUF file instead")
    parser.add_argument(
        "--n-ctx", type=int, default=DEFAULT_N_CTX, help=f"context window, default {DEFAULT_N_CTX}"
    )
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: every core)")
    parser.add_argument(
        "--temperature",
        type=float,
        default=DEFAULT_TEMPERATURE,
        help=f"sampling temperature of a request that names none (default {DEFAULT_TEMPERATURE})",
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=DEFAULT_MAX_TOKENS,
        help=f"longest reply of a request that names no max_tokens (default {DEFAULT_MAX_TOKENS})",
    )
    parser.add_argument("--json", action="store_true", help="status: one JSON object")


def local_model_main(args: argparse.Namespace) -> int:
    paths = CachePaths(Path(args.cache).expanduser().resolve())
    report = Reporter(sys.stderr, tty=sys.stderr.isatty())
    env = dict(os.environ)
    try:
        if args.action == "stop":
            return _stop(paths)
        if args.action == "status":
            return _status(paths, args.json)
        problem = _bad_numbers(args)
        if problem:
            print(f"rlm: {problem}", file=sys.stderr)
            return EXIT_INVALID
        started = time.monotonic()
        python, model, model_id = _setup(args, paths, env, report)
        if args.action == "setup":
            report.say(f"local model: set up in {elapsed(time.monotonic() - started)}")
            return EXIT_OK
        state = start_server(
            paths,
            python,
            model,
            model_id=model_id,
            env=env,
            report=report,
            n_ctx=args.n_ctx,
            n_threads=args.threads or os.cpu_count() or 2,
            port=args.port,
            temperature=args.temperature,
            max_tokens=args.max_tokens,
        )
        report.say(
            f"local model: {state.model_id} at {state.base_url} ({elapsed(time.monotonic() - started)})"
        )
        print(f"RLM_LOCAL_MODEL={shlex.quote(state.model_id)}")
        print(f"OPENAI_BASE_URL={shlex.quote(state.base_url)}")
        return EXIT_OK
    except LocalModelError as exc:
        print(f"rlm: {exc.message}", file=sys.stderr)
        return EXIT_INVALID if isinstance(exc, ModelFileError) else EXIT_FAILED
    except KeyboardInterrupt:
        print("rlm: interrupted", file=sys.stderr)
        return 130


def _bad_numbers(args: argparse.Namespace) -> str | None:
    if args.n_ctx < 512:
        return "--n-ctx must be at least 512"
    if not 0 <= args.temperature <= 2:
        return "--temperature must be between 0 and 2"
    if not 1 <= args.max_tokens <= args.n_ctx:
        return "--max-tokens must be between 1 and --n-ctx"
    if args.threads is not None and not 1 <= args.threads <= 256:
        return "--threads must be between 1 and 256"
    if args.port is not None and not 1 <= args.port <= 65535:
        return "--port must be between 1 and 65535"
    return None


def _setup(
    args: argparse.Namespace, paths: CachePaths, env: dict[str, str], report: Reporter
) -> tuple[Path, Path, str]:
    if args.model_file:  # checked before the long install, so a typo fails at once
        model = check_gguf(Path(args.model_file).expanduser().resolve())
        model_id = model.stem
    python = install_runtime(paths, python=sys.executable, env=env, report=report, jobs=os.cpu_count() or 2)
    if not args.model_file:
        spec: ModelSpec = QWEN_CODER_0_5B if args.small else QWEN_CODER_1_5B
        model = ensure_model(spec, paths, pip_python=sys.executable, env=env, report=report)
        model_id = spec.model_id
    return python, model, model_id


def _stop(paths: CachePaths) -> int:
    state = stop_server(paths)
    if state is None:
        print("local model: no server was running", file=sys.stderr)
    else:
        print(f"local model: stopped (pid {state.pid}, {state.base_url})", file=sys.stderr)
    return EXIT_OK


def _status(paths: CachePaths, as_json: bool) -> int:
    state = running_server(paths)
    models = None if state is None else server_answers(state.base_url)
    info: dict[str, Any] = {"running": state is not None, "answering": models is not None}
    if state is not None:
        rss = rss_bytes(state.pid)
        info.update(
            pid=state.pid,
            base_url=state.base_url,
            model_id=state.model_id,
            model_path=state.model_path,
            log=state.log,
            uptime_s=round(time.time() - state.started_at, 1),
            n_ctx=state.n_ctx,
            temperature=state.temperature,
            max_tokens=state.max_tokens,
            rss_bytes=rss,
        )
    if as_json:
        print(json.dumps(info))
    elif state is None:
        print(f"local model: not running (cache {paths.root})")
    else:
        rss = info["rss_bytes"]
        memory = f", {rss / 1e9:.2f} GB resident" if rss else ""
        print(
            f"local model: {state.model_id} running (pid {state.pid}{memory}), "
            f"{'answering' if models is not None else 'not answering yet'} at {state.base_url}"
        )
    return EXIT_OK if state is not None else EXIT_NOT_RUNNING
