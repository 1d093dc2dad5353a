"""Experiment 4's report: how much real data each design method saves, with intervals.

Per system and arm, each method's labs give an L1 curve over the lab's measurements N (its
ensemble mean's L1 on the big domain after each round; round 0 is the same for every method).
Reported in results.json / results.md / results.csv and a figure:

- L1 against N per method, the mean over labs with its Student-t 95% interval;
- the saving against uniform at equal L1, 1 - N_method / N_uniform, where N_uniform is the
  measurements uniform sampling needs to reach the method's L1 at N (log-linear between rounds;
  beyond the last round a bound, marked), with a bootstrap 95% interval over labs
  (`statistics.saving_estimates`: labs resampled as units, so methods stay paired); the same
  against space_filling;
- the baseline arm (no simple model) for the labs of the methods that need no ensemble;
- a paired Wilcoxon test against uniform at every N (the same labs, starting pairs, noise and
  initial weights);
- TensorBoard: per system, arm and method a run with N as the step, and per system the picks of
  lab 0 after each round as images.

The best method is the one with the largest mean saving against uniform at the last round over
the systems of the transfer arm; it "beats the noise" where the saving's interval lies above 0
against both uniform and space_filling.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from tlkeras.core.config import StudyConfig
from tlkeras.design.methods import MODEL_FREE
from tlkeras.results import plots, statistics, tracking
from tlkeras.results.evaluation import EvaluationSet, summarize
from tlkeras.runtime import interrupts
from tlkeras.storage.persistence import json_text
from tlkeras.storage.rundir import RunDir
from tlkeras.systems import design_sets
from tlkeras.systems.design_sets import START

REFERENCES = MODEL_FREE
COLUMNS = ["system", "arm", "method", "replicate", "volume", "l1", "l1_inside", "l1_outside", "member_l1", "members"]


def curves(rows: list[dict], system: str, arm: str, method: str, volumes: list[int], replicates: int,
           metric: str = "l1") -> np.ndarray:
    """[labs, volumes] of `metric` (nan where a lab has no score yet)."""
    table = np.full((replicates, len(volumes)), math.nan)
    for row in rows:
        if (row["system"], row["arm"], row["method"]) == (system, arm, method) and row["volume"] in volumes:
            table[row["replicate"], volumes.index(row["volume"])] = row[metric]
    return table


def summarize_design(plan: StudyConfig, rows: list[dict]) -> dict:
    """Per system and arm: every method's curve, savings and tests (see the module doc). The
    reference methods' curves in the transfer arms run on to `design_reference_volumes`."""
    volumes = list(plan.volumes)
    longer = volumes + list(plan.design_reference_volumes)
    out: dict = {}
    for system in plan.system_names():
        for arm in plan.trained_arms():
            # The baseline arm trains the labs of the methods that need no ensemble only.
            methods = [m for m in plan.design_methods if arm != "baseline" or m in REFERENCES]
            grids = {m: longer if m in REFERENCES and arm != "baseline" and plan.design_reference_volumes else volumes
                     for m in methods}
            tables = {m: curves(rows, system, arm, m, grids[m], plan.design_replicates) for m in methods}
            if not tables or any(np.isnan(t).any() for t in tables.values()):
                continue
            cell: dict = {}
            for method, table in tables.items():
                stats = [summarize(table[:, k]) for k in range(len(grids[method]))]
                entry: dict = dict(volumes=grids[method], mean=[s.mean for s in stats], low=[s.ci_low for s in stats],
                                   high=[s.ci_high for s in stats])
                for part in ("l1_inside", "l1_outside"):
                    last = curves(rows, system, arm, method, volumes, plan.design_replicates, part)[:, -1]
                    entry[f"{part}_last"] = float(np.mean(last))
                main = table[:, : len(volumes)]
                for reference in REFERENCES:
                    if reference in tables and reference != method:
                        estimates = statistics.saving_estimates(volumes, main, tables[reference], grids[reference])
                        entry[f"saving_vs_{reference}"] = {str(v): estimates[v].as_dict() for v in volumes[1:]}
                if "uniform" in tables and method != "uniform":
                    entry["wilcoxon_vs_uniform"] = {str(v): statistics.paired_test(main[:, k], tables["uniform"][:, k])
                                                    for k, v in enumerate(volumes) if k > 0}
                cell[method] = entry
            out.setdefault(system, {})[arm] = cell
    return out


def best_method(plan: StudyConfig, summary: dict) -> dict:
    """The method with the largest mean saving against uniform at the last round over the
    systems (the picking arm), and whether it beats uniform and space_filling beyond the noise
    (interval above 0) on every system."""
    arm = plan.strategy_arms()[0]
    last = str(plan.volumes[-1])
    scores = {}
    for method in plan.design_methods:
        if method == "uniform":
            continue
        savings, clear = [], True
        for system in summary:
            entry = summary[system].get(arm, {}).get(method)
            if entry is None or "saving_vs_uniform" not in entry:
                clear = False
                continue
            saving = entry["saving_vs_uniform"][last]
            savings.append(saving["value"])
            for reference in REFERENCES:
                key = f"saving_vs_{reference}"
                if reference != method and (key not in entry or not entry[key][last]["ci95"][0] > 0):
                    clear = False
        if savings:
            scores[method] = dict(mean_saving_vs_uniform=float(np.mean(savings)), beats_noise_everywhere=clear)
    if not scores:
        return dict(method=None, scores=scores)
    method = max(scores, key=lambda m: scores[m]["mean_saving_vs_uniform"])
    return dict(method=method, scores=scores)


def write_report(run_dir: RunDir, plan: StudyConfig, rows: list[dict], scoring: EvaluationSet, timing: dict,
                 sessions: list[dict]) -> dict:
    """results.csv, results.json, results.md, the figures and the TensorBoard runs."""
    summary = summarize_design(plan, rows)
    best = best_method(plan, summary)
    results = dict(experiment="exp4", volumes=list(plan.volumes), reference_volumes=list(plan.design_reference_volumes),
                   methods=list(plan.design_methods),
                   replicates=plan.design_replicates, ensemble=len(plan.seeds), region=plan.design_region,
                   picking_arm=plan.strategy_arms()[0], summary=summary, best=best, timing=timing,
                   sessions=len(sessions))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    run_dir.staging.write_text(run_dir.path / "results.csv", buffer.getvalue())
    drawn: dict[str, Path] = {}

    def draw(folder: Path) -> None:
        drawn["l1_by_volume"] = plots.plot_design_curves(folder / "l1_by_volume.png", summary, title=_title(plan))
        for system in plan.system_names():
            for k in range(1, len(plan.volumes)):
                points = {m: _lab_points(run_dir, system, m, k) for m in plan.design_methods}
                drawn[f"picks_{system}_round{k}"] = plots.plot_design_picks(
                    folder / f"picks_{system}_round{k}.png", _box(plan, plan.big_box), _box(plan, plan.design_box),
                    plan.volumes, points, f"{system}: lab 0's measurements after round {k} (N={plan.volumes[k]})")

    run_dir.staging.write_folder(run_dir.figures, draw)
    interrupts.check()
    run_dir.staging.write_folder(run_dir.tensorboard, lambda folder: _tensorboard(folder, plan, summary, run_dir))
    run_dir.staging.write_text(run_dir.path / "results.json", json_text(results))
    run_dir.staging.write_text(run_dir.path / "results.md", markdown(plan, summary, best, run_dir))
    return results


def _improves(curve: list[float]) -> bool:
    """Whether a reference curve ends below where it started (a saving read on it means something)."""
    return len(curve) > 1 and curve[-1] < curve[0]


def _title(plan: StudyConfig) -> str:
    return (f"Experiment 4: {plan.design_replicates} labs per method, ensembles of {len(plan.seeds)}, "
            f"measuring in the {plan.design_region} domain")


def _box(plan: StudyConfig, domain) -> np.ndarray:
    return np.stack(domain.bounds(plan.input_dimension), axis=1)


def _lab_points(run_dir: RunDir, system: str, method: str, k: int) -> np.ndarray:
    name = design_sets.set_name(system, method if k else START, 0)
    return np.load(RunDir(run_dir.path / f"round{k}").design_path(name))


def _tensorboard(folder: Path, plan: StudyConfig, summary: dict, run_dir: RunDir) -> None:
    for system, by_arm in summary.items():
        for arm, by_method in by_arm.items():
            for method, entry in by_method.items():
                points = {f"exp4/{system}/l1_ensemble_mean": list(zip(entry["volumes"], entry["mean"]))}
                for reference in REFERENCES:
                    savings = entry.get(f"saving_vs_{reference}")
                    if savings:
                        points[f"exp4/{system}/saving_vs_{reference}"] = [
                            (int(v), s["value"]) for v, s in savings.items() if not math.isnan(s["value"])]
                tracking.write_scalar_points(folder / system / arm / method, points)
        figures = {f"picks_round{k}": run_dir.figures / f"picks_{system}_round{k}.png"
                   for k in range(1, len(plan.volumes))}
        tracking.write_figures(folder / system / "picks", figures)


def markdown(plan: StudyConfig, summary: dict, best: dict, run_dir: RunDir) -> str:
    volumes = list(plan.volumes)
    arm = plan.strategy_arms()[0]
    lines = [*run_dir.preset_note(), "# Experiment 4: where to measure next", "",
             f"{plan.design_replicates} simulated labs per method and system; each starts from {volumes[0]} uniform "
             f"pairs in the {plan.design_region} domain and adds {', '.join(str(b - a) for a, b in zip(volumes, volumes[1:]))} "
             f"pairs per round, picked by each method with its `{arm}` ensemble of {len(plan.seeds)} members. "
             "Scored after every round by the ensemble mean's L1 on the big domain; every method's labs share "
             "their starting pairs, noise, pretrained models and initial weights (paired).", "",
             "Saving at equal L1: 1 - N_method / N_reference, N_reference the measurements the reference method "
             "needs for the same L1 (log-linear between rounds; `>=` / `<=`: a bound, the reference never / already "
             "got there); [bootstrap 95% interval over labs]. Wilcoxon: paired, two-sided, against uniform.", ""]
    chosen = best.get("method")
    if chosen:
        score = best["scores"][chosen]
        verdict = ("beats uniform and space_filling beyond the noise on every system" if score["beats_noise_everywhere"]
                   else "does **not** beat both uniform and space_filling beyond the noise on every system")
        lines += [f"**Best method** (largest mean saving against uniform at N={volumes[-1]}, `{arm}` arm): "
                  f"`{chosen}`, {100 * score['mean_saving_vs_uniform']:.0f}% on average; it {verdict}.", ""]
    for system, by_arm in summary.items():
        for arm_name, by_method in by_arm.items():
            lines += [f"## {system}, {arm_name}", "", "| method | " + " | ".join(f"L1 at N={v}" for v in volumes)
                      + f" | inside / outside at N={volumes[-1]} | saving vs uniform | saving vs space_filling "
                      f"| Wilcoxon p vs uniform (better in) |",
                      "|---" * (len(volumes) + 5) + "|"]
            for method, entry in by_method.items():
                cells = [f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
                         for m, lo, hi in list(zip(entry["mean"], entry["low"], entry["high"]))[: len(volumes)]]
                savings = []
                for reference in REFERENCES:
                    value = entry.get(f"saving_vs_{reference}", {}).get(str(volumes[-1]))
                    savings.append(statistics.Estimate(value["value"], *value["ci95"], value["bound"]).text(percent=True)
                                   if value else "-")
                test = entry.get("wilcoxon_vs_uniform", {}).get(str(volumes[-1]))
                tested = "-" if not test else (f"{test['p_value']:.3g} ({test.get('first_better', 0)}/{test['seeds']})"
                                               if not math.isnan(test["p_value"]) else "n/a")
                lines.append(f"| {method} | " + " | ".join(cells) + f" | {entry['l1_inside_last']:.3f} / "
                             f"{entry['l1_outside_last']:.3f} | {savings[0]} | {savings[1]} | {tested} |")
            later = [(m, e) for m, e in by_method.items() if len(e["volumes"]) > len(volumes)]
            if later:
                lines += ["", "Further rounds of the reference methods (so that a saving can be read against them): "
                          + "; ".join(f"{m}: " + ", ".join(f"L1 {v:.3f} at N={n}" for n, v in
                                                          list(zip(e["volumes"], e["mean"]))[len(volumes):])
                                      for m, e in later) + "."]
            flat = [m for m, e in by_method.items() if m in REFERENCES and not _improves(e["mean"])]
            if flat:
                lines += ["", f"**{' and '.join(flat)} did not improve with more measurements here** (its last L1 is "
                          "not below its first): a saving against it is not readable (the reference never reaches "
                          "the others' L1, or reached it by noise early); read the paired tests instead."]
            lines.append("")
    lines += ["Figures: `figures/l1_by_volume.png`, `figures/picks_<system>_round<k>.png`. Per lab and round: "
              "`results.csv`. Browse: `tensorboard --logdir " + str(run_dir.tensorboard) + "`.", ""]
    return "\n".join(lines)
