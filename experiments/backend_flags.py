"""Where a sweep's stack jobs run: the flags shared by the experiment drivers and `tlkeras fit`.

Kept free of TensorFlow: the drivers reach Ray (or fail, in one line) before TensorFlow loads.
"""

from __future__ import annotations

from absl import flags

NAMES = ("workers", "backend", "ray_address")  # not in a run's flags.txt: they do not change a result


def define_backend_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    flags.DEFINE_integer("workers", 2, "Stacks trained at once (one per core); with --backend=ray and an "
                         "empty --ray_address, the CPUs of the local Ray.", lower_bound=1, upper_bound=64,
                         flag_values=flag_values)
    flags.DEFINE_enum("backend", "local", ["local", "ray"], "Where stack jobs run: local worker processes, or "
                      "Ray tasks (one CPU each) on a Ray cluster; the results are the same.",
                      flag_values=flag_values)
    flags.DEFINE_string("ray_address", "", "With --backend=ray: 'auto' or host:port of a running cluster "
                        "(`ray start --head`), or empty to start a local Ray on this machine's cores.",
                        flag_values=flag_values)


def connect_backend(backend: str, ray_address: str, workers: int) -> str | None:
    """With --backend=ray, reach (or start) Ray now; the one-line error if that fails, else None."""
    if backend != "ray":
        return f"--ray_address={ray_address} needs --backend=ray" if ray_address else None
    from tlkeras import ray_backend

    try:
        ray_backend.connect(ray_address, workers)
    except ray_backend.BackendError as error:
        return str(error)
    return None
