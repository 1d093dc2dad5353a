"""`tlkeras fit`: pretrain on a lab's simple model g, fine-tune on its measurements, one folder.

    tlkeras fit --simple=g.py:g --domain=0,20 --measurements=plate.csv --inputs=aTc,IPTG \\
        --outputs=gfp,rfp --out=models/plate1

Flags -> `fit.fitting.plan_fit` (a validated config) -> `fit.fitting.run_fit`, with the run
lifecycle of every training command (`lifecycle`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from absl import flags

from tlkeras.cli import flags as shared_flags
from tlkeras.cli.lifecycle import (
    apply_preset,
    command_line,
    fail,
    run_to_end,
    say,
    stopped_by,
    warn,
    workers_then_tensorflow,
)
from tlkeras.core import config as study_config
from tlkeras.core.errors import ConfigError
from tlkeras.core.vocabulary import FINE_TUNE_ALL
from tlkeras.runtime import interrupts
from tlkeras.storage import folders
from tlkeras.systems import user as user_systems
from tlkeras.systems.measurements import FOLD_KINDS

REQUIRED = ("simple", "domain", "measurements", "inputs", "outputs", "out")
EXAMPLE = ("tlkeras fit --simple=g.py:g --domain=0,20 --measurements=plate.csv --inputs=aTc,IPTG "
           "--outputs=gfp,rfp --out=models/plate1")
QUICK = {k: v for k, v in study_config.QUICK_PRESET.items() if k != "oracle_size"}  # a fit has no oracle
# Flags that do not change the fitted models: left out of the folder's flags.txt.
NOT_RECORDED = ("overwrite", "cache", "cache_dir", *shared_flags.WHERE_TO_RUN)


def define(v: flags.FlagValues) -> None:
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
    flags.DEFINE_integer("folds", 5, "k of the k-fold cross-validation (0: none; the noise estimate needs it).",
                         lower_bound=0, upper_bound=100, flag_values=v)
    flags.DEFINE_enum("fold_kind", "random", list(FOLD_KINDS), "How rows are dealt to the folds (which also "
                      "calibrate the prediction intervals): random, or blocked (shells towards the unmeasured "
                      "domain, the outermost first: held-out errors that look like extrapolation).", flag_values=v)
    shared_flags.define_training_flags(v, seeds_help="Seeds: one ensemble member per seed and arm.",
                                       epochs_help="Epochs of each arm (transfer: pretraining + fine-tuning).")
    shared_flags.define_backend_flags(v)
    shared_flags.define_strategy_flags((FINE_TUNE_ALL,), v)
    shared_flags.define_cache_flags(v, "Pretraining cache (default: ~/.cache/tlkeras).")
    for name in REQUIRED:
        flags.mark_flag_as_required(name, flag_values=v)
    shared_flags.require_numbers("domain", v, rule="finite numbers low,high (or low,high per input)")


def run(v: flags.FlagValues) -> None:
    from tlkeras.fit.fitting import OutputFolderError, check_inputs_outside, check_output_folder, output_lock

    if v.preset == "quick":
        apply_preset(v, QUICK)
    problem = shared_flags.pretrain_epochs_problem(v)
    if problem:
        fail(problem)
    out = Path(v.out).resolve()
    cache_dir = Path(v.cache_dir or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tlkeras") \
        if v.cache else None
    inputs = {"--measurements": Path(v.measurements), "--cache_dir": cache_dir}
    try:
        where = user_systems.split_reference(v.simple)[0] if user_systems.is_reference(v.simple) else ""
        if where.endswith(".py"):
            inputs["--simple"] = Path(where)
        check_output_folder(out, v.overwrite)
        check_inputs_outside(out, {label: path for label, path in inputs.items() if path is not None})
        with output_lock(out):  # held until the model is in place, or the fit has ended without one
            _fit_locked(v, out, cache_dir)
    except (OutputFolderError, user_systems.SystemReferenceError) as error:
        fail(str(error))


def _fit_locked(v: flags.FlagValues, out: Path, cache_dir: Path | None) -> None:
    from tlkeras.fit.fitting import OutputFolderError, check_output_folder, plan_fit
    from tlkeras.systems.measurements import MeasurementError

    try:
        check_output_folder(out, v.overwrite)  # again, now that no other fit can write it
        settings = shared_flags.training_settings(v)
        seeds = settings.pop("seeds")
        config, found = plan_fit(v.simple, [float(x) for x in v.domain], v.measurements, v.inputs, v.outputs,
                                 folds=v.folds, fold_kind=v.fold_kind, seeds=seeds, report=say, warn=warn, **settings,
                                 **shared_flags.strategy_settings(v))
        folders.check_writable(out.parent, "--out", folders.estimated_run_bytes(config))
        if cache_dir is not None:
            folders.check_writable(cache_dir, "--cache_dir")
    except (OutputFolderError, ConfigError, MeasurementError, folders.FolderError) as error:
        fail(_flag_style(str(error)))
    error = shared_flags.connect_backend(v.backend, v.ray_address, v.workers)
    if error:
        fail(error)
    with workers_then_tensorflow(v.backend, v.workers) as workers:  # their TensorFlow imports overlap ours
        _fit_started(v, config, found, out, cache_dir, workers.processes)


def _fit_started(v: flags.FlagValues, config, found, out: Path, cache_dir: Path | None, processes) -> None:
    from tlkeras.core.options import SweepOptions, print_report
    from tlkeras.fit.fitting import run_fit
    from tlkeras.runtime.startup import configure_threads

    configure_threads()
    if interrupts.requested():
        fail(f"{stopped_by()} before the fit started; nothing was written", interrupts.exit_status())
    say(f"fitting {found.rows} measurements of {', '.join(config.measurement_outputs)} from {found.path}; "
        f"{len(config.seeds)} seeds, " + (f"{config.folds}-fold cross-validation" if config.folds else
        "no cross-validation") + f"; model folder: {out}")
    options = SweepOptions(workers=v.workers, cache_dir=cache_dir, report=print_report, backend=v.backend,
                           ray_address=v.ray_address)
    command = command_line("tlkeras", "fit", *sys.argv[2:]) if sys.argv[1:2] == ["fit"] else ""
    flag_lines = "".join(v[name].serialize() + "\n" for name in sorted(v) if v[name].serialize()
                         and name not in NOT_RECORDED)
    fitted = {}
    run_to_end(lambda: fitted.update(run_fit(config, out, options, flags_text=flag_lines, command=command,
                                             processes=processes, overwrite=v.overwrite)),
               kept="; nothing was written to --out", interrupted_is_error=True,
               interrupted_note=" (pretrained models stay in the cache)" if cache_dir is not None else "")
    say(f"done. Report: {out / 'report.md'}")
    for line in headline(fitted):
        say(line)
    say(f"predict: {command_line('tlkeras', 'predict', f'--model={out}', '--grid=50', '--out=pred.csv')}")
    say(f"browse:  {command_line('tensorboard', '--logdir', out / 'tensorboard')}")


def headline(manifest: dict) -> list[str]:
    """The fit's numbers in a few lines: each arm's cross-validated RMSE per output."""
    noise = manifest.get("noise_sd") or {}
    if not noise:
        return ["no cross-validation (--folds=0): no error estimate; report.md has the fit's curves"]
    lines = [f"cross-validated RMSE of each ensemble ({manifest['folds']} folds; lower is better):"]
    for arm, by_output in noise.items():
        default = " (default)" if arm == manifest["default_arm"] else ""
        lines.append(f"  {arm + default:<28}" + "  ".join(f"{name} {value:.4g}" for name, value in by_output.items()))
    return lines


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
