"""The cost of evaluating every model during its training (TensorBoard's eval curves).

    python benchmarks/evaluation_overhead.py
    python benchmarks/evaluation_overhead.py --evaluations=40 --eval_points=100

Trains the same stacks twice in one process, side by side, with the study's defaults: once with
`StudyConfig.evaluations` evaluations inside training (each predicts the evaluation points with
every member and scores them), once with none; for a fine-tuning job (5 members, N = 1000, 200
epochs, as the transfer arm) and a from-scratch job (5 members, N = 1000, 2000 epochs, as the
baseline). Compilation is excluded (a warm-up fit each). Prints the ratio with/without.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

flags.DEFINE_integer("evaluations", 40, "Evaluations per training.", lower_bound=1)
flags.DEFINE_integer("eval_points", 100, "Evaluation points (the protocol's 100; a 100x100 grid is 10000).",
                     lower_bound=1)
flags.DEFINE_integer("repeats", 2, "Timed fits per setting (the best is kept).", lower_bound=1)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import numpy as np

    from tlkeras.core.config import StudyConfig
    from tlkeras.nn import models
    from tlkeras.nn.engine import StackTrainer
    from tlkeras.results import evaluation
    from tlkeras.runtime.startup import configure_threads

    configure_threads(intra_op=1, inter_op=1)
    config = StudyConfig(evaluations=FLAGS.evaluations)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, (5, 1000, 2)).astype(np.float32)
    y = rng.normal(size=(5, 1000, 2)).astype(np.float32)
    points = rng.uniform(0, 20, (FLAGS.eval_points, 2)).astype(np.float32)
    truth = rng.normal(size=(FLAGS.eval_points, 2))
    inside = np.all(points <= 10, axis=1)
    print(f"{FLAGS.evaluations} evaluations of {FLAGS.eval_points} points; best of {FLAGS.repeats}")
    print("| job | epochs | without (s) | with (s) | ratio |")
    print("|---|---|---|---|---|")
    for name, epochs in (("fine-tuning (transfer)", 200), ("from scratch (baseline)", 2000)):
        times = {}
        for evaluate in (False, True):
            stack = models.build_stack(config.network, 5)
            models.load_members(stack, [models.build_mlp(config.network, seed=s) for s in range(5)])
            trainer = StackTrainer(stack, 1e-3, 32)
            every = config.evaluation_interval

            def score(epoch, params):
                predictions = trainer.predict(params, points)
                for member in predictions:
                    evaluation.score(evaluation.point_errors(member, truth), inside)

            kwargs = dict(evaluate_every=every, evaluate=score) if evaluate else {}
            trainer.fit(x, y, epochs, shuffle_seeds=list(range(5)), **kwargs)  # warm-up: the same compiled calls
            best = float("inf")
            for repeat in range(FLAGS.repeats):
                start = time.perf_counter()
                trainer.fit(x, y, epochs, shuffle_seeds=list(range(5)), first_epoch=every, **kwargs)
                best = min(best, time.perf_counter() - start)
            times[evaluate] = best
        print(f"| {name} | {epochs} | {times[False]:.2f} | {times[True]:.2f} | {times[True] / times[False]:.3f} |")


if __name__ == "__main__":
    app.run(main)
