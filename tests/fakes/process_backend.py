"""A SandboxBackend that runs the real sandbox runtime as a plain local process. FOR TESTS ONLY.

    ##########################################################################################
    #  NO ISOLATION. The "sandbox" is `python -m rlm_sandbox` running as the test's own user  #
    #  (root, if the tests run as root), with the host's file system, network, pids, memory  #
    #  and every capability the test process has. No limit in SandboxLimits is enforced,     #
    #  no seccomp profile, no namespaces. Use it to test logic that is NOT about isolation:   #
    #  the manager, sessions, the wire, the reaper, the RLM engine. Never run untrusted code  #
    #  with it, and never wire it into the orchestrator's own code paths.                    #
    ##########################################################################################

What it does keep from a real backend, so that tests of the logic above it mean something:

- the same runtime (`sys.executable -m rlm_sandbox`) over the same gRPC Unix socket, with the token;
- an environment built from nothing: RLM_SOCKET, RLM_TOKEN, RLM_CONTEXT_ROOT (the context directory in
  place of the /context mount), PYTHONPATH (where `rlm_sandbox` and `rlm_proto` live) and
  PYTHONDONTWRITEBYTECODE; nothing of the test process's own environment reaches it;
- a process group of its own (start_new_session), so kill and remove kill everything it spawned in that
  group (code that calls setsid() itself escapes it: there is no isolation);
- a private working directory, and its stdout and stderr in a log file that logs_tail reads;
- a state directory holding one small JSON file per sandbox (handle, sandbox_id, owner, tenant, pid), so
  that list_managed works across backend instances, and processes, sharing it, as Docker's labels do; a
  sandbox stays listed, running or exited, until it is removed;
- exit codes as Docker reports them: a process killed by a signal exits with 128 + the signal (only the
  instance that started a sandbox knows its code; another instance sees it end, with exit_code None);
- a channel per sandbox: a private 0700 directory in the temp dir (short socket paths), named after the
  state dir, so that instances sharing a state dir also share, and sweep, their stale channels;
- late contexts (a warm pool's sandboxes): RLM_CONTEXT_ROOT points into an empty slot of the working
  directory, and attach_context makes it a symlink to the context (NOT read-only: nothing here is).
  `ProcessBackend(late_context=False)` raises NotSupported instead, as a host that cannot mount does.

Construct it as `ProcessBackend()` (state in a fixed directory under the temp dir, shared by every
default instance of this user, as one Docker engine is) or `ProcessBackend(state_dir=tmp_path)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import rlm_proto
import rlm_sandbox

from orchestrator.config import Runtime, SandboxLimits
from orchestrator.errors import EngineUnavailableError, InvalidInputError, SandboxStartError
from orchestrator.sandbox.backend import (
    CallbackChannel,
    ContainerExit,
    ManagedSandbox,
    NotSupported,
    SandboxSpec,
)
from orchestrator.sandbox.ownership import process_start_ticks

SOCKET_NAME = "host.sock"
_HANDLE = re.compile(r"proc-[0-9a-f]{16}")
_SANDBOX_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_LOG_TAIL_BYTES = 64 * 1024
_REMOVE_WAIT_S = 10.0  # SIGKILL is not refused; this only bounds a wait on a wedged kernel


def _import_root(module: Any) -> str:
    """The directory to put on PYTHONPATH so that `module` (a package) imports from there."""
    return str(Path(module.__file__).resolve().parent.parent)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class ProcessBackend:
    """The sandbox runtime as a local subprocess, with NO isolation (see the module's docstring)."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        channel_root: str | os.PathLike[str] | None = None,
        stale_channel_age_s: float = 600.0,
        python: str = sys.executable,
        late_context: bool = True,
    ) -> None:
        self._late_context = late_context
        default = Path(tempfile.gettempdir()) / f"rlm-process-backend-{os.getuid()}"
        self._state = Path(state_dir) if state_dir is not None else default
        self._state.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Socket paths are short (108 bytes at most): channels go under the temp dir, not the state dir,
        # named after the state dir so that instances sharing one also share (and reap) their channels.
        self._channel_root = Path(channel_root or tempfile.gettempdir()).resolve()
        family = hashlib.sha256(str(self._state.resolve()).encode()).hexdigest()[:8]
        self._channel_prefix = f"rlm-proc-{family}-"
        self._stale_age_s = stale_channel_age_s
        self._python = python
        roots = [_import_root(rlm_sandbox), _import_root(rlm_proto)]
        self._pythonpath = os.pathsep.join(dict.fromkeys(roots))  # sandbox_image/ and proto/ in a checkout
        self._children: dict[str, subprocess.Popen[bytes]] = {}  # the processes this instance started
        self._checked = False

    @property
    def state_dir(self) -> Path:
        return self._state

    # -- checks ------------------------------------------------------------------------------------

    async def check(self, image: str, runtime: Runtime) -> None:
        """The image and runtime mean nothing here; the runtime's package must import."""
        if self._checked:
            return
        proc = await asyncio.create_subprocess_exec(
            self._python,
            "-c",
            "import grpc, rlm_proto.v1.sandbox_pb2, rlm_sandbox.__main__",
            env=self._base_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, err = await proc.communicate()
        if proc.returncode != 0:
            tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
            raise EngineUnavailableError(
                f"the sandbox runtime does not import with {self._python}: {tail[0]}"
            )
        self._checked = True

    def validate(self, runtime: Runtime, limits: SandboxLimits) -> None:
        """Every limit is accepted, since none is enforced."""

    # -- channels ----------------------------------------------------------------------------------

    async def open_channel(self, sandbox_id: str) -> CallbackChannel:
        if not _SANDBOX_ID.fullmatch(sandbox_id):
            raise InvalidInputError(f"not a sandbox id: {sandbox_id[:80]!r}")
        directory = tempfile.mkdtemp(prefix=f"{self._channel_prefix}{sandbox_id}-", dir=self._channel_root)
        os.chmod(directory, 0o700)
        socket_path = os.path.join(directory, SOCKET_NAME)
        return CallbackChannel(sandbox_id, f"unix:{socket_path}", socket_path, peer_uid=None)

    def _channel_dir(self, channel: CallbackChannel) -> Path | None:
        """The directory open_channel made for this channel; None if it is not one of ours."""
        if channel.socket_path is None:
            return None
        directory = Path(channel.socket_path).parent
        if directory.parent != self._channel_root or not directory.name.startswith(self._channel_prefix):
            return None
        return directory

    async def close_channel(self, channel: CallbackChannel) -> None:
        directory = self._channel_dir(channel)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    async def remove_stale_channels(self, claimed: set[str]) -> int:
        """Remove this family's channel directories no claimed sandbox uses, once older than any start."""
        removed = 0
        now = time.time()
        try:
            entries = list(os.scandir(self._channel_root))
        except OSError:
            return 0
        for entry in entries:
            if not entry.name.startswith(self._channel_prefix) or not entry.is_dir(follow_symlinks=False):
                continue
            # mkdtemp's suffix holds no '-': the sandbox id is everything before the last one.
            sandbox_id = entry.name[len(self._channel_prefix) :].rsplit("-", 1)[0]
            try:
                age = now - entry.stat(follow_symlinks=False).st_mtime
            except OSError:
                continue
            if sandbox_id not in claimed and age > self._stale_age_s:
                shutil.rmtree(entry.path, ignore_errors=True)
                removed += 1
        return removed

    # -- sandboxes ---------------------------------------------------------------------------------

    def _base_env(self) -> dict[str, str]:
        return {"PYTHONPATH": self._pythonpath, "PYTHONDONTWRITEBYTECODE": "1"}

    def _record_path(self, handle: str) -> Path:
        return self._state / f"{handle}.json"

    def _log_path(self, handle: str) -> Path:
        return self._state / f"{handle}.log"

    def _load(self, handle: str) -> dict[str, Any] | None:
        if not _HANDLE.fullmatch(handle):
            return None
        try:
            record = json.loads(self._record_path(handle).read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    async def start(self, spec: SandboxSpec, channel: CallbackChannel) -> str:
        if channel.socket_path is None:
            raise SandboxStartError("the process backend serves Unix-socket channels only")
        handle = f"proc-{secrets.token_hex(8)}"
        workdir = tempfile.mkdtemp(prefix=f"rlm-proc-work-{spec.sandbox_id}-")
        slot = os.path.join(workdir, "slot")
        if spec.late_context:
            os.mkdir(slot)
            root = os.path.join(slot, "context")  # made by attach_context
        else:
            root = spec.context_dir or os.path.join(workdir, "no-context")
        env = {
            **self._base_env(),
            "RLM_SOCKET": channel.socket_path,
            "RLM_TOKEN": spec.token,
            # No context: a path that does not exist, never the host's own /context.
            "RLM_CONTEXT_ROOT": root,
        }
        log_path = self._log_path(handle)
        try:
            with open(log_path, "wb") as log:
                child = subprocess.Popen(
                    [self._python, "-m", "rlm_sandbox"],
                    cwd=workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
        except OSError as exc:
            shutil.rmtree(workdir, ignore_errors=True)
            log_path.unlink(missing_ok=True)
            raise SandboxStartError(f"could not start the sandbox runtime: {exc}") from exc
        self._children[handle] = child
        record = {
            "handle": handle,
            "sandbox_id": spec.sandbox_id,
            "owner": spec.owner,
            "tenant": spec.tenant,
            "pid": child.pid,
            "start_ticks": process_start_ticks(child.pid),
            "workdir": workdir,
            "slot": slot if spec.late_context else None,
        }
        try:
            staging = self._state / f".{handle}.json.tmp"
            staging.write_text(json.dumps(record))
            os.replace(staging, self._record_path(handle))  # readers see the whole record or none
        except BaseException:
            await self._destroy(handle, record)
            raise
        return handle

    async def attach_context(self, handle: str, context_dir: str) -> None:
        record = self._load(handle)
        if not self._late_context or record is None or not record.get("slot"):
            raise NotSupported("late contexts are off for this process backend")
        os.symlink(context_dir, os.path.join(str(record["slot"]), "context"))

    def _signal_group(self, record: dict[str, Any], sig: int) -> None:
        pid = int(record["pid"])
        ticks = process_start_ticks(pid)
        if ticks is not None and ticks != record.get("start_ticks"):
            return  # the pid now names another process: ours is long gone
        # The group outlives its leader while any member lives, and its id is not reused meanwhile.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)

    async def kill(self, handle: str) -> None:
        record = self._load(handle)
        if record is not None:
            self._signal_group(record, signal.SIGKILL)

    async def _wait_pid(self, record: dict[str, Any], timeout_s: float) -> bool:
        """Wait up to timeout_s for the sandbox's process to end (a pidfd: an event, no polling).

        True when it has ended. Works for processes another instance started, too.
        """
        pid = int(record["pid"])
        ticks = process_start_ticks(pid)
        if ticks is None or ticks != record.get("start_ticks"):
            return True
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return True
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()
        try:
            if process_start_ticks(pid) != record.get("start_ticks"):
                return True  # the pid was reused between the check and the open
            loop.add_reader(fd, _settle, ended)
            try:
                await asyncio.wait_for(ended, timeout_s)
            except TimeoutError:
                return False
            finally:
                loop.remove_reader(fd)
            return True
        finally:
            os.close(fd)

    async def wait_exit(self, handle: str, timeout_s: float) -> ContainerExit:
        record = self._load(handle)
        if record is None:
            return ContainerExit(running=False, exit_code=None, oom_killed=False)
        if not await self._wait_pid(record, max(0.0, timeout_s)):
            return ContainerExit(running=True, exit_code=None, oom_killed=False)
        child = self._children.get(handle)
        code = child.poll() if child is not None else None  # another instance's child: its code is its own
        if code is not None and code < 0:
            code = 128 - code  # killed by a signal: as Docker reports it
        return ContainerExit(running=False, exit_code=code, oom_killed=False)

    async def logs_tail(self, handle: str, lines: int = 20) -> str:
        if not _HANDLE.fullmatch(handle):
            return ""
        try:
            with open(self._log_path(handle), "rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                fh.seek(max(0, size - _LOG_TAIL_BYTES))
                data = fh.read()
        except OSError:
            return ""
        text = data.decode("utf-8", "replace")
        return "".join(text.splitlines(keepends=True)[-lines:]) if lines > 0 else ""

    async def remove(self, handle: str) -> None:
        record = self._load(handle)
        if record is not None:
            await self._destroy(handle, record)
            return
        child = self._children.pop(handle, None)
        if child is not None and child.poll() is None:
            # Another instance removed it (and killed its group); our own child is ours to reap. Its pid
            # cannot be reused before that, so signalling it again is safe.
            ours = {"pid": child.pid, "start_ticks": process_start_ticks(child.pid)}
            self._signal_group(ours, signal.SIGKILL)
            await self._wait_pid(ours, _REMOVE_WAIT_S)
            child.poll()

    async def _destroy(self, handle: str, record: dict[str, Any]) -> None:
        self._signal_group(record, signal.SIGKILL)
        await self._wait_pid(record, _REMOVE_WAIT_S)
        child = self._children.pop(handle, None)
        if child is not None:
            child.poll()  # reap it: it has ended
        workdir = record.get("workdir")
        if isinstance(workdir, str) and Path(workdir).name.startswith("rlm-proc-work-"):
            shutil.rmtree(workdir, ignore_errors=True)
        self._log_path(handle).unlink(missing_ok=True)
        self._record_path(handle).unlink(missing_ok=True)  # last: until here a reaper still finds it

    async def list_managed(self) -> list[ManagedSandbox]:
        found = []
        for path in sorted(self._state.glob("proc-*.json")):
            record = self._load(path.stem)
            if record is None:
                continue
            found.append(
                ManagedSandbox(
                    handle=path.stem,
                    sandbox_id=str(record.get("sandbox_id", "")),
                    owner=str(record.get("owner", "")),
                    tenant=str(record.get("tenant", "")),
                )
            )
        return found

    async def aclose(self) -> None:
        """Nothing to release: like a Docker engine, sandboxes outlive the client until removed."""
