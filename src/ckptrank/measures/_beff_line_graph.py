"""Neural capacitance beta_eff of a layered network's line graph (Jiang et al., 2022).

A feed-forward network G_A with neuron layers ``N_0 .. N_L`` and weight matrices
``W^(l)`` of shape ``(|N_l|, |N_{l-1}|)`` is mapped to its directed line graph G_B: one
node per edge (weight) ``e = (l, b, a)`` (neuron ``a`` of layer ``l-1`` to neuron ``b`` of layer
``l``), and an arc ``e -> e'`` whenever ``e'`` leaves the neuron that ``e`` enters
(``e' = (l+1, c, b)``). With interaction weights ``P[e', e] = w(e) * w(e')`` (row = receiver),
in- and out-strengths ``s_in = P 1`` and ``s_out = P^T 1``, the effective capacitance is the
mean-field coupling of Gao, Barzel and Barabasi (Nature 2016)::

    beta_eff = 1^T P s_in / 1^T P 1 = sum_e s_out(e) s_in(e) / sum_e s_in(e).

Two computations are provided: the exact one builds the sparse line-graph adjacency
explicitly (small networks, tests), the fast one uses the closed form of the strengths for
product weightings, ``s_in(l, b, a) = w(l, b, a) * r^(l-1)_a`` and
``s_out(l, b, a) = w(l, b, a) * k^(l+1)_b`` with ``r`` the in-strength and ``k`` the
out-strength of a neuron, in ``O(number of weights)``.

Interactions that are not of product form (the ``gradient_coupling`` weighting, whose arc weight
depends on the data) are given as one coupling tensor per pair of consecutive layers,
``G[l][b, a, c]`` = weight of the arc from ``(l, b, a)`` to ``(l+1, c, b)``;
:func:`beta_eff_from_couplings` reads the strengths from their sums and
:func:`coupling_adjacency` builds the same graph explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from scipy import sparse

from ._validation import warn_degenerate

__all__ = [
    "beta_eff",
    "beta_eff_from_couplings",
    "coupling_adjacency",
    "edge_strengths",
    "line_graph_adjacency",
]

Weighting = Literal["abs_product", "unweighted"]
Orientation = Literal["forward", "symmetric"]


def _edge_weights(weight_matrices: Sequence[Any], weighting: str) -> list[np.ndarray]:
    if len(weight_matrices) == 0:
        raise ValueError("weight_matrices is empty; pass the probe's layer weight matrices, input side first")
    mats = []
    for i, W in enumerate(weight_matrices):
        if type(W).__module__.startswith("torch"):
            W = W.detach().cpu().double().numpy()
        A = np.array(W, dtype=np.float64, copy=True)
        if A.ndim != 2:
            raise ValueError(
                f"weight matrix {i} has shape {A.shape}; each must be 2-D (out_features, in_features)"
            )
        if not np.isfinite(A).all():
            raise ValueError(
                f"weight matrix {i} contains {int((~np.isfinite(A)).sum())} NaN/inf values; "
                "training diverged - lower the learning rate"
            )
        mats.append(A)
    for i in range(1, len(mats)):
        if mats[i].shape[1] != mats[i - 1].shape[0]:
            raise ValueError(
                f"weight matrix {i} has {mats[i].shape[1]} inputs but matrix {i - 1} has "
                f"{mats[i - 1].shape[0]} outputs; pass layers in order, input side first, "
                "each of shape (out_features, in_features)"
            )
    if weighting == "abs_product":
        return [np.abs(A) for A in mats]
    if weighting == "unweighted":
        return [(A != 0).astype(np.float64) for A in mats]
    raise ValueError(f"unknown weighting {weighting!r}; use 'abs_product' or 'unweighted'")


def edge_strengths(
    weight_matrices: Sequence[Any], *, weighting: Weighting = "abs_product"
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """In- and out-strengths of every line-graph node (network edge), in closed form.

    Parameters
    ----------
    weight_matrices : sequence of array-like, each of shape (n_out_l, n_in_l)
        Layer weights, input side first (``torch.nn.Linear.weight`` layout).
    weighting : {"abs_product", "unweighted"}
        Node weight ``w(e)`` of a network edge: ``|W|`` or 1 for every non-zero weight.

    Returns
    -------
    s_in, s_out : list of ndarray, each of shape (n_out_l, n_in_l)
        ``s_in[l][b, a]`` and ``s_out[l][b, a]`` of the line-graph node of edge ``a -> b`` in layer ``l``.
    """
    A = _edge_weights(weight_matrices, weighting)
    s_in, s_out = [], []
    for ell, Al in enumerate(A):
        if ell == 0:
            s_in.append(np.zeros_like(Al))
        else:
            r_prev = A[ell - 1].sum(axis=1)  # in-strength of the neurons feeding this layer
            s_in.append(Al * r_prev[None, :])
        if ell == len(A) - 1:
            s_out.append(np.zeros_like(Al))
        else:
            k_next = A[ell + 1].sum(axis=0)  # out-strength of the neurons this layer feeds
            s_out.append(Al * k_next[:, None])
    return s_in, s_out


def line_graph_adjacency(
    weight_matrices: Sequence[Any], *, weighting: Weighting = "abs_product"
) -> sparse.csr_matrix:
    """Explicit interaction matrix ``P`` of the line graph (rows = receiving edge).

    Nodes are numbered layer by layer, each layer's edges in row-major ``(b, a)`` order.
    Arcs number ``sum over hidden neurons of in-degree * out-degree``: use only on small networks.

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_edges, n_edges)
    """
    A = _edge_weights(weight_matrices, weighting)
    offsets = np.cumsum([0] + [Al.size for Al in A])
    rows, cols, vals = [], [], []
    for ell in range(len(A) - 1):
        Al, An = A[ell], A[ell + 1]  # e = (ell, b, a) feeds e' = (ell+1, c, b)
        n_b, n_a = Al.shape
        n_c = An.shape[0]
        b, a, c = np.meshgrid(np.arange(n_b), np.arange(n_a), np.arange(n_c), indexing="ij")
        w = Al[b, a] * An[c, b]
        keep = w != 0
        senders = offsets[ell] + b * n_a + a
        receivers = offsets[ell + 1] + c * n_b + b
        rows.append(receivers[keep])
        cols.append(senders[keep])
        vals.append(w[keep])
    n = int(offsets[-1])
    if not rows:
        return sparse.csr_matrix((n, n))
    return sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )


def _beta_from_strengths(s_in: np.ndarray, s_out: np.ndarray, orientation: str) -> float:
    if orientation == "forward":
        num, den = float(s_out @ s_in), float(s_in.sum())
    elif orientation == "symmetric":
        s = s_in + s_out
        num, den = float(s @ s), float(s.sum())
    else:
        raise ValueError(f"unknown orientation {orientation!r}; use 'forward' or 'symmetric'")
    if den == 0.0:
        warn_degenerate(
            "the line graph has no weighted arcs (all-zero weights); beta_eff is undefined (NaN)",
            stacklevel=4,
        )
        return float("nan")
    return num / den


def beta_eff(
    weight_matrices: Sequence[Any],
    *,
    weighting: Weighting = "abs_product",
    orientation: Orientation = "forward",
    method: Literal["auto", "closed_form", "exact"] = "auto",
) -> float:
    """Neural capacitance ``beta_eff`` of a layered network's line graph.

    .. math::

        \\beta_{\\mathrm{eff}} = \\frac{\\mathbf 1^\\top P\\, s_{in}}{\\mathbf 1^\\top P \\mathbf 1}
        = \\frac{\\sum_e s_{out}(e)\\, s_{in}(e)}{\\sum_e s_{in}(e)},\\qquad
        P_{e'e} = \\omega(e)\\,\\omega(e')\\ \\text{if } e \\to e'.

    Parameters
    ----------
    weight_matrices : sequence of array-like or torch.Tensor, each of shape (n_out_l, n_in_l)
        The probe's layer weights, input side first (``nn.Linear.weight`` layout).
    weighting : {"abs_product", "unweighted"}, default="abs_product"
        ``omega(e) = |w_e|`` or 1 per non-zero weight (pure topology). The paper's exact edge
        interaction is unverified (ALGORITHMS.md 2.13.2): ``abs_product`` is this toolkit's choice.
    orientation : {"forward", "symmetric"}, default="forward"
        Arcs follow the forward pass, or both directions (``P + P^T``). The backward orientation
        equals the forward one (``beta_eff(P^T) = beta_eff(P)``).
    method : {"auto", "closed_form", "exact"}, default="auto"
        ``exact`` builds the sparse line-graph adjacency; ``closed_form`` uses the strengths'
        closed form in O(number of weights); ``auto`` is ``closed_form``.

    Returns
    -------
    float
        Non-negative capacitance; 0 in forward orientation with fewer than 3 layers (no line-graph
        node has both in- and out-arcs); NaN with a DegenerateInputWarning when every weight is zero.
        It scales as ``s**2`` when all weights are multiplied by ``s`` (abs_product).

    Raises
    ------
    ValueError
        Empty list, non-2-D or NaN/inf matrices, or consecutive shapes that do not chain.

    References
    ----------
    C. Jiang, T. Pedapati, P.-Y. Chen, Y. Sun, J. Gao, "Neural Capacitance: A New Perspective of
    Neural Network Selection via Edge Dynamics", arXiv:2201.04194, 2022.
    J. Gao, B. Barzel, A.-L. Barabasi, "Universal resilience patterns in complex networks",
    Nature 530, 2016.

    Examples
    --------
    >>> from ckptrank import beta_eff
    >>> beta_eff([[[1.0]], [[2.0]], [[1.0]]])  # a chain 1-1-1-1 with weights (1, 2, 1)
    1.0
    """
    if method == "exact":
        P = line_graph_adjacency(weight_matrices, weighting=weighting)
        s_in = np.asarray(P.sum(axis=1)).ravel()
        s_out = np.asarray(P.sum(axis=0)).ravel()
        return _beta_from_strengths(s_in, s_out, orientation)
    if method not in ("auto", "closed_form"):
        raise ValueError(f"unknown method {method!r}; use 'auto', 'closed_form' or 'exact'")
    s_in_layers, s_out_layers = edge_strengths(weight_matrices, weighting=weighting)
    s_in = np.concatenate([s.ravel() for s in s_in_layers])
    s_out = np.concatenate([s.ravel() for s in s_out_layers])
    return _beta_from_strengths(s_in, s_out, orientation)


def _check_couplings(couplings: Sequence[Any]) -> list[np.ndarray]:
    if len(couplings) == 0:
        raise ValueError("couplings is empty; pass one (n_b, n_a, n_c) tensor per pair of consecutive layers")
    tensors = []
    for i, G in enumerate(couplings):
        T = np.array(G, dtype=np.float64, copy=True)
        if T.ndim != 3:
            raise ValueError(f"coupling {i} has shape {T.shape}; each must be 3-D (n_b, n_a, n_c)")
        if not np.isfinite(T).all() or (T < 0).any():
            raise ValueError(f"coupling {i} has NaN, inf or negative values; couplings are non-negative")
        tensors.append(T)
    for i in range(1, len(tensors)):
        # Pair i's middle layer (b) is pair i-1's output layer (c); its input layer (a) is pair i-1's b.
        if tensors[i].shape[0] != tensors[i - 1].shape[2] or tensors[i].shape[1] != tensors[i - 1].shape[0]:
            raise ValueError(
                f"coupling {i} of shape {tensors[i].shape} does not chain with coupling {i - 1} of shape "
                f"{tensors[i - 1].shape}; pass consecutive layer pairs, input side first"
            )
    return tensors


def coupling_adjacency(couplings: Sequence[Any]) -> sparse.csr_matrix:
    """Explicit line-graph interaction matrix from per-layer-pair couplings (rows = receiving edge).

    Parameters
    ----------
    couplings : sequence of array-like, each of shape (n_b, n_a, n_c)
        ``couplings[l][b, a, c]`` weights the arc from edge ``a -> b`` of layer ``l`` to edge
        ``b -> c`` of layer ``l + 1``. Nodes are numbered as in :func:`line_graph_adjacency`.

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_edges, n_edges)
    """
    G = _check_couplings(couplings)
    sizes = [G[0].shape[0] * G[0].shape[1]] + [T.shape[2] * T.shape[0] for T in G]
    offsets = np.cumsum([0, *sizes])
    rows, cols, vals = [], [], []
    for ell, T in enumerate(G):
        n_b, n_a, n_c = T.shape
        b, a, c = np.meshgrid(np.arange(n_b), np.arange(n_a), np.arange(n_c), indexing="ij")
        keep = T != 0
        rows.append((offsets[ell + 1] + c * n_b + b)[keep])
        cols.append((offsets[ell] + b * n_a + a)[keep])
        vals.append(T[keep])
    n = int(offsets[-1])
    return sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )


def beta_eff_from_couplings(
    couplings: Sequence[Any],
    *,
    orientation: Orientation = "forward",
    method: Literal["auto", "closed_form", "exact"] = "auto",
) -> float:
    """``beta_eff`` of a line graph whose arc weights are given per pair of consecutive layers.

    For the ``gradient_coupling`` weighting (ALGORITHMS.md 2.13.3), whose arc weights
    ``|E_x[h_a phi'(z_b) delta_c]|`` are not a product of two edge weights. The strengths are
    sums of the tensors: a node ``(l, b, a)`` sends ``sum_c G[l][b, a, c]`` and a node
    ``(l+1, c, b)`` receives ``sum_a G[l][b, a, c]``.

    Parameters
    ----------
    couplings : sequence of array-like, each of shape (n_b, n_a, n_c)
        See :func:`coupling_adjacency`.
    orientation : {"forward", "symmetric"}, default="forward"
    method : {"auto", "closed_form", "exact"}, default="auto"
        ``exact`` builds the sparse adjacency; the others sum the tensors.

    Returns
    -------
    float
        The capacitance (NaN with a warning when every coupling is zero).

    Raises
    ------
    ValueError
        Empty, non-3-D, negative or non-finite tensors, or tensors that do not chain.

    Examples
    --------
    >>> import numpy as np
    >>> W1, W2, W3 = np.array([[1.0]]), np.array([[2.0]]), np.array([[1.0]])
    >>> # the product form |w(e)| |w(e')| reproduces beta_eff: chain (1, 2, 1) -> 1
    >>> G = [np.einsum("ba,cb->bac", abs(W1), abs(W2)), np.einsum("ba,cb->bac", abs(W2), abs(W3))]
    >>> beta_eff_from_couplings(G)
    1.0
    """
    if method == "exact":
        P = coupling_adjacency(couplings)
        s_in = np.asarray(P.sum(axis=1)).ravel()
        s_out = np.asarray(P.sum(axis=0)).ravel()
        return _beta_from_strengths(s_in, s_out, orientation)
    if method not in ("auto", "closed_form"):
        raise ValueError(f"unknown method {method!r}; use 'auto', 'closed_form' or 'exact'")
    G = _check_couplings(couplings)
    # Layer l's edges, shape (n_b, n_a) = (out, in): in-strength from pair l-1, out-strength from pair l.
    n_layers = len(G) + 1
    s_in, s_out = [], []
    for ell in range(n_layers):
        shape = G[ell].shape[:2] if ell < len(G) else (G[-1].shape[2], G[-1].shape[0])
        received = G[ell - 1].sum(axis=1).T if ell > 0 else np.zeros(shape)  # (c, b) of pair l-1
        sent = G[ell].sum(axis=2) if ell < len(G) else np.zeros(shape)  # (b, a) of pair l
        s_in.append(received.ravel())
        s_out.append(sent.ravel())
    return _beta_from_strengths(np.concatenate(s_in), np.concatenate(s_out), orientation)
