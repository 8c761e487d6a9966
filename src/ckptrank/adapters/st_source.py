"""``st:ORG/NAME[@REVISION]`` and ``st:/local/folder`` checkpoints: sentence-transformers models.

A hub id is downloaded through ``huggingface_hub`` into the standard Hugging Face cache (pinned
to the commit its revision resolves to; never Python files; the cache only with ``--offline``),
then loaded from that snapshot, like a local folder, with ``SentenceTransformer(path,
local_files_only=True, trust_remote_code=False)``. A model whose ``modules.json`` names a module
outside ``sentence_transformers``, or whose configuration needs repository code, is refused
before loading: ckptrank never runs a checkpoint's code. Features are the model's
own ``sentence_embedding`` (its full module pipeline, including any ``Normalize`` module
it ships); ``?normalize=1`` adds L2 normalisation on top. No head.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ._base import Checkpoint, CheckpointError, ModelOutput, Preprocessing
from ._hub import pinned_fingerprint, resolve_model_folder
from ._prepare import TokenCount, check_texts, count_tokens
from ._source import ParsedSpec, check_options, opt_bool, opt_choice, opt_int, register_source
from ._torch import TorchCheckpoint, require, state_dict_fingerprint

__all__ = ["SentenceTransformerCheckpoint", "build_st"]

OPTIONS = {
    "normalize": "1 to L2-normalise the embeddings on top of the model's own pipeline (default 0)",
    "max_length": "token limit (default: the model's max_seq_length)",
    "pool": "token pooling of 3-D layer outputs picked with @layer: 'mean' (default, mask-aware) or 'cls'",
}


class SentenceTransformerCheckpoint(TorchCheckpoint):
    """A SentenceTransformer; ``prepare`` returns tensors only, ``forward`` restores the rest."""

    def __init__(self, module: Any, *, normalize: bool, batch_extras: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(module, **kwargs)
        self._normalize = normalize
        self._extras = batch_extras

    def prepare(self, items: Sequence[Any]) -> dict[str, torch.Tensor]:
        texts = check_texts(items)
        if not texts:
            raise ValueError("prepare() needs at least one item")
        batch = self._module.preprocess(texts)
        return {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}

    def preparer(self) -> Any:
        return self.prepare

    def count_tokens(self, items: Sequence[Any]) -> TokenCount:
        tokenizer = self._module.tokenizer
        model_limit = getattr(tokenizer, "model_max_length", None)
        sane = isinstance(model_limit, int) and 0 < model_limit < 1_000_000  # unset: a huge sentinel
        return count_tokens(tokenizer, items, int(self._module.max_seq_length), model_limit if sane else None)

    def _run(self, batch: Any) -> Any:
        return self._module({**batch, **self._extras})

    def _penultimate(self, batch: Any) -> ModelOutput:
        emb = self._run(batch)["sentence_embedding"]
        if self._normalize:
            emb = torch.nn.functional.normalize(emb, p=2, dim=1)
        return ModelOutput(features=emb)


def build_st(
    parsed: ParsedSpec, trust: bool, *, path: str | None = None, card: dict[str, Any] | None = None
) -> Checkpoint:
    """Load ``st:NAME_OR_PATH`` (``trust`` is unused: remote code is never run)."""
    check_options(parsed, OPTIONS)
    st = require("sentence_transformers", "sentence-transformers", "st:")
    from .hf_source import quiet_transformers

    label = f"st:{parsed.name}" if path is None else parsed.name
    folder = resolve_model_folder(
        path or parsed.name, parsed.revision, parsed.spec, kind="sentence-transformers", label=label
    )
    with quiet_transformers():
        try:
            model = st.SentenceTransformer(
                folder.path, device="cpu", local_files_only=True, trust_remote_code=False
            )
        except Exception as exc:  # OSError, ValueError, RuntimeError, UnpicklingError for bad folders
            raise CheckpointError(
                f"cannot load sentence-transformers model {label!r} (from {parsed.spec!r}) from "
                f"{folder.path!r} ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
            ) from None
    max_length = opt_int(parsed, "max_length", None)
    if max_length is not None:
        model.max_seq_length = max_length
    normalize = opt_bool(parsed, "normalize", False)
    pool = opt_choice(parsed, "pool", ("mean", "cls"), "mean")
    probe = model.preprocess(["probe"])
    extras = {k: v for k, v in probe.items() if not isinstance(v, torch.Tensor)}
    dim_fn = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    dim = dim_fn()
    preprocessing = Preprocessing(
        modality="text",
        max_length=model.max_seq_length,
        extra={
            "tokenizer": type(model.tokenizer).__name__,
            "name_or_path": str(parsed.name),
            "normalize": normalize,
        },
    )
    weights = folder.path if folder.commit is None else f"{folder.repo_id}@{folder.commit}"
    info = {"source": "sentence-transformers", "architecture": "SentenceTransformer", "weights": weights}
    info.update({"revision": folder.commit, "source_dataset": None, "num_source_classes": 0})
    info.update(card or {})
    ckpt = SentenceTransformerCheckpoint(
        model,
        normalize=normalize,
        batch_extras=extras,
        spec=parsed.spec,
        name=f"st:{parsed.name}" if path is None else parsed.name,
        modality="text",
        preprocessing=preprocessing,
        preparer=None,  # type: ignore[arg-type]  # prepare() is overridden
        card=info,
        num_features=int(dim) if dim else None,
        has_head=False,
        pool=pool,
        fingerprint=lambda: pinned_fingerprint(state_dict_fingerprint(model.state_dict()), folder),
    )
    return ckpt


@register_source(
    "st",
    syntax="st:sentence-transformers/all-MiniLM-L6-v2[@REVISION] or st:/path/to/sentence-transformer",
    description="sentence-transformers model from the hub (downloaded into the HF cache) or a local folder",
    options=OPTIONS,
    requires="sentence-transformers",
)
def _load(parsed: ParsedSpec, trust: bool) -> Checkpoint:
    return build_st(parsed, trust)
