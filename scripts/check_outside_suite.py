"""Round 7's outside check: the shipped rankers on a suite that no design has seen.

Usage: ``python scripts/check_outside_suite.py [--suite published:stable-transfer-segmentation]
[--bootstrap 1000]``

On the suite's tasks, paired on the same (task, checkpoint) pairs and bootstrap resamples, it
compares the shipped agreement ranker (label-free, fitted on no task) with each measure the suite
publishes, the earlier consensus (the mean rank of its members that are scored), and the learned
pairwise ranker of rounds 1-5 (fitted on neucrab-mini v1, Model Spider and SFDA group 1, never on
this suite); and it checks the 90% shortlist of ``p_best`` at the shipped temperature and scale, not
refitted (``--temperature 10.41 --scale rank_steps`` gives round 7's figures, made before round 8).
The pre-registered protocol is in ``benchmarks/RESULTS.md`` (round 7).
"""

from __future__ import annotations

import argparse
import time

import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="published:stable-transfer-segmentation")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument(
        "--temperature", type=float, help="p_best temperature (default: the shipped ranker's)"
    )
    parser.add_argument(
        "--scale", choices=("rank_steps", "standardised"), help="p_best scale (default: the shipped ranker's)"
    )
    args = parser.parse_args()
    pd.set_option("display.width", 250)

    from ckptrank.bench.evaluate import evaluate
    from ckptrank.bench.meta import (
        AGREEMENT_FEATURES,
        CONSENSUS,
        DEFAULT_SUITES,
        HELD_OUT_SUITES,
        LEARNED,
        PAIRWISE,
        default_held_out,
        meta_table,
        shortlist_table,
    )
    from ckptrank.bench.suite import get_suite
    from ckptrank.combine import default_ranker
    from ckptrank.measures import list_measures

    start = time.perf_counter()
    suite = get_suite(args.suite).name
    rows, truth = meta_table(list(dict.fromkeys([*DEFAULT_SUITES, *HELD_OUT_SUITES, suite])))
    # leave one suite out: the pairwise ranker ranks this suite fitted on its training suites only
    held = default_held_out(rows, truth, scheme="suite", n_bootstrap=0)
    pretrained = rows[~rows["control"]]
    keys = list(dict.fromkeys(pretrained.loc[pretrained["suite"] == suite, "key"]))
    here = pretrained[pretrained["suite"] == suite]
    # each measure alone: the meta-dataset's columns, signed so that higher predicts better
    known = set(list_measures())
    candidates = list(dict.fromkeys([*(m for m in here.columns if m in known), *AGREEMENT_FEATURES]))
    scored = [m for m in candidates if m in here and here[m].notna().any()]
    single = here.melt(
        id_vars=["key", "checkpoint"], value_vars=scored, var_name="measure", value_name="score"
    )
    shown = [LEARNED, PAIRWISE, CONSENSUS]
    scores = pd.concat(
        [
            held.scores[held.scores["measure"].isin(shown) & held.scores["task"].isin(keys)],
            single.rename(columns={"key": "task"}).dropna(subset=["score"]),
        ],
        ignore_index=True,
    )
    scores = scores.replace({"measure": {LEARNED: "agreement ranker (shipped)"}})
    kinds = dict.fromkeys(["agreement ranker (shipped)", PAIRWISE, CONSENSUS], "ranker")
    ev = evaluate(
        scores,
        truth[truth["task"].isin(keys)],
        n_bootstrap=args.bootstrap,
        random_state=0,
        task_order=keys,
        kinds=kinds,
    )
    print(
        f"== {suite}: {len(keys)} tasks; the agreement ranker is fitted on no task, the pairwise ranker on "
        f"{', '.join(s for s in DEFAULT_SUITES if s != suite)}"
    )
    print(
        ev.summary[
            ["n_tasks", "weighted_tau", "weighted_tau_ci_low", "weighted_tau_ci_high", "rel@1", "top1_regret"]
        ]
        .round(3)
        .to_string()
    )
    print("-- agreement ranker minus each other row (paired, same pairs and resamples)")
    versus = ev.versus("agreement ranker (shipped)", scope="all")
    versus = versus.assign(diff=-versus["diff"], ci_low=-versus["ci_high"], ci_high=-versus["ci_low"])
    print(versus[["n_tasks", "n_pairs", "diff", "ci_low", "ci_high"]].round(3).to_string())

    shipped = default_ranker().info["p_best"]
    temperature = float(shipped["temperature"]) if args.temperature is None else args.temperature
    scale = shipped.get("scale", "rank_steps") if args.scale is None else args.scale
    table = shortlist_table(held, temperature, scale)
    table = table[table["task"].isin(keys)]
    print(f"-- 90% shortlist at temperature {temperature:.4g}, scale {scale} (not refitted on this suite)")
    print(table.round(3).to_string(index=False))
    print(
        f"covered {int(table['covered'].sum())}/{len(table)} ({table['covered'].mean():.3f}); mean size "
        f"{table['size'].mean():.1f} of {table['n_checkpoints'].mean():.1f}; "
        f"mean p(true best) {table['p_true_best'].mean():.3f}"
    )
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
