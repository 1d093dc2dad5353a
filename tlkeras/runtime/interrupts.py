"""Ctrl-C as a request, honoured at safe points, so that no phase of a run can swallow it.

Python raises KeyboardInterrupt wherever the main thread happens to be when SIGINT arrives. In a
TensorFlow process that is often inside a finalizer (`__del__` of a tensor or a resource), where
Python prints "Exception ignored in ..." and carries on: the interrupt is lost and the run goes
on to finish with status 0. So a driver calls `install()`: the first Ctrl-C only records the
request, and the run stops at its next `check()` (the sweep loop checks every second, a job
between chunks of epochs, the report between files), with everything finished kept. A second
Ctrl-C raises KeyboardInterrupt at once, for a user who will not wait.

Library code that never had `install()` called keeps Python's default behaviour.
"""

from __future__ import annotations

import signal
import threading


class Interrupted(KeyboardInterrupt):
    """The run stopped at a safe point because Ctrl-C (SIGINT) was pressed."""


_requested = threading.Event()


def install() -> None:
    """Route SIGINT to `request` (from the main thread, before any work)."""
    signal.signal(signal.SIGINT, _on_sigint)


def _on_sigint(signum, frame) -> None:
    if _requested.is_set():
        raise KeyboardInterrupt  # the second Ctrl-C: stop now
    _requested.set()


def requested() -> bool:
    """Whether Ctrl-C was pressed since `install`."""
    return _requested.is_set()


def check() -> None:
    """Raise `Interrupted` if Ctrl-C was pressed: call this where stopping is safe."""
    if _requested.is_set():
        raise Interrupted()
