"""The official RLM's Python API (alexzhang13/rlm, PyPI `rlms`, `from rlm import RLM`) over this platform.

    from orchestrator.compat import RLM, RLMLogger          # was: from rlm import RLM; from rlm.logger ...

    rlm = RLM(backend="openai", backend_kwargs={"model_name": "gpt-4o-mini"}, max_iterations=10,
              custom_tools={"lookup": {"tool": lookup, "description": "..."}}, logger=RLMLogger("logs"))
    result = rlm.completion(context, root_prompt="Which service fails most often?")
    print(result.response, result.usage_summary.to_dict(), result.execution_time)

A thin layer: each `completion()` is a run of our engine in our sandboxes (Docker, runc or gVisor's
runsc), with our limits enforced on the host. The constructor takes the official arguments that make
sense here and refuses, naming them, those that select something this platform does not run (another
sandbox provider, a non-OpenAI-compatible backend) or that it cannot honour (see `_REFUSED`).
`persistent=True` keeps one session (one sandbox and namespace) across completions, closed by
`close()` or `with RLM(...) as rlm:`. The README's "Compatibility with the official RLM" lists every
difference and why.

As the official client does, the API key is read from the environment when `backend_kwargs` has none
(OPENAI_API_KEY; OPENROUTER_API_KEY and AI_GATEWAY_API_KEY for those backends), and the base URL from
OPENAI_BASE_URL when none is given: this constructor is an entry point, like the CLI.

Each RLM runs one orchestrator on an event loop of its own, in a daemon thread, so `completion()` works
from plain scripts and from code that already runs an event loop (a notebook).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .compat_logger import (
    CodeBlock,
    LMCall,
    REPLResult,
    RLMIteration,
    RLMLogger,
    RLMMetadata,
    filter_sensitive_keys,
)
from .config import LLMEndpoint, RLMConfig, limits_from_request
from .errors import InvalidInputError, LLMError, RLMError, RunLimitError
from .rlm import prompts
from .rlm.events import CellFinished, Event, IterationStarted, SubCallFinished, SubCallStarted
from .rlm.session import RLMSession
from .rlm.tools import ToolBox
from .rlm.trajectory import CellRecord, Trajectory
from .sandbox.backend import SandboxBackend
from .settings import Settings
from .status import RunStatus

__all__ = [
    "RLM",
    "BudgetExceededError",
    "CancellationError",
    "ErrorThresholdExceededError",
    "ModelUsageSummary",
    "RLMChatCompletion",
    "RLMLogger",
    "TimeoutExceededError",
    "TokenLimitExceededError",
    "UsageSummary",
]

T = TypeVar("T")

# Backends that speak the OpenAI chat-completions API, and the base URL each defaults to.
_OPENAI_COMPATIBLE = {
    "openai": None,
    "vllm": None,  # a base_url is required
    "openrouter": "https://openrouter.ai/api/v1",
    "vercel": "https://ai-gateway.vercel.sh/v1",
}
_KEY_VARIABLE = {"openrouter": "OPENROUTER_API_KEY", "vercel": "AI_GATEWAY_API_KEY"}
_OUR_ENVIRONMENTS = ("local", "docker", "ipython")  # all run in our sandbox
_OTHER_SANDBOXES = ("modal", "prime", "daytona", "e2b")
_BACKEND_KEYS = {"model_name", "api_key", "base_url", "timeout", "max_retries", "sampling_args"}
# The query the root model gets when completion() has no root_prompt (the prompt is then the task).
NO_ROOT_PROMPT = "The context holds the prompt itself: read it, do what it asks, and give the answer."


# -- the official result types ------------------------------------------------------------------------


@dataclass
class ModelUsageSummary:
    total_calls: int
    total_input_tokens: int
    total_output_tokens: int
    total_cost: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "total_calls": self.total_calls,
            "total_input_tokens": self.total_input_tokens,
            "total_output_tokens": self.total_output_tokens,
        }
        if self.total_cost is not None:
            out["total_cost"] = self.total_cost
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelUsageSummary:
        return cls(
            data.get("total_calls", 0),
            data.get("total_input_tokens", 0),
            data.get("total_output_tokens", 0),
            data.get("total_cost"),
        )


@dataclass
class UsageSummary:
    model_usage_summaries: dict[str, ModelUsageSummary]

    @property
    def total_cost(self) -> float | None:
        costs = [s.total_cost for s in self.model_usage_summaries.values() if s.total_cost is not None]
        return sum(costs) if costs else None

    @property
    def total_input_tokens(self) -> int:
        return sum(s.total_input_tokens for s in self.model_usage_summaries.values())

    @property
    def total_output_tokens(self) -> int:
        return sum(s.total_output_tokens for s in self.model_usage_summaries.values())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model_usage_summaries": {m: s.to_dict() for m, s in self.model_usage_summaries.items()}
        }
        if self.total_cost is not None:
            out["total_cost"] = self.total_cost
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UsageSummary:
        summaries = data.get("model_usage_summaries", {})
        return cls({m: ModelUsageSummary.from_dict(s) for m, s in summaries.items()})


@dataclass
class RLMChatCompletion:
    """What `completion()` returns: the official fields, and ours (`status`, `run_id`, `trajectory`)."""

    root_model: str
    prompt: Any
    response: str
    usage_summary: UsageSummary
    execution_time: float
    metadata: dict[str, Any] | None = None  # the logger's trajectory, when the RLM has a logger
    error: str | None = None
    status: RunStatus = RunStatus.COMPLETED
    run_id: str = ""
    trajectory: Trajectory | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "root_model": self.root_model,
            "prompt": self.prompt,
            "response": self.response,
            "usage_summary": self.usage_summary.to_dict(),
            "execution_time": self.execution_time,
        }
        if self.metadata is not None:
            out["metadata"] = self.metadata
        if self.error is not None:
            out["error"] = self.error
        return out


# -- the official exceptions (same names and attributes) -------------------------------------------------


class BudgetExceededError(Exception):
    def __init__(self, spent: float, budget: float, message: str | None = None) -> None:
        self.spent, self.budget = spent, budget
        super().__init__(message or f"Budget exceeded: spent ${spent:.6f} of ${budget:.6f} budget")


class TimeoutExceededError(Exception):
    def __init__(
        self, elapsed: float, timeout: float, partial_answer: str | None = None, message: str | None = None
    ) -> None:
        self.elapsed, self.timeout, self.partial_answer = elapsed, timeout, partial_answer
        super().__init__(message or f"Timeout exceeded: {elapsed:.1f}s of {timeout:.1f}s limit")


class TokenLimitExceededError(Exception):
    def __init__(
        self,
        tokens_used: int,
        token_limit: int,
        partial_answer: str | None = None,
        message: str | None = None,
    ) -> None:
        self.tokens_used, self.token_limit, self.partial_answer = tokens_used, token_limit, partial_answer
        super().__init__(message or f"Token limit exceeded: {tokens_used:,} of {token_limit:,} tokens")


class ErrorThresholdExceededError(Exception):
    def __init__(
        self,
        error_count: int,
        threshold: int,
        last_error: str | None = None,
        partial_answer: str | None = None,
        message: str | None = None,
    ) -> None:
        self.error_count, self.threshold = error_count, threshold
        self.last_error, self.partial_answer = last_error, partial_answer
        super().__init__(
            message or f"Error threshold exceeded: {error_count} consecutive errors (limit: {threshold})"
        )


class CancellationError(Exception):
    def __init__(self, partial_answer: str | None = None, message: str | None = None) -> None:
        self.partial_answer = partial_answer
        super().__init__(message or "Execution cancelled by user")


# -- the RLM class -----------------------------------------------------------------------------------------

# Official arguments refused unless left at their default, and why.
_REFUSED = {
    "custom_system_prompt": (
        None,
        "the system prompt describes this platform's sandbox and its API; it is built by the engine",
    ),
    "max_budget": (
        None,
        "a budget in dollars needs the endpoint to report costs, which OpenAI-compatible APIs do not; "
        "bound the run with max_tokens (and max_timeout)",
    ),
    "user_prologue": (None, "the engine builds the messages the root model sees"),
    "sub_sampling_args": (None, "sampling arguments are not passed to the endpoint, except max_tokens"),
}


class RLM:
    """The official `RLM` class's constructor and `completion()`, running on this platform."""

    def __init__(
        self,
        backend: str = "openai",
        backend_kwargs: dict[str, Any] | None = None,
        environment: str = "local",
        environment_kwargs: dict[str, Any] | None = None,
        depth: int = 0,
        max_depth: int = 1,
        max_iterations: int = 30,
        max_budget: float | None = None,
        max_timeout: float | None = None,
        max_tokens: int | None = None,
        max_errors: int | None = None,
        custom_system_prompt: str | None = None,
        other_backends: list[str] | None = None,
        other_backend_kwargs: list[dict[str, Any]] | None = None,
        logger: RLMLogger | None = None,
        verbose: bool = False,
        persistent: bool = False,
        custom_tools: dict[str, Any] | None = None,
        custom_sub_tools: dict[str, Any] | None = None,
        compaction: bool = False,
        compaction_threshold_pct: float = 0.85,
        max_concurrent_subcalls: int | None = None,
        on_subcall_start: Callable[[int, str, str], None] | None = None,
        on_subcall_complete: Callable[[int, str, float, str | None], None] | None = None,
        on_iteration_start: Callable[[int, int], None] | None = None,
        on_iteration_complete: Callable[[int, int, float], None] | None = None,
        sampling_args: dict[str, Any] | None = None,
        sub_sampling_args: dict[str, Any] | None = None,
        orchestrator: bool = True,
        user_prologue: str | None = None,
        *,
        settings: Settings | None = None,
        backend_for_tests: SandboxBackend | None = None,
    ) -> None:
        """The official arguments, and ours: `settings` (from load_settings) for the sandbox, context
        limits and storage; environment_kwargs may set `runtime` ("runc" or "runsc") and lower the
        sandbox's limits (`memory`, `cpus`, `timeout`, ...: the keys `rlm run` takes)."""
        given = {
            "custom_system_prompt": custom_system_prompt,
            "max_budget": max_budget,
            "user_prologue": user_prologue,
            "sub_sampling_args": sub_sampling_args,
        }
        for name, value in given.items():
            default, why = _REFUSED[name]
            if value != default:
                raise ValueError(f"RLM({name}=...) is not supported here: {why}")
        if environment in _OTHER_SANDBOXES:
            raise ValueError(
                f"environment={environment!r} selects another sandbox provider; this platform runs code "
                "only in its own hardened sandboxes (Docker under runc, or gVisor's runsc): use "
                "environment='local' or 'docker', with environment_kwargs={'runtime': 'runsc'} for gVisor"
            )
        if environment not in _OUR_ENVIRONMENTS:
            raise ValueError(f"unknown environment {environment!r}: use 'local' or 'docker'")
        if depth != 0:
            raise ValueError("depth is the official code's bookkeeping for child RLMs: leave it at 0")
        self.backend = backend
        self.backend_kwargs = dict(backend_kwargs or {})
        self.environment_type = environment
        self.environment_kwargs = dict(environment_kwargs or {})
        self.depth = depth
        self.max_depth = max_depth
        self.max_iterations = max_iterations
        self.max_timeout = max_timeout
        self.max_tokens = max_tokens
        self.max_errors = max_errors
        self.logger = logger
        self.verbose = verbose
        self.persistent = persistent
        self.custom_tools = custom_tools
        self.custom_sub_tools = custom_sub_tools if custom_sub_tools is not None else custom_tools
        self.compaction_threshold_pct = compaction_threshold_pct
        self.orchestrator = orchestrator
        self.on_subcall_start = on_subcall_start
        self.on_subcall_complete = on_subcall_complete
        self.on_iteration_start = on_iteration_start
        self.on_iteration_complete = on_iteration_complete
        self.other_backends = other_backends

        endpoints, root_model, sub_model, completion_cap = _endpoints(
            backend, self.backend_kwargs, other_backends, other_backend_kwargs, sampling_args
        )
        try:
            self._tools = ToolBox(custom_tools)
            self._sub_tools = ToolBox(self.custom_sub_tools)
            runtime = self.environment_kwargs.get("runtime")
            base = settings or Settings()
            limits, _ = limits_from_request(
                {k: v for k, v in self.environment_kwargs.items() if k != "runtime"},
                base.sandbox.limits,
                base.sandbox.runtimes,
            )
            run = RLMConfig(
                root_model=root_model,
                sub_model=sub_model,
                max_depth=max_depth,
                max_iterations=max_iterations,
                max_tokens=max_tokens or base.run.max_tokens,
                deadline_s=max_timeout or base.run.deadline_s,
                max_concurrent_subcalls=max_concurrent_subcalls or base.run.max_concurrent_subcalls,
                max_completion_tokens=base.run.max_completion_tokens
                if completion_cap is None
                else completion_cap,
                max_subcalls=base.run.max_subcalls,
                max_output_chars=base.run.max_output_chars,
                tool_timeout_s=base.run.tool_timeout_s,
                compaction=compaction,
                compaction_threshold_pct=compaction_threshold_pct,
                context_window_tokens=base.run.context_window_tokens,
            )
        except InvalidInputError as exc:
            raise ValueError(exc.message) from None
        self._settings = Settings(
            sandbox=base.sandbox,
            context=base.context,
            run=run,
            endpoints=endpoints,
            storage=base.storage,
        )
        self._runtime = str(runtime) if runtime else None
        self._limits = limits
        self._backend = backend_for_tests
        self._loop: _LoopThread | None = None
        self._orch: Any = None
        self._held = _Held()  # the persistent session, for the finalizer too
        self._closer: weakref.finalize | None = None

        if self.logger is not None or verbose:
            metadata = RLMMetadata(
                root_model=root_model,
                max_depth=max_depth,
                max_iterations=max_iterations,
                backend=backend,
                backend_kwargs=filter_sensitive_keys(self.backend_kwargs),
                environment_type=environment,
                environment_kwargs=filter_sensitive_keys(self.environment_kwargs),
                other_backends=other_backends,
            )
            if self.logger is not None:
                self.logger.log_metadata(metadata)
            if verbose:
                print(f"[rlm] {root_model} via {backend}, depth {max_depth}, {max_iterations} iterations")

    # -- the official API ---------------------------------------------------------------------------

    def completion(
        self, prompt: str | dict[str, Any] | list[Any], root_prompt: str | None = None
    ) -> RLMChatCompletion:
        """One RLM completion over `prompt` (the context), answering `root_prompt` (the question the
        root model sees; without one, the prompt itself is the task)."""
        if self.logger is not None:
            self.logger.clear_iterations()
        loop = self._loop_thread()
        started = time.perf_counter()
        watcher = _Watcher(self)
        future = loop.submit(self._complete(prompt, root_prompt or NO_ROOT_PROMPT, watcher))
        try:
            result, session = future.result()
        except KeyboardInterrupt:
            future.cancel()
            raise CancellationError(None, "Execution cancelled by user (Ctrl+C)") from None
        except concurrent.futures.CancelledError:  # max_errors reached: the watcher cancelled the run
            if watcher.too_many_errors is None:
                raise CancellationError(None, "the run was cancelled") from None
            count, last = watcher.too_many_errors
            raise ErrorThresholdExceededError(
                count,
                self.max_errors or 0,
                last,
                None,
                f"Error threshold exceeded: {count} consecutive errors (limit: {self.max_errors})",
            ) from None
        return self._finish(prompt, result, session, watcher, time.perf_counter() - started)

    def close(self) -> None:
        """End the persistent session (its sandbox is destroyed) and the RLM's orchestrator."""
        if self._closer is not None:
            self._closer()
            self._closer = None
        self._loop, self._orch, self._held.session = None, None, None

    def __enter__(self) -> RLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- ours -----------------------------------------------------------------------------------------

    @property
    def session(self) -> RLMSession | None:
        """The persistent session (persistent=True, after the first completion): get_context_count(),
        get_history_count(), its sandbox."""
        return self._held.session

    def _loop_thread(self) -> _LoopThread:
        if self._loop is None:
            from .core import Orchestrator

            loop = _LoopThread()
            orch = Orchestrator(self._settings, backend=self._backend)
            self._loop, self._orch = loop, orch
            self._closer = weakref.finalize(self, _shutdown, loop, orch, self._held)
        return self._loop

    async def _complete(self, prompt: Any, query: str, watcher: _Watcher) -> tuple[Any, RLMSession]:
        if self.persistent and self._held.session is not None:
            session = self._held.session
            context: Any = prompt
        else:
            session = self._orch.session(
                prompt,
                tools=self._tools,
                sub_tools=self._sub_tools,
                runtime=self._runtime,
                limits=self._limits,
            )
            context = None
            if self.persistent:
                self._held.session = session
        task = asyncio.current_task()
        assert task is not None
        watcher.task = task
        try:
            result = await session.query(query, context=context, emit=watcher.emit)
        finally:
            if not self.persistent:
                await session.aclose()
        return result, session

    def _finish(
        self, prompt: Any, result: Any, session: RLMSession, watcher: _Watcher, elapsed: float
    ) -> RLMChatCompletion:
        trajectory: Trajectory = result.trajectory
        watcher.close()
        if self.logger is not None:
            for iteration in _iterations(trajectory, session.last_messages, self._settings.run.root_model):
                self.logger.log(iteration)
        partial = next((it.reply for it in reversed(trajectory.iterations) if it.reply.strip()), None)
        status = result.status
        if status is RunStatus.DEADLINE:
            raise TimeoutExceededError(elapsed, self._settings.run.deadline_s, partial, trajectory.error)
        if status is RunStatus.MAX_TOKENS:
            used = trajectory.metadata.prompt_tokens + trajectory.metadata.completion_tokens
            raise TokenLimitExceededError(used, self._settings.run.max_tokens, partial, trajectory.error)
        if status is RunStatus.CANCELLED:
            raise CancellationError(partial, trajectory.error)
        if status is RunStatus.LLM_ERROR:
            raise LLMError(trajectory.error or "the model endpoint failed")
        if status is RunStatus.MAX_SUBCALLS:
            raise RunLimitError(trajectory.error or "the run's sub-call limit was reached")
        if status not in (RunStatus.COMPLETED, RunStatus.MAX_ITERATIONS, RunStatus.STALLED):
            raise RLMError(trajectory.error or f"the run ended: {status.value}")
        # Out of turns without an answer: as the official code, the model's last reply is the response.
        response = result.answer if result.answer is not None else (partial or "")
        if self.verbose:
            done = f"{status.value}, {trajectory.metadata.iterations} iterations"
            print(f"[rlm] final answer ({done}): {response}")
        return RLMChatCompletion(
            root_model=self._settings.run.root_model,
            prompt=prompt,
            response=response,
            usage_summary=_usage(trajectory, self._settings.run.root_model),
            execution_time=elapsed,
            metadata=self.logger.get_trajectory() if self.logger is not None else None,
            error=trajectory.error if result.answer is None else None,
            status=status,
            run_id=result.run_id,
            trajectory=trajectory,
        )


class _Watcher:
    """Follows one completion's events: the official callbacks, verbose lines, max_errors, and the
    best partial answer (the last reply with text)."""

    def __init__(self, rlm: RLM) -> None:
        self._rlm = rlm
        self.task: asyncio.Task[Any] | None = None
        self.too_many_errors: tuple[int, str] | None = None
        self._errors = 0
        self._iteration: dict[int, tuple[int, float]] = {}  # depth -> (index, started)
        self._iteration_had_error: dict[int, bool] = {}
        self._sub_started: dict[int, float] = {}

    def emit(self, event: Event) -> None:
        try:
            self._event(event)
        except Exception:  # a callback's bug must not end the run (the official code swallows them too)
            pass

    def _event(self, event: Event) -> None:
        rlm = self._rlm
        if isinstance(event, IterationStarted):
            self._iteration_done(event.depth)
            self._iteration[event.depth] = (event.index, time.perf_counter())
            self._iteration_had_error[event.depth] = False
            if rlm.on_iteration_start is not None:
                rlm.on_iteration_start(event.depth, event.index)
            if rlm.verbose and event.depth == 0:
                print(f"[rlm] iteration {event.index}")
        elif isinstance(event, CellFinished):
            if event.depth == 0 and (event.cell.stderr or event.cell.error):
                self._iteration_had_error[0] = True
                self._last_error = event.cell.error or event.cell.stderr
            if rlm.verbose and event.depth == 0:
                shown = (event.cell.stdout or event.cell.error or "")[:200]
                print(f"[rlm] cell {event.cell.status.value}: {shown}")
        elif isinstance(event, SubCallStarted):
            self._sub_started[event.id] = time.perf_counter()
            if event.kind == "rlm" and rlm.on_subcall_start is not None:
                rlm.on_subcall_start(event.depth, event.model, event.preview)
        elif isinstance(event, SubCallFinished):
            record = event.record
            started = self._sub_started.pop(record.id, time.perf_counter())
            if record.kind == "rlm" and rlm.on_subcall_complete is not None:
                rlm.on_subcall_complete(
                    record.depth, record.model, time.perf_counter() - started, record.error
                )

    def _iteration_done(self, depth: int) -> None:
        current = self._iteration.pop(depth, None)
        if current is None:
            return
        index, started = current
        if self._rlm.on_iteration_complete is not None:
            self._rlm.on_iteration_complete(depth, index, time.perf_counter() - started)
        if depth == 0 and self._rlm.max_errors is not None:
            self._errors = self._errors + 1 if self._iteration_had_error.get(0) else 0
            if self._errors >= self._rlm.max_errors and self.too_many_errors is None:
                self.too_many_errors = (self._errors, getattr(self, "_last_error", ""))
                if self.task is not None:
                    self.task.cancel()

    def close(self) -> None:
        for depth in list(self._iteration):
            self._iteration_done(depth)


# -- converting our run to the official shapes ----------------------------------------------------------


def _usage(trajectory: Trajectory, root_model: str) -> UsageSummary:
    """Tokens by model: the root's replies (its own iterations) and every LM sub-call of the run."""
    by_model: dict[str, ModelUsageSummary] = {}

    def add(model: str, calls: int, prompt_tokens: int, completion_tokens: int) -> None:
        s = by_model.setdefault(model, ModelUsageSummary(0, 0, 0))
        s.total_calls += calls
        s.total_input_tokens += prompt_tokens
        s.total_output_tokens += completion_tokens

    for it in trajectory.iterations:
        add(root_model, 1, it.prompt_tokens, it.completion_tokens)
    for call in trajectory.subcalls:
        if call.kind in ("llm", "rlm"):
            add(call.model, 1, call.prompt_tokens, call.completion_tokens)
    return UsageSummary(by_model)


def _iterations(trajectory: Trajectory, messages: list[Any], root_model: str) -> list[RLMIteration]:
    """The root's iterations as the official log records them, each with the messages it was sent."""
    sent = [{"role": m.role, "content": m.content} for m in messages]
    starts = [i for i, m in enumerate(sent) if m["role"] == "assistant"]
    out = []
    for n, it in enumerate(trajectory.iterations):
        if n < len(starts):
            prompt = sent[: starts[n]]
        else:  # asked for its answer at the limit: the messages and that request
            prompt = [*sent, {"role": "user", "content": prompts.FORCE_FINAL}]
        blocks = [CodeBlock(c.code, _repl_result(c, root_model)) for c in it.cells]
        final = next((c.final for c in it.cells if c.final is not None), None)
        if final is None and n == len(trajectory.iterations) - 1:
            final = trajectory.answer
        out.append(RLMIteration(prompt, it.reply, blocks, final, it.model_s + it.repl_s))
    return out


def _repl_result(cell: CellRecord, root_model: str) -> REPLResult:
    stderr = cell.stderr
    if cell.error:
        stderr = (stderr + "\n" if stderr else "") + cell.error
    calls = [
        LMCall(s.model, s.prompt, s.reply, s.prompt_tokens, s.completion_tokens, s.duration_s)
        for s in cell.subcalls
        if s.kind in ("llm", "rlm")
    ]
    return REPLResult(cell.stdout, stderr, cell.duration_s, calls, cell.final)


def _endpoints(
    backend: str,
    kwargs: dict[str, Any],
    other_backends: list[str] | None,
    other_kwargs: list[dict[str, Any]] | None,
    sampling_args: dict[str, Any] | None,
) -> tuple[tuple[LLMEndpoint, ...], str, str | None, int | None]:
    """Our endpoints (the root's, and the sub-call model's when other_backends names one), the root and
    sub models, and the reply cap sampling_args' max_tokens sets."""
    cap = None
    if sampling_args:
        extra = sorted(set(sampling_args) - {"max_tokens"})
        if extra:
            raise ValueError(
                f"sampling_args {extra} are not passed to the endpoint here (only max_tokens, as the cap on "
                "each reply)"
            )
        cap = int(sampling_args["max_tokens"])
    root = _endpoint("default", backend, kwargs)
    root_model = str(kwargs.get("model_name") or "gpt-4o-mini")
    if not other_backends:
        return (root,), root_model, None, cap
    if len(other_backends) != 1 or not other_kwargs or len(other_kwargs) != 1:
        raise ValueError(
            "other_backends takes one backend (the sub-call model's), with one other_backend_kwargs"
        )
    sub_kwargs = dict(other_kwargs[0])
    sub_model = str(sub_kwargs.get("model_name") or root_model)
    sub = _endpoint("sub", other_backends[0], sub_kwargs)
    if (sub.base_url, sub.api_key) == (root.base_url, root.api_key) or sub_model == root_model:
        return (root,), root_model, sub_model, cap
    root = LLMEndpoint(**{**_fields(root), "models": (root_model,)})
    sub = LLMEndpoint(**{**_fields(sub), "models": (sub_model,)})
    return (root, sub), root_model, sub_model, cap


def _fields(endpoint: LLMEndpoint) -> dict[str, Any]:
    return {
        "base_url": endpoint.base_url,
        "request_timeout_s": endpoint.request_timeout_s,
        "max_retries": endpoint.max_retries,
        "name": endpoint.name,
        "api_key": endpoint.api_key,
    }


def _endpoint(name: str, backend: str, kwargs: dict[str, Any]) -> LLMEndpoint:
    if backend not in _OPENAI_COMPATIBLE:
        raise ValueError(
            f"backend {backend!r} is not an OpenAI-compatible API; this platform calls models through "
            f"one: use one of {sorted(_OPENAI_COMPATIBLE)} (any server speaking the OpenAI API works "
            "as backend='openai' with backend_kwargs={'base_url': ...})"
        )
    unknown = sorted(set(kwargs) - _BACKEND_KEYS)
    if unknown:
        raise ValueError(f"backend_kwargs {unknown} are not supported here (use {sorted(_BACKEND_KEYS)})")
    base_url = (
        kwargs.get("base_url") or _OPENAI_COMPATIBLE[backend] or os.environ.get("OPENAI_BASE_URL") or None
    )
    if backend == "vllm" and not kwargs.get("base_url"):
        raise ValueError("base_url is required to be set to local vLLM server address for vLLM")
    api_key = kwargs.get("api_key") or os.environ.get(_KEY_VARIABLE.get(backend, "OPENAI_API_KEY"), "")
    try:
        return LLMEndpoint(
            base_url=base_url,
            api_key=str(api_key or ""),
            name=name,
            request_timeout_s=float(kwargs.get("timeout") or 120.0),
            max_retries=int(kwargs.get("max_retries", 3)),
        )
    except InvalidInputError as exc:
        raise ValueError(exc.message) from None


class _Held:
    session: RLMSession | None = None


class _LoopThread:
    """An event loop running in a daemon thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="rlm-compat", daemon=True)
        self.thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=30)
        if not self.loop.is_running():
            self.loop.close()


def _shutdown(loop: _LoopThread, orch: Any, held: _Held) -> None:
    """Close the session (if any) and the orchestrator on the RLM's loop, then stop the loop."""

    async def close() -> None:
        session, held.session = held.session, None
        try:
            if session is not None:
                await session.aclose()
        finally:
            await orch.aclose()

    try:
        if loop.loop.is_running():
            loop.submit(close()).result(timeout=120)
    finally:
        loop.stop()
