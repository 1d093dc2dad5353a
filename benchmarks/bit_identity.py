"""Same numbers as another commit? Runs a study driver in that commit's tree and in this one and
compares every saved member, weight for weight (issue 25, item 5).

    python benchmarks/bit_identity.py --against=HEAD~1                  # exp1 --preset=quick
    python benchmarks/bit_identity.py --against=f0002d3 --experiment=exp3 --preset=quick

`git archive` extracts REV into a temporary folder; each tree runs
`experiments/<experiment>.py --preset=... --nocache` in its own process (its own `tlkeras` on
PYTHONPATH), into its own log folder. Then every `.keras` model of one run is loaded beside the
same file of the other and their weights compared exactly (`np.array_equal`), and the
headline numbers of `results.json` likewise. Exit status 0 only if every member and every
number is identical; otherwise it lists what differs and by how much.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

flags.DEFINE_string("against", None, "The git revision to compare with.", required=True)
flags.DEFINE_enum("experiment", "exp1", ["exp1", "exp2", "exp3"], "The study driver to run in both trees.")
flags.DEFINE_enum("preset", "quick", ["quick", "full"], "The driver's preset.")
FLAGS = flags.FLAGS

ROOT = Path(__file__).resolve().parent.parent


def run_driver(tree: Path, logdir: Path) -> Path:
    """Run the driver of `tree` into `logdir`; return its run directory."""
    command = [sys.executable, str(tree / "experiments" / f"{FLAGS.experiment}.py"), f"--preset={FLAGS.preset}",
               "--nocache", f"--logdir={logdir}"]
    result = subprocess.run(command, cwd=tree, env=dict(os.environ, PYTHONPATH=str(tree)), capture_output=True,
                            text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed in {tree}:\n{result.stderr[-3000:]}")
    runs = sorted(p.parent for p in logdir.rglob("results.json"))
    if len(runs) != 1:
        sys.exit(f"expected one run directory under {logdir}, found {len(runs)}")
    return runs[0]


def numbers(value, prefix=""):
    """Every number in a JSON value, by its path."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from numbers(item, f"{prefix}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from numbers(item, f"{prefix}[{index}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield prefix, float(value)


def main(argv):
    del argv
    import keras
    import numpy as np

    import tlkeras.nn.layers  # noqa: F401  (registers the layers strategies' models hold, for loading)

    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", FLAGS.against], check=True,
                         capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix=f"tlkeras-{sha}-") as scratch:
        old_tree = Path(scratch) / "tree"
        old_tree.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", sha], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old_tree)], input=archive, check=True)
        print(f"running {FLAGS.experiment} --preset={FLAGS.preset} at {sha} ...", flush=True)
        old_run = run_driver(old_tree, Path(scratch) / "old_logs")
        print("running it in this tree ...", flush=True)
        new_run = run_driver(ROOT, Path(scratch) / "new_logs")

        old_models = sorted(p.relative_to(old_run) for p in old_run.rglob("*.keras"))
        new_models = sorted(p.relative_to(new_run) for p in new_run.rglob("*.keras"))
        problems = []
        if old_models != new_models:
            problems.append(f"the runs saved different model files: {len(old_models)} at {sha}, "
                            f"{len(new_models)} here")
        identical = 0
        for path in sorted(set(old_models) & set(new_models)):
            a = keras.saving.load_model(old_run / path, compile=False).get_weights()
            b = keras.saving.load_model(new_run / path, compile=False).get_weights()
            if len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b)):
                identical += 1
            else:
                gap = max((float(np.abs(u - v).max()) for u, v in zip(a, b) if u.shape == v.shape), default=float("nan"))
                problems.append(f"{path}: weights differ (largest difference {gap:.3g})")
        old_numbers = dict(numbers(json.loads((old_run / "results.json").read_text())))
        new_numbers = dict(numbers(json.loads((new_run / "results.json").read_text())))
        def equal(a, b) -> bool:  # NaN (a test with nothing to test) equals NaN
            return a == b or (isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b))

        same_numbers = sum(1 for key, value in new_numbers.items() if equal(old_numbers.get(key), value))
        for key in sorted(set(old_numbers) | set(new_numbers)):
            if not equal(old_numbers.get(key), new_numbers.get(key)) and "seconds" not in key and "time" not in key:
                problems.append(f"results.json{key}: {old_numbers.get(key)} at {sha}, {new_numbers.get(key)} here")
    print(f"{identical} of {len(new_models)} members bit for bit identical to {sha}; "
          f"{same_numbers} of {len(new_numbers)} numbers of results.json equal")
    for problem in problems[:40]:
        print("  " + problem)
    if problems:
        sys.exit(f"{len(problems)} differences")


if __name__ == "__main__":
    app.run(main)
