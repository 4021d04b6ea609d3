"""Errors raised inside the user's code by the sandbox API.

SandboxAPIError
 +-- NotAvailableError       the host does not serve this function in this session
 +-- ContextPathError        a path that is not a readable file inside the context root (also ValueError)
 +-- LimitExceededError      a per-run limit (bytes read, sub-calls, tokens) was reached
 +-- HostCallError           any other failure of a callback, with the host's message
 +-- ToolError               a custom tool raised an exception that is not a built-in one (the
                             sandbox raises a subclass named like it; built-in ones are raised as
                             themselves, e.g. ValueError)
"""

from __future__ import annotations


class SandboxAPIError(Exception):
    """Root of the errors the sandbox API raises in user code."""


class NotAvailableError(SandboxAPIError):
    """The host does not serve this function in this session."""


class ContextPathError(SandboxAPIError, ValueError):
    """A path that is outside the context root, or not a regular readable file."""


class PatternError(SandboxAPIError, ValueError):
    """A regular expression or glob that is invalid, too long, or ran past its time limit."""


class LimitExceededError(SandboxAPIError):
    """A per-run limit was reached."""


class HostCallError(SandboxAPIError):
    """A callback failed on the host."""


class ToolError(SandboxAPIError):
    """A custom tool raised, on the host, an exception of a type the sandbox does not have."""
