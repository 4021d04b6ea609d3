"""Custom tools: host-side functions and data values a run gives its sandboxes, in the official RLM's
shapes (`custom_tools={"name": fn, "other": {"tool": value, "description": "..."}}`).

A callable tool is run here, on the host, when code in the sandbox calls its stub (`name(...)`): its
arguments and its result cross the socket as JSON, each call is one sub-call of the run's budget and
has a timeout, and what it raises goes back as the same exception type with the same message (the
official REPL raises it in the cell). A data value is sent once, as JSON, when the sandbox is attached.
Names the REPL uses itself are refused when the tools are made (`ToolBox(...)`), as the official code
refuses them.

A synchronous function runs on a small thread pool of the ToolBox's own; a coroutine function is
awaited on the event loop. A call past its timeout returns TimeoutError to the sandbox; a synchronous
function cannot be stopped from outside, so it runs on in its thread until it returns (it holds one of
the pool's threads until then).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import keyword
import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..errors import InvalidInputError
from ..sandbox.tools import ToolOutcome, ToolSpec

# The official REPL's reserved names (rlm.environments.base_env.RESERVED_TOOL_NAMES) ...
OFFICIAL_RESERVED = frozenset(
    {
        "llm_query",
        "llm_query_batched",
        "rlm_query",
        "rlm_query_batched",
        "SHOW_VARS",
        "answer",
        "context",
        "history",
    }
)
# ... and every other name our REPL gives the namespace (tests/test_compat_tools.py holds this to the
# runtime's own bindings).
REPL_NAMES = OFFICIAL_RESERVED | frozenset(
    {
        "FINAL",
        "FINAL_VAR",
        "read_file",
        "list_files",
        "search_files",
        "get_file_info",
        "get_stats",
        "get_files_in_directory",
        "grep",
        "readFile",
        "listFiles",
        "searchFiles",
        "getFileInfo",
        "getStats",
        "getFilesInDirectory",
        "SandboxAPIError",
        "ContextPathError",
        "PatternError",
        "LimitExceededError",
        "NotAvailableError",
        "HostCallError",
        "ToolError",
    }
)
_SESSION_NAME = re.compile(r"(context|history)_\d+")  # a session's contexts and histories
MAX_TOOLS = 256
MAX_RESULT_CHARS = 16 * 1024**2  # of a tool's result as JSON: the wire carries 64 MiB at most
TOOL_THREADS = 8


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    value: Any  # a callable (run on the host) or a data value
    description: str | None = None

    @property
    def is_callable(self) -> bool:
        return callable(self.value)


def parse_tool(name: str, entry: Any) -> Tool:
    """One entry of `custom_tools`: the value itself, or {"tool": value, "description": "..."}."""
    if isinstance(entry, Mapping) and "tool" in entry:
        description = entry.get("description")
        return Tool(name, entry["tool"], description if isinstance(description, str) else None)
    return Tool(name, entry, None)


def reserved_conflicts(names: Iterable[str]) -> list[str]:
    """The names among these that the REPL uses itself, sorted."""
    return sorted(n for n in names if n in REPL_NAMES or _SESSION_NAME.fullmatch(n))


class ToolBox:
    """A run's custom tools: validated when made, described for the prompt, called from sandboxes."""

    def __init__(self, tools: Mapping[str, Any] | None = None) -> None:
        entries = dict(tools or {})
        if len(entries) > MAX_TOOLS:
            raise InvalidInputError(f"at most {MAX_TOOLS} custom tools, got {len(entries)}")
        bad = [n for n in entries if not isinstance(n, str) or not n.isidentifier() or keyword.iskeyword(n)]
        if bad:
            raise InvalidInputError(f"custom tool names must be Python identifiers: {bad!r}")
        conflicts = reserved_conflicts(list(entries))
        if conflicts:
            raise InvalidInputError(
                f"Custom tools cannot override reserved REPL functions: {conflicts}. Reserved names: "
                f"{sorted(REPL_NAMES)} and context_N / history_N"
            )
        self._tools = {name: parse_tool(name, entry) for name, entry in entries.items()}
        self._specs: list[ToolSpec] = []
        for tool in self._tools.values():
            value_json = "" if tool.is_callable else _data_json(tool)
            self._specs.append(ToolSpec(tool.name, tool.description or "", tool.is_callable, value_json))
        self._pool: ThreadPoolExecutor | None = None

    def __bool__(self) -> bool:
        return bool(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def specs(self) -> list[ToolSpec]:
        return list(self._specs)

    def prompt_section(self) -> str:
        """The tools for the system prompt, one line each, in the official wording ("" when none)."""
        lines = []
        for tool in self._tools.values():
            if tool.description:
                lines.append(f"- `{tool.name}`: {tool.description}")
            elif tool.is_callable:
                lines.append(f"- `{tool.name}`: A custom function")
            else:
                lines.append(f"- `{tool.name}`: A custom {type(tool.value).__name__} value")
        if not lines:
            return ""
        return (
            "Custom tools and data available in the REPL (a function runs outside the REPL: pass and "
            "expect JSON values):\n" + "\n".join(lines)
        )

    async def call(self, name: str, arguments_json: str, timeout_s: float) -> ToolOutcome:
        """Run one call. Raises InvalidInputError for a name that is no callable tool of this box; what
        the function does (raising included) is the outcome."""
        tool = self._tools.get(name)
        if tool is None or not tool.is_callable:
            raise InvalidInputError(f"no custom tool named {name!r} in this run")
        try:
            arguments = json.loads(arguments_json or "{}")
            args, kwargs = list(arguments.get("args", [])), dict(arguments.get("kwargs", {}))
        except (ValueError, TypeError, AttributeError):
            return ToolOutcome(error_type="TypeError", error_message=f"{name}(): the arguments are not JSON")
        try:
            async with asyncio.timeout(timeout_s):
                result = await self._invoke(tool.value, args, kwargs)
                if inspect.isawaitable(result):
                    result = await result
        except TimeoutError:
            return ToolOutcome(
                error_type="TimeoutError",
                error_message=f"the custom tool {name}() did not return within {timeout_s:g} s",
            )
        except Exception as exc:
            return ToolOutcome(error_type=type(exc).__name__, error_message=_message(exc))
        try:
            text = json.dumps(result, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            return ToolOutcome(
                error_type="TypeError",
                error_message=f"{name}() returned a value that is not JSON (it cannot reach the REPL): {exc}",
            )
        if len(text) > MAX_RESULT_CHARS:
            return ToolOutcome(
                error_type="ValueError",
                error_message=f"{name}() returned {len(text):,} characters of JSON, over the "
                f"{MAX_RESULT_CHARS:,} a tool's result may be",
            )
        return ToolOutcome(result_json=text)

    async def _invoke(self, function: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        method = type(function).__call__ if not inspect.isroutine(function) else None
        if inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(method):
            return await function(*args, **kwargs)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(TOOL_THREADS, thread_name_prefix="rlm-tool")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, partial(function, *args, **kwargs))

    def close(self) -> None:
        """Let the pool go (a call past its timeout may still be running in it: it is not waited for)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=False)


def _data_json(tool: Tool) -> str:
    try:
        return json.dumps(tool.value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"custom tool {tool.name!r}: a data value must be a JSON value (it is sent to the sandbox): {exc}"
        ) from None


def _message(exc: BaseException) -> str:
    """str(exc), as the official REPL shows it; a KeyError's key unquoted, so the sandbox's
    KeyError(message) reads the same."""
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    try:
        return str(exc)
    except Exception:
        return f"<unprintable {type(exc).__name__}>"
