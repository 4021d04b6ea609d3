"""Hardening past Docker's defaults: our seccomp profile, on paper and in real sandboxes."""

from __future__ import annotations

import json
from pathlib import Path

import docker
import pytest

from orchestrator.config import DEFAULT_SECCOMP_PROFILE, SandboxConfig
from orchestrator.errors import EngineUnavailableError
from orchestrator.sandbox import SandboxManager
from orchestrator.security.seccomp import allowed_syscalls, harden, verify

PROBE = """
import ctypes, errno, json, socket
libc = ctypes.CDLL(None, use_errno=True)
out = {}
params = ctypes.create_string_buffer(120)
rc = libc.syscall(425, 1, params)  # io_uring_setup(1, &params)
out["io_uring_setup"] = "allowed" if rc >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")
cases = (("AF_VSOCK", 40, socket.SOCK_STREAM), ("AF_ALG", 38, socket.SOCK_SEQPACKET),
         ("AF_UNIX", socket.AF_UNIX, socket.SOCK_STREAM), ("AF_INET", socket.AF_INET, socket.SOCK_STREAM))
for name, family, kind in cases:
    try:
        socket.socket(family, kind).close()
        out[name] = "allowed"
    except OSError as e:
        out[name] = errno.errorcode.get(e.errno, "?")
# Review found two bypasses of a first version: a family with high bits set (the kernel reads an int,
# the filter compared 64 bits) and i386 socketcall() through `int 0x80` from a 64-bit process.
for name, family in (("AF_VSOCK_high_bits", 0x1_00000028), ("AF_ALG_high_bits", 0xFFFFFFFF_00000026)):
    fd = libc.syscall(41, ctypes.c_uint64(family), socket.SOCK_STREAM, 0)
    out[name] = "allowed" if fd >= 0 else errno.errorcode.get(ctypes.get_errno(), "?")
print(json.dumps(out))
"""

INT80_SOCKETCALL = r'''
import subprocess, sys
code = """
import ctypes, mmap, struct
args = mmap.mmap(-1, 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | 0x40)  # MAP_32BIT
args.write(struct.pack("<III", 40, 1, 0))  # socketcall(SYS_SOCKET, {AF_VSOCK, SOCK_STREAM, 0})
addr = ctypes.addressof(ctypes.c_char.from_buffer(args))
text = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
# push rbx; mov eax, 102; mov ebx, 1; mov ecx, addr; int 0x80; pop rbx; ret
text.write(bytes.fromhex("53b866000000bb01000000b9") + struct.pack("<I", addr) + bytes.fromhex("cd805bc3"))
fn = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(text)))
print(fn())
"""
done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
print(done.returncode, done.stdout.strip())
'''


def test_harden_blocks_io_uring_socketcall_32bit_and_high_families() -> None:
    """io_uring and socketcall leave the allow list, no 32-bit ABI remains, socket() only below 38."""
    upstream = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}
        ],
        "syscalls": [
            {
                "names": ["read", "socket", "socketcall", "io_uring_setup", "io_uring_enter"],
                "action": "SCMP_ACT_ALLOW",
            }
        ],
    }
    profile = harden(upstream)
    assert allowed_syscalls(profile) == {"read", "socket"}
    assert profile["archMap"][0]["subArchitectures"] == []
    rules = [r["args"][0] for r in profile["syscalls"] if r["names"] == ["socket"]]
    assert [(r["op"], r["value"]) for r in rules] == [("SCMP_CMP_LT", 38)]
    assert upstream["syscalls"][0]["names"][3] == "io_uring_setup"  # the input is left as it was


def test_verify_catches_a_weakened_profile() -> None:
    """A profile missing any of our blocks is refused at load time, whatever its file says."""
    good = harden(
        {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ALLOW"}]}
    )
    verify(good)
    gt_rule = {
        "names": ["socket"],
        "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_GT"}],
    }
    weakened = [
        {**good, "defaultAction": "SCMP_ACT_ALLOW"},
        {**good, "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}]},
        {**good, "syscalls": [*good["syscalls"], {"names": ["io_uring_setup"], "action": "SCMP_ACT_ALLOW"}]},
        {**good, "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ALLOW"}]},
        {**good, "syscalls": [gt_rule]},
    ]
    for profile in weakened:
        with pytest.raises(ValueError):
            verify(profile)


def test_harden_refuses_surprises() -> None:
    """An allow-by-default profile or an upstream that already restricts socket() needs a human."""
    with pytest.raises(ValueError, match="deny by default"):
        harden({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []})
    with pytest.raises(ValueError, match="review"):
        harden(
            {
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0}]}],
            }
        )


def test_the_installed_profile_is_ours() -> None:
    """make setup installed the hardened profile: no io_uring, socket() only by family."""
    profile = json.loads(Path(DEFAULT_SECCOMP_PROFILE).read_text())
    assert not {"io_uring_setup", "io_uring_enter", "io_uring_register"} & allowed_syscalls(profile)
    verify(profile)


@pytest.mark.docker
async def test_blocked_calls_are_refused_in_a_sandbox(
    manager: SandboxManager, context_dir: Path, runtime: str
) -> None:
    """Under runc our filter refuses io_uring_setup, AF_VSOCK and AF_ALG; under runsc none reaches the host
    kernel; ordinary sockets still open under both."""
    async with manager.open(context_dir, runtime=runtime) as session:
        result = await session.run(PROBE)
    assert result.ok, result.error
    seen = json.loads(result.stdout.text)
    if runtime == "runc":
        for blocked in ("io_uring_setup", "AF_VSOCK", "AF_ALG", "AF_VSOCK_high_bits", "AF_ALG_high_bits"):
            assert seen[blocked] == "EPERM", (blocked, seen)  # our filter said no, not the kernel
    else:
        # gVisor: the program's syscalls go to the Sentry, never the host kernel. It has no AF_VSOCK or
        # AF_ALG at all, and io_uring is the Sentry's own implementation (see docs/threat-model.md).
        assert seen["AF_VSOCK"] == seen["AF_ALG"] == "EAFNOSUPPORT", seen
        assert seen["AF_VSOCK_high_bits"] != "allowed" and seen["AF_ALG_high_bits"] != "allowed", seen
        assert seen["io_uring_setup"] in {"allowed", "EPERM", "ENOSYS"}, seen
    assert seen["AF_UNIX"] == "allowed" and seen["AF_INET"] == "allowed"


@pytest.mark.docker
async def test_32bit_socketcall_is_killed_under_runc(manager: SandboxManager, context_dir: Path) -> None:
    """i386 socketcall() through int 0x80 from a 64-bit process is killed (SIGSYS), not an AF_VSOCK fd."""
    async with manager.open(context_dir, runtime="runc") as session:
        result = await session.run(INT80_SOCKETCALL)
    assert result.ok, result.error
    assert result.stdout.text.split()[0] == "-31", result.stdout.text  # killed by SIGSYS


@pytest.mark.docker
async def test_no_profile_no_sandbox(
    docker_client: docker.DockerClient, context_dir: Path, tmp_path: Path
) -> None:
    """Without its seccomp profile the manager refuses to start sandboxes, saying what to do."""
    config = SandboxConfig(seccomp_profile=str(tmp_path / "missing.json"))
    async with SandboxManager(config) as manager:
        with pytest.raises(EngineUnavailableError, match="make setup"):
            async with manager.open(context_dir):
                pass


CROSS_TENANT = """
import grpc, json, os
from rlm_proto.v1 import sandbox_pb2 as pb
from rlm_proto.v1.sandbox_pb2_grpc import SandboxHostStub
out = {"rlm_dir": sorted(os.listdir("/rlm")) if os.access("/rlm", os.R_OK) else "unlistable",
       "context": sorted(os.listdir("/context")), "other_socket": os.path.exists(OTHER_SOCKET)}
stub = SandboxHostStub(grpc.insecure_channel("unix:/rlm/host.sock"))
try:
    stub.Stats(pb.StatsRequest(), metadata=(("x-rlm-token", OTHER_TOKEN),), timeout=60)
    out["other_token"] = "accepted"
except grpc.RpcError as e:
    out["other_token"] = e.code().name
for path in ("secret-b.txt", "../secret-b.txt", OTHER_CONTEXT + "/secret-b.txt"):
    try:
        read_file(path)
        out[path] = "read"
    except ContextPathError:
        out[path] = "refused"
print(json.dumps(out))
"""


@pytest.mark.docker
async def test_tenants_cannot_reach_each_other(manager: SandboxManager, tmp_path: Path, runtime: str) -> None:
    """With both sandboxes live, tenant A's code cannot see B's socket or context, cannot use B's token
    (even knowing it), and its reads do not touch B's account."""
    dir_a, dir_b = tmp_path / "a", tmp_path / "b"
    dir_a.mkdir()
    dir_b.mkdir()
    (dir_a / "mine-a.txt").write_text("alpha data")
    (dir_b / "secret-b.txt").write_text("beta secret")
    async with (
        manager.open(dir_b, tenant="beta", runtime=runtime) as b,
        manager.open(dir_a, tenant="alpha", runtime=runtime) as a,
    ):
        code = (
            f"OTHER_TOKEN = {b.token!r}\nOTHER_SOCKET = {b.channel.socket_path!r}\n"
            f"OTHER_CONTEXT = {str(dir_b)!r}\n" + CROSS_TENANT
        )
        result = await a.run(code)
        assert (await a.run("print(read_file('mine-a.txt'))")).stdout.text == "alpha data\n"
        assert b.usage.bytes_read == 0 and a.usage.bytes_read > 0
    assert result.ok, result.error
    seen = json.loads(result.stdout.text)
    assert seen["rlm_dir"] in ("unlistable", ["host.sock"]) and seen["context"] == ["mine-a.txt"]
    assert seen["other_socket"] is False and seen["other_token"] == "UNAUTHENTICATED"
    assert all(
        seen[p] == "refused" for p in ("secret-b.txt", "../secret-b.txt", str(dir_b) + "/secret-b.txt")
    )
    assert "beta secret" not in result.stdout.text
