"""Round 8: the 90% shortlist of ``p_best``, the score in rank steps (until round 8) or standardised (P).

Usage: ``python scripts/compare_p_best_scales.py``

For each scale, the temperature is fitted by the unchanged rule on the agreement ranker's scores of
the 30 tasks with measure scores (neucrab-mini v1 and v2, Model Spider, stable-transfer); each of
those tasks' shortlists uses a temperature fitted without it. The temperature fitted on all 30 is
then applied, unchanged, to round 7's outside suites (segmentation source selection and
TransferGraph's hub zoo). Per suite: coverage of the true best, mean shortlist size, mean zoo
size, mean p_best of the true best and mean log p_best of the true best (the likelihood the
temperature maximises). The pre-registered rule is in ``benchmarks/RESULTS.md`` (round 8).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

OUTSIDE = ("published:stable-transfer-segmentation", "published:transfergraph-image")


def _summary(table: pd.DataFrame) -> dict[str, float]:
    """Coverage, shortlist and zoo sizes, and the probability given to the true best, over some tasks."""
    return {
        "tasks": len(table),
        "covered": int(table["covered"].sum()),
        "coverage": table["covered"].mean(),
        "mean size": table["size"].mean(),
        "mean zoo": table["n_checkpoints"].mean(),
        "mean p(best)": table["p_true_best"].mean(),
        "mean log p(best)": np.log(table["p_true_best"] + 1e-300).mean(),
    }


def main() -> None:
    pd.set_option("display.width", 250)
    from ckptrank.bench.meta import (
        DEFAULT_DESIGN,
        DEFAULT_SUITES,
        HELD_OUT_SUITES,
        calibrate_shortlist,
        held_out_evaluation,
        meta_table,
        shortlist_table,
    )

    start = time.perf_counter()
    rows, truth = meta_table([*DEFAULT_SUITES, *HELD_OUT_SUITES])
    held = held_out_evaluation(rows, truth, n_bootstrap=0, design=DEFAULT_DESIGN)
    outside_rows, outside_truth = meta_table(list(OUTSIDE))
    outside = held_out_evaluation(outside_rows, outside_truth, n_bootstrap=0, design=DEFAULT_DESIGN)
    suite_of = dict(zip(rows["key"], rows["suite"], strict=False)) | dict(
        zip(outside_rows["key"], outside_rows["suite"], strict=False)
    )
    for scale in ("rank_steps", "standardised"):
        temperature, table = calibrate_shortlist(held, scale=scale)
        print(f"== scale {scale}: temperature fitted on the 30 tasks with measure scores {temperature:.4g}")
        parts = {"30 with measure scores, each T fitted without the task": table[table["has_measures"]]}
        parts["all 41, each T fitted without the task"] = table
        table = table.assign(suite=table["task"].map(suite_of))
        for suite, group in table.groupby("suite", sort=False):
            parts[f"{suite} (T without the task)"] = group
        far = shortlist_table(outside, temperature, scale).assign(suite=lambda f: f["task"].map(suite_of))
        for suite, group in far.groupby("suite", sort=False):
            parts[f"{suite} (T of the 30)"] = group
        print(pd.DataFrame({k: _summary(v) for k, v in parts.items()}).T.round(3).to_string())
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
