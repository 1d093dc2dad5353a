"""Where to measure next, in-process: every method's picks (distinct, reproducible, what its
source says it picks) and `suggest` on a toy ensemble whose answer is known."""

import numpy as np
import pytest

from tlkeras.design.methods import METHODS, Pool, disagreement, space_filling, variance_reduction
from tlkeras.design.suggest import SuggestionError, region_in_domain, suggest
from tlkeras.systems.domains import Domain


def _pool(seed=0, count=300, members=5, noise=0.01):
    rng = np.random.default_rng(seed)
    candidates = rng.uniform(0, 0.5, size=(count, 2))
    targets = rng.uniform(0, 1, size=(200, 2))
    slopes = rng.normal(size=(members, 1, 1))  # members agree at 0 and disagree more and more away from it
    predict = lambda x: slopes * x.sum(axis=1)[None, :, None]  # noqa: E731
    measured = rng.uniform(0, 0.2, size=(20, 2))
    return Pool(candidates=candidates, measured=measured, targets=targets, candidate_members=predict(candidates),
                target_members=predict(targets), noise=np.array([noise]))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_picks_n_distinct_candidates_the_same_for_a_seed(name):
    pool = _pool()
    picks, scores = METHODS[name](pool, 12, np.random.default_rng(7))
    assert len(picks) == 12 == len(set(picks.tolist())) and len(scores) == 12
    assert ((0 <= picks) & (picks < len(pool.candidates))).all()
    again, _ = METHODS[name](pool, 12, np.random.default_rng(7))
    np.testing.assert_array_equal(picks, again)
    everything, _ = METHODS[name](pool, len(pool.candidates), np.random.default_rng(7))
    assert sorted(everything.tolist()) == list(range(len(pool.candidates)))  # n = every candidate: each once


def test_space_filling_picks_farthest_first_and_disagreement_the_largest_spread():
    pool = _pool()
    picks, scores = space_filling(pool, 3, np.random.default_rng(0))
    distance = np.sqrt(((pool.candidates[:, None] - pool.measured[None]) ** 2).sum(-1)).min(axis=1)
    assert picks[0] == np.argmax(distance) and scores[0] == pytest.approx(distance.max())
    assert scores[0] >= scores[1] >= scores[2]  # each pick leaves the rest nearer
    picks, scores = disagreement(pool, 5, np.random.default_rng(0))
    assert set(picks.tolist()) == set(np.argsort(-pool.spread)[:5].tolist())


def test_variance_reduction_measures_where_it_informs_the_target_and_then_spreads():
    """Members that differ by their slope along x1 + x2, measured with noise: where that sum is
    largest a measurement tells most about the slope, so about the targets beyond the region; the
    local term then sends the next picks elsewhere rather than onto the same spot."""
    pool = _pool(noise=0.3)
    picks, scores = variance_reduction(pool, 6, np.random.default_rng(0))
    edge = pool.candidates.sum(axis=1)
    assert edge[picks[0]] >= np.quantile(edge, 0.95)
    assert scores[0] > scores[-1] > 0
    gaps = np.sqrt(((pool.candidates[picks][:, None] - pool.candidates[picks][None]) ** 2).sum(-1))
    assert gaps[np.triu_indices(6, 1)].min() > 0.01  # not piled onto one point


def _toy_members(x):
    x = np.asarray(x, np.float64)
    return np.stack([np.stack([k * x[:, 0], x[:, 1]], axis=1) for k in (0.8, 1.0, 1.2)])  # [3, points, 2]


def test_suggest_picks_inside_the_region_by_default_the_measured_box_and_reproducibly():
    domain = np.array([[0.0, 20.0], [0.0, 100.0]])
    measured = np.random.default_rng(1).uniform([0, 0], [10, 50], size=(40, 2))
    first = suggest(_toy_members, domain, measured, 10, "spread_distance", seed=3)
    box = np.stack([measured.min(axis=0), measured.max(axis=0)], axis=1)
    np.testing.assert_array_equal(first.region, box)
    assert ((first.x >= box[:, 0]) & (first.x <= box[:, 1])).all() and len(np.unique(first.x, axis=0)) == 10
    assert first.mean.shape == first.sd.shape == (10, 2) and first.rows is None
    np.testing.assert_array_equal(first.x, suggest(_toy_members, domain, measured, 10, "spread_distance", seed=3).x)
    assert not np.array_equal(first.x, suggest(_toy_members, domain, measured, 10, "uniform", seed=4).x)
    candidates = np.array([[1.0, 1.0], [5.0, 20.0], [9.0, 45.0], [2.0, 30.0]])
    chosen = suggest(_toy_members, domain, measured, 2, "disagreement", candidates=candidates)
    np.testing.assert_array_equal(chosen.x, candidates[chosen.rows])
    assert chosen.rows[0] == 2  # the members differ by their slope in x1: most at x1 = 9


def test_suggest_refuses_what_it_cannot_serve_in_one_line():
    domain = np.array([[0.0, 20.0], [0.0, 100.0]])
    measured = np.zeros((3, 2))
    with pytest.raises(SuggestionError, match=r"the candidates have 2 rows; n=3 picks need at least 3"):
        suggest(_toy_members, domain, measured, 3, "uniform", candidates=np.ones((2, 2)))
    with pytest.raises(SuggestionError, match=r"method='best' is not allowed: expected one of uniform"):
        suggest(_toy_members, domain, measured, 3, "best")
    with pytest.raises(SuggestionError, match=r"n=0 is not allowed"):
        suggest(_toy_members, domain, measured, 0, "uniform")
    with pytest.raises(SuggestionError, match=r"--region of input 2 is 0..150: expected low <= high inside the "
                                              r"model's domain 0..100"):
        region_in_domain(Domain.from_values([0, 10, 0, 150], 2), domain, "--region")
    np.testing.assert_array_equal(region_in_domain(Domain.from_values([0, 10], 2), domain, "--region"),
                                  [[0, 10], [0, 10]])


@pytest.mark.parametrize("inputs", [1, 2, 4])
def test_the_picks_figure_draws_any_number_of_inputs(tmp_path, inputs):
    from tlkeras.fit.ensemble import grid_points
    from tlkeras.results.plots import plot_suggestions

    rng = np.random.default_rng(inputs)
    domain = np.tile([[0.0, 20.0]], (inputs, 1))
    region = np.tile([[0.0, 10.0]], (inputs, 1))
    axes, spread = None, None
    if inputs <= 2:
        points, axes = grid_points(domain, 30)
        spread = np.sin(points.sum(axis=1))
        spread = spread if inputs == 1 else spread.reshape(30, 30).T
    names = [f"x{i}" for i in range(inputs)]
    path = plot_suggestions(tmp_path / "picks.png", domain, region, rng.uniform(0, 10, (30, inputs)),
                            rng.uniform(0, 10, (6, inputs)), names, axes, spread, "6 suggested")
    assert path.stat().st_size > 10_000
