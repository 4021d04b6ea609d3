"""An OpenAI-compatible HTTP server that tests start and script; reached through the real openai client.

A script is a function from the request (its JSON body and its index) to a Reply: the text to answer,
an HTTP status to fail with, and an optional delay (the server's own latency, not test sync). The
server records every request, and the most requests it ever served at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    text: str = ""
    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


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


class FakeLLM:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[Seen] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                seen = Seen(body, {k.lower(): v for k, v in self.headers.items()}, time.monotonic())
                with fake._lock:
                    index = len(fake.requests)
                    fake.requests.append(seen)
                    fake._in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake._in_flight)
                try:
                    reply = fake.script(seen, index)
                    reply = Reply(reply) if isinstance(reply, str) else reply
                    if reply.delay_s:
                        time.sleep(reply.delay_s)
                    self._answer(body, reply)
                finally:
                    seen.finished = time.monotonic()
                    with fake._lock:
                        fake._in_flight -= 1

            def _answer(self, body: dict[str, Any], reply: Reply) -> None:
                if reply.status != 200:
                    payload = json.dumps(
                        {"error": {"message": f"scripted {reply.status}", "type": "test"}}
                    ).encode()
                    self.send_response(reply.status)
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                usage = {
                    "prompt_tokens": 10,
                    "completion_tokens": max(1, len(reply.text) // 4),
                    "total_tokens": 0,
                }
                base = {"id": "cmpl-test", "created": 0, "model": body.get("model", "m")}
                if body.get("stream"):
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream")
                    self.end_headers()
                    pieces = [reply.text[i : i + 7] for i in range(0, len(reply.text), 7)] or [""]
                    for piece in pieces:
                        chunk = {
                            **base,
                            "object": "chat.completion.chunk",
                            "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                        }
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    final = {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
                    self.wfile.write(f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode())
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
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def repl(code: str, prose: str = "") -> str:
    """A root-model reply holding one ```repl block."""
    return f"{prose}\n```repl\n{code}\n```\n"
