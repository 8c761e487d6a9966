"""Source accuracy compared like with like: only checkpoints sharing one source label set.

(For tests/bench/test_suite.py or a new tests/bench/test_source_accuracy.py.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ckptrank.bench.suite import Suite


def _suite(baselines: pd.DataFrame, tracks=None) -> Suite:
    names = list(baselines["checkpoint"])
    rows = []
    for task, members in (tracks or {"t": names}).items():
        for i, name in enumerate(members):
            rows.append((task, name, 0, 50.0 + i))
    gt = pd.DataFrame(rows, columns=["task", "checkpoint", "seed", "accuracy"])
    return Suite(name="s", checkpoints=names, ground_truth=gt, baselines=baselines)


BASE = pd.DataFrame(
    {
        "checkpoint": ["in1", "in2", "in3", "fm1", "fm2", "rot", "none", "txt"],
        "num_parameters": [5e6, 6e6, 7e6, 2e4, 3e4, 2e4, 2e4, 3e5],
        "source_accuracy": [75.1, 76.7, 77.6, 92.0, 90.0, 96.1, np.nan, 43.2],
        "source_classes": [1000, 1000, 1000, 5, 5, 4, 0, 15],
        "source_label_set": ["ImageNet-1k"] * 3 + ["fm-0-4", "fm-0-4", "rotation", "", "wn-verbs"],
    }
)


def test_default_keeps_the_largest_shared_label_set() -> None:
    suite = _suite(BASE)
    out = suite.comparable_source_accuracy()
    assert list(out.index) == list(BASE["checkpoint"])
    assert out.dropna().to_dict() == {"in1": 75.1, "in2": 76.7, "in3": 77.6}
    assert out.attrs == {"source_label_set": "ImageNet-1k", "source_classes": 1000}
    fm = suite.comparable_source_accuracy(["fm1", "fm2", "rot", "in1"])
    assert fm.dropna().to_dict() == {"fm1": 92.0, "fm2": 90.0} and fm.attrs["source_label_set"] == "fm-0-4"


def test_explicit_label_set_ties_and_none() -> None:
    suite = _suite(BASE)
    assert suite.comparable_source_accuracy(label_set="fm-0-4").dropna().index.tolist() == ["fm1", "fm2"]
    # two sets of two: the one whose first checkpoint comes first in suite order
    tie = suite.comparable_source_accuracy(["fm1", "fm2", "in1", "in2"])
    assert tie.dropna().index.tolist() == ["fm1", "fm2"]
    assert suite.comparable_source_accuracy(["rot", "txt", "in1", "none"]) is None  # no set shared by 2
    with pytest.raises(ValueError, match=r"no checkpoint among those given has source label set 'x'; sets:"):
        suite.comparable_source_accuracy(label_set="x")


def test_without_info_columns_all_source_accuracies_are_one_set() -> None:
    suite = _suite(BASE[["checkpoint", "num_parameters", "source_accuracy"]])
    out = suite.comparable_source_accuracy()
    assert out.dropna().size == 7 and out.attrs == {"source_label_set": None, "source_classes": None}
    by_classes = _suite(BASE.drop(columns="source_label_set")).comparable_source_accuracy()
    assert by_classes.dropna().index.tolist() == ["in1", "in2", "in3"]


def test_like_with_like_baselines_per_track_with_notes() -> None:
    tracks = {"img": ["in1", "in2", "in3", "fm1", "fm2", "rot"], "txt": ["txt", "none"]}
    suite = _suite(BASE, tracks)
    base = suite.like_with_like_baselines()
    assert base["source_accuracy"].dropna().index.tolist() == ["in1", "in2", "in3"]
    assert base["num_parameters"].tolist() == BASE["num_parameters"].tolist()
    assert base.attrs["notes"] == [
        "source_accuracy: track 1 track: compared like with like over the 3 checkpoints on source label "
        "set 'ImageNet-1k' (1000 classes); 3 with other source label sets left out",
        "source_accuracy: track 2 track: only 1 checkpoint states one; left out",
    ]
    # A table combined from other sources keeps the suite's label sets and is never refilled.
    extra = BASE.set_index("checkpoint")[["num_parameters", "source_accuracy"]]
    assert suite.like_with_like_baselines(extra)["source_accuracy"].dropna().index.tolist() == [
        "in1",
        "in2",
        "in3",
    ]


def test_info_columns_are_validated_and_kept_out_of_the_baseline_scores() -> None:
    suite = _suite(BASE)
    assert suite.summary()["baselines"] == ["num_parameters", "source_accuracy"]
    assert suite.baselines.loc["none", "source_label_set"] is None
    assert suite.baselines["source_classes"].tolist()[:4] == [1000.0, 1000.0, 1000.0, 5.0]
    with pytest.raises(ValueError, match=r"unknown baseline column\(s\) colour; use num_parameters"):
        _suite(BASE.assign(colour=1))


def test_neucrab_mini_source_accuracy_is_like_with_like() -> None:
    from ckptrank.bench.suite import get_suite

    suite = get_suite("neucrab-mini-v1")
    base = suite.baselines
    assert {"source_classes", "source_label_set"} <= set(base.columns)
    assert base.loc["cnn-rot", ["source_classes", "source_label_set"]].tolist() == [
        4.0,
        "fashion-mnist-rotation",
    ]
    assert base.loc["efficientnet-lite0", "source_classes"] == 1000
    # @layer rows count only what runs up to the layer (MiniLM: embeddings + layers 0..k).
    assert base.loc["all-minilm-l6-v2@layer1", "num_parameters"] == 15_467_520
    assert base.loc["all-minilm-l6-v2@layer3", "num_parameters"] == 19_016_448
    assert base.loc["all-minilm-l6-v2", "num_parameters"] == 22_713_216
    kept = suite.like_with_like_baselines()["source_accuracy"].dropna()
    assert set(suite.baselines.loc[kept.index, "source_label_set"]) == {"fashion-mnist-0-4"}
