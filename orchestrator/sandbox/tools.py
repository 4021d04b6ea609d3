"""Custom tools as the sandbox's wire sees them: what a sandbox is told (ToolSpec) and what a call gave
(ToolOutcome), and the protocol a run's sub-call handler implements to serve them.

The functions themselves never leave the host: a sandbox gets each callable tool as a stub, by name,
that sends ToolCall(name, arguments as JSON) on its socket; the host runs the function and answers with
its result as JSON or with what it raised (type name and message). Data values are sent as JSON once, in
the session's config. Plain frozen values: the protobuf edge (manager, host endpoint) converts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str = ""
    callable: bool = True  # a host function; else a data value
    value_json: str = ""  # a data value's JSON


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """A tool call's result as JSON, or (result_json None) the exception it raised."""

    result_json: str | None = None
    error_type: str = ""
    error_message: str = ""


@runtime_checkable
class ToolCalls(Protocol):
    """A sub-call handler that also serves custom tools (the engine's does when a run has tools)."""

    def tool_specs(self) -> Sequence[ToolSpec]: ...
    async def call_tool(self, name: str, arguments_json: str) -> ToolOutcome: ...
