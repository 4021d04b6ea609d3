"""OOLONG-Pairs (the RLM paper's benchmark, section 3.1): tasks generated as the paper builds them, and
the paper's scorer.

    tasks = generate(size=500, seed=7)          # the 20 tasks over one list of 500 entries
    tasks[0].context                            # "Date: Jun 16, 2023 || User: 98779 || Instance: ..."
    tasks[0].question, tasks[0].gold            # the paper's wording; the exact gold pair set
    score(answer_text, tasks[0].gold)           # Score(precision, recall, f1, ...)

One list of entries (a date in 2023, a user id that repeats, a question whose coarse label is hidden)
serves the 20 pair conditions of the paper (`CONDITIONS`): tasks 1-10 ask for pairs of users who both
satisfy a predicate, tasks 11-20 for pairs where one user meets A and the other B. Labels must be
inferred from meaning (oolong_questions.py). Everything is decided by the seed.

The points the paper leaves open, decided here (README, "OOLONG-Pairs"):
- "all instances of label X after/before D" holds for a user with no instance of X (vacuous truth, as
  a public loader of the data does); "after Jan 6" is strictly after that day, "before" strictly before.
- a user never pairs with itself: pairs are of two distinct ids, lower first.
- scoring: 0/0 counts as 0, except that an empty answer to an empty gold set is a perfect 1.
- entries: a user id is drawn for each entry from ceil(size / 4) distinct 5-digit ids, the label
  uniformly from the six (so every condition has users), the date uniformly over 2023; a token length
  is turned into a size with a chars / 4 estimate of the rendered lines.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

from .oolong_questions import (
    ABBREVIATION,
    DESCRIPTION,
    ENTITY,
    HUMAN,
    LABELS,
    LOCATION,
    NUMERIC,
    template_questions,
)

YEAR = 2023
ENTRIES_PER_USER = 4  # the mean: users are ceil(size / 4)
SIZES = (100, 200, 500)
CHARS_PER_TOKEN = 4  # the estimate behind --tokens and the direct call's cut


@dataclass(frozen=True, slots=True)
class Entry:
    date: dt.date
    user: int
    question: str
    label: str  # hidden: never written in the line

    def line(self) -> str:
        d = self.date
        return f"Date: {d:%b} {d.day}, {d.year} || User: {self.user} || Instance: {self.question}"


# A clause of a condition, about one user: (kind, label, value)
#   ("min", L, n): at least n instances of L      ("eq", L, n): exactly n instances of L
#   ("any", (L1, L2), 1): at least one of L1 or L2
#   ("after", L, date) / ("before", L, date): every instance of L strictly after / before the date
Clause = tuple[str, object, object]


@dataclass(frozen=True, slots=True)
class Condition:
    number: int
    a: tuple[Clause, ...]  # tasks 1-10: both users; 11-20: one user
    b: tuple[Clause, ...] = ()  # tasks 11-20: the other user

    @property
    def both(self) -> bool:
        return not self.b


def _d(month: int, day: int) -> dt.date:
    return dt.date(YEAR, month, day)


def _any(x: str, y: str) -> Clause:
    return ("any", (x, y), 1)


CONDITIONS: tuple[Condition, ...] = (
    Condition(1, (_any(NUMERIC, LOCATION),)),
    Condition(2, (_any(ENTITY, HUMAN),)),
    Condition(3, (_any(DESCRIPTION, ABBREVIATION),)),
    Condition(4, (_any(HUMAN, LOCATION), ("after", HUMAN, _d(1, 6)))),
    Condition(5, (_any(ENTITY, NUMERIC), ("before", ENTITY, _d(3, 15)))),
    Condition(6, (_any(LOCATION, ABBREVIATION),)),
    Condition(7, (_any(DESCRIPTION, NUMERIC), ("after", NUMERIC, _d(2, 1)))),
    Condition(8, (_any(HUMAN, DESCRIPTION),)),
    Condition(9, (_any(ENTITY, LOCATION), ("after", LOCATION, _d(4, 10)))),
    Condition(10, (_any(NUMERIC, ABBREVIATION), ("before", ABBREVIATION, _d(5, 20)))),
    Condition(11, (("min", ENTITY, 1), ("min", ABBREVIATION, 1)), (("eq", ENTITY, 1),)),
    Condition(12, (("min", NUMERIC, 2),), (("min", LOCATION, 1), ("min", HUMAN, 1))),
    Condition(13, (("eq", DESCRIPTION, 1),), (("min", ABBREVIATION, 1), ("min", ENTITY, 1))),
    Condition(14, (("min", HUMAN, 1), ("min", NUMERIC, 1)), (("eq", LOCATION, 2),)),
    Condition(
        15, (("min", ENTITY, 1), ("min", LOCATION, 1), ("min", ABBREVIATION, 1)), (("eq", NUMERIC, 1),)
    ),
    Condition(
        16, (("min", DESCRIPTION, 1), ("min", HUMAN, 1)), (("min", ENTITY, 2), ("eq", ABBREVIATION, 1))
    ),
    Condition(17, (("eq", NUMERIC, 1),), (("min", LOCATION, 1), ("min", DESCRIPTION, 1))),
    Condition(18, (("min", ABBREVIATION, 1), ("eq", HUMAN, 1)), (("min", ENTITY, 1), ("min", NUMERIC, 1))),
    Condition(
        19, (("min", LOCATION, 2), ("min", ENTITY, 1)), (("eq", DESCRIPTION, 1), ("eq", ABBREVIATION, 1))
    ),
    Condition(
        20,
        (("min", NUMERIC, 1), ("min", HUMAN, 1)),
        (("min", LOCATION, 1), ("min", ENTITY, 1), ("eq", ABBREVIATION, 1)),
    ),
)


def _say_date(date: object) -> str:
    assert isinstance(date, dt.date)
    return f"{date:%B} {date.day}, {date.year}"


def _say_clause(clause: Clause, whose: str) -> str:
    kind, label, value = clause
    if kind == "any":
        assert isinstance(label, tuple)
        return f"at least one instance with a {label[0]} or {label[1]}"
    if kind == "min":
        return f"at least {_count(value)} with {label}"
    if kind == "eq":
        return f"exactly {_count(value)} with {label}"
    when = "after" if kind == "after" else "before"
    return f"all instances that are a {label} for {whose} must be {when} {_say_date(value)}"


def _count(n: object) -> str:
    return {1: "one instance", 2: "two instances"}.get(n, f"{n} instances")  # type: ignore[call-overload]


def condition_text(condition: Condition) -> str:
    """The condition in words, as the question puts it."""
    if condition.both:
        ours = [c for c in condition.a if c[0] not in ("after", "before")]
        dated = [c for c in condition.a if c[0] in ("after", "before")]
        text = "where both users have " + " and ".join(_say_clause(c, "both users") for c in ours)
        for clause in dated:
            text += ", and " + _say_clause(clause, "both users")
        return text
    a = " and ".join(_say_clause(c, "") for c in condition.a)
    b = " and ".join(_say_clause(c, "") for c in condition.b)
    return f"such that one user has {a}, and the other user has {b}"


QUESTION = (
    "In the above data, list all pairs of user IDs (no duplicate pairs, list lower ID first) {condition}. "
    "Each of the questions can be labelled as one of the labels (the data does not provide the labels, "
    "you need to figure out the label from the semantics of the question): {labels}. In your answer, "
    "list all pairs in the format (user_id_1, user_id_2), separated by newlines."
)


def question_for(condition: Condition) -> str:
    return QUESTION.format(condition=condition_text(condition), labels=", ".join(LABELS))


@dataclass(frozen=True, slots=True)
class Task:
    number: int  # the condition's, 1-20
    size: int  # entries
    seed: int
    entries: tuple[Entry, ...]
    condition: Condition
    question: str
    gold: frozenset[tuple[int, int]]

    @property
    def context(self) -> str:
        return "\n".join(e.line() for e in self.entries) + "\n"

    @property
    def id(self) -> str:
        return f"oolong-pairs-{self.size}-s{self.seed}-t{self.number}"


def entries(size: int, seed: int, questions: Mapping[str, Sequence[str]] | None = None) -> tuple[Entry, ...]:
    """`size` entries, decided by `seed`: label uniform over those with questions, then a question of it,
    a user among ceil(size / 4) distinct 5-digit ids, a day of 2023."""
    if size < 1:
        raise ValueError(f"the size must be at least 1 entry, got {size}")
    pool = questions if questions is not None else template_questions()
    labels = [label for label in LABELS if pool.get(label)]
    if not labels:
        raise ValueError("no questions to draw from")
    rng = random.Random(f"oolong-pairs/{seed}/{size}")
    users = rng.sample(range(10_000, 100_000), max(2, math.ceil(size / ENTRIES_PER_USER)))
    start = dt.date(YEAR, 1, 1)
    days = (dt.date(YEAR + 1, 1, 1) - start).days
    made = []
    for _ in range(size):
        label = rng.choice(labels)
        made.append(
            Entry(
                start + dt.timedelta(rng.randrange(days)), rng.choice(users), rng.choice(pool[label]), label
            )
        )
    return tuple(made)


def size_for_tokens(tokens: int, seed: int, questions: Mapping[str, Sequence[str]] | None = None) -> int:
    """The number of entries whose rendered lines come to about `tokens` (chars / 4)."""
    sample = entries(400, seed, questions)
    per_line = sum(len(e.line()) + 1 for e in sample) / len(sample) / CHARS_PER_TOKEN
    return max(1, round(tokens / per_line))


def user_labels(rows: Iterable[Entry]) -> dict[int, list[tuple[str, dt.date]]]:
    """Each user's (label, date) instances."""
    by_user: dict[int, list[tuple[str, dt.date]]] = {}
    for e in rows:
        by_user.setdefault(e.user, []).append((e.label, e.date))
    return by_user


def holds(clauses: Sequence[Clause], instances: Sequence[tuple[str, dt.date]]) -> bool:
    """Whether one user's instances satisfy every clause."""
    for kind, label, value in clauses:
        if kind == "any":
            ok = any(lab in label for lab, _ in instances)  # type: ignore[operator]
        elif kind in ("min", "eq"):
            n = sum(1 for lab, _ in instances if lab == label)
            ok = n >= value if kind == "min" else n == value  # type: ignore[operator]
        elif kind == "after":
            ok = all(d > value for lab, d in instances if lab == label)  # type: ignore[operator]
        elif kind == "before":
            ok = all(d < value for lab, d in instances if lab == label)  # type: ignore[operator]
        else:
            raise ValueError(f"unknown clause {kind!r}")
        if not ok:
            return False
    return True


def gold_pairs(condition: Condition, rows: Iterable[Entry]) -> frozenset[tuple[int, int]]:
    """The exact answer: pairs (lower id, higher id) of distinct users meeting the condition."""
    by_user = user_labels(rows)
    a = {u for u, inst in by_user.items() if holds(condition.a, inst)}
    if condition.both:
        return frozenset(combinations(sorted(a), 2))
    b = {u for u, inst in by_user.items() if holds(condition.b, inst)}
    return frozenset((min(x, y), max(x, y)) for x in a for y in b if x != y)


def generate(
    size: int,
    seed: int = 0,
    *,
    questions: Mapping[str, Sequence[str]] | None = None,
    numbers: Sequence[int] | None = None,
) -> list[Task]:
    """The tasks (all 20, or those `numbers` names) over one list of `size` entries."""
    rows = entries(size, seed, questions)
    chosen = [c for c in CONDITIONS if numbers is None or c.number in numbers]
    return [Task(c.number, size, seed, rows, c, question_for(c), gold_pairs(c, rows)) for c in chosen]


PAIR = re.compile(r"(\d+),\s*(\d+)")


def parse_pairs(answer: str | None) -> frozenset[tuple[int, int]]:
    """Every `a, b` pair in the answer, as (lower, higher), without duplicates (the paper's extraction)."""
    found = set()
    for x, y in PAIR.findall(answer or ""):
        a, b = int(x), int(y)
        found.add((min(a, b), max(a, b)))
    return frozenset(found)


@dataclass(frozen=True, slots=True)
class Score:
    precision: float
    recall: float
    f1: float
    predicted: int
    gold: int
    correct: int


def score(answer: str | None, gold: frozenset[tuple[int, int]]) -> Score:
    """Precision, recall and F1 of the answer's pairs against the gold set (0/0 is 0; empty vs empty is 1)."""
    predicted = parse_pairs(answer)
    if not predicted and not gold:
        return Score(1.0, 1.0, 1.0, 0, 0, 0)
    correct = len(predicted & gold)
    precision = correct / len(predicted) if predicted else 0.0
    recall = correct / len(gold) if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Score(precision, recall, f1, len(predicted), len(gold), correct)


def format_pairs(pairs: Iterable[tuple[int, int]]) -> str:
    return "\n".join(f"({a}, {b})" for a, b in sorted(pairs))
