"""Shared test setup: quiet TensorFlow, one intra-op thread, tiny protocol settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tlkeras.sweep import configure_threads  # noqa: E402

configure_threads(intra_op=1, inter_op=2)


def tiny_flags(logdir: Path) -> list[str]:
    """Driver flags for a run of a few seconds (beyond process start and compilation)."""
    return [
        f"--logdir={logdir}", "--pretrain_size=256", "--oracle_size=128", "--epochs=6",
        "--pretrain_epochs=4", "--seeds=0,1", "--cache=false",
    ]


def run_driver(script: str, flags: list[str], timeout: float = 600,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run experiments/<script> as a user would, in a fresh process (`env`: extra variables).

    The timeout only bounds a hang; a tiny run takes well under a minute."""
    env = dict(os.environ, **(env or {}))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # what a user's shell has: the driver quiets TensorFlow itself
    return subprocess.run(
        [sys.executable, str(REPO / "experiments" / script), *flags],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO,
    )


def only_run_dir(logdir: Path, experiment: str) -> Path:
    runs = [p for p in (logdir / experiment).iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]
