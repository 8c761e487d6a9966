"""The neural-capacitance probe, the beff measure and its early-accuracy baseline probe_accuracy."""

from __future__ import annotations

import numpy as np
import pytest

import ckptrank
import ckptrank.zoo  # registers zoo:
from ckptrank.adapters import load_checkpoint
from ckptrank.capacitance.backbone import ModelInput, train_probe_backbone
from ckptrank.capacitance.line_graph import beta_eff
from ckptrank.capacitance.probe import train_probe
from ckptrank.data import TargetDataset
from ckptrank.measures._validation import DegenerateInputWarning
from ckptrank.measures.beff import (
    beff,
    beff_finetune,
    cross_model_prediction,
    extrapolate_beta,
    probe_accuracy,
    probe_accuracy_finetune,
    within_run_prediction,
)
from ckptrank.testing.synthetic import blobs

SMALL = dict(widths=(16, 8, 4), epochs=3, max_epochs=10)


def test_run_records_every_epoch_and_beta_matches_the_weights() -> None:
    X, y = blobs(300, 8, 3, 3.0)
    run = train_probe(X, y, **SMALL)
    assert run.beta.shape == run.val_accuracy.shape == run.train_loss.shape == (3,)
    assert len(run.weights) == 3
    # probe layers (input projected to the common width 64), then the head
    assert [W.shape for W in run.weights[0]] == [(16, 64), (8, 16), (4, 8), (3, 4)]
    for epoch, mats in enumerate(run.weights):
        assert run.beta[epoch] == pytest.approx(beta_eff(mats[:-1]), rel=1e-12)
    raw = train_probe(X, y, input_dim=None, graph="fixed_shape", **SMALL)
    assert [W.shape for W in raw.weights[0]] == [(16, 8), (8, 16), (4, 8), (3, 4)]
    assert raw.beta[-1] == pytest.approx(beta_eff(raw.weights[-1][1:]), rel=1e-12)
    assert np.all((run.val_accuracy >= 0) & (run.val_accuracy <= 1))


def test_same_seed_same_run_and_identical_initialisation_across_candidates() -> None:
    X, y = blobs(300, 8, 3, 3.0)
    a, b = train_probe(X, y, **SMALL), train_probe(X, y, **SMALL)
    np.testing.assert_array_equal(a.beta, b.beta)
    # Every candidate starts from the same probe, whatever its feature width.
    X2, _ = blobs(300, 12, 3, 3.0)
    one = train_probe(X, y, widths=(16, 8, 4), epochs=1, lr=0.0)
    two = train_probe(X2, y, widths=(16, 8, 4), epochs=1, lr=0.0)
    for a, b in zip(one.weights[0], two.weights[0], strict=True):
        np.testing.assert_array_equal(a, b)


def test_capacitance_is_not_driven_by_feature_width() -> None:
    # Wide pure noise must not beat narrow informative features (the probe input is projected).
    rng = np.random.default_rng(0)
    informative, y = blobs(600, 16, 4, 4.0)
    noise = rng.normal(size=(600, 1024))
    options = dict(widths=(32, 16, 8), epochs=4, max_epochs=10)
    assert beff(informative, y, **options) > beff(noise, y, **options)


def test_training_learns_and_early_accuracy_tracks_separation() -> None:
    accs = []
    for s in (0.0, 6.0):
        X, y = blobs(400, 8, 4, s)
        accs.append(probe_accuracy(X, y, widths=(32, 16, 8), epochs=5, max_epochs=10))
    assert accs[1] > 0.9 > accs[0] + 0.3


def test_beff_and_probe_accuracy_share_one_run() -> None:
    X, y = blobs(300, 8, 3, 3.0, random_state=5)
    run = train_probe(X, y, **SMALL)
    assert beff(X, y, **SMALL) == pytest.approx(run.beta[-1], rel=1e-12)
    assert beff(X, y, epochs_used="mean_last2", **SMALL) == pytest.approx(run.beta[-2:].mean(), rel=1e-12)
    assert probe_accuracy(X, y, **SMALL) == pytest.approx(run.val_accuracy[-1])


def test_within_run_brr_predicts_an_accuracy() -> None:
    X, y = blobs(300, 8, 3, 3.0)
    value = beff(X, y, mode="within_run_brr", **SMALL)
    assert 0.0 <= value <= 1.0


def test_extrapolation_is_exact_for_log_linear_curves() -> None:
    t = np.arange(1, 6)
    beta = 0.3 + 0.1 * np.log(t)
    assert extrapolate_beta(beta, 50) == pytest.approx(0.3 + 0.1 * np.log(50))
    assert extrapolate_beta([0.4], 50) == 0.4


def test_within_run_prediction_against_sklearn() -> None:
    from sklearn.linear_model import BayesianRidge

    beta = np.array([0.1, 0.15, 0.18, 0.2])
    acc = np.array([0.3, 0.5, 0.6, 0.65])
    target = extrapolate_beta(beta, 20)
    expected = BayesianRidge().fit(beta[:, None], acc).predict([[target]])[0]
    assert within_run_prediction(beta, acc, 20) == pytest.approx(np.clip(expected, 0, 1))
    assert within_run_prediction([0.2, 0.2], [0.4, 0.5], 20) == 0.5  # flat beta: last accuracy


def test_diverging_training_is_a_clear_error() -> None:
    X, y = blobs(200, 8, 3, 3.0)
    with pytest.raises(ValueError, match="diverged"):
        train_probe(X * 1e6, y, standardize=False, input_dim=None, lr=1e3, **SMALL)


def test_budget_too_small_for_one_epoch() -> None:
    X, y = blobs(2000, 8, 3, 3.0)
    with pytest.raises(ValueError, match="too small for one probe epoch"):
        train_probe(X, y, widths=(16, 8, 4), epochs=2, batch_size=8, time_budget=1e-6)


def test_time_budget_stops_early_with_a_warning() -> None:
    X, y = blobs(600, 8, 3, 3.0)
    one_epoch = train_probe(X, y, widths=(16, 8, 4), epochs=1).seconds
    with pytest.warns(DegenerateInputWarning, match="time budget"):
        run = train_probe(
            X, y, widths=(16, 8, 4), epochs=50, max_epochs=50, time_budget=2.5 * one_epoch + 0.05
        )
    assert 1 <= run.beta.size < 50


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(widths=(8, 4)), "at least 3 layers"),
        (dict(epochs=0), "epochs"),
        (dict(epochs=5, max_epochs=3), "epochs"),
    ],
)
def test_bad_options(kwargs: dict, match: str) -> None:
    X, y = blobs(100, 8, 3, 3.0)
    with pytest.raises(ValueError, match=match):
        train_probe(X, y, **kwargs)


def test_bad_mode() -> None:
    X, y = blobs(100, 8, 3, 3.0)
    with pytest.raises(ValueError, match="mode"):
        beff(X, y, mode="cross", **SMALL)  # type: ignore[arg-type]


def test_too_few_samples_for_a_validation_split() -> None:
    X = np.random.default_rng(0).normal(size=(5, 4))
    with pytest.raises(ValueError, match="too few"):
        train_probe(X, [0, 0, 1, 1, 2], **SMALL)


def test_nan_features_are_refused() -> None:
    X, y = blobs(100, 8, 3, 3.0)
    X[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        beff(X, y, **SMALL)


# -- fine-tuned backbone: the measures (the training itself: tests/capacitance/test_backbone.py) --------


def _squares(n_per_class: int = 20, seed: int = 1) -> TargetDataset:
    """Dark vs bright noisy 28 x 28 grey squares: separable for any backbone."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n_per_class)
    base = np.where(y[:, None, None] == 1, 170, 80)
    img = np.clip(base + rng.normal(0, 40, (2 * n_per_class, 28, 28)), 0, 255).astype(np.uint8)
    return TargetDataset(items=img, labels=y, modality="image", classes=("dark", "bright"), split="train")


FT_SMALL = dict(widths=(16, 8, 4), epochs=2, max_epochs=10, batch_size=16)


def test_measures_share_one_run_and_rank_real_checkpoints() -> None:
    data = _squares()
    ckpt = load_checkpoint("zoo:cnn-fm04")
    model = ModelInput(ckpt, data.items, data.fingerprint())
    value = beff_finetune(model, data.labels, **FT_SMALL)
    accuracy = probe_accuracy_finetune(model, data.labels, **FT_SMALL)
    run = train_probe_backbone(ckpt, data.items, data.labels, **FT_SMALL)
    assert value == pytest.approx(run.beta[-1], rel=1e-9)
    assert accuracy == run.val_accuracy[-1]
    assert ckptrank.score("beff_finetune", labels=data.labels, model=model, **FT_SMALL) == value

    frame = ckptrank.rank(
        data,
        ["zoo:cnn-fm04", "zoo:cnn-random"],
        measures=["beff_finetune", "probe_accuracy_finetune", "logme"],
        measure_options={"beff_finetune": FT_SMALL, "probe_accuracy_finetune": FT_SMALL},
        progress=False,
    )
    assert frame["status"].tolist() == ["ok", "ok"]
    assert frame[["beff_finetune", "probe_accuracy_finetune", "logme"]].notna().all().all()


def test_a_failing_candidate_leaves_the_others_ranked() -> None:
    data = _squares()
    frame = ckptrank.rank(
        data,
        ["zoo:cnn-fm04", "zoo:cnn-random"],
        measures=["beff_finetune", "logme"],
        measure_options={"beff_finetune": {**FT_SMALL, "lr": 1e12}},
        progress=False,
    )
    assert frame["beff_finetune"].isna().all() and frame["logme"].notna().all()
    notes = frame.attrs["checkpoint_notes"]["zoo:cnn-fm04"]
    assert any("beff_finetune failed" in n and "diverged" in n for n in notes)


# -- cross-model Bayesian ridge -------------------------------------------------------------------


def test_cross_model_prediction_recovers_an_exact_linear_relation() -> None:
    beta = np.array([0.5, 1.0, 1.5, 2.0, 3.0])
    accuracy = 0.3 + 0.2 * beta
    predicted = cross_model_prediction(beta, accuracy, [2.5, 0.75])
    np.testing.assert_allclose(predicted, 0.3 + 0.2 * np.array([2.5, 0.75]), atol=1e-4)
    # The sign is learnt from the references (ALGORITHMS.md 2.13.2 f): a falling relation is kept.
    falling = cross_model_prediction(beta, 0.9 - 0.2 * beta, [0.25, 3.5])
    assert falling[0] > falling[1]
    # Several score columns (beta_eff and the early accuracy) and clipping to [0, 1].
    two = np.column_stack([beta, [0.1, 0.4, 0.2, 0.5, 0.3]])
    target = 0.1 * two[:, 0] + 0.5 * two[:, 1]
    np.testing.assert_allclose(cross_model_prediction(two, target, two), target, atol=1e-3)
    assert cross_model_prediction(beta, accuracy, [100.0])[0] == 1.0
    # Percentages stay percentages (clipped to [0, 100]).
    percent = cross_model_prediction(beta, 100 * accuracy, [2.5, 1000.0])
    np.testing.assert_allclose(percent, [100 * (0.3 + 0.2 * 2.5), 100.0], atol=1e-2)


@pytest.mark.parametrize(
    ("refs", "accs", "cands", "match"),
    [
        ([1.0], [0.5], [1.0], "at least 2 reference"),
        ([1.0, 2.0], [0.5], [1.0], "2 reference scores but 1 reference accuracies"),
        ([[1.0, 2.0], [2.0, 1.0]], [0.5, 0.6], [1.0], "2 score columns but candidates 1"),
        ([1.0, np.nan], [0.5, 0.6], [1.0], "reference scores contain NaN"),
    ],
)
def test_cross_model_prediction_bad_inputs(refs: list, accs: list, cands: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cross_model_prediction(refs, accs, cands)


def test_unknown_cross_model_mode_points_to_the_function() -> None:
    X, y = blobs(100, 4, 2, 3.0)
    with pytest.raises(ValueError, match="use cross_model_prediction"):
        beff(X, y, mode="cross_model_brr", **SMALL)


def test_finetune_runs_are_shared_only_for_the_same_samples() -> None:
    ckpt = load_checkpoint("zoo:cnn-fm04")
    data = _squares()
    same = beff_finetune(ModelInput(ckpt, data.items.copy()), data.labels, **FT_SMALL)
    assert beff_finetune(ModelInput(ckpt, data.items.copy()), data.labels, **FT_SMALL) == same
    other = _squares(seed=2)
    assert beff_finetune(ModelInput(ckpt, other.items), other.labels, **FT_SMALL) != same


def test_finetune_run_cache_tells_spec_options_apart() -> None:
    # Same weights, different preprocessing (?size=): a different run, not the cached one.
    data = _squares()
    small = beff_finetune(ModelInput(load_checkpoint("zoo:cnn-fm04"), data.items), data.labels, **FT_SMALL)
    big_ckpt = load_checkpoint("zoo:cnn-fm04?size=56")
    big = beff_finetune(ModelInput(big_ckpt, data.items), data.labels, **FT_SMALL)
    fresh = train_probe_backbone(big_ckpt, data.items, data.labels, **FT_SMALL)
    assert big == pytest.approx(fresh.beta[-1], rel=1e-12)
    assert big != small
