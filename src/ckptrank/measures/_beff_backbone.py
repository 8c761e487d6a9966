"""The neural-capacitance probe with the backbone fine-tuned too (the patent's step 4).

:func:`train_probe` trains the probe on frozen, cached features. Here the checkpoint's own
network trains with it, as the patent's procedure describes ("fine-tuning the bottom layers on
the target dataset", ALGORITHMS.md 2.13.1): every mini-batch goes through the backbone with
gradients, through the same fixed input map as the frozen mode (fitted on the pre-trained
features of the training part), then through the probe and its head. The probe's weights,
their ``beta_eff`` and the validation accuracy are recorded after every epoch, exactly as in the
frozen mode, so the two modes' records are comparable. The checkpoint's weights are restored
when the run ends, whatever happens.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._beff_probe import (
    ProbeRun,
    build_probe,
    check_probe_options,
    fit_input_map,
    probe_split,
    run_probe_epochs,
)
from ._validation import check_features_and_labels

__all__ = ["ModelInput", "train_probe_backbone"]

#: Largest prepared image set kept in memory (bytes); larger sets are prepared per batch.
_PREPARED_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class ModelInput:
    """What a measure that trains the checkpoint itself needs: the loaded checkpoint and the raw data.

    Attributes
    ----------
    checkpoint : ckptrank.adapters.Checkpoint
        A loaded PyTorch checkpoint (``TorchCheckpoint``), possibly with a selected layer.
    items : sequence of length n_samples
        The raw target samples its ``prepare`` accepts (image paths or arrays, or strings).
    fingerprint : str, optional
        A content hash of ``items`` (the dataset's), used to share a run between measures.
    """

    checkpoint: Any
    items: Sequence[Any]
    fingerprint: str | None = None


def _check_trainable(checkpoint: Any) -> None:
    from ckptrank.adapters._torch import TorchCheckpoint

    if not isinstance(checkpoint, TorchCheckpoint):
        spec = getattr(checkpoint, "spec", type(checkpoint).__name__)
        raise ValueError(
            f"fine-tuning the backbone needs a PyTorch checkpoint; {spec!r} is a "
            f"{type(checkpoint).__name__} (use the frozen-backbone measure beff instead)"
        )


class _Batches:
    """Prepared inputs of the samples, fed to the backbone by row index."""

    def __init__(self, checkpoint: Any, items: Sequence[Any], device: torch.device) -> None:
        self.checkpoint = checkpoint
        self.device = device
        self.text = checkpoint.modality == "text"
        self.items = items if isinstance(items, np.ndarray) else list(items)
        self.prepared: torch.Tensor | None = None
        if not self.text and len(items):
            # Prepared images are kept in memory when they fit in _PREPARED_BYTES; larger sets are
            # prepared batch by batch (slower: every epoch decodes and resizes again).
            first = checkpoint.prepare(items[:256])
            per_item = first.element_size() * first[0].numel()
            if per_item * len(items) <= _PREPARED_BYTES:
                chunks = [first] + [
                    checkpoint.prepare(items[i : i + 256]) for i in range(256, len(items), 256)
                ]
                self.prepared = torch.cat(chunks)

    def __call__(self, idx: np.ndarray | torch.Tensor) -> Any:
        rows = torch.as_tensor(idx, dtype=torch.long).cpu()
        if self.prepared is not None:
            return self.prepared[rows].to(self.device)
        batch = self.checkpoint.prepare([self.items[int(i)] for i in rows])
        if isinstance(batch, dict):
            return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        return batch.to(self.device)

    def features(self, idx: np.ndarray, batch_size: int) -> torch.Tensor:
        """Backbone features of the rows ``idx`` without gradients, shape (len(idx), n_features)."""
        parts = []
        with torch.no_grad():
            for start in range(0, idx.size, batch_size):
                parts.append(self.checkpoint.trainable_features(self(idx[start : start + batch_size])))
        return torch.cat(parts).double().cpu()


def train_probe_backbone(
    checkpoint: Any,
    items: Sequence[Any],
    labels: Any,
    *,
    widths: Sequence[int] = (256, 128, 64),
    epochs: int = 5,
    max_epochs: int = 50,
    lr: float = 0.1,
    backbone_lr_multiplier: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    batch_size: int = 32,
    val_fraction: float = 0.2,
    standardize: bool = True,
    weighting: str = "abs_product",
    orientation: str = "forward",
    graph: str = "probe",
    input_dim: int | None = 64,
    freeze_batchnorm: bool = True,
    max_grad_norm: float | None = 1.0,
    freeze_probe: bool = False,
    init_seed: int = 0,
    random_state: int = 0,
    time_budget: float | None = None,
    eval_batch_size: int = 256,
) -> ProbeRun:
    """Train the probe and fine-tune the checkpoint's backbone with it; record the probe's dynamics.

    Parameters
    ----------
    checkpoint : TorchCheckpoint
        A loaded PyTorch checkpoint (its selected layer, or its penultimate layer, feeds the
        probe). It trains on its current device; its weights are restored afterwards.
    items : sequence of length n_samples
        Raw target training samples (what ``checkpoint.prepare`` accepts).
    labels : array-like of shape (n_samples,)
    widths, epochs, max_epochs, lr, momentum, weight_decay, batch_size, val_fraction, standardize,
    weighting, orientation, graph, input_dim, freeze_probe, init_seed, random_state, time_budget
        As for :func:`ckptrank.capacitance.probe.train_probe` (same defaults, same split, same
        probe initialisation, same input map fitted on the pre-trained features).
    backbone_lr_multiplier : float, default=0.1
        The backbone's learning rate is ``lr * backbone_lr_multiplier`` (toolkit choice: a
        pre-trained network is fine-tuned with a smaller step than a new head).
    freeze_batchnorm : bool, default=True
        Keep batch-norm layers in evaluation mode (running statistics frozen), as is usual when
        fine-tuning on small batches.
    max_grad_norm : float or None, default=1.0
        Clip the gradient norm of all trained parameters (the randomly initialised probe sends
        large gradients into the pre-trained network in the first steps; the ground-truth
        fine-tuning protocol clips the same way). None disables clipping.
    eval_batch_size : int, default=256
        Batch size of the gradient-free passes (input map, validation).

    Returns
    -------
    ProbeRun
        With ``options["train_backbone"] = True``.

    Raises
    ------
    ValueError
        A checkpoint that is not a PyTorch network, features that cannot feed a probe (NaN/inf,
        not 2-D), invalid labels or options, diverging training, or a time budget too small for
        one epoch.
    """
    _check_trainable(checkpoint)
    check_probe_options(widths, epochs, max_epochs, graph, weighting, freeze_probe, orientation)
    if len(items) != len(np.asarray(labels)):
        raise ValueError(
            f"{len(items)} samples but {len(np.asarray(labels))} labels; they must describe the same samples"
        )
    module: torch.nn.Module = checkpoint.module
    device = checkpoint.device
    initial = copy.deepcopy(module.state_dict())
    flags = [p.requires_grad for p in module.parameters()]
    try:
        module.eval()
        batches = _Batches(checkpoint, items, device)
        pretrained = batches.features(np.arange(len(items)), eval_batch_size)
        if pretrained.ndim != 2:
            raise ValueError(
                f"{checkpoint.spec!r} gives features of shape {tuple(pretrained.shape)}; the probe needs "
                "one vector per sample (choose a layer with pooled features)"
            )
        X, info = check_features_and_labels(pretrained.numpy(), labels)
        train_idx, val_idx = probe_split(info, val_fraction, random_state)
        input_map = fit_input_map(X[train_idx], standardize=standardize, input_dim=input_dim)
        offset = torch.as_tensor(input_map.offset, dtype=torch.float32, device=device)
        scale = torch.as_tensor(input_map.scale, dtype=torch.float32, device=device)
        projection = (
            None
            if input_map.projection is None
            else torch.as_tensor(input_map.projection, dtype=torch.float32, device=device)
        )
        probe = build_probe(input_map.width, widths, info.n_classes, init_seed).float().to(device)
        yt = torch.from_numpy(info.y).to(device)
        for p in module.parameters():
            p.requires_grad_(True)
        optimiser = torch.optim.SGD(
            [
                {"params": list((probe[-1] if freeze_probe else probe).parameters())},
                {"params": list(module.parameters()), "lr": lr * backbone_lr_multiplier},
            ],
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
        )

        def head(features: torch.Tensor) -> torch.Tensor:
            inputs = (features.float() - offset) / scale
            return probe(inputs if projection is None else inputs @ projection)

        def logits(idx: torch.Tensor) -> torch.Tensor:
            return head(checkpoint.trainable_features(batches(idx)))

        def loss_of(idx: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.cross_entropy(logits(idx), yt[idx])

        def coupling_loss_of(idx: torch.Tensor) -> torch.Tensor:
            # Only the probe's gradients are needed: the backbone runs without them, in chunks.
            with torch.no_grad():
                rows = idx.cpu().numpy()
                features = torch.cat(
                    [
                        checkpoint.trainable_features(batches(rows[start : start + eval_batch_size]))
                        for start in range(0, rows.size, eval_batch_size)
                    ]
                )
            return torch.nn.functional.cross_entropy(head(features), yt[idx])

        def val_predictions() -> np.ndarray:
            parts = []
            with torch.no_grad():
                for start in range(0, val_idx.size, eval_batch_size):
                    rows = torch.as_tensor(val_idx[start : start + eval_batch_size])
                    parts.append(logits(rows).argmax(dim=1).cpu())
            return torch.cat(parts).numpy()

        def set_training(training: bool) -> None:
            module.train(training)
            probe.train(training)
            if training and freeze_batchnorm:
                for sub in module.modules():
                    if isinstance(sub, torch.nn.modules.batchnorm._BatchNorm):
                        sub.eval()

        options = dict(
            widths=tuple(widths),
            epochs=epochs,
            max_epochs=max_epochs,
            lr=lr,
            backbone_lr_multiplier=backbone_lr_multiplier,
            momentum=momentum,
            weight_decay=weight_decay,
            batch_size=batch_size,
            val_fraction=val_fraction,
            standardize=standardize,
            weighting=weighting,
            orientation=orientation,
            graph=graph,
            input_dim=input_dim,
            freeze_batchnorm=freeze_batchnorm,
            max_grad_norm=max_grad_norm,
            freeze_probe=freeze_probe,
            init_seed=init_seed,
            random_state=random_state,
            train_backbone=True,
        )
        return run_probe_epochs(
            probe,
            optimiser,
            loss_of=loss_of,
            val_predictions=val_predictions,
            y_val=info.y[val_idx],
            train_idx=train_idx,
            options=options,
            time_budget=time_budget,
            device=device,
            set_training=set_training,
            coupling_loss_of=coupling_loss_of,
        )
    finally:
        module.load_state_dict(initial)
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.grad = None
            p.requires_grad_(flag)
        module.eval()
