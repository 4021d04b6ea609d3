"""The Node.js client (examples/clients/node) against a live server: `node --test` on its live tests.

The server is `rlm serve`'s own RLMServer on 127.0.0.1 port 0 with one tenant whose key the test makes,
on the process backend and the in-process scripted model (every root reply: first a cell that calls
llm_query and prints, then FINAL; every sub-call answers "pong"). `make setup` installs Node.js and the
package's dependencies (`make node`); when CI is set and they are missing this test fails, elsewhere it
skips saying what to run.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.config import RLMConfig, SandboxConfig, SandboxLimits
from orchestrator.server.app import RLMServer
from orchestrator.server.tenants import Tenant, TenantQuotas, key_digest, new_api_key
from orchestrator.settings import ServerSettings, Settings, StorageSettings

from .fake_llm import Seen, repl
from .fakes.llm import ScriptedProvider
from .fakes.process_backend import ProcessBackend

PACKAGE = Path(__file__).resolve().parent.parent / "examples" / "clients" / "node"
LIVE_TESTS = 7  # the test() calls in test/live.test.js
NODE_MIN = 18


def _node_problem() -> str | None:
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        return "node or npm is not on the PATH (make node installs them)"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
    major = re.match(r"v(\d+)\.", version)
    if not major or int(major.group(1)) < NODE_MIN:
        return f"node {version.strip()!r} is older than {NODE_MIN} (make node installs Debian's)"
    for dependency in ("@grpc/grpc-js", "@grpc/proto-loader"):
        if not (PACKAGE / "node_modules" / dependency / "package.json").is_file():
            return f"{dependency} is not installed in {PACKAGE} (make node runs npm ci there)"
    return None


@pytest.fixture
def node() -> str:
    problem = _node_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and the Node client cannot be tested: {problem}")
        pytest.skip(f"Node client not testable here and CI unset: {problem}")
    return shutil.which("node") or "node"


def _script(seen: Seen, index: int) -> str:
    if not seen.system:  # a sub-call
        return "pong"
    if not any(m["role"] == "assistant" for m in seen.body["messages"]):
        return repl("said = llm_query('ping')\nprint(said)", "Let me ask.")
    return "FINAL(the model said pong)"


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[tuple[RLMServer, str, ProcessBackend]]:
    key = new_api_key()
    settings = Settings(
        sandbox=SandboxConfig(limits=SandboxLimits(memory_bytes=512 * 1024**2, cell_timeout_s=60)),
        run=RLMConfig(root_model="root-m", sub_model="sub-m", max_iterations=5),
        storage=StorageSettings(data_dir=str(tmp_path / "data")),
        server=ServerSettings(),
        tenants=(Tenant("node", (key_digest(key),), TenantQuotas(calls_per_s=1000, burst=1000)),),
    )
    backend = ProcessBackend(state_dir=tmp_path / "state")
    server = RLMServer(settings, listen="127.0.0.1:0", backend=backend, provider=ScriptedProvider(_script))
    await server.start()
    try:
        yield server, key, backend
    finally:
        await server.stop(grace_s=1)


async def test_the_node_client_passes_its_live_tests(
    node: str, live: tuple[RLMServer, str, ProcessBackend]
) -> None:
    """Execute, ExecuteStream, a session, RunStream, Run/GetRun/ListRuns, UploadContext and refusals, from
    Node: every live test passes (none skipped), and the client left no session or sandbox behind."""
    server, key, backend = live
    env = {**os.environ, "RLM_ADDRESS": f"127.0.0.1:{server.port}", "RLM_KEY": key}
    env.pop("NODE_OPTIONS", None)
    done = await asyncio.to_thread(
        subprocess.run,
        [node, "--test", "--test-reporter=tap", "test/live.test.js"],
        cwd=PACKAGE, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    report = done.stdout + done.stderr
    counts = {
        k: int(v) for k, v in re.findall(r"^# (tests|pass|fail|skipped|todo|cancelled) (\d+)$", report, re.M)
    }
    assert done.returncode == 0, report
    assert counts.get("tests") == LIVE_TESTS, report
    assert counts.get("pass") == LIVE_TESTS, report
    assert counts.get("fail") == counts.get("skipped") == counts.get("cancelled") == 0, report
    assert await backend.list_managed() == []
