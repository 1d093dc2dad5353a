"""Experiment 1: how much real data does transfer learning save? (the volume sweep)

    python experiments/exp1.py                      # the full protocol (Hill n = 2, 5 seeds)
    python experiments/exp1.py --preset=quick       # about a minute, every output
    python experiments/exp1.py --volumes=50,500 --seeds=0,1,2
    python experiments/exp1.py --simple_system=examples/plate/simple_model.py:g \
        --system=examples/plate/simple_model.py:truth   # any pair of systems, yours included

Transfer (pretrain on the synthetic model, save, reload, fine-tune on N real small-domain pairs)
and baseline (N real pairs only) at every volume N, and the oracle (plenty of real big-domain
pairs), scored on the big domain. Every flag: --helpfull.
"""

from pathlib import Path

from absl import app, flags

from tlkeras.cli.experiment import FLAGS, define_flags, parse_flags, run

define_flags(Path(__file__).resolve().parents[1] / "logs",
             volumes_default=["50", "100", "200", "500", "1000", "2000", "5000"])
flags.DEFINE_float("hill_n", 2.0, "Hill order n of the real system (n > 0).", lower_bound=1e-6)
flags.DEFINE_string("system", None, "Real system instead of hill<n>: hill<n>, phosphorylation, or your own "
                    "numpy function as path/to/file.py:f or module:f (as --simple_system).")


def main(argv: list[str]) -> None:
    system = FLAGS.system or f"hill{FLAGS.hill_n:g}"
    run("exp1", argv, [system], [int(v) for v in FLAGS.volumes], driver_flags=["hill_n", "system"])


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
