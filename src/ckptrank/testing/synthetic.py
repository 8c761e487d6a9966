"""Seeded synthetic inputs for tests and benchmarks (ALGORITHMS.md section 6.1).

All generators return float64 features (unless stated) and int64 labels, and are
deterministic given ``random_state``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "blobs",
    "onehot_plus_noise",
    "realistic_features",
    "source_probs_for",
    "tight_clusters",
]


def blobs(
    n: int, d: int, n_classes: int, separation: float, *, random_state: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs ``x_i = s * e_{y_i} + N(0, I_d)`` with balanced labels.

    Parameters
    ----------
    n, d, n_classes : int
        Samples, feature dimensions (``d >= n_classes``) and classes.
    separation : float
        Offset ``s`` of the class means along the first ``n_classes`` basis vectors;
        0 makes features independent of labels, 4 and above nearly separable.
    random_state : int

    Returns
    -------
    X : ndarray of shape (n, d)
    y : ndarray of shape (n,), int64 in ``0..n_classes-1``, every class present
    """
    if d < n_classes:
        raise ValueError(f"blobs needs d >= n_classes, got d={d}, n_classes={n_classes}")
    rng = np.random.default_rng(random_state)
    y = rng.permutation(np.arange(n) % n_classes).astype(np.int64)
    X = rng.standard_normal((n, d))
    X[np.arange(n), y] += separation
    return X, y


def onehot_plus_noise(y: np.ndarray, d: int, noise: float = 1e-3, *, random_state: int = 0) -> np.ndarray:
    """Features ``e_{y_i} + noise * N(0, I_d)`` (the "good features" of GR's tests), shape (n, d)."""
    rng = np.random.default_rng(random_state)
    y = np.asarray(y)
    X = noise * rng.standard_normal((y.shape[0], d))
    X[np.arange(y.shape[0]), y] += 1.0
    return X


def tight_clusters(
    n_classes: int, n_per_class: int, d: int, gap: float = 1.0, *, random_state: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Class ``c`` centred at ``gap * c**2`` on every coordinate with sigma 0.01."""
    rng = np.random.default_rng(random_state)
    y = np.repeat(np.arange(n_classes), n_per_class).astype(np.int64)
    X = gap * (y.astype(np.float64) ** 2)[:, None] + 0.01 * rng.standard_normal((y.shape[0], d))
    return X, y


def source_probs_for(
    y: np.ndarray,
    n_source_classes: int,
    *,
    mapping: np.ndarray | None = None,
    strength: float = 2.0,
    random_state: int = 0,
) -> np.ndarray:
    """Source-head probabilities informative about ``y``.

    ``theta_i = softmax(g_i + strength * e_{mapping[y_i]})`` with ``g_i ~ N(0, I)``.

    Parameters
    ----------
    y : ndarray of shape (n,), labels in ``0..C-1``
    n_source_classes : int
    mapping : ndarray of shape (C,), optional
        Source class boosted for each target class; default ``c % n_source_classes``.
    strength : float
        Logit boost; 0 gives uninformative probabilities.
    random_state : int

    Returns
    -------
    ndarray of shape (n, n_source_classes), rows summing to one
    """
    rng = np.random.default_rng(random_state)
    y = np.asarray(y)
    if mapping is None:
        mapping = np.arange(int(y.max()) + 1) % n_source_classes
    logits = rng.standard_normal((y.shape[0], n_source_classes))
    logits[np.arange(y.shape[0]), mapping[y]] += strength
    logits -= logits.max(axis=1, keepdims=True)
    P = np.exp(logits)
    return P / P.sum(axis=1, keepdims=True)


def realistic_features(
    n: int,
    d: int,
    n_classes: int,
    *,
    separation: float = 1.0,
    spectrum_decay: float = 1.2,
    dtype: type = np.float32,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Clustered features with the decaying spectrum of real penultimate-layer features.

    Within-class noise has variances ``j ** -spectrum_decay`` (j = 1..d) along a random
    orthonormal basis (with the default decay about 100 of 2048 principal components
    hold 80 % of the variance, as for pooled CNN features); class means are Gaussian
    with the same spectrum times ``separation``; a positive offset mimics post-ReLU
    pooling. Labels are balanced and shuffled.

    Parameters
    ----------
    n, d, n_classes : int
    separation : float
        Ratio of between-class to within-class spread.
    spectrum_decay : float
        Power-law exponent of the variance spectrum.
    dtype : numpy dtype
        Output dtype (float32 like real extracted features).
    random_state : int

    Returns
    -------
    X : ndarray of shape (n, d)
    y : ndarray of shape (n,), int64
    """
    rng = np.random.default_rng(random_state)
    y = rng.permutation(np.arange(n) % n_classes).astype(np.int64)
    std = (1.0 + np.arange(d)) ** (-spectrum_decay / 2.0)
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
    means = separation * rng.standard_normal((n_classes, d)) * std
    latent = rng.standard_normal((n, d)) * std + means[y]
    X = latent @ basis.T + 0.5
    return X.astype(dtype, copy=False), y
