"""``torchvision:NAME[?weights=ENUM_NAME]`` checkpoints: torchvision classification architectures.

The architecture comes from ``torchvision.models.get_model(NAME, weights=None)``; the weights
from ``?weights=PATH`` (safetensors or a tensors-only torch file), else from the name's weights
enum (``?weights=IMAGENET1K_V2``, also ``?tag=``; default ``DEFAULT``): its file is downloaded
through ``torch.hub`` into ``$TORCH_HOME/hub/checkpoints`` (hash-checked, atomic) unless it is
there already, and read with ``torch.load(weights_only=True)``. With ``--offline`` /
``HF_HUB_OFFLINE=1`` only that cache is used. ``?init=random`` gives a random-initialised
control. Preprocessing is read from the
weights enum's transforms (resize, crop, mean, std, interpolation). Penultimate features are
the input of the last ``nn.Linear`` (the classifier), captured with a forward pre-hook.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._base import Checkpoint, CheckpointError, Preprocessing
from ._hub import torch_hub_file
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
    LinearHeadCheckpoint,
    extract_state_dict,
    last_linear,
    load_into,
    load_weights_file,
    require,
    seeded,
)

__all__ = ["build_torchvision"]

OPTIONS = {
    "weights": "weights enum entry (e.g. IMAGENET1K_V2 or ResNet50_Weights.IMAGENET1K_V2; downloaded into "
    "TORCH_HOME) or a local weights file (.safetensors, or .pt/.pth/.bin holding tensors only)",
    "tag": "weights enum entry whose preprocessing (and file) to use, e.g. IMAGENET1K_V2 (default: DEFAULT)",
    "init": "'pretrained' (default: weights file or torch hub cache) or 'random' "
    "(random-initialised control)",
    "seed": "seed of the random initialisation (init=random; default 0)",
    "size": "input image size in pixels (default: the weights enum's crop size, else 224)",
    "pool": "token pooling of 3-D layer outputs picked with @layer: 'mean' (default) or 'cls'",
}


def _weights_entry(models: Any, name: str, tag: str | None, spec: str) -> Any:
    try:
        enum = models.get_model_weights(name)
    except (KeyError, ValueError):
        if tag is not None:
            raise CheckpointError(
                f"{spec!r}: torchvision has no weights enum for {name!r}, so tag= is unknown"
            ) from None
        return None
    if tag is None:
        return enum.DEFAULT
    try:
        return enum[tag]
    except KeyError:
        valid = [w.name for w in enum]
        raise CheckpointError(
            f"unknown weights tag {tag!r} for torchvision:{name}.{closest_hint(tag, valid)} "
            f"Valid: {', '.join(valid)}"
        ) from None


def _enum_name(models: Any, name: str, value: str | None) -> str | None:
    """``value`` as a member name of ``name``'s weights enum, or None when it is not one (a path)."""
    if value is None:
        return None
    member = value.rpartition(".")[2] if "_Weights." in value else value
    try:
        enum = models.get_model_weights(name)
    except (KeyError, ValueError):
        return None
    return member if member == "DEFAULT" or member in enum.__members__ else None


def _preprocessing(entry: Any, size: int | None) -> Preprocessing:
    crop, resize = 224, 256
    mean, std, interpolation = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "bilinear"
    if entry is not None:
        tf = entry.transforms()
        crop = int(tf.crop_size[0])
        resize = int(tf.resize_size[0])
        mean, std = tuple(float(v) for v in tf.mean), tuple(float(v) for v in tf.std)
        interpolation = str(tf.interpolation.value)
    if size is not None:
        resize, crop = round(size * resize / crop), size
    return Preprocessing(
        modality="image", image_size=crop, resize_size=resize, mean=mean, std=std, interpolation=interpolation
    )


def build_torchvision(
    parsed: ParsedSpec,
    trust: bool,
    *,
    state_dict: dict[str, torch.Tensor] | None = None,
    weights_label: str | None = None,
) -> Checkpoint:
    """Load ``torchvision:NAME``; a given ``state_dict`` (from ``file:``) replaces ``?weights``."""
    check_options(parsed, OPTIONS)
    require("torchvision", "torchvision", "torchvision:")
    from torchvision import models

    name = parsed.name
    valid = models.list_models(module=models)
    if name not in valid:
        raise CheckpointError(
            f"unknown torchvision classification architecture {name!r} in {parsed.spec!r}."
            f"{closest_hint(name, valid, n=3)} ({len(valid)} architectures: see "
            "torchvision.models.list_models(module=torchvision.models))"
        )
    init = opt_choice(parsed, "init", ("pretrained", "random"), "pretrained")
    seed = opt_int(parsed, "seed", 0, minimum=0)
    size = opt_int(parsed, "size", None, minimum=8)
    pool = opt_choice(parsed, "pool", ("mean", "cls"), "mean")
    enum_member = _enum_name(models, name, parsed.options.get("weights"))
    if enum_member is not None and "tag" in parsed.options:
        raise CheckpointError(f"{parsed.spec!r}: give the weights enum entry once (weights= or tag=)")
    entry = _weights_entry(models, name, enum_member or parsed.options.get("tag"), parsed.spec)
    weights = weights_label
    official = False
    if state_dict is None and "weights" in parsed.options and enum_member is None:
        if init == "random":
            raise CheckpointError(f"{parsed.spec!r}: give either weights=PATH or init=random, not both")
        path = resolve_path(parsed.options["weights"], "weights file", spec=parsed.spec)
        state_dict = extract_state_dict(load_weights_file(path, trust=trust), path)
        weights = str(path)
    elif state_dict is None and init == "pretrained":
        if entry is None:
            raise CheckpointError(
                f"torchvision has no pretrained weights for {name!r} (from {parsed.spec!r}); pass "
                "?weights=PATH, or ?init=random for a random-initialised control"
            )
        cached = torch_hub_file(entry.url, f"torchvision:{name}")
        state_dict = extract_state_dict(load_weights_file(cached, trust=trust), cached)
        weights, official = f"{entry} ({cached.name})", True
    with seeded(seed if seed is not None else 0):
        model = _build(models, name, {}, parsed.spec)
        head = last_linear(model)
        if state_dict is not None and head is not None:
            stored = state_dict.get(f"{head[0]}.weight")
            if stored is not None and stored.shape[0] != head[1].out_features:
                model = _build(models, name, {"num_classes": int(stored.shape[0])}, parsed.spec)
                head = last_linear(model)
    if head is None:
        raise CheckpointError(
            f"torchvision:{name} has no nn.Linear classifier to read penultimate features from; "
            "pick a layer with @LAYER"
        )
    if state_dict is not None:
        load_into(model, state_dict, what=weights or "the weights", arch=f"torchvision:{name}")
    else:
        weights = f"random-init (seed {seed})"
    preprocessing = _preprocessing(entry, size)
    card: dict[str, Any] = {
        "source": "torchvision",
        "architecture": name,
        "weights": weights,
        "source_dataset": "ImageNet-1k" if official else None,
        "num_source_classes": head[1].out_features,
    }
    if official:
        acc = entry.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
        if acc is not None:
            card["source_accuracy"] = float(acc)
            card["source_accuracy_metric"] = "ImageNet-1k top-1 (%)"
            card["source_accuracy_reference"] = f"torchvision {entry} meta"
    return LinearHeadCheckpoint(
        model,
        head=head[0],
        spec=parsed.spec,
        name=f"torchvision:{name}",
        modality="image",
        preprocessing=preprocessing,
        preparer=ImagePreparer(preprocessing),
        card=card,
        num_features=head[1].in_features,
        has_head=True,
        pool=pool,
    )


def _build(models: Any, name: str, kwargs: dict[str, Any], spec: str) -> nn.Module:
    try:
        return models.get_model(name, weights=None, **kwargs)
    except Exception as exc:
        raise CheckpointError(
            f"torchvision cannot build {name!r} (from {spec!r}): {type(exc).__name__}: {exc}"
        ) from None


@register_source(
    "torchvision",
    syntax="torchvision:resnet50?weights=IMAGENET1K_V2 or torchvision:resnet18?weights=/path/r18.safetensors",
    description="torchvision classification architecture with its weights enum's file (downloaded into "
    "TORCH_HOME) or a local weights file",
    options=OPTIONS,
    requires="torchvision",
)
def _load(parsed: ParsedSpec, trust: bool) -> Checkpoint:
    return build_torchvision(parsed, trust)
