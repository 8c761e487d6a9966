"""``ckptrank ensemble``: CliRunner with fake checkpoints, and one subprocess run on real tiny checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from ckptrank import ranking, specs
from ckptrank.cli.main import app

runner = CliRunner()
LABELS = np.repeat(np.arange(3), 30)
# name -> class signal per class: "left" knows classes 0-1, "right" knows class 2, "copy" mirrors "left"
SIGNAL = {"left": (3.0, 3.0, 0.0), "right": (0.0, 0.0, 3.0), "copy": (3.0, 3.0, 0.0)}


class FakeCheckpoint:
    def __init__(self, spec: str) -> None:
        from ckptrank.adapters._base import CheckpointError

        if spec not in SIGNAL:
            raise CheckpointError(f"unknown built-in checkpoint {spec!r}")
        self.spec = self.name = spec
        self.has_head = False
        self.card: dict = {}

    def num_parameters(self) -> int:
        return 1000


def fake_extract(checkpoint, dataset, **kwargs):
    y = np.asarray(dataset.labels)
    seed = zlib.crc32(b"left" if checkpoint.spec == "copy" else checkpoint.spec.encode())
    X = np.random.default_rng(seed).standard_normal((y.size, 6))
    X[np.arange(y.size), y] += np.asarray(SIGNAL[checkpoint.spec])[y]
    if checkpoint.spec == "copy":
        X = X[:, ::-1].copy()  # the same information, columns reversed
    return SimpleNamespace(features=X, source_probs=None, labels=y, seconds=0.1, from_cache=False)


@pytest.fixture
def fakes(monkeypatch, tmp_path):
    monkeypatch.setattr(
        ranking, "load_checkpoint", lambda spec, trust_checkpoint, device: FakeCheckpoint(spec)
    )
    monkeypatch.setattr(ranking, "extract_features", fake_extract)
    monkeypatch.setattr(ranking, "make_cache", lambda cache_dir: None)
    monkeypatch.setattr(specs, "check_spec", lambda spec: None)
    path = tmp_path / "target.npz"
    np.savez(path, features=np.zeros((LABELS.size, 2)), labels=LABELS, split=np.full(LABELS.size, "train"))
    return str(path)


def test_human_output_prefers_the_complementary_checkpoint(fakes):
    result = runner.invoke(app, ["ensemble", "--data", fakes, "--models", "left,copy,right", "--k", "2"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    picks = [line for line in lines if line.strip().startswith(("│ 1", "│    1", "│ 2", "│    2"))]
    assert len(picks) == 2, result.stdout
    assert "right" in picks[1]
    assert "own SFDA" in result.stdout and "ensemble SFDA" in result.stdout
    assert "not selected:" in result.stdout


def test_json_output(fakes):
    result = runner.invoke(
        app,
        ["ensemble", "--data", fakes, "--models", "left,copy,right,nosuch", "--k", "2", "--format", "json"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [entry["order"] for entry in data["selected"]] == [1, 2]
    assert data["selected"][1]["checkpoint"] == "right"
    assert data["selected"][0]["ensemble_score"] == pytest.approx(data["selected"][0]["individual_score"])
    assert set(data["individual_scores"]) == {"left", "copy", "right"}
    assert "nosuch" in data["failed"]
    assert data["config"]["k"] == 2


def test_quiet_output(fakes):
    result = runner.invoke(
        app, ["ensemble", "--data", fakes, "--models", "left,right", "--k", "1", "--format", "quiet"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.split() in (["left"], ["right"])


def test_errors(fakes):
    result = runner.invoke(app, ["ensemble", "--data", fakes, "--models", "left,right", "--k", "3"])
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: k=3 but only 2 checkpoints")
    result = runner.invoke(app, ["ensemble", "--data", fakes, "--models", "left", "--format", "csv"])
    assert result.exit_code == 1 and "--format" in result.output


def test_help_shows_examples():
    result = runner.invoke(app, ["ensemble", "--help"])
    assert result.exit_code == 0 and "ckptrank ensemble --data" in result.output


def test_subprocess_ensemble_on_random_init_checkpoints(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, colour in enumerate([(220, 30, 30), (30, 200, 30), (30, 30, 220)]):
        folder = tmp_path / "data" / "train" / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(5):
            pixels = np.clip(np.array(colour) + rng.normal(0, 50, (24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    models = (
        "torchvision:mobilenet_v3_small?init=random&size=32,"
        "torchvision:mobilenet_v3_small@features.2?init=random&size=32,"
        "torchvision:mobilenet_v3_small?init=random&seed=7&size=32"
    )
    env = {key: value for key, value in os.environ.items() if key != "CKPTRANK_DEBUG"}
    env.update(CKPTRANK_DISABLE_PROGRESS_BARS="1", CKPTRANK_CACHE=str(tmp_path / "cache"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ckptrank.cli.main",
            "ensemble",
            "--data",
            str(tmp_path / "data"),
            "--models",
            models,
            "--k",
            "2",
            "--pca-dims",
            "8",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["selected"]) == 2
    assert len({entry["checkpoint"] for entry in data["selected"]}) == 2
    assert all(np.isfinite(entry["ensemble_score"]) for entry in data["selected"])
    assert data["config"]["pca_dims"] == 8
