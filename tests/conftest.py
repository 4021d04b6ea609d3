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


# --- PostgreSQL, for the run store's tests -------------------------------------------------------------
# `make setup` (sandbox_image/postgres_setup.sh) starts a cluster with a test role and writes its URL to
# .build/postgres-url; `make test` passes it as RLM_TEST_POSTGRES_URL. Each test gets a fresh schema.

POSTGRES_URL_FILE = Path(__file__).resolve().parent.parent / ".build" / "postgres-url"


def postgres_test_url() -> str:
    """The test PostgreSQL's URL: $RLM_TEST_POSTGRES_URL, else what `make setup` wrote, else ""."""
    url = os.environ.get("RLM_TEST_POSTGRES_URL", "").strip()
    if not url and POSTGRES_URL_FILE.is_file():
        url = POSTGRES_URL_FILE.read_text().strip()
    return url


def _postgres_problem(url: str) -> str | None:
    import psycopg

    if not url:
        return "no RLM_TEST_POSTGRES_URL and no .build/postgres-url (run make setup)"
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL unusable: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}"
    return None


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The test PostgreSQL's URL; fails (never skips) when CI is set and it is not usable."""
    url = postgres_test_url()
    problem = _postgres_problem(url)
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and PostgreSQL tests cannot run: {problem}")
        pytest.skip(f"PostgreSQL unavailable and CI unset: {problem}")
    return url


@pytest.fixture
def postgres_schema_url(postgres_server: str) -> Iterator[str]:
    """A URL whose connections see only a fresh schema (their search_path), dropped after the test."""
    import secrets

    import psycopg
    import sqlalchemy as sa

    schema = f"test_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = sa.make_url(postgres_server).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
