"""Built-in labelled data sets that install offline (Debian packages, scikit-learn).

``builtin:fashion-mnist``
    Debian ``dataset-fashion-mnist``: 60,000 train / 10,000 test 28x28 grey images, 10 classes.
``builtin:digits``
    scikit-learn ``load_digits``: 1,797 8x8 images scaled to uint8, 10 classes; a fixed
    stratified 70/30 train/test split (seed 0).
``builtin:wordnet-supersense``
    Debian ``wordnet-base``: the 82,115 WordNet 3.0 noun glosses labelled by their
    lexicographer file (26 supersenses, ``noun.Tops`` ... ``noun.time``); a fixed 80/20
    train/test split by a hash of the synset offset.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .dataset import TargetDataset

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "WORDNET_DATA_NOUN",
    "WORDNET_NOUN_LEXNAMES",
    "list_builtin_datasets",
    "load_builtin",
    "register_builtin_dataset",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
WORDNET_DATA_NOUN = Path("/usr/share/wordnet/data.noun")

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# WordNet lexicographer files 03..28 (lexnames(5WN)); label code = file number - 3.
WORDNET_NOUN_LEXNAMES = (
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
)
_FIRST_NOUN_LEXFILE = 3

_DIGITS_TEST_FRACTION = 0.3
_DIGITS_SPLIT_SEED = 0
_WORDNET_TRAIN_PERCENT = 80


def _check_split(name: str, split: str, valid: tuple[str, ...]) -> None:
    if split not in valid:
        raise ValueError(f"builtin:{name} has splits {', '.join(valid)}; got split={split!r}")


def _read_idx(path: Path, magic: int, header: int) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found; builtin:fashion-mnist needs the Debian package dataset-fashion-mnist "
            "(apt-get install dataset-fashion-mnist)"
        )
    with gzip.open(path, "rb") as f:
        data = f.read()
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ValueError(f"{path} is not an IDX file (magic number {found}, expected {magic})")
    dims = [int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range((header - 4) // 4)]
    array = np.frombuffer(data, dtype=np.uint8, offset=header)
    return array.reshape(dims)


@functools.lru_cache(maxsize=2)
def _fashion_mnist_arrays(prefix: str, root: str) -> tuple[np.ndarray, np.ndarray]:
    images = _read_idx(Path(root) / f"{prefix}-images-idx3-ubyte.gz", 2051, 16)
    labels = _read_idx(Path(root) / f"{prefix}-labels-idx1-ubyte.gz", 2049, 8)
    if len(images) != len(labels):
        raise ValueError(f"fashion-mnist {prefix}: {len(images)} images but {len(labels)} labels")
    images = np.ascontiguousarray(images)
    images.flags.writeable = False
    return images, labels.astype(np.int64)


def _fashion_mnist(split: str) -> TargetDataset:
    _check_split("fashion-mnist", split, ("train", "test"))
    prefix = "train" if split == "train" else "t10k"
    images, labels = _fashion_mnist_arrays(prefix, str(FASHION_MNIST_DIR))
    return TargetDataset(
        items=images,
        labels=labels,
        modality="image",
        name="fashion-mnist",
        split=split,
        classes=FASHION_MNIST_CLASSES,
        source="builtin:fashion-mnist",
    )


def _digits(split: str) -> TargetDataset:
    _check_split("digits", split, ("train", "test"))
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)),
        test_size=_DIGITS_TEST_FRACTION,
        stratify=labels,
        random_state=_DIGITS_SPLIT_SEED,
    )
    idx = np.sort(train_idx if split == "train" else test_idx)
    return TargetDataset(
        items=np.ascontiguousarray(images[idx]),
        labels=labels[idx],
        modality="image",
        name="digits",
        split=split,
        classes=tuple(str(d) for d in range(10)),
        source="builtin:digits",
    )


def _offset_in_train(offset: str) -> bool:
    digest = hashlib.blake2b(offset.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100 < _WORDNET_TRAIN_PERCENT


def read_wordnet_glosses(
    path: str | Path, *, first_lexfile: int, n_lexfiles: int, part_of_speech: str, needed_by: str
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Glosses, lexicographer-file codes ``0..n_lexfiles-1`` and an 80/20 train mask from a WordNet data file.

    Parameters
    ----------
    path : str or Path
        A WordNet ``data.POS`` file (lines ``offset lex_filenum ss_type ... | gloss``).
    first_lexfile, n_lexfiles : int
        Lexicographer files of this part of speech are ``first_lexfile .. first_lexfile + n_lexfiles - 1``.
    part_of_speech : str
        Used in error messages (``"noun"``, ``"verb"``).
    needed_by : str
        What needs the file, for the missing-package message.

    Returns
    -------
    texts : tuple of str
    codes : ndarray of shape (n,), int64
    train : ndarray of shape (n,), bool
        Train membership by a hash of the synset offset (stable across versions and runs).
    """
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"{path} not found; {needed_by} needs the Debian package wordnet-base "
            "(apt-get install wordnet-base)"
        )
    texts: list[str] = []
    codes: list[int] = []
    train: list[bool] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(" ") or "|" not in line:
                continue  # licence header
            head, gloss = line.split("|", 1)
            fields = head.split()
            code = int(fields[1]) - first_lexfile
            if not 0 <= code < n_lexfiles:
                raise ValueError(
                    f"{path}: synset {fields[0]} has lexicographer file {fields[1]}, "
                    f"not a {part_of_speech} file"
                )
            texts.append(gloss.strip())
            codes.append(code)
            train.append(_offset_in_train(fields[0]))
    return tuple(texts), np.asarray(codes, dtype=np.int64), np.asarray(train, dtype=bool)


@functools.lru_cache(maxsize=1)
def _wordnet_rows(path: str) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Glosses, label codes and a train mask, parsed from ``data.noun``."""
    return read_wordnet_glosses(
        path,
        first_lexfile=_FIRST_NOUN_LEXFILE,
        n_lexfiles=len(WORDNET_NOUN_LEXNAMES),
        part_of_speech="noun",
        needed_by="builtin:wordnet-supersense",
    )


def _wordnet_supersense(split: str) -> TargetDataset:
    _check_split("wordnet-supersense", split, ("train", "test"))
    texts, codes, train = _wordnet_rows(str(WORDNET_DATA_NOUN))
    mask = train if split == "train" else ~train
    idx = np.flatnonzero(mask)
    return TargetDataset(
        items=[texts[i] for i in idx],
        labels=codes[idx],
        modality="text",
        name="wordnet-supersense",
        split=split,
        classes=WORDNET_NOUN_LEXNAMES,
        source="builtin:wordnet-supersense",
    )


_BUILTINS: dict[str, Callable[[str], TargetDataset]] = {
    "digits": _digits,
    "fashion-mnist": _fashion_mnist,
    "wordnet-supersense": _wordnet_supersense,
}


def register_builtin_dataset(name: str, loader: Callable[[str], TargetDataset]) -> None:
    """Make ``loader(split)`` loadable as ``builtin:NAME`` (e.g. a benchmark suite's task data).

    Raises
    ------
    ValueError
        ``name`` is already registered.
    """
    if name in _BUILTINS:
        raise ValueError(f"a built-in dataset named {name!r} is already registered")
    _BUILTINS[name] = loader


def list_builtin_datasets() -> list[str]:
    """Names accepted after ``builtin:``."""
    return sorted(_BUILTINS)


def load_builtin(name: str, split: str = "train") -> TargetDataset:
    """Load the built-in data set ``name`` (without the ``builtin:`` prefix).

    Raises
    ------
    ValueError
        Unknown name (the message lists the valid ones and the closest match) or split.
    FileNotFoundError
        The Debian package holding the data is not installed.
    """
    if name not in _BUILTINS:
        import difflib

        close = difflib.get_close_matches(name, list(_BUILTINS), n=1)
        hint = f" Did you mean 'builtin:{close[0]}'?" if close else ""
        valid = ", ".join(f"builtin:{n}" for n in list_builtin_datasets())
        raise ValueError(f"unknown built-in dataset {name!r}.{hint} Valid built-ins: {valid}.")
    return _BUILTINS[name](split)
