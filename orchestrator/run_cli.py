"""`rlm run`: one RLM run from the command line, with progress as it goes.

The only place besides the entry point that reads the environment: the API key (OPENAI_API_KEY) and
the endpoint (OPENAI_BASE_URL). The key is handed to the provider and nowhere else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from .config import LLMEndpoint, RLMConfig, Runtime
from .context.sources import FileSystemContext
from .errors import InvalidInputError
from .rlm import (
    CellFinished,
    CodeStarted,
    FinalAnswer,
    IterationStarted,
    ModelText,
    RLMAgent,
    RLMResult,
    RunError,
    SubCallFinished,
)
from .rlm.events import Event
from .terminal import neutralise

NO_ENDPOINT = (
    "no model endpoint: set OPENAI_API_KEY (and OPENAI_BASE_URL for another OpenAI-compatible server, "
    "e.g. a local vLLM, Ollama or llama.cpp), or pass --base-url"
)


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
        elif self.stream and isinstance(event, CodeStarted):
            self._out.write("\n--- running code ---\n")
        elif self.stream and isinstance(event, CellFinished):
            body = event.cell.stdout + (event.cell.error or "")
            self._out.write(neutralise(body[-2000:]) + f"\n--- {event.cell.status} ---\n")
        self._out.flush()


def run_main(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    base_url = args.base_url or environ.get("OPENAI_BASE_URL") or None
    api_key = environ.get("OPENAI_API_KEY", "")
    if not base_url and not api_key:
        raise InvalidInputError(NO_ENDPOINT)
    if not Path(args.context).is_dir():
        raise InvalidInputError(f"context directory does not exist: {args.context}")
    if not args.query.strip():
        raise InvalidInputError("the query must not be empty")
    Runtime.parse(args.runtime)  # an unknown runtime is bad input, refused before anything starts
    config = RLMConfig(
        root_model=args.model,
        sub_model=args.sub_model,
        max_depth=args.max_depth,
        max_iterations=args.max_iterations,
    )
    context = FileSystemContext(args.context, include=args.include, exclude=args.exclude)
    agent = RLMAgent(config, endpoint=LLMEndpoint(base_url=base_url), api_key=api_key, runtime=args.runtime)
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
