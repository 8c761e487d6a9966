"""``timm:NAME[.TAG]`` checkpoints: any timm architecture, with its pretrained weights.

The architecture comes from ``timm.create_model(NAME, pretrained=False)``; the weights from
``?weights=PATH`` (safetensors or a tensors-only torch file), else from the model's pretrained
config as timm itself resolves it: its ``hf_hub_id`` is downloaded through ``huggingface_hub``
into the standard Hugging Face cache (safetensors preferred, pinned to the commit it resolves
to; the cache only with ``--offline`` / ``HF_HUB_OFFLINE=1``), or, for the few configs with only
a ``url``, through ``torch.hub`` into ``$TORCH_HOME/hub/checkpoints``. Pickled weights are read
with ``torch.load(weights_only=True)`` unless ``trust_checkpoint``. ``?init=random`` asks for a
random-initialised control.
Preprocessing follows timm's ``resolve_data_config`` (input size, mean, std, interpolation,
``crop_pct``). Features are ``forward_head(forward_features(x), pre_logits=True)``; logits
``forward_head(forward_features(x))``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._base import Checkpoint, CheckpointError, ModelOutput, Preprocessing
from ._hub import ModelFolder, fetch_files, pinned_fingerprint, torch_hub_file
from ._prepare import ImagePreparer
from ._source import (
    ParsedSpec,
    check_options,
    closest_hint,
    opt_choice,
    opt_int,
    register_source,
    resolve_path,
)
from ._torch import (
    TorchCheckpoint,
    extract_state_dict,
    load_into,
    load_weights_file,
    require,
    seeded,
    state_dict_fingerprint,
)

__all__ = ["TimmCheckpoint", "build_timm"]

OPTIONS = {
    "weights": "local weights file (.safetensors, or .pt/.pth/.bin holding tensors only)",
    "init": "'pretrained' (default: weights file or local HF cache) or 'random' (random-initialised control)",
    "seed": "seed of the random initialisation (init=random; default 0)",
    "size": "input image size in pixels (default: the pretrained config's); passed as img_size to models "
    "that take one (ViTs)",
    "pool": "token pooling of 3-D layer outputs picked with @layer: 'mean' (default) or 'cls'",
}

_DATASET_TAGS = (
    ("in22k_ft_in1k", "ImageNet-22k, fine-tuned on ImageNet-1k"),
    ("in21k_ft_in1k", "ImageNet-21k, fine-tuned on ImageNet-1k"),
    ("in12k_ft_in1k", "ImageNet-12k, fine-tuned on ImageNet-1k"),
    ("in22k", "ImageNet-22k"),
    ("in21k", "ImageNet-21k"),
    ("in12k", "ImageNet-12k"),
    ("in1k", "ImageNet-1k"),
)


def _source_dataset(tag: str | None) -> str | None:
    for key, label in _DATASET_TAGS:
        if tag and key in tag:
            return label
    return None


#: Weight file names a timm hub repository may hold, safest first.
_HUB_WEIGHT_FILES = (
    "model.safetensors",
    "open_clip_model.safetensors",
    "pytorch_model.bin",
    "open_clip_pytorch_model.bin",
)


def _pretrained_weights(cfg: dict[str, Any], name: str, spec: str) -> tuple[Path, str, str | None]:
    """(local weights file, a description, the hub commit) of a timm pretrained config."""
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        preferred = cfg.get("hf_hub_filename")
        candidates = ([preferred] if preferred else []) + [f for f in _HUB_WEIGHT_FILES if f != preferred]
        found, commit = fetch_files(str(hub_id), candidates, label=f"timm:{name}")
        (path,) = found.values()
        return path, f"{hub_id}@{commit}", commit
    url = cfg.get("url")
    if url:
        return torch_hub_file(str(url), f"timm:{name}"), str(url), None
    raise CheckpointError(
        f"timm has no pretrained weights for {name!r} (from {spec!r}); pass ?weights=PATH, or "
        "?init=random for a random-initialised control"
    )


class TimmCheckpoint(TorchCheckpoint):
    """A timm model: features from ``forward_head(..., pre_logits=True)``."""

    def _penultimate(self, batch: Any) -> ModelOutput:
        model: Any = self._module
        ff = model.forward_features(batch)
        features = model.forward_head(ff, pre_logits=True)
        logits = model.forward_head(ff) if self._has_head else None
        return ModelOutput(features=features.flatten(1), logits=logits)


def _classifier_name(cfg: dict[str, Any]) -> str | None:
    classifier = cfg.get("classifier")
    if isinstance(classifier, (tuple, list)):
        classifier = classifier[0] if classifier else None
    return classifier


def _num_classes_in(sd: dict[str, torch.Tensor], classifier: str | None, default: int) -> int:
    """Number of classes of the head stored in ``sd``; 0 when it has no head weights."""
    if not classifier:
        return default
    weight = sd.get(f"{classifier}.weight")
    if weight is not None:
        return int(weight.shape[0])
    if any(k.startswith(classifier + ".") for k in sd):
        return default
    return 0


def _create(timm: Any, name: str, kwargs: dict[str, Any], size: int | None, spec: str) -> nn.Module:
    try:
        if size is not None:
            try:
                return timm.create_model(name, pretrained=False, img_size=size, **kwargs)
            except TypeError:
                pass  # a model without an img_size argument (CNNs take any input size)
        return timm.create_model(name, pretrained=False, **kwargs)
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(
            f"timm cannot build {name!r} (from {spec!r}): {type(exc).__name__}: {exc}"
        ) from None


def build_timm(
    parsed: ParsedSpec,
    trust: bool,
    *,
    state_dict: dict[str, torch.Tensor] | None = None,
    weights_label: str | None = None,
) -> Checkpoint:
    """Load ``timm:NAME``; ``state_dict`` (from ``file:...?arch=timm:NAME``) replaces ``?weights``."""
    check_options(parsed, OPTIONS)
    timm = require("timm", "timm", "timm:")
    name = parsed.name
    if not timm.is_model(name):
        valid = timm.list_models()
        base = name.split(".")[0]
        raise CheckpointError(
            f"unknown timm architecture {name!r} in {parsed.spec!r}.{closest_hint(base, valid, n=3)} "
            f"({len(valid)} architectures: see timm.list_models())"
        )
    init = opt_choice(parsed, "init", ("pretrained", "random"), "pretrained")
    seed = opt_int(parsed, "seed", 0, minimum=0)
    size = opt_int(parsed, "size", None, minimum=8)
    pool = opt_choice(parsed, "pool", ("mean", "cls"), "mean")
    pretrained_cfg = timm.models.get_pretrained_cfg(name, allow_unregistered=True)
    cfg: dict[str, Any] = pretrained_cfg.to_dict() if pretrained_cfg is not None else {}
    weights = weights_label
    from_cache = False
    commit: str | None = None
    if state_dict is None and "weights" in parsed.options:
        if init == "random":
            raise CheckpointError(f"{parsed.spec!r}: give either weights=PATH or init=random, not both")
        path = resolve_path(parsed.options["weights"], "weights file", spec=parsed.spec)
        state_dict = extract_state_dict(load_weights_file(path, trust=trust), path)
        weights = str(path)
    elif state_dict is None and init == "pretrained":
        cached, weights, commit = _pretrained_weights(cfg, name, parsed.spec)
        state_dict = extract_state_dict(load_weights_file(cached, trust=trust), cached)
        from_cache = True
    kwargs: dict[str, Any] = {}
    if state_dict is not None:
        kwargs["num_classes"] = _num_classes_in(
            state_dict, _classifier_name(cfg), cfg.get("num_classes", 1000)
        )
    with seeded(seed if seed is not None else 0):
        model = _create(timm, name, kwargs, size, parsed.spec)
    if state_dict is not None:
        module = sys.modules.get(type(model).__module__)
        filter_fn = getattr(module, "checkpoint_filter_fn", None)
        load_into(model, state_dict, what=weights or "the weights", arch=f"timm:{name}", filter_fn=filter_fn)
    else:
        weights = f"random-init (seed {seed})"
    model.eval()
    data_cfg = timm.data.resolve_data_config({}, model=model)
    image_size = size or int(data_cfg["input_size"][-1])
    crop_pct = float(data_cfg.get("crop_pct") or 1.0)
    crop_mode = data_cfg.get("crop_mode", "center")
    preprocessing = Preprocessing(
        modality="image",
        image_size=image_size,
        resize_size=math.floor(image_size / crop_pct),
        mean=tuple(float(v) for v in data_cfg["mean"]),
        std=tuple(float(v) for v in data_cfg["std"]),
        interpolation=str(data_cfg.get("interpolation", "bicubic")),
        extra={"resize_mode": "square" if crop_mode == "squash" else "shorter", "crop_pct": crop_pct},
    )
    num_classes = int(getattr(model, "num_classes", 0) or 0)
    # The tag names the training data only for the cache entry or when the user named a tag.
    tagged = state_dict is not None and (from_cache or "." in name)
    card = {
        "source": "timm",
        "architecture": name,
        "weights": weights,
        "revision": commit,
        "source_dataset": _source_dataset(cfg.get("tag")) if tagged else None,
        "num_source_classes": num_classes,
    }
    num_features = getattr(model, "head_hidden_size", None) or getattr(model, "num_features", None)
    folder = None if commit is None else ModelFolder(str(cached.parent), str(cfg.get("hf_hub_id")), commit)
    ckpt = TimmCheckpoint(
        model,
        spec=parsed.spec,
        name=f"timm:{name}",
        modality="image",
        preprocessing=preprocessing,
        preparer=ImagePreparer(preprocessing),
        card=card,
        num_features=int(num_features) if num_features else None,
        has_head=num_classes > 0,
        pool=pool,
        fingerprint=None
        if folder is None
        else lambda: pinned_fingerprint(state_dict_fingerprint(model.state_dict()), folder),
    )
    return ckpt


@register_source(
    "timm",
    syntax="timm:resnet18.a1_in1k?weights=/path/model.safetensors",
    description="timm architecture with its pretrained weights (downloaded by its hf_hub_id into the HF "
    "cache) or a local weights file",
    options=OPTIONS,
    requires="timm",
)
def _load(parsed: ParsedSpec, trust: bool) -> Checkpoint:
    return build_timm(parsed, trust)
