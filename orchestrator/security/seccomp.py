"""Our seccomp profile: the engine's upstream default profile, hardened, pinned.

The upstream default (moby's profiles/seccomp/default.json, as Debian ships it for the engine we run)
is not copied into this repository: `make setup` extracts it from Debian's package, checks it against
UPSTREAM_SHA256 (a changed upstream fails the set-up until someone reviews it and moves the pin), and
`harden()` applies our blocks on top. Measured on these machines with Docker 20.10's built-in profile:
a fully hardened runc container could call io_uring_setup (it reaches the kernel) and open AF_VSOCK
sockets (toward the hypervisor). Current upstream blocks io_uring and AF_VSOCK; AF_ALG is the family
behind CVE-2026-31431. Our profile blocks all three.

    python -m orchestrator.security.seccomp UPSTREAM.json OUT.json
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

# sha256 of profiles/seccomp/default.json in Debian's golang-github-docker-docker-dev
# 20.10.24+dfsg1-1+deb12u1 (the engine installed by make setup).
UPSTREAM_SHA256 = "e5e91f884647e7332b3f89280777752f563df4f1372a186f14ddb7bf2f55cf61"

BLOCKED_SYSCALLS = ("io_uring_setup", "io_uring_enter", "io_uring_register")
AF_ALG, AF_NFC, AF_VSOCK = 38, 39, 40
BLOCKED_FAMILIES = (AF_ALG, AF_VSOCK)


def harden(upstream: dict[str, Any]) -> dict[str, Any]:
    """The upstream profile, with io_uring removed and socket() refused for AF_ALG and AF_VSOCK.

    socket() stays allowed for every other family through three single-comparison rules (family below
    38, equal to 39, above 40): libseccomp takes one comparison per argument per rule, and anything no
    rule allows falls to the default action (an error).
    """
    profile = copy.deepcopy(upstream)
    if profile.get("defaultAction") not in ("SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS"):
        raise ValueError("the upstream profile must deny by default")
    kept = []
    for rule in profile["syscalls"]:
        names = [n for n in rule["names"] if n not in BLOCKED_SYSCALLS and n != "socket"]
        if "socket" in rule["names"] and rule.get("args"):
            raise ValueError("the upstream profile already restricts socket(): review the hardening")
        if names:
            kept.append({**rule, "names": names})
    kept += [
        _socket_rule("SCMP_CMP_LT", AF_ALG),
        _socket_rule("SCMP_CMP_EQ", AF_NFC),
        _socket_rule("SCMP_CMP_GT", AF_VSOCK),
    ]
    profile["syscalls"] = kept
    return profile


def _socket_rule(op: str, value: int) -> dict[str, Any]:
    return {
        "names": ["socket"],
        "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": value, "valueTwo": 0, "op": op}],
        "comment": "rlm: socket() for every family but AF_ALG (38) and AF_VSOCK (40)",
    }


def build(upstream_path: str | Path, out_path: str | Path, expected_sha256: str = UPSTREAM_SHA256) -> None:
    raw = Path(upstream_path).read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != expected_sha256:
        raise SystemExit(
            f"upstream seccomp profile {upstream_path} has sha256 {digest}, "
            f"not the pinned {expected_sha256}: "
            "review what changed, then update UPSTREAM_SHA256 in orchestrator/security/seccomp.py"
        )
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(harden(json.loads(raw)), indent=1) + "\n")
    tmp.replace(out)


def allowed_syscalls(profile: dict[str, Any]) -> set[str]:
    """Names some rule allows (with or without conditions)."""
    return {n for rule in profile["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW" for n in rule["names"]}


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    build(sys.argv[1], sys.argv[2])
