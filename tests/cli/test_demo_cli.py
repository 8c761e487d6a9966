"""``ckptrank demo``: one reduced run of the real demo (real checkpoints, real data, offline)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from ckptrank.cli.main import app
from ckptrank.demo import DEMO_TASKS

runner = CliRunner()


def test_demo_runs_offline_and_explains(tmp_path):
    out = tmp_path / "demo"
    result = runner.invoke(
        app,
        [
            "demo",
            "--per-class",
            "3",
            "--check",
            "--check-per-class",
            "2",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--out",
            str(out),
        ],
        env={"CKPTRANK_DISABLE_PROGRESS_BARS": "1"},
    )
    assert result.exit_code == 0, result.output
    text = result.stdout
    task = DEMO_TASKS["image"]
    for model in task.models:
        assert model in text  # introduced and ranked
    assert "3 training samples per class" in text
    assert "HIGHER = predicted to transfer better" in text
    assert "rank = the default ranker" in text and "p(best)" in text  # the answer ckptrank rank gives
    assert "target-blind baselines" in text
    assert "not a fine-tuning result" in text
    assert "random-initialised control ranked" in text
    assert "Demo finished in" in text
    assert "Reality check: linear probe trained on the 30 training samples, tested on 20 held-out" in text
    assert "Kendall tau between the predicted order and the probe accuracies" in text
    records = json.loads((out / "ranking.json").read_text())
    assert {r["checkpoint"] for r in records} == set(task.models)
    assert all(r["status"] == "ok" for r in records)
    by_name = {r["checkpoint"]: r for r in records}
    assert by_name["efficientnet-lite0"]["source_accuracy"] == 0.751
    assert by_name["efficientnet-lite0@_blocks.4"]["scores"]["leep"] is None
    config = json.loads((out / "config.json").read_text())
    assert config["demo_task"] == "image" and config["per_class"] == 3
    assert (out / "scores.png").read_bytes()[:4] == b"\x89PNG"


def test_demo_rejects_unknown_task():
    result = runner.invoke(app, ["demo", "--task", "audio"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: unknown demo task 'audio'; choose one of image, text (set CKPTRANK_DEBUG=1 for the traceback)"
    )


def test_demo_help_shows_examples():
    result = runner.invoke(app, ["demo", "--help"])
    assert result.exit_code == 0
    assert "ckptrank demo --out" in result.output
    assert "--per-class" not in result.output  # hidden, for tests
