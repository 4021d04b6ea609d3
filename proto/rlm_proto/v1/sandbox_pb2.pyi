# Generated from proto/ by `python proto/generate.py`. DO NOT EDIT.
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SandboxMessage(_message.Message):
    __slots__ = ("hello", "result", "output")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    result: CellResult
    output: CellOutput
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., result: _Optional[_Union[CellResult, _Mapping]] = ..., output: _Optional[_Union[CellOutput, _Mapping]] = ...) -> None: ...

class HostMessage(_message.Message):
    __slots__ = ("execute", "configure", "bind")
    EXECUTE_FIELD_NUMBER: _ClassVar[int]
    CONFIGURE_FIELD_NUMBER: _ClassVar[int]
    BIND_FIELD_NUMBER: _ClassVar[int]
    execute: ExecuteCell
    configure: SessionConfig
    bind: Binding
    def __init__(self, execute: _Optional[_Union[ExecuteCell, _Mapping]] = ..., configure: _Optional[_Union[SessionConfig, _Mapping]] = ..., bind: _Optional[_Union[Binding, _Mapping]] = ...) -> None: ...

class Binding(_message.Message):
    __slots__ = ("name", "json", "more")
    NAME_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    name: str
    json: str
    more: bool
    def __init__(self, name: _Optional[str] = ..., json: _Optional[str] = ..., more: _Optional[bool] = ...) -> None: ...

class SessionConfig(_message.Message):
    __slots__ = ("context", "session_token", "tools")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    context: ContextDescriptor
    session_token: str
    tools: _containers.RepeatedCompositeFieldContainer[ToolSpec]
    def __init__(self, context: _Optional[_Union[ContextDescriptor, _Mapping]] = ..., session_token: _Optional[str] = ..., tools: _Optional[_Iterable[_Union[ToolSpec, _Mapping]]] = ...) -> None: ...

class ToolSpec(_message.Message):
    __slots__ = ("name", "description", "callable", "value_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CALLABLE_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    callable: bool
    value_json: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., callable: _Optional[bool] = ..., value_json: _Optional[str] = ...) -> None: ...

class ContextDescriptor(_message.Message):
    __slots__ = ("kind", "mounted", "file_count", "total_bytes", "files_by_extension", "entries", "max_file_bytes")
    class FilesByExtensionEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    MOUNTED_FIELD_NUMBER: _ClassVar[int]
    FILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILES_BY_EXTENSION_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    MAX_FILE_BYTES_FIELD_NUMBER: _ClassVar[int]
    kind: str
    mounted: bool
    file_count: int
    total_bytes: int
    files_by_extension: _containers.ScalarMap[str, int]
    entries: _containers.RepeatedCompositeFieldContainer[ContextEntry]
    max_file_bytes: int
    def __init__(self, kind: _Optional[str] = ..., mounted: _Optional[bool] = ..., file_count: _Optional[int] = ..., total_bytes: _Optional[int] = ..., files_by_extension: _Optional[_Mapping[str, int]] = ..., entries: _Optional[_Iterable[_Union[ContextEntry, _Mapping]]] = ..., max_file_bytes: _Optional[int] = ...) -> None: ...

class ContextEntry(_message.Message):
    __slots__ = ("name", "path")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("runtime_version", "python_version", "pid")
    RUNTIME_VERSION_FIELD_NUMBER: _ClassVar[int]
    PYTHON_VERSION_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    runtime_version: str
    python_version: str
    pid: int
    def __init__(self, runtime_version: _Optional[str] = ..., python_version: _Optional[str] = ..., pid: _Optional[int] = ...) -> None: ...

class ExecuteCell(_message.Message):
    __slots__ = ("cell_id", "code", "max_output_bytes", "read_budget_bytes", "stream_output")
    CELL_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    READ_BUDGET_BYTES_FIELD_NUMBER: _ClassVar[int]
    STREAM_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    cell_id: int
    code: str
    max_output_bytes: int
    read_budget_bytes: int
    stream_output: bool
    def __init__(self, cell_id: _Optional[int] = ..., code: _Optional[str] = ..., max_output_bytes: _Optional[int] = ..., read_budget_bytes: _Optional[int] = ..., stream_output: _Optional[bool] = ...) -> None: ...

class CellOutput(_message.Message):
    __slots__ = ("cell_id", "stream", "text")
    CELL_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    cell_id: int
    stream: str
    text: str
    def __init__(self, cell_id: _Optional[int] = ..., stream: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class CapturedOutput(_message.Message):
    __slots__ = ("text", "total_bytes", "truncated")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    text: str
    total_bytes: int
    truncated: bool
    def __init__(self, text: _Optional[str] = ..., total_bytes: _Optional[int] = ..., truncated: _Optional[bool] = ...) -> None: ...

class CellError(_message.Message):
    __slots__ = ("type", "message", "traceback")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    type: str
    message: str
    traceback: str
    def __init__(self, type: _Optional[str] = ..., message: _Optional[str] = ..., traceback: _Optional[str] = ...) -> None: ...

class CellResult(_message.Message):
    __slots__ = ("cell_id", "stdout", "stderr", "error", "has_final", "final", "duration_s", "final_truncated", "reads", "restored")
    CELL_ID_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    HAS_FINAL_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    FINAL_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    READS_FIELD_NUMBER: _ClassVar[int]
    RESTORED_FIELD_NUMBER: _ClassVar[int]
    cell_id: int
    stdout: CapturedOutput
    stderr: CapturedOutput
    error: CellError
    has_final: bool
    final: str
    duration_s: float
    final_truncated: bool
    reads: ReadUsage
    restored: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cell_id: _Optional[int] = ..., stdout: _Optional[_Union[CapturedOutput, _Mapping]] = ..., stderr: _Optional[_Union[CapturedOutput, _Mapping]] = ..., error: _Optional[_Union[CellError, _Mapping]] = ..., has_final: _Optional[bool] = ..., final: _Optional[str] = ..., duration_s: _Optional[float] = ..., final_truncated: _Optional[bool] = ..., reads: _Optional[_Union[ReadUsage, _Mapping]] = ..., restored: _Optional[_Iterable[str]] = ...) -> None: ...

class ReadUsage(_message.Message):
    __slots__ = ("bytes", "files", "opened")
    BYTES_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    OPENED_FIELD_NUMBER: _ClassVar[int]
    bytes: int
    files: int
    opened: int
    def __init__(self, bytes: _Optional[int] = ..., files: _Optional[int] = ..., opened: _Optional[int] = ...) -> None: ...

class LlmQueryRequest(_message.Message):
    __slots__ = ("prompt", "model", "recursive")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    model: str
    recursive: bool
    def __init__(self, prompt: _Optional[str] = ..., model: _Optional[str] = ..., recursive: _Optional[bool] = ...) -> None: ...

class LlmQueryResponse(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class LlmQueryBatchedRequest(_message.Message):
    __slots__ = ("prompts", "model", "recursive")
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_FIELD_NUMBER: _ClassVar[int]
    prompts: _containers.RepeatedScalarFieldContainer[str]
    model: str
    recursive: bool
    def __init__(self, prompts: _Optional[_Iterable[str]] = ..., model: _Optional[str] = ..., recursive: _Optional[bool] = ...) -> None: ...

class LlmQueryBatchedResponse(_message.Message):
    __slots__ = ("texts",)
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, texts: _Optional[_Iterable[str]] = ...) -> None: ...

class ToolCallRequest(_message.Message):
    __slots__ = ("name", "arguments_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    arguments_json: str
    def __init__(self, name: _Optional[str] = ..., arguments_json: _Optional[str] = ...) -> None: ...

class ToolCallResponse(_message.Message):
    __slots__ = ("result_json", "error")
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    result_json: str
    error: ToolError
    def __init__(self, result_json: _Optional[str] = ..., error: _Optional[_Union[ToolError, _Mapping]] = ...) -> None: ...

class ToolError(_message.Message):
    __slots__ = ("type", "message")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    type: str
    message: str
    def __init__(self, type: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ReadFileRequest(_message.Message):
    __slots__ = ("path", "offset", "length")
    PATH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    path: str
    offset: int
    length: int
    def __init__(self, path: _Optional[str] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class FileChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class ListFilesRequest(_message.Message):
    __slots__ = ("directory", "glob")
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    GLOB_FIELD_NUMBER: _ClassVar[int]
    directory: str
    glob: str
    def __init__(self, directory: _Optional[str] = ..., glob: _Optional[str] = ...) -> None: ...

class SearchFilesRequest(_message.Message):
    __slots__ = ("pattern",)
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    pattern: str
    def __init__(self, pattern: _Optional[str] = ...) -> None: ...

class FileList(_message.Message):
    __slots__ = ("paths",)
    PATHS_FIELD_NUMBER: _ClassVar[int]
    paths: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, paths: _Optional[_Iterable[str]] = ...) -> None: ...

class FileInfoRequest(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class FileMetadata(_message.Message):
    __slots__ = ("path", "size", "lines", "modified_unix")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_UNIX_FIELD_NUMBER: _ClassVar[int]
    path: str
    size: int
    lines: int
    modified_unix: float
    def __init__(self, path: _Optional[str] = ..., size: _Optional[int] = ..., lines: _Optional[int] = ..., modified_unix: _Optional[float] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ContextStats(_message.Message):
    __slots__ = ("file_count", "total_bytes", "files_by_extension")
    class FilesByExtensionEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    FILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILES_BY_EXTENSION_FIELD_NUMBER: _ClassVar[int]
    file_count: int
    total_bytes: int
    files_by_extension: _containers.ScalarMap[str, int]
    def __init__(self, file_count: _Optional[int] = ..., total_bytes: _Optional[int] = ..., files_by_extension: _Optional[_Mapping[str, int]] = ...) -> None: ...

class GrepRequest(_message.Message):
    __slots__ = ("pattern", "glob", "max_matches")
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    GLOB_FIELD_NUMBER: _ClassVar[int]
    MAX_MATCHES_FIELD_NUMBER: _ClassVar[int]
    pattern: str
    glob: str
    max_matches: int
    def __init__(self, pattern: _Optional[str] = ..., glob: _Optional[str] = ..., max_matches: _Optional[int] = ...) -> None: ...

class GrepMatch(_message.Message):
    __slots__ = ("path", "line_number", "line")
    PATH_FIELD_NUMBER: _ClassVar[int]
    LINE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    path: str
    line_number: int
    line: str
    def __init__(self, path: _Optional[str] = ..., line_number: _Optional[int] = ..., line: _Optional[str] = ...) -> None: ...

class GrepResponse(_message.Message):
    __slots__ = ("matches", "truncated")
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    matches: _containers.RepeatedCompositeFieldContainer[GrepMatch]
    truncated: bool
    def __init__(self, matches: _Optional[_Iterable[_Union[GrepMatch, _Mapping]]] = ..., truncated: _Optional[bool] = ...) -> None: ...
