"""LEEP: Log Expected Empirical Prediction.

C. V. Nguyen, T. Hassner, M. Seeger, C. Archambeau, "LEEP: A New Measure to Evaluate
Transferability of Learned Representations", ICML 2020, https://arxiv.org/abs/2002.12462
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from scipy import sparse

from ._registry import register_measure
from ._validation import check_labels, check_source_probs, to_numpy

__all__ = ["leep"]

#: Floor on the expected empirical prediction before the log (guards against underflow only:
#: in exact arithmetic every EEP_i is positive, because sample i contributes to its own column).
_EEP_FLOOR = 1e-300
#: Rows are processed in blocks of about this many bytes in float64, so that each block is read from
#: memory once per pass and its float64 copy, row sums and products stay in cache.
_BLOCK_BYTES = 4 * 2**20
#: The row-sum tolerance of :func:`check_source_probs` (its default ``atol``) for float32/float64 input.
_ROW_SUM_ATOL = 1e-3


def _row_blocks(P: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """Consecutive row blocks of ``P`` (n, Z), each as a C-contiguous float64 array (a view when P is one)."""
    n, Z = P.shape
    step = max(1, _BLOCK_BYTES // (8 * Z))
    for start in range(0, n, step):
        rows = slice(start, min(start + step, n))
        yield rows, np.ascontiguousarray(P[rows], dtype=np.float64)


def _joint_pass(P: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray, float]:
    """One pass over unnormalised probabilities ``P`` (n, Z) with labels ``y`` in 0..C-1.

    Returns ``n * P(y, z)`` of the row-normalised probabilities, shape (C, Z), the row sums of ``P``
    (float64, summed exactly as :func:`check_source_probs` sums them) and the smallest entry of ``P``
    (NaN when ``P`` has a NaN). Each block's rows are summed per label by a sparse one-hot product
    weighted by the inverse row sums, in O(n Z), without sorting or copying ``P``.
    """
    joint = np.zeros((n_classes, P.shape[1]))
    sums = np.empty(P.shape[0])
    lowest = np.float64(np.inf)
    for rows, block in _row_blocks(P):
        lowest = np.minimum(lowest, block.min())  # np.minimum keeps a NaN
        sums[rows] = block.sum(axis=1)
        yb = y[rows]
        order = np.argsort(yb, kind="stable")
        indptr = np.zeros(n_classes + 1, dtype=np.intp)
        np.cumsum(np.bincount(yb, minlength=n_classes), out=indptr[1:])
        with np.errstate(divide="ignore"):  # a zero row fails validation afterwards
            weights = 1.0 / sums[rows][order]
        joint += sparse.csr_matrix((weights, order, indptr), shape=(n_classes, yb.size)) @ block
    return joint, sums, float(lowest)


def _eep_pass(P: np.ndarray, y: np.ndarray, joint: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """EEP_i = sum_z P(y_i | z) theta_iz with ``theta = P / sums`` (second and last pass over ``P``)."""
    marginal = joint.sum(axis=0)  # n * P(z)
    conditional = np.zeros_like(joint)
    np.divide(joint, marginal, out=conditional, where=marginal > 0)  # P(y | z); empty columns -> 0
    eep = np.empty(P.shape[0])
    for rows, block in _row_blocks(P):
        eep[rows] = np.einsum("iz,iz->i", block, conditional[y[rows]])
    return eep / sums


def _expected_empirical_prediction(theta: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """EEP_i = sum_z P(y_i | z) theta_iz for probabilities ``theta`` (n, Z) and labels ``y`` in 0..C-1."""
    joint, sums, _ = _joint_pass(theta, y, n_classes)
    return _eep_pass(theta, y, joint, sums)


def _leep_from_eep(eep: np.ndarray, use_log: bool) -> float:
    # EEP_i <= sum_z theta_iz = 1 exactly; the clip removes rounding above 1 (so LEEP <= 0 holds exactly).
    eep = np.minimum(eep, 1.0)
    if use_log:
        return float(np.mean(np.log(np.maximum(eep, _EEP_FLOOR))))
    return float(np.mean(eep))


def _leep_score(theta: np.ndarray, y: np.ndarray, n_classes: int, *, use_log: bool = True) -> float:
    """LEEP of validated probabilities (rows summing to one) and labels re-indexed to 0..C-1."""
    return _leep_from_eep(_expected_empirical_prediction(theta, y, n_classes), use_log)


def _plain_probs(source_probs: Any, n_samples: int) -> np.ndarray | None:
    """``source_probs`` as a numpy array when it is a float32/float64 matrix of the right shape, else None.

    Everything else (lists, half precision, wrong shapes) goes through :func:`check_source_probs`.
    """
    dtype = str(getattr(source_probs, "dtype", ""))
    if not (isinstance(source_probs, np.ndarray) or type(source_probs).__module__.startswith("torch")):
        return None
    if dtype.removeprefix("torch.") not in ("float32", "float64"):
        return None
    P = to_numpy(source_probs, name="source_probs")
    return P if P.ndim == 2 and P.shape[0] == n_samples and P.shape[1] >= 2 else None


@register_measure(
    "leep",
    requires=("source_probs",),
    higher_is_better=True,
    citation="Nguyen et al., LEEP, ICML 2020 (arXiv 2002.12462)",
    invariances=("sample_order", "label_permutation", "source_permutation"),
    score_range="[-H(Y), 0]",
)
def leep(source_probs: Any, labels: Any, *, use_log: bool = True) -> float:
    r"""Log expected empirical prediction of the source head's probabilities for the target labels.

    .. math::

        \hat P(y, z) = \frac{1}{n} \sum_{i: y_i = y} \theta_{iz}, \qquad
        \hat P(y \mid z) = \frac{\hat P(y, z)}{\sum_{y'} \hat P(y', z)}, \qquad
        \mathrm{LEEP} = \frac{1}{n} \sum_{i=1}^{n} \log \sum_{z} \hat P(y_i \mid z)\, \theta_{iz}

    Parameters
    ----------
    source_probs : array-like or torch.Tensor of shape (n_samples, n_source_classes)
        Softmax probabilities :math:`\theta` of the checkpoint's own classification head on
        the target samples; rows must sum to one within 1e-3, or within the rounding of their
        dtype when coarser (2**-7 for bfloat16), and are then renormalised exactly.
    labels : array-like of shape (n_samples,)
        Target labels of any hashable type.
    use_log : bool, default=True
        Average :math:`\log \mathrm{EEP}_i` (the paper's LEEP). ``False`` averages
        :math:`\mathrm{EEP}_i` itself, as SFDA's reference code does (compatibility only).

    Returns
    -------
    float
        LEEP in :math:`[-H(\hat Y), 0]` (with ``use_log=False``: in :math:`(0, 1]`); higher is better.
        :math:`-H(\hat Y)` when the source head is uninformative (every row equal), 0 when
        every source class maps to a single target class.

    Raises
    ------
    ValueError
        If ``source_probs`` has NaN/inf or negative entries, rows that do not sum to one
        (logits passed by mistake), a row count different from ``labels``, fewer than two
        columns; or if ``labels`` has a single class.

    Notes
    -----
    A source class with :math:`\hat P(z) = 0` (a column of zeros, e.g. hard one-hot
    probabilities) contributes nothing: its conditional :math:`\hat P(\cdot \mid z)` is set
    to 0. :math:`\mathrm{EEP}_i > 0` holds exactly because sample *i* contributes to its own
    column; it is floored at 1e-300 before the log only to guard against underflow, and
    capped at its exact upper bound 1 to remove rounding. With
    one-hot probabilities LEEP equals :func:`~ckptrank.measures.nce.nce` of the hard labels.
    Splitting a source class into two with proportional probabilities leaves LEEP unchanged.

    Cost: two passes over ``source_probs`` in cache-sized row blocks, O(n Z) time and O(C Z) extra
    memory; float32 input is converted to float64 one block at a time, never copied whole, and the
    validation reads the first pass's row sums and minimum.

    References
    ----------
    .. [1] C. V. Nguyen, T. Hassner, M. Seeger, C. Archambeau, "LEEP: A New Measure to
       Evaluate Transferability of Learned Representations", ICML 2020.

    Examples
    --------
    >>> import numpy as np
    >>> theta = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])
    >>> round(leep(theta, [0, 0, 1, 1]), 6)
    -0.342616
    >>> round(leep(theta, ["a", "a", "b", "b"], use_log=False), 6)
    0.711779
    """
    info = check_labels(labels)
    # Fast path: the checks of check_source_probs (finite, non-negative, rows summing to one) read off
    # the first pass's row sums and minimum, with no float64 copy of the matrix; any doubt -> the full
    # validator, which raises its one-line error (or returns the exactly renormalised rows).
    P = _plain_probs(source_probs, info.n_samples)
    if P is not None:
        joint, sums, lowest = _joint_pass(P, info.y, info.n_classes)
        if not (lowest >= 0 and np.all(np.abs(sums - 1.0) <= _ROW_SUM_ATOL)):
            P = None
    if P is None:
        P = check_source_probs(source_probs, n_samples=info.n_samples)
        joint, sums, _ = _joint_pass(P, info.y, info.n_classes)
    return _leep_from_eep(_eep_pass(P, info.y, joint, sums), use_log)
