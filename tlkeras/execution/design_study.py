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
from tlkeras.design.methods import MODEL_FREE
from tlkeras.design.suggest import pick
from tlkeras.execution.sweep import SweepRunner
from tlkeras.execution.worker import WorkerProcesses
from tlkeras.results import design_report, evaluation
from tlkeras.results.evaluation import EvaluationSet
from tlkeras.runtime import faults, interrupts
from tlkeras.storage import environment
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
    """The sweep of round k in the transfer arms (round 0: every arm): every lab's design set at
    N_k pairs. From the last of `volumes` on, members do not predict at candidates (no model-based
    pick follows); the rounds beyond it train the reference methods' labs only."""
    volumes = all_volumes(plan)
    methods = (START,) if k == 0 else plan.design_methods if k < len(plan.volumes) else reference_methods(plan)
    arms = plan.arms if k == 0 else tuple(a for a in plan.arms if a != "baseline")
    picks_follow = k < len(plan.volumes) - 1
    return _sweep(plan, volumes[k], methods, arms, plan.design_candidates if picks_follow else 0,
                  plan.design_targets if picks_follow else 0)


def baseline_config(plan: StudyConfig, k: int) -> StudyConfig | None:
    """Round k's baseline sweep (k >= 1), for the reference methods' labs only: a lab without the
    simple model cannot ask a transfer ensemble where to measure, so the baseline arm shows what
    uniform or space-filling sampling gives without it (None if there is nothing to train)."""
    if k == 0 or k >= len(plan.volumes) or "baseline" not in plan.arms or not reference_methods(plan):
        return None
    return _sweep(plan, plan.volumes[k], reference_methods(plan), ("baseline",), 0, 0)


def _sweep(plan: StudyConfig, volume: int, methods, arms, candidates: int, targets: int) -> StudyConfig:
    sets = tuple(set_name(system, method, r) for system in plan.system_names() for method in methods
                 for r in range(plan.design_replicates))
    return dataclasses.replace(plan, volumes=(volume,), design_sets=sets, design_methods=(), arms=arms,
                               design_replicates=0, design_candidates=candidates, design_targets=targets,
                               design_reference_volumes=()).validate()


def round_folder(run_dir: Path, k: int) -> RunDir:
    return RunDir(Path(run_dir) / f"round{k}")


def run_design_study(plan: StudyConfig, run_dir: Path, options: SweepOptions | None = None, resume: bool = False,
                     processes: WorkerProcesses | None = None) -> dict:
    """Every round of the plan into `run_dir` (created by the caller), then the report; with
    `resume`, the recorded plan must be this one and finished members and picks are kept."""
    plan.validate()
    _check_plan(plan)
    options = options or SweepOptions()
    directory = RunDir(run_dir)
    with directory.lock():
        if resume:
            directory.check_resumable(plan)
        else:
            directory.write_config(plan)
        sessions = environment.record_session(directory.path, directory.staging)
        scoring = EvaluationSet(plan)
        rows: list[dict] = []
        timing: dict[str, float] = {}
        previous = None
        volumes = all_volumes(plan)
        for k in range(len(volumes)):
            interrupts.check()
            config = round_config(plan, k)
            folder = _open_round(round_folder(directory.path, k), config)
            _write_points(plan, k, folder, previous)
            linked = _link_pretraining(config, round_folder(directory.path, 0), folder) if k > 0 else 0
            which = "" if k < len(plan.volumes) else f" (the reference methods {', '.join(reference_methods(plan))} only)"
            options.report(f"round {k} of {len(volumes) - 1}: {len(config.design_sets)} lab sets at N={volumes[k]}"
                           f"{which}")
            records = SweepRunner(config, folder, options, processes, shared=linked).run()
            previous = (config, folder, records)
            baseline = baseline_config(plan, k)
            if baseline is not None:
                extra = _open_round(RunDir(directory.path / f"round{k}-baseline"), baseline)
                for name in baseline.design_sets:
                    if not extra.design_path(name).exists():
                        extra.staging.write_bytes(extra.design_path(name), folder.design_path(name).read_bytes())
                options.report(f"round {k}, baseline: {len(baseline.design_sets)} lab sets of "
                               f"{', '.join(reference_methods(plan))}")
                records = records + SweepRunner(baseline, extra, options, processes).run()
            faults.point("design.round.finished")
            for record in records:
                if k > 0 and record["arm"] == PRETRAIN:
                    continue  # round 0's, linked
                key = f"train_seconds_{record['arm']}"
                timing[key] = timing.get(key, 0.0) + record["train_seconds"]
            rows += lab_scores(plan, scoring, records)
        interrupts.check()
        return design_report.write_report(directory, plan, rows, scoring, timing, sessions)


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
        raise ValueError("an Experiment 4 plan needs design_methods, design_replicates >= 1 and at least two volumes")
    if list(plan.volumes) != sorted(set(plan.volumes)):
        raise ValueError(f"volumes={plan.volumes}: the lab's measurements after each round, rising")
    if not plan.strategy_arms():
        raise ValueError("an Experiment 4 plan needs a transfer strategy: its ensemble picks the points")


def picking_arm(plan: StudyConfig) -> str:
    """The arm whose ensemble picks a lab's points: the first transfer strategy's."""
    return plan.strategy_arms()[0]


def _write_points(plan: StudyConfig, k: int, folder: RunDir, previous) -> None:
    """Round k's design files (kept if there: a resumed round trains on its recorded picks)."""
    config = round_config(plan, k)
    volumes = all_volumes(plan)
    d = plan.input_dimension
    low, high = plan.design_box.bounds(d)
    domain = np.stack(plan.big_box.bounds(d), axis=1)
    noise = np.full(plan.output_dimension, plan.real_noise)
    for name in config.design_sets:
        path = folder.design_path(name)
        if path.exists():
            continue
        lab = design_sets.parse(name)
        if k == 0:
            points = design_sets.starting_points(lab.replicate, low, high, volumes[0])
        else:
            before_config, before_folder, before_records = previous
            before = set_name(lab.system, START if k == 1 else lab.method, lab.replicate)
            measured = np.load(before_folder.design_path(before))
            volume = volumes[k - 1]
            pool = plan.design_pool(lab.replicate, volume)
            if lab.method in MODEL_FREE:  # no ensemble needed (and none predicted beyond the last model-based pick)
                predicted = np.zeros((1, len(pool), plan.output_dimension))
            else:
                members = [_record(before_records, picking_arm(plan), before, volume, seed) for seed in plan.seeds]
                predicted = np.asarray([m["design_predictions"] for m in members], np.float64)
            candidates, targets = pool[: plan.design_candidates], pool[plan.design_candidates:]
            rng = np.random.default_rng([_PICK_SEED, lab.replicate, k, zlib.crc32(lab.system.encode())])
            picks, _ = pick(predicted, candidates, targets, domain, measured, volumes[k] - volume, lab.method,
                            rng, noise)
            points = np.concatenate([measured, candidates[picks]])
        folder.staging.save_npy(path, points)


def _record(records: list[dict], arm: str, system: str, volume: int, seed: int) -> dict:
    for record in records:
        if (record["arm"], record["system"], record["volume"], record["seed"]) == (arm, system, volume, seed):
            return record
    raise KeyError(f"no record of {arm}/{system}/n{volume}/seed{seed}")


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
