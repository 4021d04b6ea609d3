"""Sandboxes: the backend seam, the Docker adapter, the per-sandbox host server, sessions, the manager."""

from .manager import SandboxManager, open_sandbox
from .results import CellError, CellResult, CellStatus, Output
from .session import SandboxSession

__all__ = [
    "CellError",
    "CellResult",
    "CellStatus",
    "Output",
    "SandboxManager",
    "SandboxSession",
    "open_sandbox",
]
