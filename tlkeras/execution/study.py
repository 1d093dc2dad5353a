"""One call that runs a whole study into a run directory: the drivers' only library entry."""

from __future__ import annotations

import time
from pathlib import Path

from tlkeras.core.config import StudyConfig
from tlkeras.core.options import SweepOptions
from tlkeras.execution.sweep import SweepRunner
from tlkeras.execution.worker import WorkerProcesses
from tlkeras.results import tracking
from tlkeras.results.report import write_report
from tlkeras.runtime import faults, interrupts
from tlkeras.runtime.startup import configure_threads
from tlkeras.storage import environment
from tlkeras.storage.rundir import RunDir
from tlkeras.strategies.registry import chosen_settings

__all__ = ["configure_threads", "run_study"]


def run_study(
    config: StudyConfig,
    run_dir: Path,
    options: SweepOptions | None = None,
    resume: bool = False,
    processes: WorkerProcesses | None = None,
) -> dict:
    """Train, evaluate and report every cell of `config` into `run_dir` (created by the caller).

    With `resume`, the directory must hold a run of the same config; finished members are kept.
    The run directory is locked for this process while it runs (`RunDir.lock`). Returns the
    content of results.json. `processes`: local workers started earlier by the caller (who closes
    them); by default the sweep starts and ends its own.
    """
    config.validate()
    options = options or SweepOptions()
    directory = RunDir(run_dir)
    with directory.lock():
        return _run_locked(config, directory, options, resume, processes)


def open_run(config: StudyConfig, directory: RunDir, options: SweepOptions, resume: bool) -> list[dict]:
    """Record the config (or check it against the recorded one, resuming) and this session's
    machine; say so if an earlier session ran on another CPU kind. Every session's machine."""
    if resume:
        directory.check_resumable(config)
    else:
        directory.write_config(config)
    sessions = environment.record_session(directory.path, directory.staging)
    if not all(environment.same_numerics(sessions[0], later) for later in sessions[1:]):
        options.report("note: this run was started on another CPU kind or software stack "
                       f"({sessions[0]['cpu']}, {' '.join(sessions[0]['cpu_flags'])}); members trained "
                       "now match those trained there statistically, not bit for bit (environment.json)")
    return sessions


def _run_locked(config: StudyConfig, directory: RunDir, options: SweepOptions, resume: bool,
                processes: WorkerProcesses | None) -> dict:
    sessions = open_run(config, directory, options, resume)
    faults.point("driver.planning")
    interrupts.check()
    if not tracking.has_event_files(directory.tensorboard):
        systems = [*config.system_names(), config.simple_name]  # the pretrained members' too
        directory.staging.move_files_into(directory.tensorboard, lambda folder: tracking.write_hparams_config(
            folder, systems, [*config.volumes, config.oracle_size, config.pretrain_size],
            arms=[*config.trained_arms(), "pretrain"], chosen=chosen_settings(config)))
    started = time.perf_counter()
    records = SweepRunner(config, directory, options, processes).run()
    faults.point("sweep.finished")
    interrupts.check()
    by_arm: dict[str, float] = {}
    for record in records:
        by_arm[record["arm"]] = by_arm.get(record["arm"], 0.0) + record["train_seconds"]
    timing = {"wall_seconds_this_session": time.perf_counter() - started}
    timing.update({f"train_seconds_{arm}": seconds for arm, seconds in sorted(by_arm.items())})
    results = write_report(directory, config, records, timing, sessions)
    faults.point("run.finished")
    options.report(f"results: {directory.path / 'results.md'}")
    return results
