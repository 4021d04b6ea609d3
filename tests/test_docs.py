"""Docs that tests keep honest: every RPC and every setting is documented."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

import pytest
from rlm_proto.v1 import sandbox_pb2

from orchestrator.config import ContextLimits, LLMEndpoint, RLMConfig, SandboxConfig, SandboxLimits

DOCS = Path(__file__).resolve().parent.parent / "docs"
PROTO = Path(__file__).resolve().parent.parent / "proto"


def _services() -> list[Any]:
    """Every service of every .proto under proto/, from the generated modules (which a test keeps fresh)."""
    found = []
    for path in sorted((PROTO / "rlm").rglob("*.proto")):
        module = importlib.import_module(
            "rlm_proto." + ".".join(path.relative_to(PROTO / "rlm").with_suffix("").parts) + "_pb2"
        )
        found.extend(module.DESCRIPTOR.services_by_name.values())
    return found


def test_every_rpc_is_documented() -> None:
    """Each method of each service in proto/ (SandboxHost, RLMService, ...) has a row in docs/api.md."""
    text = (DOCS / "api.md").read_text()
    services = _services()
    assert {s.full_name for s in services} >= {"rlm.v1.SandboxHost", "rlm.v1.RLMService"}
    missing = [f"{s.name}.{m.name}" for s in services for m in s.methods if f"| `{m.name}` |" not in text]
    assert not missing, missing
    assert sandbox_pb2.DESCRIPTOR.services_by_name["SandboxHost"].methods  # the sandbox wire is there too


@pytest.mark.parametrize("settings", [SandboxConfig, SandboxLimits, ContextLimits, RLMConfig, LLMEndpoint])
def test_every_setting_is_documented(settings: type) -> None:
    """Each field of each settings dataclass has a row in docs/operations.md."""
    text = (DOCS / "operations.md").read_text()
    missing = [f.name for f in dataclasses.fields(settings) if f"| `{f.name}` |" not in text]
    assert not missing, (settings.__name__, missing)
