"""L1 scoring on the evaluation points and the across-seed summaries."""

import math

import numpy as np
import pytest

from tlkeras.results import evaluation


def test_point_errors_average_absolute_error_over_outputs():
    predictions = np.array([[1.0, 2.0], [0.0, 0.0]])
    truth = np.array([[0.0, 0.0], [1.0, -3.0]])
    np.testing.assert_allclose(evaluation.point_errors(predictions, truth), [1.5, 2.0])


def test_score_splits_inside_and_outside():
    errors = np.array([1.0, 2.0, 3.0, 6.0])
    inside = np.array([True, True, False, False])
    score = evaluation.score(errors, inside)
    assert score.l1_mean == 3.0 and score.l1_var == pytest.approx(np.var(errors))
    assert (score.l1_inside, score.l1_outside) == (1.5, 4.5)
    assert math.isnan(evaluation.score(errors, np.zeros(4, bool)).l1_inside)


def test_summary_across_seeds_uses_student_t():
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    summary = evaluation.summarize(values)
    half = 2.776 * np.std(values, ddof=1) / math.sqrt(5)
    assert summary.mean == 3.0 and summary.std == pytest.approx(np.std(values, ddof=1))
    assert (summary.ci_low, summary.ci_high) == pytest.approx((3.0 - half, 3.0 + half))
    one = evaluation.summarize([2.0])
    assert one.std == 0.0 and math.isnan(one.ci_low) and one.count == 1


def test_t_quantile_approaches_the_normal():
    assert evaluation.t_quantile_975(1) == 12.706
    assert 1.96 < evaluation.t_quantile_975(200) < evaluation.t_quantile_975(31) < 2.042


def test_coverage_counts_truth_inside_mean_plus_minus_two_sd_per_region():
    from tlkeras.results.coverage import coverage

    truth = np.zeros((4, 1))
    inside = np.array([True, True, False, False])
    # Members at +-1 around a mean of 0.5 (sd = 1.15) and of 5 (far off): covered inside only.
    predictions = np.array([[[1.5], [1.5], [6.0], [6.0]], [[-0.5], [-0.5], [4.0], [4.0]], [[0.5], [0.5], [5.0], [5.0]]])
    result = coverage(predictions, truth, inside)
    assert result["coverage_inside"] == 1.0 and result["coverage_outside"] == 0.0
    assert result["error_outside"] == 5.0 and abs(result["sd_inside"] - 1.0) < 1e-12
    # Averaging is itself a strategy: the mean's L1 (0.5 inside, 5 outside) beats its members' mean L1.
    assert result["ensemble_l1"] == (0.5 + 0.5 + 5 + 5) / 4
    assert result["member_l1_mean"] > result["ensemble_l1"]
