"""Feature-extraction throughput of ``ckptrank.engine.extract`` and the speed-up of its cache.

Usage::

    python benchmarks/bench_extract.py                 # writes its section of RESULTS.md
    python benchmarks/bench_extract.py --n 512 --runs 5 --no-write

(a) Engine overhead: ``extract`` against a bare ``checkpoint.forward(x)`` loop (the model call,
    features and logits, under ``torch.inference_mode``) over the SAME pre-built input tensors
    and batch size. The engine gets a dataset whose items are those tensors and whose
    ``prepare`` only stacks them, so the comparison isolates the engine (DataLoader, batching,
    device moves, float64 softmax, bookkeeping). Runs alternate engine/bare to share the load
    of a busy machine fairly; medians are reported. Target: engine >= 0.90 x bare.
(b) Cache: the first ``extract`` of the checkpoint on real data (full ``prepare``, into an empty
    cache) against a second identical call served from the cache. Target: >= 20x faster.

The checkpoint is the real built-in EfficientNet-Lite0 at 112 px when ``ckptrank.adapters``
provides it, else a small random CNN.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("RESULTS.md")
START, END = "<!-- bench_extract:start -->", "<!-- bench_extract:end -->"
MACHINE = "2-core x86_64 CPU (shared)"
THROUGHPUT_TARGET = 0.90
CACHE_TARGET = 20.0


def _load_checkpoint(name: str) -> tuple[Any, str]:
    try:
        from ckptrank.adapters import load_checkpoint
    except ImportError:
        return _fallback_checkpoint(), "random CNN (ckptrank.adapters.load_checkpoint unavailable)"
    return load_checkpoint(name), name


def _fallback_checkpoint() -> Any:
    import hashlib

    import numpy as np
    import torch
    from torch import nn

    from ckptrank.adapters._base import Checkpoint, ModelOutput, Preprocessing

    class SmallCNN(Checkpoint):
        spec = name = "bench:small-cnn"
        modality = "image"
        layer = None
        card: dict[str, Any] = {}  # noqa: RUF012

        def __init__(self) -> None:
            torch.manual_seed(0)
            self.body = nn.Sequential(
                nn.Conv2d(3, 32, 3, stride=2), nn.ReLU(), nn.Conv2d(32, 64, 3, stride=2), nn.ReLU(),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            ).eval()  # fmt: skip
            self.head = nn.Linear(64, 1000).eval()

        @property
        def preprocessing(self) -> Preprocessing:
            return Preprocessing(modality="image", image_size=112)

        def prepare(self, items: Sequence[Any]) -> torch.Tensor:
            arrays = [np.broadcast_to(np.asarray(it, np.float32)[None], (3, *np.shape(it))) for it in items]
            return torch.nn.functional.interpolate(torch.from_numpy(np.stack(arrays)) / 255.0, size=112)

        def forward(self, batch: torch.Tensor) -> ModelOutput:
            features = self.body(batch)
            return ModelOutput(features=features, logits=self.head(features))

        def weights_fingerprint(self) -> str:
            h = hashlib.sha256()
            for t in [*self.body.state_dict().values(), *self.head.state_dict().values()]:
                h.update(t.numpy().tobytes())
            return h.hexdigest()

        def num_parameters(self) -> int:
            return sum(p.numel() for p in self.body.parameters())

        def layer_names(self) -> list[str]:
            return []

    return SmallCNN()


class _Prebuilt:
    """A checkpoint whose items are already model inputs: ``prepare`` only stacks them."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def prepare(self, items: Sequence[Any]) -> Any:
        import torch

        return torch.stack(list(items))


def _throughput(ckpt: Any, n: int, batch_size: int, runs: int) -> dict[str, Any]:
    import numpy as np
    import torch

    from ckptrank.data import TargetDataset, load_dataset
    from ckptrank.engine import extract

    source = load_dataset("builtin:fashion-mnist", split="test")
    raw = [source.items[i] for i in range(n)]
    inputs = torch.cat([ckpt.prepare(raw[i : i + batch_size]) for i in range(0, n, batch_size)])
    batches = [inputs[i : i + batch_size] for i in range(0, n, batch_size)]
    dataset = TargetDataset(items=inputs, labels=source.labels[:n], modality="image", name="prebuilt")
    engine_ckpt = _Prebuilt(ckpt)

    def bare() -> float:
        t0 = time.perf_counter()
        with torch.inference_mode():
            for x in batches:
                out = ckpt.forward(x)
                out.features.float().numpy()
        return time.perf_counter() - t0

    def engine() -> float:
        t0 = time.perf_counter()
        extract(engine_ckpt, dataset, batch_size=batch_size, progress=False)
        return time.perf_counter() - t0

    with torch.inference_mode():  # warm-up (allocator, kernels)
        ckpt.forward(batches[0])
    times: dict[str, list[float]] = {"bare": [], "engine": []}
    for run in range(runs):
        order = (("engine", engine), ("bare", bare)) if run % 2 else (("bare", bare), ("engine", engine))
        for label, fn in order:
            times[label].append(fn())
            print(f"  run {run + 1} {label:6s} {times[label][-1]:.2f} s", file=sys.stderr)
    bare_ips = n / statistics.median(times["bare"])
    engine_ips = n / statistics.median(times["engine"])
    check = extract(engine_ckpt, dataset, batch_size=batch_size, progress=False)
    with torch.inference_mode():
        ref = np.concatenate([ckpt.forward(x).features.float().numpy() for x in batches])
    assert np.allclose(check.features, ref, rtol=1e-4, atol=1e-5), "engine and bare loop disagree"
    return {"bare_ips": bare_ips, "engine_ips": engine_ips, "ratio": engine_ips / bare_ips, "times": times}


def _cache_speedup(ckpt: Any, per_class: int, batch_size: int) -> dict[str, Any]:
    import numpy as np

    from ckptrank.data import load_dataset
    from ckptrank.engine import FeatureCache, extract

    dataset = load_dataset("builtin:fashion-mnist", split="test", per_class=per_class, seed=0)
    with tempfile.TemporaryDirectory() as root:
        cache = FeatureCache(root)
        first = extract(ckpt, dataset, batch_size=batch_size, cache=cache, progress=False)
        second = extract(ckpt, dataset, batch_size=batch_size, cache=cache, progress=False)
    assert second.from_cache and np.array_equal(first.features, second.features)
    return {
        "n": len(dataset),
        "first": first.seconds,
        "second": second.seconds,
        "ratio": first.seconds / second.seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint", default="efficientnet-lite0", help="built-in checkpoint (112 px default)"
    )
    parser.add_argument("--n", type=int, default=256, help="images for the throughput comparison")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each (median reported)")
    parser.add_argument("--per-class", type=int, default=20, help="fashion-mnist images per class for (b)")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args(argv)
    os.environ.setdefault("CKPTRANK_DISABLE_PROGRESS_BARS", "1")

    import torch

    ckpt, label = _load_checkpoint(args.checkpoint)
    size = getattr(ckpt.preprocessing, "image_size", None)
    print(f"checkpoint {label} at {size} px; throughput over {args.n} images", file=sys.stderr)
    tp = _throughput(ckpt, args.n, args.batch_size, args.runs)
    print("cache speed-up", file=sys.stderr)
    cs = _cache_speedup(ckpt, args.per_class, args.batch_size)
    tp_ok, cs_ok = tp["ratio"] >= THROUGHPUT_TARGET, cs["ratio"] >= CACHE_TARGET
    lines = [
        START,
        "## Feature extraction (bench_extract.py)",
        "",
        f"Machine: {MACHINE}, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"Python {platform.python_version()}. Checkpoint: {label} at {size} px, batch {args.batch_size}. "
        "Other jobs shared the machine, so absolute speeds vary between runs; the ratios are what the "
        "targets judge.",
        f"Command: `python benchmarks/bench_extract.py --n {args.n} --runs {args.runs} "
        f"--batch-size {args.batch_size} --per-class {args.per_class}`",
        "",
        f"(a) `extract` vs a bare `checkpoint.forward(x)` loop over the same {args.n} pre-built "
        f"3x{size}x{size} input tensors (Fashion-MNIST test images), median of {args.runs} alternating runs:",
        "",
        "| path | images/s | median s | runs (s) |",
        "|---|---:|---:|---|",
    ]
    for key, name in (("bare", "bare forward loop"), ("engine", "ckptrank `extract`")):
        times = tp["times"][key]
        ips = tp[f"{key}_ips"]
        runs = ", ".join(f"{t:.2f}" for t in times)
        lines.append(f"| {name} | {ips:.1f} | {statistics.median(times):.2f} | {runs} |")
    lines += [
        "",
        f"Engine / bare throughput: **{tp['ratio']:.3f}** (target >= {THROUGHPUT_TARGET:.2f}: "
        f"{'met' if tp_ok else '**not met**'}).",
        "",
        f"(b) Cache: {cs['n']} Fashion-MNIST test images (`per_class={args.per_class}`) through the full "
        "pipeline (`prepare` included) into an empty cache, then the same call again:",
        "",
        "| call | seconds |",
        "|---|---:|",
        f"| first (computed, written to the cache) | {cs['first']:.3f} |",
        f"| second (served from the cache) | {cs['second']:.4f} |",
        "",
        f"Speed-up: **{cs['ratio']:.0f}x** "
        f"(target >= {CACHE_TARGET:.0f}x: {'met' if cs_ok else '**not met**'}).",
        END,
    ]
    section = "\n".join(lines)
    print(section)
    if not args.no_write:
        _write_section(section)
    return 0 if tp_ok and cs_ok else 1


def _write_section(section: str) -> None:
    """Replace this script's section of RESULTS.md (between its markers), keeping the others."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    tmp = RESULTS.with_name(f".{RESULTS.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, RESULTS)


if __name__ == "__main__":
    raise SystemExit(main())
