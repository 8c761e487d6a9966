"""How per-measure scores become the ``rank`` column that ``ckptrank rank`` prints.

One function, :func:`consensus_column`, turns a table of per-measure scores (one value per
checkpoint, NaN where a measure did not score it) into the consensus rank and the final rank.
:func:`ckptrank.ranking.rank` calls it for the default answer, and the benchmark harness calls
the same function on the benchmark's scores, so ``ckptrank bench`` evaluates exactly the column a
user sees (never a re-implementation of it).

Consensus rank
    For each measure, the checkpoints it scored are ranked 1 (predicted best) .. M, ties
    averaged (:func:`scipy.stats.rankdata`, ``method="average"``), using the measure's
    ``higher_is_better``. The consensus rank of a checkpoint is the mean of its per-measure
    ranks over the measures that scored *every* checkpoint that ran (a measure that skipped
    some checkpoints, e.g. LEEP for checkpoints without a head, is shown but left out of the
    consensus, so that all checkpoints are compared on the same measures; when no measure scored
    every checkpoint, the mean over the available ranks is used and a note says so). The final
    rank orders the consensus ranks, ties sharing the smaller rank ("1, 2, 2, 4").
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["DEFAULT_MEASURES", "RankColumn", "consensus_column", "final_rank", "measure_ranks"]

#: Measures used when none are requested: fast on a CPU, strong in the published comparisons,
#: and of different kinds (evidence, discriminant analysis, covariance, mixture, source head).
DEFAULT_MEASURES: tuple[str, ...] = ("logme", "sfda", "reg_hscore", "nleep", "leep")


def measure_ranks(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Ranks 1 = best among the finite values, ties averaged; NaN where the value is NaN.

    Parameters
    ----------
    values : ndarray of shape (n_checkpoints,)
    higher_is_better : bool

    Returns
    -------
    ndarray of shape (n_checkpoints,)

    Examples
    --------
    >>> measure_ranks(np.array([0.5, 0.9, 0.5, np.nan]), higher_is_better=True).tolist()
    [2.5, 1.0, 2.5, nan]
    """
    from scipy.stats import rankdata

    values = np.asarray(values, dtype=np.float64)
    out = np.full(values.shape, np.nan)
    finite = np.isfinite(values)
    if finite.any():
        keyed = -values[finite] if higher_is_better else values[finite]
        out[finite] = rankdata(keyed, method="average")
    return out


def final_rank(consensus: np.ndarray) -> np.ndarray:
    """Order of the consensus ranks, ties sharing the smaller rank ("1, 2, 2, 4"); NaN stays NaN.

    Consensus ranks are rounded to 9 decimals first, so that means of the same ranks taken in a
    different order (round-off) tie.

    Examples
    --------
    >>> final_rank(np.array([1.5, 1.5, 3.0, np.nan])).tolist()
    [1.0, 1.0, 3.0, nan]
    """
    from scipy.stats import rankdata

    consensus = np.asarray(consensus, dtype=np.float64)
    out = np.full(consensus.shape, np.nan)
    finite = np.isfinite(consensus)
    if finite.any():
        out[finite] = rankdata(np.round(consensus[finite], 9), method="min")
    return out


@dataclass
class RankColumn:
    """The consensus of several measures over one set of checkpoints.

    Attributes
    ----------
    consensus : ndarray of shape (n_checkpoints,)
        Mean per-measure rank (lower = better); NaN for checkpoints that did not run.
    rank : ndarray of shape (n_checkpoints,)
        :func:`final_rank` of ``consensus``.
    measures : list of str
        The measures averaged.
    ranks : dict
        Measure -> its ranks, ndarray of shape (n_checkpoints,).
    notes : list of str
        Why a measure was left out, or could not separate the checkpoints.
    """

    consensus: np.ndarray
    rank: np.ndarray
    measures: list[str]
    ranks: dict[str, np.ndarray]
    notes: list[str] = field(default_factory=list)


def _all_equal(values: np.ndarray, rtol: float = 1e-6) -> bool:
    return bool(np.ptp(values) <= rtol * max(1.0, float(np.abs(values).max())))


def consensus_column(
    scores: Mapping[str, np.ndarray],
    higher_is_better: Mapping[str, bool],
    ok: np.ndarray | None = None,
) -> RankColumn:
    """The consensus rank of the measures in ``scores`` (see the module docstring).

    Parameters
    ----------
    scores : mapping
        Measure -> scores, each an ndarray of shape (n_checkpoints,), NaN where the measure did
        not score the checkpoint. The order of the mapping is the order of the notes.
    higher_is_better : mapping
        Measure -> direction (missing: True).
    ok : ndarray of bool, shape (n_checkpoints,), optional
        Checkpoints that ran (default: all); the others get NaN ranks.

    Returns
    -------
    RankColumn

    Raises
    ------
    ValueError
        No measure scored any checkpoint.

    Examples
    --------
    >>> column = consensus_column(
    ...     {"a": np.array([3.0, 2.0, 1.0]), "b": np.array([1.0, 3.0, 2.0])}, {"a": True, "b": True}
    ... )
    >>> column.consensus.tolist(), column.rank.tolist()
    ([2.0, 1.5, 2.5], [2.0, 1.0, 3.0])
    """
    names: Sequence[str] = list(scores)
    arrays = {name: np.asarray(scores[name], dtype=np.float64) for name in names}
    n = len(next(iter(arrays.values()))) if arrays else 0
    ran = np.ones(n, dtype=bool) if ok is None else np.asarray(ok, dtype=bool)
    scored = {name: np.isfinite(arrays[name]) & ran for name in names}
    if not any(mask.any() for mask in scored.values()):
        raise ValueError("no measure scored any checkpoint")
    ranks = {
        name: measure_ranks(np.where(ran, arrays[name], np.nan), higher_is_better.get(name, True))
        for name in names
    }
    complete = [name for name in names if scored[name].sum() == ran.sum()]
    partial = [name for name in names if name not in complete and scored[name].any()]
    used = complete or partial
    notes: list[str] = []
    if complete and partial:
        notes.append(
            f"consensus over {', '.join(complete)} (the measures that scored every checkpoint); "
            f"{', '.join(partial)} scored only some checkpoints and {'is' if len(partial) == 1 else 'are'} "
            "shown but not averaged"
        )
    elif not complete:
        notes.append(
            "no measure scored every checkpoint; the consensus averages each checkpoint's available ranks, "
            "which compares checkpoints on different measures"
        )
    for name in names:
        if not scored[name].any():
            notes.append(f"{name} scored no checkpoint (see the notes of each checkpoint)")
        elif scored[name].sum() > 1 and _all_equal(arrays[name][scored[name]]):
            notes.append(
                f"{name} gave every checkpoint the same score, so it cannot separate them here "
                "(its ranks are tied; see its warnings)"
            )
    stacked = np.vstack([ranks[name] for name in used])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (rows that did not run)
        consensus = np.where(ran, np.nanmean(stacked, axis=0), np.nan)
    return RankColumn(
        consensus=consensus, rank=final_rank(consensus), measures=list(used), ranks=ranks, notes=notes
    )
