"""The gradient_coupling weighting: data-dependent arc weights and beta_eff from per-layer-pair couplings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ckptrank.capacitance.line_graph import beta_eff, beta_eff_from_couplings, coupling_adjacency
from ckptrank.capacitance.probe import build_probe, gradient_couplings, graph_layers, train_probe
from ckptrank.testing.synthetic import blobs


def _random_couplings(shapes: list[int], seed: int) -> list[np.ndarray]:
    """Couplings of a network with neuron layers ``shapes``: pair l has shape (n_l+1, n_l, n_l+2)."""
    rng = np.random.default_rng(seed)
    return [rng.uniform(0, 2, (shapes[i + 1], shapes[i], shapes[i + 2])) for i in range(len(shapes) - 2)]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("orientation", ["forward", "symmetric"])
def test_closed_form_equals_the_explicit_line_graph(seed: int, orientation: str) -> None:
    shapes = [3, 4, 2, 5, 3][: 3 + seed % 3]
    G = _random_couplings(shapes, seed)
    exact = beta_eff_from_couplings(G, orientation=orientation, method="exact")
    assert beta_eff_from_couplings(G, orientation=orientation) == pytest.approx(exact, rel=1e-10)


def test_product_couplings_reproduce_beta_eff() -> None:
    rng = np.random.default_rng(0)
    W = [rng.normal(size=s) for s in [(4, 3), (5, 4), (2, 5), (3, 2)]]
    G = [np.einsum("ba,cb->bac", np.abs(W[i]), np.abs(W[i + 1])) for i in range(3)]
    assert beta_eff_from_couplings(G) == pytest.approx(beta_eff(W), rel=1e-12)
    # The explicit adjacency is the one of the product weighting, arc for arc.
    from ckptrank.capacitance.line_graph import line_graph_adjacency

    assert abs(coupling_adjacency(G) - line_graph_adjacency(W)).max() < 1e-12


def test_bad_couplings() -> None:
    with pytest.raises(ValueError, match="empty"):
        beta_eff_from_couplings([])
    with pytest.raises(ValueError, match="3-D"):
        beta_eff_from_couplings([np.ones((2, 2))])
    with pytest.raises(ValueError, match="negative"):
        beta_eff_from_couplings([-np.ones((2, 2, 2))])
    with pytest.raises(ValueError, match="does not chain"):
        beta_eff_from_couplings([np.ones((2, 3, 4)), np.ones((5, 2, 1))])


def _numpy_reference(probe: torch.nn.Sequential, X: np.ndarray, y: np.ndarray) -> tuple[list, list]:
    """Forward and backward pass of the probe written out in numpy (mean cross-entropy)."""
    Ws = [m.weight.detach().double().numpy() for m in probe if isinstance(m, torch.nn.Linear)]
    bs = [m.bias.detach().double().numpy() for m in probe if isinstance(m, torch.nn.Linear)]
    hs, zs = [X], []
    for i, (W, b) in enumerate(zip(Ws, bs, strict=True)):
        z = hs[-1] @ W.T + b
        zs.append(z)
        if i < len(Ws) - 1:
            hs.append(np.maximum(z, 0))
    logits = zs[-1]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    delta = (p - np.eye(logits.shape[1])[y]) / len(y)
    deltas = [delta]
    for i in range(len(Ws) - 1, 0, -1):
        deltas.insert(0, (deltas[0] @ Ws[i]) * (zs[i - 1] > 0))
    return [Ws, hs, zs], deltas


def test_gradient_couplings_match_a_hand_written_backward_pass() -> None:
    X, y = blobs(40, 3, 2, 2.0)
    X = np.asarray(X, dtype=np.float64)
    probe = build_probe(3, (4, 3, 2), 2, init_seed=1)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(np.asarray(y))

    def loss_of(idx: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(probe(Xt[idx]), yt[idx])

    batch = torch.arange(40)
    layers = graph_layers(4, "probe")
    assert layers == [0, 1, 2]
    got = gradient_couplings(probe, loss_of, batch, layers)
    (Ws, hs, zs), deltas = _numpy_reference(probe, X, np.asarray(y))
    for pair, (first, second) in enumerate([(0, 1), (1, 2)]):
        signed = np.einsum("na,nb,nc->bac", hs[first], (zs[first] > 0).astype(float), deltas[second])
        np.testing.assert_allclose(got[pair], np.abs(signed), rtol=1e-10, atol=1e-15)
        # The defining property: sum_c coupling[b, a, c] * w_bc is the loss gradient of w_ab.
        probe.zero_grad()
        loss_of(batch).backward()
        weight_grad = [m for m in probe if isinstance(m, torch.nn.Linear)][first].weight.grad.numpy()
        np.testing.assert_allclose(np.einsum("bac,cb->ba", signed, Ws[second]), weight_grad, rtol=1e-10)
    # One entry by the slow definition.
    b, a, c = 1, 2, 0
    slow = abs(sum(hs[0][n, a] * (zs[0][n, b] > 0) * deltas[1][n, c] for n in range(40)))
    assert got[0][b, a, c] == pytest.approx(slow, rel=1e-10)


def test_probe_with_gradient_coupling_records_finite_capacitances() -> None:
    X, y = blobs(300, 8, 3, 3.0)
    run = train_probe(X, y, widths=(16, 8, 4), epochs=2, max_epochs=10, weighting="gradient_coupling")
    assert run.beta.shape == (2,) and np.all(np.isfinite(run.beta)) and np.all(run.beta > 0)
    assert run.options["weighting"] == "gradient_coupling"
    with pytest.raises(ValueError, match="unknown weighting"):
        train_probe(X, y, widths=(16, 8, 4), epochs=1, weighting="gradient")


def test_frozen_probe_trains_only_the_head_and_needs_a_data_dependent_weighting() -> None:
    X, y = blobs(300, 8, 3, 3.0)
    options = dict(widths=(16, 8, 4), epochs=2, max_epochs=10)
    run = train_probe(X, y, freeze_probe=True, weighting="gradient_coupling", **options)
    start = build_probe(64, (16, 8, 4), 3, init_seed=0)
    initial = [m.weight.detach().numpy() for m in start if isinstance(m, torch.nn.Linear)]
    for epoch in run.weights:
        for layer, (W, W0) in enumerate(zip(epoch[:-1], initial[:-1], strict=True)):
            np.testing.assert_array_equal(W, W0, err_msg=f"probe layer {layer} moved")
        assert not np.array_equal(epoch[-1], initial[-1])  # the head trains
    assert np.all(np.isfinite(run.beta)) and run.beta[0] != run.beta[1]
    with pytest.raises(ValueError, match="same for every candidate"):
        train_probe(X, y, freeze_probe=True, **options)


def test_frozen_probe_with_a_graph_that_includes_the_head_is_accepted() -> None:
    X, y = blobs(200, 8, 3, 3.0)
    run = train_probe(
        X, y, widths=(16, 8, 4), epochs=2, max_epochs=10, freeze_probe=True, graph="fixed_shape"
    )
    assert np.all(np.isfinite(run.beta)) and run.beta[0] != run.beta[1]  # the head moves


def test_bad_orientation_is_refused_before_training() -> None:
    X, y = blobs(200, 8, 3, 3.0)
    with pytest.raises(ValueError, match="unknown orientation 'backward'"):
        train_probe(X, y, widths=(16, 8, 4), epochs=1, orientation="backward", time_budget=1e-9)
