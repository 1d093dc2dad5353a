"""Experiment 2: how far may the real system be from the simple one? (the system sweep)

    python experiments/exp2.py                      # Hill n = 1, 2, 3, 4 and phosphorylation, N = 1000
    python experiments/exp2.py --hill_n=3           # the order-3 Hill system alone
    python experiments/exp2.py --hill_n=2,3 --phosphorylation
    python experiments/exp2.py --preset=quick       # about a minute, every output

Transfer, baseline and oracle for each real system at one real-data volume. Every flag:
--helpfull.
"""

from pathlib import Path

from absl import app, flags

from tlkeras.cli.experiment import FLAGS, define_flags, parse_flags, real_systems, run
from tlkeras.cli.flags import require_distinct_positive

define_flags(Path(__file__).resolve().parents[1] / "logs", volumes_default=None)
flags.DEFINE_list("hill_n", ["1", "2", "3", "4"], "Hill orders n of the real systems (each > 0).")
require_distinct_positive("hill_n", FLAGS, example="1,2,3,4")
flags.DEFINE_boolean("phosphorylation", None, "Also learn the phosphorylation cycle (default: yes, "
                     "unless --hill_n is given).")
flags.DEFINE_list("system", [], "Further real systems: built-in names or your own numpy functions as "
                  "path/to/file.py:f or module:f; with this flag, hill<n> only where --hill_n is given.")
flags.DEFINE_integer("volume", 1000, "Real small-domain pairs N for fine-tuning and baseline.",
                     lower_bound=1, upper_bound=10_000_000)


def main(argv: list[str]) -> None:
    systems = real_systems(FLAGS.hill_n, FLAGS["hill_n"].present, FLAGS.phosphorylation, FLAGS.system)
    run("exp2", argv, systems, [FLAGS.volume], driver_flags=["hill_n", "phosphorylation", "system", "volume"])


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
