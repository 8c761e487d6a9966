"""``hf:ORG/NAME[@REVISION]`` and ``hf:/local/folder`` checkpoints: Hugging Face transformers models.

A hub id is downloaded through ``huggingface_hub`` into the standard Hugging Face cache
(:func:`ckptrank.adapters._hub.fetch_repo`: configuration, tokenizer/processor files and
safetensors weights, pickled ``.bin`` weights only when the repository has no safetensors, never
Python files), pinned to the commit the revision resolves to; with ``--offline`` /
``HF_HUB_OFFLINE=1`` it comes from the cache only. The model then loads from that local snapshot
(or the local folder) with ``local_files_only=True`` and ``trust_remote_code=False`` on every
``from_pretrained`` call; a repository that needs its own code is refused before loading. Pickled
weights are read with ``torch.load(weights_only=True)``: a file that holds more than tensors
fails this checkpoint alone, with one line.

Vision models (a config with ``num_channels``) use ``AutoImageProcessor``'s settings through
ckptrank's own image pipeline; text models ``AutoTokenizer``. A checkpoint whose config names a
``*ForImageClassification`` / ``*ForSequenceClassification`` architecture is loaded with
its head: features are the classifier's input, logits its output. Otherwise ``AutoModel``:
features pool ``last_hidden_state`` (mask-aware mean for text, CLS token for vision
transformers, global average for convolutional maps) or take ``pooler_output``.
"""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Iterator
from typing import Any

import torch

from ._base import Checkpoint, CheckpointError, ModelOutput, Preprocessing
from ._hub import pinned_fingerprint, resolve_model_folder
from ._prepare import ImagePreparer, TextPreparer
from ._source import ParsedSpec, check_options, opt_bool, opt_choice, opt_int, register_source
from ._torch import TorchCheckpoint, last_linear, pool_output, require, state_dict_fingerprint

__all__ = ["HFCheckpoint", "build_hf", "quiet_transformers"]

OPTIONS = {
    "revision": "hub revision: branch, tag or commit (same as hf:ORG/NAME@REVISION; default: main)",
    "modality": "'auto' (default: image when the config has num_channels), 'image' or 'text'",
    "head": "1 (default) to load a classification head when the config names one, 0 to ignore it",
    "pool": "'mean' (text default), 'cls' (vision-transformer default) or 'pooler' (pooler_output)",
    "max_length": "token limit for text (default: the model's, at most 512)",
    "normalize": "1 to L2-normalise the features (default 0)",
}


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports and progress bars inside the block, then restore them."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _load_error(name: str, exc: BaseException, spec: str) -> CheckpointError:
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in str(exc):
        return CheckpointError(
            f"{name!r} (from {spec!r}): its pickled weights hold more than tensors and were refused "
            "(torch.load weights_only=True); ckptrank never unpickles code from a checkpoint: use a "
            "safetensors copy of the model"
        )
    return CheckpointError(
        f"cannot load {name!r} (from {spec!r}): {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    )


def _image_preprocessing(path: str, config: Any) -> Preprocessing:
    from transformers import AutoImageProcessor

    default_size = int(getattr(config, "image_size", 224) or 224)
    try:
        proc = AutoImageProcessor.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError):
        return Preprocessing(
            modality="image", image_size=default_size, resize_size=default_size, extra={"processor": None}
        )
    size = getattr(proc, "size", None) or {}
    crop = getattr(proc, "crop_size", None) or {}
    mode = "shorter"
    if "shortest_edge" in size:
        resize = int(size["shortest_edge"])
    elif "height" in size:
        resize, mode = int(size["height"]), "square"
    else:
        resize = default_size
    image_size = resize
    crop_pct = getattr(proc, "crop_pct", None)
    if getattr(proc, "do_center_crop", False) and "height" in crop:
        image_size = int(crop["height"])
    elif crop_pct and mode == "shorter" and resize < 384:  # ConvNeXt-style processors
        image_size, resize = resize, int(resize / crop_pct)
    if not getattr(proc, "do_resize", True):
        resize = image_size = default_size
    mean = tuple(float(v) for v in (getattr(proc, "image_mean", None) or (0.0, 0.0, 0.0)))
    std = tuple(float(v) for v in (getattr(proc, "image_std", None) or (1.0, 1.0, 1.0)))
    if not getattr(proc, "do_normalize", True):
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    interpolation = "bilinear"
    resample = getattr(proc, "resample", None)
    if resample is not None:
        from PIL import Image

        interpolation = Image.Resampling(int(resample)).name.lower()
    return Preprocessing(
        modality="image",
        image_size=image_size,
        resize_size=resize,
        mean=mean,
        std=std,
        interpolation=interpolation,
        extra={"resize_mode": mode, "processor": type(proc).__name__},
    )


class HFCheckpoint(TorchCheckpoint):
    """A transformers model, with or without a classification head."""

    def __init__(self, module: Any, *, head_name: str | None, normalize: bool = False, **kwargs: Any) -> None:
        super().__init__(module, **kwargs)
        self._head_name = head_name
        self._normalize = normalize

    def _run(self, batch: Any) -> Any:
        if isinstance(batch, dict):
            return self._module(**batch)
        return self._module(pixel_values=batch)

    def _penultimate(self, batch: Any) -> ModelOutput:
        out = self._features_and_logits(batch)
        if self._normalize:
            out.features = torch.nn.functional.normalize(out.features, p=2, dim=1)
        return out

    def _features_and_logits(self, batch: Any) -> ModelOutput:
        if self._head_name is not None:
            linear = self._module.get_submodule(self._head_name)
            features, out = self._linear_input(linear, batch)
            return ModelOutput(features=features, logits=out.logits)
        out = self._run(batch)
        if self._pool == "pooler":
            pooled = getattr(out, "pooler_output", None)
            if pooled is None:
                raise CheckpointError(
                    f"{self.spec!r}: the model returns no pooler_output; use pool=mean or pool=cls"
                )
            return ModelOutput(features=pooled.flatten(1))
        mask = batch.get("attention_mask") if isinstance(batch, dict) else None
        return ModelOutput(features=pool_output(out.last_hidden_state, self._pool, mask))


def build_hf(parsed: ParsedSpec, trust: bool) -> Checkpoint:
    """Load ``hf:ORG/NAME`` or ``hf:/folder`` (``trust`` is unused: remote code is never run)."""
    check_options(parsed, OPTIONS)
    transformers = require("transformers", "transformers", "hf:")
    revision = parsed.revision or parsed.options.get("revision")
    folder = resolve_model_folder(
        parsed.name, revision, parsed.spec, kind="transformers", label=f"hf:{parsed.name}"
    )
    path = folder.path
    use_head = opt_bool(parsed, "head", True)
    with quiet_transformers():
        try:
            config = transformers.AutoConfig.from_pretrained(
                path, local_files_only=True, trust_remote_code=False
            )
        except (OSError, ValueError) as exc:
            raise _load_error(parsed.name, exc, parsed.spec) from None
        modality = opt_choice(parsed, "modality", ("auto", "image", "text"), "auto")
        if modality == "auto":
            is_image = (
                getattr(config, "num_channels", None) is not None
                and getattr(config, "vocab_size", None) is None
            )
            modality = "image" if is_image else "text"
        suffix = "ForImageClassification" if modality == "image" else "ForSequenceClassification"
        archs = list(getattr(config, "architectures", None) or [])
        with_head = use_head and any(a.endswith(suffix) for a in archs)
        auto_cls = getattr(transformers, f"AutoModelFor{suffix[3:]}") if with_head else transformers.AutoModel
        pool = opt_choice(
            parsed,
            "pool",
            ("mean", "cls", "pooler"),
            "cls" if modality == "image" and not with_head else "mean",
        )
        try:
            model, info = auto_cls.from_pretrained(
                path,
                local_files_only=True,
                trust_remote_code=False,
                output_loading_info=True,
                dtype=torch.float32,
            )
        except (OSError, ValueError, pickle.UnpicklingError, EOFError) as exc:
            raise _load_error(parsed.name, exc, parsed.spec) from None
        except RuntimeError as exc:
            raise CheckpointError(
                f"weights of {parsed.name!r} do not fit its config: {' '.join(str(exc).split())[:300]}"
            ) from None
        missing = sorted(info.get("missing_keys") or [])
        tolerated = [k for k in missing if k.startswith("pooler.") and pool != "pooler"]
        bad = [k for k in missing if k not in tolerated]
        if bad:
            raise CheckpointError(
                f"weights of {parsed.name!r} do not fit {type(model).__name__}: {len(bad)} missing keys "
                f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); they would be random"
            )
        if modality == "image":
            preprocessing = _image_preprocessing(path, config)
            preparer: Any = ImagePreparer(preprocessing)
        else:
            try:
                tokenizer = transformers.AutoTokenizer.from_pretrained(
                    path, local_files_only=True, trust_remote_code=False
                )
            except (OSError, ValueError) as exc:
                raise _load_error(parsed.name, exc, parsed.spec) from None
            limit = min(
                int(tokenizer.model_max_length or 512), int(getattr(config, "max_position_embeddings", 512))
            )
            max_length = opt_int(parsed, "max_length", min(limit, 512))
            if not 1 <= max_length <= limit:
                raise CheckpointError(
                    f"{parsed.spec!r}: max_length={max_length} is outside 1..{limit}, the token limit of "
                    "this model; choose a value in that range"
                )
            preprocessing = Preprocessing(
                modality="text",
                max_length=max_length,
                extra={"tokenizer": type(tokenizer).__name__, "name_or_path": str(parsed.name)},
            )
            preparer = TextPreparer(tokenizer, int(max_length), model_limit=limit)  # type: ignore[arg-type]
    head_name = None
    num_features = getattr(config, "hidden_size", None)
    if with_head:
        found = last_linear(model)
        if found is None:
            raise CheckpointError(f"{parsed.spec!r}: no nn.Linear classifier found in {type(model).__name__}")
        head_name, num_features = found[0], found[1].in_features
    elif isinstance(num_features, list):  # e.g. ResNet configs list per-stage widths
        num_features = None
    skip = set(tolerated)
    card = {
        "source": "huggingface",
        "architecture": archs[0] if archs else type(model).__name__,
        "weights": str(parsed.name) if folder.commit is None else f"{parsed.name}@{folder.commit}",
        "revision": folder.commit,
        "source_dataset": None,
        "num_source_classes": int(config.num_labels) if with_head else 0,
    }
    return HFCheckpoint(
        model,
        head_name=head_name,
        normalize=opt_bool(parsed, "normalize", False),
        spec=parsed.spec,
        name=f"hf:{parsed.name}",
        modality=modality,  # type: ignore[arg-type]
        preprocessing=preprocessing,
        preparer=preparer,
        card=card,
        num_features=int(num_features) if num_features else None,
        has_head=with_head,
        pool=pool,
        fingerprint=lambda: pinned_fingerprint(
            state_dict_fingerprint({k: v for k, v in model.state_dict().items() if k not in skip}), folder
        ),
    )


@register_source(
    "hf",
    syntax="hf:google/vit-base-patch16-224[@REVISION] or hf:/path/to/saved/model",
    description="Hugging Face transformers vision or text model from the hub (downloaded into the HF cache) "
    "or a local folder",
    options=OPTIONS,
    requires="transformers",
)
def _load(parsed: ParsedSpec, trust: bool) -> Checkpoint:
    return build_hf(parsed, trust)
