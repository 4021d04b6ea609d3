"""Contexts: what an RLM explores instead of reading. Sources, path safety, globs and the run's store."""

from ..config import ContextLimits
from .sources import ContextShape, ContextSource, FileEntry, FileSystemContext, InMemoryContext
from .store import ContextStore, ContextUsage, GrepMatch

__all__ = [
    "ContextLimits",
    "ContextShape",
    "ContextSource",
    "ContextStore",
    "ContextUsage",
    "FileEntry",
    "FileSystemContext",
    "GrepMatch",
    "InMemoryContext",
]
