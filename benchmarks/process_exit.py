"""How long a tlkeras process takes to end after its last line, and a command end to end.

    python benchmarks/process_exit.py --compare=HEAD~1      # a commit's tree and this one, in turns

Every driver, `tlkeras` command and worker process imports TensorFlow (`runtime.startup`), does
its work and exits; the exit is pure overhead a user waits for (and a run waits for, at its end,
for its workers'). Measured, for each tree, each in its own process, in turns, best of --rounds:

- exit: a process that imports TensorFlow as tlkeras does, builds a Keras model, runs one compiled
  program, prints a line and returns: the seconds from that line until the process has ended;
- predict: `python -m tlkeras.cli predict` on a model folder (--model; default: a quick fit of
  examples/plate made once in a temporary folder), end to end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags
from trees import ROOT, commit_and_this_tree

flags.DEFINE_string("compare", "HEAD~1", "A git revision: its tree and this one, in turns.")
flags.DEFINE_integer("rounds", 3, "Rounds of (old, new); the best of each is kept.", lower_bound=1)
flags.DEFINE_string("model", "", "A `tlkeras fit` model folder for the predict timing (default: a quick fit).")
FLAGS = flags.FLAGS

PROBE = """
import numpy as np
from tlkeras.runtime.startup import import_tensorflow
tf = import_tensorflow()
import keras
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(10, activation="relu"), keras.layers.Dense(2)])
program = tf.function(lambda x: model(x), jit_compile=True)
program(np.zeros((32, 2), np.float32)).numpy()
print("done", flush=True)
"""


def exit_seconds(tree: str) -> float:
    env = dict(os.environ, PYTHONPATH=tree, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen([sys.executable, "-c", PROBE], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, env=env, cwd=tempfile.gettempdir())
    line = process.stdout.readline()
    start = time.perf_counter()
    process.wait()
    if line.strip() != "done" or process.returncode != 0:
        raise SystemExit(f"the probe failed in {tree} (status {process.returncode})")
    return time.perf_counter() - start


def predict_seconds(tree: str, model: Path, out: Path) -> float:
    env = dict(os.environ, PYTHONPATH=tree)
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "tlkeras.cli", "predict", f"--model={model}", "--grid=50",
                             f"--out={out}"], capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"predict failed in {tree}: {result.stderr.strip()}")
    return seconds


def quick_fit(folder: Path) -> Path:
    example = ROOT / "examples" / "plate"
    out = folder / "model"
    subprocess.run([sys.executable, "-m", "tlkeras.cli", "fit", f"--simple={example / 'simple_model.py'}:g",
                    "--domain=0,100,0,1000", f"--measurements={example / 'plate.csv'}", "--inputs=aTc,IPTG",
                    "--outputs=gfp,rfp", "--preset=quick", "--seeds=0,1", "--folds=2", "--cache=false",
                    f"--out={out}"], check=True, capture_output=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return out


def main(argv):
    del argv
    with tempfile.TemporaryDirectory(prefix="tlkeras-exit-") as scratch:
        model = Path(FLAGS.model) if FLAGS.model else quick_fit(Path(scratch))
        with commit_and_this_tree(FLAGS.compare) as trees:
            best: dict[str, dict[str, float]] = {name: {"exit": float("inf"), "predict": float("inf")} for name in trees}
            for _ in range(FLAGS.rounds):
                for name, tree in trees.items():
                    best[name]["exit"] = min(best[name]["exit"], exit_seconds(tree))
                    best[name]["predict"] = min(best[name]["predict"],
                                                predict_seconds(tree, model, Path(scratch) / "pred.csv"))
    print(f"best of {FLAGS.rounds} rounds, in turns")
    print("| tree | exit after the last line | `tlkeras predict --grid=50` end to end |")
    print("|---|---|---|")
    for name, figures in best.items():
        print(f"| {name} | {figures['exit']:.2f} s | {figures['predict']:.2f} s |")


if __name__ == "__main__":
    app.run(main)
