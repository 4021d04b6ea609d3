"""Our seccomp profile: the engine's upstream default profile, hardened, pinned.

The upstream default (moby's profiles/seccomp/default.json, as Debian ships it for the engine we run)
is not copied into this repository: `make setup` extracts it from Debian's package, checks it against
UPSTREAM_SHA256 (a changed upstream fails the set-up until someone reviews it and moves the pin), and
`harden()` applies our blocks on top. Measured on these machines with Docker 20.10's built-in profile:
a fully hardened runc container could call io_uring_setup (it reaches the kernel) and open AF_VSOCK
sockets (toward the hypervisor). Current upstream blocks io_uring and AF_VSOCK; AF_ALG is the family
behind CVE-2026-31431. Our profile blocks all three, through the 32-bit ABI and high-bit family
values too (both found by review, both tested).

    python -m orchestrator.security.seccomp UPSTREAM.json OUT.json
    python -m orchestrator.security.seccomp --verify PROFILE.json
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

BLOCKED_SYSCALLS = ("io_uring_setup", "io_uring_enter", "io_uring_register", "socketcall")
AF_ALG, AF_VSOCK = 38, 40
FIRST_REFUSED_FAMILY = AF_ALG  # socket() is allowed for families below it only


def harden(upstream: dict[str, Any]) -> dict[str, Any]:
    """The upstream profile, with io_uring and socketcall removed, no secondary ABIs, and socket()
    allowed only for address families below 38 (AF_ALG), so AF_ALG and AF_VSOCK (40) are refused.

    - One rule `family < 38`: libseccomp compares all 64 bits unsigned while the kernel reads the
      family as an int, so a "greater than" rule let 0x1_00000028 through as AF_VSOCK; "below 38"
      cannot be fooled by high bits. The families above 38 (KCM, QIPCRTR, SMC, XDP, MCTP, NFC) go too.
    - No secondary architectures: from a 64-bit process, `int 0x80` reached i386 socketcall(),
      whose arguments sit behind a pointer the filter cannot read. Any 32-bit call now kills.
    """
    profile = copy.deepcopy(upstream)
    if profile.get("defaultAction") not in ("SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS"):
        raise ValueError("the upstream profile must deny by default")
    for arch in profile.get("archMap") or []:
        arch["subArchitectures"] = []
    kept = []
    for rule in profile["syscalls"]:
        names = [n for n in rule["names"] if n not in BLOCKED_SYSCALLS and n != "socket"]
        if "socket" in rule["names"] and rule.get("args"):
            raise ValueError("the upstream profile already restricts socket(): review the hardening")
        if names:
            kept.append({**rule, "names": names})
    kept.append(
        {
            "names": ["socket"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": FIRST_REFUSED_FAMILY, "valueTwo": 0, "op": "SCMP_CMP_LT"}],
            "comment": "rlm: socket() for address families below AF_ALG (38) only",
        }
    )
    profile["syscalls"] = kept
    verify(profile)
    return profile


def verify(profile: dict[str, Any]) -> None:
    """Raise ValueError unless `profile` carries every one of our blocks (checked again at load time)."""
    if profile.get("defaultAction") not in ("SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS"):
        raise ValueError("the profile does not deny by default")
    if any(arch.get("subArchitectures") for arch in profile.get("archMap") or []):
        raise ValueError("the profile allows secondary (32-bit) system call ABIs")
    allowed = allowed_syscalls(profile)
    if set(BLOCKED_SYSCALLS) & allowed:
        raise ValueError(f"the profile allows {sorted(set(BLOCKED_SYSCALLS) & allowed)}")
    for rule in profile["syscalls"]:
        if "socket" in rule["names"] and rule["action"] == "SCMP_ACT_ALLOW":
            args = rule.get("args") or []
            if not (
                len(args) == 1
                and args[0].get("index") == 0
                and args[0].get("op") == "SCMP_CMP_LT"
                and args[0].get("value", 1 << 64) <= FIRST_REFUSED_FAMILY
            ):
                raise ValueError("the profile allows socket() beyond families below AF_ALG")


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
    if len(sys.argv) == 3 and sys.argv[1] == "--verify":
        try:
            verify(json.loads(Path(sys.argv[2]).read_text()))
        except (OSError, ValueError) as exc:
            raise SystemExit(f"{sys.argv[2]}: {exc}") from None
    elif len(sys.argv) == 3:
        build(sys.argv[1], sys.argv[2])
    else:
        raise SystemExit(__doc__)
