"""Declared maxima of measures and :func:`snap_saturated`: saturated checkpoints become exact ties."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ckptrank.measures import (
    Saturation,
    ScoreContext,
    declare_saturation,
    get_measure,
    hscore,
    knn,
    leep,
    list_measures,
    nce,
    reg_hscore,
    sfda,
    snap_saturated,
)
from ckptrank.measures.hscore import SATURATION_RTOL

EPS = np.finfo(np.float64).eps


def quiet(func, *args, **kwargs) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return func(*args, **kwargs)


def saturated_hscores(n_per: int, n_classes: int, d: int, n_checkpoints: int, seed: int = 0) -> np.ndarray:
    """H-scores of random, anisotropic 'checkpoints' with d >= n - 1: all saturated at C - 1."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per)
    out = []
    for _ in range(n_checkpoints):
        X = rng.standard_normal((y.size, d)) * np.logspace(0, -2, d) + 3.0
        out.append(quiet(hscore, X.astype(np.float32), y))
    return np.array(out)


def test_saturated_hscores_become_exact_ties_with_a_note() -> None:
    raw = saturated_hscores(n_per=12, n_classes=26, d=384, n_checkpoints=3)
    assert np.all(np.abs(raw - 25.0) <= 25.0 * 16 * EPS)  # within a few ulps of C - 1 ...
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(26), 12)
    low = quiet(hscore, rng.standard_normal((312, 20)), y)  # ... and one unsaturated checkpoint
    snapped, note = snap_saturated("hscore", [*raw, low], n_classes=26)
    assert snapped.tolist() == [25.0, 25.0, 25.0, low]
    assert note == "hscore: 3 checkpoints at its maximum C-1 = 25; tied, not ordered by round-off"


def test_hscore_tolerance_boundary_is_1e_9_relative() -> None:
    assert SATURATION_RTOL == 1e-9
    atol = 25 * 1e-9
    inside = [25.0 + 0.99 * atol, 25.0 - 0.99 * atol]
    outside = [25.0 - 1.01 * atol, 25.0 + 1.01 * atol]
    snapped, note = snap_saturated("hscore", inside + outside, n_classes=26)
    assert snapped.tolist() == [25.0, 25.0, *outside]
    assert note == "hscore: 2 checkpoints at its maximum C-1 = 25; tied, not ordered by round-off"


def test_reg_hscore_declares_the_same_maximum() -> None:
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(5), 20)
    X = np.eye(5)[y] * 4.0 + rng.standard_normal((100, 5)) * 1e-3
    value = reg_hscore(X, y, shrinkage=0.0)  # no shrinkage: the plain H-score, near C - 1 = 4
    snapped, note = snap_saturated("reg_hscore", [value, value + 1e-15, rng.uniform(0, 3)], n_classes=5)
    assert value < 4.0 and snapped[:2].tolist() == [value, value + 1e-15]  # close, but not saturated
    exact, note = snap_saturated("reg_hscore", [4.0 - 1e-15, 4.0 + 2e-15, value], n_classes=5)
    assert exact.tolist() == [4.0, 4.0, value]
    assert note == "reg_hscore: 2 checkpoints at its maximum C-1 = 4; tied, not ordered by round-off"


def test_maximum_is_d_when_features_are_narrower_than_c_minus_1() -> None:
    snapped, note = snap_saturated("hscore", [3.0 - 1e-14, 3.0, 3.0], n_classes=10, n_features=[3, 3, 64])
    assert snapped.tolist() == [3.0, 3.0, 3.0]
    assert note == "hscore: 2 checkpoints at its maximum d = 3 (< C-1 = 9); tied, not ordered by round-off"


def test_single_checkpoint_at_the_maximum_is_snapped_without_a_note() -> None:
    snapped, note = snap_saturated("hscore", [7.000000000000002, 3.0, np.nan], n_classes=8)
    assert snapped[:2].tolist() == [7.0, 3.0] and np.isnan(snapped[2]) and note is None


def test_accuracies_at_one_are_noted_and_lower_ones_untouched() -> None:
    y = np.repeat(np.arange(3), 10)
    separated = np.eye(3)[y] * 10.0
    values = [knn(separated, y), knn(separated + 0.01, y), 1.0 - 1.0 / 30]
    snapped, note = snap_saturated("knn", values, n_classes=3)
    assert snapped.tolist() == [1.0, 1.0, 1.0 - 1.0 / 30]
    assert note == (
        "knn: 2 checkpoints at its maximum 1 (every sample classified correctly); "
        "tied, not ordered by round-off"
    )


def test_sfda_maximum_depends_on_use_log() -> None:
    plain, note = snap_saturated("sfda", [1.0 - 5e-13, 1.0, 0.9], n_classes=4)
    assert plain.tolist() == [1.0, 1.0, 0.9] and note is not None and "maximum 1 (" in note
    logs, note = snap_saturated("sfda", [-5e-13, 0.0, -0.1], n_classes=4, options={"use_log": True})
    assert logs.tolist() == [0.0, 0.0, -0.1] and "maximum 0 (" in note
    far, note = snap_saturated("sfda", [1.0 - 2e-12, 1.0], n_classes=4)
    assert far.tolist() == [1.0 - 2e-12, 1.0] and note is None


def test_rtol_overrides_the_declared_tolerance() -> None:
    # tolerance = rtol * max(|maximum|, 1) = rtol * 25
    snapped, note = snap_saturated("hscore", [24.99, 24.999], n_classes=26, rtol=1e-3)
    assert snapped.tolist() == [25.0, 25.0] and note is not None
    snapped, note = snap_saturated("hscore", [24.99, 24.999], n_classes=26, rtol=1e-4)
    assert snapped.tolist() == [24.99, 25.0] and note is None
    snapped, note = snap_saturated("hscore", [24.99, 24.999], n_classes=26, rtol=0.0)
    assert snapped.tolist() == [24.99, 24.999] and note is None


def test_measure_without_a_maximum_and_inputs_unchanged() -> None:
    scores = np.array([1.5, 1.5 + 1e-15])
    snapped, note = snap_saturated("logme", scores)
    assert snapped.tolist() == scores.tolist() and note is None and snapped is not scores
    before = scores.copy()
    snap_saturated("hscore", scores, n_classes=3)
    assert scores.tolist() == before.tolist()


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"maximum of hscore depends on n_classes; pass n_classes="):
        snap_saturated("hscore", [1.0, 2.0])
    with pytest.raises(KeyError, match=r"Did you mean 'hscore'"):
        snap_saturated("hscor", [1.0])
    with pytest.raises(ValueError, match=r"one-dimensional.*\(2, 1\)"):
        snap_saturated("hscore", [[1.0], [2.0]], n_classes=3)
    with pytest.raises(ValueError, match=r"n_features has 3 values for 2 scores"):
        snap_saturated("hscore", [1.0, 2.0], n_classes=3, n_features=[4, 5, 6])
    with pytest.raises(ValueError, match=r"rtol must be a finite number >= 0, got -1"):
        snap_saturated("hscore", [1.0], n_classes=3, rtol=-1.0)
    with pytest.raises(ValueError, match=r"already declares its saturation"):
        declare_saturation("hscore", lambda context: None)


def test_declare_saturation_on_a_measure_without_one() -> None:
    spec = get_measure("logme")
    assert spec.saturation is None
    try:
        declare_saturation("logme", lambda context: Saturation(2.0, 0.5, "two"))
        snapped, note = snap_saturated("logme", [1.6, 2.4, 1.0])
        assert snapped.tolist() == [2.0, 2.0, 1.0]
        assert note == "logme: 2 checkpoints at its maximum two; tied, not ordered by round-off"
    finally:
        declare_saturation("logme", None, replace=True)
    assert get_measure("logme").saturation is None


# -- the declared maxima are upper bounds, and are attained --------------------------------------------------


def _random_problem(seed: int, n: int = 60, d: int = 8, n_classes: int = 4):
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % n_classes)
    X = rng.standard_normal((n, d)) + 1.5 * np.eye(n_classes, d)[y]
    theta = rng.dirichlet(np.ones(6), size=n)
    return X, y, theta


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    "name, d, call",
    [
        ("hscore", 8, lambda X, y, t: hscore(X, y)),
        ("hscore", 2, lambda X, y, t: hscore(X[:, :2], y)),  # d = 2 < C - 1 = 3
        ("reg_hscore", 8, lambda X, y, t: reg_hscore(X, y)),
        ("knn", 8, lambda X, y, t: knn(X, y)),
        ("sfda", 8, lambda X, y, t: sfda(X, y)),
        ("leep", 8, lambda X, y, t: leep(t, y)),
        ("nce", 8, lambda X, y, t: nce(t, y)),
    ],
)
def test_declared_maximum_bounds_the_score(name, d, call, seed) -> None:
    X, y, theta = _random_problem(seed)
    value = quiet(call, X, y, theta)
    sat = get_measure(name).saturation(ScoreContext(name, n_classes=4, n_samples=60, n_features=d))
    assert value <= sat.maximum + sat.atol


def test_declared_maxima_are_attained() -> None:
    y = np.repeat(np.arange(4), 15)
    label_features = np.eye(4)[y] * 3.0
    one_hot_source = np.eye(4)[y]  # the source prediction determines the target label
    cases = {
        "hscore": hscore(label_features, y),
        "knn": knn(label_features, y),
        "sfda": sfda(label_features + np.random.default_rng(0).standard_normal((60, 4)) * 1e-3, y),
        "leep": leep(one_hot_source, y),
        "nce": nce(one_hot_source, y),
    }
    for name, value in cases.items():
        sat = get_measure(name).saturation(ScoreContext(name, n_classes=4, n_samples=60, n_features=4))
        assert abs(value - sat.maximum) <= sat.atol, (name, value, sat)


def test_every_declared_measure_is_registered_and_the_rest_have_none() -> None:
    declared = {name for name in list_measures() if get_measure(name).saturation is not None}
    assert declared == {
        "hscore",
        "reg_hscore",
        "knn",
        "linear_probe",
        "probe_accuracy",
        "probe_accuracy_finetune",
        "sfda",
        "leep",
        "nleep",
        "nce",
    }


def test_saturated_hscore_with_d_equal_n_minus_1_is_within_ulps_even_when_ill_conditioned() -> None:
    # d = n - 1 is computed in sample space: the ratio form of feature space erred by 1.8e-10 here.
    rng = np.random.default_rng(0)
    for n_classes, per in ((5, 20), (26, 12)):
        n = n_classes * per
        y = np.repeat(np.arange(n_classes), per)
        for _ in range(3):
            X = rng.standard_normal((n, n - 1)) * np.logspace(0, -3, n - 1)
            value = quiet(hscore, X, y)
            assert abs(value - (n_classes - 1)) <= (n_classes - 1) * 1e-12


def test_clip_sets_values_above_the_maximum_to_it():
    """A rescaled resample draw above C - 1 ties with the saturated ones instead of outranking them."""
    values = [25.01, 25.0, 24.9, float("nan")]
    plain, _ = snap_saturated("hscore", values, n_classes=26)
    assert plain[0] == 25.01  # measured scores are only snapped within round-off
    clipped, note = snap_saturated("hscore", values, n_classes=26, clip=True)
    assert clipped[:3].tolist() == [25.0, 25.0, 24.9] and np.isnan(clipped[3])
    assert note == "hscore: 2 checkpoints at its maximum C-1 = 25; tied, not ordered by round-off"
