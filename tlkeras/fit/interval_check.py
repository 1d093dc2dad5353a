"""How far to trust the band, measured where the truth is known: fit a data set as a lab would,
then score its intervals over the whole domain.

For a real system f whose noise-free response is known (the study's systems, or a user's
function), one *replicate* is one data set: N noisy readings (noise sd `noise`) uniform on the
measured box, fitted by `tlkeras fit`'s own machinery (`fitting.plan_fit`, `fitting.run_fit`:
an ensemble of one member per seed, k folds, the calibration of `fit.calibration`). Its
intervals are then scored inside and outside the measured box, against the truth on a grid of
the domain and against fresh noisy readings there (`interval_scores`): the coverage of every
level and the 90% width and *excess* (how many times wider than the same-shaped interval that
would cover exactly 90%) of

- `calibrated`: the CV+ interval `tlkeras predict` writes (for a new reading);
- `raw`: mean -/+ z sqrt(sd^2 + noise estimate^2), the Gaussian reading of the spread;
- `final_split`: the final ensemble's mean -/+ q sqrt(sd^2 + tau^2), q the same scores' quantile
  (for comparison: no guarantee, but better models than the folds');
- `spread`: mean -/+ z sd, the members' spread alone, a band for the response itself (what
  README's older "is the spread honest?" measured as mean -/+ 2 sd).

`experiments/intervals.py` runs it on the study's systems; the study drivers run it on their
own systems with `--interval_replicates` (the "is the spread honest?" section of results.md).
"""

from __future__ import annotations

import dataclasses
import shutil
import time
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from tlkeras.core.vocabulary import BASELINE, TRANSFER_ARM
from tlkeras.results import intervals

KINDS = ("raw", "calibrated", "final_split", "spread")
NAMES = {"raw": "raw", "calibrated": "CV+", "final_split": "final", "spread": "spread"}
STUDY_SYSTEMS = ("hill2", "hill3", "phosphorylation")  # their data tags are their index (first measured so)
ARMS = (TRANSFER_ARM, BASELINE)
TRUTH_POINTS = 1681  # the truth grid: 41 x 41 for two inputs
DATA_SEED = 0x1A7E


def data_tag(system: str) -> int:
    """The word of `system` in its data sets' seeds."""
    return STUDY_SYSTEMS.index(system) if system in STUDY_SYSTEMS else zlib.crc32(system.encode())


def draw_readings(truth: Callable[[np.ndarray], np.ndarray], system: str, low: np.ndarray, high: np.ndarray,
                  size: int, replicate: int, noise: float, fresh: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(x, noisy y): `size` readings of `truth` uniform on the box low..high; replicate r's data set,
    or (`fresh`) the readings that score it."""
    words = [DATA_SEED, data_tag(system), size, replicate, int(fresh)]
    rng = np.random.default_rng(np.random.SeedSequence(words))
    x = rng.uniform(low, high, size=(size, len(low)))
    y = np.asarray(truth(x), np.float64)
    return x, y + noise * rng.standard_normal(y.shape)


def interval_scores(ensemble, bands, x: np.ndarray, target: np.ndarray, inside: np.ndarray) -> dict:
    """Per region (inside, outside) and kind (`KINDS`): coverage of `target` at every level of
    `intervals.LEVELS`, the 90% interval's mean width and its excess."""
    mean, sd = ensemble.predict(x)
    sigma = np.sqrt(sd**2 + ensemble.noise_sd**2)
    tau = np.sqrt(np.mean(bands.tau**2, axis=0))
    made = {"raw": {level: intervals.gaussian_interval(mean, sigma, level) for level in intervals.LEVELS},
            "calibrated": bands.intervals(x, intervals.LEVELS),
            "final_split": {level: intervals.split_interval(mean, np.sqrt(sd**2 + tau**2), bands.scores, level)
                            for level in intervals.LEVELS},
            "spread": {level: intervals.gaussian_interval(mean, np.maximum(sd, 1e-12), level)
                       for level in intervals.LEVELS}}
    found = {}
    for where, rows in (("inside", inside), ("outside", ~inside)):
        if not rows.any():
            continue
        entry = {}
        for kind in KINDS:
            by_level = {f"{100 * level:g}": intervals.coverage(target[rows], *(band[rows] for band in made[kind][level]))
                        for level in intervals.LEVELS}
            lower, upper = made[kind][0.9]
            centre, half = (lower + upper) / 2, (upper - lower) / 2
            needed = np.quantile(np.abs(target[rows] - centre[rows]) / np.maximum(half[rows], 1e-300), 0.9)
            entry[kind] = dict(coverage=by_level, width_90=float(np.mean(upper[rows] - lower[rows])),
                               excess_90=float(1 / needed) if needed > 0 else float("inf"))
        found[where] = entry
    return found


def check_replicate(truth: Callable[[np.ndarray], np.ndarray], system: str, simple: str, inputs: int,
                    big: Sequence[float], small: Sequence[float], volume: int, replicate: int, work: Path, options,
                    processes=None,
                    noise: float = 1.0, fresh_readings: int = 2000, builtin_simple: bool = False,
                    keep: bool = False, protocol: dict | None = None) -> dict:
    """One replicate of `system` at `volume` (see the module doc): its data set written as a lab's
    CSV under `work/data`, fitted into `work/models`, scored; returns the record. `big`, `small`:
    the domain and the measured box of `inputs` inputs (low,high for all, or per input), as the
    study's flags give them; `protocol`: plan_fit's protocol fields (folds, fold_kind, seeds, ...)."""
    from tlkeras.fit.calibration import load_intervals
    from tlkeras.fit.ensemble import Ensemble, grid_points, read_manifest
    from tlkeras.fit.fitting import plan_fit, run_fit
    from tlkeras.systems.domains import Domain

    protocol = dict(protocol or {})
    d = inputs
    big_box, small_box = (np.stack(Domain.from_values(list(values), d).bounds(d), axis=1) for values in (big, small))
    kind = protocol.get("fold_kind", "random")
    name = f"{system.replace('/', '_').replace(':', '.')}_n{volume}_r{replicate}_{kind}"
    data = Path(work) / "data" / f"{name}.csv"
    data.parent.mkdir(parents=True, exist_ok=True)
    x, y = draw_readings(truth, system, small_box[:, 0], small_box[:, 1], volume, replicate, noise)
    inputs, outputs = [f"x{i + 1}" for i in range(d)], [f"y{o + 1}" for o in range(y.shape[1])]
    data.write_text(",".join(inputs + outputs) + "\n" + "".join(
        ",".join(repr(float(v)) for v in row) + "\n" for row in np.concatenate([x, y], axis=1)))
    config, _ = plan_fit(simple, list(big), data, inputs, outputs, builtin_simple=builtin_simple, **protocol)
    out = Path(work) / "models" / name
    if out.exists():
        shutil.rmtree(out)
    started = time.time()
    run_fit(config, out, options, processes=processes)
    seconds = time.time() - started
    manifest = read_manifest(out)
    region = Domain.from_pairs(manifest["measured_region"])
    grid, _ = grid_points(big_box, max(2, int(round(TRUTH_POINTS ** (1 / d)))))
    fresh_x, fresh_y = draw_readings(truth, system, big_box[:, 0], big_box[:, 1], fresh_readings, replicate, noise,
                                     fresh=True)
    record = dict(system=system, volume=volume, replicate=replicate, fold_kind=kind, seconds=round(seconds, 1),
                  arms={})
    for arm in ARMS:
        if not (manifest["ensembles"].get(arm) and (manifest.get("calibration") or {}).get("arms", {}).get(arm)):
            continue
        ensemble = Ensemble.load(out, arm)
        bands = load_intervals(out, manifest, arm)
        record["arms"][arm] = dict(
            truth=interval_scores(ensemble, bands, grid, np.asarray(truth(grid), np.float64), region.contains(grid)),
            readings=interval_scores(ensemble, bands, fresh_x, fresh_y, region.contains(fresh_x)),
            score_q90=manifest["calibration"]["arms"][arm]["score_q90"])
    if not keep:
        shutil.rmtree(out)
    return record


def summary_markdown(records: list[dict], order: Sequence[str] = STUDY_SYSTEMS) -> list[str]:
    """Tables of the 90% intervals over replicates: coverage (mean, min..max), excess, widths."""
    lines = ["Coverage of the 90% intervals (mean over data sets, min..max), inside and outside the measured",
             "region, their excess inside (times wider than the same-shaped interval covering exactly 90%: below 1,",
             "too narrow) and mean widths; *truth*: the noise-free response on a grid of the domain; *readings*: fresh",
             "noisy readings there. *CV+*: the calibrated interval `tlkeras predict` writes, for a new reading; *raw*:",
             "mean ± 1.645 sqrt(sd² + noise estimate²); *final*: the final ensemble ± the same scores' quantile; *spread*:",
             "mean ± 1.645 sd, the members' spread alone (a band for the response itself, not for a reading).", ""]
    keys = sorted({(r["fold_kind"], r["system"], r["volume"]) for r in records},
                  key=lambda k: (k[0], order.index(k[1]) if k[1] in order else len(order), k[1], k[2]))
    for target in ("truth", "readings"):
        lines += [f"Against the {target}:", "",
                  "| folds | system | N | arm | data sets | " + " | ".join(f"in {NAMES[k]}" for k in KINDS)
                  + " | excess in " + " / ".join(NAMES[k] for k in KINDS[1:]) + " | "
                  + " | ".join(f"out {NAMES[k]}" for k in KINDS)
                  + " | width in " + " / ".join(NAMES[k] for k in KINDS) + " | width out |",
                  "|---|---|---|---|---|" + "---|" * (2 * len(KINDS) + 3)]
        for kind, system, volume in keys:
            group = [r for r in records if (r["fold_kind"], r["system"], r["volume"]) == (kind, system, volume)]
            for arm in ARMS:
                used = [r["arms"][arm][target] for r in group if arm in r["arms"]]
                if not used or any(where not in u for u in used for where in ("inside", "outside")):
                    continue

                def values(where, which, key="coverage"):
                    return np.asarray([u[where][which]["coverage"]["90"] if key == "coverage" else u[where][which][key]
                                       for u in used])

                def cov(where, which):
                    v = values(where, which)
                    return f"{v.mean():.0%} ({v.min():.0%}..{v.max():.0%})"

                def widths(where):
                    return " / ".join(f"{values(where, k, 'width_90').mean():.3g}" for k in KINDS)

                excess = " / ".join(f"{values('inside', k, 'excess_90').mean():.2f}" for k in KINDS[1:])
                lines.append(f"| {kind} | {system} | {volume} | {arm} | {len(used)} | "
                             + " | ".join(cov("inside", k) for k in KINDS) + f" | {excess} | "
                             + " | ".join(cov("outside", k) for k in KINDS) + f" | {widths('inside')} | "
                             f"{widths('outside')} |")
        lines.append("")
    return lines


# The study drivers' check (--interval_replicates) --------------------------------------------
STUDY_PROTOCOL = ("eta", "theta", "y_tot", "seeds", "epochs", "pretrain_epochs", "pretrain_size", "width", "depth",
                  "activation", "learning_rate", "batch_size", "synthetic_noise")
SECTION = "## Calibrated intervals, one data set per replicate"
FOLDS = 5


def study_checks(config, run_dir: Path, options, processes, replicates: int, report=print) -> list[str]:
    """The study run's own check of `tlkeras fit`'s intervals: for every real system and volume of
    `config`, `replicates` data sets (the run's noise, small and big domains), each fitted with the
    run's protocol (5 folds) and scored (`check_replicate`). Records in
    `<run>/intervals/checks.jsonl` (a resumed run skips those done); returns the markdown section
    the driver adds to results.md."""
    import json

    from tlkeras.systems.mechanistic import system_function

    work = Path(run_dir) / "intervals"
    work.mkdir(parents=True, exist_ok=True)
    path = work / "checks.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []
    done = {(r["system"], r["volume"], r["replicate"]) for r in records}
    protocol = {name: getattr(config, name) for name in STUDY_PROTOCOL} | dict(folds=FOLDS, fold_kind="random")
    if options.cache_dir is None:  # --cache=false: the replicates still share one pretraining, the run's own
        options = dataclasses.replace(options, cache_dir=work / "cache")
    systems = config.system_names()
    for system in systems:
        truth = system_function(system, config.system_params)
        for volume in config.volumes:
            for replicate in range(replicates):
                if (system, volume, replicate) in done:
                    continue
                record = check_replicate(truth, system, config.simple_system, config.input_dimension,
                                         config.big_domain, config.small_domain, volume, replicate, work, options,
                                         processes, noise=config.real_noise, builtin_simple=True, protocol=protocol)
                records.append(record)
                with path.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")
                at = record["arms"].get(TRANSFER_ARM, {}).get("readings", {}).get("outside", {}).get("calibrated")
                report(f"intervals: {system} N={volume} data set {replicate + 1} of {replicates} fitted and scored"
                       + (f" (transfer's 90% covers {at['coverage']['90']:.0%} of fresh readings outside)" if at else ""))
    return [SECTION, "",
            "Each data set: N readings of the real system on the small domain, fitted as `tlkeras fit` does (the run's",
            f"protocol, {len(config.seeds)} seeds, {FOLDS} random folds) and its intervals scored over the big domain",
            "(`tlkeras.fit.interval_check`; docs/intervals.md). Records: `intervals/checks.jsonl`.", "",
            *summary_markdown(records, order=systems)]


def with_section(text: str, section: list[str]) -> str:
    """results.md's text with the check's section in place of an earlier one (a resumed run's)."""
    kept = text.split("\n" + SECTION, 1)[0].rstrip("\n")
    return kept + "\n\n" + "\n".join(section) + "\n"
