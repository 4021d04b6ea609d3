"""A text stream that keeps at most N bytes of UTF-8 and counts the rest; optionally passes on what it
keeps as it is written (the host's streamed output), through `OutputRelay`."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable

# A relayed stream is sent on when this much kept text waits, or by the relay's flusher, whichever first.
RELAY_CHUNK_BYTES = 4096
RELAY_INTERVAL_S = 0.05

OnOutput = Callable[[str, str], None]  # (stream name, text)


class CappedStream(io.TextIOBase):
    """Stands in for sys.stdout / sys.stderr during a cell; memory stays bounded whatever is written."""

    def __init__(self, max_bytes: int, name: str = "stdout") -> None:
        super().__init__()
        self._max = max(0, max_bytes)
        self._kept = bytearray()
        self._total = 0
        self._lock = threading.Lock()  # user code may print from several threads
        self._name = name
        self._relay: OutputRelay | None = None
        self._sent = 0  # bytes of _kept already passed on
        self._send_lock = threading.Lock()  # one relayed piece at a time: pieces leave in order

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def stream_name(self) -> str:
        return self._name

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        data = s.encode("utf-8", "replace")
        with self._lock:
            self._total += len(data)
            room = self._max - len(self._kept)
            if room > 0:
                self._kept += data[:room]
            waiting = len(self._kept) - self._sent
        if self._relay is not None and waiting >= RELAY_CHUNK_BYTES:
            self.relay_pending()
        return len(s)

    @property
    def total_bytes(self) -> int:
        return self._total

    @property
    def truncated(self) -> bool:
        return self._total > len(self._kept)

    def text(self) -> str:
        # A cut may split a multi-byte character: drop the partial tail rather than emit U+FFFD.
        with self._lock:
            kept = bytes(self._kept)
        return kept.decode("utf-8", "ignore") if self.truncated else kept.decode("utf-8", "replace")

    def relay_pending(self, final: bool = False) -> None:
        """Pass on the kept text not yet sent. What is sent over the cell adds up to at most the kept
        bytes (so at most the cap); a character split across writes waits for its last byte, except at
        the end (`final`), where a partial tail is dropped as text() drops it."""
        relay = self._relay
        if relay is None:
            return
        with self._send_lock:
            with self._lock:
                piece = bytes(self._kept[self._sent :])
                truncated = self._total > len(self._kept)
            if not piece:
                return
            if not final:
                piece = piece[: _complete_utf8(piece)]
                if not piece:
                    return
            self._sent += len(piece)
            errors = "ignore" if final and truncated else "replace"
            text = piece.decode("utf-8", errors)
            if text:
                relay.send(self._name, text)


def _complete_utf8(data: bytes) -> int:
    """How many leading bytes of `data` end on a character boundary (a tail of 1-3 bytes of an
    unfinished character is held back)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # a lead byte (or ASCII): does its sequence fit in what we have?
            need = 1 if byte < 0x80 else 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4
            return len(data) if need <= back else len(data) - back
    return len(data)


class OutputRelay:
    """Passes on what a cell's streams keep, while it runs: when RELAY_CHUNK_BYTES wait, and every
    RELAY_INTERVAL_S from a flusher thread of its own. After `close()` nothing more is sent, so no
    piece can follow the cell's result (a thread the cell left running still writes to the buffers,
    never to the host)."""

    def __init__(self, on_output: OnOutput, *streams: CappedStream) -> None:
        self._on_output = on_output
        self._streams = streams
        self._closed = threading.Event()
        self._sending = threading.Lock()
        for stream in streams:
            stream._relay = self
        self._thread = threading.Thread(target=self._flush_loop, name="rlm-output", daemon=True)
        self._thread.start()

    def send(self, name: str, text: str) -> None:
        with self._sending:
            if not self._closed.is_set():
                self._on_output(name, text)

    def _flush_loop(self) -> None:
        while not self._closed.wait(RELAY_INTERVAL_S):
            for stream in self._streams:
                stream.relay_pending()

    def close(self) -> None:
        """The last pieces, then no more."""
        for stream in self._streams:
            stream.relay_pending(final=True)
        with self._sending:
            self._closed.set()
        self._thread.join()
        for stream in self._streams:
            stream._relay = None
