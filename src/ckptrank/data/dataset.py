"""The target data set a checkpoint is ranked for: raw items, labels and provenance.

A :class:`TargetDataset` holds what a checkpoint's ``prepare`` consumes (image paths, PIL
images, uint8 arrays or strings), or precomputed features, together with integer class codes,
the class names, the split it came from, and notes about everything the loader changed
(subsampling, skipped files). Its :meth:`TargetDataset.fingerprint` is a stable content hash
used in feature-cache keys.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "DatasetModality",
    "TargetDataset",
    "encode_labels",
    "items_fingerprint",
    "stratified_subsample_indices",
]

DatasetModality = Literal["image", "text", "features"]
_MODALITIES = ("image", "text", "features")


def encode_labels(labels: Any) -> tuple[np.ndarray, tuple[str, ...]]:
    """Integer codes ``0..C-1`` (sorted unique values) and the class names as strings."""
    raw = np.asarray(labels)
    if raw.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {raw.shape}")
    if raw.dtype == object:
        raw = raw.astype(str)
    if raw.dtype.kind == "f":
        if not np.all(np.isfinite(raw)):
            bad = int(np.count_nonzero(~np.isfinite(raw)))
            raise ValueError(f"labels contain {bad} missing (NaN or inf) values; every sample needs a label")
        if np.all(raw == np.round(raw)):
            raw = raw.astype(np.int64)
    uniques, codes = np.unique(raw, return_inverse=True)
    return codes.astype(np.int64).reshape(-1), tuple(str(u) for u in uniques)


def _hash_array(h: Any, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array)
    h.update(f"array:{array.dtype.str}:{array.shape}:".encode())
    h.update(array.view(np.uint8).reshape(-1).data if array.size else b"")


def _hash_items(h: Any, items: Any, modality: str) -> None:
    if isinstance(items, np.ndarray):
        _hash_array(h, items)
    elif _is_tensor(items):
        _hash_array(h, items.detach().cpu().numpy())
    else:
        for item in items:
            _hash_item(h, item, modality)


def items_fingerprint(items: Any, modality: str) -> str:
    """Content hash (hex sha256) of raw samples, as :meth:`TargetDataset.fingerprint` hashes them.

    Raises
    ------
    ValueError
        An item of a type that cannot be hashed by content.
    """
    h = hashlib.sha256()
    h.update(f"ckptrank-items-v1:{modality}:{len(items)}:".encode())
    _hash_items(h, items, modality)
    return h.hexdigest()


def _hash_item(h: Any, item: Any, modality: str) -> None:
    if isinstance(item, str | os.PathLike) and modality != "text":
        path = os.path.abspath(os.fspath(item))
        try:
            st = os.stat(path)
            token = f"path:{path}:{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            token = f"path:{path}:missing"
        h.update(f"{len(token)}:".encode() + token.encode())
    elif isinstance(item, str):
        data = item.encode("utf-8", errors="surrogatepass")
        h.update(f"text:{len(data)}:".encode() + data)
    elif isinstance(item, bytes | bytearray):
        h.update(f"bytes:{len(item)}:".encode() + bytes(item))
    elif isinstance(item, np.ndarray):
        _hash_array(h, item)
    elif hasattr(item, "tobytes") and hasattr(item, "mode") and hasattr(item, "size"):  # a PIL image
        h.update(f"pil:{item.mode}:{item.size}:".encode())
        h.update(item.tobytes())
    elif _is_tensor(item):
        _hash_array(h, item.detach().cpu().numpy())
    else:
        raise ValueError(
            f"cannot fingerprint a dataset item of type {type(item).__name__}; items must be paths, "
            "strings, bytes, PIL images, numpy arrays or torch tensors"
        )


def _is_tensor(obj: Any) -> bool:
    return type(obj).__module__.startswith("torch") and hasattr(obj, "detach")


def _take(items: Sequence[Any], indices: np.ndarray) -> Sequence[Any]:
    """The items at ``indices`` (numpy/torch arrays stay arrays, lazy columns stay lazy)."""
    if isinstance(items, np.ndarray):
        return items[indices]
    if _is_tensor(items):
        import torch

        return items[torch.as_tensor(indices, dtype=torch.long)]
    take = getattr(items, "take", None)
    if callable(take):
        return take(indices)
    return [items[int(i)] for i in indices]


def stratified_subsample_indices(
    labels: np.ndarray, per_class: int, seed: int
) -> tuple[np.ndarray, list[int]]:
    """Indices of at most ``per_class`` samples of every class, seeded per class.

    Each class draws from its own generator ``default_rng([seed, class_code])``, so the samples
    kept for one class do not depend on the other classes. The indices come back sorted
    (original order); the second value lists the class codes that had fewer than ``per_class``.
    """
    chosen: list[np.ndarray] = []
    short: list[int] = []
    for code in np.unique(labels):
        idx = np.flatnonzero(labels == code)
        if idx.size > per_class:
            rng = np.random.default_rng([seed, int(code)])
            idx = rng.choice(idx, size=per_class, replace=False)
        elif idx.size < per_class:
            short.append(int(code))
        chosen.append(idx)
    out = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
    return out.astype(np.int64), short


@dataclass(eq=False)
class TargetDataset:
    """A labelled target data set, ready for feature extraction.

    Parameters
    ----------
    items : sequence of length n_samples
        Raw inputs for a checkpoint's ``prepare``: image file paths, PIL images or uint8 arrays
        (``modality="image"``), strings (``"text"``), or the feature rows (``"features"``).
    labels : array-like of shape (n_samples,)
        Class labels. Without ``classes`` they may be any sortable values; they are encoded as
        codes ``0..C-1`` in sorted order and ``classes`` holds the original values as strings.
        With ``classes`` they must already be integer codes into ``classes``.
    modality : {"image", "text", "features"}
    name : str
        Display name (``"fashion-mnist"``, a folder name, ...).
    split : str
        The split the samples come from (``"train"``, ``"test"``, ...), or ``"all"`` when the
        source has no split structure. Scores should be computed on ``"train"`` only.
    classes : tuple of str, optional
        Class names indexed by label code.
    features : ndarray of shape (n_samples, n_features), optional
        Precomputed features (required for ``modality="features"``), stored as float32.
    notes : list of str
        What the loader changed or noticed (subsampling, skipped files, tiny classes).
    source : str, optional
        The spec the data set was loaded from.
    subsample : dict, optional
        ``{"per_class": N, "seed": s}`` when the data set is a stratified subsample.
    content_id : str, optional
        A precomputed identity of ``items`` (e.g. hashes of the Arrow files of a Hugging Face
        data set and the selected rows), used by :meth:`fingerprint` instead of hashing items.

    Attributes
    ----------
    labels : ndarray of shape (n_samples,), int64
        Read-only class codes.
    """

    items: Sequence[Any]
    labels: np.ndarray
    modality: DatasetModality
    name: str = "dataset"
    split: str = "all"
    classes: tuple[str, ...] | None = None
    features: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    source: str | None = None
    subsample: dict[str, int] | None = None
    content_id: str | None = None
    _fingerprint: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.modality not in _MODALITIES:
            raise ValueError(f"modality must be one of {', '.join(_MODALITIES)}, not {self.modality!r}")
        if self.classes is None:
            codes, classes = encode_labels(self.labels)
            self.classes = classes
        else:
            self.classes = tuple(str(c) for c in self.classes)
            codes = np.asarray(self.labels)
            if codes.ndim != 1 or (codes.size and codes.dtype.kind not in "iu"):
                raise ValueError("with classes given, labels must be a 1-D array of integer class codes")
            codes = codes.astype(np.int64)
            if codes.size and (codes.min() < 0 or codes.max() >= len(self.classes)):
                raise ValueError(
                    f"label codes span {codes.min()}..{codes.max()} but there are {len(self.classes)} classes"
                )
        codes = np.array(codes, dtype=np.int64)
        codes.flags.writeable = False
        self.labels = codes
        if self.modality == "features":
            if self.features is None:
                raise ValueError("a dataset with modality 'features' needs the features array")
            feats = np.asarray(self.features)
            if feats.ndim != 2:
                raise ValueError(f"features must be 2-D (n_samples, n_features), got shape {feats.shape}")
            if feats.dtype.kind not in "fiub":
                raise ValueError(f"features must be numeric, got dtype {feats.dtype}")
            feats = np.ascontiguousarray(feats, dtype=np.float32)
            if not np.all(np.isfinite(feats)):
                bad = int(np.count_nonzero(~np.isfinite(feats).all(axis=1)))
                raise ValueError(f"features have NaN or inf values in {bad} rows; clean or drop those rows")
            feats.flags.writeable = False
            self.features = feats
            self.items = feats
        if len(self.items) != len(self.labels):
            raise ValueError(
                f"{len(self.items)} items but {len(self.labels)} labels; they must describe the same samples"
            )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_classes(self) -> int:
        """Number of classes (including classes with no sample in this split)."""
        return len(self.classes or ())

    def class_counts(self) -> np.ndarray:
        """Samples per class code, shape ``(n_classes,)``."""
        return np.bincount(self.labels, minlength=self.n_classes)

    def describe(self) -> str:
        """One line: name, split, size and number of classes."""
        present = int(np.count_nonzero(self.class_counts()))
        split = "no split structure" if self.split == "all" else f"{self.split} split"
        return f"{self.name} ({split}, {len(self)} {self.modality} samples, {present} classes)"

    def fingerprint(self) -> str:
        """Stable content hash (hex sha256) of the items, labels, classes and modality.

        Paths contribute their absolute path, size and modification time; arrays, strings and
        images their bytes. The value is computed once and memoised.
        """
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(f"ckptrank-dataset-v1:{self.modality}:{len(self)}:".encode())
            if self.content_id is not None:
                h.update(f"content:{self.content_id}".encode())
            else:
                _hash_items(h, self.items, self.modality)
            _hash_array(h, self.labels)
            h.update("\x00".join(self.classes or ()).encode())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def select(self, indices: Any, *, note: str | None = None, **changes: Any) -> TargetDataset:
        """A new data set with the samples at ``indices`` (same classes), optionally noting why."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        feats = self.features[idx] if self.features is not None else None
        content_id = None
        if self.content_id is not None:
            content_id = hashlib.sha256(self.content_id.encode() + idx.tobytes()).hexdigest()
        notes = [*self.notes, note] if note else list(self.notes)
        return replace(
            self,
            items=feats if feats is not None else _take(self.items, idx),
            labels=self.labels[idx],
            features=feats,
            notes=notes,
            content_id=content_id,
            **changes,
        )

    def item_paths(self) -> list[str] | None:
        """The items as path strings when every item is a path (image files), else None."""
        if self.modality != "image" or isinstance(self.items, np.ndarray) or _is_tensor(self.items):
            return None
        if not isinstance(self.items, list | tuple):
            return None
        if not all(isinstance(it, str | Path) for it in self.items):
            return None
        return [os.fspath(it) for it in self.items]
