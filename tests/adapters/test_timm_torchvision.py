"""``timm:`` and ``torchvision:`` sources on small random-initialised checkpoints saved locally."""

from __future__ import annotations

import os
import shutil

import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file
from torch.nn import functional as fn

from ckptrank.adapters import CheckpointError, load_checkpoint


@pytest.fixture(scope="module")
def timm_resnet(tmp_path_factory) -> tuple[str, torch.nn.Module]:
    """timm resnet18 with a 7-class head, random weights (non-trivial BN stats), as safetensors."""
    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=7).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("timm") / "resnet18.safetensors"
    save_file(model.state_dict(), str(path))
    return str(path), model


def test_timm_resnet_features_logits_and_card(timm_resnet, image_items) -> None:
    path, ref = timm_resnet
    ckpt = load_checkpoint(f"timm:resnet18?weights={path}&size=32")
    p = ckpt.preprocessing
    assert (p.image_size, p.interpolation, p.mean) == (32, "bicubic", (0.485, 0.456, 0.406))
    assert p.resize_size == int(32 / 0.95)  # resnet18's default tag a1_in1k has crop_pct 0.95
    x = ckpt.prepare(image_items)
    assert x.shape == (3, 3, 32, 32)
    out = ckpt.forward(x)
    assert out.features.shape == (3, ckpt.num_features) == (3, 512)
    assert out.logits is not None and out.logits.shape == (3, 7)
    assert ckpt.has_head and ckpt.card["num_source_classes"] == 7 and ckpt.card["weights"] == path
    assert ckpt.card["source_dataset"] is None  # user weights under an untagged name: unknown data
    with torch.no_grad():
        manual = fn.adaptive_avg_pool2d(ref.forward_features(x), 1).flatten(1)  # fc input by hand
        torch.testing.assert_close(out.features, manual, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out.logits, manual @ ref.fc.weight.T + ref.fc.bias, rtol=1e-5, atol=1e-5)
    assert ckpt.num_parameters() == sum(p.numel() for p in ref.parameters())


def test_timm_fingerprint_stable_and_weight_sensitive(timm_resnet, tmp_path) -> None:
    path, ref = timm_resnet
    a = load_checkpoint(f"timm:resnet18?weights={path}").weights_fingerprint()
    assert a == load_checkpoint(f"timm:resnet18?weights={path}").weights_fingerprint()
    sd = {k: v.clone() for k, v in ref.state_dict().items()}
    sd["layer1.0.conv1.weight"][0, 0, 0, 0] += 1.0
    changed = tmp_path / "changed.safetensors"
    save_file(sd, str(changed))
    assert load_checkpoint(f"timm:resnet18?weights={changed}").weights_fingerprint() != a


def test_timm_vit_small_image_and_layer(tmp_path, image_items) -> None:
    torch.manual_seed(1)
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, num_classes=4).eval()
    path = tmp_path / "vit.safetensors"
    save_file(ref.state_dict(), str(path))
    ckpt = load_checkpoint(f"timm:vit_tiny_patch16_224?weights={path}&size=32")
    x = ckpt.prepare(image_items)
    out = ckpt.forward(x)
    assert out.features.shape == (3, 192) and out.logits.shape == (3, 4)
    with torch.no_grad():
        tokens = ref.forward_features(x)
        torch.testing.assert_close(out.features, tokens[:, 0], rtol=1e-5, atol=1e-5)  # class token
        torch.testing.assert_close(out.logits, ref(x), rtol=1e-5, atol=1e-5)
    # Intermediate layer: a 3-D token output, CLS token with pool=cls (mean is the default).
    mid = load_checkpoint(f"timm:vit_tiny_patch16_224@blocks.1?weights={path}&size=32&pool=cls")
    with torch.no_grad():
        h = ref.norm_pre(ref._pos_embed(ref.patch_embed(x)))
        h = ref.blocks[1](ref.blocks[0](h))
    m_out = mid.forward(x)
    assert mid.layer == "blocks.1" and not mid.has_head and m_out.logits is None
    torch.testing.assert_close(m_out.features, h[:, 0], rtol=1e-5, atol=1e-5)
    assert mid.num_features == 192


def test_timm_random_init_is_seeded(image_items) -> None:
    rng_state = torch.random.get_rng_state()
    a = load_checkpoint("timm:resnet18?init=random&seed=3")
    b = load_checkpoint("timm:resnet18?init=random&seed=3")
    c = load_checkpoint("timm:resnet18?init=random&seed=4")
    assert torch.equal(torch.random.get_rng_state(), rng_state)  # caller's RNG untouched
    assert a.weights_fingerprint() == b.weights_fingerprint() != c.weights_fingerprint()
    assert a.card["weights"] == "random-init (seed 3)" and a.card["num_source_classes"] == 1000


def test_timm_hf_cache_entry_is_used(timm_resnet, tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants as hf_constants

    path, _ = timm_resnet
    repo = tmp_path / "models--timm--resnet18.a1_in1k"
    snap = repo / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    shutil.copy(path, snap / "model.safetensors")
    snap.rename(repo / "snapshots" / ("0123abcd" * 5))
    (repo / "refs" / "main").write_text("0123abcd" * 5)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))
    ckpt = load_checkpoint("timm:resnet18.a1_in1k")  # offline (the tests' default): the cache entry
    assert ckpt.card["weights"] == "timm/resnet18.a1_in1k@" + "0123abcd" * 5
    assert ckpt.card["revision"] == "0123abcd" * 5 and ckpt.card["source_dataset"] == "ImageNet-1k"
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(CheckpointError, match=r"timm:resnet18.a1_in1k is not in the local"):
        load_checkpoint("timm:resnet18.a1_in1k")


def test_timm_bad_inputs(timm_resnet, tmp_path) -> None:
    path, _ = timm_resnet
    with pytest.raises(CheckpointError, match=r"unknown timm architecture 'resnet181'.*'resnet18'"):
        load_checkpoint("timm:resnet181?init=random")
    with pytest.raises(
        CheckpointError, match=r"do not fit architecture timm:resnet34: \d+ missing, 0 unexpected"
    ):
        load_checkpoint(f"timm:resnet34?weights={path}")
    with pytest.raises(
        CheckpointError, match=r"unknown layer 'layer5'.*'layer\d'.*Valid layers \(\d+\): conv1, bn1"
    ):
        load_checkpoint(f"timm:resnet18@layer5?weights={path}")
    with pytest.raises(CheckpointError, match="weights file not found"):
        load_checkpoint(f"timm:resnet18?weights={tmp_path / 'nope.safetensors'}")
    with pytest.raises(CheckpointError, match="either weights=PATH or init=random"):
        load_checkpoint(f"timm:resnet18?weights={path}&init=random")


# -- torchvision ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tv_resnet(tmp_path_factory) -> tuple[str, torch.nn.Module]:
    torch.manual_seed(2)
    model = torchvision.models.resnet18(num_classes=10).eval()
    path = tmp_path_factory.mktemp("tv") / "resnet18.pt"
    torch.save(model.state_dict(), path)  # a tensors-only pickle: loads with weights_only=True
    return str(path), model


def test_torchvision_resnet_matches_manual_forward(tv_resnet, image_items) -> None:
    path, ref = tv_resnet
    ckpt = load_checkpoint(f"torchvision:resnet18?weights={path}&size=32")
    p = ckpt.preprocessing
    assert (p.image_size, p.resize_size, p.interpolation) == (32, round(32 * 256 / 224), "bilinear")
    x = ckpt.prepare(image_items)
    out = ckpt.forward(x)
    assert out.features.shape == (3, ckpt.num_features) == (3, 512) and out.logits.shape == (3, 10)
    assert ckpt.card["num_source_classes"] == 10 and "source_accuracy" not in ckpt.card
    with torch.no_grad():
        h = ref.maxpool(ref.relu(ref.bn1(ref.conv1(x))))
        h = ref.layer4(ref.layer3(ref.layer2(ref.layer1(h))))
        manual = torch.flatten(ref.avgpool(h), 1)  # the input of ref.fc, by hand
    torch.testing.assert_close(out.features, manual, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.logits, ref.fc(manual), rtol=1e-5, atol=1e-5)
    layer = load_checkpoint(f"torchvision:resnet18@layer3?weights={path}&size=32").forward(x)
    torch.testing.assert_close(
        layer.features,
        ref.layer3(ref.layer2(ref.layer1(ref.maxpool(ref.relu(ref.bn1(ref.conv1(x))))))).mean((2, 3)),
        rtol=1e-5,
        atol=1e-5,
    )
    assert layer.logits is None


def test_torchvision_mobilenet_penultimate_is_last_linear_input(tmp_path, image_items) -> None:
    torch.manual_seed(3)
    ref = torchvision.models.mobilenet_v3_small(num_classes=6).eval()
    path = tmp_path / "mnv3.safetensors"
    save_file(ref.state_dict(), str(path))
    ckpt = load_checkpoint(f"torchvision:mobilenet_v3_small?weights={path}&size=32")
    x = ckpt.prepare(image_items)
    out = ckpt.forward(x)
    with torch.no_grad():
        pooled = torch.flatten(ref.avgpool(ref.features(x)), 1)
        manual = ref.classifier[:-1](pooled)  # Linear(576, 1024) + Hardswish + Dropout(eval)
    assert out.features.shape == (3, 1024) == (3, ckpt.num_features) and out.logits.shape == (3, 6)
    torch.testing.assert_close(out.features, manual, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.logits, ref(x), rtol=1e-5, atol=1e-5)
    fp = ckpt.weights_fingerprint()
    sd = ref.state_dict()
    sd["classifier.3.bias"] = sd["classifier.3.bias"] + 1
    save_file(sd, str(path))
    assert load_checkpoint(f"torchvision:mobilenet_v3_small?weights={path}").weights_fingerprint() != fp


def test_torchvision_hub_cache_gives_card_accuracy(tv_resnet, tmp_path, monkeypatch) -> None:
    torch.manual_seed(4)
    (tmp_path / "checkpoints").mkdir()
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "checkpoints" / "resnet18-f37072fd.pth")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    ckpt = load_checkpoint("torchvision:resnet18")
    assert ckpt.card["source_accuracy"] == pytest.approx(69.758)
    assert ckpt.card["source_dataset"] == "ImageNet-1k" and ckpt.card["num_source_classes"] == 1000
    assert ckpt.preprocessing.image_size == 224 and ckpt.preprocessing.resize_size == 256
    with pytest.raises(CheckpointError, match=r"resnet34-b627a593.pth' is not in .*hub access is off"):
        load_checkpoint("torchvision:resnet34")


def test_torchvision_bad_inputs(tv_resnet, tmp_path) -> None:
    path, ref = tv_resnet
    with pytest.raises(CheckpointError, match=r"unknown torchvision .* 'resnet181'.*'resnet18'"):
        load_checkpoint("torchvision:resnet181?init=random")
    sd = ref.state_dict()
    sd["conv1.weight"] = torch.zeros(64, 3, 5, 5)
    sd["extra.weight"] = torch.zeros(1)
    del sd["layer1.0.bn1.bias"]
    bad = tmp_path / "bad.safetensors"
    save_file(sd, str(bad))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(f"torchvision:resnet18?weights={bad}")
    msg = str(info.value)
    assert "1 missing, 1 unexpected, 1 shape-mismatched keys" in msg and "\n" not in msg
    assert "layer1.0.bn1.bias" in msg and "extra.weight" in msg and "conv1.weight (file [64, 3, 5, 5]" in msg
    with pytest.raises(CheckpointError, match=r"unknown weights tag 'IMAGENET1K_V3'.*IMAGENET1K_V1"):
        load_checkpoint(f"torchvision:resnet18?weights={path}&tag=IMAGENET1K_V3")


def test_device_argument(tv_resnet) -> None:
    path, _ = tv_resnet
    if torch.cuda.is_available():
        ckpt = load_checkpoint(f"torchvision:resnet18?weights={path}", device="cuda")
        assert ckpt.device.type == "cuda" and next(ckpt.module.parameters()).is_cuda
    else:
        with pytest.raises(CheckpointError, match=r"cannot move .* to device 'cuda'"):
            load_checkpoint(f"torchvision:resnet18?weights={path}", device="cuda")


def test_environment_stays_offline() -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # set by tests/conftest.py and .ci/run, not by ckptrank


def test_importing_ckptrank_does_not_switch_the_hub_off() -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    code = "import os, ckptrank.adapters; print(os.environ.get('HF_HUB_OFFLINE'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"
