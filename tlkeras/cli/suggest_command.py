"""`tlkeras suggest`: where to measure next, from a model folder written by `tlkeras fit`.

    tlkeras suggest --model=models/plate1 --n=24 --out=next.csv
    tlkeras suggest --model=models/plate1 --n=24 --candidates=wells.csv --out=next.csv

Flags -> checks (as predict's: an --out never an input, g checked against the fit) -> the
ensemble's member predictions -> `design.suggest.suggest` with a `design.methods` method -> a CSV
of the picks (the input columns, or every column of the candidates file, then per output the
ensemble's mean and sd there, the method's score and the pick order), a table on the terminal
and a figure of the picks over the domain (`results.plots.plot_suggestions`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from absl import flags

from tlkeras.cli import model_commands
from tlkeras.cli.lifecycle import fail, warn
from tlkeras.design.methods import DEFAULT_METHOD, METHODS
from tlkeras.storage import folders

REQUIRED = ("model", "n", "out")
EXAMPLE = "tlkeras suggest --model=models/plate1 --n=24 --out=next.csv"


def define(v: flags.FlagValues) -> None:
    flags.DEFINE_string("model", None, "A model folder written by tlkeras fit.", flag_values=v)
    flags.DEFINE_integer("n", None, "How many points to suggest (wells of the next plate).", lower_bound=1,
                         upper_bound=100_000, flag_values=v)
    flags.DEFINE_string("out", None, "CSV to write: the picks in order, with the ensemble's mean and sd, the "
                        "method's score and the pick number; a figure beside it (<out>.png).", flag_values=v)
    flags.DEFINE_boolean("overwrite", False, "Replace an existing --out and its figure (never an input).",
                         flag_values=v)
    flags.DEFINE_list("region", None, "Where you can measure: low,high for every input, or low,high per input, "
                      "inside the model's domain (default: the box your measurements span).", flag_values=v)
    flags.DEFINE_list("target", None, "Where the model should improve: low,high as --region takes it (default: the "
                      "model's whole domain).", flag_values=v)
    flags.DEFINE_string("candidates", None, "CSV of the only points allowed (the concentrations a plate layout "
                        "allows), with the model's input columns by name; its other columns are carried to --out. "
                        "Instead of --region.", flag_values=v)
    flags.DEFINE_string("measured", None, "CSV of the points measured so far, with the model's input columns "
                        "(default: the CSV the model was fitted on).", flag_values=v)
    flags.DEFINE_enum("method", DEFAULT_METHOD, list(METHODS), "How to pick: uniform (at random), space_filling "
                      "(far from every measured and picked point), disagreement (largest ensemble spread), "
                      "spread_distance (spread discounted by nearness), variance_reduction (the ensemble's estimate "
                      "of how much each pick shrinks the variance over --target). docs/suggest.md says which saves "
                      "what.", flag_values=v)
    flags.DEFINE_integer("seed", 0, "Seed of the random choices (the same seed, the same picks).", lower_bound=0,
                         flag_values=v)
    model_commands.define_arm_and_strict(v)
    for name in REQUIRED:
        flags.mark_flag_as_required(name, flag_values=v)
    for name in ("region", "target"):
        flags.register_validator(name, _box_values, message=f"--{name} takes finite numbers low,high (or low,high "
                                 "per input), comma-separated", flag_values=v)
    flags.register_multi_flags_validator(
        ["region", "candidates"], lambda f: f["region"] is None or f["candidates"] is None,
        message="give --region or --candidates, not both (the candidates are where you can measure)", flag_values=v)


def _box_values(raw) -> bool:
    if raw is None:
        return True
    try:
        numbers = [float(x) for x in raw]
    except ValueError:
        return False
    return len(numbers) >= 2 and len(numbers) % 2 == 0 and all(math.isfinite(x) for x in numbers)


def run(v: flags.FlagValues) -> None:
    from tlkeras.core.errors import ModelFileError
    from tlkeras.design.suggest import SuggestionError, region_in_domain
    from tlkeras.fit.ensemble import read_manifest
    from tlkeras.systems.domains import Domain
    from tlkeras.systems.measurements import MeasurementError, read_measurements

    out = Path(v.out)
    figure = out.with_suffix(".png")
    try:
        manifest = read_manifest(Path(v.model))
        model_commands.check_arm(v, manifest)
        inputs = {"--candidates": v.candidates, "--measured": v.measured}
        model_commands.check_out(v, manifest, out, inputs, "a CSV")
        if figure.exists() and not v.overwrite:
            raise ValueError(f"the figure {figure} (beside --out) already exists; give another --out, or --overwrite")
        domain = np.asarray(manifest["domain"], np.float64)
        region = None if v.region is None else region_in_domain(
            Domain.from_values([float(x) for x in v.region], len(domain)), domain, "--region")
        target = None if v.target is None else region_in_domain(
            Domain.from_values([float(x) for x in v.target], len(domain)), domain, "--target")
        measured_csv = v.measured or (manifest.get("measurements") or {}).get("path")
        if not measured_csv or not Path(measured_csv).is_file():
            raise ValueError(f"the measurements the model was fitted on ({measured_csv}) are gone: give the points "
                             "measured so far as --measured=file.csv")
        measured = read_measurements(measured_csv, manifest["inputs"], ()).x
        if region is None and v.candidates is None:
            region = np.asarray(manifest["measured_region"], np.float64)
        header, cells, candidates = list(manifest["inputs"]), None, None
        if v.candidates is not None:
            candidates, header, cells = model_commands.read_points(Path(v.candidates), manifest, keep_columns=True)
            if len(candidates) < v.n:
                raise ValueError(f"--candidates={v.candidates} has {len(candidates)} rows; --n={v.n} picks need at "
                                 f"least {v.n}")
        warnings = model_commands.check_simple_model(v, manifest)
        folders.check_writable(out.resolve().parent, "--out")
    except (ModelFileError, MeasurementError, SuggestionError, folders.FolderError, ValueError) as error:
        fail(str(error))
    for line in warnings:
        warn(line)
    if candidates is not None:
        outside = model_commands.outside_domain(candidates, manifest, "candidates")
        if outside:
            warn(outside)
    _suggest_started(v, manifest, out, figure, measured, region, target, candidates, header, cells)


def _suggest_started(v, manifest, out, figure, measured, region, target, candidates, header, cells) -> None:
    from tlkeras.design.methods import member_spread
    from tlkeras.design.suggest import suggest
    from tlkeras.fit.ensemble import grid_points
    from tlkeras.results.plots import plot_suggestions

    ensemble = model_commands.load_ensemble(v)
    suggestion = model_commands.call_model(ensemble, lambda: suggest(
        ensemble.member_predictions, ensemble.domain, measured, v.n, v.method, seed=v.seed, region=region,
        target=target, candidates=candidates, noise=ensemble.noise_sd))
    outputs = manifest["outputs"]
    rows = []
    for k in range(v.n):
        given = ([repr(float(value)) for value in suggestion.x[k]] if cells is None
                 else list(cells[int(suggestion.rows[k])]))
        predicted = [repr(float(values[k, o])) for o in range(len(outputs)) for values in (suggestion.mean, suggestion.sd)]
        rows.append([*given, *predicted, repr(float(suggestion.score[k])), str(k + 1)])
    model_commands.write_csv(out, [*header, *(f"{name}_{kind}" for name in outputs for kind in ("mean", "sd")),
                                   "score", "pick"], rows)
    spread_axes, spread = None, None
    domain = ensemble.domain
    if len(domain) <= 2:
        points, spread_axes = grid_points(domain, 200 if len(domain) == 1 else 60)
        members = model_commands.call_model(ensemble, ensemble.member_predictions, points)
        scale = members.mean(axis=0).std(axis=0)
        spread = member_spread(members / np.where(scale > 0, scale, 1.0))
        if len(domain) == 2:
            spread = spread.reshape(len(spread_axes[0]), len(spread_axes[1])).T  # [x2, x1] for imshow
    region_shown = suggestion.region if candidates is None else np.stack(
        [candidates.min(axis=0), candidates.max(axis=0)], axis=1)
    plot_suggestions(figure, domain, region_shown, measured, suggestion.x, manifest["inputs"], spread_axes, spread,
                     f"{v.n} suggested by {v.method} ({ensemble.arm} ensemble, seed {v.seed})")
    _print_table(suggestion, manifest, v)
    print(f"wrote {out} and {figure}")


def _print_table(suggestion, manifest: dict, v) -> None:
    inputs, outputs = manifest["inputs"], manifest["outputs"]
    shown = min(v.n, 30)
    head = f"{'pick':>4}  " + "".join(f"{name[:12]:>13}" for name in inputs) + "".join(
        f"{(name + ' sd')[:12]:>13}" for name in outputs) + f"{'score':>11}"
    print(f"{v.n} points suggested by {v.method} ({v.arm or manifest['default_arm']} ensemble, seed {v.seed})")
    print(head)
    for k in range(shown):
        print(f"{k + 1:>4}  " + "".join(f"{value:>13.4g}" for value in suggestion.x[k]) + "".join(
            f"{value:>13.4g}" for value in suggestion.sd[k]) + f"{suggestion.score[k]:>11.4g}")
    if shown < v.n:
        print(f"  ... {v.n - shown} more in the CSV")
