"""``python -m ckptrank.measures``: rewrite ``ckptrank/measures_catalog.json`` from the registry."""

from __future__ import annotations

import json
from importlib import resources

from ckptrank._atomic import replace_text
from ckptrank._catalog import CATALOG_FILE
from ckptrank.measures import catalog_rows

if __name__ == "__main__":
    target = resources.files("ckptrank").joinpath(CATALOG_FILE)
    replace_text(str(target), json.dumps(catalog_rows(), indent=2) + "\n")
