"""GBC: Gaussian Bhattacharyya Coefficient between target classes.

M. Pándy, A. Agostinelli, J. Uijlings, V. Ferrari, T. Mensink, "Transferability Estimation
using Bhattacharyya Class Separability", CVPR 2022, https://arxiv.org/abs/2111.12780.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ._linalg import class_means, class_sums, pca_project
from ._registry import register_measure
from ._validation import check_features_and_labels, warn_degenerate, warn_small_classes

__all__ = ["gbc"]

_PAIR_BLOCK_ELEMENTS = 4_000_000  # size of the (rows, C, d') blocks of the pairwise differences
_MAX_MAGNITUDE = 1e100  # larger features overflow the variances


def _class_variances(Z: np.ndarray, y: np.ndarray, means: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-class, per-dimension variances with divisor n_c, shape (C, d')."""
    return class_sums((Z - means[y]) ** 2, y, means.shape[0]) / counts[:, None]


def _pairwise_coefficients_spherical(means: np.ndarray, var: np.ndarray, log_factor: float) -> np.ndarray:
    """``exp(-D_B)`` for every ordered pair of spherical Gaussians; ``var`` has shape (C,)."""
    C, k = means.shape
    dist2 = np.empty((C, C))
    step = max(1, _PAIR_BLOCK_ELEMENTS // max(1, C * k))
    for start in range(0, C, step):  # explicit differences: no cancellation for far-off means
        rows = slice(start, min(C, start + step))
        dist2[rows] = ((means[rows, None, :] - means[None, :, :]) ** 2).sum(axis=2)
    avg = 0.5 * (var[:, None] + var[None, :])
    log_var = np.log(var)
    bhat = dist2 / (8.0 * avg) + 0.5 * log_factor * (
        np.log(avg) - 0.5 * (log_var[:, None] + log_var[None, :])
    )
    return np.exp(-bhat)


def _pairwise_coefficients_diagonal(means: np.ndarray, var: np.ndarray) -> np.ndarray:
    """``exp(-D_B)`` for every ordered pair of diagonal Gaussians; ``var`` has shape (C, d')."""
    C, k = means.shape
    log_var_sum = np.log(var).sum(axis=1)
    out = np.empty((C, C))
    step = max(1, _PAIR_BLOCK_ELEMENTS // max(1, C * k))
    for start in range(0, C, step):
        rows = slice(start, min(C, start + step))
        avg = 0.5 * (var[rows, None, :] + var[None, :, :])
        diff2 = (means[rows, None, :] - means[None, :, :]) ** 2
        bhat = (diff2 / avg).sum(axis=2) / 8.0 + 0.5 * (
            np.log(avg).sum(axis=2) - 0.5 * (log_var_sum[rows, None] + log_var_sum[None, :])
        )
        out[rows] = np.exp(-bhat)
    return out


@register_measure(
    "gbc",
    requires=("features",),
    higher_is_better=True,
    citation="Pándy et al., Transferability Estimation using Bhattacharyya Class Separability, CVPR 2022",
    invariances=("sample_order", "label_permutation", "translation", "rotation"),
    score_range="[-C(C-1), 0]",
)
def gbc(
    features: Any,
    labels: Any,
    *,
    n_components: int | float | None = 64,
    gaussian_type: Literal["spherical", "diagonal"] = "spherical",
    variance_floor: float = 1e-4,
    exact_spherical: bool = False,
) -> float:
    r"""Gaussian Bhattacharyya Coefficient: minus the total overlap of the class Gaussians.

    Each class is a Gaussian :math:`N(\mu_c, \operatorname{diag}(v_c))` in the PCA-reduced
    feature space; with :math:`\bar v = (v_a + v_b)/2`,

    .. math::

        D_B(a, b) = \frac18 \sum_k \frac{(\mu_{a,k} - \mu_{b,k})^2}{\bar v_k}
            + \frac12 \Bigl[\sum_k \log \bar v_k - \tfrac12 \sum_k \log v_{a,k}
            - \tfrac12 \sum_k \log v_{b,k}\Bigr],
        \qquad
        \mathrm{GBC} = -\sum_{a \ne b} e^{-D_B(a, b)},

    the sum running over ordered pairs.

    Parameters
    ----------
    features : array-like or torch.Tensor of shape (n_samples, n_features)
        Penultimate-layer features.
    labels : array-like of shape (n_samples,)
        Target labels of any hashable type.
    n_components : int, float in (0, 1) or None, default=64
        PCA dimension (full SVD solver, capped at ``min(n_samples, n_features)``); a float
        keeps the components explaining more than that fraction of the variance; ``None``
        uses the features as given.
    gaussian_type : {"spherical", "diagonal"}, default="spherical"
        ``"spherical"`` replaces each class's (floored) per-dimension variances by their
        mean; ``"diagonal"`` keeps them.
    variance_floor : float, default=1e-4
        Per-dimension variances are floored at this value before averaging (absolute, so
        the score depends slightly on the feature scale).
    exact_spherical : bool, default=False
        Spherical case only. ``False`` adds the log-variance term once (official code);
        ``True`` adds it once per dimension, the exact Bhattacharyya distance of isotropic
        Gaussians in :math:`d'` dimensions.

    Returns
    -------
    float
        GBC in :math:`[-C(C-1), 0]`; higher (closer to 0, better separated classes) is better.

    Raises
    ------
    ValueError
        On invalid features or labels, features larger than 1e100 in magnitude, or invalid
        ``n_components``, ``gaussian_type`` or ``variance_floor``.

    Warns
    -----
    DegenerateInputWarning
        When a class has a single sample: its variance is 0 and becomes the floor, so it
        overlaps almost nothing.

    Notes
    -----
    Class means and variances use divisor :math:`n_c`. All :math:`C(C-1)` pairs are
    evaluated at once (blocked over rows in the diagonal case). With fewer samples than
    components the PCA keeps ``min(n, d)`` dimensions. Constant feature columns have zero
    variance and are floored. The score is invariant to label permutation and
    translation, and to rotation for the spherical type (the diagonal type only up to the
    choice of principal axes); scaling changes it only through the variance floor.
    Identical class distributions give about :math:`-C(C-1)`, well separated classes
    about 0.

    References
    ----------
    .. [1] M. Pándy et al., "Transferability Estimation using Bhattacharyya Class
       Separability", CVPR 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from ckptrank.measures.gbc import gbc
    >>> X = np.array([[-1.0], [1.0], [1.0], [3.0]])
    >>> round(gbc(X, [0, 0, 1, 1], n_components=None), 10)
    -1.2130613194
    """
    X, info = check_features_and_labels(features, labels)
    if gaussian_type not in ("spherical", "diagonal"):
        raise ValueError(f"unknown gaussian_type {gaussian_type!r}; use 'spherical' or 'diagonal'")
    if not variance_floor > 0:
        raise ValueError(f"variance_floor must be > 0, got {variance_floor!r}; the default is 1e-4")
    top = float(np.abs(X).max())
    if top > _MAX_MAGNITUDE:
        raise ValueError(
            f"gbc: the largest feature magnitude is {top:.3g} (above {_MAX_MAGNITUDE:g}); variances would "
            "overflow float64 - rescale the features"
        )
    if n_components is not None:
        if isinstance(n_components, bool) or not isinstance(n_components, (int, float, np.integer)):
            raise ValueError(f"n_components must be an int, a float in (0, 1) or None, got {n_components!r}")
        if isinstance(n_components, float) and not 0.0 < n_components < 1.0:
            raise ValueError(f"a float n_components must lie in (0, 1), got {n_components}")
        if not isinstance(n_components, float) and n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}; use None to skip the PCA")
        X = pca_project(X, n_components if isinstance(n_components, float) else int(n_components))
    warn_small_classes(info, "gbc")
    counts = info.counts.astype(np.float64)
    means = class_means(X, info.y, info.n_classes)
    raw_var = _class_variances(X, info.y, means, counts)
    if float(raw_var.max(initial=0.0)) < variance_floor and float(np.abs(X).max(initial=0.0)) > 0:
        warn_degenerate(
            f"gbc: every class variance (largest {float(raw_var.max()):.3g}) is below variance_floor="
            f"{variance_floor:g}, so the floor, not the features, sets the overlap; rescale the features "
            "(e.g. standardise them) or lower variance_floor"
        )
    var = np.maximum(raw_var, variance_floor)
    if gaussian_type == "spherical":
        log_factor = float(X.shape[1]) if exact_spherical else 1.0
        coeff = _pairwise_coefficients_spherical(means, var.mean(axis=1), log_factor)
    else:
        coeff = _pairwise_coefficients_diagonal(means, var)
    np.fill_diagonal(coeff, 0.0)
    return float(-coeff.sum()) + 0.0  # + 0.0 turns -0.0 into 0.0
