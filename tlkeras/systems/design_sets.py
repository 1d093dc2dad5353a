"""Design sets: the real pairs one simulated lab of Experiment 4 has measured, round by round.

A lab (a *replicate*) starts from N0 points drawn uniformly where it can measure, then adds
points a design method picks (`tlkeras.design.methods`). Its set is a "system" of the sweep named

    <system>@<method>@r<replicate>     e.g. hill2@space_filling@r3     (the start: hill2@start@r3)

so that its members train, stack, save and score like any other (their truth is the system's).
The points live in the round's run directory (`design/<set>.npy`, written by the driver before
the round) and reach a job as bytes (`handoff.JobInputs.design`), installed here per process.
A point's measurement is the system's value there plus noise drawn from (replicate, point
index): the same point index of a replicate has the same noise under every method, and the N0
starting pairs are the same for every method (a paired design). Free of TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEPARATOR = "@"
START = "start"  # the method name of the N0 starting points, shared by every method
_NOISE_SEED = 0xDE5167


@dataclass(frozen=True)
class DesignSet:
    system: str  # the short name of the real system ('hill2')
    method: str
    replicate: int

    @property
    def name(self) -> str:
        return set_name(self.system, self.method, self.replicate)


def set_name(system: str, method: str, replicate: int) -> str:
    return f"{system}{SEPARATOR}{method}{SEPARATOR}r{replicate}"


def parse(name: str) -> DesignSet | None:
    """The design set `name` names, or None for any other system name."""
    parts = name.rsplit(SEPARATOR, 2) if isinstance(name, str) else []
    if len(parts) != 3 or not parts[0] or not parts[1].isidentifier() or not parts[2][:1] == "r" \
            or not parts[2][1:].isdigit():
        return None
    return DesignSet(parts[0], parts[1], int(parts[2][1:]))


def is_design_set(name: str) -> bool:
    return parse(name) is not None


def base_system(name: str) -> str:
    """The real system a design set measures (any other name: itself)."""
    found = parse(name)
    return name if found is None else found.system


# The points of this process's design sets ------------------------------------------------------
_POINTS: dict[str, np.ndarray] = {}


def install(name: str, points: np.ndarray) -> None:
    """Use `points` [n, d] as the design set `name` in this process (read-only)."""
    points = np.array(points, np.float64)
    points.setflags(write=False)
    _POINTS[name] = points


def points(name: str) -> np.ndarray:
    try:
        return _POINTS[name]
    except KeyError:
        raise KeyError(f"design set {name!r} has no points in this process (installed: {len(_POINTS)})") from None


def measurement_noise(replicate: int, first: int, count: int, outputs: int, sigma: float) -> np.ndarray:
    """The noise [count, outputs] on points first..first+count-1 of a replicate's set: point i's
    noise depends on (replicate, i) only, so every method's i-th measurement has the same noise."""
    rows = [np.random.default_rng([_NOISE_SEED, replicate, i]).standard_normal(outputs)
            for i in range(first, first + count)]
    return sigma * np.asarray(rows, np.float64).reshape(count, outputs)


def starting_points(replicate: int, low: np.ndarray, high: np.ndarray, count: int) -> np.ndarray:
    """The N0 points a replicate lab starts from: uniform in the box where it can measure."""
    rng = np.random.default_rng([_NOISE_SEED, replicate, 0x57A27])
    return rng.uniform(low, high, size=(count, len(low)))


def pool_points(low: np.ndarray, high: np.ndarray, count: int, purpose: str, replicate: int) -> np.ndarray:
    """`count` points uniform in a box, fixed per (purpose, replicate): a lab's candidates (the
    region it can measure in) or its targets (the domain its model should improve on)."""
    rng = np.random.default_rng([_NOISE_SEED, replicate, *(ord(c) for c in purpose)])
    return rng.uniform(low, high, size=(count, len(low)))
