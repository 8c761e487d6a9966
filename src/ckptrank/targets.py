"""The target data: the labelled training samples the checkpoints are ranked for.

:func:`load_target` loads a data spec's training split (or takes an already loaded dataset) and
checks that it has labelled samples of at least 2 classes; :func:`dataset_notes`,
:func:`dataset_summary` and :func:`data_name` describe it in a ranking's notes and configuration.
:func:`ckptrank.ranking.rank`, the ensemble choice and the benchmark harness load their target
data here, so they read a data spec the same way.

Unreadable image files
    A data spec loaded without an explicit ``on_unreadable`` uses the policy set for the current
    block by :func:`on_unreadable_default` (``"fail"`` outside any such block).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "OnUnreadable",
    "data_name",
    "dataset_notes",
    "dataset_summary",
    "load_dataset",
    "load_target",
    "on_unreadable_default",
]

OnUnreadable = Literal["fail", "skip"]

#: What :func:`load_target` does with unreadable image files when the caller does not say
#: (set for a block with :func:`on_unreadable_default`, e.g. around the benchmark harness).
_ON_UNREADABLE: contextvars.ContextVar[OnUnreadable] = contextvars.ContextVar(
    "ckptrank_on_unreadable", default="fail"
)


def load_dataset(
    spec: str, *, per_class: int | None, seed: int, on_unreadable: OnUnreadable | None = None
) -> Any:
    """The training split of a data spec (:func:`ckptrank.data.load_dataset` with ``split="train"``).

    Parameters
    ----------
    spec : str
        Target data spec, e.g. ``"builtin:digits"``, an image folder, a CSV of texts or a
        ``.npz`` of features.
    per_class : int, optional
        Keep at most this many samples per class (seeded subsample).
    seed : int
        Seed of the subsample.
    on_unreadable : {"fail", "skip"}, optional
        Missing or unreadable image files: raise, or drop them with a note. None uses the
        policy of the enclosing :func:`on_unreadable_default` block (``"fail"`` outside one).

    Returns
    -------
    ckptrank.data.TargetDataset
        The samples (``labels`` of shape ``(n_samples,)``) with their notes.

    Raises
    ------
    FileNotFoundError
        The spec names no existing file or folder.
    ValueError
        A bad spec, or unreadable image files under the ``"fail"`` policy.
    """
    from ckptrank.data import load_dataset as load_data_spec

    policy = _ON_UNREADABLE.get() if on_unreadable is None else on_unreadable
    return load_data_spec(spec, split="train", per_class=per_class, seed=seed, on_unreadable=policy)


@contextlib.contextmanager
def on_unreadable_default(policy: OnUnreadable) -> Iterator[None]:
    """Within the block, data specs loaded without an explicit ``on_unreadable`` use ``policy``.

    For callers that load target data through code they do not control the arguments of (the
    benchmark harness); :func:`ckptrank.ranking.rank` and
    :func:`ckptrank.ensemble_choice.choose_ensemble` take ``on_unreadable`` directly.

    Parameters
    ----------
    policy : {"fail", "skip"}
        Raise on missing or unreadable image files, or drop them with a note.
    """
    if policy not in ("fail", "skip"):
        raise ValueError(f"on_unreadable must be 'fail' or 'skip', not {policy!r}")
    token = _ON_UNREADABLE.set(policy)
    try:
        yield
    finally:
        _ON_UNREADABLE.reset(token)


def load_target(
    data: Any, per_class: int | None, seed: int, on_unreadable: OnUnreadable | None = None
) -> Any:
    """The target data to rank for: a data spec's training split, or a dataset given as is.

    Parameters
    ----------
    data : str, path or dataset
        A data spec (loaded with :func:`load_dataset`) or an already loaded dataset with
        ``.labels`` of shape ``(n_samples,)``.
    per_class : int, optional
        Keep at most this many samples per class; only for a data spec.
    seed : int
        Seed of the subsample.
    on_unreadable : {"fail", "skip"}, optional
        As in :func:`load_dataset`.

    Returns
    -------
    dataset
        The loaded (or given) dataset.

    Raises
    ------
    ValueError
        ``per_class`` is not a positive integer or is given with a loaded dataset, or the data
        has no labelled samples or fewer than 2 classes (the message names the data, its
        class and its number of samples).
    FileNotFoundError
        The data spec names no existing file or folder.
    """
    if per_class is not None and (not isinstance(per_class, int | np.integer) or per_class < 1):
        raise ValueError(f"per_class must be a positive integer, got {per_class!r}")
    if isinstance(data, str | Path):
        dataset = load_dataset(str(data), per_class=per_class, seed=seed, on_unreadable=on_unreadable)
    else:
        if per_class is not None:
            raise ValueError(
                "per_class applies only when data is a data spec; subsample the dataset yourself"
            )
        dataset = data
    labels = np.asarray(dataset.labels)
    classes = np.unique(labels)
    if labels.size == 0:
        raise ValueError(f"the target data {data_name(data, dataset)!r} has no labelled samples")
    if classes.size < 2:
        names = getattr(dataset, "classes", None)
        code = classes[0].item() if hasattr(classes[0], "item") else classes[0]
        known = names is not None and isinstance(code, int) and code < len(names)
        shown = names[int(code)] if known else code
        raise ValueError(
            f"the target data {data_name(data, dataset)!r} has {classes.size} class "
            f"({shown!r}, {labels.size} samples); ranking needs labelled samples of at least 2 classes"
        )
    return dataset


def data_name(data: Any, dataset: Any = None) -> str:
    """How the target data is named in notes and configurations: the spec, or the dataset's name.

    Parameters
    ----------
    data : str, path or dataset
        What the caller gave.
    dataset : optional
        The loaded dataset, whose ``name`` is used when ``data`` is not a spec.

    Returns
    -------
    str

    Examples
    --------
    >>> data_name("builtin:digits")
    'builtin:digits'
    >>> from types import SimpleNamespace
    >>> data_name(SimpleNamespace(name="mine"))
    'mine'
    """
    if isinstance(data, str | Path):
        return str(data)
    return str(getattr(dataset, "name", None) or getattr(data, "name", "dataset"))


def dataset_notes(dataset: Any, per_class: int | None, seed: int) -> list[str]:
    """The dataset's own notes, followed by what was scored (the split) and the subsample, if any.

    Parameters
    ----------
    dataset : dataset
        The target data, with optional ``notes`` and ``split`` attributes.
    per_class : int, optional
        The subsample size per class, if one was asked for.
    seed : int
        Seed of the subsample.

    Returns
    -------
    list of str

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> dataset_notes(SimpleNamespace(notes=[], split="train"), 5, 0)  # doctest: +NORMALIZE_WHITESPACE
    ['scored on the training split only (no test labels leak into the scores)',
     'subsampled to at most 5 samples per class (seed 0)']
    """
    notes = [str(note) for note in (getattr(dataset, "notes", None) or [])]
    split = getattr(dataset, "split", "train")
    if split in (None, "train"):
        if not any("training split" in note for note in notes):
            notes.append("scored on the training split only (no test labels leak into the scores)")
    elif split == "all":
        if not any("split 'all'" in note or "no split" in note for note in notes):
            notes.append(
                "the data has no train/test split: every sample was scored; keep a test set apart yourself"
            )
    else:
        notes.append(f"scored on the {split!r} split")
    if per_class is not None and not any("per class" in note or "per_class" in note for note in notes):
        notes.append(f"subsampled to at most {per_class} samples per class (seed {seed})")
    return notes


def dataset_summary(data: Any, dataset: Any) -> dict[str, Any]:
    """The target data in a ranking's ``attrs["dataset"]``: name, split, modality and class counts.

    Parameters
    ----------
    data : str, path or dataset
        What the caller gave.
    dataset : dataset
        The loaded dataset (``labels`` of shape ``(n_samples,)``).

    Returns
    -------
    dict
        ``name``, ``split``, ``modality``, ``n_samples``, ``n_classes``, ``min_class_count`` and
        ``max_class_count``.
    """
    labels = np.asarray(dataset.labels)
    classes, counts = np.unique(labels, return_counts=True)
    return {
        "name": data_name(data, dataset),
        "split": getattr(dataset, "split", None),
        "modality": getattr(dataset, "modality", None),
        "n_samples": int(labels.size),
        "n_classes": int(classes.size),
        "min_class_count": int(counts.min()),
        "max_class_count": int(counts.max()),
    }
