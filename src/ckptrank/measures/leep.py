"""LEEP: Log Expected Empirical Prediction.

C. V. Nguyen, T. Hassner, M. Seeger, C. Archambeau, "LEEP: A New Measure to Evaluate
Transferability of Learned Representations", ICML 2020, https://arxiv.org/abs/2002.12462
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._registry import register_measure
from ._validation import check_labels, check_source_probs

__all__ = ["leep"]

#: Floor on the expected empirical prediction before the log (guards against underflow only:
#: in exact arithmetic every EEP_i is positive, because sample i contributes to its own column).
_EEP_FLOOR = 1e-300


def _class_sums(theta: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows of ``theta`` summed per label, shape (n_classes, n_columns), in O(n * n_columns)."""
    order = np.argsort(y, kind="stable")
    starts = np.searchsorted(y[order], np.arange(n_classes))
    sums = np.add.reduceat(theta[order], starts, axis=0)
    # reduceat gives the next row for an empty class; the callers' labels cover every class, but be exact.
    sums[np.bincount(y, minlength=n_classes) == 0] = 0.0
    return sums


def _expected_empirical_prediction(theta: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """EEP_i = sum_z P(y_i | z) theta_iz for probabilities ``theta`` (n, Z) and labels ``y`` in 0..C-1."""
    joint = _class_sums(theta, y, n_classes)  # n * P(y, z)
    marginal = joint.sum(axis=0)  # n * P(z)
    conditional = np.zeros_like(joint)
    np.divide(joint, marginal, out=conditional, where=marginal > 0)  # P(y | z); empty columns -> 0
    return np.einsum("iz,iz->i", theta, conditional[y])


def _leep_score(theta: np.ndarray, y: np.ndarray, n_classes: int, *, use_log: bool = True) -> float:
    """LEEP of validated probabilities (rows summing to one) and labels re-indexed to 0..C-1."""
    # EEP_i <= sum_z theta_iz = 1 exactly; the clip removes rounding above 1 (so LEEP <= 0 holds exactly).
    eep = np.minimum(_expected_empirical_prediction(theta, y, n_classes), 1.0)
    if use_log:
        return float(np.mean(np.log(np.maximum(eep, _EEP_FLOOR))))
    return float(np.mean(eep))


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
    theta = check_source_probs(source_probs, n_samples=info.n_samples)
    return _leep_score(theta, info.y, info.n_classes, use_log=use_log)
