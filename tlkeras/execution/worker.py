"""The worker-process side of a sweep: start-up, and running one stack job.

Free of TensorFlow at import: a spawned worker unpickles `start` before anything else, so its
first TensorFlow import happens inside `start`, through `startup.import_tensorflow` (quiet).
`WorkerProcesses` lets a driver start its workers before it imports TensorFlow itself, so that
the three imports (the driver's and two workers') overlap instead of following each other.
"""

from __future__ import annotations

import concurrent.futures as futures
import contextlib
import multiprocessing
import os
import signal
from pathlib import Path

from tlkeras.core.config import StudyConfig
from tlkeras.core.options import SweepOptions

_EXECUTOR = None  # (config, options, JobExecutor) of the last job: the next job of the sweep reuses it


class WorkerProcesses:
    """`count` worker processes of this machine, started now: each imports TensorFlow at once,
    then waits for stack jobs (`submit`). Whoever made them ends them: `close` when the work is
    done, `kill` on a failure or Ctrl-C (no job is left half-written: a job's files are staged)."""

    def __init__(self, count: int):
        self.count = count
        self.pool = futures.ProcessPoolExecutor(
            max_workers=count, mp_context=multiprocessing.get_context("spawn"),
            initializer=start, initargs=(os.getpid(),))
        for _ in range(count):  # the pool spawns a process per submission while none is idle
            self.pool.submit(os.getpid)

    def submit(self, job, config: StudyConfig, run_dir: Path, options: SweepOptions) -> futures.Future:
        return self.pool.submit(run, job, config, run_dir, options)

    def processes(self) -> list:
        return list((getattr(self.pool, "_processes", None) or {}).values())

    def kill(self) -> None:
        """Stop every process now (the executor has no public call that stops running work)."""
        for process in self.processes():
            process.kill()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "WorkerProcesses":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self.kill() if kind is not None else self.close()


def start_local(workers: contextlib.ExitStack, backend: str, count: int) -> WorkerProcesses | None:
    """The local worker processes of a sweep on `backend`, started now and ended with `workers`
    (killed if it exits with an exception); None for Ray, or when the jobs run in the caller."""
    if backend != "local" or count <= 1:
        return None
    return workers.enter_context(WorkerProcesses(count))


def start(driver_pid: int | None) -> None:
    """Set up this process to run jobs: die with the driver, ignore Ctrl-C, one intra-op thread.

    `driver_pid` is None when the jobs run inside the driver itself (one worker).
    """
    if driver_pid is not None:
        _die_with_parent(driver_pid)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver handles Ctrl-C and stops us
    from tlkeras.runtime.startup import import_tensorflow

    tf = import_tensorflow()
    tf.get_logger().setLevel("ERROR")
    if driver_pid is not None:
        from tlkeras.runtime.startup import configure_threads

        configure_threads(intra_op=1, inter_op=1)


def run(job, config: StudyConfig, run_dir: Path, options: SweepOptions) -> tuple[float, int]:
    """Train one stack job (see `jobs.JobExecutor.run`) and write its members into the run
    directory, which this process shares with the driver; returns (training seconds, steps)."""
    from tlkeras.execution.handoff import gather_inputs, write_output
    from tlkeras.execution.jobs import JobExecutor
    from tlkeras.storage.rundir import RunDir

    global _EXECUTOR
    if _EXECUTOR is None or _EXECUTOR[:2] != (config, options):
        _EXECUTOR = (config, options, JobExecutor(config, options))
    directory = RunDir(run_dir)
    output = _EXECUTOR[2].run(job, gather_inputs(config, directory, options, job))
    write_output(config, directory, options, output)
    return output.seconds, output.steps


def _die_with_parent(driver_pid: int) -> None:
    """Linux: SIGKILL this process when the driver dies, so a killed sweep leaves no orphans.

    The request only covers a parent that dies after it is made: if the driver died while this
    process was starting, the parent is already another process, and we end here.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != driver_pid:
        os._exit(1)
