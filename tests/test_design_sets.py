"""Experiment 4's pieces in-process: design set names, paired noise, the plan's rounds, the jobs
they stack into, lab scores and the report's savings."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tlkeras.core.config import StudyConfig
from tlkeras.core.errors import ConfigError
from tlkeras.execution import design_study
from tlkeras.execution.planning import plan_jobs, real_sets
from tlkeras.results import design_report
from tlkeras.systems import design_sets
from tlkeras.systems.design_sets import START, parse, set_name

PLAN = StudyConfig(systems=("hill2", "hill3"), volumes=(12, 20, 28), seeds=(0, 1), arms=("transfer", "baseline"),
                   design_methods=("uniform", "space_filling"), design_replicates=3, design_candidates=40,
                   design_targets=20)


def test_a_design_set_name_round_trips_and_other_names_are_not_design_sets():
    for system in ("hill2", "phosphorylation", "simple_model.truth"):
        name = set_name(system, "space_filling", 7)
        found = parse(name)
        assert (found.system, found.method, found.replicate, found.name) == (system, "space_filling", 7, name)
        assert design_sets.base_system(name) == system
    for other in ("hill2", "measurements", "measurements-fold1", "hill2@uniform", "hill2@uni-form@r1",
                  "hill2@uniform@rA", "@uniform@r1", "hill2@uniform@3"):
        assert parse(other) is None and design_sets.base_system(other) == other


def test_the_noise_of_a_point_depends_on_its_lab_and_index_only():
    whole = design_sets.measurement_noise(3, 0, 10, 2, sigma=1.0)
    assert whole.shape == (10, 2)
    np.testing.assert_array_equal(design_sets.measurement_noise(3, 5, 5, 2, sigma=1.0), whole[5:])
    np.testing.assert_allclose(design_sets.measurement_noise(3, 0, 10, 2, sigma=2.5), 2.5 * whole)
    assert not np.allclose(design_sets.measurement_noise(4, 0, 10, 2, sigma=1.0), whole)


def test_a_config_with_design_sets_is_validated():
    config = dataclasses.replace(PLAN, design_methods=(), design_replicates=0,
                                 design_sets=(set_name("hill2", "uniform", 0),)).validate()
    assert config.reference(set_name("hill3", "uniform", 0)) == "hill3"
    for sets, arms, field in ((("hill4@uniform@r0",), ("transfer",), "design_sets"),
                              (("hill2@uniform@r0",), ("transfer", "oracle"), "arms")):
        with pytest.raises(ConfigError, match=field):
            dataclasses.replace(config, design_sets=sets, arms=arms).validate()
    with pytest.raises(ConfigError, match="design_region"):
        dataclasses.replace(PLAN, design_region="everywhere").validate()
    with pytest.raises(ConfigError, match="the oracle does not depend"):  # the plan, before any work
        dataclasses.replace(PLAN, arms=("transfer", "baseline", "oracle")).validate()
    for bad, says in ((dict(design_methods=("uniform", "nope")), "design_methods"),
                      (dict(design_candidates=5), "design_candidates=5")):
        with pytest.raises(ValueError, match=says):
            design_study._check_plan(dataclasses.replace(PLAN, **bad))


def test_a_lab_picks_from_fresh_candidates_each_round_and_aims_at_the_same_targets():
    first, second = PLAN.design_pool(1, 12), PLAN.design_pool(1, 20)
    assert first.shape == second.shape == (60, 2)
    assert not np.allclose(first[:40], second[:40])  # fresh candidates
    np.testing.assert_array_equal(first[40:], second[40:])  # the same targets
    assert PLAN.small_box.contains(first[:40]).all() and not PLAN.small_box.contains(first[40:]).all()
    big = dataclasses.replace(PLAN, design_region="big").design_pool(1, 12)
    assert not PLAN.small_box.contains(big[:40]).all()


def test_each_round_is_one_sweep_whose_labs_stack_into_one_job_per_arm():
    start = design_study.round_config(PLAN, 0)
    assert start.volumes == (12,) and start.design_methods == ()
    assert set(start.design_sets) == {set_name(s, START, r) for s in ("hill2", "hill3") for r in range(3)}
    assert {job.arm for job in plan_jobs(start)} == {"pretrain", "transfer", "baseline"}
    later = design_study.round_config(PLAN, 1)
    assert len(later.design_sets) == 2 * 2 * 3 and later.design_candidates == 40
    assert design_study.round_config(PLAN, 2).design_candidates == 0  # the last round picks nothing
    assert real_sets(later) == [(name, 20) for name in later.design_sets]
    jobs = {job.arm: job for job in plan_jobs(later)}
    assert set(jobs) == {"pretrain", "transfer"} and len(jobs["transfer"].members) == 12 * 2  # labs x seeds
    # The baseline labs: those of the methods that need no ensemble, at every N at once.
    plan = dataclasses.replace(PLAN, design_methods=("uniform", "variance_reduction"), design_reference_volumes=(40, 56))
    baseline = design_study.baseline_config(plan)
    assert set(baseline.design_sets) == {set_name(s, "uniform", r) for s in ("hill2", "hill3") for r in range(3)}
    assert baseline.volumes == (20, 28) and {job.arm for job in plan_jobs(baseline)} == {"baseline"}
    # The reference methods' further rounds: the transfer arm only, every further N at once.
    reference = design_study.reference_config(plan)
    assert reference.volumes == (40, 56) and reference.design_sets == baseline.design_sets
    assert {job.arm for job in plan_jobs(reference)} == {"pretrain", "transfer"}
    assert design_study.all_volumes(plan) == [12, 20, 28, 40, 56]
    without = dataclasses.replace(plan, design_methods=("variance_reduction",), arms=("transfer",))
    assert design_study.baseline_config(without) is None and design_study.reference_config(without) is None


def _record(arm, system, volume, seed, predictions, l1):
    return dict(arm=arm, system=system, volume=volume, seed=seed, eval_predictions=predictions, l1_mean=l1)


def test_a_lab_is_scored_by_its_ensemble_mean_and_its_start_counts_for_every_method():
    class Scoring:
        inside = np.array([True, False])

        @staticmethod
        def truth_of(system):
            return np.zeros((2, 1))

    start = set_name("hill2", START, 0)
    records = [_record("transfer", start, 12, 0, [[1.0], [3.0]], 2.0), _record("transfer", start, 12, 1, [[-1.0], [1.0]], 1.0),
               _record("pretrain", "synthetic", 64, 0, [[0.0], [0.0]], 0.0)]
    rows = design_study.lab_scores(PLAN, Scoring, records)
    assert [r["method"] for r in rows] == ["uniform", "space_filling"]
    row = rows[0]
    assert (row["l1"], row["l1_inside"], row["l1_outside"], row["member_l1"], row["members"]) == (1.0, 0.0, 2.0, 1.5, 2)


def test_the_saving_against_uniform_is_read_at_equal_l1_on_its_longer_curve():
    plan = dataclasses.replace(PLAN, systems=("hill2",), volumes=(10, 20, 40), arms=("transfer", "baseline"),
                               design_methods=("uniform", "variance_reduction"), design_replicates=4,
                               design_reference_volumes=(80,))
    rng = np.random.default_rng(0)
    rows = []
    for r in range(4):
        jitter = 1 + 0.01 * rng.standard_normal()
        for arm in ("transfer", "baseline"):
            for method, curve in (("uniform", [4.0, 2.0, 1.0, 0.5]), ("variance_reduction", [4.0, 1.0, 0.5])):
                volumes = (10, 20, 40, 80) if arm == "transfer" else (10, 20, 40)
                for volume, l1 in zip(volumes, curve):
                    rows.append(dict(system="hill2", arm=arm, method=method, replicate=r, volume=volume,
                                     l1=l1 * jitter, l1_inside=l1, l1_outside=l1))
    summary = design_report.summarize_design(plan, rows)
    transfer = summary["hill2"]["transfer"]["variance_reduction"]
    assert summary["hill2"]["transfer"]["uniform"]["volumes"] == [10, 20, 40, 80]
    for volume in ("20", "40"):  # uniform needs twice the measurements for the same L1
        assert transfer["saving_vs_uniform"][volume]["value"] == pytest.approx(0.5, abs=0.01)
        assert transfer["saving_vs_uniform"][volume]["bound"] == ""
    assert transfer["saving_vs_uniform"]["40"]["ci95"][0] > 0.4
    # The baseline arm: the labs of the methods that need no ensemble, without further rounds.
    assert set(summary["hill2"]["baseline"]) == {"uniform"}
    assert summary["hill2"]["baseline"]["uniform"]["volumes"] == [10, 20, 40]
    assert transfer["wilcoxon_vs_uniform"]["20"]["first_better"] == 4
    from tlkeras.storage.rundir import RunDir

    assert "did not improve" not in design_report.markdown(plan, summary, {}, RunDir(Path("/nonexistent")))
    flat = [dict(row, l1=4.0) if row["method"] == "uniform" else row for row in rows]  # uniform never improves
    text = design_report.markdown(plan, design_report.summarize_design(plan, flat), {}, RunDir(Path("/nonexistent")))
    assert "**uniform did not improve with more measurements here**" in text
    best = design_report.best_method(plan, summary)
    assert best["method"] == "variance_reduction"
    assert best["scores"]["variance_reduction"]["mean_saving_vs_uniform"] == pytest.approx(0.5, abs=0.01)


def test_a_ray_task_trains_a_lab_from_the_points_it_is_shipped():
    """What a Ray worker on another machine gets: the round's config and the lab's points as
    bytes (`JobInputs.design`), no run directory. Its members train on exactly those points."""
    import io

    from tlkeras.core.members import Member, StackJob
    from tlkeras.core.options import SweepOptions
    from tlkeras.execution.ray_backend import ShippedConfig, run_stack_job

    plan = dataclasses.replace(PLAN, systems=("hill2",), epochs=3, pretrain_epochs=2, pretrain_size=32,
                               eval_points=20, design_replicates=1)
    config = design_study.round_config(plan, 1)
    name = set_name("hill2", "uniform", 0)
    points = np.random.default_rng(5).uniform(0, 10, size=(20, 2))
    buffer = io.BytesIO()
    np.save(buffer, points)
    job = StackJob("baseline", 20, 3, 0, (Member("baseline", name, 20, 0), Member("baseline", name, 20, 1)))
    output = run_stack_job(ShippedConfig.of(config), SweepOptions(report=lambda line: None), job, {},
                           {name: buffer.getvalue()}, [])
    assert [m.member for m in output.members] == list(job.members)
    assert all(np.isfinite(m.record["l1_mean"]) for m in output.members)
    np.testing.assert_array_equal(design_sets.points(name), points)
    from tlkeras.execution.training import training_set

    x, _ = training_set(config, job.members[0])
    np.testing.assert_allclose(x, points.astype(np.float32))
