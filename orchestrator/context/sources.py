"""Context sources: where the files an RLM explores come from, behind one protocol.

- FileSystemContext: a directory, narrowed by include/exclude globs (see `globs`).
- InMemoryContext: a string, a list of strings, or a mapping of names to text (the forms the paper
  loads as `context`), written once to a private temporary directory so the same file API, the same
  path safety and the same read-only mount serve it. Any other JSON value (numbers, nested lists and
  dicts, as the official REPL loads them) is one file, `context.json`, which the sandbox decodes.

A source indexes its files once, lazily. The index lists regular files only, and only those that
resolve beneath the root: directory symlinks are not followed, file symlinks are kept only when they
resolve, by file descriptor, to a regular file inside the root.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import ContextPathError, InvalidInputError
from . import globs, paths
from .paths import normalise

# str, list[str], dict[str, str], or any other JSON value (numbers, bool, None, nested lists and dicts).
ContextValue = str | Sequence[Any] | Mapping[str, Any] | int | float | bool | None


@dataclass(frozen=True, slots=True)
class FileEntry:
    path: str  # relative to the root, '/'-separated, always valid UTF-8 (see display_name)
    size: int
    modified: float
    real: str = ""  # the name on disk when it is not valid UTF-8 (surrogate-escaped); "": same as path

    @property
    def disk_path(self) -> str:
        return self.real or self.path


def display_name(name: str) -> str:
    """A file name as the model sees it: itself when valid UTF-8, else each byte that is not shown
    as `\\xNN` (b'caf\\xe9.txt' -> 'caf\\\\xe9.txt'), so every file can be named over the wire."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")


@dataclass(frozen=True, slots=True)
class ContextShape:
    """What the model may be told about a context: its kind and size, never its content."""

    kind: str  # "filesystem", "text", "list", "mapping" or "json"
    file_count: int
    total_bytes: int
    files_by_extension: dict[str, int]
    # For in-memory contexts: (name, file path) in the value's order, so the sandbox rebuilds it.
    entries: tuple[tuple[str, str], ...] = ()


class ContextSource(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def mountable(self) -> bool: ...  # may root() be mounted whole? False when the index hides files
    def root(self) -> str: ...  # a directory to mount read-only at /context
    def index(self) -> Sequence[FileEntry]: ...
    def lookup(self, path: str) -> FileEntry: ...
    def open(self, path: str) -> int: ...
    def shape(self) -> ContextShape: ...
    def close(self) -> None: ...


class FileSystemContext:
    """A directory on the host, optionally narrowed by include and exclude globs."""

    kind = "filesystem"

    @property
    def mountable(self) -> bool:
        """A narrowed context is not mounted: the container must not see what the patterns leave out."""
        return not (self.include or self.exclude)

    def __init__(
        self,
        root: str | os.PathLike[str],
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        *,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        """`on_progress(files_seen)` is called now and then while a large tree is indexed."""
        self._root = str(Path(root).expanduser().resolve())
        self._on_progress = on_progress
        self.include = tuple(include)
        self.exclude = tuple(exclude)
        for pattern in (*self.include, *self.exclude):
            globs.compile_glob(pattern)  # a bad pattern is refused now, not at the first listing
        self._lock = threading.Lock()
        self._fd_lock = threading.Lock()
        self._entries: dict[str, FileEntry] | None = None
        self._root_fd: int | None = None
        self._finalizer: weakref.finalize | None = None
        self._closed = False

    def root(self) -> str:
        if not os.path.isdir(self._root):
            raise InvalidInputError(f"context directory does not exist: {self._root}")
        return self._root

    def _fd(self) -> int:
        with self._fd_lock:
            if self._closed:
                raise InvalidInputError(f"the context {self._root} is closed")
            if self._root_fd is None:
                self._root_fd = os.open(self.root(), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                self._finalizer = weakref.finalize(self, os.close, self._root_fd)
            return self._root_fd

    def index(self) -> Sequence[FileEntry]:
        return list(self._index().values())

    def _index(self) -> dict[str, FileEntry]:
        with self._lock:
            if self._entries is None:
                found = _displayed(_walk(self._fd(), self._on_progress))
                # A symlink counts only if its target is selected too: a link cannot reach an excluded file.
                names = set(found) | {target for _entry, target in found.values()}
                keep = set(globs.select(sorted(names), self.include, self.exclude))
                self._entries = {
                    p: entry for p, (entry, target) in sorted(found.items()) if p in keep and target in keep
                }
            return self._entries

    def lookup(self, path: str) -> FileEntry:
        """The indexed file at `path`, or ContextPathError (escapes and excluded files alike)."""
        paths.check_relative(path)
        normal = normalise(path)
        entry = self._index().get(normal)
        if entry is None:
            # Resolve anyway: an escape gets its own message, an unlisted file "no such file".
            os.close(paths.open_beneath(self._fd(), path))
            raise ContextPathError("no such file in the context", path=path)  # excluded: not told apart
        return entry

    def open(self, path: str) -> int:
        # Open the indexed name itself, so a `..` after a directory symlink cannot reach an excluded file.
        return paths.open_beneath(self._fd(), self.lookup(path).disk_path)

    def shape(self) -> ContextShape:
        entries = self._index().values()
        return ContextShape(
            kind=self.kind,
            file_count=len(entries),
            total_bytes=sum(e.size for e in entries),
            files_by_extension=extension_counts(e.path for e in entries),
        )

    def close(self) -> None:
        """Release the root descriptor. Safe to call twice; the context cannot be used afterwards."""
        with self._fd_lock:
            self._closed = True
            if self._finalizer is not None:
                self._finalizer()  # closes the fd exactly once
            self._root_fd = None


class InMemoryContext:
    """A string, a list of strings, or a mapping of names to text, served as files; any other JSON
    value as one file, context.json."""

    mountable = True

    def __init__(self, value: ContextValue) -> None:
        self.kind, self._files = _files_for(value)
        self._lock = threading.Lock()
        self._dir: str | None = None
        self._fs: FileSystemContext | None = None
        self._cleanup: weakref.finalize | None = None

    def _materialised(self) -> FileSystemContext:
        with self._lock:
            return self._materialise_once()

    def _materialise_once(self) -> FileSystemContext:
        if self._fs is None:
            self._dir = tempfile.mkdtemp(prefix="rlm-ctx-")
            self._cleanup = weakref.finalize(self, shutil.rmtree, self._dir, True)
            for _name, rel, text in self._files:
                target = Path(self._dir, rel)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
            for dirpath, _dirs, _files in os.walk(self._dir):  # readable by the sandbox user
                os.chmod(dirpath, 0o755)
            self._fs = FileSystemContext(self._dir)
        return self._fs

    def root(self) -> str:
        return self._materialised().root()

    def index(self) -> Sequence[FileEntry]:
        return self._materialised().index()

    def lookup(self, path: str) -> FileEntry:
        return self._materialised().lookup(path)

    def open(self, path: str) -> int:
        return self._materialised().open(path)

    def shape(self) -> ContextShape:
        base = self._materialised().shape()
        entries = tuple((name, rel) for name, rel, _text in self._files)
        return ContextShape(self.kind, base.file_count, base.total_bytes, base.files_by_extension, entries)

    def close(self) -> None:
        if self._fs is not None:
            self._fs.close()
        if self._cleanup is not None:
            self._cleanup()


def _files_for(value: ContextValue) -> tuple[str, list[tuple[str, str, str]]]:
    if isinstance(value, str):
        return "text", [("context", "context.txt", value)]
    if _is_json_only(value):
        return "json", [("context", "context.json", _json_text(value))]
    if isinstance(value, Mapping):
        files = []
        for name, text in value.items():
            if not isinstance(name, str) or not isinstance(text, str):
                raise InvalidInputError("a mapping context must map str names to str text")
            paths.check_relative(name)
            rel = normalise(name)
            if rel in ("", ".") or rel.startswith("../") or rel == "..":
                raise ContextPathError("a mapping context's names must be relative file paths", path=name)
            files.append((name, rel, text))
        if len({rel for _n, rel, _t in files}) != len(files):
            raise InvalidInputError("two names of the mapping context denote the same file")
        return "mapping", files
    if isinstance(value, Sequence):
        if not all(isinstance(item, str) for item in value):
            raise InvalidInputError("a list context must hold str items only")
        width = max(4, len(str(len(value))))
        return "list", [(str(i), f"item_{i:0{width}d}.txt", text) for i, text in enumerate(value)]
    raise InvalidInputError(
        f"a context is a directory, str, list of str or dict of str, not {type(value).__name__}"
    )


def _is_json_only(value: object) -> bool:
    """A value that is not text, a list of text or a mapping of names to text: numbers, bool, None,
    lists or dicts holding anything but str (str, list[str] and dict[str, str] are served as files)."""
    if isinstance(value, bool | int | float) or value is None:
        return True
    if isinstance(value, Mapping):
        return not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    if isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray):
        return not all(isinstance(item, str) for item in value)
    return False


def _json_text(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"an in-memory context must be a JSON value: {exc}") from None


def extension_counts(paths_: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for path in paths_:
        name = path.rsplit("/", 1)[-1]
        ext = name.rsplit(".", 1)[-1].lower() if "." in name.lstrip(".") else ""
        key = f".{ext}" if ext else "(none)"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


MAX_DEPTH = 256


PROGRESS_EVERY = 10_000  # files between two on_progress calls


def _walk(root_fd: int, on_progress: Callable[[int], None] | None = None) -> dict[str, tuple[FileEntry, str]]:
    """Every regular file beneath the root that this process may read, by file descriptor, with the
    in-root path it resolves to (names as on disk).

    Depth first, holding one open directory per level; directory symlinks are not followed; a file
    symlink is kept only if it resolves inside the root. A file this process cannot open for reading
    is not part of the context, on every path (listing, grep, read_file): one rule. Running out of
    descriptors is an error, not a silently shorter index.
    """
    found: dict[str, tuple[FileEntry, str]] = {}
    root_real = os.readlink(f"/proc/self/fd/{root_fd}")
    reported = [0]  # files when on_progress was last called

    def visit(dir_fd: int, prefix: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            return
        subdirs: list[str] = []
        with os.scandir(dir_fd) as entries:
            for entry in entries:
                rel = f"{prefix}{entry.name}"
                try:
                    if entry.is_dir(follow_symlinks=False):
                        subdirs.append(entry.name)
                    elif entry.is_file(follow_symlinks=False):
                        if not _readable(entry.name, dir_fd):
                            continue
                        st = entry.stat(follow_symlinks=False)
                        found[rel] = (FileEntry(rel, st.st_size, st.st_mtime), rel)
                    elif entry.is_symlink():
                        target = _resolved_inside(root_fd, root_real, rel)
                        if target is not None:
                            found[rel] = target
                except OSError as exc:
                    if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOMEM):
                        raise
                    continue  # vanished or unreadable: not part of the context
                if on_progress is not None and len(found) >= reported[0] + PROGRESS_EVERY:
                    reported[0] = len(found)
                    on_progress(len(found))
        for name in sorted(subdirs):
            try:
                child = os.open(
                    name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd
                )
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOMEM):
                    raise
                continue
            try:
                visit(child, f"{prefix}{name}/", depth + 1)
            finally:
                os.close(child)

    visit(root_fd, "", 0)
    return found


def _readable(name: str, dir_fd: int) -> bool:
    """May this process open the file for reading (root may read a mode-000 file; others may not)?"""
    return os.access(name, os.R_OK, dir_fd=dir_fd, effective_ids=True, follow_symlinks=False)


def _displayed(found: dict[str, tuple[FileEntry, str]]) -> dict[str, tuple[FileEntry, str]]:
    """The walk's names as the model sees them (display_name); a name that is not valid UTF-8 keeps
    its name on disk in FileEntry.real. A shown name that collides with a real one is left out."""
    shown: dict[str, tuple[FileEntry, str]] = {}
    for rel, (entry, target) in found.items():
        name = display_name(rel)
        if name != rel:
            if name in found:
                continue  # ambiguous: a file really named like the escape exists
            entry = FileEntry(name, entry.size, entry.modified, real=entry.disk_path)
        shown[name] = (entry, display_name(target))
    return shown


def _resolved_inside(root_fd: int, root_real: str, rel: str) -> tuple[FileEntry, str] | None:
    """For a file symlink: its entry and the in-root path it resolves to, or None if it leaves."""
    try:
        fd = paths.open_beneath(root_fd, rel)
    except ContextPathError:
        return None
    try:
        st = os.fstat(fd)
        real = os.readlink(f"/proc/self/fd/{fd}")
        readable = os.access(f"/proc/self/fd/{fd}", os.R_OK, effective_ids=True)
    finally:
        os.close(fd)
    if not readable:
        return None
    if not real.startswith(root_real.rstrip("/") + "/"):
        return None
    return FileEntry(rel, st.st_size, st.st_mtime), real[len(root_real.rstrip("/")) + 1 :]


ContextInput = ContextSource | os.PathLike[str] | ContextValue


def as_source(context: ContextInput) -> tuple[ContextSource, bool]:
    """What a caller passed as a run's context, as a source; and whether the caller made it (the run
    then closes it). A Path is a directory; a str is the text itself, as the paper passes it, never a
    path; a list of str or a dict of str is an in-memory context."""
    if isinstance(context, FileSystemContext | InMemoryContext):
        return context, False
    if isinstance(context, os.PathLike):
        path = Path(context)
        if not path.is_dir():
            raise InvalidInputError(f"context directory does not exist: {context}")
        return FileSystemContext(path), True
    if isinstance(context, str | Sequence | Mapping | int | float | bool) or context is None:
        return InMemoryContext(context), True
    if hasattr(context, "index") and hasattr(context, "root"):
        return context, False
    raise InvalidInputError(f"unsupported context type: {type(context).__name__}")
