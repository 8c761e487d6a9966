"""Scaling of ``rank`` over executors: local, Ray with 1 worker, Ray with 2 workers; and a projection.

Usage::

    python benchmarks/bench_scaling.py                       # 8 zoo checkpoints, median of 3
    python benchmarks/bench_scaling.py --checkpoints 4 --runs 1 --no-score-probe

What is measured (on this machine; nothing is written to RESULTS.md, the figures are printed):

(a) Wall time of :func:`ckptrank.rank` over N real built-in zoo checkpoints on ``builtin:digits``
    (``--per-class`` images per class), each run into a fresh feature cache so that every unit
    loads, extracts and scores: with the local executor, and with a Ray instance of 1 and of 2
    worker CPUs (one CPU per task). Each Ray instance first does one untimed run (its worker
    processes start and import torch), then ``--runs`` timed runs; medians are reported, and the
    ratio t(1 worker) / t(2 workers) with the parallel efficiency ratio / 2. Every unit gets one
    CPU thread in every mode (``OMP_NUM_THREADS=1`` and the like, the local process included).
    On a shared machine the second worker may find no free core: the per-unit time with 2 workers
    over that with 1 (1.0 when two cores are free) is printed as the measure of that contention.
(b) Per-unit costs in each mode, from the per-checkpoint columns: load (``seconds`` minus extract
    and score), extraction and scoring; the time per unit spent outside the units, (wall - sum of
    unit seconds / workers) / N (the driver's serial part and the executor's scheduling); and the
    Ray overhead per unit, that time with 1 Ray worker minus with the local executor.
(c) The scoring cost of the default measures on one realistic unit of a large task (n=10,000
    samples, d=2,048 features, C=100 classes, 1,000 source classes), once, on one thread.

The projection for a cluster (``--gpus`` GPUs ranking ``--project-checkpoints`` checkpoints) uses
the formula printed with it: the units are independent, so they run in waves of one unit per GPU,

    T = startup + ceil(checkpoints / gpus) * unit / efficiency + checkpoints * overhead

with ``unit = load + extraction + scoring + cache write``; scoring (c), the per-unit Ray
overhead (b) and the efficiency (a) are measured here, load and GPU extraction are assumptions
(options), since no GPU is lent to this machine. The stated assumptions are printed with it.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from typing import Any

# One thread per unit in every mode, set before numpy and torch load their pools (Ray sets the same
# for a task with one CPU; threadpoolctl after the fact misses pools loaded later and oversubscribes).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

IMAGE_ZOO = [
    "zoo:cnn-fm04",
    "zoo:cnn-fm04-e1",
    "zoo:cnn-fm04-e3",
    "zoo:cnn-fm59",
    "zoo:cnn-rot",
    "zoo:cnn-random",
    "zoo:mlp-fm04",
    "zoo:resnet-fm04",
    "zoo:resnet-random",
]
MB = 1024**2


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", type=int, default=8, help=f"zoo checkpoints (<= {len(IMAGE_ZOO)})")
    parser.add_argument("--per-class", type=int, default=100, help="target images per class (10 classes)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per mode (median reported)")
    parser.add_argument("--measures", default=None, help="measures (default: the default ranker's)")
    parser.add_argument("--no-score-probe", action="store_true", help="skip (c); use --score-seconds")
    parser.add_argument("--score-seconds", type=float, default=None, help="scoring cost per unit for (c)")
    parser.add_argument("--gpus", type=int, default=100)
    parser.add_argument("--project-checkpoints", type=int, default=1000)
    parser.add_argument("--images", type=int, default=10_000, help="target images of the projected task")
    parser.add_argument(
        "--gpu-images-per-second",
        type=float,
        default=2000.0,
        help="assumed extraction throughput of one GPU (ResNet-50 class, 224 px, with enough decode CPUs)",
    )
    parser.add_argument(
        "--load-seconds", type=float, default=3.0, help="assumed checkpoint load from shared storage"
    )
    parser.add_argument(
        "--write-mb-per-second", type=float, default=200.0, help="assumed write speed to the shared cache"
    )
    parser.add_argument("--startup-seconds", type=float, default=60.0, help="assumed cluster-wide start-up")
    args = parser.parse_args(argv)
    if not 1 <= args.checkpoints <= len(IMAGE_ZOO):
        parser.error(f"--checkpoints must be in 1..{len(IMAGE_ZOO)}, got {args.checkpoints}")
    if args.runs < 1 or args.per_class < 2:
        parser.error("--runs must be >= 1 and --per-class >= 2")
    if args.no_score_probe and args.score_seconds is None:
        parser.error("--no-score-probe needs --score-seconds (the scoring cost per unit to project with)")
    return args


def _rank_once(specs: list[str], args: argparse.Namespace, executor: Any) -> tuple[float, Any]:
    from ckptrank import rank

    with tempfile.TemporaryDirectory(prefix="ckptrank-scaling-") as cache:
        start = time.perf_counter()
        frame = rank(
            "builtin:digits",
            specs,
            per_class=args.per_class,
            measures=args.measures,
            cache_dir=cache,
            progress=False,
            executor=executor,
        )
        wall = time.perf_counter() - start
    if not (frame["status"] == "ok").all() or frame["from_cache"].any():
        raise RuntimeError(f"a unit failed or hit the cache: {frame[['checkpoint', 'status']].to_dict()}")
    return wall, frame


def _ray_mode(specs: list[str], args: argparse.Namespace, workers: int) -> dict[str, Any]:
    import ray

    from ckptrank.executors import RayExecutor

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    start = time.perf_counter()
    ray.init(
        num_cpus=workers,
        include_dashboard=False,
        object_store_memory=80 * MB,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    started = time.perf_counter() - start
    try:
        executor = RayExecutor(max_retries=1)
        first, _ = _rank_once(specs, args, executor)  # worker processes start and import torch
        runs = [_rank_once(specs, args, executor) for _ in range(args.runs)]
    finally:
        ray.shutdown()
    return {"start": started, "first": first, "walls": [w for w, _ in runs], "frames": [f for _, f in runs]}


def _score_probe() -> float:
    """Seconds to score the default measures on one realistic large unit (one thread)."""
    import numpy as np

    from ckptrank.combine import DEFAULT_MEASURES
    from ckptrank.measures import get_measure, score
    from ckptrank.testing.synthetic import realistic_features, source_probs_for

    features, labels = realistic_features(10_000, 2048, 100, random_state=0)
    probs = source_probs_for(labels, 1000, random_state=0)
    start = time.perf_counter()
    for name in DEFAULT_MEASURES:
        spec = get_measure(name)
        score(
            name,
            features if "features" in spec.requires else None,
            labels,
            source_probs=np.asarray(probs) if "source_probs" in spec.requires else None,
        )
    return time.perf_counter() - start


def _fmt(values: list[float]) -> str:
    return f"{statistics.median(values):7.2f} s  (min {min(values):.2f}, max {max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    specs = IMAGE_ZOO[: args.checkpoints]
    n = len(specs)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    print(
        f"Machine: {os.cpu_count()}-core {platform.machine()}, Python {platform.python_version()}, "
        f"load average (1 min) at start {load:.1f}"
    )
    print(
        f"Task: rank {n} zoo checkpoints on builtin:digits, {args.per_class} per class; median of {args.runs}"
    )

    _rank_once(specs[:1], args, None)  # imports and the digits data, outside the timings
    local_runs = [_rank_once(specs, args, None) for _ in range(args.runs)]
    local = {"walls": [wall for wall, _ in local_runs], "frames": [frame for _, frame in local_runs]}
    ray1 = _ray_mode(specs, args, 1)
    ray2 = _ray_mode(specs, args, 2)

    t1, t2 = (statistics.median(x["walls"]) for x in (ray1, ray2))
    ratio = t1 / t2
    efficiency = ratio / 2
    print("\n(a) wall time of rank()")
    print(f"  local executor      {_fmt(local['walls'])}")
    for label, mode in (("ray, 1 worker ", ray1), ("ray, 2 workers", ray2)):
        start, first = mode["start"], mode["first"]
        print(f"  {label}      {_fmt(mode['walls'])}   [start {start:.1f} s, first run {first:.1f} s]")
    print(f"  ratio t(1 worker) / t(2 workers) = {ratio:.2f}  (parallel efficiency {efficiency:.2f})")

    print(f"\n(b) per-unit costs (median per unit over {args.runs} runs x {n} units)")
    print("  mode             load   extract  score    unit    outside units per unit")
    outside: dict[str, float] = {}
    unit_median: dict[str, float] = {}
    for label, mode, workers in (
        ("local", local, 1),
        ("ray, 1 worker", ray1, 1),
        ("ray, 2 workers", ray2, 2),
    ):
        columns: dict[str, list[float]] = {"load": [], "extract": [], "score": [], "unit": []}
        spare = []
        for wall, frame in zip(mode["walls"], mode["frames"], strict=True):
            for row in frame.itertuples(index=False):
                columns["extract"].append(row.extract_seconds)
                columns["score"].append(row.score_seconds)
                columns["load"].append(row.seconds - row.extract_seconds - row.score_seconds)
                columns["unit"].append(row.seconds)
            # the driver's serial part (parse, target data, combine) and the executor's scheduling
            spare.append((wall - float(frame["seconds"].sum()) / workers) / n)
        outside[label] = statistics.median(spare)
        unit_median[label] = statistics.median(columns["unit"])
        cells = "  ".join(f"{statistics.median(v):6.3f}" for v in columns.values())
        print(f"  {label:15s} {cells}   {outside[label]:+.3f} s")
    overhead = outside["ray, 1 worker"] - outside["local"]
    slowdown = unit_median["ray, 2 workers"] / unit_median["ray, 1 worker"]
    print(f"  per-unit time, 2 workers / 1 worker = {slowdown:.2f} (1.00 when two cores are free)")
    print(f"  Ray overhead per unit (outside-units time, 1 worker minus local) = {overhead:+.3f} s")

    if args.no_score_probe:
        scoring = float(args.score_seconds)
        print(f"\n(c) scoring cost per large unit: {scoring:.1f} s (given with --score-seconds)")
    else:
        scoring = _score_probe()
        print(f"\n(c) scoring the default measures, n=10,000 d=2,048 C=100, one thread: {scoring:.1f} s")

    extraction = args.images / args.gpu_images_per_second
    write = args.images * 2048 * 4 / MB / args.write_mb_per_second
    unit = args.load_seconds + extraction + scoring + write
    waves = math.ceil(args.project_checkpoints / args.gpus)

    def projected(e: float) -> float:
        return args.startup_seconds + waves * unit / e + args.project_checkpoints * max(overhead, 0.0)

    total, ideal = projected(efficiency), projected(1.0)
    print(
        f"\nProjection: {args.project_checkpoints} checkpoints x {args.images:,} images on {args.gpus} GPUs"
    )
    print("  T = startup + ceil(checkpoints / gpus) * unit / efficiency + checkpoints * overhead")
    print(
        f"  unit = load {args.load_seconds:.1f} (assumed) + extraction {extraction:.1f} "
        f"({args.images:,} images at {args.gpu_images_per_second:.0f}/s, assumed) + scoring {scoring:.1f} "
        f"(measured, (c)) + cache write {write:.1f} (80 MB at {args.write_mb_per_second:.0f} MB/s, assumed) "
        f"= {unit:.1f} s"
    )
    print(
        f"  T = {args.startup_seconds:.0f} + {waves} * {unit:.1f} / {efficiency:.2f} + "
        f"{args.project_checkpoints} * {max(overhead, 0.0):.3f} = {total:.0f} s ({total / 60:.1f} min) "
        f"at the efficiency measured here; {ideal:.0f} s ({ideal / 60:.1f} min) at efficiency 1 (free cores)"
    )
    print(
        "  Assumptions: one unit per GPU at a time (num_gpus=1), at least one free CPU per GPU for the "
        "scoring; the feature cache on a shared filesystem that takes the writes of all GPUs at once "
        f"({args.gpus} x 80 MB per wave); the efficiency measured here on 2 shared cores "
        "(a lower bound: the units share nothing but the cache); no checkpoint fails; the driver only "
        "schedules and collects (~1 KB per result)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
