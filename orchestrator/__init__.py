"""RLM orchestrator: runs model-written code in hardened, disposable Docker sandboxes."""

from .config import Runtime, SandboxLimits
from .errors import RLMError
from .sandbox import CellResult, CellStatus, SandboxManager, SandboxSession, open_sandbox

__all__ = [
    "CellResult",
    "CellStatus",
    "RLMError",
    "Runtime",
    "SandboxLimits",
    "SandboxManager",
    "SandboxSession",
    "open_sandbox",
]
__version__ = "0.1.0"
