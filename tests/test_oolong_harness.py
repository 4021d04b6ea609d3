"""OOLONG-Pairs end to end offline: real sandboxes, the scripted model through the real openai client."""

from __future__ import annotations

import json
import subprocess
import sys

import docker
import pytest

from orchestrator.bench.oolong_bench import OolongOptions, run_offline
from orchestrator.bench.oolong_harness import CONTENDERS
from orchestrator.settings import Settings

pytestmark = pytest.mark.docker


async def test_offline_harness_at_100_scores_one(docker_client: docker.DockerClient) -> None:
    """Every contender completes every chosen task at 100 entries and scores F1 1.0, sub-calls exercised."""
    numbers = (1, 4, 11, 16, 20)
    results = await run_offline(OolongOptions(sizes=(100,), numbers=numbers, progress=False), Settings())
    assert len(results) == len(numbers) * len(CONTENDERS)
    assert all(r.status == "completed" and r.f1 == 1.0 for r in results), [r for r in results if r.f1 < 1]
    by = {(r.task, r.contender): r for r in results}
    assert by[(1, "rlm")].subcalls == 4  # 100 entries labelled 25 at a time through llm_query_batched
    assert by[(1, "rlm-depth2")].sandbox_starts == 2  # the root's sandbox and one child RLM's
    assert by[(1, "rlm-no-subcalls")].subcalls == 0
    assert not by[(1, "direct")].truncated and by[(1, "direct")].lines_given == 100
    assert all(
        0 <= r.model_s <= r.wall_s and r.platform_s == pytest.approx(r.wall_s - r.model_s) for r in results
    )


def test_cli_prints_one_object_per_size_and_contender(docker_client: docker.DockerClient) -> None:
    """`rlm bench oolong --offline --json` prints a line per size and contender with the figures."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "bench",
            "oolong",
            "--offline",
            "--sizes",
            "100,120",
            "--tasks",
            "2",
            "--contenders",
            "rlm,direct",
            "--json",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(o["size"], o["contender"]) for o in lines] == [
        (100, "rlm"),
        (100, "direct"),
        (120, "rlm"),
        (120, "direct"),
    ]
    for o in lines:
        assert {"size", "f1", "precision", "recall", "platform_s", "contender"} <= set(o)
        assert o["f1"] == 1.0 and "not model accuracy" in o["label"]


def test_cli_refuses_bad_flags() -> None:
    """A task number out of 1-20 or an unknown contender is bad input (exit 2), one line."""
    for flags in (["--tasks", "0"], ["--contenders", "oracle"], ["--sizes", "0"]):
        out = subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", "bench", "oolong", "--offline", *flags],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 2 and out.stderr.startswith("rlm: "), (flags, out.stderr)
