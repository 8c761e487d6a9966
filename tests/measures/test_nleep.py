"""Reference tests of NLEEP (ALGORITHMS.md 2.3, 6.3, 6.4, 6.6)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

import ckptrank
from ckptrank import DegenerateInputWarning, get_measure
from ckptrank.measures.nleep import nleep
from ckptrank.testing.synthetic import blobs, realistic_features, tight_clusters

# ----------------------------------------------------------------------------------------------
# Independent references
# ----------------------------------------------------------------------------------------------


def leep_by_definition(theta: np.ndarray, labels: np.ndarray, use_log: bool = True) -> float:
    """LEEP with explicit matrices: joint via a one-hot product, conditional by column division."""
    classes, y = np.unique(labels, return_inverse=True)
    one_hot = np.eye(classes.size)[y]
    joint = one_hot.T @ theta / theta.shape[0]
    conditional = np.divide(joint, joint.sum(axis=0), out=np.zeros_like(joint), where=joint.sum(axis=0) > 0)
    eep = np.array([conditional[y[i]] @ theta[i] for i in range(theta.shape[0])])
    return float(np.mean(np.log(eep)) if use_log else np.mean(eep))


def relative_reg_covar(Z: np.ndarray, reg_covar: float = 1e-6) -> float:
    """ckptrank's ridge: ``reg_covar`` times the mean per-dimension variance of the mixture input."""
    return reg_covar * float(Z.var(axis=0).mean())


def sklearn_nleep(
    X: np.ndarray, y: np.ndarray, *, n_components: int | None = None, pca: float | int = 0.8, **gmm: object
) -> float:
    """NLEEP as the reference codes compute it: sklearn PCA, sklearn GaussianMixture, then LEEP.

    The only change: scikit-learn's absolute ``reg_covar=1e-6`` is replaced by the same value
    relative to the variance of the PCA output (``1e-6 * v``), as nleep defines it for scale
    invariance. For unit-variance features the two coincide.
    """
    n_classes = np.unique(y).size
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Z = PCA(pca).fit_transform(X)
        mixture = GaussianMixture(n_components or 5 * n_classes, reg_covar=relative_reg_covar(Z), **gmm)
        return leep_by_definition(mixture.fit(Z).predict_proba(Z), y)


def label_entropy(labels: np.ndarray) -> float:
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


X_SMALL, Y_SMALL = blobs(300, 10, 3, separation=2.0, random_state=0)

# ----------------------------------------------------------------------------------------------
# Against scikit-learn
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "problem",
    [
        blobs(300, 10, 3, separation=2.0, random_state=0),
        blobs(400, 16, 4, separation=1.0, random_state=1),
        realistic_features(500, 64, 5, dtype=np.float64, random_state=2),
    ],
    ids=["blobs-s2", "blobs-s1", "realistic"],
)
def test_sklearn_kmeans_init_equals_sklearn_pipeline(problem: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = problem
    expected = sklearn_nleep(X, y, random_state=0)
    assert nleep(X, y, init="sklearn-kmeans", random_state=0) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_other_covariance_types_equal_sklearn_pipeline(covariance_type: str) -> None:
    expected = sklearn_nleep(X_SMALL, Y_SMALL, covariance_type=covariance_type, random_state=3)
    value = nleep(X_SMALL, Y_SMALL, covariance_type=covariance_type, init="sklearn-kmeans", random_state=3)
    assert value == pytest.approx(expected, abs=1e-9)


def test_pca_components_and_no_log_equal_sklearn_pipeline() -> None:
    X, y = blobs(300, 12, 3, separation=1.5, random_state=4)
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Z = PCA(4).fit_transform(X)
        mixture = GaussianMixture(6, reg_covar=relative_reg_covar(Z), random_state=5)
        posteriors = mixture.fit(Z).predict_proba(Z)
    value = nleep(
        X, y, pca_components=4, n_components=6, use_log=False, init="sklearn-kmeans", random_state=5
    )
    assert value == pytest.approx(leep_by_definition(posteriors, y, use_log=False), abs=1e-9)
    assert 0.0 < value <= 1.0


def test_default_init_ranks_feature_sets_like_sklearn() -> None:
    """Our torch k-means draws another random stream: compare rankings and closeness, not digits."""
    ours, reference = [], []
    for separation in (0.0, 1.5, 4.0):
        X, y = blobs(400, 12, 4, separation=separation, random_state=6)
        ours.append(np.mean([nleep(X, y, random_state=seed) for seed in range(2)]))
        reference.append(np.mean([sklearn_nleep(X, y, random_state=seed) for seed in range(2)]))
    assert np.argsort(ours).tolist() == np.argsort(reference).tolist() == [0, 1, 2]
    np.testing.assert_allclose(ours, reference, atol=0.08)


# ----------------------------------------------------------------------------------------------
# Bounds, identities, properties
# ----------------------------------------------------------------------------------------------


def test_single_component_gives_minus_entropy_exactly() -> None:
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 2] * 5)
    X = np.random.default_rng(0).standard_normal((50, 6))
    assert nleep(X, y, n_components=1) == pytest.approx(-label_entropy(y), abs=1e-14)
    assert nleep(X, y, n_components_ratio=1 / 3) == pytest.approx(-label_entropy(y), abs=1e-14)


@pytest.mark.parametrize("seed", range(3))
def test_bounds_on_random_features(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=150)
    X = rng.standard_normal((150, 8))
    value = nleep(X, y, random_state=seed)
    assert -label_entropy(y) - 1e-12 <= value <= 0.0
    # Finite-sample optimism: random features score a little above -H(Y), not near 0.
    assert value < -0.5 * label_entropy(y)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_scale_invariant_through_the_relative_ridge(covariance_type: str) -> None:
    """An absolute ridge of 1e-6 swamped features scaled by 1e-4 and NLEEP fell to -H(Y)."""
    base = nleep(X_SMALL, Y_SMALL, covariance_type=covariance_type)
    assert base > -label_entropy(Y_SMALL) + 0.5  # informative features: far above -H(Y) = -1.0986
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for scale in (1e-4, 3.7, 1e4, 1e-150, 1e150):
            value = nleep(scale * X_SMALL, Y_SMALL, covariance_type=covariance_type)
            assert value == pytest.approx(base, abs=1e-9), scale


def test_scale_invariant_without_pca() -> None:
    X, y = blobs(200, 6, 3, separation=2.0, random_state=3)
    base = nleep(X, y, pca_variance=None)
    assert nleep(1e-4 * X, y, pca_variance=None) == pytest.approx(base, abs=1e-9)
    assert base > -label_entropy(y) + 0.5


def test_label_permutation_and_names_do_not_change_the_score() -> None:
    reference = nleep(X_SMALL, Y_SMALL, random_state=2)
    permuted = np.array([2, 0, 1])[Y_SMALL]
    names = np.array(["cat", "dog", "emu"])[Y_SMALL]
    assert nleep(X_SMALL, permuted, random_state=2) == pytest.approx(reference, rel=1e-12, abs=1e-14)
    assert nleep(X_SMALL, names, random_state=2) == pytest.approx(reference, rel=1e-12, abs=1e-14)


def test_deterministic_for_a_fixed_random_state() -> None:
    first = nleep(X_SMALL, Y_SMALL, random_state=7)
    assert nleep(X_SMALL, Y_SMALL, random_state=7) == first
    assert nleep(torch.as_tensor(X_SMALL), torch.as_tensor(Y_SMALL), random_state=7) == first


def test_tight_clusters_score_close_to_zero() -> None:
    X, y = tight_clusters(4, 30, 16, random_state=0)
    assert -1e-6 < nleep(X, y) <= 0.0


def test_monotone_in_blob_separation() -> None:
    values = [nleep(*blobs(1000, 64, 5, separation, random_state=0)) for separation in (0.0, 2.0, 8.0)]
    assert values[0] < values[1] - 0.2 < values[2] - 0.4
    assert values[0] == pytest.approx(-1.567, abs=0.05)  # ALGORITHMS.md 2.3 (one seed)
    assert values[2] == pytest.approx(0.0, abs=1e-6)


def test_informative_features_beat_random_ones() -> None:
    y = np.arange(200) % 4
    rng = np.random.default_rng(8)
    good = np.eye(8)[y] + 0.05 * rng.standard_normal((200, 8))
    assert nleep(good, y) > nleep(rng.standard_normal((200, 8)), y) + 0.5


def test_options_change_the_fit_but_stay_in_bounds() -> None:
    low = -label_entropy(Y_SMALL) - 1e-12
    for options in (
        {"covariance_type": "diag"},
        {"covariance_type": "spherical"},
        {"pca_variance": None},
        {"pca_variance": 0.95},
        {"n_init": 2},
        {"init": "random_from_data"},
        {"n_components_ratio": 1},
    ):
        assert low <= nleep(X_SMALL, Y_SMALL, **options) <= 0.0, options


def test_score_api_and_registry() -> None:
    assert ckptrank.score("nleep", X_SMALL, Y_SMALL, random_state=1) == nleep(
        X_SMALL, Y_SMALL, random_state=1
    )
    spec = get_measure("nleep")
    assert spec.requires == ("features",)
    assert spec.stochastic
    assert spec.higher_is_better
    assert spec.invariances == frozenset({"label_permutation"})


# ----------------------------------------------------------------------------------------------
# Degenerate inputs and errors
# ----------------------------------------------------------------------------------------------


def test_component_cap_warns_and_matches_explicit_k() -> None:
    X, y = blobs(40, 6, 5, separation=3.0, random_state=9)  # 5 * 5 = 25 > 40 // 2 = 20
    with pytest.warns(DegenerateInputWarning, match="using K = 20"):
        capped = nleep(X, y)
    assert capped == nleep(X, y, n_components=20)


def test_constant_features_warn_and_give_minus_entropy() -> None:
    y = np.repeat([0, 1, 1, 2, 2, 2], 8)
    with pytest.warns(DegenerateInputWarning, match="constant"):
        value = nleep(np.ones((48, 3)), y)
    assert value == pytest.approx(-label_entropy(y), abs=1e-14)


def test_duplicated_points_are_finite_without_warnings() -> None:
    X = np.repeat(np.array([[0.0, 1.0], [2.0, 0.0], [5.0, 5.0]]), 8, axis=0)
    y = np.repeat([0, 1, 1], 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = nleep(X, y, n_components=6)
    assert value == pytest.approx(0.0, abs=1e-9)  # every location is pure in its label


def test_inputs_are_not_mutated() -> None:
    X, y = X_SMALL.copy(), Y_SMALL.copy()
    nleep(X, y)
    np.testing.assert_array_equal(X, X_SMALL)
    np.testing.assert_array_equal(y, Y_SMALL)


def test_float32_features_equal_float64() -> None:
    X32 = X_SMALL.astype(np.float32)
    assert nleep(X32, Y_SMALL) == nleep(X32.astype(np.float64), Y_SMALL)


@pytest.mark.parametrize(
    ("features", "labels", "options", "match"),
    [
        (np.full((4, 2), np.nan), [0, 0, 1, 1], {}, "NaN"),
        (X_SMALL[:10], Y_SMALL[:9], {}, "10 rows but labels has 9"),
        (X_SMALL, np.zeros(300), {}, "at least 2 classes"),
        (X_SMALL, Y_SMALL, {"pca_variance": 1.5}, "pca_variance must be a float in"),
        (X_SMALL, Y_SMALL, {"pca_variance": 3}, "pca_variance must be a float in"),
        (X_SMALL, Y_SMALL, {"pca_components": 0}, "pca_components must be a positive integer"),
        (X_SMALL, Y_SMALL, {"n_components": 0}, "n_components must be a positive integer"),
        (X_SMALL, Y_SMALL, {"n_components_ratio": -1}, "n_components_ratio must be a positive number"),
        (X_SMALL, Y_SMALL, {"covariance_type": "tied"}, "unknown covariance_type"),
        (X_SMALL, Y_SMALL, {"init": "spectral"}, "unknown init"),
        (X_SMALL, Y_SMALL, {"reg_covar": -1e-6}, "reg_covar must be a finite number"),
        (X_SMALL, Y_SMALL, {"max_iter": -1}, "max_iter must be an integer"),
        (X_SMALL, Y_SMALL, {"n_init": 0}, "n_init must be an integer"),
    ],
)
def test_bad_inputs_raise(features: np.ndarray, labels: object, options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        nleep(features, labels, **options)
