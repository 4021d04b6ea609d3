"""What running a cell produced: plain frozen values, converted from protobuf at the edge."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..status import CellStatus

__all__ = ["CellError", "CellResult", "CellStatus", "Output"]


@dataclass(frozen=True, slots=True)
class CellError:
    type: str
    message: str
    traceback: str = ""


@dataclass(frozen=True, slots=True)
class Output:
    text: str = ""
    total_bytes: int = 0
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class CellResult:
    status: CellStatus
    stdout: Output = field(default_factory=Output)
    stderr: Output = field(default_factory=Output)
    error: CellError | None = None
    final: str | None = None
    final_truncated: bool = False
    duration_s: float = 0.0
    restored: tuple[str, ...] = ()  # reserved names the code overwrote, put back after the cell

    @property
    def ok(self) -> bool:
        return self.status is CellStatus.OK

    def to_json(self) -> dict[str, Any]:
        """The shape `rlm exec --json` prints."""
        return {
            "status": self.status.value,
            "stdout": self.stdout.text,
            "stderr": self.stderr.text,
            "stdout_truncated": self.stdout.truncated,
            "stderr_truncated": self.stderr.truncated,
            "stdout_bytes": self.stdout.total_bytes,
            "stderr_bytes": self.stderr.total_bytes,
            "error": asdict(self.error) if self.error else None,
            "final": self.final,
            "final_truncated": self.final_truncated,
            "duration_s": round(self.duration_s, 6),
        }
