"""The one long-lived orchestrator: it owns the sandbox manager, the model providers and the run recorder,
and every run of the process shares them.

    async with Orchestrator(load_settings(path, os.environ)) as orch:     # entry points only read env
        result = await orch.run(context=Path("docs/"), query="...")
        async with orch.open_sandbox("docs/") as sandbox: ...

Host checks run once per runtime per process (the manager caches them); orphaned sandboxes are reaped
when it starts and when it closes, never per run. `aclose()` is idempotent and leaves no sandbox,
channel or worker thread of its own behind. With `[pool] enabled`, a warm pool (sandbox/pool.py) is
filled at `start()` and serves every run's and `open_sandbox`'s sandboxes whose runtime and limits a
profile names; `pool_stats()` gives its figures, and `pool_listener` (the server's Metrics) hears
every change. `RLMAgent`, the CLI and the coming server are thin layers
on it. Ports (backend, provider, recorder, clock) may be passed in; by default they come from the
settings: the Docker backend, one OpenAI-compatible provider per endpoint, an in-memory recorder.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from .clock import SYSTEM_CLOCK, Clock
from .config import ContextLimits, LLMEndpoint, RLMConfig, Runtime, SandboxLimits
from .context.sources import ContextInput, as_source
from .context.store import ContextStore
from .errors import InvalidInputError, RLMError, SandboxClosedError
from .llm.openai_provider import OpenAIProvider
from .llm.retry import RetryPolicy
from .llm.routing import RoutingProvider
from .llm.types import LLMProvider
from .rlm.engine import Emit, Run
from .rlm.events import Event, FinalAnswer, RunError
from .rlm.records import MemoryRecorder, RunRecorder
from .rlm.result import RLMResult
from .rlm.session import RLMSession
from .rlm.tools import ToolBox
from .sandbox import SandboxManager, SandboxSession
from .sandbox.backend import SandboxBackend
from .sandbox.pool import PoolListener, PoolStats, WarmPool
from .settings import Settings


class _State(enum.Enum):
    NEW = "new"
    STARTED = "started"
    CLOSED = "closed"


class Orchestrator:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        backend: SandboxBackend | None = None,
        provider: LLMProvider | None = None,
        recorder: RunRecorder | None = None,
        clock: Clock | None = None,
        pool_listener: PoolListener | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.clock = clock or SYSTEM_CLOCK
        self.manager = SandboxManager(self.settings.sandbox, backend, clock=self.clock)
        self.pool: WarmPool | None = None
        if self.settings.pool.enabled:
            self.pool = self.manager.use_pool(self.settings.pool, clock=self.clock, listener=pool_listener)
        self.recorder: RunRecorder = recorder or MemoryRecorder()
        self._provider = provider
        self._owns_provider = provider is None
        self._state = _State.NEW
        self._starting: asyncio.Future[None] | None = None

    @property
    def provider(self) -> LLMProvider:
        """The providers of the configured endpoints, by model (made on first use)."""
        if self._provider is None:
            self._provider = RoutingProvider(self.settings.endpoints, _openai_provider)
        return self._provider

    async def start(self) -> None:
        """Reap what crashed owners left. Idempotent; concurrent callers share one start."""
        if self._state is _State.CLOSED:
            raise SandboxClosedError("the orchestrator is closed")
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())
        await asyncio.shield(self._starting)
        self._state = _State.STARTED

    async def _start(self) -> None:
        await self.manager.reap()
        if self.pool is not None:
            await self.pool.start()  # fills in the background

    def pool_stats(self) -> PoolStats | None:
        """The warm pool's figures (size, hits, misses, hand-out latency, start failures); None when
        there is no pool."""
        return self.pool.stats() if self.pool is not None else None

    async def __aenter__(self) -> Orchestrator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def run(
        self,
        *,
        context: ContextInput,
        query: str,
        config: RLMConfig | None = None,
        runtime: Runtime | str | None = None,
        limits: SandboxLimits | None = None,
        context_limits: ContextLimits | None = None,
        tenant: str = "default",
        emit: Emit | None = None,
        stream: bool = False,
        run_id: str | None = None,
        sandbox_lease: Callable[[], AbstractAsyncContextManager[object]] | None = None,
        tools: Mapping[str, Any] | ToolBox | None = None,
        sub_tools: Mapping[str, Any] | ToolBox | None = None,
    ) -> RLMResult:
        """One RLM run to its end; the result always carries the trajectory, whatever the ending.

        Raises only for input refused before the run starts (InvalidInputError, e.g. a custom tool
        named like one of the REPL's own functions) and a closed orchestrator; how the run ended is the
        result's status. `sandbox_lease()` is entered for each child level's sandboxes (a per-tenant
        quota: the caller holds the root's). `tools` are custom tools in the official RLM's shape
        (`{"name": function_or_value}` or `{"name": {"tool": ..., "description": ...}}`, see
        rlm/tools.py); `sub_tools` are child RLMs' (default: the same).
        """
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("the query must be a non-empty str")
        box = tools if isinstance(tools, ToolBox) else ToolBox(tools) if tools else None
        sub_box = sub_tools if isinstance(sub_tools, ToolBox) or sub_tools is None else ToolBox(sub_tools)
        await self.start()
        source, owned = as_source(context)
        try:
            store = ContextStore(source, context_limits or self.settings.context)
            run = Run(
                config or self.settings.run,
                self.provider,
                self.manager,
                store,
                emit=emit,
                stream=stream,
                runtime=str(runtime) if runtime is not None else None,
                limits=limits,
                recorder=self.recorder,
                clock=self.clock,
                run_id=run_id,
                tenant=tenant,
                sandbox_lease=sandbox_lease,
                tools=box,
                sub_tools=sub_box,
            )
            trajectory = await run.execute(query)
        finally:
            if owned:
                source.close()
            for made, given in ((box, tools), (sub_box, sub_tools)):
                if made is not None and made is not given:
                    made.close()
        return RLMResult(trajectory.answer, trajectory.status, trajectory, run.run_id)

    def session(
        self,
        context: ContextInput,
        *,
        config: RLMConfig | None = None,
        tools: Mapping[str, Any] | ToolBox | None = None,
        sub_tools: Mapping[str, Any] | ToolBox | None = None,
        runtime: Runtime | str | None = None,
        limits: SandboxLimits | None = None,
        context_limits: ContextLimits | None = None,
        tenant: str = "default",
    ) -> RLMSession:
        """A multi-turn RLM session over `context` (context_0): each `await session.query(q,
        context=...)` continues in the same sandbox and namespace (rlm/session.py); `async with` or
        `aclose()` destroys the sandbox. Tools are refused here, before any sandbox starts."""
        if self._state is _State.CLOSED:
            raise SandboxClosedError("the orchestrator is closed")
        return RLMSession(
            self,
            context,
            config=config,
            tools=tools,
            sub_tools=sub_tools,
            runtime=str(runtime) if runtime is not None else None,
            limits=limits,
            context_limits=context_limits,
            tenant=tenant,
        )

    async def run_stream(self, *, context: ContextInput, query: str, **options: Any) -> AsyncIterator[Event]:
        """The run's events as they happen, ending with FinalAnswer (or RunError if it could not start).

        Only our own errors become a RunError; a bug of ours is raised, so it is seen.
        """
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        task = asyncio.create_task(self.run(context=context, query=query, emit=queue.put_nowait, **options))
        task.add_done_callback(lambda _t: queue.put_nowait(None))
        try:
            while (event := await queue.get()) is not None:
                yield event
            try:
                result = task.result()
            except RLMError as exc:  # refused input, a closed orchestrator: said, not raised mid-stream
                yield RunError(exc.message)
                return
            yield FinalAnswer(result.answer, result.status, result.trajectory)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    def open_sandbox(
        self,
        context: Any = None,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        runtime: Runtime | str | None = None,
        limits: SandboxLimits | None = None,
        context_limits: ContextLimits | None = None,
        tenant: str = "default",
    ) -> AbstractAsyncContextManager[SandboxSession]:
        """A sandbox over a context, destroyed on exit: `async with orch.open_sandbox(dir) as s: ...`."""
        return self.manager.open(
            context,
            include=include,
            exclude=exclude,
            runtime=runtime,
            limits=limits,
            context_limits=context_limits or self.settings.context,
            tenant=tenant,
        )

    async def aclose(self) -> None:
        """Destroy every sandbox, reap, close the providers it made. Safe to call twice."""
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        try:
            if self._starting is not None and not self._starting.done():
                await asyncio.gather(self._starting, return_exceptions=True)
            await self.manager.aclose()
        finally:
            if self._owns_provider and self._provider is not None:
                provider, self._provider = self._provider, None
                await provider.aclose()


def _openai_provider(endpoint: LLMEndpoint) -> LLMProvider:
    return OpenAIProvider(
        base_url=endpoint.base_url,
        api_key=endpoint.api_key,
        request_timeout_s=endpoint.request_timeout_s,
        retry=RetryPolicy(max_retries=endpoint.max_retries),
        stream=endpoint.stream,
        stop_repeating=endpoint.stop_repeating,
    )
