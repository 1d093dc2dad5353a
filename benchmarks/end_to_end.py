"""End to end: wall time, split by arm, and peak memory of the drivers with the full protocol.

    python benchmarks/end_to_end.py                          # the three scenarios below, full protocol
    python benchmarks/end_to_end.py --scenarios=exp2_cold,exp2_warm --extra_flags=--preset=quick

Scenarios (each in a fresh --logdir; the warm one reuses the cold one's pretraining cache):
- exp1_cold:  python experiments/exp1.py                 (nothing cached)
- exp2_cold:  python experiments/exp2.py --hill_n=3      (nothing cached)
- exp2_warm:  python experiments/exp2.py --hill_n=3      (pretrained models from exp2_cold reused)
- fit_cold:   tlkeras fit on examples/plate (300 rows, 5 seeds, 5 folds; nothing cached)
- fit_warm:   the same fit again (pretrained models from fit_cold reused)
- exp3_cold:  python experiments/exp3.py                 (every strategy; nothing cached)
Targets: fit_warm under 1 minute; fit_cold no slower than exp1_cold's pretraining (issue 8);
exp3_cold under 15 minutes (issue 9).

Peak memory is the largest sum of resident memory over the driver and all its worker processes,
sampled every 0.2 s from /proc. The split by arm is the training time each arm's stacks took
(summed over workers; arms overlap in wall time on 2 cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = {
    "exp1_cold": ("exp1.py", [], "cold"),
    "exp2_cold": ("exp2.py", ["--hill_n=3"], "cold"),
    "exp2_warm": ("exp2.py", ["--hill_n=3"], "warm"),
    "fit_cold": ("fit", [], "cold"),
    "fit_warm": ("fit", [], "warm"),
    "exp3_cold": ("exp3.py", [], "cold"),
}
EXAMPLE = REPO / "examples" / "plate"
FIT_FLAGS = [f"--simple={EXAMPLE / 'simple_model.py'}:g", "--domain=0,100,0,1000",
             f"--measurements={EXAMPLE / 'plate.csv'}", "--inputs=aTc,IPTG", "--outputs=gfp,rfp"]
flags.DEFINE_list("scenarios", [s for s in SCENARIOS if s != "exp3_cold"], f"Which of {', '.join(SCENARIOS)} to run, in order.")
flags.DEFINE_list("extra_flags", [], "Flags passed to every driver (for a quick check: --preset=quick).")
flags.DEFINE_string("workdir", None, "Where the runs go (default: a new temporary folder).")
FLAGS = flags.FLAGS


def _tree_rss_bytes(root: int) -> int:
    """Resident memory of `root` and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid, parent = int(entry.name), int(fields.get("PPid", "0").strip())
        children.setdefault(parent, []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def run_scenario(name: str, workdir: Path) -> dict:
    script, scenario_flags, kind = SCENARIOS[name]
    experiment = script.removesuffix(".py")
    logdir = workdir / name
    cache = workdir / f"cache_{experiment}"  # exp2_warm reuses what exp2_cold wrote
    if kind == "cold":
        subprocess.run(["rm", "-rf", str(cache)], check=True)
    if script == "fit":
        command = [sys.executable, "-m", "tlkeras.cli", "fit", *FIT_FLAGS, *FLAGS.extra_flags,
                   f"--out={logdir / 'plate'}", f"--cache_dir={cache}"]
        shown = "tlkeras fit " + " ".join(f.replace(str(REPO) + "/", "") for f in FIT_FLAGS + FLAGS.extra_flags)
    else:
        command = [sys.executable, str(REPO / "experiments" / script), *scenario_flags, *FLAGS.extra_flags,
                   f"--logdir={logdir}", f"--cache_dir={cache}"]
        shown = " ".join(["python", f"experiments/{script}", *scenario_flags, *FLAGS.extra_flags])
    peak = [0]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss_bytes(process.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = process.communicate()[0]
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{name} failed ({process.returncode}):\n{output[-3000:]}")
    if script == "fit":
        run_dir = logdir / "plate"
        timing: dict = {}
        for member in json.loads((run_dir / "results.json").read_text())["members"]:
            key = f"train_seconds_{member['arm']}"
            timing[key] = timing.get(key, 0.0) + member["train_seconds"]
    else:
        run_dir = next(p for p in (logdir / experiment).iterdir() if p.is_dir())
        timing = json.loads((run_dir / "results.json").read_text())["timing"]
    return dict(scenario=name, command=shown, wall_seconds=wall, peak_rss_gib=peak[0] / 2**30, timing=timing,
                run_dir=str(run_dir))


def main(argv):
    del argv
    workdir = Path(FLAGS.workdir or tempfile.mkdtemp(prefix="tlkeras-e2e-"))
    print(f"machine: {os.cpu_count()} cores; runs in {workdir}")
    rows = []
    for name in FLAGS.scenarios:
        if name not in SCENARIOS:
            raise SystemExit(f"error: unknown scenario {name!r}; allowed: {', '.join(SCENARIOS)}")
        row = run_scenario(name, workdir)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print()
    print("| scenario | command | wall | pretrain | oracle | fine-tuning (transfer) | baselines | peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        t = row["timing"]
        print(f"| {row['scenario']} | `{row['command']}` | {row['wall_seconds'] / 60:.1f} min | "
              f"{t.get('train_seconds_pretrain', 0):.0f} s | {t.get('train_seconds_oracle', 0):.0f} s | "
              f"{t.get('train_seconds_transfer', 0):.0f} s | {t.get('train_seconds_baseline', 0):.0f} s | "
              f"{row['peak_rss_gib']:.2f} GiB |")


if __name__ == "__main__":
    app.run(main)
