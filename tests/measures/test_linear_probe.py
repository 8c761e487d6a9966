"""Tests of the linear-probe measure against scikit-learn pipelines and by definition."""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import ckptrank
from ckptrank.measures import DegenerateInputWarning, get_measure
from ckptrank.measures.linear_probe import DEFAULT_GRID, _select_c_reg, linear_probe
from ckptrank.testing.synthetic import blobs

lp_module = importlib.import_module("ckptrank.measures.linear_probe")


def _overlapping(n: int, d: int, n_classes: int, seed: int, separation: float = 1.0) -> tuple:
    """Blobs with unequal feature scales and a large offset (standardisation matters)."""
    X, y = blobs(n, d, n_classes, separation, random_state=seed)
    X = X * np.linspace(0.5, 4.0, d) + 10.0
    return X, y


def _sklearn_cv(
    X: np.ndarray, y: np.ndarray, C: float, cv: int, seed: int, scoring: str = "accuracy"
) -> float:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, tol=1e-10, max_iter=10000))
    splits = StratifiedKFold(cv, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # scikit-learn's own small-class warning
        return float(cross_val_score(model, X, y, cv=splits, scoring=scoring).mean())


def _one_prediction(n: int, cv: int) -> float:
    """Largest change of the fold-averaged accuracy caused by one differing prediction."""
    return 1.0 / (cv * (n // cv)) + 1e-12


@pytest.mark.parametrize(
    ("n", "d", "n_classes", "C", "seed"),
    [
        (200, 6, 3, 1.0, 0),
        (150, 4, 2, 0.1, 1),
        (240, 10, 4, 10.0, 2),
        (180, 30, 3, 0.01, 3),
        (80, 150, 3, 0.1, 4),
    ],
)
def test_fixed_c_matches_sklearn_cross_val_score(n: int, d: int, n_classes: int, C: float, seed: int) -> None:
    X, y = _overlapping(n, d, n_classes, seed)
    ours = linear_probe(X, y, C_reg=C, random_state=seed)
    ref = _sklearn_cv(X, y, C, 5, seed)
    assert abs(ours - ref) <= _one_prediction(n, 5)
    assert 1.0 / n_classes < ours < 1.0  # the fixture is neither trivial nor hopeless


def test_fixed_c_matches_sklearn_default_tolerance() -> None:
    X, y = _overlapping(200, 5, 3, seed=4)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0))
    ref = cross_val_score(model, X, y, cv=StratifiedKFold(5, shuffle=True, random_state=7)).mean()
    assert linear_probe(X, y, C_reg=1.0, random_state=7) == pytest.approx(ref, abs=1e-12)


def test_default_tolerance_predicts_like_a_converged_sklearn_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every held-out prediction equals scikit-learn's at tol=1e-8 (tol=1e-2 flipped 5 of 3000 here)."""
    X, y = _overlapping(3000, 384, 10, seed=0)
    predictions = []
    original = lp_module._score

    def spy(y_true: torch.Tensor, y_pred: torch.Tensor, metric: str) -> float:
        predictions.append(y_pred.numpy().copy())
        return original(y_true, y_pred, metric)

    monkeypatch.setattr(lp_module, "_score", spy)
    linear_probe(X, y, C_reg=0.1)
    reference = []
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(X, y):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, tol=1e-8, max_iter=10000))
        reference.append(model.fit(X[train], y[train]).predict(X[test]))
    assert len(predictions) == 5
    assert sum(int((ours != ref).sum()) for ours, ref in zip(predictions, reference, strict=True)) == 0
    # the fixture has decision margins small enough for a loose tolerance to flip predictions
    predictions.clear()
    linear_probe(X, y, C_reg=0.1, tol=1e-2)
    assert sum(int((ours != ref).sum()) for ours, ref in zip(predictions, reference, strict=True)) > 0


def test_balanced_accuracy_matches_sklearn() -> None:
    rng = np.random.default_rng(5)
    y = rng.choice(3, size=300, p=[0.7, 0.2, 0.1])
    X = rng.standard_normal((300, 4))
    X[np.arange(300), y] += 1.2
    ours = linear_probe(X, y, C_reg=1.0, metric="balanced_accuracy", random_state=3)
    ref = _sklearn_cv(X, y, 1.0, 5, 3, scoring="balanced_accuracy")
    assert ours == pytest.approx(ref, abs=1e-12)  # identical predictions
    plain = linear_probe(X, y, C_reg=1.0, random_state=3)
    assert plain == pytest.approx(_sklearn_cv(X, y, 1.0, 5, 3), abs=1e-12)
    assert ours < plain  # the rare classes are the hard ones


def test_standardize_false_matches_plain_logistic_regression() -> None:
    X, y = _overlapping(150, 4, 3, seed=6)
    X = X - 10.0
    model = LogisticRegression(C=0.5, tol=1e-10, max_iter=10000)
    ref = cross_val_score(model, X, y, cv=StratifiedKFold(5, shuffle=True, random_state=0)).mean()
    ours = linear_probe(X, y, C_reg=0.5, standardize=False)
    assert abs(ours - ref) <= _one_prediction(150, 5)


def test_separable_blobs_score_one() -> None:
    X, y = blobs(200, 8, 4, separation=8.0, random_state=1)
    assert linear_probe(X, y) == 1.0
    assert linear_probe(X, y, fast=True) == 1.0


def test_random_features_score_the_majority_rate() -> None:
    rng = np.random.default_rng(8)
    y = rng.choice(3, size=2000, p=[0.5, 0.3, 0.2])
    X = rng.standard_normal((2000, 5))
    assert linear_probe(X, y) == pytest.approx(0.5, abs=0.03)


def _sklearn_selection(X: np.ndarray, y: np.ndarray, grid: list[float], seed: int) -> tuple[float, dict]:
    """Slow reference of the C_reg selection: the same inner split, one scikit-learn fit per value."""
    outer_train = next(StratifiedKFold(5, shuffle=True, random_state=seed).split(X, y))[0]
    inner_fit, inner_val = next(
        StratifiedKFold(5, shuffle=True, random_state=seed).split(X[outer_train], y[outer_train])
    )
    fit_idx, val_idx = outer_train[inner_fit], outer_train[inner_val]
    scores = {}
    for C in grid:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=C, tol=1e-8, max_iter=10000))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X[fit_idx], y[fit_idx])
        scores[C] = float((model.predict(X[val_idx]) == y[val_idx]).mean())
    best = max(grid, key=lambda c: (scores[c], -c))  # best score, ties to the smaller C
    return best, scores


@pytest.mark.parametrize(("d", "n_grid", "expected"), [(30, 7, 0.1), (50, 5, 0.001)])
def test_auto_selection_matches_slow_sklearn_loop(d: int, n_grid: int, expected: float) -> None:
    # d=30: a clear interior maximum at C=0.1; d=50: 1e-3 and 1e-2 tie, the smaller wins
    X, y = _overlapping(250, d, 4, seed=2, separation=2.0)
    grid = list(DEFAULT_GRID)[:n_grid]
    best, ref_scores = _sklearn_selection(X, y, grid, seed=0)
    assert best == expected
    train = next(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))[0]
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    common = dict(cv=5, seed=0, standardize=True, metric="accuracy", preconditioner=None, max_iter=10000)
    chosen, scores = _select_c_reg(Xt, yt, train, grid=grid, patience=None, tol=1e-8, **common)
    assert scores == pytest.approx(ref_scores, abs=1e-12)
    assert chosen == best
    # patience stops the path after two values without improvement, and keeps the choice
    chosen_p, scores_p = _select_c_reg(Xt, yt, train, grid=grid, patience=2, tol=1e-8, **common)
    assert chosen_p == chosen
    assert list(scores_p) == grid[: grid.index(chosen) + 3]


def test_default_protocol_uses_the_selected_value() -> None:
    X, y = _overlapping(250, 30, 4, seed=2, separation=2.0)
    assert linear_probe(X, y) == linear_probe(X, y, C_reg=0.1)
    assert linear_probe(X, y) != linear_probe(X, y, C_reg=1e-4)


def test_auto_selection_scores_are_path_independent() -> None:
    """Warm-started path scores equal cold fits at each value (certified tolerance)."""
    X, y = _overlapping(200, 8, 3, seed=10)
    train = next(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))[0]
    common = dict(cv=5, seed=0, standardize=True, metric="accuracy", preconditioner=None, patience=None)
    _, path = _select_c_reg(
        torch.from_numpy(X),
        torch.from_numpy(y),
        train,
        grid=[0.01, 0.1, 1.0],
        tol=1e-6,
        max_iter=1000,
        **common,
    )
    for C in (0.01, 0.1, 1.0):
        _, single = _select_c_reg(
            torch.from_numpy(X), torch.from_numpy(y), train, grid=[C], tol=1e-6, max_iter=1000, **common
        )
        assert single[C] == path[C]


def test_label_permutation_and_arbitrary_labels() -> None:
    X, y = _overlapping(200, 6, 3, seed=11)
    base = linear_probe(X, y)
    names = np.array(["zebra", "ant", "moose"])
    assert linear_probe(X, names[y]) == base
    assert linear_probe(X, (y + 1) % 3) == base
    assert linear_probe(X, y * 5 + 3, C_reg=0.3) == linear_probe(X, y, C_reg=0.3)


def test_translation_and_isotropic_scale_invariance() -> None:
    X, y = _overlapping(200, 6, 3, seed=12)
    base = linear_probe(X, y)
    assert linear_probe(X + 123.0, y) == base
    assert linear_probe(X * 0.01, y) == base


def test_determinism_and_seed_dependence() -> None:
    X, y = _overlapping(200, 6, 3, seed=13)
    assert linear_probe(X, y, random_state=3) == linear_probe(X, y, random_state=3)
    values = {linear_probe(X, y, C_reg=1.0, random_state=s) for s in range(4)}
    assert len(values) > 1  # different splits give (slightly) different estimates


def test_fast_variant_is_a_single_stratified_half_split() -> None:
    X, y = _overlapping(200, 5, 3, seed=14, separation=2.0)
    train, test = next(StratifiedKFold(2, shuffle=True, random_state=0).split(X, y))
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, tol=1e-10, max_iter=10000))
    ref = float((model.fit(X[train], y[train]).predict(X[test]) == y[test]).mean())
    assert abs(linear_probe(X, y, fast=True) - ref) <= 1.0 / 100 + 1e-12


def test_small_class_reduces_folds_with_warning() -> None:
    X, y = _overlapping(120, 5, 3, seed=15)
    keep = np.concatenate([np.flatnonzero(y != 2), np.flatnonzero(y == 2)[:3]])
    X, y = X[keep], y[keep]
    with pytest.warns(DegenerateInputWarning, match="using 3 folds"):
        ours = linear_probe(X, y, C_reg=1.0)
    assert abs(ours - _sklearn_cv(X, y, 1.0, 3, 0)) <= _one_prediction(y.shape[0], 3)


def test_singleton_class_counts_as_error() -> None:
    X, y = _overlapping(60, 4, 2, seed=16, separation=10.0)
    X = np.vstack([X, np.full((1, 4), 50.0)])
    y = np.concatenate([y, [2]])
    with pytest.warns(DegenerateInputWarning, match="smallest class has 1 samples"):
        score = linear_probe(X, y, C_reg=1.0)
    # two folds; the singleton sits in one test fold, its class absent from that training part
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        _, test = next(StratifiedKFold(2, shuffle=True, random_state=0).split(X, y))
    size_with_singleton = test.size if 60 in test else X.shape[0] - test.size
    assert score == pytest.approx(0.5 * (1.0 - 1.0 / size_with_singleton) + 0.5)


def test_single_class_training_part_predicts_it() -> None:
    # two folds: test {x=1, x=2} with training part {x=0} (class 0 only: predicts 0 -> 1/2),
    # and test {x=0} with training part {x=1 (class 0), x=2 (class 1)}: x=0 -> class 0 -> 1
    X = np.array([[0.0], [1.0], [2.0]])
    y = np.array([0, 0, 1])
    with pytest.warns(DegenerateInputWarning):
        score = linear_probe(X, y, C_reg=1.0)
    assert score == pytest.approx(0.75)


def test_inputs_unchanged_types_and_dtypes() -> None:
    X, y = _overlapping(150, 5, 3, seed=17)
    X0, y0 = X.copy(), y.copy()
    ref = linear_probe(X, y, C_reg=1.0)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
    assert isinstance(ref, float)
    assert linear_probe(torch.from_numpy(X), torch.from_numpy(y), C_reg=1.0) == ref
    assert linear_probe(X, y, C_reg=1.0, device="cpu") == ref
    X32 = X.astype(np.float32)
    assert linear_probe(X32, y, C_reg=1.0) == linear_probe(X32.astype(np.float64), y, C_reg=1.0)


def test_preconditioned_solver_used_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    original = lp_module.fit_logistic

    def spy(*args, **kwargs):
        seen.append(kwargs["preconditioner"])
        return original(*args, **kwargs)

    monkeypatch.setattr(lp_module, "fit_logistic", spy)
    X, y = _overlapping(100, 5, 3, seed=18)
    linear_probe(X, y, C_reg=1.0)
    assert len(seen) == 5
    assert all(p is seen[0] and p is not None for p in seen)  # built once, shared by the folds


def test_registry_and_score_dispatch() -> None:
    spec = get_measure("linear_probe")
    assert spec.requires == ("features",)
    assert spec.higher_is_better and spec.stochastic
    assert spec.invariances == frozenset({"label_permutation", "translation", "isotropic_scale"})
    X, y = _overlapping(100, 4, 2, seed=19)
    assert ckptrank.score("linear_probe", X, y, C_reg=2.0) == linear_probe(X, y, C_reg=2.0)


def test_errors() -> None:
    X, y = _overlapping(60, 3, 2, seed=20)
    with pytest.raises(ValueError, match="cv must be an integer >= 2"):
        linear_probe(X, y, cv=1)
    with pytest.raises(ValueError, match="C_reg must be a positive finite float or 'auto'"):
        linear_probe(X, y, C_reg=-1.0)
    with pytest.raises(ValueError, match="C_reg must be a positive float or 'auto'"):
        linear_probe(X, y, C_reg="best")
    with pytest.raises(ValueError, match="grid must be a non-empty sequence"):
        linear_probe(X, y, grid=[])
    with pytest.raises(ValueError, match="grid must be a non-empty sequence"):
        linear_probe(X, y, grid=[1.0, 0.0])
    with pytest.raises(ValueError, match="patience must be a positive int or None"):
        linear_probe(X, y, patience=0)
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        linear_probe(X, y, metric="f1")
    with pytest.raises(ValueError, match="random_state must be an int or None"):
        linear_probe(X, y, random_state="seed")
    with pytest.raises(ValueError, match="NaN"):
        linear_probe(np.full((6, 2), np.nan), [0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="2 classes"):
        linear_probe(X, np.zeros(60))
