"""The `tlkeras` command on the copyable example: fit, predict, evaluate; bad input refused.

Runs `python -m tlkeras.cli` (what the `tlkeras` console script calls) in fresh processes, as a
user would, with the quick preset.
"""

import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import EXAMPLE, FIT, REPO, tlkeras, tlkeras_here
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tlkeras.core.config import StudyConfig

pytestmark = pytest.mark.integration  # processes: drivers, commands, servers, signals



@pytest.fixture(scope="module")
def interrupted_fits(example_fits):
    """The example's fit into "lab models/plate 1" cancelled by SIGTERM, then one killed, with what each
    left (test_a_cancelled_fit_leaves_no_folder_and_a_killed_ones_leftovers_are_swept)."""
    out, left, _ = example_fits
    return out, left


@pytest.fixture(scope="module")
def fitted(example_fits):
    """The example fitted with the quick preset, into the folder the interrupted fits left, with two
    more strategies beside the default (each its own cross-validated ensemble): conftest's `_fits`."""
    out, _, result = example_fits
    assert result.returncode == 0, result.stderr
    return out, result


def test_the_example_fits_into_one_model_folder(fitted):
    out, result = fitted
    assert result.stderr == ""
    assert "ETA" in result.stdout and "done. Report:" in result.stdout
    said = [line.split("] ", 1)[-1] for line in result.stdout.splitlines()]  # without the time stamps
    headline = said[said.index("cross-validated RMSE of each ensemble (5 folds; lower is better):"):]
    assert headline[1].split()[:3] == ["transfer", "(default)", "gfp"] and float(headline[1].split()[3]) > 0
    assert {line.split()[0] for line in headline[1:5]} == {"transfer", "l2_sp_extrapolation", "residual", "baseline"}
    assert "--preset=quick**: small training sets" in (out / "report.md").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"] == ["aTc", "IPTG"] and manifest["outputs"] == ["gfp", "rfp"]
    assert manifest["domain"] == [[0, 100], [0, 1000]]
    assert manifest["measured_region"][0][1] < 50.0 and manifest["measured_region"][1][1] < 500.0
    assert len(manifest["ensembles"]["transfer"]) == len(manifest["ensembles"]["baseline"]) == 2
    assert manifest["simple"]["sha256"] and manifest["measurements"]["rows"] == 300
    assert "--inputs=aTc,IPTG" in manifest["flags"] and "--preset=quick" in manifest["flags"]
    assert (out / "flags.txt").read_text().splitlines() == manifest["flags"]
    assert set(manifest["noise_sd"]) == {"transfer", "l2_sp_extrapolation", "residual", "baseline"}
    assert set(manifest["noise_sd"]["baseline"]) == {"gfp", "rfp"}
    report = (out / "report.md").read_text()
    assert "5-fold cross-validated error" in report and "| transfer | gfp |" in report
    assert (out / "figures" / "fit_slices.png").stat().st_size > 10_000
    assert (out / "figures" / "fit_maps.png").exists()
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(".")]  # nothing half-built left
    assert not (out / ".partial").exists() and not (out / ".lock").exists()
    # 2 seeds x 4 arms x (all rows + 5 folds), residual's with its plain-Keras network, + 2 pretrained.
    assert len(list(out.glob("models/**/*.keras"))) == 2 * 4 * 6 + 2 * 6 + 2
    import tensorflow as tf

    events = list((out / "tensorboard" / "transfer" / "measurements-fold3").glob("n*/seed1/events.out.tfevents.*"))
    tags = {value.tag for path in events for event in tf.compat.v1.train.summary_iterator(str(path))
            for value in event.summary.value}
    assert {"train/loss", "eval/l1_mean", "eval/point_error"} <= tags


def test_fit_help_puts_the_required_flags_first_after_an_example():
    result = tlkeras("fit", "--help")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[2:4] == ["example:", "  tlkeras fit --simple=g.py:g --domain=0,20 --measurements=plate.csv "
                          "--inputs=aTc,IPTG --outputs=gfp,rfp --out=models/plate1"]
    start = lines.index("required:")
    assert [line.split(":")[0].strip() for line in lines[start + 1:start + 7]] == [
        "--simple", "--domain", "--measurements", "--inputs", "--outputs", "--out"]
    assert "--epochs: Epochs of each arm" in result.stdout and "(default: 2000)" in result.stdout
    assert len(lines) < 60


def test_each_member_loads_in_plain_keras_and_speaks_the_users_units(fitted):
    import keras

    out, _ = fitted
    manifest = json.loads((out / "manifest.json").read_text())
    model = keras.saving.load_model(out / manifest["ensembles"]["transfer"][0])  # no custom objects
    with open(EXAMPLE / "plate.csv") as handle:
        rows = list(csv.DictReader(handle))
    x = np.array([[float(r["aTc"]), float(r["IPTG"])] for r in rows], np.float32)
    y = np.array([[float(r["gfp"]), float(r["rfp"])] for r in rows])
    predictions = np.asarray(model(x))
    # Fluorescence in the thousands: a model in normalised units would be off by orders of magnitude.
    rmse = np.sqrt(np.mean((predictions - y) ** 2, axis=0))
    assert (rmse < 0.5 * y.std(axis=0)).all(), rmse


def test_predict_writes_mean_and_sd_per_output_on_a_grid_and_at_given_points(fitted, tmp_path):
    """On a grid, by the command the fit printed, pasted as is (the folder's path has spaces)."""
    out, fit = fitted
    assert " " in str(out)
    printed = {line.split("] ", 1)[1].split(":", 1)[0]: line.split(": ", 1)[1] for line in fit.stdout.splitlines()
               if line.split("] ", 1)[-1].startswith(("predict: ", "browse: "))}
    assert shlex.split(printed["browse"]) == ["tensorboard", "--logdir", str(out / "tensorboard")]
    pasted = shlex.split(printed["predict"])
    assert pasted == ["tlkeras", "predict", f"--model={out}", "--grid=50", "--out=pred.csv"]
    result = tlkeras(*pasted[1:], cwd=tmp_path)  # a fresh process, as pasted: TensorFlow's chatter stays off stderr
    assert result.returncode == 0 and result.stderr == "", result.stderr
    with open(tmp_path / "pred.csv") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == ["aTc", "IPTG", "gfp_mean", "gfp_sd", "gfp_lower", "gfp_upper", "rfp_mean", "rfp_sd",
                              "rfp_lower", "rfp_upper"]
    assert len(table) == 2500 and sorted({float(r["aTc"]) for r in table}) == np.linspace(0, 100, 50).tolist()
    assert all(float(r["gfp_sd"]) >= 0 for r in table)
    assert all(float(r[f"{o}_lower"]) < float(r[f"{o}_upper"]) for r in table for o in ("gfp", "rfp"))
    assert "90% prediction interval for a new reading, cv_plus_normalised (random 5-fold, 300 rows)" in result.stdout
    points = tmp_path / "points.csv"
    points.write_text("IPTG,aTc\n10,5\n2000,50\n")
    result = tlkeras_here("predict", f"--model={out}", f"--inputs={points}", f"--out={tmp_path / 'p.csv'}",
                     "--arm=baseline")
    assert result.returncode == 0 and "1 of 2 points lie outside the model's domain" in result.stderr
    with open(tmp_path / "p.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [(float(r["aTc"]), float(r["IPTG"])) for r in table] == [(5, 10), (50, 2000)]
    again = tlkeras_here(*pasted[1:], cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_evaluate_reports_error_and_coverage_per_output(fitted, tmp_path):
    out, _ = fitted
    from tlkeras.systems.user import load_function

    truth = load_function(f"{EXAMPLE / 'simple_model.py'}:truth")  # as tlkeras loads a lab's function

    rng = np.random.default_rng(99)
    x = np.column_stack([rng.uniform(0, 50, 80), rng.uniform(0, 500, 80)])
    y = truth(x) + rng.normal(0, 800, size=(80, 2))
    test_csv = tmp_path / "test.csv"
    test_csv.write_text("aTc,IPTG,gfp,rfp\n" + "".join(f"{a},{b},{c},{d}\n" for (a, b), (c, d) in zip(x, y)))
    result = tlkeras_here("evaluate", f"--model={out}", f"--measurements={test_csv}", f"--out={tmp_path / 'e.json'}")
    assert result.returncode == 0, result.stderr
    scores = json.loads((tmp_path / "e.json").read_text())["scores"]
    assert set(scores) == {"gfp", "rfp"}
    for by_region in scores.values():
        score = by_region["all"]
        assert 0 < score["l1"] < score["rmse"] * 1.5 and 0 <= score["coverage_2sd"] <= 1 and score["rows"] == 80
        assert score["coverage_2sd"] >= score["coverage_2sd_without_noise"]
        raw = score["coverage_raw"]  # nested intervals: coverage cannot fall as the level rises
        assert list(raw) == ["50", "80", "90", "95"] and 0 <= raw["50"] <= raw["80"] <= raw["90"] <= raw["95"] <= 1
        assert raw["95"] <= score["coverage_2sd"]  # 1.96 sd inside 2 sd
        assert score["interval_score_90_raw"] >= score["width_90_raw"] > 0 and score["crps_raw"] > 0
        assert by_region["inside_measured"]["rows"] + by_region["outside_measured"]["rows"] == 80
    assert "coverage" in result.stdout and "gfp" in result.stdout


def test_a_fit_trains_every_strategy_it_is_given_and_defaults_to_the_first(fitted, tmp_path):
    out, _ = fitted
    manifest = json.loads((out / "manifest.json").read_text())
    arms = {"transfer", "l2_sp_extrapolation", "residual", "baseline"}
    assert manifest["default_arm"] == "transfer"  # fine_tune_all's arm: the first of --strategies
    assert {arm for arm, paths in manifest["ensembles"].items() if len(paths) == 2} == arms
    report = (out / "report.md").read_text()
    assert all(f"| {arm} | rfp |" in report for arm in arms)
    ratios = report.split("over the baseline's")[1]
    assert "| l2_sp_extrapolation | " in ratios and "| residual | " in ratios
    members = json.loads((out / "results.json").read_text())["members"]
    chosen = [m["l2_sp_alpha"] for m in members if m["arm"] == "l2_sp_extrapolation"]
    assert len(chosen) == 2 * 6 and set(chosen) <= set(StudyConfig().l2_sp_alphas)  # 2 seeds x (all + 5 folds)
    from tlkeras.fit.ensemble import Ensemble  # what `tlkeras predict` loads (its CLI: the tests above)

    grid = np.array([[a, b] for a in (0, 50, 100) for b in (0, 500, 1000)], np.float64)
    ensembles = [Ensemble.load(out, "l2_sp_extrapolation"), Ensemble.load(out, "residual")]  # residual: g inside
    means = {e.arm: e.predict(grid)[0] for e in ensembles}
    assert set(means) == {"l2_sp_extrapolation", "residual"}
    assert all(np.isfinite(m).all() and m.shape == (9, 2) for m in means.values())
    assert not np.allclose(means["l2_sp_extrapolation"], means["residual"])  # two different ensembles
    wrong = tlkeras_here("predict", f"--model={out}", "--grid=3", f"--out={tmp_path / 'x.csv'}", "--arm=lp_ft")
    assert wrong.returncode == 2 and "--arm='lp_ft' is not allowed" in wrong.stderr
    refused = tlkeras(*FIT, f"--out={tmp_path / 'never'}", "--strategies=l2_sp,bogus")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "--strategies" in refused.stderr
    assert not (tmp_path / "never").exists()


def test_an_out_folder_holding_a_model_is_refused_unless_overwrite(fitted, tmp_path):
    out, _ = fitted
    before = (out / "manifest.json").read_text()
    result = tlkeras(*FIT, f"--out={out}")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "already holds a model" in result.stderr and "--overwrite" in result.stderr
    assert (out / "manifest.json").read_text() == before
    other = tmp_path / "notes"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    result = tlkeras(*FIT, f"--out={other}", "--overwrite")
    assert result.returncode == 2 and "other files in it" in result.stderr
    assert (other / "thesis.tex").read_text() == "precious"


BROKEN_G = {
    "raises": "def g(x):\n    raise ValueError('bad parameter')\n",
    "nan": "import numpy as np\ndef g(x):\n    return np.full((len(x), 2), np.nan)\n",
    "shape": "import numpy as np\ndef g(x):\n    return np.zeros((len(x), 3))\n",
    "transposed": "import numpy as np\ndef g(x):\n    return np.zeros((2, len(x)))\n",
    "syntax": "def g(x) return x\n",
    "missing": "def f(x):\n    return x\n",
    "scalar": "def g(x):\n    return 1.0\n",
    "strings": "def g(x):\n    return [['a', 'b']] * len(x)\n",
}

HEADERS = ["aTc,IPTG,gfp,rfp", "aTc;IPTG;gfp;rfp", "aTc,IPTG,gfp", "aTc,IPTG,gfp,rfp,extra", "aTc,aTc,IPTG,gfp,rfp",
           "ÅTc,IPTG,gfp,rfp", "aTc\tIPTG\tgfp\trfp", ""]
CELLS = st.one_of(st.sampled_from(["1", "2.5", "nan", "inf", "-inf", "1e400", "1e38", "", "abc", "5e2", "101",
                                   "-3", "0", "\"7\"", "1_0", "２"]),
                  st.floats(min_value=0, max_value=50).map(lambda v: f"{v:.3f}"))


@st.composite
def malformed_csvs(draw):
    kind = draw(st.sampled_from(["rows", "bytes", "few"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    header = draw(st.sampled_from(HEADERS))
    if kind == "few":  # well-formed, but fewer rows than a batch
        count = draw(st.integers(0, 31))
        return (header + "\n" + "1,2,3,4\n" * count).encode()
    rows = draw(st.lists(st.lists(CELLS, min_size=3, max_size=5).map(",".join), min_size=1, max_size=40))
    good = ["1,2,3,4"] * draw(st.integers(0, 40))
    position = draw(st.integers(0, len(good)))
    return (header + "\n" + "\n".join(good[:position] + rows + good[position:]) + "\n").encode()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=malformed_csvs())
def test_malformed_measurements_give_one_line_and_exit_2_and_no_folder(tmp_path, raw):
    measurements = tmp_path / "plate.csv"
    measurements.write_bytes(raw)
    out = tmp_path / "out"
    shutil.rmtree(out, ignore_errors=True)
    # In this process (25 files; a fresh process each would mostly import TensorFlow): a valid one trains here.
    result = tlkeras_here(*FIT[:4], f"--measurements={measurements}", "--inputs=aTc,IPTG", "--outputs=gfp,rfp",
                          "--preset=quick", "--epochs=3", "--pretrain_epochs=2", "--pretrain_size=64",
                          "--seeds=0", "--folds=2", f"--out={out}", f"--cache_dir={tmp_path / 'cache'}", "--workers=1")
    if result.returncode == 0:  # a generated file may happen to be valid: then it must be fully used
        rows = json.loads((out / "manifest.json").read_text())["measurements"]["rows"]
        assert rows >= 32
        return
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert not out.exists() and not list(tmp_path.glob(".out*"))


@pytest.mark.parametrize("name", sorted(BROKEN_G))
def test_a_broken_simple_model_gives_one_line_and_exit_2(tmp_path, name):
    g = tmp_path / "g.py"
    g.write_text(BROKEN_G[name])
    out = tmp_path / "out"
    result = tlkeras("fit", f"--simple={g}:g", *FIT[2:], f"--out={out}", timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert str(g) in result.stderr and not out.exists()


def test_the_package_installs_and_imports_from_any_folder(tmp_path):
    source = tmp_path / "source"  # a copy: building in the checkout would leave build/ there
    shutil.copytree(REPO / "tlkeras", source / "tlkeras", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    target = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                             f"--target={target}", str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (target / "bin" / "tlkeras").exists()
    installed = sorted(p.name for p in target.iterdir() if not p.name.endswith(".dist-info") and p.name != "bin")
    assert installed == ["tlkeras"], installed  # nothing generic beside the package
    check = subprocess.run([sys.executable, "-c", "import tlkeras, tlkeras.cli; print(tlkeras.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(target)))
    assert check.returncode == 0 and str(target) in check.stdout, check.stderr
    usage = subprocess.run([str(target / "bin" / "tlkeras"), "--help"], capture_output=True, text=True, cwd=tmp_path,
                           env=dict(os.environ, PYTHONPATH=str(target)))
    assert usage.returncode == 0 and "fit" in usage.stdout and "predict" in usage.stdout


def test_a_user_system_runs_through_a_driver(tmp_path):
    from conftest import only_run_dir, run_driver, tiny_flags

    models = tmp_path / "three_inputs.py"
    models.write_text(textwrap.dedent('''
        import numpy as np

        def g(x):
            return (x[:, :1] + x[:, 1:2] * x[:, 2:3]) / 10.0

        def f(x):
            return np.sqrt(x[:, :1] + 1.0) + x[:, 1:2] * x[:, 2:3] / 12.0
    '''))
    result = run_driver("exp1.py", [*tiny_flags(tmp_path / "logs"), f"--simple_system={models}:g",
                                    f"--system={models}:f", "--num_inputs=3", "--volumes=40", "--workers=1",
                                    "--eval_points=30"])
    assert result.returncode == 0, result.stderr
    run = only_run_dir(tmp_path / "logs", "exp1")
    config = json.loads((run / "config.json").read_text())
    assert (config["num_inputs"], config["num_outputs"]) == (3, 1) and len(config["simple_source"]) == 64
    summary = json.loads((run / "results.json").read_text())["summary"]
    assert {row["arm"] for row in summary} == {"transfer", "baseline", "oracle"}
    assert all(row["system"] == "three_inputs.f" and np.isfinite(row["l1_mean"]) for row in summary)
    broken = run_driver("exp1.py", [*tiny_flags(tmp_path / "logs2"), f"--simple_system={models}:g",
                                    f"--system={models}:nothing", "--num_inputs=3"])
    assert broken.returncode == 2 and "defines no 'nothing'" in broken.stderr and broken.stderr.count("\n") == 1


def test_a_cancelled_fit_leaves_no_folder_and_a_killed_ones_leftovers_are_swept(interrupted_fits, fitted):
    """SIGTERM mid-training (a scheduler cancelling the job): one line that it was received, one
    that nothing was written; the folder it was building and those made for it are gone; its g was
    imported once (one process). A kill leaves its building folder, which the next fit sweeps."""
    out, left = interrupted_fits
    result, out_exists, hidden = left["cancelled"]
    assert result.returncode == 143, result.stderr
    assert result.stderr.splitlines() == [
        "SIGTERM received: stopping at the next safe point, with everything finished kept (SIGTERM again stops at once)",
        "error: interrupted by SIGTERM; nothing was written to --out"]
    assert not out_exists and hidden is False  # not even the folder "lab models" made for it
    assert len(left["imports"]) == 1
    result, out_exists, hidden = left["killed"]
    assert result.returncode == -9 and not out_exists, result.stderr
    assert len([name for name in hidden if name.startswith(".plate 1.building-")]) == 1  # what a killed process leaves
    # The next fit into the folder (`fitted`'s, the example's quick fit) succeeded and swept them.
    assert (out / "manifest.json").exists() and not list(out.parent.glob(".*"))


BROKEN_BODIES = st.one_of(
    st.sampled_from([0, 1, 3, 4]).map(lambda c: f"return np.zeros((len(x), {c}))"),
    st.sampled_from([-3, -1, 1, 2]).map(lambda k: f"return np.zeros((max(0, len(x) + {k}), 2))"),
    st.tuples(st.sampled_from(["np.nan", "np.inf", "-np.inf"]), st.integers(0, 100), st.integers(0, 1)).map(
        lambda t: f"y = np.ones((len(x), 2)); y[{t[1]} % len(x), {t[2]}] = {t[0]}; return y"),
    st.sampled_from(["ValueError", "ZeroDivisionError", "KeyError", "RuntimeError", "AssertionError",
                     "MemoryError", "SystemExit"]).map(lambda e: f"raise {e}('g failed')"),
    st.sampled_from(["None", "'text'", "{'gfp': 1}", "np.zeros((2, len(x)))", "np.zeros((len(x), 2, 1))",
                     "x[:, 0] > 1", "[[1, 'a']] * len(x)", "np.zeros(len(x), dtype=complex)"]).map(
        lambda v: f"return {v}"),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BROKEN_BODIES, name=st.integers(0, 10**9))
def test_any_broken_simple_model_is_refused_in_one_line_before_any_work(tmp_path, body, name):
    from tlkeras.core.errors import ConfigError
    from tlkeras.fit.fitting import plan_fit

    g = tmp_path / f"g{name}.py"  # a new file per example: a module is imported once per process
    g.write_text(f"import numpy as np\n\ndef g(x):\n    {body}\n")
    with pytest.raises(ConfigError) as caught:
        plan_fit(f"{g}:g", [0, 100, 0, 1000], EXAMPLE / "plate.csv", ["aTc", "IPTG"], ["gfp", "rfp"])
    message = str(caught.value)
    assert "\n" not in message and str(g) in message, message
