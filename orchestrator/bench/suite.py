"""Every benchmark of the project in turn (`make bench`, `rlm bench all`), or one part of them.

The platform's parts are the measuring programs of a source checkout's benchmarks/ (each a module
with `async def measure(quick=False) -> dict`); OOLONG-Pairs offline comes from this package. Each part
writes `<results>/<part>.json`: its figures, the machine (machine.py), when and how long it took.
After them, `draw` makes the PNG plots and `summary.md` (the README's tables) from those files.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import json
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from .machine import describe
from .progress import bar


@dataclass(frozen=True, slots=True)
class Part:
    module: str  # benchmarks/<module>.py, or "" for a part of this package
    help: str


PARTS: dict[str, Part] = {
    "sandbox": Part("sandbox_bench", "cold and warm start beside a bare docker run; cell round trip"),
    "llm": Part("llm_bench", "llm_query overhead; 32 sub-calls batched against one after another"),
    "context": Part("context_bench", "read and grep the 45 MB, 8,466-file context under runc and runsc"),
    "server": Part("server_bench", "rlm serve: 1 to 32 concurrent clients, Execute and sessions"),
    "capacity": Part("capacity_bench", "idle sandbox memory; the most sandboxes this machine holds"),
}
ALL = (*PARTS, "oolong")  # what `all` runs, in order


def find_benchmarks(given: str | None) -> Path:
    """The checkout's benchmarks/: the one given, else beside this package's source, else ./benchmarks."""
    candidates = (
        [Path(given)] if given else [Path(__file__).resolve().parents[2] / "benchmarks", Path("benchmarks")]
    )
    for path in candidates:
        if (path / "sandbox_bench.py").is_file():
            return path.resolve()
    raise InvalidInputError(
        "the platform's benchmarks are the programs of a source checkout's benchmarks/ "
        f"(not found at {', '.join(map(str, candidates))}); give --bench-dir, or run `rlm bench oolong`"
    )


def _load(bench_dir: Path, module: str) -> Any:
    if str(bench_dir) not in sys.path:
        sys.path.insert(0, str(bench_dir))
    return importlib.import_module(module)


def _oolong(quick: bool) -> dict[str, Any]:
    from ..settings import Settings
    from .oolong_bench import OFFLINE_LABEL, OolongOptions, run_offline
    from .oolong_harness import summarise, table

    cold = OolongOptions(sizes=(100,) if quick else (100, 200, 500), progress=False)
    figures: dict[str, Any] = {"benchmark": "oolong", "summary": [], "tasks": []}
    for options in (cold, replace(cold, pool=True)):  # sandboxes started cold, then from a warm pool
        results = asyncio.run(run_offline(options, Settings()))
        if options.pool:  # told apart in the tables and plots by the contender's name
            results = [
                replace(r, contender=f"{r.contender} (pool)") for r in results if r.contender != "direct"
            ]
        summary = summarise(results, mode="offline", model="scripted (offline)", label=OFFLINE_LABEL)
        print(table(summary), flush=True)
        figures["summary"] += summary
        figures["tasks"] += [r.to_json() for r in results]
    return figures


def run_parts(
    names: list[str],
    bench_dir: Path,
    results: Path,
    *,
    quick: bool = False,
    say: Callable[[str], None] = print,
) -> bool:
    """Run the parts in order, each writing `<results>/<name>.json`; False if any failed (the rest run)."""
    results.mkdir(parents=True, exist_ok=True)
    machine = describe()
    ok = True
    progress = bar(len(names), "rlm bench")
    try:
        for name in names:
            progress.set_postfix_str(name)
            what = PARTS[name].help if name in PARTS else "OOLONG-Pairs offline (platform overhead)"
            say(f"== {name}: {what}")
            started = time.monotonic()
            try:
                if name == "oolong":
                    figures = _oolong(quick)
                else:
                    module = _load(bench_dir, PARTS[name].module)
                    figures = asyncio.run(module.measure(quick=quick))
            except Exception:  # one part's failure is reported, and the others still run
                ok = False
                say(f"{name} failed:\n{traceback.format_exc()}")
                progress.update()
                continue
            took = time.monotonic() - started
            figures = {
                **figures,
                "machine": machine,
                "measured_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "took_s": round(took, 1),
                "quick": quick,
            }
            path = results / f"{name}.json"
            path.write_text(json.dumps(figures, indent=1) + "\n")
            say(f"{name}: {took:.0f} s, wrote {path}")
            progress.update()
    finally:
        progress.close()
    return ok


def draw(results: Path, say: Callable[[str], None] = print) -> list[Path]:
    """The PNG plots and summary.md from the results' JSON; the files written."""
    from .plots import draw_all

    written = draw_all(results, say)
    for path in written:
        say(f"wrote {path}")
    return written
