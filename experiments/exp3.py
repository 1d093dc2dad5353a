"""Experiment 3: which way of using the simple model saves the most real data? (strategies)

    python experiments/exp3.py                          # every strategy, Hill n = 2, the full protocol
    python experiments/exp3.py --strategies=fine_tune_all,wise_ft,residual --hill_n=1,2
    python experiments/exp3.py --preset=quick           # a few minutes, every output

Every transfer strategy (README: Transfer strategies) at every volume N, beside the baseline
(N real pairs only) and the oracle, for each real system; the headline per strategy: the real
data it saves against the baseline, with bootstrap intervals, and paired tests against
fine_tune_all and the baseline. Every flag: --helpfull.
"""

from common import FLAGS, define_protocol_flags, fail, parse_flags, run

from absl import app, flags

from tlkeras.config import TRANSFER_STRATEGIES

define_protocol_flags(volumes_default=["50", "100", "200", "500", "1000", "2000", "5000"],
                      strategies_default=TRANSFER_STRATEGIES)
flags.DEFINE_list("hill_n", ["2"], "Hill orders n of the real systems (each > 0).")
flags.register_validator(
    "hill_n", lambda values: bool(values) and all(_positive_number(v) for v in values)
    and len(set(map(float, values))) == len(values),
    message="--hill_n takes distinct numbers > 0, comma-separated (for example 1,2)",
)
flags.DEFINE_list("system", [], "Further real systems: phosphorylation, or your own numpy functions as "
                  "path/to/file.py:f or module:f.")
MODULE_FLAGS = [f.name for f in FLAGS.get_flags_for_module("common")] + ["hill_n", "system"]


def _positive_number(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return 0 < value < float("inf")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        fail(f"unexpected arguments {argv[1:]}; every setting is a --flag (see --helpfull)")
    systems = [f"hill{float(n):g}" for n in FLAGS.hill_n] + list(FLAGS.system)
    run("exp3", systems, [int(v) for v in FLAGS.volumes], MODULE_FLAGS)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
