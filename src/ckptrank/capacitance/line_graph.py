"""Neural capacitance beta_eff of a layered network's line graph (Jiang et al., 2022).

The public home of :func:`beta_eff`, :func:`beta_eff_from_couplings` and the explicit line-graph
adjacencies; they are implemented in ``ckptrank.measures._beff_line_graph`` (see
:mod:`ckptrank.capacitance` for why the implementation sits in the measures layer).
"""

from __future__ import annotations

from ckptrank.measures._beff_line_graph import (
    beta_eff,
    beta_eff_from_couplings,
    coupling_adjacency,
    edge_strengths,
    line_graph_adjacency,
)

__all__ = [
    "beta_eff",
    "beta_eff_from_couplings",
    "coupling_adjacency",
    "edge_strengths",
    "line_graph_adjacency",
]
