"""Ranking statistics against ALGORITHMS.md section 3 fixtures, scipy and slow definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from ckptrank.bench import stats


def _slow_weighted_tau_one_way(x: np.ndarray, y: np.ndarray) -> float:
    """Vigna's additive hyperbolic weighted tau with importance ranks taken from x (no ties)."""
    order = np.argsort(-x, kind="stable")
    rank = np.empty(len(x), dtype=int)
    rank[order] = np.arange(len(x))
    num = den = 0.0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            w = 1.0 / (rank[i] + 1) + 1.0 / (rank[j] + 1)
            num += w * np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
            den += w
    return num / den


def _slow_weighted_tau(x: np.ndarray, y: np.ndarray) -> float:
    return 0.5 * (_slow_weighted_tau_one_way(x, y) + _slow_weighted_tau_one_way(y, x))


@pytest.mark.parametrize(
    ("truth", "expected"),
    [
        ([1, 2, 3, 4, 5], 1.0),
        ([5, 4, 3, 2, 1], -1.0),
        ([1, 2, 3, 5, 4], 0.6715328467),
        ([2, 1, 3, 4, 5], 0.9014598540),
    ],
)
def test_weighted_tau_fixtures(truth: list[int], expected: float) -> None:
    assert stats.weighted_tau([1, 2, 3, 4, 5], truth) == pytest.approx(expected, abs=1e-10)


def test_top_errors_cost_more_than_bottom_errors() -> None:
    s = [1, 2, 3, 4, 5]
    assert stats.weighted_tau(s, [1, 2, 3, 5, 4]) < stats.weighted_tau(s, [2, 1, 3, 4, 5])
    assert stats.kendall_tau(s, [1, 2, 3, 5, 4]) == pytest.approx(0.8)


def test_four_checkpoint_fixture() -> None:
    s, a = [0.1, 0.4, 0.35, 0.8], [1, 2, 3, 4]
    assert stats.weighted_tau(s, a) == pytest.approx(0.7333333333, abs=1e-10)
    assert stats.kendall_tau(s, a) == pytest.approx(0.6666666667, abs=1e-10)
    assert stats.pearson(s, a) == pytest.approx(0.9133691347, abs=1e-10)


@pytest.mark.parametrize("seed", range(5))
def test_weighted_tau_matches_slow_definition_and_is_symmetric(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=9), rng.normal(size=9)
    assert stats.weighted_tau(x, y) == pytest.approx(_slow_weighted_tau(x, y), abs=1e-12)
    assert stats.weighted_tau(x, y) == pytest.approx(stats.weighted_tau(y, x), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_correlations_match_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=12), rng.normal(size=12)
    assert stats.spearman(x, y) == pytest.approx(sps.spearmanr(x, y).statistic, abs=1e-12)
    assert stats.kendall_tau(x, y) == pytest.approx(sps.kendalltau(x, y).statistic, abs=1e-12)
    assert stats.pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)


def test_rel_at_k_hit_at_k_and_regret_fixture() -> None:
    s, a = [0.9, 0.1, 0.5], [80, 90, 85]
    assert stats.rel_at_k(s, a, 1) == pytest.approx(80 / 90)
    assert stats.rel_at_k(s, a, 3) == 1.0
    assert stats.top1_regret(s, a) == pytest.approx(10.0)
    assert stats.hit_at_k(s, a, 1) == 0.0
    assert stats.hit_at_k(s, a, 3) == 1.0


def test_ties_are_broken_pessimistically_with_a_warning() -> None:
    with pytest.warns(stats.RankingTieWarning, match="pessimistically"):
        assert stats.rel_at_k([1.0, 1.0, 0.0], [90, 80, 70], 1) == pytest.approx(80 / 90)
    with pytest.warns(stats.RankingTieWarning):
        assert stats.top1_regret([1.0, 1.0, 0.0], [90, 80, 70]) == pytest.approx(10.0)


def test_constant_side_gives_nan_not_a_warning() -> None:
    assert math.isnan(stats.weighted_tau([1, 1, 1], [1, 2, 3]))
    assert math.isnan(stats.pearson([1, 2, 3], [4, 4, 4]))


@pytest.mark.parametrize(
    ("scores", "truth", "match"),
    [
        ([1, 2, 3], [1, 2], "3 checkpoints but truth has 2"),
        ([1], [1], "at least 2 checkpoints"),
        ([1, np.nan], [1, 2], "NaN"),
    ],
)
def test_bad_input(scores: list[float], truth: list[float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        stats.evaluate_ranking(scores, truth)


def test_evaluate_ranking_keys() -> None:
    out = stats.evaluate_ranking([0.1, 0.4, 0.35, 0.8], [1, 2, 3, 4], ks=(1, 2))
    assert set(out) == {
        "weighted_tau",
        "kendall_tau",
        "pearson",
        "spearman",
        "top1_regret",
        "rel@1",
        "hit@1",
        "rel@2",
        "hit@2",
    }
    assert out["hit@1"] == 1.0 and out["top1_regret"] == 0.0


def test_bootstrap_interval_contains_the_estimate_and_is_deterministic() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=20)
    scores = truth + 0.5 * rng.normal(size=20)

    def stat(idx: np.ndarray) -> float:
        return stats.kendall_tau(scores[idx], truth[idx])

    low, high = stats.bootstrap_interval(stat, 20, n_resamples=300)
    assert low < stats.kendall_tau(scores, truth) < high
    assert (low, high) == stats.bootstrap_interval(stat, 20, n_resamples=300)


def test_seed_agreement() -> None:
    T = np.array([[1, 2, 3, 4], [1, 2, 3, 4], [4, 3, 2, 1]], dtype=float)
    expected = np.mean([1.0, -1.0, -1.0])
    assert stats.seed_agreement(T) == pytest.approx(expected)
    assert math.isnan(stats.seed_agreement(T[:1]))


# --- reliability of the seed-mean ground truth ----------------------------------------------------------


def test_spearman_brown_by_hand() -> None:
    assert stats.spearman_brown(0.6, 2) == pytest.approx(1.2 / 1.6)
    assert stats.spearman_brown(0.5, 3) == pytest.approx(1.5 / 2.0)
    assert stats.spearman_brown(0.8, 1) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="positive"):
        stats.spearman_brown(0.5, 0)


def test_split_half_reliability_two_seeds_by_hand() -> None:
    # seed 1 swaps the two bottom checkpoints of seed 0. By hand (hyperbolic weights 1/(r+1)):
    # ranked by either side the weights of the pairs (c1,c2), (c1,c3), (c2,c3) are 5/6, 3/2, 4/3
    # (or 5/6, 4/3, 3/2), only (c1,c2) is discordant: tau = (-5/6 + 3/2 + 4/3) / (22/6) = 6/11.
    T = np.array([[1.0, 2.0, 3.0], [2.0, 1.0, 3.0]])
    assert stats.weighted_tau(T[0], T[1]) == pytest.approx(6 / 11, abs=1e-15)
    # one split (seed 0 | seed 1); Spearman-Brown: 2 r / (1 + r) = (12/11) / (17/11) = 12/17
    assert stats.split_half_reliability(T) == pytest.approx(12 / 17, abs=1e-14)
    assert stats.seed_agreement(T) == pytest.approx(6 / 11, abs=1e-15)


def test_split_half_reliability_four_seeds_equal_halves() -> None:
    T = np.array(
        [
            [1.0, 2.0, 3.0, 4.0, 5.0],
            [2.0, 1.0, 3.0, 5.0, 4.0],
            [1.0, 3.0, 2.0, 4.0, 5.0],
            [1.5, 2.5, 2.0, 5.5, 4.0],
        ]
    )
    splits = [((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2))]  # each unordered split once
    r = np.mean(
        [sps.weightedtau(T[list(a)].mean(axis=0), T[list(b)].mean(axis=0)).statistic for a, b in splits]
    )
    assert stats.split_half_reliability(T) == pytest.approx(2 * r / (1 + r), abs=1e-14)


def test_split_half_reliability_three_seeds_unequal_halves() -> None:
    T = np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 1.0, 3.0, 5.0, 4.0], [1.0, 3.0, 2.0, 4.0, 5.0]])
    # splits {i} | the other two; r = mean weighted tau between one seed and the mean of two
    r = np.mean(
        [sps.weightedtau(T[i], T[[j for j in range(3) if j != i]].mean(axis=0)).statistic for i in range(3)]
    )
    # parallel-measurement model: corr(mean of 1, mean of 2) = rho sqrt(2) / sqrt(1 + rho), so
    # 2 rho^2 - r^2 rho - r^2 = 0, and the 3-seed mean has reliability 3 rho / (1 + 2 rho)
    rho = (r**2 + math.sqrt(r**4 + 8 * r**2)) / 4
    assert stats.split_half_reliability(T) == pytest.approx(3 * rho / (1 + 2 * rho), abs=1e-10)
    # the seed mean is more reliable than one seed agrees with another
    assert stats.split_half_reliability(T) > stats.seed_agreement(T)


def test_split_half_reliability_edge_cases() -> None:
    assert math.isnan(stats.split_half_reliability([[1.0, 2.0, 3.0]]))  # one seed
    assert stats.split_half_reliability([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]) == 1.0
    assert math.isnan(stats.split_half_reliability([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]))  # r = -1
    assert math.isnan(stats.split_half_reliability([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]))  # constant
    with pytest.raises(ValueError, match="2-D"):
        stats.split_half_reliability([1.0, 2.0])
