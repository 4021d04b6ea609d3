"""`rlm run`: one RLM run from the command line, with progress as it goes.

It reads no environment: the entry point loads the settings (`load_settings(args.config, os.environ)`:
the endpoints with their API keys, the sandbox, the limits) and hands them here. `with_flags` puts the
flags given on the command line over them. The key goes to the provider and nowhere else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from .cli_common import EXIT_FAILED, EXIT_OK, EXIT_UNAVAILABLE, Stopped, run_until_signalled
from .config import Runtime, parse_size
from .context.sources import FileSystemContext
from .core import Orchestrator
from .errors import InvalidInputError
from .rlm import (
    CellFinished,
    CodeStarted,
    FinalAnswer,
    IterationStarted,
    ModelText,
    ModelTextReset,
    RLMResult,
    RunError,
    SubCallFinished,
    Trajectory,
)
from .rlm.events import Event
from .rlm.records import MemoryRecorder, build_trajectory
from .settings import Settings
from .status import RunStatus
from .terminal import neutralise

NO_ENDPOINT = (
    "no model endpoint: set OPENAI_API_KEY (and OPENAI_BASE_URL for another OpenAI-compatible server, "
    "e.g. a local vLLM, Ollama or llama.cpp), or pass --base-url, or configure [endpoints.NAME] in a "
    "settings file (--config)"
)
# A flag given on the command line wins over the settings. `rlm run`'s: flag -> RLMConfig field.
_RUN_FLAGS: dict[str, tuple[str, Any]] = {
    "model": ("root_model", str),
    "sub_model": ("sub_model", str),
    "max_depth": ("max_depth", int),
    "max_iterations": ("max_iterations", int),
    "max_subcalls": ("max_subcalls", int),
    "max_tokens": ("max_tokens", int),
    "max_reply_tokens": ("max_completion_tokens", int),
    "max_output_chars": ("max_output_chars", int),
    "check_answers": ("check_empty_answers", bool),
    "stop_at_imagined_output": ("stop_at_imagined_output", bool),
    "deadline": ("deadline_s", float),
}
# Sandbox limits: flag -> (SandboxLimits field, how the flag's text is read). `rlm exec` calls the
# cell's wall clock --timeout, `rlm run` --cell-timeout.
_LIMIT_FLAGS: dict[str, tuple[str, Any]] = {
    "memory": ("memory_bytes", parse_size),
    "cpus": ("cpus", float),
    "timeout": ("cell_timeout_s", float),
    "cell_timeout": ("cell_timeout_s", float),
}
# Every endpoint's: flag -> LLMEndpoint field.
_ENDPOINT_FLAGS: dict[str, tuple[str, Any]] = {
    "request_timeout": ("request_timeout_s", float),
    "retries": ("max_retries", int),
    "stream_replies": ("stream", bool),
    "stop_repeating": ("stop_repeating", bool),
}


def with_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    """The settings with each flag given on the command line put over them (a flag left out, or that
    this command does not have, leaves the setting as it is). A runtime must be one the settings offer."""

    def given(flag: str) -> Any:
        return getattr(args, flag, None)

    sandbox = replace(settings.sandbox, limits=replace(settings.sandbox.limits, **_given(args, _LIMIT_FLAGS)))
    if given("image") is not None:
        sandbox = replace(sandbox, image=given("image"))
    if given("runtime") is not None:
        runtime = Runtime.parse(given("runtime"))
        if runtime not in sandbox.runtimes:
            offered = ", ".join(str(r) for r in sandbox.runtimes)
            raise InvalidInputError(
                f"runtime {str(runtime)!r} is not offered here (sandbox.runtimes: {offered})"
            )
        sandbox = replace(sandbox, runtime=runtime)
    run = replace(settings.run, **_given(args, _RUN_FLAGS))
    endpoints = tuple(replace(e, **_given(args, _ENDPOINT_FLAGS)) for e in settings.endpoints)
    return replace(settings, sandbox=sandbox, run=run, endpoints=endpoints)


def _given(args: argparse.Namespace, flags: dict[str, tuple[str, Any]]) -> dict[str, Any]:
    """The fields the flags given set, each read from its text."""
    return {
        name: read(getattr(args, f))
        for f, (name, read) in flags.items()
        if getattr(args, f, None) is not None
    }


class Progress:
    """What a person sees while a run goes: one status line per iteration, or the whole stream; and,
    while the model is thinking, how long it has been (a line rewritten in place on a terminal)."""

    def __init__(self, out: TextIO, stream: bool, clock: Any = time.monotonic) -> None:
        self._out = out
        self.stream = stream
        self._subcalls = 0
        self._clock = clock
        self._started = clock()
        self._waiting_since: float | None = None
        self._shown_wait = False
        self._last_line = 0.0  # when (into the wait) the last waiting line was written
        self._tty = bool(getattr(out, "isatty", lambda: False)())

    def __call__(self, event: Event) -> None:
        self._stop_waiting(event)
        if isinstance(event, SubCallFinished):
            self._subcalls += 1
        elif isinstance(event, IterationStarted):
            indent = "  " * event.depth
            self._out.write(
                f"{indent}[depth {event.depth}] iteration {event.index} · {self._subcalls} sub-calls · "
                f"{self._clock() - self._started:.1f} s\n"
            )
            if event.depth == 0:
                self._waiting_since = self._clock()
        elif self.stream and isinstance(event, ModelText):
            self._out.write(neutralise(event.text))
        elif self.stream and isinstance(event, ModelTextReset):
            self._out.write("\n[the model's reply was retried: the text above is void]\n")
        elif self.stream and isinstance(event, CodeStarted):
            self._out.write("\n--- running code ---\n")
        elif self.stream and isinstance(event, CellFinished):
            body = event.cell.stdout + (event.cell.error or "")
            self._out.write(neutralise(body[-2000:]) + f"\n--- {event.cell.status} ---\n")
        self._out.flush()

    def _stop_waiting(self, event: Event) -> None:
        if self._waiting_since is not None and not isinstance(event, IterationStarted):
            self._waiting_since = None
            if self._shown_wait and self._tty:
                self._out.write("\r\x1b[2K")  # clear the waiting line
            self._shown_wait = False
            self._last_line = 0.0

    def tick(self) -> None:
        """Called about once a second: say how long the model has been thinking, past a few seconds
        (in place on a terminal; elsewhere a line every WAIT_LINE_EVERY_S)."""
        if self._waiting_since is None:
            return
        waited = self._clock() - self._waiting_since
        if waited < WAIT_SHOWN_AFTER_S:
            return
        if self._tty:
            self._out.write(f"\r\x1b[2Kwaiting for the model ({waited:.0f} s)")
        elif not self._shown_wait or waited - self._last_line >= WAIT_LINE_EVERY_S:
            self._out.write(f"waiting for the model ({waited:.0f} s)\n")
            self._last_line = waited
        self._shown_wait = True
        self._out.flush()


WAIT_SHOWN_AFTER_S = 5
WAIT_LINE_EVERY_S = 30


def run_main(args: argparse.Namespace, settings: Settings) -> int:
    """`rlm run` from its parsed flags and the loaded settings; the exit status."""
    settings = with_flags(settings, args)  # an unknown runtime or a bad value: refused before anything starts
    endpoint = settings.endpoint_for(settings.run.root_model)
    if args.base_url:
        endpoint = replace(endpoint, base_url=args.base_url)
    if not endpoint.base_url and not endpoint.api_key:
        raise InvalidInputError(NO_ENDPOINT)
    context_path = Path(args.context)
    if context_path.exists() and not context_path.is_dir():
        raise InvalidInputError(f"--context must be a directory, and {args.context} is a file")
    if not context_path.is_dir():
        raise InvalidInputError(f"context directory does not exist: {args.context}")
    if not args.query.strip():
        raise InvalidInputError("the query must not be empty")
    if args.trajectory:
        _check_writable(args.trajectory)
    # Every endpoint goes to the run (a sub-model may live on another); --base-url moves the root's.
    endpoints = tuple(endpoint if e.name == endpoint.name else e for e in settings.endpoints)
    settings = replace(settings, endpoints=endpoints)
    progress = Progress(sys.stderr, args.stream)
    recorder = MemoryRecorder(max_runs=1)
    run_id = secrets.token_hex(8)
    context = FileSystemContext(
        args.context, include=args.include, exclude=args.exclude, on_progress=_indexing(sys.stderr)
    )
    try:
        result = run_until_signalled(lambda: _run(settings, context, args.query, progress, recorder, run_id))
    except Stopped:
        partial = build_trajectory(recorder.records(run_id))
        if args.trajectory and recorder.records(run_id):
            _write_trajectory(partial, args.trajectory)
            sys.stderr.write(f"rlm: the partial trajectory is in {args.trajectory}\n")
        raise
    if isinstance(result, str):  # the run could not start: said in one line (and in the JSON)
        if args.json:
            print(json.dumps({"run_id": run_id, "answer": None, "status": "error", "error": result}))
        return EXIT_UNAVAILABLE
    written = _write_trajectory(result.trajectory, args.trajectory) if args.trajectory else True
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False))
    else:
        meta = result.metadata
        sys.stderr.write(
            f"status {result.status} · {meta.iterations} iterations · {meta.subcall_count} sub-calls · "
            f"{meta.prompt_tokens + meta.completion_tokens:,} tokens · {meta.total_s:.1f} s\n"
        )
        if result.trajectory.error:
            sys.stderr.write(f"rlm: {neutralise(result.trajectory.error)}\n")
        if result.answer is not None:
            print(neutralise(result.answer))
    if result.status is RunStatus.SANDBOX_ERROR:  # Docker, the image or the seccomp profile is unavailable
        return EXIT_UNAVAILABLE
    return EXIT_OK if result.status is RunStatus.COMPLETED and written else EXIT_FAILED


def _check_writable(path: str) -> None:
    """Refuse, before anything runs, a --trajectory the run could not write at its end."""
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise InvalidInputError(f"--trajectory {path} is a directory: name a file")
    if not parent.is_dir():
        raise InvalidInputError(f"--trajectory {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise InvalidInputError(f"--trajectory {path}: not writable")


def _write_trajectory(trajectory: Trajectory, path: str) -> bool:
    """Write it; a failure (the disk filled, the directory went away) is said, never fatal."""
    try:
        trajectory.write(path)
        return True
    except OSError as exc:
        sys.stderr.write(f"rlm: could not write the trajectory to {path}: {exc.strerror}\n")
        return False


def _indexing(out: TextIO) -> Any:
    def show(files: int) -> None:
        out.write(f"indexing the context: {files:,} files so far\n")
        out.flush()

    return show


async def _run(
    settings: Settings,
    context: FileSystemContext,
    query: str,
    progress: Progress,
    recorder: MemoryRecorder,
    run_id: str,
) -> RLMResult | str:
    """The run, with progress; a run that could not start is its one-line reason."""
    ticker = asyncio.ensure_future(_tick(progress))
    try:
        async with Orchestrator(settings, recorder=recorder) as orch:
            final: FinalAnswer | None = None
            async for event in orch.run_stream(
                context=context, query=query, stream=progress.stream, run_id=run_id
            ):
                progress(event)
                if isinstance(event, FinalAnswer):
                    final = event
                elif isinstance(event, RunError):
                    sys.stderr.write(f"rlm: {neutralise(event.message)}\n")
                    return event.message
            assert final is not None
            return RLMResult(final.answer, final.status, final.trajectory, run_id)
    finally:
        ticker.cancel()
        context.close()


async def _tick(progress: Progress) -> None:
    while True:
        await asyncio.sleep(1.0)
        progress.tick()
