"""Scoring: per-point L1 errors on the fixed evaluation points, and summaries across seeds.

Per model (the study's "L1 loss mean and variance"): the per-point error is
|prediction - f(x)| against the noise-free real system, averaged over the outputs; we report its
mean and (population) variance over the evaluation points, and its mean separately inside the
small domain (where the real training data lives) and outside it (where the model extrapolates).

Across seeds: mean, sample standard deviation, and a 95% Student-t interval of the mean.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable

import numpy as np

from tlkeras.core.config import StudyConfig
from tlkeras.nn.data import evaluation_points
from tlkeras.systems import design_sets
from tlkeras.systems.measurements import MEASURED
from tlkeras.systems.mechanistic import system_function, system_name

# Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom (standard tables).
_T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)


def t_quantile_975(dof: int) -> float:
    """t_{0.975, dof}; beyond the table, the normal quantile with the first Cornish-Fisher term."""
    if dof < 1:
        return math.nan
    if dof <= len(_T_975):
        return _T_975[dof - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * dof)


def point_errors(predictions: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """|prediction - truth| averaged over outputs: [..., points, outputs] -> [..., points]."""
    return np.mean(np.abs(np.asarray(predictions, np.float64) - np.asarray(truth, np.float64)), axis=-1)


@dataclass(frozen=True)
class ModelScore:
    """One model's L1 on the evaluation points."""

    l1_mean: float
    l1_var: float
    l1_inside: float  # mean over points inside the small domain (nan if none)
    l1_outside: float  # mean over points outside it (nan if none)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def score(errors: np.ndarray, inside: np.ndarray) -> ModelScore:
    """Summarise one model's per-point errors; `inside` marks points in the small domain."""
    errors = np.asarray(errors, np.float64)
    inside = np.asarray(inside, bool)
    return ModelScore(
        l1_mean=float(errors.mean()),
        l1_var=float(errors.var()),
        l1_inside=float(errors[inside].mean()) if inside.any() else math.nan,
        l1_outside=float(errors[~inside].mean()) if (~inside).any() else math.nan,
    )


@dataclass(frozen=True)
class SeedSummary:
    """A metric across seeds: mean, sample standard deviation and 95% interval of the mean."""

    mean: float
    std: float
    ci_low: float
    ci_high: float
    count: int


def summarize(values: Iterable[float]) -> SeedSummary:
    """Mean, std (ddof=1; 0 for one seed) and the Student-t 95% interval across seeds."""
    data = np.asarray([v for v in values if not math.isnan(v)], np.float64)
    if data.size == 0:
        return SeedSummary(math.nan, math.nan, math.nan, math.nan, 0)
    mean = float(data.mean())
    if data.size == 1:
        return SeedSummary(mean, 0.0, math.nan, math.nan, 1)
    std = float(data.std(ddof=1))
    half = t_quantile_975(data.size - 1) * std / math.sqrt(data.size)
    return SeedSummary(mean, std, mean - half, mean + half, int(data.size))


class EvaluationSet:
    """The fixed evaluation points, the noise-free truth of each system there, inside mask."""

    def __init__(self, config: StudyConfig):
        params = config.system_params
        self.x = evaluation_points(config.big_box, config.eval_points, config.input_dimension, config.eval_seed)
        self.inside = config.small_box.contains(self.x)
        references = [config.simple_system, *(s for s in config.systems if s != MEASURED)]
        self.truth = {
            system_name(r): np.asarray(system_function(r, params)(self.x.astype(np.float64))) for r in references
        }

    def truth_of(self, system: str) -> np.ndarray | None:
        """The truth a member of `system` is scored against (a design set: its system's; measured
        rows: None)."""
        return self.truth.get(design_sets.base_system(system))
