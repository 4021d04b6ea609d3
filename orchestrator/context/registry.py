"""Contexts kept for tenants: uploaded archives and directories an operator registered, by id.

    root/                      0700, locked (flock on root/.lock) by one registry at a time
      .staging/<id>/           an upload under way (a TarReceiver's staging directory)
      <tenant>/                0700
        <id>.json              the manifest: a context exists exactly when its manifest does
        <id>/                  an upload's files (0755 directories, 0644 files: the sandbox reads them)

An upload is extracted into `.staging`, renamed to `<tenant>/<id>/`, and only then is its manifest
written (temporary file + rename); a delete removes the manifest first. So at start, whatever a crash
left (staging directories, temporary manifests, trees without a manifest) is removed, and nothing half
made is ever listed. A registered directory is a manifest holding its resolved path; it is never copied.

Ids are 128 random bits in hex. A tenant sees only its own contexts: another tenant's id and a missing
one are looked up the same way (one dict keyed by (tenant, id)) and give the same NotFoundError.

`bytes_used(tenant)` counts uploads (and uploads being committed), not registered directories, which
are the operator's. An upload may use the tenant's quota less what is used when it starts; the quota is
checked again, with the upload's real size, when it is committed, so concurrent uploads cannot overrun
it together.

The methods are coroutines; file system work runs in a worker thread (`asyncio.to_thread`).
"""

from __future__ import annotations

import asyncio
import builtins
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInputError, NotFoundError, QuotaError, RLMError
from .sources import FileSystemContext
from .uploads import QUOTA, TarReceiver, UploadLimits, UploadSummary

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1
MAX_NAME_CHARS = 256
_ID = re.compile(r"[0-9a-f]{32}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_STAGING = ".staging"
_LOCK = ".lock"
_KINDS = ("upload", "directory")


@dataclass(frozen=True, slots=True)
class ContextInfo:
    """What a tenant may know of one of its contexts (a registered directory's path is not in it)."""

    context_id: str
    name: str
    kind: str  # "upload" or "directory"
    bytes: int  # content bytes; for a directory, as counted when it was registered
    files: int
    created_unix: float


@dataclass(frozen=True, slots=True)
class _Entry:
    tenant: str
    info: ContextInfo
    path: str  # the upload's tree, or the registered directory


class ContextRegistry:
    """The contexts of every tenant under one root directory, surviving a restart."""

    def __init__(self, root_dir: str | os.PathLike[str], *, limits: UploadLimits | None = None) -> None:
        self.root = Path(root_dir).expanduser().resolve()
        self.limits = limits or UploadLimits()
        self._mutex = threading.Lock()
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._by_tenant: dict[str, dict[str, _Entry]] = {}
        self._committing: dict[str, int] = {}  # tenant -> bytes of uploads between rename and manifest
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock_fd = os.open(
            self.root / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
        )
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise RLMError(f"the context root {self.root} is in use by another ContextRegistry") from None
        try:
            self._recover()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the root (another registry may then open it). Safe to call twice."""
        fd, self._lock_fd = self._lock_fd, -1
        if fd >= 0:
            os.close(fd)  # releases the flock

    # -- uploads -----------------------------------------------------------------------------------

    async def create_upload(self, tenant: str, name: str, quota_bytes: int) -> ContextUpload:
        """Start receiving an archive for `tenant`; `quota_bytes` is the tenant's whole context quota."""
        _check_tenant(tenant)
        _check_name(name)
        if isinstance(quota_bytes, bool) or not isinstance(quota_bytes, int) or quota_bytes < 0:
            raise InvalidInputError(f"the byte quota must be a non-negative int, got {quota_bytes!r}")
        context_id = secrets.token_hex(16)
        remaining = max(0, quota_bytes - self._used(tenant))

        def start() -> TarReceiver:
            tenant_dir = self._tenant_dir(tenant)
            return TarReceiver(
                tenant_dir / context_id,
                quota_bytes=remaining,
                limits=self.limits,
                staging=self.root / _STAGING / context_id,
            )

        receiver = await asyncio.to_thread(start)
        return ContextUpload(self, tenant, name, context_id, quota_bytes, receiver)

    def _commit_upload(
        self, tenant: str, name: str, context_id: str, quota_bytes: int, summary: UploadSummary
    ) -> ContextInfo:
        """After the tree is in place: check the quota again, write the manifest, list it."""
        with self._mutex:
            used = self._used_locked(tenant)
            if used + summary.bytes > quota_bytes:
                raise QuotaError(
                    f"the upload ({summary.bytes} bytes) exceeds the context quota of {quota_bytes} bytes "
                    f"({used} in use)",
                    quota=QUOTA,
                )
            self._committing[tenant] = self._committing.get(tenant, 0) + summary.bytes
        try:
            info = ContextInfo(context_id, name, "upload", summary.bytes, summary.files, time.time())
            self._write_manifest(tenant, info, None)
            self._add(_Entry(tenant, info, summary.path))
            return info
        finally:
            with self._mutex:
                self._committing[tenant] -= summary.bytes

    # -- directories -------------------------------------------------------------------------------

    async def register_directory(self, tenant: str, name: str, path: str | os.PathLike[str]) -> ContextInfo:
        """Give `tenant` a server directory as a context (by reference: it is never copied)."""
        _check_tenant(tenant)
        _check_name(name)

        def register() -> ContextInfo:
            try:
                resolved = Path(path).expanduser().resolve(strict=True)
            except (OSError, RuntimeError) as exc:
                raise InvalidInputError(f"cannot register {os.fspath(path)!r}: {exc}") from None
            if not resolved.is_dir():
                raise InvalidInputError(f"cannot register {os.fspath(path)!r}: not a directory")
            if resolved == self.root or self.root in resolved.parents or resolved in self.root.parents:
                raise InvalidInputError(
                    f"cannot register {os.fspath(path)!r}: it overlaps the context registry's own root"
                )
            fs = FileSystemContext(resolved)
            try:
                shape = fs.shape()
            finally:
                fs.close()
            context_id = secrets.token_hex(16)
            info = ContextInfo(
                context_id, name, "directory", shape.total_bytes, shape.file_count, time.time()
            )
            self._write_manifest(tenant, info, str(resolved))
            self._add(_Entry(tenant, info, str(resolved)))
            return info

        return await asyncio.to_thread(register)

    # -- queries -----------------------------------------------------------------------------------

    async def list(self, tenant: str) -> builtins.list[ContextInfo]:
        """The tenant's contexts, oldest first."""
        _check_tenant(tenant)
        with self._mutex:
            entries = builtins.list(self._by_tenant.get(tenant, {}).values())
        return sorted((e.info for e in entries), key=lambda i: (i.created_unix, i.context_id))

    async def get(self, tenant: str, context_id: str) -> ContextInfo:
        """One of the tenant's contexts; NotFoundError, alike, for a missing id and another tenant's."""
        return self._lookup(tenant, context_id).info

    async def source(self, tenant: str, context_id: str) -> FileSystemContext:
        """A FileSystemContext over the context, to run over; the caller closes it."""
        entry = self._lookup(tenant, context_id)

        def make() -> FileSystemContext:
            if not os.path.isdir(entry.path):
                raise InvalidInputError(f"the directory of the context {context_id!r} no longer exists")
            return FileSystemContext(entry.path)

        return await asyncio.to_thread(make)

    async def delete(self, tenant: str, context_id: str) -> None:
        """Remove the context (an upload's files too; a registered directory is left alone)."""
        entry = self._lookup(tenant, context_id)
        with self._mutex:
            if self._entries.pop((tenant, context_id), None) is None:
                raise _not_found(context_id)  # deleted meanwhile
            self._by_tenant[tenant].pop(context_id, None)

        def remove() -> None:
            try:
                os.unlink(self._manifest_path(tenant, context_id))
                _fsync_dir(self.root / tenant)
            except OSError as exc:
                self._add(entry)  # still there: keep listing it
                raise RLMError(f"the context {context_id!r} could not be deleted: {exc.strerror}") from exc
            if entry.info.kind == "upload":
                shutil.rmtree(entry.path, ignore_errors=True)  # a leftover is removed at the next start

        await asyncio.to_thread(remove)

    async def bytes_used(self, tenant: str) -> int:
        """Bytes of the tenant's uploads (registered directories are not counted)."""
        _check_tenant(tenant)
        return self._used(tenant)

    # -- internals ---------------------------------------------------------------------------------

    def _lookup(self, tenant: str, context_id: str) -> _Entry:
        _check_tenant(tenant)
        with self._mutex:
            entry = self._entries.get((tenant, context_id)) if isinstance(context_id, str) else None
        if entry is None:
            raise _not_found(context_id)
        return entry

    def _used(self, tenant: str) -> int:
        with self._mutex:
            return self._used_locked(tenant)

    def _used_locked(self, tenant: str) -> int:
        uploads = self._by_tenant.get(tenant, {}).values()
        return sum(e.info.bytes for e in uploads if e.info.kind == "upload") + self._committing.get(tenant, 0)

    def _add(self, entry: _Entry) -> None:
        with self._mutex:
            self._entries[(entry.tenant, entry.info.context_id)] = entry
            self._by_tenant.setdefault(entry.tenant, {})[entry.info.context_id] = entry

    def _tenant_dir(self, tenant: str) -> Path:
        path = self.root / tenant
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    def _manifest_path(self, tenant: str, context_id: str) -> Path:
        return self.root / tenant / f"{context_id}.json"

    def _write_manifest(self, tenant: str, info: ContextInfo, directory: str | None) -> None:
        """Write the manifest atomically: a temporary file, fsync, rename, fsync the directory."""
        tenant_dir = self._tenant_dir(tenant)
        body = {
            "format": MANIFEST_FORMAT,
            "tenant": tenant,
            "context_id": info.context_id,
            "name": info.name,
            "kind": info.kind,
            "bytes": info.bytes,
            "files": info.files,
            "created_unix": info.created_unix,
            "directory": directory,
        }
        data = json.dumps(body, ensure_ascii=False, sort_keys=True).encode("utf-8")
        tmp = tenant_dir / f".{info.context_id}.json.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, self._manifest_path(tenant, info.context_id))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(tenant_dir)

    def _recover(self) -> None:
        """Remove what a crash left half made; load every manifest."""
        staging = self.root / _STAGING
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        from ..sandbox.manager import _TENANT

        for tenant_dir in sorted(self.root.iterdir()):
            if tenant_dir.name in (_STAGING, _LOCK):
                continue
            if not _TENANT.fullmatch(tenant_dir.name) or tenant_dir.is_symlink() or not tenant_dir.is_dir():
                log.warning(
                    "context registry %s: ignoring %s (not a tenant directory)", self.root, tenant_dir
                )
                continue
            self._recover_tenant(tenant_dir.name, tenant_dir)

    def _recover_tenant(self, tenant: str, tenant_dir: Path) -> None:
        manifests = {p.name[: -len(".json")] for p in tenant_dir.glob("*.json") if _ID.fullmatch(p.stem)}
        for path in tenant_dir.iterdir():
            name = path.name
            if name.startswith(".") and name.endswith(".json.tmp"):
                path.unlink(missing_ok=True)  # a manifest never renamed into place
            elif _ID.fullmatch(name) and name not in manifests and not path.is_symlink() and path.is_dir():
                log.info("context registry: removing %s, an upload never committed", path)
                shutil.rmtree(path, ignore_errors=True)
        for context_id in sorted(manifests):
            entry = self._load(tenant, tenant_dir, context_id)
            if entry is not None:
                self._add(entry)

    def _load(self, tenant: str, tenant_dir: Path, context_id: str) -> _Entry | None:
        path = tenant_dir / f"{context_id}.json"
        try:
            body = json.loads(path.read_bytes())
            kind = body["kind"]
            info = ContextInfo(
                context_id=body["context_id"],
                name=body["name"],
                kind=kind,
                bytes=int(body["bytes"]),
                files=int(body["files"]),
                created_unix=float(body["created_unix"]),
            )
            ok = (
                body["format"] == MANIFEST_FORMAT
                and body["tenant"] == tenant
                and info.context_id == context_id
                and kind in _KINDS
                and isinstance(info.name, str)
            )
            where = str(tenant_dir / context_id) if kind == "upload" else body["directory"]
            ok = ok and isinstance(where, str)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("context registry: ignoring the unreadable manifest %s: %s", path, exc)
            return None
        if not ok:
            log.warning(
                "context registry: ignoring the manifest %s: it does not describe %s", path, context_id
            )
            return None
        if kind == "upload" and not os.path.isdir(where):
            log.warning("context registry: ignoring %s: its files are missing", path)
            return None
        return _Entry(tenant, info, where)


class ContextUpload:
    """An upload under way: `await feed(chunk)` for each chunk, then `await finish()`; or `abort()`.

    A refused archive raises UploadError (or QuotaError) from `feed` or `finish`, and nothing of it is
    left on disk. Dropped without finishing, it removes what it wrote when it is collected.
    """

    def __init__(
        self,
        registry: ContextRegistry,
        tenant: str,
        name: str,
        context_id: str,
        quota_bytes: int,
        receiver: TarReceiver,
    ) -> None:
        self.tenant = tenant
        self.name = name
        self.context_id = context_id
        self._registry = registry
        self._quota_bytes = quota_bytes
        self._receiver = receiver

    @property
    def received_bytes(self) -> int:
        return self._receiver.received_bytes

    async def feed(self, data: bytes) -> None:
        await asyncio.to_thread(self._receiver.feed, data)

    async def finish(self) -> ContextInfo:
        """Complete the upload and register it; its ContextInfo."""
        return await asyncio.to_thread(self._finish)

    def _finish(self) -> ContextInfo:
        summary = self._receiver.finish()
        try:
            return self._registry._commit_upload(
                self.tenant, self.name, self.context_id, self._quota_bytes, summary
            )
        except BaseException:
            shutil.rmtree(summary.path, ignore_errors=True)
            raise

    async def abort(self) -> None:
        """Drop the upload and everything it wrote. Safe to call twice, and after finish (then a no-op)."""
        await asyncio.to_thread(self._receiver.abort)


def _not_found(context_id: object) -> NotFoundError:
    shown = context_id[:64] if isinstance(context_id, str) else repr(context_id)[:64]
    return NotFoundError(f"no such context: {shown!r}")


def _check_tenant(tenant: str) -> None:
    from ..sandbox.manager import _check_tenant as check  # the manager's rule (imported late: no cycle)

    check(tenant)


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_CHARS:
        raise InvalidInputError(f"a context name is 1-{MAX_NAME_CHARS} characters: {str(name)[:80]!r}")
    if _CONTROL.search(name):
        raise InvalidInputError(f"a context name may not hold control characters: {name[:80]!r}")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"a context name must be valid Unicode: {name[:80]!r}") from None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
