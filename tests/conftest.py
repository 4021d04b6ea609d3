"""Shared fixtures. Docker tests run against the real engine; in CI a missing engine fails the run."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from orchestrator import SandboxLimits
from orchestrator.config import DEFAULT_IMAGE
from orchestrator.sandbox import SandboxManager, SandboxSession
from orchestrator.sandbox.backend import LABEL_MANAGED, LABEL_OWNER

RUNTIMES = ["runc", "runsc"]


def _engine_problem() -> str | None:
    try:
        client = docker.from_env(timeout=10)
        client.ping()
        client.images.get(DEFAULT_IMAGE)
        runtimes = client.info().get("Runtimes") or {}
    except docker.errors.ImageNotFound:
        return f"image {DEFAULT_IMAGE} is not built (run make setup)"
    except Exception as exc:
        return f"Docker engine unreachable: {exc}"
    missing = [r for r in RUNTIMES if r not in runtimes]
    return f"runtimes not registered: {missing}" if missing else None


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """The real engine; fails (never skips) when CI is set and it is not usable."""
    problem = _engine_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and Docker tests cannot run: {problem}")
        pytest.skip(f"Docker unavailable and CI unset: {problem}")
    client = docker.from_env(timeout=60)
    yield client
    mine = f"/{os.getpid()}/"  # owners are host/pid/start/instance: only this test process's sandboxes
    leftovers = [
        c
        for c in client.containers.list(all=True, filters={"label": f"{LABEL_MANAGED}=1"})
        if mine in c.labels.get(LABEL_OWNER, "")
    ]
    names = [c.name for c in leftovers]
    for container in leftovers:
        container.remove(force=True)
    assert not names, f"sandbox containers outlived the suite: {names}"


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def context_dir(tmp_path: Path) -> Path:
    root = tmp_path / "context"
    (root / "sub").mkdir(parents=True)
    (root / "hello.txt").write_text("hello from the context\n")
    (root / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return root


@pytest.fixture
async def manager(docker_client: docker.DockerClient) -> AsyncIterator[SandboxManager]:
    async with SandboxManager() as mgr:
        yield mgr


@pytest.fixture
async def session(manager: SandboxManager, context_dir: Path, runtime: str) -> AsyncIterator[SandboxSession]:
    async with manager.open(context_dir, runtime=runtime, limits=SandboxLimits(cell_timeout_s=30)) as s:
        yield s
