"""Who owns a sandbox, and whether that owner is still alive: the reaper's pure logic.

An owner is one SandboxManager in one orchestrator process, named `host/pid/starttime/instance`. The
start time (from /proc) keeps a reused pid from passing for the dead owner; the instance tells two
managers of one process apart, so one never reaps the other's live sandboxes. A container whose owner
is on this host and not alive is an orphan; containers of other hosts sharing the engine are never
touched.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .backend import ManagedSandbox


@dataclass(frozen=True, slots=True)
class OwnerId:
    host: str
    pid: int
    start_ticks: int
    instance: str

    def __str__(self) -> str:
        return f"{self.host}/{self.pid}/{self.start_ticks}/{self.instance}"

    @classmethod
    def parse(cls, text: str) -> OwnerId | None:
        parts = text.split("/")
        if len(parts) != 4 or not parts[1].isdigit() or not parts[2].isdigit():
            return None
        return cls(parts[0], int(parts[1]), int(parts[2]), parts[3])

    @classmethod
    def new(cls) -> OwnerId:
        """A fresh owner identity for one manager of this process."""
        pid = os.getpid()
        return cls(socket.gethostname(), pid, process_start_ticks(pid) or 0, secrets.token_hex(4))


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def is_orphan(
    owner_label: str | None,
    this_host: str,
    start_ticks_of: Callable[[int], int | None] = process_start_ticks,
) -> bool:
    """True when the container's owner is a process on this host that no longer runs."""
    owner = OwnerId.parse(owner_label or "")
    if owner is None:
        return True  # carries our managed label but no readable owner: nobody can claim it
    if owner.host != this_host:
        return False
    return start_ticks_of(owner.pid) != owner.start_ticks


def reapable(
    managed: Sequence[ManagedSandbox],
    *,
    live: set[str],
    me: str,
    host: str,
    start_ticks_of: Callable[[int], int | None] = process_start_ticks,
) -> list[ManagedSandbox]:
    """The sandboxes a reaper may remove: its own that it no longer holds, and every orphan.

    `live` holds the ids of the sandboxes the reaper's owner holds now (starting, idle in a pool, or
    attached to a run): those are never reapable, whatever their state.
    """
    return [
        m
        for m in managed
        if m.sandbox_id not in live and (m.owner == me or is_orphan(m.owner, host, start_ticks_of))
    ]
