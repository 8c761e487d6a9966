"""Checkpoint sources: turn a spec string into a :class:`Checkpoint`.

A spec reads ``PREFIX:NAME[@LAYER][?KEY=VALUE&...]``:

=============================  ==============================================================
``timm:NAME[.TAG]``            timm architecture; pretrained weights by its ``hf_hub_id`` (HF cache)
                               or ``?weights=PATH``
``torchvision:NAME``           torchvision classifier; ``?weights=ENUM_NAME`` (``TORCH_HOME``) or
                               ``?weights=PATH``
``hf:ORG/NAME[@REVISION]``     transformers vision/text model from the hub (or ``hf:/folder``)
``st:ORG/NAME[@REVISION]``     sentence-transformers model from the hub (or ``st:/folder``)
``file:PATH``                  ``.safetensors``/``.pt`` state dict + ``?arch=``, TorchScript, ONNX
``py:MOD:FUNC``                your function returning an ``nn.Module`` (``py:/path/file.py:FUNC``)
``NAME``                       built-in real checkpoint: efficientnet-lite0/1/2, all-minilm-l6-v2,
                               glove-6b-50d (also ``builtin:NAME``)
=============================  ==============================================================

``@LAYER`` picks an intermediate module by name (4-D outputs are globally average-pooled,
3-D token outputs mean-pooled or, with ``?pool=cls``, reduced to the first token); logits
are then None. For hub ids the first ``@`` names the revision and a second one the layer
(``hf:ORG/NAME@main@encoder.layer.3``).

Hub checkpoints are downloaded with each library's own hub client into its standard cache
(``huggingface_hub``: ``HF_HOME``/``HF_HUB_CACHE``/``HF_ENDPOINT``/``HF_TOKEN``; torch hub:
``TORCH_HOME``), pinned to the commit a revision resolves to; ``HF_HUB_OFFLINE=1`` (the CLI's
``--offline``) uses the caches only. Remote code is never run (``trust_remote_code=False``, a
repository that needs its own code is refused), and nothing is unpickled beyond tensors unless
``trust_checkpoint=True``.
"""

from __future__ import annotations

from . import (  # noqa: F401  # sources register themselves on import; all heavy imports are lazy
    builtin_source,
    file_source,
    hf_source,
    py_source,
    st_source,
    timm_source,
    torchvision_source,
)
from ._base import (
    Checkpoint,
    CheckpointError,
    MissingDependencyError,
    ModelOutput,
    Preprocessing,
    UntrustedCheckpointError,
)
from ._source import SourceInfo, get_source, list_source_infos, parse_spec

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "MissingDependencyError",
    "ModelOutput",
    "Preprocessing",
    "SourceInfo",
    "UntrustedCheckpointError",
    "list_builtin_checkpoints",
    "list_sources",
    "load_checkpoint",
]


def list_sources() -> list[SourceInfo]:
    """The registered checkpoint sources (prefix, syntax, description, options, extra package)."""
    return list_source_infos()


def list_builtin_checkpoints() -> list[str]:
    """Names of the built-in real checkpoints (usable without a prefix)."""
    from .builtin_source import BUILTIN_NAMES

    return list(BUILTIN_NAMES)


def load_checkpoint(spec: str, *, trust_checkpoint: bool = False, device: str = "cpu") -> Checkpoint:
    """Load the checkpoint a spec names.

    Parameters
    ----------
    spec : str
        ``PREFIX:NAME[@LAYER][?KEY=VALUE&...]``, a built-in name, or a local path (a file is
        read as ``file:``, a folder as ``st:`` when it holds ``modules.json``, else ``hf:``).
        See the module docstring and :func:`list_sources` for each source's options.
    trust_checkpoint : bool, default=False
        Allow loading that can execute code from the checkpoint: TorchScript archives and
        pickles that hold more than tensors. Never needed for safetensors, tensors-only torch
        files, ONNX, or Hugging Face folders (remote code is never trusted).
    device : str, default="cpu"
        Device to move the model to.

    Returns
    -------
    Checkpoint
        In eval mode, on ``device``, ready for ``prepare`` and ``forward``.

    Raises
    ------
    CheckpointError
        Unknown prefix, built-in name, architecture, option or layer (with the valid names and
        the closest match); a missing, corrupt or truncated file; weights that do not fit the
        architecture (with the counts of missing, unexpected and shape-mismatched keys).
    UntrustedCheckpointError
        The file would run code when loaded and ``trust_checkpoint`` is False.
    MissingDependencyError
        The source needs an optional package; the message names the pip package.

    Examples
    --------
    >>> from ckptrank.adapters import load_checkpoint
    >>> ckpt = load_checkpoint("glove-6b-50d")  # doctest: +SKIP
    >>> ckpt.forward(ckpt.prepare(["a king", "a queen"])).features.shape  # doctest: +SKIP
    torch.Size([2, 50])
    """
    parsed = parse_spec(spec, list_builtin_checkpoints())
    source = get_source(parsed.prefix, spec)
    ckpt = source.loader(parsed, trust_checkpoint)
    if parsed.layer is not None:
        ckpt.select_layer(parsed.layer)
    if str(device) != "cpu":
        ckpt.to(device)
    return ckpt
