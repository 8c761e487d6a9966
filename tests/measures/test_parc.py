"""Tests of PARC against explicitly built RDMs and scipy.stats.spearmanr."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.stats
import sklearn.decomposition
import sklearn.preprocessing

import ckptrank
from ckptrank.measures import DegenerateInputWarning, get_measure
from ckptrank.measures._validation import check_labels
from ckptrank.measures.parc import _spearman_vs_two_groups, _stratified_subsample, parc
from ckptrank.testing.synthetic import blobs


def _slow_parc(X, y, n_components=32, solver="randomized"):
    """By definition: scikit-learn PCA + StandardScaler, n x n RDMs, scipy's Spearman, x100."""
    if n_components is not None and n_components < X.shape[1]:
        pca = sklearn.decomposition.PCA(
            n_components=min(n_components, X.shape[0]),
            svd_solver=solver,
            random_state=1919,
            iterated_power=1,
        )
        X = pca.fit_transform(X)
    X = sklearn.preprocessing.StandardScaler().fit_transform(X)
    n = X.shape[0]
    classes = np.unique(y)
    C = classes.size
    rdm_features = 1.0 - np.corrcoef(X)
    rdm_labels = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            # exact values of 1 - corr(one-hot rows); np.corrcoef would add 1e-16 noise to the zeros
            rdm_labels[i, j] = 0.0 if y[i] == y[j] else 1.0 + 1.0 / (C - 1)
    upper = np.triu_indices(n, 1)
    return 100.0 * scipy.stats.spearmanr(rdm_features[upper], rdm_labels[upper])[0]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    ("d", "options"),
    [
        (64, {}),
        (64, {"pca_solver": "full"}),
        (64, {"n_components": 8}),
        (16, {}),  # d <= n_components: no PCA
        (64, {"n_components": None}),
    ],
)
def test_matches_explicit_rdms_and_scipy(seed, d, options):
    X, y = blobs(120, d, 4, 1.5, random_state=seed)
    expected = _slow_parc(
        X, y, n_components=options.get("n_components", 32), solver=options.get("pca_solver", "randomized")
    )
    assert parc(X, y, **options) == pytest.approx(expected, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_two_group_spearman_matches_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    values = np.round(rng.standard_normal(2000), 1)  # many ties
    high = rng.random(2000) < [0.2, 0.5, 0.9][seed]
    expected = scipy.stats.spearmanr(values, high)[0]
    assert _spearman_vs_two_groups(values.copy(), high) == pytest.approx(expected, rel=1e-12)
    assert np.isnan(_spearman_vs_two_groups(values.copy(), np.zeros(2000, dtype=bool)))
    assert np.isnan(_spearman_vs_two_groups(np.ones(10), np.arange(10) < 5))


@pytest.mark.parametrize("seed", range(3))
def test_range(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=80)
    for X in (rng.standard_normal((80, 10)), np.eye(3)[y] + 1e-3 * rng.standard_normal((80, 3))):
        assert -100.0 <= parc(X, y) <= 100.0
    assert parc(np.eye(3)[y] + 1e-3 * rng.standard_normal((80, 3)), y) > 80.0


def test_monotone_in_separation():
    """n=300, d=64, C=5: about -0.40, 5.11, 19.84 for s = 0, 1, 3 (ALGORITHMS.md 6.4)."""
    values = [parc(*blobs(300, 64, 5, s, random_state=0)) for s in (0.0, 1.0, 3.0)]
    assert values[0] < values[1] < values[2]
    assert values == pytest.approx([-0.40, 5.11, 19.84], abs=2.5)


def test_label_permutation_translation_and_scaling():
    X, y = blobs(150, 64, 4, 1.5, random_state=3)
    base = parc(X, y)
    assert parc(X, np.array(["w", "x", "y", "z"])[::-1][y]) == pytest.approx(base, rel=1e-12)
    shift = np.random.default_rng(0).standard_normal(64)
    assert parc(X + shift, y) == pytest.approx(base, rel=1e-9)
    assert parc(3.7 * X, y) == pytest.approx(base, rel=1e-9)


def test_per_dimension_scaling_invariance_without_pca():
    X, y = blobs(150, 20, 4, 1.5, random_state=4)
    scales = np.random.default_rng(1).uniform(0.1, 10.0, size=20)
    for options in ({"n_components": None}, {"n_components": 32}):  # d <= 32: no PCA
        assert parc(X * scales + 2.0, y, **options) == pytest.approx(parc(X, y, **options), rel=1e-9)


def test_sample_order_without_subsampling():
    X, y = blobs(150, 64, 4, 1.5, random_state=5)
    perm = np.random.default_rng(2).permutation(150)
    assert parc(X[perm], y[perm]) == pytest.approx(parc(X, y), rel=1e-9)


def test_determinism_and_subsampling():
    X, y = blobs(400, 16, 4, 1.5, random_state=6)
    sub = parc(X, y, max_samples=100, random_state=3)
    assert sub == parc(X, y, max_samples=100, random_state=3)
    assert sub != parc(X, y, max_samples=100, random_state=4)
    assert parc(X, y, max_samples=None) == parc(X, y, max_samples=400)
    # the subset is chosen independently of the class names
    relabelled = np.array([3, 2, 0, 1])[y]
    assert parc(X, relabelled, max_samples=100, random_state=3) == pytest.approx(sub, rel=1e-12)


def test_stratified_subsample():
    y = np.repeat(np.arange(3), [500, 300, 1])
    info = check_labels(y)
    keep = _stratified_subsample(info, 80, random_state=0)
    counts = np.bincount(y[keep], minlength=3)
    assert counts.tolist() == [50, 30, 1]  # proportional, every class kept
    assert np.all(np.diff(keep) > 0)
    np.testing.assert_array_equal(keep, _stratified_subsample(info, 80, random_state=0))


def test_constant_sample_is_dropped_with_a_warning():
    X, y = blobs(60, 8, 3, 2.0, random_state=7)
    X = X - X.mean(axis=0)
    X_with = np.vstack([np.zeros(8), X])  # a sample at the mean: constant standardised row
    y_with = np.concatenate([[0], y])
    with pytest.warns(DegenerateInputWarning, match="constant"):
        value = parc(X_with, y_with, n_components=None)
    # the dropped sample leaves the column means unchanged and rescales every column alike
    assert value == pytest.approx(parc(X, y, n_components=None), rel=1e-9)


def test_constant_columns_are_dropped_with_a_warning_naming_them():
    """A constant column, standardised to zeros, used to shift every correlation (36.3 -> 35.2)."""
    X, y = blobs(200, 4, 4, 1.5, random_state=0)
    padded = np.column_stack([X[:, :2], np.full((200, 3), 3.25), X[:, 2:], np.zeros(200)])
    with pytest.warns(DegenerateInputWarning, match=r"parc: 4 of 8 feature columns are constant"):
        value = parc(padded, y)
    assert value == pytest.approx(parc(X, y), rel=1e-12)
    assert value == pytest.approx(_slow_parc(X, y), rel=1e-9)


@pytest.mark.parametrize(("n_constant", "d"), [(5, 5), (4, 5)])
def test_constant_features_are_refused(n_constant, d):
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.standard_normal((30, d - n_constant)), np.full((30, n_constant), 2.0)])
    with pytest.raises(
        ValueError, match=rf"parc: {n_constant} of {d} feature columns are constant.*at least 2 varying"
    ):
        parc(X, np.arange(30) % 3)


def test_zero_variance_pca_components_are_dropped():
    """20 samples in 64 dimensions: the PCA to min(32, 20) components ends in a zero-variance one."""
    X, y = blobs(20, 64, 4, 1.5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = parc(X, y, pca_solver="full")
    assert value == pytest.approx(parc(X, y, n_components=19, pca_solver="full"), rel=1e-9)
    assert value == pytest.approx(_slow_parc(X, y, n_components=19, solver="full"), rel=1e-9)


def test_undefined_correlation_returns_nan_with_warning():
    X = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, -1.0], [-1.0, 0.0, 2.0], [0.0, -2.0, -1.0]])
    y = np.array([0, 0, 1, 2])  # after dropping the constant first row, no pair shares a class
    with pytest.warns(DegenerateInputWarning):
        value = parc(X, y, n_components=None)
    assert np.isnan(value)


def test_inputs_unchanged():
    X, y = blobs(100, 40, 4, 1.0, random_state=8)
    X32 = X.astype(np.float32)
    before = X32.copy()
    parc(X32, y)
    np.testing.assert_array_equal(X32, before)


def test_registry_and_score_api():
    spec = get_measure("parc")
    assert spec.requires == ("features",) and spec.higher_is_better and spec.stochastic
    assert spec.invariances == {"label_permutation", "translation", "isotropic_scale"}
    X, y = blobs(100, 40, 4, 1.0, random_state=9)
    assert ckptrank.score("parc", X, y, n_components=8) == parc(X, y, n_components=8)


@pytest.mark.parametrize(
    ("features", "options", "match"),
    [
        (np.random.default_rng(0).standard_normal((30, 1)), {}, "at least 2"),
        (np.random.default_rng(0).standard_normal((30, 5)), {"n_components": 1}, "n_components"),
        (np.random.default_rng(0).standard_normal((30, 5)), {"max_samples": 2}, "max_samples"),
        (np.random.default_rng(0).standard_normal((30, 5)), {"pca_solver": "arpack"}, "pca_solver"),
    ],
)
def test_errors(features, options, match):
    y = np.arange(30) % 3
    with pytest.raises(ValueError, match=match):
        parc(features, y, **options)
    with pytest.raises(ValueError, match="same samples"):
        parc(features, y[:-1])


@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_extreme_magnitudes_give_the_same_score_without_warnings(scale: float) -> None:
    import warnings

    from ckptrank.testing.synthetic import blobs

    X, y = blobs(200, 16, 4, 2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parc(X * scale, y) == pytest.approx(parc(X, y), rel=1e-12)
