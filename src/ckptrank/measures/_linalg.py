"""Small linear-algebra helpers shared by several measures (float64, numpy)."""

from __future__ import annotations

import numpy as np
from scipy import linalg, sparse

__all__ = ["class_means", "class_sums", "pca_project", "within_class_scatter"]


def class_sums(X: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class sums of the rows, ``T^T X`` for the one-hot indicator T of ``y``.

    A sparse indicator product: the same sequential sum per class as ``np.add.at`` (equal to the
    last bit), about ten times faster (4 vs 33 ms at n=5k, d=768, C=10).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,), labels in ``0..n_classes-1``
    n_classes : int

    Returns
    -------
    ndarray of shape (n_classes, n_features), float64
    """
    n = X.shape[0]
    indicator = sparse.csr_matrix((np.ones(n), (y, np.arange(n))), shape=(n_classes, n))
    return np.asarray(indicator @ X, dtype=np.float64)


def class_means(X: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class means.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,), labels in ``0..n_classes-1``
    n_classes : int

    Returns
    -------
    ndarray of shape (n_classes, n_features)
    """
    sums = class_sums(X, y, n_classes)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    return sums / counts[:, None]


def within_class_scatter(X: np.ndarray, y: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Pooled within-class covariance ``(1/n) sum_i (x_i - mu_{y_i})(x_i - mu_{y_i})^T``, shape (d, d)."""
    centred = X - means[y]
    return centred.T @ centred / X.shape[0]


def pca_project(
    X: np.ndarray,
    n_components: int | float,
    *,
    solver: str = "full",
    random_state: int = 0,
    iterated_power: int = 7,
) -> np.ndarray:
    """Centre ``X`` and project it on its leading principal components.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    n_components : int or float
        An int keeps that many components (capped at ``min(n_samples, n_features)``);
        a float in (0, 1) keeps the smallest number whose cumulative explained-variance
        ratio exceeds it (scikit-learn's rule).
    solver : {"full", "randomized"}
        Exact SVD, or scikit-learn's randomized SVD (only with an int ``n_components``).
    random_state : int
        Seed of the randomized solver.
    iterated_power : int
        Power iterations of the randomized solver.

    Returns
    -------
    ndarray of shape (n_samples, k)
        Scores ``U_k * s_k`` with deterministic signs (largest-magnitude loading positive).
    """
    Xc = X - X.mean(axis=0)
    n, d = Xc.shape
    k_max = min(n, d)
    if solver == "randomized" and not isinstance(n_components, float):
        from sklearn.utils.extmath import randomized_svd

        k = int(min(n_components, k_max))
        U, s, Vt = randomized_svd(Xc, k, n_iter=iterated_power, random_state=random_state, flip_sign=False)
    elif solver in ("full", "randomized"):
        if d <= n:
            # Eigen-decomposition of the d x d Gram matrix is much cheaper than an SVD of X when n >> d;
            # with a fixed number of components only the top of the spectrum is computed.
            gram = Xc.T @ Xc
            if isinstance(n_components, float):
                evals, V = linalg.eigh(gram)
            else:
                k_top = int(min(n_components, d))
                evals, V = linalg.eigh(gram, subset_by_index=[d - k_top, d - 1])
            order = np.argsort(evals)[::-1]
            evals, V = np.clip(evals[order], 0.0, None), V[:, order]
            s, Vt = np.sqrt(evals), V.T
        else:
            _, s, Vt = linalg.svd(Xc, full_matrices=False, lapack_driver="gesdd")
        if isinstance(n_components, float):
            if not 0.0 < n_components < 1.0:
                raise ValueError(f"a float n_components must lie in (0, 1), got {n_components}")
            var = s**2
            total = var.sum()
            if total <= 0:
                k = 1
            else:
                ratio = np.cumsum(var) / total
                k = int(np.searchsorted(ratio, n_components, side="right") + 1)
                k = min(k, k_max)
        else:
            k = int(min(n_components, k_max))
        Vt = Vt[:k]
        U = None
    else:
        raise ValueError(f"unknown PCA solver {solver!r}; use 'full' or 'randomized'")
    if U is not None:
        scores = U * s
        loadings = Vt
    else:
        loadings = Vt
        scores = Xc @ loadings.T
    # Deterministic signs: the largest-magnitude loading of each component is positive.
    signs = np.sign(loadings[np.arange(loadings.shape[0]), np.abs(loadings).argmax(axis=1)])
    signs[signs == 0] = 1.0
    return scores * signs
