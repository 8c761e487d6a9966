"""Tests of :mod:`ckptrank.ranking` (rank, ensemble choice, outputs) with fake checkpoints.

The checkpoint loader and the extraction engine are replaced by fakes whose features have a
known quality (the class signal ``sep`` added to noise), so the expected order is known; the
real loaders are exercised end to end in ``tests/cli/test_rank_cli.py``.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import zipfile
import zlib
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import ckptrank
from ckptrank import combine, ensemble, ensemble_choice, ranking, ranking_output, specs, targets
from ckptrank.data import TargetDataset
from ckptrank.testing.synthetic import source_probs_for

N_PER_CLASS, N_CLASSES, DIM = 40, 4, 16
LABELS = np.repeat(np.arange(N_CLASSES), N_PER_CLASS)

# name -> (class signal, has a head, parameters, card)
ZOO = {
    "strong": (4.0, True, 5_000_000, {"source_accuracy": 75.0}),
    "medium": (1.5, True, 9_000_000, {"source_accuracy": 0.80}),
    "weak": (0.3, False, 1_000_000, {}),
}


class FakeCheckpoint:
    def __init__(self, spec: str) -> None:
        base = spec.split("@")[0]
        if base not in ZOO:
            raise ckptrank_error(f"unknown built-in checkpoint {base!r}. Valid: {', '.join(ZOO)}")
        self.spec = spec
        self.name = spec
        self.sep, self.has_head, self._params, self.card = ZOO[base]

    def num_parameters(self) -> int:
        return self._params


def ckptrank_error(message: str) -> Exception:
    from ckptrank.adapters._base import CheckpointError

    return CheckpointError(message)


def fake_extract(checkpoint, dataset, **kwargs):
    y = np.asarray(dataset.labels)
    rng = np.random.default_rng(zlib.crc32(checkpoint.spec.encode()))
    X = rng.standard_normal((y.size, DIM))
    X[np.arange(y.size), y] += checkpoint.sep
    probs = source_probs_for(y, 10, strength=checkpoint.sep, random_state=1) if checkpoint.has_head else None
    fake_extract.calls.append(kwargs)
    return SimpleNamespace(features=X, source_probs=probs, labels=y, seconds=0.25, from_cache=False)


fake_extract.calls = []


def fake_check_spec(spec: str) -> None:
    """Names starting with "typo" are unknown names (rejected up front); others fail, if at all, on load."""
    if spec.startswith("typo"):
        raise ckptrank_error(f"unknown built-in checkpoint {spec!r}. Did you mean 'strong'?")


@pytest.fixture
def zoo(monkeypatch, tmp_path):
    """Replace the loader and the extraction engine by fakes; returns the dataset spec."""
    fake_extract.calls = []
    monkeypatch.setattr(
        ranking, "load_checkpoint", lambda spec, trust_checkpoint, device: FakeCheckpoint(spec)
    )
    monkeypatch.setattr(ranking, "extract_features", fake_extract)
    monkeypatch.setattr(ranking, "make_cache", lambda cache_dir: None)
    monkeypatch.setattr(specs, "check_spec", fake_check_spec)
    path = tmp_path / "target.npz"
    np.savez(path, features=np.zeros((LABELS.size, 2)), labels=LABELS, split=np.full(LABELS.size, "train"))
    return str(path)


def test_rank_orders_checkpoints_by_signal(zoo):
    df = ranking.rank(zoo, "strong,medium,weak", measures="logme,sfda")
    assert list(df["checkpoint"]) == ["strong", "medium", "weak"]
    assert list(df["rank"]) == [1, 2, 3]
    assert list(df["consensus_rank"]) == [1.0, 2.0, 3.0]
    expected = [
        "rank",
        "checkpoint",
        "logme",
        "sfda",
        "consensus_rank",
        "ranker_score",
        "p_best",
        "shortlist",
        "seconds",
        "num_parameters",
    ]
    assert list(df.columns[: len(expected)]) == expected
    assert "source_accuracy" in df.columns
    # scores equal the measures called directly on the same features
    X = fake_extract(FakeCheckpoint("medium"), SimpleNamespace(labels=LABELS)).features
    assert df.loc[1, "logme"] == pytest.approx(ckptrank.score("logme", X, LABELS))
    assert (df["status"] == "ok").all()
    assert df.attrs["measures"] == ["logme", "sfda"]


def test_rank_baselines_are_target_blind(zoo):
    df = ranking.rank(zoo, ["weak", "medium", "strong"], measures=["logme"]).set_index("checkpoint")
    assert df.loc["medium", "num_parameters"] == 9_000_000
    assert df.loc["medium", "num_parameters_rank"] == 1.0
    assert df.loc["weak", "num_parameters_rank"] == 3.0
    # 75.0 (percent) and 0.80 (fraction) are both read as fractions
    assert df.loc["strong", "source_accuracy"] == pytest.approx(0.75)
    assert df.loc["medium", "source_accuracy"] == pytest.approx(0.80)
    assert math.isnan(df.loc["weak", "source_accuracy"])
    assert df.loc["medium", "source_accuracy_rank"] == 1.0
    assert math.isnan(df.loc["weak", "source_accuracy_rank"])


def test_head_measure_skipped_with_note_and_left_out_of_consensus(zoo):
    df = ranking.rank(zoo, "weak,strong,medium", measures="logme,leep")
    weak = df.set_index("checkpoint").loc["weak"]
    assert math.isnan(weak["leep"])
    assert np.isfinite(df.set_index("checkpoint").loc["strong", "leep"])
    assert df.attrs["consensus_measures"] == ["logme"]
    assert any("weak: leep skipped" in note for note in df.attrs["notes"])
    assert any("consensus over logme" in note for note in df.attrs["notes"])
    assert list(df["consensus_rank"]) == [1.0, 2.0, 3.0]


def test_only_head_measures_and_no_head_is_an_error(zoo):
    with pytest.raises(ValueError, match=r"classification head.*logme"):
        ranking.rank(zoo, "weak", measures="leep")
    assert fake_extract.calls == []  # nothing was extracted for nothing to score


def test_head_measure_only_for_some_checkpoints(zoo):
    df = ranking.rank(zoo, "weak,strong", measures="leep")
    weak = df.set_index("checkpoint").loc["weak"]
    assert weak["status"] == "skipped"
    assert pd.isna(weak["rank"])
    assert df.loc[0, "checkpoint"] == "strong"
    assert len(fake_extract.calls) == 1


def test_failed_checkpoint_does_not_abort_the_others(zoo):
    df = ranking.rank(zoo, "strong,nosuch,weak", measures="logme")
    assert list(df["checkpoint"]) == ["strong", "weak", "nosuch"]
    failed = df.set_index("checkpoint").loc["nosuch"]
    assert failed["status"] == "failed"
    assert "unknown built-in checkpoint 'nosuch'" in failed["error"]
    assert pd.isna(failed["rank"])
    assert any(note.startswith("nosuch: failed:") for note in df.attrs["notes"])
    records = ranking_output.ranking_records(df)
    assert records[-1]["rank"] is None and records[-1]["scores"] == {"logme": None}


def test_unknown_checkpoint_names_fail_before_any_work(zoo):
    with pytest.raises(ValueError, match=r"unknown built-in checkpoint 'typo1'.*; .*'typo2'"):
        ranking.rank(zoo, "strong,typo1,typo2", measures="logme")
    assert fake_extract.calls == []


def test_all_failed_is_an_error(zoo):
    with pytest.raises(ValueError, match=r"all 2 checkpoints failed: nosuch:.*; other:"):
        ranking.rank(zoo, "nosuch,other", measures="logme")


def test_on_error_raise_reraises(zoo):
    with pytest.raises(ValueError, match="unknown built-in checkpoint"):
        ranking.rank(zoo, "strong,nosuch", measures="logme", on_error="raise")


def test_consensus_ties_are_averaged():
    ranks = combine.measure_ranks(np.array([0.5, 0.9, 0.5, np.nan]), higher_is_better=True)
    np.testing.assert_array_equal(ranks[:3], [2.5, 1.0, 2.5])
    assert np.isnan(ranks[3])
    lower = combine.measure_ranks(np.array([3.0, 1.0, 2.0]), higher_is_better=False)
    np.testing.assert_array_equal(lower, [3.0, 1.0, 2.0])
    np.testing.assert_array_equal(combine.final_rank(np.array([1.5, 1.5, 3.0, np.nan]))[:3], [1, 1, 3])


def test_consensus_is_mean_of_measure_ranks(zoo):
    df = ranking.rank(zoo, "strong,medium,weak", measures="logme,sfda")
    ranks = df.attrs["measure_ranks"]
    for row in df.itertuples():
        assert row.consensus_rank == pytest.approx(
            np.mean([ranks[row.checkpoint][m] for m in ("logme", "sfda")])
        )


def test_stochastic_measures_get_the_seed(zoo):
    df = ranking.rank(zoo, "strong,weak", measures="nleep", seed=3)
    assert df.attrs["config"]["measure_options"]["nleep"]["random_state"] == 3
    df2 = ranking.rank(zoo, "strong,weak", measures="nleep", measure_options={"nleep": {"random_state": 5}})
    assert df2.attrs["config"]["measure_options"]["nleep"]["random_state"] == 5


def test_unknown_measure_lists_valid_names_and_closest(zoo):
    with pytest.raises(KeyError, match="Did you mean 'logme'"):
        ranking.rank(zoo, "strong", measures="logmee")


def test_unknown_measure_option(zoo):
    with pytest.raises(ValueError, match="option of measure 'sfda'"):
        ranking.rank(zoo, "strong", measures="sfda", measure_options={"sfda": {"nope": 1}})
    with pytest.raises(ValueError, match="not among the requested measures"):
        ranking.rank(zoo, "strong", measures="sfda", measure_options={"logme": {}})


def test_single_class_data_is_an_error(zoo, tmp_path):
    path = tmp_path / "one.npz"
    np.savez(path, features=np.zeros((10, 2)), labels=np.zeros(10, dtype=int))
    with pytest.raises(ValueError, match=r"1 class.*at least 2"):
        ranking.rank(str(path), "strong", measures="logme")


def test_missing_data_path_is_an_error(zoo, tmp_path):
    with pytest.raises(FileNotFoundError):
        ranking.rank(str(tmp_path / "missing.npz"), "strong", measures="logme")


def test_rank_accepts_a_loaded_dataset(zoo):
    dataset = TargetDataset(
        items=np.zeros((LABELS.size, 2)),
        labels=LABELS,
        modality="features",
        features=np.zeros((LABELS.size, 2)),
        split="train",
        name="mine",
    )
    df = ranking.rank(dataset, "strong,weak", measures="logme")
    assert df.attrs["dataset"]["name"] == "mine"
    with pytest.raises(ValueError, match="per_class applies only"):
        ranking.rank(dataset, "strong", measures="logme", per_class=3)


def test_notes_mention_training_split_and_subsample(zoo):
    df = ranking.rank(zoo, "strong,weak", measures="logme", per_class=10)
    notes = " | ".join(df.attrs["notes"])
    assert "at most 10 samples per class" in notes
    assert df.attrs["dataset"]["n_samples"] == 10 * N_CLASSES
    assert df.attrs["config"]["per_class"] == 10
    assert "torch" in df.attrs["config"]["versions"]


def test_parse_models(tmp_path):
    assert specs.parse_models(" a , b,,a ") == ["a", "b"]
    assert specs.parse_models(["x", "y"]) == ["x", "y"]
    path = tmp_path / "models.txt"
    path.write_text("# my zoo\nefficientnet-lite0  # small\n\nefficientnet-lite1@blocks.3\n")
    assert specs.parse_models(str(path)) == ["efficientnet-lite0", "efficientnet-lite1@blocks.3"]
    with pytest.raises(FileNotFoundError, match="models file"):
        specs.parse_models(str(tmp_path / "nope.txt"))
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ValueError, match="lists no checkpoint"):
        specs.parse_models(str(tmp_path / "empty.txt"))
    with pytest.raises(ValueError, match="no checkpoint given"):
        specs.parse_models(" , ")


def test_resolve_measures_defaults_and_all():
    assert specs.resolve_measures("LogME, sfda") == ["logme", "sfda"]
    static = ckptrank.list_measures(kind="static")
    assert specs.resolve_measures("all") == static
    defaults = specs.resolve_measures(None)
    assert set(defaults) <= set(ranking.DEFAULT_MEASURES)


def test_save_ranking_writes_files_and_refuses_overwrite(zoo, tmp_path):
    df = ranking.rank(zoo, "strong,medium,weak,nosuch", measures="logme,leep")
    out = tmp_path / "out"
    written = ranking_output.save_ranking(df, out)
    assert sorted(p.name for p in written.values()) == [
        "config.json",
        "ranking.csv",
        "ranking.json",
        "scores.png",
    ]
    assert (out / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_csv(out / "ranking.csv")
    assert list(table["checkpoint"]) == ["strong", "medium", "weak", "nosuch"]
    assert {"rank", "logme", "leep", "consensus_rank", "num_parameters", "source_accuracy"} <= set(
        table.columns
    )
    records = json.loads((out / "ranking.json").read_text())
    assert records[0]["checkpoint"] == "strong" and records[0]["rank"] == 1
    assert records[2]["scores"]["leep"] is None
    config = json.loads((out / "config.json").read_text())
    assert config["models"] == ["strong", "medium", "weak", "nosuch"]
    assert config["measures"] == ["logme", "leep"]
    assert set(config["versions"]) >= {"ckptrank", "torch", "numpy"}
    with pytest.raises(ValueError, match=r"not empty.*--overwrite"):
        ranking_output.save_ranking(df, out)
    ranking_output.save_ranking(df, out, overwrite=True, plot=False)


def test_choose_ensemble_with_fake_selection(zoo, monkeypatch):
    seen = {}

    def fake_select(features_by_checkpoint, labels, k, **options):
        seen["names"] = list(features_by_checkpoint)
        seen["k"] = k
        seen["options"] = options
        return SimpleNamespace(
            selected=["strong", "weak"], ensemble_scores=[0.9, 0.95], individual_scores=None
        )

    monkeypatch.setattr(ensemble, "select_ensemble", fake_select)
    choice = ensemble_choice.choose_ensemble(zoo, "strong,medium,weak,nosuch", k=2)
    assert seen == {
        "names": ["strong", "medium", "weak"],
        "k": 2,
        "options": {"method": "greedy_concat", "pca_dims": None, "standardize": True},
    }
    assert choice.selected == ["strong", "weak"]
    assert choice.failed.keys() == {"nosuch"}
    assert choice.individual_scores["strong"] > choice.individual_scores["weak"]
    data = choice.to_dict()
    assert data["selected"][1] == {
        "order": 2,
        "checkpoint": "weak",
        "individual_score": pytest.approx(choice.individual_scores["weak"]),
        "ensemble_score": 0.95,
    }
    with pytest.raises(ValueError, match="k=5 but only 4"):
        ensemble_choice.choose_ensemble(zoo, "strong,medium,weak,nosuch", k=5)
    with pytest.raises(ValueError, match="k=4 but only 3 checkpoint"):
        ensemble_choice.choose_ensemble(zoo, "strong,medium,weak,nosuch", k=4)


def test_choose_ensemble_real_selection(zoo):
    choice = ensemble_choice.choose_ensemble(zoo, "weak,medium,strong", k=2)
    assert choice.selected[0] == "strong"
    assert len(choice.ensemble_scores) == 2
    assert choice.ensemble_scores[0] == pytest.approx(choice.individual_scores["strong"])
    assert choice.individual_scores["strong"] > choice.individual_scores["weak"]
    assert choice.config["k"] == 2 and choice.config["method"] == "greedy_concat"


# --------------------------------------------------------------------------------------------
# Bad input: models strings and files, unreadable data, hostile checkpoints, outputs.


def test_parse_models_keeps_commas_inside_spec_options(tmp_path, monkeypatch):
    spec = "py:m:f?mean=0.5,0.5,0.5&std=0.2,0.2,0.2"
    assert specs.parse_models(f"{spec},efficientnet-lite0") == [spec, "efficientnet-lite0"]
    assert specs.parse_models(f"{spec},timm:resnet18?size=64") == [spec, "timm:resnet18?size=64"]
    assert specs.parse_models(f" {spec} ; other ") == [spec, "other"]
    assert specs.parse_models(f"\"{spec},x\", 'a;b' ,c") == [f"{spec},x", "a;b", "c"]
    assert specs.parse_models("a?x=1,2,b,c") == ["a?x=1,2,b,c"]  # no new spec after the commas
    assert specs.parse_models("a,b?x=1,2") == ["a", "b?x=1,2"]  # before any '?', a comma separates
    local = tmp_path / "weights.pt"
    local.write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert specs.parse_models("a?x=1,weights.pt") == ["a?x=1", "weights.pt"]  # an existing path
    with pytest.raises(ValueError, match='unterminated " quote'):
        specs.parse_models('a,"b')
    with pytest.raises(ValueError, match="text after the quoted spec 'b'"):
        specs.parse_models("a,'b'c")


def test_parse_models_file_refuses_py_lines_without_allow_code(tmp_path):
    path = tmp_path / "models.txt"
    path.write_text("efficientnet-lite0\n\n  py:tools.models:build?head=0   # mine\n")
    with pytest.raises(ValueError) as info:
        specs.parse_models(path)
    assert str(info.value) == (
        f"{str(path)!r} line 3: 'py:tools.models:build?head=0' runs Python code named by the models file; "
        "pass --allow-code (allow_code=True) or --trust-checkpoint (trust_checkpoint=True) if you trust "
        "this file"
    )
    assert specs.parse_models(path, allow_code=True) == [
        "efficientnet-lite0",
        "py:tools.models:build?head=0",
    ]
    assert specs.parse_models("py:tools.models:build,b") == ["py:tools.models:build", "b"]
    assert specs.parse_models(["py:tools.models:build"]) == ["py:tools.models:build"]


def test_rank_refuses_py_lines_in_a_models_file_before_any_work(zoo, tmp_path, monkeypatch):
    loaded = []
    monkeypatch.setattr(ranking, "load_checkpoint", lambda spec, **kw: loaded.append(spec))
    path = tmp_path / "models.txt"
    path.write_text("strong\npy:evil:make\n")
    with pytest.raises(ValueError, match="line 2: 'py:evil:make' runs Python code"):
        ranking.rank(zoo, path, measures="logme")
    with pytest.raises(ValueError, match="line 2"):
        ensemble_choice.choose_ensemble(zoo, str(path), k=1)
    assert loaded == []
    monkeypatch.setattr(ranking, "load_checkpoint", lambda spec, **kw: FakeCheckpoint(spec.split(":")[-1]))
    path.write_text("py:x:strong\npy:x:weak\n")
    for keyword in ("allow_code", "trust_checkpoint"):
        df = ranking.rank(zoo, path, measures="logme", **{keyword: True})
        assert list(df["checkpoint"]) == ["py:x:strong", "py:x:weak"]


def test_parse_models_weights_and_binary_files(tmp_path):
    for suffix in (".safetensors", ".pt", ".pth", ".bin", ".onnx", ".ckpt"):
        weights = tmp_path / f"model{suffix}"
        weights.write_bytes(b"\x80\x02}q\x00.")
        assert specs.parse_models(str(weights)) == [str(weights)]
    blob = tmp_path / "model.weights"
    blob.write_bytes(b"abc\x00def")
    with pytest.raises(ValueError) as info:
        specs.parse_models(blob)
    assert str(info.value) == (
        f"the models file {str(blob)!r} is not text (7 bytes of binary data); to rank a weights file give "
        f"it as a checkpoint: file:{blob}?arch=timm:NAME (or ?arch=torchvision:NAME; .onnx and TorchScript "
        "files need no arch); a models file lists one checkpoint per line"
    )


def _raise_from_a_real_loader(kind: str, tmp_path) -> None:
    """Make a real library raise what it raises on a hostile or damaged checkpoint file."""
    import torch

    if kind == "pickle":
        path = tmp_path / "evil.bin"
        path.write_bytes(pickle.dumps({"w": _Hostile(tmp_path / "PWNED")}, protocol=2))
        torch.load(path, weights_only=True)
    elif kind == "eof":
        (tmp_path / "empty.bin").write_bytes(b"")
        torch.load(tmp_path / "empty.bin", weights_only=True)
    elif kind == "zip":
        (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not a zip")
        zipfile.ZipFile(tmp_path / "bad.zip")
    elif kind == "safetensors":
        from safetensors.torch import load_file

        (tmp_path / "bad.safetensors").write_bytes(b"\xff" * 16)
        load_file(tmp_path / "bad.safetensors")
    elif kind == "index":
        np.empty((0, 3))[0]  # an IndexError, as from a malformed archive
    raise AssertionError(f"{kind} did not raise")


class _Hostile:
    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("pickle", "refused to unpickle the checkpoint (UnpicklingError: "),
        ("eof", "EOFError"),
        ("zip", "BadZipFile: File is not a zip file"),
        ("safetensors", "SafetensorError: Error while deserializing header"),
        ("index", "index 0 is out of bounds for axis 0 with size 0"),
    ],
)
def test_loader_errors_fail_one_checkpoint(zoo, tmp_path, monkeypatch, kind, error):
    def load(spec, trust_checkpoint, device):
        if spec == "hostile":
            _raise_from_a_real_loader(kind, tmp_path)
        return FakeCheckpoint(spec)

    monkeypatch.setattr(ranking, "load_checkpoint", load)
    df = ranking.rank(zoo, "hostile,strong,weak", measures="logme")
    assert list(df["checkpoint"]) == ["strong", "weak", "hostile"]
    assert list(df["status"]) == ["ok", "ok", "failed"]
    message = df["error"].iloc[2]
    assert message.startswith(error) and "\n" not in message, message
    assert not (tmp_path / "PWNED").exists()
    with pytest.raises(Exception) as info:
        ranking.rank(zoo, "hostile,strong", measures="logme", on_error="raise")
    assert not isinstance(info.value, AssertionError)


def test_unwritable_cache_fails_before_the_data_or_any_checkpoint(zoo, tmp_path, monkeypatch):
    monkeypatch.setattr(ranking, "make_cache", REAL_MAKE_CACHE)
    monkeypatch.setattr(targets, "load_target", lambda *a, **k: pytest.fail("data loaded"))
    (tmp_path / "file").write_text("")
    for call in (
        lambda: ranking.rank(zoo, "strong,weak", measures="logme", cache_dir=tmp_path / "file" / "c"),
        lambda: ensemble_choice.choose_ensemble(zoo, "strong,weak", k=1, cache_dir=tmp_path / "file"),
    ):
        with pytest.raises(
            OSError, match=r"feature cache folder .* is not writable \(.*/file' is a file, not a folder\)"
        ):
            call()


REAL_MAKE_CACHE = ranking.make_cache


def _image_folder(root):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    (root / "a" / "broken.png").write_bytes(b"not a png")
    return str(root)


def test_on_unreadable_fail_skip_and_default(zoo, tmp_path):
    data = _image_folder(tmp_path / "images")
    with pytest.raises(ValueError, match=r"broken.png .*pass on_unreadable='skip' to drop them"):
        ranking.rank(data, "strong,weak", measures="logme")
    df = ranking.rank(data, "strong,weak", measures="logme", on_unreadable="skip")
    assert any(note.startswith("skipped 1 of 7 image files") for note in df.attrs["notes"])
    assert df.attrs["dataset"]["n_samples"] == 6 and df.attrs["config"]["on_unreadable"] == "skip"
    choice = ensemble_choice.choose_ensemble(data, "strong,weak", k=1, on_unreadable="skip")
    assert choice.selected == ["strong"] and choice.config["on_unreadable"] == "skip"
    with targets.on_unreadable_default("skip"):  # what the benchmark harness's loads get
        assert len(targets.load_target(data, None, 0).labels) == 6
        with pytest.raises(ValueError, match="pass on_unreadable='skip'"):
            targets.load_target(data, None, 0, "fail")  # an explicit choice wins
    with pytest.raises(ValueError, match="pass on_unreadable='skip'"):
        targets.load_target(data, None, 0)  # the default is back to "fail"
    with pytest.raises(ValueError, match="'fail' or 'skip'"), targets.on_unreadable_default("ignore"):
        pass


def test_save_ranking_replaces_symlinks_instead_of_writing_through(zoo, tmp_path):
    df = ranking.rank(zoo, "strong,weak", measures="logme")
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    names = ("ranking.csv", "ranking.json", "config.json", "scores.png")
    for name in names:
        (outside / name).write_text("keep")
        (out / name).symlink_to(outside / name)
    written = ranking_output.save_ranking(df, out, overwrite=True)
    assert sorted(p.name for p in written.values()) == sorted(names)
    for name in names:
        assert (outside / name).read_text() == "keep"
        assert (out / name).is_file() and not (out / name).is_symlink()
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    assert list(pd.read_csv(out / "ranking.csv")["checkpoint"]) == ["strong", "weak"]


# --------------------------------------------------------------------------------------------
# p_best from resampling the target set


def test_resample_indices_keep_80_percent_of_each_class_without_duplicates():
    from ckptrank.pipeline import resample_indices

    labels = np.array([0] * 10 + [1] * 5 + [2] * 1)
    draws = resample_indices(labels, 4, seed=3)
    assert len(draws) == 4
    for idx in draws:
        assert len(np.unique(idx)) == len(idx)  # no sample twice
        assert np.bincount(labels[idx], minlength=3).tolist() == [8, 4, 1]
    # the same labels and seed give the same draws (every checkpoint is scored on the same ones)
    again = resample_indices(labels.tolist(), 4, seed=3)
    assert all((a == b).all() for a, b in zip(draws, again, strict=True))
    assert not all((a == b).all() for a, b in zip(draws, resample_indices(labels, 4, seed=4), strict=True))
    with pytest.raises(ValueError, match="0 or more"):
        resample_indices(labels, -1, seed=0)
    # a large target set: at most RESAMPLE_MAX_SAMPLES per resample, every class in proportion
    big = np.repeat(np.arange(4), [4000, 3000, 2000, 1000])
    (idx,) = resample_indices(big, 1, seed=0)
    assert np.bincount(big[idx]).tolist() == [800, 600, 400, 200] and len(np.unique(idx)) == 2000


def test_jackknife_values_recentre_and_rescale_by_hand():
    from ckptrank.pipeline import jackknife_values

    # n = 10, 8 kept, m = 2 finite draws: spread x sqrt(8 / 2 * 2 / 1) = 2.83 around the full-set score;
    # the drift (mean 0.8) is removed
    assert jackknife_values(1.0, [0.9, 0.7, np.nan], n_samples=10, n_kept=8) == pytest.approx(
        [1.0 + 0.1 * math.sqrt(8), 1.0 - 0.1 * math.sqrt(8), math.nan], nan_ok=True
    )
    # m = 5: the factor m / (m - 1) = 1.25 corrects the deviations from the draws' own mean
    draws = [0.5, 0.6, 0.7, 0.8, 0.9]
    out = np.array(jackknife_values(2.0, draws, n_samples=100, n_kept=80))
    np.testing.assert_allclose(out, 2.0 + math.sqrt(80 / 20 * 5 / 4) * (np.array(draws) - 0.7))
    # one finite draw: no spread to scale, the full-set score
    assert jackknife_values(1.0, [0.9, np.nan], n_samples=10, n_kept=8) == pytest.approx(
        [1.0, math.nan], nan_ok=True
    )
    assert all(math.isnan(v) for v in jackknife_values(math.nan, [0.9, 0.7], n_samples=10, n_kept=8))
    assert all(math.isnan(v) for v in jackknife_values(1.0, [0.9], n_samples=8, n_kept=8))


def test_too_small_a_target_set_is_not_resampled_and_says_so(zoo):
    """Two samples per class: 80% keeps both, so there is nothing to leave out (never all-NaN draws)."""
    from ckptrank import pipeline

    labels = np.repeat(np.arange(3), 2)
    X = np.random.default_rng(0).standard_normal((6, 4))
    result = pipeline.score_measures(
        pipeline.CheckpointRun(spec="a", features=X, labels=labels),
        ["logme"],
        {},
        "raise",
        resamples=5,
        resample_measures=["logme"],
    )
    assert result.resampled == {} and result.resample_seconds == 0.0
    frame = ranking.rank(zoo, "strong,medium,weak", per_class=2, resamples=5)
    assert frame.attrs["config"]["resamples"] == 0
    assert any("too small to resample" in n for n in frame.attrs["notes"])
    assert frame["p_best"].notna().all()


def test_a_failed_draw_keeps_the_full_set_score_not_the_middle_rank():
    from ckptrank.rankers import PairwiseRanker, probability_best

    ranker = PairwiseRanker(
        features=["logme"],
        weights=np.array([1.0]),
        info={"p_best": {"temperature": 0.5, "shortlist_level": 0.9}},
    )
    scores = {"logme": np.array([1.0, 2.0, 3.0])}
    column = combine.answer_column(
        scores,
        {"logme": True},
        num_parameters=np.full(3, np.nan),
        ranker=ranker,
        resampled={"logme": np.array([[1.0, 2.0, np.nan]])},
    )
    np.testing.assert_allclose(column.p_best, probability_best(np.array([-1.0, 0.0, 1.0]), 0.5))


def test_p_best_averages_the_probability_over_the_resamples_by_hand():
    from ckptrank.rankers import PairwiseRanker, probability_best

    ranker = PairwiseRanker(
        features=["logme"],
        weights=np.array([1.0]),
        info={"p_best": {"temperature": 0.5, "shortlist_level": 0.9}},
    )
    scores = {"logme": np.array([1.0, 2.0, 3.0])}
    # resample 1 keeps the order, resample 2 swaps the top two
    resampled = {"logme": np.array([[1.0, 2.0, 3.0], [1.0, 3.0, 2.0]])}
    column = combine.answer_column(
        scores, {"logme": True}, num_parameters=np.full(3, np.nan), ranker=ranker, resampled=resampled
    )
    first = probability_best(np.array([-1.0, 0.0, 1.0]), 0.5)
    second = probability_best(np.array([-1.0, 1.0, 0.0]), 0.5)
    np.testing.assert_allclose(column.p_best, (first + second) / 2)
    assert column.rank.tolist() == [3, 2, 1]  # the order itself is the full set's
    # lower-is-better measures are turned around in the resamples as in the full set
    flipped = combine.answer_column(
        {"logme": -scores["logme"]},
        {"logme": False},
        num_parameters=np.full(3, np.nan),
        ranker=ranker,
        resampled={"logme": -resampled["logme"]},
    )
    np.testing.assert_allclose(flipped.p_best, column.p_best)


def test_rank_resamples_the_target_set_for_p_best(zoo):
    df = ranking.rank(zoo, "strong,medium,weak", resamples=3)
    assert df.attrs["config"]["resamples"] == 3
    assert df["p_best"].sum() == pytest.approx(1.0)
    assert any("over 3 jackknife resamples" in n for n in df.attrs["notes"])
    bare = ranking.rank(zoo, "strong,medium,weak", resamples=0)
    assert bare.attrs["config"]["resamples"] == 0
    assert not any("jackknife" in n for n in bare.attrs["notes"])
    assert list(bare["checkpoint"]) == list(df["checkpoint"])  # resampling never changes the order
    assert ranking.rank(zoo, "strong,medium,weak").attrs["config"]["resamples"] == ranking.DEFAULT_RESAMPLES
    # a consensus has no p_best: resamples are not drawn for it
    assert ranking.rank(zoo, "strong,medium,weak", measures="logme").attrs["config"]["resamples"] == 0
    with pytest.raises(ValueError, match="resamples=2 needs the default ranker"):
        ranking.rank(zoo, "strong,medium,weak", measures="logme", resamples=2)
    with pytest.raises(ValueError, match="resamples must be a whole number"):
        ranking.rank(zoo, "strong,medium,weak", resamples=-1)


def test_resampled_scores_are_paired_across_checkpoints():
    """Every checkpoint is re-scored on the same resamples: equal features give equal draws."""
    from ckptrank import pipeline

    X = fake_extract(FakeCheckpoint("medium"), SimpleNamespace(labels=LABELS)).features

    def run(spec):
        return pipeline.CheckpointRun(spec=spec, features=X.copy(), labels=LABELS.copy())

    kwargs = dict(resamples=5, resample_measures=["logme", "hscore"], seed=7)
    a = pipeline.score_measures(run("a"), ["logme", "hscore"], {}, "raise", **kwargs)
    b = pipeline.score_measures(run("b"), ["logme", "hscore"], {}, "raise", **kwargs)
    assert a.resampled == b.resampled
    assert len(a.resampled["logme"]) == 5
    assert np.mean(a.resampled["logme"]) == pytest.approx(a.scores["logme"])  # centred on the full score
    assert a.resample_seconds > 0 and a.score_seconds > 0
    c = pipeline.score_measures(run("c"), ["logme"], {}, "raise", **{**kwargs, "seed": 8})
    assert c.resampled["logme"] != a.resampled["logme"]


def test_p_best_follows_the_scale_the_ranker_file_records():
    """Round 8: a file with ``scale="standardised"`` gets softmax(score / T); a file without a scale
    (written before round 8) keeps softmax(score x (m - 1) / 2 / T); an unknown scale is refused."""
    from ckptrank.rankers import PairwiseRanker

    scores = {"logme": np.array([1.0, 2.0, 3.0, 4.0, 5.0])}
    centred = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])  # the pairwise ranker's score with weight 1
    for info, expected in (
        ({"temperature": 0.5, "scale": "standardised"}, np.exp(centred / 0.5)),
        ({"temperature": 0.5}, np.exp(centred * 2.0 / 0.5)),  # (m - 1) / 2 = 2 rank steps per unit
    ):
        ranker = PairwiseRanker(features=["logme"], weights=np.array([1.0]), info={"p_best": info})
        column = combine.answer_column(
            scores, {"logme": True}, num_parameters=np.full(5, np.nan), ranker=ranker
        )
        np.testing.assert_allclose(column.p_best, expected / expected.sum())
    damaged = PairwiseRanker(
        features=["logme"], weights=np.array([1.0]), info={"p_best": {"temperature": 0.5, "scale": "ranks"}}
    )
    with pytest.raises(ValueError, match="p_best scale is 'ranks', not one of rank_steps, standardised"):
        combine.answer_column(scores, {"logme": True}, num_parameters=np.full(5, np.nan), ranker=damaged)
