"""A cheap scan for missing or unreadable image files (header check with PIL, in threads)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

__all__ = ["IMAGE_EXTENSIONS", "scan_image_files", "summarize_bad_files"]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)

_SERIAL_BELOW = 64


def _check(path: str) -> str | None:
    """None when the file opens as an image, else a short reason."""
    if not os.path.isfile(path):
        return "missing"
    try:
        from PIL import Image

        with Image.open(path) as image:
            image.verify()
    except Exception as err:  # PIL raises many types (UnidentifiedImageError, SyntaxError, OSError, ...)
        return f"unreadable ({type(err).__name__})"
    return None


def scan_image_files(paths: Sequence[str], *, max_workers: int | None = None) -> list[tuple[int, str, str]]:
    """Check that every path exists and has a valid image header (``PIL.Image.verify``).

    Returns
    -------
    list of (index, path, reason)
        One entry per bad file, in input order; ``reason`` is ``"missing"`` or
        ``"unreadable (<error type>)"``.
    """
    if len(paths) < _SERIAL_BELOW:
        reasons = [_check(p) for p in paths]
    else:
        workers = max_workers or min(16, 4 * (os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            reasons = list(pool.map(_check, paths))
    return [(i, paths[i], r) for i, r in enumerate(reasons) if r is not None]


def summarize_bad_files(bad: list[tuple[int, str, str]], total: int, *, first: int = 3) -> str:
    """One line: how many files are missing/unreadable and the first few of them."""
    missing = sum(1 for _, _, r in bad if r == "missing")
    unreadable = len(bad) - missing
    parts = []
    if missing:
        parts.append(f"{missing} missing")
    if unreadable:
        parts.append(f"{unreadable} unreadable")
    shown = "; ".join(f"{p} ({r})" for _, p, r in bad[:first])
    more = f"; and {len(bad) - first} more" if len(bad) > first else ""
    return f"{len(bad)} of {total} image files are missing or unreadable ({', '.join(parts)}): {shown}{more}"
