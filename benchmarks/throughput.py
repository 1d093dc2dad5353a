"""Throughput: a plain Keras `model.fit` vs the tlkeras engine, side by side in one run.

    python benchmarks/throughput.py                   # K = 1, 8, 32; prints a table and the ratios
    python benchmarks/throughput.py --members=8 --member_samples=1280000
    python benchmarks/throughput.py --compare=HEAD~3  # today's engine against another commit's

Both train the protocol MLP (2 -> 5 x 10 relu -> 2) with Adam and MSE at the same batch size on
the same data (member k of the engine gets its own set of --set_size pairs of the Hill n = 2
system; the plain model trains on member 0's set), for the same number of member-samples:

- plain:   one functional MLP, `model.compile(optimizer="adam", loss="mse")` (the defaults a
           user writes), `model.fit` on a shuffled, batched, prefetched tf.data pipeline;
- tlkeras: `StackTrainer` (the engine the drivers use) training a stack of K members;
- bare:    (--bare) a bare XLA while-loop of forward, backward and Adam over a fixed order of
           the same data, written out with tf.einsum: no Keras, no shuffle, no masking. What
           the engine's work costs without anything else the engine does. Beside it, the
           engine's compiled program alone, its minibatch orders (the shuffle: a sort per
           epoch on the host) made before the timing: the program's cost apart from the shuffle's.

Compilation is excluded from all (one warm-up call each). The ratio is member-samples per
second over plain's, measured in the same run, so machine noise hits both alike.

--compare=REV extracts commit REV's `tlkeras/` (`git archive`) into a temporary folder and
measures its engine and this tree's in turns, each in its own process (`--rounds` rounds of
old, new; the best of each kept), then prints the new over the old at every K: the check that
a change to the engine made it faster, on whatever machine it runs.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402
from trees import commit_and_this_tree  # noqa: E402

flags.DEFINE_list("members", ["1", "8", "32"], "Stack sizes K to measure.")
flags.DEFINE_integer("member_samples", 640_000, "Member-samples each measurement trains.", lower_bound=1000)
flags.DEFINE_integer("set_size", 20_000, "Training pairs per member.", lower_bound=32)
flags.DEFINE_integer("batch_size", 32, "Minibatch size (the protocol's 32).", lower_bound=1)
flags.DEFINE_integer("intra_op_threads", 1, "TensorFlow intra-op threads.", lower_bound=1)
flags.DEFINE_bool("fine_tuning", False, "Also measure every K with the fine-tuning strategies' program (an L2-SP "
                  "pull, alpha 0, and update masks of ones: engine.Regime with an anchor), beside the plain one.")
flags.DEFINE_bool("bare", False, "Also measure the bare XLA loop (no Keras, no shuffle) at every K.")
flags.DEFINE_string("compare", "", "A git revision: measure its engine and this tree's in turns, each in its own "
                    "process, and print the ratio at every K.")
flags.DEFINE_integer("rounds", 2, "With --compare: rounds of (old, new) measurements; the best of each is kept.",
                     lower_bound=1)
flags.DEFINE_bool("engine_only", False, "Measure the engine only and print one JSON line per K (what --compare runs "
                  "in each process).")
FLAGS = flags.FLAGS


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def member_sets(count: int, size: int):
    from tlkeras.nn import data
    from tlkeras.systems.mechanistic import SystemParams, hill

    return [data.sample_set(lambda x: hill(x, SystemParams(), 2.0), data.Domain(0, 20), size, 2, 1.0, seed=k)
            for k in range(count)]


def engine_rate(k: int, sets, batch: int, fine_tuning: bool = False) -> tuple[float, float]:
    """Member-samples per second of `StackTrainer` on a stack of k members (compilation
    excluded), and the seconds per step."""
    import numpy as np

    from tlkeras.nn import engine, models

    spec = models.NetworkSpec()
    n = len(sets[0][0])
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
    return epochs * n * k / log.seconds, log.seconds / (epochs * -(-n // batch))


def program_rate(k: int, sets, batch: int) -> tuple[float, float]:
    """The engine's compiled program alone (`StackTrainer`'s `run`, as `fit` calls it): member-samples
    per second and seconds per step, the chunk's minibatch orders (the per-epoch shuffle, a sort on
    the host) and its data prepared before the timing; a chunk as `fit` sizes it (~4,000 steps).
    With the bare loop's figure, it tells the program's cost from the shuffle's."""
    import numpy as np
    import tensorflow as tf

    from tlkeras.nn import engine, models

    spec = models.NetworkSpec()
    n = len(sets[0][0])
    stack = models.build_stack(spec, k)
    models.load_members(stack, [models.build_mlp(spec, seed=s) for s in range(k)])
    trainer = engine.StackTrainer(stack, 1e-3, batch)
    steps = -(-n // batch)
    epochs = max(1, min(4000 // steps, round(FLAGS.member_samples / (k * n))))  # engine_rate's epochs
    samples, slots = engine._bucket(n, engine.SAMPLE_BUCKET), engine._bucket(epochs * steps, engine.STEP_BUCKET)
    run = trainer._compiled_run(k, samples, slots)
    x = tf.constant(engine._padded(np.stack([s[0] for s in sets[:k]]), samples))
    y = tf.constant(engine._padded(np.stack([s[1] for s in sets[:k]]), samples))
    params = [tf.identity(v.value) for v in trainer._variables]
    moments = [tf.zeros_like(p) for p in params for _ in range(2)]
    fixed = (tf.constant(epochs), tf.constant(n), tf.constant(0, tf.int64), tf.constant(trainer._learning_rates))
    calls = max(1, round(FLAGS.member_samples / (k * n * epochs)))
    orders = [trainer._orders(list(range(k)), 1 + c * epochs, epochs, n, slots) for c in range(calls + 1)]
    run(x, y, orders[0], params, moments, *fixed)[0][0].numpy()  # compile
    best = float("inf")
    for _ in range(3):  # the best of three: the first calls also pay the allocator's growth
        start = time.perf_counter()
        trained, state = params, moments
        for c in range(calls):
            trained, state, _ = run(x, y, orders[c + 1], trained, state, *fixed)
        trained[0].numpy()
        best = min(best, time.perf_counter() - start)
    return calls * epochs * n * k / best, best / (calls * epochs * steps)


def bare_rate(k: int, sets, batch: int) -> tuple[float, float]:
    """The bare XLA loop's member-samples per second and seconds per step (see the docstring)."""
    import numpy as np
    import tensorflow as tf

    from tlkeras.nn import engine, models

    spec = models.NetworkSpec()
    n = len(sets[0][0])
    steps = n // batch  # whole batches only: no masking
    layers = len(spec.layer_sizes())
    stack = models.build_stack(spec, k)
    models.load_members(stack, [models.build_mlp(spec, seed=s) for s in range(k)])
    params = [tf.constant(v.numpy()) for v in stack.trainable_variables]
    moments = [tf.zeros_like(p) for p in params for _ in range(2)]

    def in_steps(values):  # [K, n, f] -> [steps, batch, K, f]
        values = np.stack(values)[:, : steps * batch]
        return tf.constant(np.transpose(values.reshape(k, steps, batch, -1), (1, 2, 0, 3)))

    xs, ys = in_steps([s[0] for s in sets[:k]]), in_steps([s[1] for s in sets[:k]])

    @tf.function(jit_compile=True)
    def run(params, moments, epochs):
        def step_body(i, params, moments):
            s = i % steps
            with tf.GradientTape() as tape:
                tape.watch(params)
                h = xs[s]
                for layer in range(layers):
                    h = tf.einsum("bki,kio->bko", h, params[2 * layer]) + params[2 * layer + 1]
                    h = tf.nn.relu(h) if layer < layers - 1 else h
                loss = tf.reduce_sum(tf.reduce_mean(tf.square(h - ys[s]), axis=[0, 2]))
            grads = tape.gradient(loss, params)
            t = tf.cast(i + 1, tf.float32)
            step_size = 1e-3 * tf.sqrt(1.0 - engine.ADAM_BETA_2**t) / (1.0 - engine.ADAM_BETA_1**t)
            new_params, new_moments = [], []
            for j, (p, g) in enumerate(zip(params, grads)):
                p, m, v = engine.adam_update(p, g, moments[2 * j], moments[2 * j + 1], step_size)
                new_params.append(p)
                new_moments += [m, v]
            return i + 1, new_params, new_moments

        return tf.while_loop(lambda i, *_: i < epochs * steps, step_body, (tf.constant(0), params, moments))[1]

    epochs = max(1, round(FLAGS.member_samples / (k * n)))
    run(params, moments, tf.constant(1))[0].numpy()  # compile
    start = time.perf_counter()
    run(params, moments, tf.constant(epochs))[0].numpy()
    seconds = time.perf_counter() - start
    return epochs * steps * batch * k / seconds, seconds / (epochs * steps)


def compare(revision: str, sizes: list[int]) -> None:
    """This tree's engine against `revision`'s, each measured in its own process, in turns."""
    with commit_and_this_tree(revision) as trees:
        best: dict[str, dict[int, dict]] = {name: {} for name in trees}
        arguments = [f"--members={','.join(map(str, sizes))}", f"--member_samples={FLAGS.member_samples}",
                     f"--set_size={FLAGS.set_size}", f"--batch_size={FLAGS.batch_size}",
                     f"--intra_op_threads={FLAGS.intra_op_threads}", "--engine_only"]
        for round_index in range(FLAGS.rounds):
            for name, tree in trees.items():
                environment = dict(os.environ, PYTHONPATH=tree)
                result = subprocess.run([sys.executable, str(Path(__file__).resolve()), *arguments], env=environment,
                                        capture_output=True, text=True)
                if result.returncode != 0:
                    sys.exit(f"the engine of {name} did not run:\n{result.stderr[-2000:]}")
                for line in result.stdout.splitlines():
                    if line.startswith("{"):
                        row = json.loads(line)
                        if not row["module"].startswith(tree):
                            sys.exit(f"measured {row['module']}, not the engine of {name} in {tree}")
                        kept = best[name].get(row["members"])
                        if kept is None or row["rate"] > kept["rate"]:
                            best[name][row["members"]] = row
                print(f"  round {round_index + 1}, {name}: "
                      + ", ".join(f"K={k} {1e3 * best[name][k]['step_seconds']:.4f} ms/step" for k in sizes), flush=True)
    old, new = list(trees)
    print()
    print(f"| members | {old}: ms per step | {new}: ms per step | member-samples/s, {new} | ratio new/old |")
    print("|---|---|---|---|---|")
    for k in sizes:
        a, b = best[old][k], best[new][k]
        print(f"| {k} | {1e3 * a['step_seconds']:.4f} | {1e3 * b['step_seconds']:.4f} | {b['rate']:,.0f} | "
              f"**{b['rate'] / a['rate']:.2f}x** |")


def main(argv):
    del argv
    sizes = [int(k) for k in FLAGS.members]
    if FLAGS.compare:
        print(f"machine: {os.cpu_count()} cores, {cpu_model()}; {FLAGS.member_samples:,} member-samples per "
              f"measurement, {FLAGS.set_size} pairs per member, batch {FLAGS.batch_size}, {FLAGS.rounds} rounds")
        compare(FLAGS.compare, sizes)
        return

    import keras
    import tensorflow as tf

    import tlkeras
    from tlkeras.nn import data, models
    from tlkeras.runtime.startup import configure_threads

    configure_threads(intra_op=FLAGS.intra_op_threads, inter_op=1)
    tf.get_logger().setLevel("ERROR")
    n, batch = FLAGS.set_size, FLAGS.batch_size
    sets = member_sets(max(sizes), n)
    if FLAGS.engine_only:
        for k in sizes:
            rate, step = engine_rate(k, sets, batch)
            print(json.dumps({"members": k, "rate": rate, "step_seconds": step, "module": tlkeras.__file__}),
                  flush=True)
        return
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}; TensorFlow {tf.__version__}, Keras {keras.__version__}")
    print(f"batch {batch}, {n} pairs per member, {FLAGS.member_samples:,} member-samples per measurement")

    # plain model.fit, as a user writes it
    x0, y0 = sets[0]
    plain = models.build_mlp(models.NetworkSpec(), seed=0)
    plain.compile(optimizer="adam", loss="mse")
    dataset = data.make_dataset(x0, y0, batch_size=batch, shuffle_seed=0)
    plain.fit(dataset.take(20), epochs=1, verbose=0)  # warm-up: tracing
    epochs = max(1, round(FLAGS.member_samples / n))
    start = time.perf_counter()
    plain.fit(dataset, epochs=epochs, verbose=0)
    plain_rate = epochs * n / (time.perf_counter() - start)
    rows = [("plain model.fit", 1, plain_rate, 1.0 / plain_rate * batch)]

    for k in sizes:
        for fine_tuning in (False, True) if FLAGS.fine_tuning else (False,):
            rate, step = engine_rate(k, sets, batch, fine_tuning)
            rows.append((f"tlkeras K={k}" + (", fine-tuning program" if fine_tuning else ""), k, rate, step))
        if FLAGS.bare:
            rate, step = program_rate(k, sets, batch)
            rows.append((f"tlkeras K={k}, its program alone (no shuffle timed)", k, rate, step))
            rate, step = bare_rate(k, sets, batch)
            rows.append((f"bare XLA loop K={k}", k, rate, step))

    print()
    print("| trainer | members | member-samples/s | ratio to plain | time per step |")
    print("|---|---|---|---|---|")
    for name, k, rate, step in rows:
        print(f"| {name} | {k} | {rate:,.0f} | {rate / plain_rate:.1f}x | {1e3 * step:.3f} ms |")


if __name__ == "__main__":
    app.run(main)
