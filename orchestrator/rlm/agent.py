"""RLMAgent: the Python API for running Recursive Language Models.

    agent = RLMAgent(RLMConfig(root_model="gpt-4o-mini"), endpoint=LLMEndpoint(base_url=...))
    result = await agent.run(context=Path("docs/"), query="...")
    async for event in agent.run_stream(context=..., query=...): ...
    result = agent.run_sync(context=..., query=...)

`context` is a directory (a Path or FileSystemContext), an InMemoryContext, or an in-memory value: a
str (the text itself, as the paper passes it: a str is never taken for a path), a list of str or a
dict of str.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ContextLimits, LLMEndpoint, RLMConfig, SandboxConfig, SandboxLimits
from ..context.sources import ContextSource, FileSystemContext, InMemoryContext
from ..context.store import ContextStore
from ..errors import InvalidInputError
from ..llm.openai_provider import OpenAIProvider
from ..llm.retry import RetryPolicy
from ..llm.types import LLMProvider
from ..sandbox import SandboxManager
from .engine import Run
from .events import Event, FinalAnswer, RunError
from .trajectory import Trajectory

ContextInput = ContextSource | os.PathLike[str] | str | Sequence[str] | Mapping[str, str]


@dataclass(frozen=True, slots=True)
class RLMResult:
    answer: str | None
    # completed, max_iterations, max_subcalls, max_tokens, deadline, llm_error, sandbox_error, error
    status: str
    trajectory: Trajectory

    @property
    def metadata(self) -> Any:
        return self.trajectory.metadata

    def to_json(self) -> dict[str, Any]:
        data = self.trajectory.to_json()
        return {
            "answer": self.answer,
            "status": self.status,
            "metadata": data["metadata"],
            "trajectory": data,
        }


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
    ) -> None:
        self.config = config or RLMConfig()
        self._endpoint = endpoint or LLMEndpoint()
        self._api_key = api_key
        self._own_provider = provider is None  # ours to close (and to make again after a close)
        self._provider: LLMProvider | None = provider
        self._sandbox = sandbox
        self._runtime = runtime
        self._limits = limits
        self._context_limits = context_limits

    async def run(
        self, *, context: ContextInput, query: str, stream: bool = False, emit: Any = None
    ) -> RLMResult:
        """Run to the end; the result always carries the trajectory, whatever the ending."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("the query must be a non-empty str")
        source, owned = _source(context)
        try:
            store = ContextStore(source, self._context_limits)
            async with SandboxManager(self._sandbox) as manager:
                run = Run(
                    self.config,
                    self._llm(),
                    manager,
                    store,
                    emit=emit,
                    stream=stream,
                    runtime=self._runtime,
                    limits=self._limits,
                )
                trajectory = await run.level(query, 0, "root", self.config.root_model)
        finally:
            if owned:
                source.close()
        return RLMResult(trajectory.answer, trajectory.status, trajectory)

    async def run_stream(
        self, *, context: ContextInput, query: str, stream_text: bool = True
    ) -> AsyncIterator[Event]:
        """The run's events as they happen, ending with FinalAnswer (or RunError if it could not start)."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        task = asyncio.create_task(
            self.run(context=context, query=query, stream=stream_text, emit=queue.put_nowait)
        )
        task.add_done_callback(lambda _t: queue.put_nowait(None))
        try:
            while (event := await queue.get()) is not None:
                yield event
            try:
                result = task.result()
            except Exception as exc:  # refused input or an unavailable engine: said, not raised mid-stream
                yield RunError(getattr(exc, "message", str(exc)))
                return
            yield FinalAnswer(result.answer, result.status, result.trajectory)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    def run_sync(self, *, context: ContextInput, query: str) -> RLMResult:
        """For scripts: run() in a fresh event loop."""
        return asyncio.run(self._run_and_close(context, query))

    async def _run_and_close(self, context: ContextInput, query: str) -> RLMResult:
        try:
            return await self.run(context=context, query=query)
        finally:
            await self.aclose()

    def _llm(self) -> LLMProvider:
        if self._provider is None:
            endpoint = self._endpoint
            key = self._api_key if self._api_key is not None else os.environ.get(endpoint.api_key_env, "")
            self._provider = OpenAIProvider(
                base_url=endpoint.base_url,
                api_key=key,
                request_timeout_s=endpoint.request_timeout_s,
                retry=RetryPolicy(max_retries=endpoint.max_retries),
            )
        return self._provider

    async def aclose(self) -> None:
        """Close the provider the agent made (a new one is made if the agent runs again)."""
        if self._own_provider and self._provider is not None:
            provider, self._provider = self._provider, None
            await provider.aclose()


def _source(context: ContextInput) -> tuple[ContextSource, bool]:
    """The context as a source, and whether this run made it (and so closes it)."""
    if isinstance(context, FileSystemContext | InMemoryContext):
        return context, False
    if isinstance(context, os.PathLike):
        path = Path(context)
        if not path.is_dir():
            raise InvalidInputError(f"context directory does not exist: {context}")
        return FileSystemContext(path), True
    if isinstance(context, str | Sequence | Mapping):
        return InMemoryContext(context), True
    if hasattr(context, "index") and hasattr(context, "root"):
        return context, False
    raise InvalidInputError(f"unsupported context type: {type(context).__name__}")
