"""Reliability: kill and resume, determinism, interrupted runs, concurrent run directories."""

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras

from conftest import REPO, only_run_dir, run_driver

# Jobs of a few seconds each, so that a kill lands while a job is training.
FLAGS = ["--pretrain_size=2000", "--oracle_size=1000", "--epochs=60", "--pretrain_epochs=50",
         "--seeds=0,1", "--volumes=40,96", "--hill_n=2", "--cache=false"]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = dict(l.split(":", 1) for l in (entry / "status").read_text().splitlines() if ":" in l)
            except OSError:
                continue
            if int(fields["PPid"].strip()) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in state


def _start(logdir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "experiments/exp1.py"), *FLAGS, f"--logdir={logdir}", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )


def _wait_for_done_lines(process: subprocess.Popen, count: int, timeout: float = 240) -> list[str]:
    """Read the driver's output until `count` jobs are done (and another one has started)."""
    lines, done = [], 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        assert line, "the driver ended before it could be interrupted:\n" + "".join(lines)
        lines.append(line)
        done += line.split("] ", 1)[-1].startswith("done   [")
        if done >= count and "start  [" in line:
            return lines
    raise AssertionError("timed out waiting for the driver")


def _records(run: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(run)): (p.stat().st_mtime_ns, p.read_bytes()) for p in (run / "cells").rglob("*.json")}


def _member_scores(run: Path) -> dict[str, float]:
    results = json.loads((run / "results.json").read_text())
    return {m["key"]: (m["l1_mean"], m["l1_var"], m["final_train_loss"]) for m in results["members"]}


def test_sigkill_then_resume_recomputes_nothing_and_matches_an_uninterrupted_run(tmp_path):
    logdir = tmp_path / "killed"
    cycles = 0
    for done_before_kill in (1, 3):  # two kill-and-resume cycles at different points of the sweep
        process = _start(logdir, *(["--resume"] if cycles else []))
        _wait_for_done_lines(process, done_before_kill)
        children = _children(process.pid)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        time.sleep(1.5)
        assert not any(_alive(pid) for pid in children), "worker processes outlived the killed driver"
        run = only_run_dir(logdir, "exp1")
        finished = _records(run)
        assert finished, "no cell had finished before the kill"
        assert not (run / "results.json").exists()
        cycles += 1
        resumed = run_driver("exp1.py", [*FLAGS, f"--logdir={logdir}", "--resume"])
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert f"{len(finished)} finished members kept" in resumed.stdout
        after = _records(run)
        for name, (mtime, content) in finished.items():
            assert after[name] == (mtime, content), f"{name} was recomputed"
        # Undo the completion so that the next cycle interrupts a sweep again.
        if done_before_kill == 1:
            for path in (run / "cells").rglob("*.json"):
                if str(path.relative_to(run)) not in finished:
                    path.unlink()
            (run / "results.json").unlink()
    assert cycles == 2

    straight = run_driver("exp1.py", [*FLAGS, f"--logdir={tmp_path / 'straight'}"])
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert _member_scores(run) == _member_scores(only_run_dir(tmp_path / "straight", "exp1"))
    for model in (run / "models").rglob("*.keras"):
        keras.saving.load_model(model)
    assert not list((run / "models").rglob(".*tmp*")), "a temporary model file was left under models/"


def test_resuming_with_other_flags_is_refused_naming_the_differences(tmp_path):
    first = run_driver("exp1.py", [*FLAGS, f"--logdir={tmp_path}", "--epochs=8", "--pretrain_epochs=6",
                                   "--volumes=40"])
    assert first.returncode == 0, first.stderr[-3000:]
    again = run_driver("exp1.py", [*FLAGS, f"--logdir={tmp_path}", "--epochs=9", "--pretrain_epochs=6",
                                   "--volumes=40", "--resume"])
    assert again.returncode == 2
    error = [line for line in again.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "epochs: recorded 8, now 9" in error[0]
    assert len(list((tmp_path / "exp1").iterdir())) == 1  # no second run directory


def test_sigint_stops_cleanly_keeps_events_and_says_how_to_resume(tmp_path):
    import tensorflow as tf

    process = _start(tmp_path)
    _wait_for_done_lines(process, 1)
    children = _children(process.pid)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130
    run = only_run_dir(tmp_path, "exp1")
    assert f"--run_dir={run}" in output and "Resume with" in output
    time.sleep(1)
    assert not any(_alive(pid) for pid in children)
    events = list((run / "tensorboard").rglob("events.out.tfevents.*"))
    recorded = list((run / "cells").rglob("*.json"))
    assert recorded and events
    for path in events:  # every event file is complete and readable
        assert sum(1 for _ in tf.compat.v1.train.summary_iterator(str(path))) > 0


def _claim(args):
    logs, index = args
    from tlkeras.rundir import create_run_dir

    return str(create_run_dir(Path(logs), "exp1"))


def test_drivers_started_together_never_share_a_run_directory(tmp_path):
    with multiprocessing.get_context("fork").Pool(8) as pool:  # fork: start at once
        claimed = pool.map(_claim, [(str(tmp_path), i) for i in range(32)])
    assert len(set(claimed)) == 32
    assert all(Path(p).is_dir() for p in claimed)


def test_a_corrupt_model_met_on_resume_is_one_clear_line(tmp_path):
    flags = [*FLAGS, "--epochs=8", "--pretrain_epochs=6", "--volumes=40", f"--logdir={tmp_path}"]
    first = run_driver("exp1.py", flags)
    assert first.returncode == 0, first.stderr[-3000:]
    run = only_run_dir(tmp_path, "exp1")
    pretrained = run / "models/pretrain/synthetic/n2000/seed1.keras"
    pretrained.write_bytes(pretrained.read_bytes()[:500])  # truncated
    for record in (run / "cells/transfer").rglob("*.json"):
        record.unlink()  # the transfer arm must be redone from the (now corrupt) file
    again = run_driver("exp1.py", [*flags, "--resume"])
    assert again.returncode == 2
    errors = [line for line in again.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(pretrained) in errors[0] and "Traceback" not in again.stderr
