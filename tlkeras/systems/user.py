"""A lab's own systems: a Python function named `path/to/file.py:function` or `module:function`.

The function maps numpy inputs [n, d_in] (float64, the user's units) to outputs [n, d_out]; any
d_in, d_out >= 1. `load_function` resolves a reference (once per process), `probe` calls it on a
small batch spread over the domain (its corners and random points) before any work, and
`source_sha256` hashes the file it came from, so that a changed model never reuses a cached
pretraining and every run records exactly which model it used.

Every failure is a `SystemReferenceError` whose message is one line naming the function and what
was wrong with it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import itertools
import sys
import types
from pathlib import Path
from typing import Callable

import numpy as np

from tlkeras.runtime import interrupts
from tlkeras.systems.domains import Domain

PROBE_RANDOM_POINTS = 24
MAX_PROBE_CORNERS = 64

_LOADED: dict[str, Callable] = {}
_WARNED: set[str] = set()


class SystemReferenceError(ValueError):
    """A user's system that cannot be used; the message is one line."""


def is_reference(name: str) -> bool:
    """Whether `name` names a user function (`file.py:f`, `module:f`) rather than a built-in."""
    return isinstance(name, str) and ":" in name


def split_reference(reference: str) -> tuple[str, str]:
    """('path/or/module', 'function'); checks the form only (nothing is imported)."""
    where, _, function = reference.rpartition(":")
    if not where or not function.isidentifier():
        raise SystemReferenceError(
            f"{reference!r} is not a function reference: expected path/to/file.py:function or "
            "package.module:function")
    if not _is_file_path(where) and not all(part.isidentifier() for part in where.split(".")):
        raise SystemReferenceError(
            f"{reference!r}: {where!r} is neither a .py file nor a dotted module name")
    return where, function


def _is_file_path(where: str) -> bool:
    return where.endswith(".py") or "/" in where or "\\" in where


def short_name(reference: str) -> str:
    """A name for paths and tables: 'file_stem.function' or 'module.function'."""
    where, function = split_reference(reference)
    stem = Path(where).stem if _is_file_path(where) else where.rsplit(".", 1)[-1]
    return f"{stem}.{function}"


def absolute_reference(reference: str) -> str:
    """A file reference made absolute (so that worker processes and reruns find the same file)."""
    where, function = split_reference(reference)
    if _is_file_path(where):
        return f"{Path(where).expanduser().resolve()}:{function}"
    return reference


def source_path(reference: str) -> Path:
    """The file that defines the function (a module is found without running it)."""
    where, function = split_reference(reference)
    if _is_file_path(where):
        path = Path(where).expanduser()
        if not path.is_file():
            raise SystemReferenceError(f"{reference}: file {where} does not exist")
        return path
    try:
        spec = importlib.util.find_spec(where)
    except (ImportError, ValueError) as error:
        raise SystemReferenceError(f"{reference}: module {where!r} cannot be found ({_first_line(error)}); "
                                   f"{_file_hint(where, function)}") from None
    if spec is None:
        raise SystemReferenceError(f"{reference}: module {where!r} cannot be found on the Python path; "
                                   f"{_file_hint(where, function)}")
    if not spec.origin or not Path(spec.origin).is_file():
        raise SystemReferenceError(f"{reference}: module {where!r} is built into Python ({spec.origin or 'no file'}), "
                                   "with no source file to record; give a function of your own, as "
                                   f"path/to/file.py:{function}")
    return Path(spec.origin)


def source_sha256(reference: str) -> str:
    """sha256 of the source file that defines the function."""
    return hashlib.sha256(source_path(reference).read_bytes()).hexdigest()


def load_function(reference: str, report: Callable[[str], None] | None = None) -> Callable:
    """The function a reference names (imported once per process; `report` is told before)."""
    if reference in _LOADED:
        return _LOADED[reference]
    where, name = split_reference(reference)
    path = source_path(reference)
    if report is not None:
        report(f"importing your simple model {reference} ...")
    try:
        with interrupts.user_code(f"importing {reference}"):
            module = _import(where, path)
    except (Exception, SystemExit) as error:  # the user's module failed to import: one line
        raise SystemReferenceError(f"{reference}: importing {path} raised {_describe(error)}") from None
    function = getattr(module, name, None)
    if function is None:
        raise SystemReferenceError(f"{reference}: {path} defines no {name!r}")
    if not callable(function):
        raise SystemReferenceError(f"{reference}: {name!r} in {path} is not a function")
    _LOADED[reference] = function
    return function


def _import(where: str, path: Path) -> types.ModuleType:
    if _is_file_path(where):
        module_name = "tlkeras_user_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.resolve().parent))  # its sibling modules import as in a script
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(path.resolve().parent))
        return module
    return importlib.import_module(where)


def install_source(reference: str, source: bytes) -> Callable:
    """Load the function a reference names from its module's source, shipped from the machine
    that has the file (a Ray worker elsewhere); later `load_function` calls return it. The
    module's siblings import only where its folder exists."""
    where, name = split_reference(reference)
    module_name = "tlkeras_user_" + hashlib.sha1(reference.encode()).hexdigest()[:12]
    module = types.ModuleType(module_name)
    module.__file__ = where
    folder = str(Path(where).expanduser().parent) if _is_file_path(where) else None
    if folder:
        sys.path.insert(0, folder)
    try:
        exec(compile(source, where, "exec"), module.__dict__)
    except (Exception, SystemExit) as error:
        raise SystemReferenceError(f"{reference}: importing {where} raised {_describe(error)}") from None
    finally:
        if folder:
            sys.path.remove(folder)
    function = getattr(module, name, None)
    if not callable(function):
        raise SystemReferenceError(f"{reference}: {where} defines no function {name!r}")
    _LOADED[reference] = function
    return function


def call(reference: str, function: Callable, x: np.ndarray) -> np.ndarray:
    """function(x) checked: float64 [n, d_out], every value finite; else SystemReferenceError."""
    try:
        with interrupts.user_code(f"running {reference}"):
            raw = function(np.array(x, np.float64))
    except (Exception, SystemExit) as error:
        raise SystemReferenceError(f"{reference} raised {_describe(error)} on inputs of shape "
                                   f"{list(np.shape(x))}") from None
    try:
        values = np.asarray(raw)  # converted once: this runs on every batch of a training set
        kind = values.dtype
        if kind.kind == "c":
            if np.any(values.imag != 0):
                raise SystemReferenceError(f"{reference} returned complex numbers with an imaginary part (for "
                                           f"inputs of shape {list(np.shape(x))}): expected real outputs")
            values = values.real
        y = values.astype(np.float64, copy=False)
    except SystemReferenceError:
        raise
    except (TypeError, ValueError) as error:
        raise SystemReferenceError(f"{reference} returned {type(raw).__name__}, not numbers "
                                   f"({_first_line(error)})") from None
    if kind.kind != "f" and reference not in _WARNED:
        _WARNED.add(reference)
        print(f"warning: {reference} returned {_kind_name(kind)}, not floats; they were converted to float64 "
              "(return a float array to silence this)", file=sys.stderr)
    n = len(x)
    if y.ndim == 1 and y.shape[0] == n:
        y = y[:, None]  # one output, returned as a vector
    if y.ndim != 2 or y.shape[0] != n or y.shape[1] < 1:
        raise SystemReferenceError(f"{reference} returned shape {list(y.shape)} for inputs of shape "
                                   f"{list(np.shape(x))}: expected [{n}, outputs]")
    bad = ~np.isfinite(y)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise SystemReferenceError(
            f"{reference} returned {y[row, column]} (not finite) for output {column + 1} at inputs "
            f"{_point(x[row])}")
    return y


def probe(reference: str, domain: Domain, num_inputs: int, report: Callable[[str], None] | None = None) -> int:
    """Load the function and call it once on a small batch over `domain` (its corners and random
    points); return its number of outputs. `report` is told before each step (a slow import or
    call should not look like a hang)."""
    function = load_function(reference, report)
    x = probe_points(domain, num_inputs)
    if report is not None:
        report(f"probing {reference} on {len(x)} points of the domain ...")
    return call(reference, function, x).shape[1]


def probe_points(domain: Domain, num_inputs: int) -> np.ndarray:
    """The corners of the box (at most 64) and a few random points inside, float64 [n, d_in]."""
    low, high = domain.bounds(num_inputs)
    corners = itertools.islice(itertools.product(*zip(low, high)), MAX_PROBE_CORNERS)
    rng = np.random.default_rng(0)
    inside = rng.uniform(low, high, size=(PROBE_RANDOM_POINTS, num_inputs))
    return np.concatenate([np.asarray(list(corners), np.float64).reshape(-1, num_inputs), inside])


def _file_hint(module: str, function: str) -> str:
    return f"for a file give its path, as path/to/{module.rsplit('.', 1)[-1]}.py:{function}"


def _kind_name(dtype: np.dtype) -> str:
    names = {"i": "integers", "u": "integers", "b": "booleans", "U": "strings", "S": "bytes", "O": "Python objects",
             "c": "complex numbers (all real)"}
    return f"{names.get(dtype.kind, 'values')} ({dtype})"


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {_first_line(error)}" if str(error).strip() else type(error).__name__


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def _point(x: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:g}" for v in np.asarray(x).ravel()) + "]"
