"""Tests of the batched torch EM for Gaussian mixtures against scikit-learn's GaussianMixture."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from ckptrank import DegenerateInputWarning
from ckptrank.measures import _gmm
from ckptrank.measures._gmm import _cpu_threads, fit_gaussian_mixture, kmeans
from ckptrank.testing.synthetic import blobs

COVARIANCE_TYPES = ["full", "diag", "spherical"]


def make_data(seed: int = 0, n: int = 300, d: int = 4) -> np.ndarray:
    """Three anisotropic, overlapping clusters away from the origin."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    offsets = np.array([[0.0] * d, [3.0] + [0.0] * (d - 1), [1.5, 2.5] + [0.0] * (d - 2)])
    return 10.0 + offsets[labels] + rng.standard_normal((n, d)) @ rng.uniform(0.3, 1.5, size=(d, d))


def initial_parameters(X: np.ndarray, n_components: int, covariance_type: str, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    d = X.shape[1]
    weights = rng.dirichlet(np.full(n_components, 5.0))
    means = X[rng.choice(X.shape[0], n_components, replace=False)]
    if covariance_type == "full":
        A = rng.standard_normal((n_components, d, d))
        precisions = A @ A.transpose(0, 2, 1) / d + np.eye(d)
    elif covariance_type == "diag":
        precisions = rng.uniform(0.5, 2.0, size=(n_components, d))
    else:
        precisions = rng.uniform(0.5, 2.0, size=n_components)
    return {"weights_init": weights, "means_init": means, "precisions_init": precisions}


def sklearn_fit(X: np.ndarray, n_components: int, **options: object) -> GaussianMixture:
    # One thread: scikit-learn's OpenMP k-means is very slow on a busy shared CPU otherwise.
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(n_components, **options).fit(X)


def assert_same_fit(ours: _gmm.GaussianMixtureFit, ref: GaussianMixture, X: np.ndarray, rtol: float) -> None:
    assert ours.n_iter == ref.n_iter_
    assert ours.converged == ref.converged_
    assert ours.lower_bound == pytest.approx(ref.lower_bound_, rel=rtol, abs=rtol)
    np.testing.assert_allclose(ours.resp, ref.predict_proba(X), rtol=0, atol=rtol)
    np.testing.assert_allclose(ours.weights, ref.weights_, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(ours.means, ref.means_, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(ours.covariances, ref.covariances_, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(ours.precisions_cholesky, ref.precisions_cholesky_, rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Against scikit-learn from the same initial parameters
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_matches_sklearn_from_same_initial_parameters(covariance_type: str) -> None:
    X = make_data()
    init = initial_parameters(X, 4, covariance_type)
    options = {"covariance_type": covariance_type, "tol": 1e-6, "max_iter": 30, **init}
    ref = sklearn_fit(X, 4, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = fit_gaussian_mixture(X, 4, **options)
    assert_same_fit(ours, ref, X, rtol=1e-8)
    # The per-sample log-likelihood at the returned parameters agrees too.
    assert ref.score(X) == pytest.approx(
        float(np.mean(np.log(np.exp(_log_joint(ours, X)).sum(axis=1)))), rel=1e-9
    )


def _log_joint(fit: _gmm.GaussianMixtureFit, X: np.ndarray) -> np.ndarray:
    """log w_k + log N(x_i | mu_k, Sigma_k) by scipy, one component at a time (reference)."""
    from scipy.stats import multivariate_normal

    cov = fit.covariances
    d = X.shape[1]
    out = np.empty((X.shape[0], fit.weights.shape[0]))
    for k in range(fit.weights.shape[0]):
        if fit.covariance_type == "full":
            cov_k = cov[k]
        elif fit.covariance_type == "diag":
            cov_k = np.diag(cov[k])
        else:
            cov_k = cov[k] * np.eye(d)
        out[:, k] = np.log(fit.weights[k]) + multivariate_normal(fit.means[k], cov_k).logpdf(X)
    return out


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_posteriors_equal_bayes_rule_with_scipy_densities(covariance_type: str) -> None:
    X = make_data(seed=2)
    fit = fit_gaussian_mixture(X, 3, covariance_type=covariance_type, random_state=0)
    log_joint = _log_joint(fit, X)
    expected = np.exp(log_joint - log_joint.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(fit.resp, expected, atol=1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_sklearn_kmeans_init_reproduces_gaussian_mixture(covariance_type: str) -> None:
    X = make_data(seed=3, n=400, d=5)
    ref = sklearn_fit(X, 5, covariance_type=covariance_type, random_state=7, n_init=2)
    ours = fit_gaussian_mixture(
        X, 5, covariance_type=covariance_type, init="sklearn-kmeans", random_state=7, n_init=2
    )
    assert_same_fit(ours, ref, X, rtol=1e-7)


def test_matches_sklearn_on_many_degenerate_components() -> None:
    """The NLEEP regime: K close to n/d, covariances held up by reg_covar only."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((240, 12)) * np.linspace(3, 0.1, 12)
    init = initial_parameters(X, 40, "full", seed=5)
    init["precisions_init"] = np.tile(np.eye(12) * 4.0, (40, 1, 1))
    ref = sklearn_fit(X, 40, max_iter=20, **init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = fit_gaussian_mixture(X, 40, max_iter=20, **init)
    assert ours.n_iter == ref.n_iter_
    assert ours.lower_bound == pytest.approx(ref.lower_bound_, rel=1e-6)
    np.testing.assert_allclose(ours.resp, ref.predict_proba(X), atol=1e-6)


def test_chunked_and_blocked_computation_equals_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    X = make_data(seed=5)
    cached = fit_gaussian_mixture(X, 4, random_state=1)
    monkeypatch.setattr(_gmm, "_PACKED_BUDGET", 105)  # 7 rows of the 15-wide design per chunk
    monkeypatch.setattr(_gmm, "_BLOCK_ELEMENTS", 1)  # E-step and k-means blocks of 256 rows
    chunked = fit_gaussian_mixture(X, 4, random_state=1)
    assert chunked.n_iter == cached.n_iter
    assert chunked.lower_bound == pytest.approx(cached.lower_bound, rel=1e-12)
    np.testing.assert_allclose(chunked.resp, cached.resp, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sparse_and_dense_m_steps_agree(covariance_type: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hard k-means labels make the first M-step sparse; forcing either path changes nothing."""
    X = make_data(seed=17)
    monkeypatch.setattr(_gmm, "_SPARSE_FRACTION", 0.0)
    dense = fit_gaussian_mixture(X, 5, covariance_type=covariance_type, random_state=2)
    monkeypatch.setattr(_gmm, "_SPARSE_FRACTION", 1.0)
    sparse = fit_gaussian_mixture(X, 5, covariance_type=covariance_type, random_state=2)
    assert sparse.n_iter == dense.n_iter
    assert sparse.lower_bound == pytest.approx(dense.lower_bound, rel=1e-12)
    np.testing.assert_allclose(sparse.resp, dense.resp, atol=1e-12)
    np.testing.assert_allclose(sparse.covariances, dense.covariances, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# Initialisation, restarts, determinism
# ----------------------------------------------------------------------------------------------


def test_kmeans_recovers_separated_blobs_and_competes_with_sklearn() -> None:
    X, y = blobs(600, 8, 6, separation=12.0, random_state=0)
    labels = kmeans(torch.as_tensor(X), 6, np.random.default_rng(0)).numpy()
    assert adjusted_rand_score(y, labels) == pytest.approx(1.0)
    Z = make_data(seed=6, n=500)
    ours = kmeans(torch.as_tensor(Z), 8, np.random.default_rng(0)).numpy()
    inertia = sum(((Z[ours == k] - Z[ours == k].mean(axis=0)) ** 2).sum() for k in np.unique(ours))
    with threadpool_limits(1):
        reference = KMeans(8, n_init=1, random_state=0).fit(Z).inertia_
    assert inertia <= 1.05 * reference


def test_kmeans_with_fewer_distinct_points_than_clusters() -> None:
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 5.0]]), 10, axis=0)
    labels = kmeans(torch.as_tensor(X), 5, np.random.default_rng(0)).numpy()
    assert labels.shape == (30,)
    assert labels.min() >= 0 and labels.max() < 5
    # Points at the same location share a label; the three locations get different labels.
    assert all(np.unique(labels[i : i + 10]).size == 1 for i in (0, 10, 20))
    assert np.unique(labels).size == 3


@pytest.mark.parametrize("init", ["kmeans", "k-means++", "random", "random_from_data"])
def test_initialisations_are_deterministic_and_valid(init: str) -> None:
    X = make_data(seed=7)
    first = fit_gaussian_mixture(X, 3, init=init, random_state=3)
    second = fit_gaussian_mixture(X, 3, init=init, random_state=3)
    np.testing.assert_array_equal(first.resp, second.resp)
    assert first.lower_bound == second.lower_bound
    np.testing.assert_allclose(first.resp.sum(axis=1), 1.0, atol=1e-12)
    assert first.weights.sum() == pytest.approx(1.0)


def test_best_of_n_init_is_the_best_single_run() -> None:
    X = make_data(seed=8, n=200)
    combined = fit_gaussian_mixture(X, 6, init="random", n_init=3, random_state=np.random.default_rng(11))
    stream = np.random.default_rng(11)
    singles = [fit_gaussian_mixture(X, 6, init="random", random_state=stream) for _ in range(3)]
    best = max(singles, key=lambda fit: fit.lower_bound)
    assert combined.lower_bound == best.lower_bound
    np.testing.assert_array_equal(combined.resp, best.resp)


def test_max_iter_zero_returns_initial_parameters() -> None:
    X = make_data(seed=9)
    init = initial_parameters(X, 3, "diag")
    fit = fit_gaussian_mixture(X, 3, covariance_type="diag", max_iter=0, **init)
    assert fit.n_iter == 0
    assert fit.lower_bound == -np.inf
    np.testing.assert_allclose(fit.means, init["means_init"], atol=1e-12)
    np.testing.assert_allclose(fit.covariances, 1.0 / init["precisions_init"], rtol=1e-12)


def test_convergence_warning_when_max_iter_is_too_small() -> None:
    X = make_data(seed=10)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        fit = fit_gaussian_mixture(X, 4, max_iter=1, tol=0.0)
    assert not fit.converged


def test_float32_agrees_with_float64() -> None:
    X = make_data(seed=11)
    init = initial_parameters(X, 3, "full")
    with pytest.warns(ConvergenceWarning):
        f64 = fit_gaussian_mixture(X, 3, max_iter=10, tol=0.0, **init)
    with pytest.warns(ConvergenceWarning):
        f32 = fit_gaussian_mixture(X, 3, max_iter=10, tol=0.0, dtype=torch.float32, **init)
    assert f32.resp.dtype == np.float32
    assert f32.lower_bound == pytest.approx(f64.lower_bound, rel=1e-4)
    np.testing.assert_allclose(f32.resp, f64.resp, atol=1e-3)


def test_torch_input_and_explicit_device() -> None:
    X = make_data(seed=12)
    expected = fit_gaussian_mixture(X, 3, random_state=2)
    ours = fit_gaussian_mixture(torch.as_tensor(X), 3, random_state=2, device="cpu")
    np.testing.assert_allclose(ours.resp, expected.resp, atol=1e-12)


def test_thread_setting_is_restored_and_does_not_change_results() -> None:
    before = torch.get_num_threads()
    with _cpu_threads(1, torch.device("cpu")):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    X = make_data(seed=16)
    one = fit_gaussian_mixture(X, 3, random_state=4)
    assert torch.get_num_threads() == before
    default = fit_gaussian_mixture(X, 3, random_state=4, num_threads=None)
    assert one.n_iter == default.n_iter
    np.testing.assert_allclose(one.resp, default.resp, atol=1e-10)


# ----------------------------------------------------------------------------------------------
# Singular covariances
# ----------------------------------------------------------------------------------------------


def test_singular_full_covariances_get_jitter_and_a_warning() -> None:
    rng = np.random.default_rng(13)
    X = np.column_stack([rng.standard_normal((100, 2)), np.zeros(100)])  # a flat third axis
    with pytest.warns(DegenerateInputWarning, match="not positive definite") as record:
        fit = fit_gaussian_mixture(X, 2, reg_covar=0.0)
    assert sum(issubclass(w.category, DegenerateInputWarning) for w in record) == 1  # once per fit
    assert np.isfinite(fit.resp).all()
    assert np.isfinite(fit.lower_bound)


def test_non_positive_variances_are_floored_with_a_warning() -> None:
    rng = np.random.default_rng(14)
    X = np.column_stack([rng.standard_normal(60), np.full(60, 3.0)])
    with pytest.warns(DegenerateInputWarning, match="not positive"):
        fit = fit_gaussian_mixture(X, 2, covariance_type="diag", reg_covar=0.0)
    assert np.isfinite(fit.resp).all()


def test_default_reg_covar_handles_collapsed_components_without_warning() -> None:
    X = np.repeat(np.arange(6.0)[:, None] * [1.0, 2.0], 5, axis=0)  # 6 points, each 5 times
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_gaussian_mixture(X, 6)
    assert np.isfinite(fit.resp).all()
    np.testing.assert_allclose(fit.resp.max(axis=1), 1.0)


# ----------------------------------------------------------------------------------------------
# Bad options
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"n_components": 0}, "n_components must be a positive integer"),
        ({"n_components": 301}, "needs at least as many samples"),
        ({"covariance_type": "tied"}, "unknown covariance_type"),
        ({"init": "spectral"}, "unknown init"),
        ({"reg_covar": -1.0}, "reg_covar must be a finite number"),
        ({"tol": float("nan")}, "tol must be a finite number"),
        ({"max_iter": -1}, "max_iter must be an integer"),
        ({"n_init": 0}, "n_init must be an integer"),
        ({"num_threads": 0}, "num_threads must be a positive integer"),
        ({"weights_init": [0.5, 0.6]}, "weights_init must sum to 1"),
        ({"weights_init": [1.0]}, "weights_init must be 2 non-negative"),
        ({"means_init": np.zeros((3, 4))}, r"means_init must have shape \(2, 4\)"),
        ({"precisions_init": np.ones((2, 4))}, r"must have shape \(2, 4, 4\)"),
        ({"precisions_init": -np.tile(np.eye(4), (2, 1, 1))}, "positive definite"),
        ({"init": "sklearn-kmeans", "random_state": np.random.default_rng(0)}, "integer random_state"),
    ],
)
def test_bad_options_raise(options: dict, match: str) -> None:
    X = make_data(seed=15)
    n_components = options.pop("n_components", 2)
    with pytest.raises(ValueError, match=match):
        fit_gaussian_mixture(X, n_components, **options)


def test_bad_shape_raises() -> None:
    with pytest.raises(ValueError, match="must be 2-D"):
        fit_gaussian_mixture(np.zeros((3, 2, 2)), 1)
