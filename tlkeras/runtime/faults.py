"""Test-only fault injection: stop a run at a chosen point, whatever the machine's speed.

Reliability tests must not race a process's output with a signal (a fast machine finishes
first, a slow one has not started). Instead they name the moment: the environment variable

    TLKERAS_FAULT="<action>@<point>[#<k>][,<action>@<point>[#<k>]...]"

makes the process that passes `point(<point>)` for the k-th time (default 1; counted per
process) do <action>:

- `kill`:    SIGKILL the whole run at once, as `kill -9` of the driver would (the driver first,
             then this process; worker processes die with their driver);
- `crash`:   SIGKILL this process alone, as the out-of-memory killer would kill a worker;
- `sigint`:  send SIGINT to the driver, as Ctrl-C in its terminal would, and carry on;
- `sigterm`: send SIGTERM to the driver, as `kill`, `timeout` or a scheduler would, and carry on;
- `nospace`: raise OSError(ENOSPC) here, as a full disk would;
- `hold`:    stop here for good, as a worker stuck mid-task, after writing this process's id to
             `$TLKERAS_FAULT_DIR/held-<point>` for the test to kill it; once per test (a claim file
             there marks it), so a retry of the same task in a new process runs on.

The points (grep for `faults.point(`): `write.middle.<suffix>` inside a staged write, with the
temporary half written (`.json` records and tables, `.npy` loss curves, `.txt`, `.md`, `.csv`)
or a model written but not yet renamed into place (`.keras`); `write.middle.folder` inside a
folder's write (a member's TensorBoard run, a cache entry, the figures); `write.published`
right after a rename into place; `record.written` after a member's record, the last file of a
member; and the driver's phases `driver.startup`, `driver.planning`, `sweep.finished`,
`report.figures`, `report.tables`, `run.finished`; and a fit's `fit.locked` (its --out held). Without the variable, `point` returns at
once.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import signal
from collections import Counter

ENVIRONMENT_VARIABLE = "TLKERAS_FAULT"
ACTIONS = ("kill", "crash", "sigint", "sigterm", "nospace", "hold")
FOLDER_VARIABLE = "TLKERAS_FAULT_DIR"


def _parse(text: str) -> list[tuple[str, str, int]]:
    faults = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        action, _, where = item.partition("@")
        name, _, count = where.partition("#")
        if action not in ACTIONS or not name:
            raise ValueError(f"{ENVIRONMENT_VARIABLE}={text!r}: expected <action>@<point>[#<k>], "
                             f"action one of {', '.join(ACTIONS)}")
        faults.append((action, name, int(count or 1)))
    return faults


_FAULTS = _parse(os.environ.get(ENVIRONMENT_VARIABLE, ""))
_PASSES: Counter = Counter()


def point(name: str) -> None:
    """Mark a point a test may stop the run at (a no-op unless TLKERAS_FAULT names it)."""
    if not _FAULTS:
        return
    _PASSES[name] += 1
    for action, where, count in _FAULTS:
        if where == name and _PASSES[name] == count:
            _act(action, name)


def _driver_pid() -> int:
    """The driver: this process, or for a worker process its parent."""
    return os.getppid() if multiprocessing.parent_process() is not None else os.getpid()


def _act(action: str, name: str) -> None:
    if action == "kill":
        os.kill(_driver_pid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "sigint":
        os.kill(_driver_pid(), signal.SIGINT)
    elif action == "sigterm":
        os.kill(_driver_pid(), signal.SIGTERM)
    elif action == "hold":
        _hold(name)
    else:
        raise OSError(errno.ENOSPC, f"No space left on device (injected at {name})")


def _hold(name: str) -> None:
    folder = os.environ[FOLDER_VARIABLE]
    held = os.path.join(folder, f"held-{name}")
    try:
        os.close(os.open(held + ".claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return  # held once already: this is the retry, which runs on
    with open(held + ".partial", "w") as stream:
        stream.write(str(os.getpid()))
    os.rename(held + ".partial", held)  # the test reads a whole process id
    while True:
        signal.pause()
