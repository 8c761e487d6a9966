"""The HTML report: files, embedded images, and a render in headless Chromium (Debian ``chromium``)."""

from __future__ import annotations

import base64
import html
import io
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ckptrank.bench.harness import bench
from ckptrank.bench.report import write_report
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
