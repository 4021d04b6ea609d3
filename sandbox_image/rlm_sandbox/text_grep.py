"""grep over text the code already holds: grep(pattern, text) and grep(pattern, lines).

The context API's grep searches the context's files on the host, the files named by a glob. A small
model passes it the text it read instead (recorded from Qwen2.5-Coder-1.5B: `grep(r"WARN",
read_file(path))`, `grep(r"cache", lines)`), and wants what grep would say of those lines; a glob
never holds a newline, and never is a list, so the two cannot be mistaken for each other. It runs
here, in the sandbox, on the cell's own time. Smart case, as the host's grep: a pattern with no
capital letter (escapes and group names aside) matches in any case. The host package keeps its own
copy of that rule (orchestrator.context.store._has_capital); tests hold both to one table of cases.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import PatternError

_NOT_LITERAL = re.compile(r"\\[pPN]\{[^}]*\}|\\.|\(\?P?<[A-Za-z_]\w*>|\(\?[a-zA-Z-]+[:)]")


def has_capital(pattern: str) -> bool:
    """True when the pattern has a capital letter to match: smart case is then off."""
    return any(c.isupper() for c in _NOT_LITERAL.sub("", pattern))


def is_text(value: object) -> bool:
    """A text or a list of lines, passed where grep takes a glob."""
    return isinstance(value, (list, tuple)) or (isinstance(value, str) and "\n" in value)


def grep_text(pattern: str, text: Any, max_matches: int) -> list[dict[str, Any]]:
    """The lines of `text` (a str, or a list of str) that match, as the host's grep gives them, with
    "" for the path."""
    if not isinstance(pattern, str) or not pattern:
        raise TypeError("grep(pattern, ...): the pattern must be a non-empty str")
    lines = text.splitlines() if isinstance(text, str) else list(text)
    if not all(isinstance(line, str) for line in lines):
        raise TypeError("grep(pattern, lines): every line must be a str")
    sensitive = has_capital(pattern) or pattern.startswith("(?-i)")
    if pattern.startswith("(?-i)"):  # the host's way to turn smart case off; Python's re has no global -i
        pattern = pattern[len("(?-i)") :] or pattern
    try:
        compiled = re.compile(pattern, 0 if sensitive else re.IGNORECASE)
    except re.error as exc:
        raise PatternError(f"not a valid regular expression: {exc}") from None
    found = [
        {"path": "", "line_number": number, "line": line}
        for number, line in enumerate(lines, 1)
        if compiled.search(line)
    ]
    return found[: max(0, int(max_matches))] if max_matches else found
