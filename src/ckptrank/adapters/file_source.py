"""``file:PATH`` checkpoints: local weight files, TorchScript archives and ONNX graphs.

- ``.safetensors``, and ``.pt``/``.pth``/``.bin``/``.ckpt`` state dicts: need an architecture,
  ``?arch=timm:NAME`` or ``?arch=torchvision:NAME`` (its options pass through, e.g.
  ``&size=64``), or a sidecar JSON card beside the file (``PATH.json`` or ``PATH``'s stem
  ``.json``) with ``{"arch": "timm:resnet18", "card": {...}}``. Torch files are read with
  ``torch.load(weights_only=True)``; a pickle that needs other classes is refused with
  :class:`UntrustedCheckpointError` unless ``trust_checkpoint=True`` (then a pickled
  ``nn.Module`` is used as it is).
- TorchScript (``.ts``, or a ``.pt`` that is a TorchScript archive): compiled code, so it needs
  ``trust_checkpoint=True``. Its output is read as the features (pooled when not 2-D); a
  tuple/list ``(features, logits)`` or a dict with ``"features"``/``"logits"`` gives logits too.
- ONNX (``.onnx``): run with onnxruntime. Features are the output named by ``?output=NAME``,
  else the first output with a 2-D shape, else the first output pooled; logits the output
  named by ``?logits=NAME`` or an output called ``logits``.

Image preprocessing for TorchScript and ONNX: ``?size=``/``mean=``/``std=``, the sidecar's
``"preprocessing"`` dict, the ONNX input's static size, else 224 px with ImageNet mean/std.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._base import Checkpoint, CheckpointError, ModelOutput, Preprocessing, UntrustedCheckpointError
from ._prepare import ImagePreparer
from ._source import (
    ParsedSpec,
    check_options,
    closest_hint,
    opt_choice,
    opt_float_tuple,
    opt_int,
    register_source,
    resolve_path,
)
from ._torch import (
    TorchCheckpoint,
    extract_state_dict,
    file_fingerprint,
    is_torchscript_archive,
    load_weights_file,
    one_line,
    pool_output,
    require,
    unknown_layer_error,
)

__all__ = ["OnnxCheckpoint", "TorchScriptCheckpoint", "build_file"]

OPTIONS = {
    "arch": "architecture of a state-dict file: timm:NAME or torchvision:NAME",
    "output": "ONNX output (or TorchScript dict key) to read features from",
    "logits": "ONNX output (or TorchScript dict key) holding source-class logits",
    "size": "input image size (TorchScript/ONNX; passed on to the arch for state dicts)",
    "mean": "per-channel mean, e.g. 0.5,0.5,0.5 (TorchScript/ONNX)",
    "std": "per-channel std (TorchScript/ONNX)",
    "pool": "pooling of 3-D outputs: 'mean' (default) or 'cls'",
    "init": "passed on to the arch",
    "seed": "passed on to the arch",
    "tag": "passed on to a torchvision arch",
}

_STATE_DICT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
_SUFFIXES = (*_STATE_DICT_SUFFIXES, ".ts", ".onnx")


def _sidecar(path: Path) -> dict[str, Any]:
    for candidate in (path.with_name(path.name + ".json"), path.with_suffix(".json")):
        if candidate.is_file() and candidate != path:
            try:
                data = json.loads(candidate.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise CheckpointError(f"cannot read the sidecar card {str(candidate)!r}: {exc}") from None
            if not isinstance(data, dict):
                raise CheckpointError(f"the sidecar card {str(candidate)!r} must hold a JSON object")
            return data
    return {}


def _image_preprocessing(
    parsed: ParsedSpec, sidecar: dict[str, Any], static_size: int | None
) -> Preprocessing:
    """Options first, then the sidecar's ``preprocessing``, the model's static input size, 224 px."""
    base = dict(sidecar.get("preprocessing") or {})
    size = int(opt_int(parsed, "size", None, minimum=8) or base.get("image_size") or static_size or 224)
    resize = (
        round(size * 256 / 224)
        if "size" in parsed.options
        else base.get("resize_size", round(size * 256 / 224))
    )
    return Preprocessing(
        modality="image",
        image_size=size,
        resize_size=int(resize),
        mean=opt_float_tuple(parsed, "mean", tuple(base.get("mean", (0.485, 0.456, 0.406)))),
        std=opt_float_tuple(parsed, "std", tuple(base.get("std", (0.229, 0.224, 0.225)))),
        interpolation=str(base.get("interpolation", "bilinear")),
        extra={k: v for k, v in base.items() if k == "resize_mode"},
    )


class TorchScriptCheckpoint(TorchCheckpoint):
    """A TorchScript module; forward hooks are unavailable, so no intermediate layers."""

    def __init__(self, module: Any, *, feature_key: str, logits_key: str, **kwargs: Any) -> None:
        super().__init__(module, **kwargs)
        self._feature_key = feature_key
        self._logits_key = logits_key

    def layer_names(self) -> list[str]:
        return []

    def select_layer(self, layer: str) -> None:
        raise CheckpointError(
            f"{self.spec!r}: TorchScript modules do not support forward hooks, so no layer can be "
            "picked with '@'"
        )

    def _split(self, out: Any) -> tuple[Any, Any]:
        if isinstance(out, dict):
            if self._feature_key not in out:
                raise CheckpointError(
                    f"{self.spec!r}: the output dict has no key {self._feature_key!r}: {list(out)}"
                )
            return out[self._feature_key], out.get(self._logits_key)
        if isinstance(out, (tuple, list)):
            if len(out) != 2:
                raise CheckpointError(
                    f"{self.spec!r}: a tuple output must be (features, logits), got {len(out)} items"
                )
            return out[0], out[1]
        return out, None

    def _penultimate(self, batch: Any) -> ModelOutput:
        features, logits = self._split(self._module(batch))
        return ModelOutput(features=pool_output(features, self._pool), logits=logits)


def _ancestors(graph: Any, output: str) -> set[str]:
    """Names of every value ``output`` is computed from in an ONNX graph (initializers included).

    Walks back from ``output`` through the node that produces each value; a node with subgraphs
    (``If``, ``Loop``, ``Scan``) also depends on every outer value its subgraphs name.
    """
    producer = {out: node for node in graph.node for out in node.output}
    seen: set[str] = set()
    stack = [output]
    while stack:
        name = stack.pop()
        if name in seen or not name:
            continue
        seen.add(name)
        node = producer.get(name)
        if node is not None:
            stack.extend(node.input)
            stack.extend(_subgraph_names(node))
    return seen


def _subgraph_names(node: Any) -> list[str]:
    """Every value name used as a node input inside the subgraphs of ``node`` (recursively)."""
    names: list[str] = []
    for attr in node.attribute:
        for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
            for inner in sub.node:
                names.extend(inner.input)
                names.extend(_subgraph_names(inner))
    return names


class OnnxCheckpoint(Checkpoint):
    """An ONNX image model run by onnxruntime."""

    def __init__(
        self,
        session: Any,
        path: Path,
        *,
        spec: str,
        preprocessing: Preprocessing,
        feature_output: str,
        logits_output: str | None,
        card: dict[str, Any],
        pool: str,
        num_features: int | None,
    ) -> None:
        self.spec = spec
        self.name = f"file:{path.name}"
        self.modality = "image"
        self.layer = None
        self.card = card
        self.num_features = num_features
        self._session = session
        self._path = path
        self._preprocessing = preprocessing
        self._preparer = ImagePreparer(preprocessing)
        self._feature_output = feature_output
        self._logits_output = logits_output
        self._pool = pool
        self._input = session.get_inputs()[0]
        batch_dim = self._input.shape[0] if self._input.shape else None
        self._fixed_batch = batch_dim if isinstance(batch_dim, int) else None
        self._fingerprint: str | None = None
        self.card.setdefault("num_parameters_scope", "whole checkpoint")

    @property
    def preprocessing(self) -> Preprocessing:
        return self._preprocessing

    def prepare(self, items: Sequence[Any]) -> torch.Tensor:
        return self._preparer(items)

    def preparer(self) -> ImagePreparer:
        return self._preparer

    @property
    def has_head(self) -> bool:
        return self._logits_output is not None and self.layer is None

    def layer_names(self) -> list[str]:
        return [o.name for o in self._session.get_outputs()]

    def select_layer(self, layer: str) -> None:
        valid = self.layer_names()
        if layer not in valid:
            raise unknown_layer_error(layer, valid, self.spec)
        self.layer = layer
        self._feature_output = layer
        self.card["num_parameters_scope"] = (
            f"up to output {layer} (the initializers that output is computed from)"
        )

    def weights_fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = file_fingerprint(self._path)
        return self._fingerprint

    def num_parameters(self) -> int:
        """Elements of the graph's initializers (the weights), or, after :meth:`select_layer`, of those
        the chosen output depends on (the card's ``num_parameters_scope`` says which).

        Raises
        ------
        MissingDependencyError
            The ``onnx`` package, needed to read the graph, is not installed.
        """
        onnx = require("onnx", "onnx", "counting the parameters of an ONNX file:")
        graph = onnx.load(str(self._path), load_external_data=False).graph
        sizes = {t.name: int(np.prod(t.dims)) for t in graph.initializer}
        if self.layer is None:
            return int(sum(sizes.values()))
        return int(sum(sizes[name] for name in _ancestors(graph, self.layer) if name in sizes))

    def forward(self, batch: Any) -> ModelOutput:
        x = batch.detach().to("cpu", torch.float32).numpy()
        names = [self._feature_output] + ([self._logits_output] if self.has_head else [])
        chunks = (
            [x]
            if self._fixed_batch is None
            else [x[i : i + self._fixed_batch] for i in range(0, len(x), self._fixed_batch)]
        )
        results = [self._session.run(names, {self._input.name: chunk}) for chunk in chunks]
        outs = [torch.from_numpy(np.concatenate([r[j] for r in results])) for j in range(len(names))]
        features = pool_output(outs[0], self._pool)
        if self.num_features is None:
            self.num_features = int(features.shape[1])
        return ModelOutput(features=features, logits=outs[1] if len(outs) > 1 else None)


def _build_onnx(parsed: ParsedSpec, path: Path, sidecar: dict[str, Any]) -> Checkpoint:
    ort = require("onnxruntime", "onnxruntime", "ONNX file:")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise CheckpointError(
            f"cannot load ONNX file {str(path)!r}: {one_line(exc)} (corrupt or truncated?)"
        ) from None
    inputs = session.get_inputs()
    if len(inputs) != 1 or len(inputs[0].shape or []) != 4:
        desc = ", ".join(f"{i.name}{i.shape}" for i in inputs)
        raise CheckpointError(
            f"{str(path)!r}: only ONNX image models with one NCHW input are supported, got {desc}"
        )
    outputs = {o.name: o.shape for o in session.get_outputs()}
    valid = list(outputs)
    feature = parsed.options.get("output")
    if feature is not None and feature not in outputs:
        raise CheckpointError(
            f"ONNX output {feature!r} not in {str(path)!r}.{closest_hint(feature, valid)} "
            f"Outputs: {', '.join(valid)}"
        )
    logits = parsed.options.get("logits")
    if logits is not None and logits not in outputs:
        raise CheckpointError(
            f"ONNX output {logits!r} not in {str(path)!r}.{closest_hint(logits, valid)} "
            f"Outputs: {', '.join(valid)}"
        )
    if logits is None:
        logits = next((n for n in valid if n.lower() == "logits" and n != feature), None)
    if feature is None:
        candidates = [n for n in valid if n != logits]
        feature = next(
            (n for n in candidates if len(outputs[n] or []) == 2), candidates[0] if candidates else valid[0]
        )
    if logits == feature:
        logits = None
    shape = inputs[0].shape
    static = shape[2] if isinstance(shape[2], int) and shape[2] == shape[3] else None
    preprocessing = _image_preprocessing(parsed, sidecar, static)
    fshape = outputs[feature] or []
    num_features = fshape[1] if len(fshape) == 2 and isinstance(fshape[1], int) else None
    lshape = outputs[logits] if logits else None
    n_classes = lshape[1] if lshape and len(lshape) == 2 and isinstance(lshape[1], int) else 0
    card = {
        "source": "file (ONNX)",
        "architecture": "onnx",
        "weights": str(path),
        "source_dataset": None,
        "num_source_classes": n_classes,
    }
    card.update(sidecar.get("card") or {})
    return OnnxCheckpoint(
        session,
        path,
        spec=parsed.spec,
        preprocessing=preprocessing,
        feature_output=feature,
        logits_output=logits,
        card=card,
        pool=opt_choice(parsed, "pool", ("mean", "cls"), "mean"),
        num_features=num_features,
    )


def _build_torchscript(parsed: ParsedSpec, path: Path, sidecar: dict[str, Any], trust: bool) -> Checkpoint:
    if not trust:
        raise UntrustedCheckpointError(
            f"refusing to load TorchScript archive {str(path)!r}: it holds compiled code that runs when "
            "loaded and "
            "called; pass trust_checkpoint=True only if you trust its author"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated upstream; still read
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise CheckpointError(f"cannot load TorchScript file {str(path)!r}: {one_line(exc)}") from None
    preprocessing = _image_preprocessing(parsed, sidecar, None)
    card = {
        "source": "file (TorchScript)",
        "architecture": getattr(module, "original_name", "ScriptModule"),
        "weights": str(path),
        "source_dataset": None,
    }
    card.update(sidecar.get("card") or {})
    feature_key = parsed.options.get("output", "features")
    logits_key = parsed.options.get("logits", "logits")
    ckpt = TorchScriptCheckpoint(
        module,
        feature_key=feature_key,
        logits_key=logits_key,
        spec=parsed.spec,
        name=f"file:{path.name}",
        modality="image",
        preprocessing=preprocessing,
        preparer=ImagePreparer(preprocessing),
        card=card,
        num_features=None,
        has_head=False,
        pool=opt_choice(parsed, "pool", ("mean", "cls"), "mean"),
        fingerprint=lambda: file_fingerprint(path),
    )
    # One dry run tells whether the module returns logits, and the feature width.
    dummy = ckpt.prepare([np.zeros((preprocessing.image_size or 224,) * 2 + (3,), dtype=np.uint8)])
    with torch.inference_mode():
        features, logits = ckpt._split(module(dummy))
    ckpt._has_head = isinstance(logits, torch.Tensor) and logits.ndim == 2
    ckpt.num_features = int(pool_output(features, ckpt._pool).shape[1])
    ckpt.card.setdefault("num_source_classes", int(logits.shape[1]) if ckpt._has_head else 0)
    return ckpt


def build_file(parsed: ParsedSpec, trust: bool) -> Checkpoint:
    """Load ``file:PATH`` by its suffix."""
    check_options(parsed, OPTIONS)
    path = resolve_path(parsed.name, "checkpoint file", spec=parsed.spec)
    if path.is_dir():
        raise CheckpointError(f"{str(path)!r} is a folder; use hf: or st: for model folders")
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise CheckpointError(
            f"unsupported checkpoint file type {suffix or '(none)'!r} for {str(path)!r}; "
            f"supported: {', '.join(_SUFFIXES)}"
        )
    sidecar = _sidecar(path)
    if suffix == ".onnx":
        return _build_onnx(parsed, path, sidecar)
    if suffix == ".ts" or (suffix != ".safetensors" and is_torchscript_archive(path)):
        return _build_torchscript(parsed, path, sidecar, trust)
    obj = load_weights_file(path, trust=trust)
    if isinstance(obj, torch.nn.Module):  # only reachable with trust_checkpoint=True
        from .py_source import build_module_checkpoint

        card = {
            "source": "file (pickled module)",
            "architecture": type(obj).__name__,
            "weights": str(path),
            "source_dataset": None,
        }
        card.update(sidecar.get("card") or {})
        return build_module_checkpoint(obj, parsed=parsed, name=f"file:{path.name}", card=card)
    state_dict = extract_state_dict(obj, path)
    arch = parsed.options.get("arch") or sidecar.get("arch")
    if not arch:
        raise CheckpointError(
            f"{str(path)!r} holds a state dict ({len(state_dict)} tensors) but no architecture: add "
            f'?arch=timm:NAME or ?arch=torchvision:NAME, or a sidecar {path.name}.json with {{"arch": ...}}'
        )
    prefix, sep, arch_name = str(arch).partition(":")
    forwarded = {
        k: v for k, v in parsed.options.items() if k not in ("arch", "output", "logits", "mean", "std")
    }
    arch_parsed = ParsedSpec(parsed.spec, prefix, arch_name, None, forwarded)
    if prefix == "timm" and sep:
        from .timm_source import build_timm

        ckpt = build_timm(arch_parsed, trust, state_dict=state_dict, weights_label=str(path))
    elif prefix == "torchvision" and sep:
        from .torchvision_source import build_torchvision

        ckpt = build_torchvision(arch_parsed, trust, state_dict=state_dict, weights_label=str(path))
    else:
        raise CheckpointError(f"arch {arch!r} for {str(path)!r} must read timm:NAME or torchvision:NAME")
    ckpt.name = f"file:{path.name}"
    ckpt.card.update(sidecar.get("card") or {})
    ckpt.card.setdefault("weights", str(path))
    return ckpt


@register_source(
    "file",
    syntax="file:/path/model.safetensors?arch=timm:resnet18 | file:/path/model.onnx | file:/path/model.ts",
    description="local file: safetensors/torch state dict + architecture, TorchScript (trusted), or ONNX",
    options=OPTIONS,
    requires="onnxruntime (for .onnx)",
)
def _load(parsed: ParsedSpec, trust: bool) -> Checkpoint:
    return build_file(parsed, trust)
