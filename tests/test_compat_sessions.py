"""Multi-turn RLM sessions (issue 12), as the official RLM's persistent=True: one sandbox and namespace
across queries, in real sandboxes under runc and runsc.

What the official tests (tests/test_local_repl_persistent.py, tests/test_multi_turn_integration.py)
hold, held here for ours: contexts accumulate as context_0, context_1, ... with `context` the first;
histories as history_0, ... with `history` the first, each a list of role/content messages; variables
persist across queries; the model is told how many contexts and histories there are; the counts; the
same environment is reused; closing ends it. Ours on top: each query gets a fresh `answer`, the
sandbox is the same container throughout, a dead sandbox is replaced with everything bound again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from orchestrator import Orchestrator, RLMConfig, SandboxLimits
from orchestrator.errors import InvalidInputError, SandboxClosedError
from orchestrator.rlm import compaction
from orchestrator.settings import Settings

from .fake_llm import Reply, Seen, repl
from .fakes.llm import ScriptedProvider
from .fakes.process_backend import ProcessBackend


class Turns:
    """Root replies in order, across the session's queries; sub-calls echo."""

    def __init__(self, *replies: str) -> None:
        self._replies = list(replies)

    def __call__(self, seen: Seen, index: int) -> Reply | str:
        return self._replies.pop(0) if seen.system else f"echo:{seen.last_user}"


def _orch(script: Turns, backend: Any = None) -> Orchestrator:
    settings = Settings(run=RLMConfig(root_model="root-m", sub_model="sub-m"))
    return Orchestrator(settings, provider=ScriptedProvider(script), backend=backend)


@pytest.mark.docker
async def test_three_turns_share_one_sandbox_with_contexts_and_histories(
    docker_client: docker.DockerClient, runtime: str
) -> None:
    """Three queries in one container: context_0/1/2 (`context` the first), history_0/1 (`history` the
    first), variables kept, a fresh answer dict each time, the model told of both; closing removes it."""
    script = Turns(
        repl("doc1 = 'Has info about cats'\nprint(context, context == context_0)"),
        repl("FINAL('Summarized first doc')"),
        repl(
            "print(context_1['doc'], context_1['n'], doc1)\n"
            "print(len(history) > 2, history[0]['role'], history is history_0, answer)\n"
            "answer['content'] = 'Compared both docs'\nanswer['ready'] = True"
        ),
        repl(
            "print(context_2, [m['role'] for m in history_1][:2], history_1[-1]['role'])\n"
            "print(SHOW_VARS())\nFINAL(f'synthesized {doc1} and {context_1[\"doc\"]}')"
        ),
    )
    async with _orch(script) as orch:
        async with orch.session("First document about cats", runtime=runtime) as session:
            first = await session.query("Summarize")
            sandbox = session.sandbox
            assert sandbox is not None
            container = sandbox.container_id
            second = await session.query("Compare", context={"doc": "dogs", "n": [1, 2]})
            third = await session.query("Synthesize", context=["x", "y"])
            assert session.sandbox is sandbox and session.get_context_count() == 3
            assert session.get_history_count() == 3
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(container)
    assert (first.answer, second.answer) == ("Summarized first doc", "Compared both docs")
    assert third.answer == "synthesized Has info about cats and dogs"
    assert first.trajectory.iterations[0].cells[0].stdout == "First document about cats True\n"
    out2 = second.trajectory.iterations[0].cells[0].stdout.splitlines()
    assert out2 == ["dogs [1, 2] Has info about cats", "True system True {'content': '', 'ready': False}"]
    out3 = third.trajectory.iterations[0].cells[0].stdout.splitlines()
    assert out3[0] == "['x', 'y'] ['system', 'user'] assistant"
    assert out3[1].startswith("Available variables: {") and "'history_1': 'list'" in out3[1]
    assert "'context_2': 'list'" in out3[1] and "'doc1': 'str'" in out3[1]
    # One sandbox: started by the first query only.
    assert [r.metadata.sandbox_starts for r in (first, second, third)] == [1, 0, 0]
    # Each query's first message tells the counts, in the official wording.
    asked = [r.body["messages"][1]["content"] for r in orch.provider.requests if r.system]  # type: ignore[attr-defined]
    assert "contexts available" not in asked[0] and "prior conversation" not in asked[0]
    assert "You have 1 prior conversation history available in the `history` variable" in asked[2]
    assert "You have 2 contexts available (context_0 through context_1)" in asked[2]
    assert "You have 3 contexts available (context_0 through context_2)" in asked[3]
    assert "You have 2 prior conversation histories available (history_0 through history_1)" in asked[3]


@pytest.mark.docker
async def test_a_sandbox_that_dies_mid_session_is_replaced_with_everything_bound_again(
    docker_client: docker.DockerClient, runtime: str
) -> None:
    """A cell past its time limit kills the sandbox; the next gets context_N and history_N again (the
    model's own variables are gone, and it is told)."""
    script = Turns(
        repl("mine = 1\nFINAL('one')"),
        repl("import time\ntime.sleep(30)"),
        repl("print(context, context_1, len(history_0) > 2, 'mine' in globals())\nFINAL('two')"),
    )
    async with _orch(script) as orch:
        async with orch.session("ctx0", runtime=runtime, limits=SandboxLimits(cell_timeout_s=2)) as session:
            await session.query("first")
            before = session.sandbox
            second = await session.query("second", context="ctx1")
            assert session.sandbox is not before and session.get_history_count() == 2
    assert second.answer == "two" and second.metadata.sandbox_starts == 1
    cells = [c for it in second.trajectory.iterations for c in it.cells]
    assert cells[0].status == "timeout" and cells[1].stdout == "ctx0 ctx1 True False\n"


async def test_a_later_context_is_a_value_and_a_closed_session_refuses(tmp_path: Path) -> None:
    """A later query's context must be a JSON value (a running sandbox's mounts cannot change); an
    empty query is refused; after close nothing runs."""
    async with _orch(Turns(repl("FINAL('x')")), ProcessBackend(state_dir=tmp_path)) as orch:
        session = orch.session("ctx")
        with pytest.raises(InvalidInputError, match="JSON value"):
            await session.query("q", context=tmp_path)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError):
            await session.query("  ")
        assert (await session.query("q")).answer == "x"
        await session.aclose()
        await session.aclose()
        with pytest.raises(SandboxClosedError):
            await session.query("again")


@pytest.mark.docker
async def test_a_long_conversation_is_compacted_into_history(
    docker_client: docker.DockerClient, runtime: str
) -> None:
    """With compaction on, past the threshold the model is asked for a summary and goes on from it; what
    was dropped and the summary are in the REPL's `history` (as the official compaction keeps them)."""
    script = Turns(
        repl("big = 'x' * 2000\nprint(big)"),
        "SUMMARY: big holds 2000 x",
        repl(
            "print(type(history).__name__, len(history), history[-1]['type'], history[-1]['content'][:8],"
            " [m['role'] for m in history[0]])\nFINAL(str(len(big)))"
        ),
    )
    config = RLMConfig(
        root_model="root-m", compaction=True, context_window_tokens=1000, compaction_threshold_pct=0.9
    )
    provider = ScriptedProvider(script)
    async with Orchestrator(Settings(run=config), provider=provider) as orch:
        result = await orch.run(context="ctx", query="q", runtime=runtime)
    assert result.answer == "2000"
    asked = [r.body["messages"] for r in provider.requests]
    assert asked[1][-1]["content"] == compaction.SUMMARY_REQUEST and len(asked[1]) == 5
    assert [m["role"] for m in asked[2]] == ["system", "user", "assistant", "user"]
    assert (
        asked[2][2]["content"] == "SUMMARY: big holds 2000 x"
        and "compacted 1 time(s)" in asked[2][3]["content"]
    )
    assert compaction.HISTORY_NOTE in provider.requests[0].system
    cell = result.trajectory.iterations[-1].cells[0]
    assert cell.stdout == "list 2 summary SUMMARY: ['assistant', 'user']\n"
