"""Held-out calibration of ``p_best`` with and without resampling the target set.

Usage::

    python benchmarks/bench_p_best.py              # 5 resamples, as ``ckptrank rank`` by default
    python benchmarks/bench_p_best.py --resamples 20

On every task of the meta-dataset the ranker is the shipped default, the label-free agreement
ranker, fitted on no task (:func:`ckptrank.bench.meta.default_held_out`); the temperature of
``p_best`` is fitted without the task (:func:`ckptrank.bench.meta.calibrate_shortlist`). The 90%
shortlist of each task is then checked: does it hold the checkpoint that did best?

* ``ranker error only``: ``p_best = softmax(score / T)`` from the full target set (all 41 tasks;
  ``T`` is fitted on the tasks with measure scores, see :func:`~ckptrank.bench.meta.calibrate_shortlist`);
* ``+ resampling``: the mean of that probability over stratified 80% subsamples of the target set,
  each re-scored by the default measures (:func:`ckptrank.pipeline.resample_indices`, exactly what
  ``ckptrank rank`` does). Only neucrab-mini-v1's and neucrab-mini-v2's tasks have target data here
  (the published suites have scores, not features), so this row covers their 13 tasks; the
  ranker-only figures are shown on the same tasks beside it.

Prints per task: the shortlist size, whether it covers the best, and the probability given to
the best; then the coverage and mean size per scheme, and the seconds the resamples took.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd


def _resampled_probabilities(
    suite_name: str,
    task: str,
    names: list[str],
    features: list[str],
    temperature: float,
    scale: str,
    resamples: int,
):
    """(p_best with resampling, seconds) of the checkpoints ``names`` on one task of a scorable suite."""
    from ckptrank import pipeline, targets
    from ckptrank.bench.suite import get_suite
    from ckptrank.combine import DEFAULT_MEASURES, answer_column
    from ckptrank.measures import get_measure, snap_saturated
    from ckptrank.rankers import AgreementRanker
    from ckptrank.ranking import iter_runs, make_cache
    from ckptrank.specs import resolve_measure_options

    suite = get_suite(suite_name)
    spec = suite.tasks[task]
    dataset = targets.load_target(spec.data, spec.per_class, spec.seed)
    ranker = AgreementRanker(
        features=list(features),
        info={
            "p_best": {
                "temperature": temperature,
                "scale": scale,
                "shortlist_level": 0.9,
            }
        },
    )
    measures = [m for m in ranker.features if m in DEFAULT_MEASURES]
    options = resolve_measure_options(measures, None, 0)
    results = []
    spent = 0.0
    for name, run in zip(
        names,
        iter_runs(
            dataset,
            [suite.checkpoints[n].spec for n in names],
            needs_features=True,
            cache=make_cache(None),
            device=None,
            batch_size=64,
            progress=False,
            trust_checkpoint=False,
            on_error="record",
        ),
        strict=True,
    ):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = pipeline.score_measures(
                run, measures, options, "record", resamples=resamples, resample_measures=measures
            )
        spent += time.perf_counter() - start
        results.append((name, result))
    n_resamples = resamples
    resampled = {}
    for m in measures:
        values = np.full((n_resamples, len(results)), np.nan)
        for j, (_, r) in enumerate(results):
            if m in r.resampled:
                values[:, j] = r.resampled[m]
        resampled[m] = values
    scores = {m: np.array([r.scores.get(m, np.nan) for _, r in results]) for m in measures}
    # as ``rank`` does: scores at a measure's maximum tie exactly (ckptrank.measures.snap_saturated)
    n_classes = int(np.unique(np.asarray(dataset.labels)).size)
    dims = np.array([float(r.feature_dim or np.nan) for _, r in results])
    for m in measures:
        scores[m] = snap_saturated(m, scores[m], n_classes=n_classes, n_features=dims)[0]
        for b in range(n_resamples):
            resampled[m][b] = snap_saturated(m, resampled[m][b], n_classes=n_classes, n_features=dims)[0]
    params = suite.baselines["num_parameters"]
    column = answer_column(
        scores,
        {m: get_measure(m).higher_is_better for m in measures},
        num_parameters=np.array([float(params.get(n, np.nan)) for n in names]),
        has_head=np.array([float(bool(r.has_head)) for _, r in results]),
        ranker=ranker,
        resampled=resampled,
    )
    return column.p_best, spent


def _shortlist(p: np.ndarray, level: float = 0.9) -> np.ndarray:
    from ckptrank.rankers import shortlist_size

    order = np.argsort(-p, kind="stable")
    return order[: shortlist_size(p, level)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resamples", type=int, default=5)
    args = parser.parse_args()
    pd.set_option("display.width", 200)

    from ckptrank.bench.meta import (
        AGREEMENT_FEATURES,
        DEFAULT_SUITES,
        HELD_OUT_SUITES,
        calibrate_shortlist,
        default_held_out,
        meta_table,
        p_best_scale_of,
    )
    from ckptrank.bench.suite import get_suite

    rows, truth = meta_table([*DEFAULT_SUITES, *HELD_OUT_SUITES])
    # suites whose target data ckptrank can load and re-score (the published suites give scores only)
    scorable = [name for name in dict.fromkeys(rows["suite"]) if get_suite(name).can_score]
    held = default_held_out(rows, truth, scheme="task", n_bootstrap=200)
    _, calibration = calibrate_shortlist(held)
    calibration = calibration.set_index("task")
    table = []
    total_seconds = 0.0
    for _, chosen in held.chosen.iterrows():
        key = str(chosen["task"])
        entry = calibration.loc[key]
        record = {
            "task": key,
            "checkpoints": int(entry["n_checkpoints"]),
            "size": int(entry["size"]),
            "covered": bool(entry["covered"]),
            "has_measures": bool(entry["has_measures"]),
            "p_true_best": float(entry["p_true_best"]),
        }
        suite, _, task = key.rpartition("/")
        if suite in scorable and args.resamples > 0:
            group = rows[(rows["key"] == key) & ~rows["control"]]
            names = [str(n) for n in group["checkpoint"]]
            p, seconds = _resampled_probabilities(
                suite,
                task,
                names,
                list(AGREEMENT_FEATURES),
                float(entry["temperature"]),
                p_best_scale_of(held),
                args.resamples,
            )
            total_seconds += seconds
            best = int(np.argmax(group["truth"].to_numpy(dtype=float)))
            picked = _shortlist(p)
            record.update(
                {
                    "size+rs": len(picked),
                    "covered+rs": bool(best in picked),
                    "p_true_best+rs": float(p[best]),
                }
            )
        table.append(record)
    frame = pd.DataFrame(table)
    print(frame.round(3).to_string(index=False))
    print()
    for label, part in (
        ("all", frame),
        ("with measure scores", frame[frame["has_measures"]]),
        ("descriptors only", frame[~frame["has_measures"]]),
    ):
        if len(part):
            print(
                f"ranker error only, {label} ({len(part)} tasks): coverage {part['covered'].mean():.3f} "
                f"({int(part['covered'].sum())}/{len(part)}), mean size {part['size'].mean():.2f} "
                f"of {part['checkpoints'].mean():.1f}"
            )
    for suite in scorable if "size+rs" in frame else ():
        mini = frame[frame["size+rs"].notna() & frame["task"].str.startswith(suite + "/")]
        print(
            f"{suite} ({len(mini)} tasks): ranker error only: coverage {mini['covered'].mean():.3f}, "
            f"mean size {mini['size'].mean():.2f}, mean p(true best) {mini['p_true_best'].mean():.3f}; "
            f"+ {args.resamples} resamples: coverage {mini['covered+rs'].astype(bool).mean():.3f}, "
            f"mean size {mini['size+rs'].mean():.2f}, mean p(true best) {mini['p_true_best+rs'].mean():.3f}"
        )
    if "size+rs" in frame:
        print(f"resampled scoring took {total_seconds:.1f} s in all")


if __name__ == "__main__":
    main()
