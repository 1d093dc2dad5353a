"""Ctrl-C and SIGTERM as a request to stop, honoured at safe points, the same in every command.

Python raises KeyboardInterrupt wherever the main thread happens to be when SIGINT arrives. In a
TensorFlow process that is often inside a finalizer (`__del__` of a tensor or a resource), where
Python prints "Exception ignored in ..." and carries on: the interrupt is lost and the run goes
on to finish with status 0. SIGTERM (`kill`, `timeout`, a scheduler cancelling the job) would
end the process at once, with no cleanup at all. So a command calls `install()`, and then for
both signals alike:

- the first one prints one line saying it was received and only records the request; the run
  stops at its next `check()` (the sweep loop checks every second, a job between chunks of
  epochs, the report between files), with everything finished kept. Inside the user's own code
  (`user_code()`: importing, probing or calling their simple model, which may take minutes) there
  is no safe point to wait for: it stops at once;
- a second one stops at once, wherever the run is.

Both raise `Interrupted` (a KeyboardInterrupt), which the command layer turns into one line and
the exit status `exit_status()` (130 for Ctrl-C, 143 for SIGTERM). Library code that never had
`install()` called keeps Python's default behaviour.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Iterator

NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


class Interrupted(KeyboardInterrupt):
    """The run stopped because Ctrl-C (SIGINT) or SIGTERM arrived."""


_requested = threading.Event()
_state = {"signal": None, "installed": False, "user_code": 0, "where": "", "at_once": False}
_previous: dict = {}  # the handlers `install` replaced, for `uninstall`


def install(at_once: bool = False) -> None:
    """Route SIGINT and SIGTERM to the request (from the main thread, before any work). With
    `at_once` (a short command with nothing to keep: predict, evaluate) the first stops at once."""
    if not _state["installed"]:
        _previous.update({number: signal.getsignal(number) for number in NAMES})
    for number in NAMES:
        signal.signal(number, _on_signal)
    _state.update(installed=True, at_once=at_once)


def uninstall() -> None:
    """The handlers from before `install` again, and no request pending: for a process that runs
    a command and goes on (a test calling `tlkeras.cli.main`, a notebook)."""
    for number, handler in _previous.items():
        signal.signal(number, handler)
    _previous.clear()
    _requested.clear()
    _state.update(signal=None, installed=False, user_code=0, where="", at_once=False)


def _on_signal(signum, frame) -> None:
    if _requested.is_set() or _state["at_once"]:
        _requested.set()
        _state["signal"] = _state["signal"] or signum
        raise Interrupted()  # the command says it in one line
    _requested.set()
    _state["signal"] = signum
    if _state["user_code"]:
        raise Interrupted()  # no safe point inside the user's code: the caller says where it stopped
    _say(f"{NAMES[signum]} received: stopping at the next safe point, with everything finished kept "
         f"({NAMES[signum]} again stops at once)")


def _say(line: str) -> None:
    """One line on standard error, safe inside a signal handler (no buffered stream re-entered)."""
    try:
        os.write(2, f"{line}\n".encode())
    except OSError:
        pass


def requested() -> bool:
    """Whether a stop was requested since `install`."""
    return _requested.is_set()


def signal_name() -> str:
    """'Ctrl-C' or 'SIGTERM': what requested the stop (Ctrl-C if none did)."""
    return NAMES.get(_state["signal"], "Ctrl-C")


def exit_status() -> int:
    """128 + the signal's number, as a shell reports a process its signal ended: 130 or 143."""
    return 128 + int(_state["signal"] or signal.SIGINT)


def check() -> None:
    """Raise `Interrupted` if a stop was requested: call this where stopping is safe."""
    if _requested.is_set():
        raise Interrupted()


@contextlib.contextmanager
def user_code(where: str) -> Iterator[None]:
    """Around a call into the user's code in the main thread (`where`: 'importing g.py:g'): a
    stop requested meanwhile (or already) stops it at once, and `stopped_in()` names it."""
    main = threading.current_thread() is threading.main_thread()
    if main and _state["installed"]:
        check()
        _state["user_code"] += 1
        _state["where"] = where
    interrupted = False
    try:
        yield
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if main and _state["installed"]:
            _state["user_code"] -= 1
            if not interrupted:
                _state["where"] = ""


def stopped_in() -> str:
    """What user code the stop interrupted ('' if none)."""
    return _state["where"] if _requested.is_set() and _state["where"] else ""

