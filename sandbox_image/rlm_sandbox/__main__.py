"""Entry point in the container: dial the host, open the session stream, run cells until the host leaves.

The host's address and this sandbox's token come from the environment, and so may the context's root
(`RLM_CONTEXT_ROOT`, default `/context`: only the tests' process backend, which runs this outside any
container, sets it). The token is dropped from os.environ, but user code can still read it from
/proc/self/environ: it is no secret from the sandbox itself (the sandbox's code uses this channel
anyway); it keeps other local users off the socket. The session's configure message carries a fresh
token, bound when the sandbox is handed to its run (a warm pool starts sandboxes before it knows the
tenant): every call after it uses that token, and the one from the environment stops working.
When the host goes away the stream ends and so does this process. If the host never answers within
the connect deadline, the process exits rather than wait forever.
"""

from __future__ import annotations

import json
import os
import platform
import queue
import sys
from collections.abc import Callable, Iterator

import grpc
from rlm_proto.v1 import sandbox_pb2 as pb
from rlm_proto.v1.sandbox_pb2_grpc import SandboxHostStub

from . import __version__
from .context_api import MOUNT
from .host_api import HostAPI
from .opens import OpenCounter
from .repl import CellOutcome, Repl

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CONNECT_DEADLINE_S = float(os.environ.get("RLM_CONNECT_DEADLINE_S", "60"))
# grpc's blocking waits (the session stream's iterator, a unary call's result) wake every
# grpc._common.MAXIMUM_WAIT_TIMEOUT (0.1 s) so that a signal handler can run; nothing here needs one.
# In an idle sandbox (a warm pool's, waiting for its run) those wake-ups were half of all its thread
# wake-ups and of its CPU. A message still wakes the runtime at once: the wait is on a condition.
IDLE_WAIT_S = 30.0


def _result_message(
    cell_id: int, outcome: CellOutcome, reads: tuple[int, int], opened: int = 0
) -> pb.SandboxMessage:
    result = pb.CellResult(
        cell_id=cell_id,
        stdout=pb.CapturedOutput(
            text=outcome.stdout.text(),
            total_bytes=outcome.stdout.total_bytes,
            truncated=outcome.stdout.truncated,
        ),
        stderr=pb.CapturedOutput(
            text=outcome.stderr.text(),
            total_bytes=outcome.stderr.total_bytes,
            truncated=outcome.stderr.truncated,
        ),
        has_final=outcome.final is not None,
        final=outcome.final or "",
        final_truncated=outcome.final_truncated,
        duration_s=outcome.duration_s,
        reads=pb.ReadUsage(bytes=reads[0], files=reads[1], opened=opened),
        restored=list(outcome.restored),
    )
    if outcome.error is not None:
        result.error.CopyFrom(
            pb.CellError(
                type=outcome.error.type, message=outcome.error.message, traceback=outcome.error.traceback
            )
        )
    return pb.SandboxMessage(result=result)


def _run_cell(
    repl: Repl,
    api: HostAPI,
    cell: pb.ExecuteCell,
    send: Callable[[pb.SandboxMessage], None],
    opens: OpenCounter | None = None,
) -> pb.SandboxMessage:
    def relay(stream: str, text: str) -> None:  # the cell's output as it is written, when asked
        send(pb.SandboxMessage(output=pb.CellOutput(cell_id=cell.cell_id, stream=stream, text=text)))

    on_output = relay if cell.stream_output else None
    try:
        api.start_cell(int(cell.read_budget_bytes))
        if opens is not None:
            opens.start()
        try:
            outcome = repl.run(cell.code, int(cell.max_output_bytes), on_output)
        finally:
            opened = opens.stop() if opens is not None else 0
        return _result_message(cell.cell_id, outcome, api.reads(), opened)
    except Exception as exc:  # a bug of ours: report it on this cell rather than die
        error = pb.CellError(
            type="RuntimeInternalError", message=f"{type(exc).__name__} in the sandbox runtime"
        )
        return pb.SandboxMessage(result=pb.CellResult(cell_id=cell.cell_id, error=error))


def _configure(repl: Repl, api: HostAPI, config: pb.SessionConfig) -> None:
    if config.session_token:  # bound at hand-out: the host accepts only this one from now on
        api.set_token(config.session_token)
    if config.context.mounted:
        try:  # relative paths in the model's own open(), os.listdir, glob... name the context's files
            os.chdir(api.context_root)
        except OSError as exc:
            print(f"rlm-sandbox: could not enter the context's directory: {exc}", file=sys.__stderr__)
    try:
        repl.protect("context", api.configure(config.context))
    except Exception as exc:  # the first cell will find `context` missing and the reason here
        print(f"rlm-sandbox: could not load the context: {type(exc).__name__}: {exc}", file=sys.__stderr__)
    if "context" in repl.namespace:  # the official REPL's name for a session's first context
        repl.protect("context_0", repl.namespace["context"])
    for tool in config.tools:
        if not tool.name.isidentifier() or tool.name in repl.namespace:
            continue  # the host refuses these names first; never let one replace the REPL's own
        if tool.callable:
            repl.add_function(tool.name, api.tool(tool.name, tool.description))
        else:
            repl.namespace[tool.name] = json.loads(tool.value_json)  # data: the model's, as any variable


class Bindings:
    """Joins the pieces of host-given variables (Binding messages) and binds each whole value."""

    def __init__(self, repl: Repl) -> None:
        self._repl = repl
        self._pieces: dict[str, list[str]] = {}

    def add(self, binding: pb.Binding) -> None:
        self._pieces.setdefault(binding.name, []).append(binding.json)
        if binding.more:
            return
        text = "".join(self._pieces.pop(binding.name))
        name = binding.name
        if not name.isidentifier():
            return
        try:
            value = json.loads(text)
        except ValueError as exc:
            print(f"rlm-sandbox: could not bind {name}: {exc}", file=sys.__stderr__)
            return
        if name == "answer":
            self._repl.namespace["answer"] = value  # a new query's: the model's to fill
            return
        self._repl.protect(name, value)
        if name == "history_0":  # as in the official REPL, `history` is the first
            self._repl.protect("history", value)


def _quiet_waits() -> None:
    """Lengthen grpc's wait slices (see IDLE_WAIT_S). grpcio is pinned; if its private constant ever
    goes away this does nothing."""
    common = getattr(grpc, "_common", None)
    if common is not None and isinstance(getattr(common, "MAXIMUM_WAIT_TIMEOUT", None), float):
        common.MAXIMUM_WAIT_TIMEOUT = IDLE_WAIT_S


def main() -> int:
    _quiet_waits()
    socket_path = os.environ.pop("RLM_SOCKET", "/rlm/host.sock")
    token = os.environ.pop("RLM_TOKEN", "")
    context_root = os.environ.pop("RLM_CONTEXT_ROOT", "") or MOUNT
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    channel = grpc.insecure_channel(f"unix:{socket_path}", options=options)
    stub = SandboxHostStub(channel)
    metadata = (("x-rlm-token", token),)
    outbox: queue.SimpleQueue[pb.SandboxMessage | None] = queue.SimpleQueue()

    def outgoing() -> Iterator[pb.SandboxMessage]:
        while (message := outbox.get()) is not None:
            yield message

    try:
        grpc.channel_ready_future(channel).result(timeout=CONNECT_DEADLINE_S)
    except grpc.FutureTimeoutError:
        print(f"rlm-sandbox: no host on {socket_path} within {CONNECT_DEADLINE_S:g} s", file=sys.__stderr__)
        return 2
    api = HostAPI(stub, metadata, context_root)
    opens = OpenCounter(context_root)
    opens.install()
    repl = Repl(api.bindings())
    bindings = Bindings(repl)
    hello = pb.Hello(runtime_version=__version__, python_version=platform.python_version(), pid=os.getpid())
    outbox.put(pb.SandboxMessage(hello=hello))
    try:
        for command in stub.Session(outgoing(), metadata=metadata):
            if command.HasField("execute"):
                outbox.put(_run_cell(repl, api, command.execute, outbox.put, opens))
            elif command.HasField("configure"):
                _configure(repl, api, command.configure)
            elif command.HasField("bind"):
                bindings.add(command.bind)
    except grpc.RpcError as exc:
        # The host closed or went away: nothing left to serve.
        print(f"rlm-sandbox: session ended: {exc.code()}", file=sys.__stderr__)
    finally:
        outbox.put(None)
        channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
