"""Ranking-quality statistics: how well a measure's scores predict fine-tuned accuracy.

For one target task, ``scores[m]`` is a measure's score of checkpoint ``m`` (higher =
predicted better) and ``truth[m]`` the checkpoint's fine-tuned accuracy. Definitions follow
ALGORITHMS.md section 3; the weighted Kendall tau is :func:`scipy.stats.weightedtau` with its
defaults, so values are comparable with every published number.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

__all__ = [
    "RankingTieWarning",
    "bootstrap_interval",
    "evaluate_ranking",
    "hit_at_k",
    "kendall_tau",
    "pearson",
    "rel_at_k",
    "seed_agreement",
    "spearman",
    "spearman_brown",
    "split_half_reliability",
    "top1_regret",
    "weighted_tau",
]


class RankingTieWarning(UserWarning):
    """Scores tie among the top candidates; top-k statistics broke the tie pessimistically."""


def _pair(scores: Sequence[float], truth: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    a = np.asarray(truth, dtype=np.float64).ravel()
    if s.shape != a.shape:
        raise ValueError(
            f"scores has {s.size} checkpoints but truth has {a.size}; they must describe the same checkpoints"
        )
    if s.size < 2:
        raise ValueError(f"ranking statistics need at least 2 checkpoints, got {s.size}")
    if not (np.isfinite(s).all() and np.isfinite(a).all()):
        raise ValueError(
            f"scores/truth contain {int((~np.isfinite(s)).sum())}/{int((~np.isfinite(a)).sum())} "
            "NaN or infinite values; drop those checkpoints first"
        )
    return s, a


def _constant_guard(s: np.ndarray, a: np.ndarray, name: str) -> bool:
    """True when a correlation is undefined because one side is constant."""
    return bool(np.ptp(s) == 0 or np.ptp(a) == 0)


def weighted_tau(scores: Sequence[float], truth: Sequence[float]) -> float:
    """Weighted Kendall tau, ``scipy.stats.weightedtau(scores, truth)`` with scipy's defaults.

    Hyperbolic weigher ``1/(r+1)``, additive, ``rank=True`` (symmetric in its arguments).
    NaN when either side is constant.
    """
    s, a = _pair(scores, truth)
    if _constant_guard(s, a, "weighted tau"):
        return float("nan")
    return float(stats.weightedtau(s, a).statistic)


def kendall_tau(scores: Sequence[float], truth: Sequence[float]) -> float:
    """Kendall tau-b (``scipy.stats.kendalltau``); NaN when either side is constant."""
    s, a = _pair(scores, truth)
    if _constant_guard(s, a, "Kendall tau"):
        return float("nan")
    return float(stats.kendalltau(s, a).statistic)


def pearson(scores: Sequence[float], truth: Sequence[float]) -> float:
    """Pearson correlation (``scipy.stats.pearsonr``); NaN when either side is constant."""
    s, a = _pair(scores, truth)
    if _constant_guard(s, a, "Pearson r"):
        return float("nan")
    return float(stats.pearsonr(s, a).statistic)


def spearman(scores: Sequence[float], truth: Sequence[float]) -> float:
    """Spearman rank correlation (``scipy.stats.spearmanr``); NaN when either side is constant."""
    s, a = _pair(scores, truth)
    if _constant_guard(s, a, "Spearman rho"):
        return float("nan")
    return float(stats.spearmanr(s, a).statistic)


def _pessimistic_order(s: np.ndarray, a: np.ndarray, k: int) -> np.ndarray:
    """Indices sorted by score descending; ties broken by ground truth ascending (worst first)."""
    order = np.lexsort((a, -s))
    if k < s.size and s[order[k - 1]] == s[order[k]]:
        warnings.warn(
            f"scores tie at the top-{k} boundary (value {s[order[k - 1]]:.6g}); "
            "the tie was broken pessimistically (lowest ground truth first)",
            RankingTieWarning,
            stacklevel=3,
        )
    return order


def rel_at_k(scores: Sequence[float], truth: Sequence[float], k: int = 1) -> float:
    """Top-k relative accuracy: best ground truth among the top-k by score over the best overall.

    ``Rel@k = max_{m in top-k(scores)} truth_m / max_m truth_m``; 1 means the best checkpoint is
    among the k recommended. Assumes non-negative accuracies.
    """
    s, a = _pair(scores, truth)
    k = _check_k(k, s.size)
    best = a.max()
    if best <= 0:
        raise ValueError(f"Rel@k needs a positive best ground truth, got {best}")
    order = _pessimistic_order(s, a, k)
    return float(a[order[:k]].max() / best)


def hit_at_k(scores: Sequence[float], truth: Sequence[float], k: int = 1) -> float:
    """1.0 when a checkpoint with the best ground truth is among the top-k by score, else 0.0."""
    s, a = _pair(scores, truth)
    k = _check_k(k, s.size)
    order = _pessimistic_order(s, a, k)
    return float(a[order[:k]].max() == a.max())


def top1_regret(scores: Sequence[float], truth: Sequence[float]) -> float:
    """Ground-truth points lost by fine-tuning the top-scored checkpoint instead of the best one."""
    s, a = _pair(scores, truth)
    order = _pessimistic_order(s, a, 1)
    return float(a.max() - a[order[0]])


def _check_k(k: int, m: int) -> int:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return min(int(k), m)


def evaluate_ranking(
    scores: Sequence[float], truth: Sequence[float], *, ks: Sequence[int] = (1, 3)
) -> dict[str, float]:
    """Every statistic for one task: weighted tau, Kendall tau, Pearson, Spearman, Rel@k, hit@k, regret."""
    s, a = _pair(scores, truth)
    out = {
        "weighted_tau": weighted_tau(s, a),
        "kendall_tau": kendall_tau(s, a),
        "pearson": pearson(s, a),
        "spearman": spearman(s, a),
        "top1_regret": top1_regret(s, a),
    }
    for k in ks:
        out[f"rel@{k}"] = rel_at_k(s, a, k)
        out[f"hit@{k}"] = hit_at_k(s, a, k)
    return out


def bootstrap_interval(
    statistic: Callable[[np.ndarray], float],
    n_items: int,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    random_state: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(indices)`` over resampled item indices.

    Parameters
    ----------
    statistic : callable
        Takes an index array of shape (n_items,) (drawn with replacement) and returns a float;
        NaN results (e.g. a constant resample) are dropped.
    n_items : int
        Number of items to resample (checkpoints, or ground-truth seeds).
    n_resamples : int
    confidence : float
    random_state : int

    Returns
    -------
    (low, high) : tuple of float
        NaN when fewer than 10 % of the resamples gave a finite value.
    """
    rng = np.random.default_rng(random_state)
    values = np.array([statistic(rng.integers(0, n_items, n_items)) for _ in range(n_resamples)])
    values = values[np.isfinite(values)]
    if values.size < max(1, n_resamples // 10):
        return float("nan"), float("nan")
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)


def seed_agreement(truth_by_seed: np.ndarray) -> float:
    """Seed agreement: mean weighted tau between every pair of single seeds.

    This is how well *one* fine-tuning seed ranks the checkpoints like another one. It is not a
    ceiling for a measure scored against the mean over all seeds (that mean is less noisy than a
    single seed, so a measure can exceed it); :func:`split_half_reliability` estimates the
    reliability of that mean.

    Parameters
    ----------
    truth_by_seed : ndarray of shape (n_seeds, n_checkpoints)
        Fine-tuned accuracy of every checkpoint under each seed.

    Returns
    -------
    float
        Mean pairwise weighted tau; NaN with fewer than 2 seeds.
    """
    T = _seed_table(truth_by_seed)
    if T.shape[0] < 2:
        return float("nan")
    values = [weighted_tau(T[i], T[j]) for i in range(T.shape[0]) for j in range(i + 1, T.shape[0])]
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _seed_table(truth_by_seed: np.ndarray) -> np.ndarray:
    T = np.asarray(truth_by_seed, dtype=np.float64)
    if T.ndim != 2:
        raise ValueError(f"truth_by_seed must be 2-D (n_seeds, n_checkpoints), got shape {T.shape}")
    return T


def spearman_brown(r: float, factor: float) -> float:
    """Spearman-Brown prophecy: reliability of the mean of ``factor`` times as many measurements.

    ``R = factor * r / (1 + (factor - 1) * r)`` for a reliability (or parallel-measurement
    correlation) ``r``; ``spearman_brown(r, 2) = 2 r / (1 + r)`` is the split-half correction.

    Raises
    ------
    ValueError
        ``factor`` not positive.

    Examples
    --------
    >>> round(spearman_brown(0.6, 2), 6)
    0.75
    """
    if not factor > 0:
        raise ValueError(f"the Spearman-Brown factor must be positive, got {factor!r}")
    den = 1.0 + (factor - 1.0) * r
    return float(factor * r / den) if den > 0 else float("nan")


def _half_correlation(rho: float, n1: int, n2: int) -> float:
    """Correlation of the means of n1 and n2 parallel measurements whose pairwise correlation is rho."""
    return float(rho * np.sqrt(n1 * n2) / np.sqrt((1.0 + (n1 - 1) * rho) * (1.0 + (n2 - 1) * rho)))


def _single_correlation(r: float, n1: int, n2: int) -> float:
    """The pairwise correlation rho whose n1-mean and n2-mean correlate ``r`` (inverse of the above)."""
    if n1 == n2:
        return r / (n1 - (n1 - 1) * r)
    from scipy.optimize import brentq

    k = n1 + n2
    low = -1.0 / (k - 1) + 1e-12
    return float(brentq(lambda rho: _half_correlation(rho, n1, n2) - r, low, 1.0, xtol=1e-14))


def split_half_reliability(truth_by_seed: np.ndarray) -> float:
    """Reliability of the mean over all seeds: split-half weighted tau, Spearman-Brown corrected.

    The seeds are split into two halves in every possible way (sizes ``k // 2`` and
    ``k - k // 2`` for ``k`` seeds; each unordered split once); for each split the weighted tau
    between the two half means is computed, and ``r`` is their mean. ``r`` measures how well a
    half-size mean ranks the checkpoints like an independent half-size mean; the Spearman-Brown
    formula steps it up to the mean over all ``k`` seeds. With equal halves (``k`` even) this is
    the classical ``2 r / (1 + r)``. With unequal halves (``k`` odd) the correction uses the
    parallel-measurement model behind Spearman-Brown: the pairwise single-seed correlation
    ``rho`` solving ``r = rho sqrt(n1 n2) / sqrt((1 + (n1 - 1) rho) (1 + (n2 - 1) rho))``, then
    ``R = k rho / (1 + (k - 1) rho)``; for equal halves both routes give the same value.

    Spearman-Brown assumes parallel measurements (seeds are exchangeable: true) and a
    correlation that composes like Pearson's; for the weighted tau this is an approximation,
    used so that the reliability is on the scale the measures are judged on.

    Parameters
    ----------
    truth_by_seed : ndarray of shape (n_seeds, n_checkpoints)

    Returns
    -------
    float
        At most 1; NaN with fewer than 2 seeds, when every split is undefined (constant half
        means), or when the halves disagree completely (``r = -1``).

    Examples
    --------
    >>> T = [[1, 2, 3, 4], [1, 2, 4, 3]]
    >>> r = weighted_tau(T[0], T[1])
    >>> split_half_reliability(T) == spearman_brown(r, 2)
    True
    """
    from itertools import combinations

    T = _seed_table(truth_by_seed)
    k = T.shape[0]
    if k < 2:
        return float("nan")
    n1 = k // 2
    n2 = k - n1
    values = []
    for first in combinations(range(k), n1):
        if n1 == n2 and 0 not in first:  # the same split seen from its other half
            continue
        second = [i for i in range(k) if i not in first]
        values.append(weighted_tau(T[list(first)].mean(axis=0), T[second].mean(axis=0)))
    finite = [v for v in values if np.isfinite(v)]
    if not finite:
        return float("nan")
    r = float(np.mean(finite))
    if r >= 1.0 - 1e-12:
        return 1.0
    if r <= -1.0 + 1e-12:  # complete disagreement: Spearman-Brown diverges
        return float("nan")
    rho = _single_correlation(r, n1, n2)
    return spearman_brown(rho, k)
