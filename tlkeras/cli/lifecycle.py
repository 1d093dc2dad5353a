"""One run lifecycle for every command that trains: the drivers (`experiments/exp*.py`) and
`tlkeras fit`.

    parse flags (one-line errors) -> validate -> start worker processes -> import TensorFlow
    (their imports overlap ours) -> run -> say where everything is

Exit status, the same everywhere:
- 0 done (also when Ctrl-C came after the work had finished);
- 2 bad input, before any work (`fail`);
- 130 interrupted (Ctrl-C; 143 for SIGTERM): what is kept and how to go on is said;
- 1 stopped mid-run by a failure outside the run (a full disk, a vanished folder, a killed
  worker, a user's function that raised): likewise.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
from typing import Callable, Iterator, NoReturn

from absl import flags

from tlkeras.core.errors import ModelFileError, WorkerDied
from tlkeras.core.options import print_report
from tlkeras.runtime import interrupts
from tlkeras.systems.measurements import MeasurementError
from tlkeras.systems.user import SystemReferenceError

DONE, FAILED, BAD_INPUT = 0, 1, 2  # interrupted: interrupts.exit_status(), 130 or 143
# Failures outside the run's own logic: the run stops with what it finished kept (exit 1).
FAILURES = (OSError, WorkerDied, SystemReferenceError, ArithmeticError, MeasurementError, ModelFileError)


def fail(message: str, status: int = BAD_INPUT) -> NoReturn:
    """The one line a user sees for a problem, on standard error, and the exit status."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)


def warn(message: str) -> None:
    """One line about something allowed but probably a mistake; the command goes on."""
    print(f"warning: {message}", file=sys.stderr)


def say(message: str) -> None:
    print_report(message)


def parse(values: flags.FlagValues, argv: list[str],
          presets: Callable[[flags.FlagValues], dict] | None = None) -> list[str]:
    """absl parsing with one-line errors (instead of usage text). `presets(values)`: the values of
    the chosen preset, set where the user gave none, before the flags are validated again."""
    try:
        rest = values(argv)
    except flags.Error as error:
        fail(str(error).splitlines()[0])
    if presets is not None:
        apply_preset(values, presets(values))
    return rest


def apply_preset(values: flags.FlagValues, preset: dict) -> None:
    """Set every value of `preset` the user did not give, then validate (one-line errors)."""
    for name, value in preset.items():
        if not values[name].present:  # set all first, validate after: some values go in pairs
            values[name].value = [str(x) for x in value] if isinstance(value, tuple) else value
    try:
        values.validate_all_flags()
    except flags.Error as error:
        fail(str(error).splitlines()[0])


def describe(error: BaseException) -> str:
    """One line for a failure outside the run."""
    if isinstance(error, OSError) and error.filename:
        return f"could not write {error.filename}: {error.strerror}"
    if isinstance(error, OSError):
        return f"could not write the run: {error.strerror or error}"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def command_line(*words: object) -> str:
    """A command a user can paste into a shell (paths with spaces quoted)."""
    return " ".join(shlex.quote(str(w)) for w in words)


@contextlib.contextmanager
def workers_then_tensorflow(backend: str, count: int, start: bool = True) -> Iterator["Workers"]:
    """Start the local worker processes now (unless `start` is False: `Workers.start` later), then
    import TensorFlow quietly in this process, so that the imports overlap. The workers end with
    the block: killed if it ends with an exception, closed otherwise."""
    with contextlib.ExitStack() as stack:
        workers = Workers(stack, backend, count)
        if start:
            workers.start()
        from tlkeras.runtime.startup import import_tensorflow  # after validation: bad flags fail in 0.3 s

        import_tensorflow().get_logger().setLevel("ERROR")
        yield workers


class Workers:
    """The local worker processes of a run (None for Ray, or for one worker: jobs run in-process)."""

    def __init__(self, stack: contextlib.ExitStack, backend: str, count: int):
        self._stack, self._backend, self._count = stack, backend, count
        self.processes = None

    def start(self):
        from tlkeras.execution.worker import start_local

        if self.processes is None:
            self.processes = start_local(self._stack, self._backend, self._count)
        return self.processes


def run_to_end(work: Callable[[], None], kept: str, interrupted_is_error: bool = False, interrupted_note: str = "",
               refused: tuple[type[BaseException], ...] = (), refused_note: str = "") -> None:
    """Run `work`; on Ctrl-C or SIGTERM exit 130 or 143, on a failure in `FAILURES` exit 1, on a
    `refused` error exit 2, each with one message that ends with `kept` (what was kept, how to
    go on)."""
    try:
        work()
    except refused as error:
        fail(f"{error}{refused_note}")
    except KeyboardInterrupt:  # interrupts.Interrupted, or a second signal
        message = f"{stopped_by()}{kept}{interrupted_note}"
        if interrupted_is_error:
            fail(message, interrupts.exit_status())
        say(message)
        sys.exit(interrupts.exit_status())
    except FAILURES as error:
        fail(f"{describe(error)}{kept}", FAILED)
    if interrupts.requested():
        say(f"{interrupts.signal_name()} came after the run had finished: every result is written")


def stopped_by() -> str:
    """'interrupted by Ctrl-C' (or SIGTERM), with the user's code it stopped if any."""
    inside = interrupts.stopped_in()
    return f"interrupted by {interrupts.signal_name()}" + (f" while {inside}" if inside else "")


@contextlib.contextmanager
def stops_cleanly(kept: str) -> Iterator[None]:
    """Around a whole command: a stop (Ctrl-C, SIGTERM) outside `run_to_end` (while flags are
    checked, the user's g imported or probed, TensorFlow imported, workers started) is one line
    and exit 130 or 143, never a traceback; `kept` says what was written (nothing, so far)."""
    try:
        yield
    except KeyboardInterrupt:
        fail(f"{stopped_by()}{kept}", interrupts.exit_status())
