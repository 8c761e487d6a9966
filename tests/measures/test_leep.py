"""Reference tests of LEEP (ALGORITHMS.md 2.1, 6.3, 6.5)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import ckptrank
from ckptrank import get_measure
from ckptrank.measures._validation import check_source_probs
from ckptrank.measures.leep import _expected_empirical_prediction, _joint_pass, leep
from ckptrank.measures.nce import nce
from ckptrank.testing.synthetic import source_probs_for

THETA = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])
Y = np.array([0, 0, 1, 1])

# ----------------------------------------------------------------------------------------------
# Independent references
# ----------------------------------------------------------------------------------------------


def leep_by_definition(theta: np.ndarray, labels: np.ndarray, use_log: bool = True) -> float:
    """Nguyen et al.'s three steps with explicit loops over samples, labels and source classes."""
    classes = sorted(set(labels.tolist()))
    n, n_source = theta.shape
    joint = {(c, z): 0.0 for c in classes for z in range(n_source)}
    for i in range(n):
        for z in range(n_source):
            joint[labels[i], z] += theta[i, z] / n
    marginal = [sum(joint[c, z] for c in classes) for z in range(n_source)]
    total = 0.0
    for i in range(n):
        eep = 0.0
        for z in range(n_source):
            if marginal[z] > 0:
                eep += joint[labels[i], z] / marginal[z] * theta[i, z]
        total += math.log(eep) if use_log else eep
    return total / n


def label_entropy(labels: np.ndarray) -> float:
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def random_probs(rng: np.random.Generator, n: int, n_source: int, temperature: float = 1.0) -> np.ndarray:
    logits = rng.standard_normal((n, n_source)) / temperature
    P = np.exp(logits - logits.max(axis=1, keepdims=True))
    return P / P.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------------------------
# Closed-form fixtures
# ----------------------------------------------------------------------------------------------


def test_fixture_value() -> None:
    assert leep(THETA, Y) == pytest.approx(-0.342615706369, abs=1e-12)


def test_fixture_no_log_variant() -> None:
    assert leep(THETA, Y, use_log=False) == pytest.approx(0.711779448622, abs=1e-12)


def test_fixture_intermediate_eep() -> None:
    eep = _expected_empirical_prediction(THETA, Y, 2)
    np.testing.assert_allclose(eep, [0.744361, 0.679198, 0.646617, 0.776942], atol=5e-7)


def test_constant_theta_balanced_binary_is_minus_log_two() -> None:
    theta = np.tile([0.3, 0.5, 0.2], (6, 1))
    assert leep(theta, [0, 1, 0, 1, 0, 1]) == pytest.approx(-math.log(2), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_constant_theta_gives_minus_entropy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=50)
    theta = np.tile(random_probs(rng, 1, 7), (50, 1))
    assert leep(theta, y) == pytest.approx(-label_entropy(y), abs=1e-12)


# ----------------------------------------------------------------------------------------------
# Against the by-definition version
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("use_log", [True, False])
def test_matches_definition_on_random_inputs(seed: int, use_log: bool) -> None:
    rng = np.random.default_rng(seed)
    n, n_classes, n_source = 60, 4, 9
    y = rng.integers(0, n_classes, size=n)
    theta = random_probs(rng, n, n_source, temperature=0.5)
    assert leep(theta, y, use_log=use_log) == pytest.approx(
        leep_by_definition(theta, y, use_log), rel=1e-12, abs=1e-14
    )


def test_arbitrary_label_values_equal_reindexed() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, size=40)
    theta = random_probs(rng, 40, 5)
    gappy = np.array([10, 20, 70])[y]
    strings = np.array(["cat", "dog", "emu"])[y]
    expected = leep_by_definition(theta, y)
    assert leep(theta, gappy) == pytest.approx(expected, rel=1e-12)
    assert leep(theta, strings) == pytest.approx(expected, rel=1e-12)


def test_score_api_dispatch() -> None:
    assert ckptrank.score("leep", labels=Y, source_probs=THETA) == pytest.approx(-0.342615706369, abs=1e-12)
    spec = get_measure("leep")
    assert spec.requires == ("source_probs",)
    assert spec.higher_is_better
    assert not spec.stochastic


# ----------------------------------------------------------------------------------------------
# Bounds and identities (ALGORITHMS.md 6.3)
# ----------------------------------------------------------------------------------------------


def test_bounds_on_many_random_instances() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(4, 30))
        n_classes = int(rng.integers(2, 5))
        y = rng.integers(0, n_classes, size=n)
        y[:2] = [0, 1]  # at least two classes
        theta = random_probs(rng, n, int(rng.integers(2, 6)), temperature=float(rng.uniform(0.1, 3)))
        value = leep(theta, y)
        assert -label_entropy(y) - 1e-12 <= value <= 1e-15


def test_upper_bound_reached_when_source_class_determines_label() -> None:
    z = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    y = np.array([0, 0, 1, 1, 0, 0, 1, 1])  # y = g(z)
    theta = np.eye(4)[z]
    assert leep(theta, y) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("seed", range(3))
def test_one_hot_theta_equals_nce(seed: int) -> None:
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 6, size=80)
    y = (z + rng.integers(0, 2, size=80)) % 3
    theta = np.eye(8)[z]  # columns 6 and 7 are identically zero
    assert leep(theta, y) == pytest.approx(nce(z, y), rel=1e-12)
    assert leep(theta, y) == pytest.approx(nce(theta, y), rel=1e-12)


def test_splitting_a_source_class_leaves_leep_unchanged() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, size=50)
    theta = source_probs_for(y, 4, random_state=3)
    split = np.column_stack([theta[:, :1] * 0.3, theta[:, :1] * 0.7, theta[:, 1:]])
    assert leep(split, y) == pytest.approx(leep(theta, y), rel=1e-12)


def test_source_and_label_permutation_invariance() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 4, size=70)
    theta = random_probs(rng, 70, 6)
    reference = leep(theta, y)
    assert leep(theta[:, rng.permutation(6)], y) == pytest.approx(reference, rel=1e-12)
    assert leep(theta, rng.permutation(4)[y]) == pytest.approx(reference, rel=1e-12)
    order = rng.permutation(70)
    assert leep(theta[order], y[order]) == pytest.approx(reference, rel=1e-12)


def test_informative_source_beats_uninformative() -> None:
    y = np.arange(300) % 3
    informative = source_probs_for(y, 5, strength=4.0, random_state=0)
    noise = source_probs_for(y, 5, strength=0.0, random_state=0)
    assert leep(informative, y) > leep(noise, y) + 0.3


# ----------------------------------------------------------------------------------------------
# Degenerate inputs
# ----------------------------------------------------------------------------------------------


def test_zero_column_contributes_nothing() -> None:
    padded = np.column_stack([THETA[:, :1], np.zeros(4), THETA[:, 1:]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = leep(padded, Y)
    assert value == pytest.approx(-0.342615706369, abs=1e-12)


def test_tiny_probabilities_are_finite_without_warnings() -> None:
    theta = np.array([[1.0, 1e-310], [1.0, 0.0], [1e-310, 1.0], [0.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = leep(theta, Y)
    assert value == pytest.approx(0.0, abs=1e-12)


def test_torch_and_float32_inputs() -> None:
    expected = leep(THETA, Y)
    assert leep(torch.tensor(THETA), torch.tensor(Y)) == pytest.approx(expected, rel=1e-12)
    assert leep(THETA.astype(np.float32), Y) == pytest.approx(expected, rel=1e-6)


def test_bfloat16_softmax_is_accepted() -> None:
    """bfloat16 rounding moves row sums by up to 2**-8, beyond the float tolerance of 1e-3."""
    logits = torch.randn(300, 10, generator=torch.Generator().manual_seed(1))
    theta = torch.softmax(logits, 1).to(torch.bfloat16)
    assert (theta.double().sum(1) - 1.0).abs().max() > 1e-3
    y = np.arange(300) % 4
    values = theta.double().numpy()
    expected = leep_by_definition(values / values.sum(axis=1, keepdims=True), y)
    assert leep(theta, y) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="rounded to bfloat16/float16 and then upcast"):
        leep(theta.float(), y)  # upcast first: the dtype, and so its tolerance, is lost


def test_inputs_are_not_mutated() -> None:
    theta, y = THETA.copy(), Y.copy()
    leep(theta, y)
    np.testing.assert_array_equal(theta, THETA)
    np.testing.assert_array_equal(y, Y)


def test_returns_python_float() -> None:
    assert type(leep(THETA, Y)) is float


@pytest.mark.parametrize(
    ("theta", "labels", "match"),
    [
        (np.log(THETA), Y, "negative"),
        (THETA * 2, Y, "do not sum to 1"),
        (THETA[:3], Y, "rows but labels has"),
        (np.where(np.eye(4, 2) == 1, np.nan, THETA), Y, "NaN"),
        (THETA, [1, 1, 1, 1], "at least 2 classes"),
        (THETA[:, :1] / THETA[:, :1], Y, "at least 2 classes|column"),
    ],
)
def test_bad_inputs_raise(theta: np.ndarray, labels: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        leep(theta, labels)


# ----------------------------------------------------------------------------------------------
# The blocked fast path: same value and same validation as the plain formula
# ----------------------------------------------------------------------------------------------


def leep_plain(P: np.ndarray, labels: np.ndarray) -> float:
    """The paper's formula with dense one-hot matrix products in float64, rows renormalised first."""
    theta = P.astype(np.float64) / P.astype(np.float64).sum(axis=1, keepdims=True)
    onehot = (labels[:, None] == np.unique(labels)[None, :]).astype(np.float64)
    joint = onehot.T @ theta / len(labels)
    conditional = joint / joint.sum(axis=0, keepdims=True)
    return float(np.mean(np.log(np.sum(theta @ conditional.T * onehot, axis=1))))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("n", "n_source", "n_classes"), [(3000, 1000, 40), (1500, 64, 3), (700, 9000, 10)])
def test_blocked_computation_matches_the_plain_formula(
    dtype: type, n: int, n_source: int, n_classes: int
) -> None:
    """Several row blocks (1000 columns: 524 rows per block), float32 and float64 input, 1e-12 relative."""
    rng = np.random.default_rng(n)
    y = rng.permutation(np.arange(n) % n_classes)
    P = random_probs(rng, n, n_source, temperature=0.3).astype(dtype)
    assert leep(P, y) == pytest.approx(leep_plain(P, y), rel=1e-12)


def test_strided_and_fortran_inputs_give_the_same_value() -> None:
    rng = np.random.default_rng(7)
    y = np.arange(1200) % 5
    P = random_probs(rng, 1200, 1500)
    expected = leep(P, y)
    assert leep(np.asfortranarray(P), y) == pytest.approx(expected, rel=1e-14)
    wide = np.zeros((1200, 3000))
    wide[:, ::2] = P
    assert leep(wide[:, ::2], y) == pytest.approx(expected, rel=1e-14)
    assert leep(torch.from_numpy(P.astype(np.float32)), y) == pytest.approx(
        leep_plain(P.astype(np.float32), y), rel=1e-12
    )


def test_row_sums_are_those_the_validator_checks() -> None:
    """The fast path accepts exactly what check_source_probs accepts: same float64 row sums, bit for bit."""
    from ckptrank.measures._validation import check_features

    rng = np.random.default_rng(2)
    P = random_probs(rng, 2000, 1000).astype(np.float32)
    _, sums, lowest = _joint_pass(P, np.arange(2000) % 3, 3)
    np.testing.assert_array_equal(sums, check_features(P).sum(axis=1))
    assert lowest == float(P.min())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1 + 0.98e-3, 1 - 0.98e-3, 1 + 1.02e-3, 1 - 1.02e-3])
def test_row_sum_tolerance_is_the_validators(dtype: type, scale: float) -> None:
    rng = np.random.default_rng(5)
    y = np.arange(1500) % 4
    P = random_probs(rng, 1500, 800)
    P[1400] *= scale  # in the third block
    P = P.astype(dtype)
    try:
        check_source_probs(P, n_samples=1500)
    except ValueError as err:
        with pytest.raises(ValueError) as got:
            leep(P, y)
        assert str(got.value) == str(err)
    else:
        assert leep(P, y) == pytest.approx(leep_plain(P, y), rel=1e-12)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.nan, "NaN"),
        (np.inf, "infinite"),
        (-np.inf, "negative|infinite"),
        (-1e-9, "negative"),
        (0.5, "sum to 1"),
    ],
)
def test_a_bad_entry_in_a_late_block_gives_the_validators_error(bad: float, match: str) -> None:
    rng = np.random.default_rng(6)
    y = np.arange(1500) % 4
    P = random_probs(rng, 1500, 800)
    P[1499, 3] = bad  # the last block, after valid ones
    with pytest.raises(ValueError, match=match) as got:
        leep(P, y)
    with pytest.raises(ValueError) as expected:
        check_source_probs(P, n_samples=1500)
    assert str(got.value) == str(expected.value)
