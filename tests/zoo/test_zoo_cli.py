"""``ckptrank zoo build / ls / card`` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ckptrank.cli.main import app
from ckptrank.zoo import zoo_names

runner = CliRunner()


def test_zoo_ls_lists_every_zoo_spec() -> None:
    result = runner.invoke(app, ["zoo", "ls", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["spec"] for r in rows] == [f"zoo:{n}" for n in zoo_names()]
    stage = next(r for r in rows if r["name"] == "cnn-fm04-e1")
    assert stage["stage"].startswith("epoch 1 of 6") and stage["source_accuracy"] > 50
    quiet = runner.invoke(app, ["zoo", "ls", "--format", "quiet"])
    assert quiet.output.split() == [f"zoo:{n}" for n in zoo_names()]


def test_zoo_card_prints_the_json_card() -> None:
    result = runner.invoke(app, ["zoo", "card", "cnn-fm04"])
    assert result.exit_code == 0, result.output
    card = json.loads(result.output)
    assert card["run"] == "cnn-fm04" and card["epochs"] == 6 and len(card["sha256"]) == 64
    missing = runner.invoke(app, ["zoo", "card", "vit-huge"])
    assert missing.exit_code != 0 and isinstance(missing.exception, FileNotFoundError)


def test_zoo_build_into_a_folder_then_skip(tmp_path: Path) -> None:
    args = ["zoo", "build", "--only", "cnn-random", "--out", str(tmp_path), "--format", "json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.output) == {"cnn-random": [str(tmp_path / "cnn-random.safetensors")]}
    again = runner.invoke(app, args)
    assert json.loads(again.output) == {"cnn-random": []}
    listed = runner.invoke(app, ["zoo", "ls", "--dir", str(tmp_path), "--format", "json"])
    built = {r["name"]: r["stage"] for r in json.loads(listed.output)}
    assert built["cnn-random"] == "random-init" and built["cnn-fm04"] == "not built"
    bad = runner.invoke(app, ["zoo", "build", "--only", "vit", "--out", str(tmp_path)])
    assert bad.exit_code != 0 and "unknown zoo entry 'vit'" in str(bad.exception)
