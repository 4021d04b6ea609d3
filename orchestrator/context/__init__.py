"""Contexts: what an RLM explores instead of reading. Sources, path safety, globs and the run's store;
uploaded archives and the per-tenant registry that keeps them."""

from ..config import ContextLimits
from .registry import ContextInfo, ContextRegistry, ContextUpload
from .sources import ContextShape, ContextSource, FileEntry, FileSystemContext, InMemoryContext
from .store import ContextStore, ContextUsage, GrepMatch
from .uploads import TarReceiver, UploadLimits, UploadSummary

__all__ = [
    "ContextInfo",
    "ContextLimits",
    "ContextRegistry",
    "ContextShape",
    "ContextSource",
    "ContextStore",
    "ContextUpload",
    "ContextUsage",
    "FileEntry",
    "FileSystemContext",
    "GrepMatch",
    "InMemoryContext",
    "TarReceiver",
    "UploadLimits",
    "UploadSummary",
]
