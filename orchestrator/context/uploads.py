"""Receive an uploaded context: a tar archive, optionally gzip-compressed, streamed in chunks. Hostile.

`TarReceiver` is fed the archive's bytes as they arrive (`feed`), parses them incrementally and writes
each entry itself into a fresh private staging directory (`0700`); `finish()` checks the archive ended
properly and renames the staging directory into place, atomically. On any refusal or error everything
it wrote is removed, and the receiver refuses any further use with the same error.

Nothing in the archive is trusted. `tarfile.extractall` is never called: 512-byte headers are decoded
one at a time by `tarfile.TarInfo.frombuf` (checksum, numeric fields, ustar prefix) and everything else
(pax and GNU long-name records, sizes, names, types, padding, the end marker) is handled here, so
memory stays bounded whatever the headers claim. Refused, with an `UploadError` naming the entry:
absolute names, `..` components, links of any kind (symbolic and hard), devices, FIFOs, sparse files
and every other type but regular files and directories, more entries than `max_files`, names deeper
than `max_depth` components or longer than `max_name_bytes` (a component) or `max_path_bytes` (the
path), names that are not UTF-8 or hold NUL or control characters, duplicate entries, a directory or
extended header with a size where none belongs, data after the end of the archive, a corrupt or
truncated archive. More content bytes than the quota allows is a `QuotaError` ("context_bytes").
Gzip is inflated here in steps of at most 256 KiB, the ratio of bytes out to bytes in checked after
each step, so a compression bomb is refused at the bound, never inflated first.

Files are created `O_CREAT|O_EXCL|O_NOFOLLOW` mode 0600 beneath a directory descriptor (no path is
ever resolved through the archive's names) and made 0644 once complete; directories end up 0755 (the
sandbox's user reads them through the read-only mount). Owners, modes and times in the archive are
ignored: no setuid bit, no exec bit, mtimes are the time of the upload.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import tarfile
import threading
import weakref
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from ..errors import InvalidInputError, QuotaError, RLMError, UploadError
from . import paths

BLOCK = 512
MAX_META_BYTES = 64 * 1024  # pax and GNU long-name records (with their headers) before one entry
MAX_TRAILING_BYTES = 1024**2  # zero padding accepted after the end-of-archive block
STEP_BYTES = 256 * 1024  # decompressed bytes per inflate step; the ratio is checked after each
QUOTA = "context_bytes"

_GZIP_MAGIC = b"\x1f\x8b"
_ZERO_BLOCK = bytes(BLOCK)
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0 and C1 controls, DEL
_SURROGATES = re.compile(r"[\udc80-\udcff]")  # bytes that were not UTF-8, as surrogateescape keeps them
_PAX_LENGTH = re.compile(rb"[0-9]{1,20}")
_META_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
_FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
_REFUSED_TYPES = {
    tarfile.SYMTYPE: "symbolic links are refused",
    tarfile.LNKTYPE: "hard links are refused",
    tarfile.CHRTYPE: "device files are refused",
    tarfile.BLKTYPE: "device files are refused",
    tarfile.FIFOTYPE: "FIFOs are refused",
    tarfile.GNUTYPE_SPARSE: "sparse files are refused",
}
_FILE, _IMPLICIT_DIR, _DIR = 1, 2, 3  # what a path is, in the receiver's table of what it made

_T = TypeVar("_T")

# Parser states. _ZERO: one zero block seen; the archive ends at the second.
_HEADER, _META, _DATA, _SKIP, _ZERO, _END = range(6)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidInputError(f"upload limits: {message}")


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """What one uploaded archive may hold. The byte quota is given per upload, not here."""

    max_files: int = 100_000  # entries made: files and directories, parents implied by a name included
    max_depth: int = 32  # components of one path
    max_name_bytes: int = paths.MAX_COMPONENT_BYTES  # one component, UTF-8
    max_path_bytes: int = paths.MAX_PATH_BYTES  # the whole relative path, UTF-8
    max_ratio: float = 100.0  # bytes inflated / compressed bytes consumed, checked while inflating
    ratio_grace_bytes: int = 1024**2  # never refused for its ratio below this (tar padding inflates ~1000x)

    def __post_init__(self) -> None:
        _check(1 <= self.max_files <= 10_000_000, f"max_files must be in [1, 10000000], got {self.max_files}")
        _check(1 <= self.max_depth <= 256, f"max_depth must be in [1, 256], got {self.max_depth}")
        _check(
            1 <= self.max_name_bytes <= paths.MAX_COMPONENT_BYTES,
            f"max_name_bytes must be in [1, {paths.MAX_COMPONENT_BYTES}], got {self.max_name_bytes}",
        )
        _check(
            1 <= self.max_path_bytes <= paths.MAX_PATH_BYTES,
            f"max_path_bytes must be in [1, {paths.MAX_PATH_BYTES}], got {self.max_path_bytes}",
        )
        _check(1.0 <= self.max_ratio <= 100_000, f"max_ratio must be in [1, 100000], got {self.max_ratio}")
        _check(0 <= self.ratio_grace_bytes <= 1024**3, "ratio_grace_bytes must be in [0, 1 GiB]")


@dataclass(frozen=True, slots=True)
class UploadSummary:
    """What a finished upload holds, and where it now is."""

    path: str  # the target directory
    files: int  # regular files
    directories: int  # directories made (implied parents included), the root not counted
    bytes: int  # content bytes of the regular files: what counts against the quota
    received_bytes: int  # bytes fed (compressed, if it was)
    archive_bytes: int  # bytes of the tar stream itself (inflated)


class _Handles:
    """The descriptors a receiver holds; closed by `close()` or by the receiver's finalizer."""

    def __init__(self) -> None:
        self.root = -1
        self.file = -1
        self.parent = -1
        self.parent_key: tuple[str, ...] | None = None

    def close_file(self) -> None:
        if self.file >= 0:
            fd, self.file = self.file, -1
            os.close(fd)

    def close(self) -> None:
        self.close_file()
        for name in ("parent", "root"):
            fd = getattr(self, name)
            if fd >= 0:
                setattr(self, name, -1)
                os.close(fd)
        self.parent_key = None


def _discard(handles: _Handles, staging: str) -> None:
    try:
        handles.close()
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class TarReceiver:
    """One upload: `feed(chunk)` as bytes arrive, then `finish()`; or `abort()`.

    `target` must not exist; its parent must. The archive is extracted into `staging` (created, must
    not exist; by default a hidden directory beside `target`, which must be on the same file system),
    renamed to `target` by `finish()`. `quota_bytes` bounds the content bytes of all regular files.
    One caller at a time; a lock makes concurrent calls safe but not meaningful.
    """

    def __init__(
        self,
        target: str | os.PathLike[str],
        *,
        quota_bytes: int,
        limits: UploadLimits | None = None,
        staging: str | os.PathLike[str] | None = None,
    ) -> None:
        if isinstance(quota_bytes, bool) or not isinstance(quota_bytes, int) or quota_bytes < 0:
            raise InvalidInputError(f"the byte quota must be a non-negative int, got {quota_bytes!r}")
        self.limits = limits or UploadLimits()
        self.quota_bytes = quota_bytes
        self.target = os.fspath(target)
        parent = os.path.dirname(os.path.abspath(self.target))
        self.staging = (
            os.fspath(staging)
            if staging is not None
            else os.path.join(parent, f".staging-{secrets.token_hex(8)}")
        )
        if os.path.lexists(self.target):
            raise RLMError("the upload's target already exists")
        self._lock = threading.Lock()
        self._handles = _Handles()
        os.mkdir(self.staging, 0o700)  # fails if it exists: the staging directory is always fresh
        self._finalizer = weakref.finalize(self, _discard, self._handles, self.staging)
        try:
            self._handles.root = os.open(
                self.staging, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            )
        except BaseException:
            self._finalizer()
            raise
        self._error: RLMError | None = None
        self._done = False
        # Input side.
        self._head = b""  # the first bytes, until the compression is known
        self._gzip: bool | None = None
        self._inflater = zlib.decompressobj(31)
        self._member_fresh = True  # no byte of the current gzip member consumed yet
        self.received_bytes = 0
        self.archive_bytes = 0
        # Parser side.
        self._state = _HEADER
        self._buf = bytearray()  # a header or an extended record, being gathered
        self._remaining = 0  # bytes left of the current data, record or padding
        self._pad = 0  # padding after the current data or record
        self._header_at = 0  # stream offset of the header being gathered
        self._meta_type = b""
        self._meta_bytes = 0
        self._pax: dict[str, str] | None = None
        self._longname: str | None = None
        self._longlink = False
        self._entry = ""  # the name of the file being written, for messages
        self._trailing = 0
        self._made: dict[bytes, int] = {}  # path digest -> _FILE / _IMPLICIT_DIR / _DIR
        self.files = 0
        self.directories = 0
        self.bytes = 0  # content bytes of the files made (the current one at its full size)
        self.written_bytes = 0  # content bytes actually written so far

    # -- public ------------------------------------------------------------------------------------

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Take the next bytes of the archive; refused archives raise here, as early as they can."""
        with self._lock:
            self._alive()
            self._guard(self._feed, bytes(data))

    def finish(self) -> UploadSummary:
        """Check the archive is complete and move it into place; the summary of what it holds."""
        with self._lock:
            self._alive()
            return self._guard(self._finish)

    def abort(self) -> None:
        """Remove everything written; the receiver refuses further use. Safe twice, and after finish."""
        with self._lock:
            if not self._done and self._error is None:  # a refused upload keeps its own error
                self._fail(UploadError("the upload was aborted"))

    @property
    def closed(self) -> bool:
        return self._done or self._error is not None

    # -- error handling ----------------------------------------------------------------------------

    def _alive(self) -> None:
        if self._error is not None:
            raise self._error
        if self._done:
            raise UploadError("the upload is already finished")

    def _fail(self, error: RLMError) -> None:
        self._error = error
        self._finalizer()  # closes every descriptor and removes the staging directory, once

    def _guard(self, step: Callable[..., _T], *args: object) -> _T:
        try:
            return step(*args)
        except RLMError as exc:
            self._fail(exc)
            raise
        except zlib.error as exc:
            error = UploadError(f"the archive is corrupt: bad gzip data ({exc})")
            self._fail(error)
            raise error from None
        except OSError as exc:
            store_error = RLMError(f"the upload could not be stored: {exc.strerror or exc}")
            self._fail(store_error)
            raise store_error from exc
        except BaseException:
            self._fail(RLMError("the upload failed"))
            raise

    # -- input: compression ------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        self.received_bytes += len(data)
        if self._gzip is None:
            self._head += data
            if len(self._head) < len(_GZIP_MAGIC):
                return
            data, self._head = self._head, b""
            self._gzip = data.startswith(_GZIP_MAGIC)
        if self._gzip:
            self._inflate(data)
        else:
            self.archive_bytes += len(data)
            self._parse(data)

    def _inflate(self, data: bytes) -> None:
        pending = data
        while True:
            if pending:
                self._member_fresh = False
            out = self._inflater.decompress(pending, STEP_BYTES)
            left = self._inflater.unconsumed_tail
            if out:
                self.archive_bytes += len(out)
                self._check_ratio(self.received_bytes - len(left))
                self._parse(out)
            if self._inflater.eof:  # one gzip member ended; another may follow (gzip allows several)
                rest = self._inflater.unused_data + left
                self._inflater = zlib.decompressobj(31)
                self._member_fresh = True
                if not rest:
                    return
                pending = rest
                continue
            if not left and len(out) < STEP_BYTES:
                return  # all input consumed, nothing held back
            if not out and len(left) == len(pending):
                raise UploadError("the archive is corrupt: the gzip stream makes no progress")
            pending = left

    def _check_ratio(self, consumed: int) -> None:
        limits = self.limits
        if self.archive_bytes > limits.ratio_grace_bytes and self.archive_bytes > limits.max_ratio * max(
            consumed, 1
        ):
            raise UploadError(
                f"the archive expands more than {limits.max_ratio:g} times (a compression bomb?): "
                f"refused after {self.archive_bytes} bytes from {consumed} compressed"
            )

    # -- parser ------------------------------------------------------------------------------------

    def _parse(self, data: bytes) -> None:
        view = memoryview(data)
        pos, end = 0, len(view)
        while pos < end:
            state = self._state
            if state == _DATA:
                k = min(self._remaining, end - pos)
                self._write(view[pos : pos + k])
                pos += k
                self._remaining -= k
                if not self._remaining:
                    self._end_file()
                    self._skip_padding()
            elif state == _SKIP:
                k = min(self._remaining, end - pos)
                pos += k
                self._remaining -= k
                if not self._remaining:
                    self._state = _HEADER
            elif state == _END:
                chunk = view[pos:]
                self._trailing += len(chunk)
                if self._trailing > MAX_TRAILING_BYTES:
                    raise UploadError(
                        f"the archive is corrupt: more than {MAX_TRAILING_BYTES} bytes after its end"
                    )
                if chunk.tobytes().strip(b"\x00"):
                    raise UploadError("the archive is corrupt: data after its end-of-archive marker")
                pos = end
            elif state in (_HEADER, _ZERO):
                if not self._buf:
                    self._header_at = self.archive_bytes - (end - pos)
                k = min(BLOCK - len(self._buf), end - pos)
                self._buf += view[pos : pos + k]
                pos += k
                if len(self._buf) == BLOCK:
                    block = bytes(self._buf)
                    self._buf.clear()
                    self._header(block)
            else:  # _META
                k = min(self._remaining, end - pos)
                self._buf += view[pos : pos + k]
                pos += k
                self._remaining -= k
                if not self._remaining:
                    record = bytes(self._buf)
                    self._buf.clear()
                    self._meta(record)
                    self._skip_padding()

    def _skip_padding(self) -> None:
        self._remaining, self._pad = self._pad, 0
        self._state = _SKIP if self._remaining else _HEADER

    def _expect(self, size: int, state: int) -> None:
        self._remaining = size
        self._pad = -size % BLOCK
        self._state = state
        if not size:
            if state == _META:
                self._meta(b"")
            else:
                self._end_file()
            self._skip_padding()

    def _header(self, block: bytes) -> None:
        at = self._header_at
        if block == _ZERO_BLOCK:
            if self._pax is not None or self._longname is not None or self._longlink:
                raise UploadError("the archive is corrupt: an extended header with no entry after it")
            self._state = _END if self._state == _ZERO else _ZERO
            return
        if self._state == _ZERO:
            raise UploadError(f"the archive is corrupt: a lone zero block before the header at byte {at}")
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            raise UploadError(
                f"not a tar archive, or a corrupt one: {exc} in the header at byte {at}"
            ) from None
        kind = info.type
        if kind in _META_TYPES:
            self._meta_bytes += BLOCK + max(info.size, 0)
            if info.size < 0 or self._meta_bytes > MAX_META_BYTES:
                raise UploadError(
                    f"the archive's extended headers before one entry exceed {MAX_META_BYTES} bytes "
                    f"(at byte {at})"
                )
            self._meta_type = kind
            self._expect(info.size, _META)
            return
        pax = self._pax or {}
        name = info.name
        if kind == tarfile.DIRTYPE and not name and block[:1] == b"/":
            name = "/"  # frombuf strips a directory's trailing slashes: "/" is absolute, not the root
        if self._longname is not None:
            name = self._longname
        if "path" in pax:
            if self._longname is not None:
                raise UploadError("the archive is corrupt: a GNU long name and a pax path for one entry")
            name = pax["path"]
        size = info.size
        if "size" in pax:
            if not _PAX_LENGTH.fullmatch(pax["size"].encode("utf-8", "surrogateescape")):
                raise UploadError("the archive is corrupt: a pax size that is not a number", entry=name)
            size = int(pax["size"])
        self._pax, self._longname, self._longlink, self._meta_bytes = None, None, False, 0
        if kind in _REFUSED_TYPES:
            raise UploadError(_REFUSED_TYPES[kind], entry=name)
        if any(key.startswith("GNU.sparse.") for key in pax):
            raise UploadError("sparse files are refused", entry=name)
        if kind not in _FILE_TYPES and kind != tarfile.DIRTYPE:
            raise UploadError(
                f"entry type {kind.decode('latin-1')!r} is refused: only regular files and directories",
                entry=name,
            )
        if size < 0:
            raise UploadError("the archive is corrupt: a negative size", entry=name)
        if kind == tarfile.DIRTYPE:
            if size:
                raise UploadError("the archive is corrupt: a directory entry with a size", entry=name)
            self._directory(name)
        else:
            self._file(name, size)

    def _meta(self, record: bytes) -> None:
        kind = self._meta_type
        if kind == tarfile.GNUTYPE_LONGNAME:
            if self._longname is not None:
                raise UploadError("the archive is corrupt: two GNU long names for one entry")
            self._longname = record.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
        elif kind == tarfile.GNUTYPE_LONGLINK:
            self._longlink = True  # a link target: the entry it belongs to is a link, refused by its type
        elif kind == tarfile.XHDTYPE:
            if self._pax is not None:
                raise UploadError("the archive is corrupt: two pax headers for one entry")
            self._pax = _pax_records(record)
        else:  # a global pax header: only metadata we ignore may be in it
            records = _pax_records(record)
            for key in records:
                if key in ("path", "size", "linkpath") or key.startswith("GNU.sparse."):
                    raise UploadError(f"a global pax header setting {key!r} is refused")

    # -- names -------------------------------------------------------------------------------------

    def _parts(self, name: str, *, directory: bool) -> list[str]:
        """The checked components of an entry's name (empty: the archive's root)."""
        limits = self.limits
        if _SURROGATES.search(name):
            raise UploadError("the entry's name is not valid UTF-8", entry=name)
        if _BAD_CHARS.search(name):
            raise UploadError("the entry's name holds a NUL or control character", entry=name)
        if name.startswith("/"):
            raise UploadError(
                "absolute names are refused: names are relative to the context root", entry=name
            )
        if not directory and name.endswith("/"):
            raise UploadError("the archive is corrupt: a file name ending in '/'", entry=name)
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise UploadError("'..' in a name is refused", entry=name)
        if len(parts) > limits.max_depth:
            raise UploadError(f"the entry is deeper than {limits.max_depth} levels", entry=name)
        if any(len(p.encode("utf-8")) > limits.max_name_bytes for p in parts):
            raise UploadError(
                f"a component of the name is longer than {limits.max_name_bytes} bytes", entry=name
            )
        if len("/".join(parts).encode("utf-8")) > limits.max_path_bytes:
            raise UploadError(f"the entry's name is longer than {limits.max_path_bytes} bytes", entry=name)
        if not parts and not directory:
            raise UploadError("the archive is corrupt: a file entry naming the archive's root", entry=name)
        return parts

    def _count(self, name: str) -> None:
        if self.files + self.directories >= self.limits.max_files:
            raise UploadError(
                f"the archive holds more than {self.limits.max_files} entries (files and directories)",
                entry=name,
            )

    def _parent(self, parts: list[str], name: str) -> int:
        """A descriptor of the directory that will hold `parts[-1]`, making missing parents."""
        handles = self._handles
        key = tuple(parts[:-1])
        if handles.parent_key == key:
            return handles.parent
        if handles.parent >= 0:
            os.close(handles.parent)
            handles.parent, handles.parent_key = -1, None
        fd = os.dup(handles.root)
        try:
            for i, part in enumerate(key):
                digest = _digest(key[: i + 1])
                made = self._made.get(digest)
                if made == _FILE:
                    raise UploadError("a parent of the entry is a file in the archive", entry=name)
                if made is None:
                    self._count(name)
                    child = _make_directory(fd, part)
                    self._made[digest] = _IMPLICIT_DIR
                    self.directories += 1
                else:
                    child = os.open(
                        part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
                    )
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        handles.parent, handles.parent_key = fd, key
        return fd

    # -- entries -----------------------------------------------------------------------------------

    def _directory(self, name: str) -> None:
        parts = self._parts(name, directory=True)
        if not parts:
            return  # "./": the root itself
        digest = _digest(parts)
        made = self._made.get(digest)
        if made in (_FILE, _DIR):
            raise UploadError("duplicate entry in the archive", entry=name)
        if made == _IMPLICIT_DIR:  # made for an earlier entry inside it; now named itself
            self._made[digest] = _DIR
            return
        parent = self._parent(parts, name)
        self._count(name)
        try:
            os.close(_make_directory(parent, parts[-1]))
        except FileExistsError:
            raise UploadError("duplicate entry in the archive", entry=name) from None
        self._made[digest] = _DIR
        self.directories += 1

    def _file(self, name: str, size: int) -> None:
        parts = self._parts(name, directory=False)
        digest = _digest(parts)
        if digest in self._made:
            raise UploadError("duplicate entry in the archive", entry=name)
        if self.bytes + size > self.quota_bytes:
            raise QuotaError(
                f"the upload exceeds its quota of {self.quota_bytes} bytes at the entry {name[:200]!r} "
                f"({size} bytes, {self.bytes} before it)",
                quota=QUOTA,
            )
        parent = self._parent(parts, name)
        self._count(name)
        try:
            fd = os.open(
                parts[-1],
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY,
                0o600,
                dir_fd=parent,
            )
        except FileExistsError:
            raise UploadError("duplicate entry in the archive", entry=name) from None
        self._handles.file = fd
        self._made[digest] = _FILE
        self.bytes += size
        self._entry = name
        self._expect(size, _DATA)

    def _write(self, data: memoryview) -> None:
        fd = self._handles.file
        self.written_bytes += len(data)
        while data:
            data = data[os.write(fd, data) :]

    def _end_file(self) -> None:
        os.fchmod(self._handles.file, 0o644)
        self._handles.close_file()
        self.files += 1

    # -- the end -----------------------------------------------------------------------------------

    def _finish(self) -> UploadSummary:
        if self._gzip is None:  # fewer than two bytes arrived
            if not self._head:
                raise UploadError("the upload is empty: no archive was received")
            self._gzip = False
            self.archive_bytes += len(self._head)
            self._parse(self._head)
        if self._gzip and not self._member_fresh:
            raise UploadError("the archive is truncated: the gzip stream ends early")
        if self._state != _END:
            where = f" (inside the entry {self._entry[:200]!r})" if self._state == _DATA else ""
            raise UploadError(f"the archive is truncated: it ends before its end-of-archive marker{where}")
        if os.path.lexists(self.target):
            raise RLMError("the upload's target already exists")
        os.fchmod(self._handles.root, 0o755)
        self._handles.close()
        os.rename(self.staging, self.target)
        self._finalizer.detach()
        self._done = True
        return UploadSummary(
            path=self.target,
            files=self.files,
            directories=self.directories,
            bytes=self.bytes,
            received_bytes=self.received_bytes,
            archive_bytes=self.archive_bytes,
        )


def _digest(parts: list[str] | tuple[str, ...]) -> bytes:
    """A fixed-size key for a path: the table of what was made stays small whatever the names."""
    return hashlib.blake2b("/".join(parts).encode("utf-8"), digest_size=16).digest()


def _make_directory(parent_fd: int, name: str) -> int:
    os.mkdir(name, 0o700, dir_fd=parent_fd)
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
    os.fchmod(fd, 0o755)
    return fd


def _pax_records(data: bytes) -> dict[str, str]:
    """A pax extended header's records, `"%d %s=%s\\n"` each; anything else is a corrupt archive."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        if not data[pos:].strip(b"\x00"):
            break  # NUL padding after the last record
        space = data.find(b" ", pos, pos + 21)
        if space < 0 or not _PAX_LENGTH.fullmatch(data[pos:space]):
            raise UploadError(f"the archive is corrupt: a malformed pax record at offset {pos}")
        length = int(data[pos:space])
        if length <= space - pos + 3 or pos + length > len(data) or data[pos + length - 1] != 0x0A:
            raise UploadError(f"the archive is corrupt: a malformed pax record at offset {pos}")
        key, eq, value = data[space + 1 : pos + length - 1].partition(b"=")
        if not eq or not key:
            raise UploadError(f"the archive is corrupt: a malformed pax record at offset {pos}")
        try:
            keyword = key.decode("utf-8")
        except UnicodeDecodeError:
            raise UploadError("the archive is corrupt: a pax keyword that is not UTF-8") from None
        records[keyword] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def receive(
    target: str | os.PathLike[str],
    chunks: Iterable[bytes],
    *,
    quota_bytes: int,
    limits: UploadLimits | None = None,
) -> UploadSummary:
    """Receive a whole archive from an iterable of byte chunks (a convenience over TarReceiver)."""
    receiver = TarReceiver(target, quota_bytes=quota_bytes, limits=limits)
    try:
        for chunk in chunks:
            receiver.feed(chunk)
        return receiver.finish()
    finally:
        receiver.abort()
