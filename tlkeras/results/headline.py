"""The headline of a volume sweep, per strategy and system: how much real data it saves against
the baseline at equal L1, how soon it gets within 25% of the oracle, paired tests per volume
against the baseline and against fine_tune_all, each with its uncertainty over seeds; and the same
for the seeds' ensemble taken as one model (the numbers: `statistics.py`; here, a run's tables)."""

from __future__ import annotations

import math

import numpy as np

from tlkeras.core.config import StudyConfig
from tlkeras.core.vocabulary import TRANSFER_ARM
from tlkeras.results import statistics

FINE_TUNE_ALL = TRANSFER_ARM  # fine_tune_all's arm


def headline(config: StudyConfig, records: list[dict], ensemble_l1: dict | None = None) -> list[dict]:
    """One row per (strategy arm, system): the real-data saving against the baseline at equal L1
    and the smallest N within 25% of the oracle, with bootstrap intervals over seeds; paired
    Wilcoxon tests per volume against the baseline and against fine_tune_all; and with
    `ensemble_l1` {(arm, system, volume): L1 of the seeds' mean prediction} the same saving and
    reach of the ensembles (one number each: there is one ensemble per cell). Seeds missing from
    any compared cell are left out."""
    rows = []
    by_key = {(r["arm"], r["system"], r["volume"], r["seed"]): r["l1_mean"] for r in records}
    volumes = sorted(config.volumes)
    for system in config.system_names():
        for arm in config.strategy_arms():
            compared = [arm, "baseline"] + ([FINE_TUNE_ALL] if arm != FINE_TUNE_ALL and FINE_TUNE_ALL
                                            in config.strategy_arms() else [])
            seeds = [s for s in config.seeds if all((a, system, v, s) in by_key for a in compared for v in volumes)]
            if not seeds:
                continue
            l1 = {a: np.array([[by_key[(a, system, v, s)] for v in volumes] for s in seeds]) for a in compared}
            row = dict(arm=arm, system=system, seeds=seeds, volumes=volumes,
                       l1=[dict(volume=v, mean=float(l1[arm][:, i].mean()),
                                sd=float(l1[arm][:, i].std(ddof=1)) if len(seeds) > 1 else math.nan)
                           for i, v in enumerate(volumes)],
                       tests=[dict(volume=v, **statistics.paired_test(l1[arm][:, i], l1["baseline"][:, i]))
                              for i, v in enumerate(volumes)])
            if FINE_TUNE_ALL in l1 and arm != FINE_TUNE_ALL:
                row["tests_vs_fine_tune_all"] = [dict(volume=v, **statistics.paired_test(
                    l1[arm][:, i], l1[FINE_TUNE_ALL][:, i])) for i, v in enumerate(volumes)]
            if len(volumes) >= 2:
                row["saving"] = {v: e.as_dict() for v, e in
                                 statistics.saving_estimates(volumes, l1[arm], l1["baseline"]).items()}
            oracle_seeds = [s for s in seeds if ("oracle", system, config.oracle_size, s) in by_key]
            if oracle_seeds and len(volumes) >= 2:
                keep = [seeds.index(s) for s in oracle_seeds]
                oracle = np.array([by_key[("oracle", system, config.oracle_size, s)] for s in oracle_seeds])
                row["oracle"] = float(oracle.mean())
                row["oracle_reach"] = {a: statistics.oracle_reach(volumes, l1[a][keep], oracle).as_dict()
                                       for a in (arm, "baseline")}
            if ensemble_l1:
                row.update(_ensemble(ensemble_l1, arm, system, volumes, config.oracle_size))
            rows.append(row)
    return rows


def _ensemble(ensemble_l1: dict, arm: str, system: str, volumes: list[int], oracle_size: int) -> dict:
    """The ensemble's L1 per volume, its saving against the baseline's ensemble, its oracle reach."""
    cells = {a: [ensemble_l1.get((a, system, v)) for v in volumes] for a in (arm, "baseline")}
    if any(value is None for values in cells.values() for value in values):
        return {}
    result = dict(ensemble_l1={v: cells[arm][i] for i, v in enumerate(volumes)})
    if len(volumes) >= 2:
        result["ensemble_saving"] = {v: dict(zip(("value", "bound"), statistics.saving(
            volumes, cells[arm], cells["baseline"], v))) for v in volumes}
        oracle = ensemble_l1.get(("oracle", system, oracle_size))
        if oracle is not None:
            result["ensemble_oracle"] = oracle
            result["ensemble_oracle_reach"] = dict(zip(("value", "bound"), statistics.volume_reaching(
                volumes, cells[arm], statistics.WITHIN_ORACLE * oracle)))
    return result


def headline_markdown(rows: list[dict], ensemble_note: str = "") -> list[str]:
    """The headline tables; `ensemble_note` says what real data the ensembles saw."""
    if not rows:
        return ["(needs the baseline arm and a strategy, each at every volume: not in this run)"]
    lines = []
    for system in dict.fromkeys(row["system"] for row in rows):
        group = [row for row in rows if row["system"] == system]
        volumes = group[0]["volumes"]
        head = "| strategy | " + " | ".join(f"N = {v}" for v in volumes)
        rule = "|---|" + "---|" * len(volumes)
        lines += [f"### {system} ({len(group[0]['seeds'])} seeds, paired)", "",
                  "L1 per model (mean ± sd over seeds; the seeds' ensemble as one model in brackets)"
                  + (f". {ensemble_note}" if ensemble_note else ":"), "",
                  head + " |", rule]
        for row in group:
            ensemble = row.get("ensemble_l1", {})
            lines.append(f"| {_name(row['arm'])} | " + " | ".join(
                f"{c['mean']:.3f} ± {c['sd']:.3f}" + (f" ({ensemble[c['volume']]:.3f})" if c["volume"] in ensemble else "")
                for c in row["l1"]) + " |")
        if any("saving" in row for row in group):
            lines += ["", "Real-data saving against the baseline at equal L1 [95% CI]; ensembles in brackets; "
                      "last column: smallest N within 25% of the oracle:", "",
                      head + " | within 25% of oracle |", rule + "---|"]
            for row in group:
                cells = []
                for v in volumes:
                    s = row["saving"][v]
                    text = statistics.Estimate(s["value"], *s["ci95"], s["bound"]).text(percent=True)
                    if "ensemble_saving" in row:
                        e = row["ensemble_saving"][v]
                        text += f" ({e['bound']}{100 * e['value']:.0f}%)"
                    cells.append(text)
                lines.append(f"| {_name(row['arm'])} | " + " | ".join(cells) + f" | {_reach(row)} |")
        for key, against in (("tests", "baseline"), ("tests_vs_fine_tune_all", "fine_tune_all")):
            tested = [row for row in group if key in row]
            if not tested:
                continue
            lines += ["", f"Paired against {against}: median L1 difference, Wilcoxon p, seeds better:", "",
                      head + " |", rule]
            for row in tested:
                lines.append(f"| {_name(row['arm'])} | " + " | ".join(
                    f"{t['median_difference']:+.3f}, p {t['p_value']:.2g}, {t.get('first_better', 0)}/{t['seeds']}"
                    for t in row[key]) + " |")
        lines.append("")
    lines.append("Saving: 1 - N_strategy / N_baseline at equal L1 (log-linear in N between grid volumes); '>=' "
                 "marks a lower bound (the baseline never reaches that L1 on the grid), '<=' an upper bound. "
                 "Intervals: bootstrap over seeds (percentile, 2000 resamples). With n seeds the exact "
                 "two-sided Wilcoxon p cannot go below 2/2^n (0.0625 for 5 seeds). fine_tune_all is the arm "
                 "'transfer'.")
    return lines


def _name(arm: str) -> str:
    return "fine_tune_all" if arm == FINE_TUNE_ALL else arm


def _reach(row: dict) -> str:
    if "oracle_reach" not in row:
        return ""
    reach = row["oracle_reach"][row["arm"]]
    text = statistics.Estimate(reach["value"], *reach["ci95"], reach["bound"]).text()
    if "ensemble_oracle_reach" in row:
        e = row["ensemble_oracle_reach"]
        text += f" ({e['bound']}{e['value']:.4g})"
    return text + f" (baseline {statistics.Estimate(**_plain(row['oracle_reach']['baseline'])).text()})"


def _plain(estimate: dict) -> dict:
    return dict(value=estimate["value"], low=estimate["ci95"][0], high=estimate["ci95"][1], bound=estimate["bound"])
