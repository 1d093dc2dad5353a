"""The headline statistics: equal-L1 savings with bounds, oracle reach, bootstrap intervals, tests."""

import math

import numpy as np
import pytest

from tlkeras.results import statistics

VOLUMES = [50, 100, 200, 500, 1000]


def test_the_volume_reaching_an_l1_is_log_linear_between_grid_points_and_marked_outside():
    l1 = [2.0, 1.6, 1.2, 1.0, 0.8]
    n, mark = statistics.volume_reaching(VOLUMES, l1, 1.4)  # halfway between 100 and 200 in log N
    assert mark == "" and n == pytest.approx(math.sqrt(100 * 200))
    assert statistics.volume_reaching(VOLUMES, l1, 0.5) == (1000.0, ">=")  # never reached
    assert statistics.volume_reaching(VOLUMES, l1, 3.0) == (50.0, "<=")  # already there


def test_the_saving_is_one_minus_the_volume_ratio_at_equal_l1():
    baseline = [2.0, 1.6, 1.2, 1.0, 0.8]
    strategy = [1.2, 1.0, 0.9, 0.85, 0.7]
    value, mark = statistics.saving(VOLUMES, strategy, baseline, 50)  # the baseline needs 200 for 1.2
    assert mark == "" and value == pytest.approx(1 - 50 / 200)
    value, mark = statistics.saving(VOLUMES, strategy, baseline, 1000)  # 0.7: the baseline never gets there
    assert mark == ">=" and value == pytest.approx(0.0)
    worse = [3.0, 2.5, 2.0, 1.5, 1.2]
    value, mark = statistics.saving(VOLUMES, worse, baseline, 50)  # worse than the baseline's first point
    assert mark == "<=" and value == pytest.approx(0.0)


def test_bootstrap_intervals_bracket_the_estimate_and_shrink_with_agreeing_seeds():
    rng = np.random.default_rng(1)
    curve_b, curve_s = np.array([2.0, 1.6, 1.2, 1.0, 0.8]), np.array([1.2, 1.0, 0.9, 0.85, 0.7])
    noisy = statistics.saving_estimates(VOLUMES, curve_s + rng.normal(0, 0.1, (8, 5)),
                                        curve_b + rng.normal(0, 0.1, (8, 5)))[50]
    calm = statistics.saving_estimates(VOLUMES, curve_s + rng.normal(0, 0.01, (8, 5)),
                                       curve_b + rng.normal(0, 0.01, (8, 5)))[50]
    assert noisy.low <= noisy.value <= noisy.high and calm.low <= calm.value <= calm.high
    assert calm.high - calm.low < noisy.high - noisy.low
    assert calm.value == pytest.approx(0.75, abs=0.05)


def test_oracle_reach_and_paired_tests():
    strategy = np.array([[1.0, 0.5, 0.3, 0.2, 0.15]] * 3) + np.array([[0.0], [0.01], [0.02]])
    reach = statistics.oracle_reach(VOLUMES, strategy, np.array([0.2, 0.2, 0.2]))
    assert reach.bound == "" and 200 < reach.value < 500
    test = statistics.paired_test([0.5, 0.6, 0.4, 0.5, 0.55], [1.0, 1.2, 0.9, 1.1, 1.3])
    assert test["p_value"] == pytest.approx(0.0625) and test["first_better"] == 5
    assert math.isnan(statistics.paired_test([1.0], [2.0])["p_value"])


def test_the_headline_tables_say_what_real_data_the_ensembles_saw():
    from tlkeras.core.config import StudyConfig
    from tlkeras.results import headline
    from tlkeras.results.report import ensemble_data_note

    config = StudyConfig(volumes=(50, 100), seeds=(0, 1, 2), transfer_strategy=("fine_tune_all",))
    rng = np.random.default_rng(0)
    records = [dict(arm=arm, system="hill2", volume=v, seed=s, l1_mean=float(rng.uniform(0.2, 2)))
               for arm in ("transfer", "baseline") for v in config.volumes for s in config.seeds]
    ensembles = {(arm, "hill2", v): 0.3 for arm in ("transfer", "baseline") for v in config.volumes}
    rows = headline.headline(config, records, ensembles)
    own = "\n".join(headline.headline_markdown(rows, ensemble_data_note(config)))
    assert "has seen 3 x N distinct pairs" in own and "| fine_tune_all | " in own
    shared = ensemble_data_note(StudyConfig(real_data_seed=4))
    assert "same N real pairs (those of seed 4)" in "\n".join(headline.headline_markdown(rows, shared))
    no_baseline = headline.headline(config, [r for r in records if r["arm"] != "baseline"], ensembles)
    assert headline.headline_markdown(no_baseline) == [
        "(needs the baseline arm and a strategy, each at every volume: not in this run)"]
