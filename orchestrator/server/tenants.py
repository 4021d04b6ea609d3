"""Tenants of `rlm serve`: who may call, with which API keys, under which quotas.

    key = new_api_key()                    # "rlm_...": shown once to the operator, never stored
    digest = key_digest(key)               # its sha256, hex: the only form the settings file holds
    keys = TenantKeys(settings.tenants)
    tenant = keys.resolve(presented)       # a Tenant, or None for a missing, malformed or unknown key

A tenant is a frozen value read from the settings file (`[tenants.NAME]`, `keys = ["sha256:<hex>"]`,
`[tenants.NAME.quotas]`). Several keys per tenant allow rotation: add a new one, move the clients,
revoke the old. This module does no I/O and imports no gRPC: the settings loader uses it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..config import Runtime
from ..errors import InvalidInputError

KEY_PREFIX = "rlm_"  # recognisable in a leaked log or a secret scanner's rules
HASH_PREFIX = "sha256:"  # how the settings file spells a stored key
# The sandbox manager's tenant ids (orchestrator/sandbox/manager.py): a tenant's name labels its sandboxes.
TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_KEY_SHAPE = re.compile(rf"{KEY_PREFIX}[A-Za-z0-9_-]{{16,128}}")
_SMALLEST_MEMORY = 32 * 1024**2  # SandboxLimits' own floor: no smaller sandbox starts
_MAX_PRESENTED = 256  # characters of a presented key that are hashed: bounds the work per call


@dataclass(frozen=True, slots=True)
class TenantQuotas:
    """What one tenant may use. Each is enforced by the server (quotas.py, auth.py), never by a sandbox."""

    max_sandboxes: int = 4  # live at once; one more is refused (RESOURCE_EXHAUSTED), not queued
    max_memory_bytes: int = 1024**3  # per sandbox: the most a sandbox request may ask for
    max_cpus: float = 2.0  # per sandbox, in cores
    max_run_s: float = 3600.0  # wall clock of one run; asking for more is refused
    tokens_per_day: int = 10_000_000  # prompt + completion over a UTC day, every llm_query included
    context_bytes: int = 1024**3  # uploaded contexts the server stores for this tenant, in total
    runtimes: tuple[Runtime, ...] = (Runtime.RUNC, Runtime.RUNSC)  # ("runsc",): gVisor required
    models: tuple[str, ...] = ()  # models it may name; empty: any the operator serves
    calls_per_s: float = 10.0  # sustained gRPC calls per second (a token bucket)
    burst: int = 20  # calls allowed at once above the sustained rate

    def __post_init__(self) -> None:
        _check(0 <= self.max_sandboxes <= 10_000, "max_sandboxes must be in [0, 10000]")
        _check(
            self.max_memory_bytes >= _SMALLEST_MEMORY,
            "max_memory_bytes must be at least 32m (the smallest sandbox that starts)",
        )
        _check(0.01 <= self.max_cpus <= 256, f"max_cpus must be between 0.01 and 256, got {self.max_cpus}")
        _check(0 < self.max_run_s <= 7 * 86400, f"max_run_s must be in (0, 604800], got {self.max_run_s}")
        _check(self.tokens_per_day >= 0, "tokens_per_day must not be negative")
        _check(self.context_bytes >= 0, "context_bytes must not be negative")
        _check(bool(self.runtimes), "runtimes must name at least one runtime")
        _check(len(set(self.runtimes)) == len(self.runtimes), "runtimes must not repeat")
        _check(all(self.models), "a model name must not be empty")
        _check(0 < self.calls_per_s <= 1_000_000, f"calls_per_s must be in (0, 1e6], got {self.calls_per_s}")
        _check(1 <= self.burst <= 1_000_000, f"burst must be in [1, 1e6], got {self.burst}")


@dataclass(frozen=True, slots=True)
class Tenant:
    """One tenant: its name (the settings file's [tenants.NAME]), its keys' sha256 digests, its quotas."""

    name: str
    key_sha256: tuple[str, ...] = field(default=(), repr=False)  # hex digests; no key is ever stored
    quotas: TenantQuotas = field(default_factory=TenantQuotas)

    def __post_init__(self) -> None:
        _check(
            isinstance(self.name, str) and TENANT_NAME.fullmatch(self.name) is not None,
            f"a tenant name is 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit: "
            f"{str(self.name)[:80]!r}",
        )
        for digest in self.key_sha256:
            _check(
                isinstance(digest, str) and _HEX_DIGEST.fullmatch(digest) is not None,
                "a key digest is 64 lowercase hex digits (a sha256)",
            )
        _check(len(set(self.key_sha256)) == len(self.key_sha256), "a tenant's key digests must not repeat")


def new_api_key() -> str:
    """A new API key: 256 random bits, URL-safe, with the `rlm_` prefix."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_digest(key: str) -> str:
    """The stored form of a key: its sha256, hex.

    A fast hash is right here, unlike for passwords: a key is 256 random bits, so there is no guessing
    to slow down, and a salt or a slow KDF would buy nothing but time spent on every call.
    """
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def parse_stored_digest(text: str) -> str:
    """ "sha256:<64 hex digits>" (as the settings file holds a key) -> the hex digest, lowercase."""
    if not isinstance(text, str) or not text.startswith(HASH_PREFIX):
        raise InvalidInputError(f'a stored key is "{HASH_PREFIX}<64 hex digits>"')
    digest = text[len(HASH_PREFIX) :].lower()
    if not _HEX_DIGEST.fullmatch(digest):
        raise InvalidInputError(f'a stored key is "{HASH_PREFIX}<64 hex digits>"')
    return digest


def is_key_shaped(key: str) -> bool:
    """Whether `key` looks like one of ours (prefix, alphabet, length); says nothing about validity."""
    return _KEY_SHAPE.fullmatch(key) is not None


class TenantKeys:
    """Resolves a presented API key to its tenant, in time that depends only on how many keys exist."""

    def __init__(self, tenants: Iterable[Tenant]) -> None:
        self._table = [(bytes.fromhex(digest), tenant) for tenant in tenants for digest in tenant.key_sha256]
        digests = [digest for digest, _ in self._table]
        if len(set(digests)) != len(digests):
            raise InvalidInputError("a key belongs to one tenant: the same digest is listed twice")

    def resolve(self, presented: str | None) -> Tenant | None:
        """The tenant holding `presented`, else None: missing, malformed and unknown keys look alike.

        The presented key is always hashed and compared with every digest of every tenant
        (hmac.compare_digest, no early exit), so the time taken says neither which tenant matched nor
        whether any did, nor whether the key was well formed.
        """
        text = (presented or "")[:_MAX_PRESENTED]
        candidate = hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()
        found: Tenant | None = None
        for digest, tenant in self._table:
            if hmac.compare_digest(digest, candidate):
                found = tenant
        return found if presented is not None and is_key_shaped(presented) else None


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidInputError(message)
