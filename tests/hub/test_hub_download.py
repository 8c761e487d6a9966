"""Hub checkpoints downloaded for real, from a Hugging Face-compatible hub on 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from ckptrank.adapters import CheckpointError, load_checkpoint
from ckptrank.adapters._hub import RemoteCodeError

from . import repos
from .conftest import go_offline

TEXTS = ["the cat sat on the mat", "a dog ran in the park today", "hello"]


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory) -> Path:
    return repos.tiny_bert(tmp_path_factory.mktemp("bert"))


def _weights_gets(hub) -> list[str]:
    return [p for p in hub.downloads() if p.endswith((".safetensors", ".bin"))]


def test_first_load_downloads_second_is_served_from_cache_offline(hub, hub_env, bert_folder, monkeypatch):
    commit = hub.add_folder("org/tiny-bert", bert_folder)
    ckpt = load_checkpoint("hf:org/tiny-bert")
    assert ckpt.card["revision"] == commit and ckpt.card["weights"] == f"org/tiny-bert@{commit}"
    assert _weights_gets(hub) == [f"org/tiny-bert/resolve/{commit}/model.safetensors"]
    assert not any(p.endswith(".py") for p in hub.downloads())
    cached = Path(hub_env["HF_HUB_CACHE"]) / "models--org--tiny-bert" / "snapshots" / commit
    assert (cached / "model.safetensors").is_file()
    features = ckpt.forward(ckpt.prepare(TEXTS)).features
    fingerprint = ckpt.weights_fingerprint()

    hub.stop()
    seen = len(hub.requests)
    go_offline(monkeypatch)
    again = load_checkpoint("hf:org/tiny-bert")
    assert len(hub.requests) == seen
    assert again.card["revision"] == commit and again.weights_fingerprint() == fingerprint
    torch.testing.assert_close(again.forward(again.prepare(TEXTS)).features, features)


def test_second_online_load_downloads_nothing(hub, hub_env, bert_folder):
    hub.add_folder("org/tiny-bert", bert_folder)
    load_checkpoint("hf:org/tiny-bert")
    n_files = len(hub.downloads())
    load_checkpoint("hf:org/tiny-bert")
    assert len(hub.downloads()) == n_files  # only the commit is asked again, no file


def test_revision_pins_and_a_moved_branch_changes_the_fingerprint(hub, hub_env, bert_folder, tmp_path):
    first = hub.add_folder("org/tiny-bert", bert_folder, tags=("v1",))
    second = hub.add_folder("org/tiny-bert", repos.tiny_bert(tmp_path / "bert2", seed=7))
    pinned = load_checkpoint("hf:org/tiny-bert@v1")
    by_commit = load_checkpoint(f"hf:org/tiny-bert@{first}")
    main = load_checkpoint("hf:org/tiny-bert")
    assert pinned.card["revision"] == by_commit.card["revision"] == first
    assert main.card["revision"] == second
    assert pinned.weights_fingerprint() == by_commit.weights_fingerprint() != main.weights_fingerprint()
    # The same weights under another commit are another cache key: a moved branch never serves
    # features extracted for the commit it pointed at before.
    third = hub.add_folder("org/tiny-bert", bert_folder)
    hub.move_branch("org/tiny-bert", "main", third)
    moved = load_checkpoint("hf:org/tiny-bert")
    assert moved.card["revision"] == third
    assert moved.weights_fingerprint() not in (pinned.weights_fingerprint(), main.weights_fingerprint())
    layer = load_checkpoint("hf:org/tiny-bert@v1@encoder.layer.0")
    assert layer.layer == "encoder.layer.0" and layer.card["revision"] == first
    with pytest.raises(CheckpointError, match=r"revision 'v9' not found in 'org/tiny-bert'"):
        load_checkpoint("hf:org/tiny-bert@v9")


def test_vision_and_sentence_transformers_and_timm_download(hub, hub_env, bert_folder, tmp_path):
    import timm

    hub.add_folder("org/tiny-vit", repos.tiny_vit(tmp_path / "vit"))
    st_commit = hub.add_folder("org/tiny-st", repos.tiny_st(tmp_path / "st", bert_folder))
    timm_folder, state = repos.timm_test_resnet(tmp_path / "timm")
    timm_commit = hub.add_folder("timm/test_resnet.r160_in1k", timm_folder)

    vit = load_checkpoint("hf:org/tiny-vit")
    assert vit.modality == "image" and vit.has_head and vit.preprocessing.image_size == 32

    st = load_checkpoint("st:org/tiny-st")
    local = load_checkpoint(f"st:{tmp_path / 'st'}")
    assert st.card["revision"] == st_commit and st.num_features == 16
    torch.testing.assert_close(
        st.forward(st.prepare(TEXTS)).features, local.forward(local.prepare(TEXTS)).features
    )
    assert any("1_Pooling/config.json" in p for p in hub.downloads())

    ckpt = load_checkpoint("timm:test_resnet.r160_in1k")
    assert ckpt.card["revision"] == timm_commit
    assert ckpt.card["weights"] == f"timm/test_resnet.r160_in1k@{timm_commit}"
    assert ckpt.card["source_dataset"] == "ImageNet-1k"
    reference = timm.create_model("test_resnet", pretrained=False)
    reference.load_state_dict(state)
    for name, tensor in reference.state_dict().items():
        torch.testing.assert_close(ckpt.module.state_dict()[name], tensor)


def test_remote_code_repo_is_refused_and_its_code_never_runs(hub, hub_env, tmp_path):
    marker = tmp_path / repos.MARKER_NAME
    folder = repos.remote_code_repo(tmp_path / "evil", marker)
    hub.add_folder("org/evil", folder)
    with pytest.raises(RemoteCodeError) as info:
        load_checkpoint("hf:org/evil")
    message = str(info.value)
    assert "\n" not in message and "auto_map in config.json" in message and "never runs" in message
    assert not _weights_gets(hub), "refused before the weights were downloaded"
    assert not any(p.endswith(".py") for p in hub.downloads())
    with pytest.raises(RemoteCodeError):
        load_checkpoint(f"hf:{folder}")  # the local folder holds the .py files: still refused
    assert not marker.exists()


def test_sentence_transformers_custom_module_is_refused(hub, hub_env, bert_folder, tmp_path):
    import json

    folder = repos.tiny_st(tmp_path / "st", bert_folder)
    modules = json.loads((folder / "modules.json").read_text())
    modules[1]["type"] = "custom_pooling.Pooling"
    (folder / "modules.json").write_text(json.dumps(modules))
    hub.add_folder("org/custom-st", folder)
    with pytest.raises(RemoteCodeError, match=r"module type 'custom_pooling.Pooling' in modules.json"):
        load_checkpoint("st:org/custom-st")


def test_pickled_weights_load_tensors_only(hub, hub_env, tmp_path):
    commit = hub.add_folder("org/bin-only", repos.pickled_weights_repo(tmp_path / "bin"))
    ckpt = load_checkpoint("hf:org/bin-only")
    assert ckpt.card["revision"] == commit
    assert _weights_gets(hub) == [f"org/bin-only/resolve/{commit}/pytorch_model.bin"]

    marker = tmp_path / repos.MARKER_NAME
    hub.add_folder("org/bad-bin", repos.pickled_weights_repo(tmp_path / "bad", malicious=marker))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint("hf:org/bad-bin")
    assert "weights_only=True" in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()


def test_safetensors_preferred_over_pickles(hub, hub_env, bert_folder, tmp_path):
    import shutil

    folder = tmp_path / "both"
    shutil.copytree(bert_folder, folder)
    (folder / "pytorch_model.bin").write_bytes(b"not even a pickle")
    commit = hub.add_folder("org/both", folder)
    load_checkpoint("hf:org/both")
    assert _weights_gets(hub) == [f"org/both/resolve/{commit}/model.safetensors"]


def test_offline_and_uncached_is_one_line(hub, hub_env, monkeypatch):
    go_offline(monkeypatch)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint("hf:org/never-fetched")
    message = str(info.value)
    assert "\n" not in message and "hf:org/never-fetched is not in the local Hugging Face cache" in message
    assert "hf download org/never-fetched" in message
    with pytest.raises(CheckpointError, match=r"timm:test_resnet.r160_in1k is not in the local"):
        load_checkpoint("timm:test_resnet.r160_in1k")
    assert hub.requests == []


def test_unreachable_hub_fails_fast_in_one_line_and_falls_back_to_the_cache(hub, hub_env, bert_folder):
    hub.add_folder("org/tiny-bert", bert_folder)
    commit = load_checkpoint("hf:org/tiny-bert").card["revision"]
    hub.stop()
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as info:
        load_checkpoint("hf:org/other")
    assert "\n" not in str(info.value) and "cannot reach http://127.0.0.1:" in str(info.value)
    for name in ("hf:org/third", "st:org/fourth", "hf:org/fifth"):
        with pytest.raises(CheckpointError, match="cannot reach"):
            load_checkpoint(name)
    assert time.perf_counter() - start < 10  # no retry storm
    assert load_checkpoint("hf:org/tiny-bert").card["revision"] == commit  # cached: still usable


def test_missing_repo_is_one_line(hub, hub_env):
    with pytest.raises(CheckpointError, match=r"no model repository 'org/missing' on http://127.0.0.1"):
        load_checkpoint("hf:org/missing")


def test_torchvision_weights_enum_from_torch_home(hub_env, monkeypatch):
    import torchvision

    checkpoints = Path(hub_env["TORCH_HOME"]) / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(2)
    reference = torchvision.models.mobilenet_v3_small()
    entry = torchvision.models.MobileNet_V3_Small_Weights.IMAGENET1K_V1
    torch.save(reference.state_dict(), checkpoints / Path(entry.url).name)
    for spec in (
        "torchvision:mobilenet_v3_small?weights=IMAGENET1K_V1",
        "torchvision:mobilenet_v3_small?weights=MobileNet_V3_Small_Weights.IMAGENET1K_V1",
        "torchvision:mobilenet_v3_small",
    ):
        ckpt = load_checkpoint(spec)
        assert ckpt.card["source_accuracy"] == pytest.approx(67.668)
        torch.testing.assert_close(
            ckpt.module.state_dict()["features.0.0.weight"], reference.features[0][0].weight
        )
    go_offline(monkeypatch)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint("torchvision:mobilenet_v3_large?weights=IMAGENET1K_V2")
    assert "is not in" in str(info.value) and "hub access is off" in str(info.value)
