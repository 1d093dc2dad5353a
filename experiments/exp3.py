"""Experiment 3: which way of using the simple model saves the most real data? (strategies)

    python experiments/exp3.py                          # every strategy, Hill n = 2, the full protocol
    python experiments/exp3.py --strategies=fine_tune_all,wise_ft,residual --hill_n=1,2
    python experiments/exp3.py --preset=quick           # a few minutes, every output

Every transfer strategy (docs/strategies.md) at every volume N, beside the baseline (N real
pairs only) and the oracle, for each real system; the headline per strategy: the real data it
saves against the baseline, with bootstrap intervals, and paired tests against fine_tune_all
and the baseline. Every flag: --helpfull.
"""

from pathlib import Path

from absl import app, flags

from tlkeras.cli.experiment import FLAGS, define_flags, parse_flags, run
from tlkeras.cli.flags import require_distinct_positive
from tlkeras.core.vocabulary import TRANSFER_STRATEGIES

define_flags(Path(__file__).resolve().parents[1] / "logs",
             volumes_default=["50", "100", "200", "500", "1000", "2000", "5000"],
             strategies_default=TRANSFER_STRATEGIES)
flags.DEFINE_list("hill_n", ["2"], "Hill orders n of the real systems (each > 0).")
require_distinct_positive("hill_n", FLAGS, example="1,2")
flags.DEFINE_list("system", [], "Further real systems: phosphorylation, or your own numpy functions as "
                  "path/to/file.py:f or module:f.")


def main(argv: list[str]) -> None:
    systems = [f"hill{float(n):g}" for n in FLAGS.hill_n] + list(FLAGS.system)
    run("exp3", argv, systems, [int(v) for v in FLAGS.volumes], driver_flags=["hill_n", "system"])


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
