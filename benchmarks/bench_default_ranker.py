"""Cost of the default ranker: ``ckptrank.rank`` with default options against the previous default.

Usage::

    python benchmarks/bench_default_ranker.py        # neucrab-mini-v1's image checkpoints on digits
    python benchmarks/bench_default_ranker.py --runs 7 --data builtin:digits --per-class 40

Both rankings run on a warm feature cache (one untimed warm-up call fills it), alternating so
that the load of a busy machine is shared fairly, and the medians are compared:

* new: ``rank(data, models)``: the default measures (logme, hscore, leep, nce, nleep, gbc) combined
  by the default ranker, with ``p_best`` and the shortlist from the ranker's held-out
  error and ``DEFAULT_RESAMPLES`` (5) resamples of the target set;
* new without resamples: ``rank(data, models, resamples=0)``: the same ranking, ``p_best`` from the
  ranker's held-out error alone;
* previous: ``rank(data, models, measures="logme,sfda,reg_hscore,nleep,leep")``: the previous
  default measures and their consensus.

Target (issue 12): the new default ranking adds at most 20% to the previous default's time
(``new without resamples / previous``); the resampling's cost is stated beside it
(``new / new without resamples``): each resample re-scores the ranker's measures on 80% of the
target set.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

PREVIOUS = "logme,sfda,reg_hscore,nleep,leep"


def _models() -> list[str]:
    from ckptrank.bench.neucrab_mini import CHECKPOINTS

    return [c.spec for name, c in CHECKPOINTS.items() if c.track == "image" and c.group != "random-init"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="builtin:digits")
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    import ckptrank

    models = _models()
    options = {"per_class": args.per_class, "progress": False}
    ckptrank.rank(args.data, models, **options)  # warm the feature cache
    ckptrank.rank(args.data, models, measures=PREVIOUS, **options)
    new, bare, previous = [], [], []
    for _ in range(args.runs):
        start = time.perf_counter()
        frame = ckptrank.rank(args.data, models, **options)
        new.append(time.perf_counter() - start)
        start = time.perf_counter()
        ckptrank.rank(args.data, models, resamples=0, **options)
        bare.append(time.perf_counter() - start)
        start = time.perf_counter()
        ckptrank.rank(args.data, models, measures=PREVIOUS, **options)
        previous.append(time.perf_counter() - start)
    ratio = statistics.median(bare) / statistics.median(previous)
    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, {len(models)} checkpoints, {args.data}"
    )
    resamples = int(frame.attrs["config"]["resamples"])
    for label, times in (
        (f"new default (default ranker, {resamples} resamples)", new),
        ("new default without resamples (resamples=0)", bare),
        ("previous default (consensus)", previous),
    ):
        print(f"{label}: median {statistics.median(times):.2f} s, runs {[round(t, 2) for t in times]}")
    print(
        f"ratio new without resamples / previous: {ratio:.2f} (target <= 1.20): "
        f"{'OK' if ratio <= 1.2 else 'MISSED'}"
    )
    extra = statistics.median(new) - statistics.median(bare)
    print(
        f"resampling: +{extra:.2f} s for {resamples} resamples ({extra / max(resamples, 1):.2f} s each; "
        f"new / new without resamples = {statistics.median(new) / statistics.median(bare):.2f})"
    )
    print(f"ranker: {frame.attrs['ranker']}")


if __name__ == "__main__":
    main()
