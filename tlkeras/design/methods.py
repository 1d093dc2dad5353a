"""Where to measure next: the methods that pick n points from a pool of candidates.

Every method has one signature, so that `tlkeras suggest` and Experiment 4 run them alike:

    method(pool: Pool, n: int, rng: np.random.Generator) -> (picks, scores)

`picks` are n distinct indices into the pool's candidates, in pick order; `scores` the method's
score of each pick when it was chosen (higher picked first). A `Pool` holds everything a method
may use, in the unit box of the fit's domain (inputs scaled by the domain's low and high before
any distance, so that an input in nM and one in mM weigh alike): the candidates, the points
already measured, the ensemble's member predictions at the candidates and at target points spread
over the region the model should improve on, and the measurement noise.

What is known, and shaped the choice (Holzmüller et al., "A framework and benchmark for deep
batch active learning for regression", JMLR 24, 2023, code `bmdal_reg`): the n points of largest
ensemble variance were 3-5% worse than random on 15 data sets, because they crowd together;
methods that also spread their picks (LCMD, k-means++ on features, greedy max-distance) were
10-17% better. Ren et al. (ACM Computing Surveys 2023) found deep active learning often no better
than random. So the baselines (`uniform`, `space_filling`) are methods like the others, and
Experiment 4 measures every method against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Pool:
    """What a method sees, every point in the unit box of the fit's domain.

    candidates [c, d]: where the lab can measure; measured [k, d]: what it measured already;
    candidate_members [m, c, o] and target_members [m, t, o]: each ensemble member's prediction
    (outputs divided by `output_scale`, so outputs weigh alike) at the candidates and at target
    points spread over the region the model should improve on; noise [o]: the measurement noise
    sd per output, in the same scaled units.
    """

    candidates: np.ndarray
    measured: np.ndarray
    candidate_members: np.ndarray
    target_members: np.ndarray
    noise: np.ndarray

    @property
    def spread(self) -> np.ndarray:
        """[c]: the members' sd at each candidate, root mean square over outputs (0 for one member)."""
        members = self.candidate_members
        if len(members) < 2:
            return np.zeros(len(self.candidates))
        return np.sqrt(np.mean(members.var(axis=0, ddof=1), axis=-1))


def uniform(pool: Pool, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n candidates drawn at random, without replacement: what a lab does without a model (and, on
    a pool drawn uniformly in the region, uniform random sampling of it)."""
    picks = rng.choice(len(pool.candidates), size=n, replace=False)
    return picks, np.zeros(n)


def space_filling(pool: Pool, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Greedy max-min distance: each pick the candidate farthest from every measured and picked
    point (Gonzalez, "Clustering to minimize the maximum intercluster distance", Theoretical
    Computer Science 38, 1985). Uses no model; the score is that distance."""
    nearest = _nearest_distance(pool.candidates, pool.measured)
    return _greedy(pool, n, rng, lambda distance: distance, nearest)


def disagreement(pool: Pool, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Query by committee: the n candidates where the ensemble's members disagree most (Seung,
    Opper and Sompolinsky, COLT 1992; for regression, RayChaudhuri and Hamey 1995). The score is
    the spread. Known to crowd its picks together (see the module doc)."""
    spread = pool.spread + 1e-12 * rng.random(len(pool.candidates))  # ties broken at random, reproducibly
    picks = np.argsort(-spread, kind="stable")[:n]
    return picks, spread[picks]


def spread_distance(pool: Pool, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Greedy picks whose gain is the ensemble's spread discounted by nearness: spread(x) times
    min(1, d(x) / l), d the distance to the nearest measured or picked point and l the spacing n
    more points would have if spread evenly over the candidates' box. Spread wins where the
    points are far apart; near a point already measured or picked it counts for little (the
    spirit of LCMD and greedy max-distance in Holzmüller et al. 2023, with the committee's spread
    as the weight)."""
    spread = pool.spread
    lo, hi = pool.candidates.min(axis=0), pool.candidates.max(axis=0)
    extent = np.where(hi > lo, hi - lo, 1.0)
    spacing = float(np.prod(extent) / (n + len(pool.measured))) ** (1.0 / pool.candidates.shape[1])
    nearest = _nearest_distance(pool.candidates, pool.measured)
    return _greedy(pool, n, rng, lambda distance: spread * np.minimum(1.0, distance / spacing), nearest)


def variance_reduction(pool: Pool, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Integrated variance reduction over the target, estimated from the ensemble: the members'
    covariance between a candidate x and every target point t says how much measuring y(x), with
    the noise sd s, would shrink the variance at t, cov(x, t)^2 / (var(x) + s^2) in a linear-
    Gaussian update (the ensemble Kalman filter's, Evensen 1994); summed over the targets and
    outputs. After each pick the covariance is updated as if it had been measured, so the next
    pick is what adds most given the others (a batch, as BoTorch's qNegIntegratedPosteriorVariance
    and Emukit's IntegratedVarianceReduction do for Gaussian processes). With m members the
    covariance has rank m - 1: few members, rough estimates."""
    members = np.concatenate([pool.candidate_members, pool.target_members], axis=1)  # [m, c + t, o]
    count = len(pool.candidates)
    if len(members) < 2:
        return space_filling(pool, n, rng)  # no spread to use: spread the picks instead
    deviations = members - members.mean(axis=0)  # [m, p, o]
    scale = 1.0 / np.sqrt(len(members) - 1)
    factors = [deviations[:, :, o].T * scale for o in range(members.shape[2])]  # per output [p, m]: cov = F F^T
    noise = np.maximum(np.asarray(pool.noise, np.float64), 1e-6) ** 2
    picks, scores = [], []
    available = np.ones(count, bool)
    tie_break = 1e-12 * rng.random(count)
    for _ in range(n):
        gain = np.zeros(count)
        for factor, variance_noise in zip(factors, noise):
            cross = factor[:count] @ factor[count:].T  # [c, t]: cov(candidate, target)
            own = np.einsum("pm,pm->p", factor[:count], factor[:count])  # var at each candidate
            gain += (cross**2).sum(axis=1) / (own + variance_noise)
        gain = np.where(available, gain + tie_break, -np.inf)
        chosen = int(np.argmax(gain))
        picks.append(chosen)
        scores.append(float(gain[chosen]))
        available[chosen] = False
        for o, (factor, variance_noise) in enumerate(zip(factors, noise)):
            # As if y(chosen) had been measured: F <- F - k (f_chosen^T) with the Kalman gain, in
            # square-root form so that F F^T stays the updated covariance (Whitaker and Hamill 2002).
            row = factor[chosen]
            variance = float(row @ row)
            if variance <= 0:
                continue
            gain_vector = factor @ row / (variance + variance_noise)  # [p]
            shrink = 1.0 / (1.0 + np.sqrt(variance_noise / (variance + variance_noise)))
            factors[o] = factor - shrink * np.outer(gain_vector, row)
    return np.asarray(picks), np.asarray(scores)


def _nearest_distance(points: np.ndarray, others: np.ndarray) -> np.ndarray:
    """[len(points)]: the distance from each point to the nearest of `others` (inf if none)."""
    if len(others) == 0:
        return np.full(len(points), np.inf)
    nearest = np.full(len(points), np.inf)
    for start in range(0, len(others), 256):  # bounded memory for large plates
        chunk = others[start:start + 256]
        distance = np.sqrt(((points[:, None, :] - chunk[None, :, :]) ** 2).sum(axis=-1))
        nearest = np.minimum(nearest, distance.min(axis=1))
    return nearest


def _greedy(pool: Pool, n: int, rng: np.random.Generator, gain: Callable[[np.ndarray], np.ndarray],
            nearest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pick n times the candidate of largest gain(distance to the nearest measured or picked point)."""
    nearest = nearest.copy()
    tie_break = 1e-12 * rng.random(len(pool.candidates))
    picks, scores = [], []
    for _ in range(n):
        finite = np.where(np.isfinite(nearest), nearest, 1e9)  # nothing measured yet: all equally far
        value = gain(finite) + tie_break
        value[picks] = -np.inf
        chosen = int(np.argmax(value))
        picks.append(chosen)
        scores.append(float(value[chosen]))
        nearest = np.minimum(nearest, np.sqrt(((pool.candidates - pool.candidates[chosen]) ** 2).sum(axis=1)))
    return np.asarray(picks), np.asarray(scores)


METHODS: dict[str, Callable[[Pool, int, np.random.Generator], tuple[np.ndarray, np.ndarray]]] = {
    "uniform": uniform,
    "space_filling": space_filling,
    "disagreement": disagreement,
    "spread_distance": spread_distance,
    "variance_reduction": variance_reduction,
}
# Until Experiment 4 has measured which saves most (docs/suggest.md), the model-free method that
# spreads the points: what the benchmark above found hard to beat.
DEFAULT_METHOD = "space_filling"
