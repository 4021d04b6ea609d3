"""The functions user code calls to reach the host: thin gRPC callbacks, in both spellings.

Names follow the paper's code (`llm_query`, `read_file`, ...) and AStack's (`readFile`, ...), so prompts
written for either run unchanged. A callback the host does not serve raises NotAvailableError: never a
made-up result. The sub-calls are the exception, as in the official REPL: a failed `llm_query` /
`rlm_query` (or one with nothing to serve it) returns an "Error: ..." string, as each failed item of a
batch does. Custom tools are stubs named in the session's config that call ToolCall: their arguments
and results cross as JSON, the function runs on the host, and what it raised is raised here.
"""

from __future__ import annotations

import builtins
import json
import keyword
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from rlm_proto.v1 import sandbox_pb2 as pb
from rlm_proto.v1.sandbox_pb2_grpc import SandboxHostStub

from .context_api import MOUNT, LocalReader, build_context
from .errors import (
    ContextPathError,
    HostCallError,
    LimitExceededError,
    NotAvailableError,
    PatternError,
    SandboxAPIError,
    ToolError,
)
from .text_grep import grep_text, is_text

Metadata = tuple[tuple[str, str], ...]


class HostAPI:
    """Binds the sandbox API to one host channel."""

    def __init__(self, stub: SandboxHostStub, metadata: Metadata, context_root: str = MOUNT) -> None:
        self._stub = stub
        self._metadata = metadata
        self._context_root = context_root  # where the context is mounted: /context in a container
        self.local: LocalReader | None = None  # set when the context is mounted there

    def set_token(self, token: str) -> None:
        """Use the session's token on every call from now on (the host refuses the old one)."""
        self._metadata = tuple((k, token if k == "x-rlm-token" else v) for k, v in self._metadata)

    @property
    def context_root(self) -> str:
        return self._context_root

    def configure(self, descriptor: pb.ContextDescriptor) -> Any:
        """Take the session's context; returns the value user code sees as `context`."""
        if descriptor.mounted:
            self.local = LocalReader(self.list_files, int(descriptor.max_file_bytes), self._context_root)
        return build_context(descriptor, self, self._context_root)

    def start_cell(self, read_budget_bytes: int) -> None:
        if self.local is not None:
            self.local.start_cell(read_budget_bytes)

    def reads(self) -> tuple[int, int]:
        """Bytes and files read_file read through the mount during this cell."""
        return (self.local.bytes_read, self.local.files_read) if self.local is not None else (0, 0)

    def _call(self, name: str, method: Callable[..., Any], request: Any) -> Any:
        try:
            return method(request, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise _translate(name, exc) from None

    # -- LLM sub-calls ---------------------------------------------------------------------------

    def llm_query(self, prompt: str, model: str | None = None) -> str:
        request = pb.LlmQueryRequest(prompt=_text("prompt", prompt), model=model or "")
        return self._text_or_error("llm_query", request)

    def llm_query_batched(self, prompts: Sequence[str], model: str | None = None) -> list[str]:
        request = pb.LlmQueryBatchedRequest(prompts=_texts(prompts), model=model or "")
        return self._texts_or_errors("llm_query_batched", request)

    def rlm_query(self, prompt: str, model: str | None = None) -> str:
        request = pb.LlmQueryRequest(prompt=_text("prompt", prompt), model=model or "", recursive=True)
        return self._text_or_error("rlm_query", request)

    def rlm_query_batched(self, prompts: Sequence[str], model: str | None = None) -> list[str]:
        request = pb.LlmQueryBatchedRequest(prompts=_texts(prompts), model=model or "", recursive=True)
        return self._texts_or_errors("rlm_query_batched", request)

    def _text_or_error(self, name: str, request: pb.LlmQueryRequest) -> str:
        """The reply, or "Error: <why>" for a call that failed or was refused (the official REPL's
        return value: the code goes on, and the model reads why)."""
        try:
            return str(self._call(name, self._stub.LlmQuery, request).text)
        except SandboxAPIError as exc:
            return f"Error: {exc}"

    def _texts_or_errors(self, name: str, request: pb.LlmQueryBatchedRequest) -> list[str]:
        try:
            return list(self._call(name, self._stub.LlmQueryBatched, request).texts)
        except SandboxAPIError as exc:
            return [f"Error: {exc}"] * len(request.prompts)

    # -- custom tools ----------------------------------------------------------------------------

    def tool(self, name: str, description: str = "") -> Callable[..., Any]:
        """The stub user code calls as `name(...)`: the host runs the tool and returns its result."""

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                arguments = json.dumps({"args": list(args), "kwargs": kwargs})
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"{name}(): arguments cross to the host as JSON (str, numbers, bool, None, lists, "
                    f"dicts with str keys): {exc}"
                ) from None
            request = pb.ToolCallRequest(name=name, arguments_json=arguments)
            response = self._call(name, self._stub.ToolCall, request)
            if response.WhichOneof("outcome") == "error":
                raise _tool_exception(response.error.type, response.error.message)
            return json.loads(response.result_json) if response.result_json else None

        call.__name__ = call.__qualname__ = name
        call.__doc__ = description or f"The custom tool {name}: it runs on the host."
        return call

    # -- the context -----------------------------------------------------------------------------

    def read_file(self, path: str, offset: int = 0, length: int | None = None) -> str:
        """The file's text (UTF-8, undecodable bytes replaced); offset and length count bytes."""
        return self.read_bytes(path, offset, length).decode("utf-8", "replace")

    def read_bytes(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        """read_file's bytes: through the mount when there is one, else (or failing that) the host's."""
        if self.local is not None:
            try:
                return self.local.read(path, int(offset), None if length is None else int(length))
            except OSError:
                pass  # not on the mount under that name, or not readable by this user: the host serves it
        request = pb.ReadFileRequest(
            path=_text("path", path), offset=int(offset), length=-1 if length is None else int(length)
        )
        try:
            chunks = [chunk.data for chunk in self._stub.ReadFile(request, metadata=self._metadata)]
        except grpc.RpcError as exc:
            raise _translate("read_file", exc) from None
        return b"".join(chunks)

    def list_files(self, directory: str = "", glob: str = "") -> list[str]:
        request = pb.ListFilesRequest(directory=directory, glob=glob)
        return list(self._call("list_files", self._stub.ListFiles, request).paths)

    def get_files_in_directory(self, directory: str) -> list[str]:
        return self.list_files(directory=directory)

    def search_files(self, pattern: str) -> list[str]:
        request = pb.SearchFilesRequest(pattern=_text("pattern", pattern))
        return list(self._call("search_files", self._stub.SearchFiles, request).paths)

    def get_file_info(self, path: str) -> dict[str, Any]:
        info = self._call("get_file_info", self._stub.FileInfo, pb.FileInfoRequest(path=_text("path", path)))
        lines = None if info.lines < 0 else info.lines
        return {"path": info.path, "size": info.size, "lines": lines, "modified": info.modified_unix}

    def get_stats(self) -> dict[str, Any]:
        stats = self._call("get_stats", self._stub.Stats, pb.StatsRequest())
        return {
            "file_count": stats.file_count,
            "total_bytes": stats.total_bytes,
            "files_by_extension": dict(stats.files_by_extension),
        }

    def grep(self, pattern: str, glob: str | None = None, max_matches: int = 1000) -> list[dict[str, Any]]:
        if is_text(glob):  # grep(pattern, text) / grep(pattern, lines): the lines the code holds
            return grep_text(pattern, glob, max_matches)
        if glob is not None and not isinstance(glob, str):
            raise TypeError(
                f"grep(pattern, glob): glob is a pattern of file paths such as 'config/*.ini' (or a "
                f"text or list of lines to search), not a {type(glob).__name__}"
            )
        request = pb.GrepRequest(pattern=_text("pattern", pattern), glob=glob or "", max_matches=max_matches)
        response = self._call("grep", self._stub.Grep, request)
        return [{"path": m.path, "line_number": m.line_number, "line": m.line} for m in response.matches]

    def bindings(self) -> dict[str, Callable[..., Any]]:
        """Every name user code sees, in the paper's spelling and in AStack's, and the errors to catch."""
        snake = {
            name: getattr(self, name)
            for name in (
                "llm_query",
                "llm_query_batched",
                "rlm_query",
                "rlm_query_batched",
                "read_file",
                "list_files",
                "search_files",
                "get_file_info",
                "get_stats",
                "get_files_in_directory",
                "grep",
            )
        }
        camel = {
            "readFile": self.read_file,
            "listFiles": self.list_files,
            "searchFiles": self.search_files,
            "getFileInfo": self.get_file_info,
            "getStats": self.get_stats,
            "getFilesInDirectory": self.get_files_in_directory,
        }
        errors = {
            cls.__name__: cls
            for cls in (
                SandboxAPIError,
                ContextPathError,
                PatternError,
                LimitExceededError,
                NotAvailableError,
                HostCallError,
                ToolError,
            )
        }
        return {**snake, **camel, **errors}


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return value


def _texts(values: Sequence[str]) -> list[str]:
    if isinstance(values, str):
        raise TypeError("prompts must be a list of str, not a single str")
    return [_text("each prompt", v) for v in values]


_TOOL_ERRORS: dict[str, type[Exception]] = {}


def _tool_exception(kind: str, message: str) -> Exception:
    """What a tool raised on the host, raised here: a built-in exception type as itself (ValueError,
    KeyError, ...), any other as a ToolError subclass of the same name (one class per name)."""
    found = getattr(builtins, kind, None)
    if isinstance(found, type) and issubclass(found, Exception):
        try:
            return found(message)
        except Exception:  # a built-in that wants other arguments (UnicodeDecodeError, ...)
            pass
    name = kind if kind.isidentifier() and not keyword.iskeyword(kind) else "ToolError"
    if name == "ToolError":
        return ToolError(message)
    cls = _TOOL_ERRORS.get(name)
    if cls is None:
        cls = _TOOL_ERRORS[name] = type(name, (ToolError,), {"__module__": "tools"})
    return cls(message)


_ERRORS: dict[str, type[Exception]] = {
    "ContextPathError": ContextPathError,
    "PatternError": PatternError,
    "LimitExceededError": LimitExceededError,
}


def _translate(name: str, exc: grpc.RpcError) -> Exception:
    """The host names the error's class in trailing metadata; the status code is the fallback."""
    if not isinstance(exc, grpc.Call):
        return HostCallError(f"{name}() failed: {exc}")
    code, details = exc.code(), exc.details() or ""
    kind = next((str(v) for k, v in exc.trailing_metadata() or () if k == "x-rlm-error"), "")
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return NotAvailableError(f"{name}() is not available in this session")
    if kind in _ERRORS:
        return _ERRORS[kind](details)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return LimitExceededError(f"{name}(): {details}")
    return HostCallError(f"{name}() failed: {details}")
