"""Model endpoints behind a small protocol; the adapter on the openai SDK."""

from .openai_provider import OpenAIProvider
from .retry import RetryPolicy
from .types import Completion, LLMProvider, Message, OnReset, OnText, Usage

__all__ = [
    "Completion",
    "LLMProvider",
    "Message",
    "OnReset",
    "OnText",
    "OpenAIProvider",
    "RetryPolicy",
    "Usage",
]
