"""ckptrank: rank pre-trained checkpoints for a target task, and benchmark the rankers."""

from __future__ import annotations

from .measures import (
    DegenerateInputWarning,
    MeasureSpec,
    get_measure,
    list_measures,
    register_measure,
    score,
)

__version__ = "0.1.0"

__all__ = [
    "DegenerateInputWarning",
    "MeasureSpec",
    "__version__",
    "get_measure",
    "list_measures",
    "register_measure",
    "score",
]
