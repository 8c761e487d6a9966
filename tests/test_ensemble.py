"""Tests of SFDA-based ensemble selection."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ckptrank.ensemble import EnsembleSelection, select_ensemble
from ckptrank.measures._linalg import pca_project
from ckptrank.measures.sfda import sfda

N, C = 600, 6


def _checkpoints(seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """'A' separates classes 0-2, 'B' is 'A' rotated (redundant), 'C' separates classes 3-5 (weaker)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(C), N // C)
    onehot = (y[:, None] == np.arange(C)).astype(float)
    A = rng.standard_normal((N, C)) + 2.5 * onehot * (y < 3)[:, None]
    Q = np.linalg.qr(rng.standard_normal((C, C)))[0]
    complementary = rng.standard_normal((N, C)) + 1.8 * onehot * (y >= 3)[:, None]
    return {"A": A, "B": A @ Q, "C": complementary}, y


def _zscore(X: np.ndarray) -> np.ndarray:
    return (X - X.mean(axis=0)) / X.std(axis=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_greedy_picks_the_complementary_checkpoint_second(seed):
    feats, y = _checkpoints(seed)
    result = select_ensemble(feats, y, k=2)
    # individually the complementary checkpoint ranks last, so the choice is not by its own score
    assert min(result.individual_scores, key=result.individual_scores.get) == "C"
    assert result.selected[0] in {"A", "B"}
    assert result.selected[1] == "C"
    assert result.ensemble_scores[1] > result.ensemble_scores[0]
    assert result.method == "greedy_concat"


def test_scores_are_sfda_of_the_preprocessed_features():
    feats, y = _checkpoints(2)
    result = select_ensemble(feats, y, k=3)
    for name, X in feats.items():
        assert result.individual_scores[name] == pytest.approx(sfda(X, y, standardize=True), rel=1e-12)
    assert result.ensemble_scores[0] == result.individual_scores[result.selected[0]]
    blocks = [_zscore(feats[name]) for name in result.selected]
    for j in (1, 2):
        expected = sfda(np.hstack(blocks[: j + 1]), y)
        assert result.ensemble_scores[j] == pytest.approx(expected, rel=1e-9)
    assert sorted(result.selected) == ["A", "B", "C"]


def test_k1_returns_argmax_of_individual_sfda():
    feats, y = _checkpoints(3)
    feats = {"low": feats["C"], "high": feats["A"], "mid": 0.5 * feats["C"] + feats["A"][:, ::-1]}
    result = select_ensemble(feats, y, k=1, standardize=False)
    individual = {name: sfda(X, y) for name, X in feats.items()}
    assert result.selected == [max(individual, key=individual.get)]
    assert result.individual_scores == pytest.approx(individual, rel=1e-12)
    assert result.ensemble_scores == [individual[result.selected[0]]]


def test_sfda_options_and_pca_are_applied():
    feats, y = _checkpoints(4)
    result = select_ensemble(feats, y, k=1, pca_dims=3, use_log=True, shrinkage=0.1)
    for name, X in feats.items():
        expected = sfda(pca_project(X, 3, solver="full"), y, standardize=True, use_log=True, shrinkage=0.1)
        assert result.individual_scores[name] == pytest.approx(expected, rel=1e-10)


def test_deterministic_frozen_and_inputs_unchanged():
    feats, y = _checkpoints(5)
    copies = {name: X.copy() for name, X in feats.items()}
    first = select_ensemble(feats, y, k=3)
    assert first == select_ensemble(feats, y, k=3)
    for name in feats:
        np.testing.assert_array_equal(feats[name], copies[name])
    assert isinstance(first, EnsembleSelection) and isinstance(first.selected, list)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.method = "other"  # type: ignore[misc]


def test_ties_follow_mapping_order():
    feats, y = _checkpoints(6)
    same = {"first": feats["A"], "second": feats["A"].copy()}
    assert select_ensemble(same, y, k=1).selected == ["first"]


def test_confmix_coupled():
    feats, y = _checkpoints(7)
    feats = {"A": feats["A"], "A_copy": feats["A"].copy(), "C": feats["C"]}
    result = select_ensemble(feats, y, k=3, method="confmix_coupled")
    assert result.method == "confmix_coupled"
    assert result.selected[0] == "A"  # tie with the copy: mapping order
    # A candidate identical to the ensemble gets the ensemble's own ConfMix weights: its own SFDA.
    # The literal reading therefore prefers the redundant copy (documented caveat).
    assert result.selected[1] == "A_copy"
    assert result.ensemble_scores[1] == pytest.approx(result.individual_scores["A_copy"], rel=1e-10)
    assert result == select_ensemble(feats, y, k=3, method="confmix_coupled")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0}, r"k must lie in \[1, 3\]"),
        ({"k": 4}, r"k must lie in \[1, 3\]"),
        ({"k": 1.5}, "k must be an int"),
        ({"k": 1, "method": "stacking"}, "unknown method"),
        ({"k": 1, "alpha": 3}, "unknown SFDA option"),
        ({"k": 1, "a": -1.0}, "a must be"),
        ({"k": 2, "method": "confmix_coupled", "confmix": False}, "confmix"),
    ],
)
def test_argument_errors(kwargs, match):
    feats, y = _checkpoints(8)
    with pytest.raises(ValueError, match=match):
        select_ensemble(feats, y, **kwargs)


def test_input_errors():
    feats, y = _checkpoints(9)
    with pytest.raises(ValueError, match="empty"):
        select_ensemble({}, y, k=1)
    with pytest.raises(ValueError, match="mapping"):
        select_ensemble([feats["A"]], y, k=1)
    bad = dict(feats, B=feats["B"][:-1])
    with pytest.raises(ValueError, match=r"checkpoint 'B' has features for 599 samples"):
        select_ensemble(bad, y, k=2)
    nan = dict(feats, C=np.full_like(feats["C"], np.nan))
    with pytest.raises(ValueError, match="checkpoint 'C'"):
        select_ensemble(nan, y, k=2)
    with pytest.raises(ValueError, match="2 classes"):
        select_ensemble(feats, np.zeros(N), k=2)
