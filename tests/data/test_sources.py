"""load_dataset on every source format, built from tiny files in tmp_path, and every bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ckptrank.data import TargetDataset, load_dataset


def _png(path: Path, value: int, size: int = 6) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8)).save(path)
    return path


def _image_folder(root: Path, counts: dict[str, int]) -> Path:
    for k, (name, count) in enumerate(counts.items()):
        for i in range(count):
            _png(root / name / f"{i:03d}.png", 10 * k + i)
    return root


# ---------------------------------------------------------------------------------------------- folders


def test_image_folder_one_subfolder_per_class(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "pets", {"cat": 3, "dog": 2, "eel": 4})
    (root / "cat" / "notes.txt").write_text("not an image")
    ds = load_dataset(str(root))
    assert isinstance(ds, TargetDataset)
    assert ds.modality == "image"
    assert ds.classes == ("cat", "dog", "eel")
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 2]
    assert len(ds.items) == 9 and all(Path(p).is_file() and p.endswith(".png") for p in ds.items)
    assert ds.split == "all"
    assert any("no train/val/test" in note for note in ds.notes)
    assert ds.name == "pets"


def test_image_folder_with_split_folders(tmp_path: Path) -> None:
    root = tmp_path / "splits"
    _image_folder(root / "train", {"a": 3, "b": 2})
    _image_folder(root / "test", {"a": 1, "b": 1, "c": 1})
    train = load_dataset(str(root), split="train")
    test = load_dataset(str(root), split="test")
    assert (train.split, len(train), test.split, len(test)) == ("train", 5, "test", 3)
    # class codes are shared across splits (union of the class folders)
    assert train.classes == test.classes == ("a", "b", "c")
    assert any("no folder in the train split: c" in note for note in train.notes)
    with pytest.raises(ValueError, match=r"split folders test, train but no 'val'"):
        load_dataset(str(root), split="val")


def test_image_folder_validation_alias(tmp_path: Path) -> None:
    _image_folder(tmp_path / "d" / "validation", {"a": 2})
    _image_folder(tmp_path / "d" / "train", {"a": 2})
    assert load_dataset(str(tmp_path / "d"), split="val").split == "val"


def test_empty_class_folders_are_named(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "d", {"a": 2, "b": 2})
    (root / "empty1").mkdir()
    (root / "empty2").mkdir()
    (root / "empty2" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match=r"2 class folder\(s\) under .* contain no images: empty1, empty2"):
        load_dataset(str(root))


def test_folder_without_class_subfolders(tmp_path: Path) -> None:
    _png(tmp_path / "flat" / "x.png", 1)
    with pytest.raises(ValueError, match="no class sub-folders"):
        load_dataset(str(tmp_path / "flat"))


def test_unreadable_images_fail_with_count_and_first_paths(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "d", {"a": 3, "b": 3})
    (root / "a" / "broken.png").write_bytes(b"this is not a png")
    (root / "b" / "truncated.jpg").write_bytes(b"\xff\xd8\xff")
    with pytest.raises(
        ValueError, match=r"2 of 8 image files are missing or unreadable \(2 unreadable\)"
    ) as err:
        load_dataset(str(root))
    message = str(err.value)
    assert "broken.png" in message and "truncated.jpg" in message and "on_unreadable='skip'" in message
    assert "\n" not in message


def test_unreadable_images_skipped_and_noted(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "d", {"a": 3, "b": 3})
    (root / "a" / "broken.png").write_bytes(b"garbage")
    ds = load_dataset(str(root), on_unreadable="skip")
    assert len(ds) == 6
    assert not any(p.endswith("broken.png") for p in ds.items)
    assert any(note.startswith("skipped 1 of 7") and "broken.png" in note for note in ds.notes)


def test_many_files_are_scanned_in_parallel(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "d", {"a": 40, "b": 40})
    (root / "b" / "zz-bad.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"1 of 81 image files"):
        load_dataset(str(root))


def test_on_unreadable_must_be_fail_or_skip(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="on_unreadable must be 'fail' or 'skip'"):
        load_dataset(str(tmp_path), on_unreadable="ignore")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- tables


def test_csv_of_image_paths_with_split_column(tmp_path: Path) -> None:
    _png(tmp_path / "img" / "a.png", 1)
    _png(tmp_path / "img" / "b.png", 2)
    absolute = _png(tmp_path / "elsewhere" / "c.png", 3)
    pd.DataFrame(
        {
            "path": ["img/a.png", "img/b.png", str(absolute), "img/a.png"],
            "label": ["cat", "dog", "dog", "cat"],
            "split": ["train", "train", "train", "test"],
        }
    ).to_csv(tmp_path / "labels.csv", index=False)
    ds = load_dataset(str(tmp_path / "labels.csv"))
    assert ds.modality == "image" and ds.split == "train"
    assert ds.items == [str(tmp_path / "img" / "a.png"), str(tmp_path / "img" / "b.png"), str(absolute)]
    assert ds.classes == ("cat", "dog") and ds.labels.tolist() == [0, 1, 1]
    test = load_dataset(str(tmp_path / "labels.csv"), split="test")
    assert len(test) == 1 and test.labels.tolist() == [0]
    with pytest.raises(ValueError, match=r"no rows with split 'val'; split values present: test, train"):
        load_dataset(str(tmp_path / "labels.csv"), split="val")


def test_csv_rows_with_missing_files_are_counted_and_named(tmp_path: Path) -> None:
    _png(tmp_path / "a.png", 1)
    _png(tmp_path / "b.png", 2)
    pd.DataFrame({"path": ["a.png", "gone1.png", "b.png", "gone2.png"], "label": [0, 1, 0, 1]}).to_csv(
        tmp_path / "l.csv", index=False
    )
    with pytest.raises(
        ValueError, match=r"2 of 4 image files are missing or unreadable \(2 missing\)"
    ) as err:
        load_dataset(str(tmp_path / "l.csv"))
    assert "gone1.png (missing)" in str(err.value) and "gone2.png (missing)" in str(err.value)
    ds = load_dataset(str(tmp_path / "l.csv"), on_unreadable="skip")
    assert len(ds) == 2 and ds.labels.tolist() == [0, 0]
    assert ds.classes == ("0", "1")  # class 1 still exists (codes stay stable), with no sample left


def test_csv_of_texts(tmp_path: Path) -> None:
    pd.DataFrame({"text": ["a cat", "a dog", "the cat"], "label": [2, 10, 2]}).to_csv(
        tmp_path / "t.csv", index=False
    )
    ds = load_dataset(str(tmp_path / "t.csv"))
    assert ds.modality == "text" and ds.items == ["a cat", "a dog", "the cat"]
    assert ds.classes == ("2", "10")  # sorted numerically, not as strings
    assert ds.labels.tolist() == [0, 1, 0]
    assert any("no 'split' column" in note for note in ds.notes)


def test_jsonl_of_texts_with_split(tmp_path: Path) -> None:
    rows = [
        {"text": "alpha", "label": "x", "split": "train"},
        {"text": "beta", "label": "y", "split": "test"},
        {"text": "gamma", "label": "y", "split": "train"},
    ]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ds = load_dataset(str(tmp_path / "t.jsonl"))
    assert ds.items == ["alpha", "gamma"] and ds.labels.tolist() == [0, 1] and ds.split == "train"


def test_table_missing_columns_lists_the_columns_present(tmp_path: Path) -> None:
    pd.DataFrame({"file": ["a"], "label": [1]}).to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(
        ValueError, match=r"needs a 'path' \(images\) or 'text' column .* columns present: file, label"
    ):
        load_dataset(str(tmp_path / "a.csv"))
    pd.DataFrame({"text": ["a"], "class": [1]}).to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(ValueError, match=r"no 'label' column; columns present: text, class"):
        load_dataset(str(tmp_path / "b.csv"))


def test_table_missing_labels_and_texts(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("text,label\nfoo,1\nbar,\nbaz,2\n")
    with pytest.raises(ValueError, match=r"1 rows have no label \(data rows 2\)"):
        load_dataset(str(tmp_path / "a.csv"))
    (tmp_path / "b.csv").write_text("text,label\nfoo,1\n,1\n")
    with pytest.raises(ValueError, match=r"1 rows have an empty 'text' \(data rows 2\)"):
        load_dataset(str(tmp_path / "b.csv"))
    (tmp_path / "c.csv").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        load_dataset(str(tmp_path / "c.csv"))


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "images.csv",
            "path,label\n",
            r"^images\.csv has a header \(path, label\) but no rows; add one row per sample below it",
        ),
        (
            "texts.csv",
            "text,label,split\n",
            r"^texts\.csv has a header \(text, label, split\) but no rows; add one row per sample",
        ),
        ("empty.csv", "", r"empty\.csv is empty; expected a header row and one row per sample$"),
        ("empty.jsonl", "", r"^empty\.jsonl has no records; expected one JSON object per line"),
        ("blank.jsonl", "\n\n  \n", r"^blank\.jsonl has no records; expected one JSON object per line"),
        (
            "nolabel.csv",
            "text,label\nfoo,\nbar,\nbaz,\n",
            r"^nolabel\.csv: the 'label' column is empty \(0 of 3 rows have a label\); give every sample",
        ),
        (
            "nolabel.jsonl",
            '{"text": "a", "label": null}\n{"text": "b", "label": null}\n',
            r"^nolabel\.jsonl: the 'label' column is empty \(0 of 2 rows have a label\)",
        ),
    ],
)
def test_tables_without_samples_give_one_line(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        load_dataset(str(tmp_path / name))
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------- features


def test_npz_features(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 4))
    np.savez(tmp_path / "f.npz", features=x, labels=np.array(["b", "a", "b", "a", "c", "c"]))
    ds = load_dataset(str(tmp_path / "f.npz"))
    assert ds.modality == "features" and ds.features is not None
    assert ds.features.dtype == np.float32 and ds.features.shape == (6, 4)
    np.testing.assert_allclose(ds.features, x.astype(np.float32))
    assert ds.classes == ("a", "b", "c") and ds.labels.tolist() == [1, 0, 1, 0, 2, 2]
    assert ds.split == "all"


def test_npz_with_split_key(tmp_path: Path) -> None:
    np.savez(
        tmp_path / "f.npz",
        features=np.eye(4),
        labels=np.array([0, 1, 0, 1]),
        split=np.array(["train", "test"] * 2),
    )
    ds = load_dataset(str(tmp_path / "f.npz"), split="test")
    np.testing.assert_array_equal(ds.features, np.eye(4, dtype=np.float32)[[1, 3]])


def test_npz_bad_inputs(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", X=np.eye(2), y=np.arange(2))
    with pytest.raises(ValueError, match=r"needs arrays 'features' and 'labels'; arrays present: X, y"):
        load_dataset(str(tmp_path / "a.npz"))
    np.savez(tmp_path / "b.npz", features=np.array([{"a": 1}], dtype=object), labels=np.arange(1))
    with pytest.raises(ValueError, match="object arrays, which are never unpickled"):
        load_dataset(str(tmp_path / "b.npz"))
    np.savez(tmp_path / "c.npz", features=np.eye(3), labels=np.arange(2))
    with pytest.raises(ValueError, match="features has 3 rows but labels has 2"):
        load_dataset(str(tmp_path / "c.npz"))
    np.savez(tmp_path / "d.npz", features=np.array([[0.0, np.nan], [1.0, 1.0]]), labels=np.arange(2))
    with pytest.raises(ValueError, match="NaN or inf values in 1 rows"):
        load_dataset(str(tmp_path / "d.npz"))
    (tmp_path / "e.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"not a readable \.npz"):
        load_dataset(str(tmp_path / "e.npz"))


def test_structured_npy(tmp_path: Path) -> None:
    array = np.zeros(3, dtype=[("features", "f4", (2,)), ("labels", "i8")])
    array["features"] = [[1, 2], [3, 4], [5, 6]]
    array["labels"] = [7, 8, 7]
    np.save(tmp_path / "s.npy", array)
    ds = load_dataset(str(tmp_path / "s.npy"))
    assert ds.features is not None and ds.features.tolist() == [[1, 2], [3, 4], [5, 6]]
    assert ds.classes == ("7", "8")
    np.save(tmp_path / "plain.npy", np.eye(3))
    with pytest.raises(ValueError, match=r"structured array with fields 'features' and 'labels'"):
        load_dataset(str(tmp_path / "plain.npy"))


def test_parquet_feature_columns(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {"f0": [0.1, 0.2, 0.3], "f1": [1.0, 2.0, 3.0], "label": ["u", "v", "u"], "split": ["train"] * 3}
    )
    df.to_parquet(tmp_path / "f.parquet")
    ds = load_dataset(str(tmp_path / "f.parquet"))
    assert ds.features is not None and ds.features.shape == (3, 2)
    np.testing.assert_allclose(ds.features[:, 1], [1, 2, 3])
    assert ds.split == "train" and ds.labels.tolist() == [0, 1, 0]


def test_parquet_list_column_and_errors(tmp_path: Path) -> None:
    pd.DataFrame({"features": [[1.0, 2.0], [3.0, 4.0]], "label": [0, 1]}).to_parquet(tmp_path / "a.parquet")
    ds = load_dataset(str(tmp_path / "a.parquet"))
    assert ds.features is not None and ds.features.tolist() == [[1, 2], [3, 4]]
    pd.DataFrame({"f0": [1.0], "name": ["x"], "label": [0]}).to_parquet(tmp_path / "b.parquet")
    with pytest.raises(
        ValueError, match=r"must be numeric, but name are not; columns present: f0, name, label"
    ):
        load_dataset(str(tmp_path / "b.parquet"))
    pd.DataFrame({"f0": [1.0], "y": [0]}).to_parquet(tmp_path / "c.parquet")
    with pytest.raises(ValueError, match=r"no 'label' column; columns present: f0, y"):
        load_dataset(str(tmp_path / "c.parquet"))


# ---------------------------------------------------------------------------------------------- HF datasets


def test_hf_text_dataset_dict(tmp_path: Path) -> None:
    import datasets as hf

    features = hf.Features({"sentence": hf.Value("string"), "label": hf.ClassLabel(names=["neg", "pos"])})
    dd = hf.DatasetDict(
        {
            "train": hf.Dataset.from_dict(
                {"sentence": ["bad", "good", "great"], "label": [0, 1, 1]}, features=features
            ),
            "test": hf.Dataset.from_dict({"sentence": ["awful"], "label": [0]}, features=features),
        }
    )
    dd.save_to_disk(str(tmp_path / "hf"))
    ds = load_dataset(str(tmp_path / "hf"))
    assert ds.modality == "text" and ds.items == ["bad", "good", "great"]
    assert ds.classes == ("neg", "pos") and ds.labels.tolist() == [0, 1, 1] and ds.split == "train"
    assert load_dataset(str(tmp_path / "hf"), split="test").items == ["awful"]
    with pytest.raises(ValueError, match=r"has splits train, test but no 'validation'"):
        load_dataset(str(tmp_path / "hf"), split="validation")


def test_hf_image_dataset(tmp_path: Path) -> None:
    import datasets as hf

    images = [Image.fromarray(np.full((5, 5, 3), v, dtype=np.uint8)) for v in (0, 100, 200, 250)]
    features = hf.Features({"image": hf.Image(), "label": hf.Value("string")})
    hf.Dataset.from_dict({"image": images, "label": ["b", "a", "b", "a"]}, features=features).save_to_disk(
        str(tmp_path / "imgs")
    )
    ds = load_dataset(str(tmp_path / "imgs"), per_class=1, seed=0)
    assert ds.modality == "image" and ds.split == "all" and len(ds) == 2
    assert ds.classes == ("a", "b")
    first = ds.items[0]
    assert isinstance(first, Image.Image) and first.size == (5, 5)
    full = load_dataset(str(tmp_path / "imgs"))
    assert [int(np.asarray(full.items[i])[0, 0, 0]) for i in range(4)] == [0, 100, 200, 250]
    assert full.fingerprint() == load_dataset(str(tmp_path / "imgs")).fingerprint()
    assert full.fingerprint() != ds.fingerprint()


def test_hf_dataset_missing_label_column(tmp_path: Path) -> None:
    import datasets as hf

    hf.Dataset.from_dict({"text": ["a"], "target": [0]}).save_to_disk(str(tmp_path / "x"))
    with pytest.raises(ValueError, match=r"no 'label' column; columns present: text, target"):
        load_dataset(str(tmp_path / "x"))


# ---------------------------------------------------------------------------------------------- specs


def test_unknown_specs_list_the_valid_forms(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"not found.*Valid forms:.*builtin:NAME.*fashion-mnist"):
        load_dataset(str(tmp_path / "nope"))
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(
        ValueError, match=r"unknown dataset format '\.txt'.*\.csv or \.jsonl.*wordnet-supersense"
    ):
        load_dataset(str(tmp_path / "x.txt"))
    with pytest.raises(
        ValueError, match=r"unknown built-in dataset 'fashion'. Did you mean 'builtin:fashion-mnist'"
    ):
        load_dataset("builtin:fashion")


def test_argument_validation(tmp_path: Path) -> None:
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="per_class must be a positive integer"):
            load_dataset("builtin:digits", per_class=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed must be an integer"):
        load_dataset("builtin:digits", seed="0")  # type: ignore[arg-type]


def test_path_fingerprint_tracks_file_changes(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "d", {"a": 2, "b": 2})
    before = load_dataset(str(root)).fingerprint()
    assert load_dataset(str(root)).fingerprint() == before
    target = root / "a" / "000.png"
    _png(target, 77, size=7)
    os.utime(target, ns=(1, 1))
    assert load_dataset(str(root)).fingerprint() != before
