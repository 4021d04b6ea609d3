"""The posture probe: run inside a sandbox, it prints what the sandbox observes about itself as JSON.

    rlm exec --context DIR --file orchestrator/security/posture_probe.py [--runtime runsc]

tests/test_posture.py compares its output with the expected posture checked in for each runtime
(tests/posture/*.json); any drift fails CI. Every claim of docs/threat-model.md names its probe here.
Only facts that do not vary between runs are reported (no pids, no timings).
"""

import ctypes
import errno
import json
import os
import resource
import socket

libc = ctypes.CDLL(None, use_errno=True)


def _status() -> dict:
    with open("/proc/self/status") as fh:
        return dict(line.rstrip("\n").split(":\t", 1) for line in fh if ":\t" in line)


def _read(*paths):
    for path in paths:
        try:
            with open(path) as fh:
                return fh.read().strip()
        except OSError:
            continue
    return None


def _errno_name(value: int) -> str:
    return errno.errorcode.get(value, str(value))


def _syscall(number: int, *args) -> str:
    ctypes.set_errno(0)
    result = libc.syscall(number, *args)
    return "ok" if result >= 0 else _errno_name(ctypes.get_errno())


def _socket(family: int, kind: int, proto: int = 0) -> str:
    try:
        socket.socket(family, kind, proto).close()
        return "ok"
    except OSError as exc:
        return _errno_name(exc.errno or 0)


def _write(path: str) -> str:
    try:
        with open(path, "w") as fh:
            fh.write("x")
        os.unlink(path)
        return "ok"
    except OSError as exc:
        return _errno_name(exc.errno or 0)


def _mounts() -> dict:
    wanted = {"/", "/context", "/rlm", "/tmp", "/dev/shm", "/proc", "/sys"}
    # /context is a symlink in the image: its mount is listed where it leads (/rlm-ctx/context).
    shown = {os.path.realpath(path): path for path in wanted}
    found = {}
    with open("/proc/self/mounts") as fh:
        for line in fh:
            _src, target, fstype, options = line.split()[:4]
            target = shown.get(target, target)
            if target in wanted:
                flags = sorted({"ro", "rw", "nosuid", "nodev", "noexec"} & set(options.split(",")))
                entry: dict[str, object] = {"flags": flags}
                if target not in ("/context", "/rlm"):  # a bind mount's type is the host's business
                    entry["fstype"] = fstype
                found[target] = entry  # the last mount on a target wins
    return dict(sorted(found.items()))


status = _status()
SYS = {
    "io_uring_setup": 425,
    "unshare": 272,
    "mount": 165,
    "bpf": 321,
    "perf_event_open": 298,
    "userfaultfd": 323,
    "keyctl": 250,
    "chroot": 161,
    "setuid": 105,
}
params = ctypes.create_string_buffer(128)
attr = ctypes.create_string_buffer(128)
posture = {
    "user": {"uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups())},
    "capabilities": {k: status.get(k) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")},
    "no_new_privs": status.get("NoNewPrivs"),
    "seccomp_mode": status.get("Seccomp"),
    "mounts": _mounts(),
    "network_interfaces": sorted(os.listdir("/sys/class/net")),
    "rlimits": {
        name: list(resource.getrlimit(getattr(resource, f"RLIMIT_{name.upper()}")))
        for name in ("nofile", "core", "fsize")
    },
    "cgroup": {
        "memory_limit": _read("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"),
        "memory_swap_limit": _read(
            "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", "/sys/fs/cgroup/memory.swap.max"
        ),
        "pids_max": _read("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"),
        "cpu_quota": _read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu.max"),
    },
    "syscalls": {
        "io_uring_setup": _syscall(SYS["io_uring_setup"], 1, params),
        "socket_vsock_high_bits": _syscall(41, ctypes.c_uint64(0x1_00000028), socket.SOCK_STREAM, 0),
        "unshare_user_ns": _syscall(SYS["unshare"], 0x10000000),
        "mount_tmpfs": _syscall(SYS["mount"], b"none", b"/tmp", b"tmpfs", 0, None),
        "bpf": _syscall(SYS["bpf"], 0, attr, 48),
        "perf_event_open": _syscall(SYS["perf_event_open"], attr, 0, -1, -1, 0),
        "userfaultfd": _syscall(SYS["userfaultfd"], 0),
        "keyctl": _syscall(SYS["keyctl"], 0, 0),
        "chroot": _syscall(SYS["chroot"], b"/tmp"),
        "setuid_root": _syscall(SYS["setuid"], 0),
    },
    "sockets": {
        "AF_VSOCK": _socket(40, socket.SOCK_STREAM),
        "AF_ALG": _socket(38, socket.SOCK_SEQPACKET),
        "AF_PACKET": _socket(17, socket.SOCK_RAW),
        "AF_INET_RAW_ICMP": _socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
        "AF_INET": _socket(socket.AF_INET, socket.SOCK_STREAM),
        "AF_UNIX": _socket(socket.AF_UNIX, socket.SOCK_STREAM),
    },
    "writes": {
        "root": _write("/etc/rlm-probe"),
        "context": _write("/context/rlm-probe"),
        "runtime": _write("/opt/rlm/lib/rlm-probe"),
        "socket_dir": _write("/rlm/rlm-probe"),
        "tmp": _write("/tmp/rlm-probe"),
    },
    "environment": sorted(os.environ),
}
print(json.dumps(posture, indent=1, sort_keys=True))
