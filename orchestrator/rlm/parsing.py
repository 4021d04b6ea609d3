"""Reading the root model's reply: code blocks to run and a final answer given in prose. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

# ```repl (the paper's convention) or ```python / ```py; the closing fence on a line of its own.
_BLOCK = re.compile(
    r"^[ \t]*```[ \t]*(repl|python|py|python3)[ \t]*\n(.*?)^[ \t]*```[ \t]*$", re.S | re.M | re.I
)
_ANY_BLOCK = re.compile(r"^[ \t]*```.*?^[ \t]*```[ \t]*$", re.S | re.M)
_FINAL = re.compile(r"^[ \t]*FINAL\((.*)\)[ \t]*$", re.M)  # one line: `.` stops at the newline
_FINAL_VAR = re.compile(r"^[ \t]*FINAL_VAR\([ \t]*['\"]?([A-Za-z_][A-Za-z0-9_]*)['\"]?[ \t]*\)[ \t]*$", re.M)


@dataclass(frozen=True, slots=True)
class ProseFinal:
    """A final answer written outside any code block: the text itself, or a variable to read."""

    text: str | None = None
    variable: str | None = None


def code_blocks(reply: str) -> list[str]:
    """The code of every ```repl / ```python block, in order."""
    return [match.group(2) for match in _BLOCK.finditer(reply) if match.group(2).strip()]


def prose_final(reply: str) -> ProseFinal | None:
    """FINAL(...) or FINAL_VAR(name) on a line of its own, outside code blocks; the last one wins."""
    prose = _ANY_BLOCK.sub("", reply)
    var = list(_FINAL_VAR.finditer(prose))
    final = list(_FINAL.finditer(prose))
    if var and (not final or var[-1].start() > final[-1].start()):
        return ProseFinal(variable=var[-1].group(1))
    if final:
        text = final[-1].group(1).strip()
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
            text = text[1:-1]
        return ProseFinal(text=text)
    return None
