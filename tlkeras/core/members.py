"""The sweep's vocabulary of work: a member (one independent model) and a stack job (members that
train together). Free of TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Member:
    """One independent model of the sweep."""

    arm: str  # 'pretrain', 'transfer', 'baseline' or 'oracle'
    system: str  # the system it learns (the simple system for 'pretrain')
    volume: int  # the size of its training set
    seed: int

    @property
    def key(self) -> str:
        """A path-like id, unique in a sweep: 'transfer/hill2/n50/seed0'."""
        return f"{self.arm}/{self.system}/n{self.volume}/seed{self.seed}"


@dataclass(frozen=True)
class StackJob:
    """Members that train together: same arm, same set size, same epochs."""

    arm: str
    size: int
    epochs: int
    first_epoch: int
    members: tuple[Member, ...]
    batch_size: int = 32

    @property
    def name(self) -> str:
        return f"{self.arm} n={self.size}"

    @property
    def steps(self) -> int:
        """Sequential optimizer steps this job takes (its cost floor)."""
        return self.epochs * -(-self.size // self.batch_size)

    @property
    def work(self) -> float:
        """Its time, in steps of a 32-sample minibatch: a step's cost grows with its batch.

        Measured for a 5-member stack on one core (multi_fidelity's network; the study's is
        similar): 0.18 ms a step at batch 32, 1.7 ms at 1000, 5.8 ms at 5000. So a full-batch
        job of 20000 steps at n = 5000 outlasts a minibatch job of 300 000 steps; the sweep
        orders jobs, splits them and estimates its ETA by this, not by steps."""
        return self.steps * (1.0 + self.batch_size / 128.0) / (1.0 + 32 / 128.0)

    def subset(self, members: Sequence[Member]) -> "StackJob":
        return StackJob(self.arm, self.size, self.epochs, self.first_epoch, tuple(members), self.batch_size)
