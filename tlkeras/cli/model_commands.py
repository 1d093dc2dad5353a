"""`tlkeras predict` and `tlkeras evaluate`: use a model folder written by `tlkeras fit`.

    tlkeras predict --model=models/plate1 --grid=50 --out=pred.csv
    tlkeras predict --model=models/plate1 --inputs=wells.csv --out=pred.csv
    tlkeras evaluate --model=models/plate1 --measurements=test.csv --out=scores.json

Flags -> checks -> `fit.ensemble.Ensemble` (load, predict mean and spread, score) -> a CSV or a table.

Everything is checked before TensorFlow is imported; a problem is one `error: ` line, exit status
2, and nothing is written:
- an --out that exists is replaced only with --overwrite. An --out that is one of the command's
  inputs is refused even with --overwrite: predict's --inputs, evaluate's --measurements, the
  --model folder or any file in it, the CSV and the simple model's source the model was fitted on
  (paths compared resolved, and as the same file on disk: symlinks, hard links).
- an arm whose members evaluate the simple model g when they predict (residual, g_feature: a
  `SimpleModelLayer`, found in the .keras archives' config.json without TensorFlow) needs g: if
  its file is gone or does not import, the error names it and the arms of the model that do not
  need g. If g's source has changed since the fit (its sha256 against the manifest's), a warning
  says predictions may differ from the fit's; with --strict that is refused. Arms that do not
  evaluate g never look at it.
Warnings, one `warning: ` line each, and the command goes on: points (predict) or rows (evaluate)
outside the model's domain; evaluate on the very CSV the model was fitted on (the same sha256:
the scores are in-sample).

predict writes every column of an --inputs CSV as the file has it (well IDs, notes, numbers as
typed), in the file's column and row order, then `<output>_mean`, `<output>_sd`, `<output>_lower`
and `<output>_upper` per output (the calibrated prediction interval at --level, `fit.calibration`;
with --raw, or for a model fitted without folds, mean and sd only);
--nokeep_columns writes only the model's inputs (as a grid does). A column already named like a
prediction column (`gfp_mean`) is refused, never dropped or duplicated. Files are written beside
--out and renamed into place: a reader never sees half a file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from absl import flags

from tlkeras.cli.lifecycle import fail
from tlkeras.results import intervals
from tlkeras.storage import folders
from tlkeras.systems.domains import Domain

PREDICTED = ("mean", "sd", "lower", "upper")  # <output>_mean, _sd, and (calibrated) _lower, _upper


def define_predict(v: flags.FlagValues) -> None:
    flags.DEFINE_string("model", None, "A model folder written by tlkeras fit.", flag_values=v)
    flags.DEFINE_string("inputs", None, "CSV of points, with the model's input columns by name.", flag_values=v)
    flags.DEFINE_integer("grid", None, "Instead of --inputs: a regular grid of this many points per input "
                         "over the model's domain.", lower_bound=2, upper_bound=1_000_000, flag_values=v)
    flags.DEFINE_string("out", None, "CSV to write: the --inputs file's columns (see --keep_columns; a grid's "
                        "points), then <output>_mean, _sd, _lower and _upper (--raw: _mean and _sd). Never the "
                        "--inputs file or in the --model folder, even with --overwrite.", flag_values=v)
    flags.DEFINE_boolean("overwrite", False, "Replace an existing --out file (never an input).", flag_values=v)
    flags.DEFINE_boolean("keep_columns", True, "With --inputs: write every column of the file (well IDs, notes, "
                         "as typed, in its order), then the predictions; --nokeep_columns: only the model's inputs. "
                         "A column named like a prediction column (gfp_mean) is refused: rename it, or "
                         "--nokeep_columns.", flag_values=v)
    flags.DEFINE_float("level", 0.9, "Nominal level of the prediction intervals <output>_lower and <output>_upper "
                       "(between 0 and 1): calibrated from the fit's folds (the model's report.md says how).",
                       flag_values=v)
    flags.DEFINE_boolean("raw", False, "Write only <output>_mean and <output>_sd (the ensemble's spread, not "
                         "calibrated), as before calibrated intervals.", flag_values=v)
    define_arm_and_strict(v)
    for name in ("model", "out"):
        flags.mark_flag_as_required(name, flag_values=v)
    flags.register_multi_flags_validator(
        ["inputs", "grid"], lambda f: (f["inputs"] is None) != (f["grid"] is None),
        message="give exactly one of --inputs=points.csv and --grid=<points per input>", flag_values=v)


def define_arm_and_strict(v: flags.FlagValues) -> None:
    flags.DEFINE_string("arm", None, "Which ensemble: the fit's default (its first --strategies; transfer "
                        "for fine_tune_all), another of its strategies, or baseline.", flag_values=v)
    flags.DEFINE_boolean("strict", False, "Refuse, instead of a warning, when the --arm evaluates the simple model "
                         "g when it predicts (residual, g_feature) and g's source file has changed since the fit "
                         "(its sha256).", flag_values=v)


def run_predict(v: flags.FlagValues) -> None:
    from tlkeras.core.errors import ModelFileError
    from tlkeras.fit.ensemble import grid_points, read_manifest
    from tlkeras.systems.measurements import MeasurementError

    out = Path(v.out)
    try:
        manifest = read_manifest(Path(v.model))
        check_arm(v, manifest)
        calibrated = None if v.raw else check_level(v, manifest)
        check_out(v, manifest, out, {"--inputs": v.inputs}, "a CSV")
        if v.grid is not None:
            x, _ = grid_points(manifest["domain"], v.grid)
            header, cells = list(manifest["inputs"]), [[repr(float(value)) for value in row] for row in x]
        else:
            x, header, cells = read_points(Path(v.inputs), manifest, v.keep_columns)
        warnings = check_simple_model(v, manifest)
        folders.check_writable(out.resolve().parent, "--out")
    except (ModelFileError, MeasurementError, folders.FolderError, ValueError) as error:
        fail(str(error))
    if not v.raw and calibrated is None:
        warnings.append(f"--model={v.model} has no calibration for the {v.arm or manifest['default_arm']} arm (fitted "
                        "before calibrated intervals, or with --folds=0): writing mean and sd only; refit with --folds "
                        "of at least 2 for <output>_lower and <output>_upper")
    for warning in [*warnings, outside_domain(x, manifest, "points")]:
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    ensemble = load_ensemble(v)
    mean, sd = call_model(ensemble, ensemble.predict, x)
    columns = [mean, sd]
    if calibrated is not None:
        bands = load_intervals(v, manifest)
        columns += call_model(ensemble, bands.interval, x, v.level)
    kinds = PREDICTED if calibrated is not None else PREDICTED[:2]
    header += [f"{name}_{kind}" for name in manifest["outputs"] for kind in kinds]
    rows = [[*row, *(repr(float(values[i, o])) for o in range(mean.shape[1]) for values in columns)]
            for i, row in enumerate(cells)]
    write_csv(out, header, rows)
    print(f"wrote {out}: {len(x)} points, mean and sd over {len(ensemble.models)} {ensemble.arm} members")
    if calibrated is not None:
        print(f"lower, upper: {100 * v.level:g}% prediction interval for a new reading, {calibrated['method']} "
              f"({calibrated['fold_kind']} {calibrated['folds']}-fold, {calibrated['rows']} rows); inside the measured "
              f"region it covers at least {max(0.0, 100 * (2 * v.level - 1)):g}% (guaranteed), about "
              f"{100 * v.level:g}% in practice; outside it, nothing is guaranteed (docs/intervals.md)")


def check_level(v: flags.FlagValues, manifest: dict) -> dict | None:
    """The arm's calibration summary (None: the model has none), once --level is known to be
    allowed and the calibration has rows enough for it; ValueError (one line) otherwise."""
    from tlkeras.fit.calibration import level_problem

    arm = v.arm or manifest["default_arm"]
    calibrated = ((manifest.get("calibration") or {}).get("arms") or {}).get(arm)
    problem = level_problem(v.level, calibrated and calibrated["rows"], f"the {arm} arm")
    if problem:
        raise ValueError(problem)
    return calibrated


def load_intervals(v: flags.FlagValues, manifest: dict):
    from tlkeras.core.errors import ModelFileError
    from tlkeras.fit.calibration import load_intervals as load

    try:
        return load(Path(v.model), manifest, v.arm or manifest["default_arm"])
    except ModelFileError as error:
        fail(str(error))


def define_evaluate(v: flags.FlagValues) -> None:
    flags.DEFINE_string("model", None, "A model folder written by tlkeras fit.", flag_values=v)
    flags.DEFINE_string("measurements", None, "CSV with the model's input and output columns by name.",
                        flag_values=v)
    flags.DEFINE_string("out", None, "Also write the scores to this JSON file. Never the --measurements file or in "
                        "the --model folder, even with --overwrite.", flag_values=v)
    flags.DEFINE_string("figure", None, "Also draw the intervals' calibration (observed coverage against the "
                        "nominal 50/80/90/95%, calibrated and raw, inside and outside the measured region) to this "
                        "PNG file; the same rules as --out.", flag_values=v)
    flags.DEFINE_boolean("overwrite", False, "Replace an existing --out or --figure file (never an input).",
                         flag_values=v)
    define_arm_and_strict(v)
    for name in ("model", "measurements"):
        flags.mark_flag_as_required(name, flag_values=v)


def run_evaluate(v: flags.FlagValues) -> None:
    import json

    from tlkeras.core.errors import ModelFileError
    from tlkeras.fit.ensemble import read_manifest
    from tlkeras.systems.measurements import MeasurementError, read_measurements

    try:
        manifest = read_manifest(Path(v.model))
        check_arm(v, manifest)
        for flag, path, kind in (("--out", v.out, "a JSON"), ("--figure", v.figure, "a PNG")):
            if path:
                check_out(v, manifest, Path(path), {"--measurements": v.measurements}, kind, flag)
        if v.out and v.figure and folders.same_file(Path(v.out), Path(v.figure)):
            raise ValueError(f"--figure={v.figure} is the --out file; give two different files")
        found = read_measurements(v.measurements, manifest["inputs"], manifest["outputs"])
        warnings = check_simple_model(v, manifest)
        for flag, path in (("--out", v.out), ("--figure", v.figure)):
            if path:
                folders.check_writable(Path(path).resolve().parent, flag)
        arm = v.arm or manifest["default_arm"]
        calibrated = ((manifest.get("calibration") or {}).get("arms") or {}).get(arm)
        if calibrated is not None and calibrated["rows"] < intervals.min_rows(max(intervals.LEVELS)):
            calibrated = None  # too few rows for every level: evaluate scores the raw intervals only
    except (ModelFileError, MeasurementError, folders.FolderError, ValueError) as error:
        fail(str(error))
    if found.sha256 == (manifest.get("measurements") or {}).get("sha256"):
        warnings.append(f"--measurements={v.measurements} is the CSV this model was fitted on (the same sha256); "
                        "these scores are in-sample, not a test of the model")
    for warning in [*warnings, outside_domain(found.x, manifest, "rows")]:
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    if calibrated is None:
        print(f"warning: --model={v.model} has no calibration for the {arm} arm (fitted before calibrated intervals, "
              "with --folds=0, or on too few rows): only the raw intervals are scored", file=sys.stderr)
    ensemble = load_ensemble(v)
    bands = None
    if calibrated is not None:
        bands = call_model(ensemble, load_intervals(v, manifest).intervals, found.x, intervals.LEVELS)
    scores = call_model(ensemble, ensemble.evaluate, found.x, found.y, bands)
    print(f"{found.rows} rows of {found.path}; {len(ensemble.models)} {ensemble.arm} members; coverage: "
          f"rows within mean ± 2 sd, sd with the noise estimate {', '.join(f'{s:.4g}' for s in ensemble.noise_sd)}")
    print(f"{'output':<14}{'rows':<18}{'n':>5}{'L1':>12}{'RMSE':>12}{'coverage':>10}{'90% raw':>9}{'90% cal':>9}"
          f"{'width 90':>12}{'CRPS':>12}")
    for name, by_region in scores.items():
        for where, score in by_region.items():
            if score["rows"]:
                cal = score.get("coverage_calibrated", {}).get("90")
                width = score.get("width_90", score["width_90_raw"])
                print(f"{name:<14}{where.replace('_', ' '):<18}{score['rows']:>5}{score['l1']:>12.4g}"
                      f"{score['rmse']:>12.4g}{score['coverage_2sd']:>10.1%}{score['coverage_raw']['90']:>9.1%}"
                      f"{'n/a' if cal is None else format(cal, '.1%'):>9}{width:>12.4g}{score['crps_raw']:>12.4g}")
    print("90% raw: rows within the Gaussian 90% interval mean ± 1.645 sd (not calibrated); 90% cal: within the "
          "calibrated 90% interval (predict's lower, upper); width 90: the calibrated one's (raw without one); CRPS: "
          "of N(mean, sd^2), lower is better; --out has 50/80/90/95%, widths and interval scores")
    if v.figure:
        _draw_calibration(Path(v.figure), scores, ensemble.arm, found.path)
        print(f"wrote {v.figure}")
    if v.out:
        _write_text(Path(v.out), json.dumps(dict(model=str(v.model), measurements=str(found.path), sha256=found.sha256,
                                               arm=v.arm or manifest["default_arm"], scores=scores), indent=2) + "\n")
        print(f"wrote {v.out}")


def _draw_calibration(path: Path, scores: dict, arm: str, measurements: Path) -> None:
    """Observed against nominal coverage, pooled over outputs (rows-weighted), inside and outside."""
    from tlkeras.results import plots

    panels = {}
    for where in ("inside_measured", "outside_measured"):
        used = [by_region[where] for by_region in scores.values() if by_region[where]["rows"]]
        if not used:
            continue
        total = sum(score["rows"] for score in used)
        curves = {}
        for kind in ("calibrated", "raw"):
            if all(f"coverage_{kind}" in score for score in used):
                curves[f"{arm} {kind}"] = [(level, sum(score[f"coverage_{kind}"][f"{100 * level:g}"] * score["rows"]
                                                       for score in used) / total) for level in intervals.LEVELS]
        panels[f"{where.replace('_', ' ')} region ({used[0]['rows']} rows)"] = curves

    figure = plots.plot_calibration(path.parent / f".{path.name}.{os.getpid()}.png", panels,
                                    f"prediction intervals of {arm} on {measurements.name}")
    try:
        _write_whole(path, lambda handle: handle.write(figure.read_bytes()), binary=True)
    finally:
        figure.unlink(missing_ok=True)


def check_arm(v: flags.FlagValues, manifest: dict) -> None:
    if v.arm is not None and not manifest["ensembles"].get(v.arm):
        available = ", ".join(a for a, paths in manifest["ensembles"].items() if paths)
        raise ValueError(f"--arm={v.arm!r} is not allowed: this model has {available}")


def check_out(v: flags.FlagValues, manifest: dict, out: Path, inputs: dict[str, str | None], kind: str,
              flag: str = "--out") -> None:
    """Refuse an --out (or another file flag) that is an input (always, even with --overwrite), a
    folder, or an existing file without --overwrite."""
    from tlkeras.systems import user

    model = Path(v.model)
    if folders.inside(out, model):
        where = "is the --model folder" if folders.resolved(out) == folders.resolved(model) else f"is inside the --model folder {model}"
        raise ValueError(f"{flag}={out} {where}; give a file name outside it (it would overwrite the model)")
    linked = folders.hard_link_in(out, model)
    if linked is not None:
        raise ValueError(f"{flag}={out} is the --model folder's file {linked} (a link to it); give another file name "
                         "(it would be overwritten)")
    for input_flag, path in inputs.items():
        if path is not None and folders.same_file(out, Path(path)):
            raise ValueError(f"{flag}={out} is the {input_flag} file; give another file name (it would be overwritten)")
    fitted_on = (manifest.get("measurements") or {}).get("path")
    if fitted_on and folders.same_file(out, Path(fitted_on)):
        raise ValueError(f"{flag}={out} is the CSV this model was fitted on; give another file name (it would be "
                         "overwritten)")
    reference = (manifest.get("simple") or {}).get("reference")
    if reference and user.is_reference(reference):
        try:
            source = user.source_path(reference)
        except user.SystemReferenceError:
            source = None
        if source is not None and folders.same_file(out, source):
            raise ValueError(f"{flag}={out} is the source of the simple model {reference}; give another file name "
                             "(it would be overwritten)")
    if out.is_dir():
        raise ValueError(f"{flag}={out} is a folder; give {kind} file name")
    if out.exists() and not v.overwrite:
        raise ValueError(f"{flag}={out} already exists; give another file, or --overwrite")


def read_points(path: Path, manifest: dict, keep_columns: bool) -> tuple:
    """(x [points, inputs], header, cells per row as text): with `keep_columns` every column of the
    file as it has it, else the model's inputs."""
    from tlkeras.systems.measurements import read_measurements, read_rows

    x = read_measurements(path, manifest["inputs"], ()).x  # every check, one line each
    if not keep_columns:
        return x, list(manifest["inputs"]), [[repr(float(value)) for value in row] for row in x]
    rows = read_rows(path)  # the rows read_measurements used, as text
    header = [cell.strip() for cell in rows[0][1]]
    predicted = {f"{name}_{kind}" for name in manifest["outputs"] for kind in PREDICTED}
    clash = [name for name in header if name in predicted and name not in manifest["inputs"]]
    if clash:
        raise ValueError(f"--inputs={path} has a column {clash[0]!r}, a name predict writes; rename that column, or "
                         "give --nokeep_columns (only the inputs and the predictions are written)")
    cells = [list(row[:len(header)]) for _, row in rows[1:]]
    if len(cells) != len(x):
        raise ValueError(f"--inputs={path} changed while it was read; try again")
    return x, header, cells


def check_simple_model(v: flags.FlagValues, manifest: dict) -> list[str]:
    """If the members of the chosen arm evaluate g when they predict: refuse a g that is gone or
    does not import (naming the arms that do not need g), and warn of (--strict: refuse) a g
    whose source has changed since the fit. The warnings to print."""
    from tlkeras.fit.ensemble import arms_needing_simple_model, simple_model_references
    from tlkeras.systems import user

    folder = Path(v.model)
    arm = v.arm or manifest["default_arm"]
    references = simple_model_references([folder / p for p in manifest["ensembles"][arm]])
    if not references:
        return []

    def instead() -> str:
        others = [a for a, needed in arms_needing_simple_model(folder, manifest).items() if not needed]
        if not others:
            return "(every arm of this model evaluates g)"
        return "or use an arm of this model that does not need g: " + ", ".join(f"--arm={a}" for a in others)

    which = f"--arm={arm}" if v.arm else f"the {arm} arm (this model's default)"
    simple = manifest.get("simple") or {}
    warnings = []
    for reference in references:
        if not user.is_reference(reference):
            continue  # a built-in g ships with tlkeras
        try:
            now = user.source_sha256(reference)
        except (user.SystemReferenceError, OSError) as error:
            reason = str(error).removeprefix(f"{reference}: ")
            raise ValueError(f"{which} evaluates the simple model {reference} when it predicts, but {reason}; "
                             f"restore it, {instead()}") from None
        recorded = simple.get("sha256") if reference == simple.get("reference") else None
        if recorded and now != recorded:
            changed = (f"the simple model {reference} has changed since this model was fitted (sha256 {now[:12]}, "
                       f"the fit's {recorded[:12]})")
            if v.strict:
                raise ValueError(f"{changed} and {which} evaluates it (--strict); restore the fit's g, {instead()}")
            warnings.append(f"{changed}; {which} evaluates it, so predictions may differ from the fit's "
                            "(--strict refuses)")
        try:
            user.load_function(reference)  # a g that no longer imports: one line, before TensorFlow
        except user.SystemReferenceError as error:
            raise ValueError(f"{which} evaluates the simple model g when it predicts, but {error}; fix it, "
                             f"{instead()}") from None
    return warnings


def outside_domain(x, manifest: dict, what: str) -> str:
    outside = int((~Domain.from_pairs(manifest["domain"]).contains(x)).sum())
    if not outside:
        return ""
    return f"{outside} of {len(x)} {what} lie outside the model's domain; the simple model taught it nothing there"


def load_ensemble(v: flags.FlagValues):
    from tlkeras.runtime.startup import import_tensorflow

    import_tensorflow().get_logger().setLevel("ERROR")
    from tlkeras.core.errors import ModelFileError
    from tlkeras.fit.ensemble import Ensemble

    try:
        return Ensemble.load(Path(v.model), v.arm)
    except ModelFileError as error:
        fail(str(error))


def call_model(ensemble, method, *args):
    """`method(*args)` of a loaded ensemble; a failure while the members run (a g that raises or
    returns the wrong shape now) is one line and exit status 1."""
    try:
        return method(*args)
    except Exception as error:  # Keras and TensorFlow wrap what g raised in their own long text
        import re

        lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines()]
        lines = [line for line in lines if line and not line.startswith(("Exception encountered", "Arguments received"))]
        reason = lines[0][:300] if lines else type(error).__name__
        fail(f"the {ensemble.arm} members failed while predicting: {reason}", 1)


def _write_text(path: Path, text: str) -> None:
    _write_whole(path, lambda handle: handle.write(text))


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """Cells as given (numbers as `repr(float)`: they round-trip exactly)."""
    import csv

    def write(handle) -> None:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)

    _write_whole(path, write)


def _write_whole(path: Path, write, binary: bool = False) -> None:
    """Written beside `path` and renamed into place: a reader never sees half a file, and a stop
    or a full disk midway leaves no temporary behind."""
    temporary = path.parent / f".{path.name}.{os.getpid()}.partial"
    try:
        with (temporary.open("wb") if binary else temporary.open("w", newline="")) as handle:
            write(handle)
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):
            fail(f"could not write {path}: {error.strerror or error}", 1)
        raise


class Predict:
    REQUIRED = ("model", "out")
    define = staticmethod(define_predict)
    run = staticmethod(run_predict)


class Evaluate:
    REQUIRED = ("model", "measurements")
    define = staticmethod(define_evaluate)
    run = staticmethod(run_evaluate)
