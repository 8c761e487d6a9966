"""Transferability measures: one module per measure, all registered in :mod:`._registry`.

Importing this package imports every measure module, so that its ``@register_measure``
decorator runs, and declares the attainable maxima of the measures that average per-sample
accuracies or probabilities (:func:`snap_saturated` makes checkpoints at a maximum exact ties).
"""

from __future__ import annotations

from ._api import score
from ._registry import (
    MeasureSpec,
    Saturation,
    ScoreContext,
    catalog_rows,
    declare_saturation,
    get_measure,
    list_measures,
    register_measure,
    snap_saturated,
)
from ._validation import DegenerateInputWarning
from .beff import beff, beff_finetune, probe_accuracy, probe_accuracy_finetune
from .gbc import gbc
from .hscore import hscore, reg_hscore
from .knn import knn
from .leep import leep
from .linear_probe import linear_probe
from .logme import logme
from .nce import nce
from .nleep import nleep
from .parc import parc
from .sfda import sfda
from .transrate import transrate

__all__ = [
    "DegenerateInputWarning",
    "MeasureSpec",
    "Saturation",
    "ScoreContext",
    "beff",
    "beff_finetune",
    "catalog_rows",
    "declare_saturation",
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
    "reg_hscore",
    "register_measure",
    "score",
    "sfda",
    "snap_saturated",
    "transrate",
]

#: Round-off tolerance at the maximum of a mean of n per-sample terms that are at most 1 in magnitude
#: there (accuracies and probabilities near 1, log-probabilities near 0): numpy's pairwise summation
#: errs by O(log n) ulps and the recursive-summation bound n * 2.2e-16 stays below it up to n = 4500.
#: A genuine accuracy below 1 is at most 1 - 1/n, far outside it.
MEAN_ATOL = 1e-12


def _accuracy_saturation(context: ScoreContext) -> Saturation:
    return Saturation(1.0, MEAN_ATOL, "1 (every sample classified correctly)")


def _probability_saturation(context: ScoreContext) -> Saturation:
    """Mean true-class probability: at most 1; with ``use_log=True`` its mean log, at most 0."""
    if context.options.get("use_log", False):
        return Saturation(0.0, MEAN_ATOL, "0 (log-probability 0 of the true class for every sample)")
    return Saturation(1.0, MEAN_ATOL, "1 (probability 1 of the true class for every sample)")


def _eep_saturation(context: ScoreContext) -> Saturation:
    """(N)LEEP: mean log expected empirical prediction, at most 0 (``use_log=False``: mean EEP, at most 1)."""
    if context.options.get("use_log", True):
        return Saturation(0.0, MEAN_ATOL, "0 (the label is a function of the source prediction)")
    return Saturation(1.0, MEAN_ATOL, "1 (the label is a function of the source prediction)")


def _nce_saturation(context: ScoreContext) -> Saturation:
    return Saturation(0.0, MEAN_ATOL, "0 (the label is a function of the source prediction)")


# The modules of these measures register them without a maximum; declared here, in one place.
for _name, _rule in {
    "knn": _accuracy_saturation,
    "linear_probe": _accuracy_saturation,
    "probe_accuracy": _accuracy_saturation,
    "probe_accuracy_finetune": _accuracy_saturation,
    "sfda": _probability_saturation,
    "leep": _eep_saturation,
    "nleep": _eep_saturation,
    "nce": _nce_saturation,
}.items():
    if get_measure(_name).saturation is None:
        declare_saturation(_name, _rule)
del _name, _rule
