"""Choices a strategy makes from its members' own training pairs, never the evaluation points.

- wise_ft: the mix a of (1 - a) * pretrained + a * fine-tuned, by k-fold cross-validation
  (`cross_validated_mix`): fold models fine-tuned without their fold, the MSE of every mix on it.
- l2_sp_extrapolation: alpha, by blocked validation for extrapolation (`held_out_alphas`): the
  pairs nearest the unmeasured part of the big domain (`extrapolation_band`) are held out, a
  model per alpha is fine-tuned on the rest, and a rule (`HeldOutAlphas.chosen`) reads their
  held-out MSEs.

Each check trains its extra models as one stack (`engine.StackTrainer`), every model exactly as
the member it stands for would train, from the member's start and in its minibatch order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import tensorflow as tf

from tlkeras.core.config import StudyConfig
from tlkeras.core.vocabulary import L2_SP_CHOICES
from tlkeras.nn import data, models
from tlkeras.nn.engine import Regime, StackTrainer

if TYPE_CHECKING:
    from tlkeras.strategies.base import StackPlan

WISE_FT_MIXES = tuple(round(0.1 * i, 1) for i in range(11))


def wise_ft_folds(config: StudyConfig, seed: int, size: int) -> list[np.ndarray]:
    """k disjoint held-out folds of the real pairs' row numbers, floor(size/k) rows each (the
    rest always train), so every fold model trains on the same number of pairs."""
    order = np.random.default_rng(data.stream_seed(seed, "wise_ft/folds", size)).permutation(size)
    rows = size // config.wise_ft_folds
    return [np.sort(order[k * rows:(k + 1) * rows]) for k in range(config.wise_ft_folds)]


def extrapolation_band(config: StudyConfig, x: np.ndarray) -> np.ndarray:
    """The row numbers of the share `l2_sp_holdout` of the pairs x (network units) nearest to
    where the model must extrapolate: ranked by how far each point lies towards every side on
    which the big domain extends beyond the small one (fraction of the small domain's width;
    where it extends nowhere, towards its edges), ties by row. Blocked validation for
    extrapolation, as spatial blocks are for spatial data (Roberts et al., Ecography 2017)."""
    x = config.network.unscale_inputs(x)
    low, high = config.small_box.bounds(x.shape[1])
    big_low, big_high = config.big_box.bounds(x.shape[1])
    width = np.where(high > low, high - low, 1.0)
    towards = [np.where(big_high > high, (x - low) / width, -np.inf),
               np.where(big_low < low, (high - x) / width, -np.inf)]
    score = np.max(np.concatenate(towards, axis=1), axis=1)
    if not np.isfinite(score).any():  # the big domain is the small one: its edges
        score = np.max(np.abs(x - (low + high) / 2) / width, axis=1)
    held = min(len(x) - 1, max(1, int(round(len(x) * config.l2_sp_holdout))))
    return np.sort(np.argsort(-score, kind="stable")[:held])


@dataclass(frozen=True)
class HeldOutAlphas:
    """One member's check of every alpha on its extrapolation band: the band's MSE (network
    units) of the model fine-tuned with each alpha on the other pairs; the standard error of that
    MSE over the band's points; and the standard error of each alpha's per-point difference
    from the alpha of the lowest MSE (a paired comparison: the same points and noise for all)."""

    alphas: tuple[float, ...]
    mse: np.ndarray
    standard_error: np.ndarray
    paired_standard_error: np.ndarray

    def chosen(self, rule: str) -> float:
        """The alpha `rule` (one of config.L2_SP_CHOICES) takes:

        - "paired_standard_error": the largest alpha (the strongest pull towards the pretrained
          weights) whose MSE exceeds the lowest by at most one standard error of their per-point
          difference: a difference the band cannot tell from noise does not argue against the
          simple model;
        - "one_standard_error": the largest alpha whose MSE is within one standard error of the
          lowest MSE, the one-standard-error rule of Hastie, Tibshirani and Friedman (The Elements
          of Statistical Learning, 2nd ed., sec. 7.10); unpaired, so it forgives more;
        - "lowest": the alpha of the lowest MSE.
        """
        if rule not in L2_SP_CHOICES:
            raise ValueError(f"l2_sp_choice={rule!r} is not allowed: expected one of {', '.join(L2_SP_CHOICES)}")
        finite = np.isfinite(self.mse)  # a check model that diverged is never chosen
        if not finite.any():
            raise ArithmeticError(f"l2_sp_extrapolation: every alpha of {', '.join(map(str, self.alphas))} "
                                  "diverged on the held-out pairs; lower --learning_rate or the alphas")
        best = _lowest(self.mse)
        if rule == "lowest":
            return self.alphas[best]
        margin = self.paired_standard_error if rule == "paired_standard_error" else \
            np.full(len(self.alphas), self.standard_error[best])
        return max(a for a, excess, allowed, ok in zip(self.alphas, self.mse - self.mse[best], margin, finite)
                   if ok and excess <= allowed)


def held_out_alphas(config: StudyConfig, plan: StackPlan) -> list[HeldOutAlphas]:
    """l2_sp_extrapolation's check, per member: every alpha of `config.l2_sp_alphas` fine-tunes
    the member's start on the pairs outside its extrapolation band, as the member's own l2_sp
    would, and predicts the band. One stack of members x alphas."""
    prepared = plan.prepared
    alphas = tuple(float(a) for a in config.l2_sp_alphas)
    bands = [extrapolation_band(config, p.x) for p in prepared]
    pairs = [(m, a) for m in range(len(prepared)) for a in alphas]
    stack, trainer, _ = _fine_tuned_without(
        config, plan, [m for m, _ in pairs], [bands[m] for m, _ in pairs],
        lambda start: Regime([config.learning_rate] * len(pairs), anchor_alpha=[a for _, a in pairs], anchor=start))
    predictions = trainer.predict([v.value for v in stack.trainable_variables],
                                  np.stack([prepared[m].x[bands[m]] for m, _ in pairs]))
    checks = []
    for m in range(len(prepared)):
        rows = range(m * len(alphas), (m + 1) * len(alphas))
        # squared error per band point, averaged over the outputs: [alphas, points]
        errors = np.stack([np.mean((predictions[i] - prepared[m].y[bands[m]]) ** 2, axis=1) for i in rows])
        mse = errors.mean(axis=1)
        differences = errors - errors[_lowest(mse)]
        checks.append(HeldOutAlphas(alphas, mse, _standard_error(errors), _standard_error(differences)))
    return checks


def _fine_tuned_without(config: StudyConfig, plan: StackPlan, owners: Sequence[int], held: Sequence[np.ndarray],
                        regime_for: Callable[[list[np.ndarray]], Regime] | None = None):
    """One stack with a model per entry i: member owners[i]'s start, fine-tuned as that member is
    (its minibatch order, its epochs) on its pairs less the rows held[i]; `regime_for(start)`
    gives the stack's regime (default: plain fine-tuning). (stack, trainer, start weights)."""
    prepared = plan.prepared
    kept = [np.setdiff1d(np.arange(len(prepared[m].x)), rows) for m, rows in zip(owners, held)]
    stack = models.build_stack(config.network.in_network_units(), len(owners))
    models.load_members(stack, [prepared[m].net for m in owners])
    start = [np.array(v.numpy()) for v in stack.trainable_variables]
    trainer = StackTrainer(stack, config.learning_rate, config.batch_size, regime_for(start) if regime_for else None)
    trainer.fit(np.stack([prepared[m].x[rows] for m, rows in zip(owners, kept)]),
                np.stack([prepared[m].y[rows] for m, rows in zip(owners, kept)]),
                plan.epochs, shuffle_seeds=[plan.shuffle_seeds[m] for m in owners], first_epoch=plan.first_epoch)
    return stack, trainer, start


def _lowest(mse: np.ndarray) -> int:
    """The index of the lowest finite MSE (a diverged model's is never the lowest)."""
    return int(np.argmin(np.where(np.isfinite(mse), mse, np.inf)))


def _standard_error(values: np.ndarray) -> np.ndarray:
    """The standard error of the mean of each row (0 for a single column)."""
    if values.shape[1] < 2:
        return np.zeros(len(values))
    return values.std(axis=1, ddof=1) / np.sqrt(values.shape[1])


def mix(start: Sequence[np.ndarray], end: Sequence[np.ndarray], a: float) -> list[np.ndarray]:
    """(1 - a) * start + a * end, weight by weight."""
    return [(1.0 - a) * s + a * e for s, e in zip(start, end)]


def cross_validated_mix(config: StudyConfig, plan: StackPlan) -> list[np.ndarray]:
    """wise_ft's k-fold curve: for each member, the mean held-out MSE (network units) of the mix
    at every a in WISE_FT_MIXES, each fold model fine-tuned as the member is but without its
    fold. [members, len(WISE_FT_MIXES)]."""
    k = config.wise_ft_folds
    prepared = plan.prepared
    folds = [wise_ft_folds(config, seed, len(p.x)) for p, seed in zip(prepared, plan.seeds)]
    fold_members = [(m, f) for m in range(len(prepared)) for f in range(k)]
    stack, trainer, start = _fine_tuned_without(config, plan, [m for m, _ in fold_members],
                                                [folds[m][f] for m, f in fold_members])
    end = [np.array(v.numpy()) for v in stack.trainable_variables]
    held_x = np.stack([prepared[m].x[folds[m][f]] for m, f in fold_members])  # [K*k, rows, in]
    held_y = np.stack([prepared[m].y[folds[m][f]] for m, f in fold_members])
    curves = np.zeros((len(prepared), len(WISE_FT_MIXES)))
    for column, a in enumerate(WISE_FT_MIXES):
        params = [tf.constant(w) for w in mix(start, end, a)]
        predictions = trainer.predict(params, held_x)  # [K*k, rows, out]
        errors = np.mean((predictions - held_y) ** 2, axis=(1, 2))
        curves[:, column] = errors.reshape(len(prepared), k).mean(axis=1)
    return list(curves)
