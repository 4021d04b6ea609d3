"""`rlm serve`: the public gRPC API over real sockets (port 0), with real keys and real quotas.

Logic runs on the process backend (the real runtime as a local process) and the in-process scripted
model, with the server's clock a FakeClock (idle sessions expire when the test moves it); what is about
isolation or processes runs for real: Docker sandboxes (options reach the container, a client's
deadline removes it), and `rlm serve` as a subprocess (SIGTERM drains; after kill -9 a restart marks
the run failed and reaps its container).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from rlm_proto.v1 import service_pb2 as pb
from rlm_proto.v1 import service_pb2_grpc as pb_grpc

from orchestrator.client import OutputChunk, RLMClient, RunAccepted
from orchestrator.config import RLMConfig, Runtime, SandboxConfig, SandboxLimits
from orchestrator.errors import (
    InvalidInputError,
    NotFoundError,
    QuotaError,
    RLMError,
    SandboxClosedError,
)
from orchestrator.rlm.events import (
    CellFinished,
    CodeStarted,
    IterationStarted,
    ModelText,
    ModelTextReset,
    SubCallFinished,
    SubCallStarted,
)
from orchestrator.rlm.result import RLMResult
from orchestrator.rlm.trajectory import Trajectory
from orchestrator.sandbox.backend import LABEL_MANAGED, LABEL_OWNER
from orchestrator.server import convert
from orchestrator.server.app import RECOVER_REASON, RLMServer
from orchestrator.server.tenants import Tenant, TenantQuotas, key_digest, new_api_key
from orchestrator.settings import ServerSettings, Settings, StorageSettings
from orchestrator.status import CellStatus, RunStatus

from .fake_llm import FakeLLM, Reply, Seen, repl
from .fakes.clock import FakeClock
from .fakes.llm import ScriptedProvider
from .fakes.process_backend import ProcessBackend

REPO = Path(__file__).resolve().parent.parent
RLM = [sys.executable, "-m", "orchestrator.cli"]
METHODS = pb.DESCRIPTOR.services_by_name["RLMService"].methods


# ---- the harness: a server on the fakes, clients per tenant ----------------------------------------------


@dataclass
class Harness:
    server: RLMServer
    keys: dict[str, str]
    backend: ProcessBackend
    clock: FakeClock
    provider: ScriptedProvider
    script: list[Callable[[Seen, int], Any]] = field(default_factory=list)
    clients: list[RLMClient] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def client(self, tenant: str = "alice") -> RLMClient:
        client = RLMClient(self.address, self.keys[tenant])
        self.clients.append(client)
        return client

    def stub(self) -> tuple[aio.Channel, pb_grpc.RLMServiceStub]:
        channel = aio.insecure_channel(self.address)
        return channel, pb_grpc.RLMServiceStub(channel)

    def replies(self, *replies: str | Reply) -> None:
        """The root model's replies in order; a sub-call (no system prompt) echoes its prompt."""
        it = iter(replies)

        def script(seen: Seen, index: int) -> Any:
            if not seen.system:
                return f"echo:{seen.last_user}"
            return next(it)

        self.script[:] = [script]


def _settings(
    tmp_path: Path, quotas: dict[str, TenantQuotas], keys: dict[str, str], **server: Any
) -> Settings:
    tenants = tuple(Tenant(name, (key_digest(keys[name]),), q) for name, q in quotas.items())
    return Settings(
        sandbox=SandboxConfig(limits=SandboxLimits(memory_bytes=512 * 1024**2, cell_timeout_s=60)),
        run=RLMConfig(root_model="root-m", sub_model="sub-m", max_iterations=5),
        storage=StorageSettings(data_dir=str(tmp_path / "data")),
        server=ServerSettings(**server),
        tenants=tenants,
    )


@pytest.fixture
def quotas() -> dict[str, TenantQuotas]:
    """The tenants and their quotas; a test overrides it to tighten one."""
    return {
        "alice": TenantQuotas(calls_per_s=1000, burst=1000),
        "bob": TenantQuotas(calls_per_s=1000, burst=1000),
    }


@pytest.fixture
async def harness(tmp_path: Path, quotas: dict[str, TenantQuotas]) -> AsyncIterator[Harness]:
    keys = {name: new_api_key() for name in quotas}
    backend = ProcessBackend(state_dir=tmp_path / "state")
    clock = FakeClock()
    script: list[Callable[[Seen, int], Any]] = [lambda seen, index: "FINAL(nothing scripted)"]
    provider = ScriptedProvider(lambda seen, index: script[0](seen, index))
    server = RLMServer(
        _settings(tmp_path, quotas, keys),
        listen="127.0.0.1:0",
        backend=backend,
        provider=provider,
        clock=clock,
    )
    await server.start()
    h = Harness(server, keys, backend, clock, provider, script)
    try:
        yield h
    finally:
        for client in h.clients:
            await client.close()
        await server.stop(grace_s=1)
        assert await ProcessBackend(state_dir=tmp_path / "state").list_managed() == []


def _tar(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


async def _until(condition: Callable[[], Any], what: str, timeout_s: float = 30.0) -> None:
    """Wait for a condition the test cannot be told about (a process's state), bounded."""
    deadline = time.monotonic() + timeout_s
    while not await _maybe(condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def _maybe(value: Any) -> Any:
    return await value if asyncio.iscoroutine(value) else value


# ---- authentication --------------------------------------------------------------------------------------


def _minimal(method: Any) -> Any:
    request = getattr(pb, method.input_type.name)()
    if method.client_streaming:

        async def requests() -> AsyncIterator[Any]:
            yield pb.UploadContextRequest(header=pb.UploadHeader(name="x"))

        return requests()
    return request


async def _call(stub: Any, method: Any, metadata: tuple[tuple[str, str], ...]) -> grpc.StatusCode:
    call = getattr(stub, method.name)(_minimal(method), metadata=metadata, timeout=10)
    try:
        if method.server_streaming:
            async for _ in call:
                pass
        else:
            await call
    except aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_every_rpc_refuses_a_missing_and_a_wrong_key(harness: Harness) -> None:
    """Each RPC of RLMService (read from the proto, so a new one is covered) is UNAUTHENTICATED without a
    key, with a key no tenant holds, and with another scheme."""
    channel, stub = harness.stub()
    wrong = new_api_key()
    async with channel:
        for method in METHODS:
            for metadata in ((), (("authorization", f"Bearer {wrong}"),), (("authorization", wrong),)):
                code = await _call(stub, method, metadata)
                assert code is grpc.StatusCode.UNAUTHENTICATED, (method.name, metadata, code)


async def test_health_and_reflection_need_no_key(harness: Harness) -> None:
    channel = aio.insecure_channel(harness.address)
    async with channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "rlm.v1.RLMService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def ask() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        async for reply in reflect.ServerReflectionInfo(ask(), timeout=10):
            names = {s.name for s in reply.list_services_response.service}
            assert {"rlm.v1.RLMService", "grpc.health.v1.Health"} <= names


async def test_a_reflection_client_needs_no_proto(harness: Harness) -> None:
    """examples/reflection_call.py (the README's grpcurl stand-in) calls Execute from JSON."""
    request = json.dumps({"context": {"text": "hello"}, "code": "print(len(context))"})
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(REPO / "examples" / "reflection_call.py"), harness.address,
         "rlm.v1.RLMService/Execute", request, "--key", harness.keys["alice"]],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["result"]["stdout"]["text"] == "5\n" and reply["result"]["status"] == "CELL_STATUS_OK"


def test_statuses_mirror_the_orchestrators() -> None:
    """Every RunStatus and CellStatus has its wire value of the same name, and back."""
    for status in RunStatus:
        assert convert.RUN_STATUS_BACK[convert.RUN_STATUS[status]] is status
    for cell in CellStatus:
        assert convert.CELL_STATUS_BACK[convert.CELL_STATUS[cell]] is cell
    assert len(pb.RunStatus.items()) == len(RunStatus) + 1  # and UNSPECIFIED
    assert len(pb.CellStatus.items()) == len(CellStatus) + 1


# ---- cells ----------------------------------------------------------------------------------------------


async def test_execute_runs_code_over_an_inline_context(harness: Harness) -> None:
    client = harness.client()
    result = await client.execute("print(len(context)); FINAL(context[1])", context=["a", "bb"])
    assert result.status is CellStatus.OK and result.stdout.text == "2\n" and result.final == "bb"
    result = await client.execute("print(sorted(context))", context={"x.txt": "1", "y.txt": "2"})
    assert result.stdout.text == "['x.txt', 'y.txt']\n"
    failed = await client.execute("1/0", context="text")
    assert failed.status is CellStatus.ERROR and failed.error is not None
    assert failed.error.type == "ZeroDivisionError"
    with pytest.raises(InvalidInputError):
        await client.execute("x = '\x00'", context="text")
    channel, stub = harness.stub()
    async with channel:
        with pytest.raises(aio.AioRpcError) as caught:
            await stub.Execute(pb.ExecuteRequest(code="1"), metadata=_auth(harness), timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "context is required" in (caught.value.details() or "")


def _auth(harness: Harness, tenant: str = "alice") -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {harness.keys[tenant]}"),)


async def test_execute_stream_sends_output_while_the_cell_runs(harness: Harness, tmp_path: Path) -> None:
    """The first chunk arrives while the cell is still waiting on a file only the test creates."""
    release = tmp_path / "release"
    code = (
        "import os, sys, time\n"
        "print('ready', flush=True)\n"
        f"while not os.path.exists({str(release)!r}): time.sleep(0.01)\n"
        "print('done'); print('warn', file=sys.stderr)\n"
    )
    stream = harness.client().execute_stream(code, context="text")
    first = await anext(stream)
    assert first == OutputChunk("stdout", "ready\n")
    assert not release.exists()  # the cell is still waiting: the chunk came before its end
    release.touch()
    rest = [event async for event in stream]
    chunks, result = rest[:-1], rest[-1]
    assert "".join(c.text for c in chunks if isinstance(c, OutputChunk) and c.stream == "stdout") == "done\n"
    assert [c.text for c in chunks if isinstance(c, OutputChunk) and c.stream == "stderr"] == ["warn\n"]
    assert not isinstance(result, OutputChunk)
    assert result.status is CellStatus.OK and result.stdout.text == "ready\ndone\n"


async def test_streamed_output_is_bounded_by_the_output_cap(harness: Harness) -> None:
    events = [
        e
        async for e in harness.client().execute_stream(
            "print('x' * 50000)", context="t", sandbox={"max_output_bytes": 1000}
        )
    ]
    streamed = sum(len(e.text) for e in events if isinstance(e, OutputChunk))
    result = events[-1]
    assert streamed == 1000
    assert not isinstance(result, OutputChunk) and result.stdout.truncated
    assert result.stdout.total_bytes == 50001


async def test_sandbox_options_are_bounded_by_the_operator_and_the_tenant(harness: Harness) -> None:
    client = harness.client()
    with pytest.raises(InvalidInputError, match="above this operator's limit"):
        await client.execute("1", context="t", sandbox={"pids": 100000})
    with pytest.raises(InvalidInputError, match="above this operator's limit"):
        await client.execute("1", context="t", sandbox={"timeout": 120})
    with pytest.raises(QuotaError) as refused:
        await client.execute("1", context="t", sandbox={"cpus": 8})
    assert refused.value.quota == "max_cpus" and "quota max_cpus:" in refused.value.message
    with pytest.raises(InvalidInputError):
        await client.execute("1", context="t", sandbox={"runtime": "kata"})
    # What would weaken the sandbox cannot be expressed at all: the request has no such field.
    assert set(pb.SandboxOptions.DESCRIPTOR.fields_by_name) == {
        "memory", "cpus", "pids", "nofile", "tmpfs", "file_size", "timeout", "max_output_bytes", "runtime"
    }  # fmt: skip
    with pytest.raises(InvalidInputError, match="bad sandbox options"):
        await client.execute("1", context="t", sandbox={"privileged": True})
    ok = await client.execute("1", context="t", sandbox={"memory": "256m", "timeout": 30, "cpus": 0.5})
    assert ok.status is CellStatus.OK


def test_the_runtime_relays_what_it_keeps_in_order_within_the_cap() -> None:
    """The sandbox side of streamed output (no host): pieces in order, whole characters, adding up to
    exactly what the cell kept, never past the cap; nothing after run() returns."""
    from rlm_sandbox.repl import Repl

    pieces: list[tuple[str, str]] = []
    repl_ = Repl()
    code = "import sys\nprint('a' * 9000)\nprint('é' * 3000, file=sys.stderr)\nprint('b' * 9000)"
    outcome = repl_.run(code, 12_001, lambda stream, text: pieces.append((stream, text)))
    stdout = "".join(text for stream, text in pieces if stream == "stdout")
    stderr = "".join(text for stream, text in pieces if stream == "stderr")
    assert stdout == outcome.stdout.text() and len(stdout.encode()) <= 12_001 and outcome.stdout.truncated
    assert stderr == outcome.stderr.text() == "é" * 3000 + "\n"
    assert len([s for s, _ in pieces if s == "stdout"]) >= 2  # sent as the buffer filled, not at the end
    count = len(pieces)
    repl_.run("print('later')", 100)  # without a listener: nothing more is relayed
    assert len(pieces) == count


# ---- sessions -------------------------------------------------------------------------------------------


async def test_a_session_keeps_its_variables_and_expires_when_idle(harness: Harness) -> None:
    client = harness.client()
    sid = await client.open_session(context="text")
    await client.run_cell(sid, "x = 41")
    assert (await client.run_cell(sid, "print(x + 1)")).stdout.text == "42\n"
    sessions = harness.server.sessions
    assert sessions is not None
    harness.clock.advance(sessions.idle_s - 1)
    assert await sessions.expire_idle() == []
    assert (await client.run_cell(sid, "x")).stdout.text == "41\n"  # used again: idle from now
    harness.clock.advance(sessions.idle_s - 1)
    assert await sessions.expire_idle() == []
    harness.clock.advance(1)
    assert await sessions.expire_idle() == [sid]
    assert await harness.backend.list_managed() == []  # its sandbox is gone
    with pytest.raises(SandboxClosedError, match="idle"):
        await client.run_cell(sid, "x")


async def test_a_session_as_a_context_manager_and_a_cell_that_kills_it(harness: Harness) -> None:
    client = harness.client()
    async with client.session(context=["a"]) as session:
        assert (await session.run("print(context)")).stdout.text == "['a']\n"
        sid = session.session_id
    with pytest.raises(SandboxClosedError):
        await client.run_cell(sid, "1")
    sid = await client.open_session(context="t")
    died = await client.run_cell(sid, "import os; os._exit(3)")
    assert died.status is CellStatus.KILLED
    with pytest.raises(SandboxClosedError):
        await client.run_cell(sid, "1")
    assert await harness.backend.list_managed() == []


# ---- tenants apart --------------------------------------------------------------------------------------


async def test_a_tenant_cannot_see_use_or_cancel_anothers_things(harness: Harness, tmp_path: Path) -> None:
    alice, bob = harness.client("alice"), harness.client("bob")
    harness.replies("FINAL('done')")
    run = await alice.run("q", context="t")
    sid = await alice.open_session(context="t")
    ctx = await alice.upload_context(_tar({"a.txt": "alice's"}), name="mine")
    missing = "0" * 32

    async def refused(call: Any, the_id: str) -> str:
        with pytest.raises(NotFoundError) as caught:
            await call
        return caught.value.message.replace(the_id, "<id>")

    pairs = [
        (lambda i: bob.get_run(i), run.run_id),
        (lambda i: bob.cancel_run(i), run.run_id),
        (lambda i: bob.run_cell(i, "1"), sid),
        (lambda i: bob.close_session(i), sid),
        (lambda i: bob.delete_context(i), ctx.context_id),
        (lambda i: bob.execute("1", context_id=i), ctx.context_id),
        (lambda i: bob.open_session(context_id=i), ctx.context_id),
        (lambda i: bob.run("q", context_id=i), ctx.context_id),
    ]
    for call, the_id in pairs:
        theirs = await refused(call(the_id), the_id)
        nothing = await refused(call(missing), missing)
        assert theirs == nothing  # another tenant's and a missing one read the same
    assert (await bob.list_runs()).runs == ()
    assert await bob.list_contexts() == ()
    # Alice still has all of hers.
    assert (await alice.get_run(run.run_id)).status is RunStatus.COMPLETED
    assert (await alice.run_cell(sid, "print(1)")).stdout.text == "1\n"
    assert [c.context_id for c in await alice.list_contexts()] == [ctx.context_id]
    found = await alice.execute("print(read_file('a.txt'))", context_id=ctx.context_id)
    assert found.stdout.text == "alice's\n"
    await alice.delete_context(ctx.context_id)
    assert await alice.list_contexts() == ()


# ---- quotas ---------------------------------------------------------------------------------------------

TIGHT = TenantQuotas(
    max_sandboxes=1,
    max_memory_bytes=256 * 1024**2,
    max_cpus=1.0,
    max_run_s=60,
    tokens_per_day=300,
    context_bytes=1000,
    runtimes=(Runtime.RUNC,),
    models=("root-m", "sub-m"),
    calls_per_s=1000,
    burst=1000,
)


@pytest.mark.parametrize(
    "quotas", [{"alice": TIGHT, "bob": TenantQuotas(calls_per_s=1000, burst=1000)}], ids=["tight"]
)
async def test_each_quota_is_enforced_and_named(harness: Harness) -> None:
    client = harness.client()

    async def quota_of(call: Any) -> str:
        with pytest.raises(QuotaError) as caught:
            await call
        assert caught.value.message.startswith(f"quota {caught.value.quota}:")
        return caught.value.quota

    assert await quota_of(client.execute("1", context="t", sandbox={"memory": "300m"})) == "max_memory_bytes"
    assert await quota_of(client.execute("1", context="t", sandbox={"cpus": 1.5})) == "max_cpus"
    assert await quota_of(client.execute("1", context="t", sandbox={"runtime": "runsc"})) == "runtimes"
    assert await quota_of(client.run("q", context="t", options={"root_model": "big-m"})) == "models"
    assert await quota_of(client.run("q", context="t", options={"deadline_s": 120.0})) == "max_run_s"
    sid = await client.open_session(context="t")
    assert await quota_of(client.open_session(context="t")) == "max_sandboxes"
    assert await quota_of(client.execute("1", context="t")) == "max_sandboxes"
    await client.close_session(sid)
    assert await quota_of(client.upload_context(_tar({"big.txt": "x" * 2000}))) == "context_bytes"
    # Tokens: the llm_query's reply spends the day's 300; the next is refused in the sandbox (the code
    # gets an "Error: ..." string), the run ends at its next reply naming the quota, the next run is
    # refused.
    code = "for _ in range(2):\n    print(llm_query('hello ' * 200)[:6])"
    harness.replies(repl(code), "FINAL(never)")
    first = await client.run("q", context="t")
    assert first.status is RunStatus.ERROR and "tokens_per_day" in (first.trajectory.error or "")
    assert first.answer is None
    assert first.trajectory.iterations[0].cells[0].stdout == "Error:\nError:\n"
    assert await quota_of(client.run("q", context="t")) == "tokens_per_day"
    # Bob, another tenant, is not held to alice's quotas.
    harness.replies("FINAL('fine')")
    assert (await harness.client("bob").run("q", context="t")).answer == "fine"


async def test_every_model_call_of_a_run_is_charged_to_its_tenant(harness: Harness) -> None:
    """The root's replies and each llm_query count against tokens_per_day, once each."""
    harness.replies(repl("print(llm_query('ping'))"), repl("FINAL('ok')"))
    run = await harness.client().run("q", context="t")
    assert run.status is RunStatus.COMPLETED and run.metadata.subcall_count == 1
    store, policy = harness.server.store, harness.server.servicer
    assert store is not None and policy is not None
    used = await store.tokens_today("alice")
    assert used == run.metadata.prompt_tokens + run.metadata.completion_tokens > 0
    assert await store.tokens_today("bob") == 0
    assert b'rlm_runs_total{status="completed"} 1.0' in harness.server.metrics.render()


async def test_the_blocking_client(harness: Harness) -> None:
    from orchestrator.client import SyncRLMClient

    def use() -> tuple[str, int]:
        with SyncRLMClient(harness.address, harness.keys["alice"]) as client:
            out = client.execute("print(6 * 7)", context="t").stdout.text
            return out, len(client.execute_stream("print(1)", context="t"))

    assert await asyncio.to_thread(use) == ("42\n", 2)


@pytest.mark.parametrize("quotas", [{"alice": TenantQuotas(calls_per_s=0.01, burst=2)}], ids=["slow"])
async def test_the_call_rate_is_a_quota_too(harness: Harness) -> None:
    client = harness.client()
    await client.list_contexts()
    await client.list_contexts()
    with pytest.raises(QuotaError) as caught:
        await client.list_contexts()
    assert caught.value.quota == "calls_per_s"


# ---- runs -----------------------------------------------------------------------------------------------


async def test_run_stream_carries_the_engines_events_then_the_result(harness: Harness) -> None:
    reply = repl("r = llm_query('ping')\nprint(r)", "Let me ask.")
    replies = iter([Reply("Other words, cut short", cut_after_chars=5), reply, repl("FINAL(r)")])
    harness.script[:] = [lambda seen, i: next(replies) if seen.system else f"echo:{seen.last_user}"]
    events = [e async for e in harness.client().run_stream("what?", context="t")]
    assert isinstance(events[0], RunAccepted) and len(events[0].run_id) == 16
    result = events[-1]
    assert isinstance(result, RLMResult)
    assert result.run_id == events[0].run_id
    assert result.status is RunStatus.COMPLETED and result.answer == "echo:ping"
    kinds = [type(e) for e in events[1:-1]]
    for kind in (IterationStarted, ModelText, ModelTextReset, CodeStarted, SubCallStarted, SubCallFinished):
        assert kind in kinds, kind
    assert kinds.index(SubCallStarted) < kinds.index(SubCallFinished) < kinds.index(CellFinished)
    cell = next(e for e in events if isinstance(e, CellFinished))
    assert cell.cell.stdout == "echo:ping\n" and cell.cell.status is CellStatus.OK
    assert result.trajectory.metadata.subcall_count == 1
    assert result.trajectory.iterations[0].cells[0].code.strip() == "r = llm_query('ping')\nprint(r)"


async def test_get_run_and_list_runs_pages_filters_and_trajectory(harness: Harness) -> None:
    client = harness.client()
    ids = []
    for i in range(3):
        harness.replies(f"FINAL(answer {i})")
        ids.append((await client.run(f"query {i}", context="t")).run_id)
    info = await client.get_run(ids[0], trajectory=True)
    assert info.status is RunStatus.COMPLETED and info.answer == "answer 0" and info.query == "query 0"
    assert info.metadata is not None and info.metadata.iterations == 1
    assert info.trajectory is not None and info.trajectory.answer == "answer 0"
    assert (await client.get_run(ids[0])).trajectory is None
    first = await client.list_runs(page_size=2)
    assert [r.run_id for r in first.runs] == ids[::-1][:2] and first.next_page_token
    second = await client.list_runs(page_size=2, page_token=first.next_page_token)
    assert [r.run_id for r in second.runs] == [ids[0]] and second.next_page_token == ""
    assert len((await client.list_runs(statuses=["completed"])).runs) == 3
    assert (await client.list_runs(statuses=[RunStatus.CANCELLED])).runs == ()
    assert (await client.list_runs(created_after=time.time() + 60)).runs == ()
    assert len((await client.list_runs(created_before=time.time() + 60)).runs) == 3
    with pytest.raises(InvalidInputError):
        await client.list_runs(page_size=2, page_token="not-a-token")
    with pytest.raises(InvalidInputError):
        await client.list_runs(page_size=501)


async def test_cancel_run_stops_it_and_removes_its_sandbox(harness: Harness, tmp_path: Path) -> None:
    never = tmp_path / "never"
    harness.replies(repl(f"import os, time\nwhile not os.path.exists({str(never)!r}): time.sleep(0.01)"))
    alice = harness.client()
    stream = alice.run_stream("q", context="t")
    accepted = await anext(stream)
    assert isinstance(accepted, RunAccepted)
    async for event in stream:
        if isinstance(event, CodeStarted):
            break
    assert len(await harness.backend.list_managed()) == 1
    with pytest.raises(NotFoundError):
        await harness.client("bob").cancel_run(accepted.run_id)
    assert await alice.cancel_run(accepted.run_id) is RunStatus.CANCELLED
    assert await harness.backend.list_managed() == []
    rest = [e async for e in stream]
    assert isinstance(rest[-1], RLMResult) and rest[-1].status is RunStatus.CANCELLED
    info = await alice.get_run(accepted.run_id, trajectory=True)
    assert info.status is RunStatus.CANCELLED and info.trajectory is not None
    assert info.trajectory.status is RunStatus.CANCELLED
    assert await alice.cancel_run(accepted.run_id) is RunStatus.CANCELLED  # again: its status


async def test_a_client_deadline_stops_the_run(harness: Harness, tmp_path: Path) -> None:
    never = tmp_path / "never"
    harness.replies(repl(f"import os, time\nwhile not os.path.exists({str(never)!r}): time.sleep(0.01)"))
    alice = harness.client()
    with pytest.raises(RLMError) as caught:
        await alice.run("q", context="t", deadline=3)
    assert caught.value.grpc_code == "DEADLINE_EXCEEDED"  # type: ignore[attr-defined]
    servicer = harness.server.servicer
    assert servicer is not None
    await _until(lambda: servicer.active_runs == 0, "the run to end")
    assert await harness.backend.list_managed() == []
    (run,) = (await alice.list_runs()).runs
    assert run.status is RunStatus.CANCELLED


async def test_continuing_asks_for_an_inline_context(harness: Harness) -> None:
    """A continued run cannot bring a stored context (no mount into a running sandbox): bad input."""
    harness.replies(repl("FINAL('kept')"))
    client = harness.client()
    kept = await client.run("start", context="t", keep_sandbox=True)
    ctx = await client.upload_context(_tar({"a.txt": "a"}))
    with pytest.raises(InvalidInputError, match="inline"):
        await client.run("more", context_id=ctx.context_id, continue_run_id=kept.run_id)


async def test_uploaded_contexts_are_listed_used_and_deleted(harness: Harness, tmp_path: Path) -> None:
    client = harness.client()
    directory = tmp_path / "docs"
    (directory / "sub").mkdir(parents=True)
    (directory / "sub" / "b.md").write_text("bee\n")
    (directory / "a.txt").write_text("hello\n")
    ctx = await client.upload_context(directory)
    assert (ctx.name, ctx.kind, ctx.file_count, ctx.total_bytes) == ("docs", "upload", 2, 10)
    result = await client.execute("print(sorted(list_files()))", context_id=ctx.context_id)
    assert result.stdout.text == "['a.txt', 'sub/b.md']\n"
    with pytest.raises(InvalidInputError):  # not a tar archive
        await client.upload_context(b"this is not a tar archive" * 100)
    assert [c.context_id for c in await client.list_contexts()] == [ctx.context_id]
    await client.delete_context(ctx.context_id)
    with pytest.raises(NotFoundError):
        await client.execute("1", context_id=ctx.context_id)


# ---- real Docker -----------------------------------------------------------------------------------------


def _containers(client: docker.DockerClient, owner_part: str) -> list[str]:
    """Ids of the sandbox containers whose owner label holds `owner_part`: one listing call, so a
    container removed meanwhile cannot make it fail (the SDK's list inspects each one after)."""
    listed = client.api.containers(all=True, filters={"label": f"{LABEL_MANAGED}=1"})
    return [c["Id"] for c in listed if owner_part in (c.get("Labels") or {}).get(LABEL_OWNER, "")]


@pytest.mark.docker
async def test_on_docker_options_reach_the_container_and_a_deadline_removes_it(
    docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    keys = {"alice": new_api_key()}
    quotas = {"alice": TenantQuotas(calls_per_s=1000, burst=1000)}
    server = RLMServer(_settings(tmp_path, quotas, keys), listen="127.0.0.1:0")
    await server.start()
    assert server.orchestrator is not None
    owner = server.orchestrator.manager.owner
    try:
        async with RLMClient(f"127.0.0.1:{server.port}", keys["alice"]) as client:
            bomb = "x = bytearray(200 * 1024**2); x[::4096] = b'1' * len(x[::4096]); print('alive')"
            assert (await client.execute(bomb, context="t")).stdout.text == "alive\n"  # 512m: fine
            small = await client.execute(bomb, context="t", sandbox={"memory": "64m", "runtime": "runc"})
            assert small.status is CellStatus.OOM  # the request's limit is the container's
            with pytest.raises(RLMError) as caught:
                await client.execute("import time; time.sleep(600)", context="t", deadline=5)
            assert caught.value.grpc_code == "DEADLINE_EXCEEDED"  # type: ignore[attr-defined]
            await _until(lambda: not _containers(docker_client, owner), "the container to be removed")
    finally:
        await server.stop(grace_s=1)
    assert not _containers(docker_client, owner)


# ---- `rlm serve` as a process ------------------------------------------------------------------------------


@dataclass
class Served:
    process: subprocess.Popen[str]
    port: int
    log: Path


def _config(tmp_path: Path, key: str, llm_url: str, **server: Any) -> Path:
    lines = [
        "[run]",
        'root_model = "root-m"',
        "max_iterations = 3",
        "[endpoints.default]",
        f'base_url = "{llm_url}"',
        "max_retries = 0",
        "[storage]",
        f'data_dir = "{tmp_path / "data"}"',
        "[server]",
        *(f"{k} = {json.dumps(v)}" for k, v in server.items()),
        "[tenants.alice]",
        f'keys = ["sha256:{key_digest(key)}"]',
    ]
    path = tmp_path / "rlm.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _serve(config: Path, log: Path) -> Served:
    handle = log.open("a")
    process = subprocess.Popen(
        [*RLM, "serve", "--config", str(config), "--listen", "127.0.0.1:0"],
        stdout=handle,
        stderr=handle,
        text=True,
        cwd=REPO,
        env={**os.environ, "OPENAI_API_KEY": "sk-test"},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        port = _port(log)
        if port:
            return Served(process, port, log)
        if process.poll() is not None:
            raise AssertionError(f"rlm serve exited {process.returncode}: {log.read_text()}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"rlm serve did not start: {log.read_text()}")


def _port(log: Path) -> int:
    """The port of a new "listening" line (each start appends one to the log), else 0."""
    lines = [line for line in log.read_text().splitlines() if "rlm serve listening on" in line]
    if len(lines) <= _port.starts.get(str(log), 0):  # type: ignore[attr-defined]
        return 0
    _port.starts[str(log)] = len(lines)  # type: ignore[attr-defined]
    return int(lines[-1].split("listening on ")[1].split(" ")[0].rpartition(":")[2])


_port.starts = {}  # type: ignore[attr-defined]


@pytest.fixture
def waiting_llm() -> Iterator[FakeLLM]:
    """A model whose code waits forever, so a run is in flight for as long as the test wants."""
    reply = repl("import time\ntime.sleep(600)")

    def script(seen: Seen, index: int) -> str:
        return reply if seen.system else "echo"

    with FakeLLM(script) as llm:
        yield llm


@pytest.mark.docker
async def test_after_kill_9_a_restart_marks_the_run_failed_and_reaps_its_container(
    docker_client: docker.DockerClient, tmp_path: Path, waiting_llm: FakeLLM
) -> None:
    key = new_api_key()
    config = _config(tmp_path, key, waiting_llm.url)
    log = tmp_path / "serve.log"
    first = _serve(config, log)
    owner = f"/{first.process.pid}/"
    try:
        async with RLMClient(f"127.0.0.1:{first.port}", key) as client:
            stream = client.run_stream("q", context="t")
            accepted = await anext(stream)
            assert isinstance(accepted, RunAccepted)
            async for event in stream:
                if isinstance(event, CodeStarted):
                    break
            assert len(_containers(docker_client, owner)) == 1
            first.process.kill()  # SIGKILL: no cleanup at all
            first.process.wait(30)
            with pytest.raises(RLMError):
                async for _ in stream:
                    pass
        assert len(_containers(docker_client, owner)) == 1  # left behind by the dead server
        second = _serve(config, log)
        try:
            async with RLMClient(f"127.0.0.1:{second.port}", key) as client:
                info = await client.get_run(accepted.run_id, trajectory=True)
            assert info.status is RunStatus.ERROR and info.error == RECOVER_REASON
            assert info.trajectory is not None and info.trajectory.status is RunStatus.ERROR
            assert not _containers(docker_client, owner)  # reaped when the new server started
        finally:
            second.process.send_signal(signal.SIGTERM)
            assert second.process.wait(60) == 0
    finally:
        if first.process.poll() is None:
            first.process.kill()
        for c in _containers(docker_client, owner):
            docker_client.api.remove_container(c, force=True)


@pytest.mark.docker
async def test_sigterm_drains_then_cancels_and_exits_0(
    docker_client: docker.DockerClient, tmp_path: Path, waiting_llm: FakeLLM
) -> None:
    """In-flight calls get the drain grace (a short cell finishes); a run past it is cancelled and
    recorded so; no container is left; the exit status is 0."""
    key = new_api_key()
    config = _config(tmp_path, key, waiting_llm.url, drain_grace_s=4.0)
    served = _serve(config, tmp_path / "serve.log")
    owner = f"/{served.process.pid}/"
    try:
        async with RLMClient(f"127.0.0.1:{served.port}", key) as client:
            stream = client.run_stream("q", context="t")
            accepted = await anext(stream)
            assert isinstance(accepted, RunAccepted)
            async for event in stream:
                if isinstance(event, CodeStarted):
                    break
            short = asyncio.ensure_future(
                client.execute("import time; time.sleep(1.5); print('made it')", context="t")
            )
            await _until(lambda: len(_containers(docker_client, owner)) == 2, "the cell's sandbox")
            served.process.send_signal(signal.SIGTERM)
            result = await short
            assert result.stdout.text == "made it\n"  # finished within the grace
            rest = [e async for e in stream]
            assert isinstance(rest[-1], RLMResult) and rest[-1].status is RunStatus.CANCELLED
        assert await asyncio.to_thread(served.process.wait, 60) == 0
        assert not _containers(docker_client, owner)
        log = (tmp_path / "serve.log").read_text()
        assert "TLS off, 1 tenant(s)" in log
    finally:
        if served.process.poll() is None:
            served.process.kill()
        for c in _containers(docker_client, owner):
            docker_client.api.remove_container(c, force=True)
    # The run is recorded as cancelled: a new server reads it so.
    again = _serve(config, tmp_path / "serve.log")
    try:
        async with RLMClient(f"127.0.0.1:{again.port}", key) as client:
            assert (await client.get_run(accepted.run_id)).status is RunStatus.CANCELLED
    finally:
        again.process.send_signal(signal.SIGTERM)
        assert again.process.wait(60) == 0


def test_trajectory_json_is_the_trajectorys_own_shape() -> None:
    """The JSON text on the wire reads back with Trajectory.from_json."""
    from orchestrator.rlm.trajectory import RunMetadata

    meta = RunMetadata(RunStatus.COMPLETED, 1, 0, 1, 0, 1.0, 0.5, 0.5, 3, 1, 10, 5, 6, None, 0, 0, 0.0, 1)
    trajectory = Trajectory("q", "a", RunStatus.COMPLETED, None, meta)
    message = convert.run_response("r1", trajectory)
    assert Trajectory.from_json(json.loads(message.trajectory_json)) == trajectory


async def test_the_readme_client_example_runs_against_a_live_server(harness: Harness) -> None:
    """examples/server_client.py (the README's Python client) runs as written against a live server."""
    harness.replies(repl("FINAL('billing fails most')"))
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(REPO / "examples" / "server_client.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RLM_ADDRESS": harness.address, "RLM_KEY": harness.keys["alice"]},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "9" and "completed billing fails most" in done.stdout


# ---- conversations: runs continued in their kept sandbox ------------------------------------------------


async def test_a_kept_run_is_continued_in_its_sandbox_with_history(harness: Harness) -> None:
    """keep_sandbox keeps the run's sandbox; continue_run_id runs the next query there: its variables,
    `history` of the earlier turn, a new inline context as context_1; without keep_sandbox it ends."""
    alice = harness.client()
    harness.replies(
        repl("x = 41\nFINAL('first')"),
        repl("FINAL(f'{x + 1} {len(history) > 0} {context_1}')"),
        repl("FINAL(f'{x} still here')"),
    )
    first = await alice.run("start", context="the text", keep_sandbox=True)
    assert first.status is RunStatus.COMPLETED and first.answer == "first"
    second = await alice.run("go on", context="more", continue_run_id=first.run_id, keep_sandbox=True)
    assert (second.status, second.answer) == (RunStatus.COMPLETED, "42 True more")
    third = await alice.run("last", continue_run_id=second.run_id)  # found by its latest run too
    assert third.answer == "41 still here"
    with pytest.raises(SandboxClosedError):  # it ended with the run that did not keep it
        await alice.run("again", continue_run_id=first.run_id)
    assert await harness.backend.list_managed() == []


async def test_another_tenants_conversation_is_not_found(harness: Harness) -> None:
    """Bob cannot continue Alice's kept run: NOT_FOUND, the same as a run that never existed."""
    harness.replies(repl("FINAL('mine')"))
    kept = await harness.client("alice").run("start", context="t", keep_sandbox=True)
    with pytest.raises(NotFoundError) as theirs:
        await harness.client("bob").run("steal", continue_run_id=kept.run_id)
    with pytest.raises(NotFoundError) as missing:
        await harness.client("bob").run("steal", continue_run_id="0" * 16)
    assert str(theirs.value).replace(kept.run_id, "X") == str(missing.value).replace("0" * 16, "X")


async def test_a_kept_conversation_ends_when_idle_and_frees_its_sandbox(harness: Harness) -> None:
    """A kept run unused for session_idle_s is closed by the sweep: its sandbox is removed."""
    harness.replies(repl("FINAL('kept')"))
    kept = await harness.client().run("start", context="t", keep_sandbox=True)
    assert len(await harness.backend.list_managed()) == 1
    kept_runs = harness.server.kept
    assert kept_runs is not None
    harness.clock.advance(kept_runs.idle_s - 1)  # the sweep, woken by the clock, finds it not yet idle
    assert await kept_runs.expire_idle() == []
    harness.clock.advance(1)
    assert await kept_runs.expire_idle() == [kept.run_id]
    assert await harness.backend.list_managed() == []
    with pytest.raises(SandboxClosedError, match="idle"):
        await harness.client().run("late", continue_run_id=kept.run_id)
