"""Reference tests of the H-score and the shrinkage H-score (ALGORITHMS.md 2.4, 2.5, 6.3, 6.5)."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from sklearn.covariance import ledoit_wolf

import ckptrank
from ckptrank import DegenerateInputWarning
from ckptrank.measures.hscore import _gram, _ledoit_wolf_shrinkage, hscore, reg_hscore
from ckptrank.testing.synthetic import blobs, onehot_plus_noise

# ----------------------------------------------------------------------------------------------
# Independent references
# ----------------------------------------------------------------------------------------------


def between_covariance(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """cov(G) with divisor n, G = features replaced by their class means (explicit loop)."""
    G = np.empty_like(X)
    for c in np.unique(y):
        G[y == c] = X[y == c].mean(axis=0)
    return np.cov(G, rowvar=False, bias=True).reshape(X.shape[1], X.shape[1])


def hscore_by_definition(X: np.ndarray, y: np.ndarray, rcond: float = 1e-15) -> float:
    """TLLIB-style definition: np.cov (divisor n - 1) for both matrices, pinv of the d x d covariance."""
    d = X.shape[1]
    cov_f = np.cov(X, rowvar=False).reshape(d, d)
    G = np.empty_like(X)
    for c in np.unique(y):
        G[y == c] = X[y == c].mean(axis=0)
    cov_g = np.cov(G, rowvar=False).reshape(d, d)
    return float(np.trace(np.linalg.pinv(cov_f, rcond=rcond, hermitian=True) @ cov_g))


def reg_hscore_by_definition(X: np.ndarray, y: np.ndarray) -> float:
    """Explicit d x d solve with scikit-learn's Ledoit-Wolf shrunk covariance."""
    shrunk, alpha = ledoit_wolf(X)
    return float((1.0 - alpha) * np.trace(np.linalg.solve(shrunk, between_covariance(X, y))))


def random_problem(
    n: int, d: int, n_classes: int, seed: int, sep: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % n_classes)
    X = (
        rng.standard_normal((n, d)) @ rng.standard_normal((d, d))
        + sep * rng.standard_normal((n_classes, d))[y]
    )
    return X, y


def quiet(func, *args, **kwargs) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateInputWarning)
        return func(*args, **kwargs)


# ----------------------------------------------------------------------------------------------
# H-score
# ----------------------------------------------------------------------------------------------


def test_closed_form_fixture() -> None:
    X = np.array([-1.0, 1.0, 1.0, 3.0])
    assert hscore(X, [0, 0, 1, 1]) == pytest.approx(0.5, abs=1e-12)
    assert ckptrank.score("hscore", X[:, None], ["a", "a", "b", "b"]) == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize("n_classes", [2, 5, 10])
def test_one_hot_label_features_give_c_minus_one(n_classes: int) -> None:
    y = np.arange(60) % n_classes
    assert hscore(np.eye(n_classes)[y], y) == pytest.approx(n_classes - 1, abs=1e-9)
    # Any function of the label, in more dimensions than classes.
    codes = np.random.default_rng(0).standard_normal((n_classes, 3 * n_classes))
    assert hscore(codes[y], y) == pytest.approx(n_classes - 1, abs=1e-8)


@pytest.mark.parametrize("d", [99, 150, 512])
def test_random_features_saturate_at_c_minus_one_when_d_at_least_n_minus_one(d: int) -> None:
    """ALGORITHMS.md 1.5: documents the degeneracy, and the warning that flags it."""
    rng = np.random.default_rng(d)
    X, y = rng.standard_normal((100, d)), rng.permutation(np.arange(100) % 5)
    with pytest.warns(DegenerateInputWarning, match="saturates"):
        value = hscore(X, y)
    assert value == pytest.approx(4.0, abs=1e-8)


def test_no_warning_below_the_saturation_regime() -> None:
    X, y = random_problem(100, 97, 5, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = hscore(X, y)
    assert 0.0 <= value <= 4.0


@pytest.mark.parametrize(("n", "d", "n_classes"), [(200, 5, 3), (60, 20, 4), (500, 40, 10), (30, 1, 2)])
def test_agrees_with_the_definition_and_stays_in_bounds(n: int, d: int, n_classes: int) -> None:
    X, y = random_problem(n, d, n_classes, seed=n + d)
    value = hscore(X, y)
    assert value == pytest.approx(hscore_by_definition(X, y), rel=1e-9)
    assert 0.0 <= value <= n_classes - 1


def test_sample_space_path_agrees_with_the_definition_on_low_rank_features() -> None:
    # n <= d but rank 6 < n - 1: not saturated, and computed from the n x n kernel. The
    # d x d reference needs a larger rcond to drop its round-off eigenvalues.
    rng = np.random.default_rng(1)
    y = np.arange(40) % 4
    Z = rng.standard_normal((40, 6)) + np.eye(6)[y]
    X = Z @ rng.standard_normal((6, 300))
    value = quiet(hscore, X, y)
    assert value == pytest.approx(hscore_by_definition(X, y, rcond=1e-10), rel=1e-7)
    assert value < 2.0  # far from saturation (C - 1 = 3)


def test_rcond_option() -> None:
    rng = np.random.default_rng(2)
    y = np.arange(200) % 3
    X = rng.standard_normal((200, 6)) * np.array([1.0, 1.0, 1.0, 1e-2, 1e-3, 1e-4]) + np.eye(6)[y]
    loose = hscore(X, y, rcond=1e-3)  # drops the two smallest directions of Sigma_t
    assert loose == pytest.approx(hscore_by_definition(X, y, rcond=1e-3), rel=1e-9)
    assert loose < hscore(X, y)


def test_invariant_to_invertible_affine_maps_and_label_permutation() -> None:
    X, y = random_problem(150, 6, 4, seed=3)
    A = np.random.default_rng(4).standard_normal((6, 6))
    expected = hscore(X, y)
    assert hscore(X @ A + 3.0, y) == pytest.approx(expected, rel=1e-8)
    assert hscore(X, np.array([9, -2, 5, 0])[y]) == pytest.approx(expected, rel=1e-12)


def test_constant_column_is_ignored_and_constant_features_give_zero() -> None:
    X, y = random_problem(80, 5, 3, seed=5)
    with_const = np.column_stack([X, np.full(80, 2.5)])
    assert hscore(with_const, y) == pytest.approx(hscore(X, y), rel=1e-10)
    with pytest.warns(DegenerateInputWarning, match="constant"):
        assert hscore(np.ones((80, 3)), y) == 0.0


def test_singleton_class_and_many_dimensions_are_finite() -> None:
    X, y = random_problem(40, 5, 3, seed=6)
    y[0] = 7
    assert hscore(X, y) == pytest.approx(hscore_by_definition(X, y), rel=1e-9)
    rng = np.random.default_rng(0)
    y = np.arange(50) % 5
    with pytest.warns(DegenerateInputWarning):
        assert hscore(rng.standard_normal((50, 2048)), y) == pytest.approx(4.0, abs=1e-8)


def test_monotone_in_class_separation() -> None:
    means = [
        np.mean([hscore(*blobs(300, 16, 5, s, random_state=seed)) for seed in range(4)]) for s in (0, 2, 4)
    ]
    assert means[0] < means[1] < means[2]
    y = np.arange(300) % 5
    assert hscore(onehot_plus_noise(y, 16), y) > hscore(
        np.random.default_rng(0).standard_normal((300, 16)), y
    )


@pytest.mark.parametrize("rcond", [-1e-3, 1.0, 2.0])
def test_invalid_rcond_raises(rcond: float) -> None:
    X, y = random_problem(30, 3, 3, seed=0)
    with pytest.raises(ValueError, match="rcond"):
        hscore(X, y, rcond=rcond)


# ----------------------------------------------------------------------------------------------
# Shrinkage H-score
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "d"), [(200, 5), (50, 20), (20, 60), (300, 1)])
def test_ledoit_wolf_shrinkage_matches_scikit_learn(n: int, d: int) -> None:
    X, _ = random_problem(n, d, 3, seed=d)
    Xc = X - X.mean(axis=0)
    assert _ledoit_wolf_shrinkage(Xc, _gram(Xc)) == pytest.approx(ledoit_wolf(X)[1], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("n", "d", "n_classes"), [(200, 5, 3), (60, 20, 4), (30, 80, 3), (500, 40, 10)])
def test_reg_hscore_agrees_with_the_explicit_shrunk_solve(n: int, d: int, n_classes: int) -> None:
    X, y = random_problem(n, d, n_classes, seed=n * d)
    value = reg_hscore(X, y)
    assert value == pytest.approx(reg_hscore_by_definition(X, y), rel=1e-9)
    assert 0.0 <= value < n_classes - 1


def test_reg_hscore_tends_to_hscore_as_shrinkage_vanishes() -> None:
    X, y = random_problem(2000, 8, 4, seed=7)
    assert reg_hscore(X, y, shrinkage=1e-10) == pytest.approx(hscore(X, y), rel=1e-7)
    assert reg_hscore(X, y, shrinkage=0.0) == pytest.approx(hscore(X, y), rel=1e-12)
    # Ledoit-Wolf itself shrinks little for a well-conditioned, anisotropic covariance with n >> d.
    rng = np.random.default_rng(7)
    y = np.arange(5000) % 4
    X = rng.standard_normal((5000, 8)) * np.linspace(1.0, 3.0, 8) + 2.0 * rng.standard_normal((4, 8))[y]
    assert ledoit_wolf(X)[1] < 0.01
    assert reg_hscore(X, y) == pytest.approx(hscore(X, y), rel=0.01)
    assert reg_hscore(X, y) < hscore(X, y)


def test_reg_hscore_fixed_shrinkage_is_decreasing_and_one_gives_zero() -> None:
    X, y = random_problem(100, 10, 4, seed=8)
    values = [reg_hscore(X, y, shrinkage=a) for a in (0.0, 0.1, 0.5, 0.9, 1.0)]
    assert all(a > b for a, b in itertools.pairwise(values))
    assert values[-1] == 0.0


def test_reg_hscore_does_not_saturate_when_d_much_larger_than_n() -> None:
    # Documented: random features no longer give C - 1 = 4 (hscore does), but still about half of it.
    rng = np.random.default_rng(0)
    y = np.arange(50) % 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        random_value = reg_hscore(rng.standard_normal((50, 2048)), y)
    assert 1.0 < random_value < 3.0
    assert reg_hscore(onehot_plus_noise(y, 2048, 0.01), y) > 3.9


def test_reg_hscore_invariances() -> None:
    X, y = random_problem(120, 7, 3, seed=9)
    Q, _ = np.linalg.qr(np.random.default_rng(10).standard_normal((7, 7)))
    expected = reg_hscore(X, y)
    assert reg_hscore(X @ Q + 2.0, y) == pytest.approx(expected, rel=1e-9)
    assert reg_hscore(0.01 * X, y) == pytest.approx(expected, rel=1e-9)
    assert reg_hscore(X, np.array(["z", "y", "x"])[y]) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_extreme_magnitudes_are_handled_by_scale_invariance(scale: float) -> None:
    for n, d in [(60, 5), (10, 30)]:
        X, y = random_problem(n, d, 3, seed=12)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            warnings.simplefilter("ignore", DegenerateInputWarning)
            assert hscore(scale * X, y) == pytest.approx(quiet(hscore, X, y), rel=1e-9)
            assert reg_hscore(scale * X, y) == pytest.approx(quiet(reg_hscore, X, y), rel=1e-9)


def test_reg_hscore_degenerate_inputs() -> None:
    X, y = random_problem(40, 5, 3, seed=11)
    X[:, 1] = -1.0
    y[0] = 8  # singleton class
    assert reg_hscore(X, y) == pytest.approx(reg_hscore_by_definition(X, y), rel=1e-9)
    with pytest.warns(DegenerateInputWarning, match="constant"):
        assert reg_hscore(np.zeros((40, 4)), y, shrinkage=0.3) == 0.0


def test_reg_hscore_monotone_in_class_separation() -> None:
    means = [
        np.mean([reg_hscore(*blobs(300, 16, 5, s, random_state=seed)) for seed in range(4)])
        for s in (0, 2, 4)
    ]
    assert means[0] < means[1] < means[2]


@pytest.mark.parametrize("shrinkage", [-0.1, 1.5])
def test_reg_hscore_invalid_shrinkage_raises(shrinkage: float) -> None:
    X, y = random_problem(30, 3, 3, seed=0)
    with pytest.raises(ValueError, match="shrinkage"):
        reg_hscore(X, y, shrinkage=shrinkage)


def test_inputs_unchanged() -> None:
    X, y = random_problem(50, 4, 3, seed=0)
    X_copy, y_copy = X.copy(), y.copy()
    hscore(X, y)
    reg_hscore(X, y)
    np.testing.assert_array_equal(X, X_copy)
    np.testing.assert_array_equal(y, y_copy)


@pytest.mark.parametrize("func", [hscore, reg_hscore])
def test_invalid_inputs_raise(func) -> None:
    X, y = random_problem(30, 3, 3, seed=0)
    with pytest.raises(ValueError, match="30 rows but labels has 28"):
        func(X, y[:28])
    with pytest.raises(ValueError, match="at least 2 classes"):
        func(X, np.ones(30))
    X[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinite"):
        func(X, y)
