"""Running a sweep: stack jobs on worker processes, each member recorded as it finishes.

`SweepRunner` takes a config and a run directory and drives every stack job of `plan_jobs`:
- jobs run on `workers` processes, one per core (see `SweepRunner` for why not threads); the
  longest ready job goes first, and fine-tuning waits for the pretrained models it starts from;
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
import multiprocessing
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from tlkeras import data, evaluation, models, tracking
from tlkeras.config import StudyConfig
from tlkeras.persistence import atomic_save_npy, load_model, save_model
from tlkeras.rundir import RunDir
from tlkeras.systems import SystemSpec, make_system
from tlkeras.training import (
    PRETRAIN, TRANSFER_STRATEGIES, Member, StackJob, initial_model, plan_jobs,
    pretrained_member, stack_predictions, train_job,
)

ENGINE_VERSION = 1  # bump when a change alters trained weights: it invalidates the cache


@dataclass
class SweepOptions:
    """How to run (not what to compute): nothing here changes a result."""

    workers: int = 2
    max_members: int = 64
    cache_dir: Path | None = None
    report_every_seconds: float = 15.0
    report: Callable[[str], None] | None = None  # a picklable function; None: print_report

    def __post_init__(self):
        if self.report is None:
            self.report = print_report


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
        report(f"done   [{label}] in {_duration(trained.log.seconds)}")
        return trained.log.seconds, job.steps

    def _starting_model(self, member: Member) -> keras.Model:
        if member.arm != "transfer":
            return initial_model(self.config, member)
        # The study's protocol: the pretrained model is saved, then reloaded from disk.
        path = self.run_dir.model_path(pretrained_member(self.config, member))
        pretrained = load_model(path, expected=self.config.network)
        return TRANSFER_STRATEGIES[self.config.transfer_strategy].starting_model(pretrained)

    def _finish(self, job: StackJob, trained) -> None:
        predictions = stack_predictions(trained.stack, self.evaluation.x)
        seconds_per_member = trained.log.seconds / len(job.members)
        for index, member in enumerate(job.members):
            model = models.export_member(trained.stack, self.config.network, index, name=_model_name(member))
            model_path = save_model(model, self.run_dir.model_path(member))
            losses = trained.log.losses[:, index]
            atomic_save_npy(self.run_dir.loss_path(member), losses)
            if member.arm == PRETRAIN and self.options.cache_dir is not None:
                self._store_in_cache(member, model_path, losses)
            self._record(member, predictions[index], losses, seconds_per_member, model_path, cached=False)

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
        self.run_dir.write_record(member, record)  # last: a record means all of the above exists

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
            model = load_model(folder / "model.keras", expected=self.config.network)
            model_path = save_model(model, self.run_dir.model_path(member))
            losses = np.load(folder / "losses.npy")
            atomic_save_npy(self.run_dir.loss_path(member), losses)
            predictions = np.asarray(model(self.evaluation.x, training=False))
            self._record(member, predictions, losses, 0.0, model_path, cached=True)
            self.options.report(f"reused pretrained model of seed {member.seed} from {folder}")
        return job.subset(todo)

    def _store_in_cache(self, member: Member, model_path: Path, losses: np.ndarray) -> None:
        folder = self._cache_folder(member)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_save_npy(folder / "losses.npy", losses)
        temporary = folder / f".model.{os.getpid()}.tmp.keras"
        shutil.copyfile(model_path, temporary)
        temporary.replace(folder / "model.keras")

    # Progress ---------------------------------------------------------------------------------
    def _progress(self, job: StackJob, label: str):
        last = [0.0]

        def report(done: int, total: int, elapsed: float) -> None:
            if elapsed - last[0] < self.options.report_every_seconds and done < total:
                return
            last[0] = elapsed
            eta = elapsed / max(1, done) * (total - done)
            self.options.report(
                f"       [{label}] epoch {job.first_epoch + done}/{job.first_epoch + total} "
                f"({100 * done / total:.0f}%), {_duration(elapsed)} elapsed, job ETA {_duration(eta)}"
            )

        return report


# Worker processes -----------------------------------------------------------------------------
_EXECUTOR: JobExecutor | None = None


def _worker_start(config: StudyConfig, run_dir: Path, options: SweepOptions) -> None:
    """Each worker process: die with the parent, one intra-op thread, one executor."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tf.get_logger().setLevel("ERROR")
    configure_threads(intra_op=1, inter_op=1)
    global _EXECUTOR
    _EXECUTOR = JobExecutor(config, RunDir(run_dir), options)


def _worker_run(job: StackJob) -> tuple[float, int]:
    return _EXECUTOR.run(job)


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies, so a killed sweep leaves no orphans."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def configure_threads(intra_op: int = 1, inter_op: int = 1) -> None:
    """Thread settings for tiny ops: one intra-op thread per stack was measured faster than two;
    the cores are used by running one worker process per core instead."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:
        pass  # TensorFlow already started: the settings are fixed for this process


class SweepRunner:
    """Plans the jobs of a config, skips what is recorded, and runs the rest on worker processes.

    Worker processes, not threads: measured on 2 cores, two threads in one TensorFlow process
    trained no faster than one, while two processes ran at full speed each. With workers=1 the
    jobs run in this process.
    """

    def __init__(self, config: StudyConfig, run_dir: RunDir, options: SweepOptions):
        self.config = config
        self.run_dir = run_dir
        self.options = options
        self.jobs = [
            chunk
            for job in plan_jobs(config, options.max_members)
            for chunk in split_for_workers(job, options.workers)
        ]

    def pending_jobs(self) -> list[StackJob]:
        """Every job with at least one member not recorded yet, reduced to those members."""
        pending = []
        for job in self.jobs:
            todo = [m for m in job.members if self.run_dir.read_record(m) is None]
            if todo:
                pending.append(job.subset(todo))
        return pending

    def run(self) -> list[dict]:
        """Train everything not yet recorded; return every member's record."""
        report = self.options.report
        pending = self.pending_jobs()
        total_members = sum(len(j.members) for j in self.jobs)
        todo_members = sum(len(j.members) for j in pending)
        if todo_members < total_members:
            report(f"resuming: {total_members - todo_members} finished members kept, {todo_members} to train")
        started = time.perf_counter()
        steps_left = sum(job.steps for job in pending)
        busy_seconds, trained_steps = 0.0, 0
        if self.options.workers <= 1:
            _worker_start_inline(self.config, self.run_dir, self.options)
            pool = None
        else:
            pool = futures.ProcessPoolExecutor(
                max_workers=self.options.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_start, initargs=(self.config, self.run_dir.path, self.options),
            )
        running: dict[futures.Future, StackJob] = {}
        try:
            while pending or running:
                for job in sorted(self._ready(pending), key=lambda j: -j.steps):
                    if len(running) >= max(1, self.options.workers):
                        break
                    pending.remove(job)
                    if pool is None:
                        future: futures.Future = futures.Future()
                        future.set_result(_worker_run(job))
                    else:
                        future = pool.submit(_worker_run, job)
                    running[future] = job
                if not running:
                    missing = ", ".join(j.name for j in pending)
                    raise RuntimeError(f"jobs waiting on models that were never trained: {missing}")
                done, _ = futures.wait(running, timeout=1.0, return_when=futures.FIRST_COMPLETED)
                for future in done:
                    job = running.pop(future)
                    seconds, steps = future.result()  # a worker's error surfaces here
                    busy_seconds, trained_steps = busy_seconds + seconds, trained_steps + steps
                    steps_left -= job.steps
                    elapsed = time.perf_counter() - started
                    # Sequential steps left, at the measured time per step, spread over the workers.
                    left = busy_seconds / max(1, trained_steps) * steps_left / max(1, self.options.workers)
                    report(f"sweep: {len(self.jobs) - len(pending) - len(running)} of {len(self.jobs)} "
                           f"jobs done, {_duration(elapsed)} elapsed, ETA ~{_duration(left)}")
        except BaseException:
            if pool is not None:  # Ctrl-C or an error: stop the workers now, not after their jobs
                _stop_workers(pool)
            raise
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        report(f"sweep finished in {_duration(time.perf_counter() - started)}")
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


LONG_JOB_STEPS = 200_000


def split_for_workers(job: StackJob, workers: int) -> list[StackJob]:
    """A long job as one stack per worker, so that no core idles while it trains.

    The time of a step grows nearly linearly with the members of a stack (measured: 0.05 ms for
    one member, 0.32 ms for 8, 1.2 ms for 32), so two half stacks on two cores finish in about
    half the time of one whole stack on one core. Short jobs stay whole (each stack compiles).
    """
    count = min(workers, len(job.members))
    if count <= 1 or job.steps < LONG_JOB_STEPS:
        return [job]
    size = -(-len(job.members) // count)
    return [job.subset(job.members[i : i + size]) for i in range(0, len(job.members), size)]


def _stop_workers(pool: futures.ProcessPoolExecutor) -> None:
    """Kill the pool's processes (the executor has no public call that stops running work)."""
    for process in list(getattr(pool, "_processes", {}).values()):
        process.kill()


def _worker_start_inline(config: StudyConfig, run_dir: RunDir, options: SweepOptions) -> None:
    global _EXECUTOR
    _EXECUTOR = JobExecutor(config, run_dir, options)


def job_label(job: StackJob) -> str:
    seeds = sorted({m.seed for m in job.members})
    systems = sorted({m.system for m in job.members})
    return f"{job.arm} | n={job.size} | {'+'.join(systems)} | seeds {_ranges(seeds)} | {len(job.members)} members"


def print_report(message: str) -> None:
    """The default reporter: a timestamped line on standard output."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


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
