"""The built-in ``neucrab-mini`` suite: its definition, task data, committed ground truth, and a
regenerated slice of that ground truth checked against the recorded seed spread."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ckptrank.zoo  # noqa: F401  # registers zoo:
from ckptrank.adapters import load_checkpoint
from ckptrank.bench import finetune as ft
from ckptrank.bench import neucrab_mini as nm
from ckptrank.bench.store import ResultsStore
from ckptrank.bench.suite import get_suite
from ckptrank.data import load_dataset

#: A regenerated accuracy may differ from the recorded seeds by this much (absolute) beyond their
#: min-max range: test sets of 400 images move in steps of 0.0025, and float summation order
#: (thread count, BLAS build) can flip a few borderline predictions.
TOLERANCE = 0.02


def test_suite_definition_meets_the_benchmark_shape() -> None:
    image = {n: c for n, c in nm.CHECKPOINTS.items() if c.track == "image"}
    text = {n: c for n, c in nm.CHECKPOINTS.items() if c.track == "text"}
    assert len(image) >= 12 and len({c.group for c in image.values()}) >= 3
    assert len(text) >= 6 and len({c.group for c in text.values()}) >= 3
    assert sum(t.track == "image" for t in nm.TASKS.values()) >= 3
    assert sum(t.track == "text" for t in nm.TASKS.values()) >= 2
    assert {"efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"} <= set(image)
    assert {c.group for c in image.values()} >= {"imagenet", "self-trained", "stages", "random-init"}
    for cfg in nm.PROTOCOL_CONFIGS.values():
        assert len(cfg.seeds) >= 3 and len(cfg.lrs) >= 2 and len(cfg.weight_decays) >= 2


def test_suite_registers_and_loads() -> None:
    suite = get_suite("neucrab-mini-v1")
    assert suite.name == "neucrab-mini-v1" and set(suite.tasks) == set(nm.TASKS)
    assert suite.checkpoints["cnn-fm04-e1"].spec == "zoo:cnn-fm04-e1"
    assert suite.tasks["fashion-tops"].data == "builtin:neucrab-fashion-tops"
    assert "ckptrank finetune --suite neucrab-mini-v1" in suite.provenance
    gt = suite.ground_truth
    assert set(gt.protocol) <= {"full", "linear"} and gt.accuracy.between(0, 100).all()


def test_target_tasks_use_only_the_target_half_and_the_official_test_file() -> None:
    from ckptrank.data.builtins import load_builtin
    from ckptrank.zoo.data import FASHION_TARGET_HALF

    full = load_builtin("fashion-mnist", "train")
    target = load_dataset("builtin:neucrab-fashion-mnist", split="train")
    assert len(target) == FASHION_TARGET_HALF[1] - FASHION_TARGET_HALF[0]
    assert np.array_equal(np.asarray(target.items), np.asarray(full.items)[slice(*FASHION_TARGET_HALF)])
    tops = load_dataset("builtin:neucrab-fashion-tops", split="test")
    assert tops.classes == ("T-shirt/top", "Pullover", "Coat", "Shirt") and len(tops) == 4000
    concrete = load_dataset("builtin:neucrab-wordnet-concrete", split="train", per_class=3)
    assert concrete.n_classes == 8 and len(concrete) == 24 and all(isinstance(t, str) for t in concrete.items)


def test_suite_task_sizes() -> None:
    task = nm.load_suite_task("fashion-tops")
    assert len(task.pool) == 4 * 80 and len(task.test) == 4 * 100 and task.n_classes == 4
    with pytest.raises(ValueError, match="unknown neucrab-mini-v1 task"):
        nm.load_suite_task("cifar")


def test_committed_ground_truth_format() -> None:
    runs = nm.load_ground_truth()
    assert list(runs.columns) == list(nm.CSV_COLUMNS)
    assert len(runs) > 0
    assert set(runs.task) <= set(nm.TASKS) and set(runs.checkpoint) <= set(nm.CHECKPOINTS)
    keys = ["task", "checkpoint", "protocol", "seed", "lr", "weight_decay"]
    assert not runs.duplicated(keys).any()
    assert runs.val_accuracy.between(0, 1).all() and runs.test_accuracy.between(0, 1).all()
    sel = runs[runs.selected.astype(bool)]
    # At most one selected run per (task, checkpoint, protocol, seed), all with the same config.
    assert not sel.duplicated(["task", "checkpoint", "protocol", "seed"]).any()
    per_pair = sel.groupby(["task", "checkpoint", "protocol"])
    assert (per_pair.lr.nunique() == 1).all() and (per_pair.weight_decay.nunique() == 1).all()
    # The grid seed's selected run has the best validation accuracy, and the lowest validation loss
    # among the runs tied with it (up to float32 rounding).
    for (_task, _ckpt, protocol), group in runs.groupby(["task", "checkpoint", "protocol"]):
        grid = group[group.seed == nm.PROTOCOL_CONFIGS[protocol].seeds[0]]
        chosen = grid[grid.selected.astype(bool)]
        if len(chosen):
            best = grid[grid.val_accuracy == grid.val_accuracy.max()]
            assert chosen.val_accuracy.iloc[0] == best.val_accuracy.iloc[0]
            assert chosen.val_loss.iloc[0] <= best.val_loss.min() + 1e-5


def _recorded(task: str, checkpoint: str, protocol: str) -> pd.DataFrame:
    runs = nm.load_ground_truth()
    rows = runs[(runs.task == task) & (runs.checkpoint == checkpoint) & (runs.protocol == protocol)]
    return rows[rows.selected.astype(bool)]


@pytest.mark.parametrize(("protocol", "checkpoint"), [("linear", "cnn-fm04-e1"), ("full", "cnn-fm04-e1")])
def test_regenerated_slice_lies_within_the_recorded_seed_spread(protocol: str, checkpoint: str) -> None:
    rows = _recorded("fashion-tops", checkpoint, protocol)
    assert len(rows) >= 3, f"the committed ground truth lacks {checkpoint} / fashion-tops / {protocol}"
    lr, wd = float(rows.lr.iloc[0]), float(rows.weight_decay.iloc[0])
    task = nm.load_suite_task("fashion-tops")
    cfg = nm.PROTOCOL_CONFIGS[protocol]
    ckpt = load_checkpoint(nm.CHECKPOINTS[checkpoint].spec)
    trainer = (
        ft.LinearTrainer(ckpt, task, cfg, None, 64)
        if protocol == "linear"
        else ft.FullTrainer(ckpt, task, cfg)
    )
    result = trainer.run(lr, wd, seed=1)
    lo, hi = rows.test_accuracy.min(), rows.test_accuracy.max()
    assert lo - TOLERANCE <= result.test_accuracy <= hi + TOLERANCE, (result.test_accuracy, lo, hi)


def test_build_resumes_from_the_csv_and_rewrites_it_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tiny private copy of the suite: one features-free zoo checkpoint, one task, the linear protocol.
    monkeypatch.setattr(nm, "CHECKPOINTS", {"cnn-random": nm.CHECKPOINTS["cnn-random"]})
    monkeypatch.setattr(
        nm, "TASKS", {"digits": nm.MiniTask("image", "builtin:digits", 4, 3, 0, "tiny digits")}
    )
    tiny = ft.FinetuneConfig(
        protocol="linear", lrs=(0.1, 0.3), weight_decays=(0.0, 1e-3), epochs=2, seeds=(0, 1, 2)
    )
    monkeypatch.setattr(nm, "PROTOCOL_CONFIGS", {"linear": tiny})
    calls: list[int] = []
    original = ft.Trainer.run

    def counting(self: ft.Trainer, lr: float, wd: float, seed: int) -> ft.RunResult:
        calls.append(seed)
        if len(calls) == 3 and not hasattr(counting, "killed"):
            counting.killed = True  # type: ignore[attr-defined]
            raise KeyboardInterrupt
        return original(self, lr, wd, seed)

    monkeypatch.setattr(ft.Trainer, "run", counting)
    kwargs = dict(tracks=("image",), protocols=("linear",), directory=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        nm.build_ground_truth(store_path=tmp_path / "a.sqlite", **kwargs)
    csv = nm.ground_truth_csv("image", tmp_path)
    assert len(pd.read_csv(csv)) == 2  # the finished runs, and no partial row
    assert not list(tmp_path.glob(".*.tmp"))
    # A fresh store (another session): the CSV is imported and only missing runs are done.
    summary = nm.build_ground_truth(store_path=tmp_path / "b.sqlite", **kwargs)
    assert len(calls) == 3 + 4 and summary.seeds.tolist() == [3]
    rows = pd.read_csv(csv)
    assert len(rows) == 6 and rows.selected.sum() == 3 and list(rows.columns) == list(nm.CSV_COLUMNS)
    suite = nm.load_suite(tmp_path)
    assert suite.truth("linear").shape[0] == 3
    status = nm.ground_truth_status(tmp_path).set_index("track")
    assert status.loc["image", "pairs_finished"] == status.loc["image", "pairs"] == 1
    assert status.loc["image", "runs"] == status.loc["image", "runs_expected"] == 6
    with ResultsStore(tmp_path / "b.sqlite") as store:
        assert len(store.table("finetune_runs")) == 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--suite", "neucrab-mini-v1", "--task", "cifar"], "--task 'cifar' is not in neucrab-mini-v1"),
        (["--suite", "neucrab-mini", "--track", "audio"], "--track 'audio' is not in neucrab-mini-v2"),
        (["--suite", "neucrab-mini", "--protocol", "lora"], "--protocol must be full or linear"),
        (["--suite", "vtab"], "only the built-in suites 'neucrab-mini', 'neucrab-mini-v1'"),
        (["zoo:cnn-random", "--suite", "neucrab-mini"], "do not give CHECKPOINTS or --data"),
    ],
)
def test_cli_suite_mode_rejects_bad_arguments(args: list[str], message: str) -> None:
    from typer.testing import CliRunner

    from ckptrank.cli.main import app

    result = CliRunner().invoke(app, ["finetune", *args])
    assert result.exit_code != 0 and isinstance(result.exception, ValueError)
    assert message in str(result.exception)


def test_build_on_a_remote_executor_sends_a_task_in_one_wave_and_records_the_same_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ckptrank.executors import LocalExecutor

    class RemoteLike(LocalExecutor):
        """Runs here, but says it is remote (as the Ray executor does); records each wave's jobs."""

        remote = True

        def __init__(self) -> None:
            self.waves: list[list[tuple[str, int]]] = []

        def imap(self, fn, items, *, gpu=False):
            items = list(items)
            self.waves.append([(job.spec, job.seed) for job in items])
            return super().imap(fn, items, gpu=gpu)

    two = {name: nm.CHECKPOINTS[name] for name in ("cnn-random", "cnn-fm04-e1")}
    monkeypatch.setattr(nm, "CHECKPOINTS", two)
    monkeypatch.setattr(
        nm, "TASKS", {"digits": nm.MiniTask("image", "builtin:digits", 4, 3, 0, "tiny digits")}
    )
    tiny = ft.FinetuneConfig(protocol="linear", lrs=(0.1, 0.3), weight_decays=(0.0,), epochs=2, seeds=(0, 1))
    monkeypatch.setattr(nm, "PROTOCOL_CONFIGS", {"linear": tiny})
    kwargs = dict(tracks=("image",), protocols=("linear",))
    executor = RemoteLike()
    nm.build_ground_truth(
        store_path=tmp_path / "r.sqlite", directory=tmp_path / "r", executor=executor, **kwargs
    )
    specs = [c.spec for c in two.values()]
    assert executor.waves == [[(s, 0) for s in specs for _ in range(2)], [(s, 1) for s in specs]]
    nm.build_ground_truth(store_path=tmp_path / "l.sqlite", directory=tmp_path / "l", **kwargs)
    columns = [
        "task",
        "checkpoint",
        "protocol",
        "seed",
        "lr",
        "weight_decay",
        "val_accuracy",
        "test_accuracy",
    ]
    remote = pd.read_csv(nm.ground_truth_csv("image", tmp_path / "r"))[[*columns, "selected"]]
    local = pd.read_csv(nm.ground_truth_csv("image", tmp_path / "l"))[[*columns, "selected"]]
    order = ["checkpoint", "seed", "lr"]
    pd.testing.assert_frame_equal(
        remote.sort_values(order).reset_index(drop=True), local.sort_values(order).reset_index(drop=True)
    )
