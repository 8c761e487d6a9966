"""The fine-tuning protocols: splits, selection, resume, interrupted runs, and both protocols end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import ckptrank.zoo  # noqa: F401  # registers zoo:
from ckptrank.bench import finetune as ft
from ckptrank.bench.finetune import (
    FinetuneConfig,
    FinetuneTask,
    finetune,
    finetune_checkpoint,
    select_config,
    stratified_split,
    summarize_runs,
)
from ckptrank.bench.store import ResultsStore
from ckptrank.data import TargetDataset

LINEAR = FinetuneConfig(
    protocol="linear", lrs=(0.01, 0.3), weight_decays=(0.0, 1e-3), epochs=8, seeds=(0, 1, 2)
)


def _features_task(n_per_class: int = 12, d: int = 6, seed: int = 0, name: str = "blobs") -> FinetuneTask:
    """Two Gaussian classes 3 standard deviations apart along one axis, plus noise dimensions."""
    rng = np.random.default_rng(seed)

    def make(n: int) -> TargetDataset:
        y = np.repeat([0, 1], n)
        x = rng.normal(size=(2 * n, d))
        x[:, 0] += 3.0 * y
        return TargetDataset(
            items=x, labels=y, modality="features", features=x, classes=("a", "b"), split="x"
        )

    return FinetuneTask(name, make(n_per_class), make(20), 0, {"data": f"synthetic-{seed}", "n": n_per_class})


def _image_task() -> FinetuneTask:
    """Tiny 2-class image task: dark vs bright squares with noise (28 x 28 grey)."""
    rng = np.random.default_rng(1)

    def make(n: int) -> TargetDataset:
        y = np.repeat([0, 1], n)
        base = np.where(y[:, None, None] == 1, 200, 40)
        img = np.clip(base + rng.normal(0, 25, (2 * n, 28, 28)), 0, 255).astype(np.uint8)
        return TargetDataset(items=img, labels=y, modality="image", classes=("dark", "bright"), split="x")

    return FinetuneTask("squares", make(6), make(5), 0, {"data": "squares"})


# -- pure pieces -----------------------------------------------------------------------------------------


def test_stratified_split_is_per_class_seeded_and_disjoint() -> None:
    y = np.array([0] * 10 + [1] * 5 + [2] * 2)
    tr, va = stratified_split(y, 0.2, seed=3)
    assert np.intersect1d(tr, va).size == 0 and np.union1d(tr, va).tolist() == list(range(17))
    assert np.bincount(y[va]).tolist() == [2, 1, 1]  # round(0.2 n), at least one, never all
    assert np.array_equal(stratified_split(y, 0.2, seed=3)[1], va)
    assert not np.array_equal(stratified_split(y, 0.2, seed=4)[1], va)
    # A class's draw does not depend on the other classes.
    va0 = va[y[va] == 0]
    assert np.array_equal(stratified_split(y[:10], 0.2, seed=3)[1], va0)


def test_select_config_best_validation_then_loss_then_grid_order() -> None:
    runs = pd.DataFrame(
        {
            "lr": [0.01, 0.01, 0.1, 0.1],
            "weight_decay": [0.0, 1e-3, 0.0, 1e-3],
            "val_accuracy": [0.70, 0.80, 0.80, 0.60],
            "val_loss": [0.5, 0.40, 0.35, 0.2],
        }
    )
    assert select_config(runs) == (0.1, 0.0)  # tie on accuracy: lower loss wins
    runs["val_loss"] = 0.3
    assert select_config(runs) == (0.01, 1e-3)  # full tie: first in grid order
    assert select_config(runs, grid=[(0.1, 0.0), (0.01, 1e-3)]) == (0.1, 0.0)
    with pytest.raises(ValueError, match="no runs"):
        select_config(runs.iloc[:0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"protocol": "lora"}, "protocol must be one of full, linear"),
        ({"lrs": ()}, "lrs must hold at least one value"),
        ({"lrs": (0.1, 0.1)}, "lrs has duplicate values"),
        ({"lrs": (-0.1,)}, "learning rates must be positive"),
        ({"weight_decays": (-1.0,)}, "weight decays must be non-negative"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"val_fraction": 1.0}, "val_fraction must lie strictly between 0 and 1"),
        ({"head_lr_multiplier": 0.0}, "head_lr_multiplier must be positive"),
        ({"probe_epochs": -1}, "probe_epochs must be at least 0"),
        ({"max_grad_norm": 0.0}, "max_grad_norm must be positive"),
    ],
)
def test_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FinetuneConfig(**kwargs)


def test_recipe_excludes_seeds_and_device() -> None:
    recipe = LINEAR.recipe()
    assert "seeds" not in recipe and "device" not in recipe and "head_lr_multiplier" not in recipe
    assert recipe["epochs"] == 8 and recipe["nesterov"] is True and recipe["momentum"] == 0.9
    assert FinetuneConfig().resolved_epochs == 10 and FinetuneConfig(protocol="linear").resolved_epochs == 30


# -- the driver ------------------------------------------------------------------------------------------


class _Counter:
    """Wraps ``Trainer.run`` to count calls and optionally fail on the k-th."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_on: int | None = None) -> None:
        self.calls: list[tuple[float, float, int]] = []
        self.fail_on = fail_on
        original = ft.Trainer.run

        def run(trainer: ft.Trainer, lr: float, wd: float, seed: int) -> ft.RunResult:
            self.calls.append((lr, wd, seed))
            if self.fail_on is not None and len(self.calls) == self.fail_on:
                raise KeyboardInterrupt("killed")
            return original(trainer, lr, wd, seed)

        monkeypatch.setattr(ft.Trainer, "run", run)


def test_linear_protocol_grid_selection_and_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = _Counter(monkeypatch)
    task = _features_task()
    changes: list[int] = []
    with ResultsStore(":memory:") as store:
        picked = finetune_checkpoint(
            "unused", task, LINEAR, store, checkpoint="feat", on_change=lambda: changes.append(1)
        )
        runs = store.table("finetune_runs")
        assert len(runs) == 4 + 2 and len(counter.calls) == 6
        grid = runs[runs.seed == 0]
        best = grid.sort_values("val_accuracy").iloc[-1]
        chosen = grid[grid.selected == 1]
        assert len(chosen) == 1 and chosen.val_accuracy.iloc[0] == best.val_accuracy
        lr, wd = chosen.lr.iloc[0], chosen.weight_decay.iloc[0]
        later = runs[runs.seed > 0]
        assert set(zip(later.lr, later.weight_decay, strict=True)) == {(lr, wd)} and later.selected.all()
        assert picked.seed.tolist() == [0, 1, 2] and (picked.lr == lr).all()
        assert picked.test_accuracy.min() > 0.8  # 3-sigma separation is easy
        config = json.loads(runs.config.iloc[0])
        assert config["n_train"] + config["n_val"] == 24 and config["epochs"] == 8 and "val_loss" in config
        assert len(changes) == 7  # six runs plus the selection
        summary = summarize_runs(runs)
        assert summary.seeds.tolist() == [3] and summary["mean"].iloc[0] == pytest.approx(
            picked.test_accuracy.mean()
        )


def test_resume_skips_recorded_keys_and_new_seeds_run_only_the_selected_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    counter = _Counter(monkeypatch)
    task = _features_task()
    with ResultsStore(tmp_path / "r.sqlite") as store:
        finetune_checkpoint("unused", task, LINEAR, store, checkpoint="feat")
    first = len(counter.calls)
    with ResultsStore(tmp_path / "r.sqlite") as store:
        before = store.table("finetune_runs")
        finetune_checkpoint("unused", task, LINEAR, store, checkpoint="feat")
        assert len(counter.calls) == first  # nothing re-run
        more = FinetuneConfig(**{**LINEAR.__dict__, "seeds": (0, 1, 2, 3)})
        finetune_checkpoint("unused", task, more, store, checkpoint="feat")
        assert counter.calls[first:] == [(*counter.calls[first - 1][:2], 3)]
        after = store.table("finetune_runs")
        pd.testing.assert_frame_equal(
            after.iloc[: len(before)].drop(columns="created"), before.drop(columns="created")
        )


def test_killed_run_leaves_no_partial_row_and_resume_redoes_only_it(monkeypatch: pytest.MonkeyPatch) -> None:
    task = _features_task()
    with ResultsStore(":memory:") as store:
        counter = _Counter(monkeypatch, fail_on=3)
        with pytest.raises(KeyboardInterrupt):
            finetune_checkpoint("unused", task, LINEAR, store, checkpoint="feat")
        runs = store.table("finetune_runs")
        assert len(runs) == 2 and runs.test_accuracy.notna().all() and not runs.selected.any()
        killed = counter.calls[2]
        counter = _Counter(monkeypatch)
        finetune_checkpoint("unused", task, LINEAR, store, checkpoint="feat")
        assert (
            counter.calls[0] == killed and len(counter.calls) == 4
        )  # the killed run, the last grid run, 2 seeds
        assert len(store.table("finetune_runs")) == 6


def test_runs_are_deterministic_given_the_seed() -> None:
    task = _features_task()
    with ResultsStore(":memory:") as a, ResultsStore(":memory:") as b:
        ra = finetune_checkpoint("unused", task, LINEAR, a, checkpoint="feat")
        rb = finetune_checkpoint("unused", task, LINEAR, b, checkpoint="feat")
    pd.testing.assert_frame_equal(ra, rb)


def test_recorded_runs_of_another_configuration_are_an_error() -> None:
    task = _features_task()
    with ResultsStore(":memory:") as store:
        finetune_checkpoint("unused", task, LINEAR, store, checkpoint="feat")
        other = FinetuneConfig(**{**LINEAR.__dict__, "epochs": 9})
        with pytest.raises(ValueError, match="recorded under another configuration"):
            finetune_checkpoint("unused", task, other, store, checkpoint="feat")
        # Another checkpoint name is another key: fine.
        finetune_checkpoint("unused", task, other, store, checkpoint="feat-9")


def test_runs_recorded_with_other_weights_are_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from ckptrank.zoo import ZOO, pretrain

    pretrain(ZOO["cnn-random"], tmp_path)
    spec = f"zoo:cnn-random?dir={tmp_path}"
    cfg = FinetuneConfig(protocol="linear", lrs=(0.1,), weight_decays=(0.0,), epochs=2, seeds=(0,))
    with ResultsStore(":memory:") as store:
        finetune_checkpoint(spec, _image_task(), cfg, store, checkpoint="c")
        assert json.loads(store.table("finetune_runs").config.iloc[0])["weights_fingerprint"]
        pretrain(dataclasses.replace(ZOO["cnn-random"], seed=7), tmp_path)  # same file name, new weights
        more = FinetuneConfig(**{**cfg.__dict__, "seeds": (0, 1)})
        counter = _Counter(monkeypatch)
        with pytest.raises(ValueError, match="made with other weights"):
            finetune_checkpoint(spec, _image_task(), more, store, checkpoint="c")
        assert counter.calls == []  # refused as soon as the checkpoint loaded, before any training
        assert len(store.table("finetune_runs")) == 1


def test_features_tasks_accept_only_the_linear_protocol() -> None:
    with ResultsStore(":memory:") as store, pytest.raises(ValueError, match="only protocol 'linear'"):
        finetune_checkpoint("unused", _features_task(), FinetuneConfig(seeds=(0,)), store)


def test_full_protocol_restores_pretrained_weights_between_runs() -> None:
    from ckptrank.adapters import load_checkpoint

    task = _image_task()
    cfg = FinetuneConfig(
        protocol="full", lrs=(0.05,), weight_decays=(0.0, 1e-3), epochs=2, batch_size=4, seeds=(0, 1)
    )
    ckpt = load_checkpoint("zoo:cnn-random")
    trainer = ft.FullTrainer(ckpt, task, cfg)
    before = {k: v.clone() for k, v in trainer.initial.items()}
    r1 = trainer.run(0.05, 0.0, 0)
    trained = {k: v.clone() for k, v in ckpt.module.state_dict().items()}
    assert any(not torch.equal(trained[k], before[k]) for k in before)  # the backbone was fine-tuned
    r2 = trainer.run(0.05, 0.0, 0)
    assert (r1.val_accuracy, r1.test_accuracy, r1.val_loss) == (
        r2.val_accuracy,
        r2.test_accuracy,
        r2.val_loss,
    )
    assert all(torch.equal(trainer.initial[k], before[k]) for k in before)
    assert r1.n_train + r1.n_val == 12 and r1.n_test == 10 and r1.steps == 2 * 3


def test_full_protocol_end_to_end_with_an_intermediate_layer() -> None:
    task = _image_task()
    cfg = FinetuneConfig(
        protocol="full", lrs=(0.05,), weight_decays=(0.0,), epochs=2, batch_size=4, seeds=(0, 1)
    )
    with ResultsStore(":memory:") as store:
        summary = finetune({"cnn@stage2": "zoo:cnn-random@stage2"}, [task], cfg, store, suite="t")
        assert summary.checkpoint.tolist() == ["cnn@stage2"] and summary.seeds.tolist() == [2]
        assert 0.0 <= summary["mean"].iloc[0] <= 1.0


def test_head_lr_multiplier_changes_full_fine_tuning() -> None:
    from ckptrank.adapters import load_checkpoint

    task = _image_task()
    base = dict(protocol="full", lrs=(0.01,), weight_decays=(0.0,), epochs=1, batch_size=4, seeds=(0,))
    r1 = ft.FullTrainer(load_checkpoint("zoo:cnn-random"), task, FinetuneConfig(**base)).run(0.01, 0.0, 0)
    r10 = ft.FullTrainer(
        load_checkpoint("zoo:cnn-random"), task, FinetuneConfig(**base, head_lr_multiplier=10)
    ).run(0.01, 0.0, 0)
    assert r1.val_loss != r10.val_loss


def test_full_head_input_is_normalised_and_batchnorm_statistics_stay_frozen() -> None:
    from ckptrank.adapters import load_checkpoint

    task = _image_task()
    ckpt = load_checkpoint("zoo:cnn-fm04")
    cfg = FinetuneConfig(
        protocol="full", lrs=(0.05,), weight_decays=(0.0,), epochs=1, batch_size=4, seeds=(0,)
    )
    trainer = ft.FullTrainer(ckpt, task, cfg)
    feats = trainer._features(trainer.x_pool, trainer.train_idx)
    z = (feats - trainer.mean) / trainer.std
    assert torch.allclose(z.mean(0), torch.zeros(z.shape[1]), atol=1e-4)
    assert float((z**2).sum(1).mean()) == pytest.approx(1.0, rel=1e-4)
    stats = {k: v.clone() for k, v in ckpt.module.state_dict().items() if "running" in k}
    trainer.run(0.05, 0.0, 0)
    after = ckpt.module.state_dict()
    assert stats and all(torch.equal(after[k], v) for k, v in stats.items())
    thawed = ft.FullTrainer(ckpt, task, FinetuneConfig(**{**cfg.__dict__, "freeze_batchnorm": False}))
    thawed.run(0.05, 0.0, 0)
    assert any(not torch.equal(ckpt.module.state_dict()[k], v) for k, v in stats.items())


def test_probe_stage_fits_the_head_on_frozen_features_first() -> None:
    from ckptrank.adapters import load_checkpoint

    task = _image_task()  # dark vs bright squares: linearly separable for any features
    cfg = FinetuneConfig(
        protocol="full", lrs=(0.01,), weight_decays=(0.0,), epochs=1, batch_size=4, seeds=(0,)
    )
    trainer = ft.FullTrainer(load_checkpoint("zoo:cnn-fm04"), task, cfg)
    head = torch.nn.Linear(trainer.num_features, 2)
    before = {k: v.clone() for k, v in trainer.module.state_dict().items()}
    trainer._probe(head, 0.3, 0.0, seed=0)
    y = trainer.y_pool[torch.as_tensor(trainer.train_idx)]
    assert (head(trainer.probe_x).argmax(1) == y).float().mean() == 1.0
    assert all(
        torch.equal(v, trainer.module.state_dict()[k]) for k, v in before.items()
    )  # backbone untouched
    plain = ft.FullTrainer(
        load_checkpoint("zoo:cnn-fm04"), task, FinetuneConfig(**{**cfg.__dict__, "probe_epochs": 0})
    )
    assert plain.run(0.01, 0.0, 0).val_loss != trainer.run(0.01, 0.0, 0).val_loss


def test_diverged_logits_count_as_wrong() -> None:
    logits = torch.tensor([[2.0, 0.0], [float("nan"), 1.0], [0.0, 3.0]])
    acc, loss = ft._scores(logits, torch.tensor([0, 1, 1]))
    assert acc == pytest.approx(2 / 3) and loss == float("inf")
    acc, loss = ft._scores(logits[[0, 2]], torch.tensor([0, 1]))
    assert acc == 1.0 and np.isfinite(loss)


def test_cli_finetune_linear_on_digits(tmp_path: Path) -> None:
    from ckptrank.cli.main import app

    args = [
        "finetune",
        "zoo:cnn-random",
        "--data",
        "builtin:digits",
        "--protocol",
        "linear",
        "--per-class",
        "5",
        "--test-per-class",
        "3",
        "--lr",
        "0.1",
        "--wd",
        "0",
        "--seeds",
        "2",
        "--epochs",
        "3",
        "--results",
        str(tmp_path / "r.sqlite"),
        "--no-cache",
        "--format",
        "json",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows[0]["checkpoint"] == "zoo:cnn-random" and rows[0]["seeds"] == 2
    again = CliRunner().invoke(app, args)  # resumes: nothing to do, same answer
    assert json.loads(again.output) == rows
    bad = CliRunner().invoke(app, ["finetune", "zoo:cnn-random"])
    assert bad.exit_code != 0


def test_local_finetune_loads_each_checkpoint_once_per_task_and_runs_the_protocol_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loads: list[str] = []
    make = ft._make_trainer

    def counting(spec, *args, **kwargs):
        loads.append(spec)
        return make(spec, *args, **kwargs)

    monkeypatch.setattr(ft, "_make_trainer", counting)
    cfg = FinetuneConfig(protocol="linear", lrs=(0.03, 0.3), weight_decays=(0.0,), epochs=2, seeds=(0, 1))
    with ResultsStore(":memory:") as store:
        ft.finetune({"a": "unused-a", "b": "unused-b"}, [_features_task()], cfg, store)
        runs = store.table("finetune_runs")
    assert loads == ["unused-a", "unused-b"]
    # each pair whole before the next: grid (seed 0), then the selected configuration's other seed
    assert list(runs.checkpoint) == ["a", "a", "a", "b", "b", "b"]
    assert list(runs.seed) == [0, 0, 1, 0, 0, 1]
