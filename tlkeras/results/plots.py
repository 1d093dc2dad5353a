"""The study's figures, as PNG files (matplotlib, no screen needed).

- `plot_surfaces` (the study's Figure 3): the true output surfaces next to learned ones;
- `plot_by_volume` (Figure 4): L1 by real-data volume, transfer vs baseline, oracle as reference;
- `plot_by_system` (Figure 5): L1 by real system, transfer vs baseline vs oracle.
Bars are means across seeds; error bars are one standard deviation across seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tlkeras.core.vocabulary import TRANSFER_ARM  # noqa: E402

ARM_COLORS = {TRANSFER_ARM: "tab:blue", "baseline": "tab:orange", "oracle": "tab:green"}


def arm_colors(arms: Sequence[str]) -> dict[str, object]:
    """A colour per arm: transfer, baseline and oracle keep theirs in every figure, the other
    strategies take tab10's remaining colours in order (not grey, kept for reference lines)."""
    others = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i not in (0, 1, 2, 7)]
    extra = [arm for arm in arms if arm not in ARM_COLORS]
    return {arm: ARM_COLORS.get(arm) or others[extra.index(arm) % len(others)] for arm in arms}


def plot_surfaces(
    path: Path,
    grid_axes: Sequence[np.ndarray],
    truth: np.ndarray,
    learned: dict[str, np.ndarray],
    small_box: tuple[float, float, float, float],
    title: str,
) -> Path:
    """Heat maps over the big domain: rows are outputs, columns truth then each learned model.

    `truth` and each `learned` array have shape [len(x2 axis), len(x1 axis), outputs], indexed
    [x2, x1]. The small domain (x1 low, x1 high, x2 low, x2 high; where the real training data
    lives) is outlined.
    """
    columns = {"true system": truth, **learned}
    outputs = truth.shape[-1]
    figure, axes = plt.subplots(outputs, len(columns), figsize=(3.2 * len(columns), 2.9 * outputs),
                                squeeze=False, constrained_layout=True)
    extent = (grid_axes[0][0], grid_axes[0][-1], grid_axes[1][0], grid_axes[1][-1])
    for row in range(outputs):
        low, high = float(truth[..., row].min()), float(truth[..., row].max())
        for col, (label, surface) in enumerate(columns.items()):
            axis = axes[row, col]
            image = axis.imshow(surface[..., row], origin="lower", extent=extent, vmin=low, vmax=high,
                                cmap="viridis", aspect="auto")
            a, b, c, d = small_box
            axis.plot([a, b, b, a, a], [c, c, d, d, c], color="white", linewidth=1, linestyle="--")
            axis.set_title(f"{label}: y{row + 1}", fontsize=9)
            axis.set_xlabel("x1 (nM)", fontsize=8)
            axis.set_ylabel("x2 (nM)", fontsize=8)
        figure.colorbar(image, ax=axes[row, :].tolist(), shrink=0.8)
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def _grouped_bars(
    path: Path,
    groups: Sequence[str],
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    title: str,
    reference: tuple[float, float] | None = None,
) -> Path:
    figure, axis = plt.subplots(figsize=(max(6.0, 1.1 * len(groups) + 2), 4.0), constrained_layout=True)
    positions = np.arange(len(groups))
    width = 0.8 / max(1, len(series))
    for index, (arm, (means, stds)) in enumerate(series.items()):
        axis.bar(positions + (index - (len(series) - 1) / 2) * width, means, width, yerr=stds,
                 capsize=3, label=arm, color=ARM_COLORS.get(arm))
    if reference is not None:
        mean, std = reference
        axis.axhline(mean, color=ARM_COLORS["oracle"], linestyle="--", label="oracle (mean)")
        axis.axhspan(mean - std, mean + std, color=ARM_COLORS["oracle"], alpha=0.15)
    axis.set_xticks(positions, list(groups))
    axis.set_xlabel(xlabel)
    axis.set_ylabel("L1 on the big domain (mean over seeds, ±1 sd)")
    axis.set_title(title, fontsize=10)
    axis.legend()
    axis.grid(axis="y", alpha=0.3)
    return _save(figure, path)


def plot_by_volume(
    path: Path,
    volumes: Sequence[int],
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    oracle: tuple[float, float] | None,
    title: str,
) -> Path:
    """Figure 4: bars per volume for each arm in `series` (means, stds); oracle as a band."""
    return _grouped_bars(path, [str(v) for v in volumes], series, "real data volume N", title, oracle)


def plot_by_system(
    path: Path,
    systems: Sequence[str],
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    title: str,
) -> Path:
    """Figure 5: bars per real system for each arm in `series` (means, stds)."""
    return _grouped_bars(path, list(systems), series, "real system", title)


def plot_slices(
    path: Path,
    slices: dict[int, tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, str]], np.ndarray]],
    inputs: Sequence[str],
    outputs: Sequence[str],
    region: np.ndarray,
    centre: np.ndarray,
    title: str,
) -> Path:
    """A fit along each input: rows are outputs, columns inputs. `slices[i]` = (axis values,
    {arm: (mean, lower, upper, what the band is)}, simple model's outputs), each [points, outputs];
    the measured range of the input is shaded."""
    figure, axes = plt.subplots(len(outputs), len(slices), figsize=(4.2 * len(slices), 3.0 * len(outputs)),
                                squeeze=False, constrained_layout=True)
    for col, (axis_values, by_arm, simple) in slices.items():
        others = ", ".join(f"{n}={c:.3g}" for j, (n, c) in enumerate(zip(inputs, centre)) if j != col)
        others = others if len(inputs) <= 4 else "others at the centre"
        for row, name in enumerate(outputs):
            axis = axes[row, col]
            axis.axvspan(region[col, 0], region[col, 1], color="0.9", label="measured range")
            colors = arm_colors(list(by_arm))
            for arm, (mean, lower, upper, band) in by_arm.items():
                color = colors[arm]
                axis.plot(axis_values, mean[:, row], color=color, label=f"{arm} mean")
                axis.fill_between(axis_values, lower[:, row], upper[:, row], color=color, alpha=0.25,
                                  label=f"{arm} {band}")
            axis.plot(axis_values, simple[:, row], color="0.3", linestyle="--", linewidth=1, label="simple model")
            axis.set_xlabel(f"{inputs[col]}" + (f"  ({others})" if others else ""), fontsize=8)
            axis.set_ylabel(name, fontsize=8)
            axis.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def plot_mean_and_spread(
    path: Path,
    grid_axes: Sequence[np.ndarray],
    mean: np.ndarray,
    sd: np.ndarray,
    region: np.ndarray,
    measured_x: np.ndarray,
    inputs: Sequence[str],
    outputs: Sequence[str],
    title: str,
) -> Path:
    """Two inputs: per output, a map of the ensemble mean and one of its sd ([x2, x1, outputs]),
    the measured region outlined and the measured points dotted."""
    figure, axes = plt.subplots(len(outputs), 2, figsize=(8.4, 3.3 * len(outputs)), squeeze=False,
                                constrained_layout=True)
    extent = (grid_axes[0][0], grid_axes[0][-1], grid_axes[1][0], grid_axes[1][-1])
    (a, b), (c, d) = region[0], region[1]
    for row, name in enumerate(outputs):
        for col, (label, values, cmap) in enumerate((("mean", mean, "viridis"), ("sd across members", sd, "magma"))):
            axis = axes[row, col]
            image = axis.imshow(values[..., row], origin="lower", extent=extent, cmap=cmap, aspect="auto")
            axis.plot([a, b, b, a, a], [c, c, d, d, c], color="white", linewidth=1, linestyle="--")
            axis.scatter(measured_x[:, 0], measured_x[:, 1], s=2, color="white", alpha=0.5)
            axis.set_title(f"{name}: {label}", fontsize=9)
            axis.set_xlabel(inputs[0], fontsize=8)
            axis.set_ylabel(inputs[1], fontsize=8)
            figure.colorbar(image, ax=axis, shrink=0.85)
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def plot_suggestions(path: Path, domain: np.ndarray, region: np.ndarray, measured: np.ndarray, picks: np.ndarray,
                     inputs: Sequence[str], spread_axes: Sequence[np.ndarray] | None, spread: np.ndarray | None,
                     title: str) -> Path:
    """The picks over the domain, numbered in pick order, with the measured points and the region
    a lab can measure (dashed): over the ensemble's spread (sd across members, root mean square
    over outputs in units of each output's spread) along one input or as a map of two; for more
    inputs, one panel per pair of inputs (at most the first six)."""
    d = len(domain)
    if d <= 2:
        figure, axis = plt.subplots(figsize=(6.4, 4.6), constrained_layout=True)
        if d == 1:
            axis.plot(spread_axes[0], spread, color="0.3", linewidth=1.2, label="ensemble spread")
            axis.axvspan(region[0, 0], region[0, 1], color="tab:blue", alpha=0.12, label="where you can measure")
            axis.plot(measured[:, 0], np.zeros(len(measured)), "|", color="0.4", markersize=10, label="measured")
            axis.plot(picks[:, 0], np.zeros(len(picks)), "v", color="tab:red", label="suggested")
            for order, x in enumerate(picks[:, 0], start=1):
                axis.annotate(str(order), (x, 0), textcoords="offset points", xytext=(0, 6), fontsize=7,
                              color="tab:red", ha="center")
            axis.set_xlabel(inputs[0], fontsize=9)
            axis.set_ylabel("ensemble spread", fontsize=9)
            axis.legend(fontsize=7)
        else:
            image = axis.imshow(spread, origin="lower", aspect="auto", cmap="magma", extent=(
                spread_axes[0][0], spread_axes[0][-1], spread_axes[1][0], spread_axes[1][-1]))
            figure.colorbar(image, ax=axis, shrink=0.85, label="ensemble spread")
            _pair_panel(axis, region, measured, picks, 0, 1, inputs, on_dark=True)
        axis.set_title(title, fontsize=9)
        return _save(figure, path)
    shown = min(d, 6)
    pairs = [(i, j) for i in range(shown) for j in range(i + 1, shown)]
    columns = min(3, len(pairs))
    rows = -(-len(pairs) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.2 * rows), squeeze=False,
                                constrained_layout=True)
    for axis, (i, j) in zip(axes.ravel(), pairs):
        _pair_panel(axis, region, measured, picks, i, j, inputs, on_dark=False)
        axis.set_xlim(domain[i]), axis.set_ylim(domain[j])
    for axis in axes.ravel()[len(pairs):]:
        axis.axis("off")
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def _pair_panel(axis, region, measured, picks, i: int, j: int, inputs: Sequence[str], on_dark: bool) -> None:
    (a, b), (c, d) = region[i], region[j]
    axis.plot([a, b, b, a, a], [c, c, d, d, c], color="white" if on_dark else "tab:blue", linewidth=1,
              linestyle="--", label="where you can measure")
    axis.scatter(measured[:, i], measured[:, j], s=4, color="white" if on_dark else "0.5", alpha=0.6, label="measured")
    axis.scatter(picks[:, i], picks[:, j], s=22, marker="x", color="tab:cyan" if on_dark else "tab:red",
                 label="suggested")
    for order, (x, y) in enumerate(picks[:, [i, j]], start=1):
        axis.annotate(str(order), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=6,
                      color="tab:cyan" if on_dark else "tab:red")
    axis.set_xlabel(inputs[i], fontsize=8)
    axis.set_ylabel(inputs[j], fontsize=8)
    axis.legend(fontsize=6, loc="upper right")


def _save(figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_strategies(path: Path, volumes: Sequence[int], curves: dict[str, dict], oracle: tuple[float, float] | None,
                    title: str) -> Path:
    """L1 against the real-data volume N, log-log, as small multiples: the first panel has every
    strategy's mean over seeds; then one panel per strategy with its 95% interval over seeds as a
    band and its seeds' ensemble (one model) dashed, beside fine_tune_all (grey) and the baseline
    (black); the oracle is the green line with its ±1 sd band. `curves[name]`: mean, low, high,
    ensemble (lists over `volumes`; ensemble may be None)."""
    strategies = [name for name in curves if name != "baseline"]
    panels = 1 + len(strategies)
    columns = min(3, panels)
    rows = -(-panels // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False,
                                sharex=True, sharey=True, constrained_layout=True)
    palette = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 7]  # grey is fine_tune_all's
    colors = dict(zip(strategies, palette * 2))
    reference = curves.get("fine_tune_all")
    baseline = curves.get("baseline")

    def frame(axis, heading):
        if oracle is not None:
            axis.axhline(oracle[0], color="tab:green", linewidth=1.0)
            axis.axhspan(oracle[0] - oracle[1], oracle[0] + oracle[1], color="tab:green", alpha=0.1)
        if baseline is not None:
            axis.plot(volumes, baseline["mean"], "-", color="black", linewidth=1.2)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.25)
        axis.set_title(heading, fontsize=9)

    overview = axes[0, 0]
    frame(overview, "every strategy: mean over seeds")
    for name in strategies:
        overview.plot(volumes, curves[name]["mean"], "-o", color=colors[name], markersize=3, linewidth=1.2,
                      label=name, zorder=3 if name == "fine_tune_all" else 2)
    overview.plot([], [], "-", color="black", label="baseline")
    overview.plot([], [], "-", color="tab:green", label="oracle")
    overview.legend(fontsize=6.5, ncol=2)
    for index, name in enumerate(strategies, start=1):
        axis = axes[index // columns, index % columns]
        frame(axis, name)
        curve = curves[name]
        if reference is not None and name != "fine_tune_all":
            axis.plot(volumes, reference["mean"], "-", color="gray", linewidth=1.0)
        axis.fill_between(volumes, curve["low"], curve["high"], color=colors[name], alpha=0.2, linewidth=0)
        axis.plot(volumes, curve["mean"], "-o", color=colors[name], markersize=3, linewidth=1.5)
        if curve.get("ensemble") is not None:
            axis.plot(volumes, curve["ensemble"], "--", color=colors[name], linewidth=1.2)
    for index in range(panels, rows * columns):
        axes[index // columns, index % columns].axis("off")
    for axis in axes[-1, :]:
        axis.set_xticks(list(volumes))
        axis.set_xticklabels([str(v) for v in volumes], fontsize=7, rotation=45)
        axis.set_xlabel("real pairs N")
    for axis in axes[:, 0]:
        axis.set_ylabel("L1, big domain")
    figure.suptitle(title + "\nper panel: band = 95% interval over seeds, dashed = the seeds' ensemble, "
                    "grey = fine_tune_all, black = baseline, green = oracle", fontsize=9)
    return _save(figure, path)


def plot_design_curves(path: Path, summary: dict, title: str) -> Path:
    """Experiment 4: L1 against the lab's measurements N, one panel per system (columns) and arm
    (rows), a line per method: the mean over labs with its 95% interval as a band."""
    cells = [(system, arm) for system, by_arm in summary.items() for arm in by_arm]
    systems = list(summary)
    arms = sorted({arm for _, arm in cells}, key=lambda a: (a == "baseline", a))
    figure, axes = plt.subplots(len(arms), len(systems), figsize=(max(7.0, 4.2 * len(systems)), 3.3 * len(arms)),
                                squeeze=False, constrained_layout=True)
    methods = list(dict.fromkeys(m for s, a in cells for m in summary[s][a]))
    colors = dict(zip(methods, plt.get_cmap("tab10").colors))
    for row, arm in enumerate(arms):
        for column, system in enumerate(systems):
            axis = axes[row, column]
            entries = summary[system].get(arm)
            if entries is None:
                axis.axis("off")
                continue
            for method, entry in entries.items():
                volumes = entry["volumes"]
                axis.fill_between(volumes, entry["low"], entry["high"], color=colors[method], alpha=0.15, linewidth=0)
                axis.plot(volumes, entry["mean"], "-o", color=colors[method], markersize=3, linewidth=1.3,
                          label=method)
            axis.set_title(f"{system}, {arm}", fontsize=9)
            axis.grid(True, alpha=0.25)
            axis.set_xlabel("the lab's real pairs N", fontsize=8)
            axis.set_ylabel("L1 of the ensemble mean, big domain", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    figure.suptitle(title + "\nline: mean over labs; band: 95% interval", fontsize=9)
    return _save(figure, path)


def plot_design_picks(path: Path, domain: np.ndarray, region: np.ndarray, volumes: Sequence[int],
                      points: dict[str, np.ndarray], title: str) -> Path:
    """Experiment 4: one lab's measurements per method (first two inputs), the starting points grey,
    each later round's picks in its own colour, the region where it measures dashed."""
    methods = list(points)
    columns = min(3, len(methods))
    rows = -(-len(methods) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 3.2 * rows), squeeze=False,
                                constrained_layout=True)
    shades = plt.get_cmap("viridis")
    j = 1 if len(domain) > 1 else 0
    for axis, method in zip(axes.ravel(), methods):
        x = points[method]
        bounds = [0, *[v for v in volumes if v <= len(x)]]
        for k, (start, stop) in enumerate(zip(bounds, bounds[1:])):
            color = "0.6" if k == 0 else shades((k - 1) / max(1, len(volumes) - 2))
            axis.scatter(x[start:stop, 0], x[start:stop, j] if j else np.zeros(stop - start), s=6, color=color,
                         label="start" if k == 0 else f"round {k}")
        (a, b), (c, d) = region[0], region[j]
        axis.plot([a, b, b, a, a], [c, c, d, d, c], color="tab:blue", linewidth=1, linestyle="--")
        axis.set_xlim(domain[0])
        axis.set_ylim(domain[j])
        axis.set_title(method, fontsize=9)
        axis.legend(fontsize=6, loc="upper right")
    for axis in axes.ravel()[len(methods):]:
        axis.axis("off")
    figure.suptitle(title, fontsize=9)
    return _save(figure, path)


def plot_calibration(path: Path, panels: dict[str, dict[str, Sequence[tuple[float, float]]]], title: str) -> Path:
    """Reliability of prediction intervals: observed coverage against the nominal level (both in
    %), one panel per entry of `panels` (e.g. inside and outside the measured region), one line
    per curve in it (e.g. calibrated and raw, per arm); the diagonal is an honest interval, below
    it an over-confident one."""
    figure, axes = plt.subplots(1, len(panels), figsize=(max(6.4, 4.6 * len(panels)), 4.6), squeeze=False)
    styles = {"calibrated": "-", "raw": "--"}
    for axis, (name, curves) in zip(axes[0], panels.items()):
        axis.plot([0, 100], [0, 100], color="grey", lw=1, zorder=0)
        labels = sorted({label.split(" ")[0] for label in curves})
        colors = arm_colors(labels)
        for label, points in curves.items():
            points = [(100 * n, 100 * o) for n, o in points if o is not None]
            if not points:
                continue
            arm, _, kind = label.partition(" ")
            axis.plot(*zip(*points), styles.get(kind, "-"), marker="o", color=colors[arm], label=label)
        axis.set_xlim(40, 100)
        axis.set_ylim(0, 100)
        axis.set_xlabel("nominal level (%)")
        axis.set_ylabel("observed coverage (%)")
        axis.set_title(name, fontsize=10)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="lower right")
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)
