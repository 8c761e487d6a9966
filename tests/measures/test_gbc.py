"""Reference tests of GBC (ALGORITHMS.md 2.10, 6.3, 6.5)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.decomposition import PCA

import ckptrank
from ckptrank import DegenerateInputWarning
from ckptrank.measures.gbc import gbc
from ckptrank.testing.synthetic import blobs, onehot_plus_noise, tight_clusters

# ----------------------------------------------------------------------------------------------
# Independent references
# ----------------------------------------------------------------------------------------------


def gaussian_bhattacharyya(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Textbook Bhattacharyya distance between two full-covariance Gaussians."""
    cov = 0.5 * (cov1 + cov2)
    diff = mu1 - mu2
    logdet = np.linalg.slogdet(cov)[1] - 0.5 * (np.linalg.slogdet(cov1)[1] + np.linalg.slogdet(cov2)[1])
    return float(diff @ np.linalg.solve(cov, diff) / 8.0 + 0.5 * logdet)


def gbc_by_definition(
    Z: np.ndarray,
    y: np.ndarray,
    *,
    gaussian_type: str = "spherical",
    floor: float = 1e-4,
    exact: bool = False,
) -> float:
    """Loop over ordered class pairs on already-reduced features Z."""
    classes = np.unique(y)
    k = Z.shape[1]
    stats = []
    for c in classes:
        members = Z[y == c]
        var = np.maximum(members.var(axis=0), floor)
        stats.append((members.mean(axis=0), var))
    total = 0.0
    for a, (mu_a, var_a) in enumerate(stats):
        for b, (mu_b, var_b) in enumerate(stats):
            if a == b:
                continue
            if gaussian_type == "diagonal":
                dist = gaussian_bhattacharyya(mu_a, np.diag(var_a), mu_b, np.diag(var_b))
            elif exact:
                dist = gaussian_bhattacharyya(mu_a, var_a.mean() * np.eye(k), mu_b, var_b.mean() * np.eye(k))
            else:  # official: scalar variances, the log term once
                s_a, s_b = var_a.mean(), var_b.mean()
                s = 0.5 * (s_a + s_b)
                dist = float(
                    ((mu_a - mu_b) ** 2).sum() / (8.0 * s) + 0.5 * (math.log(s) - 0.5 * math.log(s_a * s_b))
                )
            total += math.exp(-dist)
    return -total


def random_problem(
    n: int, d: int, n_classes: int, seed: int, sep: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % n_classes)
    X = (
        rng.standard_normal((n, d)) * rng.uniform(0.3, 2.0, size=d)
        + sep * rng.standard_normal((n_classes, d))[y]
    )
    return X, y


# ----------------------------------------------------------------------------------------------
# Closed forms and references
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gaussian_type", ["spherical", "diagonal"])
@pytest.mark.parametrize("n_components", [None, 64, 1])
def test_closed_form_fixture(gaussian_type: str, n_components: int | None) -> None:
    X = np.array([-1.0, 1.0, 1.0, 3.0])
    value = gbc(X, [0, 0, 1, 1], n_components=n_components, gaussian_type=gaussian_type)
    assert value == pytest.approx(-2.0 * math.exp(-0.5), abs=1e-12)
    assert value == pytest.approx(-1.2130613194, abs=1e-10)


@pytest.mark.parametrize(
    ("gaussian_type", "exact"), [("spherical", False), ("spherical", True), ("diagonal", False)]
)
@pytest.mark.parametrize(("n", "d", "n_classes"), [(60, 3, 3), (200, 10, 6), (40, 25, 4)])
def test_agrees_with_the_pairwise_loop_without_pca(
    n: int, d: int, n_classes: int, gaussian_type: str, exact: bool
) -> None:
    X, y = random_problem(n, d, n_classes, seed=n + d)
    value = gbc(X, y, n_components=None, gaussian_type=gaussian_type, exact_spherical=exact)
    assert value == pytest.approx(
        gbc_by_definition(X, y, gaussian_type=gaussian_type, exact=exact), rel=1e-10
    )


@pytest.mark.parametrize("gaussian_type", ["spherical", "diagonal"])
@pytest.mark.parametrize(("n", "d", "k"), [(150, 80, 64), (100, 20, 5), (30, 100, 64)])
def test_pca_matches_scikit_learn_full_solver(n: int, d: int, k: int, gaussian_type: str) -> None:
    X, y = random_problem(n, d, 4, seed=d)
    # n_components is capped at min(n, d) (scikit-learn refuses larger values).
    Z = PCA(n_components=min(k, n, d), svd_solver="full").fit_transform(X)
    expected = gbc_by_definition(Z, y, gaussian_type=gaussian_type)
    assert gbc(X, y, n_components=k, gaussian_type=gaussian_type) == pytest.approx(expected, rel=1e-8)


def test_float_n_components_keeps_the_explained_variance_fraction() -> None:
    X, y = random_problem(200, 12, 3, seed=1)
    pca = PCA(n_components=0.8, svd_solver="full").fit(X)
    expected = gbc_by_definition(pca.transform(X), y)
    assert gbc(X, y, n_components=0.8) == pytest.approx(expected, rel=1e-8)


def test_many_classes_are_vectorised_correctly() -> None:
    X, y = random_problem(400, 6, 100, seed=2, sep=2.0)
    for gaussian_type in ("spherical", "diagonal"):
        expected = gbc_by_definition(X, y, gaussian_type=gaussian_type)
        assert gbc(X, y, n_components=None, gaussian_type=gaussian_type) == pytest.approx(expected, rel=1e-10)


def test_variance_floor_option() -> None:
    X, y = random_problem(60, 4, 3, seed=3)
    X = 0.01 * X  # variances ~1e-4: the floor is active
    for floor in (1e-6, 1e-4, 1e-2):
        expected = gbc_by_definition(X, y, floor=floor)
        assert gbc(X, y, n_components=None, variance_floor=floor) == pytest.approx(expected, rel=1e-10)
    assert gbc(X, y, variance_floor=1e-2) != pytest.approx(gbc(X, y, variance_floor=1e-6))


# ----------------------------------------------------------------------------------------------
# Range, sanity, monotonicity, invariances
# ----------------------------------------------------------------------------------------------


def test_identical_class_distributions_give_about_minus_c_times_c_minus_one() -> None:
    X, y = blobs(1000, 16, 5, 0.0, random_state=0)
    value = gbc(X, y)
    assert -20.0 <= value < -19.0


def test_separated_tight_clusters_give_about_zero() -> None:
    X, y = tight_clusters(5, 20, 8, gap=1.0)
    value = gbc(X, y)
    assert -1e-6 < value <= 0.0


@pytest.mark.parametrize("seed", range(4))
def test_range(seed: int) -> None:
    rng = np.random.default_rng(seed)
    C = int(rng.integers(2, 8))
    X, y = random_problem(
        int(rng.integers(2 * C, 80)), int(rng.integers(1, 30)), C, seed=seed, sep=rng.uniform(0, 3)
    )
    for gaussian_type in ("spherical", "diagonal"):
        value = gbc(X, y, gaussian_type=gaussian_type)
        assert -C * (C - 1) <= value <= 0.0


def test_monotone_in_class_separation() -> None:
    means = [np.mean([gbc(*blobs(300, 16, 5, s, random_state=seed)) for seed in range(4)]) for s in (0, 2, 4)]
    assert means[0] < means[1] < means[2]
    y = np.arange(300) % 5
    assert gbc(onehot_plus_noise(y, 16), y) > gbc(np.random.default_rng(0).standard_normal((300, 16)), y)


def test_invariances_and_scale_dependence_through_the_floor() -> None:
    X, y = random_problem(120, 10, 4, seed=4)
    Q, _ = np.linalg.qr(np.random.default_rng(5).standard_normal((10, 10)))
    expected = gbc(X, y)
    assert gbc(X @ Q + 4.0, y) == pytest.approx(expected, rel=1e-9)
    assert gbc(X, np.array(["w", "x", "y", "z"])[y]) == pytest.approx(expected, rel=1e-12)
    assert gbc(3.0 * X, y) == pytest.approx(expected, rel=1e-9)  # floor inactive
    assert abs(gbc(1e-3 * X, y) - expected) > 1e-3  # floor active


def test_score_function_dispatches_to_gbc() -> None:
    X, y = random_problem(50, 5, 3, seed=6)
    assert ckptrank.score("gbc", X, y, gaussian_type="diagonal") == gbc(X, y, gaussian_type="diagonal")


# ----------------------------------------------------------------------------------------------
# Degenerate and invalid inputs
# ----------------------------------------------------------------------------------------------


def test_singleton_class_warns_and_is_floored() -> None:
    X, y = random_problem(40, 5, 3, seed=7)
    y[0] = 9
    with pytest.warns(DegenerateInputWarning, match="fewer than 2 samples"):
        value = gbc(X, y, n_components=None)
    assert value == pytest.approx(gbc_by_definition(X, y), rel=1e-10)


def test_constant_column_and_many_dimensions() -> None:
    X, y = random_problem(40, 5, 3, seed=8)
    X[:, 3] = 2.0
    assert gbc(X, y, n_components=None) == pytest.approx(gbc_by_definition(X, y), rel=1e-10)
    rng = np.random.default_rng(0)
    y = np.arange(50) % 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = gbc(rng.standard_normal((50, 2048)), y)  # PCA keeps min(n, d) = 50 components
    assert -20.0 <= value <= 0.0


def test_huge_features_raise() -> None:
    X, y = random_problem(30, 4, 3, seed=0)
    with pytest.raises(ValueError, match="rescale"):
        gbc(1e150 * X, y)


def test_inputs_unchanged() -> None:
    X, y = random_problem(30, 4, 3, seed=0)
    X_copy, y_copy = X.copy(), y.copy()
    gbc(X, y)
    np.testing.assert_array_equal(X, X_copy)
    np.testing.assert_array_equal(y, y_copy)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"gaussian_type": "full"}, "gaussian_type"),
        ({"variance_floor": 0.0}, "variance_floor"),
        ({"n_components": 0}, "n_components"),
        ({"n_components": 1.5}, "n_components"),
        ({"n_components": "64"}, "n_components"),
        ({"n_components": True}, "n_components"),
    ],
)
def test_invalid_options_raise(options: dict, match: str) -> None:
    X, y = random_problem(30, 4, 3, seed=0)
    with pytest.raises(ValueError, match=match):
        gbc(X, y, **options)


def test_invalid_inputs_raise() -> None:
    X, y = random_problem(30, 4, 3, seed=0)
    with pytest.raises(ValueError, match="30 rows but labels has 3"):
        gbc(X, y[:3])
    with pytest.raises(ValueError, match="at least 2 classes"):
        gbc(X, np.zeros(30))
    X[1, 1] = -np.inf
    with pytest.raises(ValueError, match="infinite"):
        gbc(X, y)


def test_tiny_features_warn_that_the_floor_sets_the_overlap() -> None:
    X, y = blobs(200, 8, 4, 3.0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gbc(X, y)
    with pytest.warns(DegenerateInputWarning, match="below variance_floor"):
        gbc(1e-3 * X, y)
