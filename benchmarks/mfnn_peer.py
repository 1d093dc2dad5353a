"""DeepXDE's multi-fidelity network (MfNN, Meng and Karniadakis 2020) on tlkeras' own data.

The peer of RESULTS.md's "A peer: DeepXDE's multi-fidelity network": for each seed and volume N it
fits MfNN to exactly the data tlkeras' Experiment 3 trains on (the seed's 40000 synthetic points
of the simple model on the big domain, and its N noisy hill2 points on the small domain), scores
L1 on the same 100 evaluation points against the noise-free hill2, and prints one line per model:

    RESULT seed=<s> N=<n> reg=<lambda|none> L1=<l1> (<seconds>s)

Then `--compare=<exp3 run directory>` pairs those lines (read from the files given) with the run's
per-model L1 of each strategy, seed by seed, with Wilcoxon's signed-rank test (scipy.stats).

`--compare` may be given several times: runs made with exp3's `--real_data_seed=k` are paired by
their ensemble (the mean prediction of their seeds, all trained on seed k's pairs) with MfNN's
seed k, as rows `<arm> ensemble`.

With `--data_seed=k --predictions=<folder>` every model trains on seed k's real pairs and the
ensemble of the seeds' models is scored too (a line `ENSEMBLE data=k N=<n> ... L1=<l1>`): the peer
of Experiment 3's `--real_data_seed=k` ensembles.

DeepXDE is not a dependency of tlkeras. To rerun (about 7 minutes per model on one core):

    pip install --target=/tmp/dxpkg deepxde==1.15.0 tf_keras scikit-learn
    PYTHONPATH=/tmp/dxpkg DDE_BACKEND=tensorflow.compat.v1 TF_USE_LEGACY_KERAS=1 \
        python benchmarks/mfnn_peer.py --seeds=0,1,2,3,4 --volumes=100,1000 --reg=0.01 >> mfnn.txt
    python benchmarks/mfnn_peer.py --compare=logs/exp3/<run> mfnn.txt

MfNN's settings are the issue's: low-fidelity net 5 x 10 ReLU, high-fidelity 2 x 10, Adam 1e-3,
full batch, 20000 iterations, Glorot uniform; `--reg` is the L2 lambda (DeepXDE's multi-fidelity
example uses 0.01; `none` for no penalty).
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

RESULT = re.compile(r"RESULT seed=(\d+) N=(\d+) reg=(\S+) L1=([\d.]+)")


def fit_mfnn(seed: int, volume: int, reg: str, iterations: int, data_seed: int | None = None,
             predictions: Path | None = None) -> float:
    """One MfNN: initialised and fed the synthetic points of `seed`, the N real pairs of `data_seed`
    (default: `seed`, as Experiment 3's seed does; a fixed one, as `--real_data_seed`); with
    `predictions`, its predictions on the evaluation points are saved there (.npy)."""
    from tlkeras.core.config import StudyConfig
    from tlkeras.core.members import Member
    from tlkeras.execution.training import training_set
    from tlkeras.results.evaluation import EvaluationSet

    config = StudyConfig(systems=("hill2",), seeds=(seed,))
    evaluation = EvaluationSet(config)
    x_low, y_low = training_set(config, Member("pretrain", config.simple_name, config.pretrain_size, seed))
    x_high, y_high = training_set(config, Member("multi_fidelity", "hill2", volume,
                                                 seed if data_seed is None else data_seed))
    import deepxde as dde  # after the data: its TensorFlow 1 backend turns eager execution off

    data = dde.data.MfDataSet(X_lo_train=x_low, X_hi_train=x_high, y_lo_train=y_low, y_hi_train=y_high,
                              X_hi_test=evaluation.x.astype(np.float32),
                              y_hi_test=evaluation.truth["hill2"].astype(np.float32))
    dde.config.set_random_seed(seed)
    net = dde.nn.MfNN([2] + [10] * 5 + [2], [10] * 2 + [2], "relu", "Glorot uniform",
                      regularization=None if reg == "none" else ["l2", float(reg)])
    model = dde.Model(data, net)
    model.compile("adam", lr=0.001)
    model.train(iterations=iterations, display_every=iterations)
    prediction = model.predict(evaluation.x.astype(np.float32))[1]
    if predictions is not None:
        np.save(predictions, prediction)
    return float(np.mean(np.abs(prediction - evaluation.truth["hill2"])))


ENSEMBLE = " ensemble"  # suffix of an arm's equal-data ensembles in `compare`


def compare(runs: list[Path], result_files: list[str]) -> None:
    """Pair MfNN's per-seed L1 with exp3 runs': a run made without --real_data_seed gives each
    seed's model (seed k: seed k's data); runs made with --real_data_seed=k give the ensemble of
    their seeds on seed k's data, paired with MfNN's seed k (which trains on the same pairs)."""
    import json

    from scipy import stats

    peer: dict = defaultdict(dict)  # (reg, N) -> seed -> L1
    for name in result_files:
        for seed, volume, reg, l1 in RESULT.findall(Path(name).read_text()):
            peer[(reg, int(volume))][int(seed)] = float(l1)
    ours: dict = defaultdict(dict)  # (arm, N) -> seed (or data seed) -> L1
    for run in runs:
        data_seed = json.loads((run / "config.json").read_text()).get("real_data_seed")
        if data_seed is None:
            with open(run / "results.csv") as handle:
                for row in csv.DictReader(handle):
                    if row["system"] == "hill2":
                        ours[(row["arm"], int(row["volume"]))][int(row["seed"])] = float(row["l1_mean"])
        else:
            for row in json.loads((run / "results.json").read_text())["coverage"]:
                if row["system"] == "hill2":
                    ours[(row["arm"] + ENSEMBLE, int(row["volume"]))][int(data_seed)] = float(row["ensemble_l1"])
    arms = ("l2_sp_extrapolation", "l2_sp", "transfer", "multi_fidelity", "lp_ft", "freeze_k")
    for (reg, volume), by_seed in sorted(peer.items()):
        seeds = sorted(by_seed)
        values = np.array([by_seed[s] for s in seeds])
        print(f"MfNN reg={reg} N={volume}: L1 {values.mean():.3f}{_spread(values)} over seeds {seeds}")
        for arm in [*arms, *(a + ENSEMBLE for a in arms)]:
            mine = ours.get((arm, volume), {})
            if not all(s in mine for s in seeds):
                continue
            theirs = np.array([mine[s] for s in seeds])
            wins = int(np.sum(theirs < values))
            p = stats.wilcoxon(theirs, values).pvalue if len(seeds) >= 5 else float("nan")  # 4 pairs: p >= 0.125
            print(f"  {arm:20s} {theirs.mean():.3f}{_spread(theirs)}; lower than MfNN on {wins} of "
                  f"{len(seeds)} seeds; Wilcoxon p = {p:.3f}")


def _spread(values: np.ndarray) -> str:
    return f" +- {values.std(ddof=1):.3f}" if len(values) > 1 else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--volumes", default="100,1000")
    parser.add_argument("--reg", default="0.01")
    parser.add_argument("--iterations", type=int, default=20000)
    parser.add_argument("--data_seed", type=int, help="every model trains on this seed's real pairs (an "
                        "ensemble on one data set, as exp3's --real_data_seed); default: each its own seed's")
    parser.add_argument("--predictions", type=Path, help="a folder: each model's predictions on the evaluation "
                        "points, <seed>_<N>.npy, and with --data_seed the ensemble's L1 at the end")
    parser.add_argument("--compare", type=Path, action="append", help="an exp3 run directory (repeatable): pair "
                        "the RESULT lines with its models, or with --real_data_seed runs, with their ensembles")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("results", nargs="*", help="with --compare: files holding RESULT lines")
    args = parser.parse_args()
    if args.compare:
        compare(args.compare, args.results)
        return
    if args.one:  # one model in this process (DeepXDE's backend turns eager execution off for good)
        seed, volume = (int(v) for v in args.one.split(","))
        start = time.time()
        saved = args.predictions / f"{seed}_{volume}.npy" if args.predictions else None
        l1 = fit_mfnn(seed, volume, args.reg, args.iterations, args.data_seed, saved)
        data = "" if args.data_seed is None else f" data={args.data_seed}"
        print(f"RESULT seed={seed} N={volume} reg={args.reg}{data} L1={l1:.4f} ({time.time() - start:.0f}s)",
              flush=True)
        return
    extra = [f"--data_seed={args.data_seed}"] * (args.data_seed is not None)
    extra += [f"--predictions={args.predictions}"] * bool(args.predictions)
    if args.predictions:
        args.predictions.mkdir(parents=True, exist_ok=True)
    for volume in args.volumes.split(","):
        seeds = args.seeds.split(",")
        for seed in seeds:
            subprocess.run([sys.executable, __file__, f"--one={seed},{volume}", f"--reg={args.reg}",
                            f"--iterations={args.iterations}", *extra], check=True)
        if args.predictions and args.data_seed is not None:
            print(f"ENSEMBLE data={args.data_seed} N={volume} reg={args.reg} seeds={','.join(seeds)} "
                  f"L1={ensemble_l1(args.predictions, seeds, int(volume)):.4f}", flush=True)


def ensemble_l1(folder: Path, seeds: list[str], volume: int) -> float:
    """L1 of the mean prediction of the saved models, against the noise-free hill2."""
    from tlkeras.core.config import StudyConfig
    from tlkeras.results.evaluation import EvaluationSet

    evaluation = EvaluationSet(StudyConfig(systems=("hill2",)))
    mean = np.mean([np.load(folder / f"{seed}_{volume}.npy") for seed in seeds], axis=0)
    return float(np.mean(np.abs(mean - evaluation.truth["hill2"])))

if __name__ == "__main__":
    main()
