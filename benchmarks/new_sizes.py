"""What a job at a data size the process has not trained before costs before it trains.

    python benchmarks/new_sizes.py --compare=HEAD~1     # this tree against another commit, side by side
    python benchmarks/new_sizes.py --sizes=50,100,200 --members=5 --epochs=2

In one process, one stack of K members after another (a sweep's worker), each at the next data
size of --sizes, trains --epochs epochs; a first stack at another size pays the process's
one-time costs first. Printed: each job's seconds (trace, compile if any, training) and their sum.
The default sizes are Experiment 3's volumes; Experiment 4's rounds and every fine-tuning of a
sweep are the same pattern. With --compare=REV, REV's `tlkeras/` (`git archive`) and this
tree's run in turns, each in its own process, best of --rounds, and the ratio is printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
from trees import commit_and_this_tree  # noqa: E402

flags.DEFINE_list("sizes", ["50", "100", "200", "500", "1000", "2000", "5000"], "Data sizes, one job each, in order.")
flags.DEFINE_integer("members", 5, "Members per stack.", lower_bound=1)
flags.DEFINE_integer("epochs", 2, "Epochs each job trains.", lower_bound=1)
flags.DEFINE_string("compare", "", "A git revision: run its engine and this tree's in turns and print the ratio.")
flags.DEFINE_integer("rounds", 2, "With --compare: rounds of (old, new); the best of each is kept.", lower_bound=1)
FLAGS = flags.FLAGS


def measure() -> dict:
    import numpy as np

    import tlkeras
    from tlkeras.nn import engine, models
    from tlkeras.runtime.startup import configure_threads

    configure_threads(intra_op=1, inter_op=1)
    spec = models.NetworkSpec()
    k = FLAGS.members
    rng = np.random.default_rng(0)

    def job(size: int) -> float:
        stack = models.build_stack(spec, k)
        models.load_members(stack, [models.build_mlp(spec, seed=s) for s in range(k)])
        x = rng.uniform(0, 20, (k, size, 2)).astype(np.float32)
        y = rng.normal(size=(k, size, 2)).astype(np.float32)
        start = time.perf_counter()
        engine.StackTrainer(stack, 1e-3, 32).fit(x, y, FLAGS.epochs, shuffle_seeds=list(range(k)))
        return time.perf_counter() - start

    job(37)  # the process's one-time costs, at a size not measured
    seconds = {int(n): job(int(n)) for n in FLAGS.sizes}
    return {"seconds": seconds, "module": tlkeras.__file__}


def compare(revision: str) -> None:
    arguments = [f"--sizes={','.join(FLAGS.sizes)}", f"--members={FLAGS.members}", f"--epochs={FLAGS.epochs}"]
    with commit_and_this_tree(revision) as trees:
        best: dict[str, dict] = {}
        for round_index in range(FLAGS.rounds):
            for name, tree in trees.items():
                result = subprocess.run([sys.executable, str(Path(__file__).resolve()), *arguments],
                                        env=dict(os.environ, PYTHONPATH=tree), capture_output=True, text=True)
                if result.returncode != 0:
                    sys.exit(f"the engine of {name} did not run:\n{result.stderr[-2000:]}")
                row = json.loads(result.stdout.strip().splitlines()[-1])
                if not row["module"].startswith(tree):
                    sys.exit(f"measured {row['module']}, not the engine of {name} in {tree}")
                total = sum(row["seconds"].values())
                if name not in best or total < sum(best[name].values()):
                    best[name] = row["seconds"]
                print(f"  round {round_index + 1}, {name}: {total:.2f} s", flush=True)
    old, new = list(trees)
    print()
    print(f"| data size | {old}: s per job | {new}: s per job |")
    print("|---|---|---|")
    for n in FLAGS.sizes:
        print(f"| {n} | {best[old][n]:.2f} | {best[new][n]:.2f} |")
    a, b = sum(best[old].values()), sum(best[new].values())
    print(f"| all {len(FLAGS.sizes)} jobs | {a:.2f} | {b:.2f} ({a / b:.2f}x faster) |")


def main(argv):
    del argv
    if FLAGS.compare:
        print(f"{os.cpu_count()} cores; K = {FLAGS.members}, {FLAGS.epochs} epochs per job, sizes {','.join(FLAGS.sizes)}; "
              f"best of {FLAGS.rounds} rounds")
        compare(FLAGS.compare)
        return
    print(json.dumps(measure()))


if __name__ == "__main__":
    app.run(main)
