"""Suggest the next measurements: candidates in the region a lab can measure, scored by a method
(`methods.METHODS`) for how much they should improve the model over a target box.

`suggest` is free of TensorFlow and of the model folder's format: it takes the ensemble as a
function from inputs (the user's units) to every member's predictions, so that `tlkeras suggest`
(a fitted folder) and Experiment 4 (members in memory) share it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from tlkeras.design.methods import METHODS, Pool
from tlkeras.systems.domains import Domain

POOL_POINTS = 2048  # candidates drawn in the region when none are given (at least 20 per pick)
TARGET_POINTS = 1024  # points of the target box the integrated methods average over


class SuggestionError(ValueError):
    """A request suggest cannot serve; the message is one line naming the value."""


@dataclass(frozen=True)
class Suggestion:
    """n picks: their inputs [n, d] (user units) in pick order, the rows of the candidates they are
    (None for a pool drawn in the region), the ensemble's mean and sd there [n, o], and the
    method's score of each when it was picked."""

    x: np.ndarray
    rows: np.ndarray | None
    mean: np.ndarray
    sd: np.ndarray
    score: np.ndarray
    method: str
    region: np.ndarray
    target: np.ndarray


def suggest(
    members: Callable[[np.ndarray], np.ndarray],
    domain: np.ndarray,
    measured: np.ndarray,
    n: int,
    method: str,
    seed: int = 0,
    region: np.ndarray | None = None,
    target: np.ndarray | None = None,
    candidates: np.ndarray | None = None,
    noise: np.ndarray | None = None,
) -> Suggestion:
    """Pick `n` points. `members(x)`: [m, points, outputs] predictions; `domain` [d, 2]: the
    fit's domain (distances are measured in its unit box); `measured` [k, d]: the points
    measured so far; `region` [d, 2] (default: the box the measurements span): where the lab can
    measure; `target` [d, 2] (default: the domain): where the model should improve; `candidates`
    [c, d]: the only points allowed (then `region` is not used); `noise` [o]: measurement noise
    sd per output (default 0). Reproducible for a seed."""
    domain = np.asarray(domain, np.float64)
    measured = np.asarray(measured, np.float64).reshape(-1, len(domain))
    if method not in METHODS:
        raise SuggestionError(f"method={method!r} is not allowed: expected one of {', '.join(METHODS)}")
    if n < 1:
        raise SuggestionError(f"n={n} is not allowed: expected at least 1 point")
    if region is None:
        region = np.stack([measured.min(axis=0), measured.max(axis=0)], axis=1) if len(measured) else domain
    region, target = np.asarray(region, np.float64), np.asarray(domain if target is None else target, np.float64)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5E1EC7]))
    if candidates is None:
        points = _sample(region, max(POOL_POINTS, 20 * n), rng)
    else:
        points = np.asarray(candidates, np.float64).reshape(-1, len(domain))
        if len(points) < n:
            raise SuggestionError(f"the candidates have {len(points)} rows; n={n} picks need at least {n}")
    targets = _sample(target, TARGET_POINTS, rng)
    predicted = np.asarray(members(np.concatenate([points, targets])), np.float64)  # [m, c + t, o]
    picks, score = pick(predicted, points, targets, domain, measured, n, method, rng, noise)
    chosen = predicted[:, picks]
    sd = chosen.std(axis=0, ddof=1) if len(chosen) > 1 else np.zeros(chosen.shape[1:])
    return Suggestion(x=points[picks], rows=None if candidates is None else picks, mean=chosen.mean(axis=0), sd=sd,
                      score=np.asarray(score, np.float64), method=method, region=region, target=target)


def pick(predicted: np.ndarray, candidates: np.ndarray, targets: np.ndarray, domain: np.ndarray,
         measured: np.ndarray, n: int, method: str, rng: np.random.Generator,
         noise: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`method`'s n picks (indices into `candidates`) and scores, from the members' predictions
    [m, c + t, o] at the candidates then the targets (user units; `domain` [d, 2] scales the
    inputs, the spread of the mean over the targets the outputs)."""
    count = len(candidates)
    scale = predicted[:, count:].mean(axis=0).std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    unit = _unit_box(np.asarray(domain, np.float64))
    pool = Pool(candidates=unit(candidates), measured=unit(measured), candidate_members=predicted[:, :count] / scale,
                target_members=predicted[:, count:] / scale, targets=unit(targets),
                noise=(np.zeros(predicted.shape[2]) if noise is None else np.asarray(noise, np.float64)) / scale)
    return METHODS[method](pool, n, rng)


def _sample(box: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` points uniform in the box [d, 2] (a degenerate side: that one value)."""
    return rng.uniform(box[:, 0], box[:, 1], size=(count, len(box)))


def _unit_box(domain: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    low, width = domain[:, 0], domain[:, 1] - domain[:, 0]
    width = np.where(width > 0, width, 1.0)
    return lambda x: (np.asarray(x, np.float64) - low) / width


def region_in_domain(region: Domain, domain: np.ndarray, label: str) -> np.ndarray:
    """A region given as `--domain` takes it, as [d, 2], checked to lie inside the domain."""
    domain = np.asarray(domain, np.float64)
    low, high = region.bounds(len(domain))
    box = np.stack([low, high], axis=1)
    outside = (box[:, 0] < domain[:, 0]) | (box[:, 1] > domain[:, 1]) | (box[:, 0] > box[:, 1])
    if outside.any():
        i = int(np.argmax(outside))
        raise SuggestionError(f"{label} of input {i + 1} is {box[i, 0]:g}..{box[i, 1]:g}: expected low <= high inside "
                              f"the model's domain {domain[i, 0]:g}..{domain[i, 1]:g}")
    return box
