"""PARC: Pairwise Annotation Representation Comparison.

D. Bolya, R. Mittapalli, J. Hoffman, "Scalable Diverse Model Selection for Accessible Transfer
Learning", NeurIPS 2021, https://arxiv.org/abs/2111.06977 (reference code:
https://github.com/dbolya/parc).

PARC is the Spearman correlation between the sample-by-sample dissimilarity matrix of the
features (one minus the Pearson correlation of two samples' feature vectors) and that of the
one-hot labels, times 100.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np

from ._linalg import pca_project
from ._registry import register_measure
from ._validation import (
    LabelInfo,
    check_features_and_labels,
    check_random_state,
    power_of_two_scaled,
    warn_degenerate,
)

__all__ = ["parc"]

logger = logging.getLogger(__name__)

#: Default probe-set size. PARC needs O(n^2) memory and an O(n^2 log n) sort; the paper uses
#: probe sets of 500 images. 3000 samples give 4.5 million pairs (about 0.5 GB peak).
DEFAULT_MAX_SAMPLES = 3000

#: A column whose standard deviation is at most this times the largest column's has no variance:
#: constant input columns are dropped with a warning, zero-variance PCA components silently.
_CONSTANT_COLUMN_RTOL = 1e-12

#: A sample whose standardised feature vector has a standard deviation below this is constant:
#: its correlation with every other sample is undefined.
_CONSTANT_ROW_TOL = 1e-10

#: Dissimilarities (in [0, 2]) are rounded to this many decimals before ranking, so that ties
#: which float rounding would break (e.g. with 2 dimensions every correlation is +-1) stay ties.
_TIE_DECIMALS = 12


def _stratified_subsample(info: LabelInfo, max_samples: int, random_state: int) -> np.ndarray:
    """Indices of about ``max_samples`` samples, stratified by class, in increasing order.

    Every sample draws one uniform key (by position, independent of its label); class ``c``
    keeps its ``k_c = min(n_c, max(1, round(max_samples * n_c / n)))`` samples with the smallest
    keys. Renaming the classes therefore selects the same samples.
    """
    rng = check_random_state(random_state)
    keys = rng.random(info.n_samples)
    quota = np.minimum(
        info.counts, np.maximum(1, np.floor(max_samples * info.counts / info.n_samples + 0.5))
    ).astype(np.int64)
    order = np.lexsort((keys, info.y))  # by class, then by key
    starts = np.concatenate(([0], np.cumsum(info.counts)[:-1]))
    rank_in_class = np.empty(info.n_samples, dtype=np.int64)
    rank_in_class[order] = np.arange(info.n_samples) - np.repeat(starts, info.counts)
    return np.flatnonzero(rank_in_class < quota[info.y])


def _varying_columns(Z: np.ndarray) -> np.ndarray:
    """Mask of the columns whose standard deviation exceeds ``_CONSTANT_COLUMN_RTOL`` times the largest."""
    std = Z.std(axis=0)
    return std > _CONSTANT_COLUMN_RTOL * std.max()


def _standard_scale(Z: np.ndarray) -> np.ndarray:
    """Z-score each column (population std, like ``StandardScaler``), dropping zero-variance columns.

    A column without variance (e.g. a PCA component beyond the rank of the features) is no
    feature dimension: kept as a column of zeros it would shift every sample's correlation.
    """
    Z = Z[:, _varying_columns(Z)]
    Z = Z - Z.mean(axis=0)
    return Z / Z.std(axis=0)


def _spearman_vs_two_groups(values: np.ndarray, high: np.ndarray) -> float:
    """Spearman correlation of ``values`` with a two-valued variable (``high`` marks the larger).

    Spearman is the Pearson correlation of average ranks. The two-valued side has closed-form
    ranks, so only ``values`` is sorted (``values`` is overwritten). With centred ranks ``r``
    (ties averaged), ``p`` the fraction of ``high`` and ``M`` values,
    ``rho = mean(r * high) / (std(r) * sqrt(p (1 - p)))``. The ranks of the smaller group come
    from binary searches in the sorted values, and ``sum r^2 = (M^3 - M)/12 - sum_t (t^3 - t)/12``
    over tie groups of size ``t``. Returns NaN when either side is constant.
    """
    M = values.shape[0]
    n_high = int(np.count_nonzero(high))
    if M < 2 or n_high in (0, M):
        return float("nan")
    use_high = n_high <= M - n_high
    group = np.sort(values[high if use_high else ~high])
    values.sort()
    left = np.searchsorted(values, group, side="left")
    right = np.searchsorted(values, group, side="right")
    # average 1-based rank (left + right + 1) / 2, minus the mean rank (M + 1) / 2
    rank_sum = float((left + right - M).sum()) / 2.0
    if not use_high:
        rank_sum = -rank_sum  # centred ranks sum to zero
    sum_sq = (float(M) ** 3 - M) / 12.0
    boundaries = np.flatnonzero(values[1:] != values[:-1])
    if boundaries.size < M - 1:
        sizes = np.diff(np.concatenate(([0], boundaries + 1, [M]))).astype(np.float64)
        sum_sq -= float((sizes**3 - sizes).sum()) / 12.0
    if sum_sq <= 0.0:
        return float("nan")
    p = n_high / M
    return (rank_sum / M) / np.sqrt(sum_sq / M * p * (1.0 - p))


@register_measure(
    "parc",
    requires=("features",),
    higher_is_better=True,
    citation=(
        "Bolya, Mittapalli, Hoffman, Scalable Diverse Model Selection for Accessible Transfer "
        "Learning, NeurIPS 2021, arXiv:2111.06977"
    ),
    stochastic=True,
    invariances=("label_permutation", "translation", "isotropic_scale"),
    score_range="[-100, 100]",
)
def parc(
    features: Any,
    labels: Any,
    *,
    n_components: int | None = 32,
    pca_solver: Literal["randomized", "full"] = "randomized",
    pca_random_state: int = 1919,
    iterated_power: int = 1,
    max_samples: int | None = DEFAULT_MAX_SAMPLES,
    random_state: int = 0,
) -> float:
    r"""Pairwise Annotation Representation Comparison (PARC).

    .. math::

        D^F_{ij} = 1 - \operatorname{corr}(z_i, z_j), \qquad
        D^Y_{ij} = 1 - \operatorname{corr}(e_{y_i}, e_{y_j}) =
        \begin{cases} 0 & y_i = y_j \\ 1 + \frac{1}{C-1} & y_i \ne y_j \end{cases},

        \mathrm{PARC} = 100 \cdot \rho_{\mathrm{Spearman}}\big(\{D^F_{ij}\}_{i<j},
        \{D^Y_{ij}\}_{i<j}\big),

    where :math:`z_i` is sample :math:`i`'s feature vector after PCA to ``n_components``
    dimensions and per-dimension standardisation, and :math:`\operatorname{corr}` is the Pearson
    correlation across feature dimensions.

    Parameters
    ----------
    features : array-like or torch.Tensor of shape (n_samples, n_features)
        Penultimate-layer features of the target samples.
    labels : array-like of shape (n_samples,)
        Target labels (any hashable values).
    n_components : int or None, default=32
        PCA dimension ``f`` (the paper's "PARC f=32"), capped at the number of samples. ``None``,
        or a value ``>= n_features``, skips the PCA.
    pca_solver : {"randomized", "full"}, default="randomized"
        SVD solver of the PCA. The reference uses scikit-learn's randomized solver.
    pca_random_state : int, default=1919
        Seed of the randomized PCA (the reference value).
    iterated_power : int, default=1
        Power iterations of the randomized PCA (the reference value).
    max_samples : int or None, default=3000
        Probe-set size: when there are more samples, a stratified random subset of about this
        many (every class keeps at least one) is scored. ``None`` uses every sample (memory
        and time grow as ``n**2``).
    random_state : int, default=0
        Seed of the subsampling.

    Returns
    -------
    float
        The score in [-100, 100]; higher is better.

    Raises
    ------
    ValueError
        On invalid features or labels, ``n_components < 2``, ``max_samples < 3``, an unknown
        ``pca_solver``, when fewer than 2 feature columns vary (e.g. constant features), or
        when fewer than 2 dimensions with nonzero variance remain after the PCA (a correlation
        across one dimension is undefined).

    Warns
    -----
    DegenerateInputWarning
        When constant feature columns are dropped (the message names how many), when samples
        with a constant standardised feature vector are dropped (their correlation
        with other samples is undefined), and when no correlation can be computed (fewer than
        two samples remain, all pairs share a class, or every dissimilarity is equal): the
        result is then NaN.

    Notes
    -----
    Only the order of the label dissimilarities matters, so the number of classes ``C`` has no
    effect (the reference uses the dataset's class count, which gives the same value). Because
    the label side takes two values, the Spearman correlation is computed from the average ranks
    of the feature dissimilarities and closed-form ranks of the label side (the same number as
    ``scipy.stats.spearmanr``), with one sort of the :math:`n(n-1)/2` pairs:
    :math:`O(n^2 f + n^2 \log n)` time and :math:`O(n^2)` memory. The reference builds the label
    matrix with ``np.corrcoef``, whose rounding turns some same-class zeros into about 1e-16 and
    so splits that tie group; its value therefore differs slightly from the exact one computed
    here (e.g. 5.195 against 5.210 on 300 blobs). For the same reason the feature
    dissimilarities are rounded to 12 decimals before ranking, so that exact ties (with two
    dimensions every correlation is +-1) are not split by rounding noise.

    A feature column without variance (standard deviation at most 1e-12 times the largest
    column's) is not a feature dimension: standardisation cannot scale it, and kept as a column
    of zeros it would shift every sample's correlation (four constant columns appended to four
    informative ones moved the score from 36.3 to 35.2). Constant input columns are therefore
    dropped with a warning, so appending constant columns leaves the score unchanged; zero-variance
    PCA components (more components requested than the rank of the features, e.g. fewer than
    ``n_components`` samples) are dropped silently; the reference keeps them as columns of
    (near) zeros.

    The reference code scores probe sets of 500 images; here samples beyond ``max_samples``
    are subsampled before the PCA (logged at INFO level), so the score is then random through
    ``random_state`` and not invariant to the order of the samples. With the randomized PCA the
    score depends on ``pca_random_state`` and, through the component signs (fixed so that each
    component's largest loading is positive, as scikit-learn does), it is not rotation
    invariant. It is invariant to translation, global scaling and label renaming; without PCA
    also to per-dimension scaling. The reference applies the PCA even when ``f`` exceeds the
    feature dimension (which fails in scikit-learn); here it is skipped.

    References
    ----------
    .. [1] D. Bolya, R. Mittapalli, J. Hoffman, "Scalable Diverse Model Selection for Accessible
       Transfer Learning", NeurIPS 2021, https://arxiv.org/abs/2111.06977

    Examples
    --------
    >>> from ckptrank.measures.parc import parc
    >>> from ckptrank.testing.synthetic import blobs
    >>> X, y = blobs(200, 16, 4, 3.0, random_state=0)
    >>> X0, _ = blobs(200, 16, 4, 0.0, random_state=0)
    >>> bool(parc(X, y) > parc(X0, y))
    True
    """
    X, info = check_features_and_labels(features, labels)
    X = power_of_two_scaled(X)  # PARC is scale invariant: avoid overflow/underflow of the variances
    if n_components is not None and (isinstance(n_components, bool) or int(n_components) < 2):
        raise ValueError(f"n_components must be None or an int >= 2, got {n_components!r}")
    if pca_solver not in ("randomized", "full"):
        raise ValueError(f"unknown pca_solver {pca_solver!r}; use 'randomized' or 'full'")
    if max_samples is not None and int(max_samples) < 3:
        raise ValueError(f"max_samples must be None or an int >= 3, got {max_samples!r}")
    varying = _varying_columns(X)
    n_constant, d = int(X.shape[1] - varying.sum()), X.shape[1]
    if n_constant and d - n_constant < 2:
        raise ValueError(
            f"parc: {n_constant} of {d} feature columns are constant (zero variance); correlating samples "
            "across dimensions needs at least 2 varying columns - check the feature extraction"
        )
    if n_constant:
        warn_degenerate(
            f"parc: {n_constant} of {d} feature columns are constant (zero variance) and were dropped; "
            f"the score is that of the other {d - n_constant} columns"
        )
        X = X[:, varying]

    y = info.y
    if max_samples is not None and info.n_samples > max_samples:
        keep = _stratified_subsample(info, int(max_samples), random_state)
        logger.info("parc: scoring a stratified subset of %d of %d samples", keep.size, info.n_samples)
        X, y = X[keep], y[keep]
    if n_components is not None and int(n_components) < X.shape[1]:
        X = pca_project(
            X,
            int(n_components),
            solver=pca_solver,
            random_state=pca_random_state,
            iterated_power=iterated_power,
        )
    Z = _standard_scale(X)
    if Z.shape[1] < 2:
        raise ValueError(
            f"parc correlates every sample's features across dimensions and needs at least 2 "
            f"dimensions with nonzero variance, got {Z.shape[1]}; pass more feature dimensions"
        )
    Z -= Z.mean(axis=1, keepdims=True)
    row_norm = np.linalg.norm(Z, axis=1)
    constant = row_norm <= _CONSTANT_ROW_TOL * np.sqrt(Z.shape[1])
    if constant.any():
        warn_degenerate(
            f"parc: {int(constant.sum())} of {Z.shape[0]} samples have a constant standardised feature "
            "vector (undefined correlation) and were dropped"
        )
        Z, y, row_norm = Z[~constant], y[~constant], row_norm[~constant]
    m = Z.shape[0]
    Z /= row_norm[:, None]
    upper = np.triu(np.ones((m, m), dtype=bool), k=1)
    dissimilarity = (Z @ Z.T)[upper]
    np.subtract(1.0, dissimilarity, out=dissimilarity)
    # Keep exact ties exact: e.g. with 2 dimensions every correlation is +-1 up to rounding.
    np.round(dissimilarity, _TIE_DECIMALS, out=dissimilarity)
    different = (y[:, None] != y[None, :])[upper]
    rho = _spearman_vs_two_groups(dissimilarity, different)
    if np.isnan(rho):
        warn_degenerate(
            f"parc: the correlation is undefined for the {m} remaining samples (all pairs share a "
            "class, fewer than 2 samples, or constant dissimilarities); returning NaN"
        )
        return float("nan")
    return float(100.0 * rho)
