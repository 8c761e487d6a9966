"""NLEEP: LEEP with the source head replaced by a Gaussian mixture fitted on the features.

Y. Li, X. Jia, R. Sang, Y. Zhu, B. Green, L. Wang, B. Gong, "Ranking Neural Checkpoints",
CVPR 2021, https://arxiv.org/abs/2011.11200
"""

from __future__ import annotations

from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from ._gmm import CovarianceType, InitMethod, check_gmm_options, fit_gaussian_mixture
from ._linalg import pca_project
from ._registry import register_measure
from ._validation import check_features_and_labels, power_of_two_scaled, warn_degenerate
from .leep import _leep_score

__all__ = ["nleep"]


def _n_components(n_components: int | None, ratio: float, n_classes: int, n_samples: int) -> int:
    """K = ratio * C (or the explicit n_components), capped at floor(n / 2) with a warning."""
    if n_components is None:
        if (
            isinstance(ratio, bool)
            or not isinstance(ratio, (int, float, np.integer, np.floating))
            or ratio <= 0
        ):
            raise ValueError(f"n_components_ratio must be a positive number, got {ratio!r}")
        k = max(1, int(ratio * n_classes))
        what = f"n_components_ratio * C = {ratio} * {n_classes} = {k}"
    else:
        if (
            isinstance(n_components, bool)
            or not isinstance(n_components, (int, np.integer))
            or n_components < 1
        ):
            raise ValueError(f"n_components must be a positive integer, got {n_components!r}")
        k = int(n_components)
        what = f"n_components = {k}"
    cap = max(1, n_samples // 2)
    if k > cap:
        warn_degenerate(
            f"nleep: {what} exceeds half the {n_samples} samples; using K = {cap} Gaussian components "
            "(the EM would fit about one component per sample). Pass more samples or a smaller n_components",
            stacklevel=4,
        )
        k = cap
    return k


def _check_pca_options(pca_variance: float | None, pca_components: int | None) -> None:
    if pca_components is not None:
        if isinstance(pca_components, bool) or not isinstance(pca_components, (int, np.integer)):
            raise ValueError(f"pca_components must be a positive integer or None, got {pca_components!r}")
        if pca_components < 1:
            raise ValueError(f"pca_components must be a positive integer or None, got {pca_components!r}")
    elif pca_variance is not None and (
        not isinstance(pca_variance, (float, np.floating)) or not 0.0 < pca_variance < 1.0
    ):
        raise ValueError(
            f"pca_variance must be a float in (0, 1) (explained-variance fraction kept) or None, "
            f"got {pca_variance!r}; use pca_components for a fixed number of dimensions"
        )


def _project(X: np.ndarray, pca_variance: float | None, pca_components: int | None) -> np.ndarray:
    n_components: int | float
    if pca_components is not None:
        n_components = int(pca_components)
    elif pca_variance is not None:
        n_components = float(pca_variance)
    else:
        return X - X.mean(axis=0)
    # One BLAS/LAPACK thread: the eigendecomposition ran 5-8x slower (wall) with two threads on a busy
    # 2-core machine, and it costs little on an idle one. The GMM below is single-threaded too.
    with threadpool_limits(limits=1):
        return pca_project(X, n_components)


def _relative_reg_covar(Z: np.ndarray, reg_covar: float) -> float:
    """``reg_covar`` times the mean per-dimension variance of the (centred) mixture input ``Z``."""
    return reg_covar * float(np.einsum("ij,ij->", Z, Z)) / Z.size


@register_measure(
    "nleep",
    requires=("features",),
    higher_is_better=True,
    citation="Li et al., Ranking Neural Checkpoints, CVPR 2021 (arXiv 2011.11200)",
    stochastic=True,
    invariances=("label_permutation",),
    score_range="[-H(Y), 0]",
)
def nleep(
    features: Any,
    labels: Any,
    *,
    n_components_ratio: float = 5,
    n_components: int | None = None,
    pca_variance: float | None = 0.8,
    pca_components: int | None = None,
    covariance_type: CovarianceType = "full",
    reg_covar: float = 1e-6,
    tol: float = 1e-3,
    max_iter: int = 100,
    n_init: int = 1,
    init: InitMethod = "kmeans",
    use_log: bool = True,
    random_state: int = 0,
    device: str | None = None,
) -> float:
    r"""LEEP of the posteriors of a Gaussian mixture fitted on the (PCA-reduced) features.

    .. math::

        \pi_{ik} = p(k \mid P^\top (x_i - \mu)), \qquad
        \hat P(y \mid k) = \frac{\sum_{i: y_i = y} \pi_{ik}}{\sum_i \pi_{ik}}, \qquad
        \mathrm{NLEEP} = \frac{1}{n} \sum_{i=1}^{n} \log \sum_{k=1}^{K} \hat P(y_i \mid k)\, \pi_{ik}

    where :math:`P` holds the leading principal directions of the features and the mixture
    of :math:`K = 5C` Gaussians is fitted by EM without looking at the labels.

    Parameters
    ----------
    features : array-like or torch.Tensor of shape (n_samples, n_features)
        Penultimate-layer features of the target samples.
    labels : array-like of shape (n_samples,)
        Target labels of any hashable type.
    n_components_ratio : float, default=5
        Components per target class: K = int(n_components_ratio * C) (the paper's 5; SFDA's
        experiments use 1 on Food-101 and Pets).
    n_components : int, optional
        Explicit K, overriding ``n_components_ratio``.
    pca_variance : float in (0, 1) or None, default=0.8
        Keep the smallest number of principal components whose cumulative explained-variance
        ratio exceeds this (scikit-learn's ``PCA(n_components=0.8)`` rule); ``None`` fits the
        mixture on the centred features without PCA.
    pca_components : int, optional
        Keep this many principal components instead (overrides ``pca_variance``).
    covariance_type : {"full", "diag", "spherical"}, default="full"
        Covariance structure of the components (reference codes use scikit-learn's "full").
    reg_covar : float, default=1e-6
        Relative covariance regularisation: ``reg_covar`` times the mean per-dimension
        variance of the (PCA-reduced) features is added to the diagonal of every covariance,
        which makes the score invariant to the scale of the features (see Notes).
    tol : float, default=1e-3
        EM stops when the mean log-likelihood changes by less than ``tol``.
    max_iter : int, default=100
        Maximum EM iterations.
    n_init : int, default=1
        EM restarts; the one with the highest likelihood is used.
    init : {"kmeans", "k-means++", "random", "random_from_data", "sklearn-kmeans"}, default="kmeans"
        Initialisation of the EM: hard labels of a seeded k-means (our torch implementation
        of scikit-learn's algorithm); ``"sklearn-kmeans"`` runs scikit-learn's ``KMeans`` and
        reproduces ``GaussianMixture(random_state=random_state)`` exactly (slower).
    use_log : bool, default=True
        Average the log of the expected empirical prediction (the paper). ``False`` averages
        the prediction itself, as SFDA's reference code does (compatibility only).
    random_state : int, default=0
        Seed of the mixture initialisation; equal seeds give identical scores.
    device : str, optional
        Torch device of the EM (e.g. ``"cuda"``); default CPU. The PCA runs on the CPU.

    Returns
    -------
    float
        NLEEP in :math:`[-H(\hat Y), 0]` (with ``use_log=False``: in :math:`(0, 1]`); higher is
        better. Equals :math:`-H(\hat Y)` for K = 1 or constant features.

    Raises
    ------
    ValueError
        On invalid features or labels (NaN/inf, mismatched lengths, a single class), or an
        invalid option.

    Warns
    -----
    DegenerateInputWarning
        When K exceeds half the number of samples (K is capped at :math:`\lfloor n/2 \rfloor`),
        when the features are constant, or when covariances had to be jittered.
    sklearn.exceptions.ConvergenceWarning
        When the EM did not converge within ``max_iter`` iterations.

    Notes
    -----
    The score is deterministic given ``random_state`` and exactly invariant to relabelling
    the classes (the mixture never sees the labels). scikit-learn's ``reg_covar`` is absolute,
    which ties the fit to the units of the features: with blob features scaled by 1e-4 the
    covariances (about 1e-8) drown in the 1e-6 ridge, every posterior flattens and NLEEP
    returned :math:`-H(\hat Y)` (-1.0986 against -0.49 unscaled). Here the ridge is
    ``reg_covar`` times the mean per-dimension variance :math:`v` of the mixture's input (that
    input is first multiplied by a power of two, exactly, so that its largest magnitude lies in
    [0.5, 1) and its variances neither overflow nor underflow), so scaling the features leaves
    the score unchanged up to rounding; the k-means and EM stopping rules are already scale
    free. For features of unit mean variance this is scikit-learn's absolute ridge;
    ``GaussianMixture(reg_covar=reg_covar * v)`` on the same PCA output reproduces the
    ``init="sklearn-kmeans"`` fit. Translation and rotation of the features change the score
    only through EM randomness; row order changes the k-means seeding. Unlike scikit-learn,
    which fails when K > n, K is capped at :math:`\lfloor n/2 \rfloor` (a toolkit choice,
    with a warning).
    With random features the score exceeds :math:`-H(\hat Y)` by a finite-sample optimism
    that grows with K/n. The EM is a batched torch re-implementation of scikit-learn's
    ``GaussianMixture`` (it agrees to about 1e-12 from the same initial parameters); the
    default torch k-means initialisation draws a different random stream than
    scikit-learn's, so individual scores differ by EM local optima, not systematically.

    References
    ----------
    .. [1] Y. Li, X. Jia, R. Sang, Y. Zhu, B. Green, L. Wang, B. Gong, "Ranking Neural
       Checkpoints", CVPR 2021.
    .. [2] C. V. Nguyen, T. Hassner, M. Seeger, C. Archambeau, "LEEP: A New Measure to
       Evaluate Transferability of Learned Representations", ICML 2020.

    Examples
    --------
    >>> from ckptrank.testing.synthetic import blobs
    >>> X, y = blobs(200, 8, 2, separation=4.0, random_state=0)
    >>> round(nleep(X, y), 3)
    -0.019
    >>> X_noise, _ = blobs(200, 8, 2, separation=0.0, random_state=0)
    >>> round(nleep(X_noise, y), 3)  # just above -H(Y) = -log 2
    -0.67
    >>> round(nleep(X, y, n_components=1), 6)  # a single component gives -H(Y) exactly
    -0.693147
    """
    X, info = check_features_and_labels(features, labels)
    check_gmm_options(covariance_type, reg_covar, tol, max_iter, n_init, init)
    _check_pca_options(pca_variance, pca_components)
    k = _n_components(n_components, n_components_ratio, info.n_classes, info.n_samples)
    if k > 1 and not np.any(X[0] != X):
        warn_degenerate("nleep: the features are constant; the score is -H(Y), as for an uninformative model")
        k = 1
    if k == 1:  # a single component: every posterior is 1 and NLEEP = -H(Y) exactly
        return _leep_score(np.ones((info.n_samples, 1)), info.y, info.n_classes, use_log=use_log)
    # Exact power-of-two rescaling keeps the variances away from under/overflow; the ridge is relative.
    Z = power_of_two_scaled(_project(X, pca_variance, pca_components))
    fit = fit_gaussian_mixture(
        Z,
        k,
        covariance_type=covariance_type,
        reg_covar=_relative_reg_covar(Z, reg_covar),
        tol=tol,
        max_iter=max_iter,
        n_init=n_init,
        init=init,
        random_state=random_state,
        device=device,
    )
    return _leep_score(fit.resp.astype(np.float64, copy=False), info.y, info.n_classes, use_log=use_log)
