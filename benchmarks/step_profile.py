"""What one training step of the engine executes: the XLA program of a stack, counted (issue 25).

    python benchmarks/step_profile.py                 # K = 5, the pretraining set (40,000 pairs)
    python benchmarks/step_profile.py --members=32 --set_size=1000

Compiles the engine's program (`nn.engine.StackTrainer`'s `run`: an epoch loop around a step loop)
for a stack of --members protocol MLPs (2 -> 5 x 10 relu -> 2, Adam, batch 32) and reads XLA's
optimized HLO: how many instructions the step loop's body holds, how many of them are fusions
(each a kernel XLA's CPU runtime dispatches on its own) and what else (custom calls, copies,
dynamic slices, the loop's own bookkeeping). Then times the step on the same program. The numbers
say where a step's ~0.15 ms goes when its arithmetic is a few microseconds.
"""

from __future__ import annotations

import collections
import os
import re
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

flags.DEFINE_integer("members", 5, "Stack size K.", lower_bound=1)
flags.DEFINE_integer("set_size", 40_000, "Training pairs per member (the pretraining set's 40,000).", lower_bound=32)
flags.DEFINE_integer("epochs", 3, "Epochs the timing trains (after one to compile).", lower_bound=1)
flags.DEFINE_string("dump", "", "Also write the optimized HLO to this file.")
flags.DEFINE_integer("repeats", 3, "Timings of each variant (the fastest is kept).", lower_bound=1)
FLAGS = flags.FLAGS


def computations(hlo: str) -> dict[str, list[str]]:
    """HLO text -> {computation name: its instruction lines}."""
    found: dict[str, list[str]] = {}
    name = None
    for line in hlo.splitlines():
        header = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
        if header:
            name = header.group(1)
            found[name] = []
        elif line.strip() == "}":
            name = None
        elif name is not None and "=" in line:
            found[name].append(line.strip())
    return found


def opcode(line: str) -> str:
    match = re.search(r"= [^ ]+(?: \{[^}]*\})? ([\w\-]+)\(", line) or re.search(r"= \S+ ([\w\-]+)\(", line)
    return match.group(1) if match else "?"


VARIANTS = {
    "engine": "the engine's program (StackTrainer)",
    "replica": "this script's copy of it (shuffle + gather per epoch, forward, backward, Adam)",
    "sgd": "the update as plain SGD (one fused op per tensor) instead of Adam",
    "no_update": "forward + backward, gradients summed into a carry, no update",
    "forward": "forward and loss only, summed into a carry",
    "loop": "the loops and the per-epoch shuffle + gather only (a batch slice summed)",
    "no_shuffle": "as replica, without the per-epoch shuffle + gather (one fixed order)",
}


def make_variant(stack, members: int, size: int, batch: int, variant: str):
    """A throwaway program like the engine's `run`, with parts left out (VARIANTS)."""
    import numpy as np
    import tensorflow as tf

    from tlkeras.nn import engine

    steps = -(-size // batch)
    padded = steps * batch
    mask = np.zeros((steps, batch), np.float32)
    mask.reshape(-1)[:size] = 1.0
    weight_all = tf.constant(mask / mask.sum(axis=1)[:, None])

    def in_steps(values):
        return tf.transpose(tf.reshape(values, [members, steps, batch, -1]), [1, 2, 0, 3])

    def losses_of(params, xb, yb, weight):
        predictions, _ = stack.stateless_call(params, [], xb, training=True)
        return tf.reduce_sum(tf.reduce_mean(tf.square(predictions - yb), axis=-1) * weight[:, tf.newaxis], axis=0)

    @tf.function(jit_compile=True)
    def run(x, y, orders, params, moments, epochs, rates):
        fixed = (in_steps(x), in_steps(y))

        def epoch_body(e, params, moments, step, carry):
            if variant == "no_shuffle":
                xs, ys = fixed
            else:
                order = tf.pad(orders[e], [[0, 0], [0, padded - size]])
                xs, ys = in_steps(tf.gather(x, order, batch_dims=1)), in_steps(tf.gather(y, order, batch_dims=1))

            def step_body(s, params, moments, step, carry):
                weight = weight_all[s]
                if variant == "loop":
                    return s + 1, params, moments, step, carry + tf.reduce_sum(xs[s]) + tf.reduce_sum(ys[s])
                if variant == "forward":
                    return s + 1, params, moments, step, carry + tf.reduce_sum(losses_of(params, xs[s], ys[s], weight))
                with tf.GradientTape() as tape:
                    tape.watch(params)
                    total = tf.reduce_sum(losses_of(params, xs[s], ys[s], weight))
                grads = tape.gradient(total, params)
                if variant == "no_update":
                    return s + 1, params, moments, step, carry + tf.add_n([tf.reduce_sum(g) for g in grads])
                step = step + 1
                t = tf.cast(step, tf.float32)
                sizes = rates * tf.sqrt(1.0 - engine.ADAM_BETA_2**t) / (1.0 - engine.ADAM_BETA_1**t)
                new_params, new_moments = [], []
                for i, (p, g) in enumerate(zip(params, grads)):
                    per = tf.reshape(sizes, [-1] + [1] * (len(p.shape) - 1))
                    if variant == "sgd":
                        new_params.append(p - per * g)
                        new_moments += [moments[2 * i], moments[2 * i + 1]]
                        continue
                    p, m, v = engine.adam_update(p, g, moments[2 * i], moments[2 * i + 1], per)
                    new_params.append(p)
                    new_moments += [m, v]
                return s + 1, new_params, new_moments, step, carry + total

            _, params, moments, step, carry = tf.while_loop(lambda s, *_: s < steps, step_body,
                                                            (tf.constant(0), params, moments, step, carry))
            return e + 1, params, moments, step, carry

        _, params, moments, _, carry = tf.while_loop(
            lambda e, *_: e < epochs, epoch_body,
            (tf.constant(0), params, moments, tf.constant(0, tf.int64), tf.constant(0.0)))
        return params, moments, carry

    return run


def main(argv):
    del argv
    import numpy as np
    import tensorflow as tf

    from tlkeras.nn import data, engine, models
    from tlkeras.runtime.startup import configure_threads
    from tlkeras.systems.mechanistic import SystemParams, hill

    configure_threads(intra_op=1, inter_op=1)
    tf.get_logger().setLevel("ERROR")
    k, n = FLAGS.members, FLAGS.set_size
    spec = models.NetworkSpec()
    stack = models.build_stack(spec, k)
    models.load_members(stack, [models.build_mlp(spec, seed=s) for s in range(k)])
    trainer = engine.StackTrainer(stack, 1e-3, 32)
    sets = [data.sample_set(lambda x: hill(x, SystemParams(), 2.0), data.Domain(0, 20), n, 2, 1.0, seed=s)
            for s in range(k)]
    x = np.stack([s[0] for s in sets]).astype(np.float32)
    y = np.stack([s[1] for s in sets]).astype(np.float32)
    epochs = FLAGS.epochs
    run = trainer._compiled_run(k, n, epochs)
    orders = tf.constant(engine.epoch_orders(range(k), range(epochs), n))
    args = (tf.constant(x), tf.constant(y), orders,
            [tf.identity(v.value) for v in trainer._variables],
            [tf.constant(m) for pair in trainer._moments for m in pair],
            tf.constant(epochs, tf.int32), tf.constant(0, tf.int64),
            tf.constant(trainer._learning_rates))
    hlo = run.experimental_get_compiler_ir(*args)(stage="optimized_hlo")
    if FLAGS.dump:
        with open(FLAGS.dump, "w") as handle:
            handle.write(hlo)
    parts = computations(hlo)
    bodies = [name for name, lines in parts.items() if "body" in name.lower() and lines]
    # The step loop's body: the while body with the most instructions (the epoch body holds the gather and the step loop).
    step_body = max(bodies, key=lambda name: len(parts[name]))
    ops = collections.Counter(opcode(line) for line in parts[step_body])
    fused = sum(1 for name in parts if name.startswith("fused_computation") or ".fused" in name or "fusion" in name)
    print(f"K = {k}, n = {n}: {len(parts)} HLO computations ({fused} fused), the step loop's body "
          f"({step_body}) holds {len(parts[step_body])} instructions:")
    for name, count in ops.most_common():
        print(f"  {count:4d} {name}")
    steps = epochs * -(-n // 32)
    trainer.fit(x, y, 1, shuffle_seeds=list(range(k)), epochs_per_call=epochs)  # compile
    start = time.perf_counter()
    log = trainer.fit(x, y, epochs, shuffle_seeds=list(range(k)), first_epoch=1, epochs_per_call=epochs)
    seconds = log.seconds if log.seconds else time.perf_counter() - start
    print(f"step: {1e3 * seconds / steps:.4f} ms ({steps:,} steps, {1e3 * seconds / steps / k:.4f} ms per member-step);"
          f" {1e6 * seconds / steps / max(1, len(parts[step_body])):.2f} us per body instruction")
    print()
    print("| variant | what it runs | ms per step | share of the replica's |")
    print("|---|---|---|---|")
    x_t, y_t = tf.constant(x), tf.constant(y)
    params = [tf.identity(v.value) for v in trainer._variables]
    moments = [tf.constant(m) for pair in trainer._moments for m in pair]
    rates = tf.constant(trainer._learning_rates)
    timed = {"engine": seconds / steps}
    for variant in list(VARIANTS)[1:]:
        program = make_variant(stack, k, n, 32, variant)
        program(x_t, y_t, orders, params, moments, tf.constant(1), rates)[2].numpy()  # compile
        best = float("inf")
        for _ in range(FLAGS.repeats):
            start = time.perf_counter()
            program(x_t, y_t, orders, params, moments, tf.constant(epochs), rates)[2].numpy()
            best = min(best, (time.perf_counter() - start) / steps)
        timed[variant] = best
    for variant, per_step in timed.items():
        print(f"| {variant} | {VARIANTS[variant]} | {1e3 * per_step:.4f} | {per_step / timed['replica']:.0%} |")


if __name__ == "__main__":
    app.run(main)
