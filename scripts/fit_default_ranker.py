"""Fit the default ranker shipped with ckptrank and record its held-out figures.

Usage: ``python scripts/fit_default_ranker.py [--out src/ckptrank/default_ranker.json] [--suites A,B,...]
[--held-out-suites C,...] [--kind agreement|pairwise] [--features F,...] [--balance task|suite]
[--nonnegative]``

``--suites`` fits on other suites than the shipped ones to compare held-out figures; write such a trial
elsewhere (``--out /tmp/trial.json``), never over the shipped file. ``--held-out-suites`` (default
neucrab-mini-v2 and published:stable-transfer, :data:`ckptrank.bench.meta.HELD_OUT_SUITES`) are
evaluated but never fitted on; ``""`` for none. ``--kind pairwise`` evaluates the learned pairwise ranker
(the default until round 6) instead of the shipped label-free agreement ranker; ``--features``
(default :data:`ckptrank.bench.meta.AGREEMENT_FEATURES`, or
:data:`ckptrank.bench.meta.SHARED_FEATURES` for a pairwise ranker), ``--balance`` and
``--nonnegative`` (:class:`ckptrank.bench.meta.Design`) try other designs. For the agreement ranker,
which is fitted on no task, ``--suites`` are those of the learned pairwise ranker it is compared with.
The temperature of ``p_best`` is fitted on the held-out tasks where the ranker had measure scores
(:func:`ckptrank.bench.meta.calibrate_shortlist`).

Builds the meta-dataset (:func:`ckptrank.bench.meta.meta_table`: neucrab-mini v1 and v2 scored through
the results store, the published Model Spider and stable-transfer scores, SFDA group 1's
descriptors), evaluates the ranker leave-one-task-out and leave-one-suite-out against the best
single measure chosen on the training tasks, the parameter count, the earlier consensus and (for the
agreement ranker) the learned pairwise ranker, then writes the ranker (a pairwise ranker fitted on
every training task) with those figures and its temperature of ``p_best``. Prints the held-out tables.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from ckptrank.bench.meta import (
    DEFAULT_SUITES,
    HELD_OUT_SUITES,
    LEARNED,
    Design,
    fit_default_ranker,
    meta_table,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("src/ckptrank/default_ranker.json"))
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument(
        "--suites",
        default=",".join(DEFAULT_SUITES),
        help="comma-separated suites the pairwise ranker is fitted on",
    )
    parser.add_argument(
        "--held-out-suites",
        default=",".join(HELD_OUT_SUITES),
        help="comma-separated suites evaluated but never fitted on",
    )
    parser.add_argument("--kind", choices=("agreement", "pairwise"), default="agreement", help="which ranker")
    parser.add_argument("--features", default="", help="comma-separated features (default: the kind's)")
    parser.add_argument("--balance", choices=("task", "suite"), default="task", help="what weighs the same")
    parser.add_argument(
        "--nonnegative", action="store_true", help="constrain every weight but has_head's to be >= 0"
    )
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    start = time.perf_counter()
    train = [name.strip() for name in args.suites.split(",") if name.strip()]
    held_out = [name.strip() for name in args.held_out_suites.split(",") if name.strip() not in ("", *train)]
    rows, truth = meta_table([*train, *held_out])
    features = [name.strip() for name in args.features.split(",") if name.strip()] or None
    ranker, by_task, by_suite = fit_default_ranker(
        rows,
        truth,
        features=features,
        n_bootstrap=args.bootstrap,
        train_suites=train,
        design=Design(kind=args.kind, balance=args.balance, nonnegative=args.nonnegative),
    )
    for title, held in (("leave one task out", by_task), ("leave one suite out", by_suite)):
        ev = held.evaluation
        print(f"== {title}")
        columns = ["n_tasks", "weighted_tau", "weighted_tau_ci_low", "weighted_tau_ci_high"]
        columns += [c for c in ev.summary.columns if c.startswith("weighted_tau:")]
        print(ev.summary[columns].round(3).to_string())
        for scope in ["all", *ev.track_names]:
            print(f"-- paired vs {LEARNED} ({scope})")
            print(ev.versus(LEARNED, scope=scope).round(3).to_string())
    ranker.save(args.out)
    print(f"ranker: {ranker.describe()}" + (f" (C={ranker.C})" if hasattr(ranker, "C") else ""))
    print(f"wrote {args.out} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
