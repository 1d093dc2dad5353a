"""The `tlkeras` command: fit, predict, evaluate a lab's own system (a thin layer, as the drivers).

    tlkeras fit --simple=g.py:g --domain=0,20 --measurements=plate.csv --inputs=aTc,IPTG \\
        --outputs=gfp,rfp --out=models/plate1
    tlkeras predict --model=models/plate1 --grid=50 --out=pred.csv
    tlkeras evaluate --model=models/plate1 --measurements=test.csv

Arguments -> config -> one library call (`fitting.run_fit`, `ensemble.Ensemble`); no training
logic here. A driver like exp1.py and exp2.py, it lives beside them in experiments/ (flags stay
out of the library); pyproject.toml installs it as the top-level module `tlkeras_cli` behind the
`tlkeras` console script. Each command parses into its own `absl.flags.FlagValues`. Every bad input is one line on
stderr and exit status 2 before any work; Ctrl-C is 130; a failure mid-run 1.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from pathlib import Path

from absl import flags

from backend_flags import connect_backend, define_backend_flags
from strategy_flags import define_strategy_flags, strategy_settings
from tlkeras import config as study_config
from tlkeras import folders, interrupts
from tlkeras.domains import Domain

USAGE = """usage: tlkeras <command> [--flags]

commands:
  fit       pretrain on your simple model, fine-tune on your measurements (CSV), write a model folder
  predict   ensemble mean and sd per output at points from a CSV or on a grid over the domain
  evaluate  L1, RMSE and 2-sd coverage of a model folder on measurements it has not seen

`tlkeras <command> --help` lists a command's flags."""

QUICK = {k: v for k, v in study_config.QUICK_PRESET.items() if k != "oracle_size"}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(USAGE)
        sys.exit(0 if len(argv) >= 2 else 2)
    command, rest = argv[1], argv[2:]
    if command not in COMMANDS:
        fail(f"unknown command {command!r}: expected fit, predict or evaluate (tlkeras --help)")
    define, run = COMMANDS[command]
    values = flags.FlagValues()
    define(values)
    if any(a in ("-h", "--help", "--helpfull") for a in rest):
        print(f"usage: tlkeras {command} [--flags]\n\n" + "\n".join(
            values.module_help(module) for module in (__name__, "strategy_flags", "backend_flags")
            if values.get_key_flags_for_module(module)))
        sys.exit(0)
    try:
        extra = values([f"tlkeras {command}", *rest])
    except flags.Error as error:
        message = str(error).splitlines()[0]
        missing = [name for name in values if values[name].value is None and name in REQUIRED[command]]
        if "must have a value other than None" in message and missing:
            message = f"--{missing[0]} is required (tlkeras {command} --help)"
        fail(message)
    if len(extra) > 1:
        fail(f"unexpected arguments {extra[1:]}; every setting is a --flag (tlkeras {command} --help)")
    run(values)


def fail(message: str, status: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(status)


def say(message: str) -> None:
    from tlkeras.options import print_report

    print_report(message)


# fit -------------------------------------------------------------------------------------------
def _define_fit(v: flags.FlagValues) -> None:
    d = study_config.StudyConfig()
    flags.DEFINE_string("simple", None, "Your simple model g: path/to/file.py:function or module:function, "
                        "numpy [n, inputs] -> [n, outputs].", flag_values=v)
    flags.DEFINE_list("domain", None, "Input range to model: low,high for every input, or low,high per input "
                      "(in the order of --inputs).", flag_values=v)
    flags.DEFINE_string("measurements", None, "CSV with a header row: your measurements.", flag_values=v)
    flags.DEFINE_list("inputs", None, "Input columns of the CSV, in order.", flag_values=v)
    flags.DEFINE_list("outputs", None, "Output columns of the CSV, in the order g returns them.", flag_values=v)
    flags.DEFINE_string("out", None, "The model folder to write.", flag_values=v)
    flags.DEFINE_boolean("overwrite", False, "Replace a model already in --out (once the new one is complete).",
                         flag_values=v)
    flags.DEFINE_enum("preset", "full", ["full", "quick"], "full: the study's protocol. quick: tiny "
                      "pretraining, 40 epochs, 2 seeds (for a first look); flags given explicitly win.", flag_values=v)
    flags.DEFINE_list("seeds", [str(s) for s in d.seeds], "Seeds: one ensemble member per seed and arm.",
                      flag_values=v)
    flags.DEFINE_integer("folds", 5, "k of the k-fold cross-validation (0: none; the noise estimate needs it).",
                         lower_bound=0, upper_bound=100, flag_values=v)
    flags.DEFINE_integer("epochs", d.epochs, "Epochs of each arm (transfer: pretraining + fine-tuning).",
                         lower_bound=2, upper_bound=study_config.MAX_EPOCHS, flag_values=v)
    flags.DEFINE_integer("pretrain_epochs", d.pretrain_epochs, "Pretraining epochs; must be < --epochs.",
                         lower_bound=1, upper_bound=study_config.MAX_EPOCHS, flag_values=v)
    flags.DEFINE_integer("pretrain_size", d.pretrain_size, "Points of g for pretraining.", lower_bound=1,
                         upper_bound=study_config.MAX_SAMPLES, flag_values=v)
    flags.DEFINE_float("synthetic_noise", d.synthetic_noise, "Sigma of Gaussian noise added to g's outputs "
                       "(in its units).", lower_bound=0.0, flag_values=v)
    flags.DEFINE_integer("width", d.width, "Units per hidden layer.", lower_bound=1, upper_bound=4096, flag_values=v)
    flags.DEFINE_integer("depth", d.depth, "Hidden layers.", lower_bound=0, upper_bound=64, flag_values=v)
    flags.DEFINE_enum("activation", d.activation, list(study_config.ACTIVATIONS), "Hidden activation.",
                      flag_values=v)
    flags.DEFINE_float("learning_rate", d.learning_rate, "Adam learning rate.", lower_bound=1e-12, flag_values=v)
    flags.DEFINE_integer("batch_size", d.batch_size, "Minibatch size.", lower_bound=1, upper_bound=65536,
                         flag_values=v)
    define_backend_flags(v)
    define_strategy_flags(("fine_tune_all",), v)
    flags.DEFINE_boolean("cache", True, "Reuse pretrained models from --cache_dir.", flag_values=v)
    flags.DEFINE_string("cache_dir", None, "Pretraining cache (default: ~/.cache/tlkeras).", flag_values=v)
    for name in ("simple", "domain", "measurements", "inputs", "outputs", "out"):
        flags.mark_flag_as_required(name, flag_values=v)
    flags.register_validator("domain", _finite_numbers, message="--domain takes finite numbers low,high "
                             "(or low,high per input), comma-separated", flag_values=v)
    flags.register_validator("seeds", _distinct_seeds, message="--seeds takes distinct whole numbers from 0 to "
                             "2147483647, comma-separated", flag_values=v)
    for name in ("synthetic_noise", "learning_rate"):
        flags.register_validator(name, lambda x: math.isfinite(x), message=f"--{name} takes a finite number",
                                 flag_values=v)


def _finite_numbers(raw) -> bool:
    try:
        return bool(raw) and all(math.isfinite(float(x)) for x in raw)
    except (TypeError, ValueError):
        return False


def _distinct_seeds(raw) -> bool:
    try:
        seeds = [int(x) for x in raw]
    except (TypeError, ValueError):
        return False
    return bool(seeds) and len(set(seeds)) == len(seeds) and all(0 <= s < 2**31 for s in seeds)


def _run_fit(v: flags.FlagValues) -> None:
    from tlkeras.fitting import OutputFolderError, check_output_folder, plan_fit
    from tlkeras.measurements import MeasurementError

    interrupts.install()
    for name, value in (QUICK.items() if v.preset == "quick" else ()):
        if not v[name].present:
            v[name].value = [str(s) for s in value] if isinstance(value, tuple) else value
    if v.pretrain_epochs >= v.epochs:
        fail(f"--pretrain_epochs={v.pretrain_epochs} must be smaller than --epochs={v.epochs} "
             "(fine-tuning needs at least one epoch)")
    out = Path(v.out).resolve()
    cache_dir = Path(v.cache_dir or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tlkeras") \
        if v.cache else None
    try:
        check_output_folder(out, v.overwrite)
        config, found = plan_fit(
            v.simple, [float(x) for x in v.domain], v.measurements, v.inputs, v.outputs, folds=v.folds,
            seeds=tuple(int(s) for s in v.seeds), epochs=v.epochs, pretrain_epochs=v.pretrain_epochs,
            pretrain_size=v.pretrain_size, synthetic_noise=v.synthetic_noise, width=v.width, depth=v.depth,
            activation=v.activation, learning_rate=v.learning_rate, batch_size=v.batch_size,
            **strategy_settings(v),
        )
        parent = out.resolve().parent
        folders.check_writable(parent, "--out", folders.estimated_run_bytes(config))
        if cache_dir is not None:
            folders.check_writable(cache_dir, "--cache_dir")
    except (OutputFolderError, study_config.ConfigError, MeasurementError, folders.FolderError) as error:
        fail(_flag_style(str(error)))
    error = connect_backend(v.backend, v.ray_address, v.workers)
    if error:
        fail(error)
    from tlkeras.worker import start_local

    with contextlib.ExitStack() as workers:  # started now: their TensorFlow imports overlap ours
        _fit_started(v, config, found, out, cache_dir, start_local(workers, v.backend, v.workers))


def _fit_started(v: flags.FlagValues, config, found, out: Path, cache_dir: Path | None, processes) -> None:
    from tlkeras.startup import import_tensorflow

    import_tensorflow().get_logger().setLevel("ERROR")
    from tlkeras.fitting import run_fit
    from tlkeras.measurements import MeasurementError
    from tlkeras.options import SweepOptions, print_report
    from tlkeras.persistence import ModelFileError
    from tlkeras.sweep import WorkerDied, configure_threads
    from tlkeras.user_systems import SystemReferenceError

    configure_threads()
    if interrupts.requested():
        fail("interrupted before the fit started; nothing was written", 130)
    say(f"fitting {found.rows} measurements of {', '.join(config.measurement_outputs)} from {found.path}; "
        f"{len(config.seeds)} seeds, " + (f"{config.folds}-fold cross-validation" if config.folds else
        "no cross-validation") + f"; model folder: {out}")
    options = SweepOptions(workers=v.workers, cache_dir=cache_dir, report=print_report, backend=v.backend,
                           ray_address=v.ray_address)
    command = "tlkeras fit " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["fit"] else ""
    flag_lines = "".join(v[name].serialize() + "\n" for name in sorted(v) if v[name].serialize()
                         and name not in ("overwrite", "workers", "cache", "cache_dir", "backend", "ray_address"))
    try:
        run_fit(config, out, options, flags_text=flag_lines, command=command, processes=processes)
    except KeyboardInterrupt:
        fail("interrupted; nothing was written to --out (pretrained models stay in the cache)", 130)
    except (OSError, WorkerDied, ArithmeticError, MeasurementError, ModelFileError, SystemReferenceError) as error:
        message = f"could not write {error.filename}: {error.strerror}" if isinstance(error, OSError) and \
            error.filename else str(error)
        fail(f"{message}; nothing was written to --out", 1)
    say(f"done. Report: {out / 'report.md'}")
    say(f"predict: tlkeras predict --model={out} --grid=50 --out=pred.csv")
    say(f"browse:  tensorboard --logdir {out / 'tensorboard'}")


def _flag_style(message: str) -> str:
    """'epochs=3 is not allowed ...' -> '--epochs=3 ...' where the field is a flag."""
    field = message.split("=", 1)[0]
    renamed = {"simple_system": "simple", "big_domain": "domain"}
    if field in renamed:
        return "--" + renamed[field] + message[len(field):]
    if field == "volumes":  # a fit's one volume is the number of measurement rows
        rows, _, allowed = message[len(field) + 1:].partition(" is not allowed: expected ")
        return f"--measurements has {rows} rows, too few: expected {allowed}"
    if field.isidentifier() and field in ("seeds", "epochs", "pretrain_epochs", "pretrain_size", "folds", "width",
                                          "depth", "batch_size", "learning_rate", "synthetic_noise"):
        return "--" + message
    return message


# predict and evaluate --------------------------------------------------------------------------
def _define_predict(v: flags.FlagValues) -> None:
    flags.DEFINE_string("model", None, "A model folder written by tlkeras fit.", flag_values=v)
    flags.DEFINE_string("inputs", None, "CSV of points, with the model's input columns by name.", flag_values=v)
    flags.DEFINE_integer("grid", None, "Instead of --inputs: a regular grid of this many points per input "
                         "over the model's domain.", lower_bound=2, upper_bound=1_000_000, flag_values=v)
    flags.DEFINE_string("out", None, "CSV to write: the input columns, then <output>_mean and <output>_sd.",
                        flag_values=v)
    flags.DEFINE_boolean("overwrite", False, "Replace an existing --out file.", flag_values=v)
    flags.DEFINE_string("arm", None, "Which ensemble: the fit's default (its first --strategies; transfer "
                        "for fine_tune_all), another of its strategies, or baseline.", flag_values=v)
    for name in ("model", "out"):
        flags.mark_flag_as_required(name, flag_values=v)
    flags.register_multi_flags_validator(
        ["inputs", "grid"], lambda f: (f["inputs"] is None) != (f["grid"] is None),
        message="give exactly one of --inputs=points.csv and --grid=<points per input>", flag_values=v)


def _run_predict(v: flags.FlagValues) -> None:
    from tlkeras.ensemble import grid_points, read_manifest
    from tlkeras.measurements import MeasurementError, read_measurements
    from tlkeras.errors import ModelFileError

    out = Path(v.out)
    try:
        manifest = read_manifest(Path(v.model))
        _check_arm(v, manifest)
        if out.exists() and (out.is_dir() or not v.overwrite):
            raise ValueError(f"--out={out} already exists; give another file, or --overwrite" if not out.is_dir()
                             else f"--out={out} is a folder; give a CSV file name")
        folders.check_writable(out.resolve().parent, "--out")
        if v.grid is not None:
            x, _ = grid_points(manifest["domain"], v.grid)
        else:
            x = read_measurements(v.inputs, manifest["inputs"], ()).x
    except (ModelFileError, MeasurementError, folders.FolderError, ValueError) as error:
        fail(str(error))
    ensemble = _load_ensemble(v)
    mean, sd = ensemble.predict(x)
    outside = int((~Domain.from_pairs(manifest["domain"]).contains(x)).sum())
    if outside:
        print(f"warning: {outside} of {len(x)} points lie outside the model's domain; the simple model taught "
              "it nothing there", file=sys.stderr)
    header = [*manifest["inputs"], *(f"{name}_{kind}" for name in manifest["outputs"] for kind in ("mean", "sd"))]
    columns = [x[:, i] for i in range(x.shape[1])]
    for o in range(mean.shape[1]):
        columns += [mean[:, o], sd[:, o]]
    _write_csv(out, header, columns)
    print(f"wrote {out}: {len(x)} points, mean and sd over {len(ensemble.models)} {v.arm or manifest['default_arm']} "
          f"members")


def _define_evaluate(v: flags.FlagValues) -> None:
    flags.DEFINE_string("model", None, "A model folder written by tlkeras fit.", flag_values=v)
    flags.DEFINE_string("measurements", None, "CSV with the model's input and output columns by name.",
                        flag_values=v)
    flags.DEFINE_string("arm", None, "Which ensemble: the fit's default (its first --strategies; transfer "
                        "for fine_tune_all), another of its strategies, or baseline.", flag_values=v)
    flags.DEFINE_string("out", None, "Also write the scores to this JSON file.", flag_values=v)
    for name in ("model", "measurements"):
        flags.mark_flag_as_required(name, flag_values=v)


def _run_evaluate(v: flags.FlagValues) -> None:
    import json

    from tlkeras.ensemble import read_manifest
    from tlkeras.errors import ModelFileError
    from tlkeras.measurements import MeasurementError, read_measurements

    try:
        manifest = read_manifest(Path(v.model))
        _check_arm(v, manifest)
        found = read_measurements(v.measurements, manifest["inputs"], manifest["outputs"])
        if v.out:
            if Path(v.out).is_dir():
                raise ValueError(f"--out={v.out} is a folder; give a JSON file name")
            folders.check_writable(Path(v.out).resolve().parent, "--out")
    except (ModelFileError, MeasurementError, folders.FolderError, ValueError) as error:
        fail(str(error))
    ensemble = _load_ensemble(v)
    scores = ensemble.evaluate(found.x, found.y)
    print(f"{found.rows} rows of {found.path}; {len(ensemble.models)} {ensemble.arm} members; coverage: "
          f"rows within mean ± 2 sd, sd with the noise estimate {', '.join(f'{s:.4g}' for s in ensemble.noise_sd)}")
    print(f"{'output':<14}{'rows':<18}{'n':>5}{'L1':>12}{'RMSE':>12}{'coverage':>10}")
    for name, by_region in scores.items():
        for where, score in by_region.items():
            if score["rows"]:
                print(f"{name:<14}{where.replace('_', ' '):<18}{score['rows']:>5}{score['l1']:>12.4g}"
                      f"{score['rmse']:>12.4g}{score['coverage_2sd']:>10.1%}")
    if v.out:
        _write_text(Path(v.out), json.dumps(dict(model=str(v.model), measurements=str(found.path), sha256=found.sha256,
                                               arm=v.arm or manifest["default_arm"], scores=scores), indent=2) + "\n")
        print(f"wrote {v.out}")


def _check_arm(v: flags.FlagValues, manifest: dict) -> None:
    if v.arm is not None and not manifest["ensembles"].get(v.arm):
        available = ", ".join(a for a, paths in manifest["ensembles"].items() if paths)
        raise ValueError(f"--arm={v.arm!r} is not allowed: this model has {available}")


def _load_ensemble(v: flags.FlagValues):
    from tlkeras.startup import import_tensorflow

    import_tensorflow().get_logger().setLevel("ERROR")
    from tlkeras.ensemble import Ensemble
    from tlkeras.errors import ModelFileError

    try:
        return Ensemble.load(Path(v.model), v.arm)
    except ModelFileError as error:
        fail(str(error))


def _write_text(path: Path, text: str) -> None:
    temporary = path.parent / f".{path.name}.{os.getpid()}.partial"
    try:
        temporary.write_text(text)
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        fail(f"could not write {path}: {error.strerror or error}", 1)


def _write_csv(path: Path, header: list[str], columns: list) -> None:
    """Written beside `path` and renamed into place: a reader never sees half a file."""
    import csv

    temporary = path.parent / f".{path.name}.{os.getpid()}.partial"
    try:
        with temporary.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for row in zip(*columns):
                writer.writerow([repr(float(value)) for value in row])  # round-trips exactly
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        fail(f"could not write {path}: {error.strerror or error}", 1)


REQUIRED = {"fit": ("simple", "domain", "measurements", "inputs", "outputs", "out"), "predict": ("model", "out"),
            "evaluate": ("model", "measurements")}
COMMANDS = {"fit": (_define_fit, _run_fit), "predict": (_define_predict, _run_predict),
            "evaluate": (_define_evaluate, _run_evaluate)}

if __name__ == "__main__":
    main()
