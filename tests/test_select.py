"""``ckptrank.select``: budgets, the halving schedule, resumable runs, and selections on a tiny real task.

The task is UCI digits (10 per class: 80 train, 20 validation) with small zoo checkpoints and a
2-epoch protocol (6 steps per complete run), so a selection takes seconds.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ckptrank import ranking
from ckptrank.data import load_dataset
from ckptrank.select import (
    Budget,
    FinetuneRun,
    default_select_config,
    halving_schedule,
    parse_budget,
    select_checkpoint,
)

MODELS = ["zoo:cnn-fm04", "zoo:cnn-random", "zoo:cnn-fm59"]
CONFIG = default_select_config(epochs=2)  # 80 training samples / 32 = 3 steps per epoch: 6 in all
BUDGET = "12steps"  # 3 candidates, 2 rounds: 2 steps each, then 3 more for the 2 survivors


@pytest.fixture(scope="module")
def pool():
    return load_dataset("builtin:digits", split="train", per_class=10, seed=0)


def _select(pool, out: Path, **kwargs):
    options = {"budget": BUDGET, "config": CONFIG, "min_candidates": 3, "out": out}
    options.update(kwargs)
    return select_checkpoint(pool, MODELS, **options)


def _rows(out: Path, table: str) -> pd.DataFrame:
    with sqlite3.connect(out / "select.sqlite") as conn:
        return pd.read_sql_query(f"SELECT * FROM {table}", conn)


@pytest.fixture(scope="module")
def reference(pool, tmp_path_factory):
    """One uninterrupted selection, shared by the tests that compare against it."""
    out = tmp_path_factory.mktemp("reference")
    return _select(pool, out), out


# -- budgets and schedule ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("2000steps", "steps", 2000.0),
        ("2000 steps", "steps", 2000.0),
        ("1step", "steps", 1.0),
        ("90s", "seconds", 90.0),
        ("30m", "seconds", 1800.0),
        ("1.5h", "seconds", 5400.0),
        ("0.5gpuh", "seconds", 1800.0),
        ("2 GPU-hours", "seconds", 7200.0),
    ],
)
def test_parse_budget(text, kind, value):
    budget = parse_budget(text)
    assert (budget.kind, budget.value) == (kind, value)
    assert parse_budget(budget) is budget


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("30", "is not a number and a unit"),
        ("", "is not a number and a unit"),
        ("m30", "is not a number and a unit"),
        ("-5m", "is not a number and a unit"),
        ("0steps", "must be positive"),
        ("0h", "must be positive"),
        ("2.5steps", "whole number, got 2.5"),
        ("3parsecs", "unknown unit 'parsecs'"),
    ],
)
def test_parse_budget_rejects(text, match):
    with pytest.raises(ValueError, match=match):
        parse_budget(text)


def test_halving_schedule_spends_the_budget_by_rounds():
    rounds = halving_schedule(8, 240, 1000)
    assert [r["survivors"] for r in rounds] == [8, 4, 2]
    # round 0: 240 / (3 * 8) = 10 each; round 1: 160 / (2 * 4) = 20 more; round 2: 80 / 2 = 40 more
    assert [r["steps_to"] for r in rounds] == [10, 30, 70]
    spent = sum(r["survivors"] * (r["steps_to"] - r["steps_from"]) for r in rounds)
    assert spent == 240


def test_halving_schedule_caps_at_the_full_run_and_passes_on_the_rest():
    rounds = halving_schedule(4, 400, 30)
    # round 0 would give 50 each: capped at the run's 30 steps; nothing is left to train after it
    assert [r["steps_to"] for r in rounds] == [30, 30]
    odd = halving_schedule(3, 6, 100)
    assert [(r["survivors"], r["kept"]) for r in odd] == [(3, 2), (2, 1)]


def test_halving_schedule_refuses_a_budget_below_one_step_per_candidate_and_round():
    with pytest.raises(
        ValueError, match=r"budget of 14 steps .* 5 candidates .* 3 halving rounds \(at least 15 steps\)"
    ):
        halving_schedule(5, 14, 100)
    with pytest.raises(ValueError, match="at least 2 candidates"):
        halving_schedule(1, 100, 100)


# -- one run -------------------------------------------------------------------------------------------------


def test_run_in_slices_is_the_protocol_run(pool, tmp_path):
    """Slices, and a save / restore in the middle, give exactly the project's own full-protocol run."""
    from ckptrank.adapters import load_checkpoint
    from ckptrank.bench.finetune import FinetuneTask, FullTrainer

    run = FinetuneRun("zoo:cnn-fm04", pool, CONFIG, seed=3, split_seed=0)
    assert (run.total_steps, run.n_train, run.n_val) == (6, 80, 20)
    assert run.advance(2) == 2
    run.save_state(tmp_path / "state.safetensors")
    assert json.loads((tmp_path / "state.safetensors.json").read_text())["step"] == 2
    assert run.advance(100) == 4 and run.step == 6
    assert run.advance(1) == 0  # complete
    task = FinetuneTask("digits", pool, pool.select([0]), 0)
    expected = FullTrainer(load_checkpoint("zoo:cnn-fm04"), task, CONFIG).run(0.03, 0.0, 3)
    assert run.evaluate() == (expected.val_accuracy, expected.val_loss)

    restored = FinetuneRun("zoo:cnn-fm04", pool, CONFIG, seed=3, split_seed=0, restoring=True)
    restored.load_state(tmp_path / "state.safetensors")
    assert restored.step == 2
    restored.advance(1)
    restored.advance(3)
    assert restored.evaluate() == run.evaluate()


def test_restoring_another_runs_state_is_refused(pool, tmp_path):
    run = FinetuneRun("zoo:cnn-fm04", pool, CONFIG, seed=0)
    run.advance(1)
    run.save_state(tmp_path / "s.safetensors")
    other = FinetuneRun("zoo:cnn-fm59", pool, CONFIG, seed=0, restoring=True)
    with pytest.raises(ValueError, match=r"weights_fingerprint .* belongs to another run"):
        other.load_state(tmp_path / "s.safetensors")


def test_run_refuses_features_and_grids(pool):
    features = load_dataset("builtin:digits", split="train", per_class=10, seed=0)
    from dataclasses import replace

    as_features = replace(features, modality="features", features=np.zeros((len(features), 4)), items=None)
    with pytest.raises(ValueError, match="precomputed features"):
        FinetuneRun("zoo:cnn-fm04", as_features, CONFIG)
    grid = default_select_config()
    grid = replace(grid, lrs=(0.01, 0.03))
    with pytest.raises(ValueError, match="one learning rate and one weight decay"):
        FinetuneRun("zoo:cnn-fm04", pool, grid)


# -- selections ----------------------------------------------------------------------------------------------


def test_selection_chooses_and_halves(reference):
    result, _ = reference
    candidates = list(result.candidates["checkpoint"])
    assert sorted(candidates) == sorted(MODELS)
    assert result.chosen in candidates
    outcomes = dict(zip(result.candidates["checkpoint"], result.candidates["outcome"], strict=True))
    assert outcomes[result.chosen] == "chosen"
    assert sorted(outcomes.values()) == ["chosen", "dropped in round 0", "dropped in round 1"]
    stages = result.stages
    assert list(stages.groupby("round").size()) == [3, 2]
    assert set(stages.loc[stages["round"] == 0, "steps_to"]) == {2}
    assert set(stages.loc[stages["round"] == 1, "steps_to"]) == {5}
    assert result.used["steps"] == 12 and result.used["budget_steps"] == 12
    # the dropped one had the lowest validation accuracy of round 0, the winner the highest of round 1
    first = stages[stages["round"] == 0].set_index("checkpoint")["val_accuracy"]
    dropped0 = next(c for c, o in outcomes.items() if o == "dropped in round 0")
    assert first[dropped0] == first.min()
    second = stages[stages["round"] == 1].set_index("checkpoint")["val_accuracy"]
    assert second[result.chosen] == second.max()
    assert result.n_val == 20 and result.n_train == 80
    # the curves: step 0 and every round end of every candidate
    assert len(result.curves) == 3 + 3 + 2


def test_selection_writes_curves_report_and_json(reference):
    result, out = reference
    png = out / "curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.html").read_text()
    assert "data:image/png;base64," in report and result.chosen in report
    assert "<script" not in report and "http" not in report  # self-contained
    summary = json.loads((out / "selection.json").read_text())
    assert summary["chosen"] == result.chosen
    assert len(summary["stages"]) == 5
    # only the chosen candidate's state remains
    states = sorted(p.name for p in (out / "state").iterdir())
    assert len(states) == 2 and all(".step5." in s for s in states)


def test_second_call_resumes_without_training(reference, pool, monkeypatch):
    result, out = reference
    before = _rows(out, "stages")

    def no_training(self, *args, **kwargs):
        raise AssertionError("a finished selection was trained again")

    def no_ranking(*args, **kwargs):
        raise AssertionError("stage 1 was re-run")

    monkeypatch.setattr(FinetuneRun, "advance", no_training)
    monkeypatch.setattr(ranking, "rank", no_ranking)
    again = _select(pool, out)
    assert again.chosen == result.chosen
    pd.testing.assert_frame_equal(_rows(out, "stages"), before)
    pd.testing.assert_frame_equal(again.stages, result.stages)


class _KilledError(Exception):
    """Stands for the process being killed."""


def test_killed_after_stage1_resumes_to_the_same_choice(reference, pool, tmp_path, monkeypatch):
    result, _ = reference
    calls = []
    real_rank = ranking.rank

    def counting_rank(*args, **kwargs):
        calls.append(1)
        return real_rank(*args, **kwargs)

    monkeypatch.setattr(ranking, "rank", counting_rank)

    def kill(event, info):
        if event == "stage1":
            raise _KilledError

    with pytest.raises(_KilledError):
        _select(pool, tmp_path, callback=kill)
    assert len(_rows(tmp_path, "stage1")) == 3 and len(_rows(tmp_path, "stages")) == 0
    resumed = _select(pool, tmp_path)
    assert len(calls) == 1  # stage 1 was read back, not re-run
    assert resumed.chosen == result.chosen
    cols = ["round", "checkpoint", "steps_to", "val_accuracy", "val_loss"]
    pd.testing.assert_frame_equal(resumed.stages[cols], result.stages[cols])


def test_killed_in_stage2_resumes_from_the_saved_state(reference, pool, tmp_path):
    """Killed after round 1's first unit: round 0 is not re-trained, round 1 continues from disk."""
    result, _ = reference
    seen = []

    def kill(event, info):
        if event == "unit":
            seen.append(info)
            if info["round"] == 1:
                raise _KilledError

    with pytest.raises(_KilledError):
        _select(pool, tmp_path, callback=kill)
    recorded = _rows(tmp_path, "stages")
    assert list(recorded["round"]) == [0, 0, 0, 1]
    log = []
    resumed = _select(pool, tmp_path, log=log.append)
    after = _rows(tmp_path, "stages")
    pd.testing.assert_frame_equal(after.iloc[:4].reset_index(drop=True), recorded)  # untouched
    assert len(after) == 5
    assert any("restored at step 2" in line for line in log)
    assert resumed.chosen == result.chosen
    cols = ["round", "checkpoint", "steps_to", "val_accuracy", "val_loss"]
    mine = resumed.stages[cols].sort_values(["round", "checkpoint"]).reset_index(drop=True)
    theirs = result.stages[cols].sort_values(["round", "checkpoint"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, theirs)


def test_other_settings_in_the_folder_are_refused_unless_overwrite(reference, pool, tmp_path):
    _, out = reference
    with pytest.raises(ValueError, match=r"other settings \(budget .*'value': 12.0.* vs .*14.0.*--overwrite"):
        _select(pool, out, budget="14steps")
    fresh = tmp_path / "copy"
    _select(pool, fresh, budget="12steps")
    redone = _select(pool, fresh, budget="14steps", overwrite=True)
    assert redone.used["budget_steps"] == 14


def test_save_best_writes_the_winners_weights(reference, pool, tmp_path):
    from safetensors.torch import load_file

    result, out = reference
    again = _select(pool, out, save_best=tmp_path / "best")
    weights = load_file(str(tmp_path / "best" / "model.safetensors"))
    card = json.loads((tmp_path / "best" / "model.json").read_text())
    assert card["checkpoint"] == result.chosen and card["steps"] == 5
    assert {"head.weight", "head.bias", "head_input.mean", "head_input.scale"} <= set(weights)
    assert weights["head.weight"].shape == (10, weights["head_input.mean"].shape[0])
    backbone = [k for k in weights if k.startswith("backbone.")]
    assert backbone
    # the weights were fine-tuned: they differ from the pre-trained checkpoint's
    from ckptrank.adapters import load_checkpoint

    pre = load_checkpoint(result.chosen).module.state_dict()
    changed = [k for k in backbone if not torch.equal(weights[k], pre[k[len("backbone.") :]])]
    assert changed
    assert again.files["best_weights"] == tmp_path / "best" / "model.safetensors"


def test_beta_eff_and_combined_signals_read_beta(pool, tmp_path):
    result = select_checkpoint(
        pool, MODELS[:2], budget="4steps", config=CONFIG, signal="beta_eff", out=tmp_path
    )
    stage = result.stages.iloc[0]
    assert math.isfinite(stage["beta_eff"]) and stage["signal"] == stage["beta_eff"]
    order = result.stages.sort_values("beta_eff", ascending=False)
    assert order["checkpoint"].iloc[0] == result.chosen


def test_time_budget_trains_and_accounts_seconds(pool, tmp_path):
    result = select_checkpoint(pool, MODELS[:2], budget="1s", config=CONFIG, out=tmp_path)
    assert result.budget == Budget("seconds", 1.0, "1s", "s")
    assert (result.stages["steps_to"] >= 1).all()  # at least one step per round, whatever the time
    assert result.used["seconds"] > 0 and result.used["over_budget_seconds"] >= 0
    if result.used["over_budget_seconds"] > 0:
        assert any("more than the budget" in note for note in result.notes)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"budget": "5"}, "is not a number and a unit"),
        ({"budget": "12steps", "signal": "loss"}, "unknown signal 'loss'; choose one of val_accuracy"),
        ({"budget": "12steps", "max_candidates": 1}, "max_candidates must be an integer of at least 2"),
        ({"budget": "12steps", "min_candidates": 4, "max_candidates": 3}, "min_candidates must be"),
        ({"budget": "5steps"}, r"budget of 5 steps .* 3 candidates .*\(at least 6 steps\)"),
    ],
)
def test_bad_options_are_one_line_errors(pool, tmp_path, kwargs, match):
    options = {"config": CONFIG, "min_candidates": 3, "out": tmp_path, **kwargs}
    with pytest.raises(ValueError, match=match) as info:
        select_checkpoint(pool, MODELS, **options)
    assert "\n" not in str(info.value)


def test_one_checkpoint_is_refused(pool, tmp_path):
    with pytest.raises(ValueError, match="at least 2"):
        select_checkpoint(pool, MODELS[:1], budget="10steps", out=tmp_path)


def test_a_candidate_that_cannot_be_fine_tuned_is_dropped_with_a_note(pool, tmp_path, monkeypatch):
    real_init = FinetuneRun.__init__

    def failing_init(self, checkpoint, *args, **kwargs):
        if checkpoint == "zoo:cnn-random":
            raise ValueError("protocol 'full' needs a PyTorch checkpoint")
        real_init(self, checkpoint, *args, **kwargs)

    monkeypatch.setattr(FinetuneRun, "__init__", failing_init)
    result = _select(pool, tmp_path)
    outcomes = dict(zip(result.candidates["checkpoint"], result.candidates["outcome"], strict=True))
    assert outcomes["zoo:cnn-random"] == "failed"
    assert result.chosen != "zoo:cnn-random"
    assert any("zoo:cnn-random could not be fine-tuned" in note for note in result.notes)
    failed = result.stages[result.stages["checkpoint"] == "zoo:cnn-random"]
    assert list(failed["steps_to"]) == [0]  # it spent no step of the budget
