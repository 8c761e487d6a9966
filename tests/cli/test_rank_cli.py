"""``ckptrank rank``: CliRunner tests with fake checkpoints, and subprocess runs of the real command."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ckptrank import ranking, specs
from ckptrank.cli.main import app

runner = CliRunner()

LABELS = np.repeat(np.arange(4), 30)
ZOO = {"good": (3.0, True, 2_000_000), "okay": (1.0, True, 3_000_000), "poor": (0.2, False, 1_000_000)}


class FakeCheckpoint:
    def __init__(self, spec: str) -> None:
        from ckptrank.adapters._base import CheckpointError

        if spec not in ZOO:
            raise CheckpointError(f"unknown built-in checkpoint {spec!r}. Did you mean 'good'?")
        self.spec = self.name = spec
        self.sep, self.has_head, self.params = ZOO[spec]
        self.card = {"source_accuracy": 0.7} if self.has_head else {}

    def num_parameters(self) -> int:
        return self.params


def fake_check_spec(spec: str) -> None:
    """Names starting with "typo" are rejected up front (unknown names); others load or fail on load."""
    from ckptrank.adapters._base import CheckpointError

    if spec.startswith("typo"):
        raise CheckpointError(f"unknown built-in checkpoint {spec!r}. Did you mean 'good'?")


def fake_extract(checkpoint, dataset, **kwargs):
    y = np.asarray(dataset.labels)
    rng = np.random.default_rng(zlib.crc32(checkpoint.spec.encode()))
    X = rng.standard_normal((y.size, 8))
    X[np.arange(y.size), y] += checkpoint.sep
    probs = None
    if checkpoint.has_head:
        logits = rng.standard_normal((y.size, 6))
        logits[np.arange(y.size), y] += checkpoint.sep
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return SimpleNamespace(features=X, source_probs=probs, labels=y, seconds=0.5, from_cache=False)


@pytest.fixture
def fakes(monkeypatch, tmp_path):
    monkeypatch.setattr(
        ranking, "load_checkpoint", lambda spec, trust_checkpoint, device: FakeCheckpoint(spec)
    )
    monkeypatch.setattr(ranking, "extract_features", fake_extract)
    monkeypatch.setattr(ranking, "make_cache", lambda cache_dir: None)
    monkeypatch.setattr(specs, "check_spec", fake_check_spec)
    path = tmp_path / "target.npz"
    np.savez(path, features=np.zeros((LABELS.size, 2)), labels=LABELS, split=np.full(LABELS.size, "train"))
    return str(path)


def invoke(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env=env)


def one_line_error(result) -> str:
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


# --- CliRunner, fake checkpoints ----------------------------------------------------------------------------


def test_human_table_and_notes(fakes):
    result = invoke("rank", "--data", fakes, "--models", "poor,good,okay", "--measures", "logme,sfda,leep")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.index("good") < out.index("okay") < out.index("poor")
    for column in ("logme", "sfda", "leep", "consensus", "params", "src acc"):
        assert column in out
    assert "2.00M" in out and "70.0%" in out
    assert "note: scored on the training split only" in result.stderr
    assert "note: poor: leep skipped" in result.stderr


def test_json_format(fakes):
    result = invoke(
        "rank", "--data", fakes, "--models", "good,poor,okay", "--measures", "logme,leep", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert [r["checkpoint"] for r in records] == ["good", "okay", "poor"]
    for record in records:
        for key in (
            "checkpoint",
            "rank",
            "scores",
            "consensus_rank",
            "seconds",
            "num_parameters",
            "source_accuracy",
            "notes",
        ):
            assert key in record
    assert records[0]["rank"] == 1 and records[0]["num_parameters"] == 2_000_000
    assert records[2]["scores"]["leep"] is None
    assert records[2]["source_accuracy"] is None
    assert any("leep skipped" in note for note in records[2]["notes"])
    assert result.stderr == ""


def test_csv_format(fakes):
    result = invoke(
        "rank", "--data", fakes, "--models", "good,okay", "--measures", "logme", "--format", "csv"
    )
    assert result.exit_code == 0, result.output
    table = pd.read_csv(io.StringIO(result.stdout))
    assert list(table["checkpoint"]) == ["good", "okay"]
    assert {"rank", "logme", "consensus_rank", "seconds", "num_parameters", "source_accuracy"} <= set(
        table.columns
    )


def test_quiet_format(fakes):
    result = invoke(
        "rank", "--data", fakes, "--models", "poor,good", "--measures", "logme", "--format", "quiet"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["good", "poor"]


def test_models_file_and_out_dir(fakes, tmp_path):
    models = tmp_path / "zoo.txt"
    models.write_text("# candidates\ngood\nokay  # second\n\npoor\n")
    out = tmp_path / "run"
    args = ["rank", "--data", fakes, "--models", str(models), "--measures", "logme,leep", "--out", str(out)]
    result = invoke(*args, "--format", "quiet")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "ranking.csv",
        "ranking.json",
        "scores.png",
    ]
    assert (out / "scores.png").read_bytes()[:4] == b"\x89PNG"
    config = json.loads((out / "config.json").read_text())
    assert config["models"] == ["good", "okay", "poor"] and config["data"] == fakes
    assert json.loads((out / "ranking.json").read_text())[0]["checkpoint"] == "good"
    again = invoke(*args)
    assert "not empty" in one_line_error(again) and "--overwrite" in again.output
    assert invoke(*args, "--overwrite", "--format", "json").exit_code == 0


def test_failed_checkpoint_is_reported_exit_zero(fakes):
    result = invoke("rank", "--data", fakes, "--models", "good,goood", "--measures", "logme")
    assert result.exit_code == 0, result.output
    assert "goood" in result.stdout and "failed" in result.stdout
    assert "note: goood: failed: unknown built-in checkpoint 'goood'" in result.stderr


def test_unknown_checkpoint(fakes):
    line = one_line_error(invoke("rank", "--data", fakes, "--models", "good,typoo", "--measures", "logme"))
    assert "unknown built-in checkpoint 'typoo'. Did you mean 'good'?" in line


def test_all_failed_is_an_error(fakes):
    line = one_line_error(invoke("rank", "--data", fakes, "--models", "goood", "--measures", "logme"))
    assert "the checkpoint failed: goood: unknown built-in checkpoint 'goood'. Did you mean 'good'?" in line


def test_unknown_measure(fakes):
    line = one_line_error(invoke("rank", "--data", fakes, "--models", "good", "--measures", "sfdaa"))
    assert "unknown measure 'sfdaa'" in line and "Did you mean 'sfda'?" in line and "logme" in line


def test_missing_data(fakes, tmp_path):
    line = one_line_error(invoke("rank", "--data", str(tmp_path / "nothing"), "--models", "good"))
    assert "nothing" in line


def test_single_class(fakes, tmp_path):
    path = tmp_path / "one.npz"
    np.savez(path, features=np.zeros((6, 2)), labels=np.ones(6, dtype=int))
    line = one_line_error(invoke("rank", "--data", str(path), "--models", "good", "--measures", "logme"))
    assert "at least 2 classes" in line


def test_head_measure_impossible_for_every_checkpoint(fakes):
    line = one_line_error(invoke("rank", "--data", fakes, "--models", "poor", "--measures", "leep"))
    assert "classification head" in line and "logme" in line


def test_bad_format_and_option(fakes):
    assert "--format" in one_line_error(
        invoke("rank", "--data", fakes, "--models", "good", "--format", "xml")
    )
    line = one_line_error(invoke("rank", "--data", fakes, "--models", "good", "--option", "sfda"))
    assert "MEASURE.OPTION=VALUE" in line
    line = one_line_error(
        invoke("rank", "--data", fakes, "--models", "good", "--measures", "sfda", "--option", "sfda.bogus=1")
    )
    assert "bogus" in line


def test_debug_env_raises(fakes):
    result = invoke(
        "rank", "--data", fakes, "--models", "good", "--measures", "sfdaa", env={"CKPTRANK_DEBUG": "1"}
    )
    assert result.exit_code != 0
    assert isinstance(result.exception, KeyError)


def test_help_shows_examples():
    result = invoke("rank", "--help")
    assert result.exit_code == 0
    assert "Examples" in result.output and "ckptrank rank --data" in result.output


# --- subprocess, real commands on real (tiny, locally built) checkpoints ---------------------------------


def run_cli(*args: str, cache: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {key: value for key, value in os.environ.items() if key != "CKPTRANK_DEBUG"}
    full_env.update({"CKPTRANK_DISABLE_PROGRESS_BARS": "1", "CKPTRANK_CACHE": str(cache), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "ckptrank.cli.main", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def image_task(tmp_path_factory):
    """A tiny image folder (3 classes) and a random-initialised torchvision model saved to disk."""
    import torch
    import torchvision
    from PIL import Image

    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    colours = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (50, 60, 210)}
    for name, colour in colours.items():
        folder = root / "train" / name
        folder.mkdir(parents=True)
        for i in range(6):
            pixels = np.clip(np.array(colour) + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    torch.manual_seed(0)
    weights = root / "mobilenet.pt"
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), weights)
    return root, weights


def test_subprocess_rank_image_folder_json_and_out(image_task, tmp_path):
    root, weights = image_task
    out = tmp_path / "results"
    models = (
        f"torchvision:mobilenet_v3_small?weights={weights}&size=64,"
        "torchvision:mobilenet_v3_small@features.3?init=random&seed=1&size=64,"
        f"file:{tmp_path / 'missing.pt'}"
    )
    result = run_cli(
        "rank",
        "--data",
        str(root),
        "--models",
        models,
        "--measures",
        "logme,leep",
        "--format",
        "json",
        "--out",
        str(out),
        "--batch-size",
        "8",
        cache=tmp_path / "cache",
    )
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert len(records) == 3
    for record in records:
        assert {
            "checkpoint",
            "rank",
            "scores",
            "consensus_rank",
            "seconds",
            "num_parameters",
            "source_accuracy",
            "notes",
        } <= set(record)
    ok = [r for r in records if r["status"] == "ok"]
    assert [r["rank"] for r in ok] == [1, 2]
    assert all(math.isfinite(r["scores"]["logme"]) for r in ok)
    layer = next(r for r in ok if "@features.3" in r["checkpoint"])
    assert layer["scores"]["leep"] is None and any("leep skipped" in n for n in layer["notes"])
    failed = records[-1]
    assert failed["status"] == "failed" and "missing.pt" in failed["error"] and failed["rank"] is None
    assert any("training split" in n for n in records[0]["notes"])
    assert (out / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((out / "config.json").read_text())
    assert config["measures"] == ["logme", "leep"] and config["data"] == str(root)
    assert len(pd.read_csv(out / "ranking.csv")) == 3


def test_subprocess_rank_texts_csv(tmp_path):
    words = {
        "animal": [
            "a small dog barks",
            "the cat sleeps",
            "a horse runs fast",
            "birds fly south",
            "the cow eats",
        ],
        "food": [
            "fresh bread and butter",
            "a bowl of rice",
            "sweet apple pie",
            "hot tomato soup",
            "cheese pizza",
        ],
        "tool": [
            "a steel hammer",
            "sharp kitchen knife",
            "an electric drill",
            "a long ladder",
            "rusty old saw",
        ],
    }
    rows = [(text, label) for label, texts in words.items() for text in texts]
    path = tmp_path / "texts.csv"
    pd.DataFrame({"text": [t for t, _ in rows], "label": [lab for _, lab in rows], "split": "train"}).to_csv(
        path, index=False
    )
    result = run_cli(
        "rank",
        "--data",
        str(path),
        "--models",
        "glove-6b-50d,all-minilm-l6-v2",
        "--measures",
        "logme,reg_hscore",
        "--format",
        "csv",
        cache=tmp_path / "cache",
    )
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(io.StringIO(result.stdout))
    assert set(table["checkpoint"]) == {"glove-6b-50d", "all-minilm-l6-v2"}
    assert set(table["rank"]) <= {1, 2}
    assert table["consensus_rank"].sum() == 3.0  # ranks 1 and 2, or a tie at 1.5
    assert table["logme"].notna().all() and table["reg_hscore"].notna().all()
    assert table.set_index("checkpoint").loc["all-minilm-l6-v2", "num_parameters"] > 1_000_000


def test_subprocess_errors_are_one_line(tmp_path):
    # (the other errors are checked with CliRunner above; a subprocess costs a full import)
    data = tmp_path / "feats.npz"
    np.savez(data, features=np.eye(6), labels=np.array([0, 0, 0, 1, 1, 1]))
    args = ["rank", "--data", str(data), "--models", "efficientnet-lite9", "--measures", "logme"]
    result = run_cli(*args, cache=tmp_path / "cache")
    assert result.returncode == 1, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        "error: unknown built-in checkpoint 'efficientnet-lite9'. Did you mean 'efficientnet"
    )
    assert "efficientnet-lite0, efficientnet-lite1" in lines[0]  # the valid names
    assert lines[0].endswith("(set CKPTRANK_DEBUG=1 for the traceback)")
    debug = run_cli(*args, cache=tmp_path / "cache", env={"CKPTRANK_DEBUG": "1"})
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr and "CheckpointError" in debug.stderr


def test_epochs_and_time_budget_reach_dynamic_measures_only() -> None:
    from ckptrank.cli.rank import add_budget_options

    options: dict = {"beff": {"lr": 0.05}}
    add_budget_options(options, "logme,beff,probe_accuracy", epochs=3, time_budget=20.0)
    assert options == {
        "beff": {"lr": 0.05, "epochs": 3, "max_epochs": 50, "time_budget": 20.0},
        "probe_accuracy": {"epochs": 3, "max_epochs": 50, "time_budget": 20.0},
    }
    with pytest.raises(ValueError, match="dynamic measures only"):
        add_budget_options({}, "logme", epochs=3, time_budget=None)
