"""Multi-turn RLM sessions: successive queries in one root sandbox and one namespace, as the official
RLM's `persistent=True` keeps one environment.

    async with orch.session(context="first document", tools={...}) as session:
        first = await session.query("What does it say?")                     # context (= context_0)
        second = await session.query("And this one?", context={"more": 1})   # context_1
        session.get_context_count(), session.get_history_count()             # 2, 2

Each query is a run of its own (its own run id, budget, records and trajectory) whose root level uses
the session's sandbox instead of a fresh one and leaves it open; child RLMs (rlm_query) still get
sandboxes of their own. The session's first context is the run's context as ever (the file API serves
it, `context` and `context_0` hold it); a later query's context is an in-memory value (str, list, dict or
any JSON value) bound as `context_1`, `context_2`, ... Once a query ends, its messages (system prompt,
query, every reply and output) are bound as `history_0`, `history_1`, ... (`history` is `history_0`),
lists of {"role", "content"} dicts as in the official REPL. Each query starts with a fresh `answer`
dict. The host keeps every bound value, so a sandbox that died (timeout, OOM) is replaced with them all
bound again (its other variables are lost, and the model is told). Closing the session destroys the
sandbox; a session is used by one query at a time.

The session's context store (cache, read budget, accounting) spans its queries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..config import ContextLimits, RLMConfig, SandboxLimits
from ..context.sources import ContextInput, as_source
from ..context.store import ContextStore
from ..errors import InvalidInputError, SandboxClosedError
from ..llm.types import Message
from ..sandbox import SandboxSession
from ..sandbox.host_server import SubCalls
from ..sandbox.session import SessionState
from .engine import Emit, Run
from .result import RLMResult
from .tools import ToolBox

if TYPE_CHECKING:
    from ..core import Orchestrator

# A later query's context: a value, not a directory (a running sandbox's mounts cannot change).
LaterContext = str | int | float | bool | list[Any] | dict[str, Any] | None


class RLMSession:
    """One root sandbox and namespace kept across queries. Made by `Orchestrator.session()`."""

    def __init__(
        self,
        orchestrator: Orchestrator,
        context: ContextInput,
        *,
        config: RLMConfig | None = None,
        tools: Mapping[str, Any] | ToolBox | None = None,
        sub_tools: Mapping[str, Any] | ToolBox | None = None,
        runtime: str | None = None,
        limits: SandboxLimits | None = None,
        context_limits: ContextLimits | None = None,
        tenant: str = "default",
    ) -> None:
        self._orch = orchestrator
        self.config = config or orchestrator.settings.run
        self.tools = tools if isinstance(tools, ToolBox) else ToolBox(tools)
        self.sub_tools = (
            sub_tools if sub_tools is None or isinstance(sub_tools, ToolBox) else ToolBox(sub_tools)
        )
        self._runtime = runtime
        self._limits = limits
        self._tenant = tenant
        self._source, self._owns_source = as_source(context)
        self.store = ContextStore(self._source, context_limits or orchestrator.settings.context)
        self._bound: dict[str, Any] = {}  # every host-given variable so far, in order: context_N, history_N
        self._sent: set[str] = set()  # those the current sandbox has
        self._contexts = 1
        self._histories = 0
        self._sandbox: SandboxSession | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self.last_messages: list[Message] = []  # the last query's root messages, as its history holds them
        self.results: list[RLMResult] = []

    # -- the official API's counts -----------------------------------------------------------------

    def get_context_count(self) -> int:
        """Contexts loaded so far: context_0 (the session's own) and one per query that brought one."""
        return self._contexts

    def get_history_count(self) -> int:
        """Histories stored so far: one per query that ended."""
        return self._histories

    @property
    def sandbox(self) -> SandboxSession | None:
        """The root sandbox now (None before the first query, or after it died and before the next)."""
        return self._sandbox

    # -- queries -------------------------------------------------------------------------------------

    async def query(
        self,
        query: str,
        *,
        context: LaterContext = None,
        emit: Emit | None = None,
        stream: bool = False,
        run_id: str | None = None,
    ) -> RLMResult:
        """One query in the session's sandbox; `context`, if given, is bound as the next context_N."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("the query must be a non-empty str")
        if isinstance(context, tuple):
            context = list(context)
        async with self._lock:
            if self._closed:
                raise SandboxClosedError("the RLM session is closed")
            await self._orch.start()
            if context is not None:
                _check_value(context)
                self._bound[f"context_{self._contexts}"] = context
                self._contexts += 1
            run = Run(
                self.config,
                self._orch.provider,
                self._orch.manager,
                self.store,
                emit=emit,
                stream=stream,
                runtime=self._runtime,
                limits=self._limits,
                recorder=self._orch.recorder,
                clock=self._orch.clock,
                run_id=run_id,
                tenant=self._tenant,
                tools=self.tools,
                sub_tools=self.sub_tools,
                root=self,
            )
            trajectory = await run.execute(query)
            result = RLMResult(trajectory.answer, trajectory.status, trajectory, run.run_id)
            self.results.append(result)
            return result

    # -- the engine's hooks (engine.RootSandbox) -------------------------------------------------------

    async def acquire(
        self, start: Callable[[], Awaitable[SandboxSession]], subcalls: SubCalls
    ) -> SandboxSession:
        """The root level's sandbox: the session's own when it lives (now served by this run's
        handler, with a fresh `answer`), else a new one with every bound variable given again."""
        sandbox = self._sandbox
        if sandbox is not None and sandbox.state is SessionState.READY:
            sandbox.set_subcalls(subcalls)
            sandbox.bind("answer", {"content": "", "ready": False})
        else:
            sandbox = self._sandbox = await start()
            self._sent = set()
        for name, value in self._bound.items():
            if name not in self._sent:
                sandbox.bind(name, value)
                self._sent.add(name)
        return sandbox

    async def release(self, sandbox: SandboxSession, messages: list[Message]) -> None:
        """The query ended: keep the sandbox, store the query's messages as the next history_N."""
        if sandbox is not self._sandbox:  # replaced mid-run; that one is done with
            await self._orch.manager.close_session(sandbox)
        if not messages:
            return
        self.last_messages = list(messages)
        name = f"history_{self._histories}"
        self._bound[name] = [{"role": m.role, "content": m.content} for m in messages]
        self._histories += 1
        if self._sandbox is not None and self._sandbox.state is SessionState.READY:
            self._sandbox.bind(name, self._bound[name])
            self._sent.add(name)

    def note(self) -> str:
        """What the model is told of the session's contexts and histories (the official wording)."""
        parts = []
        if self._contexts > 1:
            parts.append(
                f"Note: You have {self._contexts} contexts available (context_0 through "
                f"context_{self._contexts - 1}). `context` is context_0, described above; this query's "
                f"is context_{self._contexts - 1}."
            )
        if self._histories == 1:
            parts.append("Note: You have 1 prior conversation history available in the `history` variable.")
        elif self._histories > 1:
            parts.append(
                f"Note: You have {self._histories} prior conversation histories available (history_0 "
                f"through history_{self._histories - 1})."
            )
        return "\n".join(parts)

    # -- closing ----------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Destroy the sandbox and let the context go. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        async with self._lock:
            try:
                if self._sandbox is not None:
                    sandbox, self._sandbox = self._sandbox, None
                    await self._orch.manager.close_session(sandbox)
            finally:
                self.tools.close()
                if self.sub_tools is not None:
                    self.sub_tools.close()
                if self._owns_source:
                    self._source.close()

    async def __aenter__(self) -> RLMSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _check_value(value: object) -> None:
    import json

    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"a later query's context must be a JSON value (str, numbers, lists, dicts): {exc}"
        ) from None
