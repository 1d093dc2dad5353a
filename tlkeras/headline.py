"""The headline of a volume sweep, per system: how much real data transfer saves against the
baseline at equal L1, how soon it gets within 25% of the oracle, and paired tests per volume,
with their uncertainty over seeds (the numbers: `statistics.py`; here, the table of a run)."""

from __future__ import annotations

import math

import numpy as np

from tlkeras import statistics
from tlkeras.config import StudyConfig


def headline(config: StudyConfig, records: list[dict]) -> list[dict]:
    """Per system: transfer's real-data saving against the baseline at equal L1 and its smallest N
    within 25% of the oracle, with bootstrap intervals over seeds, and paired Wilcoxon tests per
    volume (`statistics.py`). Seeds missing from an arm or volume are left out of all of them."""
    rows = []
    by_key = {(r["arm"], r["system"], r["volume"], r["seed"]): r["l1_mean"] for r in records}
    volumes = sorted(config.volumes)
    for system in config.system_names():
        seeds = [s for s in config.seeds if all((arm, system, v, s) in by_key
                                                for arm in ("transfer", "baseline") for v in volumes)]
        if not seeds:
            continue
        transfer = np.array([[by_key[("transfer", system, v, s)] for v in volumes] for s in seeds])
        baseline = np.array([[by_key[("baseline", system, v, s)] for v in volumes] for s in seeds])
        row = dict(system=system, seeds=seeds, volumes=volumes,
                   tests=[dict(volume=v, **statistics.paired_test(transfer[:, i], baseline[:, i]))
                          for i, v in enumerate(volumes)])
        if len(volumes) >= 2:
            row["saving"] = {v: e.as_dict() for v, e in statistics.saving_estimates(volumes, transfer, baseline).items()}
        oracle_seeds = [s for s in seeds if ("oracle", system, config.oracle_size, s) in by_key]
        if oracle_seeds and len(volumes) >= 2:
            keep = [seeds.index(s) for s in oracle_seeds]
            oracle = np.array([by_key[("oracle", system, config.oracle_size, s)] for s in oracle_seeds])
            row["oracle_reach"] = {arm: statistics.oracle_reach(volumes, values[keep], oracle).as_dict()
                                   for arm, values in (("transfer", transfer), ("baseline", baseline))}
        rows.append(row)
    return rows


def headline_markdown(rows: list[dict]) -> list[str]:
    lines = []
    for row in rows:
        lines += [f"### {row['system']} ({len(row['seeds'])} seeds, paired)", ""]
        if "saving" in row:
            lines += ["| transfer at N | baseline N for the same L1 | real-data saving [95% CI] | transfer - baseline "
                      "L1, median | Wilcoxon p | seeds transfer better |", "|---|---|---|---|---|---|"]
        else:
            lines += ["| N | | | transfer - baseline L1, median | Wilcoxon p | seeds transfer better |",
                      "|---|---|---|---|---|---|"]
        for test in row["tests"]:
            volume = test["volume"]
            if "saving" in row:
                s = row["saving"][volume]
                estimate = statistics.Estimate(s["value"], *s["ci95"], s["bound"])
                needed = volume / (1 - s["value"]) if s["value"] < 1 else math.inf
                mark = {">=": ">= ", "<=": "<= "}[s["bound"]] if s["bound"] else ""
                cells = f"| {volume} | {mark}{needed:.0f} | {estimate.text(percent=True)} "
            else:
                cells = f"| {volume} | | "
            lines.append(cells + f"| {test['median_difference']:+.3f} | {test['p_value']:.3g} | "
                         f"{test.get('first_better', 0)}/{test['seeds']} |")
        for arm, reach in row.get("oracle_reach", {}).items():
            estimate = statistics.Estimate(reach["value"], *reach["ci95"], reach["bound"])
            meaning = {"": "", ">=": " (not reached on this grid)", "<=": " (already at the smallest N)"}[reach["bound"]]
            lines.append(f"\nSmallest N with {arm} L1 within 25% of the oracle: {estimate.text()}{meaning}.")
        lines.append("")
    lines.append("Saving: 1 - N_transfer / N_baseline at equal L1 (log-linear in N between grid volumes); '>=' "
                 "marks a lower bound (the baseline never reaches that L1 on the grid), '<=' an upper bound. "
                 "Intervals: bootstrap over seeds (percentile, 2000 resamples). With n seeds the exact "
                 "two-sided Wilcoxon p cannot go below 2/2^n (0.0625 for 5 seeds).")
    return lines
