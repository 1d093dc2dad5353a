"""Planning a sweep: which members train together, and when long jobs are split over workers."""

from tlkeras.core.config import StudyConfig, experiment2
from tlkeras.core.options import SweepOptions
from tlkeras.execution.planning import plan_jobs, pretrained_member
from tlkeras.execution.pretrain_cache import pretrain_cache_folder
from tlkeras.execution.sweep import SweepRunner
from tlkeras.storage.rundir import RunDir


def test_experiment1_jobs_share_a_step_count_and_cover_every_cell():
    config = StudyConfig()
    jobs = plan_jobs(config)
    names = [job.name for job in jobs]
    assert names[0] == "pretrain n=40000" and "oracle n=20000" in names
    assert len(jobs) == 1 + 2 * 7 + 1
    members = [m for job in jobs for m in job.members]
    assert len(members) == len(set(members)) == 5 * (1 + 2 * 7 + 1)
    assert next(j for j in jobs if j.arm == "pretrain").steps == 1800 * 1250
    transfer = next(j for j in jobs if j.arm == "transfer" and j.size == 50)
    assert (transfer.epochs, transfer.first_epoch, transfer.steps) == (200, 1800, 200 * 2)
    assert pretrained_member(config, transfer.members[0]).key == "pretrain/synthetic/n40000/seed0"


def test_experiment2_stacks_every_system_of_an_arm_together():
    jobs = plan_jobs(experiment2())
    oracle = next(j for j in jobs if j.arm == "oracle")
    assert len(oracle.members) == 25 and {m.system for m in oracle.members} == {
        "hill1", "hill2", "hill3", "hill4", "phosphorylation"}
    assert len(plan_jobs(experiment2(), max_members=10)) == 1 + 3 + 3 + 3


def test_long_jobs_are_split_only_when_workers_would_idle(tmp_path):
    options = SweepOptions(workers=2, cache_dir=tmp_path / "cache")
    cold = SweepRunner(experiment2(systems=("hill3",)), RunDir(tmp_path / "run"), options)
    assert [len(j.members) for j in cold.balance(cold.pending_jobs())] == [5, 5, 5, 5]  # pretrain || oracle
    for member in cold.jobs[0].members:  # now every pretrained model is in the cache
        folder = pretrain_cache_folder(cold.config, options, member)
        folder.mkdir(parents=True)
        (folder / "model.keras").write_bytes(b"")
        (folder / "losses.npy").write_bytes(b"")  # an entry is complete with both files
    warm = cold.balance(cold.pending_jobs())
    oracle = [j for j in warm if j.arm == "oracle"]
    assert [len(j.members) for j in oracle] == [3, 2]  # the one long job, on both cores
    assert sorted(m.key for j in oracle for m in j.members) == sorted(
        m.key for j in cold.jobs if j.arm == "oracle" for m in j.members)
