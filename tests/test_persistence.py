"""Model files: atomic saves, safe loading, one-line errors, the reuse API."""

import os
from pathlib import Path

import numpy as np
import pytest

from tlkeras import load_model, predict
from tlkeras.core.errors import ModelFileError
from tlkeras.core.network import NetworkSpec
from tlkeras.nn.models import build_mlp
from tlkeras.storage.persistence import Staging, save_model

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


# Staged writes -------------------------------------------------------------------------------
def _child_writes_then_dies(root: str, pipe) -> None:
    """A writer that stops dead (os._exit: no cleanup) halfway through a staged write."""
    from tlkeras.storage import persistence

    staging = persistence.Staging(root)
    temporary = staging.temporary("seed0.keras")
    temporary.write_bytes(b"PK\x03\x04 half a zip")
    pipe.send(str(temporary))
    os._exit(0)


def test_temporaries_live_only_in_the_staging_folder_and_dead_writers_are_swept(tmp_path):
    import multiprocessing

    staging = Staging(tmp_path)
    staging.save_model(build_mlp(SPEC, seed=1), tmp_path / "models" / "seed1.keras")
    staging.write_json(tmp_path / "cells" / "seed1.json", {"l1": 0.5})
    staging.save_npy(tmp_path / "losses" / "seed1.npy", np.arange(3.0))
    staging.write_folder(tmp_path / "tensorboard" / "seed1", lambda f: (f / "events").write_text("e"))
    visible = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert visible == ["cells/seed1.json", "losses/seed1.npy", "models/seed1.keras", "tensorboard/seed1/events"]

    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    dead = context.Process(target=_child_writes_then_dies, args=(str(tmp_path), send))
    dead.start()
    leftover = Path(receive.recv())
    dead.join()
    mine = staging.temporary("live.json")  # a live writer's temporary (this process)
    mine.write_text("{")
    assert leftover.exists() and leftover.parent == tmp_path / ".partial"
    assert staging.sweep() == 1
    assert not leftover.exists() and mine.exists()


def test_a_vanished_root_is_an_error_not_recreated(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    staging = Staging(root)
    root.rmdir()
    with pytest.raises(FileNotFoundError):
        staging.write_json(root / "cells" / "seed0.json", {})
    assert not root.exists()


def test_a_folder_is_replaced_whole_and_a_failed_build_leaves_the_old_one(tmp_path):
    staging = Staging(tmp_path)
    target = tmp_path / "tensorboard" / "run"
    staging.write_folder(target, lambda f: (f / "old").write_text("1"))
    staging.write_folder(target, lambda f: (f / "new").write_text("2"))
    assert [p.name for p in target.iterdir()] == ["new"]

    def crash(folder):
        (folder / "half").write_text("3")
        raise OSError("disk full")

    with pytest.raises(OSError):
        staging.write_folder(target, crash)
    assert [p.name for p in target.iterdir()] == ["new"] and not list(staging.folder.iterdir())


def _fill_entry(root: str, payload: bytes, barrier, results) -> None:
    from tlkeras.storage import persistence

    def build(folder):
        (folder / "model.keras").write_bytes(payload)
        barrier.wait()  # both entries complete before either is renamed into place
        (folder / "losses.npy").write_bytes(payload)

    results.put(persistence.Staging(root).write_folder(Path(root) / "pretrain" / "key", build, replace=False))


def test_two_runs_filling_the_same_cache_entry_both_end_with_a_valid_entry(tmp_path):
    import multiprocessing

    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(2), context.Queue()
    writers = [context.Process(target=_fill_entry, args=(str(tmp_path), b"same", barrier, results)) for _ in range(2)]
    for writer in writers:
        writer.start()
    won = [results.get(timeout=120) for _ in writers]
    for writer in writers:
        writer.join()
    assert sorted(won) == [False, True]  # one renamed its entry into place, the other found it there
    entry = tmp_path / "pretrain" / "key"
    assert sorted(p.name for p in entry.iterdir()) == ["losses.npy", "model.keras"]
    assert not list((tmp_path / ".partial").iterdir())


def test_a_lock_is_held_by_one_holder_and_names_it_to_the_next(tmp_path):
    from tlkeras.storage import locks

    path = tmp_path / ".plate1.lock"
    with locks.exclusive(path, "--out=plate1", remove=True):
        assert path.read_text() == f"{os.getpid()}\n" and locks.holder(path) == str(os.getpid())
        with pytest.raises(locks.LockedError, match=rf"--out=plate1 is being written by another tlkeras process "
                                                     rf"\(pid {os.getpid()}\)"):
            with locks.exclusive(path, "--out=plate1"):  # another open file: flock treats it as another holder
                pass
    assert not path.exists() and locks.holder(path) is None
    with locks.exclusive(path, "--out=plate1"):  # free again; without `remove` the file stays
        pass
    assert path.exists() and locks.holder(path) is None


def test_a_report_names_a_preset_other_than_full(tmp_path):
    from tlkeras.storage.rundir import RunDir

    run = RunDir(tmp_path)
    assert run.preset() == "full" and run.preset_note() == []  # no flags.txt: an old run, or a library call
    (tmp_path / "flags.txt").write_text("--epochs=40\n--preset=full\n")
    assert run.preset_note() == []
    (tmp_path / "flags.txt").write_text("--epochs=40\n--preset=quick\n--seeds=0,1\n")
    (note, blank) = run.preset_note()
    assert note.startswith("> **--preset=quick**: small training sets") and "not the full protocol's" in note


def test_models_of_one_structure_are_written_from_a_checked_template(tmp_path):
    """`KerasFileWriter` (what the sweeps export members with): after the first model of a
    structure, files from the template hold what `model.save` writes, and load with plain Keras."""
    import keras

    from tlkeras.storage.keras_files import KerasFileWriter, keras_file_bytes, same_keras_file

    writer = KerasFileWriter()
    spec = NetworkSpec(input_offset=(0.0, 0.0), input_scale=(20.0, 20.0), output_offset=(1.0, 2.0),
                       output_scale=(3.0, 4.0))
    members = [build_mlp(spec, seed=seed, name=f"member_{seed}") for seed in range(3)]
    writer.bytes_of(members[0])  # saved by Keras, and checked against the template's rendering
    assert writer.checked_structures() == (1, 0)
    x = np.random.default_rng(0).uniform(0, 20, (5, 2)).astype(np.float32)
    for member in members[1:]:
        payload = writer.bytes_of(member)
        assert same_keras_file(payload, keras_file_bytes(member))
        path = tmp_path / f"{member.name}.keras"
        path.write_bytes(payload)
        loaded = keras.saving.load_model(path)
        assert loaded.name == member.name
        for a, b in zip(loaded.get_weights(), member.get_weights()):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), member.predict(x, verbose=0))
    # The comparison sees a single changed weight.
    changed = members[2].get_weights()
    changed[0][0, 0] += 1e-3
    members[2].set_weights(changed)
    unchanged = build_mlp(spec, seed=2, name="member_2")
    assert same_keras_file(keras_file_bytes(unchanged), writer.bytes_of(build_mlp(spec, seed=2, name="member_2")))
    assert not same_keras_file(writer.bytes_of(members[2]), keras_file_bytes(unchanged))
