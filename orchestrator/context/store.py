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
DEFAULT_GREP_MATCHES = 1000
MAX_GREP_RESPONSE_BYTES = 8 * 1024**2
STREAM_CHUNK_BYTES = 1024**2  # pieces a large file is searched or counted in
MAX_COUNTED_BYTES = 1024**3  # file_info counts the lines of files up to this size


@dataclass(frozen=True, slots=True)
class StoreNote:
    """What the store noticed about a call, for the model's feedback. `lines_unseen`: a grep read no
    line it meant to (file names matched its pattern, or its glob named no file), so an answer written
    beside it was written blind; a list_files() that names no file returns the [] an answer counts."""

    text: str
    lines_unseen: bool = False


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


def _some(paths: list[str]) -> str:
    """The first three of `paths`, and how many more, for a note."""
    return ", ".join(paths[:3]) + (f" and {len(paths) - 3:,} more" if len(paths) > 3 else "")


class ContextStore:
    def __init__(self, source: ContextSource, limits: ContextLimits | None = None) -> None:
        self.source = source
        self.limits = limits or ContextLimits()
        self._lock = threading.Lock()
        self._cache: LRUCache[str, bytes] = LRUCache(maxsize=max(self.limits.cache_bytes, 1), getsizeof=len)
        self._usage = ContextUsage()
        self._notes: list[StoreNote] = []
        self._context_dir: tuple[object, bool] | None = None  # (the index, has it a "context" entry)

    # -- notes --------------------------------------------------------------------------------------

    MAX_NOTES = 8

    def take_notes(self) -> list[StoreNote]:
        """What the store noticed about the calls since the last take, for the model's feedback: a
        call that found nothing where another call would have (see grep)."""
        with self._lock:
            notes, self._notes = self._notes, []
        return notes

    def _note(self, text: str, *, lines_unseen: bool = False) -> None:
        note = StoreNote(text, lines_unseen)
        with self._lock:
            if len(self._notes) < self.MAX_NOTES and note not in self._notes:
                self._notes.append(note)

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
        """A whole file, through the cache. Files over the size limit are refused: read them by range."""
        if entry.size > self.limits.max_file_bytes:
            raise ContextLimitError(
                f"{entry.path!r} is {entry.size:,} bytes, over the {self.limits.max_file_bytes:,}-byte limit "
                "for one read: read it in pieces with offset and length"
            )
        with self._lock:
            cached = self._cache.get(entry.path)
            self._usage += ContextUsage(cache_hits=1) if cached is not None else ContextUsage(cache_misses=1)
        if cached is not None:
            return cached
        data = self._pread(entry, 0, self.limits.max_file_bytes + 1)
        if len(data) > self.limits.max_file_bytes:
            raise ContextLimitError(
                f"{entry.path!r} grew past the {self.limits.max_file_bytes:,}-byte limit for one read"
            )
        if len(data) <= self.limits.cache_bytes:
            with self._lock:
                self._cache[entry.path] = data
        return data

    def _open(self, entry: FileEntry) -> int:
        """A read-only fd of the file; one that cannot be opened is a ContextPathError naming it."""
        try:
            return self.source.open(entry.path)
        except OSError as exc:
            raise ContextPathError(f"cannot read the file ({exc.strerror})", path=entry.path) from None

    def _pread(self, entry: FileEntry, offset: int, length: int) -> bytes:
        """Bytes of a file read from disk; a file that cannot be read is a ContextPathError naming it."""
        fd = self._open(entry)
        try:
            return os.pread(fd, length, offset) if length > 0 else b""
        except OSError as exc:
            raise ContextPathError(f"cannot read the file ({exc.strerror})", path=entry.path) from None
        finally:
            os.close(fd)

    def _chunks(self, entry: FileEntry, chunk: int = STREAM_CHUNK_BYTES) -> Iterator[tuple[int, bytes]]:
        """A large file in pieces that end at a line break (a longer line is cut at `chunk` bytes):
        (line number of the piece's first line, the piece). Bounded memory, whatever the size."""
        fd = self._open(entry)
        try:
            offset, line, carry = 0, 1, b""
            while True:
                block = os.pread(fd, chunk, offset)
                offset += len(block)
                data = carry + block
                if not block:
                    if data:
                        yield line, data
                    return
                cut = data.rfind(b"\n") + 1
                if cut == 0 and len(data) < chunk:
                    carry = data
                    continue
                cut = cut or len(data)
                yield line, data[:cut]
                line += data.count(b"\n", 0, cut)
                carry = data[cut:]
        except OSError as exc:
            raise ContextPathError(f"cannot read the file ({exc.strerror})", path=entry.path) from None
        finally:
            os.close(fd)

    def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        """Bytes [offset, offset+length) of a file; counts against the run's read budget.

        One read returns at most max_file_bytes: a larger file is read by range, never loaded whole.
        """
        if offset < 0 or (length is not None and length < 0):
            raise ContextPathError("offset and length must not be negative", path=path)
        entry = self.source.lookup(self._rooted(path))
        expected = max(0, entry.size - offset) if length is None else min(length, max(0, entry.size - offset))
        if expected > self.limits.max_file_bytes:
            raise ContextLimitError(
                f"reading {expected:,} bytes of {path!r} ({entry.size:,} bytes) is over the "
                f"{self.limits.max_file_bytes:,}-byte limit for one read: pass offset and length"
            )
        if expected > self.remaining_read_bytes():  # refuse before loading the file
            raise ContextLimitError(
                f"reading {path!r} would pass the run's {self.limits.max_read_bytes}-byte read budget "
                f"({self.usage.bytes_read} bytes read so far)"
            )
        if entry.size <= self.limits.max_file_bytes:
            data = self._content(entry)
            piece = data[offset : None if length is None else offset + length]
        else:
            piece = self._pread(entry, offset, expected)
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

    def _note_names(self, pattern: str, compiled: Any, candidates: list[str], deadline: float) -> None:
        """grep found no line; if file names match the pattern, say so (recorded from the 1.5B model:
        grep(r"\\.log") to count the .log files, grep(r"2026-03.csv") to find that file: 0 lines)."""
        try:
            named = [
                p for p in candidates if compiled.search(p, timeout=max(deadline - time.monotonic(), 1e-6))
            ]
        except TimeoutError:
            return
        if len(named) == 1:  # the file the model meant to find: how to read it (it greps for it again)
            self._note(
                f"grep({pattern!r}) searches the lines inside the files, and no line matched; the name of "
                f"the file {named[0]} matches it: read_file({named[0]!r}).splitlines() gives its lines",
                lines_unseen=True,
            )
        elif named:
            self._note(
                f"grep({pattern!r}) searches the lines inside the files, and no line matched; the names "
                f"of {len(named):,} files match it ({_some(named)}): search_files({pattern!r}) lists the "
                "files whose names match",
                lines_unseen=True,
            )

    def _note_missing(self, call: str, name: str, every: list[str], *, lines_unseen: bool = False) -> None:
        """`name` (a directory, or a glob) names no file: say which files bear its last plain word,
        else what the root holds (recorded from the 1.5B model: list_files("staff") and
        grep(..., glob="staff/*") for people/staff.csv, each [] until the run stalled). A word of one
        character bears on too many names to say which were meant."""
        plain = [part for part in name.split("/") if part.strip(".") and not any(c in part for c in "*?[")]
        word = plain[-1].rsplit(".", 1)[0] if plain else ""
        near = [p for p in every if len(word) > 1 and word.casefold() in p.casefold()]
        if near:
            where = f"the files whose names hold {word!r}: {_some(near)}"
        elif every:
            tops = sorted({p.split("/", 1)[0] + ("/" if "/" in p else "") for p in every})
            where = "its top level holds " + ", ".join(tops[:10]) + (" ..." if len(tops) > 10 else "")
        else:
            where = "the context holds no file"
        self._note(f"{call} names no file of the context; {where}", lines_unseen=lines_unseen)

    def _rooted(self, path: str) -> str:
        """`path` as named from the context's root: a leading "context/" names the root itself when the
        context has no directory of that name (recorded from the 1.5B model, told the files are "the
        context": grep(glob="context/*"), read_file("context/logs/a.log"))."""
        normal = normalise(path) if path else ""
        if normal != "context" and not normal.startswith("context/"):
            return path
        index = self.source.index()
        if self._context_dir is None or self._context_dir[0] is not index:  # once per index
            self._context_dir = (
                index,
                any(e.path.startswith("context/") or e.path == "context" for e in index),
            )
        if self._context_dir[1]:
            return path  # a file or directory of that name: it is meant
        return normal.removeprefix("context").removeprefix("/")

    def list_files(self, directory: str = "", glob: str = "") -> list[str]:
        """The files under `directory` (all: ""), those matching `glob` if given. As a small model
        names them (each recorded from the 1.5B model, which took the [] it got for "not there"):
        a file's own path lists that file, as `ls FILE` does; a name that is nothing at the root
        lists what bears that name deeper down (list_files("runbook.md") -> ["docs/runbook.md"]);
        and, with no `glob`, a directory holding a pattern that names nothing is that glob
        (list_files("logs/*.log"))."""
        prefix = normalise(self._rooted(directory))
        glob = self._rooted(glob)
        if prefix == ".." or prefix.startswith("../") or directory.startswith("/"):
            raise ContextPathError("the directory is outside the context root", path=directory)
        every = [e.path for e in self.source.index()]
        found = [p for p in every if not prefix or p == prefix or p.startswith(prefix + "/")]
        if prefix and not found:
            if not glob and any(c in prefix for c in "*?["):
                selected = globs.select(every, (prefix,), timeout_s=self.limits.regex_timeout_s)
                if not selected:
                    self._note_missing(f"list_files({directory!r})", directory, every)
                return selected
            inner = "/" + prefix
            found = [p for p in every if ("/" + p).endswith(inner) or inner + "/" in "/" + p]
            if not found:
                self._note_missing(f"list_files({directory!r})", directory, every)
        return globs.select(found, (glob,), timeout_s=self.limits.regex_timeout_s) if glob else found

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
        entry = self.source.lookup(self._rooted(path))
        if entry.size <= self.limits.max_file_bytes:
            data = self._content(entry)
            lines: int | None = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
        elif entry.size <= MAX_COUNTED_BYTES:  # counted in pieces, never loaded whole
            lines, last = 0, b""
            for _line, piece in self._chunks(entry):
                lines += piece.count(b"\n")
                last = piece
            lines += 1 if last and not last.endswith(b"\n") else 0
        else:
            lines = None
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

    def _grep_file(
        self, entry: FileEntry, compiled: Any, whole: Any | None, deadline: float
    ) -> Iterator[tuple[int, str]]:
        """(line number, line) of the file's matching lines: small files whole, through the cache;
        larger ones in pieces ending at line breaks, with bounded memory."""
        if entry.size <= self.limits.max_file_bytes:
            yield from _matching_lines(
                self._content(entry).decode("utf-8", "replace"), compiled, whole, deadline
            )
            return
        for first, piece in self._chunks(entry):
            text = piece.decode("utf-8", "replace")
            for number, line in _matching_lines(text, compiled, whole, deadline):
                yield first + number - 1, line

    def grep(self, pattern: str, glob: str = "", max_matches: int = 0) -> tuple[list[GrepMatch], bool]:
        """Lines matching `pattern`, in path then line order; True when a cap cut the list short.

        `max_matches` 0 means the default (1000); it is capped by the limits. Files over the size limit
        for one read are searched in pieces (a line longer than a piece is searched in parts). The lines
        returned count against the run's read budget (the scanning does not), and one response holds
        at most MAX_GREP_RESPONSE_BYTES of them.
        """
        # Smart case, as ripgrep's --smart-case and vim's smartcase: a pattern without a capital letter
        # matches in any case (recorded from the 1.5B model: grep(r"warn") for the WARN lines, 0 found).
        fold = not _has_capital(pattern)
        compiled = _compile(pattern, ignore_case=fold)
        whole = _compile(pattern, multiline=True, ignore_case=fold) if _line_local(pattern) else None
        cap = min(max_matches or DEFAULT_GREP_MATCHES, self.limits.max_grep_matches)
        room = min(MAX_GREP_RESPONSE_BYTES, self.remaining_read_bytes())
        every = [e.path for e in self.source.index()]
        candidates = self.list_files(glob=glob) if glob else every
        if glob and not candidates:
            self._note_missing(f"grep's glob {glob!r}", glob, every, lines_unseen=True)  # no line read
        timeout = self.limits.regex_timeout_s
        deadline = time.monotonic() + timeout  # one budget for the whole call, not per line
        matches: list[GrepMatch] = []
        size = 0
        truncated = False
        try:
            for path in candidates:
                for number, line in self._grep_file(self.source.lookup(path), compiled, whole, deadline):
                    kept = line[:MAX_LINE_CHARS]
                    cost = len(kept.encode("utf-8")) + len(path)
                    if len(matches) == cap or size + cost > room:
                        truncated = True
                        break
                    matches.append(GrepMatch(path, number, kept))
                    size += cost
                if truncated:
                    break
        except TimeoutError:
            raise PatternError(f"the pattern ran past its {timeout:g} s limit: {pattern[:80]!r}") from None
        if truncated and not matches and room < MAX_GREP_RESPONSE_BYTES:
            raise ContextLimitError(f"grep: the run's {self.limits.max_read_bytes}-byte read budget is spent")
        if not matches:
            self._note_names(pattern, compiled, candidates, deadline)
        with self._lock:
            self._usage += ContextUsage(bytes_read=size)
        return matches, truncated


# Counted repeats are expanded when a pattern compiles, and compiling has no timeout: measured here,
# "((a{1000}){1000}){10}" takes 3 GB and 3 s. The product of every count in a pattern (as if all were
# nested) is held under this bound; 100,000 compiles in about 40 MB.
MAX_REPEAT_PRODUCT = 100_000
_COUNTED_REPEAT = regex.compile(r"(?<!\\)\{(\d+)(?:,(\d*))?\}")


def _check_repeats(pattern: str) -> None:
    product = 1
    for found in _COUNTED_REPEAT.finditer(pattern):
        low, high = found.group(1), found.group(2)
        product *= max(1, int(high) if high else int(low))
        if product > MAX_REPEAT_PRODUCT:
            raise PatternError(
                f"the pattern's counted repeats ({{n}}, {{m,n}}) multiply past {MAX_REPEAT_PRODUCT:,}"
            )


# What is not a letter to match in a pattern: escapes (\S, \W, \p{Lu}, \N{...}), group names and
# inline flags; a capital elsewhere is one to match, and switches smart case off.
_NOT_LITERAL = regex.compile(r"\\[pPN]\{[^}]*\}|\\.|\(\?P?<[A-Za-z_]\w*>|\(\?[a-zA-Z-]+[:)]")


def _has_capital(pattern: str) -> bool:
    return any(c.isupper() for c in _NOT_LITERAL.sub("", pattern))


def _compile(pattern: str, multiline: bool = False, ignore_case: bool = False) -> Any:
    if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_REGEX_CHARS:
        raise PatternError(f"a pattern must be a non-empty str of at most {MAX_REGEX_CHARS} characters")
    _check_repeats(pattern)
    flags = regex.VERSION0 | (regex.MULTILINE if multiline else 0) | (regex.IGNORECASE if ignore_case else 0)
    try:
        return regex.compile(pattern, flags)
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
    # Search from the start of each candidate line, and after it from the start of the next line: a
    # match running past a newline must not hide the lines it ran over. For a line-local pattern this
    # finds every line that matches alone: the leftmost match from a line's start begins on that line
    # whenever the line matches alone.
    number, counted_to, pos, end_of_text = 1, 0, 0, len(text) - (1 if text.endswith("\n") else 0)
    while pos <= end_of_text:
        found = whole_rx.search(text, pos, timeout=_remaining(deadline))
        if found is None:
            return
        start = text.rfind("\n", 0, found.start()) + 1
        if start > end_of_text:
            return
        end = text.find("\n", start)
        end = len(text) if end == -1 else end
        number += text.count("\n", counted_to, start)
        counted_to = start
        line = text[start:end]
        if line_rx.search(line, timeout=_remaining(deadline)):
            yield number, line
        pos = end + 1
