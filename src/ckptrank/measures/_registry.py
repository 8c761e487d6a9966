"""Registry of transferability measures.

Every measure is a plain function registered with :func:`register_measure`. Its
:class:`MeasureSpec` says what it consumes (``"features"`` and/or ``"source_probs"``),
whether a higher value predicts better transfer, how it is cited, which invariances it
satisfies exactly (the common property tests read these tags) and, optionally, the
maximum it can reach (:class:`Saturation`), so that checkpoints at that maximum are
reported as ties rather than ordered by round-off (:func:`snap_saturated`).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "INVARIANCE_TAGS",
    "MeasureSpec",
    "Saturation",
    "SaturationRule",
    "ScoreContext",
    "declare_saturation",
    "get_measure",
    "list_measures",
    "register_measure",
    "snap_saturated",
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
class ScoreContext:
    """What is known about the input of one score, for a measure's :class:`SaturationRule`.

    Attributes
    ----------
    measure : str
        Registry name of the measure (for messages).
    n_classes : int or None
        Number of target classes C.
    n_samples : int or None
        Number of scored samples n.
    n_features : int or None
        Width d of the checkpoint's features.
    options : mapping
        Keyword options the measure was called with (e.g. ``{"use_log": True}``).
    """

    measure: str
    n_classes: int | None = None
    n_samples: int | None = None
    n_features: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def require(self, what: Literal["n_classes", "n_samples", "n_features"]) -> int:
        """The value of ``what``; a one-line ValueError when it was not given."""
        value = getattr(self, what)
        if value is None:
            raise ValueError(
                f"the maximum of {self.measure} depends on {what}; pass {what}=... to snap_saturated"
            )
        return int(value)


@dataclass(frozen=True)
class Saturation:
    """The maximum a measure reaches in a context, and how far round-off can move a score there.

    Attributes
    ----------
    maximum : float
        The largest value the measure can take (the best, for a ``higher_is_better`` measure).
    atol : float
        Scores within ``atol`` of ``maximum`` are at the maximum up to the floating-point error
        of the measure's computation (the declaring rule states how it was derived).
    label : str
        How notes name the maximum, e.g. ``"C-1 = 25"``.
    """

    maximum: float
    atol: float
    label: str


#: A measure's saturation rule: its :class:`Saturation` in a :class:`ScoreContext`, or None when the
#: measure (with these options) has no attainable maximum.
SaturationRule = Callable[[ScoreContext], "Saturation | None"]


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
    saturation : callable or None
        :data:`SaturationRule` giving the measure's attainable maximum and the round-off
        tolerance there (see :func:`snap_saturated`); None when the measure declares none.
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
    saturation: SaturationRule | None = None

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
    saturation: SaturationRule | None = None,
) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Register a measure function under ``name`` (decorator).

    ``saturation`` optionally declares the measure's attainable maximum (a
    :data:`SaturationRule`); see :func:`snap_saturated`.

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
            saturation=saturation,
        )
        return func

    return decorator


def declare_saturation(name: str, rule: SaturationRule | None, *, replace: bool = False) -> None:
    """Attach a :data:`SaturationRule` to the measure registered under ``name`` (None removes it).

    For measures registered without ``saturation=``; equivalent to passing it to
    :func:`register_measure`.

    Raises
    ------
    KeyError
        No measure has that name.
    ValueError
        The measure already declares a rule and ``replace`` is False.
    """
    spec = get_measure(name)
    if spec.saturation is not None and not replace:
        raise ValueError(f"measure {name!r} already declares its saturation; pass replace=True to replace it")
    _MEASURES[name] = dataclasses.replace(spec, saturation=rule)


def _per_checkpoint(value: Any, n: int, what: str) -> list[int | None]:
    """A scalar or a per-checkpoint sequence as a list of n ints (None where unknown or NaN)."""
    if value is None or np.ndim(value) == 0:
        one = None if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)
        return [one] * n
    values = np.asarray(value, dtype=float).ravel()
    if values.size != n:
        raise ValueError(f"{what} has {values.size} values for {n} scores; give one per score or one for all")
    return [None if math.isnan(v) else int(v) for v in values]


def snap_saturated(
    name: str,
    scores: Any,
    *,
    n_classes: int | None = None,
    n_samples: Any = None,
    n_features: Any = None,
    options: Mapping[str, Any] | None = None,
    rtol: float | None = None,
    clip: bool = False,
) -> tuple[np.ndarray, str | None]:
    """Set scores that sit at the measure's maximum exactly to it, so that they tie.

    Several checkpoints can reach a measure's maximum (an H-score saturated at C - 1, a kNN
    accuracy of 1); their scores then differ only by floating-point round-off, and ranking
    them by it would be arbitrary. Every finite score within the measure's round-off
    tolerance of its declared maximum (:attr:`MeasureSpec.saturation`) is replaced by the
    maximum itself; ranks then see exact ties.

    Parameters
    ----------
    name : str
        Registry name of the measure.
    scores : array-like of shape (n_checkpoints,)
        The measure's scores of the checkpoints ranked together on one target task; NaN
        (not scored) is left alone.
    n_classes : int, optional
        Number of target classes C (needed by measures whose maximum depends on it, such as
        ``hscore``; a ValueError says so when missing).
    n_samples, n_features : int or array-like of shape (n_checkpoints,), optional
        Number of scored samples and feature width, for everyone or per checkpoint (NaN where
        unknown).
    options : mapping, optional
        Keyword options the measure was called with (``sfda``'s ``use_log`` changes its maximum).
    rtol : float, optional
        Tolerance relative to ``max(|maximum|, 1)``. None (default) uses the measure's own
        ``atol``, derived from the floating-point error of its computation at the maximum:
        ``1e-9 (C - 1)`` for the H-scores (saturated values are sums of squared projections on
        computed eigenvectors: measured within 6e-16 relative of C - 1 on real sentence-encoder
        features and on random ones, 5e-13 at a spectrum condition number of 1e6, so 1e-9 leaves
        a margin of over 1000), ``1e-12`` for means of per-sample terms bounded by 1 near the
        maximum (accuracies, probabilities, log-probabilities near 0: numpy's pairwise summation
        of n terms errs by O(log n) ulps, and the recursive bound n * 2.2e-16 stays below 1e-12
        up to n = 4500).
    clip : bool, default False
        Also set scores above the maximum to it. Measured scores never exceed it beyond round-off;
        values derived from them (resampled draws rescaled around the full-set score) can.

    Returns
    -------
    snapped : numpy.ndarray of shape (n_checkpoints,)
        A float64 copy of ``scores`` with the saturated values set exactly to the maximum.
    note : str or None
        ``"hscore: 3 checkpoints at its maximum C-1 = 25; tied, not ordered by round-off"`` when
        two or more checkpoints are at a maximum, else None.

    Raises
    ------
    KeyError
        Unknown measure (the message lists the valid names).
    ValueError
        ``scores`` is not one-dimensional, a per-checkpoint context has the wrong length, the
        measure's maximum needs a value that was not given, or ``rtol`` is negative.

    Examples
    --------
    >>> from ckptrank.measures import snap_saturated
    >>> snapped, note = snap_saturated("hscore", [25.000000000000014, 24.999999999999996, 8.5], n_classes=26)
    >>> snapped.tolist()
    [25.0, 25.0, 8.5]
    >>> note
    'hscore: 2 checkpoints at its maximum C-1 = 25; tied, not ordered by round-off'
    """
    spec = get_measure(name)
    values = np.array(scores, dtype=np.float64, copy=True)
    if values.ndim != 1:
        raise ValueError(f"scores must be one-dimensional (one per checkpoint), got shape {values.shape}")
    if rtol is not None and not (rtol >= 0.0 and math.isfinite(rtol)):
        raise ValueError(f"rtol must be a finite number >= 0, got {rtol!r}")
    if spec.saturation is None:
        return values, None
    n = values.size
    samples = _per_checkpoint(n_samples, n, "n_samples")
    features = _per_checkpoint(n_features, n, "n_features")
    classes = None if n_classes is None else int(n_classes)
    counts: dict[tuple[float, str], int] = {}
    for i, value in enumerate(values):
        if not math.isfinite(value):
            continue
        context = ScoreContext(name, classes, samples[i], features[i], dict(options or {}))
        sat = spec.saturation(context)
        if sat is None:
            continue
        tol = sat.atol if rtol is None else rtol * max(abs(sat.maximum), 1.0)
        if abs(value - sat.maximum) <= tol or (clip and value > sat.maximum):
            values[i] = sat.maximum
            counts[(sat.maximum, sat.label)] = counts.get((sat.maximum, sat.label), 0) + 1
    tied = [
        f"{count} checkpoints at its maximum {label}" for (_, label), count in counts.items() if count > 1
    ]
    note = f"{name}: {'; '.join(tied)}; tied, not ordered by round-off" if tied else None
    return values, note


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


def catalog_rows() -> list[dict[str, Any]]:
    """What ``ckptrank measures`` shows of every registered measure, as JSON-ready rows.

    ``ckptrank/measures_catalog.json`` holds these rows for the built-in measures, so that the
    command lists them without importing the measures (:mod:`ckptrank._catalog`).
    """
    rows = []
    for name in list_measures():
        spec = get_measure(name)
        rows.append(
            {
                "name": spec.name,
                "requires": list(spec.requires),
                "higher_is_better": spec.higher_is_better,
                "kind": spec.kind,
                "range": spec.score_range,
                "citation": spec.citation,
                "summary": spec.summary,
            }
        )
    return rows
