"""The context inside the sandbox: the `context` variable and read_file's fast path through /context.

The host decides what the context holds (its index of files, after include/exclude patterns and path
safety) and sends its shape when the session opens. read_file then reads from the read-only /context
mount, without a round trip per file: the host's list of files (fetched once) says what may be read,
and the mount itself is the wall (the container sees nothing else of the host). The run's read budget
arrives with each cell and what was read goes back with its result, so the host keeps the account.

Under gVisor each open() of the mount is slow, so for a context of many files the host also gives a
pack (orchestrator/context/pack.py): the indexed files in one file beside the socket, /rlm/context.pack,
with an index. read_file maps it and slices it; a file not in it is read from the mount as before.
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Callable, Iterator
from typing import Any

from .errors import ContextPathError, LimitExceededError

MOUNT = "/context"
PACK_DIR = "/rlm"  # the socket's directory: the host puts a context pack there (runsc, many files)
PACK_NAME = "context.pack"
INDEX_NAME = "context.pack.json"


class Pack:
    """The host's pack of the context's files: one mapped file, sliced by the index's offsets."""

    def __init__(self, fd: int, index: dict[str, tuple[int, int]]) -> None:
        self._index = index
        total = max((o + s for o, s in index.values()), default=0)
        self._map = mmap.mmap(fd, total, prot=mmap.PROT_READ) if total else None

    @classmethod
    def open(cls, directory: str) -> Pack | None:
        """The pack in `directory`, or None when there is none (or it cannot be read)."""
        try:
            with open(os.path.join(directory, INDEX_NAME), encoding="utf-8") as fh:
                raw = json.load(fh)
            fd = os.open(os.path.join(directory, PACK_NAME), os.O_RDONLY | os.O_CLOEXEC)
        except (OSError, ValueError):
            return None
        try:
            index = {p: (o, s) for p, o, s in zip(raw["paths"], raw["offsets"], raw["sizes"], strict=True)}
            return cls(fd, index)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        finally:
            os.close(fd)  # the mapping keeps what it needs

    def size(self, path: str) -> int | None:
        found = self._index.get(path)
        return None if found is None else found[1]

    def read(self, path: str, offset: int, want: int) -> bytes:
        start = self._index[path][0] + offset
        assert self._map is not None or want == 0
        return self._map[start : start + want] if want else b""  # type: ignore[index]


def normalise(path: str) -> str:
    """'./a//b/../c' -> 'a/c'; '' and '.' -> ''. Pure string work: escapes are judged elsewhere.

    The host holds its own copy (orchestrator.context.paths.normalise); tests/test_context_paths.py
    holds both to one table of cases, so both sides of the socket agree on every path.
    """
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == ".." and parts and parts[-1] != "..":
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


class LocalReader:
    """read_file over the mount, limited to the host's index, within the run's budget."""

    def __init__(
        self,
        list_all: Callable[[], list[str]],
        max_file_bytes: int,
        root: str = MOUNT,
        pack_dir: str = PACK_DIR,
    ) -> None:
        self._list_all = list_all
        self._allowed: frozenset[str] | None = None
        self._max_file_bytes = max_file_bytes
        self._root = root
        self._pack_dir = pack_dir
        self._pack: Pack | bool | None = False  # False: not looked for yet (the host links it at attach)
        self.budget = 0
        self.bytes_read = 0
        self.files_read = 0

    def start_cell(self, budget: int) -> None:
        self.budget = budget
        self.bytes_read = self.files_read = 0

    def _check(self, path: object) -> str:
        if not isinstance(path, str):
            raise TypeError(f"path must be a str, not {type(path).__name__}")
        if "\x00" in path:
            raise ContextPathError(f"the path contains a NUL byte: {path!r}")
        if path.startswith("/"):
            raise ContextPathError(
                f"absolute paths are refused, paths are relative to the context root: {path!r}"
            )
        normal = normalise(path)
        if normal == ".." or normal.startswith("../"):
            raise ContextPathError(f"the path leaves the context root: {path!r}")
        if self._allowed is None:
            self._allowed = frozenset(self._list_all())
        if normal not in self._allowed:
            raise ContextPathError(f"no such file in the context (or excluded by its patterns): {path!r}")
        return normal

    def read(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        normal = self._check(path)
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        if self._pack is False:
            self._pack = Pack.open(self._pack_dir)
        pack = self._pack if isinstance(self._pack, Pack) else None
        packed = pack.size(normal) if pack is not None else None
        if pack is not None and packed is not None:
            want = self._want(path, packed, offset, length)
            data = pack.read(normal, offset, want)
        else:
            # A name the mount does not show as given (not UTF-8 on disk) or a file the sandbox's user
            # may not read raises OSError here: the caller then asks the host, which serves every
            # indexed file.
            fd = os.open(f"{self._root}/{normal}", os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
            try:
                want = self._want(path, os.fstat(fd).st_size, offset, length)
                data = os.pread(fd, want, offset) if want else b""
            finally:
                os.close(fd)
        self.bytes_read += len(data)
        self.files_read += 1
        return data

    def _want(self, path: str, size: int, offset: int, length: int | None) -> int:
        """The bytes a read of [offset, offset+length) gets, within the one-read limit and the budget."""
        want = max(0, size - offset) if length is None else min(length, max(0, size - offset))
        if want > self._max_file_bytes:
            raise LimitExceededError(
                f"read_file(): reading {want:,} bytes of {path!r} ({size:,} bytes) is over the "
                f"{self._max_file_bytes:,}-byte limit for one read: pass offset and length"
            )
        if self.bytes_read + want > self.budget:
            raise LimitExceededError(
                f"read_file(): reading {path!r} would pass the run's read budget "
                f"({self.budget - self.bytes_read} bytes left)"
            )
        return want


class ContextView:
    """`context` for a directory context: its shape now, its files on demand."""

    def __init__(self, descriptor: Any, api: Any) -> None:
        self.kind = "filesystem"
        self.file_count = int(descriptor.file_count)
        self.total_bytes = int(descriptor.total_bytes)
        self.files_by_extension = dict(descriptor.files_by_extension)
        self._api = api
        self._files: list[str] | None = None

    @property
    def files(self) -> list[str]:
        if self._files is None:
            self._files = self._api.list_files()
        return list(self._files)

    def read(self, path: str, offset: int = 0, length: int | None = None) -> str:
        return str(self._api.read_file(path, offset, length))

    def __len__(self) -> int:
        return self.file_count

    def __iter__(self) -> Iterator[str]:
        return iter(self.files)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and normalise(path) in set(self.files)

    def __getitem__(self, path: str) -> str:
        return self.read(path)

    def __repr__(self) -> str:
        top = ", ".join(f"{ext} {n:,}" for ext, n in list(self.files_by_extension.items())[:8])
        return (
            f"<filesystem context: {self.file_count:,} files, {self.total_bytes:,} bytes ({top}); "
            "list_files(), read_file(path), grep(pattern), get_stats() explore it>"
        )


def build_context(descriptor: Any, api: Any, root: str = MOUNT) -> Any:
    """The value user code sees as `context`: the in-memory value itself, or a view of the files."""
    kind = descriptor.kind

    def text(rel: str) -> str:
        if not descriptor.mounted:  # served over the socket (no mount: a late-bound context)
            return _read_whole(api, rel, int(descriptor.max_file_bytes) or 1024**2)
        with open(f"{root}/{rel}", encoding="utf-8") as fh:
            return fh.read()

    if kind == "text":
        return text(descriptor.entries[0].path)
    if kind == "json":  # any other JSON value (numbers, nested lists and dicts), as one file
        return json.loads(text(descriptor.entries[0].path))
    if kind == "list":
        return [text(entry.path) for entry in descriptor.entries]
    if kind == "mapping":
        return {entry.name: text(entry.path) for entry in descriptor.entries}
    if kind == "filesystem":
        return ContextView(descriptor, api)
    return None


def _read_whole(api: Any, rel: str, chunk: int) -> str:
    """A whole file through read_file, in pieces no larger than one read may be."""
    parts: list[bytes] = []
    offset = 0
    while True:
        piece = api.read_bytes(rel, offset, chunk)
        parts.append(piece)
        offset += len(piece)
        if len(piece) < chunk:
            return b"".join(parts).decode("utf-8", "replace")
