"""A lab's own system: pretrain on its simple model g, fine-tune on its measurements, one folder.

`plan_fit` turns a request (g, domain, CSV, columns, protocol) into a validated `StudyConfig`
whose one "real system" is the measurements, checking everything first and free of TensorFlow:
g is imported and probed, the CSV read and validated, the normalisation fixed. `run_fit` trains
it with the study's machinery (the same sweep runner, stacked engine, pretraining cache, staged
writes and TensorBoard runs): per seed a pretrained model, a member per transfer strategy
(`transfer_strategy`; fine_tune_all's arm is "transfer") trained on every measurement and a
baseline trained on them alone, and with k folds the same arms on each k-1 folds for
cross-validation. It then writes the report and `manifest.json`, the file that
makes the folder a model (`ensemble.Ensemble` reads it).

The folder is built beside `--out` under a temporary name and renamed into place once complete:
a folder named by `--out` is always a whole model, and a replaced one (`overwrite`) is removed
only after its successor is complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import shutil
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from tlkeras.core.config import StudyConfig
from tlkeras.core.errors import ConfigError
from tlkeras.core.user_config import resolve_user_systems, with_normalisation
from tlkeras.core.vocabulary import TRANSFER_ARM
from tlkeras.fit.ensemble import MANIFEST
from tlkeras.runtime import faults
from tlkeras.storage import folders, locks
from tlkeras.systems import user as user_systems
from tlkeras.systems.domains import Domain
from tlkeras.systems.measurements import (
    MEASURED,
    MeasurementError,
    Measurements,
    duplicate_rows,
    read_measurements,
    suspicious,
)


class OutputFolderError(ValueError):
    """An --out folder that cannot take the model; the message is one line."""


def plan_fit(
    simple: str,
    domain: Sequence[float],
    measurements_path: str | Path,
    inputs: Sequence[str],
    outputs: Sequence[str],
    folds: int = 5,
    report: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
    builtin_simple: bool = False,
    **protocol,
) -> tuple[StudyConfig, Measurements]:
    """The config of a fit and its validated measurements; raises ConfigError (g, the domain or a
    protocol value) or MeasurementError (the CSV), each one line, before any work. `report` is
    told before g is imported and probed; `warn`, of anything in the data that is allowed but
    probably a mistake (`measurements.suspicious`). `builtin_simple`: g may also be a built-in
    system name (the study drivers' calibrated-interval check fits their own simple system)."""
    inputs, outputs = tuple(inputs), tuple(outputs)
    if not inputs or not outputs:
        raise ConfigError("inputs and outputs each need at least one column name")
    try:
        box = Domain.from_values(domain, len(inputs))
    except ValueError as error:
        raise ConfigError(f"domain={','.join(f'{v:g}' for v in domain)} is not allowed: {error}") from None
    low, high = box.bounds(len(inputs))
    for name, a, b in zip(inputs, low, high):
        if not (np.isfinite(a) and np.isfinite(b) and a < b):
            raise ConfigError(f"domain of {name!r} is {a:g}..{b:g}: expected finite low < high")
    base = StudyConfig(simple_system=simple, systems=(MEASURED,), num_inputs=len(inputs),
                       big_domain=tuple(float(v) for v in domain), small_domain=tuple(float(v) for v in domain),
                       arms=(TRANSFER_ARM, "baseline"), **protocol)
    if not user_systems.is_reference(simple) and not builtin_simple:
        raise ConfigError(f"simple={simple!r} is not allowed: expected your model as path/to/file.py:g or module:g")
    config = resolve_user_systems(base, report)
    if config.output_dimension != len(outputs):
        raise ConfigError(f"{simple} returns {config.output_dimension} outputs, but {len(outputs)} output columns "
                          f"are named ({','.join(outputs)})")
    if folds > config.batch_size:
        needed, reason = folds, f" (--folds={folds}: at least one row per fold)"
    else:
        needed, reason = max(config.batch_size, 2), f" (--batch_size={config.batch_size}: at least one full batch)"
    found = read_measurements(measurements_path, inputs, outputs, box, min_rows=needed, min_rows_reason=reason)
    distinct = found.rows - duplicate_rows(found)
    if folds and distinct < folds:
        raise MeasurementError(f"measurements file {found.path} has {distinct} distinct rows; --folds={folds} needs "
                               "at least one per fold (copies of a row stay in one fold)")
    for line in suspicious(found, box) if warn is not None else ():
        warn(line)
    measured_low, measured_high = found.x.min(axis=0), found.x.max(axis=0)
    region = tuple(float(v) for pair in zip(measured_low, measured_high) for v in pair)
    config = dataclasses.replace(
        with_normalisation(config), measurements=str(Path(measurements_path).resolve()),
        measurement_inputs=inputs, measurement_outputs=outputs, measurements_sha256=found.sha256,
        volumes=(found.rows,), folds=folds, small_domain=region,
        num_outputs=config.output_dimension,  # a built-in g's (one per eta value) made explicit
    )
    return config.validate(), found


def check_output_folder(out: Path, overwrite: bool) -> None:
    """Refuse an --out that holds something other than a replaceable tlkeras model."""
    if not out.exists():
        parent = out.parent if str(out.parent) else Path(".")
        if parent.exists() and not parent.is_dir():
            raise OutputFolderError(f"--out={out}: {parent} is a file, not a folder")
        return
    if not out.is_dir():
        raise OutputFolderError(f"--out={out} is a file; give a folder for the model")
    if not any(out.iterdir()):
        return
    if (out / MANIFEST).exists():
        if overwrite:
            return
        raise OutputFolderError(f"--out={out} already holds a model ({MANIFEST}); give another folder, or "
                                "--overwrite to replace it")
    raise OutputFolderError(f"--out={out} is a folder with other files in it (no {MANIFEST}); give a new "
                            "or empty folder")


def check_inputs_outside(out: Path, inputs: dict[str, Path]) -> None:
    """Refuse an --out folder that is, or holds, one of the fit's inputs (the measurements, g's
    file, the cache): replacing the folder would delete them. Always, --overwrite or not."""
    for label, path in inputs.items():
        if folders.inside(Path(path), Path(out)):
            path, out = folders.resolved(Path(path)), folders.resolved(Path(out))
            raise OutputFolderError(f"--out={out} holds {label} {path}; the fit would replace that folder and lose "
                                    "it: give another --out")


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold --out for this fit's whole life: a lock file `.<name>.lock` beside it (removed at the
    end), so that a second fit on the same --out is refused at once, naming this one's pid. Folders
    made for it are removed again if the fit ends without a model."""
    out = Path(out).resolve()
    made = [folder for folder in [out.parent, *out.parent.parents] if not folder.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with locks.exclusive(out.parent / f".{out.name}.lock", f"--out={out}", remove=True):
            faults.point("fit.locked")
            yield
    except locks.LockedError as error:
        raise OutputFolderError(str(error)) from None
    finally:
        if not out.exists():
            for folder in made:  # innermost first
                try:
                    folder.rmdir()
                except OSError:
                    break


def run_fit(config: StudyConfig, out: Path, options, flags_text: str = "", command: str = "",
            processes=None, overwrite: bool = False) -> dict:
    """Train and report the fit that `config` describes into the folder `out` (see the module
    doc); returns the manifest. `options`: a `SweepOptions`; `processes`: local workers the caller
    started (`worker.WorkerProcesses`, closed by the caller); `overwrite`: a model in `out` may be
    replaced (else one that appeared there meanwhile is kept, and so is the new one, beside it)."""
    from tlkeras.execution.planning import real_sets
    from tlkeras.execution.sweep import SweepRunner
    from tlkeras.fit.report import write_fit_report
    from tlkeras.results import tracking
    from tlkeras.storage import environment
    from tlkeras.storage.persistence import writer_is_running
    from tlkeras.storage.rundir import RunDir
    from tlkeras.strategies.registry import chosen_settings

    out = Path(out).resolve()  # '.' has no name to build beside
    out.parent.mkdir(parents=True, exist_ok=True)
    leftovers = [*out.parent.glob(f".{out.name}.building-*"), *out.parent.glob(f".{out.name}.replaced-*")]
    for stale in leftovers:  # left by a fit that was killed
        pid = stale.name.rsplit("-", 1)[1]
        if pid.isdigit() and not writer_is_running(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    building = out.parent / f".{out.name}.building-{os.getpid()}"
    if building.exists():
        shutil.rmtree(building)
    building.mkdir()
    try:
        directory = RunDir(building)
        with directory.lock():
            directory.write_config(config)
            if flags_text:
                directory.staging.write_text(building / "flags.txt", flags_text)
            sessions = environment.record_session(building, directory.staging)
            sets = real_sets(config)
            directory.staging.move_files_into(directory.tensorboard, lambda folder: tracking.write_hparams_config(
                folder, [name for name, _ in sets] + [config.simple_name],
                [size for _, size in sets] + [config.pretrain_size], chosen=chosen_settings(config),
                calibration=bool(config.folds)))
            records = SweepRunner(config, directory, options, processes).run()
            manifest = write_fit_report(directory, config, records, sessions, command, flags_text)
        (building / ".lock").unlink(missing_ok=True)
        if directory.staging.folder.is_dir() and not any(directory.staging.folder.iterdir()):
            directory.staging.folder.rmdir()
        _publish(building, out, overwrite)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return manifest


def _publish(building: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished folder to `out`; an old model there goes only once the new is in, and
    only with `overwrite`: a folder that appeared at `out` during the fit (not by a tlkeras fit,
    which the lock keeps out) stays, and the new model is kept beside it under another name."""
    if out.exists() and not overwrite:
        kept = out.parent / f"{out.name}.new-{os.getpid()}"
        os.replace(building, kept)
        raise FileExistsError(errno.EEXIST, f"it appeared while this fit ran and is left as it was; the new model "
                              f"is {kept} (move it into place, or fit again with --overwrite)", str(out))
    if out.exists():
        retired = out.parent / f".{out.name}.replaced-{os.getpid()}"
        os.replace(out, retired)
        os.replace(building, out)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(building, out)
