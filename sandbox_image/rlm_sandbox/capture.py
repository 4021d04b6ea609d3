"""A text stream that keeps at most N bytes of UTF-8 and counts the rest."""

from __future__ import annotations

import io
import threading


class CappedStream(io.TextIOBase):
    """Stands in for sys.stdout / sys.stderr during a cell; memory stays bounded whatever is written."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__()
        self._max = max(0, max_bytes)
        self._kept = bytearray()
        self._total = 0
        self._lock = threading.Lock()  # user code may print from several threads

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

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
