"""Flags people reach for: CSV/JSONL columns, the results store's location, an early --out check,
notes grouped and capped (``--verbose`` for all), and plain values in the one-class error."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ckptrank import ranking, specs
from ckptrank.bench.store import default_store_path
from ckptrank.cli.main import app
from ckptrank.cli.rank import NOTE_LINES, data_with_columns, group_notes, print_notes
from ckptrank.data import load_dataset

runner = CliRunner()


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


class FakeCheckpoint:
    def __init__(self, spec: str) -> None:
        from ckptrank.adapters._base import CheckpointError

        if spec.startswith("bad"):
            raise CheckpointError(f"no weights for {spec}")
        self.spec = self.name = spec
        self.has_head = False
        self.card = {}

    def num_parameters(self) -> int:
        return 1000


@pytest.fixture
def fakes(monkeypatch):
    """Fake checkpoints; ``fakes.extracted`` lists the datasets they ran on."""
    extracted: list = []

    def fake_extract(checkpoint, dataset, **kwargs):
        extracted.append(dataset)
        y = np.asarray(dataset.labels)
        rng = np.random.default_rng(zlib.crc32(checkpoint.spec.encode()))
        features = rng.standard_normal((y.size, 6))
        features[np.arange(y.size), y] += 1.0
        return SimpleNamespace(features=features, source_probs=None, labels=y, seconds=0.1, from_cache=False)

    monkeypatch.setattr(
        ranking, "load_checkpoint", lambda spec, trust_checkpoint, device: FakeCheckpoint(spec)
    )
    monkeypatch.setattr(ranking, "extract_features", fake_extract)
    monkeypatch.setattr(ranking, "make_cache", lambda cache_dir: None)
    monkeypatch.setattr(specs, "check_spec", lambda spec: None)
    return SimpleNamespace(extracted=extracted)


@pytest.fixture
def reviews(tmp_path) -> Path:
    words = ["good", "great", "fine", "bad", "awful", "poor"]
    rows = [
        {"review": f"{w} film {i}", "stars": "5" if j < 3 else "1", "id": i}
        for i in range(4)
        for j, w in enumerate(words)
    ]
    path = tmp_path / "reviews.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


# --- columns of CSV / JSONL data ------------------------------------------------------------------------


def test_spec_options_choose_the_columns(reviews, tmp_path):
    dataset = load_dataset(f"{reviews}?text=review&label=stars")
    assert dataset.modality == "text" and dataset.classes == ("1", "5")
    assert dataset.items[0] == "good film 0" and len(dataset) == 24
    jsonl = tmp_path / "reviews.jsonl"
    pd.read_csv(reviews).to_json(jsonl, orient="records", lines=True)
    assert load_dataset(f"{jsonl}?label=stars&text=review").classes == ("1", "5")
    # image paths from another column, relative to the file's folder
    from PIL import Image

    for i in range(4):
        Image.new("RGB", (8, 8), (60 * i, 0, 0)).save(tmp_path / f"img{i}.png")
    table = tmp_path / "images.csv"
    pd.DataFrame({"file": [f"img{i}.png" for i in range(4)], "kind": ["a", "b"] * 2}).to_csv(
        table, index=False
    )
    images = load_dataset(f"{table}?path=file&label=kind")
    assert images.modality == "image" and images.items[0] == str(tmp_path / "img0.png")


def test_column_flags_reach_the_data(fakes, reviews, tmp_path):
    out = tmp_path / "run"
    args = ["rank", "--data", str(reviews), "--models", "a,b", "--measures", "logme", "--out", str(out)]
    result = runner.invoke(
        app, [*args, "--text-column", "review", "--label-column", "stars", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    assert fakes.extracted[0].items[0] == "good film 0" and fakes.extracted[0].classes == ("1", "5")
    assert json.loads((out / "config.json").read_text())["data"] == f"{reviews}?label=stars&text=review"
    # without the flags the file has no 'text' column: the error says which flags to use
    line = one_line_error(runner.invoke(app, args[:-2]))
    assert "columns present: review, stars, id" in line and "--text-column" in line
    # a column that does not exist: named with the flag that chose it, and the closest match
    line = one_line_error(
        runner.invoke(app, [*args[:-2], "--text-column", "review", "--label-column", "star"])
    )
    assert "has no label column 'star' (--label-column star)" in line and "Did you mean 'stars'?" in line


def test_column_options_are_checked(reviews, tmp_path):
    with pytest.raises(ValueError, match=r"unknown data option 'lable'.*Did you mean 'label'\?"):
        load_dataset(f"{reviews}?text=review&lable=stars")
    with pytest.raises(ValueError, match="must look like KEY=VALUE"):
        load_dataset(f"{reviews}?text")
    with pytest.raises(ValueError, match="given twice"):
        load_dataset(f"{reviews}?text=review&text=id")
    with pytest.raises(ValueError, match="not both"):
        load_dataset(f"{reviews}?text=review&path=review&label=stars")
    features = tmp_path / "f.npz"
    np.savez(features, features=np.eye(4), labels=[0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"choose the columns of a \.csv or \.jsonl file.*--label-column"):
        load_dataset(f"{features}?label=y")


def test_odd_column_names_survive_the_flags(tmp_path):
    path = tmp_path / "odd.csv"
    pd.DataFrame({"the text & more": ["a b", "c d", "e f", "g h"], "y=label?": [0, 1, 0, 1]}).to_csv(
        path, index=False
    )
    spec = data_with_columns(str(path), label_column="y=label?", text_column="the text & more")
    assert spec == f"{path}?label=y%3Dlabel%3F&text=the%20text%20%26%20more"
    dataset = load_dataset(spec)
    assert dataset.items == ["a b", "c d", "e f", "g h"] and dataset.classes == ("0", "1")
    assert data_with_columns(f"{path}?text=x", label_column="y") == f"{path}?text=x&label=y"
    assert data_with_columns("builtin:digits") == "builtin:digits"


# --- the results store follows the cache ------------------------------------------------------------------


def test_default_store_path(monkeypatch, tmp_path):
    monkeypatch.delenv("CKPTRANK_RESULTS", raising=False)
    monkeypatch.setenv("CKPTRANK_CACHE", str(tmp_path / "cache"))
    assert default_store_path() == tmp_path / "cache" / "results.sqlite"
    assert default_store_path(tmp_path / "other") == tmp_path / "other" / "results.sqlite"
    monkeypatch.setenv("CKPTRANK_RESULTS", str(tmp_path / "mine.sqlite"))
    assert default_store_path(tmp_path / "other") == tmp_path / "mine.sqlite"


@pytest.fixture
def scorable(tmp_path):
    from ckptrank.bench.suite import Suite, Task, register_suite, unregister_suite
    from ckptrank.testing.synthetic import blobs

    rows = []
    for i, (name, sep) in enumerate({"weak": 0.2, "mid": 1.0, "strong": 2.5}.items()):
        X, y = blobs(40, 6, 3, sep, random_state=i)
        np.savez(tmp_path / f"{name}-t.npz", features=X, labels=y, split=np.full(y.size, "train"))
        rows.append(("t", name, 0, 50 + 10 * sep))
    suite = Suite(
        name="test:people-store",
        description="synthetic",
        tasks={"t": Task(data=str(tmp_path / "{checkpoint}-t.npz"))},
        checkpoints=["weak", "mid", "strong"],
        ground_truth=pd.DataFrame(rows, columns=["task", "checkpoint", "seed", "accuracy"]),
    )
    register_suite(suite.name, lambda: suite)
    yield suite.name
    unregister_suite(suite.name)


def test_bench_store_lives_in_the_cache_dir(scorable, tmp_path):
    home = tmp_path / "home"
    env = {"CKPTRANK_RESULTS": None, "CKPTRANK_CACHE": str(tmp_path / "env-cache"), "HOME": str(home)}
    args = ["bench", "--suite", scorable, "--measures", "logme", "--bootstrap", "0"]
    result = runner.invoke(app, [*args, "--cache-dir", str(tmp_path / "flag-cache")], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "flag-cache" / "results.sqlite").is_file()
    assert f"results store: {tmp_path / 'flag-cache' / 'results.sqlite'}" in result.stderr
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "env-cache" / "results.sqlite").is_file()
    assert not home.exists()  # never the user's ~/.cache


# --- --out is checked before any work ----------------------------------------------------------------------


def test_unwritable_out_fails_before_extraction(fakes, tmp_path, monkeypatch):
    data = tmp_path / "feats.npz"
    np.savez(data, features=np.eye(6), labels=[0, 0, 0, 1, 1, 1])
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    args = ["rank", "--data", str(data), "--models", "a", "--measures", "logme"]
    line = one_line_error(runner.invoke(app, [*args, "--out", str(blocker / "results")]))
    assert f"{blocker} is a file, not a folder" in line
    import tempfile

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    line = one_line_error(runner.invoke(app, [*args, "--out", str(tmp_path / "new" / "results")]))
    assert "is not writable (its parent" in line and "Permission denied" in line
    assert fakes.extracted == []  # refused before any checkpoint ran


# --- notes -------------------------------------------------------------------------------------------------


def test_group_notes_counts_repeats():
    notes = [f"logme on task{i}: every checkpoint has the same score" for i in range(5)]
    notes += ["sfda on task0: every checkpoint has the same score", "a note without an owner", "x: once"]
    assert group_notes(notes) == [
        "every checkpoint has the same score (6 times: logme on task0, logme on task1, logme on task2 "
        "and 3 more)",
        "a note without an owner",
        "x: once",
    ]


def test_print_notes_caps_the_lines_unless_verbose(capsys):
    notes = [f"note number {i}" for i in range(40)]
    print_notes(notes)
    lines = capsys.readouterr().err.splitlines()
    assert (
        len(lines) == NOTE_LINES and lines[-1] == "note: 26 more notes not shown; --verbose prints every note"
    )
    print_notes(notes, verbose=True)
    assert len(capsys.readouterr().err.splitlines()) == 40


def test_rank_verbose_flag(fakes, tmp_path):
    data = tmp_path / "feats.npz"
    np.savez(data, features=np.eye(6), labels=[0, 0, 0, 1, 1, 1])
    models = ",".join(["ok", *(f"bad{i}" for i in range(20))])
    args = ["rank", "--data", str(data), "--models", models, "--measures", "logme"]
    short = runner.invoke(app, args)
    assert short.exit_code == 0, short.output
    notes = [line for line in short.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == NOTE_LINES and "--verbose prints every note" in notes[-1]
    full = runner.invoke(app, [*args, "--verbose"])
    assert sum(line.startswith("note: bad") for line in full.stderr.splitlines()) == 20


def test_one_class_error_shows_plain_values(fakes, tmp_path):
    data = tmp_path / "one.npz"
    np.savez(data, features=np.zeros((6, 2)), labels=np.ones(6, dtype=int))
    line = one_line_error(
        runner.invoke(app, ["rank", "--data", str(data), "--models", "a", "--measures", "logme"])
    )
    assert "at least 2 classes" in line and "6 samples" in line and "np." not in line


def test_ensemble_takes_the_column_flags(fakes, reviews):
    args = ["ensemble", "--data", str(reviews), "--models", "a,b,c", "--k", "2", "--format", "json"]
    result = runner.invoke(app, [*args, "--text-column", "review", "--label-column", "stars"])
    assert result.exit_code == 0, result.output
    assert fakes.extracted[0].items[0] == "good film 0" and fakes.extracted[0].classes == ("1", "5")
    assert len(json.loads(result.stdout)["selected"]) == 2
    line = one_line_error(runner.invoke(app, [*args, "--text-column", "reviews"]))
    assert "has no text column 'reviews' (--text-column reviews)" in line and "Did you mean 'review'?" in line
