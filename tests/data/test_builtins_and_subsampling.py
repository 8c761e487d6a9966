"""Built-in data sets, stratified seeded subsampling, and TargetDataset itself."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from ckptrank.data import TargetDataset, list_builtin_datasets, load_dataset, stratified_subsample_indices
from ckptrank.data.builtins import FASHION_MNIST_CLASSES, WORDNET_NOUN_LEXNAMES


def test_list_builtin_datasets() -> None:
    names = list_builtin_datasets()
    assert names == sorted(names)
    # The core sets; benchmark suites (e.g. neucrab-mini) may register their task sets beside them.
    assert {"digits", "fashion-mnist", "wordnet-supersense"} <= set(names)


def test_fashion_mnist_train_and_test() -> None:
    train = load_dataset("builtin:fashion-mnist")
    test = load_dataset("builtin:fashion-mnist", split="test")
    assert (len(train), len(test)) == (60000, 10000)
    assert train.classes == test.classes == FASHION_MNIST_CLASSES
    assert train.n_classes == 10
    assert train.class_counts().tolist() == [6000] * 10 and test.class_counts().tolist() == [1000] * 10
    item = train.items[0]
    assert isinstance(item, np.ndarray) and item.dtype == np.uint8 and item.shape == (28, 28)
    assert 0 < item.mean() < 255
    assert (train.split, test.split, train.modality) == ("train", "test", "image")
    with pytest.raises(ValueError, match=r"builtin:fashion-mnist has splits train, test; got split='val'"):
        load_dataset("builtin:fashion-mnist", split="val")


def test_digits_split_is_stratified_disjoint_and_fixed() -> None:
    from sklearn.datasets import load_digits

    train = load_dataset("builtin:digits")
    test = load_dataset("builtin:digits", split="test")
    assert len(train) + len(test) == 1797 and len(test) == 540
    assert train.items.dtype == np.uint8 and train.items.shape[1:] == (8, 8) and train.items.max() == 255
    ref = load_digits()
    scaled = np.round(ref.images * 255 / 16).astype(np.uint8)
    # every train image is one of the originals with its label, and the two splits are disjoint
    rows = {(scaled[i].tobytes(), int(ref.target[i])) for i in range(len(scaled))}
    train_rows = [(img.tobytes(), int(y)) for img, y in zip(train.items, train.labels, strict=True)]
    test_rows = [(img.tobytes(), int(y)) for img, y in zip(test.items, test.labels, strict=True)]
    assert set(train_rows) <= rows and set(test_rows) <= rows
    assert Counter(train_rows + test_rows) == Counter(
        (scaled[i].tobytes(), int(ref.target[i])) for i in range(1797)
    )
    proportions = test.class_counts() / (train.class_counts() + test.class_counts())
    assert np.all(np.abs(proportions - 0.3) < 0.03)
    assert (
        load_dataset("builtin:digits", seed=5).fingerprint() == train.fingerprint()
    )  # seed is for subsampling


def test_wordnet_supersense() -> None:
    train = load_dataset("builtin:wordnet-supersense")
    test = load_dataset("builtin:wordnet-supersense", split="test")
    assert train.n_classes == 26 and train.classes == WORDNET_NOUN_LEXNAMES
    assert train.classes[1] == "noun.act" and train.classes[-1] == "noun.time"
    assert len(train) + len(test) == 82115
    assert 0.78 < len(train) / 82115 < 0.82
    assert np.count_nonzero(train.class_counts()) == 26
    assert train.modality == "text" and all(isinstance(t, str) and t for t in train.items[:100])
    assert not set(train.items[:2000]) & set(test.items)  # (glosses are near-unique; the split is by synset)
    # "entity" (offset 00001740, lexicographer file 03 = noun.Tops) carries its gloss
    gloss = (
        "that which is perceived or known or inferred to have its own distinct existence "
        "(living or nonliving)"
    )
    where = train.items if gloss in train.items else test.items
    codes = train.labels if where is train.items else test.labels
    assert codes[list(where).index(gloss)] == 0


# ---------------------------------------------------------------------------------------------- subsampling


def test_subsampling_is_stratified_and_seeded() -> None:
    a = load_dataset("builtin:fashion-mnist", split="test", per_class=7, seed=3)
    b = load_dataset("builtin:fashion-mnist", split="test", per_class=7, seed=3)
    c = load_dataset("builtin:fashion-mnist", split="test", per_class=7, seed=4)
    assert a.class_counts().tolist() == [7] * 10
    assert np.array_equal(a.items, b.items) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.items, c.items)
    assert a.subsample == {"per_class": 7, "seed": 3}
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert any("at most 7 samples per class (seed 3)" in note for note in a.notes)


def test_subsample_indices_by_definition() -> None:
    labels = np.array([0] * 10 + [1] * 3 + [2] * 6)
    idx, short = stratified_subsample_indices(labels, 4, seed=0)
    assert Counter(labels[idx].tolist()) == {0: 4, 1: 3, 2: 4}
    assert short == [1] and np.all(np.diff(idx) > 0)
    # each class draws from its own generator: changing another class leaves it alone
    other = np.array([0] * 10 + [1] * 5 + [2] * 6)
    idx2, _ = stratified_subsample_indices(other, 4, seed=0)
    assert idx[labels[idx] == 0].tolist() == idx2[other[idx2] == 0].tolist()


def test_small_classes_keep_all_and_are_noted() -> None:
    ds = TargetDataset(items=[f"t{i}" for i in range(7)], labels=[0, 0, 0, 0, 1, 1, 2], modality="text")
    counts = ds.select(stratified_subsample_indices(ds.labels, 3, 0)[0]).class_counts()
    assert counts.tolist() == [3, 2, 1]


def test_subsampling_notes_short_and_single_sample_classes(tmp_path) -> None:
    import pandas as pd

    pd.DataFrame({"text": list("abcdefg"), "label": ["x", "x", "x", "x", "y", "y", "z"]}).to_csv(
        tmp_path / "t.csv", index=False
    )
    ds = load_dataset(str(tmp_path / "t.csv"), per_class=3)
    assert ds.class_counts().tolist() == [3, 2, 1]
    assert any("classes with fewer than 3 keep all: y, z" in note for note in ds.notes)
    assert any(note.startswith("classes with a single sample: z") for note in ds.notes)


# ---------------------------------------------------------------------------------------------- TargetDataset


def test_target_dataset_encodes_labels_and_validates() -> None:
    ds = TargetDataset(items=["a", "b", "c"], labels=["dog", "cat", "dog"], modality="text", name="t")
    assert ds.classes == ("cat", "dog") and ds.labels.tolist() == [1, 0, 1]
    assert not ds.labels.flags.writeable
    assert ds.describe() == "t (no split structure, 3 text samples, 2 classes)"
    with pytest.raises(ValueError, match="3 items but 2 labels"):
        TargetDataset(items=["a", "b", "c"], labels=[0, 1], modality="text")
    with pytest.raises(ValueError, match="modality must be one of image, text, features"):
        TargetDataset(items=["a"], labels=[0], modality="audio")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"label codes span 0..5 but there are 2 classes"):
        TargetDataset(items=["a", "b"], labels=[0, 5], modality="text", classes=("x", "y"))
    with pytest.raises(ValueError, match="needs the features array"):
        TargetDataset(items=[[1.0]], labels=[0], modality="features")


def test_fingerprint_depends_on_content_only() -> None:
    x = np.arange(12, dtype=np.uint8).reshape(3, 2, 2)
    base = TargetDataset(items=x, labels=[0, 1, 0], modality="image", name="a", split="train")
    same = TargetDataset(items=x.copy(), labels=[0, 1, 0], modality="image", name="b", split="test")
    assert base.fingerprint() == same.fingerprint()
    changed = x.copy()
    changed[0, 0, 0] = 99
    assert (
        TargetDataset(items=changed, labels=[0, 1, 0], modality="image").fingerprint() != base.fingerprint()
    )
    assert TargetDataset(items=x, labels=[0, 1, 1], modality="image").fingerprint() != base.fingerprint()
    as_list = TargetDataset(items=list(x), labels=[0, 1, 0], modality="image")
    assert len(as_list.fingerprint()) == 64
    texts = TargetDataset(items=["ab", "c"], labels=[0, 1], modality="text").fingerprint()
    assert texts != TargetDataset(items=["a", "bc"], labels=[0, 1], modality="text").fingerprint()
    with pytest.raises(ValueError, match="cannot fingerprint a dataset item of type object"):
        TargetDataset(items=[object()], labels=[0], modality="image").fingerprint()


def test_features_dataset_select_keeps_features_aligned() -> None:
    feats = np.arange(8, dtype=np.float64).reshape(4, 2)
    ds = TargetDataset(items=feats, labels=[0, 1, 0, 1], modality="features", features=feats)
    sub = ds.select([3, 0], note="picked")
    assert sub.features is not None and sub.features.tolist() == [[6, 7], [0, 1]]
    assert sub.labels.tolist() == [1, 0] and sub.notes == ["picked"] and ds.notes == []


def test_register_builtin_dataset() -> None:
    from ckptrank.data import builtins, load_dataset

    def loader(split: str) -> TargetDataset:
        return TargetDataset(items=["a", "b"], labels=[0, 1], modality="text", name="two", split=split)

    builtins.register_builtin_dataset("test-two-texts", loader)
    try:
        assert "test-two-texts" in builtins.list_builtin_datasets()
        assert load_dataset("builtin:test-two-texts").items == ["a", "b"]
        with pytest.raises(ValueError, match="already registered"):
            builtins.register_builtin_dataset("test-two-texts", loader)
    finally:
        builtins._BUILTINS.pop("test-two-texts")
