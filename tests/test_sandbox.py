"""The sandbox core on the real engine, under runc and runsc: isolation, limits, lifecycle."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
from pathlib import Path

import docker
import docker.errors
import grpc
import pytest
from grpc import aio
from rlm_proto.v1 import sandbox_pb2 as pb
from rlm_proto.v1.sandbox_pb2_grpc import SandboxHostStub

from orchestrator import CellStatus, SandboxLimits
from orchestrator.errors import InvalidInputError, SandboxClosedError
from orchestrator.sandbox import SandboxManager, SandboxSession
from orchestrator.sandbox.backend import LABEL_MANAGED, LABEL_OWNER

pytestmark = pytest.mark.docker


def _gone(client: docker.DockerClient, container_id: str) -> bool:
    try:
        client.containers.get(container_id)
    except docker.errors.NotFound:
        return True
    return False


async def test_state_persists_and_errors_carry_tracebacks(session: SandboxSession) -> None:
    """Variables survive between cells; an exception comes back with the user's traceback."""
    assert (await session.run("x = 41")).ok
    assert (await session.run("print(x + 1)")).stdout.text == "42\n"
    result = await session.run("def f():\n    return 1 / 0\nf()")
    assert result.status is CellStatus.ERROR and result.error is not None
    assert result.error.type == "ZeroDivisionError"
    assert 'File "<cell 3>", line 2, in f' in result.error.traceback
    assert (await session.run("FINAL(x)")).final == "41"


async def test_context_is_mounted_read_only(session: SandboxSession) -> None:
    """/context holds the context and refuses writes; so does the root; /tmp is writable."""
    code = """
import errno, json, os
def attempt(path):
    try:
        with open(path, "w") as fh:
            fh.write("x")
        return "written"
    except OSError as e:
        return errno.errorcode[e.errno]
print(json.dumps({
    "read": open("/context/hello.txt").read(),
    "context": attempt("/context/new.txt"),
    "overwrite": attempt("/context/hello.txt"),
    "root": attempt("/etc/evil"),
    "runtime": attempt("/opt/rlm/lib/rlm_sandbox/evil.py"),
    "tmp": attempt("/tmp/scratch"),
}))
"""
    seen = json.loads((await session.run(code)).stdout.text)
    assert seen["read"] == "hello from the context\n"
    for where in ("context", "overwrite", "root", "runtime"):
        assert seen[where] in {"EROFS", "EACCES"}, (where, seen[where])
    assert seen["tmp"] == "written"


async def test_user_is_unprivileged(session: SandboxSession) -> None:
    """The code runs as a non-root user with every capability set empty and no-new-privileges."""
    code = """
import json, os
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "euid": os.geteuid(),
                  **{k: status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
                                                   "NoNewPrivs") if k in status}}))
"""
    seen = json.loads((await session.run(code)).stdout.text)
    assert seen["uid"] == seen["euid"] == 10001 and seen["gid"] == 10001
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        if cap in seen:
            assert int(seen[cap], 16) == 0, (cap, seen[cap])
    assert int(seen["CapEff"], 16) == 0 and int(seen["CapBnd"], 16) == 0
    if session.spec.runtime == "runc":
        assert seen["NoNewPrivs"] == "1"


async def test_no_network(session: SandboxSession, docker_client: docker.DockerClient) -> None:
    """Only loopback exists: neither an outside address nor the Docker bridge's gateway is reachable."""
    gateway = docker_client.networks.get("bridge").attrs["IPAM"]["Config"][0].get("Gateway", "172.17.0.1")
    code = f"""
import json, os, socket
def reach(host, port):
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "connected"
    except OSError as e:
        return type(e).__name__
print(json.dumps({{"ifaces": sorted(os.listdir("/sys/class/net")), "outside": reach("1.1.1.1", 53),
                  "bridge": reach("{gateway}", 2375), "dns": reach("example.com", 80)}}))
"""
    seen = json.loads((await session.run(code)).stdout.text)
    assert seen["ifaces"] == ["lo"]
    assert seen["outside"] != "connected" and seen["bridge"] != "connected" and seen["dns"] != "connected"


async def test_orchestrator_secret_is_invisible(
    manager: SandboxManager, context_dir: Path, runtime: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret in the orchestrator's environment appears in no process environment in the sandbox."""
    secret = "s3cret-" + secrets.token_hex(8)
    monkeypatch.setenv("RLM_TEST_SECRET", secret)
    code = """
import glob, os
found = []
for path in glob.glob("/proc/[0-9]*/environ") + glob.glob("/proc/[0-9]*/cmdline"):
    try:
        found.append(open(path, "rb").read().decode("utf-8", "replace"))
    except OSError:
        pass
print(repr(dict(os.environ)))
print("\\n".join(found))
"""
    async with manager.open(context_dir, runtime=runtime) as session:
        result = await session.run(code)
    assert result.ok
    assert secret not in result.stdout.text
    assert "RLM_TOKEN" not in result.stdout.text.splitlines()[0]  # the runtime dropped its token


async def test_memory_bomb_is_oom(
    manager: SandboxManager, context_dir: Path, runtime: str, docker_client: docker.DockerClient
) -> None:
    """Allocating past the memory limit ends the cell as `oom` and removes the sandbox."""
    limits = SandboxLimits(memory_bytes=64 * 1024**2)
    async with manager.open(context_dir, runtime=runtime, limits=limits) as session:
        result = await session.run("blob = b'x' * (400 * 1024 * 1024)")
        assert result.status is CellStatus.OOM
        assert _gone(docker_client, session.container_id)


async def test_endless_loop_times_out_and_leaves_nothing(
    manager: SandboxManager, context_dir: Path, runtime: str, docker_client: docker.DockerClient
) -> None:
    """A cell past its wall-clock limit is `timeout`, reported promptly, and its container is gone."""
    async with manager.open(context_dir, runtime=runtime) as session:
        result = await session.run("while True:\n    pass", timeout_s=1.5)
        assert result.status is CellStatus.TIMEOUT
        assert 1.5 <= result.duration_s < 1.5 + 5
        assert _gone(docker_client, session.container_id)
        with pytest.raises(Exception, match="closed"):
            await session.run("pass")


async def test_fork_bomb_is_contained(manager: SandboxManager, context_dir: Path, runtime: str) -> None:
    """A fork bomb hits the pids limit: forks fail or the sandbox dies; either way the engine serves on.

    Under runc fork() gets EAGAIN, but the runtime's gRPC threads may then fail to spawn and abort it;
    under runsc the sandbox may end. Both are contained: what must never happen is a fork past the limit.
    """
    limits = SandboxLimits(pids=96)
    code = """
import os, time
children = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        children += 1
except OSError as e:
    print("stopped", children, e.errno)
"""
    async with manager.open(context_dir, runtime=runtime, limits=limits) as session:
        result = await session.run(code, timeout_s=20)
    # Every ending is containment (the kernel stopped it); what matters is the count below and that the
    # engine serves on. KILLED: gRPC's threads could not spawn and the runtime aborted; TIMEOUT: that
    # took past the cell's limit on a loaded machine.
    assert result.status in {CellStatus.OK, CellStatus.KILLED, CellStatus.OOM, CellStatus.TIMEOUT}, result
    if result.status is CellStatus.OK:
        words = result.stdout.text.split()
        assert words[0] == "stopped" and int(words[1]) < 96
    async with manager.open(context_dir, runtime=runtime) as fresh:  # the engine still serves
        assert (await fresh.run("print('alive')")).stdout.text == "alive\n"


def _peak_rss_reset() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # resets VmHWM to the current RSS


def _peak_rss() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


async def test_stdout_flood_is_truncated_and_host_memory_flat(session: SandboxSession) -> None:
    """200 MB of output comes back as the capped head with the true size; host peak RSS barely moves."""
    _peak_rss_reset()
    before = _peak_rss()
    result = await session.run(
        "import sys\nchunk = 'y' * 65536\nfor _ in range(3200):\n    sys.stdout.write(chunk)",
        max_output_bytes=64 * 1024,
    )
    grew = _peak_rss() - before
    assert result.ok
    assert result.stdout.truncated and result.stdout.total_bytes == 3200 * 65536
    assert len(result.stdout.text) == 64 * 1024
    assert grew < 32 * 1024**2, f"host peak RSS grew by {grew / 1e6:.1f} MB"


async def test_daemon_does_not_outlive_the_session(
    manager: SandboxManager, context_dir: Path, runtime: str, docker_client: docker.DockerClient
) -> None:
    """A detached background process started by user code dies with the sandbox."""
    marker = f"{3000 + secrets.randbelow(1000)}.{secrets.randbelow(10**6):06d}"
    code = f"""
import subprocess
subprocess.Popen(["sleep", "{marker}"], start_new_session=True,
                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print("started")
"""
    async with manager.open(context_dir, runtime=runtime) as session:
        assert (await session.run(code)).stdout.text == "started\n"
        seen = await session.run(
            "import os; print(sum(1 for p in os.listdir('/proc') if p.isdigit() and "
            f"'{marker}' in open(f'/proc/{{p}}/cmdline').read()))"
        )
        assert seen.stdout.text == "1\n"
        container_id = session.container_id
    assert _gone(docker_client, container_id)
    host = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True)
    assert host.stdout == "", f"sleep {marker} still runs on the host: pids {host.stdout.split()}"


async def test_llm_callbacks_say_not_available(session: SandboxSession) -> None:
    """Outside an RLM run the LLM functions return the official REPL's "Error: ..." string (for a batch,
    one per prompt) saying they are not available: never a made-up reply, never an exception."""
    said = "'Error: {}() is not available in this session'"
    for call, shown in (
        ("llm_query('hi')", said.format("llm_query")),
        ("rlm_query('hi')", said.format("rlm_query")),
        ("llm_query_batched(['a', 'b'])", f"[{said.format('llm_query_batched')}] * 2"),
    ):
        result = await session.run(f"print({call} == {shown})")
        assert result.error is None and result.stdout.text == "True\n", call


async def test_socket_requires_the_sandbox_token(session: SandboxSession) -> None:
    """A caller on the sandbox's socket without its token is refused; a second session stream too."""
    path = session.channel.socket_path
    async with aio.insecure_channel(f"unix:{path}") as channel:
        stub = SandboxHostStub(channel)
        with pytest.raises(aio.AioRpcError) as refused:
            await stub.Stats(pb.StatsRequest(), metadata=(("x-rlm-token", "wrong"),))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(aio.AioRpcError) as unserved:
            await stub.LlmQuery(pb.LlmQueryRequest(prompt="x"), metadata=(("x-rlm-token", session.token),))
        assert unserved.value.code() == grpc.StatusCode.UNIMPLEMENTED
        stream = stub.Session(metadata=(("x-rlm-token", session.token),))
        with pytest.raises(aio.AioRpcError) as second:
            await stream.read()
        assert second.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert (await session.run("print('still here')")).stdout.text == "still here\n"


async def test_reaper_removes_orphans_only(docker_client: docker.DockerClient, context_dir: Path) -> None:
    """At start-up a manager removes containers whose owner died, and keeps a live manager's sandboxes."""
    dead_owner = f"{os.uname().nodename}/{2**22 + 7}/1/dead"
    orphan = docker_client.containers.create(
        "rlm-sandbox:latest",
        ["sleep", "60"],
        labels={LABEL_MANAGED: "1", LABEL_OWNER: dead_owner},
        network_mode="none",
    )
    async with SandboxManager() as first, first.open(context_dir) as live:
        async with SandboxManager() as second:
            assert await second.reap() == 0  # the orphan is already gone, the live one stays
        assert _gone(docker_client, orphan.id)
        assert (await live.run("print(1)")).stdout.text == "1\n"


async def test_runsc_refuses_a_pids_limit_too_small_for_gvisor(
    manager: SandboxManager, context_dir: Path
) -> None:
    """gVisor's own threads count against the pids limit: below its floor the error says so up front."""
    with pytest.raises(InvalidInputError, match="at least 96"):
        async with manager.open(context_dir, runtime="runsc", limits=SandboxLimits(pids=64)):
            pass


async def test_cancelled_cell_ends_the_session(
    session: SandboxSession, docker_client: docker.DockerClient
) -> None:
    """A caller that gives up on a cell ends the sandbox: no later cell queues behind the abandoned one."""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(session.run("import time\ntime.sleep(60)"), 1.0)
    assert _gone(docker_client, session.container_id)
    with pytest.raises(SandboxClosedError):
        await session.run("pass")


async def test_large_final_answer_is_capped_and_flagged(session: SandboxSession) -> None:
    """A final answer larger than the output cap arrives cut to the cap, flagged, and the cell is ok."""
    result = await session.run("FINAL('z' * 3_000_000)", max_output_bytes=100_000)
    assert result.ok, result.error
    assert result.final == "z" * 100_000 and result.final_truncated
    assert (await session.run("print('alive')")).stdout.text == "alive\n"


async def test_per_call_limits_are_checked(session: SandboxSession) -> None:
    """A NaN or negative timeout and a negative output cap are refused before anything runs."""
    for kwargs in ({"timeout_s": float("nan")}, {"timeout_s": -1.0}, {"max_output_bytes": -5}):
        with pytest.raises(InvalidInputError):
            await session.run("pass", **kwargs)  # type: ignore[arg-type]
    assert (await session.run("print('ok')")).stdout.text == "ok\n"
