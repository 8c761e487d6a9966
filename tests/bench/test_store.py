"""The SQLite results store: keyed inserts never duplicate or overwrite; export round-trips."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pandas as pd
import pytest

from ckptrank.bench.store import ResultsStore, open_store

RUN = dict(suite="s", task="t", checkpoint="c", protocol="linear", seed=0, lr=0.1, weight_decay=1e-4)


def test_runs_are_keyed_and_never_overwritten(tmp_path: Path) -> None:
    with ResultsStore(tmp_path / "r.sqlite") as store:
        assert not store.has_run(**RUN)
        assert store.add_run(**RUN, val_accuracy=0.5, test_accuracy=0.4, config={"b": 1, "a": 2})
        assert store.has_run(**RUN)
        assert not store.add_run(**RUN, val_accuracy=0.9, test_accuracy=0.9)
        rows = store.table("finetune_runs")
        assert len(rows) == 1 and rows.test_accuracy.iloc[0] == 0.4
        assert rows.config.iloc[0] == '{"a": 2, "b": 1}'
        assert store.add_run(**{**RUN, "seed": 1}, val_accuracy=0.6, test_accuracy=0.5)
        assert len(store.table("finetune_runs", seed=1)) == 1
        # Selection flags one run and touches nothing else; an unknown key flags nothing.
        assert store.mark_selected(**RUN)
        assert not store.mark_selected(**{**RUN, "seed": 7})
        rows = store.table("finetune_runs").sort_values("seed")
        assert rows.selected.tolist() == [1, 0] and rows.test_accuracy.tolist() == [0.4, 0.5]


def test_scores_keyed_by_options(tmp_path: Path) -> None:
    with ResultsStore(f"sqlite:///{tmp_path / 'r.sqlite'}") as store:
        key = dict(suite="s", task="t", checkpoint="c", measure="logme")
        assert store.add_score(**key, value=1.0, seconds=0.1)
        assert store.has_score(**key)
        assert not store.has_score(**key, options={"k": 3})
        assert store.add_score(**key, value=2.0, seconds=0.1, options={"k": 3})
        assert not store.add_score(**key, value=5.0, seconds=0.1, options={"k": 3})
        assert sorted(store.table("scores").value) == [1.0, 2.0]
        assert store.add_score(**{**key, "measure": "beff"}, value=None, seconds=0.2, error="diverged")


def test_reopening_keeps_rows_and_export(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "r.sqlite"
    with ResultsStore(path) as store:
        store.add_evaluation(
            suite="s", task="t", measure="m", statistic="weighted_tau", value=0.5, ci_low=0.1, ci_high=0.8
        )
    with ResultsStore(path) as store:
        assert len(store.table("evaluations")) == 1
        paths = store.export(tmp_path / "out")
        assert [p.name for p in paths] == ["finetune_runs.csv", "scores.csv", "evaluations.csv"]
        assert pd.read_csv(paths[2]).value.iloc[0] == 0.5
        parquet = store.export(tmp_path / "pq", fmt="parquet")
        assert pd.read_parquet(parquet[2]).ci_high.iloc[0] == 0.8


def _writer(path: str, seed: int) -> None:
    with ResultsStore(path) as store:
        for i in range(30):
            store.add_run(**{**RUN, "seed": i % 10, "lr": float(seed)}, val_accuracy=0.1, test_accuracy=0.1)


def test_two_processes_do_not_corrupt_or_duplicate(tmp_path: Path) -> None:
    path = str(tmp_path / "r.sqlite")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, s)) for s in (0, 0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    with ResultsStore(path) as store:
        assert len(store.table("finetune_runs")) == 20


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported results-store URL"):
        ResultsStore("postgres://host/db")
    with ResultsStore(":memory:") as store:
        with pytest.raises(ValueError, match="unknown table"):
            store.table("nope")
        with pytest.raises(ValueError, match="no column"):
            store.table("scores", colour="red")
        with pytest.raises(ValueError, match="export format"):
            store.export(tmp_path, fmt="xlsx")


def test_open_store_uses_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CKPTRANK_RESULTS", str(tmp_path / "env.sqlite"))
    with open_store() as store:
        assert store.path == str(tmp_path / "env.sqlite")
