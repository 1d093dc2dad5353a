"""How far to trust the band: `tlkeras fit`'s calibrated intervals on the study's systems.

    python experiments/intervals.py                  # hill2, hill3, phosphorylation; N 100, 1000; 10 data sets
    python experiments/intervals.py --preset=quick   # a minute or two: every output, tiny training
    python experiments/intervals.py --fold_kinds=blocked --draws=5

For every system, volume N, data draw and fold kind: N noisy readings (noise sd --noise) uniform
on the small domain (0-10 nM), written as a lab's CSV and fitted by `tlkeras fit`'s machinery
(the study's protocol, g = the simple model of examples/study/systems.py, 5 seeds, 5 folds; one
pretraining cache for all), then scored over the big domain (0-20 nM), inside and outside the
measured region, against the noise-free truth on a grid and against fresh noisy readings
(`tlkeras.fit.interval_check`). One JSON line per fit in `<run>/fits.jsonl` (resumable: give
the --run_dir of a stopped run), the tables in `<run>/results.md`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from absl import app, flags

from tlkeras.core.config import QUICK_PRESET
from tlkeras.fit import interval_check

REPO = Path(__file__).resolve().parents[1]
SYSTEMS_FILE = REPO / "examples" / "study" / "systems.py"

flags.DEFINE_list("systems", list(interval_check.STUDY_SYSTEMS), f"Real systems (functions of "
                  f"examples/study/{SYSTEMS_FILE.name}): {', '.join(interval_check.STUDY_SYSTEMS)}.")
flags.DEFINE_list("volumes", ["100", "1000"], "Readings N per data set (small domain).")
flags.DEFINE_integer("draws", 10, "Data sets per system and N (draw d: its own inputs and noise).", lower_bound=1,
                     upper_bound=1000)
flags.DEFINE_list("fold_kinds", ["random", "blocked"], "Fold kinds to calibrate with (tlkeras fit --fold_kind).")
flags.DEFINE_integer("folds", 5, "k of the fits' cross-validation.", lower_bound=2, upper_bound=100)
flags.DEFINE_float("noise", 1.0, "Noise sd of every reading (the study's).", lower_bound=0.0)
flags.DEFINE_integer("readings", 2000, "Fresh noisy readings per data set, uniform on the big domain.",
                     lower_bound=10, upper_bound=10_000_000)
flags.DEFINE_enum("preset", "full", ["full", "quick"], "full: the study's protocol; quick: tiny training, 2 "
                  "draws, N 100 (checks the plumbing, not the intervals).")
flags.DEFINE_integer("workers", 2, "Local worker processes of the fits.", lower_bound=1, upper_bound=64)
flags.DEFINE_string("run_dir", None, "The run folder (default: logs/intervals/<time>); an existing one is resumed.")
flags.DEFINE_boolean("keep_models", False, "Keep every fitted model folder (else only draw 0's).")

FLAGS = flags.FLAGS
OWN_FLAGS = ("systems", "volumes", "draws", "fold_kinds", "folds", "noise", "readings", "preset", "workers",
             "keep_models")
SMALL, BIG = (0.0, 10.0), (0.0, 20.0)


def quiet(message: str) -> None:
    """The fits' progress reporter: silent (one line per fit is printed instead)."""


def truth_of(system: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location("study_systems", SYSTEMS_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, system)


def main(argv) -> None:
    del argv
    from tlkeras.cli.lifecycle import workers_then_tensorflow
    from tlkeras.core.options import SweepOptions

    volumes = [int(v) for v in FLAGS.volumes]
    draws = 2 if FLAGS.preset == "quick" and FLAGS["draws"].using_default_value else FLAGS.draws
    if FLAGS.preset == "quick" and FLAGS["volumes"].using_default_value:
        volumes = [100]
    for system in FLAGS.systems:
        if system not in interval_check.STUDY_SYSTEMS:
            raise app.UsageError(f"--systems={system} is not allowed: expected some of "
                                 f"{', '.join(interval_check.STUDY_SYSTEMS)}")
    for kind in FLAGS.fold_kinds:
        if kind not in ("random", "blocked"):
            raise app.UsageError(f"--fold_kinds={kind} is not allowed: expected random and/or blocked")
    run = Path(FLAGS.run_dir or REPO / "logs" / "intervals" / time.strftime("%Y%m%d-%H%M%S"))
    run.mkdir(parents=True, exist_ok=True)
    (run / "flags.txt").write_text("".join(f"{FLAGS[name].serialize()}\n" for name in OWN_FLAGS))
    done_path = run / "fits.jsonl"
    records = [json.loads(line) for line in done_path.read_text().splitlines()] if done_path.exists() else []
    records = [dict(r, replicate=r.get("replicate", r.get("draw"))) for r in records]
    done = {(r["system"], r["volume"], r["replicate"], r["fold_kind"]) for r in records}
    protocol = dict(folds=FLAGS.folds, seeds=(0, 1, 2, 3, 4))
    if FLAGS.preset == "quick":
        protocol.update({k: v for k, v in QUICK_PRESET.items() if k != "oracle_size"})
    options = SweepOptions(workers=FLAGS.workers, cache_dir=run / "cache", report=quiet)
    with workers_then_tensorflow("local", FLAGS.workers) as workers:
        for draw in range(draws):
            for kind in FLAGS.fold_kinds:
                for system in FLAGS.systems:
                    for volume in volumes:
                        if (system, volume, draw, kind) in done:
                            continue
                        record = interval_check.check_replicate(
                            truth_of(system), system, f"{SYSTEMS_FILE}:g", 2, BIG, SMALL, volume, draw, run, options,
                            workers.processes, noise=FLAGS.noise, fresh_readings=FLAGS.readings,
                            keep=draw == 0 or FLAGS.keep_models, protocol=dict(protocol, fold_kind=kind))
                        records.append(record)
                        with done_path.open("a") as handle:
                            handle.write(json.dumps(record) + "\n")
                        at = record["arms"]["transfer"]["readings"]
                        print(f"{system} N={volume} draw {draw} {kind}: {record['seconds']:.0f} s; transfer's "
                              f"calibrated 90% covers fresh readings {at['inside']['calibrated']['coverage']['90']:.0%}"
                              f" inside, {at['outside']['calibrated']['coverage']['90']:.0%} outside", flush=True)
                        (run / "results.md").write_text("\n".join(
                            ["# Calibrated intervals on the study's systems", "",
                             *interval_check.summary_markdown(records)]))
    print(f"wrote {run / 'results.md'}")


if __name__ == "__main__":
    app.run(main)
