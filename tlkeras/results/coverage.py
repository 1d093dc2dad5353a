"""Is the ensemble's spread honest? Coverage of the noise-free truth by mean ± 2 sd across seeds.

For every arm, system and volume of a study run, the members' (one per seed) predictions on the
fixed evaluation points (recorded by the worker from the saved model); the ensemble mean ± 2 sample
sd across seeds covers the truth f(x) at a share of the (point, output) pairs. Reported inside the
small domain (where the real data lies) and outside it (extrapolation), with every seed of the run
and, when the run has more, with its first 5 seeds: the spread of a 5-member ensemble is what a
default `tlkeras fit` gives. Well-calibrated ±2 sd intervals cover about 95%.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from tlkeras.storage.persistence import load_model

SMALL_ENSEMBLE = 5


def coverage_rows(run_path, records: list[dict], x: np.ndarray, truth: dict[str, np.ndarray],
                  inside: np.ndarray) -> list[dict]:
    """One row per (arm, system, volume, ensemble size) with at least 2 seeds and a known truth."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for record in records:
        if record["arm"] != "pretrain" and record["system"] in truth:
            groups[(record["arm"], record["system"], record["volume"])].append(record)
    rows = []
    for (arm, system, volume), group in sorted(groups.items()):
        group.sort(key=lambda r: r["seed"])
        if len(group) < 2:
            continue
        predictions = np.stack([saved_predictions(run_path, r, x) for r in group])
        sizes = sorted({len(group)} | ({SMALL_ENSEMBLE} if len(group) > SMALL_ENSEMBLE else set()))
        for size in sizes:
            rows.append(dict(arm=arm, system=system, volume=volume, seeds=size,
                             **coverage(predictions[:size], truth[system], inside)))
    return rows


def saved_predictions(run_path, record: dict, x: np.ndarray) -> np.ndarray:
    """A member's predictions on the evaluation points x: as its worker recorded them from the
    saved model, or (records of runs before they were kept) from its reloaded `.keras` file."""
    if "eval_predictions" in record:
        return np.asarray(record["eval_predictions"], np.float64)
    return np.asarray(load_model(run_path / record["model"])(x.astype(np.float32), training=False), np.float64)


def coverage(predictions: np.ndarray, truth: np.ndarray, inside: np.ndarray) -> dict:
    """Share of (point, output) pairs with |mean - truth| <= 2 sd, inside and outside, and the
    mean sd and mean |error| there (how wide the band is next to how wrong the mean is)."""
    mean = predictions.mean(axis=0)
    sd = predictions.std(axis=0, ddof=1)
    error = np.abs(mean - truth)
    covered = error <= 2 * sd
    # The ensemble as one model (its mean prediction), beside the mean of its members' own L1.
    result = {"ensemble_l1": float(error.mean()),
              "member_l1_mean": float(np.abs(predictions - truth[None]).mean(axis=(1, 2)).mean())}
    for where, mask in (("inside", inside), ("outside", ~inside)):
        if mask.any():
            result.update({f"coverage_{where}": float(covered[mask].mean()),
                           f"sd_{where}": float(sd[mask].mean()), f"error_{where}": float(error[mask].mean())})
        else:
            result.update({f"coverage_{where}": float("nan"), f"sd_{where}": float("nan"),
                           f"error_{where}": float("nan")})
    return result


def markdown(rows: list[dict]) -> str:
    lines = ["| arm | system | N | seeds | L1 of the ensemble mean | mean L1 of its members | coverage inside | "
             "coverage outside | sd / abs error inside | sd / abs error outside |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['arm']} | {r['system']} | {r['volume']} | {r['seeds']} | {r['ensemble_l1']:.4f} | "
                     f"{r['member_l1_mean']:.4f} | {r['coverage_inside']:.0%} | {r['coverage_outside']:.0%} | "
                     f"{r['sd_inside']:.3f} / {r['error_inside']:.3f} | {r['sd_outside']:.3f} / {r['error_outside']:.3f} |")
    return "\n".join(lines)
