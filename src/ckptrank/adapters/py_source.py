"""``py:MODULE:FUNCTION`` and ``py:/path/file.py:FUNCTION`` checkpoints: user constructors.

The function is called without arguments and must return an ``nn.Module``. Importing and
calling it runs the user's own code: naming it in a spec is that choice, so no
``trust_checkpoint`` is needed (a ``?weights=`` file is still read safely). Preprocessing
comes from the spec's ``?size=``/``resize=``/``mean=``/``std=``, then the module's
``preprocessing`` attribute (a :class:`Preprocessing` or a dict of its fields), else 224 px with
ImageNet mean/std, which the card's ``notes`` then state (the ranking shows it). Text modules
(``?modality=text`` or a text ``preprocessing``) must provide ``prepare(texts) -> batch`` (a
tensor or a dict of tensors fed as keyword arguments). Features are the input of the last
``nn.Linear`` when that Linear produces the module's output (then logits = output), else the
pooled output itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from torch import nn

from ._base import Checkpoint, CheckpointError, Preprocessing
from ._prepare import ImagePreparer
from ._source import (
    ParsedSpec,
    check_options,
    closest_hint,
    opt_bool,
    opt_choice,
    opt_float_tuple,
    opt_int,
    register_source,
    resolve_path,
)
from ._torch import GenericModuleCheckpoint, extract_state_dict, load_into, load_weights_file

__all__ = ["build_module_checkpoint", "build_py"]

OPTIONS = {
    "weights": "local weights file loaded into the returned module (safetensors or tensors-only torch file)",
    "modality": "'image' (default) or 'text'",
    "head": "1 (default): treat a last Linear that produces the output as the classifier; 0: the output is "
    "the features",
    "pool": "pooling of 3-D outputs: 'mean' (default) or 'cls'",
    "size": "image input size in pixels (overrides the module's preprocessing; default 224)",
    "resize": "resize before the centre crop, in pixels (default: size * 256 / 224)",
    "mean": "per-channel normalisation mean, e.g. 0.5,0.5,0.5 (default ImageNet's)",
    "std": "per-channel normalisation std, e.g. 0.5,0.5,0.5 (default ImageNet's)",
}

#: Said on the card when a ``py:`` image module declares no preprocessing.
DEFAULT_PREPROCESSING_NOTE = (
    "no preprocessing declared: images are resized to 224 px and normalised with ImageNet's mean/std; if the "
    "model was trained otherwise, set ?size=...&mean=...&std=... or a module-level `preprocessing`"
)

_DEFAULT_IMAGE = Preprocessing(modality="image", image_size=224, resize_size=256)


def _import_target(target: str, spec: str) -> Any:
    module_part, sep, func_name = target.rpartition(":")
    if not sep or not module_part or not func_name:
        raise CheckpointError(f"{spec!r}: write py:package.module:function or py:/path/to/file.py:function")
    if module_part.endswith(".py") or "/" in module_part:
        path = resolve_path(module_part, "Python file", spec=spec)
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
        mod_name = f"ckptrank_user_{path.stem}_{digest}"
        module = sys.modules.get(mod_name)
        if module is None:
            file_spec = importlib.util.spec_from_file_location(mod_name, path)
            if file_spec is None or file_spec.loader is None:
                raise CheckpointError(f"cannot import {str(path)!r} (from {spec!r})")
            module = importlib.util.module_from_spec(file_spec)
            sys.modules[mod_name] = module
            try:
                file_spec.loader.exec_module(module)
            except Exception as exc:
                del sys.modules[mod_name]
                raise CheckpointError(
                    f"importing {str(path)!r} failed: {type(exc).__name__}: {exc}"
                ) from None
    else:
        try:
            module = importlib.import_module(module_part)
        except ImportError as exc:
            raise CheckpointError(f"cannot import module {module_part!r} (from {spec!r}): {exc}") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        raise CheckpointError(
            f"{module_part!r} has no function {func_name!r}.{closest_hint(func_name, names)} "
            f"Callables: {', '.join(names[:20])}"
        )
    return func


def _preprocessing(module: nn.Module, modality: str | None, spec: str) -> Preprocessing:
    raw = getattr(module, "preprocessing", None)
    if isinstance(raw, Preprocessing):
        prep = raw
    elif isinstance(raw, dict):
        fields = {f.name for f in dataclasses.fields(Preprocessing)}
        unknown = sorted(set(raw) - fields)
        if unknown:
            raise CheckpointError(
                f"{spec!r}: unknown preprocessing fields {unknown}; valid: {sorted(fields)}"
            )
        values = dict(raw)
        values.setdefault("modality", modality or "image")
        for key in ("mean", "std"):
            if key in values:
                values[key] = tuple(values[key])
        prep = Preprocessing(**values)
    elif raw is None:
        prep = _DEFAULT_IMAGE if modality in (None, "image") else Preprocessing(modality="text")
    else:
        raise CheckpointError(
            f"{spec!r}: the module's preprocessing attribute must be a Preprocessing or a dict"
        )
    if modality is not None and prep.modality != modality:
        prep = dataclasses.replace(prep, modality=modality)  # type: ignore[arg-type]
    if prep.modality == "image" and not prep.image_size:
        prep = dataclasses.replace(prep, image_size=224, resize_size=prep.resize_size or 256)
    return prep


def _override(prep: Preprocessing, parsed: ParsedSpec) -> Preprocessing:
    """Apply ``?size=``, ``?resize=``, ``?mean=``, ``?std=`` to an image preprocessing."""
    if prep.modality != "image":
        given = [k for k in ("size", "resize", "mean", "std") if k in parsed.options]
        if given:
            raise CheckpointError(f"{parsed.spec!r}: {', '.join(given)} apply to image modules only")
        return prep
    size = opt_int(parsed, "size", None, minimum=8)
    changes: dict[str, Any] = {}
    if size is not None:
        changes["image_size"] = size
        changes["resize_size"] = round(size * 256 / 224)
    resize = opt_int(parsed, "resize", None, minimum=8)
    if resize is not None:
        changes["resize_size"] = resize
    for key in ("mean", "std"):
        if key in parsed.options:
            values = opt_float_tuple(parsed, key, ())
            if len(values) not in (1, 3) or (key == "std" and min(values) <= 0):
                raise CheckpointError(
                    f"{parsed.spec!r}: {key} needs 1 or 3 numbers{' above 0' if key == 'std' else ''}, "
                    f"got {parsed.options[key]!r}"
                )
            changes[key] = values * 3 if len(values) == 1 else values
    return dataclasses.replace(prep, **changes) if changes else prep


def build_module_checkpoint(
    module: nn.Module,
    *,
    parsed: ParsedSpec,
    name: str,
    card: dict[str, Any],
    modality: str | None = None,
) -> Checkpoint:
    """Wrap any ``nn.Module`` (``py:`` constructors, trusted pickles) as a checkpoint."""
    module.eval()
    preprocessing = _override(_preprocessing(module, modality, parsed.spec), parsed)
    declared = getattr(module, "preprocessing", None) is not None
    chosen = any(k in parsed.options for k in ("size", "resize", "mean", "std"))
    if preprocessing.modality == "image" and not declared and not chosen:
        card = {**card, "notes": [*card.get("notes", []), DEFAULT_PREPROCESSING_NOTE]}
    if preprocessing.modality == "text":
        prepare = getattr(module, "prepare", None)
        if not callable(prepare):
            raise CheckpointError(f"{parsed.spec!r}: a text module must define prepare(texts) -> batch")
        preparer: Any = prepare
    else:
        preparer = ImagePreparer(preprocessing)
    pool = opt_choice(parsed, "pool", ("mean", "cls"), "mean")
    return GenericModuleCheckpoint(
        module,
        use_head=opt_bool(parsed, "head", True),
        spec=parsed.spec,
        name=name,
        modality=preprocessing.modality,
        preprocessing=preprocessing,
        preparer=preparer,
        card=card,
        pool=pool,
    )


def build_py(parsed: ParsedSpec, trust: bool) -> Checkpoint:
    """Call the user's constructor and wrap the module it returns."""
    check_options(parsed, OPTIONS)
    modality = parsed.options.get("modality")
    if modality is not None:
        modality = opt_choice(parsed, "modality", ("image", "text"), "image")
    func = _import_target(parsed.name, parsed.spec)
    try:
        module = func()
    except Exception as exc:
        raise CheckpointError(f"py:{parsed.name} raised {type(exc).__name__}: {exc}") from None
    if not isinstance(module, nn.Module):
        raise CheckpointError(f"py:{parsed.name} returned a {type(module).__name__}, not a torch.nn.Module")
    weights = "as constructed"
    if "weights" in parsed.options:
        path: Path = resolve_path(parsed.options["weights"], "weights file", spec=parsed.spec)
        sd = extract_state_dict(load_weights_file(path, trust=trust), path)
        load_into(module, sd, what=str(path), arch=f"py:{parsed.name}")
        weights = str(path)
    card = {"source": "py", "architecture": type(module).__name__, "weights": weights, "source_dataset": None}
    card.update(getattr(module, "card", None) or {})
    return build_module_checkpoint(
        module, parsed=parsed, name=f"py:{parsed.name}", card=card, modality=modality
    )


@register_source(
    "py",
    syntax="py:mypackage.models:build or py:/path/to/models.py:build",
    description="a Python function (yours) that returns a torch.nn.Module; runs your code",
    options=OPTIONS,
)
def _load(parsed: ParsedSpec, trust: bool) -> Checkpoint:
    return build_py(parsed, trust)
