"""Experiment 4: where should a lab measure next? Design methods against uniform sampling.

    python experiments/exp4.py                      # hill2, hill3, phosphorylation; 10 labs per method
    python experiments/exp4.py --preset=quick       # a few minutes, every output
    python experiments/exp4.py --region=big         # the labs may measure anywhere on the big domain
    python experiments/exp4.py --hill_n=2 --methods=uniform,space_filling --replicates=20
    python experiments/exp4.py --simple_system=examples/plate/simple_model.py:g \
        --system=examples/plate/simple_model.py:truth --num_inputs=2 --big_domain=... --small_domain=...

Each simulated lab starts from --start uniform pairs where it can measure (the small domain; with
--region=big, anywhere), then --rounds times adds --batch pairs picked by each method
(tlkeras.design.methods) with its transfer ensemble (one member per --seeds), refits, and is scored
by its ensemble mean's L1 on the big domain. Every method's labs share their starting pairs,
noise, pretrained models and initial weights. Reported: L1 against N per method, the saving
against uniform and space_filling at equal L1 with bootstrap intervals, paired Wilcoxon tests,
and TensorBoard runs with N as the step. Every flag: --helpfull.
"""

from pathlib import Path

from absl import app, flags

from tlkeras.cli.experiment import FLAGS, define_flags, parse_flags, real_systems, run
from tlkeras.cli.flags import require_distinct_positive, require_names
from tlkeras.design.methods import METHODS

define_flags(Path(__file__).resolve().parents[1] / "logs", volumes_default=None, presets={
    "quick": {"replicates": 3, "rounds": 2, "start": 20, "batch": 20, "candidates": 200, "targets": 100}},
    interval_check=False)
FLAGS.set_default("arms", ["transfer", "baseline"])
FLAGS.set_default("seeds", ["0", "1", "2", "3", "4"])
flags.DEFINE_list("hill_n", ["2", "3"], "Hill orders n of the real systems (each > 0).")
require_distinct_positive("hill_n", FLAGS, example="2,3")
flags.DEFINE_boolean("phosphorylation", None, "Also the phosphorylation cycle (default: yes, unless --hill_n "
                     "or --system is given).")
flags.DEFINE_list("system", [], "Further real systems: built-in names or your own numpy functions as "
                  "path/to/file.py:f or module:f; with this flag, hill<n> only where --hill_n is given.")
flags.DEFINE_list("methods", list(METHODS), f"Design methods to compare: {', '.join(METHODS)}.")
require_names("methods", FLAGS, tuple(METHODS))
flags.DEFINE_integer("start", 50, "Pairs every lab starts from (uniform where it can measure): N0.", lower_bound=2,
                     upper_bound=1_000_000)
flags.DEFINE_integer("rounds", 4, "Rounds of picks after the start.", lower_bound=1, upper_bound=100)
flags.DEFINE_integer("batch", 50, "Pairs a lab adds per round (picked by the method).", lower_bound=1,
                     upper_bound=1_000_000)
flags.DEFINE_integer("reference_until", 0, "uniform and space_filling go on (transfer arm only) in rounds of "
                     "--batch until this N, so that a method's saving against them can be read beyond the last "
                     "round; 0: twice the last round's N (savings up to 50% measurable).", lower_bound=0,
                     upper_bound=10_000_000)
flags.DEFINE_integer("replicates", 10, "Simulated labs per method and system (paired across methods).",
                     lower_bound=2, upper_bound=10_000)
flags.DEFINE_enum("region", "small", ["small", "big"], "Where the labs measure: the small domain (the study's "
                  "constraint) or anywhere on the big domain.")
flags.DEFINE_integer("candidates", 1000, "Candidate points a lab picks from each round (uniform where it "
                     "measures).", lower_bound=1, upper_bound=1_000_000)
flags.DEFINE_integer("targets", 500, "Points of the big domain the integrated methods average over.",
                     lower_bound=1, upper_bound=1_000_000)

DRIVER_FLAGS = ["hill_n", "phosphorylation", "system", "methods", "start", "rounds", "batch", "reference_until",
                "replicates", "region", "candidates", "targets"]


def main(argv: list[str]) -> None:
    systems = real_systems(FLAGS.hill_n, FLAGS["hill_n"].present, FLAGS.phosphorylation, FLAGS.system)
    if FLAGS.batch > FLAGS.candidates:
        from tlkeras.cli.lifecycle import fail

        fail(f"--batch={FLAGS.batch} is not allowed: expected at most --candidates={FLAGS.candidates} picks per round")
    volumes = [FLAGS.start + k * FLAGS.batch for k in range(FLAGS.rounds + 1)]
    until = FLAGS.reference_until or 2 * volumes[-1]
    references = list(range(volumes[-1] + FLAGS.batch, until + 1, FLAGS.batch))
    design = dict(design_reference_volumes=tuple(references), design_methods=tuple(dict.fromkeys(FLAGS.methods)), design_replicates=FLAGS.replicates,
                  design_region=FLAGS.region, design_candidates=FLAGS.candidates, design_targets=FLAGS.targets)
    run("exp4", argv, systems, volumes, driver_flags=DRIVER_FLAGS, design=design)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
