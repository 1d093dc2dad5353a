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
    targets [t, d]: points spread over the region the model should improve on;
    candidate_members [m, c, o] and target_members [m, t, o]: each ensemble member's prediction
    (outputs divided by their spread over the target, so outputs weigh alike) at the candidates
    and at the targets; noise
    [o]: the measurement noise sd per output, in the same scaled units.
    """

    candidates: np.ndarray
    measured: np.ndarray
    targets: np.ndarray
    candidate_members: np.ndarray
    target_members: np.ndarray
    noise: np.ndarray

    @property
    def spread(self) -> np.ndarray:
        """[c]: `member_spread` at each candidate."""
        return member_spread(self.candidate_members)


def member_spread(members: np.ndarray) -> np.ndarray:
    """[points]: the members' sd [m, points, outputs] at each point, root mean square over the
    outputs (0 for one member)."""
    if len(members) < 2:
        return np.zeros(members.shape[1])
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
    spacing = _spacing(pool.candidates, n + len(pool.measured))
    nearest = _nearest_distance(pool.candidates, pool.measured)
    return _greedy(pool, n, rng, lambda distance: spread * np.minimum(1.0, distance / spacing), nearest)


def variance_reduction(pool: Pool, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Integrated variance reduction over the target, estimated from the ensemble.

    The prior covariance of the unknown function between two points is the members' covariance
    there (what the pretrained members disagree on, including far from the data: the transfer's
    long-range structure) plus a local term, LOCAL_SHARE of the members' mean variance times a
    squared-exponential kernel of the unit-box distance with the spacing of `spread_distance` as
    length, conditioned on the measured points (what no member captures, which measurements nearby
    remove). With m members the first term has rank m - 1; the local term keeps later picks from
    piling up once those few directions are spent (the role localization plays in the ensemble
    Kalman filter, Houtekamer and Mitchell 2001). Measuring y(x) with noise sd s shrinks the
    variance at a target t by cov(x, t)^2 / (var(x) + s^2) (a linear-Gaussian update); the gain of
    x is that, summed over the targets and outputs. After each pick the covariance is conditioned
    on it, so the next pick is what adds most given the others: a batch, as BoTorch's
    qNegIntegratedPosteriorVariance and Emukit's IntegratedVarianceReduction are for Gaussian
    processes."""
    count, d = pool.candidates.shape
    points = np.concatenate([pool.candidates, pool.targets])  # [c + t, d]
    members = np.concatenate([pool.candidate_members, pool.target_members], axis=1)  # [m, c + t, o]
    spacing = _spacing(pool.candidates, n + len(pool.measured))
    measured = pool.measured
    if len(measured) > MAX_CONDITIONING:  # the local term's conditioning: a spread subset suffices
        measured = measured[rng.choice(len(measured), MAX_CONDITIONING, replace=False)]
    local_at_points = _kernel(points, measured, spacing)  # [p, k]
    local_measured = _kernel(measured, measured, spacing)
    noise = np.maximum(np.asarray(pool.noise, np.float64), 1e-6) ** 2
    outputs = []
    for o in range(members.shape[2]):
        factor = (members[:, :, o] - members[:, :, o].mean(axis=0)).T / np.sqrt(max(len(members) - 1, 1))  # [p, m]
        ensemble_variance = float(np.mean(np.einsum("pm,pm->p", factor, factor)))
        share = LOCAL_SHARE * ensemble_variance if ensemble_variance > 0 else 1.0
        # The local term conditioned on the measured points: share * (k(a, b) - k(a, M) B^-1 k(M, b)).
        solve = np.linalg.solve(local_measured + (noise[o] / share) * np.eye(len(measured)), local_at_points.T) \
            if len(measured) else np.zeros((0, len(points)))
        outputs.append((factor, share, solve))

    def prior(o: int, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        factor, share, solve = outputs[o]
        local = _kernel(points[rows], points[columns], spacing) - local_at_points[rows] @ solve[:, columns]
        return factor[rows] @ factor[columns].T + share * local

    candidates, target_rows = np.arange(count), np.arange(count, len(points))
    cross = [prior(o, candidates, target_rows) for o in range(len(outputs))]  # [c, t] per output
    variance = [np.einsum("pm,pm->p", outputs[o][0][:count], outputs[o][0][:count]) + outputs[o][1] * (
        1.0 - np.einsum("pk,kp->p", local_at_points[:count], outputs[o][2][:, :count])) for o in range(len(outputs))]
    taken: list[list[np.ndarray]] = [[] for _ in outputs]  # per output, the conditioning vectors u_k
    picks, scores = [], []
    available = np.ones(count, bool)
    tie_break = 1e-12 * rng.random(count)
    for _ in range(n):
        gain = sum((cross[o] ** 2).sum(axis=1) / (np.maximum(variance[o], 0.0) + noise[o]) for o in range(len(outputs)))
        gain = np.where(available, gain + tie_break, -np.inf)
        chosen = int(np.argmax(gain))
        picks.append(chosen)
        scores.append(float(gain[chosen]))
        available[chosen] = False
        for o in range(len(outputs)):
            column = prior(o, np.arange(len(points)), np.array([chosen]))[:, 0]  # cov(everything, chosen)
            for u in taken[o]:
                column = column - u * u[chosen]
            u = column / np.sqrt(max(column[chosen], 0.0) + noise[o])
            taken[o].append(u)
            cross[o] -= np.outer(u[:count], u[count:])
            variance[o] = variance[o] - u[:count] ** 2
    return np.asarray(picks), np.asarray(scores)


LOCAL_SHARE = 0.1  # the local term's variance, as a share of the members' mean variance
MAX_CONDITIONING = 1500  # measured points the local term is conditioned on (a random subset beyond)


def _spacing(points: np.ndarray, count: int) -> float:
    """The spacing `count` points would have if spread evenly over the box `points` span."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    extent = np.where(hi > lo, hi - lo, 1.0)
    return float(np.prod(extent) / max(count, 1)) ** (1.0 / points.shape[1])


def _kernel(a: np.ndarray, b: np.ndarray, length: float) -> np.ndarray:
    """exp(-|a - b|^2 / (2 length^2)), [len(a), len(b)]."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    squared = (a**2).sum(axis=1)[:, None] + (b**2).sum(axis=1)[None, :] - 2.0 * a @ b.T
    return np.exp(-np.maximum(squared, 0.0) / (2.0 * length**2))


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
# What Experiment 4 measured saving most (RESULTS.md): at least half of the measurements against
# uniform on hill2 and hill3 with a transfer model; no model-based method beat it on any system.
DEFAULT_METHOD = "space_filling"
MODEL_FREE = ("uniform", "space_filling")  # need no ensemble: Experiment 4's references
