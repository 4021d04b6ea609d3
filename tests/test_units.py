"""Pure pieces of the orchestrator: container arguments, ownership, limits, errors, terminal safety."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import grpc
import pytest

from orchestrator.config import Runtime, SandboxLimits, limits_from_request, parse_size
from orchestrator.errors import (
    WIRE,
    ContextPathError,
    InvalidInputError,
    RunLimitError,
    SandboxClosedError,
    SandboxStartError,
    all_error_classes,
    sandbox_error_kind,
)
from orchestrator.sandbox import linux_mounts
from orchestrator.sandbox.backend import LABEL_MANAGED, LABEL_OWNER, SandboxSpec
from orchestrator.sandbox.docker_backend import container_kwargs
from orchestrator.sandbox.ownership import OwnerId, is_orphan, process_start_ticks
from orchestrator.terminal import neutralise

REPO = Path(__file__).resolve().parent.parent


def _spec(**overrides: object) -> SandboxSpec:
    values: dict[str, object] = dict(
        sandbox_id="abc",
        image="img",
        runtime=Runtime.RUNSC,
        limits=SandboxLimits(),
        context_dir="/ctx",
        token="tok",
        owner="h/1/2/x",
    )
    values.update(overrides)
    return SandboxSpec(**values)  # type: ignore[arg-type]


def _kwargs(spec: SandboxSpec) -> dict[str, object]:
    return container_kwargs(
        spec, socket_dir="/sock", seccomp='{"defaultAction": "SCMP_ACT_ERRNO"}', uid=10001
    )


def test_container_arguments_are_the_hardened_set() -> None:
    """Every sandbox gets no network, a read-only root, no capabilities, no-new-privileges and limits."""
    limits = SandboxLimits(memory_bytes=256 * 1024**2, cpus=0.5, pids=64, nofile=256, tmpfs_bytes=8 * 1024**2)
    kw = _kwargs(_spec(limits=limits))
    assert kw["network_mode"] == "none"
    assert kw["read_only"] is True
    assert kw["cap_drop"] == ["ALL"] and "cap_add" not in kw
    assert kw["security_opt"] == ["no-new-privileges:true", 'seccomp={"defaultAction": "SCMP_ACT_ERRNO"}']
    assert kw["user"] == "10001:10001"
    assert kw["runtime"] == "runsc"
    assert kw["pids_limit"] == 64
    assert kw["mem_limit"] == kw["memswap_limit"] == 256 * 1024**2
    assert kw["nano_cpus"] == 500_000_000
    assert {u["Name"]: u["Soft"] for u in kw["ulimits"]} == {
        "nofile": 256,
        "core": 0,
        "fsize": limits.file_size_bytes,
    }
    assert kw["tmpfs"] == {"/tmp": "rw,nosuid,nodev,noexec,size=8388608,mode=1777"}
    assert kw["init"] is True and kw["ipc_mode"] == "private"
    assert kw["log_config"]["Config"] == {"max-size": "1m", "max-file": "1"}
    assert not {"privileged", "pid_mode", "devices", "volumes", "cgroup_parent"} & kw.keys()


def test_mounts_are_read_only_and_only_two() -> None:
    """The context and the socket directory are the only mounts, both read-only."""
    mounts = _kwargs(_spec())["mounts"]
    assert [(m["Target"], m["Source"], m["ReadOnly"], m["Type"]) for m in mounts] == [
        ("/context", "/ctx", True, "bind"),
        ("/rlm", "/sock", True, "bind"),
    ]


def test_a_narrowed_context_is_not_mounted() -> None:
    """Without a context directory (a context narrowed by globs) only the socket is mounted."""
    mounts = _kwargs(_spec(context_dir=None))["mounts"]
    assert [m["Target"] for m in mounts] == ["/rlm"]


def test_a_late_context_sandbox_gets_a_read_only_slot_with_rslave_propagation() -> None:
    """A warm-pool sandbox mounts its empty slot read-only at /rlm-ctx, propagation rslave (a context
    mounted beneath it on the host later appears inside, read-only), and never a context as well."""
    spec = _spec(context_dir=None, late_context=True)
    kw = container_kwargs(
        spec, socket_dir="/sock", seccomp='{"defaultAction": "SCMP_ACT_ERRNO"}', uid=10001, slot_dir="/slot"
    )
    mounts = kw["mounts"]
    assert [(m["Target"], m["Source"], m["ReadOnly"], m["Type"]) for m in mounts] == [
        ("/rlm-ctx", "/slot", True, "bind"),
        ("/rlm", "/sock", True, "bind"),
    ]
    assert mounts[0]["BindOptions"] == {"Propagation": "rslave"}
    assert "BindOptions" not in mounts[1]
    assert kw["read_only"] is True and kw["environment"] == {
        "RLM_SOCKET": "/rlm/host.sock",
        "RLM_TOKEN": "tok",
    }
    with pytest.raises(SandboxStartError, match="not both"):
        container_kwargs(_spec(), socket_dir="/s", seccomp="{}", uid=1, slot_dir="/slot")
    with pytest.raises(ValueError, match="not both"):
        _spec(late_context=True)


def test_mountinfo_is_read_with_escapes_and_propagation() -> None:
    """The late mount's checks read /proc/self/mountinfo: mount points unescaped, the propagation tags
    kept, the topmost mount on a path wins."""
    text = (
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
        "69 27 254:0 /run/rlm/slots /run/rlm/slots rw,relatime shared:4 - ext4 /dev/vda rw\n"
        "70 27 254:0 /x /run/a\\040b rw master:2 propagate_from:1 - ext4 /dev/vda rw\n"
        "71 69 254:0 /ctx /run/rlm/slots/ab/context ro,nosuid shared:6 - ext4 /dev/vda rw\n"
        "72 71 254:0 /ctx2 /run/rlm/slots/ab/context ro shared:7 - ext4 /dev/vda rw\n"
    )
    entries = linux_mounts.parse_mountinfo(text)
    assert [e.mount_point for e in entries][:3] == ["/", "/run/rlm/slots", "/run/a b"]
    assert entries[0].propagation == () and entries[1].propagation == ("shared:4",)
    assert entries[2].propagation == ("master:2", "propagate_from:1")
    top = linux_mounts.mount_at("/run/rlm/slots/ab/context", text)
    assert top is not None and top.options == "ro" and top.propagation == ("shared:7",)
    assert linux_mounts.mount_at("/nowhere", text) is None


def test_environment_is_built_from_nothing() -> None:
    """The container's environment holds the socket path and token only, never the host's."""
    kw = _kwargs(_spec())
    assert kw["environment"] == {"RLM_SOCKET": "/rlm/host.sock", "RLM_TOKEN": "tok"}
    assert kw["labels"][LABEL_MANAGED] == "1" and kw["labels"][LABEL_OWNER] == "h/1/2/x"
    assert kw["labels"]["io.rlm.tenant"] == "default"


def test_owner_id_round_trips_and_detects_orphans() -> None:
    """An owner whose process is gone, or whose pid was reused, is dead; other hosts are left alone."""
    me = OwnerId.new()
    assert OwnerId.parse(str(me)) == me
    assert not is_orphan(str(me), me.host)
    assert is_orphan(str(OwnerId(me.host, me.pid, me.start_ticks + 1, "x")), me.host)  # pid reused
    assert is_orphan(str(OwnerId(me.host, 2**22 + 5, 1, "x")), me.host, lambda pid: None)
    assert not is_orphan(str(OwnerId("elsewhere", 1, 1, "x")), me.host, lambda pid: None)
    assert is_orphan("garbage", me.host)


def test_process_start_ticks_of_a_finished_process_is_none() -> None:
    """A process that has exited and been reaped has no start time."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert process_start_ticks(child.pid) is None
    assert process_start_ticks(OwnerId.new().pid) is not None


@pytest.mark.parametrize(
    ("text", "size"),
    [("512m", 512 * 1024**2), ("1g", 1024**3), ("64MiB", 64 * 1024**2), ("1048576", 1048576), ("1.5k", 1536)],
)
def test_parse_size(text: str, size: int) -> None:
    """Sizes read as Docker reads them, in binary units."""
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["", "lots", "-5m", "0", "12q"])
def test_parse_size_refuses_nonsense(bad: str) -> None:
    """A size that is not one is an InvalidInputError naming it."""
    with pytest.raises(InvalidInputError):
        parse_size(bad)


def test_limits_are_validated() -> None:
    """Limits outside sane bounds are refused when made, not when Docker trips on them."""
    with pytest.raises(InvalidInputError, match="memory"):
        SandboxLimits(memory_bytes=1024)
    with pytest.raises(InvalidInputError, match="timeout"):
        SandboxLimits(cell_timeout_s=0)
    with pytest.raises(InvalidInputError, match="unknown runtime"):
        Runtime.parse("kata")


def test_every_error_class_has_a_row_in_the_wire_table() -> None:
    """Each class in the exception tree has its own row: a real gRPC status and a sandbox-side class."""
    names = {code.name for code in grpc.StatusCode}
    kinds = {"HostCallError", "ContextPathError", "PatternError", "LimitExceededError"}
    for cls in all_error_classes():
        assert cls in WIRE, f"{cls.__name__} has no row in orchestrator.errors.WIRE"
        status, kind = WIRE[cls]
        assert status in names and kind in kinds, cls


def test_errors_leave_by_their_row() -> None:
    """An error's code and sandbox-side class come from the table, refusals of a path by name."""
    assert ContextPathError("no", path="x").code == "INVALID_ARGUMENT"
    assert sandbox_error_kind(ContextPathError("no", path="x")) == "ContextPathError"
    assert sandbox_error_kind(RunLimitError("no")) == "LimitExceededError"
    assert SandboxClosedError("gone").code == "FAILED_PRECONDITION"


def test_terminal_escapes_are_neutralised() -> None:
    """ESC, CSI, BEL and other controls become visible escapes; newlines and tabs stay."""
    assert neutralise("a\x1b[31mb\x07\x9bc\td\n") == "a\\x1b[31mb\\x07\\x9bc\td\n"


def test_generated_code_is_fresh() -> None:
    """The checked-in gRPC code is exactly what proto/generate.py makes from proto/."""
    result = subprocess.run(
        [sys.executable, str(REPO / "proto" / "generate.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_sandbox_pins_match_the_project_pins() -> None:
    """The image installs the same grpcio and protobuf the orchestrator runs with."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = dict(re.findall(r"^([\w-]+)==([\w.]+)", "\n".join(deps["dependencies"]), re.M))
    tools = dict(re.findall(r"^([\w-]+)==([\w.]+)", "\n".join(deps["optional-dependencies"]["dev"]), re.M))
    image = dict(
        re.findall(r"^([\w-]+)==([\w.]+)", (REPO / "sandbox_image/requirements.txt").read_text(), re.M)
    )
    assert image["grpcio"] == pins["grpcio"] == tools["grpcio-tools"]
    assert image["protobuf"] == pins["protobuf"]


@pytest.mark.parametrize(
    "key",
    [
        "privileged",
        "cap_add",
        "devices",
        "network_mode",
        "pid_mode",
        "security_opt",
        "seccomp",
        "apparmor",
        "cgroup_parent",
        "volumes",
        "docker_socket",
        "userns_mode",
    ],
)
def test_tenant_requests_cannot_weaken_the_sandbox(key: str) -> None:
    """Privileged mode, host namespaces, devices, capabilities, unconfined profiles, mounts of the Docker
    socket and cgroup parents are refused by name."""
    with pytest.raises(InvalidInputError, match=f"may not set '{key}'"):
        limits_from_request({key: True})


def test_tenant_requests_set_limits_and_runtime() -> None:
    """Known fields become limits (validated as limits are); unknown fields are refused."""
    limits, runtime = limits_from_request({"memory": "256m", "cpus": 0.5, "timeout": 5, "runtime": "runsc"})
    with pytest.raises(InvalidInputError, match="above this operator's limit"):
        limits_from_request({"memory": "1t"})
    with pytest.raises(InvalidInputError, match="not offered"):
        limits_from_request({"runtime": "runc"}, runtimes=(Runtime.RUNSC,))
    assert (limits.memory_bytes, limits.cpus, limits.cell_timeout_s, runtime) == (
        256 << 20,
        0.5,
        5.0,
        Runtime.RUNSC,
    )
    with pytest.raises(InvalidInputError, match="unknown sandbox request field"):
        limits_from_request({"colour": "blue"})
    with pytest.raises(InvalidInputError, match="memory must be at least"):
        limits_from_request({"memory": "1k"})


def test_every_package_is_shipped() -> None:
    """pyproject lists every package directory, so a non-editable install is complete."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        str(p.parent.relative_to(REPO)).replace("/", ".")
        for p in (REPO / "orchestrator").rglob("__init__.py")
    }
    assert found <= listed, found - listed


def test_library_code_never_reads_the_environment() -> None:
    """Only the entry points read os.environ; everything else is given its settings."""
    import ast

    # The entry points (cli.py, cli_common.py, the `*_cli.py` of each command), and the probe (a program
    # run inside sandboxes).
    allowed = {"orchestrator/cli.py", "orchestrator/cli_common.py", "orchestrator/security/posture_probe.py"}
    # The official RLM's API (orchestrator/compat.py) is an entry point too: as the official client, it
    # reads the key and base URL from the environment when a script gives none.
    allowed |= {"orchestrator/compat.py"}
    allowed |= {p.relative_to(REPO).as_posix() for p in (REPO / "orchestrator").glob("*_cli.py")}
    readers = []
    for path in sorted((REPO / "orchestrator").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            named = isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv", "environb"}
            if named and isinstance(node.value, ast.Name) and node.value.id == "os" and rel not in allowed:
                readers.append(f"{rel}:{node.lineno}")
            if isinstance(node, ast.Attribute) and node.attr == "from_env" and rel not in allowed:
                readers.append(f"{rel}:{node.lineno} (from_env)")
    assert readers == []
