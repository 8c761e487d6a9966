"""Tiny checkpoints for the engine tests (and a script entry point for the subprocess tests).

Run as a script: ``python fakes.py CACHE_DIR N_ITEMS DELAY BATCH_SIZE SHARD_BATCHES`` extracts the
slow tiny CNN over :func:`array_dataset` with a feature cache and prints the batches computed.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ckptrank.adapters._base import Checkpoint, ModelOutput, Preprocessing
from ckptrank.data import TargetDataset

SIDE = 12


def _fingerprint(module: nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _to_gray(item: Any) -> np.ndarray:
    """Any supported raw image item -> (SIDE, SIDE) float32 in [0, 1]."""
    from PIL import Image

    if isinstance(item, str | Path):
        with Image.open(item) as im:
            image = im.convert("L").resize((SIDE, SIDE))
            return np.asarray(image, dtype=np.float32) / 255.0
    if isinstance(item, Image.Image):
        return np.asarray(item.convert("L").resize((SIDE, SIDE)), dtype=np.float32) / 255.0
    array = np.asarray(item)
    if array.ndim == 3:
        array = array.mean(axis=2)
    if array.shape != (SIDE, SIDE):
        array = np.asarray(Image.fromarray(array.astype(np.uint8)).resize((SIDE, SIDE)), dtype=np.float32)
    return array.astype(np.float32) / 255.0


class TinyCNN(Checkpoint):
    """4-d pooled conv features and 3 source-class logits; optional delay / OOM simulation."""

    modality = "image"

    def __init__(
        self, *, seed: int = 0, delay: float = 0.0, oom_above: int | None = None, head: bool = True
    ) -> None:
        torch.manual_seed(seed)
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4, 3) if head else None
        self.spec = f"test:tiny-cnn-{seed}"
        self.name = self.spec
        self.layer = None
        self.card = {}
        self.delay = delay
        self.oom_above = oom_above
        self.forward_sizes: list[int] = []
        self._device = torch.device("cpu")

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(modality="image", image_size=SIDE, mean=(0.0,), std=(1.0,))

    def prepare(self, items: Sequence[Any]) -> torch.Tensor:
        if len(items) and isinstance(items[0], torch.Tensor):
            return torch.stack(list(items))
        return torch.from_numpy(np.stack([_to_gray(it) for it in items]))[:, None]

    def forward(self, batch: torch.Tensor) -> ModelOutput:
        if self.oom_above is not None and batch.shape[0] > self.oom_above:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        self.forward_sizes.append(int(batch.shape[0]))
        if self.delay:
            time.sleep(self.delay)
        features = self.body(batch)
        return ModelOutput(features=features, logits=self.head(features) if self.head is not None else None)

    def weights_fingerprint(self) -> str:
        modules = nn.ModuleList([self.body] + ([self.head] if self.head is not None else []))
        return _fingerprint(modules)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.body.parameters())

    def layer_names(self) -> list[str]:
        return ["body"]

    @property
    def has_head(self) -> bool:
        return self.head is not None

    @property
    def device(self) -> torch.device:
        return self._device

    def to(self, device: str | torch.device) -> TinyCNN:
        self._device = torch.device(device)
        self.body.to(self._device)
        if self.head is not None:
            self.head.to(self._device)
        return self

    def reference(self, items: Sequence[Any]) -> tuple[np.ndarray, np.ndarray | None]:
        """Features and logits computed directly, one item at a time (float64 logits)."""
        feats, logits = [], []
        with torch.no_grad():
            for item in items:
                f = self.body(self.prepare([item]))
                feats.append(f.numpy()[0])
                if self.head is not None:
                    logits.append(self.head(f).double().numpy()[0])
        return np.asarray(feats), (np.asarray(logits) if logits else None)


class BagOfChars(Checkpoint):
    """Text model: letter counts -> 8-d linear features, no head."""

    modality = "text"

    def __init__(self, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.linear = nn.Linear(27, 8)
        self.spec = "test:bag-of-chars"
        self.name = self.spec
        self.layer = None
        self.card = {}

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(modality="text", max_length=None, extra={"alphabet": "a-z+other"})

    def prepare(self, items: Sequence[str]) -> torch.Tensor:
        counts = np.zeros((len(items), 27), dtype=np.float32)
        for row, text in enumerate(items):
            for ch in text.lower():
                idx = ord(ch) - ord("a")
                counts[row, idx if 0 <= idx < 26 else 26] += 1
        return torch.from_numpy(counts / np.maximum(counts.sum(axis=1, keepdims=True), 1))

    def forward(self, batch: torch.Tensor) -> ModelOutput:
        return ModelOutput(features=self.linear(batch))

    def weights_fingerprint(self) -> str:
        return _fingerprint(self.linear)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.linear.parameters())

    def layer_names(self) -> list[str]:
        return []


def array_dataset(n: int, *, seed: int = 0, n_classes: int = 3) -> TargetDataset:
    """``n`` random uint8 SIDE x SIDE images with balanced labels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, SIDE, SIDE), dtype=np.uint8)
    return TargetDataset(
        items=images, labels=np.arange(n) % n_classes, modality="image", name="random-arrays"
    )


def main(argv: list[str]) -> None:
    from ckptrank.engine import FeatureCache, extract

    cache_dir, n, delay, batch_size, shard_batches = argv
    model = TinyCNN(delay=float(delay))
    out = extract(
        model,
        array_dataset(int(n)),
        batch_size=int(batch_size),
        cache=FeatureCache(cache_dir),
        shard_batches=int(shard_batches),
        progress=False,
    )
    print(f"batches={out.batches_computed} resumed={out.resumed_from} cached={out.from_cache}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
