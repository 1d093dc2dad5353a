"""The stacked XLA engine: every member is exactly an independent model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tlkeras.nn import data, engine, models

SPEC = models.NetworkSpec()
# Float32 sums in a different order (einsum over a stack vs one matmul) differ in the last bits;
# over a few dozen Adam steps that stays far below this.
TOLERANCE = 1e-5


def _data(members, size, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 20, (members, size, 2)).astype(np.float32)
    y = rng.normal(size=(members, size, 2)).astype(np.float32) + x[..., ::-1] / 4
    return x, y


def _trained_stack(seeds, x, y, epochs, first_epoch=0):
    stack = models.build_stack(SPEC, len(seeds))
    models.load_members(stack, [models.build_mlp(SPEC, seed=s) for s in seeds])
    trainer = engine.StackTrainer(stack, 1e-3, 32)
    log = trainer.fit(x, y, epochs, shuffle_seeds=seeds, first_epoch=first_epoch)
    return stack, log


def _max_difference(a, b):
    return max(float(np.abs(u - v).max()) for u, v in zip(a.get_weights(), b.get_weights()))


def test_member_in_a_stack_trains_exactly_as_alone():
    x, y = _data(3, 70)  # 70 = 2 full batches and a short one
    stack, log = _trained_stack([11, 22, 33], x, y, epochs=4)
    alone, alone_log = _trained_stack([22], x[1:2], y[1:2], epochs=4)
    stacked_member = models.export_member(stack, SPEC, 1)
    assert _max_difference(stacked_member, models.export_member(alone, SPEC, 0)) < TOLERANCE
    np.testing.assert_allclose(log.losses[:, 1], alone_log.losses[:, 0], rtol=1e-5)
    # It trained: the weights moved well beyond the tolerance.
    assert _max_difference(stacked_member, models.build_mlp(SPEC, seed=22)) > 100 * TOLERANCE


def test_member_matches_a_plain_keras_fit_with_the_same_order():
    x, y = _data(1, 70, seed=1)
    stack, _ = _trained_stack([7], x, y, epochs=3)
    plain = models.build_mlp(SPEC, seed=7)
    plain.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    for epoch in range(3):
        order = engine.epoch_orders([7], [epoch], 70)[0, 0]
        dataset = data.make_dataset(x[0][order], y[0][order], batch_size=32, shuffle_seed=None)
        plain.fit(dataset, epochs=1, verbose=0)
    assert _max_difference(models.export_member(stack, SPEC, 0), plain) < TOLERANCE


def test_members_with_other_data_do_not_influence_each_other():
    x, y = _data(2, 64)
    stack_a, _ = _trained_stack([1, 2], x, y, epochs=2)
    y_changed = y.copy()
    y_changed[1] += 5.0
    stack_b, _ = _trained_stack([1, 2], x, y_changed, epochs=2)
    assert _max_difference(models.export_member(stack_a, SPEC, 0), models.export_member(stack_b, SPEC, 0)) < TOLERANCE
    assert _max_difference(models.export_member(stack_a, SPEC, 1), models.export_member(stack_b, SPEC, 1)) > 1e-3


def test_full_batch_steps_use_every_sample_in_a_fixed_order():
    """With one batch of every sample (multi_fidelity's full batch) nothing is shuffled: the
    shuffle seed does not matter, and the step equals a plain Keras step on the whole set."""
    x, y = _data(1, 40, seed=2)
    x, y = np.concatenate([x, x]), np.concatenate([y, y])  # one member's data in two slots
    stack = models.build_stack(SPEC, 2)
    models.load_members(stack, [models.build_mlp(SPEC, seed=5)] * 2)
    engine.StackTrainer(stack, 1e-3, 40).fit(x, y, 3, shuffle_seeds=[5, 6])
    first, second = models.export_member(stack, SPEC, 0), models.export_member(stack, SPEC, 1)
    assert all(np.array_equal(a, b) for a, b in zip(first.get_weights(), second.get_weights()))
    plain = models.build_mlp(SPEC, seed=5)
    plain.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    plain.fit(x[0], y[0], batch_size=40, epochs=3, shuffle=False, verbose=0)
    assert _max_difference(first, plain) < TOLERANCE
    assert _max_difference(first, models.build_mlp(SPEC, seed=5)) > 100 * TOLERANCE


def test_split_fit_calls_continue_one_optimisation():
    x, y = _data(2, 96)
    whole, _ = _trained_stack([3, 4], x, y, epochs=4)
    stack = models.build_stack(SPEC, 2)
    models.load_members(stack, [models.build_mlp(SPEC, seed=s) for s in (3, 4)])
    trainer = engine.StackTrainer(stack, 1e-3, 32)
    trainer.fit(x, y, 2, shuffle_seeds=[3, 4], first_epoch=0)
    trainer.fit(x, y, 2, shuffle_seeds=[3, 4], first_epoch=2, epochs_per_call=1)
    assert _max_difference(whole, stack) < TOLERANCE


def test_epoch_order_is_a_permutation_that_depends_on_seed_and_epoch_only():
    order = engine.epoch_orders([5, 6], [0], 1000)[0]
    for row in order:
        np.testing.assert_array_equal(np.sort(row), np.arange(1000))
    assert not np.array_equal(order[0], order[1])
    alone = engine.epoch_orders([6], [0, 1, 3], 1000)[:, 0]
    np.testing.assert_array_equal(alone[0], order[1])
    assert not np.array_equal(alone[1], alone[0])
    # The orders every run before 2026-12-03 trained in (computed then by tf.argsort inside the
    # program): a stored run's epochs still replay in the same order.
    assert alone[2][:8].tolist() == [889, 203, 38, 187, 381, 24, 279, 943]


def test_the_radix_sort_of_the_orders_is_numpys_stable_argsort_ties_included():
    rng = np.random.default_rng(3)
    for keys in (rng.integers(0, 2**32, (3, 5, 4000), dtype=np.uint64).astype(np.uint32),
                 rng.integers(0, 40, (2, 300), dtype=np.uint32) * np.uint32(0x10001),  # ties in both halves
                 np.full((1, 7), 0xFFFFFFFF, np.uint32), np.zeros((2, 1), np.uint32)):
        expected = np.argsort(keys.astype(np.int64), axis=-1, kind="stable")
        np.testing.assert_array_equal(engine.stable_argsort32(keys), expected)
    # The orders as the 64-bit sort of `key << 32 | index` made them before the radix sort came.
    keys = rng.integers(0, 2**32, (4, 40_000), dtype=np.uint64)
    ranked = np.sort((keys << np.uint64(32)) | np.arange(40_000, dtype=np.uint64), axis=-1)
    np.testing.assert_array_equal(engine.stable_argsort32(keys.astype(np.uint32)),
                                  (ranked & np.uint64(0xFFFFFFFF)).astype(np.int32))


def test_training_reduces_the_loss_and_reports_every_epoch():
    x, y = _data(2, 256)
    progress = []
    stack = models.build_stack(SPEC, 2)
    models.load_members(stack, [models.build_mlp(SPEC, seed=s) for s in (1, 2)])
    log = engine.StackTrainer(stack, 1e-2, 32).fit(
        x, y, 12, shuffle_seeds=[1, 2], epochs_per_call=5, progress=lambda *a: progress.append(a))
    assert log.losses.shape == (12, 2)
    assert np.all(log.losses[-1] < 0.5 * log.losses[0])
    assert [p[0] for p in progress] == [5, 10, 12]


def test_bad_shapes_are_refused():
    stack = models.build_stack(SPEC, 2)
    trainer = engine.StackTrainer(stack, 1e-3, 32)
    x, y = _data(3, 10)
    with pytest.raises(ValueError, match="3 members"):
        trainer.fit(x, y, 1, shuffle_seeds=[1, 2, 3])


def test_a_member_is_bit_identical_in_any_job_whatever_its_stack():
    from tlkeras.core.config import StudyConfig
    from tlkeras.execution.planning import plan_jobs
    from tlkeras.execution.training import prepare, train_job

    config = StudyConfig(pretrain_size=100, oracle_size=64, epochs=4, pretrain_epochs=3, seeds=(0, 1, 2),
                         volumes=(40,), arms=("baseline",))
    job = plan_jobs(config)[0]
    whole = train_job(config, job, [prepare(config, m, None) for m in job.members])
    for subset in ([job.members[1]], [job.members[1], job.members[2]]):
        part = train_job(config, job.subset(subset), [prepare(config, m, None) for m in subset])
        for a, b in zip(models.export_member(whole.stack, SPEC, 1).get_weights(),
                        models.export_member(part.stack, SPEC, 0).get_weights()):
            np.testing.assert_array_equal(a, b)  # exact: resuming or splitting changes no number


def test_trainers_of_one_architecture_share_a_program_and_train_exactly_as_with_their_own():
    engine._PROGRAMS.clear()
    x, y = _data(2, 50, seed=3)
    first, first_log = _trained_stack([5, 6], x, y, epochs=3)
    programs = dict(engine._PROGRAMS)
    assert len(programs) == 1
    # Another job of the same shapes (other weights, data and seeds) reuses the program...
    other_x, other_y = _data(2, 50, seed=4)
    _trained_stack([8, 9], other_x, other_y, epochs=3)
    assert dict(engine._PROGRAMS) == programs
    # ...and a job trained after it gets the numbers it got with a program of its own.
    again, again_log = _trained_stack([5, 6], x, y, epochs=3)
    np.testing.assert_array_equal(first_log.losses, again_log.losses)
    for a, b in zip(first.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Another data size or chunk of epochs in the bucket is the same program: the size is an argument...
    _trained_stack([5, 6], x[:, :40], y[:, :40], epochs=1)
    assert dict(engine._PROGRAMS) == programs
    # ...another regime, or a set past the bucket, is another program.
    stack = models.build_stack(SPEC, 2)
    engine.StackTrainer(stack, 1e-3, 32, engine.Regime([1e-3, 1e-3], frozen=[frozenset({"hidden_0"})] * 2)).fit(
        x, y, 1, shuffle_seeds=[5, 6])
    assert len(engine._PROGRAMS) == 2
    big_x, big_y = _data(2, engine.SAMPLE_BUCKET + 1, seed=5)
    _trained_stack([5, 6], big_x, big_y, epochs=1)
    assert len(engine._PROGRAMS) == 3


def test_a_new_data_size_or_step_count_compiles_nothing(tmp_path):
    """TensorFlow compiles an XLA program anew for every value of an argument it must know at
    compile time; the engine's data size and step count must not be such. Counted, not timed:
    XLA's persistent cache writes one file per compilation."""
    import subprocess
    import sys

    script = """
import numpy as np
from tlkeras.nn import engine, models
spec = models.NetworkSpec()
for size in (50, 77, 225, 32, 1000):  # 2, 3, 8, 1 (the whole set in one batch) and 32 steps
    stack = models.build_stack(spec, 2)
    rng = np.random.default_rng(size)
    x, y = rng.random((2, size, 2), np.float32), rng.random((2, size, 2), np.float32)
    engine.StackTrainer(stack, 1e-3, 32).fit(x, y, 2 + size % 3, shuffle_seeds=[1, 2])
print(len(engine._PROGRAMS))
"""
    cache = tmp_path / "xla"
    env = {**__import__("os").environ, "TF_XLA_FLAGS": f"--tf_xla_persistent_cache_directory={cache}"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == "1"
    assert len(list(cache.glob("*.pb"))) == 1, sorted(p.name for p in cache.iterdir())


def test_adam_update_is_keras_adam_step_for_step():
    """The engine's update (`engine.adam_update`) against keras.optimizers.Adam on one variable."""
    from tlkeras.nn.engine import ADAM_BETA_1, ADAM_BETA_2, adam_update

    rng = np.random.default_rng(3)
    start = rng.normal(size=(4, 3)).astype(np.float32)
    grads = [rng.normal(size=(4, 3)).astype(np.float32) for _ in range(5)]
    variable = tf.Variable(start)
    optimizer = keras.optimizers.Adam(0.01)
    param, m, v = tf.constant(start), tf.zeros_like(start), tf.zeros_like(start)
    for t, g in enumerate(grads, start=1):
        optimizer.apply_gradients([(tf.constant(g), variable)])
        step_size = 0.01 * np.sqrt(1 - ADAM_BETA_2**t) / (1 - ADAM_BETA_1**t)
        param, m, v = adam_update(param, tf.constant(g), m, v, tf.constant(step_size, tf.float32))
        np.testing.assert_allclose(param.numpy(), variable.numpy(), rtol=1e-5, atol=1e-6)  # float32 rounding
    frozen, _, _ = adam_update(param, tf.constant(grads[0]), m, v, tf.constant(0.01), mask=tf.zeros([4, 1]))
    np.testing.assert_array_equal(frozen.numpy(), param.numpy())
