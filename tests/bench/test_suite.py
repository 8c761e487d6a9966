"""The Suite model, its validation, views, JSON files and the suite registry."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ckptrank.bench.suite import (
    Suite,
    SuiteCheckpoint,
    Task,
    get_suite,
    list_suites,
    normalize_name,
    register_suite,
    unregister_suite,
)


def _gt(protocols=("finetune",), seeds=(0, 1)) -> pd.DataFrame:
    rows = []
    for protocol in protocols:
        for task in ("a", "b"):
            for i, ckpt in enumerate(("x", "y", "z")):
                for seed in seeds:
                    rows.append(
                        (
                            task,
                            ckpt,
                            seed,
                            50.0 + 10 * i + seed + (5 if protocol == "linear" else 0),
                            protocol,
                        )
                    )
    return pd.DataFrame(rows, columns=["task", "checkpoint", "seed", "accuracy", "protocol"])


@pytest.fixture
def registered():
    names = []

    def add(name, loader, **kwargs):
        register_suite(name, loader, **kwargs)
        names.append(name)

    yield add
    for name in names:
        unregister_suite(name)


def test_defaults_come_from_the_ground_truth():
    suite = Suite(name="s", ground_truth=_gt().drop(columns="protocol"))
    assert list(suite.tasks) == ["a", "b"] and list(suite.checkpoints) == ["x", "y", "z"]
    assert suite.tasks["a"] == Task() and suite.checkpoints["x"] == SuiteCheckpoint()
    assert suite.protocols == ["default"]
    assert not suite.can_score
    assert suite.summary()["seeds_per_pair"] == 2


def test_tasks_and_checkpoints_accept_strings_and_mappings():
    suite = Suite(
        name="s",
        tasks={"a": "builtin:digits", "b": {"data": "builtin:digits", "per_class": 5, "seed": 2}},
        checkpoints={
            "x": "timm:resnet18",
            "y": {"spec": "torchvision:resnet50", "group": "cnn"},
            "z": "file:z.pt",
        },
        ground_truth=_gt(),
    )
    assert suite.tasks["b"] == Task(data="builtin:digits", per_class=5, seed=2)
    assert suite.checkpoints["y"] == SuiteCheckpoint("torchvision:resnet50", "cnn")
    assert suite.groups() == {"": ["x", "z"], "cnn": ["y"]}
    assert suite.can_score
    per_checkpoint = Suite(
        name="p", tasks={"a": "f/{checkpoint}.npz", "b": "g/{checkpoint}.npz"}, ground_truth=_gt()
    )
    assert per_checkpoint.tasks["a"].per_checkpoint and per_checkpoint.can_score  # no specs needed
    with pytest.raises(ValueError, match="unknown field"):
        Suite(name="s", tasks={"a": {"dataa": 1}}, ground_truth=_gt())
    with pytest.raises(ValueError, match="unknown field"):
        Suite(name="s", checkpoints={"x": {"sepc": 1}}, ground_truth=_gt())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda gt: gt.drop(columns="seed"), "lacks column"),
        (
            lambda gt: gt.assign(accuracy=gt["accuracy"].where(gt.index != 3)),
            "1 ground-truth accuracies are missing",
        ),
        (lambda gt: pd.concat([gt, gt.iloc[:1]]), "duplicate ground-truth rows for a/x/finetune/0"),
        (lambda gt: gt.assign(seed=0.5), "seeds must be integers"),
    ],
)
def test_ground_truth_validation(change, message):
    with pytest.raises(ValueError, match=message):
        Suite(name="s", ground_truth=change(_gt()))


def test_unknown_names_and_baselines_are_rejected():
    with pytest.raises(ValueError, match=r"names 1 checkpoints the suite does not list \(z\)"):
        Suite(name="s", checkpoints=["x", "y"], ground_truth=_gt())
    with pytest.raises(ValueError, match=r"names 1 tasks .* \(b\)"):
        Suite(name="s", tasks={"a": None}, ground_truth=_gt())
    with pytest.raises(ValueError, match="unknown baseline column"):
        Suite(name="s", ground_truth=_gt(), baselines=pd.DataFrame({"flops": [1.0]}, index=["x"]))
    with pytest.raises(ValueError, match="baselines name unknown checkpoints"):
        Suite(name="s", ground_truth=_gt(), baselines=pd.DataFrame({"num_parameters": [1.0]}, index=["w"]))
    with pytest.raises(ValueError, match="default_protocol 'full'"):
        Suite(name="s", ground_truth=_gt(), default_protocol="full")
    base = pd.DataFrame({"checkpoint": ["x", "y"], "num_parameters": ["10", "n/a"]})
    suite = Suite(name="s", ground_truth=_gt(), baselines=base)
    assert suite.baselines.loc["x", "num_parameters"] == 10.0 and np.isnan(
        suite.baselines.loc["y", "num_parameters"]
    )


def test_protocols_and_truth_views():
    suite = Suite(name="s", ground_truth=_gt(("finetune", "linear")))
    with pytest.raises(ValueError, match="several protocols"):
        suite.truth()
    linear = suite.truth("linear")
    assert set(linear["protocol"]) == {"linear"} and len(linear) == 12
    with pytest.raises(ValueError, match="no ground truth for protocol 'x'"):
        suite.truth("x")
    suite = Suite(name="s", ground_truth=_gt(("finetune", "linear")), default_protocol="finetune")
    assert suite.resolve_protocol() == "finetune"
    by_seed = suite.truth_by_seed("a")
    assert by_seed.shape == (2, 3) and list(by_seed.columns) == ["x", "y", "z"]
    assert by_seed.loc[1, "y"] == 61.0
    mean = suite.mean_truth("linear")
    assert mean.loc["b", "z"] == pytest.approx(75.5)


def test_name_resolution():
    suite = Suite(
        name="s", ground_truth=_gt(), checkpoint_aliases={"Inception V3": "x"}, task_aliases={"A": "a"}
    )
    assert suite.resolve_checkpoint("x") == "x"
    assert suite.resolve_checkpoint("Inception V3") == "x"
    assert suite.resolve_checkpoint("inception-v3") == "x"
    assert suite.resolve_checkpoint("Y") == "y"
    assert suite.resolve_checkpoint("w") is None
    assert suite.resolve_task("A") == "a" and suite.resolve_task("c") is None
    assert normalize_name("ResNet-50 (V1)") == "resnet50v1"


def test_registry_register_get_list_unregister(registered):
    calls = []

    def loader():
        calls.append(1)
        return Suite(name="tmp-suite", ground_truth=_gt())

    registered("tmp-suite", loader)
    assert "tmp-suite" in list_suites() and "published:tllib" in list_suites()
    assert get_suite("tmp-suite") is get_suite("tmp-suite") and calls == [1]  # loaded once
    with pytest.raises(ValueError, match="already registered"):
        register_suite("tmp-suite", loader)
    register_suite("tmp-suite", loader, replace=True)
    get_suite("tmp-suite")
    assert calls == [1, 1]
    with pytest.raises(ValueError, match="callable"):
        register_suite("tmp-x", "not a function")
    registered("tmp-bad", lambda: 42)
    with pytest.raises(ValueError, match="returned int, not a Suite"):
        get_suite("tmp-bad")
    suite = get_suite("tmp-suite")
    assert get_suite(suite) is suite


def test_unknown_suite_lists_valid_names_and_closest():
    with pytest.raises(KeyError, match=r"unknown suite 'published:tlib'. Did you mean 'published:tllib'\?"):
        get_suite("published:tlib")
    with pytest.raises(
        KeyError, match=r"Did you mean 'published:sfda-group1'\?.*Valid suites: .*published:parc"
    ):
        get_suite("sfda-group1")


def test_suite_from_json_file(tmp_path):
    _gt().to_csv(tmp_path / "gt.csv", index=False)
    pd.DataFrame({"checkpoint": ["x", "y", "z"], "num_parameters": [1, 2, 3]}).to_csv(
        tmp_path / "base.csv", index=False
    )
    (tmp_path / "feats").mkdir()
    spec = {
        "name": "mine",
        "description": "my suite",
        "tasks": {"a": "feats/{checkpoint}-a.npz", "b": {"data": "builtin:digits", "per_class": 3}},
        "checkpoints": {
            "x": "timm:resnet18",
            "y": {"spec": "timm:resnet34", "group": "g"},
            "z": "timm:resnet50",
        },
        "ground_truth": "gt.csv",
        "baselines": "base.csv",
        "default_protocol": "finetune",
        "notes": ["hello"],
    }
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(spec))
    suite = get_suite(str(path))
    assert suite.name == "mine" and suite.notes == ["hello"]
    assert suite.tasks["a"].data == str(tmp_path / "feats/{checkpoint}-a.npz")
    assert suite.tasks["b"] == Task(data="builtin:digits", per_class=3)
    assert suite.baselines["num_parameters"].tolist() == [1.0, 2.0, 3.0]
    assert suite.can_score

    path.write_text(json.dumps({**spec, "colour": 1}))
    with pytest.raises(ValueError, match="unknown key"):
        Suite.from_file(path)
    path.write_text(json.dumps({k: v for k, v in spec.items() if k != "ground_truth"}))
    with pytest.raises(ValueError, match="needs a 'ground_truth'"):
        Suite.from_file(path)
    path.write_text(json.dumps({**spec, "ground_truth": "missing.csv"}))
    with pytest.raises(FileNotFoundError, match=r"missing\.csv"):
        Suite.from_file(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        Suite.from_file(path)
    with pytest.raises(FileNotFoundError, match="not found"):
        Suite.from_file(tmp_path / "nope.json")


def test_py_checkpoints_of_a_suite_file_need_allow_code(tmp_path):
    """A suite file naming py: checkpoints runs no code unless allowed; the marker is never written."""
    from ckptrank.bench.harness import score_suite
    from ckptrank.bench.suite import check_code_allowed

    marker = tmp_path / "ran.txt"
    module = tmp_path / "evil.py"
    module.write_text(f"open({str(marker)!r}, 'w').write('ran')\ndef net():\n    raise SystemExit\n")
    (tmp_path / "truth.csv").write_text("task,checkpoint,seed,accuracy\nt,a,0,1.0\nt,b,0,2.0\n")
    path = tmp_path / "suite.json"
    path.write_text(
        json.dumps(
            {
                "name": "code-suite",
                "tasks": {"t": "builtin:digits"},
                "checkpoints": {"a": f"py:{module}:net", "b": "zoo:cnn-random"},
                "ground_truth": "truth.csv",
            }
        )
    )
    suite = Suite.from_file(path)
    with pytest.raises(
        ValueError, match=r"names 1 py: checkpoint\(s\) \(a\), which run Python code; pass --allow-code"
    ):
        score_suite(suite, "logme", store=":memory:")
    assert not marker.exists()
    check_code_allowed(suite, allow_code=True)  # allowed: no error
    registered = Suite(name="x", tasks={"t": "builtin:digits"}, checkpoints={"a": f"py:{module}:net"})
    check_code_allowed(registered, allow_code=False)  # built in Python, not read from a file
