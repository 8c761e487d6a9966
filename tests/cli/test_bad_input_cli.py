"""Bad input to ``ckptrank rank`` / ``ensemble`` / ``bench``: one clear line, or principled handling.

Covers models files that name code (``py:``), weights files given as ``--models``, commas inside
spec options, symlinks in ``--out``, unreadable image files, an unwritable feature cache, a
checkpoint whose loader raises a pickle error, and ``--offline``.
"""

from __future__ import annotations

import json
import os
import pickle
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ckptrank import ranking, specs
from ckptrank.bench.suite import Suite, SuiteCheckpoint, Task, register_suite, unregister_suite
from ckptrank.cli.main import app
from ckptrank.engine.cache import CACHE_ENV_VAR

runner = CliRunner()

LABELS = np.repeat(np.arange(3), 20)
SEPARATION = {"good": 3.0, "okay": 1.0, "poor": 0.2}


class FakeCheckpoint:
    """Any spec loads; the class signal of its features comes from SEPARATION (0.5 for other names)."""

    def __init__(self, spec: str) -> None:
        self.spec = self.name = spec
        self.sep = SEPARATION.get(spec, 0.5)
        self.has_head = False
        self.card: dict = {}

    def num_parameters(self) -> int:
        return 1000


def fake_extract(checkpoint, dataset, **kwargs):
    y = np.asarray(dataset.labels)
    X = np.random.default_rng(zlib.crc32(checkpoint.spec.encode())).standard_normal((y.size, 5))
    X[np.arange(y.size), y] += checkpoint.sep
    return SimpleNamespace(features=X, source_probs=None, labels=y, seconds=0.1, from_cache=False)


@pytest.fixture
def loads(monkeypatch, tmp_path):
    """Fake loader and extraction; returns the list of specs the loader was asked for, in order."""
    calls: list[str] = []

    def load(spec, trust_checkpoint, device):
        calls.append(spec)
        return FakeCheckpoint(spec)

    monkeypatch.setattr(ranking, "load_checkpoint", load)
    monkeypatch.setattr(ranking, "extract_features", fake_extract)
    monkeypatch.setattr(ranking, "make_cache", lambda cache_dir: None)
    monkeypatch.setattr(specs, "check_spec", lambda spec: None)
    return calls


@pytest.fixture
def feats(tmp_path) -> str:
    path = tmp_path / "target.npz"
    X = np.random.default_rng(0).standard_normal((LABELS.size, 3))
    np.savez(path, features=X, labels=LABELS, split=np.full(LABELS.size, "train"))
    return str(path)


def invoke(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env=env)


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


# --- 1. py: lines in a models file -------------------------------------------------------------------------


def test_py_line_in_models_file_needs_a_flag(loads, feats, tmp_path):
    models = tmp_path / "models.txt"
    models.write_text("# zoo\ngood\npy:evil_module:build  # runs code\n")
    line = one_line_error(invoke("rank", "--data", feats, "--models", str(models), "--measures", "logme"))
    assert f"{str(models)!r} line 3: 'py:evil_module:build' runs Python code" in line
    assert "--allow-code" in line and "--trust-checkpoint" in line
    assert loads == []  # refused before any checkpoint loaded
    for flag in ("--allow-code", "--trust-checkpoint"):
        loads.clear()
        args = ["rank", "--data", feats, "--models", str(models), "--measures", "logme", "--format", "json"]
        result = invoke(*args, flag)
        assert result.exit_code == 0, result.output
        assert loads == ["good", "py:evil_module:build"]
    # typed on the command line, a py: spec is the user's own choice
    loads.clear()
    result = invoke("rank", "--data", feats, "--models", "good,py:mine:build", "--measures", "logme")
    assert result.exit_code == 0, result.output
    assert loads == ["good", "py:mine:build"]


def test_py_line_in_models_file_ensemble(loads, feats, tmp_path):
    models = tmp_path / "models.lst"
    models.write_text("good\nokay\nPY:pkg.mod:make\n")
    line = one_line_error(invoke("ensemble", "--data", feats, "--models", str(models), "--k", "1"))
    assert "line 3: 'PY:pkg.mod:make' runs Python code" in line and "--allow-code" in line
    result = invoke("ensemble", "--data", feats, "--models", str(models), "--k", "1", "--allow-code")
    assert result.exit_code == 0, result.output
    assert loads == ["good", "okay", "PY:pkg.mod:make"]


# --- 4. commas inside spec options --------------------------------------------------------------------------


def test_commas_inside_spec_options_are_kept(loads, feats):
    spec = "py:m:f?mean=0.5,0.5,0.5&std=0.2,0.2,0.2"
    args = ["rank", "--data", feats, "--measures", "logme", "--format", "json"]
    result = invoke(*args, "--models", f"{spec},efficientnet-lite0")
    assert result.exit_code == 0, result.output
    assert loads == [spec, "efficientnet-lite0"]
    assert sorted(r["checkpoint"] for r in json.loads(result.stdout)) == sorted([spec, "efficientnet-lite0"])
    loads.clear()
    models = "file:a.onnx?mean=0.1,0.2,0.3;'timm:x?size=64,okay';poor,timm:y?size=32,timm:z"
    result = invoke(*args, "--models", models)
    assert result.exit_code == 0, result.output
    assert loads == [
        "file:a.onnx?mean=0.1,0.2,0.3",
        "timm:x?size=64,okay",
        "poor",
        "timm:y?size=32",
        "timm:z",
    ]
    loads.clear()
    # 'good' is neither PREFIX:, a built-in name nor a path: it continues the option value (documented);
    # ';' or quotes separate it
    assert invoke(*args, "--models", f"{spec},good").exit_code == 0
    assert invoke(*args, "--models", f"{spec};good").exit_code == 0
    assert loads == [f"{spec},good", spec, "good"]


def test_unterminated_quote_is_one_line(loads, feats):
    line = one_line_error(invoke("rank", "--data", feats, "--models", "good,'timm:x?size=1"))
    assert "unterminated ' quote" in line


# --- 6. a weights file or a binary file as --models ---------------------------------------------------------


def test_weights_file_as_models_is_a_checkpoint(loads, feats, tmp_path):
    weights = tmp_path / "plain.safetensors"
    weights.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      \xff\xfe")
    result = invoke("rank", "--data", feats, "--models", str(weights), "--measures", "logme")
    assert result.exit_code == 0, result.output
    assert loads == [str(weights)]


def test_binary_models_file_names_the_file_spec(loads, feats, tmp_path):
    blob = tmp_path / "weights.blob"
    blob.write_bytes(bytes(range(256)) * 4)
    line = one_line_error(invoke("rank", "--data", feats, "--models", str(blob)))
    assert f"the models file {str(blob)!r} is not text (1024 bytes of binary data)" in line
    assert f"file:{blob}?arch=timm:NAME" in line
    assert "codec" not in line
    latin = tmp_path / "list.txt"
    latin.write_bytes(b"caf\xe9\n")  # not UTF-8, no NUL
    assert "is not text" in one_line_error(invoke("rank", "--data", feats, "--models", str(latin)))
    assert loads == []


def test_bare_weights_file_with_the_real_loader(feats, tmp_path):
    import torch
    from safetensors.torch import save_file

    weights = tmp_path / "plain.safetensors"
    save_file({"w": torch.ones(2, 2)}, str(weights))
    args = ["rank", "--data", feats, "--models", str(weights), "--cache-dir", str(tmp_path / "c")]
    line = one_line_error(invoke(*args))
    assert "plain.safetensors" in line and "?arch=" in line and "codec" not in line


# --- 2. --out never writes through a symbolic link ----------------------------------------------------------


def test_out_overwrite_replaces_symlinks_and_leaves_their_targets(loads, feats, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "precious"
    outside.mkdir()
    names = ["ranking.csv", "ranking.json", "config.json", "scores.png"]
    for name in names:
        (outside / name).write_text(f"do not touch {name}\n")
        (out / name).symlink_to(outside / name)
    args = ["rank", "--data", feats, "--models", "good,poor", "--measures", "logme", "--out", str(out)]
    refused = invoke(*args)
    assert "not empty" in one_line_error(refused)
    result = invoke(*args, "--overwrite", "--format", "quiet")
    assert result.exit_code == 0, result.output
    for name in names:
        assert (outside / name).read_text() == f"do not touch {name}\n"
        assert not (out / name).is_symlink() and (out / name).is_file()
    assert sorted(p.name for p in out.iterdir()) == sorted(names)  # no temporary files left
    assert list(pd.read_csv(out / "ranking.csv")["checkpoint"]) == ["good", "poor"]
    assert json.loads((out / "ranking.json").read_text())[0]["checkpoint"] == "good"
    assert (out / "scores.png").read_bytes()[:4] == b"\x89PNG"
    mode = (out / "ranking.csv").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


# --- 3. --on-unreadable -------------------------------------------------------------------------------------


@pytest.fixture
def images(tmp_path) -> Path:
    """An image folder of 3 classes x 4 PNGs, plus one truncated PNG in class 'b'."""
    from PIL import Image

    root = tmp_path / "images"
    rng = np.random.default_rng(1)
    for name in ("a", "b", "c"):
        (root / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    (root / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    return root


@pytest.mark.parametrize("command", ["rank", "ensemble"])
def test_on_unreadable_error_and_skip(loads, images, command):
    args = [command, "--data", str(images), "--models", "good,okay", "--format", "json"]
    args += ["--measures", "logme"] if command == "rank" else ["--k", "1"]
    line = one_line_error(invoke(*args))
    assert "broken.png" in line and "pass --on-unreadable skip to drop them" in line
    assert "on_unreadable=" not in line
    assert loads == []
    assert one_line_error(invoke(*args, "--on-unreadable", "error")) == line
    result = invoke(*args, "--on-unreadable", "skip")
    assert result.exit_code == 0, result.output
    notes = json.loads(result.stdout)
    notes = notes[0]["notes"] if command == "rank" else notes["notes"]
    assert any("skipped 1 of 13" in note and "broken.png" in note for note in notes), notes
    assert loads == ["good", "okay"]
    bad = invoke(*args, "--on-unreadable", "ignore")
    assert bad.exit_code == 2
    assert "'ignore' is not one of 'error', 'skip'" in " ".join(bad.output.replace("│", " ").split())


def test_on_unreadable_reaches_the_bench_harness(loads, images, tmp_path):
    rows = [("t", name, seed, 50 + 10 * sep + seed) for name, sep in SEPARATION.items() for seed in range(2)]
    suite = Suite(
        name="test:unreadable",
        tasks={"t": Task(data=str(images))},
        checkpoints={name: SuiteCheckpoint(spec=name) for name in SEPARATION},
        ground_truth=pd.DataFrame(rows, columns=["task", "checkpoint", "seed", "accuracy"]),
    )
    register_suite(suite.name, lambda: suite)
    try:
        args = ["bench", "--suite", suite.name, "--measures", "logme", "--bootstrap", "0"]
        args += ["--min-checkpoints", "2", "--format", "json"]
        line = one_line_error(invoke(*args, "--results", str(tmp_path / "a.sqlite")))
        assert "broken.png" in line and "--on-unreadable skip" in line and "on_unreadable=" not in line
        result = invoke(*args, "--results", str(tmp_path / "b.sqlite"), "--on-unreadable", "skip")
        assert result.exit_code == 0, result.output
        assert any("skipped 1 of 13" in note for note in json.loads(result.stdout)["notes"])
        assert loads == list(SEPARATION)
    finally:
        unregister_suite(suite.name)


# --- 5. an unwritable feature cache -------------------------------------------------------------------------


def test_unwritable_cache_is_one_line_before_any_work(loads, feats, tmp_path, monkeypatch):
    from ckptrank.engine.cache import FeatureCache

    monkeypatch.setattr(ranking, "make_cache", REAL_MAKE_CACHE)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    args = ["rank", "--data", feats, "--models", "good,okay", "--measures", "logme"]
    line = one_line_error(invoke(*args, "--cache-dir", str(blocker / "sub")))
    assert line.startswith(f"error: the feature cache folder {str(blocker / 'sub')!r} is not writable")
    assert f"{str(blocker)!r} is a file, not a folder" in line
    assert "--cache-dir" in line and CACHE_ENV_VAR in line and "failed" not in line
    line = one_line_error(invoke(*args, env={CACHE_ENV_VAR: str(blocker)}))
    assert f"the feature cache folder {str(blocker)!r} is not writable" in line
    line = one_line_error(
        invoke("ensemble", "--data", feats, "--models", "good,okay", "--k", "1", "--cache-dir", str(blocker))
    )
    assert "is not writable" in line
    assert loads == []  # no checkpoint was loaded
    assert blocker.read_text() == "not a folder"
    writable = tmp_path / "cache"
    result = invoke(*args, "--cache-dir", str(writable))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in writable.iterdir()) == ["features", "locks", "partial"]
    assert FeatureCache(writable).ls() == []  # the fake extraction stores nothing; no probe file is left


REAL_MAKE_CACHE = ranking.make_cache


# --- 7. a loader raising a pickle (or archive) error --------------------------------------------------------


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_file(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"weight": _Evil(marker)}, protocol=2))
    return path, marker


def test_unpickling_error_fails_one_checkpoint_in_one_line(loads, feats, tmp_path, monkeypatch):
    """A loader that lets ``torch.load(weights_only=True)``'s UnpicklingError escape (as a hub loader
    reading a hostile ``pytorch_model.bin`` may) fails that checkpoint alone."""
    import torch

    evil, marker = _evil_file(tmp_path)
    fake_load = ranking.load_checkpoint

    def load(spec, trust_checkpoint, device):
        if spec == "hf:evil":
            torch.load(evil, map_location="cpu", weights_only=True)
        return fake_load(spec, trust_checkpoint, device)

    monkeypatch.setattr(ranking, "load_checkpoint", load)
    result = invoke(
        "rank", "--data", feats, "--models", "hf:evil,good", "--measures", "logme", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    records = {r["checkpoint"]: r for r in json.loads(result.stdout)}
    assert records["good"]["status"] == "ok" and records["good"]["rank"] == 1
    error = records["hf:evil"]["error"]
    assert records["hf:evil"]["status"] == "failed" and "\n" not in error
    assert error.startswith("refused to unpickle the checkpoint (UnpicklingError: ")
    assert "posix.system" in error  # the reason torch gives, without its paragraphs of advice
    assert error.endswith(
        "it is corrupt or holds more than tensors; ckptrank never runs code from a checkpoint, "
        "use a safetensors copy of the model"
    )
    assert "Weights only load failed" not in error
    assert not marker.exists()


def test_real_file_spec_with_a_hostile_pickle(feats, tmp_path):
    """End to end with the real loaders: the hostile pickle fails alone, never runs, the good one ranks."""
    evil, marker = _evil_file(tmp_path)
    module = tmp_path / "tiny_model.py"
    module.write_text(
        "import torch\nfrom torch import nn\n\n\ndef make():\n    torch.manual_seed(0)\n"
        "    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))\n"
    )
    good = f"py:{module}:make"
    args = [
        "rank",
        "--data",
        feats,
        "--models",
        f"{good},file:{evil}",
        "--measures",
        "logme",
        "--format",
        "json",
    ]
    result = invoke(*args, "--cache-dir", str(tmp_path / "cache"))
    assert result.exit_code == 0, result.output
    records = {r["checkpoint"]: r for r in json.loads(result.stdout)}
    assert records[good]["status"] == "ok" and records[good]["rank"] == 1
    assert records[f"file:{evil}"]["status"] == "failed"
    assert "evil.pt" in records[f"file:{evil}"]["error"] and "\n" not in records[f"file:{evil}"]["error"]
    assert not marker.exists()


# --- 8. --offline -------------------------------------------------------------------------------------------


@pytest.fixture
def no_offline_env(monkeypatch):
    """HF_HUB_OFFLINE unset for the test and restored afterwards (the test suite sets it globally)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # records the original value for the teardown
    monkeypatch.delenv("HF_HUB_OFFLINE")


def test_offline_is_set_before_any_checkpoint_loads(no_offline_env, loads, feats, monkeypatch):
    seen: list[str | None] = []
    fake_load = ranking.load_checkpoint

    def load(spec, trust_checkpoint, device):
        seen.append(os.environ.get("HF_HUB_OFFLINE"))
        return fake_load(spec, trust_checkpoint, device)

    monkeypatch.setattr(ranking, "load_checkpoint", load)
    result = invoke("rank", "--data", feats, "--models", "good,okay", "--measures", "logme")
    assert result.exit_code == 0, result.output
    assert seen == [None, None]
    result = invoke("rank", "--data", feats, "--models", "good,okay", "--measures", "logme", "--offline")
    assert result.exit_code == 0, result.output
    assert seen[2:] == ["1", "1"]


@pytest.mark.parametrize(
    "args",
    [
        ["ensemble", "--offline", "--data", "missing.npz", "--models", "good"],
        ["bench", "--offline", "--list", "--format", "json"],
        ["demo", "--offline", "--task", "audio"],
        ["finetune", "--offline"],
        ["--offline", "measures", "--format", "quiet"],
    ],
)
def test_offline_flag_sets_the_variable(no_offline_env, args):
    assert "HF_HUB_OFFLINE" not in os.environ
    result = invoke(*args)
    assert result.exit_code in (0, 1), result.output  # some fail later on purpose; parsing is what counts
    assert os.environ.get("HF_HUB_OFFLINE") == "1"


@pytest.mark.parametrize("command", ["rank", "ensemble", "bench", "demo", "finetune"])
def test_offline_help_text(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.replace("│", " ").split())
    assert (
        "never touch the network: hub checkpoints load from the local cache only (also HF_HUB_OFFLINE=1)"
        in text
    )
