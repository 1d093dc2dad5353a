"""Calibrated prediction intervals: conformal arithmetic on normalised scores, and how to score
intervals. numpy and scipy only (issue 24's first piece; `tlkeras fit`/`predict`/`evaluate` are to
use it).

A *normalised score* of a calibration row is |y - mean| / sigma: how many of the model's own
sigmas (ensemble sd with the noise) its out-of-fold prediction missed by (the normalised
conformal score of Papadopoulos et al. 2008, `crepes`' ConformalRegressor with sigmas).

- `split_interval`: mean -/+ q sigma, q the ceil((n + 1)(1 - a))-th smallest of n scores: covers a
  new point exchangeable with the calibration rows with probability >= 1 - a (Vovk et al. 2005)
  when the model never saw those rows. Applied to models that did (the final ensemble on pooled
  out-of-fold scores), it is an approximation to be measured, not a guarantee.
- `cv_plus_interval`: CV+ (Barber, Candès, Ramdas and Tibshirani, "Predictive inference with the
  jackknife+", Ann. Statist. 49, 2021), normalised: each calibration row i contributes
  mu_k(i)(x) -/+ R_i sigma_k(i)(x) with its own fold's model k(i); the interval runs from the
  floor(a (n + 1))-th smallest lower end to the ceil((1 - a)(n + 1))-th smallest upper end.
  Coverage >= 1 - 2a for exchangeable rows (so `level` 1 - a asks for CV+ at a / 2 when the
  guarantee is wanted: `min_rows(level, guaranteed=True)`).

The order statistics are computed in integers (`fractions.Fraction`): no off-by-one at levels where
a (n + 1) is whole (crepes 0.9.1 computes them in floats and is one order statistic too wide there).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from scipy.special import ndtr, ndtri

LEVELS = (0.5, 0.8, 0.9, 0.95)  # the nominal levels evaluate reports coverage at


class CalibrationError(ValueError):
    """Too few rows for a level, or a level outside (0, 1): the message names both."""


def _alpha(level: float) -> Fraction:
    if not (isinstance(level, (int, float)) and 0.0 < level < 1.0):
        raise CalibrationError(f"level={level!r} is not allowed: expected a number between 0 and 1 (e.g. 0.9)")
    return 1 - Fraction(level).limit_denominator(10**6)


def min_rows(level: float, guaranteed: bool = False) -> int:
    """The fewest calibration rows that give a finite interval at `level` = 1 - a: n >= 1/a - 1
    (90%: 9). `guaranteed`: for CV+ run at a / 2 so that its 1 - 2(a/2) bound is `level`:
    n >= 2/a - 1 (90%: 19)."""
    a = _alpha(level) / (2 if guaranteed else 1)
    return math.ceil(1 / a - 1)


def _upper_rank(n: int, level: float, guaranteed: bool) -> int:
    """ceil((1 - a)(n + 1)): the rank (1-based) of the order statistic an upper end takes."""
    a = _alpha(level) / (2 if guaranteed else 1)
    rank = math.ceil((1 - a) * (n + 1))
    if rank > n:
        needed = min_rows(level, guaranteed)
        raise CalibrationError(f"{n} calibration rows are too few for a {100 * level:g}% interval: at least "
                               f"{needed} are needed{' (CV+ with its guarantee)' if guaranteed else ''}")
    return rank


def normalised_scores(y: np.ndarray, mean: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """|y - mean| / sigma, elementwise ([rows, outputs]); sigma must be > 0."""
    sigma = np.asarray(sigma, np.float64)
    if np.any(~(sigma > 0)):
        raise CalibrationError("every sigma must be > 0 to normalise a score (add the noise estimate to the spread)")
    return np.abs(np.asarray(y, np.float64) - np.asarray(mean, np.float64)) / sigma


def split_quantile(scores: np.ndarray, level: float) -> np.ndarray:
    """Per output, the ceil((n + 1) level)-th smallest of the n scores [n, outputs] -> [outputs]."""
    scores = np.asarray(scores, np.float64)
    rank = _upper_rank(len(scores), level, guaranteed=False)
    return np.sort(scores, axis=0)[rank - 1]


def split_interval(mean: np.ndarray, sigma: np.ndarray, scores: np.ndarray, level: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """mean -/+ q sigma with q = `split_quantile(scores, level)` per output ([points, outputs])."""
    q = split_quantile(scores, level)
    half = np.asarray(sigma, np.float64) * q
    return np.asarray(mean, np.float64) - half, np.asarray(mean, np.float64) + half


def cv_plus_interval(fold_mean: np.ndarray, fold_sigma: np.ndarray, row_fold: np.ndarray, scores: np.ndarray,
                     level: float, guaranteed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Normalised CV+ at new points. `fold_mean`, `fold_sigma` [folds, points, outputs]: each
    fold's model (the members that never saw that fold) at the new points; `row_fold` [n]: the
    fold of each calibration row; `scores` [n, outputs]: its normalised out-of-fold score.
    `guaranteed`: run at a / 2, so that coverage >= `level` holds (Barber et al. 2021)."""
    fold_mean = np.asarray(fold_mean, np.float64)
    fold_sigma = np.asarray(fold_sigma, np.float64)
    scores = np.asarray(scores, np.float64)
    row_fold = np.asarray(row_fold)
    n = len(scores)
    upper_rank = _upper_rank(n, level, guaranteed)
    lower_rank = n + 1 - upper_rank  # floor(a (n + 1)) for the lower end, by symmetry
    mu = fold_mean[row_fold]  # [n, points, outputs]
    half = fold_sigma[row_fold] * scores[:, None, :]
    lower = np.partition(mu - half, lower_rank - 1, axis=0)[lower_rank - 1]
    upper = np.partition(mu + half, upper_rank - 1, axis=0)[upper_rank - 1]
    return lower, upper


def gaussian_interval(mean: np.ndarray, sigma: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The raw (uncalibrated) central interval mean -/+ z sigma of N(mean, sigma^2) at `level`."""
    z = float(ndtri(0.5 + float(1 - _alpha(level)) / 2))
    half = z * np.asarray(sigma, np.float64)
    return np.asarray(mean, np.float64) - half, np.asarray(mean, np.float64) + half


def coverage(y: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """The share of values inside [lower, upper]."""
    y = np.asarray(y, np.float64)
    return float(np.mean((lower <= y) & (y <= upper)))


def interval_score(y: np.ndarray, lower: np.ndarray, upper: np.ndarray, level: float) -> np.ndarray:
    """The interval score of a central (1 - a) interval (Gneiting and Raftery 2007, eq. 43; lower is
    better): its width plus 2/a times how far y falls outside it."""
    a = float(_alpha(level))
    y, lower, upper = (np.asarray(v, np.float64) for v in (y, lower, upper))
    return (upper - lower) + (2 / a) * np.maximum(lower - y, 0.0) + (2 / a) * np.maximum(y - upper, 0.0)


def crps_gaussian(y: np.ndarray, mean: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """The CRPS of N(mean, sigma^2) at y (Gneiting and Raftery 2007): sigma [z (2 Phi(z) - 1) +
    2 phi(z) - 1/sqrt(pi)], z = (y - mean) / sigma."""
    sigma = np.asarray(sigma, np.float64)
    z = (np.asarray(y, np.float64) - np.asarray(mean, np.float64)) / sigma
    density = np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    return sigma * (z * (2 * ndtr(z) - 1) + 2 * density - 1 / math.sqrt(math.pi))
