"""OOLONG-Pairs: the generator (deterministic, right gold sets), the scorer, the scripted model's programs."""

from __future__ import annotations

import datetime as dt
import json
import re
from itertools import combinations
from pathlib import Path

import pytest

from orchestrator.bench import oolong
from orchestrator.bench.oolong_harness import busy_seconds, summarise
from orchestrator.bench.oolong_model import OfflineModel, label_reply, root_program
from orchestrator.bench.oolong_questions import LABELS, QuestionFileError, read_trec, template_questions
from orchestrator.bench.scripted_server import Seen

D = dt.date

# The 20 conditions, written again from the paper's table (../shared/OOLONG_PAIRS.md), in terms of
# per-user counts `n[label]` and dates `days[label]`: an independent statement of each task.
NUM, LOC, ENT, HUM, DESC, ABBR = (
    "numeric value",
    "location",
    "entity",
    "human being",
    "description and abstract concept",
    "abbreviation",
)


def _all_after(days: dict[str, list[D]], label: str, day: D) -> bool:
    return all(d > day for d in days.get(label, []))


def _all_before(days: dict[str, list[D]], label: str, day: D) -> bool:
    return all(d < day for d in days.get(label, []))


BOTH = {
    1: lambda n, d: n[NUM] + n[LOC] >= 1,
    2: lambda n, d: n[ENT] + n[HUM] >= 1,
    3: lambda n, d: n[DESC] + n[ABBR] >= 1,
    4: lambda n, d: n[HUM] + n[LOC] >= 1 and _all_after(d, HUM, D(2023, 1, 6)),
    5: lambda n, d: n[ENT] + n[NUM] >= 1 and _all_before(d, ENT, D(2023, 3, 15)),
    6: lambda n, d: n[LOC] + n[ABBR] >= 1,
    7: lambda n, d: n[DESC] + n[NUM] >= 1 and _all_after(d, NUM, D(2023, 2, 1)),
    8: lambda n, d: n[HUM] + n[DESC] >= 1,
    9: lambda n, d: n[ENT] + n[LOC] >= 1 and _all_after(d, LOC, D(2023, 4, 10)),
    10: lambda n, d: n[NUM] + n[ABBR] >= 1 and _all_before(d, ABBR, D(2023, 5, 20)),
}
ONE_EACH = {
    11: (lambda n: n[ENT] >= 1 and n[ABBR] >= 1, lambda n: n[ENT] == 1),
    12: (lambda n: n[NUM] >= 2, lambda n: n[LOC] >= 1 and n[HUM] >= 1),
    13: (lambda n: n[DESC] == 1, lambda n: n[ABBR] >= 1 and n[ENT] >= 1),
    14: (lambda n: n[HUM] >= 1 and n[NUM] >= 1, lambda n: n[LOC] == 2),
    15: (lambda n: n[ENT] >= 1 and n[LOC] >= 1 and n[ABBR] >= 1, lambda n: n[NUM] == 1),
    16: (lambda n: n[DESC] >= 1 and n[HUM] >= 1, lambda n: n[ENT] >= 2 and n[ABBR] == 1),
    17: (lambda n: n[NUM] == 1, lambda n: n[LOC] >= 1 and n[DESC] >= 1),
    18: (lambda n: n[ABBR] >= 1 and n[HUM] == 1, lambda n: n[ENT] >= 1 and n[NUM] >= 1),
    19: (lambda n: n[LOC] >= 2 and n[ENT] >= 1, lambda n: n[DESC] == 1 and n[ABBR] == 1),
    20: (lambda n: n[NUM] >= 1 and n[HUM] >= 1, lambda n: n[LOC] >= 1 and n[ENT] >= 1 and n[ABBR] == 1),
}
LINE = re.compile(r"^Date: (\w{3}) (\d{1,2}), (\d{4}) \|\| User: (\d+) \|\| Instance: (.+)$")


def brute_force(context: str, number: int) -> set[tuple[int, int]]:
    """The gold set from the rendered lines alone, every pair of users tried."""
    label_of = {q: label for label, qs in template_questions().items() for q in qs}
    counts: dict[int, dict[str, int]] = {}
    days: dict[int, dict[str, list[D]]] = {}
    for line in context.splitlines():
        m = LINE.match(line)
        assert m, line
        day = dt.datetime.strptime(f"{m[1]} {m[2]} {m[3]}", "%b %d %Y").date()
        user, label = int(m[4]), label_of[m[5]]
        counts.setdefault(user, dict.fromkeys(LABELS, 0))[label] += 1
        days.setdefault(user, {}).setdefault(label, []).append(day)
    found = set()
    for u, v in combinations(sorted(counts), 2):
        if number in BOTH:
            ok = BOTH[number](counts[u], days[u]) and BOTH[number](counts[v], days[v])
        else:
            a, b = ONE_EACH[number]
            ok = (a(counts[u]) and b(counts[v])) or (a(counts[v]) and b(counts[u]))
        if ok:
            found.add((u, v))
    return found


@pytest.mark.parametrize("size", [100, 200, 500])
def test_gold_sets_match_a_brute_force_over_the_lines(size: int) -> None:
    """Every task's gold set equals an independent computation over the rendered context."""
    tasks = oolong.generate(size, seed=11)
    assert [t.number for t in tasks] == list(range(1, 21))
    for task in tasks:
        assert set(task.gold) == brute_force(task.context, task.number), task.number
    assert sum(len(t.gold) for t in tasks) > 0


def test_the_generator_is_deterministic_for_a_seed() -> None:
    """The same seed and size give the same lines and gold; another seed gives other lines."""
    a, b = oolong.generate(200, seed=3), oolong.generate(200, seed=3)
    assert [(t.context, t.gold, t.question) for t in a] == [(t.context, t.gold, t.question) for t in b]
    assert oolong.generate(200, seed=4)[0].context != a[0].context


def test_lines_follow_the_paper_and_hide_the_label() -> None:
    """One line per entry in the paper's format, dates in 2023, user ids repeating, no label written."""
    task = oolong.generate(100, seed=0)[0]
    lines = task.context.splitlines()
    assert len(lines) == 100
    assert all(LINE.match(line) and ", 2023 ||" in line for line in lines)
    users = [int(LINE.match(line)[4]) for line in lines]  # type: ignore[index]
    assert len(set(users)) < len(users)
    for line in lines:
        question = line.split("Instance: ", 1)[1]
        assert not any(label in question.lower() for label in ("numeric value", "human being", "location"))


def test_a_question_has_one_label_and_labels_need_meaning() -> None:
    """No question is made under two labels; some questions of different labels share their opening."""
    pool = template_questions()
    seen: dict[str, str] = {}
    for label, questions in pool.items():
        for q in questions:
            assert seen.setdefault(q, label) == label, q
    assert set(pool) == set(LABELS)
    openings = {label: {" ".join(q.split()[:3]) for q in qs} for label, qs in pool.items()}
    assert openings["location"] & openings["numeric value"]  # "What is the ..." for both


def test_question_wording_is_the_papers() -> None:
    """The question holds the paper's fixed wording, the condition, and the six labels."""
    q = oolong.generate(100, seed=0)[3].question
    assert q.startswith(
        "In the above data, list all pairs of user IDs (no duplicate pairs, list lower ID first)"
    )
    assert "human being or location" in q and "after January 6, 2023" in q
    assert q.endswith("list all pairs in the format (user_id_1, user_id_2), separated by newlines.")


def test_token_length_gives_a_size() -> None:
    """A token length becomes the number of entries whose lines come to about that many tokens (chars/4)."""
    size = oolong.size_for_tokens(32_000, seed=0)
    chars = len(oolong.generate(size, seed=0, numbers=[1])[0].context)
    assert abs(chars / 4 - 32_000) < 32_000 * 0.05


def test_trec_questions_file(tmp_path: Path) -> None:
    """TREC's LABEL:fine lines give questions by coarse label; the tasks draw from them."""
    path = tmp_path / "trec.txt"
    path.write_bytes(
        b"LOC:city Where is Glasgow ?\nNUM:date When did the war end ?\n\n"
        b"ABBR:exp What does NASA stand for ?\nHUM:ind Who wrote Hamlet ?\n"
        b"ENTY:animal What is the fastest fish ?\nDESC:def What is caf\xe9 au lait ?\n"
    )
    questions = read_trec(path)
    assert questions["location"] == ["Where is Glasgow ?"]
    assert questions["description and abstract concept"] == ["What is caf\u00e9 au lait ?"]
    task = oolong.generate(50, seed=1, questions=questions)[0]
    assert {e.question for e in task.entries} <= {q for qs in questions.values() for q in qs}
    (tmp_path / "bad.txt").write_text("Where is Glasgow ?\n")
    with pytest.raises(QuestionFileError, match=r"bad\.txt:1"):
        read_trec(tmp_path / "bad.txt")


@pytest.mark.parametrize(
    ("answer", "gold", "expected"),
    [
        ("", set(), (1.0, 1.0, 1.0)),  # empty gold, empty answer: perfect
        ("(1, 2)", set(), (0.0, 0.0, 0.0)),  # empty gold, something answered
        ("", {(1, 2)}, (0.0, 0.0, 0.0)),  # empty answer
        (None, {(1, 2)}, (0.0, 0.0, 0.0)),  # no answer at all
        ("(1, 2)\n(1, 2)\n(2, 1)", {(1, 2)}, (1.0, 1.0, 1.0)),  # duplicates and a reversed pair count once
        ("(2, 1)\n(3,4)\n(5, 6)", {(1, 2), (3, 4), (7, 8), (9, 10)}, (2 / 3, 0.5, 4 / 7)),
    ],
)
def test_scorer(answer: str | None, gold: set[tuple[int, int]], expected: tuple[float, float, float]) -> None:
    """Precision, recall and F1 of the extracted, normalised, deduplicated pairs."""
    s = oolong.score(answer, frozenset(gold))
    assert (s.precision, s.recall, s.f1) == pytest.approx(expected)


def test_parse_pairs_normalises() -> None:
    """Every `a, b` is taken, lower first, whatever surrounds it."""
    assert oolong.parse_pairs("pairs: (98779, 12345), [5,3]\n7, 7") == {(12345, 98779), (3, 5), (7, 7)}


def test_busy_seconds_counts_overlaps_once() -> None:
    """Overlapping model requests count once; those before the task's start not at all."""
    assert busy_seconds(
        [(0.0, 5.0), (10.0, 12.0), (11.0, 13.0), (12.5, 12.6), (14.0, 15.0)], 9.0
    ) == pytest.approx(4.0)


def test_summary_averages_per_size_and_contender() -> None:
    """One object per size and contender, F1 averaged over its tasks, with the common fields."""
    from orchestrator.bench.oolong_harness import TaskResult

    def r(size: int, c: str, f1: float, plat: float) -> TaskResult:
        return TaskResult(1, size, c, "completed", f1, f1, f1, 1, 1, plat + 1, 1.0, plat, 10, 5, None)

    out = summarise([r(100, "rlm", 1.0, 0.2), r(100, "rlm", 0.5, 0.4), r(200, "rlm", 1.0, 0.3)], mode="x")
    assert [(o["size"], o["contender"], o["tasks"]) for o in out] == [(100, "rlm", 2), (200, "rlm", 1)]
    assert out[0]["f1"] == pytest.approx(0.75) and out[0]["platform_s"] == pytest.approx(0.3)
    assert out[0]["mode"] == "x" and out[0]["tokens"] == 15


def _run_program(code: str, context: str, model: OfflineModel) -> str:
    """Run a scripted program in this process, with llm_query_batched answered by the model's rule."""
    final: dict[str, str] = {}

    def batched(prompts: list[str]) -> list[str]:
        return [label_reply(p, model.labels) for p in prompts]

    namespace = {
        "context": context,
        "llm_query_batched": batched,
        "FINAL_VAR": lambda name: final.update(a=name),
    }
    exec(compile(code, "<program>", "exec"), namespace)
    return str(namespace[final["a"]])


@pytest.mark.parametrize("contender", ["rlm", "rlm-no-subcalls"])
def test_scripted_programs_are_right(contender: str) -> None:
    """The offline model's programs give the gold set of every task (the harness's F1 of 1.0)."""
    model = OfflineModel()
    for task in oolong.generate(200, seed=5):
        model.set_task(task, contender)
        answer = _run_program(root_program(task, contender), task.context, model)
        assert oolong.parse_pairs(answer) == task.gold, task.number


def test_scripted_model_answers_a_direct_call() -> None:
    """Asked directly with the whole list, the scripted model answers the gold pairs."""
    model = OfflineModel()
    task = oolong.generate(100, seed=2)[11]
    model.set_task(task, "direct")
    body = {"messages": [{"role": "user", "content": task.context + "\n" + task.question}]}
    reply = model(Seen(body, {}, 0.0), 0)
    assert oolong.parse_pairs(str(reply)) == task.gold
    assert json.dumps(body)  # a plain request body


def test_direct_prompt_is_cut_to_the_window_by_whole_lines() -> None:
    """A list too long for the window loses whole lines from its end; the question stays whole."""
    from orchestrator.bench.oolong_harness import Harness
    from orchestrator.config import RLMConfig

    task = oolong.generate(500, seed=1, numbers=[1])[0]
    small = Harness(
        None, None, RLMConfig(max_completion_tokens=512), model_time=lambda _s: 0.0, window_tokens=4000
    )  # type: ignore[arg-type]
    prompt, kept = small.direct_prompt(task)
    assert 0 < kept < 500 and prompt.endswith(task.question)
    assert prompt.splitlines()[:kept] == task.context.splitlines()[:kept]
    assert len(prompt) <= (4000 - 512) * oolong.CHARS_PER_TOKEN
    wide = Harness(None, None, RLMConfig(), model_time=lambda _s: 0.0)  # type: ignore[arg-type]
    assert wide.direct_prompt(task)[1] == 500
