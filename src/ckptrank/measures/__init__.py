"""Transferability measures: one module per measure, all registered in :mod:`._registry`."""

from __future__ import annotations

import importlib
import pkgutil

from ._api import score
from ._registry import MeasureSpec, get_measure, list_measures, register_measure
from ._validation import DegenerateInputWarning

# Import every measure module so that its @register_measure decorator runs.
for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "DegenerateInputWarning",
    "MeasureSpec",
    "get_measure",
    "list_measures",
    "register_measure",
    "score",
]
