"""Running a sweep: stack jobs on worker threads, each finished member recorded as it finishes.

`run_sweep` takes a config and a run directory and drives every stack job of `plan_jobs`:
- jobs run on `workers` threads (TensorFlow releases the GIL while a compiled call runs, so two
  stacks train at once on two cores); the longest ready job goes first, and fine-tuning waits
  for the pretrained models it starts from;
- after a job, each member is exported as a plain MLP, saved (atomically), scored on the
  evaluation points, written to TensorBoard, and only then recorded in `cells/` (atomically):
  a record means everything of that member is on disk;
- resuming skips every recorded member, and a job with some members recorded trains only the
  others (members are independent, so the numbers do not change);
- pretrained models can be reused from a cache keyed by everything that determines them.
"""

from __future__ import annotations

import concurrent.futures as futures
import hashlib
import json
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from tlkeras import data, evaluation, models, tracking
from tlkeras.config import StudyConfig
from tlkeras.persistence import atomic_save_npy, atomic_write_json, load_model, save_model
from tlkeras.rundir import RunDir
from tlkeras.systems import SystemSpec, make_system
from tlkeras.training import (
    PRETRAIN, FineTuneAll, Member, StackJob, TransferStrategy, initial_model, plan_jobs,
    pretrained_member, stack_predictions, train_job,
)

ENGINE_VERSION = 1  # bump when a change alters trained weights: it invalidates the cache
Reporter = Callable[[str], None]


class SweepCancelled(Exception):
    """Raised inside a worker when the sweep is being stopped (Ctrl-C)."""


@dataclass
class SweepOptions:
    """How to run (not what to compute): nothing here changes a result."""

    workers: int = 2
    max_members: int = 64
    cache_dir: Path | None = None
    report_every_seconds: float = 15.0
    strategy: TransferStrategy = field(default_factory=FineTuneAll)


class EvaluationSet:
    """The fixed evaluation points, the noise-free truth of each system there, inside mask."""

    def __init__(self, config: StudyConfig):
        params = config.system_params
        self.x = data.evaluation_points(
            data.Domain(*config.big_domain), config.eval_points, params.dimension, config.eval_seed
        )
        self.inside = data.Domain(*config.small_domain).contains(self.x)
        names = [config.simple_system, *config.systems]
        self.truth = {
            SystemSpec.parse(n).name: np.asarray(make_system(SystemSpec.parse(n), params)(self.x.astype(np.float64)))
            for n in names
        }


def pretrain_cache_key(config: StudyConfig, seed: int) -> str:
    """Everything that determines a pretrained model, hashed (never reused when any differs)."""
    fields = dict(
        engine=ENGINE_VERSION, tensorflow=tf.__version__, keras=keras.__version__,
        simple_system=SystemSpec.parse(config.simple_system).name, eta=list(config.eta),
        theta=list(config.theta), y_tot=config.y_tot, big_domain=list(config.big_domain),
        pretrain_size=config.pretrain_size, synthetic_noise=config.synthetic_noise,
        width=config.width, depth=config.depth, activation=config.activation,
        learning_rate=config.learning_rate, batch_size=config.batch_size,
        pretrain_epochs=config.pretrain_epochs, seed=seed,
    )
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


class SweepRunner:
    """Runs every job of a config into one run directory; see the module docstring."""

    def __init__(self, config: StudyConfig, run_dir: RunDir, options: SweepOptions, report: Reporter):
        self.config = config
        self.run_dir = run_dir
        self.options = options
        self.report = report
        self.evaluation = EvaluationSet(config)
        self.jobs = plan_jobs(config, options.max_members)
        self.cancel = threading.Event()
        self._lock = threading.Lock()  # exports, saves and TensorBoard writes: one at a time
        self._seconds_per_step: list[float] = []
        self._remaining_steps: dict[int, int] = {}

    # Scheduling -----------------------------------------------------------------------------
    def run(self) -> list[dict]:
        """Train everything not yet recorded; return every member's record."""
        pending = []
        for job in self.jobs:
            todo = [m for m in job.members if self.run_dir.read_record(m) is None]
            if todo:
                pending.append(job.subset(todo))
        skipped = sum(len(j.members) for j in self.jobs) - sum(len(j.members) for j in pending)
        if skipped:
            self.report(f"resuming: {skipped} finished members kept, {sum(len(j.members) for j in pending)} to train")
        self._remaining_steps = {id(job): job.steps for job in pending}
        started = time.perf_counter()
        with futures.ThreadPoolExecutor(max_workers=self.options.workers, thread_name_prefix="stack") as pool:
            running: dict[futures.Future, StackJob] = {}
            try:
                while pending or running:
                    for job in sorted(self._ready(pending), key=lambda j: -j.steps):
                        if len(running) >= self.options.workers:
                            break
                        pending.remove(job)
                        running[pool.submit(self._run_job, job)] = job
                    if not running:
                        missing = ", ".join(j.name for j in pending)
                        raise RuntimeError(f"jobs waiting on models that were never trained: {missing}")
                    done, _ = futures.wait(running, timeout=1.0, return_when=futures.FIRST_COMPLETED)
                    for future in done:
                        running.pop(future)
                        future.result()  # re-raise a worker's error here
            except BaseException:
                self.cancel.set()
                raise
        self.report(f"sweep finished in {_duration(time.perf_counter() - started)}")
        return [self.run_dir.read_record(m) for job in self.jobs for m in job.members]

    def _ready(self, pending: list[StackJob]) -> list[StackJob]:
        ready = []
        for job in pending:
            if job.arm == "transfer":
                needed = {pretrained_member(self.config, m) for m in job.members}
                if any(self.run_dir.read_record(p) is None for p in needed):
                    continue
            ready.append(job)
        return ready

    # One job ----------------------------------------------------------------------------------
    def _run_job(self, job: StackJob) -> None:
        if job.arm == PRETRAIN:
            job = self._reuse_cached_pretraining(job)
            if not job.members:
                self._remaining_steps.pop(id(job), None)
                return
        starting = [self._starting_model(member) for member in job.members]
        seeds = sorted({m.seed for m in job.members})
        systems = sorted({m.system for m in job.members})
        label = (f"{job.arm} | n={job.size} | {'+'.join(systems)} | seeds {_ranges(seeds)} | "
                 f"{len(job.members)} members")
        self.report(f"start  [{label}] {job.epochs} epochs, {job.steps:,} steps")
        trained = train_job(self.config, job, starting, progress=self._progress(job, label))
        with self._lock:
            self._finish(job, trained)
        self.report(f"done   [{label}] in {_duration(trained.log.seconds)}")

    def _starting_model(self, member: Member) -> keras.Model:
        if member.arm != "transfer":
            return initial_model(self.config, member)
        # The study's protocol: the pretrained model is saved, then reloaded from disk.
        path = self.run_dir.model_path(pretrained_member(self.config, member))
        pretrained = load_model(path, expected=self.config.network)
        return self.options.strategy.starting_model(pretrained)

    def _finish(self, job: StackJob, trained) -> None:
        predictions = stack_predictions(trained.stack, self.evaluation.x)
        seconds_per_member = trained.log.seconds / len(job.members)
        for index, member in enumerate(job.members):
            model = models.export_member(trained.stack, self.config.network, index, name=_model_name(member))
            model_path = save_model(model, self.run_dir.model_path(member))
            losses = trained.log.losses[:, index]
            atomic_save_npy(self.run_dir.loss_path(member), losses)
            self._record(member, predictions[index], losses, seconds_per_member, model_path, cached=False)
            if member.arm == PRETRAIN and self.options.cache_dir is not None:
                self._store_in_cache(member, model_path, losses)

    def _record(self, member: Member, predictions: np.ndarray, losses: np.ndarray,
                seconds: float, model_path: Path, cached: bool) -> None:
        errors = evaluation.point_errors(predictions, self.evaluation.truth[member.system])
        score = evaluation.score(errors, self.evaluation.inside)
        earlier = None
        first_epoch = 0
        if member.arm == "transfer":
            earlier = np.load(self.run_dir.loss_path(pretrained_member(self.config, member)))
            first_epoch = self.config.pretrain_epochs
        hparams = {"arm": member.arm, "system": member.system, "volume": member.volume, "seed": member.seed}
        tracking.write_member(self.run_dir.tensorboard_run(member), member.key, hparams, losses,
                              first_epoch, score, errors, earlier)
        record = dict(
            key=member.key, arm=member.arm, system=member.system, volume=member.volume,
            seed=member.seed, **score.as_dict(), final_train_loss=float(losses[-1]),
            epochs=int(len(losses)), train_seconds=float(seconds), cached=cached,
            model=str(model_path.relative_to(self.run_dir.path)),
            point_errors=[float(e) for e in errors],
        )
        self.run_dir.write_record(member, record)

    # Pretraining cache ------------------------------------------------------------------------
    def _cache_folder(self, member: Member) -> Path | None:
        if self.options.cache_dir is None:
            return None
        return Path(self.options.cache_dir) / "pretrain" / pretrain_cache_key(self.config, member.seed)

    def _reuse_cached_pretraining(self, job: StackJob) -> StackJob:
        todo = []
        for member in job.members:
            folder = self._cache_folder(member)
            if folder is None or not (folder / "model.keras").exists() or not (folder / "losses.npy").exists():
                todo.append(member)
                continue
            with self._lock:
                model = load_model(folder / "model.keras", expected=self.config.network)
                model_path = save_model(model, self.run_dir.model_path(member))
                losses = np.load(folder / "losses.npy")
                atomic_save_npy(self.run_dir.loss_path(member), losses)
                predictions = np.asarray(model(self.evaluation.x, training=False))
                self._record(member, predictions, losses, 0.0, model_path, cached=True)
            self.report(f"reused pretrained model for seed {member.seed} from {folder}")
        return job.subset(todo)

    def _store_in_cache(self, member: Member, model_path: Path, losses: np.ndarray) -> None:
        folder = self._cache_folder(member)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_save_npy(folder / "losses.npy", losses)
        temporary = folder / f".model.{id(self)}.tmp.keras"
        shutil.copyfile(model_path, temporary)
        temporary.replace(folder / "model.keras")

    # Progress ---------------------------------------------------------------------------------
    def _progress(self, job: StackJob, label: str):
        last = [0.0]
        steps_per_epoch = job.steps // job.epochs
        key = id(job)

        def report(done: int, total: int, elapsed: float) -> None:
            if self.cancel.is_set():
                raise SweepCancelled()
            self._remaining_steps[key] = (total - done) * steps_per_epoch
            rate = elapsed / max(1, done * steps_per_epoch)
            self._seconds_per_step.append(rate)
            if elapsed - last[0] < self.options.report_every_seconds and done < total:
                return
            last[0] = elapsed
            eta = rate * (total - done) * steps_per_epoch
            sweep_eta = rate * sum(self._remaining_steps.values()) / max(1, self.options.workers)
            epoch = job.first_epoch + done
            self.report(
                f"       [{label}] epoch {epoch}/{job.first_epoch + total} "
                f"({100 * done / total:.0f}%), {_duration(elapsed)} elapsed, job ETA {_duration(eta)}, "
                f"sweep ETA ~{_duration(sweep_eta)}"
            )

        return report


def _model_name(member: Member) -> str:
    return f"{member.arm}_{member.system}_n{member.volume}_seed{member.seed}".replace(".", "p")


def _ranges(values: list[int]) -> str:
    if values and values == list(range(values[0], values[-1] + 1)) and len(values) > 2:
        return f"{values[0]}-{values[-1]}"
    return ",".join(str(v) for v in values)


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def write_json(path: Path, value) -> None:
    atomic_write_json(path, value)
