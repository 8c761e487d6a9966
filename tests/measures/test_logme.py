"""Reference tests of LogME (ALGORITHMS.md 2.6, 6.3, 6.5)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import ckptrank
from ckptrank import DegenerateInputWarning
from ckptrank.measures._validation import check_labels
from ckptrank.measures.logme import _logme_fit, logme
from ckptrank.testing.synthetic import blobs, onehot_plus_noise

LOG_2PI = math.log(2.0 * math.pi)

# ----------------------------------------------------------------------------------------------
# Independent references
# ----------------------------------------------------------------------------------------------


def explicit_evidence(X: np.ndarray, t: np.ndarray, alpha: float, beta: float) -> float:
    """Log evidence with the explicit D x D matrix A = alpha I + beta X^T X (no spectral tricks)."""
    n, D = X.shape
    A = alpha * np.eye(D) + beta * X.T @ X
    m = beta * np.linalg.solve(A, X.T @ t)
    sign, logdet = np.linalg.slogdet(A)
    assert sign > 0
    return (
        0.5 * D * math.log(alpha)
        + 0.5 * n * math.log(beta)
        - 0.5 * n * LOG_2PI
        - 0.5 * beta * float(((X @ m - t) ** 2).sum())
        - 0.5 * alpha * float(m @ m)
        - 0.5 * logdet
    )


def thin_svd_logme(
    X: np.ndarray, y: np.ndarray, *, max_iter: int = 11, tol: float = 1e-3, exact: bool = True
) -> float:
    """Per-class loop over a thin SVD of X (JMLR Algorithm 3), with or without the (D - k) log alpha term.

    ``exact=False`` is the official fixed-point variant: the evidence after the last update is
    evaluated with the moments of the iterate before it, and log det A only sums the kept
    singular values.
    """
    n, D = X.shape
    U, s, _ = np.linalg.svd(X, full_matrices=False)
    keep = s > 1e-10 * s[0]
    U, sigma = U[:, keep], s[keep] ** 2
    k = sigma.size
    evidences = []
    for c in np.unique(y):
        t = (y == c).astype(float)
        x = U.T @ t
        outside = t @ t - x @ x
        alpha = beta = 1.0
        for _ in range(max_iter):
            lam = alpha / beta
            gamma = np.sum(sigma / (sigma + lam))
            m2 = np.sum(sigma * x**2 / (sigma + lam) ** 2)
            res2 = np.sum(x**2 * (lam / (sigma + lam)) ** 2) + outside
            alpha, beta = gamma / (m2 + 1e-5), (n - gamma) / (res2 + 1e-5)
            if abs(alpha / beta - lam) / lam <= tol:
                break
        if exact:  # moments at the returned (alpha, beta)
            lam = alpha / beta
            m2 = np.sum(sigma * x**2 / (sigma + lam) ** 2)
            res2 = np.sum(x**2 * (lam / (sigma + lam)) ** 2) + outside
        logdet = np.sum(np.log(alpha + beta * sigma)) + (D - k if exact else 0) * math.log(alpha)
        L = (
            0.5 * D * math.log(alpha)
            + 0.5 * n * math.log(beta)
            - 0.5 * n * LOG_2PI
            - 0.5 * beta * res2
            - 0.5 * alpha * m2
            - 0.5 * logdet
        )
        evidences.append(L / n)
    return float(np.mean(evidences))


def low_rank_problem(n: int, d: int, rank: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features of rank ``rank`` with a clear class signal (the evidence maximum is then interior)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    Z = rng.standard_normal((n, rank)) + 3.0 * np.eye(rank)[y % rank]
    return Z @ rng.standard_normal((rank, d)), y


def random_problem(n: int, d: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % n_classes)
    X = rng.standard_normal((n, d)) + 1.5 * rng.standard_normal((n_classes, d))[y]
    return X, y


TINY_SHAPES = [(20, 6, 3), (12, 12, 2), (10, 20, 3), (5, 17, 2), (20, 1, 4), (16, 15, 4)]

# ----------------------------------------------------------------------------------------------
# Exactness
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "d", "n_classes"), TINY_SHAPES)
def test_returned_value_is_the_explicit_evidence_at_the_returned_hyperparameters(
    n: int, d: int, n_classes: int
) -> None:
    X, y = random_problem(n, d, n_classes, seed=n * d)
    info = check_labels(y)
    evidence, alpha, beta = _logme_fit(X, info)
    for c in range(n_classes):
        expected = explicit_evidence(X, (y == c).astype(float), alpha[c], beta[c]) / n
        assert evidence[c] == pytest.approx(expected, rel=1e-9, abs=1e-10)
    assert logme(X, y) == pytest.approx(float(evidence.mean()), rel=1e-12, abs=1e-14)


@pytest.mark.parametrize(("n", "d", "rank"), [(20, 6, 6), (18, 4, 4), (9, 20, 4), (6, 12, 3), (20, 20, 5)])
def test_converged_hyperparameters_are_a_stationary_point(n: int, d: int, rank: int) -> None:
    # Rank < n so that the noise cannot be fitted exactly (beta stays finite), and a clear class
    # signal so that alpha stays finite. eps=0: the official +1e-5 offsets move the fixed point
    # off the stationary point by alpha * 1e-5 / 2 and beta * 1e-5 / 2.
    X, y = low_rank_problem(n, d, rank, 3, seed=n + d)
    evidence, alpha, beta = _logme_fit(X, check_labels(y), max_iter=100_000, tol=1e-15, eps=0.0)
    h = 1e-4
    for c in range(3):
        t = (y == c).astype(float)

        def evidence_at(log_a: float, log_b: float, t: np.ndarray = t) -> float:
            return explicit_evidence(X, t, math.exp(log_a), math.exp(log_b))

        la, lb = math.log(alpha[c]), math.log(beta[c])
        d_alpha = (evidence_at(la + h, lb) - evidence_at(la - h, lb)) / (2 * h)
        d_beta = (evidence_at(la, lb + h) - evidence_at(la, lb - h)) / (2 * h)
        assert abs(d_alpha) < 1e-6 and abs(d_beta) < 1e-6, (c, d_alpha, d_beta)
        # ... and a maximum.
        assert evidence_at(la, lb) > max(
            evidence_at(la + 0.05, lb),
            evidence_at(la - 0.05, lb),
            evidence_at(la, lb + 0.05),
            evidence_at(la, lb - 0.05),
        )
        assert evidence[c] * n == pytest.approx(evidence_at(la, lb), rel=1e-10)


@pytest.mark.parametrize(("n", "d"), [(40, 8), (30, 30), (31, 30), (25, 60), (50, 2048)])
def test_agrees_with_a_per_class_thin_svd_loop(n: int, d: int) -> None:
    """The shared Gram eigendecomposition (both sides of n = d) equals a per-class thin-SVD loop."""
    X, y = random_problem(n, d, 4, seed=d)
    assert logme(X, y) == pytest.approx(thin_svd_logme(X, y), rel=1e-8)
    compat = logme(X, y, compat="thuml_fixed_point")
    assert compat == pytest.approx(thin_svd_logme(X, y, exact=False), rel=1e-8)


def test_rank_deficient_features_with_more_samples_than_dimensions() -> None:
    # n > D but rank 3 < D: the zero eigenvalues enter log det A as log(alpha) in the exact form.
    # (The official variant's absolute 1e-10 rank threshold keeps round-off directions here,
    # so its value depends on round-off and is not compared.)
    X, y = low_rank_problem(60, 10, 3, 3, seed=4)
    assert logme(X, y) == pytest.approx(thin_svd_logme(X, y), rel=1e-7)


@pytest.mark.parametrize(("n", "d"), [(200, 8), (60, 60), (300, 20)])
def test_exact_and_official_forms_agree_when_n_at_least_d(n: int, d: int) -> None:
    X, y = random_problem(n, d, 3, seed=n)
    exact = logme(X, y, max_iter=500, tol=1e-12)
    official = logme(X, y, max_iter=500, tol=1e-12, compat="thuml_fixed_point")
    assert official == pytest.approx(exact, rel=1e-9)


def test_n_below_d_regression_exact_differs_from_the_official_fixed_point() -> None:
    """ALGORITHMS.md 6.5: the official code omits -(D-k)/2 log alpha when n < D (blobs seed 0)."""
    X, y = blobs(100, 512, 5, 2.0, random_state=0)
    exact = logme(X, y)
    official = logme(X, y, compat="thuml_fixed_point")
    assert exact == pytest.approx(-0.6116798416, abs=1e-8)
    assert official == pytest.approx(15.3940223979, abs=1e-8)
    # The gap is (D - n) / (2n) * log(alpha), averaged over classes (same alpha in both forms).
    info = check_labels(y)
    _, alpha, _ = _logme_fit(X, info)
    _, alpha_official, _ = _logme_fit(X, info, compat="thuml_fixed_point")
    np.testing.assert_array_equal(alpha, alpha_official)
    gap = float(np.mean((512 - 100) / 200 * np.log(alpha)))
    assert official - exact == pytest.approx(gap, rel=1e-4)


# ----------------------------------------------------------------------------------------------
# Invariances
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "d"), [(60, 8), (12, 30)])
def test_rotation_invariance(n: int, d: int) -> None:
    X, y = random_problem(n, d, 3, seed=1)
    Q, _ = np.linalg.qr(np.random.default_rng(2).standard_normal((d, d)))
    assert logme(X @ Q, y) == pytest.approx(logme(X, y), rel=1e-10)


@pytest.mark.parametrize("scale", [1e-3, 0.1, 10.0, 1e3])
@pytest.mark.parametrize(("n", "d", "rank"), [(80, 8, 8), (10, 30, 5)])
def test_isotropic_scale_invariance_of_the_maximised_evidence(
    n: int, d: int, rank: int, scale: float
) -> None:
    X, y = low_rank_problem(n, d, rank, 3, seed=5)
    info = check_labels(y)

    def converged(features: np.ndarray) -> float:
        return float(_logme_fit(features, info, max_iter=20_000, tol=1e-14, eps=0.0)[0].mean())

    assert converged(scale * X) == pytest.approx(converged(X), rel=1e-9, abs=1e-12)


def test_default_settings_are_scale_dependent_through_the_denominator_offset() -> None:
    # Documented: the official +1e-5 in the updates is absolute, so large scales move the score.
    X, y = blobs(300, 16, 5, 1.0, random_state=0)
    assert logme(10 * X, y) == pytest.approx(logme(X, y), abs=1e-3)
    assert abs(logme(1000 * X, y) - logme(X, y)) > 0.01


def test_not_translation_invariant() -> None:
    X, y = blobs(200, 8, 4, 1.0, random_state=0)
    assert abs(logme(X + 5.0, y) - logme(X, y)) > 1e-3


def test_label_permutation_and_gappy_labels() -> None:
    X, y = blobs(120, 10, 4, 1.0, random_state=3)
    expected = logme(X, y)
    assert logme(X, np.array([7, 2, 40, -1])[y]) == pytest.approx(expected, rel=1e-12)
    assert logme(X, np.array(["d", "c", "b", "a"])[y]) == pytest.approx(expected, rel=1e-12)


# ----------------------------------------------------------------------------------------------
# Sanity, monotonicity, degenerate inputs
# ----------------------------------------------------------------------------------------------


def test_good_features_beat_random_ones() -> None:
    y = np.arange(300) % 5
    good = logme(onehot_plus_noise(y, 16, 1e-3), y)
    bad = logme(np.random.default_rng(0).standard_normal((300, 16)), y)
    assert good > bad
    assert good > 1.0  # tends to a large positive value as features become linear in the labels


def test_monotone_in_class_separation() -> None:
    means = [
        np.mean([logme(*blobs(300, 16, 5, s, random_state=seed)) for seed in range(4)]) for s in (0, 2, 4)
    ]
    assert means[0] < means[1] < means[2]


def test_score_function_dispatches_to_logme() -> None:
    X, y = blobs(50, 6, 3, 1.0, random_state=0)
    assert ckptrank.score("logme", X, y, compat="thuml_fixed_point") == logme(
        X, y, compat="thuml_fixed_point"
    )


def test_inputs_unchanged() -> None:
    X, y = blobs(40, 6, 3, 1.0, random_state=0)
    X32 = X.astype(np.float32)
    X_copy, y_copy = X32.copy(), y.copy()
    logme(X32, y)
    np.testing.assert_array_equal(X32, X_copy)
    np.testing.assert_array_equal(y, y_copy)


def test_constant_column_singleton_class_and_d_much_larger_than_n_are_finite() -> None:
    X, y = blobs(30, 6, 3, 1.0, random_state=0)
    X[:, 2] = 4.0
    y[0] = 9  # a class with one sample
    assert math.isfinite(logme(X, y))
    assert logme(X, y) == pytest.approx(thin_svd_logme(X, y), rel=1e-8)
    rng = np.random.default_rng(0)
    y = np.arange(50) % 5
    X = rng.standard_normal((50, 2048))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = logme(X, y)
    # Documented: the exact rank-deficient evidence (no inflation), below that of separable features.
    assert value < logme(X, y, compat="thuml_fixed_point") - 10.0


def test_all_zero_features_warn_and_give_the_noise_only_evidence() -> None:
    y = np.array([0, 0, 0, 1, 1, 2])
    with pytest.warns(DegenerateInputWarning, match="zero"):
        value = logme(np.zeros((6, 3)), y)
    counts = np.array([3, 2, 1])
    expected = np.mean(0.5 * np.log(6 / counts) - 0.5 * LOG_2PI - 0.5)
    assert value == pytest.approx(expected, rel=1e-12)


def test_large_offset_features_stay_finite_without_warnings() -> None:
    # X^T X is dominated by the offset (condition ~1e17): round-off directions of the Gram
    # eigendecomposition are treated as null instead of blowing up ||m||^2.
    rng = np.random.default_rng(0)
    y = np.arange(30) % 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # The weights that fit such features are tiny (|m|^2 ~ 1e-17), so the official 1e-5
        # stabiliser dominates alpha: that, and only that, is reported.
        warnings.filterwarnings("ignore", message="logme: the fixed point's", category=DegenerateInputWarning)
        value = logme(1e8 + rng.standard_normal((30, 5)), y)
    assert math.isfinite(value)
    with pytest.warns(DegenerateInputWarning, match="no longer scale invariant"):
        logme(1e8 + rng.standard_normal((30, 5)), y)


def test_standardised_features_do_not_trigger_the_stabiliser_warning() -> None:
    X, y = blobs(200, 16, 4, 2.0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logme(X, y)
        # Uninformative features have tiny weights at any scale: not a scale problem, no warning.
        logme(np.random.default_rng(0).standard_normal((60, 3)), np.repeat([0, 1, 2], 20))
    # Scaled by 1e3, |m|^2 shrinks by 1e6 to the stabiliser's order: reported.
    with pytest.warns(DegenerateInputWarning, match="stabiliser"):
        logme(1e3 * X, y)


@pytest.mark.parametrize("scale", [1e-80, 1e80])
def test_extreme_magnitudes_raise(scale: float) -> None:
    X, y = blobs(30, 4, 3, 1.0, random_state=0)
    with pytest.raises(ValueError, match="rescale"):
        logme(scale * X, y)


def test_max_iter_and_tol_are_honoured() -> None:
    X, y = blobs(100, 8, 3, 1.0, random_state=0)
    one = logme(X, y, max_iter=1)
    assert one == pytest.approx(thin_svd_logme(X, y, max_iter=1), rel=1e-9)
    assert logme(X, y, max_iter=200, tol=0.0) == pytest.approx(thin_svd_logme(X, y, max_iter=200, tol=0.0))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"max_iter": 0}, "max_iter"),
        ({"max_iter": 2.5}, "max_iter"),
        ({"tol": -1.0}, "tol"),
        ({"compat": "thuml"}, "compat"),
    ],
)
def test_invalid_options_raise(options: dict, match: str) -> None:
    X, y = blobs(30, 4, 3, 1.0, random_state=0)
    with pytest.raises(ValueError, match=match):
        logme(X, y, **options)


def test_invalid_inputs_raise() -> None:
    X, y = blobs(30, 4, 3, 1.0, random_state=0)
    with pytest.raises(ValueError, match="30 rows but labels has 29"):
        logme(X, y[:29])
    with pytest.raises(ValueError, match="at least 2 classes"):
        logme(X, np.zeros(30))
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        logme(X, y)
