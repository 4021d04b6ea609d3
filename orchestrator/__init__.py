"""RLM orchestrator: runs model-written code in hardened, disposable Docker sandboxes."""

from .config import ContextLimits, Runtime, SandboxLimits
from .context import FileSystemContext, InMemoryContext
from .errors import RLMError
from .sandbox import CellResult, CellStatus, SandboxManager, SandboxSession, open_sandbox

__all__ = [
    "CellResult",
    "CellStatus",
    "ContextLimits",
    "FileSystemContext",
    "InMemoryContext",
    "RLMError",
    "Runtime",
    "SandboxLimits",
    "SandboxManager",
    "SandboxSession",
    "open_sandbox",
]
__version__ = "0.1.0"
