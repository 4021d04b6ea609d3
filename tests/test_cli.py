"""`rlm exec` as a person runs it: a real process, real exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import docker
import pytest

RLM = [sys.executable, "-m", "orchestrator.cli"]


def _rlm(
    *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*RLM, *args], input=stdin, capture_output=True, timeout=120, env={**os.environ, **(env or {})}
    )
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def _one_line_error(result: subprocess.CompletedProcess[str], code: int, needle: str) -> None:
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlm: ") and needle in lines[0], lines


@pytest.mark.parametrize(
    ("args", "stdin", "needle"),
    [
        (["--context", "/no/such/dir", "--code", "1"], None, "does not exist"),
        (["--context", ".", "--runtime", "kata", "--code", "1"], None, "unknown runtime"),
        (["--context", ".", "--memory", "lots", "--code", "1"], None, "not a size"),
        (["--context", "."], b"x = '\xff'", "not valid UTF-8"),
        (["--context", "."], b"x = 1\x00", "NUL byte"),
        (["--context", ".", "--file", "/no/such/file.py"], None, "cannot read"),
        (["--context", ".", "--bogus"], None, "unrecognized arguments"),
        (["--context", ".", "--include", "", "--code", "1"], None, "glob"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], stdin: bytes | None, needle: str) -> None:
    """Bad input never shows a traceback: one `rlm:` line on stderr and exit status 2."""
    _one_line_error(_rlm("exec", *args, stdin=stdin), 2, needle)


def test_bad_input_with_json_is_status_invalid(tmp_path: Path) -> None:
    """With --json, refused input still prints one object, with status `invalid`."""
    result = _rlm("exec", "--context", str(tmp_path), "--json", stdin=b"\x00")
    assert result.returncode == 2
    assert json.loads(result.stdout)["status"] == "invalid"


def test_engine_down_is_one_line_and_exit_3(tmp_path: Path) -> None:
    """With no Docker engine at the configured address, the error says so in one line."""
    result = _rlm(
        "exec",
        "--context",
        str(tmp_path),
        "--code",
        "1",
        env={"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"},
    )
    _one_line_error(result, 3, "no-docker.sock is not reachable")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[sandbox]\nlimts = 1\n", "unknown setting 'sandbox.limts' in "),
        ("[sandbox.limits]\ncpus = 'abc'\n", "sandbox.limits.cpus: expected a number, got 'abc'"),
        ("[sandbox\n", "is not valid TOML"),
    ],
)
def test_bad_config_file_is_one_line_and_exit_2(tmp_path: Path, text: str, needle: str) -> None:
    """`rlm exec --config bad.toml` (and `rlm run`) exits 2 with one line naming the key and the file."""
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    for command in (["exec", "--code", "1"], ["run", "--query", "q"]):
        result = _rlm(command[0], "--context", str(tmp_path), "--config", str(bad), *command[1:])
        _one_line_error(result, 2, needle)
        assert str(bad) in result.stderr


def test_rlm_config_names_the_file_and_a_missing_one_is_refused(tmp_path: Path) -> None:
    """With no --config, $RLM_CONFIG is the settings file; a missing one is exit 2 naming it."""
    missing = tmp_path / "missing.toml"
    result = _rlm("exec", "--context", str(tmp_path), "--code", "1", env={"RLM_CONFIG": str(missing)})
    _one_line_error(result, 2, f"settings file {missing} does not exist")


def test_runtime_flag_must_be_offered_by_the_settings(tmp_path: Path) -> None:
    """--runtime must be one of sandbox.runtimes from the settings file, or it is refused in one line."""
    config = tmp_path / "rlm.toml"
    config.write_text("[sandbox]\nruntimes = ['runc']\n")
    result = _rlm(
        "exec", "--context", str(tmp_path), "--config", str(config), "--runtime", "runsc", "--code", "1"
    )
    _one_line_error(result, 2, "not offered here")


def test_rlm_run_takes_its_endpoint_from_the_settings_file(tmp_path: Path) -> None:
    """An endpoint's base_url in the file is an endpoint: `rlm run` goes past the "no endpoint" check."""
    config = tmp_path / "rlm.toml"
    config.write_text("[endpoints.default]\nbase_url = 'http://127.0.0.1:9/v1'\n")
    env = {
        k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RLM_CONFIG")
    }
    result = subprocess.run(
        [*RLM, "run", "--context", str(tmp_path), "--query", " ", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2 and "the query must not be empty" in result.stderr, result.stderr


@pytest.mark.docker
def test_exec_uses_the_settings_file_and_flags_win(
    docker_client: docker.DockerClient, context_dir: Path, tmp_path: Path
) -> None:
    """The file's cell timeout applies to `rlm exec`; --timeout given on the command line wins over it."""
    config = tmp_path / "rlm.toml"
    config.write_text("[sandbox.limits]\ncell_timeout_s = 1\n")
    code = "import time; time.sleep(3); print('slept')"
    args = ["exec", "--context", str(context_dir), "--config", str(config), "--json", "--code", code]
    from_file = _rlm(*args)
    assert from_file.returncode == 1 and json.loads(from_file.stdout)["status"] == "timeout", from_file
    flagged = _rlm(*args, "--timeout", "30")
    assert flagged.returncode == 0 and json.loads(flagged.stdout)["stdout"] == "slept\n", flagged


@pytest.mark.docker
def test_exec_json_reports_every_field(docker_client: docker.DockerClient, context_dir: Path) -> None:
    """--json prints one object with status, output, error, final and duration; exit 0 when ok."""
    result = _rlm(
        "exec",
        "--context",
        str(context_dir),
        "--json",
        stdin=b"print(open('/context/hello.txt').read().strip())\nFINAL('done')",
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["status"] == "ok" and seen["stdout"] == "hello from the context\n"
    assert seen["final"] == "done" and seen["error"] is None and seen["duration_s"] >= 0
    assert {"stderr", "stdout_truncated"} <= seen.keys()


@pytest.mark.docker
def test_exec_timeout_exits_1(docker_client: docker.DockerClient, context_dir: Path) -> None:
    """A cell past --timeout reports `timeout` and exits 1."""
    result = _rlm(
        "exec", "--context", str(context_dir), "--timeout", "1", "--json", "--code", "while True: pass"
    )
    assert result.returncode == 1
    assert json.loads(result.stdout)["status"] == "timeout"


@pytest.mark.docker
def test_exec_plain_output_is_terminal_safe(docker_client: docker.DockerClient, context_dir: Path) -> None:
    """Without --json the cell's output is printed with escape sequences neutralised."""
    result = _rlm(
        "exec",
        "--context",
        str(context_dir),
        "--runtime",
        "runsc",
        "--code",
        "print('red\\x1b[31m'); raise KeyError('k')",
    )
    assert result.returncode == 1
    assert result.stdout == "red\\x1b[31m\n"
    assert "KeyError: 'k'" in result.stderr


@pytest.mark.docker
def test_exec_include_exclude(docker_client: docker.DockerClient, context_dir: Path) -> None:
    """--include and --exclude narrow what list_files and read_file see."""
    result = _rlm(
        "exec",
        "--context",
        str(context_dir),
        "--include",
        "*.csv",
        "--include",
        "*.txt",
        "--exclude",
        "hello.txt",
        "--code",
        "print(list_files())",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "['sub/data.csv']\n"


@pytest.mark.docker
def test_rlm_run_against_a_scripted_endpoint(
    docker_client: docker.DockerClient, context_dir: Path, tmp_path: Path
) -> None:
    """`rlm run` reads the endpoint from the environment, shows progress, prints the answer, writes the
    trajectory, and --json prints answer, status, metadata and trajectory."""
    from .fake_llm import FakeLLM, repl

    def script(seen: object, index: int) -> str:
        return repl("FINAL(read_file('hello.txt').strip())")

    with FakeLLM(script) as fake:
        env = {"OPENAI_BASE_URL": fake.url, "OPENAI_API_KEY": "sk-cli-test"}
        plain = _rlm(
            "run",
            "--context",
            str(context_dir),
            "--query",
            "what does hello say?",
            "--trajectory",
            str(tmp_path / "t.json"),
            env=env,
        )
        as_json = _rlm("run", "--context", str(context_dir), "--query", "again", "--json", env=env)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == "hello from the context\n"
    assert "iteration 1" in plain.stderr and "status completed" in plain.stderr
    assert json.loads((tmp_path / "t.json").read_text())["answer"] == "hello from the context"
    seen = json.loads(as_json.stdout)
    assert seen["status"] == "completed" and seen["answer"] == "hello from the context"
    assert seen["metadata"]["iterations"] == 1 and seen["trajectory"]["iterations"][0]["cells"]
    assert "sk-cli-test" not in as_json.stdout + as_json.stderr


def test_rlm_run_without_endpoint_says_how(tmp_path: Path) -> None:
    """With no key and no base URL, `rlm run` says how to configure one, in one line, exit 2."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    result = subprocess.run(
        [*RLM, "run", "--context", str(tmp_path), "--query", "q"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2 and "OPENAI_API_KEY" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("extra", "needle"),
    [(["--query", "  "], "query"), (["--query", "q", "--runtime", "kata"], "unknown runtime")],
)
def test_rlm_run_bad_input_is_exit_2(tmp_path: Path, extra: list[str], needle: str) -> None:
    """An empty query or an unknown runtime is refused before anything starts, in one line."""
    result = _rlm("run", "--context", str(tmp_path), *extra, env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    _one_line_error(result, 2, needle)
