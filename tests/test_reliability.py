"""Reliability: kills and Ctrl-C at chosen moments, resume, unusable folders, determinism.

No test here races a process's output with a signal. Each names the moment of the fault through
TLKERAS_FAULT (`tlkeras/faults.py`): the process that reaches that point kills the run, sends
the driver a Ctrl-C, or fails a write, so the outcome is the same on a fast or a slow machine.

The uninterrupted run every resumed run must equal is conftest's exp1_run (test_drivers reads its
results too); each driver run costs a driver and two workers that import TensorFlow, so one run
serves every check that can share it.
"""

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import keras
import pytest
from conftest import EXP1_FLAGS, REPO, only_run_dir, run_driver, tagged_processes, tiny_flags

pytestmark = pytest.mark.integration  # processes: drivers, commands, servers, signals

FLAGS = EXP1_FLAGS  # with tiny_flags: 6 jobs, 12 members, as exp1_run


def _driver(logdir: Path, *extra: str, fault: str | None = None, tag: str | None = None):
    env = {"TLKERAS_FAULT": fault} if fault else {}
    if tag:
        env["TLKERAS_TEST_TAG"] = tag
    return run_driver("exp1.py", [*tiny_flags(logdir), *FLAGS, "--workers=2", *extra], env=env)  # worker processes


def _assert_no_orphans(tag: str) -> None:
    """Workers die with their driver (PR_SET_PDEATHSIG); the kernel does it right after the driver
    dies, so poll until they are gone (the deadline only bounds a failure)."""
    deadline = time.monotonic() + 60
    while tagged_processes(tag) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not tagged_processes(tag), "worker processes outlived their driver"


def _records(run: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(run)): (p.stat().st_mtime_ns, p.read_bytes()) for p in (run / "cells").rglob("*.json")}


def _visible_temporaries(run: Path) -> list[Path]:
    """Anything under the result folders that is not a finished result file."""
    odd = []
    for folder in ("models", "cells", "losses", "tensorboard", "figures"):
        for path in (run / folder).rglob("*"):
            if path.name.startswith(".") or "tmp" in path.name or "partial" in path.name:
                odd.append(path)
    return odd


def _check_every_file(run: Path) -> None:
    import numpy as np
    import tensorflow as tf

    assert not _visible_temporaries(run), _visible_temporaries(run)
    for record in (run / "cells").rglob("*.json"):
        assert (run / json.loads(record.read_text())["model"]).is_file()
    for model in (run / "models").rglob("*.keras"):
        keras.saving.load_model(model, compile=False)
    for losses in (run / "losses").rglob("*.npy"):
        np.load(losses)
    for events in (run / "tensorboard").rglob("events.out.tfevents.*"):
        assert sum(1 for _ in tf.compat.v1.train.summary_iterator(str(events))) > 0


def _member_scores(run: Path) -> dict[str, tuple]:
    results = json.loads((run / "results.json").read_text())
    return {m["key"]: (m["l1_mean"], m["l1_var"], m["final_train_loss"]) for m in results["members"]}


@pytest.fixture(scope="module")
def straight_run(exp1_run) -> Path:
    """The same sweep, never interrupted: what every interrupted-and-resumed run must equal.

    Its Ctrl-C comes after the last result is written: that changes nothing (exit status 0)."""
    return exp1_run[0]


def test_kills_inside_a_model_save_and_a_record_write_then_resume_recomputes_nothing(tmp_path, straight_run):
    """Killed twice, then resumed; that resume is stopped by a Ctrl-C once the sweep is done, while
    the report is drawn (Ctrl-C at the report phase), and a last resume only reports."""
    logdir, tag = tmp_path / "killed", uuid.uuid4().hex
    seen: dict[str, tuple[int, bytes]] = {}
    # A pretraining member writes two JSON files (its evaluation curves, then its record), so the
    # fourth JSON write is past at least one whole record whatever the order. The first kill hits a
    # worker process; the rest run in the driver alone (--workers=1: where the jobs run changes no
    # result, and each worker process would import TensorFlow again).
    for cycle, fault in enumerate(["kill@write.middle.keras#2", "kill@write.middle.json#4"]):
        killed = _driver(logdir, *(["--resume", "--workers=1"] if cycle else []), fault=fault, tag=tag)
        assert killed.returncode == -9, (fault, killed.stdout[-2000:], killed.stderr[-2000:])
        _assert_no_orphans(tag)
        run = only_run_dir(logdir, "exp1")
        suffix = "." + fault.split("#")[0].rsplit(".", 1)[1]
        leftovers = list((run / ".partial").iterdir())
        assert any(p.name.endswith(suffix) for p in leftovers), (fault, leftovers)  # killed mid-write
        _check_every_file(run)
        now = _records(run)
        for name, (mtime, content) in seen.items():
            assert now[name] == (mtime, content), f"{name} was rewritten"
        assert len(now) > len(seen), f"no member finished before {fault}"
        seen = now
        assert not (run / "results.json").exists()

    stopped = _driver(logdir, "--resume", "--workers=1", fault="sigint@report.figures", tag=tag)
    assert stopped.returncode == 130, (stopped.stdout[-2000:], stopped.stderr[-2000:])
    assert f"resuming: {len(seen)} finished members kept" in stopped.stdout
    run = only_run_dir(logdir, "exp1")
    _assert_stopped_by_ctrl_c(stopped, run, tag)
    finished = _records(run)
    assert all(finished[name] == value for name, value in seen.items()), "a finished member was recomputed"
    assert len(finished) == 12  # the sweep was done, the report not: a resume only reports

    resumed = run_driver("exp1.py", [f"--flagfile={run / 'flags.txt'}", f"--run_dir={run}", "--workers=1"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "12 finished members kept, 0 to train" in resumed.stdout
    assert not (run / ".partial").exists() or not list((run / ".partial").iterdir())  # swept
    _check_every_file(run)
    assert _records(run) == finished
    assert _member_scores(run) == _member_scores(straight_run)


def _assert_stopped_by_ctrl_c(stopped, run: Path, tag: str) -> None:
    assert "Traceback" not in stopped.stderr
    _assert_no_orphans(tag)
    assert "Resume with" in stopped.stdout and f"--run_dir={run}" in stopped.stdout
    assert not (run / "results.md").exists()
    _check_every_file(run)  # event files included: each is complete and readable


# The report phase ("report.figures"): in the kill-and-resume test above, whose run gets there.
@pytest.mark.parametrize("signal_name, phase", [("sigint", "driver.planning"), ("sigterm", "record.written#2")])
def test_ctrl_c_or_sigterm_at_any_phase_stops_cleanly_and_keeps_what_finished(tmp_path, signal_name, phase):
    """SIGTERM (kill, timeout, a scheduler) as Ctrl-C: a line, the next safe point, workers ended,
    exit 143 (128 + 15) instead of 130."""
    tag = uuid.uuid4().hex
    stopped = _driver(tmp_path, fault=f"{signal_name}@{phase}", tag=tag)
    status, said = (130, "Ctrl-C") if signal_name == "sigint" else (143, "SIGTERM")
    assert stopped.returncode == status, (stopped.stdout[-2000:], stopped.stderr[-2000:])
    run = only_run_dir(tmp_path, "exp1")
    _assert_stopped_by_ctrl_c(stopped, run, tag)
    assert f"{said} received: stopping at the next safe point" in stopped.stderr
    assert f"interrupted by {said}; finished members are kept" in stopped.stdout
    assert "leaked" not in stopped.stderr and "semaphore" not in stopped.stderr
    if phase == "record.written#2":
        assert len(_records(run)) >= 2


def test_ctrl_c_during_start_up_leaves_nothing(tmp_path):
    stopped = _driver(tmp_path, fault="sigint@driver.startup")
    assert stopped.returncode == 130, stopped.stderr[-2000:]
    assert "interrupted by Ctrl-C before the run started" in stopped.stdout
    assert not list((tmp_path / "exp1").iterdir())


def test_ctrl_c_after_the_run_finished_exits_0_and_says_so(exp1_run):
    run, result = exp1_run  # its Ctrl-C came at the very end; the fixture checked the exit status 0
    assert "Ctrl-C came after the run had finished" in result.stdout
    assert (run / "results.md").is_file()


def test_a_full_disk_mid_run_stops_cleanly_keeping_what_finished(tmp_path):
    stopped = _driver(tmp_path, fault="nospace@write.middle.keras#2")
    assert stopped.returncode == 1, stopped.stderr[-2000:]
    errors = [line for line in stopped.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and ".keras" in errors[0]
    assert "Traceback" not in stopped.stderr and "Resume with" in stopped.stderr
    _check_every_file(only_run_dir(tmp_path, "exp1"))


def test_a_worker_killed_mid_run_stops_the_run_cleanly(tmp_path):
    tag = uuid.uuid4().hex
    stopped = _driver(tmp_path, fault="crash@write.middle.keras#1", tag=tag)  # as the OOM killer would
    assert stopped.returncode == 1, (stopped.stdout[-2000:], stopped.stderr[-2000:])
    errors = [line for line in stopped.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "a worker process ended abruptly" in errors[0] and "signal 9" in errors[0]
    assert "Traceback" not in stopped.stderr and "Resume with" in stopped.stderr
    _assert_no_orphans(tag)
    _check_every_file(only_run_dir(tmp_path, "exp1"))


def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def _one_error_line(result) -> str:
    assert result.returncode == 2, (result.stdout[-2000:], result.stderr[-2000:])
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    return errors[0]


def test_a_logdir_that_is_a_file_is_one_line(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    error = _one_error_line(_driver(afile))
    assert f"--logdir={afile} cannot be used: it is a file, not a folder" in error
    error = _one_error_line(_driver(tmp_path, f"--cache_dir={afile}", "--cache=true"))
    assert f"--cache_dir={afile} cannot be used: it is a file" in error


def test_a_read_only_folder_and_a_full_filesystem_are_refused_before_any_work(tmp_path):
    read_only, tiny = tmp_path / "read_only", tmp_path / "tiny"
    if os.geteuid() == 0:
        assert _mount_tmpfs(read_only, "ro,size=1m"), "root could not mount a tmpfs"
    else:
        read_only.mkdir()
        read_only.chmod(0o555)
    try:
        error = _one_error_line(_driver(read_only))
        assert f"--logdir={read_only} cannot be used" in error
        assert "Read-only" in error or "Permission denied" in error
    finally:
        subprocess.run(["umount", str(read_only)], capture_output=True)
    if not _mount_tmpfs(tiny, "size=64k"):
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    try:
        error = _one_error_line(_driver(tiny))
        assert f"--logdir={tiny} has" in error and "MB free" in error and "needs about" in error
    finally:
        subprocess.run(["umount", str(tiny)], capture_output=True)


def test_a_run_directory_in_use_is_refused(tmp_path, straight_run):
    from tlkeras.storage.rundir import RunDir

    with RunDir(straight_run).lock():
        error = _one_error_line(run_driver("exp1.py", [f"--flagfile={straight_run / 'flags.txt'}",
                                                       f"--run_dir={straight_run}"]))
    assert f"--run_dir={straight_run} is still in progress (pid {os.getpid()})" in error


def test_resuming_with_other_flags_is_refused_naming_the_differences(tmp_path, straight_run):
    again = run_driver("exp1.py", [f"--flagfile={straight_run / 'flags.txt'}", f"--run_dir={straight_run}",
                                   "--epochs=9"])
    error = _one_error_line(again)
    assert "epochs: recorded 6, now 9" in error


def _claim(args):
    logs, index = args
    from tlkeras.storage.rundir import create_run_dir

    return str(create_run_dir(Path(logs), "exp1"))


def test_drivers_started_together_never_share_a_run_directory(tmp_path):
    with multiprocessing.get_context("fork").Pool(8) as pool:  # fork: start at once
        claimed = pool.map(_claim, [(str(tmp_path), i) for i in range(32)])
    assert len(set(claimed)) == 32
    assert all(Path(p).is_dir() for p in claimed)


def test_a_worker_whose_driver_died_while_it_started_ends_itself():
    # Its parent is not the driver it was started for: PR_SET_PDEATHSIG came too late.
    code = "from tlkeras.execution.worker import _die_with_parent; _die_with_parent(driver_pid=1); print('alive')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 1 and "alive" not in result.stdout


def test_a_corrupt_model_met_on_resume_is_one_clear_line(tmp_path, straight_run):
    run = tmp_path / "exp1" / straight_run.name
    shutil.copytree(straight_run, run)
    pretrained = run / "models/pretrain/synthetic/n256/seed1.keras"
    pretrained.write_bytes(pretrained.read_bytes()[:500])  # truncated
    records = list((run / "cells/transfer").glob("*/n40/*.json"))
    assert len(records) == 2
    for record in records:  # one transfer job (so one worker) must be redone from the (now corrupt) file
        record.unlink()
    error = _one_error_line(run_driver("exp1.py", [f"--flagfile={straight_run / 'flags.txt'}",
                                                   f"--run_dir={run}", f"--logdir={tmp_path}", "--workers=1"]))
    assert str(pretrained) in error
