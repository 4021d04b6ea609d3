"""Hardening past Docker's defaults: our seccomp profile, on paper and in real sandboxes."""

from __future__ import annotations

import json
from pathlib import Path

import docker
import pytest

from orchestrator.config import DEFAULT_SECCOMP_PROFILE, SandboxConfig
from orchestrator.errors import EngineUnavailableError
from orchestrator.sandbox import SandboxManager
from orchestrator.security.seccomp import allowed_syscalls, harden

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
print(json.dumps(out))
"""


def test_harden_blocks_io_uring_and_the_two_families() -> None:
    """io_uring leaves the allow list; socket() is allowed by family everywhere but 38 and 40."""
    upstream = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["read", "socket", "io_uring_setup", "io_uring_enter"], "action": "SCMP_ACT_ALLOW"}
        ],
    }
    profile = harden(upstream)
    assert allowed_syscalls(profile) == {"read", "socket"}
    rules = [r["args"][0] for r in profile["syscalls"] if r["names"] == ["socket"]]
    assert [(r["op"], r["value"]) for r in rules] == [
        ("SCMP_CMP_LT", 38),
        ("SCMP_CMP_EQ", 39),
        ("SCMP_CMP_GT", 40),
    ]
    assert upstream["syscalls"][0]["names"][2] == "io_uring_setup"  # the input is left as it was


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
    assert all(r.get("args") for r in profile["syscalls"] if "socket" in r["names"])


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
        for blocked in ("io_uring_setup", "AF_VSOCK", "AF_ALG"):
            assert seen[blocked] == "EPERM", (blocked, seen)  # our filter said no, not the kernel
    else:
        # gVisor: the program's syscalls go to the Sentry, never the host kernel. It has no AF_VSOCK or
        # AF_ALG at all, and io_uring is the Sentry's own implementation (see docs/threat-model.md).
        assert seen["AF_VSOCK"] == seen["AF_ALG"] == "EAFNOSUPPORT", seen
        assert seen["io_uring_setup"] in {"allowed", "EPERM", "ENOSYS"}, seen
    assert seen["AF_UNIX"] == "allowed" and seen["AF_INET"] == "allowed"


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
