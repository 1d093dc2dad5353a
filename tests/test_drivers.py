"""The drivers end to end, as a user runs them: run directory, results, models, figures, events."""

import json
import re
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, only_run_dir, run_driver

pytestmark = pytest.mark.integration  # processes: drivers, commands, servers, signals

# exp1_run and exp2_run (conftest.py): a tiny run of each driver, shared with test_reliability and
# test_tensorboard.


def _event_values(run_dir):
    """{tag: [(step, value or histogram)]} from every event file below run_dir."""
    values = {}
    for path in run_dir.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tensor = tf.make_ndarray(value.tensor) if value.HasField("tensor") else None
                values.setdefault(value.tag, []).append((event.step, tensor))
    return values


def test_run_directory_holds_everything(exp2_run):
    run, result = exp2_run
    for name in ("flags.txt", "config.json", "results.json", "results.csv", "results.md"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["systems"] == ["hill2", "hill3", "phosphorylation"] and config["volumes"] == [48]
    results = json.loads((run / "results.json").read_text())
    cells = {(m["arm"], m["system"], m["seed"]) for m in results["members"]}
    for arm in ("transfer", "baseline", "oracle"):
        for system in ("hill2", "hill3", "phosphorylation"):
            for seed in (0, 1):
                assert (arm, system, seed) in cells
    assert all(np.isfinite(m["l1_mean"]) and m["l1_mean"] > 0 for m in results["members"])
    csv_rows = (run / "results.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 1 + len(results["members"])
    assert "| transfer | hill3 | 48 | 2 |" in (run / "results.md").read_text()
    summary = {(r["arm"], r["system"]): r for r in results["summary"]}
    transfer = summary[("transfer", "hill2")]
    assert transfer["l1_ci95"][0] < transfer["l1_mean"] < transfer["l1_ci95"][1]
    assert transfer["l1_mean"] == pytest.approx(np.mean(transfer["per_seed"]))


def test_a_normal_run_prints_only_its_own_lines(exp2_run):
    # No TensorFlow C++ start-up chatter (oneDNN, CUDA, cuInit, CPU features) from the driver or
    # its worker processes: the output starts with tlkeras' own first line.
    _, result = exp2_run
    assert result.stderr == ""
    assert re.match(r"\[\d\d:\d\d:\d\d\] run directory: ", result.stdout)


def test_progress_names_arm_volume_seeds_and_time_left(exp2_run):
    _, result = exp2_run
    assert re.search(r"\[pretrain \| n=256 \| synthetic \| seeds 0,1 \| 2 members\] epoch \d+/4", result.stdout)
    assert re.search(r"\[transfer \| n=48 \| .* epoch 6/6 .*job ETA", result.stdout)
    assert "sweep: " in result.stdout and "ETA" in result.stdout
    # How well the jobs packed on the workers (issue 25): training seconds over workers x wall time.
    busy = re.search(r"sweep finished in .*: (\d) workers training (\d+)% of the time", result.stdout)
    assert busy and 0 < int(busy.group(2)) <= 100


def test_saved_models_reload_with_plain_keras_and_match_the_scores(exp2_run):
    run, _ = exp2_run
    results = json.loads((run / "results.json").read_text())
    from tlkeras.core.config import StudyConfig
    from tlkeras.nn import data
    from tlkeras.systems.mechanistic import SystemSpec, make_system

    config = StudyConfig.from_json((run / "config.json").read_text())
    x = data.evaluation_points(data.Domain(*config.big_domain), config.eval_points, 2, config.eval_seed)
    for member in results["members"][:4]:
        model = keras.saving.load_model(run / member["model"])
        truth = make_system(SystemSpec.parse(member["system"]), config.system_params)(x.astype(np.float64))
        l1 = np.mean(np.abs(np.asarray(model(x)) - truth))
        assert l1 == pytest.approx(member["l1_mean"], rel=1e-5)
    assert (run / "models/pretrain/synthetic/n256/seed0.keras").is_file()


def test_figures_are_written(exp2_run):
    run, _ = exp2_run
    names = sorted(p.name for p in (run / "figures").glob("*.png"))
    assert "fig5_l1_by_system_n48.png" in names
    assert "fig3_surfaces_hill3.png" in names and "fig4_l1_by_volume_hill2.png" in names
    for path in (run / "figures").glob("*.png"):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_tensorboard_events_hold_curves_histograms_hparams_and_figures(exp2_run):
    run, _ = exp2_run
    transfer = _event_values(run / "tensorboard/transfer/hill3/n48/seed1")
    steps = [step for step, _ in transfer["train/loss"]]
    assert steps == list(range(1, 7))  # pretraining 1-4 and fine-tuning 5-6 on one axis
    assert transfer["eval/point_error"][0][1].shape[-1] == 3  # a histogram (buckets x 3)
    assert {"eval/l1_mean", "eval/l1_inside", "eval/l1_outside", "_hparams_/session_start_info"} <= set(transfer)
    assert "_hparams_/experiment" in _event_values(run / "tensorboard")
    images = _event_values(run / "tensorboard/figures")
    assert any(tag.startswith("figures/surfaces") for tag in images)


def test_other_seeds_give_other_numbers(exp2_run):
    run, _ = exp2_run
    results = json.loads((run / "results.json").read_text())
    for row in results["summary"]:
        assert len(set(row["per_seed"])) == len(row["per_seed"]) == 2, row


def test_flagfile_reruns_the_same_numbers(exp2_run, tmp_path):
    run, _ = exp2_run
    # One worker where exp2_run had two: the numbers do not depend on where the jobs ran.
    result = run_driver("exp2.py", [f"--flagfile={run / 'flags.txt'}", f"--logdir={tmp_path}", "--workers=1"])
    assert result.returncode == 0, result.stderr[-3000:]
    again = only_run_dir(tmp_path, "exp2")
    first = {m["key"]: m["l1_mean"] for m in json.loads((run / "results.json").read_text())["members"]}
    second = {m["key"]: m["l1_mean"] for m in json.loads((again / "results.json").read_text())["members"]}
    assert first == second  # bit for bit: same flags, same seeds, same code path
    recorded = {line.split("=", 1)[0] for line in (run / "flags.txt").read_text().splitlines()}
    # Every flag that determines a result (the strategies' too), none of where it ran.
    assert {"--strategies", "--l2_sp_alpha", "--wise_ft_folds", "--seeds", "--hill_n", "--volume"} <= recorded
    assert not recorded & {"--workers", "--backend", "--ray_address", "--run_dir", "--resume"}


def test_a_run_directory_written_by_0_2_0_resumes_or_is_refused_in_one_line(tmp_path):
    """A finished run of tlkeras 0.2.0 (tests/fixtures/run_v0_2_0): its own flags.txt resumes it
    (nothing left to train: the report is written again); other flags are refused, naming them."""
    run = tmp_path / "exp1" / "20261203-040623-0"
    shutil.copytree(REPO / "tests" / "fixtures" / "run_v0_2_0", run)
    old_flags = [f"--flagfile={run / 'flags.txt'}", f"--run_dir={run}", f"--logdir={tmp_path}", "--nocache",
                 "--workers=1"]
    resumed = run_driver("exp1.py", old_flags)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "done." in resumed.stdout and (run / "results.md").exists() and (run / "figures").is_dir()
    refused = run_driver("exp1.py", [*old_flags, "--seeds=0,1"])
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "seeds" in refused.stderr, refused.stderr


def test_exp1_driver_sweeps_volumes(exp1_run):
    run, _ = exp1_run  # --volumes=40,96 --hill_n=3
    results = json.loads((run / "results.json").read_text())
    rows = {(r["arm"], r["system"], r["volume"]) for r in results["summary"]}
    assert rows == {("transfer", "hill3", 40), ("transfer", "hill3", 96), ("baseline", "hill3", 40),
                    ("baseline", "hill3", 96), ("oracle", "hill3", 128)}
    assert (run / "figures/fig4_l1_by_volume_hill3.png").is_file()
    # The headline and the spread's calibration, computed from the members it lists.
    (headline,) = results["headline"]
    assert headline["system"] == "hill3" and [t["volume"] for t in headline["tests"]] == [40, 96]
    assert set(headline["saving"]) == {"40", "96"} and set(headline["oracle_reach"]) == {"transfer", "baseline"}
    assert {(c["arm"], c["seeds"]) for c in results["coverage"]} >= {("transfer", 2), ("baseline", 2)}
    assert "How much real data does transfer save?" in (run / "results.md").read_text()


def test_interval_replicates_fit_one_data_set_each_and_report_the_calibrated_intervals(interval_run):
    """--interval_replicates: per system and volume, data sets fitted as `tlkeras fit` does, their
    intervals scored against the truth and fresh readings, in results.md (docs/intervals.md)."""
    run, result = interval_run  # conftest: --interval_replicates=2, one seed
    assert "--interval_replicates=2" in (run / "flags.txt").read_text().splitlines()
    records = [json.loads(line) for line in (run / "intervals" / "checks.jsonl").read_text().splitlines()]
    assert [(r["system"], r["volume"], r["replicate"]) for r in records] == [("hill2", 40, 0), ("hill2", 40, 1)]
    data = sorted((run / "intervals" / "data").glob("*.csv"))
    assert len(data) == 2 and data[0].read_text() != data[1].read_text()  # one data set per replicate
    assert len(data[0].read_text().splitlines()) == 41 and not any((run / "intervals" / "models").iterdir())
    for record in records:
        for arm in ("transfer", "baseline"):
            inside = record["arms"][arm]["readings"]["inside"]["calibrated"]
            assert inside["coverage"]["50"] <= inside["coverage"]["90"] <= inside["coverage"]["95"]
            assert inside["width_90"] > 0
    text = (run / "results.md").read_text()
    assert "## Calibrated intervals, one data set per replicate" in text
    assert "| random | hill2 | 40 | transfer | 2 |" in text and "| random | hill2 | 40 | baseline | 2 |" in text
    assert "intervals: hill2 N=40 data set 2 of 2 fitted and scored" in result.stdout


@pytest.mark.parametrize(
    "script, flag, fragment",
    [
        ("exp1.py", "--volumes=-5", "--volumes"),
        ("exp1.py", "--epochs=-1", "--epochs"),
        ("exp1.py", "--hill_n=0", "--hill_n"),
        ("exp2.py", "--hill_n=0", "--hill_n"),
        ("exp1.py", "--big_domain=20,0", "big_domain"),
        ("exp1.py", "--system=magic", "magic"),
        ("exp2.py", "--pretrain_epochs=2000", "--pretrain_epochs"),
        ("exp1.py", "--seeds=1,1", "--seeds"),
        ("exp1.py", "--activation=sine", "--activation"),
        ("exp2.py", "--real_noise=nan", "--real_noise"),
    ],
)
def test_bad_flags_fail_in_one_line_before_any_work(tmp_path, script, flag, fragment):
    result = run_driver(script, [f"--logdir={tmp_path}", flag], timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], result.stderr
    assert not any(tmp_path.iterdir())  # no run directory was created
