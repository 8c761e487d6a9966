"""Where ckptrank keeps what it computes or assembles, and the warning for a damaged entry.

The lowest layer of the package: the adapters (assembled built-in checkpoints) and the engine
(the feature cache) both read it, and it imports nothing of ckptrank's own.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV_VAR", "CacheCorruptionWarning", "default_cache_dir"]

CACHE_ENV_VAR = "CKPTRANK_CACHE"


class CacheCorruptionWarning(UserWarning):
    """A cache entry failed its integrity check and was treated as a miss."""


def default_cache_dir() -> Path:
    """``$CKPTRANK_CACHE`` if set, else ``~/.cache/ckptrank``."""
    env = os.environ.get(CACHE_ENV_VAR, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ckptrank"
