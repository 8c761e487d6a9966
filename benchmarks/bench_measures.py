"""Time every registered static measure and its peak memory at the issue's two sizes.

Usage::

    python benchmarks/bench_measures.py              # both sizes, 3 runs each, writes RESULTS.md
    python benchmarks/bench_measures.py --runs 5 --sizes small
    python benchmarks/bench_measures.py --device cuda  # GPU figures where a GPU exists

Features come from ``ckptrank.testing.synthetic.realistic_features`` (clustered, decaying
spectrum like pooled CNN features; float32 as extracted). Source probabilities for LEEP/NCE
are a 1000-way softmax informative about the labels. Each measure runs in a fresh worker
process (so one measure's memory does not count against another); peak memory is the
largest resident-set increase over the process's level before the call, sampled every 5 ms.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import re
import statistics
import sys
import threading
import time
from pathlib import Path

SIZES = {
    "large-d": dict(n=10_000, d=2_048, n_classes=100),
    "large-n": dict(n=50_000, d=768, n_classes=10),
}
TARGET_SECONDS = {"linear_probe": 60.0}
DEFAULT_TARGET = 10.0
ALL_TARGET = 30.0
RESULTS = Path(__file__).with_name("RESULTS.md")
START, END = "<!-- bench_measures:start -->", "<!-- bench_measures:end -->"


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _PeakSampler:
    def __init__(self) -> None:
        self.base = _rss_bytes()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(0.005)

    def __enter__(self) -> _PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


def _make_inputs(size: str) -> tuple:
    import numpy as np

    from ckptrank.testing.synthetic import realistic_features, source_probs_for

    cfg = SIZES[size]
    X, y = realistic_features(cfg["n"], cfg["d"], cfg["n_classes"], random_state=0)
    P = source_probs_for(y, 1000, strength=3.0, random_state=1).astype(np.float32)
    return X, y, P


def _worker(size: str, names: list[str], runs: int, device: str | None, queue: mp.Queue) -> None:
    import ckptrank

    X, y, P = _make_inputs(size)
    out = {}
    for name in names:
        spec = ckptrank.get_measure(name)
        options = {"device": device} if device and "device" in spec.func.__code__.co_varnames else {}
        times, peaks, value = [], [], None
        for _ in range(runs):
            with _PeakSampler() as sampler:
                t0 = time.perf_counter()
                value = ckptrank.score(name, X, y, source_probs=P, **options)
                times.append(time.perf_counter() - t0)
            peaks.append(sampler.peak - sampler.base)
        out[name] = {"seconds": times, "peak_mb": max(peaks) / 2**20, "value": value}
    queue.put(out)


def _run_isolated(size: str, names: list[str], runs: int, device: str | None) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_worker, args=(size, names, runs, device, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            model = re.search(r"model name\s*:\s*(.+)", fh.read())
            cpu = model.group(1).strip() if model else cpu
    except OSError:
        pass
    return f"{os.cpu_count()}-core {platform.machine()} ({cpu}), Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="timed runs per measure (median reported)")
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"comma list of {list(SIZES)}")
    parser.add_argument("--measures", default=None, help="comma list (default: every static measure)")
    parser.add_argument("--device", default=None, help="device option for measures that take one")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args(argv)

    import ckptrank

    names = args.measures.split(",") if args.measures else ckptrank.list_measures(kind="static")
    lines = [
        START,
        "## Measures (bench_measures.py)",
        "",
        f"Machine: {_machine()}. Device option: {args.device or 'default (CPU, float64)'}. "
        f"Median of {args.runs} runs, each measure in a fresh process; peak = resident-memory increase "
        "during the call. Features: `realistic_features` (float32); "
        "LEEP/NCE get 1000-way source probabilities.",
        f"Command: `python benchmarks/bench_measures.py --runs {args.runs}`"
        + (f" --device {args.device}" if args.device else ""),
        "",
    ]
    all_ok = True
    for size in args.sizes.split(","):
        cfg = SIZES[size]
        results = _run_isolated(size, names, args.runs, args.device)
        total = sum(statistics.median(r["seconds"]) for r in results.values())
        total_static = sum(
            statistics.median(r["seconds"]) for name, r in results.items() if name != "linear_probe"
        )
        lines += [
            f"### n={cfg['n']:,}, d={cfg['d']:,}, C={cfg['n_classes']}",
            "",
            "| measure | median s | min s | max s | peak MB | target s | met | score |",
            "|---|---:|---:|---:|---:|---:|---|---:|",
        ]
        for name in names:
            r = results[name]
            med = statistics.median(r["seconds"])
            target = TARGET_SECONDS.get(name, DEFAULT_TARGET)
            ok = med < target
            all_ok &= ok
            lines.append(
                f"| {name} | {med:.2f} | {min(r['seconds']):.2f} | {max(r['seconds']):.2f} | "
                f"{r['peak_mb']:.0f} | {target:.0f} | {'yes' if ok else '**no**'} | {r['value']:.4g} |"
            )
            print(f"[{size}] {name:14s} median {med:7.2f}s  peak {r['peak_mb']:7.0f} MB", file=sys.stderr)
        ok_all = total_static < ALL_TARGET
        all_ok &= ok_all
        lines += [
            "",
            f"All measures but `linear_probe` together on this matrix: **{total_static:.1f} s** "
            f"(target < {ALL_TARGET:.0f} s: {'met' if ok_all else '**not met**'}); "
            f"all {len(names)} including `linear_probe`: {total:.1f} s. "
            f"Load average (1 min) when this size finished: {os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} cores.",
            "",
        ]
    lines.append(END)
    section = "\n".join(lines)
    print(section)
    if not args.no_write:
        _write_section(section)
    json.dump({"all_targets_met": all_ok}, sys.stderr)
    print(file=sys.stderr)
    return 0


def _write_section(section: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())
