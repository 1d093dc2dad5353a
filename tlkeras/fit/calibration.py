"""Calibrated prediction intervals of a fitted model: normalised CV+ from the fit's own folds.

`tlkeras fit` with k folds trains, per arm and seed, a member on every k-1 folds (its
cross-validation). Those members are the calibration: a fold's *model* is the ensemble of its
members (one per seed), which never saw the fold's rows. For every measured row i of fold k(i):

- its out-of-fold prediction mu_k(i)(x_i) (the fold ensemble's mean) and spread
  sigma_k(i)(x_i) = sqrt(sd_k(i)(x_i)^2 + tau_k(i)^2): the sd across the fold's members, with a
  noise floor tau_k (the RMSE of the fold's members on the rows they trained on, so that no
  held-out label enters its own normalisation);
- its normalised score R_i = |y_i - mu_k(i)(x_i)| / sigma_k(i)(x_i) (per output).

At a new point x the interval at level 1 - a is CV+ (Barber, Candes, Ramdas and Tibshirani,
Ann. Statist. 2021) on those scores (`results.intervals.cv_plus_interval`): the order statistics
of mu_k(i)(x) -/+ R_i sigma_k(i)(x) over the rows. For a new reading exchangeable with the
measured rows it covers at least 1 - 2a (a guarantee), and in practice about 1 - a. It is an
interval for a new *reading* at x (noise included); the noise-free response lies inside it at
least as often when the noise is symmetric. Outside the measured region rows are not
exchangeable with new points: there the interval widens with the ensembles' spread and nothing
is guaranteed; `tlkeras evaluate` measures it, and docs/intervals.md reports how it fares.

Folds are random (default) or blocked (`--fold_kind=blocked`: shells towards the unmeasured
domain, `measurements.blocked_fold_of_rows`), which makes the held-out errors look like
extrapolation.

The calibration is `calibration.json` in the model folder (per arm: the fold of every row, its
scores, the noise floors, the fold members' files), summarised in `manifest.json`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tlkeras.results import intervals
from tlkeras.systems.measurements import fold_index, fold_name

CALIBRATION = "calibration.json"
METHOD = "cv_plus_normalised"
METHOD_TEXT = ("normalised CV+ (Barber et al. 2021) on the k-fold members' out-of-fold scores "
               "|y - mean| / sqrt(sd^2 + tau^2)")
GUARANTEE = ("for a new reading like the measured rows (inside the measured region): coverage >= 1 - 2a, about "
             "1 - a in practice; outside the measured region: none (measured by tlkeras evaluate)")
MAX_CELLS = 20_000_000  # rows x points x outputs in one CV+ chunk (160 MB of float64)
TINY = 1e-12


def calibration_of(records: list[dict], arm: str, y: np.ndarray, row_fold: np.ndarray) -> dict | None:
    """The calibration of `arm` from its fold members' records (None without folds): per row its
    fold, out-of-fold mean and sigma and normalised score; per fold its noise floor and members."""
    y = np.asarray(y, np.float64)
    seeds, predictions = out_of_fold_predictions(records, arm, *y.shape)
    if not seeds:
        return None
    folds = int(row_fold.max()) + 1
    train_rmse = np.full((folds, len(seeds), y.shape[1]), np.nan)
    paths: list[list[str]] = [[""] * len(seeds) for _ in range(folds)]
    for r in records:
        if r["arm"] == arm and fold_index(r["system"]) is not None:
            k, s = fold_index(r["system"]), seeds.index(r["seed"])
            train_rmse[k, s] = r.get("train_rmse_by_output", r["rmse_by_output"])
            paths[k][s] = r["model"]
    if np.isnan(predictions).any() or any("" in p for p in paths):
        return None  # a fold member is missing: no calibration rather than a wrong one
    tau = np.maximum(np.sqrt(np.mean(train_rmse**2, axis=1)), TINY)  # [folds, outputs]
    mean = predictions.mean(axis=0)
    spread = predictions.std(axis=0, ddof=1) if len(seeds) > 1 else np.zeros_like(mean)
    sigma = np.sqrt(spread**2 + tau[row_fold] ** 2)
    return dict(method=METHOD, seeds=seeds, row_fold=row_fold.tolist(), oof_mean=mean.tolist(),
                oof_sigma=sigma.tolist(), scores=intervals.normalised_scores(y, mean, sigma).tolist(),
                tau=tau.tolist(), members={fold_name(k): paths[k] for k in range(folds)})


def out_of_fold_coverage(calibration: dict, y: np.ndarray, raw_sigma: np.ndarray, levels=intervals.LEVELS,
                         rows: np.ndarray | None = None) -> dict:
    """How the calibration fares on the measured rows, each judged without its own fold: for the
    rows of fold k, the interval from the other folds' scores (split conformal), beside the raw
    Gaussian interval of the same out-of-fold prediction with `raw_sigma` ([rows, outputs]).
    Per level: observed coverage and mean width of each, pooled over outputs; `rows`: a subset."""
    mean, sigma = np.asarray(calibration["oof_mean"]), np.asarray(calibration["oof_sigma"])
    scores, fold = np.asarray(calibration["scores"]), np.asarray(calibration["row_fold"])
    y = np.asarray(y, np.float64)
    chosen = np.ones(len(y), bool) if rows is None else np.zeros(len(y), bool)
    if rows is not None:
        chosen[rows] = True
    result = {}
    for level in levels:
        lower, upper = np.full(y.shape, np.nan), np.full(y.shape, np.nan)
        for k in np.unique(fold):
            others = scores[fold != k]
            if len(others) < intervals.min_rows(level):
                continue
            q = intervals.split_quantile(others, level)
            lower[fold == k] = mean[fold == k] - q * sigma[fold == k]
            upper[fold == k] = mean[fold == k] + q * sigma[fold == k]
        raw_lower, raw_upper = intervals.gaussian_interval(mean, raw_sigma, level)
        known = chosen & ~np.isnan(lower).any(axis=1)
        result[f"{100 * level:g}"] = dict(
            calibrated=intervals.coverage(y[known], lower[known], upper[known]) if known.any() else None,
            calibrated_width=float(np.mean(upper[known] - lower[known])) if known.any() else None,
            raw=intervals.coverage(y[chosen], raw_lower[chosen], raw_upper[chosen]),
            raw_width=float(np.mean(raw_upper[chosen] - raw_lower[chosen])))
    return result


def summary(calibration: dict, outputs: list[str], fold_kind: str) -> dict:
    """What the manifest says of an arm's calibration: method, rows, the 90% score quantile."""
    scores = np.asarray(calibration["scores"])
    rows = len(scores)
    return dict(method=calibration["method"], fold_kind=fold_kind, rows=rows,
                folds=len(calibration["members"]), seeds=calibration["seeds"],
                highest_level=round(1 - 1 / (rows + 1), 6),
                score_q90={o: float(q) for o, q in zip(outputs, intervals.split_quantile(scores, 0.9))}
                if rows >= intervals.min_rows(0.9) else None)


def level_problem(level: float, rows: int | None, calibrated: str = "") -> str:
    """"" if `rows` calibration rows allow an interval at `level` (None: only the level is checked),
    else the one-line error: a level outside (0, 1), or the rows it needs (n >= 1/(1 - level) - 1)
    and the highest level `rows` allow; `calibrated` names what was calibrated."""
    try:
        needed = intervals.min_rows(level)
    except intervals.CalibrationError:
        return f"--level={level:g} is not allowed: expected a number between 0 and 1 (e.g. 0.9)"
    if rows is None or rows >= needed:
        return ""
    return (f"--level={level:g} needs at least {needed} calibration rows (n >= 1/(1 - level) - 1); {calibrated} was "
            f"calibrated on {rows}: give --level of at most {rows / (rows + 1):.4g}, or fit on more rows")


def out_of_fold_predictions(records: list[dict], arm: str, rows: int, outputs: int) -> tuple[list[int], np.ndarray]:
    """(seeds, predictions [seeds, rows, outputs]) of `arm`'s fold members: every row as predicted
    by each seed's member that never saw it (NaN where a member is missing)."""
    members = [r for r in records if r["arm"] == arm and fold_index(r["system"]) is not None]
    seeds = sorted({r["seed"] for r in members})
    predictions = np.full((len(seeds), rows, outputs), np.nan)
    for r in members:
        predictions[seeds.index(r["seed"]), r["rows"]] = r["row_predictions"]
    return seeds, predictions


class CalibratedIntervals:
    """The CV+ intervals of one arm: its calibration and its fold ensembles (`fit.ensemble.Ensemble`)."""

    def __init__(self, calibration: dict, fold_ensembles: list):
        self.calibration = calibration
        self.fold_ensembles = fold_ensembles
        self.scores = np.asarray(calibration["scores"], np.float64)
        self.row_fold = np.asarray(calibration["row_fold"], np.int64)
        self.tau = np.asarray(calibration["tau"], np.float64)

    @property
    def rows(self) -> int:
        return len(self.scores)

    def check_level(self, level: float) -> None:
        """CalibrationError (one line: the level and how many rows it needs) before any work."""
        problem = level_problem(level, self.rows, "this model")
        if problem:
            raise intervals.CalibrationError(problem)

    def interval(self, x: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper), each [points, outputs], at `level`."""
        return self.intervals(x, (level,))[level]

    def intervals(self, x: np.ndarray, levels) -> dict[float, tuple[np.ndarray, np.ndarray]]:
        """level -> (lower, upper), each [points, outputs]; the fold ensembles predict once."""
        for level in levels:
            self.check_level(level)
        x = np.asarray(x, np.float64)
        outputs = self.scores.shape[1]
        found = {level: (np.empty((len(x), outputs)), np.empty((len(x), outputs))) for level in levels}
        chunk = max(1, MAX_CELLS // max(1, self.rows * outputs))
        for start in range(0, len(x), chunk):
            part = x[start:start + chunk]
            means, sigmas = [], []
            for k, ensemble in enumerate(self.fold_ensembles):
                mean, sd = ensemble.predict(part)
                means.append(mean)
                sigmas.append(np.sqrt(sd**2 + self.tau[k] ** 2))
            means, sigmas = np.stack(means), np.stack(sigmas)
            for level, (lower, upper) in found.items():
                lower[start:start + chunk], upper[start:start + chunk] = intervals.cv_plus_interval(
                    means, sigmas, self.row_fold, self.scores, level)
        return found


def fold_member_paths(calibration: dict) -> list[list[str]]:
    """The files of every fold's members, fold 1 first (paths relative to the model folder)."""
    members = calibration["members"]
    return [members[fold_name(k)] for k in range(len(members))]


def load_intervals(folder: Path, manifest: dict, arm: str):
    """The `CalibratedIntervals` of `arm` in a model folder, or None if it has no calibration
    (fitted before calibrations, or with --folds=0). ModelFileError if the file is unreadable."""
    import json

    from tlkeras.core.errors import ModelFileError
    from tlkeras.fit.ensemble import Ensemble

    info = manifest.get("calibration") or {}
    if arm not in (info.get("arms") or {}):
        return None
    path = Path(folder) / info.get("file", CALIBRATION)
    try:
        calibration = json.loads(path.read_text())[arm]
        fold_paths = fold_member_paths(calibration)
        np.asarray(calibration["scores"], np.float64).reshape(len(calibration["row_fold"]), len(manifest["outputs"]))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelFileError(f"{path} is not a valid calibration ({type(error).__name__}: {error})") from None
    ensembles = [Ensemble.from_files([Path(folder) / p for p in paths], manifest, arm) for paths in fold_paths]
    return CalibratedIntervals(calibration, ensembles)
