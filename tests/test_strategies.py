"""Transfer strategies: the engine's per-member regimes, and every strategy through a real study."""

import dataclasses
import json
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
from test_engine import SPEC, TOLERANCE, _data  # the engine tests' network, tolerance and data

from tlkeras.core.config import StudyConfig
from tlkeras.core.errors import ConfigError
from tlkeras.core.members import Member
from tlkeras.core.options import SweepOptions
from tlkeras.core.vocabulary import TRANSFER_STRATEGIES
from tlkeras.execution.study import run_study
from tlkeras.nn import engine, models
from tlkeras.storage.persistence import load_model
from tlkeras.storage.rundir import RunDir, RunDirError
from tlkeras.strategies import base, registry, selection
from tlkeras.strategies.fine_tuning import linear_probe
from tlkeras.strategies.simple_model import simple_model_in_network_units


def _train(seeds, x, y, epochs, regime=None, **fit):
    stack = models.build_stack(SPEC, len(seeds))
    models.load_members(stack, [models.build_mlp(SPEC, seed=s) for s in seeds])
    start = [np.array(v.numpy()) for v in stack.trainable_variables]
    if callable(regime):
        regime = regime(start)
    trainer = engine.StackTrainer(stack, 1e-3, 32, regime)
    trainer.fit(x, y, epochs, shuffle_seeds=seeds, **fit)
    return stack, start


def _weights(stack, index):
    return [w for w in models.export_member(stack, SPEC, index).get_weights()]


def _regime(start, rates, frozen, alphas):
    return engine.Regime(rates, frozen=frozen, anchor_alpha=alphas, anchor=start)


RATES, FROZEN, ALPHAS = [1e-3, 5e-4, 1e-3], [frozenset(), frozenset({"hidden_0", "hidden_1"}), frozenset()], [0.0, 0.0, 1e3]


@pytest.fixture(scope="module")
def regimes():
    """Three members with their own regimes (plain; a lower rate and two frozen layers; a strong
    L2-SP pull), members 1 and 2 again alone, and the three without any regime."""
    x, y = _data(3, 70)  # 70 = 2 full batches and a short one
    stack, start = _train([1, 2, 3], x, y, 4, lambda s: _regime(s, RATES, FROZEN, ALPHAS))
    alone = {index: _train([index + 1] * 2, x[[index, index]], y[[index, index]], 4,
                           lambda s, i=index: _regime(s, [RATES[i]] * 2, [FROZEN[i]] * 2, [ALPHAS[i]] * 2))[0]
             for index in (1, 2)}
    plain, _ = _train([1, 2, 3], x, y, 4)
    return stack, start, alone, plain


def test_a_member_with_its_own_regime_trains_in_a_stack_exactly_as_alone(regimes):
    stack, _, alone, _ = regimes
    for index in (1, 2):
        difference = max(np.abs(a - b).max() for a, b in zip(_weights(stack, index), _weights(alone[index], 0)))
        assert difference < TOLERANCE


def test_frozen_layers_keep_their_weights_and_the_others_train(regimes):
    stack, start, _, _ = regimes
    names = [v.path.split("/")[0] for v in stack.trainable_variables]
    for name, before, after in zip(names, start, [v.numpy() for v in stack.trainable_variables]):
        if name in FROZEN[1]:
            np.testing.assert_array_equal(after[1], before[1])
        else:
            assert np.abs(after[1] - before[1]).max() > 1e-5
        assert np.abs(after[0] - before[0]).max() > 1e-5  # member 0 trains every layer


def test_the_anchor_pull_holds_weights_near_the_start_and_zero_alpha_changes_nothing(regimes):
    stack, start, _, plain = regimes
    for a, b in zip(_weights(stack, 0), _weights(plain, 0)):  # member 0: alpha 0, the same rate
        np.testing.assert_array_equal(a, b)

    def distance(trained, index):
        return sum(float(np.sum((v.numpy()[index] - s[index]) ** 2)) for v, s in zip(trained.trainable_variables, start))

    # Adam steps of ~lr keep it jittering about the anchor; without the pull it drifts far further.
    assert distance(stack, 2) < 0.1 * distance(plain, 2)


def test_the_pull_can_act_on_named_variables_only():
    x, y = _data(2, 70)
    names = frozenset("/".join(v.path.split("/")[-2:]) for v in models.build_stack(SPEC, 2).trainable_variables)

    def pulled(variables, alpha=0.5, zero=False):
        return lambda s: engine.Regime([1e-3] * 2, anchor_alpha=[alpha] * 2,
                                       anchor=[np.zeros_like(w) for w in s] if zero else s, anchored_variables=variables)

    everything, _ = _train([1, 2], x, y, 3, pulled(names))
    default, _ = _train([1, 2], x, y, 3, pulled(None))
    for a, b in zip(everything.get_weights(), default.get_weights()):
        np.testing.assert_array_equal(a, b)
    # A strong pull towards zero on one kernel: every step shrinks each of its weights (Adam
    # steps of ~lr), while an unlisted kernel trains on the data alone.
    decayed, start = _train([1, 2], x, y, 4, pulled(frozenset({"output/kernel"}), alpha=1e3, zero=True))
    after = {"/".join(v.path.split("/")[-2:]): v.numpy() for v in decayed.trainable_variables}
    before = dict(zip(after, start))
    big = np.abs(before["output/kernel"]) > 0.05
    assert np.all(np.abs(after["output/kernel"])[big] < np.abs(before["output/kernel"])[big])
    grew = np.abs(after["hidden_0/kernel"]) > np.abs(before["hidden_0/kernel"])
    assert 0 < grew.mean() < 1
    with pytest.raises(ValueError, match="anchored variables"):
        _train([1, 2], x, y, 1, pulled(frozenset({"hidden_9/kernel"})))


def test_multi_fidelity_trains_full_batch_with_l2_on_the_nonlinear_kernels_only():
    from tlkeras.execution.planning import plan_jobs

    config = StudyConfig(**{**TINY, "volumes": (20, 50)}).validate()
    jobs = {(job.arm, job.size): job for job in plan_jobs(config)}
    for size in (20, 50):
        job = jobs["multi_fidelity", size]
        assert (job.batch_size, job.epochs, job.first_epoch, job.steps) == (size, 60, 0, 60)
        assert jobs["transfer", size].batch_size == config.batch_size
    strategy = registry.STRATEGIES["multi_fidelity"]
    stack = models.build_stack(strategy.network(config), 2)
    start = [np.ones(v.shape, np.float32) for v in stack.trainable_variables]
    regime = strategy.regime(config, 2, start)
    assert regime.anchored_variables == {"hidden_0/kernel", "hidden_1/kernel", "output/kernel"}
    assert list(regime.anchor_alpha) == [2 * config.multi_fidelity_l2] * 2  # alpha/2 ||W||^2 = lambda ||W||^2
    assert all(not a.any() for a in regime.anchor)
    engine.StackTrainer(stack, 1e-3, 20, regime)  # the names are the stack's own
    assert not any(strategy.regime(StudyConfig(multi_fidelity_l2=0.0), 2, start).anchor_alpha)
    with pytest.raises(ConfigError, match="^multi_fidelity_l2=-1.0"):
        StudyConfig(multi_fidelity_l2=-1.0).validate()
    with pytest.raises(ConfigError, match="^multi_fidelity_iterations=0"):
        StudyConfig(multi_fidelity_iterations=0).validate()


def test_evaluation_inside_training_sees_every_few_epochs_and_changes_no_weight():
    x, y = _data(2, 64)
    seen = []
    plain, _ = _train([1, 2], x, y, 7, first_epoch=10)
    stack = models.build_stack(SPEC, 2)
    models.load_members(stack, [models.build_mlp(SPEC, seed=s) for s in (1, 2)])
    trainer = engine.StackTrainer(stack, 1e-3, 32)
    probe = np.array([[1.0, 2.0], [15.0, 3.0]], np.float32)
    trainer.fit(x, y, 7, shuffle_seeds=[1, 2], first_epoch=10, evaluate_every=3,
                evaluate=lambda epoch, params: seen.append((epoch, trainer.predict(params, probe))))
    assert [epoch for epoch, _ in seen] == [13, 16, 17]
    np.testing.assert_allclose(seen[-1][1], np.transpose(np.asarray(stack(np.repeat(probe[:, None], 2, 1))),
                                                          (1, 0, 2)), rtol=1e-6)
    for a, b in zip(plain.get_weights(), stack.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(seen[0][1], seen[-1][1])


def test_the_linear_probe_solves_least_squares_on_the_pretrained_features():
    config = StudyConfig()
    pretrained = models.build_mlp(SPEC, seed=3)
    x, y = _data(1, 200)
    probe = linear_probe(config, pretrained, x[0], y[0])
    hidden = keras.Model(probe.inputs, probe.get_layer("hidden_4").output)
    features = np.concatenate([np.asarray(hidden([x[0]]), np.float64), np.ones((200, 1))], axis=1)
    best = np.linalg.lstsq(features, y[0].astype(np.float64), rcond=1e-6)[0]  # dead ReLUs: rank-deficient
    kernel, bias = probe.get_layer("output").get_weights()
    residual_fit = np.mean((features @ np.vstack([kernel, bias]) - y[0]) ** 2)
    assert residual_fit == pytest.approx(np.mean((features @ best - y[0]) ** 2), rel=1e-4)
    for name in ("hidden_0", "hidden_4"):  # the features themselves are the pretrained ones
        for a, b in zip(probe.get_layer(name).get_weights(), pretrained.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_strategy_settings_out_of_range_are_one_line_errors():
    for overrides, needle in ((dict(transfer_strategy=("bogus",)), "transfer_strategy='bogus'"),
                              (dict(transfer_strategy=()), "transfer_strategy="),
                              (dict(transfer_strategy=("wise_ft",), volumes=(8,)), "volumes=8"),
                              (dict(transfer_strategy=("freeze_k",), freeze_layers=6), "freeze_layers=6"),
                              (dict(l2_sp_alpha=-1.0), "l2_sp_alpha=-1.0"),
                              (dict(l2_sp_alphas=(0.1, 0.1)),
                               "l2_sp_alphas=0.1,0.1 is not allowed: expected no duplicates"),
                              (dict(l2_sp_alphas=(0.1, -1.0)), "l2_sp_alphas=-1.0"),
                              (dict(transfer_strategy=("l2_sp_extrapolation",), volumes=(1,)), "volumes=1"),
                              (dict(l2_sp_holdout=1.0), "l2_sp_holdout=1.0"),
                              (dict(l2_sp_choice="best"), "l2_sp_choice='best'"),
                              (dict(measurements="plate.csv", systems=("measurements",), volumes=(12,), folds=5,
                                    arms=("transfer", "baseline"), num_inputs=2, num_outputs=2, measurement_inputs=("a", "b"),
                                    measurement_outputs=("c", "d"), transfer_strategy=("wise_ft",)),
                               "folds=5"),  # fold sets of 9 rows
                              (dict(evaluations=-1), "evaluations=-1")):
        with pytest.raises(ConfigError, match="^" + re.escape(needle)) as error:
            StudyConfig(**overrides).validate()
        assert "\n" not in str(error.value)
    assert StudyConfig.from_json(json.dumps({"transfer_strategy": "fine_tune_all"})).transfer_strategy == (
        "fine_tune_all",)  # a run from before strategies were a list
    # a run from before l2_sp_choice chose the lowest held-out MSE: its config means that still
    assert StudyConfig.from_json(json.dumps({"l2_sp_alphas": [0.1, 1.0]})).l2_sp_choice == "lowest"


def test_a_run_recorded_before_l2_sp_choice_resumes_only_with_the_rule_it_used(tmp_path):
    config = StudyConfig(transfer_strategy=("l2_sp_extrapolation",)).validate()
    recorded = json.loads(config.to_json())
    del recorded["l2_sp_choice"]
    (tmp_path / "config.json").write_text(json.dumps(recorded))
    RunDir(tmp_path).check_resumable(dataclasses.replace(config, l2_sp_choice="lowest"))
    with pytest.raises(RunDirError, match="l2_sp_choice: recorded 'lowest', now 'paired_standard_error'"):
        RunDir(tmp_path).check_resumable(config)


# Every strategy through one real (tiny) study --------------------------------------------------
TINY = dict(pretrain_size=300, epochs=12, pretrain_epochs=8, seeds=(0, 1), volumes=(20,), arms=("transfer", "baseline"),
            systems=("hill2",), transfer_strategy=TRANSFER_STRATEGIES, eval_points=60, evaluations=12,
            multi_fidelity_iterations=60, l2_sp_alphas=(0.01, 30.0))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("strategies")
    config = StudyConfig(**TINY).validate()
    results = run_study(config, folder, SweepOptions(workers=1))
    return config, RunDir(folder), results


def _record(run_dir, arm, volume=20, seed=0, system="hill2"):
    return run_dir.read_record(Member(arm, system, volume, seed))


def test_every_strategy_saves_a_model_that_reloads_and_scores_as_recorded(study):
    config, run_dir, results = study
    from tlkeras.results.evaluation import EvaluationSet

    points = EvaluationSet(config)
    for arm in config.strategy_arms():
        record = _record(run_dir, arm)
        model = load_model(run_dir.model_path(Member(arm, "hill2", 20, 0)))
        predictions = np.asarray(model(points.x.astype(np.float32)), np.float64)
        errors = np.mean(np.abs(predictions - points.truth["hill2"]), axis=-1)
        assert errors.mean() == pytest.approx(record["l1_mean"], rel=1e-5), arm
        # What the report's ensembles and coverage read instead of reloading every model.
        np.testing.assert_array_equal(np.asarray(record["eval_predictions"]), predictions, err_msg=arm)
        assert len(record["eval_curve"]["epochs"]) >= 3, arm  # evaluated during training
    assert {row["arm"] for row in results["summary"]} == {*config.strategy_arms(), "baseline"}


def test_the_extrapolation_band_is_the_quarter_of_the_pairs_nearest_the_unmeasured_domain():
    config = StudyConfig(small_domain=(0.0, 10.0), big_domain=(0.0, 20.0)).validate()
    x = np.random.default_rng(0).uniform(0, 10, (100, 2)).astype(np.float32)
    band = selection.extrapolation_band(config, x)
    assert len(band) == 25
    outside = np.setdiff1d(np.arange(100), band)
    assert x[band].max(axis=1).min() >= x[outside].max(axis=1).max()  # big domain beyond 10 on both axes
    below = StudyConfig(small_domain=(10.0, 20.0), big_domain=(0.0, 20.0)).validate()  # unmeasured below
    shifted = x + 10
    band = selection.extrapolation_band(below, shifted)
    assert shifted[band].min(axis=1).max() <= shifted[np.setdiff1d(np.arange(100), band)].min(axis=1).min()


def test_l2_sp_extrapolation_trains_with_the_alpha_its_held_out_band_chose(study):
    config, run_dir, _ = study
    for seed in config.seeds:
        record = _record(run_dir, "l2_sp_extrapolation", seed=seed)
        curve, errors, paired = (np.asarray(record[k]) for k in
                                 ("l2_sp_heldout_mse", "l2_sp_heldout_se", "l2_sp_heldout_paired_se"))
        assert record["l2_sp_alphas"] == [0.01, 30.0] and len(curve) == 2 == len(errors) == len(paired)
        assert (errors > 0).all() and record["l2_sp_choice"] == config.l2_sp_choice == "paired_standard_error"
        assert paired[np.argmin(curve)] == 0 and paired.max() > 0  # the lowest against itself; the other not
        check = selection.HeldOutAlphas((0.01, 30.0), curve, errors, paired)
        assert record["l2_sp_alpha"] == check.chosen(config.l2_sp_choice)
        # The final model is l2_sp at the chosen alpha: where that is l2_sp_alpha (0.01), the
        # same weights bit for bit (same start, same minibatch order); at 30 not.
        model = load_model(run_dir.model_path(Member("l2_sp_extrapolation", "hill2", 20, seed))).get_weights()
        plain = load_model(run_dir.model_path(Member("l2_sp", "hill2", 20, seed))).get_weights()
        same = all(np.array_equal(a, b) for a, b in zip(model, plain))
        assert same == (record["l2_sp_alpha"] == config.l2_sp_alpha), seed


def test_the_standard_error_rules_take_the_strongest_pull_the_held_out_band_cannot_tell_from_the_best():
    mse = np.array([1.0, 0.9, 0.97, 1.2, 1.5])
    check = selection.HeldOutAlphas((0.001, 0.01, 0.1, 1.0, 10.0), mse, np.full(5, 0.08),
                                     np.array([0.05, 0.0, 0.03, 0.35, 0.1]))
    assert check.chosen("lowest") == 0.01
    assert check.chosen("one_standard_error") == 0.1  # 0.97 <= 0.9 + 0.08; 1.2 and 1.5 are not
    assert check.chosen("paired_standard_error") == 1.0  # 1.2 - 0.9 <= 0.35, its own paired error
    sure = selection.HeldOutAlphas(check.alphas, mse, np.zeros(5), np.zeros(5))
    assert sure.chosen("one_standard_error") == sure.chosen("paired_standard_error") == 0.01
    unsure = selection.HeldOutAlphas(check.alphas, mse, np.full(5, 0.6), np.full(5, 0.6))
    assert unsure.chosen("one_standard_error") == unsure.chosen("paired_standard_error") == 10.0
    with pytest.raises(ValueError, match="l2_sp_choice='best'"):
        check.chosen("best")
    diverged = selection.HeldOutAlphas(check.alphas, np.array([1.0, np.nan, 0.97, np.inf, 1.5]), np.full(5, 0.08),
                                       np.array([0.05, np.nan, 0.0, np.nan, 0.1]))
    assert diverged.chosen("lowest") == 0.1 and diverged.chosen("paired_standard_error") == 0.1
    with pytest.raises(ArithmeticError, match="every alpha"):
        selection.HeldOutAlphas((0.1, 1.0), np.full(2, np.nan), np.zeros(2), np.zeros(2)).chosen("lowest")


def test_the_held_out_check_scores_each_alpha_on_the_band_with_its_standard_error():
    """With no epochs every alpha's model is the member's start: the band's MSE and its
    standard error are the start's, computed here by hand."""
    config = StudyConfig(l2_sp_alphas=(0.01, 1.0), l2_sp_holdout=0.25).validate()
    rng = np.random.default_rng(3)
    x = config.network.scale_inputs(rng.uniform(0, 10, (40, 2))).astype(np.float32)
    y = rng.normal(size=(40, 2)).astype(np.float32)
    net = models.build_mlp(config.network.in_network_units(), seed=1)
    plan = base.StackPlan([base.Prepared(net, x, y)] * 2, [0, 1], [5, 6], epochs=0, first_epoch=0)
    checks = selection.held_out_alphas(config, plan)
    band = selection.extrapolation_band(config, x)
    squared = np.mean((np.asarray(net(x[band])) - y[band]) ** 2, axis=1)
    for check in checks:
        np.testing.assert_allclose(check.mse, [squared.mean()] * 2, rtol=1e-5)
        np.testing.assert_allclose(check.standard_error, [squared.std(ddof=1) / np.sqrt(len(band))] * 2, rtol=1e-4)
        np.testing.assert_array_equal(check.paired_standard_error, [0.0, 0.0])  # the same model twice
        assert check.chosen("paired_standard_error") == check.chosen("one_standard_error") == 1.0


def test_wise_ft_is_the_cross_validated_mix_of_pretrained_and_fine_tuned_weights(study):
    config, run_dir, _ = study
    record = _record(run_dir, "wise_ft", seed=1)
    curve = record["wise_ft_cv_mse"]
    assert len(curve) == 11 == len(record["wise_ft_eval_l1"])
    assert record["wise_ft_mix"] == selection.WISE_FT_MIXES[int(np.argmin(curve))]
    a = record["wise_ft_mix"]
    pretrained = load_model(run_dir.model_path(Member("pretrain", "synthetic", 300, 1))).get_weights()
    fine_tuned = load_model(run_dir.model_path(Member("transfer", "hill2", 20, 1))).get_weights()
    mixed = load_model(run_dir.model_path(Member("wise_ft", "hill2", 20, 1))).get_weights()
    for p, f, m in zip(pretrained, fine_tuned, mixed):
        np.testing.assert_allclose(m, (1 - a) * p + a * f, atol=1e-5)
    assert record["wise_ft_eval_l1"][10] == pytest.approx(_record(run_dir, "transfer", 20, 1)["l1_mean"], rel=1e-4)


def test_freeze_k_keeps_the_first_layers_of_the_pretrained_model(study):
    config, run_dir, _ = study
    pretrained = load_model(run_dir.model_path(Member("pretrain", "synthetic", 300, 0)))
    frozen = load_model(run_dir.model_path(Member("freeze_k", "hill2", 20, 0)))
    for i in range(config.depth):
        same = all(np.array_equal(a, b) for a, b in zip(pretrained.get_layer(f"hidden_{i}").get_weights(),
                                                         frozen.get_layer(f"hidden_{i}").get_weights()))
        assert same == (i < config.freeze_layers), i


@pytest.mark.integration  # a fresh process, as a user loads the files
def test_residual_and_g_feature_need_tlkeras_to_load_and_leave_a_plain_keras_network(study):
    config, run_dir, _ = study
    script = (
        "import sys, keras, numpy as np\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        model = keras.saving.load_model(path, compile=False)\n"
        "        print('loaded', model.input_shape[-1])\n"
        "    except Exception as error:\n"
        "        print('refused', type(error).__name__)\n"
    )
    paths = [run_dir.model_path(Member(arm, "hill2", 20, 0)) for arm in ("residual", "g_feature", "multi_fidelity")]
    nets = [p.with_suffix(".net.keras") for p in paths[:2]]
    out = subprocess.run([sys.executable, "-c", script, *map(str, paths + nets)], capture_output=True, text=True,
                         cwd="/", timeout=300, env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3",
                                                     "PYTHONPATH": ""}).stdout.split("\n")
    assert out[:5] == ["refused TypeError", "refused TypeError", "loaded 2", "loaded 2", "loaded 4"], out
    # Through tlkeras the residual model is g plus its network: at x where the net is ~0, ~g.
    residual = load_model(paths[0])
    assert [layer.name for layer in residual.layers if "simple" in layer.name] == ["simple_model"]


def test_residual_starts_as_the_simple_model_itself():
    config = StudyConfig(**TINY).validate()
    x = np.random.default_rng(0).uniform(0, 20, (30, 2)).astype(np.float32)
    start = registry.STRATEGIES["residual"].prepare(config, x, np.zeros((30, 2), np.float32), None, 5)
    np.testing.assert_array_equal(np.asarray(start.net(x)), 0.0)
    np.testing.assert_allclose(start.offset, simple_model_in_network_units(config, x))
    np.testing.assert_allclose(start.y, -start.offset)


@pytest.mark.integration  # the driver, as a user runs it
def test_exp3_refuses_an_unknown_strategy_before_any_work(tmp_path):
    from conftest import run_driver

    result = run_driver("exp3.py", [f"--logdir={tmp_path}", "--strategies=fine_tune_all,bogus"])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: flag --strategies=") and lines[0].endswith(
        f"--strategies takes distinct names from {', '.join(TRANSFER_STRATEGIES)}, comma-separated")
    assert not (tmp_path / "exp3").exists()


def test_tensorboard_hparams_show_the_alpha_and_the_mix_each_model_chose(study):
    import tensorflow as tf
    from tensorboard.plugins.hparams import plugin_data_pb2

    config, run_dir, _ = study

    def plugin_data(folder):
        for path in sorted(folder.glob("events.out.tfevents.*")):
            for event in tf.compat.v1.train.summary_iterator(str(path)):
                for value in event.summary.value:
                    if value.metadata.plugin_data.plugin_name == "hparams":
                        yield plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)

    columns = {h.name: h for data in plugin_data(run_dir.tensorboard) for h in data.experiment.hparam_infos}
    assert [v.number_value for v in columns["l2_sp_alpha"].domain_discrete.values] == [0.01, 30.0]
    assert len(columns["wise_ft_mix"].domain_discrete.values) == 11
    for arm, name in (("l2_sp_extrapolation", "l2_sp_alpha"), ("wise_ft", "wise_ft_mix")):
        member = Member(arm, "hill2", 20, 1)
        folder = run_dir.tensorboard / arm / "hill2" / "n20" / "seed1"
        hparams = [d.session_start_info.hparams for d in plugin_data(folder)]
        assert len(hparams) == 1 and hparams[0][name].number_value == run_dir.read_record(member)[name], arm
        assert "wise_ft_mix" not in hparams[0] or arm == "wise_ft"
