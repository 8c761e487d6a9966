"""``ckptrank bench``: CliRunner tests on published suites and a temporary scorable suite."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ckptrank.bench.suite import Suite, Task, register_suite, unregister_suite
from ckptrank.cli.main import app
from ckptrank.testing.synthetic import blobs

runner = CliRunner()
SEPARATION = {"weak": 0.2, "mid": 1.0, "strong": 2.0, "best": 3.5}


def invoke(*args: str):
    return runner.invoke(app, list(args))


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture
def scorable(tmp_path):
    """A registered suite of precomputed features per checkpoint, 2 tasks, 3 seeds."""
    rng = np.random.default_rng(0)
    rows = []
    for task, n_classes in (("alpha", 3), ("beta", 4)):
        for i, (name, sep) in enumerate(SEPARATION.items()):
            X, y = blobs(80, 10, n_classes, sep, random_state=i + 10 * n_classes)
            np.savez(tmp_path / f"{name}-{task}.npz", features=X, labels=y, split=np.full(y.size, "train"))
            rows += [(task, name, seed, 50 + 10 * sep + rng.normal(0, 0.3)) for seed in range(3)]
    suite = Suite(
        name="test:cli-suite",
        description="synthetic",
        tasks={t: Task(data=str(tmp_path / f"{{checkpoint}}-{t}.npz")) for t in ("alpha", "beta")},
        checkpoints=list(SEPARATION),
        ground_truth=pd.DataFrame(rows, columns=["task", "checkpoint", "seed", "accuracy"]),
        baselines=pd.DataFrame({"num_parameters": [4.0, 3.0, 2.0, 1.0]}, index=list(SEPARATION)),
    )
    register_suite(suite.name, lambda: suite)
    yield suite.name
    unregister_suite(suite.name)


def test_list_suites():
    result = invoke("bench", "--list", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["published:tllib"]["published_scores"] and rows["published:tllib"]["reported"]
    assert rows["published:sfda-group1"]["tasks"] == 11
    human = invoke("bench", "--list")
    assert human.exit_code == 0 and "published:modelspider" in human.stdout


def test_published_tllib_human_table_with_reported_and_marks():
    result = invoke("bench", "--suite", "published:tllib", "--bootstrap", "100")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in ("HScore", "LogME", "num_parameters", "source_accuracy", "[0."):
        assert text in out
    # paired with the best baseline on the same pairs: LEEP is worse (interval below 0), LogME a tie
    assert "✗ < source_accuracy" in out and "≈ source_accuracy" in out and "vs best baseline (paired)" in out
    assert "one fine-tuning seed per pair, so no seed agreement or reliability" in out
    assert "recomputed vs reported: 37 of 64 agree within 0.0015" in out
    assert "0.4507 ✗" in out and "weighted tau per task" in out  # aircraft HScore Pearson, flagged
    assert "reported by the source" in out
    assert "note: evaluating the score table published with published:tllib" in result.stderr


def test_the_table_title_names_the_ground_truth_protocol():
    default = invoke("bench", "--suite", "published:stable-transfer", "--bootstrap", "0")
    assert default.exit_code == 0, default.output
    assert "ckptrank bench: published:stable-transfer (finetune protocol)" in default.stdout
    linear = invoke(
        "bench", "--suite", "published:stable-transfer", "--protocol", "linear", "--bootstrap", "0"
    )
    assert "ckptrank bench: published:stable-transfer (linear protocol)" in linear.stdout


def test_published_json_and_csv():
    result = invoke("bench", "--suite", "published:modelspider", "--bootstrap", "0", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    reported = [r for r in data["reported"] if r["agrees"] is not None]
    assert len(reported) == 72 and sum(r["agrees"] for r in reported) == 4
    assert data["suite"]["name"] == "published:modelspider" and data["source"] == "published"
    assert {r["measure"] for r in data["summary"]} >= {"LogME", "GBC", "num_parameters"}
    result = invoke(
        "bench", "--suite", "published:tllib", "--measures", "LogME", "--bootstrap", "0", "--format", "csv"
    )
    table = pd.read_csv(io.StringIO(result.stdout))
    assert set(table["measure"]) == {
        "LogME",
        "default ranker (published)",  # always evaluated
        "num_parameters",
        "source_accuracy",
    }
    assert {"task", "statistic", "value", "ci_low", "seed_ci_high"} <= set(table.columns)


def test_scores_file_against_published_suite(tmp_path):
    truth = pd.read_csv(io.StringIO(_sfda_csv()))
    rows = [
        (task, model, "mine", truth.set_index("model").loc[model, task])
        for task in truth.columns[1:]
        for model in truth["model"]
    ]
    path = tmp_path / "scores.csv"
    pd.DataFrame(rows, columns=["dataset", "model", "metric", "value"]).to_csv(path, index=False)
    result = invoke("bench", "--suite", "published:sfda-group1", "--scores", str(path), "--bootstrap", "200")
    assert result.exit_code == 0, result.output
    assert "mine" in result.stdout and "✓ > source_accuracy" in result.stdout
    # unknown names: an error that lists them, or a note with --ignore-unknown
    bad = pd.concat(
        [
            pd.DataFrame(rows, columns=["task", "checkpoint", "measure", "score"]),
            pd.DataFrame(
                [("dtd", "resnet500", "mine", 1.0)], columns=["task", "checkpoint", "measure", "score"]
            ),
        ]
    )
    bad.to_csv(path, index=False)
    result = invoke("bench", "--suite", "published:sfda-group1", "--scores", str(path))
    line = one_line_error(result)
    assert "1 unknown checkpoint(s): 'resnet500' (did you mean 'resnet50'?)" in line
    assert "--ignore-unknown" in line
    result = invoke(
        "bench",
        "--suite",
        "published:sfda-group1",
        "--scores",
        str(path),
        "--ignore-unknown",
        "--bootstrap",
        "0",
    )
    assert result.exit_code == 0, result.output
    assert "note: ignored 1 unknown checkpoint(s): 'resnet500'" in result.stderr


def _sfda_csv() -> str:
    from ckptrank.bench.published import read_published_table

    return read_published_table("sfda_group1_finetune_acc.csv").to_csv(index=False)


def test_lower_is_better_flips_the_direction(tmp_path):
    truth = pd.read_csv(io.StringIO(_sfda_csv())).set_index("model")
    rows = [(task, model, "err", -truth.loc[model, task]) for task in truth.columns for model in truth.index]
    path = tmp_path / "scores.csv"
    pd.DataFrame(rows, columns=["task", "checkpoint", "measure", "score"]).to_csv(path, index=False)
    args = [
        "bench",
        "--suite",
        "published:sfda-group1",
        "--scores",
        str(path),
        "--bootstrap",
        "0",
        "--format",
        "json",
    ]
    plain = json.loads(invoke(*args).stdout)
    flipped = json.loads(invoke(*args, "--lower-is-better", "err").stdout)
    tau = {r["measure"]: r["weighted_tau"] for r in plain["summary"]}
    assert tau["err"] == pytest.approx(-1.0)
    assert {r["measure"]: r["weighted_tau"] for r in flipped["summary"]}["err"] == pytest.approx(1.0)


def test_errors_are_one_line():
    assert "Did you mean 'published:tllib'?" in one_line_error(invoke("bench", "--suite", "published:tlib"))
    assert "choose a suite with --suite" in one_line_error(invoke("bench"))
    line = one_line_error(invoke("bench", "--suite", "published:sfda-group2"))
    assert "pass --scores FILE" in line
    assert "unknown --format" in one_line_error(
        invoke("bench", "--suite", "published:tllib", "--format", "xml")
    )


def test_scorable_suite_resumes_and_writes_a_report(scorable, tmp_path):
    db = tmp_path / "results.sqlite"
    args = [
        "bench",
        "--suite",
        scorable,
        "--measures",
        "logme,sfda",
        "--results",
        str(db),
        "--bootstrap",
        "100",
    ]
    first = invoke(*args, "--report", str(tmp_path / "report"))
    assert first.exit_code == 0, first.output
    assert first.stderr.count("scoring [") == 8
    assert "seed agreement" in first.stdout and "truth reliability" in first.stdout
    assert "logme" in first.stdout and "CI seeds" in first.stdout
    assert (tmp_path / "report" / "report.html").is_file()
    assert "wrote" in first.stderr
    second = invoke(*args, "--format", "json")
    assert second.exit_code == 0, second.output
    assert "scoring [" not in second.stderr
    data = json.loads(second.stdout)
    summary = {row["measure"]: row for row in data["summary"]}
    assert summary["logme"]["weighted_tau"] > 0.8 and summary["logme"]["seconds"] > 0
    assert summary["num_parameters"]["weighted_tau"] < 0
    assert 0 < data["mean_seed_agreement"] <= data["mean_reliability"] <= 1


def test_help_has_examples():
    result = invoke("bench", "--help")
    assert result.exit_code == 0
    assert "ckptrank bench --suite published:tllib" in result.stdout and "--bootstrap" in result.stdout


def test_held_out_shortlist_calibration_table_by_suite_and_overall():

    from rich.console import Console

    from ckptrank.cli.bench import _calibration_table

    calibration = pd.DataFrame(
        {
            "task": ["s1/a", "s1/b", "s2/c"],
            "suite": ["s1", "s1", "s2"],
            "n_checkpoints": [10, 10, 5],
            "size": [3, 4, 2],
            "covered": [True, False, True],
            "has_measures": [True, True, False],
        }
    )
    buffer = io.StringIO()
    Console(file=buffer, width=200).print(_calibration_table(calibration))
    lines = [line for line in buffer.getvalue().splitlines() if line.startswith("│")]
    cells = [[c.strip() for c in line.strip("│").split("│")] for line in lines]
    assert cells == [
        ["s1", "2", "1/2", "0.500", "3.50", "10.0"],
        ["s2", "1", "1/1", "1.000", "2.00", "5.0"],
        ["tasks with measure scores", "2", "1/2", "0.500", "3.50", "10.0"],
        ["tasks with descriptors only", "1", "1/1", "1.000", "2.00", "5.0"],
        ["all", "3", "2/3", "0.667", "3.00", "8.3"],
    ]
