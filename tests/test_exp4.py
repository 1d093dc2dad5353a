"""Experiment 4 end to end as a user runs it: stopped by SIGTERM after a round, resumed, reported.

The run (conftest `exp4_run`, in the background): one system, every method, 2 labs, 2 rounds of
picks and the reference methods' further rounds, tiny epochs. The first session is stopped by
SIGTERM once round 1 is recorded (TLKERAS_FAULT at `design.round.finished#2`: no race), the second
resumes it.
"""

import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_driver, tiny_flags

from tlkeras.core.config import StudyConfig
from tlkeras.design.methods import METHODS
from tlkeras.execution import design_study
from tlkeras.storage.rundir import RunDir
from tlkeras.systems.design_sets import START, set_name

pytestmark = pytest.mark.integration


def test_a_stopped_exp4_resumes_where_it_stopped(exp4_run):
    run, stopped, resumed = exp4_run
    assert stopped.returncode == 143, stopped.stdout[-2000:] + stopped.stderr[-2000:]
    assert "Resume with:" in stopped.stdout + stopped.stderr
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    # Rounds 0 and 1 were recorded before the stop: the resumed session trains nothing of them.
    for k, line in ((0, "round 0 of"), (1, "round 1 of")):
        after = resumed.stdout.split(line, 1)[1].split("round", 1)[0]
        assert " 0 to train" in after and "start  [" not in after, (k, after[:500])
    assert "start  [transfer | n=28" in resumed.stdout


def test_every_lab_starts_alike_and_adds_distinct_picks_inside_the_region(exp4_run):
    run, _, _ = exp4_run
    plan = StudyConfig.from_json((run / "config.json").read_text())
    assert plan.volumes == (12, 20, 28) and plan.design_reference_volumes == (36, 44)  # --reference_until=44
    volumes = design_study.all_volumes(plan)
    for r in range(plan.design_replicates):
        start = np.load(RunDir(run / "round0").design_path(set_name("hill2", START, r)))
        assert start.shape == (12, 2)
        for method in METHODS:
            before = start
            for k in (1, 2):
                points = np.load(RunDir(run / f"round{k}").design_path(set_name("hill2", method, r)))
                assert points.shape == (volumes[k], 2)
                np.testing.assert_array_equal(points[: len(before)], before)  # a lab keeps what it measured
                assert len(np.unique(points, axis=0)) == len(points)
                assert plan.small_box.contains(points).all()
                before = points
    # Labs differ: their own starting pairs.
    assert not np.allclose(np.load(RunDir(run / "round0").design_path(set_name("hill2", START, 0))),
                           np.load(RunDir(run / "round0").design_path(set_name("hill2", START, 1))))


def test_the_picks_are_a_function_of_the_recorded_run(exp4_run, tmp_path):
    # Round 2's picks, made again from round 1's records on disk, are those the run trained on.
    run, _, _ = exp4_run
    plan = StudyConfig.from_json((run / "config.json").read_text())
    config = design_study.round_config(plan, 1)
    folder = design_study.round_folder(run, 1)
    from tlkeras.core.options import SweepOptions
    from tlkeras.execution.sweep import SweepRunner

    records = SweepRunner(config, folder, SweepOptions()).records()
    again = RunDir(tmp_path)
    design_study._write_points(plan, 2, again, (config, folder, records))
    for name in design_study.round_config(plan, 2).design_sets:
        np.testing.assert_array_equal(np.load(again.design_path(name)),
                                      np.load(RunDir(run / "round2").design_path(name)), err_msg=name)


def test_exp4_reports_every_method_with_savings_tests_and_tensorboard(exp4_run):
    run, _, _ = exp4_run
    results = json.loads((run / "results.json").read_text())
    assert results["methods"] == list(METHODS) and results["replicates"] == 2
    for arm, methods in (("transfer", METHODS), ("baseline", ("uniform", "space_filling"))):
        cell = results["summary"]["hill2"][arm]
        assert set(cell) == set(methods)
        starts = {round(entry["mean"][0], 12) for entry in cell.values()}
        assert len(starts) == 1  # round 0 is the same lab for every method
        for method, entry in cell.items():
            assert all(np.isfinite(entry["mean"])) and entry["volumes"][:3] == [12, 20, 28]
            if method != "uniform":
                assert set(entry["saving_vs_uniform"]) == {"20", "28"}
                assert set(entry["wilcoxon_vs_uniform"]) == {"20", "28"}
    assert results["summary"]["hill2"]["transfer"]["uniform"]["volumes"] == [12, 20, 28, 36, 44]
    assert results["summary"]["hill2"]["baseline"]["uniform"]["volumes"] == [12, 20, 28]
    assert results["best"]["method"] in METHODS
    rows = (run / "results.csv").read_text().splitlines()
    assert rows[0].startswith("system,arm,method,replicate,volume,l1")
    markdown = (run / "results.md").read_text()
    assert "**Best method**" in markdown and "## hill2, transfer" in markdown and "Further rounds" in markdown
    for figure in ("l1_by_volume.png", "picks_hill2_round1.png", "picks_hill2_round2.png"):
        assert (run / "figures" / figure).stat().st_size > 10_000
    steps = {}
    for path in (run / "tensorboard" / "hill2" / "transfer" / "variance_reduction").glob("events.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                steps.setdefault(value.tag, []).append(event.step)
    assert steps["exp4/hill2/l1_ensemble_mean"] == [12, 20, 28]
    assert steps["exp4/hill2/saving_vs_uniform"] == [20, 28]
    images = list((run / "tensorboard" / "hill2" / "picks").glob("events.*"))
    assert images
    # Members' own runs (loss curves, histograms): the first lab's, standing for the others.
    members = run / "round1" / "tensorboard" / "transfer"
    assert list((members / "hill2@uniform@r0" / "n20" / "seed0").glob("events.*"))
    assert not (members / "hill2@uniform@r1").exists()


@pytest.mark.parametrize("flags, named", [
    (["--batch=50", "--candidates=10"], "--batch=50"),
    (["--methods=uniform,bogus"], "--methods"),
    (["--region=everywhere"], "--region"),
    (["--rounds=0"], "--rounds"),
])
def test_bad_exp4_flags_fail_in_one_line_before_any_work(tmp_path, flags, named):
    result = run_driver("exp4.py", [*tiny_flags(tmp_path), *flags])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert not (tmp_path / "exp4").exists()
