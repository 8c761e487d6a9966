"""k-nearest-neighbour accuracy: leave-one-out k-NN classification of the target samples.

A non-parametric probe of how well the features cluster by class, the "kNN" baseline of
PARC (Bolya, Mittapalli, Hoffman, *Scalable Diverse Model Selection for Accessible Transfer
Learning*, NeurIPS 2021, https://arxiv.org/abs/2111.06977) and the standard evaluation of
self-supervised features (cosine variant; Wu et al., CVPR 2018, https://arxiv.org/abs/1805.01978).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._logreg import resolve_device
from ._registry import register_measure
from ._validation import check_features_and_labels, check_random_state, warn_degenerate

__all__ = ["knn"]

_METRICS = ("euclidean", "cosine")


def _stratified_subsample(y: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a stratified random subset of ``size`` samples.

    Class quotas are proportional to the class counts (largest remainders get the extra
    samples, ties going to the class met first in a random order of the samples); inside a
    class the members met first in that order are kept. Nothing depends on the label
    values, so renaming the classes selects the same subset.
    """
    n = y.shape[0]
    order = rng.permutation(n)
    classes_by_appearance = y[order][np.sort(np.unique(y[order], return_index=True)[1])]
    counts = np.bincount(y)[classes_by_appearance]
    exact = counts * size / n
    quotas = np.floor(exact).astype(np.int64)
    extra = np.argsort(-(exact - quotas), kind="stable")[: size - int(quotas.sum())]
    quotas[extra] += 1
    keep = np.zeros(n, dtype=bool)
    for cls, quota in zip(classes_by_appearance, quotas, strict=True):
        keep[order[y[order] == cls][:quota]] = True
    return np.flatnonzero(keep)


def _merge(
    best_d: torch.Tensor, best_i: torch.Tensor, rows: slice, D: torch.Tensor, cols: torch.Tensor
) -> None:
    """Keep, for each row, the ``k`` smallest distances among the current best and block ``D``.

    Invariant: each row's kept neighbours are sorted by (distance, index). Candidates are
    laid out as the kept ones (all from earlier column blocks, so lower indices) followed by
    the block in increasing index, so a stable sort by distance orders them by (distance,
    index). ``topk`` gives the same answer more cheaply in rows without equal finite
    distances among their k + 1 smallest; the stable sort handles the others.
    """
    k = best_d.shape[1]
    cand_d = torch.cat([best_d[rows], D], dim=1)
    cand_i = torch.cat([best_i[rows], cols.expand(D.shape[0], -1)], dim=1)
    top_d, pos = torch.topk(cand_d, k + 1, dim=1, largest=False)
    equal = (top_d[:, 1:] == top_d[:, :-1]) & torch.isfinite(top_d[:, 1:])
    tied = torch.nonzero(equal.any(dim=1))[:, 0]
    if tied.numel():
        exact = torch.sort(cand_d[tied], dim=1, stable=True)
        top_d[tied], pos[tied] = exact.values[:, : k + 1], exact.indices[:, : k + 1]
    best_d[rows] = top_d[:, :k]
    best_i[rows] = cand_i.gather(1, pos[:, :k])


def _neighbours(X: torch.Tensor, k: int, metric: str, block_size: int) -> torch.Tensor:
    """Indices of the ``k`` nearest other samples of every sample, nearest first.

    The distance matrix is computed block by block (each pair of blocks once, used for both
    blocks' rows); the sample itself is excluded by index, so duplicates at distance 0 count
    as neighbours. Memory is ``O(n k + block_size^2)``.
    """
    n = X.shape[0]
    if metric == "euclidean":
        # Shift by the coordinate-wise (lower) median: distances are unchanged, the expansion
        # below stays accurate for features far from the origin, and since the median is a
        # data value, features on a grid (e.g. integers) keep their exact distance ties.
        X = X - X.median(dim=0).values
        sq = (X * X).sum(dim=1)
    best_d = torch.full((n, k), torch.inf, dtype=X.dtype, device=X.device)
    best_i = torch.full((n, k), -1, dtype=torch.int64, device=X.device)
    index = torch.arange(n, device=X.device)
    for i0 in range(0, n, block_size):
        rows_i = slice(i0, min(i0 + block_size, n))
        for j0 in range(i0, n, block_size):
            rows_j = slice(j0, min(j0 + block_size, n))
            S = X[rows_i] @ X[rows_j].T
            if metric == "euclidean":
                D = (sq[rows_i, None] + sq[None, rows_j] - 2.0 * S).clamp_min_(0.0)
            else:
                D = 1.0 - S
            if i0 == j0:
                D.fill_diagonal_(torch.inf)  # leave-one-out: never the sample itself
            _merge(best_d, best_i, rows_i, D, index[rows_j])
            if j0 != i0:
                _merge(best_d, best_i, rows_j, D.T, index[rows_i])
    return best_i


def _vote(neighbour_labels: torch.Tensor) -> torch.Tensor:
    """Majority class of each row (nearest first); ties go to the nearest tied neighbour's class."""
    votes = (neighbour_labels[:, :, None] == neighbour_labels[:, None, :]).sum(dim=2)
    first_max = (votes == votes.max(dim=1, keepdim=True).values).to(torch.int8).argmax(dim=1)
    return neighbour_labels.gather(1, first_max[:, None])[:, 0]


@register_measure(
    "knn",
    requires=("features",),
    higher_is_better=True,
    citation="Bolya et al., Scalable Diverse Model Selection for Accessible Transfer Learning, "
    "NeurIPS 2021 (arXiv:2111.06977)",
    kind="static",
    stochastic=True,
    invariances=("label_permutation", "translation", "rotation", "isotropic_scale"),
    score_range="[0, 1]",
)
def knn(
    features: Any,
    labels: Any,
    *,
    k: int = 1,
    metric: str = "euclidean",
    block_size: int = 2048,
    max_samples: int | None = 10_000,
    random_state: int = 0,
    device: str | None = None,
) -> float:
    """Leave-one-out k-nearest-neighbour accuracy.

    .. math::

        \\mathrm{kNN} = \\frac{1}{n} \\sum_{i=1}^{n}
        \\mathbb{1}\\Big[\\operatorname*{vote}_{j \\in N_k(i)} y_j = y_i\\Big],
        \\quad N_k(i) = k \\text{ nearest } j \\ne i

    Parameters
    ----------
    features : array-like or torch.Tensor of shape (n_samples, n_features)
        Penultimate-layer features of the target training split.
    labels : array-like of shape (n_samples,)
        Target labels (any hashable values).
    k : int
        Number of neighbours (odd values avoid most vote ties).
    metric : {"euclidean", "cosine"}
        Euclidean distance, or cosine distance ``1 - cos(x_i, x_j)``.
    block_size : int
        Rows per block of the distance computation (memory ``O(block_size^2)``).
    max_samples : int or None
        When ``n_samples`` exceeds it, score a stratified random subset of this size (both
        queries and neighbours come from the subset). ``None`` always uses every sample; the
        cost is ``O(n^2 d)``.
    random_state : int
        Seed of the subset (unused when no subsampling happens).
    device : str, optional
        Torch device of the distance computation; ``None`` computes on the CPU in float64.

    Returns
    -------
    float
        Leave-one-out accuracy in [0, 1]; higher is better.

    Raises
    ------
    ValueError
        On invalid features/labels, an unknown metric, ``k < 1``, ``k`` not smaller than the
        number of samples used, ``block_size < 1`` or ``max_samples < 2``.

    Notes
    -----
    * The sample itself is excluded by index, not by dropping the first neighbour, which is
      wrong when duplicates sit at distance 0 (PARC's kNN drops the first neighbour).
    * Majority vote; a tie between classes goes to the class of the nearest neighbour among
      the tied classes. Equal distances are ordered by sample index (the lower index counts
      as nearer), also when deciding which of several samples tied at the k-th distance
      enters the neighbourhood.
    * The default ``max_samples=10_000`` keeps the quadratic cost to seconds: a stratified
      subsample depends only on the labels and ``random_state``, so every checkpoint scored
      on the same task and seed uses the same samples. Accuracy on a subsample is lower
      than on all samples (fewer neighbours per class); compare checkpoints at equal
      ``max_samples``.
    * A class with one sample (in the subset) is always misclassified: it has no other
      member to vote for it.
    * Cosine: a zero feature vector has no direction; it is kept as the zero vector
      (distance 1 to everything, like scikit-learn's ``normalize``) with a
      :class:`DegenerateInputWarning`.
    * Euclidean distances use ``|x|^2 + |y|^2 - 2 x.y`` on features shifted by their
      coordinate-wise median, so the score is invariant to translation, rotation and
      isotropic scaling up to float error (which can only matter at exact distance ties).

    References
    ----------
    D. Bolya, R. Mittapalli, J. Hoffman, "Scalable Diverse Model Selection for Accessible
    Transfer Learning", NeurIPS 2021, https://arxiv.org/abs/2111.06977.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [0.1], [1.0], [1.1], [5.0]])
    >>> knn(X, [0, 0, 1, 1, 0])
    0.8
    >>> knn(np.vstack([X, X]), [0, 0, 1, 1, 0] * 2)  # exact duplicates: each finds its twin
    1.0
    """
    X_np, info = check_features_and_labels(features, labels)
    if metric not in _METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(_METRICS)}")
    for name, value, low in (("k", k, 1), ("block_size", block_size, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if max_samples is not None and (
        isinstance(max_samples, bool) or not isinstance(max_samples, (int, np.integer)) or max_samples < 2
    ):
        raise ValueError(f"max_samples must be an integer >= 2 or None, got {max_samples!r}")
    rng = check_random_state(random_state)
    y = info.y
    if max_samples is not None and X_np.shape[0] > max_samples:
        keep = _stratified_subsample(y, int(max_samples), rng)
        X_np, y = X_np[keep], y[keep]
    n = X_np.shape[0]
    if k >= n:
        raise ValueError(
            f"k={k} neighbours need at least k + 1 = {k + 1} samples, but {n} are scored; lower k"
        )
    dev = resolve_device(device)
    X = torch.as_tensor(X_np, device=dev)
    if metric == "cosine":
        norms = torch.linalg.vector_norm(X, dim=1, keepdim=True)
        n_zero = int((norms == 0).sum())
        if n_zero:
            warn_degenerate(
                f"knn: {n_zero} of {n} feature vectors are zero and have no cosine direction; "
                "they are at cosine distance 1 from every sample"
            )
        X = X / torch.where(norms == 0, torch.ones_like(norms), norms)
    neighbours = _neighbours(X, int(k), metric, int(block_size))
    y_t = torch.as_tensor(y, device=dev)
    predicted = _vote(y_t[neighbours])
    return float((predicted == y_t).to(torch.float64).mean())
