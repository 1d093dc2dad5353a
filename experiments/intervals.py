"""How far to trust the band: `tlkeras fit`'s calibrated intervals on the study's systems.

    python experiments/intervals.py                  # hill2, hill3, phosphorylation; N 100, 1000; 10 draws
    python experiments/intervals.py --preset=quick   # a few minutes: every output, tiny training
    python experiments/intervals.py --fold_kinds=random,blocked --draws=5

For every system, volume N, data draw and fold kind: N noisy readings (noise sd --noise) uniform
on the small domain, written as a lab's CSV and fitted by `tlkeras fit` (the library: `plan_fit`,
`run_fit`; the study's protocol, g = the simple model, 5 seeds, 5 folds) with one pretraining
cache for all. Each fit's transfer and baseline ensembles are then scored over the big domain,
inside and outside the measured region, against the noise-free truth on a grid and against
fresh noisy readings: coverage of the raw Gaussian intervals (mean -/+ z sqrt(sd^2 + noise
estimate^2)) and of the calibrated ones (`fit.calibration`, what `tlkeras predict` writes) at
50/80/90/95%, their mean width, and the *excess*: how many times wider the 90% interval is than
the same-shaped interval that would cover exactly 90% of what it is scored against (1.0: as
narrow as the coverage allows). One JSON line per fit in `<run>/fits.jsonl` (resumable:
--run_dir of a stopped run carries on), the summary in `<run>/results.md`.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
from absl import app, flags

from tlkeras.core.config import QUICK_PRESET
from tlkeras.results import intervals

REPO = Path(__file__).resolve().parents[1]
SYSTEMS_FILE = REPO / "examples" / "study" / "systems.py"
SYSTEMS = ("hill2", "hill3", "phosphorylation")
ARMS = ("transfer", "baseline")

flags.DEFINE_list("systems", list(SYSTEMS), f"Real systems (functions of {SYSTEMS_FILE.name}): "
                  f"{', '.join(SYSTEMS)}.")
flags.DEFINE_list("volumes", ["100", "1000"], "Readings N per data set (small domain).")
flags.DEFINE_integer("draws", 10, "Data sets per system and N (draw d: its own inputs and noise).", lower_bound=1,
                     upper_bound=1000)
flags.DEFINE_list("fold_kinds", ["random", "blocked"], "Fold kinds to calibrate with (tlkeras fit --fold_kind).")
flags.DEFINE_integer("folds", 5, "k of the fits' cross-validation.", lower_bound=2, upper_bound=100)
flags.DEFINE_float("noise", 1.0, "Noise sd of every reading (the study's).", lower_bound=0.0)
flags.DEFINE_integer("grid", 41, "Truth grid: points per input over the big domain.", lower_bound=2, upper_bound=1000)
flags.DEFINE_integer("readings", 2000, "Fresh noisy readings per data set, uniform on the big domain.",
                     lower_bound=10, upper_bound=10_000_000)
flags.DEFINE_enum("preset", "full", ["full", "quick"], "full: the study's protocol; quick: tiny training, 2 "
                  "draws, N 100 (checks the plumbing, not the intervals).")
flags.DEFINE_integer("workers", 2, "Local worker processes of the fits.", lower_bound=1, upper_bound=64)
flags.DEFINE_string("run_dir", None, "The run folder (default: logs/intervals/<time>); an existing one is resumed.")
flags.DEFINE_boolean("keep_models", False, "Keep every fitted model folder (else only draw 0's).")

FLAGS = flags.FLAGS
SMALL, BIG = (0.0, 10.0), (0.0, 20.0)


def readings(system: str, size: int, draw: int, low_high=SMALL, seed_tag: int = 0, noise: float = 1.0):
    """(x, noisy y) of `size` readings of `system`, uniform on the square low..high."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("study_systems", SYSTEMS_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    truth = getattr(module, system)
    rng = np.random.default_rng(np.random.SeedSequence([0x1A7E, SYSTEMS.index(system), size, draw, seed_tag]))
    x = rng.uniform(*low_high, size=(size, 2))
    return x, truth(x) + noise * rng.standard_normal((size, 2)), truth


def write_csv(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    lines = ["x1,x2,y1,y2"] + [",".join(repr(float(v)) for v in row) for row in np.concatenate([x, y], axis=1)]
    path.write_text("\n".join(lines) + "\n")


KINDS = ("raw", "calibrated", "final_split", "spread")


def scores(ensemble, bands, x, target, inside) -> dict:
    """Coverage at every level, 90% widths and excess, inside and outside, of the raw Gaussian
    intervals, the calibrated ones (CV+, what predict writes) and, for comparison, `final_split`:
    the final ensemble's mean -/+ q sqrt(sd^2 + tau^2), q the same out-of-fold scores' quantile
    (the final models saw every row: no guarantee, but they are better models than the folds');
    `spread`: mean -/+ z sd, the members' spread alone (no noise), a band for the response itself."""
    mean, sd = ensemble.predict(x)
    sigma = np.sqrt(sd**2 + ensemble.noise_sd**2)
    made = {"raw": {level: intervals.gaussian_interval(mean, sigma, level) for level in intervals.LEVELS},
            "calibrated": bands.intervals(x, intervals.LEVELS)}
    tau = np.sqrt(np.mean(bands.tau**2, axis=0))
    made["final_split"] = {level: intervals.split_interval(mean, np.sqrt(sd**2 + tau**2), bands.scores, level)
                           for level in intervals.LEVELS}
    # The members' spread alone, as a band for the noise-free response (README's old ±2 sd).
    made["spread"] = {level: intervals.gaussian_interval(mean, np.maximum(sd, 1e-12), level)
                      for level in intervals.LEVELS}
    found = {}
    for where, rows in (("inside", inside), ("outside", ~inside)):
        entry = {}
        for kind in KINDS:
            by_level = {}
            for level in intervals.LEVELS:
                lower, upper = made[kind][level]
                by_level[f"{100 * level:g}"] = intervals.coverage(target[rows], lower[rows], upper[rows])
            lower, upper = made[kind][0.9]
            centre, half = (lower + upper) / 2, (upper - lower) / 2
            needed = np.quantile(np.abs(target[rows] - centre[rows]) / half[rows], 0.9)
            entry[kind] = dict(coverage=by_level, width_90=float(np.mean(upper[rows] - lower[rows])),
                               excess_90=float(1 / needed))
        found[where] = entry
    return found


def quiet(message: str) -> None:
    """The fits' progress reporter: silent (one line per fit is printed instead)."""


def fit_and_score(run: Path, system: str, volume: int, draw: int, kind: str, processes, cache: Path) -> dict:
    from tlkeras.core.options import SweepOptions
    from tlkeras.fit.calibration import load_intervals
    from tlkeras.fit.ensemble import Ensemble, grid_points, read_manifest
    from tlkeras.fit.fitting import plan_fit, run_fit
    from tlkeras.systems.domains import Domain

    name = f"{system}_n{volume}_d{draw}"
    data = run / "data" / f"{name}.csv"
    data.parent.mkdir(parents=True, exist_ok=True)
    x, y, truth = readings(system, volume, draw, noise=FLAGS.noise)
    write_csv(data, x, y)
    protocol = dict(folds=FLAGS.folds, fold_kind=kind, seeds=(0, 1, 2, 3, 4))
    if FLAGS.preset == "quick":
        protocol.update({k: v for k, v in QUICK_PRESET.items() if k != "oracle_size"})
    config, _ = plan_fit(f"{SYSTEMS_FILE}:g", [*BIG], data, ("x1", "x2"), ("y1", "y2"), **protocol)
    out = run / "models" / f"{name}_{kind}"
    if out.exists():
        shutil.rmtree(out)
    started = time.time()
    run_fit(config, out, SweepOptions(workers=FLAGS.workers, cache_dir=cache, report=quiet),
            processes=processes)
    seconds = time.time() - started
    manifest = read_manifest(out)
    region = Domain.from_pairs(manifest["measured_region"])
    grid, _ = grid_points(np.asarray([BIG, BIG]), FLAGS.grid)
    fresh_x, fresh_y, _ = readings(system, FLAGS.readings, draw, BIG, seed_tag=1, noise=FLAGS.noise)
    record = dict(system=system, volume=volume, draw=draw, fold_kind=kind, seconds=round(seconds, 1), arms={})
    for arm in ARMS:
        ensemble = Ensemble.load(out, arm)
        bands = load_intervals(out, manifest, arm)
        record["arms"][arm] = dict(
            truth=scores(ensemble, bands, grid, truth(grid), region.contains(grid)),
            readings=scores(ensemble, bands, fresh_x, fresh_y, region.contains(fresh_x)),
            score_q90=manifest["calibration"]["arms"][arm]["score_q90"])
    if draw > 0 and not FLAGS.keep_models:
        shutil.rmtree(out)
    return record


def summary(records: list[dict]) -> str:
    lines = ["# Calibrated intervals on the study's systems", "",
             "Coverage of the 90% intervals (mean over draws, min..max), their mean width and excess (times wider than",
             "the same-shaped interval covering exactly 90%), inside and outside the measured region; *truth*: the",
             "noise-free response on a grid of the big domain; *readings*: fresh noisy readings there. *raw*: mean ±",
             "1.645 sqrt(sd² + noise estimate²); *CV+*: the calibrated interval `tlkeras predict` writes; *final*: the",
             "final ensemble ± the same scores' quantile (for comparison); *spread*: mean ± 1.645 sd, the members'",
             "spread alone (a band for the response itself, not for a reading).", ""]
    keys = sorted({(r["fold_kind"], r["system"], r["volume"]) for r in records},
                  key=lambda k: (k[0], SYSTEMS.index(k[1]) if k[1] in SYSTEMS else 99, k[2]))
    names = {"raw": "raw", "calibrated": "CV+", "final_split": "final", "spread": "spread"}
    for target in ("truth", "readings"):
        lines += [f"## Against the {target}", "",
                  "| folds | system | N | arm | draws | " + " | ".join(f"in {names[k]}" for k in KINDS)
                  + " | excess in CV+ / final / spread | " + " | ".join(f"out {names[k]}" for k in KINDS)
                  + " | width in " + " / ".join(names[k] for k in KINDS) + " | width out |",
                  "|---|---|---|---|---|" + "---|" * (2 * len(KINDS) + 3)]
        for kind, system, volume in keys:
            group = [r for r in records if (r["fold_kind"], r["system"], r["volume"]) == (kind, system, volume)]
            for arm in ARMS:
                def values(where, which, key="coverage"):
                    got = [r["arms"][arm][target][where][which] for r in group]
                    return np.asarray([g[key]["90"] if key == "coverage" else g[key] for g in got])

                def cov(where, which):
                    v = values(where, which)
                    return f"{v.mean():.0%} ({v.min():.0%}..{v.max():.0%})"

                def widths(where):
                    return " / ".join(f"{values(where, k, 'width_90').mean():.3g}" for k in KINDS)

                excess = " / ".join(f"{values('inside', k, 'excess_90').mean():.2f}" for k in KINDS[1:])
                lines.append(f"| {kind} | {system} | {volume} | {arm} | {len(group)} | "
                             + " | ".join(cov("inside", k) for k in KINDS) + f" | {excess} | "
                             + " | ".join(cov("outside", k) for k in KINDS) + f" | {widths('inside')} | "
                             f"{widths('outside')} |")
        lines.append("")
    return "\n".join(lines)


def main(argv) -> None:
    del argv
    from tlkeras.cli.lifecycle import workers_then_tensorflow

    volumes = [int(v) for v in FLAGS.volumes]
    draws = 2 if FLAGS.preset == "quick" and FLAGS["draws"].using_default_value else FLAGS.draws
    if FLAGS.preset == "quick" and FLAGS["volumes"].using_default_value:
        volumes = [100]
    for system in FLAGS.systems:
        if system not in SYSTEMS:
            raise app.UsageError(f"--systems={system} is not allowed: expected some of {', '.join(SYSTEMS)}")
    for kind in FLAGS.fold_kinds:
        if kind not in ("random", "blocked"):
            raise app.UsageError(f"--fold_kinds={kind} is not allowed: expected random and/or blocked")
    run = Path(FLAGS.run_dir or REPO / "logs" / "intervals" / time.strftime("%Y%m%d-%H%M%S"))
    run.mkdir(parents=True, exist_ok=True)
    (run / "flags.txt").write_text(FLAGS.flags_into_string())
    done_path = run / "fits.jsonl"
    records = [json.loads(line) for line in done_path.read_text().splitlines()] if done_path.exists() else []
    done = {(r["system"], r["volume"], r["draw"], r["fold_kind"]) for r in records}
    with workers_then_tensorflow("local", FLAGS.workers) as workers:
        for draw in range(draws):
            for kind in FLAGS.fold_kinds:
                for system in FLAGS.systems:
                    for volume in volumes:
                        if (system, volume, draw, kind) in done:
                            continue
                        record = fit_and_score(run, system, volume, draw, kind, workers.processes, run / "cache")
                        records.append(record)
                        with done_path.open("a") as handle:
                            handle.write(json.dumps(record) + "\n")
                        at = record["arms"]["transfer"]["truth"]
                        print(f"{system} N={volume} draw {draw} {kind}: {record['seconds']:.0f} s; transfer 90% "
                              f"calibrated covers the truth {at['inside']['calibrated']['coverage']['90']:.0%} inside, "
                              f"{at['outside']['calibrated']['coverage']['90']:.0%} outside", flush=True)
                        (run / "results.md").write_text(summary(records))
    print(f"wrote {run / 'results.md'}")


if __name__ == "__main__":
    app.run(main)
