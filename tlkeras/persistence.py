"""Saving and loading `.keras` models and small result files, safely.

- Models are written under a temporary name and renamed (`os.replace` is atomic on POSIX), so a
  crash never leaves a half-written model under the final name; JSON files likewise.
- Models are loaded with Keras safe mode on (no arbitrary code from a file), and every failure
  (missing, truncated, corrupt, another architecture) becomes one `ModelFileError` line that
  names the file and what was expected.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tlkeras.models import NetworkSpec


class ModelFileError(ValueError):
    """A model file that cannot be used; the message is one line naming the file."""


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True, allow_nan=True) + "\n")


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
    np.save(temporary, array)
    os.replace(temporary, path)


def save_model(model: keras.Model, path: Path) -> Path:
    """Save `model` to `path` (.keras) atomically; returns the path."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ModelFileError(f"model file {path}: the name must end in .keras")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")
    try:
        model.save(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def load_model(path: str | os.PathLike, expected: NetworkSpec | None = None) -> keras.Model:
    """Load a saved plain MLP (safe mode on); with `expected`, check that it has that shape."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file {path} does not exist")
    if not path.is_file():
        raise ModelFileError(f"model file {path} is not a file")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"model file {path} is not a .keras archive (truncated or corrupt?)")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types here; the user needs one line.
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ModelFileError(f"model file {path} could not be loaded: {reason}") from None
    if expected is not None:
        found = dense_layer_sizes(model)
        if found != expected.layer_sizes():
            raise ModelFileError(
                f"model file {path} has layers {found}; expected {expected.layer_sizes()} "
                f"(width {expected.width}, depth {expected.depth})"
            )
    return model


def dense_layer_sizes(model: keras.Model) -> list[tuple[int, int]]:
    """(fan_in, fan_out) of every Dense layer of `model`."""
    sizes = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            kernel = layer.get_weights()[0]
            sizes.append((int(kernel.shape[0]), int(kernel.shape[1])))
    return sizes


def predict(model: keras.Model | str | os.PathLike, x: Any) -> np.ndarray:
    """Predictions of a model (or a saved `.keras` file) for inputs x [n, inputs]."""
    if not isinstance(model, keras.Model):
        model = load_model(model)
    x = np.asarray(x, np.float32)
    if x.ndim != 2:
        raise ValueError(f"inputs of shape {x.shape}: expected [points, inputs]")
    return np.asarray(model(x, training=False))
