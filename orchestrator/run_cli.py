"""`rlm run`: one RLM run from the command line, with progress as it goes.

It reads no environment: the entry point loads the settings (`load_settings(args.config, os.environ)`:
the endpoints with their API keys, the sandbox, the limits) and hands them here. `with_flags` puts the
flags given on the command line over them. The key goes to the provider and nowhere else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from .config import Runtime, parse_size
from .context.sources import FileSystemContext
from .errors import InvalidInputError
from .rlm import (
    CellFinished,
    CodeStarted,
    FinalAnswer,
    IterationStarted,
    ModelText,
    ModelTextReset,
    RLMAgent,
    RLMResult,
    RunError,
    SubCallFinished,
)
from .rlm.events import Event
from .settings import Settings
from .terminal import neutralise

NO_ENDPOINT = (
    "no model endpoint: set OPENAI_API_KEY (and OPENAI_BASE_URL for another OpenAI-compatible server, "
    "e.g. a local vLLM, Ollama or llama.cpp), or pass --base-url, or configure [endpoints.NAME] in a "
    "settings file (--config)"
)
# A flag given on the command line wins over the settings. `rlm run`'s: flag -> RLMConfig field.
_RUN_FLAGS = {
    "model": "root_model",
    "sub_model": "sub_model",
    "max_depth": "max_depth",
    "max_iterations": "max_iterations",
}
# `rlm exec`'s: flag -> (SandboxLimits field, how the flag's text is read).
_LIMIT_FLAGS: dict[str, tuple[str, Any]] = {
    "memory": ("memory_bytes", parse_size),
    "cpus": ("cpus", float),
    "timeout": ("cell_timeout_s", float),
}


def with_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    """The settings with each flag given on the command line put over them (a flag left out, or that
    this command does not have, leaves the setting as it is). A runtime must be one the settings offer."""

    def given(flag: str) -> Any:
        return getattr(args, flag, None)

    limits = replace(
        settings.sandbox.limits,
        **{name: read(given(f)) for f, (name, read) in _LIMIT_FLAGS.items() if given(f) is not None},
    )
    sandbox = replace(settings.sandbox, limits=limits)
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
    run = replace(settings.run, **{name: given(f) for f, name in _RUN_FLAGS.items() if given(f) is not None})
    return replace(settings, sandbox=sandbox, run=run)


class Progress:
    """What a person sees while a run goes: one status line per iteration, or the whole stream."""

    def __init__(self, out: TextIO, stream: bool) -> None:
        self._out = out
        self.stream = stream
        self._subcalls = 0
        self._started = time.perf_counter()

    def __call__(self, event: Event) -> None:
        if isinstance(event, SubCallFinished):
            self._subcalls += 1
        elif isinstance(event, IterationStarted):
            indent = "  " * event.depth
            self._out.write(
                f"{indent}[depth {event.depth}] iteration {event.index} · {self._subcalls} sub-calls · "
                f"{time.perf_counter() - self._started:.1f} s\n"
            )
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


def run_main(args: argparse.Namespace, settings: Settings) -> int:
    """`rlm run` from its parsed flags and the loaded settings; the exit status."""
    settings = with_flags(settings, args)  # an unknown runtime or a bad value: refused before anything starts
    config = settings.run
    endpoint = settings.endpoint_for(config.root_model)
    if args.base_url:
        endpoint = replace(endpoint, base_url=args.base_url)
    if not endpoint.base_url and not endpoint.api_key:
        raise InvalidInputError(NO_ENDPOINT)
    if not Path(args.context).is_dir():
        raise InvalidInputError(f"context directory does not exist: {args.context}")
    if not args.query.strip():
        raise InvalidInputError("the query must not be empty")
    context = FileSystemContext(args.context, include=args.include, exclude=args.exclude)
    # Every endpoint goes to the agent (a sub-model may live on another); --base-url moves the root's.
    endpoints = tuple(endpoint if e.name == endpoint.name else e for e in settings.endpoints)
    agent = RLMAgent.from_settings(
        replace(settings, endpoints=endpoints), runtime=str(settings.sandbox.runtime)
    )
    result = asyncio.run(_run(agent, context, args.query, Progress(sys.stderr, args.stream)))
    if result is None:
        if args.json:
            print(json.dumps({"answer": None, "status": "error", "metadata": None, "trajectory": None}))
        return 3
    if args.trajectory:
        result.trajectory.write(args.trajectory)
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
    if result.status == "sandbox_error":  # Docker, the image or the seccomp profile is unavailable
        return 3
    return 0 if result.status == "completed" else 1


async def _run(
    agent: RLMAgent, context: FileSystemContext, query: str, progress: Progress
) -> RLMResult | None:
    try:
        final = None
        async for event in agent.run_stream(context=context, query=query, stream_text=progress.stream):
            progress(event)
            if isinstance(event, FinalAnswer):
                final = event
            elif isinstance(event, RunError):
                print(f"rlm: {neutralise(event.message)}", file=sys.stderr)
        return None if final is None else RLMResult(final.answer, final.status, final.trajectory)
    finally:
        await agent.aclose()
        context.close()
