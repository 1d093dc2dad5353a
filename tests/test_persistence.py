"""Model files: atomic saves, safe loading, one-line errors, the reuse API."""

import numpy as np
import pytest

from tlkeras import load_model, predict
from tlkeras.models import NetworkSpec, build_mlp
from tlkeras.persistence import ModelFileError, save_model

SPEC = NetworkSpec()


def test_save_load_predict_round_trip(tmp_path):
    model = build_mlp(SPEC, seed=1)
    path = save_model(model, tmp_path / "m.keras")
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]  # no temporary left behind
    x = np.random.default_rng(0).uniform(0, 20, (10, 2))
    np.testing.assert_array_equal(predict(path, x), np.asarray(model(x.astype(np.float32))))
    np.testing.assert_array_equal(predict(load_model(path, expected=SPEC), x), predict(model, x))


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "nothing.keras")


def test_truncated_and_corrupt_files(tmp_path):
    good = save_model(build_mlp(SPEC, seed=1), tmp_path / "good.keras").read_bytes()
    (tmp_path / "truncated.keras").write_bytes(good[: len(good) // 2])
    (tmp_path / "garbage.keras").write_bytes(b"not a model at all")
    for name in ("truncated.keras", "garbage.keras"):
        with pytest.raises(ModelFileError) as error:
            load_model(tmp_path / name)
        assert name in str(error.value) and "\n" not in str(error.value)


def test_wrong_architecture_is_named(tmp_path):
    path = save_model(build_mlp(NetworkSpec(width=12), seed=1), tmp_path / "wide.keras")
    with pytest.raises(ModelFileError, match="expected"):
        load_model(path, expected=SPEC)


def test_a_file_that_would_run_code_is_refused(tmp_path):
    import keras

    inputs = keras.Input(shape=(2,))
    outputs = keras.layers.Lambda(lambda t: t * 2)(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "lambda.keras")
    with pytest.raises(ModelFileError, match="lambda.keras"):
        load_model(tmp_path / "lambda.keras")


def test_saving_needs_the_keras_suffix(tmp_path):
    with pytest.raises(ModelFileError, match=".keras"):
        save_model(build_mlp(SPEC, seed=1), tmp_path / "m.h5")


def test_a_crash_while_saving_leaves_nothing_under_the_final_name(tmp_path, monkeypatch):
    import keras

    model = build_mlp(SPEC, seed=1)
    final = tmp_path / "m.keras"

    def crash(self, path, *args, **kwargs):
        with open(path, "wb") as partial:
            partial.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_model(model, final)
    assert not final.exists() and list(tmp_path.iterdir()) == []
