"""What every `rlm` command shares: exit statuses, one-line errors, and stopping cleanly on a signal.

Exit statuses (the table `rlm --help` prints):

    0    the cell ran to its end (exec) / the run completed (run)
    1    the cell failed, timed out or died (exec) / the run ended another way (run: see its status)
    2    bad input: a flag, a file, a setting, a context, a query
    3    the sandbox engine, the image or the seccomp profile is unavailable
    129, 130, 143   stopped by SIGHUP, SIGINT (Ctrl-C) or SIGTERM: the run was cancelled, its
                    sandboxes removed, and what it finished kept (partial trajectory, if asked for)
    141  standard output was closed (a broken pipe) before everything was written
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .errors import InvalidInputError, RLMError

T = TypeVar("T")

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_UNAVAILABLE = 0, 1, 2, 3
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

ENVIRONMENT_HELP = """environment:
  RLM_CONFIG        settings file when --config is not given
  OPENAI_API_KEY    the default endpoint's API key (an endpoint's api_key_env names another variable)
  OPENAI_BASE_URL   the default endpoint's URL (any OpenAI-compatible server)
  DOCKER_HOST       the Docker engine (default unix:///var/run/docker.sock)
  RLM_DEBUG=1       show the traceback of an internal error
"""

EXIT_HELP = """exit status:
  0 ok / completed   1 the cell or the run ended otherwise   2 bad input
  3 engine, image or seccomp profile unavailable   129/130/143 stopped by SIGHUP/SIGINT/SIGTERM
  141 standard output closed early
"""


class Stopped(Exception):
    """The command was stopped by a signal; what was running has been cancelled and cleaned up."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


def run_until_signalled(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """asyncio.run(main()), where SIGINT, SIGTERM and SIGHUP cancel the main task instead of killing the
    process, so every `finally` and `async with` runs (containers removed, partial records kept), and
    then raise Stopped. A second signal while cleaning up is ignored: cleanup is bounded."""
    received: list[int] = []

    async def guarded() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def stop(signum: int) -> None:
            if not received:
                received.append(signum)
                task.cancel()

        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, stop, signum)
        try:
            return await main()
        except asyncio.CancelledError:
            if received:
                raise Stopped(received[0]) from None
            raise
        finally:
            for signum in STOP_SIGNALS:
                loop.remove_signal_handler(signum)

    return asyncio.run(guarded())


def guarded(body: Callable[[], int]) -> int:
    """Every error is one line on stderr with its exit status; a traceback only with RLM_DEBUG=1."""
    try:
        return body()
    except InvalidInputError as exc:
        _say(f"rlm: {exc.message}")
        return EXIT_INVALID
    except RLMError as exc:
        _say(f"rlm: {exc.message}")
        return EXIT_UNAVAILABLE
    except Stopped as exc:
        _say(f"rlm: stopped by {exc}; nothing is left running")
        return exc.exit_status
    except KeyboardInterrupt:
        _say("rlm: interrupted")
        return 128 + signal.SIGINT
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # a bug of ours: still one line, with the way to see more
        if os.environ.get("RLM_DEBUG"):
            raise
        _say(f"rlm: internal error: {type(exc).__name__}: {exc} (RLM_DEBUG=1 shows the traceback)")
        return EXIT_UNAVAILABLE


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except (BrokenPipeError, ValueError):
        pass


def _quiet_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
