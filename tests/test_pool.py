"""The warm pool: one session per sandbox, nothing carried over, contexts attached read-only, fairness,
failures, retirement, shutdown and the reaper, and every fallback (late mount, over the socket, cold).

The pool's logic runs on the process backend (the real runtime as a local process, no isolation);
what is about isolation (the attached context read-only and the right one, nothing left by one session
for the next, no container left behind, also after `kill -9` of the pool's owner) runs in real Docker
sandboxes under runc and runsc.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import docker
import pytest

from orchestrator import pool_bench
from orchestrator.config import LLMEndpoint, RLMConfig, Runtime, SandboxConfig, SandboxLimits
from orchestrator.core import Orchestrator
from orchestrator.errors import SandboxStartError
from orchestrator.sandbox import SandboxManager
from orchestrator.sandbox.backend import LABEL_OWNER, LABEL_TENANT, CallbackChannel, SandboxSpec
from orchestrator.sandbox.pool import POOL_TENANT, WarmPool
from orchestrator.server.metrics import Metrics
from orchestrator.settings import PoolSettings, Settings

from .fake_llm import FakeLLM, Reply, Seen, repl
from .fakes.clock import FakeClock
from .fakes.process_backend import ProcessBackend

REPO = Path(__file__).resolve().parent.parent
LIMITS = SandboxLimits(cell_timeout_s=30)
SLOTS = Path("/run/rlm/slots")


def _pool(**changes: Any) -> PoolSettings:
    values: dict[str, Any] = {"enabled": True, "min": 2, "max": 4, "per_tenant_share": 1.0}
    values.update(changes)
    return PoolSettings(**values)


async def _filled(pool: WarmPool, size: int, timeout_s: float = 120.0) -> None:
    """Wait until `size` sandboxes are idle in the pool."""
    deadline = time.monotonic() + timeout_s
    while pool.size() < size:
        assert time.monotonic() < deadline, f"the pool did not fill to {size}: {pool.stats()}"
        await asyncio.sleep(0.02)


@pytest.fixture
async def pooled(tmp_path: Path) -> AsyncIterator[tuple[SandboxManager, WarmPool]]:
    """A manager on the process backend with a started pool of two (min 2, max 4, share 1)."""
    manager = SandboxManager(SandboxConfig(limits=LIMITS), backend=ProcessBackend(state_dir=tmp_path / "st"))
    pool = manager.use_pool(_pool())
    await pool.start()
    try:
        yield manager, pool
    finally:
        await manager.aclose()


# -- one session per sandbox --------------------------------------------------------------------------


async def test_a_pooled_sandbox_serves_one_session_and_is_then_destroyed(
    pooled: tuple[SandboxManager, WarmPool], context_dir: Path
) -> None:
    """Sessions one after another each get a sandbox of their own from the pool; when a session ends its
    sandbox is removed, never handed out again."""
    manager, pool = pooled
    await _filled(pool, 2)
    seen: list[str] = []
    for _ in range(5):
        async with manager.open(context_dir, tenant="acme") as session:
            assert session.pooled and session.context_path == "late-mount"
            result = await session.run("print(read_file('hello.txt'), end='')")
            assert result.stdout.text == "hello from the context\n", result.error
            seen.append(session.sandbox_id)
        assert session.sandbox_id not in {m.sandbox_id for m in await manager.backend.list_managed()}
        assert not pool.holds(session.sandbox)
    assert len(set(seen)) == 5
    stats = pool.stats()
    assert stats.hits + stats.misses == 5 and stats.unpooled == 0 and stats.hits >= 1
    assert stats.handout_p50_ms is not None and stats.handout_p99_ms is not None


async def test_concurrent_hand_outs_never_give_one_sandbox_twice(tmp_path: Path, context_dir: Path) -> None:
    """Sixteen sessions of four tenants opened at once from a pool of four (max 8) get sixteen different
    sandboxes, each its own runtime process; the ones not idle at the request waited for a start."""
    manager = SandboxManager(SandboxConfig(limits=LIMITS), backend=ProcessBackend(state_dir=tmp_path / "st"))
    pool = manager.use_pool(_pool(min=4, max=8))
    await pool.start()
    try:
        await _filled(pool, 4)
        sessions = await asyncio.gather(
            *(manager.start_session(context_dir, tenant=f"t{i % 4}") for i in range(16))
        )
        ids = {s.sandbox_id for s in sessions}
        pids = await asyncio.gather(*(s.run("import os; print(os.getpid())") for s in sessions))
        assert len(ids) == 16 and len({p.stdout.text for p in pids}) == 16
        assert all(s.pooled for s in sessions)
        assert pool.stats().hits >= 4 and pool.stats().hits + pool.stats().misses == 16
        await asyncio.gather(*(s.aclose() for s in sessions))
    finally:
        await manager.aclose()


async def test_the_tenant_and_a_fresh_token_are_bound_at_hand_out(
    pooled: tuple[SandboxManager, WarmPool], context_dir: Path
) -> None:
    """A pooled sandbox is created for nobody (label tenant "pool", the manager's record too) and gets
    the run's tenant and a token of its own when handed out."""
    manager, pool = pooled
    await _filled(pool, 2)
    labels = {m.sandbox_id: m.tenant for m in await manager.backend.list_managed()}
    assert set(labels.values()) == {POOL_TENANT}
    async with manager.open(context_dir, tenant="acme") as session:
        assert session.sandbox.tenant == "acme" and labels[session.sandbox_id] == POOL_TENANT
        assert session.sandbox.endpoint._token != session.spec.token  # rebound at hand-out
        listed = await session.run("print(len(list_files()))")  # over the socket with the new token
        assert listed.stdout.text == "2\n", listed.error


# -- fairness and back-pressure --------------------------------------------------------------------------


class GatedBackend(ProcessBackend):
    """Starts a sandbox only when the test opens the gate, once per start."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.gate: asyncio.Queue[None] = asyncio.Queue()

    async def start(self, spec: SandboxSpec, channel: CallbackChannel) -> str:
        await self.gate.get()
        return await super().start(spec, channel)


async def test_requests_wait_in_order_and_past_their_deadline_are_refused(tmp_path: Path) -> None:
    """With nothing idle, requests are served in the order they came as sandboxes start; one that
    waits past its deadline (the pool's clock) gets SandboxStartError, and nothing is lost."""
    clock = FakeClock()
    backend = GatedBackend(state_dir=tmp_path / "st")
    manager = SandboxManager(SandboxConfig(limits=LIMITS), backend=backend, clock=clock)
    pool = manager.use_pool(_pool(min=0, max=1, start_concurrency=1))
    await pool.start()
    runc, served = Runtime.RUNC, []

    async def ask(tenant: str) -> None:
        sandbox = await pool.acquire(tenant, runc, LIMITS, deadline_s=1000)
        assert sandbox is not None
        served.append(tenant)

    try:
        tasks = []
        for tenant in ("a", "b", "c"):
            tasks.append(asyncio.create_task(ask(tenant)))
            await asyncio.sleep(0.01)  # arrival order
        for _ in range(3):
            backend.gate.put_nowait(None)
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        assert served == ["a", "b", "c"]
        late = asyncio.create_task(pool.acquire("d", runc, LIMITS, deadline_s=5))
        await asyncio.sleep(0.05)
        clock.advance(6)
        with pytest.raises(SandboxStartError, match="within 5 s"):
            await asyncio.wait_for(late, 10)
        assert pool.stats().timeouts == 1
        backend.gate.put_nowait(None)  # the start for "d" lands idle: no waiter is left
        await _filled(pool, 1, 60)
    finally:
        for _ in range(4):
            backend.gate.put_nowait(None)
        await manager.aclose()


async def test_a_tenant_cannot_take_more_than_its_share(tmp_path: Path, context_dir: Path) -> None:
    """With max 2 and a share of 0.5, a tenant holds one pooled sandbox at a time: its second request
    starts cold (a miss, counted as over share) and leaves the pool to another tenant."""
    manager = SandboxManager(SandboxConfig(limits=LIMITS), backend=ProcessBackend(state_dir=tmp_path / "st"))
    pool = manager.use_pool(_pool(min=2, max=2, per_tenant_share=0.5))
    await pool.start()
    try:
        await _filled(pool, 2)
        first = await manager.start_session(context_dir, tenant="greedy")
        second = await manager.start_session(context_dir, tenant="greedy")
        other = await manager.start_session(context_dir, tenant="modest")
        assert first.pooled and not second.pooled and other.pooled
        assert second.context_path == "mount" and pool.stats().over_share == 1
        await first.aclose()  # its share frees when its sandbox is gone
        again = await manager.start_session(context_dir, tenant="greedy")
        assert again.pooled
        await asyncio.gather(second.aclose(), other.aclose(), again.aclose())
    finally:
        await manager.aclose()


# -- failures, retirement, dead sandboxes ---------------------------------------------------------------


class FlakyBackend(ProcessBackend):
    """Fails the first `fail` starts (or all, with fail=-1) as an engine would."""

    def __init__(self, *args: Any, fail: int, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.fail = fail
        self.starts = 0

    async def start(self, spec: SandboxSpec, channel: CallbackChannel) -> str:
        self.starts += 1
        if self.fail < 0 or self.starts <= self.fail:
            raise SandboxStartError("could not create the sandbox: boom (injected)")
        return await super().start(spec, channel)


class Events:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def pool_changed(self, size: int, **event: Any) -> None:
        self.seen.append({"size": size, **event})


async def test_a_failed_start_is_retried_and_reported(tmp_path: Path) -> None:
    """Two failed starts are counted, said (the reason kept) and retried with backoff; the pool fills."""
    events = Events()
    backend = FlakyBackend(state_dir=tmp_path / "st", fail=2)
    manager = SandboxManager(SandboxConfig(limits=LIMITS), backend=backend)
    pool = manager.use_pool(_pool(min=1, max=1), listener=events)
    await pool.start()
    try:
        await _filled(pool, 1, 60)
        stats = pool.stats()
        assert stats.start_failures == 2 and "boom" in (stats.last_start_failure or "")
        assert sum(1 for e in events.seen if e.get("start_failed")) == 2
    finally:
        await manager.aclose()


async def test_starts_that_keep_failing_fail_the_waiting_requests(tmp_path: Path, context_dir: Path) -> None:
    """When every start fails, a waiting request is told why after three failures, long before its
    deadline: not left hanging."""
    manager = SandboxManager(
        SandboxConfig(limits=LIMITS), backend=FlakyBackend(state_dir=tmp_path / "st", fail=-1)
    )
    pool = manager.use_pool(_pool(min=0, max=1, wait_s=120))
    await pool.start()
    try:
        started = time.monotonic()
        with pytest.raises(SandboxStartError, match="boom"):
            await manager.start_session(context_dir, tenant="t")
        assert time.monotonic() - started < 20
        assert pool.stats().start_failures >= 3
    finally:
        await manager.aclose()


async def test_idle_sandboxes_beyond_min_retire_after_idle_retire_s(tmp_path: Path) -> None:
    """Idle sandboxes above min are destroyed, oldest first, once idle for idle_retire_s (the pool's
    clock); min of them stay."""
    clock = FakeClock()
    backend = ProcessBackend(state_dir=tmp_path / "st")
    manager = SandboxManager(SandboxConfig(limits=LIMITS), backend=backend, clock=clock)
    pool = manager.use_pool(_pool(min=3, max=3, idle_retire_s=60))
    await pool.start()
    try:
        await _filled(pool, 3)
        pool.settings = dataclasses.replace(pool.settings, min=1)  # an operator lowering min
        clock.advance(30)
        await asyncio.sleep(0.05)
        assert pool.size() == 3  # not idle long enough yet
        clock.advance(35)
        deadline = time.monotonic() + 30
        while len(await backend.list_managed()) > 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert pool.size() == 1 and pool.stats().retired == 2
    finally:
        await manager.aclose()


async def test_an_idle_sandbox_that_died_is_never_handed_out(
    pooled: tuple[SandboxManager, WarmPool], context_dir: Path
) -> None:
    """An idle sandbox whose runtime died is skipped at hand-out (and removed); the session gets a
    live one."""
    manager, pool = pooled
    await _filled(pool, 2)
    doomed = [s for p in pool._profiles.values() for s, _t in p.idle]
    for sandbox in doomed:
        await manager.backend.kill(sandbox.handle)
    deadline = time.monotonic() + 30
    while not all(s.endpoint.closed for s in doomed):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    async with manager.open(context_dir, tenant="t") as session:
        assert session.sandbox not in doomed and session.pooled
        assert (await session.run("print(6*7)")).stdout.text == "42\n"
    assert pool.stats().retired >= 2


# -- fallbacks -----------------------------------------------------------------------------------------------


async def test_without_late_mounts_the_context_is_served_over_the_socket(
    tmp_path: Path, context_dir: Path
) -> None:
    """A backend that cannot attach a context (NotSupported) still serves pooled sandboxes: every read
    goes over the socket (context_path grpc), an in-memory context included."""
    backend = ProcessBackend(state_dir=tmp_path / "st", late_context=False)
    manager = SandboxManager(SandboxConfig(limits=LIMITS), backend=backend)
    pool = manager.use_pool(_pool())
    await pool.start()
    try:
        await _filled(pool, 2)
        async with manager.open(context_dir, tenant="t") as session:
            assert session.pooled and session.context_path == "grpc"
            result = await session.run("print(read_file('sub/data.csv').splitlines()[1])")
            assert result.stdout.text == "1,2\n", result.error
            assert session.usage.bytes_read > 0  # the host served it
        from orchestrator.context.sources import InMemoryContext

        async with manager.open(InMemoryContext({"a.txt": "alpha", "b/c.txt": "gamma"}), tenant="t") as s:
            assert s.pooled and s.context_path == "grpc"
            seen = await s.run("print(sorted(context.items()))")
            assert seen.stdout.text == "[('a.txt', 'alpha'), ('b/c.txt', 'gamma')]\n", seen.error
    finally:
        await manager.aclose()


async def test_a_narrowed_context_is_served_over_the_socket_and_unpooled_limits_start_cold(
    pooled: tuple[SandboxManager, WarmPool], context_dir: Path
) -> None:
    """A context narrowed by globs is never mounted, pooled or not (grpc); limits no profile names
    start cold, with the context mounted at start (mount)."""
    manager, pool = pooled
    await _filled(pool, 2)
    async with manager.open(context_dir, include=["*.txt"], tenant="t") as session:
        assert session.pooled and session.context_path == "grpc"
        hidden = await session.run("read_file('sub/data.csv')")
        assert hidden.error is not None and hidden.error.type == "ContextPathError"
    other = SandboxLimits(cell_timeout_s=31)
    async with manager.open(context_dir, limits=other, tenant="t") as cold:
        assert not cold.pooled and cold.context_path == "mount"
        assert (
            await cold.run("print(read_file('hello.txt'), end='')")
        ).stdout.text == "hello from the context\n"
    assert pool.stats().unpooled == 1


# -- the orchestrator: an RLM at depth 2, the metrics -----------------------------------------------------

KEY = "sk-test-pool"


def _depth2_script(children: int) -> Any:
    def script(seen: Seen, index: int) -> Reply | str:
        if not seen.system:
            return f"echo:{seen.last_user}"
        if seen.body["messages"][1]["content"].startswith("The query: child"):
            return repl("FINAL(read_file('hello.txt').strip() + '/' + str(len(list_files())))")
        prompts = [f"child {i}" for i in range(children)]
        return repl(f"FINAL(' | '.join(rlm_query_batched({prompts!r})))")

    return script


def _settings(fake: FakeLLM, pool: PoolSettings | None, **sandbox: Any) -> Settings:
    return Settings(
        sandbox=SandboxConfig(limits=LIMITS, **sandbox),
        run=RLMConfig(root_model="root-m", sub_model="sub-m", max_depth=2),
        endpoints=(LLMEndpoint(base_url=fake.url, api_key=KEY, max_retries=0),),
        pool=pool or PoolSettings(),
    )


@pytest.mark.parametrize("with_pool", [True, False])
async def test_an_rlm_at_depth_2_with_8_batched_children(
    tmp_path: Path, context_dir: Path, with_pool: bool
) -> None:
    """A root that starts 8 child RLMs with rlm_query_batched ends the same with and without the pool;
    with it, its sandboxes come warm and their context is attached late, and the metadata says so."""
    with FakeLLM(_depth2_script(8)) as fake:
        pool = _pool(min=9, max=12) if with_pool else None
        metrics = Metrics()
        orch = Orchestrator(
            _settings(fake, pool), backend=ProcessBackend(state_dir=tmp_path / "st"), pool_listener=metrics
        )
        async with orch:
            if orch.pool is not None:
                await _filled(orch.pool, 9)
            result = await orch.run(context=context_dir, query="q", tenant="acme")
            stats = orch.pool_stats()
    assert result.status == "completed", result.trajectory.error
    assert result.answer == " | ".join(["hello from the context/2"] * 8)
    meta = result.metadata
    assert meta.sandbox_starts == 9 and len(result.trajectory.children) == 8
    if with_pool:
        assert stats is not None and stats.hits == 9
        assert meta.pooled_sandboxes == 9 and meta.context_path == "late-mount"
        assert all(c.metadata.context_path == "late-mount" for c in result.trajectory.children)
        text = metrics.render().decode()
        assert "rlm_pool_hits_total 9.0" in text and "rlm_pool_handout_seconds_count 9.0" in text
    else:
        assert stats is None and meta.pooled_sandboxes == 0 and meta.context_path == "mount"


def test_run_metadata_from_before_the_pool_still_reads() -> None:
    """A stored RunMetadata without context_path and pooled_sandboxes (written before the pool) reads
    with their defaults, and a new one round-trips."""
    from orchestrator.rlm.trajectory import RunMetadata
    from orchestrator.status import RunStatus
    from orchestrator.store.codec import metadata_from_json, metadata_to_json

    new = RunMetadata(
        RunStatus.COMPLETED,
        2,
        1,
        3,
        8,
        1.0,
        0.5,
        0.2,
        10,
        2,
        40,
        100,
        20,
        None,
        5,
        1,
        0.0,
        9,
        context_path="late-mount",
        pooled_sandboxes=9,
    )
    stored = metadata_to_json(new)
    assert metadata_from_json(stored) == new
    old = {k: v for k, v in stored.items() if k not in ("context_path", "pooled_sandboxes")}
    read = metadata_from_json(old)
    assert (read.context_path, read.pooled_sandboxes, read.sandbox_starts) == ("", 0, 9)


# -- Docker: isolation, read-only contexts, leftovers ------------------------------------------------------


def _writable_context(root: Path, name: str) -> Path:
    """A context the sandbox user owns and could write to, were it not mounted read-only."""
    (root / "dir").mkdir(parents=True)
    (root / "name.txt").write_text(name)
    (root / "dir" / "inner.txt").write_text(f"inner {name}")
    uid = SandboxConfig().sandbox_uid
    for path in (root, root / "dir"):
        os.chmod(path, 0o777)
    for path in (root / "name.txt", root / "dir" / "inner.txt"):
        os.chmod(path, 0o666)
    for path in (root, root / "dir", root / "name.txt", root / "dir" / "inner.txt"):
        os.chown(path, uid, uid)  # so that only the read-only mount stops chmod and utime
    return root


PROBE = r"""
import errno, json, os
def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
mounts = {l.split()[4]: l.split()[5] for l in open("/proc/self/mountinfo")}  # the last one wins
print(json.dumps({
    "name": open("/context/name.txt").read(),
    "inner": read_file("dir/inner.txt"),
    "listing": sorted(os.listdir("/context")),
    "slot": sorted(os.listdir("/rlm-ctx")),
    "mount_options": [mounts.get("/rlm-ctx/context"), mounts.get("/rlm-ctx")],
    "write": attempt(lambda: open("/context/name.txt", "w").write("x")),
    "append": attempt(lambda: open("/context/dir/inner.txt", "a").write("x")),
    "create": attempt(lambda: open("/context/new.txt", "w").write("x")),
    "mkdir": attempt(lambda: os.mkdir("/context/newdir")),
    "unlink": attempt(lambda: os.unlink("/context/name.txt")),
    "rename": attempt(lambda: os.rename("/context/name.txt", "/context/moved.txt")),
    "chmod": attempt(lambda: os.chmod("/context/name.txt", 0o777)),
    "utime": attempt(lambda: os.utime("/context/name.txt", (1, 1))),
    "slot_write": attempt(lambda: open("/rlm-ctx/x", "w").write("x")),
}))
"""


async def test_the_attached_context_is_read_only_and_the_right_one(
    docker_client: docker.DockerClient, runtime: str, tmp_path: Path
) -> None:
    """Two pooled sandboxes get two contexts at hand-out: each sees its own, at /context, read-only
    (every kind of write is EROFS, though the files are writable by its user), and nothing else."""
    a = _writable_context(tmp_path / "a", "alpha")
    b = _writable_context(tmp_path / "b", "beta")
    async with SandboxManager(SandboxConfig(limits=LIMITS, runtime=Runtime(runtime))) as manager:
        pool = manager.use_pool(_pool(min=2, max=2))
        await pool.start()
        await _filled(pool, 2)
        first, second = await asyncio.gather(
            manager.start_session(a, tenant="ta"), manager.start_session(b, tenant="tb")
        )
        try:
            for session, name in ((first, "alpha"), (second, "beta")):
                assert session.pooled and session.context_path == "late-mount"
                result = await session.run(PROBE)
                assert result.error is None, result.error
                seen = json.loads(result.stdout.text)
                assert seen["name"] == name and seen["inner"] == f"inner {name}"
                assert seen["listing"] == ["dir", "name.txt"] and seen["slot"] == ["context"]
                # runc lists the context's own mount, read-only; gVisor only the slot's (read-only
                # too): the host's mount beneath it is the gofer's business, and read-only as well.
                context_mount, slot_mount = seen["mount_options"]
                assert "ro" in slot_mount.split(",")
                if runtime == "runc":
                    assert "ro" in context_mount.split(",")
                assert seen.pop("slot_write") in ("EROFS", "EACCES")  # the slot: read-only, root's
                writes = {k: v for k, v in seen.items() if k not in ("name", "inner", "listing", "slot")}
                writes.pop("mount_options")
                assert writes == dict.fromkeys(writes, "EROFS"), writes
        finally:
            await asyncio.gather(first.aclose(), second.aclose())
    assert (a / "name.txt").read_text() == "alpha" and sorted(os.listdir(a)) == ["dir", "name.txt"]
    assert not (SLOTS / first.sandbox_id).exists() and not (SLOTS / second.sandbox_id).exists()


async def test_nothing_written_by_one_session_is_visible_to_the_next(
    docker_client: docker.DockerClient, runtime: str, context_dir: Path
) -> None:
    """A file in /tmp, a variable and a background process of one session are not there in the next
    pooled session: a different sandbox, started fresh, the first one's container removed."""
    async with SandboxManager(SandboxConfig(limits=LIMITS, runtime=Runtime(runtime))) as manager:
        pool = manager.use_pool(_pool(min=1, max=1))
        await pool.start()
        await _filled(pool, 1)
        async with manager.open(context_dir, tenant="first") as one:
            left = await one.run(
                "import subprocess\nopen('/tmp/left-behind', 'w').write('secret')\n"
                "secret_variable = 42\nproc = subprocess.Popen(['sleep', '600'])\nprint(proc.pid)"
            )
            assert left.error is None, left.error
            first_container = one.container_id
        async with manager.open(context_dir, tenant="second") as two:
            assert two.pooled and two.sandbox_id != one.sandbox_id
            seen = await two.run(
                "import os\n"
                "procs = [open(f'/proc/{p}/cmdline').read() for p in os.listdir('/proc') if p.isdigit()]\n"
                "print(os.path.exists('/tmp/left-behind'), 'secret_variable' in globals(),"
                " any('sleep' in c for c in procs))"
            )
            assert seen.stdout.text == "False False False\n", seen.error
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(first_container)


async def test_docker_without_late_mounts_serves_the_context_over_the_socket(
    docker_client: docker.DockerClient, runtime: str, context_dir: Path
) -> None:
    """With sandbox.mount_root empty, pooled sandboxes get their context over the socket: read_file
    works, /context shows nothing."""
    config = SandboxConfig(limits=LIMITS, runtime=Runtime(runtime), mount_root="")
    async with SandboxManager(config) as manager:
        pool = manager.use_pool(_pool(min=1, max=1))
        await pool.start()
        await _filled(pool, 1)
        async with manager.open(context_dir, tenant="t") as session:
            assert session.pooled and session.context_path == "grpc"
            seen = await session.run(
                "import os\nprint(read_file('hello.txt').strip(), os.listdir('/context'))"
            )
            assert seen.stdout.text == "hello from the context []\n", seen.error


def _containers_of(client: docker.DockerClient, owner: str) -> list[str]:
    found = client.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={owner}"})
    return [c.name for c in found]


async def test_shutdown_leaves_no_pooled_sandbox_behind(
    docker_client: docker.DockerClient, tmp_path: Path, context_dir: Path
) -> None:
    """Closing the orchestrator removes its idle pooled sandboxes, the one in use and their slots."""
    with FakeLLM(_depth2_script(1)) as fake:
        orch = Orchestrator(_settings(fake, _pool(min=3, max=3)))
        await orch.start()
        assert orch.pool is not None
        await _filled(orch.pool, 3)
        session = await orch.manager.start_session(context_dir, tenant="t")
        assert session.context_path == "late-mount"
        owner = orch.manager.owner
        ids = {m.sandbox_id for m in await orch.manager.backend.list_managed() if m.owner == owner}
        assert len(ids) >= 3
        labels = {
            c.labels[LABEL_TENANT]
            for c in docker_client.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={owner}"})
        }
        assert labels == {POOL_TENANT}
        await orch.aclose()
    assert _containers_of(docker_client, owner) == []
    assert not any((SLOTS / i).exists() for i in ids)
    with open("/proc/self/mountinfo") as fh:
        assert not any(i in fh.read() for i in ids)


OWNER_SCRIPT = """
import asyncio, json, sys
sys.path[:0] = [{repo!r}]
from orchestrator.config import SandboxConfig, SandboxLimits
from orchestrator.sandbox import SandboxManager
from orchestrator.settings import PoolSettings

async def main():
    manager = SandboxManager(SandboxConfig(limits=SandboxLimits(cell_timeout_s=30)))
    pool = manager.use_pool(PoolSettings(enabled=True, min=2, max=2, per_tenant_share=1.0))
    await pool.start()
    while pool.size() < 2:
        await asyncio.sleep(0.05)
    session = await manager.start_session({context!r}, tenant="t")
    print(json.dumps({{"owner": manager.owner, "path": session.context_path}}), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_the_reaper_removes_a_killed_owners_pooled_sandboxes(
    docker_client: docker.DockerClient, tmp_path: Path, context_dir: Path
) -> None:
    """After `kill -9` of the process that owns a pool, the next manager's reaper removes its pooled
    sandboxes (idle and attached), and the stale-slot sweep their slots and attached contexts."""
    script = tmp_path / "owner.py"
    script.write_text(OWNER_SCRIPT.format(repo=str(REPO), context=str(context_dir)))
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 120)
        told = json.loads(line)
        assert told["path"] == "late-mount"
        owner = told["owner"]
        assert len(_containers_of(docker_client, owner)) >= 2
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    ids = [
        c.labels["io.rlm.sandbox"]
        for c in docker_client.containers.list(all=True, filters={"label": f"{LABEL_OWNER}={owner}"})
    ]
    day_ago = time.time() - 86400
    for sandbox_id in ids:  # slots are swept once old: age them as a day would
        if (SLOTS / sandbox_id).exists():
            os.utime(SLOTS / sandbox_id, (day_ago, day_ago))
    async with SandboxManager():  # reaps on entry
        pass
    assert _containers_of(docker_client, owner) == []
    assert not any((SLOTS / i).exists() for i in ids)
    with open("/proc/self/mountinfo") as fh:
        mounts = fh.read()
    assert not any(f"/slots/{i}" in mounts for i in ids)


async def test_the_benchmark_reads_what_an_idle_pooled_sandbox_costs(
    docker_client: docker.DockerClient, runtime: str
) -> None:
    """`rlm bench pool` reports idle_cpu_ms_per_s from the containers' cgroups: a figure for each
    runtime the pool serves (never None on this engine), and the CPU account only grows."""
    async with SandboxManager(SandboxConfig(limits=LIMITS, runtime=Runtime(runtime))) as manager:
        pool = manager.use_pool(_pool(min=2, max=2))
        await pool.start()
        await _filled(pool, 2)
        idle = pool.idle_sandboxes()
        assert len(idle) == 2 and all(pool.holds(s) for s in idle)
        before = pool_bench.container_cpu_us(idle[0].handle)
        figure = await pool_bench.idle_cpu_ms_per_s(pool, window_s=0.2)
        assert figure is not None and figure >= 0
        assert pool_bench.container_cpu_us(idle[0].handle) >= before > 0
    with pytest.raises(FileNotFoundError):
        pool_bench.container_cpu_us("0" * 64)
