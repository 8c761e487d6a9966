"""Shared linear-algebra helpers against scikit-learn and by-definition versions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA

from ckptrank.measures._linalg import class_means, pca_project, within_class_scatter


def _data(n: int = 120, d: int = 10, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + 3.0


def test_class_means_and_scatter_by_definition() -> None:
    X = _data()
    y = np.random.default_rng(1).integers(0, 4, size=X.shape[0])
    means = class_means(X, y, 4)
    np.testing.assert_allclose(means, np.stack([X[y == c].mean(axis=0) for c in range(4)]), atol=1e-12)
    expected = (
        sum((X[i] - means[y[i]])[:, None] @ (X[i] - means[y[i]])[None, :] for i in range(X.shape[0]))
        / X.shape[0]
    )
    np.testing.assert_allclose(within_class_scatter(X, y, means), expected, atol=1e-10)


@pytest.mark.parametrize(("n", "d"), [(120, 10), (15, 40)])
@pytest.mark.parametrize("k", [1, 3, 0.8, 0.95])
def test_pca_matches_sklearn_up_to_sign(n: int, d: int, k: float) -> None:
    X = _data(n, d)
    ours = pca_project(X, k)
    ref = PCA(n_components=k, svd_solver="full").fit_transform(X)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(np.abs(ours), np.abs(ref), atol=1e-8)


def test_pca_signs_are_deterministic_and_randomized_solver_agrees() -> None:
    X = _data()
    a, b = pca_project(X, 3), pca_project(X[:, :], 3)
    np.testing.assert_array_equal(a, b)
    r = pca_project(X, 3, solver="randomized", random_state=0)
    np.testing.assert_allclose(np.abs(r), np.abs(a), atol=1e-6)


def test_pca_caps_components_and_rejects_bad_options() -> None:
    X = _data(8, 20)
    assert pca_project(X, 64).shape == (8, 8)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        pca_project(X, 1.5)
    with pytest.raises(ValueError, match="solver"):
        pca_project(X, 2, solver="arpack")
