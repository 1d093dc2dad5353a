"""Flags shared by the drivers, and the one function that turns flags into a run.

Every protocol default (shared/PROTOCOL.md) is a flag here, validated where it is defined, so a
bad value fails while the flags are parsed: one line naming the value and what is allowed, exit
status 2, before TensorFlow trains anything and before a run directory exists.
"""

from __future__ import annotations

import contextlib
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `python experiments/exp1.py` from a checkout, no install step

from absl import flags  # noqa: E402

import backend_flags  # noqa: E402
import strategy_flags  # noqa: E402
from tlkeras import config as study_config  # noqa: E402
from tlkeras import faults, folders, interrupts, user_config  # noqa: E402
from tlkeras.worker import start_local  # noqa: E402

FLAGS = flags.FLAGS
PRESETS = {"full": {}, "quick": study_config.QUICK_PRESET}


def _floats(name: str, count: int | None = None, positive: bool = False, minimum=None):
    def check(raw) -> bool:
        try:
            numbers = [float(v) for v in raw]
        except (TypeError, ValueError):
            return False
        if count is not None and len(numbers) != count:
            return False
        if not numbers or not all(math.isfinite(v) for v in numbers):
            return False
        if positive and not all(v > 0 for v in numbers):
            return False
        if minimum is not None and not all(v >= minimum for v in numbers):
            return False
        return True

    rule = (f"{count} " if count else "") + ("positive " if positive else "") + "finite numbers"
    if minimum is not None:
        rule += f" >= {minimum}"
    flags.register_validator(name, check, message=f"--{name} takes {rule}, comma-separated")


def _ints(name: str, low: int, high: int, unique: bool = True):
    def check(raw) -> bool:
        try:
            numbers = [int(v) for v in raw]
        except (TypeError, ValueError):
            return False
        if not numbers or not all(low <= v <= high for v in numbers):
            return False
        return not unique or len(set(numbers)) == len(numbers)

    flags.register_validator(
        name, check,
        message=f"--{name} takes one or more distinct whole numbers from {low} to {high}, comma-separated",
    )


def _finite(name: str) -> None:
    flags.register_validator(name, lambda v: v is None or math.isfinite(v),
                             message=f"--{name} takes a finite number (not nan or inf)")


def define_protocol_flags(volumes_default: list[str] | None,
                          strategies_default: tuple[str, ...] = ("fine_tune_all",)) -> None:
    """The protocol flags common to the experiments (defaults: PROTOCOL.md)."""
    defaults = study_config.StudyConfig()
    flags.DEFINE_enum("preset", "full", list(PRESETS),
                      "full: the study's protocol. quick: tiny sets, 40 epochs, 2 seeds (about a "
                      "minute); flags given explicitly win over the preset.")
    flags.DEFINE_list("eta", [str(v) for v in defaults.eta], "Maximal expression eta_i per output.")
    _floats("eta", positive=True)
    flags.DEFINE_list("theta", [str(v) for v in defaults.theta], "Affinity theta_i per input (1/nM).")
    _floats("theta", positive=True)
    flags.DEFINE_float("y_tot", defaults.y_tot, "Total protein of the phosphorylation cycle.", lower_bound=1e-12)
    flags.DEFINE_string("simple_system", defaults.simple_system,
                        "The known simple model g for pretraining: synthetic, hill<n>, phosphorylation, or "
                        "your own numpy function [n, inputs] -> [n, outputs] as path/to/file.py:g or module:g.")
    flags.DEFINE_integer("num_inputs", 0, "Inputs of your own systems (file.py:f references); 0: one per "
                         "--theta value.", lower_bound=0, upper_bound=study_config.MAX_DIMENSION)
    flags.DEFINE_list("big_domain", [str(v) for v in defaults.big_domain],
                      "low,high of every input (nM): pretraining, oracle and evaluation.")
    _floats("big_domain")
    flags.DEFINE_list("small_domain", [str(v) for v in defaults.small_domain],
                      "low,high of every input (nM) for the real fine-tuning data.")
    _floats("small_domain")
    flags.DEFINE_float("real_noise", defaults.real_noise, "Sigma of the Gaussian noise on real outputs.",
                       lower_bound=0.0)
    flags.DEFINE_float("synthetic_noise", defaults.synthetic_noise,
                       "Sigma of the Gaussian noise on synthetic outputs.", lower_bound=0.0)
    flags.DEFINE_integer("pretrain_size", defaults.pretrain_size, "Synthetic pretraining pairs.",
                         lower_bound=1, upper_bound=study_config.MAX_SAMPLES)
    flags.DEFINE_integer("oracle_size", defaults.oracle_size, "Real big-domain pairs of the oracle.",
                         lower_bound=1, upper_bound=study_config.MAX_SAMPLES)
    if volumes_default is not None:
        flags.DEFINE_list("volumes", volumes_default, "Real small-domain volumes N to sweep.")
        _ints("volumes", 1, study_config.MAX_SAMPLES)
    flags.DEFINE_list("seeds", [str(s) for s in defaults.seeds], "Seeds (one independent model each per cell).")
    _ints("seeds", 0, 2**31 - 1)
    flags.DEFINE_integer("real_data_seed", None, "Unset: each seed draws its own N real pairs (the seeds' "
                         "ensemble has seen seeds x N). A seed k: every seed trains on seed k's N real pairs, so the "
                         "seeds' ensemble is one on N pairs, as a lab's is.", lower_bound=0, upper_bound=2**31 - 1)
    flags.DEFINE_list("arms", list(defaults.arms), "Arms to train: transfer, baseline, oracle.")
    flags.register_validator(
        "arms", lambda v: bool(v) and set(v) <= set(study_config.ARMS) and len(set(v)) == len(v),
        message="--arms takes distinct names from transfer, baseline, oracle, comma-separated",
    )
    flags.DEFINE_integer("width", defaults.width, "Units per hidden layer.", lower_bound=1, upper_bound=4096)
    flags.DEFINE_integer("depth", defaults.depth, "Hidden layers.", lower_bound=0, upper_bound=64)
    flags.DEFINE_enum("activation", defaults.activation, list(study_config.ACTIVATIONS), "Hidden activation.")
    flags.DEFINE_float("learning_rate", defaults.learning_rate, "Adam learning rate.", lower_bound=1e-12)
    flags.DEFINE_integer("batch_size", defaults.batch_size, "Minibatch size.", lower_bound=1, upper_bound=65536)
    flags.DEFINE_integer("epochs", defaults.epochs, "Epochs of every arm (transfer: pretraining + fine-tuning).",
                         lower_bound=2, upper_bound=study_config.MAX_EPOCHS)
    flags.DEFINE_integer("pretrain_epochs", defaults.pretrain_epochs,
                         "Pretraining epochs of the transfer arm; must be < --epochs.",
                         lower_bound=1, upper_bound=study_config.MAX_EPOCHS)
    flags.register_multi_flags_validator(
        ["epochs", "pretrain_epochs"], lambda v: v["pretrain_epochs"] < v["epochs"],
        message="--pretrain_epochs must be smaller than --epochs (fine-tuning needs at least one epoch)",
    )
    strategy_flags.define_strategy_flags(strategies_default)
    flags.DEFINE_integer("evaluations", defaults.evaluations,
                         "Evaluations of every model during its training (TensorBoard's eval curves); 0: at the end only.",
                         lower_bound=0, upper_bound=10_000)
    flags.DEFINE_integer("eval_points", defaults.eval_points, "Evaluation points on the big domain.",
                         lower_bound=1, upper_bound=study_config.MAX_SAMPLES)
    flags.DEFINE_integer("eval_seed", defaults.eval_seed, "Seed of the evaluation points.", lower_bound=0)
    # How and where to run.
    for name in ("y_tot", "real_noise", "synthetic_noise", "learning_rate"):
        _finite(name)
    flags.DEFINE_string("logdir", str(REPO / "logs"), "Root of the run directories.")
    flags.DEFINE_boolean("resume", False, "Continue the latest run of this experiment (same flags).")
    flags.DEFINE_string("run_dir", None, "Continue this run directory (same flags).")
    backend_flags.define_backend_flags()
    flags.DEFINE_integer("max_members", 64, "Most members in one stack.", lower_bound=1, upper_bound=4096)
    flags.DEFINE_boolean("cache", True, "Reuse pretrained models from --cache_dir when everything that "
                         "determines them is identical.")
    flags.DEFINE_string("cache_dir", None, "Pretraining cache (default: <logdir>/cache).")


def parse_flags(argv: list[str]) -> list[str]:
    """absl parsing with one-line errors (instead of usage text) and preset application."""
    try:
        rest = FLAGS(argv)
    except flags.Error as error:
        fail(str(error).splitlines()[0])
    for name, value in PRESETS[FLAGS.preset].items():
        if not FLAGS[name].present:  # set all first, validate after: the values go in pairs
            FLAGS[name].value = [str(v) for v in value] if isinstance(value, tuple) else value
    try:
        FLAGS.validate_all_flags()
    except flags.Error as error:
        fail(str(error).splitlines()[0])
    return rest


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def config_from_flags(systems: list[str], volumes: list[int]) -> study_config.StudyConfig:
    """The StudyConfig these flags describe, validated (one-line error and exit 2 if not)."""
    try:
        config = study_config.StudyConfig(
            eta=tuple(float(v) for v in FLAGS.eta), theta=tuple(float(v) for v in FLAGS.theta),
            y_tot=FLAGS.y_tot, simple_system=FLAGS.simple_system, systems=tuple(systems),
            big_domain=tuple(float(v) for v in FLAGS.big_domain),
            small_domain=tuple(float(v) for v in FLAGS.small_domain),
            real_noise=FLAGS.real_noise, synthetic_noise=FLAGS.synthetic_noise,
            pretrain_size=FLAGS.pretrain_size, oracle_size=FLAGS.oracle_size,
            volumes=tuple(volumes), seeds=tuple(int(s) for s in FLAGS.seeds), real_data_seed=FLAGS.real_data_seed,
            arms=tuple(a for a in study_config.ARMS if a in FLAGS.arms),
            width=FLAGS.width, depth=FLAGS.depth, activation=FLAGS.activation,
            learning_rate=FLAGS.learning_rate, batch_size=FLAGS.batch_size, epochs=FLAGS.epochs,
            pretrain_epochs=FLAGS.pretrain_epochs, eval_points=FLAGS.eval_points, eval_seed=FLAGS.eval_seed,
            num_inputs=FLAGS.num_inputs, evaluations=FLAGS.evaluations, **strategy_flags.strategy_settings(FLAGS),
        )
        # A user's function is imported and probed here, once, before any work; its units may be
        # anything, so the networks normalise (the built-in systems' runs keep plain MLPs).
        config = user_config.resolve_user_systems(config)
        if config.uses_references:
            config = user_config.with_normalisation(config.validate())
        return config.validate()
    except study_config.ConfigError as error:
        message = str(error)
        field = message.split("=", 1)[0]
        fail(f"--{message}" if field in FLAGS else message)


def flags_text(module_flags: list[str]) -> str:
    """The run's flags as a --flagfile (how/where-to-run flags left out)."""
    names = [name for name in module_flags if name not in ("resume", "run_dir")]
    return "".join(FLAGS[name].serialize() + "\n" for name in sorted(names) if FLAGS[name].serialize())


def run(experiment: str, systems: list[str], volumes: list[int], module_flags: list[str]) -> None:
    """Validate, claim (or reopen) the run directory, run the study, say where everything is.

    Exit status: 0 done (also when Ctrl-C came after the run had finished), 2 bad input before
    any work, 130 interrupted (Ctrl-C), 1 stopped mid-run by a failure outside the run (a full
    disk, a vanished folder, a worker killed); in the last two cases finished members are kept
    and the resume command is printed.
    """
    interrupts.install()  # from here on, Ctrl-C stops the run at its next safe point
    config = config_from_flags(systems, volumes)
    logs = Path(FLAGS.logdir)
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
    connect_backend()
    faults.point("driver.startup")
    with contextlib.ExitStack() as workers:  # the local worker processes end with the run
        _run_started(experiment, config, logs, resume_dir, cache_dir, module_flags, workers)


def _run_started(experiment: str, config, logs: Path, resume_dir: Path | None, cache_dir: Path | None,
                 module_flags: list[str], workers: contextlib.ExitStack) -> None:
    # Started before this process imports TensorFlow, so that their imports overlap its own; a
    # resume starts them once its run directory is found resumable.
    processes = None if resume_dir is not None else start_local(workers, FLAGS.backend, FLAGS.workers)
    from tlkeras.startup import import_tensorflow  # after validation: bad flags fail in 0.3 s

    tf = import_tensorflow()
    tf.get_logger().setLevel("ERROR")
    from tlkeras.persistence import ModelFileError
    from tlkeras.rundir import RunDir, RunDirError, create_run_dir
    from tlkeras.study import configure_threads, run_study
    from tlkeras.sweep import SweepOptions, WorkerDied, print_report
    from tlkeras.user_systems import SystemReferenceError

    if resume_dir is not None:
        try:
            RunDir(resume_dir).check_resumable(config)
        except RunDirError as error:
            fail(str(error))
        processes = start_local(workers, FLAGS.backend, FLAGS.workers)
    if interrupts.requested():
        say("interrupted before the run started; nothing was written")
        sys.exit(130)
    configure_threads()
    run_dir = resume_dir or create_run_dir(logs, experiment)
    # flags.txt holds what determines the results; where they ran is said again on resume.
    where = [FLAGS[name].serialize() for name in backend_flags.NAMES if FLAGS[name].value != FLAGS[name].default]
    resume_line = " ".join([f"python experiments/{experiment}.py --flagfile={run_dir / 'flags.txt'}",
                            f"--run_dir={run_dir}", *where])
    options = SweepOptions(workers=FLAGS.workers, max_members=FLAGS.max_members, cache_dir=cache_dir,
                           report=print_report, backend=FLAGS.backend, ray_address=FLAGS.ray_address)
    say(f"run directory: {run_dir}")
    try:
        if resume_dir is None:
            RunDir(run_dir).staging.write_text(run_dir / "flags.txt", flags_text(module_flags))
        run_study(config, run_dir, options, resume=resume_dir is not None, processes=processes)
    except (ModelFileError, RunDirError) as error:  # e.g. a corrupt model file met on resume
        fail(f"{error} (run directory: {run_dir})")
    except KeyboardInterrupt:  # interrupts.Interrupted, or a second Ctrl-C
        say(f"interrupted; finished members are kept. Resume with:\n  {resume_line}")
        sys.exit(130)
    except (OSError, WorkerDied, SystemReferenceError, ArithmeticError) as error:
        print(f"error: {_describe(error)}; finished members are kept. Resume with:\n  {resume_line}",
              file=sys.stderr)
        sys.exit(1)
    if interrupts.requested():
        say("Ctrl-C came after the run had finished: every result is written")
    say(f"done. Browse: tensorboard --logdir {run_dir / 'tensorboard'}")


def connect_backend() -> None:
    """--backend=ray: reach (or start) Ray before any work; one line and exit 2 if it fails."""
    error = backend_flags.connect_backend(FLAGS.backend, FLAGS.ray_address, FLAGS.workers)
    if error:
        fail(error)


def _describe(error: Exception) -> str:
    if isinstance(error, OSError) and error.filename:
        return f"could not write {error.filename}: {error.strerror}"
    if isinstance(error, OSError):
        return f"could not write the run: {error.strerror or error}"
    return str(error).splitlines()[0]


def _resume_target(experiment_logs: Path) -> Path | None:
    if FLAGS.run_dir:
        path = Path(FLAGS.run_dir)
        if not (path / "config.json").exists():
            fail(f"--run_dir={path} is not a run directory (no config.json); give a folder under {experiment_logs}")
        return path
    if not FLAGS.resume:
        return None
    runs = [p for p in experiment_logs.glob("*-*-*") if (p / "config.json").exists()]
    runs.sort(key=lambda p: (p.name.rsplit("-", 1)[0], int(p.name.rsplit("-", 1)[1])))
    if not runs:
        fail(f"--resume: no earlier run under {experiment_logs} to resume")
    return runs[-1]


def say(message: str) -> None:
    from tlkeras.options import print_report

    print_report(message)
