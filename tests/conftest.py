"""Shared test setup: quiet TensorFlow, one intra-op thread, tiny protocol settings."""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
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

# The driver and fit runs below are shared by several tests (a tiny run costs process start-up
# and XLA compilation): each is made once per session and only read afterwards (a test that
# changes a run works on a copy). They start in the background when the session starts, while the
# in-process unit tests (ordered first) use the other core; a fixture waits for its run to end.
# Nothing races: a run's outcome does not depend on when it ends.
EXAMPLE = REPO / "examples" / "plate"
FIT = ["fit", f"--simple={EXAMPLE / 'simple_model.py'}:g", "--domain=0,100,0,1000",
       f"--measurements={EXAMPLE / 'plate.csv'}", "--inputs=aTc,IPTG", "--outputs=gfp,rfp", "--preset=quick"]
FIT_STRATEGIES = "fine_tune_all,l2_sp_extrapolation,residual"  # the shared fit's: the first is the default


def tlkeras(*args, cwd=REPO, timeout=600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the `tlkeras` command (`python -m tlkeras.cli`, what the console script runs)."""
    env = dict(os.environ, **(env or {}))
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return subprocess.run([sys.executable, "-m", "tlkeras.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def tlkeras_here(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The `tlkeras` command called in this process (`tlkeras.cli.main`, what the console script
    calls after start-up), as `tlkeras` above returns it: exit status, standard output and error.

    For commands whose work is the test's subject (predict, evaluate, suggest on a fitted folder):
    a fresh process would spend most of its time importing TensorFlow again. What only a fresh
    process shows (the import's chatter kept off stderr, the console script, signals, faults
    named in the environment) stays with `tlkeras`."""
    from tlkeras.cli import main
    from tlkeras.runtime import interrupts

    out, err, here = io.StringIO(), io.StringIO(), os.getcwd()
    status = 0
    try:
        os.chdir(cwd or REPO)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(["tlkeras", *map(str, args)])
            except SystemExit as stop:
                status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        os.chdir(here)
        interrupts.uninstall()  # this process's own signal handlers again
    return subprocess.CompletedProcess(["tlkeras", *map(str, args)], status, out.getvalue(), err.getvalue())


def _exp1(logdir: Path):
    return logdir, run_driver("exp1.py", [*tiny_flags(logdir), *EXP1_FLAGS], env={"TLKERAS_FAULT": "sigint@run.finished"})


def _exp2(logdir: Path):
    return logdir, run_driver("exp2.py", [*tiny_flags(logdir), *EXP2_FLAGS, "--workers=2"])  # workers' output too


EXP4_FLAGS = ["--hill_n=2", "--replicates=2", "--rounds=2", "--start=12", "--batch=8", "--candidates=40",
              "--targets=20", "--reference_until=44"]


INTERVAL_FLAGS = ["--volumes=40", "--hill_n=2", "--arms=transfer,baseline", "--seeds=0", "--interval_replicates=2"]


def _interval_run(logdir: Path):
    """A tiny exp1 that also fits two data sets as `tlkeras fit` does and scores their intervals
    (one seed: one member per fold, the spread is the noise floor alone)."""
    return logdir, run_driver("exp1.py", [*tiny_flags(logdir), *INTERVAL_FLAGS])


def _exp4(logdir: Path):
    """A tiny exp4 stopped by SIGTERM once its round 1 is recorded, then resumed."""
    flags = [*tiny_flags(logdir), *EXP4_FLAGS]
    stopped = run_driver("exp4.py", flags, env={"TLKERAS_FAULT": "sigterm@design.round.finished#2"})
    resumed = run_driver("exp4.py", [*flags, "--resume"])
    return only_run_dir(logdir, "exp4"), stopped, resumed


def _fits(root: Path):
    """The example fitted into "lab models/plate 1" three times: cancelled by SIGTERM mid-training
    (its g, a copy that logs each import, to count them), killed, then whole (the last must sweep
    the killed one's leftovers), with what each left."""
    out = root / "lab models" / "plate 1"  # spaces: the commands it prints must still paste
    small = [*FIT, f"--out={out}", "--workers=1", "--cache=false", "--seeds=0", "--folds=2",
             "--pretrain_size=64", "--epochs=3", "--pretrain_epochs=2"]
    counted = root / "counted_g.py"
    counted.write_text(f"import os\nopen({str(root / 'imports.log')!r}, 'a').write(f'{{os.getpid()}}\\n')\n"
                       + (EXAMPLE / "simple_model.py").read_text())
    left = {}
    for name, fault, g in (("cancelled", "sigterm@record.written#3", counted),
                           ("killed", "kill@record.written#2", EXAMPLE / "simple_model.py")):
        result = tlkeras(*small, f"--simple={g}:g", env={"TLKERAS_FAULT": fault}, timeout=300)
        left[name] = result, out.exists(), out.parent.exists() and sorted(p.name for p in out.parent.glob(".*"))
    left["imports"] = (root / "imports.log").read_text().splitlines()
    fitted = tlkeras(*FIT, f"--out={out}", f"--cache_dir={root / 'cache'}", "--workers=2",
                     f"--strategies={FIT_STRATEGIES}")
    return out, left, fitted


BACKGROUND = {"example_fits": _fits, "exp1_run": _exp1, "exp2_run": _exp2, "interval_run": _interval_run,
              "exp4_run": _exp4}  # in the order tests need them


def pytest_collection_modifyitems(config, items):
    """The files of unit tests first, then those of integration tests (`pytestmark`), each in its
    usual order, so that the shared runs overlap the unit tests. Files stay whole: their
    module-scoped fixtures are made once."""
    def integration_file(item) -> bool:
        marks = getattr(item.module, "pytestmark", [])
        return any(m.name == "integration" for m in (marks if isinstance(marks, list) else [marks]))

    # The exp4 run is made last in the background: its tests go last, so that none waits for it
    # while others could run.
    items.sort(key=lambda item: (integration_file(item), item.module.__name__ == "test_exp4"))


@pytest.fixture(scope="session", autouse=True)
def shared_runs(request, tmp_path_factory):
    """The shared runs the selected tests need, started now, one after the other, in one
    background thread (the unit tests keep the other core), in the order the tests need them."""
    needed = {name for item in request.session.items for name in item.fixturenames} & set(BACKGROUND)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        yield {name: pool.submit(BACKGROUND[name], tmp_path_factory.mktemp(name)) for name in BACKGROUND
               if name in needed}


@pytest.fixture(scope="session")
def exp1_run(shared_runs) -> tuple[Path, subprocess.CompletedProcess]:
    """One exp1 sweep (one worker), never interrupted: test_drivers reads its results, and every
    interrupted and resumed run in test_reliability (two workers) must equal it member by member.

    Its Ctrl-C comes after the last result is written: that changes nothing (exit status 0)."""
    logdir, result = shared_runs["exp1_run"].result()
    assert result.returncode == 0, result.stderr[-3000:]
    return only_run_dir(logdir, "exp1"), result


@pytest.fixture(scope="session")
def exp2_run(shared_runs) -> tuple[Path, subprocess.CompletedProcess]:
    """One exp2 run (three systems, two seeds, two workers): test_drivers reads its files,
    test_tensorboard serves it."""
    logdir, result = shared_runs["exp2_run"].result()
    assert result.returncode == 0, result.stderr[-3000:]
    return only_run_dir(logdir, "exp2"), result


@pytest.fixture(scope="session")
def interval_run(shared_runs) -> tuple[Path, subprocess.CompletedProcess]:
    """exp1 with --interval_replicates=2 (test_drivers)."""
    logdir, result = shared_runs["interval_run"].result()
    assert result.returncode == 0, result.stderr[-3000:]
    return only_run_dir(logdir, "exp1"), result


@pytest.fixture(scope="session")
def example_fits(shared_runs):
    """(model folder, what the interrupted and killed fits left, the whole fit's process)."""
    return shared_runs["example_fits"].result()


@pytest.fixture(scope="session")
def exp4_run(shared_runs):
    """(run directory, the session stopped by SIGTERM after round 1, the resumed session)."""
    return shared_runs["exp4_run"].result()
