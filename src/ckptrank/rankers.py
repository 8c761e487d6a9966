"""Rankers: how a table of per-checkpoint scores and descriptors becomes one predicted order.

A ranker sees, for one target task, one row per checkpoint: the scores of some transferability
measures (NaN where a measure did not score the checkpoint) and target-blind descriptors (the
parameter count of the part of the network used, whether the checkpoint has a classification
head). It returns one number per checkpoint, higher = predicted to fine-tune better.

:class:`PairwiseRanker` is the learned ranker: within a task every feature is turned into a
centred rank in [-1, 1] (so that a model fitted on some tasks applies to others whatever the
scale of a measure there), a missing value is 0 (the middle), and a logistic regression on the
differences of two checkpoints' features predicts which of them fine-tunes better (the
pairwise approach of RankNet / ranking SVMs, fitted with scikit-learn). Its prediction is the
linear score ``w . x``, so a ranker is a weighted average of rank positions whose weights can be
read, printed and checked. Two options of the fit: per-task weights (so that, for example, every
benchmark suite weighs the same whatever its number of tasks), and weights constrained to be
non-negative for chosen features (a measure or a size is a higher-predicts-better signal; a
negative weight beside a correlated measure is a fit to collinearity), solved with scipy's
L-BFGS-B on the same penalised loss as scikit-learn's. It is saved as a small JSON file (weights,
features, the data it was fitted on and its held-out figures), never as a pickle.

:class:`AgreementRanker` is label-free: on the task it ranks, it weighs each feature by its
agreement with the others, read from their within-task rank correlations (the leading
eigenvector of the correlation matrix, in the spirit of the spectral meta-learner of Parisi et
al., PNAS 2014). Nothing in it is fitted on a benchmark task, so whether the size of a network
helps is decided on the user's own task: by how well the size agrees with what the measures say
about the target data there. It is the default ranker (``benchmarks/RESULTS.md`` gives the
pre-registered comparison that chose it over the learned pairwise ranker).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "HAS_HEAD",
    "PARAMETERS",
    "P_BEST_SCALES",
    "AgreementRanker",
    "PairwiseRanker",
    "Ranker",
    "centred_ranks",
    "feature_matrix",
    "probability_best",
    "ranker_from_dict",
    "shortlist_size",
    "size_usable",
]

#: Descriptor features (besides measure names).
PARAMETERS = "log_parameters"
HAS_HEAD = "has_head"


def centred_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks of the finite values scaled to [-1, 1] (lowest -1, highest +1, ties averaged); NaN -> 0.

    With one finite value (or all equal) every finite value gets 0.

    Parameters
    ----------
    values : ndarray of shape (n,)

    Returns
    -------
    ndarray of shape (n,)

    Examples
    --------
    >>> centred_ranks(np.array([3.0, 1.0, np.nan, 2.0])).tolist()
    [1.0, -1.0, 0.0, 0.0]
    """
    from scipy.stats import rankdata

    values = np.asarray(values, dtype=np.float64)
    out = np.zeros(values.shape)
    finite = np.isfinite(values)
    m = int(finite.sum())
    if m >= 2:
        ranks = rankdata(values[finite], method="average")
        out[finite] = 2.0 * (ranks - 1.0) / (m - 1.0) - 1.0
    return out


#: ``p_best`` scales (:func:`probability_best`): the score in rank steps (the rule of ranker files written
#: before round 8, benchmarks/RESULTS.md) or as it is, in standardised units.
P_BEST_SCALES = ("rank_steps", "standardised")


def probability_best(scores: np.ndarray, temperature: float, scale: str = "rank_steps") -> np.ndarray:
    """Probability that each checkpoint is the best: ``softmax(score x k / temperature)``.

    ``scale="rank_steps"``: ``k = (m - 1) / 2`` for ``m`` checkpoints. A pairwise ranker's score is
    a weighted sum of centred ranks in [-1, 1], whose step between two neighbours is
    ``2 / (m - 1)``; the multiplier puts the score in rank steps, which assumes that the ranker's
    error, counted in rank steps, does not grow with the zoo. ``scale="standardised"``: ``k = 1``.
    The agreement ranker's score is a projection of standardised ranks, already free of the zoo's
    size; its held-out accuracy is a rank correlation, which does not depend on ``m`` either, so
    its error counted in rank steps grows in proportion to ``m``, and the shortlist with it (round
    8, benchmarks/RESULTS.md). Its spread grows with the leading eigenvalue (how strongly and how
    many features agree), so ``p_best`` is sharper where the features agree more.

    Parameters
    ----------
    scores : ndarray of shape (m,)
        Ranker scores of the checkpoints that ran (finite).
    temperature : float
        Positive.
    scale : {"rank_steps", "standardised"}
        What the temperature was fitted for (a ranker file's ``info["p_best"]["scale"]``; files
        without one use ``"rank_steps"``).

    Returns
    -------
    ndarray of shape (m,)
        Sums to 1.

    Raises
    ------
    ValueError
        An unknown ``scale``.

    Examples
    --------
    >>> probability_best(np.array([1.0, -1.0]), 1.0).round(4).tolist()
    [0.7311, 0.2689]
    >>> probability_best(np.array([1.0, -1.0, 0.0]), 1.0, scale="standardised").round(4).tolist()
    [0.6652, 0.09, 0.2447]
    """
    if scale not in P_BEST_SCALES:
        raise ValueError(f"p_best scale must be one of {', '.join(P_BEST_SCALES)}, got {scale!r}")
    scores = np.asarray(scores, dtype=np.float64)
    m = scores.size
    if m == 0:
        return scores
    steps = max(m - 1, 1) / 2.0 if scale == "rank_steps" else 1.0
    z = (scores - scores.max()) * steps / float(temperature)
    weights = np.exp(z)
    return weights / weights.sum()


def shortlist_size(p_best: np.ndarray, level: float = 0.9) -> int:
    """Smallest number of top-probability checkpoints whose probabilities sum to ``level``.

    Examples
    --------
    >>> shortlist_size(np.array([0.5, 0.3, 0.15, 0.05]))
    3
    """
    ordered = np.sort(np.asarray(p_best, dtype=float))[::-1]
    return int(min(len(ordered), np.searchsorted(np.cumsum(ordered), level - 1e-12) + 1))


def feature_matrix(table: Mapping[str, np.ndarray], features: Sequence[str]) -> np.ndarray:
    """Within-task features of one task: centred ranks of each column (missing column -> 0).

    Parameters
    ----------
    table : mapping
        Column -> values of shape (n_checkpoints,): measure scores with higher = better (negate
        lower-is-better measures first), ``log_parameters``, ``has_head`` (1/0, NaN unknown).
    features : sequence of str

    Returns
    -------
    ndarray of shape (n_checkpoints, n_features)
    """
    n = len(next(iter(table.values()))) if table else 0
    columns = []
    for name in features:
        values = table.get(name)
        columns.append(np.zeros(n) if values is None else centred_ranks(np.asarray(values, dtype=float)))
    return np.column_stack(columns) if columns else np.zeros((n, 0))


@dataclass
class PairwiseRanker:
    """Linear pairwise ranker over within-task centred ranks (see the module docstring).

    Attributes
    ----------
    features : list of str
    weights : ndarray of shape (n_features,)
    C : float
        Inverse L2 regularisation strength of the logistic regression.
    info : dict
        What it was fitted on and how well it did held out (free-form, JSON-ready).
    nonnegative : list of str
        Features whose weights the fit constrains to be >= 0 (empty: an unconstrained
        scikit-learn fit).
    """

    features: list[str]
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    C: float = 1.0
    info: dict[str, Any] = field(default_factory=dict)
    nonnegative: list[str] = field(default_factory=list)

    def fit(
        self,
        tasks: Sequence[tuple[np.ndarray, np.ndarray]],
        min_gap: float = 0.0,
        task_weights: Sequence[float] | None = None,
    ) -> PairwiseRanker:
        """Fit on tasks, each ``(X, truth)``: X of shape (n_checkpoints, n_features), truth (n_checkpoints,).

        Every pair of checkpoints of a task whose truths differ by more than ``min_gap`` gives
        two samples (the difference and its negation, so no intercept is needed); each task
        weighs the same in total, whatever its number of checkpoints, times its entry of
        ``task_weights`` (default 1).

        Raises
        ------
        ValueError
            No pair to learn from; ``task_weights`` of another length than ``tasks`` or not
            positive and finite; a ``nonnegative`` name that is not a feature.
        """
        unknown = sorted(set(self.nonnegative) - set(self.features))
        if unknown:
            raise ValueError(f"nonnegative names {unknown} that are not features {self.features}")
        if task_weights is None:
            task_weights = [1.0] * len(tasks)
        task_weights = [float(w) for w in task_weights]
        if len(task_weights) != len(tasks) or not all(math.isfinite(w) and w > 0 for w in task_weights):
            raise ValueError(
                f"task_weights must be {len(tasks)} positive finite numbers, got {len(task_weights)}: "
                f"{task_weights[:5]}"
            )
        rows, labels, weights = [], [], []
        for (X, truth), task_weight in zip(tasks, task_weights, strict=True):
            X = np.asarray(X, dtype=float)
            truth = np.asarray(truth, dtype=float)
            i, j = np.triu_indices(len(truth), k=1)
            gap = truth[i] - truth[j]
            keep = np.abs(gap) > min_gap
            if not keep.any():
                continue
            diff = X[i[keep]] - X[j[keep]]
            sign = np.sign(gap[keep])
            rows += [diff, -diff]
            labels += [sign > 0, sign < 0]
            w = np.full(int(keep.sum()), task_weight / keep.sum())
            weights += [w, w]
        if not rows:
            raise ValueError("no pair of checkpoints with different ground truth to fit the ranker on")
        X_all, y_all, w_all = np.vstack(rows), np.concatenate(labels), np.concatenate(weights)
        if self.nonnegative:
            self.weights = _constrained_logistic(
                X_all, y_all, w_all, self.C, [name in self.nonnegative for name in self.features]
            )
            return self
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=self.C, fit_intercept=False, max_iter=2000, tol=1e-6)
        model.fit(X_all, y_all, sample_weight=w_all)
        self.weights = model.coef_[0].astype(float)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Scores (higher = predicted better) of X, shape (n_checkpoints, n_features)."""
        return np.asarray(X, dtype=float) @ self.weights

    def score_table(self, table: Mapping[str, np.ndarray]) -> np.ndarray:
        """Scores of one task's table (see :func:`feature_matrix`)."""
        return self.predict(feature_matrix(table, self.features))

    def to_dict(self) -> dict[str, Any]:
        out = {
            "kind": "pairwise-logistic",
            "features": list(self.features),
            "weights": [float(w) for w in self.weights],
            "C": float(self.C),
            "info": self.info,
        }
        if self.nonnegative:
            out["nonnegative"] = list(self.nonnegative)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PairwiseRanker:
        if data.get("kind") != "pairwise-logistic":
            raise ValueError(f"not a pairwise-logistic ranker file (kind {data.get('kind')!r})")
        features = [str(f) for f in data["features"]]
        weights = np.asarray(data["weights"], dtype=float)
        if weights.shape != (len(features),) or not np.isfinite(weights).all():
            raise ValueError(
                f"ranker file holds {weights.size} weights for {len(features)} features; it is damaged"
            )
        return cls(
            features=features,
            weights=weights,
            C=float(data.get("C", 1.0)),
            info=dict(data.get("info", {})),
            nonnegative=[str(f) for f in data.get("nonnegative", [])],
        )

    def save(self, path: str | Path) -> Path:
        """Write the ranker as JSON (atomically)."""
        return _save_json(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | Path) -> PairwiseRanker:
        """Read a ranker JSON file (never a pickle)."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read ranker file {str(path)!r}: {err}") from None
        return cls.from_dict(data)

    def describe(self) -> str:
        """``"w1 * f1 + w2 * f2 ..."``, largest weights first."""
        order = np.argsort(-np.abs(self.weights))
        return " + ".join(f"{self.weights[k]:.2f}*{self.features[k]}" for k in order if self.weights[k] != 0)


def _constrained_logistic(
    X: np.ndarray, positive: np.ndarray, sample_weight: np.ndarray, C: float, nonnegative: Sequence[bool]
) -> np.ndarray:
    """Weights minimising scikit-learn's penalised logistic loss without intercept, some bounded >= 0.

    ``0.5 * ||w||^2 + C * sum_i s_i * log(1 + exp(-y_i * x_i . w))`` with ``y_i = +1`` where
    ``positive`` and ``-1`` elsewhere, solved by scipy's L-BFGS-B with the bound ``w_j >= 0`` where
    ``nonnegative[j]``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    positive : ndarray of shape (n_samples,), bool
    sample_weight : ndarray of shape (n_samples,)
    C : float
    nonnegative : sequence of bool, length n_features

    Returns
    -------
    ndarray of shape (n_features,)
    """
    from scipy.optimize import minimize
    from scipy.special import expit

    signed = np.where(np.asarray(positive, dtype=bool), 1.0, -1.0)[:, None] * np.asarray(X, dtype=float)
    s = np.asarray(sample_weight, dtype=float)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        margin = signed @ w
        value = 0.5 * float(w @ w) + C * float(s @ np.logaddexp(0.0, -margin))
        grad = w - C * (signed.T @ (s * expit(-margin)))
        return value, grad

    bounds = [(0.0, None) if flag else (None, None) for flag in nonnegative]
    result = minimize(
        loss,
        np.zeros(signed.shape[1]),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 10_000, "gtol": 1e-10, "ftol": 1e-15},
    )
    return np.asarray(result.x, dtype=float)


#: Fewest finite values a feature needs on a task to enter :class:`AgreementRanker`'s correlations.
MIN_AGREEMENT_VALUES = 3


@dataclass
class AgreementRanker:
    """Label-free ranker: features weighted by their within-task agreement (see the module docstring).

    On one task, over the checkpoints given: each feature becomes a centred rank (a missing
    value is the middle rank, 0); a feature with fewer than :data:`MIN_AGREEMENT_VALUES` finite
    values, or constant, is left out; the others are standardised, and the score is their
    projection on the leading eigenvector of their correlation matrix, signed so that the
    measures' entries (every feature but :data:`PARAMETERS` and :data:`HAS_HEAD`) sum to more
    than 0 (where they sum to 0 up to round-off, the measures split into two camps of equal
    weight, and the measure with the largest weight, the first of equals, counts positively). Size therefore
    gets a weight, and a sign, from its agreement with the measures on this task. With no
    usable measure the score is the parameter count's standardised rank (the parameter-count
    baseline; see :func:`size_usable` for how many counts it needs). With fewer than 3
    checkpoints (no correlation to read) it is the standardised mean centred rank of the measures
    that score both, else the parameter count's. ``has_head`` is never a feature of it.

    The score's scale is the projection's: its variance is the leading eigenvalue, so it grows
    with how strongly, and how many, features agree; ``p_best`` (:func:`probability_best`) is
    sharper where they agree more. The fallbacks are standardised too (variance 1, a single
    column's), so every score is in the units the temperature of ``p_best`` is fitted for.

    Attributes
    ----------
    features : list of str
        Measures (signed so that higher predicts better) and :data:`PARAMETERS`.
    info : dict
        Its held-out figures and the temperature of ``p_best`` (free-form, JSON-ready).
    """

    features: list[str]
    info: dict[str, Any] = field(default_factory=dict)

    kind: ClassVar[str] = "agreement"

    def loadings(self, table: Mapping[str, np.ndarray]) -> dict[str, float]:
        """The weight of each used feature on this task (see :meth:`score_with_loadings`)."""
        return self.score_with_loadings(table)[1]

    def score_table(self, table: Mapping[str, np.ndarray]) -> np.ndarray:
        """Scores of one task's checkpoints (see :meth:`score_with_loadings`)."""
        return self.score_with_loadings(table)[0]

    def score_with_loadings(self, table: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict[str, float]]:
        """Scores of one task's checkpoints and the weight of each feature used.

        Parameters
        ----------
        table : mapping
            Feature -> values of shape (n_checkpoints,), higher = better (NaN: missing). Names
            that are not features (``has_head`` among them) are ignored.

        Returns
        -------
        score : ndarray of shape (n_checkpoints,)
            Higher = predicted better.
        loadings : dict
            Feature -> its entry of the leading eigenvector (its weight on the standardised
            centred ranks); the features left out are absent. ``{}`` where the score falls back
            to the parameter count or to the measures' mean centred rank.
        """
        n = len(next(iter(table.values()))) if table else 0
        measures = [f for f in self.features if f not in (PARAMETERS, HAS_HEAD)]
        if n < MIN_AGREEMENT_VALUES:
            return self._without_correlation(table, measures, n), {}
        columns, names = [], []
        for name in self.features:
            if name == HAS_HEAD or name not in table:
                continue
            values = np.asarray(table[name], dtype=float)
            if np.isfinite(values).sum() < MIN_AGREEMENT_VALUES:
                continue
            ranks = centred_ranks(values)
            spread = ranks.std()
            if spread == 0:
                continue
            columns.append((ranks - ranks.mean()) / spread)
            names.append(name)
        is_measure = np.array([name in measures for name in names], dtype=bool)
        if not is_measure.any():
            return _size_ranks(table, n), {}
        Z = np.column_stack(columns)
        if Z.shape[1] == 1:
            vector = np.ones(1)
        else:
            _, vectors = np.linalg.eigh(np.corrcoef(Z, rowvar=False))
            vector = vectors[:, -1]
        margin = float(vector[is_measure].sum())
        if abs(margin) <= 1e-9 * float(np.abs(vector).sum()):  # an exact split, up to round-off:
            # orient by the measure with the largest weight (the first of equals)
            largest = np.flatnonzero(is_measure)[np.argmax(np.round(np.abs(vector[is_measure]), 9))]
            margin = float(vector[largest])
        if margin < 0:
            vector = -vector
        return Z @ vector, {name: float(v) for name, v in zip(names, vector, strict=True)}

    def _without_correlation(
        self, table: Mapping[str, np.ndarray], measures: Sequence[str], n: int
    ) -> np.ndarray:
        """Score of fewer than 3 checkpoints: the measures' standardised mean centred rank, else size's."""
        scored = [
            centred_ranks(np.asarray(table[m], dtype=float))
            for m in measures
            if m in table and np.isfinite(np.asarray(table[m], dtype=float)).sum() >= 2
        ]
        return _standardised(np.mean(scored, axis=0)) if scored else _size_ranks(table, n)

    def describe(self) -> str:
        """One line naming the features and how they are weighed."""
        return (
            "label-free agreement of "
            + ", ".join(self.features)
            + " (leading eigenvector of their within-task rank correlations)"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``kind``, ``features``, ``info``)."""
        return {"kind": self.kind, "features": list(self.features), "info": self.info}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgreementRanker:
        """The ranker of :meth:`to_dict`'s form.

        Raises
        ------
        ValueError
            Another kind, or no features.
        """
        if data.get("kind") != cls.kind:
            raise ValueError(f"not an agreement ranker file (kind {data.get('kind')!r})")
        features = [str(f) for f in data["features"]]
        if not features:
            raise ValueError("agreement ranker file lists no features; it is damaged")
        return cls(features=features, info=dict(data.get("info", {})))

    def save(self, path: str | Path) -> Path:
        """Write the ranker as JSON (atomically)."""
        return _save_json(self.to_dict(), path)


def size_usable(n_known: int, n_checkpoints: int) -> bool:
    """Whether the agreement ranker uses a parameter count known for ``n_known`` of ``n_checkpoints``.

    It needs :data:`MIN_AGREEMENT_VALUES` known counts, as every column of the agreement does, or
    every count of a zoo of 2 (the fallback without a correlation to read).

    Examples
    --------
    >>> size_usable(2, 5), size_usable(3, 5), size_usable(2, 2), size_usable(1, 2)
    (False, True, True, False)
    """
    return n_known >= max(2, min(MIN_AGREEMENT_VALUES, n_checkpoints))


def _standardised(score: np.ndarray) -> np.ndarray:
    """``score`` centred and scaled to variance 1 (zeros where it is constant)."""
    spread = float(score.std())
    return (score - score.mean()) / spread if spread > 0 else np.zeros_like(score)


def _size_ranks(table: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """Standardised centred ranks of the parameter count, shape (n,): the size-only fallback.

    Standardised like every column of the agreement, so that the score is in the units the
    temperature of ``p_best`` is fitted for (round 8: a single usable column scores its standardised
    ranks). Zeros without a parameter count, with too few known (:func:`size_usable`), or where
    every count is the same.
    """
    size = table.get(PARAMETERS)
    if size is None:
        return np.zeros(n)
    size = np.asarray(size, dtype=float)
    if not size_usable(int(np.isfinite(size).sum()), n):
        return np.zeros(n)
    return _standardised(centred_ranks(size))


#: Either kind of ranker (both score one task's table and carry ``features`` and ``info``).
Ranker = PairwiseRanker | AgreementRanker


def ranker_from_dict(data: Mapping[str, Any]) -> Ranker:
    """The ranker a JSON-ready dict describes, by its ``kind``.

    Raises
    ------
    ValueError
        An unknown kind, or a damaged file.
    """
    kind = data.get("kind")
    scale = dict(dict(data.get("info", {})).get("p_best", {})).get("scale", "rank_steps")
    if scale not in P_BEST_SCALES:
        raise ValueError(
            f"ranker file's p_best scale {scale!r} is not one of {', '.join(P_BEST_SCALES)}; it is damaged"
        )
    if kind == "pairwise-logistic":
        return PairwiseRanker.from_dict(data)
    if kind == AgreementRanker.kind:
        return AgreementRanker.from_dict(data)
    raise ValueError(f"unknown ranker kind {kind!r} (known: pairwise-logistic, {AgreementRanker.kind})")


def _save_json(payload: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``payload`` as indented JSON with sorted keys, atomically (a temporary file, then rename)."""
    import os
    import tempfile

    path = Path(path)
    text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def digest(payload: Any) -> str:
    """SHA-256 of a JSON-ready payload (sorted keys), to record what a ranker was fitted on."""
    text = json.dumps(
        payload, sort_keys=True, default=lambda x: None if isinstance(x, float) and math.isnan(x) else str(x)
    )
    return hashlib.sha256(text.encode()).hexdigest()
