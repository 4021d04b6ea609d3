"""Fail closed on weak hosts: the pure evaluation of the engine's facts."""

from __future__ import annotations

import pytest

from orchestrator.security.host_check import HostFacts, evaluate, parse_version

GOOD = HostFacts(  # what make setup installs, as the engine reports it
    "20.10.24+dfsg1",
    "1.1.5+ds1",
    "runsc version 0.0~20221219.0",
    ("--network=none", "--host-uds=open"),
    runc_commit="1.1.5+ds1-1+deb12u1",
)


def test_this_machines_versions_pass() -> None:
    """The versions make setup installs pass under both runtimes."""
    assert evaluate(GOOD, "runc") == [] and evaluate(GOOD, "runsc") == []


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("20.10.24+dfsg1", (20, 10, 24)),
        ("1.1.5+ds1", (1, 1, 5)),
        ("runsc version 0.0~20221219.0", (2022, 12, 19)),
        ("", None),
    ],
)
def test_versions_parse(text: str, parsed: tuple[int, ...] | None) -> None:
    """Debian's version strings and runsc's dated releases read as comparable tuples."""
    assert parse_version(text) == parsed


@pytest.mark.parametrize(
    ("facts", "runtime", "needle"),
    [
        (HostFacts("19.03.13", "1.1.5", None, None), "runc", "Docker engine 19.03.13"),
        (HostFacts("20.10.24", "1.0.0-rc93", None, None), "runc", "runc 1.0.0-rc93"),
        (HostFacts("20.10.24", "1.1.11", None, None), "runc", "runc 1.1.11"),  # before the CVE-2024-21626 fix
        (HostFacts("20.10.24", "1.1.5+ds1", None, None, runc_commit="1.1.5+ds1-1"), "runc", "runc 1.1.5+ds1"),
        (
            HostFacts(
                "20.10.24", "1.1.5", "runsc version 0.0~20220101.0", ("--network=none", "--host-uds=open")
            ),
            "runsc",
            "runsc runsc version 0.0~20220101.0",
        ),
        (
            HostFacts("20.10.24", "1.1.5", GOOD.runsc_version, ("--network=none", "--host-uds=all")),
            "runsc",
            "--host-uds=open exactly",
        ),
        (
            HostFacts(
                "20.10.24",
                "1.1.5",
                GOOD.runsc_version,
                ("--network=none", "--host-uds=open", "--host-uds=create"),
            ),
            "runsc",
            "--host-uds=open exactly",
        ),
        (HostFacts("20.10.24", "1.1.5", GOOD.runsc_version, ("--host-uds=open",)), "runsc", "--network=none"),
        (
            HostFacts(
                "20.10.24",
                "1.1.5",
                GOOD.runsc_version,
                ("--network=none", "--host-uds=open", "--network=host"),
            ),
            "runsc",
            "--network=none exactly",
        ),
        (HostFacts("20.10.24", "1.1.5", GOOD.runsc_version, None), "runsc", "not registered"),
    ],
)
def test_weak_hosts_are_refused_with_what_to_fix(facts: HostFacts, runtime: str, needle: str) -> None:
    """Each weakness is named with what to upgrade or change."""
    problems = evaluate(facts, runtime)
    assert any(needle in p for p in problems), problems


def test_patched_runc_passes() -> None:
    """Upstream 1.1.12+ passes, and so does Debian's backport by its revision."""
    assert evaluate(HostFacts("20.10.24", "1.1.12", None, None), "runc") == []
    assert (
        evaluate(HostFacts("20.10.24", "1.1.5+ds1", None, None, runc_commit="1.1.5+ds1-1+deb12u3"), "runc")
        == []
    )
