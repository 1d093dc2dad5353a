"""Domains, sampling and noise; training sets as arrays and as `tf.data` pipelines.

A training set is a fixed collection of (x, y) pairs: x uniform on a box domain, y the system's
output plus Gaussian noise. It is a pure function of (system, domain, size, noise, seed): x and
the noise come from two independent numpy PCG64 streams, so the first N pairs of a set of size M
> N are exactly the set of size N (volumes are nested, as when a lab measures more points).

`make_dataset` streams a set as a shuffled, batched, prefetched `tf.data.Dataset` (the input of
a plain `model.fit`); the stacked engine takes the same arrays and shuffles them on the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import tensorflow as tf


@dataclass(frozen=True)
class Domain:
    """A box [low, high]^d of input concentrations (nM)."""

    low: float
    high: float

    def contains(self, x: np.ndarray) -> np.ndarray:
        """Boolean [...]: whether every coordinate of each point lies in the box."""
        return np.all((x >= self.low) & (x <= self.high), axis=-1)


def stream_seed(seed: int, purpose: str, *extra: int) -> int:
    """A 63-bit seed for one named random stream of one run seed (independent across purposes)."""
    words = [int(seed)] + [ord(c) for c in purpose] + [int(e) for e in extra]
    return int(np.random.SeedSequence(words).generate_state(2, np.uint64)[0] >> np.uint64(1))


def sample_inputs(domain: Domain, size: int, dimension: int, seed: int) -> np.ndarray:
    """`size` points uniform on the box, float32 [size, dimension]."""
    rng = np.random.default_rng(stream_seed(seed, "inputs"))
    return rng.uniform(domain.low, domain.high, size=(size, dimension)).astype(np.float32)


def sample_set(
    system: Callable[[Any], Any],
    domain: Domain,
    size: int,
    dimension: int,
    noise_sigma: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """A training set: x uniform on `domain`, y = system(x) + N(0, noise_sigma^2) per output."""
    x = sample_inputs(domain, size, dimension, seed)
    y = np.asarray(system(x.astype(np.float64)), np.float64)
    if noise_sigma > 0:
        rng = np.random.default_rng(stream_seed(seed, "noise"))
        y = y + noise_sigma * rng.standard_normal(size=y.shape)
    return x, y.astype(np.float32)


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    shuffle_seed: int | None,
) -> tf.data.Dataset:
    """Stream (x, y) in minibatches, reshuffled every epoch from `shuffle_seed` (None: in order)."""
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def evaluation_points(domain: Domain, size: int, dimension: int, eval_seed: int) -> np.ndarray:
    """The fixed evaluation inputs: `size` points uniform on `domain`, drawn from `eval_seed`."""
    return sample_inputs(domain, size, dimension, stream_seed(eval_seed, "evaluation"))


def sample_stream(
    system: Callable[[Any], Any],
    domain: Domain,
    dimension: int,
    noise_sigma: float,
    seed: int,
    batch_size: int,
) -> tf.data.Dataset:
    """An endless stream of fresh noisy batches (x uniform on `domain`), reproducible from
    `seed`: batch i is drawn from the stateless seed (seed, i), so it never depends on how much
    of the stream was read before. `system` must accept tf tensors (all of `tlkeras.systems` do).
    """
    base = stream_seed(seed, "stream") & 0x7FFFFFFF

    def draw(index):
        key = tf.stack([tf.constant(base, tf.int64), index])
        x = tf.random.stateless_uniform(
            [batch_size, dimension], seed=key, minval=domain.low, maxval=domain.high, dtype=tf.float32
        )
        y = tf.cast(system(tf.cast(x, tf.float64)), tf.float32)
        if noise_sigma > 0:
            noise_key = tf.stack([tf.constant(base ^ 0x5EED, tf.int64), index])
            y = y + noise_sigma * tf.random.stateless_normal(tf.shape(y), seed=noise_key)
        return x, y

    return tf.data.Dataset.counter().map(draw, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
