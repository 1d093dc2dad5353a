"""Saving and loading `.keras` models and result files, safely.

- Every result file is first written in full under a *staging* folder, `<root>/.partial/`, and
  then renamed into place (`os.replace` is atomic on POSIX). So no glob over `models/`, `cells/`,
  `losses/` or `tensorboard/` ever sees a half-written or temporary file, whatever moment a run
  is killed at. A temporary's name starts with its writer's process id; `Staging.sweep` removes
  those of writers that are dead (a killed run's leftovers) when a run starts or resumes.
- Whole folders (a member's TensorBoard run, a cache entry) are built in the staging folder and
  renamed into place in one step.
- Models are loaded with Keras safe mode on (no arbitrary code from a file), and every failure
  (missing, truncated, corrupt, another architecture) becomes one `ModelFileError` line that
  names the file and what was expected.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import zipfile
from pathlib import Path
from typing import Any, Callable

import keras
import numpy as np

from tlkeras.core.errors import ModelFileError
from tlkeras.core.network import NetworkSpec
from tlkeras.runtime import faults

STAGING_FOLDER = ".partial"


class Staging:
    """Writes the files of one tree (a run directory, the cache) atomically, via `<root>/.partial/`.

    The staging folder is created inside an existing root, never with its parents: if the root
    vanishes mid-run, the next write fails (and the run stops) instead of re-creating a stray,
    incomplete tree.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.folder = self.root / STAGING_FOLDER

    def temporary(self, name: str) -> Path:
        """A fresh path in the staging folder; `name` last, so that its suffix is kept."""
        self.folder.mkdir(exist_ok=True)
        return self.folder / f"{os.getpid()}.{secrets.token_hex(4)}.{name}"

    def write_bytes(self, path: Path, payload: bytes) -> Path:
        path = Path(path)
        temporary = self.temporary(path.name)
        try:
            with open(temporary, "wb") as stream:
                half = len(payload) // 2
                stream.write(payload[:half])
                stream.flush()
                faults.point(f"write.middle{path.suffix}")
                stream.write(payload[half:])
                stream.flush()
                os.fsync(stream.fileno())
            return self._publish(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def write_text(self, path: Path, text: str) -> Path:
        return self.write_bytes(path, text.encode())

    def write_json(self, path: Path, value: Any) -> Path:
        return self.write_text(path, json_text(value))

    def save_npy(self, path: Path, array: np.ndarray) -> Path:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(array))
        return self.write_bytes(path, buffer.getvalue())

    def save_model(self, model: keras.Model, path: Path) -> Path:
        """Save `model` to `path` (.keras); returns the path."""
        path = Path(path)
        if path.suffix != ".keras":
            raise ModelFileError(f"model file {path}: the name must end in .keras")
        temporary = self.temporary(path.name)
        try:
            model.save(temporary)
            faults.point("write.middle.keras")
            return self._publish(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def write_folder(self, path: Path, build: Callable[[Path], None], replace: bool = True) -> bool:
        """Build a whole folder with `build(folder)` and rename it into place as `path`.

        With `replace`, an existing `path` is swapped out (it is absent, never partial, for a
        moment). Without, an existing `path` wins (another writer got there first, with the same
        content): ours is discarded and False returned.
        """
        path = Path(path)
        temporary = self.temporary(path.name)
        try:
            temporary.mkdir()
            build(temporary)
            faults.point("write.middle.folder")
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                if not replace:
                    shutil.rmtree(temporary)
                    return False
                old = self.temporary(path.name + ".old")
                os.rename(path, old)
                os.rename(temporary, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                try:
                    os.rename(temporary, path)
                except OSError:
                    if replace or not path.exists():
                        raise
                    shutil.rmtree(temporary)  # lost a race to an identical writer
                    return False
            faults.point("write.published")
            return True
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise

    def move_files_into(self, folder: Path, build: Callable[[Path], None]) -> None:
        """Build files with `build(scratch)` and rename each into `folder` (which may hold others)."""
        temporary = self.temporary(Path(folder).name)
        try:
            temporary.mkdir()
            build(temporary)
            Path(folder).mkdir(parents=True, exist_ok=True)
            for item in sorted(temporary.iterdir()):
                os.replace(item, Path(folder) / item.name)
        finally:
            shutil.rmtree(temporary, ignore_errors=True)

    def sweep(self) -> int:
        """Remove the temporaries of writers that are no longer running; returns how many."""
        removed = 0
        if not self.folder.is_dir():
            return removed
        for item in self.folder.iterdir():
            writer = item.name.split(".", 1)[0]
            if writer.isdigit() and writer_is_running(int(writer)):
                continue
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item, ignore_errors=True)
            else:
                item.unlink(missing_ok=True)
            removed += 1
        return removed

    def _publish(self, temporary: Path, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temporary, path)
        faults.point("write.published")
        return path


def json_text(value: Any) -> str:
    """The run directory's JSON layout (sorted keys, indented, a final newline)."""
    return json.dumps(value, indent=2, sort_keys=True, allow_nan=True) + "\n"


def writer_is_running(pid: int) -> bool:
    """Whether process `pid` is alive (this one included; a zombie is not)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    try:  # a zombie (dead, not yet reaped) writes nothing more
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True


def save_model(model: keras.Model, path: str | os.PathLike) -> Path:
    """Save `model` to `path` (.keras) atomically, staging in `<its folder>/.partial/`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Staging(path.parent)
    try:
        return staging.save_model(model, path)
    finally:
        try:
            staging.folder.rmdir()  # only if empty: another writer's temporaries stay
        except OSError:
            pass


def load_model(path: str | os.PathLike, expected: NetworkSpec | None = None) -> keras.Model:
    """Load a saved plain MLP (safe mode on); with `expected`, check that it has that shape."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file {path} does not exist")
    if not path.is_file():
        raise ModelFileError(f"model file {path} is not a file")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"model file {path} is not a .keras archive (truncated or corrupt?)")
    import tlkeras.nn.layers  # noqa: F401  (registers SimpleModelLayer: residual and g_feature models)

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
