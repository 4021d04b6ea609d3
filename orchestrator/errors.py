"""One exception root for everything the orchestrator raises on purpose.

    RLMError                       .code: a gRPC status name, .message: one line for a person
     +-- InvalidInputError         bad input from a caller (a size, a runtime, code that is not UTF-8)
     |    +-- ContextPathError     a path outside the context root, or not a regular readable file
     |    +-- PatternError         a regular expression or glob that cannot be used (or ran too long)
     |    +-- ConfigError          a refused settings file or value (unreadable, bad TOML, unknown key)
     |    +-- UploadError          a refused uploaded archive (a link, an escaping name, a bomb, corrupt)
     +-- ContextLimitError         a per-run context limit (file size, bytes read) was reached
     +-- RunLimitError             a per-run RLM limit (sub-calls, tokens, depth, deadline) was reached
     +-- QuotaError                a tenant's quota (.quota names it, e.g. "context_bytes") would be exceeded
     +-- NotFoundError             no such object for this caller (a missing one and another tenant's alike)
     +-- LLMError                  the model endpoint failed (after retries) or refused the request
     +-- EngineUnavailableError    the Docker engine cannot be reached, or the image is missing
     +-- StoreError                the run store (SQLite or PostgreSQL) failed: unreachable, refused, corrupt
     +-- SandboxError              a sandbox could not be started or used
          +-- SandboxStartError    it did not start, or its runtime never said hello
          +-- SandboxClosedError   it was used after it ended (closed, killed, timed out)

Errors from the docker SDK are translated at the adapter (`raise ... from exc`); nothing else in the
orchestrator sees a docker exception. Likewise those of SQLAlchemy and the database drivers become a
StoreError in orchestrator/store/sql.py. How each class leaves by gRPC (its status code, and the exception
class the sandbox's code sees) is one table, `WIRE`, at the end of this module: a class added without a
row fails a test. `.code` reads it.
"""

from __future__ import annotations


class RLMError(Exception):
    """Root of the orchestrator's errors."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def code(self) -> str:
        """The gRPC status name this error leaves by."""
        return grpc_status(self)


class InvalidInputError(RLMError):
    """Bad input from a caller."""


class ContextPathError(InvalidInputError):
    """One error shape for every refused path; `.path` names it, as the caller gave it."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(f"{message}: {path!r}")
        self.path = path


class PatternError(InvalidInputError):
    """A regular expression or glob that cannot be used, or ran past its time."""


class ConfigError(InvalidInputError):
    """A refused setting; the message names the dotted key and the file (or variable) it came from."""


class UploadError(InvalidInputError):
    """A refused uploaded archive; `.entry` names the entry to blame (as the archive spells it), if any."""

    def __init__(self, message: str, *, entry: str | None = None) -> None:
        super().__init__(message if entry is None else f"{message}: {entry[:200]!r}")
        self.entry = entry


class ContextLimitError(RLMError):
    """A per-run context limit (file size, bytes read) was reached."""


class RunLimitError(RLMError):
    """A per-run RLM limit (sub-calls, tokens, depth, deadline) was reached."""


class QuotaError(RLMError):
    """A tenant's quota would be exceeded; `.quota` names it (e.g. "context_bytes")."""

    def __init__(self, message: str, *, quota: str) -> None:
        super().__init__(message)
        self.quota = quota


class NotFoundError(RLMError):
    """No such object for this caller: a missing one and another tenant's get the same error."""


class LLMError(RLMError):
    """The model endpoint failed (after retries) or refused the request."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class EngineUnavailableError(RLMError):
    """The sandbox engine cannot be reached, or the image or profile is missing."""


class StoreError(RLMError):
    """The run store failed (the database cannot be opened or reached, or refused a statement).

    The message names what failed and the database (a URL without its password, or a file path)."""


class SandboxError(RLMError):
    """A sandbox could not be started or used."""


class SandboxStartError(SandboxError):
    """The sandbox did not start, or its runtime never said hello."""


class SandboxClosedError(SandboxError):
    """The sandbox was used after it ended (closed, killed, timed out)."""


def all_error_classes() -> list[type[RLMError]]:
    found: list[type[RLMError]] = []
    pending: list[type[RLMError]] = [RLMError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


# class -> (gRPC status name, the exception class the sandbox's code sees when a callback fails with it).
# One row per class, the exact class: tests/test_units.py fails when a class has no row.
WIRE: dict[type[RLMError], tuple[str, str]] = {
    RLMError: ("INTERNAL", "HostCallError"),
    InvalidInputError: ("INVALID_ARGUMENT", "HostCallError"),
    ConfigError: ("INVALID_ARGUMENT", "HostCallError"),
    UploadError: ("INVALID_ARGUMENT", "HostCallError"),
    ContextPathError: ("INVALID_ARGUMENT", "ContextPathError"),
    PatternError: ("INVALID_ARGUMENT", "PatternError"),
    ContextLimitError: ("RESOURCE_EXHAUSTED", "LimitExceededError"),
    RunLimitError: ("RESOURCE_EXHAUSTED", "LimitExceededError"),
    QuotaError: ("RESOURCE_EXHAUSTED", "LimitExceededError"),
    NotFoundError: ("NOT_FOUND", "HostCallError"),
    LLMError: ("UNAVAILABLE", "HostCallError"),
    EngineUnavailableError: ("UNAVAILABLE", "HostCallError"),
    StoreError: ("UNAVAILABLE", "HostCallError"),
    SandboxError: ("INTERNAL", "HostCallError"),
    SandboxStartError: ("UNAVAILABLE", "HostCallError"),
    SandboxClosedError: ("FAILED_PRECONDITION", "HostCallError"),
}


def _row(exc: RLMError) -> tuple[str, str]:
    for cls in type(exc).__mro__:  # a subclass outside this module (none today) takes its parent's row
        if cls in WIRE:
            return WIRE[cls]
    return WIRE[RLMError]


def grpc_status(exc: RLMError) -> str:
    """The gRPC status name for one of our errors."""
    return _row(exc)[0]


def sandbox_error_kind(exc: RLMError) -> str:
    """The exception class a sandbox's code sees for one of our errors."""
    return _row(exc)[1]
