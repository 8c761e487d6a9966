"""The generic entry point: score features/probabilities with a measure chosen by name."""

from __future__ import annotations

import inspect
from typing import Any

from ._registry import get_measure

__all__ = ["score"]


def score(
    name: str,
    features: Any = None,
    labels: Any = None,
    *,
    source_probs: Any = None,
    model: Any = None,
    **options: Any,
) -> float:
    """Score one checkpoint's outputs on a target task with the measure registered as ``name``.

    Parameters
    ----------
    name : str
        Registry key, e.g. ``"logme"`` (see :func:`ckptrank.list_measures`).
    features : array-like or torch.Tensor of shape (n_samples, n_features), optional
        Penultimate-layer features of the target training samples. Needed by every measure
        whose spec lists ``"features"`` in ``requires``.
    labels : array-like of shape (n_samples,)
        Target labels, of any hashable type.
    source_probs : array-like or torch.Tensor of shape (n_samples, n_source_classes), optional
        Softmax probabilities of the checkpoint's own classification head (LEEP, NCE).
    model : ckptrank.capacitance.backbone.ModelInput, optional
        The loaded checkpoint and the raw target samples, for measures that fine-tune the
        checkpoint itself (``beff_finetune``, ``probe_accuracy_finetune``).
    **options
        Keyword options of the measure (see its function's docstring).

    Returns
    -------
    float
        The score; higher predicts better transfer for every built-in measure
        (``get_measure(name).higher_is_better``).

    Raises
    ------
    KeyError
        Unknown measure name (the message lists the valid ones).
    ValueError
        A required input is missing, an option is unknown, or the inputs are invalid.

    Examples
    --------
    >>> import numpy as np, ckptrank
    >>> X = np.array([[-1.0], [1.0], [1.0], [3.0]]); y = ["cat", "cat", "dog", "dog"]
    >>> round(ckptrank.score("hscore", X, y), 6)
    0.5
    """
    spec = get_measure(name)
    if labels is None:
        raise ValueError(f"measure {name!r} needs labels: pass the target labels of the scored samples")
    inputs = {"features": features, "source_probs": source_probs, "model": model}
    for requirement in spec.requires:
        if inputs[requirement] is None:
            what = {
                "features": "the checkpoint's penultimate features",
                "source_probs": "the softmax probabilities of the checkpoint's own classification head",
                "model": "the loaded checkpoint and the raw samples: a capacitance.backbone.ModelInput",
            }[requirement]
            raise ValueError(f"measure {name!r} needs {requirement} ({what}); pass {requirement}=...")
    params = inspect.signature(spec.func).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    keyword_only = [p.name for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(keyword_only))
    if unknown and not accepts_any:
        raise ValueError(
            f"measure {name!r} has no option {', '.join(map(repr, unknown))}; "
            f"its options are: {', '.join(keyword_only) or '(none)'}"
        )
    args = [inputs[requirement] for requirement in spec.requires]
    return float(spec.func(*args, labels, **options))
