"""Rank checkpoints for a target task: extract features through the cache, score, combine.

:func:`rank` is the library behind ``ckptrank rank``: it loads the target data (training
split), runs every checkpoint once over it (features, plus source-class probabilities when the
checkpoint has a head), scores the outputs with each requested measure and returns one row per
checkpoint with the per-measure scores, the rank and two target-blind baselines (parameter
count, and the source accuracy the checkpoint's card states).

Rank column
    With the default measures, :func:`ckptrank.combine.answer_column` (the default ranker over
    the measures and the parameter count); with measures the user chose,
    :func:`ckptrank.combine.consensus_column` (their mean rank). The benchmark evaluates the
    same functions.

Failures
    A checkpoint that cannot be loaded or run is kept as a row with ``status="failed"`` and the
    reason in ``error`` and the notes; the others are still ranked. :func:`rank` raises only
    when every checkpoint failed, or when no requested measure could score any checkpoint.

Modules
    The arguments are read by :mod:`ckptrank.specs` (checkpoint specs, measures and their
    options) and the target data loaded by :mod:`ckptrank.targets`; this module runs and scores
    the checkpoints (:func:`iter_runs`, :func:`score_run`, also used by the benchmark harness)
    and puts the table together. :mod:`ckptrank.ranking_output` writes a result of :func:`rank`
    to files, and :mod:`ckptrank.ensemble_choice` runs the checkpoints for SFDA ensemble selection.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import math
import platform
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ckptrank import pipeline, targets
from ckptrank.combine import DEFAULT_MEASURES, DEFAULT_RESAMPLES
from ckptrank.specs import check_specs, parse_models, resolve_measure_options, resolve_measures
from ckptrank.targets import OnUnreadable

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_MEASURES",
    "DEFAULT_RESAMPLES",
    "LEADING_COLUMNS",
    "TRAILING_COLUMNS",
    "extract_features",
    "iter_runs",
    "load_checkpoint",
    "make_cache",
    "map_checkpoints",
    "none_if_nan",
    "package_versions",
    "rank",
    "score_run",
]

#: Columns that precede and follow the per-measure score columns of a ranking.
LEADING_COLUMNS = ("rank", "checkpoint")
TRAILING_COLUMNS = (
    "consensus_rank",
    "ranker_score",
    "p_best",
    "shortlist",
    "seconds",
    "num_parameters",
    "source_accuracy",
    "num_parameters_rank",
    "source_accuracy_rank",
    "status",
    "error",
    "has_head",
    "feature_dim",
    "from_cache",
    "extract_seconds",
    "score_seconds",
)

OnError = Literal["record", "raise"]


# --------------------------------------------------------------------------------------------
# Seams to the other layers (they look the engine up when called, so that ``import ckptrank``
# stays light and tests can replace them here).


def load_checkpoint(spec: str, *, trust_checkpoint: bool, device: str | None) -> Any:
    """Load one checkpoint: the loader :func:`iter_runs` and :func:`rank` use (tests replace it here).

    Calls :func:`ckptrank.pipeline.load_checkpoint`.

    Parameters
    ----------
    spec : str
        The checkpoint spec.
    trust_checkpoint : bool
        Allow checkpoint files that execute code (pickles).
    device : str, optional
        Where the checkpoint runs (default CPU).

    Returns
    -------
    ckptrank.adapters.Checkpoint
    """
    return pipeline.load_checkpoint(spec, trust_checkpoint=trust_checkpoint, device=device)


def make_cache(cache_dir: str | Path | None) -> Any:
    """The feature cache, after checking that entries can be written there (one clear error if not).

    Parameters
    ----------
    cache_dir : str or path, optional
        The cache folder (None: the cache's default, ``$CKPTRANK_CACHE``).

    Returns
    -------
    ckptrank.engine.cache.FeatureCache

    Raises
    ------
    CacheNotWritableError
        The folder cannot hold new entries (an ``OSError`` naming the folder and the fix).
    """
    return pipeline.open_cache(cache_dir)


def extract_features(
    checkpoint: Any, dataset: Any, *, batch_size: int, device: str | None, cache: Any, progress: bool | None
) -> Any:
    """Features of a checkpoint on the target data: the extraction :func:`iter_runs` and :func:`rank` use.

    Calls :func:`ckptrank.pipeline.extract_features` (through the feature cache); tests replace it here.

    Parameters
    ----------
    checkpoint : ckptrank.adapters.Checkpoint
        A loaded checkpoint.
    dataset : ckptrank.data.TargetDataset
        The target data (``labels`` of shape ``(n_samples,)``).
    batch_size : int
        Extraction batch size.
    device : str, optional
        Where the checkpoint runs (default CPU).
    cache : FeatureCache or None
        The feature cache (None: extract without caching).
    progress : bool, optional
        Draw a progress bar (None: the engine's default).

    Returns
    -------
    ckptrank.engine.extraction.Extraction
        ``features`` of shape ``(n_samples, feature_dim)``, ``source_probs`` of shape
        ``(n_samples, n_source_classes)`` or None, ``labels``, ``seconds`` and ``from_cache``.
    """
    return pipeline.extract_features(
        checkpoint, dataset, batch_size=batch_size, device=device, cache=cache, progress=progress
    )


# --------------------------------------------------------------------------------------------
# Running the checkpoints.


def iter_runs(
    dataset: Any,
    specs: Sequence[str],
    *,
    needs_features: bool,
    cache: Any,
    device: str | None,
    batch_size: int,
    progress: Any,
    trust_checkpoint: bool,
    on_error: OnError,
    needs_model: bool = False,
) -> Iterator[pipeline.CheckpointRun]:
    """Load and run each checkpoint in turn; a failing one yields a ``failed`` run.

    Each checkpoint goes through :func:`ckptrank.pipeline.run_checkpoint` with :func:`load_checkpoint`
    and :func:`extract_features`. With ``needs_model`` the yielded run also holds the loaded
    checkpoint and the raw samples (``run.model``, a :class:`~ckptrank.capacitance.backbone.ModelInput`)
    until the next one loads.

    Parameters
    ----------
    dataset : ckptrank.data.TargetDataset
        The target data (``labels`` of shape ``(n_samples,)``), as :func:`ckptrank.targets.load_target`
        returns it.
    specs : sequence of str
        Checkpoint specs, run in this order.
    needs_features : bool
        Whether a measure reads the features (without it nor ``needs_model``, a checkpoint
        without a head is ``"skipped"``).
    cache : FeatureCache or None
        The feature cache (:func:`make_cache`; None: extract without caching).
    device : str, optional
        Where the checkpoints run (default CPU).
    batch_size : int
        Extraction batch size.
    progress : optional
        Passed to the extraction engine (None = its default).
    trust_checkpoint : bool
        Allow checkpoint files that execute code (pickles).
    on_error : {"record", "raise"}
        ``"record"`` yields a failing checkpoint as a ``failed`` run; ``"raise"`` re-raises.
    needs_model : bool, default False
        Whether a measure fine-tunes the checkpoint on the raw samples.

    Yields
    ------
    ckptrank.pipeline.CheckpointRun
        One run per spec, in order: ``status``, ``features`` of shape
        ``(n_samples, feature_dim)``, ``source_probs``, ``labels`` and timings.
    """
    for spec in specs:
        run = pipeline.run_checkpoint(
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
            load=load_checkpoint,
            extract=extract_features,
        )
        yield run
        run.model = None


def map_checkpoints(
    unit: Callable[..., Any],
    dataset: Any,
    specs: Sequence[str],
    *,
    executor: Any,
    device: str | None,
    progress: Any,
    **options: Any,
) -> list[Any]:
    """``unit(dataset, spec, device=..., progress=..., **options)`` for every spec, on ``executor``.

    The plan ``rank`` and ``ensemble`` hand to an executor: one unit per checkpoint (e.g.
    :func:`ckptrank.pipeline.checkpoint_unit` or :func:`ckptrank.pipeline.run_checkpoint`), the
    results in the order of ``specs``. On a remote executor the units draw no progress bars and
    the target data's fingerprint is computed once here, not in every task; each unit reserves
    a GPU when ``device`` is CUDA. An executor made here from a name is closed afterwards.

    Parameters
    ----------
    unit : callable
        ``unit(dataset, spec, *, device, progress, **options)``; picklable for a remote executor.
    dataset : TargetDataset
    specs : sequence of str
    executor : {"local", "ray"}, Executor or None
    device : str, optional
    progress : optional
        Progress for local units (ignored by remote ones).
    **options
        More keyword arguments of ``unit``.

    Returns
    -------
    list
        One result per spec, in order.
    """
    from ckptrank.executors import resolve_executor

    runner, own_executor = resolve_executor(executor)
    # bars drawn in worker processes would only clutter their logs
    bound = functools.partial(
        unit, dataset, device=device, progress=False if runner.remote else progress, **options
    )
    try:
        if runner.remote and callable(getattr(dataset, "fingerprint", None)):
            dataset.fingerprint()  # memoised: computed once here, not in every task
        return runner.map(bound, specs, gpu=str(device or "cpu").startswith("cuda"))
    finally:
        if own_executor:
            runner.close()


# --------------------------------------------------------------------------------------------
# Scoring and ranking.


def score_run(
    run: pipeline.CheckpointRun,
    names: Sequence[str],
    options: Mapping[str, Mapping[str, Any]],
    on_error: OnError,
) -> tuple[dict[str, float], float]:
    """Score one run with every measure; skipped or failed measures give NaN and a note.

    Parameters
    ----------
    run : ckptrank.pipeline.CheckpointRun
        A run of :func:`iter_runs` (its notes are appended to).
    names : sequence of str
        The measures, as :func:`ckptrank.specs.resolve_measures` returns them.
    options : mapping
        Measure -> keyword options (:func:`ckptrank.specs.resolve_measure_options`).
    on_error : {"record", "raise"}
        ``"record"`` turns a failing measure into NaN and a note; ``"raise"`` re-raises.

    Returns
    -------
    scores : dict of str to float
        Measure -> score (NaN when skipped, failed or not finite).
    seconds : float
        Time spent scoring.
    """
    return pipeline.score_run(run, names, options, on_error)


def package_versions() -> dict[str, str]:
    """Versions of ckptrank, Python and the numeric libraries, for a result's configuration.

    Returns
    -------
    dict of str to str
        ``ckptrank``, ``numpy``, ``python``, ``torch``, ``scipy`` and ``pandas`` -> version
        (``"not installed"`` for a missing library).
    """
    import ckptrank

    versions = {
        "ckptrank": ckptrank.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    for module in ("torch", "scipy", "pandas"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:  # pragma: no cover - torch is a dependency
            versions[module] = "not installed"
    return versions


def none_if_nan(value: Any) -> Any:
    """A score as a JSON-ready value: None for None, NaN or infinity; numpy scalars as Python ones.

    Parameters
    ----------
    value : object
        A score, rank or flag (Python or numpy scalar); anything else is returned unchanged.

    Returns
    -------
    object

    Examples
    --------
    >>> none_if_nan(float("nan")) is None
    True
    >>> none_if_nan(np.int64(3)), none_if_nan(np.float32(0.5)), none_if_nan(np.bool_(True))
    (3, 0.5, True)
    """
    if value is None:
        return None
    try:
        if isinstance(value, float | np.floating) and not math.isfinite(float(value)):
            return None
    except TypeError:
        return value
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def rank(
    data: Any,
    models: str | Path | Sequence[str],
    *,
    measures: str | Sequence[str] | None = None,
    per_class: int | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    batch_size: int = 64,
    measure_options: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Any = None,
    trust_checkpoint: bool = False,
    on_error: OnError = "record",
    allow_code: bool = False,
    on_unreadable: OnUnreadable = "fail",
    executor: Any = None,
    resamples: int | None = None,
) -> pd.DataFrame:
    """Rank checkpoints for a target task by transferability measures.

    Parameters
    ----------
    data : str or dataset
        Target data spec (e.g. ``"builtin:fashion-mnist"``, an image folder, a CSV of texts, a
        ``.npz`` of features), or an already loaded dataset with ``.labels``. Only its training
        split is used.
    models : str, path or sequence of str
        Checkpoint specs: a list, a comma-separated string, or a file with one spec per line
        (``#`` comments); see :func:`ckptrank.specs.parse_models` for the splitting rules.
    measures : str or sequence of str, optional
        Measure names (comma-separated or a list; ``"all"`` = every static measure). Default
        :data:`DEFAULT_MEASURES`, combined by the shipped default ranker
        (:func:`ckptrank.combine.answer_column`); given measures are combined by their
        consensus (mean rank). Measures needing source probabilities are skipped, with a note,
        for checkpoints without a classification head.
    per_class : int, optional
        Use at most this many training samples per class (seeded subsample).
    seed : int
        Seed of the subsample and ``random_state`` of the stochastic measures (unless given in
        ``measure_options``).
    cache_dir : str or path, optional
        Feature-cache folder (default: the cache's own default, ``$CKPTRANK_CACHE``). It must be
        writable; this is checked before any work.
    device : str, optional
        Where the checkpoints run (default CPU).
    batch_size : int
        Extraction batch size.
    measure_options : dict, optional
        ``{measure: {option: value}}`` passed to the measures.
    progress : optional
        Passed to the extraction engine (None = its default).
    trust_checkpoint : bool
        Allow loading checkpoint files that execute code (pickles); implies ``allow_code``.
    on_error : {"record", "raise"}
        ``"record"`` keeps a failing checkpoint or measure as a note; ``"raise"`` re-raises.
    allow_code : bool
        Allow ``py:`` specs read from a models file (they run Python code the file names).
    on_unreadable : {"fail", "skip"}
        Missing or unreadable image files of the target data: raise, or drop them with a note.
    executor : {"local", "ray"}, Executor or None
        What runs the per-checkpoint units (:func:`ckptrank.pipeline.checkpoint_unit`): None or
        ``"local"`` runs them in turn in this process; ``"ray"`` or a
        :class:`~ckptrank.executors.RayExecutor` runs them as Ray tasks (then ``cache_dir`` must be
        on storage every worker sees). The result is the same whatever runs them.
    resamples : int, optional
        Stratified subsamples (80%, at most 2,000 samples) of the target set on which the default
        ranker's measures are scored again, so that ``p_best`` and the shortlist carry the target
        set's sampling noise besides the ranker's held-out error (:func:`ckptrank.pipeline.resample_indices`,
        :func:`ckptrank.pipeline.jackknife_values`; the same resamples for every checkpoint).
        Default :data:`DEFAULT_RESAMPLES` with the default ranker; 0 = the ranker's held-out
        error alone. Only the default ranker has ``p_best``, so with ``measures`` given it must
        be 0 or None.

    Returns
    -------
    pandas.DataFrame
        One row per checkpoint, best first, with columns ``rank``, ``checkpoint``, one per
        measure (the score; NaN when skipped or failed), ``consensus_rank`` (mean per-measure
        rank), ``ranker_score`` (the default ranker's score, higher = better; NaN when
        ``measures`` was given and the rank is the consensus of those measures), ``p_best``
        and ``shortlist`` (the decision: probability of being the best to fine-tune, and the
        smallest set holding the best with 90% probability; default ranker only), ``seconds``
        (load + extraction + scoring), ``num_parameters``, ``source_accuracy`` (from the
        checkpoint card, a fraction; NaN when not stated), the ranks these two baselines would
        imply, ``status`` (``"ok"``, ``"failed"`` or ``"skipped"``) and ``error``. ``df.attrs``
        holds ``notes`` (list of str), ``measures``, ``measure_ranks``, ``checkpoint_notes``,
        ``run_notes``, ``ranker`` (what made the rank column, with its held-out figure),
        ``dataset`` and ``config`` (the resolved configuration).

    Raises
    ------
    KeyError
        Unknown measure name.
    ValueError
        Bad options, fewer than 2 target classes, every checkpoint failed, or no requested measure
        could score any checkpoint.
    FileNotFoundError
        The data or the models file does not exist.
    CacheNotWritableError
        The feature cache folder cannot be written (an ``OSError``).
    """
    if on_error not in ("record", "raise"):
        raise ValueError(f"on_error must be 'record' or 'raise', got {on_error!r}")
    if not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if resamples is not None and (
        isinstance(resamples, bool) or not isinstance(resamples, int | np.integer) or resamples < 0
    ):
        raise ValueError(f"resamples must be a whole number, 0 or more, got {resamples!r}")
    if resamples and measures is not None:
        raise ValueError(
            f"resamples={resamples} needs the default ranker (its p_best), but measures were given; "
            "drop the measures, or the resamples (resamples=0)"
        )
    n_resamples = int(DEFAULT_RESAMPLES if resamples is None and measures is None else resamples or 0)
    specs = parse_models(models, allow_code=allow_code or trust_checkpoint)
    check_specs(specs)
    names = resolve_measures(measures)
    options = resolve_measure_options(names, measure_options, seed)
    from ckptrank.measures import get_measure

    measure_specs = {name: get_measure(name) for name in names}
    needs_features = any("features" in s.requires for s in measure_specs.values())
    needs_model = any("model" in s.requires for s in measure_specs.values())
    run_notes: list[str] = []
    if measures is None:
        missing = [name for name in DEFAULT_MEASURES if name not in names]
        if missing:
            run_notes.append(f"default measures not available in this installation: {', '.join(missing)}")

    cache = make_cache(cache_dir)  # an unwritable cache is one error now, not a failure per checkpoint
    dataset = targets.load_target(data, per_class, seed, on_unreadable)
    run_notes.extend(targets.dataset_notes(dataset, per_class, seed))
    if getattr(dataset, "modality", None) == "features" and len(specs) > 1:
        run_notes.append(
            "the target data are precomputed features: every checkpoint is scored on the same features"
        )

    results = map_checkpoints(
        pipeline.checkpoint_unit,
        dataset,
        specs,
        executor=executor,
        device=device,
        progress=progress,
        names=names,
        options=options,
        cache=cache,
        batch_size=batch_size,
        trust_checkpoint=trust_checkpoint,
        on_error=on_error,
        needs_features=needs_features,
        needs_model=needs_model,
        load=load_checkpoint,
        extract=extract_features,
        score=score_run,
        resamples=n_resamples,
        resample_measures=_resample_measures(names) if n_resamples else (),
        seed=seed,
    )
    rows: list[dict[str, Any]] = []
    checkpoint_notes: dict[str, list[str]] = {}
    resolved: dict[str, dict[str, str | None]] = {}
    for result in results:
        row, notes = _row_for(result, names)
        rows.append(row)
        checkpoint_notes[result.spec] = list(dict.fromkeys(notes))
        resolved[result.spec] = {"name": result.name, "weights": result.weights, "revision": result.revision}
    frame, consensus_measures, ranks_by_checkpoint, combined = _combine(
        rows,
        names,
        measure_specs,
        checkpoint_notes,
        run_notes,
        use_default_ranker=measures is None,
        n_classes=int(np.unique(np.asarray(dataset.labels)).size),
        options=options,
        resampled=_resampled_table(results, n_resamples),
    )
    if n_resamples and combined.p_best is not None and not any(r.resampled for r in results):
        run_notes.append(
            "p(best) comes from the default ranker's held-out error alone: no resample of the target set "
            "could be scored (the target set is too small to resample when 80% of every class keeps all its "
            "samples)"
        )
        n_resamples = 0
    if n_resamples and combined.p_best is not None:
        spent = sum(r.resample_seconds for r in results)
        run_notes.append(
            f"p(best) averages the default ranker's probability over {n_resamples} jackknife resamples "
            f"(subsamples of 80%, at most 2,000 samples) of the target set ({spent:.1f} s of scoring; "
            "--resamples 0 skips them)"
        )

    flat_notes = run_notes + _grouped_notes(checkpoint_notes)

    config = {
        "data": targets.data_name(data, dataset),
        "split": getattr(dataset, "split", "train"),
        "models": specs,
        "checkpoints": resolved,
        "measures": names,
        "measure_options": options,
        "consensus_measures": consensus_measures,
        "ranker": combined.method,
        "per_class": per_class,
        "seed": seed,
        "resamples": n_resamples,
        "batch_size": batch_size,
        "device": device or "cpu",
        "cache_dir": _cache_root(cache, cache_dir),
        "trust_checkpoint": trust_checkpoint,
        "allow_code": allow_code,
        "on_unreadable": on_unreadable,
        "versions": package_versions(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    frame.attrs["notes"] = flat_notes
    frame.attrs["run_notes"] = run_notes
    frame.attrs["checkpoint_notes"] = checkpoint_notes
    frame.attrs["measures"] = names
    frame.attrs["consensus_measures"] = consensus_measures
    frame.attrs["ranker"] = combined.method
    frame.attrs["higher_is_better"] = {name: measure_specs[name].higher_is_better for name in names}
    frame.attrs["measure_ranks"] = ranks_by_checkpoint
    frame.attrs["dataset"] = targets.dataset_summary(data, dataset)
    frame.attrs["config"] = config
    return frame


def _resample_measures(names: Sequence[str]) -> list[str]:
    """The measures the default ranker reads, among ``names`` (the ones worth resampling)."""
    from ckptrank.combine import default_ranker

    return [name for name in names if name in default_ranker().features]


def _resampled_table(results: Sequence[pipeline.CheckpointScores], n_resamples: int) -> dict[str, np.ndarray]:
    """Measure -> scores of shape (n_resamples, n_checkpoints) (NaN where a checkpoint has none)."""
    if not n_resamples:
        return {}
    names = list(dict.fromkeys(name for r in results for name in r.resampled))
    table = {}
    for name in names:
        values = np.full((n_resamples, len(results)), np.nan)
        for j, result in enumerate(results):
            scores = result.resampled.get(name)
            if scores is not None and len(scores) == n_resamples:
                values[:, j] = scores
        table[name] = values
    return table


def _row_for(result: pipeline.CheckpointScores, names: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """The table row of one checkpoint unit's result, and the checkpoint's notes."""
    notes = list(result.notes)
    scores = dict.fromkeys(names, math.nan)
    score_seconds = 0.0
    if result.status == "ok":
        scores.update(result.scores)
        score_seconds = result.score_seconds
    elif result.status == "skipped":
        notes.append(
            f"not run: every requested measure ({', '.join(names)}) needs a classification head, "
            "which this checkpoint does not have"
        )
    else:
        notes.append(f"failed: {result.error}")
    ok = result.status == "ok"
    row = {
        "checkpoint": result.spec,
        **scores,
        "seconds": result.load_seconds + result.extract_seconds + score_seconds if ok else math.nan,
        "num_parameters": result.num_parameters,
        "source_accuracy": result.source_accuracy if result.source_accuracy is not None else math.nan,
        "status": result.status,
        "error": result.error,
        "has_head": result.has_head,
        "feature_dim": result.feature_dim,
        "from_cache": result.from_cache,
        "extract_seconds": result.extract_seconds if ok else math.nan,
        "score_seconds": score_seconds if ok else math.nan,
    }
    return row, notes


def _combine(
    rows: list[dict[str, Any]],
    names: Sequence[str],
    measure_specs: Mapping[str, Any],
    checkpoint_notes: Mapping[str, list[str]],
    run_notes: list[str],
    use_default_ranker: bool = False,
    n_classes: int | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    resampled: Mapping[str, np.ndarray] | None = None,
) -> tuple[pd.DataFrame, list[str], dict[str, dict[str, Any]], Any]:
    """Per-measure ranks, the rank column (default ranker or consensus), baselines and final
    order; appends run-level notes. ``resampled`` (measure -> (n_resamples, n_checkpoints) in the
    order of ``rows``) feeds the default ranker's ``p_best``."""
    import pandas as pd

    if all(row["status"] == "failed" for row in rows):
        reasons = "; ".join(f"{row['checkpoint']}: {row['error']}" for row in rows)
        what = "the checkpoint" if len(rows) == 1 else f"all {len(rows)} checkpoints"
        raise ValueError(f"{what} failed: {reasons}")
    frame = pd.DataFrame(rows)
    ok = (frame["status"] == "ok").to_numpy()
    scored = {name: np.isfinite(frame[name].to_numpy(dtype=float)) & ok for name in names}
    if not any(mask.any() for mask in scored.values()):
        raise ValueError(_nothing_scored_message(names, measure_specs, frame, checkpoint_notes))
    from ckptrank.combine import answer_column, consensus_column, measure_ranks
    from ckptrank.measures import snap_saturated

    dims = pd.to_numeric(frame["feature_dim"], errors="coerce").to_numpy(dtype=float)
    for name in names:
        # scores at a measure's maximum tie exactly instead of being ordered by round-off
        try:
            snapped, note = snap_saturated(
                name,
                frame[name].to_numpy(dtype=float),
                n_classes=n_classes,
                n_features=dims,
                options=(options or {}).get(name, {}),
            )
        except ValueError:
            continue
        frame[name] = snapped
        if note:
            run_notes.append(note)
    resampled = {name: np.array(values, dtype=float) for name, values in (resampled or {}).items()}
    for name, values in resampled.items():
        for b in range(values.shape[0]):
            with contextlib.suppress(ValueError):
                values[b] = snap_saturated(
                    name,
                    values[b],
                    n_classes=n_classes,
                    n_features=dims,
                    options=(options or {}).get(name, {}),
                    clip=True,  # a rescaled draw can overshoot the maximum; it must not outrank it
                )[0]
    measure_scores = {name: frame[name].to_numpy(dtype=float) for name in names}
    directions = {name: measure_specs[name].higher_is_better for name in names}
    if use_default_ranker:
        combined = answer_column(
            measure_scores,
            directions,
            num_parameters=frame["num_parameters"].to_numpy(dtype=float, na_value=np.nan),
            has_head=np.array([np.nan if h is None else float(h) for h in frame["has_head"]]),
            ok=ok,
            resampled=resampled,
        )
    else:
        combined = consensus_column(measure_scores, directions, ok)
    run_notes.insert(0, f"rank: {combined.method}")
    run_notes.extend(combined.notes)
    ranks_by_checkpoint = {
        spec: {name: none_if_nan(combined.ranks[name][i]) for name in names}
        for i, spec in enumerate(frame["checkpoint"])
    }
    consensus_measures = combined.measures
    frame["consensus_rank"] = combined.consensus
    frame["ranker_score"] = combined.ranker_score if combined.ranker_score is not None else np.nan
    frame["p_best"] = combined.p_best if combined.p_best is not None else np.nan
    frame["shortlist"] = combined.shortlist if combined.shortlist is not None else False
    frame["rank"] = combined.rank
    for column in ("num_parameters", "source_accuracy"):
        values = frame[column].to_numpy(dtype=float, na_value=np.nan)
        frame[f"{column}_rank"] = measure_ranks(np.where(ok, values, np.nan), higher_is_better=True)
    position = np.nan_to_num(frame["rank"].to_numpy(dtype=float), nan=np.inf)
    frame = frame.iloc[np.lexsort((np.arange(len(frame)), position))].reset_index(drop=True)
    frame["num_parameters"] = frame["num_parameters"].astype("Int64")
    frame["rank"] = frame["rank"].astype("Int64")
    ordered = frame[[*LEADING_COLUMNS, *names, *TRAILING_COLUMNS]]
    return ordered, consensus_measures, ranks_by_checkpoint, combined


def _grouped_notes(checkpoint_notes: Mapping[str, list[str]]) -> list[str]:
    """``"a, b: text"`` for each distinct note, naming every checkpoint it applies to (first-seen order)."""
    owners: dict[str, list[str]] = {}
    for spec, notes in checkpoint_notes.items():
        for note in notes:
            owners.setdefault(note, []).append(spec)
    return [f"{', '.join(specs)}: {note}" for note, specs in owners.items()]


def _cache_root(cache: Any, cache_dir: str | Path | None) -> str | None:
    root = getattr(cache, "root", None) or cache_dir
    return None if root is None else str(root)


def _nothing_scored_message(
    names: Sequence[str], specs: Mapping[str, Any], frame: Any, notes: Mapping[str, list[str]]
) -> str:
    head_only = all("source_probs" in specs[name].requires for name in names)
    if head_only:
        return (
            f"{', '.join(names)} need{'s' if len(names) == 1 else ''} the source-class probabilities of a "
            "classification head, and none of the checkpoints has one (or an intermediate layer was chosen); "
            "choose a feature-based measure such as logme or sfda"
        )
    reasons = []
    for spec in frame["checkpoint"]:
        for note in notes.get(spec, []):
            reasons.append(f"{spec}: {note}")
    detail = "; ".join(reasons[:4]) or "no details"
    return f"no requested measure could score any checkpoint ({detail})"
