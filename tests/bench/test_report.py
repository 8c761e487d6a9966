"""The HTML report: files, embedded images, and a render in headless Chromium (Debian ``chromium``)."""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ckptrank.bench import report as report_module
from ckptrank.bench.harness import bench
from ckptrank.bench.report import recommendation, write_report
from ckptrank.bench.suite import Suite

CHROMIUM = "/usr/bin/chromium"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CKPTS = [f"net-{i}" for i in range(6)]
QUALITY = np.array([0.2, 0.9, 0.5, 0.7, 0.1, 0.6])
TASKS = ("flowers", "pets", "cars")
MEASURES = {"logme": 0.05, "sfda": 0.2, "leep": 1.0}


@pytest.fixture(scope="module")
def result():
    """A benchmark result with 3 seeds, timings, baselines, a marked measure and reported values."""
    rng = np.random.default_rng(0)
    truth = pd.DataFrame(
        [
            (task, name, seed, 60 + 30 * QUALITY[i] + rng.normal())
            for task in TASKS
            for i, name in enumerate(CKPTS)
            for seed in range(3)
        ],
        columns=["task", "checkpoint", "seed", "accuracy"],
    )
    scores = pd.DataFrame(
        [
            (task, name, measure, QUALITY[i] + noise * rng.normal(), 0.01 * (1 + 10 * noise))
            for measure, noise in MEASURES.items()
            for task in TASKS
            for i, name in enumerate(CKPTS)
        ],
        columns=["task", "checkpoint", "measure", "score", "seconds"],
    )
    reported = pd.DataFrame(
        {"task": list(TASKS), "measure": "logme", "statistic": "weighted_tau", "value": [0.9, 0.2, 0.95]}
    )
    suite = Suite(
        name="test:report <&>",
        description="A synthetic suite for the report test",
        # net-4, the worst, is a random-initialised control: left out of the statistics, checked apart
        checkpoints={name: {"group": "random-init" if name == "net-4" else "pre-trained"} for name in CKPTS},
        ground_truth=truth,
        baselines=pd.DataFrame({"num_parameters": QUALITY + 0.3 * rng.normal(size=6)}, index=CKPTS),
        reported=reported,
        provenance="made up in tests/bench/test_report.py",
    )
    return bench(suite, scores=scores, n_bootstrap=200)


#: name -> (noise of the score around the true quality, or None for an anti-correlated score;
#: seconds per checkpoint). Costs close together, so that unplaced labels would collide.
MIXED = {
    "ckptrank rank (default)": (0.08, 0.05),
    "logme": (0.04, 0.012),
    "nce": (0.45, 0.02),
    "leep": (0.45, 0.021),
    "anti": (None, 0.02),
    "a_measure_with_a_rather_long_name": (0.3, 0.0205),
}


def _mixed_suite(with_baseline: bool = True):
    """12 checkpoints, 6 tasks: rows better than, level with and worse than a weak baseline."""
    names = [f"ckpt-{i}" for i in range(12)]
    quality = np.random.default_rng(99).permutation(np.linspace(0, 1, 12))
    tasks = ("a", "b", "c", "d", "e", "f")
    rng = np.random.default_rng(1)
    truth = pd.DataFrame(
        [
            (task, name, seed, 60 + 30 * quality[i] + rng.normal())
            for task in tasks
            for i, name in enumerate(names)
            for seed in range(3)
        ],
        columns=["task", "checkpoint", "seed", "accuracy"],
    )
    rows = []
    for measure, (noise, seconds) in MIXED.items():
        for task in tasks:
            for i, name in enumerate(names):
                value = (
                    -quality[i] + 0.1 * rng.normal() if noise is None else quality[i] + noise * rng.normal()
                )
                rows.append((task, name, measure, value, seconds))
    scores = pd.DataFrame(rows, columns=["task", "checkpoint", "measure", "score", "seconds"])
    baselines = pd.DataFrame({"num_parameters": quality + 0.8 * rng.normal(size=12)}, index=names)
    suite = Suite(
        name="mixed verdicts",
        description="better, level and worse than a weak baseline",
        checkpoints={name: {} for name in names},
        ground_truth=truth,
        baselines=baselines if with_baseline else None,
    )
    return suite, scores


@pytest.fixture(scope="module")
def mixed():
    """A result whose rows are better than ('ckptrank rank (default)', logme), level with (nce, leep,
    the long name) and worse than (anti) the parameter-count baseline, paired."""
    suite, scores = _mixed_suite()
    out = bench(suite, scores=scores, n_bootstrap=200)
    verdicts = out.evaluation.summary["verdict"]
    assert verdicts["ckptrank rank (default)"] == verdicts["logme"] == "better"
    assert verdicts["nce"] == verdicts["leep"] == verdicts["a_measure_with_a_rather_long_name"] == "tie"
    assert verdicts["anti"] == "worse"
    return out


@pytest.fixture(scope="module")
def report_dir(result, tmp_path_factory):
    """The report, written once for the module (drawing the figures is the slow part)."""
    out = tmp_path_factory.mktemp("bench-report") / "out"
    written = write_report(result, out)
    assert written["html"] == out / "report.html"
    return out


def test_report_files_and_embedded_images(report_dir, result):
    out = report_dir
    for name in (
        "report.html",
        "summary.csv",
        "per_task.csv",
        "comparisons.csv",
        "seed_agreement.csv",
        "controls.csv",
        "scores.csv",
        "reported.csv",
        "evaluation.json",
    ):
        assert (out / name).is_file(), name
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    expected = {
        "weighted_tau.png",
        "weighted_tau_per_task.png",
        "cost_vs_quality.png",
        "reported_vs_recomputed.png",
    }
    expected |= {f"scores_{m}.png" for m in (*MEASURES, "num_parameters")}
    assert set(figures) == expected
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page  # self-contained
    sources = re.findall(r"<img src='([^']+)' alt='([^']+)'", page)
    assert len(sources) == len(expected)
    for src, alt in sources:
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data.startswith(PNG_SIGNATURE)
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        assert data == (out / "figures" / html.unescape(alt)).read_bytes()
    for name in (*MEASURES, "num_parameters"):
        assert f">{name}<" in page
    assert "test:report &lt;&amp;&gt;" in page  # names are escaped
    assert "DISAGREES" in page and "noise ceiling" not in page
    assert "Ground truth: seed agreement and reliability" in page and "Random-init sanity check" in page
    summary = pd.read_csv(out / "summary.csv")
    assert summary["measure"].tolist()[:3] == list(MEASURES)
    ev = result.evaluation
    # the tables of the page and the CSVs are the evaluation's
    comparisons = pd.read_csv(out / "comparisons.csv")
    assert len(comparisons) == 6  # 3 measures + 1 baseline: every pair once
    np.testing.assert_allclose(comparisons["diff"], ev.comparisons["diff"])
    truth = pd.read_csv(out / "seed_agreement.csv")
    assert truth["n_checkpoints"].eq(5).all()  # the control is left out
    page_reliability = re.search(
        r"<td class='name'>mean</td><td></td><td></td><td></td><td>([-0-9.]+)</td><td>([-0-9.]+)</td>", page
    )
    assert page_reliability and float(page_reliability.group(2)) == pytest.approx(
        ev.mean_reliability(), abs=5e-4
    )
    controls = pd.read_csv(out / "controls.csv")
    assert set(controls["measure"]) == {*MEASURES, "num_parameters", "ground truth"}
    assert (controls["top_control"] == "net-4").all()
    for name in MEASURES:
        row = ev.summary.loc[name]
        diff = f"{row['diff_vs_baseline']:+.3f}"
        assert diff in page, (name, diff)


def test_report_refuses_a_file_path(result, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        write_report(result, target)


_CHECK_SCRIPT = """<script>
window.addEventListener('load', function () {
  var out = document.createElement('pre');
  out.id = 'img-check';
  out.textContent = Array.from(document.images).map(function (img) {
    return [img.getAttribute('data-file'), img.naturalWidth, img.naturalHeight, img.complete].join(' ');
  }).join('\\n');
  document.body.appendChild(out);
});
</script>"""


def _chromium(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def test_report_renders_in_headless_chromium(report_dir, tmp_path):
    assert Path(CHROMIUM).is_file(), "install the Debian package chromium (apt-get install -y chromium)"
    out = report_dir
    page = (out / "report.html").read_text(encoding="utf-8")
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("</body>", _CHECK_SCRIPT + "</body>"), encoding="utf-8")
    run = _chromium(checked.as_uri(), tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    dom = run.stdout
    match = re.search(r'<pre id="img-check">(.*?)</pre>', dom, re.S)
    assert match, dom[-2000:]
    lines = html.unescape(match.group(1)).strip().splitlines()
    figures = {p.name for p in (out / "figures").glob("*.png")}  # data URIs: the page's folder is irrelevant
    assert {line.split()[0] for line in lines} == figures
    for line in lines:
        name, width, height, complete = line.split()
        with Image.open(out / "figures" / name) as image:
            assert (int(width), int(height)) == image.size, line  # decoded at its true size: not broken
        assert complete == "true", line
    text = re.sub(r"<[^>]+>", " ", dom)
    for name in (*MEASURES, "num_parameters"):
        assert name in text
    # a screenshot of the rendered page is a real, non-blank picture
    shot = tmp_path / "page.png"
    run = _chromium(
        (out / "report.html").as_uri(),
        tmp_path / "profile",
        "--hide-scrollbars",
        "--window-size=1280,1600",
        f"--screenshot={shot}",
    )
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1280, 1600)
        gray = np.asarray(image.convert("L"), dtype=float)
    assert gray.std() > 10  # text, tables and figures, not an empty page


def test_report_files_replace_symlinks_instead_of_following_them(result, tmp_path):
    """Report files are written atomically: a symbolic link at a file's name is replaced, not followed."""
    import os

    out = tmp_path / "report"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    os.symlink(victim, out / "summary.csv")
    written = write_report(result, out)
    assert victim.read_text() == "keep me"
    assert not (out / "summary.csv").is_symlink() and written["summary"].read_text().startswith("measure")
    assert not list(out.glob(".*.tmp"))


# ------------------------------------------------------------------------------------------------
# Colours follow the paired verdict; labels are readable and never collide nor leave their axes

VERDICT_COLORS = {
    "better": report_module._GOOD,
    "worse": report_module._MARKED,
    "tie": report_module._NEUTRAL,
}


def _point_colors(fig) -> dict[str, str]:
    from matplotlib.colors import to_hex

    return {
        line.get_gid().split(":", 1)[1]: to_hex(line.get_color())
        for ax in fig.axes
        for line in ax.lines
        if (line.get_gid() or "").startswith("point:")
    }


def test_figure_colours_follow_the_paired_verdict(mixed):
    summary = mixed.evaluation.summary
    better = {m for m in mixed.evaluation.measures if summary.loc[m, "verdict"] == "better"}
    assert better == {"ckptrank rank (default)", "logme"}
    for fig in (report_module._tau_figure(mixed), report_module._cost_figure(mixed)):
        colors = _point_colors(fig)
        for name in mixed.evaluation.measures:
            assert colors[name] == VERDICT_COLORS[summary.loc[name, "verdict"]], name
        # green only where the paired interval of the difference lies above 0; never for a row
        # whose interval contains 0 (nce, leep and the long name are level with the baseline)
        assert {n for n, c in colors.items() if c == report_module._GOOD} == better
        for name in colors:
            if name in better:
                assert summary.loc[name, "diff_ci_low"] > 0
    # the headline table: the row's class and its verdict cell follow the verdict too
    page = report_module.render_html(mixed, figures={})
    for name in mixed.evaluation.measures:
        verdict = summary.loc[name, "verdict"]
        cell = re.escape(html.escape(name))
        row = re.search(
            rf"<tr class='v-{verdict}' data-verdict='{verdict}'>"
            rf"<td class='name measure'>{cell}</td>.*?<td class='verdict'>([^<]*)</td>",
            page,
        )
        assert row, name
        assert row.group(1) == {"better": "better ✓", "worse": "worse ✗", "tie": "level ≈"}[verdict]


def test_without_a_baseline_nothing_is_green():
    """No baseline, hence no paired verdict: every row is neutral, none green (it used to be all green)."""
    suite, scores = _mixed_suite(with_baseline=False)
    out = bench(suite, scores=scores, n_bootstrap=50)
    assert out.evaluation.summary["verdict"].isna().all()
    colors = _point_colors(report_module._tau_figure(out))
    assert set(colors) == set(MIXED) and set(colors.values()) == {report_module._NEUTRAL}
    assert "no target-blind baseline" in recommendation(out.evaluation)


def _text_boxes(ax, prefixes: tuple[str, ...]):
    """(text artist, its text-only box in pixels) for the texts of ``ax`` whose gid starts with a prefix."""
    from matplotlib.text import Text

    renderer = ax.get_figure().canvas.get_renderer()
    return [
        (t, Text.get_window_extent(t, renderer)) for t in ax.texts if (t.get_gid() or "").startswith(prefixes)
    ]


def _overlap(a, b) -> float:
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return width * height if width > 0 and height > 0 else 0.0


def _assert_labels_placed(ax, names, *, min_size: float = 8.0) -> None:
    ax.get_figure().canvas.draw()
    renderer = ax.get_figure().canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    labels = _text_boxes(ax, ("label:",))
    assert sorted(t.get_gid().split(":", 1)[1] for t, _ in labels) == sorted(names)
    boxes = labels + _text_boxes(ax, ("baseline:",))
    for text, box in boxes:
        assert text.get_fontsize() >= min_size, text.get_text()
        # inside the axes, hence never clipped by the figure's edge
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1, (text.get_text(), box, frame)
        assert frame.y0 <= box.y0 and box.y1 <= frame.y1, (text.get_text(), box, frame)
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        assert _overlap(box_a, box_b) == 0, (a.get_text(), b.get_text())
    # no label covers a point
    for text, box in labels:
        for other, _ in labels:
            x, y = ax.transData.transform(other.xy)
            assert not (box.x0 < x < box.x1 and box.y0 < y < box.y1), (text.get_text(), other.get_text())


def test_cost_labels_are_readable_and_never_collide_nor_clip(mixed):
    fig = report_module._cost_figure(mixed)
    _assert_labels_placed(fig.axes[0], mixed.evaluation.measures, min_size=8.0)
    # nce, leep and the long name sit within 3% of each other in cost: their labels were apart
    assert (
        mixed.evaluation.summary.loc["leep", "seconds"] / mixed.evaluation.summary.loc["nce", "seconds"]
        < 1.06
    )


def test_scatter_labels_are_readable_and_never_collide_nor_clip(mixed, result):
    for res, measure in ((mixed, "nce"), (result, "logme")):
        fig = report_module._scatter_figure(res, measure)
        pairs = res.evaluation.pairs
        for ax in fig.axes:
            if not ax.get_visible():
                continue
            task = ax.get_title().split(":")[0]
            names = pairs[(pairs["measure"] == measure) & (pairs["task"] == task)]["checkpoint"].tolist()
            _assert_labels_placed(ax, names, min_size=8.0)


# ------------------------------------------------------------------------------------------------
# The sentence at the top


def test_recommendation_names_a_ranker_and_its_reason(mixed, result):
    summary = mixed.evaluation.summary
    sentence = recommendation(mixed.evaluation)
    # the default ranker beats the baseline; logme's higher mean is level with it, paired
    assert summary.loc["logme", "weighted_tau"] > summary.loc["ckptrank rank (default)", "weighted_tau"]
    assert sentence.startswith("Use the default ranker (ckptrank rank)"), sentence
    row = summary.loc["ckptrank rank (default)"]
    assert f"mean weighted τ {row['weighted_tau']:.3f}" in sentence
    assert f"{row['diff_vs_baseline']:+.3f}" in sentence and "num_parameters" in sentence
    assert f"[{row['diff_ci_low']:+.2f}, {row['diff_ci_high']:+.2f}] above 0" in sentence
    assert "logme's higher mean" in sentence
    # nothing beats the parameter count: said plainly
    plain = recommendation(result.evaluation)
    assert plain.startswith("Nothing here beats the free baseline num_parameters"), plain
    assert "rank by num_parameters, which costs nothing" in plain
    # no interval, no verdict
    suite, scores = _mixed_suite()
    unpaired = bench(suite, scores=scores, n_bootstrap=0)
    assert "no paired interval was computed" in recommendation(unpaired.evaluation)
    # it leads the page, above the first section
    page = report_module.render_html(mixed, figures={})
    at = page.index("<p class='recommend' id='recommendation'>" + html.escape(sentence) + "</p>")
    assert at < page.index("<h2>")


# ------------------------------------------------------------------------------------------------
# Layout in headless Chromium: a laptop (1400 px) and a phone (390 px)

_LAYOUT_SCRIPT = """<script>
window.addEventListener('load', function () {
  var table = document.getElementById('summary');
  var box = table.parentElement;
  var out = {
    innerWidth: window.innerWidth,
    scrollWidth: document.documentElement.scrollWidth,
    tableWidth: table.getBoundingClientRect().width,
    boxWidth: box.getBoundingClientRect().width,
    boxScrollWidth: box.scrollWidth,
    boxClientWidth: box.clientWidth,
    recommendationTop: document.getElementById('recommendation').getBoundingClientRect().top,
    rows: Array.from(table.tBodies[0].rows).map(function (tr) {
      return [tr.cells[0].textContent, tr.getAttribute('data-verdict'),
              getComputedStyle(tr.querySelector('td.verdict')).color];
    })
  };
  var details = document.querySelector('details.more');
  details.open = true;
  var more = document.getElementById('summary-details');
  out.detailsWidth = more.getBoundingClientRect().width;
  out.detailsBoxWidth = more.parentElement.clientWidth;
  out.scrollWidthOpen = document.documentElement.scrollWidth;
  parent.postMessage(JSON.stringify(out), '*');
});
</script>"""


def _frame(src: str, width: int, height: int) -> str:
    """A page showing ``src`` in a ``width`` x ``height`` frame: the frame's viewport is exactly that wide
    (headless Chromium keeps its window at least 500 px wide); the framed page reports by message."""
    style = f"width:{width}px;height:{height}px;border:0;display:block"
    return (
        f"<!DOCTYPE html><html><body style='margin:0'><iframe src='{src}' style='{style}'></iframe>"
        "<pre id='layout'></pre><script>window.addEventListener('message', function (e) {"
        "document.getElementById('layout').textContent = e.data; });</script></body></html>"
    )


@pytest.fixture(scope="module")
def mixed_report(mixed, tmp_path_factory):
    out = tmp_path_factory.mktemp("mixed-report") / "out"
    write_report(mixed, out)
    return out


@pytest.mark.parametrize(("width", "height"), [(1400, 1000), (390, 844)])
def test_report_layout_fits_a_laptop_and_a_phone(mixed_report, mixed, tmp_path, width, height):
    assert Path(CHROMIUM).is_file(), "install the Debian package chromium (apt-get install -y chromium)"
    page = (mixed_report / "report.html").read_text(encoding="utf-8")
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("</body>", _LAYOUT_SCRIPT + "</body>"), encoding="utf-8")
    frame = tmp_path / "frame.html"
    frame.write_text(_frame(checked.as_uri(), width, height), encoding="utf-8")
    run = _chromium(
        frame.as_uri(),
        tmp_path / "profile",
        f"--window-size={width},{height}",
        "--virtual-time-budget=10000",
        "--dump-dom",
    )
    assert run.returncode == 0, run.stderr[-2000:]
    match = re.search(r'<pre id="layout">(.*?)</pre>', run.stdout, re.S)
    assert match and match.group(1).strip(), run.stdout[-2000:]
    layout = json.loads(html.unescape(match.group(1)))
    assert layout["innerWidth"] == width
    # the page never scrolls sideways: text wraps, wide tables scroll inside their own box
    assert layout["scrollWidth"] <= width, layout
    assert layout["scrollWidthOpen"] <= width, layout
    assert layout["boxWidth"] <= width
    assert layout["recommendationTop"] < height / 2  # the advice is on the first screen
    if width >= 1400:
        # the headline table and the details table fit their boxes: no scrolling at all
        assert layout["tableWidth"] <= layout["boxWidth"] + 0.5, layout
        assert layout["boxScrollWidth"] <= layout["boxClientWidth"], layout
        assert layout["detailsWidth"] <= layout["detailsBoxWidth"] + 0.5, layout
    # colours of the verdict cells: green only for "better", orange for "worse"
    green, orange = "rgb(27, 120, 55)", "rgb(217, 95, 2)"
    verdicts = mixed.evaluation.summary["verdict"]
    assert len(layout["rows"]) == len(verdicts)
    for name, verdict, color in layout["rows"]:
        assert verdict == ("" if report_module._missing(verdicts[name]) else verdicts[name]), name
        assert (color == green) == (verdict == "better"), (name, color)
        assert (color == orange) == (verdict == "worse"), (name, color)
    # a screenshot of what a reader sees at this width: a real, non-blank picture
    shot = tmp_path / f"report_{width}.png"
    frame.write_text(_frame((mixed_report / "report.html").as_uri(), width, height), encoding="utf-8")
    run = _chromium(
        frame.as_uri(),
        tmp_path / "profile",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
        f"--screenshot={shot}",
    )
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    with Image.open(shot) as image:
        gray = np.asarray(image.convert("L").crop((0, 0, width, height)), dtype=float)
    assert gray.std() > 10
