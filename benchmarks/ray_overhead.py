"""The Ray backend's overhead on one machine: the same sweep with --backend=local and
--backend=ray (embedded local Ray, as many CPUs as --workers), side by side in one run.

    python benchmarks/ray_overhead.py                                   # exp1 --preset=quick, twice each
    python benchmarks/ray_overhead.py --driver_flags=--preset=quick,--seeds=0,1,2,3,4 --repeats=1

Each run is a fresh driver process in a fresh --logdir, nothing cached; the order alternates
(local, ray, local, ray, ...) so that a change in the machine's load hits both alike. Prints the
wall time of each run, the best of each backend, their ratio, and whether the two backends'
members are identical (they must be: `test_ray_backend.py` checks it too).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
flags.DEFINE_string("experiment", "exp1", "Which driver: exp1, exp2 or exp3.")
flags.DEFINE_list("driver_flags", ["--preset=quick"], "Flags for the driver (comma-separated).")
flags.DEFINE_integer("repeats", 2, "Runs per backend (the best is kept).", lower_bound=1)
flags.DEFINE_integer("workers", 2, "Worker processes, and CPUs of the local Ray.", lower_bound=1)
FLAGS = flags.FLAGS


def _run(backend: str, logdir: Path) -> tuple[float, dict]:
    command = [sys.executable, str(REPO / "experiments" / f"{FLAGS.experiment}.py"), *FLAGS.driver_flags,
               f"--logdir={logdir}", "--cache=false", f"--workers={FLAGS.workers}", f"--backend={backend}"]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{backend} run failed ({result.returncode}):\n{result.stderr[-3000:]}")
    run = next(p for p in (logdir / FLAGS.experiment).iterdir() if p.is_dir())
    records = {}
    for path in (run / "cells").rglob("*.json"):
        record = json.loads(path.read_text())
        record.pop("train_seconds")
        records[record["key"]] = record
    return seconds, records


def main(argv: list[str]) -> None:
    del argv
    times: dict[str, list[float]] = {"local": [], "ray": []}
    members: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="tlkeras-ray-bench-") as scratch:
        for repeat in range(FLAGS.repeats):
            for backend in ("local", "ray"):
                seconds, records = _run(backend, Path(scratch) / f"{backend}{repeat}")
                times[backend].append(seconds)
                members.setdefault(backend, records)
                print(f"{backend:5s} run {repeat + 1}: {seconds:6.1f} s wall ({len(records)} members)", flush=True)
    best = {backend: min(values) for backend, values in times.items()}
    print(f"\nbest: local {best['local']:.1f} s, ray {best['ray']:.1f} s; ray / local = {best['ray'] / best['local']:.2f}")
    same = members["local"] == members["ray"]
    print(f"members identical across backends: {'yes' if same else 'NO'}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
