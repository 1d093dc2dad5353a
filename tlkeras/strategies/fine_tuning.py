"""Fine-tuning strategies: start from the pretrained network and change one thing of how it trains."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from tlkeras.core.config import StudyConfig
from tlkeras.nn import models
from tlkeras.nn.engine import Regime
from tlkeras.strategies.base import Strategy
from tlkeras.strategies.selection import WISE_FT_MIXES, cross_validated_mix, held_out_alphas


class L2SP(Strategy):
    name = "l2_sp"

    def regime(self, config, members, anchor):
        return Regime([config.learning_rate] * members, anchor_alpha=[config.l2_sp_alpha] * members, anchor=anchor)


class L2SPExtrapolation(L2SP):
    """l2_sp with each model's alpha chosen from `l2_sp_alphas` by how well it extrapolates: the
    share `l2_sp_holdout` (a quarter) of the measured pairs nearest the unmeasured part of the
    big domain is held out, a model per alpha is fine-tuned on the rest, and the largest alpha
    whose held-out MSE the band cannot tell from the lowest (within one standard
    error of their paired difference; `l2_sp_choice`, `HeldOutAlphas.chosen`) trains the final
    model on every pair."""

    name = "l2_sp_extrapolation"

    def before_training(self, config, plan, regime):
        checks = held_out_alphas(config, plan)
        alphas = [check.chosen(config.l2_sp_choice) for check in checks]
        notes = [dict(l2_sp_alpha=alpha, l2_sp_alphas=list(check.alphas), l2_sp_choice=config.l2_sp_choice,
                      l2_sp_heldout_mse=[float(v) for v in check.mse],
                      l2_sp_heldout_se=[float(v) for v in check.standard_error],
                      l2_sp_heldout_paired_se=[float(v) for v in check.paired_standard_error])
                 for alpha, check in zip(alphas, checks)]
        return dataclasses.replace(regime, anchor_alpha=alphas), notes


class LinearProbeThenFineTune(Strategy):
    name = "lp_ft"

    def starting_net(self, config, pretrained, init_seed, x, y):
        return linear_probe(config, pretrained, x, y)

    def regime(self, config, members, anchor):
        return Regime([config.learning_rate * config.lp_ft_rate_factor] * members, anchor=anchor)


class WiseFineTune(Strategy):
    name = "wise_ft"

    def after_training(self, config, plan, variables, start):
        """Each member's mix a by k-fold cross-validation on its real pairs; the stack then holds
        (1 - a) * pretrained + a * fine-tuned, member by member."""
        end = [np.array(v.numpy()) for v in variables]
        curves = cross_validated_mix(config, plan)
        mixes = [WISE_FT_MIXES[int(np.argmin(curve))] for curve in curves]
        a = np.asarray(mixes, np.float32)
        for variable, s, e in zip(variables, start, end):
            share = a.reshape([-1] + [1] * (s.ndim - 1))
            variable.assign((1.0 - share) * s + share * e)
        return [dict(wise_ft_mix=float(m), wise_ft_mixes=list(WISE_FT_MIXES), wise_ft_cv_mse=[float(v) for v in c])
                for m, c in zip(mixes, curves)]


class FreezeFirstLayers(Strategy):
    name = "freeze_k"

    def regime(self, config, members, anchor):
        frozen = frozenset(f"hidden_{i}" for i in range(min(config.freeze_layers, config.depth)))
        return Regime([config.learning_rate] * members, frozen=[frozen] * members, anchor=anchor)


def linear_probe(config: StudyConfig, pretrained: keras.Model, x: np.ndarray, y: np.ndarray) -> keras.Model:
    """The pretrained model with its output layer refitted by least squares on the last hidden
    layer's features of x (network units); the hidden layers are unchanged."""
    spec = config.network
    probe = models.build_mlp(spec, seed=0)
    layers = models.dense_layers(pretrained)
    for name, layer in models.dense_layers(probe).items():
        layer.set_weights(layers[name].get_weights())
    features = np.asarray(x, np.float64)
    for i in range(spec.depth):
        kernel, bias = layers[f"hidden_{i}"].get_weights()
        features = np.asarray(keras.activations.get(spec.activation)(features @ kernel + bias), np.float64)
    design = np.concatenate([features, np.ones((len(features), 1))], axis=1)
    # Minimum-norm least squares, directions below 1e-6 of the largest singular value dropped
    # (dead ReLUs and near-collinear features): small weights that survive float32.
    solution = np.linalg.lstsq(design, np.asarray(y, np.float64), rcond=1e-6)[0]
    models.dense_layers(probe)["output"].set_weights([solution[:-1].astype(np.float32),
                                                      solution[-1].astype(np.float32)])
    return probe
