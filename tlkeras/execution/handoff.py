"""What a stack job reads and what it leaves, as bytes: all that passes between driver and worker.

A job never opens the run directory itself. `gather_inputs` reads what it needs (the pretrained
models it starts from, cached pretraining) into a `JobInputs`; the job returns a `JobOutput` (each
member's model files, loss curve, TensorBoard run and record); `write_output` writes that into the
run directory and the cache, the record of each member last. With local worker processes the
worker calls both itself; with Ray (`ray_backend.py`) the driver does, and the bytes travel
through Ray's object store: no filesystem is shared, and the run directory comes out the same.
"""

from __future__ import annotations

import io
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tlkeras.core.config import StudyConfig
from tlkeras.core.members import Member, StackJob
from tlkeras.core.options import SweepOptions
from tlkeras.core.vocabulary import PRETRAIN
from tlkeras.execution.planning import needs_pretrained, pretrained_member
from tlkeras.storage.persistence import Staging, json_text
from tlkeras.storage.rundir import RunDir
from tlkeras.systems import design_sets


@dataclass(frozen=True)
class ModelFiles:
    """A trained model as its files: the `.keras` archive, the `.npy` loss curve, and for a
    pretraining member its evaluation curves against every system (None if not recorded)."""

    model: bytes
    losses: bytes
    curves: bytes | None = None
    source: str = ""  # where the model file was read from (named in errors)

    def loss_curve(self) -> np.ndarray:
        return np.load(io.BytesIO(self.losses))

    def curve_table(self) -> dict | None:
        return None if self.curves is None else json.loads(self.curves)


@dataclass(frozen=True)
class JobInputs:
    """Everything a job reads: the pretrained models its members start from (by member key) and,
    for a pretraining job, the cache entries of its seeds (by seed)."""

    pretrained: dict[str, ModelFiles] = field(default_factory=dict)
    cached: dict[int, ModelFiles] = field(default_factory=dict)
    design: dict[str, bytes] = field(default_factory=dict)  # Experiment 4: a lab's points (.npy) by set


@dataclass(frozen=True)
class MemberOutput:
    """One finished member: its files, its TensorBoard run (relative path -> bytes) and record."""

    member: Member
    files: ModelFiles
    tensorboard: dict[str, bytes]
    record: dict
    plain_model: bytes | None = None  # residual, g_feature: the network alone, for plain Keras

    @property
    def cached(self) -> bool:
        return bool(self.record.get("cached"))


@dataclass(frozen=True)
class JobOutput:
    members: list[MemberOutput]
    seconds: float  # training time of the stack
    steps: int


# Reading -----------------------------------------------------------------------------------------
def gather_inputs(config: StudyConfig, run_dir: RunDir, options: SweepOptions, job: StackJob) -> JobInputs:
    """What `job` needs from the run directory and the cache, read into memory."""
    from tlkeras.execution.pretrain_cache import cache_entry_complete, pretrain_cache_folder

    pretrained = {}
    for member in job.members:
        if needs_pretrained(member):
            before = pretrained_member(config, member)
            if before.key not in pretrained:
                pretrained[before.key] = read_model_files(
                    run_dir.model_path(before), run_dir.loss_path(before), run_dir.curve_path(before))
    cached = {}
    if job.arm == PRETRAIN:
        for member in job.members:
            folder = pretrain_cache_folder(config, options, member)
            if folder is None or not cache_entry_complete(folder):
                continue
            try:
                cached[member.seed] = read_model_files(folder / "model.keras", folder / "losses.npy",
                                                       folder / "curves.json")
            except OSError as error:
                options.report(f"cache entry {folder} is unreadable ({error}); training seed {member.seed} anew")
    design = {m.system: run_dir.design_path(m.system).read_bytes() for m in job.members
              if design_sets.is_design_set(m.system)}
    return JobInputs(pretrained=pretrained, cached=cached, design=design)


def read_model_files(model: Path, losses: Path, curves: Path) -> ModelFiles:
    return ModelFiles(model=Path(model).read_bytes(), losses=Path(losses).read_bytes(),
                      curves=Path(curves).read_bytes() if Path(curves).is_file() else None, source=str(model))


# Writing -----------------------------------------------------------------------------------------
def write_output(config: StudyConfig, run_dir: RunDir, options: SweepOptions, output: JobOutput) -> None:
    """Write every member of `output`: model, loss curve, curves, cache entry, TensorBoard run,
    and last its record (a record means everything of its member is on disk)."""
    from tlkeras.execution.pretrain_cache import pretrain_cache_folder

    for result in output.members:
        member = result.member
        model_path = run_dir.model_path(member)
        run_dir.staging.write_bytes(model_path, result.files.model)
        if result.plain_model is not None:
            run_dir.staging.write_bytes(model_path.with_suffix(".net.keras"), result.plain_model)
        run_dir.staging.write_bytes(run_dir.loss_path(member), result.files.losses)
        if result.files.curves is not None:
            run_dir.staging.write_bytes(run_dir.curve_path(member), result.files.curves)
        if member.arm == PRETRAIN and not result.cached and options.cache_dir is not None:
            _store_in_cache(options, pretrain_cache_folder(config, options, member), result.files)
        if result.tensorboard:
            run_dir.staging.write_folder(run_dir.tensorboard_run(member),
                                         lambda folder, files=result.tensorboard: write_tree(folder, files))
        run_dir.write_record(member, result.record)


def _store_in_cache(options: SweepOptions, folder: Path, files: ModelFiles) -> None:
    """One cache entry, built whole in the cache's staging folder and renamed into place: an
    entry that exists is complete. Two runs filling the same entry at once both succeed (the
    first rename wins; both wrote the same model)."""
    folder.parent.mkdir(parents=True, exist_ok=True)

    def build(entry: Path) -> None:
        entry.joinpath("model.keras").write_bytes(files.model)
        entry.joinpath("losses.npy").write_bytes(files.losses)
        if files.curves is not None:
            entry.joinpath("curves.json").write_bytes(files.curves)

    Staging(options.cache_dir).write_folder(folder, build, replace=False)


# Bytes of things ---------------------------------------------------------------------------------
def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array))
    return buffer.getvalue()


def json_bytes(value) -> bytes:
    return json_text(value).encode()


_KERAS_FILES = None  # one writer per process: its templates are per model structure


def model_bytes(model) -> bytes:
    """A Keras model as the bytes of its `.keras` file (`storage.keras_files`: after the first
    model of a structure, a checked template filled with the weights; ~7 ms instead of ~22)."""
    global _KERAS_FILES
    if _KERAS_FILES is None:
        from tlkeras.storage.keras_files import KerasFileWriter

        _KERAS_FILES = KerasFileWriter()
    return _KERAS_FILES.bytes_of(model)


def model_from_bytes(payload: bytes, expected=None, source: str = ""):
    """A model back from the bytes of its `.keras` file (via a real file: Keras loads paths);
    errors name `source`, where the bytes came from."""
    from tlkeras.core.errors import ModelFileError
    from tlkeras.storage.persistence import load_model

    with tempfile.TemporaryDirectory(prefix="tlkeras-model-") as scratch:
        path = Path(scratch) / "model.keras"
        path.write_bytes(payload)
        try:
            return load_model(path, expected=expected)
        except ModelFileError as error:
            raise ModelFileError(str(error).replace(str(path), source or "(model bytes)")) from None


def tree_bytes(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by its path relative to `folder`."""
    folder = Path(folder)
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def write_tree(folder: Path, files: dict[str, bytes]) -> None:
    for relative, payload in files.items():
        path = Path(folder) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
