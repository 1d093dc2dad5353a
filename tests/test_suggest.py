"""`tlkeras suggest` on the example's quick fit: picks inside the region (or rows of a candidates
file, carried whole), a CSV and a figure; every bad request one line, exit 2, nothing written."""

import csv

import numpy as np
import pytest
from conftest import tlkeras_here

pytestmark = pytest.mark.integration  # processes: the command, TensorFlow


@pytest.fixture(scope="module")
def model(example_fits):
    out, _, result = example_fits
    assert result.returncode == 0, result.stderr
    return out


def _table(path):
    return list(csv.reader(path.read_text().splitlines()))


def test_suggest_picks_n_distinct_points_in_the_region_and_draws_them(model, tmp_path):
    out = tmp_path / "next.csv"
    result = tlkeras_here("suggest", f"--model={model}", "--n=8", "--region=10,40,100,400", f"--out={out}",
                     "--method=spread_distance")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    rows = _table(out)
    assert rows[0] == ["aTc", "IPTG", "gfp_mean", "gfp_sd", "rfp_mean", "rfp_sd", "score", "pick"]
    x = np.array([[float(r[0]), float(r[1])] for r in rows[1:]])
    assert len(x) == 8 == len(np.unique(x, axis=0)) and [r[-1] for r in rows[1:]] == [str(k) for k in range(1, 9)]
    assert ((x >= [10, 100]) & (x <= [40, 400])).all()
    assert all(float(r[3]) >= 0 and float(r[5]) >= 0 for r in rows[1:])
    assert out.with_suffix(".png").stat().st_size > 10_000
    assert "8 points suggested by spread_distance" in result.stdout and f"wrote {out}" in result.stdout
    again = tlkeras_here("suggest", f"--model={model}", "--n=8", f"--out={out}")
    assert again.returncode == 2 and "already exists" in again.stderr


def test_suggest_among_candidates_returns_some_of_their_rows_whole(model, tmp_path):
    wells = tmp_path / "wells.csv"
    rng = np.random.default_rng(0)
    wells.write_text("well,aTc,IPTG\n" + "".join(f"W{k},{a:.2f},{b:.1f}\n" for k, (a, b) in enumerate(
        rng.uniform([0, 0], [50, 500], size=(30, 2)))))
    out = tmp_path / "picks.csv"
    result = tlkeras_here("suggest", f"--model={model}", "--n=5", f"--candidates={wells}", f"--out={out}",
                     "--method=variance_reduction", "--arm=baseline", "--seed=3")
    assert result.returncode == 0, result.stderr
    given = {tuple(r) for r in _table(wells)[1:]}
    rows = _table(out)
    assert rows[0][:3] == ["well", "aTc", "IPTG"] and len(rows) == 6
    assert all(tuple(r[:3]) in given for r in rows[1:]) and len({r[0] for r in rows[1:]}) == 5


@pytest.mark.parametrize("args, says", [
    (["--n=0"], "--n"),
    (["--n=4", "--region=0,10,0,5000"], "--region of input 2 is 0..5000: expected low <= high inside the model's"),
    (["--n=4", "--candidates={empty}"], "is empty"),
    (["--n=4", "--candidates={malformed}"], "row 2"),
    (["--n=40", "--candidates={few}"], "has 3 rows; --n=40 picks need at least 40"),
    (["--n=4", "--region=0,10", "--candidates={few}"], "give --region or --candidates, not both"),
    (["--n=4", "--method=best"], "--method"),
])
def test_a_bad_request_is_one_line_and_writes_nothing(model, tmp_path, args, says):
    files = {"empty": "", "malformed": "aTc,IPTG\n1,abc\n", "few": "aTc,IPTG\n1,2\n3,4\n5,6\n"}
    for name, text in files.items():
        (tmp_path / f"{name}.csv").write_text(text)
    args = [a.format(**{name: tmp_path / f"{name}.csv" for name in files}) for a in args]
    result = tlkeras_here("suggest", f"--model={model}", f"--out={tmp_path / 'next.csv'}", *args)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert says in result.stderr, result.stderr
    assert not (tmp_path / "next.csv").exists() and not (tmp_path / "next.png").exists()


def test_a_missing_model_folder_is_one_line(tmp_path):
    result = tlkeras_here("suggest", f"--model={tmp_path / 'nothing'}", "--n=4", f"--out={tmp_path / 'next.csv'}")
    assert result.returncode == 2 and "is not a folder" in result.stderr and result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
