"""Glob patterns over context-relative paths, as gitignore reads them.

- `*` matches within one path component, `?` one character, `[abc]`/`[!abc]` a class;
- `**` as a whole component matches any number of components (`src/**/*.py` matches `src/a.py`);
- a pattern with no `/` matches the file name at any depth (`*.py` matches `a/b/c.py`);
  a pattern with a `/` is anchored at the root (`docs/*.md` does not match `x/docs/a.md`);
- a trailing `/` names a directory: `build/` matches everything beneath any `build` directory.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import regex

from ..errors import PatternError

MAX_PATTERN_CHARS = 1024
# Globs come from untrusted code, and a glob like `*a*a*a*a*a*a*a*a*b` backtracks for ever on a long
# name: they run on the `regex` module under a deadline (as grep does), and the number of `**` (runs of
# them merged first) and of wildcards is capped as well.
MAX_DOUBLE_STARS = 4
MAX_WILDCARDS = 32


DEFAULT_TIMEOUT_S = 10.0


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> Any:
    """A compiled regular expression matching exactly the paths the glob matches."""
    if not pattern or len(pattern) > MAX_PATTERN_CHARS or "\x00" in pattern:
        raise PatternError(f"not a usable glob pattern: {pattern[:80]!r}")
    anchored = "/" in pattern.rstrip("/")
    if pattern.endswith("/"):  # a directory: everything beneath it
        pattern += "**"
    parts: list[str] = []
    for part in pattern.strip("/").split("/"):
        if part in ("", ".") or (part == "**" and parts and parts[-1] == "**"):
            continue
        parts.append(part)
    if parts.count("**") > MAX_DOUBLE_STARS:
        raise PatternError(f"a glob may hold at most {MAX_DOUBLE_STARS} '**' components: {pattern[:80]!r}")
    if sum(pattern.count(c) for c in "*?[") > MAX_WILDCARDS:
        raise PatternError(f"a glob may hold at most {MAX_WILDCARDS} wildcards: {pattern[:80]!r}")
    out: list[str] = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        out.append(_component(part) + ("" if last else "/"))
    prefix = "" if anchored else "(?:[^/]+/)*"
    try:
        return regex.compile(f"{prefix}{''.join(out)}", regex.DOTALL | regex.VERSION0)
    except regex.error as exc:
        raise PatternError(f"not a usable glob pattern ({exc}): {pattern[:80]!r}") from None


def _component(part: str) -> str:
    out, i = [], 0
    while i < len(part):
        ch = part[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[" and (end := _class_end(part, i)) != -1:
            inner = part[i + 1 : end]
            negate = inner[:1] in ("!", "^")
            inner = inner[1:] if negate else inner
            body = inner.replace("\\", "\\\\").replace("[", "\\[")
            body = ("\\" + body) if body.startswith("^") else body
            # A class never matches the separator, whatever its range covers.
            out.append(f"(?!/)[{'^' if negate else ''}{body}]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def _class_end(part: str, start: int) -> int:
    """Index of the `]` closing the class opened at `start`, or -1 (then `[` is literal).

    As in fnmatch, a `]` right after `[` or `[!` belongs to the class.
    """
    i = start + 1
    if part[i : i + 1] in ("!", "^"):
        i += 1
    if part[i : i + 1] == "]":
        i += 1
    return part.find("]", i)


def matches(pattern: str, path: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    return select([path], (pattern,), timeout_s=timeout_s) == [path]


def select(
    paths: Iterable[str],
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[str]:
    """Paths matching any include pattern (all, when there are none) and no exclude pattern.

    All the matching of one call shares one deadline; past it, PatternError.
    """
    inc = [compile_glob(p) for p in include]
    exc = [compile_glob(p) for p in exclude]
    deadline = time.monotonic() + timeout_s

    def hit(rx: Any, path: str) -> bool:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return rx.fullmatch(path, timeout=left) is not None

    try:
        return [
            path
            for path in paths
            if (not inc or any(hit(r, path) for r in inc)) and not any(hit(r, path) for r in exc)
        ]
    except TimeoutError:
        names = ", ".join(repr(p[:40]) for p in (*include, *exclude))
        raise PatternError(f"glob matching ran past its {timeout_s:g} s limit: {names}") from None
