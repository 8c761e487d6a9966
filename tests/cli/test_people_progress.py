"""Progress in logs: one plain line per checkpoint when stderr is not a terminal (CI, nohup, pipes)."""

from __future__ import annotations

import importlib.util
import io
import re
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from ckptrank import ranking, specs
from ckptrank.cli.main import app
from ckptrank.cli.rank import progress_for
from ckptrank.engine.progress import DISABLE_ENV_VAR, ProgressLines, progress_bar

runner = CliRunner()
LABELS = np.repeat(np.arange(3), 20)


def _engine_fakes():
    """tests/engine/fakes.py (tiny real checkpoints for the extraction engine), loaded by path."""
    path = Path(__file__).resolve().parents[1] / "engine" / "fakes.py"
    spec = importlib.util.spec_from_file_location("_people_engine_fakes", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lines_count_the_checkpoints_and_report_long_extractions():
    lines: list[str] = []
    clock = Clock()
    progress = ProgressLines(["a", "b", "c"], write=lines.append, interval=30.0, clock=clock)
    with progress_bar(total=400, desc="features c", enabled=progress) as bar:
        for _ in range(4):
            clock.now += 20.0
            bar.update(100)
    # an interim line at 40 s (not at 20 s or 60 s: at most one per 30 s; none once all are done)
    assert lines == ["[3/3] c: 200/400 samples, 40 s so far", "[3/3] c: extracted 400 samples in 80.0 s"]


def test_resumed_failed_and_unlisted_extractions():
    lines: list[str] = []
    clock = Clock()
    progress = ProgressLines(["a"], write=lines.append, clock=clock)
    with progress_bar(total=50, initial=20, desc="features a", enabled=progress) as bar:
        clock.now += 1.5
        bar.update(30)
    with pytest.raises(RuntimeError), progress_bar(total=10, desc="features other", enabled=progress) as bar:
        bar.update(4)
        raise RuntimeError("out of memory")
    assert lines == [
        "[1/1] a: extracted 30 samples (+20 from a partial cache) in 1.5 s",
        "other: stopped after 4/10 samples (0.0 s)",
    ]


def test_the_engine_reports_through_the_lines():
    fakes = _engine_fakes()
    from ckptrank.engine import extract

    lines: list[str] = []
    checkpoint = fakes.TinyCNN()
    result = extract(
        checkpoint,
        fakes.array_dataset(20),
        batch_size=8,
        progress=ProgressLines([checkpoint.spec], write=lines.append),
    )
    assert len(result.features) == 20
    assert len(lines) == 1 and re.fullmatch(
        r"\[1/1\] test:tiny-cnn-0: extracted 20 samples in \d+\.\d s", lines[0]
    )


def test_progress_for_picks_bars_lines_or_nothing(monkeypatch):
    monkeypatch.delenv(DISABLE_ENV_VAR, raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log: not a terminal
    assert isinstance(progress_for("human", ["a"]), ProgressLines)
    for fmt in ("json", "csv", "quiet"):
        assert progress_for(fmt, ["a"]) is False

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert progress_for("human") is None  # the engine draws its bars
    monkeypatch.setenv(DISABLE_ENV_VAR, "1")
    assert isinstance(progress_for("human"), ProgressLines)  # bars off, lines still on


class FakeCheckpoint:
    def __init__(self, spec: str) -> None:
        self.spec = self.name = spec
        self.has_head = False
        self.card = {}

    def num_parameters(self) -> int:
        return 1000


def fake_extract(checkpoint, dataset, **kwargs):
    """Runs through the engine's progress wrapper like the real extraction does."""
    y = np.asarray(dataset.labels)
    with progress_bar(
        total=y.size, desc=f"features {checkpoint.spec}", enabled=kwargs.get("progress")
    ) as bar:
        bar.update(y.size)
    rng = np.random.default_rng(zlib.crc32(checkpoint.spec.encode()))
    features = rng.standard_normal((y.size, 6))
    features[np.arange(y.size), y] += 1.0
    return SimpleNamespace(features=features, source_probs=None, labels=y, seconds=0.1, from_cache=False)


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


def test_rank_prints_one_line_per_checkpoint_in_a_log(fakes):
    args = ["rank", "--data", fakes, "--models", "alpha,beta,gamma", "--measures", "logme"]
    result = runner.invoke(app, args, env={DISABLE_ENV_VAR: None})
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert [line.split(":")[0] for line in lines] == ["[1/3] alpha", "[2/3] beta", "[3/3] gamma"]
    assert all(re.search(r": extracted 60 samples in \d+\.\d s$", line) for line in lines)
    assert "[1/3]" not in result.stdout  # progress never mixes with the table
    quiet = runner.invoke(app, [*args, "--format", "json"])
    assert quiet.exit_code == 0 and quiet.stderr == ""  # machine formats stay silent


def test_a_checkpoint_served_from_the_cache_gets_a_line_too(tmp_path):
    """In a log, a cached checkpoint (no extraction, no bar) is still reported."""
    import ckptrank

    lines: list[str] = []
    models = ["zoo:cnn-random", "zoo:cnn-fm04"]
    options = {"per_class": 3, "cache_dir": tmp_path / "cache", "measures": "logme"}
    ckptrank.rank("builtin:digits", models, progress=ProgressLines(models, write=lines.append), **options)
    assert [line.split(":")[0] for line in lines] == ["[1/2] zoo", "[2/2] zoo"]
    assert all("extracted 30 samples" in line for line in lines)
    lines.clear()
    ckptrank.rank("builtin:digits", models, progress=ProgressLines(models, write=lines.append), **options)
    assert lines == [
        "[1/2] zoo:cnn-random: 30 samples from the feature cache",
        "[2/2] zoo:cnn-fm04: 30 samples from the feature cache",
    ]
