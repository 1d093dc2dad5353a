"""One stack job, start to finish: starting models, training, and everything its members leave.

`JobExecutor.run(job, inputs)` builds each member's starting model (a fresh initialisation, or
for the transfer arms the pretrained model reloaded from its `.keras` file's bytes), trains the
stack, and for each member: exports it as a plain MLP, scores it on the evaluation points, writes
its TensorBoard run, and returns all of it as bytes with the member's record (`handoff.JobOutput`),
for `handoff.write_output` to write into the run directory. Pretrained models may come from, and go
to, a cache keyed by everything that determines them.
"""

from __future__ import annotations

import functools
import io
import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tlkeras.core.config import StudyConfig
from tlkeras.core.errors import ModelFileError
from tlkeras.core.members import Member, StackJob
from tlkeras.core.options import SweepOptions, duration
from tlkeras.core.vocabulary import PRETRAIN
from tlkeras.design.methods import MODEL_FREE
from tlkeras.execution.handoff import (
    JobInputs,
    JobOutput,
    MemberOutput,
    ModelFiles,
    json_bytes,
    model_bytes,
    model_from_bytes,
    npy_bytes,
    tree_bytes,
)
from tlkeras.execution.planning import needs_pretrained, pretrained_member
from tlkeras.execution.training import TrainedStack, prepare, train_job
from tlkeras.nn import models
from tlkeras.results import curves, evaluation, tracking
from tlkeras.results.curves import EvaluationCurves
from tlkeras.results.evaluation import EvaluationSet
from tlkeras.runtime import interrupts
from tlkeras.storage.rundir import RunDir
from tlkeras.strategies.base import Strategy
from tlkeras.strategies.registry import chosen_settings, strategy_of_arm
from tlkeras.strategies.selection import WISE_FT_MIXES, mix
from tlkeras.systems import design_sets
from tlkeras.systems.measurements import MEASURED, fold_index, heldout_rows, is_measured, training_rows_of


class JobExecutor:
    """Trains one stack job into a `JobOutput`, reading nothing but its `JobInputs` (no run
    directory, no cache: see handoff.py); lives in a worker process."""

    def __init__(self, config: StudyConfig, options: SweepOptions):
        self.config = config
        self.options = options
        self.evaluation = EvaluationSet(config)
        self.layout = RunDir(Path())  # the run directory's paths, relative to it

    def run(self, job: StackJob, inputs: JobInputs) -> JobOutput:
        """Train `job` (less any cached pretraining); every member's files and record."""
        for name, payload in inputs.design.items():
            design_sets.install(name, np.load(io.BytesIO(payload)))
        outputs: list[MemberOutput] = []
        if job.arm == PRETRAIN:
            outputs, job = self._reuse_cached_pretraining(job, inputs)
            if not job.members:
                return JobOutput(outputs, 0.0, 0)
        pretrained = [self._pretrained(member, inputs) for member in job.members]
        prepared = [prepare(self.config, member, p) for member, p in zip(job.members, pretrained)]
        label = job_label(job)
        report = self.options.report
        report(f"start  [{label}] {job.epochs} epochs, {job.steps:,} steps")
        job_curves = EvaluationCurves(self.config, self.evaluation, job.members)
        eval_inputs = None
        if job_curves.wanted:
            x = self.config.network.scale_inputs(self.evaluation.x)
            strategy = strategy_of_arm(job.arm)
            eval_inputs = np.stack([x if strategy is None else strategy.inputs(self.config, x, p) for p in pretrained])
        trained = train_job(self.config, job, prepared, progress=self._progress(job, label),
                            eval_inputs=eval_inputs, evaluated=job_curves.add if job_curves.wanted else None)
        outputs += self._finish(job, trained, pretrained, eval_inputs, job_curves, inputs)
        report(f"done   [{label}] in {duration(trained.seconds)}")
        return JobOutput(outputs, trained.seconds, job.steps)

    def _pretrained(self, member: Member, inputs: JobInputs) -> keras.Model | None:
        if not needs_pretrained(member):
            return None
        # The study's protocol: the pretrained model is saved, then reloaded from its file.
        files = inputs.pretrained[pretrained_member(self.config, member).key]
        return _loaded_model(files.model, self.config.network, files.source)

    def _finish(self, job: StackJob, trained: TrainedStack, pretrained: list, eval_inputs,
                job_curves: EvaluationCurves, inputs: JobInputs) -> list[MemberOutput]:
        strategy = strategy_of_arm(job.arm)
        network = self.config.network
        if eval_inputs is None:
            x = network.scale_inputs(self.evaluation.x)
            eval_inputs = np.stack([x if strategy is None else strategy.inputs(self.config, x, p) for p in pretrained])
        seconds_per_member = trained.seconds / len(job.members)
        mixes = self._mix_predictions(trained, eval_inputs) if any("wise_ft_mix" in n for n in trained.notes) else None
        # The plain exported network is refilled member by member (each is saved and scored before
        # the next), unless the strategy's saved model wraps it.
        reuse = strategy is None or type(strategy).export is Strategy.export
        outputs = []
        for index, member in enumerate(job.members):
            exported = network if strategy is None else strategy.network(self.config)
            net = models.export_member(trained.stack, exported, index, name=_model_name(member), reuse=reuse)
            model = net if strategy is None else strategy.export(self.config, net, pretrained[index])
            plain = model_bytes(net) if strategy is not None and strategy.saves_plain_net else None
            predictions = np.asarray(model(self.evaluation.x.astype(np.float32), training=False), np.float64)
            losses = trained.log.losses[:, index]
            extra = job_curves.record(index)
            curves_file = None
            if member.arm == PRETRAIN and extra:
                curves_file = json_bytes(extra.pop("eval_curves"))
            extra.update(trained.notes[index])
            if mixes is not None:
                extra.update(wise_ft_eval_l1=self._mix_curve(mixes, index, member))
            files = ModelFiles(model=model_bytes(model), losses=npy_bytes(losses), curves=curves_file)
            outputs.append(self._output(member, files, model, predictions, losses, seconds_per_member, inputs,
                                        cached=False, extra=extra, curve=job_curves.member_curve(index),
                                        plain_model=plain))
        return outputs

    @staticmethod
    def _mix_predictions(trained: TrainedStack, eval_inputs: np.ndarray) -> list[np.ndarray]:
        """wise_ft: every member's predictions (network units) at every mix of WISE_FT_MIXES."""
        copies = 2 if len(trained.job.members) == 1 else 1
        return [trained.trainer.predict([tf.constant(w) for w in mix(trained.start, trained.trained, a)],
                                        np.concatenate([eval_inputs] * copies)) for a in WISE_FT_MIXES]

    def _mix_curve(self, mix_predictions: list[np.ndarray], index: int, member: Member) -> list:
        """wise_ft, for the record only (never used to choose): the evaluation L1 of every mix."""
        truth = self.evaluation.truth_of(member.system)
        if truth is None:
            return []
        unscale = self.config.network.unscale_outputs
        return [float(evaluation.point_errors(unscale(p[index]), truth).mean()) for p in mix_predictions]

    def _output(self, member: Member, files: ModelFiles, model: keras.Model, predictions: np.ndarray,
                losses: np.ndarray, seconds: float, inputs: JobInputs, cached: bool, extra: dict | None = None,
                curve: dict | None = None, plain_model: bytes | None = None) -> MemberOutput:
        """A member's score, TensorBoard run and record, with its files."""
        extra = dict(extra or {})
        if is_measured(member.system):
            # No noise-free truth: scored on the measured rows it never saw (a fold), or on all
            # of them (the final members: their fit). The report pools these across seeds.
            rows, x_rows, y_rows = heldout_rows(self.config, member.system)
            y_hat = np.asarray(model(x_rows.astype(np.float32), training=False), np.float64)
            residuals = y_hat - y_rows
            errors = np.mean(np.abs(residuals), axis=-1)
            score = evaluation.score(errors, np.ones(len(errors), bool))
            extra.update(rows=rows.tolist(), row_predictions=y_hat.tolist(),
                         l1_by_output=np.mean(np.abs(residuals), axis=0).tolist(),
                         rmse_by_output=np.sqrt(np.mean(residuals**2, axis=0)).tolist())
            if fold_index(member.system) is not None:
                # A fold member's error on the rows it trained on: the noise floor of its
                # calibration's spread (fit.calibration), known without its held-out rows' labels.
                _, x_train, y_train = training_rows_of(self.config, member.system)
                fitted = np.asarray(model(x_train.astype(np.float32), training=False), np.float64)
                extra["train_rmse_by_output"] = np.sqrt(np.mean((fitted - y_train) ** 2, axis=0)).tolist()
            if np.isnan(residuals).any() or not np.isfinite(losses).all():
                raise ArithmeticError(f"training of {member.key} diverged (loss {losses[-1]}): try a smaller "
                                      "--learning_rate, or check the measurements' scale against the simple model's")
        else:
            errors = evaluation.point_errors(predictions, self.evaluation.truth_of(member.system))
            score = evaluation.score(errors, self.evaluation.inside)
            # The saved model's predictions on the evaluation points: the report's ensembles and
            # coverage read them here instead of reloading every model.
            extra["eval_predictions"] = predictions.tolist()
            lab = design_sets.parse(member.system)
            if lab is not None and self.config.design_candidates and lab.method not in MODEL_FREE \
                    and member.arm == self.config.strategy_arms()[0]:
                # Experiment 4: the picking ensemble's predictions where the lab picks its next
                # points from, and where it aims (7 significant digits of each output's largest).
                pool = self.config.design_pool(lab.replicate, member.volume).astype(np.float32)
                extra["design_predictions"] = _significant(np.asarray(model(pool, training=False), np.float64)).tolist()
        earlier = earlier_curve = None
        first_epoch = 0
        strategy = strategy_of_arm(member.arm)
        if strategy is not None and strategy.continues_pretraining:
            before = inputs.pretrained[pretrained_member(self.config, member).key]
            earlier = before.loss_curve()
            first_epoch = self.config.pretrain_epochs
            table = before.curve_table()
            if table is not None:  # the pretrained model's error on this member's system
                earlier_curve = curves.earlier_curve(self.config, table, member.system)
        hparams = {"arm": member.arm, "system": member.system, "volume": member.volume, "seed": member.seed,
                   **{name: float(extra[name]) for name in chosen_settings(self.config) if name in extra}}
        tensorboard: dict[str, bytes] = {}
        lab = design_sets.parse(member.system)
        # Experiment 4 trains thousands of lab members: the first lab's stand for them in TensorBoard
        # (every member's score is in its record); its own runs chart L1 against N per method.
        if lab is None or lab.replicate == 0:
            with tempfile.TemporaryDirectory(prefix="tlkeras-tensorboard-") as scratch:
                tracking.write_member(Path(scratch), member.key, hparams, losses, first_epoch, score,
                                      errors, earlier, curve, earlier_curve)
                tensorboard = tree_bytes(Path(scratch))
        record = dict(
            key=member.key, arm=member.arm, system=member.system, volume=member.volume,
            seed=member.seed, **score.as_dict(), final_train_loss=float(losses[-1]),
            epochs=int(len(losses)), train_seconds=float(seconds), cached=cached,
            model=str(self.layout.model_path(member)),
            point_errors=[float(e) for e in errors], **extra,
        )
        return MemberOutput(member=member, files=files, tensorboard=tensorboard, record=record,
                            plain_model=plain_model)

    # Pretraining cache ------------------------------------------------------------------------
    def _reuse_cached_pretraining(self, job: StackJob, inputs: JobInputs) -> tuple[list[MemberOutput], StackJob]:
        outputs, todo = [], []
        for member in job.members:
            files = inputs.cached.get(member.seed)
            if files is None:
                todo.append(member)
                continue
            try:
                model = model_from_bytes(files.model, expected=self.config.network, source=files.source)
                losses = files.loss_curve()
                files.curve_table()
            except (ModelFileError, OSError, ValueError) as error:
                self.options.report(f"cache entry {Path(files.source).parent} is unusable ({error}); "
                                    f"training seed {member.seed} anew")
                todo.append(member)
                continue
            predictions = np.asarray(model(self.evaluation.x, training=False))
            outputs.append(self._output(member, files, model, predictions, losses, 0.0, inputs, cached=True))
            self.options.report(f"reused pretrained model of seed {member.seed} from {Path(files.source).parent}")
        return outputs, job.subset(todo)

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


@functools.lru_cache(maxsize=64)
def _loaded_model(payload: bytes, expected, source: str) -> keras.Model:
    """A pretrained model from its file's bytes, kept by this worker: every job of a seed starts
    from the same file, and loading a `.keras` file costs about 0.15 s. Used read-only."""
    return model_from_bytes(payload, expected=expected, source=source)


def job_label(job: StackJob) -> str:
    seeds = sorted({m.seed for m in job.members})
    systems = sorted({m.system for m in job.members})
    folds = [s for s in systems if fold_index(s) is not None]
    if len(folds) > 1:  # 'measurements, 5 folds' rather than every fold's name
        systems = [s for s in systems if s not in folds] + [f"{MEASURED}, {len(folds)} folds"]
    labs = [design_sets.parse(s) for s in systems]
    if all(labs) and len(labs) > 1:  # 'hill2: 5 methods x 10 labs' rather than every lab's set
        systems = [f"{base}: {len({lab.method for lab in labs if lab.system == base})} methods x "
                   f"{len({lab.replicate for lab in labs if lab.system == base})} labs"
                   for base in sorted({lab.system for lab in labs})]
    return f"{job.arm} | n={job.size} | {'+'.join(systems)} | seeds {_ranges(seeds)} | {len(job.members)} members"


def _significant(values: np.ndarray, digits: int = 7) -> np.ndarray:
    """`values` [points, outputs] rounded per output to `digits` significant digits of its largest
    magnitude (a record's size, without losing a small-unit output)."""
    largest = np.max(np.abs(values), axis=0, initial=0.0)
    rounded = values.copy()
    for o, scale in enumerate(largest):
        if scale > 0 and np.isfinite(scale):
            rounded[:, o] = np.round(values[:, o], digits - 1 - int(np.floor(np.log10(scale))))
    return rounded


def _model_name(member: Member) -> str:
    return f"{member.arm}_{member.system}_n{member.volume}_seed{member.seed}".replace(".", "p").replace("@", "_")


def _ranges(values: list[int]) -> str:
    if values and values == list(range(values[0], values[-1] + 1)) and len(values) > 2:
        return f"{values[0]}-{values[-1]}"
    return ",".join(str(v) for v in values)
