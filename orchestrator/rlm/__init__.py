"""The RLM engine: the root loop, sub-calls and recursion, events, trajectories, and RLMAgent."""

from .agent import RLMAgent
from .events import (
    CellFinished,
    CodeStarted,
    Event,
    FinalAnswer,
    IterationStarted,
    ModelText,
    ModelTextReset,
    RunError,
    SubCallFinished,
    SubCallStarted,
)
from .result import RLMResult
from .trajectory import Trajectory

__all__ = [
    "CellFinished",
    "CodeStarted",
    "Event",
    "FinalAnswer",
    "IterationStarted",
    "ModelText",
    "ModelTextReset",
    "RLMAgent",
    "RLMResult",
    "RunError",
    "SubCallFinished",
    "SubCallStarted",
    "Trajectory",
]
