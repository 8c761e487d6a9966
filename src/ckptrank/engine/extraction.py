"""Batched feature extraction: checkpoint x dataset -> features (+ source-class probabilities).

:func:`extract` runs a checkpoint over a :class:`~ckptrank.data.TargetDataset` with a torch
``DataLoader`` (the checkpoint's ``prepare`` is the collate function, so decoding runs in the
workers), under ``torch.inference_mode``, with mixed precision on CUDA, halving the batch on
out-of-memory errors, and, given a :class:`~ckptrank.engine.cache.FeatureCache`, serving repeats
from the cache and saving finished chunks so that an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from ..data.dataset import TargetDataset
from ..data.sources import HFColumn
from .cache import FeatureCache, cache_key
from .progress import progress_bar

__all__ = ["Extracted", "extract", "extraction_key"]

logger = logging.getLogger(__name__)

_OOM_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory")


@dataclass(frozen=True)
class Extracted:
    """Features of one checkpoint on one dataset.

    Attributes
    ----------
    features : ndarray of shape (n_samples, n_features), float32
    source_probs : ndarray of shape (n_samples, n_source_classes), float32, or None
        Softmax (computed in float64) of the checkpoint's source-class logits; None when the
        checkpoint has no head, an intermediate layer was chosen, or the data were features.
    labels : ndarray of shape (n_samples,), int64
        The dataset's class codes.
    seconds : float
        Wall time of this call.
    from_cache : bool
        Whether the whole result came from the feature cache.
    key : str or None
        The cache key (None without a cache).
    batches_computed : int
        Forward passes run by this call (0 on a cache hit; fewer after resuming).
    resumed_from : int
        Rows taken from partial shards of an interrupted run.
    batch_size : int or None
        The batch size in use at the end (smaller than requested after an out-of-memory shrink).
    precision : str
        ``"fp32"``, ``"amp-bf16"`` or ``"amp-fp16"``.
    """

    features: np.ndarray
    source_probs: np.ndarray | None
    labels: np.ndarray
    seconds: float
    from_cache: bool
    key: str | None = None
    batches_computed: int = 0
    resumed_from: int = 0
    batch_size: int | None = None
    precision: str = "fp32"


class _Items(torch.utils.data.Dataset):
    """Map-style view of ``items[start:]`` for the DataLoader."""

    def __init__(self, items: Sequence[Any], start: int) -> None:
        self.items = items
        self.start = start

    def __len__(self) -> int:
        return len(self.items) - self.start

    def __getitem__(self, i: int) -> Any:
        return self.items[self.start + i]


def _is_oom(err: BaseException) -> bool:
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(err, oom_type):
        return True
    return isinstance(err, RuntimeError) and any(m in str(err).lower() for m in _OOM_MARKERS)


def _resolve_amp(amp: bool | str, device: torch.device) -> torch.dtype | None:
    if amp not in ("auto", True, False):
        raise ValueError(f"amp must be 'auto', True or False, not {amp!r}")
    if amp is False or device.type != "cuda":
        return None  # mixed precision on CUDA only
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _precision_tag(amp_dtype: torch.dtype | None) -> str:
    if amp_dtype is None:
        return "fp32"
    return "amp-bf16" if amp_dtype == torch.bfloat16 else "amp-fp16"


def _resolve_workers(num_workers: int | str, dataset: TargetDataset) -> int:
    if num_workers == "auto":
        items = dataset.items
        decodes = isinstance(items, HFColumn) or (
            dataset.modality == "image"
            and isinstance(items, list | tuple)
            and len(items) > 0
            and isinstance(items[0], str | os.PathLike)
        )
        return min(4, max(0, (os.cpu_count() or 1) - 1)) if decodes else 0
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be a non-negative integer or 'auto', not {num_workers!r}")
    return num_workers


def _to_device(batch: Any, device: torch.device) -> Any:
    if device.type == "cpu" and isinstance(batch, torch.Tensor) and batch.device.type == "cpu":
        return batch
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=device.type == "cuda")
    if hasattr(batch, "to") and callable(batch.to):  # e.g. a tokenizer's BatchEncoding
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _slice_batch(batch: Any, a: int, b: int, n: int) -> tuple[Any, bool]:
    """Rows ``a:b`` of every tensor with ``n`` rows in a prepared batch; (sliced, found a tensor)."""
    if isinstance(batch, torch.Tensor):
        if batch.ndim and batch.shape[0] == n:
            return batch[a:b], True
        return batch, False
    if isinstance(batch, Mapping):
        parts = {k: _slice_batch(v, a, b, n) for k, v in batch.items()}
        sliced = {k: v for k, (v, _) in parts.items()}
        try:
            rebuilt = type(batch)(sliced)
        except Exception:  # a mapping type that cannot be rebuilt from a dict
            rebuilt = sliced
        return rebuilt, any(found for _, found in parts.values())
    if isinstance(batch, list | tuple):
        parts_seq = [_slice_batch(v, a, b, n) for v in batch]
        return type(batch)(v for v, _ in parts_seq), any(found for _, found in parts_seq)
    return batch, False


def _forward(
    checkpoint: Any, batch: Any, device: torch.device, amp_dtype: torch.dtype | None, n: int
) -> tuple[np.ndarray, np.ndarray | None]:
    batch = _to_device(batch, device)
    with torch.inference_mode():
        if amp_dtype is not None:
            with torch.autocast(device_type=device.type, dtype=amp_dtype):
                out = checkpoint.forward(batch)
        else:
            out = checkpoint.forward(batch)
        features = out.features
        if not isinstance(features, torch.Tensor) or features.ndim != 2 or features.shape[0] != n:
            shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise ValueError(
                f"checkpoint {getattr(checkpoint, 'spec', '?')} returned features of shape {shape} "
                f"for a batch of {n} items; expected ({n}, n_features)"
            )
        feats = features.detach().to(device="cpu", dtype=torch.float32).numpy().copy()
        probs = None
        if out.logits is not None:
            logits = out.logits.detach().to(device="cpu", dtype=torch.float64)
            if logits.ndim != 2 or logits.shape[0] != n:
                raise ValueError(
                    f"checkpoint {getattr(checkpoint, 'spec', '?')} returned logits of shape "
                    f"{tuple(logits.shape)} for a batch of {n} items"
                )
            probs = torch.softmax(logits, dim=1).to(torch.float32).numpy().copy()
    return feats, probs


class _Rows:
    """Extracted rows: parts already saved (or resumed) plus the pending rows of the next shard."""

    def __init__(self, features: list[np.ndarray], probs: list[np.ndarray], *, start: int) -> None:
        self.features, self.probs = features, probs
        self.pending_features: list[np.ndarray] = []
        self.pending_probs: list[np.ndarray] = []
        self.shard_start = start

    @property
    def pending(self) -> int:
        return sum(len(f) for f in self.pending_features)

    def add(self, features: np.ndarray, probs: np.ndarray | None) -> None:
        self.pending_features.append(features)
        if probs is not None:
            self.pending_probs.append(probs)

    def _flush(self) -> tuple[np.ndarray, np.ndarray | None]:
        feats = np.concatenate(self.pending_features)
        probs = np.concatenate(self.pending_probs) if self.pending_probs else None
        self.features.append(feats)
        if probs is not None:
            self.probs.append(probs)
        self.pending_features, self.pending_probs = [], []
        return feats, probs

    def save_shard(self, cache: FeatureCache, key: str, meta: dict[str, Any]) -> None:
        """Write the pending rows as a partial shard of ``key``."""
        feats, probs = self._flush()
        meta.setdefault("n_features", int(feats.shape[1]))
        meta.setdefault("n_source_classes", None if probs is None else int(probs.shape[1]))
        stop = self.shard_start + len(feats)
        cache.put_partial(key, self.shard_start, stop, features=feats, source_probs=probs, meta=meta)
        self.shard_start = stop

    def result(self) -> tuple[np.ndarray, np.ndarray | None]:
        if self.pending_features:
            self._flush()
        return np.concatenate(self.features), (np.concatenate(self.probs) if self.probs else None)


def _run_batch(
    checkpoint: Any,
    batch: Any,
    items: Sequence[Any],
    first: int,
    size: int,
    micro: int,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    rows: _Rows,
) -> tuple[int, int]:
    """Forward one loader batch in chunks of ``micro`` items, halving ``micro`` on out-of-memory.

    Returns the (possibly smaller) chunk size and the number of forward passes that succeeded.
    """
    done = forwards = 0
    while done < size:
        step = min(micro, size - done)
        if step == size:
            sub = batch
        else:
            sub, found = _slice_batch(batch, done, done + step, size)
            if not found:  # an opaque batch type: prepare the chunk again from the raw items
                sub = checkpoint.prepare([items[i] for i in range(first + done, first + done + step)])
        try:
            feats, probs = _forward(checkpoint, sub, device, amp_dtype, step)
        except (RuntimeError, MemoryError) as err:
            if not (_is_oom(err) or isinstance(err, MemoryError)):
                raise
            oom = True
        else:
            oom = False
        if oom:
            sub = None
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if step <= 1:
                spec = getattr(checkpoint, "spec", "?")
                raise RuntimeError(
                    f"out of memory on {device} even with a batch of 1 item for checkpoint {spec}; "
                    "free memory, use a smaller input size, or device='cpu'"
                ) from None
            micro = max(1, step // 2)
            logger.warning("out of memory with batch %d on %s; retrying with batch %d", step, device, micro)
            continue
        rows.add(feats, probs)
        forwards += 1
        done += step
    return micro, forwards


def extraction_key(
    checkpoint: Any,
    dataset: TargetDataset,
    *,
    precision: str = "fp32",
    weights_fingerprint: str | None = None,
) -> str:
    """The feature-cache key of ``checkpoint`` on ``dataset`` (see :func:`.cache.cache_key`)."""
    return cache_key(
        weights_fingerprint=weights_fingerprint or checkpoint.weights_fingerprint(),
        layer=getattr(checkpoint, "layer", None),
        dataset_fingerprint=dataset.fingerprint(),
        preprocessing=checkpoint.preprocessing.to_dict(),
        subsample=dataset.subsample,
        precision=precision,
    )


def _features_result(dataset: TargetDataset, t0: float) -> Extracted:
    assert dataset.features is not None  # guaranteed by TargetDataset for modality "features"
    return Extracted(
        features=dataset.features,
        source_probs=None,
        labels=dataset.labels,
        seconds=time.perf_counter() - t0,
        from_cache=False,
    )


def extract(
    checkpoint: Any,
    dataset: TargetDataset,
    *,
    batch_size: int = 64,
    num_workers: int | Literal["auto"] = 0,
    device: str | torch.device | None = None,
    amp: bool | Literal["auto"] = "auto",
    cache: FeatureCache | None = None,
    progress: bool | None = None,
    shard_batches: int = 16,
) -> Extracted:
    """Extract features (and source-class probabilities) of ``checkpoint`` on ``dataset``.

    Parameters
    ----------
    checkpoint : Checkpoint
        A loaded checkpoint (:func:`ckptrank.adapters.load_checkpoint`); ignored (may be None)
        for a ``"features"`` dataset, whose stored features are returned as they are.
    dataset : TargetDataset
    batch_size : int, default 64
        Items per forward pass; halved (repeatedly) when a batch runs out of memory.
    num_workers : int or "auto", default 0
        DataLoader worker processes running ``checkpoint.prepare``. ``"auto"`` uses up to 4
        (cores - 1) when items are image files to decode, else 0.
    device : str or torch.device, optional
        Move the checkpoint there first; default: where it is.
    amp : bool or "auto", default "auto"
        Mixed precision (bfloat16, else float16) on CUDA; "auto" = on for CUDA. Ignored on
        other devices. Part of the cache key, since it changes the features.
    cache : FeatureCache, optional
        Serve a repeat from the cache, store the result, and checkpoint progress every
        ``shard_batches`` batches so that a killed run resumes from the last finished chunk.
    progress : bool, optional
        Progress bar on stderr; default only when stderr is a terminal. Never when
        ``CKPTRANK_DISABLE_PROGRESS_BARS`` is set.
    shard_batches : int, default 16
        Batches per partial shard written to the cache.

    Returns
    -------
    Extracted

    Raises
    ------
    ValueError
        Bad arguments, empty dataset, modality mismatch, or malformed checkpoint outputs.
    RuntimeError
        Out of memory even with a batch of one item.
    """
    t0 = time.perf_counter()
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")
    if isinstance(shard_batches, bool) or not isinstance(shard_batches, int) or shard_batches < 1:
        raise ValueError(f"shard_batches must be a positive integer, not {shard_batches!r}")
    if not isinstance(dataset, TargetDataset):
        raise ValueError(
            f"dataset must be a TargetDataset (see ckptrank.data.load_dataset), not {type(dataset).__name__}"
        )
    if len(dataset) == 0:
        raise ValueError(f"dataset {dataset.name!r} has no samples")
    if dataset.modality == "features":
        return _features_result(dataset, t0)
    spec = getattr(checkpoint, "spec", type(checkpoint).__name__)
    if getattr(checkpoint, "modality", dataset.modality) != dataset.modality:
        raise ValueError(
            f"checkpoint {spec} takes {checkpoint.modality} inputs but dataset {dataset.name!r} holds "
            f"{dataset.modality} samples"
        )
    workers = _resolve_workers(num_workers, dataset)
    if device is not None:
        checkpoint = checkpoint.to(device)
    dev = torch.device(checkpoint.device)
    amp_dtype = _resolve_amp(amp, dev)
    precision = _precision_tag(amp_dtype)
    n = len(dataset)

    key = None
    feature_parts: list[np.ndarray] = []
    prob_parts: list[np.ndarray] = []
    resumed_from = 0
    meta: dict[str, Any] = {}
    if cache is not None:
        weights_fingerprint = checkpoint.weights_fingerprint()
        key = extraction_key(
            checkpoint, dataset, precision=precision, weights_fingerprint=weights_fingerprint
        )
        hit = cache.get(key)
        if hit is not None and len(hit.features) == n:
            return Extracted(
                features=hit.features,
                source_probs=hit.source_probs,
                labels=dataset.labels,
                seconds=time.perf_counter() - t0,
                from_cache=True,
                key=key,
                precision=precision,
            )
        partial = cache.load_partial(key)
        if partial is not None and partial.n_done <= n:
            feature_parts.append(partial.features)
            if partial.source_probs is not None:
                prob_parts.append(partial.source_probs)
            resumed_from = partial.n_done
            logger.info("resuming %s on %s from %d/%d cached rows", spec, dataset.name, resumed_from, n)
        meta = {
            "checkpoint": spec,
            "checkpoint_name": getattr(checkpoint, "name", spec),
            "layer": getattr(checkpoint, "layer", None),
            "dataset": dataset.name,
            "split": dataset.split,
            "dataset_source": dataset.source,
            "dataset_fingerprint": dataset.fingerprint(),
            "weights_fingerprint": weights_fingerprint,
            "preprocessing": checkpoint.preprocessing.to_dict(),
            "subsample": dataset.subsample,
            "precision": precision,
            "n_samples": n,
        }

    rows = _Rows(feature_parts, prob_parts, start=resumed_from)
    micro, batches, pos = batch_size, 0, resumed_from
    loader = torch.utils.data.DataLoader(
        _Items(dataset.items, resumed_from),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=checkpoint.preparer() if workers > 0 else checkpoint.prepare,
        pin_memory=dev.type == "cuda" and workers > 0,
    )
    bar = progress_bar(total=n, initial=resumed_from, desc=f"features {spec}", unit="item", enabled=progress)
    with bar:
        for batch in loader:
            size = min(batch_size, n - pos)
            micro, n_forward = _run_batch(
                checkpoint, batch, dataset.items, pos, size, micro, dev, amp_dtype, rows
            )
            batches += n_forward
            pos += size
            bar.update(size)
            if (
                cache is not None
                and key is not None
                and pos < n
                and rows.pending >= shard_batches * batch_size
            ):
                rows.save_shard(cache, key, meta)
    features, source_probs = rows.result()
    if len(features) != n or (source_probs is not None and len(source_probs) != n):
        raise ValueError(
            f"extracted {len(features)} feature rows for {n} samples; the checkpoint's head must return "
            "logits for every batch or for none"
        )
    if cache is not None and key is not None:
        meta["extract_seconds"] = round(time.perf_counter() - t0, 3)
        cache.put(key, features=features, source_probs=source_probs, labels=dataset.labels, meta=meta)
        cache.clear_partial(key)
    return Extracted(
        features=features,
        source_probs=source_probs,
        labels=dataset.labels,
        seconds=time.perf_counter() - t0,
        from_cache=False,
        key=key,
        batches_computed=batches,
        resumed_from=resumed_from,
        batch_size=micro,
        precision=precision,
    )
