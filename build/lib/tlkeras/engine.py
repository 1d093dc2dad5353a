"""The training engine: many independent members, many epochs, one XLA computation per call.

A plain `model.fit` of a 5x10 MLP spends nearly all of its time in per-step overhead. Here a
stacked model (see `models.build_stack`) trains K members at once, and a whole chunk of epochs
(shuffle, every minibatch step, forward, backward, Adam) runs inside one `tf.function` compiled
with XLA. The weights and Adam moments are carried through the loop as tensors (Keras'
`stateless_call`) and written back to the model's variables once per call.

Each member is exactly an independent model:
- its own data (slice k of the data tensors) and its own shuffle order (`epoch_order`, a function
  of its shuffle seed and the epoch only, never of K or of its slot);
- its own loss term: the stacked loss is the *sum* of the members' mean-squared errors, so the
  gradient reaching member k's weights is that member's own gradient;
- Adam is elementwise, with Keras' exact update rule (epsilon 1e-7 and bias correction folded
  into the step size), so the update of member k depends on member k alone.
Minibatches are taken in order from the member's epoch permutation, batch_size at a time; the
last one may be smaller (masked), as in `model.fit` on a batched `tf.data` pipeline.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

ADAM_BETA_1 = 0.9
ADAM_BETA_2 = 0.999
ADAM_EPSILON = 1e-7  # keras.optimizers.Adam's default


def _mix32(h: tf.Tensor) -> tf.Tensor:
    """The murmur3 finalizer on uint32: a cheap, well-spread integer hash."""
    h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 16))
    h = h * tf.constant(0x85EBCA6B, tf.uint32)
    h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 13))
    h = h * tf.constant(0xC2B2AE35, tf.uint32)
    return tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 16))


def epoch_order(shuffle_seeds: tf.Tensor, epoch: tf.Tensor, size: int) -> tf.Tensor:
    """The order in which each member visits its `size` samples in `epoch`: int32 [K, size].

    Row k depends only on shuffle_seeds[k] and epoch, so a member sees the same order whether it
    trains alone or in any slot of any stack.
    """
    seeds = tf.cast(tf.reshape(shuffle_seeds, [-1, 1]), tf.uint32)
    epoch = tf.cast(epoch, tf.uint32)
    index = tf.cast(tf.range(size), tf.uint32)[tf.newaxis, :]
    key = _mix32(_mix32(seeds * tf.constant(0x9E3779B9, tf.uint32) + epoch) + index)
    key = _mix32(key ^ (epoch * tf.constant(0x27D4EB2F, tf.uint32)))
    return tf.argsort(key, axis=1, stable=True, direction="ASCENDING")


@dataclass
class TrainingLog:
    """Per-epoch mean training loss of every member, epochs x members."""

    losses: np.ndarray
    seconds: float


ProgressFn = Callable[[int, int, float], None]  # (epochs done, epochs total, seconds elapsed)


class StackTrainer:
    """Trains every member of a stacked model on its own data with Adam and MSE.

    The trainer owns the Adam state, so successive `fit` calls continue one optimisation (as
    successive `model.fit` calls on one compiled model do). A new trainer is a fresh optimizer.
    """

    def __init__(self, stack: keras.Model, learning_rate: float, batch_size: int):
        self.stack = stack
        self.learning_rate = float(learning_rate)
        self.batch_size = int(batch_size)
        self._variables = list(stack.trainable_variables)
        self._moments = [
            (np.zeros(v.shape, np.float32), np.zeros(v.shape, np.float32)) for v in self._variables
        ]
        self.steps_taken = 0
        self._compiled: dict[tuple, Callable] = {}

    @property
    def members(self) -> int:
        return int(self._variables[0].shape[0])

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        epochs: int,
        shuffle_seeds: Sequence[int],
        first_epoch: int = 0,
        epochs_per_call: int | None = None,
        progress: ProgressFn | None = None,
    ) -> TrainingLog:
        """Train for `epochs` passes over x [K, n, in], y [K, n, out]; epoch numbers start at
        `first_epoch` (they seed the shuffle). Returns the per-epoch mean loss of each member."""
        x = np.asarray(x, np.float32)
        y = np.asarray(y, np.float32)
        members, size = x.shape[0], x.shape[1]
        if members != self.members or y.shape[:2] != x.shape[:2]:
            raise ValueError(f"data for {members} members of {size} samples; stack has {self.members}")
        if len(shuffle_seeds) != members:
            raise ValueError(f"{len(shuffle_seeds)} shuffle seeds for {members} members")
        if size < 1:
            raise ValueError("a member needs at least one training sample")
        steps = math.ceil(size / self.batch_size)
        if epochs_per_call is None:
            # Aim at a few seconds per call: long enough to hide the call overhead, short enough
            # for progress reports. ~0.3 ms per step is what this engine does on a small CPU.
            epochs_per_call = max(1, min(epochs, int(4000 // steps)))
        run = self._compiled_run(members, size, epochs_per_call)
        x_t, y_t = tf.constant(x), tf.constant(y)
        seeds_t = tf.constant(np.asarray(shuffle_seeds, np.int64) & 0xFFFFFFFF, tf.int64)
        params = [tf.identity(v.value) for v in self._variables]
        moments = [tf.constant(m) for pair in self._moments for m in pair]
        losses = []
        start = time.perf_counter()
        done = 0
        while done < epochs:
            chunk = min(epochs_per_call, epochs - done)
            params, moments, chunk_losses = run(
                x_t, y_t, seeds_t, params, moments,
                tf.constant(first_epoch + done, tf.int32),
                tf.constant(chunk, tf.int32),
                tf.constant(self.steps_taken, tf.int64),
            )
            losses.append(chunk_losses.numpy()[:chunk])
            done += chunk
            self.steps_taken += chunk * steps
            if progress is not None:
                progress(done, epochs, time.perf_counter() - start)
        for variable, value in zip(self._variables, params):
            variable.assign(value)
        moments = [m.numpy() for m in moments]
        self._moments = list(zip(moments[0::2], moments[1::2]))
        log = np.concatenate(losses, axis=0) if losses else np.zeros((0, members), np.float32)
        return TrainingLog(losses=log, seconds=time.perf_counter() - start)

    def _compiled_run(self, members: int, size: int, max_epochs: int) -> Callable:
        key = (members, size, max_epochs)
        if key not in self._compiled:
            self._compiled[key] = self._make_run(members, size, max_epochs)
        return self._compiled[key]

    def _make_run(self, members: int, size: int, max_epochs: int) -> Callable:
        stack = self.stack
        batch = self.batch_size
        steps = math.ceil(size / batch)
        padded = steps * batch
        learning_rate = self.learning_rate
        # Samples past the end of the last (short) batch are padding: weight 0.
        mask = np.zeros((steps, batch), np.float32)
        mask.reshape(-1)[:size] = 1.0
        batch_counts = mask.sum(axis=1)
        sample_weight = tf.constant(mask / batch_counts[:, None])  # [steps, batch]

        def member_losses(params, xb, yb, weight):
            predictions, _ = stack.stateless_call(params, [], xb, training=True)
            squared = tf.reduce_mean(tf.square(predictions - yb), axis=-1)  # [batch, K]
            return tf.reduce_sum(squared * weight[:, tf.newaxis], axis=0)  # [K]

        @tf.function(jit_compile=True, reduce_retracing=True)
        def run(x, y, seeds, params, moments, first_epoch, num_epochs, step0):
            def epoch_body(epoch_index, params, moments, step, losses):
                order = epoch_order(seeds, first_epoch + epoch_index, size)  # [K, n]
                order = tf.pad(order, [[0, 0], [0, padded - size]])
                xs = tf.gather(x, order, batch_dims=1)  # [K, padded, in]
                ys = tf.gather(y, order, batch_dims=1)
                xs = tf.transpose(tf.reshape(xs, [members, steps, batch, -1]), [1, 2, 0, 3])
                ys = tf.transpose(tf.reshape(ys, [members, steps, batch, -1]), [1, 2, 0, 3])

                batch_counts_t = tf.constant(batch_counts)

                def step_body(s, params, moments, step, loss_sum):
                    weight = sample_weight[s]
                    with tf.GradientTape() as tape:
                        tape.watch(params)
                        per_member = member_losses(params, xs[s], ys[s], weight)
                        total = tf.reduce_sum(per_member)
                    grads = tape.gradient(total, params)
                    step = step + 1
                    t = tf.cast(step, tf.float32)
                    alpha = learning_rate * tf.sqrt(1.0 - ADAM_BETA_2**t) / (1.0 - ADAM_BETA_1**t)
                    new_params, new_moments = [], []
                    for i, (p, g) in enumerate(zip(params, grads)):
                        m, v = moments[2 * i], moments[2 * i + 1]
                        m = m + (g - m) * (1.0 - ADAM_BETA_1)
                        v = v + (tf.square(g) - v) * (1.0 - ADAM_BETA_2)
                        new_params.append(p - (m * alpha) / (tf.sqrt(v) + ADAM_EPSILON))
                        new_moments += [m, v]
                    return s + 1, new_params, new_moments, step, loss_sum + per_member * batch_counts_t[s]

                _, params, moments, step, loss_sum = tf.while_loop(
                    lambda s, *_: s < steps,
                    step_body,
                    (tf.constant(0), params, moments, step, tf.zeros([members])),
                )
                losses = tf.tensor_scatter_nd_update(
                    losses, [[epoch_index]], [loss_sum / float(size)]
                )
                return epoch_index + 1, params, moments, step, losses

            # XLA wants static shapes: the loss buffer holds the largest chunk this run takes.
            losses = tf.zeros([max_epochs, members])
            _, params, moments, _, losses = tf.while_loop(
                lambda e, *_: e < num_epochs,
                epoch_body,
                (tf.constant(0), params, moments, step0, losses),
            )
            return params, moments, losses

        return run
