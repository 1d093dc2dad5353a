"""`tlkeras predict` and `tlkeras evaluate` never lose a lab's data or trust: an --out that is an
input is refused even with --overwrite, a g that has changed or gone is said before anything is
loaded, in-sample and out-of-domain scores are flagged, and a points file's own columns are kept.

Real commands on the shared example fit (conftest's `example_fits`), called in this process
(`tlkeras_here`: test_cli runs them as fresh processes); a test that changes a model folder, or
would write into one were it broken, works on a copy.
"""

import csv
import json
import os
import shutil
import zipfile

import pytest
from conftest import EXAMPLE, tlkeras_here

pytestmark = pytest.mark.integration  # processes: commands


@pytest.fixture(scope="module")
def fitted(example_fits):
    out, _, result = example_fits
    assert result.returncode == 0, result.stderr
    return out


def copy_model(fitted, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(fitted, copy)
    return copy


def edit_manifest(folder, change) -> dict:
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def one_error(result, *words) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr
    return result.stderr


def warnings_of(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning: ")]


def plate_rows(path, count, extra=()):
    """The header and the first `count` rows of the example plate (another file than the fit's), then `extra`."""
    lines = (EXAMPLE / "plate.csv").read_text().splitlines()
    path.write_text("\n".join([*lines[: count + 1], *extra]) + "\n")
    return path


def test_evaluate_out_that_exists_is_refused_unless_overwrite_and_rows_outside_the_domain_warn(fitted, tmp_path):
    test_csv = plate_rows(tmp_path / "test.csv", 20, ["X1/plate9,150,100,5000,5000", "X2/plate9,20,1500,5000,5000"])
    scores = tmp_path / "scores.json"
    scores.write_text("last week's scores\n")
    refused = tlkeras_here("evaluate", f"--model={fitted}", f"--measurements={test_csv}", f"--out={scores}")
    one_error(refused, f"--out={scores} already exists", "--overwrite")
    assert scores.read_text() == "last week's scores\n"
    result = tlkeras_here("evaluate", f"--model={fitted}", f"--measurements={test_csv}", f"--out={scores}", "--overwrite")
    assert result.returncode == 0, result.stderr
    assert warnings_of(result) == ["warning: 2 of 22 rows lie outside the model's domain; the simple model taught "
                                   "it nothing there"]
    written = json.loads(scores.read_text())
    assert written["scores"]["gfp"]["all"]["rows"] == 22 and written["sha256"] != json.loads(
        (fitted / "manifest.json").read_text())["measurements"]["sha256"]


def test_an_out_that_is_an_input_is_refused_even_with_overwrite(fitted, tmp_path):
    points = tmp_path / "points.csv"
    points.write_text("well,aTc,IPTG\nA1,5,10\n")
    test_csv = plate_rows(tmp_path / "test.csv", 12)
    before = {path: path.read_bytes() for path in (points, test_csv)}
    os.symlink(points, tmp_path / "points_link.csv")
    os.link(test_csv, tmp_path / "test_hardlink.csv")
    for out in (points, tmp_path / "points_link.csv", tmp_path / "sub" / ".." / "points.csv"):
        result = tlkeras_here("predict", f"--model={fitted}", f"--inputs={points}", f"--out={out}", "--overwrite")
        one_error(result, f"--out={out} is the --inputs file", "it would be overwritten")
    result = tlkeras_here("predict", f"--model={fitted}", f"--inputs={tmp_path / 'points_link.csv'}", f"--out={points}",
                     "--overwrite")
    one_error(result, "is the --inputs file")
    for out in (test_csv, tmp_path / "test_hardlink.csv"):
        result = tlkeras_here("evaluate", f"--model={fitted}", f"--measurements={test_csv}", f"--out={out}", "--overwrite")
        one_error(result, f"--out={out} is the --measurements file; give another file name (it would be overwritten)")
    assert {path: path.read_bytes() for path in (points, test_csv)} == before
    assert not (tmp_path / "sub").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["points.csv", "points_link.csv", "test.csv",
                                                          "test_hardlink.csv"]  # no partial file either


def test_an_out_in_the_model_folder_or_on_the_data_it_was_fitted_on_is_refused(fitted, tmp_path):
    model = copy_model(fitted, tmp_path)
    plate = tmp_path / "plate.csv"
    shutil.copy(EXAMPLE / "plate.csv", plate)
    edit_manifest(model, lambda m: m["measurements"].update(path=str(plate)))
    files = {path: path.read_bytes() for path in model.rglob("*") if path.is_file()}
    os.link(model / "manifest.json", tmp_path / "manifest_link.json")
    for out in (model / "pred.csv", model / "models" / "transfer" / "new.csv", model):
        one_error(tlkeras_here("predict", f"--model={model}", "--grid=2", f"--out={out}", "--overwrite"),
                  f"--out={out} is ", "--model folder", "it would overwrite the model")
    for out in (model / "manifest.json", tmp_path / "manifest_link.json"):
        one_error(tlkeras_here("evaluate", f"--model={model}", f"--measurements={EXAMPLE / 'plate.csv'}", f"--out={out}",
                          "--overwrite"), f"--out={out} is ", "--model folder")
    one_error(tlkeras_here("predict", f"--model={model}", "--grid=2", f"--out={plate}", "--overwrite"),
              "is the CSV this model was fitted on")
    assert {path: path.read_bytes() for path in model.rglob("*") if path.is_file()} == files
    assert plate.read_bytes() == (EXAMPLE / "plate.csv").read_bytes()


def test_a_changed_simple_model_warns_and_strict_refuses_and_scores_on_the_fitted_csv_are_called_in_sample(
        fitted, tmp_path):
    model = copy_model(fitted, tmp_path)
    now = json.loads((model / "manifest.json").read_text())["simple"]["sha256"]
    recorded = "0123456789ab" + "0" * 52  # as if g's file had been edited since the fit
    manifest = edit_manifest(model, lambda m: m["simple"].update(sha256=recorded))
    result = tlkeras_here("evaluate", f"--model={model}", f"--measurements={EXAMPLE / 'plate.csv'}", "--arm=residual")
    assert result.returncode == 0, result.stderr  # warnings, one line each, and the run goes on
    changed, in_sample = warnings_of(result)
    assert result.stderr.count("\n") == 2 and "residual members" in result.stdout
    assert manifest["simple"]["reference"] in changed and now[:12] in changed and "0123456789ab" in changed
    assert "predictions may differ from the fit's" in changed and "--arm=residual" in changed
    assert f"--measurements={EXAMPLE / 'plate.csv'}" in in_sample and "in-sample, not a test of the model" in in_sample
    strict = tlkeras_here("predict", f"--model={model}", "--grid=2", f"--out={tmp_path / 'strict.csv'}", "--arm=residual",
                     "--strict")
    one_error(strict, "has changed since this model was fitted", now[:12], "--strict", "--arm=transfer")
    assert not (tmp_path / "strict.csv").exists()
    strict = tlkeras_here("evaluate", f"--model={model}", f"--measurements={EXAMPLE / 'plate.csv'}", "--arm=residual",
                     "--strict", f"--out={tmp_path / 'strict.json'}")
    one_error(strict, "has changed since this model was fitted")
    assert not (tmp_path / "strict.json").exists()


def test_a_missing_simple_model_names_it_and_the_arms_that_do_not_need_it(fitted, tmp_path):
    model = copy_model(fitted, tmp_path)
    old = json.loads((model / "manifest.json").read_text())["simple"]["reference"]
    gone = f"{tmp_path / 'moved' / 'simple_model.py'}:g"
    manifest = edit_manifest(model, lambda m: m["simple"].update(reference=gone))
    for member in manifest["ensembles"]["residual"]:  # as a fit with g at that path would have saved it
        with zipfile.ZipFile(model / member) as archive:
            entries = {name: archive.read(name) for name in archive.namelist()}
        assert old.encode() in entries["config.json"]
        entries["config.json"] = entries["config.json"].replace(old.encode(), gone.encode())
        with zipfile.ZipFile(model / member, "w") as archive:
            for name, data in entries.items():
                archive.writestr(name, data)
    result = tlkeras_here("predict", f"--model={model}", "--grid=2", f"--out={tmp_path / 'r.csv'}", "--arm=residual")
    error = one_error(result, gone, "does not exist", "--arm=transfer", "--arm=baseline", "--arm=l2_sp_extrapolation")
    assert "--arm=residual" not in error.split("need g")[1] and "deserializ" not in error
    assert not (tmp_path / "r.csv").exists()
    one_error(tlkeras_here("evaluate", f"--model={model}", f"--measurements={EXAMPLE / 'plate.csv'}", "--arm=residual"),
              gone, "--arm=transfer")
    result = tlkeras_here("predict", f"--model={model}", "--grid=2", f"--out={tmp_path / 't.csv'}", "--arm=transfer",
                     "--strict")
    assert result.returncode == 0 and result.stderr == "", result.stderr  # transfer never evaluates g


def test_predict_carries_the_columns_of_the_inputs_file_and_nokeep_columns_drops_them(fitted, tmp_path):
    points = tmp_path / "wells.csv"
    points.write_text('well,IPTG,note,aTc,volume_ul\nB7/plate2,10,"dim, redo",5,1.50\nA1/plate2,200,,20.0,2e1\n'
                      "C3/plate2,0,ok,0,40\n")
    out = tmp_path / "pred.csv"
    result = tlkeras_here("predict", f"--model={fitted}", f"--inputs={points}", f"--out={out}")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    rows = list(csv.reader(out.read_text().splitlines()))
    assert rows[0] == ["well", "IPTG", "note", "aTc", "volume_ul", "gfp_mean", "gfp_sd", "gfp_lower", "gfp_upper",
                       "rfp_mean", "rfp_sd", "rfp_lower", "rfp_upper"]
    assert [row[:5] for row in rows[1:]] == [["B7/plate2", "10", "dim, redo", "5", "1.50"],
                                             ["A1/plate2", "200", "", "20.0", "2e1"],
                                             ["C3/plate2", "0", "ok", "0", "40"]]  # as typed, in order
    assert all(float(row[6]) >= 0 and float(row[10]) >= 0 for row in rows[1:])
    plain = tmp_path / "plain.csv"
    result = tlkeras_here("predict", f"--model={fitted}", f"--inputs={points}", f"--out={plain}", "--nokeep_columns",
                     "--raw")
    assert result.returncode == 0, result.stderr
    assert "interval" not in result.stdout  # --raw: the spread alone, as before calibrated intervals
    table = list(csv.reader(plain.read_text().splitlines()))
    assert table[0] == ["aTc", "IPTG", "gfp_mean", "gfp_sd", "rfp_mean", "rfp_sd"]
    assert [row[:2] for row in table[1:]] == [["5.0", "10.0"], ["20.0", "200.0"], ["0.0", "0.0"]]
    assert [row[2:] for row in table[1:]] == [row[5:7] + row[9:11] for row in rows[1:]]  # the same, in order
    clash = tmp_path / "clash.csv"
    clash.write_text("well,aTc,IPTG,gfp_mean\nA1,5,10,123\n")
    one_error(tlkeras_here("predict", f"--model={fitted}", f"--inputs={clash}", f"--out={tmp_path / 'c.csv'}"),
              "'gfp_mean'", "--nokeep_columns")
    assert not (tmp_path / "c.csv").exists()
