"""What an experiment driver is made of: its flags, its config, and its run.

A driver (`experiments/exp1.py`) defines the protocol flags here (`define_flags`), adds its own
(which real systems), and calls `run` from `main`:

    define_flags(logs_root, volumes_default=[...])
    ...
    def main(argv):
        run("exp1", argv, systems, volumes, driver_flags=["hill_n", "system"])

    app.run(main, flags_parser=parse_flags)

`run` validates, claims (or reopens) the run directory, runs the study
(`execution.study.run_study`) and says where everything is, with the exit statuses of
`lifecycle`.
"""

from __future__ import annotations

from pathlib import Path

from absl import flags

from tlkeras.cli import flags as shared_flags
from tlkeras.cli.lifecycle import (
    command_line,
    fail,
    parse,
    run_to_end,
    say,
    stopped_by,
    stops_cleanly,
    workers_then_tensorflow,
)
from tlkeras.core import config as study_config
from tlkeras.core import user_config
from tlkeras.core.errors import ConfigError
from tlkeras.core.vocabulary import FINE_TUNE_ALL
from tlkeras.runtime import faults, interrupts
from tlkeras.storage import folders, locks
from tlkeras.storage.folders import RUN_LOCK

FLAGS = flags.FLAGS
_LOGS = {}  # the driver's default --logdir
_PRESETS: dict[str, dict] = {}  # the driver's own flags' values per preset


def define_flags(logdir_default: Path, volumes_default: list[str] | None,
                 strategies_default: tuple[str, ...] = (FINE_TUNE_ALL,), presets: dict[str, dict] | None = None,
                 interval_check: bool = True) -> None:
    """The protocol flags common to the experiments, on absl's global FLAGS; `logdir_default`:
    where runs go without --logdir; `presets`: values of the driver's own flags per --preset;
    `interval_check`: the driver has --interval_replicates (not Experiment 4's rounds)."""
    _LOGS["default"] = Path(logdir_default)
    _PRESETS.update(presets or {})
    shared_flags.define_protocol_flags(FLAGS, volumes_default, strategies_default)
    if interval_check:
        flags.DEFINE_integer("interval_replicates", 0, "Also measure the calibrated intervals tlkeras fit writes: per "
                             "real system and volume, this many data sets, each fitted as tlkeras fit does (5 folds, "
                             "this run's protocol; its own pretraining, cached) and scored against the truth "
                             "(results.md's 'Calibrated intervals' section; docs/intervals.md). 0: not measured.",
                             lower_bound=0, upper_bound=1000, flag_values=FLAGS)


def parse_flags(argv: list[str]) -> list[str]:
    """`app.run`'s flags_parser: one-line errors, and --preset applied before validation."""
    rest = parse(FLAGS, argv, presets=lambda values: {**shared_flags.PRESETS[values.preset],
                                                      **_PRESETS.get(values.preset, {})})
    problem = shared_flags.pretrain_epochs_problem(FLAGS)
    if problem:
        fail(problem)
    return rest


def config_from_flags(systems: list[str], volumes: list[int], design: dict | None = None) -> study_config.StudyConfig:
    """The StudyConfig these flags describe, validated (one-line error and exit 2 if not);
    `design`: Experiment 4's plan fields."""
    try:
        config = study_config.StudyConfig(**shared_flags.protocol_settings(FLAGS, systems, volumes), **(design or {}))
        # A user's function is imported and probed here, once, before any work; its units may be
        # anything, so the networks normalise (the built-in systems' runs keep plain MLPs).
        config = user_config.resolve_user_systems(config, say)
        if config.uses_references:
            config = user_config.with_normalisation(config.validate())
        return config.validate()
    except ConfigError as error:
        message = str(error)
        field = message.split("=", 1)[0]
        fail(f"--{message}" if field in FLAGS else message)


def real_systems(hill_n: list[str], hill_n_given: bool, phosphorylation: bool | None, further: list[str]) -> list[str]:
    """The real systems of --hill_n, --phosphorylation and --system: hill<n> for every n (only
    where --hill_n is given, if --system is), the phosphorylation cycle unless left out (by
    default: unless --hill_n or --system is given), then the further systems."""
    given = hill_n_given or bool(further)
    systems = [f"hill{float(n):g}" for n in hill_n] if hill_n_given or not given else []
    if phosphorylation if phosphorylation is not None else not given:
        systems.append("phosphorylation")
    return systems + list(further)


def recorded_names(driver_flags: list[str]) -> list[str]:
    """Every flag that determines a run's results: the shared ones and the driver's own."""
    own = [name for name in ("interval_replicates",) if name in FLAGS]
    return [f.name for f in FLAGS.get_flags_for_module(shared_flags.__name__)] + own + list(driver_flags)


def run(experiment: str, argv: list[str], systems: list[str], volumes: list[int], driver_flags: list[str],
        design: dict | None = None) -> None:
    """Validate, claim (or reopen) the run directory, run the study, say where everything is.

    Exit status (`lifecycle`): 0 done, 2 bad input before any work, 130 interrupted (143 by
    SIGTERM), 1 stopped mid-run by a failure outside the run; in the last two cases finished
    members are kept and the resume command is printed. `design`: the plan fields of Experiment 4
    (`execution.design_study`: rounds of sweeps instead of one).
    """
    interrupts.install()  # from here on, Ctrl-C or SIGTERM stops the run at its next safe point
    with stops_cleanly("; nothing was written"):
        _run(experiment, argv, systems, volumes, driver_flags, design)


def _run(experiment: str, argv: list[str], systems: list[str], volumes: list[int], driver_flags: list[str],
         design: dict | None = None) -> None:
    if len(argv) > 1:
        fail(f"unexpected arguments {argv[1:]}; every setting is a --flag (see --helpfull)")
    config = config_from_flags(systems, volumes, design)
    logs = Path(FLAGS.logdir) if FLAGS.logdir else _LOGS["default"]
    resume_dir = _resume_target(logs / experiment)
    cache_dir = Path(FLAGS.cache_dir or logs / "cache") if FLAGS.cache else None
    try:
        if resume_dir is None:
            folders.check_writable(logs, "--logdir", folders.estimated_run_bytes(config))
            folders.check_writable(logs / experiment, "--logdir")
        else:
            folders.check_writable(resume_dir, "--run_dir" if FLAGS.run_dir else "--resume", 1_000_000)
        if cache_dir is not None:
            folders.check_writable(cache_dir, "--cache_dir")
    except folders.FolderError as error:
        fail(str(error))
    error = shared_flags.connect_backend(FLAGS.backend, FLAGS.ray_address, FLAGS.workers)
    if error:
        fail(error)
    faults.point("driver.startup")
    # A resume starts its workers once its run directory is found resumable.
    with workers_then_tensorflow(FLAGS.backend, FLAGS.workers, start=resume_dir is None) as workers:
        _run_started(experiment, config, logs, resume_dir, cache_dir, driver_flags, workers)


def _run_started(experiment: str, config, logs: Path, resume_dir: Path | None, cache_dir: Path | None,
                 driver_flags: list[str], workers) -> None:
    from tlkeras.core.errors import ModelFileError
    from tlkeras.core.options import SweepOptions, print_report
    from tlkeras.execution.study import run_study
    from tlkeras.execution.sweep import SweepRunner
    from tlkeras.runtime.startup import configure_threads
    from tlkeras.storage.rundir import RunDir, RunDirError, create_run_dir

    if resume_dir is not None:
        try:
            RunDir(resume_dir).check_resumable(config)
        except RunDirError as error:
            fail(str(error))
        if config.design_methods:  # Experiment 4: its later rounds are planned as it goes
            if not (resume_dir / "results.json").exists():
                workers.start()
        elif SweepRunner(config, RunDir(resume_dir), SweepOptions(max_members=FLAGS.max_members)).pending_jobs():
            workers.start()  # a resume with nothing left to train only reports: no worker processes
    if interrupts.requested():
        say(f"{stopped_by()} before the run started; nothing was written")
        raise SystemExit(interrupts.exit_status())
    configure_threads()
    run_dir = resume_dir or create_run_dir(logs, experiment)
    # flags.txt holds what determines the results; where they ran is said again on resume.
    where = [FLAGS[name].serialize() for name in shared_flags.WHERE_TO_RUN if FLAGS[name].value != FLAGS[name].default]
    resume_line = command_line("python", f"experiments/{experiment}.py", f"--flagfile={run_dir / 'flags.txt'}",
                               f"--run_dir={run_dir}", *where)
    options = SweepOptions(workers=FLAGS.workers, max_members=FLAGS.max_members, cache_dir=cache_dir,
                           report=print_report, backend=FLAGS.backend, ray_address=FLAGS.ray_address)
    say(f"run directory: {run_dir}")

    def work() -> None:
        if resume_dir is None:
            RunDir(run_dir).staging.write_text(run_dir / "flags.txt",
                                               shared_flags.recorded_flags(FLAGS, recorded_names(driver_flags)))
        if config.design_methods:
            from tlkeras.execution.design_study import run_design_study

            run_design_study(config, run_dir, options, resume=resume_dir is not None, processes=workers.processes)
        else:
            run_study(config, run_dir, options, resume=resume_dir is not None, processes=workers.processes)
            if "interval_replicates" in FLAGS and FLAGS.interval_replicates:
                _check_intervals(config, run_dir, options, workers.processes, FLAGS.interval_replicates)

    run_to_end(work, kept=f"; finished members are kept. Resume with:\n  {resume_line}",
               refused=(ModelFileError, RunDirError), refused_note=f" (run directory: {run_dir})")
    say(f"done. Browse: {command_line('tensorboard', '--logdir', run_dir / 'tensorboard')}")


def _check_intervals(config, run_dir: Path, options, processes, replicates: int) -> None:
    """--interval_replicates: the calibrated intervals of a fit on one data set per replicate,
    added to results.md (`fit.interval_check.study_checks`)."""
    from tlkeras.fit.interval_check import study_checks, with_section
    from tlkeras.storage.rundir import RunDir

    cells = len(config.system_names()) * len(config.volumes) * replicates
    say(f"intervals: {cells} data sets to fit and score ({replicates} per real system and volume)")
    section = study_checks(config, run_dir, options, processes, replicates, report=say)
    results = run_dir / "results.md"
    RunDir(run_dir).staging.write_text(results, with_section(results.read_text(), section))
    say(f"intervals: results.md's '{section[0].removeprefix('## ')}' section")


def _resume_target(experiment_logs: Path) -> Path | None:
    if FLAGS.run_dir:
        path = Path(FLAGS.run_dir)
        if not (path / "config.json").exists():
            fail(f"--run_dir={path} is not a run directory (no config.json); give a folder under {experiment_logs}")
        _refuse_if_running(path, f"--run_dir={path}")
        return path
    if not FLAGS.resume:
        return None
    runs = [p for p in experiment_logs.glob("*-*-*") if p.is_dir() and p.name.rsplit("-", 1)[-1].isdigit()]
    runs.sort(key=lambda p: (p.name.rsplit("-", 1)[0], int(p.name.rsplit("-", 1)[1])))
    # The newest run, unless it is a folder a run claimed and died in before writing anything.
    runs = [p for p in runs if (p / "config.json").exists() or locks.holder(p / RUN_LOCK)]
    if not runs:
        fail(f"--resume: no earlier run under {experiment_logs} to resume")
    _refuse_if_running(runs[-1], f"--resume: the latest run {runs[-1]}")
    return runs[-1]


def _refuse_if_running(run: Path, what: str) -> None:
    """Fail if a live process writes the run directory `run` (holds its lock, `RunDir.lock`)."""
    writer = locks.holder(run / RUN_LOCK)
    if writer:
        fail(f"{what} is still in progress (pid {writer}); wait for it to end, or stop it (Ctrl-C) and resume then")
