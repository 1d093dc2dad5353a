"""`tlkeras fit` before any training, in-process: the plan's checks and warnings, --out guarded."""

import errno
import os

import pytest
from absl import flags
from conftest import EXAMPLE

from tlkeras.cli import flags as shared_flags
from tlkeras.fit import fitting
from tlkeras.systems.measurements import MeasurementError

G = f"{EXAMPLE / 'simple_model.py'}:g"
PLATE = EXAMPLE / "plate.csv"


def _plan(measurements, domain=(0, 100, 0, 1000), folds=2):
    said, warned = [], []
    fitting.plan_fit(G, domain, measurements, ["aTc", "IPTG"], ["gfp", "rfp"], folds=folds, report=said.append,
                     warn=warned.append)
    return said, warned


def test_the_plan_says_before_importing_and_probing_g_and_warns_of_nothing_on_good_data():
    said, warned = _plan(PLATE)
    assert said[-1].startswith(f"probing {G} on 28 points")
    assert said[:-1] in ([], [f"importing your simple model {G} ..."])  # imported once per process
    assert warned == []


def test_the_plan_warns_of_copies_a_constant_input_and_a_tiny_measured_region(tmp_path):
    rows = PLATE.read_text().splitlines()
    copies = tmp_path / "copies.csv"
    copies.write_text("\n".join([*rows, *rows[1:]]) + "\n")
    _, warned = _plan(copies)
    assert len(warned) == 1 and warned[0].startswith("300 of 600 rows") and "one fold" in warned[0]
    _, warned = _plan(PLATE, domain=(0, 1e5, 0, 1e6))
    assert len(warned) == 1 and "of the domain's volume" in warned[0]
    constant = tmp_path / "constant.csv"
    header, *body = rows
    aTc = header.split(",").index("aTc")
    constant.write_text("\n".join([header, *(",".join("5" if i == aTc else cell for i, cell in enumerate(r.split(",")))
                                             for r in body)]) + "\n")
    _, warned = _plan(constant)
    assert len(warned) == 1 and "input column 'aTc'" in warned[0] and "is 5 in every row" in warned[0]


def test_fewer_distinct_rows_than_folds_is_refused(tmp_path):
    rows = PLATE.read_text().splitlines()
    same = tmp_path / "same.csv"
    same.write_text("\n".join([rows[0], *[rows[1]] * 40]) + "\n")
    with pytest.raises(MeasurementError, match=r"has 1 distinct rows; --folds=2 needs at least one per fold"):
        _plan(same)


def test_an_out_folder_holding_an_input_is_refused_even_with_overwrite(tmp_path):
    out = tmp_path / "model"
    (out / "data").mkdir(parents=True)
    with pytest.raises(fitting.OutputFolderError, match=r"holds --measurements .*plate.csv; the fit would replace"):
        fitting.check_inputs_outside(out, {"--measurements": out / "data" / "plate.csv"})
    with pytest.raises(fitting.OutputFolderError, match="holds --cache_dir"):
        fitting.check_inputs_outside(out, {"--cache_dir": out})
    fitting.check_inputs_outside(out, {"--measurements": PLATE, "--simple": tmp_path / "g.py"})  # beside: fine


def test_a_model_that_appeared_at_out_during_a_fit_is_kept_and_so_is_the_new_one(tmp_path):
    out, building = tmp_path / "plate1", tmp_path / ".plate1.building-1"
    out.mkdir()
    (out / "manifest.json").write_text("theirs")
    building.mkdir()
    (building / "manifest.json").write_text("ours")
    with pytest.raises(FileExistsError) as raised:
        fitting._publish(building, out, overwrite=False)
    assert raised.value.errno == errno.EEXIST and "appeared while this fit ran" in raised.value.strerror
    assert (out / "manifest.json").read_text() == "theirs"
    kept = tmp_path / f"plate1.new-{os.getpid()}"
    assert (kept / "manifest.json").read_text() == "ours" and not building.exists()
    fitting._publish(kept, out, overwrite=True)
    assert (out / "manifest.json").read_text() == "ours" and os.listdir(tmp_path) == ["plate1"]


def test_the_output_lock_refuses_a_second_fit_and_removes_what_it_made(tmp_path):
    out = tmp_path / "new" / "deeper" / "plate1"
    with fitting.output_lock(out):
        assert (out.parent / ".plate1.lock").read_text() == f"{os.getpid()}\n"
        with pytest.raises(fitting.OutputFolderError, match=rf"--out={out} is being written by another tlkeras "
                                                             rf"process \(pid {os.getpid()}\)"):
            with fitting.output_lock(out):
                pass
    assert not (tmp_path / "new").exists()  # no model: the folders made for it went too


@pytest.mark.parametrize("given, message", [
    (["--preset=quick", "--epochs=10"], "--preset=quick's pretrain_epochs=36 must be smaller than --epochs=10"),
    (["--epochs=10"], "the default pretrain_epochs=1800 must be smaller than --epochs=10"),
    (["--epochs=10", "--pretrain_epochs=12"], "--pretrain_epochs=12 must be smaller than --epochs=10"),
])
def test_a_pretraining_longer_than_the_epochs_names_where_each_value_came_from(given, message):
    values = flags.FlagValues()
    flags.DEFINE_enum("preset", "full", ["full", "quick"], "", flag_values=values)
    shared_flags.define_training_flags(values, seeds_help="", epochs_help="")
    values(["test", *given])
    if values.preset == "quick":
        from tlkeras.cli.lifecycle import apply_preset
        from tlkeras.core.config import QUICK_PRESET

        apply_preset(values, {k: v for k, v in QUICK_PRESET.items() if k in values})
    problem = shared_flags.pretrain_epochs_problem(values)
    assert problem.startswith(message) and "give --pretrain_epochs below 10" in problem



@pytest.mark.parametrize("folds", [0, 3])
def test_the_training_sets_of_a_fit_are_the_rows_and_each_fold_left_out(folds):
    from tlkeras.execution.planning import real_sets
    from tlkeras.systems import measurements

    config, found = fitting.plan_fit(G, (0, 100, 0, 1000), PLATE, ["aTc", "IPTG"], ["gfp", "rfp"], folds=folds)
    measurements.install(config, found)
    sets = real_sets(config)
    assert sets[0] == ("measurements", 300) and len(sets) == 1 + folds
    assert sum(300 - size for _, size in sets[1:]) == (300 if folds else 0)  # every row left out once
