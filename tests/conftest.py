"""Shared test setup: quiet TensorFlow, one intra-op thread, tiny protocol settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]

from tlkeras.runtime.startup import configure_threads  # noqa: E402

configure_threads(intra_op=1, inter_op=2)


def tiny_flags(logdir: Path) -> list[str]:
    """Driver flags for a run of a few seconds (beyond process start and compilation).

    One worker: the jobs run in the driver, which compiles each program once (two worker processes
    would each import TensorFlow and compile them again: 34 CPU-s against 19 for a tiny exp1). A
    test of worker processes (kills, orphans, their output) adds --workers=2."""
    return [
        f"--logdir={logdir}", "--pretrain_size=256", "--oracle_size=128", "--epochs=6",
        "--pretrain_epochs=4", "--seeds=0,1", "--cache=false", "--workers=1",
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


def tagged_processes(tag: str) -> list[int]:
    """Live processes (a driver, its workers, an embedded Ray's) started with TLKERAS_TEST_TAG=tag."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if f"TLKERAS_TEST_TAG={tag}".encode() in environ.split(b"\0") and "State:\tZ" not in status:
            found.append(int(entry.name))
    return found


def only_run_dir(logdir: Path, experiment: str) -> Path:
    runs = [p for p in (logdir / experiment).iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


# exp1 with tiny_flags and these: 6 jobs (pretraining, the oracle, transfer and baseline at 2
# volumes), 12 members.
EXP1_FLAGS = ["--volumes=40,96", "--hill_n=3"]
EXP2_FLAGS = ["--hill_n=2,3", "--phosphorylation", "--volume=48"]

# The driver runs below are shared by several test files (a tiny run costs a driver and two worker
# processes that each import TensorFlow): each is made once per session, by the first test that
# asks, and is only read afterwards (a test that changes a run works on a copy).


@pytest.fixture(scope="session")
def exp1_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """One exp1 sweep, never interrupted: test_drivers reads its results, and every interrupted and
    resumed run in test_reliability must equal it member by member.

    Its Ctrl-C comes after the last result is written: that changes nothing (exit status 0)."""
    logdir = tmp_path_factory.mktemp("exp1")
    result = run_driver("exp1.py", [*tiny_flags(logdir), *EXP1_FLAGS], env={"TLKERAS_FAULT": "sigint@run.finished"})
    assert result.returncode == 0, result.stderr[-3000:]
    return only_run_dir(logdir, "exp1"), result


@pytest.fixture(scope="session")
def exp2_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """One exp2 run (three systems, two seeds): test_drivers reads its files, test_tensorboard serves it."""
    logdir = tmp_path_factory.mktemp("exp2")
    result = run_driver("exp2.py", [*tiny_flags(logdir), *EXP2_FLAGS, "--workers=2"])  # workers' output too
    assert result.returncode == 0, result.stderr[-3000:]
    return only_run_dir(logdir, "exp2"), result
