"""Transferability measures: one module per measure, all registered in :mod:`._registry`.

Importing this package imports every measure module, so that its ``@register_measure``
decorator runs.
"""

from __future__ import annotations

from ._api import score
from ._registry import MeasureSpec, get_measure, list_measures, register_measure
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
    "beff",
    "beff_finetune",
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
    "transrate",
]
