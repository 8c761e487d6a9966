"""The neural-capacitance probe (NCP): a small MLP trained briefly on a checkpoint's features.

The public home of :func:`train_probe` and its pieces; they are implemented in
``ckptrank.measures._beff_probe`` (see :mod:`ckptrank.capacitance` for why the implementation
sits in the measures layer).
"""

from __future__ import annotations

from ckptrank.measures._beff_probe import (
    InputMap,
    ProbeRun,
    build_probe,
    check_probe_options,
    fit_input_map,
    gradient_couplings,
    graph_layers,
    graph_matrices,
    probe_split,
    run_probe_epochs,
    train_probe,
)

__all__ = [
    "InputMap",
    "ProbeRun",
    "build_probe",
    "check_probe_options",
    "fit_input_map",
    "gradient_couplings",
    "graph_layers",
    "graph_matrices",
    "probe_split",
    "run_probe_epochs",
    "train_probe",
]
