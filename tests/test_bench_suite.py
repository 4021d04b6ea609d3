"""rlm bench's runner: parts found in the checkout, results turned into tables and plots."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from orchestrator.bench import plots, suite
from orchestrator.bench.oolong_harness import TaskResult, summarise
from orchestrator.cli import _parser
from orchestrator.errors import InvalidInputError

REPO = Path(__file__).resolve().parent.parent
MACHINE = {
    "cpu": "cpu",
    "cores": 2,
    "memory_gib": 23.5,
    "kernel": "6.1",
    "python": "3.11",
    "docker": "20.10",
    "runc": "runc 1.1",
    "runsc": "runsc 2022",
    "load_average": [0.5, 0.4, 0.3],
}


def test_every_platform_part_is_a_measuring_program_of_the_checkout() -> None:
    """Each part names a benchmarks/ module with an async measure(quick=...)."""
    bench_dir = suite.find_benchmarks(None)
    assert bench_dir == REPO / "benchmarks"
    for part in suite.PARTS.values():
        source = (bench_dir / f"{part.module}.py").read_text()
        assert "async def measure(" in source and "quick: bool = False" in source, part.module
    assert suite.ALL[-1] == "oolong"


def test_a_missing_checkout_is_bad_input(tmp_path: Path) -> None:
    """Without benchmarks/ the platform's parts say where they looked and what still works."""
    with pytest.raises(InvalidInputError, match="rlm bench oolong"):
        suite.find_benchmarks(str(tmp_path))


def test_bench_parts_are_on_the_cli() -> None:
    """`rlm bench` offers every part, all and plots, beside the pool's."""
    for part in [*suite.PARTS, "oolong", "all", "plots", "pool"]:
        args = _parser().parse_args(["bench", part] + (["--offline"] if part == "oolong" else []))
        assert callable(args.bench_main), part


def test_tables_and_plots_from_results(tmp_path: Path) -> None:
    """summary.md holds the OOLONG-Pairs table with the machine; a PNG is drawn when matplotlib is there."""
    results = [
        TaskResult(t, n, c, "completed", 1.0, 1.0, 1.0, 3, 3, 0.5, 0.01, 0.49, 10, 5, None)
        for n in (100, 500)
        for c in ("rlm", "direct")
        for t in (1, 2)
    ]
    body = {"benchmark": "oolong", "summary": summarise(results), "machine": MACHINE, "took_s": 1.0}
    (tmp_path / "oolong.json").write_text(json.dumps(body))
    written = plots.draw_all(tmp_path, say=lambda _m: None)
    text = (tmp_path / "summary.md").read_text()
    assert "| rlm | 1.000 | 1.000 | 0.490 / 0.490 | 0.490 / 0.490 |" in text
    assert "cpu, 2 cores, 23.5 GiB" in text and "load average 0.5" in text
    if importlib.util.find_spec("matplotlib") is not None:
        assert tmp_path / "oolong.png" in written and (tmp_path / "oolong.png").stat().st_size > 1000
