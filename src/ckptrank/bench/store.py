"""Results store: an embedded SQLite database of ground-truth runs, measure scores and evaluations.

Rows are keyed so that a re-run resumes: inserting a key that exists is ignored (never a
duplicate, never an overwrite), and :meth:`ResultsStore.has_run` / :meth:`ResultsStore.has_score`
let a pipeline skip finished work. Every row records when and with which configuration it
was produced. SQLite's WAL journal lets one writer and several readers share a file safely.

Opening an existing file checks it first, without writing to it: a folder, a file that is not
an SQLite database, a truncated file and a file that fails ``PRAGMA quick_check`` raise
:class:`ResultsStoreError` (a :class:`ValueError`) with one line naming the file and the fix,
and leave the file byte-identical.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["RESULTS_ENV_VAR", "ResultsStore", "ResultsStoreError", "default_store_path", "open_store"]

RESULTS_ENV_VAR = "CKPTRANK_RESULTS"

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


def canonical_json(options: Mapping[str, Any] | None) -> str:
    """Stable JSON text of an options mapping (part of a key)."""
    return json.dumps(dict(options or {}), sort_keys=True, default=str)


class ResultsStoreError(ValueError):
    """A results database that cannot be opened or used: a folder, not SQLite, truncated or damaged."""


_SQLITE_MAGIC = b"SQLite format 3\x00"
_HEADER_BYTES = 100
_MOVE_ASIDE = "move it aside (e.g. rename it to {name}.damaged) and re-run, or pass another --results path"


def _move_aside(path: Path) -> str:
    return _MOVE_ASIDE.format(name=path.name)


def _check_creatable(path: Path) -> None:
    """Refuse a folder, and a path below a file, before anything is created."""
    if path.is_dir():
        raise ResultsStoreError(
            f"results store {path} is a folder; give a file path such as {path / 'results.sqlite'} "
            "(--results or CKPTRANK_RESULTS)"
        )
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ResultsStoreError(
                    f"cannot create results store {path}: {parent} is a file, not a folder; "
                    "give a path inside a folder"
                )
            return


def _nonempty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _pages_elsewhere(path: Path) -> bool:
    """Whether a write-ahead log or a hot rollback journal holds pages the file itself lacks."""
    return _nonempty(Path(f"{path}-wal")) or _nonempty(Path(f"{path}-journal"))


def _check_header(path: Path) -> None:
    """Raise if the file (non-empty) is not SQLite or is shorter than its header says."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        header = fh.read(_HEADER_BYTES)
    if not header.startswith(_SQLITE_MAGIC):
        raise ResultsStoreError(
            f"results store {path} is not an SQLite database (its {size} bytes do not start with the "
            f"SQLite header); {_move_aside(path)}"
        )
    if len(header) < _HEADER_BYTES:
        raise ResultsStoreError(
            f"results store {path} is truncated: {size} bytes, shorter than the {_HEADER_BYTES}-byte "
            f"SQLite header; {_move_aside(path)}"
        )
    if _pages_elsewhere(path):
        # Pages may live in the write-ahead log or a rollback journal (another process, or a crash);
        # SQLite's own check reads them consistently, a raw size check would not.
        return
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        raise ResultsStoreError(
            f"results store {path} is damaged: its header gives an invalid page size {page_size}; "
            f"{_move_aside(path)}"
        )
    n_pages = int.from_bytes(header[28:32], "big")
    header_size_valid = n_pages > 0 and header[24:28] == header[92:96]
    if header_size_valid and size < n_pages * page_size:
        raise ResultsStoreError(
            f"results store {path} is truncated: {size} bytes, but its header records {n_pages} pages "
            f"of {page_size} bytes ({n_pages * page_size} bytes); {_move_aside(path)}"
        )
    if size % page_size:
        raise ResultsStoreError(
            f"results store {path} is truncated or damaged: {size} bytes is not a whole number of "
            f"{page_size}-byte pages; {_move_aside(path)}"
        )


def _summarize_check(rows: list[tuple[Any, ...]], limit: int = 3) -> str:
    lines = [
        line.strip()
        for row in rows
        for line in str(row[0]).splitlines()
        if line.strip() and not line.strip().startswith("***")
    ]
    shown = "; ".join(lines[:limit])
    return shown + (f"; and {len(lines) - limit} more problems" if len(lines) > limit else "")


def _quick_check_problem(conn: sqlite3.Connection, path: Path) -> str | None:
    """What ``PRAGMA quick_check`` finds wrong (None when it says ok)."""
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.OperationalError as err:
        raise ResultsStoreError(
            f"results store {path} cannot be checked: {err}; if another process holds it, wait and "
            "re-run, otherwise pass another --results path"
        ) from None
    except sqlite3.DatabaseError as err:
        return f"SQLite reports: {err}"
    if [tuple(r) for r in rows] == [("ok",)]:
        return None
    return f"PRAGMA quick_check reports: {_summarize_check(rows)}"


def _damaged(path: Path, problem: str) -> ResultsStoreError:
    return ResultsStoreError(f"results store {path} is damaged: {problem}; {_move_aside(path)}")


def _quick_check_read_only(path: Path, timeout: float) -> None:
    """Run ``PRAGMA quick_check`` through a read-only connection; raise on any problem.

    The read-only connection cannot write the database file. It may create the ``-wal`` and
    ``-shm`` side files of a WAL database; those it created are removed again when the check fails
    (on success the store's own connection uses and then removes them).
    """
    side = [Path(f"{path}-wal"), Path(f"{path}-shm")]
    existed = [p.exists() for p in side]
    ok = False
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout)
    try:
        problem = _quick_check_problem(conn, path)
        if problem is not None:
            raise _damaged(path, problem)
        ok = True
    finally:
        conn.close()
        if not ok:
            for p, before in zip(side, existed, strict=True):
                if not before and p.is_file() and (p.name.endswith("-shm") or p.stat().st_size == 0):
                    p.unlink(missing_ok=True)


def _check_existing(path: Path, timeout: float) -> bool:
    """Check an existing results file without modifying it (see the module docstring).

    Returns
    -------
    bool
        True when the check must wait for the store's own connection: a hot rollback journal
        (left by a crash) is replayed by SQLite's recovery, which a read-only connection cannot do.
    """
    if path.stat().st_size == 0:
        return False  # SQLite treats an empty file as a new database
    _check_header(path)
    if _nonempty(Path(f"{path}-journal")):
        return True
    _quick_check_read_only(path, timeout)
    return False


class ResultsStore:
    """SQLite-backed store of ground-truth runs, scores and evaluations.

    Parameters
    ----------
    path : str or Path
        Database file (created with its parent folder), ``":memory:"``, or a ``sqlite:///PATH`` URL.

    Raises
    ------
    ResultsStoreError
        ``path`` is a folder or lies below a file; or an existing file is not an SQLite database,
        is truncated, or fails ``PRAGMA quick_check``. The file is left unmodified.
    ValueError
        An unsupported URL scheme.
    """

    _TIMEOUT = 60.0

    def __init__(self, path: str | Path) -> None:
        text = str(path)
        if text.startswith("sqlite:///"):
            text = text[len("sqlite:///") :]
        elif "://" in text:
            raise ValueError(f"unsupported results-store URL {text!r}; use a file path or sqlite:///PATH")
        check_after_recovery = False
        if text != ":memory:":
            file = Path(text).expanduser()
            _check_creatable(file)
            if file.exists():
                check_after_recovery = _check_existing(file, self._TIMEOUT)
            file.parent.mkdir(parents=True, exist_ok=True)
            text = str(file)
        self.path = text
        self._conn = sqlite3.connect(text, timeout=self._TIMEOUT, isolation_level=None)
        try:
            if check_after_recovery:
                problem = _quick_check_problem(self._conn, Path(text))
                if problem is not None:
                    raise _damaged(Path(text), problem)
            with self._guard("open"):
                if text != ":memory:":
                    self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.executescript(_SCHEMA)
        except BaseException:
            self._conn.close()
            raise

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Turn SQLite's errors (damage, locks, a full disk) into one-line :class:`ResultsStoreError`."""
        try:
            yield
        except (sqlite3.InterfaceError, sqlite3.ProgrammingError):
            raise
        except sqlite3.DatabaseError as err:
            hint = (
                "if another process holds it, wait and re-run"
                if isinstance(err, sqlite3.OperationalError)
                else _move_aside(Path(self.path))
            )
            raise ResultsStoreError(f"results store {self.path}: cannot {action}: {err}; {hint}") from None

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._guard("write"):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                if self._conn.in_transaction:
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
                    canonical_json(config),
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
        with self._guard("read"):
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
                (
                    suite,
                    task,
                    checkpoint,
                    measure,
                    canonical_json(options),
                    value,
                    seconds,
                    error,
                    time.time(),
                ),
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
        with self._guard("read"):
            row = self._conn.execute(
                "SELECT 1 FROM scores WHERE suite=? AND task=? AND checkpoint=? AND measure=? AND options=?",
                (suite, task, checkpoint, measure, canonical_json(options)),
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
                (
                    suite,
                    task,
                    measure,
                    statistic,
                    value,
                    ci_low,
                    ci_high,
                    canonical_json(config),
                    time.time(),
                ),
            )
            return cur.rowcount == 1

    # -- reading and export -----------------------------------------------------------------------
    def table(self, name: str, **where: Any) -> pd.DataFrame:
        """Rows of ``name`` (one of finetune_runs, scores, evaluations) matching ``column=value`` filters."""
        if name not in _TABLES:
            raise ValueError(f"unknown table {name!r}; tables: {', '.join(_TABLES)}")
        with self._guard("read"):
            columns = [row[1] for row in self._conn.execute(f"PRAGMA table_info({name})")]
        unknown = sorted(set(where) - set(columns))
        if unknown:
            raise ValueError(f"table {name} has no column {unknown[0]!r}; columns: {', '.join(columns)}")
        clause = " AND ".join(f"{k}=?" for k in where)
        sql = f"SELECT * FROM {name}" + (f" WHERE {clause}" if clause else "")
        with self._guard("read"):
            cursor = self._conn.execute(sql, list(where.values()))
            names = [d[0] for d in cursor.description]
            return pd.DataFrame.from_records(cursor.fetchall(), columns=names, coerce_float=True)

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


def default_store_path(cache_dir: str | Path | None = None) -> Path:
    """Where the results store lives unless a path is given.

    ``$CKPTRANK_RESULTS`` if set, else ``results.sqlite`` in ``cache_dir``, else in ckptrank's
    cache folder (``$CKPTRANK_CACHE``, else ``~/.cache/ckptrank``): runs that keep their
    features apart (another ``CKPTRANK_CACHE`` or ``--cache-dir``) keep their scores apart too.
    """
    env = os.environ.get(RESULTS_ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    if cache_dir is None:
        from ckptrank._cachedir import default_cache_dir

        cache_dir = default_cache_dir()
    return Path(cache_dir).expanduser() / "results.sqlite"


def open_store(path: str | Path | None = None) -> ResultsStore:
    """Open the results store at ``path``, else at :func:`default_store_path`."""
    return ResultsStore(default_store_path() if path is None else path)
