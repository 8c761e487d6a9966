"""Map known exceptions to one-line messages; ``CKPTRANK_DEBUG=1`` shows the traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TypeVar

__all__ = ["debug_enabled", "run_with_error_mapping"]

T = TypeVar("T")


def debug_enabled() -> bool:
    """Whether ``CKPTRANK_DEBUG`` asks for full tracebacks."""
    return os.environ.get("CKPTRANK_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def run_with_error_mapping(func: Callable[[], T]) -> T:
    """Run ``func``; on a user-facing error print ``error: <message>`` to stderr and exit 1."""
    try:
        return func()
    except KeyboardInterrupt:
        print("error: interrupted; finished work is cached and a re-run resumes from it", file=sys.stderr)
        raise SystemExit(130) from None
    except (
        ValueError,
        KeyError,
        FileNotFoundError,
        PermissionError,
        RuntimeError,
        OSError,
        ImportError,
    ) as err:
        if debug_enabled():
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        message = " ".join(str(message).split()) or type(err).__name__
        print(f"error: {message} (set CKPTRANK_DEBUG=1 for the traceback)", file=sys.stderr)
        raise SystemExit(1) from None
