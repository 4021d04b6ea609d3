"""Glob patterns over context-relative paths, as gitignore reads them.

- `*` matches within one path component, `?` one character, `[abc]`/`[!abc]` a class;
- `**` as a whole component matches any number of components (`src/**/*.py` matches `src/a.py`);
- a pattern with no `/` matches the file name at any depth (`*.py` matches `a/b/c.py`);
  a pattern with a `/` is anchored at the root (`docs/*.md` does not match `x/docs/a.md`);
- a trailing `/` names a directory: `build/` matches everything beneath any `build` directory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from ..errors import PatternError

MAX_PATTERN_CHARS = 1024


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """A compiled regular expression matching exactly the paths the glob matches."""
    if not pattern or len(pattern) > MAX_PATTERN_CHARS or "\x00" in pattern:
        raise PatternError(f"not a usable glob pattern: {pattern[:80]!r}")
    anchored = "/" in pattern.rstrip("/")
    if pattern.endswith("/"):  # a directory: everything beneath it
        pattern += "**"
    parts = [p for p in pattern.strip("/").split("/") if p not in ("", ".")]
    out: list[str] = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        out.append(_component(part) + ("" if last else "/"))
    body = "".join(out)
    prefix = "" if anchored else "(?:[^/]+/)*"
    return re.compile(f"{prefix}{body}", re.DOTALL)


def _component(part: str) -> str:
    out, i = [], 0
    while i < len(part):
        ch = part[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = part.find("]", i + 2 if part[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end == -1:
                out.append(re.escape(ch))
            else:
                inner = part[i + 1 : end]
                negate = inner.startswith("!")
                inner = inner[1:] if negate else inner
                out.append(f"[{'^/' if negate else ''}{inner.replace(chr(92), chr(92) * 2)}]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def matches(pattern: str, path: str) -> bool:
    return compile_glob(pattern).fullmatch(path) is not None


def select(paths: Iterable[str], include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> list[str]:
    """Paths matching any include pattern (all, when there are none) and no exclude pattern."""
    inc = [compile_glob(p) for p in include]
    exc = [compile_glob(p) for p in exclude]
    return [
        path
        for path in paths
        if (not inc or any(r.fullmatch(path) for r in inc)) and not any(r.fullmatch(path) for r in exc)
    ]
