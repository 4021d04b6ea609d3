"""A persistent Python namespace that runs cells and reports what happened, with no I/O of its own.

Names follow the paper's implementation (alexzhang13/rlm): `FINAL(x)` and `FINAL_VAR(name)` end the run,
as does `answer["ready"] = True` with `answer["content"]`; `SHOW_VARS()` lists the user's variables.
Reserved names (those, the API functions the host provides, and `context`) are restored after every cell
if the user's code overwrote them, so a careless `read_file = ...` or `context = ...` cannot break the
next cell; the cell's result names what was restored, and the host tells the model.
"""

from __future__ import annotations

import ast
import linecache
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from types import CodeType
from typing import Any

from .capture import CappedStream, OnOutput, OutputRelay

_NOT_SET = object()


@dataclass(frozen=True, slots=True)
class CellError:
    type: str
    message: str
    traceback: str


@dataclass(frozen=True, slots=True)
class CellOutcome:
    stdout: CappedStream
    stderr: CappedStream
    error: CellError | None
    final: str | None
    final_truncated: bool
    duration_s: float
    restored: tuple[str, ...] = ()  # reserved names the cell overwrote, put back after it


# An exception's message is a summary: the traceback (capped like the output) carries the detail.
MAX_MESSAGE_CHARS = 8192


class Repl:
    """One session's namespace. `run()` never raises for anything the user's code does."""

    def __init__(self, bindings: Mapping[str, Any] | None = None) -> None:
        self._final: object = _NOT_SET
        self._cell_count = 0
        self._reserved: dict[str, Any] = {
            **dict(bindings or {}),
            "FINAL": self._final_call,
            "FINAL_VAR": self._final_var_call,
            "SHOW_VARS": self._show_vars,
        }
        self.namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
        self.namespace.update(self._reserved)
        self.namespace["answer"] = {"content": "", "ready": False}
        self._protected: dict[str, Any] = {}  # values the host gave (`context`...), restored like functions

    def protect(self, name: str, value: Any) -> None:
        """Give the namespace `name` = value, put back after any cell that overwrites it (as the
        official REPL restores `context`): the model's code cannot lose the run's context."""
        self._protected[name] = value
        self.namespace[name] = value

    # -- the functions user code sees ------------------------------------------------------------

    def _final_call(self, *values: object, **named: object) -> None:
        """FINAL(x), as user code calls it: one value. Recorded from the 1.5B model:
        FINAL(answer["content"] == output, answer["ready"] == True) got Python's "_final_value() takes
        2 positional arguments but 3 were given", which named none of its own code."""
        self._final_value(_one_value("FINAL(x)", "the answer", values, named))

    def _final_var_call(self, *values: object, **named: object) -> str:
        """FINAL_VAR(name), as user code calls it: one name."""
        return self._final_var(_one_value("FINAL_VAR(name)", "a variable's name", values, named))

    def _final_value(self, value: object) -> None:
        """FINAL(x): x is the run's answer. FINAL(answer), the answer dict itself, means its content."""
        answer = self.namespace.get("answer")
        if value is answer and isinstance(answer, dict):
            content = answer.get("content")
            if content is None or content == "":
                raise ValueError(
                    "FINAL(answer): answer['content'] is empty; set answer['content'] = ... first, "
                    "or call FINAL with the answer itself"
                )
            value = content
        given = next(
            (name for name, held in self._protected.items() if value is held and not _scalar(held)), None
        )
        if given is not None:  # a small model's FINAL_VAR("context"): the input is no answer
            raise ValueError(_given_is_no_answer(given))
        self._final = value

    def add_function(self, name: str, function: Any) -> None:
        """A function of the host's (a custom tool) under `name`: reserved like the API functions, so
        restored after any cell that overwrites it, and never listed by SHOW_VARS()."""
        self._reserved[name] = function
        self.namespace[name] = function

    def _final_var(self, name: object) -> str:
        """FINAL_VAR(name): the variable called `name` is the run's answer; returns it as a str. As the
        official REPL does, a missing name is no answer: it returns an "Error: ..." string instead."""
        if not isinstance(name, str):
            # The paper's prompts sometimes pass the value itself; accept it rather than fail the run.
            self._final_value(name)
            return _as_text(self._final)
        key = name.strip().strip("'\"")
        if key in self._protected:
            return f"Error: {_given_is_no_answer(key)}"
        if key not in self.namespace or key.startswith("_") or key in self._reserved:
            available = self._variable_names()
            if _not_shared(name) and any(
                self.namespace[v] is name for v in available if v not in self._protected
            ):
                # FINAL_VAR(output) of `output = "..."`: the variable itself was passed, as a non-str
                # value is above (recorded from the 1.5B model; the official REPL says "not found").
                # Not what the host gave (a text `context` is no answer), nor a str CPython shares.
                self._final_value(name)
                return _as_text(self._final)
            if available:
                return (
                    f"Error: Variable '{key}' not found. Available variables: {available}. "
                    "You must create and assign a variable BEFORE calling FINAL_VAR on it."
                )
            return (
                f"Error: Variable '{key}' not found. No variables have been created yet. "
                "You must create and assign a variable in a REPL block BEFORE calling FINAL_VAR on it."
            )
        self._final_value(self.namespace[key])
        return _as_text(self._final)

    def _variable_names(self) -> list[str]:
        """The model's variables (what the host gave included), in the order made; not the functions,
        nor `answer`."""
        hidden = self._reserved.keys() | {"answer"}
        return [name for name in self.namespace if not name.startswith("_") and name not in hidden]

    def _show_vars(self) -> str:
        """SHOW_VARS(): the variables and their types, as a str (the official REPL's wording)."""
        shown = {name: type(self.namespace[name]).__name__ for name in self._variable_names()}
        if not shown:
            return "No variables created yet. Use ```repl``` blocks to create variables."
        return f"Available variables: {shown}"

    # -- running a cell ---------------------------------------------------------------------------

    def run(self, code: str, max_output_bytes: int, on_output: OnOutput | None = None) -> CellOutcome:
        """Run one cell. With `on_output(stream, text)`, what the streams keep is also passed on while
        the cell runs (see capture.OutputRelay); every piece is passed on before this returns."""
        self._cell_count += 1
        filename = f"<cell {self._cell_count}>"
        stdout, stderr = CappedStream(max_output_bytes, "stdout"), CappedStream(max_output_bytes, "stderr")
        relay = OutputRelay(on_output, stdout, stderr) if on_output is not None else None
        self._final = _NOT_SET
        error: CellError | None = None
        started = time.perf_counter()
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = stdout, stderr
        try:
            body, last = _compile_cell(code, filename)
            linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
            exec(body, self.namespace)
            if last is not None:
                value = eval(last, self.namespace)
                if value is not None:
                    print(repr(value))
        except BaseException as exc:  # the user's SystemExit / KeyboardInterrupt end the cell, not us
            error = _describe(exc, filename)
        finally:
            sys.stdout, sys.stderr = saved
            if relay is not None:
                relay.close()
        duration = time.perf_counter() - started
        final = self._collect_final()
        restored = self._restore_reserved()
        if error is not None:
            error = CellError(
                error.type,
                _cap(error.message, MAX_MESSAGE_CHARS)[0],
                _cap(error.traceback, max_output_bytes)[0],
            )
        final_text, final_truncated = _cap(final, max_output_bytes) if final is not None else (None, False)
        return CellOutcome(stdout, stderr, error, final_text, final_truncated, duration, restored)

    def _collect_final(self) -> str | None:
        if self._final is not _NOT_SET:
            return _as_text(self._final)
        answer = self.namespace.get("answer")
        if isinstance(answer, dict) and answer.get("ready") is True:
            answer["ready"] = False  # reported once: the final answer belongs to this cell
            return _as_text(answer.get("content", ""))
        return None

    def _restore_reserved(self) -> tuple[str, ...]:
        """Put back every reserved name the cell overwrote or deleted; the names put back."""
        restored = []
        for name, value in (*self._protected.items(), *self._reserved.items()):
            if self.namespace.get(name, _NOT_SET) is not value:
                self.namespace[name] = value
                restored.append(name)
        if not isinstance(self.namespace.get("answer"), dict):
            self.namespace["answer"] = {"content": "", "ready": False}
        return tuple(restored)


def _scalar(value: object) -> bool:
    """Numbers, strings and the like: a value of the model's own may be the very same object (CPython
    shares small ints and one-character strings), so being the given one proves nothing."""
    return isinstance(value, (int, float, complex, str, bytes, type(None)))


_ONE_VALUE = (
    "{call} takes one value, {what}; {given} were given. Give FINAL(x) alone, or set "
    "answer['content'] = x, then answer['ready'] = True, each as its own statement"
)


def _one_value(call: str, what: str, values: tuple[object, ...], named: dict[str, object]) -> object:
    """The one value a FINAL function was given; else a TypeError that names the call's own use."""
    if len(values) != 1 or named:
        raise TypeError(_ONE_VALUE.format(call=call, what=what, given=len(values) + len(named)))
    return values[0]


def _not_shared(text: str) -> bool:
    """A str that is one object only where one expression made it: CPython shares the empty string
    and one-character strings, so `is` of those proves nothing. (It shares identifier-like literals
    too, but a computed one-word answer, "Paris", must still be taken: FINAL_VAR("done") beside
    `status = "done"` is taken as "done".)"""
    return len(text) > 1


def _given_is_no_answer(name: str) -> str:
    return (
        f"`{name}` is what the run was given, not an answer: compute the answer from it and pass that "
        "to FINAL"
    )


def _compile_cell(code: str, filename: str) -> tuple[CodeType, CodeType | None]:
    """Compile a cell; a trailing expression is compiled apart so its value can be shown, as in a REPL."""
    # dont_inherit: the cell must not pick up this module's `from __future__ import annotations`.
    tree = ast.parse(code, filename, "exec")
    last: CodeType | None = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        trailing = tree.body.pop()
        assert isinstance(trailing, ast.Expr)
        expr = ast.Expression(trailing.value)
        last = compile(expr, filename, "eval", dont_inherit=True)
    return compile(tree, filename, "exec", dont_inherit=True), last


def _describe(exc: BaseException, filename: str) -> CellError:
    frames = traceback.extract_tb(exc.__traceback__)
    # Drop the runtime's own frames: the user sees their cell and what it called.
    skip = next((i for i, frame in enumerate(frames) if frame.filename == filename), len(frames))
    tb = exc.__traceback__
    for _ in range(skip):
        tb = tb.tb_next if tb is not None else None
    if isinstance(exc, SyntaxError):
        tb = None
    try:
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    except BaseException:  # a broken __str__ must not take the runtime down with it
        text = f"{type(exc).__name__}: <unprintable exception>\n"
    return CellError(type(exc).__name__, _as_text(exc), text)


def _as_text(value: object) -> str:
    """str(value), made safe to send: a raising __str__ or lone surrogates never escape from here."""
    try:
        text = value if isinstance(value, str) else str(value)
    except BaseException as exc:
        text = f"<unprintable {type(value).__name__}: str() raised {type(exc).__name__}>"
    if not isinstance(text, str):
        text = f"<unprintable {type(value).__name__}>"
    return text.encode("utf-8", "replace").decode("utf-8")


def _cap(text: str, max_bytes: int) -> tuple[str, bool]:
    """At most max_bytes of UTF-8, cut on a character boundary; and whether anything was cut."""
    data = text.encode("utf-8", "replace")
    if len(data) <= max_bytes:
        return text, False
    return data[:max_bytes].decode("utf-8", "ignore"), True
