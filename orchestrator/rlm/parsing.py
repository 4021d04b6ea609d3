"""Reading the root model's reply: code blocks to run and a final answer given in prose. Pure.

Written for real models' habits, recorded from a small local model (tests/data/model_replies/) and
tested as plain parsing cases (tests/test_rlm_parsing.py):

- fences: ```repl, ```python, ```py, ```python3; "```" with "repl" (or "python") alone on the next
  line; a fence indented under a list item (the block is dedented); a last block whose closing fence
  never came (the reply ended); a bare "```" block runs only when the reply has no tagged block and
  its text parses as Python; blocks fenced as another language (```text, ```json, ```bash) never run;
- the final answer: FINAL(...) / FINAL_VAR(...) in any letter case, spanning several lines if it
  must; alone on its line it is the answer, inside a sentence only when the reply has no code block
  ("call FINAL(x) when ready" after code is talk of later); FINAL("text") is the text, FINAL(name)
  with a bare name is the variable `name` (as FINAL_VAR: a name that does not exist is no answer),
  and the last one in the reply counts.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass

from .prompts import OUTPUT_HEADER

_RUNNABLE = {"repl", "python", "py", "python3"}
_OPEN = re.compile(r"^([ \t]*)```[ \t]*([A-Za-z0-9_+-]*)[ \t]*$")
_CLOSE = re.compile(r"^[ \t]*```[ \t]*$")
_FINAL_START = re.compile(r"\b(FINAL_VAR|FINAL)\s*\(", re.IGNORECASE)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_FINAL_CHARS = 1_000_000


@dataclass(frozen=True, slots=True)
class Block:
    lang: str  # "repl", "python", ... or "" for a bare fence
    code: str
    closed: bool  # False: the reply ended before the closing fence


@dataclass(frozen=True, slots=True)
class ProseFinal:
    """A final answer written outside any code block: the text itself, or a variable to read."""

    text: str | None = None
    variable: str | None = None


# A line that opens the REPL's feedback ("Output of block 3:", prompts.OUTPUT_HEADER), a fence of
# output ("```output", Qwen's habit), or a fence whose first line is a traceback's (the error of the
# last cell, written out again as if it were code): what follows is output the model made up, and
# anything it wrote after that is an answer to it.
_IMAGINED_OUTPUT = re.compile(
    rf"^[ \t]*(?:{re.escape(OUTPUT_HEADER)} \d+:|```output\b"
    r"|```(?:repl|python3?|py)[ \t]*\n[ \t]*Traceback \(most recent call last\):)",
    re.MULTILINE | re.IGNORECASE,  # recorded: "OUTPUT OF BLOCK 1:" too
)


def own_text(reply: str) -> str:
    """The reply up to where it starts writing the REPL's output itself, if it does; else whole."""
    found = _IMAGINED_OUTPUT.search(reply)
    return reply[: found.start()].rstrip() + "\n" if found else reply


def blocks(reply: str) -> tuple[list[Block], str]:
    """Every fenced block of the reply, in order, and the prose outside them."""
    lines = reply.split("\n")
    found: list[Block] = []
    prose: list[str] = []
    i = 0
    while i < len(lines):
        opened = _OPEN.match(lines[i])
        if opened is None:
            prose.append(lines[i])
            i += 1
            continue
        lang = opened.group(2).lower()
        i += 1
        if not lang and i < len(lines) and lines[i].strip().lower() in _RUNNABLE:
            lang = lines[i].strip().lower()  # "```" then "repl" on a line of its own
            i += 1
        body: list[str] = []
        while i < len(lines) and not _CLOSE.match(lines[i]):
            body.append(lines[i])
            i += 1
        closed = i < len(lines)
        while not closed and body and not body[-1].strip():
            body.pop()  # the reply's own trailing newlines are not the block's
        i += 1  # past the closing fence
        code = textwrap.dedent("\n".join(body) + "\n") if body else ""
        found.append(Block(lang, code, closed))
    return found, "\n".join(prose)


def code_blocks(reply: str) -> list[str]:
    """The code of every block that runs, in order: tagged repl/python blocks; bare ones only when the
    reply has no tagged block and they parse as Python."""
    found, _prose = blocks(reply)
    tagged = [b.code for b in found if b.lang in _RUNNABLE and b.code.strip()]
    if tagged:
        return tagged
    return [b.code for b in found if not b.lang and b.code.strip() and _parses(b.code)]


def prose_final(reply: str) -> ProseFinal | None:
    """FINAL(...) or FINAL_VAR(...) outside code blocks, in any case, inline or over several lines;
    the last one wins. None when the reply gives no final answer."""
    found, prose = blocks(reply)
    last: ProseFinal | None = None
    for match in _FINAL_START.finditer(prose):
        inner = _balanced(prose, match.end())
        if inner is None:
            continue
        line_start = prose.rfind("\n", 0, match.start()) + 1
        line_end = prose.find("\n", match.end() + len(inner))
        before = prose[line_start : match.start()].strip(" \t*`>-:")
        after = prose[match.end() + len(inner) + 1 : None if line_end == -1 else line_end].strip(" \t*`.")
        # FINAL(...) alone on its line is the answer; inside a sentence ("call FINAL(x) when ready") it
        # is one only when the reply ran no code, so talk of ending later does not end the run now.
        if (before or after) and any(b.lang in _RUNNABLE or not b.lang for b in found):
            continue
        parsed = _final_of(match.group(1).upper(), inner.strip())
        if parsed is not None:
            last = parsed
    return last


# What a model writes inside FINAL(...) when it copies an instruction's wording instead of answering
# (recorded from the 1.5B model: `Final(the answer)` after "end with FINAL(the answer)").
_PLACEHOLDERS = frozenset(
    "answer|the answer|your answer|final answer|the final answer|your final answer|answer here|"
    "the answer here|your answer here|your final answer here|the result|ellipsis".split("|")
)


def is_placeholder(text: str) -> bool:
    """True when a final answer is an instruction's placeholder ("the answer", "<your answer>",
    "..."), not an answer."""
    if text.strip(" \t\n\"'`<>") in ("...", "\u2026", ""):
        return True  # "...", "<...>": an ellipsis ("[]" is an answer: an empty list)
    bare = " ".join(text.lower().strip(" \t\n\"'`<>[]{}().:").split())
    return bare in _PLACEHOLDERS


def _name_nodes(code: str) -> list[ast.Name]:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return []
    return [node for node in ast.walk(tree) if isinstance(node, ast.Name)]


def names_in(code: str) -> set[str]:
    """The names the code reads or writes (empty when it does not parse)."""
    return {node.id for node in _name_nodes(code)}


def assigned_in(code: str) -> set[str]:
    """The names the code assigns (empty when it does not parse)."""
    return {node.id for node in _name_nodes(code) if isinstance(node.ctx, ast.Store)}


def unquoted_final(code: str) -> str | None:
    """The text of a block that is one FINAL(...) of unquoted prose, so not Python ("FINAL(6 files in
    the orders directory)", a small model's habit), as the official implementation reads a FINAL in
    the reply's text; None for anything else (Python that parses is run as code, never read)."""
    text = code.strip()
    match = _FINAL_START.match(text)
    if match is None or match.group(1).upper() != "FINAL" or _parses(text):
        return None
    inner = _balanced(text, match.end())
    if inner is None or match.end() + len(inner) + 1 != len(text):
        return None  # more than one FINAL(...) call in the block
    inner = inner.strip()
    if not inner or is_placeholder(inner) or _parses(inner):
        return None  # code inside FINAL, not prose (recorded: FINAL(answer["content"] = f"...")): an error
    return inner


def _final_of(kind: str, inner: str) -> ProseFinal | None:
    if not inner:
        return None
    unquoted = _string_literal(inner)
    if kind == "FINAL_VAR":
        name = unquoted if unquoted is not None else inner
        return ProseFinal(variable=name) if _IDENTIFIER.fullmatch(name) else None
    if unquoted is not None:
        return None if is_placeholder(unquoted) else ProseFinal(text=unquoted)
    if _IDENTIFIER.fullmatch(inner):
        return ProseFinal(variable=inner)  # FINAL(name): the variable's value, as the code would give
    return None if is_placeholder(inner) else ProseFinal(text=inner[:MAX_FINAL_CHARS])


def _balanced(text: str, start: int) -> str | None:
    """The text from `start` to the parenthesis that closes the one just before it, or None."""
    depth, quote, i = 1, "", start
    while i < len(text) and i - start <= MAX_FINAL_CHARS:
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return text[start:i]
        i += 1
    return None


def _string_literal(text: str) -> str | None:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text[1:-1]
        return value if isinstance(value, str) else None
    return None


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except SyntaxError:
        return False
    return True
