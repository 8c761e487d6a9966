"""The self-trained zoo: architectures, a tiny build, the committed checkpoints and their cards, specs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import ckptrank.zoo  # noqa: F401  # registers zoo:
from ckptrank.adapters import CheckpointError, load_checkpoint
from ckptrank.zoo import ARCH_RANDOM, CHECKPOINT_DIR, ZOO, build_zoo, zoo_names
from ckptrank.zoo.data import (
    FASHION_SOURCE_HOLDOUT,
    FASHION_SOURCE_TRAIN,
    FASHION_TARGET_HALF,
    build_vocab,
    load_source_task,
)
from ckptrank.zoo.models import ARCHITECTURES, build_model
from ckptrank.zoo.pretrain import IMAGE_MEAN, IMAGE_STD, encode_texts, sha256_file

CARD_FIELDS = {
    "architecture",
    "source_task",
    "epochs",
    "source_accuracy",
    "seed",
    "command",
    "data_provenance",
    "sha256",
    "num_parameters",
    "preprocessing",
    "stage",
    "run",
}


@pytest.mark.parametrize("arch", [a for a, (_, m) in ARCHITECTURES.items() if m == "image"])
@pytest.mark.parametrize("side", [28, 32])
def test_image_architectures_give_features_and_logits(arch: str, side: int) -> None:
    model = build_model(arch, 7).eval()
    x = torch.randn(3, 3, side, side)
    feats = model.features(x)
    assert feats.shape == (3, model.num_features)
    assert torch.equal(model(x), model.head(feats))
    assert model(x).shape == (3, 7)


def test_text_architecture_masks_padding() -> None:
    model = build_model("bag-of-words", 4, vocab_size=10).eval()
    ids = torch.tensor([[2, 3, 0, 0], [2, 3, 5, 0]])
    mask = (ids > 0).long()
    feats = model.features(ids, mask)
    assert feats.shape == (2, model.num_features)
    # Padding does not change a text's features.
    assert torch.allclose(model.features(ids[:1, :2], mask[:1, :2]), feats[:1], atol=1e-6)


def test_unknown_architecture() -> None:
    with pytest.raises(ValueError, match="unknown zoo architecture 'vit'"):
        build_model("vit", 3)


def test_vocab_and_encoding() -> None:
    vocab = build_vocab(["the cat", "the dog", "a cat"], max_size=10, min_count=2)
    assert vocab == ("<pad>", "<unk>", "cat", "the")
    enc = encode_texts(["the bird", ""], vocab)
    assert enc["input_ids"].tolist() == [[3, 1], [0, 0]]
    assert enc["attention_mask"].tolist() == [[1, 1], [0, 0]]


def test_source_and_target_halves_never_overlap() -> None:
    lo_s, hi_s = FASHION_SOURCE_TRAIN
    lo_h, hi_h = FASHION_SOURCE_HOLDOUT
    lo_t, hi_t = FASHION_TARGET_HALF
    assert hi_s <= lo_h and hi_h <= lo_t and (lo_s, hi_t) == (0, 60_000)
    task = load_source_task("fashion-mnist-5-9")
    assert set(np.unique(task.train_labels)) == set(range(5))
    assert task.classes[0] == "Sandal"
    assert len(task.train_labels) + len(task.holdout_labels) < 30_000
    with pytest.raises(ValueError, match="unknown zoo source task"):
        load_source_task("imagenet")


def test_tiny_build_saves_stages_of_one_run_and_cards(tmp_path: Path) -> None:
    state = torch.random.get_rng_state()
    done = build_zoo(["cnn-fm04", "bow-random"], tmp_path, epochs=2, max_samples=300, threads=1)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is untouched
    assert [p.name for p in done["cnn-fm04"]] == ["cnn-fm04-e1.safetensors", "cnn-fm04.safetensors"]
    e1 = json.loads((tmp_path / "cnn-fm04-e1.json").read_text())
    final = json.loads((tmp_path / "cnn-fm04.json").read_text())
    assert set(e1) >= CARD_FIELDS and set(final) >= CARD_FIELDS
    assert (e1["epochs"], final["epochs"]) == (1, 2)
    assert e1["run"] == final["run"] == "cnn-fm04" and final["stage"] == "final"
    assert e1["sha256"] == sha256_file(tmp_path / "cnn-fm04-e1.safetensors")
    assert e1["sha256"] != final["sha256"]
    assert 0.0 <= final["source_accuracy"] <= 100.0
    assert "SOURCE half" in final["data_provenance"]
    assert final["train_samples"] == 300
    rand = json.loads((tmp_path / "bow-random.json").read_text())
    assert rand["source_accuracy"] is None and rand["epochs"] == 0 and not rand["has_head"]
    assert (tmp_path / rand["vocab_file"]).is_file()
    # A second build skips runs whose files exist.
    assert build_zoo(["bow-random"], tmp_path)["bow-random"] == []
    ckpt = load_checkpoint(f"zoo:cnn-fm04-e1?dir={tmp_path}")
    out = ckpt.forward(ckpt.prepare([np.zeros((28, 28), np.uint8), np.full((8, 8), 255, np.uint8)]))
    assert out.features.shape == (2, 16 * 4) and out.logits is not None and out.logits.shape == (2, 5)
    text = load_checkpoint(f"zoo:bow-random?dir={tmp_path}")
    out = text.forward(text.prepare(["to run fast", "zzzz"]))
    assert out.features.shape == (2, 128) and out.logits is None and not text.has_head


def test_image_preparer_matches_the_pretraining_inputs() -> None:
    ckpt = load_checkpoint("zoo:cnn-random")
    img = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    x = ckpt.prepare([img])
    expected = (torch.from_numpy(img).float() / 255.0 - IMAGE_MEAN) / IMAGE_STD
    assert x.shape == (1, 3, 28, 28)
    assert torch.allclose(x[0, 0], expected, atol=1e-5) and torch.equal(x[0, 0], x[0, 2])


def test_committed_zoo_files_cards_and_size() -> None:
    saved = [n for n in zoo_names() if n not in ARCH_RANDOM]
    total = 0
    for name in saved:
        weights = CHECKPOINT_DIR / f"{name}.safetensors"
        card = json.loads((CHECKPOINT_DIR / f"{name}.json").read_text())
        assert set(card) >= CARD_FIELDS, name
        assert card["sha256"] == sha256_file(weights), name
        assert card["command"].startswith("ckptrank zoo build --only " + card["run"])
        total += weights.stat().st_size + (CHECKPOINT_DIR / f"{name}.json").stat().st_size
        if card.get("vocab_file"):
            total += (CHECKPOINT_DIR / card["vocab_file"]).stat().st_size
        if card["source_task"] is not None:
            chance = 100.0 / len(card["source_classes"])
            assert card["source_accuracy"] > 2 * chance, name  # trained: far above chance on its source task
    assert total < 10 * 2**20
    stages = [json.loads((CHECKPOINT_DIR / f"{n}.json").read_text()) for n in ZOO["cnn-fm04"].outputs]
    assert [c["epochs"] for c in stages] == [1, 3, 6]
    assert {c["run"] for c in stages} == {"cnn-fm04"}


@pytest.mark.parametrize("name", ["cnn-fm04-e3", "resnet-fm04", "mlp-fm04", "cnn-rot", "bow-wnverb"])
def test_committed_checkpoints_load_and_run(name: str) -> None:
    ckpt = load_checkpoint(f"zoo:{name}")
    items: list = (
        ["to walk slowly", "rain"] if ckpt.modality == "text" else [np.zeros((28, 28), np.uint8)] * 2
    )
    out = ckpt.forward(ckpt.prepare(items))
    assert out.features.shape == (2, ckpt.num_features)
    assert ckpt.card["source_accuracy"] is not None and ckpt.card["num_source_classes"] == out.logits.shape[1]
    assert ckpt.weights_fingerprint() == load_checkpoint(f"zoo:{name}").weights_fingerprint()


def test_intermediate_layer_and_size_options() -> None:
    ckpt = load_checkpoint("zoo:cnn-fm04@stage2?size=32")
    out = ckpt.forward(ckpt.prepare([np.zeros((28, 28), np.uint8)]))
    assert ckpt.preprocessing.image_size == 32 and out.features.shape == (1, 32) and out.logits is None


def test_random_architecture_controls_are_seeded() -> None:
    a = load_checkpoint("zoo:efficientnet-lite0-random?size=32")
    b = load_checkpoint("zoo:efficientnet-lite0-random?size=32&seed=0")
    c = load_checkpoint("zoo:efficientnet-lite0-random?size=32&seed=1")
    assert a.weights_fingerprint() == b.weights_fingerprint() != c.weights_fingerprint()
    assert not a.has_head and a.card["num_source_classes"] == 0
    assert a.forward(a.prepare([np.zeros((28, 28), np.uint8)])).features.shape == (1, 1280)


def test_zoo_spec_errors() -> None:
    with pytest.raises(CheckpointError, match="Did you mean 'cnn-fm04'"):
        load_checkpoint("zoo:cnn-fm4")
    with pytest.raises(CheckpointError, match="option seed applies only"):
        load_checkpoint("zoo:cnn-random?seed=3")
    with pytest.raises(CheckpointError, match="unknown option 'colour'"):
        load_checkpoint("zoo:cnn-random?colour=1")
    with pytest.raises(CheckpointError, match="option size does not apply"):
        load_checkpoint("zoo:bow-random?size=32")


def test_zoo_source_needs_no_explicit_import() -> None:
    # A fresh interpreter that imports only the adapters still resolves zoo: specs and lists the source.
    import subprocess
    import sys

    code = (
        "from ckptrank.adapters import load_checkpoint, list_sources\n"
        "assert load_checkpoint('zoo:cnn-fm04').name\n"
        "assert 'zoo' in [s.prefix for s in list_sources()]\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
