"""A ranking as files and records: what ``ckptrank rank --out`` and ``--format json`` write.

:func:`ranking_records` turns a result of :func:`ckptrank.ranking.rank` into JSON-ready
objects, :func:`csv_frame` into the table written as CSV; :func:`save_ranking` writes
``ranking.csv``, ``ranking.json``, ``config.json`` and ``scores.png`` to a folder that
:func:`check_output_dir` accepts.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ckptrank._atomic import replace_file, replace_text
from ckptrank.ranking import LEADING_COLUMNS, TRAILING_COLUMNS, none_if_nan

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["check_output_dir", "csv_frame", "ranking_records", "save_ranking"]

logger = logging.getLogger(__name__)


def ranking_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The ranking as JSON-ready objects, one per checkpoint, best first.

    Each object has ``rank``, ``checkpoint``, ``revision`` (the hub commit the checkpoint was
    pinned to, or None), ``status``, ``error``, ``scores`` (measure -> value
    or None when skipped), ``measure_ranks``, ``consensus_rank``, ``ranker_score`` (the default
    ranker's score, None when ``--measures`` chose a consensus), ``p_best`` (probability of being
    the best to fine-tune), ``shortlist`` (in the smallest set holding the best with 90%
    probability), ``seconds``,
    ``num_parameters``, ``source_accuracy``, ``baseline_ranks`` and ``notes`` (the run-level
    notes followed by this checkpoint's own).

    Parameters
    ----------
    frame : pandas.DataFrame
        A result of :func:`ckptrank.ranking.rank` (one row per checkpoint, with its ``attrs``).

    Returns
    -------
    list of dict
        One object per row of ``frame``, in its order.
    """
    names = list(frame.attrs.get("measures", []))
    run_notes = list(frame.attrs.get("run_notes", []))
    checkpoint_notes = frame.attrs.get("checkpoint_notes", {})
    measure_ranks = frame.attrs.get("measure_ranks", {})
    resolved = frame.attrs.get("config", {}).get("checkpoints", {})
    records = []
    for row in frame.to_dict(orient="records"):
        spec = row["checkpoint"]
        records.append(
            {
                "rank": none_if_nan(_maybe_int(row["rank"])),
                "checkpoint": spec,
                "revision": resolved.get(spec, {}).get("revision"),
                "status": row["status"],
                "error": none_if_nan(row["error"]),
                "scores": {name: none_if_nan(row[name]) for name in names},
                "measure_ranks": measure_ranks.get(spec, {}),
                "consensus_rank": none_if_nan(row["consensus_rank"]),
                "ranker_score": _round(row["ranker_score"], 6),
                "p_best": _round(row["p_best"], 4),
                "shortlist": bool(row["shortlist"]),
                "seconds": _round(row["seconds"]),
                "extract_seconds": _round(row["extract_seconds"]),
                "score_seconds": _round(row["score_seconds"]),
                "from_cache": none_if_nan(row["from_cache"]),
                "num_parameters": none_if_nan(_maybe_int(row["num_parameters"])),
                "source_accuracy": none_if_nan(row["source_accuracy"]),
                "baseline_ranks": {
                    "num_parameters": none_if_nan(row["num_parameters_rank"]),
                    "source_accuracy": none_if_nan(row["source_accuracy_rank"]),
                },
                "has_head": none_if_nan(row["has_head"]),
                "feature_dim": none_if_nan(_maybe_int(row["feature_dim"])),
                "notes": run_notes + list(checkpoint_notes.get(spec, [])),
            }
        )
    return records


def _maybe_int(value: Any) -> Any:
    import pandas as pd

    if value is None or value is pd.NA:
        return None
    if isinstance(value, float | np.floating) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return value


def _round(value: Any, digits: int = 3) -> float | None:
    value = none_if_nan(value)
    return None if value is None else round(float(value), digits)


def csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The ranking as written to CSV: the main columns, without the bookkeeping ones.

    Parameters
    ----------
    frame : pandas.DataFrame
        A result of :func:`ckptrank.ranking.rank`.

    Returns
    -------
    pandas.DataFrame
        The same rows with the columns ``rank``, ``checkpoint``, one per measure, then
        ``consensus_rank`` to ``error`` (the timings, ``has_head``, ``feature_dim`` and
        ``from_cache`` left out).
    """
    names = list(frame.attrs.get("measures", []))
    # the trailing columns up to ``error``; the bookkeeping ones after it stay out
    kept = TRAILING_COLUMNS[: TRAILING_COLUMNS.index("error") + 1]
    return frame[[*LEADING_COLUMNS, *names, *kept]]


def check_output_dir(out: str | Path, *, overwrite: bool = False) -> Path:
    """Refuse a non-empty output folder unless ``overwrite``; return it as a Path.

    Raises
    ------
    ValueError
        ``out`` is a file, or a non-empty folder and ``overwrite`` is False.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {str(path)!r} exists and is not a folder; choose a folder path")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ValueError(
            f"output folder {str(path)!r} is not empty; choose another folder or pass --overwrite "
            "(overwrite=True) to replace its files"
        )
    return path


def save_ranking(
    frame: pd.DataFrame, out: str | Path, *, overwrite: bool = False, plot: bool = True
) -> dict[str, Path]:
    """Write ``ranking.csv``, ``ranking.json``, ``config.json`` and ``scores.png`` to ``out``.

    Parameters
    ----------
    frame : pandas.DataFrame
        A result of :func:`ckptrank.ranking.rank`.
    out : str or path
        Output folder, created if missing.
    overwrite : bool
        Allow writing into a non-empty folder (its files of the same names are replaced).
    plot : bool
        Draw ``scores.png`` (needs matplotlib, ``pip install ckptrank[report]``; without it the
        other files are still written and ``"plot"`` is missing from the result).

    Returns
    -------
    dict
        File kind (``"csv"``, ``"json"``, ``"config"``, ``"plot"``) -> path written.

    Raises
    ------
    ValueError
        ``out`` is not empty and ``overwrite`` is False.

    Notes
    -----
    Every file is written to a temporary file in ``out`` and moved onto its name with
    :func:`os.replace`, so a reader never sees half a file, and a name that is a symbolic link
    is replaced by the new file: the link's target is never written through.
    """
    path = check_output_dir(out, overwrite=overwrite)
    path.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    written["csv"] = replace_text(path / "ranking.csv", csv_frame(frame).to_csv(index=False))
    records = json.dumps(ranking_records(frame), indent=2) + "\n"
    written["json"] = replace_text(path / "ranking.json", records)
    config = dict(frame.attrs.get("config", {}))
    config["dataset"] = frame.attrs.get("dataset")
    config["notes"] = list(frame.attrs.get("notes", []))
    written["config"] = replace_text(path / "config.json", json.dumps(config, indent=2, default=str) + "\n")
    if plot:
        try:
            from ckptrank.plotting import plot_scores

            written["plot"] = replace_file(path / "scores.png", lambda tmp: plot_scores(frame, tmp))
        except ImportError as err:  # matplotlib is an optional extra
            logger.warning("scores.png not drawn: %s", err)
    return written
