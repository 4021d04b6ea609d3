"""The tests' OpenAI-compatible HTTP server: orchestrator.bench.scripted_server, under the tests' names.

It ships in the package because `rlm bench oolong --offline` plays a model through it too; see that
module for how a script answers, the faults it can play and the usage it reports.
"""

from orchestrator.bench.scripted_server import (
    PIECE_CHARS,
    Reply,
    Script,
    Seen,
    pieces,
    repl,
    stopped,
    usage_for,
)
from orchestrator.bench.scripted_server import ScriptedLLMServer as FakeLLM

__all__ = ["PIECE_CHARS", "FakeLLM", "Reply", "Script", "Seen", "pieces", "repl", "stopped", "usage_for"]
