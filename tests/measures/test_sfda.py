"""Tests of SFDA against a slow by-definition two-pass version (generalised eigenproblem)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.special

import ckptrank
from ckptrank.measures import DegenerateInputWarning, get_measure
from ckptrank.measures.sfda import _largest_eigenvalue, confmix_weights, sfda
from ckptrank.testing.synthetic import blobs

E = np.e


def _imbalanced(seed: int = 0, n: int = 130, d: int = 10, C: int = 4, sep: float = 1.5):
    """Blobs with unequal class sizes (so the priors matter)."""
    rng = np.random.default_rng(seed)
    y = rng.choice(C, size=n, p=np.linspace(1.0, 2.0, C) / np.linspace(1.0, 2.0, C).sum())
    X = rng.standard_normal((n, d)) * np.linspace(0.5, 1.5, d)
    X[np.arange(n), y] += sep
    return X, y


# ----------------------------------------------------------------------------------------------
# slow reference, written from the definition (ALGORITHMS.md 2.9), loops and explicit matrices
# ----------------------------------------------------------------------------------------------


def _slow_power(S: np.ndarray, iterations: int) -> float:
    x = S @ np.ones(S.shape[0])
    u = x
    for _ in range(iterations):
        t = S @ x
        u = t / np.sqrt(t @ t)
        t = S @ u
        x = t / np.sqrt(t @ t)
    return float(x @ S @ u)


def _slow_fisher_proba(X, y, lam=None, between=None, a=5.0, floor=1e-10, iterations=3):
    """Posterior of the reference FDA: generalised eigenvectors, all of them, by definition."""
    n, d = X.shape
    classes = sorted(set(y.tolist()))
    C = len(classes)
    means = np.zeros((C, d))
    priors = np.zeros(C)
    Sw = np.zeros((d, d))
    for k, c in enumerate(classes):
        rows = [X[i] for i in range(n) if y[i] == c]
        means[k] = np.mean(rows, axis=0)
        priors[k] = len(rows) / n
        cov = np.zeros((d, d))
        for r in rows:
            cov += np.outer(r - means[k], r - means[k])
        Sw += priors[k] * cov / len(rows)
    if lam is None:
        lam = max(np.exp(-a * _slow_power(Sw, iterations)), floor)
    mu = X.mean(axis=0)
    St = sum(np.outer(x - mu, x - mu) for x in X) / n

    def shrink(M):
        return (1 - lam) * M + lam * np.trace(M) / d * np.eye(d)

    Sw_lam = shrink(Sw)
    Sb = shrink(St) - Sw_lam if between is None else between
    evals, V = scipy.linalg.eigh(Sb, Sw_lam)
    V = V[:, np.argsort(evals)[::-1]]  # all d eigenvectors
    coef = means @ V @ V.T
    intercept = -0.5 * np.diag(means @ coef.T) + np.log(priors)
    proba = scipy.special.softmax(X @ coef.T + intercept, axis=1)
    return proba, lam, [classes.index(c) for c in y.tolist()]


def _slow_sfda(X, y, *, between=None, use_log=False, confmix=True, shrinkage=None, **kw):
    X = np.array(X, dtype=np.float64)
    proba, lam, idx = _slow_fisher_proba(X, y, lam=shrinkage, between=between, **kw)
    n = X.shape[0]
    if confmix:
        C = proba.shape[1]
        means = np.array([X[[i for i in range(n) if idx[i] == k]].mean(axis=0) for k in range(C)])
        anchors = [np.mean([means[j] for j in range(C) if j != k], axis=0) for k in range(C)]
        mixed = np.empty_like(X)
        for i in range(n):
            soft = np.exp(proba[i]) / np.exp(proba[i]).sum()
            q = soft[idx[i]]
            mixed[i] = q * X[i] + (1 - q) * anchors[idx[i]]
        second_between = None if between is None else between[::-1, ::-1]  # another PSD matrix
        proba, _, _ = _slow_fisher_proba(mixed, y, lam=lam, between=second_between, **kw)
    true = np.array([proba[i, idx[i]] for i in range(n)])
    return float(np.mean(np.log(true)) if use_log else np.mean(true))


# ----------------------------------------------------------------------------------------------
# reference agreement
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "options",
    [{}, {"use_log": True}, {"confmix": False}, {"shrinkage": 0.3}, {"a": 0.5}, {"a": 50.0}],
)
def test_matches_slow_eigen_version(seed, options):
    X, y = _imbalanced(seed)
    expected = _slow_sfda(X, y, **options)
    assert sfda(X, y, **options) == pytest.approx(expected, rel=1e-8, abs=1e-10)


def test_matches_slow_version_with_string_labels_and_scaled_features():
    X, y = _imbalanced(3, sep=2.0)
    X = 0.2 * X  # small scale: lambda is far from the floor
    names = np.array(["cat", "dog", "emu", "fox"])[y]
    assert sfda(X, names) == pytest.approx(_slow_sfda(X, y), rel=1e-9)


def test_posterior_independent_of_between_scatter():
    """Replacing Sigma_b by a random PSD matrix leaves SFDA unchanged (all eigenvectors are used)."""
    X, y = _imbalanced(4)
    rng = np.random.default_rng(7)
    G = rng.standard_normal((X.shape[1], X.shape[1]))
    random_psd = G @ G.T
    assert _slow_sfda(X, y, between=random_psd) == pytest.approx(_slow_sfda(X, y), rel=1e-9)
    assert sfda(X, y) == pytest.approx(_slow_sfda(X, y, between=random_psd), rel=1e-8)


def test_standardize_option_equals_sfda_of_zscored_features():
    X, y = _imbalanced(5)
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    assert sfda(X, y, standardize=True) == pytest.approx(_slow_sfda(Z, y), rel=1e-9)
    assert sfda(7.0 * X + 3.0, y, standardize=True) == pytest.approx(sfda(X, y, standardize=True), rel=1e-10)


def test_power_iteration_matches_recipe_and_handles_null_start():
    rng = np.random.default_rng(0)
    G = rng.standard_normal((6, 6))
    S = G @ G.T
    assert _largest_eigenvalue(S, 3) == pytest.approx(_slow_power(S, 3), rel=1e-12)
    assert _largest_eigenvalue(S, 50) == pytest.approx(np.linalg.eigvalsh(S)[-1], rel=1e-10)
    # S @ 1 = 0 but S != 0 (features x and -x): start from a column instead of dividing by 0.
    S_null = 2.0 * np.array([[1.0, -1.0], [-1.0, 1.0]])
    assert _largest_eigenvalue(S_null, 3) == pytest.approx(4.0)
    assert _largest_eigenvalue(np.zeros((3, 3)), 3) == 0.0


# ----------------------------------------------------------------------------------------------
# bounds and ConfMix
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("C", [2, 4, 10, 100])
def test_confmix_weight_range(C):
    rng = np.random.default_rng(C)
    n = 500
    proba = rng.dirichlet(np.full(C, 0.3), size=n)
    y = rng.integers(0, C, size=n)
    q = confmix_weights(proba, y)
    lo, hi = 1.0 / (C - 1 + E), E / (C - 1 + E)
    assert np.all(q >= lo - 1e-15) and np.all(q <= hi + 1e-15)
    # The endpoints are reached by one-hot rows on the wrong and on the true class.
    onehot = np.eye(C)[[1, 0]]
    assert confmix_weights(onehot, np.array([0, 0])) == pytest.approx([lo, hi])


@pytest.mark.parametrize("seed", range(4))
def test_range(seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((60, 5)) * rng.uniform(0.1, 10.0)
    y = rng.integers(0, 3, size=60)
    value = sfda(X, y)
    assert 0.0 <= value <= 1.0
    assert sfda(X, y, use_log=True) <= 0.0


# ----------------------------------------------------------------------------------------------
# invariances and properties
# ----------------------------------------------------------------------------------------------


def test_translation_invariance():
    X, y = _imbalanced(6)
    shift = 5.0 * np.random.default_rng(1).standard_normal(X.shape[1])
    assert sfda(X + shift, y) == pytest.approx(sfda(X, y), rel=1e-10)


def test_label_permutation_and_sample_order():
    X, y = _imbalanced(7)
    relabelled = np.array([30, 10, 40, 20])[y]
    assert sfda(X, relabelled) == pytest.approx(sfda(X, y), rel=1e-12)
    perm = np.random.default_rng(2).permutation(X.shape[0])
    assert sfda(X[perm], y[perm]) == pytest.approx(sfda(X, y), rel=1e-10)


def test_isotropic_scale_dependence_and_fixed_shrinkage():
    """lambda depends on the scale (documented), a fixed shrinkage makes SFDA scale invariant."""
    X, y = blobs(300, 20, 4, 1.0, random_state=0)
    assert sfda(0.1 * X, y) != pytest.approx(sfda(X, y), rel=1e-6)
    assert sfda(0.1 * X, y, shrinkage=0.2) == pytest.approx(sfda(X, y, shrinkage=0.2), rel=1e-10)


def test_monotone_in_separation():
    """blobs d=20, C=4: about 0.263, 0.332, 0.517, 0.869 for s = 0, 1, 2, 4 (ALGORITHMS.md 6.4)."""
    seps = [0.0, 1.0, 2.0, 4.0]
    means = [np.mean([sfda(*blobs(300, 20, 4, s, random_state=seed)) for seed in range(5)]) for s in seps]
    assert means == sorted(means) and len(set(means)) == 4
    assert means == pytest.approx([0.263, 0.332, 0.517, 0.869], abs=0.05)


def test_confmix_challenges_the_first_pass():
    X, y = blobs(300, 20, 4, 2.0, random_state=0)
    assert sfda(X, y) < sfda(X, y, confmix=False)


def test_singleton_class_is_finite():
    X, y = _imbalanced(8)
    y = y.copy()
    y[0] = 9  # a class of one sample: zero within-class scatter
    value = sfda(X, y)
    assert np.isfinite(value) and 0.0 <= value <= 1.0
    assert value == pytest.approx(_slow_sfda(X, y), rel=1e-8)


def test_inputs_unchanged_and_float32():
    X, y = _imbalanced(9)
    X32 = X.astype(np.float32)
    before, labels_before = X32.copy(), y.copy()
    value = sfda(X32, y)
    np.testing.assert_array_equal(X32, before)
    np.testing.assert_array_equal(y, labels_before)
    assert value == sfda(X32.astype(np.float64), y)


def test_registry_and_score_api():
    spec = get_measure("sfda")
    assert spec.requires == ("features",) and spec.higher_is_better and not spec.stochastic
    assert spec.invariances == {"sample_order", "label_permutation", "translation"}
    X, y = _imbalanced(10)
    assert ckptrank.score("sfda", X, y, use_log=True) == sfda(X, y, use_log=True)


# ----------------------------------------------------------------------------------------------
# degenerate inputs and errors
# ----------------------------------------------------------------------------------------------


def test_no_warning_in_the_regular_regime():
    X, y = _imbalanced(11)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sfda(X, y)


def test_warns_when_dimensions_exceed_samples():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 300))
    y = np.arange(50) % 5
    with pytest.warns(DegenerateInputWarning, match="n - C"):
        value = sfda(X, y)
    assert 0.0 <= value <= 1.0
    # strong shrinkage regularises the rank-deficient covariance: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sfda(X, y, shrinkage=0.5)


def test_singular_covariance_gets_a_ridge():
    y = np.repeat(np.arange(3), 4)
    X = np.eye(3)[y] * 2.0  # every class collapsed to one point: Sigma_w = 0
    with pytest.warns(DegenerateInputWarning, match="ridge"):
        value = sfda(X, y)
    assert np.isfinite(value) and value == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"a": -1.0}, "a must be"),
        ({"lambda_floor": 2.0}, "lambda_floor"),
        ({"power_iterations": 0}, "power_iterations"),
        ({"power_iterations": 2.5}, "power_iterations"),
        ({"shrinkage": 1.5}, "shrinkage"),
    ],
)
def test_option_errors(options, match):
    X, y = _imbalanced(12)
    with pytest.raises(ValueError, match=match):
        sfda(X, y, **options)


def test_input_errors():
    X, y = _imbalanced(13)
    with pytest.raises(ValueError, match="2 classes"):
        sfda(X, np.zeros(X.shape[0]))
    with pytest.raises(ValueError, match="same samples"):
        sfda(X, y[:-1])
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sfda(X_nan, y)


@pytest.mark.parametrize("scale", [1e-200, 1e160])
def test_extreme_magnitudes_are_refused_with_the_fix(scale: float) -> None:
    from ckptrank.testing.synthetic import blobs

    X, y = blobs(200, 16, 4, 2.0)
    with pytest.raises(ValueError, match="rescale the features"):
        sfda(X * scale, y)
