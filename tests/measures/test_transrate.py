"""Reference tests of TransRate (ALGORITHMS.md 2.11, 6.3, 6.5)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import ckptrank
from ckptrank import DegenerateInputWarning
from ckptrank.measures.transrate import transrate
from ckptrank.testing.synthetic import blobs, onehot_plus_noise

# ----------------------------------------------------------------------------------------------
# Independent reference
# ----------------------------------------------------------------------------------------------


def coding_rate_d_by_d(A: np.ndarray, eps: float) -> float:
    """1/2 log det(I_d + A^T A / (m eps)) with the explicit d x d matrix (no Sylvester identity)."""
    m, d = A.shape
    sign, logdet = np.linalg.slogdet(np.eye(d) + A.T @ A / (m * eps))
    assert sign > 0
    return 0.5 * logdet


def transrate_by_definition(
    X: np.ndarray, y: np.ndarray, eps: float = 1e-4, weighting: str = "uniform"
) -> float:
    Z = X - X.mean(axis=0)
    classes = np.unique(y)
    rates = np.array([coding_rate_d_by_d(Z[y == c], eps) for c in classes])
    if weighting == "uniform":
        weights = np.full(classes.size, 1.0 / classes.size)
    else:
        weights = np.array([(y == c).mean() for c in classes])
    return coding_rate_d_by_d(Z, eps) - float(weights @ rates)


def random_problem(
    n: int, d: int, n_classes: int, seed: int, sep: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % n_classes)
    return rng.standard_normal((n, d)) + sep * rng.standard_normal((n_classes, d))[y], y


# ----------------------------------------------------------------------------------------------
# Closed forms and the by-definition version
# ----------------------------------------------------------------------------------------------


def test_one_dimensional_clusters_give_zero() -> None:
    assert transrate(np.array([-1.0, -1.0, 1.0, 1.0]), [0, 0, 1, 1]) == pytest.approx(0.0, abs=1e-12)


def test_equilateral_triangle_fixture() -> None:
    angles = np.repeat(2.0 * np.pi * np.arange(3) / 3.0, 4)
    Z = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    y = np.repeat([0, 1, 2], 4)
    value = transrate(Z, y)
    # Closed form: log(1 + 1/(2 eps)) - 1/2 log(1 + 1/eps).
    assert value == pytest.approx(math.log(1 + 1 / 2e-4) - 0.5 * math.log(1 + 1e4), abs=1e-10)
    assert value == pytest.approx(3.91217, abs=1e-5)
    assert value == pytest.approx(0.5 * math.log(1e4) - math.log(2.0), abs=1e-3)
    assert ckptrank.score("transrate", Z, ["a"] * 4 + ["b"] * 4 + ["c"] * 4) == value


@pytest.mark.parametrize(
    ("n", "d", "n_classes"),
    [
        (60, 4, 3),  # every class larger than d: summed class Gram matrices
        (40, 30, 4),  # classes smaller than d (Sylvester), global term d x d
        (20, 50, 3),  # n < d: Sylvester for the global term too
        (45, 12, 3),  # mixed: some classes above, some below d (imbalanced below)
    ],
)
@pytest.mark.parametrize("weighting", ["uniform", "frequency"])
def test_agrees_with_the_explicit_d_by_d_log_determinants(
    n: int, d: int, n_classes: int, weighting: str
) -> None:
    X, y = random_problem(n, d, n_classes, seed=n + d)
    if (n, d) == (45, 12):
        y = np.repeat([0, 1, 2], [30, 10, 5])
    expected = transrate_by_definition(X, y, weighting=weighting)
    assert transrate(X, y, class_weighting=weighting) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("eps", [1e-6, 1e-2, 1.0])
def test_eps_option(eps: float) -> None:
    X, y = random_problem(50, 6, 3, seed=1)
    assert transrate(X, y, eps=eps) == pytest.approx(transrate_by_definition(X, y, eps=eps), rel=1e-9)


# ----------------------------------------------------------------------------------------------
# Weighting, invariances, monotonicity
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_frequency_weighting_is_non_negative(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, d = 40, int(rng.integers(1, 60))
    y = rng.choice(4, size=n, p=[0.6, 0.2, 0.15, 0.05])
    y[:4] = np.arange(4)
    X = rng.standard_normal((n, d)) * rng.uniform(0.01, 10.0)
    assert transrate(X, y, class_weighting="frequency") >= -1e-10


def test_weightings_agree_for_balanced_and_differ_for_imbalanced_classes() -> None:
    X, y = random_problem(60, 5, 3, seed=2)
    assert transrate(X, y, class_weighting="frequency") == pytest.approx(transrate(X, y), rel=1e-12)
    y = np.repeat([0, 1, 2], [45, 10, 5])
    assert abs(transrate(X, y, class_weighting="frequency") - transrate(X, y)) > 0.1


def test_invariances_and_scale_dependence() -> None:
    X, y = random_problem(80, 6, 4, seed=3)
    Q, _ = np.linalg.qr(np.random.default_rng(4).standard_normal((6, 6)))
    expected = transrate(X, y)
    assert transrate(X @ Q + 7.0, y) == pytest.approx(expected, rel=1e-9)
    assert transrate(X, np.array([30, 10, 20, -5])[y]) == pytest.approx(expected, rel=1e-12)
    assert abs(transrate(0.01 * X, y) - expected) > 1e-2  # documented: absolute eps


def test_monotone_in_class_separation() -> None:
    means = [
        np.mean([transrate(*blobs(300, 16, 5, s, random_state=seed)) for seed in range(4)]) for s in (0, 2, 4)
    ]
    assert means[0] < means[1] < means[2]
    y = np.arange(300) % 5
    assert transrate(onehot_plus_noise(y, 16), y) > transrate(
        np.random.default_rng(0).standard_normal((300, 16)), y
    )


# ----------------------------------------------------------------------------------------------
# Degenerate and invalid inputs
# ----------------------------------------------------------------------------------------------


def test_singleton_class_warns_and_matches_the_definition() -> None:
    X, y = random_problem(30, 5, 3, seed=5)
    y[0] = 9
    with pytest.warns(DegenerateInputWarning, match="fewer than 2 samples"):
        value = transrate(X, y)
    assert value == pytest.approx(transrate_by_definition(X, y), rel=1e-9)


def test_constant_column_and_many_dimensions() -> None:
    X, y = random_problem(30, 5, 3, seed=6)
    with_const = np.column_stack([X, np.full(30, 1.5)])
    assert transrate(with_const, y) == pytest.approx(transrate(X, y), rel=1e-10)
    rng = np.random.default_rng(0)
    y = np.arange(50) % 5
    X = rng.standard_normal((50, 2048))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = transrate(X, y)
    assert math.isfinite(value)
    # In d >> n every class spans its own subspace, so the value is far above the d = 16 one.
    assert value > transrate(X[:, :16], y)


def test_large_features_fall_back_to_eigenvalues_and_huge_ones_raise() -> None:
    # 1e8-scale features with eps = 1e-4: I is lost next to Z Z^T / (m eps) in the LU of slogdet.
    rng = np.random.default_rng(0)
    y = np.arange(5) % 2
    X = 1e8 * rng.standard_normal((5, 40))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("ignore", DegenerateInputWarning)
        value = transrate(X, y)
    assert math.isfinite(value)
    with pytest.raises(ValueError, match="rescale"):
        transrate(1e120 * X, y)


def test_inputs_unchanged() -> None:
    X, y = random_problem(30, 4, 3, seed=0)
    X_copy, y_copy = X.copy(), y.copy()
    transrate(X, y)
    np.testing.assert_array_equal(X, X_copy)
    np.testing.assert_array_equal(y, y_copy)


@pytest.mark.parametrize(
    ("options", "match"),
    [({"eps": 0.0}, "eps"), ({"eps": -1e-4}, "eps"), ({"class_weighting": "balanced"}, "class_weighting")],
)
def test_invalid_options_raise(options: dict, match: str) -> None:
    X, y = random_problem(30, 4, 3, seed=0)
    with pytest.raises(ValueError, match=match):
        transrate(X, y, **options)


def test_invalid_inputs_raise() -> None:
    X, y = random_problem(30, 4, 3, seed=0)
    with pytest.raises(ValueError, match="30 rows but labels has 31"):
        transrate(X, np.append(y, 0))
    with pytest.raises(ValueError, match="at least 2 classes"):
        transrate(X, np.zeros(30))
    X[2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        transrate(X, y)


def test_tiny_features_warn_that_the_coding_rates_vanish() -> None:
    X, y = blobs(200, 8, 4, 3.0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        transrate(X, y)
    with pytest.warns(DegenerateInputWarning, match="below eps"):
        transrate(1e-3 * X, y)
