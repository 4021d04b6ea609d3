"""The machine a benchmark ran on: CPU, cores, memory, kernel, Docker, runc and runsc versions."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any


def _first_line(command: list[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if out.returncode == 0 and text else "unavailable"


def _cpu_model(cpuinfo: Path) -> str:
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_bytes(meminfo: Path) -> int:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def describe(proc: Path = Path("/proc")) -> dict[str, Any]:
    """The machine, as the results' `machine` object."""
    return {
        "cpu": _cpu_model(proc / "cpuinfo"),
        "cores": os.cpu_count(),
        "memory_gib": round(_memory_bytes(proc / "meminfo") / 1024**3, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "docker": _first_line(["docker", "version", "--format", "{{.Server.Version}}"]),
        "runc": _first_line(["runc", "--version"]),
        "runsc": _first_line(["runsc", "--version"]),
        "load_average": [round(x, 2) for x in os.getloadavg()],  # other work on the machine, at the start
    }


def one_line(machine: dict[str, Any]) -> str:
    """`Intel Xeon, 2 cores, 23.4 GiB, kernel 6.1, Docker 20.10.24, runc 1.1.5, runsc 20221219`."""
    return (
        f"{machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, "
        f"kernel {machine['kernel']}, Docker {machine['docker']}, {machine['runc']}, {machine['runsc']}"
        + (f"; load average {machine['load_average'][0]} at the start" if machine.get("load_average") else "")
    )
