"""Calibrated prediction intervals end to end: a fit records its calibration (manifest, report,
figure, TensorBoard hparams metrics); on fresh readings of the example's known truth and noise
the calibrated 90% interval covers 85-95% inside the measured region; predict's --level and
--raw; bad levels, too few rows and a model folder without a calibration.

Real commands on the shared example fit (conftest's `example_fits`: quick preset, 5 random
folds, 300 rows), called in this process (`tlkeras_here`); a test that changes a model folder
works on a copy.
"""

import csv
import importlib.util
import json
import shutil

import numpy as np
import pytest
from conftest import EXAMPLE, tlkeras_here

pytestmark = pytest.mark.integration  # processes: commands

ARMS = {"transfer", "l2_sp_extrapolation", "residual", "baseline"}


@pytest.fixture(scope="module")
def fitted(example_fits):
    out, _, result = example_fits
    assert result.returncode == 0, result.stderr
    return out


def fresh_readings(path, count: int, seed: int, atc_max=50.0, iptg_max=500.0):
    """`count` new readings of the example's truth with its noise (make_plate.py: sd 800), on the
    measured range: what the lab would get by measuring again."""
    spec = importlib.util.spec_from_file_location("plate_simple_model", EXAMPLE / "simple_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    truth = module.truth
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.uniform(0, atc_max, count), rng.uniform(0, iptg_max, count)])
    y = truth(x) + rng.normal(0.0, 800.0, size=(count, 2))
    path.write_text("aTc,IPTG,gfp,rfp\n" + "".join(f"{a:.4f},{b:.4f},{c:.2f},{d:.2f}\n" for a, b, c, d in
                                                   np.concatenate([x, y], axis=1)))
    return path


def one_error(result, *words):
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def test_a_fit_records_its_calibration_in_the_manifest_report_figure_and_tensorboard(fitted):
    manifest = json.loads((fitted / "manifest.json").read_text())
    calibration = manifest["calibration"]
    assert calibration["method"] == "cv_plus_normalised" and set(calibration["arms"]) == ARMS
    summary = calibration["arms"]["transfer"]
    assert summary["rows"] == 300 and summary["folds"] == 5 and summary["fold_kind"] == "random"
    assert all(q > 0 for q in summary["score_q90"].values())
    stored = json.loads((fitted / calibration["file"]).read_text())["residual"]
    assert sorted(set(stored["row_fold"])) == [0, 1, 2, 3, 4] and len(stored["scores"]) == 300
    assert all((fitted / path).is_file() for paths in stored["members"].values() for path in paths)
    report = (fitted / "report.md").read_text()
    assert "## Prediction intervals (calibrated)" in report and "| residual | " in report
    assert (fitted / "figures" / "fit_calibration.png").stat().st_size > 10_000
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = EventAccumulator(str(fitted / "tensorboard" / "calibration" / "transfer")).Reload()
    assert {"calibration/coverage_90", "calibration/width_90", "calibration/coverage_calibrated"} <= set(
        run.Tags()["tensors"])
    levels = [event.step for event in run.Tensors("calibration/coverage_calibrated")]
    assert levels == [50, 80, 90, 95]
    assert "_hparams_/session_start_info" in run.PluginTagToContent("hparams")  # a row of the hparams table
    root = EventAccumulator(str(fitted / "tensorboard")).Reload()
    config = root.PluginTagToContent("hparams")["_hparams_/experiment"]
    assert b"calibration/coverage_90" in config and b"calibration/width_90_raw" in config


def test_the_calibrated_90_interval_covers_85_to_95_percent_of_fresh_readings_inside(fitted, tmp_path):
    fresh = fresh_readings(tmp_path / "fresh.csv", 2000, seed=2024)
    out, figure = tmp_path / "scores.json", tmp_path / "calibration.png"
    result = tlkeras_here("evaluate", f"--model={fitted}", f"--measurements={fresh}", f"--out={out}", f"--figure={figure}")
    assert result.returncode == 0, result.stderr
    scores = json.loads(out.read_text())["scores"]
    for name in ("gfp", "rfp"):
        inside = scores[name]["inside_measured"]
        assert inside["rows"] > 1900
        assert 0.85 <= inside["coverage_calibrated"]["90"] <= 0.95, (name, inside["coverage_calibrated"])
        covered = [inside["coverage_calibrated"][level] for level in ("50", "80", "90", "95")]
        assert covered == sorted(covered) and covered[0] < 0.65  # nested: a wider level never covers less
        assert inside["width_90"] > 0 and inside["interval_score_90"] >= inside["width_90"]
        assert set(inside["coverage_raw"]) == {"50", "80", "90", "95"}
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000
    assert "90% cal" in result.stdout


def test_predict_writes_the_interval_at_level_nested_and_widening_outside(fitted, tmp_path):
    """(--raw: test_predict_evaluate's --nokeep_columns run.)"""
    points = tmp_path / "points.csv"
    points.write_text("aTc,IPTG\n10,100\n40,400\n90,900\n")

    def predicted(*flags):
        out = tmp_path / f"p{len(list(tmp_path.iterdir()))}.csv"
        result = tlkeras_here("predict", f"--model={fitted}", f"--inputs={points}", f"--out={out}", *flags)
        assert result.returncode == 0 and result.stderr == "", result.stderr
        with open(out) as handle:
            return list(csv.DictReader(handle)), result.stdout

    at_90, said = predicted()
    at_50, said_50 = predicted("--level=0.5")
    assert "90% prediction interval for a new reading" in said and "50% prediction interval" in said_50
    for wide, narrow in zip(at_90, at_50):
        assert float(wide["gfp_mean"]) == float(narrow["gfp_mean"])
        assert float(wide["gfp_lower"]) < float(narrow["gfp_lower"]) < float(narrow["gfp_upper"]) < float(
            wide["gfp_upper"])
    width = [float(r["rfp_upper"]) - float(r["rfp_lower"]) for r in at_90]
    assert width[2] > width[0]  # far outside the measured range the interval widens with the spread


def test_bad_levels_and_too_few_rows_are_one_line_errors_before_any_work(fitted, tmp_path):
    out = tmp_path / "p.csv"
    for level in ("0", "1", "1.5", "-0.1", "nan"):
        one_error(tlkeras_here("predict", f"--model={fitted}", "--grid=3", f"--out={out}", f"--level={level}"),
                  "--level=", "is not allowed: expected a number between 0 and 1")
    one_error(tlkeras_here("predict", f"--model={fitted}", "--grid=3", f"--out={out}", "--level=0.999"),
              "--level=0.999 needs at least 999 calibration rows", "calibrated on 300", "at most 0.9967")
    assert not out.exists()


def test_a_model_folder_without_calibration_still_predicts_and_says_so(fitted, tmp_path):
    old = tmp_path / "old model"
    shutil.copytree(fitted, old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["calibration"]  # as `tlkeras fit` wrote it before calibrated intervals
    (old / "manifest.json").write_text(json.dumps(manifest))
    (old / "calibration.json").unlink()
    out = tmp_path / "p.csv"
    result = tlkeras_here("predict", f"--model={old}", "--grid=3", f"--out={out}")
    assert result.returncode == 0
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("warning: ") and "no calibration" in result.stderr
    assert out.read_text().splitlines()[0] == "aTc,IPTG,gfp_mean,gfp_sd,rfp_mean,rfp_sd"
