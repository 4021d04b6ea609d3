"""A context of many files, packed into one file for gVisor sandboxes.

Under runsc every open() of the mounted context goes through gVisor's gofer: reading the 8,466 files of
the 45 MB benchmark context one by one took 1.6 to 2.4 s, against 0.08 s for a local process, while
one large file reads at disk speed (45 MB in 0.07 s) and a per-file gRPC read is slower still (about
2 ms a file). So for a runsc sandbox over a mounted context of at least MIN_FILES files, the host
writes the indexed files once per run (per ContextStore) into one pack, `context.pack`, with an index,
`context.pack.json` (path -> offset and size), and links both into the sandbox's socket directory
(mounted read-only at /rlm). read_file in the sandbox then maps the pack and slices it (one open for
the whole context); a file not in the pack is read as before.

It holds exactly the files read_file may read (the host's index, each opened beneath the root by
file descriptor, never following a link out of it), so it shows the sandbox nothing new; the bytes
read from it count against the run's read budget as reads through the mount do. Its files belong to
the sandbox's user, mode 0400, as the socket beside it does (the socket directory is 0711): no other
user of the host reads them; without that user (a non-root orchestrator) there is no pack. It is a snapshot of
the files when the run's first sandbox opens, as the index is. Files over the one-read limit stay out
of it. The pack lives in a private temporary directory, removed when the store is collected.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import weakref
from dataclasses import dataclass

from ..errors import RLMError
from .sources import ContextSource

PACK_NAME = "context.pack"
INDEX_NAME = "context.pack.json"
MIN_FILES = 64  # fewer files cost few opens: not worth a pack
MAX_PACK_BYTES = 1024**3  # a larger context is read file by file (the pack is a copy on the host's disk)


@dataclass(frozen=True, slots=True)
class ContextPack:
    directory: str  # private, 0700, holding PACK_NAME and INDEX_NAME
    files: int
    bytes: int
    uid: int  # the sandbox user owning both files (mode 0400)

    def link_into(self, directory: str) -> None:
        """Put the pack and its index in `directory` (hard links; copies across file systems)."""
        for name in (PACK_NAME, INDEX_NAME):
            source, target = os.path.join(self.directory, name), os.path.join(directory, name)
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
                _own(target, self.uid)


def _own(path: str, uid: int) -> None:
    os.chmod(path, 0o400)
    os.chown(path, uid, -1)


def wanted(file_count: int, total_bytes: int) -> bool:
    return file_count >= MIN_FILES and total_bytes <= MAX_PACK_BYTES


def build(source: ContextSource, max_file_bytes: int, uid: int) -> ContextPack:
    """Write the pack of the source's indexed files (each at most max_file_bytes), owned by `uid`."""
    directory = tempfile.mkdtemp(prefix="rlm-pack-")
    paths: list[str] = []
    offsets: list[int] = []
    sizes: list[int] = []
    try:
        with open(os.path.join(directory, PACK_NAME), "wb") as out:
            position = 0
            for entry in source.index():
                if entry.size > max_file_bytes:
                    continue
                try:
                    fd = source.open(entry.path)
                except (OSError, RLMError):
                    continue  # gone or refused since it was indexed: read_file says so when asked
                try:
                    data = _read_all(fd, max_file_bytes + 1)
                finally:
                    os.close(fd)
                if len(data) > max_file_bytes:
                    continue
                out.write(data)
                paths.append(entry.path)
                offsets.append(position)
                sizes.append(len(data))
                position += len(data)
        index = {"paths": paths, "offsets": offsets, "sizes": sizes}
        with open(os.path.join(directory, INDEX_NAME), "w", encoding="utf-8") as fh:
            json.dump(index, fh, ensure_ascii=False, separators=(",", ":"))
        for name in (PACK_NAME, INDEX_NAME):
            _own(os.path.join(directory, name), uid)  # the sandbox's user alone reads it, through /rlm
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return ContextPack(directory, len(paths), position, uid)


def _read_all(fd: int, limit: int) -> bytes:
    parts, total = [], 0
    while total < limit:
        piece = os.read(fd, min(1 << 20, limit - total))
        if not piece:
            break
        parts.append(piece)
        total += len(piece)
    return b"".join(parts)


class PackCache:
    """Each store's pack, built once on first use (by whichever sandbox asks first), removed when the
    store is collected. Thread-safe: sandboxes of one run may ask at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._packs: weakref.WeakKeyDictionary[object, ContextPack] = weakref.WeakKeyDictionary()

    def get(self, store: object, source: ContextSource, max_file_bytes: int, uid: int) -> ContextPack | None:
        """The store's pack for sandboxes of user `uid` (None when it was built for another user)."""
        with self._lock:
            pack = self._packs.get(store)
            if pack is None:
                pack = self._packs[store] = build(source, max_file_bytes, uid)
                weakref.finalize(store, shutil.rmtree, pack.directory, True)
            return pack if pack.uid == uid else None
