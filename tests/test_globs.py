"""Glob patterns over context paths (gitignore semantics)."""

from __future__ import annotations

import pytest

from orchestrator.context.globs import matches, select
from orchestrator.errors import InvalidInputError


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*.py", "a.py", True),
        ("*.py", "src/deep/a.py", True),  # no slash: the name at any depth
        ("*.py", "a.pyc", False),
        ("src/*.py", "src/a.py", True),
        ("src/*.py", "src/x/a.py", False),  # * stays in one component
        ("src/*.py", "lib/src/a.py", False),  # a slash anchors at the root
        ("src/**/*.py", "src/a.py", True),  # ** matches zero components
        ("src/**/*.py", "src/x/y/a.py", True),
        ("src/**", "src/x/y/a.txt", True),
        ("**/test_*.py", "tests/unit/test_a.py", True),
        ("data?.csv", "data1.csv", True),
        ("data?.csv", "data10.csv", False),
        ("[ab].txt", "b.txt", True),
        ("[!ab].txt", "c.txt", True),
        ("[!ab].txt", "a.txt", False),
        ("a+b(1).txt", "a+b(1).txt", True),  # regex characters are literal
        ("docs/", "x/docs", False),  # a directory pattern: not a file named docs
        ("docs/", "x/docs/a.md", True),
    ],
)
def test_glob_semantics(pattern: str, path: str, expected: bool) -> None:
    """Each pattern form matches exactly the paths gitignore would."""
    assert matches(pattern, path) is expected


def test_select_includes_then_excludes() -> None:
    """Include patterns choose, exclude patterns remove; no include means everything."""
    paths = ["src/a.py", "src/gen/b.py", "README.md", "tests/test_a.py"]
    assert select(paths, ("src/**/*.py",), ("src/gen/**",)) == ["src/a.py"]
    assert select(paths, (), ("*.md",)) == ["src/a.py", "src/gen/b.py", "tests/test_a.py"]


@pytest.mark.parametrize("bad", ["", "x" * 2000, "a\x00b"])
def test_unusable_patterns_are_refused(bad: str) -> None:
    """Empty, over-long or NUL-bearing patterns are refused with a clear error."""
    with pytest.raises(InvalidInputError, match="glob"):
        matches(bad, "a")
