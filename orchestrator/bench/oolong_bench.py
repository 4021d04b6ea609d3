"""`rlm bench oolong`: every chosen task, size and contender, against an endpoint or offline.

    results = await run_offline(OolongOptions(sizes=(100, 200)), Settings())       # the scripted model
    results = await run_endpoint(OolongOptions(), settings)                        # settings' endpoints
    summary = summarise(results, mode="offline", ...)                              # one object per size

Offline, the scripted server (scripted_server.py) plays the model of oolong_model.py through the real
openai client; its figures are the platform's overhead and a check of the harness, never a model's
accuracy (`label` says so in every object). Tasks run one at a time, so each task's model time is
its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from ..config import LLMEndpoint, Runtime
from ..core import Orchestrator
from ..llm.openai_provider import OpenAIProvider
from ..llm.retry import RetryPolicy
from ..llm.routing import RoutingProvider
from ..llm.types import LLMProvider
from ..settings import PoolProfile, PoolSettings, Settings
from . import oolong
from .oolong_harness import CONTENDERS, Harness, ModelTime, TaskResult, TimedProvider, busy_seconds
from .oolong_model import OfflineModel
from .progress import bar
from .scripted_server import ScriptedLLMServer

OFFLINE_ROOT = "scripted-root"
OFFLINE_SUB = "scripted-sub"
OFFLINE_LABEL = "platform overhead (a scripted model that is always right): not model accuracy"
ENDPOINT_LABEL = "model accuracy"


@dataclass(frozen=True, slots=True)
class OolongOptions:
    sizes: tuple[int, ...] = oolong.SIZES
    tokens: tuple[int, ...] = ()  # token lengths, each turned into a size
    seed: int = 0
    numbers: tuple[int, ...] | None = None  # the tasks (1-20); None: all
    contenders: tuple[str, ...] = tuple(CONTENDERS)
    runtime: str = "runc"
    window_tokens: int = 128_000  # the direct call's window
    questions: Mapping[str, Sequence[str]] | None = None  # TREC questions by label; None: templates
    progress: bool = True
    pool: bool = False  # sandboxes from a warm pool (as a server would run), not started cold

    def all_sizes(self) -> list[int]:
        made = [oolong.size_for_tokens(t, self.seed, self.questions) for t in self.tokens]
        return list(dict.fromkeys([*self.sizes, *made]))


def _openai(endpoint: LLMEndpoint) -> LLMProvider:
    return OpenAIProvider(
        base_url=endpoint.base_url,
        api_key=endpoint.api_key,
        request_timeout_s=endpoint.request_timeout_s,
        retry=RetryPolicy(max_retries=endpoint.max_retries),
    )


async def _run_all(
    options: OolongOptions,
    settings: Settings,
    provider: LLMProvider,
    model_time: ModelTime,
    before: Callable[[oolong.Task, str], None] = lambda _t, _c: None,
) -> list[TaskResult]:
    sizes = options.all_sizes()
    tasks = [
        t
        for n in sizes
        for t in oolong.generate(n, options.seed, questions=options.questions, numbers=options.numbers)
    ]
    results: list[TaskResult] = []
    if options.pool:
        profile = PoolProfile(runtime=Runtime(options.runtime))
        settings = replace(settings, pool=PoolSettings(enabled=True, min=4, max=8, profiles=(profile,)))
    progress = bar(len(tasks) * len(options.contenders), "oolong-pairs", enabled=options.progress)
    try:
        async with Orchestrator(settings, provider=provider) as orch:
            if options.pool:
                await _filled(orch, 4)
            harness = Harness(
                orch,
                provider,
                settings.run,
                model_time=model_time,
                runtime=options.runtime,
                window_tokens=options.window_tokens,
            )
            for task in tasks:
                for name in options.contenders:
                    progress.set_postfix_str(f"size {task.size} task {task.number} {name}")
                    before(task, name)
                    results.append(await harness.run_task(task, CONTENDERS[name]))
                    progress.update()
    finally:
        progress.close()
    return results


async def _filled(orch: Orchestrator, size: int, timeout_s: float = 120.0) -> None:
    """Until the warm pool holds `size` idle sandboxes (the first tasks are not served cold)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stats = orch.pool_stats()
        if stats is None or stats.size >= size:
            return
        await asyncio.sleep(0.1)  # the pool's own fill, not a test's synchronisation


async def run_offline(options: OolongOptions, settings: Settings) -> list[TaskResult]:
    """The harness against the scripted model; settings give the sandbox and context limits."""
    model = OfflineModel()
    with ScriptedLLMServer(model) as server:
        endpoint = LLMEndpoint(base_url=server.url, api_key="offline", max_retries=0, request_timeout_s=300)
        run = replace(
            settings.run,
            root_model=OFFLINE_ROOT,
            sub_model=OFFLINE_SUB,
            max_subcalls=100_000,
            max_iterations=4,
            deadline_s=600,
            prices_per_mtok=(),
        )
        offline = replace(settings, run=run, endpoints=(endpoint,))
        provider = TimedProvider(RoutingProvider(offline.endpoints, _openai))

        def model_time(since: float) -> float:  # the scripted server's own time answering
            return busy_seconds(((s.started, s.finished) for s in list(server.requests)), since)

        try:
            return await _run_all(options, offline, provider, model_time, model.set_task)
        finally:
            await provider.aclose()


async def run_endpoint(options: OolongOptions, settings: Settings) -> list[TaskResult]:
    """The harness against the settings' endpoints (settings.run names the models)."""
    provider = TimedProvider(RoutingProvider(settings.endpoints, _openai))
    try:
        return await _run_all(
            options, settings, provider, lambda since: busy_seconds(provider.intervals, since)
        )
    finally:
        await provider.aclose()


def dump_tasks(options: OolongOptions, directory: str) -> list[str]:
    """Write each size's context and each task's question and gold pairs; the files written."""
    import json
    from pathlib import Path

    root = Path(directory)
    written = []
    for size in options.all_sizes():
        tasks = oolong.generate(size, options.seed, questions=options.questions, numbers=options.numbers)
        here = root / f"size-{size}"
        here.mkdir(parents=True, exist_ok=True)
        (here / "context.txt").write_text(tasks[0].context)
        labels = [{"line": i, "label": e.label} for i, e in enumerate(tasks[0].entries)]
        (here / "labels.json").write_text(json.dumps(labels) + "\n")
        written += [str(here / "context.txt"), str(here / "labels.json")]
        for task in tasks:
            path = here / f"task-{task.number:02d}.json"
            body = {"id": task.id, "question": task.question, "gold": sorted(task.gold)}
            path.write_text(json.dumps(body) + "\n")
            written.append(str(path))
    return written
