"""Building blocks for writing a checkpoint source outside this package.

A source (such as :mod:`ckptrank.zoo`, or a third-party one) registers a spec prefix with
:func:`register_source` and returns :class:`Checkpoint` objects; these are the pieces the
built-in sources are made of, under stable public names: the checkpoint contract, the
preparers, the option parsing of a spec and the torch helpers (safe weight loading, content
fingerprints, seeding).
"""

from __future__ import annotations

from ._base import Checkpoint, CheckpointError, ModelOutput, Preprocessing
from ._prepare import ImagePreparer, TextPreparer, TokenCount, check_texts, count_tokens
from ._source import (
    ParsedSpec,
    check_options,
    closest_hint,
    get_source,
    list_source_infos,
    opt_choice,
    opt_int,
    parse_spec,
    register_source,
    resolve_path,
)
from ._torch import (
    TorchCheckpoint,
    file_fingerprint,
    load_into,
    load_weights_file,
    require,
    seeded,
)

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "ImagePreparer",
    "ModelOutput",
    "ParsedSpec",
    "Preprocessing",
    "TextPreparer",
    "TokenCount",
    "TorchCheckpoint",
    "check_options",
    "check_texts",
    "closest_hint",
    "count_tokens",
    "file_fingerprint",
    "get_source",
    "list_source_infos",
    "load_into",
    "load_weights_file",
    "opt_choice",
    "opt_int",
    "parse_spec",
    "register_source",
    "require",
    "resolve_path",
    "seeded",
]
