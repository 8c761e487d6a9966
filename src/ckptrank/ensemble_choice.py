"""Choose a small ensemble of checkpoints for a target task: ``ckptrank ensemble``.

:func:`choose_ensemble` reads the checkpoint specs (:mod:`ckptrank.specs`) and the target data
(:mod:`ckptrank.targets`), runs every checkpoint over the data as :func:`ckptrank.ranking.rank`
does (:func:`ckptrank.ranking.map_checkpoints`, through the feature cache), and hands the features to
:func:`ckptrank.ensemble.select_ensemble` (greedy forward selection on SFDA).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ckptrank import pipeline, ranking, targets
from ckptrank.ranking import OnError, none_if_nan, package_versions
from ckptrank.specs import check_specs, parse_models
from ckptrank.targets import OnUnreadable

__all__ = ["EnsembleChoice", "choose_ensemble"]


@dataclass
class EnsembleChoice:
    """Result of :func:`choose_ensemble`.

    Attributes
    ----------
    selected : list of str
        Chosen checkpoints, in the order they were picked.
    individual_scores : dict
        Checkpoint -> its own SFDA score.
    ensemble_scores : list of float
        SFDA score of the ensemble after each pick (``ensemble_scores[i]`` for the first ``i+1``).
    failed : dict
        Checkpoint -> reason, for checkpoints that could not be run.
    notes : list of str
    config : dict
    """

    selected: list[str]
    individual_scores: dict[str, float]
    ensemble_scores: list[float]
    failed: dict[str, str]
    notes: list[str]
    config: dict[str, Any]
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "selected": [
                {
                    "order": i + 1,
                    "checkpoint": spec,
                    "individual_score": none_if_nan(self.individual_scores.get(spec, math.nan)),
                    "ensemble_score": none_if_nan(
                        self.ensemble_scores[i] if i < len(self.ensemble_scores) else None
                    ),
                }
                for i, spec in enumerate(self.selected)
            ],
            "individual_scores": {k: none_if_nan(v) for k, v in self.individual_scores.items()},
            "failed": self.failed,
            "notes": self.notes,
            "seconds": round(self.seconds, 3),
            "config": self.config,
        }


def _select_ensemble(features_by_checkpoint: dict[str, Any], labels: Any, k: int, **options: Any) -> Any:
    from ckptrank.ensemble import select_ensemble

    return select_ensemble(features_by_checkpoint, labels, k, **options)


def choose_ensemble(
    data: Any,
    models: str | Path | Sequence[str],
    *,
    k: int = 3,
    method: str = "greedy_concat",
    pca_dims: int | float | None = None,
    standardize: bool = True,
    per_class: int | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    batch_size: int = 64,
    progress: Any = None,
    trust_checkpoint: bool = False,
    on_error: OnError = "record",
    allow_code: bool = False,
    on_unreadable: OnUnreadable = "fail",
    executor: Any = None,
) -> EnsembleChoice:
    """Pick ``k`` complementary checkpoints by SFDA ensemble selection.

    Runs each checkpoint over the target training data (through the feature cache) and calls
    :func:`ckptrank.ensemble.select_ensemble` (greedy forward selection on SFDA). ``method``,
    ``pca_dims`` and ``standardize`` are passed to it; the other parameters (``allow_code``
    and ``on_unreadable`` included) are as in :func:`ckptrank.ranking.rank`, ``executor`` too: each
    checkpoint's extraction (:func:`ckptrank.pipeline.run_checkpoint`) is one unit, run here or as
    a Ray task, and the selection runs here on the features the units return.

    Raises
    ------
    ValueError
        ``k`` is not in ``1..number of checkpoints that ran``, fewer than 2 target classes, or
        every checkpoint failed.
    """
    if not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    specs = parse_models(models, allow_code=allow_code or trust_checkpoint)
    check_specs(specs)
    if k > len(specs):
        raise ValueError(f"k={k} but only {len(specs)} checkpoints were given; choose k <= {len(specs)}")
    start = time.perf_counter()
    cache = ranking.make_cache(cache_dir)
    dataset = targets.load_target(data, per_class, seed, on_unreadable)
    notes = targets.dataset_notes(dataset, per_class, seed)
    features: dict[str, Any] = {}
    failed: dict[str, str] = {}
    labels = None
    runs = ranking.map_checkpoints(
        pipeline.run_checkpoint,
        dataset,
        specs,
        executor=executor,
        device=device,
        progress=progress,
        needs_features=True,
        cache=cache,
        batch_size=batch_size,
        trust_checkpoint=trust_checkpoint,
        on_error=on_error,
        load=ranking.load_checkpoint,
        extract=ranking.extract_features,
    )
    for run in runs:
        if run.status != "ok":
            failed[run.spec] = run.error or run.status
            notes.append(f"{run.spec}: failed: {run.error}")
            continue
        if labels is None:
            labels = np.asarray(run.labels)
        elif not np.array_equal(labels, np.asarray(run.labels)):
            raise ValueError(
                f"checkpoint {run.spec!r} returned the target samples in another order or number; "
                "ensemble selection needs the same samples for every checkpoint"
            )
        features[run.spec] = run.features
    if not features:
        reasons = "; ".join(f"{spec}: {reason}" for spec, reason in failed.items())
        raise ValueError(f"all {len(specs)} checkpoints failed: {reasons}")
    if k > len(features):
        raise ValueError(
            f"k={k} but only {len(features)} checkpoint(s) ran ({len(failed)} failed); "
            f"choose k <= {len(features)}"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _select_ensemble(
            features, labels, int(k), method=method, pca_dims=pca_dims, standardize=standardize
        )
    for warning in caught:
        note = " ".join(str(warning.message).split())
        if note not in notes:
            notes.append(note)
    selected = [str(s) for s in _get(result, "selected")]
    individual = _get(result, "individual_scores", None)
    if individual is None:
        from ckptrank.measures import score

        individual = {spec: score("sfda", feats, labels) for spec, feats in features.items()}
    ensemble_scores = _get(result, "ensemble_scores", None)
    if ensemble_scores is None:
        ensemble_scores = _get(result, "scores", [])
    config = {
        "data": targets.data_name(data, dataset),
        "models": specs,
        "k": int(k),
        "measure": "sfda",
        "method": method,
        "pca_dims": pca_dims,
        "standardize": standardize,
        "per_class": per_class,
        "on_unreadable": on_unreadable,
        "seed": seed,
        "batch_size": batch_size,
        "device": device or "cpu",
        "versions": package_versions(),
    }
    return EnsembleChoice(
        selected=selected,
        individual_scores={str(key): float(value) for key, value in dict(individual).items()},
        ensemble_scores=[float(v) for v in ensemble_scores],
        failed=failed,
        notes=notes,
        config=config,
        seconds=time.perf_counter() - start,
    )


def _get(obj: Any, name: str, *default: Any) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, *default) if default else obj[name]
    return getattr(obj, name, *default)
