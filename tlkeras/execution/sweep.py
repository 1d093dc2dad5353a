"""Running a sweep: stack jobs on worker processes, each member recorded as it finishes.

`SweepRunner` takes a config and a run directory and drives every stack job of `plan_jobs`:
- jobs run on `workers` processes, one per core (see `LocalBackend` for why not threads), or as
  Ray tasks on a cluster (`ray_backend.py`); the longest ready job (`StackJob.work`) goes first,
  and fine-tuning waits for the pretrained models it starts from;
- after a job, each member is exported as a plain MLP, saved (atomically), scored on the
  evaluation points, written to TensorBoard, and only then recorded in `cells/` (atomically):
  a record means everything of that member is on disk;
- resuming skips every recorded member, and a job with some members recorded trains only the
  others (members are independent, so the numbers do not change);
- pretrained models can be reused from a cache keyed by everything that determines them.
"""

from __future__ import annotations

import concurrent.futures as futures
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from tlkeras.core.config import StudyConfig
from tlkeras.core.errors import WorkerDied
from tlkeras.core.members import StackJob
from tlkeras.core.options import BACKENDS, SweepOptions, duration, print_report
from tlkeras.core.vocabulary import PRETRAIN
from tlkeras.execution import worker
from tlkeras.execution.jobs import job_label
from tlkeras.execution.planning import needs_pretrained, plan_jobs, pretrained_member
from tlkeras.execution.pretrain_cache import ENGINE_VERSION, cache_entry_complete, pretrain_cache_folder
from tlkeras.runtime import interrupts
from tlkeras.runtime.startup import configure_threads
from tlkeras.storage.persistence import Staging
from tlkeras.storage.rundir import RunDir

__all__ = ["ENGINE_VERSION", "SweepOptions", "SweepRunner", "WorkerDied", "configure_threads", "job_label",
           "print_report"]


class SweepRunner:
    """Plans the jobs of a config, skips what is recorded, and runs the rest on a backend: local
    worker processes (`LocalBackend`) or Ray tasks (`ray_backend.RayBackend`)."""

    def __init__(self, config: StudyConfig, run_dir: RunDir, options: SweepOptions,
                 processes: worker.WorkerProcesses | None = None, shared: int = 0):
        self.config = config
        self.run_dir = run_dir
        self.options = options
        self.processes = processes  # local workers the caller started (None: started here if needed)
        self.shared = shared  # members recorded by linking them from another sweep (not a resume)
        self.jobs = plan_jobs(config, options.max_members)

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
        if todo_members < total_members - self.shared:
            report(f"resuming: {total_members - todo_members - self.shared} finished members kept, "
                   f"{todo_members} to train")
        if self.options.cache_dir is not None and Path(self.options.cache_dir).is_dir():
            Staging(self.options.cache_dir).sweep()  # leftovers of killed runs; live writers' stay
        if not pending:  # a resume that only reports: no worker process
            return self.records()
        backend = open_backend(self.config, self.run_dir, self.options, self.processes)
        workers = backend.workers
        pending = self.balance(pending, workers)
        planned = len(pending)
        started = time.perf_counter()
        work_left = sum(job.work for job in pending)
        busy_seconds, trained_work = 0.0, 0.0
        running: dict = {}
        try:
            while pending or running:
                interrupts.check()
                for job in sorted(self._ready(pending), key=lambda j: -j.work):
                    if len(running) >= workers:
                        break
                    pending.remove(job)
                    running[backend.submit(job)] = job
                if not running:
                    missing = ", ".join(j.name for j in pending)
                    raise RuntimeError(f"jobs waiting on models that were never trained: {missing}")
                for handle in backend.wait(running, timeout=1.0):
                    job = running.pop(handle)
                    seconds, steps = backend.collect(handle, job)  # a worker's error surfaces here
                    # (steps: those trained; 0 for pretraining taken from the cache)
                    busy_seconds += seconds
                    trained_work += job.work * steps / job.steps if job.steps else 0.0
                    work_left -= job.work
                    elapsed = time.perf_counter() - started
                    # Work left (StackJob.work), at the measured seconds per unit, spread over the workers.
                    left = busy_seconds / trained_work * work_left / workers if trained_work else 0.0
                    estimate = f"ETA ~{duration(left)}" if trained_work else "ETA after the first trained job"
                    report(f"sweep: {planned - len(pending) - len(running)} of {planned} "
                           f"jobs done, {duration(elapsed)} elapsed, {estimate}")
        except BaseException:
            backend.stop()  # Ctrl-C or an error: stop the workers now, not after their jobs
            raise
        finally:
            backend.close()
        wall = time.perf_counter() - started
        # How well the jobs packed: the workers' training seconds (`training.train_job`: the
        # stack's fit with its evaluations, and a strategy's own fits) over workers x wall time.
        # The rest: workers loading and saving models, writing TensorBoard, starting, or waiting
        # for a job they could run.
        utilisation = busy_seconds / (workers * wall) if wall > 0 else 0.0
        report(f"sweep finished in {duration(wall)}: {workers} workers training {utilisation:.0%} of the time")
        return self.records()

    def records(self) -> list[dict]:
        """Every member's record, in plan order."""
        return [self.run_dir.read_record(m) for job in self.jobs for m in job.members]

    def balance(self, jobs: list[StackJob], workers: int | None = None) -> list[StackJob]:
        """Split the long jobs into one stack per worker when they are too few to keep every
        worker busy (for example a warm run, whose pretraining comes from the cache).

        Splitting does not change a number (members are independent, bit for bit), but a stack
        of 3 and one of 2 cost more in all than one of 5, so jobs stay whole when enough long
        jobs run side by side anyway.
        """
        workers = workers or self.options.workers
        long_jobs = [j for j in jobs if j.work >= LONG_JOB_WORK and not self._cached(j)]
        if len(long_jobs) >= workers:
            # A pretraining longer than the other work could be split too (the critical path
            # ends sooner), but a stack's step has a fixed part worth about two members: exp1
            # cold with its pretraining split 3 + 2 took 24 s more CPU and ended at the same
            # time (3m49s vs 3m50s, 2026-12-03): the oracle became the critical path.
            return jobs
        return [chunk for job in jobs for chunk in
                (split_for_workers(job, workers) if job in long_jobs else [job])]

    def _cached(self, job: StackJob) -> bool:
        if job.arm != PRETRAIN or self.options.cache_dir is None:
            return False
        return all(cache_entry_complete(pretrain_cache_folder(self.config, self.options, m)) for m in job.members)

    def _ready(self, pending: list[StackJob]) -> list[StackJob]:
        ready = []
        for job in pending:
            if any(needs_pretrained(m) for m in job.members):
                needed = {pretrained_member(self.config, m) for m in job.members}
                if any(self.run_dir.read_record(p) is None for p in needed):
                    continue
            ready.append(job)
        return ready


LONG_JOB_WORK = 200_000  # StackJob.work: about 40 s of one core


def open_backend(config: StudyConfig, run_dir: RunDir, options: SweepOptions,
                 processes: worker.WorkerProcesses | None = None):
    """Where the jobs run: local worker processes (`processes` if the caller started them), or
    Ray tasks (`options.backend`)."""
    if options.backend == "ray":
        from tlkeras.execution.ray_backend import RayBackend

        return RayBackend(config, run_dir, options)
    if options.backend != "local":
        raise ValueError(f"backend={options.backend!r}: allowed are {', '.join(BACKENDS)}")
    return LocalBackend(config, run_dir, options, processes)


class LocalBackend:
    """Stack jobs on worker processes of this machine, which share the run directory with the
    driver: each worker reads its inputs and writes its members itself.

    Worker processes, not threads: measured on 2 cores, two threads in one TensorFlow process
    trained no faster than one, while two processes ran at full speed each. With workers=1 the
    jobs run in this process. Processes started by the caller (`processes`) stay the caller's
    to close; those started here end with the sweep.
    """

    def __init__(self, config: StudyConfig, run_dir: RunDir, options: SweepOptions,
                 processes: worker.WorkerProcesses | None = None):
        self.config, self.run_dir, self.options = config, run_dir.path, options
        self.workers = max(1, options.workers)
        self.owned = processes is None and options.workers > 1
        self.processes = worker.WorkerProcesses(options.workers) if self.owned else processes
        if self.processes is None:
            worker.start(driver_pid=None)
        else:
            self.workers = self.processes.count

    def submit(self, job: StackJob) -> futures.Future:
        if self.processes is None:
            future: futures.Future = futures.Future()
            future.set_result(worker.run(job, self.config, self.run_dir, self.options))
            return future
        return self.processes.submit(job, self.config, self.run_dir, self.options)

    def wait(self, handles, timeout: float) -> set:
        done, _ = futures.wait(handles, timeout=timeout, return_when=futures.FIRST_COMPLETED)
        return done

    def collect(self, handle: futures.Future, job: StackJob) -> tuple[float, int]:
        try:
            return handle.result()
        except BrokenProcessPool:
            interrupts.check()  # killed because of a Ctrl-C: say that, not this
            raise WorkerDied(f"a worker process ended abruptly while training [{job_label(job)}] "
                             f"({_exit_codes(self.processes)})") from None

    def stop(self) -> None:
        if self.processes is not None:
            self.processes.kill()

    def close(self) -> None:
        if self.owned:
            self.processes.close()


def split_for_workers(job: StackJob, workers: int) -> list[StackJob]:
    """A job as one stack per worker, so that no core idles while it trains.

    The time of a step grows nearly linearly with the members of a stack (measured: 0.05 ms for
    one member, 0.32 ms for 8, 1.2 ms for 32), so two half stacks on two cores finish in about
    half the time of one whole stack on one core.
    """
    count = min(workers, len(job.members))
    if count <= 1:
        return [job]
    size = -(-len(job.members) // count)
    return [job.subset(job.members[i : i + size]) for i in range(0, len(job.members), size)]


def _exit_codes(processes: worker.WorkerProcesses) -> str:
    """How the dead worker ended (the pool itself then ends the others with SIGTERM: left out).

    The pool's manager thread reaps the processes; once it has ended, every exit code is known."""
    dead = processes.processes()
    manager = getattr(processes.pool, "_executor_manager_thread", None)
    if manager is not None:
        manager.join(timeout=30)
    codes = [p.exitcode for p in dead if p.exitcode]
    codes = [c for c in codes if c != -15] or codes
    signals = [f"killed by signal {-c}" if c < 0 else f"exit status {c}" for c in codes]
    return ", ".join(signals) or "killed, or out of memory?"
