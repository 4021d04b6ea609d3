"""The RLM driver: the one place that awaits the model and the sandbox.

Prompt building, reply parsing and budget checks are plain functions (prompts, parsing, budget); this
module only sequences them. A run has one context store, one budget and one sub-call record shared by
the root and its child RLMs; each level gets a sandbox of its own. Every step is written to the run's
recorder when it happens (records.py), and the trajectory each level returns is built from those
records. Time comes from the injected clock.

A run may have custom tools (tools.ToolBox: host functions its sandboxes call by name, each call one
sub-call of the budget) and, in a multi-turn session (session.RLMSession), a `root` that lends the
root level its kept sandbox (RootSandbox) instead of a fresh one.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from typing import Protocol

from ..clock import SYSTEM_CLOCK, Clock
from ..config import RLMConfig, SandboxLimits
from ..context.store import ContextStore, StoreNote
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
from ..sandbox.host_server import SubCalls
from ..sandbox.tools import ToolOutcome, ToolSpec
from ..status import RunStatus
from . import compaction, prompts
from .budget import RunBudget
from .events import (
    CellFinished,
    CodeStarted,
    Event,
    IterationStarted,
    ModelText,
    ModelTextReset,
    SubCallFinished,
    SubCallStarted,
)
from .parsing import (
    assigned_in,
    code_blocks,
    is_placeholder,
    names_in,
    own_text,
    prose_final,
    unquoted_final,
)
from .records import (
    ROOT,
    CellRecorded,
    IterationRecorded,
    LevelEnded,
    LevelStarted,
    LimitHit,
    NullRecorder,
    Record,
    RunEnded,
    RunRecorder,
    RunStarted,
    SubCallRecorded,
    build_trajectory,
    clip,
)
from .tools import ToolBox
from .trajectory import CellRecord, IterationRecord, RunMetadata, SubCallRecord, Trajectory

Emit = Callable[[Event], None]
log = logging.getLogger(__name__)

MAX_IDLE_REPLIES = 3  # replies in a row without code or a final answer end the run as stalled


@dataclass
class _Level:
    """One RLM level's counters (the root, or one child), and its current sandbox."""

    depth: int
    label: str
    iterations: int = 0
    codegen_s: float = 0.0
    repl_s: float = 0.0
    code_chars: int = 0
    usage: Usage = field(default_factory=Usage)
    session: SandboxSession | None = None
    context_path: str = ""  # how its last sandbox got the context
    query: str = ""  # what this level was asked
    lease: AbstractAsyncContextManager[object] | None = None  # a child level's sandbox quota slot
    messages: list[Message] = field(default_factory=list)  # what the model was sent, as it grows
    cell_calls: list[SubCallRecord] = field(default_factory=list)  # the running cell's sub-calls
    history: list[object] = field(default_factory=list)  # what compaction took out, and its summaries
    over_files: bool = False  # its context is a directory (read through the API or the mount)
    read_files: bool = False  # a cell of this level opened a file of the context
    held_answer: str | None = None  # an answer sent back to be checked; it stands if no other comes
    notes: list[tuple[StoreNote, ...]] = field(default_factory=list)  # the store's, per block of a reply
    restored: set[str] = field(default_factory=set)  # the REPL's names its cells assigned (then restored)
    stale: frozenset[str] = frozenset()  # of those, the ones the code that gave the last answer used
    checked: set[str] = field(default_factory=set)  # the answer checks done (each is made once)

    @property
    def mounted(self) -> bool:
        """Its sandbox has the context's files at /context (the prompt and feedback say so)."""
        return self.session is not None and self.session.mounted

    def note_texts(self) -> list[list[str]]:
        """The store's notes of the last reply, per block, as the feedback shows them."""
        return [[note.text for note in notes] for notes in self.notes]


class RootSandbox(Protocol):
    """Lends a run's root level a kept sandbox (a multi-turn session's, session.RLMSession)."""

    async def acquire(
        self, start: Callable[[], Awaitable[SandboxSession]], subcalls: SubCalls
    ) -> SandboxSession: ...
    async def release(self, sandbox: SandboxSession, messages: list[Message]) -> None: ...
    def note(self) -> str: ...


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
        recorder: RunRecorder | None = None,
        clock: Clock | None = None,
        run_id: str | None = None,
        tenant: str = "default",
        sandbox_lease: Callable[[], AbstractAsyncContextManager[object]] | None = None,
        tools: ToolBox | None = None,
        sub_tools: ToolBox | None = None,
        root: RootSandbox | None = None,
    ) -> None:
        """`tools` serve the root level, `sub_tools` (default: the same) child RLMs; `root` keeps the
        root level's sandbox across runs."""
        self.config = config
        self.provider = provider
        self.manager = manager
        self.store = store
        self.clock = clock or SYSTEM_CLOCK
        self.budget = RunBudget(config, clock=self.clock.now)
        self.emit: Emit = emit or (lambda event: None)
        self.stream = stream
        self.runtime = runtime
        self.limits = limits
        self.recorder: RunRecorder = recorder or NullRecorder()
        self.run_id = run_id or secrets.token_hex(8)
        self.tenant = tenant
        self.sandbox_lease = sandbox_lease
        self.tools = tools
        self.sub_tools = sub_tools if sub_tools is not None else tools
        self.root = root
        self.records: list[Record] = []  # this run's own, whatever the recorder keeps
        self.subcall_count = 0
        self.usage_by_model: dict[str, Usage] = {}
        self.sandbox_starts = 0
        self.pooled_sandboxes = 0
        self.deepest = 0
        self._ids = itertools.count(1)
        # Model calls share one bound. Child RLMs are bounded per depth, so a child waiting for its
        # own children's slots can never hold the slots they need.
        self.slots = asyncio.Semaphore(config.max_concurrent_subcalls)
        self.child_slots = [
            asyncio.Semaphore(config.max_concurrent_subcalls) for _ in range(config.max_depth + 1)
        ]
        self.started = self.clock.now()
        # Child levels' sandbox removals, going on beside the run; the run waits for all before it ends.
        self._teardowns: set[asyncio.Task[None]] = set()
        # A repeated reply is sampled again, hotter, until the endpoint refuses a temperature.
        self.resample = bool(config.repeat_temperatures)

    def next_id(self) -> int:
        return next(self._ids)

    def elapsed(self) -> float:
        return self.clock.now() - self.started

    async def record(self, record: Record) -> None:
        """Keep one step: in the run's own list (its trajectory is built from it) and the recorder."""
        self.records.append(record)
        await self.recorder.write(record)

    async def execute(self, query: str) -> Trajectory:
        """The whole run: the root level, with the run's start and end recorded around it."""
        await self.record(
            RunStarted(
                self.run_id, self.tenant, query, self.config.root_model, self.config.max_depth, time.time()
            )
        )
        try:
            try:
                trajectory = await self.level(query, 0, ROOT, self.config.root_model)
            finally:
                await asyncio.shield(self._teardowns_done())
        except BaseException as exc:
            # Cancelled, or a bug of ours: the run still ends on the record, as its root level did.
            ended = build_trajectory(self.records)
            reason = (
                "the run was cancelled"
                if isinstance(exc, asyncio.CancelledError)
                else (f"internal error: {type(exc).__name__}")
            )
            await asyncio.shield(
                self.record(
                    RunEnded(
                        self.run_id, ended.status, None, ended.error or reason, ended.metadata, time.time()
                    )
                )
            )
            raise
        await self.record(
            RunEnded(
                self.run_id,
                trajectory.status,
                trajectory.answer,
                trajectory.error,
                trajectory.metadata,
                time.time(),
            )
        )
        return trajectory

    def count(self, model: str, usage: Usage) -> None:
        self.budget.add(usage)
        self.usage_by_model[model] = self.usage_by_model.get(model, Usage()) + usage

    async def _open(self, level: _Level) -> SandboxSession:
        """A sandbox for this level. A child level's first holds a lease from `sandbox_lease` (the
        server's per-tenant sandbox quota) until the level closes it; the root's is the caller's."""
        lease = None
        if level.depth > 0 and self.sandbox_lease is not None and level.lease is None:
            lease = self.sandbox_lease()
            await lease.__aenter__()
            level.lease = lease
        handler = SubCallHandler(self, level)

        async def start() -> SandboxSession:
            self.sandbox_starts += 1
            return await self.manager.start_session(
                store=self.store,
                runtime=self.runtime,
                limits=self.limits,
                subcalls=handler,
                tenant=self.tenant,
            )

        try:
            if level.depth == 0 and self.root is not None:
                level.session = await self.root.acquire(start, handler)
            else:
                level.session = await start()
        except BaseException:
            await self._release(level)
            raise
        level.context_path = level.session.context_path
        self.pooled_sandboxes += level.session.pooled
        return level.session

    async def _teardowns_done(self) -> None:
        while self._teardowns:
            await asyncio.gather(*self._teardowns, return_exceptions=True)

    async def _close_child(self, session: SandboxSession, level: _Level) -> None:
        try:
            await self.manager.close_session(session)
        finally:
            await self._release(level)

    async def _release(self, level: _Level) -> None:
        lease, level.lease = level.lease, None
        if lease is not None:
            await lease.__aexit__(None, None, None)

    async def level(
        self, query: str, depth: int, label: str, model: str, parent: str | None = None
    ) -> Trajectory:
        """Run one RLM level to its end; never raises for what the model or its code does.

        Our own errors (RLMError) end the level with a status; anything else is a bug and is raised.
        """
        self.deepest = max(self.deepest, depth)
        level = _Level(depth, label, query=query)
        await self.record(LevelStarted(self.run_id, label, parent, depth, query, model))
        answer: str | None = None
        status, error = RunStatus.ERROR, None
        try:
            try:
                async with self.clock.timeout(max(self.budget.remaining_s(), 0.001)):
                    await self._open(level)
                    answer, status = await self._iterate(query, level, model)
                    if answer is None and status is not RunStatus.COMPLETED:
                        error = self._limit_message(status)
            except TimeoutError:
                status, error = RunStatus.DEADLINE, f"the run's {self.config.deadline_s:g} s deadline passed"
            except RunLimitError as exc:
                status, error = self.budget.exhausted() or RunStatus.MAX_SUBCALLS, exc.message
            except LLMError as exc:
                status, error = RunStatus.LLM_ERROR, exc.message
            except (SandboxError, EngineUnavailableError) as exc:
                status, error = RunStatus.SANDBOX_ERROR, exc.message
            except RLMError as exc:
                status, error = RunStatus.ERROR, exc.message
            except asyncio.CancelledError:
                status, error = RunStatus.CANCELLED, "the run was cancelled"
                raise
        finally:
            if level.session is not None and level.depth == 0 and self.root is not None:
                await asyncio.shield(self.root.release(level.session, level.messages))
            elif level.session is not None and level.depth > 0:
                # A child's answer does not wait for its sandbox's removal (60-200 ms a container):
                # the removal, then the child's lease, go on beside the run, which waits for them all
                # before it ends (execute), so a run still returns with its sandboxes gone.
                task = asyncio.ensure_future(self._close_child(level.session, level))
                self._teardowns.add(task)
                task.add_done_callback(self._teardowns.discard)
            elif level.session is not None:
                await asyncio.shield(self.manager.close_session(level.session))
            if level.session is None or level.depth == 0:
                await asyncio.shield(self._release(level))
            if status.is_limit:
                await self.record(LimitHit(self.run_id, label, status, error or status.value))
            await self.record(
                LevelEnded(self.run_id, label, status, answer, error, self._metadata(status, level))
            )
        return build_trajectory(self.records, label)

    def _limit_message(self, status: RunStatus) -> str:
        c = self.config
        return {
            RunStatus.MAX_SUBCALLS: f"the run's limit of {c.max_subcalls} sub-calls was reached",
            RunStatus.MAX_TOKENS: f"the run's limit of {c.max_tokens:,} tokens was reached",
            RunStatus.DEADLINE: f"the run's {c.deadline_s:g} s deadline passed",
            RunStatus.MAX_ITERATIONS: (
                f"no final answer after {c.max_iterations} iterations (asked for one at the limit)"
            ),
            RunStatus.STALLED: (
                f"the model wrote {MAX_IDLE_REPLIES} replies in a row with no code and no FINAL(...)"
            ),
        }.get(status, f"the run ended: {status.value}")

    async def _iterate(self, query: str, level: _Level, model: str) -> tuple[str | None, RunStatus]:
        answer, status = await self._loop(query, level, model)
        if answer is None and level.held_answer is not None:
            # Asked to check its answer, the model gave no other: the one it gave stands.
            return level.held_answer, RunStatus.COMPLETED if status is RunStatus.STALLED else status
        return answer, status

    def _answer_check(self, answer: str, level: _Level) -> str | None:
        """What to tell the model when its answer is sent back to be checked, or None when it is
        taken. Each check is made once a level. Always: an answer computed from a name of the REPL's
        (`context`) that an earlier cell assigned, and the REPL then restored (recorded from the 1.5B
        model: `context = list_files("logs")` printed 3, then `FINAL(len(context))` gave the whole
        context's 5). For small models (off by default): an answer over a directory given before any
        code read a file of it; an answer given in a reply whose grep found no line where file names
        matched (the store's note); and an answer that says nothing was found (code that looks in the
        wrong place, or for the wrong text, finds nothing too)."""
        if level.stale and "stale" not in level.checked:
            level.checked.add("stale")
            return prompts.stale_answer(sorted(level.stale))
        if self.config.check_unread_answers and "unread" not in level.checked and self._unread(level):
            level.checked.add("unread")
            return prompts.UNREAD_ANSWER
        if (
            self.config.check_empty_answers
            and "unseen" not in level.checked
            and any(note.lines_unseen for notes in level.notes for note in notes)
        ):
            # Written with the code, before its output came: a grep of that reply found no line where
            # file names matched (recorded: grep(r"staff", glob="people/*") gave [], then
            # FINAL(f"{len(hits) - 1} people ..."); grep(r"2026-03.csv") for the file to sum).
            level.checked.add("unseen")
            return prompts.UNSEEN_ANSWER
        if self.config.check_empty_answers and "empty" not in level.checked and prompts.finds_nothing(answer):
            level.checked.add("empty")
            return prompts.EMPTY_ANSWER
        return None

    def _unread(self, level: _Level) -> bool:
        """Nothing of the context's content was read yet: no file opened by this level's cells, no byte
        served by the store (read_file, grep over the socket or the mount); read_files is kept by
        _run_blocks, cell by cell (a replaced sandbox's count starts again at 0)."""
        return level.over_files and not level.read_files and self.store.usage.bytes_read == 0

    async def _loop(self, query: str, level: _Level, model: str) -> tuple[str | None, RunStatus]:
        shape = await asyncio.to_thread(self.store.shape)
        level.over_files = shape.kind == "filesystem"
        every: list[str] = []
        if shape.kind == "filesystem":
            every = await asyncio.to_thread(self.store.list_files)
        paths = every[: prompts.LISTED_PATHS]
        system = prompts.system_prompt(
            shape,
            depth=level.depth,
            max_depth=self.config.max_depth,
            max_output=self.config.max_output_chars,
            query_note=self._query_note(level),
            mounted=level.mounted,
            paths=paths,
        )
        # A session's contexts and histories are told with the query, as the official RLM's turn prompt does.
        session = self.root.note() if level.depth == 0 and self.root is not None else ""
        named = prompts.named_file(query, every) if level.over_files else None
        asked = prompts.query_message(query, files=level.over_files, named=named)
        asked += f"\n\n{session}" if session else ""
        messages = level.messages = [Message("system", system), Message("user", asked)]
        idle = 0  # replies in a row with neither code nor a final answer (or repeats of an earlier one)
        earlier: set[str] = set()  # the replies so far, stripped
        hotter = 0  # repeats in a row sampled again: the next ask's place in repeat_temperatures
        held = ""  # the repeated reply being sampled again
        for index in range(1, self.config.max_iterations + 1):
            reason = self.budget.exhausted()
            if reason is not None:
                return None, reason
            if level.depth == 0 and compaction.due(messages, self.config):
                messages = level.messages = await self._compact(messages, level, model)
            self.emit(IterationStarted(index, level.depth, self.elapsed()))
            reply = await self._ask_hotter(messages, model, level, hotter)
            if reply is None:  # the endpoint refused the temperature: told instead, as without one
                hotter = 0
                messages += [Message("assistant", held), Message("user", prompts.REPEATED)]
                reply = await self._ask(messages, model, level)
            # Where the model goes on to write the REPL's output itself, the rest is made up: not run,
            # not kept in the conversation (the trajectory records the reply whole).
            reply = own_text(reply)
            # A reply that repeats an earlier one (a small model cycles: A, B, A, B), or echoes the
            # instructions, is not run again, and counts as a reply that did nothing. A repeat is first
            # asked for again at a higher temperature, the conversation going on as if it had not come
            # (a small model told "you repeat yourself" at 0.2 writes the same reply once more); once
            # repeat_temperatures are used up, the model is told.
            unchanged = bool(reply.strip()) and reply.strip() in earlier
            echoed = prompts.echoes_instructions(reply)
            earlier.add(reply.strip())
            if unchanged or echoed:
                idle += 1
                if idle >= MAX_IDLE_REPLIES:
                    return await self._last_ask(messages, level, model, RunStatus.STALLED)
                if unchanged and self.resample and hotter < len(self.config.repeat_temperatures):
                    hotter += 1
                    held = reply
                    continue
                hotter = 0
                messages += [
                    Message("assistant", reply),
                    Message("user", prompts.REPEATED if unchanged else prompts.ECHOED),
                ]
                continue
            hotter = 0
            messages.append(Message("assistant", reply))
            results, answer = await self._answer(reply, level)
            if answer is not None and answer.strip():
                check = self._answer_check(answer, level)
                if check is None:
                    return answer, RunStatus.COMPLETED
                level.held_answer = answer  # sent back to be checked; the next FINAL is taken
                messages.append(
                    Message(
                        "user",
                        prompts.cell_feedback(
                            results,
                            self.config.max_output_chars,
                            mounted=level.mounted,
                            next_step=check,
                            notes=level.note_texts(),
                        )
                        if results
                        else check,
                    )
                )
                idle = 0
                continue
            idle = 0 if results else idle + 1
            if idle >= MAX_IDLE_REPLIES:
                return await self._last_ask(messages, level, model, RunStatus.STALLED)
            feedback = (
                prompts.cell_feedback(
                    results,
                    self.config.max_output_chars,
                    mounted=level.mounted,
                    notes=level.note_texts(),
                )
                if results
                else prompts.NO_CODE
            )
            messages.append(Message("user", feedback))
        return await self._last_ask(messages, level, model, RunStatus.MAX_ITERATIONS)

    async def _last_ask(
        self, messages: list[Message], level: _Level, model: str, status: RunStatus
    ) -> tuple[str | None, RunStatus]:
        """At the iteration limit, or stalled (replies that did nothing, repeats among them), the model
        is asked once for its answer; prose without FINAL is no answer. Recorded from the 1.5B model:
        its code printed "69 [...]" for a count of WARN lines, and it wrote that code again until the
        run stalled. An answer already sent back to be checked stands instead (see _iterate)."""
        if level.held_answer is not None:
            return None, status
        ask = prompts.FORCE_FINAL if status is RunStatus.MAX_ITERATIONS else prompts.FORCE_FINAL_STALLED
        forced = own_text(await self._ask([*messages, Message("user", ask)], model, level))
        _results, answer = await self._answer(forced, level)
        return (answer if answer and answer.strip() else None), status

    async def _compact(self, messages: list[Message], level: _Level, model: str) -> list[Message]:
        """Summarise the root's conversation and go on from the summary; what it drops goes into the
        REPL's `history` with the summary (compaction.py)."""
        summary = await self._ask([*messages, Message("user", compaction.SUMMARY_REQUEST)], model, level)
        level.history.extend(compaction.entries(messages, summary))
        if level.session is not None:
            level.session.bind("history", level.history)
        return compaction.continued(messages, summary, sum(1 for e in level.history if isinstance(e, dict)))

    def tools_for(self, level: _Level) -> ToolBox | None:
        return self.tools if level.depth == 0 else self.sub_tools

    def _query_note(self, level: _Level) -> str:
        """The system prompt's last part: the level's custom tools (as the official system prompt's)."""
        tools = self.tools_for(level)
        history = compaction.HISTORY_NOTE if self.config.compaction and level.depth == 0 else ""
        return "\n\n".join(part for part in (tools.prompt_section() if tools else "", history) if part)

    async def _ask_hotter(
        self, messages: list[Message], model: str, level: _Level, hotter: int
    ) -> str | None:
        """The next reply, at repeat_temperatures[hotter - 1] when `hotter`; None when the endpoint
        refuses a temperature (some reasoning models do): the run asks without one from then on."""
        if not hotter:
            return await self._ask(messages, model, level)
        temperature = self.config.repeat_temperatures[hotter - 1]
        try:
            return await self._ask(messages, model, level, temperature=temperature)
        except LLMError as exc:
            if exc.retryable:
                raise
            self.resample = False
            log.warning(
                "the model endpoint refused temperature %s (%s): a repeated reply is told from now on",
                temperature,
                exc.message,
            )
            return None

    async def _ask(
        self, messages: list[Message], model: str, level: _Level, *, temperature: float | None = None
    ) -> str:
        on_text = (lambda piece: self.emit(ModelText(piece, level.depth))) if self.stream else None
        on_reset = (lambda: self.emit(ModelTextReset(level.depth))) if self.stream else None
        completion = await self.provider.complete(
            messages,
            model=model,
            on_text=on_text,
            on_reset=on_reset,
            max_tokens=self.config.max_completion_tokens,
            temperature=temperature,
            stop=prompts.IMAGINED_OUTPUT if self.config.stop_at_imagined_output else (),
        )
        self.count(model, completion.usage)
        level.usage = level.usage + completion.usage
        level.codegen_s += completion.duration_s
        level.iterations += 1
        iteration = IterationRecord(
            level.iterations,
            level.depth,
            completion.text,
            (),
            completion.usage.prompt_tokens,
            completion.usage.completion_tokens,
            completion.duration_s,
            0.0,
        )
        await self.record(IterationRecorded(self.run_id, level.label, iteration))
        return completion.text

    async def _run_blocks(self, reply: str, level: _Level) -> tuple[list[tuple[str, CellResult]], str | None]:
        results: list[tuple[str, CellResult]] = []
        level.notes = []
        level.stale = frozenset()
        for code in code_blocks(reply):
            assert level.session is not None
            self.emit(CodeStarted(code, level.depth))
            level.code_chars += len(code)
            started = self.clock.now()
            level.cell_calls = []
            try:
                result = await level.session.run(code)
                level.read_files = level.read_files or level.session.files_opened > 0
            except InvalidInputError as exc:  # e.g. a NUL byte: the model is told, nothing ran
                result = CellResult(CellStatus.INVALID, error=CellError("InvalidInput", exc.message))
            level.repl_s += self.clock.now() - started
            results.append((code, result))
            level.notes.append(tuple(self.store.take_notes()))
            record = _cell_record(code, result, sorted(level.cell_calls, key=lambda call: call.id))
            await self.record(CellRecorded(self.run_id, level.label, level.iterations, record))
            self.emit(CellFinished(record, level.depth))
            if result.final is not None:
                if result.final.strip() and not is_placeholder(result.final):
                    # `context`, assigned by an earlier cell, was the REPL's again when this one ran
                    # (unless this one assigned it itself); a function put back is what it meant.
                    used = ({"context"} & names_in(code)) - assigned_in(code)
                    level.stale = frozenset(level.restored & used)
                    return results, result.final
                results[-1] = (code, _empty_final(result))  # an empty answer is none: the model hears so
            level.restored.update(result.restored)
            if result.status.sandbox_died:
                # Its variables are gone: the rest of this reply assumed them. Tell the model, start afresh.
                await self.manager.close_session(level.session)
                await self._open(level)
                break
            if result.status is CellStatus.ERROR:
                written = (
                    unquoted_final(code) if result.error and result.error.type == "SyntaxError" else None
                )
                if written is not None:  # FINAL(prose, unquoted): the answer, as if written in the prose
                    return results, written
                # The reply's later blocks assumed this one worked (a small model writes the whole plan,
                # FINAL included, before seeing any output): they do not run on a failure.
                break
        return results, None

    async def _answer(self, reply: str, level: _Level) -> tuple[list[tuple[str, CellResult]], str | None]:
        """Run the reply's code; its answer is what the code ended with, else a FINAL in the prose."""
        results, answer = await self._run_blocks(reply, level)
        found = prose_final(reply) if answer is None else None
        if found is not None and found.text is not None:
            answer = found.text
        elif found is not None:  # FINAL_VAR(name) / FINAL(name): the sandbox holds the value, or not
            assert level.session is not None
            code = f"print(FINAL_VAR({found.variable!r}))"  # a missing name prints why
            read = await level.session.run(code)
            answer = read.final
            if answer is None:  # no such variable: the model hears why its answer did not count
                results.append((code, read))
        return results, answer

    def _metadata(self, status: RunStatus, level: _Level) -> RunMetadata:
        usage = self.store.usage
        shape = self.store.source.shape()
        root = level.depth == 0
        run_usage = self.budget.usage if root else level.usage
        mine = (
            self.subcall_count
            if root
            else sum(1 for r in self.records if isinstance(r, SubCallRecorded) and r.level == level.label)
        )
        return RunMetadata(
            status=status,
            max_depth=self.config.max_depth,
            actual_depth=self.deepest if root else level.depth,
            iterations=level.iterations,
            subcall_count=mine,
            total_s=self.elapsed(),
            codegen_s=level.codegen_s,
            repl_s=level.repl_s,
            context_bytes=shape.total_bytes,
            context_files=shape.file_count,
            generated_code_chars=level.code_chars,
            prompt_tokens=run_usage.prompt_tokens,
            completion_tokens=run_usage.completion_tokens,
            cost_usd=self._cost() if root else None,
            bytes_read=usage.bytes_read,
            files_read=usage.files_read,
            cache_hit_rate=usage.cache_hit_rate,
            sandbox_starts=self.sandbox_starts,
            context_path=level.context_path,
            pooled_sandboxes=self.pooled_sandboxes,
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
        deeper = recursive and level.depth + 1 < run.config.max_depth
        if not deeper and prompts.is_the_query(prompt, level.query):  # refused before it costs a sub-call
            raise InvalidInputError(prompts.query_as_prompt(level.query))
        try:
            run.budget.take_subcall()
        except RunLimitError as exc:
            limit = run.budget.exhausted() or RunStatus.MAX_SUBCALLS
            await run.record(LimitHit(run.run_id, level.label, limit, exc.message))
            raise
        call_id = run.next_id()
        kind = "rlm" if deeper else "llm"
        run.emit(SubCallStarted(call_id, kind, level.depth + 1, len(prompt), chosen, prompt[:80]))
        started = run.clock.now()
        usage, error, text = Usage(), None, ""
        try:
            if deeper:
                async with run.child_slots[level.depth + 1]:
                    child = await run.level(prompt, level.depth + 1, f"rlm-{call_id}", chosen, level.label)
                usage = Usage(child.metadata.prompt_tokens, child.metadata.completion_tokens)
                if child.answer is None:
                    error = f"the sub-agent ended without an answer ({child.status.value}: {child.error})"
                    raise RunLimitError(error) if child.status.is_limit else LLMError(error)
                text = child.answer
            else:
                async with run.slots:
                    completion = await run.provider.complete(
                        [Message("user", prompt)], model=chosen, max_tokens=run.config.max_completion_tokens
                    )
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
                run.clock.now() - started,
                error,
                clip(prompt),
                clip(text),
            )
            run.subcall_count += 1
            if error is None:  # as the official REPL's rlm_calls: a cell lists the calls that worked
                level.cell_calls.append(record)
            await run.record(SubCallRecorded(run.run_id, level.label, record))
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

    # -- custom tools (sandbox.tools.ToolCalls) ---------------------------------------------------

    def tool_specs(self) -> Sequence[ToolSpec]:
        tools = self._run.tools_for(self._level)
        return tools.specs() if tools else ()

    async def call_tool(self, name: str, arguments_json: str) -> ToolOutcome:
        """One call of a custom tool: a sub-call of the budget (kind "tool"), bounded by tool_timeout_s."""
        run, level = self._run, self._level
        tools = run.tools_for(level)
        if tools is None or name not in tools:
            raise InvalidInputError(f"no custom tool named {name!r} in this run")
        try:
            run.budget.take_subcall()
        except RunLimitError as exc:
            await run.record(
                LimitHit(
                    run.run_id, level.label, run.budget.exhausted() or RunStatus.MAX_SUBCALLS, exc.message
                )
            )
            raise
        call_id = run.next_id()
        run.emit(
            SubCallStarted(call_id, "tool", level.depth + 1, len(arguments_json), name, arguments_json[:80])
        )
        started = run.clock.now()
        outcome = ToolOutcome(error_type="CancelledError", error_message="cancelled")
        try:
            outcome = await tools.call(name, arguments_json, run.config.tool_timeout_s)
            return outcome
        finally:
            failed = outcome.result_json is None
            reply = f"{outcome.error_type}: {outcome.error_message}" if failed else outcome.result_json or ""
            record = SubCallRecord(
                call_id,
                level.label,
                level.depth + 1,
                "tool",
                name,
                len(arguments_json),
                len(reply),
                0,
                0,
                run.clock.now() - started,
                reply if failed else None,
                clip(arguments_json),
                "" if failed else clip(reply),
            )
            run.subcall_count += 1
            if not failed:
                level.cell_calls.append(record)
            await run.record(SubCallRecorded(run.run_id, level.label, record))
            run.emit(SubCallFinished(record))


def _empty_final(result: CellResult) -> CellResult:
    """The result of a cell whose FINAL was empty, or a placeholder ("the answer"), as the model is told
    it: no answer was given."""
    note = (
        "FINAL was given no answer (empty, or a placeholder such as 'the answer'): compute the answer "
        "first, then FINAL(...) of it"
    )
    error = result.error or CellError("EmptyFinal", note)
    return replace(result, final=None, error=error, status=CellStatus.ERROR)


def _cell_record(code: str, result: CellResult, subcalls: Sequence[SubCallRecord] = ()) -> CellRecord:
    error = None
    if result.error is not None:
        error = result.error.traceback or f"{result.error.type}: {result.error.message}"
    return CellRecord(
        code,
        result.status,
        result.stdout.text,
        result.stderr.text,
        error,
        result.final,
        result.duration_s,
        tuple(subcalls),
    )
