"""A lab's measurements: a CSV with a header row, read and validated into arrays, then streamed
through `tf.data` like every other training set.

`read_measurements` checks everything before any training and raises `MeasurementError` with one
line naming the file, the row (numbered as a spreadsheet shows it: the header is row 1) and the
column: a missing or empty file, bytes that are not text, a missing or duplicated column, a row
with missing cells, an empty or non-numeric cell, NaN or inf, a number too large for float32
training, an input outside the declared domain, fewer rows than needed. Nothing is dropped
silently: a row is either used or the file is refused (only rows with no cells at all, such as
a trailing blank line, are skipped).

Reading is free of TensorFlow (bad files fail in a fraction of a second); `measurement_dataset`
imports it when a pipeline is built.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from tlkeras.systems.domains import Domain

MEASURED = "measurements"
FOLD_PREFIX = MEASURED + "-fold"
LARGEST_VALUE = 1e30  # beyond this, squared errors overflow float32 during training
FOLD_SEED = 0x5F01D
FOLD_KINDS = ("random", "blocked")  # how rows are dealt to cross-validation folds (`row_folds`)


class MeasurementError(ValueError):
    """A measurements file that cannot be used; the message is one line."""


@dataclass(frozen=True)
class Measurements:
    """Validated measurements: inputs x [rows, d_in] and outputs y [rows, d_out] in the file's
    units, the column names as the header gives them, and the sha256 of the file's bytes."""

    path: Path
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    x: np.ndarray
    y: np.ndarray
    sha256: str

    @property
    def rows(self) -> int:
        return len(self.x)


def read_measurements(
    path: str | Path,
    inputs: Sequence[str],
    outputs: Sequence[str],
    domain: Domain | None = None,
    min_rows: int = 1,
    min_rows_reason: str = "",
) -> Measurements:
    """Read and validate a CSV; see the module doc for every check."""
    path = Path(path)
    if not path.exists():
        raise MeasurementError(f"measurements file {path} does not exist")
    if not path.is_file():
        raise MeasurementError(f"measurements file {path} is not a file")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise MeasurementError(f"measurements file {path} cannot be read: {error.strerror}") from None
    if not raw.strip():
        raise MeasurementError(f"measurements file {path} is empty: expected a header row, then one "
                               "row per measurement")
    text = _decode(path, raw)
    inputs, outputs = tuple(inputs), tuple(outputs)
    for name in inputs:
        if name in outputs:
            raise MeasurementError(f"column {name!r} is named both as an input and as an output")
    rows = _rows(path, text)
    if not rows:
        raise MeasurementError(f"measurements file {path} is empty: expected a header row")
    header_line, header = rows[0]
    header = [cell.strip() for cell in header]
    columns = [_column_index(path, header, name) for name in (*inputs, *outputs)]
    values = np.empty((len(rows) - 1, len(columns)), np.float64)
    for index, (line, cells) in enumerate(rows[1:]):
        if len(cells) < len(header) or any(cell.strip() for cell in cells[len(header):]):
            raise MeasurementError(f"{path}, row {line}: {len(cells)} cells, but the header (row {header_line}) "
                                   f"has {len(header)} columns")
        for slot, column in enumerate(columns):
            values[index, slot] = _number(path, line, header[column], column, cells[column])
    if len(values) == 0:
        raise MeasurementError(f"measurements file {path} has a header row but no measurements")
    if len(values) < min_rows:
        raise MeasurementError(f"measurements file {path} has {len(values)} measurements; at least "
                               f"{min_rows} are needed{min_rows_reason}")
    x, y = values[:, : len(inputs)], values[:, len(inputs):]
    if domain is not None:
        low, high = domain.bounds(len(inputs))
        outside = (x < low) | (x > high)
        if outside.any():
            row, slot = np.argwhere(outside)[0]
            line = rows[1 + row][0]
            raise MeasurementError(
                f"{path}, row {line}, column {inputs[slot]!r}: {x[row, slot]:g} is outside the domain "
                f"{low[slot]:g}..{high[slot]:g} of that input (--domain)")
    return Measurements(path, inputs, outputs, x, y, hashlib.sha256(raw).hexdigest())


def read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """The rows of a CSV as text, as `read_measurements` reads them: (spreadsheet row number,
    cells) of every row with a cell, the header first (for a command that carries columns through)."""
    return _rows(path, _decode(path, Path(path).read_bytes()))


def _decode(path: Path, raw: bytes) -> str:
    if b"\x00" in raw:
        position = raw.index(b"\x00") + 1
        raise MeasurementError(f"measurements file {path} is not a text file (byte {position} is NUL): "
                               "export the sheet as CSV")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise MeasurementError(f"measurements file {path} is not UTF-8 text (byte {error.start + 1} is "
                               f"0x{raw[error.start]:02x}): export the sheet as CSV UTF-8") from None


def _rows(path: Path, text: str) -> list[tuple[int, list[str]]]:
    """(spreadsheet row number, cells) of every row that has at least one cell."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows = []
    try:
        for cells in reader:
            if cells and any(cell.strip() for cell in cells):
                rows.append((reader.line_num, cells))
    except csv.Error as error:
        raise MeasurementError(f"{path}, row {reader.line_num}: not valid CSV ({error})") from None
    return rows


def _column_index(path: Path, header: list[str], name: str) -> int:
    found = [i for i, column in enumerate(header) if column == name]
    if len(found) > 1:
        raise MeasurementError(f"{path}: column {name!r} appears {len(found)} times in the header (columns "
                               f"{', '.join(_letter(i) for i in found)}); name each column once")
    if not found:
        hint = ""
        if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
            hint = " (the header is one column: is the file separated by ';' or tabs? save it comma-separated)"
        shown = ", ".join(repr(h) for h in header[:20]) + (", ..." if len(header) > 20 else "")
        raise MeasurementError(f"{path}: no column {name!r} in the header (row 1 has {shown}){hint}")
    return found[0]


def _number(path: Path, line: int, name: str, column: int, cell: str) -> float:
    where = f"{path}, row {line}, column {name!r} ({_letter(column)})"
    text = cell.strip()
    if not text:
        raise MeasurementError(f"{where}: empty cell; every measurement needs a number here")
    try:
        if "_" in text:
            raise ValueError
        value = float(text)
    except ValueError:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise MeasurementError(f"{where}: {shown!r} is not a number") from None
    if not math.isfinite(value):
        raise MeasurementError(f"{where}: {text!r} is not a finite number")
    if abs(value) > LARGEST_VALUE:
        raise MeasurementError(f"{where}: {text} is too large (at most {LARGEST_VALUE:g} in size)")
    return value


def _letter(index: int) -> str:
    """0 -> 'A', 25 -> 'Z', 26 -> 'AA': the column as a spreadsheet labels it."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


# Folds ------------------------------------------------------------------------------------------
def fold_of_rows(x: np.ndarray, y: np.ndarray, folds: int) -> np.ndarray:
    """The fold (0..folds-1) of every row of (x, y): rows dealt out in a fixed random order, each
    to the fold with the fewest rows so far, and exact copies of a row (same inputs and outputs)
    always to the fold of the first, so that no copy is scored by a model that trained on it.
    Without copies this is the order dealt out in turn (folds differ in size by at most one)."""
    rows = len(x)
    values = np.concatenate([np.asarray(x, np.float64).reshape(rows, -1), np.asarray(y, np.float64).reshape(rows, -1)],
                            axis=1)
    _, group, counts = np.unique(values, axis=0, return_inverse=True, return_counts=True)
    group = np.asarray(group).ravel()
    order = np.random.default_rng(np.random.SeedSequence([FOLD_SEED, rows, folds])).permutation(rows)
    fold = np.empty(rows, np.int64)
    of_group: dict[int, int] = {}
    sizes = np.zeros(folds, np.int64)
    for row in order:
        if group[row] not in of_group:
            of_group[group[row]] = chosen = int(np.argmin(sizes))
            sizes[chosen] += counts[group[row]]
        fold[row] = of_group[group[row]]
    return fold


def blocked_fold_of_rows(x: np.ndarray, y: np.ndarray, folds: int, region: Domain, domain: Domain) -> np.ndarray:
    """The fold of every row when folds are blocks towards the unmeasured domain: rows ranked by
    how far each lies towards the sides where `domain` extends beyond the measured `region` (as
    `strategies.selection.extrapolation_band`: fractions of the region's width; where the domain
    extends nowhere, towards the region's edges), ties by row, then cut into k shells of (nearly)
    equal size, the outermost first: fold 1's held-out rows are the measured rows nearest to where
    the model must extrapolate, so its out-of-fold errors look like extrapolation (Roberts et al.,
    Ecography 2017, blocked cross-validation). Copies of a row share its fold."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    d = x.shape[1]
    low, high = region.bounds(d)
    big_low, big_high = domain.bounds(d)
    width = np.where(high > low, high - low, 1.0)
    towards = np.concatenate([np.where(big_high > high, (x - low) / width, -np.inf),
                              np.where(big_low < low, (high - x) / width, -np.inf)], axis=1)
    score = np.max(towards, axis=1)
    if not np.isfinite(score).any():  # measured everywhere: towards the edges
        score = np.max(np.abs(x - (low + high) / 2) / width, axis=1)
    values = np.concatenate([x, np.asarray(y, np.float64).reshape(len(x), -1)], axis=1)
    _, group = np.unique(values, axis=0, return_inverse=True)
    group = np.asarray(group).ravel()
    order = np.argsort(-score, kind="stable")
    fold = np.empty(len(x), np.int64)
    of_group: dict[int, int] = {}
    placed = 0
    for row in order:
        if group[row] not in of_group:
            of_group[group[row]] = min(folds - 1, placed * folds // len(x))
        fold[row] = of_group[group[row]]
        placed += 1
    return fold


def row_folds(config, found: "Measurements | None" = None) -> np.ndarray:
    """The fold of every measured row of a fit (`config.folds` of `config.fold_kind`)."""
    found = found or of_config(config)
    if getattr(config, "fold_kind", "random") == "blocked":
        return blocked_fold_of_rows(found.x, found.y, config.folds, config.small_box, config.big_box)
    return fold_of_rows(found.x, found.y, config.folds)


def fold_sizes(found: "Measurements", folds: int, config=None) -> list[int]:
    """Rows per fold (`row_folds`); none without cross-validation (folds = 0)."""
    if folds < 1:
        return []
    assigned = row_folds(config, found) if config is not None else fold_of_rows(found.x, found.y, folds)
    return np.bincount(assigned, minlength=folds).tolist()


def duplicate_rows(found: "Measurements") -> int:
    """How many rows are exact copies of an earlier row (same inputs and outputs)."""
    return found.rows - len(np.unique(np.concatenate([found.x, found.y], axis=1), axis=0))


def suspicious(found: "Measurements", domain: Domain) -> list[str]:
    """One line for each thing in the measurements that is allowed but probably a mistake: an
    input that never varies, rows that are exact copies, a measured region under 1% of the
    domain's volume."""
    lines = []
    low, high = domain.bounds(len(found.inputs))
    spans = found.x.max(axis=0) - found.x.min(axis=0)
    for name, span, value in zip(found.inputs, spans, found.x[0]):
        if span == 0:
            lines.append(f"input column {name!r} of {found.path} is {value:g} in every row: the model learns "
                         "nothing from your data about how it acts")
    copies = duplicate_rows(found)
    if copies:
        lines.append(f"{copies} of {found.rows} rows of {found.path} are exact copies of another row (same inputs "
                     "and outputs): they weigh double in training; cross-validation keeps copies in one fold")
    share = float(np.prod(spans / (high - low)))
    if spans.all() and share < 0.01:  # (an input that never varies is said above)
        region = ", ".join(f"{name} {a:g}..{b:g}" for name, a, b in zip(found.inputs, found.x.min(axis=0),
                                                                         found.x.max(axis=0)))
        lines.append(f"the measured region ({region}) is {share * 100:.2g}% of the domain's volume: across most of the "
                     "domain the model is the simple model's extrapolation, not your data's")
    return lines


def fold_name(k: int) -> str:
    """The training set of fold k: every row but those of fold k ('measurements-fold1')."""
    return f"{FOLD_PREFIX}{k + 1}"


def fold_index(name: str) -> int | None:
    """k for 'measurements-fold<k+1>', None for the whole set."""
    return int(name[len(FOLD_PREFIX):]) - 1 if name.startswith(FOLD_PREFIX) else None


def is_measured(system: str) -> bool:
    return system == MEASURED or system.startswith(FOLD_PREFIX)


# The measurements of a run ---------------------------------------------------------------------
_CACHE: dict[tuple, Measurements] = {}


def of_config(config) -> Measurements:
    """The measurements a config names, read once per process; refused if the file has changed
    since the run recorded its hash."""
    key = (config.measurements, config.measurement_inputs, config.measurement_outputs)
    if key not in _CACHE:
        found = read_measurements(config.measurements, config.measurement_inputs, config.measurement_outputs)
        if config.measurements_sha256 and found.sha256 != config.measurements_sha256:
            raise MeasurementError(f"measurements file {config.measurements} has changed since this fit "
                                   f"started (sha256 {found.sha256[:12]}, recorded {config.measurements_sha256[:12]})")
        _CACHE[key] = found
    return _CACHE[key]


def install(config, found: Measurements) -> None:
    """Use `found` as the measurements `config` names, in this process (a worker that cannot
    read the driver's file: Ray)."""
    _CACHE[(config.measurements, config.measurement_inputs, config.measurement_outputs)] = found


def heldout_rows(config, system: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row indices, x, y) a member of `system` is scored on: the fold it never saw, or for the
    whole set, every row (its fit)."""
    found = of_config(config)
    k = fold_index(system)
    rows = np.arange(found.rows) if k is None else np.flatnonzero(row_folds(config, found) == k)
    return rows, found.x[rows], found.y[rows]


def training_rows_of(config, system: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row indices, x, y) a member of `system` trains on: every row, or all but its fold's."""
    found = of_config(config)
    k = fold_index(system)
    rows = np.arange(found.rows) if k is None else np.flatnonzero(row_folds(config, found) != k)
    return rows, found.x[rows], found.y[rows]
