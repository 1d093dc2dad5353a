"""Is a folder usable for a run? Checked before any work, without TensorFlow (so in 0.3 s).

A file where a folder should be, a read-only or permission-less folder, or a disk too full for
the run gives one `FolderError` line naming the folder and why, instead of a traceback from deep
inside a write minutes later. And is an output one of the inputs (`same_file`, `inside`,
`hard_link_in`), which no --overwrite may replace?
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from tlkeras.core.config import StudyConfig

RUN_LOCK = ".lock"  # a run directory's lock file (`rundir.RunDir.lock`)


class FolderError(ValueError):
    """A folder a run cannot use; the message is one line naming it."""


def estimated_run_bytes(config: StudyConfig) -> int:
    """A lower bound of a new run's size: per member a model (~20 kB) and its loss curve,
    TensorBoard run and record (~60 bytes per epoch), plus figures and tables (~1 MB)."""
    real_sets = 1 + config.folds if config.measurements else len(config.volumes) * len(config.systems)
    trained_on_real = real_sets * (len(config.strategy_arms()) + ("baseline" in config.arms))
    oracles = len(config.systems) * ("oracle" in config.arms)
    members = len(config.seeds) * (config.needs_pretraining + trained_on_real + oracles)
    return members * (20_000 + 60 * config.epochs) + 1_000_000


def check_writable(folder: Path, label: str, bytes_needed: int = 0) -> None:
    """Create `folder` if needed and write a probe file in it; raise FolderError if that fails or
    if the disk has less than `bytes_needed` free. `label` names it for the user (a flag)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder) as probe:
            probe.write(b"0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as error:
        reason = error.strerror or str(error)
        if error.errno == errno.EEXIST or (folder.exists() and not folder.is_dir()):
            reason = "it is a file, not a folder"
        raise FolderError(f"{label}={folder} cannot be used: {reason}") from None
    free = shutil.disk_usage(folder).free
    if free < bytes_needed:
        raise FolderError(f"{label}={folder} has {free / 1e6:.1f} MB free; this run needs about "
                          f"{bytes_needed / 1e6:.0f} MB")


# Is an output one of the inputs? (compared resolved, and as the same file on disk) ----------------
def resolved(path: Path) -> Path:
    """`path` absolute, with symlinks and `..` resolved (as far as they resolve)."""
    try:
        return path.expanduser().resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return path.absolute()


def same_file(a: Path, b: Path) -> bool:
    """The same path once resolved (symlinks), or the same file on disk (hard links)."""
    if resolved(a) == resolved(b):
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def inside(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or lies somewhere under it (both resolved)."""
    path, folder = resolved(path), resolved(folder)
    return path == folder or folder in path.parents


def hard_link_in(path: Path, folder: Path) -> Path | None:
    """The file in `folder` (any depth) that `path` is a hard link of, if `path` is one."""
    try:
        status = path.stat()
    except OSError:
        return None
    if status.st_nlink < 2 or not path.is_file():
        return None
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                other = os.stat(os.path.join(root, name))
            except OSError:
                continue
            if (other.st_dev, other.st_ino) == (status.st_dev, status.st_ino):
                return Path(root) / name
    return None
