"""Uploaded contexts are hostile input: the streaming tar receiver and the per-tenant registry."""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import stat
import tarfile
import time
import zlib
from collections.abc import Iterable
from pathlib import Path

import pytest

from orchestrator.context import ContextRegistry, FileSystemContext, TarReceiver, UploadLimits
from orchestrator.context.uploads import MAX_META_BYTES, STEP_BYTES, receive
from orchestrator.errors import (
    WIRE,
    InvalidInputError,
    NotFoundError,
    QuotaError,
    RLMError,
    UploadError,
)

Member = tuple[tarfile.TarInfo, bytes | None]


def member(name: str, data: bytes | None = b"", *, type: bytes = tarfile.REGTYPE, **attrs: object) -> Member:
    info = tarfile.TarInfo(name)
    info.type = type
    if data is not None and type in (tarfile.REGTYPE, tarfile.AREGTYPE):
        info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data if info.size else None


def directory(name: str, **attrs: object) -> Member:
    return member(name, None, type=tarfile.DIRTYPE, **{"mode": 0o755, **attrs})


def archive(members: Iterable[Member], *, gz: bool = False, format: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(
        fileobj=buf, mode="w:gz" if gz else "w", format=format, encoding="utf-8", errors="surrogateescape"
    ) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path beneath root: file contents, None for directories."""
    found: dict[str, bytes | None] = {}
    for dirpath, dirs, files in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        for d in dirs:
            found[str(rel / d)] = None
        for f in files:
            found[str(rel / f)] = (Path(dirpath) / f).read_bytes()
    return found


def refuse(
    tmp_path: Path,
    data: bytes,
    *,
    error: type[RLMError] = UploadError,
    match: str,
    chunk: int = 700,
    quota: int = 10**9,
    limits: UploadLimits | None = None,
) -> RLMError:
    """Feed `data` to a receiver, expect `error` matching `match`, and check nothing is left on disk."""
    target = tmp_path / "ctx"
    receiver = TarReceiver(target, quota_bytes=quota, limits=limits)
    with pytest.raises(error, match=match) as caught:
        for piece in chunks(data, chunk):
            receiver.feed(piece)
        receiver.finish()
    assert os.listdir(tmp_path) == [], os.listdir(tmp_path)
    receiver.abort()
    with pytest.raises(type(caught.value)) as again:  # refused once, refused for good, for the same reason
        receiver.feed(b"more")
    assert again.value is caught.value
    return caught.value


# -- refusals --------------------------------------------------------------------------------------

HOSTILE = [
    pytest.param([member("/etc/passwd", b"x")], "absolute names are refused: .*'/etc/passwd'", id="absolute"),
    pytest.param([directory("/")], "absolute names are refused", id="absolute-root-dir"),
    pytest.param([member("../evil", b"x")], r"'\.\.' in a name is refused: '\.\./evil'", id="dotdot"),
    pytest.param([member("a/../../evil", b"x")], r"'\.\.' in a name is refused", id="dotdot-inside"),
    pytest.param([member("a/b/..", b"x")], r"'\.\.' in a name is refused", id="dotdot-last"),
    pytest.param(
        [member("up", type=tarfile.SYMTYPE, linkname="/"), member("up/etc/cron.d/x", b"x")],
        "symbolic links are refused: 'up'",
        id="symlink-then-through-it",
    ),
    pytest.param(
        [member("in", type=tarfile.SYMTYPE, linkname="a")], "symbolic links are refused: 'in'", id="symlink"
    ),
    pytest.param(
        [member("pw", type=tarfile.LNKTYPE, linkname="/etc/passwd")],
        "hard links are refused: 'pw'",
        id="hard",
    ),
    pytest.param(
        [member("a", b"x"), member("b", type=tarfile.LNKTYPE, linkname="a")],
        "hard links are refused: 'b'",
        id="hard-in-archive",
    ),
    pytest.param(
        [member("null", type=tarfile.CHRTYPE, devmajor=1, devminor=3)], "device files are refused", id="chr"
    ),
    pytest.param(
        [member("sda", type=tarfile.BLKTYPE, devmajor=8, devminor=0)], "device files are refused", id="blk"
    ),
    pytest.param([member("pipe", type=tarfile.FIFOTYPE)], "FIFOs are refused: 'pipe'", id="fifo"),
    pytest.param([member("s", type=tarfile.GNUTYPE_SPARSE)], "sparse files are refused", id="gnu-sparse"),
    pytest.param(
        [member("s", b"x", pax_headers={"GNU.sparse.major": "1", "GNU.sparse.minor": "0"})],
        "sparse files are refused: 's'",
        id="pax-sparse",
    ),
    pytest.param([member("label", type=b"V")], "entry type 'V' is refused", id="volume-label"),
    pytest.param([member("dump", type=b"D")], "entry type 'D' is refused", id="gnu-dumpdir"),
    pytest.param(
        [member("a" * 256, b"x")], "a component of the name is longer than 255 bytes", id="long-component"
    ),
    pytest.param(
        [member("/".join(["b" * 250] * 17), b"x")],
        "the entry's name is longer than 4096 bytes",
        id="long-path",
    ),
    pytest.param([member("/".join(["d"] * 33), b"x")], "the entry is deeper than 32 levels", id="too-deep"),
    pytest.param([member("a\x1b[31m.txt", b"x")], r"NUL or control character: 'a\\x1b\[31m.txt'", id="ctrl"),
    pytest.param(
        [member("a", b"x", pax_headers={"path": "a\x00b"})], r"NUL or control character", id="nul-in-pax-path"
    ),
    pytest.param([member("x\u0085y", b"x")], r"NUL or control character", id="c1-control"),
    pytest.param([member("\udcff.txt", b"x")], "not valid UTF-8", id="not-utf8-pax"),
    pytest.param(
        [member("f", b"1"), member("f", b"2")], "duplicate entry in the archive: 'f'", id="dup-file"
    ),
    pytest.param([member("./f", b"1"), member("f", b"2")], "duplicate entry", id="dup-normalised"),
    pytest.param([directory("d"), directory("d/")], "duplicate entry", id="dup-dir"),
    pytest.param([member("d", b"1"), directory("d")], "duplicate entry", id="file-then-dir"),
    pytest.param([directory("d"), member("d", b"1")], "duplicate entry", id="dir-then-file"),
    pytest.param(
        [member("f", b"1"), member("f/g", b"2")], "a parent of the entry is a file", id="file-parent"
    ),
    pytest.param([member("", b"x")], "a file entry naming the archive's root", id="root-file"),
]


@pytest.mark.parametrize(("members", "match"), HOSTILE)
def test_hostile_archives_are_refused_and_leave_nothing(
    tmp_path: Path, members: list[Member], match: str
) -> None:
    """Each hostile entry is refused with a message naming it, and nothing of the archive stays on disk."""
    data = archive([member("before/ok.txt", b"fine"), *members])
    error = refuse(tmp_path, data, match=match)
    assert error.code == "INVALID_ARGUMENT"


def test_raw_non_utf8_header_names_are_refused(tmp_path: Path) -> None:
    """A name that is not UTF-8 in the header itself (GNU format, no pax) is refused."""
    data = archive([member("\udcfe\udcff.txt", b"x")], format=tarfile.GNU_FORMAT)
    assert b"\xfe\xff.txt" in data
    refuse(tmp_path, data, match="not valid UTF-8")


def test_a_non_utf8_path_component_in_a_directory_is_refused(tmp_path: Path) -> None:
    """A component that is not UTF-8, in a directory above a file, is refused too."""
    data = archive([member("ok/\udc80/f", b"x")], format=tarfile.USTAR_FORMAT)
    refuse(tmp_path, data, match="not valid UTF-8")


@pytest.mark.parametrize("format", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT], ids=["pax", "gnu"])
def test_long_names_are_checked_in_every_format(tmp_path: Path, format: int) -> None:
    """A name too long for the header (a pax path or a GNU long name) is what is checked, not the stub."""
    name = "d" * 120 + "/../../" + "e" * 10
    data = archive([member(name, b"x")], format=format)
    assert name.encode() not in data[:100]  # the header holds a stub; the real name is in the record
    refuse(tmp_path, data, match=r"'\.\.' in a name is refused")


def test_a_pax_path_overrides_a_harmless_header_name(tmp_path: Path) -> None:
    """The pax path is the entry's name: a harmless name in the header does not hide an absolute one."""
    data = archive([member("harmless.txt", b"x", pax_headers={"path": "/etc/cron.d/evil"})])
    refuse(tmp_path, data, match="absolute names are refused: .*'/etc/cron.d/evil'")


def test_more_entries_than_the_limit_are_refused(tmp_path: Path) -> None:
    """The max_files+1-th entry (files and directories, implied parents too) is refused."""
    limits = UploadLimits(max_files=3)
    ok = archive([member("a", b"1"), member("b", b"2"), member("c", b"3")])
    assert receive(tmp_path / "ok", [ok], quota_bytes=10, limits=limits).files == 3
    for name, members in [
        ("four", [member("a", b"1"), member("b", b"2"), member("c", b"3"), member("d", b"4")]),
        ("parents", [member("x/y/z", b"1"), member("w", b"")]),
    ]:
        (tmp_path / name).mkdir()
        refuse(tmp_path / name, archive(members), match="more than 3 entries .*'[dw]'", limits=limits)


def test_limits_are_configurable_and_validated() -> None:
    """UploadLimits is frozen and refuses nonsense (nothing longer than the context API can read back)."""
    limits = UploadLimits(max_depth=2, max_name_bytes=10, max_path_bytes=20, max_ratio=10)
    with pytest.raises(AttributeError):
        limits.max_depth = 3  # type: ignore[misc]
    for bad in (
        {"max_files": 0},
        {"max_depth": 0},
        {"max_name_bytes": 256},
        {"max_path_bytes": 4097},
        {"max_ratio": 0.5},
        {"ratio_grace_bytes": -1},
    ):
        with pytest.raises(InvalidInputError, match="upload limits"):
            UploadLimits(**bad)


def test_smaller_limits_are_applied(tmp_path: Path) -> None:
    """Depth, component and path limits come from the UploadLimits given."""
    limits = UploadLimits(max_depth=2, max_name_bytes=10, max_path_bytes=20)
    refuse(tmp_path, archive([member("a/b/c", b"")]), match="deeper than 2", limits=limits)
    refuse(tmp_path, archive([member("a" * 11, b"")]), match="longer than 10 bytes", limits=limits)
    refuse(tmp_path, archive([member("a" * 10 + "/" + "b" * 10, b"")]), match="longer than 20", limits=limits)


def test_quota_exactly_reached_passes_one_byte_more_is_refused(tmp_path: Path) -> None:
    """Content bytes equal to the quota are accepted; one byte more is a QuotaError naming the entry."""
    data = archive([member("a", b"x" * 600), member("b/c", b"y" * 400), member("empty", b"")])
    summary = receive(tmp_path / "ok", chunks(data, 512), quota_bytes=1000)
    assert (summary.bytes, summary.files) == (1000, 3)
    (tmp_path / "rest").mkdir()
    error = refuse(
        tmp_path / "rest", data, error=QuotaError, match="quota of 999 bytes at the entry 'b/c'", quota=999
    )
    assert isinstance(error, QuotaError) and error.quota == "context_bytes"
    assert error.code == "RESOURCE_EXHAUSTED"


def test_a_zero_quota_takes_empty_files_and_directories(tmp_path: Path) -> None:
    """With nothing left of the quota, an archive of empty files and directories still fits."""
    data = archive([directory("d"), member("d/empty", b"")])
    assert receive(tmp_path / "ctx", [data], quota_bytes=0).bytes == 0
    (tmp_path / "again").mkdir()
    refuse(tmp_path / "again", archive([member("one", b"1")]), error=QuotaError, match="quota of 0", quota=0)


CORRUPT_BASE = archive([member("a.txt", b"a" * 1000), member("b.txt", b"b" * 10)])


@pytest.mark.parametrize(
    ("data", "match"),
    [
        pytest.param(b"", "the upload is empty", id="empty"),
        pytest.param(b"x", "truncated", id="one-byte"),
        pytest.param(CORRUPT_BASE[:100], "truncated", id="cut-in-header"),
        pytest.param(CORRUPT_BASE[:1000], r"truncated.*inside the entry 'a.txt'", id="cut-in-data"),
        pytest.param(CORRUPT_BASE[:2048], "truncated", id="cut-at-entry-boundary"),
        pytest.param(CORRUPT_BASE[:2560], "truncated", id="no-end-marker"),
        pytest.param(CORRUPT_BASE[:3072], "truncated", id="one-zero-block"),
        pytest.param(
            CORRUPT_BASE[:3072] + CORRUPT_BASE[:512], "a lone zero block", id="entry-after-a-zero-block"
        ),
        pytest.param(b"hello world, this is not a tar archive" * 20, "not a tar archive", id="not-tar"),
        pytest.param(b"Y" + CORRUPT_BASE[1:], "bad checksum in the header at byte 0", id="bad-checksum"),
        pytest.param(CORRUPT_BASE + b"trailing junk", "data after its end-of-archive marker", id="after-end"),
        pytest.param(
            CORRUPT_BASE + bytes(2 * 1024**2), "more than 1048576 bytes after its end", id="zeros-after"
        ),
        pytest.param(
            gzip.compress(CORRUPT_BASE)[:-30], "truncated: the gzip stream ends early", id="gzip-cut"
        ),
        pytest.param(gzip.compress(CORRUPT_BASE)[:-8] + b"\0" * 8, "bad gzip data", id="gzip-bad-crc"),
        pytest.param(gzip.compress(CORRUPT_BASE) + b"junk", "bad gzip data", id="gzip-trailing-junk"),
        pytest.param(gzip.compress(CORRUPT_BASE[:1000]), "truncated", id="gzip-of-cut-tar"),
    ],
)
def test_corrupt_or_truncated_archives_are_refused(tmp_path: Path, data: bytes, match: str) -> None:
    """A corrupt, truncated or trailing-garbage archive is refused and leaves nothing."""
    refuse(tmp_path, data, match=match)


def test_an_oversized_extended_header_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """A pax header claiming more than MAX_META_BYTES is refused at its header, never buffered."""
    info = tarfile.TarInfo("f")
    info.pax_headers = {"comment": "c" * (MAX_META_BYTES + 1)}
    refuse(tmp_path, archive([(info, None)]), match="extended headers before one entry exceed")


def test_a_directory_with_a_size_is_refused(tmp_path: Path) -> None:
    """A directory entry claiming content is refused: no reader agrees on where its data would be."""
    info = tarfile.TarInfo("d")
    info.type = tarfile.DIRTYPE
    block = bytearray(info.tobuf(tarfile.USTAR_FORMAT))
    block[124:136] = b"%011o\x00" % 512
    block[148:156] = b"        "
    block[148:156] = b"%06o\x00 " % sum(block)
    refuse(tmp_path, bytes(block) + bytes(512 * 3), match="a directory entry with a size: 'd'")


# -- the gzip bomb ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """A tar.gz of one file of 200 MB of zeros (about 200 KB compressed)."""
    info = tarfile.TarInfo("zeros.bin")
    info.size = 200 * 1024**2
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [z.compress(info.tobuf(tarfile.PAX_FORMAT))]
    zero = bytes(1024**2)
    out += [z.compress(zero) for _ in range(200)]
    out.append(z.compress(bytes(1024)) + z.flush())
    return b"".join(out)


def test_a_gzip_bomb_is_refused_quickly_at_the_ratio_bound(tmp_path: Path, bomb: bytes) -> None:
    """200 MB of zeros is refused at the ratio bound, quickly, having written no more than the bound."""
    assert len(bomb) < 1024**2
    receiver = TarReceiver(tmp_path / "ctx", quota_bytes=10 * 1024**3)
    started = time.perf_counter()
    with pytest.raises(UploadError, match="expands more than 100 times"):
        for piece in chunks(bomb, 64 * 1024):
            receiver.feed(piece)
        receiver.finish()
    elapsed = time.perf_counter() - started
    limits = receiver.limits
    bound = max(limits.ratio_grace_bytes, limits.max_ratio * receiver.received_bytes) + STEP_BYTES
    assert receiver.archive_bytes <= bound and receiver.written_bytes <= bound
    assert receiver.written_bytes < 2 * 1024**2
    assert elapsed < 2.0, elapsed
    assert os.listdir(tmp_path) == []


def test_the_ratio_bound_spares_small_archives_and_can_be_raised(tmp_path: Path) -> None:
    """Tar padding inflates about 1000x: small archives pass under the grace; a raised bound lets more in."""
    tiny = archive([member("empty", b"")], gz=True)
    assert receive(tmp_path / "tiny", [tiny], quota_bytes=0).files == 1
    zeros = archive([member("z", bytes(4 * 1024**2))], gz=True)
    (tmp_path / "x").mkdir()
    refuse(tmp_path / "x", zeros, match="compression bomb", chunk=4096)
    lenient = UploadLimits(max_ratio=10_000)
    assert receive(tmp_path / "z", [zeros], quota_bytes=4 * 1024**2, limits=lenient).bytes == 4 * 1024**2


# -- valid archives --------------------------------------------------------------------------------

VALID = [
    directory("./"),
    directory("./docs"),
    member("./docs/readme.md", b"# hello\n"),
    member("./docs/empty.txt", b""),
    member("src/pkg/deep/er/mod.py", b"print('hi')\n" * 100),
    directory("src/pkg"),  # named after an entry inside it made it
    member("ünïcödé/日本語.txt", "こんにちは".encode()),
    member("spaces and 'quotes'.txt", b"q"),
    member("l" * 120 + "/" + "n" * 200, b"long name"),
    member("setuid", b"#!/bin/sh\n", mode=0o4755, mtime=0, uid=0, gid=0, uname="root"),
    directory("wide-open", mode=0o777),
    member("big.bin", os.urandom(300_000)),
]
EXPECTED = {
    "docs": None,
    "docs/readme.md": b"# hello\n",
    "docs/empty.txt": b"",
    "src": None,
    "src/pkg": None,
    "src/pkg/deep": None,
    "src/pkg/deep/er": None,
    "src/pkg/deep/er/mod.py": b"print('hi')\n" * 100,
    "ünïcödé": None,
    "ünïcödé/日本語.txt": "こんにちは".encode(),
    "spaces and 'quotes'.txt": b"q",
    "l" * 120: None,
    "l" * 120 + "/" + "n" * 200: b"long name",
    "setuid": b"#!/bin/sh\n",
    "wide-open": None,
    "big.bin": VALID[-1][1],
}


@pytest.mark.parametrize("gz", [False, True], ids=["tar", "tar.gz"])
@pytest.mark.parametrize("format", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT], ids=["pax", "gnu"])
@pytest.mark.parametrize("chunk", [1, 511, 512, 513, 65536, 10**9], ids=lambda c: f"chunk{c}")
def test_a_valid_archive_round_trips(tmp_path: Path, gz: bool, format: int, chunk: int) -> None:
    """Files, nested and implied directories, empty files, UTF-8 and long names arrive whole, any chunking."""
    members = VALID if chunk != 1 else VALID[:-1]  # 1-byte chunks: leave the 300 KB file out
    expected = EXPECTED if chunk != 1 else {k: v for k, v in EXPECTED.items() if k != "big.bin"}
    data = archive(members, gz=gz, format=format)
    summary = receive(tmp_path / "ctx", chunks(data, chunk), quota_bytes=10**6)
    assert tree(tmp_path / "ctx") == expected
    assert summary.files == sum(1 for v in expected.values() if v is not None)
    assert summary.directories == sum(1 for v in expected.values() if v is None)
    assert summary.bytes == sum(len(v) for v in expected.values() if v is not None)
    assert summary.received_bytes == len(data)
    assert os.listdir(tmp_path) == ["ctx"]  # no staging directory left beside it


def test_ustar_prefix_names_and_multi_member_gzip(tmp_path: Path) -> None:
    """A ustar name split over prefix and name, gzip-compressed as two members, arrives whole."""
    data = archive([member("p" * 120 + "/file.txt", b"prefixed")], format=tarfile.USTAR_FORMAT)
    two = gzip.compress(data[:700]) + gzip.compress(data[700:])
    receive(tmp_path / "ctx", chunks(two, 97), quota_bytes=100)
    assert (tmp_path / "ctx" / ("p" * 120) / "file.txt").read_bytes() == b"prefixed"


def test_a_global_pax_header_is_ignored_unless_it_names_paths(tmp_path: Path) -> None:
    """A pax global header (git archive writes one) is ignored; one setting a path or size is refused."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", pax_headers={"comment": "0123abcd"}) as tar:
        tar.addfile(tarfile.TarInfo("f"))
    assert receive(tmp_path / "ctx", [buf.getvalue()], quota_bytes=0).files == 1
    for key in ("path", "size"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", pax_headers={key: "7"}) as tar:
            tar.addfile(tarfile.TarInfo("f"))
        (tmp_path / key).mkdir()
        refuse(tmp_path / key, buf.getvalue(), match=f"a global pax header setting '{key}' is refused")
    empty = io.BytesIO()
    with tarfile.open(fileobj=empty, mode="w", pax_headers={"comment": "empty repository"}):
        pass
    assert receive(tmp_path / "empty", [empty.getvalue()], quota_bytes=0).files == 0


def test_modes_are_normalised_and_times_ignored(tmp_path: Path) -> None:
    """No setuid or exec bit survives; files are 0644, directories 0755; mtimes are the upload's."""
    before = time.time() - 5
    receive(tmp_path / "ctx", [archive(VALID[:-1])], quota_bytes=10**6)
    root = tmp_path / "ctx"
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o755
    for path in [root, *root.rglob("*")]:
        st = os.lstat(path)
        assert stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == (0o755 if stat.S_ISDIR(st.st_mode) else 0o644), path
        assert st.st_mtime >= before, path


def test_the_target_must_not_exist(tmp_path: Path) -> None:
    """A receiver never writes into an existing directory."""
    (tmp_path / "ctx").mkdir()
    with pytest.raises(RLMError, match="already exists"):
        TarReceiver(tmp_path / "ctx", quota_bytes=1)


def test_abort_and_a_dropped_receiver_leave_nothing(tmp_path: Path) -> None:
    """abort() mid-archive removes what was written; so does dropping a receiver without finishing."""
    data = archive([member("a/b.txt", b"x" * 5000)])
    receiver = TarReceiver(tmp_path / "ctx", quota_bytes=10**6)
    receiver.feed(data[:3000])
    assert os.listdir(tmp_path)  # the staging directory exists meanwhile
    receiver.abort()
    receiver.abort()
    assert os.listdir(tmp_path) == []
    with pytest.raises(UploadError, match="aborted"):
        receiver.finish()
    dropped = TarReceiver(tmp_path / "ctx", quota_bytes=10**6)
    dropped.feed(data[:3000])
    del dropped
    assert os.listdir(tmp_path) == []


def test_error_classes_have_their_wire_rows() -> None:
    """UploadError, QuotaError and NotFoundError leave by INVALID_ARGUMENT, RESOURCE_EXHAUSTED, NOT_FOUND."""
    assert WIRE[UploadError] == ("INVALID_ARGUMENT", "HostCallError")
    assert WIRE[QuotaError] == ("RESOURCE_EXHAUSTED", "LimitExceededError")
    assert WIRE[NotFoundError] == ("NOT_FOUND", "HostCallError")
    assert UploadError("refused", entry="x\x1b").message == "refused: 'x\\x1b'"
    assert isinstance(UploadError("x"), InvalidInputError)


# -- the registry ----------------------------------------------------------------------------------


async def upload(registry: ContextRegistry, tenant: str, data: bytes, *, quota: int = 10**6, name: str = "c"):
    pending = await registry.create_upload(tenant, name, quota)
    for piece in chunks(data, 1000):
        await pending.feed(piece)
    return await pending.finish()


SMALL = archive([member("a.txt", b"alpha\n"), member("sub/b.txt", b"beta\n"), directory("sub/empty")])


async def test_registry_lists_gets_and_deletes_per_tenant(tmp_path: Path) -> None:
    """An upload is listed, got, run over and deleted; its bytes count for its tenant only."""
    registry = ContextRegistry(tmp_path / "reg")
    try:
        info = await upload(registry, "acme", SMALL, name="my docs")
        assert (info.kind, info.name, info.files, info.bytes) == ("upload", "my docs", 2, 11)
        assert len(info.context_id) == 32 and int(info.context_id, 16) >= 0
        assert await registry.list("acme") == [info]
        assert await registry.get("acme", info.context_id) == info
        assert await registry.bytes_used("acme") == 11
        assert await registry.bytes_used("other") == 0
        source = await registry.source("acme", info.context_id)
        try:
            assert sorted(e.path for e in source.index()) == ["a.txt", "sub/b.txt"]
            fd = source.open("sub/b.txt")
            assert os.read(fd, 100) == b"beta\n"
            os.close(fd)
        finally:
            source.close()
        await registry.delete("acme", info.context_id)
        assert await registry.list("acme") == []
        assert await registry.bytes_used("acme") == 0
        with pytest.raises(NotFoundError):
            await registry.get("acme", info.context_id)
        assert sorted(os.listdir(tmp_path / "reg" / "acme")) == []
    finally:
        registry.close()


async def test_tenants_cannot_see_each_others_contexts(tmp_path: Path) -> None:
    """Tenant B cannot get, run over, delete or list A's context, and gets what a missing id gets."""
    registry = ContextRegistry(tmp_path / "reg")
    try:
        mine = await upload(registry, "a", SMALL)
        missing = "0" * 32
        errors = []
        for call in (registry.get, registry.source, registry.delete):
            for tenant, context_id in (("b", mine.context_id), ("b", missing), ("a", missing)):
                with pytest.raises(NotFoundError) as caught:
                    await call(tenant, context_id)
                errors.append(caught.value.message.replace(context_id, "ID"))
        assert set(errors) == {"no such context: 'ID'"}
        assert await registry.list("b") == []
        assert await registry.get("a", mine.context_id) == mine  # B's delete did nothing
        with pytest.raises(NotFoundError, match="no such context"):
            await registry.get("a", "../a/" + mine.context_id)
        with pytest.raises(InvalidInputError, match="tenant id"):
            await registry.list("../a")
    finally:
        registry.close()


async def test_a_refused_upload_leaves_nothing_in_the_registry(tmp_path: Path) -> None:
    """A hostile archive is refused through the registry too, with nothing listed or left on disk."""
    registry = ContextRegistry(tmp_path / "reg")
    try:
        pending = await registry.create_upload("a", "evil", 10**6)
        with pytest.raises(UploadError, match="symbolic links are refused"):
            await pending.feed(archive([member("ok", b"1"), member("l", type=tarfile.SYMTYPE, linkname="/")]))
        with pytest.raises(UploadError):
            await pending.finish()
        assert await registry.list("a") == []
        assert os.listdir(tmp_path / "reg" / ".staging") == []
        assert os.listdir(tmp_path / "reg" / "a") == []
    finally:
        registry.close()


async def test_the_quota_is_the_tenants_whole(tmp_path: Path) -> None:
    """An upload may use the quota less what the tenant uses; concurrent uploads cannot overrun it."""
    registry = ContextRegistry(tmp_path / "reg")
    try:
        ten = archive([member("f", b"x" * 10)])
        await upload(registry, "a", ten, quota=25)
        with pytest.raises(QuotaError, match="quota of 15 bytes"):
            await upload(registry, "a", archive([member("g", b"x" * 16)]), quota=25)
        first = await registry.create_upload("a", "one", 25)
        second = await registry.create_upload("a", "two", 25)
        await first.feed(ten)
        await second.feed(ten)
        await first.finish()
        with pytest.raises(QuotaError, match="exceeds the context quota of 25") as caught:
            await second.finish()
        assert caught.value.quota == "context_bytes"
        assert await registry.bytes_used("a") == 20
        assert len(os.listdir(tmp_path / "reg" / "a")) == 4  # two contexts: manifest + tree each
        assert os.listdir(tmp_path / "reg" / ".staging") == []
    finally:
        registry.close()


async def test_the_registry_survives_a_restart(tmp_path: Path) -> None:
    """A new ContextRegistry on the same root lists the same contexts, and removes what a crash left."""
    root = tmp_path / "reg"
    registry = ContextRegistry(root)
    with pytest.raises(RLMError, match="in use by another ContextRegistry"):
        ContextRegistry(root)
    info = await upload(registry, "a", SMALL)
    shared = tmp_path / "shared"
    (shared / "d").mkdir(parents=True)
    (shared / "d" / "f.txt").write_text("shared\n")
    linked = await registry.register_directory("a", "shared", shared)
    half = await registry.create_upload("a", "half", 10**6)
    await half.feed(SMALL[:1500])  # a crash in the middle of an upload
    (root / "a" / ("e" * 32)).mkdir()  # a tree renamed into place, its manifest never written
    (root / "a" / ("." + "f" * 32 + ".json.tmp")).write_text("{")  # a manifest never renamed
    registry.close()

    again = ContextRegistry(root)
    try:
        assert await again.list("a") == [info, linked]
        assert await again.get("a", info.context_id) == info
        assert os.listdir(root / ".staging") == []
        assert sorted(os.listdir(root / "a")) == sorted(
            [info.context_id, f"{info.context_id}.json", f"{linked.context_id}.json"]
        )
        source = await again.source("a", info.context_id)
        assert sorted(e.path for e in source.index()) == ["a.txt", "sub/b.txt"]
        source.close()
    finally:
        again.close()


async def test_a_registered_directory_runs_as_a_filesystem_context(tmp_path: Path) -> None:
    """An operator's directory is kept by reference, validated, never copied, and served as a context."""
    shared = tmp_path / "shared"
    (shared / "src").mkdir(parents=True)
    (shared / "src" / "main.py").write_text("print(1)\n")
    (shared / "notes.txt").write_text("n\n")
    registry = ContextRegistry(tmp_path / "reg")
    try:
        info = await registry.register_directory("t", "shared code", shared / "src" / "..")
        assert (info.kind, info.files, info.bytes) == ("directory", 2, 11)
        assert sorted(os.listdir(tmp_path / "reg" / "t")) == [f"{info.context_id}.json"]  # not copied
        source = await registry.source("t", info.context_id)
        assert isinstance(source, FileSystemContext)
        assert source.root() == str(shared.resolve())
        assert sorted(e.path for e in source.index()) == ["notes.txt", "src/main.py"]
        source.close()
        (shared / "later.txt").write_text("seen")  # a reference: later files are part of it
        source = await registry.source("t", info.context_id)
        assert "later.txt" in {e.path for e in source.index()}
        source.close()
        assert await registry.bytes_used("t") == 0  # the operator's directory is not the tenant's quota
        with pytest.raises(InvalidInputError, match="No such file"):
            await registry.register_directory("t", "x", tmp_path / "missing")
        with pytest.raises(InvalidInputError, match="not a directory"):
            await registry.register_directory("t", "x", shared / "notes.txt")
        for overlapping in (tmp_path / "reg", tmp_path / "reg" / "t", tmp_path):
            with pytest.raises(InvalidInputError, match="overlaps"):
                await registry.register_directory("t", "x", overlapping)
        with pytest.raises(InvalidInputError, match="control"):
            await registry.register_directory("t", "bad\x1bname", shared)
        await registry.delete("t", info.context_id)
        assert (shared / "src" / "main.py").exists()  # deleting the context leaves the directory alone
    finally:
        registry.close()


async def test_registry_methods_do_not_block_the_event_loop(tmp_path: Path) -> None:
    """Uploads to two tenants run at once on one loop (the work is offloaded to threads)."""
    registry = ContextRegistry(tmp_path / "reg")
    try:
        big = archive([member(f"f{i}", os.urandom(20_000)) for i in range(50)], gz=True)
        infos = await asyncio.gather(*(upload(registry, t, big) for t in ("a", "b", "c")))
        assert [i.files for i in infos] == [50, 50, 50]
        assert {len(await registry.list(t)) for t in ("a", "b", "c")} == {1}
    finally:
        registry.close()
