"""Results store: an embedded SQLite database of ground-truth runs, measure scores and evaluations.

Rows are keyed so that a re-run resumes: inserting a key that exists is ignored (never a
duplicate, never an overwrite), and :meth:`ResultsStore.has_run` / :meth:`ResultsStore.has_score`
let a pipeline skip finished work. Every row records when and with which configuration it
was produced. SQLite's WAL journal lets one writer and several readers share a file safely.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["ResultsStore", "open_store"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS finetune_runs (
    suite TEXT NOT NULL,
    task TEXT NOT NULL,
    checkpoint TEXT NOT NULL,
    protocol TEXT NOT NULL,
    seed INTEGER NOT NULL,
    lr REAL NOT NULL,
    weight_decay REAL NOT NULL,
    val_accuracy REAL,
    test_accuracy REAL,
    selected INTEGER NOT NULL DEFAULT 0,
    epochs INTEGER,
    seconds REAL,
    config TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (suite, task, checkpoint, protocol, seed, lr, weight_decay)
);
CREATE TABLE IF NOT EXISTS scores (
    suite TEXT NOT NULL,
    task TEXT NOT NULL,
    checkpoint TEXT NOT NULL,
    measure TEXT NOT NULL,
    options TEXT NOT NULL,
    value REAL,
    seconds REAL,
    error TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (suite, task, checkpoint, measure, options)
);
CREATE TABLE IF NOT EXISTS evaluations (
    suite TEXT NOT NULL,
    task TEXT NOT NULL,
    measure TEXT NOT NULL,
    statistic TEXT NOT NULL,
    value REAL,
    ci_low REAL,
    ci_high REAL,
    config TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (suite, task, measure, statistic, config)
);
"""

_TABLES = ("finetune_runs", "scores", "evaluations")
#: The primary key of a fine-tuning run, as a WHERE clause (parameters in this order).
_RUN_KEY = "suite=? AND task=? AND checkpoint=? AND protocol=? AND seed=? AND lr=? AND weight_decay=?"


def _canonical(options: Mapping[str, Any] | None) -> str:
    """Stable JSON text of an options mapping (part of a key)."""
    return json.dumps(dict(options or {}), sort_keys=True, default=str)


class ResultsStore:
    """SQLite-backed store of ground-truth runs, scores and evaluations.

    Parameters
    ----------
    path : str or Path
        Database file (created with its parent folder), ``":memory:"``, or a ``sqlite:///PATH`` URL.
    """

    def __init__(self, path: str | Path) -> None:
        text = str(path)
        if text.startswith("sqlite:///"):
            text = text[len("sqlite:///") :]
        elif "://" in text:
            raise ValueError(f"unsupported results-store URL {text!r}; use a file path or sqlite:///PATH")
        if text != ":memory:":
            Path(text).expanduser().parent.mkdir(parents=True, exist_ok=True)
            text = str(Path(text).expanduser())
        self.path = text
        self._conn = sqlite3.connect(text, timeout=60.0, isolation_level=None)
        if text != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # -- ground truth -----------------------------------------------------------------------------
    def add_run(
        self,
        *,
        suite: str,
        task: str,
        checkpoint: str,
        protocol: str,
        seed: int,
        lr: float,
        weight_decay: float,
        val_accuracy: float | None,
        test_accuracy: float | None,
        selected: bool = False,
        epochs: int | None = None,
        seconds: float | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> bool:
        """Record one fine-tuning run; returns False (and changes nothing) when its key exists."""
        with self._transaction() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO finetune_runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    suite,
                    task,
                    checkpoint,
                    protocol,
                    int(seed),
                    float(lr),
                    float(weight_decay),
                    val_accuracy,
                    test_accuracy,
                    int(bool(selected)),
                    epochs,
                    seconds,
                    _canonical(config),
                    time.time(),
                ),
            )
            return cur.rowcount == 1

    def has_run(
        self,
        *,
        suite: str,
        task: str,
        checkpoint: str,
        protocol: str,
        seed: int,
        lr: float,
        weight_decay: float,
    ) -> bool:
        """Whether a run with this key is recorded."""
        row = self._conn.execute(
            f"SELECT 1 FROM finetune_runs WHERE {_RUN_KEY}",
            (suite, task, checkpoint, protocol, int(seed), float(lr), float(weight_decay)),
        ).fetchone()
        return row is not None

    def mark_selected(
        self,
        *,
        suite: str,
        task: str,
        checkpoint: str,
        protocol: str,
        seed: int,
        lr: float,
        weight_decay: float,
    ) -> bool:
        """Flag one recorded run as the selected configuration (a derived flag, never a result).

        Returns
        -------
        bool
            Whether a run with this key exists (and is now flagged).
        """
        with self._transaction() as conn:
            cur = conn.execute(
                f"UPDATE finetune_runs SET selected=1 WHERE {_RUN_KEY}",
                (suite, task, checkpoint, protocol, int(seed), float(lr), float(weight_decay)),
            )
            return cur.rowcount == 1

    # -- scores -----------------------------------------------------------------------------------
    def add_score(
        self,
        *,
        suite: str,
        task: str,
        checkpoint: str,
        measure: str,
        value: float | None,
        seconds: float | None,
        options: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> bool:
        """Record a measure's score (or its error); returns False when the key exists."""
        with self._transaction() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO scores VALUES (?,?,?,?,?,?,?,?,?)",
                (suite, task, checkpoint, measure, _canonical(options), value, seconds, error, time.time()),
            )
            return cur.rowcount == 1

    def has_score(
        self,
        *,
        suite: str,
        task: str,
        checkpoint: str,
        measure: str,
        options: Mapping[str, Any] | None = None,
    ) -> bool:
        """Whether a score with this key is recorded."""
        row = self._conn.execute(
            "SELECT 1 FROM scores WHERE suite=? AND task=? AND checkpoint=? AND measure=? AND options=?",
            (suite, task, checkpoint, measure, _canonical(options)),
        ).fetchone()
        return row is not None

    # -- evaluations ------------------------------------------------------------------------------
    def add_evaluation(
        self,
        *,
        suite: str,
        task: str,
        measure: str,
        statistic: str,
        value: float | None,
        ci_low: float | None = None,
        ci_high: float | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> bool:
        """Record one evaluation statistic; returns False when the key exists."""
        with self._transaction() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO evaluations VALUES (?,?,?,?,?,?,?,?,?)",
                (suite, task, measure, statistic, value, ci_low, ci_high, _canonical(config), time.time()),
            )
            return cur.rowcount == 1

    # -- reading and export -----------------------------------------------------------------------
    def table(self, name: str, **where: Any) -> pd.DataFrame:
        """Rows of ``name`` (one of finetune_runs, scores, evaluations) matching ``column=value`` filters."""
        if name not in _TABLES:
            raise ValueError(f"unknown table {name!r}; tables: {', '.join(_TABLES)}")
        columns = [row[1] for row in self._conn.execute(f"PRAGMA table_info({name})")]
        unknown = sorted(set(where) - set(columns))
        if unknown:
            raise ValueError(f"table {name} has no column {unknown[0]!r}; columns: {', '.join(columns)}")
        clause = " AND ".join(f"{k}=?" for k in where)
        sql = f"SELECT * FROM {name}" + (f" WHERE {clause}" if clause else "")
        return pd.read_sql_query(sql, self._conn, params=list(where.values()))

    def export(self, directory: str | Path, *, fmt: str = "csv") -> list[Path]:
        """Write every table to ``directory`` as CSV or parquet; returns the written paths."""
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"unknown export format {fmt!r}; use 'csv' or 'parquet'")
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name in _TABLES:
            frame = self.table(name)
            path = out / f"{name}.{fmt}"
            if fmt == "csv":
                frame.to_csv(path, index=False)
            else:
                frame.to_parquet(path, index=False)
            paths.append(path)
        return paths


def open_store(path: str | Path | None = None) -> ResultsStore:
    """Open the results store at ``path``, ``CKPTRANK_RESULTS``, or ``~/.cache/ckptrank/results.sqlite``."""
    import os

    if path is None:
        path = os.environ.get("CKPTRANK_RESULTS") or Path.home() / ".cache" / "ckptrank" / "results.sqlite"
    return ResultsStore(path)
