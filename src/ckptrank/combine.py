"""How per-measure scores become the ``rank`` column that ``ckptrank rank`` prints.

:func:`answer_column` makes the default answer: the default ranker shipped with the package
(:func:`default_ranker`, a :class:`ckptrank.rankers.AgreementRanker`, label-free, chosen over the
learned :class:`ckptrank.rankers.PairwiseRanker` by a pre-registered held-out comparison; see
``ckptrank/default_ranker.json`` for its held-out figures and ``benchmarks/RESULTS.md``) applied to
the scores of :data:`DEFAULT_MEASURES` and the checkpoints' parameter counts.
:func:`consensus_column` averages the ranks of the measures a user asked for (``--measures``).
:func:`ckptrank.ranking.rank` calls them, and the benchmark harness calls the same functions on
the benchmark's scores, so ``ckptrank bench`` evaluates exactly the column a user sees (never a
re-implementation of it).

Default ranker
    Within the task, each feature (the default measures' scores, log10 of the parameter count
    of the part of the network used) becomes a centred rank in [-1, 1]; a measure that failed or
    skipped a checkpoint is missing there (the middle rank, 0) and said so in a note, never a
    silent decision. Each feature's weight on this task is its agreement with the others (the
    leading eigenvector of their rank correlations; a note lists the weights), so the size of a
    network counts for as much as, and in the direction that, it agrees with what the measures
    say about the target data. The final rank orders the score, ties sharing the smaller rank.

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

import functools
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ckptrank.rankers import Ranker

__all__ = [
    "DEFAULT_MEASURES",
    "DEFAULT_RESAMPLES",
    "RankColumn",
    "answer_column",
    "consensus_column",
    "default_ranker",
    "final_rank",
    "measure_ranks",
]

#: Measures scored when none are requested: the measures the default ranker combines (measures that
#: both ckptrank's suites and the published score tables provide, so that it is evaluated on both).
DEFAULT_MEASURES: tuple[str, ...] = ("logme", "hscore", "leep", "nce", "nleep", "gbc")

#: Resamples of the target set (80% subsamples, :func:`ckptrank.pipeline.resample_indices`) behind
#: ``p_best`` when ``rank`` is called with defaults. Each costs about one more scoring of the default
#: measures (``benchmarks/bench_default_ranker.py``); held out, 10 changed the shortlists little
#: (``benchmarks/bench_p_best.py``), so 5 keep that cost in check.
DEFAULT_RESAMPLES = 5

#: The shipped default ranker (package data of ``ckptrank``).
DEFAULT_RANKER_FILE = "default_ranker.json"


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
    #: The default ranker's score (higher = better) when it made the rank; else None.
    ranker_score: np.ndarray | None = None
    #: What made the rank, in words (e.g. "default ranker: ..." or "consensus of ...").
    method: str = ""
    #: Probability that each checkpoint fine-tunes best (default ranker only; else None).
    p_best: np.ndarray | None = None
    #: Whether each checkpoint is in the smallest set holding the best with 90% probability.
    shortlist: np.ndarray | None = None


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
        consensus=consensus,
        rank=final_rank(consensus),
        measures=list(used),
        ranks=ranks,
        notes=notes,
        method=f"consensus (mean rank) of {', '.join(used)}",
    )


@functools.cache
def default_ranker() -> Ranker:
    """The ranker shipped with the package (read once per process; JSON, never a pickle).

    Raises
    ------
    ValueError
        The file is missing or damaged (reinstall ckptrank).
    """
    from importlib import resources

    from ckptrank.rankers import ranker_from_dict

    resource = resources.files("ckptrank").joinpath(DEFAULT_RANKER_FILE)
    try:
        text = resource.read_text()
    except OSError as err:
        raise ValueError(
            f"the default ranker file {DEFAULT_RANKER_FILE} cannot be read ({err}); reinstall ckptrank"
        ) from None
    import json

    try:
        return ranker_from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"the default ranker file {DEFAULT_RANKER_FILE} is damaged ({err}); reinstall ckptrank"
        ) from None


def held_out_summary(ranker: Ranker) -> str:
    """``"held-out weighted tau 0.50 on the 30 tasks where it had measure scores, as here (0.53 [0.39, ..."``.

    Leads with the mean over the held-out tasks where the ranker had measure scores, as ``ckptrank
    rank`` always has, where recorded; then the leave-one-task-out mean over every task it was not
    fitted on (the training suites' tasks, each held out in turn, and every task of the suites it was
    never fitted on, ``info["held_out_only"]``) with its interval. ``""`` when the ranker records no
    held-out figure.
    """
    held = ranker.info.get("held_out", {}).get("leave_one_task_out", {})
    try:
        overall = (
            f"{held['weighted_tau']:.2f} [{held['ci_low']:.2f}, {held['ci_high']:.2f}] "
            f"over {held['n_tasks']} tasks it was not fitted on"
        )
    except (KeyError, TypeError, ValueError):
        return ""
    measured = held.get("with_measures") or {}
    n_measured = measured.get("n_tasks", 0)
    if measured.get("weighted_tau") is not None and 0 < n_measured < held["n_tasks"]:
        return (
            f"held-out weighted tau {measured['weighted_tau']:.2f} on the {n_measured} tasks where it had "
            f"measure scores, as here ({overall}, including {held['n_tasks'] - n_measured} where it saw "
            "only model size)"
        )
    return f"held-out weighted tau {overall}"


def answer_column(
    scores: Mapping[str, np.ndarray],
    higher_is_better: Mapping[str, bool],
    *,
    num_parameters: np.ndarray,
    has_head: np.ndarray | None = None,
    ok: np.ndarray | None = None,
    ranker: Ranker | None = None,
    resampled: Mapping[str, np.ndarray] | None = None,
) -> RankColumn:
    """The default answer: the default ranker over the default measures and the descriptors.

    Parameters
    ----------
    scores : mapping
        Measure -> raw scores of shape (n_checkpoints,) (NaN: not scored); at least the
        ranker's measures should be present (a missing one is left out, with a note; a checkpoint
        a measure did not score is the middle rank of that measure).
    higher_is_better : mapping
        Measure -> direction.
    num_parameters : ndarray of shape (n_checkpoints,)
        Parameters of the part of each network used (NaN: unknown).
    has_head : ndarray of shape (n_checkpoints,), optional
        1 / 0 / NaN; default: whether LEEP scored the checkpoint (when LEEP scored any). A feature
        of a pairwise ranker that lists it; for every ranker it decides which missing LEEP and
        NCE scores deserve a note (a checkpoint without a head cannot have them).
    ok : ndarray of bool, optional
        Checkpoints that ran (default all); the others get NaN.
    ranker : PairwiseRanker or AgreementRanker, optional
        Default :func:`default_ranker`.
    resampled : mapping, optional
        Measure -> raw scores of shape (n_resamples, n_checkpoints) on resamples of
        the target set, the same resamples for every checkpoint (NaN: not scored there, and then
        the full-set score is used). With them, ``p_best`` averages the ranker's probability over
        the resamples, so that it carries the sampling noise of the target set besides the
        ranker's held-out error; a measure not given keeps its full-data score in every resample.

    Returns
    -------
    RankColumn
        ``ranker_score`` holds the ranker's score, ``rank`` its order, ``consensus`` the
        consensus of the measures (shown for reference), ``method`` names the ranker.
    """
    from ckptrank.rankers import HAS_HEAD, PARAMETERS, AgreementRanker, size_usable

    ranker = ranker or default_ranker()
    column = consensus_column(scores, higher_is_better, ok)
    n = column.consensus.shape[0]
    ran = np.ones(n, dtype=bool) if ok is None else np.asarray(ok, dtype=bool)
    table: dict[str, np.ndarray] = {}
    # the consensus is shown for reference only: its notes about which measures it averaged do not apply
    reference_only = ("consensus over", "no measure scored every")
    notes = [note for note in column.notes if not note.startswith(reference_only)]
    for name in ranker.features:
        if name == PARAMETERS:
            params = np.asarray(num_parameters, dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                values = np.where(params > 0, np.log10(params), np.nan)
            unknown = int(np.isnan(values[ran]).sum())
            known = int(ran.sum()) - unknown
            # the agreement ranker needs 3 known counts (2 in a zoo of 2); one known count has no rank to
            # compare for the pairwise ranker either (centred ranks leave it at the middle, like the rest)
            if isinstance(ranker, AgreementRanker):
                too_few = not size_usable(known, int(ran.sum()))
            else:
                too_few = known < 2
            if unknown and too_few:
                notes.append(
                    f"default ranker: the parameter count of {unknown} checkpoint(s) is unknown and of "
                    f"{known} known; it is left out of this ranking"
                )
            elif unknown:
                notes.append(
                    f"default ranker: the parameter count of {unknown} checkpoint(s) is unknown; they sit at "
                    "the middle of that feature"
                )
        elif name == HAS_HEAD:
            if has_head is not None:
                values = np.asarray(has_head, dtype=float)
            elif "leep" in scores and np.isfinite(np.asarray(scores["leep"], dtype=float)[ran]).any():
                values = np.isfinite(np.asarray(scores["leep"], dtype=float)).astype(float)
            else:
                values = np.full(n, np.nan)
        elif name in scores:
            raw = np.asarray(scores[name], dtype=float)
            values = raw if higher_is_better.get(name, True) else -raw
            unscored = ~np.isfinite(values) & ran
            if name in ("leep", "nce") and has_head is not None:
                # a checkpoint without a head cannot have them: only a headed one missing them is news
                unscored &= np.asarray(has_head, dtype=float) == 1
            elif name in ("leep", "nce"):
                unscored[:] = False
            missing = int(unscored.sum())
            if 0 < missing < int(ran.sum()):
                notes.append(
                    f"default ranker: {name} did not score {missing} checkpoint(s); they sit at the middle "
                    "of that feature"
                )
        else:
            values = np.full(n, np.nan)
            notes.append(f"default ranker: {name} was not scored; it is left out of this ranking")
        table[name] = np.where(ran, values, np.nan)
    score = np.full(n, np.nan)
    if ran.any():
        ran_table = {k: v[ran] for k, v in table.items()}
        if isinstance(ranker, AgreementRanker):
            score[ran], loadings = ranker.score_with_loadings(ran_table)
            notes.extend(_agreement_notes(loadings))
        else:
            score[ran] = ranker.score_table(ran_table)
    resampled_scores = _resampled_scores(table, ran, ranker, resampled or {}, higher_is_better)
    p_best, shortlist = _decisions(score, ranker, resampled_scores)
    if isinstance(ranker, AgreementRanker):
        method = "default ranker (label-free agreement of " + ", ".join(ranker.features) + ")"
    else:
        method = "default ranker (learned, pairwise logistic over " + ", ".join(ranker.features) + ")"
    summary = held_out_summary(ranker)
    if summary:
        method += f"; {summary}"
    return RankColumn(
        consensus=column.consensus,
        rank=final_rank(-score),
        measures=[f for f in ranker.features if f in scores],
        ranks=column.ranks,
        notes=notes,
        ranker_score=score,
        method=method,
        p_best=p_best,
        shortlist=shortlist,
    )


#: Start of the note that lists the agreement ranker's weights on a task.
WEIGHTS_NOTE = "default ranker: weights on this task"
#: Added to it where the parameter count's weight is negative.
SIZE_DISAGREES = "the parameter count disagrees with the measures here"
#: Below this ratio of |sum| to the sum of |weights| of the measures, their weights nearly cancel: they
#: split into two camps of about equal weight, and which one the ranking follows is close to arbitrary.
SPLIT_RATIO = 0.25


def _agreement_notes(loadings: Mapping[str, float]) -> list[str]:
    """The agreement ranker's weights on a task, and a warning where the measures split evenly.

    ``["default ranker: weights on this task, from each feature's agreement with the others: nleep
    +0.48, logme +0.45, ..."]``, one more note when the measures' weights nearly cancel
    (:data:`SPLIT_RATIO`), or one note saying that the ranking fell back (``loadings`` empty).
    """
    from ckptrank.rankers import PARAMETERS

    if not loadings:
        return [
            "default ranker: no measure could be compared with the others here (fewer than 3 checkpoints, or "
            "no measure scored 3); the ranking is the measures' mean rank, or else the parameter count's"
        ]
    ordered = sorted(loadings.items(), key=lambda item: -abs(item[1]))
    text = ", ".join(f"{name} {weight:+.2f}" for name, weight in ordered)
    note = f"{WEIGHTS_NOTE}, from each feature's agreement with the others: {text}"
    if loadings.get(PARAMETERS, 0.0) < 0:
        note += f" ({SIZE_DISAGREES}: size counts against a checkpoint)"
    notes = [note]
    measures = np.array([w for name, w in loadings.items() if name != PARAMETERS])
    if measures.size >= 2 and abs(measures.sum()) < SPLIT_RATIO * np.abs(measures).sum():
        positive = [name for name, w in ordered if name != PARAMETERS and w > 0]
        negative = [name for name, w in ordered if name != PARAMETERS and w < 0]
        notes.append(
            f"default ranker: the measures split into two camps here ({', '.join(positive)} against "
            f"{', '.join(negative)}) whose weights nearly cancel, so the ranking follows the first camp on a "
            "narrow margin and may be reversed; compare the measures' own columns before you fine-tune"
        )
    return notes


def _resampled_scores(
    table: Mapping[str, np.ndarray],
    ran: np.ndarray,
    ranker: Ranker,
    resampled: Mapping[str, np.ndarray],
    higher_is_better: Mapping[str, bool],
) -> np.ndarray | None:
    """The ranker's scores on each resample, shape (n_resamples, n_checkpoints) (NaN: did not run)."""
    used = [name for name in ranker.features if name in resampled and name in table]
    if not used or not ran.any():
        return None
    counts = {np.asarray(resampled[name]).shape[0] for name in used}
    if len(counts) != 1:
        raise ValueError(f"resampled scores disagree on the number of resamples: {sorted(counts)}")
    n_resamples = counts.pop()
    out = np.full((n_resamples, ran.size), np.nan)
    for b in range(n_resamples):
        current = dict(table)
        for name in used:
            raw = np.asarray(resampled[name], dtype=float)[b]
            signed = raw if higher_is_better.get(name, True) else -raw
            # a draw that failed keeps the full-set score (not the middle rank, which would move it)
            current[name] = np.where(ran, np.where(np.isfinite(signed), signed, table[name]), np.nan)
        out[b, ran] = ranker.score_table({k: v[ran] for k, v in current.items()})
    return out


def _decisions(
    score: np.ndarray, ranker: Ranker, resampled: np.ndarray | None = None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``p_best`` over the checkpoints that ran (:func:`ckptrank.rankers.probability_best`) and the shortlist.

    ``T``, its scale and the shortlist level come from the ranker file (fitted on held-out benchmark
    predictions; see :func:`ckptrank.bench.meta.calibrate_shortlist`). None without them. With
    ``resampled`` (the ranker's scores on resamples of the target set, shape (n_resamples,
    n_checkpoints)), ``p_best`` is the mean over the resamples of the probability on each.
    """
    from ckptrank.rankers import P_BEST_SCALES, probability_best, shortlist_size

    info = ranker.info.get("p_best", {})
    try:
        temperature = float(info["temperature"])
        level = float(info.get("shortlist_level", 0.9))
    except (KeyError, TypeError, ValueError):
        return None, None
    # files written before round 8 have no scale: their temperature was fitted in rank steps
    scale = info.get("scale", "rank_steps")
    if scale not in P_BEST_SCALES:
        raise ValueError(
            f"the ranker file's p_best scale is {scale!r}, not one of {', '.join(P_BEST_SCALES)}; "
            "it is damaged"
        )
    ran = np.isfinite(score)
    p = np.full(score.shape, np.nan)
    shortlist = np.zeros(score.shape, dtype=bool)
    if not ran.any() or not temperature > 0:
        return None, None
    if resampled is None or resampled.shape[0] == 0:
        p[ran] = probability_best(score[ran], temperature, scale)
    else:
        p[ran] = np.mean([probability_best(row[ran], temperature, scale) for row in resampled], axis=0)
    order = np.argsort(-np.where(ran, p, -1.0), kind="stable")
    shortlist[order[: shortlist_size(p[ran], level)]] = True
    return p, shortlist
