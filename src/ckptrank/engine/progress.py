"""The one progress-bar wrapper of ckptrank (tqdm on stderr, easy to silence).

Bars are shown only when stderr is a terminal, and never when the environment variable
``CKPTRANK_DISABLE_PROGRESS_BARS`` is set to anything but ``0``/``false``/``no``/empty.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["DISABLE_ENV_VAR", "progress_bar", "progress_enabled"]

DISABLE_ENV_VAR = "CKPTRANK_DISABLE_PROGRESS_BARS"


def _env_disabled() -> bool:
    return os.environ.get(DISABLE_ENV_VAR, "").strip().lower() not in ("", "0", "false", "no")


def progress_enabled(requested: bool | None = None) -> bool:
    """Whether to draw a bar: never if the env var disables bars; else ``requested``, else stderr is a tty."""
    if _env_disabled():
        return False
    if requested is not None:
        return bool(requested)
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def progress_bar(
    *, total: int, desc: str, unit: str = "it", initial: int = 0, enabled: bool | None = None
) -> Any:
    """A ``tqdm`` bar on stderr (a no-op bar when disabled); use it as a context manager."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        disable=not progress_enabled(enabled),
        leave=False,
        dynamic_ncols=True,
        file=sys.stderr,
    )
