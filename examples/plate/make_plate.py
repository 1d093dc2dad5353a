"""Generate plate.csv: 300 noisy measurements of `truth` on the affordable range
(aTc 0-50 ng/mL, IPTG 0-500 uM; the full range is aTc 0-100, IPTG 0-1000), and
check_full_range.csv: 200 more on the full range, the measurements the lab could not afford
(to see with `tlkeras evaluate` how a model extrapolates).

    python examples/plate/make_plate.py   # writes both files (fixed seeds)
"""

import csv
from pathlib import Path

import numpy as np
from simple_model import truth

NOISE_SD = 800.0


def write(name: str, rows: int, atc_max: float, iptg_max: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.uniform(0, atc_max, rows), rng.uniform(0, iptg_max, rows)])
    y = truth(x) + rng.normal(0.0, NOISE_SD, size=(rows, 2))
    path = Path(__file__).with_name(name)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["well", "aTc", "IPTG", "gfp", "rfp"])
        for index, (inputs, outputs) in enumerate(zip(x, y)):
            well = f"{'ABCDEFGH'[index // 12 % 8]}{index % 12 + 1}/plate{index // 96 + 1}"
            writer.writerow([well, *(f"{v:.3f}" for v in inputs), *(f"{v:.1f}" for v in outputs)])
    print(f"wrote {path} ({rows} rows)")


def main() -> None:
    write("plate.csv", 300, 50.0, 500.0, seed=7)
    write("check_full_range.csv", 200, 100.0, 1000.0, seed=8)


if __name__ == "__main__":
    main()
