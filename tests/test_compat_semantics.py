"""The REPL's semantics as the official RLM's (issue 12), in real sandboxes under runc and runsc.

Held to the official tests (tests/test_local_repl.py and, for FINAL_VAR and FINAL, the versions of
tests/test_local_repl.py and tests/test_parsing.py before its answer-dict change): a failed `llm_query`
returns an "Error: ..." string; dict and list contexts with numbers load as values; SHOW_VARS()
returns a str; FINAL_VAR returns the value as a str and, for a missing name, the official error
string (the run goes on); FINAL(...) over several lines is accepted; each cell's result lists its LM
calls (the official REPLResult.rlm_calls) with their texts, failed ones left out.
"""

from __future__ import annotations

import json
from typing import Any

import docker
import pytest

from orchestrator import InMemoryContext, Orchestrator, RLMConfig
from orchestrator.errors import LLMError
from orchestrator.rlm import CellFinished, Event
from orchestrator.sandbox import SandboxManager
from orchestrator.settings import Settings

from .fake_llm import Reply, Seen, repl
from .fakes.llm import ScriptedProvider


@pytest.mark.docker
async def test_sub_calls_show_vars_and_final_var_return_what_the_official_repl_returns(
    docker_client: docker.DockerClient, runtime: str
) -> None:
    """A failed llm_query / rlm_query is an "Error: ..." string, SHOW_VARS() a str, FINAL_VAR('n') the
    value as a str (and the answer); the cell lists its sub-calls in order with their texts, the
    failed ones left out (they are in the trajectory, with their error), and so does its event."""
    code = """
a = llm_query('first')
b = llm_query('broken')
c = llm_query_batched(['x', 'y'])
d = rlm_query('broken')
print(a, '|', b, '|', c, '|', d)
shown = SHOW_VARS()
print(type(shown).__name__, shown)
n = 7
v = FINAL_VAR('n')
print(repr(v))
"""
    replies = iter([repl(code)])

    def script(seen: Seen, index: int) -> Reply | str | BaseException:
        if seen.system:
            return next(replies)
        if seen.last_user == "broken":
            return LLMError("the endpoint refused the request", status=400)
        return f"echo:{seen.last_user}"

    events: list[Event] = []
    provider = ScriptedProvider(script)
    settings = Settings(run=RLMConfig(root_model="root-m", sub_model="sub-m"))
    async with Orchestrator(settings, provider=provider) as orch:
        result = await orch.run(context="ctx", query="q", runtime=runtime, emit=events.append)
    first = result.trajectory.iterations[0].cells[0]
    lines = first.stdout.splitlines()
    assert lines[0] == (
        "echo:first | Error: llm_query() failed: the endpoint refused the request | ['echo:x', 'echo:y'] | "
        "Error: rlm_query() failed: the endpoint refused the request"
    )
    assert lines[1].startswith("str Available variables: {") and "'a': 'str'" in lines[1]
    assert lines[2] == "'7'"
    # FINAL_VAR('n') returned the value and made it the answer, as the official one does.
    assert result.answer == "7" and len(result.trajectory.iterations) == 1
    # The cell's sub-calls: those that worked, in order, with prompts and replies.
    assert [(s.kind, s.prompt, s.reply) for s in first.subcalls] == [
        ("llm", "first", "echo:first"),
        ("llm", "x", "echo:x"),
        ("llm", "y", "echo:y"),
    ]
    assert [s.prompt for s in result.trajectory.subcalls if s.error] == ["broken", "broken"]
    finished = [e for e in events if isinstance(e, CellFinished)]
    assert finished[0].cell.subcalls == first.subcalls


@pytest.mark.docker
async def test_a_missing_final_var_is_no_answer_and_a_multiline_final_is_one(
    docker_client: docker.DockerClient, runtime: str
) -> None:
    """FINAL_VAR of a missing name returns the official error string and the run goes on (the model
    reads it); FINAL(...) spanning lines, in prose, is the answer."""
    replies = iter(
        [
            repl("print(FINAL_VAR('nope'))"),
            "Checked.\nFINAL_VAR(nope)\n",
            "All done.\nFINAL(line one\nline two)\n",
        ]
    )
    provider = ScriptedProvider(lambda seen, index: next(replies))
    async with Orchestrator(Settings(run=RLMConfig(root_model="root-m")), provider=provider) as orch:
        result = await orch.run(context="ctx", query="q", runtime=runtime)
    assert result.answer == "line one\nline two" and result.status == "completed"
    said = result.trajectory.iterations[0].cells[0].stdout
    assert said.startswith("Error: Variable 'nope' not found. Available variables: [") and "BEFORE" in said
    assert "Error: Variable 'nope' not found" in provider.requests[1].last_user
    assert "Error: Variable 'nope' not found" in provider.requests[2].last_user  # the prose FINAL_VAR


@pytest.mark.docker
@pytest.mark.parametrize(
    "value",
    [
        {"key": "value", "number": 42},
        [1, 2, 3, "four"],
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None}],
        {"nested": {"list": [1.5, True, None], "empty": {}}},
        42,
    ],
    ids=["dict", "list", "messages", "nested", "number"],
)
async def test_any_json_value_is_an_in_memory_context(
    docker_client: docker.DockerClient, runtime: str, value: Any
) -> None:
    """Numbers, nested lists and dicts are a context as themselves, as the official REPL loads them
    (`context` and `context_0`); the file API serves the JSON as context.json."""
    async with SandboxManager() as manager:
        async with manager.open(InMemoryContext(value), runtime=runtime) as session:
            expected = json.dumps(json.dumps(value))
            shown = await session.run(
                f"import json\nprint(json.dumps(context) == {expected}, context is context_0)\n"
                "print(list_files(), json.loads(read_file('context.json')) == context)"
            )
    assert shown.stdout.text == "True True\n['context.json'] True\n", shown
