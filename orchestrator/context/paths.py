"""Open a path named by untrusted code, beneath a context root, by file descriptor.

A string check followed by open() is a race (a symlink swapped in between) and easy to get wrong, so
paths are resolved by the kernel relative to an open root directory: `openat2(RESOLVE_BENEATH |
RESOLVE_NO_MAGICLINKS)` where the kernel has it (Linux 5.6+), otherwise a walk one component at a time
with O_NOFOLLOW that follows in-root symlinks itself. Either way: absolute paths, `..` that leaves the
root, symlinks resolving outside it, symlink loops, NUL bytes, over-long paths and anything that is not
a regular file are refused with ContextPathError naming the path.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat

from ..errors import ContextPathError

MAX_PATH_BYTES = 4096


def normalise(path: str) -> str:
    """'./a//b/../c' -> 'a/c'; '' and '.' -> ''. Pure string work: escapes are judged elsewhere.

    The sandbox runtime holds its own copy (rlm_sandbox.context_api.normalise: the host package never
    imports the sandbox package, nor the sandbox the host's); tests/test_context_paths.py holds both to
    one table of cases, so both sides of the socket agree on every path.
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


MAX_COMPONENT_BYTES = 255
MAX_SYMLINK_HOPS = 40

_SYS_OPENAT2 = 437  # the same number on every architecture (added after the syscall tables merged)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_BENEATH = 0x08


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_openat2_ok: bool | None = None  # learnt on first use: ENOSYS means the kernel has no openat2


def check_relative(path: object) -> str:
    """The checks that need no file system: type, NUL, absolute, length. Returns the path."""
    if not isinstance(path, str):
        raise ContextPathError(f"a path must be a str, not {type(path).__name__}", path=repr(path))
    if "\x00" in path:
        raise ContextPathError("the path contains a NUL byte", path=path)
    if path.startswith("/"):
        raise ContextPathError(
            "absolute paths are refused: paths are relative to the context root", path=path
        )
    encoded = path.encode("utf-8", "surrogateescape")
    if len(encoded) > MAX_PATH_BYTES:
        raise ContextPathError(f"the path is longer than {MAX_PATH_BYTES} bytes", path=path[:80] + "...")
    if any(len(part) > MAX_COMPONENT_BYTES for part in encoded.split(b"/")):
        raise ContextPathError(f"a path component is longer than {MAX_COMPONENT_BYTES} bytes", path=path)
    return path


def open_beneath(root_fd: int, path: str, *, directory: bool = False) -> int:
    """Open `path` beneath the directory `root_fd`; a read-only fd of a regular file (or directory).

    The path is resolved to an O_PATH descriptor first and its type checked before anything is opened
    for reading, so naming a device or a FIFO never opens it.
    """
    check_relative(path)
    target = path or "."
    handle = _openat2(root_fd, target)
    if handle is None:
        handle = _walk(root_fd, target, path)
    try:
        mode = os.fstat(handle).st_mode
        if not (stat.S_ISDIR(mode) if directory else stat.S_ISREG(mode)):
            raise ContextPathError(f"not a {'directory' if directory else 'regular file'}", path=path)
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | (os.O_DIRECTORY if directory else os.O_NONBLOCK)
        return os.open(f"/proc/self/fd/{handle}", flags)  # reopens exactly the file resolved above
    finally:
        os.close(handle)


def _openat2(root_fd: int, path: str) -> int | None:
    global _openat2_ok
    if _openat2_ok is False:
        return None
    how = _OpenHow(flags=os.O_PATH | os.O_CLOEXEC, mode=0, resolve=_RESOLVE_BENEATH | _RESOLVE_NO_MAGICLINKS)
    fd = _libc.syscall(_SYS_OPENAT2, root_fd, os.fsencode(path), ctypes.byref(how), ctypes.sizeof(how))
    if fd >= 0:
        _openat2_ok = True
        return int(fd)
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EPERM) and _openat2_ok is None:  # EPERM: a seccomp filter said no
        _openat2_ok = False
        return None
    raise _path_error(err, path)


def _walk(root_fd: int, target: str, path: str) -> int:
    """Resolve one component at a time as O_PATH|O_NOFOLLOW, following in-root symlinks by hand."""
    pending = [p for p in target.split("/") if p not in ("", ".")][::-1]
    stack: list[int] = [os.dup(root_fd)]  # O_PATH-or-better fds of the directories from the root down
    hops = 0
    try:
        while pending:
            part = pending.pop()
            if part == "..":
                if len(stack) == 1:
                    raise ContextPathError("the path leaves the context root", path=path)
                os.close(stack.pop())
                continue
            try:
                fd = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1])
            except OSError as exc:
                raise _path_error(exc.errno or 0, path) from None
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode):
                os.close(fd)
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise ContextPathError("too many levels of symbolic links", path=path)
                try:
                    link = os.readlink(part, dir_fd=stack[-1])
                except OSError as exc:
                    raise _path_error(exc.errno or 0, path) from None
                if link.startswith("/"):
                    raise ContextPathError(
                        "the path leaves the context root (a symlink in it does)", path=path
                    )
                pending.extend(p for p in reversed(link.split("/")) if p not in ("", "."))
                continue
            if pending and not stat.S_ISDIR(mode):
                os.close(fd)
                raise ContextPathError("a component of the path is not a directory", path=path)
            stack.append(fd)
        return stack.pop()
    finally:
        for fd in stack:
            os.close(fd)


def _path_error(err: int, path: str) -> ContextPathError:
    if err == errno.EXDEV:
        return ContextPathError("the path leaves the context root", path=path)
    if err == errno.ELOOP:
        return ContextPathError(
            "too many levels of symbolic links, or a symlink that leaves the root", path=path
        )
    if err == errno.ENOENT:
        return ContextPathError("no such file in the context", path=path)
    if err == errno.ENOTDIR:
        return ContextPathError("a component of the path is not a directory", path=path)
    if err == errno.EACCES:
        return ContextPathError("permission denied", path=path)
    return ContextPathError(os.strerror(err), path=path)
