"""Input domains: a box of concentrations, one interval per input (free of TensorFlow).

A domain is given as a flat tuple of numbers: `low, high` (the same interval for every input,
as the study's 0-20 nM) or `low1, high1, low2, high2, ...` (one interval per input, as a lab's
inducers often have different ranges).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Domain:
    """A box of inputs: `low` and `high` are numbers (every input) or one number per input."""

    low: float | tuple[float, ...]
    high: float | tuple[float, ...]

    @staticmethod
    def from_pairs(pairs) -> "Domain":
        """From [[low, high], ...] per input (as a model folder's manifest writes them)."""
        pairs = np.asarray(pairs, np.float64).reshape(-1, 2)
        return Domain(tuple(pairs[:, 0].tolist()), tuple(pairs[:, 1].tolist()))

    @staticmethod
    def from_values(values: Sequence[float], dimension: int) -> "Domain":
        """`low,high` for every input or `low1,high1,...` per input (see the module doc)."""
        values = [float(v) for v in values]
        if len(values) == 2:
            return Domain(values[0], values[1])
        if len(values) == 2 * dimension:
            return Domain(tuple(values[0::2]), tuple(values[1::2]))
        raise ValueError(f"{len(values)} numbers for a domain of {dimension} inputs: give low,high "
                         f"or {dimension} pairs low,high")

    def bounds(self, dimension: int) -> tuple[np.ndarray, np.ndarray]:
        """(low, high), each float64 [dimension]."""
        low = np.broadcast_to(np.asarray(self.low, np.float64), (dimension,)).copy()
        high = np.broadcast_to(np.asarray(self.high, np.float64), (dimension,)).copy()
        return low, high

    def contains(self, x: np.ndarray) -> np.ndarray:
        """Boolean [...]: whether every coordinate of each point lies in the box."""
        x = np.asarray(x)
        low, high = self.bounds(x.shape[-1])
        return np.all((x >= low) & (x <= high), axis=-1)

    def describe(self, dimension: int, names: Sequence[str] | None = None) -> str:
        """'0..20' or 'aTc 0..20, IPTG 0..5'."""
        low, high = self.bounds(dimension)
        if np.all(low == low[0]) and np.all(high == high[0]) and names is None:
            return f"{low[0]:g}..{high[0]:g}"
        names = names or [f"x{i + 1}" for i in range(dimension)]
        return ", ".join(f"{n} {a:g}..{b:g}" for n, a, b in zip(names, low, high))


def domain_values(values: Sequence[float], dimension: int) -> list[tuple[float, float]]:
    """The (low, high) of every input of a flat domain tuple."""
    low, high = Domain.from_values(values, dimension).bounds(dimension)
    return list(zip(low.tolist(), high.tolist()))
