"""The engine's loop under Keras' JAX backend, against TensorFlow's XLA, side by side (issue 25).

    pip install jax                                   # not a dependency of tlkeras
    python benchmarks/jax_backend.py                  # K = 5 and 32
    python benchmarks/jax_backend.py --members=5 --rounds=3

Both sides train the same stack (`tlkeras.nn.models.build_stack`, the protocol MLP, Glorot
starts drawn with NumPy) with the engine's Adam (`engine.adam_update`'s rule) and the
engine's masked-batch MSE, on the same data in the same per-epoch orders (`epoch_orders`):

- tensorflow: `StackTrainer.fit` (the engine itself: `tf.function(jit_compile=True)`, a while
  loop over epochs and steps, `stateless_call`);
- jax: a process with KERAS_BACKEND=jax, the same Keras stack's `stateless_call` under
  `jax.value_and_grad`, the steps of a chunk of epochs in one `jax.lax.scan`, `jax.jit`ed.

Each side runs in its own process (a Keras backend is chosen per process), in turns, for
`--rounds` rounds; the best time of each is kept. Compilation is excluded. It prints ms per
step and the ratio, and how far apart the two sides' weights end (different XLA versions and
kernels: not bit for bit).
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

flags.DEFINE_list("members", ["5", "32"], "Stack sizes K to measure.")
flags.DEFINE_integer("set_size", 10_000, "Training pairs per member.", lower_bound=32)
flags.DEFINE_integer("epochs", 4, "Epochs each timing trains (after one to compile).", lower_bound=1)
flags.DEFINE_integer("rounds", 2, "Rounds of (tensorflow, jax) measurements; the best of each is kept.", lower_bound=1)
flags.DEFINE_enum("side", "", ["", "tensorflow", "jax"], "Measure one side only and print JSON (what each "
                  "process of a comparison runs).")
FLAGS = flags.FLAGS


def problem(k: int, n: int):
    import numpy as np

    from tlkeras.nn import data, models
    from tlkeras.systems.mechanistic import SystemParams, hill

    spec = models.NetworkSpec()
    sets = [data.sample_set(lambda x: hill(x, SystemParams(), 2.0), data.Domain(0, 20), n, 2, 1.0, seed=s)
            for s in range(k)]
    x = np.stack([s[0] for s in sets]).astype(np.float32)
    y = np.stack([s[1] for s in sets]).astype(np.float32)
    # Glorot-uniform starts drawn with NumPy: Keras' seeded initializers draw other numbers under
    # each backend, and both sides must start from the same weights.
    rng = np.random.default_rng(0)
    starts = []
    for _ in range(k):
        layers = {}
        for name, (fan_in, fan_out) in zip(spec.layer_names(), spec.layer_sizes()):
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            layers[name] = [rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32),
                            np.zeros(fan_out, np.float32)]
        starts.append(models.StartingWeights(layers))
    return spec, x, y, starts


def measure_tensorflow(k: int) -> dict:
    from tlkeras.nn import engine, models
    from tlkeras.runtime.startup import configure_threads

    configure_threads(intra_op=1, inter_op=1)
    spec, x, y, starts = problem(k, FLAGS.set_size)
    stack = models.build_stack(spec, k)
    models.load_members(stack, starts)
    trainer = engine.StackTrainer(stack, 1e-3, 32)
    trainer.fit(x, y, 1, shuffle_seeds=list(range(k)), epochs_per_call=FLAGS.epochs)  # compile
    log = trainer.fit(x, y, FLAGS.epochs, shuffle_seeds=list(range(k)), first_epoch=1, epochs_per_call=FLAGS.epochs)
    steps = FLAGS.epochs * -(-FLAGS.set_size // 32)
    return {"seconds": log.seconds, "steps": steps, "weights": [w.tolist() for w in stack.get_weights()[:1]]}


def measure_jax(k: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from tlkeras.nn import engine, models

    spec, x, y, starts = problem(k, FLAGS.set_size)
    stack = models.build_stack(spec, k)
    models.load_members(stack, starts)
    n, batch = FLAGS.set_size, 32
    steps = -(-n // batch)
    padded = steps * batch
    mask = np.zeros((steps, batch), np.float32)
    mask.reshape(-1)[:n] = 1.0
    weights = jnp.asarray(mask / mask.sum(axis=1)[:, None])
    rates = jnp.full((k,), 1e-3, jnp.float32)

    def loss(params, xb, yb, weight):
        predictions, _ = stack.stateless_call(params, [], xb, training=True)
        return jnp.sum(jnp.mean(jnp.square(predictions - yb), axis=-1) * weight[:, None])

    grad = jax.grad(loss)

    @jax.jit
    def run(params, moments, orders, step0):
        def epoch(carry, order):
            order = jnp.pad(order, ((0, 0), (0, padded - n)))
            xs = jnp.take_along_axis(jnp.asarray(x), order[..., None], axis=1)
            ys = jnp.take_along_axis(jnp.asarray(y), order[..., None], axis=1)
            xs = jnp.transpose(xs.reshape(k, steps, batch, -1), (1, 2, 0, 3))
            ys = jnp.transpose(ys.reshape(k, steps, batch, -1), (1, 2, 0, 3))

            def step(carry, s):
                params, moments, t = carry
                grads = grad(params, xs[s], ys[s], weights[s])
                t = t + 1.0
                size = rates * jnp.sqrt(1.0 - engine.ADAM_BETA_2**t) / (1.0 - engine.ADAM_BETA_1**t)
                new_params, new_moments = [], []
                for i, (p, g) in enumerate(zip(params, grads)):
                    per = size.reshape((-1,) + (1,) * (p.ndim - 1))
                    m = moments[2 * i] + (g - moments[2 * i]) * (1.0 - engine.ADAM_BETA_1)
                    v = moments[2 * i + 1] + (jnp.square(g) - moments[2 * i + 1]) * (1.0 - engine.ADAM_BETA_2)
                    new_params.append(p - (m * per) / (jnp.sqrt(v) + engine.ADAM_EPSILON))
                    new_moments += [m, v]
                return (new_params, new_moments, t), None

            return jax.lax.scan(step, carry, jnp.arange(steps))[0], None

        return jax.lax.scan(epoch, (params, moments, step0), orders)[0]

    params = [jnp.asarray(v.numpy()) for v in stack.trainable_variables]
    moments = [jnp.zeros_like(p) for p in params for _ in range(2)]
    first = jnp.asarray(engine.epoch_orders(range(k), [0], n))
    params, moments, t = jax.block_until_ready(run(params, moments, first, jnp.float32(0)))  # compile
    orders = jnp.asarray(engine.epoch_orders(range(k), range(1, 1 + FLAGS.epochs), n))
    run_all = jax.jit(run)
    jax.block_until_ready(run_all(params, moments, orders, t))  # compile the longer scan
    start = time.perf_counter()
    params, _, _ = jax.block_until_ready(run_all(params, moments, orders, t))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "steps": FLAGS.epochs * steps, "weights": [np.asarray(params[0]).tolist()],
            "jax": jax.__version__}


def main(argv):
    del argv
    sizes = [int(k) for k in FLAGS.members]
    if FLAGS.side:
        for k in sizes:
            row = measure_tensorflow(k) if FLAGS.side == "tensorflow" else measure_jax(k)
            print(json.dumps(dict(row, members=k)), flush=True)
        return
    try:
        import jax  # noqa: F401
    except ImportError:
        sys.exit("jax is not installed (it is not a tlkeras dependency): pip install jax")
    import numpy as np

    best: dict[str, dict[int, dict]] = {"tensorflow": {}, "jax": {}}
    arguments = [f"--members={','.join(map(str, sizes))}", f"--set_size={FLAGS.set_size}", f"--epochs={FLAGS.epochs}"]
    for _ in range(FLAGS.rounds):
        for side in best:
            environment = dict(os.environ, KERAS_BACKEND=side, XLA_FLAGS=os.environ.get("XLA_FLAGS", ""))
            command = ["taskset", "-c", "0"] if Path("/usr/bin/taskset").exists() else []  # one core each
            result = subprocess.run([*command, sys.executable, str(Path(__file__).resolve()), f"--side={side}",
                                     *arguments], env=environment, capture_output=True, text=True)
            if result.returncode != 0:
                sys.exit(f"the {side} side did not run:\n{result.stderr[-3000:]}")
            for line in result.stdout.splitlines():
                if line.startswith("{"):
                    row = json.loads(line)
                    kept = best[side].get(row["members"])
                    if kept is None or row["seconds"] < kept["seconds"]:
                        best[side][row["members"]] = row
    version = next(iter(best["jax"].values()))["jax"]
    print(f"{FLAGS.set_size} pairs per member, {FLAGS.epochs} epochs per timing, best of {FLAGS.rounds}; "
          f"both sides pinned to one core (taskset), jax {version}")
    print()
    print("| members | tensorflow (the engine): ms per step | Keras on jax, lax.scan: ms per step | jax / tensorflow speed "
          "| largest weight difference after training |")
    print("|---|---|---|---|---|")
    for k in sizes:
        a, b = best["tensorflow"][k], best["jax"][k]
        gap = float(np.abs(np.asarray(a["weights"][0]) - np.asarray(b["weights"][0])).max())
        print(f"| {k} | {1e3 * a['seconds'] / a['steps']:.4f} | {1e3 * b['seconds'] / b['steps']:.4f} | "
              f"**{(a['seconds'] / a['steps']) / (b['seconds'] / b['steps']):.2f}x** | {gap:.2g} |")


if __name__ == "__main__":
    app.run(main)
