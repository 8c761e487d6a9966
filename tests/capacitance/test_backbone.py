"""The neural-capacitance probe with the backbone fine-tuned (beff_finetune / probe_accuracy_finetune)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ckptrank
import ckptrank.zoo  # registers zoo:
from ckptrank.adapters import load_checkpoint
from ckptrank.capacitance.backbone import train_probe_backbone
from ckptrank.capacitance.line_graph import beta_eff
from ckptrank.capacitance.probe import train_probe
from ckptrank.data import TargetDataset
from ckptrank.measures.beff import beff_finetune

SMALL = dict(widths=(16, 8, 4), epochs=2, max_epochs=10, batch_size=16)


def _squares(n_per_class: int = 20, seed: int = 1) -> TargetDataset:
    """Dark vs bright noisy 28 x 28 grey squares: separable for any backbone."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n_per_class)
    base = np.where(y[:, None, None] == 1, 170, 80)
    img = np.clip(base + rng.normal(0, 40, (2 * n_per_class, 28, 28)), 0, 255).astype(np.uint8)
    return TargetDataset(items=img, labels=y, modality="image", classes=("dark", "bright"), split="train")


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_records_every_epoch_and_restores_the_checkpoint() -> None:
    ckpt = load_checkpoint("zoo:cnn-fm04")
    before = _state(ckpt.module)
    flags = [p.requires_grad for p in ckpt.module.parameters()]
    data = _squares()
    run = train_probe_backbone(ckpt, data.items, data.labels, **SMALL)
    assert run.options["train_backbone"] is True
    assert run.beta.shape == run.val_accuracy.shape == run.train_loss.shape == (2,)
    assert [W.shape for W in run.weights[0]] == [(16, 64), (8, 16), (4, 8), (2, 4)]
    for epoch, mats in enumerate(run.weights):
        assert run.beta[epoch] == pytest.approx(beta_eff(mats[:-1]), rel=1e-12)
    after = ckpt.module.state_dict()
    for key, value in before.items():
        assert torch.equal(after[key], value), key
    assert [p.requires_grad for p in ckpt.module.parameters()] == flags
    assert not ckpt.module.training


def test_a_still_backbone_reproduces_the_frozen_mode() -> None:
    # With the backbone's learning rate at 0 (batch norm frozen, no clipping, which the frozen mode
    # does not do) the backbone mode trains the same probe on the same features as the frozen mode:
    # an independent implementation of it.
    ckpt = load_checkpoint("zoo:cnn-fm04")
    data = _squares()
    still = train_probe_backbone(
        ckpt, data.items, data.labels, backbone_lr_multiplier=0.0, max_grad_norm=None, **SMALL
    )
    features = ckpt.forward(ckpt.prepare(data.items)).features.numpy()
    frozen = train_probe(features, data.labels, **SMALL)
    np.testing.assert_allclose(still.beta, frozen.beta, rtol=2e-4)
    np.testing.assert_allclose(still.train_loss, frozen.train_loss, rtol=2e-4)
    np.testing.assert_array_equal(still.val_accuracy, frozen.val_accuracy)


def test_the_backbone_trains() -> None:
    ckpt = load_checkpoint("zoo:cnn-fm04")
    data = _squares()
    still = train_probe_backbone(ckpt, data.items, data.labels, backbone_lr_multiplier=0.0, **SMALL)
    moving = train_probe_backbone(ckpt, data.items, data.labels, backbone_lr_multiplier=1.0, **SMALL)
    # Identical first step; the fine-tuned backbone then changes the probe's trajectory.
    assert abs(moving.beta[-1] - still.beta[-1]) > 1e-3 * still.beta[-1]


def test_text_checkpoint() -> None:
    ckpt = load_checkpoint("zoo:bow-wnverb")
    words = [(w, v) for w in ("dog", "cat", "bird") for v in ("hill", "road")]
    texts = [f"a {w} moves quickly over the {v}" for w, v in words] * 4
    labels = [i % 2 for i in range(len(texts))]
    run = train_probe_backbone(ckpt, texts, labels, **SMALL)
    assert np.all(np.isfinite(run.beta)) and np.all(run.beta > 0)


def test_bad_inputs_are_clear_errors() -> None:
    data = _squares()
    ckpt = load_checkpoint("zoo:cnn-fm04")
    with pytest.raises(ValueError, match="needs a PyTorch checkpoint"):
        train_probe_backbone(object(), data.items, data.labels, **SMALL)
    with pytest.raises(ValueError, match="40 samples but 39 labels"):
        train_probe_backbone(ckpt, data.items, data.labels[:-1], **SMALL)
    with pytest.raises(ValueError, match="at least 3 layers"):
        train_probe_backbone(ckpt, data.items, data.labels, widths=(8, 4), epochs=1)
    with pytest.raises(ValueError, match="diverged"):
        train_probe_backbone(ckpt, data.items, data.labels, **{**SMALL, "lr": 1e12})
    with pytest.raises(ValueError, match="too small for one probe epoch"):
        train_probe_backbone(ckpt, data.items, data.labels, time_budget=1e-6, **SMALL)
    with pytest.raises(ValueError, match="ModelInput"):
        beff_finetune(ckpt, data.labels, **SMALL)
    with pytest.raises(ValueError, match="needs model"):
        ckptrank.score("beff_finetune", None, data.labels)
    # The failed runs left the checkpoint as it was.
    fresh = load_checkpoint("zoo:cnn-fm04").module.state_dict()
    for key, value in ckpt.module.state_dict().items():
        assert torch.equal(fresh[key], value), key


def test_exploding_weights_count_as_divergence_even_with_a_finite_loss() -> None:
    # Without clipping, a huge learning rate blows the weights up; the loss may stay a finite number.
    ckpt = load_checkpoint("zoo:cnn-fm04")
    data = _squares()
    with pytest.raises(ValueError, match=r"diverged .*chance level"):
        train_probe_backbone(ckpt, data.items, data.labels, max_grad_norm=None, **{**SMALL, "lr": 1e6})


def test_gradient_coupling_through_the_backbone() -> None:
    ckpt = load_checkpoint("zoo:cnn-fm04")
    data = _squares()
    run = train_probe_backbone(ckpt, data.items, data.labels, weighting="gradient_coupling", **SMALL)
    assert np.all(np.isfinite(run.beta)) and np.all(run.beta > 0)
    # Measuring the couplings takes gradients but changes no weight: the still backbone still
    # matches the frozen mode with the same weighting.
    still = train_probe_backbone(
        ckpt,
        data.items,
        data.labels,
        backbone_lr_multiplier=0.0,
        max_grad_norm=None,
        weighting="gradient_coupling",
        **SMALL,
    )
    features = ckpt.forward(ckpt.prepare(data.items)).features.numpy()
    frozen = train_probe(features, data.labels, weighting="gradient_coupling", **SMALL)
    np.testing.assert_allclose(still.beta, frozen.beta, rtol=2e-3)


def test_precomputed_features_skip_the_backbone_measures_with_a_note() -> None:
    X = np.random.default_rng(0).normal(size=(40, 6))
    data = TargetDataset(items=X, labels=np.repeat([0, 1], 20), modality="features", features=X)
    frame = ckptrank.rank(
        data, ["zoo:cnn-fm04"], measures=["beff_finetune", "logme"], measure_options={"beff_finetune": SMALL}
    )
    assert np.isnan(frame["beff_finetune"].iloc[0]) and np.isfinite(frame["logme"].iloc[0])
    notes = frame.attrs["checkpoint_notes"]["zoo:cnn-fm04"]
    assert any("beff_finetune skipped" in n and "precomputed features" in n for n in notes)


def test_no_gradients_are_left_on_the_checkpoint() -> None:
    ckpt = load_checkpoint("zoo:cnn-fm04")
    data = _squares()
    train_probe_backbone(ckpt, data.items, data.labels, weighting="gradient_coupling", **SMALL)
    assert all(p.grad is None for p in ckpt.module.parameters())


def test_large_image_sets_are_prepared_batch_by_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    from ckptrank.measures import _beff_backbone as backbone  # the implementation reads the constant

    ckpt = load_checkpoint("zoo:cnn-fm04")
    data = _squares()
    kept = train_probe_backbone(ckpt, data.items, data.labels, **SMALL)
    monkeypatch.setattr(backbone, "_PREPARED_BYTES", 0)
    lazy = train_probe_backbone(ckpt, data.items, data.labels, **SMALL)
    np.testing.assert_array_equal(lazy.beta, kept.beta)
    np.testing.assert_array_equal(lazy.val_accuracy, kept.val_accuracy)
