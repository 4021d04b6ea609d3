"""RLM orchestrator: runs model-written code in hardened, disposable Docker sandboxes."""

from .config import ContextLimits, LLMEndpoint, RLMConfig, Runtime, SandboxLimits
from .context import FileSystemContext, InMemoryContext
from .core import Orchestrator
from .errors import RLMError
from .rlm import RLMAgent, RLMResult, Trajectory
from .sandbox import CellResult, CellStatus, SandboxManager, SandboxSession, open_sandbox
from .settings import Settings, load_settings
from .status import RunStatus

__all__ = [
    "CellResult",
    "CellStatus",
    "ContextLimits",
    "FileSystemContext",
    "InMemoryContext",
    "LLMEndpoint",
    "Orchestrator",
    "RLMAgent",
    "RLMConfig",
    "RLMError",
    "RLMResult",
    "RunStatus",
    "Runtime",
    "SandboxLimits",
    "SandboxManager",
    "SandboxSession",
    "Settings",
    "Trajectory",
    "load_settings",
    "open_sandbox",
]
__version__ = "0.1.0"
