"""Fail closed on weak hosts: the engine's, runc's and runsc's versions and runsc's settings.

Pure: `evaluate(facts)` returns what is wrong; the Docker adapter gathers the facts. Floors are what
this project was built and tested on (Debian bookworm: Docker 20.10.24, runc 1.1.5+ds1-1+deb12u1,
runsc 20221219). runc: CVE-2024-21626 was fixed in 1.1.12 upstream and backported by Debian in
1.1.5+ds1-1+deb12u1, which the engine reports as runc's commit. An operator may override with an
explicit flag, which is logged loudly on every start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FLOORS = {"docker": (20, 10, 0), "runc": (1, 1, 12), "runsc": (2022, 12, 19)}
# Debian backports fixes without moving the upstream version: bookworm's runc 1.1.5+ds1 carries the
# CVE-2024-21626 fix from revision +deb12u1 on; the engine reports it as the runc commit.
_DEBIAN_PATCHED_RUNC = re.compile(r"^1\.1\.5\+ds1-\d+\+deb12u(\d+)")
RUNSC_REQUIRED_ARGS = ("--network=none", "--host-uds=open")


@dataclass(frozen=True, slots=True)
class HostFacts:
    docker_version: str
    runc_version: str | None
    runsc_version: str | None  # None: unknown (remote engine, or runsc not installed here)
    runsc_args: tuple[str, ...] | None  # None: runsc not registered
    runc_commit: str | None = None  # Components.runc.Details.GitCommit: Debian's full revision
    extra: dict[str, str] = field(default_factory=dict)


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """'20.10.24+dfsg1' -> (20, 10, 24); 'runsc version 0.0~20221219.0' -> (2022, 12, 19)."""
    if not text:
        return None
    dated = re.search(r"(20\d\d)(\d\d)(\d\d)", text)
    if dated and "runsc" in text:
        return tuple(int(g) for g in dated.groups())
    numbers = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not numbers:
        return None
    return tuple(int(g or 0) for g in numbers.groups())


def evaluate(facts: HostFacts, runtime: str) -> list[str]:
    """Every reason this host is too weak to run `runtime` sandboxes; empty when it is fine."""
    problems = []
    docker = parse_version(facts.docker_version)
    if docker is None or docker < FLOORS["docker"]:
        problems.append(
            f"Docker engine {facts.docker_version} is older than {_v(FLOORS['docker'])}: upgrade docker.io"
        )
    if runtime == "runc" and not runc_is_patched(facts.runc_version, facts.runc_commit):
        problems.append(
            f"runc {facts.runc_version or 'of unknown version'} is older than "
            f"{_v(FLOORS['runc'])}: upgrade runc"
        )
    if runtime == "runsc":
        if facts.runsc_args is None:
            problems.append("runsc is not registered with dockerd: run `make setup`")
        else:
            uds = [a for a in facts.runsc_args if a.startswith("--host-uds") or a.startswith("-host-uds")]
            if uds != ["--host-uds=open"]:
                problems.append(
                    "runsc must run with --host-uds=open exactly (never create or all), "
                    f"found {uds or 'none'}"
                )
            network = [a for a in facts.runsc_args if a.lstrip("-").startswith("network")]
            if network != ["--network=none"]:  # Go's flags: the last value wins, so one and only one
                problems.append(f"runsc must run with --network=none exactly, found {network or 'none'}")
        runsc = parse_version(facts.runsc_version)
        if runsc is None or runsc < FLOORS["runsc"]:
            problems.append(
                f"runsc {facts.runsc_version or 'of unknown version'} is older than release "
                f"{''.join(f'{p:02d}' for p in FLOORS['runsc'])}: upgrade runsc"
            )
    return problems


def runc_is_patched(version: str | None, commit: str | None) -> bool:
    """runc 1.1.12 or later, or Debian's 1.1.5+ds1 at revision +deb12u1 or later."""
    parsed = parse_version(version)
    if parsed is not None and parsed >= FLOORS["runc"]:
        return True
    match = _DEBIAN_PATCHED_RUNC.match(commit or "")
    return match is not None and int(match.group(1)) >= 1


def _v(parts: tuple[int, ...]) -> str:
    return ".".join(str(p) for p in parts)
