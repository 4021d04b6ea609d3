"""What a run returns: its answer, how it ended, and the whole trajectory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..status import RunStatus
from .trajectory import RunMetadata, Trajectory


@dataclass(frozen=True, slots=True)
class RLMResult:
    answer: str | None
    status: RunStatus
    trajectory: Trajectory
    run_id: str = ""

    @property
    def metadata(self) -> RunMetadata:
        return self.trajectory.metadata

    def to_json(self) -> dict[str, Any]:
        data = self.trajectory.to_json()
        return {
            "run_id": self.run_id,
            "answer": self.answer,
            "status": self.status.value,
            "error": self.trajectory.error,
            "metadata": data["metadata"],
            "trajectory": data,
        }
