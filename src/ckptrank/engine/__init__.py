"""Feature extraction engine: batched forward passes, the feature cache and progress bars."""

from __future__ import annotations

from .cache import (
    CacheCorruptionWarning,
    CachedFeatures,
    CacheEntry,
    FeatureCache,
    VerifyResult,
    cache_key,
    default_cache_dir,
)
from .extract import Extracted, extract, extraction_key
from .progress import progress_bar, progress_enabled

__all__ = [
    "CacheCorruptionWarning",
    "CacheEntry",
    "CachedFeatures",
    "Extracted",
    "FeatureCache",
    "VerifyResult",
    "cache_key",
    "default_cache_dir",
    "extract",
    "extraction_key",
    "progress_bar",
    "progress_enabled",
]
