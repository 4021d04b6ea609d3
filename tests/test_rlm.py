"""The RLM engine end to end: a scripted OpenAI-compatible server and the real openai client.

Tests of the engine's logic run on the process backend (the real runtime as a local process, no
isolation); what is about isolation (a nested sandbox under runc and runsc, the key never reaching a
sandbox, a sandbox killed at its limit) runs in real Docker sandboxes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import docker
import pytest

from orchestrator import LLMEndpoint, RLMAgent, RLMConfig, SandboxLimits
from orchestrator.rlm import (
    CellFinished,
    CodeStarted,
    FinalAnswer,
    IterationStarted,
    ModelText,
    SubCallFinished,
    SubCallStarted,
    Trajectory,
)
from orchestrator.rlm.prompts import FORCE_FINAL

from .fake_llm import FakeLLM, Reply, Script, Seen, repl
from .fakes.process_backend import ProcessBackend

KEY = "sk-test-DO-NOT-LEAK-4242"


def _agent(
    fake: FakeLLM, *, docker: bool = False, limits: SandboxLimits | None = None, **config: Any
) -> RLMAgent:
    """An agent on the fake endpoint: on the process backend, or with docker=True in real sandboxes.

    The agent owns (and closes) its orchestrator either way."""
    runtime = config.pop("runtime", "runc")
    cfg = RLMConfig(root_model="root-m", sub_model="sub-m", **config)
    endpoint = LLMEndpoint(base_url=fake.url, max_retries=2, api_key=KEY)
    backend = None if docker else ProcessBackend()
    return RLMAgent(cfg, endpoint=endpoint, runtime=runtime, limits=limits, backend=backend)


def _is_root(seen: Seen) -> bool:
    return seen.body["model"] == "root-m"


def _by_turn(replies: list[str | Reply]) -> Script:
    """Root replies in order; a sub-call (model sub-m) echoes its prompt."""
    turn = iter(replies)

    def script(seen: Seen, index: int) -> Reply | str:
        if not _is_root(seen):
            return f"echo:{seen.last_user}"
        return next(turn)

    return script


async def _run(
    script: Script, context: Any, query: str = "the question", **config: Any
) -> tuple[Any, FakeLLM]:
    with FakeLLM(script) as fake:
        agent = _agent(fake, **config)
        try:
            result = await agent.run(context=context, query=query)
        finally:
            await agent.aclose()
    return result, fake


async def test_iterations_feed_output_back(context_dir: Path) -> None:
    """Each cell's output is the next user message; the run ends when code calls FINAL."""
    script = _by_turn(
        [
            repl("size = len(read_file('hello.txt'))\nprint('SIZE', size)"),
            repl("print('files', len(list_files()))"),
            repl("FINAL(size)"),
        ]
    )
    result, fake = await _run(script, context_dir, prices_per_mtok=(("root-m", 1.0, 2.0),))
    assert result.status == "completed" and result.answer == "23"
    meta = result.metadata
    assert meta.cost_usd == round((meta.prompt_tokens * 1.0 + meta.completion_tokens * 2.0) / 1e6, 6)
    assert "SIZE 23" in fake.requests[1].last_user and "files 2" in fake.requests[2].last_user
    assert result.metadata.iterations == 3 and result.metadata.sandbox_starts == 1
    assert "2 files" in fake.requests[0].system and "hello from the context" not in fake.requests[0].system
    assert result.metadata.bytes_read == 23 and result.metadata.prompt_tokens == 30


@pytest.mark.parametrize(
    ("reply", "answer"),
    [
        (repl("answer['content'] = 'by dict'\nanswer['ready'] = True"), "by dict"),
        (repl("FINAL('by call')"), "by call"),
        (repl("result = 'by variable'\nFINAL_VAR('result')"), "by variable"),
        (repl("result = 'by prose variable'") + "\nFINAL_VAR(result)\n", "by prose variable"),
        ("I know it.\nFINAL(by prose)\n", "by prose"),
    ],
)
async def test_every_way_of_ending(context_dir: Path, reply: str, answer: str) -> None:
    """The answer dict, FINAL, FINAL_VAR (in code and in prose) and FINAL(...) in the reply all end a run."""
    result, _ = await _run(_by_turn([reply]), context_dir)
    assert (result.status, result.answer) == ("completed", answer)


async def test_traceback_is_fed_back_and_the_run_recovers(context_dir: Path) -> None:
    """An exception's traceback goes back to the model, and the loop goes on."""
    result, fake = await _run(_by_turn([repl("x = 1 / 0"), repl("FINAL('recovered')")]), context_dir)
    assert result.answer == "recovered"
    assert "ZeroDivisionError" in fake.requests[1].last_user
    assert result.trajectory.iterations[0].cells[0].status == "error"


async def test_batched_subcalls_run_concurrently_in_order(context_dir: Path) -> None:
    """llm_query_batched overlaps its requests at the server and returns answers in prompt order."""

    def script(seen: Seen, index: int) -> Reply | str:
        if _is_root(seen):
            return repl("r = llm_query_batched([f'p{i}' for i in range(8)])\nFINAL(','.join(r))")
        return Reply(f"echo:{seen.last_user}", delay_s=0.3)

    result, fake = await _run(script, context_dir)
    assert result.answer == ",".join(f"echo:p{i}" for i in range(8))
    assert fake.max_in_flight >= 4
    assert result.metadata.subcall_count == 8
    assert {s.kind for s in result.trajectory.subcalls} == {"llm"}


async def test_rlm_query_at_depth_2_opens_a_nested_sandbox(
    docker_client: docker.DockerClient, context_dir: Path, runtime: str
) -> None:
    """rlm_query starts a child RLM with its own sandbox over the same context (and the same store)."""

    def script(seen: Seen, index: int) -> Reply | str:
        if "child task" in seen.body["messages"][1]["content"]:
            return repl("import os\nFINAL(read_file('hello.txt').strip() + ' ' + os.uname().nodename)")
        return repl("FINAL(rlm_query('child task'))")

    result, _ = await _run(script, context_dir, max_depth=2, runtime=runtime, docker=True)
    assert result.status == "completed" and result.answer == "hello from the context sandbox"
    assert result.metadata.actual_depth == 1 and result.metadata.sandbox_starts == 2
    assert [s.kind for s in result.trajectory.subcalls] == ["rlm"]
    assert result.trajectory.children[0].answer == result.answer


async def test_code_cannot_raise_its_depth_or_budget(context_dir: Path) -> None:
    """At max depth rlm_query is a plain completion; past the sub-call limit calls are refused (an
    "Error: ..." string, as the official REPL returns); models are fixed."""
    code = """
out = [rlm_query('deeper please'), llm_query('one more'), llm_query('x', model='gpt-expensive')]
FINAL(' | '.join(out))
"""
    result, fake = await _run(_by_turn([repl(code)]), context_dir, max_depth=1, max_subcalls=1)
    answer = result.answer or ""
    assert answer.startswith("echo:deeper please | Error: ") and "sub-calls" in answer
    assert answer.split(" | ")[2].startswith("Error: ") and "not allowed" in answer
    sub_requests = [r for r in fake.requests if not _is_root(r)]
    assert len(sub_requests) == 1 and sub_requests[0].system == ""  # a completion, not a child RLM
    assert result.metadata.sandbox_starts == 1


async def test_429_then_success_is_retried(context_dir: Path) -> None:
    """A rate-limited request is retried (honouring Retry-After) and the run completes."""
    script = _by_turn([Reply(status=429, headers={"retry-after": "0"}), repl("FINAL('after retry')")])
    result, fake = await _run(script, context_dir)
    assert result.answer == "after retry" and len(fake.requests) == 2


async def test_persistent_500_ends_the_run_and_keeps_the_trajectory(context_dir: Path) -> None:
    """When retries run out the run ends with llm_error, its message, and what it did so far."""

    def script(seen: Seen, index: int) -> Reply | str:
        return repl("kept = 1\nprint('did work')") if index == 0 else Reply(status=500)

    result, fake = await _run(script, context_dir)
    assert result.status == "llm_error" and result.answer is None
    assert "500" in (result.trajectory.error or "")
    assert result.trajectory.iterations[0].cells[0].stdout == "did work\n"
    assert len(fake.requests) == 1 + 3  # the first turn, then one try and two retries


async def test_no_final_ends_at_the_limit_with_a_forced_answer(context_dir: Path) -> None:
    """A model that never ends is asked once for its answer at the iteration limit."""

    def script(seen: Seen, index: int) -> Reply | str:
        return "FINAL(forced answer)" if FORCE_FINAL in seen.last_user else repl(f"print('step {index}')")

    result, fake = await _run(script, context_dir, max_iterations=3)
    assert (result.status, result.answer) == ("max_iterations", "forced answer")
    assert len(fake.requests) == 4
    # three turns that ran code, then the forced answer, recorded as the last turn
    assert [len(it.cells) for it in result.trajectory.iterations] == [1, 1, 1, 0]


async def test_api_key_stays_out_of_sandbox_logs_and_trajectory(
    docker_client: docker.DockerClient, context_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The key reaches the endpoint and nothing else: not the sandbox, not a log line, not the trajectory."""
    caplog.set_level(logging.DEBUG)
    code = """
import glob
seen = []
for p in glob.glob('/proc/[0-9]*/environ'):
    try:
        seen.append(open(p, 'rb').read().decode('utf-8', 'replace'))
    except OSError:
        pass
print('\\n'.join(seen))
"""
    script = _by_turn([Reply(status=500), repl(code), repl("FINAL('done')")])
    result, fake = await _run(script, context_dir, docker=True)
    assert result.answer == "done"
    assert fake.requests[0].headers.get("authorization") == f"Bearer {KEY}"
    assert KEY not in json.dumps(result.to_json())
    assert KEY not in caplog.text
    assert "RLM_SOCKET" in result.trajectory.iterations[0].cells[0].stdout  # the probe did read environ


async def test_in_memory_context_and_trajectory_round_trip(tmp_path: Path) -> None:
    """A str context is the value itself in the REPL; the trajectory is written and read back whole."""
    result, fake = await _run(_by_turn([repl("FINAL(context.upper())")]), "some long text")
    assert result.answer == "SOME LONG TEXT"
    assert "one text of 14 bytes" in fake.requests[0].system
    path = tmp_path / "run.json"
    result.trajectory.write(path)
    assert Trajectory.read(path) == result.trajectory


async def test_stream_yields_typed_events(context_dir: Path) -> None:
    """run_stream gives iteration, model text, code, cell, sub-call events and ends with the answer."""
    script = _by_turn([repl("FINAL(llm_query('hi'))", prose="Let me ask a sub-model about this.")])
    with FakeLLM(script) as fake:
        agent = _agent(fake)
        events = [event async for event in agent.run_stream(context=context_dir, query="q")]
        await agent.aclose()
    kinds = [type(e) for e in events]
    for kind in (IterationStarted, ModelText, CodeStarted, SubCallStarted, SubCallFinished, CellFinished):
        assert kind in kinds, kind
    assert isinstance(events[-1], FinalAnswer) and events[-1].answer == "echo:hi"
    streamed = "".join(e.text for e in events if isinstance(e, ModelText))
    assert streamed.startswith("Let me ask a sub-model")


def test_run_sync_for_scripts(context_dir: Path) -> None:
    """run_sync runs a whole RLM from plain synchronous code."""
    with FakeLLM(_by_turn([repl("FINAL(sorted(list_files())[0])")])) as fake:
        result = _agent(fake).run_sync(context=context_dir, query="first file?")
    assert result.answer == "hello.txt"


async def test_subcall_time_does_not_count_against_the_cell(context_dir: Path) -> None:
    """A cell waiting on a slow sub-call is not timed out: the host's time on the answer stops its clock."""

    def script(seen: Seen, index: int) -> Reply | str:
        if _is_root(seen):
            return repl("FINAL(llm_query('slow one'))")
        return Reply("slow answer", delay_s=2.5)

    with FakeLLM(script) as fake:
        agent = RLMAgent(
            RLMConfig(root_model="root-m", sub_model="sub-m"),
            endpoint=LLMEndpoint(base_url=fake.url),
            api_key=KEY,
            limits=SandboxLimits(cell_timeout_s=1.5),
            backend=ProcessBackend(),
        )
        result = await agent.run(context=context_dir, query="q")
        await agent.aclose()
    assert (result.status, result.answer) == ("completed", "slow answer")


async def test_nested_batches_cannot_deadlock(context_dir: Path) -> None:
    """Batched child RLMs whose children batch too finish, even past the per-run concurrency bound."""

    def script(seen: Seen, index: int) -> Reply | str:
        if not seen.system:  # a plain sub-call
            return f"echo:{seen.last_user}"
        if seen.body["messages"][1]["content"].startswith("The query: child"):
            return repl("FINAL('+'.join(llm_query_batched(['a', 'b', 'c'])))")
        return repl("FINAL(' | '.join(rlm_query_batched(['child 1', 'child 2', 'child 3'])))")

    result, _ = await _run(script, context_dir, max_depth=2, max_concurrent_subcalls=2)
    assert result.status == "completed"
    assert result.answer == " | ".join(["echo:a+echo:b+echo:c"] * 3)
    assert result.metadata.sandbox_starts == 4 and len(result.trajectory.children) == 3


async def test_a_dead_sandbox_is_replaced_and_the_model_told(
    docker_client: docker.DockerClient, context_dir: Path
) -> None:
    """A cell past its limit kills its sandbox; the model hears so, a fresh one serves the next turn."""
    script = _by_turn([repl("x = 1\nwhile True:\n    pass"), repl("FINAL('fresh ' + str('x' in dir()))")])
    with FakeLLM(script) as fake:
        agent = RLMAgent(
            RLMConfig(root_model="root-m"),
            endpoint=LLMEndpoint(base_url=fake.url),
            api_key=KEY,
            limits=SandboxLimits(cell_timeout_s=1),
        )
        result = await agent.run(context=context_dir, query="q")
        await agent.aclose()
    assert (result.status, result.answer) == ("completed", "fresh False")
    assert "variables are lost" in fake.requests[1].last_user
    assert result.metadata.sandbox_starts == 2
    assert result.trajectory.iterations[0].cells[0].status == "timeout"


async def test_hitting_the_subcall_limit_ends_the_run(context_dir: Path) -> None:
    """Past the sub-call limit the call returns an "Error: ..." string, and the run ends with max_subcalls."""
    code = "print(llm_query('a')); print(llm_query('b'))"
    result, _ = await _run(_by_turn([repl(code), repl("FINAL('never')")]), context_dir, max_subcalls=1)
    assert result.status == "max_subcalls" and result.answer is None
    assert "sub-calls" in (result.trajectory.error or "")
    out = result.trajectory.iterations[0].cells[0].stdout.splitlines()
    assert out[0] == "echo:a" and out[1].startswith("Error: ") and "sub-calls" in out[1]


async def test_recursive_llm_query_option(context_dir: Path) -> None:
    """With recursive_llm_query, llm_query itself starts a child RLM (AStack's style) while depth allows."""

    def script(seen: Seen, index: int) -> Reply | str:
        if "child task" in seen.body["messages"][1]["content"]:
            return repl("FINAL('from the child: ' + str(len(list_files())))")
        return repl("FINAL(llm_query('child task'))")

    result, _ = await _run(script, context_dir, max_depth=2, recursive_llm_query=True)
    assert result.answer == "from the child: 2"
    assert [s.kind for s in result.trajectory.subcalls] == ["rlm"]
