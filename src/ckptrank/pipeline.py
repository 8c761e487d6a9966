"""Units of work: what one checkpoint costs, as pure functions an executor can run anywhere.

A command is a plan of units handed to an executor (:mod:`ckptrank.executors`): the local one
runs them in turn in this process, the Ray one runs them as tasks on a cluster. A unit reads only
its arguments (and the feature cache, which is content-addressed), writes only the feature cache
(atomically, keyed by everything that determines the features), and returns a small picklable
result; so running it twice, or on another machine, or again after a worker died half-way, gives
the same result and the same single cache entry. :func:`unit_key` names a unit by its inputs.

Units
    :func:`run_checkpoint`
        Load one checkpoint and extract its features on one dataset through the cache
        (returns a :class:`CheckpointRun`, holding the features, in memory).
    :func:`score_measures`
        Score one run with each measure, one at a time (returns a :class:`CheckpointScores`, with
        no features: small enough to travel back from a worker).
    :func:`checkpoint_unit`
        The two in one: what ``rank`` and ``bench`` map over checkpoints.

Layering: this module sits below :mod:`ckptrank.ranking` (it imports ``data``, ``adapters``,
``engine`` and ``measures`` lazily, never ``ranking`` or ``bench``). A caller that wants its own
loader or extractor (tests, the ranking module's seams) passes it as ``load`` / ``extract``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import pickle
import re
import time
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "CheckpointRun",
    "CheckpointScores",
    "card_accuracy",
    "checkpoint_errors",
    "checkpoint_unit",
    "extract_features",
    "failure_text",
    "jackknife_values",
    "load_checkpoint",
    "open_cache",
    "resample_indices",
    "run_checkpoint",
    "score_measures",
    "score_resamples",
    "unit_key",
]

logger = logging.getLogger(__name__)

OnError = Literal["record", "raise"]


# --------------------------------------------------------------------------------------------
# The layers below (imported lazily, so that ``import ckptrank`` stays light).


def load_checkpoint(spec: str, *, trust_checkpoint: bool, device: str | None) -> Any:
    """Load one checkpoint (see :func:`ckptrank.adapters.load_checkpoint`); ``device`` None = CPU."""
    from ckptrank.adapters import load_checkpoint as load

    return load(spec, trust_checkpoint=trust_checkpoint, device=device or "cpu")


def extract_features(
    checkpoint: Any, dataset: Any, *, batch_size: int, device: str | None, cache: Any, progress: Any
) -> Any:
    """Features of a checkpoint on a dataset, via the cache (:func:`ckptrank.engine.extraction.extract`)."""
    from ckptrank.engine.extraction import extract

    return extract(checkpoint, dataset, batch_size=batch_size, device=device, cache=cache, progress=progress)


def open_cache(cache_dir: str | Path | None) -> Any:
    """The feature cache at ``cache_dir``, after checking that entries can be written there.

    Raises
    ------
    CacheNotWritableError
        The folder cannot hold new entries (an ``OSError`` naming the folder and the fix).
    """
    from ckptrank.engine.cache import FeatureCache

    cache = FeatureCache(root=cache_dir)
    cache.check_writable()
    return cache


def checkpoint_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mark one checkpoint as failed instead of aborting the ranking.

    Besides the usual ones, what loaders raise on a damaged or hostile file: pickle errors (a
    ``torch.load(weights_only=True)`` refusing a pickle that needs code), ``EOFError`` (an empty
    or truncated pickle), ``zipfile.BadZipFile``, safetensors' ``SafetensorError``, and
    ``LookupError`` (an ``IndexError`` from a malformed archive or config).
    """
    errors: tuple[type[BaseException], ...] = (
        ValueError,
        LookupError,
        OSError,
        RuntimeError,
        ImportError,
        TypeError,
        AttributeError,
        pickle.PickleError,
        EOFError,
        zipfile.BadZipFile,
    )
    try:
        from safetensors import SafetensorError
    except ImportError:  # pragma: no cover - safetensors is a dependency
        return errors
    return (*errors, SafetensorError)


def failure_text(err: BaseException) -> str:
    """One line saying why a checkpoint failed (library messages can span many lines)."""
    text = str(err.args[0] if isinstance(err, KeyError) and err.args else err)
    if isinstance(err, pickle.PickleError):
        # torch wraps the reason in paragraphs of advice: keep the paragraph that names the reason
        paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]
        useful = [p for p in paragraphs if not p.startswith(("Weights only load failed", "Check the doc"))]
        reason = (useful or paragraphs or [""])[0]
        reason = re.sub(r"^.*WeightsUnpickler error:\s*", "", reason)[:200] or "no detail"
        return (
            f"refused to unpickle the checkpoint ({type(err).__name__}: {reason}): it is corrupt or "
            "holds more than tensors; ckptrank never runs code from a checkpoint, use a safetensors copy "
            "of the model"
        )
    text = " ".join(text.split())
    if not text:
        return type(err).__name__
    if not isinstance(err, ValueError | LookupError | OSError | RuntimeError | ImportError):
        return f"{type(err).__name__}: {text}"
    return text


def card_accuracy(card: Any) -> float | None:
    """The source accuracy a checkpoint card states, as a fraction in [0, 1], or None."""
    if not isinstance(card, Mapping):
        return None
    value = card.get("source_accuracy")
    if value is None:
        return None
    try:
        accuracy = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(accuracy):
        return None
    return round(accuracy / 100.0, 10) if accuracy > 1.0 else accuracy


def unit_key(kind: str, **inputs: Any) -> str:
    """The content key of a unit: sha256 (hex) of its kind and inputs as canonical JSON.

    Parameters
    ----------
    kind : str
        What the unit does (``"checkpoint"``, ``"suite-pair"``, ...).
    **inputs
        Everything the result depends on (a dataset enters by its fingerprint).

    Examples
    --------
    >>> unit_key("checkpoint", spec="zoo:cnn-fm04", measures=["logme"]) == unit_key(
    ...     "checkpoint", measures=["logme"], spec="zoo:cnn-fm04")
    True
    """
    blob = json.dumps({"kind": kind, **inputs}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# One checkpoint's pass over the target data.


@dataclass
class CheckpointRun:
    """One checkpoint's pass over the target data (features held in memory).

    ``status`` is ``"ok"``, ``"failed"`` (``error`` says why) or ``"skipped"`` (every requested
    measure needs a classification head, which the checkpoint lacks: nothing was extracted).
    ``features`` has shape (n_samples, n_features), ``source_probs`` (n_samples, n_source_classes)
    or None, ``labels`` (n_samples,). ``model`` holds the loaded checkpoint and raw samples for the
    measures that fine-tune it (a :class:`~ckptrank.capacitance.backbone.ModelInput`), else None.
    """

    spec: str
    status: str = "ok"
    error: str | None = None
    name: str | None = None
    features: Any = None
    source_probs: Any = None
    model: Any = None
    labels: Any = None
    has_head: bool | None = None
    num_parameters: int | None = None
    source_accuracy: float | None = None
    feature_dim: int | None = None
    from_cache: bool | None = None
    load_seconds: float = 0.0
    extract_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    #: Where the weights came from (file, hub repo@commit) and the pinned hub commit, if any.
    weights: str | None = None
    revision: str | None = None

    def fail(self, err: BaseException) -> CheckpointRun:
        """Mark the run failed with ``err``'s one-line reason and drop what it held; returns self."""
        self.status = "failed"
        self.error = failure_text(err)
        self.features = self.source_probs = self.model = None
        return self


def run_checkpoint(
    dataset: Any,
    spec: str,
    *,
    needs_features: bool,
    cache: Any,
    device: str | None,
    batch_size: int,
    progress: Any,
    trust_checkpoint: bool,
    on_error: OnError,
    needs_model: bool = False,
    load: Callable[..., Any] | None = None,
    extract: Callable[..., Any] | None = None,
) -> CheckpointRun:
    """Load one checkpoint and extract its features on ``dataset`` through ``cache``.

    Parameters
    ----------
    dataset : TargetDataset
        The target data (``labels`` of shape (n_samples,)).
    spec : str
        The checkpoint spec.
    needs_features, needs_model : bool
        Whether a requested measure reads the features, or fine-tunes the checkpoint on the raw
        samples. Without either, a checkpoint without a head is ``"skipped"`` (no extraction).
    cache : FeatureCache or None
        The content-addressed feature cache (None: extract without caching).
    device : str, optional
        Where the checkpoint runs (default CPU).
    batch_size : int
    progress : optional
        Passed to the extraction engine.
    trust_checkpoint : bool
        Allow checkpoint files that run code when loaded.
    on_error : {"record", "raise"}
        A failing load or extraction gives a ``"failed"`` run, or is re-raised.
    load, extract : callable, optional
        Replacements for :func:`load_checkpoint` and :func:`extract_features` (same signatures).

    Returns
    -------
    CheckpointRun
        With the features in memory when ``status == "ok"``.
    """
    load = load_checkpoint if load is None else load
    extract = extract_features if extract is None else extract
    run = CheckpointRun(spec=spec)
    start = time.perf_counter()
    try:
        checkpoint = load(spec, trust_checkpoint=trust_checkpoint, device=device)
    except checkpoint_errors() as err:
        if on_error == "raise":
            raise
        logger.info("checkpoint %s failed to load: %s", spec, err)
        return run.fail(err)
    run.load_seconds = time.perf_counter() - start
    run.name = str(getattr(checkpoint, "name", spec))
    run.has_head = bool(getattr(checkpoint, "has_head", False))
    card = getattr(checkpoint, "card", None)
    if getattr(checkpoint, "layer", None) is None:
        # The stated accuracy is of the whole network's head, not of an intermediate layer.
        run.source_accuracy = card_accuracy(card)
    if isinstance(card, Mapping):
        run.weights = None if card.get("weights") is None else str(card["weights"])
        run.revision = None if card.get("revision") is None else str(card["revision"])
        # what the loader chose for the user (e.g. a default preprocessing) is said in the ranking
        run.notes.extend(str(note) for note in card.get("notes", []) or [])
    with contextlib.suppress(*checkpoint_errors()):
        run.num_parameters = int(checkpoint.num_parameters())
    if not needs_features and not needs_model and not run.has_head:
        # Every requested measure needs the source head, and this checkpoint has none:
        # do not spend an extraction on it.
        run.status = "skipped"
        return run
    try:
        extracted = extract(
            checkpoint, dataset, batch_size=batch_size, device=device, cache=cache, progress=progress
        )
    except checkpoint_errors() as err:
        if on_error == "raise":
            raise
        logger.info("checkpoint %s failed to run: %s", spec, err)
        del checkpoint  # before the next one loads (e.g. after running out of memory)
        return run.fail(err)
    run.features = extracted.features
    run.source_probs = extracted.source_probs
    run.labels = extracted.labels
    run.from_cache = bool(getattr(extracted, "from_cache", False))
    run.extract_seconds = float(getattr(extracted, "seconds", 0.0) or 0.0)
    if run.from_cache and callable(getattr(progress, "cached", None)):
        progress.cached(spec, int(np.shape(extracted.features)[0]))  # a log line, as for an extraction
    run.feature_dim = int(np.shape(extracted.features)[1]) if np.ndim(extracted.features) == 2 else None
    if getattr(dataset, "modality", None) == "text":
        note = _truncation_note(checkpoint, dataset.items)
        if note is not None:
            run.notes.append(note)
    if run.source_probs is None:
        run.has_head = False
    if needs_model and getattr(dataset, "modality", None) != "features":
        from ckptrank.capacitance.backbone import ModelInput

        fingerprint = getattr(dataset, "fingerprint", None)
        run.model = ModelInput(checkpoint, dataset.items, fingerprint() if callable(fingerprint) else None)
    return run


def _truncation_note(checkpoint: Any, texts: Any) -> str | None:
    """The note saying how many target texts the checkpoint's token limit cuts (None: none)."""
    counter = getattr(checkpoint, "count_tokens", None)
    if not callable(counter):
        return None
    try:
        count = counter(texts)
    except checkpoint_errors() as err:  # the features exist; only the note is lost
        logger.info("could not count the tokens of %s: %s", getattr(checkpoint, "spec", "?"), err)
        return None
    return None if count is None else count.note()


# --------------------------------------------------------------------------------------------
# Scoring.


def score_run(
    run: CheckpointRun,
    names: Sequence[str],
    options: Mapping[str, Mapping[str, Any]],
    on_error: OnError,
) -> tuple[dict[str, float], float]:
    """Score one run with every measure in ``names``; skipped or failed measures give NaN and a note.

    Notes are appended to ``run.notes``. Returns the scores (measure -> float, NaN when not
    finite) and the seconds spent.
    """
    from ckptrank.measures import get_measure, score

    scores: dict[str, float] = {}
    start = time.perf_counter()
    for name in names:
        spec = get_measure(name)
        scores[name] = math.nan
        if "source_probs" in spec.requires and run.source_probs is None:
            run.notes.append(
                f"{name} skipped: it needs the source-class probabilities of a classification head, "
                "which this checkpoint (or the chosen layer) does not have"
            )
            continue
        if "features" in spec.requires and run.features is None:
            run.notes.append(f"{name} skipped: no features were extracted")
            continue
        if "model" in spec.requires and run.model is None:
            run.notes.append(
                f"{name} skipped: it fine-tunes the checkpoint on the raw samples, which this run does not "
                "have (the target data are precomputed features)"
            )
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                value = score(
                    name,
                    run.features if "features" in spec.requires else None,
                    run.labels,
                    source_probs=run.source_probs if "source_probs" in spec.requires else None,
                    model=run.model if "model" in spec.requires else None,
                    **options.get(name, {}),
                )
            except (ValueError, ArithmeticError, RuntimeError) as err:
                if on_error == "raise":
                    raise
                run.notes.append(f"{name} failed: {' '.join(str(err).split())}")
                value = math.nan
        for warning in caught:
            text = " ".join(str(warning.message).split())
            text = text.removeprefix(f"{name}: ")
            note = f"{name} warned: {text}"
            if note not in run.notes:
                run.notes.append(note)
        if not math.isfinite(value) and not any(note.startswith(f"{name} ") for note in run.notes):
            run.notes.append(f"{name} gave a non-finite score ({value}); left out of the ranks")
        scores[name] = value if math.isfinite(value) else math.nan
    return scores, time.perf_counter() - start


#: Fraction of each class kept in a resample of the target set (delete-d jackknife, d = 20%).
RESAMPLE_FRACTION = 0.8
#: At most this many samples in a resample, so that its cost stays bounded on large target sets
#: (the fraction kept shrinks instead; :func:`jackknife_values` scales by the fraction actually kept).
RESAMPLE_MAX_SAMPLES = 2000


def resample_indices(labels: Any, n_resamples: int, seed: int) -> list[np.ndarray]:
    """Stratified subsamples of the target samples, without replacement, the same for every checkpoint.

    Each resample keeps :data:`RESAMPLE_FRACTION` of every class (at least one sample), or a
    smaller fraction when that would exceed :data:`RESAMPLE_MAX_SAMPLES` samples, drawn without
    replacement: a bootstrap's duplicated samples would shrink the number of distinct
    samples that measures such as H-score and NLEEP see, and shift checkpoints of different
    feature widths by different amounts. The draws depend only on the labels and ``seed``, so
    every checkpoint of a ranking is re-scored on the same resamples (paired), on any machine.
    :func:`jackknife_values` turns the scores into draws with the spread of the full-set score.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
    n_resamples : int
        Non-negative.
    seed : int

    Returns
    -------
    list of ndarray of shape (n_kept,)
        Sorted sample indices of each resample.

    Examples
    --------
    >>> first = resample_indices([0, 0, 0, 0, 0, 1, 1, 1, 1, 1], 2, seed=0)
    >>> [len(r) for r in first]
    [8, 8]
    >>> all((a == b).all() for a, b in zip(first, resample_indices([0] * 5 + [1] * 5, 2, seed=0)))
    True
    """
    if n_resamples < 0:
        raise ValueError(f"the number of resamples must be 0 or more, got {n_resamples}")
    labels = np.asarray(labels)
    members = [np.flatnonzero(labels == value) for value in np.unique(labels)]
    fraction = min(RESAMPLE_FRACTION, RESAMPLE_MAX_SAMPLES / max(labels.size, 1))
    rng = np.random.default_rng([int(seed), 1207])
    return [
        np.sort(
            np.concatenate(
                [rng.choice(m, size=max(1, round(fraction * m.size)), replace=False) for m in members]
            )
        )
        for _ in range(n_resamples)
    ]


def jackknife_values(full: float, values: Sequence[float], n_samples: int, n_kept: int) -> list[float]:
    """Resample scores recentred on the full-set score, their spread scaled to the full set's.

    The delete-d jackknife with random subsets (Shao and Wu, Ann. Statist. 1989): scores on
    subsamples of ``n_kept`` of ``n_samples`` vary less than the full-set score would across
    target sets, by the factor ``sqrt(d / n_kept)`` with ``d = n_samples - n_kept``; and a
    measure's value can drift with the number of samples. With ``m`` finite draws,
    ``full + sqrt(n_kept / d * m / (m - 1)) * (value - mean(values))`` removes the drift and
    restores the spread (``m / (m - 1)``: the deviations are taken from the draws' own mean).
    Non-finite values stay NaN; with a single finite draw the spread is unknown and it becomes
    the full-set score.

    Examples
    --------
    >>> jackknife_values(1.0, [0.9, 0.7], n_samples=10, n_kept=8)  # scale sqrt(8 / 2 * 2) = 2.83
    [1.282842712475, 0.717157287525]
    """
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    dropped = n_samples - n_kept
    m = int(finite.sum())
    if m == 0 or dropped <= 0 or not math.isfinite(full):
        return [math.nan] * len(values)
    scale = math.sqrt(n_kept / dropped * m / (m - 1)) if m > 1 else 0.0
    out = np.where(finite, full + scale * (values - values[finite].mean()), np.nan)
    return [float(v) for v in np.round(out, 12)]


def score_resamples(
    run: CheckpointRun,
    name: str,
    options: Mapping[str, Any],
    indices: Sequence[np.ndarray],
) -> list[float]:
    """One measure's scores of a run on each resample of its target samples (NaN where it fails).

    Warnings are not repeated: the full-data score already reported them.

    Parameters
    ----------
    run : CheckpointRun
        An ``"ok"`` run with its features (and source probabilities) in memory.
    name : str
        A measure that reads features or source probabilities (not the model).
    options : mapping
        The measure's keyword options.
    indices : sequence of ndarray
        Sample indices of each resample (:func:`resample_indices`).

    Returns
    -------
    list of float
        One score per resample.
    """
    from ckptrank.measures import get_measure, score

    spec = get_measure(name)
    features = None if run.features is None else np.asarray(run.features)
    probs = None if run.source_probs is None else np.asarray(run.source_probs)
    labels = np.asarray(run.labels)
    values = []
    for idx in indices:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                value = score(
                    name,
                    features[idx] if "features" in spec.requires and features is not None else None,
                    labels[idx],
                    source_probs=probs[idx]
                    if "source_probs" in spec.requires and probs is not None
                    else None,
                    **options,
                )
            except (ValueError, ArithmeticError, RuntimeError):
                value = math.nan
        values.append(float(value) if math.isfinite(value) else math.nan)
    return values


@dataclass
class CheckpointScores:
    """What a checkpoint unit returns: the run's summary and its scores, without the features.

    Attributes
    ----------
    spec : str
    status : str
        ``"ok"``, ``"failed"`` or ``"skipped"`` (see :class:`CheckpointRun`).
    error : str or None
    name, weights, revision : str or None
        The loaded checkpoint's name, where its weights came from and the pinned hub commit.
    has_head : bool or None
    num_parameters : int or None
    source_accuracy : float or None
    feature_dim : int or None
    from_cache : bool or None
    load_seconds, extract_seconds : float
    scores : dict
        Measure -> score (NaN when skipped or failed), for every requested measure when the run
        is ``"ok"``, else empty.
    seconds : dict
        Measure -> seconds spent scoring it.
    measure_notes : dict
        Measure -> the notes its scoring added (why it was skipped, failed or warned).
    notes : list of str
        Every note of the run, in order.
    key : str or None
        The unit's content key (:func:`unit_key`), when the caller gave one.
    resampled : dict
        Measure -> its jackknife draws on the resamples of the target set (:func:`resample_indices`,
        :func:`jackknife_values`), for the measures asked to be resampled that scored the full
        set; else empty.
    resample_seconds : float
        Seconds spent on the resamples (not part of :attr:`score_seconds`).
    """

    spec: str
    status: str
    error: str | None
    name: str | None
    weights: str | None
    revision: str | None
    has_head: bool | None
    num_parameters: int | None
    source_accuracy: float | None
    feature_dim: int | None
    from_cache: bool | None
    load_seconds: float
    extract_seconds: float
    scores: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    measure_notes: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    key: str | None = None
    resampled: dict[str, list[float]] = field(default_factory=dict)
    resample_seconds: float = 0.0

    @property
    def score_seconds(self) -> float:
        """Seconds spent scoring, all measures together."""
        return float(sum(self.seconds.values()))


def score_measures(
    run: CheckpointRun,
    names: Sequence[str],
    options: Mapping[str, Mapping[str, Any]],
    on_error: OnError,
    *,
    score: Callable[..., tuple[dict[str, float], float]] | None = None,
    resamples: int = 0,
    resample_measures: Sequence[str] = (),
    seed: int = 0,
) -> CheckpointScores:
    """Score a run with each measure in turn and release its features.

    Each measure is scored by ``score(run, [name], options, on_error)`` (default
    :func:`score_run`), so its time and notes are its own. A run that is not ``"ok"`` is scored
    with nothing. The run's features, probabilities and model are dropped afterwards.

    Parameters
    ----------
    resamples : int
        Number of stratified subsamples of the target set (:func:`resample_indices`, drawn with
        ``seed``) on which each measure of ``resample_measures`` that scored the full set is
        scored again (:func:`score_resamples`), kept as :func:`jackknife_values`; 0 = none.

    Returns
    -------
    CheckpointScores
    """
    score = score_run if score is None else score
    scores: dict[str, float] = {}
    seconds: dict[str, float] = {}
    measure_notes: dict[str, list[str]] = {}
    resampled: dict[str, list[float]] = {}
    resample_seconds = 0.0
    if run.status == "ok":
        for name in names:
            before = len(run.notes)
            scored, spent = score(run, [name], options, on_error)
            scores[name] = scored[name]
            seconds[name] = float(spent)
            measure_notes[name] = list(run.notes[before:])
        wanted = [n for n in resample_measures if n in scores and math.isfinite(scores[n])]
        n_samples = 0 if run.labels is None else int(np.shape(run.labels)[0])
        start = time.perf_counter()
        indices = []
        if resamples > 0 and wanted and n_samples:
            indices = resample_indices(run.labels, resamples, seed)
        if indices and indices[0].size >= n_samples:
            indices = []  # too few samples per class to leave any out: nothing to resample
        if indices:
            for name in wanted:
                values = score_resamples(run, name, options.get(name, {}), indices)
                resampled[name] = jackknife_values(scores[name], values, n_samples, int(indices[0].size))
            resample_seconds = time.perf_counter() - start
    run.features = run.source_probs = run.model = None
    return CheckpointScores(
        spec=run.spec,
        status=run.status,
        error=run.error,
        name=run.name,
        weights=run.weights,
        revision=run.revision,
        has_head=run.has_head,
        num_parameters=run.num_parameters,
        source_accuracy=run.source_accuracy,
        feature_dim=run.feature_dim,
        from_cache=run.from_cache,
        load_seconds=run.load_seconds,
        extract_seconds=run.extract_seconds,
        scores=scores,
        seconds=seconds,
        measure_notes=measure_notes,
        notes=list(run.notes),
        resampled=resampled,
        resample_seconds=resample_seconds,
    )


def checkpoint_unit(
    dataset: Any,
    spec: str,
    *,
    names: Sequence[str],
    options: Mapping[str, Mapping[str, Any]],
    cache: Any,
    device: str | None = None,
    batch_size: int = 64,
    progress: Any = None,
    trust_checkpoint: bool = False,
    on_error: OnError = "record",
    needs_features: bool = True,
    needs_model: bool = False,
    load: Callable[..., Any] | None = None,
    extract: Callable[..., Any] | None = None,
    score: Callable[..., tuple[dict[str, float], float]] | None = None,
    resamples: int = 0,
    resample_measures: Sequence[str] = (),
    seed: int = 0,
) -> CheckpointScores:
    """Load one checkpoint, extract its features on ``dataset`` into the cache, score each measure.

    The unit ``rank`` and ``bench`` map over checkpoints. It is a pure function of its inputs:
    its only side effect is the feature-cache entry of (checkpoint, dataset), written atomically
    under a content key, so a re-run (a retried task after a worker died) finds or rewrites the
    same single entry and returns the same scores.

    Parameters
    ----------
    dataset : TargetDataset
        The target data.
    spec : str
        The checkpoint spec.
    names : sequence of str
        Measures to score.
    options : mapping
        ``{measure: {option: value}}`` (resolved: stochastic measures carry their seed).
    cache : FeatureCache or None
        The feature cache; on a cluster its folder must be on storage every worker sees.
    device, batch_size, progress, trust_checkpoint, on_error, needs_features, needs_model
        As in :func:`run_checkpoint`.
    load, extract, score : callable, optional
        Replacements for :func:`load_checkpoint`, :func:`extract_features` and :func:`score_run`.
    resamples, resample_measures, seed
        Re-score these measures on ``resamples`` subsamples of the target set drawn
        with ``seed`` (see :func:`score_measures`); the same resamples for every checkpoint.

    Returns
    -------
    CheckpointScores
        With ``key`` the unit's content key.
    """
    run = run_checkpoint(
        dataset,
        spec,
        needs_features=needs_features,
        cache=cache,
        device=device,
        batch_size=batch_size,
        progress=progress,
        trust_checkpoint=trust_checkpoint,
        on_error=on_error,
        needs_model=needs_model,
        load=load,
        extract=extract,
    )
    result = score_measures(
        run,
        names,
        options,
        on_error,
        score=score,
        resamples=resamples,
        resample_measures=resample_measures,
        seed=seed,
    )
    fingerprint = getattr(dataset, "fingerprint", None)
    result.key = unit_key(
        "checkpoint",
        dataset=fingerprint() if callable(fingerprint) else None,
        subsample=getattr(dataset, "subsample", None),
        spec=spec,
        measures=list(names),
        options={name: dict(options.get(name, {})) for name in names},
        device=device or "cpu",
        batch_size=batch_size,
        **(
            {"resamples": resamples, "resample_measures": list(resample_measures), "seed": seed}
            if resamples
            else {}
        ),
    )
    return result
