"""The probe's input map: standardise, project to a common width, unit mean variance."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA

from ckptrank.capacitance.probe import fit_input_map


def test_projection_spans_the_top_principal_directions_with_unit_mean_variance() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 40)) * rng.uniform(0.1, 10, 40) + 5.0
    m = fit_input_map(X, standardize=True, input_dim=8)
    Z = m(X)
    assert Z.shape == (300, 8) and m.width == 8
    assert Z.var(axis=0).mean() == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-10)
    # Same subspace as scikit-learn's PCA of the standardised features.
    S = (X - X.mean(0)) / X.std(0)
    top = PCA(8).fit(S).components_
    Q, _ = np.linalg.qr(m.projection)
    np.testing.assert_allclose(np.linalg.svd(top @ Q, compute_uv=False), 1.0, atol=1e-8)


def test_fewer_directions_than_the_width_are_embedded_isometrically() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, 5))
    m = fit_input_map(X, standardize=True, input_dim=64)
    Z = m(X)
    assert Z.shape == (20, 64)
    S = (X - X.mean(0)) / X.std(0)
    # Pairwise distances are those of the standardised features, up to the one global scale.
    d_in = np.linalg.norm(S[:, None] - S[None], axis=2)
    d_out = np.linalg.norm(Z[:, None] - Z[None], axis=2)
    ratio = d_out[d_in > 0] / d_in[d_in > 0]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-10)


def test_without_projection_only_standardises_and_needs_no_d_by_d_matrix() -> None:
    X = np.random.default_rng(2).normal(size=(50, 30_000)).astype(np.float32)
    m = fit_input_map(X, standardize=True, input_dim=None)
    assert m.projection is None and m.width == 30_000
    Z = m(X[:5])
    np.testing.assert_allclose(Z, (X[:5] - X.mean(0)) / X.std(0), rtol=1e-4, atol=1e-4)
