"""The benchmark harness: scoring a suite through the cache and the results store, resuming, evaluating.

Three kinds of suites: precomputed features per checkpoint (npz files from
``ckptrank.testing.synthetic``), fake checkpoints behind the ranking seams (known quality, a
checkpoint without a head, one that fails to load), and real ``py:`` checkpoints run over the
built-in digits data through the feature cache.
"""

from __future__ import annotations

import math
import textwrap
import zlib
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import ckptrank
from ckptrank import ranking
from ckptrank.bench.harness import DEFAULT_ROW, bench, default_answer, record_evaluation, score_suite
from ckptrank.bench.store import ResultsStore
from ckptrank.bench.suite import Suite, SuiteCheckpoint, Task
from ckptrank.combine import DEFAULT_MEASURES
from ckptrank.testing.synthetic import blobs

SEPARATION = {"weak": 0.2, "mid": 0.8, "strong": 1.6, "best": 3.0}
CLASSES = {"alpha": 3, "beta": 4}


def _truth(names, quality, tasks, seeds=3) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [
        (task, name, seed, 50 + 10 * quality[name] + 0.5 * rng.standard_normal())
        for task in tasks
        for name in names
        for seed in range(seeds)
    ]
    return pd.DataFrame(rows, columns=["task", "checkpoint", "seed", "accuracy"])


@pytest.fixture
def feature_suite(tmp_path):
    """Precomputed features per (checkpoint, task): class separation grows with checkpoint quality."""
    for task, n_classes in CLASSES.items():
        for i, (name, sep) in enumerate(SEPARATION.items()):
            X, y = blobs(90, 12, n_classes, sep, random_state=10 * i + n_classes)
            np.savez(tmp_path / f"{name}-{task}.npz", features=X, labels=y, split=np.full(y.size, "train"))
    return Suite(
        name="test:features",
        description="synthetic features",
        tasks={task: Task(data=str(tmp_path / f"{{checkpoint}}-{task}.npz")) for task in CLASSES},
        checkpoints=list(SEPARATION),
        ground_truth=_truth(list(SEPARATION), SEPARATION, list(CLASSES)),
        baselines=pd.DataFrame({"num_parameters": [4.0, 1.0, 3.0, 2.0]}, index=list(SEPARATION)),
    )


def test_score_suite_records_every_score_with_its_time(feature_suite, tmp_path):
    db = tmp_path / "results.sqlite"
    messages: list[str] = []
    scored = score_suite(feature_suite, "logme,sfda", store=db, on_progress=messages.append)
    assert len(scored.scores) == 2 * 4 * 2 and scored.measures == ["logme", "sfda"]
    assert scored.scores["score"].notna().all() and (scored.scores["seconds"] > 0).all()
    assert len(messages) == 8 and messages[0].startswith("[1/8] alpha / weak: logme, sfda")
    # the stored score is the measure applied to the same features
    with np.load(tmp_path / "strong-beta.npz") as npz:
        expected = ckptrank.score("logme", npz["features"], npz["labels"])
    got = scored.scores.query("task == 'beta' and checkpoint == 'strong' and measure == 'logme'")["score"]
    assert got.item() == pytest.approx(expected)
    with ResultsStore(db) as store:
        rows = store.table("scores", suite="test:features")
    assert len(rows) == 16 and rows["seconds"].notna().all()


def test_only_pairs_with_ground_truth_are_scored_unless_all_pairs(feature_suite):
    gt = feature_suite.ground_truth
    partial = Suite(
        name="test:partial",
        tasks=feature_suite.tasks,
        checkpoints=list(feature_suite.checkpoints),
        ground_truth=gt[~((gt.task == "beta") & (gt.checkpoint == "best"))],
    )
    scored = score_suite(partial, "logme", store=":memory:")
    assert len(scored.scores) == 7 and "best" not in set(scored.scores.query("task == 'beta'")["checkpoint"])
    assert any("1 (task, checkpoint) pair(s) without ground truth were not scored" in n for n in scored.notes)
    assert len(score_suite(partial, "logme", store=":memory:", all_pairs=True).scores) == 8
    empty = Suite(name="test:empty", tasks=feature_suite.tasks, checkpoints=list(feature_suite.checkpoints))
    with pytest.raises(ValueError, match="no ground truth yet"):
        bench(empty, store=":memory:")


def test_a_rerun_resumes_from_the_store_without_scoring(feature_suite, tmp_path, monkeypatch):
    db = tmp_path / "results.sqlite"
    first = score_suite(feature_suite, "logme", store=db)

    def boom(*args, **kwargs):
        raise AssertionError("a finished score was recomputed")

    monkeypatch.setattr(ranking, "score_run", boom)
    messages: list[str] = []
    again = score_suite(feature_suite, "logme", store=db, on_progress=messages.append)
    assert messages == [] and again.runs.empty
    pd.testing.assert_frame_equal(first.scores, again.scores)


def test_changed_inputs_are_scored_afresh(feature_suite, tmp_path):
    db = tmp_path / "results.sqlite"
    score_suite(feature_suite, "sfda", store=db)
    changed = Suite(
        name=feature_suite.name,
        tasks={t: Task(data=spec.data, per_class=20) for t, spec in feature_suite.tasks.items()},
        checkpoints=list(feature_suite.checkpoints),
        ground_truth=feature_suite.ground_truth,
    )
    messages: list[str] = []
    scored = score_suite(changed, "sfda", store=db, on_progress=messages.append)
    assert len(messages) == 8
    messages.clear()
    score_suite(changed, "sfda", store=db, measure_options={"sfda": {"a": 0.5}}, on_progress=messages.append)
    assert len(messages) == 8
    with ResultsStore(db) as store:
        assert len(store.table("scores", suite=feature_suite.name)) == 24
    assert len(scored.scores) == 8


def test_bench_scores_evaluates_and_records(feature_suite, tmp_path):
    db = tmp_path / "results.sqlite"
    result = bench(feature_suite, measures="logme,sfda", store=db, n_bootstrap=200)
    ev = result.evaluation
    assert (
        result.source == "scored"
        and ev.measures == [DEFAULT_ROW, "logme", "sfda"]
        and ev.baselines == ["num_parameters"]
    )
    assert ev.summary.loc[DEFAULT_ROW, "kind"] == "default"
    assert ev.summary.loc["logme", "weighted_tau"] > 0.8
    assert ev.summary.loc["num_parameters", "weighted_tau"] < 0.5
    # paired with the baseline on the same pairs: a higher mean, but 4 checkpoints per task are too
    # few for the interval of the difference to exclude 0, so no mark of victory
    logme = ev.summary.loc["logme"]
    assert logme["best_baseline"] == "num_parameters" and logme["n_common_pairs"] == 8
    assert logme["diff_vs_baseline"] > 0.3 and logme["diff_ci_low"] <= 0 < logme["diff_ci_high"]
    assert logme["verdict"] == "tie" and logme["marked"] and not logme["beats_baseline"]
    assert ev.summary.loc["logme", "seconds"] > 0
    assert ev.seed_agreement["n_seeds"].tolist() == [3, 3]
    assert ev.summary["weighted_tau_seed_ci_low"].notna().all()
    with ResultsStore(db) as store:
        evaluations = store.table("evaluations", suite=feature_suite.name)
        assert len(evaluations) == len(ev.per_task)
        assert record_evaluation(store, result) == 0  # never a duplicate
    assert result.to_dict()["suite"]["name"] == "test:features"


def test_bench_on_one_task_and_external_scores(feature_suite, tmp_path):
    result = bench(
        feature_suite, measures="logme", store=tmp_path / "r.sqlite", tasks=["beta"], n_bootstrap=0
    )
    assert result.evaluation.tasks == ["beta"]
    table = pd.DataFrame(
        {
            "task": "alpha",
            "checkpoint": list(SEPARATION),
            "measure": "oracle",
            "score": list(SEPARATION.values()),
        }
    )
    result = bench(feature_suite, scores=table, n_bootstrap=0)
    assert result.source == "table" and result.evaluation.summary.loc[
        "oracle", "weighted_tau"
    ] == pytest.approx(1.0)


def test_suites_that_cannot_be_scored(feature_suite):
    published = Suite(name="nodata", ground_truth=feature_suite.ground_truth)
    with pytest.raises(ValueError, match=r"cannot be scored here .*tasks without data"):
        score_suite(published, "logme", store=":memory:")
    with pytest.raises(ValueError, match="has no task 'gamma'"):
        score_suite(feature_suite, "logme", store=":memory:", tasks=["gamma"])
    with pytest.raises(KeyError, match="Did you mean 'logme'"):
        score_suite(feature_suite, "logmee", store=":memory:")


# --- fake checkpoints through the ranking seams -------------------------------------------------------------

ZOO = {
    "strong": (4.0, True, 5_000_000, 75.0),
    "medium": (1.5, True, 9_000_000, 80.0),
    "weak": (0.3, False, 1_000_000, None),
}
LABELS = np.repeat(np.arange(4), 30)


class FakeCheckpoint:
    def __init__(self, spec: str) -> None:
        from ckptrank.adapters._base import CheckpointError

        if spec not in ZOO:
            raise CheckpointError(f"unknown built-in checkpoint {spec!r}")
        self.spec = self.name = spec
        self.sep, self.has_head, self._params, accuracy = ZOO[spec]
        self.card = {} if accuracy is None else {"source_accuracy": accuracy}
        self.layer = None

    def num_parameters(self) -> int:
        return self._params


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
def fake_suite(monkeypatch, tmp_path):
    loads: list[str] = []

    def load(spec, trust_checkpoint, device):
        loads.append(spec)
        return FakeCheckpoint(spec)

    monkeypatch.setattr(ranking, "load_checkpoint", load)
    monkeypatch.setattr(ranking, "extract_features", fake_extract)
    monkeypatch.setattr(ranking, "make_cache", lambda cache_dir: None)
    path = tmp_path / "target.npz"
    np.savez(path, features=np.zeros((LABELS.size, 2)), labels=LABELS, split=np.full(LABELS.size, "train"))
    names = ["strong", "medium", "weak", "broken"]
    quality = {"strong": 3.0, "medium": 2.0, "weak": 1.0, "broken": 0.0}
    suite = Suite(
        name="test:fakes",
        tasks={"target": Task(data=str(path))},
        checkpoints={name: SuiteCheckpoint(spec=name, group="fake") for name in names},
        ground_truth=_truth(names, quality, ["target"], seeds=2),
    )
    return SimpleNamespace(suite=suite, loads=loads)


def test_fake_checkpoints_failures_skips_and_collected_baselines(fake_suite, tmp_path):
    db = tmp_path / "results.sqlite"
    scored = score_suite(fake_suite.suite, "logme,leep", store=db)
    assert fake_suite.loads == ["strong", "medium", "weak", "broken"]
    runs = scored.runs.set_index("checkpoint")
    assert (
        runs.loc["broken", "status"] == "failed"
        and "unknown built-in checkpoint" in runs.loc["broken", "error"]
    )
    assert any("broken: failed, not recorded" in note for note in scored.notes)
    weak_leep = scored.scores.query("checkpoint == 'weak' and measure == 'leep'").iloc[0]
    assert math.isnan(weak_leep["score"]) and "classification head" in weak_leep["error"]
    assert any(note.startswith("leep on target / weak:") for note in scored.notes)
    assert scored.baselines.loc["medium", "num_parameters"] == 9_000_000
    assert scored.baselines.loc["strong", "source_accuracy"] == pytest.approx(0.75)
    assert math.isnan(scored.baselines.loc["weak", "source_accuracy"])
    # a re-run retries only the failed checkpoint (its scores were never recorded)
    fake_suite.loads.clear()
    score_suite(fake_suite.suite, "logme,leep", store=db)
    assert fake_suite.loads == ["broken"]


def test_bench_with_fake_checkpoints_uses_collected_baselines(fake_suite, tmp_path):
    result = bench(fake_suite.suite, measures="logme", store=tmp_path / "r.sqlite", n_bootstrap=100)
    ev = result.evaluation
    assert ev.baselines == ["num_parameters"]
    # only 2 checkpoints state a source accuracy: too few to rank, skipped with a note
    assert any("source_accuracy on target: skipped, only 2 checkpoint(s)" in note for note in ev.notes)
    assert ev.summary.loc["logme", "weighted_tau"] == pytest.approx(1.0)  # strong > medium > weak
    assert any("not scored (broken)" in note for note in ev.notes)
    assert result.runs is not None and len(result.runs) == 4


# --- real py: checkpoints through the feature cache ------------------------------------------------------

MODULE = textwrap.dedent(
    """
    import torch
    from torch import nn

    class Net(nn.Module):
        preprocessing = {"modality": "image", "image_size": 16, "resize_size": 16}

        def __init__(self, width, seed):
            super().__init__()
            torch.manual_seed(seed)
            layers = [nn.Conv2d(3, width, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()]
            self.body = nn.Sequential(*layers)
            self.head = nn.Linear(4 * width, 5)

        def forward(self, x):
            return self.head(self.body(x))

    def small():
        return Net(2, 0)

    def medium():
        return Net(4, 1)

    def large():
        return Net(8, 2)
    """
)


def test_real_checkpoints_on_builtin_digits_through_the_cache(tmp_path):
    module = tmp_path / "nets.py"
    module.write_text(MODULE)
    names = ["small", "medium", "large"]
    suite = Suite(
        name="test:py-digits",
        tasks={"digits": Task(data="builtin:digits", per_class=6, seed=1)},
        checkpoints={name: f"py:{module}:{name}" for name in names},
        ground_truth=_truth(names, {"small": 1.0, "medium": 2.0, "large": 3.0}, ["digits"], seeds=2),
    )
    cache = tmp_path / "cache"
    result = bench(suite, measures="logme,leep", store=tmp_path / "r.sqlite", cache_dir=cache, n_bootstrap=50)
    scores = result.scores.set_index(["checkpoint", "measure"])["score"]
    assert scores.notna().all() and len(scores) == 9  # logme, leep and the default answer
    assert set(result.scores["measure"]) == {"logme", "leep", DEFAULT_ROW}
    assert any(cache.rglob("*.npz"))
    params = result.evaluation.pairs.query("measure == 'num_parameters'").set_index("checkpoint")["score"]
    assert params["small"] < params["medium"] < params["large"]
    assert result.evaluation.summary.loc["num_parameters", "weighted_tau"] == pytest.approx(1.0)
    again = score_suite(suite, "logme,leep", store=tmp_path / "r.sqlite", cache_dir=cache)
    assert again.runs.empty


def test_default_row_is_the_rank_column_of_the_default_ranker(feature_suite, tmp_path):
    """The default row is the shipped ranker over the default measures, recomputed here by hand."""
    import json
    from importlib import resources

    from scipy.stats import rankdata

    from ckptrank.measures import get_measure

    result = bench(feature_suite, measures="knn", store=tmp_path / "r.sqlite", n_bootstrap=0)
    assert result.evaluation.measures == [DEFAULT_ROW, "knn"]  # its measures are scored, not shown
    shown = result.scores
    assert set(shown["measure"]) == {DEFAULT_ROW, "knn"}
    shipped = json.loads(resources.files("ckptrank").joinpath("default_ranker.json").read_text())
    assert shipped["kind"] == "agreement"
    params = feature_suite.baselines["num_parameters"]
    scored = score_suite(feature_suite, list(DEFAULT_MEASURES), store=tmp_path / "r.sqlite")
    for task, rows in scored.scores.groupby("task"):
        wide = rows.pivot(index="checkpoint", columns="measure", values="score")
        columns, is_measure = [], []
        for feature in shipped["features"]:
            if feature == "log_parameters":
                values = np.log10(params.loc[wide.index].to_numpy(dtype=float))
            else:
                values = wide[feature].to_numpy(dtype=float)
                values = values if get_measure(feature).higher_is_better else -values
            finite = np.isfinite(values)
            if finite.sum() < 3 or np.ptp(values[finite]) == 0:
                continue  # no head anywhere here: LEEP and NCE are left out
            centred = np.zeros(len(values))
            centred[finite] = 2 * (rankdata(values[finite]) - 1) / (finite.sum() - 1) - 1
            columns.append((centred - centred.mean()) / centred.std())
            is_measure.append(feature != "log_parameters")
        Z = np.column_stack(columns)
        vector = np.linalg.eigh(np.corrcoef(Z, rowvar=False))[1][:, -1]
        vector = vector if vector[np.array(is_measure)].sum() > 0 else -vector
        expected = -rankdata(-(Z @ vector), method="min")
        got = shown[(shown["task"] == task) & (shown["measure"] == DEFAULT_ROW)].set_index("checkpoint")
        np.testing.assert_array_equal(got.loc[wide.index, "score"].to_numpy(dtype=float), expected)


def test_default_answer_needs_every_default_measure():
    table = pd.DataFrame(
        {"task": "t", "checkpoint": ["a", "b"], "measure": "logme", "score": [1.0, 2.0], "seconds": 0.1}
    )
    rows, notes = default_answer(table)
    assert rows.empty and "has no hscore, leep, nce, nleep, gbc score(s)" in notes[0]
