"""Docs that tests keep honest: every RPC and every setting is documented."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from rlm_proto.v1 import sandbox_pb2

from orchestrator.config import ContextLimits, LLMEndpoint, RLMConfig, SandboxConfig, SandboxLimits

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_rpc_is_documented() -> None:
    """Each method of SandboxHost has a row in docs/api.md."""
    text = (DOCS / "api.md").read_text()
    methods = sandbox_pb2.DESCRIPTOR.services_by_name["SandboxHost"].methods
    missing = [m.name for m in methods if f"| `{m.name}` |" not in text]
    assert not missing, missing


@pytest.mark.parametrize("settings", [SandboxConfig, SandboxLimits, ContextLimits, RLMConfig, LLMEndpoint])
def test_every_setting_is_documented(settings: type) -> None:
    """Each field of each settings dataclass has a row in docs/operations.md."""
    text = (DOCS / "operations.md").read_text()
    missing = [f.name for f in dataclasses.fields(settings) if f"| `{f.name}` |" not in text]
    assert not missing, (settings.__name__, missing)
