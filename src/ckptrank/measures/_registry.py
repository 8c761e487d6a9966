"""Registry of transferability measures.

Every measure is a plain function registered with :func:`register_measure`. Its
:class:`MeasureSpec` says what it consumes (``"features"`` and/or ``"source_probs"``),
whether a higher value predicts better transfer, how it is cited, and which
invariances it satisfies exactly (the common property tests read these tags).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "INVARIANCE_TAGS",
    "MeasureSpec",
    "get_measure",
    "list_measures",
    "register_measure",
    "unknown_name_message",
]

#: Invariance tags a measure may declare (ALGORITHMS.md section 6.2). A tag means the
#: score is unchanged (up to float error, or up to the measure's own randomness when
#: the measure is stochastic) under that transformation of the input.
INVARIANCE_TAGS = frozenset(
    {
        "sample_order",  # permuting the samples (rows of features, labels, source_probs together)
        "label_permutation",  # renaming the target classes
        "translation",  # features + b
        "rotation",  # features @ Q, Q orthogonal
        "isotropic_scale",  # features * s, s > 0
        "source_permutation",  # permuting the columns of source_probs
    }
)

Requirement = Literal["features", "source_probs", "model"]
_REQUIREMENTS = ("features", "source_probs", "model")

_MEASURES: dict[str, MeasureSpec] = {}


@dataclass(frozen=True)
class MeasureSpec:
    """Metadata of a registered measure.

    Attributes
    ----------
    name : str
        Short registry key, e.g. ``"logme"``.
    func : callable
        The measure. Its first positional argument is the input named by ``requires[0]``
        (features, source probabilities or the model), the second the target labels; everything else
        is keyword-only.
    requires : tuple of {"features", "source_probs", "model"}
        Inputs the measure consumes. ``"model"`` is a
        :class:`ckptrank.capacitance.backbone.ModelInput` (the loaded checkpoint and the raw
        target samples), for measures that train the checkpoint itself.
    higher_is_better : bool
        Whether a larger score predicts better transfer.
    citation : str
        Paper that defines the measure.
    kind : {"static", "dynamic"}
        ``"static"`` measures need one forward pass; ``"dynamic"`` ones train.
    stochastic : bool
        Whether the result depends on ``random_state``.
    invariances : frozenset of str
        Subset of :data:`INVARIANCE_TAGS` the measure satisfies.
    score_range : str
        Human-readable range of the score, e.g. ``"[-H(Y), 0]"``.
    """

    name: str
    func: Callable[..., float]
    requires: tuple[Requirement, ...]
    higher_is_better: bool
    citation: str
    kind: Literal["static", "dynamic"] = "static"
    stochastic: bool = False
    invariances: frozenset[str] = field(default_factory=frozenset)
    score_range: str = "unbounded"
    task: str = "classification"

    @property
    def summary(self) -> str:
        """First line of the measure's docstring."""
        doc = (self.func.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


def register_measure(
    name: str,
    *,
    requires: tuple[Requirement, ...],
    higher_is_better: bool = True,
    citation: str,
    kind: Literal["static", "dynamic"] = "static",
    stochastic: bool = False,
    invariances: tuple[str, ...] | frozenset[str] = (),
    score_range: str = "unbounded",
    task: str = "classification",
) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Register a measure function under ``name`` (decorator).

    Raises
    ------
    ValueError
        If the name is taken, a requirement is unknown or an invariance tag is unknown.
    """
    if name in _MEASURES:
        raise ValueError(f"a measure named {name!r} is already registered")
    for req in requires:
        if req not in _REQUIREMENTS:
            raise ValueError(f"unknown requirement {req!r}; use one of {', '.join(map(repr, _REQUIREMENTS))}")
    unknown = set(invariances) - INVARIANCE_TAGS
    if unknown:
        raise ValueError(f"unknown invariance tags {sorted(unknown)}; valid: {sorted(INVARIANCE_TAGS)}")

    def decorator(func: Callable[..., float]) -> Callable[..., float]:
        _MEASURES[name] = MeasureSpec(
            name=name,
            func=func,
            requires=tuple(requires),
            higher_is_better=higher_is_better,
            citation=citation,
            kind=kind,
            stochastic=stochastic,
            invariances=frozenset(invariances),
            score_range=score_range,
            task=task,
        )
        return func

    return decorator


def unknown_name_message(kind: str, name: str, valid: list[str]) -> str:
    """One-line message for an unknown name: the valid names and the closest match."""
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {name!r}.{hint} Valid {kind}s: {', '.join(valid)}."


def get_measure(name: str) -> MeasureSpec:
    """Return the :class:`MeasureSpec` registered under ``name``.

    Raises
    ------
    KeyError
        If no measure has that name; the message lists the valid names and the closest match.
    """
    try:
        return _MEASURES[name]
    except KeyError:
        raise KeyError(unknown_name_message("measure", name, list_measures())) from None


def list_measures(*, kind: str | None = None, requires: str | None = None) -> list[str]:
    """Sorted names of the registered measures, optionally filtered.

    Parameters
    ----------
    kind : {"static", "dynamic"}, optional
        Keep only measures of this kind.
    requires : {"features", "source_probs", "model"}, optional
        Keep only measures that consume this input.
    """
    return sorted(
        name
        for name, spec in _MEASURES.items()
        if (kind is None or spec.kind == kind) and (requires is None or requires in spec.requires)
    )
