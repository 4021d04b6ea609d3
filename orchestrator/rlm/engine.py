"""The RLM driver: the one place that awaits the model and the sandbox.

Prompt building, reply parsing and budget checks are plain functions (prompts, parsing, budget); this
module only sequences them. A run has one context store, one budget and one sub-call record shared by
the root and its child RLMs; each level gets a sandbox of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ..config import RLMConfig, SandboxLimits
from ..context.store import ContextStore
from ..errors import (
    EngineUnavailableError,
    InvalidInputError,
    LLMError,
    RLMError,
    RunLimitError,
    SandboxError,
)
from ..llm.types import LLMProvider, Message, Usage
from ..sandbox import CellError, CellResult, CellStatus, SandboxManager, SandboxSession
from . import prompts
from .budget import RunBudget
from .events import (
    CellFinished,
    CodeStarted,
    Event,
    IterationStarted,
    ModelText,
    SubCallFinished,
    SubCallStarted,
)
from .parsing import code_blocks, prose_final
from .trajectory import CellRecord, IterationRecord, RunMetadata, SubCallRecord, Trajectory

Emit = Callable[[Event], None]
_DIED = (CellStatus.TIMEOUT, CellStatus.OOM, CellStatus.KILLED)
_LIMITS = ("max_subcalls", "max_tokens", "deadline", "max_iterations")


@dataclass
class _Level:
    """One RLM level's own record (the root, or one child), and its current sandbox."""

    depth: int
    label: str
    iterations: list[IterationRecord] = field(default_factory=list)
    codegen_s: float = 0.0
    repl_s: float = 0.0
    code_chars: int = 0
    usage: Usage = field(default_factory=Usage)
    session: SandboxSession | None = None

    def add_cell(self, cell: CellRecord) -> None:
        """Attach a finished cell to the current iteration at once, so no ending can lose it."""
        last = self.iterations[-1]
        self.iterations[-1] = replace(last, cells=(*last.cells, cell), repl_s=last.repl_s + cell.duration_s)


class Run:
    """The state one run shares across its levels, and the loop each level runs."""

    def __init__(
        self,
        config: RLMConfig,
        provider: LLMProvider,
        manager: SandboxManager,
        store: ContextStore,
        *,
        emit: Emit | None = None,
        stream: bool = False,
        runtime: str | None = None,
        limits: SandboxLimits | None = None,
    ) -> None:
        self.config = config
        self.provider = provider
        self.manager = manager
        self.store = store
        self.budget = RunBudget(config)
        self.emit: Emit = emit or (lambda event: None)
        self.stream = stream
        self.runtime = runtime
        self.limits = limits
        self.subcalls: list[SubCallRecord] = []
        self.children: list[Trajectory] = []
        self.usage_by_model: dict[str, Usage] = {}
        self.sandbox_starts = 0
        self.deepest = 0
        self._ids = itertools.count(1)
        # Model calls share one bound. Child RLMs are bounded per depth, so a child waiting for its
        # own children's slots can never hold the slots they need.
        self.slots = asyncio.Semaphore(config.max_concurrent_subcalls)
        self.child_slots = [
            asyncio.Semaphore(config.max_concurrent_subcalls) for _ in range(config.max_depth + 1)
        ]
        self.started = time.perf_counter()

    def next_id(self) -> int:
        return next(self._ids)

    def count(self, model: str, usage: Usage) -> None:
        self.budget.add(usage)
        self.usage_by_model[model] = self.usage_by_model.get(model, Usage()) + usage

    async def _open(self, level: _Level) -> SandboxSession:
        self.sandbox_starts += 1
        level.session = await self.manager.start_session(
            store=self.store, runtime=self.runtime, limits=self.limits, subcalls=SubCallHandler(self, level)
        )
        return level.session

    async def level(self, query: str, depth: int, label: str, model: str) -> Trajectory:
        """Run one RLM level to its end; never raises for what the model or its code does."""
        self.deepest = max(self.deepest, depth)
        level = _Level(depth, label)
        answer: str | None = None
        status, error = "error", None
        try:
            async with asyncio.timeout(max(self.budget.remaining_s(), 0.001)):
                await self._open(level)
                answer, status = await self._iterate(query, level, model)
                if answer is None and status != "completed":
                    error = self._limit_message(status)
        except TimeoutError:
            status, error = "deadline", f"the run's {self.config.deadline_s:g} s deadline passed"
        except RunLimitError as exc:
            status, error = self.budget.exhausted() or "max_subcalls", exc.message
        except LLMError as exc:
            status, error = "llm_error", exc.message
        except (SandboxError, EngineUnavailableError) as exc:
            status, error = "sandbox_error", exc.message
        except RLMError as exc:
            status, error = "error", exc.message
        finally:
            if level.session is not None:
                await asyncio.shield(self.manager.close_session(level.session))
        return self._trajectory(query, answer, status, error, level)

    def _limit_message(self, status: str) -> str:
        c = self.config
        return {
            "max_subcalls": f"the run's limit of {c.max_subcalls} sub-calls was reached",
            "max_tokens": f"the run's limit of {c.max_tokens:,} tokens was reached",
            "deadline": f"the run's {c.deadline_s:g} s deadline passed",
        }.get(status, f"the run ended: {status}")

    async def _iterate(self, query: str, level: _Level, model: str) -> tuple[str | None, str]:
        shape = await asyncio.to_thread(self.store.shape)
        system = prompts.system_prompt(
            shape, depth=level.depth, max_depth=self.config.max_depth, max_output=self.config.max_output_chars
        )
        messages = [Message("system", system), Message("user", prompts.query_message(query))]
        for index in range(1, self.config.max_iterations + 1):
            reason = self.budget.exhausted()
            if reason is not None:
                return None, reason
            self.emit(IterationStarted(index, level.depth, time.perf_counter() - self.started))
            reply = await self._ask(messages, model, level)
            messages.append(Message("assistant", reply))
            results, answer = await self._answer(reply, level)
            if answer is not None:
                return answer, "completed"
            feedback = (
                prompts.cell_feedback(results, self.config.max_output_chars) if results else prompts.NO_CODE
            )
            messages.append(Message("user", feedback))
        forced = await self._ask([*messages, Message("user", prompts.FORCE_FINAL)], model, level)
        _results, answer = await self._answer(forced, level)
        return (answer if answer is not None else forced.strip()), "max_iterations"

    async def _ask(self, messages: list[Message], model: str, level: _Level) -> str:
        on_text = (lambda piece: self.emit(ModelText(piece, level.depth))) if self.stream else None
        completion = await self.provider.complete(messages, model=model, on_text=on_text)
        self.count(model, completion.usage)
        level.usage = level.usage + completion.usage
        level.codegen_s += completion.duration_s
        level.iterations.append(
            IterationRecord(
                len(level.iterations) + 1,
                level.depth,
                completion.text,
                (),
                completion.usage.prompt_tokens,
                completion.usage.completion_tokens,
                completion.duration_s,
                0.0,
            )
        )
        return completion.text

    async def _run_blocks(self, reply: str, level: _Level) -> tuple[list[tuple[str, CellResult]], str | None]:
        results: list[tuple[str, CellResult]] = []
        for code in code_blocks(reply):
            assert level.session is not None
            self.emit(CodeStarted(code, level.depth))
            level.code_chars += len(code)
            started = time.perf_counter()
            try:
                result = await level.session.run(code)
            except InvalidInputError as exc:  # e.g. a NUL byte: the model is told, nothing ran
                result = CellResult(CellStatus.INVALID, error=CellError("InvalidInput", exc.message))
            level.repl_s += time.perf_counter() - started
            results.append((code, result))
            record = _cell_record(code, result)
            level.add_cell(record)
            self.emit(CellFinished(record, level.depth))
            if result.final is not None:
                return results, result.final
            if result.status in _DIED:
                # Its variables are gone: the rest of this reply assumed them. Tell the model, start afresh.
                await self.manager.close_session(level.session)
                await self._open(level)
                break
        return results, None

    async def _answer(self, reply: str, level: _Level) -> tuple[list[tuple[str, CellResult]], str | None]:
        """Run the reply's code; its answer is what the code ended with, else a FINAL in the prose."""
        results, answer = await self._run_blocks(reply, level)
        found = prose_final(reply) if answer is None else None
        if found is not None and found.text is not None:
            answer = found.text
        elif found is not None:  # FINAL_VAR(name): the sandbox holds the value
            assert level.session is not None
            answer = (await level.session.run(f"FINAL_VAR({found.variable!r})")).final
        return results, answer

    def _trajectory(
        self, query: str, answer: str | None, status: str, error: str | None, level: _Level
    ) -> Trajectory:
        usage = self.store.usage
        shape = self.store.source.shape()
        mine = [s for s in self.subcalls if s.parent == level.label] if level.depth else list(self.subcalls)
        run_usage = self.budget.usage if level.depth == 0 else level.usage
        metadata = RunMetadata(
            status=status,
            max_depth=self.config.max_depth,
            actual_depth=self.deepest if level.depth == 0 else level.depth,
            iterations=len(level.iterations),
            subcall_count=len(mine),
            total_s=time.perf_counter() - self.started,
            codegen_s=level.codegen_s,
            repl_s=level.repl_s,
            context_bytes=shape.total_bytes,
            context_files=shape.file_count,
            generated_code_chars=level.code_chars,
            prompt_tokens=run_usage.prompt_tokens,
            completion_tokens=run_usage.completion_tokens,
            cost_usd=self._cost() if level.depth == 0 else None,
            bytes_read=usage.bytes_read,
            files_read=usage.files_read,
            cache_hit_rate=usage.cache_hit_rate,
            sandbox_starts=self.sandbox_starts,
        )
        return Trajectory(
            query,
            answer,
            status,
            error,
            metadata,
            tuple(level.iterations),
            tuple(mine),
            tuple(self.children) if level.depth == 0 else (),
        )

    def _cost(self) -> float | None:
        """Dollars, where every model used has a configured price; None otherwise."""
        total = 0.0
        for model, used in self.usage_by_model.items():
            price = self.config.price(model)
            if price is None:
                return None
            total += used.prompt_tokens / 1e6 * price[0] + used.completion_tokens / 1e6 * price[1]
        return round(total, 6)


class SubCallHandler:
    """Answers one level's llm_query / rlm_query. Depth, budget and models are the host's, not the code's."""

    def __init__(self, run: Run, level: _Level) -> None:
        self._run = run
        self._level = level

    def _model(self, requested: str) -> str:
        config = self._run.config
        if not requested:
            return config.sub
        allowed = {config.root_model, config.sub, *config.allowed_models}
        if requested not in allowed:
            raise InvalidInputError(
                f"model {requested!r} is not allowed here (allowed: {', '.join(sorted(allowed))})"
            )
        return requested

    async def llm_query(self, prompt: str, model: str, recursive: bool) -> str:
        run, level = self._run, self._level
        chosen = self._model(model)
        recursive = recursive or run.config.recursive_llm_query
        run.budget.take_subcall()
        call_id = run.next_id()
        deeper = recursive and level.depth + 1 < run.config.max_depth
        kind = "rlm" if deeper else "llm"
        run.emit(SubCallStarted(call_id, kind, level.depth + 1, len(prompt)))
        started = time.perf_counter()
        usage, error, text = Usage(), None, ""
        try:
            if deeper:
                async with run.child_slots[level.depth + 1]:
                    child = await run.level(prompt, level.depth + 1, f"rlm-{call_id}", chosen)
                run.children.append(child)
                usage = Usage(child.metadata.prompt_tokens, child.metadata.completion_tokens)
                if child.answer is None:
                    error = f"the sub-agent ended without an answer ({child.status}: {child.error})"
                    raise RunLimitError(error) if child.status in _LIMITS else LLMError(error)
                text = child.answer
            else:
                async with run.slots:
                    completion = await run.provider.complete([Message("user", prompt)], model=chosen)
                run.count(chosen, completion.usage)
                usage, text = completion.usage, completion.text
            return text
        except RLMError as exc:
            error = exc.message
            raise
        except BaseException as exc:  # cancelled: the cell that asked timed out or its run ended
            error = error or f"cancelled ({type(exc).__name__})"
            raise
        finally:
            record = SubCallRecord(
                call_id,
                level.label,
                level.depth + 1,
                kind,
                chosen,
                len(prompt),
                len(text),
                usage.prompt_tokens,
                usage.completion_tokens,
                time.perf_counter() - started,
                error,
            )
            run.subcalls.append(record)
            run.emit(SubCallFinished(record))

    async def llm_query_batched(self, prompts_: list[str], model: str, recursive: bool) -> list[str]:
        """Concurrent, bounded by the run's limit, in order; a failed item is an 'Error: ...' string."""

        async def one(prompt: str) -> str:
            try:
                return await self.llm_query(prompt, model, recursive)  # bounded inside, per kind of call
            except RLMError as exc:
                return f"Error: {exc.message}"

        self._model(model)  # a bad model fails the whole call, as a bad argument should
        return list(await asyncio.gather(*(one(p) for p in prompts_)))


def _cell_record(code: str, result: CellResult) -> CellRecord:
    error = None
    if result.error is not None:
        error = result.error.traceback or f"{result.error.type}: {result.error.message}"
    return CellRecord(
        code,
        result.status.value,
        result.stdout.text,
        result.stderr.text,
        error,
        result.final,
        result.duration_s,
    )
