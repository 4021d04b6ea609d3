"""One conformance suite for SandboxBackend: Docker under runc, Docker under runsc, and the process fake.

Every test drives a backend through the protocol alone (plus a real HostEndpoint on the channel it
opened, as the manager does: endpoint.start, backend.start, endpoint.wait_hello) or through
SandboxManager(backend=...), and must pass on all three. The Docker cases need the docker_client fixture:
in CI they fail rather than skip when the engine is unusable.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from rlm_proto.v1 import sandbox_pb2 as pb
from rlm_proto.v1 import sandbox_pb2_grpc as pb_grpc

from orchestrator.config import DEFAULT_IMAGE, Runtime, SandboxConfig, SandboxLimits
from orchestrator.context.sources import FileSystemContext
from orchestrator.context.store import ContextStore
from orchestrator.sandbox import SandboxManager
from orchestrator.sandbox.backend import CallbackChannel, NotSupported, SandboxBackend, SandboxSpec
from orchestrator.sandbox.docker_backend import DockerBackend
from orchestrator.sandbox.host_server import HostEndpoint
from orchestrator.sandbox.ownership import OwnerId
from tests.fakes.process_backend import ProcessBackend

KINDS = ["runc", "runsc", "process"]
HELLO_S = 60.0  # generous: runsc on a loaded 2-core machine; a hello normally takes under a second
LIMITS = SandboxLimits(cell_timeout_s=30)


@dataclass
class Launched:
    spec: SandboxSpec
    channel: CallbackChannel
    endpoint: HostEndpoint | None
    handle: str

    async def hello(self) -> pb.Hello:
        assert self.endpoint is not None
        return await asyncio.wait_for(self.endpoint.wait_hello(), HELLO_S)

    async def cell(self, code: str, cell_id: int = 1) -> pb.CellResult:
        assert self.endpoint is not None
        return await asyncio.wait_for(self.endpoint.execute(cell_id, code, 1024**2), 30)


@dataclass
class Kit:
    """One backend under test, a way to make another instance over the same engine, and cleanup."""

    kind: str
    runtime: Runtime
    make: Callable[[], SandboxBackend]
    backend: SandboxBackend
    others: list[SandboxBackend] = field(default_factory=list)
    handles: list[str] = field(default_factory=list)
    channels: list[CallbackChannel] = field(default_factory=list)
    endpoints: list[HostEndpoint] = field(default_factory=list)

    def another(self) -> SandboxBackend:
        backend = self.make()
        self.others.append(backend)
        return backend

    async def channel(self) -> CallbackChannel:
        channel = await self.backend.open_channel(secrets.token_hex(6))
        self.channels.append(channel)
        return channel

    async def launch(
        self,
        *,
        owner: str | None = None,
        tenant: str = "default",
        context_dir: str | None = None,
        endpoint_token: str | None = None,
        listen: bool = True,
    ) -> Launched:
        """Open a channel, serve it (unless `listen` is false), start a sandbox that dials it."""
        channel = await self.channel()
        spec = SandboxSpec(
            sandbox_id=channel.sandbox_id,
            image=DEFAULT_IMAGE,
            runtime=self.runtime,
            limits=LIMITS,
            context_dir=context_dir,
            token=secrets.token_urlsafe(32),
            owner=owner or str(OwnerId.new()),
            tenant=tenant,
        )
        endpoint = None
        if listen:
            endpoint = HostEndpoint(
                channel.address,
                endpoint_token or spec.token,
                LIMITS.max_output_bytes,
                socket_path=channel.socket_path,
            )
            self.endpoints.append(endpoint)
            await endpoint.start(uid=channel.peer_uid)
        handle = await self.backend.start(spec, channel)
        self.handles.append(handle)
        return Launched(spec, channel, endpoint, handle)

    async def cleanup(self) -> None:
        await asyncio.gather(*(self.backend.remove(h) for h in self.handles), return_exceptions=True)
        await asyncio.gather(*(e.stop() for e in self.endpoints), return_exceptions=True)
        for channel in self.channels:
            await self.backend.close_channel(channel)
        for backend in [self.backend, *self.others]:
            await backend.aclose()


_checked: set[str] = set()


@pytest.fixture(params=KINDS)
async def kit(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Kit]:
    kind = str(request.param)
    make: Callable[[], SandboxBackend]
    socket_root: str | None = None
    if kind == "process":
        state = tmp_path / "process-state"
        runtime = Runtime.RUNC  # means nothing to the process backend
        make = lambda: ProcessBackend(state_dir=state)  # noqa: E731
    else:
        request.getfixturevalue("docker_client")  # fails in CI, skips elsewhere, when Docker is unusable
        runtime = Runtime(kind)
        # Socket directories of our own (short: a socket path has at most 108 bytes), so that other
        # processes sweeping stale channels of the shared temp dir never see the ones a test backdates.
        socket_root = tempfile.mkdtemp(prefix="rlm-conf-")
        config = SandboxConfig(socket_root=socket_root)
        make = lambda: DockerBackend.from_config(config)  # noqa: E731
    kit = Kit(kind, runtime, make, make())
    if kind not in _checked:  # the host checks once per backend kind, as a manager does per runtime
        await kit.backend.check(DEFAULT_IMAGE, runtime)
        _checked.add(kind)
    try:
        yield kit
    finally:
        await kit.cleanup()
        if socket_root is not None:
            shutil.rmtree(socket_root, ignore_errors=True)


def _channel_dir(channel: CallbackChannel) -> str:
    assert channel.socket_path is not None
    return os.path.dirname(channel.socket_path)


async def _ids(backend: SandboxBackend) -> set[str]:
    return {m.sandbox_id for m in await backend.list_managed()}


# -- the protocol, driven directly ------------------------------------------------------------------


async def test_check_and_validate_accept_this_host(kit: Kit) -> None:
    """check passes for the image and runtime the suite uses, and validate accepts the default limits."""
    await kit.backend.check(DEFAULT_IMAGE, kit.runtime)
    kit.backend.validate(kit.runtime, SandboxLimits())


async def test_started_sandbox_says_hello_and_runs_a_cell(kit: Kit) -> None:
    """A started sandbox dials its channel, says hello, and runs a cell sent down the session stream."""
    sandbox = await kit.launch()
    hello = await sandbox.hello()
    assert hello.runtime_version and hello.python_version
    result = await sandbox.cell("print(1+1)")
    assert result.stdout.text == "2\n" and not result.HasField("error")


async def test_list_managed_shows_the_sandbox_until_removed(kit: Kit) -> None:
    """list_managed names a started sandbox with its sandbox id, owner and tenant, and not once removed."""
    owner = str(OwnerId.new())
    sandbox = await kit.launch(owner=owner, tenant="tenant-a")
    found = [m for m in await kit.backend.list_managed() if m.handle == sandbox.handle]
    assert len(found) == 1
    assert (found[0].sandbox_id, found[0].owner, found[0].tenant) == (
        sandbox.spec.sandbox_id,
        owner,
        "tenant-a",
    )
    await kit.backend.remove(sandbox.handle)
    assert sandbox.spec.sandbox_id not in await _ids(kit.backend)
    assert sandbox.handle not in {m.handle for m in await kit.backend.list_managed()}


async def test_remove_is_idempotent_and_unknown_handles_are_no_error(kit: Kit) -> None:
    """Removing twice, concurrently, or a handle the backend never made raises nothing."""
    sandbox = await kit.launch()
    await asyncio.gather(kit.backend.remove(sandbox.handle), kit.backend.remove(sandbox.handle))
    await kit.backend.remove(sandbox.handle)
    await kit.backend.remove("no-such-sandbox-" + secrets.token_hex(8))
    gone = await kit.backend.wait_exit(sandbox.handle, 1.0)
    assert not gone.running
    assert await kit.backend.logs_tail(sandbox.handle) == ""


async def test_kill_then_wait_exit_reports_the_exit(kit: Kit) -> None:
    """After kill, wait_exit says the sandbox is not running and gives SIGKILL's exit code, 137."""
    sandbox = await kit.launch()
    await sandbox.hello()
    await kit.backend.kill(sandbox.handle)
    ended = await kit.backend.wait_exit(sandbox.handle, 30.0)
    assert not ended.running
    assert ended.exit_code == 137 and not ended.oom_killed
    await kit.backend.kill(sandbox.handle)  # killing what already ended is no error


async def test_wait_exit_on_a_live_sandbox_says_running(kit: Kit) -> None:
    """wait_exit with a short timeout on a live sandbox returns within about that time, saying running."""
    sandbox = await kit.launch()
    await sandbox.hello()
    started = time.monotonic()
    alive = await kit.backend.wait_exit(sandbox.handle, 0.5)
    assert alive.running and not alive.oom_killed
    assert time.monotonic() - started < 15.0
    assert (await sandbox.cell("print('still here')")).stdout.text == "still here\n"


async def test_runtime_refused_by_the_host_exits_and_logs_why(kit: Kit) -> None:
    """A runtime whose token the host's interceptor refuses exits early; logs_tail gives its last lines."""
    sandbox = await kit.launch(endpoint_token=secrets.token_urlsafe(32))  # not the sandbox's token
    ended = await kit.backend.wait_exit(sandbox.handle, HELLO_S)
    assert not ended.running and ended.exit_code is not None
    tail = await kit.backend.logs_tail(sandbox.handle, lines=5)
    assert "UNAUTHENTICATED" in tail, tail
    assert len(tail.strip().splitlines()) <= 5
    assert sandbox.endpoint is not None and not sandbox.endpoint.attached  # no session was opened


async def test_close_channel_removes_it_and_is_idempotent(kit: Kit) -> None:
    """close_channel removes what open_channel made, and closing it again is no error."""
    channel = await kit.channel()
    assert channel.address and os.path.isdir(_channel_dir(channel))
    await kit.backend.close_channel(channel)
    assert not os.path.exists(_channel_dir(channel))
    await kit.backend.close_channel(channel)


async def test_remove_stale_channels_spares_claimed_and_fresh_ones(kit: Kit) -> None:
    """remove_stale_channels removes an old unclaimed channel and keeps a claimed one and a fresh one."""
    claimed, stale, fresh = await kit.channel(), await kit.channel(), await kit.channel()
    day_ago = time.time() - 86400
    for channel in (claimed, stale):
        os.utime(_channel_dir(channel), (day_ago, day_ago))
    removed = await kit.backend.remove_stale_channels({claimed.sandbox_id})
    assert removed == 1  # the kit's channels are its own: no other process's leftovers are there
    assert os.path.isdir(_channel_dir(claimed)) and os.path.isdir(_channel_dir(fresh))
    assert not os.path.exists(_channel_dir(stale))


async def test_second_instance_lists_and_removes_the_first_ones_sandboxes(kit: Kit) -> None:
    """Another backend instance over the same engine (or state dir) lists, waits for and removes them."""
    sandbox = await kit.launch(tenant="tenant-b")
    await sandbox.hello()
    other = kit.another()
    found = {m.handle: m for m in await other.list_managed()}
    assert sandbox.handle in found
    assert (found[sandbox.handle].sandbox_id, found[sandbox.handle].tenant) == (
        sandbox.spec.sandbox_id,
        "tenant-b",
    )
    assert (await other.wait_exit(sandbox.handle, 0.2)).running
    await other.remove(sandbox.handle)
    assert not (await other.wait_exit(sandbox.handle, 5.0)).running
    assert sandbox.handle not in {m.handle for m in await kit.backend.list_managed()}


async def test_sandbox_environment_holds_nothing_of_the_hosts(
    kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A variable set in the host's environment before the start is not in the sandbox's environment."""
    marker = "RLM_CONFORMANCE_MARKER"
    value = "marker-" + secrets.token_hex(8)
    monkeypatch.setenv(marker, value)
    sandbox = await kit.launch()
    await sandbox.hello()
    seen = (await sandbox.cell("import os\nprint(repr(sorted(os.environ.items())))")).stdout.text
    assert seen.startswith("[")
    assert marker not in seen and value not in seen
    assert "RLM_TOKEN" not in seen and sandbox.spec.token not in seen  # the runtime dropped its token


# -- through the manager ----------------------------------------------------------------------------


async def test_manager_session_runs_reads_context_and_leaves_nothing(kit: Kit, context_dir: Path) -> None:
    """A session runs cells and reads context files; its teardown leaves no sandbox and no channel."""
    async with SandboxManager(SandboxConfig(), backend=kit.another()) as manager:
        async with manager.open(context_dir, runtime=kit.runtime, limits=LIMITS) as session:
            assert (await session.run("print(1+1)")).stdout.text == "2\n"
            read = await session.run("print(read_file('hello.txt'), end='')")
            assert read.stdout.text == "hello from the context\n", read.error
            csv = await session.run("print(read_file('sub/data.csv').splitlines()[1])")
            assert csv.stdout.text == "1,2\n"
            sandbox_id, channel = session.sandbox_id, session.channel
            assert sandbox_id in await _ids(kit.backend)
        assert sandbox_id not in await _ids(kit.backend)
        assert not os.path.exists(_channel_dir(channel))
        assert manager.live_sandboxes() == 0


async def test_manager_create_then_attach(kit: Kit, context_dir: Path) -> None:
    """An idle sandbox from create() is listed with its tenant; attach() gives it a run that reads files.

    Uses the manager's create/attach API (issue 8's rewrite of manager.py).
    """
    async with SandboxManager(SandboxConfig(), backend=kit.another()) as manager:
        source = FileSystemContext(context_dir)
        idle = await manager.create(
            runtime=kit.runtime, limits=LIMITS, context_dir=source.root(), tenant="tenant-c"
        )
        listed = {m.sandbox_id: m for m in await kit.backend.list_managed()}
        assert listed[idle.sandbox_id].tenant == "tenant-c"
        session = await manager.attach(idle, ContextStore(source), owns_source=True)
        async with session:
            result = await session.run("print(read_file('hello.txt'), end='')")
            assert result.stdout.text == "hello from the context\n", result.error
        assert idle.sandbox_id not in await _ids(kit.backend)
        assert not os.path.exists(_channel_dir(idle.channel))


async def test_late_context_is_attached_at_hand_out(kit: Kit, context_dir: Path) -> None:
    """A sandbox created with late_context (a warm pool's) gets its context at attach: read_file and,
    where there is a /context, the files themselves; teardown removes what attach_context made."""
    async with SandboxManager(SandboxConfig(), backend=kit.another()) as manager:
        idle = await manager.create(runtime=kit.runtime, limits=LIMITS, tenant="pool", late_context=True)
        assert idle.spec.late_context and idle.spec.context_dir is None
        session = await manager.attach(
            idle, ContextStore(FileSystemContext(context_dir)), owns_source=True, tenant="tenant-l"
        )
        async with session:
            assert session.context_path == "late-mount" and idle.tenant == "tenant-l"
            result = await session.run("print(read_file('sub/data.csv').splitlines()[1])")
            assert result.stdout.text == "1,2\n", result.error
            if kit.kind != "process":
                seen = await session.run("print(open('/context/hello.txt').read(), end='')")
                assert seen.stdout.text == "hello from the context\n", seen.error
        assert idle.sandbox_id not in await _ids(kit.backend)
        if kit.kind != "process":
            assert not os.path.exists(os.path.join("/run/rlm/slots", idle.sandbox_id))


CWD_CELL = "import os; print(sorted(os.listdir())); print(open('sub/data.csv').read().splitlines()[1])"


async def test_a_mounted_context_is_the_working_directory(kit: Kit, context_dir: Path) -> None:
    """Mounted at start or late at hand-out, the context is the cell's working directory, so the
    model's own open('relative/path') reads a context file (a small model's habit)."""
    async with SandboxManager(SandboxConfig(), backend=kit.another()) as manager:
        idle = await manager.create(runtime=kit.runtime, limits=LIMITS, late_context=True)
        late = await manager.attach(idle, ContextStore(FileSystemContext(context_dir)), owns_source=True)
        async with manager.open(context_dir, runtime=kit.runtime, limits=LIMITS) as cold, late:
            assert (cold.context_path, late.context_path) == ("mount", "late-mount")
            for session in (cold, late):
                result = await session.run(CWD_CELL)
                assert result.stdout.text == "['hello.txt', 'sub']\n1,2\n", result.error


async def test_a_context_served_over_the_socket_is_not_the_working_directory(
    kit: Kit, context_dir: Path
) -> None:
    """A narrowed context is not mounted (its other files must stay out of reach): the working
    directory stays where it was, and relative open() finds no context file."""
    async with SandboxManager(SandboxConfig(), backend=kit.another()) as manager:
        async with manager.open(
            context_dir, include=["hello.txt"], runtime=kit.runtime, limits=LIMITS
        ) as session:
            assert session.context_path == "grpc"
            result = await session.run(CWD_CELL)
            assert result.error is not None and result.error.type == "FileNotFoundError", result
            assert "hello.txt" not in result.stdout.text


OPENS_CELL = """
import csv, os, pathlib, tempfile
open('hello.txt').read()
list(csv.reader(open('sub/data.csv')))
pathlib.Path('sub/data.csv').read_text()
os.listdir('.')
with tempfile.NamedTemporaryFile('w') as mine:
    mine.write('x')
open(os.__file__).read()
"""


async def test_the_runtime_counts_the_context_files_a_cell_opens(kit: Kit, context_dir: Path) -> None:
    """Whatever opens them (open(), csv, pathlib), the context's files a cell opens for reading are
    counted and reported with its result; listing a directory, writing a temp file and reading a file
    outside the context are not. A cell that opens nothing reports 0."""
    async with SandboxManager(SandboxConfig(), backend=kit.another()) as manager:
        async with manager.open(context_dir, runtime=kit.runtime, limits=LIMITS) as session:
            assert session.files_opened == 0
            result = await session.run(OPENS_CELL)
            assert result.ok, result.error
            assert session.files_opened == 3
            again = await session.run("x = sorted(os.listdir('sub'))")
            assert again.ok and session.files_opened == 3
            read = await session.run("read_file('hello.txt')")
            assert read.ok and session.files_opened == 4  # read_file's own read through the mount


WAKES_CELL = (
    "import os\n"
    "status = open(f'/proc/self/task/{os.getpid()}/status').read()\n"
    "print(status.split('voluntary_ctxt_switches:')[1].split()[0])"
)


@pytest.mark.parametrize("kit", ["runc", "process"], indirect=True)  # gVisor's /proc has no such counter
async def test_an_idle_runtime_sleeps_until_a_message_comes(kit: Kit, context_dir: Path) -> None:
    """Between cells the runtime's main thread sleeps until the host sends something: grpc's blocking
    waits woke it every 0.1 s, ten times a second in every idle pooled sandbox."""
    async with SandboxManager(SandboxConfig(), backend=kit.another()) as manager:
        async with manager.open(context_dir, runtime=kit.runtime, limits=LIMITS) as session:
            first = await session.run(WAKES_CELL)
            await asyncio.sleep(1.0)  # the window watched, not a wait for anything
            second = await session.run(WAKES_CELL)
            assert first.ok and second.ok, (first.error, second.error)
            woken = int(second.stdout.text) - int(first.stdout.text)
            assert woken < 5, f"the idle runtime's main thread woke {woken} times in 1 s"


async def test_attach_context_needs_a_late_context_sandbox(kit: Kit, context_dir: Path) -> None:
    """attach_context on a sandbox started without late_context raises NotSupported (the manager then
    serves the context over the socket), and leaves the sandbox running."""
    sandbox = await kit.launch()
    await sandbox.hello()
    with pytest.raises(NotSupported):
        await kit.backend.attach_context(sandbox.handle, str(context_dir))
    assert (await sandbox.cell("print('still here')")).stdout.text == "still here\n"


async def test_the_creation_token_stops_working_at_attach(kit: Kit, context_dir: Path) -> None:
    """attach binds a fresh token: the runtime uses it from the configure message on, and a call with
    the token the sandbox was created with is refused."""
    async with SandboxManager(SandboxConfig(), backend=kit.another()) as manager:
        idle = await manager.create(runtime=kit.runtime, limits=LIMITS, tenant="pool", late_context=True)
        session = await manager.attach(idle, ContextStore(FileSystemContext(context_dir)), owns_source=True)
        async with session:
            listed = await session.run("print(list_files())")  # over the socket, whatever the mount
            assert listed.stdout.text == "['hello.txt', 'sub/data.csv']\n", listed.error
            async with grpc.aio.insecure_channel(idle.channel.address) as channel:
                stub = pb_grpc.SandboxHostStub(channel)
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.Stats(pb.StatsRequest(), metadata=(("x-rlm-token", idle.spec.token),))
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_reaper_removes_dead_owners_sandboxes_only(kit: Kit) -> None:
    """manager.reap() removes a sandbox whose owner is a dead process on this host, not a live owner's."""
    dead = f"{socket.gethostname()}/{2**22 + 7}/1/dead"  # above any pid_max: never a live process
    orphan = await kit.launch(owner=dead, listen=False)
    alive = await kit.launch(owner=str(OwnerId.new()), listen=False)  # this live process, another manager
    reaper = SandboxManager(SandboxConfig(), backend=kit.another())
    try:
        # No count: on a shared engine another process's reaper may remove the orphan first, or more.
        await reaper.reap()
    finally:
        await reaper.aclose()
    handles = {m.handle for m in await kit.backend.list_managed()}
    assert orphan.handle not in handles
    assert alive.handle in handles
    assert (await kit.backend.wait_exit(alive.handle, 0.2)).running


# -- the runtime's context root (what lets the process backend read files without a /context mount) --


def test_runtime_reads_the_context_from_the_root_it_is_given(tmp_path: Path) -> None:
    """HostAPI reads a mounted context from its context root (RLM_CONTEXT_ROOT), /context by default."""
    from rlm_sandbox import context_api
    from rlm_sandbox.host_api import HostAPI

    class Stub:
        def ListFiles(self, request: pb.ListFilesRequest, metadata: object) -> pb.FileList:
            return pb.FileList(paths=["notes/a.txt"])

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("from the root\n")
    api = HostAPI(Stub(), (), str(tmp_path))  # type: ignore[arg-type]
    descriptor = pb.ContextDescriptor(kind="filesystem", mounted=True, max_file_bytes=1024)
    api.configure(descriptor)
    api.start_cell(1024)
    assert api.read_file("notes/a.txt") == "from the root\n"
    assert api.reads() == (len("from the root\n"), 1)
    assert HostAPI(Stub(), ())._context_root == context_api.MOUNT == "/context"  # type: ignore[arg-type]
