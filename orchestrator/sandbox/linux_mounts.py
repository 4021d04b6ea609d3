"""Linux mount(2) calls for attaching a context to a running container: the Docker backend's late mount.

A running container cannot get a new Docker mount, but a mount made on the host beneath a directory the
container bind-mounted with propagation `rslave` (the directory's own mount being shared) appears inside
it. Done naively (bind the context there, then remount it read-only) the container's copy stays
WRITABLE: the read-only remount changes the host's mount only, after the writable one has propagated.
So the context is bound into a private staging directory first, made read-only there, and only then
moved (`MS_MOVE`) into the slot: what propagates is already read-only.

    prepare_roots(slots, staging)                     # once: slots a shared mount, staging a private one
    attach_read_only(context_dir, work, slot_target)  # per hand-out (work: an empty dir in staging)
    detach(slot_target)                                # at teardown (lazy: MNT_DETACH)

Needs CAP_SYS_ADMIN in the engine's mount namespace (root, on our hosts): a failure is an OSError and
the caller falls back to serving the context over the socket.
"""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_PRIVATE = 1 << 18
MS_SHARED = 1 << 20
MNT_DETACH = 2

_libc: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        lib = ctypes.CDLL(None, use_errno=True)
        c_str = ctypes.c_char_p
        lib.mount.argtypes = [c_str, c_str, c_str, ctypes.c_ulong, ctypes.c_void_p]
        lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        _libc = lib
    return _libc


def mount(source: str | None, target: str, flags: int) -> None:
    """mount(2) without a file system type or data (binds, remounts, moves, propagation changes)."""
    src = os.fsencode(source) if source is not None else None
    if _lib().mount(src, os.fsencode(target), None, flags, None) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"mount {source or ''} {target}: {os.strerror(code)}", target)


def umount(target: str, flags: int = MNT_DETACH) -> bool:
    """umount2(2); False when nothing was mounted there (or the path is gone)."""
    if _lib().umount2(os.fsencode(target), flags) != 0:
        code = ctypes.get_errno()
        if code in (errno.EINVAL, errno.ENOENT):
            return False
        raise OSError(code, f"umount {target}: {os.strerror(code)}", target)
    return True


@dataclass(frozen=True, slots=True)
class MountEntry:
    mount_point: str
    options: str  # per-mount options: "ro,relatime", ...
    propagation: tuple[str, ...]  # "shared:4", "master:2", ...; empty: private


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\ooo octal escapes."""
    out, i = [], 0
    while i < len(field):
        code = field[i + 1 : i + 4]
        if field[i] == "\\" and len(code) == 3 and all(c in "01234567" for c in code):
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """The lines of /proc/PID/mountinfo (see proc(5)), in order."""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 7 or "-" not in fields[6:]:
            continue
        dash = fields.index("-", 6)
        entries.append(MountEntry(_unescape(fields[4]), fields[5], tuple(fields[6:dash])))
    return entries


def mount_at(path: str, mountinfo: str | None = None) -> MountEntry | None:
    """The topmost mount whose mount point is exactly `path`, or None."""
    if mountinfo is None:
        with open("/proc/self/mountinfo") as fh:
            mountinfo = fh.read()
    found = None
    for entry in parse_mountinfo(mountinfo):
        if entry.mount_point == path:
            found = entry  # later lines are mounted on top
    return found


def _own_mount(path: str, shared: bool) -> None:
    """Make `path` a mount point of its own with a propagation of its own: a new shared peer group, or
    private."""
    entry = mount_at(path)
    if entry is not None:
        if any(p.startswith("shared:") for p in entry.propagation) == shared:
            return  # shared as wanted, or not shared (private, or a slave: neither sends mounts out)
    else:
        mount(path, path, MS_BIND)
    mount(None, path, MS_PRIVATE)  # leaves any peer group it joined from its parent
    if shared:
        mount(None, path, MS_SHARED)


def prepare_roots(slots: str, staging: str) -> None:
    """Make `slots` a shared mount (slot directories beneath it are bound into containers with
    propagation rslave) and `staging` a private one (a mount moved out of it must not sit under a
    shared one). Idempotent; the caller serialises concurrent callers."""
    for path in (slots, staging):
        os.makedirs(path, mode=0o711, exist_ok=True)
        os.chmod(path, 0o711)
    _own_mount(slots, shared=True)
    _own_mount(staging, shared=False)


def attach_read_only(context_dir: str, work: str, target: str) -> None:
    """Bind `context_dir` at `target` (an empty directory under the shared slots mount), read-only
    from the moment it appears there: bound at `work` (an empty directory under the private staging
    mount), remounted read-only, then moved. `work` stays, empty, for the caller to remove later
    (off the hand-out's path: an rmdir of a directory a mount just left waits about 2 ms here)."""
    mount(context_dir, work, MS_BIND)  # not recursive: mounts beneath the context are not carried
    try:
        mount(None, work, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
        mount(work, target, MS_MOVE)
    except BaseException:
        umount(work)
        raise
    if not os.statvfs(target).f_flag & os.ST_RDONLY:  # never expected: refuse rather than hand it out
        umount(target)
        raise OSError(errno.EROFS, f"the context at {target} is not read-only after the move", target)


def detach(target: str) -> bool:
    """Lazily unmount whatever was attached at `target`; False when nothing was."""
    detached = False
    while umount(target):  # a mount stacked twice (never by us) is undone whole
        detached = True
    return detached
