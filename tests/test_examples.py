"""Every example in the README is a file under examples/, shown as written, and runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from .fake_llm import FakeLLM, Seen, repl

REPO = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```(?:python|sh)\n# (examples/[\w./-]+)\n(.*?)^```$", re.S | re.M)


def _blocks() -> dict[str, str]:
    return dict(BLOCK.findall((REPO / "README.md").read_text()))


def test_readme_examples_are_the_files_themselves() -> None:
    """Each README block marked with an examples/ path is exactly that file, and each file is shown."""
    blocks = _blocks()
    assert set(blocks) == {
        "examples/rlm_api.py",
        "examples/rlm_agent.py",
        "examples/sandbox_api.py",
        "examples/exec_grep.sh",
        "examples/server_client.py",  # run against a live server by tests/test_server.py
        "examples/compat_migration.py",
    }
    for path, text in blocks.items():
        assert (REPO / path).read_text() == text, path


def test_every_python_block_of_the_readme_is_an_example_file() -> None:
    """No Python in the README that a test does not run: each block is marked with its examples/ file."""
    text = (REPO / "README.md").read_text()
    python_blocks = re.findall(r"^```python\n(.*?)^```$", text, re.S | re.M)
    unmarked = [b.splitlines()[0] for b in python_blocks if not b.startswith("# examples/")]
    assert unmarked == []


def _model(seen: Seen, index: int) -> str:
    """Answers every root turn with code that finishes at once."""
    return repl("FINAL('from the model: ' + str(len(list_files())))")


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=REPO, capture_output=True, text=True, timeout=180, env={**os.environ, **env}
    )


@pytest.mark.docker
@pytest.mark.parametrize("name", ["rlm_api.py", "rlm_agent.py"])
def test_rlm_examples_run_against_an_endpoint(docker_client: docker.DockerClient, name: str) -> None:
    """The RLM examples run as written against an OpenAI-compatible endpoint and print the answer."""
    with FakeLLM(_model) as fake:
        done = _run(
            [sys.executable, f"examples/{name}"], {"OPENAI_BASE_URL": fake.url, "OPENAI_API_KEY": "k"}
        )
    assert done.returncode == 0, done.stderr
    assert "completed from the model:" in done.stdout


@pytest.mark.docker
def test_sandbox_example_runs(docker_client: docker.DockerClient) -> None:
    """The sandbox layer example runs as written (runsc included) and prints what it says it does."""
    done = _run([sys.executable, "examples/sandbox_api.py"], {})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "['a.md', 'b.md']" and done.stdout.startswith("ok ")


@pytest.mark.docker
def test_exec_example_runs(docker_client: docker.DockerClient) -> None:
    """The shell example pipes code into `rlm exec` and prints grep's first hits."""
    done = _run(["sh", "examples/exec_grep.sh"], {})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("[{'path': 'logs/")


def _compat_model(seen: Seen, index: int) -> str:
    """The migration example's root turns: count the words of the context the query names."""
    if not seen.system:
        return "sub"
    newest = "newest" in seen.body["messages"][1]["content"]
    return repl(f"FINAL(word_count({'context_1' if newest else 'context'}))")


@pytest.mark.docker
def test_compat_example_runs_the_official_api(docker_client: docker.DockerClient) -> None:
    """The migration example, the official API on its new import, runs as written: two completions in
    one session, a custom tool called from the sandbox."""
    with FakeLLM(_compat_model) as fake:
        done = _run(
            [sys.executable, "examples/compat_migration.py"],
            {"OPENAI_BASE_URL": fake.url, "OPENAI_API_KEY": "k"},
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("4 2 {'gpt-4o-mini': {'total_calls': 1,"), done.stdout
