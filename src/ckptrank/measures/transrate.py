"""TransRate: coding-rate reduction of the features by the target labels.

L.-K. Huang, J. Huang, Y. Rong, Q. Yang, Y. Wei, "Frustratingly Easy Transferability
Estimation", ICML 2022, https://arxiv.org/abs/2106.09362.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ._registry import register_measure
from ._validation import check_features_and_labels, warn_degenerate, warn_small_classes

__all__ = ["transrate"]

_MAX_MAGNITUDE = 1e100  # larger features overflow the Gram matrices


def _logdet_identity_plus(gram: np.ndarray, scale: float) -> float:
    """``log det(I + scale * gram)`` for a symmetric PSD ``gram``."""
    with np.errstate(over="ignore"):
        M = scale * gram
    if not np.isfinite(M).all():
        raise ValueError(
            f"transrate: the features are too large for eps (Gram entries up to {np.abs(gram).max():.3g}, "
            f"scaled by {scale:.3g}); rescale the features or raise eps"
        )
    M[np.diag_indices_from(M)] += 1.0
    sign, logdet = np.linalg.slogdet(M)
    if sign > 0:
        return float(logdet)
    # Only when I is lost in round-off next to the Gram term: use the clipped eigenvalues instead.
    evals = np.clip(np.linalg.eigvalsh(scale * gram), 0.0, None)
    return float(np.log1p(evals).sum())


def _coding_rate(A: np.ndarray, eps: float, gram: np.ndarray | None = None) -> float:
    """``R(A, eps) = 1/2 log det(I_d + A^T A / (m eps))`` for A with m rows.

    Uses the Sylvester identity ``det(I_d + A^T A c) = det(I_m + A A^T c)`` when m < d, so the
    determinant is of size min(m, d). ``gram`` optionally supplies that smaller Gram matrix
    (``A A^T`` if m < d, else ``A^T A``).
    """
    m, d = A.shape
    if gram is None:
        gram = A @ A.T if m < d else A.T @ A
    return 0.5 * _logdet_identity_plus(gram, 1.0 / (m * eps))


@register_measure(
    "transrate",
    requires=("features",),
    higher_is_better=True,
    citation="Huang et al., Frustratingly Easy Transferability Estimation, ICML 2022",
    invariances=("sample_order", "label_permutation", "translation", "rotation"),
    score_range="unbounded (>= 0 with frequency weighting)",
)
def transrate(
    features: Any,
    labels: Any,
    *,
    eps: float = 1e-4,
    class_weighting: Literal["uniform", "frequency"] = "uniform",
) -> float:
    r"""TransRate: coding rate of all features minus the (weighted) mean coding rate per class.

    .. math::

        R(A, \epsilon) = \tfrac12 \log\det\Bigl(I_d + \frac{1}{m\epsilon} A^\top A\Bigr),
        \qquad
        \mathrm{TrR} = R(Z, \epsilon) - \sum_c w_c\, R(Z_c, \epsilon),

    where :math:`Z` are the globally centred features, :math:`Z_c` the rows of class c
    (not re-centred, :math:`m = n_c`), and :math:`w_c = 1/C` (``"uniform"``) or
    :math:`n_c / n` (``"frequency"``).

    Parameters
    ----------
    features : array-like or torch.Tensor of shape (n_samples, n_features)
        Penultimate-layer features.
    labels : array-like of shape (n_samples,)
        Target labels of any hashable type.
    eps : float, default=1e-4
        Distortion :math:`\epsilon` (it plays the role of :math:`\epsilon^2` of the
        rate-distortion formula); absolute, so the score depends on the feature scale.
    class_weighting : {"uniform", "frequency"}, default="uniform"
        Weights of the class coding rates: ``"uniform"`` as the reference code,
        ``"frequency"`` (:math:`n_c / n`) as the rate-reduction formulation.

    Returns
    -------
    float
        TransRate in nats; higher is better. Non-negative with ``"frequency"`` weighting.

    Raises
    ------
    ValueError
        On invalid features or labels, features larger than 1e100 in magnitude, ``eps <= 0``
        or an unknown ``class_weighting``.

    Warns
    -----
    DegenerateInputWarning
        When a class has a single sample (its coding rate is that of one point,
        :math:`\frac12\log(1 + \lVert z\rVert^2/\epsilon)`, which is still well defined).

    Notes
    -----
    Every log-determinant is taken in the smaller of the two spaces (Sylvester identity
    :math:`\det(I_d + A^\top A c) = \det(I_m + A A^\top c)`), both for the classes
    (:math:`n_c < d`) and for the global term (:math:`n < d`), so the cost is
    :math:`O(\sum_c \min(n_c, d)^2 \max(n_c, d))`. When every class has
    :math:`n_c \ge d` the global Gram matrix is the sum of the class Gram matrices.

    With frequency weights TrR :math:`\ge 0` by concavity of log det; the two weightings
    agree for balanced classes. The score is invariant to translation (global centring),
    rotation and label permutation, but not to scaling (absolute :math:`\epsilon`).
    Constant feature columns contribute nothing. The TransRate paper's snippet and TLLIB
    use uniform weights and no per-class centring, reproduced by the defaults.

    References
    ----------
    .. [1] L.-K. Huang et al., "Frustratingly Easy Transferability Estimation", ICML 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from ckptrank.measures.transrate import transrate
    >>> angles = np.repeat(2 * np.pi * np.arange(3) / 3, 4)
    >>> Z = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    >>> round(transrate(Z, np.repeat([0, 1, 2], 4)), 5)
    3.91217
    """
    X, info = check_features_and_labels(features, labels)
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps!r}; the default distortion is 1e-4")
    if class_weighting not in ("uniform", "frequency"):
        raise ValueError(f"unknown class_weighting {class_weighting!r}; use 'uniform' or 'frequency'")
    top = float(np.abs(X).max())
    if top > _MAX_MAGNITUDE:
        raise ValueError(
            f"transrate: the largest feature magnitude is {top:.3g} (above {_MAX_MAGNITUDE:g}); squared "
            "features would overflow float64 - rescale the features"
        )
    warn_small_classes(info, "transrate")
    d = X.shape[1]
    Z = X - X.mean(axis=0)
    spread = float(np.einsum("ij,ij->", Z, Z)) / Z.shape[0]
    if 0.0 < spread < eps:
        warn_degenerate(
            f"transrate: the mean squared norm of the centred features ({spread:.3g}) is below eps={eps:g}, "
            "so every coding rate is near zero and the score says little; rescale the features "
            "(e.g. standardise them) or lower eps"
        )
    order = np.argsort(info.y, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(info.counts)])
    class_rates = np.empty(info.n_classes)
    summed_gram = np.zeros((d, d)) if info.counts.min() >= d else None
    for c in range(info.n_classes):
        Zc = Z[order[bounds[c] : bounds[c + 1]]]
        gram = Zc @ Zc.T if Zc.shape[0] < d else Zc.T @ Zc
        if summed_gram is not None:
            summed_gram += gram
        class_rates[c] = _coding_rate(Zc, eps, gram=gram)
    # When every class is larger than d, Z^T Z = sum_c Z_c^T Z_c saves a pass over the data.
    total = _coding_rate(Z, eps, gram=summed_gram)
    weights = info.priors if class_weighting == "frequency" else np.full(info.n_classes, 1.0 / info.n_classes)
    return float(total - weights @ class_rates)
