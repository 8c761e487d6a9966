"""The one progress wrapper of ckptrank: tqdm bars in a terminal, plain lines in a log.

Bars are shown only when stderr is a terminal, and never when the environment variable
``CKPTRANK_DISABLE_PROGRESS_BARS`` is set to anything but ``0``/``false``/``no``/empty.

Where a bar would be useless (stderr is a file, a pipe or a CI log), a caller passes a
:class:`ProgressLines` as ``progress``: every extraction then writes one plain line when it
ends (``[3/12] efficientnet-lite0: extracted 400 samples in 2.1 s``), and a line at most every
``interval`` seconds while a long one runs.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["DISABLE_ENV_VAR", "ProgressLines", "progress_bar", "progress_enabled"]

DISABLE_ENV_VAR = "CKPTRANK_DISABLE_PROGRESS_BARS"

#: The engine names its extraction bars ``"features SPEC"``.
_DESC_PREFIX = "features "


def _env_disabled() -> bool:
    return os.environ.get(DISABLE_ENV_VAR, "").strip().lower() not in ("", "0", "false", "no")


def _stderr_line(text: str) -> None:
    """Write one line to whatever ``sys.stderr`` is now (a test may have replaced it)."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


class ProgressLines:
    """Progress as plain lines, one per extraction: for logs, where a bar is unreadable.

    Pass an instance as ``progress`` to :func:`ckptrank.rank` (or anything that hands
    ``progress`` to the extraction engine); each extraction's bar is replaced by a line.

    Parameters
    ----------
    specs : sequence of str, optional
        The checkpoints in the order they run; a line for one of them starts with
        ``[i/n]``. Extractions of other names are still reported, without the count.
    write : callable, optional
        Receives each line (no newline); default: stderr.
    interval : float, default 30.0
        Seconds between the interim lines of a long extraction (``inf`` for none).
    clock : callable, optional
        Time source in seconds (tests pass a fake one); default :func:`time.perf_counter`.

    Examples
    --------
    >>> lines = []
    >>> progress = ProgressLines(["a", "b"], write=lines.append)
    >>> with progress_bar(total=4, desc="features b", enabled=progress) as bar:
    ...     bar.update(4)
    >>> lines[0].startswith("[2/2] b: extracted 4 samples in ")
    True
    """

    def __init__(
        self,
        specs: Sequence[str] | None = None,
        *,
        write: Callable[[str], None] | None = None,
        interval: float = 30.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.specs = list(specs or [])
        self.write = write or _stderr_line
        self.interval = float(interval)
        self.clock = clock or time.perf_counter

    def label(self, desc: str) -> str:
        """``"[i/n] SPEC"`` for a bar named ``"features SPEC"`` (just ``SPEC`` when it is not listed)."""
        name = desc[len(_DESC_PREFIX) :] if desc.startswith(_DESC_PREFIX) else desc
        if name in self.specs:
            return f"[{self.specs.index(name) + 1}/{len(self.specs)}] {name}"
        return name

    def cached(self, spec: str, n_samples: int) -> None:
        """Report a checkpoint whose features came from the cache (no extraction, so no bar)."""
        self.write(f"{self.label(_DESC_PREFIX + spec)}: {n_samples} samples from the feature cache")

    def bar(self, *, total: int, desc: str, initial: int = 0) -> _LineBar:
        """A bar-like object (``update``, context manager) that reports through ``write``."""
        return _LineBar(self, total=total, label=self.label(desc), initial=initial)


class _LineBar:
    """What :func:`progress_bar` returns for a :class:`ProgressLines`: tqdm's small API, as lines."""

    def __init__(self, owner: ProgressLines, *, total: int, label: str, initial: int) -> None:
        self.owner = owner
        self.total = int(total)
        self.label = label
        self.initial = int(initial)
        self.n = int(initial)
        self.start = owner.clock()
        self.last_line = self.start
        self.closed = False

    def __enter__(self) -> _LineBar:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(failed=exc_type is not None)

    def update(self, n: int = 1) -> None:
        self.n += int(n)
        now = self.owner.clock()
        if now - self.last_line >= self.owner.interval and self.n < self.total:
            self.last_line = now
            self.owner.write(f"{self.label}: {self.n}/{self.total} samples, {now - self.start:.0f} s so far")

    def close(self, *, failed: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        seconds = self.owner.clock() - self.start
        done = self.n - self.initial
        if failed:
            self.owner.write(f"{self.label}: stopped after {self.n}/{self.total} samples ({seconds:.1f} s)")
            return
        resumed = f" (+{self.initial} from a partial cache)" if self.initial else ""
        self.owner.write(f"{self.label}: extracted {done} samples{resumed} in {seconds:.1f} s")


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
    *,
    total: int,
    desc: str,
    unit: str = "it",
    initial: int = 0,
    enabled: bool | ProgressLines | None = None,
) -> Any:
    """A ``tqdm`` bar on stderr (a no-op bar when disabled); use it as a context manager.

    With ``enabled`` a :class:`ProgressLines`, a line reporter with the same small API
    (``update``, ``close``, context manager) instead.
    """
    if isinstance(enabled, ProgressLines):
        return enabled.bar(total=total, desc=desc, initial=initial)
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
