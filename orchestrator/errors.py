"""One exception root for everything the orchestrator raises on purpose.

    RLMError                       .code: a gRPC status name, .message: one line for a person
     +-- InvalidInputError         bad input from a caller (a size, a runtime, code that is not UTF-8)
     |    +-- ContextPathError     a path outside the context root, or not a regular readable file
     |    +-- PatternError         a regular expression or glob that cannot be used (or ran too long)
     +-- ContextLimitError         a per-run context limit (file size, bytes read) was reached
     +-- RunLimitError             a per-run RLM limit (sub-calls, tokens, depth, deadline) was reached
     +-- LLMError                  the model endpoint failed (after retries) or refused the request
     +-- EngineUnavailableError    the Docker engine cannot be reached, or the image is missing
     +-- SandboxError              a sandbox could not be started or used
          +-- SandboxStartError    it did not start, or its runtime never said hello
          +-- SandboxClosedError   it was used after it ended (closed, killed, timed out)

Errors from the docker SDK are translated at the adapter (`raise ... from exc`); nothing else in the
orchestrator sees a docker exception. Each class's `code` names the gRPC status it leaves by.
"""

from __future__ import annotations


class RLMError(Exception):
    """Root of the orchestrator's errors."""

    code = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInputError(RLMError):
    code = "INVALID_ARGUMENT"


class ContextPathError(InvalidInputError):
    """One error shape for every refused path; `.path` names it, as the caller gave it."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(f"{message}: {path!r}")
        self.path = path


class PatternError(InvalidInputError):
    pass


class ContextLimitError(RLMError):
    code = "RESOURCE_EXHAUSTED"


class RunLimitError(RLMError):
    code = "RESOURCE_EXHAUSTED"


class LLMError(RLMError):
    code = "UNAVAILABLE"

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
    code = "UNAVAILABLE"


class SandboxError(RLMError):
    code = "INTERNAL"


class SandboxStartError(SandboxError):
    code = "UNAVAILABLE"


class SandboxClosedError(SandboxError):
    code = "FAILED_PRECONDITION"


def all_error_classes() -> list[type[RLMError]]:
    found: list[type[RLMError]] = []
    pending: list[type[RLMError]] = [RLMError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found
