"""The mechanistic models: formulas, the n = 1 identity, phosphorylation at zero, batching."""

import numpy as np
import pytest
import tensorflow as tf

from tlkeras.systems.mechanistic import (
    SystemParams,
    SystemSpec,
    hill,
    make_system,
    phosphorylation,
    synthetic,
)

PARAMS = SystemParams()
GRID = np.stack(np.meshgrid(np.linspace(0, 20, 41), np.linspace(0, 20, 41)), -1).reshape(-1, 2)


def test_hill_order_one_equals_synthetic_exactly():
    np.testing.assert_array_equal(hill(GRID, PARAMS, 1.0), synthetic(GRID, PARAMS))
    as_tensor = tf.constant(GRID, tf.float32)
    np.testing.assert_array_equal(hill(as_tensor, PARAMS, 1.0).numpy(), synthetic(as_tensor, PARAMS).numpy())


def test_formulas_at_hand_computed_points():
    # x1 = 2 nM: theta1 x1 = 1. Synthetic: y1 = 20 * 1 / (1 + 1) = 10, y2 = 0.
    np.testing.assert_allclose(synthetic(np.array([[2.0, 0.0]]), PARAMS), [[10.0, 0.0]])
    # Hill n = 2 at x = (4, 0): (theta1 x1)^2 = 4 -> y1 = 20 * 4 / 5 = 16.
    np.testing.assert_allclose(hill(np.array([[4.0, 0.0]]), PARAMS, 2.0), [[16.0, 0.0]])
    # Phosphorylation at x = (2, 10/3): theta x = (1, 1) -> y = y_tot / 2 each.
    np.testing.assert_allclose(phosphorylation(np.array([[2.0, 10 / 3]]), PARAMS), [[10.0, 10.0]], rtol=1e-6)


def test_hill_order_changes_the_surface():
    assert np.abs(hill(GRID, PARAMS, 3.0) - hill(GRID, PARAMS, 1.0)).max() > 1.0


def test_phosphorylation_is_finite_everywhere_and_conserves_total():
    points = np.concatenate([GRID, [[0.0, 0.0], [1e-30, 0.0], [0.0, 1e-30]]])
    for values in (phosphorylation(points, PARAMS), phosphorylation(tf.constant(points), PARAMS).numpy()):
        assert np.all(np.isfinite(values))
        np.testing.assert_allclose(values.sum(-1), PARAMS.y_tot, rtol=1e-6)
    np.testing.assert_allclose(phosphorylation(np.zeros((1, 2)), PARAMS), [[10.0, 10.0]])


def test_gradient_of_phosphorylation_is_finite_at_zero():
    x = tf.Variable([[0.0, 0.0], [1.0, 2.0]])
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(phosphorylation(x, PARAMS))
    assert np.all(np.isfinite(tape.gradient(y, x).numpy()))


@pytest.mark.parametrize("name", ["synthetic", "hill2", "hill2.5", "phosphorylation"])
def test_batched_shapes_for_numpy_and_tf(name):
    system = make_system(SystemSpec.parse(name), PARAMS)
    batch = np.random.default_rng(0).uniform(0, 20, size=(3, 4, 2))
    from_numpy = system(batch)
    from_tf = system(tf.constant(batch, tf.float64))
    assert from_numpy.shape == (3, 4, 2) and isinstance(from_numpy, np.ndarray)
    assert isinstance(from_tf, tf.Tensor) and tuple(from_tf.shape) == (3, 4, 2)
    np.testing.assert_allclose(from_tf.numpy(), from_numpy, rtol=1e-12)
    # Vectorised: the batch result equals the point-by-point result.
    np.testing.assert_allclose(from_numpy[1, 2], system(batch[1, 2][None])[0])


def test_names_round_trip_and_bad_names_are_refused():
    assert SystemSpec.parse("hill3") == SystemSpec("hill", 3.0)
    assert SystemSpec.parse(SystemSpec("hill", 2.5).name) == SystemSpec("hill", 2.5)
    for bad in ("hill0", "hill-1", "hillx", "michaelis", "hillnan", "hillinf"):
        with pytest.raises(ValueError, match=bad):
            SystemSpec.parse(bad)


def test_more_than_two_inputs():
    params = SystemParams(eta=(1.0, 2.0, 3.0), theta=(1.0, 1.0, 1.0), y_tot=9.0)
    x = np.array([[1.0, 1.0, 1.0]])
    np.testing.assert_allclose(synthetic(x, params), [[0.25, 0.5, 0.75]])
    np.testing.assert_allclose(phosphorylation(np.zeros((1, 3)), params), [[3.0, 3.0, 3.0]])
