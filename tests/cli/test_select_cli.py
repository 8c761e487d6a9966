"""``ckptrank select`` through CliRunner, on an app holding only this command (see ``register``)."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from ckptrank.cli import select as select_cli

runner = CliRunner()
MODELS = "zoo:cnn-fm04,zoo:cnn-random,zoo:cnn-fm59"
TASK = ["--data", "builtin:digits", "--per-class", "10", "--models", MODELS, "--epochs", "2"]
SUFFIX = " (set CKPTRANK_DEBUG=1 for the traceback)"


def _app() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        """Root with one sub-command."""

    select_cli.register(app)
    return app


def _invoke(*args: str):
    return runner.invoke(_app(), ["select", *args])


def test_select_human_table_files_and_resume(tmp_path, monkeypatch):
    monkeypatch.delenv("CKPTRANK_DEBUG", raising=False)
    out = tmp_path / "sel"
    result = _invoke(*TASK, "--budget", "12steps", "--min-candidates", "3", "--out", str(out))
    assert result.exit_code == 0, result.output + result.stderr
    chosen = [line for line in result.stdout.splitlines() if line.startswith("chosen: ")]
    assert len(chosen) == 1
    assert "dropped in round 0" in result.stdout and "dropped in round 1" in result.stdout
    assert "round 1:" in result.stderr and "note: the validation split holds 20 samples" in result.stderr
    for name in ("curves.png", "report.html", "selection.json", "select.sqlite"):
        assert (out / name).is_file()
    again = _invoke(*TASK, "--budget", "12steps", "--min-candidates", "3", "--out", str(out))
    assert again.exit_code == 0
    assert "stage 1: recorded" in again.stderr and "round 0: zoo" not in again.stderr
    assert [line for line in again.stdout.splitlines() if line.startswith("chosen: ")] == chosen


def test_select_json_and_quiet(tmp_path):
    out = tmp_path / "sel"
    # two candidates, whatever the shortlist's size: a 4-step budget is one halving round
    result = _invoke(
        *TASK, "--budget", "4steps", "--max-candidates", "2", "--out", str(out), "--format", "json"
    )
    assert result.exit_code == 0, result.output + result.stderr
    payload = json.loads(result.stdout)
    assert payload["chosen"] in MODELS.split(",")
    assert payload["budget"] == {"kind": "steps", "value": 4.0, "text": "4steps"}
    assert {c["outcome"] for c in payload["candidates"]} == {"chosen", "dropped in round 0"}
    assert result.stderr == ""  # no progress lines in json mode
    quiet = _invoke(
        *TASK, "--budget", "4steps", "--max-candidates", "2", "--out", str(out), "--format", "quiet"
    )
    assert quiet.exit_code == 0 and quiet.stdout.strip() == payload["chosen"]


def test_save_best(tmp_path):
    best = tmp_path / "best"
    options = ["--budget", "4steps", "--max-candidates", "2", "--out", str(tmp_path / "sel")]
    result = _invoke(*TASK, *options, "--save-best", str(best))
    assert result.exit_code == 0, result.output + result.stderr
    assert (best / "model.safetensors").is_file() and (best / "model.json").is_file()
    assert f"to {best / 'model.safetensors'}" in result.stderr


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ("30", "budget '30' is not a number and a unit: 2000steps, 90s, 30m, 1.5h or 0.5gpuh"),
        ("0m", "budget '0m' must be positive; give a number and a unit"),
        ("10 fortnights", "budget '10 fortnights' has an unknown unit 'fortnights'"),
        ("1.5steps", "budget '1.5steps': optimizer steps must be a whole number, got 1.5"),
    ],
)
def test_bad_budget_is_one_line(tmp_path, monkeypatch, budget, message):
    monkeypatch.delenv("CKPTRANK_DEBUG", raising=False)
    result = _invoke(*TASK, "--budget", budget, "--out", str(tmp_path / "sel"))
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {message}") and lines[0].endswith(SUFFIX)
    assert not (tmp_path / "sel").exists()  # refused before any work


def test_budget_too_small_and_bad_signal_are_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("CKPTRANK_DEBUG", raising=False)
    small = _invoke(*TASK, "--budget", "5steps", "--min-candidates", "3", "--out", str(tmp_path / "a"))
    assert small.exit_code == 1
    errors = [line for line in small.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "cannot give each of 3 candidates one step" in errors[0]
    assert "Traceback" not in small.stderr
    bad = _invoke(*TASK, "--budget", "5steps", "--signal", "loss", "--out", str(tmp_path / "b"))
    assert bad.exit_code == 1
    assert bad.stderr.strip().startswith("error: unknown signal 'loss'; choose one of val_accuracy, beta_eff")


def test_out_that_is_a_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("CKPTRANK_DEBUG", raising=False)
    file = tmp_path / "taken"
    file.write_text("x")
    result = _invoke(*TASK, "--budget", "4steps", "--out", str(file))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: --out {str(file)!r} exists and is not a folder")
