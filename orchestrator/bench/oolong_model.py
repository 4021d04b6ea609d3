"""The offline model of OOLONG-Pairs: a script for the scripted server that plays a model which writes a
correct program and labels questions by the rule that generated them.

It checks the harness end to end and measures the platform's own time per task; its F1 says nothing
about any model. What it answers, by request:

- an RLM's root (depth 1): a program that parses `context`, labels the entries in chunks through
  `llm_query_batched`, computes the pairs from the condition and returns them with FINAL_VAR;
- at depth 2 the root hands the labelling to child RLMs (`rlm_query_batched`, one per part of the list),
  each of which labels its part through `llm_query_batched` and returns JSON;
- without sub-calls, the program labels in code, from a table of the task's questions;
- a labelling sub-call: `n: label` per question, the generator's own label (the rule);
- a direct call (the whole list in the prompt): the pairs of the lines it was given.

The harness sets `task` and `contender` before each run (tasks run one at a time).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from . import oolong
from .oolong import Condition, Entry, Task
from .oolong_questions import LABELS
from .scripted_server import Reply, Seen, repl

LABEL_HEADER = (
    "Label each question below with one of these labels: " + ", ".join(LABELS) + ". Answer with one line "
    "per question, `number: label`, and nothing else.\n"
)
CHILD_PREFIX = "Label the questions of entries "
CHUNK = 25  # questions per labelling sub-call
PART = 125  # entries per child RLM at depth 2 (at most MAX_PARTS)
MAX_PARTS = 4
NO_ANSWER = "FINAL(the program did not finish: no answer)"

_ROW = re.compile(r"Date: (\w+ \d+, \d{4}) \|\| User: (\d+) \|\| Instance: (.*)")
_QUERY = re.compile(r"The query: (.*?)\n\nStart by", re.S)
_CHILD = re.compile(re.escape(CHILD_PREFIX) + r"(\d+) to (\d+)")

PARSE = r"""
import datetime, json, re
from itertools import combinations
ROW = re.compile(r"Date: (\w+ \d+, \d{4}) \|\| User: (\d+) \|\| Instance: (.*)")
rows = []
for line in context.splitlines():
    m = ROW.match(line.strip())
    if m:
        rows.append((datetime.datetime.strptime(m[1], "%b %d, %Y").date(), int(m[2]), m[3]))
LABEL_HEADER = @HEADER@
def label_chunks(first, end):
    prompts = ["\n".join([LABEL_HEADER] + [f"{j}: {rows[j][2]}" for j in range(i, min(i + @CHUNK@, end))])
               for i in range(first, end, @CHUNK@)]
    found = {}
    for reply in llm_query_batched(prompts):
        for line in reply.splitlines():
            j, _, label = line.partition(":")
            if j.strip().isdigit():
                found[int(j)] = label.strip()
    return found
"""

PAIRS = r"""
CONDITION = json.loads(@CONDITION@)
def holds(clauses, inst):
    for kind, label, value in clauses:
        if kind == "any":
            ok = any(lab in label for lab, _ in inst)
        elif kind in ("min", "eq"):
            n = sum(1 for lab, _ in inst if lab == label)
            ok = n >= value if kind == "min" else n == value
        else:
            day = datetime.date.fromisoformat(value)
            ok = all((d > day if kind == "after" else d < day) for lab, d in inst if lab == label)
        if not ok:
            return False
    return True
by_user = {}
for j, (d, user, _q) in enumerate(rows):
    by_user.setdefault(user, []).append((labels.get(j), d))
a = {u for u, inst in by_user.items() if holds(CONDITION["a"], inst)}
if CONDITION["b"]:
    b = {u for u, inst in by_user.items() if holds(CONDITION["b"], inst)}
    pairs = {(min(x, y), max(x, y)) for x in a for y in b if x != y}
else:
    pairs = set(combinations(sorted(a), 2))
result = "\n".join(f"({x}, {y})" for x, y in sorted(pairs))
print(len(rows), "entries,", len(labels), "labelled,", len(pairs), "pairs")
FINAL_VAR("result")
"""


def _condition_json(condition: Condition) -> str:
    def clause(c: oolong.Clause) -> list[Any]:
        kind, label, value = c
        return [
            kind,
            list(label) if isinstance(label, tuple) else label,
            str(value) if kind in ("after", "before") else value,
        ]

    return json.dumps({"a": [clause(c) for c in condition.a], "b": [clause(c) for c in condition.b]})


def _parse() -> str:
    return PARSE.replace("@HEADER@", repr(LABEL_HEADER)).replace("@CHUNK@", str(CHUNK))


def root_program(task: Task, contender: str) -> str:
    """The program the offline model writes for the task's root."""
    pairs = PAIRS.replace("@CONDITION@", repr(_condition_json(task.condition)))
    if contender == "rlm-no-subcalls":
        table = {e.question: e.label for e in task.entries}
        label = (
            f"TABLE = json.loads({json.dumps(table)!r})\n"
            "labels = {j: TABLE.get(r[2]) for j, r in enumerate(rows)}\n"
        )
    elif contender == "rlm-depth2":
        label = (
            f"parts = max(1, min({MAX_PARTS}, -(-len(rows) // {PART})))\n"
            "bounds = [(k * len(rows) // parts, (k + 1) * len(rows) // parts) for k in range(parts)]\n"
            f"asks = [f'{CHILD_PREFIX}{{a}} to {{b - 1}} (0-based, counting only the lines that start with "
            "Date:) of the context, each with one of the six labels. Return a JSON object from each "
            "entry number to its label.' for a, b in bounds]\n"
            "labels = {}\n"
            "for reply in rlm_query_batched(asks):\n"
            "    labels.update({int(j): lab for j, lab in json.loads(reply).items()})\n"
        )
    else:
        label = "labels = label_chunks(0, len(rows))\n"
    return _parse() + label + pairs


def child_program(first: int, last: int) -> str:
    """A depth-2 child's program: label entries first..last, return them as JSON."""
    return (
        _parse()
        + f"labels = label_chunks({first}, min({last} + 1, len(rows)))\n"
        + "result = json.dumps(labels)\nprint(len(labels), 'labelled')\nFINAL_VAR('result')\n"
    )


def label_reply(prompt: str, labels: Mapping[str, str]) -> str:
    """`n: label` for each `n: question` line of a labelling prompt."""
    out = []
    for line in prompt.splitlines()[1:]:
        number, _, question = line.partition(": ")
        if number.strip().isdigit():
            out.append(f"{number}: {labels.get(question.strip(), 'unknown')}")
    return "\n".join(out)


def direct_reply(prompt: str, task: Task, labels: Mapping[str, str]) -> str:
    """The pairs of the lines in the prompt (all of them, or what was left after a cut)."""
    import datetime as dt

    seen = []
    for line in prompt.splitlines():
        m = _ROW.match(line.strip())
        if m:
            date = dt.datetime.strptime(m[1], "%b %d, %Y").date()
            seen.append(Entry(date, int(m[2]), m[3], labels.get(m[3], "unknown")))
    return oolong.format_pairs(oolong.gold_pairs(task.condition, seen))


class OfflineModel:
    """The scripted server's script; `task` and `contender` say what is being run."""

    def __init__(self) -> None:
        self.task: Task | None = None
        self.contender = "rlm"
        self.labels: dict[str, str] = {}

    def set_task(self, task: Task, contender: str) -> None:
        self.task, self.contender = task, contender
        self.labels = {e.question: e.label for e in task.entries}

    def __call__(self, seen: Seen, index: int) -> Reply | str:
        task = self.task
        assert task is not None, "the harness sets the task before a run"
        messages = seen.body.get("messages", [])
        if "You work in a Python REPL" in seen.system:  # an RLM level
            if sum(1 for m in messages if m.get("role") == "assistant"):
                return NO_ANSWER  # a second turn: the program failed
            found = _QUERY.search(seen.last_user)
            query = found.group(1) if found else seen.last_user
            child = _CHILD.search(query)
            if child:
                return repl(child_program(int(child[1]), int(child[2])))
            return repl(root_program(task, self.contender))
        prompt = seen.last_user
        if prompt.startswith(LABEL_HEADER):
            return label_reply(prompt, self.labels)
        return direct_reply(prompt, task, self.labels)


def parts_for(size: int) -> int:
    """The child RLMs the depth-2 program starts for a list of `size` entries."""
    return max(1, min(MAX_PARTS, math.ceil(size / PART)))
