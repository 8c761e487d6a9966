"""beta_eff: closed-form fixtures (ALGORITHMS.md 2.13.4), a brute-force line graph, and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ckptrank.capacitance.line_graph import beta_eff, line_graph_adjacency
from ckptrank.measures._validation import DegenerateInputWarning


def _brute_force_beta(weights: list[np.ndarray], orientation: str = "forward") -> float:
    """Enumerate every edge and arc by hand, build a dense P and apply the definition."""
    edges = []  # (layer, b, a, |w|)
    for ell, W in enumerate(weights):
        for b in range(W.shape[0]):
            for a in range(W.shape[1]):
                edges.append((ell, b, a, abs(W[b, a])))
    index = {(ell, b, a): i for i, (ell, b, a, _) in enumerate(edges)}
    P = np.zeros((len(edges), len(edges)))
    for ell, b, a, w in edges:  # sender e = (ell, b, a)
        if ell + 1 == len(weights):
            continue
        nxt = weights[ell + 1]
        for c in range(nxt.shape[0]):  # receiver e' = (ell+1, c, b)
            P[index[(ell + 1, c, b)], index[(ell, b, a)]] = w * abs(nxt[c, b])
    if orientation == "symmetric":
        P = P + P.T
    ones = np.ones(len(edges))
    return float(ones @ P @ (P @ ones) / (ones @ P @ ones))


def _random_mlp(widths: list[int], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(widths[i + 1], widths[i])) for i in range(len(widths) - 1)]


def test_chain_fixtures() -> None:
    assert beta_eff([[[1.0]], [[2.0]], [[1.0]]]) == 1.0
    assert beta_eff([[[1.0]], [[1.0]], [[1.0]]]) == 0.5
    w1, w2, w3 = 0.7, -1.3, 2.1
    assert beta_eff([[[w1]], [[w2]], [[w3]]]) == pytest.approx(abs(w1 * w2 * w3) / (abs(w1) + abs(w3)))


def test_two_two_two_one_fixture() -> None:
    weights = [np.array([[1, 2], [0.5, 1]]), np.array([[1, -1], [2, 0]]), np.array([[1, 1]])]
    assert beta_eff(weights) == pytest.approx(33 / 29, abs=1e-15)
    assert beta_eff(weights, method="exact") == pytest.approx(33 / 29, abs=1e-15)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("orientation", ["forward", "symmetric"])
def test_closed_form_equals_exact_and_brute_force(seed: int, orientation: str) -> None:
    widths = list(np.random.default_rng(seed).integers(1, 6, size=5))
    weights = _random_mlp(widths, seed)
    fast = beta_eff(weights, orientation=orientation)
    exact = beta_eff(weights, orientation=orientation, method="exact")
    assert fast == pytest.approx(exact, rel=1e-10, abs=1e-12)
    assert fast == pytest.approx(_brute_force_beta(weights, orientation), rel=1e-10, abs=1e-12)


def test_fewer_than_three_layers_give_zero_in_forward_orientation() -> None:
    weights = _random_mlp([4, 3, 2], 0)
    assert beta_eff(weights) == 0.0
    assert beta_eff(weights, method="exact") == 0.0
    assert beta_eff(weights, orientation="symmetric") > 0


def test_homogeneity() -> None:
    weights = _random_mlp([5, 4, 3, 2], 1)
    assert beta_eff([2.0 * W for W in weights]) == pytest.approx(4.0 * beta_eff(weights), rel=1e-12)


def test_reversing_the_network_transposes_p_and_keeps_beta() -> None:
    # The line graph of the reversed network (layers in reverse order, each transposed) is P^T.
    weights = _random_mlp([5, 4, 3, 6, 2], 4)
    reversed_net = [W.T for W in reversed(weights)]
    P = line_graph_adjacency(weights).toarray()
    P_rev = line_graph_adjacency(reversed_net).toarray()
    assert P_rev.sum() == pytest.approx(P.sum())
    assert sorted(P_rev.sum(axis=1)) == pytest.approx(sorted(P.sum(axis=0)))
    assert beta_eff(reversed_net) == pytest.approx(beta_eff(weights), rel=1e-12)
    exact = beta_eff(weights, method="exact")
    assert beta_eff(reversed_net, method="exact") == pytest.approx(exact, rel=1e-12)


def test_hidden_neuron_permutation_invariance() -> None:
    weights = _random_mlp([5, 6, 4, 3], 2)
    perm = np.random.default_rng(0).permutation(6)
    permuted = [weights[0][perm], weights[1][:, perm], weights[2]]
    assert beta_eff(permuted) == pytest.approx(beta_eff(weights), rel=1e-12)


def test_unweighted_counts_topology() -> None:
    # Fully connected 2-2-2-2 net: 8 edges with s_in = 2, 8 with s_out = 2, 4 edges with both -> 16/16.
    ones = [np.ones((2, 2))] * 3
    assert beta_eff(ones, weighting="unweighted") == 1.0
    assert beta_eff([2 * W for W in ones], weighting="unweighted") == 1.0
    assert beta_eff([2 * W for W in ones]) == pytest.approx(4.0)
    # two disjoint chains, unweighted: 1 * 1 / (1 + 1) per chain
    sparse_net = [np.array([[1.0, 0.0], [0.0, 3.0]])] * 3
    assert beta_eff(sparse_net, weighting="unweighted") == pytest.approx(0.5)


def test_torch_tensors_are_accepted() -> None:
    weights = _random_mlp([4, 3, 3, 2], 3)
    assert beta_eff([torch.from_numpy(W) for W in weights]) == pytest.approx(beta_eff(weights), rel=1e-15)


def test_all_zero_weights_give_nan_with_a_warning() -> None:
    with pytest.warns(DegenerateInputWarning, match="undefined"):
        assert math.isnan(beta_eff([np.zeros((2, 2))] * 3))


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ([], "empty"),
        ([np.ones((2, 3)), np.ones((2, 3))], "has 3 inputs but matrix 0 has 2 outputs"),
        ([np.ones(3)], "must be 2-D"),
        ([np.array([[np.nan]])], "diverged"),
    ],
)
def test_bad_input(weights: list[np.ndarray], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        beta_eff(weights)


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="weighting"):
        beta_eff([np.ones((1, 1))] * 3, weighting="signed")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="orientation"):
        beta_eff([np.ones((1, 1))] * 3, orientation="backward")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="method"):
        beta_eff([np.ones((1, 1))] * 3, method="fast")  # type: ignore[arg-type]
