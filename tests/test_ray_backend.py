"""The Ray backend: a real local Ray (127.0.0.1, two CPUs), never a mock.

A sweep run as Ray tasks must equal conftest's exp1_run (local worker processes) member by member,
leave the same run directory, survive a Ray worker killed mid-task (Ray retries it; on a cluster
started with `ray start`), and resume on either backend after its driver is killed (an embedded
Ray). As in test_reliability, every fault is placed by
TLKERAS_FAULT, not raced: the worker that reaches the point stops there and the test kills it.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from conftest import EXP1_FLAGS, REPO, only_run_dir, run_driver, tagged_processes, tiny_flags

pytestmark = pytest.mark.integration  # processes: drivers, commands, servers, signals

TIMING = {"train_seconds"}  # the only fields of a record that depend on the machine's speed


def _records(run: Path) -> dict[str, dict]:
    records = {}
    for path in (run / "cells").rglob("*.json"):
        record = json.loads(path.read_text())
        records[record["key"]] = {k: v for k, v in record.items() if k not in TIMING}
    return records


def _layout(run: Path) -> set[str]:
    """Every file of a run, event files by their folder (their names hold a time and a host)."""
    names = set()
    for path in run.rglob("*"):
        if not path.is_file() or ".partial" in path.parts or path.name in (".lock",):
            continue
        relative = str(path.relative_to(run))
        names.add(relative.rsplit("/", 1)[0] + "/<events>" if "tfevents" in path.name else relative)
    return names


def _assert_same_run(run: Path, reference: Path) -> None:
    ours, theirs = _records(run), _records(reference)
    assert len(theirs) == 12 and sorted(ours) == sorted(theirs)
    for key in theirs:
        assert ours[key] == theirs[key], f"member {key} differs from the local run"
    for losses in (reference / "losses").rglob("*.npy"):
        relative = losses.relative_to(reference)
        assert np.array_equal(np.load(run / relative), np.load(losses)), relative
    assert _layout(run) == _layout(reference)


def _wait_for(path: Path, process: subprocess.Popen, limit: float = 600) -> None:
    """Until `path` exists; the limit only bounds a failure (the driver ended, or a hang)."""
    deadline = time.monotonic() + limit
    while not path.exists():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the run ended (status {process.returncode}) before {path.name}:\n{out[-2000:]}\n{err[-2000:]}")
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.1)


def _ray_chatter(text: str, tmp_path: Path, allowed: str | None = None) -> list[str]:
    """Lines that mention Ray, other than ours (the run's paths, its flags)."""
    ours = (str(tmp_path), "--backend=ray")
    lines = [line for line in text.splitlines() if "ray" in line.lower() and not any(o in line for o in ours)]
    return [line for line in lines if not (allowed and allowed in line)]


@pytest.fixture(scope="module")
def killed_ray_run(tmp_path_factory):
    """An exp1 sweep on an embedded Ray whose driver (which alone writes the run) is killed after
    its third record: (run directory, the killed driver's result, the test tag of its processes,
    the logdir). The last test of this file checks that Ray's processes ended with the driver, so
    that the minute they may take runs beside the tests between (see that test)."""
    logdir, tag = tmp_path_factory.mktemp("ray_killed") / "logs", uuid.uuid4().hex
    killed = run_driver("exp1.py", [*tiny_flags(logdir), *EXP1_FLAGS, "--backend=ray", "--workers=2"],
                        env={"TLKERAS_FAULT": "kill@record.written#3", "TLKERAS_TEST_TAG": tag})
    return only_run_dir(logdir, "exp1"), killed, tag, logdir


def test_a_driver_killed_mid_ray_sweep_resumes_on_the_local_backend(exp1_run, killed_ray_run):
    """A local resume of the killed Ray run trains only the rest, to the same results."""
    run, killed, _, logdir = killed_ray_run
    assert killed.returncode == -9, (killed.stdout[-2000:], killed.stderr[-2000:])
    assert not _ray_chatter(killed.stdout + killed.stderr, logdir.parent), killed.stdout + killed.stderr
    assert not killed.stderr.strip(), killed.stderr[-2000:]  # a normal run's start-up: quiet
    kept = {p: p.stat().st_mtime_ns for p in (run / "cells").rglob("*.json")}
    assert len(kept) == 3
    resumed = run_driver("exp1.py", [f"--flagfile={run / 'flags.txt'}", f"--run_dir={run}", "--backend=local",
                                     "--workers=1"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming: 3 finished members kept, 9 to train" in resumed.stdout
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in kept.items())
    _assert_same_run(run, exp1_run[0])


@pytest.fixture
def ray_cluster(tmp_path):
    """A cluster as Ray's docs start one: `ray get-auth-token --generate`, then `ray start --head`
    (which turns token authentication on when it finds the token, in the home folder of the user
    who started it); yields (address, environment). Its workers hold at their first task (see
    the test below)."""
    home, tag = tmp_path / "home", uuid.uuid4().hex
    home.mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    faults = tmp_path / "faults"
    faults.mkdir()
    # The cluster's workers inherit `ray start`'s environment: the first to start a task holds.
    env = dict(os.environ, HOME=str(home), TLKERAS_TEST_TAG=tag, RAY_USAGE_STATS_ENABLED="0",
               TLKERAS_FAULT="hold@ray.task.started", TLKERAS_FAULT_DIR=str(faults))
    env.pop("RAY_AUTH_MODE", None)
    generated = subprocess.run(["ray", "get-auth-token", "--generate"], capture_output=True, text=True,
                               env=env, timeout=300)
    assert generated.returncode == 0, generated.stderr[-3000:]
    started = subprocess.run(["ray", "start", "--head", f"--port={port}", "--num-cpus=2",
                              "--include-dashboard=false", "--disable-usage-stats"],
                             capture_output=True, text=True, env=env, timeout=300)
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        assert "Token authentication is enabled" in started.stderr + started.stdout
        yield f"127.0.0.1:{port}", env
    finally:
        for pid in tagged_processes(tag):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_sweep_on_a_cluster_with_a_worker_killed_mid_task_equals_the_local_one(exp1_run, ray_cluster, tmp_path):
    """A cluster started with `ray start`, given as host:port: the token `ray start` wrote is sent
    (Ray itself sends it to `auto` only). One of its workers is killed mid-task; Ray retries the
    task, and every member, loss curve and file is as with local workers; progress lines and the
    ETA reach the driver's output, Ray's chatter does not. With a wrong token: one line and exit
    status 2 before any work."""
    address, env = ray_cluster
    logdir = tmp_path / "logs"
    flags = [*tiny_flags(logdir), *EXP1_FLAGS, "--backend=ray", f"--ray_address={address}"]
    driver_env = {k: v for k, v in env.items() if k != "TLKERAS_FAULT"}  # the driver runs on
    driver_env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    driver = subprocess.Popen([sys.executable, str(REPO / "experiments" / "exp1.py"), *flags],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=driver_env, cwd=REPO)
    held = Path(env["TLKERAS_FAULT_DIR"]) / "held-ray.task.started"
    _wait_for(held, driver)
    worker = int(held.read_text())
    assert worker != driver.pid
    os.kill(worker, signal.SIGKILL)  # a Ray worker dies mid-task
    out, err = driver.communicate(timeout=900)
    assert driver.returncode == 0, (out[-3000:], err[-3000:])
    _assert_same_run(only_run_dir(logdir, "exp1"), exp1_run[0])
    assert "sweep: 6 of 6 jobs done" in out and "ETA" in out
    assert "start  [pretrain" in out and "done   [baseline" in out  # the workers' lines, relayed
    assert not _ray_chatter(out + err, tmp_path, allowed="(raylet)"), _ray_chatter(out + err, tmp_path, "(raylet)")

    refused = run_driver("exp1.py", [*flags, f"--logdir={tmp_path / 'refused'}"],
                         env=dict(driver_env, RAY_AUTH_TOKEN="0" * 32))
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused this machine's authentication token" in lines[0], refused.stderr
    assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").rglob("*.json"))


@pytest.mark.parametrize("address, says", [
    ("127.0.0.1:1", "no Ray cluster answers there"),
    ("nonsense", "expected host:port"),
])
def test_an_unreachable_ray_address_is_one_line_before_any_work(tmp_path, address, says):
    result = run_driver("exp1.py", [*tiny_flags(tmp_path), "--backend=ray", f"--ray_address={address}"])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and address in lines[0], result.stderr
    assert not (tmp_path / "exp1").exists() or not any((tmp_path / "exp1").iterdir())


def test_ray_address_without_the_ray_backend_is_refused(tmp_path):
    result = run_driver("exp1.py", [*tiny_flags(tmp_path), "--ray_address=auto"])
    assert result.returncode == 2 and "needs --backend=ray" in result.stderr


def test_shipped_measurements_and_simple_model_work_where_their_files_do_not_exist(tmp_path):
    """A Ray worker on another machine cannot read the driver's files: the config carries them.
    Shipped from one process, installed in another after the files are gone."""
    folder = tmp_path / "lab"
    folder.mkdir()
    (folder / "g.py").write_text("import numpy as np\n\ndef g(x):\n    return np.stack([x[:, 0] * 2.0], axis=1)\n")
    rows = "\n".join(f"{x},{2 * x + 0.1}" for x in range(8))
    (folder / "plate.csv").write_text("dose,signal\n" + rows + "\n")
    script = f"""
import pickle, shutil, sys
from tlkeras.fit.fitting import plan_fit
from tlkeras.execution.ray_backend import ShippedConfig
config, _ = plan_fit({str(folder / 'g.py') + ':g'!r}, [0.0, 10.0], {str(folder / 'plate.csv')!r}, ['dose'], ['signal'],
                     folds=0, seeds=(0,), epochs=4, pretrain_epochs=2, pretrain_size=16, synthetic_noise=0.0,
                     width=4, depth=1, activation='relu', learning_rate=0.01, batch_size=4)
sys.stdout.buffer.write(pickle.dumps(ShippedConfig.of(config)))
"""
    shipped = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300, cwd=tmp_path)
    assert shipped.returncode == 0, shipped.stderr.decode()[-2000:]
    (tmp_path / "shipped.pickle").write_bytes(shipped.stdout)
    (folder / "g.py").unlink()
    (folder / "plate.csv").unlink()
    script = f"""
import pickle, sys
import numpy as np
from tlkeras.systems import measurements
from tlkeras.systems import system_function
shipped = pickle.loads(open({str(tmp_path / 'shipped.pickle')!r}, 'rb').read())
config = shipped.install()
found = measurements.of_config(config)
g = system_function(config.simple_system, config.system_params)
print(found.rows, float(found.y[3, 0]), float(g(np.array([[1.5]]))[0, 0]))
"""
    used = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert used.returncode == 0, used.stderr[-2000:]
    assert used.stdout.split() == ["8", "6.1", "3.0"]


def test_an_embedded_rays_processes_end_with_their_killed_driver(killed_ray_run):
    """Last in this file: every process of the killed driver's embedded Ray ends. They may take
    about a minute: when their raylet is killed, Ray's dashboard and runtime-env agents first try
    to tell the (dead) driver through the (dead) GCS, with a 60 s timeout
    (ray/_private/process_watcher.py, `publish_error(..., 60)`)."""
    _, killed, tag, _ = killed_ray_run
    assert killed.returncode == -9
    deadline = time.monotonic() + 150  # bounds a failure only
    while tagged_processes(tag) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not tagged_processes(tag), "Ray processes outlived their driver"
