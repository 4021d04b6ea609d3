"""RLMAgent: the Python API for running Recursive Language Models, a thin layer on the Orchestrator.

    agent = RLMAgent(RLMConfig(root_model="gpt-4o-mini"), endpoint=LLMEndpoint(base_url=...), api_key=...)
    result = await agent.run(context=Path("docs/"), query="...")
    async for event in agent.run_stream(context=..., query=...): ...
    result = agent.run_sync(context=..., query=...)        # scripts: a loop of its own, closed after
    await agent.aclose()                                   # or: async with RLMAgent(...) as agent: ...

`context` is a directory (a Path or FileSystemContext), an InMemoryContext, or an in-memory value: a
str (the text itself, as the paper passes it: a str is never taken for a path), a list of str or a
dict of str. The agent reads no environment: the key is `api_key` or `endpoint.api_key` (the settings
loader fills that from the variable `api_key_env` names). Give it an `orchestrator` to share one
orchestrator's sandboxes, providers and recorder; otherwise it makes its own on first use and closes it
in `aclose()`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..config import ContextLimits, LLMEndpoint, RLMConfig, SandboxConfig, SandboxLimits
from ..context.sources import ContextInput
from ..llm.types import LLMProvider
from ..sandbox.backend import SandboxBackend
from ..settings import Settings
from .events import Event
from .result import RLMResult

if TYPE_CHECKING:
    from ..core import Orchestrator

__all__ = ["ContextInput", "RLMAgent", "RLMResult"]


class RLMAgent:
    def __init__(
        self,
        config: RLMConfig | None = None,
        *,
        provider: LLMProvider | None = None,
        endpoint: LLMEndpoint | None = None,
        api_key: str | None = None,
        sandbox: SandboxConfig | None = None,
        runtime: str | None = None,
        limits: SandboxLimits | None = None,
        context_limits: ContextLimits | None = None,
        orchestrator: Orchestrator | None = None,
        backend: SandboxBackend | None = None,
        settings: Settings | None = None,
    ) -> None:
        """`settings` (from load_settings) gives every part at once, all endpoints included; otherwise
        the parts are given one by one (`config`, `endpoint` and `api_key`, `sandbox`, `context_limits`)."""
        if settings is not None:
            self.config = config or settings.run
            self._settings = replace(settings, run=self.config)
        else:
            self.config = config or RLMConfig()
            endpoint = endpoint or LLMEndpoint()
            if api_key is not None:
                endpoint = replace(endpoint, api_key=api_key)
            self._settings = Settings(
                sandbox=sandbox or SandboxConfig(),
                context=context_limits or ContextLimits(),
                run=self.config,
                endpoints=(endpoint,),
            )
        self._provider = provider
        self._runtime = runtime
        self._limits = limits
        self._context_limits = context_limits or self._settings.context
        self._orchestrator = orchestrator
        self._owns_orchestrator = orchestrator is None
        self._backend = backend  # for the agent's own orchestrator; default: Docker, from the settings

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> RLMAgent:
        """An agent on the settings: run limits, every endpoint (by model), sandbox, context limits."""
        return cls(settings=settings, **overrides)

    def _orch(self) -> Orchestrator:
        if self._orchestrator is None:
            from ..core import Orchestrator  # core imports the engine, which this package holds

            self._orchestrator = Orchestrator(self._settings, provider=self._provider, backend=self._backend)
        return self._orchestrator

    async def __aenter__(self) -> RLMAgent:
        await self._orch().start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def run(
        self, *, context: ContextInput, query: str, stream: bool = False, emit: Any = None
    ) -> RLMResult:
        """Run to the end; the result always carries the trajectory, whatever the ending."""
        return await self._orch().run(context=context, query=query, **self._options(stream, emit))

    async def run_stream(
        self, *, context: ContextInput, query: str, stream_text: bool = True
    ) -> AsyncIterator[Event]:
        """The run's events as they happen, ending with FinalAnswer (or RunError if it could not start)."""
        async for event in self._orch().run_stream(
            context=context, query=query, **self._options(stream_text, None)
        ):
            yield event

    def run_sync(self, *, context: ContextInput, query: str) -> RLMResult:
        """For scripts (not inside a running event loop): run() in a fresh loop, then close."""
        import asyncio

        return asyncio.run(self._run_and_close(context, query))

    async def _run_and_close(self, context: ContextInput, query: str) -> RLMResult:
        try:
            return await self.run(context=context, query=query)
        finally:
            await self.aclose()

    def _options(self, stream: bool, emit: Any) -> dict[str, Any]:
        options: dict[str, Any] = {
            "config": self.config,
            "runtime": self._runtime,
            "limits": self._limits,
            "context_limits": self._context_limits,
            "stream": stream,
        }
        if emit is not None:
            options["emit"] = emit
        return options

    async def aclose(self) -> None:
        """Close the orchestrator the agent made (a new one is made if the agent runs again)."""
        if self._owns_orchestrator and self._orchestrator is not None:
            orchestrator, self._orchestrator = self._orchestrator, None
            await orchestrator.aclose()
