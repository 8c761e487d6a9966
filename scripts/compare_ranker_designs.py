"""Compare ranker designs held out, paired on the same (task, checkpoint) pairs: round 6's table.

Usage: ``python scripts/compare_ranker_designs.py [--scheme suite|task] [--bootstrap 1000]``

The rows (``benchmarks/RESULTS.md``, round 6):

* ``pairwise (default until round 6)``: the learned pairwise ranker, fitted on neucrab-mini v1,
  Model Spider and SFDA group 1 without the held-out task or suite (never on v2 or stable-transfer);
* ``R``: pairwise, every suite weighing the same, weights >= 0 (but has-head's), fitted on all five
  suites without the held-out task or suite, its regularisation chosen by an inner leave one suite out;
* ``R+kNN``: R with kNN as a ninth feature;
* ``F (agreement, shipped)``: the label-free agreement ranker, fitted on no task;

beside the parameter count and the earlier consensus, over all 41 tasks and over the 30 with measure
scores. Every candidate is compared with every other on the same pairs and bootstrap resamples.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheme", choices=("suite", "task"), default="suite")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    pd.set_option("display.width", 250)

    from ckptrank.bench.evaluate import evaluate
    from ckptrank.bench.meta import (
        AGREEMENT_FEATURES,
        CONSENSUS,
        DEFAULT_DESIGN,
        DEFAULT_SUITES,
        HELD_OUT_SUITES,
        LEARNED,
        PAIRWISE_DESIGN,
        SHARED_FEATURES,
        Design,
        held_out_evaluation,
        meta_table,
    )

    start = time.perf_counter()
    every = [*DEFAULT_SUITES, *HELD_OUT_SUITES]
    rows, truth = meta_table(every)
    robust = Design(balance="suite", nonnegative=True)
    designs = {
        "pairwise (default until round 6)": (SHARED_FEATURES, DEFAULT_SUITES, PAIRWISE_DESIGN),
        "R": (SHARED_FEATURES, every, robust),
        "R+kNN": ((*SHARED_FEATURES, "knn"), every, robust),
        "F (agreement, shipped)": (AGREEMENT_FEATURES, every, DEFAULT_DESIGN),
    }
    frames, has_measures = [], None
    for name, (features, train, design) in designs.items():
        held = held_out_evaluation(
            rows,
            truth,
            features=features,
            scheme=args.scheme,
            n_bootstrap=0,
            train_suites=train,
            design=design,
        )
        scores = held.scores
        if has_measures is None:
            has_measures = dict(zip(held.chosen["task"], held.chosen["has_measures"], strict=True))
            frames.append(scores[scores["measure"].isin([CONSENSUS, "num_parameters"])])
        frames.append(scores[scores["measure"] == LEARNED].assign(measure=name))
        print(f"{name}: {held.final.describe()}", flush=True)
    scores = pd.concat(frames, ignore_index=True)
    pretrained = rows[~rows["control"]]
    keys = list(dict.fromkeys(pretrained["key"]))
    suite_of = dict(zip(pretrained["key"], pretrained["suite"], strict=False))
    kinds = dict.fromkeys([*designs, CONSENSUS], "ranker")
    truth = truth[truth["task"].isin(keys) & truth["checkpoint"].isin(set(pretrained["checkpoint"]))]
    for title, subset in (
        ("all tasks", keys),
        ("tasks with measure scores", [k for k in keys if has_measures.get(k)]),
    ):
        ev = evaluate(
            scores[scores["task"].isin(subset)],
            truth[truth["task"].isin(subset)],
            n_bootstrap=args.bootstrap,
            random_state=0,
            tracks={k: suite_of[k] for k in subset},
            task_order=subset,
            kinds=kinds,
        )
        per_suite = [c for c in ev.summary.columns if c.startswith("weighted_tau:")]
        columns = ["n_tasks", "weighted_tau", *per_suite]
        print(f"== leave one {args.scheme} out, {title} ({len(subset)})")
        print(ev.summary[columns].round(3).to_string())
        for name in designs:
            print(f"-- {name} minus each other row (paired; diff = {name} - row)")
            versus = ev.versus(name, scope="all")
            versus = versus.assign(diff=-versus["diff"], ci_low=-versus["ci_high"], ci_high=-versus["ci_low"])
            print(versus[["n_tasks", "n_pairs", "diff", "ci_low", "ci_high"]].round(3).to_string())
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
