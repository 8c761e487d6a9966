"""Tables fit the width: ``rank``, ``bench`` (summary, per task, reported) and ``bench --list``.

In a terminal the width is the terminal's (here: a rich Console of width 100, or ``COLUMNS=100``);
in a log (stdout not a terminal, ``COLUMNS`` unset) it is at most ``LOG_WIDTH``. Every test also
checks that what a reader needs is still there (numbers, names) and that what was left out is named.
"""

from __future__ import annotations

import io
import re
import zlib
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from rich.cells import cell_len
from rich.console import Console
from typer.testing import CliRunner

from ckptrank import ranking, specs
from ckptrank.bench.suite import Suite, Task, register_suite, unregister_suite
from ckptrank.cli.main import app
from ckptrank.cli.rank import LOG_WIDTH, render_table
from ckptrank.testing.synthetic import blobs

runner = CliRunner()

LONG = "torchvision:mobilenet_v3_small@features.3?init=random&seed=1&size=64"
NAMES = [
    "efficientnet-lite0",
    "efficientnet-lite1",
    "efficientnet-lite0@_blocks.4",
    "timm:resnet18.a1_in1k",
    LONG,
]
MEASURES = "logme,sfda,reg_hscore,nleep,leep"
LABELS = np.repeat(np.arange(5), 24)


def widest(text: str) -> int:
    return max((cell_len(line) for line in text.splitlines()), default=0)


def column_text(text: str, header: str) -> str:
    """The cells of a left-justified column of a borderless table, read top to bottom and joined."""
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if header in line.split())
    start = lines[head].index(header)
    return "".join(re.match(r"\S*", line[start:]).group() for line in lines[head + 2 :])


class FakeCheckpoint:
    def __init__(self, spec: str) -> None:
        self.spec = self.name = spec
        self.has_head = "@" not in spec
        self.card = {"source_accuracy": 75.1} if self.has_head else {}
        self.sep = 0.5 + zlib.crc32(spec.encode()) % 7 / 3

    def num_parameters(self) -> int:
        return 4_650_000 + zlib.crc32(self.spec.encode()) % 1000 * 1000


def fake_extract(checkpoint, dataset, **kwargs):
    y = np.asarray(dataset.labels)
    rng = np.random.default_rng(zlib.crc32(checkpoint.spec.encode()))
    features = rng.standard_normal((y.size, 12))
    features[np.arange(y.size), y] += checkpoint.sep
    probs = None
    if checkpoint.has_head:
        logits = rng.standard_normal((y.size, 10))
        logits[np.arange(y.size), y] += checkpoint.sep
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return SimpleNamespace(features=features, source_probs=probs, labels=y, seconds=2.1, from_cache=False)


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


@pytest.fixture
def frame(fakes):
    return ranking.rank(fakes, NAMES, measures=MEASURES)


def rendered(frame, width: int) -> str:
    buffer = io.StringIO()
    render_table(frame, console=Console(file=buffer, width=width, soft_wrap=False))
    return buffer.getvalue()


def test_rank_table_fits_100_columns_and_keeps_the_ranking(frame):
    natural = rendered(frame, 1000)
    assert widest(natural) > 100  # without fitting, this table is wider than the terminal
    text = rendered(frame, 100)
    assert widest(text) <= 100
    flat = " ".join(text.split())
    for row in frame.itertuples():
        assert f"{row.consensus_rank:.2f}" in text  # the consensus of every checkpoint
        assert f"{row.logme:.4g}" in text  # and the first measure's score
    names = column_text(text, "checkpoint")
    assert all(name in names for name in NAMES)  # long names folded over lines, not cut
    assert LONG not in text  # (the longest one did need folding)
    assert "Left out to fit 100 columns: time s" in flat
    assert "cut" not in flat  # nothing had to be cropped


def test_rank_table_in_a_narrow_terminal_drops_score_columns_not_consensus(frame):
    text = rendered(frame, 70)
    assert widest(text) <= 70
    assert "consensus" in text and all(f"{r:.2f}" in text for r in frame["consensus_rank"])
    flat = " ".join(text.split())
    assert "scores of leep" in flat  # the last measure goes first, and the caption says so


def test_rank_cli_with_columns_100_and_in_a_log(fakes):
    args = ["rank", "--data", fakes, "--models", ",".join(NAMES), "--measures", MEASURES]
    terminal = runner.invoke(app, args, env={"COLUMNS": "100"})
    assert terminal.exit_code == 0, terminal.output
    assert widest(terminal.stdout) <= 100
    log = runner.invoke(app, args, env={"COLUMNS": None})
    assert log.exit_code == 0, log.output
    assert 100 < widest(log.stdout) <= LOG_WIDTH
    for column in ("time s", "params", "src acc", "consensus", "reg_hscore"):
        assert column in log.stdout  # a log has room for every column
    assert "Left out" not in log.stdout


# --- bench ------------------------------------------------------------------------------------------------


@pytest.fixture
def scorable(tmp_path):
    """A suite of precomputed features: 2 tracks x 2 tasks, 6 checkpoints, 3 seeds."""
    rng = np.random.default_rng(1)
    separation = {"weak": 0.2, "mid": 1.0, "strong": 2.0, "best": 3.5, "mixed": 1.5, "noise": 0.0}
    tasks = {"alpha-images": 3, "beta-images": 4, "gamma-texts": 3, "delta-texts": 5}
    rows = []
    for task, n_classes in tasks.items():
        for i, (name, sep) in enumerate(separation.items()):
            X, y = blobs(60, 8, n_classes, sep, random_state=i + 10 * n_classes)
            np.savez(tmp_path / f"{name}-{task}.npz", features=X, labels=y, split=np.full(y.size, "train"))
            rows += [(task, name, seed, 50 + 10 * sep + rng.normal(0, 0.3)) for seed in range(3)]
    suite = Suite(
        name="test:people-suite",
        description="synthetic",
        tasks={t: Task(data=str(tmp_path / f"{{checkpoint}}-{t}.npz"), track=t.split("-")[1]) for t in tasks},
        checkpoints=list(separation),
        ground_truth=pd.DataFrame(rows, columns=["task", "checkpoint", "seed", "accuracy"]),
        baselines=pd.DataFrame({"num_parameters": np.arange(6.0, 0.0, -1.0)}, index=list(separation)),
    )
    register_suite(suite.name, lambda: suite)
    yield suite.name
    unregister_suite(suite.name)


def bench_text(result, width: int) -> str:
    from ckptrank.cli.bench import emit

    buffer = io.StringIO()
    emit(result, "human", console=Console(file=buffer, width=width, soft_wrap=False))
    return buffer.getvalue()


def test_bench_tables_fit_100_columns(scorable, tmp_path):
    from ckptrank.bench.harness import bench

    result = bench(scorable, measures="logme,sfda", store=str(tmp_path / "r.sqlite"), n_bootstrap=50)
    wide = bench_text(result, 1000)
    assert widest(wide) > 100
    text = bench_text(result, 100)
    assert widest(text) <= 100
    summary = result.evaluation.summary
    for name, row in summary.iterrows():
        assert str(name) in text
        assert f"{row['weighted_tau']:.3f}" in text  # every mean wτ
    tau = result.evaluation.task_table("weighted_tau")
    for value in tau.to_numpy(dtype=float).ravel():
        assert f"{value:.3f}" in text  # every per-task value, in one table or split ones
    for task in result.evaluation.tasks:
        assert task in text
    assert "wτ images" in text and "wτ texts" in text  # per-track columns stay


def test_published_bench_fits_100_columns_with_every_value():
    result = runner.invoke(
        app, ["bench", "--suite", "published:tllib", "--bootstrap", "100"], env={"COLUMNS": "100"}
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert widest(out) <= 100
    assert "✗ < src acc" in out and "≈ src acc" in out  # baselines abbreviated, explained in the caption
    assert "params = num_parameters, src acc = source_accuracy" in " ".join(out.split())
    assert "0.4507 ✗" in out and "part 1 of 2" in out
    for value in ("0.650", "0.724", "0.918", "0.893"):  # HScore and source_accuracy means, sun397
        assert value in out
    log = runner.invoke(
        app, ["bench", "--suite", "published:tllib", "--bootstrap", "100"], env={"COLUMNS": None}
    )
    assert widest(log.stdout) <= LOG_WIDTH
    assert "✗ < source_accuracy" in log.stdout and "part 1" not in log.stdout


def test_bench_list_fits_100_columns_and_keeps_the_descriptions():
    from ckptrank.bench.suite import get_suite, list_suites

    result = runner.invoke(app, ["bench", "--list"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert widest(result.stdout) <= 100
    flat = " ".join(result.stdout.split())
    for name in list_suites():
        assert name in result.stdout
        assert " ".join(get_suite(name).description.split()) in flat
    log = runner.invoke(app, ["bench", "--list"], env={"COLUMNS": None})
    assert widest(log.stdout) <= LOG_WIDTH


# --- the decision line and the notes ----------------------------------------------------------------------


def test_decision_line_and_notes_wrap_in_a_terminal_and_stay_one_line_in_a_log(fakes, monkeypatch, capsys):
    from ckptrank.cli.rank import emit, print_notes

    frame = ranking.rank(fakes, NAMES)  # the default ranker: p(best), a shortlist and the decision line
    long_note = "x" * 30 + " " + "a long note about one checkpoint " * 6
    frame.attrs["notes"] = [*frame.attrs.get("notes", []), long_note]
    monkeypatch.setenv("COLUMNS", "100")
    emit(frame, "human")
    out, err = capsys.readouterr()
    assert widest(out) <= 100 and widest(err) <= 100
    assert "Fine-tune th" in out
    decision = out[out.index("Fine-tune th") :]
    assert "\n" in decision.strip()  # it needed wrapping, and it was wrapped
    wrapped = err[err.index("note: " + "x" * 30) :].splitlines()
    assert len(wrapped) > 1 and all(line.startswith("  ") for line in wrapped[1:])  # indented continuation
    assert " ".join(" ".join(wrapped).split()) == " ".join(f"note: {long_note}".split())  # nothing lost
    monkeypatch.delenv("COLUMNS")
    print_notes([long_note])
    log = capsys.readouterr().err
    assert log == f"note: {long_note}\n"  # a log keeps one note per line
    emit(frame, "human")
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("Fine-tune th"))
    assert line == " ".join(decision.split())  # and the decision on one line, for scripts
