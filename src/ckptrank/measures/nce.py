"""NCE: Negative Conditional Entropy of the target labels given the source head's hard labels.

A. T. Tran, C. V. Nguyen, T. Hassner, "Transferability and Hardness of Supervised
Classification Tasks", ICCV 2019, https://arxiv.org/abs/1908.08142
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._registry import register_measure
from ._validation import check_labels, check_source_probs, to_numpy, warn_degenerate

__all__ = ["nce"]

#: Fewest samples per occupied source class, on average, below which NCE warns. The plug-in
#: conditional entropy is biased towards 0 by about (C - 1) / (2 m) nats at m samples per source
#: class; 5 is the usual minimum expected count for plug-in statistics of a contingency table.
MIN_SAMPLES_PER_SOURCE_CLASS = 5


def _hard_source_labels(source: Any, n_samples: int) -> tuple[np.ndarray, int | None]:
    """Source labels in 0..Z-1: argmax of probabilities (lowest index on ties) or re-indexed hard labels.

    Also returns the number of source classes of the head (columns of the probabilities), or
    ``None`` for hard labels.
    """
    arr = to_numpy(source, name="source_probs")
    if arr.ndim == 2 and arr.shape[1] == 1 and arr.dtype.kind in "iub":
        arr = arr[:, 0]
    if arr.ndim == 1:
        if arr.dtype.kind not in "iub":
            raise ValueError(
                f"source_probs is 1-D with dtype {arr.dtype}; pass a 2-D (n_samples, n_source_classes) "
                "probability matrix or a 1-D integer array of hard source labels"
            )
        if arr.shape[0] != n_samples:
            raise ValueError(
                f"source labels have {arr.shape[0]} entries but labels has {n_samples}; "
                "they must describe the same samples"
            )
        return np.unique(arr, return_inverse=True)[1].ravel(), None
    fast = _plain_argmax(source, n_samples)
    if fast is not None:
        return fast
    theta = check_source_probs(source, n_samples=n_samples)
    return np.argmax(theta, axis=1), theta.shape[1]  # numpy's argmax returns the first maximum on ties


#: Rows per block of the fast path (about 4 MiB of float64 per block).
_BLOCK_BYTES = 4 * 2**20
#: :func:`check_source_probs`'s row-sum tolerance for float32/float64 input (its default ``atol``).
_ROW_SUM_ATOL = 1e-3
#: The fast path's tolerance: a float32 row sum of up to millions of entries is within 1e-5 of the
#: float64 one, so rows it accepts are rows :func:`check_source_probs` accepts; rows near the
#: boundary take the slow path, which decides exactly.
_FAST_ATOL = _ROW_SUM_ATOL - 1e-5


def _plain_argmax(source: Any, n_samples: int) -> tuple[np.ndarray, int] | None:
    """Argmax of a float32/float64 probability matrix, validated in the same pass; None to take the slow path.

    The argmax of the row-normalised probabilities is the argmax of the rows themselves (a
    positive scale per row), so no float64 copy of the matrix is needed: one pass in row blocks
    reads each row's sum (in the input's precision, checked with a tolerance tighter by 1e-5),
    smallest entry and argmax. Anything in doubt (another dtype or shape,
    NaN or infinity, a negative entry, a row sum off by more than the tolerance) returns None and
    goes through :func:`check_source_probs`, so errors and accepted inputs are exactly its own.
    """
    if not isinstance(source, np.ndarray) or source.dtype not in (np.float32, np.float64):
        return None
    if source.ndim != 2 or source.shape[0] != n_samples or source.shape[1] < 2:
        return None
    if not source.flags.c_contiguous:
        return None  # rows summed along a stride accumulate sequentially: leave them to the exact check
    n, columns = source.shape
    z = np.empty(n, dtype=np.intp)
    step = max(1, _BLOCK_BYTES // (8 * columns))
    for start in range(0, n, step):
        block = source[start : start + step]
        sums = block.sum(axis=1)  # in the input's precision: 4-6x faster than a float64 accumulation
        if not (np.isfinite(sums).all() and block.min() >= 0 and np.abs(sums - 1.0).max() <= _FAST_ATOL):
            return None
        z[start : start + step] = np.argmax(block, axis=1)
    return z, columns


def _warn_if_undersampled(z: np.ndarray, n_source_columns: int | None) -> None:
    """Warn when the samples spread over too many source classes for a meaningful -H(Y | Z)."""
    n = z.shape[0]
    occupied = int(np.unique(z).size)
    if n < MIN_SAMPLES_PER_SOURCE_CLASS * occupied:
        of = "" if n_source_columns is None else f" of {n_source_columns}"
        warn_degenerate(
            f"nce: {n} samples fall into {occupied} distinct source classes{of} "
            f"({n / occupied:.3g} per class, fewer than {MIN_SAMPLES_PER_SOURCE_CLASS}): H(Y|Z) is "
            "underestimated and NCE biased towards its maximum 0; score more samples (at least "
            f"{MIN_SAMPLES_PER_SOURCE_CLASS} per occupied source class), or use leep",
            stacklevel=4,
        )


def _conditional_entropy_score(z: np.ndarray, y: np.ndarray, n_classes: int) -> float:
    """-H(Y | Z) in nats for labels ``y`` in 0..C-1 and source labels ``z`` in 0..Z-1."""
    n = y.shape[0]
    n_source = int(z.max()) + 1
    joint = np.bincount(z * n_classes + y, minlength=n_source * n_classes).reshape(n_source, n_classes)
    marginal = joint.sum(axis=1, keepdims=True)
    nz = joint > 0
    counts = joint[nz].astype(np.float64)
    return float(np.sum(counts * np.log(counts / np.broadcast_to(marginal, joint.shape)[nz])) / n)


@register_measure(
    "nce",
    requires=("source_probs",),
    higher_is_better=True,
    citation="Tran et al., Transferability and Hardness of Supervised Classification Tasks, ICCV 2019",
    invariances=("sample_order", "label_permutation", "source_permutation"),
    score_range="[-H(Y), 0]",
)
def nce(source_probs: Any, labels: Any) -> float:
    r"""Negative conditional entropy of the target labels given the source head's predicted class.

    .. math::

        z_i = \arg\max_s \theta_{is}, \qquad
        \hat P(y, z) = \frac{1}{n} \#\{i : y_i = y, z_i = z\}, \qquad
        \mathrm{NCE} = -H(Y \mid Z) = \sum_{y, z:\, \hat P(y, z) > 0}
        \hat P(y, z) \log \frac{\hat P(y, z)}{\hat P(z)}

    Parameters
    ----------
    source_probs : array-like or torch.Tensor of shape (n_samples, n_source_classes) or (n_samples,)
        Softmax probabilities :math:`\theta` of the checkpoint's own head (the hard label is
        their argmax, the lowest index on ties), or a 1-D integer array of hard source labels
        :math:`z_i` (any integers; only which samples share a value matters).
    labels : array-like of shape (n_samples,)
        Target labels of any hashable type.

    Returns
    -------
    float
        NCE in :math:`[-H(\hat Y), 0]` (nats); higher is better. 0 iff the source label
        determines the target label; :math:`-H(\hat Y)` iff they are independent (e.g. a
        constant source label).

    Raises
    ------
    ValueError
        If the probabilities are invalid (NaN/inf, negative, rows not summing to one), a
        1-D ``source_probs`` is not integer, the lengths differ, or ``labels`` has a single class.

    Warns
    -----
    DegenerateInputWarning
        When the samples fall into so many distinct source classes that fewer than
        ``MIN_SAMPLES_PER_SOURCE_CLASS = 5`` samples land in each on average (e.g. 50 samples
        under a 1000-class head); the message names the numbers. The score is still returned.

    Notes
    -----
    NCE is a plug-in estimate: :math:`H(Y \mid Z = z)` is estimated from the :math:`m_z`
    samples with source label :math:`z`, and is biased towards 0 when they are few. For labels
    independent of :math:`z`, with :math:`C` balanced classes and :math:`m` samples per
    occupied source class, NCE exceeds :math:`-H(Y)` by about :math:`(C - 1) / (2m)` nats
    (Miller-Madow; measured 0.43, 0.12 and 0.06 nats for :math:`C = 2` at :math:`m = 1, 5, 10`):
    with ~1 sample per source class NCE is near its maximum 0 for any labels (-0.06 on random
    probabilities over 1000 source classes with 50 samples, where LEEP gives -0.68). NCE
    therefore warns when :math:`n / K_z < 5`, with :math:`K_z` the number of distinct source
    labels (5 is the usual minimum expected count for plug-in statistics of a contingency
    table). LEEP on soft probabilities is much less affected (with one-hot probabilities it
    equals NCE and shares the bias).

    Empty cells contribute :math:`0 \log 0 = 0`; no smoothing is added. PARC's reference
    code adds 1e-5 to every cell of the joint and marginal before the log, a bias that grows
    with the number of cells; it is deliberately not reproduced. LOGME/TLLIB add 1e-20
    inside the log (negligible). With one-hot probabilities NCE equals
    :func:`~ckptrank.measures.leep.leep`. Source-class permutation invariance holds for
    probabilities without exact ties in a row (ties are broken by column index).

    References
    ----------
    .. [1] A. T. Tran, C. V. Nguyen, T. Hassner, "Transferability and Hardness of Supervised
       Classification Tasks", ICCV 2019.

    Examples
    --------
    >>> import numpy as np
    >>> z, y = np.repeat([0, 0, 1, 1], 5), np.repeat([0, 1, 1, 1], 5)  # 10 samples per source class
    >>> round(nce(z, y), 6)
    -0.346574
    >>> theta = np.repeat([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]], 5, axis=0)
    >>> round(nce(theta, np.repeat(["a", "a", "b", "b"], 5)), 6)
    -0.693147
    """
    info = check_labels(labels)
    z, n_source_classes = _hard_source_labels(source_probs, info.n_samples)
    _warn_if_undersampled(z, n_source_classes)
    return _conditional_entropy_score(z, info.y, info.n_classes)
