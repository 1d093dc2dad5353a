"""Experiment 2: how far may the real system be from the simple one? (the system sweep)

    python experiments/exp2.py                      # Hill n = 1, 2, 3, 4 and phosphorylation, N = 1000
    python experiments/exp2.py --hill_n=3           # the order-3 Hill system alone
    python experiments/exp2.py --hill_n=2,3 --phosphorylation
    python experiments/exp2.py --preset=quick       # about a minute, every output

Transfer, baseline and oracle for each real system at one real-data volume. Every flag:
--helpfull.
"""

from common import FLAGS, define_protocol_flags, fail, parse_flags, run

from absl import app, flags

define_protocol_flags(volumes_default=None)
flags.DEFINE_list("hill_n", ["1", "2", "3", "4"], "Hill orders n of the real systems (each > 0).")
flags.register_validator(
    "hill_n",
    lambda values: all(_positive_number(v) for v in values) and len(set(map(float, values))) == len(values),
    message="--hill_n takes distinct numbers > 0, comma-separated (for example 1,2,3,4)",
)
flags.DEFINE_boolean("phosphorylation", None, "Also learn the phosphorylation cycle (default: yes, "
                     "unless --hill_n is given).")
flags.DEFINE_list("system", [], "Further real systems: built-in names or your own numpy functions as "
                  "path/to/file.py:f or module:f; with this flag, hill<n> only where --hill_n is given.")
flags.DEFINE_integer("volume", 1000, "Real small-domain pairs N for fine-tuning and baseline.",
                     lower_bound=1, upper_bound=10_000_000)
MODULE_FLAGS = [f.name for f in FLAGS.get_flags_for_module("common")] + ["hill_n", "phosphorylation", "system", "volume"]


def _positive_number(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return value > 0 and value < float("inf")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        fail(f"unexpected arguments {argv[1:]}; every setting is a --flag (see --helpfull)")
    given = FLAGS["hill_n"].present or bool(FLAGS.system)
    systems = [f"hill{float(n):g}" for n in FLAGS.hill_n] if FLAGS["hill_n"].present or not given else []
    phosphorylation = FLAGS.phosphorylation
    if phosphorylation is None:
        phosphorylation = not given
    if phosphorylation:
        systems.append("phosphorylation")
    systems += FLAGS.system
    run("exp2", systems, [FLAGS.volume], MODULE_FLAGS)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
