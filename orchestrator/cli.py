"""The `rlm` command line.

    rlm run --context DIR --query TEXT [--config FILE] [--model M] [--sub-model M] [--base-url URL]
            [--max-depth N] [--max-iterations N] [--runtime runc|runsc] [--json] [--stream]
            [--trajectory FILE]

    rlm exec --context DIR [--config FILE] [--include GLOB]... [--exclude GLOB]... [--runtime runc|runsc]
             [--memory SIZE] [--cpus N] [--timeout S] [--json] (--code TEXT | --file PATH | code on stdin)

Every command loads the settings once (`--config FILE`, else $RLM_CONFIG, else the built-in defaults;
then the environment) and builds everything from them; a flag given on the command line wins.

Exit status: 0 when the cell's status is ok, 1 for any other cell status, 2 for bad input (a bad
settings file included), 3 when the engine or the sandbox is unavailable. Errors are one line on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn, TextIO

from . import __version__
from .bench_cli import add_bench_parser, bench_main
from .cli_common import (
    ENVIRONMENT_HELP,
    EXIT_FAILED,
    EXIT_HELP,
    EXIT_INVALID,
    EXIT_OK,
    guarded,
    run_until_signalled,
)
from .core import Orchestrator
from .errors import InvalidInputError, RLMError
from .local_model_cli import add_local_model_parser, local_model_main
from .run_cli import run_main, with_flags
from .sandbox import CellError, CellResult, CellStatus
from .server.app import add_serve_parser, serve_main
from .settings import Settings, load_settings
from .tenants_cli import add_tenants_parser, tenants_main
from .terminal import neutralise

EXIT_CELL_FAILED = EXIT_FAILED


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line and exit 2, like every other bad input
        self.exit(EXIT_INVALID, f"rlm: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rlm",
        description="Recursive Language Models in hardened sandboxes.",
        epilog=ENVIRONMENT_HELP + "\n" + EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rlm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser(
        "exec",
        help="run Python code in a fresh sandbox over a context directory",
        epilog=ENVIRONMENT_HELP + "\n" + EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--context", required=True, metavar="DIR", help="directory mounted read-only at /context"
    )
    run.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="GLOB",
        help="only files matching this glob (gitignore rules: '*.py', 'src/**/*.py'); repeatable",
    )
    run.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="leave out files matching this glob; repeatable",
    )
    add_config_argument(run)
    run.add_argument("--runtime", default=None, help="runc or runsc (gVisor); default: sandbox.runtime")
    run.add_argument(
        "--memory", default=None, help="memory limit, swap included; default: sandbox.limits.memory_bytes"
    )
    run.add_argument(
        "--cpus", type=float, default=None, help="CPU quota in cores; default: sandbox.limits.cpus"
    )
    run.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="wall-clock limit per cell; default: sandbox.limits.cell_timeout_s",
    )
    run.add_argument("--image", default=None, help="sandbox image; default: sandbox.image")
    run.add_argument("--json", action="store_true", help="print one JSON object with the result")
    _add_run_parser(sub)
    add_local_model_parser(sub)
    add_tenants_parser(sub)
    add_serve_parser(sub)
    add_bench_parser(sub)
    source = run.add_mutually_exclusive_group()
    source.add_argument("--code", help="the code to run")
    source.add_argument("--file", metavar="PATH", help="a file holding the code to run")
    return parser


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """`--config FILE`, which every `rlm` command takes."""
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="settings file (TOML); default $RLM_CONFIG, then built-in defaults",
    )


_RUN_LIMIT_FLAGS = [
    ("--request-timeout", float, "S", "per model request (endpoints.*.request_timeout_s, 120)"),
    ("--retries", int, "N", "per model request (endpoints.*.max_retries, 3)"),
    ("--memory", str, "SIZE", "per sandbox, e.g. 1g (sandbox.limits.memory_bytes, 512m)"),
    ("--cpus", float, "N", "per sandbox (sandbox.limits.cpus, 1)"),
    ("--cell-timeout", float, "S", "wall clock per cell (sandbox.limits.cell_timeout_s, 60)"),
    ("--max-subcalls", int, "N", "llm_query / rlm_query calls (run.max_subcalls, 500)"),
    ("--max-tokens", int, "N", "prompt + completion tokens (run.max_tokens, 5,000,000)"),
    ("--max-reply-tokens", int, "N", "one model reply, sent as max_tokens (run.max_completion_tokens, 8192)"),
    ("--max-output-chars", int, "N", "of a cell's output the model sees (run.max_output_chars, 20000)"),
    ("--deadline", float, "S", "for the whole run (run.deadline_s, 3600)"),
]


def _add_run_parser(sub: Any) -> None:
    rlm = sub.add_parser(
        "run",
        help="answer a query over a context with a Recursive Language Model",
        epilog=ENVIRONMENT_HELP + "\n" + EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rlm.add_argument("--context", required=True, metavar="DIR", help="the directory the model explores")
    rlm.add_argument("--query", required=True, help="the question")
    add_config_argument(rlm)
    rlm.add_argument("--model", default=None, help="root model (default: run.root_model, gpt-4o-mini)")
    rlm.add_argument(
        "--sub-model", default=None, help="model for llm_query (default: run.sub_model, else the root model)"
    )
    rlm.add_argument(
        "--base-url",
        default=None,
        help="OpenAI-compatible endpoint (default: the root model's endpoint, $OPENAI_BASE_URL)",
    )
    rlm.add_argument(
        "--max-depth", type=int, default=None, help="1: rlm_query is a plain call; 2+: child RLMs"
    )
    rlm.add_argument("--max-iterations", type=int, default=None, help="default: run.max_iterations")
    rlm.add_argument("--include", action="append", default=[], metavar="GLOB")
    rlm.add_argument("--exclude", action="append", default=[], metavar="GLOB")
    rlm.add_argument("--runtime", default=None, help="runc or runsc (gVisor); default: sandbox.runtime")
    rlm.add_argument(
        "--json", action="store_true", help="print one object: answer, status, metadata, trajectory"
    )
    rlm.add_argument("--stream", action="store_true", help="show the model's text and the cells as they run")
    rlm.add_argument(
        "--trajectory",
        metavar="FILE",
        help="write the full trajectory (JSON) to FILE; checked writable before the run, and written "
        "(partial) when the run is stopped",
    )
    rlm.add_argument(
        "--check-answers",
        action="store_true",
        default=None,
        help="an answer that says nothing was found ('0 lines ...', 'not found'), or that came in the "
        "reply of a grep that found no line where file names match, is sent back once to be checked "
        "(run.check_empty_answers; for small models)",
    )
    rlm.add_argument(
        "--stream-replies",
        action="store_true",
        default=None,
        help="ask the endpoint for every reply as a stream (endpoints.*.stream): a server that stops "
        "generating when its client leaves (llama.cpp) then stops a reply the request timeout gave up on",
    )
    rlm.add_argument(
        "--stop-at-imagined-output",
        action="store_true",
        default=None,
        help="ask root replies with a stop sequence where the REPL's output would begin (a small model "
        "writes made-up output of its code; run.stop_at_imagined_output)",
    )
    rlm.add_argument(
        "--stop-repeating",
        action="store_true",
        default=None,
        help="a streamed reply that starts looping (the same paragraph a third time) is read no "
        "further, one turn of it kept (endpoints.*.stop_repeating; with --stream-replies; for small models)",
    )
    limits = rlm.add_argument_group("limits (each default: the setting named, and its built-in value)")
    for flag, kind, metavar, text in _RUN_LIMIT_FLAGS:
        limits.add_argument(flag, type=kind, metavar=metavar, help=text)


def _read_code(args: argparse.Namespace, stdin: TextIO) -> str:
    if args.code is not None:
        raw = args.code.encode("utf-8", "surrogateescape")
    elif args.file is not None:
        try:
            raw = Path(args.file).read_bytes()
        except OSError as exc:
            raise InvalidInputError(f"cannot read {args.file}: {exc.strerror}") from None
    else:
        if stdin.isatty():
            raise InvalidInputError("no code given: use --code, --file, or pipe code on stdin")
        raw = stdin.buffer.read()
    try:
        code = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"the code is not valid UTF-8 (byte {exc.start})") from None
    if "\x00" in code:
        raise InvalidInputError("the code contains a NUL byte")
    return code


async def _exec(args: argparse.Namespace, code: str, settings: Settings) -> CellResult:
    async with (
        Orchestrator(settings) as orch,
        orch.open_sandbox(args.context, include=args.include, exclude=args.exclude) as session,
    ):
        return await session.run(code)


def _print_result(result: CellResult, out: TextIO, err: TextIO) -> None:
    out.write(neutralise(result.stdout.text))
    if result.stdout.truncated:
        out.write(f"\n[stdout truncated: {result.stdout.total_bytes} bytes written]\n")
    err.write(neutralise(result.stderr.text))
    if result.error is not None:
        err.write(neutralise(result.error.traceback or f"{result.error.type}: {result.error.message}\n"))
    if result.final is not None:
        out.write(f"FINAL: {neutralise(result.final)}\n")
    if result.status not in (CellStatus.OK, CellStatus.ERROR):
        err.write(f"rlm: status {result.status.value}\n")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "local-model":
        return local_model_main(args)
    if args.command == "serve":
        return serve_main(args, os.environ)
    if args.command == "tenants":
        return tenants_main(args, os.environ)
    if args.command == "bench":
        return bench_main(args, os.environ)
    if args.command == "run":
        return guarded(lambda: run_main(args, load_settings(args.config, os.environ)))
    return guarded(lambda: _exec_main(args))


def _exec_main(args: argparse.Namespace) -> int:
    try:
        settings = with_flags(load_settings(args.config, os.environ), args)
        code = _read_code(args, sys.stdin)
        result = run_until_signalled(lambda: _exec(args, code, settings))
    except RLMError as exc:  # refused input, or no engine: --json still prints one object
        if args.json:
            invalid = isinstance(exc, InvalidInputError)
            status = CellStatus.INVALID if invalid else CellStatus.UNAVAILABLE
            kind = "InvalidInput" if invalid else type(exc).__name__
            print(json.dumps(CellResult(status, error=CellError(kind, exc.message)).to_json()))
        raise
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        _print_result(result, sys.stdout, sys.stderr)
    return EXIT_OK if result.ok else EXIT_CELL_FAILED


if __name__ == "__main__":
    sys.exit(main())
