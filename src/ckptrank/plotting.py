"""Figures of a ranking (matplotlib, drawn off-screen with the Agg renderer).

Only :class:`matplotlib.figure.Figure` is used, never ``pyplot``, so drawing a figure neither
changes the user's matplotlib backend nor opens a window.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["plot_scores"]

_BEST = "#1b7837"
_OTHER = "#4d4d4d"
_BASELINE = "#9e9e9e"


def _import_figure() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is in the report extra
        raise ImportError(
            "drawing scores.png needs matplotlib; install it with: pip install 'ckptrank[report]'"
        ) from None
    return Figure


def _panel(
    ax: Any,
    values: np.ndarray,
    title: str,
    higher_is_better: bool,
    color: str,
    fmt: str = "{:.4g}",
    missing: str = "skipped",
) -> None:
    """One measure: a dot per checkpoint on the measure's own raw axis, a stem from the axis start."""
    n = values.shape[0]
    y = np.arange(n)
    finite = np.isfinite(values)
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", color="#e0e0e0", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if not finite.any():
        ax.text(0.5, 0.5, "not scored", transform=ax.transAxes, ha="center", va="center", fontsize=8)
        ax.set_xticks([])
        return
    low, high = float(values[finite].min()), float(values[finite].max())
    span = high - low if high > low else (abs(high) or 1.0)
    left, right = low - 0.08 * span, high + 0.25 * span
    ax.set_xlim(left, right)
    best = high if higher_is_better else low
    for i in y:
        if not finite[i]:
            ax.text(left, i, " " + missing, va="center", ha="left", fontsize=7, color=_BASELINE)
            continue
        value = float(values[i])
        is_best = math.isclose(value, best, rel_tol=0.0, abs_tol=1e-12 * max(1.0, abs(best)))
        dot = _BEST if is_best and color != _BASELINE else color
        ax.plot([left, value], [i, i], color=dot, linewidth=1.0, alpha=0.45)
        ax.plot([value], [i], "o", color=dot, markersize=5)
        ax.text(value, i - 0.28, " " + fmt.format(value), va="bottom", ha="left", fontsize=6.5, color=dot)


def plot_scores(frame: pd.DataFrame, path: str | Path, *, dpi: int = 120) -> Path:
    """Draw every checkpoint's score per measure, one small panel per measure, and save a PNG.

    Checkpoints are listed top to bottom in rank order (best first) in every panel, each measure
    on its own raw axis, so the gaps between checkpoints are visible and not only the order; the
    best value of each measure is green. Grey panels on the right show the target-blind
    baselines (parameter count, stated source accuracy).

    Parameters
    ----------
    frame : pandas.DataFrame
        A result of :func:`ckptrank.rank` (uses ``frame.attrs["measures"]`` and
        ``frame.attrs["higher_is_better"]``).
    path : str or path
        Where to write the PNG.
    dpi : int

    Returns
    -------
    pathlib.Path
        The written file.
    """
    Figure = _import_figure()
    names = list(frame.attrs.get("measures", []))
    higher = dict(frame.attrs.get("higher_is_better", {}))
    rows = frame[frame["status"] == "ok"] if "status" in frame else frame
    labels = [str(c) for c in rows["checkpoint"]]
    n = max(len(labels), 1)
    panels: list[tuple[np.ndarray, str, bool, str, str, str]] = []
    for name in names:
        direction = "higher is better" if higher.get(name, True) else "lower is better"
        values = rows[name].to_numpy(dtype=float)
        panels.append((values, f"{name}\n({direction})", higher.get(name, True), _OTHER, "{:.4g}", "skipped"))
    if "num_parameters" in rows:
        params = rows["num_parameters"].to_numpy(dtype=float, na_value=np.nan) / 1e6
        if np.isfinite(params).any():
            panels.append((params, "parameters (M)\nbaseline", True, _BASELINE, "{:.2f}", "unknown"))
    if "source_accuracy" in rows:
        accuracy = rows["source_accuracy"].to_numpy(dtype=float)
        if np.isfinite(accuracy).any():
            panels.append((accuracy, "source accuracy\nbaseline", True, _BASELINE, "{:.3f}", "not stated"))
    if not panels:
        panels.append((np.full(len(labels), np.nan), "no scores", True, _OTHER, "{:.4g}", "skipped"))

    label_width = min(max((len(label) for label in labels), default=10), 48) * 0.065 + 0.4
    width = label_width + 2.1 * len(panels)
    height = 1.3 + 0.38 * n
    fig = Figure(figsize=(width, height), dpi=dpi)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (values, title, hib, color, fmt, missing) in zip(axes, panels, strict=True):
        _panel(ax, values, title, hib, color, fmt, missing)
    axes[0].set_yticks(np.arange(len(labels)))
    ranks = rows["rank"].tolist() if "rank" in rows else [None] * len(labels)
    ticks = [label if _isnan(r) else f"{int(r)}. {label}" for r, label in zip(ranks, labels, strict=True)]
    axes[0].set_yticklabels(ticks, fontsize=8)
    axes[0].set_ylim(len(labels) - 0.5, -0.7)
    dataset = frame.attrs.get("dataset") or {}
    title = "Predicted transferability"
    if dataset:
        size = f"{dataset.get('n_samples')} samples, {dataset.get('n_classes')} classes"
        title += f" on {dataset.get('name')} ({size})"
    fig.suptitle(title, fontsize=10)
    fig.text(
        0.5,
        0.005,
        "Each panel: one measure on its own raw scale; checkpoints in consensus-rank order; best in green. "
        "A prediction, not a fine-tuning result.",
        ha="center",
        va="bottom",
        fontsize=7,
        color="#555555",
    )
    fig.subplots_adjust(
        left=label_width / width, right=0.98, top=1 - 0.75 / height, bottom=0.55 / height, wspace=0.12
    )
    out = Path(path)
    fig.savefig(out, format="png")
    return out


def _isnan(value: Any) -> bool:
    try:
        return bool(value is None or value != value)  # NaN and pandas.NA
    except TypeError:
        return True
