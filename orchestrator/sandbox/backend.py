"""The seam between the orchestrator and whatever runs sandboxes: values and the backend protocol.

A backend knows how to make the place a sandbox's callbacks arrive (a `CallbackChannel`), start a
sandbox that dials it, watch it, and remove it; and how to list every sandbox it manages with its owner,
so the manager's reaper (pure logic in `ownership`) can remove the orphans. Everything specific to one
engine lives behind it: for Docker, our seccomp profile, runsc's pids floor, the host checks, socket
directories and bind mounts (`docker_backend`). The manager never sees a container argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..config import Runtime, SandboxLimits

LABEL_MANAGED = "io.rlm.managed"
LABEL_OWNER = "io.rlm.owner"
LABEL_SANDBOX = "io.rlm.sandbox"
LABEL_TENANT = "io.rlm.tenant"


@dataclass(frozen=True, slots=True)
class SandboxSpec:
    """Everything a backend needs to start one sandbox, whatever the engine."""

    sandbox_id: str
    image: str
    runtime: Runtime
    limits: SandboxLimits
    context_dir: str | None  # absolute, resolved host path shown read-only at /context; None: no mount
    token: str
    owner: str  # see ownership.OwnerId
    tenant: str = "default"
    # Started without a context, to be given one later by attach_context (a warm pool's sandbox):
    # the backend prepares what that needs (Docker: an empty slot under a shared mount). Never set
    # together with context_dir.
    late_context: bool = False

    def __post_init__(self) -> None:
        if self.late_context and self.context_dir is not None:
            raise ValueError("a sandbox spec has either a context_dir or late_context, not both")


class NotSupported(Exception):
    """This backend cannot do that here (e.g. attach a context to a running sandbox): the caller falls
    back (for a context: serve it over the socket)."""


@dataclass(frozen=True, slots=True)
class CallbackChannel:
    """Where the host serves one sandbox's callbacks (rlm.v1.SandboxHost), and who may connect."""

    sandbox_id: str
    address: str  # a gRPC server address, e.g. "unix:/tmp/rlm-sbx-1a2b-x/host.sock"
    socket_path: str | None = None  # the Unix socket on the host, when the address is one
    peer_uid: int | None = None  # the only user that may connect to that socket (None: token only)


@dataclass(frozen=True, slots=True)
class ContainerExit:
    running: bool
    exit_code: int | None
    oom_killed: bool


@dataclass(frozen=True, slots=True)
class ManagedSandbox:
    """One sandbox the backend manages, as the reaper sees it."""

    handle: str  # the backend's own id (a container id, a pid, a pod name)
    sandbox_id: str
    owner: str
    tenant: str


class SandboxBackend(Protocol):
    """What the manager needs from an engine. Every method is safe to call concurrently."""

    async def check(self, image: str, runtime: Runtime) -> None:
        """Fail early, with the fix named, when the engine, the image or the runtime cannot serve."""
        ...

    def validate(self, runtime: Runtime, limits: SandboxLimits) -> None:
        """Refuse (InvalidInputError) limits this engine cannot honour under this runtime (called after
        check() for that runtime)."""
        ...

    async def open_channel(self, sandbox_id: str) -> CallbackChannel:
        """Make the place this sandbox's callbacks will arrive; the host listens there before start()."""
        ...

    async def close_channel(self, channel: CallbackChannel) -> None:
        """Remove what open_channel and start made for this sandbox (an attached context too).
        Idempotent."""
        ...

    async def start(self, spec: SandboxSpec, channel: CallbackChannel) -> str:
        """Start the sandbox; its runtime dials `channel`. Returns the handle. Nothing is left on failure."""
        ...

    async def attach_context(self, handle: str, context_dir: str) -> None:
        """Show `context_dir` read-only at /context in a running sandbox started with late_context.

        Raises NotSupported when it cannot here (the caller serves the context over the socket);
        any other failure is an error. Undone by close_channel."""
        ...

    async def kill(self, handle: str) -> None: ...

    async def wait_exit(self, handle: str, timeout_s: float) -> ContainerExit:
        """Wait up to `timeout_s` for the sandbox to stop, then say whether it runs and why it stopped."""
        ...

    async def logs_tail(self, handle: str, lines: int = 20) -> str: ...

    async def remove(self, handle: str) -> None:
        """Kill and remove the sandbox. Idempotent: an unknown or removed handle is no error."""
        ...

    async def list_managed(self) -> list[ManagedSandbox]:
        """Every sandbox this engine holds for any orchestrator, with its owner (for the reaper)."""
        ...

    async def remove_stale_channels(self, claimed: set[str]) -> int:
        """Remove channels left by crashed owners whose sandbox id is not in `claimed`."""
        ...

    async def aclose(self) -> None: ...
