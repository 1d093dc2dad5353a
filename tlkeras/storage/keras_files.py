"""The bytes of a `.keras` file, three times faster than `model.save` for models of one structure.

A sweep exports thousands of plain MLPs that differ only in their weights and names: Experiment
4's default run saves about 7,000. `model.save` takes about 22 ms for each, most of it Keras
walking the model's attributes for what to save, and h5py writing through a Python file object.
A `.keras` file is a zip of `metadata.json`, `config.json` and `model.weights.h5`. So
`KerasFileWriter` saves the first model of a structure with Keras itself and keeps the layout of
that file's weights part as a template (its groups and their attributes, in order, and which
layer's variable each dataset holds); each later model of the same structure is written as its
config and metadata (Keras' own function for them, as `model.save` calls it) and a weights file
built from the template with h5py's in-memory driver: about 7 ms.

It is checked, not assumed: for the first model of every structure the writer renders the model
this way too and compares it with what `model.save` wrote (the zip's entries in order, the
config, every group, attribute and dataset of the weights file, and their values). Any
difference, and that structure is saved with `model.save` for the rest of the process. The files
load with `keras.saving.load_model` like any other (tests/test_persistence.py).
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import keras
import numpy as np

__all__ = ["KerasFileWriter", "keras_file_bytes", "same_keras_file"]

_METADATA, _CONFIG, _WEIGHTS = "metadata.json", "config.json", "model.weights.h5"


def keras_file_bytes(model: keras.Model) -> bytes:
    """`model.save`'s file, as bytes (Keras writes paths)."""
    with tempfile.TemporaryDirectory(prefix="tlkeras-model-") as scratch:
        path = Path(scratch) / "model.keras"
        model.save(path)
        return path.read_bytes()


@dataclass(frozen=True)
class _Item:
    """One group or dataset of the template's weights file, in the order Keras wrote it."""

    path: str
    attributes: tuple[tuple[str, object], ...]
    layer: str | None = None  # a dataset: the layer whose variable it holds...
    index: int = -1  # ...and the variable's position in `layer.weights`
    dtype: np.dtype | None = None
    shape: tuple[int, ...] = ()


class _Template:
    def __init__(self, entries: list[str], root: tuple, items: list[_Item]):
        self.entries, self.root, self.items = entries, root, items

    @staticmethod
    def of(saved: bytes, model_name: str) -> "_Template | None":
        """The template of a file `model.save` wrote for a model named `model_name`; None if its
        layout is not one to fill in (a dataset that is not a layer's variable)."""
        with zipfile.ZipFile(io.BytesIO(saved)) as archive:
            entries = archive.namelist()
            if sorted(entries) != sorted([_METADATA, _CONFIG, _WEIGHTS]):
                return None
            weights = archive.read(_WEIGHTS)
        items: list[_Item] = []
        usable = True

        def attributes_of(item) -> tuple:  # the model's own name is filled in per model
            return tuple((key, _MODEL_NAME if value == model_name else value) for key, value in item.attrs.items())

        def visit(path: str, item) -> None:
            nonlocal usable
            if isinstance(item, h5py.Group):
                items.append(_Item(path, attributes_of(item)))
                return
            parent, _, index = path.rpartition("/")
            layer = item.parent.attrs.get("name")
            if not parent.endswith("vars") or not index.isdigit() or layer is None or layer == model_name:
                usable = False
                return
            items.append(_Item(path, attributes_of(item), str(layer), int(index), item.dtype, tuple(item.shape)))

        with h5py.File(io.BytesIO(weights), "r") as store:
            root = attributes_of(store)
            store.visititems(visit)
        return _Template(entries, root, items) if usable else None

    def render(self, model: keras.Model) -> bytes | None:
        """`model`'s file from the template; None if a variable does not fit its place."""
        try:
            config, metadata = _config_and_metadata(model)
        except (AttributeError, ImportError, TypeError, ValueError):  # another Keras: model.save instead
            return None
        store = h5py.File(f"tlkeras-{id(self)}.h5", "w", driver="core", backing_store=False)
        try:
            for key, value in self.root:
                store.attrs[key] = model.name if value is _MODEL_NAME else value
            for item in self.items:
                if item.layer is None:
                    target = store.create_group(item.path)
                else:
                    try:
                        values = np.asarray(model.get_layer(item.layer).weights[item.index].numpy())
                    except (ValueError, IndexError):
                        return None
                    if values.shape != item.shape:
                        return None
                    target = store.create_dataset(item.path, data=values.astype(item.dtype, copy=False))
                for key, value in item.attributes:
                    target.attrs[key] = model.name if value is _MODEL_NAME else value
            store.flush()
            weights = store.id.get_file_image()
        finally:
            store.close()
        parts = {_METADATA: metadata, _CONFIG: config, _WEIGHTS: weights}
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for name in self.entries:
                archive.writestr(name, parts[name])
        return buffer.getvalue()


_MODEL_NAME = object()  # in a template: "the name of the model being written"


def _config_and_metadata(model: keras.Model) -> tuple[str, str]:
    """config.json and metadata.json as `model.save` writes them (Keras' own function for it: a
    private one, so any change to it shows in the check of the first model, or fails here)."""
    from keras.src.saving import saving_lib

    return saving_lib._serialize_model_as_json(model)


def _canonical_config(text: str):
    """A config with its shared-object ids (Python object ids: other in every process) renumbered
    in order of appearance."""
    numbers: dict = {}

    def walk(value):
        if isinstance(value, dict):
            return {key: (numbers.setdefault(item, len(numbers)) if key == "shared_object_id" else walk(item))
                    for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    return walk(json.loads(text))


def _weights_content(payload: bytes) -> list:
    found = []
    with h5py.File(io.BytesIO(payload), "r") as store:
        found.append(("/", sorted((k, str(v)) for k, v in store.attrs.items())))

        def visit(name: str, item) -> None:
            attributes = sorted((k, str(v)) for k, v in item.attrs.items())
            if isinstance(item, h5py.Dataset):
                found.append((name, attributes, item.dtype.str, item.shape, item[()].tobytes()))
            else:
                found.append((name, attributes))

        store.visititems(visit)
    return found


def same_keras_file(a: bytes, b: bytes) -> bool:
    """Whether two `.keras` files hold the same model: the same entries in the same order, the
    same config (shared-object ids aside), the same weights file content (groups, attributes,
    datasets and their values), and metadata with the same keys."""
    try:
        with zipfile.ZipFile(io.BytesIO(a)) as first, zipfile.ZipFile(io.BytesIO(b)) as second:
            if first.namelist() != second.namelist():
                return False
            if set(json.loads(first.read(_METADATA))) != set(json.loads(second.read(_METADATA))):
                return False
            if _canonical_config(first.read(_CONFIG)) != _canonical_config(second.read(_CONFIG)):
                return False
            return _weights_content(first.read(_WEIGHTS)) == _weights_content(second.read(_WEIGHTS))
    except (KeyError, ValueError, OSError, zipfile.BadZipFile):
        return False


def _structure(model: keras.Model) -> tuple:
    """What a template depends on: the model's class and its layers' classes, names and variable
    shapes (the model's own name and the weights' values may differ)."""
    return (type(model).__qualname__,
            tuple((type(layer).__qualname__, layer.name, tuple(tuple(w.shape) for w in layer.weights))
                  for layer in model.layers))


class KerasFileWriter:
    """`.keras` bytes of models, through a checked template per structure (see the module)."""

    def __init__(self):
        self._templates: dict[tuple, _Template | None] = {}

    def bytes_of(self, model: keras.Model) -> bytes:
        key = _structure(model)
        if key not in self._templates:
            saved = keras_file_bytes(model)
            template = _Template.of(saved, model.name)
            rendered = template.render(model) if template is not None else None
            self._templates[key] = template if rendered is not None and same_keras_file(saved, rendered) else None
            return saved
        template = self._templates[key]
        rendered = template.render(model) if template is not None else None
        return rendered if rendered is not None else keras_file_bytes(model)

    def checked_structures(self) -> tuple[int, int]:
        """(structures written through a template, structures saved by Keras each time)."""
        usable = sum(1 for t in self._templates.values() if t is not None)
        return usable, len(self._templates) - usable
