"""Atomic file replacement: readers see the old file or the new one, never a partial one."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["replace_file", "replace_text"]


def replace_file(target: str | Path, write: Callable[[Path], object]) -> Path:
    """Write ``target`` through ``write(temporary path)`` in its folder, then :func:`os.replace` it.

    ``os.replace`` renames onto the name itself, so a symbolic link there is replaced, never
    followed, and readers see the old file or the new one, never a partial one. The temporary
    file is created exclusively (a fresh random name) and removed when ``write`` fails.

    Returns
    -------
    pathlib.Path
        ``target``.
    """
    target = Path(target)
    tmp = target.with_name(f".{target.name}.{os.urandom(6).hex()}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # new, private name; umask mode
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return target


def replace_text(target: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``target`` with :func:`replace_file`."""
    return replace_file(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))
