"""H-score and its shrinkage (regularized) variant.

Y. Bao, Y. Li, S.-L. Huang, L. Zhang, L. Zheng, A. Zamir, L. Guibas, "An Information-Theoretic
Approach to Transferability in Task Transfer Learning", ICIP 2019,
https://doi.org/10.1109/ICIP.2019.8803726; and S. Ibrahim, N. Ponomareva, R. Mazumder,
"Newer is not always better: Rethinking transferability metrics, their peculiarities,
stability and performance", ECML-PKDD 2022, https://arxiv.org/abs/2110.06893.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import linalg

from ._linalg import class_sums
from ._registry import Saturation, ScoreContext, register_measure
from ._validation import LabelInfo, check_features_and_labels, warn_degenerate

__all__ = ["hscore", "reg_hscore"]


def _centred_class_indicator(info: LabelInfo) -> np.ndarray:
    """``B`` of shape (C, n) with ``B^T B = P - 11^T/n``, P the projection on class indicators.

    Row c is ``1[y = c] / sqrt(n_c) - sqrt(n_c) / n``. For centred features Xc the
    between-class covariance is ``Xc^T B^T B Xc / n``.
    """
    counts = info.counts.astype(np.float64)
    B = info.one_hot().T / np.sqrt(counts)[:, None]
    return B - (np.sqrt(counts) / info.n_samples)[:, None]


def _centred(X: np.ndarray) -> np.ndarray:
    """Centred features scaled by a power of two (exact) so that their largest magnitude is in [0.5, 1).

    Both H-scores are scale invariant, so this only protects the Gram matrices and the fourth
    moments of Ledoit-Wolf from overflow and underflow.
    """
    Xc = X - X.mean(axis=0)
    top = float(np.abs(Xc).max())
    return np.ldexp(Xc, -np.frexp(top)[1]) if top > 0 else Xc


def _between_factor(Xc: np.ndarray, info: LabelInfo) -> np.ndarray:
    """``Mb`` of shape (C, d) with rows ``sqrt(pi_c) (mu_c - mu)``, so ``Sigma_b = Mb^T Mb``."""
    sums = class_sums(Xc, info.y, info.n_classes)
    return sums / np.sqrt(info.counts * float(Xc.shape[0]))[:, None]


def _in_feature_space(n: int, d: int) -> bool:
    """Whether to work with the d x d covariance (``n > d + 1``) rather than the n x n kernel.

    Sample space is used whenever ``d >= n - 1``, the regime where the H-score saturates at C - 1:
    there the value is a sum of squared norms of projections on orthonormal eigenvectors, accurate
    to a few ulps of C - 1, whereas the feature-space ratios ``w_i / lam_i`` lose a factor of the
    condition number of the covariance (about 2e-10 relative at condition 1e6 with d = n - 1).
    """
    return n > d + 1


def _gram(Xc: np.ndarray) -> np.ndarray:
    """The Gram matrix over n: ``Xc^T Xc / n`` (d x d) in feature space, else ``Xc Xc^T / n`` (n x n).

    Both have the nonzero eigenvalues, the trace and the Frobenius norm of ``S = Xc^T Xc / n``.
    The space is chosen by :func:`_in_feature_space`.
    """
    n, d = Xc.shape
    return (Xc.T @ Xc if _in_feature_space(n, d) else Xc @ Xc.T) / n


def _spectrum(Xc: np.ndarray, gram: np.ndarray, info: LabelInfo) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues of the total covariance and the between-class weight of each eigenvector.

    Returns ``lam`` (r,), eigenvalues of ``Sigma_t = Xc^T Xc / n`` (r = min(n, d); the
    remaining ones are zero), and ``w`` (r,) with ``w_i = v_i^T Sigma_b v_i`` for the
    matching unit eigenvectors ``v_i``. Works in feature space (``n > d + 1``) or sample
    space (``d >= n - 1``, :func:`_in_feature_space`); in sample space
    ``w_i = lam_i ||B u_i||^2`` exactly, so directions outside the span of the data never
    enter (no round-off eigenvalue of the null space is inverted).
    """
    n, d = Xc.shape
    lam, vecs = linalg.eigh(gram, driver="evd")
    if _in_feature_space(n, d):
        w = ((_between_factor(Xc, info) @ vecs) ** 2).sum(axis=0)
    else:
        w = lam * ((_centred_class_indicator(info) @ vecs) ** 2).sum(axis=0)
    return lam, w


def _ledoit_wolf_shrinkage(Xc: np.ndarray, gram: np.ndarray) -> float:
    """Ledoit-Wolf shrinkage of ``S = Xc^T Xc / n`` for centred ``Xc`` (scikit-learn's formula).

    alpha = min(b2, delta2) / delta2 with mu = tr(S)/d, delta2 = ||S - mu I||_F^2 / d,
    b2 = (sum_i ||x_i||^4 / n - ||S||_F^2) / (n d); 0 when b2 == 0. ``gram`` is
    :func:`_gram` of ``Xc``.
    """
    n, d = Xc.shape
    trace = float(np.trace(gram))
    frob2 = float((gram**2).sum())
    mu = trace / d
    delta2 = (frob2 - 2.0 * mu * trace + d * mu**2) / d
    row4 = float(((Xc**2).sum(axis=1) ** 2).sum())
    b2 = min((row4 / n - frob2) / (n * d), delta2)
    if b2 <= 0.0 or delta2 <= 0.0:
        return 0.0
    return float(b2 / delta2)


def _pinv_trace(lam: np.ndarray, w: np.ndarray, rcond: float) -> float:
    """``sum_i w_i / lam_i`` over eigenvalues above ``rcond * max|lam|`` (numpy's hermitian pinv rule).

    Eigenvalues below the round-off level ``r * eps * max|lam|`` of an r x r eigendecomposition
    are always dropped: their eigenvectors are arbitrary directions of the null space.
    """
    top = np.abs(lam).max()
    cutoff = max(rcond, lam.size * np.finfo(np.float64).eps) * top
    keep = np.abs(lam) > cutoff
    return float((w[keep] / lam[keep]).sum()) if top > 0 else 0.0


def _warn_constant(X: np.ndarray, measure: str) -> bool:
    """Warn and return True when every feature column is constant (no variance at all)."""
    if np.ptp(X, axis=0).max() > 0:
        return False
    warn_degenerate(f"{measure}: every feature column is constant; the score is 0 (no between-class spread)")
    return True


def _hscore_pinv(X: np.ndarray, info: LabelInfo, rcond: float, measure: str) -> float:
    """tr(pinv(Sigma_t) Sigma_b), warning about saturation and constant features."""
    n, d = X.shape
    if _warn_constant(X, measure):
        return 0.0
    if d >= n - 1:
        warn_degenerate(
            f"{measure}: {d} feature dimensions for {n} samples (d >= n - 1); the H-score saturates at "
            f"C - 1 = {info.n_classes - 1} for any labels. Use reg_hscore or reduce the dimension (PCA)"
        )
    Xc = _centred(X)
    lam, w = _spectrum(Xc, _gram(Xc), info)
    return _pinv_trace(lam, w, rcond)


#: Relative tolerance of a saturated H-score around its maximum (see :func:`_saturation`).
SATURATION_RTOL = 1e-9


def _saturation(context: ScoreContext) -> Saturation:
    r"""The H-scores' maximum ``min(C - 1, d)`` and the round-off tolerance ``1e-9 * max(C - 1, 1)`` there.

    Every eigenvalue of :math:`\Sigma_t^{+}\Sigma_b` lies in [0, 1] and at most
    ``min(C - 1, d)`` are nonzero, so H <= min(C - 1, d), reached when the within-class
    scatter vanishes on the data span (always when ``d >= n - 1``). Tolerance: a saturated
    score is computed in sample space as a sum of squared norms of the between-class factor
    projected on the computed eigenvectors; its error is a few ulps of C - 1 times a factor
    that grows with the condition number of the kept spectrum. Measured: at most 6e-16
    relative on the real neucrab-mini v1 text features (MiniLM and its layers, condition numbers
    up to 5e4) and on random features (n = 256..2000, d = 384..4096), 5e-13 at condition
    number 1e6 with d = n - 1. 1e-9 keeps a margin of more than 1000 above that; an
    unsaturated score within it of C - 1 would need within-class variance below 1e-9 of the
    total along every discriminative direction, i.e. features that already determine the label.
    """
    n_classes = context.require("n_classes")
    top = n_classes - 1 if context.n_features is None else min(n_classes - 1, context.n_features)
    label = f"C-1 = {n_classes - 1}" if top == n_classes - 1 else f"d = {top} (< C-1 = {n_classes - 1})"
    return Saturation(maximum=float(top), atol=SATURATION_RTOL * max(top, 1), label=label)


@register_measure(
    "hscore",
    requires=("features",),
    higher_is_better=True,
    citation="Bao et al., An Information-Theoretic Approach to Transferability in Task Transfer Learning, "
    "ICIP 2019",
    invariances=("sample_order", "label_permutation", "translation", "rotation", "isotropic_scale"),
    score_range="[0, C-1]",
    saturation=_saturation,
)
def hscore(features: Any, labels: Any, *, rcond: float = 1e-15) -> float:
    r"""H-score: trace of the between-class covariance whitened by the total covariance.

    .. math::

        H = \operatorname{tr}\bigl(\Sigma_t^{+} \Sigma_b\bigr), \qquad
        \Sigma_t = \frac1n \sum_i (x_i - \mu)(x_i - \mu)^\top, \qquad
        \Sigma_b = \sum_c \pi_c (\mu_c - \mu)(\mu_c - \mu)^\top,

    the covariance of the features and of the features replaced by their class means,
    both with divisor n (any common divisor gives the same value).

    Parameters
    ----------
    features : array-like or torch.Tensor of shape (n_samples, n_features)
        Penultimate-layer features.
    labels : array-like of shape (n_samples,)
        Target labels of any hashable type.
    rcond : float, default=1e-15
        Relative cut-off of the pseudo-inverse: eigenvalues of :math:`\Sigma_t` at or below
        ``rcond`` times the largest are treated as zero (as ``numpy.linalg.pinv``). Those
        below the round-off level ``min(n, d) * 2.2e-16`` times the largest are always
        treated as zero.

    Returns
    -------
    float
        H-score in :math:`[0, \min(C - 1, d)]`; higher is better.

    Raises
    ------
    ValueError
        On invalid features or labels, or ``rcond`` outside [0, 1).

    Warns
    -----
    DegenerateInputWarning
        When ``n_features >= n_samples - 1``: the score saturates.

    Notes
    -----
    The eigendecomposition is taken in feature space (``d x d`` covariance, ``n > d + 1``) or
    in sample space (``n x n`` kernel, ``d >= n - 1``); the second never inverts round-off
    eigenvalues of the null space, so the value is exactly
    :math:`\operatorname{tr}(\Sigma_t^{+}\Sigma_b)` on the span of the data.

    *Saturation.* When ``d >= n - 1`` and the features are in general position, the
    within-class scatter has a (C-1)-dimensional null space inside the data span and
    H = C - 1 for *any* labelling (random features included); a
    :class:`DegenerateInputWarning` is emitted. Use :func:`reg_hscore` or reduce the
    dimension first. Saturated scores are computed in sample space as
    :math:`\sum_i \lVert B u_i \rVert^2` and land within a few ulps of C - 1 (at most
    6e-16 relative for n = 256..2000, d = 384..4096), so checkpoints that saturate differ only
    by round-off: :func:`ckptrank.measures.snap_saturated` makes them exact ties at the
    maximum :math:`\min(C - 1, d)` that this measure declares, with tolerance
    :math:`10^{-9}(C - 1)` (see :func:`_saturation`). Constant feature columns are ignored by
    the pseudo-inverse; entirely constant features give 0 with a
    :class:`DegenerateInputWarning`. Classes with one sample need no special handling.

    The score is invariant to any invertible affine map of the features (when
    :math:`\Sigma_t` is full rank) and to label permutation. Reference implementations
    differ: TLLIB uses ``np.cov`` (divisor n - 1) for both matrices (same value); GR uses
    ``rcond=1e-5`` and an element-wise product before the trace (a different quantity,
    not reproduced).

    References
    ----------
    .. [1] Y. Bao et al., "An Information-Theoretic Approach to Transferability in Task
       Transfer Learning", ICIP 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from ckptrank.measures.hscore import hscore
    >>> round(hscore(np.array([[-1.0], [1.0], [1.0], [3.0]]), [0, 0, 1, 1]), 6)
    0.5
    """
    X, info = check_features_and_labels(features, labels)
    if not 0.0 <= rcond < 1.0:
        raise ValueError(
            f"rcond must lie in [0, 1), got {rcond!r}; the default 1e-15 matches numpy.linalg.pinv"
        )
    return _hscore_pinv(X, info, rcond, "hscore")


@register_measure(
    "reg_hscore",
    requires=("features",),
    higher_is_better=True,
    citation="Ibrahim et al., Newer is not always better: Rethinking transferability metrics, their "
    "peculiarities, stability and performance, ECML-PKDD 2022",
    invariances=("sample_order", "label_permutation", "translation", "rotation", "isotropic_scale"),
    score_range="[0, C-1)",
    saturation=_saturation,
)
def reg_hscore(features: Any, labels: Any, *, shrinkage: float | None = None) -> float:
    r"""Shrinkage H-score: H-score with a Ledoit-Wolf shrunk total covariance.

    .. math::

        H_\alpha = \operatorname{tr}\bigl(\Sigma_\alpha^{-1} (1 - \alpha)\Sigma_b\bigr),
        \qquad \Sigma_\alpha = (1 - \alpha) S + \alpha \frac{\operatorname{tr} S}{d} I,

    with :math:`S` the covariance of the centred features and :math:`\Sigma_b` the
    between-class covariance, both with divisor n, and :math:`\alpha` the Ledoit-Wolf
    shrinkage of :math:`S` (scikit-learn's formula).

    Parameters
    ----------
    features : array-like or torch.Tensor of shape (n_samples, n_features)
        Penultimate-layer features.
    labels : array-like of shape (n_samples,)
        Target labels of any hashable type.
    shrinkage : float in [0, 1] or None, default=None
        ``None`` estimates :math:`\alpha` by Ledoit-Wolf (equal to
        ``sklearn.covariance.ledoit_wolf(features)[1]``); a float fixes it. ``0`` gives the
        plain :func:`hscore`, ``1`` gives 0.

    Returns
    -------
    float
        Shrinkage H-score in :math:`[0, C - 1)` (``C - 1`` only when :math:`\alpha = 0`);
        higher is better.

    Raises
    ------
    ValueError
        On invalid features or labels, or ``shrinkage`` outside [0, 1].

    Notes
    -----
    The bounds follow from :math:`(1 - \alpha)\Sigma_b \preceq \Sigma_\alpha`, and
    :math:`H_\alpha \to H` as :math:`\alpha \to 0`. :math:`\Sigma_\alpha` is well
    conditioned, so the value uses a Cholesky solve when ``n > d + 1``; otherwise the same
    trace is computed in sample space from the eigenpairs :math:`(\lambda_i, u_i)` of the
    ``n x n`` kernel :math:`X_c X_c^\top / n`, as
    :math:`\sum_i w_i (1-\alpha) / ((1-\alpha)\lambda_i + \alpha\,\mathrm{tr}S/d)` with
    :math:`w_i` the between-class variance along the matching principal direction, at cost
    :math:`O(n^2 d + n^3)`.

    This is the recommended H-score when ``d`` is comparable to ``n``: it does not saturate
    at C - 1 for ``d >> n``, although random features still score well above 0 there (the
    sample eigenvalues, about d/n, dominate the shrinkage target; n=50, d=2048, C=5 gives
    about 2.5 for random features and 4.0 for one-hot plus noise). When :math:`\alpha = 0`
    (estimated when there is no sampling noise to shrink, or fixed) the value is
    :func:`hscore`'s, including its saturation warning and its declared maximum C - 1 (see
    :func:`ckptrank.measures.snap_saturated`). Entirely constant features give 0
    with a :class:`DegenerateInputWarning`; constant feature columns are fine.

    Deviation from TLLIB: one divisor (n) everywhere, whereas TLLIB mixes the Ledoit-Wolf
    divisor n with ``np.cov``'s n - 1 for the between-class term (a factor n / (n - 1)).

    References
    ----------
    .. [1] S. Ibrahim, N. Ponomareva, R. Mazumder, "Newer is not always better: Rethinking
       transferability metrics, their peculiarities, stability and performance",
       ECML-PKDD 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from ckptrank.measures.hscore import reg_hscore
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1, 2], 50)
    >>> X = np.eye(8)[y] * 2 + rng.standard_normal((150, 8))
    >>> 0 < reg_hscore(X, y) < 2
    True
    """
    X, info = check_features_and_labels(features, labels)
    if shrinkage is not None and not 0.0 <= shrinkage <= 1.0:
        raise ValueError(f"shrinkage must lie in [0, 1] or be None (Ledoit-Wolf), got {shrinkage!r}")
    n, d = X.shape
    Xc = _centred(X)
    gram = _gram(Xc)
    alpha = _ledoit_wolf_shrinkage(Xc, gram) if shrinkage is None else float(shrinkage)
    if alpha == 0.0:
        return _hscore_pinv(X, info, 1e-15, "reg_hscore")
    if _warn_constant(X, "reg_hscore") or alpha == 1.0:
        return 0.0
    mu = float(np.trace(gram)) / d  # tr(S) / d
    if _in_feature_space(n, d):
        Mb = _between_factor(Xc, info)
        shrunk = (1.0 - alpha) * gram
        shrunk[np.diag_indices(d)] += alpha * mu
        solved = linalg.cho_solve(linalg.cho_factor(shrunk, lower=True), Mb.T)
        return float((1.0 - alpha) * (Mb * solved.T).sum())
    lam, w = _spectrum(Xc, gram, info)
    lam = np.clip(lam, 0.0, None)
    return float((1.0 - alpha) * (w / ((1.0 - alpha) * lam + alpha * mu)).sum())
