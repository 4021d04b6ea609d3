"""The context store on the host: one per run, shared by the run's nested calls.

It serves the sandbox's context callbacks (read, list, search, info, stats, grep) from a source,
through an LRU content cache bounded in bytes, and keeps the run's accounting. Limits raise
ContextLimitError, which reaches the user's code as LimitExceededError; nothing here crashes the host.
Regular expressions come from untrusted code: they run under the `regex` module's timeout, so a
catastrophic pattern costs at most `regex_timeout_s` of one thread.

Thread-safe: callbacks run in worker threads; the cache and the counters sit behind one lock.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import regex
from cachetools import LRUCache

from ..config import ContextLimits
from ..errors import ContextLimitError, ContextPathError, PatternError
from . import globs
from .sources import ContextShape, ContextSource, FileEntry, extension_counts, normalise

MAX_REGEX_CHARS = 4096
MAX_LINE_CHARS = 4096  # a grep hit's line is cut to this many characters


@dataclass(frozen=True, slots=True)
class ContextUsage:
    bytes_read: int = 0
    files_read: int = 0
    cache_hits: int = 0
    cache_misses: int = 0

    def __add__(self, other: ContextUsage) -> ContextUsage:
        return ContextUsage(
            self.bytes_read + other.bytes_read,
            self.files_read + other.files_read,
            self.cache_hits + other.cache_hits,
            self.cache_misses + other.cache_misses,
        )

    @property
    def cache_hit_rate(self) -> float:
        lookups = self.cache_hits + self.cache_misses
        return self.cache_hits / lookups if lookups else 0.0


@dataclass(frozen=True, slots=True)
class GrepMatch:
    path: str
    line_number: int
    line: str


class ContextStore:
    def __init__(self, source: ContextSource, limits: ContextLimits | None = None) -> None:
        self.source = source
        self.limits = limits or ContextLimits()
        self._lock = threading.Lock()
        self._cache: LRUCache[str, bytes] = LRUCache(maxsize=max(self.limits.cache_bytes, 1), getsizeof=len)
        self._usage = ContextUsage()

    # -- accounting --------------------------------------------------------------------------------

    @property
    def usage(self) -> ContextUsage:
        with self._lock:
            return self._usage

    def remaining_read_bytes(self) -> int:
        with self._lock:
            return max(0, self.limits.max_read_bytes - self._usage.bytes_read)

    def record_reads(self, bytes_read: int, files_read: int) -> None:
        """Reads the sandbox served itself through the read-only mount count against the same budget."""
        with self._lock:
            self._usage += ContextUsage(bytes_read=max(0, bytes_read), files_read=max(0, files_read))

    # -- content ------------------------------------------------------------------------------------

    def _content(self, entry: FileEntry) -> bytes:
        """A whole file, through the cache. Files over the size limit are refused."""
        if entry.size > self.limits.max_file_bytes:
            raise ContextLimitError(
                f"{entry.path!r} is {entry.size} bytes, over the {self.limits.max_file_bytes}-byte file limit"
            )
        with self._lock:
            cached = self._cache.get(entry.path)
            self._usage += ContextUsage(cache_hits=1) if cached is not None else ContextUsage(cache_misses=1)
        if cached is not None:
            return cached
        fd = self.source.open(entry.path)
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(self.limits.max_file_bytes + 1)
        if len(data) > self.limits.max_file_bytes:
            raise ContextLimitError(
                f"{entry.path!r} grew past the {self.limits.max_file_bytes}-byte file limit"
            )
        if len(data) <= self.limits.cache_bytes:
            with self._lock:
                self._cache[entry.path] = data
        return data

    def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        """Bytes [offset, offset+length) of a file; counts against the run's read budget."""
        if offset < 0 or (length is not None and length < 0):
            raise ContextPathError("offset and length must not be negative", path=path)
        data = self._content(self.source.lookup(path))
        piece = data[offset : None if length is None else offset + length]
        with self._lock:
            if self._usage.bytes_read + len(piece) > self.limits.max_read_bytes:
                raise ContextLimitError(
                    f"reading {path!r} would pass the run's {self.limits.max_read_bytes}-byte read budget "
                    f"({self._usage.bytes_read} bytes read so far)"
                )
            self._usage += ContextUsage(bytes_read=len(piece), files_read=1)
        return piece

    def cache_size(self) -> int:
        with self._lock:
            return int(self._cache.currsize)

    # -- metadata -----------------------------------------------------------------------------------

    def list_files(self, directory: str = "", glob: str = "") -> list[str]:
        prefix = normalise(directory)
        if prefix.startswith("..") or directory.startswith("/"):
            raise ContextPathError("the directory is outside the context root", path=directory)
        found = [e.path for e in self.source.index() if not prefix or e.path.startswith(prefix + "/")]
        return globs.select(found, (glob,)) if glob else found

    def search_files(self, pattern: str) -> list[str]:
        compiled = _compile(pattern)
        timeout = self.limits.regex_timeout_s
        deadline = time.monotonic() + timeout
        try:
            return [
                e.path
                for e in self.source.index()
                if compiled.search(e.path, timeout=max(deadline - time.monotonic(), 1e-6))
            ]
        except TimeoutError:
            raise PatternError(f"the pattern ran past its {timeout:g} s limit: {pattern[:80]!r}") from None

    def file_info(self, path: str) -> dict[str, Any]:
        entry = self.source.lookup(path)
        lines = None
        if entry.size <= self.limits.max_file_bytes:
            data = self._content(entry)
            lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
        return {"path": entry.path, "size": entry.size, "lines": lines, "modified": entry.modified}

    def shape(self) -> ContextShape:
        return self.source.shape()

    def stats(self) -> dict[str, Any]:
        entries = self.source.index()
        return {
            "file_count": len(entries),
            "total_bytes": sum(e.size for e in entries),
            "files_by_extension": extension_counts(e.path for e in entries),
        }

    def grep(self, pattern: str, glob: str = "", max_matches: int = 1000) -> tuple[list[GrepMatch], bool]:
        """Lines matching `pattern`, in path then line order; True when the cap cut the list short.

        Files over the size limit are skipped; file contents come through the cache and do not count
        against the read budget (only matching lines are returned).
        """
        compiled = _compile(pattern)
        whole = _compile(pattern, multiline=True) if _line_local(pattern) else None
        cap = max(1, min(max_matches or self.limits.max_grep_matches, self.limits.max_grep_matches))
        candidates = self.list_files(glob=glob) if glob else [e.path for e in self.source.index()]
        timeout = self.limits.regex_timeout_s
        deadline = time.monotonic() + timeout  # one budget for the whole call, not per line
        matches: list[GrepMatch] = []
        try:
            for path in candidates:
                entry = self.source.lookup(path)
                if entry.size > self.limits.max_file_bytes:
                    continue
                text = self._content(entry).decode("utf-8", "replace")
                for number, line in _matching_lines(text, compiled, whole, deadline):
                    if len(matches) == cap:
                        return matches, True
                    matches.append(GrepMatch(path, number, line[:MAX_LINE_CHARS]))
        except TimeoutError:
            raise PatternError(f"the pattern ran past its {timeout:g} s limit: {pattern[:80]!r}") from None
        return matches, False


def _compile(pattern: str, multiline: bool = False) -> Any:
    if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_REGEX_CHARS:
        raise PatternError(f"a pattern must be a non-empty str of at most {MAX_REGEX_CHARS} characters")
    try:
        return regex.compile(pattern, regex.VERSION0 | (regex.MULTILINE if multiline else 0))
    except regex.error as exc:
        raise PatternError(f"not a valid regular expression: {exc}") from None


# Constructs whose result can differ between one line alone and the same line inside the whole text:
# absolute anchors, lookarounds, and inline flags (which could switch MULTILINE off).
_NOT_LINE_LOCAL = regex.compile(r"\\[AZzG]|\(\?(?!:|P<|P=)")


def _line_local(pattern: str) -> bool:
    """True when every line that matches alone also matches inside the whole text (MULTILINE)."""
    return _NOT_LINE_LOCAL.search(pattern) is None


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _matching_lines(
    text: str, line_rx: Any, whole_rx: Any | None, deadline: float
) -> Iterator[tuple[int, str]]:
    """(line number, line) of each line (split on '\n') that `line_rx` matches, in order.

    With `whole_rx` (the same pattern, MULTILINE), one pass over the whole text finds the candidate
    lines, each then confirmed alone: about ten times faster than a call per line. Without it, every
    line is searched alone.
    """
    if not text:
        return
    if whole_rx is None:
        lines = text.split("\n")
        if text.endswith("\n"):
            lines.pop()  # the end of the last line, not a line of its own
        for number, line in enumerate(lines, 1):
            if line_rx.search(line, timeout=_remaining(deadline)):
                yield number, line
        return
    number, counted_to, last_start = 1, 0, -1
    for found in whole_rx.finditer(text, timeout=_remaining(deadline)):
        start = text.rfind("\n", 0, found.start()) + 1
        if start == last_start or (start == len(text) and start > 0 and text.endswith("\n")):
            continue
        last_start = start
        number += text.count("\n", counted_to, start)
        counted_to = start
        end = text.find("\n", start)
        line = text[start : end if end != -1 else len(text)]
        if line_rx.search(line, timeout=_remaining(deadline)):
            yield number, line
