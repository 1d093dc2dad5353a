"""Sampling and tf.data pipelines: domains, noise, reproducibility, nesting, streaming."""

import numpy as np
import tensorflow as tf

from tlkeras.nn import data
from tlkeras.systems.mechanistic import SystemParams, hill, synthetic

PARAMS = SystemParams()
BIG, SMALL = data.Domain(0.0, 20.0), data.Domain(0.0, 10.0)


def hill2(x):
    return hill(x, PARAMS, 2.0)


def test_inputs_lie_in_their_domain_and_cover_it():
    x, _ = data.sample_set(hill2, SMALL, 5000, 2, 1.0, seed=3)
    assert x.shape == (5000, 2) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 10.0
    assert x.min() < 0.1 and x.max() > 9.9  # uniform over the whole box, not a corner


def test_noise_has_the_configured_sigma_and_zero_mean():
    x, y = data.sample_set(hill2, BIG, 20000, 2, 1.0, seed=4)
    residual = y - hill2(x.astype(np.float64))
    assert abs(residual.std() - 1.0) < 0.02
    assert abs(residual.mean()) < 0.02
    x, y = data.sample_set(lambda v: synthetic(v, PARAMS), BIG, 1000, 2, 0.0, seed=4)
    np.testing.assert_allclose(y, synthetic(x.astype(np.float64), PARAMS), rtol=1e-6)


def test_sets_are_reproducible_from_the_seed_and_differ_across_seeds():
    a = data.sample_set(hill2, BIG, 300, 2, 1.0, seed=7)
    b = data.sample_set(hill2, BIG, 300, 2, 1.0, seed=7)
    c = data.sample_set(hill2, BIG, 300, 2, 1.0, seed=8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.allclose(a[0], c[0])


def test_volumes_are_nested():
    small = data.sample_set(hill2, SMALL, 50, 2, 1.0, seed=1)
    large = data.sample_set(hill2, SMALL, 5000, 2, 1.0, seed=1)
    np.testing.assert_array_equal(small[0], large[0][:50])
    np.testing.assert_array_equal(small[1], large[1][:50])


def test_stream_seeds_are_independent_per_purpose():
    assert data.stream_seed(0, "real") != data.stream_seed(0, "oracle")
    assert data.stream_seed(0, "real") != data.stream_seed(1, "real")
    assert data.stream_seed(0, "real") == data.stream_seed(0, "real")


def test_dataset_batches_shuffles_each_epoch_and_is_reproducible():
    x = np.arange(100, dtype=np.float32).reshape(50, 2)
    y = -x
    dataset = data.make_dataset(x, y, batch_size=32, shuffle_seed=5)
    epochs = [np.concatenate([bx.numpy() for bx, _ in dataset]) for _ in range(2)]
    sizes = [int(bx.shape[0]) for bx, _ in dataset]
    assert sizes == [32, 18]
    for epoch in epochs:  # every sample once per epoch, pairs kept together
        np.testing.assert_array_equal(np.sort(epoch[:, 0]), x[:, 0])
    assert not np.array_equal(epochs[0], x) and not np.array_equal(epochs[0], epochs[1])
    again = data.make_dataset(x, y, batch_size=32, shuffle_seed=5)
    np.testing.assert_array_equal(np.concatenate([bx.numpy() for bx, _ in again]), epochs[0])
    for bx, by in dataset:
        np.testing.assert_array_equal(by.numpy(), -bx.numpy())


def test_sample_stream_draws_fresh_noisy_batches_reproducibly():
    stream = data.sample_stream(hill2, BIG, 2, noise_sigma=0.5, seed=9, batch_size=64)
    first = [(bx.numpy(), by.numpy()) for bx, by in stream.take(3)]
    again = [(bx.numpy(), by.numpy()) for bx, by in data.sample_stream(
        hill2, BIG, 2, noise_sigma=0.5, seed=9, batch_size=64).take(3)]
    for (ax, ay), (bx, by) in zip(first, again):
        np.testing.assert_array_equal(ax, bx)
        np.testing.assert_array_equal(ay, by)
    assert not np.array_equal(first[0][0], first[1][0])  # every batch is new
    xs = np.concatenate([bx for bx, _ in first])
    ys = np.concatenate([by for _, by in first])
    assert xs.min() >= 0 and xs.max() <= 20
    residual = ys - hill2(xs.astype(np.float64))
    assert 0.35 < residual.std() < 0.65


def test_evaluation_points_are_fixed_by_their_seed():
    a = data.evaluation_points(BIG, 100, 2, eval_seed=11)
    np.testing.assert_array_equal(a, data.evaluation_points(BIG, 100, 2, eval_seed=11))
    assert not np.array_equal(a, data.evaluation_points(BIG, 100, 2, eval_seed=12))
    inside = SMALL.contains(a)
    assert 10 < inside.sum() < 45  # about a quarter of the big box
    assert tf.reduce_all(tf.constant(a) <= 20.0)


def test_real_data_seed_gives_every_seed_the_same_real_pairs_and_nothing_else():
    import pytest

    from tlkeras.core.config import StudyConfig
    from tlkeras.core.errors import ConfigError
    from tlkeras.core.members import Member
    from tlkeras.execution.training import training_set

    def pairs(config, arm, seed, volume=30):
        return training_set(config, Member(arm, "hill2" if arm != "pretrain" else "synthetic", volume, seed))

    own, shared = StudyConfig(), StudyConfig(real_data_seed=3)
    for arm in ("transfer", "baseline", "l2_sp"):
        assert not np.array_equal(pairs(own, arm, 0)[0], pairs(own, arm, 1)[0])  # each seed its own draw
        for seed in (0, 1, 7):
            for got, want in zip(pairs(shared, arm, seed), pairs(own, arm, 3)):
                np.testing.assert_array_equal(got, want)  # seed 3's pairs, whatever the member's seed
    for arm, volume in (("oracle", 40), ("pretrain", 40)):  # the big-domain sets stay per seed
        assert not np.array_equal(pairs(shared, arm, 0, volume)[0], pairs(shared, arm, 1, volume)[0])
        np.testing.assert_array_equal(pairs(shared, arm, 1, volume)[0], pairs(own, arm, 1, volume)[0])
    assert StudyConfig.from_json(shared.to_json()) == shared
    with pytest.raises(ConfigError, match=r"^real_data_seed=-1 .*whole number from 0"):
        StudyConfig(real_data_seed=-1).validate()
