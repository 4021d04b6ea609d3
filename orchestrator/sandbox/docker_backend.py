"""The Docker adapter: the only module that imports `docker`.

The docker SDK is blocking and untyped; this adapter gives the orchestrator a typed, time-bounded edge.
Every call runs in a worker thread under a deadline, and docker's exceptions are translated here.
`container_kwargs` is the security boundary: a pure function from a SandboxSpec to the arguments of
`containers.create`, pinned by tests without a daemon.

Docker-specific policy lives here and nowhere else: our seccomp profile (read and verified once; no
profile, no sandbox), runsc's pids floor, the host checks, the per-sandbox socket directory that is
bind-mounted read-only at /rlm as the sandbox's callback channel, and the late context of a warm-pool
sandbox: an empty slot directory (beneath `mount_root`/slots, a shared mount) bind-mounted read-only at
/rlm-ctx with propagation rslave, whose `context` subdirectory (where the image's /context symlink
leads) gets the context at hand-out (`attach_context`, see linux_mounts). The context is a directory
inside the slot, not the slot itself, because gVisor's gofer serves a mount's root from the directory it
opened at start: a mount made there later is never seen, while one beneath it is (measured with runsc
here; runc sees both).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions
from docker.types import LogConfig, Mount, Ulimit

from ..config import Runtime, SandboxConfig, SandboxLimits
from ..errors import EngineUnavailableError, InvalidInputError, SandboxStartError
from ..security import seccomp
from ..security.host_check import HostFacts, evaluate
from . import linux_mounts
from .backend import (
    LABEL_MANAGED,
    LABEL_OWNER,
    LABEL_SANDBOX,
    LABEL_TENANT,
    CallbackChannel,
    ContainerExit,
    ManagedSandbox,
    NotSupported,
    SandboxSpec,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

CONTEXT_MOUNT = "/context"  # a symlink in the image to /rlm-ctx/context: the runtimes mount there
SLOT_MOUNT = "/rlm-ctx"  # a late-context sandbox's slot
SLOT_CONTEXT = "context"  # the slot's subdirectory the context is attached to
SOCKET_MOUNT = "/rlm"
SOCKET_NAME = "host.sock"
SOCKET_DIR_PREFIX = "rlm-sbx-"
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes, the last a NUL
DEFAULT_ENGINE_URL = "unix:///var/run/docker.sock"
# Measured here: under runsc a pids limit of 32 stops the container starting (the Sentry's threads are in
# the container's cgroup) and 64 stops our runtime connecting (gRPC's threads); 80 works. 96 keeps a margin.
RUNSC_MIN_PIDS = 96
WAIT_SLICE_S = 2.0  # wait_exit asks the engine in slices of this much (see there)


def container_kwargs(
    spec: SandboxSpec, *, socket_dir: str, seccomp: str, uid: int, slot_dir: str | None = None
) -> dict[str, Any]:
    """Arguments for `containers.create`: every sandbox is built from exactly these.

    `socket_dir` holds the sandbox's host socket (mounted read-only at /rlm), `seccomp` is our
    profile's JSON text, `uid` the unprivileged user the code runs as. `slot_dir` (a late-context
    sandbox's empty slot, under a shared mount) is mounted read-only at /rlm-ctx with propagation
    rslave, so that a read-only mount made later beneath it on the host appears inside; never with a
    context_dir.
    """
    if not seccomp.strip().startswith("{"):
        raise SandboxStartError("refusing to start a sandbox without our seccomp profile")
    if slot_dir is not None and spec.context_dir is not None:
        raise SandboxStartError("a sandbox gets its context mounted at start or a slot for it, not both")
    limits = spec.limits
    if spec.context_dir is not None:
        context = [Mount(target=CONTEXT_MOUNT, source=spec.context_dir, type="bind", read_only=True)]
    elif slot_dir is not None:
        context = [
            Mount(target=SLOT_MOUNT, source=slot_dir, type="bind", read_only=True, propagation="rslave")
        ]
    else:
        context = []
    return {
        "image": spec.image,
        "command": ["python3", "-m", "rlm_sandbox"],
        "name": f"rlm-sbx-{spec.sandbox_id}",
        "hostname": "sandbox",
        "user": f"{uid}:{uid}",
        "working_dir": "/tmp",
        # The environment is built here from nothing: the orchestrator's own is never passed on.
        "environment": {"RLM_SOCKET": f"{SOCKET_MOUNT}/{SOCKET_NAME}", "RLM_TOKEN": spec.token},
        "labels": {
            LABEL_MANAGED: "1",
            LABEL_OWNER: spec.owner,
            LABEL_SANDBOX: spec.sandbox_id,
            LABEL_TENANT: spec.tenant,
        },
        "runtime": spec.runtime.value,
        "network_mode": "none",
        "read_only": True,
        "mounts": [*context, Mount(target=SOCKET_MOUNT, source=socket_dir, type="bind", read_only=True)],
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,noexec,size={limits.tmpfs_bytes},mode=1777"},
        "shm_size": 16 * 1024**2,
        "ipc_mode": "private",
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true", f"seccomp={seccomp}"],
        "init": True,  # reaps zombies and forwards signals
        "pids_limit": limits.pids,
        "mem_limit": limits.memory_bytes,
        "memswap_limit": limits.memory_bytes,  # equal to memory: no swap on top
        "nano_cpus": int(limits.cpus * 1e9),
        "oom_score_adj": 500,  # under host memory pressure, a sandbox goes before the host's services
        "ulimits": [
            Ulimit(name="nofile", soft=limits.nofile, hard=limits.nofile),
            Ulimit(name="core", soft=0, hard=0),
            Ulimit(name="fsize", soft=limits.file_size_bytes, hard=limits.file_size_bytes),
        ],
        # Output reaches the host through the runtime, capped; the container's own log is only for
        # diagnosing a runtime that failed to start, and is capped too.
        "log_config": LogConfig(type="json-file", config={"max-size": "1m", "max-file": "1"}),
        "stdin_open": False,
        "tty": False,
    }


class DockerBackend:
    """Sandbox backend on a Docker engine (runc or runsc)."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        seccomp_profile: str,
        socket_root: str | None = None,
        sandbox_uid: int = 10001,
        allow_weak_host: bool = False,
        call_timeout_s: float = 60.0,
        mount_root: str = "",
    ) -> None:
        self._base_url = base_url or DEFAULT_ENGINE_URL
        # Late contexts: slots/ (shared) and staging/ (private) beneath mount_root; "": none.
        self._mount_root = mount_root
        self._late_ready: bool | None = None  # prepared once, on the first late-context start
        self._late_lock = threading.Lock()
        self._slots: dict[str, str] = {}  # handle -> the slot directory of a late-context sandbox
        self._mounts: ThreadPoolExecutor | None = None  # attach_context's thread, made on first use
        self._seccomp_path = seccomp_profile
        self._socket_root = socket_root or tempfile.gettempdir()
        self._uid = sandbox_uid
        self._allow_weak_host = allow_weak_host
        self._call_timeout_s = call_timeout_s
        self._seccomp: str | None = None
        self._ncpu: int | None = None  # the engine's machine, read by check()
        self._mem_total: int | None = None
        self._client: docker.DockerClient | None = None  # made on first use: no I/O in __init__
        # `wait` calls block for as long as a container lives: their own threads, off the shared pool.
        self._waits: ThreadPoolExecutor | None = None

    @classmethod
    def from_config(cls, config: SandboxConfig) -> DockerBackend:
        return cls(
            getattr(config, "docker_url", None),
            seccomp_profile=config.seccomp_profile,
            socket_root=config.socket_root,
            sandbox_uid=config.sandbox_uid,
            allow_weak_host=config.allow_weak_host,
            mount_root=config.mount_root,
        )

    def _docker(self) -> docker.DockerClient:
        if self._client is None:
            try:
                self._client = docker.DockerClient(base_url=self._base_url, timeout=self._call_timeout_s)
            except docker.errors.DockerException as exc:
                raise EngineUnavailableError(_engine_message(exc, self._base_url)) from exc
        return self._client

    async def _run(
        self,
        fn: Callable[..., T],
        *args: Any,
        timeout_s: float | None = None,
        executor: ThreadPoolExecutor | None = None,
        **kw: Any,
    ) -> T:
        """Run a blocking SDK call in a thread under a deadline; engine failures leave as our errors."""
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(executor, partial(fn, *args, **kw)), timeout_s or self._call_timeout_s
            )
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            # What the call did not translate itself: the engine went away or answered nonsense.
            raise EngineUnavailableError(_engine_message(exc, self._base_url)) from exc
        except TimeoutError as exc:
            raise EngineUnavailableError(
                f"the Docker engine did not answer within {timeout_s or self._call_timeout_s:.0f} s"
            ) from exc

    async def check(self, image: str, runtime: Runtime) -> None:
        """Fail early, with a clear message, when the engine, the image, the runtime, the seccomp profile
        is missing, or the host is too weak to run sandboxes on (see security.host_check)."""
        await asyncio.to_thread(self._seccomp_profile)
        await self._check_engine(image, runtime.value)

    def validate(self, runtime: Runtime, limits: SandboxLimits) -> None:
        """Refuse what this engine cannot give, naming the machine's limit (known once checked)."""
        if self._ncpu is not None and limits.cpus > self._ncpu:
            raise InvalidInputError(
                f"cpus {limits.cpus:g} is more than this machine's {self._ncpu} CPUs (ask for at most that)"
            )
        if self._mem_total is not None and limits.memory_bytes > self._mem_total:
            raise InvalidInputError(
                f"memory {limits.memory_bytes:,} bytes is more than this machine's {self._mem_total:,}"
            )
        if runtime is Runtime.RUNSC and limits.pids < RUNSC_MIN_PIDS:
            raise InvalidInputError(
                f"runsc needs a pids limit of at least {RUNSC_MIN_PIDS} "
                f"(got {limits.pids}): gVisor's own threads count against it"
            )

    def _seccomp_profile(self) -> str:
        """Our hardened profile's text, read once. Missing or unreadable: no sandbox starts."""
        if self._seccomp is None:
            path = self._seccomp_path
            try:
                with open(path) as fh:
                    text = fh.read()
                seccomp.verify(json.loads(text))  # a stale or tampered profile is no profile
            except (OSError, ValueError) as exc:
                raise EngineUnavailableError(
                    f"no usable seccomp profile at {path} ({exc}): run `make setup`, "
                    "or point sandbox.seccomp_profile in the settings at one"
                ) from exc
            self._seccomp = text
        return self._seccomp

    async def open_channel(self, sandbox_id: str) -> CallbackChannel:
        """A directory of this sandbox's own, holding only its host socket, mounted read-only at /rlm."""
        path = tempfile.mkdtemp(prefix=f"{SOCKET_DIR_PREFIX}{sandbox_id}-", dir=self._socket_root)
        socket_path = os.path.join(path, SOCKET_NAME)
        if len(os.fsencode(socket_path)) > MAX_SOCKET_PATH:
            os.rmdir(path)
            raise EngineUnavailableError(
                f"a sandbox socket under {self._socket_root} would be {len(os.fsencode(socket_path))} "
                f"bytes long, over the {MAX_SOCKET_PATH} a Unix socket path may have: "
                "set sandbox.socket_root to a shorter directory"
            )
        os.chmod(path, 0o711)  # the sandbox user may reach the socket, not list the directory
        return CallbackChannel(sandbox_id, f"unix:{socket_path}", socket_path, self._uid)

    async def close_channel(self, channel: CallbackChannel) -> None:
        if channel.socket_path is not None:
            shutil.rmtree(os.path.dirname(channel.socket_path), ignore_errors=True)
        slot = os.path.join(self._slots_dir(), channel.sandbox_id)
        handles = [h for h, path in self._slots.items() if path == slot]
        if handles:  # a slot this backend made (others' are swept by remove_stale_channels)
            for handle in handles:
                del self._slots[handle]
            await asyncio.to_thread(_remove_slot, slot)

    async def remove_stale_channels(self, claimed: set[str]) -> int:
        removed = await asyncio.to_thread(_remove_stale_socket_dirs, self._socket_root, claimed)
        if self._mount_root:
            removed += await asyncio.to_thread(_remove_stale_slots, self._slots_dir(), claimed)
        return removed

    # -- late contexts ------------------------------------------------------------------------------

    def _slots_dir(self) -> str:
        return os.path.join(self._mount_root, "slots")

    def _staging_dir(self) -> str:
        return os.path.join(self._mount_root, "staging")

    def _prepare_late(self) -> bool:
        """slots/ a shared mount, staging/ a private one: once per backend (and per host, under a lock
        file, since other processes share them). False, said once, when this host cannot."""
        with self._late_lock:
            if self._late_ready is None:
                try:
                    os.makedirs(self._mount_root, mode=0o711, exist_ok=True)
                    with open(os.path.join(self._mount_root, ".lock"), "a") as lock:
                        fcntl.flock(lock, fcntl.LOCK_EX)
                        linux_mounts.prepare_roots(self._slots_dir(), self._staging_dir())
                    self._late_ready = True
                except OSError as exc:
                    log.warning(
                        "late contexts are off (warm-pool sandboxes get theirs over the socket): "
                        "cannot prepare %s: %s",
                        self._mount_root,
                        exc,
                    )
                    self._late_ready = False
            return self._late_ready

    def _make_slot(self, sandbox_id: str) -> str | None:
        if not self._mount_root or not self._prepare_late():
            return None
        slot = os.path.join(self._slots_dir(), sandbox_id)
        try:
            os.mkdir(slot, 0o755)  # the sandbox user may traverse it; it holds only the empty mount point
            os.mkdir(os.path.join(slot, SLOT_CONTEXT), 0o755)
            os.chmod(slot, 0o755)
            os.chmod(os.path.join(slot, SLOT_CONTEXT), 0o755)
            os.mkdir(os.path.join(self._staging_dir(), sandbox_id), 0o700)  # where attach binds first
        except OSError as exc:
            log.warning(
                "no context slot for sandbox %s (its context will be served over the socket): %s",
                sandbox_id,
                exc,
            )
            _remove_slot(slot)
            return None
        return slot

    async def attach_context(self, handle: str, context_dir: str) -> None:
        """Bind the context read-only at the sandbox's slot: bound in private staging, made read-only,
        then moved into the slot, from where it propagates (already read-only) to /context inside."""
        slot = self._slots.get(handle)
        if slot is None:
            raise NotSupported("this sandbox has no context slot (late contexts are off here)")
        target = os.path.join(slot, SLOT_CONTEXT)
        work = os.path.join(self._staging_dir(), os.path.basename(slot))
        if self._mounts is None:  # mount(2) calls take the kernel's one namespace lock: one thread
            self._mounts = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rlm-mount")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._mounts, linux_mounts.attach_read_only, context_dir, work, target)
        except OSError as exc:
            log.warning("could not attach a context to sandbox %s, serving it over the socket: %s", slot, exc)
            raise NotSupported(f"could not attach the context: {exc}") from exc

    async def _check_engine(self, image: str, runtime: str) -> None:

        def probe() -> dict[str, Any]:
            client = self._docker()
            try:
                info = client.info()
                client.images.get(image)
            except docker.errors.ImageNotFound as exc:
                raise EngineUnavailableError(
                    f"sandbox image {image!r} is not built: run `make setup`"
                ) from exc
            except docker.errors.DockerException as exc:
                raise EngineUnavailableError(_engine_message(exc, self._base_url)) from exc
            return dict(info)

        info = await self._run(probe)
        self._ncpu = int(info.get("NCPU") or 0) or None
        self._mem_total = int(info.get("MemTotal") or 0) or None
        if runtime not in (info.get("Runtimes") or {}):
            raise InvalidInputError(f"runtime {runtime!r} is not registered with dockerd: run `make setup`")
        facts = await self._run(self._host_facts, info)
        problems = evaluate(facts, runtime)
        if problems and not self._allow_weak_host:
            raise EngineUnavailableError(
                "refusing to run sandboxes on this host: "
                + "; ".join(problems)
                + " (an operator may override with allow_weak_host, at their own risk)"
            )
        for problem in problems:
            log.warning("INSECURE HOST, running anyway because allow_weak_host is set: %s", problem)

    def _host_facts(self, info: dict[str, Any]) -> HostFacts:
        version = self._docker().version()
        components = {c.get("Name"): c for c in version.get("Components") or []}
        runc = components.get("runc") or {}
        runsc = (info.get("Runtimes") or {}).get("runsc")
        runsc_version = None
        local = str(self._docker().api.base_url).startswith("http+docker://")  # a Unix socket: this host
        if runsc and local and os.path.isfile(runsc.get("path", "")):  # ask the binary itself
            try:
                done = subprocess.run(
                    [runsc["path"], "--version"], capture_output=True, text=True, timeout=10
                )
                runsc_version = done.stdout.splitlines()[0] if done.stdout else None
            except (OSError, subprocess.TimeoutExpired):
                runsc_version = None
        return HostFacts(
            docker_version=str(version.get("Version", "")),
            runc_version=runc.get("Version"),
            runc_commit=(runc.get("Details") or {}).get("GitCommit"),
            runsc_version=runsc_version,
            runsc_args=tuple(runsc.get("runtimeArgs") or ()) if runsc else None,
        )

    async def start(self, spec: SandboxSpec, channel: CallbackChannel) -> str:
        if channel.socket_path is None:
            raise SandboxStartError("a Docker sandbox needs a Unix socket channel")
        slot = await asyncio.to_thread(self._make_slot, spec.sandbox_id) if spec.late_context else None
        try:
            kwargs = container_kwargs(
                spec,
                socket_dir=os.path.dirname(channel.socket_path),
                seccomp=await asyncio.to_thread(self._seccomp_profile),
                uid=self._uid,
                slot_dir=slot,
            )
        except BaseException:
            if slot is not None:
                await asyncio.to_thread(_remove_slot, slot)
            raise

        def create_and_start() -> str:
            client = self._docker()
            try:
                container = client.containers.create(**kwargs)
            except docker.errors.ImageNotFound as exc:
                raise EngineUnavailableError(
                    f"sandbox image {spec.image!r} is not built: run `make setup`"
                ) from exc
            except docker.errors.DockerException as exc:
                raise SandboxStartError(f"could not create the sandbox: {_short(exc)}") from exc
            try:
                container.start()
            except docker.errors.DockerException as exc:
                _remove_quietly(client, container.id)
                raise SandboxStartError(f"could not start the sandbox: {_short(exc)}") from exc
            return str(container.id)

        try:
            handle = await self._run(create_and_start)
        except BaseException:
            if slot is not None:
                await asyncio.to_thread(_remove_slot, slot)
            raise
        if slot is not None:
            self._slots[handle] = slot
        return handle

    async def kill(self, container_id: str) -> None:
        def kill() -> None:
            try:
                self._docker().api.kill(container_id)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if "is not running" not in str(exc):
                    raise EngineUnavailableError(f"could not kill a sandbox: {_short(exc)}") from exc

        await self._run(kill)

    async def wait_exit(self, container_id: str, timeout_s: float) -> ContainerExit:
        """Wait for the container to stop, then read why it stopped.

        The engine is asked in slices of at most WAIT_SLICE_S, so that a wait given up (a start's wait
        once its runtime said hello, cancelled) frees its thread within a slice rather than holding it
        for the whole timeout: a warm pool starts many sandboxes at once, and each start waits so.
        """
        given_up = threading.Event()

        def wait() -> ContainerExit:
            api = self._docker().api
            deadline = time.monotonic() + timeout_s
            while True:
                left = deadline - time.monotonic()
                try:
                    api.wait(container_id, timeout=max(0.05, min(WAIT_SLICE_S, left)))
                    break
                except docker.errors.NotFound:
                    return ContainerExit(running=False, exit_code=None, oom_killed=False)
                except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
                    if "timed out" not in str(exc).lower():
                        raise
                    if given_up.is_set() or left <= WAIT_SLICE_S:
                        break  # still running when the wait ran out: read its state below
            try:
                state = api.inspect_container(container_id)["State"]
            except docker.errors.NotFound:
                return ContainerExit(running=False, exit_code=None, oom_killed=False)
            return ContainerExit(
                running=bool(state.get("Running")),
                exit_code=state.get("ExitCode"),
                oom_killed=bool(state.get("OOMKilled")),
            )

        if self._waits is None:
            self._waits = ThreadPoolExecutor(max_workers=32, thread_name_prefix="docker-wait")
        try:
            return await self._run(wait, timeout_s=timeout_s + self._call_timeout_s, executor=self._waits)
        finally:
            given_up.set()  # returned, or cancelled: the thread stops after its slice

    async def logs_tail(self, container_id: str, lines: int = 20) -> str:
        def tail() -> str:
            try:
                raw = self._docker().api.logs(container_id, tail=lines)
            except docker.errors.DockerException:
                return ""
            return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)

        return await self._run(tail)

    async def remove(self, container_id: str) -> None:
        def remove() -> None:
            client = self._docker()
            try:
                client.api.remove_container(container_id, force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if "already in progress" not in str(exc):
                    raise EngineUnavailableError(f"could not remove a sandbox: {_short(exc)}") from exc

        await self._run(remove)

    async def list_managed(self) -> list[ManagedSandbox]:
        def listing() -> list[ManagedSandbox]:
            try:
                found = self._docker().api.containers(all=True, filters={"label": f"{LABEL_MANAGED}=1"})
            except docker.errors.DockerException as exc:
                raise EngineUnavailableError(_engine_message(exc, self._base_url)) from exc
            return [_managed(c) for c in found]

        return await self._run(listing)

    async def aclose(self) -> None:
        if self._mounts is not None:
            self._mounts.shutdown(wait=True)
            self._mounts = None
        if self._waits is not None:
            self._waits.shutdown(wait=False, cancel_futures=True)
            self._waits = None
        if self._client is not None:
            client, self._client = self._client, None
            await asyncio.to_thread(client.close)


def _managed(container: dict[str, Any]) -> ManagedSandbox:
    labels = container.get("Labels") or {}
    return ManagedSandbox(
        handle=str(container["Id"]),
        sandbox_id=str(labels.get(LABEL_SANDBOX, "")),
        owner=str(labels.get(LABEL_OWNER, "")),
        tenant=str(labels.get(LABEL_TENANT, "")),
    )


def _remove_stale_socket_dirs(root: str, claimed: set[str], min_age_s: float = 600.0) -> int:
    """Remove socket directories of sandboxes no container claims, once older than any start can take."""
    now = time.time()
    removed = 0
    try:
        entries = list(os.scandir(root))
    except OSError:
        return 0
    for entry in entries:
        if not entry.name.startswith(SOCKET_DIR_PREFIX) or not entry.is_dir(follow_symlinks=False):
            continue
        sandbox_id = entry.name[len(SOCKET_DIR_PREFIX) :].split("-", 1)[0]
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > min_age_s
        except OSError:
            continue
        if sandbox_id not in claimed and old:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += 1
    return removed


def _remove_slot(slot: str) -> None:
    """Detach a slot's context (if one was attached) and remove the slot and its staging directory."""
    target = os.path.join(slot, SLOT_CONTEXT)
    work = os.path.join(os.path.dirname(os.path.dirname(slot)), "staging", os.path.basename(slot))
    try:
        linux_mounts.detach(target)
        linux_mounts.detach(work)  # only if an attach failed between its bind and its move
    except OSError as exc:
        log.warning("could not detach the context at %s: %s", target, exc)
        return  # never remove a directory that may still show a context
    for path in (work, target, slot):
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("could not remove the context slot %s: %s", path, exc)
            return


def _remove_stale_slots(root: str, claimed: set[str], min_age_s: float = 600.0) -> int:
    """Remove slots of sandboxes no container claims: an attached one after a minute (a context is
    attached only after its sandbox started, so an unclaimed one's sandbox is gone), an empty one once
    older than any start can take."""
    now = time.time()
    removed = 0
    try:
        entries = list(os.scandir(root))
        with open("/proc/self/mountinfo") as fh:
            mounted = {m.mount_point for m in linux_mounts.parse_mountinfo(fh.read())}
    except OSError:
        return 0
    for entry in entries:
        if entry.name in claimed or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        attached = os.path.join(entry.path, SLOT_CONTEXT) in mounted
        if age > (60.0 if attached else min_age_s):
            _remove_slot(entry.path)
            removed += 1
    staging = os.path.join(os.path.dirname(root), "staging")
    try:
        works = list(os.scandir(staging))
    except OSError:
        works = []
    for entry in works:  # a staging directory whose slot is gone (a crash between the two mkdirs)
        if entry.name not in claimed and not os.path.exists(os.path.join(root, entry.name)):
            try:
                if now - entry.stat(follow_symlinks=False).st_mtime > min_age_s:
                    linux_mounts.detach(entry.path)
                    os.rmdir(entry.path)
            except OSError:
                continue
    return removed


def _remove_quietly(client: docker.DockerClient, container_id: str) -> None:
    try:
        client.api.remove_container(container_id, force=True)
    except docker.errors.DockerException:
        pass


def _short(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    text = explanation if isinstance(explanation, str) and explanation else str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _engine_message(exc: BaseException, url: str = "") -> str:
    where = f" at {url}" if url else ""
    return (
        f"the Docker engine{where} is not reachable ({_short(exc)}): is dockerd running? `make setup` starts "
        "it; another engine is chosen with DOCKER_HOST or sandbox.docker_url"
    )
