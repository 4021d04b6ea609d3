"""Path resolution beneath a context root, by the kernel (openat2) and by the O_NOFOLLOW walk."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.context import paths
from orchestrator.errors import ContextPathError


@pytest.fixture(params=["openat2", "walk"])
def resolver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(paths, "_openat2_ok", None if request.param == "openat2" else False)
    return str(request.param)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[int]:
    (tmp_path / "outside.txt").write_text("secret")
    base = tmp_path / "ctx"
    (base / "sub" / "deeper").mkdir(parents=True)
    (base / "hello.txt").write_text("hello")
    (base / "sub" / "deeper" / "x.txt").write_text("x")
    (base / "inside_link").symlink_to("sub/deeper/x.txt")
    (base / "dir_link").symlink_to("sub")
    (base / "abs_link").symlink_to(tmp_path / "outside.txt")
    (base / "up_link").symlink_to("../outside.txt")
    (base / "loop_a").symlink_to("loop_b")
    (base / "loop_b").symlink_to("loop_a")
    os.mkfifo(base / "fifo")
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def _read(root_fd: int, path: str) -> str:
    fd = paths.open_beneath(root_fd, path)
    with os.fdopen(fd, "r") as fh:
        return fh.read()


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("hello.txt", "hello"),
        ("./sub/deeper/x.txt", "x"),
        ("sub/../hello.txt", "hello"),
        ("sub//deeper/../deeper/x.txt", "x"),
        ("inside_link", "x"),
        ("dir_link/deeper/x.txt", "x"),
    ],
)
def test_paths_inside_the_root_open(resolver: str, root: int, path: str, content: str) -> None:
    """Relative paths, `..` that stays inside, and symlinks that stay inside all resolve."""
    assert _read(root, path) == content


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/etc/passwd", "absolute"),
        ("../outside.txt", "leaves the context root"),
        ("sub/../../outside.txt", "leaves the context root"),
        ("abs_link", "leaves the context root"),
        ("up_link", "leaves the context root"),
        ("loop_a", "symbolic links"),
        ("fifo", "not a regular file"),
        ("sub", "not a regular file"),
        ("hello.txt\x00.png", "NUL"),
        ("missing.txt", "no such file"),
        ("hello.txt/x", "not a directory"),
        ("a/" * 2100, "longer than"),
        ("x" * 300, "longer than 255"),
    ],
)
def test_escapes_and_non_files_are_refused(resolver: str, root: int, path: str, why: str) -> None:
    """Every escape form and every non-regular file is one ContextPathError that names the path."""
    with pytest.raises(ContextPathError, match=why) as refused:
        paths.open_beneath(root, path)
    assert refused.value.path.rstrip(".") in path or path.startswith(refused.value.path[:80])


def test_non_string_is_refused(root: int) -> None:
    """A path that is not a str is refused before any system call."""
    with pytest.raises(ContextPathError, match="must be a str"):
        paths.open_beneath(root, b"hello.txt")  # type: ignore[arg-type]


def test_directories_open_when_asked(resolver: str, root: int) -> None:
    """With directory=True a directory (and the root itself) opens, a file does not."""
    os.close(paths.open_beneath(root, "dir_link", directory=True))
    os.close(paths.open_beneath(root, "", directory=True))
    with pytest.raises(ContextPathError, match="not a directory"):
        paths.open_beneath(root, "hello.txt", directory=True)


def test_the_kernel_path_is_used_here(root: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """On this kernel openat2 is available, so the race-free path is the one taken."""
    monkeypatch.setattr(paths, "_openat2_ok", None)
    os.close(paths.open_beneath(root, "hello.txt"))
    assert paths._openat2_ok is True


def test_device_nodes_are_refused_without_being_opened(resolver: str, tmp_path: Path) -> None:
    """A character device in the context (here /dev/null's numbers) is refused as not a regular file."""
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root (CI runs as root)")
    import stat

    root = tmp_path / "ctx"
    root.mkdir()
    os.mknod(root / "null_dev", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(ContextPathError, match="not a regular file"):
            paths.open_beneath(fd, "null_dev")
    finally:
        os.close(fd)


# One table for both copies of the normaliser: the host's and the sandbox runtime's.
NORMALISE_CASES = [
    ("", ""),
    (".", ""),
    ("./", ""),
    ("a", "a"),
    ("a/b", "a/b"),
    ("./a//b/", "a/b"),
    ("a/./b", "a/b"),
    ("a/b/../c", "a/c"),
    ("a/..", ""),
    ("..", ".."),
    ("../a", "../a"),
    ("a/../../b", "../b"),
    ("../../a/..", "../.."),
    ("/abs/path", "abs/path"),
    ("a/b/../../..", ".."),
    ("é/ü/../ß", "é/ß"),
    ("a\\b", "a\\b"),
    ("...", "..."),
    (".a/..b", ".a/..b"),
]


@pytest.mark.parametrize(("path", "expected"), NORMALISE_CASES)
def test_host_and_sandbox_normalise_paths_alike(path: str, expected: str) -> None:
    """Both sides of the socket reduce a path to the same form, from one table of cases."""
    from rlm_sandbox.context_api import normalise as sandbox

    from orchestrator.context.paths import normalise as host

    assert host(path) == expected
    assert sandbox(path) == expected


def test_the_host_package_never_imports_the_sandbox_package() -> None:
    """Importing every host module leaves rlm_sandbox unloaded: the runtime is not a host library."""
    import subprocess
    import sys

    code = (
        "import pkgutil, importlib, sys, orchestrator\n"
        "for m in pkgutil.walk_packages(orchestrator.__path__, 'orchestrator.'):\n"
        "    if m.name == 'orchestrator.security.posture_probe' or '.migrations' in m.name:\n"
        "        continue  # a program run in sandboxes; scripts Alembic runs\n"
        "    importlib.import_module(m.name)\n"
        "print('rlm_sandbox' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "False"
