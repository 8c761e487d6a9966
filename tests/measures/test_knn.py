"""Tests of the leave-one-out k-NN accuracy measure."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import ortho_group
from sklearn.neighbors import KNeighborsClassifier

import ckptrank
from ckptrank.measures import DegenerateInputWarning, get_measure
from ckptrank.measures.knn import _stratified_subsample, _vote, knn

RNG = np.random.default_rng(20240601)
X_SMALL = RNG.standard_normal((90, 4))
Y_SMALL = RNG.integers(0, 3, 90)


def _vote_slow(neighbour_labels: np.ndarray) -> int:
    """Majority label; ties go to the label of the nearest neighbour among the tied labels."""
    values, counts = np.unique(neighbour_labels, return_counts=True)
    tied = set(values[counts == counts.max()].tolist())
    return next(int(label) for label in neighbour_labels if label in tied)


def _loo_sklearn(X: np.ndarray, y: np.ndarray, k: int) -> float:
    """Leave-one-out with scikit-learn: refit without sample i, ask for its k neighbours."""
    correct = 0
    for i in range(X.shape[0]):
        others = np.arange(X.shape[0]) != i
        model = KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(X[others], y[others])
        neighbours = model.kneighbors(X[i : i + 1], return_distance=False)[0]
        correct += _vote_slow(y[others][neighbours]) == y[i]
    return correct / X.shape[0]


def _loo_cosine_slow(X: np.ndarray, y: np.ndarray, k: int) -> float:
    """Leave-one-out with explicit cosine distances, ties in distance ordered by index."""
    n = X.shape[0]
    correct = 0
    for i in range(n):
        dist = []
        for j in range(n):
            if j != i:
                cos = X[i] @ X[j] / (np.linalg.norm(X[i]) * np.linalg.norm(X[j]))
                dist.append((1.0 - cos, j))
        neighbours = [j for _, j in sorted(dist)[:k]]
        correct += _vote_slow(y[neighbours]) == y[i]
    return correct / n


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6])
def test_matches_sklearn_leave_one_out(k: int) -> None:
    # even k and three classes produce many vote ties, resolved by the nearest tied neighbour
    assert knn(X_SMALL, Y_SMALL, k=k) == pytest.approx(_loo_sklearn(X_SMALL, Y_SMALL, k), abs=1e-15)


@pytest.mark.parametrize("k", [1, 3, 4])
def test_cosine_matches_slow_reference(k: int) -> None:
    X = X_SMALL[:60] + 0.3
    assert knn(X, Y_SMALL[:60], k=k, metric="cosine") == pytest.approx(
        _loo_cosine_slow(X, Y_SMALL[:60], k), abs=1e-15
    )


def test_vote_tie_rule() -> None:
    labels = torch.tensor([[1, 2, 2, 1], [2, 1, 1, 2], [3, 1, 2, 0], [0, 4, 4, 0], [5, 5, 1, 1]])
    assert _vote(labels).tolist() == [1, 2, 3, 0, 5]
    assert _vote(torch.tensor([[2, 1, 1]])).tolist() == [1]


def test_hand_computed_example() -> None:
    X = np.array([[0.0], [0.1], [1.0], [1.1], [5.0]])
    assert knn(X, [0, 0, 1, 1, 0]) == pytest.approx(0.8)
    # k=2 on sample 4 (x=5): neighbours 1.1 (class 1) then 1.0 (class 1) -> wrong; others keep
    # one correct and one wrong neighbour at most, resolved by the nearest -> correct
    assert knn(X, [0, 0, 1, 1, 0], k=2) == pytest.approx(0.8)


def test_duplicated_dataset_is_perfect() -> None:
    """Self-exclusion by index: each sample finds its exact twin (dropping the first neighbour would not)."""
    X = RNG.standard_normal((40, 6))
    y = RNG.integers(0, 4, 40)
    assert knn(np.vstack([X, X]), np.concatenate([y, y])) == 1.0
    assert knn(np.vstack([X, X]), np.concatenate([y, y]), metric="cosine") == 1.0


def test_all_identical_points_use_index_order() -> None:
    # every distance is 0: the nearest other sample is the lowest other index
    X = np.ones((4, 2))
    assert knn(X, [0, 0, 1, 1]) == pytest.approx(0.5)  # 0->1 ok, 1->0 ok, 2->0 wrong, 3->0 wrong


def test_random_labels_give_sum_of_squared_priors() -> None:
    rng = np.random.default_rng(3)
    priors = np.array([0.6, 0.3, 0.1])
    y = rng.choice(3, size=3000, p=priors)
    X = rng.standard_normal((3000, 8))
    assert knn(X, y) == pytest.approx(float((priors**2).sum()), abs=0.03)


def test_separated_clusters_are_perfect_and_beat_random() -> None:
    y = np.repeat(np.arange(4), 25)
    X = RNG.standard_normal((100, 5)) * 0.1
    X[np.arange(100), y] += 5.0
    assert knn(X, y) == 1.0
    assert knn(X, y, k=5) == 1.0
    assert knn(RNG.standard_normal((100, 5)), y) < 0.6


def test_euclidean_invariances() -> None:
    X = X_SMALL
    Q = ortho_group.rvs(4, random_state=0)
    base = knn(X, Y_SMALL, k=3)
    assert knn(X @ Q, Y_SMALL, k=3) == base
    assert knn(X + 1e3, Y_SMALL, k=3) == base
    assert knn(X * 1e-3, Y_SMALL, k=3) == base
    # cosine: rotation and scale, but not translation
    cos = knn(X, Y_SMALL, metric="cosine")
    assert knn(X @ Q * 7.0, Y_SMALL, metric="cosine") == cos


def test_label_permutation_and_arbitrary_labels() -> None:
    names = np.array(["cat", "dog", "emu"])
    renamed = names[(Y_SMALL + 1) % 3]
    assert knn(X_SMALL, renamed, k=4) == knn(X_SMALL, Y_SMALL, k=4)
    assert knn(X_SMALL, Y_SMALL * 10 + 7, k=2) == knn(X_SMALL, Y_SMALL, k=2)


def test_block_size_does_not_change_the_result() -> None:
    ref = knn(X_SMALL, Y_SMALL, k=3, block_size=1000)
    for block_size in (1, 7, 64, 89):
        assert knn(X_SMALL, Y_SMALL, k=3, block_size=block_size) == ref


def test_singleton_class_is_always_wrong() -> None:
    X = np.array([[0.0], [0.2], [0.4], [10.0]])
    assert knn(X, [0, 0, 0, 1]) == pytest.approx(0.75)


def test_stratified_subsample() -> None:
    y = np.repeat([0, 1, 2], [500, 300, 200])
    keep = _stratified_subsample(y, 100, np.random.default_rng(0))
    assert keep.shape == (100,)
    assert np.all(np.diff(keep) > 0)
    assert np.bincount(y[keep]).tolist() == [50, 30, 20]
    # uneven quotas still sum to the requested size
    keep = _stratified_subsample(y, 7, np.random.default_rng(1))
    assert keep.shape == (7,)
    # the subset does not depend on the label values, only on the partition and the seed
    renamed = np.array([2, 0, 1])[y]
    np.testing.assert_array_equal(
        _stratified_subsample(renamed, 77, np.random.default_rng(5)),
        _stratified_subsample(y, 77, np.random.default_rng(5)),
    )


def test_max_samples_scores_the_subset() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 500)
    X = rng.standard_normal((500, 3))
    X[np.arange(500), y] += 1.0
    keep = _stratified_subsample(y, 200, np.random.default_rng(9))
    sub = knn(X, y, max_samples=200, random_state=9)
    assert sub == knn(X[keep], y[keep], max_samples=None)
    assert sub == knn(X, y, max_samples=200, random_state=9)  # deterministic
    assert knn(X, y, max_samples=500) == knn(X, y, max_samples=None)  # no subsampling needed


def test_cosine_zero_vector_warns() -> None:
    X = np.vstack([np.zeros((1, 3)), X_SMALL[:20, :3]])
    y = np.concatenate([[0], Y_SMALL[:20]])
    with pytest.warns(DegenerateInputWarning, match="zero"):
        score = knn(X, y, metric="cosine")
    assert 0.0 <= score <= 1.0


def test_inputs_types_and_dtypes() -> None:
    X, y = X_SMALL.copy(), Y_SMALL.copy()
    ref = knn(X, y, k=3)
    np.testing.assert_array_equal(X, X_SMALL)
    np.testing.assert_array_equal(y, Y_SMALL)
    assert isinstance(ref, float)
    assert knn(torch.from_numpy(X), torch.from_numpy(y), k=3) == ref
    assert knn(X.astype(np.float32), y, k=3) == knn(X.astype(np.float32).astype(np.float64), y, k=3)
    assert knn(X, y, k=3, device="cpu") == ref


def test_registry_and_score_dispatch() -> None:
    spec = get_measure("knn")
    assert spec.requires == ("features",)
    assert spec.higher_is_better
    assert {"label_permutation", "translation", "rotation", "isotropic_scale"} <= spec.invariances
    assert "sample_order" not in spec.invariances
    assert ckptrank.score("knn", X_SMALL, Y_SMALL, k=3) == knn(X_SMALL, Y_SMALL, k=3)


def test_errors() -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        knn(X_SMALL, Y_SMALL, metric="manhattan")
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        knn(X_SMALL, Y_SMALL, k=0)
    with pytest.raises(ValueError, match="k must be an integer"):
        knn(X_SMALL, Y_SMALL, k=2.5)
    with pytest.raises(ValueError, match=r"k=90 neighbours need at least k \+ 1 = 91 samples"):
        knn(X_SMALL, Y_SMALL, k=90)
    with pytest.raises(ValueError, match="k=20 neighbours"):
        knn(X_SMALL, Y_SMALL, k=20, max_samples=10)
    with pytest.raises(ValueError, match="block_size must be an integer >= 1"):
        knn(X_SMALL, Y_SMALL, block_size=0)
    with pytest.raises(ValueError, match="max_samples must be an integer >= 2"):
        knn(X_SMALL, Y_SMALL, max_samples=1)
    with pytest.raises(ValueError, match="NaN"):
        knn(np.full((4, 2), np.nan), [0, 0, 1, 1])
    with pytest.raises(ValueError, match="2 classes"):
        knn(X_SMALL, np.zeros(90))


def _loo_exact_slow(X: np.ndarray, y: np.ndarray, k: int) -> float:
    """Leave-one-out on integer features: exact squared distances, ties ordered by index."""
    n = X.shape[0]
    correct = 0
    for i in range(n):
        dist = sorted((int(((X[i] - X[j]) ** 2).sum()), j) for j in range(n) if j != i)
        neighbours = [j for _, j in dist[:k]]
        correct += _vote_slow(y[neighbours]) == y[i]
    return correct / n


@pytest.mark.parametrize(("k", "block_size"), [(1, 5), (2, 3), (3, 16), (4, 2048), (5, 7)])
def test_exact_distance_ties_follow_index_order(k: int, block_size: int) -> None:
    rng = np.random.default_rng(k)
    X = rng.integers(0, 3, size=(70, 2))  # 9 grid points: many duplicates and equal distances
    y = rng.integers(0, 3, 70)
    assert knn(X, y, k=k, block_size=block_size) == pytest.approx(_loo_exact_slow(X, y, k), abs=1e-15)
