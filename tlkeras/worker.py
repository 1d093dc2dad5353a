"""The worker-process side of a sweep: start-up, and running one stack job.

Free of TensorFlow at import: a spawned worker unpickles `start` before anything else, so its
first TensorFlow import happens inside `start`, through `startup.import_tensorflow` (quiet).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tlkeras.config import StudyConfig
from tlkeras.options import SweepOptions

_EXECUTOR = None
_RUN = None


def start(config: StudyConfig, run_dir: Path, options: SweepOptions, driver_pid: int | None) -> None:
    """Set up this process to run jobs: die with the driver, ignore Ctrl-C, one intra-op thread.

    `driver_pid` is None when the jobs run inside the driver itself (one worker).
    """
    if driver_pid is not None:
        _die_with_parent(driver_pid)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver handles Ctrl-C and stops us
    from tlkeras.startup import import_tensorflow

    tf = import_tensorflow()
    tf.get_logger().setLevel("ERROR")
    from tlkeras.jobs import JobExecutor
    from tlkeras.rundir import RunDir
    from tlkeras.sweep import configure_threads

    if driver_pid is not None:
        configure_threads(intra_op=1, inter_op=1)
    global _EXECUTOR, _RUN
    _EXECUTOR = JobExecutor(config, options)
    _RUN = (config, RunDir(run_dir), options)


def run(job) -> tuple[float, int]:
    """Train one stack job (see `jobs.JobExecutor.run`) and write its members into the run
    directory, which this process shares with the driver; returns (training seconds, steps)."""
    from tlkeras.handoff import gather_inputs, write_output

    config, run_dir, options = _RUN
    output = _EXECUTOR.run(job, gather_inputs(config, run_dir, options, job))
    write_output(config, run_dir, options, output)
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
