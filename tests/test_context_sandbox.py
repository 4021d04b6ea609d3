"""The context API inside real sandboxes (runc and runsc), and the raw callbacks on the socket."""

from __future__ import annotations

import json
import os
from pathlib import Path

import grpc
import pytest
from grpc import aio
from rlm_proto.v1 import sandbox_pb2 as pb
from rlm_proto.v1.sandbox_pb2_grpc import SandboxHostStub

from orchestrator.config import ContextLimits
from orchestrator.context.sources import InMemoryContext
from orchestrator.sandbox import SandboxManager, SandboxSession

pytestmark = pytest.mark.docker

ESCAPES = [
    ("/etc/passwd", "absolute"),
    ("../outside/secret.txt", "leaves"),
    ("sub/../../outside/secret.txt", "leaves"),
    ("escape_dir/secret.txt", ""),
    ("escape_file", ""),
    ("loop_a", ""),
    ("fifo", ""),
    ("sub", ""),
    ("hello.txt\x00x", "NUL"),
]


@pytest.fixture
def rich_context(context_dir: Path) -> Path:
    outside = context_dir.parent / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("TOP SECRET")
    (context_dir / "escape_dir").symlink_to(outside)
    (context_dir / "escape_file").symlink_to("../outside/secret.txt")
    (context_dir / "loop_a").symlink_to("loop_b")
    (context_dir / "loop_b").symlink_to("loop_a")
    (context_dir / "inside_link.txt").symlink_to("hello.txt")
    os.mkfifo(context_dir / "fifo")
    # Binary, deterministic, and free of the words the tests grep for.
    (context_dir / "big.bin").write_bytes((bytes(range(256)) * 12_289)[: 3 * 1024**2 + 17])
    return context_dir


async def test_api_in_both_spellings(manager: SandboxManager, rich_context: Path, runtime: str) -> None:
    """The file API answers under the paper's names and AStack's, from inside the sandbox."""
    code = """
import json
print(json.dumps({
    "list": list_files(), "camel": listFiles() == list_files(),
    "dir": get_files_in_directory("sub"), "dir_camel": getFilesInDirectory("sub"),
    "read": read_file("hello.txt"), "part": readFile("hello.txt", 6, 4),
    "link": read_file("inside_link.txt"),
    "search": search_files(r"\\.csv$"), "search_camel": searchFiles(r"hello"),
    "info": get_file_info("sub/data.csv"), "info_camel": getFileInfo("hello.txt")["size"],
    "stats": get_stats(), "stats_camel": getStats()["file_count"],
    "grep": grep("hello|a,b"),
    "context": repr(context), "n": len(context),
    "open": open("/context/hello.txt").read(),
}))
"""
    async with manager.open(rich_context, runtime=runtime) as session:
        result = await session.run(code)
    assert result.ok, result.error
    seen = json.loads(result.stdout.text)
    assert seen["list"] == ["big.bin", "hello.txt", "inside_link.txt", "sub/data.csv"] and seen["camel"]
    assert seen["dir"] == seen["dir_camel"] == ["sub/data.csv"]
    assert seen["read"] == seen["link"] == seen["open"] == "hello from the context\n"
    assert seen["part"] == "from"
    assert seen["search"] == ["sub/data.csv"] and seen["search_camel"] == ["hello.txt"]
    assert seen["info"]["size"] == 8 and seen["info"]["lines"] == 2 and seen["info_camel"] == 23
    assert seen["stats"]["file_count"] == seen["stats_camel"] == seen["n"] == 4
    assert seen["grep"] == [
        {"path": "hello.txt", "line_number": 1, "line": "hello from the context"},
        {"path": "inside_link.txt", "line_number": 1, "line": "hello from the context"},
        {"path": "sub/data.csv", "line_number": 1, "line": "a,b"},
    ]
    assert "filesystem context: 4 files" in seen["context"]


async def test_escapes_are_refused_in_user_code(
    manager: SandboxManager, rich_context: Path, runtime: str
) -> None:
    """Every escape form gives ContextPathError in the user's code, naming the path; nothing leaks."""
    code = f"""
import json
out = {{}}
for path, _ in {ESCAPES!r}:
    for name, call in (("read", read_file), ("info", get_file_info)):
        try:
            out[name + ":" + path] = "LEAKED " + repr(call(path))[:40]
        except ContextPathError as e:
            out[name + ":" + path] = str(e)
print(json.dumps(out))
"""
    async with manager.open(rich_context, runtime=runtime) as session:
        result = await session.run(code)
    assert result.ok, result.error
    seen = json.loads(result.stdout.text)
    for path, why in ESCAPES:
        for name in ("read", "info"):
            message = seen[f"{name}:{path}"]
            assert not message.startswith("LEAKED"), (name, path, message)
            assert repr(path)[1:-1] in message and why in message, (name, path, message)
    assert "TOP SECRET" not in result.stdout.text


async def test_escapes_are_refused_on_the_raw_socket(session: SandboxSession, rich_context: Path) -> None:
    """Calling the host directly with the sandbox's token gets the same refusals, as INVALID_ARGUMENT."""
    metadata = (("x-rlm-token", session.token),)
    path = session.channel.socket_path
    async with aio.insecure_channel(f"unix:{path}") as channel:
        stub = SandboxHostStub(channel)
        for bad, _ in ESCAPES:
            for call in (
                lambda p: stub.FileInfo(pb.FileInfoRequest(path=p), metadata=metadata),
                lambda p: _read_all(stub.ReadFile(pb.ReadFileRequest(path=p, length=-1), metadata=metadata)),
            ):
                with pytest.raises(aio.AioRpcError) as refused:
                    await call(bad)
                assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
                trailers = dict(refused.value.trailing_metadata() or ())
                assert trailers["x-rlm-error"] == "ContextPathError", bad
        listing = await stub.ListFiles(pb.ListFilesRequest(), metadata=metadata)
        assert "escape_file" not in listing.paths and not any("secret" in p for p in listing.paths)


async def _read_all(call: object) -> bytes:
    return b"".join([chunk.data async for chunk in call])  # type: ignore[attr-defined]


async def test_large_file_arrives_byte_identical_in_chunks(
    manager: SandboxManager, rich_context: Path
) -> None:
    """A 3 MiB file comes over ReadFile in several chunks and joins to the same bytes."""
    async with manager.open(rich_context) as session:
        await _check_big_file(session, rich_context)


async def _check_big_file(session: SandboxSession, rich_context: Path) -> None:
    metadata = (("x-rlm-token", session.token),)
    path = session.channel.socket_path
    async with aio.insecure_channel(f"unix:{path}") as channel:
        chunks = [
            c.data
            async for c in SandboxHostStub(channel).ReadFile(
                pb.ReadFileRequest(path="big.bin", length=-1), metadata=metadata
            )
        ]
    assert len(chunks) >= 3
    assert b"".join(chunks) == (rich_context / "big.bin").read_bytes()
    result = await session.run(
        "import hashlib\nprint(hashlib.sha256(open('/context/big.bin','rb').read()).hexdigest())"
    )
    import hashlib

    assert result.stdout.text.strip() == hashlib.sha256((rich_context / "big.bin").read_bytes()).hexdigest()


async def test_limits_raise_in_user_code(manager: SandboxManager, context_dir: Path, runtime: str) -> None:
    """The one-read limit and the run's read budget (across cells) are LimitExceededError in user code."""
    (context_dir / "big.txt").write_text("y" * 5000)
    limits = ContextLimits(max_file_bytes=4096, max_read_bytes=60)
    async with manager.open(context_dir, runtime=runtime, context_limits=limits) as session:
        big = await session.run("read_file('big.txt')")
        assert (
            big.error is not None
            and big.error.type == "LimitExceededError"
            and "limit for one read" in big.error.message
        )
        first = await session.run("print(len(read_file('hello.txt')))")
        assert first.stdout.text == "23\n"
        second = await session.run("read_file('hello.txt'); read_file('hello.txt')")
        assert second.error is not None and second.error.type == "LimitExceededError"
        assert "budget" in second.error.message
        assert session.usage.bytes_read == 46 and session.usage.files_read == 2
        alive = await session.run("print('still fine')")
        assert alive.stdout.text == "still fine\n"
        bad = await session.run("grep('(unclosed')")
        assert bad.error is not None and bad.error.type == "PatternError"
        # Recorded from the 1.5B model: grep(r"cache", lines) and grep(r"WARN", read_file(path)), the
        # text in hand for the glob: those lines are searched, in the sandbox, smart case.
        held = await session.run(
            "print(grep('cache', ['[CACHE]', 'port = 6888', 'cache = on']))\n"
            "print(grep('WARN', 'hello\\nWARN x\\nwarn y\\n'))"  # the run's read budget is spent here
        )
        assert held.stdout.text == (
            "[{'path': '', 'line_number': 1, 'line': '[CACHE]'}, "
            "{'path': '', 'line_number': 3, 'line': 'cache = on'}]\n"
            "[{'path': '', 'line_number': 2, 'line': 'WARN x'}]\n"
        ), held
        strict = await session.run("print(len(grep('(?-i)warn', ['WARN a', 'warn b'])))")
        assert strict.stdout.text == "1\n", strict
        odd = await session.run("grep('cache', 42)")
        assert odd.error is not None and odd.error.type == "TypeError"
        assert "pattern of file paths" in odd.error.message


async def test_include_exclude_narrow_the_context(
    manager: SandboxManager, context_dir: Path, runtime: str
) -> None:
    """A narrowed context is served over gRPC, not mounted: excluded files are unreachable either way."""
    async with manager.open(context_dir, exclude=["sub/"], runtime=runtime) as session:
        result = await session.run(
            "import os\nprint(list_files(), read_file('hello.txt').strip(), os.listdir('/context'))\n"
            "try:\n    read_file('sub/data.csv')\nexcept ContextPathError:\n    print('refused')"
        )
        assert result.stdout.text == "['hello.txt'] hello from the context []\nrefused\n", result
        assert session.usage.bytes_read == 23


@pytest.mark.parametrize(
    "value", ["a long text\nwith lines", ["first doc", "second doc"], {"a.md": "alpha", "dir/b.txt": "beta"}]
)
async def test_in_memory_context_is_the_value_itself(manager: SandboxManager, value: object) -> None:
    """`context` is the str, list or dict the run was given, and the file API serves the same data."""
    source = InMemoryContext(value)  # type: ignore[arg-type]
    try:
        async with manager.open(source) as session:
            result = await session.run("import json\nprint(json.dumps([context, list_files()]))")
    finally:
        source.close()
    assert result.ok, result.error
    seen_value, files = json.loads(result.stdout.text)
    assert seen_value == value
    assert len(files) == (1 if isinstance(value, str) else len(value))


async def test_nested_sessions_share_one_store(manager: SandboxManager, context_dir: Path) -> None:
    """Two sandboxes on one store (as a run and its child) share the cache, the budget and the account."""
    async with manager.open(context_dir, context_limits=ContextLimits(max_read_bytes=30)) as parent:
        async with manager.open(store=parent.store) as child:
            assert (await child.run("read_file('hello.txt')")).ok
            refused = await parent.run("read_file('hello.txt')")
    assert refused.error is not None and refused.error.type == "LimitExceededError"
    assert parent.usage.bytes_read == 23


async def test_odd_names_unreadable_and_large_files_inside_a_sandbox(
    manager: SandboxManager, tmp_path: Path, runtime: str
) -> None:
    """In a real sandbox: a name that is not UTF-8, a mode-000 file and a file over the one-read limit
    are listed, grepped and read (by range) like any other, under one rule."""
    root = tmp_path / "odd"
    root.mkdir()
    (root / os.fsdecode(b"caf\xe9.txt")).write_text("latin-1 name, needle\n")
    locked = root / "locked.txt"
    locked.write_text("needle, locked\n")
    locked.chmod(0)
    (root / "big.log").write_text("".join(f"row {i}\n" for i in range(1, 5001)) + "needle at the end\n")
    code = """
names = sorted(list_files())
hits = sorted((m['path'], m['line_number']) for m in grep('needle'))
odd = read_file(names[1])
locked = read_file('locked.txt')
head = read_file('big.log', 0, 6)
try:
    read_file('big.log')
    whole = 'read whole'
except LimitExceededError as e:
    whole = 'refused: ' + str(e)
print(json.dumps({'names': names, 'hits': hits, 'odd': odd, 'locked': locked, 'head': head,
                  'whole': whole, 'lines': get_file_info('big.log')['lines']}))
"""
    async with manager.open(root, runtime=runtime, context_limits=ContextLimits(max_file_bytes=4096)) as s:
        result = await s.run("import json\n" + code)
    assert result.ok, result.error
    out = json.loads(result.stdout.text)
    assert out["names"] == ["big.log", "caf\\xe9.txt", "locked.txt"]
    assert out["hits"] == [["big.log", 5001], ["caf\\xe9.txt", 1], ["locked.txt", 1]]
    assert out["odd"] == "latin-1 name, needle\n" and out["locked"] == "needle, locked\n"
    assert out["head"] == "row 1\n" and "offset and length" in out["whole"] and out["lines"] == 5001
