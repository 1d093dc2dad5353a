"""Domains, sampling and noise; training sets as arrays and as `tf.data` pipelines.

A training set is a fixed collection of (x, y) pairs: x uniform on a box domain, y the system's
output plus Gaussian noise. It is a pure function of (system, domain, size, noise, seed): x and
the noise come from two independent numpy PCG64 streams, so the first N pairs of a set of size M
> N are exactly the set of size N (volumes are nested, as when a lab measures more points).

Every training set enters through `tf.data`: `set_dataset` is the pipeline of a set drawn from a
system (built-in or a user's function, called on batches of rows inside the pipeline), and
`measurements.measurement_dataset` the pipeline of a lab's CSV rows. `materialize` reads such a
pipeline once into the arrays the stacked engine takes (one slice per member; the engine then
shuffles on the device). `make_dataset` streams a set as a shuffled, batched, prefetched dataset
for a plain `model.fit`.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import tensorflow as tf

from tlkeras.systems.domains import Domain
from tlkeras.systems.measurements import training_rows_of

__all__ = ["Domain", "evaluation_points", "make_dataset", "materialize", "sample_inputs", "sample_set",
           "sample_stream", "set_dataset", "stream_seed"]

MAP_BATCH = 8192  # rows per call of a system inside the tf.data pipeline


def stream_seed(seed: int, purpose: str, *extra: int) -> int:
    """A 63-bit seed for one named random stream of one run seed (independent across purposes)."""
    words = [int(seed)] + [ord(c) for c in purpose] + [int(e) for e in extra]
    return int(np.random.SeedSequence(words).generate_state(2, np.uint64)[0] >> np.uint64(1))


def sample_inputs(domain: Domain, size: int, dimension: int, seed: int) -> np.ndarray:
    """`size` points uniform on the box, float32 [size, dimension]."""
    rng = np.random.default_rng(stream_seed(seed, "inputs"))
    low, high = domain.bounds(dimension)
    return rng.uniform(low, high, size=(size, dimension)).astype(np.float32)


def set_dataset(
    system: Callable[[np.ndarray], np.ndarray],
    domain: Domain,
    size: int,
    dimension: int,
    num_outputs: int,
    noise_sigma: float,
    seed: int,
) -> tf.data.Dataset:
    """A training set as a `tf.data` pipeline of (x, y) rows: x uniform on `domain`, y =
    system(x) + N(0, noise_sigma^2) per output. `system` is numpy [n, d_in] float64 -> [n, d_out]
    (a built-in or a user's function), called inside the pipeline on batches of rows.
    """
    x = sample_inputs(domain, size, dimension, seed)
    rng = np.random.default_rng(stream_seed(seed, "noise"))
    noise = rng.standard_normal(size=(size, num_outputs)) if noise_sigma > 0 else np.zeros((size, num_outputs))

    def outputs(x_batch: np.ndarray) -> np.ndarray:
        try:
            return np.asarray(system(x_batch.astype(np.float64)), np.float64).reshape(len(x_batch), num_outputs)
        except Exception as error:  # kept, so that the reader gets it back whole (`materialize`)
            dataset.failures.append(error)
            raise

    def label(x_batch, noise_batch):
        y = tf.numpy_function(outputs, [x_batch], tf.float64, stateful=False)
        y = tf.ensure_shape(y, [None, num_outputs])
        return x_batch, tf.cast(y + noise_sigma * noise_batch, tf.float32)

    dataset = tf.data.Dataset.from_tensor_slices((x, noise)).batch(MAP_BATCH).map(label).unbatch()
    dataset.failures = []
    return dataset


def materialize(dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Read a finite (x, y) pipeline once into float32 arrays [n, d_in], [n, d_out]: the form the
    stacked engine takes (each member's set becomes one slice of its data tensor)."""
    xs, ys = [], []
    try:
        for x, y in dataset.batch(MAP_BATCH).as_numpy_iterator():
            xs.append(x)
            ys.append(y)
    except tf.errors.OpError:
        failures = getattr(dataset, "failures", [])
        if failures:  # the system's own error (one line), not TensorFlow's wrapping of it
            raise failures[0] from None
        raise
    if not xs:
        raise ValueError("an empty training set")
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.float32)


def sample_set(
    system: Callable[[Any], Any],
    domain: Domain,
    size: int,
    dimension: int,
    noise_sigma: float,
    seed: int,
    num_outputs: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A training set as arrays, through `set_dataset` (the one data path of every run)."""
    if num_outputs is None:
        num_outputs = dimension
    return materialize(set_dataset(system, domain, size, dimension, num_outputs, noise_sigma, seed))


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
        low, high = domain.bounds(dimension)
        unit = tf.random.stateless_uniform([batch_size, dimension], seed=key, dtype=tf.float32)
        x = tf.constant(low, tf.float32) + unit * tf.constant(high - low, tf.float32)
        y = tf.cast(system(tf.cast(x, tf.float64)), tf.float32)
        if noise_sigma > 0:
            noise_key = tf.stack([tf.constant(base ^ 0x5EED, tf.int64), index])
            y = y + noise_sigma * tf.random.stateless_normal(tf.shape(y), seed=noise_key)
        return x, y

    return tf.data.Dataset.counter().map(draw, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def training_rows(config, system: str) -> tuple[np.ndarray, np.ndarray]:
    """The rows a member of `system` trains on (all, or all but one fold), through tf.data."""
    _, x, y = training_rows_of(config, system)
    return materialize(measurement_dataset(x, y))


def measurement_dataset(x: np.ndarray, y: np.ndarray):
    """Measured (x, y) rows as a `tf.data` pipeline, the form every training set takes."""
    return tf.data.Dataset.from_tensor_slices((np.asarray(x, np.float64), np.asarray(y, np.float64)))
