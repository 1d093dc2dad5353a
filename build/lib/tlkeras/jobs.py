"""One stack job, start to finish: starting models, training, and everything its members leave.

`JobExecutor.run(job)` builds each member's starting model (a fresh initialisation, or for the
transfer arm the pretrained model reloaded from its `.keras` file), trains the stack, and for each
member: exports it as a plain MLP, saves it, scores it on the evaluation points, writes its
TensorBoard run, and only then writes its record (a record means the member is complete).
Pretrained models may come from, and go to, a cache keyed by everything that determines them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tlkeras import data, evaluation, interrupts, models, tracking
from tlkeras.config import StudyConfig
from tlkeras.options import SweepOptions, duration
from tlkeras.persistence import ModelFileError, Staging, load_model
from tlkeras.rundir import RunDir
from tlkeras.measurements import MEASURED, fold_index, heldout_rows, is_measured
from tlkeras.systems import system_function, system_name
from tlkeras.training import (
    PRETRAIN, TRANSFER_STRATEGIES, Member, StackJob, initial_model, pretrained_member,
    stack_predictions, train_job,
)

ENGINE_VERSION = 1  # bump when a change alters trained weights: it invalidates the cache


class EvaluationSet:
    """The fixed evaluation points, the noise-free truth of each system there, inside mask."""

    def __init__(self, config: StudyConfig):
        params = config.system_params
        self.x = data.evaluation_points(config.big_box, config.eval_points, config.input_dimension, config.eval_seed)
        self.inside = config.small_box.contains(self.x)
        references = [config.simple_system, *(s for s in config.systems if s != MEASURED)]
        self.truth = {
            system_name(r): np.asarray(system_function(r, params)(self.x.astype(np.float64))) for r in references
        }


def pretrain_cache_key(config: StudyConfig, seed: int) -> str:
    """Everything that determines a pretrained model, hashed (never reused when any differs)."""
    fields = dict(
        engine=ENGINE_VERSION, tensorflow=tf.__version__, keras=keras.__version__,
        simple_system=config.simple_name, simple_source=config.simple_source,
        num_inputs=config.input_dimension, num_outputs=config.output_dimension,
        normalisation=[list(config.input_offset), list(config.input_scale), list(config.output_offset),
                       list(config.output_scale)], eta=list(config.eta),
        theta=list(config.theta), y_tot=config.y_tot, big_domain=list(config.big_domain),
        pretrain_size=config.pretrain_size, synthetic_noise=config.synthetic_noise,
        width=config.width, depth=config.depth, activation=config.activation,
        learning_rate=config.learning_rate, batch_size=config.batch_size,
        pretrain_epochs=config.pretrain_epochs, seed=seed,
    )
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


def pretrain_cache_folder(config: StudyConfig, options: SweepOptions, member: Member) -> Path | None:
    """Where the cache keeps a pretraining member's model (None: no cache)."""
    if options.cache_dir is None:
        return None
    return Path(options.cache_dir) / "pretrain" / pretrain_cache_key(config, member.seed)


class JobExecutor:
    """Trains one stack job and writes everything of its members; lives in a worker process."""

    def __init__(self, config: StudyConfig, run_dir: RunDir, options: SweepOptions):
        self.config = config
        self.run_dir = run_dir
        self.options = options
        self.evaluation = EvaluationSet(config)

    def run(self, job: StackJob) -> tuple[float, int]:
        """Train `job` (less any cached pretraining); return (training seconds, steps trained)."""
        if job.arm == PRETRAIN:
            job = self._reuse_cached_pretraining(job)
            if not job.members:
                return 0.0, 0
        starting = [self._starting_model(member) for member in job.members]
        label = job_label(job)
        report = self.options.report
        report(f"start  [{label}] {job.epochs} epochs, {job.steps:,} steps")
        trained = train_job(self.config, job, starting, progress=self._progress(job, label))
        self._finish(job, trained)
        report(f"done   [{label}] in {duration(trained.log.seconds)}")
        return trained.log.seconds, job.steps

    def _starting_model(self, member: Member) -> keras.Model:
        if member.arm != "transfer":
            return initial_model(self.config, member)
        # The study's protocol: the pretrained model is saved, then reloaded from disk.
        path = self.run_dir.model_path(pretrained_member(self.config, member))
        pretrained = load_model(path, expected=self.config.network)
        return TRANSFER_STRATEGIES[self.config.transfer_strategy].starting_model(pretrained)

    def _finish(self, job: StackJob, trained) -> None:
        network = self.config.network
        predictions = network.unscale_outputs(stack_predictions(trained.stack, network.scale_inputs(self.evaluation.x)))
        seconds_per_member = trained.log.seconds / len(job.members)
        for index, member in enumerate(job.members):
            model = models.export_member(trained.stack, network, index, name=_model_name(member))
            model_path = self.run_dir.staging.save_model(model, self.run_dir.model_path(member))
            losses = trained.log.losses[:, index]
            self.run_dir.staging.save_npy(self.run_dir.loss_path(member), losses)
            if member.arm == PRETRAIN and self.options.cache_dir is not None:
                self._store_in_cache(member, model_path, losses)
            self._record(member, predictions[index], losses, seconds_per_member, model_path, cached=False,
                         model=model)

    def _record(self, member: Member, predictions: np.ndarray, losses: np.ndarray,
                seconds: float, model_path: Path, cached: bool, model: keras.Model | None = None) -> None:
        extra: dict = {}
        if is_measured(member.system):
            # No noise-free truth: scored on the measured rows it never saw (a fold), or on all
            # of them (the final members: their fit). The report pools these across seeds.
            rows, x_rows, y_rows = heldout_rows(self.config, member.system)
            y_hat = np.asarray(model(x_rows.astype(np.float32), training=False), np.float64)
            residuals = y_hat - y_rows
            errors = np.mean(np.abs(residuals), axis=-1)
            score = evaluation.score(errors, np.ones(len(errors), bool))
            extra = dict(rows=rows.tolist(), row_predictions=y_hat.tolist(),
                         l1_by_output=np.mean(np.abs(residuals), axis=0).tolist(),
                         rmse_by_output=np.sqrt(np.mean(residuals**2, axis=0)).tolist())
            if np.isnan(residuals).any() or not np.isfinite(losses).all():
                raise ArithmeticError(f"training of {member.key} diverged (loss {losses[-1]}): try a smaller "
                                      "--learning_rate, or check the measurements' scale against the simple model's")
        else:
            errors = evaluation.point_errors(predictions, self.evaluation.truth[member.system])
            score = evaluation.score(errors, self.evaluation.inside)
        earlier = None
        first_epoch = 0
        if member.arm == "transfer":
            earlier = np.load(self.run_dir.loss_path(pretrained_member(self.config, member)))
            first_epoch = self.config.pretrain_epochs
        hparams = {"arm": member.arm, "system": member.system, "volume": member.volume, "seed": member.seed}
        self.run_dir.staging.write_folder(
            self.run_dir.tensorboard_run(member),
            lambda folder: tracking.write_member(folder, member.key, hparams, losses, first_epoch, score,
                                                 errors, earlier),
        )
        record = dict(
            key=member.key, arm=member.arm, system=member.system, volume=member.volume,
            seed=member.seed, **score.as_dict(), final_train_loss=float(losses[-1]),
            epochs=int(len(losses)), train_seconds=float(seconds), cached=cached,
            model=str(model_path.relative_to(self.run_dir.path)),
            point_errors=[float(e) for e in errors], **extra,
        )
        self.run_dir.write_record(member, record)  # last: a record means all of the above exists

    # Pretraining cache ------------------------------------------------------------------------
    def _cache_folder(self, member: Member) -> Path | None:
        return pretrain_cache_folder(self.config, self.options, member)

    def _reuse_cached_pretraining(self, job: StackJob) -> StackJob:
        todo = []
        for member in job.members:
            folder = self._cache_folder(member)
            if folder is None or not cache_entry_complete(folder):
                todo.append(member)
                continue
            try:
                model = load_model(folder / "model.keras", expected=self.config.network)
                losses = np.load(folder / "losses.npy")
            except (ModelFileError, OSError, ValueError) as error:
                self.options.report(f"cache entry {folder} is unusable ({error}); training seed {member.seed} anew")
                todo.append(member)
                continue
            model_path = self.run_dir.staging.save_model(model, self.run_dir.model_path(member))
            self.run_dir.staging.save_npy(self.run_dir.loss_path(member), losses)
            predictions = np.asarray(model(self.evaluation.x, training=False))
            self._record(member, predictions, losses, 0.0, model_path, cached=True)
            self.options.report(f"reused pretrained model of seed {member.seed} from {folder}")
        return job.subset(todo)

    def _store_in_cache(self, member: Member, model_path: Path, losses: np.ndarray) -> None:
        """One cache entry, built whole in the cache's staging folder and renamed into place: an
        entry that exists is complete. Two runs filling the same entry at once both succeed (the
        first rename wins; both wrote the same model)."""
        folder = self._cache_folder(member)
        folder.parent.mkdir(parents=True, exist_ok=True)

        def build(entry: Path) -> None:
            entry.joinpath("model.keras").write_bytes(model_path.read_bytes())
            np.save(entry / "losses.npy", losses)

        Staging(self.options.cache_dir).write_folder(folder, build, replace=False)

    # Progress ---------------------------------------------------------------------------------
    def _progress(self, job: StackJob, label: str):
        last = [0.0]

        def report(done: int, total: int, elapsed: float) -> None:
            interrupts.check()  # a job trained in the driver process (workers=1) stops here
            if elapsed - last[0] < self.options.report_every_seconds and done < total:
                return
            last[0] = elapsed
            eta = elapsed / max(1, done) * (total - done)
            self.options.report(
                f"       [{label}] epoch {job.first_epoch + done}/{job.first_epoch + total} "
                f"({100 * done / total:.0f}%), {duration(elapsed)} elapsed, job ETA {duration(eta)}"
            )

        return report


def cache_entry_complete(folder: Path) -> bool:
    return (folder / "model.keras").is_file() and (folder / "losses.npy").is_file()


def job_label(job: StackJob) -> str:
    seeds = sorted({m.seed for m in job.members})
    systems = sorted({m.system for m in job.members})
    folds = [s for s in systems if fold_index(s) is not None]
    if len(folds) > 1:  # 'measurements, 5 folds' rather than every fold's name
        systems = [s for s in systems if s not in folds] + [f"{MEASURED}, {len(folds)} folds"]
    return f"{job.arm} | n={job.size} | {'+'.join(systems)} | seeds {_ranges(seeds)} | {len(job.members)} members"


def _model_name(member: Member) -> str:
    return f"{member.arm}_{member.system}_n{member.volume}_seed{member.seed}".replace(".", "p")


def _ranges(values: list[int]) -> str:
    if values and values == list(range(values[0], values[-1] + 1)) and len(values) > 2:
        return f"{values[0]}-{values[-1]}"
    return ",".join(str(v) for v in values)
