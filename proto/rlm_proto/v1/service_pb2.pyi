# Generated from proto/ by `python proto/generate.py`. DO NOT EDIT.
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATUS_UNSPECIFIED: _ClassVar[RunStatus]
    RUN_STATUS_RUNNING: _ClassVar[RunStatus]
    RUN_STATUS_COMPLETED: _ClassVar[RunStatus]
    RUN_STATUS_MAX_ITERATIONS: _ClassVar[RunStatus]
    RUN_STATUS_MAX_SUBCALLS: _ClassVar[RunStatus]
    RUN_STATUS_MAX_TOKENS: _ClassVar[RunStatus]
    RUN_STATUS_DEADLINE: _ClassVar[RunStatus]
    RUN_STATUS_LLM_ERROR: _ClassVar[RunStatus]
    RUN_STATUS_SANDBOX_ERROR: _ClassVar[RunStatus]
    RUN_STATUS_CANCELLED: _ClassVar[RunStatus]
    RUN_STATUS_ERROR: _ClassVar[RunStatus]
    RUN_STATUS_STALLED: _ClassVar[RunStatus]

class CellStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CELL_STATUS_UNSPECIFIED: _ClassVar[CellStatus]
    CELL_STATUS_OK: _ClassVar[CellStatus]
    CELL_STATUS_ERROR: _ClassVar[CellStatus]
    CELL_STATUS_TIMEOUT: _ClassVar[CellStatus]
    CELL_STATUS_OOM: _ClassVar[CellStatus]
    CELL_STATUS_KILLED: _ClassVar[CellStatus]
    CELL_STATUS_INVALID: _ClassVar[CellStatus]
    CELL_STATUS_UNAVAILABLE: _ClassVar[CellStatus]

class OutputStream(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTPUT_STREAM_UNSPECIFIED: _ClassVar[OutputStream]
    OUTPUT_STREAM_STDOUT: _ClassVar[OutputStream]
    OUTPUT_STREAM_STDERR: _ClassVar[OutputStream]
RUN_STATUS_UNSPECIFIED: RunStatus
RUN_STATUS_RUNNING: RunStatus
RUN_STATUS_COMPLETED: RunStatus
RUN_STATUS_MAX_ITERATIONS: RunStatus
RUN_STATUS_MAX_SUBCALLS: RunStatus
RUN_STATUS_MAX_TOKENS: RunStatus
RUN_STATUS_DEADLINE: RunStatus
RUN_STATUS_LLM_ERROR: RunStatus
RUN_STATUS_SANDBOX_ERROR: RunStatus
RUN_STATUS_CANCELLED: RunStatus
RUN_STATUS_ERROR: RunStatus
RUN_STATUS_STALLED: RunStatus
CELL_STATUS_UNSPECIFIED: CellStatus
CELL_STATUS_OK: CellStatus
CELL_STATUS_ERROR: CellStatus
CELL_STATUS_TIMEOUT: CellStatus
CELL_STATUS_OOM: CellStatus
CELL_STATUS_KILLED: CellStatus
CELL_STATUS_INVALID: CellStatus
CELL_STATUS_UNAVAILABLE: CellStatus
OUTPUT_STREAM_UNSPECIFIED: OutputStream
OUTPUT_STREAM_STDOUT: OutputStream
OUTPUT_STREAM_STDERR: OutputStream

class SandboxOptions(_message.Message):
    __slots__ = ("memory", "cpus", "pids", "nofile", "tmpfs", "file_size", "timeout", "max_output_bytes", "runtime")
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    PIDS_FIELD_NUMBER: _ClassVar[int]
    NOFILE_FIELD_NUMBER: _ClassVar[int]
    TMPFS_FIELD_NUMBER: _ClassVar[int]
    FILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    memory: str
    cpus: float
    pids: int
    nofile: int
    tmpfs: str
    file_size: str
    timeout: float
    max_output_bytes: int
    runtime: str
    def __init__(self, memory: _Optional[str] = ..., cpus: _Optional[float] = ..., pids: _Optional[int] = ..., nofile: _Optional[int] = ..., tmpfs: _Optional[str] = ..., file_size: _Optional[str] = ..., timeout: _Optional[float] = ..., max_output_bytes: _Optional[int] = ..., runtime: _Optional[str] = ...) -> None: ...

class ContextRef(_message.Message):
    __slots__ = ("context_id", "text", "texts", "files")
    CONTEXT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    context_id: str
    text: str
    texts: TextList
    files: TextMap
    def __init__(self, context_id: _Optional[str] = ..., text: _Optional[str] = ..., texts: _Optional[_Union[TextList, _Mapping]] = ..., files: _Optional[_Union[TextMap, _Mapping]] = ...) -> None: ...

class TextList(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, items: _Optional[_Iterable[str]] = ...) -> None: ...

class TextMap(_message.Message):
    __slots__ = ("items",)
    class ItemsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.ScalarMap[str, str]
    def __init__(self, items: _Optional[_Mapping[str, str]] = ...) -> None: ...

class OutputText(_message.Message):
    __slots__ = ("text", "total_bytes", "truncated")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    text: str
    total_bytes: int
    truncated: bool
    def __init__(self, text: _Optional[str] = ..., total_bytes: _Optional[int] = ..., truncated: _Optional[bool] = ...) -> None: ...

class CellException(_message.Message):
    __slots__ = ("type", "message", "traceback")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    type: str
    message: str
    traceback: str
    def __init__(self, type: _Optional[str] = ..., message: _Optional[str] = ..., traceback: _Optional[str] = ...) -> None: ...

class CellOutcome(_message.Message):
    __slots__ = ("status", "stdout", "stderr", "error", "final", "final_truncated", "duration_s")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    FINAL_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    status: CellStatus
    stdout: OutputText
    stderr: OutputText
    error: CellException
    final: str
    final_truncated: bool
    duration_s: float
    def __init__(self, status: _Optional[_Union[CellStatus, str]] = ..., stdout: _Optional[_Union[OutputText, _Mapping]] = ..., stderr: _Optional[_Union[OutputText, _Mapping]] = ..., error: _Optional[_Union[CellException, _Mapping]] = ..., final: _Optional[str] = ..., final_truncated: _Optional[bool] = ..., duration_s: _Optional[float] = ...) -> None: ...

class ExecuteRequest(_message.Message):
    __slots__ = ("context", "code", "sandbox")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_FIELD_NUMBER: _ClassVar[int]
    context: ContextRef
    code: str
    sandbox: SandboxOptions
    def __init__(self, context: _Optional[_Union[ContextRef, _Mapping]] = ..., code: _Optional[str] = ..., sandbox: _Optional[_Union[SandboxOptions, _Mapping]] = ...) -> None: ...

class ExecuteResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: CellOutcome
    def __init__(self, result: _Optional[_Union[CellOutcome, _Mapping]] = ...) -> None: ...

class OutputChunk(_message.Message):
    __slots__ = ("stream", "text")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    stream: OutputStream
    text: str
    def __init__(self, stream: _Optional[_Union[OutputStream, str]] = ..., text: _Optional[str] = ...) -> None: ...

class ExecuteEvent(_message.Message):
    __slots__ = ("output", "result")
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    output: OutputChunk
    result: CellOutcome
    def __init__(self, output: _Optional[_Union[OutputChunk, _Mapping]] = ..., result: _Optional[_Union[CellOutcome, _Mapping]] = ...) -> None: ...

class OpenSessionRequest(_message.Message):
    __slots__ = ("context", "sandbox")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_FIELD_NUMBER: _ClassVar[int]
    context: ContextRef
    sandbox: SandboxOptions
    def __init__(self, context: _Optional[_Union[ContextRef, _Mapping]] = ..., sandbox: _Optional[_Union[SandboxOptions, _Mapping]] = ...) -> None: ...

class OpenSessionResponse(_message.Message):
    __slots__ = ("session_id", "idle_timeout_s", "runtime")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    idle_timeout_s: float
    runtime: str
    def __init__(self, session_id: _Optional[str] = ..., idle_timeout_s: _Optional[float] = ..., runtime: _Optional[str] = ...) -> None: ...

class RunCellRequest(_message.Message):
    __slots__ = ("session_id", "code", "timeout_s", "max_output_bytes")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    code: str
    timeout_s: float
    max_output_bytes: int
    def __init__(self, session_id: _Optional[str] = ..., code: _Optional[str] = ..., timeout_s: _Optional[float] = ..., max_output_bytes: _Optional[int] = ...) -> None: ...

class RunCellResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: CellOutcome
    def __init__(self, result: _Optional[_Union[CellOutcome, _Mapping]] = ...) -> None: ...

class CloseSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CloseSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RunOptions(_message.Message):
    __slots__ = ("root_model", "sub_model", "max_depth", "max_iterations", "max_subcalls", "max_tokens", "deadline_s", "recursive_llm_query")
    ROOT_MODEL_FIELD_NUMBER: _ClassVar[int]
    SUB_MODEL_FIELD_NUMBER: _ClassVar[int]
    MAX_DEPTH_FIELD_NUMBER: _ClassVar[int]
    MAX_ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_SUBCALLS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_S_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_LLM_QUERY_FIELD_NUMBER: _ClassVar[int]
    root_model: str
    sub_model: str
    max_depth: int
    max_iterations: int
    max_subcalls: int
    max_tokens: int
    deadline_s: float
    recursive_llm_query: bool
    def __init__(self, root_model: _Optional[str] = ..., sub_model: _Optional[str] = ..., max_depth: _Optional[int] = ..., max_iterations: _Optional[int] = ..., max_subcalls: _Optional[int] = ..., max_tokens: _Optional[int] = ..., deadline_s: _Optional[float] = ..., recursive_llm_query: _Optional[bool] = ...) -> None: ...

class RunRequest(_message.Message):
    __slots__ = ("context", "query", "options", "sandbox", "continue_run_id", "keep_sandbox")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_FIELD_NUMBER: _ClassVar[int]
    CONTINUE_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    KEEP_SANDBOX_FIELD_NUMBER: _ClassVar[int]
    context: ContextRef
    query: str
    options: RunOptions
    sandbox: SandboxOptions
    continue_run_id: str
    keep_sandbox: bool
    def __init__(self, context: _Optional[_Union[ContextRef, _Mapping]] = ..., query: _Optional[str] = ..., options: _Optional[_Union[RunOptions, _Mapping]] = ..., sandbox: _Optional[_Union[SandboxOptions, _Mapping]] = ..., continue_run_id: _Optional[str] = ..., keep_sandbox: _Optional[bool] = ...) -> None: ...

class RunMetadata(_message.Message):
    __slots__ = ("status", "max_depth", "actual_depth", "iterations", "subcall_count", "total_s", "codegen_s", "repl_s", "context_bytes", "context_files", "generated_code_chars", "prompt_tokens", "completion_tokens", "cost_usd", "bytes_read", "files_read", "cache_hit_rate", "sandbox_starts")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MAX_DEPTH_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_DEPTH_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    SUBCALL_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_S_FIELD_NUMBER: _ClassVar[int]
    CODEGEN_S_FIELD_NUMBER: _ClassVar[int]
    REPL_S_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_BYTES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FILES_FIELD_NUMBER: _ClassVar[int]
    GENERATED_CODE_CHARS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    BYTES_READ_FIELD_NUMBER: _ClassVar[int]
    FILES_READ_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_STARTS_FIELD_NUMBER: _ClassVar[int]
    status: RunStatus
    max_depth: int
    actual_depth: int
    iterations: int
    subcall_count: int
    total_s: float
    codegen_s: float
    repl_s: float
    context_bytes: int
    context_files: int
    generated_code_chars: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    bytes_read: int
    files_read: int
    cache_hit_rate: float
    sandbox_starts: int
    def __init__(self, status: _Optional[_Union[RunStatus, str]] = ..., max_depth: _Optional[int] = ..., actual_depth: _Optional[int] = ..., iterations: _Optional[int] = ..., subcall_count: _Optional[int] = ..., total_s: _Optional[float] = ..., codegen_s: _Optional[float] = ..., repl_s: _Optional[float] = ..., context_bytes: _Optional[int] = ..., context_files: _Optional[int] = ..., generated_code_chars: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., cost_usd: _Optional[float] = ..., bytes_read: _Optional[int] = ..., files_read: _Optional[int] = ..., cache_hit_rate: _Optional[float] = ..., sandbox_starts: _Optional[int] = ...) -> None: ...

class RunResponse(_message.Message):
    __slots__ = ("run_id", "status", "answer", "error", "metadata", "trajectory_json")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TRAJECTORY_JSON_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    status: RunStatus
    answer: str
    error: str
    metadata: RunMetadata
    trajectory_json: str
    def __init__(self, run_id: _Optional[str] = ..., status: _Optional[_Union[RunStatus, str]] = ..., answer: _Optional[str] = ..., error: _Optional[str] = ..., metadata: _Optional[_Union[RunMetadata, _Mapping]] = ..., trajectory_json: _Optional[str] = ...) -> None: ...

class RunAccepted(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class IterationStarted(_message.Message):
    __slots__ = ("index", "depth", "elapsed_s")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_S_FIELD_NUMBER: _ClassVar[int]
    index: int
    depth: int
    elapsed_s: float
    def __init__(self, index: _Optional[int] = ..., depth: _Optional[int] = ..., elapsed_s: _Optional[float] = ...) -> None: ...

class ModelText(_message.Message):
    __slots__ = ("text", "depth")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    text: str
    depth: int
    def __init__(self, text: _Optional[str] = ..., depth: _Optional[int] = ...) -> None: ...

class ModelTextReset(_message.Message):
    __slots__ = ("depth",)
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    depth: int
    def __init__(self, depth: _Optional[int] = ...) -> None: ...

class CodeStarted(_message.Message):
    __slots__ = ("code", "depth")
    CODE_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    code: str
    depth: int
    def __init__(self, code: _Optional[str] = ..., depth: _Optional[int] = ...) -> None: ...

class CellRecord(_message.Message):
    __slots__ = ("code", "status", "stdout", "stderr", "error", "final", "duration_s")
    CODE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    code: str
    status: CellStatus
    stdout: str
    stderr: str
    error: str
    final: str
    duration_s: float
    def __init__(self, code: _Optional[str] = ..., status: _Optional[_Union[CellStatus, str]] = ..., stdout: _Optional[str] = ..., stderr: _Optional[str] = ..., error: _Optional[str] = ..., final: _Optional[str] = ..., duration_s: _Optional[float] = ...) -> None: ...

class CellFinished(_message.Message):
    __slots__ = ("cell", "depth")
    CELL_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    cell: CellRecord
    depth: int
    def __init__(self, cell: _Optional[_Union[CellRecord, _Mapping]] = ..., depth: _Optional[int] = ...) -> None: ...

class SubCallStarted(_message.Message):
    __slots__ = ("id", "kind", "depth", "prompt_chars")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    PROMPT_CHARS_FIELD_NUMBER: _ClassVar[int]
    id: int
    kind: str
    depth: int
    prompt_chars: int
    def __init__(self, id: _Optional[int] = ..., kind: _Optional[str] = ..., depth: _Optional[int] = ..., prompt_chars: _Optional[int] = ...) -> None: ...

class SubCallFinished(_message.Message):
    __slots__ = ("id", "parent", "depth", "kind", "model", "prompt_chars", "reply_chars", "prompt_tokens", "completion_tokens", "duration_s", "error")
    ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_CHARS_FIELD_NUMBER: _ClassVar[int]
    REPLY_CHARS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    id: int
    parent: str
    depth: int
    kind: str
    model: str
    prompt_chars: int
    reply_chars: int
    prompt_tokens: int
    completion_tokens: int
    duration_s: float
    error: str
    def __init__(self, id: _Optional[int] = ..., parent: _Optional[str] = ..., depth: _Optional[int] = ..., kind: _Optional[str] = ..., model: _Optional[str] = ..., prompt_chars: _Optional[int] = ..., reply_chars: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., duration_s: _Optional[float] = ..., error: _Optional[str] = ...) -> None: ...

class RunEvent(_message.Message):
    __slots__ = ("run_id", "accepted", "iteration_started", "model_text", "model_text_reset", "code_started", "cell_finished", "subcall_started", "subcall_finished", "result")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    ITERATION_STARTED_FIELD_NUMBER: _ClassVar[int]
    MODEL_TEXT_FIELD_NUMBER: _ClassVar[int]
    MODEL_TEXT_RESET_FIELD_NUMBER: _ClassVar[int]
    CODE_STARTED_FIELD_NUMBER: _ClassVar[int]
    CELL_FINISHED_FIELD_NUMBER: _ClassVar[int]
    SUBCALL_STARTED_FIELD_NUMBER: _ClassVar[int]
    SUBCALL_FINISHED_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    accepted: RunAccepted
    iteration_started: IterationStarted
    model_text: ModelText
    model_text_reset: ModelTextReset
    code_started: CodeStarted
    cell_finished: CellFinished
    subcall_started: SubCallStarted
    subcall_finished: SubCallFinished
    result: RunResponse
    def __init__(self, run_id: _Optional[str] = ..., accepted: _Optional[_Union[RunAccepted, _Mapping]] = ..., iteration_started: _Optional[_Union[IterationStarted, _Mapping]] = ..., model_text: _Optional[_Union[ModelText, _Mapping]] = ..., model_text_reset: _Optional[_Union[ModelTextReset, _Mapping]] = ..., code_started: _Optional[_Union[CodeStarted, _Mapping]] = ..., cell_finished: _Optional[_Union[CellFinished, _Mapping]] = ..., subcall_started: _Optional[_Union[SubCallStarted, _Mapping]] = ..., subcall_finished: _Optional[_Union[SubCallFinished, _Mapping]] = ..., result: _Optional[_Union[RunResponse, _Mapping]] = ...) -> None: ...

class RunSummary(_message.Message):
    __slots__ = ("run_id", "status", "query", "answer", "error", "root_model", "created_unix", "ended_unix", "prompt_tokens", "completion_tokens", "cost_usd")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ROOT_MODEL_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    ENDED_UNIX_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    status: RunStatus
    query: str
    answer: str
    error: str
    root_model: str
    created_unix: float
    ended_unix: float
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    def __init__(self, run_id: _Optional[str] = ..., status: _Optional[_Union[RunStatus, str]] = ..., query: _Optional[str] = ..., answer: _Optional[str] = ..., error: _Optional[str] = ..., root_model: _Optional[str] = ..., created_unix: _Optional[float] = ..., ended_unix: _Optional[float] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., cost_usd: _Optional[float] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id", "include_trajectory")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_TRAJECTORY_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    include_trajectory: bool
    def __init__(self, run_id: _Optional[str] = ..., include_trajectory: _Optional[bool] = ...) -> None: ...

class GetRunResponse(_message.Message):
    __slots__ = ("run", "metadata", "trajectory_json")
    RUN_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TRAJECTORY_JSON_FIELD_NUMBER: _ClassVar[int]
    run: RunSummary
    metadata: RunMetadata
    trajectory_json: str
    def __init__(self, run: _Optional[_Union[RunSummary, _Mapping]] = ..., metadata: _Optional[_Union[RunMetadata, _Mapping]] = ..., trajectory_json: _Optional[str] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "statuses", "created_after_unix", "created_before_unix")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_UNIX_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_UNIX_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    statuses: _containers.RepeatedScalarFieldContainer[RunStatus]
    created_after_unix: float
    created_before_unix: float
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., statuses: _Optional[_Iterable[_Union[RunStatus, str]]] = ..., created_after_unix: _Optional[float] = ..., created_before_unix: _Optional[float] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[RunSummary]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[RunSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class CancelRunResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: RunStatus
    def __init__(self, status: _Optional[_Union[RunStatus, str]] = ...) -> None: ...

class UploadHeader(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UploadContextRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: UploadHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[UploadHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class ContextInfo(_message.Message):
    __slots__ = ("context_id", "name", "file_count", "total_bytes", "created_unix", "kind")
    CONTEXT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    context_id: str
    name: str
    file_count: int
    total_bytes: int
    created_unix: float
    kind: str
    def __init__(self, context_id: _Optional[str] = ..., name: _Optional[str] = ..., file_count: _Optional[int] = ..., total_bytes: _Optional[int] = ..., created_unix: _Optional[float] = ..., kind: _Optional[str] = ...) -> None: ...

class ListContextsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListContextsResponse(_message.Message):
    __slots__ = ("contexts", "bytes_used")
    CONTEXTS_FIELD_NUMBER: _ClassVar[int]
    BYTES_USED_FIELD_NUMBER: _ClassVar[int]
    contexts: _containers.RepeatedCompositeFieldContainer[ContextInfo]
    bytes_used: int
    def __init__(self, contexts: _Optional[_Iterable[_Union[ContextInfo, _Mapping]]] = ..., bytes_used: _Optional[int] = ...) -> None: ...

class DeleteContextRequest(_message.Message):
    __slots__ = ("context_id",)
    CONTEXT_ID_FIELD_NUMBER: _ClassVar[int]
    context_id: str
    def __init__(self, context_id: _Optional[str] = ...) -> None: ...

class DeleteContextResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
