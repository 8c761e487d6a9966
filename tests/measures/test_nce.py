"""Reference tests of NCE (ALGORITHMS.md 2.2, 6.3, 6.5)."""

from __future__ import annotations

import math
import re
import warnings
from collections import Counter

import numpy as np
import pytest
import torch
from sklearn.metrics import mutual_info_score

import ckptrank
from ckptrank import DegenerateInputWarning, get_measure
from ckptrank.measures.leep import leep
from ckptrank.measures.nce import nce

# The closed-form fixtures below are deliberately tiny (a few samples per source class); the
# under-sampling warning they trigger is tested on its own in "Under-sampled source classes".
pytestmark = pytest.mark.filterwarnings("ignore:nce.*distinct source classes:ckptrank.DegenerateInputWarning")

# ----------------------------------------------------------------------------------------------
# Independent references
# ----------------------------------------------------------------------------------------------


def nce_by_counting(z: list, y: list) -> float:
    """-H(Y|Z) from explicit counts of pairs and of source labels."""
    n = len(y)
    pairs = Counter(zip(z, y, strict=True))
    per_source = Counter(z)
    return sum(count / n * math.log(count / per_source[s]) for (s, _), count in pairs.items())


def label_entropy(labels: np.ndarray) -> float:
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


# ----------------------------------------------------------------------------------------------
# Closed-form fixtures
# ----------------------------------------------------------------------------------------------


def test_fixture_independent_is_minus_log_two() -> None:
    assert nce(np.array([0, 1, 0, 1]), [0, 0, 1, 1]) == pytest.approx(-math.log(2), abs=1e-12)


def test_fixture_half_log_two() -> None:
    value = nce(np.array([0, 0, 1, 1]), [0, 1, 1, 1])
    assert value == pytest.approx(-0.346573590280, abs=1e-12)
    assert value == pytest.approx(-0.5 * math.log(2), abs=1e-15)


def test_fixtures_from_probabilities() -> None:
    theta = np.array([[0.6, 0.4], [0.1, 0.9], [0.55, 0.45], [0.2, 0.8]])  # argmax z = [0, 1, 0, 1]
    assert nce(theta, [0, 0, 1, 1]) == pytest.approx(-math.log(2), abs=1e-12)


def test_ties_go_to_the_lowest_index() -> None:
    theta = np.array([[0.5, 0.5], [0.5, 0.5], [0.2, 0.8], [0.2, 0.8]])  # z = [0, 0, 1, 1]
    assert nce(theta, [0, 1, 1, 1]) == pytest.approx(-0.5 * math.log(2), abs=1e-15)
    # Were the tie sent to column 1, z would be constant and NCE = -H(Y) = -0.5623...
    assert nce(theta, [0, 1, 1, 1]) != pytest.approx(-label_entropy(np.array([0, 1, 1, 1])))


# ----------------------------------------------------------------------------------------------
# Against independent references
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_matches_counting_and_sklearn_mutual_information(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 120
    z = rng.integers(0, 12, size=n)
    y = (z // 3 + (rng.random(n) < 0.3) * rng.integers(0, 4, size=n)) % 4
    value = nce(z, y)
    assert value == pytest.approx(nce_by_counting(z.tolist(), y.tolist()), rel=1e-12)
    # -H(Y|Z) = I(Y; Z) - H(Y), with scikit-learn's mutual information in nats.
    assert value == pytest.approx(mutual_info_score(y, z) - label_entropy(y), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_probabilities_equal_their_argmax_labels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((90, 7))
    theta = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = rng.integers(0, 3, size=90)
    assert nce(theta, y) == pytest.approx(
        nce_by_counting(theta.argmax(axis=1).tolist(), y.tolist()), rel=1e-12
    )


def test_no_smoothing_bias_with_many_cells() -> None:
    """PARC adds 1e-5 to every cell; with 100 x 1000 cells that would shift the value visibly."""
    rng = np.random.default_rng(0)
    z = rng.integers(0, 1000, size=3000)
    y = rng.integers(0, 100, size=3000)
    assert nce(z, y) == pytest.approx(nce_by_counting(z.tolist(), y.tolist()), rel=1e-12)


def test_hard_label_values_do_not_matter() -> None:
    z = np.array([0, 0, 1, 1, 2, 2, 2])
    y = np.array([0, 1, 1, 1, 0, 0, 1])
    expected = nce_by_counting(z.tolist(), y.tolist())
    assert nce(np.array([-5, -5, 40, 40, 7, 7, 7]), y) == pytest.approx(expected, rel=1e-12)
    assert nce(z[:, None], y) == pytest.approx(expected, rel=1e-12)  # column vector
    assert nce(torch.tensor(z), ["a", "b", "b", "b", "a", "a", "b"]) == pytest.approx(expected, rel=1e-12)


def test_score_api_dispatch() -> None:
    value = ckptrank.score("nce", labels=[0, 1, 1, 1], source_probs=np.array([0, 0, 1, 1]))
    assert value == pytest.approx(-0.5 * math.log(2), abs=1e-15)
    spec = get_measure("nce")
    assert spec.requires == ("source_probs",)
    assert spec.higher_is_better


# ----------------------------------------------------------------------------------------------
# Bounds and identities
# ----------------------------------------------------------------------------------------------


def test_bounds_on_many_random_instances() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(4, 40))
        y = rng.integers(0, 4, size=n)
        y[:2] = [0, 1]
        z = rng.integers(0, int(rng.integers(1, 8)), size=n)
        assert -label_entropy(y) - 1e-12 <= nce(z, y) <= 1e-15


def test_zero_iff_source_determines_label() -> None:
    z = np.array([0, 1, 2, 3, 4, 0, 1, 2])
    assert nce(z, z % 2) == pytest.approx(0.0, abs=1e-15)
    assert nce(z, np.array([0, 1, 0, 1, 0, 1, 1, 0])) < -0.1


def test_constant_source_label_gives_minus_entropy() -> None:
    y = np.array([0, 0, 0, 1, 2, 2])
    assert nce(np.zeros(6, dtype=int), y) == pytest.approx(-label_entropy(y), abs=1e-15)
    assert nce(np.tile([0.2, 0.7, 0.1], (6, 1)), y) == pytest.approx(-label_entropy(y), abs=1e-15)


def test_equals_leep_of_one_hot() -> None:
    rng = np.random.default_rng(2)
    z = rng.integers(0, 5, size=60)
    y = rng.integers(0, 3, size=60)
    assert nce(z, y) == pytest.approx(leep(np.eye(5)[z], y), rel=1e-12)


def test_relabelling_and_merging_identical_source_classes() -> None:
    rng = np.random.default_rng(5)
    z = rng.integers(0, 4, size=100)
    y = rng.integers(0, 3, size=100)
    value = nce(z, y)
    assert nce(rng.permutation(4)[z], y) == pytest.approx(value, rel=1e-12)
    assert nce(z, rng.permutation(3)[y]) == pytest.approx(value, rel=1e-12)


def test_merging_source_classes_with_identical_conditionals() -> None:
    # Source classes 0 and 1 both hold labels in proportions 2:1; merging them keeps -H(Y|Z).
    z = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2])
    y = np.array([0, 0, 1, 0, 1, 0, 0, 1, 0, 1, 1])
    merged = np.where(z == 1, 0, z)
    assert nce(z, y) == pytest.approx(nce(merged, y), rel=1e-12)
    assert nce(z, y) == pytest.approx(nce_by_counting(z.tolist(), y.tolist()), rel=1e-12)


# ----------------------------------------------------------------------------------------------
# Under-sampled source classes
# ----------------------------------------------------------------------------------------------


def test_many_source_classes_few_samples_warn_with_the_numbers() -> None:
    """50 samples under a 1000-class head: about one sample per argmax class, so NCE is near 0."""
    rng = np.random.default_rng(0)
    theta = rng.dirichlet(np.ones(1000), size=50)  # random probabilities: no information about y
    y = np.arange(50) % 2
    occupied = np.unique(theta.argmax(axis=1)).size
    message = (
        f"nce: 50 samples fall into {occupied} distinct source classes of 1000 "
        f"({50 / occupied:.3g} per class, fewer than 5): H(Y|Z) is underestimated"
    )
    with pytest.warns(DegenerateInputWarning, match=re.escape(message) + ".*score more samples"):
        value = nce(theta, y)
    # The bias the warning is about: -H(Y) = -log 2 = -0.693 for this uninformative head.
    assert value > -0.1
    assert value == pytest.approx(nce_by_counting(theta.argmax(axis=1).tolist(), y.tolist()), rel=1e-12)
    assert leep(theta, y) < -0.6


def test_warning_threshold_is_five_samples_per_occupied_source_class() -> None:
    z = np.repeat(np.arange(4), 5)  # 20 samples in 4 source classes: exactly 5 per class
    y = np.tile([0, 1, 1, 0, 1], 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nce(z, y)
        nce(0.9 * np.eye(10)[z] + 0.01, y)  # 10 source columns, only 4 of them occupied
    z_more, y_more = np.append(z, 4), np.append(y, 0)  # 21 samples in 5 classes: 4.2 per class
    with pytest.warns(
        DegenerateInputWarning,
        match=re.escape("nce: 21 samples fall into 5 distinct source classes (4.2 per"),
    ):
        value = nce(z_more, y_more)
    assert value == pytest.approx(nce_by_counting(z_more.tolist(), y_more.tolist()), rel=1e-12)


# ----------------------------------------------------------------------------------------------
# Input handling
# ----------------------------------------------------------------------------------------------


def test_bfloat16_softmax_is_accepted() -> None:
    """bfloat16 rounding moves row sums by up to 2**-8, beyond the float tolerance of 1e-3."""
    logits = torch.randn(400, 10, generator=torch.Generator().manual_seed(0))
    theta = torch.softmax(logits, 1).to(torch.bfloat16)
    assert (theta.double().sum(1) - 1.0).abs().max() > 1e-3
    y = np.arange(400) % 3
    z = theta.float().numpy().argmax(axis=1)  # the bf16 values' argmax (lowest index on ties)
    assert nce(theta, y) == pytest.approx(nce_by_counting(z.tolist(), y.tolist()), rel=1e-12)


def test_inputs_are_not_mutated() -> None:
    theta = np.array([[0.6, 0.4], [0.1, 0.9], [0.55, 0.45], [0.2, 0.8]])
    y = np.array([0, 0, 1, 1])
    theta_copy, y_copy = theta.copy(), y.copy()
    nce(theta, y)
    np.testing.assert_array_equal(theta, theta_copy)
    np.testing.assert_array_equal(y, y_copy)


@pytest.mark.parametrize(
    ("source", "labels", "match"),
    [
        (np.array([0.1, 0.2, 0.3, 0.4]), [0, 0, 1, 1], "1-D integer array of hard source labels"),
        (np.array([0, 1, 1]), [0, 0, 1, 1], "3 entries but labels has 4"),
        (np.array([[0.6, 0.6], [0.5, 0.5], [0.5, 0.5]]), [0, 1, 1], "do not sum to 1"),
        (np.array([[-1.0, 2.0], [0.5, 0.5], [0.5, 0.5]]), [0, 1, 1], "negative"),
        (np.full((3, 2), 0.5), [0, 1, 1, 0], "3 rows but labels has 4"),
        (np.array([0, 1, 0, 1]), [3, 3, 3, 3], "at least 2 classes"),
    ],
)
def test_bad_inputs_raise(source: np.ndarray, labels: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        nce(source, labels)


def test_fast_path_accepts_and_rejects_exactly_what_the_full_check_does() -> None:
    """Row sums near the 1e-3 tolerance: C- and Fortran-ordered float32 input give the same answer."""
    rng = np.random.default_rng(0)
    theta = rng.dirichlet(np.ones(50), size=40).astype(np.float32)
    y = np.arange(40) % 4
    for order in ("C", "F"):
        inside = np.array(theta * np.float32(1.0009), order=order)
        assert nce(inside, y) == nce(theta, y)
        outside = np.array(theta * np.float32(1.0011), order=order)
        with pytest.raises(ValueError, match="sum"):
            nce(outside, y)
