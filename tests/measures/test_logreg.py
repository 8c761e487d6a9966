"""Tests of the torch multinomial logistic regression against scikit-learn and by definition."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from ckptrank.measures._logreg import (
    LogisticFit,
    Preconditioner,
    fit_logistic,
    logistic_objective,
    logistic_path,
)


def _problem(n: int, d: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping classes with unequal feature scales and a non-zero mean."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % n_classes)
    X = rng.standard_normal((n, d)) * np.linspace(0.2, 3.0, d) + 1.5
    X[np.arange(n), y % d] += 1.0
    return X, y


def _slow_objective(X: np.ndarray, y: np.ndarray, coef: np.ndarray, intercept: np.ndarray, C: float) -> float:
    """Sum of per-sample cross-entropies plus ||W||^2 / (2C), with explicit loops."""
    total = 0.0
    for i in range(X.shape[0]):
        z = [float(coef[k] @ X[i] + intercept[k]) for k in range(coef.shape[0])]
        m = max(z)
        total += m + np.log(sum(np.exp(v - m) for v in z)) - z[y[i]]
    return total + float((coef**2).sum()) / (2.0 * C)


def _sklearn(X: np.ndarray, y: np.ndarray, C: float) -> LogisticRegression:
    return LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(X, y)


@pytest.mark.parametrize(
    ("n", "d", "n_classes", "C"),
    [(120, 5, 3, 1.0), (90, 8, 4, 0.05), (150, 4, 5, 20.0)],
)
def test_multinomial_matches_sklearn(n: int, d: int, n_classes: int, C: float) -> None:
    X, y = _problem(n, d, n_classes, seed=n)
    ref = _sklearn(X, y, C)
    fit = fit_logistic(X, y, C, tol=1e-10)
    # scikit-learn stops at its own tolerance (its objective is the larger one, see below)
    np.testing.assert_allclose(fit.coef.numpy(), ref.coef_, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        fit.intercept.numpy(), ref.intercept_ - ref.intercept_.mean(), rtol=1e-5, atol=1e-5
    )
    proba = fit.predict_proba(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(proba, ref.predict_proba(X), atol=1e-6)
    assert fit.converged
    assert fit.objective <= logistic_objective(X, y, ref.coef_, ref.intercept_, C) + 1e-8


def test_binary_is_sklearn_binomial_model() -> None:
    X, y = _problem(100, 6, 2, seed=1)
    ref = _sklearn(X, y, 0.3)
    fit = fit_logistic(X, y, 0.3, tol=1e-10)
    w = (fit.coef[1] - fit.coef[0]).numpy()
    b = float(fit.intercept[1] - fit.intercept[0])
    np.testing.assert_allclose(w, ref.coef_[0], atol=1e-6)
    np.testing.assert_allclose(b, ref.intercept_[0], atol=1e-6)
    np.testing.assert_allclose(
        fit.predict_proba(torch.from_numpy(X)).numpy(), ref.predict_proba(X), atol=1e-7
    )
    # objective: the binomial one of scikit-learn, sum log(1 + exp(-s (w.x + b))) + ||w||^2 / (2C)
    s = 2.0 * y - 1.0
    binomial = np.logaddexp(0.0, -s * (X @ ref.coef_[0] + ref.intercept_[0])).sum()
    binomial += ref.coef_[0] @ ref.coef_[0] / (2 * 0.3)
    sym = np.vstack([-ref.coef_ / 2, ref.coef_ / 2])
    sym_b = np.r_[-ref.intercept_ / 2, ref.intercept_ / 2]
    assert logistic_objective(X, y, sym, sym_b, 0.3) == pytest.approx(binomial, rel=1e-12)
    assert fit.objective <= binomial + 1e-8


def test_objective_at_least_as_good_as_sklearn_when_d_exceeds_n() -> None:
    X, y = _problem(40, 60, 3, seed=2)
    ref = _sklearn(X, y, 10.0)
    fit = fit_logistic(X, y, 10.0, tol=1e-10)
    assert fit.objective <= logistic_objective(X, y, ref.coef_, ref.intercept_, 10.0) + 1e-8
    np.testing.assert_allclose(
        fit.predict_proba(torch.from_numpy(X)).numpy(), ref.predict_proba(X), atol=1e-4
    )


def test_objective_matches_slow_definition() -> None:
    X, y = _problem(30, 3, 3, seed=3)
    rng = np.random.default_rng(0)
    coef, intercept = rng.standard_normal((3, 3)), rng.standard_normal(3)
    assert logistic_objective(X, y, coef, intercept, 0.7) == pytest.approx(
        _slow_objective(X, y, coef, intercept, 0.7), rel=1e-12
    )
    fit = fit_logistic(X, y, 0.7, tol=1e-10)
    assert fit.objective == pytest.approx(
        _slow_objective(X, y, fit.coef.numpy(), fit.intercept.numpy(), 0.7), rel=1e-12
    )


def test_solution_is_stationary() -> None:
    """Gradient of the summed objective vanishes: X^T (P - Y) + W^T / C = 0 and sum(P - Y) = 0."""
    X, y = _problem(80, 5, 3, seed=4)
    fit = fit_logistic(X, y, 2.0, tol=1e-10)
    P = fit.predict_proba(torch.from_numpy(X)).numpy()
    R = P - np.eye(3)[y]
    # the summed gradient of 80 samples, at the float precision of the averaged objective
    np.testing.assert_allclose(X.T @ R + fit.coef.numpy().T / 2.0, 0.0, atol=1e-5)
    np.testing.assert_allclose(R.sum(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(fit.coef.numpy().sum(axis=0), 0.0, atol=1e-8)
    assert abs(float(fit.intercept.sum())) < 1e-10


def test_preconditioner_does_not_change_the_optimum() -> None:
    X, y = _problem(100, 12, 4, seed=5)
    plain = fit_logistic(X, y, 1.0, tol=1e-9, preconditioner=None)
    fast = fit_logistic(X, y, 1.0, tol=1e-9, preconditioner="auto")
    np.testing.assert_allclose(fast.coef.numpy(), plain.coef.numpy(), atol=1e-6)
    np.testing.assert_allclose(fast.intercept.numpy(), plain.intercept.numpy(), rtol=1e-6, atol=1e-6)


def test_preconditioner_dual_form_matches_primal() -> None:
    rng = np.random.default_rng(6)
    X = torch.from_numpy(rng.standard_normal((10, 25)))
    dual = Preconditioner.from_features(X)  # d > n: eigenvectors via the Gram matrix
    Xc = X - X.mean(dim=0)
    evals = torch.linalg.eigvalsh(Xc.T @ Xc / 10).flip(0)[: dual.eigvals.shape[0]]
    np.testing.assert_allclose(dual.eigvals.numpy(), evals.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose((dual.basis.T @ dual.basis).numpy(), np.eye(dual.basis.shape[1]), atol=1e-10)
    cov_on_basis = dual.basis.T @ (Xc.T @ Xc / 10) @ dual.basis
    np.testing.assert_allclose(cov_on_basis.numpy(), np.diag(dual.eigvals.numpy()), atol=1e-10)


def test_randomized_preconditioner_matches_exact_leading_spectrum() -> None:
    rng = np.random.default_rng(7)
    X = torch.from_numpy(rng.standard_normal((400, 300)) * (1.0 + np.arange(300)) ** -0.8)
    fast = Preconditioner.from_features(X, max_rank=8)  # 300 >= 10 * (8 + 16): randomized
    exact = Preconditioner.from_features(X, max_rank=None)
    np.testing.assert_allclose(fast.eigvals.numpy(), exact.eigvals[:8].numpy(), rtol=1e-6)
    assert fast.tail == pytest.approx(float(exact.eigvals[8]), rel=1e-2)
    overlap = torch.linalg.svdvals(fast.basis.T @ exact.basis[:, :8])
    np.testing.assert_allclose(overlap.numpy(), 1.0, atol=1e-6)
    again = Preconditioner.from_features(X, max_rank=8)
    assert torch.equal(again.basis, fast.basis)  # seeded: deterministic


def test_warm_started_path_equals_cold_fits() -> None:
    X, y = _problem(90, 6, 3, seed=7)
    Cs = [0.01, 0.1, 1.0, 10.0]
    path = logistic_path(X, y, Cs, tol=1e-9)
    assert [f.C_reg for f in path] == Cs
    for fit, C in zip(path, Cs, strict=True):
        cold = fit_logistic(X, y, C, tol=1e-9)
        np.testing.assert_allclose(fit.coef.numpy(), cold.coef.numpy(), atol=1e-6)
    # a warm start at the optimum needs no iteration
    again = fit_logistic(X, y, 10.0, tol=1e-4, init=path[-1])
    assert again.n_iter == 0
    np.testing.assert_allclose(again.coef.numpy(), path[-1].coef.numpy(), rtol=1e-12, atol=1e-12)


def test_tolerance_certifies_relative_distance_to_optimum() -> None:
    X, y = _problem(200, 10, 4, seed=8)
    exact = fit_logistic(X, y, 50.0, tol=1e-10)
    for tol in (1e-1, 1e-2, 1e-3):
        rough = fit_logistic(X, y, 50.0, tol=tol)
        distance = float(torch.linalg.vector_norm(rough.coef - exact.coef))
        assert distance <= tol * float(torch.linalg.vector_norm(rough.coef)) * 1.0001


def test_float32_dtype_and_torch_inputs() -> None:
    X, y = _problem(100, 5, 3, seed=9)
    fit64 = fit_logistic(X, y, 1.0, tol=1e-9)
    fit32 = fit_logistic(torch.from_numpy(X).float(), torch.from_numpy(y), 1.0, tol=1e-4, dtype=torch.float32)
    assert fit32.coef.dtype == torch.float32
    np.testing.assert_allclose(fit32.coef.double().numpy(), fit64.coef.numpy(), atol=1e-3)


def test_inputs_unchanged_and_result_type() -> None:
    X, y = _problem(50, 4, 3, seed=10)
    X0, y0 = X.copy(), y.copy()
    fit = fit_logistic(X, y, 1.0)
    assert isinstance(fit, LogisticFit)
    assert fit.coef.shape == (3, 4) and fit.intercept.shape == (3,)
    assert fit.predict(torch.from_numpy(X)).shape == (50,)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)


def test_absent_top_class_handled_with_n_classes() -> None:
    X, y = _problem(60, 4, 3, seed=11)
    fit = fit_logistic(X, y, 1.0, n_classes=4, tol=1e-6)
    assert fit.coef.shape == (4, 4)
    assert int(fit.predict(torch.from_numpy(X)).max()) <= 2


def test_errors() -> None:
    X, y = _problem(20, 3, 2, seed=12)
    with pytest.raises(ValueError, match="C_reg must be a positive"):
        fit_logistic(X, y, 0.0)
    with pytest.raises(ValueError, match="C_reg must be a positive"):
        fit_logistic(X, y, float("inf"))
    with pytest.raises(ValueError, match="at least 2 classes"):
        fit_logistic(X, np.zeros(20, dtype=int), 1.0)
    with pytest.raises(ValueError, match="preconditioner must be"):
        fit_logistic(X, y, 1.0, preconditioner="eigen")
