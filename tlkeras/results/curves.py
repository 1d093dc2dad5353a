"""Evaluation during training: every model's error on the evaluation points, every few epochs.

Fine-tuning can undo what pretraining taught where there is no real data (forgetting); a score
at the last epoch cannot show when. `EvaluationCurves` collects, for the members of one stack
job, L1 inside and outside the measured region at every evaluation (`StudyConfig.evaluations`
per training) and the per-point errors for TensorBoard's histogram over epochs. A pretraining
member is scored against every real system of the run as well as the simple one, so that a
transfer member's curve can start with its pretrained model's error on its own system.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tlkeras.core.config import StudyConfig
from tlkeras.core.members import Member
from tlkeras.core.vocabulary import PRETRAIN
from tlkeras.results import evaluation
from tlkeras.systems import design_sets

METRICS = ("l1_mean", "l1_inside", "l1_outside")


class EvaluationCurves:
    def __init__(self, config: StudyConfig, evaluation_set, members: Sequence[Member]):
        self.config = config
        self.evaluation = evaluation_set
        self.members = list(members)
        self.epochs: list[int] = []
        self._scores: list[dict[str, dict[str, list[float]]]] = [{} for _ in members]
        self._errors: list[list[np.ndarray]] = [[] for _ in members]
        self.wanted = config.evaluations > 0 and any(self._systems(m) for m in members)

    def _systems(self, member: Member) -> list[str]:
        """The systems `member` is scored against (its own first)."""
        truth = self.evaluation.truth
        if self.evaluation.truth_of(member.system) is None:  # measured rows: no truth on the evaluation points
            return []
        if member.arm == PRETRAIN:
            return [member.system, *(s for s in truth if s != member.system)]
        return [member.system]

    def add(self, epoch: int, predictions: np.ndarray) -> None:
        """The members' predictions (network units) at the end of `epoch`."""
        predictions = self.config.network.unscale_outputs(predictions)
        self.epochs.append(int(epoch))
        for index, member in enumerate(self.members):
            for rank, system in enumerate(self._systems(member)):
                errors = evaluation.point_errors(predictions[index], self.evaluation.truth_of(system))
                score = evaluation.score(errors, self.evaluation.inside).as_dict()
                curve = self._scores[index].setdefault(system, {m: [] for m in METRICS})
                for metric in METRICS:
                    curve[metric].append(score[metric])
                if rank == 0:
                    self._errors[index].append(errors.astype(np.float32))

    def member_curve(self, index: int) -> dict | None:
        """For TensorBoard: epochs, the member's own-system scores and point errors per epoch."""
        member = self.members[index]
        systems = self._systems(member)
        if not self.epochs or not systems:
            return None
        return dict(epochs=list(self.epochs), **self._scores[index][systems[0]], point_errors=self._errors[index])

    def record(self, index: int) -> dict:
        """What the member's record keeps (a pretraining member: every system's curve)."""
        member = self.members[index]
        if not self.epochs or not self._systems(member):
            return {}
        if member.arm == PRETRAIN:
            return dict(eval_curves=dict(evaluation=self.signature(self.config), epochs=list(self.epochs),
                                         systems=self._scores[index]))
        own = self._scores[index][member.system]
        return dict(eval_curve=dict(epochs=list(self.epochs), **own))

    @staticmethod
    def signature(config: StudyConfig) -> list:
        """What makes two runs' evaluation points the same (a cached pretraining's curves are
        used only when this matches)."""
        return [config.eval_seed, config.eval_points, list(config.big_domain), config.input_dimension]


def earlier_curve(config: StudyConfig, stored: dict, system: str) -> dict | None:
    """A pretraining member's stored curves, for `system`, if they were taken on this run's points."""
    system = design_sets.base_system(system)  # a lab of Experiment 4: its system's curve
    if stored.get("evaluation") != EvaluationCurves.signature(config) or system not in stored.get("systems", {}):
        return None
    return dict(epochs=stored["epochs"], **stored["systems"][system])
