"""A progress bar on stderr: tqdm's when the `bench` extra is installed, else one line per step."""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol, TextIO


class Progress(Protocol):
    def update(self, n: int = 1) -> None: ...
    def set_postfix_str(self, text: str) -> None: ...
    def close(self) -> None: ...


class _Lines:
    """What stands in for tqdm without the extra: `desc i/total (elapsed) postfix` after each step."""

    def __init__(self, total: int, desc: str, out: TextIO) -> None:
        self.total, self.desc, self.out = total, desc, out
        self.done = 0
        self.postfix = ""
        self.started = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.done += n
        took = time.monotonic() - self.started
        tail = f" {self.postfix}" if self.postfix else ""
        self.out.write(f"{self.desc} {self.done}/{self.total} ({took:.0f} s){tail}\n")
        self.out.flush()

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def close(self) -> None:
        pass


def bar(total: int, desc: str, *, enabled: bool = True, out: TextIO | None = None) -> Progress:
    """A bar over `total` steps; `enabled=False` gives one that shows nothing."""
    stream = out or sys.stderr
    if not enabled:
        return _Silent()
    try:
        from tqdm import tqdm
    except ImportError:
        return _Lines(total, desc, stream)
    kwargs: dict[str, Any] = {"total": total, "desc": desc, "file": stream, "dynamic_ncols": True}
    return tqdm(**kwargs)


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass
