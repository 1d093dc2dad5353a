"""The headline numbers of a volume sweep, with their uncertainty over seeds (scipy.stats).

- **Real-data saving at equal L1**: for a strategy's L1 at volume N_s, the volume N_b at which
  the baseline reaches the same L1 (log-linear interpolation of L1 against log N between grid
  volumes), and the saving 1 - N_s / N_b. Where the baseline never gets that low inside the
  grid, N_b > the largest volume and the saving is a *lower bound*; where it is already that low
  at the smallest volume, the saving is an *upper bound*. Both are marked, never extrapolated.
- **Smallest N within 25% of the oracle**: the first volume (interpolated) at which the mean L1
  is at most 1.25 x the oracle's.
- Both with a bootstrap 95% interval over seeds (`scipy.stats.bootstrap`, percentile method):
  seeds are resampled as units, so every arm and volume of a seed stays together (the paired
  design of the runs).
- **Paired tests** per volume: `scipy.stats.wilcoxon` on the per-seed differences of two arms
  (the same seed: the same real data and initialisation). With 5 seeds the smallest two-sided
  p-value the exact test can give is 0.0625: say so rather than over-read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

WITHIN_ORACLE = 1.25
RESAMPLES = 2000


@dataclass(frozen=True)
class Estimate:
    """A number, its bootstrap 95% interval, and whether it is a bound ('>=' or '<=') or exact."""

    value: float
    low: float
    high: float
    bound: str = ""  # "", ">=" (lower bound) or "<=" (upper bound)

    def as_dict(self) -> dict:
        return dict(value=self.value, ci95=[self.low, self.high], bound=self.bound)

    def text(self, percent: bool = False) -> str:
        if math.isnan(self.value):
            return "n/a"
        show = (lambda v: f"{100 * v:.0f}%") if percent else (lambda v: f"{v:.4g}")
        degenerate = math.isnan(self.low) or (self.low == self.high == self.value)
        interval = "" if degenerate else f" [{show(self.low)}, {show(self.high)}]"
        return f"{self.bound}{show(self.value)}{interval}"


def volume_reaching(volumes: Sequence[float], l1: Sequence[float], level: float) -> tuple[float, str]:
    """The smallest volume at which the curve L1(N) (log-linear between grid points) is <= level:
    (N, "") inside the grid, (largest N, ">=") if never, (smallest N, "<=") if already there."""
    volumes = np.asarray(volumes, np.float64)
    l1 = np.asarray(l1, np.float64)
    if l1[0] <= level:
        return float(volumes[0]), "<="
    for i in range(len(volumes) - 1):
        if l1[i + 1] <= level:
            fraction = (l1[i] - level) / (l1[i] - l1[i + 1])
            return float(np.exp(np.log(volumes[i]) + fraction * (np.log(volumes[i + 1]) - np.log(volumes[i])))), ""
    return float(volumes[-1]), ">="


def saving(volumes: Sequence[float], strategy_l1: Sequence[float], baseline_l1: Sequence[float],
           at_volume: float, baseline_volumes: Sequence[float] | None = None) -> tuple[float, str]:
    """1 - N_s / N_b at the strategy's L1 at `at_volume` (a grid volume); with its bound mark.
    `baseline_volumes`: the baseline's grid, if other than the strategy's (a longer one)."""
    index = list(volumes).index(at_volume)
    needed, mark = volume_reaching(volumes if baseline_volumes is None else baseline_volumes, baseline_l1,
                                   strategy_l1[index])
    # N_b at least the largest volume -> the saving is at least that; at most the smallest -> at most.
    return 1.0 - at_volume / needed, mark


def _bootstrap(values_of_seeds, statistic, seeds: int) -> tuple[float, float]:
    if seeds < 2:
        return math.nan, math.nan
    result = stats.bootstrap((np.arange(seeds),), lambda idx: statistic(values_of_seeds(idx)), vectorized=False,
                             n_resamples=RESAMPLES, method="percentile", confidence_level=0.95,
                             random_state=np.random.default_rng(0))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def saving_estimates(volumes: Sequence[int], strategy: np.ndarray, baseline: np.ndarray,
                     baseline_volumes: Sequence[int] | None = None) -> dict[int, Estimate]:
    """Per strategy volume: the saving at equal L1 with its interval. `strategy`, `baseline`:
    per-seed L1 [seeds, volumes], rows paired by seed; `baseline_volumes`: the baseline's grid if
    it is longer (Experiment 4's reference methods go on to larger N)."""
    estimates = {}
    for volume in volumes:
        def statistic(pair, volume=volume):
            return saving(volumes, pair[0].mean(axis=0), pair[1].mean(axis=0), volume, baseline_volumes)[0]

        value, mark = saving(volumes, strategy.mean(axis=0), baseline.mean(axis=0), volume, baseline_volumes)
        low, high = _bootstrap(lambda idx: (strategy[idx], baseline[idx]), statistic, len(strategy))
        estimates[int(volume)] = Estimate(value, low, high, mark)
    return estimates


def oracle_reach(volumes: Sequence[int], strategy: np.ndarray, oracle: np.ndarray) -> Estimate:
    """The smallest N at which the strategy's mean L1 is within 25% of the oracle's mean L1."""
    def statistic(pair):
        return volume_reaching(volumes, pair[0].mean(axis=0), WITHIN_ORACLE * pair[1].mean())[0]

    value, mark = volume_reaching(volumes, strategy.mean(axis=0), WITHIN_ORACLE * oracle.mean())
    low, high = _bootstrap(lambda idx: (strategy[idx], oracle[idx]), statistic, len(strategy))
    return Estimate(value, low, high, mark)


def paired_test(first: Sequence[float], second: Sequence[float]) -> dict:
    """Wilcoxon signed-rank test on the per-seed differences (two-sided, exact for few seeds)."""
    first, second = np.asarray(first, np.float64), np.asarray(second, np.float64)
    differences = first - second
    if len(differences) < 2 or np.all(differences == 0):
        return dict(seeds=int(len(differences)), median_difference=float(np.median(differences)) if len(
            differences) else math.nan, p_value=math.nan)
    result = stats.wilcoxon(first, second, alternative="two-sided")
    return dict(seeds=int(len(differences)), median_difference=float(np.median(differences)),
                p_value=float(result.pvalue), first_better=int(np.sum(differences < 0)))
