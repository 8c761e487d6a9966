"""The catalogue of built-in measures, read without importing them (so ``ckptrank measures`` is fast).

``measures_catalog.json`` holds, per built-in measure, what ``ckptrank measures`` prints: name,
requirements, direction, kind, score range, citation and one-line summary. It is generated from
the registry by :func:`ckptrank.measures.catalog_rows` (``python -m ckptrank.measures`` rewrites
it), and a test fails when it no longer matches the registry.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = ["CATALOG_FILE", "read_catalog"]

CATALOG_FILE = "measures_catalog.json"


def read_catalog() -> list[dict[str, Any]]:
    """The built-in measures' catalogue rows (see the module docstring).

    Raises
    ------
    ValueError
        The file is missing or damaged (reinstall ckptrank).
    """
    try:
        rows = json.loads(resources.files("ckptrank").joinpath(CATALOG_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(
            f"the measure catalogue {CATALOG_FILE} cannot be read ({err}); reinstall ckptrank"
        ) from None
    if not isinstance(rows, list):
        raise ValueError(f"the measure catalogue {CATALOG_FILE} is damaged; reinstall ckptrank")
    return rows
