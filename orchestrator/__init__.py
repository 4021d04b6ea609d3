"""RLM orchestrator: runs model-written code in hardened, disposable Docker sandboxes."""

from .config import ContextLimits, LLMEndpoint, RLMConfig, Runtime, SandboxLimits
from .context import FileSystemContext, InMemoryContext
from .errors import RLMError
from .rlm import RLMAgent, RLMResult, Trajectory
from .sandbox import CellResult, CellStatus, SandboxManager, SandboxSession, open_sandbox

__all__ = [
    "CellResult",
    "CellStatus",
    "ContextLimits",
    "FileSystemContext",
    "InMemoryContext",
    "LLMEndpoint",
    "RLMAgent",
    "RLMConfig",
    "RLMError",
    "RLMResult",
    "Runtime",
    "SandboxLimits",
    "SandboxManager",
    "SandboxSession",
    "Trajectory",
    "open_sandbox",
]
__version__ = "0.1.0"
