"""Figures of a ranking (matplotlib, drawn off-screen with the Agg renderer).

Only :class:`matplotlib.figure.Figure` is used, never ``pyplot``, so drawing a figure neither
changes the user's matplotlib backend nor opens a window. Besides :func:`plot_scores`, two
helpers are shared with the benchmark report: :func:`shorten_middle` (a long name cut in its
middle) and :func:`place_labels` (point labels that neither overlap nor leave their axes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["place_labels", "plot_scores", "scores_figure", "shorten_middle", "text_width_inches"]

_BEST = "#1b7837"
_OTHER = "#4d4d4d"
_BASELINE = "#9e9e9e"
#: Checkpoint names longer than this are cut in their middle on the axis (full names in a footnote).
MAX_LABEL_CHARS = 40
_TICK_SIZE = 8.0
_NOTE_SIZE = 7.0


def shorten_middle(text: str, limit: int = MAX_LABEL_CHARS) -> str:
    """``text`` cut in its middle with an ellipsis when longer than ``limit`` characters.

    Parameters
    ----------
    text : str
    limit : int, default 40
        Largest length returned (at least 5).

    Returns
    -------
    str
        ``text`` itself when short enough, else its start, ``"…"`` and its end (the end is kept
        longer: it usually carries the distinguishing part of a checkpoint name).

    Examples
    --------
    >>> shorten_middle("timm:vit_base_patch16_224.augreg2_in21k_ft_in1k", 30)
    'timm:vit_ba…reg2_in21k_ft_in1k'
    """
    limit = max(int(limit), 5)
    if len(text) <= limit:
        return text
    keep = limit - 1
    head = max(1, (2 * keep) // 5)
    tail = keep - head
    return f"{text[:head]}…{text[len(text) - tail :]}"


def text_width_inches(text: str, fontsize: float) -> float:
    """Width in inches of ``text`` drawn in matplotlib's default font, without mathematics.

    Parameters
    ----------
    text : str
        One or more lines (``"\\n"``-separated).
    fontsize : float
        In points.

    Returns
    -------
    float
        The width of the longest line, in inches (independent of any figure's dpi).
    """
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    renderer = RendererAgg(8, 8, 72)
    lines = str(text).split("\n") or [""]
    widths = [
        renderer.get_text_width_height_descent(line, FontProperties(size=fontsize), ismath=False)[0]
        for line in lines
    ]
    return max(widths) / 72.0


def _renderer(fig: Any) -> Any:
    """The Agg renderer of ``fig`` (an Agg canvas is attached when the figure has none)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    return canvas.get_renderer()


def _inside(box: tuple[float, float, float, float], frame: Any, pad: float) -> bool:
    x0, y0, x1, y1 = box
    return x0 >= frame.x0 + pad and x1 <= frame.x1 - pad and y0 >= frame.y0 + pad and y1 <= frame.y1 - pad


def _widen(ax: Any, share: float) -> None:
    """Widen both axis limits of ``ax`` by ``share`` of their span on each side (log axes in log space;
    an inverted axis stays inverted)."""
    for get, set_, scale in (
        (ax.get_xlim, ax.set_xlim, ax.get_xscale()),
        (ax.get_ylim, ax.set_ylim, ax.get_yscale()),
    ):
        first, second = get()
        low, high = sorted((first, second))
        if scale == "log":
            low_l, high_l = math.log10(low), math.log10(high)
            span = (high_l - low_l) or 1.0
            low, high = 10 ** (low_l - share * span), 10 ** (high_l + share * span)
        else:
            span = (high - low) or 1.0
            low, high = low - share * span, high + share * span
        set_((high, low) if first > second else (low, high))


def place_labels(
    ax: Any,
    x: Sequence[float],
    y: Sequence[float],
    labels: Sequence[str],
    *,
    colors: Sequence[str] | None = None,
    fontsize: float = 8.5,
    fixed: Sequence[Any] = (),
    gid: str = "label",
    max_widen: int = 8,
) -> list[Any]:
    """Label the points ``(x[i], y[i])`` of ``ax`` so that no two labels overlap and none leaves the axes.

    A greedy placement: points are labelled top to bottom; each label takes the first free spot
    among: right of its point, left of it, then shifted up or down by one, two, ... line heights
    (a thin leader line then joins it to its point). A spot is free when its box lies inside the
    axes and overlaps no label already placed, no marker and no artist of ``fixed``. When some
    label finds no free spot, both axis limits are widened (log axes in log space) and every label
    is placed again, up to ``max_widen`` times; then the spot of least overlap is kept.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Axes whose limits and scales are final (this function may only widen the limits).
    x, y : sequence of float, each of length n_points
        Data coordinates of the points; non-finite points get no label.
    labels : sequence of str, of length n_points
    colors : sequence of str, of length n_points, optional
        Text colours (default black).
    fontsize : float, default 8.5
    fixed : sequence of matplotlib artists
        Texts already on the axes (for instance reference-line labels) that labels must avoid;
        they must themselves lie inside the axes, so the limits are widened until they do.
    gid : str, default "label"
        Each label's ``gid`` is ``f"{gid}:{label}"`` (for tests and SVG output).
    max_widen : int, default 8
        How many times the limits may be widened (by 6% of their span on each side).

    Returns
    -------
    list of matplotlib.text.Annotation
        The labels, in the order of ``labels`` (non-finite points left out).

    Raises
    ------
    ValueError
        ``x``, ``y``, ``labels`` (and ``colors``) do not have the same length.
    """
    lengths = {len(x), len(y), len(labels), len(labels) if colors is None else len(colors)}
    if len(lengths) > 1:
        raise ValueError(
            f"place_labels got {len(x)} x, {len(y)} y, {len(labels)} labels"
            + ("" if colors is None else f" and {len(colors)} colors")
            + "; give one of each per point"
        )
    fig = ax.get_figure()
    renderer = _renderer(fig)
    points = [
        (i, float(xi), float(yi))
        for i, (xi, yi) in enumerate(zip(x, y, strict=True))
        if math.isfinite(float(xi)) and math.isfinite(float(yi))
    ]
    order = sorted(points, key=lambda p: (-p[2], p[1]))
    colors = list(colors) if colors is not None else ["black"] * len(labels)
    pt = fig.dpi / 72.0  # pixels per point
    gap, marker = 6.0, 4.0  # points
    probes = {
        i: ax.annotate(
            str(labels[i]),
            (xi, yi),
            textcoords="offset points",
            xytext=(gap, 0),
            fontsize=fontsize,
            va="center",
            ha="left",
            parse_math=False,
        )
        for i, xi, yi in points
    }
    ax.get_xlim(), ax.get_ylim()  # apply any pending autoscaling before measuring in pixels
    # each label's box relative to its anchor, measured once per alignment (pixels)
    shapes: dict[tuple[int, str], tuple[float, float, float, float]] = {}
    for i, xi, yi in points:
        anchor = ax.transData.transform((xi, yi))
        for ha in ("left", "right"):
            probes[i].set_ha(ha)
            probes[i].xyann = (0.0, 0.0)
            box = probes[i].get_window_extent(renderer)
            shapes[i, ha] = (box.x0 - anchor[0], box.y0 - anchor[1], box.x1 - anchor[0], box.y1 - anchor[1])
        probes[i].remove()
    chosen: dict[int, tuple[float, float, str]] = {}
    pad = 1.0  # pixels kept free around every label
    steps = [0.0] + [sign * step for step in range(1, 9) for sign in (1, -1)]
    for attempt in range(max_widen + 1):
        frame = ax.get_window_extent(renderer)
        last = attempt == max_widen
        placed = [tuple(a.get_window_extent(renderer).extents) for a in fixed]
        ok = all(_inside(box, frame, pad) for box in placed)
        r = marker * pt
        dots = {i: ax.transData.transform((xi, yi)) for i, xi, yi in points}
        placed += [(px - r, py - r, px + r, py + r) for px, py in dots.values()]
        chosen.clear()
        for i, _, _ in order:
            px, py = dots[i]
            height = (shapes[i, "left"][3] - shapes[i, "left"][1]) / pt
            candidates = [
                (side * gap, k * (height + 1.5), ha)
                for k in steps
                for side, ha in ((1, "left"), (-1, "right"))
            ]
            boxes = np.array(
                [
                    (
                        px + dx * pt + shapes[i, ha][0] - pad,
                        py + dy * pt + shapes[i, ha][1] - pad,
                        px + dx * pt + shapes[i, ha][2] + pad,
                        py + dy * pt + shapes[i, ha][3] + pad,
                    )
                    for dx, dy, ha in candidates
                ]
            )
            others = np.array(placed, dtype=float).reshape(-1, 4)
            width = np.minimum(boxes[:, None, 2], others[None, :, 2]) - np.maximum(
                boxes[:, None, 0], others[None, :, 0]
            )
            tall = np.minimum(boxes[:, None, 3], others[None, :, 3]) - np.maximum(
                boxes[:, None, 1], others[None, :, 1]
            )
            cost = (np.clip(width, 0, None) * np.clip(tall, 0, None)).sum(axis=1)
            outside = (
                (boxes[:, 0] < frame.x0)
                | (boxes[:, 2] > frame.x1)
                | (boxes[:, 1] < frame.y0)
                | (boxes[:, 3] > frame.y1)
            )
            cost = cost + 1e6 * outside
            free = np.flatnonzero(cost == 0)
            best = int(free[0]) if free.size else int(np.argmin(cost))
            if not free.size:
                ok = False
            chosen[i] = candidates[best]
            placed.append(tuple(boxes[best]))
        if ok or last:
            break
        _widen(ax, 0.06)
    out = []
    for i, xi, yi in points:
        dx, dy, ha = chosen[i]
        arrow = None
        if dy != 0:
            arrow = {
                "arrowstyle": "-",
                "color": colors[i],
                "linewidth": 0.6,
                "alpha": 0.7,
                "shrinkA": 1,
                "shrinkB": 4,
            }
        label = ax.annotate(
            str(labels[i]),
            (xi, yi),
            textcoords="offset points",
            xytext=(dx, dy),
            fontsize=fontsize,
            va="center",
            ha=ha,
            color=colors[i],
            arrowprops=arrow,
            parse_math=False,
            gid=f"{gid}:{labels[i]}",
        )
        out.append(label)
    return out


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
    baselines (parameter count, stated source accuracy). The left margin is measured from the
    longest checkpoint label, so no name is clipped; names longer than :data:`MAX_LABEL_CHARS`
    characters are cut in their middle on the axis and written in full in a footnote.

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
    fig = scores_figure(frame, dpi=dpi)
    out = Path(path)
    fig.savefig(out, format="png")
    return out


def scores_figure(frame: pd.DataFrame, *, dpi: int = 120) -> Any:
    """The figure that :func:`plot_scores` saves (a :class:`matplotlib.figure.Figure`, not yet drawn).

    Parameters
    ----------
    frame : pandas.DataFrame
        A result of :func:`ckptrank.rank`.
    dpi : int

    Returns
    -------
    matplotlib.figure.Figure
    """
    Figure = _import_figure()
    names = list(frame.attrs.get("measures", []))
    higher = dict(frame.attrs.get("higher_is_better", {}))
    rows = frame[frame["status"] == "ok"] if "status" in frame else frame
    labels = [str(c) for c in rows["checkpoint"]]
    n = max(len(labels), 1)
    panels: list[tuple[np.ndarray, str, bool, str, str, str]] = []
    decided = "p_best" in rows and bool(np.isfinite(rows["p_best"].to_numpy(dtype=float)).any())
    if decided:
        # the decision first: each checkpoint's probability of fine-tuning best; the shortlist is starred
        p_best = 100.0 * rows["p_best"].to_numpy(dtype=float)
        panels.append((p_best, "p(best), %\n\u2605 = shortlist", True, _OTHER, "{:.0f}%", "not ranked"))
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

    ranks = rows["rank"].tolist() if "rank" in rows else [None] * len(labels)
    prefixes = ["" if _isnan(r) else f"{int(r)}. " for r in ranks]
    stars = (
        [" \u2605" if bool(flag) else "" for flag in rows["shortlist"]]
        if decided and "shortlist" in rows
        else [""] * len(labels)
    )
    ticks = [
        prefix + shorten_middle(label) + star
        for prefix, label, star in zip(prefixes, labels, stars, strict=True)
    ]
    # the full names of the shortened labels, in a footnote below the panels
    full = [
        f"{prefix or f'{i + 1}: '}{label}"
        for i, (prefix, label) in enumerate(zip(prefixes, labels, strict=True))
        if shorten_middle(label) != label
    ]
    order = "the default ranker's order" if decided else "consensus-rank order"
    caption = (
        f"Each panel: one measure on its own raw scale; checkpoints in {order}; best in green. "
        "A prediction, not a fine-tuning result."
    )
    footnote = (["Full names of the shortened checkpoints:", *full] if full else []) + [caption]
    label_width = max((text_width_inches(t, _TICK_SIZE) for t in ticks), default=0.5) + 0.3
    note_width = max(text_width_inches(line, _NOTE_SIZE) for line in footnote) + 0.3
    width = max(label_width + 2.1 * len(panels) + 0.15, note_width)
    bottom = 0.135 * len(footnote) + 0.1 + 0.4  # footnote lines, then the x tick labels
    top_height = 0.75
    height = top_height + 0.38 * n + 0.1 + bottom
    fig = Figure(figsize=(width, height), dpi=dpi)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (values, title, hib, color, fmt, missing) in zip(axes, panels, strict=True):
        _panel(ax, values, title, hib, color, fmt, missing)
    axes[0].set_yticks(np.arange(len(labels)))
    axes[0].set_yticklabels(ticks, fontsize=_TICK_SIZE, parse_math=False)
    axes[0].set_ylim(len(labels) - 0.5, -0.7)
    dataset = frame.attrs.get("dataset") or {}
    title = "Predicted transferability"
    if dataset:
        size = f"{dataset.get('n_samples')} samples, {dataset.get('n_classes')} classes"
        title += f" on {dataset.get('name')} ({size})"
    fig.suptitle(title, fontsize=10, parse_math=False)
    fig.text(
        0.15 / width,
        0.08 / height,
        "\n".join(footnote),
        ha="left",
        va="bottom",
        fontsize=_NOTE_SIZE,
        color="#555555",
        linespacing=1.35,
        parse_math=False,
        gid="footnote",
    )
    fig.subplots_adjust(
        left=label_width / width,
        right=1 - 0.15 / width,
        top=1 - top_height / height,
        bottom=bottom / height,
        wspace=0.12,
    )
    return fig


def _isnan(value: Any) -> bool:
    try:
        return bool(value is None or value != value)  # NaN and pandas.NA
    except TypeError:
        return True
