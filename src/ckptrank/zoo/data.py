"""Real source data of the self-trained zoo, kept disjoint from the target tasks.

Fashion-MNIST (Debian ``dataset-fashion-mnist``) is split by position in its official training
file: images ``0 .. 29,999`` are the SOURCE half, used only to pre-train zoo checkpoints
(``0 .. 24,999`` to train, ``25,000 .. 29,999`` held out to measure source accuracy), and images
``30,000 .. 59,999`` are the TARGET half, used only by the target tasks of the ``neucrab-mini``
suite (whose test sets are the official 10,000-image test file). So no zoo checkpoint has seen
a target image, with or without its label.

The text source task reads WordNet 3.0 *verb* glosses (Debian ``wordnet-base``,
``/usr/share/wordnet/data.verb``) labelled by their 15 verb lexicographer files (``verb.body`` ...
``verb.weather``); the text targets are *noun* glosses, so sources and targets share no gloss.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ckptrank.data.builtins import read_wordnet_glosses

__all__ = [
    "FASHION_SOURCE_HOLDOUT",
    "FASHION_SOURCE_TRAIN",
    "FASHION_TARGET_HALF",
    "WORDNET_DATA_VERB",
    "WORDNET_VERB_LEXNAMES",
    "SourceData",
    "build_vocab",
    "fashion_mnist_train",
    "load_source_task",
    "wordnet_verbs",
]

#: Index ranges into the official Fashion-MNIST training file.
FASHION_SOURCE_TRAIN = (0, 25_000)
FASHION_SOURCE_HOLDOUT = (25_000, 30_000)
FASHION_TARGET_HALF = (30_000, 60_000)

WORDNET_DATA_VERB = Path("/usr/share/wordnet/data.verb")
# lexnames(5WN): verb files 29..43; label code = file number - 29.
WORDNET_VERB_LEXNAMES = (
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
)
_FIRST_VERB_LEXFILE = 29
_WORDNET_TRAIN_PERCENT = 80


@dataclass(frozen=True)
class SourceData:
    """Training and held-out data of one source task.

    Attributes
    ----------
    name : str
        Source-task name (``"fashion-mnist-0-4"``, ...).
    modality : {"image", "text"}
    train_items, holdout_items : ndarray of uint8 (n, 28, 28) or list of str
    train_labels, holdout_labels : ndarray of int64
        Class codes; for the rotation task, the labels are unused (rotations are drawn per batch).
    classes : tuple of str
        Source classes (for rotation: the four angles).
    description : str
        What the task is and which real data it reads (recorded in every card).
    """

    name: str
    modality: str
    train_items: object
    train_labels: np.ndarray
    holdout_items: object
    holdout_labels: np.ndarray
    classes: tuple[str, ...]
    description: str


def fashion_mnist_train() -> tuple[np.ndarray, np.ndarray]:
    """The official Fashion-MNIST training images ``(60000, 28, 28)`` uint8 and labels (read-only)."""
    from ckptrank.data.builtins import load_builtin

    ds = load_builtin("fashion-mnist", "train")
    return np.asarray(ds.items), np.asarray(ds.labels)


def _fashion_subset(classes: tuple[int, ...], name: str) -> SourceData:
    from ckptrank.data.builtins import FASHION_MNIST_CLASSES

    images, labels = fashion_mnist_train()
    parts = []
    for lo, hi in (FASHION_SOURCE_TRAIN, FASHION_SOURCE_HOLDOUT):
        idx = np.arange(lo, hi)
        idx = idx[np.isin(labels[idx], classes)]
        codes = np.searchsorted(np.asarray(classes), labels[idx])
        parts.append((images[idx], codes.astype(np.int64)))
    names = tuple(FASHION_MNIST_CLASSES[c] for c in classes)
    return SourceData(
        name=name,
        modality="image",
        train_items=parts[0][0],
        train_labels=parts[0][1],
        holdout_items=parts[1][0],
        holdout_labels=parts[1][1],
        classes=names,
        description=(
            f"Fashion-MNIST classes {', '.join(names)} ({len(classes)}-way), from the SOURCE half of the "
            f"official training file (images {FASHION_SOURCE_TRAIN[0]}-{FASHION_SOURCE_TRAIN[1] - 1} to "
            f"train, {FASHION_SOURCE_HOLDOUT[0]}-{FASHION_SOURCE_HOLDOUT[1] - 1} held out)"
        ),
    )


def _fashion_rotation() -> SourceData:
    images, _ = fashion_mnist_train()
    train = images[slice(*FASHION_SOURCE_TRAIN)]
    holdout = images[slice(*FASHION_SOURCE_HOLDOUT)]
    # Fixed held-out rotations so that the recorded source accuracy is reproducible.
    hold_rot = np.random.default_rng(0).integers(0, 4, size=len(holdout)).astype(np.int64)
    return SourceData(
        name="fashion-mnist-rotation",
        modality="image",
        train_items=train,
        train_labels=np.zeros(len(train), dtype=np.int64),
        holdout_items=holdout,
        holdout_labels=hold_rot,
        classes=("0", "90", "180", "270"),
        description=(
            "self-supervised rotation prediction (0/90/180/270 degrees, labels unused) on all Fashion-MNIST "
            f"classes of the SOURCE half (images {FASHION_SOURCE_TRAIN[0]}-{FASHION_SOURCE_TRAIN[1] - 1} to "
            f"train, {FASHION_SOURCE_HOLDOUT[0]}-{FASHION_SOURCE_HOLDOUT[1] - 1} held out)"
        ),
    )


@functools.lru_cache(maxsize=1)
def wordnet_verbs(path: str = str(WORDNET_DATA_VERB)) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Verb glosses, their lexicographer-file codes ``0..14`` and an 80/20 train mask (hash of offset)."""
    return read_wordnet_glosses(
        path,
        first_lexfile=_FIRST_VERB_LEXFILE,
        n_lexfiles=len(WORDNET_VERB_LEXNAMES),
        part_of_speech="verb",
        needed_by="the zoo's text source task",
    )


def _wordnet_verb_task() -> SourceData:
    texts, codes, train = wordnet_verbs()
    tr, ho = np.flatnonzero(train), np.flatnonzero(~train)
    return SourceData(
        name="wordnet-verbs",
        modality="text",
        train_items=[texts[i] for i in tr],
        train_labels=codes[tr],
        holdout_items=[texts[i] for i in ho],
        holdout_labels=codes[ho],
        classes=WORDNET_VERB_LEXNAMES,
        description=(
            "WordNet 3.0 verb glosses labelled by verb supersense (15 lexicographer files), "
            f"{_WORDNET_TRAIN_PERCENT}/{100 - _WORDNET_TRAIN_PERCENT} train/held-out split by a hash of the "
            "synset offset (the text targets use noun glosses only)"
        ),
    )


_TASKS = {
    "fashion-mnist-0-4": lambda: _fashion_subset((0, 1, 2, 3, 4), "fashion-mnist-0-4"),
    "fashion-mnist-5-9": lambda: _fashion_subset((5, 6, 7, 8, 9), "fashion-mnist-5-9"),
    "fashion-mnist-rotation": _fashion_rotation,
    "wordnet-verbs": _wordnet_verb_task,
}


def load_source_task(name: str) -> SourceData:
    """The source task ``name`` (one of ``fashion-mnist-0-4``, ``fashion-mnist-5-9``,
    ``fashion-mnist-rotation``, ``wordnet-verbs``)."""
    if name not in _TASKS:
        raise ValueError(f"unknown zoo source task {name!r}; valid: {', '.join(_TASKS)}")
    return _TASKS[name]()


def build_vocab(texts: list[str], *, max_size: int, min_count: int = 2) -> tuple[str, ...]:
    """Vocabulary for :class:`~ckptrank.zoo.models.BagOfWords`: ``<pad>``, ``<unk>``, then the most
    frequent tokens (GloVe-style tokenizer, ties broken alphabetically) seen at least ``min_count`` times."""
    from ckptrank.adapters.builtin_source import glove_tokens

    counts = Counter(t for text in texts for t in glove_tokens(text))
    ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return ("<pad>", "<unk>", *ranked[: max(0, max_size - 2)])
