"""The plain MLP, the stacked form, and exporting members that load with plain Keras."""

import keras
import numpy as np
import pytest

from tlkeras.nn import models
from tlkeras.storage.persistence import save_model

SPEC = models.NetworkSpec()


def test_default_mlp_is_the_protocol_network():
    model = models.build_mlp(SPEC, seed=0)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [10, 10, 10, 10, 10, 2]
    assert [layer.activation.__name__ for layer in dense] == ["relu"] * 5 + ["linear"]
    assert model.input_shape == (None, 2) and model.output_shape == (None, 2)
    for layer in dense:
        kernel, bias = layer.get_weights()
        limit = np.sqrt(6.0 / sum(kernel.shape))  # Glorot uniform
        assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.5 * limit
        np.testing.assert_array_equal(bias, 0.0)


def test_width_depth_activation_are_parameters():
    model = models.build_mlp(models.NetworkSpec(3, 1, width=7, depth=2, activation="tanh"), seed=1)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [7, 7, 1]
    assert dense[0].activation.__name__ == "tanh"
    assert model.input_shape == (None, 3)


def test_same_seed_same_init_other_seed_other_init():
    a, b, c = (models.build_mlp(SPEC, seed=s).get_weights() for s in (5, 5, 6))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.allclose(a[0], c[0])


def test_stack_members_equal_their_plain_models():
    members = [models.build_mlp(SPEC, seed=s) for s in (1, 2, 3)]
    stack = models.build_stack(SPEC, 3)
    models.load_members(stack, members)
    x = np.random.default_rng(0).uniform(0, 20, (17, 2)).astype(np.float32)
    stacked = np.asarray(stack(np.repeat(x[:, None, :], 3, axis=1)))
    for k, member in enumerate(members):
        np.testing.assert_allclose(stacked[:, k], np.asarray(member(x)), rtol=1e-5, atol=1e-6)
        exported = models.export_member(stack, SPEC, k)
        np.testing.assert_array_equal(np.asarray(exported(x)), np.asarray(member(x)))


def test_member_k_reads_only_its_own_inputs():
    stack = models.build_stack(SPEC, 2)
    models.load_members(stack, [models.build_mlp(SPEC, seed=s) for s in (1, 2)])
    x = np.random.default_rng(1).uniform(0, 20, (5, 2, 2)).astype(np.float32)
    changed = x.copy()
    changed[:, 1] += 3.0
    before, after = np.asarray(stack(x)), np.asarray(stack(changed))
    np.testing.assert_array_equal(before[:, 0], after[:, 0])
    assert not np.allclose(before[:, 1], after[:, 1])


def test_load_members_refuses_a_wrong_count():
    stack = models.build_stack(SPEC, 2)
    with pytest.raises(ValueError, match="2 member slots"):
        models.load_members(stack, [models.build_mlp(SPEC, seed=0)])


def test_exported_member_loads_with_plain_keras_and_predicts_identically(tmp_path):
    stack = models.build_stack(SPEC, 2)
    models.load_members(stack, [models.build_mlp(SPEC, seed=s) for s in (8, 9)])
    exported = models.export_member(stack, SPEC, 1)
    path = save_model(exported, tmp_path / "member.keras")
    reloaded = keras.saving.load_model(path)  # no custom objects, safe mode on by default
    x = np.random.default_rng(2).uniform(0, 20, (33, 2)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(reloaded(x)), np.asarray(exported(x)))


def test_stack_itself_round_trips_through_keras_saving(tmp_path):
    stack = models.build_stack(SPEC, 2)
    models.load_members(stack, [models.build_mlp(SPEC, seed=s) for s in (3, 4)])
    stack.save(tmp_path / "stack.keras")
    reloaded = keras.saving.load_model(tmp_path / "stack.keras")
    x = np.random.default_rng(3).uniform(0, 20, (4, 2, 2)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(reloaded(x)), np.asarray(stack(x)))


def test_a_normalised_member_speaks_user_units_and_loads_in_plain_keras(tmp_path):
    spec = models.NetworkSpec(3, 2, 6, 2, "tanh", input_offset=(50.0, 500.0, -1.0), input_scale=(50.0, 500.0, 2.0),
                              output_offset=(20000.0, -3.0), output_scale=(9000.0, 0.5))
    stack = models.build_stack(spec, 3)
    models.load_members(stack, [models.build_mlp(spec, seed=s) for s in range(3)])
    x = np.random.default_rng(0).uniform([0, 0, -3], [100, 1000, 1], size=(16, 3))
    inside = np.repeat(spec.scale_inputs(x)[:, None, :], 3, axis=1)
    expected = spec.unscale_outputs(np.asarray(stack(inside))[:, 1, :])  # the stack works in network units
    member = models.export_member(stack, spec, 1)
    assert [type(layer).__name__ for layer in member.layers][1] == "Rescaling"
    path = save_model(member, tmp_path / "m.keras")
    loaded = keras.saving.load_model(path)  # plain Keras, no custom objects
    np.testing.assert_allclose(np.asarray(loaded(x.astype(np.float32))), expected, rtol=2e-5, atol=0.05)
    assert np.abs(expected[:, 0]).mean() > 1000  # outputs come back in the user's thousands
    plain = models.NetworkSpec(3, 2, 6, 2, "tanh")
    # Any scale, molar units included (a Normalization layer's 1e-7 floor would distort these).
    molar = models.NetworkSpec(1, 1, 4, 1, "tanh", input_offset=(5e-9,), input_scale=(5e-9,),
                               output_offset=(2e-9,), output_scale=(3e-10,))
    tiny = models.build_mlp(molar, seed=0)
    plain_tiny = models.build_mlp(models.NetworkSpec(1, 1, 4, 1, "tanh"), seed=0)
    x_molar = np.array([[0.0], [7e-9]], np.float32)
    np.testing.assert_allclose(np.asarray(tiny(x_molar)),
                               molar.unscale_outputs(np.asarray(plain_tiny(molar.scale_inputs(x_molar)))), rtol=1e-5)
    # The units live in the layers' config: the weights are exactly the plain MLP's (the engine's).
    assert [w.shape for w in member.get_weights()] == [w.shape for w in models.build_mlp(plain, 0).get_weights()]
