"""The official RLM's trajectory log, written from our runs: `RLMLogger` and the records it writes.

The official package (alexzhang13/rlm, `rlm.logger.RLMLogger`) keeps each completion's run metadata and
iterations in memory and, with a `log_dir`, appends them to a JSON-lines file
`<log_dir>/<file_name>_<YYYY-MM-DD_HH-MM-SS>_<8 hex>.jsonl`: first one line

    {"type": "metadata", "timestamp": ISO, "root_model", "max_depth", "max_iterations", "backend",
     "backend_kwargs", "environment_type", "environment_kwargs", "other_backends"}

then one line per root iteration:

    {"type": "iteration", "iteration": n (from 1), "timestamp": ISO,
     "prompt": [{"role", "content"}, ...] (the messages the model was sent for this turn),
     "response": the reply, "final_answer": str | null, "iteration_time": seconds,
     "code_blocks": [{"code", "result": {"stdout", "stderr", "locals", "execution_time",
                      "rlm_calls": [{"root_model", "prompt", "response", "usage_summary",
                                     "execution_time"}], "final_answer"}}]}

This module writes exactly that shape (the official visualizer reads it), from our trajectory. Two
fields differ in content, not in shape: `locals` is `{}` (the variables' values stay in the sandbox;
the host never holds them), and `stderr` holds what the cell wrote to stderr followed by its traceback
(the official REPL appends "Type: message" there). `rlm_calls` lists the LM sub-calls of the cell that
succeeded (llm_query, rlm_query), as the official REPL's do; custom tool calls are not LM calls and are
not listed. Secrets never enter it: API keys are dropped from the backend kwargs (any key whose name
holds "api" and "key", as the official code filters them).
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def filter_sensitive_keys(kwargs: dict[str, Any]) -> dict[str, Any]:
    """kwargs without any key naming an API key (the official rule: "api" and "key" in its name)."""
    return {k: v for k, v in kwargs.items() if not ("api" in k.lower() and "key" in k.lower())}


def _plain(value: Any) -> Any:
    """A value as JSON can hold it (the official log's serialization: repr for anything else)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if callable(value):
        return f"<{type(value).__name__} '{getattr(value, '__name__', repr(value))}'>"
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__name__}>"


@dataclass
class RLMMetadata:
    root_model: str
    max_depth: int
    max_iterations: int
    backend: str
    backend_kwargs: dict[str, Any]
    environment_type: str
    environment_kwargs: dict[str, Any]
    other_backends: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "root_model": self.root_model,
            "max_depth": self.max_depth,
            "max_iterations": self.max_iterations,
            "backend": self.backend,
            "backend_kwargs": {k: _plain(v) for k, v in self.backend_kwargs.items()},
            "environment_type": self.environment_type,
            "environment_kwargs": {k: _plain(v) for k, v in self.environment_kwargs.items()},
            "other_backends": self.other_backends,
        }


@dataclass
class LMCall:
    """One LM sub-call of a cell (the official RLMChatCompletion as the log holds it)."""

    root_model: str
    prompt: str
    response: str
    input_tokens: int
    output_tokens: int
    execution_time: float

    def to_dict(self) -> dict[str, Any]:
        usage = {
            "total_calls": 1,
            "total_input_tokens": self.input_tokens,
            "total_output_tokens": self.output_tokens,
        }
        return {
            "root_model": self.root_model,
            "prompt": self.prompt,
            "response": self.response,
            "usage_summary": {"model_usage_summaries": {self.root_model: usage}},
            "execution_time": self.execution_time,
        }


@dataclass
class REPLResult:
    stdout: str
    stderr: str
    execution_time: float
    rlm_calls: list[LMCall] = field(default_factory=list)
    final_answer: str | None = None
    locals: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stdout": self.stdout,
            "stderr": self.stderr,
            "locals": {k: _plain(v) for k, v in self.locals.items()},
            "execution_time": self.execution_time,
            "rlm_calls": [call.to_dict() for call in self.rlm_calls],
            "final_answer": self.final_answer,
        }


@dataclass
class CodeBlock:
    code: str
    result: REPLResult

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "result": self.result.to_dict()}


@dataclass
class RLMIteration:
    prompt: list[dict[str, str]]
    response: str
    code_blocks: list[CodeBlock]
    final_answer: str | None = None
    iteration_time: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "response": self.response,
            "code_blocks": [block.to_dict() for block in self.code_blocks],
            "final_answer": self.final_answer,
            "iteration_time": self.iteration_time,
        }


class RLMLogger:
    """The official logger's interface: in memory always, to `<log_dir>/<file_name>_<time>_<id>.jsonl`
    when `log_dir` is given (made if missing)."""

    def __init__(self, log_dir: str | os.PathLike[str] | None = None, file_name: str = "rlm") -> None:
        self._save_to_disk = log_dir is not None
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.log_file_path: str | None = None
        if self.log_dir is not None:
            os.makedirs(self.log_dir, exist_ok=True)
            stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
            self.log_file_path = os.path.join(
                self.log_dir, f"{file_name}_{stamp}_{uuid.uuid4().hex[:8]}.jsonl"
            )
        self._run_metadata: dict[str, Any] | None = None
        self._iterations: list[dict[str, Any]] = []
        self._iteration_count = 0

    def log_metadata(self, metadata: RLMMetadata) -> None:
        """The run's configuration, once (a second call is ignored, as in the official logger)."""
        if self._run_metadata is not None:
            return
        self._run_metadata = metadata.to_dict()
        self._write({"type": "metadata", "timestamp": datetime.now().isoformat(), **self._run_metadata})

    def log(self, iteration: RLMIteration) -> None:
        self._iteration_count += 1
        entry = {
            "type": "iteration",
            "iteration": self._iteration_count,
            "timestamp": datetime.now().isoformat(),
            **iteration.to_dict(),
        }
        self._iterations.append(entry)
        self._write(entry)

    def clear_iterations(self) -> None:
        """Forget the iterations kept in memory (a trajectory is per completion); the file keeps them."""
        self._iterations = []
        self._iteration_count = 0

    def get_trajectory(self) -> dict[str, Any] | None:
        """{"run_metadata", "iterations"} of the current completion, or None before any metadata."""
        if self._run_metadata is None:
            return None
        return {"run_metadata": self._run_metadata, "iterations": list(self._iterations)}

    @property
    def iteration_count(self) -> int:
        return self._iteration_count

    def _write(self, entry: dict[str, Any]) -> None:
        if self._save_to_disk and self.log_file_path:
            with open(self.log_file_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")
