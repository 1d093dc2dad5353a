"""Measurement CSVs: read into arrays, or refused with one line naming file, row and column."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tlkeras.nn.data import measurement_dataset
from tlkeras.systems.domains import Domain
from tlkeras.systems.measurements import (
    FOLD_SEED,
    MeasurementError,
    Measurements,
    duplicate_rows,
    fold_of_rows,
    fold_sizes,
    read_measurements,
    suspicious,
)

GOOD = "well,aTc,IPTG,gfp,rfp\nA1,1.5,20,100.5,7\nA2,3,0,2e3,-1\n\nA3,0,40,5,6\n"


def write(tmp_path, text, name="plate.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def read(path, **kwargs):
    return read_measurements(path, ["aTc", "IPTG"], ["gfp", "rfp"], **kwargs)


def test_columns_are_picked_by_name_in_the_order_given(tmp_path):
    found = read(write(tmp_path, GOOD), domain=Domain((0, 0), (10, 50)))
    np.testing.assert_array_equal(found.x, [[1.5, 20], [3, 0], [0, 40]])
    np.testing.assert_array_equal(found.y, [[100.5, 7], [2000, -1], [5, 6]])
    swapped = read_measurements(write(tmp_path, GOOD), ["IPTG", "aTc"], ["rfp"])
    np.testing.assert_array_equal(swapped.x[:, 0], [20, 0, 40])
    assert swapped.y.shape == (3, 1) and len(found.sha256) == 64


def test_a_byte_order_mark_quotes_and_non_ascii_headers_are_read(tmp_path):
    text = '\ufeff"aTc (ng/mL)",IPTG µM,"gfp, a.u.",rfp\n1,2,"3",4\n'
    found = read_measurements(write(tmp_path, text), ["aTc (ng/mL)", "IPTG µM"], ["gfp, a.u.", "rfp"])
    assert found.x.tolist() == [[1, 2]] and found.y.tolist() == [[3, 4]]


@pytest.mark.parametrize("text, message", [
    ("", r"is empty: expected a header row"),
    ("   \n\n", r"is empty"),
    ("well,aTc,IPTG,gfp,rfp\n", r"has a header row but no measurements"),
    ("well,aTc,gfp,rfp\nA1,1,2,3\n", r"no column 'IPTG' in the header \(row 1 has 'well', 'aTc', 'gfp', 'rfp'\)"),
    ("well;aTc;IPTG;gfp;rfp\nA1;1;2;3;4\n", r"is the file separated by ';' or tabs\?"),
    ("aTc,IPTG,gfp,gfp,rfp\n1,2,3,4,5\n", r"column 'gfp' appears 2 times in the header \(columns C, D\)"),
    ("well,aTc,IPTG,gfp,rfp\nA1,1,2,3\n", r"row 2: 4 cells, but the header \(row 1\) has 5 columns"),
    ("well,aTc,IPTG,gfp,rfp\nA1,1,2,3,4,99\n", r"row 2: 6 cells, but the header"),
    ("well,aTc,IPTG,gfp,rfp\nA1,1,2,3,4\nA2,1,,3,4\n", r"row 3, column 'IPTG' \(C\): empty cell"),
    ("well,aTc,IPTG,gfp,rfp\nA1,1,2,high,4\n", r"row 2, column 'gfp' \(D\): 'high' is not a number"),
    ("well,aTc,IPTG,gfp,rfp\nA1,1,2,nan,4\n", r"row 2, column 'gfp' \(D\): 'nan' is not a finite number"),
    ("well,aTc,IPTG,gfp,rfp\nA1,1,2,3,-inf\n", r"column 'rfp' \(E\): '-inf' is not a finite number"),
    ("well,aTc,IPTG,gfp,rfp\nA1,1,2,3,1e400\n", r"'1e400' is not a finite number"),
    ("well,aTc,IPTG,gfp,rfp\nA1,1,2,3,1e35\n", r"1e35 is too large"),
    ("well,aTc,IPTG,gfp,rfp\nA1,1,2,1_000,4\n", r"'1_000' is not a number"),
    ("well,aTc,IPTG,gfp,rfp\nA1,1,2,3,4\nA2,11,2,3,4\n", r"row 3, column 'aTc': 11 is outside the domain 0..10"),
    ('well,aTc,IPTG,gfp,rfp\nA1,1,2,"3,4\n', r"row \d+: not valid CSV"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"is not a text file \(byte 9 is NUL\)"),
    (b"aTc,IPTG,gfp,rfp\n1,2,3,\xff\xfe\n", r"is not UTF-8 text \(byte 24 is 0xff\)"),
])
def test_every_fault_is_one_line_naming_file_row_and_column(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(MeasurementError, match=message) as caught:
        read(path, domain=Domain(0, 10))
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_a_missing_file_and_too_few_rows_are_refused(tmp_path):
    with pytest.raises(MeasurementError, match=r"measurements file .*absent.csv does not exist"):
        read(tmp_path / "absent.csv")
    with pytest.raises(MeasurementError, match=r"has 3 measurements; at least 32 are needed \(--batch_size\)"):
        read(write(tmp_path, GOOD), min_rows=32, min_rows_reason=" (--batch_size)")
    with pytest.raises(MeasurementError, match="both as an input and as an output"):
        read_measurements(write(tmp_path, GOOD), ["aTc"], ["aTc"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_any_bytes_are_read_or_refused_with_one_line(tmp_path, raw):
    path = write(tmp_path, raw, "fuzz.csv")
    try:
        found = read(path, domain=Domain(0, 10))
    except MeasurementError as error:
        assert "\n" not in str(error) and str(path) in str(error)
    else:  # accepted: then every value is a finite number and every input in the domain
        assert np.isfinite(found.x).all() and np.isfinite(found.y).all() and found.rows >= 1
        assert ((found.x >= 0) & (found.x <= 10)).all()


def test_folds_partition_the_rows_evenly_and_reproducibly():
    rng = np.random.default_rng(3)
    x, y = rng.uniform(0, 10, (103, 2)), rng.normal(size=(103, 1))
    fold = fold_of_rows(x, y, 5)
    assert sorted(np.bincount(fold).tolist()) == [20, 20, 21, 21, 21]
    np.testing.assert_array_equal(fold, fold_of_rows(x, y, 5))
    assert not np.array_equal(fold, np.arange(103) % 5)  # shuffled: plate order is not fold order
    # Without copies, the assignment of earlier versions (dealt out in turn): fits keep their folds.
    order = np.random.default_rng(np.random.SeedSequence([FOLD_SEED, 103, 5])).permutation(103)
    np.testing.assert_array_equal(fold[order], np.arange(103) % 5)


def test_copies_of_a_row_share_a_fold_and_the_folds_stay_balanced():
    rng = np.random.default_rng(4)
    x, y = rng.uniform(0, 10, (60, 2)), rng.normal(size=(60, 2))
    x, y = np.concatenate([x, x[:30], x[:5]]), np.concatenate([y, y[:30], y[:5]])  # 35 copies
    fold = fold_of_rows(x, y, 5)
    for copy in range(30):
        assert fold[60 + copy] == fold[copy]
    assert all(fold[90 + copy] == fold[copy] for copy in range(5))
    assert np.bincount(fold).max() - np.bincount(fold).min() <= 3  # a group of 3 copies at most moves it
    found = Measurements(Path("plate.csv"), ("a", "b"), ("c", "d"), x, y, "0")
    assert duplicate_rows(found) == 35 and fold_sizes(found, 5) == np.bincount(fold).tolist()
    assert fold_sizes(found, 0) == []  # a fit without cross-validation
    x_only = x.copy()  # same inputs, other outputs: replicate measurements, not copies
    assert duplicate_rows(Measurements(Path("p"), ("a", "b"), ("c", "d"), x_only, rng.normal(size=y.shape), "0")) == 0


def _found(x, y=None):
    x = np.asarray(x, np.float64)
    y = np.arange(len(x), dtype=np.float64)[:, None] if y is None else y
    return Measurements(Path("plate.csv"), ("aTc", "IPTG"), ("gfp",), x, y, "0")


def test_suspicious_measurements_are_named_each_in_one_line():
    rng = np.random.default_rng(5)
    spread = np.column_stack([rng.uniform(0, 10, 40), rng.uniform(0, 10, 40)])
    spread[:2] = [[0, 0], [10, 10]]  # the measured region: 0..10 on each input
    assert suspicious(_found(spread), Domain(0.0, 20.0)) == []  # a quarter of the domain: fine
    constant = spread.copy()
    constant[:, 0] = 5.0
    (line,) = suspicious(_found(constant), Domain(0.0, 20.0))
    assert "input column 'aTc' of plate.csv is 5 in every row" in line
    lines = suspicious(_found(np.concatenate([spread, spread]), np.zeros((80, 1))), Domain(0.0, 20.0))
    assert len(lines) == 1 and lines[0].startswith("40 of 80 rows of plate.csv are exact copies")
    (line,) = suspicious(_found(spread), Domain(0.0, 1e6))
    assert "measured region (aTc 0..10, IPTG 0..10) is 1e-08% of" in line and "domain's volume" in line
    assert suspicious(_found(spread), Domain(0.0, 100.0)) == []  # 1% exactly: not under it
    assert len(suspicious(_found(spread), Domain(0.0, 100.5))) == 1


def test_measured_rows_stream_through_tf_data():
    x, y = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[5.0], [6.0]])
    rows = list(measurement_dataset(x, y).as_numpy_iterator())
    assert [r[0].tolist() for r in rows] == x.tolist() and [r[1].tolist() for r in rows] == y.tolist()
