"""The run directory: one folder per run under the logs root, never shared, never overwritten.

    <logs>/<experiment>/<YYYYmmdd-HHMMSS>-<n>/
        flags.txt           the driver's flags (rerun with --flagfile)
        config.json         the StudyConfig of the run
        cells/<member>.json one record per finished member, written atomically as it finishes
        losses/<member>.npy its per-epoch training loss
        models/<member>.keras
        tensorboard/        see tracking.py
        figures/*.png, results.json, results.csv, results.md
        .partial/           temporaries, renamed into place when complete (persistence.Staging)
        .lock               held (flock) by the one process that writes the run

A folder is claimed with `os.mkdir`, which fails if it exists, so two drivers started in the
same second get different folders; a run is written by one driver at a time (`RunDir.lock`).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Iterator

from tlkeras.core.config import RECORDED_BEFORE, StudyConfig
from tlkeras.core.members import Member
from tlkeras.runtime import faults
from tlkeras.storage import locks
from tlkeras.storage.folders import RUN_LOCK
from tlkeras.storage.persistence import Staging


class RunDirError(ValueError):
    """A run directory that cannot be used (for example, resumed with another config)."""


def create_run_dir(logs_root: Path, experiment: str) -> Path:
    """Claim a new, empty run directory `<logs_root>/<experiment>/<timestamp>-<n>`."""
    parent = Path(logs_root) / experiment
    parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        candidate = parent / f"{stamp}-{attempt}"
        try:
            os.mkdir(candidate)
            return candidate
        except FileExistsError:
            continue
    raise RunDirError(f"could not claim a run directory under {parent}")


class RunDir:
    """Paths and records of one run directory."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.staging = Staging(self.path)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run for this process (released when it ends, however it ends), after
        sweeping away the temporaries of earlier, dead writers."""
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(locks.exclusive(self.path / RUN_LOCK, str(self.path)))
            except locks.LockedError as error:
                raise RunDirError(str(error)) from None
            self.staging.sweep()
            for legacy in self.path.glob("**/.*.tmp*"):  # beside results, by versions before .partial/
                legacy.unlink(missing_ok=True)
            yield

    def preset(self) -> str:
        """The --preset the run was started with (flags.txt), 'full' if none was recorded."""
        try:
            lines = (self.path / "flags.txt").read_text().splitlines()
        except OSError:
            return "full"
        return next((line.split("=", 1)[1] for line in lines if line.startswith("--preset=")), "full")

    def preset_note(self) -> list[str]:
        """The lines a report opens with when its run was not the full protocol."""
        preset = self.preset()
        if preset == "full":
            return []
        return [f"> **--preset={preset}**: small training sets, few epochs and seeds, for a first look. The numbers "
                "below (errors, savings, intervals, tests) are this preset's, not the full protocol's: rerun "
                "without --preset for those.", ""]

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def figures(self) -> Path:
        return self.path / "figures"

    def model_path(self, member: Member) -> Path:
        return self.path / "models" / f"{member.key}.keras"

    def loss_path(self, member: Member) -> Path:
        return self.path / "losses" / f"{member.key}.npy"

    def curve_path(self, member: Member) -> Path:
        """A pretraining member's evaluation curves against every system (curves.py)."""
        return self.path / "curves" / f"{member.key}.json"

    def design_path(self, design_set: str) -> Path:
        """Experiment 4: the points of a lab's design set that this round trains on (.npy)."""
        return self.path / "design" / f"{design_set}.npy"

    def record_path(self, member: Member) -> Path:
        return self.path / "cells" / f"{member.key}.json"

    def tensorboard_run(self, member: Member) -> Path:
        return self.tensorboard / member.key

    def write_config(self, config: StudyConfig) -> None:
        self.staging.write_text(self.path / "config.json", config.to_json() + "\n")

    def check_resumable(self, config: StudyConfig) -> None:
        """Refuse to resume with a config other than the recorded one, naming the differences."""
        recorded_path = self.path / "config.json"
        if not recorded_path.exists():
            raise RunDirError(f"{self.path} is not a run directory (no config.json)")
        recorded = json.loads(recorded_path.read_text())
        current = json.loads(config.to_json())
        defaults = json.loads(StudyConfig().to_json())
        for key in set(current) - set(recorded):  # a field newer than the run: what the run did
            recorded[key] = RECORDED_BEFORE.get(key, defaults[key])
        differences = [
            f"{key}: recorded {recorded.get(key)!r}, now {current.get(key)!r}"
            for key in sorted(set(recorded) | set(current))
            if recorded.get(key) != current.get(key)
        ]
        if differences:
            raise RunDirError(
                f"cannot resume {self.path} with other settings; differences: " + "; ".join(differences)
            )

    def write_record(self, member: Member, record: dict) -> None:
        self.staging.write_json(self.record_path(member), record)
        faults.point("record.written")

    def read_record(self, member: Member) -> dict | None:
        """The member's record if it finished (and its model file is there), else None."""
        path = self.record_path(member)
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None  # never half-written (staged), but a hand-edited file is simply redone
        if not self.model_path(member).exists():
            return None
        return record
