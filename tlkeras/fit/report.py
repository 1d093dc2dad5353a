"""The report of a fit: cross-validated error on the measurements, the spread of the ensemble over
the whole domain, and `manifest.json` (what `ensemble.Ensemble` loads).

Cross-validation (k folds, fixed random assignment, `measurements.fold_of_rows`): for every seed,
each row is predicted by that seed's member trained without the row's fold; per member the
errors are pooled over all rows, and the *ensemble* prediction of a row is the mean over seeds
of those held-out predictions. CV measures the error where the lab measured; outside that region
nothing was measured, and only the ensemble's spread (and README's coverage measurements) speak.

The measurement-noise estimate per output and arm is the RMSE of that arm's ensemble's held-out
predictions: measurement noise plus model error, so it errs on the side of wider intervals.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from tlkeras.core.config import StudyConfig
from tlkeras.core.vocabulary import PRETRAIN
from tlkeras.fit.calibration import (
    CALIBRATION,
    GUARANTEE,
    METHOD,
    METHOD_TEXT,
    CalibratedIntervals,
    calibration_of,
    fold_member_paths,
    out_of_fold_coverage,
    out_of_fold_predictions,
    summary,
)
from tlkeras.fit.ensemble import MANIFEST, Ensemble, grid_points
from tlkeras.results import plots, tracking
from tlkeras.runtime import faults, interrupts
from tlkeras.storage.rundir import RunDir
from tlkeras.strategies.registry import strategy_of_arm
from tlkeras.systems.measurements import MEASURED, of_config, row_folds

SLICE_POINTS = 121
MAX_PANELS = 8  # inputs (and outputs) drawn in the slices figure; the rest are in predict's reach


def cross_validation(config: StudyConfig, records: list[dict], arm: str) -> dict | None:
    """Held-out predictions of `arm` for every row and seed, and the errors they make."""
    found = of_config(config)
    seeds, predictions = out_of_fold_predictions(records, arm, found.rows, config.output_dimension)
    if not seeds or not config.folds:
        return None
    residuals = predictions - found.y[None]  # [seeds, rows, outputs]
    member_l1 = np.mean(np.abs(residuals), axis=1)  # [seeds, outputs]
    member_rmse = np.sqrt(np.mean(residuals**2, axis=1))
    mean = predictions.mean(axis=0)
    spread = predictions.std(axis=0, ddof=1) if len(seeds) > 1 else np.zeros_like(mean)
    ensemble_residuals = mean - found.y
    return dict(
        seeds=seeds, mean=mean, spread=spread,
        ensemble_l1=np.mean(np.abs(ensemble_residuals), axis=0),
        ensemble_rmse=np.sqrt(np.mean(ensemble_residuals**2, axis=0)),
        member_l1_mean=member_l1.mean(axis=0), member_l1_sd=member_l1.std(axis=0, ddof=1) if len(seeds) > 1 else 0 * member_l1[0],
        member_rmse_mean=member_rmse.mean(axis=0),
    )


def write_fit_report(run_dir: RunDir, config: StudyConfig, records: list[dict], sessions: list[dict],
                     command: str = "", flags_text: str = "") -> dict:
    """report.md, results.json, figures (PNG and in TensorBoard) and manifest.json."""
    found = of_config(config)
    outputs = list(config.measurement_outputs)
    arms = config.trained_arms()  # the strategies' (the first is the default), then the baseline
    cv = {arm: cross_validation(config, records, arm) for arm in arms}
    # Each arm's own noise estimate: the RMSE of its ensemble's held-out predictions.
    noise = {arm: dict(zip(outputs, values["ensemble_rmse"].tolist())) for arm, values in cv.items() if values}
    ensembles = {
        arm: sorted((r["model"] for r in records if r["arm"] == arm and r["system"] == MEASURED),
                    key=lambda path: int(Path(path).stem.removeprefix("seed")))
        for arm in arms
    }
    calibrations = _calibrations(config, records, arms, cv, noise)
    region = np.asarray(config.small_domain, np.float64).reshape(-1, 2)
    domain = np.stack(config.big_box.bounds(config.input_dimension), axis=1)
    manifest = dict(
        format="tlkeras-model/1",
        inputs=list(config.measurement_inputs), outputs=outputs,
        domain=domain.tolist(), measured_region=region.tolist(),
        seeds=list(config.seeds), default_arm=arms[0],
        ensembles=ensembles,
        noise_sd=noise or None,
        noise_sd_meaning="per arm: RMSE of its ensemble's cross-validated predictions (noise + model error)",
        simple=dict(reference=config.simple_system, sha256=config.simple_source),
        measurements=dict(path=config.measurements, sha256=config.measurements_sha256, rows=found.rows),
        folds=config.folds, fold_kind=config.fold_kind,
        calibration=dict(file=CALIBRATION, method=METHOD, meaning=METHOD_TEXT, guarantee=GUARANTEE,
                         arms={arm: summary(c, outputs, config.fold_kind) for arm, c in calibrations.items()})
        if calibrations else None,
        command=command, created=time.strftime("%Y-%m-%d %H:%M:%S"),
        flags=[line for line in flags_text.splitlines() if line],  # rerun: tlkeras fit --flagfile=flags.txt
        config="config.json",
    )
    checks = {arm: out_of_fold_coverage(c, found.y, np.sqrt(cv[arm]["spread"] ** 2 + cv[arm]["ensemble_rmse"] ** 2))
              for arm, c in calibrations.items()}
    faults.point("report.figures")
    drawn: dict[str, Path] = {}
    run_dir.staging.write_folder(run_dir.figures, lambda folder: drawn.update(
        _figures(run_dir, config, manifest, folder, checks, calibrations)))
    figures = {tag: run_dir.figures / path.name for tag, path in drawn.items()}
    interrupts.check()
    run_dir.staging.write_folder(run_dir.tensorboard / "figures", lambda folder: tracking.write_figures(folder, figures))
    faults.point("report.tables")
    results = dict(
        cross_validation={arm: _jsonable(values, outputs) for arm, values in cv.items() if values},
        calibration_check=checks,
        members=[{k: v for k, v in r.items() if k not in ("row_predictions", "rows", "point_errors")} for r in records],
        figures={tag: f"figures/{path.name}" for tag, path in figures.items()}, environment=sessions,
    )
    run_dir.staging.write_json(run_dir.path / "results.json", results)
    if calibrations:
        run_dir.staging.write_json(run_dir.path / CALIBRATION, calibrations)
    if checks:
        run_dir.staging.write_folder(run_dir.tensorboard / "calibration", lambda folder: tracking.write_calibration_runs(
            folder, checks, found.rows))
    run_dir.staging.write_text(run_dir.path / "report.md", _markdown(config, manifest, cv, records, figures,
                                                                     run_dir.preset_note(), checks))
    run_dir.staging.write_json(run_dir.path / MANIFEST, manifest)  # last: a manifest means a whole model
    return manifest


def _calibrations(config: StudyConfig, records: list[dict], arms, cv: dict, noise: dict) -> dict:
    """Every arm's calibration (`fit.calibration`), for arms with k-fold members."""
    if not config.folds:
        return {}
    found = of_config(config)
    row_fold = row_folds(config, found)
    made = {arm: calibration_of(records, arm, found.y, row_fold) for arm in arms if cv.get(arm)}
    return {arm: c for arm, c in made.items() if c is not None}


def _jsonable(values: dict, outputs: list[str]) -> dict:
    keep = ("ensemble_l1", "ensemble_rmse", "member_l1_mean", "member_l1_sd", "member_rmse_mean")
    return {key: dict(zip(outputs, np.asarray(values[key]).tolist())) for key in keep} | {"seeds": values["seeds"]}


def _markdown(config: StudyConfig, manifest: dict, cv: dict, records: list[dict], figures: dict,
              preset_note: list[str], checks: dict) -> str:
    outputs = manifest["outputs"]
    found = of_config(config)
    lines = [
        "# Fit report", "", *preset_note,
        f"- simple model: `{config.simple_system}` (sha256 {config.simple_source[:12]})",
        f"- measurements: `{config.measurements}`, {found.rows} rows (sha256 {config.measurements_sha256[:12]})",
        f"- inputs {', '.join(manifest['inputs'])}; outputs {', '.join(outputs)}",
        "- domain: " + ", ".join(f"{n} {a:g}..{b:g}" for n, (a, b) in zip(manifest["inputs"], manifest["domain"])),
        "- measured region: " + ", ".join(f"{n} {a:g}..{b:g}" for n, (a, b) in
                                          zip(manifest["inputs"], manifest["measured_region"])),
        f"- seeds {', '.join(map(str, config.seeds))} (one member per seed and arm)"
        + (f"; {config.pretrain_epochs} pretraining epochs on {config.pretrain_size} points of the simple model"
           if config.needs_pretraining else ""),
        "- training: " + "; ".join(_training_line(config, arm) for arm in config.trained_arms()),
        "",
    ]
    if any(cv.values()):
        lines += [
            f"## {config.folds}-fold cross-validated error on the measurements", "",
            "Each row predicted by members that never saw it. *Ensemble*: the mean over seeds of those",
            "predictions; *member*: one seed's model alone (mean ± sd over seeds). In the units of the CSV.",
            "This is the error **where you measured**; outside the measured region it says nothing.", "",
            "| arm | output | ensemble L1 | ensemble RMSE | member L1 | member RMSE |",
            "|---|---|---|---|---|---|",
        ]
        for arm, values in cv.items():
            if not values:
                continue
            for o, name in enumerate(outputs):
                lines.append(f"| {arm} | {name} | {values['ensemble_l1'][o]:.4g} | {values['ensemble_rmse'][o]:.4g} | "
                             f"{values['member_l1_mean'][o]:.4g} ± {values['member_l1_sd'][o]:.2g} | "
                             f"{values['member_rmse_mean'][o]:.4g} |")
        compared = [arm for arm in config.strategy_arms() if cv.get(arm)]
        if compared and cv.get("baseline"):
            lines += ["", "Ensemble RMSE over the baseline's (below 1: better than the baseline here):", "",
                      "| arm | " + " | ".join(outputs) + " |", "|---|" + "---|" * len(outputs)]
            for arm in compared:
                ratio = cv[arm]["ensemble_rmse"] / cv["baseline"]["ensemble_rmse"]
                lines.append(f"| {arm} | " + " | ".join(f"{r:.3f}" for r in ratio) + " |")
        if manifest["noise_sd"]:
            lines += ["", "Noise estimate `tlkeras evaluate` adds to each arm's spread (its ensemble's CV RMSE): "
                      + "; ".join(f"{arm}: " + ", ".join(f"{k} {v:.4g}" for k, v in values.items())
                                  for arm, values in manifest["noise_sd"].items())]
        lines.append("")
    lines += _calibration_lines(config, manifest, checks)
    fits = [r for r in records if r["system"] == MEASURED]
    if fits:
        lines += ["## Fit on all measurements (training error, optimistic)", "",
                  "| arm | output | member RMSE (mean over seeds) |", "|---|---|---|"]
        for arm in config.trained_arms():
            rmse = np.mean([r["rmse_by_output"] for r in fits if r["arm"] == arm], axis=0)
            lines += [f"| {arm} | {name} | {rmse[o]:.4g} |" for o, name in enumerate(outputs)]
        lines.append("")
    pretrain = [r for r in records if r["arm"] == PRETRAIN]
    if pretrain:
        lines += ["## Pretraining", "",
                  f"L1 against the simple model on {config.eval_points} points of the domain: " + ", ".join(
                      f"seed {r['seed']} {r['l1_mean']:.4g}{' (cached)' if r.get('cached') else ''}"
                      for r in sorted(pretrain, key=lambda r: r["seed"])), ""]
    lines += ["## Figures", "", *[f"- `figures/{path.name}`" for path in figures.values()], "",
              "## Use the model", "",
              "    tlkeras predict --model=<this folder> --grid=50 --out=pred.csv",
              "    tlkeras evaluate --model=<this folder> --measurements=new_rows.csv",
              "    tensorboard --logdir <this folder>/tensorboard", ""]
    return "\n".join(lines)


def _calibration_lines(config: StudyConfig, manifest: dict, checks: dict) -> list[str]:
    calibration = manifest.get("calibration")
    if not calibration:
        return ["## Prediction intervals", "",
                "No calibration: it needs cross-validation (--folds of at least 2). `tlkeras predict` writes the",
                "ensemble's mean and sd only.", ""]
    lines = [
        "## Prediction intervals (calibrated)", "",
        f"`tlkeras predict` writes `<output>_lower` and `<output>_upper` at `--level` (default 0.9): "
        f"{calibration['meaning']}, from the {config.fold_kind} {config.folds}-fold members "
        f"(`{calibration['file']}`). An interval is for a new *reading* (noise included).",
        f"Guarantee: {calibration['guarantee']}.", "",
        "How they fare on your measured rows, each row's interval made without its own fold (split conformal",
        "on the other folds' scores) beside the raw Gaussian interval mean ± z sqrt(sd² + noise²); observed",
        "coverage (nominal in the header) and mean width, pooled over outputs:", "",
        "| arm | " + " | ".join(f"{level}% calibrated | {level}% raw" for level in next(iter(checks.values()))) + " |",
        "|---|" + "---|---|" * len(next(iter(checks.values()))),
    ]
    for arm, by_level in checks.items():
        cells = []
        for entry in by_level.values():
            calibrated = "n/a" if entry["calibrated"] is None else \
                f"{entry['calibrated']:.0%} (width {entry['calibrated_width']:.3g})"
            cells += [calibrated, f"{entry['raw']:.0%} (width {entry['raw_width']:.3g})"]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    lines += ["", "Outside the measured region no row was measured: there the intervals widen with the ensembles'",
              "spread, nothing is guaranteed, and only new readings there (`tlkeras evaluate`) say how they fare.",
              "The figure `figures/fit_calibration.png` draws the table.", ""]
    return lines


def _training_line(config: StudyConfig, arm: str) -> str:
    strategy = strategy_of_arm(arm)
    if strategy is None:
        return f"{arm} {config.epochs} epochs from scratch"
    epochs, _ = strategy.epochs(config)
    start = "from the pretrained model" if strategy.needs_pretraining else "from scratch, with g"
    return f"{arm} {epochs} {strategy.epoch_unit} {start}"


def _figures(run_dir: RunDir, config: StudyConfig, manifest: dict, folder: Path, checks: dict,
             calibrations: dict) -> dict[str, Path]:
    """Slices of every arm's ensemble through the measured region's centre, for two inputs maps
    of the default arm's ensemble mean and spread, and the intervals' out-of-fold calibration."""
    found = of_config(config)
    figures = {}
    if checks:
        curves = {f"{arm} {kind}": [(float(level) / 100, entry[kind]) for level, entry in by_level.items()]
                  for arm, by_level in checks.items() for kind in ("calibrated", "raw")}
        figures["fit_calibration"] = plots.plot_calibration(
            folder / "fit_calibration.png", {"measured rows, each judged without its fold": curves},
            f"interval coverage of new readings where you measured ({config.fold_kind} {config.folds}-fold)")
    ensembles = {arm: Ensemble.from_files([run_dir.path / p for p in paths], manifest, arm)
                 for arm, paths in manifest["ensembles"].items() if paths}
    bands = {arm: CalibratedIntervals(calibration, [Ensemble.from_files([run_dir.path / p for p in paths], manifest,
                                                                        arm) for paths in fold_member_paths(calibration)])
             for arm, calibration in calibrations.items() if arm in ensembles and len(calibration["scores"]) >= 9}
    domain = np.asarray(manifest["domain"])
    region = np.asarray(manifest["measured_region"])
    centre = region.mean(axis=1)
    simple = _simple_function(config)
    slices = {}
    for i in range(min(config.input_dimension, MAX_PANELS)):
        axis = np.linspace(domain[i, 0], domain[i, 1], SLICE_POINTS)
        x = np.repeat(centre[None], SLICE_POINTS, axis=0)
        x[:, i] = axis
        slices[i] = (axis, {arm: _band(e, bands.get(arm), x) for arm, e in ensembles.items()}, simple(x))
    shown_outputs = manifest["outputs"][:MAX_PANELS]
    slices = {i: (axis, {arm: (*(v[:, :MAX_PANELS] for v in values[:3]), values[3]) for arm, values in by_arm.items()},
                  simple_y[:, :MAX_PANELS]) for i, (axis, by_arm, simple_y) in slices.items()}
    more = "" if (config.input_dimension <= MAX_PANELS and len(manifest["outputs"]) <= MAX_PANELS) else \
        f"; the first {MAX_PANELS} inputs and outputs"
    figures["fit_slices"] = plots.plot_slices(
        folder / "fit_slices.png", slices, manifest["inputs"], shown_outputs, region, centre,
        f"ensemble mean and {'calibrated 90% prediction interval' if bands else '± 2 sd'} along each input "
        f"(others at the measured region's centre{more})")
    default = manifest["default_arm"]
    if config.input_dimension == 2 and default in ensembles:
        grid, axes = grid_points(domain, 61)
        mean, sd = ensembles[default].predict(grid)
        figures["fit_maps"] = plots.plot_mean_and_spread(
            # The grid varies x1 slowest ([x1, x2]); images are indexed [row = x2, column = x1].
            folder / "fit_maps.png", axes, mean.reshape(61, 61, -1).swapaxes(0, 1),
            sd.reshape(61, 61, -1).swapaxes(0, 1), region, found.x,
            manifest["inputs"], manifest["outputs"], f"{default} ensemble over the domain (dashed: measured region)")
    return figures


def _band(ensemble: Ensemble, bands, x: np.ndarray) -> tuple:
    """(mean, lower, upper, what the band is) of an arm along a slice: its calibrated 90% interval,
    or without a calibration mean ± 2 sd."""
    mean, sd = ensemble.predict(x)
    if bands is None:
        return mean, mean - 2 * sd, mean + 2 * sd, "± 2 sd"
    return (mean, *bands.interval(x, 0.9), "90% interval")


def _simple_function(config: StudyConfig):
    from tlkeras.systems.mechanistic import system_function

    return system_function(config.simple_system, config.system_params)

