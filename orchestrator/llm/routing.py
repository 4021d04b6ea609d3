"""One provider per configured endpoint, chosen by model: what the orchestrator hands the engine."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..config import LLMEndpoint
from .types import Completion, LLMProvider, Message, OnReset, OnText


class RoutingProvider:
    """An LLMProvider over several endpoints: a model goes to the first endpoint that lists it, else to
    the one named "default", else to the first. Providers are made on first use and closed together;
    once closed, it makes no more (complete raises RuntimeError, as a closed client does)."""

    def __init__(self, endpoints: Sequence[LLMEndpoint], make: Callable[[LLMEndpoint], LLMProvider]) -> None:
        if not endpoints:
            raise ValueError("at least one endpoint is needed")
        self._endpoints = tuple(endpoints)
        self._make = make
        self._providers: dict[str, LLMProvider] = {}
        self._closed = False

    def endpoint_for(self, model: str) -> LLMEndpoint:
        for endpoint in self._endpoints:
            if model in endpoint.models:
                return endpoint
        return next((e for e in self._endpoints if e.name == "default"), self._endpoints[0])

    def provider_for(self, model: str) -> LLMProvider:
        if self._closed:
            raise RuntimeError("the model providers are closed")
        endpoint = self.endpoint_for(model)
        provider = self._providers.get(endpoint.name)
        if provider is None:
            provider = self._providers[endpoint.name] = self._make(endpoint)
        return provider

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
        return await self.provider_for(model).complete(
            messages,
            model=model,
            on_text=on_text,
            on_reset=on_reset,
            max_tokens=max_tokens,
            temperature=temperature,
            stop=stop,
        )

    async def aclose(self) -> None:
        self._closed = True
        providers, self._providers = list(self._providers.values()), {}
        for provider in providers:
            await provider.aclose()
