"""TensorBoard output of a run: loss curves, evaluation histograms, hparams and figures.

Layout under `<run>/tensorboard/` (TensorBoard's hparams demo is the model):
- the root holds the hparams config (`hp.hparams_config`), written once;
- one run per member, `<arm>/<system>/n<N>/seed<k>`, with `train/loss` per epoch (for the
  transfer arm the pretraining epochs and the fine-tuning epochs on one continuous axis),
  `eval/l1_mean`, `eval/l1_var`, `eval/l1_inside`, `eval/l1_outside`, the histogram
  `eval/point_error` of the per-point L1 errors, and `hp.hparams` (one hparams row per member);
- `figures/` holds the study's figures as image summaries.
Each function writes into a fresh folder that the caller then renames into place
(`persistence.Staging`), so TensorBoard never reads a half-written event file, and a member
rewritten after a crash replaces its run instead of adding a second one.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.plugins.histogram import summary_v2 as histogram_summary
from tensorboard.plugins.hparams import api as hp
from tensorboard.plugins.hparams import summary_v2 as hp_summary
from tensorboard.plugins.scalar import metadata as scalar_metadata

from tlkeras.core.vocabulary import ARMS
from tlkeras.results.evaluation import ModelScore

METRICS = ("eval/l1_mean", "eval/l1_var", "eval/l1_inside", "eval/l1_outside")
# A fit's intervals on its measured rows, each judged without its fold (`fit.calibration.out_of_fold_coverage`).
CALIBRATION_METRICS = ("calibration/coverage_90", "calibration/coverage_90_raw", "calibration/width_90",
                       "calibration/width_90_raw")


def has_event_files(folder: Path) -> bool:
    return any(Path(folder).glob("events.out.tfevents.*"))


def write_hparams_config(folder: Path, systems: Sequence[str], volumes: Sequence[int],
                         arms: Sequence[str] = ARMS, chosen: dict[str, Sequence[float]] | None = None,
                         calibration: bool = False) -> None:
    """The hparams dashboard's columns: arm, system, volume, seed, what the strategies choose per
    model (`chosen`: name -> the values chosen from; `strategies.chosen_settings`); the L1 metrics,
    and with `calibration` (a fit's) the intervals' coverage and width (`write_calibration_runs`)."""
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        hp.hparams_config(
            hparams=[
                hp.HParam("arm", hp.Discrete(list(arms))),
                hp.HParam("system", hp.Discrete(sorted(set(systems)))),
                hp.HParam("volume", hp.Discrete(sorted(set(int(v) for v in volumes)))),
                hp.HParam("seed", hp.IntInterval(0, 2**31 - 1)),
                *[hp.HParam(name, hp.Discrete(sorted({float(v) for v in values})))
                  for name, values in (chosen or {}).items()],
            ],
            metrics=[hp.Metric(name, display_name=name.split("/")[1])
                     for name in METRICS + (CALIBRATION_METRICS if calibration else ())],
        )
    writer.close()


def write_member(
    folder: Path,
    trial_id: str,
    hparams: dict,
    losses: np.ndarray,
    first_epoch: int,
    score: ModelScore,
    point_errors: np.ndarray,
    earlier_losses: np.ndarray | None = None,
    eval_curve: dict | None = None,
    earlier_eval_curve: dict | None = None,
) -> None:
    """One member's run: loss curve (epochs numbered from 1), eval scalars, histogram, hparams.

    `earlier_losses` (the pretraining curve of a transfer member) come first on the same axis,
    and so does `earlier_eval_curve` (the pretrained model's error on this member's system).
    `eval_curve` (curves.EvaluationCurves.member_curve) gives eval/l1_* and the point-error
    histogram at every evaluation during training; without it they are one point at the end.
    """
    curve = list(losses) if earlier_losses is None else [*earlier_losses, *losses]
    _write_scalar_curve(folder, "train/loss", curve, first_step=1 if earlier_losses is not None else first_epoch + 1)
    last_epoch = first_epoch + len(losses)
    # Each tag in one event file, steps rising: TensorBoard drops a tag's points that come after
    # a larger step of the same tag (it takes them for a restarted run), and reads files in name
    # order, whose counters are not zero-padded.
    curves = [c for c in (earlier_eval_curve, eval_curve) if c]
    if curves:
        _write_scalar_tags(folder, {
            f"eval/{metric}": [(e, v) for c in curves for e, v in zip(c["epochs"], c[metric]) if np.isfinite(v)]
            for metric in ("l1_mean", "l1_inside", "l1_outside")}, suffix=".eval")
    # hparams, the last scores and the point-error histograms: one event file, written from
    # protos (through tf.summary's eager ops this took about as long as a short fine-tuning).
    now = time.time()
    events = [event_pb2.Event(wall_time=now, step=0, summary=hp_summary.hparams_pb(hparams, trial_id=trial_id))]
    if eval_curve is not None:
        histograms = list(zip(eval_curve["epochs"], eval_curve["point_errors"]))
    else:
        histograms = [(last_epoch, point_errors)]
    for epoch, errors in histograms:
        events.append(event_pb2.Event(wall_time=now, step=int(epoch), summary=histogram_summary.histogram_pb(
            "eval/point_error", np.asarray(errors, np.float64))))
    values = [_scalar_value(name, value) for name, value in
              zip(METRICS, (score.l1_mean, score.l1_var, score.l1_inside, score.l1_outside))
              if np.isfinite(value) and (eval_curve is None or name == "eval/l1_var")]
    if values:
        events.append(event_pb2.Event(wall_time=now, step=last_epoch, summary=summary_pb2.Summary(value=values)))
    _write_event_file(folder, sorted(events, key=lambda e: e.step), ".member", now)


def write_volume_runs(folder: Path, records: Sequence[dict]) -> None:
    """One run per (arm, system, seed) under `folder`, whose step is the volume N: eval/l1_mean,
    l1_inside and l1_outside against N, so that TensorBoard charts L1 against N."""
    by_run: dict[tuple, list[dict]] = {}
    for record in records:
        if record["arm"] in ("pretrain", "oracle") or "l1_mean" not in record:
            continue
        by_run.setdefault((record["arm"], record["system"], record["seed"]), []).append(record)
    for (arm, system, seed), rows in by_run.items():
        run = Path(folder) / arm / system / f"seed{seed}"
        run.mkdir(parents=True, exist_ok=True)
        rows = sorted(rows, key=lambda r: r["volume"])
        _write_scalar_tags(run, {f"by_volume/{metric}": [(r["volume"], r[metric]) for r in rows
                                                          if np.isfinite(r.get(metric, np.nan))]
                                 for metric in ("l1_mean", "l1_inside", "l1_outside")}, suffix=".by_volume")


def write_scalar_points(folder: Path, points: dict[str, Sequence[tuple[int, float]]]) -> None:
    """Scalar tags as (step, value) pairs in a new event file of the run `folder` (Experiment 4:
    the step is the lab's measurements N)."""
    _write_scalar_tags(folder, points, suffix=".points")


def _write_scalar_curve(folder: Path, tag: str, values: Sequence[float], first_step: int) -> None:
    """A scalar per step, as the event protos tf.summary.scalar writes, without one TensorFlow op
    per point (thousands of epochs x dozens of models took minutes through eager ops)."""
    _write_scalar_tags(folder, {tag: [(first_step + i, v) for i, v in enumerate(values)]}, suffix=".curve")


def _write_scalar_tags(folder: Path, points: dict[str, Sequence[tuple[int, float]]], suffix: str) -> None:
    """(step, value) pairs of scalar tags in one new event file, one event per step (every tag's
    value at that step), steps rising."""
    by_step: dict[int, list[tuple[str, float]]] = {}
    for tag, tag_points in points.items():
        for step, value in tag_points:
            by_step.setdefault(int(step), []).append((tag, float(value)))
    now = time.time()
    plain: dict[str, summary_pb2.Summary.Value] = {}  # a tag's value without its metadata, reused
    events = []
    for step in sorted(by_step):
        event = event_pb2.Event(wall_time=now, step=step)
        for tag, value in by_step[step]:
            if tag in plain:  # copied and refilled: half the time of building each value anew
                event.summary.value.append(plain[tag])
                event.summary.value[-1].tensor.float_val[0] = value
            else:
                event.summary.value.append(_scalar_value(tag, value))
                plain[tag] = _scalar_value(tag, 0.0, described=True)
        events.append(event)
    _write_event_file(folder, events, suffix, now)


def _scalar_value(tag: str, value: float, described: bool = False) -> summary_pb2.Summary.Value:
    """A scalar as tf.summary.scalar writes it; its metadata only the first time in a file."""
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[float(value)],
                                    tensor_shape=tensor_shape_pb2.TensorShapeProto())
    metadata = None if described else scalar_metadata.create_summary_metadata(display_name=tag, description="")
    return summary_pb2.Summary.Value(tag=tag, tensor=tensor, metadata=metadata)


_event_files = itertools.count()


def _write_event_file(folder: Path, events: Sequence, suffix: str, now: float) -> None:
    """A new event file of `events`, named and framed as TensorBoard's own writer does (a
    file_version event first; TFRecord framing, its checksums computed by TensorFlow's C++
    writer: TensorBoard's Python writer queued and checksummed event by event, about a quarter
    of a second per member)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    name = f"events.out.tfevents.{int(now):010d}.{socket.gethostname()}.{os.getpid()}.{next(_event_files)}{suffix}"
    with tf.io.TFRecordWriter(str(Path(folder) / name)) as writer:
        writer.write(event_pb2.Event(wall_time=now, file_version="brain.Event:2").SerializeToString())
        for event in events:
            writer.write(event.SerializeToString())


def write_figures(folder: Path, figures: dict[str, Path]) -> None:
    """PNG files as image summaries in `folder` (the run's `figures`), one tag per figure."""
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        for tag, path in figures.items():
            image = tf.io.decode_png(tf.io.read_file(str(path)), channels=4)
            tf.summary.image(f"figures/{tag}", image[tf.newaxis], step=0)
    writer.close()


def write_calibration_runs(folder: Path, checks: dict[str, dict], rows: int) -> None:
    """One run per arm of a fit under `folder`: an hparams row (arm, system, volume = rows) with
    its 90% intervals' out-of-fold coverage and width, calibrated and raw, as metrics, and every
    level's coverage as `calibration/coverage` with the nominal level in percent as the step."""
    now = time.time()
    for arm, by_level in checks.items():
        run = Path(folder) / arm
        at_90 = by_level.get("90") or {}
        values = {"calibration/coverage_90": at_90.get("calibrated"), "calibration/coverage_90_raw": at_90.get("raw"),
                  "calibration/width_90": at_90.get("calibrated_width"), "calibration/width_90_raw": at_90.get("raw_width")}
        hparams = {"arm": arm, "system": "measurements", "volume": int(rows)}
        events = [event_pb2.Event(wall_time=now, step=0, summary=hp_summary.hparams_pb(
            hparams, trial_id=f"calibration/{arm}")),
            event_pb2.Event(wall_time=now, step=0, summary=summary_pb2.Summary(value=[
                _scalar_value(tag, value) for tag, value in values.items() if value is not None]))]
        _write_event_file(run, events, ".calibration", now)
        _write_scalar_tags(run, {f"calibration/coverage_{kind}": [
            (int(round(float(level))), entry[key]) for level, entry in by_level.items() if entry[key] is not None]
            for kind, key in (("calibrated", "calibrated"), ("raw", "raw"))}, suffix=".levels")
