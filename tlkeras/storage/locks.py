"""One writer at a time: an exclusive lock on a file, held for a process's whole work.

`exclusive(path)` takes `flock` on `path` (created if need be) without waiting and writes this
process's id into it; if another process holds it, `LockedError` names that process. The kernel
releases the lock when the process ends, however it ends (SIGKILL included), so a lock is never
left stale. With `remove`, the file goes when the lock is released; a process that opened the
file just before it was removed finds that out after locking (the path no longer names the file
it locked) and tries again on the new one, so two holders can never both think they own a path.
Free of TensorFlow.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator


class LockedError(ValueError):
    """Another live process holds the lock; the message names it in one line."""

    def __init__(self, message: str, owner: str):
        super().__init__(message)
        self.owner = owner


@contextlib.contextmanager
def exclusive(path: Path, what: str, remove: bool = False) -> Iterator[None]:
    """Hold `path` locked for this process (see the module doc); `what` names the thing it guards
    in the error ('--out=models/plate1')."""
    path = Path(path)
    while True:
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            handle.close()
            raise LockedError(f"{what} is being written by another tlkeras process (pid {owner}); wait for it "
                              "to end or stop it first", owner) from None
        try:
            same = os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()  # removed by its last holder between our open and our lock: take the new file
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        if remove:
            with contextlib.suppress(OSError):
                os.unlink(path)
        handle.close()


def holder(path: Path) -> str | None:
    """The pid (as written) of the live process holding `path` locked, or None if none does."""
    try:
        handle = open(path)
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "?"
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None
