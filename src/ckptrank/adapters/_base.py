"""The contract every checkpoint source implements.

A :class:`Checkpoint` turns raw target items (images or texts) into a model input
batch (:meth:`Checkpoint.prepare`, run in data-loader workers) and a batch into
penultimate features and, when the checkpoint has a classification head, source-class
logits (:meth:`Checkpoint.forward`, run under ``torch.inference_mode``).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "MissingDependencyError",
    "ModelOutput",
    "Preprocessing",
    "UntrustedCheckpointError",
]

Modality = Literal["image", "text"]


class CheckpointError(ValueError):
    """A checkpoint cannot be resolved or loaded (unknown source, bad file, wrong architecture, bad layer)."""


class UntrustedCheckpointError(CheckpointError):
    """Loading the checkpoint would execute code from the file; pass ``trust_checkpoint=True`` to allow it."""


class MissingDependencyError(CheckpointError, ImportError):
    """A checkpoint source needs an optional package that is not installed (the message names it)."""


@dataclass(frozen=True)
class Preprocessing:
    """How raw items become model inputs; part of the feature-cache key.

    Attributes
    ----------
    modality : {"image", "text"}
    image_size : int or None
        Square input side in pixels (images).
    resize_size : int or None
        Shorter side after resizing, before the centre crop (images).
    mean, std : tuple of float
        Per-channel normalisation applied after scaling pixels to ``[0, 1]`` (images).
    interpolation : str
        Resize interpolation, e.g. ``"bilinear"`` or ``"bicubic"``.
    max_length : int or None
        Token limit (texts).
    extra : dict
        Anything else the source needs to describe its preprocessing (tokenizer name, ...).
    """

    modality: Modality
    image_size: int | None = None
    resize_size: int | None = None
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"
    max_length: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description (used in cache keys and resolved configs)."""
        return asdict(self)


@dataclass
class ModelOutput:
    """Outputs of one forward pass.

    Attributes
    ----------
    features : torch.Tensor of shape (batch, n_features)
        Penultimate (or chosen-layer, pooled) features.
    logits : torch.Tensor of shape (batch, n_source_classes) or None
        Source-class logits of the checkpoint's own head; None without a head or when an
        intermediate layer was chosen.
    """

    features: torch.Tensor
    logits: torch.Tensor | None = None


class Checkpoint(abc.ABC):
    """A loaded checkpoint, ready to extract features.

    Attributes
    ----------
    spec : str
        The string the user gave, e.g. ``"timm:resnet18@layer3"``.
    name : str
        Display name.
    modality : {"image", "text"}
    layer : str or None
        Intermediate layer chosen with ``NAME@layer``; None for the penultimate layer.
    card : dict
        What the checkpoint states about itself. Keys used by the built-in sources:
        ``source`` (where it came from), ``architecture``, ``weights`` (file, cache entry or
        ``"random-init (seed N)"``), ``source_dataset`` (or None when unknown),
        ``num_source_classes`` (0 without a head), ``num_parameters_scope`` (what
        :meth:`num_parameters` counts: ``"whole checkpoint"``, or ``"up to layer NAME (...)"``
        after :meth:`select_layer`), and, only when a published number can be
        cited for exactly these weights, ``source_accuracy`` (percent), ``source_accuracy_metric``
        and ``source_accuracy_reference``.
    num_features : int or None
        Declared width of the features :meth:`forward` returns; None when only the first
        forward pass tells (some intermediate layers, TorchScript); set after that pass.
    """

    spec: str
    name: str
    modality: Modality
    layer: str | None = None
    card: dict[str, Any]
    num_features: int | None = None

    @property
    @abc.abstractmethod
    def preprocessing(self) -> Preprocessing:
        """The checkpoint's own preprocessing configuration."""

    @abc.abstractmethod
    def prepare(self, items: Sequence[Any]) -> Any:
        """Turn raw items into one model-input batch (CPU tensors); picklable, runs in workers."""

    @abc.abstractmethod
    def forward(self, batch: Any) -> ModelOutput:
        """Run the model on a prepared batch (already moved to the model's device)."""

    @abc.abstractmethod
    def weights_fingerprint(self) -> str:
        """Content hash (hex) of the weights, stable across processes; part of the cache key."""

    @abc.abstractmethod
    def num_parameters(self) -> int:
        """Number of parameters of the whole checkpoint, or of the part that computes the ``@`` layer.

        Once a layer is chosen, only the parameters that the computation of that layer reads
        count; ``card["num_parameters_scope"]`` says which count this is.
        """

    @abc.abstractmethod
    def layer_names(self) -> list[str]:
        """Names accepted after ``@`` to pick an intermediate layer."""

    def select_layer(self, layer: str) -> None:
        """Extract features at the layer named ``layer`` (one of :meth:`layer_names`) from now on.

        Sets :attr:`layer`; logits are None afterwards. Raises CheckpointError for an unknown
        name (listing valid names and the closest match) or a checkpoint without layers.
        """
        raise CheckpointError(
            f"{self.spec!r}: this checkpoint exposes no intermediate layers to pick with '@'"
        )

    def preparer(self) -> Callable[[Sequence[Any]], Any]:
        """A picklable callable equivalent to :meth:`prepare`, cheap to send to worker processes.

        Sources whose preparation needs only a small object (image transforms, a tokenizer)
        return that object, so spawning a worker does not copy the model's weights.
        """
        return self.prepare

    def count_tokens(self, items: Sequence[Any]) -> Any:
        """How many text ``items`` the preparation cuts at its token limit.

        Returns a :class:`ckptrank.adapters.toolkit.TokenCount`, or None where the checkpoint
        does not tokenise (images) or its preparation cannot say.
        """
        counter = getattr(self.preparer(), "count_tokens", None)
        return counter(items) if callable(counter) else None

    @property
    def has_head(self) -> bool:
        """Whether :meth:`forward` returns source-class logits."""
        return False

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def to(self, device: str | torch.device) -> Checkpoint:
        """Move the model to ``device``; returns ``self``."""
        return self
