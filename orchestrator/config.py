"""Sandbox limits and runtimes: frozen values, validated when made, never read from the environment here."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from .errors import InvalidInputError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
DEFAULT_IMAGE = "rlm-sandbox:latest"
DEFAULT_ROOT_MODEL = "gpt-4o-mini"
DEFAULT_SECCOMP_PROFILE = "/etc/rlm/seccomp.json"
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


class Runtime(enum.StrEnum):
    """The OCI runtime a sandbox runs under: runc is the fast default, runsc (gVisor) the hardened one."""

    RUNC = "runc"
    RUNSC = "runsc"

    @classmethod
    def parse(cls, value: str) -> Runtime:
        try:
            return cls(value.strip().lower())
        except ValueError:
            names = ", ".join(r.value for r in cls)
            raise InvalidInputError(f"unknown runtime {value!r}: choose one of {names}") from None


def parse_size(value: str | int) -> int:
    """'512m', '1g', '64MiB' or a byte count -> bytes (binary units, as Docker reads them)."""
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(value)
        if not match:
            raise InvalidInputError(f"not a size: {value!r} (examples: 512m, 1g, 1048576)")
        size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if size <= 0:
        raise InvalidInputError(f"a size must be positive, got {value!r}")
    return size


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """What one sandbox may use. The kernel and the orchestrator enforce these, never the sandbox."""

    memory_bytes: int = 512 * 1024**2  # swap is set equal: no swap on top
    cpus: float = 1.0
    pids: int = 128
    nofile: int = 1024
    tmpfs_bytes: int = 64 * 1024**2
    file_size_bytes: int = 64 * 1024**2  # RLIMIT_FSIZE: no single file larger than this
    cell_timeout_s: float = 60.0
    max_output_bytes: int = 1024**2  # per cell, per stream
    start_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        _check(self.memory_bytes >= 32 * 1024**2, "memory must be at least 32m")
        _check(0.01 <= self.cpus <= 256, f"cpus must be between 0.01 and 256, got {self.cpus}")
        _check(8 <= self.pids <= 65536, f"pids must be between 8 and 65536, got {self.pids}")
        _check(64 <= self.nofile <= 1048576, f"nofile must be between 64 and 1048576, got {self.nofile}")
        _check(self.tmpfs_bytes >= 1024**2, "tmpfs must be at least 1m")
        _check(self.file_size_bytes >= 1024, "file size limit must be at least 1k")
        _check(
            0 < self.cell_timeout_s <= 86400, f"timeout must be in (0, 86400] s, got {self.cell_timeout_s}"
        )
        _check(self.max_output_bytes >= 0, "max output bytes must not be negative")
        _check(0 < self.start_timeout_s <= 600, "start timeout must be in (0, 600] s")


@dataclass(frozen=True, slots=True)
class ContextLimits:
    """What one run may take from its context, on the host and through the sandbox API."""

    cache_bytes: int = 10 * 1024**2  # file contents kept in memory on the host (LRU)
    max_file_bytes: int = 10 * 1024**2  # a larger file is refused by read_file and skipped by grep
    max_read_bytes: int = 100 * 1024**2  # bytes read_file may return over the whole run
    max_grep_matches: int = 10_000  # the most one grep may return, whatever the caller asks
    regex_timeout_s: float = 10.0  # per grep or search_files call: patterns come from untrusted code

    def __post_init__(self) -> None:
        _check(self.cache_bytes >= 0, "cache size must not be negative")
        _check(self.max_file_bytes >= 1, "max file size must be positive")
        _check(self.max_read_bytes >= 0, "max bytes read must not be negative")
        _check(self.max_grep_matches >= 1, "max grep matches must be positive")
        _check(0 < self.regex_timeout_s <= 600, "regex timeout must be in (0, 600] s")


@dataclass(frozen=True, slots=True)
class RLMConfig:
    """One RLM run's models and limits. Limits live on the host: code in the sandbox cannot change them."""

    root_model: str = DEFAULT_ROOT_MODEL
    sub_model: str | None = None  # None: the root model
    max_depth: int = 1  # 1: rlm_query falls back to llm_query; 2: one level of child RLMs; ...
    max_iterations: int = 30
    max_subcalls: int = 500  # llm_query / rlm_query calls over the whole run, children included
    max_tokens: int = 5_000_000  # prompt + completion, over the whole run
    deadline_s: float = 3600.0
    max_concurrent_subcalls: int = 16  # llm_query_batched's parallelism
    max_output_chars: int = 20_000  # of a cell's output fed back to the model
    max_completion_tokens: int = 8192  # the most one model reply may be (sent as max_tokens); 0: no cap
    recursive_llm_query: bool = False  # AStack style: llm_query itself starts a child RLM
    allowed_models: tuple[str, ...] = ()  # models code may name, besides the root and sub models
    tool_timeout_s: float = 60.0  # one custom tool call's wall clock on the host
    compaction: bool = False  # summarise the root's conversation near the context window (official)
    compaction_threshold_pct: float = 0.85  # of context_window_tokens, when compaction is on
    context_window_tokens: int = 128_000  # the root model's, estimated at 4 characters a token
    prices_per_mtok: tuple[tuple[str, float, float], ...] = ()  # (model, input $, output $) per 1M tokens
    # A root reply equal to an earlier one is asked for again at these temperatures, in turn, before
    # the model is told it repeats itself (a small model at a low temperature writes it once more). ()
    # never: told at once.
    repeat_temperatures: tuple[float, ...] = (0.7, 1.0)
    # An answer to a query over a directory, given before any code read a file of it (only names
    # listed), is a guess: the model is asked once to check it by reading, and the next FINAL is taken
    # (or, if none comes, this one). Off by default, as in the official RLM (whose semantics the
    # engine keeps). Measured with the real-model tier: it sent back a right count of files computed
    # from list_files(), which the model then changed to 0; the demo and the tier leave it off.
    check_unread_answers: bool = False
    # An answer that says nothing was found ("0 lines ...", "No WARN lines found", "not found"), is
    # sent back once to be checked against a few printed lines of the files (the 1.5B model counts
    # with code that finds nothing, e.g. a loop over a str's characters, and believes the 0). Off by
    # default, for the same reason; `rlm run --check-answers` turns it on. It also sends back once an
    # answer given in a reply whose grep found no line where file names matched (the store's note):
    # the model wrote the answer with the code, before it saw that output.
    check_empty_answers: bool = False
    # Root replies are asked with a stop sequence where the REPL's feedback would begin ("\nOutput of
    # block"): a small model goes on to write the output of its code itself, tokens that cost time and
    # are cut anyway (the engine runs a reply only up to there, with this off too). Off by default:
    # some endpoints refuse `stop` (OpenAI's reasoning models).
    stop_at_imagined_output: bool = False

    def __post_init__(self) -> None:
        _check(bool(self.root_model), "a root model is required")
        _check(1 <= self.max_depth <= 8, f"max depth must be between 1 and 8, got {self.max_depth}")
        _check(1 <= self.max_iterations <= 1000, "max iterations must be between 1 and 1000")
        _check(self.max_subcalls >= 0, "max sub-calls must not be negative")
        _check(self.max_tokens >= 1, "max tokens must be positive")
        _check(self.deadline_s > 0, "the deadline must be positive")
        _check(1 <= self.max_concurrent_subcalls <= 256, "max concurrent sub-calls must be in [1, 256]")
        _check(self.max_output_chars >= 100, "max output chars must be at least 100")
        _check(self.max_completion_tokens >= 0, "max completion tokens must not be negative")
        _check(0 < self.tool_timeout_s <= 3600, f"tool timeout must be in (0, 3600] s: {self.tool_timeout_s}")
        _check(0 < self.compaction_threshold_pct <= 1, "compaction_threshold_pct must be in (0, 1]")
        _check(self.context_window_tokens >= 1000, "context_window_tokens must be at least 1000")
        _check(
            all(isinstance(t, (int, float)) and 0 <= t <= 2 for t in self.repeat_temperatures),
            f"repeat_temperatures are temperatures in [0, 2]: {self.repeat_temperatures}",
        )

    @property
    def sub(self) -> str:
        return self.sub_model or self.root_model

    @staticmethod
    def root_model_default() -> str:
        return DEFAULT_ROOT_MODEL

    def price(self, model: str) -> tuple[float, float] | None:
        return next(((i, o) for m, i, o in self.prices_per_mtok if m == model), None)


@dataclass(frozen=True, slots=True)
class LLMEndpoint:
    """Where the models are. The key is read from the environment by the entry point only, never a file."""

    base_url: str | None = None  # None: OpenAI's
    api_key_env: str = "OPENAI_API_KEY"  # the variable the entry point reads the key from
    request_timeout_s: float = 120.0
    max_retries: int = 3
    name: str = "default"  # the settings file's [endpoints.NAME]
    models: tuple[str, ...] = ()  # models this endpoint serves; empty: any
    # Ask for every reply as a stream, also when nobody watches it: a server that stops generating
    # when its client goes away (llama.cpp's) then stops a reply the request timeout gave up on,
    # instead of generating it on while the retry waits behind it.
    stream: bool = False
    # A streamed reply that has started looping (its last 200 characters come a third time, the turns
    # between them the same) is read no further: one turn of the loop is kept (llm/loops.py). For
    # small models at a low temperature; needs `stream`.
    stop_repeating: bool = False
    api_key: str = field(default="", repr=False)  # the resolved key: never shown, logged or put in a file

    def __post_init__(self) -> None:
        _check(0 < self.request_timeout_s <= 3600, "request timeout must be in (0, 3600] s")
        _check(0 <= self.max_retries <= 10, "max retries must be between 0 and 10")
        _check(bool(self.name), "an endpoint needs a name")
        _check(all(self.models), "a model name must not be empty")
        _check(
            self.stream or not self.stop_repeating,
            f"endpoints.{self.name}.stop_repeating needs stream = true (rlm run --stream-replies): a "
            "loop is seen as the reply streams",
        )


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """Where sandboxes come from and how they are made: set by the operator, not by a tenant."""

    image: str = DEFAULT_IMAGE
    runtime: Runtime = Runtime.RUNC
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    socket_root: str | None = None  # where per-sandbox socket directories go; None: the temp dir
    sandbox_uid: int = 10001
    seccomp_profile: str = DEFAULT_SECCOMP_PROFILE  # made by make setup; no sandbox starts without it
    allow_weak_host: bool = False  # operator override of the host checks; logged loudly on every start
    docker_url: str | None = None  # the engine's address; None: the local socket unix:///var/run/docker.sock
    runtimes: tuple[Runtime, ...] = (Runtime.RUNC, Runtime.RUNSC)  # offered to tenants; includes `runtime`
    # Where warm-pool sandboxes get their context at hand-out: slots/ (a shared mount) and staging/ (a
    # private one) beneath it, made at first use (needs root). "": contexts of pooled sandboxes are
    # served over the socket instead.
    mount_root: str = "/run/rlm"

    def __post_init__(self) -> None:
        _check(
            not self.mount_root or self.mount_root.startswith("/"),
            f"mount_root must be an absolute path or empty, got {self.mount_root!r}",
        )
        _check(bool(self.runtimes), "at least one runtime must be offered")
        names = ", ".join(str(r) for r in self.runtimes)
        _check(
            self.runtime in self.runtimes,
            f"the default runtime {str(self.runtime)!r} must be among the runtimes offered ({names})",
        )


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidInputError(message)


# What a tenant's request may set, and how each value is read. Anything else is refused: the container
# arguments come from container_kwargs alone, never from a request.
_REQUEST_FIELDS = {
    "memory": ("memory_bytes", parse_size),
    "cpus": ("cpus", float),
    "pids": ("pids", int),
    "nofile": ("nofile", int),
    "tmpfs": ("tmpfs_bytes", parse_size),
    "file_size": ("file_size_bytes", parse_size),
    "timeout": ("cell_timeout_s", float),
    "max_output_bytes": ("max_output_bytes", int),
}
# Named so the refusal says what it is: each would undo a layer of the sandbox.
FORBIDDEN_REQUEST_KEYS = frozenset(
    {
        "privileged",
        "cap_add",
        "capabilities",
        "devices",
        "device_requests",
        "network",
        "network_mode",
        "pid_mode",
        "ipc_mode",
        "uts_mode",
        "userns_mode",
        "security_opt",
        "seccomp",
        "apparmor",
        "seccomp_profile",
        "cgroup_parent",
        "cgroupns",
        "volumes",
        "mounts",
        "binds",
        "docker_socket",
        "user",
        "read_only",
        "sysctls",
        "runtime_args",
        "image",
    }
)


def limits_from_request(
    request: Mapping[str, object],
    base: SandboxLimits | None = None,
    runtimes: tuple[Runtime, ...] = (Runtime.RUNC, Runtime.RUNSC),
) -> tuple[SandboxLimits, Runtime | None]:
    """A tenant's sandbox request -> limits (and a runtime, if named). Refuses anything else by name.

    `base` is the operator's limits: a request may lower each one, never raise it. `runtimes` are the
    runtimes the operator lets tenants choose.
    """
    base = base or SandboxLimits()
    changes: dict[str, object] = {}
    runtime = None
    for key, value in request.items():
        if key in FORBIDDEN_REQUEST_KEYS:
            raise InvalidInputError(f"a sandbox request may not set {key!r}: it would weaken the sandbox")
        if key == "runtime":
            runtime = Runtime.parse(str(value))
            if runtime not in runtimes:
                raise InvalidInputError(f"runtime {runtime.value!r} is not offered here")
            continue
        if key not in _REQUEST_FIELDS:
            allowed = ", ".join(sorted([*_REQUEST_FIELDS, "runtime"]))
            raise InvalidInputError(f"unknown sandbox request field {key!r} (allowed: {allowed})")
        name, read = _REQUEST_FIELDS[key]
        try:
            wanted = read(value)  # type: ignore[operator]
        except (TypeError, ValueError):
            raise InvalidInputError(f"{key}: not a valid value: {value!r}") from None
        if wanted > getattr(base, name):
            raise InvalidInputError(
                f"{key} {value!r} is above this operator's limit of {getattr(base, name)}"
            )
        changes[name] = wanted
    return replace(base, **changes), runtime  # type: ignore[arg-type]
