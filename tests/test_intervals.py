"""Conformal intervals (tlkeras/results/intervals.py): exact order statistics, coverage on a
synthetic case with known noise, CV+ reducing to split conformal, and the interval scores."""

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm

from tlkeras.results import intervals
from tlkeras.results.intervals import CalibrationError


def test_the_fewest_rows_for_a_level_are_counted_exactly():
    assert [intervals.min_rows(level) for level in (0.8, 0.9, 0.95)] == [4, 9, 19]
    assert intervals.min_rows(0.9, guaranteed=True) == 19  # CV+ at a / 2
    for level in (0, 1, 1.5, -0.1, float("nan"), "0.9"):
        with pytest.raises(CalibrationError, match="between 0 and 1"):
            intervals.min_rows(level)


def test_the_split_quantile_is_the_right_order_statistic():
    nine = np.arange(1.0, 10.0)[:, None]
    assert intervals.split_quantile(nine, 0.9)[0] == 9.0  # ceil(0.9 x 10) = 9: the largest
    nineteen = np.arange(1.0, 20.0)[:, None]
    assert intervals.split_quantile(nineteen, 0.9)[0] == 18.0  # ceil(0.9 x 20) = 18: not the largest
    with pytest.raises(CalibrationError, match="8 calibration rows are too few for a 90% interval: at least 9"):
        intervals.split_quantile(nine[:8], 0.9)


def _noisy(rng, count):
    """A known system: y = sin(x) + noise of sd s(x) = 0.1 + 0.2 x (heteroscedastic)."""
    x = rng.uniform(0.0, 3.0, count)
    sd = 0.1 + 0.2 * x
    return x, np.sin(x) + sd * rng.standard_normal(count), sd


def test_calibrated_90_percent_intervals_cover_about_90_percent_of_fresh_points():
    # A model whose sigma has the right shape but half the size: raw mean +- 1.645 sigma covers
    # far less than 90%; calibrated on 400 rows it covers 85-95% of 20,000 fresh points.
    rng = np.random.default_rng(7)
    x, y, sd = _noisy(rng, 400)
    mean, sigma = np.sin(x) + 0.02, 0.5 * sd
    scores = intervals.normalised_scores(y[:, None], mean[:, None], sigma[:, None])
    fresh_x, fresh_y, fresh_sd = _noisy(rng, 20_000)
    fresh_mean, fresh_sigma = (np.sin(fresh_x) + 0.02)[:, None], (0.5 * fresh_sd)[:, None]
    raw = intervals.coverage(fresh_y[:, None], fresh_mean - 1.645 * fresh_sigma, fresh_mean + 1.645 * fresh_sigma)
    lower, upper = intervals.split_interval(fresh_mean, fresh_sigma, scores, 0.9)
    calibrated = intervals.coverage(fresh_y[:, None], lower, upper)
    assert raw < 0.65
    assert 0.85 <= calibrated <= 0.95, calibrated


def test_cv_plus_covers_with_fold_models_and_its_guarantee_widens_it():
    rng = np.random.default_rng(11)
    folds = 5
    x, y, sd = _noisy(rng, 300)
    row_fold = np.arange(300) % folds
    bias = np.array([0.05, -0.03, 0.0, 0.04, -0.06])  # each fold's model errs a little differently
    scores = intervals.normalised_scores(y, np.sin(x) + bias[row_fold], 0.5 * sd)[:, None]
    fresh_x, fresh_y, fresh_sd = _noisy(rng, 5_000)
    fold_mean = np.stack([np.sin(fresh_x) + b for b in bias])[:, :, None]
    fold_sigma = np.stack([0.5 * fresh_sd] * folds)[:, :, None]
    lower, upper = intervals.cv_plus_interval(fold_mean, fold_sigma, row_fold, scores, 0.9)
    assert 0.85 <= intervals.coverage(fresh_y[:, None], lower, upper) <= 0.95
    wide_lower, wide_upper = intervals.cv_plus_interval(fold_mean, fold_sigma, row_fold, scores, 0.9, guaranteed=True)
    assert intervals.coverage(fresh_y[:, None], wide_lower, wide_upper) >= 0.9
    assert np.all(wide_upper - wide_lower >= upper - lower)
    with pytest.raises(CalibrationError, match="at least 19 are needed"):
        intervals.cv_plus_interval(fold_mean, fold_sigma, row_fold[:15], scores[:15], 0.9, guaranteed=True)


def test_cv_plus_with_one_model_is_split_conformal():
    rng = np.random.default_rng(3)
    scores = rng.exponential(size=(50, 2))
    mean, sigma = rng.normal(size=(7, 2)), rng.uniform(0.5, 2.0, size=(7, 2))
    lower, upper = intervals.cv_plus_interval(mean[None], sigma[None], np.zeros(50, int), scores, 0.8)
    split_lower, split_upper = intervals.split_interval(mean, sigma, scores, 0.8)
    np.testing.assert_allclose(lower, split_lower)
    np.testing.assert_allclose(upper, split_upper)


def test_the_raw_gaussian_interval_has_the_normal_quantile():
    lower, upper = intervals.gaussian_interval(np.array([1.0]), np.array([2.0]), 0.9)
    assert upper[0] - 1.0 == pytest.approx(2.0 * norm.ppf(0.95)) and lower[0] == pytest.approx(2.0 - upper[0])


def test_interval_score_and_crps():
    score = intervals.interval_score(np.array([0.5, 3.0, -1.0]), np.zeros(3), np.ones(3), 0.9)
    np.testing.assert_allclose(score, [1.0, 1.0 + 20 * 2.0, 1.0 + 20 * 1.0])
    for y, mu, s in ((0.3, 0.0, 1.0), (2.5, 1.0, 0.4), (-4.0, 0.0, 2.0)):
        numeric = integrate.quad(lambda t: (norm.cdf(t, mu, s) - (t >= y)) ** 2, mu - 12 * s, mu + 12 * s,
                                 points=[y], limit=200)[0]
        assert intervals.crps_gaussian(y, mu, s) == pytest.approx(numeric, abs=1e-6)
    assert intervals.crps_gaussian(0.0, 0.0, 1.0) == pytest.approx((math.sqrt(2) - 1) / math.sqrt(math.pi))


def test_blocked_folds_are_shells_towards_the_unmeasured_domain_and_copies_share_a_fold():
    from tlkeras.systems.domains import Domain
    from tlkeras.systems.measurements import blocked_fold_of_rows

    # Measured 0..10 of a 0..20 domain: the unmeasured side is above, so fold 1 (0) holds the highest x.
    x = np.arange(20.0)[::-1, None] / 2  # 9.5, 9.0, ..., 0.0: in reverse order, to see rows are ranked
    y = np.zeros((20, 1))
    fold = blocked_fold_of_rows(x, y, 4, Domain.from_values([0, 10], 1), Domain.from_values([0, 20], 1))
    assert np.bincount(fold).tolist() == [5, 5, 5, 5]
    assert sorted(x[fold == 0, 0]) == [7.5, 8.0, 8.5, 9.0, 9.5] and sorted(x[fold == 3, 0]) == [0.0, 0.5, 1.0, 1.5, 2.0]
    # The domain extends below 0 too: both ends are extrapolation-like, the middle is last.
    both = blocked_fold_of_rows(x, y, 4, Domain.from_values([0, 10], 1), Domain.from_values([-10, 20], 1))
    assert sorted(x[both == 0, 0]) == [0.0, 0.5, 1.0, 9.0, 9.5]
    assert sorted(x[both == 3, 0]) == [4.0, 4.5, 5.0, 5.5, 6.0]  # nearest the centre, 5
    copies = np.array([[9.5], [9.5], [9.5], [1.0], [2.0], [3.0]])
    fold = blocked_fold_of_rows(copies, np.zeros((6, 1)), 3, Domain.from_values([0, 10], 1),
                                Domain.from_values([0, 20], 1))
    assert fold[0] == fold[1] == fold[2] == 0 and fold[5] != 0


def test_a_calibration_normalises_each_rows_out_of_fold_error_by_its_folds_spread_and_noise_floor():
    from tlkeras.fit.calibration import calibration_of, out_of_fold_coverage

    y = np.array([[1.0], [2.0], [3.0], [4.0]])
    row_fold = np.array([0, 1, 0, 1])
    records = [dict(arm="transfer", system=f"measurements-fold{k + 1}", seed=seed, model=f"m{k}{seed}.keras",
                    rows=np.flatnonzero(row_fold == k).tolist(),
                    row_predictions=(y[row_fold == k] + (0.5 if seed else -0.5) + k).tolist(),
                    rmse_by_output=[9.0], train_rmse_by_output=[0.3 * (k + 1)])
               for k in (0, 1) for seed in (0, 1)]
    made = calibration_of(records, "transfer", y, row_fold)
    spread = np.std([-0.5, 0.5], ddof=1)
    tau = np.array([0.3, 0.6])  # each fold's own training error, never its held-out rows'
    expected = np.array([0.0, 1.0, 0.0, 1.0]) / np.sqrt(spread**2 + tau[row_fold] ** 2)
    assert np.allclose(np.asarray(made["scores"])[:, 0], expected)
    assert made["members"] == {"measurements-fold1": ["m00.keras", "m01.keras"],
                               "measurements-fold2": ["m10.keras", "m11.keras"]}
    assert calibration_of([r for r in records if r["model"] != "m11.keras"], "transfer", y, row_fold) is None
    assert calibration_of(records, "baseline", y, row_fold) is None
    check = out_of_fold_coverage(made, y, np.ones((4, 1)), levels=(0.5,))
    assert check["50"]["raw"] == 0.5  # |error| 0 and 1 against +-0.674: half the rows


def test_cv_plus_on_a_known_noisy_system_covers_85_to_95_percent_of_fresh_points():
    """Normalised CV+ with polynomial fold models of y = sin(x) + N(0, s(x)^2): its 90% interval
    covers 85-95% of fresh points (fixed seed; the conditional coverage's sd is about 2% here)."""
    rng = np.random.default_rng(24)
    x, y, _ = _noisy(rng, 400)
    fresh_x, fresh_y, _ = _noisy(rng, 4000)
    folds = 5
    row_fold = np.arange(400) % folds
    fold_mean, fold_sigma, oof_mean, oof_sigma = [], [], np.empty(400), np.empty(400)
    for k in range(folds):
        train = row_fold != k
        coefficients = np.polyfit(x[train], y[train], 3)
        spread = np.polyfit(x[train], np.abs(y[train] - np.polyval(coefficients, x[train])), 1)
        fold_mean.append(np.polyval(coefficients, fresh_x)[:, None])
        fold_sigma.append(np.maximum(np.polyval(spread, fresh_x), 1e-3)[:, None])
        oof_mean[~train] = np.polyval(coefficients, x[~train])
        oof_sigma[~train] = np.maximum(np.polyval(spread, x[~train]), 1e-3)
    scores = intervals.normalised_scores(y[:, None], oof_mean[:, None], oof_sigma[:, None])
    lower, upper = intervals.cv_plus_interval(np.stack(fold_mean), np.stack(fold_sigma), row_fold, scores, 0.9)
    assert 0.85 <= intervals.coverage(fresh_y[:, None], lower, upper) <= 0.95
    narrow = intervals.cv_plus_interval(np.stack(fold_mean), np.stack(fold_sigma), row_fold, scores, 0.5)
    assert 0.42 <= intervals.coverage(fresh_y[:, None], *narrow) <= 0.58
