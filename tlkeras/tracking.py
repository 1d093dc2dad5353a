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

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.plugins.hparams import api as hp
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from tlkeras.config import ARMS
from tlkeras.evaluation import ModelScore

METRICS = ("eval/l1_mean", "eval/l1_var", "eval/l1_inside", "eval/l1_outside")


def has_event_files(folder: Path) -> bool:
    return any(Path(folder).glob("events.out.tfevents.*"))


def write_hparams_config(folder: Path, systems: Sequence[str], volumes: Sequence[int],
                         arms: Sequence[str] = ARMS) -> None:
    """The hparams dashboard's columns: arm, system, volume, seed; the L1 metrics."""
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        hp.hparams_config(
            hparams=[
                hp.HParam("arm", hp.Discrete(list(arms))),
                hp.HParam("system", hp.Discrete(sorted(set(systems)))),
                hp.HParam("volume", hp.Discrete(sorted(set(int(v) for v in volumes)))),
                hp.HParam("seed", hp.IntInterval(0, 2**31 - 1)),
            ],
            metrics=[hp.Metric(name, display_name=name.split("/")[1]) for name in METRICS],
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
    for source in (earlier_eval_curve, eval_curve):
        if source:
            for metric in ("l1_mean", "l1_inside", "l1_outside"):
                points = [(e, v) for e, v in zip(source["epochs"], source[metric]) if np.isfinite(v)]
                if points:
                    _write_scalar_points(folder, f"eval/{metric}", points, suffix=f".{metric}")
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        hp.hparams(hparams, trial_id=trial_id)
        for name, value in zip(METRICS, (score.l1_mean, score.l1_var, score.l1_inside, score.l1_outside)):
            if np.isfinite(value) and (eval_curve is None or name == "eval/l1_var"):
                tf.summary.scalar(name, value, step=last_epoch)
        if eval_curve is not None:
            for epoch, errors in zip(eval_curve["epochs"], eval_curve["point_errors"]):
                tf.summary.histogram("eval/point_error", np.asarray(errors, np.float64), step=epoch)
        else:
            tf.summary.histogram("eval/point_error", np.asarray(point_errors, np.float64), step=last_epoch)
    writer.close()


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
        for metric in ("l1_mean", "l1_inside", "l1_outside"):
            points = [(r["volume"], r[metric]) for r in rows if np.isfinite(r.get(metric, np.nan))]
            if points:
                _write_scalar_points(run, f"by_volume/{metric}", points, suffix=f".{metric}")


def _write_scalar_curve(folder: Path, tag: str, values: Sequence[float], first_step: int) -> None:
    """A scalar per step, as the event protos tf.summary.scalar writes, without one TensorFlow op
    per point (thousands of epochs x dozens of models took minutes through eager ops)."""
    _write_scalar_points(folder, tag, [(first_step + i, v) for i, v in enumerate(values)], suffix=".curve")


def _write_scalar_points(folder: Path, tag: str, points: Sequence[tuple[int, float]], suffix: str) -> None:
    """(step, value) pairs of one scalar tag, in an event file of their own."""
    writer = EventFileWriter(str(folder), filename_suffix=suffix)
    metadata = scalar_metadata.create_summary_metadata(display_name=tag, description="")
    now = time.time()
    for index, (step, value) in enumerate(points):
        tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[float(value)],
                                        tensor_shape=tensor_shape_pb2.TensorShapeProto())
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(
            tag=tag, tensor=tensor, metadata=metadata if index == 0 else None)])
        writer.add_event(event_pb2.Event(wall_time=now, step=int(step), summary=summary))
    writer.close()


def write_figures(folder: Path, figures: dict[str, Path]) -> None:
    """PNG files as image summaries in `folder` (the run's `figures`), one tag per figure."""
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        for tag, path in figures.items():
            image = tf.io.decode_png(tf.io.read_file(str(path)), channels=4)
            tf.summary.image(f"figures/{tag}", image[tf.newaxis], step=0)
    writer.close()
