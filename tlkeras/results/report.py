"""Results of a finished sweep: tables (JSON, CSV, Markdown), figures, and the study's claims.

Everything here reads the member records and model files in the run directory, so a report can
be rebuilt from a run directory alone (`write_report`).
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from tlkeras.core.config import StudyConfig
from tlkeras.core.vocabulary import TRANSFER_ARM, TRANSFER_STRATEGIES
from tlkeras.results import coverage, evaluation, headline, plots, tracking
from tlkeras.results.evaluation import EvaluationSet
from tlkeras.runtime import faults, interrupts
from tlkeras.storage.persistence import load_model
from tlkeras.storage.rundir import RunDir
from tlkeras.systems.mechanistic import system_function

# fine_tune_all's arm is "transfer"; then the other strategies, as config.TRANSFER_STRATEGIES lists them.
ARM_ORDER = (TRANSFER_ARM, *TRANSFER_STRATEGIES[1:], "baseline", "oracle", "pretrain")
CSV_FIELDS = ("arm", "system", "volume", "seed", "l1_mean", "l1_var", "l1_inside", "l1_outside",
              "final_train_loss", "epochs", "train_seconds", "cached", "model")


def summarize_records(records: list[dict]) -> list[dict]:
    """One row per (arm, system, volume): the across-seed summary of each L1 metric."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in records:
        groups[(record["arm"], record["system"], record["volume"])].append(record)
    rows = []
    for (arm, system, volume), group in groups.items():
        group = sorted(group, key=lambda r: r["seed"])
        l1 = evaluation.summarize(r["l1_mean"] for r in group)
        rows.append(dict(
            arm=arm, system=system, volume=volume, seeds=[r["seed"] for r in group],
            l1_mean=l1.mean, l1_std=l1.std, l1_ci95=[l1.ci_low, l1.ci_high],
            l1_var_mean=float(np.mean([r["l1_var"] for r in group])),
            l1_inside=evaluation.summarize(r["l1_inside"] for r in group).mean,
            l1_outside=evaluation.summarize(r["l1_outside"] for r in group).mean,
            per_seed=[r["l1_mean"] for r in group],
        ))
    rows.sort(key=lambda r: (ARM_ORDER.index(r["arm"]), r["system"], r["volume"]))
    return rows


def _row(summary: list[dict], arm: str, system: str, volume: int | None = None) -> dict | None:
    for row in summary:
        if row["arm"] == arm and row["system"] == system and (volume is None or row["volume"] == volume):
            return row
    return None


def check_claims(config: StudyConfig, summary: list[dict]) -> list[str]:
    """The study's claims (PROTOCOL.md), each as measured here: one line per check."""
    lines = []
    systems = config.system_names()
    for system in systems:
        pairs = [(v, _row(summary, TRANSFER_ARM, system, v), _row(summary, "baseline", system, v))
                 for v in config.volumes]
        pairs = [(v, t, b) for v, t, b in pairs if t and b]
        if pairs:
            better = [v for v, t, b in pairs if t["l1_mean"] <= b["l1_mean"]]
            steadier = [v for v, t, b in pairs if t["l1_std"] < b["l1_std"]]
            lines.append(
                f"1. {system}: transfer L1 <= baseline at {len(better)}/{len(pairs)} volumes "
                f"({_list(better)}); lower spread across seeds at {len(steadier)}/{len(pairs)} "
                f"({_list(steadier)})."
            )
            if len(pairs) > 1:
                gaps = [b["l1_mean"] - t["l1_mean"] for _, t, b in pairs]
                grows = all(later >= earlier for earlier, later in zip(gaps, gaps[1:]))
                lines.append(
                    f"2. {system}: baseline minus transfer L1 by volume: "
                    f"{', '.join(f'{v}: {g:+.3f}' for (v, _, _), g in zip(pairs, gaps))} -> "
                    f"{'grows with N' if grows else 'does not grow monotonically with N'}."
                )
        oracle = _row(summary, "oracle", system)
        transfers = [(v, _row(summary, TRANSFER_ARM, system, v)) for v in config.volumes]
        transfers = [(v, t) for v, t in transfers if t]
        if oracle and transfers:
            within = [v for v, t in transfers if t["l1_mean"] <= 1.25 * oracle["l1_mean"]]
            lines.append(
                f"3. {system}: oracle L1 {oracle['l1_mean']:.3f} on {config.oracle_size} pairs; "
                f"transfer within 25% of it at N = {_list(within)}."
            )
    transfer_means = [(s, _row(summary, TRANSFER_ARM, s, config.volumes[-1])) for s in systems]
    transfer_means = [(s, r["l1_mean"]) for s, r in transfer_means if r]
    if len(transfer_means) > 1:
        values = [m for _, m in transfer_means]
        lines.append(
            f"4. transfer L1 across systems at N = {config.volumes[-1]}: "
            f"{', '.join(f'{s}: {m:.3f}' for s, m in transfer_means)} "
            f"(max/min = {max(values) / min(values):.2f})."
        )
    return lines


def _list(values) -> str:
    return ", ".join(str(v) for v in values) if values else "none"


def _fmt(value: float) -> str:
    return "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def markdown_table(summary: list[dict]) -> str:
    lines = [
        "| arm | system | N | seeds | L1 mean | sd | 95% CI | L1 var (mean) | L1 inside | L1 outside | L1 per seed |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary:
        lines.append(
            f"| {r['arm']} | {r['system']} | {r['volume']} | {len(r['seeds'])} | {_fmt(r['l1_mean'])} | "
            f"{_fmt(r['l1_std'])} | [{_fmt(r['l1_ci95'][0])}, {_fmt(r['l1_ci95'][1])}] | "
            f"{_fmt(r['l1_var_mean'])} | {_fmt(r['l1_inside'])} | {_fmt(r['l1_outside'])} | "
            f"{', '.join(_fmt(v) for v in r['per_seed'])} |"
        )
    return "\n".join(lines)


def members_csv(records: list[dict]) -> str:
    stream = io.StringIO()
    writer = csv.DictWriter(stream, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for record in sorted(records, key=lambda r: (ARM_ORDER.index(r["arm"]), r["system"], r["volume"], r["seed"])):
        writer.writerow(record)
    return stream.getvalue()


def make_figures(run_dir: RunDir, config: StudyConfig, summary: list[dict], folder: Path) -> dict[str, Path]:
    """The study's three figures for this run, drawn into `folder`; returns {tag: png path}."""
    figures: dict[str, Path] = {}
    systems = config.system_names()
    focus_volume = min(config.volumes, key=lambda v: abs(math.log(v / 1000)))

    def bars(rows: list[dict | None]) -> tuple[list[float], list[float]] | None:
        if not rows or not all(rows):
            return None
        return [r["l1_mean"] for r in rows], [r["l1_std"] for r in rows]

    for system in systems:
        oracle = _row(summary, "oracle", system)
        by_volume = {
            arm: bars([_row(summary, arm, system, v) for v in config.volumes])
            for arm in (TRANSFER_ARM, "baseline")
        }
        by_volume = {arm: value for arm, value in by_volume.items() if value}
        if by_volume:
            figures[f"l1_by_volume_{system}"] = plots.plot_by_volume(
                folder / f"fig4_l1_by_volume_{system}.png", config.volumes, by_volume,
                (oracle["l1_mean"], oracle["l1_std"]) if oracle else None,
                f"{system}: L1 by real-data volume (oracle: {config.oracle_size} pairs)",
            )
    by_system = {
        arm: bars([_row(summary, arm, s, None if arm == "oracle" else focus_volume) for s in systems])
        for arm in (TRANSFER_ARM, "baseline", "oracle")
    }
    by_system = {arm: value for arm, value in by_system.items() if value}
    if by_system:
        figures[f"l1_by_system_n{focus_volume}"] = plots.plot_by_system(
            folder / f"fig5_l1_by_system_n{focus_volume}.png", systems, by_system,
            f"L1 by real system (transfer and baseline at N = {focus_volume})",
        )
    interrupts.check()
    figures.update(_surface_figures(run_dir, config, systems, focus_volume, folder))
    return figures


def strategy_figures(config: StudyConfig, headline_rows: list[dict], records: list[dict], folder: Path) -> dict[str, Path]:
    """Per system: L1 against N for every strategy and the baseline (plots.plot_strategies)."""
    figures: dict[str, Path] = {}
    volumes = sorted(config.volumes)
    if len(volumes) < 2:
        return figures
    for system in config.system_names():
        rows = [row for row in headline_rows if row["system"] == system]
        if not rows:
            continue
        curves = {}
        for arm in [*(row["arm"] for row in rows), "baseline"]:
            by_volume = [[r["l1_mean"] for r in records if (r["arm"], r["system"], r["volume"]) == (arm, system, v)]
                         for v in volumes]
            if not all(by_volume):
                continue
            intervals = [evaluation.summarize(values) for values in by_volume]
            ensemble = None
            if arm == "baseline":
                ensemble = [rows[0].get("baseline_ensemble_l1", {}).get(v) for v in volumes]
            else:
                row = next(r for r in rows if r["arm"] == arm)
                ensemble = [row.get("ensemble_l1", {}).get(v) for v in volumes]
            curves["fine_tune_all" if arm == TRANSFER_ARM else arm] = dict(
                mean=[i.mean for i in intervals], low=[i.ci_low if math.isfinite(i.ci_low) else i.mean for i in intervals],
                high=[i.ci_high if math.isfinite(i.ci_high) else i.mean for i in intervals],
                ensemble=None if any(e is None for e in ensemble) else ensemble)
        oracle = [r["l1_mean"] for r in records if r["arm"] == "oracle" and r["system"] == system]
        oracle_line = (float(np.mean(oracle)), float(np.std(oracle, ddof=1)) if len(oracle) > 1 else 0.0) if oracle else None
        figures[f"strategies_{system}"] = plots.plot_strategies(
            folder / f"fig6_strategies_{system}.png", volumes, curves, oracle_line,
            f"{system}: L1 against real-data volume N per strategy ({len(rows[0]['seeds'])} seeds)")
    return figures


def _surface_figures(run_dir: RunDir, config: StudyConfig, systems, volume, folder: Path) -> dict[str, Path]:
    from tlkeras.core.members import Member  # local: training pulls in the engine

    if config.input_dimension != 2:
        return {}  # surfaces are drawn for two inputs only
    low, high = config.big_box.bounds(2)
    small_low, small_high = config.small_box.bounds(2)
    axes = [np.linspace(low[i], high[i], 61) for i in range(2)]
    grid_x1, grid_x2 = np.meshgrid(*axes)
    grid = np.stack([grid_x1, grid_x2], axis=-1).reshape(-1, 2)
    seed = config.seeds[0]
    figures = {}
    for system in systems:
        truth = np.asarray(system_function(config.reference(system), config.system_params)(grid))
        learned = {}
        for arm in (TRANSFER_ARM, "baseline", "oracle"):
            size = config.oracle_size if arm == "oracle" else volume
            path = run_dir.model_path(Member(arm, system, size, seed))
            if path.exists():
                model = load_model(path)
                learned[f"{arm} (seed {seed})"] = np.asarray(model(grid.astype(np.float32))).reshape(61, 61, -1)
        if learned:
            figures[f"surfaces_{system}"] = plots.plot_surfaces(
                folder / f"fig3_surfaces_{system}.png", axes, truth.reshape(61, 61, -1), learned,
                (small_low[0], small_high[0], small_low[1], small_high[1]), f"{system}: true vs learned outputs (N = {volume}; "
                "dashed: the small domain of the real data)",
            )
    return figures


def write_report(run_dir: RunDir, config: StudyConfig, records: list[dict], timing: dict,
                 sessions: list[dict] | None = None) -> dict:
    """results.json, results.csv, results.md, the figures (PNG and TensorBoard images)."""
    scored = [r for r in records if r["arm"] != "pretrain"]
    summary = summarize_records(scored)
    claims = check_claims(config, summary)
    evaluation_set = EvaluationSet(config)
    inside = int(evaluation_set.inside.sum())
    calibration = coverage.coverage_rows(run_dir.path, scored, evaluation_set.x, evaluation_set.truth,
                                         evaluation_set.inside)
    largest = {}
    for row in calibration:  # the ensemble of every seed of the cell
        key = (row["arm"], row["system"], row["volume"])
        if row["seeds"] >= largest.get(key, {"seeds": 0})["seeds"]:
            largest[key] = row
    ensemble_l1 = {key: row["ensemble_l1"] for key, row in largest.items()}
    headline_rows = headline.headline(config, scored, ensemble_l1)
    for row in headline_rows:
        row["baseline_ensemble_l1"] = {v: ensemble_l1.get(("baseline", row["system"], v)) for v in row["volumes"]}
    drawn: dict[str, Path] = {}
    faults.point("report.figures")

    def draw(folder: Path) -> None:
        drawn.update(make_figures(run_dir, config, summary, folder))
        drawn.update(strategy_figures(config, headline_rows, scored, folder))

    run_dir.staging.write_folder(run_dir.figures, draw)
    figures = {tag: run_dir.figures / path.name for tag, path in drawn.items()}
    interrupts.check()
    run_dir.staging.write_folder(run_dir.tensorboard / "figures",
                                 lambda folder: tracking.write_figures(folder, figures))
    if len(config.volumes) >= 2:  # L1 against N as TensorBoard scalars: one run per arm, system, seed
        run_dir.staging.write_folder(run_dir.tensorboard / "by_volume",
                                     lambda folder: tracking.write_volume_runs(folder, scored))
    faults.point("report.tables")
    interrupts.check()  # the last safe point: a Ctrl-C after it finds the run finished
    results = dict(
        summary=summary, claims=claims, timing=timing, coverage=calibration,
        members=[{k: v for k, v in r.items() if k != "eval_predictions"} for r in records],  # in cells/
        headline=headline_rows,
        evaluation=dict(points=config.eval_points, inside_small_domain=inside, seed=config.eval_seed),
        figures={tag: str(path.relative_to(run_dir.path)) for tag, path in figures.items()},
        environment=sessions or [],
    )
    run_dir.staging.write_json(run_dir.path / "results.json", results)
    run_dir.staging.write_text(run_dir.path / "results.csv", members_csv(records))
    pretrain = summarize_records([r for r in records if r["arm"] == "pretrain"])
    ensemble_note = ensemble_data_note(config)
    text = [
        f"# Results: {run_dir.path}", "", *run_dir.preset_note(),
        "L1 = mean over the evaluation points of |prediction - f(x)| averaged over outputs, against",
        f"the noise-free real system; {config.eval_points} points uniform on the big domain "
        f"{tuple(config.big_domain)}, {inside} of them inside the small domain {tuple(config.small_domain)}.",
        "Across seeds: mean, sample sd and Student-t 95% interval of the per-model L1 mean.", "",
        markdown_table(summary), "",
        "## The study's claims, as measured", "", *[f"- {line}" for line in claims], "",
        "## How much real data does transfer save?", "", *headline.headline_markdown(headline_rows, ensemble_note), "",
        *[f"![{tag}](figures/{path.name})" for tag, path in figures.items() if tag.startswith("strategies_")], "",
        "## The seeds as one ensemble: its L1, and is its spread honest?", "",
        "L1 of the ensemble mean: the seeds' mean prediction scored as one model (beside the mean of",
        f"the seeds' own L1). {ensemble_note} Coverage: share of (evaluation point, output) pairs where the noise-free",
        "truth lies within the mean ± 2 sample sd of the seeds' predictions; about 95% if the spread",
        "were calibrated. This is not the band `tlkeras fit` writes: its calibrated intervals, on one data set per",
        "replicate, are measured with --interval_replicates (a section below) and in docs/intervals.md.", "",
        coverage.markdown(calibration) if calibration else "(needs at least 2 seeds)", "",
        "## Pretraining (L1 against the simple system itself)", "", markdown_table(pretrain), "",
        "## Time", "", *[f"- {k}: {v:.1f} s" if isinstance(v, float) else f"- {k}: {v}" for k, v in timing.items()],
        "", "## Machine and software (bit-identical reruns need the same; see BUILD.md)", "",
        *[f"- session {i + 1}, {s['started']}: {s['cpu']} ({s['machine']}, {s['cpu_count']} cores; "
          f"{' '.join(s['cpu_flags'])}); Python {s['python']}, TensorFlow {s['tensorflow']}, Keras {s['keras']}, "
          f"NumPy {s['numpy']}" + (f"; {s['environment']}" if s["environment"] else "")
          for i, s in enumerate(sessions or [])],
        "",
    ]
    run_dir.staging.write_text(run_dir.path / "results.md", "\n".join(text))
    return results


def ensemble_data_note(config: StudyConfig) -> str:
    """What real data a cell's ensemble has seen (see `StudyConfig.real_data_seed`)."""
    if config.real_data_seed is None:
        return (f"Each seed drew its own N real pairs, so an ensemble of a cell has seen {len(config.seeds)} x N "
                "distinct pairs: set against one model trained on that many, not on N (--real_data_seed=k trains "
                "every seed on seed k's N pairs).")
    return (f"Every seed trained on the same N real pairs (those of seed {config.real_data_seed}): an ensemble of a "
            "cell has seen N pairs, as one model has.")
