"""The official RLM's Python API over ours (issue 12): `orchestrator.compat.RLM` end to end against the
scripted OpenAI-compatible server (the real openai client), in real sandboxes under runc and runsc,
and its JSON-lines log read back by a reader written against the official format's fields.

Held to the official tests where they apply: tests/test_multi_turn_integration.py (persistent mode:
contexts and histories accumulate, variables persist, the prompt names the counts, close() ends the
environment, the default is not persistent, environments without persistence are refused) and
tests/test_types.py (the result's and usage summary's to_dict shapes).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from orchestrator.compat import (
    NO_ROOT_PROMPT,
    RLM,
    CancellationError,
    ErrorThresholdExceededError,
    RLMChatCompletion,
    RLMLogger,
    TimeoutExceededError,
    TokenLimitExceededError,
    UsageSummary,
)

from .fake_llm import FakeLLM, Reply, Seen, repl
from .fakes.process_backend import ProcessBackend

KEY = "sk-compat-DO-NOT-LOG-1234"


def read_official_log(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The official log format, as the official logger writes it (rlm/logger/rlm_logger.py and the
    to_dict of rlm/core/types.py) and its visualizer reads it (visualizer/src/lib/types.ts): a
    "metadata" line, then one "iteration" line per root turn. Only documented fields are read, each
    checked for its type."""
    config: dict[str, Any] = {}
    iterations: list[dict[str, Any]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry.get("type") == "metadata":
            assert isinstance(entry["timestamp"], str)
            config = {
                key: entry[key]
                for key in (
                    "root_model",
                    "max_depth",
                    "max_iterations",
                    "backend",
                    "backend_kwargs",
                    "environment_type",
                    "environment_kwargs",
                    "other_backends",
                )
            }
            continue
        assert entry["type"] == "iteration" and isinstance(entry["iteration"], int)
        assert isinstance(entry["timestamp"], str) and isinstance(entry["response"], str)
        assert all(set(m) == {"role", "content"} for m in entry["prompt"])
        assert entry["final_answer"] is None or isinstance(entry["final_answer"], str)
        assert isinstance(entry["iteration_time"], float)
        for block in entry["code_blocks"]:
            result = block["result"]
            assert isinstance(block["code"], str) and isinstance(result["stdout"], str)
            assert isinstance(result["stderr"], str) and isinstance(result["locals"], dict)
            assert isinstance(result["execution_time"], float)
            for call in result["rlm_calls"]:
                assert {"root_model", "prompt", "response", "usage_summary", "execution_time"} <= set(call)
                assert set(call["usage_summary"]) == {"model_usage_summaries"}
        iterations.append(entry)
    return config, iterations


def _roots(*replies: str | Reply) -> Any:
    """The root model's replies in order; a sub-call (no system prompt) echoes its prompt."""
    turn = iter(replies)

    def script(seen: Seen, index: int) -> Reply | str:
        return next(turn) if seen.system else f"echo:{seen.last_user}"

    return script


def _rlm(fake: FakeLLM, **kwargs: Any) -> RLM:
    kwargs.setdefault("backend_kwargs", {"model_name": "root-m", "base_url": fake.url, "api_key": KEY})
    return RLM(backend="openai", **kwargs)


@pytest.mark.docker
def test_completion_end_to_end_with_tools_and_the_official_log(
    docker_client: docker.DockerClient, runtime: str, tmp_path: Path
) -> None:
    """completion(prompt, root_prompt) runs in our sandbox (the runtime chosen by environment_kwargs)
    and returns the official result's fields; the log file holds the metadata and every iteration with
    its prompt messages, code, output and LM sub-calls, and never the key."""
    script = _roots(
        repl("rows = context['rows']\nprint(len(rows), lookup('b'))\ns = llm_query('summarise ' + rows[0])"),
        repl("answer['content'] = s + ' / ' + str(total(rows))\nanswer['ready'] = True"),
    )
    logger = RLMLogger(log_dir=str(tmp_path / "logs"))
    tools = {
        "lookup": {"tool": lambda k: {"a": 1, "b": 2}[k], "description": "the value of a key"},
        "total": lambda rows: sum(len(r) for r in rows),
    }
    with FakeLLM(script) as fake:
        rlm = _rlm(
            fake,
            environment="docker",
            environment_kwargs={"runtime": runtime},
            custom_tools=tools,
            logger=logger,
        )
        with rlm:
            result = rlm.completion({"rows": ["alpha", "beta"]}, root_prompt="Summarise the rows")
        system = fake.requests[0].system
        first_user = fake.requests[0].body["messages"][1]["content"]
    assert isinstance(result, RLMChatCompletion) and result.response == "echo:summarise alpha / 9"
    assert result.root_model == "root-m" and result.prompt == {"rows": ["alpha", "beta"]}
    assert result.execution_time > 0 and result.status == "completed"
    usage = result.usage_summary.to_dict()["model_usage_summaries"]["root-m"]
    assert usage["total_calls"] == 3  # two root replies, one llm_query (same model: no sub model given)
    assert (
        UsageSummary.from_dict(result.usage_summary.to_dict()).total_input_tokens
        == usage["total_input_tokens"]
    )
    assert set(result.to_dict()) == {
        "root_model",
        "prompt",
        "response",
        "usage_summary",
        "execution_time",
        "metadata",
    }
    assert "- `lookup`: the value of a key" in system and "Summarise the rows" in first_user
    # The log, read back against the official format.
    assert logger.log_file_path is not None
    path = Path(logger.log_file_path)
    assert re.fullmatch(r"rlm_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_[0-9a-f]{8}\.jsonl", path.name)
    config, iterations = read_official_log(path)
    assert (
        config["root_model"] == "root-m" and config["backend"] == "openai" and config["max_iterations"] == 30
    )
    assert config["environment_type"] == "docker" and config["environment_kwargs"] == {"runtime": runtime}
    assert "api_key" not in config["backend_kwargs"] and KEY not in path.read_text()
    assert [it["iteration"] for it in iterations] == [1, 2]
    assert [m["role"] for m in iterations[0]["prompt"]] == ["system", "user"]
    assert [m["role"] for m in iterations[1]["prompt"]] == ["system", "user", "assistant", "user"]
    assert "2 2" in iterations[1]["prompt"][3]["content"]  # the first cell's output, fed back
    block = iterations[0]["code_blocks"][0]
    assert block["result"]["stdout"] == "2 2\n" and block["result"]["final_answer"] is None
    [call] = block["result"]["rlm_calls"]
    assert (call["prompt"], call["response"], call["root_model"]) == (
        "summarise alpha",
        "echo:summarise alpha",
        "root-m",
    )
    assert iterations[1]["final_answer"] == result.response
    assert result.metadata == logger.get_trajectory() and result.metadata is not None
    assert result.metadata["iterations"][0]["code_blocks"][0]["code"] == block["code"]


@pytest.mark.docker
def test_persistent_completions_continue_in_one_sandbox(
    docker_client: docker.DockerClient, runtime: str
) -> None:
    """persistent=True: three completions in one sandbox and namespace (contexts context_0..2, histories
    history_0..2, variables kept), the model told the counts; close() destroys the sandbox."""
    script = _roots(
        repl("doc1 = 'cats'\nFINAL('Summarized first doc')"),
        repl("print(context_1, doc1, len(history))\nFINAL('Compared both docs')"),
        repl("FINAL(f'synthesized {doc1} and {context_1} from {context_2}')"),
    )
    with FakeLLM(script) as fake:
        rlm = _rlm(fake, persistent=True, environment_kwargs={"runtime": runtime})
        first = rlm.completion("First document about cats")
        second = rlm.completion("Second document about dogs")
        third = rlm.completion("Synthesize everything")
        session = rlm.session
        assert session is not None and session.sandbox is not None
        container = session.sandbox.container_id
        assert (session.get_context_count(), session.get_history_count()) == (3, 3)
        rlm.close()
        user_text = " ".join(
            m["content"] for m in fake.requests[-1].body["messages"] if m["role"] != "assistant"
        )
    assert "Summarized" in first.response and "Compared" in second.response
    assert third.response == "synthesized cats and Second document about dogs from Synthesize everything"
    assert "3 contexts" in user_text and "history" in user_text.lower()
    assert rlm.session is None
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(container)


def test_the_official_arguments_this_platform_does_not_run_are_refused() -> None:
    """Another sandbox provider, a non-OpenAI-compatible backend, and options this platform cannot honour
    are refused when the RLM is made, each saying why; so are custom tools with reserved names."""
    kwargs = {"model_name": "m", "api_key": "k", "base_url": "http://127.0.0.1:9"}
    for environment in ("modal", "e2b", "prime", "daytona"):
        with pytest.raises(ValueError, match="another sandbox provider"):
            RLM(backend_kwargs=kwargs, environment=environment)
        with pytest.raises(ValueError, match="another sandbox provider"):
            RLM(backend_kwargs=kwargs, environment=environment, persistent=True)
    for backend in ("anthropic", "gemini", "azure_openai", "portkey"):
        with pytest.raises(ValueError, match="not an OpenAI-compatible API"):
            RLM(backend=backend, backend_kwargs=kwargs)
    with pytest.raises(ValueError, match="base_url is required"):
        RLM(backend="vllm", backend_kwargs={"model_name": "m", "api_key": "k"})
    refused = {
        "custom_system_prompt": "mine",
        "max_budget": 1.0,
        "compaction_threshold_pct": 1.5,
        "user_prologue": "tips",
        "sampling_args": {"temperature": 0.2},
        "environment_kwargs": {"privileged": True},
        "backend_kwargs": {**kwargs, "default_headers": {}},
        "depth": 1,
    }
    for name, value in refused.items():
        with pytest.raises(ValueError):
            RLM(**{"backend_kwargs": kwargs, name: value})
    with pytest.raises(ValueError) as raised:
        RLM(backend_kwargs=kwargs, custom_tools={"llm_query": len, "answer": 1, "ok": 2})
    assert (
        "llm_query" in str(raised.value) and "answer" in str(raised.value) and "reserved" in str(raised.value)
    )
    assert RLM(backend_kwargs=kwargs).persistent is False  # the default, as the official one
    assert RLM(backend_kwargs=kwargs, environment="docker", persistent=True).persistent is True


def test_endings_and_limits_as_the_official_code_reports_them(tmp_path: Path) -> None:
    """Out of iterations the response is the model's last reply (the official default answer); past
    max_timeout, max_tokens or max_errors the official exceptions are raised with the partial answer;
    without root_prompt the prompt itself is the task; a sub model from other_backends serves
    llm_query; the official callbacks are called. (Engine logic: the process backend, no isolation.)"""
    backend = ProcessBackend(state_dir=tmp_path)
    with FakeLLM(_roots(repl("x = 1"), "no code here", "still thinking about it")) as fake:
        out = _rlm(fake, max_iterations=2, backend_for_tests=backend).completion("the task text")
        first_user = fake.requests[0].body["messages"][1]["content"]
    assert out.status == "max_iterations" and out.response == "still thinking about it" and out.error
    assert NO_ROOT_PROMPT in first_user

    with FakeLLM(_roots(*[repl(f"{n} / 0") for n in range(5)])) as fake:
        with pytest.raises(ErrorThresholdExceededError) as errors:
            _rlm(fake, max_errors=2, backend_for_tests=backend).completion("ctx")
    assert errors.value.error_count == 2 and errors.value.threshold == 2

    with FakeLLM(_roots(repl("import time\ntime.sleep(5)"), repl("x = 2"))) as fake:
        with pytest.raises(TimeoutExceededError) as timed_out:
            _rlm(fake, max_timeout=2.0, backend_for_tests=backend).completion("ctx")
    assert timed_out.value.timeout == 2.0 and "time.sleep(5)" in (timed_out.value.partial_answer or "")

    with FakeLLM(_roots(repl("x = 1"), repl("x = 2"), repl("x = 3"))) as fake:
        with pytest.raises(TokenLimitExceededError) as tokens:
            _rlm(fake, max_tokens=25, backend_for_tests=backend).completion("ctx")
    assert tokens.value.token_limit == 25 and tokens.value.tokens_used >= 25

    calls: list[tuple[str, Any]] = []

    def child_or_root(seen: Seen, index: int) -> str:
        if not seen.system:
            return f"{seen.body['model']}:{seen.last_user}"
        if "the child task" in seen.body["messages"][1]["content"]:
            return repl("FINAL(llm_query('leaf'))")
        return repl("FINAL(rlm_query('the child task'))")

    with FakeLLM(child_or_root) as fake:
        rlm = _rlm(
            fake,
            max_depth=2,
            other_backends=["openai"],
            other_backend_kwargs=[{"model_name": "sub-m", "base_url": fake.url, "api_key": KEY}],
            on_iteration_start=lambda depth, i: calls.append(("iteration_start", (depth, i))),
            on_iteration_complete=lambda depth, i, s: calls.append(("iteration_complete", (depth, i))),
            on_subcall_start=lambda depth, model, preview: calls.append(
                ("subcall_start", (depth, model, preview))
            ),
            on_subcall_complete=lambda depth, model, s, error: calls.append(
                ("subcall_complete", (depth, model, error))
            ),
            backend_for_tests=backend,
        )
        with rlm:
            out = rlm.completion("ctx", root_prompt="delegate")
    assert out.response == "sub-m:leaf"
    assert ("subcall_start", (1, "sub-m", "the child task")) in calls
    assert ("subcall_complete", (1, "sub-m", None)) in calls
    assert ("iteration_start", (0, 1)) in calls and ("iteration_complete", (0, 1)) in calls
    assert set(out.usage_summary.model_usage_summaries) == {"root-m", "sub-m"}


def test_a_cancelled_completion_is_the_official_cancellation(tmp_path: Path) -> None:
    """The official CancellationError carries the partial answer attribute."""
    assert CancellationError("so far").partial_answer == "so far"
