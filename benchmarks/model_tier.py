"""The real-model tier: fixed questions with known answers, each a real `rlm run`, against a real model.

    python benchmarks/model_tier.py [--base-url URL --model M] [--only ID]... [--record DIR]
                                    [--max-iterations 8] [--timeout 300]

With no --base-url it starts the local model (`rlm local-model start`: llama.cpp serving
Qwen2.5-Coder-1.5B-Instruct, set up on first use) and stops it at the end if it started it. Questions
go over examples/sample_context and over a context generated with planted facts
(benchmarks/facts_context.py); each answer is scored by its own checker (a number among the answer's
numbers, or a phrase in it). Prints the score and the time per question; writes
benchmarks/results/model_tier.json and each run's full trajectory beside it. `--record DIR` also
writes, per question, the model's replies as they came (tests/data/model_replies/ keeps them for
the parsing tests). Not part of `make test`: it needs the model and takes minutes (`make test-model`).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from facts_context import Facts, generate

ROOT = Path(__file__).resolve().parent.parent
RLM = [sys.executable, "-m", "orchestrator.cli"]
SAMPLE = ROOT / "examples" / "sample_context"
RESULTS = ROOT / "benchmarks" / "results"

# Bounds for one run: a small model that never stops writing, or never calls FINAL, ends in time.
SETTINGS = """\
[run]
max_iterations = {max_iterations}
deadline_s = {deadline}
# A reply of code needs far fewer; 1,024 tokens end within the request timeout at 10 tokens/s.
max_completion_tokens = 1024
# A cell's output goes back to the model as prompt, read at about 130 tokens/s here (4 to 6 times
# slower on a busy machine): 20,000 characters (the default cap) cost 40 s to minutes per block.
max_output_chars = 4000
# An answer that says nothing was found ("0 lines ...", "No WARN lines found", "The runbook does not
# mention 'upstream 502'") is sent back once: the model counts with code that finds nothing (a loop
# over a str's characters, a pattern in the wrong case) and believes the 0. (check_unread_answers
# stays off: it sent back a right count of files computed from list_files().)
check_empty_answers = true
# The model goes on to write the output of its code itself ("Output of block 3:" and made-up lines):
# root replies are asked with a stop sequence there.
stop_at_imagined_output = true

[endpoints.default]
request_timeout_s = {request_timeout}
max_retries = 1
# llama.cpp's server stops generating a reply when its client leaves only when it streams: without,
# a reply the request timeout gave up on goes on, and the retry (and the next question) waits.
stream = true
# The model can fall into writing one block and its explanation over and over until max_tokens (950
# tokens, 70 to 90 s a reply here): such a reply is read no further than one turn of its loop.
stop_repeating = true
"""


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    context: str  # "sample" or "facts"
    query: str
    expected: str  # shown in the report
    check: Callable[[str], bool]


def number(expected: int) -> Callable[[str], bool]:
    """The answer holds `expected` among its numbers (thousands separators allowed)."""

    def check(answer: str) -> bool:
        found = re.findall(r"-?\d[\d,]*(?:\.\d+)?", answer)
        values = set()
        for text in found:
            with_commas = text.replace(",", "")
            try:
                values.add(float(with_commas))
            except ValueError:
                continue
        return float(expected) in values

    return check


def phrase(*options: str) -> Callable[[str], bool]:
    """The answer holds one of the phrases (case and spacing ignored)."""

    def norm(text: str) -> str:
        return re.sub(r"\s+", " ", text.lower())

    return lambda answer: any(norm(o) in norm(answer) for o in options)


def sample_counts() -> dict[str, int]:
    """Figures of examples/sample_context, counted here so the expected answers follow the data."""
    logs = sorted((SAMPLE / "logs").glob("*.log"))
    lines = [line for p in logs for line in p.read_text().splitlines()]
    day2 = (SAMPLE / "logs" / "app-2026-11-02.log").read_text().splitlines()
    return {
        "files": sum(1 for p in SAMPLE.rglob("*") if p.is_file()),
        "log_files": len(logs),
        "errors": sum(1 for line in lines if line.split()[1] == "ERROR"),
        "card_declined": sum(1 for line in lines if "card declined" in line),
        "warn_02": sum(1 for line in day2 if line.split()[1] == "WARN"),
    }


def questions(facts: Facts) -> list[Question]:
    s, f = sample_counts(), facts
    table: list[tuple[str, str, str, str | int]] = [
        ("sample-errors", "sample", "How many log lines have the level ERROR, over all the log files?",
         s["errors"]),
        ("sample-runbook", "sample", "What does the runbook say to do about an 'upstream 502'?",
         "health check"),
        ("sample-log-files", "sample", "How many .log files does the context hold?", s["log_files"]),
        ("sample-card-declined", "sample",
         "How many log lines, over all the log files, contain 'card declined'?", s["card_declined"]),
        ("sample-warn-day2", "sample", "How many WARN lines are in logs/app-2026-11-02.log?", s["warn_02"]),
        ("facts-access-code", "facts", "What is the vault access code written in the meeting notes?",
         f.access_code),
        ("facts-city", "facts", f"In which city does {f.person} live, according to the staff list?",
         f.person_city),
        ("facts-order-files", "facts", "How many files are in the orders directory?", f.order_files),
        ("facts-march-total", "facts", "What is the sum of the amount column in orders/2026-03.csv?",
         f.march_total),
        ("facts-cache-port", "facts", "Which port is set for the cache service in config/services.ini?",
         f.cache_port),
        ("facts-error-lines", "facts",
         f"How many lines of logs/server.log contain the error code {f.error_code}?", f.error_lines),
        ("facts-staff", "facts", "How many people are listed in people/staff.csv (rows after the header)?",
         f.staff_count),
    ]  # fmt: skip
    return [
        Question(qid, ctx, query, str(want), number(want) if isinstance(want, int) else phrase(want))
        for qid, ctx, query, want in table
    ]


def local_model_status(flags: list[str]) -> dict[str, Any]:
    command = [*RLM, "local-model", "status", "--json", *flags]
    out = subprocess.run(command, capture_output=True, text=True)
    return json.loads(out.stdout) if out.stdout.strip() else {}


def start_local_model(flags: list[str]) -> tuple[str, str, bool]:
    """The local model's base URL and model id, and whether this call started it."""
    was_running = local_model_status(flags).get("answering", False)
    out = subprocess.run([*RLM, "local-model", "start", *flags], stdout=subprocess.PIPE, text=True)
    if out.returncode != 0:
        sys.exit(f"model_tier: the local model did not start (exit {out.returncode})")
    assignments = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    url = shlex.split(assignments["OPENAI_BASE_URL"])[0]
    model = shlex.split(assignments["RLM_LOCAL_MODEL"])[0]
    return url, model, not was_running


def slim(trajectory: dict[str, Any]) -> list[dict[str, Any]]:
    """Every reply the model wrote, with what its code printed (cut), for the parsing tests."""
    out = []
    for it in trajectory.get("iterations", []):
        out.append(
            {
                "index": it["index"],
                "depth": it["depth"],
                "reply": it["reply"],
                "completion_tokens": it["completion_tokens"],
                "model_s": round(it["model_s"], 2),
                "cells": [
                    {
                        "status": c["status"],
                        "output": (c["stdout"] + (c["error"] or ""))[:1500],
                        "final": c["final"],
                    }
                    for c in it["cells"]
                ],
            }
        )
    return out


def run_one(
    q: Question, context: Path, url: str, model: str, config: Path, timeout: float, trajectories: Path
) -> dict[str, Any]:
    trajectory = trajectories / f"{q.id}.json"
    trajectory.unlink(missing_ok=True)
    command = [
        *RLM, "run", "--context", str(context), "--query", q.query, "--base-url", url, "--model", model,
        "--config", str(config), "--json", "--trajectory", str(trajectory),
    ]  # fmt: skip
    started = time.monotonic()
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        result = json.loads(out.stdout) if out.stdout.strip() else {}
        error = None if result else (out.stderr.strip().splitlines() or ["no output"])[-1]
    except subprocess.TimeoutExpired:
        result, error = {}, f"killed after {timeout:.0f} s"
    seconds = time.monotonic() - started
    answer = result.get("answer") or ""
    meta = result.get("metadata") or {}
    traj = result.get("trajectory") or {}
    return {
        "id": q.id,
        "context": q.context,
        "query": q.query,
        "expected": q.expected,
        "answer": answer,
        "correct": bool(answer) and q.check(answer),
        "status": result.get("status", "error"),
        "error": error or traj.get("error"),
        "iterations": meta.get("iterations"),
        "completion_tokens": meta.get("completion_tokens"),
        "prompt_tokens": meta.get("prompt_tokens"),
        "seconds": round(seconds, 1),
        "replies": slim(traj),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="an OpenAI-compatible endpoint; default: the local model")
    parser.add_argument("--model", help="the model name (with --base-url)")
    parser.add_argument("--only", action="append", default=[], metavar="ID", help="run these questions only")
    parser.add_argument("--record", metavar="DIR", help="write each question's replies as JSON into DIR")
    parser.add_argument("--max-iterations", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=300, help="seconds per question before it is killed")
    parser.add_argument("--out", default=str(RESULTS / "model_tier.json"))
    parser.add_argument(
        "--local-model-args", default="", help="flags for rlm local-model start, e.g. '--temperature 0.5'"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rlm-tier-") as tmp:
        facts_dir = Path(tmp) / "facts"
        facts = generate(facts_dir)
        config = Path(tmp) / "settings.toml"
        config.write_text(
            SETTINGS.format(
                max_iterations=args.max_iterations,
                deadline=max(60.0, args.timeout - 20),
                request_timeout=min(120.0, args.timeout / 2),
            )
        )
        chosen = [q for q in questions(facts) if not args.only or q.id in args.only]
        if args.base_url:
            url, model, started = args.base_url, args.model or "gpt-4o-mini", False
        else:
            url, model, started = start_local_model(shlex.split(args.local_model_args))
        server = local_model_status(shlex.split(args.local_model_args)) if not args.base_url else {}
        trajectories = Path(args.out).with_suffix("")
        trajectories.mkdir(parents=True, exist_ok=True)
        rows = []
        began = time.monotonic()
        try:
            for n, q in enumerate(chosen, 1):
                context = SAMPLE if q.context == "sample" else facts_dir
                row = run_one(q, context, url, model, config, args.timeout, trajectories)
                rows.append(row)
                mark = "ok  " if row["correct"] else "FAIL"
                print(
                    f"{mark} {n:2}/{len(chosen)} {q.id:22} {row['seconds']:6.1f} s "
                    f"{row['iterations'] or 0:2} it  {row['status']:14} "
                    f"expected {q.expected!r:10} got {row['answer'][:70]!r}",
                    flush=True,
                )
                if args.record:
                    record = Path(args.record)
                    record.mkdir(parents=True, exist_ok=True)
                    meta = {"model": model, "server_temperature": server.get("temperature")}
                    (record / f"{q.id}.json").write_text(
                        json.dumps({**meta, **row}, indent=1, ensure_ascii=False) + "\n"
                    )
        finally:
            if started:
                subprocess.run(
                    [*RLM, "local-model", "stop", *shlex.split(args.local_model_args)], check=False
                )
    correct = sum(r["correct"] for r in rows)
    times = [r["seconds"] for r in rows]
    summary = {
        "model": model,
        "base_url": url,
        "server": {k: server.get(k) for k in ("model_path", "n_ctx", "temperature", "max_tokens")},
        "score": correct,
        "questions": len(rows),
        "total_s": round(time.monotonic() - began, 1),
        "max_s": max(times, default=0),
        "mean_s": round(sum(times) / max(len(times), 1), 1),
        "results": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    print(
        f"score {correct}/{len(rows)} · {summary['total_s']:.0f} s in all · per question mean "
        f"{summary['mean_s']:.0f} s, max {summary['max_s']:.0f} s · model {model} · wrote {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
