"""The training engine: many independent members, many epochs, one XLA computation per call.

A plain `model.fit` of a 5x10 MLP spends nearly all of its time in per-step overhead. Here a
stacked model (see `models.build_stack`) trains K members at once, and a whole chunk of epochs
(shuffle, every minibatch step, forward, backward, Adam) runs inside one `tf.function` compiled
with XLA. The weights and Adam moments are carried through the loop as tensors (Keras'
`stateless_call`) and written back to the model's variables once per call.

Each member is exactly an independent model:
- its own data (slice k of the data tensors) and its own shuffle order (`epoch_orders`, a function
  of its shuffle seed and the epoch only, never of K or of its slot);
- its own loss term: the stacked loss is the *sum* of the members' mean-squared errors, so the
  gradient reaching member k's weights is that member's own gradient;
- Adam is elementwise, with Keras' exact update rule (epsilon 1e-7 and bias correction folded
  into the step size), so the update of member k depends on member k alone;
- what transfer strategies need is per member too (`Regime`): its own learning rate, its own
  frozen layers (a 0/1 factor on its update), and its own pull towards an anchor (L2-SP:
  alpha_k/2 * ||w_k - anchor_k||^2 added to its loss).
Keras' `optimizer.stateless_apply` would replace the hand-written Adam but takes one learning
rate for all variables; per-member rates and frozen slices need the update written out.
Minibatches are taken in order from the member's epoch permutation, batch_size at a time; the
last one may be smaller (masked), as in `model.fit` on a batched `tf.data` pipeline.
"""

from __future__ import annotations

import collections
import json
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


def adam_update(param: tf.Tensor, grad: tf.Tensor, m: tf.Tensor, v: tf.Tensor, step_size: tf.Tensor,
                mask: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """One Adam step of one (stacked) variable: Keras' rule, `keras.optimizers.Adam.update_step`.

        m <- m + (g - m)(1 - beta_1)        v <- v + (g^2 - v)(1 - beta_2)
        param <- param - m * step_size / (sqrt(v) + epsilon)

    with step_size = rate * sqrt(1 - beta_2^t) / (1 - beta_1^t) per member (bias correction folded
    into the rate, as Keras folds it), broadcastable against `param`; `mask` (0 or 1 per member)
    freezes members' layers. The same operations in the same order as Keras, so a member trained
    here equals one trained by `model.fit` with Adam to float32 rounding (tests/test_engine.py).
    Returns (param, m, v).
    """
    m = m + (grad - m) * (1.0 - ADAM_BETA_1)
    v = v + (tf.square(grad) - v) * (1.0 - ADAM_BETA_2)
    update = (m * step_size) / (tf.sqrt(v) + ADAM_EPSILON)
    if mask is not None:
        update = update * mask
    return param - update, m, v


def _mix32(h: np.ndarray) -> np.ndarray:
    """The murmur3 finalizer on uint32 (wrapping arithmetic): a cheap, well-spread integer hash."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def epoch_orders(shuffle_seeds: Sequence[int], epochs: Sequence[int], size: int) -> np.ndarray:
    """The order in which each member visits its `size` samples in each of `epochs`: int32
    [epochs, K, size], a stable argsort of hashed keys.

    Row k of an epoch depends only on shuffle_seeds[k] and the epoch number, so a member sees the
    same order whether it trains alone or in any slot of any stack. Computed on the host with
    NumPy before each call of the program: XLA's CPU sort (a comparator called per comparison)
    took about a quarter of a pretraining step; NumPy sorts the same keys in a tenth of its
    time. Equal keys keep index order, the order `tf.argsort(..., stable=True)` of the same keys
    gave before 2026-12-03.
    """
    seeds = (np.asarray(shuffle_seeds, np.int64) & 0xFFFFFFFF).astype(np.uint32).reshape(1, -1, 1)
    epochs = (np.asarray(epochs, np.int64) & 0xFFFFFFFF).astype(np.uint32).reshape(-1, 1, 1)
    index = np.arange(size, dtype=np.uint32).reshape(1, 1, -1)
    with np.errstate(over="ignore"):
        key = _mix32(_mix32(seeds * np.uint32(0x9E3779B9) + epochs) + index)
        key = _mix32(key ^ (epochs * np.uint32(0x27D4EB2F)))
    return stable_argsort32(key)


def stable_argsort32(keys: np.ndarray) -> np.ndarray:
    """`np.argsort(keys, axis=-1, kind="stable")` of uint32 keys, as int32, in half the time: two
    stable passes over the 16-bit halves, low then high (a radix sort; NumPy's stable argsort of
    uint16 is one). 4.5 ms instead of 8.7 for an epoch of the pretraining stack (5 x 40,000)."""
    by_low = np.argsort((keys & np.uint32(0xFFFF)).astype(np.uint16), axis=-1, kind="stable")
    high = np.take_along_axis((keys >> np.uint32(16)).astype(np.uint16), by_low, axis=-1)
    return np.take_along_axis(by_low, np.argsort(high, axis=-1, kind="stable"), axis=-1).astype(np.int32)


@dataclass
class Regime:
    """How each member trains, beyond its data: one entry per member (see StackTrainer).

    learning_rates: Adam's rate per member. frozen: per member, the names of the stacked layers
    it does not update. anchor_alpha: per member, the L2-SP weight towards `anchor` (the
    starting weights, per variable, [members, ...]); 0 for none. anchored_variables: which
    variables the pull acts on (multi_fidelity: the nonlinear branch's kernels only).
    """

    learning_rates: Sequence[float]
    frozen: Sequence[frozenset[str]] = ()
    anchor_alpha: Sequence[float] = ()
    anchor: Sequence[np.ndarray] | None = None
    # The variables the pull acts on, as 'layer/kernel' or 'layer/bias' (every member alike);
    # None: all of them. With a zero anchor it is plain L2 weight decay on those variables.
    anchored_variables: frozenset[str] | None = None

    @staticmethod
    def uniform(members: int, learning_rate: float) -> "Regime":
        return Regime([float(learning_rate)] * members)


@dataclass
class TrainingLog:
    """Per-epoch mean training loss of every member, epochs x members."""

    losses: np.ndarray
    seconds: float


ProgressFn = Callable[[int, int, float], None]  # (epochs done, epochs total, seconds elapsed)
# (epoch reached, the stack's weights then): called every `evaluate_every` epochs inside `fit`
EvaluateFn = Callable[[int, list], None]


class StackTrainer:
    """Trains every member of a stacked model on its own data with Adam and MSE.

    The trainer owns the Adam state, so successive `fit` calls continue one optimisation (as
    successive `model.fit` calls on one compiled model do). A new trainer is a fresh optimizer.
    """

    def __init__(self, stack: keras.Model, learning_rate: float, batch_size: int, regime: Regime | None = None):
        self.stack = stack
        self.batch_size = int(batch_size)
        self._variables = list(stack.trainable_variables)
        members = int(self._variables[0].shape[0])
        self.regime = regime or Regime.uniform(members, learning_rate)
        self._learning_rates = self._per_member("learning_rates", self.regime.learning_rates, members)
        # A regime with an anchor or frozen layers trains through the one program that has both
        # terms (a pull of alpha = 0, a mask of ones where none is asked for: the same numbers,
        # bit for bit, as without the term), so that every fine-tuning strategy at a volume
        # shares one compiled program; a regime with neither keeps the plain program.
        self._regime_terms = self.regime.anchor is not None or any(self.regime.frozen)
        if any(a != 0 for a in self.regime.anchor_alpha) and self.regime.anchor is None:
            raise ValueError("anchor_alpha without an anchor")
        self._anchored = None  # indices of the variables the pull acts on; None: all
        if self.regime.anchored_variables is not None:
            names = [_variable_name(v) for v in self._variables]
            unknown = set(self.regime.anchored_variables) - set(names)
            if unknown or not self.regime.anchored_variables:
                raise ValueError(f"anchored variables {sorted(unknown)} are not in the stack ({names})")
            self._anchored = tuple(i for i, name in enumerate(names) if name in self.regime.anchored_variables)
        if self._regime_terms:
            alpha = self.regime.anchor_alpha or [0.0] * members
            self._anchor_alpha = self._per_member("anchor_alpha", alpha, members)
            if self.regime.anchor is None:
                self._anchor = [np.zeros(v.shape, np.float32) for v in self._variables]
            else:
                self._anchor = [np.asarray(a, np.float32) for a in self.regime.anchor]
            if [a.shape for a in self._anchor] != [tuple(v.shape) for v in self._variables]:
                raise ValueError("the anchor's shapes differ from the stack's variables")
            frozen = self.regime.frozen or [frozenset()] * members
            if len(frozen) != members:
                raise ValueError(f"frozen layers for {len(frozen)} members; stack has {members}")
            layer_names = [_layer_of(v) for v in self._variables]
            unknown = set().union(*frozen) - set(layer_names)
            if unknown:
                raise ValueError(f"frozen layers {sorted(unknown)} are not in the stack ({sorted(set(layer_names))})")
            self._masks = [np.asarray([0.0 if name in f else 1.0 for f in frozen], np.float32)
                           for name in layer_names]
        self._moments = [
            (np.zeros(v.shape, np.float32), np.zeros(v.shape, np.float32)) for v in self._variables
        ]
        self.steps_taken = 0
        self._predict: Callable | None = None

    @property
    def members(self) -> int:
        return int(self._variables[0].shape[0])

    @staticmethod
    def _per_member(name: str, values: Sequence[float], members: int) -> np.ndarray:
        values = np.asarray(values, np.float32)
        if values.shape != (members,):
            raise ValueError(f"{name}: {values.size} values for {members} members")
        return values

    def predict(self, params: list, x: np.ndarray) -> np.ndarray:
        """Every member's predictions with the weights `params` (as an `EvaluateFn` receives
        them), for the same x [points, in] or each its own x [members, points, in]:
        [members, points, out]."""
        x = np.asarray(x, np.float32)
        if x.ndim == 2:
            stacked = np.repeat(x[:, None, :], self.members, axis=1)
        else:
            stacked = np.transpose(x, (1, 0, 2))
        if self._predict is None:  # compiled once: an eager call costs more than a short chunk
            stack = self.stack

            def make_forward():
                @tf.function(jit_compile=True, reduce_retracing=True)
                def forward(params, inputs):
                    outputs, _ = stack.stateless_call(params, [], inputs, training=False)
                    return tf.transpose(outputs, [1, 0, 2])

                return forward

            self._predict = _shared(("predict", architecture(stack)), make_forward)
        return self._predict(list(params), tf.constant(stacked)).numpy()

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        epochs: int,
        shuffle_seeds: Sequence[int],
        first_epoch: int = 0,
        epochs_per_call: int | None = None,
        progress: ProgressFn | None = None,
        evaluate_every: int = 0,
        evaluate: EvaluateFn | None = None,
    ) -> TrainingLog:
        """Train for `epochs` passes over x [K, n, in], y [K, n, out]; epoch numbers start at
        `first_epoch` (they seed the shuffle). Returns the per-epoch mean loss of each member
        (the data term: an L2-SP pull is not in it).

        With `evaluate`, calls it with the weights after every `evaluate_every` epochs of this
        fit and after the last (chunks end there; the numbers do not depend on where they end).
        """
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
        if evaluate is not None and evaluate_every > 0:
            epochs_per_call = min(epochs_per_call, evaluate_every)
        samples, step_slots = _bucket(size, SAMPLE_BUCKET), _bucket(epochs_per_call * steps, STEP_BUCKET)
        run = self._compiled_run(members, samples, step_slots)
        x_t, y_t = tf.constant(_padded(x, samples)), tf.constant(_padded(y, samples))
        params = [tf.identity(v.value) for v in self._variables]
        moments = [tf.constant(m) for pair in self._moments for m in pair]
        rates = tf.constant(self._learning_rates)
        extras = []
        if self._regime_terms:
            extras += [tf.constant(self._anchor_alpha), [tf.constant(a) for a in self._anchor],
                       [tf.constant(m) for m in self._masks]]
        losses = []
        start = time.perf_counter()
        done = 0
        while done < epochs:
            chunk = min(epochs_per_call, epochs - done)
            if evaluate is not None and evaluate_every > 0:
                chunk = min(chunk, evaluate_every - done % evaluate_every)
            params, moments, chunk_losses = run(
                x_t, y_t, self._orders(shuffle_seeds, first_epoch + done, chunk, size, step_slots),
                params, moments,
                tf.constant(chunk, tf.int32), tf.constant(size, tf.int32),
                tf.constant(self.steps_taken, tf.int64),
                rates, *extras,
            )
            losses.append(chunk_losses.numpy()[:chunk])
            done += chunk
            self.steps_taken += chunk * steps
            if evaluate is not None and (done == epochs or (evaluate_every > 0 and done % evaluate_every == 0)):
                evaluate(first_epoch + done, params)
            if progress is not None:
                progress(done, epochs, time.perf_counter() - start)
        for variable, value in zip(self._variables, params):
            variable.assign(value)
        moments = [m.numpy() for m in moments]
        self._moments = list(zip(moments[0::2], moments[1::2]))
        log = np.concatenate(losses, axis=0) if losses else np.zeros((0, members), np.float32)
        return TrainingLog(losses=log, seconds=time.perf_counter() - start)

    def _orders(self, shuffle_seeds: Sequence[int], first_epoch: int, epochs: int, size: int,
                step_slots: int) -> tf.Tensor:
        """Every step's minibatch of every member for `epochs` epochs from `first_epoch`, as the
        program reads them: flat int32 [step_slots * K * batch], step after step, each step's
        [K, batch] sample indices (the last batch of an epoch padded with index 0, weight 0; the
        slots past the chunk unused). One batch of exactly every sample takes them in the order
        given, no shuffle (see `_whole_set_per_step`)."""
        members, batch = len(shuffle_seeds), self.batch_size
        steps = math.ceil(size / batch)
        if _whole_set_per_step(size, batch):
            orders = np.broadcast_to(np.arange(size, dtype=np.int32), (epochs, members, size))
        else:
            orders = epoch_orders(shuffle_seeds, range(first_epoch, first_epoch + epochs), size)
        flat = np.zeros(step_slots * members * batch, np.int32)
        chunk = flat[: epochs * steps * members * batch].reshape(epochs, steps, members, batch)
        padded = np.zeros((epochs, members, steps * batch), np.int32)
        padded[..., :size] = orders
        chunk[...] = padded.reshape(epochs, members, steps, batch).transpose(0, 2, 1, 3)
        return tf.constant(flat)

    def _compiled_run(self, members: int, samples: int, step_slots: int) -> Callable:
        key = (architecture(self.stack), self.batch_size, members, samples, step_slots, self._regime_terms,
               self._anchored)
        return _shared(key, lambda: self._make_run(members, step_slots, self._regime_terms, self._anchored))

    def _make_run(self, members: int, step_slots: int, regime_terms: bool,
                  anchored_indices: tuple[int, ...] | None = None) -> Callable:
        """The program: `run(x, y, orders, params, moments, epochs, size, step0, rates, *extras)`
        trains `epochs` epochs over the first `size` samples of x, y
        [K, samples, features] (padded to a bucket: see `SAMPLE_BUCKET`), the minibatches as
        `_orders` lays them out. The data size is an argument, not a shape: one program serves
        every set of a bucket."""
        stack = self.stack
        batch = self.batch_size
        block = members * batch

        def member_losses(params, xb, yb, weight):
            predictions, _ = stack.stateless_call(params, [], xb, training=True)
            squared = tf.reduce_mean(tf.square(predictions - yb), axis=-1)  # [batch, K]
            return tf.reduce_sum(squared * weight[:, tf.newaxis], axis=0)  # [K]

        def per_member(values, like):  # [K] -> broadcastable against a [K, ...] variable
            return tf.reshape(values, [-1] + [1] * (len(like.shape) - 1))

        def anchor_pull(params, alpha, anchor):  # alpha_k / 2 * ||w_k - anchor_k||^2: [K]
            pairs = list(zip(params, anchor))
            if anchored_indices is not None:
                pairs = [pairs[i] for i in anchored_indices]
            squares = [tf.reduce_sum(tf.reshape(tf.square(p - a), [members, -1]), axis=1)
                       for p, a in pairs]
            return 0.5 * alpha * tf.add_n(squares)

        @tf.function(jit_compile=True, reduce_retracing=True)
        def run(x, y, orders, params, moments, num_epochs, size, step0, rates, *extras):
            alpha, anchor, masks = extras if regime_terms else (None, None, None)
            steps = (size + batch - 1) // batch
            positions = tf.range(batch)

            def minibatch(values, indices):  # [K, samples, f] at [K, batch] -> [batch, K, f]
                return tf.transpose(tf.gather(values, indices, batch_dims=1), [1, 0, 2])

            def epoch_body(epoch_index, cursor, params, moments, step, losses):
                def step_body(s, cursor, params, moments, step, loss_sum):
                    # The cursor walks the orders a step at a time (an offset computed from the step
                    # count made TensorFlow compile a program per step count).
                    indices = tf.reshape(tf.slice(orders, tf.reshape(cursor, [1]), [block]), [members, batch])
                    # The last batch of an epoch may be short: its samples weigh 1/count, padding 0.
                    count = tf.minimum(batch, size - s * batch)
                    count_f = tf.cast(count, tf.float32)
                    weight = tf.where(positions < count, 1.0 / count_f, 0.0)
                    with tf.GradientTape() as tape:
                        tape.watch(params)
                        data_loss = member_losses(params, minibatch(x, indices), minibatch(y, indices), weight)
                        total = tf.reduce_sum(data_loss)
                        if regime_terms:
                            total = total + tf.reduce_sum(anchor_pull(params, alpha, anchor))
                    grads = tape.gradient(total, params)
                    step = step + 1
                    t = tf.cast(step, tf.float32)
                    step_sizes = rates * tf.sqrt(1.0 - ADAM_BETA_2**t) / (1.0 - ADAM_BETA_1**t)  # [K]
                    new_params, new_moments = [], []
                    for i, (p, g) in enumerate(zip(params, grads)):
                        mask = per_member(masks[i], p) if regime_terms else None
                        p, m, v = adam_update(p, g, moments[2 * i], moments[2 * i + 1],
                                              per_member(step_sizes, p), mask)
                        new_params.append(p)
                        new_moments += [m, v]
                    return s + 1, cursor + block, new_params, new_moments, step, loss_sum + data_loss * count_f

                _, cursor, params, moments, step, loss_sum = tf.while_loop(
                    lambda s, *_: s < steps,
                    step_body,
                    (tf.constant(0), cursor, params, moments, step, tf.zeros([members])),
                )
                # The epoch's mean loss: as before 2026-12-03 to float32 rounding (then XLA divided
                # by a constant size and fused the sums otherwise; the weights are bit for bit the same).
                losses = tf.tensor_scatter_nd_update(
                    losses, [[epoch_index]], [loss_sum / tf.cast(size, tf.float32)]
                )
                return epoch_index + 1, cursor, params, moments, step, losses

            # XLA wants static shapes: the loss buffer has a row for every step slot (an epoch
            # takes at least one), the chunk's epochs fill the first rows.
            losses = tf.zeros([step_slots, members])
            _, _, params, moments, _, losses = tf.while_loop(
                lambda e, *_: e < num_epochs,
                epoch_body,
                (tf.constant(0), tf.constant(0), params, moments, step0, losses),
            )
            return params, moments, losses

        return run


# Compiled programs shared by every trainer of this process. A program depends on the stack's
# architecture, the batch size, the stack's size, the data's bucket (SAMPLE_BUCKET) and which
# regime terms it has, never on the weights, rates, masks, anchors or the data size within the
# bucket (its arguments), so the jobs of a sweep that agree on those (every fine-tuning strategy
# at every volume, the baselines) trace and compile it once: about 1.7 s, more than a short
# fine-tuning's training.
_PROGRAMS: "collections.OrderedDict[tuple, Callable]" = collections.OrderedDict()
SHARED_PROGRAMS = 64  # the least recently used beyond these are dropped


def _shared(key: tuple, make: Callable[[], Callable]) -> Callable:
    if key in _PROGRAMS:
        _PROGRAMS.move_to_end(key)
    else:
        _PROGRAMS[key] = make()
        while len(_PROGRAMS) > SHARED_PROGRAMS:
            _PROGRAMS.popitem(last=False)
    return _PROGRAMS[key]


# A program's shapes are buckets, not sizes: the data padded to the next power of two of at least
# SAMPLE_BUCKET samples, the chunk's steps to one of at least STEP_BUCKET slots. A step reads its
# minibatch by index, so the padding costs memory (a few MB), not time, and every set of up to
# SAMPLE_BUCKET samples (every real-data volume of the study, every round of Experiment 4) trains
# through one program: a new size costs no tracing and compiling (~1.7 s a program and process).
SAMPLE_BUCKET = 8192
STEP_BUCKET = 4096


def _bucket(count: int, floor: int) -> int:
    """The smallest power of two at least `count` and `floor`."""
    return max(floor, 1 << max(0, count - 1).bit_length())


def _padded(values: np.ndarray, samples: int) -> np.ndarray:
    """[K, n, f] -> [K, samples, f], zeros after the n rows."""
    out = np.zeros((values.shape[0], samples, values.shape[2]), np.float32)
    out[:, : values.shape[1]] = values
    return out


def _whole_set_per_step(size: int, batch: int) -> bool:
    """One batch of exactly every sample (multi_fidelity's full batch, or any set whose size
    equals the batch size): trained in the order given, no shuffle. The shuffle would only reorder
    a sum, at a cost (a sort of n keys per member: at n = 5000 it was most of a step). A padded
    single batch still shuffles, as it always has. Runs made before 2026-11-26 with such a set
    trained in shuffled order: same training, other rounding."""
    return size == batch


def architecture(stack: keras.Model) -> str:
    """What a compiled program of `stack` depends on: its layers and their configuration (two
    stacks with equal architectures compute the same function of the weights they are given)."""
    return json.dumps(stack.get_config(), sort_keys=True, default=repr)


def _variable_name(variable) -> str:
    """'layer/kernel' of a stacked variable (its path's last two parts)."""
    return "/".join(variable.path.split("/")[-2:])


def _layer_of(variable) -> str:
    """The name of the layer a stacked variable belongs to ('hidden_0/kernel' -> 'hidden_0')."""
    return variable.path.split("/")[-2]
