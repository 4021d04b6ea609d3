"""The `rlm` command line.

    rlm run --context DIR --query TEXT [--model M] [--sub-model M] [--base-url URL] [--max-depth N]
            [--max-iterations N] [--runtime runc|runsc] [--json] [--stream] [--trajectory FILE]

    rlm exec --context DIR [--include GLOB]... [--exclude GLOB]... [--runtime runc|runsc]
             [--memory SIZE] [--cpus N] [--timeout S] [--json] (--code TEXT | --file PATH | code on stdin)

Exit status: 0 when the cell's status is ok, 1 for any other cell status, 2 for bad input, 3 when the
engine or the sandbox is unavailable. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn, TextIO

from .config import DEFAULT_IMAGE, RLMConfig, Runtime, SandboxConfig, SandboxLimits, parse_size
from .errors import InvalidInputError, RLMError
from .run_cli import run_main
from .sandbox import CellError, CellResult, CellStatus, open_sandbox
from .terminal import neutralise

EXIT_OK, EXIT_CELL_FAILED, EXIT_INVALID, EXIT_UNAVAILABLE = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line and exit 2, like every other bad input
        self.exit(EXIT_INVALID, f"rlm: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rlm", description="Recursive Language Models in hardened sandboxes.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("exec", help="run Python code in a fresh sandbox over a context directory")
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
    run.add_argument("--runtime", default="runc", help="runc (default) or runsc (gVisor)")
    run.add_argument("--memory", default="512m", help="memory limit, swap included (default 512m)")
    run.add_argument("--cpus", type=float, default=1.0, help="CPU quota in cores (default 1)")
    run.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS", help="wall-clock limit")
    run.add_argument("--image", default=DEFAULT_IMAGE, help="sandbox image (default %(default)s)")
    run.add_argument("--json", action="store_true", help="print one JSON object with the result")
    _add_run_parser(sub)
    source = run.add_mutually_exclusive_group()
    source.add_argument("--code", help="the code to run")
    source.add_argument("--file", metavar="PATH", help="a file holding the code to run")
    return parser


def _add_run_parser(sub: Any) -> None:
    rlm = sub.add_parser("run", help="answer a query over a context with a Recursive Language Model")
    rlm.add_argument("--context", required=True, metavar="DIR", help="the directory the model explores")
    rlm.add_argument("--query", required=True, help="the question")
    rlm.add_argument("--model", default=RLMConfig.root_model_default(), help="root model")
    rlm.add_argument("--sub-model", default=None, help="model for llm_query (default: the root model)")
    rlm.add_argument(
        "--base-url", default=None, help="OpenAI-compatible endpoint (default: $OPENAI_BASE_URL)"
    )
    rlm.add_argument("--max-depth", type=int, default=1, help="1: rlm_query is a plain call; 2+: child RLMs")
    rlm.add_argument("--max-iterations", type=int, default=30)
    rlm.add_argument("--include", action="append", default=[], metavar="GLOB")
    rlm.add_argument("--exclude", action="append", default=[], metavar="GLOB")
    rlm.add_argument("--runtime", default="runc", help="runc (default) or runsc (gVisor)")
    rlm.add_argument(
        "--json", action="store_true", help="print one object: answer, status, metadata, trajectory"
    )
    rlm.add_argument("--stream", action="store_true", help="show the model's text and the cells as they run")
    rlm.add_argument("--trajectory", metavar="FILE", help="write the full trajectory (JSON) to FILE")


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


def _limits(args: argparse.Namespace) -> SandboxLimits:
    return replace(
        SandboxLimits(), memory_bytes=parse_size(args.memory), cpus=args.cpus, cell_timeout_s=args.timeout
    )


async def _exec(args: argparse.Namespace, code: str, limits: SandboxLimits) -> CellResult:
    config = SandboxConfig(image=args.image, runtime=Runtime.parse(args.runtime), limits=limits)
    async with open_sandbox(
        args.context, include=args.include, exclude=args.exclude, config=config
    ) as session:
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
    if args.command == "run":
        return _guarded(args, lambda: run_main(args, os.environ))
    return _guarded(args, lambda: _exec_main(args))


def _exec_main(args: argparse.Namespace) -> int:
    try:
        code = _read_code(args, sys.stdin)
        result = asyncio.run(_exec(args, code, _limits(args)))
    except InvalidInputError as exc:
        if args.json:
            invalid = CellResult(CellStatus.INVALID, error=CellError("InvalidInput", exc.message))
            print(json.dumps(invalid.to_json()))
        raise
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        _print_result(result, sys.stdout, sys.stderr)
    return EXIT_OK if result.ok else EXIT_CELL_FAILED


def _guarded(args: argparse.Namespace, body: Callable[[], int]) -> int:
    """Every error is one line on stderr with its exit status; a traceback only with RLM_DEBUG=1."""
    try:
        return body()
    except InvalidInputError as exc:
        print(f"rlm: {exc.message}", file=sys.stderr)
        return EXIT_INVALID
    except RLMError as exc:
        print(f"rlm: {exc.message}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        print("rlm: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug of ours: still one line, with the way to see more
        if os.environ.get("RLM_DEBUG"):
            raise
        print(
            f"rlm: internal error: {type(exc).__name__}: {exc} (RLM_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE


if __name__ == "__main__":
    sys.exit(main())
