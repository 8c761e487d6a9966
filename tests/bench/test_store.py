"""The SQLite results store: keyed inserts never duplicate or overwrite; export round-trips."""

from __future__ import annotations

import multiprocessing as mp
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ckptrank.bench.store import ResultsStore, ResultsStoreError, open_store

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


# ------------------------------------------------------------------------------ damaged or wrong files


def _filled_store(path: Path, rows: int = 400) -> Path:
    """A real store with enough scores that the primary-key index spans several leaf pages."""
    with ResultsStore(path) as store:
        for i in range(rows):
            store.add_score(
                suite="s", task=f"t{i}", checkpoint="c" * 40, measure="logme", value=i, seconds=0.1
            )
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # WAL checkpointed, side files gone
    return path


def _state(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file in ``folder`` with its bytes and modification time."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file()}


def _refused(path: Path, match: str, *, folder: Path | None = None) -> str:
    """Open ``path``, expect a one-line ResultsStoreError matching ``match``; ``folder`` is unchanged."""
    folder = folder or path.parent
    before = _state(folder)
    with pytest.raises(ResultsStoreError, match=match) as info:
        ResultsStore(path)
    assert isinstance(info.value, ValueError)  # the CLI maps ValueError to one line
    assert "\n" not in str(info.value)
    assert _state(folder) == before  # byte-identical, same mtime, no side files left behind
    return str(info.value)


def _leaf_index_pages(path: Path) -> list[int]:
    """1-based numbers of the pages whose b-tree page type is "leaf index" (0x0A)."""
    data = path.read_bytes()
    page_size = int.from_bytes(data[16:18], "big")
    return [n + 1 for n in range(1, len(data) // page_size) if data[n * page_size] == 0x0A]


def test_folder_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    message = _refused(folder, "is a folder")
    assert message == (
        f"results store {folder} is a folder; give a file path such as {folder / 'results.sqlite'} "
        "(--results or CKPTRANK_RESULTS)"
    )
    assert list(folder.iterdir()) == []
    (tmp_path / "notes.txt").write_text("x")
    _refused(tmp_path / "notes.txt" / "r.sqlite", r"notes\.txt is a file, not a folder", folder=tmp_path)


def test_non_sqlite_file_is_refused_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    path.write_bytes(np.random.default_rng(0).bytes(20_000))
    message = _refused(path, "is not an SQLite database")
    assert message == (
        f"results store {path} is not an SQLite database (its 20000 bytes do not start with the SQLite "
        "header); move it aside (e.g. rename it to r.sqlite.damaged) and re-run, "
        "or pass another --results path"
    )
    csv = tmp_path / "scores.csv"
    csv.write_text("task,checkpoint,measure,score\nt,c,logme,1.0\n")
    _refused(csv, r"scores\.csv is not an SQLite database")


def test_truncated_file_is_refused_unchanged(tmp_path: Path) -> None:
    path = _filled_store(tmp_path / "r.sqlite")
    data = path.read_bytes()
    page_size, n_pages = int.from_bytes(data[16:18], "big"), int.from_bytes(data[28:32], "big")
    assert n_pages * page_size == len(data) and n_pages > 10
    half = (n_pages // 2) * page_size
    path.write_bytes(data[:half])
    assert _refused(path, "is truncated") == (
        f"results store {path} is truncated: {half} bytes, but its header records {n_pages} pages of "
        f"{page_size} bytes ({len(data)} bytes); move it aside (e.g. rename it to r.sqlite.damaged) and "
        "re-run, or pass another --results path"
    )
    path.write_bytes(data[:50])
    _refused(path, r"is truncated: 50 bytes, shorter than the 100-byte SQLite header")


def test_damaged_index_page_fails_quick_check_and_is_left_unchanged(tmp_path: Path) -> None:
    path = _filled_store(tmp_path / "r.sqlite")
    leaves = _leaf_index_pages(path)
    with sqlite3.connect(path) as conn:  # independent reference: SQLite's own page map, where available
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        try:
            owners = dict(conn.execute("SELECT pageno, name FROM dbstat WHERE pagetype = 'leaf'").fetchall())
        except sqlite3.OperationalError:  # SQLite built without dbstat
            owners = {}
    page = leaves[len(leaves) // 2]  # a leaf of the scores primary-key index, mid-file
    assert owners.get(page, "sqlite_autoindex_scores_1") == "sqlite_autoindex_scores_1"
    data = bytearray(path.read_bytes())
    start = (page - 1) * page_size
    data[start + 8 : start + page_size] = np.random.default_rng(1).bytes(page_size - 8)
    path.write_bytes(bytes(data))
    # The damage is real: SQLite's quick_check (on a copy) reports this page.
    copy = tmp_path / "copy" / "r.sqlite"
    copy.parent.mkdir()
    copy.write_bytes(bytes(data))
    conn = sqlite3.connect(copy)
    report = " ".join(r[0] for r in conn.execute("PRAGMA quick_check").fetchall())
    conn.close()
    assert report != "ok" and re.search(rf"\bpage {page}\b", report, re.IGNORECASE)
    message = _refused(path, rf"(?i)is damaged: PRAGMA quick_check reports: .*\bpage {page}\b")
    assert message.startswith(f"results store {path} is damaged: PRAGMA quick_check reports: ")
    assert message.endswith(
        "; move it aside (e.g. rename it to r.sqlite.damaged) and re-run, or pass another --results path"
    )


def test_healthy_and_empty_files_open(tmp_path: Path) -> None:
    path = _filled_store(tmp_path / "r.sqlite", rows=5)
    with ResultsStore(path) as store:
        assert sorted(store.table("scores").value) == [0.0, 1.0, 2.0, 3.0, 4.0]
    empty = tmp_path / "empty.sqlite"
    empty.touch()  # SQLite treats an empty file as a new database
    with ResultsStore(empty) as store:
        assert store.add_run(**RUN, val_accuracy=0.5, test_accuracy=0.4)
    with ResultsStore(empty) as store:
        assert store.has_run(**RUN)


def test_locked_database_is_one_line_and_the_store_stays_usable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "r.sqlite"
    monkeypatch.setattr(ResultsStore, "_TIMEOUT", 0.05)
    with ResultsStore(path) as store:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        with pytest.raises(ResultsStoreError, match=r"cannot write: database is locked; if another process"):
            store.add_run(**RUN, val_accuracy=0.5, test_accuracy=0.4)
        other.execute("ROLLBACK")
        other.close()
        assert store.add_run(**RUN, val_accuracy=0.5, test_accuracy=0.4)
        assert len(store.table("finetune_runs")) == 1


_CRASH = """
import os, sqlite3, sys
from ckptrank.bench.store import _SCHEMA
conn = sqlite3.connect(sys.argv[1], isolation_level=None)  # rollback-journal mode, as SQLite's default
conn.executescript(_SCHEMA)
conn.execute("INSERT INTO scores VALUES ('s', 'kept', 'c', 'm', '{}', 1.0, 0.0, NULL, 0.0)")
conn.execute("PRAGMA cache_size=1")  # spill the open transaction's pages into the file
conn.execute("BEGIN")
for i in range(3000):
    row = ("x" * 60 + str(i),)
    conn.execute("INSERT INTO scores VALUES ('s', ?, 'c', 'm', '{}', 1.0, 0.0, NULL, 0.0)", row)
os._exit(0)  # crash before COMMIT: a hot journal is left beside a half-written file
"""


def test_crash_left_hot_journal_is_recovered_not_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    subprocess.run([sys.executable, "-c", _CRASH, str(path)], check=True, timeout=120)
    journal = Path(f"{path}-journal")
    assert journal.is_file() and journal.stat().st_size > 0
    with ResultsStore(path) as store:  # SQLite's recovery rolls the transaction back
        assert store.table("scores").task.tolist() == ["kept"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.sqlite"]
