"""Custom tools (issue 12), as the official RLM's `custom_tools`: host functions the sandbox calls by
name and data values in its namespace, in real sandboxes under runc and runsc.

What the official tests (alexzhang13/rlm tests/repl/test_custom_tools.py) hold, held here for ours:
callables are functions and other values are variables; tools with and without descriptions; a tool's
exception reaches the cell with its type and message; tools persist across cells; a tool given the
context works on it; reserved names are refused when the tools are made, every name reported. Ours on
top: the function runs on the host (never in the sandbox), a call counts against the run's sub-calls
and has a timeout, and a function tool the model's code overwrites is back after the cell.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from typing import Any

import docker
import pytest
from rlm_sandbox.host_api import HostAPI
from rlm_sandbox.repl import Repl

from orchestrator import Orchestrator, RLMConfig, SandboxLimits
from orchestrator.errors import InvalidInputError
from orchestrator.rlm.tools import OFFICIAL_RESERVED, REPL_NAMES, ToolBox
from orchestrator.settings import Settings

from .fake_llm import Reply, Seen, repl
from .fakes.llm import ScriptedProvider
from .fakes.process_backend import ProcessBackend


def _script(replies: list[str]) -> Any:
    """Root replies in order; a sub-call (no system prompt) echoes its prompt."""
    turn = iter(replies)

    def script(seen: Seen, index: int) -> Reply | str:
        return next(turn) if seen.system else f"echo:{seen.last_user}"

    return script


async def _run(
    runtime: str | None,
    replies: list[str],
    tools: Mapping[str, Any],
    context: Any = "the context",
    backend: Any = None,
    **run: Any,
) -> tuple[Any, ScriptedProvider]:
    provider = ScriptedProvider(_script(replies))
    settings = Settings(run=RLMConfig(root_model="root-m", sub_model="sub-m", **run))
    async with Orchestrator(settings, provider=provider, backend=backend) as orch:
        result = await orch.run(
            context=context,
            query="q",
            tools=tools,
            runtime=runtime,
            limits=SandboxLimits(cell_timeout_s=30),
        )
    return result, provider


class QuotaHit(Exception):
    """An exception type the sandbox does not have."""


@pytest.mark.docker
async def test_tools_are_called_from_the_sandbox_and_run_on_the_host(
    docker_client: docker.DockerClient, runtime: str
) -> None:
    """Callables are functions (positional and keyword arguments, sync and async, with and without a
    description), values are variables; each function runs in this process, never in the sandbox, and
    each call is a sub-call of kind "tool" in the trajectory and in its cell's list, in order."""
    seen_threads: list[str] = []

    def where() -> dict[str, Any]:
        seen_threads.append(__import__("threading").current_thread().name)
        return {"pid": os.getpid()}

    async def fetch(n: int) -> list[int]:
        await asyncio.sleep(0)
        return list(range(n))

    tools = {
        "where": where,
        "double": {"tool": lambda x: x * 2, "description": "Doubles the input value"},
        "concat": lambda a, b: f"{a}-{b}",
        "fetch": fetch,
        "process_context": lambda ctx: f"Processed: {ctx['name']}",
        "CONFIG": {"tool": {"key": "value", "number": 42}, "description": "API configuration"},
        "CONSTANT": "hello world",
    }
    code = f"""
import os
w = where()
print(w['pid'] == {os.getpid()}, w['pid'] != os.getpid())
print(double(21), concat('hello', b='world'), fetch(3), process_context(context))
print(CONFIG['key'], CONFIG['number'] + 1, CONSTANT.upper())
x = double(5)
"""
    replies = [repl(code), repl("print(double(x))\nFINAL('done')")]
    result, provider = await _run(runtime, replies, tools, context={"name": "test_data", "n": 1})
    assert result.answer == "done", result.trajectory.error
    first, second = (it.cells[0] for it in result.trajectory.iterations)
    assert first.stdout.splitlines() == [
        "True True",
        "42 hello-world [0, 1, 2] Processed: test_data",
        "value 43 HELLO WORLD",
    ]
    assert second.stdout == "20\n"  # tools persist across cells
    assert seen_threads and seen_threads[0].startswith("rlm-tool")
    # Each call, in order, with its arguments and result as JSON; the cell lists its own.
    calls = [s for s in result.trajectory.subcalls if s.kind == "tool"]
    assert [c.model for c in calls] == [
        "where",
        "double",
        "concat",
        "fetch",
        "process_context",
        "double",
        "double",
    ]
    assert (
        calls[2].prompt == '{"args": ["hello"], "kwargs": {"b": "world"}}'
        and calls[2].reply == '"hello-world"'
    )
    assert [c.id for c in first.subcalls] == [c.id for c in calls[:6]] and second.subcalls == (calls[6],)
    assert result.metadata.subcall_count == 7
    system = provider.requests[0].system
    assert "- `double`: Doubles the input value" in system and "- `concat`: A custom function" in system
    assert "- `CONFIG`: API configuration" in system and "- `CONSTANT`: A custom str value" in system


@pytest.mark.docker
async def test_tool_errors_come_back_as_the_official_code_returns_them(
    docker_client: docker.DockerClient, runtime: str
) -> None:
    """What a tool raises is raised in the cell with its type and message (a built-in as itself, another
    as a ToolError subclass of its name); past tool_timeout_s the cell gets TimeoutError; arguments and
    results must be JSON. An uncaught one is a traceback the model reads, as any exception."""

    def failing() -> None:
        raise ValueError("Tool failed!")

    def quota() -> None:
        raise QuotaHit("over the quota")

    def lookup(key: str) -> str:
        return {"a": "A"}[key]

    def slow() -> None:
        time.sleep(3)

    tools = {
        "failing": failing,
        "quota": quota,
        "lookup": lookup,
        "slow": slow,
        "bad_result": lambda: object(),
        "echo": lambda x: x,
    }
    code = """
out = []
for call in (failing, quota, lambda: lookup('missing'), slow, bad_result, lambda: echo({1, 2})):
    try:
        call()
    except Exception as e:
        out.append(f"{type(e).__name__}/{isinstance(e, ToolError)}: {e}")
print('\\n'.join(out))
"""
    replies = [repl(code) + repl("failing()"), repl("FINAL('handled')")]
    result, provider = await _run(runtime, replies, tools, tool_timeout_s=1.0)
    assert result.answer == "handled", result.trajectory.error
    caught = result.trajectory.iterations[0].cells[0].stdout.splitlines()
    assert caught[0] == "ValueError/False: Tool failed!"
    assert caught[1] == "QuotaHit/True: over the quota"
    assert caught[2] == "KeyError/False: 'missing'"
    assert caught[3] == "TimeoutError/False: the custom tool slow() did not return within 1 s"
    assert caught[4].startswith("TypeError/False: bad_result() returned a value that is not JSON")
    assert caught[5].startswith("TypeError/False: echo(): arguments cross to the host as JSON")
    uncaught = result.trajectory.iterations[0].cells[1]
    assert uncaught.status == "error" and "ValueError: Tool failed!" in (uncaught.error or "")
    assert "ValueError: Tool failed!" in provider.requests[1].last_user
    # Failed calls are in the trajectory with their error, not in the cell's list (as rlm_calls).
    failed = [s for s in result.trajectory.subcalls if s.kind == "tool" and s.error]
    assert [s.model for s in failed] == ["failing", "quota", "lookup", "slow", "bad_result", "failing"]
    assert result.trajectory.iterations[0].cells[0].subcalls == ()


@pytest.mark.docker
async def test_a_tool_the_code_overwrites_is_restored_and_calls_count_against_the_limits(
    docker_client: docker.DockerClient, runtime: str
) -> None:
    """`double = None` lasts one cell, as for the REPL's own functions (a data value is the model's to
    change, as in the official REPL); each call is one sub-call: past max_subcalls the call is refused
    with LimitExceededError and the run ends at its next turn."""
    replies = [
        repl("double = None\nCONFIG = 'mine'"),
        repl(
            "print(double(2), CONFIG)\ntry:\n    double(3)\nexcept LimitExceededError:\n    print('limited')"
        ),
        repl("FINAL('never')"),
    ]
    tools = {"double": lambda x: x * 2, "CONFIG": {"k": 1}}
    result, provider = await _run(runtime, replies, tools, max_subcalls=1)
    second = result.trajectory.iterations[1].cells[0]
    assert "`double` belongs to the REPL and was restored" in provider.requests[1].last_user
    assert second.stdout == "4 mine\nlimited\n"
    assert result.status == "max_subcalls" and "sub-calls" in (result.trajectory.error or "")


def test_names_the_repl_uses_are_refused_when_the_tools_are_made() -> None:
    """Every reserved name is refused, all of them reported, with "reserved" in the message; a tool name
    must be an identifier and a data value JSON. The reserved set holds every name the runtime itself
    gives the namespace, and the official REPL's."""
    for name in sorted(REPL_NAMES | {"context_0", "history_3"}):
        with pytest.raises(InvalidInputError) as raised:
            ToolBox({name: lambda: None})
        assert name in raised.value.message and "reserved" in raised.value.message.lower()
    with pytest.raises(InvalidInputError) as raised:
        ToolBox({"llm_query": 1, "answer": 2, "valid_name": 3})
    assert "'answer'" in raised.value.message and "'llm_query'" in raised.value.message
    with pytest.raises(InvalidInputError):
        ToolBox({"not a name": 1})
    with pytest.raises(InvalidInputError, match="JSON"):
        ToolBox({"ITEMS": {1, 2}})
    repl = Repl(HostAPI(None, ()).bindings())  # type: ignore[arg-type]
    runtime_names = {n for n in repl.namespace if not n.startswith("__")} | {"context", "history"}
    assert runtime_names == set(REPL_NAMES) and OFFICIAL_RESERVED <= REPL_NAMES
    box = ToolBox({"json": "not the real json", "f": {"tool": len}})
    assert "json" in box and [s.name for s in box.specs()] == ["json", "f"]


async def test_a_run_with_a_colliding_tool_is_refused_before_any_sandbox(tmp_path: Any) -> None:
    """Orchestrator.run refuses the tools before a sandbox starts (nothing to clean up)."""
    backend = ProcessBackend(state_dir=tmp_path)
    with pytest.raises(InvalidInputError, match="read_file"):
        await _run(None, [], {"read_file": lambda p: ""}, backend=backend)
    assert await backend.list_managed() == []
