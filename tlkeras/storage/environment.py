"""The machine and software a run's numbers came from, recorded with the run.

Numbers are bit-identical only on the same CPU kind and software stack: oneDNN, which the
TensorFlow CPU kernels (and XLA's matrix products) call, picks its kernels by the CPU's
instruction sets at run time, so float sums round differently on another CPU and thousands of
epochs carry the difference into every weight (see BUILD.md, "Reproducibility"). Each session
of a run (the first, and every resume) appends what it ran on to `environment.json`.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

# Instruction sets that change which kernels oneDNN and XLA use, hence float rounding.
NUMERIC_CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                     "avx512_bf16", "amx_tile", "amx_bf16", "asimd", "sve")
# Settings that change the same.
NUMERIC_ENVIRONMENT = ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "XLA_FLAGS")


def describe() -> dict:
    """What determines the last bits of this process's numbers (besides the config and seeds)."""
    import keras
    import numpy as np
    import tensorflow as tf

    model, flags = _cpu()
    return dict(
        cpu=model, cpu_count=os.cpu_count(), machine=platform.machine(),
        cpu_flags=[flag for flag in NUMERIC_CPU_FLAGS if flag in flags],
        python=platform.python_version(), tensorflow=tf.__version__, keras=keras.__version__,
        numpy=np.__version__, environment={k: os.environ[k] for k in NUMERIC_ENVIRONMENT if k in os.environ},
    )


def same_numerics(a: dict, b: dict) -> bool:
    """Whether two sessions should give bit-identical members (same CPU features and stack)."""
    keys = ("machine", "cpu_flags", "python", "tensorflow", "keras", "numpy", "environment")
    return all(a.get(k) == b.get(k) for k in keys)


def _cpu() -> tuple[str, set[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                model = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags = set(value.split())
            if flags and model:
                break
    except OSError:
        pass
    return model, flags


def record_session(run_path: Path, staging) -> list[dict]:
    """Append this session's environment to `<run>/environment.json`; return every session's."""
    path = Path(run_path) / "environment.json"
    sessions = json.loads(path.read_text()) if path.exists() else []
    sessions.append(dict(describe(), started=time.strftime("%Y-%m-%d %H:%M:%S")))
    staging.write_json(path, sessions)
    return sessions
