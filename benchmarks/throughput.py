"""Throughput: a plain Keras `model.fit` vs the tlkeras engine, side by side in one process.

    python benchmarks/throughput.py                   # K = 1, 8, 32; prints a table and the ratios
    python benchmarks/throughput.py --members=8 --member_samples=1280000

Both train the protocol MLP (2 -> 5 x 10 relu -> 2) with Adam and MSE at the same batch size on
the same data (member k of the engine gets its own set of --set_size pairs of the Hill n = 2
system; the plain model trains on member 0's set), for the same number of member-samples:

- plain:   one functional MLP, `model.compile(optimizer="adam", loss="mse")` (the defaults a
           user writes), `model.fit` on a shuffled, batched, prefetched tf.data pipeline;
- tlkeras: `StackTrainer` (the engine the drivers use) training a stack of K members.

Compilation is excluded from both (one warm-up call each). The ratio is member-samples per
second of tlkeras over plain, measured in the same run, so machine noise hits both alike.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

flags.DEFINE_list("members", ["1", "8", "32"], "Stack sizes K to measure.")
flags.DEFINE_integer("member_samples", 640_000, "Member-samples each measurement trains.", lower_bound=1000)
flags.DEFINE_integer("set_size", 20_000, "Training pairs per member.", lower_bound=32)
flags.DEFINE_integer("batch_size", 32, "Minibatch size (the protocol's 32).", lower_bound=1)
flags.DEFINE_integer("intra_op_threads", 1, "TensorFlow intra-op threads.", lower_bound=1)
flags.DEFINE_bool("fine_tuning", False, "Also measure every K with the fine-tuning strategies' program (an L2-SP "
                  "pull, alpha 0, and update masks of ones: engine.Regime with an anchor), beside the plain one.")
FLAGS = flags.FLAGS


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv):
    del argv
    import keras
    import numpy as np
    import tensorflow as tf

    from tlkeras.nn import data, engine, models
    from tlkeras.runtime.startup import configure_threads
    from tlkeras.systems.mechanistic import SystemParams, hill

    configure_threads(intra_op=FLAGS.intra_op_threads, inter_op=1)
    tf.get_logger().setLevel("ERROR")
    spec = models.NetworkSpec()
    sizes = [int(k) for k in FLAGS.members]
    n, batch = FLAGS.set_size, FLAGS.batch_size

    def member_set(k):
        return data.sample_set(lambda x: hill(x, SystemParams(), 2.0), data.Domain(0, 20), n, 2, 1.0, seed=k)

    sets = [member_set(k) for k in range(max(sizes))]
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}; TensorFlow {tf.__version__}, Keras {keras.__version__}")
    print(f"batch {batch}, {n} pairs per member, {FLAGS.member_samples:,} member-samples per measurement")

    # plain model.fit, as a user writes it
    x0, y0 = sets[0]
    plain = models.build_mlp(spec, seed=0)
    plain.compile(optimizer="adam", loss="mse")
    dataset = data.make_dataset(x0, y0, batch_size=batch, shuffle_seed=0)
    plain.fit(dataset.take(20), epochs=1, verbose=0)  # warm-up: tracing
    epochs = max(1, round(FLAGS.member_samples / n))
    start = time.perf_counter()
    plain.fit(dataset, epochs=epochs, verbose=0)
    plain_rate = epochs * n / (time.perf_counter() - start)
    rows = [("plain model.fit", 1, plain_rate, 1.0)]

    for k in sizes:
        for fine_tuning in (False, True) if FLAGS.fine_tuning else (False,):
            stack = models.build_stack(spec, k)
            models.load_members(stack, [models.build_mlp(spec, seed=s) for s in range(k)])
            regime = None
            if fine_tuning:
                regime = engine.Regime([1e-3] * k, anchor=[np.array(v.numpy()) for v in stack.trainable_variables])
            trainer = engine.StackTrainer(stack, 1e-3, batch, regime)
            x = np.stack([s[0] for s in sets[:k]])
            y = np.stack([s[1] for s in sets[:k]])
            epochs = max(1, round(FLAGS.member_samples / (k * n)))
            trainer.fit(x, y, 1, shuffle_seeds=list(range(k)), epochs_per_call=epochs)  # warm-up: compile
            log = trainer.fit(x, y, epochs, shuffle_seeds=list(range(k)), first_epoch=1, epochs_per_call=epochs)
            rate = epochs * n * k / log.seconds
            name = f"tlkeras K={k}" + (", fine-tuning program" if fine_tuning else "")
            rows.append((name, k, rate, rate / plain_rate))
            steps = epochs * -(-n // batch)
            print(f"  {name}: {steps:,} steps in {log.seconds:.2f} s = {1e3 * log.seconds / steps:.3f} ms per step")

    print()
    print("| trainer | members | member-samples/s | ratio to plain |")
    print("|---|---|---|---|")
    for name, k, rate, ratio in rows:
        print(f"| {name} | {k} | {rate:,.0f} | {ratio:.1f}x |")


if __name__ == "__main__":
    app.run(main)
