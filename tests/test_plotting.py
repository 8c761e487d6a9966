"""scores.png and the label helpers of :mod:`ckptrank.plotting`: no clipped name, no colliding label."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image

from ckptrank.plotting import MAX_LABEL_CHARS, place_labels, plot_scores, scores_figure, shorten_middle

LONG = "py:/home/someone/projects/very/deep/folder/models/my_custom_backbone_v2.py?size=224&mean=0.5"
DOLLARS = "hf:org/$weird$-name-with-dollars-that-is-long-enough-to-be-cut-in-the-middle"
NAMES = ["timm:resnet18", LONG, DOLLARS, "tv:alexnet", "failed:one"]


def _frame() -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "checkpoint": NAMES,
            "rank": [1, 2, 3, 4, np.nan],
            "status": ["ok", "ok", "ok", "ok", "error"],
            "logme": [1.2, 0.9, 0.5, 0.1, np.nan],
            "leep": [-1.0, -1.5, np.nan, -2.2, np.nan],
            "num_parameters": [11e6, 25e6, 86e6, 61e6, np.nan],
        }
    )
    frame.attrs["measures"] = ["logme", "leep"]
    frame.attrs["higher_is_better"] = {"logme": True, "leep": True}
    frame.attrs["dataset"] = {"name": "cifar10", "n_samples": 500, "n_classes": 10}
    return frame


def _overlap(a, b) -> float:
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return width * height if width > 0 and height > 0 else 0.0


@pytest.mark.parametrize("length", [1, 5, 39, 40, 41, 42, 100, 300])
def test_shorten_middle_keeps_both_ends_within_the_limit(length):
    text = "".join(chr(ord("a") + i % 26) for i in range(length))
    short = shorten_middle(text)
    if length <= MAX_LABEL_CHARS:
        assert short == text
        return
    assert len(short) == MAX_LABEL_CHARS and short.count("…") == 1
    head, tail = short.split("…")
    assert text.startswith(head) and text.endswith(tail) and len(tail) > len(head) > 0
    assert shorten_middle("abcdefghij", 5) == "a…hij"


def test_scores_png_never_clips_a_long_checkpoint_name(tmp_path):
    frame = _frame()
    fig = scores_figure(frame, dpi=100)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    page = fig.bbox  # the whole picture, in pixels
    ticks = [t for t in fig.axes[0].get_yticklabels() if t.get_text()]
    texts = [t.get_text() for t in ticks]
    # only the checkpoints that ran, in rank order; long names cut in their middle
    assert texts == [
        "1. timm:resnet18",
        f"2. {shorten_middle(LONG)}",
        f"3. {shorten_middle(DOLLARS)}",
        "4. tv:alexnet",
    ]
    for tick in ticks:
        box = tick.get_window_extent(renderer)
        assert box.x0 >= 0 and box.x1 <= page.x1, (tick.get_text(), box)
        assert box.y0 >= 0 and box.y1 <= page.y1, (tick.get_text(), box)
    # the full names of the cut ones are in the footnote, which is inside the picture too
    footnote = next(t for t in fig.texts if t.get_gid() == "footnote")
    assert f"2. {LONG}" in footnote.get_text() and f"3. {DOLLARS}" in footnote.get_text()
    assert "timm:resnet18" not in footnote.get_text()
    box = footnote.get_window_extent(renderer)
    assert box.x0 >= 0 and box.x1 <= page.x1 and box.y0 >= 0 and box.y1 <= page.y1
    # '$' is drawn as is, not read as mathematics (which would change the text and its width)
    assert ticks[2].get_parse_math() is False
    # the footnote and the tick labels do not run into the panels
    for ax in fig.axes:
        panel = ax.get_window_extent(renderer)
        assert _overlap(panel, box) == 0
        for tick in ticks:
            assert tick.get_window_extent(renderer).x1 <= panel.x0 + 1
    # plot_scores writes that figure
    path = plot_scores(frame, tmp_path / "scores.png", dpi=100)
    with Image.open(path) as image:
        width, height = image.size
    assert abs(width - fig.get_figwidth() * 100) <= 1 and abs(height - fig.get_figheight() * 100) <= 1


def test_scores_png_without_long_names_has_no_footnote_of_names():
    frame = _frame()
    frame = frame[frame["checkpoint"].str.len() < 20].copy()
    frame.attrs = _frame().attrs
    fig = scores_figure(frame)
    footnote = next(t for t in fig.texts if t.get_gid() == "footnote")
    assert "Full names" not in footnote.get_text()


def test_scores_png_leads_with_p_best_and_stars_the_shortlist():
    frame = _frame()
    frame["p_best"] = [0.62, 0.30, 0.06, 0.02, np.nan]
    frame["shortlist"] = [True, True, False, False, False]
    fig = scores_figure(frame, dpi=100)
    assert fig.axes[0].get_title() == "p(best), %\n\u2605 = shortlist"
    assert [ax.get_title().split("\n")[0] for ax in fig.axes[1:3]] == ["logme", "leep"]
    texts = [t.get_text() for t in fig.axes[0].get_yticklabels() if t.get_text()]
    assert texts[0] == "1. timm:resnet18 \u2605" and texts[3] == "4. tv:alexnet"
    assert texts[1].endswith(" \u2605") and not texts[2].endswith("\u2605")
    values = [t.get_text().strip() for t in fig.axes[0].texts]
    assert values == ["62%", "30%", "6%", "2%"]
    footnote = next(t for t in fig.texts if t.get_gid() == "footnote").get_text()
    assert "the default ranker's order" in footnote
    # a consensus ranking (no p_best) has no such panel
    assert scores_figure(_frame()).axes[0].get_title().startswith("logme")


def _check_labels(ax, labels):
    fig = ax.get_figure()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    boxes = [(t, Text.get_window_extent(t, renderer)) for t in labels]
    for text, box in boxes:
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1, text.get_text()
        assert frame.y0 <= box.y0 and box.y1 <= frame.y1, text.get_text()
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        assert _overlap(box_a, box_b) == 0, (a.get_text(), b.get_text())


def test_place_labels_separates_crowded_points_on_a_log_axis():
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    rng = np.random.default_rng(0)
    x = 0.02 * (1 + 0.03 * rng.random(9))  # nine measures of nearly the same cost and quality
    y = 0.5 + 0.02 * rng.random(9)
    names = ["nce", "leep", "logme", "sfda", "hscore", "gbc", "transrate", "a_rather_long_name", "ncti"]
    ax.plot(x, y, "o")
    ax.set_xscale("log")
    ax.set_xlim(0.019, 0.021)
    ax.set_ylim(0.49, 0.53)
    labels = place_labels(ax, x, y, names, fontsize=8.5, gid="label")
    assert [t.get_gid() for t in labels] == [f"label:{n}" for n in names]
    assert all(t.get_fontsize() == 8.5 for t in labels)
    _check_labels(ax, labels)


def test_place_labels_keeps_labels_and_fixed_texts_inside_the_axes():
    fig = Figure(figsize=(4, 3))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot([0.0, 1.0, 1.0], [0.0, 1.0, 0.97], "o")
    ax.set_xlim(0.0, 1.0)  # the points sit on the edges and corners
    ax.set_ylim(0.0, 1.0)
    # a reference line's label above the top edge: the limits must grow until it is inside
    fixed = ax.text(0.01, 1.0, "num_parameters (free)", transform=ax.get_yaxis_transform(), va="bottom")
    names = ["left-edge-label", "a-label-at-the-corner", "its-neighbour"]
    labels = place_labels(ax, [0.0, 1.0, 1.0], [0.0, 1.0, 0.97], names, fixed=[fixed])
    _check_labels(ax, [*labels, fixed])
    assert ax.get_ylim()[1] > 1.0
    # non-finite points get no label
    assert len(place_labels(ax, [np.nan, 0.5], [0.5, 0.5], ["gone", "kept"])) == 1


def test_place_labels_refuses_mismatched_lengths():
    fig = Figure()
    ax = fig.subplots()
    with pytest.raises(ValueError, match="got 2 x, 2 y, 1 labels; give one of each per point"):
        place_labels(ax, [0.0, 1.0], [0.0, 1.0], ["only one"])
