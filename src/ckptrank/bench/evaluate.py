"""Evaluation of measures against a ground truth: per task, averaged, with bootstrap intervals.

:func:`evaluate` is pure: it takes a table of scores and a table of ground-truth accuracies and
computes, for every measure and every target task, the ranking statistics of
:mod:`ckptrank.bench.stats` (weighted Kendall tau with scipy's defaults, Kendall tau-b, Pearson,
Spearman, Rel@k, hit@k, top-1 regret), their averages over tasks, and two 95 % percentile
bootstrap intervals:

* **over checkpoints**: the checkpoints of a task are resampled with replacement (the question
  "would this hold for another zoo of checkpoints like these?"). Tasks evaluated on the same
  checkpoints share the resampled indices, so the interval of the average over tasks accounts for
  the correlation between tasks; every measure sees the same resamples, which makes the
  probability that a measure beats the best baseline a paired comparison.
* **over ground-truth seeds**: the fine-tuning seeds of each task are resampled, the ground truth
  becomes the mean accuracy over the resampled seeds, and the scores stay fixed (the question
  "how much of the result is fine-tuning noise?"). Needs at least 2 seeds. When the ground truth
  gives the test-set size (an ``n_test`` column), the test set's own sampling noise is added to
  each resampled truth: every checkpoint's mean accuracy ``p`` moves by a normal draw of its binomial
  standard error ``100 sqrt(p (1 - p) / n_test)`` points (the seeds share one test set, so this
  noise does not average out over them; drawn independently per checkpoint, which overstates it
  for comparisons on the same test images). The draws are shared by every row, so comparisons
  stay paired. Perturbing a truth that is already noisy pulls weighted tau down (attenuation), so
  this interval says how far noise can move a result, not where its centre lies.

The **noise ceiling** of a task is the mean pairwise weighted tau between its seeds
(:func:`ckptrank.bench.stats.seed_agreement`): a measure cannot be expected to agree with the
ground truth better than the ground truth agrees with itself.

**Static baselines** (parameter count and source accuracy, each used as a score that ignores the
target) are evaluated in exactly the same way and shown beside every measure; a measure whose mean
weighted tau does not exceed that of the best baseline (over the same tasks) is *marked*.

**Cost** of a measure is the median number of seconds it took to score one checkpoint on one
task (feature extraction, shared by all measures, is not included).

The point estimates are computed with scipy (:mod:`ckptrank.bench.stats`); the bootstrap uses an
exact vectorised re-implementation of the same formulas (tested equal to scipy), so 1000
resamples of a 12-checkpoint x 5-task suite take well under a second per measure.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from ckptrank.ranking import LEADING_COLUMNS, TRAILING_COLUMNS

from . import stats
from .suite import BASELINE_COLUMNS, infer_tracks, normalize_name

if TYPE_CHECKING:
    from .suite import Suite

__all__ = [
    "STATISTICS",
    "Evaluation",
    "align_scores",
    "batch_statistics",
    "compare_reported",
    "evaluate",
    "evaluate_suite",
    "read_scores",
    "reported_summary",
    "weighted_tau_rows",
]

#: Statistics computed per task (with the default ``ks=(1, 3)``), in display order.
STATISTICS = (
    "weighted_tau",
    "kendall_tau",
    "pearson",
    "spearman",
    "rel@1",
    "rel@3",
    "hit@1",
    "hit@3",
    "top1_regret",
)

_SCORE_SYNONYMS = {
    "task": ("task", "dataset", "target", "target_dataset", "target_task"),
    "checkpoint": ("checkpoint", "model", "source_model", "ckpt"),
    "measure": ("measure", "metric", "method", "score_name"),
    "score": ("score", "value"),
}
# Columns of a ``ckptrank rank`` table (and of suite tables) that are not measure scores.
_NOT_MEASURES = {*LEADING_COLUMNS, *TRAILING_COLUMNS, "seed", "group"} - {"checkpoint"}
_STAT_ALIASES = {
    "weightedtau": "weighted_tau",
    "wtau": "weighted_tau",
    "tauw": "weighted_tau",
    "weightedkendalltau": "weighted_tau",
    "kendalltau": "kendall_tau",
    "kendall": "kendall_tau",
    "tau": "kendall_tau",
    "pearson": "pearson",
    "pearsoncorr": "pearson",
    "pearsonr": "pearson",
    "spearman": "spearman",
    "spearmanr": "spearman",
}
_MAX_CELLS = 2_000_000  # resamples x checkpoint pairs per chunk of the vectorised correlations


# ------------------------------------------------------------------------------------------------
# Reading score tables


def _find_column(columns: Sequence[str], role: str) -> str | None:
    lowered = {str(c).strip().lower(): c for c in columns}
    for name in _SCORE_SYNONYMS[role]:
        if name in lowered:
            return lowered[name]
    return None


def read_scores(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """Read a score table into the long format ``task, checkpoint, measure, score[, seconds]``.

    Parameters
    ----------
    source : str, path or DataFrame
        A ``.csv``/``.tsv``/``.parquet``/``.json`` file or a DataFrame, either *long* (columns
        task, checkpoint, measure, score, optionally seconds) or *wide* (columns task,
        checkpoint and one numeric column per measure). Synonyms are accepted: dataset/target for
        task, model for checkpoint, metric/method for measure, value for score.

    Returns
    -------
    pandas.DataFrame
        Long table; scores as float (NaN where missing or unparsable).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Unknown file type, missing task/checkpoint columns, no measure column, or duplicate
        (task, checkpoint, measure) rows.
    """
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
        where = "the score table"
    else:
        path = Path(source)
        where = path.name
        if not path.is_file():
            raise FileNotFoundError(f"scores file {str(path)!r} not found")
        suffix = path.suffix.lower()
        if suffix == ".csv":
            frame = pd.read_csv(path)
        elif suffix == ".tsv":
            frame = pd.read_csv(path, sep="\t")
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix == ".json":
            frame = pd.read_json(path)
        else:
            raise ValueError(
                f"scores file {path.name}: unknown type {suffix!r}; use .csv, .tsv, .parquet or .json"
            )
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    task = _find_column(columns, "task")
    checkpoint = _find_column(columns, "checkpoint")
    if task is None or checkpoint is None:
        raise ValueError(
            f"{where} needs a task column (task/dataset) and a checkpoint column (checkpoint/model); "
            f"columns found: {', '.join(columns) or 'none'}"
        )
    measure = _find_column(columns, "measure")
    score = _find_column(columns, "score")
    if measure is not None and score is not None:
        long = pd.DataFrame(
            {
                "task": frame[task].astype(str),
                "checkpoint": frame[checkpoint].astype(str),
                "measure": frame[measure].astype(str),
                "score": pd.to_numeric(frame[score], errors="coerce").astype(float),
            }
        )
        if "seconds" in columns:
            long["seconds"] = pd.to_numeric(frame["seconds"], errors="coerce").astype(float)
    else:
        measures = [
            c
            for c in columns
            if c not in (task, checkpoint)
            and c.lower() not in _NOT_MEASURES
            and pd.api.types.is_numeric_dtype(frame[c])
        ]
        if not measures:
            raise ValueError(
                f"{where} has no measure: give either columns measure and score (long format) or one "
                f"numeric column per measure (wide format); columns found: {', '.join(columns)}"
            )
        long = frame[[task, checkpoint, *measures]].melt(
            id_vars=[task, checkpoint], var_name="measure", value_name="score"
        )
        long = long.rename(columns={task: "task", checkpoint: "checkpoint"})
        long["task"] = long["task"].astype(str)
        long["checkpoint"] = long["checkpoint"].astype(str)
        long["score"] = long["score"].astype(float)
    dup = long.duplicated(["task", "checkpoint", "measure"], keep=False)
    if dup.any():
        rows = long.loc[dup, ["task", "checkpoint", "measure"]].agg("/".join, axis=1).unique()
        raise ValueError(
            f"{where} has {len(rows)} duplicate (task, checkpoint, measure) rows ({_listing(rows)}); "
            "keep one score per triple"
        )
    return long.reset_index(drop=True)


def _listing(names: Iterable[object], limit: int = 6) -> str:
    names = [str(n) for n in names]
    text = ", ".join(names[:limit])
    return text + (f" and {len(names) - limit} more" if len(names) > limit else "")


# ------------------------------------------------------------------------------------------------
# Vectorised statistics over resamples


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean ignoring NaN; NaN (without a warning) where every value is NaN."""
    finite = np.isfinite(values)
    count = finite.sum(axis=axis)
    total = np.where(finite, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _pairs(M: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Upper-triangle pair indices (i < j) and their (pairs x M) incidence matrices."""
    i, j = np.triu_indices(M, 1)
    inc_i = np.zeros((i.size, M))
    inc_j = np.zeros((i.size, M))
    inc_i[np.arange(i.size), i] = 1.0
    inc_j[np.arange(i.size), j] = 1.0
    return i, j, inc_i, inc_j


def _importance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Hyperbolic weights 1/(r+1), r = rank by decreasing lexicographic (x, y) (scipy's ``rank=None``)."""
    B, M = x.shape
    order = np.lexsort((y, x), axis=-1)[:, ::-1]
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(M), (B, M)), axis=1)
    return 1.0 / (rank + 1.0)


def _ratio(num: np.ndarray, den_x: np.ndarray, den_y: np.ndarray) -> np.ndarray:
    den = np.sqrt(den_x * den_y)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    r = _ratio((xc * yc).sum(axis=1), (xc * xc).sum(axis=1), (yc * yc).sum(axis=1))
    constant = (np.ptp(x, axis=1) == 0) | (np.ptp(y, axis=1) == 0)
    return np.where(constant, np.nan, np.clip(r, -1.0, 1.0))


def _weighted_from_signs(
    S: np.ndarray, A: np.ndarray, prod: np.ndarray, ax: np.ndarray, ay: np.ndarray, inc: np.ndarray
) -> np.ndarray:
    """Weighted tau of each row from the pair signs (``prod = sx * sy``, ``|sx|``, ``|sy|``)."""
    # The weight of pair (i, j) is w_i + w_j, so a weighted sum over pairs is w @ (pair values @ incidence).
    per_item = [m @ inc for m in (prod, ax, ay)]
    taus = []
    for w in (_importance(S, A), _importance(A, S)):
        taus.append(
            _ratio(
                (w * per_item[0]).sum(axis=1), (w * per_item[1]).sum(axis=1), (w * per_item[2]).sum(axis=1)
            )
        )
    return 0.5 * (taus[0] + taus[1])


def weighted_tau_rows(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Weighted tau (scipy's defaults) of each row of ``scores`` / ``truth``; NaN for a constant row.

    The weighted-tau part of :func:`batch_statistics`, for the paired comparisons.

    Parameters
    ----------
    scores, truth : ndarray of shape (n_rows, n_checkpoints)

    Returns
    -------
    ndarray of shape (n_rows,)
    """
    S = np.asarray(scores, dtype=np.float64)
    A = np.asarray(truth, dtype=np.float64)
    if S.ndim != 2 or S.shape != A.shape or S.shape[1] < 2:
        raise ValueError(
            f"scores and truth must be 2-D arrays of the same shape with >= 2 columns, got {S.shape} and "
            f"{A.shape}"
        )
    M = S.shape[1]
    i, j, inc_i, inc_j = _pairs(M)
    inc = inc_i + inc_j
    chunk = max(1, _MAX_CELLS // (M * (M - 1) // 2))
    parts = []
    for start in range(0, S.shape[0], chunk):
        s, a = S[start : start + chunk], A[start : start + chunk]
        sx = np.sign(s[:, i] - s[:, j])
        sy = np.sign(a[:, i] - a[:, j])
        parts.append(_weighted_from_signs(s, a, sx * sy, np.abs(sx), np.abs(sy), inc))
    return np.concatenate(parts)


def _correlations(S: np.ndarray, A: np.ndarray, out: dict[str, np.ndarray]) -> None:
    """Weighted tau, Kendall tau-b and Spearman of each row, from the signs of all pairs."""
    i, j, inc_i, inc_j = _pairs(S.shape[1])
    inc = inc_i + inc_j
    sx = np.sign(S[:, i] - S[:, j])
    sy = np.sign(A[:, i] - A[:, j])
    prod = sx * sy
    ax = np.abs(sx)
    ay = np.abs(sy)
    out["kendall_tau"] = _ratio(prod.sum(axis=1), ax.sum(axis=1), ay.sum(axis=1))
    out["weighted_tau"] = _weighted_from_signs(S, A, prod, ax, ay, inc)
    # Average ranks (ties share the mean rank): 1 + #smaller + (#equal - 1) / 2.
    tie_x = 0.5 * (sx == 0)
    tie_y = 0.5 * (sy == 0)
    rank_s = ((sx > 0) + tie_x) @ inc_i + ((sx < 0) + tie_x) @ inc_j
    rank_a = ((sy > 0) + tie_y) @ inc_i + ((sy < 0) + tie_y) @ inc_j
    out["spearman"] = _pearson_rows(rank_s, rank_a)


def batch_statistics(
    scores: np.ndarray, truth: np.ndarray, *, ks: Sequence[int] = (1, 3)
) -> dict[str, np.ndarray]:
    """Every ranking statistic for each row of ``scores`` / ``truth``, vectorised.

    Row ``b`` gives the same values as :func:`ckptrank.bench.stats.evaluate_ranking` on
    ``(scores[b], truth[b])`` (scipy's formulas, ties included, top-k ties broken pessimistically),
    without warnings: a constant row gives NaN correlations, and Rel@k is NaN when the best ground
    truth is not positive.

    Parameters
    ----------
    scores, truth : ndarray of shape (n_rows, n_checkpoints)
    ks : sequence of int

    Returns
    -------
    dict
        Statistic name -> ndarray of shape (n_rows,).

    Examples
    --------
    >>> out = batch_statistics([[1, 2, 3, 4, 5], [1, 2, 3, 4, 5]], [[1, 2, 3, 5, 4], [2, 1, 3, 4, 5]])
    >>> [round(float(v), 6) for v in out["weighted_tau"]]
    [0.671533, 0.90146]
    >>> out["hit@1"].tolist(), out["top1_regret"].tolist()
    ([0.0, 1.0], [1.0, 0.0])
    """
    S = np.asarray(scores, dtype=np.float64)
    A = np.asarray(truth, dtype=np.float64)
    if S.ndim != 2 or S.shape != A.shape:
        raise ValueError(
            f"scores and truth must be 2-D arrays of the same shape, got {S.shape} and {A.shape}"
        )
    B, M = S.shape
    if M < 2:
        raise ValueError(f"ranking statistics need at least 2 checkpoints, got {M}")
    out: dict[str, np.ndarray] = {}
    parts: dict[str, list[np.ndarray]] = {"weighted_tau": [], "kendall_tau": [], "spearman": []}
    chunk = max(1, _MAX_CELLS // (M * (M - 1) // 2))
    for start in range(0, B, chunk):
        piece: dict[str, np.ndarray] = {}
        _correlations(S[start : start + chunk], A[start : start + chunk], piece)
        for key in parts:
            parts[key].append(piece[key])
    out["weighted_tau"] = np.concatenate(parts["weighted_tau"])
    out["kendall_tau"] = np.concatenate(parts["kendall_tau"])
    out["pearson"] = _pearson_rows(S, A)
    out["spearman"] = np.concatenate(parts["spearman"])
    order = np.lexsort((A, -S), axis=-1)
    best = A.max(axis=1)
    picked = np.take_along_axis(A, order, axis=1)
    out["top1_regret"] = best - picked[:, 0]
    for k in ks:
        kk = min(int(k), M)
        top = picked[:, :kk].max(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"rel@{k}"] = np.where(best > 0, top / np.where(best > 0, best, 1.0), np.nan)
        out[f"hit@{k}"] = (top == best).astype(np.float64)
    return out


def _point_statistics(
    s: np.ndarray, a: np.ndarray, ks: Sequence[int], notes: list[str], where: str
) -> dict[str, float]:
    """The scipy-based statistics of one task; tie warnings and undefined values become notes."""
    out: dict[str, float] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out["weighted_tau"] = stats.weighted_tau(s, a)
        out["kendall_tau"] = stats.kendall_tau(s, a)
        out["pearson"] = stats.pearson(s, a)
        out["spearman"] = stats.spearman(s, a)
        for k in ks:
            try:
                out[f"rel@{k}"] = stats.rel_at_k(s, a, k)
            except ValueError:
                out[f"rel@{k}"] = math.nan
                note = f"{where}: Rel@k is undefined because the best ground truth is not positive"
                if note not in notes:
                    notes.append(note)
            out[f"hit@{k}"] = stats.hit_at_k(s, a, k)
        out["top1_regret"] = stats.top1_regret(s, a)
    for warning in caught:
        if not issubclass(warning.category, (DeprecationWarning, PendingDeprecationWarning)):
            notes.append(f"{where}: {' '.join(str(warning.message).split())}")
    if np.ptp(s) == 0:
        notes.append(f"{where}: every checkpoint has the same score; correlations are undefined (NaN)")
    return out


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size < max(1, values.size // 10):
        return math.nan, math.nan
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(low), float(high)


# ------------------------------------------------------------------------------------------------
# Result

#: ``task`` of the per_task rows holding the mean over a row's tasks; per track: ``"mean:TRACK"``.
MEAN = "mean"
_TRACK_MEAN = "mean:"
#: Name of the ground truth in the random-init sanity check.
TRUTH_ROW = "ground truth"


@dataclass
class Evaluation:
    """Result of :func:`evaluate`.

    Random-initialised controls (``controls``) are left out of every table but :attr:`controls`
    and :attr:`pairs`.

    Attributes
    ----------
    per_task : pandas.DataFrame
        Long table with columns ``measure``, ``kind`` (``"measure"`` or ``"baseline"``), ``task``
        (a task name; ``"mean"`` for the mean over the row's tasks; ``"mean:TRACK"`` for the mean
        over its tasks of one track, when the suite has several tracks), ``aggregate`` (True on
        the mean rows), ``statistic``, ``value``, ``ci_low``/``ci_high`` (bootstrap over
        checkpoints), ``seed_ci_low``/``seed_ci_high`` (bootstrap over ground-truth seeds),
        ``n_checkpoints``, ``n_tasks``.
    summary : pandas.DataFrame
        One row per measure then per baseline, indexed by name: ``kind``; ``n_tasks`` and
        ``n_pairs`` (the (task, checkpoint) pairs it was evaluated on); ``covers_all_tasks``;
        ``weighted_tau`` (mean over its own ``n_tasks`` tasks) with ``weighted_tau_ci_low``/
        ``_high`` and ``weighted_tau_seed_ci_low``/``_high``; the mean of every other statistic;
        ``weighted_tau:TRACK`` and ``n_tasks:TRACK`` per track; ``seconds`` (median per
        checkpoint); the paired comparison with the best baseline (see :attr:`comparisons`):
        ``best_baseline``, ``best_baseline_tau`` (the baseline's mean on the common pairs),
        ``weighted_tau_common`` (the row's mean on the same pairs), ``diff_vs_baseline``,
        ``diff_ci_low``/``diff_ci_high``, ``p_beats_baseline``, ``n_common_tasks``,
        ``n_common_pairs``, ``verdict`` (``"better"``, ``"worse"``, ``"tie"``, or None without
        interval), ``beats_baseline`` (True only when the interval of the difference lies above 0;
        None without a baseline), ``marked`` (a baseline exists and is not beaten); and the
        random-init sanity check: ``controls_below`` (tasks on which every control is scored
        below every pre-trained checkpoint) out of ``controls_tasks``.
    comparisons : pandas.DataFrame
        Paired comparison of every two rows ``a`` and ``b`` (``a`` before ``b`` in the summary),
        per ``scope`` (``"all"``, and each track when there are several): on the (task,
        checkpoint) pairs both have (``n_tasks``, ``n_pairs``), ``tau_a`` and ``tau_b`` (mean
        weighted tau), ``diff`` = ``tau_a - tau_b``, its percentile interval ``ci_low``/
        ``ci_high`` over checkpoint resamples shared by both, ``p_a_better`` (share of resamples
        with ``diff > 0``) and ``verdict`` for ``a`` (``"better"``/``"worse"`` when the interval
        excludes 0, else ``"tie"``; None without interval). :meth:`comparison` reads one.
    seed_agreement : pandas.DataFrame
        Per task: ``track``, ``n_seeds``, ``n_checkpoints``, ``seed_agreement`` (mean pairwise
        weighted tau between single seeds) and ``reliability`` (of the mean over the seeds that
        the measures are scored against: split-half, Spearman-Brown corrected; see
        :func:`ckptrank.bench.stats.split_half_reliability`).
    controls : pandas.DataFrame
        Random-init sanity check per row (and the ground truth, ``measure="ground truth"``,
        ``kind="truth"``) and task: ``n_controls``, ``n_pretrained``, ``below_all`` (every
        control scored strictly below every pre-trained checkpoint), ``ordered`` (share of
        (control, pre-trained) pairs in that order, ties counting half), ``top_control`` (the
        highest-scored control) and ``top_control_rank`` (its rank among all, 1 = first).
    pairs : pandas.DataFrame
        The evaluated points: ``measure``, ``kind``, ``task``, ``checkpoint``, ``score`` (as given),
        ``truth`` (mean over seeds), ``truth_std`` (over seeds), ``control``.
    tracks : dict
        Task -> track (``""`` when the suite is one track).
    reported : pandas.DataFrame or None
        Recomputed vs reported statistics (see :func:`compare_reported`).
    notes : list of str
    config : dict
    """

    per_task: pd.DataFrame
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    seed_agreement: pd.DataFrame
    controls: pd.DataFrame
    pairs: pd.DataFrame
    tracks: dict[str, str] = field(default_factory=dict)
    reported: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def measures(self) -> list[str]:
        """Evaluated measures (not baselines), in order."""
        return [m for m, row in self.summary.iterrows() if row["kind"] != "baseline"]

    @property
    def baselines(self) -> list[str]:
        """Evaluated baselines, in order."""
        return [m for m, row in self.summary.iterrows() if row["kind"] == "baseline"]

    @property
    def tasks(self) -> list[str]:
        """Evaluated tasks, in order."""
        tasks = self.per_task.loc[~self.per_task["aggregate"].astype(bool), "task"]
        return list(dict.fromkeys(tasks))

    @property
    def track_names(self) -> list[str]:
        """The tracks, in task order; empty when the evaluated tasks form one track."""
        names = list(dict.fromkeys(self.tracks.get(t, "") for t in self.tasks))
        return names if len(names) > 1 else []

    def task_table(self, statistic: str = "weighted_tau") -> pd.DataFrame:
        """A (measures + baselines) x tasks table of one statistic, with the ``mean`` (over each
        row's own tasks) and ``mean:TRACK`` columns."""
        rows = self.per_task[self.per_task["statistic"] == statistic]
        table = rows.pivot_table(
            index="measure", columns="task", values="value", aggfunc="first", dropna=False
        )
        means = [MEAN, *(f"{_TRACK_MEAN}{t}" for t in self.track_names)]
        columns = [t for t in self.tasks if t in table.columns] + [m for m in means if m in table.columns]
        order = [m for m in self.summary.index if m in table.index]
        return table.reindex(index=order, columns=columns)

    def comparison(self, a: str, b: str, scope: str = "all") -> dict[str, Any] | None:
        """The paired comparison of ``a`` with ``b`` (``diff = tau_a - tau_b``), or None.

        Parameters
        ----------
        a, b : str
            Measure or baseline names.
        scope : str
            ``"all"`` or a track.
        """
        rows = self.comparisons
        if rows.empty:
            return None
        hit = rows[(rows["scope"] == scope) & (rows["a"] == a) & (rows["b"] == b)]
        if len(hit):
            return dict(hit.iloc[0])
        hit = rows[(rows["scope"] == scope) & (rows["a"] == b) & (rows["b"] == a)]
        if not len(hit):
            return None
        row = dict(hit.iloc[0])
        flipped = dict(row)
        flipped.update(
            a=row["b"],
            b=row["a"],
            kind_a=row["kind_b"],
            kind_b=row["kind_a"],
            tau_a=row["tau_b"],
            tau_b=row["tau_a"],
            diff=-row["diff"],
            ci_low=-row["ci_high"],
            ci_high=-row["ci_low"],
            p_a_better=row["p_b_better"],
            p_b_better=row["p_a_better"],
            verdict=_VERDICT_FLIP.get(row["verdict"], row["verdict"]),
        )
        return flipped

    def versus(self, other: str, scope: str = "all") -> pd.DataFrame:
        """Every other row compared with ``other`` (a baseline or a measure), paired.

        Returns
        -------
        pandas.DataFrame
            Indexed by row name (summary order, ``other`` left out): ``n_tasks``, ``n_pairs``,
            ``tau`` (the row's mean weighted tau on the common pairs), ``tau_other`` (``other``'s
            on the same pairs), ``diff``, ``ci_low``, ``ci_high``, ``p_better`` (share of paired
            resamples in which the row is better) and ``verdict``. Rows without common pairs are
            absent.
        """
        rows = []
        for name in self.summary.index:
            if name == other:
                continue
            found = self.comparison(str(name), other, scope)
            if found is None:
                continue
            rows.append(
                {
                    "measure": name,
                    "n_tasks": found["n_tasks"],
                    "n_pairs": found["n_pairs"],
                    "tau": found["tau_a"],
                    "tau_other": found["tau_b"],
                    "diff": found["diff"],
                    "ci_low": found["ci_low"],
                    "ci_high": found["ci_high"],
                    "p_better": found["p_a_better"],
                    "verdict": found["verdict"],
                }
            )
        columns = [
            "n_tasks",
            "n_pairs",
            "tau",
            "tau_other",
            "diff",
            "ci_low",
            "ci_high",
            "p_better",
            "verdict",
        ]
        return pd.DataFrame(rows, columns=["measure", *columns]).set_index("measure")

    def _truth_mean(self, column: str, track: str | None) -> float:
        table = self.seed_agreement
        if track is not None:
            table = table[table["track"] == track]
        values = table[column].to_numpy(dtype=float)
        return float(_nanmean(values, 0)) if values.size else math.nan

    def mean_seed_agreement(self, track: str | None = None) -> float:
        """Mean seed agreement over the tasks (of one track) where it is defined (NaN when none)."""
        return self._truth_mean("seed_agreement", track)

    def mean_reliability(self, track: str | None = None) -> float:
        """Mean reliability of the seed-mean ground truth over the tasks (of one track); NaN when none."""
        return self._truth_mean("reliability", track)

    @property
    def noise_ceiling(self) -> pd.DataFrame:
        """Deprecated name of the seed agreement: columns ``task``, ``noise_ceiling``, ``n_seeds``.

        The mean pairwise agreement of single seeds is not a ceiling for a measure scored against
        the seed mean; use :attr:`seed_agreement` (with its ``reliability``).
        """
        return self.seed_agreement.rename(columns={"seed_agreement": "noise_ceiling"})[
            ["task", "noise_ceiling", "n_seeds"]
        ]

    def mean_noise_ceiling(self) -> float:
        """Deprecated name of :meth:`mean_seed_agreement`."""
        return self.mean_seed_agreement()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (NaN -> None)."""
        tracks = self.track_names
        return {
            "summary": _records(self.summary.reset_index()),
            "per_task": _records(self.per_task),
            "comparisons": _records(self.comparisons),
            "seed_agreement": _records(self.seed_agreement),
            "mean_seed_agreement": _clean(self.mean_seed_agreement()),
            "mean_reliability": _clean(self.mean_reliability()),
            "tracks": {
                "task_track": dict(self.tracks),
                "mean_seed_agreement": {t: _clean(self.mean_seed_agreement(t)) for t in tracks},
                "mean_reliability": {t: _clean(self.mean_reliability(t)) for t in tracks},
            },
            "controls": _records(self.controls),
            # deprecated alias of mean_seed_agreement (the single-seed agreement is no ceiling)
            "mean_noise_ceiling": _clean(self.mean_seed_agreement()),
            "reported": None if self.reported is None else _records(self.reported),
            "notes": list(self.notes),
            "config": self.config,
        }


_VERDICT_FLIP = {"better": "worse", "worse": "better"}


def _clean(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): _clean(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


# ------------------------------------------------------------------------------------------------
# Evaluation


@dataclass
class _Entry:
    """One (measure or baseline, task) evaluation with its resampled statistics.

    ``s`` (signed scores) and ``a`` (mean ground truth) follow ``checkpoints``.
    """

    measure: str
    kind: str
    task: str
    checkpoints: tuple[str, ...]
    point: dict[str, float]
    boot: dict[str, np.ndarray]
    seed_boot: dict[str, np.ndarray] | None
    s: np.ndarray
    a: np.ndarray

    def positions(self, names: Sequence[str]) -> list[int]:
        index = {name: i for i, name in enumerate(self.checkpoints)}
        return [index[name] for name in names]


class _Resampler:
    """Resampled index arrays, drawn once per checkpoint set / per task and shared by all rows.

    Two rows evaluated on the same checkpoints of a task get the same draws, and so do tasks
    evaluated on the same checkpoints (the interval of a mean over tasks then accounts for their
    correlation).
    """

    def __init__(self, n: int, random_state: int) -> None:
        self.n = n
        self.random_state = random_state
        self._checkpoint_draws: dict[tuple[str, ...], np.ndarray] = {}
        self._seed_draws: dict[tuple[str, int], np.ndarray] = {}
        self._noise_draws: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}

    def checkpoints(self, names: tuple[str, ...]) -> np.ndarray:
        if names not in self._checkpoint_draws:
            key = zlib.crc32("\x00".join(names).encode())
            rng = np.random.default_rng([self.random_state, 0, key])
            self._checkpoint_draws[names] = rng.integers(0, len(names), (self.n, len(names)))
        return self._checkpoint_draws[names]

    def test_noise(self, task: str, names: tuple[str, ...]) -> np.ndarray:
        """Standard normal draws, shape (n, len(names)): one per resample and checkpoint, shared by rows."""
        key = (task, names)
        if key not in self._noise_draws:
            digest = zlib.crc32("\x00".join((task, *names)).encode())
            self._noise_draws[key] = np.random.default_rng([self.random_state, 2, digest]).standard_normal(
                (self.n, len(names))
            )
        return self._noise_draws[key]

    def seeds(self, task: str, n_seeds: int) -> np.ndarray:
        key = (task, n_seeds)
        if key not in self._seed_draws:
            rng = np.random.default_rng([self.random_state, 1, zlib.crc32(task.encode())])
            self._seed_draws[key] = rng.integers(0, n_seeds, (self.n, n_seeds))
        return self._seed_draws[key]


class _Comparer:
    """Paired comparisons of two rows on the (task, checkpoint) pairs both have.

    For every task both rows evaluated, the common checkpoints (at least ``min_checkpoints``)
    are resampled with the draws of :class:`_Resampler` for that checkpoint set, so both rows
    see exactly the same resamples; the difference of their mean weighted tau over the common
    tasks is computed per resample.
    """

    def __init__(
        self,
        entries: Sequence[_Entry],
        resampler: _Resampler,
        *,
        n_bootstrap: int,
        confidence: float,
        min_checkpoints: int,
    ) -> None:
        self.entries = {(e.measure, e.task): e for e in entries}
        self.resampler = resampler
        self.n_bootstrap = n_bootstrap
        self.confidence = confidence
        self.min_checkpoints = min_checkpoints
        self._cache: dict[tuple[str, str, tuple[str, ...]], tuple[float, np.ndarray | None]] = {}

    def tau(self, entry: _Entry, names: tuple[str, ...]) -> tuple[float, np.ndarray | None]:
        """Weighted tau of ``entry`` on the checkpoints ``names`` (point, resamples)."""
        key = (entry.measure, entry.task, names)
        if key not in self._cache:
            if names == entry.checkpoints:
                self._cache[key] = (entry.point["weighted_tau"], entry.boot.get("weighted_tau"))
            else:
                pos = entry.positions(names)
                s, a = entry.s[pos], entry.a[pos]
                point = stats.weighted_tau(s, a)
                boot = None
                if self.n_bootstrap:
                    idx = self.resampler.checkpoints(names)
                    boot = weighted_tau_rows(s[idx], a[idx])
                self._cache[key] = (point, boot)
        return self._cache[key]

    def compare(self, a: str, b: str, tasks: Sequence[str]) -> dict[str, Any] | None:
        """``a`` vs ``b`` over ``tasks``; None when they share no task with enough checkpoints."""
        points_a, points_b, boots_a, boots_b = [], [], [], []
        n_pairs = 0
        for task in tasks:
            ea, eb = self.entries.get((a, task)), self.entries.get((b, task))
            if ea is None or eb is None:
                continue
            theirs = set(eb.checkpoints)
            common = tuple(name for name in ea.checkpoints if name in theirs)
            if len(common) < self.min_checkpoints:
                continue
            pa, ba = self.tau(ea, common)
            pb, bb = self.tau(eb, common)
            if not (math.isfinite(pa) and math.isfinite(pb)):
                continue
            points_a.append(pa)
            points_b.append(pb)
            boots_a.append(ba)
            boots_b.append(bb)
            n_pairs += len(common)
        if not points_a:
            return None
        tau_a, tau_b = float(np.mean(points_a)), float(np.mean(points_b))
        out: dict[str, Any] = {
            "n_tasks": len(points_a),
            "n_pairs": n_pairs,
            "tau_a": tau_a,
            "tau_b": tau_b,
            "diff": tau_a - tau_b,
            "ci_low": math.nan,
            "ci_high": math.nan,
            "p_a_better": math.nan,
            "p_b_better": math.nan,
            "verdict": None,
        }
        if self.n_bootstrap and all(x is not None for x in (*boots_a, *boots_b)):
            A = np.column_stack(boots_a)
            B = np.column_stack(boots_b)
            both = np.isfinite(A) & np.isfinite(B)
            count = both.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                diff = np.where(
                    count > 0,
                    (np.where(both, A, 0.0).sum(axis=1) - np.where(both, B, 0.0).sum(axis=1))
                    / np.maximum(count, 1),
                    np.nan,
                )
            low, high = _interval(diff, self.confidence)
            finite = diff[np.isfinite(diff)]
            out.update(ci_low=low, ci_high=high)
            if finite.size:
                out.update(p_a_better=float(np.mean(finite > 0)), p_b_better=float(np.mean(finite < 0)))
            if math.isfinite(low) and math.isfinite(high):
                out["verdict"] = "better" if low > 0 else "worse" if high < 0 else "tie"
        return out


def _check_options(n_bootstrap: int, confidence: float, min_checkpoints: int, ks: Sequence[int]) -> None:
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int | np.integer) or n_bootstrap < 0:
        raise ValueError(
            f"n_bootstrap must be a non-negative integer (0 = no intervals), got {n_bootstrap!r}"
        )
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    if not isinstance(min_checkpoints, int | np.integer) or min_checkpoints < 2:
        raise ValueError(f"min_checkpoints must be an integer >= 2, got {min_checkpoints!r}")
    if not ks or any(int(k) < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {list(ks)!r}")


def _truth_tables(
    ground_truth: pd.DataFrame, checkpoint_order: Sequence[str] | None
) -> tuple[dict[str, pd.Series], dict[str, pd.DataFrame], dict[str, pd.Series]]:
    """Per task: mean accuracy per checkpoint, the (seeds x checkpoints) table, and the binomial
    standard error (accuracy points) of each checkpoint's mean test accuracy (empty without an
    ``n_test`` column; NaN for a checkpoint whose test-set size is unknown)."""
    missing = {"task", "checkpoint", "accuracy"} - set(ground_truth.columns)
    if missing:
        raise ValueError(f"the ground truth lacks column(s) {', '.join(sorted(missing))}")
    gt = ground_truth.copy()
    if "seed" not in gt.columns:
        gt["seed"] = 0
    gt["task"] = gt["task"].astype(str)
    gt["checkpoint"] = gt["checkpoint"].astype(str)
    gt["accuracy"] = pd.to_numeric(gt["accuracy"], errors="coerce").astype(float)
    gt = gt[np.isfinite(gt["accuracy"].to_numpy())]
    dup = gt.duplicated(["task", "checkpoint", "seed"], keep=False)
    if dup.any():
        rows = gt.loc[dup, ["task", "checkpoint"]].agg("/".join, axis=1).unique()
        raise ValueError(
            f"the ground truth has several rows per (task, checkpoint, seed) for {_listing(rows)}; "
            "choose one protocol first"
        )
    order = {name: i for i, name in enumerate(checkpoint_order or [])}
    means: dict[str, pd.Series] = {}
    seeds: dict[str, pd.DataFrame] = {}
    errors: dict[str, pd.Series] = {}
    for task, rows in gt.groupby("task", sort=False):
        table = rows.pivot_table(index="seed", columns="checkpoint", values="accuracy", aggfunc="first")
        columns = sorted(
            table.columns, key=lambda c: (order.get(c, len(order)), list(table.columns).index(c))
        )
        table = table[columns]
        seeds[str(task)] = table
        means[str(task)] = mean = table.mean(axis=0)
        if "n_test" in gt.columns:
            sizes = pd.to_numeric(rows["n_test"], errors="coerce").groupby(rows["checkpoint"]).first()
            n = sizes.reindex(mean.index).to_numpy(dtype=float)
            p = np.clip(mean.to_numpy(dtype=float) / 100.0, 0.0, 1.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                se = np.where(n > 0, 100.0 * np.sqrt(p * (1.0 - p) / n), np.nan)
            errors[str(task)] = pd.Series(se, index=mean.index)
    return means, seeds, errors


def _control_row(
    name: str, kind: str, task: str, control: pd.Series, pretrained: pd.Series
) -> dict[str, Any]:
    """Are the controls (values: higher = predicted better) below every pre-trained checkpoint?"""
    c = control.to_numpy(dtype=float)
    p = pretrained.to_numpy(dtype=float)
    gap = p[None, :] - c[:, None]
    top = int(np.argmax(c))
    return {
        "measure": name,
        "kind": kind,
        "task": task,
        "n_controls": int(c.size),
        "n_pretrained": int(p.size),
        "below_all": bool(c.max() < p.min()),
        "ordered": float(np.mean((gap > 0) + 0.5 * (gap == 0))),
        "top_control": str(control.index[top]),
        "top_control_rank": int(1 + np.sum(p > c[top]) + np.sum(np.delete(c, top) > c[top])),
    }


_CONTROL_COLUMNS = [
    "measure",
    "kind",
    "task",
    "n_controls",
    "n_pretrained",
    "below_all",
    "ordered",
    "top_control",
    "top_control_rank",
]


def evaluate(
    scores: pd.DataFrame,
    ground_truth: pd.DataFrame,
    *,
    baselines: pd.DataFrame | None = None,
    higher_is_better: Mapping[str, bool] | None = None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    random_state: int = 0,
    ks: Sequence[int] = (1, 3),
    min_checkpoints: int = 3,
    reported: pd.DataFrame | None = None,
    tolerance: float = 0.0015,
    task_order: Sequence[str] | None = None,
    checkpoint_order: Sequence[str] | None = None,
    controls: Iterable[str] = (),
    tracks: Mapping[str, str] | None = None,
    kinds: Mapping[str, str] | None = None,
    notes: Sequence[str] = (),
) -> Evaluation:
    """Evaluate every measure of ``scores`` against ``ground_truth``.

    Parameters
    ----------
    scores : pandas.DataFrame
        Long table ``task, checkpoint, measure, score`` and optionally ``seconds`` (scoring time
        of that checkpoint, for the cost column); see :func:`read_scores`. May be empty when only
        baselines are evaluated.
    ground_truth : pandas.DataFrame
        Long table ``task, checkpoint, seed, accuracy`` of one protocol; an optional ``n_test``
        column (test-set size) adds the test set's binomial noise to the interval over seeds.
    baselines : pandas.DataFrame, optional
        Indexed by checkpoint, columns among ``num_parameters`` and ``source_accuracy``; each is
        evaluated as a target-blind score (higher = predicted better).
    higher_is_better : mapping, optional
        Measure -> whether a higher score predicts better transfer (default True); scores of
        lower-is-better measures are negated before evaluation.
    n_bootstrap : int, default 1000
        Bootstrap resamples for the intervals (0 = no intervals, hence no verdict).
    confidence : float, default 0.95
    random_state : int, default 0
        Seed of the resampled indices (the same resamples for every row).
    ks : sequence of int, default (1, 3)
        The k of Rel@k and hit@k.
    min_checkpoints : int, default 3
        A task with fewer evaluable checkpoints for a row (or for two rows in common, in a
        comparison) is skipped for it (with a note).
    reported : pandas.DataFrame, optional
        Published statistics (``task, measure, statistic, value``) to set beside the recomputed
        ones (:func:`compare_reported`).
    tolerance : float, default 0.0015
        Recomputed and reported values further apart than this are flagged.
    task_order, checkpoint_order : sequence of str, optional
        Display order (and the order of the resampled checkpoint arrays).
    controls : iterable of str
        Random-initialised control checkpoints: left out of every statistic, mean, comparison
        and of the ground truth's seed agreement and reliability, and checked separately
        (:attr:`Evaluation.controls`).
    tracks : mapping, optional
        Task -> track, for the per-track means and comparisons; default: the groups of tasks
        linked by shared checkpoints (:func:`ckptrank.bench.suite.infer_tracks`).
    kinds : mapping, optional
        Score-table measure -> its ``kind`` in the result (default ``"measure"``); the harness
        marks the answer of ``ckptrank rank`` as ``"default"``. Rows of another kind than
        ``"measure"`` come first in the summary.
    notes : sequence of str
        Notes to carry into the result.

    Returns
    -------
    Evaluation

    Raises
    ------
    ValueError
        Duplicate score rows, bad options, or no (measure or baseline, task) pair with at least
        ``min_checkpoints`` checkpoints.

    Notes
    -----
    * Scores for (task, checkpoint) pairs without ground truth are left out, and so are
      ground-truth checkpoints a measure did not score: each row is evaluated on the
      intersection, with a note. Rows are therefore evaluated on different pairs; their own
      means are shown with their task count, and every comparison of two rows is computed on
      the pairs both have (:attr:`Evaluation.comparisons`).
    * NaN scores (a measure failed or was skipped for a checkpoint) are left out with a note.
    * Score ties are handled by scipy in the correlations; for Rel@k, hit@k and regret they are
      broken pessimistically (lowest ground truth first), noted.
    * Baselines are evaluated on every checkpoint of a task that has a baseline value.
    """
    _check_options(n_bootstrap, confidence, min_checkpoints, ks)
    notes = list(notes)
    hib = dict(higher_is_better or {})
    if scores is None or len(scores) == 0:
        scores = pd.DataFrame(columns=["task", "checkpoint", "measure", "score"])
    missing = {"task", "checkpoint", "measure", "score"} - set(scores.columns)
    if missing:
        raise ValueError(f"the score table lacks column(s) {', '.join(sorted(missing))}; see read_scores")
    sc = scores.copy()
    for column in ("task", "checkpoint", "measure"):
        sc[column] = sc[column].astype(str)
    sc["score"] = pd.to_numeric(sc["score"], errors="coerce").astype(float)
    dup = sc.duplicated(["task", "checkpoint", "measure"], keep=False)
    if dup.any():
        rows = sc.loc[dup, ["task", "checkpoint", "measure"]].agg("/".join, axis=1).unique()
        raise ValueError(f"the score table has duplicate (task, checkpoint, measure) rows: {_listing(rows)}")

    means, seed_tables, test_errors = _truth_tables(ground_truth, checkpoint_order)
    partial_noise: set[str] = set()
    tasks = [t for t in (task_order or []) if t in means] + [t for t in means if t not in (task_order or [])]
    if tracks is None:
        tracks = infer_tracks(ground_truth, tasks)
    task_track = {task: str(tracks.get(task, "") or "") for task in tasks}
    control_set = {str(c) for c in controls}
    resampler = _Resampler(int(n_bootstrap), int(random_state))
    entries: list[_Entry] = []
    pair_rows: list[pd.DataFrame] = []
    control_rows: list[dict[str, Any]] = []

    # ground truth without scores, scores without ground truth
    known_pairs = {(task, name) for task, truth in means.items() for name in truth.index}
    has_truth = np.array(
        [pair in known_pairs for pair in zip(sc["task"], sc["checkpoint"], strict=True)], dtype=bool
    )
    no_truth = sc[~has_truth] if len(sc) else sc
    if len(no_truth):
        for task, rows in no_truth.groupby("task", sort=False):
            names = list(dict.fromkeys(rows["checkpoint"]))
            if task not in means:
                notes.append(f"task {task}: no ground truth; its scores were left out")
            else:
                notes.append(
                    f"task {task}: no ground truth for {len(names)} scored checkpoint(s) "
                    f"({_listing(names)}); evaluated on the checkpoints that have both"
                )

    kinds = dict(kinds or {})
    measures = list(dict.fromkeys(sc["measure"]))
    measures = [m for m in measures if kinds.get(m, "measure") != "measure"] + [
        m for m in measures if kinds.get(m, "measure") == "measure"
    ]
    single_seed_tasks = [task for task in tasks if seed_tables[task].shape[0] < 2]
    present_controls = [
        c for c in dict.fromkeys(c for t in tasks for c in means[t].index) if c in control_set
    ]
    for task in tasks:
        truth = means[task]
        is_control = truth.index.isin(list(control_set))
        if is_control.any() and (~is_control).any():
            control_rows.append(_control_row(TRUTH_ROW, "truth", task, truth[is_control], truth[~is_control]))

    def run_one(name: str, kind: str, task: str, values: pd.Series, raw: pd.Series) -> None:
        truth = means[task]
        where = f"{name} on {task}"
        values = values[values.index.isin(truth.index)]
        nan = values.index[~np.isfinite(values.to_numpy(dtype=float))]
        if len(nan) and kind != "baseline":
            notes.append(f"{where}: no score for {len(nan)} checkpoint(s) ({_listing(nan)}); left out")
        values = values[np.isfinite(values.to_numpy(dtype=float))]
        if kind != "baseline":
            unscored = [c for c in truth.index if c not in values.index and c not in nan]
            if unscored:
                notes.append(
                    f"{where}: {len(unscored)} checkpoint(s) with ground truth were not scored "
                    f"({_listing(unscored)}); evaluated on {len(values)}"
                )
        is_control = values.index.isin(list(control_set))
        if is_control.any() and (~is_control).any():
            control_rows.append(_control_row(name, kind, task, values[is_control], values[~is_control]))
        ordered = [c for c in truth.index if c in values.index]
        names = tuple(c for c in ordered if c not in control_set)
        spread = seed_tables[task][ordered].std(axis=0, ddof=1) if seed_tables[task].shape[0] > 1 else None
        pair_rows.append(
            pd.DataFrame(
                {
                    "measure": name,
                    "kind": kind,
                    "task": task,
                    "checkpoint": ordered,
                    "score": raw.loc[ordered].to_numpy(dtype=float),
                    "truth": truth.loc[ordered].to_numpy(dtype=float),
                    "truth_std": spread.to_numpy(dtype=float) if spread is not None else np.nan,
                    "control": [c in control_set for c in ordered],
                }
            )
        )
        if len(names) < min_checkpoints:
            notes.append(
                f"{where}: skipped, only {len(names)} "
                + ("pre-trained " if control_set else "")
                + f"checkpoint(s) with both a score and ground truth (need {min_checkpoints})"
            )
            return
        s = values.loc[list(names)].to_numpy(dtype=float)
        a = truth.loc[list(names)].to_numpy(dtype=float)
        point = _point_statistics(s, a, ks, notes, where)
        boot: dict[str, np.ndarray] = {}
        seed_boot: dict[str, np.ndarray] | None = None
        if n_bootstrap:
            idx = resampler.checkpoints(names)
            boot = batch_statistics(s[idx], a[idx], ks=ks)
            table = seed_tables[task][list(names)]
            complete = table.dropna(axis=0, how="any").to_numpy(dtype=float)
            se = test_errors[task].loc[list(names)].to_numpy(dtype=float) if task in test_errors else None
            noisy = se is not None and bool(np.isfinite(se).any())
            if noisy and not np.isfinite(se).all():
                partial_noise.add(task)  # checkpoints without a test-set size get no test noise
                se = np.nan_to_num(se, nan=0.0)
            if complete.shape[0] >= 2 or (noisy and complete.shape[0] >= 1):
                draws = resampler.seeds(task, complete.shape[0])
                truth_b = complete[draws].mean(axis=1)
                if noisy:
                    truth_b = truth_b + resampler.test_noise(task, names) * se
                seed_boot = batch_statistics(np.broadcast_to(s, truth_b.shape), truth_b, ks=ks)
        entries.append(_Entry(name, kind, task, names, point, boot, seed_boot, s, a))

    for measure in measures:
        sign = 1.0 if hib.get(measure, True) else -1.0
        rows = sc[sc["measure"] == measure]
        for task in tasks:
            task_rows = rows[rows["task"] == task]
            if task_rows.empty:
                continue
            raw = task_rows.set_index("checkpoint")["score"]
            run_one(measure, kinds.get(measure, "measure"), task, sign * raw, raw)
    baseline_names: list[str] = []
    if baselines is not None and len(baselines):
        base = baselines.copy()
        if "checkpoint" in base.columns:
            base = base.set_index("checkpoint")
        base.index = base.index.astype(str)
        for column in BASELINE_COLUMNS:
            if column not in base.columns:
                continue
            values = pd.to_numeric(base[column], errors="coerce").astype(float)
            if not np.isfinite(values.to_numpy()).any():
                continue
            baseline_names.append(column)
            for task in tasks:
                known = values[np.isfinite(values.to_numpy())]
                run_one(column, "baseline", task, known, known)
    if not entries:
        raise ValueError(
            "nothing to evaluate: no measure or baseline has scores and ground truth for at least "
            f"{min_checkpoints} checkpoints on any task" + (f" ({notes[-1]})" if notes else "")
        )
    if single_seed_tasks and n_bootstrap:
        which = (
            "every task" if len(single_seed_tasks) == len(tasks) else f"tasks {_listing(single_seed_tasks)}"
        )
        with_noise = [task for task in single_seed_tasks if task in test_errors]
        notes.append(
            f"single ground-truth seed on {which}: no seed agreement or reliability there, and "
            + (
                "its interval over seeds holds the test set's noise only"
                if len(with_noise) == len(single_seed_tasks)
                else "no interval over seeds"
                if not with_noise
                else f"no interval over seeds except the test set's noise on {_listing(with_noise)}"
            )
        )
    if partial_noise:
        notes.append(
            f"test-set noise left out for the checkpoints without a test-set size (n_test) on "
            f"{_listing(sorted(partial_noise))}"
        )
    if present_controls:
        notes.append(
            f"{len(present_controls)} random-initialised control(s) ({_listing(present_controls)}) are left "
            "out of every headline statistic, mean, comparison, seed agreement and reliability; the sanity "
            "check asks whether each row scores them below every pre-trained checkpoint"
        )

    comparer = _Comparer(
        entries,
        resampler,
        n_bootstrap=int(n_bootstrap),
        confidence=float(confidence),
        min_checkpoints=int(min_checkpoints),
    )
    per_task, summary, comparisons = _aggregate(
        entries, measures, baseline_names, sc, confidence, tasks, task_track, comparer
    )
    controls_table = pd.DataFrame(control_rows, columns=_CONTROL_COLUMNS)
    summary = _add_control_summary(summary, controls_table)
    agreement = _seed_reliability(seed_tables, tasks, control_set, task_track)
    comparison = None
    if reported is not None and len(reported):
        comparison = compare_reported(per_task, reported, tolerance=tolerance)
    pairs = pd.concat(pair_rows, ignore_index=True) if pair_rows else pd.DataFrame()
    config = {
        "n_bootstrap": int(n_bootstrap),
        "confidence": float(confidence),
        "random_state": int(random_state),
        "ks": [int(k) for k in ks],
        "min_checkpoints": int(min_checkpoints),
        "tolerance": float(tolerance),
        "higher_is_better": {m: bool(hib.get(m, True)) for m in measures},
        "controls": present_controls,
        "bootstrap": "percentile; checkpoints resampled with replacement, the same draws for every row and "
        "every task evaluated on the same checkpoints; ground-truth seeds resampled per task with scores "
        "fixed",
        "comparisons": "paired: on the (task, checkpoint) pairs both rows have, the same checkpoint "
        "resamples for both; diff of mean weighted tau, its percentile interval, P(diff > 0); a row beats "
        "another only when the interval lies above 0",
        "reliability": "split-half over seeds (every split into halves of n//2 and n - n//2 seeds; mean "
        "weighted tau between the half means), Spearman-Brown corrected to all n seeds",
    }
    return Evaluation(
        per_task=per_task,
        summary=summary,
        comparisons=comparisons,
        seed_agreement=agreement,
        controls=controls_table,
        pairs=pairs,
        tracks=task_track,
        reported=comparison,
        notes=list(dict.fromkeys(notes)),
        config=config,
    )


def _seed_reliability(
    seed_tables: Mapping[str, pd.DataFrame],
    tasks: Sequence[str],
    control_set: set[str],
    task_track: Mapping[str, str],
) -> pd.DataFrame:
    """Per task: seed agreement and split-half reliability on the complete pre-trained checkpoints."""
    rows = []
    for task in tasks:
        table = seed_tables[task]
        table = table[[c for c in table.columns if c not in control_set]].dropna(axis=1, how="any")
        n_seeds = int(table.shape[0])
        values = table.to_numpy(dtype=float)
        defined = n_seeds >= 2 and table.shape[1] >= 2
        rows.append(
            {
                "task": task,
                "track": task_track.get(task, ""),
                "n_seeds": n_seeds,
                "n_checkpoints": int(table.shape[1]),
                "seed_agreement": stats.seed_agreement(values) if defined else math.nan,
                "reliability": stats.split_half_reliability(values) if defined else math.nan,
            }
        )
    return pd.DataFrame(
        rows, columns=["task", "track", "n_seeds", "n_checkpoints", "seed_agreement", "reliability"]
    )


def _add_control_summary(summary: pd.DataFrame, controls: pd.DataFrame) -> pd.DataFrame:
    below: dict[str, int] = {}
    total: dict[str, int] = {}
    for name, rows in controls.groupby("measure", sort=False):
        below[str(name)] = int(rows["below_all"].astype(bool).sum())
        total[str(name)] = len(rows)
    summary = summary.copy()
    summary["controls_below"] = [below.get(str(n), 0) if str(n) in total else math.nan for n in summary.index]
    summary["controls_tasks"] = [total.get(str(n), 0) for n in summary.index]
    return summary


def _aggregate(
    entries: list[_Entry],
    measures: Sequence[str],
    baselines: Sequence[str],
    scores: pd.DataFrame,
    confidence: float,
    tasks: Sequence[str],
    task_track: Mapping[str, str],
    comparer: _Comparer,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    by_name: dict[str, list[_Entry]] = {}
    for entry in entries:
        by_name.setdefault(entry.measure, []).append(entry)
    statistics = list(entries[0].point)
    rows: list[dict[str, Any]] = []
    track_names = list(dict.fromkeys(task_track[t] for t in tasks))
    track_names = track_names if len(track_names) > 1 else []
    scopes = [(MEAN, set(tasks))] + [
        (f"{_TRACK_MEAN}{track}", {t for t in tasks if task_track[t] == track}) for track in track_names
    ]

    def interval(values: np.ndarray | None) -> tuple[float, float]:
        return _interval(values, confidence) if values is not None and values.size else (math.nan, math.nan)

    for name, group in by_name.items():
        kind = group[0].kind
        for entry in group:
            for stat in statistics:
                low, high = interval(entry.boot.get(stat))
                slow, shigh = interval(entry.seed_boot.get(stat) if entry.seed_boot else None)
                rows.append(
                    {
                        "measure": name,
                        "kind": kind,
                        "task": entry.task,
                        "aggregate": False,
                        "statistic": stat,
                        "value": entry.point[stat],
                        "ci_low": low,
                        "ci_high": high,
                        "seed_ci_low": slow,
                        "seed_ci_high": shigh,
                        "n_checkpoints": len(entry.checkpoints),
                        "n_tasks": 1,
                    }
                )
        for label, scope in scopes:
            members = [e for e in group if e.task in scope]
            if not members:
                continue
            for stat in statistics:
                point = np.array([e.point[stat] for e in members])
                value = float(_nanmean(point, 0))
                boot = np.column_stack([e.boot[stat] for e in members]) if members[0].boot else None
                mean_boot = _nanmean(boot, 1) if boot is not None else None
                seed_cols = [e.seed_boot[stat] for e in members if e.seed_boot is not None]
                seed_mean = (
                    _nanmean(np.column_stack(seed_cols), 1) if len(seed_cols) == len(members) else None
                )
                low, high = interval(mean_boot)
                slow, shigh = interval(seed_mean)
                rows.append(
                    {
                        "measure": name,
                        "kind": kind,
                        "task": label,
                        "aggregate": True,
                        "statistic": stat,
                        "value": value,
                        "ci_low": low,
                        "ci_high": high,
                        "seed_ci_low": slow,
                        "seed_ci_high": shigh,
                        "n_checkpoints": int(np.median([len(e.checkpoints) for e in members])),
                        "n_tasks": int(np.isfinite(point).sum()),
                    }
                )
    per_task = pd.DataFrame(rows)
    order = {t: i for i, t in enumerate([*tasks, *(label for label, _ in scopes)])}
    names = [m for m in measures if m in by_name] + [b for b in baselines if b in by_name]
    rank = {m: i for i, m in enumerate(names)}
    stat_rank = {s: i for i, s in enumerate(statistics)}
    per_task = per_task.sort_values(
        ["measure", "task", "statistic"],
        key=lambda col: col.map(
            rank if col.name == "measure" else order if col.name == "task" else stat_rank
        ),
    ).reset_index(drop=True)

    seconds = {}
    if "seconds" in scores.columns:
        for name, rows_m in scores.groupby("measure", sort=False):
            values = rows_m["seconds"].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            seconds[name] = float(np.median(values)) if values.size else math.nan

    # paired comparisons of every two rows, overall and per track
    comparison_rows = []
    kinds = {name: by_name[name][0].kind for name in names}
    for label, scope in scopes:
        scope_name = "all" if label == MEAN else label[len(_TRACK_MEAN) :]
        scope_tasks = [t for t in tasks if t in scope]
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                result = comparer.compare(a, b, scope_tasks)
                if result is not None:
                    comparison_rows.append(
                        {
                            "scope": scope_name,
                            "a": a,
                            "b": b,
                            "kind_a": kinds[a],
                            "kind_b": kinds[b],
                            **result,
                        }
                    )
    comparisons = pd.DataFrame(comparison_rows, columns=_COMPARISON_COLUMNS)

    evaluated_tasks = {e.task for e in entries}
    summary_rows = []
    for name in names:
        group = by_name[name]
        kind = group[0].kind
        mine = per_task[(per_task["measure"] == name) & per_task["aggregate"]]
        mean_rows = mine[mine["task"] == MEAN].set_index("statistic")
        wt = mean_rows.loc["weighted_tau"]
        own = {e.task for e in group if math.isfinite(e.point["weighted_tau"])}
        row: dict[str, Any] = {
            "measure": name,
            "kind": kind,
            "n_tasks": int(wt["n_tasks"]),
            "n_pairs": int(sum(len(e.checkpoints) for e in group)),
            "covers_all_tasks": own == evaluated_tasks,
            "weighted_tau": wt["value"],
            "weighted_tau_ci_low": wt["ci_low"],
            "weighted_tau_ci_high": wt["ci_high"],
            "weighted_tau_seed_ci_low": wt["seed_ci_low"],
            "weighted_tau_seed_ci_high": wt["seed_ci_high"],
        }
        for stat in statistics:
            if stat != "weighted_tau":
                row[stat] = mean_rows.loc[stat, "value"]
        for track in track_names:
            hit = mine[(mine["task"] == f"{_TRACK_MEAN}{track}") & (mine["statistic"] == "weighted_tau")]
            row[f"weighted_tau:{track}"] = float(hit["value"].iloc[0]) if len(hit) else math.nan
            row[f"n_tasks:{track}"] = int(hit["n_tasks"].iloc[0]) if len(hit) else 0
        row["seconds"] = seconds.get(name, math.nan) if kind != "baseline" else 0.0
        row.update(
            best_baseline=None,
            best_baseline_tau=math.nan,
            weighted_tau_common=math.nan,
            diff_vs_baseline=math.nan,
            diff_ci_low=math.nan,
            diff_ci_high=math.nan,
            p_beats_baseline=math.nan,
            n_common_tasks=0,
            n_common_pairs=0,
            verdict=None,
            beats_baseline=None,
            marked=False,
        )
        if kind != "baseline":
            best: dict[str, Any] | None = None
            best_name = None
            for base in baselines:
                if base not in by_name:
                    continue
                result = comparer.compare(name, base, list(tasks))
                if result is not None and (best is None or result["tau_b"] > best["tau_b"]):
                    best, best_name = result, base
            if best is not None:
                beats = best["verdict"] == "better"
                row.update(
                    best_baseline=best_name,
                    best_baseline_tau=best["tau_b"],
                    weighted_tau_common=best["tau_a"],
                    diff_vs_baseline=best["diff"],
                    diff_ci_low=best["ci_low"],
                    diff_ci_high=best["ci_high"],
                    p_beats_baseline=best["p_a_better"],
                    n_common_tasks=best["n_tasks"],
                    n_common_pairs=best["n_pairs"],
                    verdict=best["verdict"],
                    beats_baseline=beats,
                    marked=not beats,
                )
        summary_rows.append(row)
    summary = pd.DataFrame(summary_rows).set_index("measure")
    return per_task, summary, comparisons


_COMPARISON_COLUMNS = [
    "scope",
    "a",
    "b",
    "kind_a",
    "kind_b",
    "n_tasks",
    "n_pairs",
    "tau_a",
    "tau_b",
    "diff",
    "ci_low",
    "ci_high",
    "p_a_better",
    "p_b_better",
    "verdict",
]


# ------------------------------------------------------------------------------------------------
# Reported values


def _canonical_statistic(name: str) -> str:
    key = normalize_name(name)
    if key in _STAT_ALIASES:
        return _STAT_ALIASES[key]
    for stat in STATISTICS:
        if normalize_name(stat) == key:
            return stat
    return str(name)


def compare_reported(
    per_task: pd.DataFrame, reported: pd.DataFrame, *, tolerance: float = 0.0015
) -> pd.DataFrame:
    """Recomputed vs reported statistics, side by side.

    Parameters
    ----------
    per_task : pandas.DataFrame
        :attr:`Evaluation.per_task`.
    reported : pandas.DataFrame
        Columns ``task``, ``measure``, ``statistic``, ``value``; measure and statistic names are
        matched case- and punctuation-insensitively (``"N-LEEP"`` = ``"nleep"``, ``"Weighted Tau"``
        = ``weighted_tau``).
    tolerance : float
        Largest ``|recomputed - reported|`` that counts as agreement.

    Returns
    -------
    pandas.DataFrame
        Columns ``task``, ``measure`` (as reported), ``statistic``, ``reported``, ``recomputed``
        (NaN when the measure was not evaluated on that task), ``diff`` (recomputed - reported),
        ``agrees`` (True/False, or None when nothing was recomputed) and ``flagged`` (disagrees).
    """
    recomputed = per_task[per_task["kind"] == "measure"]
    lookup: dict[tuple[str, str, str], float] = {}
    for row in recomputed.itertuples(index=False):
        lookup[(normalize_name(row.measure), str(row.task), str(row.statistic))] = float(row.value)
    rows = []
    for row in reported.itertuples(index=False):
        stat = _canonical_statistic(str(row.statistic))
        value = float(row.value)
        again = lookup.get((normalize_name(row.measure), str(row.task), stat), math.nan)
        diff = again - value if math.isfinite(again) else math.nan
        agrees = None if not math.isfinite(diff) else bool(abs(diff) <= tolerance)
        rows.append(
            {
                "task": str(row.task),
                "measure": str(row.measure),
                "statistic": stat,
                "reported": value,
                "recomputed": again,
                "diff": diff,
                "agrees": agrees,
                "flagged": agrees is False,
            }
        )
    return pd.DataFrame(
        rows, columns=["task", "measure", "statistic", "reported", "recomputed", "diff", "agrees", "flagged"]
    )


def reported_summary(evaluation: Evaluation) -> pd.DataFrame:
    """Per reported (measure, statistic): the mean over tasks, reported and recomputed, beside the baselines.

    For the weighted tau, every static baseline's mean over the *same tasks* is added (a column
    named after the baseline), and the best of them, so that a published number can be judged
    against the target-blind baselines even when no score table exists to recompute it. Without
    scores this is a comparison of means, not a paired one: the reported values come without
    the per-checkpoint scores a paired interval needs.

    Returns
    -------
    pandas.DataFrame
        Columns ``measure``, ``statistic``, ``n_tasks``, ``reported``, ``recomputed`` (NaN unless
        every task was recomputed), ``best_baseline``, ``best_baseline_value``, ``beats_baseline``
        (None when no baseline applies), then one column per evaluated baseline (its mean weighted
        tau on the same tasks; NaN when it misses one of them). Empty without reported values.
    """
    columns = [
        "measure",
        "statistic",
        "n_tasks",
        "reported",
        "recomputed",
        "best_baseline",
        "best_baseline_value",
        "beats_baseline",
        *evaluation.baselines,
    ]
    rep = evaluation.reported
    if rep is None or rep.empty:
        return pd.DataFrame(columns=columns)
    per_task = evaluation.per_task
    base = per_task[(per_task["kind"] == "baseline") & ~per_task["aggregate"].astype(bool)]
    rows = []
    for (measure, statistic), group in rep.groupby(["measure", "statistic"], sort=False):
        tasks = set(group["task"])
        recomputed = group["recomputed"].to_numpy(dtype=float)
        row: dict[str, Any] = {
            "measure": measure,
            "statistic": statistic,
            "n_tasks": len(tasks),
            "reported": float(group["reported"].mean()),
            "recomputed": float(recomputed.mean()) if np.isfinite(recomputed).all() else math.nan,
            "best_baseline": None,
            "best_baseline_value": math.nan,
            "beats_baseline": None,
        }
        row.update(dict.fromkeys(evaluation.baselines, math.nan))
        if statistic == "weighted_tau":
            rows_b = base[(base["statistic"] == statistic) & base["task"].isin(tasks)]
            best_name, best_value = None, -math.inf
            for name, values in rows_b.groupby("measure", sort=False):
                if values["task"].nunique() == len(tasks):
                    value = float(values["value"].mean())
                    row[str(name)] = value
                    if math.isfinite(value) and value > best_value:
                        best_name, best_value = str(name), value
            if best_name is not None:
                row.update(
                    best_baseline=best_name,
                    best_baseline_value=best_value,
                    beats_baseline=bool(row["reported"] > best_value),
                )
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


# ------------------------------------------------------------------------------------------------
# Suites


def align_scores(
    scores: pd.DataFrame, suite: Suite, *, on_unknown: Literal["error", "ignore"] = "error"
) -> tuple[pd.DataFrame, list[str]]:
    """Map the task and checkpoint names of a score table onto the suite's names.

    Names match exactly, through the suite's aliases, or ignoring case and punctuation.

    Returns
    -------
    (scores, notes)

    Raises
    ------
    ValueError
        Names the suite does not know and ``on_unknown="error"`` (the message lists them with the
        closest suite names), or a duplicate after mapping.
    """
    if on_unknown not in ("error", "ignore"):
        raise ValueError(f"on_unknown must be 'error' or 'ignore', got {on_unknown!r}")
    import difflib

    notes: list[str] = []
    out = scores.copy()
    problems = []
    for column, resolve, known in (
        ("task", suite.resolve_task, list(suite.tasks)),
        ("checkpoint", suite.resolve_checkpoint, list(suite.checkpoints)),
    ):
        mapping = {name: resolve(name) for name in dict.fromkeys(out[column].astype(str))}
        unknown = [name for name, target in mapping.items() if target is None]
        if unknown:
            hints = []
            for name in unknown[:6]:
                close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
                hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            more = f" and {len(unknown) - 6} more" if len(unknown) > 6 else ""
            text = f"{len(unknown)} unknown {column}(s): {', '.join(hints)}{more}"
            problems.append((column, unknown, text, known))
        out[column] = out[column].astype(str).map(lambda n, m=mapping: m[n] if m[n] is not None else n)
    if problems:
        if on_unknown == "error":
            detail = "; ".join(
                f"{text}; suite {column}s: {_listing(known, 12)}" for column, _, text, known in problems
            )
            raise ValueError(
                f"the scores name {detail}. Fix the names, or pass --ignore-unknown "
                "(on_unknown='ignore') to drop them"
            )
        for column, unknown, text, _ in problems:
            notes.append(f"ignored {text} (not in suite {suite.name})")
            out = out[~out[column].isin(unknown)]
    dup = out.duplicated(["task", "checkpoint", "measure"], keep=False)
    if dup.any():
        rows = out.loc[dup, ["task", "checkpoint", "measure"]].agg("/".join, axis=1).unique()
        raise ValueError(f"after matching names to suite {suite.name}, scores repeat for {_listing(rows)}")
    return out.reset_index(drop=True), notes


def evaluate_suite(
    suite: Suite,
    scores: pd.DataFrame | None,
    *,
    protocol: str | None = None,
    higher_is_better: Mapping[str, bool] | None = None,
    on_unknown: Literal["error", "ignore"] = "error",
    extra_baselines: pd.DataFrame | None = None,
    include_reported: bool = True,
    tasks: Sequence[str] | None = None,
    **options: Any,
) -> Evaluation:
    """Evaluate a score table against a suite's ground truth, baselines and reported values.

    Parameters
    ----------
    suite : Suite
    scores : pandas.DataFrame or None
        Long score table (see :func:`read_scores`); None or empty evaluates only the baselines.
    protocol : str, optional
        Ground-truth protocol (default: the suite's).
    higher_is_better : mapping, optional
        Per measure; registered measures default to their spec, others to True.
    on_unknown : {"error", "ignore"}
        What to do with task/checkpoint names the suite does not know.
    extra_baselines : pandas.DataFrame, optional
        Baseline values collected while scoring (e.g. parameter counts of loaded checkpoints),
        used where the suite has none.
    include_reported : bool
        Compare with the suite's reported statistics.
    tasks : sequence of str, optional
        Evaluate only these tasks.
    **options
        Passed to :func:`evaluate` (n_bootstrap, confidence, random_state, ks, min_checkpoints,
        tolerance).

    Notes
    -----
    The suite's random-initialised controls (:meth:`~ckptrank.bench.suite.Suite.controls`) are
    kept out of the headline statistics and checked separately; its tracks
    (:meth:`~ckptrank.bench.suite.Suite.task_tracks`) give the per-track means and comparisons.
    """
    notes = list(suite.notes)
    if scores is None:
        scores = pd.DataFrame(columns=["task", "checkpoint", "measure", "score"])
    if len(scores):
        scores, more = align_scores(scores, suite, on_unknown=on_unknown)
        notes.extend(more)
    hib: dict[str, bool] = {}
    from ckptrank.measures import get_measure, list_measures

    registered = set(list_measures())
    for measure in dict.fromkeys(scores["measure"].astype(str)) if len(scores) else []:
        if higher_is_better and measure in higher_is_better:
            hib[measure] = bool(higher_is_better[measure])
        elif measure in registered:
            hib[measure] = get_measure(measure).higher_is_better
        else:
            hib[measure] = True
    baselines = suite.baselines
    if extra_baselines is not None and len(extra_baselines):
        extra = extra_baselines.copy()
        extra.index = extra.index.astype(str)
        baselines = extra if baselines is None else baselines.combine_first(extra)
    if baselines is not None and len(baselines):
        # source accuracy only among checkpoints that share one source label set (per track)
        baselines = suite.like_with_like_baselines(baselines)
        if baselines is not None:
            notes.extend(baselines.attrs.get("notes", []))
    chosen = suite.resolve_protocol(protocol)
    if len(suite.protocols) > 1:
        notes.append(f"ground truth of protocol {chosen!r} (suite protocols: {', '.join(suite.protocols)})")
    truth = suite.truth(chosen)
    reported = suite.reported if include_reported else None
    if tasks is not None:
        wanted = []
        for name in tasks:
            task = suite.resolve_task(name)
            if task is None:
                raise ValueError(
                    f"suite {suite.name!r} has no task {name!r}; tasks: {', '.join(suite.tasks)}"
                )
            wanted.append(task)
        truth = truth[truth["task"].isin(wanted)]
        if len(scores):
            scores = scores[scores["task"].isin(wanted)]
        if reported is not None:
            reported = reported[reported["task"].isin(wanted)]
    return evaluate(
        scores,
        truth,
        baselines=baselines,
        higher_is_better=hib,
        reported=reported,
        task_order=list(suite.tasks),
        checkpoint_order=list(suite.checkpoints),
        controls=suite.controls(),
        tracks=suite.task_tracks(),
        notes=notes,
        **options,
    )
