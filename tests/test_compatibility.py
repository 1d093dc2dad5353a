"""What users already have keeps working: models and run directories written by tlkeras 0.2.0
(commit 91ba06c, before the package was regrouped into subpackages).

The fixtures were written by that code: `tests/fixtures/models_v0_2_0/` holds four of the models
of `exp3.py --preset=quick` (hill2, N = 100, seed 0: a plain MLP, residual and g_feature with
their registered `SimpleModelLayer`, multi_fidelity) and their predictions at five points as that
code made them; `tests/fixtures/run_v0_2_0/` is a tiny exp1 run directory (figures and reports
left out: they are what a report writes again).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import REPO

import tlkeras

MODELS = REPO / "tests" / "fixtures" / "models_v0_2_0"
RUN = REPO / "tests" / "fixtures" / "run_v0_2_0"


@pytest.mark.parametrize("arm", ["transfer", "residual", "g_feature", "multi_fidelity"])
def test_a_model_saved_by_0_2_0_loads_and_predicts_as_it_did(arm):
    expected = json.loads((MODELS / "expected.json").read_text())
    model = tlkeras.load_model(MODELS / f"{arm}.keras")
    predictions = tlkeras.predict(model, np.asarray(expected["inputs"], np.float32))
    np.testing.assert_allclose(predictions, expected["predictions"][arm], rtol=1e-6, atol=1e-6)


def test_a_run_directory_written_by_0_2_0_reports_again(tmp_path):
    import csv

    from tlkeras.core.config import StudyConfig
    from tlkeras.execution.planning import plan_jobs
    from tlkeras.results.report import write_report
    from tlkeras.storage.rundir import RunDir

    run = tmp_path / "run"
    shutil.copytree(RUN, run)
    directory = RunDir(run)
    config = StudyConfig.from_json((run / "config.json").read_text())
    directory.check_resumable(config)  # the same config: it would resume
    records = [directory.read_record(member) for job in plan_jobs(config) for member in job.members]
    assert sorted(r["arm"] for r in records) == ["baseline", "oracle", "pretrain", "transfer"]
    write_report(directory, config, records, timing={})
    with open(run / "results.csv") as handle:
        rows = {row["arm"]: row for row in csv.DictReader(handle)}
    for record in records:
        assert float(rows[record["arm"]]["l1_mean"]) == record["l1_mean"]
    assert "## The study's claims, as measured" in (run / "results.md").read_text()
    assert json.loads((run / "results.json").read_text())["figures"]
