"""Kill stress: SIGKILL a sweep (driver and workers) at random moments, resume, check the files.

    python benchmarks/kill_stress.py                       # 20 kills, seed 0, in a new temporary folder
    git clone . /tmp/stress && python benchmarks/kill_stress.py --repo=/tmp/stress --kills=5 --seed=3

The sweep (SWEEP_FLAGS), run with the checkout under test (--repo), under <workdir>:
    python <repo>/experiments/exp1.py --preset=quick --volumes=50,200 --seeds=0,1,2 --hill_n=2 \\
        --cache=false --logdir=<workdir>/straight            (then <workdir>/killed, with --resume)

1. Runs the sweep once uninterrupted: the reference, its wall time T (about 1 min on 2 cores).
2. Starts the same sweep in its own session, SIGKILLs the whole process group at a moment drawn
   uniformly from [0, time left] (random.Random(--seed); time left: T, or once every member is
   recorded a start-up and the report), resumes it with --resume, and so on until --kills kills
   landed on an unfinished run; then lets the last resume finish. If the run finishes before a
   kill lands, it is kept and a fresh run directory takes the remaining kills.
3. After every kill checks the run directory (and all of them at the end; every violation is
   printed at once as FAIL with its path, and the run goes on to find more): no temporary
   files (a name starting with '.' or containing 'tmp' or 'partial') under models/, cells/,
   losses/, tensorboard/ (temporaries belong in <run>/.partial/); every record parses and names an
   existing model; every model, loss and TensorBoard event file loads completely; a record once
   seen never changes afterwards (nothing recomputed twice).
4. At the end every killed run's results.json must equal the reference member by member, bit
   for bit. Prints a summary and a BENCHMARKS.md row; exit status 0 only if every check passed.
The moments are random, the checks are not: none of them depends on where a kill landed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

SWEEP_FLAGS = ["--preset=quick", "--volumes=50,200", "--seeds=0,1,2", "--hill_n=2", "--cache=false"]
COMPARED = ("l1_mean", "l1_var", "l1_inside", "l1_outside", "final_train_loss")
CHECKED_DIRS = ("models", "cells", "losses", "tensorboard")
REPORT_LINE = re.compile(r"^\[\d\d:\d\d:\d\d\] (.*)$")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def launch(repo: Path, logdir: Path, log: Path, resume: bool) -> subprocess.Popen:
    command = [sys.executable, str(repo / "experiments/exp1.py"), *SWEEP_FLAGS, f"--logdir={logdir}"]
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command + ["--resume"] * resume, stdout=out, stderr=subprocess.STDOUT,
                                cwd=repo, start_new_session=True)


def report_lines(log: Path) -> list[str]:
    """The driver's and workers' progress lines (TensorFlow's chatter left out)."""
    return [m.group(1) for m in map(REPORT_LINE.match, log.read_text(errors="replace").splitlines()) if m]


def phase(lines: list[str]) -> str:
    last = lines[-1] if lines else ""
    if last.startswith(("results:", "done. Browse")):
        return "exit"  # results written, the process not yet gone
    if last.startswith("sweep finished"):
        return "report"
    if not last or last.startswith(("run directory:", "resuming:")):
        return "start-up"
    return "training"


def group_alive(pgid: int) -> list[int]:
    """Processes of the group that are not zombies (a zombie writes nothing)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue
        if int(group) == pgid and state != "Z":
            alive.append(int(stat.parent.name))
    return alive


def kill_group(process: subprocess.Popen) -> int:
    if process.poll() is None:  # not reaped yet, so its pid (the group's id) cannot be reused
        os.killpg(process.pid, signal.SIGKILL)  # start_new_session: pgid == the driver's pid
    code = process.wait()
    deadline = time.monotonic() + 30
    while group_alive(process.pid):
        if time.monotonic() > deadline:
            raise SystemExit(f"FAIL: processes {group_alive(process.pid)} survived SIGKILL")
        time.sleep(0.1)
    return code


def is_temporary(path: Path) -> bool:
    return path.name.startswith(".") or "tmp" in path.name or "partial" in path.name


def check_run(run: Path, seen: dict[str, tuple[int, bytes]], counts: Counter) -> list[str]:
    """Every violation in one run directory, each naming its path."""
    import keras  # lazily: the drivers' start-up should not wait for ours
    import numpy as np
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    problems = []
    files = sorted(p for d in CHECKED_DIRS if (run / d).is_dir() for p in (run / d).rglob("*") if p.is_file())
    problems += [f"temporary file outside {run / '.partial'}/: {p}" for p in files if is_temporary(p)]
    for path in (p for p in files if not is_temporary(p)):
        kind = path.relative_to(run).parts[0]
        try:
            if kind == "cells" and path.suffix == ".json":
                counts["records"] += 1
                content = path.read_bytes()
                model = json.loads(content)["model"]
                if not (run / model).is_file():
                    problems.append(f"record names a missing model {model}: {path}")
                now = (path.stat().st_mtime_ns, content)
                if seen.setdefault(str(path), now) != now:
                    problems.append(f"record rewritten (recomputed): {path}")
            elif kind == "models" and path.suffix == ".keras":
                counts["models"] += 1
                keras.saving.load_model(path, compile=False)
            elif kind == "losses" and path.suffix == ".npy":
                counts["loss files"] += 1
                np.load(path)
            elif kind == "tensorboard" and "tfevents" in path.name:
                counts["event files"] += 1
                sum(1 for _ in tf.compat.v1.train.summary_iterator(str(path)))
        except Exception as error:  # noqa: BLE001 - any failure to read is the finding
            problems.append(f"{path} does not load: {type(error).__name__}: {str(error).strip()[:160]}")
    problems += [f"record deleted: {p}" for p in seen if p.startswith(f"{run}/") and not Path(p).exists()]
    keras.backend.clear_session()
    return problems


def runs(root: Path) -> list[Path]:
    found = [p for p in (root / "exp1").glob("*-*-*") if (p / "config.json").exists()]
    return sorted(found, key=lambda p: (p.name.rsplit("-", 1)[0], int(p.name.rsplit("-", 1)[1])))


def members(run: Path) -> dict[str, dict]:
    return {m["key"]: m for m in json.loads((run / "results.json").read_text())["members"]}


def same(a: float, b: float) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def reference_run(repo: Path, work: Path) -> tuple[float, float, float, dict[str, dict]]:
    """The sweep uninterrupted: wall time T, when training started, when the last record came, members."""
    launched, launched_wall, log = time.monotonic(), time.time(), work / "logs/straight.log"
    process, startup = launch(repo, work / "straight", log, resume=False), None
    try:
        while process.poll() is None:
            if startup is None and any(line.startswith("start  [") for line in report_lines(log)):
                startup = time.monotonic() - launched
            time.sleep(0.2)
    finally:
        kill_group(process)  # a no-op once it exited; on Ctrl-C it leaves no sweep behind
    total = time.monotonic() - launched
    if process.returncode != 0 or startup is None:
        raise SystemExit(f"FAIL: the reference run failed, see {log}")
    run = runs(work / "straight")[-1]
    last_record = max(p.stat().st_mtime for p in (run / "cells").rglob("*.json")) - launched_wall
    return total, startup, last_record, members(run)


def compare(killed: Path, reference: dict[str, dict], problems: list[str]) -> tuple[int, int]:
    """(members equal, members compared) over every killed run's results.json."""
    equal = compared = 0
    for run in runs(killed):
        if not (run / "results.json").exists():
            problems.append(f"no results.json in {run}")
            continue
        ours = members(run)
        if set(ours) != set(reference):
            problems.append(f"{run}/results.json: members {sorted(set(ours) ^ set(reference))} differ")
        for key in sorted(set(ours) & set(reference)):
            compared += 1
            diff = [f for f in COMPARED if not same(ours[key][f], reference[key][f])]
            equal += not diff
            problems += [f"{run}/results.json: {key} differs from the reference in {diff}"] if diff else []
    return equal, compared


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--kills", type=int, default=20, help="kills that must land on an unfinished run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a new temporary folder")
    args = parser.parse_args()
    started = time.monotonic()
    repo, work = args.repo.resolve(), (args.workdir or Path(tempfile.mkdtemp(prefix="kill_stress-"))).resolve()
    (work / "logs").mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    print(f"kill stress: repo {repo}, workdir {work}, seed {args.seed}, {args.kills} kills", flush=True)
    total, startup, last_record, reference = reference_run(repo, work)
    print(f"reference: {len(reference)} members in T = {total:.1f} s "
          f"(training from {startup:.0f} s, last record at {last_record:.0f} s)", flush=True)

    killed, seen, counts, problems = work / "killed", {}, Counter(), []
    phases, landed, resumes, attempt, early, finished, scale = Counter(), 0, 0, 0, 0, set(), 1.0
    while True:
        current = [r for r in runs(killed) if r not in finished]  # none: start a fresh run directory
        done = len(list((current[-1] / "cells").rglob("*.json"))) if current else 0
        # Time left: at most T while a member is left (a resume trains less, but pays the same
        # start-up and compilations), else a start-up and the reference's report; scaled down
        # once a whole run, start to end, proved faster than the reference.
        remaining = scale * (total if done < len(reference) else startup + total - last_record)
        last = landed >= args.kills
        delay, attempt, resumes = rng.uniform(0, remaining), attempt + 1, resumes + bool(current)
        log = work / f"logs/attempt{attempt:02d}.log"
        process, launched = launch(repo, killed, log, resume=bool(current)), time.monotonic()
        try:
            code = process.wait(timeout=None if last else delay)
        except subprocess.TimeoutExpired:
            code = kill_group(process)
        except BaseException:  # Ctrl-C on this script: leave no sweep behind
            kill_group(process)
            raise
        lines, active = report_lines(log), [r for r in runs(killed) if r not in finished]
        if code == -signal.SIGKILL:
            landed += 1
            phases[phase(lines)] += 1
            where = f"kill {landed}/{args.kills} after {delay:.1f} s, {phase(lines)}: {lines[-1] if lines else '-'}"
        elif code == 0:
            finished.update(runs(killed))  # one run at a time: every run so far is finished
            early += not last
            where = ("the last resume ran to completion" if last else f"the run finished before the kill "
                     f"({delay:.1f} s): kept; the next kills go to a fresh run directory")
            if not current and not last:  # a whole run: a new measure of T
                scale = (time.monotonic() - launched) / total
                where += f" (it took {scale * total:.0f} s: time estimates now x{scale:.2f})"
        else:
            problems.append(f"the driver failed on its own (exit {code}), see {log}")
            print(f"FAIL: {problems[-1]}", flush=True)
            break
        new = [p for r in (runs(killed) if last else active) for p in check_run(r, seen, counts)
               if p not in problems]
        problems += new
        print(f"attempt {attempt:2d}: {where}; {len(seen)} records seen; "
              f"{f'{len(new)} new violations' if new else 'checks ok'}", flush=True)
        for problem in new:
            print(f"  FAIL: {problem}", flush=True)
        if last:
            break

    equal, compared = compare(killed, reference, problems)
    wall = (time.monotonic() - started) / 60
    by_phase = ", ".join(f"{name} {phases[name]}" for name in ("start-up", "training", "report", "exit")
                         if phases[name]) or "none"
    kept = len(seen) - sum(p.startswith(("record rewritten", "record deleted")) for p in problems)
    files = ", ".join(f"{counts[k]} {k}" for k in ("records", "models", "loss files", "event files"))
    verdict = f"FAIL ({len(problems)} violations)" if problems else "PASS"
    print(f"\nsummary (seed {args.seed}, workdir {work}):\n"
          f"  reference run: T = {total:.1f} s, {len(reference)} members\n"
          f"  kills landed: {landed} ({by_phase}); runs that finished before a kill: {early}\n"
          f"  resumes: {resumes}; run directories: {len(runs(killed))}\n"
          f"  files checked: {files}\n"
          f"  records never rewritten: {kept} of {len(seen)}\n"
          f"  members compared equal: {equal} of {compared}\n"
          f"  total wall time: {wall:.1f} min\n  result: {verdict}")
    for problem in problems:
        print(f"  FAIL: {problem}")
    print(f"\n| {time.strftime('%Y-%m-%d')} | `kill_stress.py --kills={args.kills} --seed={args.seed}` | "
          f"T = {total:.0f} s | {landed} kills ({by_phase}) | {resumes} resumes | {files} | "
          f"{kept}/{len(seen)} records never rewritten | {equal}/{compared} members equal | "
          f"{wall:.1f} min | {verdict} |")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
