"""Feature extraction engine: batched forward passes, the feature cache and progress bars.

The names below are imported from their modules on first use, so that importing one light
module of the engine (``ckptrank.engine.progress``) does not import torch.
"""

from __future__ import annotations

_LAZY = {
    "CacheCorruptionWarning": "cache",
    "CacheEntry": "cache",
    "CachedFeatures": "cache",
    "FeatureCache": "cache",
    "VerifyResult": "cache",
    "cache_key": "cache",
    "default_cache_dir": "cache",
    "Extracted": "extraction",
    "extract": "extraction",
    "extraction_key": "extraction",
    "progress_bar": "progress",
    "progress_enabled": "progress",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ckptrank.engine' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
