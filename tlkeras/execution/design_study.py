"""Experiment 4 as rounds of sweeps: simulated labs that measure where a design method says.

The plan (a `StudyConfig` with `design_methods`, `design_replicates`, and `volumes` N0 < N1 < ...
the lab's measurements after each round) runs as one sweep per round, each in its own run
directory `round<k>/` beside the plan's config.json:

- round 0: every replicate lab's N0 starting pairs (uniform where it can measure, the same for
  every method: `design_sets.START`); its ensemble (one member per seed and arm) is trained;
- round k >= 1: for each method, each lab adds N_k - N_{k-1} points picked by the method from its
  candidates, using the ensemble of the first strategy arm (the transfer lab's own model) trained
  in round k - 1 on its points so far; every arm then trains on the lab's N_k pairs.

Each round is an ordinary sweep (`SweepRunner`): its jobs run on the same worker processes (the
compiled programs stay warm) or Ray, pretraining is trained once (round 0) and linked into later
rounds, and a stopped run resumes where it stopped (a round's picks are written before its
training, in `round<k>/design/`, and are a function of the run's config: seeds per lab and round).
Each lab is scored after every round by its ensemble mean's L1 on the big domain
(`results.design_report`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import zlib
from pathlib import Path

import numpy as np

from tlkeras.core.config import StudyConfig
from tlkeras.core.members import Member
from tlkeras.core.options import SweepOptions
from tlkeras.core.vocabulary import PRETRAIN
from tlkeras.design.methods import METHODS, MODEL_FREE
from tlkeras.design.suggest import pick
from tlkeras.execution.study import open_run
from tlkeras.execution.sweep import SweepRunner
from tlkeras.execution.worker import WorkerProcesses
from tlkeras.results import design_report, evaluation
from tlkeras.results.evaluation import EvaluationSet
from tlkeras.runtime import faults, interrupts
from tlkeras.storage.rundir import RunDir
from tlkeras.systems import design_sets
from tlkeras.systems.design_sets import START, set_name

_PICK_SEED = 0x91C4


def all_volumes(plan: StudyConfig) -> list[int]:
    """N after each round: every method's rounds, then the reference methods' further rounds."""
    return [*plan.volumes, *(plan.design_reference_volumes if reference_methods(plan) else ())]


def reference_methods(plan: StudyConfig) -> list[str]:
    return [m for m in plan.design_methods if m in MODEL_FREE]


def round_config(plan: StudyConfig, k: int) -> StudyConfig:
    """The sweep of round k (k < len(volumes)) in the transfer arms (round 0: every arm): every
    lab's design set at N_k pairs. Members of the last round do not predict at candidates (no
    model-based pick follows)."""
    methods = (START,) if k == 0 else plan.design_methods
    # The baseline trains the start and the reference methods' labs (none: no baseline at all).
    with_baseline = k == 0 and bool(reference_methods(plan))
    arms = tuple(a for a in plan.arms if a != "baseline" or with_baseline)
    picks_follow = k < len(plan.volumes) - 1
    return _sweep(plan, (plan.volumes[k],), methods, arms, plan.design_candidates if picks_follow else 0,
                  plan.design_targets if picks_follow else 0)


def baseline_config(plan: StudyConfig) -> StudyConfig | None:
    """The baseline's sweep: the reference methods' labs at every N after the start, at once (their
    points need no model, so they are known when the rounds are). A lab without the simple model
    cannot ask a transfer ensemble where to measure: the baseline shows what uniform or
    space-filling sampling gives without it. None if there is nothing to train."""
    if "baseline" not in plan.arms or not reference_methods(plan):
        return None
    return _sweep(plan, tuple(plan.volumes[1:]), reference_methods(plan), ("baseline",), 0, 0)


def reference_config(plan: StudyConfig) -> StudyConfig | None:
    """The reference methods' further rounds in the transfer arms, at once (model-free picks), so
    that the other methods' savings against them are read on their curves. None if none."""
    if not plan.design_reference_volumes or not reference_methods(plan):
        return None
    return _sweep(plan, tuple(plan.design_reference_volumes), reference_methods(plan),
                  tuple(a for a in plan.arms if a != "baseline"), 0, 0)


def _sweep(plan: StudyConfig, volumes: tuple[int, ...], methods, arms, candidates: int, targets: int) -> StudyConfig:
    sets = tuple(set_name(system, method, r) for system in plan.system_names() for method in methods
                 for r in range(plan.design_replicates))
    return dataclasses.replace(plan, volumes=volumes, design_sets=sets, design_methods=(), arms=arms,
                               design_replicates=0, design_candidates=candidates, design_targets=targets,
                               design_reference_volumes=()).validate()


def round_folder(run_dir: Path, k: int) -> RunDir:
    return RunDir(Path(run_dir) / f"round{k}")


def run_design_study(plan: StudyConfig, run_dir: Path, options: SweepOptions | None = None, resume: bool = False,
                     processes: WorkerProcesses | None = None) -> dict:
    """Every round of the plan into `run_dir` (created by the caller), then the baseline's and the
    reference methods' sweeps, then the report; with `resume`, the recorded plan must be this one
    and finished members and picks are kept."""
    plan.validate()
    _check_plan(plan)
    options = options or SweepOptions()
    directory = RunDir(run_dir)
    with directory.lock():
        sessions = open_run(plan, directory, options, resume)
        scoring = EvaluationSet(plan)
        records: list[dict] = []
        previous = None
        first = round_folder(directory.path, 0)
        for k in range(len(plan.volumes)):
            interrupts.check()
            config = round_config(plan, k)
            folder = _open_round(round_folder(directory.path, k), config)
            _write_points(plan, k, folder, previous)
            options.report(f"round {k} of {len(plan.volumes) - 1}: {len(config.design_sets)} lab sets at "
                           f"N={plan.volumes[k]}")
            found = _run_sweep(config, folder, first, options, processes)
            previous = (config, folder, found)
            records += found if k == 0 else [r for r in found if r["arm"] != PRETRAIN]
            faults.point("design.round.finished")
        last = round_folder(directory.path, len(plan.volumes) - 1)
        for name, config, write in (("baseline", baseline_config(plan), _copy_points),
                                    ("reference", reference_config(plan), _write_reference_points)):
            if config is None:
                continue
            interrupts.check()
            folder = _open_round(RunDir(directory.path / name), config)
            write(plan, config, folder, last)
            options.report(f"{name}: {len(config.design_sets)} lab sets of {', '.join(reference_methods(plan))} at "
                           f"N={','.join(map(str, config.volumes))} ({'/'.join(config.trained_arms())})")
            records += [r for r in _run_sweep(config, folder, first, options, processes) if r["arm"] != PRETRAIN]
        interrupts.check()
        timing: dict[str, float] = {}
        for record in records:
            key = f"train_seconds_{record['arm']}"
            timing[key] = timing.get(key, 0.0) + record["train_seconds"]
        return design_report.write_report(directory, plan, lab_scores(plan, scoring, records), scoring, timing,
                                          sessions)


def _run_sweep(config: StudyConfig, folder: RunDir, first: RunDir, options: SweepOptions,
               processes: WorkerProcesses | None) -> list[dict]:
    """One sweep of the study; its pretraining linked from round 0's (trained once per run)."""
    linked = _link_pretraining(config, first, folder) if folder.path != first.path else 0
    return SweepRunner(config, folder, options, processes, shared=linked).run()


def _open_round(folder: RunDir, config: StudyConfig) -> RunDir:
    """A round's run directory, made or reopened (with the same config) for this session."""
    folder.path.mkdir(exist_ok=True)
    if (folder.path / "config.json").exists():
        folder.check_resumable(config)
        folder.staging.sweep()  # temporaries of a stopped session
    else:
        folder.write_config(config)
    return folder


def _check_plan(plan: StudyConfig) -> None:
    if not plan.design_methods or plan.design_replicates < 1 or len(plan.volumes) < 2 or plan.design_candidates < 1:
        raise ValueError("an Experiment 4 plan needs design_methods, design_replicates >= 1, at least two volumes "
                         "and design_candidates >= 1")
    if list(plan.volumes) != sorted(set(plan.volumes)):
        raise ValueError(f"volumes={plan.volumes}: the lab's measurements after each round, rising")
    if not plan.strategy_arms():
        raise ValueError("an Experiment 4 plan needs a transfer strategy: its ensemble picks the points")
    unknown = [m for m in plan.design_methods if m not in METHODS]
    if unknown:
        raise ValueError(f"design_methods={unknown}: expected methods of {', '.join(METHODS)}")
    volumes = all_volumes(plan)
    step = max(b - a for a, b in zip(volumes, volumes[1:]))
    if plan.design_candidates < step:
        raise ValueError(f"design_candidates={plan.design_candidates}: expected at least the largest round's "
                         f"picks ({step})")


def picking_arm(plan: StudyConfig) -> str:
    """The arm whose ensemble picks a lab's points: the first transfer strategy's."""
    return plan.strategy_arms()[0]


def _write_points(plan: StudyConfig, k: int, folder: RunDir, previous) -> None:
    """Round k's design files (kept if there: a resumed round trains on its recorded picks)."""
    config = round_config(plan, k)
    low, high = plan.design_box.bounds(plan.input_dimension)
    by_member = {} if previous is None else {(r["arm"], r["system"], r["volume"], r["seed"]): r for r in previous[2]}
    for name in config.design_sets:
        path = folder.design_path(name)
        if path.exists():
            continue
        lab = design_sets.parse(name)
        if k == 0:
            points = design_sets.starting_points(lab.replicate, low, high, plan.volumes[0])
        else:
            _, before_folder, _ = previous
            before = set_name(lab.system, START if k == 1 else lab.method, lab.replicate)
            measured = np.load(before_folder.design_path(before))
            predicted = None
            if lab.method not in MODEL_FREE:
                volume = plan.volumes[k - 1]
                members = [_record(by_member, picking_arm(plan), before, volume, seed) for seed in plan.seeds]
                predicted = np.asarray([m["design_predictions"] for m in members], np.float64)
            points = _picked(plan, lab, k, measured, predicted)
        folder.staging.save_npy(path, points)


def _picked(plan: StudyConfig, lab, k: int, measured: np.ndarray, predicted: np.ndarray | None) -> np.ndarray:
    """A lab's points after round k (of `all_volumes`): its `measured` points and the method's
    picks from its candidates of that round, with the members' predictions there (None for a
    model-free method). Seeded by (lab, round, system): the same picks on every rerun."""
    volumes = all_volumes(plan)
    pool = plan.design_pool(lab.replicate, volumes[k - 1])
    if predicted is None:
        predicted = np.zeros((1, len(pool), plan.output_dimension))
    candidates, targets = pool[: plan.design_candidates], pool[plan.design_candidates:]
    rng = np.random.default_rng([_PICK_SEED, lab.replicate, k, zlib.crc32(lab.system.encode())])
    domain = np.stack(plan.big_box.bounds(plan.input_dimension), axis=1)
    noise = np.full(plan.output_dimension, plan.real_noise)
    picks, _ = pick(predicted, candidates, targets, domain, measured, volumes[k] - volumes[k - 1], lab.method, rng,
                    noise)
    return np.concatenate([measured, candidates[picks]])


def _copy_points(plan: StudyConfig, config: StudyConfig, folder: RunDir, last: RunDir) -> None:
    """The baseline trains on the reference methods' labs' points of the last round (each member
    on the first N of them)."""
    for name in config.design_sets:
        if not folder.design_path(name).exists():
            folder.staging.write_bytes(folder.design_path(name), last.design_path(name).read_bytes())


def _write_reference_points(plan: StudyConfig, config: StudyConfig, folder: RunDir, last: RunDir) -> None:
    """The reference methods' labs' points up to the last reference N: the last round's, then the
    picks of every further round, made as the rounds would make them (model-free: no ensemble)."""
    for name in config.design_sets:
        if folder.design_path(name).exists():
            continue
        lab = design_sets.parse(name)
        points = np.load(last.design_path(name))
        for k in range(len(plan.volumes), len(all_volumes(plan))):
            points = _picked(plan, lab, k, points, None)
        folder.staging.save_npy(folder.design_path(name), points)


def _record(by_member: dict, arm: str, system: str, volume: int, seed: int) -> dict:
    try:
        return by_member[(arm, system, volume, seed)]
    except KeyError:
        raise KeyError(f"no record of {arm}/{system}/n{volume}/seed{seed}") from None


def _link_pretraining(config: StudyConfig, first: RunDir, folder: RunDir) -> int:
    """Round 0's pretrained members, linked into a later round (trained once per run); how many."""
    if not config.needs_pretraining:
        return 0
    for seed in config.seeds:
        member = Member(PRETRAIN, config.simple_name, config.pretrain_size, seed)
        if folder.read_record(member) is not None:
            continue
        for kind in ("model_path", "loss_path", "curve_path", "record_path"):
            source = getattr(first, kind)(member)
            if source.exists():
                target = getattr(folder, kind)(member)
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(f".{target.name}.link-{os.getpid()}")
                try:
                    os.link(source, partial)
                except OSError:
                    shutil.copyfile(source, partial)
                os.replace(partial, target)  # the record last (the loop's order): a record means all is there
    return len(config.seeds)


def lab_scores(plan: StudyConfig, scoring: EvaluationSet, records: list[dict]) -> list[dict]:
    """Per lab, arm and volume: its ensemble mean's L1 on the big domain (all, inside, outside the
    small domain), and its members' mean L1. A round-0 lab counts for every method."""
    by_lab: dict[tuple, list[dict]] = {}
    for record in records:
        if record["arm"] == PRETRAIN:
            continue
        by_lab.setdefault((record["arm"], record["system"], record["volume"]), []).append(record)
    rows = []
    for (arm, name, volume), members in sorted(by_lab.items()):
        lab = design_sets.parse(name)
        mean = np.mean([m["eval_predictions"] for m in members], axis=0)
        score = evaluation.score(evaluation.point_errors(mean, scoring.truth_of(name)), scoring.inside)
        methods = plan.design_methods if lab.method == START else (lab.method,)
        for method in methods:
            rows.append(dict(system=lab.system, method=method, replicate=lab.replicate, arm=arm, volume=volume,
                             l1=score.l1_mean, l1_inside=score.l1_inside, l1_outside=score.l1_outside,
                             member_l1=float(np.mean([m["l1_mean"] for m in members])), members=len(members)))
    return rows
