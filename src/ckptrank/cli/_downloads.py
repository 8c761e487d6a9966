"""How the CLI shows hub downloads: the hub clients' own bars in a terminal, one line per file in a log.

The adapters report each file they download on the ``ckptrank.download`` logger; this module
sends those records to stderr as plain lines (``downloading hf:ORG/NAME: model.safetensors
(file 2 of 5)``), and, when stderr is not a terminal or ckptrank's progress bars are disabled,
turns ``huggingface_hub``'s progress bars off so a log holds those lines and nothing else.
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["report_downloads"]

_LOGGER = "ckptrank.download"


class _StderrHandler(logging.Handler):
    """Writes each record as one line to whatever ``sys.stderr`` is when it is emitted."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # logging's contract: a failing handler never raises
            self.handleError(record)


def report_downloads() -> None:
    """Show ``ckptrank.download`` records on stderr; quiet the hub's bars outside a terminal."""
    logger = logging.getLogger(_LOGGER)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    from ckptrank.engine.progress import progress_enabled

    if not progress_enabled():
        # Read by huggingface_hub when it is first imported (the adapters import it lazily).
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        if "huggingface_hub" in sys.modules:
            from huggingface_hub.utils import disable_progress_bars

            disable_progress_bars()
