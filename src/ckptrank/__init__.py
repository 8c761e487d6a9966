"""ckptrank: rank pre-trained checkpoints for a target task, and benchmark the rankers.

The measures library (:func:`score`, :func:`list_measures`, one function per measure),
SFDA ensemble selection (:func:`select_ensemble`), neural capacitance (:func:`beta_eff`)
and the ranking pipeline (:func:`rank`).

The public names here are imported on first use, so ``import ckptrank`` stays light. The
modules import one way, lowest first (``tests/test_layering.py`` checks it): the leaves
(``_atomic``, ``_cachedir``, ``_catalog``, ``plotting``, ``testing``, ``executors``); ``data``
(target datasets); ``adapters`` and ``zoo`` (checkpoint loading); ``engine`` (feature
extraction and cache); ``measures``; ``capacitance``; ``rankers``, ``combine``, ``ensemble``
and ``pipeline`` (the units of work); ``specs`` (the checkpoint specs and measures the user
asked for) and ``targets`` (the target data); ``ranking`` (:func:`rank`: run, score and rank
the checkpoints); ``ranking_output`` (a ranking as files and records) and ``ensemble_choice``
(``choose_ensemble``: run the checkpoints for ensemble selection); ``bench``, ``demo`` and
``select``; ``cli``.
"""

from __future__ import annotations

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


#: Public names and the module that defines each: imported on first use, so that
#: ``import ckptrank`` (and ``ckptrank --help``) does not pay for torch and scikit-learn.
_LAZY = {
    "beta_eff": "ckptrank.capacitance.line_graph",
    "EnsembleSelection": "ckptrank.ensemble",
    "select_ensemble": "ckptrank.ensemble",
    "rank": "ckptrank.ranking",
    **dict.fromkeys(
        (
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
        ),
        "ckptrank.measures",
    ),
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ckptrank' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
