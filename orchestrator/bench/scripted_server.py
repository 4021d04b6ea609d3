"""An OpenAI-compatible HTTP server played by a script: the tests' model, and the offline benchmarks'.

`rlm bench oolong --offline` runs its harness end to end against it (a scripted model, reached through
the real openai client), and tests/fake_llm.py re-exports it for the tests, which is why it ships in
the package. It listens on 127.0.0.1 only, on a port of its own (0: the kernel picks).

A script is a function from the request (its JSON body and its index) to a Reply: the text to answer,
an HTTP status to fail with, and an optional delay (the server's own latency, not test sync). The
server records every request (`requests`, each with its monotonic start and end), and the most
requests it ever served at once.

Faults to script: `Reply(text, cut_after_chars=N)` breaks the connection after N characters of the
reply (a stream stops without [DONE], a plain reply mid-body: the client sees a broken connection);
`Reply(body=..., content_type=...)` answers that raw body instead of a chat completion (an HTML page
from a proxy); `ScriptedLLMServer(script, reject_stream_options=True)` answers 400 to any request that carries
`stream_options`, as some OpenAI-compatible servers do, without asking the script.

Streams are sent chunked, as real servers send them, and carry a usage chunk only when the request
asked for one (`stream_options.include_usage`). Usage follows `usage_for`: 10 prompt tokens, a
completion token per 4 characters of the reply (at least 1).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PIECE_CHARS = 7  # a streamed reply comes in pieces of this many characters


@dataclass(frozen=True)
class Reply:
    text: str = ""
    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    cut_after_chars: int | None = None  # break the connection after this many characters of `text`
    body: str | bytes | None = None  # answer this raw body (with `status`) instead of a completion
    content_type: str = "text/plain"  # the raw body's content type
    piece_delay_s: float = 0.0  # a streamed reply waits this long before each piece (a trickle)


def stopped(reply: Reply, stop: object) -> Reply:
    """The reply as a server honouring `stop` (a string or a list, OpenAI's API) sends it: ended
    before the first stop string in it."""
    strings = [stop] if isinstance(stop, str) else list(stop) if isinstance(stop, list) else []
    cuts = [reply.text.find(s) for s in strings if s and s in reply.text]
    return replace(reply, text=reply.text[: min(cuts)]) if cuts else reply


def usage_for(text: str) -> dict[str, int]:
    """The usage the server reports for a reply (the in-process fake counts the same way)."""
    return {"prompt_tokens": 10, "completion_tokens": max(1, len(text) // 4), "total_tokens": 0}


def pieces(text: str) -> list[str]:
    """The pieces a reply streams in."""
    return [text[i : i + PIECE_CHARS] for i in range(0, len(text), PIECE_CHARS)] or [""]


@dataclass
class Seen:
    body: dict[str, Any]
    headers: dict[str, str]
    started: float
    finished: float = 0.0

    @property
    def last_user(self) -> str:
        return str(next(m["content"] for m in reversed(self.body["messages"]) if m["role"] == "user"))

    @property
    def system(self) -> str:
        return str(next((m["content"] for m in self.body["messages"] if m["role"] == "system"), ""))


Script = Callable[[Seen, int], Reply | str]


class _Server(ThreadingHTTPServer):
    # The default listen backlog of 5 drops connections when many sub-calls arrive at once, and the
    # client's SYN retry then costs a whole second.
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that leaves mid-reply (a stream it stopped reading) is no error of the server's."""
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class ScriptedLLMServer:
    def __init__(self, script: Script, *, reject_stream_options: bool = False) -> None:
        self.script = script
        self.reject_stream_options = reject_stream_options
        self.requests: list[Seen] = []  # every request, the rejected ones included
        self.rejected = 0  # requests refused for carrying stream_options
        self.max_in_flight = 0
        self._in_flight = 0
        self._scripted = 0  # requests given to the script: its index
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                seen = Seen(body, {k.lower(): v for k, v in self.headers.items()}, time.monotonic())
                refuse = fake.reject_stream_options and "stream_options" in body
                with fake._lock:
                    index = fake._scripted
                    fake.requests.append(seen)
                    fake._in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake._in_flight)
                    if refuse:
                        fake.rejected += 1
                    else:
                        fake._scripted += 1
                try:
                    if refuse:
                        self._error(400, "Unrecognized request argument supplied: stream_options", {})
                        return
                    reply = fake.script(seen, index)
                    reply = stopped(Reply(reply) if isinstance(reply, str) else reply, body.get("stop"))
                    if reply.delay_s:
                        time.sleep(reply.delay_s)
                    self._answer(body, reply)
                finally:
                    seen.finished = time.monotonic()
                    with fake._lock:
                        fake._in_flight -= 1

            def _error(self, status: int, message: str, headers: dict[str, str]) -> None:
                payload = json.dumps({"error": {"message": message, "type": "test"}}).encode()
                self._send(status, payload, "application/json", headers)

            def _send(self, status: int, payload: bytes, content_type: str, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

            def _answer(self, body: dict[str, Any], reply: Reply) -> None:
                if reply.body is not None:
                    raw = reply.body.encode() if isinstance(reply.body, str) else reply.body
                    self._send(reply.status, raw, reply.content_type, reply.headers)
                    return
                if reply.status != 200:
                    self._error(reply.status, f"scripted {reply.status}", reply.headers)
                    return
                usage = usage_for(reply.text)
                base = {"id": "cmpl-test", "created": 0, "model": body.get("model", "m")}
                if body.get("stream"):
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream")
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    cut = reply.cut_after_chars
                    sent = 0
                    for piece in pieces(reply.text):
                        if reply.piece_delay_s:
                            time.sleep(reply.piece_delay_s)  # the server's pace, not test sync
                        if cut is not None:
                            piece = piece[: max(0, cut - sent)]
                            if not piece:
                                break
                        sent += len(piece)
                        chunk = {
                            **base,
                            "object": "chat.completion.chunk",
                            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                        }
                        self._chunk(f"data: {json.dumps(chunk)}\n\n".encode())
                    if cut is not None:  # no [DONE], no last chunk: the connection just closes
                        self.wfile.flush()
                        return
                    if (body.get("stream_options") or {}).get("include_usage"):
                        final = {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
                        self._chunk(f"data: {json.dumps(final)}\n\n".encode())
                    self._chunk(b"data: [DONE]\n\n")
                    self._chunk(b"")
                    return
                payload = json.dumps(
                    {
                        **base,
                        "object": "chat.completion",
                        "usage": usage,
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": reply.text},
                            }
                        ],
                    }
                ).encode()
                if reply.cut_after_chars is not None:  # the promised length, then half of it
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    return
                self._send(200, payload, "application/json", {})

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # serve_forever polls for shutdown: at its default 0.5 s, every test would wait that long to stop it.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> ScriptedLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def repl(code: str, prose: str = "") -> str:
    """A root-model reply holding one ```repl block."""
    return f"{prose}\n```repl\n{code}\n```\n"
