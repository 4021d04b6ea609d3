"""Counts the files under the context's root that a cell opens, however its code opens them.

read_file counts its own reads (they are what the read budget limits), but code may open the mounted
files itself: open(), pathlib, csv, pandas. The host wants to know whether a cell read the context at
all (an answer given before anything was read is a guess: the engine asks the model to check it). An
audit hook (PEP 578) sees every open of the process; this one counts opens for reading of paths under
the root while a cell runs, and never refuses one: keeping files out of reach is the container's
business (a read-only mount, no other files). User code cannot remove an audit hook.

    counter = OpenCounter("/context")
    counter.install()            # once, in the runtime
    counter.start()              # a cell begins
    opened = counter.stop()      # the files it opened under the root (read_file's included)
"""

from __future__ import annotations

import os
import sys
from typing import Any

_WRITING = frozenset("wax+")


class OpenCounter:
    def __init__(self, root: str) -> None:
        self._roots: tuple[str, ...] = ()
        self._root = root
        self._counting = False
        self.count = 0

    def install(self) -> None:
        sys.addaudithook(self._hook)

    def start(self) -> None:
        """Count from now on. The root is resolved here: a late-mounted context is a symlink's target
        only once attached, and the working directory (where relative paths start) is that target."""
        root = os.path.normpath(self._root)
        self._roots = tuple(dict.fromkeys((root, os.path.realpath(root))))
        self.count = 0
        self._counting = True

    def stop(self) -> int:
        self._counting = False
        return self.count

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event != "open" or not self._counting:
            return
        try:
            path, mode, flags = args
            if isinstance(path, int) or path is None:  # a descriptor already open
                return
            if isinstance(mode, str):
                if _WRITING & set(mode):
                    return
            elif isinstance(flags, int) and flags & os.O_ACCMODE != os.O_RDONLY:
                return
            full = os.path.normpath(os.path.join(os.getcwd(), os.fsdecode(path)))
            if any(full == root or full.startswith(root + "/") for root in self._roots):
                self.count += 1
        except Exception:  # never the cell's error: a path this cannot read is not counted
            return
