"""The built-in ``neucrab-mini-v2`` suite: its definition (tasks, 112 px, bracketing grid, validation
sizes), the grid-edge and plateau diagnostics, and a tiny resumable build that records the curves."""

from __future__ import annotations

import dataclasses
import filecmp
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ckptrank.bench import finetune as ft
from ckptrank.bench import neucrab_mini as nm
from ckptrank.bench import neucrab_mini_v2 as v2
from ckptrank.bench.store import ResultsStore
from ckptrank.bench.suite import get_suite, list_suites


def test_suite_registers_with_eight_tasks_both_tracks_and_v1_untouched() -> None:
    assert {"neucrab-mini", "neucrab-mini-v1", "neucrab-mini-v2"} <= set(list_suites())
    suite = get_suite("neucrab-mini-v2")
    assert suite.name == "neucrab-mini-v2" and set(suite.tasks) == set(v2.TASKS)
    assert "ckptrank finetune --suite neucrab-mini-v2 --protocol linear" in suite.provenance
    tracks = [t.track for t in v2.TASKS.values()]
    assert len(tracks) >= 8 and tracks.count("image") >= 4 and tracks.count("text") >= 4
    assert set(nm.TASKS) <= set(v2.TASKS)  # v1's five tasks, with bigger pools
    for name, task in nm.TASKS.items():
        assert v2.TASKS[name].data == task.data and v2.TASKS[name].per_class > task.per_class
    assert "wordnet-verbs" not in v2.TASKS and not any("verb" in t.data for t in v2.TASKS.values())
    assert set(suite.controls()) == {"cnn-random", "resnet-random", "efficientnet-lite0-random"} | {
        "minilm-random",
        "bow-random",
    }
    groups = {c.group for c in v2.CHECKPOINTS.values()}
    assert {"imagenet", "layers", "self-trained", "stages", "random-init", "pretrained"} <= groups
    # the unversioned name is the current version (v2); v1 stays loadable, with its own files and protocols
    current = get_suite("neucrab-mini")
    assert current.name == "neucrab-mini-v2" and set(current.tasks) == set(v2.TASKS)
    assert current.resolve_protocol() == "linear"  # until the full protocol is built
    first = get_suite("neucrab-mini-v1")
    assert first.name == "neucrab-mini-v1" and nm.suite_spec().csv_stem == "neucrab_mini"
    assert first.resolve_protocol() == "full" and not any("not built yet" in n for n in first.notes)
    assert any("linear protocol's: full is defined but not built yet" in n for n in current.notes)
    assert v2.SPEC.csv_stem != nm.suite_spec().csv_stem and v2.SPEC.store_name != nm.suite_spec().store_name


def test_checkpoints_run_efficientnet_at_112_px_and_name_real_layers() -> None:
    efficientnets = [c.spec for c in v2.CHECKPOINTS.values() if "efficientnet" in c.spec]
    assert len(efficientnets) >= 6
    for spec in efficientnets:
        sizes = [int(p[5:]) for p in spec.partition("?")[2].split("&") if p.startswith("size=")]
        assert sizes and sizes[0] >= 112, spec
    layers = [c.spec for c in v2.CHECKPOINTS.values() if "@" in c.spec]
    assert sum("efficientnet-lite0@" in s for s in layers) == 2
    assert sum("all-mpnet-base-v2@" in s for s in layers) == 2
    assert sum("all-minilm-l6-v2@" in s for s in layers) == 2


def test_the_linear_grid_brackets_and_full_is_defined() -> None:
    lin, full = v2.PROTOCOL_CONFIGS["linear"], v2.PROTOCOL_CONFIGS["full"]
    assert min(lin.lrs) <= 0.003 and max(lin.lrs) >= 3.0
    steps = np.diff(np.log10(sorted(lin.lrs)))
    assert steps.max() <= 0.53  # half-decade steps (factors of 3 and 3.33)
    assert set(lin.weight_decays) == {0.0, 1e-3} and lin.resolved_epochs >= 100
    assert len(full.lrs) >= 4 and max(full.lrs) / min(full.lrs) >= 10
    for cfg in (lin, full):
        assert cfg.seeds == (0, 1, 2)


def test_validation_sets_hold_at_least_20_per_class_where_the_pool_allows() -> None:
    cfg = v2.PROTOCOL_CONFIGS["linear"]
    for name in ("fashion-footwear", "digits", "wordnet-abstract"):
        task = nm.load_suite_task(name, v2.SPEC)
        pool = np.asarray(task.pool.labels)
        _, val = ft.stratified_split(pool, cfg.val_fraction, task.split_seed)
        per_class = np.bincount(pool[val], minlength=task.n_classes)
        assert per_class.min() >= 20, (name, per_class)
        assert len(task.test) >= 50 * task.n_classes or name == "digits"
    # Every task asks for a pool of at least 100 per class (80 % train, 20 % = 20 validation).
    assert all(t.per_class is not None and t.per_class >= 100 for t in v2.TASKS.values())
    assert all(t.test_per_class is None or t.test_per_class >= 50 for t in v2.TASKS.values())


def _runs(selected_lrs: list[float]) -> pd.DataFrame:
    rows = []
    for i, lr_sel in enumerate(selected_lrs):
        for lr in (0.01, 0.1, 1.0):
            rows.append(
                dict(
                    task="t", checkpoint=f"c{i}", protocol="linear", seed=0, lr=lr, selected=int(lr == lr_sel)
                )
            )
        rows.append(dict(task="t", checkpoint=f"c{i}", protocol="linear", seed=1, lr=lr_sel, selected=1))
    return pd.DataFrame(rows)


def test_lr_edge_fraction_by_hand() -> None:
    runs = _runs([0.01, 0.1, 0.1, 1.0])
    edges = nm.lr_edges(runs, (0.01, 0.1, 1.0))
    assert edges.edge.tolist() == ["low", "", "", "high"]
    assert nm.lr_edge_fraction(runs, (0.01, 0.1, 1.0)) == 0.5
    assert nm.lr_edge_fraction(_runs([0.1, 0.1]), (0.01, 0.1, 1.0)) == 0.0
    assert math.isnan(nm.lr_edge_fraction(_runs([]), (0.01, 0.1, 1.0)))


def test_plateau_gain_by_hand() -> None:
    curve_10 = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9]  # last 20 %: epochs 9-10
    runs = pd.DataFrame(
        {
            "checkpoint": ["rising", "flat", "short", "none"],
            "val_curve": [json.dumps(curve_10), json.dumps([0.5] * 10), json.dumps([0.2, 0.3]), ""],
        }
    )
    out = nm.plateau_gain(runs).set_index("checkpoint")
    assert list(out.index) == ["rising", "flat", "short"]  # no curve: left out
    assert out.loc["rising", "late_gain"] == pytest.approx(0.9 - 0.8)
    assert out.loc["flat", "late_gain"] == 0.0
    assert out.loc["short", "late_gain"] == pytest.approx(0.1)  # at least one epoch back
    assert out.loc["rising", "epochs_in_curve"] == 10
    assert nm.plateau_gain(runs, fraction=0.5).set_index("checkpoint").loc["rising", "late_gain"] == (
        pytest.approx(0.9 - 0.5)
    )
    with pytest.raises(ValueError, match="val_curve"):
        nm.plateau_gain(runs.drop(columns="val_curve"))


def test_a_run_records_its_validation_curve() -> None:
    rng = np.random.default_rng(0)
    from ckptrank.data import TargetDataset

    x = rng.normal(size=(40, 5))
    x[:, 0] += 2.0 * np.repeat([0, 1], 20)
    pool = TargetDataset(
        items=x, labels=np.repeat([0, 1], 20), modality="features", features=x, classes=("a", "b"), split="x"
    )
    task = ft.FinetuneTask("toy", pool, pool, 0, {})
    cfg = ft.FinetuneConfig(protocol="linear", lrs=(0.1,), weight_decays=(0.0,), epochs=7, batch_size=8)
    trainer = ft.LinearTrainer(None, task, cfg, None, 64)
    result = trainer.run(0.1, 0.0, seed=0)
    assert len(result.val_curve) == 7 and result.val_curve[-1] == pytest.approx(result.val_accuracy, abs=1e-6)
    assert trainer.run(0.1, 0.0, seed=0).val_curve == result.val_curve  # deterministic given the seed
    assert len(trainer.run(0.1, 0.0, seed=1).val_curve) == 7


def test_a_full_fine_tuning_run_records_its_curve_without_changing_its_result() -> None:
    import ckptrank.zoo  # noqa: F401
    from ckptrank.adapters import load_checkpoint

    task = ft.load_task("builtin:digits", per_class=5, test_per_class=3, seed=0)
    cfg = ft.FinetuneConfig(protocol="full", lrs=(0.01,), weight_decays=(0.0,), epochs=3, probe_epochs=1)
    trainer = ft.FullTrainer(load_checkpoint("zoo:cnn-random"), task, cfg)
    first = trainer.run(0.01, 0.0, seed=0)
    assert len(first.val_curve) == 3 and first.val_curve[-1] == pytest.approx(first.val_accuracy, abs=1e-6)
    again = trainer.run(0.01, 0.0, seed=0)
    assert (again.val_accuracy, again.val_loss, again.test_accuracy) == (
        first.val_accuracy,
        first.val_loss,
        first.test_accuracy,
    )


def test_tiny_build_writes_curves_and_resumes_without_rerunning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny_cfg = ft.FinetuneConfig(
        protocol="linear", lrs=(0.01, 0.1, 1.0), weight_decays=(0.0,), epochs=3, seeds=(0, 1, 2)
    )
    spec = dataclasses.replace(
        v2.SPEC,
        tasks={"digits": nm.MiniTask("image", "builtin:digits", 5, 3, 0, "tiny digits")},
        checkpoints={"cnn-random": v2.CHECKPOINTS["cnn-random"]},
        protocol_configs={"linear": tiny_cfg},
    )
    calls: list[tuple[float, int]] = []
    original = ft.Trainer.run

    def counting(self: ft.Trainer, lr: float, wd: float, seed: int) -> ft.RunResult:
        calls.append((lr, seed))
        return original(self, lr, wd, seed)

    monkeypatch.setattr(ft.Trainer, "run", counting)
    kwargs = dict(tracks=("image",), protocols=("linear",), directory=tmp_path, spec=spec)
    summary = nm.build_ground_truth(store_path=tmp_path / "a.sqlite", **kwargs)
    assert len(calls) == 3 + 2 and summary.seeds.tolist() == [3]
    csv = nm.ground_truth_csv("image", tmp_path, spec)
    assert csv.name == "neucrab_mini_v2_image.csv"
    rows = pd.read_csv(csv)
    assert list(rows.columns) == list(v2.CSV_COLUMNS) and len(rows) == 5 and rows.selected.sum() == 3
    assert (rows.n_val == 10).all() and (rows.n_test == 30).all()  # 1 of 5 per class, 3 test per class
    curves = rows.val_curve.map(json.loads)
    assert (curves.map(len) == 3).all()
    assert np.allclose(curves.map(lambda c: c[-1]), rows.val_accuracy, atol=1e-6)
    before = csv.read_bytes()
    # Another session: a fresh store, resumed from the CSV alone; nothing is re-run, nothing changes.
    nm.build_ground_truth(store_path=tmp_path / "b.sqlite", **kwargs)
    assert len(calls) == 5 and csv.read_bytes() == before
    status = nm.ground_truth_status(tmp_path, spec).set_index("track")
    assert status.loc["image", "runs"] == status.loc["image", "runs_expected"] == 5
    suite = nm.load_suite(tmp_path, spec)
    assert suite.name == "neucrab-mini-v2" and suite.default_protocol == "linear"
    assert len(nm.plateau_gain(rows)) == 5 and 0.0 <= nm.lr_edge_fraction(rows, tiny_cfg.lrs) <= 1.0
    with ResultsStore(tmp_path / "b.sqlite") as store:
        recorded = store.table("finetune_runs", suite="neucrab-mini-v2")
    assert len(recorded) == 5 and all(len(json.loads(c)["val_curve"]) == 3 for c in recorded.config)


def test_v1_files_round_trip_byte_identical(tmp_path: Path) -> None:
    with ResultsStore(tmp_path / "s.sqlite") as store:
        for track in nm.TRACKS:
            assert nm.import_csv(store, track) > 0
            out = nm.write_csv(store, track, tmp_path)
            assert filecmp.cmp(out, nm.ground_truth_csv(track), shallow=False), track


def test_cli_names_v2_in_its_argument_errors() -> None:
    from typer.testing import CliRunner

    from ckptrank.cli.main import app

    result = CliRunner().invoke(app, ["finetune", "--suite", "neucrab-mini-v2", "--task", "cifar"])
    assert isinstance(result.exception, ValueError)
    assert "--task 'cifar' is not in neucrab-mini-v2" in str(result.exception)
    assert "wordnet-abstract" in str(result.exception)


def test_a_partly_built_full_protocol_does_not_become_the_default(tmp_path) -> None:
    """One finished full run must not silently replace the complete linear truth as the default."""
    for track in nm.TRACKS:
        committed = nm.ground_truth_csv(track, None, v2.SPEC)
        frame = pd.read_csv(committed)
        if track == "image":
            one = (
                frame[(frame["protocol"] == "linear") & (frame["selected"] == 1)]
                .head(1)
                .assign(protocol="full")
            )
            frame = pd.concat([frame, one], ignore_index=True)
        frame.to_csv(tmp_path / committed.name, index=False)
    suite = nm.load_suite(tmp_path, v2.SPEC)
    assert set(suite.protocols) == {"full", "linear"} and suite.resolve_protocol() == "linear"
    pairs = len(suite.ground_truth.query("protocol == 'linear'").groupby(["task", "checkpoint"]))
    assert any(f"full is built for 1 of {pairs} (task, checkpoint) pairs" in n for n in suite.notes)
