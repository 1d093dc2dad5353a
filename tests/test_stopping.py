"""Stopping and sharing, driven by the test: Ctrl-C and SIGTERM alike (inside the user's g too,
twice for at once), a fit's --out held against a second fit, a run in progress refused by
--resume. Every moment is named (a fault point, a signal the user's code sends itself, a line the
process prints when it has taken a signal), never guessed from the clock."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import EXP1_FLAGS, FIT, REPO, run_driver, tiny_flags, tlkeras

pytestmark = pytest.mark.integration  # processes: commands, drivers, signals

SELF_SIGNAL = {  # a g that is stopped by a signal while it is imported, or while it runs
    "import": "import os, signal\nos.kill(os.getpid(), signal.{name})\nwhile True:\n    pass\n"
              "def g(x):\n    return x\n",
    "call": "import os, signal\nimport numpy as np\ndef g(x):\n    os.kill(os.getpid(), signal.{name})\n"
            "    while True:\n        pass\n",
}


def _leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name != "g.py")


@pytest.mark.parametrize("phase, name, status", [("import", "SIGINT", 130), ("call", "SIGTERM", 143)])
def test_a_signal_inside_the_users_g_stops_it_at_once_in_one_line(tmp_path, phase, name, status):
    g = tmp_path / "g.py"
    g.write_text(SELF_SIGNAL[phase].format(name=name))  # without an immediate stop it would loop forever
    result = tlkeras("fit", f"--simple={g}:g", *FIT[2:], f"--out={tmp_path / 'new' / 'plate1'}", timeout=120)
    assert result.returncode == status, result.stderr
    doing = "importing" if phase == "import" else "running"
    said = "Ctrl-C" if name == "SIGINT" else "SIGTERM"
    assert result.stderr == f"error: interrupted by {said} while {doing} {g}:g; nothing was written\n"
    assert f"importing your simple model {g}:g ..." in result.stdout  # said before the wait
    assert (f"probing {g}:g on" in result.stdout) == (phase == "call")
    assert _leftovers(tmp_path) == []  # no model, lock or folder made for it


def _wait_for(path: Path, process: subprocess.Popen) -> None:
    """Until `path` exists (the process wrote it at a fault point); the deadline only bounds a hang."""
    deadline = time.monotonic() + 300
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the process never reached the fault point"
        time.sleep(0.05)


@pytest.fixture
def held(tmp_path):
    """`held(command, point)`: a process started with `command`, stopped for good at fault `point`
    (see runtime/faults); killed at the end of the test if it still runs (a failed assertion)."""
    started = []

    def start(command: list[str], point: str) -> subprocess.Popen:
        process, _ = _held(command, tmp_path, point)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _held(command: list[str], tmp_path: Path, point: str) -> tuple[subprocess.Popen, Path]:
    faults = tmp_path / "faults"
    faults.mkdir(exist_ok=True)
    env = dict(os.environ, TLKERAS_FAULT=f"hold@{point}", TLKERAS_FAULT_DIR=str(faults))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    held = faults / f"held-{point}"
    _wait_for(held, process)
    assert int(held.read_text()) == process.pid
    return process, held


def _stop_twice(process: subprocess.Popen, number: int, said: str) -> tuple[str, str]:
    """The first signal, then (once the process says it took it) the second: it stops at once."""
    process.send_signal(number)
    first = process.stderr.readline()
    assert first.startswith(f"{said} received: stopping at the next safe point"), first
    process.send_signal(number)
    out, err = process.communicate(timeout=120)
    return out, first + err


def test_a_second_fit_on_the_same_out_is_refused_naming_the_first(tmp_path, held):
    out = tmp_path / "models" / "plate1"
    command = [sys.executable, "-m", "tlkeras.cli", *FIT, f"--out={out}", "--cache=false"]
    first = held(command, "fit.locked")  # --out is held: the fit is under way
    second = tlkeras(*FIT, f"--out={out}", "--overwrite", timeout=120)
    assert second.returncode == 2
    assert second.stderr == (f"error: --out={out} is being written by another tlkeras process (pid {first.pid}); "
                             "wait for it to end or stop it first\n")
    out_text, err = _stop_twice(first, signal.SIGTERM, "SIGTERM")  # a scheduler cancels it, twice
    assert first.returncode == 143, err
    assert err.count("\n") == 2 and err.splitlines()[1] == "error: interrupted by SIGTERM; nothing was written"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faults"]  # no model, lock or folder left


def test_resume_while_the_latest_run_is_in_progress_is_refused_and_ctrl_c_twice_stops_it(tmp_path, held):
    logdir = tmp_path / "logs"
    flags = [*tiny_flags(logdir), *EXP1_FLAGS]
    running = held([sys.executable, str(REPO / "experiments" / "exp1.py"), *flags], "driver.planning")
    (run,) = (logdir / "exp1").iterdir()
    for how in ("--resume", f"--run_dir={run}"):
        refused = run_driver("exp1.py", [*flags, how], timeout=120)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.startswith("error: --") and f"{run} is still in progress (pid {running.pid})" \
            in refused.stderr and refused.stderr.count("\n") == 1, refused.stderr
    out, err = _stop_twice(running, signal.SIGINT, "Ctrl-C")
    assert running.returncode == 130 and "Traceback" not in err, err
    assert "error" not in err.lower() and "interrupted by Ctrl-C; finished members are kept. Resume with" in out

