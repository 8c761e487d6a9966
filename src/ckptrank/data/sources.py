"""Resolve a dataset spec (folder, table, feature file, Hugging Face folder, built-in) to a dataset."""

from __future__ import annotations

import difflib
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

import numpy as np

from ._scan import IMAGE_EXTENSIONS, scan_image_files, summarize_bad_files
from .builtins import list_builtin_datasets, load_builtin
from .dataset import TargetDataset, encode_labels, stratified_subsample_indices

__all__ = ["DATASET_SPEC_FORMS", "TABLE_COLUMN_OPTIONS", "load_dataset", "split_spec_options"]

_BUILTIN_PREFIX = "builtin:"
_SPLIT_DIRS = ("train", "val", "validation", "test")
_SPLIT_ALIASES = {"val": ("val", "validation"), "validation": ("validation", "val")}
_TEXT_COLUMN_PREFERENCE = ("text", "sentence", "content", "document", "gloss")
#: Spec options of .csv/.jsonl data (``texts.csv?text=review&label=stars``): which column holds what.
TABLE_COLUMN_OPTIONS = ("label", "text", "path")

DATASET_SPEC_FORMS = (
    "a folder of images with one sub-folder per class (optionally inside train/ val/ test/); "
    "a .csv or .jsonl file with columns path or text, label and optionally split "
    "(other column names with ?text=COLUMN, ?path=COLUMN, ?label=COLUMN, joined by &); "
    "a .npz file with arrays 'features' and 'labels' (or a structured .npy with those fields); "
    "a .parquet file with feature columns and 'label'; "
    "a Hugging Face datasets folder written by save_to_disk; "
    "or builtin:NAME with NAME one of " + ", ".join(list_builtin_datasets())
)


def _list(names: Sequence[Any], limit: int = 10) -> str:
    shown = ", ".join(str(n) for n in list(names)[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# ---------------------------------------------------------------------------------------------------------
# image folders


def _class_dirs(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def _image_files(folder: Path) -> list[str]:
    return sorted(
        str(p)
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    )


def _load_image_folder(root: Path, split: str) -> TargetDataset:
    subdirs = _class_dirs(root)
    split_dirs = {d.name: d for d in subdirs if d.name in _SPLIT_DIRS}
    notes: list[str] = []
    if split_dirs:
        chosen = next((split_dirs[a] for a in _SPLIT_ALIASES.get(split, (split,)) if a in split_dirs), None)
        if chosen is None:
            raise ValueError(
                f"{root} has split folders {_list(sorted(split_dirs))} but no {split!r}; "
                "pass split= one of them"
            )
        class_root, record_split = chosen, split
        class_names = sorted({d.name for s in split_dirs.values() for d in _class_dirs(s)})
    else:
        class_root, record_split = root, "all"
        class_names = [d.name for d in subdirs]
        notes.append(f"{root} has no train/val/test folders; all samples are used (split 'all')")
    class_dirs = _class_dirs(class_root)
    if not class_dirs:
        raise ValueError(
            f"{class_root} has no class sub-folders; expected one sub-folder of images per class, "
            f"e.g. {class_root / 'cat' / '0001.jpg'}"
        )
    items: list[str] = []
    labels: list[int] = []
    empty: list[str] = []
    code_of = {name: code for code, name in enumerate(class_names)}
    for folder in class_dirs:
        files = _image_files(folder)
        if not files:
            empty.append(folder.name)
        items.extend(files)
        labels.extend([code_of[folder.name]] * len(files))
    if empty:
        raise ValueError(
            f"{len(empty)} class folder(s) under {class_root} contain no images: {_list(empty)}; "
            f"remove them or add images ({', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    absent = sorted(set(class_names) - {d.name for d in class_dirs})
    if absent:
        notes.append(f"classes with no folder in the {record_split} split: {_list(absent)}")
    return TargetDataset(
        items=items,
        labels=np.asarray(labels, dtype=np.int64),
        modality="image",
        name=root.name,
        split=record_split,
        classes=tuple(class_names),
        notes=notes,
        source=str(root),
    )


# ---------------------------------------------------------------------------------------------------------
# tables (csv / jsonl)


def _read_table(path: Path) -> Any:
    import pandas as pd

    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path)
        return pd.read_json(path, lines=True)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty; expected a header row and one row per sample") from None
    except ValueError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{path} cannot be parsed: {first}") from None


def _split_mask(values: Any, split: str, where: str) -> tuple[np.ndarray, str]:
    """Rows whose split column equals ``split`` (val/validation are aliases)."""
    column = np.asarray([str(v) for v in values])
    present = sorted(set(column.tolist()))
    for alias in _SPLIT_ALIASES.get(split, (split,)):
        mask = column == alias
        if mask.any():
            return mask, split
    raise ValueError(f"{where} has no rows with split {split!r}; split values present: {_list(present)}")


def _first_rows(mask: np.ndarray, limit: int = 5) -> str:
    rows = (np.flatnonzero(mask) + 1).tolist()
    return _list(rows, limit)


def _column_choice(path: Path, columns: list[str], key: str, name: str) -> str:
    """``name`` if ``path`` has that column, else a one-line error naming the columns present."""
    if name in columns:
        return name
    close = difflib.get_close_matches(name, columns, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"{path.name} has no {key} column {name!r} (the spec option {key}={name}); "
        f"columns present: {_list(columns)}.{hint}"
    )


def _load_table(path: Path, split: str, options: dict[str, str] | None = None) -> TargetDataset:
    options = dict(options or {})
    df = _read_table(path)
    columns = [str(c) for c in df.columns]
    df.columns = columns
    if len(df) == 0:
        if path.suffix.lower() == ".csv":
            raise ValueError(
                f"{path.name} has a header ({_list(columns)}) but no rows; "
                "add one row per sample below it (columns path or text, and label)"
            )
        raise ValueError(
            f"{path.name} has no records; expected one JSON object per line with keys "
            '"path" or "text", and "label", e.g. {"text": "a sentence", "label": "positive"}'
        )
    if "path" in options and "text" in options:
        raise ValueError(
            f"{path.name}: choose the path column (images) or the text column (texts), not both "
            f"(path={options['path']}, text={options['text']})"
        )
    if "path" in options:
        modality, item_column = "image", _column_choice(path, columns, "path", options["path"])
    elif "text" in options:
        modality, item_column = "text", _column_choice(path, columns, "text", options["text"])
    elif "path" in columns:
        modality, item_column = "image", "path"
    elif "text" in columns:
        modality, item_column = "text", "text"
    else:
        raise ValueError(
            f"{path.name} needs a 'path' (images) or 'text' column and a 'label' column; "
            f"columns present: {_list(columns)}. Name other columns with the spec options "
            f"{path.name}?text=COLUMN (or path=COLUMN) and &label=COLUMN (command line: --text-column, "
            "--path-column, --label-column)"
        )
    if "label" in options:
        label_column = _column_choice(path, columns, "label", options["label"])
    elif "label" in columns:
        label_column = "label"
    else:
        raise ValueError(
            f"{path.name} has no 'label' column; columns present: {_list(columns)}. Name another with "
            f"the spec option {path.name}?label=COLUMN (command line: --label-column COLUMN)"
        )
    if label_column == item_column:
        raise ValueError(f"{path.name}: the label column and the {item_column!r} column must differ")
    label_values = df[label_column]
    missing = label_values.isna().to_numpy()
    if missing.all():
        raise ValueError(
            f"{path.name}: the {label_column!r} column is empty (0 of {len(df)} rows have a label); "
            "give every sample a label (a class name or number)"
        )
    if missing.any():
        raise ValueError(
            f"{path.name}: {int(missing.sum())} rows have no label (data rows {_first_rows(missing)}); "
            "fill or remove them"
        )
    labels_all = label_values.to_numpy()
    if labels_all.dtype == object:
        labels_all = labels_all.astype(str)
    classes_all, codes_all = np.unique(labels_all, return_inverse=True)
    keep = np.ones(len(df), dtype=bool)
    notes: list[str] = []
    record_split = "all"
    if "split" in columns:
        keep, record_split = _split_mask(df["split"].to_numpy(), split, path.name)
    else:
        notes.append(f"{path.name} has no 'split' column; all rows are used (split 'all')")
    raw_items = df[item_column].to_numpy()
    empty = np.asarray([v is None or (isinstance(v, float) and np.isnan(v)) for v in raw_items]) & keep
    if empty.any():
        raise ValueError(
            f"{path.name}: {int(empty.sum())} rows have an empty {item_column!r} "
            f"(data rows {_first_rows(empty)}); fill or remove them"
        )
    idx = np.flatnonzero(keep)
    if modality == "image":
        base = path.parent
        items: list[str] = [
            str(p if p.is_absolute() else (base / p)) for p in (Path(str(raw_items[i])) for i in idx)
        ]
    else:
        items = [str(raw_items[i]) for i in idx]
    return TargetDataset(
        items=items,
        labels=codes_all[idx].astype(np.int64),
        modality=modality,
        name=path.stem,
        split=record_split,
        classes=tuple(str(c) for c in classes_all),
        notes=notes,
        source=str(path),
    )


# ---------------------------------------------------------------------------------------------------------
# precomputed features


def _features_dataset(
    path: Path, features: Any, labels: Any, split_values: Any | None, split: str
) -> TargetDataset:
    features = np.asarray(features)
    labels = np.asarray(labels).reshape(-1) if np.ndim(labels) > 1 else np.asarray(labels)
    if features.ndim != 2:
        raise ValueError(
            f"{path.name}: features must be 2-D (n_samples, n_features), got shape {features.shape}"
        )
    if len(features) != len(labels):
        raise ValueError(
            f"{path.name}: features has {len(features)} rows but labels has {len(labels)}; "
            "they must describe the same samples"
        )
    codes, classes = encode_labels(labels)
    notes: list[str] = []
    if split_values is not None:
        mask, record_split = _split_mask(np.asarray(split_values).reshape(-1), split, path.name)
        idx = np.flatnonzero(mask)
    else:
        record_split = "all"
        idx = np.arange(len(labels))
        notes.append(f"{path.name} has no split information; all rows are used (split 'all')")
    return TargetDataset(
        items=features[idx],
        labels=codes[idx],
        modality="features",
        name=path.stem,
        split=record_split,
        classes=classes,
        features=features[idx],
        notes=notes,
        source=str(path),
    )


def _load_npz(path: Path, split: str) -> TargetDataset:
    import zipfile

    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path.name} is not a readable .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.files)
            label_key = next((k for k in ("labels", "label") if k in keys), None)
            if "features" not in keys or label_key is None:
                raise ValueError(
                    f"{path.name} needs arrays 'features' and 'labels'; "
                    f"arrays present: {_list(keys) or 'none'}"
                )
            features = archive["features"]
            labels = archive[label_key]
            split_values = archive["split"] if "split" in keys else None
    except ValueError as err:
        if "pickle" in str(err):
            raise ValueError(
                f"{path.name} holds object arrays, which are never unpickled; "
                "save plain numeric/string arrays"
            ) from None
        raise
    except (OSError, EOFError) as err:
        raise ValueError(f"{path.name} is not a readable .npz file ({type(err).__name__})") from None
    return _features_dataset(path, features, labels, split_values, split)


def _load_npy(path: Path, split: str) -> TargetDataset:
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError:
        raise ValueError(f"{path.name} holds an object array, which is never unpickled") from None
    fields = array.dtype.names or ()
    label_key = next((k for k in ("labels", "label") if k in fields), None)
    if "features" not in fields or label_key is None:
        raise ValueError(
            f"{path.name} must hold a structured array with fields 'features' and 'labels' "
            f"(fields present: {_list(fields) or 'none, a plain array'}); or save "
            "numpy.savez(path, features=..., labels=...) to a .npz file"
        )
    split_values = array["split"] if "split" in fields else None
    return _features_dataset(path, array["features"], array[label_key], split_values, split)


def _load_parquet(path: Path, split: str) -> TargetDataset:
    import pandas as pd

    try:
        df = pd.read_parquet(path)
    except (OSError, ValueError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{path.name} cannot be read as parquet: {first}") from None
    columns = [str(c) for c in df.columns]
    if "label" not in columns:
        raise ValueError(f"{path.name} has no 'label' column; columns present: {_list(columns)}")
    if "features" in columns:
        features = np.stack([np.asarray(v, dtype=np.float64) for v in df["features"]])
    else:
        feature_columns = [c for c in df.columns if str(c) not in ("label", "split")]
        non_numeric = [str(c) for c in feature_columns if not pd.api.types.is_numeric_dtype(df[c])]
        if non_numeric:
            raise ValueError(
                f"{path.name}: feature columns must be numeric, but {_list(non_numeric)} are not; "
                f"columns present: {_list(columns)}"
            )
        if not feature_columns:
            raise ValueError(f"{path.name} has no feature columns; columns present: {_list(columns)}")
        features = df[feature_columns].to_numpy(dtype=np.float64)
    split_values = df["split"].to_numpy() if "split" in columns else None
    return _features_dataset(path, features, df["label"].to_numpy(), split_values, split)


# ---------------------------------------------------------------------------------------------------------
# Hugging Face datasets folders


def _is_hf_folder(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (
        (path / "state.json").is_file() and (path / "dataset_info.json").is_file()
    )


class HFColumn(Sequence):
    """A lazy, picklable view of one column of a Hugging Face dataset (decodes on access)."""

    def __init__(self, dataset: Any, column: str, indices: np.ndarray) -> None:
        self.dataset = dataset
        self.column = column
        self.indices = np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return HFColumn(self.dataset, self.column, self.indices[i])
        return self.dataset[int(self.indices[i])][self.column]

    def take(self, indices: np.ndarray) -> HFColumn:
        return HFColumn(self.dataset, self.column, self.indices[np.asarray(indices, dtype=np.int64)])


def _hf_content_id(dataset: Any, indices: np.ndarray) -> str | None:
    files = getattr(dataset, "cache_files", None) or []
    if not files:
        return None
    h = hashlib.sha256()
    for entry in files:
        name = entry["filename"]
        st = os.stat(name)
        h.update(f"{os.path.abspath(name)}:{st.st_size}:{st.st_mtime_ns};".encode())
    h.update(np.asarray(indices, dtype=np.int64).tobytes())
    return h.hexdigest()


def _load_hf(path: Path, split: str) -> TargetDataset:
    import datasets as hf

    loaded = hf.load_from_disk(str(path))
    notes: list[str] = []
    if isinstance(loaded, hf.DatasetDict):
        names = list(loaded.keys())
        chosen = next((a for a in _SPLIT_ALIASES.get(split, (split,)) if a in loaded), None)
        if chosen is None:
            raise ValueError(f"{path} has splits {_list(names)} but no {split!r}; pass split= one of them")
        ds, record_split = loaded[chosen], split
    else:
        ds, record_split = loaded, "all"
    features = ds.features
    columns = list(features.keys())
    if "label" not in columns:
        raise ValueError(f"{path} has no 'label' column; columns present: {_list(columns)}")
    image_columns = [c for c in columns if isinstance(features[c], hf.Image)]
    text_columns = [
        c
        for c in columns
        if c not in ("label", "split")
        and isinstance(features[c], hf.Value)
        and features[c].dtype in ("string", "large_string")
    ]
    if image_columns:
        modality, column = "image", image_columns[0]
    elif text_columns:
        preferred = [c for c in _TEXT_COLUMN_PREFERENCE if c in text_columns]
        if not preferred and len(text_columns) > 1:
            raise ValueError(
                f"{path} has several text columns ({_list(text_columns)}) and none is named "
                f"{' or '.join(_TEXT_COLUMN_PREFERENCE)}; rename the one to use to 'text'"
            )
        modality, column = "text", (preferred or text_columns)[0]
    else:
        raise ValueError(f"{path} has no image or text column; columns present: {_list(columns)}")
    label_feature = features["label"]
    raw_labels = np.asarray(ds["label"])
    if isinstance(label_feature, hf.ClassLabel):
        classes = tuple(label_feature.names)
        codes = raw_labels.astype(np.int64)
    else:
        codes, classes = encode_labels(raw_labels)
    idx = np.arange(len(ds))
    if record_split == "all":
        if "split" in columns:
            mask, record_split = _split_mask(ds["split"], split, str(path))
            idx = np.flatnonzero(mask)
        else:
            notes.append(f"{path} is a single dataset without splits; all rows are used (split 'all')")
    if modality == "image":
        items: Sequence[Any] = HFColumn(ds.select_columns([column]), column, idx)
    else:
        texts = ds[column]
        items = [texts[i] for i in idx]
    return TargetDataset(
        items=items,
        labels=codes[idx],
        modality=modality,
        name=path.name,
        split=record_split,
        classes=classes,
        notes=notes,
        source=str(path),
        content_id=_hf_content_id(ds, idx) if modality == "image" else None,
    )


# ---------------------------------------------------------------------------------------------------------
# entry point


def split_spec_options(spec: str) -> tuple[str, dict[str, str]]:
    """``"texts.csv?text=review&label=stars"`` -> ``("texts.csv", {"text": "review", "label": "stars"})``.

    A spec naming an existing file or folder is taken whole (its name may hold a ``?``). Values
    are percent-decoded (``%26`` is ``&``), so column names holding ``&``, ``=`` or ``?`` can be
    given. Options: :data:`TABLE_COLUMN_OPTIONS`.

    Raises
    ------
    ValueError
        A malformed, repeated or unknown option.
    """
    if "?" not in spec or Path(spec).expanduser().exists():
        return spec, {}
    base, _, query = spec.partition("?")
    options: dict[str, str] = {}
    for part in query.split("&"):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        value = unquote(value.strip())
        if not sep or not key or not value:
            raise ValueError(
                f"data option {part!r} of {spec!r} must look like KEY=VALUE, "
                f"e.g. {base}?text=review&label=stars"
            )
        if key not in TABLE_COLUMN_OPTIONS:
            close = difflib.get_close_matches(key, TABLE_COLUMN_OPTIONS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"unknown data option {key!r} in {spec!r}; valid options: "
                f"{', '.join(TABLE_COLUMN_OPTIONS)} (the columns of a .csv/.jsonl file).{hint}"
            )
        if key in options:
            raise ValueError(f"data option {key!r} is given twice in {spec!r}")
        options[key] = value
    return base, options


def _resolve(spec: str, split: str) -> TargetDataset:
    spec, options = split_spec_options(spec)
    if options:
        suffix = Path(spec).suffix.lower()
        if spec.startswith(_BUILTIN_PREFIX) or suffix not in (".csv", ".jsonl"):
            raise ValueError(
                f"data options ({', '.join(f'{k}={v}' for k, v in options.items())}) choose the columns of "
                f"a .csv or .jsonl file; {spec!r} is not one (the --label-column, --text-column and "
                "--path-column flags apply to such files only)"
            )
    if spec.startswith(_BUILTIN_PREFIX):
        return load_builtin(spec[len(_BUILTIN_PREFIX) :], split)
    path = Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"dataset {spec!r} not found: no such file or folder. Valid forms: {DATASET_SPEC_FORMS}"
        )
    if path.is_dir():
        return _load_hf(path, split) if _is_hf_folder(path) else _load_image_folder(path, split)
    if path.suffix.lower() in (".csv", ".jsonl"):
        return _load_table(path, split, options)
    loaders = {
        ".npz": _load_npz,
        ".npy": _load_npy,
        ".parquet": _load_parquet,
    }
    loader = loaders.get(path.suffix.lower())
    if loader is None:
        raise ValueError(
            f"unknown dataset format {path.suffix or path.name!r} for {spec!r}. "
            f"Valid forms: {DATASET_SPEC_FORMS}"
        )
    return loader(path, split)


def _names(dataset: TargetDataset, codes: Sequence[int]) -> str:
    classes = dataset.classes or ()
    return _list([classes[c] for c in codes])


def load_dataset(
    spec: str,
    *,
    split: str = "train",
    per_class: int | None = None,
    seed: int = 0,
    on_unreadable: Literal["fail", "skip"] = "fail",
) -> TargetDataset:
    """Load a labelled target data set from a spec.

    Parameters
    ----------
    spec : str
        One of: a folder of images with one sub-folder per class (if it holds ``train/``,
        ``val/`` or ``test/`` folders, the requested split is used); a ``.csv`` / ``.jsonl`` file
        with columns ``path`` (images; relative paths resolve against the file's folder) or
        ``text``, ``label`` and optionally ``split`` (other column names with the spec options
        ``?text=COLUMN``, ``?path=COLUMN``, ``?label=COLUMN``, joined by ``&``:
        ``reviews.csv?text=review&label=stars``; values are percent-decoded); a ``.npz`` with
        arrays ``features`` and ``labels`` (optionally ``split``), or a structured ``.npy`` with
        those fields; a ``.parquet`` file with numeric feature columns (or one list column
        ``features``), ``label`` and optionally ``split``; a Hugging Face ``datasets`` folder
        written by ``save_to_disk`` (image or text column auto-detected, labels in ``label``); or
        ``builtin:fashion-mnist``, ``builtin:digits``, ``builtin:wordnet-supersense``.
    split : str, default "train"
        Which split to load. Sources without splits load every sample and record the split
        as ``"all"``. Score on ``"train"`` only; keep test data for evaluation.
    per_class : int, optional
        Keep at most this many samples of each class, drawn with ``seed`` (stratified). Classes
        with fewer samples keep all of them (noted in ``dataset.notes``).
    seed : int, default 0
        Seed of the stratified subsample.
    on_unreadable : {"fail", "skip"}, default "fail"
        What to do with missing or unreadable image files (found by a header scan of the
        selected files): raise, or drop them and record them in ``dataset.notes``.

    Returns
    -------
    TargetDataset

    Raises
    ------
    FileNotFoundError
        The spec names no existing file or folder, or a built-in's package is not installed.
    ValueError
        Unknown format or built-in (the message lists the valid forms), missing columns (the
        message lists the columns present), bad spec options, empty class folders, missing
        labels, an unknown split, or missing/unreadable image files with
        ``on_unreadable="fail"``.

    Examples
    --------
    >>> ds = load_dataset("builtin:digits", per_class=5, seed=0)
    >>> ds.describe()
    'digits (train split, 50 image samples, 10 classes)'
    """
    if on_unreadable not in ("fail", "skip"):
        raise ValueError(f"on_unreadable must be 'fail' or 'skip', not {on_unreadable!r}")
    if per_class is not None and (
        isinstance(per_class, bool) or not isinstance(per_class, int | np.integer) or per_class < 1
    ):
        raise ValueError(f"per_class must be a positive integer or None, not {per_class!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"seed must be an integer, not {seed!r}")
    dataset = _resolve(str(spec), split)
    if len(dataset) == 0:
        raise ValueError(f"dataset {spec!r} ({dataset.split} split) has no samples")
    if per_class is not None:
        idx, short = stratified_subsample_indices(dataset.labels, int(per_class), int(seed))
        note = f"stratified subsample: at most {per_class} samples per class (seed {seed})"
        if short:
            note += f"; classes with fewer than {per_class} keep all: {_names(dataset, short)}"
        dataset = dataset.select(idx, note=note, subsample={"per_class": int(per_class), "seed": int(seed)})
    paths = dataset.item_paths()
    if paths is not None:
        bad = scan_image_files(paths)
        if bad:
            summary = summarize_bad_files(bad, len(paths))
            if on_unreadable == "fail":
                raise ValueError(f"{summary}; pass on_unreadable='skip' to drop them")
            keep = np.setdiff1d(np.arange(len(paths)), [i for i, _, _ in bad])
            dataset = dataset.select(keep, note=f"skipped {summary}")
            if len(dataset) == 0:
                raise ValueError(f"dataset {spec!r}: every image file is missing or unreadable")
    counts = dataset.class_counts()
    singles = np.flatnonzero(counts == 1).tolist()
    if singles:
        dataset.notes.append(
            f"classes with a single sample: {_names(dataset, singles)}; measures that need within-class "
            "statistics treat them as degenerate"
        )
    return dataset
