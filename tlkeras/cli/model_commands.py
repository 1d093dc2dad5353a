"""`tlkeras predict` and `tlkeras evaluate`: use a model folder written by `tlkeras fit`.

    tlkeras predict --model=models/plate1 --grid=50 --out=pred.csv
    tlkeras evaluate --model=models/plate1 --measurements=test.csv

Flags -> `fit.ensemble.Ensemble` (load, predict mean and spread, score) -> a CSV or a table.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from absl import flags

from tlkeras.cli.lifecycle import fail
from tlkeras.storage import folders
from tlkeras.systems.domains import Domain


def define_predict(v: flags.FlagValues) -> None:
    flags.DEFINE_string("model", None, "A model folder written by tlkeras fit.", flag_values=v)
    flags.DEFINE_string("inputs", None, "CSV of points, with the model's input columns by name.", flag_values=v)
    flags.DEFINE_integer("grid", None, "Instead of --inputs: a regular grid of this many points per input "
                         "over the model's domain.", lower_bound=2, upper_bound=1_000_000, flag_values=v)
    flags.DEFINE_string("out", None, "CSV to write: the input columns, then <output>_mean and <output>_sd.",
                        flag_values=v)
    flags.DEFINE_boolean("overwrite", False, "Replace an existing --out file.", flag_values=v)
    flags.DEFINE_string("arm", None, "Which ensemble: the fit's default (its first --strategies; transfer "
                        "for fine_tune_all), another of its strategies, or baseline.", flag_values=v)
    for name in ("model", "out"):
        flags.mark_flag_as_required(name, flag_values=v)
    flags.register_multi_flags_validator(
        ["inputs", "grid"], lambda f: (f["inputs"] is None) != (f["grid"] is None),
        message="give exactly one of --inputs=points.csv and --grid=<points per input>", flag_values=v)


def run_predict(v: flags.FlagValues) -> None:
    from tlkeras.core.errors import ModelFileError
    from tlkeras.fit.ensemble import grid_points, read_manifest
    from tlkeras.systems.measurements import MeasurementError, read_measurements

    out = Path(v.out)
    try:
        manifest = read_manifest(Path(v.model))
        _check_arm(v, manifest)
        if out.exists() and (out.is_dir() or not v.overwrite):
            raise ValueError(f"--out={out} already exists; give another file, or --overwrite" if not out.is_dir()
                             else f"--out={out} is a folder; give a CSV file name")
        folders.check_writable(out.resolve().parent, "--out")
        if v.grid is not None:
            x, _ = grid_points(manifest["domain"], v.grid)
        else:
            x = read_measurements(v.inputs, manifest["inputs"], ()).x
    except (ModelFileError, MeasurementError, folders.FolderError, ValueError) as error:
        fail(str(error))
    ensemble = _load_ensemble(v)
    mean, sd = ensemble.predict(x)
    outside = int((~Domain.from_pairs(manifest["domain"]).contains(x)).sum())
    if outside:
        print(f"warning: {outside} of {len(x)} points lie outside the model's domain; the simple model taught "
              "it nothing there", file=sys.stderr)
    header = [*manifest["inputs"], *(f"{name}_{kind}" for name in manifest["outputs"] for kind in ("mean", "sd"))]
    columns = [x[:, i] for i in range(x.shape[1])]
    for o in range(mean.shape[1]):
        columns += [mean[:, o], sd[:, o]]
    _write_csv(out, header, columns)
    print(f"wrote {out}: {len(x)} points, mean and sd over {len(ensemble.models)} {v.arm or manifest['default_arm']} "
          f"members")


def define_evaluate(v: flags.FlagValues) -> None:
    flags.DEFINE_string("model", None, "A model folder written by tlkeras fit.", flag_values=v)
    flags.DEFINE_string("measurements", None, "CSV with the model's input and output columns by name.",
                        flag_values=v)
    flags.DEFINE_string("arm", None, "Which ensemble: the fit's default (its first --strategies; transfer "
                        "for fine_tune_all), another of its strategies, or baseline.", flag_values=v)
    flags.DEFINE_string("out", None, "Also write the scores to this JSON file.", flag_values=v)
    for name in ("model", "measurements"):
        flags.mark_flag_as_required(name, flag_values=v)


def run_evaluate(v: flags.FlagValues) -> None:
    import json

    from tlkeras.core.errors import ModelFileError
    from tlkeras.fit.ensemble import read_manifest
    from tlkeras.systems.measurements import MeasurementError, read_measurements

    try:
        manifest = read_manifest(Path(v.model))
        _check_arm(v, manifest)
        found = read_measurements(v.measurements, manifest["inputs"], manifest["outputs"])
        if v.out:
            if Path(v.out).is_dir():
                raise ValueError(f"--out={v.out} is a folder; give a JSON file name")
            folders.check_writable(Path(v.out).resolve().parent, "--out")
    except (ModelFileError, MeasurementError, folders.FolderError, ValueError) as error:
        fail(str(error))
    ensemble = _load_ensemble(v)
    scores = ensemble.evaluate(found.x, found.y)
    print(f"{found.rows} rows of {found.path}; {len(ensemble.models)} {ensemble.arm} members; coverage: "
          f"rows within mean ± 2 sd, sd with the noise estimate {', '.join(f'{s:.4g}' for s in ensemble.noise_sd)}")
    print(f"{'output':<14}{'rows':<18}{'n':>5}{'L1':>12}{'RMSE':>12}{'coverage':>10}")
    for name, by_region in scores.items():
        for where, score in by_region.items():
            if score["rows"]:
                print(f"{name:<14}{where.replace('_', ' '):<18}{score['rows']:>5}{score['l1']:>12.4g}"
                      f"{score['rmse']:>12.4g}{score['coverage_2sd']:>10.1%}")
    if v.out:
        _write_text(Path(v.out), json.dumps(dict(model=str(v.model), measurements=str(found.path), sha256=found.sha256,
                                               arm=v.arm or manifest["default_arm"], scores=scores), indent=2) + "\n")
        print(f"wrote {v.out}")


def _check_arm(v: flags.FlagValues, manifest: dict) -> None:
    if v.arm is not None and not manifest["ensembles"].get(v.arm):
        available = ", ".join(a for a, paths in manifest["ensembles"].items() if paths)
        raise ValueError(f"--arm={v.arm!r} is not allowed: this model has {available}")


def _load_ensemble(v: flags.FlagValues):
    from tlkeras.runtime.startup import import_tensorflow

    import_tensorflow().get_logger().setLevel("ERROR")
    from tlkeras.core.errors import ModelFileError
    from tlkeras.fit.ensemble import Ensemble

    try:
        return Ensemble.load(Path(v.model), v.arm)
    except ModelFileError as error:
        fail(str(error))


def _write_text(path: Path, text: str) -> None:
    temporary = path.parent / f".{path.name}.{os.getpid()}.partial"
    try:
        temporary.write_text(text)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        fail(f"could not write {path}: {error.strerror or error}", 1)


def _write_csv(path: Path, header: list[str], columns: list) -> None:
    """Written beside `path` and renamed into place: a reader never sees half a file."""
    import csv

    temporary = path.parent / f".{path.name}.{os.getpid()}.partial"
    try:
        with temporary.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for row in zip(*columns):
                writer.writerow([repr(float(value)) for value in row])  # round-trips exactly
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        fail(f"could not write {path}: {error.strerror or error}", 1)


class Predict:
    REQUIRED = ("model", "out")
    define = staticmethod(define_predict)
    run = staticmethod(run_predict)


class Evaluate:
    REQUIRED = ("model", "measurements")
    define = staticmethod(define_evaluate)
    run = staticmethod(run_evaluate)
