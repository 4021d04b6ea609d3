"""The user's path: `rlm` run as a person runs it, with the inputs, endpoints and signals they meet.

Each test runs the real CLI in a subprocess and checks the exit status, the message, and what was left
on disk and in Docker.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from .fake_llm import FakeLLM, Reply, Seen, repl

RLM = [sys.executable, "-m", "orchestrator.cli"]
NO_SUCH_MODEL = '{"error": {"message": "no such model"}}'
BLOCKING_CELL = "import time\nprint('started', flush=True)\ntime.sleep(300)"


def _env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return {**base, **extra}


def _rlm(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RLM, *args], capture_output=True, text=True, timeout=timeout, env=env or _env())


def _owned_by(client: docker.DockerClient, pid: int) -> list[dict[str, Any]]:
    """Sandbox containers whose owner label names process `pid` (owners are host/pid/start/instance)."""
    listed = client.api.containers(all=True, filters={"label": "io.rlm.managed=1"})  # one call: no races
    return [c for c in listed if f"/{pid}/" in (c.get("Labels") or {}).get("io.rlm.owner", "")]


def _wait_for(predicate: object, what: str, limit_s: float = 90.0) -> None:
    """Poll an observable state (a container exists, a request arrived), bounded; never a fixed sleep."""
    deadline = time.monotonic() + limit_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def blocking_model() -> Iterator[FakeLLM]:
    """A model whose first reply runs a cell that blocks, so the run is mid-cell when signalled."""

    def script(seen: Seen, index: int) -> Reply | str:
        return repl(BLOCKING_CELL)

    with FakeLLM(script) as fake:
        yield fake


@pytest.mark.docker
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_mid_run_cleans_up_and_keeps_the_partial_trajectory(
    docker_client: docker.DockerClient,
    blocking_model: FakeLLM,
    context_dir: Path,
    tmp_path: Path,
    signum: signal.Signals,
) -> None:
    """SIGTERM, SIGINT or SIGHUP during a cell: exit 128+signal, no container or socket dir left, and the
    partial trajectory (the reply, the run marked cancelled) written."""
    trajectory = tmp_path / "partial.json"
    env = _env(OPENAI_BASE_URL=blocking_model.url, OPENAI_API_KEY="k")
    args = ["run", "--context", str(context_dir), "--query", "q", "--trajectory", str(trajectory)]
    proc = subprocess.Popen([*RLM, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: blocking_model.requests and _owned_by(docker_client, proc.pid), "the run's sandbox")
        sandbox_ids = [c["Labels"]["io.rlm.sandbox"] for c in _owned_by(docker_client, proc.pid)]
        proc.send_signal(signum)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum, err
    assert "stopped by" in err and "Traceback" not in err
    assert _owned_by(docker_client, proc.pid) == []
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    assert not [
        p for p in tmp.glob("rlm-sbx-*") if any(p.name.startswith(f"rlm-sbx-{s}") for s in sandbox_ids)
    ]
    saved = json.loads(trajectory.read_text())
    assert saved["status"] == "cancelled" and saved["iterations"][0]["reply"].count("time.sleep(300)") == 1


@pytest.mark.docker
def test_sigterm_to_exec_removes_its_sandbox(docker_client: docker.DockerClient, context_dir: Path) -> None:
    """`rlm exec` stopped by SIGTERM mid-cell exits 143 and leaves no container behind."""
    proc = subprocess.Popen(
        [*RLM, "exec", "--context", str(context_dir), "--code", BLOCKING_CELL],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: _owned_by(docker_client, proc.pid), "the sandbox")
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert _owned_by(docker_client, proc.pid) == []


def test_an_unwritable_trajectory_is_refused_before_the_run(tmp_path: Path) -> None:
    """--trajectory into a missing directory is bad input (exit 2) before any model call or sandbox."""
    with FakeLLM(lambda seen, i: repl("FINAL(1)")) as fake:
        result = _rlm(
            "run",
            "--context",
            str(tmp_path),
            "--query",
            "q",
            "--trajectory",
            str(tmp_path / "no" / "such" / "t.json"),
            env=_env(OPENAI_BASE_URL=fake.url),
        )
        assert fake.requests == []
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.docker
def test_an_html_endpoint_is_an_llm_error_with_json(
    docker_client: docker.DockerClient, context_dir: Path
) -> None:
    """A 200 answered with an HTML page: status llm_error, exit 1, and --json says why in `error`."""
    page = Reply(body="<html><body>Login required</body></html>", content_type="text/html")
    with FakeLLM(lambda seen, i: page) as fake:
        result = _rlm(
            "run", "--context", str(context_dir), "--query", "q", "--json", env=_env(OPENAI_BASE_URL=fake.url)
        )
    assert result.returncode == 1, result.stderr
    out = json.loads(result.stdout)
    assert out["status"] == "llm_error" and "not an OpenAI chat completion" in out["error"]


def test_a_file_as_context_says_it_is_a_file(tmp_path: Path) -> None:
    """`rlm run --context FILE` says the context must be a directory, not that it does not exist."""
    path = tmp_path / "notes.txt"
    path.write_text("x")
    result = _rlm(
        "run", "--context", str(path), "--query", "q", env=_env(OPENAI_BASE_URL="http://127.0.0.1:9/v1")
    )
    assert result.returncode == 2 and "is a file" in result.stderr


@pytest.mark.docker
def test_more_cpus_than_the_machine_is_bad_input(
    docker_client: docker.DockerClient, context_dir: Path
) -> None:
    """--cpus past the machine's count is bad input naming the machine's limit, not an engine failure."""
    result = _rlm("exec", "--context", str(context_dir), "--cpus", "64", "--code", "1")
    ncpu = docker_client.info()["NCPU"]
    assert result.returncode == 2, result.stderr
    assert f"this machine's {ncpu} CPUs" in result.stderr


def test_exec_json_when_the_engine_is_unreachable(tmp_path: Path) -> None:
    """With the engine unreachable, --json still prints one object (status unavailable), exit 3, and the
    message names the address tried and how to choose another."""
    env = _env(DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock")
    result = _rlm("exec", "--context", str(tmp_path), "--json", "--code", "1", env=env)
    assert result.returncode == 3
    out = json.loads(result.stdout)
    assert out["status"] == "unavailable" and "DOCKER_HOST" in out["error"]["message"]
    assert f"{tmp_path}/no-docker.sock" in result.stderr


def test_help_lists_environment_and_exit_statuses_and_version() -> None:
    """`rlm --help` and `rlm run --help` list the environment variables and exit statuses; --version."""
    for args in (["--help"], ["run", "--help"], ["exec", "--help"]):
        result = _rlm(*args)
        assert result.returncode == 0
        assert "OPENAI_BASE_URL" in result.stdout and "exit status" in result.stdout
    run_help = _rlm("run", "--help").stdout
    for flag in ("--request-timeout", "--retries", "--memory", "--cpus", "--cell-timeout", "--deadline"):
        assert flag in run_help
    assert _rlm("--version").stdout.startswith("rlm ")


@pytest.mark.docker
def test_a_closed_stdout_is_exit_141_and_leaves_nothing(
    docker_client: docker.DockerClient, context_dir: Path
) -> None:
    """Output piped into a reader that goes away: exit 141, no traceback, no container left."""
    code = "for i in range(200000):\n    print('line', i)"
    proc = subprocess.Popen(
        [*RLM, "exec", "--context", str(context_dir), "--code", code],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    proc.stdout.read(10)
    proc.stdout.close()
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.wait(timeout=60)
    assert proc.returncode == 141, err
    assert "Traceback" not in err
    assert _owned_by(docker_client, proc.pid) == []


@pytest.mark.docker
def test_a_reply_that_never_ends_is_bounded_by_the_request_timeout(
    docker_client: docker.DockerClient, context_dir: Path
) -> None:
    """A stream that trickles forever ends at --request-timeout (no retry with --retries 0): llm_error,
    a message naming the flag, and no sandbox left."""
    slow = Reply("x" * 10_000, piece_delay_s=0.2)  # ~1,400 pieces at 0.2 s: minutes, if let run
    with FakeLLM(lambda seen, i: slow) as fake:
        args = ["run", "--context", str(context_dir), "--query", "q", "--stream", "--json"]
        limits = ["--request-timeout", "2", "--retries", "0"]
        result = _rlm(*args, *limits, env=_env(OPENAI_BASE_URL=fake.url), timeout=60)
    assert result.returncode == 1, result.stderr
    out = json.loads(result.stdout)
    assert out["status"] == "llm_error" and "--request-timeout" in out["error"]


@pytest.mark.docker
def test_stream_replies_asks_for_every_reply_as_a_stream(
    docker_client: docker.DockerClient, context_dir: Path
) -> None:
    """`rlm run --stream-replies` (endpoints.*.stream) streams each model request though nothing is
    shown as it comes (no --stream): the answer is the same."""
    with FakeLLM(lambda seen, i: repl("FINAL(len(list_files()))")) as fake:
        args = ["run", "--context", str(context_dir), "--query", "q", "--json", "--stream-replies"]
        result = _rlm(*args, env=_env(OPENAI_BASE_URL=fake.url), timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "completed"
    assert fake.requests and all(seen.body.get("stream") is True for seen in fake.requests)


@pytest.mark.parametrize(
    ("reply", "needles"),
    [
        (Reply(status=404, body=""), ["answered 404 with no message", "ends in /v1"]),
        (Reply(status=401), ["answered 401", "API key"]),
        (
            Reply(
                status=400, body='{"error": {"message": "no such model"}}', content_type="application/json"
            ),
            ["answered 400: no such model"],
        ),
        (Reply(body="<html>login</html>", content_type="text/html"), ["not an OpenAI chat completion"]),
        (Reply(body="{}", content_type="application/json"), ["without choices"]),
    ],
)
async def test_endpoint_refusals_say_what_to_check(reply: Reply, needles: list[str]) -> None:
    """4xx with and without a body, HTML and JSON of the wrong shape: one clear, non-retried message."""
    from orchestrator.errors import LLMError
    from orchestrator.llm.openai_provider import OpenAIProvider
    from orchestrator.llm.types import Message

    with FakeLLM(lambda seen, i: reply) as fake:
        provider = OpenAIProvider(base_url=fake.url, api_key="k")
        with pytest.raises(LLMError) as refused:
            await provider.complete([Message("user", "hi")], model="m")
        await provider.aclose()
        assert len(fake.requests) == 1  # not retried: the same request would get the same answer
    assert not refused.value.retryable
    assert all(n in refused.value.message for n in needles), refused.value.message


def test_progress_says_how_long_the_model_has_been_thinking() -> None:
    """Past 5 s of waiting for a reply a line says so: on a pipe once every 30 s, none after the reply."""
    import io

    from orchestrator.rlm import IterationStarted, ModelText
    from orchestrator.run_cli import Progress

    now = [0.0]
    out = io.StringIO()
    progress = Progress(out, stream=False, clock=lambda: now[0])
    progress(IterationStarted(1, 0, 0.0))
    for second in range(1, 70):
        now[0] = float(second)
        progress.tick()
    progress(ModelText("reply", 0))
    now[0] = 200.0
    progress.tick()
    waits = [line for line in out.getvalue().splitlines() if line.startswith("waiting")]
    assert waits == [
        "waiting for the model (5 s)",
        "waiting for the model (35 s)",
        "waiting for the model (65 s)",
    ]
