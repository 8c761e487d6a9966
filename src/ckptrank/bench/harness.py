"""The benchmark harness: score a suite through the feature cache and the results store, then evaluate.

:func:`score_suite` runs every checkpoint of a suite over every task's training data (features
come from the :class:`~ckptrank.engine.cache.FeatureCache`), scores them with each measure and
records every score with its time in the :class:`~ckptrank.bench.store.ResultsStore`, keyed by
(suite, task, checkpoint, measure, options). A re-run reads finished scores from the store and
loads only the checkpoints that still miss a score, so an interrupted run resumes where it
stopped and a warm run costs no extraction at all. The options part of the key holds the
measure's resolved options and what determines the features (data spec, per-class budget, seed,
checkpoint spec), so changing any of them scores afresh instead of reusing a stale number. A
failed checkpoint (it did not load or run) is reported and not recorded, so the next run retries
it; a measure that fails or is skipped on a checkpoint is recorded with its reason.

:func:`bench` is the library behind ``ckptrank bench``: it scores the suite (or takes an external
score table, or the suite's published one), evaluates the scores with
:func:`ckptrank.bench.evaluate.evaluate_suite` and records the evaluation in the store.

Static baselines (parameter count, source accuracy from the checkpoint's card) come from the
suite, or are collected from the loaded checkpoints and recorded in the store (task ``"*"``,
measures ``baseline:num_parameters`` and ``baseline:source_accuracy``).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from ckptrank.executors import resolve_executor

from .evaluate import Evaluation, evaluate_suite, read_scores
from .store import ResultsStore, canonical_json, open_store
from .suite import BASELINE_COLUMNS, Suite, check_code_allowed, get_suite, normalize_name

if TYPE_CHECKING:
    from ckptrank.pipeline import CheckpointRun

__all__ = [
    "DEFAULT_ROW",
    "DEFAULT_ROW_IN_SAMPLE",
    "PUBLISHED_ROW",
    "PUBLISHED_ROW_IN_SAMPLE",
    "BenchResult",
    "ScoredSuite",
    "bench",
    "default_answer",
    "record_evaluation",
    "score_suite",
]

#: Name of the row that evaluates the ``rank`` column of ``ckptrank rank`` with default options.
DEFAULT_ROW = "ckptrank rank (default)"
#: Its name on a suite the default ranker was fitted on (the figure is then in-sample; the shipped
#: agreement ranker is fitted on none, a fitted ranker file may be).
DEFAULT_ROW_IN_SAMPLE = "ckptrank rank (default, in-sample)"
#: Name of the row that runs the default ranker on a published score table (the measures it lacks are
#: left out, as in the held-out evaluation), and its name on a suite the ranker was fitted on.
PUBLISHED_ROW = "default ranker (published)"
PUBLISHED_ROW_IN_SAMPLE = "default ranker (published, in-sample)"

logger = logging.getLogger(__name__)

_BASELINE_PREFIX = "baseline:"
_ALL_TASKS = "*"


@dataclass
class ScoredSuite:
    """Result of :func:`score_suite`.

    Attributes
    ----------
    scores : pandas.DataFrame
        Long table ``task, checkpoint, measure, score, seconds, error`` (score NaN when the
        measure failed or was skipped; ``error`` says why).
    baselines : pandas.DataFrame
        Indexed by checkpoint: ``num_parameters`` and ``source_accuracy`` collected from the
        loaded checkpoints (NaN where unknown).
    runs : pandas.DataFrame
        One row per (task, checkpoint) loaded in this call: ``load_seconds``,
        ``extract_seconds``, ``from_cache``, ``status``, ``error``.
    notes : list of str
    measures : list of str
    options : dict
        Measure -> resolved keyword options.
    """

    scores: pd.DataFrame
    baselines: pd.DataFrame
    runs: pd.DataFrame
    notes: list[str]
    measures: list[str]
    options: dict[str, dict[str, Any]]


def _score_key(suite: Suite, task: str, checkpoint: str, options: Mapping[str, Any]) -> dict[str, Any]:
    spec = suite.tasks[task]
    return {
        "measure_options": dict(options),
        "data": spec.data.format(checkpoint=checkpoint) if spec.per_checkpoint else spec.data,
        "per_class": spec.per_class,
        "seed": spec.seed,
        "checkpoint_spec": None if spec.per_checkpoint else suite.checkpoints[checkpoint].spec,
    }


def _baseline_key(suite: Suite, checkpoint: str) -> dict[str, Any]:
    return {"checkpoint_spec": suite.checkpoints[checkpoint].spec}


def _open(store: ResultsStore | str | Path | None) -> tuple[ResultsStore, bool]:
    if isinstance(store, ResultsStore):
        return store, False
    return open_store(store), True


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _load_run(
    suite: Suite,
    task: str,
    checkpoint: str,
    dataset: Any,
    *,
    needs_features: bool,
    cache: Any,
    device: str | None,
    batch_size: int,
    progress: Any,
    trust_checkpoint: bool,
    on_error: str,
    needs_model: bool = False,
) -> CheckpointRun:
    """Features (and source probabilities) of one checkpoint on one task."""
    from ckptrank import pipeline, ranking, targets

    spec = suite.tasks[task]
    if spec.per_checkpoint:
        start = time.perf_counter()
        run = pipeline.CheckpointRun(spec=checkpoint)
        try:
            data = targets.load_dataset(
                spec.data.format(checkpoint=checkpoint), per_class=spec.per_class, seed=spec.seed
            )
        except (ValueError, OSError) as err:
            if on_error == "raise":
                raise
            return run.fail(err)
        run.features = np.asarray(data.features)
        run.labels = np.asarray(data.labels)
        run.has_head = False
        run.feature_dim = int(run.features.shape[1])
        run.from_cache = False
        run.extract_seconds = time.perf_counter() - start
        return run
    return next(
        ranking.iter_runs(
            dataset,
            [suite.checkpoints[checkpoint].spec],
            needs_features=needs_features,
            cache=cache,
            device=device,
            batch_size=batch_size,
            progress=progress,
            trust_checkpoint=trust_checkpoint,
            on_error=on_error,
            needs_model=needs_model,
        )
    )


_RUN_COLUMNS = ("task", "checkpoint", "status", "error", "load_seconds", "extract_seconds", "from_cache")
_SKIPPED = "skipped: needs a classification head, which this checkpoint does not have"


def _pair_unit(
    job: tuple[str, str, Sequence[str]],
    *,
    suite: Suite,
    datasets: Mapping[str, Any],
    cache: Any,
    options: Mapping[str, Mapping[str, Any]],
    needs_features: bool,
    needs_model: bool,
    device: str | None,
    batch_size: int,
    progress: Any,
    trust_checkpoint: bool,
    on_error: str,
) -> dict[str, Any]:
    """The unit of :func:`score_suite`: one checkpoint on one task, scored with the measures ``todo``.

    ``job`` is ``(task, checkpoint, todo)``. Runs wherever the executor puts it; writes only the
    feature cache. Returns the run's summary (the :data:`_RUN_COLUMNS`, ``num_parameters`` and
    ``source_accuracy``) and ``scores``, a list of ``(measure, value, seconds, error)`` (value
    NaN with the reason in ``error`` when the measure failed or was skipped); nothing is
    scored when the checkpoint failed.
    """
    from ckptrank import pipeline, ranking

    task, checkpoint, todo = job
    run = _load_run(
        suite,
        task,
        checkpoint,
        datasets.get(task),
        needs_features=needs_features,
        needs_model=needs_model,
        cache=cache,
        device=device,
        batch_size=batch_size,
        progress=progress,
        trust_checkpoint=trust_checkpoint,
        on_error=on_error,
    )
    scored = pipeline.score_measures(run, list(todo), options, on_error, score=ranking.score_run)
    scores: list[tuple[str, float, float, str | None]] = []
    if run.status == "skipped":
        scores = [(name, math.nan, 0.0, _SKIPPED) for name in todo]
    elif run.status == "ok":
        for name in todo:
            error = "; ".join(_one_line(n) for n in scored.measure_notes[name]) or None
            scores.append((name, scored.scores[name], scored.seconds[name], error))
    return {
        "task": task,
        "checkpoint": checkpoint,
        "status": run.status,
        "error": run.error,
        "load_seconds": run.load_seconds,
        "extract_seconds": run.extract_seconds,
        "from_cache": run.from_cache,
        "num_parameters": run.num_parameters,
        "source_accuracy": run.source_accuracy,
        "scores": scores,
    }


def score_suite(
    suite: str | Suite,
    measures: str | Sequence[str] | None = None,
    *,
    store: ResultsStore | str | Path | None = None,
    tasks: Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    batch_size: int = 64,
    measure_options: Mapping[str, Mapping[str, Any]] | None = None,
    seed: int = 0,
    progress: Any = None,
    trust_checkpoint: bool = False,
    on_error: Literal["record", "raise"] = "record",
    on_progress: Callable[[str], None] | None = None,
    all_pairs: bool = False,
    allow_code: bool = False,
    executor: Any = None,
) -> ScoredSuite:
    """Score the checkpoints of a suite on its tasks, resumably.

    Only the (task, checkpoint) pairs that have ground truth (in any protocol) are scored, since
    only they can be evaluated (a suite whose image checkpoints are ranked only on image tasks
    states it that way); ``all_pairs=True`` scores every pair.

    Parameters
    ----------
    suite : str or Suite
        A suite (or its registered name); every task needs data and every checkpoint a spec.
    measures : str or sequence of str, optional
        Measure names (comma-separated or a list; ``"all"`` = every static measure, the default).
    store : ResultsStore, str or path, optional
        Results store (or its path / ``sqlite:///`` URL); default :func:`open_store`'s default.
    tasks : sequence of str, optional
        Only these tasks.
    cache_dir : str or path, optional
        Feature-cache folder.
    device : str, optional
        Device of the checkpoints (default CPU).
    batch_size : int
    measure_options : mapping, optional
        ``{measure: {option: value}}``.
    seed : int
        ``random_state`` of the stochastic measures (unless given in ``measure_options``).
    progress : optional
        Extraction progress bars (None = the engine's default).
    trust_checkpoint : bool
        Allow checkpoint files that execute code when loaded.
    on_error : {"record", "raise"}
        Keep failures as notes, or re-raise them.
    on_progress : callable, optional
        Called with a one-line message before each (task, checkpoint) that needs work.
    all_pairs : bool
        Score every (task, checkpoint) pair, not only those with ground truth.
    allow_code : bool
        Allow ``py:`` checkpoints of a suite read from a JSON file (they run Python code);
        implied by ``trust_checkpoint``.
    executor : {"local", "ray"}, Executor or None
        What runs the (task, checkpoint) units: None or ``"local"`` in turn in this process,
        ``"ray"`` or a :class:`~ckptrank.executors.RayExecutor` as Ray tasks (the feature cache
        must then be on storage every worker sees). Either way the results are recorded in the
        store by this process only, as each unit finishes.

    Returns
    -------
    ScoredSuite

    Raises
    ------
    ValueError
        The suite cannot be scored here (a task without data or a checkpoint without spec),
        an unknown task, or bad options.
    KeyError
        Unknown measure or suite.
    """
    from ckptrank import ranking, targets
    from ckptrank.measures import get_measure
    from ckptrank.specs import resolve_measure_options, resolve_measures

    suite = get_suite(suite)
    check_code_allowed(suite, allow_code or trust_checkpoint)
    if not suite.can_score:
        no_data = [t for t, spec in suite.tasks.items() if spec.data is None]
        no_spec = [c for c, spec in suite.checkpoints.items() if spec.spec is None]
        detail = (
            f"tasks without data: {', '.join(no_data)}"
            if no_data
            else f"checkpoints without a spec: {', '.join(no_spec)}"
        )
        raise ValueError(
            f"suite {suite.name!r} cannot be scored here ({detail}); "
            "evaluate a score table with --scores FILE"
        )
    chosen = list(suite.tasks)
    if tasks is not None:
        unknown = [t for t in tasks if t not in suite.tasks]
        if unknown:
            raise ValueError(
                f"suite {suite.name!r} has no task {unknown[0]!r}; tasks: {', '.join(suite.tasks)}"
            )
        chosen = [t for t in suite.tasks if t in tasks]
    names = resolve_measures("all" if measures is None else measures)
    options = resolve_measure_options(names, measure_options, seed)
    specs = {name: get_measure(name) for name in names}
    needs_features = any("features" in s.requires for s in specs.values())
    needs_model = any("model" in s.requires for s in specs.values())
    results, own = _open(store)
    notes: list[str] = []
    runs: list[dict[str, Any]] = []
    try:
        existing = results.table("scores", suite=suite.name)
        done = set(
            zip(
                existing["task"],
                existing["checkpoint"],
                existing["measure"],
                existing["options"],
                strict=True,
            )
        )
        cache = None
        pairs = _pairs_to_score(suite, chosen, all_pairs)
        total = sum(len(names_) for names_ in pairs.values())
        skipped = len(chosen) * len(suite.checkpoints) - total
        if skipped:
            notes.append(
                f"{skipped} (task, checkpoint) pair(s) without ground truth were not scored "
                "(they cannot be evaluated; all_pairs=True scores them)"
            )

        def baselines_done(checkpoint: str) -> bool:
            bkey = canonical_json(_baseline_key(suite, checkpoint))
            return all(
                (_ALL_TASKS, checkpoint, f"{_BASELINE_PREFIX}{column}", bkey) in done
                for column in BASELINE_COLUMNS
            )

        # The plan: every (task, checkpoint) that misses a score or its baselines, in suite order.
        plan: list[tuple[int, str, str, tuple[str, ...]]] = []
        datasets: dict[str, Any] = {}
        dataset_notes: dict[str, list[str]] = {}
        planned_baselines: set[str] = set()
        position = 0
        for task in chosen:
            per_checkpoint = suite.tasks[task].per_checkpoint
            for checkpoint in pairs[task]:
                position += 1
                key = _score_key(suite, task, checkpoint, {})
                todo = tuple(
                    name
                    for name in names
                    if (task, checkpoint, name, canonical_json({**key, "measure_options": options[name]}))
                    not in done
                )
                want_baselines = (
                    not per_checkpoint
                    and checkpoint not in planned_baselines
                    and not baselines_done(checkpoint)
                )
                if not todo and not want_baselines:
                    continue
                if want_baselines:
                    planned_baselines.add(checkpoint)
                if task not in datasets and not per_checkpoint:
                    spec = suite.tasks[task]
                    datasets[task] = targets.load_target(spec.data, spec.per_class, spec.seed)
                    dataset_notes[task] = [
                        f"{task}: {_one_line(note)}" for note in getattr(datasets[task], "notes", None) or []
                    ]
                if cache is None and not per_checkpoint:
                    cache = ranking.make_cache(cache_dir)
                plan.append((position, task, checkpoint, todo))

        runner, own_executor = resolve_executor(executor)
        unit = functools.partial(
            _pair_unit,
            suite=suite,
            datasets=datasets,
            cache=cache,
            options=options,
            needs_features=needs_features,
            needs_model=needs_model,
            device=device,
            batch_size=batch_size,
            progress=False if runner.remote else progress,
            trust_checkpoint=trust_checkpoint,
            on_error=on_error,
        )
        try:
            # Units run on the executor; their results are recorded here, by this process alone, as
            # each arrives (in plan order), so the store is never written concurrently and an
            # interrupted run keeps what finished.
            outcomes = runner.imap(
                unit,
                [(task, checkpoint, todo) for _, task, checkpoint, todo in plan],
                gpu=str(device or "cpu").startswith("cuda"),
            )
            for position, task, checkpoint, todo in plan:
                notes.extend(dataset_notes.pop(task, []))
                if on_progress is not None:
                    on_progress(
                        f"[{position}/{total}] {task} / {checkpoint}: {', '.join(todo) or 'baselines'}"
                    )
                outcome = next(outcomes)
                runs.append({column: outcome[column] for column in _RUN_COLUMNS})
                if outcome["status"] == "failed":
                    notes.append(
                        f"{task} / {checkpoint}: failed, not recorded (a re-run retries it): "
                        f"{outcome['error']}"
                    )
                    continue
                if not suite.tasks[task].per_checkpoint and not baselines_done(checkpoint):
                    bkey = _baseline_key(suite, checkpoint)
                    for column in BASELINE_COLUMNS:
                        value = outcome[column]
                        results.add_score(
                            suite=suite.name,
                            task=_ALL_TASKS,
                            checkpoint=checkpoint,
                            measure=f"{_BASELINE_PREFIX}{column}",
                            value=None if value is None else float(value),
                            seconds=0.0,
                            options=bkey,
                        )
                        done.add(
                            (_ALL_TASKS, checkpoint, f"{_BASELINE_PREFIX}{column}", canonical_json(bkey))
                        )
                key = _score_key(suite, task, checkpoint, {})
                for name, value, seconds, error in outcome["scores"]:
                    full_key = {**key, "measure_options": options[name]}
                    results.add_score(
                        suite=suite.name,
                        task=task,
                        checkpoint=checkpoint,
                        measure=name,
                        value=float(value) if math.isfinite(value) else None,
                        seconds=float(seconds),
                        options=full_key,
                        error=error,
                    )
                    done.add((task, checkpoint, name, canonical_json(full_key)))
        finally:
            if own_executor:
                runner.close()
        table = results.table("scores", suite=suite.name)
    finally:
        if own:
            results.close()
    scores, baselines, more = _collect(suite, table, pairs, names, options)
    more.extend(_snap_saturated(suite, scores, options))
    notes.extend(more)
    return ScoredSuite(
        scores=scores,
        baselines=baselines,
        runs=pd.DataFrame(
            runs,
            columns=[
                "task",
                "checkpoint",
                "status",
                "error",
                "load_seconds",
                "extract_seconds",
                "from_cache",
            ],
        ),
        notes=list(dict.fromkeys(notes)),
        measures=names,
        options=options,
    )


def _task_classes(suite: Suite, task: str, checkpoint: str) -> int | None:
    """Number of target classes of a task (its training pool as scored), or None if unreadable."""
    from ckptrank import targets

    spec = suite.tasks[task]
    data = spec.data.format(checkpoint=checkpoint) if spec.per_checkpoint else spec.data
    try:
        dataset = targets.load_target(data, spec.per_class, spec.seed)
    except (ValueError, OSError):
        return None
    return int(np.unique(np.asarray(dataset.labels)).size)


def _snap_saturated(suite: Suite, scores: pd.DataFrame, options: Mapping[str, Any]) -> list[str]:
    """Scores at their measure's maximum set exactly to it, per task (in place), as ``rank`` does.

    A measure's maximum may depend on the number of target classes (H-score: C - 1); it is
    read from the task's data only when such a measure is among the scores.
    """
    from ckptrank.measures import get_measure, list_measures, snap_saturated

    notes: list[str] = []
    registered = set(list_measures())
    classes: dict[str, int | None] = {}
    for (task, measure), group in scores.groupby(["task", "measure"], sort=False):
        if measure not in registered or get_measure(measure).saturation is None:
            continue
        if task not in classes:
            classes[task] = _task_classes(suite, str(task), str(group["checkpoint"].iloc[0]))
        try:
            snapped, note = snap_saturated(
                str(measure),
                group["score"].to_numpy(dtype=float),
                n_classes=classes[task],
                options=options.get(str(measure), {}),
            )
        except ValueError as err:
            notes.append(f"{measure} on {task}: saturation not checked ({' '.join(str(err).split())})")
            continue
        scores.loc[group.index, "score"] = snapped
        if note:
            notes.append(f"{note} (task {task})")
    return notes


def _pairs_to_score(suite: Suite, tasks: Sequence[str], all_pairs: bool) -> dict[str, list[str]]:
    """Task -> checkpoints to score: those with ground truth (any protocol), or all."""
    if all_pairs:
        return {task: list(suite.checkpoints) for task in tasks}
    gt = suite.ground_truth
    known = set(zip(gt["task"], gt["checkpoint"], strict=True))
    return {task: [c for c in suite.checkpoints if (task, c) in known] for task in tasks}


def _collect(
    suite: Suite,
    table: pd.DataFrame,
    pairs: Mapping[str, Sequence[str]],
    names: Sequence[str],
    options: Mapping[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The scores of this configuration from the store's rows."""
    notes: list[str] = []
    index = {(r.task, r.checkpoint, r.measure, r.options): r for r in table.itertuples(index=False)}
    rows = []
    for task, checkpoints in pairs.items():
        for checkpoint in checkpoints:
            key = _score_key(suite, task, checkpoint, {})
            for name in names:
                row = index.get(
                    (task, checkpoint, name, canonical_json({**key, "measure_options": options[name]}))
                )
                if row is None:
                    continue
                value = math.nan if row.value is None or pd.isna(row.value) else float(row.value)
                error = None if row.error is None or pd.isna(row.error) else str(row.error)
                if error and not math.isfinite(value):
                    notes.append(f"{name} on {task} / {checkpoint}: {error}")
                rows.append(
                    {
                        "task": task,
                        "checkpoint": checkpoint,
                        "measure": name,
                        "score": value,
                        "seconds": float(row.seconds)
                        if row.seconds is not None and not pd.isna(row.seconds)
                        else math.nan,
                        "error": error,
                    }
                )
    base_rows = {}
    for checkpoint in suite.checkpoints:
        bkey = canonical_json(_baseline_key(suite, checkpoint))
        values = {}
        for column in BASELINE_COLUMNS:
            row = index.get((_ALL_TASKS, checkpoint, f"{_BASELINE_PREFIX}{column}", bkey))
            values[column] = (
                math.nan if row is None or row.value is None or pd.isna(row.value) else float(row.value)
            )
        base_rows[checkpoint] = values
    baselines = pd.DataFrame.from_dict(base_rows, orient="index", columns=list(BASELINE_COLUMNS)).astype(
        float
    )
    scores = pd.DataFrame(rows, columns=["task", "checkpoint", "measure", "score", "seconds", "error"])
    return scores, baselines, notes


# ------------------------------------------------------------------------------------------------
# bench


@dataclass
class BenchResult:
    """Result of :func:`bench`.

    Attributes
    ----------
    suite : Suite
    evaluation : Evaluation
    scores : pandas.DataFrame
        The evaluated score table (long format).
    source : str
        Where the scores came from: ``"scored"`` (computed here), ``"published"`` (the suite's
        published table), ``"file"`` / ``"table"`` (given by the user), or ``"none"`` (baselines
        only).
    runs : pandas.DataFrame or None
        Extraction timings of the checkpoints loaded in this call.
    notes : list of str
    config : dict
    """

    suite: Suite
    evaluation: Evaluation
    scores: pd.DataFrame
    source: str
    runs: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the suite summary, the evaluation, notes and configuration."""
        out = {"suite": self.suite.summary(), "source": self.source}
        out.update(self.evaluation.to_dict())
        out["notes"] = list(dict.fromkeys([*self.notes, *self.evaluation.notes]))
        out["config"] = {**self.evaluation.config, **self.config}
        return out


def _filter_measures(table: pd.DataFrame, measures: str | Sequence[str] | None, what: str) -> pd.DataFrame:
    if measures is None:
        return table
    wanted = [
        m.strip() for m in (measures.split(",") if isinstance(measures, str) else measures) if str(m).strip()
    ]
    if not wanted or [m.lower() for m in wanted] == ["all"]:
        return table
    available = list(dict.fromkeys(table["measure"]))
    by_norm = {normalize_name(m): m for m in available}
    keep = []
    for name in wanted:
        match = name if name in available else by_norm.get(normalize_name(name))
        if match is None:
            raise ValueError(f"{what} has no measure {name!r}; measures: {', '.join(available)}")
        keep.append(match)
    return table[table["measure"].isin(keep)]


def _scores_digest(table: pd.DataFrame) -> str:
    frame = table[["task", "checkpoint", "measure", "score"]].sort_values(["task", "checkpoint", "measure"])
    return hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()[:16]


def default_answer(
    scores: pd.DataFrame,
    num_parameters: Mapping[str, float] | pd.Series | None = None,
    *,
    partial: bool = False,
    label: str = DEFAULT_ROW,
) -> tuple[pd.DataFrame, list[str]]:
    """The ``rank`` column of ``ckptrank rank`` with default options, per task of a score table.

    For each task, the scores of :data:`ckptrank.combine.DEFAULT_MEASURES` on its checkpoints and
    their parameter counts go through :func:`ckptrank.combine.answer_column`, the function
    :func:`ckptrank.ranking.rank` uses, so the benchmark evaluates exactly what a user sees. A
    checkpoint with a row in the table for the task ran (its measures may still have failed or
    skipped it, as in ``rank``); whether it has a head is read from LEEP, as in ``answer_column``.

    Parameters
    ----------
    scores : pandas.DataFrame
        Long table ``task, checkpoint, measure, score[, seconds]``.
    num_parameters : mapping or Series, optional
        Checkpoint -> parameter count (of the part used); missing: unknown.
    partial : bool, default=False
        Rank with the default measures the table has, the others left out (one note names
        them), instead of refusing: for published score tables, which cannot be re-scored.
        The table must still have at least half of the default measures; with fewer, the row
        would be little more than the parameter count, and there is none (with a note).
    label : str, default=DEFAULT_ROW
        The rows' ``measure``.

    Returns
    -------
    rows : pandas.DataFrame
        ``task, checkpoint, measure`` (``label``), ``score`` (minus the final rank, so
        that higher is better), ``seconds`` (the default measures' seconds summed), ``error``.
        Empty when a default measure is missing from the table (with ``partial``: when more than
        half are).
    notes : list of str
    """
    from ckptrank.combine import DEFAULT_MEASURES, SIZE_DISAGREES, WEIGHTS_NOTE, answer_column
    from ckptrank.measures import get_measure, list_measures

    columns = ["task", "checkpoint", "measure", "score", "seconds", "error"]
    wanted = [m for m in DEFAULT_MEASURES if m in list_measures()]
    present = set(scores["measure"]) if len(scores) else set()
    missing = [m for m in wanted if m not in present]
    if (missing and not partial) or not wanted or 2 * len(missing) > len(wanted):
        need = "every one" if not partial else "at least half"
        note = (
            f"no '{label}' row: the score table has no {', '.join(missing)} score(s), of the measures the "
            f"default answer combines ({', '.join(wanted)}); it needs {need} of them"
        )
        return pd.DataFrame(columns=columns), [note]
    params = pd.Series({} if num_parameters is None else dict(num_parameters.items()), dtype=float)
    directions = {m: get_measure(m).higher_is_better for m in wanted if m not in missing}
    rows: list[pd.DataFrame] = []
    notes: list[str] = []
    if missing:
        notes.append(
            f"'{label}': the table has {', '.join(m for m in wanted if m not in missing)} of the default "
            f"ranker's measures; {', '.join(missing)} are left out of it (as in `ckptrank bench "
            "--held-out`), so this row is the default ranker on what the table has, not the exact "
            "`ckptrank rank` column"
        )
        absent = tuple(f"default ranker: {m} was not scored" for m in missing)
    given = [m for m in wanted if m not in missing]
    mine = scores[scores["measure"].isin(given)]
    n_weighted = n_size_disagrees = 0
    for task, group in mine.groupby("task", sort=False):
        order = list(dict.fromkeys(group["checkpoint"]))
        wide = group.pivot_table(index="checkpoint", columns="measure", values="score", dropna=False)
        wide = wide.reindex(index=order, columns=given)
        try:
            column = answer_column(
                {m: wide[m].to_numpy(dtype=float) for m in given},
                directions,
                num_parameters=params.reindex(order).to_numpy(dtype=float),
            )
        except ValueError as err:
            notes.append(f"{label} on {task}: {err}")
            continue
        for note in column.notes:
            if note.startswith(WEIGHTS_NOTE):  # per task; summed up once below
                n_weighted += 1
                n_size_disagrees += SIZE_DISAGREES in note
            elif not (missing and note.startswith(absent)):  # said once above
                notes.append(f"{label} on {task}: {note}")
        seconds = (
            group.pivot_table(index="checkpoint", columns="measure", values="seconds", aggfunc="sum")
            .reindex(order)
            .sum(axis=1, min_count=1)
            if "seconds" in group
            else pd.Series(np.nan, index=order)
        )
        rows.append(
            pd.DataFrame(
                {
                    "task": task,
                    "checkpoint": order,
                    "measure": label,
                    "score": -column.rank,
                    "seconds": seconds.to_numpy(dtype=float),
                    "error": None,
                }
            )
        )
    if n_weighted:
        notes.append(
            f"'{label}': the default ranker weighs each feature by its agreement with the others on each "
            "task (`ckptrank rank` lists the weights); the parameter count disagreed with the measures, and "
            f"so counted against size, on {n_size_disagrees} of {n_weighted} task(s)"
        )
    frame = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=columns)
    return frame, notes


def _published_answer(suite: Suite, protocol: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The default ranker's row on a suite's published score table (:func:`default_answer`, partial).

    ``protocol`` is the protocol evaluated, which decides whether the row is in-sample.
    """
    from .published import PUBLISHED_NAMES

    published = suite.published_scores.copy()
    published["measure"] = published["measure"].map(lambda m: PUBLISHED_NAMES.get(m, m))
    params = None
    if suite.baselines is not None and "num_parameters" in suite.baselines:
        params = suite.baselines["num_parameters"].astype(float).dropna()
    in_sample = _fitted_on_note(suite, PUBLISHED_ROW_IN_SAMPLE, protocol)
    label = PUBLISHED_ROW_IN_SAMPLE if in_sample else PUBLISHED_ROW
    answer, notes = default_answer(published, params, partial=True, label=label)
    if in_sample and len(answer):
        notes.insert(0, in_sample)
    return answer, notes


def _fitted_on_note(
    suite: Suite, row: str = DEFAULT_ROW_IN_SAMPLE, protocol: str | None = None
) -> str | None:
    """A note when the default ranker's row on this suite is in-sample, else None.

    In-sample: the ranker was fitted on this suite, or on another whose ground truth (of the
    protocol it was fitted on) holds at least half of this suite's results of ``protocol`` (the
    protocol evaluated; None: every protocol).
    """
    from ckptrank.combine import default_ranker

    suites = default_ranker().info.get("fitted_on", {}).get("suites", [])
    tail = f"so its row here ('{row}') is in-sample; its held-out figures are in `ckptrank bench --held-out`"
    if suite.name in suites:
        return f"the default ranker was fitted on {suite.name}'s tasks, {tail}"
    mine = _truth_triples(suite, protocol)
    for name in suites:
        try:
            other = get_suite(name)
            theirs = _truth_triples(other, other.resolve_protocol(None))
        except (KeyError, ValueError, OSError):
            continue
        shared = len(mine & theirs)
        if mine and shared >= len(mine) / 2:
            return (
                f"{shared} of the {len(mine)} ground-truth results of {suite.name} are {name}'s (same task, "
                f"checkpoint and accuracy), which the default ranker was fitted on, {tail}"
            )
    return None


def _truth_triples(suite: Suite, protocol: str | None = None) -> set[tuple[str, str, float]]:
    """(task, checkpoint, accuracy rounded to 6 decimals) of the ground-truth rows (of one protocol)."""
    gt = suite.ground_truth
    if protocol is not None and "protocol" in gt:
        gt = gt[gt["protocol"] == protocol]
    accuracy = gt["accuracy"].astype(float).round(6)
    return set(zip(gt["task"].astype(str), gt["checkpoint"].astype(str), accuracy, strict=True))


def bench(
    suite: str | Path | Suite,
    *,
    measures: str | Sequence[str] | None = None,
    scores: str | Path | pd.DataFrame | None = None,
    store: ResultsStore | str | Path | None = None,
    protocol: str | None = None,
    on_unknown: Literal["error", "ignore"] = "error",
    higher_is_better: Mapping[str, bool] | None = None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    random_state: int = 0,
    min_checkpoints: int = 3,
    tolerance: float = 0.0015,
    record: bool = True,
    **scoring: Any,
) -> BenchResult:
    """Score (if needed) and evaluate a suite: the library behind ``ckptrank bench``.

    Parameters
    ----------
    suite : str, path or Suite
        Registered name (see :func:`ckptrank.bench.suite.list_suites`), a suite ``.json`` file, or a
        Suite.
    measures : str or sequence of str, optional
        Measures to score (scorable suites; default every static measure) or to keep from the
        score table.
    scores : str, path or DataFrame, optional
        An external score table (see :func:`ckptrank.bench.evaluate.read_scores`) evaluated
        instead of scoring. Without it, a suite that cannot be scored here evaluates its
        published score table, with the default ranker's row on it (:data:`PUBLISHED_ROW`, when the
        table has at least half of the ranker's measures), or only its static baselines.
    store : ResultsStore, str or path, optional
        Results store for the scores and the evaluation. Default: :func:`open_store`'s default
        when scoring; not used when evaluating a given or published table.
    protocol : str, optional
        Ground-truth protocol (default: the suite's).
    on_unknown : {"error", "ignore"}
        Score-table names the suite does not know: raise, or drop them with a note.
    higher_is_better : mapping, optional
        Direction of measures that are not registered (default True).
    n_bootstrap, confidence, random_state, min_checkpoints, tolerance
        See :func:`ckptrank.bench.evaluate.evaluate`.
    record : bool
        Record the evaluation in the store (when one is used).
    **scoring
        Passed to :func:`score_suite` (tasks, cache_dir, device, batch_size, measure_options,
        seed, progress, trust_checkpoint, on_error, on_progress, all_pairs, executor); ``tasks`` also
        restricts the
        evaluation of a given or published score table.

    Returns
    -------
    BenchResult

    Raises
    ------
    ValueError
        Nothing to evaluate (no scores and no baselines), unknown names with
        ``on_unknown="error"``, or no task with enough checkpoints.
    KeyError
        Unknown suite or measure.
    """
    suite = get_suite(suite)
    if suite.ground_truth.empty:
        raise ValueError(
            f"suite {suite.name!r} has no ground truth yet, so nothing can be evaluated; build its ground "
            "truth first (see its provenance; for neucrab-mini: ckptrank finetune --suite neucrab-mini "
            "--protocol linear)"
        )
    tasks = scoring.get("tasks")
    notes: list[str] = []
    runs = None
    extra_baselines = None
    used_store: ResultsStore | None = None
    own_store = False
    config: dict[str, Any] = {"suite": suite.name}
    try:
        if scores is not None:
            table = read_scores(scores)
            table = _filter_measures(table, measures, "the score table")
            source = "table" if isinstance(scores, pd.DataFrame) else "file"
            config["scores"] = None if isinstance(scores, pd.DataFrame) else str(scores)
            if store is not None:
                used_store, own_store = _open(store)
        elif suite.can_score:
            from ckptrank.combine import DEFAULT_MEASURES
            from ckptrank.specs import resolve_measures

            used_store, own_store = _open(store)
            requested = resolve_measures("all" if measures is None else measures)
            # the default answer is always evaluated: its measures are scored too (not shown alone)
            hidden = [m for m in resolve_measures(list(DEFAULT_MEASURES)) if m not in requested]
            scored = score_suite(suite, [*requested, *hidden], store=used_store, **scoring)
            params = scored.baselines["num_parameters"].copy() if len(scored.baselines) else None
            if suite.baselines is not None and "num_parameters" in suite.baselines:
                known = suite.baselines["num_parameters"].astype(float).dropna()
                params = known if params is None else known.combine_first(params)
            # the default ranks the pre-trained checkpoints (as it was fitted and is evaluated); random-init
            # controls would shift the within-task ranks it reads
            controls = set(suite.controls())
            pretrained = scored.scores[~scored.scores["checkpoint"].isin(controls)]
            answer, answer_notes = default_answer(pretrained, params)
            if controls and len(answer):
                answer_notes.append(
                    f"'{DEFAULT_ROW}' ranks the pre-trained checkpoints only (the random-init controls are "
                    "left out of its input, as of every headline figure)"
                )
            in_sample = _fitted_on_note(suite, protocol=suite.resolve_protocol(protocol))
            if in_sample and len(answer):
                answer_notes.insert(0, in_sample)
                answer["measure"] = DEFAULT_ROW_IN_SAMPLE
            changed = sorted(set(scoring.get("measure_options") or {}) & set(DEFAULT_MEASURES))
            if changed and len(answer):
                answer_notes.append(
                    f"'{DEFAULT_ROW}' uses the given options of {', '.join(changed)}, so it is not the "
                    "default answer exactly"
                )
            table = pd.concat(
                [answer, scored.scores[~scored.scores["measure"].isin(hidden)]], ignore_index=True
            )
            runs = scored.runs
            notes.extend(scored.notes)
            notes.extend(answer_notes)
            extra_baselines = scored.baselines
            source = "scored"
            config["measures"] = requested
            config["measure_options"] = scored.options
        elif suite.published_scores is not None:
            table = _filter_measures(
                suite.published_scores, measures, f"the published score table of {suite.name}"
            )
            source = "published"
            notes.append(
                f"evaluating the score table published with {suite.name} (pass --scores FILE for your own)"
            )
            answer, answer_notes = _published_answer(suite, suite.resolve_protocol(protocol))
            if len(answer):
                table = pd.concat([answer, table], ignore_index=True)
            notes.extend(answer_notes)
            if store is not None:
                used_store, own_store = _open(store)
        else:
            if suite.baselines is None:
                reported = ""
                if suite.reported is not None:
                    reported = (
                        f"; it reports values for {', '.join(dict.fromkeys(suite.reported['measure']))}"
                    )
                raise ValueError(
                    f"suite {suite.name!r} has no published score table and no static baseline to evaluate"
                    f"{reported}; pass --scores FILE with your scores "
                    "(columns task, checkpoint, measure, score)"
                )
            table = pd.DataFrame(columns=["task", "checkpoint", "measure", "score"])
            source = "none"
            notes.append(
                f"{suite.name} publishes no score table: only the static baselines are evaluated"
                + (" and the reported values are listed" if suite.reported is not None else "")
                + "; pass --scores FILE to evaluate your scores"
            )
            if store is not None:
                used_store, own_store = _open(store)
        evaluation = evaluate_suite(
            suite,
            table,
            protocol=protocol,
            higher_is_better=higher_is_better,
            on_unknown=on_unknown,
            extra_baselines=extra_baselines,
            n_bootstrap=n_bootstrap,
            confidence=confidence,
            random_state=random_state,
            min_checkpoints=min_checkpoints,
            tolerance=tolerance,
            tasks=tasks,
            kinds=dict.fromkeys(
                (DEFAULT_ROW, DEFAULT_ROW_IN_SAMPLE, PUBLISHED_ROW, PUBLISHED_ROW_IN_SAMPLE), "default"
            ),
        )
        config.update(
            protocol=suite.resolve_protocol(protocol),
            source=source,
            scores_digest=_scores_digest(table) if len(table) else None,
            results=None if used_store is None else used_store.path,
        )
        result = BenchResult(
            suite=suite,
            evaluation=evaluation,
            scores=table,
            source=source,
            runs=runs,
            notes=notes,
            config=config,
        )
        if record and used_store is not None:
            record_evaluation(used_store, result)
        return result
    finally:
        if own_store and used_store is not None:
            used_store.close()


def record_evaluation(store: ResultsStore, result: BenchResult) -> int:
    """Record every per-task and mean statistic of ``result`` in the store; returns the rows added.

    The key's configuration holds the bootstrap settings, the protocol, the score source and a
    digest of the score table, so a different evaluation never overwrites an earlier one.
    """
    ev = result.evaluation
    config = {
        **{k: v for k, v in ev.config.items() if k != "higher_is_better"},
        "protocol": result.config.get("protocol"),
        "source": result.source,
        "scores_digest": result.config.get("scores_digest"),
    }
    added = 0
    for row in ev.per_task.itertuples(index=False):
        added += store.add_evaluation(
            suite=result.suite.name,
            task=str(row.task),
            measure=str(row.measure),
            statistic=str(row.statistic),
            value=_num(row.value),
            ci_low=_num(row.ci_low),
            ci_high=_num(row.ci_high),
            config=config,
        )
    return added


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None
