"""Model endpoints behind a small protocol; the adapter on the openai SDK."""

from .openai_provider import OpenAIProvider
from .retry import RetryPolicy
from .types import Completion, LLMProvider, Message, Usage

__all__ = ["Completion", "LLMProvider", "Message", "OpenAIProvider", "RetryPolicy", "Usage"]
