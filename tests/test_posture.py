"""The checked posture: what a sandbox observes about itself, and how the engine made it, per runtime.

The expected postures are checked in (tests/posture/<runtime>.json, written by the probe and reviewed
by a person); any drift fails. To accept an intended change, regenerate with
`rlm exec --context examples/sample_context --file orchestrator/security/posture_probe.py
--runtime R > tests/posture/R.json` and review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path

import docker
import pytest

from orchestrator import SandboxLimits
from orchestrator.sandbox import SandboxManager

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parent.parent
PROBE = (ROOT / "orchestrator" / "security" / "posture_probe.py").read_text()


async def test_observed_posture_matches_the_expected_one(
    manager: SandboxManager, context_dir: Path, runtime: str
) -> None:
    """Capabilities, no_new_privs, seccomp mode, mounts, interfaces, user, limits and syscalls as expected."""
    expected = json.loads((ROOT / "tests" / "posture" / f"{runtime}.json").read_text())
    async with manager.open(context_dir, runtime=runtime, limits=SandboxLimits()) as session:
        result = await session.run(PROBE)
    assert result.ok, result.error
    observed = json.loads(result.stdout.text)
    drift = {
        k: {"expected": expected.get(k), "observed": observed.get(k)}
        for k in sorted(set(expected) | set(observed))
        if expected.get(k) != observed.get(k)
    }
    assert not drift, json.dumps(drift, indent=1)


async def test_engine_side_posture(
    manager: SandboxManager, context_dir: Path, runtime: str, docker_client: docker.DockerClient
) -> None:
    """The engine's record of the container: every hardening flag as container_kwargs set it."""
    limits = SandboxLimits()
    async with manager.open(context_dir, runtime=runtime, limits=limits) as session:
        host = docker_client.api.inspect_container(session.container_id)["HostConfig"]
    assert host["Runtime"] == runtime and host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd") and host["Privileged"] is False
    assert host["Memory"] == host["MemorySwap"] == limits.memory_bytes and host["PidsLimit"] == limits.pids
    assert (
        host["NanoCpus"] == int(limits.cpus * 1e9) and host["Init"] is True and host["IpcMode"] == "private"
    )
    assert "no-new-privileges:true" in host["SecurityOpt"]
    seccomp = [o for o in host["SecurityOpt"] if o.startswith("seccomp=")]
    assert len(seccomp) == 1 and "io_uring_setup" not in seccomp[0]
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "1", "max-size": "1m"}}
    assert not host.get("Devices") and not host.get("CgroupParent") and host["PidMode"] == ""
    assert host["ShmSize"] == 16 * 1024**2
    assert host["Tmpfs"] == {"/tmp": f"rw,nosuid,nodev,noexec,size={limits.tmpfs_bytes},mode=1777"}
    binds = [(m["Target"], m["ReadOnly"]) for m in host["Mounts"]]
    assert binds == [("/context", True), ("/rlm", True)]
