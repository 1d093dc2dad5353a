"""The arms of the study as stack jobs: what each member trains on, from where, for how long.

A *member* is one independent model: (arm, system, volume, seed). A *stack job* is a group of
members that share a step count (same arm, same training-set size, same epochs) and therefore
train together in one stacked model (`engine.StackTrainer`). The arms, per seed:

- pretrain: `pretrain_epochs` on the synthetic set (the simple system g on the big domain);
- transfer: reload the pretrained model *from its .keras file*, fine-tune the remaining epochs on
  the N real small-domain pairs with a fresh optimizer;
- baseline: all epochs from scratch on the same N real pairs;
- oracle: all epochs from scratch on the oracle set (real system, big domain).

All arms of one seed start from the same initial weights (a paired design: differences between
arms are not blurred by initialisation luck), and every random stream is derived from the seed
and its purpose (`data.stream_seed`), so any member can be recomputed from the config alone.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import keras
import numpy as np

from tlkeras.core.config import StudyConfig
from tlkeras.core.members import Member, StackJob
from tlkeras.core.network import NetworkSpec
from tlkeras.core.vocabulary import PRETRAIN
from tlkeras.nn import data, models
from tlkeras.nn.engine import ProgressFn, StackTrainer, TrainingLog
from tlkeras.strategies.base import Prepared, StackPlan
from tlkeras.strategies.registry import strategy_of_arm
from tlkeras.systems import design_sets
from tlkeras.systems.measurements import is_measured
from tlkeras.systems.mechanistic import system_function


def training_set(config: StudyConfig, member: Member) -> tuple[np.ndarray, np.ndarray]:
    """The (x, y) pairs `member` trains on, in the network's units (see NetworkSpec)."""
    if is_measured(member.system):
        x, y = data.training_rows(config, member.system)
    elif design_sets.is_design_set(member.system):
        x, y = _design_set(config, member.system, member.volume)
    else:
        seed = member.seed
        if member.arm == PRETRAIN:
            domain, noise, stream = config.big_box, config.synthetic_noise, "pretrain"
        elif member.arm == "oracle":
            domain, noise, stream = config.big_box, config.real_noise, "oracle"
        else:  # transfer and baseline share the real small-domain pairs of a seed
            domain, noise, stream = config.small_box, config.real_noise, "real"
            seed = config.real_pairs_seed(member.seed)
        x, y = _drawn_set(config.reference(member.system), config.system_params, domain, member.volume,
                          config.input_dimension, config.output_dimension, noise,
                          data.stream_seed(seed, stream))
    network = config.network
    return network.scale_inputs(x), network.scale_outputs(y)


def _design_set(config: StudyConfig, name: str, volume: int) -> tuple[np.ndarray, np.ndarray]:
    """A lab's first `volume` measured pairs (its installed design set): the real system's values
    plus the noise of each point's index (`design_sets.measurement_noise`), through tf.data."""
    x = design_sets.points(name)[:volume]
    if len(x) < volume:
        raise ValueError(f"design set {name} has {len(x)} points; its members train on {volume}")
    truth = np.asarray(system_function(config.reference(name), config.system_params)(x), np.float64)
    truth = truth.reshape(volume, config.output_dimension)
    y = truth + design_sets.measurement_noise(design_sets.parse(name).replicate, 0, volume, config.output_dimension,
                                              config.real_noise)
    return data.materialize(data.measurement_dataset(x, y))


@functools.lru_cache(maxsize=256)
def _drawn_set(reference: str, params, domain, volume: int, dimension: int, outputs: int, noise: float,
               seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A set drawn from a system (a tf.data pipeline, ~0.08 s), kept by this process read-only:
    every arm of a seed and volume trains on the same real pairs."""
    x, y = data.sample_set(system_function(reference, params), domain, volume, dimension, noise, seed,
                           num_outputs=outputs)
    for values in (x, y):
        values.setflags(write=False)
    return x, y


def shuffle_seed(member: Member) -> int:
    """The seed of the member's minibatch order (32 bits, as the engine's hash takes)."""
    strategy = strategy_of_arm(member.arm)
    stream = member.arm if strategy is None else strategy.shuffle_stream()
    # Experiment 4: one order per lab, whatever the method picked (its comparisons stay paired).
    lab = design_sets.parse(member.system)
    system = member.system if lab is None else f"{lab.system}@r{lab.replicate}"
    return data.stream_seed(member.seed, f"shuffle/{stream}/{system}", member.volume) & 0xFFFFFFFF


def init_seed(member: Member) -> int:
    """The seed of the fresh initialisation shared by every arm of `member.seed` (paired design)."""
    return data.stream_seed(member.seed, "init") & 0x7FFFFFFF


def initial_model(config: StudyConfig, member: Member) -> models.StartingWeights:
    """The fresh start of a member (its weights: what the stack loads)."""
    return models.initial_weights(config.network, seed=init_seed(member))


def prepare(config: StudyConfig, member: Member, pretrained: keras.Model | None) -> Prepared:
    """`member`'s starting network and training data (network units), as its arm wants them."""
    x, y = training_set(config, member)
    strategy = strategy_of_arm(member.arm)
    if strategy is None:
        return Prepared(initial_model(config, member), x, y)
    return strategy.prepare(config, x, y, pretrained, init_seed(member))


@dataclass
class TrainedStack:
    """The outcome of a stack job: the trained stacked model, its loss curves, its weights before
    and after training (before any choice a strategy makes after training: wise_ft's mix), per
    member what its strategy recorded of its choices, and the seconds all its training took (the
    stack's fit and a strategy's own fits: l2_sp's held-out runs, wise_ft's folds)."""

    job: StackJob
    stack: keras.Model
    log: TrainingLog
    trainer: StackTrainer
    network: NetworkSpec  # the stacked network (network units)
    start: list[np.ndarray]
    trained: list[np.ndarray]
    notes: list[dict]
    seconds: float


EvaluatedFn = Callable[[int, np.ndarray], None]  # (epoch, predictions [members, points, out])


def train_job(
    config: StudyConfig,
    job: StackJob,
    prepared: Sequence[Prepared],
    progress: ProgressFn | None = None,
    eval_inputs: np.ndarray | None = None,
    evaluated: EvaluatedFn | None = None,
) -> TrainedStack:
    """Train the members of `job` as one stack, each from its prepared start and data.

    With `evaluated`, every `config.evaluation_interval` epochs (the strategy's) the members predict
    `eval_inputs` [members, points, in] and `evaluated` gets the predictions (network units,
    offsets added).

    A lone member trains in two identical slots (slot 0 is its result): XLA turns a batched dot
    with one batch entry into a plain dot that sums in another order, so a member alone would
    differ in the last bits from the same member in any larger stack. With two or more slots a
    member's numbers do not depend on its stack, bit for bit (tests/test_engine.py).
    """
    started = time.perf_counter()
    copies = 2 if len(job.members) == 1 else 1
    members = list(job.members) * copies
    prepared = list(prepared) * copies
    strategy = strategy_of_arm(job.arm)
    network = (config.network if strategy is None else strategy.network(config)).in_network_units()
    stack = models.build_stack(network, len(members), name="stack")
    models.load_members(stack, [p.net for p in prepared])
    start = [np.array(v.numpy()) for v in stack.trainable_variables]
    regime = strategy.regime(config, len(members), start) if strategy else None
    shuffle_seeds = [shuffle_seed(member) for member in members]
    plan = StackPlan(prepared, [m.seed for m in members], shuffle_seeds, job.epochs, job.first_epoch)
    notes = [{} for _ in members]
    if strategy is not None:
        regime, notes = strategy.before_training(config, plan, regime)
    batch_size = strategy.batch_size(config, len(prepared[0].x)) if strategy else config.batch_size
    trainer = StackTrainer(stack, config.learning_rate, batch_size, regime)
    offsets = None
    if prepared[0].offset is not None and eval_inputs is not None:
        offsets = [strategy.offset(config, eval_inputs[0][:, :config.input_dimension])] * len(members)

    def evaluate(epoch: int, params: list) -> None:
        predictions = trainer.predict(params, np.concatenate([eval_inputs] * copies))
        if offsets is not None:
            predictions = predictions + np.stack(offsets)
        evaluated(epoch, predictions[: len(job.members)])

    log = trainer.fit(
        np.stack([p.x for p in prepared]), np.stack([p.y for p in prepared]), job.epochs,
        shuffle_seeds=shuffle_seeds, first_epoch=job.first_epoch, progress=progress,
        evaluate_every=strategy.evaluation_interval(config) if strategy else config.evaluation_interval,
        evaluate=evaluate if evaluated is not None and eval_inputs is not None else None,
    )
    trained = [np.array(v.numpy()) for v in stack.trainable_variables]
    if strategy is not None:
        after = strategy.after_training(config, plan, stack.trainable_variables, start)
        notes = [{**before, **later} for before, later in zip(notes, after)]
    return TrainedStack(job, stack, log, trainer, network, start, trained, notes, time.perf_counter() - started)


def stack_predictions(stack: keras.Model, x: np.ndarray) -> np.ndarray:
    """Every member's predictions for the same inputs x [points, in]: [members, points, out]."""
    members = int(stack.input_shape[1])
    tiled = np.repeat(np.asarray(x, np.float32)[:, None, :], members, axis=1)
    return np.transpose(np.asarray(stack(tiled, training=False)), (1, 0, 2))
