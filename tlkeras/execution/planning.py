"""Planning a sweep: every stack job a config describes, pretraining first, and which members
start from a pretrained model."""

from __future__ import annotations

from tlkeras.core.config import StudyConfig
from tlkeras.core.members import Member, StackJob
from tlkeras.core.vocabulary import PRETRAIN
from tlkeras.strategies.registry import strategy_of_arm
from tlkeras.systems import measurements


def real_sets(config: StudyConfig) -> list[tuple[str, int]]:
    """(system, size) of every real training set: each system at each volume, or for a fit the
    measurements and, with k folds, the measurements less each fold; for a round of Experiment 4,
    each lab's design set."""
    if config.design_sets:
        return [(name, volume) for volume in config.volumes for name in config.design_sets]
    if config.measurements:
        sets = [(config.systems[0], config.volumes[0])]
        sizes = measurements.fold_sizes(measurements.of_config(config), config.folds, config)
        sets += [(measurements.fold_name(k), config.volumes[0] - size) for k, size in enumerate(sizes)]
        return sets
    return [(system, volume) for volume in config.volumes for system in config.system_names()]


def plan_jobs(config: StudyConfig, max_members: int = 64) -> list[StackJob]:
    """Every stack job of the sweep that `config` describes, pretraining first."""
    systems = config.system_names()
    simple = config.simple_name
    batch = config.batch_size
    jobs: list[StackJob] = []

    def add(arm: str, size: int, epochs: int, first_epoch: int, members: list[Member]) -> None:
        strategy = strategy_of_arm(arm)
        job_batch = batch if strategy is None else strategy.batch_size(config, size)
        for start in range(0, len(members), max_members):
            chunk = tuple(members[start : start + max_members])
            jobs.append(StackJob(arm, size, epochs, first_epoch, chunk, job_batch))

    if config.needs_pretraining:
        add(PRETRAIN, config.pretrain_size, config.pretrain_epochs, 0,
            [Member(PRETRAIN, simple, config.pretrain_size, s) for s in config.seeds])
    by_volume: dict[int, list[str]] = {}
    for system, volume in real_sets(config):
        by_volume.setdefault(volume, []).append(system)
    for volume, volume_systems in by_volume.items():
        cells = [(system, seed) for system in volume_systems for seed in config.seeds]
        for arm in config.strategy_arms():
            epochs, first_epoch = strategy_of_arm(arm).epochs(config)
            add(arm, volume, epochs, first_epoch, [Member(arm, system, volume, seed) for system, seed in cells])
        if "baseline" in config.arms:
            add("baseline", volume, config.epochs, 0,
                [Member("baseline", system, volume, seed) for system, seed in cells])
    if "oracle" in config.arms:
        add("oracle", config.oracle_size, config.epochs, 0,
            [Member("oracle", system, config.oracle_size, seed)
             for system in systems for seed in config.seeds])
    return jobs


def needs_pretrained(member: Member) -> bool:
    """Whether `member` starts from (or feeds on) a pretrained model."""
    strategy = strategy_of_arm(member.arm)
    return strategy is not None and strategy.needs_pretraining


def pretrained_member(config: StudyConfig, member: Member) -> Member:
    """The pretraining member whose saved model a transfer member starts from."""
    return Member(PRETRAIN, config.simple_name, config.pretrain_size, member.seed)
