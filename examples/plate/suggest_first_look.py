"""A lab's next plate, simulated on the example's circuit: does `tlkeras suggest` pick better
wells than chance? A first look (one round, few replicates), not Experiment 4.

Each replicate lab measures N0 wells uniformly in the affordable range (aTc 0-50, IPTG 0-500),
fits (`tlkeras fit`, the quick preset, 4 seeds), then for each method asks `tlkeras suggest` for
B more wells in that range, "measures" them (`truth` + the plate's noise; every method's k-th
well gets the same noise draw, so the comparison is paired), fits again on N0 + B and is scored
by `tlkeras evaluate` against the noise-free truth on the full range (aTc 0-100, IPTG 0-1000).
Every step is the command a lab would run.

    python examples/plate/suggest_first_look.py --replicates=3 --work=/tmp/first_look
"""

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from make_plate import NOISE_SD
from simple_model import truth

HERE = Path(__file__).resolve().parent
METHODS = ("uniform", "space_filling", "disagreement", "spread_distance", "variance_reduction")
FIT = ["--domain=0,100,0,1000", "--inputs=aTc,IPTG", "--outputs=gfp,rfp", "--preset=quick", "--seeds=0,1,2,3",
       "--folds=0", f"--simple={HERE / 'simple_model.py'}:g"]


def tlkeras(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "tlkeras.cli", *args], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"tlkeras {args[0]} failed: {result.stderr.strip()}")


def write_rows(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["aTc", "IPTG", "gfp", "rfp"])
        writer.writerows([[*map(repr, map(float, a)), *map(repr, map(float, b))] for a, b in zip(x, y)])


def read_inputs(path: Path) -> np.ndarray:
    with path.open() as handle:
        return np.array([[float(r["aTc"]), float(r["IPTG"])] for r in csv.DictReader(handle)])


def scores(model: Path, test: Path, out: Path) -> dict:
    tlkeras("evaluate", f"--model={model}", f"--measurements={test}", f"--out={out}")
    return {name: by["all"]["rmse"] for name, by in json.loads(out.read_text())["scores"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=3)
    parser.add_argument("--initial", type=int, default=60)
    parser.add_argument("--batch", type=int, default=40)
    parser.add_argument("--work", type=Path, required=True)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=False)
    rng = np.random.default_rng(2026)
    test_x = np.column_stack([rng.uniform(0, 100, 2000), rng.uniform(0, 1000, 2000)])
    test = args.work / "truth_full_range.csv"
    write_rows(test, test_x, truth(test_x))  # noise-free: the error of the model itself
    table = {method: [] for method in ("initial", *METHODS)}
    for replicate in range(args.replicates):
        rng = np.random.default_rng([2026, replicate])
        x0 = np.column_stack([rng.uniform(0, 50, args.initial), rng.uniform(0, 500, args.initial)])
        noise = rng.normal(0.0, NOISE_SD, size=(args.initial + args.batch, 2))
        folder = args.work / f"lab{replicate}"
        folder.mkdir()
        plate = folder / "plate0.csv"
        write_rows(plate, x0, truth(x0) + noise[:args.initial])
        tlkeras("fit", *FIT, f"--measurements={plate}", f"--out={folder / 'model0'}")
        table["initial"].append(scores(folder / "model0", test, folder / "scores0.json"))
        for method in METHODS:
            picks = folder / f"{method}.csv"
            tlkeras("suggest", f"--model={folder / 'model0'}", f"--n={args.batch}", "--region=0,50,0,500",
                    f"--method={method}", f"--seed={replicate}", f"--out={picks}")
            x = np.concatenate([x0, read_inputs(picks)])
            both = folder / f"plate1_{method}.csv"
            write_rows(both, x, truth(x) + noise)
            tlkeras("fit", *FIT, f"--measurements={both}", f"--out={folder / f'model1_{method}'}")
            table[method].append(scores(folder / f"model1_{method}", test, folder / f"scores1_{method}.json"))
        print(f"replicate {replicate}: " + ", ".join(f"{m} {np.mean(list(table[m][-1].values())):.0f}"
                                                   for m in table), flush=True)
    (args.work / "results.json").write_text(json.dumps(table, indent=2))
    print(f"\nRMSE on the full range against the truth (mean of gfp and rfp), {args.replicates} replicates, "
          f"N0 = {args.initial}, + {args.batch} picked:")
    uniform = np.array([np.mean(list(s.values())) for s in table["uniform"]])
    for method, rows in table.items():
        rmse = np.array([np.mean(list(s.values())) for s in rows])
        paired = "" if method in ("initial", "uniform") else (
            f"   vs uniform: {np.mean(rmse - uniform):+.0f} (lower in {int(np.sum(rmse < uniform))} of {len(rmse)})")
        print(f"  {method:<20}{rmse.mean():>8.0f} ± {rmse.std(ddof=1) if len(rmse) > 1 else 0:.0f}{paired}")


if __name__ == "__main__":
    main()
