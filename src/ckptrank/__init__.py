"""ckptrank: rank pre-trained checkpoints for a target task, and benchmark the rankers.

The measures library (:func:`score`, :func:`list_measures`, one function per measure),
SFDA ensemble selection (:func:`select_ensemble`), neural capacitance (:func:`beta_eff`)
and the ranking pipeline (:func:`rank`).
"""

from __future__ import annotations

from .capacitance.line_graph import beta_eff
from .ensemble import EnsembleSelection, select_ensemble
from .measures import (
    DegenerateInputWarning,
    MeasureSpec,
    beff,
    beff_finetune,
    gbc,
    get_measure,
    hscore,
    knn,
    leep,
    linear_probe,
    list_measures,
    logme,
    nce,
    nleep,
    parc,
    probe_accuracy,
    probe_accuracy_finetune,
    reg_hscore,
    register_measure,
    score,
    sfda,
    transrate,
)

__version__ = "0.1.0"

__all__ = [
    "DegenerateInputWarning",
    "EnsembleSelection",
    "MeasureSpec",
    "__version__",
    "beff",
    "beff_finetune",
    "beta_eff",
    "gbc",
    "get_measure",
    "hscore",
    "knn",
    "leep",
    "linear_probe",
    "list_measures",
    "logme",
    "nce",
    "nleep",
    "parc",
    "probe_accuracy",
    "probe_accuracy_finetune",
    "rank",
    "reg_hscore",
    "register_measure",
    "score",
    "select_ensemble",
    "sfda",
    "transrate",
]


def __getattr__(name: str) -> object:
    # The ranking pipeline pulls in the adapters, data and engine: import it on first use.
    if name == "rank":
        from .ranking import rank

        return rank
    raise AttributeError(f"module 'ckptrank' has no attribute {name!r}")
