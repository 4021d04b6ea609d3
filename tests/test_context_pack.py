"""The context pack of runsc sandboxes: one file of the indexed files, sliced by read_file."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import docker
import pytest
from rlm_sandbox.context_api import LocalReader
from rlm_sandbox.errors import LimitExceededError

from orchestrator.config import ContextLimits
from orchestrator.context import pack
from orchestrator.context.sources import FileSystemContext
from orchestrator.sandbox import SandboxManager


def _context(root: Path, files: int = 70) -> dict[str, bytes]:
    made = {}
    for i in range(files):
        rel = f"d{i % 3}/f{i}.txt"
        data = f"file {i}\n".encode() * (i + 1) + "é\n".encode()
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        made[rel] = data
    (root / "big.bin").write_bytes(b"x" * 5000)  # over the one-read limit below: left out of the pack
    return made


def test_pack_holds_the_indexed_files_and_reads_as_the_mount(tmp_path: Path) -> None:
    """Each indexed file is in the pack at its offset; read_file slices it, with offset, length, budget."""
    root = tmp_path / "ctx"
    made = _context(root)
    built = pack.build(FileSystemContext(root), max_file_bytes=4096, uid=os.getuid())
    index = json.loads(Path(built.directory, pack.INDEX_NAME).read_text())
    assert set(index["paths"]) == set(made) and built.files == len(made)
    for name in (pack.PACK_NAME, pack.INDEX_NAME):  # the sandbox's user's alone
        mode = os.stat(Path(built.directory, name))
        assert stat.S_IMODE(mode.st_mode) == 0o400 and mode.st_uid == os.getuid()
    linked = tmp_path / "rlm"
    linked.mkdir()
    built.link_into(str(linked))
    reader = LocalReader(lambda: [*made, "big.bin"], 4096, root=str(root), pack_dir=str(linked))
    reader.start_cell(budget=10**9)
    for rel, data in made.items():
        assert reader.read(rel) == data
    assert reader.read("d1/f4.txt", 3, 5) == made["d1/f4.txt"][3:8]
    assert reader.read("d1/f4.txt", 10**6) == b""
    with pytest.raises(LimitExceededError):  # big.bin is not packed: read from the mount, over the limit
        reader.read("big.bin")
    reader.start_cell(budget=3)
    with pytest.raises(LimitExceededError, match="budget"):
        reader.read("d0/f0.txt")


def test_no_pack_reads_the_mount(tmp_path: Path) -> None:
    """Without a pack beside the socket, read_file reads the mount as before."""
    root = tmp_path / "ctx"
    made = _context(root, files=3)
    reader = LocalReader(lambda: list(made), 4096, root=str(root), pack_dir=str(tmp_path / "none"))
    reader.start_cell(budget=10**9)
    assert reader.read("d0/f0.txt") == made["d0/f0.txt"]


def test_pack_is_wanted_for_many_files_only() -> None:
    """A pack is made for many files within the size cap, never for a handful."""
    assert pack.wanted(pack.MIN_FILES, 10) and not pack.wanted(pack.MIN_FILES - 1, 10)
    assert not pack.wanted(10_000, pack.MAX_PACK_BYTES + 1)


@pytest.mark.docker
async def test_runsc_sandbox_reads_its_context_from_the_pack(
    docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    """Under runsc a context of many files is packed beside the socket and read_file gives every file's
    bytes from it; under runc there is no pack."""
    root = tmp_path / "ctx"
    made = _context(root)
    root.chmod(0o755)
    code = (
        "import os, hashlib\n"
        "h = hashlib.sha256()\n"
        "for p in sorted(list_files()):\n"
        "    if p != 'big.bin': h.update(p.encode() + read_file(p).encode())\n"
        "print(os.path.exists('/rlm/context.pack'), h.hexdigest())\n"
    )
    import hashlib

    want = hashlib.sha256()
    for rel in sorted(made):
        want.update(rel.encode() + made[rel])
    async with SandboxManager() as manager:
        for runtime, packed in (("runsc", True), ("runc", False)):
            async with manager.open(
                root, runtime=runtime, context_limits=ContextLimits(max_file_bytes=4096)
            ) as s:
                result = await s.run(code)
                assert result.ok, result.error
                assert result.stdout.text.split() == [str(packed), want.hexdigest()], runtime
                assert s.usage.files_read == len(made)
