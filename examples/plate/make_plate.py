"""Generate plate.csv: 300 noisy measurements of `truth` on the affordable range
(aTc 0-50 ng/mL, IPTG 0-500 uM; the full range is aTc 0-100, IPTG 0-1000).

    python examples/plate/make_plate.py   # writes examples/plate/plate.csv (fixed seed)
"""

import csv
from pathlib import Path

import numpy as np

from simple_model import truth

ROWS, NOISE_SD, SEED = 300, 800.0, 7


def main() -> None:
    rng = np.random.default_rng(SEED)
    x = np.column_stack([rng.uniform(0, 50, ROWS), rng.uniform(0, 500, ROWS)])
    y = truth(x) + rng.normal(0.0, NOISE_SD, size=(ROWS, 2))
    path = Path(__file__).with_name("plate.csv")
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["well", "aTc", "IPTG", "gfp", "rfp"])
        for index, (inputs, outputs) in enumerate(zip(x, y)):
            well = f"{'ABCDEFGH'[index // 12 % 8]}{index % 12 + 1}/plate{index // 96 + 1}"
            writer.writerow([well, *(f"{v:.3f}" for v in inputs), *(f"{v:.1f}" for v in outputs)])
    print(f"wrote {path} ({ROWS} rows)")


if __name__ == "__main__":
    main()
