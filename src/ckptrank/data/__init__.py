"""Target data sets: folders, tables, precomputed features, Hugging Face folders and built-ins."""

from __future__ import annotations

from .builtins import list_builtin_datasets
from .dataset import DatasetModality, TargetDataset, stratified_subsample_indices
from .sources import DATASET_SPEC_FORMS, load_dataset

__all__ = [
    "DATASET_SPEC_FORMS",
    "DatasetModality",
    "TargetDataset",
    "list_builtin_datasets",
    "load_dataset",
    "stratified_subsample_indices",
]
