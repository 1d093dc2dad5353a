"""The base of every transfer strategy: `Strategy` (fine_tune_all, the study's), what a member
starts from (`Prepared`) and what a strategy may choose from (`StackPlan`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from tlkeras.core.config import StudyConfig
from tlkeras.core.network import NetworkSpec
from tlkeras.core.vocabulary import TRANSFER_ARM, arm_of_strategy
from tlkeras.nn import models
from tlkeras.nn.engine import Regime


@dataclass
class Prepared:
    """One member ready to train: its starting network and its (network-unit) data."""

    net: keras.Model | models.StartingWeights  # a fresh start needs no Keras model
    x: np.ndarray  # the network's inputs
    y: np.ndarray  # the network's targets
    offset: np.ndarray | None = None  # added to the network's output to predict (residual)


@dataclass(frozen=True)
class StackPlan:
    """What a strategy may choose from, for one stack of members, before or after they train:
    their starts and training pairs, their seeds and minibatch orders, and their epochs. Never
    the evaluation points."""

    prepared: Sequence[Prepared]
    seeds: Sequence[int]
    shuffle_seeds: Sequence[int]
    epochs: int
    first_epoch: int


class Strategy:
    """Fine-tuning every pretrained weight (the study's); subclasses change one thing each."""

    name = "fine_tune_all"
    needs_pretraining = True
    continues_pretraining = True  # trains `finetune_epochs` on from the pretrained weights
    saves_plain_net = False  # residual and g_feature: also a `.net.keras` plain Keras loads
    epoch_unit = "epochs"  # what `epochs` counts

    @property
    def arm(self) -> str:
        return arm_of_strategy(self.name)

    def network(self, config: StudyConfig) -> NetworkSpec:
        """The trained network (with the user's units, as `build_mlp` exports it)."""
        return config.network

    def epochs(self, config: StudyConfig) -> tuple[int, int]:
        """(epochs, first epoch number)."""
        if self.continues_pretraining:
            return config.finetune_epochs, config.pretrain_epochs
        return config.epochs, 0

    def batch_size(self, config: StudyConfig, size: int) -> int:
        """The minibatch size for a training set of `size` pairs."""
        return config.batch_size

    def evaluation_interval(self, config: StudyConfig) -> int:
        """Epochs between evaluations inside training (the curves)."""
        return config.evaluation_interval

    def shuffle_stream(self) -> str:
        """Fine-tuning strategies share the minibatch order of fine_tune_all (a paired design:
        wise_ft at a = 1 and l2_sp at alpha = 0 are exactly fine_tune_all)."""
        return TRANSFER_ARM if self.continues_pretraining else self.name

    def inputs(self, config: StudyConfig, x: np.ndarray, pretrained: keras.Model | None) -> np.ndarray:
        """The network's inputs for points x (network units)."""
        return x

    def offset(self, config: StudyConfig, x: np.ndarray) -> np.ndarray | None:
        """What is added to the network's output (network units); None: nothing."""
        return None

    def prepare(self, config: StudyConfig, x: np.ndarray, y: np.ndarray, pretrained: keras.Model | None,
                init_seed: int) -> Prepared:
        """The member's start, from its real pairs (network units), its pretrained model (None
        without pretraining) and the seed of its fresh initialisation (the baseline's)."""
        offset = self.offset(config, x)
        targets = y if offset is None else y - offset
        inputs = self.inputs(config, x, pretrained)
        return Prepared(self.starting_net(config, pretrained, init_seed, inputs, targets), inputs, targets, offset)

    def starting_net(self, config, pretrained, init_seed, x, y) -> keras.Model:
        return pretrained

    def regime(self, config: StudyConfig, members: int, anchor: list[np.ndarray]) -> Regime:
        """How the members train (`anchor`: their starting weights). Fine-tuning is L2-SP with
        alpha = 0, the same numbers bit for bit, and so shares the fine-tuning strategies'
        compiled program (engine.StackTrainer); training from scratch keeps the baseline's."""
        if self.continues_pretraining:
            return Regime([config.learning_rate] * members, anchor=anchor)
        return Regime.uniform(members, config.learning_rate)

    def before_training(self, config: StudyConfig, plan: StackPlan, regime: Regime) -> tuple[Regime, list[dict]]:
        """Choices made from the members' own training pairs before they train (l2_sp_extrapolation's
        alpha): the regime they train with, and per member what to record of the choice."""
        return regime, [{} for _ in plan.prepared]

    def after_training(self, config: StudyConfig, plan: StackPlan, variables: Sequence[tf.Variable],
                       start: Sequence[np.ndarray]) -> list[dict]:
        """Choices made after training (wise_ft's mix), which may change the trained stack's
        `variables` (their values at `start` before training); per member what to record."""
        return [{} for _ in plan.prepared]

    def export(self, config: StudyConfig, net: keras.Model, pretrained: keras.Model | None) -> keras.Model:
        """The saved model: user units in and out."""
        return net
