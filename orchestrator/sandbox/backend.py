"""The seam between the orchestrator and whatever runs containers: values and the backend protocol."""

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
    """Everything a backend needs to start one sandbox."""

    sandbox_id: str
    image: str
    runtime: Runtime
    limits: SandboxLimits
    context_dir: str | None  # absolute, resolved host path mounted read-only at /context; None: no mount
    socket_dir: str  # absolute host path holding this sandbox's host socket; mounted read-only
    token: str
    owner: str  # see ownership.OwnerId
    uid: int
    seccomp: str = ""  # the seccomp profile's JSON text; never empty for a real sandbox
    tenant: str = "default"


@dataclass(frozen=True, slots=True)
class ContainerExit:
    running: bool
    exit_code: int | None
    oom_killed: bool


@dataclass(frozen=True, slots=True)
class ManagedContainer:
    container_id: str
    labels: dict[str, str]


class SandboxBackend(Protocol):
    async def check(self, image: str, runtime: str) -> None: ...
    async def start(self, spec: SandboxSpec) -> str: ...
    async def kill(self, container_id: str) -> None: ...
    async def wait_exit(self, container_id: str, timeout_s: float) -> ContainerExit: ...
    async def logs_tail(self, container_id: str, lines: int = 20) -> str: ...
    async def remove(self, container_id: str) -> None: ...
    async def list_managed(self) -> list[ManagedContainer]: ...
    async def aclose(self) -> None: ...
