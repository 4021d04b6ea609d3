"""The long-lived orchestrator: records as they happen, lifecycle, checks and reaping, injected time.

Engine logic runs on the fakes (the process backend, the in-process provider, the fake clock); the
lifecycle is checked on real Docker too, where leftovers would be containers and socket directories.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import docker
import pytest

from orchestrator import SandboxLimits
from orchestrator.config import RLMConfig, Runtime, SandboxConfig
from orchestrator.context.sources import InMemoryContext
from orchestrator.context.store import ContextStore
from orchestrator.core import Orchestrator
from orchestrator.rlm import prompts
from orchestrator.rlm.records import (
    CellRecorded,
    IterationRecorded,
    LevelStarted,
    LimitHit,
    MemoryRecorder,
    Record,
    RunEnded,
    RunStarted,
    SubCallRecorded,
    build_trajectory,
)
from orchestrator.sandbox import SandboxManager
from orchestrator.sandbox.backend import CallbackChannel, ContainerExit, ManagedSandbox, SandboxSpec
from orchestrator.settings import Settings
from orchestrator.status import CellStatus, RunStatus

from .fake_llm import Reply, Seen, repl
from .fakes.clock import FakeClock
from .fakes.llm import ScriptedProvider
from .fakes.process_backend import ProcessBackend


def _turns(*replies: str | Reply | BaseException) -> Any:
    """Root replies in order; a sub-call (a request without a system prompt) echoes its prompt."""
    it = iter(replies)

    def script(seen: Seen, index: int) -> Reply | str | BaseException:
        if not seen.system:
            return f"echo:{seen.last_user}"
        return next(it)

    return script


class CountingBackend:
    """A backend that counts the calls the manager makes of it, around the process backend."""

    def __init__(self, inner: ProcessBackend) -> None:
        self.inner = inner
        self.checks = 0
        self.listings = 0

    async def check(self, image: str, runtime: Runtime) -> None:
        self.checks += 1
        await self.inner.check(image, runtime)

    def validate(self, runtime: Runtime, limits: SandboxLimits) -> None:
        self.inner.validate(runtime, limits)

    async def open_channel(self, sandbox_id: str) -> CallbackChannel:
        return await self.inner.open_channel(sandbox_id)

    async def close_channel(self, channel: CallbackChannel) -> None:
        await self.inner.close_channel(channel)

    async def start(self, spec: SandboxSpec, channel: CallbackChannel) -> str:
        return await self.inner.start(spec, channel)

    async def kill(self, handle: str) -> None:
        await self.inner.kill(handle)

    async def wait_exit(self, handle: str, timeout_s: float) -> ContainerExit:
        return await self.inner.wait_exit(handle, timeout_s)

    async def logs_tail(self, handle: str, lines: int = 20) -> str:
        return await self.inner.logs_tail(handle, lines)

    async def remove(self, handle: str) -> None:
        await self.inner.remove(handle)

    async def list_managed(self) -> list[ManagedSandbox]:
        self.listings += 1
        return await self.inner.list_managed()

    async def remove_stale_channels(self, claimed: set[str]) -> int:
        return await self.inner.remove_stale_channels(claimed)

    async def aclose(self) -> None:
        await self.inner.aclose()


class SnapshotRecorder(MemoryRecorder):
    """Keeps the kind of each record, in the order the engine wrote them."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: list[str] = []

    async def write(self, record: Record) -> None:
        self.kinds.append(type(record).__name__)
        await super().write(record)


def _orch(tmp_path: Path, script: Any, **kw: Any) -> Orchestrator:
    settings = Settings(run=RLMConfig(root_model="root-m", sub_model="sub-m", **kw.pop("run", {})))
    return Orchestrator(
        settings,
        backend=kw.pop("backend", None) or ProcessBackend(state_dir=tmp_path / "state"),
        provider=ScriptedProvider(script),
        **kw,
    )


async def test_each_step_is_recorded_when_it_happens(tmp_path: Path, context_dir: Path) -> None:
    """Start, reply, cell, sub-call (with its texts) and end are written in the order they happened."""
    recorder = SnapshotRecorder()
    script = _turns(repl("print(len(list_files()))"), repl("FINAL(llm_query('hi'))"))
    async with _orch(tmp_path, script, recorder=recorder) as orch:
        result = await orch.run(context=context_dir, query="q")
    assert result.status is RunStatus.COMPLETED and result.answer == "echo:hi"
    assert recorder.kinds == [
        "RunStarted",
        "LevelStarted",
        "IterationRecorded",
        "CellRecorded",
        "IterationRecorded",
        "SubCallRecorded",
        "CellRecorded",
        "LevelEnded",
        "RunEnded",
    ]
    records = recorder.records(result.run_id)
    subcall = next(r for r in records if isinstance(r, SubCallRecorded)).subcall
    assert (subcall.prompt, subcall.reply) == ("hi", "echo:hi")
    assert build_trajectory(records) == result.trajectory
    assert isinstance(records[0], RunStarted) and records[0].query == "q"
    assert isinstance(records[-1], RunEnded) and records[-1].status is RunStatus.COMPLETED


async def test_a_bug_of_ours_is_raised_and_the_finished_steps_are_kept(
    tmp_path: Path, context_dir: Path
) -> None:
    """A non-RLMError (a bug) is raised, not turned into a status; every step before it stays recorded."""
    recorder = MemoryRecorder()
    script = _turns(repl("x = 41\nprint(x + 1)"), ZeroDivisionError("a bug in the provider"))
    async with _orch(tmp_path, script, recorder=recorder) as orch:
        with pytest.raises(ZeroDivisionError):
            await orch.run(context=context_dir, query="q", run_id="crashy")
    records = recorder.records("crashy")
    assert [type(r) for r in records[:4]] == [RunStarted, LevelStarted, IterationRecorded, CellRecorded]
    ended = records[-1]
    assert isinstance(ended, RunEnded) and ended.status is RunStatus.ERROR
    assert "internal error: ZeroDivisionError" in (ended.error or "")
    partial = build_trajectory(records)
    assert partial.status is RunStatus.ERROR
    assert partial.iterations[0].cells[0].stdout == "42\n"


async def test_a_cancelled_run_ends_on_the_record_and_leaves_no_sandbox(
    tmp_path: Path, context_dir: Path
) -> None:
    """Cancelling a run mid-cell records its level and the run as cancelled and removes its sandbox."""
    recorder = MemoryRecorder()
    state = tmp_path / "state"
    script = _turns(repl("import time\nprint('started', flush=True)\ntime.sleep(300)"))
    async with _orch(tmp_path, script, recorder=recorder, backend=ProcessBackend(state_dir=state)) as orch:
        task = asyncio.ensure_future(orch.run(context=context_dir, query="q", run_id="stop-me"))
        await _until(lambda: any(isinstance(r, IterationRecorded) for r in recorder.records("stop-me")))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert orch.manager.live_sandboxes() == 0
    ended = recorder.records("stop-me")[-1]
    assert isinstance(ended, RunEnded) and ended.status is RunStatus.CANCELLED
    assert await ProcessBackend(state_dir=state).list_managed() == []


async def test_a_run_without_an_end_rebuilds_as_running() -> None:
    """Records of a run whose process died mid-way fold into a running trajectory with what it did."""
    from orchestrator.rlm.trajectory import CellRecord, IterationRecord

    records: list[Record] = [
        RunStarted("r", "t", "q", "m", 1, 0.0),
        LevelStarted("r", "root", None, 0, "q", "m"),
        IterationRecorded("r", "root", IterationRecord(1, 0, "reply", (), 5, 7, 0.5, 0.0)),
        CellRecorded("r", "root", 1, CellRecord("print(1)", CellStatus.OK, "1\n", "", None, None, 0.25)),
    ]
    trajectory = build_trajectory(records)
    assert trajectory.status is RunStatus.RUNNING and trajectory.answer is None
    assert trajectory.iterations[0].cells[0].stdout == "1\n" and trajectory.iterations[0].repl_s == 0.25
    assert trajectory.metadata.prompt_tokens == 5 and trajectory.metadata.iterations == 1


async def test_limits_hit_are_recorded(tmp_path: Path, context_dir: Path) -> None:
    """A refused sub-call writes a LimitHit when it is refused, and the run ends with that limit."""
    recorder = MemoryRecorder()
    code = "llm_query('a'); print(llm_query('b'))"
    script = _turns(repl(code), repl("FINAL('never')"))
    async with _orch(tmp_path, script, recorder=recorder, run={"max_subcalls": 1}) as orch:
        result = await orch.run(context=context_dir, query="q")
    assert result.status is RunStatus.MAX_SUBCALLS
    hits = [r for r in recorder.records(result.run_id) if isinstance(r, LimitHit)]
    assert hits and all(h.limit is RunStatus.MAX_SUBCALLS for h in hits)


async def test_concurrent_runs_share_one_check_and_reaping_happens_at_start_and_close(
    tmp_path: Path, context_dir: Path
) -> None:
    """Many runs on one orchestrator: the backend is checked once, listed for reaping only twice."""
    backend = CountingBackend(ProcessBackend(state_dir=tmp_path / "state"))
    script = _turns(*[repl("FINAL('done')")] * 4)
    orch = _orch(tmp_path, script, backend=backend)
    async with orch:
        results = await asyncio.gather(*(orch.run(context=context_dir, query=f"q{i}") for i in range(4)))
        assert [r.answer for r in results] == ["done"] * 4
        assert backend.checks == 1 and backend.listings == 1
    assert backend.listings == 2  # once more when it closed


async def test_closing_is_idempotent_and_leaves_nothing(tmp_path: Path, context_dir: Path) -> None:
    """An idle sandbox, an open session and a finished run: after aclose none remains, nor a thread."""
    before = {t.ident for t in threading.enumerate()}
    state = tmp_path / "state"
    orch = _orch(tmp_path, _turns(repl("FINAL('x')")), backend=ProcessBackend(state_dir=state))
    await orch.start()
    await orch.run(context=context_dir, query="q")
    idle = await orch.manager.create()
    session_cm = orch.open_sandbox(context_dir)
    session = await session_cm.__aenter__()
    assert (await session.run("print(2)")).stdout.text == "2\n"
    assert idle.channel.socket_path and os.path.exists(idle.channel.socket_path)
    await orch.aclose()
    await orch.aclose()
    assert await ProcessBackend(state_dir=state).list_managed() == []
    assert not os.path.exists(os.path.dirname(idle.channel.socket_path))
    leftover = [t.name for t in threading.enumerate() if t.ident not in before and t.name.startswith("rlm")]
    assert leftover == []
    with pytest.raises(Exception, match="closed"):
        await orch.run(context=context_dir, query="q")


async def test_an_idle_sandbox_is_never_reaped_by_its_live_owner(tmp_path: Path) -> None:
    """A created but unattached sandbox (as a pool holds) survives its owner's reap; discard removes it."""
    backend = ProcessBackend(state_dir=tmp_path / "state")
    async with SandboxManager(SandboxConfig(), backend) as manager:
        idle = await manager.create()
        assert await manager.reap() == 0
        assert idle.sandbox_id in {m.sandbox_id for m in await backend.list_managed()}
        await manager.discard(idle)
        assert idle.sandbox_id not in {m.sandbox_id for m in await backend.list_managed()}


async def _until(predicate: Any) -> None:
    """Let the event loop run until `predicate()` holds (bounded by the test timeout, never a sleep)."""
    while not predicate():
        await asyncio.sleep(0)


async def test_the_run_deadline_follows_the_injected_clock(tmp_path: Path, context_dir: Path) -> None:
    """Time moved on by the fake clock ends the run at its deadline, with no real waiting."""
    clock = FakeClock()

    def script(seen: Seen, index: int) -> str:
        clock.advance(100.0)  # the model took 100 s, as far as the run can tell
        return repl("print('working')")

    async with _orch(tmp_path, script, clock=clock, run={"deadline_s": 150.0}) as orch:
        result = await orch.run(context=context_dir, query="q")
    assert result.status is RunStatus.DEADLINE
    assert result.metadata.iterations == 2 and result.metadata.total_s >= 200.0


class SlowSubCalls:
    """Answers llm_query after moving the fake clock on, as a slow model would."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        self.clock, self.seconds = clock, seconds

    async def llm_query(self, prompt: str, model: str, recursive: bool) -> str:
        self.clock.advance(self.seconds)
        return f"slow:{prompt}"

    async def llm_query_batched(self, prompts: list[str], model: str, recursive: bool) -> list[str]:
        return [await self.llm_query(p, model, recursive) for p in prompts]


async def test_subcall_time_stops_the_cell_clock(tmp_path: Path) -> None:
    """A cell whose sub-calls take 200 s of clock time is not timed out at 5 s: the host's time is not its."""
    clock = FakeClock()
    backend = ProcessBackend(state_dir=tmp_path / "state")
    async with SandboxManager(SandboxConfig(), backend, clock=clock) as manager:
        store = ContextStore(InMemoryContext("text"))
        sandbox = await manager.create(limits=SandboxLimits(cell_timeout_s=5))
        session = await manager.attach(sandbox, store, subcalls=SlowSubCalls(clock, 100.0), owns_source=True)
        result = await session.run("print(llm_query('a'), llm_query('b'))")
        assert result.status is CellStatus.OK and result.stdout.text == "slow:a slow:b\n"
        await session.aclose()


async def test_a_cell_times_out_when_its_own_clock_runs_out(tmp_path: Path, context_dir: Path) -> None:
    """A cell that keeps running is killed as soon as the fake clock passes its limit, not 5 real s later."""
    clock = FakeClock()
    backend = ProcessBackend(state_dir=tmp_path / "state")
    async with SandboxManager(SandboxConfig(), backend, clock=clock) as manager:
        async with manager.open(context_dir, limits=SandboxLimits(cell_timeout_s=5)) as session:
            cell = asyncio.ensure_future(session.run("import time\nwhile True: time.sleep(0.05)"))
            await _until(lambda: clock.sleepers() > 0)  # the cell's clock is waiting
            clock.advance(5.0)
            result = await asyncio.wait_for(cell, 30)
    assert result.status is CellStatus.TIMEOUT


@pytest.mark.docker
async def test_docker_orchestrator_closes_without_leftovers(
    docker_client: docker.DockerClient, tmp_path: Path, context_dir: Path
) -> None:
    """On real Docker: after runs and an idle sandbox, aclose leaves no container and no socket dir."""
    root = Path(tempfile.mkdtemp(prefix="rlm-t-"))  # short: a Unix socket path has at most 107 bytes
    settings = Settings(
        sandbox=SandboxConfig(socket_root=str(root)), run=RLMConfig(root_model="root-m", sub_model="sub-m")
    )
    orch = Orchestrator(settings, provider=ScriptedProvider(_turns(repl("FINAL(len(list_files()))"))))
    async with orch:
        result = await orch.run(context=context_dir, query="q")
        assert result.answer == "2"
        await orch.manager.create(runtime="runc")
        mine = [
            c
            for c in docker_client.containers.list(all=True, filters={"label": "io.rlm.managed=1"})
            if c.labels.get("io.rlm.owner") == orch.manager.owner
        ]
        assert len(mine) == 1  # the idle one; the run's sandbox is already gone
    left = docker_client.containers.list(all=True, filters={"label": f"io.rlm.owner={orch.manager.owner}"})
    assert left == [] and list(root.iterdir()) == []
    root.rmdir()


async def test_a_socket_root_too_long_for_unix_sockets_is_a_clear_error(tmp_path: Path) -> None:
    """A socket root whose socket paths would pass 107 bytes is refused naming the setting, not a crash."""
    from orchestrator.errors import EngineUnavailableError
    from orchestrator.sandbox.docker_backend import DockerBackend

    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    backend = DockerBackend(seccomp_profile="/nonexistent", socket_root=str(deep))
    with pytest.raises(EngineUnavailableError, match="socket_root"):
        await backend.open_channel("abc")
    assert list(deep.iterdir()) == []


async def test_replies_without_code_end_the_run_as_stalled(tmp_path: Path, context_dir: Path) -> None:
    """Three replies in a row with neither code nor FINAL end the run, the model asked once for its
    answer as at the iteration limit: no prose passes for an answer; a FINAL then is the answer of a
    run that stays `stalled`."""
    prose = ("I think the answer is in the logs.", "Let me think.", "Probably 42.")
    told: list[str] = []

    def script(seen: Seen, index: int) -> str:
        told.append(seen.last_user)
        return (*prose, "It is 42, I think.")[index]

    async with _orch(tmp_path, script) as orch:
        result = await orch.run(context=context_dir, query="q")
        assert (result.status, result.answer) == (RunStatus.STALLED, None)
        assert "no code" in (result.trajectory.error or "") and result.metadata.iterations == 4
        assert told[-1] == prompts.FORCE_FINAL_STALLED
    async with _orch(tmp_path, _turns(*prose, repl("FINAL(1)"))) as orch:
        answered = await orch.run(context=context_dir, query="q")
    assert (answered.status, answered.answer, answered.metadata.iterations) == (RunStatus.STALLED, "1", 4)


async def test_a_cycle_of_replies_is_not_run_again(tmp_path: Path, context_dir: Path) -> None:
    """A small model cycles between two replies (recorded: A, B, A, B...): a reply equal to ANY
    earlier one is not run again, the model is told (with repeat_temperatures = (): at once), and
    three of them in a row end the run."""
    told: list[str] = []
    a, b = repl("print('a')"), repl("print('b')")
    replies = iter([a, b, a, b, a, repl("FINAL('late')")])

    def script(seen: Seen, index: int) -> str:
        told.append(seen.last_user)
        return next(replies)

    async with _orch(tmp_path, script, run={"repeat_temperatures": ()}) as orch:
        result = await orch.run(context=context_dir, query="q")
    assert (result.status, result.answer) == (RunStatus.STALLED, "late")  # asked once at the end
    assert told[-1] == prompts.FORCE_FINAL_STALLED
    cells = [c for it in result.trajectory.iterations for c in it.cells]
    assert [c.stdout for c in cells] == ["a\n", "b\n", ""]  # the last: the final answer's cell
    assert sum(prompts.REPEATED in t for t in told) == 2


async def test_a_repeated_reply_is_asked_for_again_at_a_higher_temperature(
    tmp_path: Path, context_dir: Path
) -> None:
    """Recorded at temperature 0.2: told "your reply is the same as an earlier one", the 1.5B model
    writes it again, to the end of the run. A repeat is instead asked for again at 0.7, then 1.0, the
    conversation going on as if it had not come; a new reply runs, and the next ask is at the
    endpoint's default again."""
    seen_calls: list[tuple[float | None, list[dict[str, str]]]] = []
    a, b = repl("print('a')"), repl("print('b')")
    replies = iter([a, a, a, b, repl("FINAL('done')")])

    def script(seen: Seen, index: int) -> str:
        seen_calls.append((seen.body.get("temperature"), seen.body["messages"]))
        return next(replies)

    async with _orch(tmp_path, script) as orch:
        result = await orch.run(context=context_dir, query="q")
    assert (result.status, result.answer) == (RunStatus.COMPLETED, "done")
    assert [t for t, _m in seen_calls] == [None, None, 0.7, 1.0, None]
    assert seen_calls[1][1] == seen_calls[2][1] == seen_calls[3][1]  # the repeats were never added
    assert not any(prompts.REPEATED in m["content"] for _t, ms in seen_calls for m in ms)
    cells = [c.stdout for it in result.trajectory.iterations for c in it.cells]
    assert cells == ["a\n", "b\n", ""]  # the last: FINAL's
    assert result.metadata.iterations == 5  # every reply is a recorded iteration, repeats included


async def test_an_endpoint_that_refuses_a_temperature_is_told_instead(
    tmp_path: Path, context_dir: Path
) -> None:
    """Some endpoints refuse a temperature (reasoning models: HTTP 400): the repeat is then told, as
    without repeat_temperatures, and no later call names a temperature."""
    temperatures: list[float | None] = []
    a = repl("print('a')")
    replies = iter([a, a, repl("print('c')"), a, repl("FINAL('done')")])

    def script(seen: Seen, index: int) -> Reply | str:
        temperature = seen.body.get("temperature")
        temperatures.append(temperature)
        if temperature is not None:
            return Reply("temperature is not supported with this model", status=400)
        return next(replies)

    async with _orch(tmp_path, script) as orch:
        result = await orch.run(context=context_dir, query="q")
    assert (result.status, result.answer) == (RunStatus.COMPLETED, "done"), result.trajectory.error
    assert temperatures == [None, None, 0.7, None, None, None]
    cells = [c.stdout for it in result.trajectory.iterations for c in it.cells]
    assert cells == ["a\n", "c\n", ""]


CHECKED = {"check_unread_answers": True}


async def test_an_answer_before_anything_was_read_is_sent_back_once(
    tmp_path: Path, context_dir: Path
) -> None:
    """Recorded from the 1.5B model: it lists the files, then answers "The runbook does not mention
    it" without reading one. With check_unread_answers that answer is sent back once, with why; the
    FINAL given after reading is the run's answer."""
    told: list[str] = []
    replies = iter(
        [
            repl("print(list_files())\nFINAL('a guess')"),
            repl("print(read_file('hello.txt'))\nFINAL('read it')"),
        ]
    )

    def script(seen: Seen, index: int) -> str:
        told.append(seen.last_user)
        return next(replies)

    async with _orch(tmp_path, script, run=CHECKED) as orch:
        result = await orch.run(context=context_dir, query="q")
    assert (result.status, result.answer) == (RunStatus.COMPLETED, "read it")
    assert told[1].startswith("Output of block 1:\n['hello.txt', 'sub/data.csv']")
    assert told[1].endswith(prompts.UNREAD_ANSWER) and prompts.NEXT_AFTER_OUTPUT not in told[1]


@pytest.mark.parametrize(
    "reading",
    [
        "print(read_file('sub/data.csv'))",  # through the API
        "print(open('sub/data.csv').read())",  # the mounted file itself
        "print(len(grep('a', glob='sub/*')))",  # scanned by the host
        "print(context['hello.txt'])",  # the view of the files
    ],
)
async def test_an_answer_after_reading_is_taken_at_once(
    tmp_path: Path, context_dir: Path, reading: str
) -> None:
    """Any way of reading the context counts: the API, the model's own open() of the mounted files
    (counted in the sandbox), grep, `context[path]`."""
    async with _orch(tmp_path, _turns(repl(f"{reading}\nFINAL('done')")), run=CHECKED) as orch:
        result = await orch.run(context=context_dir, query="q")
    assert (result.status, result.answer, result.metadata.iterations) == (RunStatus.COMPLETED, "done", 1)


async def test_an_unread_answer_stands_when_no_other_comes(tmp_path: Path, context_dir: Path) -> None:
    """Sent back to be checked, the model never gives another FINAL: the one it gave is the answer
    (a count of files needs no reading), not a stalled run with none. An in-memory text context is
    `context` itself: an answer over it is taken at once."""
    script = _turns(repl("FINAL(len(list_files()))"), "hm", "hm.", "hm..")
    async with _orch(tmp_path, script, run=CHECKED) as orch:
        result = await orch.run(context=context_dir, query="how many files?")
        assert (result.status, result.answer) == (RunStatus.COMPLETED, "2")
        assert result.metadata.iterations == 4
    async with _orch(tmp_path, _turns(repl("FINAL(len(context.split()))")), run=CHECKED) as orch:
        over_text = await orch.run(context="alpha beta", query="how many words?")
    assert (over_text.answer, over_text.metadata.iterations) == ("2", 1)


async def test_an_answer_that_found_nothing_is_sent_back_once(tmp_path: Path, context_dir: Path) -> None:
    """Recorded from the 1.5B model: it counts over read_file()'s characters, finds 0 and answers
    "0 lines ...". With check_empty_answers that answer is sent back once, after the output, with
    why; the next answer is taken, even if it again finds nothing (the check is made once)."""
    told: list[str] = []
    count = "n = len([ln for ln in read_file('hello.txt') if 'hello' in ln])\nprint(n)\n"
    replies = iter(
        [
            repl(count + "FINAL(f'{n} lines')"),
            repl("print(read_file('hello.txt').splitlines()[:3])\nFINAL('no such line was found')"),
        ]
    )

    def script(seen: Seen, index: int) -> str:
        told.append(seen.last_user)
        return next(replies)

    async with _orch(tmp_path, script, run={"check_empty_answers": True}) as orch:
        result = await orch.run(context=context_dir, query="how many lines say hello?")
        assert (result.status, result.answer) == (RunStatus.COMPLETED, "no such line was found")
        assert told[1].startswith("Output of block 1:\n0\n") and told[1].endswith(prompts.EMPTY_ANSWER)
        assert result.metadata.iterations == 2


@pytest.mark.parametrize("check", ["check_empty_answers", None])
async def test_a_found_answer_or_an_unchecked_run_is_taken_at_once(
    tmp_path: Path, context_dir: Path, check: str | None
) -> None:
    """An answer that found something is taken at once; with the check off (the default), so is one
    that found nothing, as in the official RLM."""
    for answer, held in (("3 lines", False), ("0 lines", check is not None)):
        script = _turns(repl(f"print(read_file('hello.txt'))\nFINAL({answer!r})"), repl("FINAL('again')"))
        async with _orch(tmp_path, script, run={check: True} if check else {}) as orch:
            result = await orch.run(context=context_dir, query="q")
        assert result.answer == ("again" if held else answer)


@pytest.mark.parametrize("stop", [False, True])
async def test_made_up_output_in_a_reply_is_neither_run_nor_kept(
    tmp_path: Path, context_dir: Path, stop: bool
) -> None:
    """Recorded: the 1.5B model writes "Output of block 1:" and what it thinks the output is, then
    more code. Only the reply up to that line runs and goes back into the conversation (the
    trajectory keeps it whole); with stop_at_imagined_output the endpoint is asked to stop there."""
    made_up = repl("print('real')") + "\nOutput of block 1:\nimagined\n" + repl("FINAL('made up')")
    bodies: list[dict[str, Any]] = []
    replies = iter([made_up, repl("FINAL('seen')")])

    def script(seen: Seen, index: int) -> str:
        bodies.append(seen.body)
        return next(replies)

    async with _orch(tmp_path, script, run={"stop_at_imagined_output": stop}) as orch:
        result = await orch.run(context=context_dir, query="q")
    assert result.answer == "seen"  # the made-up reply's FINAL never ran
    sent_back = [m["content"] for m in bodies[1]["messages"] if m["role"] == "assistant"]
    assert sent_back == [repl("print('real')")]
    cells = [c.stdout for it in result.trajectory.iterations for c in it.cells]
    assert cells == ["real\n", ""]  # the made-up part's FINAL('made up') never ran
    assert ("stop" in bodies[0]) is stop
    assert bodies[0].get("stop", list(prompts.IMAGINED_OUTPUT)) == list(prompts.IMAGINED_OUTPUT)
    if not stop:
        assert "imagined" in result.trajectory.iterations[0].reply  # recorded as it came


async def test_the_feedback_carries_what_the_store_noticed(tmp_path: Path, context_dir: Path) -> None:
    """A grep that finds no line where file names match (recorded: grep(r"2026-03.csv") to find that
    file) is told so under that block's output, and only there."""
    told: list[str] = []
    replies = iter(
        [repl("print(len(grep(r'data\\.csv')))") + repl("print(len(grep('hello')))"), repl("FINAL('ok')")]
    )

    def script(seen: Seen, index: int) -> str:
        told.append(seen.last_user)
        return next(replies)

    async with _orch(tmp_path, script) as orch:
        result = await orch.run(context=context_dir, query="q")
    assert result.answer == "ok"
    first, second = told[1].split("Output of block 2:")
    assert "0\n\n[grep('data\\\\.csv') searches the lines inside the files" in first
    assert "the file sub/data.csv matches it: read_file('sub/data.csv').splitlines()" in first
    assert "grep(" not in second and second.startswith("\n1\n")


async def test_the_first_message_names_the_file_the_query_names(tmp_path: Path, context_dir: Path) -> None:
    """The query names data.csv, which the context holds as sub/data.csv: the first message says so,
    with how to read it (prompts.named_file)."""
    told: list[str] = []

    def script(seen: Seen, index: int) -> str:
        told.append(seen.last_user)
        return repl("FINAL('ok')")

    async with _orch(tmp_path, script) as orch:
        await orch.run(context=context_dir, query="How many rows has data.csv?")
    assert told[0].endswith(
        "names the file sub/data.csv: read it, lines = read_file('sub/data.csv').splitlines(), and compute "
        "the answer from those lines, not from other files."
    )


@pytest.mark.parametrize("check", [True, False])
async def test_an_answer_written_beside_a_grep_that_found_no_line_is_sent_back_once(
    tmp_path: Path, context_dir: Path, check: bool
) -> None:
    """Recorded from the 1.5B model: grep(r"staff", glob="people/*") found no line (a file's name
    matched), and the same reply's next block answered FINAL(f"{len(hits) - 1} people ..."), written
    before that output came. With check_empty_answers it is sent back once, after the output and the
    store's note; the next answer is taken, even after another such grep. Off: taken at once."""
    told: list[str] = []
    blind = repl("hits = grep(r'data\\.csv')\nprint(len(hits))") + repl("FINAL(f'{len(hits) + 2} rows')")
    replies = iter([blind, blind.replace("+ 2", "+ 3")])

    def script(seen: Seen, index: int) -> str:
        told.append(seen.last_user)
        return next(replies)

    async with _orch(tmp_path, script, run={"check_empty_answers": check}) as orch:
        result = await orch.run(context=context_dir, query="how many rows has data.csv?")
    assert result.answer == ("3 rows" if check else "2 rows")
    if check:
        assert "read_file('sub/data.csv')" in told[1] and told[1].endswith(prompts.UNSEEN_ANSWER)


async def test_an_answer_beside_a_name_that_names_no_file_is_taken(tmp_path: Path, context_dir: Path) -> None:
    """A strong model's probe: list_files("archive") names no file (the store notes it), and a later
    block of the same reply reads the file and answers. The answer was not written blind to lines a
    grep missed: it is taken at once, the note still shown."""
    told: list[str] = []
    reply = repl("print(list_files('archive'))") + repl("FINAL(len(read_file('sub/data.csv').splitlines()))")

    def script(seen: Seen, index: int) -> str:
        told.append(seen.last_user)
        return reply

    async with _orch(tmp_path, script, run={"check_empty_answers": True}) as orch:
        result = await orch.run(context=context_dir, query="how many lines has data.csv?")
    assert result.answer == str(len((context_dir / "sub" / "data.csv").read_text().splitlines()))
    assert len(told) == 1


async def test_an_answer_computed_from_a_restored_name_is_sent_back_once(
    tmp_path: Path, context_dir: Path
) -> None:
    """Recorded from the 1.5B model: `context = list_files("logs")` printed 3 in one block, and
    `FINAL(len(context))` in the next gave the whole context's 5 (`context` was restored between
    them, as the official REPL does). Such an answer is sent back once, saying why; one whose own
    block assigned the name before using it is taken at once."""
    told: list[str] = []
    replies = iter(
        [
            repl("context = list_files('sub')\nprint(len(context))") + repl("FINAL(len(context))"),
            repl("files = list_files('sub')\nFINAL(len(files))"),
        ]
    )

    def script(seen: Seen, index: int) -> str:
        told.append(seen.last_user)
        return next(replies)

    async with _orch(tmp_path, script) as orch:
        result = await orch.run(context=context_dir, query="how many files in sub?")
        assert (result.answer, result.metadata.iterations) == ("1", 2)
        assert told[1].endswith(prompts.stale_answer(["context"])) and "Output of block 1:\n1\n" in told[1]
        same_block = _turns(repl("context = list_files('sub')\nFINAL(len(context))"))
    async with _orch(tmp_path, same_block) as orch:
        taken = await orch.run(context=context_dir, query="q")
    assert (taken.answer, taken.metadata.iterations) == ("1", 1)
    # Assigned again in the answer's own block, or a function of the REPL's put back: taken at once.
    again = repl("context = 1\ngrep = 2") + repl(
        "context = list_files('sub')\nFINAL(len(grep('hello')) + len(context))"
    )
    async with _orch(tmp_path, _turns(again)) as orch:
        own = await orch.run(context=context_dir, query="q")
    assert (own.answer, own.metadata.iterations) == ("2", 1)


async def test_llm_query_of_the_query_itself_is_refused(tmp_path: Path, context_dir: Path) -> None:
    """llm_query(the query) asks a model that never sees the context (a small model's habit): the
    code gets an "Error: ..." string saying so, no model is asked, and no sub-call is spent."""
    sub_calls, roots = 0, 0

    def script(seen: Seen, index: int) -> str:
        nonlocal sub_calls, roots
        if not seen.system:
            sub_calls += 1
            return "a guess"
        roots += 1
        if roots == 1:
            return repl("print(llm_query(' how many FILES are there? '))\nprint(llm_query('count: a b'))")
        return repl("FINAL('done')")

    async with _orch(tmp_path, script) as orch:
        result = await orch.run(context=context_dir, query="How many files are there?")
    cell = result.trajectory.iterations[0].cells[0]
    out = cell.stdout
    assert cell.error is None, cell.error
    assert out.startswith("Error: ") and "this prompt is the query itself" in out, out
    assert out.endswith("a guess\n") and sub_calls == 1 and result.metadata.subcall_count == 1


async def test_a_final_of_unquoted_prose_is_the_answer(tmp_path: Path, context_dir: Path) -> None:
    """FINAL(6 files in the orders directory) fails to compile; its text is the run's answer, and
    the blocks after it do not run."""
    script = _turns(repl("FINAL(2 files in the context)") + repl("print('never')"))
    async with _orch(tmp_path, script) as orch:
        result = await orch.run(context=context_dir, query="q")
    assert (result.status, result.answer) == (RunStatus.COMPLETED, "2 files in the context")
    assert [c.error is not None for it in result.trajectory.iterations for c in it.cells] == [True]


async def test_prose_at_the_iteration_limit_is_no_answer(tmp_path: Path, context_dir: Path) -> None:
    """Asked for its answer at the limit, a model that writes prose (or code fences) gives no answer."""
    script = _turns(repl("print(1)"), repl("print(2)"), "```\nFINAL(answer)\n```")
    async with _orch(tmp_path, script, run={"max_iterations": 2}) as orch:
        result = await orch.run(context=context_dir, query="q")
    assert (result.status, result.answer) == (RunStatus.MAX_ITERATIONS, None)
    assert "no final answer" in (result.trajectory.error or "")


async def test_child_rlm_sandboxes_take_a_lease_each(tmp_path: Path, context_dir: Path) -> None:
    """With a sandbox lease (a tenant's quota), each child RLM's sandbox holds one while it lives; a
    child refused a lease reports the refusal as its item's error, and every lease is given back."""
    from contextlib import asynccontextmanager

    from orchestrator.errors import QuotaError

    held, most, granted = 0, 0, 0

    @asynccontextmanager
    async def lease() -> Any:
        nonlocal held, most, granted
        if granted >= 2:
            raise QuotaError("quota max_sandboxes: 2 children at most", quota="max_sandboxes")
        granted += 1
        held += 1
        most = max(most, held)
        try:
            yield
        finally:
            held -= 1

    def script(seen: Seen, index: int) -> str:
        if "The query: child" in str(seen.body["messages"][1]["content"]):
            return repl("FINAL('child done')")
        return repl("FINAL(' | '.join(rlm_query_batched(['child 1', 'child 2', 'child 3'])))")

    async with _orch(tmp_path, script, run={"max_depth": 2}) as orch:
        result = await orch.run(context=context_dir, query="q", sandbox_lease=lease)
    parts = (result.answer or "").split(" | ")
    assert parts.count("child done") == 2 and sum("max_sandboxes" in p for p in parts) == 1
    assert held == 0 and most <= 2


async def test_a_failed_block_stops_the_reply_and_an_empty_final_is_no_answer(
    tmp_path: Path, context_dir: Path
) -> None:
    """Blocks after a failed one do not run (their FINAL assumed it worked); FINAL('') is no answer."""
    plan = repl("counts = {}\nprint(1 / 0)") + repl("FINAL(str(counts))")
    script = _turns(plan, repl("FINAL('')"), repl("FINAL('the real answer')"))
    async with _orch(tmp_path, script) as orch:
        result = await orch.run(context=context_dir, query="q")
    assert (result.status, result.answer) == (RunStatus.COMPLETED, "the real answer")
    first, second = result.trajectory.iterations[0], result.trajectory.iterations[1]
    assert len(first.cells) == 1 and first.cells[0].status is CellStatus.ERROR
    assert second.cells[0].final is None or second.cells[0].final == ""
