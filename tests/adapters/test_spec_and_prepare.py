"""Spec parsing, the source registry, and the image/text preparers (no model is loaded)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from ckptrank.adapters import (
    CheckpointError,
    MissingDependencyError,
    Preprocessing,
    list_builtin_checkpoints,
    list_sources,
    load_checkpoint,
)
from ckptrank.adapters._prepare import ImagePreparer
from ckptrank.adapters._source import parse_spec
from ckptrank.adapters._torch import state_dict_fingerprint

BUILTINS = list_builtin_checkpoints()


# -- parsing -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "prefix", "name", "layer", "options"),
    [
        ("timm:resnet18", "timm", "resnet18", None, {}),
        ("timm:resnet18.a1_in1k@layer3", "timm", "resnet18.a1_in1k", "layer3", {}),
        (
            "timm:vit_tiny_patch16_224?weights=/a/b+c.safetensors&size=32",
            "timm",
            "vit_tiny_patch16_224",
            None,
            {"weights": "/a/b+c.safetensors", "size": "32"},
        ),
        (
            "torchvision:resnet18@layer4.1?weights=%2Fx%20y.pt",
            "torchvision",
            "resnet18",
            "layer4.1",
            {"weights": "/x y.pt"},
        ),
        ("hf:org/name@main@encoder.layer.0?pool=cls", "hf", "org/name", "encoder.layer.0", {"pool": "cls"}),
        ("py:/tmp/my@dir/m.py:build", "py", "/tmp/my@dir/m.py:build", None, {}),
        ("efficientnet-lite0", "builtin", "efficientnet-lite0", None, {}),
        (
            "efficientnet-lite0@_blocks.3?size=224",
            "builtin",
            "efficientnet-lite0",
            "_blocks.3",
            {"size": "224"},
        ),
        ("builtin:glove-6b-50d", "builtin", "glove-6b-50d", None, {}),
    ],
)
def test_parse_spec(spec: str, prefix: str, name: str, layer: str | None, options: dict) -> None:
    parsed = parse_spec(spec, BUILTINS)
    assert (parsed.prefix, parsed.name, parsed.layer, dict(parsed.options)) == (prefix, name, layer, options)


@pytest.mark.parametrize(
    ("spec", "name", "revision", "layer"),
    [
        ("hf:org/name", "org/name", None, None),
        ("hf:org/name@v1.0", "org/name", "v1.0", None),
        ("st:org/name@" + "a" * 40, "org/name", "a" * 40, None),
        ("hf:org/name@main@encoder.layer.3", "org/name", "main", "encoder.layer.3"),
        ("hf:org/name?revision=dev", "org/name", "dev", None),
        ("hf:bert-base-uncased@refs/pr/1", "bert-base-uncased", "refs/pr/1", None),
    ],
)
def test_hub_specs_read_revision_then_layer(spec: str, name: str, revision: str | None, layer: str | None):
    parsed = parse_spec(spec, BUILTINS)
    assert (parsed.name, parsed.revision, parsed.layer) == (name, revision, layer)
    assert "revision" not in parsed.options


def test_hub_spec_errors() -> None:
    with pytest.raises(CheckpointError, match=r"too many '@'"):
        parse_spec("hf:org/name@a@b@c", BUILTINS)
    with pytest.raises(CheckpointError, match=r"gives the revision twice"):
        parse_spec("hf:org/name@v1?revision=v2", BUILTINS)
    with pytest.raises(CheckpointError, match=r"empty revision or layer.*hf:org/name@main@LAYER"):
        parse_spec("hf:org/name@@encoder", BUILTINS)


def test_local_folders_keep_at_layer(tmp_path) -> None:
    (tmp_path / "hf").mkdir()
    parsed = parse_spec(f"hf:{tmp_path / 'hf'}@encoder.layer.1", BUILTINS)
    assert (parsed.name, parsed.layer, parsed.revision) == (str(tmp_path / "hf"), "encoder.layer.1", None)


def test_bare_paths_resolve_to_file_st_or_hf(tmp_path) -> None:
    f = tmp_path / "m.onnx"
    f.write_bytes(b"x")
    (tmp_path / "st").mkdir()
    (tmp_path / "st" / "modules.json").write_text("[]")
    (tmp_path / "hf").mkdir()
    assert parse_spec(str(f), BUILTINS).prefix == "file"
    assert parse_spec(str(tmp_path / "st"), BUILTINS).prefix == "st"
    assert parse_spec(str(tmp_path / "hf"), BUILTINS).prefix == "hf"


def test_unknown_prefix_lists_prefixes_and_closest() -> None:
    with pytest.raises(
        CheckpointError, match=r"unknown checkpoint source 'tim'.*Did you mean 'timm'\?.*torchvision:"
    ):
        load_checkpoint("tim:resnet18")


def test_unknown_builtin_lists_names_and_closest() -> None:
    with pytest.raises(
        CheckpointError, match=r"'efficientnet-lite3'.*Did you mean 'efficientnet-lite\d'.*glove-6b-50d"
    ):
        load_checkpoint("efficientnet-lite3")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "non-empty"),
        ("timm:", "empty checkpoint name"),
        ("timm:resnet18@", "empty layer name"),
        ("timm:resnet18?weights", "bad option"),
        ("timm:resnet18?size=1&size=2", "given twice"),
        ("timm:resnet18?weigths=/x", r"unknown option 'weigths'.*Did you mean 'weights'"),
        ("glove-6b-50d?size=3", r"unknown option 'size'.*Valid options: none"),
        ("efficientnet-lite0?size=big", "must be an integer"),
    ],
)
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(spec)
    assert "\n" not in str(info.value)


def test_list_sources() -> None:
    infos = {s.prefix: s for s in list_sources()}
    assert set(infos) == {"builtin", "file", "hf", "py", "st", "timm", "torchvision", "zoo"}
    assert "weights" in infos["timm"].options and infos["timm"].requires == "timm"
    assert BUILTINS == [
        "efficientnet-lite0",
        "efficientnet-lite1",
        "efficientnet-lite2",
        "all-minilm-l6-v2",
        "all-mpnet-base-v2",
        "glove-6b-50d",
    ]


def test_missing_extra_names_the_pip_package(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` raise ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install timm$") as info:
        load_checkpoint("timm:resnet18?init=random")
    assert isinstance(info.value, ImportError) and isinstance(info.value, CheckpointError)


def _fixed_state_dict() -> dict[str, torch.Tensor]:
    return {
        "w": torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7,
        "b": torch.tensor([1, 2], dtype=torch.int64),
    }


def test_import_is_light_and_fingerprint_is_stable_across_processes() -> None:
    code = (
        "import os, sys, torch, ckptrank.adapters\n"
        "heavy = [m for m in ('timm', 'torchvision', 'transformers', 'sentence_transformers', 'onnxruntime') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert 'HF_HUB_OFFLINE' not in os.environ and 'TRANSFORMERS_OFFLINE' not in os.environ\n"
        "from ckptrank.adapters._torch import state_dict_fingerprint\n"
        "sd = {'w': torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7, 'b': torch.tensor([1, 2])}\n"
        "print(state_dict_fingerprint(sd))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["PYTHONHASHSEED"] = "12345"
    done = subprocess.run(
        [sys.executable, "-c", code], check=True, env=env, timeout=300, capture_output=True, text=True
    )
    assert done.stdout.strip() == state_dict_fingerprint(_fixed_state_dict())


# -- fingerprint -------------------------------------------------------------------------------
def _fingerprint_by_definition(sd: dict[str, torch.Tensor]) -> str:
    import hashlib

    h = hashlib.sha256()
    for name in sorted(sd):
        t = sd[name].contiguous()
        h.update(f"{name}\0{str(t.dtype).split('.')[1]}\0{tuple(t.shape)}\0".encode())
        h.update(bytes(t.numpy().tobytes()))
    return h.hexdigest()


def test_state_dict_fingerprint_definition_and_sensitivity() -> None:
    g = torch.Generator().manual_seed(0)
    sd = {
        "b.weight": torch.randn(3, 4, generator=g),
        "a.bias": torch.randn(3, generator=g),
        "n": torch.tensor(7, dtype=torch.int64),
    }
    ref = _fingerprint_by_definition(sd)
    assert state_dict_fingerprint(sd) == ref
    assert state_dict_fingerprint(dict(reversed(list(sd.items())))) == ref  # order of the dict is irrelevant
    changed = {**sd, "a.bias": sd["a.bias"].clone()}
    changed["a.bias"][1] += 1e-6
    assert state_dict_fingerprint(changed) != ref
    assert state_dict_fingerprint({**sd, "a.bias": sd["a.bias"].double()}) != ref  # dtype counts
    assert state_dict_fingerprint({**sd, "b.weight": sd["b.weight"].reshape(4, 3)}) != ref  # shape counts
    assert state_dict_fingerprint({**sd, "bf": torch.ones(2, dtype=torch.bfloat16)})  # any dtype hashes


# -- image preparer --------------------------------------------------------------------------
def test_image_preparer_equals_torchvision_transforms(image_items) -> None:
    from PIL import Image
    from torchvision import transforms

    prep = Preprocessing(
        modality="image",
        image_size=24,
        resize_size=27,
        mean=(0.1, 0.2, 0.3),
        std=(0.5, 0.6, 0.7),
        interpolation="bicubic",
    )
    ours = ImagePreparer(prep)(image_items)
    tf = transforms.Compose(
        [
            transforms.Resize(27, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(24),
            transforms.ToTensor(),
            transforms.Normalize(prep.mean, prep.std),
        ]
    )
    pils = [
        Image.open(image_items[0]).convert("RGB"),
        image_items[1],
        Image.fromarray(image_items[2]).convert("RGB"),
    ]
    ref = torch.stack([tf(p) for p in pils])
    assert ours.shape == (3, 3, 24, 24) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)


def test_image_preparer_grey_is_replicated_and_square_mode(image_items) -> None:
    grey = image_items[2]
    prep = Preprocessing(modality="image", image_size=28, resize_size=28, mean=(0, 0, 0), std=(1, 1, 1))
    x = ImagePreparer(prep)([grey, grey[:, :, None], np.repeat(grey[:, :, None], 3, axis=2)])
    torch.testing.assert_close(x[0, 0], torch.from_numpy(grey).float() / 255, rtol=0, atol=1e-7)
    torch.testing.assert_close(x[0], x[1], rtol=0, atol=0)
    torch.testing.assert_close(x[0], x[2], rtol=0, atol=0)
    assert torch.equal(x[0, 0], x[0, 2])
    square = Preprocessing(modality="image", image_size=16, resize_size=16, extra={"resize_mode": "square"})
    y = ImagePreparer(square)([np.zeros((10, 40, 3), np.uint8)])
    assert y.shape == (1, 3, 16, 16)


def test_image_preparer_is_picklable_and_rejects_bad_items(tmp_path) -> None:
    prep = ImagePreparer(Preprocessing(modality="image", image_size=8))
    again = pickle.loads(pickle.dumps(prep))
    img = np.full((8, 8, 3), 200, np.uint8)
    torch.testing.assert_close(again([img]), prep([img]))
    with pytest.raises(ValueError, match=r"item 1 is a float64 array of shape \(8, 8\)"):
        prep([img, np.zeros((8, 8))])
    with pytest.raises(ValueError, match="item 0 is a int"):
        prep([3])
    with pytest.raises(ValueError, match="file not found"):
        prep([str(tmp_path / "missing.png")])
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read"):
        prep([tmp_path / "bad.png"])
