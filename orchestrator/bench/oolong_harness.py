"""OOLONG-Pairs contenders on the same tasks, scored and timed.

    async with Orchestrator(settings, provider=timed) as orch:
        harness = Harness(orch, timed, settings.run, runtime="runc", window_tokens=128_000)
        result = await harness.run_task(task, CONTENDERS["rlm"])        # TaskResult: F1, tokens, times

Contenders (`CONTENDERS`): the RLM at depth 1 (`rlm`), at depth 2 (`rlm-depth2`: rlm_query starts child
RLMs), the RLM without sub-calls (`rlm-no-subcalls`: run.max_subcalls = 0 and the query says so), and a
direct call with the whole list in the prompt (`direct`: cut, whole lines from the end, to the model's
window when it does not fit, and reported as `truncated`).

Time per task: `wall_s` from the start of the run to its result; `model_s` the time the model was
answering (the union of the intervals during which at least one model request of the task was in
flight, so concurrent sub-calls are counted once); `platform_s = wall_s - model_s`, everything else:
sandboxes, cells, gRPC, the engine, the HTTP client. Offline the intervals are the scripted server's
own (the exact time the "model" took); against an endpoint they are the provider's (request to reply,
retries included), the best the client can see.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..config import RLMConfig
from ..core import Orchestrator
from ..errors import RLMError
from ..llm.types import Completion, LLMProvider, Message, OnReset, OnText
from . import oolong
from .oolong import CHARS_PER_TOKEN, Task

NO_SUBCALLS_NOTE = (
    "\n\n(This run has no sub-calls: llm_query, llm_query_batched and rlm_query are not available and "
    "end the run if called. Work with code alone.)"
)


@dataclass(frozen=True, slots=True)
class Contender:
    name: str
    kind: str  # "rlm" or "direct"
    depth: int = 1
    subcalls: bool = True
    description: str = ""


CONTENDERS: dict[str, Contender] = {
    c.name: c
    for c in (
        Contender("rlm", "rlm", 1, True, "RLM, depth 1 (llm_query sub-calls)"),
        Contender("rlm-depth2", "rlm", 2, True, "RLM, depth 2 (rlm_query starts child RLMs)"),
        Contender("rlm-no-subcalls", "rlm", 1, False, "RLM without sub-calls (REPL only)"),
        Contender("direct", "direct", description="direct call, the whole list in the prompt"),
    )
}


class TimedProvider:
    """An LLMProvider that records when each request was in flight (monotonic start, end)."""

    def __init__(self, inner: LLMProvider) -> None:
        self.inner = inner
        self.intervals: list[tuple[float, float]] = []

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        on_text: OnText | None = None,
        on_reset: OnReset | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] = (),
    ) -> Completion:
        started = time.monotonic()
        try:
            return await self.inner.complete(
                messages,
                model=model,
                on_text=on_text,
                on_reset=on_reset,
                max_tokens=max_tokens,
                temperature=temperature,
                stop=stop,
            )
        finally:
            self.intervals.append((started, time.monotonic()))

    async def aclose(self) -> None:
        await self.inner.aclose()


def busy_seconds(intervals: Iterable[tuple[float, float]], since: float) -> float:
    """The length of the union of the intervals that start at or after `since`."""
    total, end = 0.0, since
    for start, stop in sorted(i for i in intervals if i[0] >= since):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


@dataclass(frozen=True, slots=True)
class TaskResult:
    task: int
    size: int
    contender: str
    status: str
    f1: float
    precision: float
    recall: float
    gold_pairs: int
    predicted_pairs: int
    wall_s: float
    model_s: float
    platform_s: float
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    iterations: int = 0
    subcalls: int = 0
    sandbox_starts: int = 0
    truncated: bool = False  # direct: the list was cut to the window
    lines_given: int = 0  # direct: the entries the prompt held
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


ModelTime = Callable[[float], float]  # seconds the model was answering since a monotonic instant


class Harness:
    """Runs one task with one contender on an orchestrator whose provider is `provider`."""

    def __init__(
        self,
        orch: Orchestrator,
        provider: LLMProvider,
        config: RLMConfig,
        *,
        model_time: ModelTime,
        runtime: str = "runc",
        window_tokens: int = 128_000,
    ) -> None:
        self.orch = orch
        self.provider = provider
        self.config = config
        self.model_time = model_time
        self.runtime = runtime
        self.window_tokens = window_tokens

    async def run_task(self, task: Task, contender: Contender) -> TaskResult:
        if contender.kind == "direct":
            return await self._direct(task, contender)
        return await self._rlm(task, contender)

    async def _rlm(self, task: Task, contender: Contender) -> TaskResult:
        config = replace(
            self.config,
            max_depth=contender.depth,
            max_subcalls=self.config.max_subcalls if contender.subcalls else 0,
        )
        query = task.question + ("" if contender.subcalls else NO_SUBCALLS_NOTE)
        started = time.monotonic()
        result = await self.orch.run(context=task.context, query=query, config=config, runtime=self.runtime)
        wall = time.monotonic() - started
        model = min(self.model_time(started), wall)
        meta = result.metadata
        s = oolong.score(result.answer, task.gold)
        return TaskResult(
            task.number,
            task.size,
            contender.name,
            result.status.value,
            s.f1,
            s.precision,
            s.recall,
            s.gold,
            s.predicted,
            wall,
            model,
            wall - model,
            meta.prompt_tokens,
            meta.completion_tokens,
            meta.cost_usd,
            iterations=meta.iterations,
            subcalls=meta.subcall_count,
            sandbox_starts=meta.sandbox_starts,
            error=result.trajectory.error,
        )

    def direct_prompt(self, task: Task) -> tuple[str, int]:
        """The whole list and the question, cut (whole lines, from the end) to the window; lines kept."""
        reserve = min(self.config.max_completion_tokens or 8192, self.window_tokens // 4)
        budget = (self.window_tokens - reserve) * CHARS_PER_TOKEN - len(task.question) - 64
        lines = [e.line() for e in task.entries]
        kept, used = 0, 0
        for line in lines:
            if used + len(line) + 1 > budget:
                break
            used += len(line) + 1
            kept += 1
        return "\n".join(lines[:kept]) + "\n\n" + task.question, kept

    async def _direct(self, task: Task, contender: Contender) -> TaskResult:
        prompt, kept = self.direct_prompt(task)
        model_name = self.config.root_model
        started = time.monotonic()
        error, text, usage = None, "", None
        try:
            completion = await self.provider.complete(
                [Message("user", prompt)],
                model=model_name,
                max_tokens=self.config.max_completion_tokens or None,
            )
            text, usage = completion.text, completion.usage
        except RLMError as exc:
            error = exc.message
        wall = time.monotonic() - started
        model = min(self.model_time(started), wall)
        s = oolong.score(text, task.gold)
        prompt_tokens = usage.prompt_tokens if usage else 0
        completion_tokens = usage.completion_tokens if usage else 0
        price = self.config.price(model_name)
        cost = (prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6 if price else None
        return TaskResult(
            task.number,
            task.size,
            contender.name,
            "completed" if error is None else "llm_error",
            s.f1,
            s.precision,
            s.recall,
            s.gold,
            s.predicted,
            wall,
            model,
            wall - model,
            prompt_tokens,
            completion_tokens,
            cost,
            truncated=kept < len(task.entries),
            lines_given=kept,
            error=error,
        )


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summarise(results: Sequence[TaskResult], **common: Any) -> list[dict[str, Any]]:
    """One object per (size, contender), in the order first seen: F1 and the rest averaged over tasks."""
    groups: dict[tuple[int, str], list[TaskResult]] = {}
    for r in results:
        groups.setdefault((r.size, r.contender), []).append(r)
    out = []
    for (size, contender), rs in groups.items():
        costs = [r.cost_usd for r in rs if r.cost_usd is not None]
        platform = [r.platform_s for r in rs]
        out.append(
            {
                "size": size,
                "contender": contender,
                "tasks": len(rs),
                "f1": statistics.fmean(r.f1 for r in rs),
                "precision": statistics.fmean(r.precision for r in rs),
                "recall": statistics.fmean(r.recall for r in rs),
                "platform_s": statistics.fmean(platform),
                "platform_p50_s": statistics.median(platform),
                "platform_p95_s": _p(platform, 95),
                "platform_p99_s": _p(platform, 99),
                "platform_max_s": max(platform),
                "wall_s": statistics.fmean(r.wall_s for r in rs),
                "model_s": statistics.fmean(r.model_s for r in rs),
                "tokens": statistics.fmean(r.prompt_tokens + r.completion_tokens for r in rs),
                "prompt_tokens": statistics.fmean(r.prompt_tokens for r in rs),
                "completion_tokens": statistics.fmean(r.completion_tokens for r in rs),
                "cost_usd": statistics.fmean(costs) if len(costs) == len(rs) else None,
                "completed": sum(r.status == "completed" for r in rs),
                "truncated": sum(r.truncated for r in rs),
                **common,
            }
        )
    return out


def table(summary: Sequence[dict[str, Any]]) -> str:
    """F1 per size and contender side by side, then tokens, cost and time per task."""
    sizes = sorted({s["size"] for s in summary})
    contenders = list(dict.fromkeys(s["contender"] for s in summary))
    by = {(s["size"], s["contender"]): s for s in summary}
    head = f"{'contender':<24}" + "".join(f"{'F1 @' + str(n):>10}" for n in sizes)
    lines = [head]
    for c in contenders:
        cells = []
        for n in sizes:
            s = by.get((n, c))
            mark = "*" if s and s["truncated"] else ""
            cells.append(f"{s['f1']:>9.3f}{mark or ' '}" if s else f"{'-':>10}")
        lines.append(f"{c:<24}" + "".join(cells))
    if any(s["truncated"] for s in summary):
        lines.append("* the list was cut to the model's window in some tasks")
    lines.append("")
    lines.append(
        f"{'size':>6} {'contender':<24}{'tokens/task':>12}{'cost/task':>11}{'wall s':>9}"
        f"{'model s':>9}{'platform s':>11}{'p95':>7}{'done':>6}"
    )
    for s in summary:
        cost = f"${s['cost_usd']:.4f}" if s["cost_usd"] is not None else "-"
        lines.append(
            f"{s['size']:>6} {s['contender']:<24}{s['tokens']:>12,.0f}{cost:>11}{s['wall_s']:>9.2f}"
            f"{s['model_s']:>9.2f}{s['platform_s']:>11.3f}{s['platform_p95_s']:>7.2f}"
            f"{s['completed']:>3}/{s['tasks']:<2}"
        )
    return "\n".join(lines)
