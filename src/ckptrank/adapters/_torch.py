"""Machinery shared by the PyTorch-backed sources.

- :func:`load_weights_file`: read a state dict without ever unpickling arbitrary objects
  (safetensors, or ``torch.load(weights_only=True)``); a full pickle load only with
  ``trust_checkpoint=True``.
- :func:`load_into`: strict loading with a one-line report of missing / unexpected /
  shape-mismatched keys.
- :func:`state_dict_fingerprint`: sha256 over names, dtypes, shapes and bytes.
- :class:`TorchCheckpoint`: a :class:`Checkpoint` around an ``nn.Module``, with
  intermediate-layer capture (forward hook, early stop) and penultimate capture (pre-hook on
  the classifier ``Linear``).
- :func:`parameters_used`: the parameters an ``@layer`` cut reads (a traced dry run), so that
  ``num_parameters`` of ``MODEL@layer`` counts only the part of the network that runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import pickle
import pickletools
import re
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from ._base import (
    Checkpoint,
    CheckpointError,
    MissingDependencyError,
    Modality,
    ModelOutput,
    Preprocessing,
    UntrustedCheckpointError,
)
from ._source import closest_hint

__all__ = [
    "GenericModuleCheckpoint",
    "LinearHeadCheckpoint",
    "TorchCheckpoint",
    "extract_state_dict",
    "file_fingerprint",
    "is_torchscript_archive",
    "last_linear",
    "load_into",
    "load_weights_file",
    "one_line",
    "parameters_used",
    "pool_output",
    "require",
    "seeded",
    "state_dict_fingerprint",
    "unknown_layer_error",
]

#: Keys under which training scripts commonly nest the model's state dict.
_NESTED_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network")


def require(module: str, pip_name: str, source: str) -> Any:
    """Import an optional dependency; a one-line MissingDependencyError names the pip package."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{source} checkpoints need the '{pip_name}' package ({exc.msg}): pip install {pip_name}"
        ) from None


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator inside the block without touching the caller's RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def is_torchscript_archive(path: Path) -> bool:
    """Whether ``path`` is a TorchScript zip archive (it holds compiled code)."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/constants.pkl") or "/code/__torch__/" in n for n in names)


def _pickle_globals(data: bytes) -> list[str]:
    """Classes/functions that the pickle streams in ``data`` reference, without unpickling anything.

    Walks the opcodes with :func:`pickletools.genops` (a parser that executes nothing), stream
    after stream (legacy torch files hold several), until the bytes stop parsing as a pickle.
    """
    found: list[str] = []
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        strings: list[str] = []
        try:
            for op, arg, _ in pickletools.genops(stream):
                if op.name == "GLOBAL":
                    found.append(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(".".join(strings[-2:]))
                elif isinstance(arg, str):
                    strings.append(arg)
        except Exception:  # raw tensor bytes after the pickles, or garbage
            break
    return found


def _referenced_global(message: str, path: Path) -> str | None:
    """The first class or function, other than torch's own, that a refused pickle references."""
    match = re.search(r"GLOBAL ([\w.]+)", message) or re.search(r"Unsupported class ([\w.]+)", message)
    if match:
        return match.group(1)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            refs = [g for n in zf.namelist() if n.endswith(".pkl") for g in _pickle_globals(zf.read(n))]
    else:
        refs = _pickle_globals(path.read_bytes())
    foreign = [r for r in refs if not r.startswith(("torch.", "collections.OrderedDict"))]
    return (foreign or refs or [None])[0]


def load_weights_file(path: Path, *, trust: bool) -> Any:
    """Read a weights file without executing code from it.

    ``.safetensors`` goes through safetensors; anything else through
    ``torch.load(weights_only=True)``, which only rebuilds tensors and plain containers.
    A pickle that needs other classes raises :class:`UntrustedCheckpointError` unless
    ``trust`` is set, in which case it is loaded in full (``weights_only=False``).

    Returns
    -------
    object
        The loaded object: usually a dict of tensors; with ``trust`` possibly an ``nn.Module``.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint file not found: {str(path)!r}")
    if path.is_dir():
        raise CheckpointError(f"expected a weights file, got the folder {str(path)!r}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own SafetensorError, or OSError
            raise CheckpointError(
                f"cannot read safetensors file {str(path)!r}: {one_line(exc)} (corrupt or truncated?)"
            ) from None
    if is_torchscript_archive(path):
        raise CheckpointError(
            f"{str(path)!r} is a TorchScript archive, not a state dict; load it with 'file:{path}' "
            "and trust_checkpoint=True"
        )
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        message = str(exc)
        referenced = _referenced_global(message, path)
        if referenced is None and not trust:
            # Not a reference to code: garbage bytes, or pickle opcodes torch's safe reader lacks.
            detail = re.search(r"Unsupported operand[^.\n]*", message)
            raise CheckpointError(
                f"cannot read {str(path)!r} as a tensors-only PyTorch checkpoint "
                f"({detail.group(0) if detail else one_line(message, 120)}): corrupt, or a pickle that "
                "only trust_checkpoint=True may load"
            ) from None
        if not trust:
            raise UntrustedCheckpointError(
                f"refusing to unpickle {str(path)!r}: it references {referenced}, and unpickling it could "
                "run code; pass trust_checkpoint=True only if you trust its author"
            ) from None
    except Exception as exc:  # RuntimeError (bad zip), EOFError (truncated), ...
        raise CheckpointError(
            f"cannot read {str(path)!r} as a PyTorch checkpoint: {one_line(exc)} (corrupt or truncated?)"
        ) from None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(
            f"cannot unpickle {str(path)!r}: {type(exc).__name__}: {one_line(exc)}"
        ) from None


def extract_state_dict(obj: Any, path: Path | str) -> dict[str, torch.Tensor]:
    """The tensor state dict inside a loaded object (a plain or nested dict, or an nn.Module).

    Nested dicts under ``state_dict``/``model``/... are unwrapped; a ``module.`` prefix on
    every key (DataParallel) is dropped.
    """
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    for _ in range(3):
        if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            nested = next(
                (obj[k] for k in _NESTED_KEYS if isinstance(obj.get(k), (Mapping, nn.Module))), None
            )
            if nested is None:
                break
            obj = nested.state_dict() if isinstance(nested, nn.Module) else nested
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{str(path)!r} holds a {type(obj).__name__}, not a state dict of tensors")
    sd = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not sd:
        keys = ", ".join(map(str, list(obj)[:5]))
        raise CheckpointError(f"{str(path)!r} holds no tensors (top-level keys: {keys})")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def _mismatch(model: nn.Module, sd: Mapping[str, torch.Tensor]) -> tuple[list[str], list[str], list[str]]:
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in expected]
    mismatched = [
        f"{k} (file {list(sd[k].shape)} vs model {list(expected[k].shape)})"
        for k in expected
        if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)
    ]
    return missing, unexpected, mismatched


def load_into(
    model: nn.Module,
    sd: Mapping[str, torch.Tensor],
    *,
    what: str,
    arch: str,
    filter_fn: Callable[[dict[str, torch.Tensor], nn.Module], dict[str, torch.Tensor]] | None = None,
) -> None:
    """Load ``sd`` into ``model`` strictly, or raise a one-line CheckpointError.

    ``filter_fn`` (e.g. timm's ``checkpoint_filter_fn``) is tried only when the keys do not
    match as they are. A missing ``num_batches_tracked`` buffer is tolerated.
    """
    missing, unexpected, mismatched = _mismatch(model, sd)
    if (missing or unexpected or mismatched) and filter_fn is not None:
        try:
            filtered = filter_fn(dict(sd), model)
        except Exception:
            filtered = None
        if filtered is not None and not any(_mismatch(model, filtered)):
            sd = filtered
            missing, unexpected, mismatched = [], [], []
    if missing or unexpected or mismatched:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("mismatched", mismatched)):
            if keys:
                more = f", ... ({len(keys) - 3} more)" if len(keys) > 3 else ""
                parts.append(f"{label}: {', '.join(keys[:3])}{more}")
        raise CheckpointError(
            f"weights in {what} do not fit architecture {arch}: {len(missing)} missing, {len(unexpected)} "
            f"unexpected, {len(mismatched)} shape-mismatched keys ({'; '.join(parts)})"
        )
    model.load_state_dict(dict(sd), strict=False)


def state_dict_fingerprint(sd: Mapping[str, Any]) -> str:
    """sha256 (hex) over the tensors of a state dict: sorted names, dtypes, shapes and raw bytes."""
    h = hashlib.sha256()
    for name in sorted(sd):
        t = sd[name]
        if not isinstance(t, torch.Tensor):
            continue
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}\0{str(t.dtype).removeprefix('torch.')}\0{tuple(t.shape)}\0".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def file_fingerprint(*paths: Path) -> str:
    """sha256 (hex) over the bytes of the files, in the given order."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def last_linear(module: nn.Module) -> tuple[str, nn.Linear] | None:
    """The last ``nn.Linear`` in registration order (the classifier of most image models)."""
    found = None
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Linear):
            found = (name, sub)
    return found


def _first_tensor(out: Any) -> torch.Tensor:
    """The main tensor of a module output (tensor, tuple/list, dict or Hugging Face ModelOutput)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping):
        for key in ("last_hidden_state", "sentence_embedding", "token_embeddings"):
            if isinstance(out.get(key), torch.Tensor):
                return out[key]
        for value in out.values():
            if isinstance(value, torch.Tensor):
                return value
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise CheckpointError(f"cannot find a tensor in a layer output of type {type(out).__name__}")


def pool_output(out: Any, pool: str, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Pool a layer output to ``(batch, features)``.

    4-D (and higher) outputs are averaged over every axis after the channel axis (global
    average pooling of ``(N, C, H, W)``); 3-D outputs are read as ``(batch, tokens, dim)``
    and mean-pooled (over the unmasked tokens when ``attention_mask`` fits) or reduced to
    the first (CLS) token with ``pool="cls"``.
    """
    t = _first_tensor(out)
    if t.ndim == 2:
        return t
    if t.ndim == 3:
        if pool == "cls":
            return t[:, 0]
        if attention_mask is not None and attention_mask.shape == t.shape[:2]:
            mask = attention_mask.to(t.dtype).unsqueeze(-1)
            return (t * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return t.mean(1)
    if t.ndim >= 4:
        return t.flatten(2).mean(2)
    raise CheckpointError(f"cannot pool a layer output of shape {tuple(t.shape)} into (batch, features)")


class _StopForward(Exception):  # noqa: N818 - control flow, not an error
    """Raised by a layer hook once it has what it needs, to skip the rest of the forward pass."""


def _move(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: _move(v, device) for k, v in batch.items()}
    return batch


def unknown_layer_error(layer: str, valid: list[str], spec: str) -> CheckpointError:
    """A one-line CheckpointError listing the first 20 valid layer names and the closest match."""
    if not valid:
        return CheckpointError(f"{spec!r}: this checkpoint exposes no intermediate layers to pick with '@'")
    shown = ", ".join(valid[:20]) + (", ..." if len(valid) > 20 else "")
    return CheckpointError(
        f"unknown layer {layer!r} in {spec!r}.{closest_hint(layer, valid)} "
        f"Valid layers ({len(valid)}): {shown}"
    )


class _ParameterReads(TorchFunctionMode):
    """Records which of the given parameters are arguments of a torch call made while the mode is on."""

    def __init__(self, params: Mapping[int, nn.Parameter]) -> None:
        super().__init__()
        self._params = params
        self.read: set[int] = set()

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        for leaf in tree_flatten((args, kwargs))[0]:
            if isinstance(leaf, torch.Tensor) and id(leaf) in self._params:
                self.read.add(id(leaf))
        return func(*args, **kwargs)


def parameters_used(module: nn.Module, run: Callable[[], Any]) -> list[nn.Parameter]:
    """The parameters of ``module`` that ``run()`` reads, each once (tied weights count once).

    ``run`` is called once under ``torch.no_grad`` inside a :class:`~torch.overrides.TorchFunctionMode`
    that records every parameter passed to a torch function, operator or tensor method (``F.linear``,
    ``x + self.pos_embed``, ``self.weight.t()``, the flat weight list of an LSTM...). A parameter
    counts when its values enter the computation, whichever module owns it; an embedding table
    counts whole (every row can be looked up). An exception that ``run`` raises after the part of
    interest has run (the layer hook's early stop) must be caught inside ``run``.

    Parameters
    ----------
    module : torch.nn.Module
    run : callable
        Runs (part of) ``module`` on a small batch.

    Returns
    -------
    list of torch.nn.Parameter
        In ``module.parameters()`` order.
    """
    params = {id(p): p for p in module.parameters()}
    recorder = _ParameterReads(params)
    with torch.no_grad(), recorder:
        run()
    return [p for key, p in params.items() if key in recorder.read]


class TorchCheckpoint(Checkpoint):
    """A checkpoint backed by an ``nn.Module``.

    Subclasses implement :meth:`_penultimate` (features and logits of the full model) and
    may override :meth:`_run` (how a batch is fed to the module, used for layer capture).
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        spec: str,
        name: str,
        modality: Modality,
        preprocessing: Preprocessing,
        preparer: Callable[[Sequence[Any]], Any],
        card: dict[str, Any],
        num_features: int | None,
        has_head: bool,
        pool: str = "mean",
        fingerprint: Callable[[], str] | None = None,
    ) -> None:
        self.spec = spec
        self.name = name
        self.modality = modality
        self.layer = None
        self.card = card
        self.num_features = num_features
        self._module = module.eval()
        self._preprocessing = preprocessing
        self._preparer = preparer
        self._has_head = has_head
        self._pool = pool
        self._fingerprint_fn = fingerprint
        self._fingerprint: str | None = None
        self._device = torch.device("cpu")
        self._used_parameters: dict[str, int] = {}
        self.card.setdefault("num_parameters_scope", "whole checkpoint")

    # -- contract -------------------------------------------------------------------------
    @property
    def preprocessing(self) -> Preprocessing:
        return self._preprocessing

    @property
    def module(self) -> nn.Module:
        """The underlying ``nn.Module`` (in eval mode)."""
        return self._module

    def prepare(self, items: Sequence[Any]) -> Any:
        return self._preparer(items)

    def preparer(self) -> Callable[[Sequence[Any]], Any]:
        return self._preparer

    @property
    def has_head(self) -> bool:
        return self._has_head and self.layer is None

    @property
    def device(self) -> torch.device:
        return self._device

    def to(self, device: str | torch.device) -> TorchCheckpoint:
        try:
            dev = torch.device(device)
            self._module.to(dev)
        except (RuntimeError, AssertionError) as exc:
            raise CheckpointError(
                f"cannot move {self.spec!r} to device {str(device)!r}: {one_line(exc)}"
            ) from None
        self._device = dev
        return self

    def weights_fingerprint(self) -> str:
        if self._fingerprint is None:
            fn = self._fingerprint_fn or (lambda: state_dict_fingerprint(self._module.state_dict()))
            self._fingerprint = fn()
        return self._fingerprint

    def num_parameters(self) -> int:
        """Parameters of the whole module, or, after :meth:`select_layer`, of the part computing the layer.

        With a layer chosen, one dry forward pass on a one-item batch (:meth:`_dummy_batch`) up to
        the layer records the parameters it reads (:func:`parameters_used`); the count is cached
        per layer. The card's ``num_parameters_scope`` says which count this is.

        Raises
        ------
        CheckpointError
            The dry run fails or does not reach the layer.
        """
        if self.layer is None:
            return sum(p.numel() for p in self._module.parameters())
        if self.layer not in self._used_parameters:
            batch = _move(self._dummy_batch(), self._device)
            try:
                used = parameters_used(self._module, lambda: self._capture_layer(batch))
            except CheckpointError:
                raise
            except Exception as exc:  # whatever the model raises on the probe batch
                raise CheckpointError(
                    f"cannot count the parameters of {self.spec!r} up to layer {self.layer!r}: a dry run on "
                    f"one {self.modality} item failed ({type(exc).__name__}: {one_line(exc, 200)})"
                ) from None
            self._used_parameters[self.layer] = sum(p.numel() for p in used)
        return self._used_parameters[self.layer]

    def layer_names(self) -> list[str]:
        return [name for name, _ in self._module.named_modules() if name]

    def forward(self, batch: Any) -> ModelOutput:
        batch = _move(batch, self._device)
        with torch.inference_mode():
            out = self._capture_layer(batch) if self.layer is not None else self._penultimate(batch)
        if self.num_features is None:
            self.num_features = int(out.features.shape[1])
        return out

    def trainable_features(self, batch: Any) -> torch.Tensor:
        """Features of a batch (already on :attr:`device`) with gradients, for fine-tuning.

        Unlike :meth:`forward`, this runs outside ``inference_mode`` and leaves the module's
        train/eval mode to the caller, so the backbone can be trained through it.

        Returns
        -------
        torch.Tensor of shape (batch_size, num_features)
            The selected layer's features, or the penultimate features of the full model.
        """
        out = self._capture_layer(batch) if self.layer is not None else self._penultimate(batch)
        return out.features

    # -- machinery ------------------------------------------------------------------------
    def select_layer(self, layer: str) -> None:
        """Extract features at the module named ``layer`` instead of the penultimate layer."""
        valid = self.layer_names()
        if layer not in valid:
            raise unknown_layer_error(layer, valid, self.spec)
        self.layer = layer
        self.num_features = None
        self.card["num_parameters_scope"] = (
            f"up to layer {layer} (the parameters the forward pass reads until that layer's output)"
        )

    def _dummy_batch(self) -> Any:
        """A one-item batch for dry runs: a short sentence, or a black image at the input size."""
        if self.modality == "text":
            return self.prepare(["a short example sentence"])
        import numpy as np

        size = self._preprocessing.image_size or 224
        return self.prepare([np.zeros((size, size, 3), dtype=np.uint8)])

    def _run(self, batch: Any) -> Any:
        if isinstance(batch, Mapping):
            return self._module(**batch)
        return self._module(batch)

    def _penultimate(self, batch: Any) -> ModelOutput:
        raise NotImplementedError

    def _capture_layer(self, batch: Any) -> ModelOutput:
        target = self._module.get_submodule(self.layer)  # type: ignore[arg-type]
        captured: list[Any] = []

        def hook(_module: nn.Module, _args: Any, output: Any) -> None:
            captured.append(output)
            raise _StopForward

        handle = target.register_forward_hook(hook)
        try:
            self._run(batch)
        except _StopForward:
            pass
        finally:
            handle.remove()
        if not captured:
            raise CheckpointError(
                f"layer {self.layer!r} of {self.spec!r} did not run during the forward pass"
            )
        mask = batch.get("attention_mask") if isinstance(batch, Mapping) else None
        return ModelOutput(features=pool_output(captured[0], self._pool, mask), logits=None)

    def _linear_input(self, linear: nn.Module, batch: Any) -> tuple[torch.Tensor, Any]:
        """Run the model; return the input of ``linear`` (pooled to 2-D) and the model output."""
        captured: list[torch.Tensor] = []

        def pre_hook(_module: nn.Module, args: tuple[Any, ...]) -> None:
            captured.append(args[0])

        handle = linear.register_forward_pre_hook(pre_hook)
        try:
            out = self._run(batch)
        finally:
            handle.remove()
        if not captured:
            raise CheckpointError(
                f"the classifier layer of {self.spec!r} did not run during the forward pass"
            )
        mask = batch.get("attention_mask") if isinstance(batch, Mapping) else None
        return pool_output(captured[-1], self._pool, mask), out


class LinearHeadCheckpoint(TorchCheckpoint):
    """Penultimate features = input of the last ``nn.Linear``; logits = the model's output."""

    def __init__(self, module: nn.Module, *, head: str, **kwargs: Any) -> None:
        super().__init__(module, **kwargs)
        self._head_name = head

    def _penultimate(self, batch: Any) -> ModelOutput:
        linear = self._module.get_submodule(self._head_name)
        features, out = self._linear_input(linear, batch)
        logits = _first_tensor(out) if self._has_head else None
        return ModelOutput(features=features, logits=logits)


class GenericModuleCheckpoint(TorchCheckpoint):
    """Any ``nn.Module`` (``py:`` constructors, trusted pickles).

    When the module has an ``nn.Linear`` whose output is the module's 2-D output (checked on
    one dry-run batch), that Linear is the head: features are its input, logits the output.
    Otherwise (or with ``head=False``) the module's output, pooled, is the features.
    """

    def __init__(self, module: nn.Module, *, use_head: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("has_head", False)
        kwargs.setdefault("num_features", None)
        super().__init__(module, **kwargs)
        found = last_linear(module) if use_head else None
        self._head_name: str | None = None
        if found is not None:
            name, linear = found
            dummy = self._dummy_batch()
            with torch.inference_mode():
                features, out = self._linear_input(linear, dummy)
            out_t = _first_tensor(out)
            if out_t.ndim == 2 and out_t.shape[1] == linear.out_features:
                self._head_name = name
                self._has_head = True
                self.num_features = int(features.shape[1])
                self.card.setdefault("num_source_classes", linear.out_features)
        if not self._has_head:
            self.card.setdefault("num_source_classes", 0)

    def _penultimate(self, batch: Any) -> ModelOutput:
        if self._head_name is None:
            mask = batch.get("attention_mask") if isinstance(batch, Mapping) else None
            return ModelOutput(features=pool_output(self._run(batch), self._pool, mask), logits=None)
        linear = self._module.get_submodule(self._head_name)
        features, out = self._linear_input(linear, batch)
        return ModelOutput(features=features, logits=_first_tensor(out))
