"""A self-contained HTML report of a benchmark run, with its figures also written as PNGs.

:func:`write_report` writes into a folder:

* ``report.html``: one page with no external resource (figures embedded as base64 PNG data
  URIs, inline CSS): one sentence saying which ranker or measure to use and why
  (:func:`recommendation`), the headline summary table (every measure beside the static
  baselines, its interval, the paired comparison with the best baseline and its verdict, narrow
  enough for a 1400 px screen) with the other statistics in a ``<details>`` table, the means per
  track, the paired comparisons of every two rows, the seed agreement and reliability of the
  ground truth, the random-init sanity check, the weighted tau of every measure on every task,
  the recomputed vs reported values (published suites), the figures, the notes, the provenance
  and the configuration;
* ``figures/*.png``: weighted tau with its intervals per measure, the per-task heat map, cost vs
  quality (when timings exist), score vs ground truth per measure and task, and recomputed vs
  reported;
* ``summary.csv``, ``per_task.csv``, ``comparisons.csv``, ``seed_agreement.csv``,
  ``controls.csv``, ``scores.csv``, ``reported.csv`` (when any) and ``evaluation.json``.

Colours follow the paired verdict against the best baseline everywhere (table and figures):
green only for "better" (interval of the difference above 0), orange for "worse", dark grey for
"level" or no interval. Wide tables scroll inside their own box, so the page itself never scrolls
sideways, on a phone included. Files of the same names are replaced; other files in the folder
are left alone. The figures are drawn with :class:`matplotlib.figure.Figure` and the Agg
renderer (never ``pyplot``), so drawing neither needs a display nor changes the user's
matplotlib backend.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .evaluate import Evaluation
    from .harness import BenchResult

__all__ = ["figure_files", "recommendation", "render_html", "write_report"]

#: Colours of the paired verdict against the best baseline: better (interval of the difference
#: above 0), worse (below 0), tie or no interval (neutral), and the baselines themselves.
_GOOD = "#1b7837"
_MARKED = "#d95f02"
_NEUTRAL = "#4d4d4d"
_BASELINE = "#9a9a9a"
_VERDICT_COLORS = {"better": _GOOD, "worse": _MARKED, "tie": _NEUTRAL}
_SEED = "#2c7fb8"
_DPI = 110
_STAT_LABELS = {
    "weighted_tau": "weighted τ",
    "pearson": "Pearson",
    "kendall_tau": "Kendall τ",
    "spearman": "Spearman",
}

_CSS = """
* { box-sizing: border-box; }
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; margin: 0;
       color: #222; background: #fafafa; overflow-wrap: break-word; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 60px; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; overflow-wrap: anywhere; }
h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
p.lead { color: #555; margin-top: 0; }
p.recommend { font-size: 1.08em; background: #f4f7fb; border-left: 4px solid #2c7fb8; padding: 8px 12px; }
table { border-collapse: collapse; font-size: 0.86em; margin: 10px 0; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: right; white-space: nowrap; }
td.name, th.name { text-align: left; }
td.name { white-space: normal; overflow-wrap: anywhere; min-width: 7em; max-width: 20em; }
table.details th { white-space: normal; min-width: 3.6em; }
table.details td.name { max-width: 14em; }
th { background: #f2f2f2; }
tr.baseline td { color: #666; background: #f7f7f7; font-style: italic; }
tr.v-better td.verdict { color: #1b7837; font-weight: bold; }
tr.v-worse td.verdict { color: #d95f02; font-weight: bold; }
tr.v-tie td.verdict, tr.v-none td.verdict { color: #4d4d4d; }
tr.v-better td.measure { border-left: 4px solid #1b7837; }
tr.v-worse td.measure { border-left: 4px solid #d95f02; }
tr.v-tie td.measure { border-left: 4px solid #bdbdbd; }
div.scroll { overflow-x: auto; max-width: 100%; }
details.more { margin: 6px 0 0; }
details.more summary { cursor: pointer; color: #2c5f8a; }
td.flag { color: #b30000; font-weight: bold; }
td.ok { color: #1b7837; }
.ci { color: #777; font-size: 0.92em; }
figure { margin: 18px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.85em; }
ul.notes li { font-size: 0.88em; color: #444; margin: 2px 0; }
pre { background: #f6f6f6; padding: 10px; font-size: 0.8em; overflow-x: auto; white-space: pre-wrap;
      overflow-wrap: anywhere; }
.legend { font-size: 0.85em; color: #555; }
@media (max-width: 640px) {
  main { padding: 14px 12px 40px; }
  h1 { font-size: 1.3em; }
  table { font-size: 0.8em; }
}
"""


def _verdict(row: Any) -> str | None:
    """The row's paired verdict against the best baseline (None for a baseline or without interval)."""
    verdict = row.get("verdict") if hasattr(row, "get") else None
    return verdict if isinstance(verdict, str) and verdict in _VERDICT_COLORS else None


def _row_color(row: Any) -> str:
    """Green only for "better", orange for "worse", neutral for "tie" or no verdict, grey for baselines."""
    if row["kind"] == "baseline":
        return _BASELINE
    return _VERDICT_COLORS.get(_verdict(row) or "", _NEUTRAL)


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is in the report extra
        raise ImportError("the benchmark report needs matplotlib; pip install 'ckptrank[report]'") from None
    return Figure


def _slug(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z._-]+", "_", name).strip("_") or "measure"


def _fmt(value: Any, digits: int = 3) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(number):
        return "—"
    return f"{number:.{digits}f}"


def _fmt_ci(low: Any, high: Any) -> str:
    if not (_finite(low) and _finite(high)):
        return ""
    return f"[{float(low):.2f}, {float(high):.2f}]"


def _missing(value: Any) -> bool:
    """None, NaN or pandas NA (pandas may turn None into NaN in object/string columns)."""
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _seconds(value: Any) -> str:
    if not _finite(value):
        return "—"
    number = float(value)
    if number == 0:
        return "0"
    return f"{number:.3g}"


# ------------------------------------------------------------------------------------------------
# Figures


def _margins(
    fig: Any, *, left_chars: int = 0, bottom: float = 0.55, top: float = 0.45, right: float = 0.2
) -> None:
    """Fixed margins in inches (``tight_layout`` would draw the figure twice)."""
    width, height = fig.get_figwidth(), fig.get_figheight()
    left = 0.35 + 0.065 * left_chars
    fig.subplots_adjust(
        left=min(left / width, 0.6),
        right=1.0 - right / width,
        bottom=min(bottom / height, 0.5),
        top=1.0 - top / height,
    )


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def _tau_figure(result: BenchResult) -> Any:
    """Mean weighted tau per measure with its bootstrap intervals, beside the baselines.

    Colours follow the paired verdict against the best baseline (:func:`_row_color`).
    """
    Figure = _figure_class()
    ev = result.evaluation
    summary = ev.summary
    measures = summary[summary["kind"] != "baseline"].sort_values("weighted_tau", ascending=True)
    baselines = summary[summary["kind"] == "baseline"]
    rows = pd.concat([baselines, measures])
    n = max(len(rows), 1)
    longest = max((len(str(name)) for name in rows.index), default=8)
    fig = Figure(figsize=(6.8 + 0.065 * longest, 1.2 + 0.42 * n))
    ax = fig.subplots()
    y = np.arange(len(rows))
    for i, (name, row) in enumerate(rows.iterrows()):
        color = _row_color(row)
        low, high = row["weighted_tau_ci_low"], row["weighted_tau_ci_high"]
        if _finite(low) and _finite(high):
            ax.plot([low, high], [i, i], color=color, linewidth=2.2, alpha=0.8, solid_capstyle="butt")
        slow, shigh = row["weighted_tau_seed_ci_low"], row["weighted_tau_seed_ci_high"]
        if _finite(slow) and _finite(shigh):
            ax.plot([slow, shigh], [i - 0.22, i - 0.22], color=_SEED, linewidth=1.4, alpha=0.9)
        if _finite(row["weighted_tau"]):
            ax.plot([row["weighted_tau"]], [i], "o", color=color, markersize=6, gid=f"point:{name}")
            ax.text(
                row["weighted_tau"],
                i + 0.2,
                f"{row['weighted_tau']:.3f}",
                fontsize=8,
                color=color,
                va="bottom",
            )
    best = baselines["weighted_tau"].max() if len(baselines) else math.nan
    if _finite(best):
        ax.axvline(best, color=_BASELINE, linestyle="--", linewidth=1.0)
        side = "right" if best > 0.5 else "left"
        ax.text(best, len(rows) - 0.45, " best baseline ", fontsize=8, color=_BASELINE, va="bottom", ha=side)
    reliability = ev.mean_reliability()
    if _finite(reliability):
        ax.axvline(reliability, color=_SEED, linestyle=":", linewidth=1.2)
        side = "right" if reliability > 0.5 else "left"
        ax.text(reliability, -0.9, "truth reliability ", fontsize=8, color=_SEED, va="bottom", ha=side)
    ax.axvline(0.0, color="#cccccc", linewidth=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels([str(name) for name in rows.index], fontsize=8.5, parse_math=False)
    ax.set_ylim(-1.0, len(rows) - 0.2)
    ax.set_xlim(-1.05, 1.12)
    ax.set_xlabel("mean weighted Kendall tau over tasks (scipy defaults)", fontsize=8.5)
    ax.grid(axis="x", color="#eeeeee")
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    conf = round(100 * ev.config.get("confidence", 0.95))
    ax.set_title(
        f"{result.suite.name}: mean weighted tau, {conf}% bootstrap intervals\n"
        "(thick: over checkpoints; thin blue: over ground-truth seeds)\n"
        "green / orange / dark grey: better / worse / level than the best baseline (paired)",
        fontsize=9,
    )
    _margins(fig, left_chars=longest, top=0.8)
    return fig


def _heatmap_figure(result: BenchResult) -> Any:
    """Weighted tau of every measure and baseline on every task."""
    Figure = _figure_class()
    table = result.evaluation.task_table("weighted_tau")
    values = table.to_numpy(dtype=float)
    n_rows, n_cols = values.shape
    longest = max((len(str(name)) for name in table.index), default=8)
    tallest = max((len(str(name)) for name in table.columns), default=4)
    fig = Figure(
        figsize=(1.6 + 0.065 * longest + 0.62 * max(n_cols, 1), 1.0 + 0.05 * tallest + 0.36 * max(n_rows, 1))
    )
    ax = fig.subplots()
    masked = np.ma.masked_invalid(values)
    image = ax.imshow(masked, cmap="RdBu", vmin=-1.0, vmax=1.0, aspect="auto")
    for r in range(n_rows):
        for c in range(n_cols):
            if np.isfinite(values[r, c]):
                color = "white" if abs(values[r, c]) > 0.6 else "black"
                ax.text(c, r, f"{values[r, c]:.2f}", ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(np.arange(n_cols))
    ax.set_xticklabels([str(c) for c in table.columns], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(np.arange(n_rows))
    ax.set_yticklabels([str(i) for i in table.index], fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02).ax.tick_params(labelsize=7)
    ax.set_title("weighted tau per task (blank: not evaluated)", fontsize=9)
    _margins(fig, left_chars=longest, bottom=0.3 + 0.05 * tallest, right=0.9)
    return fig


def _cost_figure(result: BenchResult) -> Any | None:
    """Median seconds per checkpoint vs mean weighted tau (None when no timing is known).

    Points are coloured by the paired verdict; labels are placed by
    :func:`ckptrank.plotting.place_labels` (no two overlap, none leaves the axes).
    """
    from ckptrank.plotting import place_labels

    summary = result.evaluation.summary
    measures = summary[(summary["kind"] != "baseline") & summary["seconds"].apply(_finite)]
    measures = measures[measures["seconds"].astype(float) > 0]
    measures = measures[measures["weighted_tau"].apply(_finite)]
    if measures.empty:
        return None
    Figure = _figure_class()
    fig = Figure(figsize=(7.6, 5.0))
    ax = fig.subplots()
    xs, ys, names, colors = [], [], [], []
    y_range: list[float] = []
    for name, row in measures.iterrows():
        color = _row_color(row)
        x, y = float(row["seconds"]), float(row["weighted_tau"])
        low, high = row["weighted_tau_ci_low"], row["weighted_tau_ci_high"]
        if _finite(low) and _finite(high):
            ax.plot([x, x], [low, high], color=color, alpha=0.5)
            y_range += [float(low), float(high)]
        ax.plot([x], [y], "o", color=color, markersize=6, gid=f"point:{name}")
        xs.append(x)
        ys.append(y)
        y_range.append(y)
        names.append(str(name))
        colors.append(color)
    fixed = []
    for name, row in summary[summary["kind"] == "baseline"].iterrows():
        if _finite(row["weighted_tau"]):
            ax.axhline(row["weighted_tau"], color=_BASELINE, linestyle="--", linewidth=0.9)
            y_range.append(float(row["weighted_tau"]))
            fixed.append(
                ax.text(
                    0.01,
                    row["weighted_tau"],
                    f"{name} (free)",
                    transform=ax.get_yaxis_transform(),
                    fontsize=8,
                    color="#666666",
                    va="bottom",
                    parse_math=False,
                    gid=f"baseline:{name}",
                )
            )
    ax.set_xscale("log")
    low_x, high_x = min(xs), max(xs)
    ax.set_xlim(low_x / 1.5, high_x * 1.5)
    low_y, high_y = min(y_range), max(y_range)
    span = (high_y - low_y) or 0.5
    ax.set_ylim(low_y - 0.08 * span, high_y + 0.12 * span)
    ax.set_xlabel("median seconds to score one checkpoint on one task (extraction excluded)", fontsize=9)
    ax.set_ylabel("mean weighted tau", fontsize=9)
    ax.tick_params(labelsize=8.5)
    ax.set_title(
        "cost vs quality (up and left is better); green / orange / dark grey:\n"
        "better / worse / level vs the best baseline (paired interval)",
        fontsize=9,
    )
    ax.grid(color="#eeeeee")
    _margins(fig, left_chars=6, top=0.6)
    place_labels(ax, xs, ys, names, colors=colors, fontsize=8.5, fixed=fixed)
    return fig


def _scatter_figure(result: BenchResult, measure: str) -> Any:
    """Score vs ground truth of one measure (or baseline), one panel per task.

    Up to 16 checkpoints per panel are labelled (names cut in their middle beyond 24 characters)
    by :func:`ckptrank.plotting.place_labels`: no two labels overlap and none leaves its panel.
    """
    from ckptrank.plotting import place_labels, shorten_middle

    Figure = _figure_class()
    ev = result.evaluation
    pairs = ev.pairs[ev.pairs["measure"] == measure]
    tasks = [t for t in ev.tasks if t in set(pairs["task"])]
    n = max(len(tasks), 1)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    width, height = 4.2 * cols, 3.4 * rows + 0.6
    fig = Figure(figsize=(width, height))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    # fixed margins in inches (tight_layout would draw every panel twice), set before the labels
    # are placed, since placing them measures the panels
    fig.subplots_adjust(
        left=0.7 / width,
        right=1.0 - 0.15 / width,
        bottom=0.45 / height,
        top=1.0 - 0.7 / height,
        wspace=0.25,
        hspace=0.45,
    )
    per_task = ev.per_task[(ev.per_task["measure"] == measure) & (ev.per_task["statistic"] == "weighted_tau")]
    taus = dict(zip(per_task["task"], per_task["value"], strict=True))
    kind = pairs["kind"].iloc[0] if len(pairs) else "measure"
    color = _BASELINE if kind == "baseline" else "#4d4d4d"
    for ax, task in zip(axes, tasks, strict=False):
        rows_t = pairs[pairs["task"] == task]
        control = (
            rows_t["control"].astype(bool).to_numpy() if "control" in rows_t else np.zeros(len(rows_t), bool)
        )
        x = rows_t["score"].to_numpy(dtype=float)
        y = rows_t["truth"].to_numpy(dtype=float)
        err = rows_t["truth_std"].to_numpy(dtype=float)
        for mask, marker in ((~control, "o"), (control, "x")):
            if not mask.any():
                continue
            if np.isfinite(err[mask]).any():
                ax.errorbar(
                    x[mask],
                    y[mask],
                    yerr=np.nan_to_num(err[mask]),
                    fmt=marker,
                    color=color,
                    markersize=4,
                    elinewidth=0.8,
                )
            else:
                ax.plot(x[mask], y[mask], marker, color=color, markersize=4)
        if (~control).any():
            best = int(np.flatnonzero(~control)[np.argmax(y[~control])])
            ax.plot([x[best]], [y[best]], "o", color=_GOOD, markersize=6, fillstyle="none")
        ax.margins(x=0.12, y=0.12)
        ax.set_title(f"{task}: τw = {_fmt(taus.get(task))}", fontsize=9, parse_math=False)
        ax.tick_params(labelsize=8)
        ax.grid(color="#eeeeee")
        if len(x) <= 16:
            labels = [shorten_middle(str(label), 24) for label in rows_t["checkpoint"]]
            place_labels(ax, x, y, labels, colors=["#333333"] * len(labels), fontsize=8, max_widen=6)
    for ax in axes[len(tasks) :]:
        ax.set_visible(False)
    suffix = " (target-blind baseline)" if kind == "baseline" else ""
    fig.suptitle(
        f"{measure}{suffix}: score (x) vs fine-tuned accuracy (y); x = random-init control (not in τw)",
        fontsize=10,
        parse_math=False,
    )
    return fig


def _reported_figure(result: BenchResult) -> Any | None:
    rep = result.evaluation.reported
    if rep is None or not rep["recomputed"].apply(_finite).any():
        return None
    Figure = _figure_class()
    fig = Figure(figsize=(5.4, 5.0))
    ax = fig.subplots()
    rows = rep[rep["recomputed"].apply(_finite)]
    flagged = rows["flagged"].astype(bool).to_numpy()
    ax.plot([-1, 1], [-1, 1], color="#bbbbbb", linewidth=0.8)
    ax.plot(
        rows["reported"][~flagged],
        rows["recomputed"][~flagged],
        "o",
        color=_GOOD,
        markersize=4,
        label="agree",
    )
    ax.plot(rows["reported"][flagged], rows["recomputed"][flagged], "x", color="#b30000", label="disagree")
    ax.set_xlabel("reported", fontsize=8.5)
    ax.set_ylabel("recomputed from the scores", fontsize=8.5)
    tol = result.evaluation.config.get("tolerance", 0.0015)
    ax.set_title(
        f"recomputed vs reported ({int((~flagged).sum())} of {len(rows)} agree within {tol:g})", fontsize=9
    )
    ax.legend(fontsize=8)
    ax.grid(color="#eeeeee")
    _margins(fig, left_chars=6)
    return fig


def figure_files(result: BenchResult) -> dict[str, bytes]:
    """Every figure of the report as PNG bytes, keyed by file name."""
    figures: dict[str, bytes] = {"weighted_tau.png": _png(_tau_figure(result))}
    figures["weighted_tau_per_task.png"] = _png(_heatmap_figure(result))
    cost = _cost_figure(result)
    if cost is not None:
        figures["cost_vs_quality.png"] = _png(cost)
    reported = _reported_figure(result)
    if reported is not None:
        figures["reported_vs_recomputed.png"] = _png(reported)
    for name in result.evaluation.summary.index:
        figures[f"scores_{_slug(str(name))}.png"] = _png(_scatter_figure(result, str(name)))
    return figures


# ------------------------------------------------------------------------------------------------
# HTML


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _verdict_mark(verdict: Any) -> str:
    return {"better": "✓", "worse": "✗", "tie": "≈"}.get(verdict if isinstance(verdict, str) else "", "")


def _diff_cell(diff: Any, low: Any, high: Any) -> str:
    if not _finite(diff):
        return "—"
    text = f"{float(diff):+.3f}"
    if _finite(low) and _finite(high):
        text += f" <span class='ci'>[{float(low):+.2f}, {float(high):+.2f}]</span>"
    return text


_VERDICT_TEXT = {"better": "better ✓", "worse": "worse ✗", "tie": "level ≈"}


def _row_class(row: Any) -> str:
    if row["kind"] == "baseline":
        return "baseline"
    return f"v-{_verdict(row) or 'none'}"


def _summary_table(result: BenchResult) -> str:
    """The headline table: few, narrow columns, so it fits a laptop screen without scrolling."""
    summary = result.evaluation.summary
    conf = round(100 * result.evaluation.config.get("confidence", 0.95))
    head = [
        ("measure", "name"),
        ("weighted τ", ""),
        (f"{conf}% CI", ""),
        ("tasks", ""),
        ("best baseline", "name"),
        ("diff vs baseline (paired)", ""),
        ("verdict", ""),
        ("s / ckpt", ""),
    ]
    out = ["<div class='scroll'><table class='summary' id='summary'><thead><tr>"]
    out += [f"<th class='{cls}'>{_e(h)}</th>" for h, cls in head]
    out.append("</tr></thead><tbody>")
    for name, row in summary.iterrows():
        verdict = _verdict(row)
        baseline = row["kind"] == "baseline"
        best = "" if _missing(row["best_baseline"]) else _e(row["best_baseline"])
        if best and _finite(row["best_baseline_tau"]):
            best += f" <span class='ci'>({_fmt(row['best_baseline_tau'])})</span>"
        mark = "" if baseline else _VERDICT_TEXT.get(verdict or "", "—")
        cells = [
            f"<td class='name measure'>{_e(name)}</td>",
            f"<td><b>{_fmt(row['weighted_tau'])}</b></td>",
            f"<td class='ci'>{_fmt_ci(row['weighted_tau_ci_low'], row['weighted_tau_ci_high'])}</td>",
            f"<td>{int(row['n_tasks'])}</td>",
            f"<td class='name'>{best}</td>",
            f"<td>{_diff_cell(row['diff_vs_baseline'], row['diff_ci_low'], row['diff_ci_high'])}</td>",
            f"<td class='verdict'>{_e(mark)}</td>",
            f"<td>{'free' if baseline else _seconds(row['seconds'])}</td>",
        ]
        out.append(f"<tr class='{_row_class(row)}' data-verdict='{_e(verdict or '')}'>{''.join(cells)}</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _details_table(result: BenchResult) -> str:
    """The other statistics of the summary, in a second table (inside a ``<details>`` element)."""
    summary = result.evaluation.summary
    ks = result.evaluation.config.get("ks", [1, 3])
    head = ["measure", "CI seeds", "Kendall τ", "Pearson", "Spearman"]
    head += [f"Rel@{k}" for k in ks] + [f"hit@{k}" for k in ks]
    head += ["regret", "τ vs base (common pairs)", "common tasks / pairs", "P(> base)", "controls below"]
    out = ["<div class='scroll'><table class='details' id='summary-details'><thead><tr>"]
    out += [f"<th class='{'name' if h == 'measure' else ''}'>{_e(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for name, row in summary.iterrows():
        cells = [
            f"<td class='name measure'>{_e(name)}</td>",
            f"<td class='ci'>{_fmt_ci(row['weighted_tau_seed_ci_low'], row['weighted_tau_seed_ci_high'])}"
            "</td>",
            f"<td>{_fmt(row['kendall_tau'])}</td>",
            f"<td>{_fmt(row['pearson'])}</td>",
            f"<td>{_fmt(row['spearman'])}</td>",
        ]
        cells += [f"<td>{_fmt(row.get(f'rel@{k}'))}</td>" for k in ks]
        cells += [f"<td>{_fmt(row.get(f'hit@{k}'), 2)}</td>" for k in ks]
        cells.append(f"<td>{_fmt(row['top1_regret'], 2)}</td>")
        if _missing(row["best_baseline"]):
            cells += ["<td>—</td>", "<td>—</td>"]
        else:
            cells.append(f"<td>{_fmt(row['weighted_tau_common'])} vs {_fmt(row['best_baseline_tau'])}</td>")
            cells.append(f"<td>{int(row['n_common_tasks'])} / {int(row['n_common_pairs'])}</td>")
        cells.append(f"<td>{_fmt(row['p_beats_baseline'], 2)}</td>")
        tasks = int(row.get("controls_tasks", 0) or 0)
        below = f"{int(row['controls_below'])}/{tasks}" if tasks else "—"
        cells.append(f"<td>{below}</td>")
        out.append(f"<tr class='{_row_class(row)}'>{''.join(cells)}</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _display_name(name: str, kind: str) -> str:
    if kind != "default":
        return str(name)
    if "(published" in str(name):
        what = "the default ranker on the published scores (not the exact ckptrank rank column)"
        if "in-sample" in str(name):
            what += ", in-sample here (it was fitted on these tasks, see --held-out)"
        return what
    if "in-sample" in str(name):
        return (
            "the default ranker (ckptrank rank; in-sample here: it was fitted on these tasks, see --held-out)"
        )
    return "the default ranker (ckptrank rank)"


def recommendation(evaluation: Evaluation) -> str:
    """One sentence saying which ranker or measure to use and why, from the paired comparisons.

    Among the rows that beat their best target-blind baseline (paired interval of the difference
    above 0), the one of highest mean weighted tau is recommended, or the default ranker when it
    is among them and the other is not better than it (paired). When nothing beats the baseline,
    the sentence says so plainly and names the baseline, which costs nothing. A row of the default
    ranker on tasks it was fitted on (``in-sample``) is never recommended: its figure flatters it.
    Its row on a published score table (which lacks some of its measures) competes like a measure,
    without the preference that the exact ``ckptrank rank`` column gets.

    Parameters
    ----------
    evaluation : Evaluation
        A result of :func:`ckptrank.bench.evaluate.evaluate`.

    Returns
    -------
    str
        Plain text (not HTML).
    """
    summary = evaluation.summary
    conf = round(100 * evaluation.config.get("confidence", 0.95))
    rows = summary[summary["weighted_tau"].apply(_finite)]
    in_sample = [n for n in rows.index if rows.loc[n, "kind"] == "default" and "in-sample" in str(n)]
    candidates = rows[(rows["kind"] != "baseline") & ~rows.index.isin(in_sample)]
    baselines = rows[rows["kind"] == "baseline"]
    if candidates.empty:
        if baselines.empty:
            return "Nothing to recommend: no row has a mean weighted τ (too few checkpoints or tasks)."
        top = baselines["weighted_tau"].astype(float).idxmax()
        return (
            f"Only target-blind baselines were evaluated; the best is {top} (mean weighted τ "
            f"{_fmt(baselines.loc[top, 'weighted_tau'])}); score the checkpoints with measures to "
            "compare them."
        )

    def who(name: Any) -> str:
        return _display_name(str(name), str(candidates.loc[name, "kind"]))

    def tau(name: Any) -> str:
        n = int(candidates.loc[name, "n_tasks"])
        return f"mean weighted τ {_fmt(candidates.loc[name, 'weighted_tau'])} over {n} task{'s' * (n != 1)}"

    def interval(row: Any) -> str:
        return f"[{float(row['diff_ci_low']):+.2f}, {float(row['diff_ci_high']):+.2f}]"

    if baselines.empty or candidates["best_baseline"].apply(_missing).all():
        top = candidates["weighted_tau"].astype(float).idxmax()
        return (
            f"Use {who(top)}: {tau(top)}, the highest here; no target-blind baseline was evaluated on the "
            "same checkpoints, so whether it beats one is not known."
        )
    verdicts = candidates.apply(_verdict, axis=1)
    better = candidates[verdicts == "better"]
    if len(better):
        pick = better["weighted_tau"].astype(float).idxmax()
        clause = ""
        defaults = [
            n for n in better.index if better.loc[n, "kind"] == "default" and "(published" not in str(n)
        ]
        if defaults and pick != defaults[0]:
            versus = evaluation.comparison(str(pick), str(defaults[0]))
            if versus is not None and versus["verdict"] != "better":
                clause = (
                    f"; {pick}'s higher mean ({_fmt(better.loc[pick, 'weighted_tau'])}) is not "
                    f"distinguishable from it (paired {conf}% interval of the difference "
                    f"[{versus['ci_low']:+.2f}, {versus['ci_high']:+.2f}])"
                )
                pick = defaults[0]
        row = better.loc[pick]
        return (
            f"Use {who(pick)}: {tau(pick)}, above the free baseline {row['best_baseline']} "
            f"({_fmt(row['best_baseline_tau'])} on the same pairs) by {float(row['diff_vs_baseline']):+.3f}, "
            f"paired {conf}% interval {interval(row)} above 0{clause}."
        )
    top = candidates["weighted_tau"].astype(float).idxmax()
    row = candidates.loc[top]
    base = row["best_baseline"]
    if _missing(base):
        return (
            f"Nothing here is shown to beat a target-blind baseline; the highest is {who(top)} ({tau(top)})."
        )
    base_tau = _fmt(row["best_baseline_tau"])
    if _verdict(row) is None:
        return (
            f"Nothing here is shown to beat the free baseline {base} ({base_tau}): no paired interval was "
            f"computed (n_bootstrap=0); the highest is {who(top)} ({tau(top)})."
        )
    if _verdict(row) == "tie":
        how = f"level with it (paired {conf}% interval of the difference {interval(row)} contains 0)"
        advice = f"rank by {base}, which costs nothing, or by {who(top)}, which does no worse"
    else:
        how = f"worse (paired {conf}% interval of the difference {interval(row)} below 0)"
        advice = f"rank by {base}, which costs nothing"
    return (
        f"Nothing here beats the free baseline {base} (mean weighted τ {base_tau} on the same pairs): "
        f"the best, {who(top)} ({tau(top)}), is {how}; {advice}."
    )


def _track_table(result: BenchResult) -> str:
    ev = result.evaluation
    tracks = ev.track_names
    if not tracks:
        return ""
    out = ["<div class='scroll'><table><thead><tr><th class='name'>measure</th><th>all (tasks)</th>"]
    for track in tracks:
        n = sum(1 for t in ev.tasks if ev.tracks.get(t) == track)
        out.append(f"<th>{_e(track)} ({n} tasks)</th>")
    out.append("</tr></thead><tbody>")
    for name, row in ev.summary.iterrows():
        cls = "baseline" if row["kind"] == "baseline" else ""
        out.append(f"<tr class='{cls}'><td class='name'>{_e(name)}</td>")
        out.append(f"<td>{_fmt(row['weighted_tau'])} ({int(row['n_tasks'])})</td>")
        for track in tracks:
            n = int(row.get(f"n_tasks:{track}", 0) or 0)
            value = row.get(f"weighted_tau:{track}")
            out.append(f"<td>{_fmt(value)} ({n})</td>" if n else "<td>—</td>")
        out.append("</tr>")
    out.append("<tr class='baseline'><td class='name'>truth reliability</td>")
    out.append(f"<td>{_fmt(ev.mean_reliability())}</td>")
    out += [f"<td>{_fmt(ev.mean_reliability(track))}</td>" for track in tracks]
    out.append("</tr></tbody></table></div>")
    return "".join(out)


def _comparison_table(result: BenchResult) -> str:
    ev = result.evaluation
    rows = ev.comparisons
    if rows.empty:
        return "<p>No two rows share enough (task, checkpoint) pairs to be compared.</p>"
    out = []
    for scope in dict.fromkeys(rows["scope"]):
        part = rows[rows["scope"] == scope]
        title = "all tasks" if scope == "all" else f"track {scope}"
        out.append(f"<h3>{_e(title)}</h3><div class='scroll'><table><thead><tr>")
        for h in ("a", "b", "tasks", "pairs", "τ a", "τ b", "diff a − b", "P(a > b)", ""):
            out.append(f"<th class='{'name' if h in ('a', 'b') else ''}'>{_e(h)}</th>")
        out.append("</tr></thead><tbody>")
        for r in part.itertuples(index=False):
            cls = "ok" if r.verdict == "better" else "flag" if r.verdict == "worse" else ""
            out.append(
                f"<tr><td class='name'>{_e(r.a)}</td><td class='name'>{_e(r.b)}</td><td>{r.n_tasks}</td>"
                f"<td>{r.n_pairs}</td><td>{_fmt(r.tau_a)}</td><td>{_fmt(r.tau_b)}</td>"
                f"<td>{_diff_cell(r.diff, r.ci_low, r.ci_high)}</td><td>{_fmt(r.p_a_better, 2)}</td>"
                f"<td class='{cls}'>{_verdict_mark(r.verdict)}</td></tr>"
            )
        out.append("</tbody></table></div>")
    return "".join(out)


def _task_table(result: BenchResult) -> str:
    ev = result.evaluation
    table = ev.task_table("weighted_tau")
    kinds = ev.summary["kind"]
    out = ["<div class='scroll'><table><thead><tr><th class='name'>measure</th>"]
    out += [f"<th>{_e(c)}</th>" for c in table.columns]
    out.append("</tr></thead><tbody>")
    for name, row in table.iterrows():
        cls = "baseline" if kinds.get(name) == "baseline" else ""
        out.append(f"<tr class='{cls}'><td class='name'>{_e(name)}</td>")
        out += [f"<td>{_fmt(v)}</td>" for v in row.to_numpy(dtype=float)]
        out.append("</tr>")
    truth = ev.seed_agreement.set_index("task")
    for column, label, overall in (
        ("seed_agreement", "seed agreement", ev.mean_seed_agreement),
        ("reliability", "truth reliability", ev.mean_reliability),
    ):
        if not truth[column].apply(_finite).any():
            continue
        out.append(f"<tr class='baseline'><td class='name'>{_e(label)}</td>")
        for task in table.columns:
            if task == "mean":
                value = overall()
            elif str(task).startswith("mean:"):
                value = overall(str(task)[len("mean:") :])
            else:
                value = truth[column].get(task)
            out.append(f"<td>{_fmt(value)}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _truth_table(result: BenchResult) -> str:
    ev = result.evaluation
    truth = ev.seed_agreement
    if truth.empty or not truth["seed_agreement"].apply(_finite).any():
        seeds = sorted(set(truth["n_seeds"].astype(int))) if len(truth) else []
        return (
            "<p>No seed agreement or reliability: the ground truth has "
            f"{' / '.join(str(s) for s in seeds) or 'no'} seed(s) per task; at least 2 are needed.</p>"
        )
    out = [
        "<p class='legend'>Seed agreement: mean weighted τ between two single fine-tuning seeds. "
        "Reliability: of the mean over all seeds that the measures are scored against; split-half over "
        "seeds (every split into two halves, weighted τ between the half means), stepped up to all seeds "
        "with the Spearman-Brown formula. The seed mean is less noisy than one seed, so a measure can "
        "exceed the seed agreement; the reliability is the figure to hold measures against.</p>",
        "<div class='scroll'><table><thead><tr><th class='name'>task</th><th class='name'>track</th>"
        "<th>seeds</th>"
        "<th>checkpoints</th><th>seed agreement</th><th>reliability</th></tr></thead><tbody>",
    ]
    for row in truth.itertuples(index=False):
        out.append(
            f"<tr><td class='name'>{_e(row.task)}</td><td class='name'>{_e(row.track)}</td>"
            f"<td>{int(row.n_seeds)}</td><td>{int(row.n_checkpoints)}</td>"
            f"<td>{_fmt(row.seed_agreement)}</td><td>{_fmt(row.reliability)}</td></tr>"
        )
    out.append(
        f"<tr class='baseline'><td class='name'>mean</td><td></td><td></td><td></td>"
        f"<td>{_fmt(ev.mean_seed_agreement())}</td><td>{_fmt(ev.mean_reliability())}</td></tr>"
    )
    out.append("</tbody></table></div>")
    return "".join(out)


def _controls_table(result: BenchResult) -> str:
    ev = result.evaluation
    controls = ev.controls
    if controls.empty:
        return "<p>No random-initialised control among the checkpoints.</p>"
    out = [
        "<p class='legend'>Random-initialised controls are left out of every headline statistic. For each "
        "row and task: is every control scored strictly below every pre-trained checkpoint? Ordered: share "
        "of (control, pre-trained) pairs in that order (ties count half). The ground-truth row shows what "
        "fine-tuning itself says.</p><div class='scroll'><table><thead><tr>"
    ]
    for h in (
        "measure",
        "task",
        "controls",
        "pre-trained",
        "below every pre-trained?",
        "ordered",
        "top control",
    ):
        out.append(f"<th class='{'name' if h in ('measure', 'task', 'top control') else ''}'>{_e(h)}</th>")
    out.append("</tr></thead><tbody>")
    for r in controls.itertuples(index=False):
        cls = "baseline" if r.kind in ("baseline", "truth") else ""
        verdict = "yes" if bool(r.below_all) else "no"
        out.append(
            f"<tr class='{cls}'><td class='name'>{_e(r.measure)}</td><td class='name'>{_e(r.task)}</td>"
            f"<td>{r.n_controls}</td><td>{r.n_pretrained}</td>"
            f"<td class='{'ok' if r.below_all else 'flag'}'>{verdict}</td><td>{_fmt(r.ordered, 2)}</td>"
            f"<td class='name'>{_e(r.top_control)} (rank {r.top_control_rank})</td></tr>"
        )
    out.append("</tbody></table></div>")
    return "".join(out)


def _reported_table(result: BenchResult) -> str:
    rep = result.evaluation.reported
    if rep is None or rep.empty:
        return ""
    tol = result.evaluation.config.get("tolerance", 0.0015)
    compared = rep[rep["agrees"].notna()]
    agree = int(compared["agrees"].astype(bool).sum())
    lead = (
        f"<p>{agree} of {len(compared)} recomputed values agree with the reported ones within {tol:g}; "
        f"disagreements are flagged (red, ✗; hover for the difference). {len(rep) - len(compared)} reported "
        "value(s) have no scores to recompute them from.</p>"
    )
    stats_order = list(dict.fromkeys(rep["statistic"]))
    out = [lead, "<div class='scroll'><table><thead><tr><th class='name' rowspan='2'>task</th>"]
    out.append("<th class='name' rowspan='2'>measure</th>")
    out += [f"<th colspan='2'>{_e(_STAT_LABELS.get(stat, stat))}</th>" for stat in stats_order]
    out.append("</tr><tr>")
    out += ["<th>reported</th><th>recomputed</th>" for _ in stats_order]
    out.append("</tr></thead><tbody>")
    cells = {(r.task, r.measure, r.statistic): r for r in rep.itertuples(index=False)}
    for task, measure in dict.fromkeys(zip(rep["task"], rep["measure"], strict=True)):
        out.append(f"<tr><td class='name'>{_e(task)}</td><td class='name'>{_e(measure)}</td>")
        for stat in stats_order:
            row = cells.get((task, measure, stat))
            if row is None:
                out.append("<td></td><td></td>")
                continue
            if _missing(row.agrees):
                cls, title = "", "nothing to recompute from"
            elif bool(row.agrees):
                cls, title = "ok", f"agrees (diff {_fmt(row.diff, 4)})"
            else:
                cls, title = "flag", f"DISAGREES: diff {_fmt(row.diff, 4)}"
            mark = " ✗" if cls == "flag" else ""
            out.append(
                f"<td>{_fmt(row.reported)}</td><td class='{cls}' title='{_e(title)}'>"
                f"{_fmt(row.recomputed, 4)}{mark}</td>"
            )
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _reported_means(result: BenchResult) -> str:
    from .evaluate import reported_summary

    baselines = result.evaluation.baselines
    summary = reported_summary(result.evaluation)
    out = [
        "<p class='legend'>Mean over the source's tasks of the values it <b>reports</b>, the same mean "
        "<b>recomputed here</b> from its published scores (when they exist), and every target-blind baseline "
        "computed here on the same tasks; ✗: the reported mean does not exceed the best baseline. Reported "
        "values come without per-checkpoint scores, so this is a comparison of means, not a paired one.</p>"
        "<div class='scroll'><table><thead><tr>"
    ]
    head = ["measure", "statistic", "tasks", "reported", "recomputed", *(f"{b} (ours)" for b in baselines)]
    head += ["best baseline", ""]
    for h in head:
        out.append(
            f"<th class='{'name' if h in ('measure', 'statistic', 'best baseline') else ''}'>{_e(h)}</th>"
        )
    out.append("</tr></thead><tbody>")
    for row in summary.to_dict(orient="records"):
        if _missing(row["beats_baseline"]):
            verdict, cls = "", ""
        elif row["beats_baseline"]:
            verdict, cls = "✓", "ok"
        else:
            verdict, cls = "✗", "flag"
        baseline = (
            ""
            if _missing(row["best_baseline"])
            else f"{_e(row['best_baseline'])} ({_fmt(row['best_baseline_value'])})"
        )
        out.append(
            f"<tr><td class='name'>{_e(row['measure'])}</td>"
            f"<td class='name'>{_e(_STAT_LABELS.get(row['statistic'], row['statistic']))}</td>"
            f"<td>{row['n_tasks']}</td><td>{_fmt(row['reported'])}</td><td>{_fmt(row['recomputed'])}</td>"
        )
        out += [f"<td>{_fmt(row.get(b))}</td>" for b in baselines]
        out.append(f"<td class='name'>{baseline}</td><td class='{cls}'>{verdict}</td></tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _img(name: str, data: bytes, caption: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return (
        f"<figure><img src='data:image/png;base64,{encoded}' alt='{_e(name)}' data-file='{_e(name)}'>"
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def render_html(result: BenchResult, figures: dict[str, bytes] | None = None) -> str:
    """The report page as one self-contained HTML string."""
    figures = figure_files(result) if figures is None else figures
    ev = result.evaluation
    suite = result.suite
    source = {
        "scored": "scores computed here (through the feature cache and the results store)",
        "published": "the score table published with the suite",
        "file": f"the score file {result.config.get('scores')}",
        "table": "a score table given by the caller",
        "none": "no scores: only the static baselines",
    }.get(result.source, result.source)
    verdicts = {m: _verdict(ev.summary.loc[m]) for m in ev.measures}
    beating = [m for m, v in verdicts.items() if v == "better"]
    worse = [m for m, v in verdicts.items() if v == "worse"]
    tied = [m for m, v in verdicts.items() if v == "tie"]
    verdict = ""
    if ev.baselines and ev.measures:
        verdict = (
            f"<p><b>{len(beating)} of {len(ev.measures)}</b> rows beat the best static baseline "
            f"(paired interval of the difference above 0){': ' + _e(', '.join(beating)) if beating else ''}. "
            f"Significantly worse ✗: {_e(', '.join(worse)) or 'none'}; "
            f"not distinguishable ≈: {_e(', '.join(tied)) or 'none'}.</p>"
        )
    captions = {
        "weighted_tau.png": "Mean weighted tau over tasks per measure, with bootstrap intervals; light "
        "grey = target-blind baselines; against the best baseline (paired interval of the difference): "
        "green = better (above 0), orange = worse (below 0), dark grey = level (contains 0) or no interval; "
        "dotted: reliability of the seed-mean ground truth.",
        "weighted_tau_per_task.png": "Weighted tau of every measure and baseline on every task.",
        "cost_vs_quality.png": "Median scoring time per checkpoint against mean weighted tau, coloured "
        "as above (green only when the paired interval against the best baseline lies above 0).",
        "reported_vs_recomputed.png": "Weighted tau / Pearson recomputed from the published scores "
        "against the values the source reports.",
    }
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>ckptrank bench: {_e(suite.name)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>ckptrank bench: {_e(suite.name)}</h1>",
        f"<p class='recommend' id='recommendation'>{_e(recommendation(ev))}</p>",
        f"<p class='lead'>{_e(suite.description)}</p>",
        f"<p>{len(ev.tasks)} task(s), {len(suite.checkpoints)} checkpoint(s); scores: {_e(source)}; "
        f"ground-truth protocol: {_e(result.config.get('protocol'))}; "
        f"{ev.config.get('n_bootstrap')} bootstrap resamples, "
        f"{round(100 * ev.config.get('confidence', 0.95))}% intervals.</p>",
        verdict,
        "<h2>Summary (mean over each row's tasks)</h2>",
        "<p class='legend'>Weighted τ is <code>scipy.stats.weightedtau</code> with its defaults "
        "(comparable with published numbers), averaged over the row's own tasks (random-initialised "
        "controls left out), with its bootstrap interval over checkpoints. Grey rows are target-blind "
        "baselines. The comparison with the best baseline is paired: both on the (task, checkpoint) pairs "
        "they share, with the same checkpoint resamples; <b>better</b> ✓ (green) when the interval of the "
        "difference lies above 0, <b>worse</b> ✗ (orange) below 0, <b>level</b> ≈ (grey) when it contains "
        "0. s / ckpt: median seconds to score one checkpoint (feature extraction excluded).</p>",
        _summary_table(result),
        "<details class='more'><summary>More statistics: interval over seeds, other correlations, "
        "top-k, regret, the paired comparison in full, controls</summary>",
        "<p class='legend'>CI seeds: bootstrap over fine-tuning seeds. τ vs base: the row's and the best "
        "baseline's mean weighted τ on the (task, checkpoint) pairs they share. P(&gt; base): share of "
        "paired resamples in which the row is better. Controls below: tasks on which every random-init "
        "control is scored below every pre-trained checkpoint.</p>",
        _details_table(result),
        "</details>",
    ]
    if ev.track_names:
        parts += ["<h2>Mean weighted τ per track (tasks)</h2>", _track_table(result)]
    parts += [
        "<h2>Paired comparisons</h2>",
        "<p class='legend'>Every two rows on the (task, checkpoint) pairs both have, with the same "
        "checkpoint resamples: difference of mean weighted τ with its 95% interval; ✓ / ✗ when the "
        "interval excludes 0 (a better / worse), ≈ otherwise.</p>",
        _comparison_table(result),
        "<h2>Weighted τ per task</h2>",
        _task_table(result),
        "<h2>Ground truth: seed agreement and reliability</h2>",
        _truth_table(result),
        "<h2>Random-init sanity check</h2>",
        _controls_table(result),
    ]
    if ev.reported is not None and not ev.reported.empty:
        parts += ["<h2>Reported by the source</h2>", _reported_means(result)]
        if ev.reported["agrees"].notna().any():
            parts += ["<h2>Recomputed vs reported</h2>", _reported_table(result)]
    parts.append("<h2>Figures</h2>")
    for name, data in figures.items():
        if name.startswith("scores_"):
            continue
        parts.append(_img(name, data, captions.get(name, name)))
    parts.append("<h2>Score vs ground truth</h2>")
    for name, data in figures.items():
        if name.startswith("scores_"):
            parts.append(
                _img(
                    name,
                    data,
                    "Each point is a checkpoint; the green ring marks the best one; x: random-init control.",
                )
            )
    parts.append("<h2>Notes</h2><ul class='notes'>")
    notes = list(dict.fromkeys([*result.notes, *ev.notes]))
    parts += [f"<li>{_e(note)}</li>" for note in notes] or ["<li>none</li>"]
    parts.append("</ul>")
    parts += ["<h2>Provenance</h2>", f"<pre>{_e(suite.provenance or 'not stated')}</pre>"]
    config = {**ev.config, **result.config}
    created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    parts += [
        "<h2>Configuration</h2>",
        f"<pre>{_e(json.dumps(config, indent=2, default=str))}</pre>",
        f"<p class='legend'>Generated by ckptrank {_e(_version())} on {_e(created)}.</p>",
        "</main></body></html>",
    ]
    return "\n".join(parts)


def _version() -> str:
    import ckptrank

    return ckptrank.__version__


def write_report(result: BenchResult, directory: str | Path) -> dict[str, Path]:
    """Write ``report.html``, the PNG figures and the tables to ``directory``.

    Parameters
    ----------
    result : BenchResult
        A result of :func:`ckptrank.bench.harness.bench`.
    directory : str or path
        Output folder, created if missing; files of the same names are replaced.

    Returns
    -------
    dict
        ``"html"``, ``"summary"``, ``"per_task"``, ``"comparisons"``, ``"seed_agreement"``,
        ``"controls"``, ``"scores"``, ``"json"``, ``"reported"`` (when any) and one
        ``"figure:NAME"`` per PNG -> path written.

    Raises
    ------
    ValueError
        ``directory`` exists and is not a folder.
    """
    from ckptrank._atomic import replace_file, replace_text

    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--report {str(out)!r} exists and is not a folder; choose a folder path")
    figures_dir = out / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    figures = figure_files(result)
    written: dict[str, Path] = {}
    # every file is replaced atomically: a symbolic link at its name is replaced, never followed
    for name, data in figures.items():
        written[f"figure:{name}"] = replace_file(
            figures_dir / name, lambda tmp, data=data: tmp.write_bytes(data)
        )
    written["html"] = replace_text(out / "report.html", render_html(result, figures))
    ev = result.evaluation
    tables = {
        "summary": ev.summary.reset_index(),
        "per_task": ev.per_task,
        "comparisons": ev.comparisons,
        "seed_agreement": ev.seed_agreement,
        "controls": ev.controls,
        "scores": result.scores,
    }
    if ev.reported is not None:
        tables["reported"] = ev.reported
    for name, frame in tables.items():
        written[name] = replace_text(out / f"{name}.csv", frame.to_csv(index=False))
    written["json"] = replace_text(
        out / "evaluation.json", json.dumps(result.to_dict(), indent=2, default=str) + "\n"
    )
    return written
