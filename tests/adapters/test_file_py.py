"""``file:`` (safetensors/torch state dicts + arch, TorchScript, ONNX) and ``py:`` sources."""

from __future__ import annotations

import json
import textwrap
import warnings

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from ckptrank.adapters import CheckpointError, UntrustedCheckpointError, load_checkpoint


class TwoHead(nn.Module):
    """A small CNN returning (pooled features, logits)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = torch.relu(self.conv(x)).mean((2, 3))
        return f, self.fc(f)


class FeaturesOnly(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)  # 4-D: globally average-pooled by the adapter


@pytest.fixture(scope="module")
def two_head() -> TwoHead:
    torch.manual_seed(0)
    return TwoHead().eval()


def test_safetensors_with_arch_option_and_sidecar(tmp_path, image_items) -> None:
    import torchvision

    torch.manual_seed(5)
    ref = torchvision.models.resnet18(num_classes=3).eval()
    path = tmp_path / "model.safetensors"
    save_file(ref.state_dict(), str(path))
    ckpt = load_checkpoint(f"file:{path}?arch=torchvision:resnet18&size=32")
    x = ckpt.prepare(image_items)
    out = ckpt.forward(x)
    assert (
        ckpt.name == "file:model.safetensors"
        and out.logits.shape == (3, 3)
        and out.features.shape == (3, 512)
    )
    with torch.no_grad():
        torch.testing.assert_close(out.logits, ref(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(
            out.logits, out.features @ ref.fc.weight.T + ref.fc.bias, rtol=1e-5, atol=1e-5
        )
    with pytest.raises(CheckpointError, match=r"holds a state dict \(\d+ tensors\) but no architecture"):
        load_checkpoint(f"file:{path}")
    (tmp_path / "model.safetensors.json").write_text(
        json.dumps({"arch": "torchvision:resnet18", "card": {"source_dataset": "my-data"}})
    )
    carded = load_checkpoint(str(path))  # a bare existing path is read as file:
    assert carded.card["source_dataset"] == "my-data" and carded.card["num_source_classes"] == 3
    assert carded.weights_fingerprint() == ckpt.weights_fingerprint()


def test_torch_state_dict_file_with_timm_arch_nested_and_dataparallel(tmp_path, image_items) -> None:
    import timm

    torch.manual_seed(6)
    ref = timm.create_model("resnet18", pretrained=False, num_classes=0).eval()  # headless
    nested = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in ref.state_dict().items()}}
    path = tmp_path / "ckpt.pth"
    torch.save(nested, path)
    ckpt = load_checkpoint(f"file:{path}?arch=timm:resnet18&size=32")
    x = ckpt.prepare(image_items)
    out = ckpt.forward(x)
    assert not ckpt.has_head and out.logits is None and ckpt.card["num_source_classes"] == 0
    with torch.no_grad():
        torch.testing.assert_close(out.features, ref(x), rtol=1e-5, atol=1e-5)


def test_torchscript_needs_trust_and_splits_outputs(tmp_path, two_head, image_items) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.trace is deprecated upstream
        traced = torch.jit.trace(two_head, torch.randn(1, 3, 32, 32))
        plain = torch.jit.trace(FeaturesOnly().eval(), torch.randn(1, 3, 32, 32))
        path, ts = tmp_path / "model.pt", tmp_path / "features.ts"
        torch.jit.save(traced, str(path))
        torch.jit.save(plain, str(ts))
    with pytest.raises(UntrustedCheckpointError, match=r"TorchScript .*trust_checkpoint=True"):
        load_checkpoint(f"file:{path}")
    ckpt = load_checkpoint(f"file:{path}?size=32", trust_checkpoint=True)
    x = ckpt.prepare(image_items)
    out = ckpt.forward(x)
    with torch.no_grad():
        feats, logits = two_head(x)
    assert ckpt.has_head and ckpt.num_features == 8 and ckpt.card["num_source_classes"] == 5
    torch.testing.assert_close(out.features, feats, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.logits, logits, rtol=1e-5, atol=1e-5)
    with pytest.raises(CheckpointError, match="do not support forward hooks"):
        load_checkpoint(f"file:{path}@fc?size=32", trust_checkpoint=True)
    only = load_checkpoint(f"file:{ts}?size=32", trust_checkpoint=True)
    o = only.forward(x)
    assert not only.has_head and o.logits is None and o.features.shape == (3, 6)
    with torch.no_grad():
        torch.testing.assert_close(o.features, plain(x).mean((2, 3)), rtol=1e-5, atol=1e-5)
    assert (
        only.weights_fingerprint()
        == load_checkpoint(f"file:{ts}", trust_checkpoint=True).weights_fingerprint()
    )


def test_onnx_outputs(tmp_path, two_head, image_items) -> None:
    path = tmp_path / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            two_head,
            (torch.randn(1, 3, 32, 32),),
            str(path),
            input_names=["pixels"],
            output_names=["features", "logits"],
            dynamic_axes={"pixels": {0: "n"}, "features": {0: "n"}, "logits": {0: "n"}},
            dynamo=False,
        )
    ckpt = load_checkpoint(f"file:{path}")
    assert ckpt.preprocessing.image_size == 32  # the graph's static input size
    x = ckpt.prepare(image_items)
    out = ckpt.forward(x)
    with torch.no_grad():
        feats, logits = two_head(x)
    assert ckpt.has_head and ckpt.num_features == 8 and ckpt.card["num_source_classes"] == 5
    torch.testing.assert_close(out.features, feats, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.logits, logits, rtol=1e-4, atol=1e-5)
    assert ckpt.num_parameters() == sum(p.numel() for p in two_head.parameters())
    picked = load_checkpoint(f"file:{path}?output=logits")
    p_out = picked.forward(x)
    assert not picked.has_head and p_out.logits is None
    torch.testing.assert_close(p_out.features, logits, rtol=1e-4, atol=1e-5)
    with pytest.raises(CheckpointError, match=r"ONNX output 'logit' not in .*Did you mean 'logits'"):
        load_checkpoint(f"file:{path}?output=logit")
    fp = ckpt.weights_fingerprint()
    assert fp == load_checkpoint(f"file:{path}").weights_fingerprint()
    # A fixed batch size of 1 is run item by item.
    fixed = tmp_path / "fixed.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(FeaturesOnly().eval(), (torch.randn(1, 3, 16, 16),), str(fixed), dynamo=False)
    f_out = load_checkpoint(f"file:{fixed}").forward(torch.randn(3, 3, 16, 16))
    assert f_out.features.shape == (3, 6)
    assert load_checkpoint(f"file:{fixed}").weights_fingerprint() != fp


PY_MODULE = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.hidden = nn.Linear(4, 6)
        self.head = nn.Linear(6, 3)
        self.preprocessing = {"image_size": 24, "resize_size": 24, "mean": [0.5, 0.5, 0.5], "std": [0.25] * 3}

    def forward(self, x):
        f = torch.relu(self.hidden(self.conv(x).mean((2, 3))))
        return self.head(f)


def build():
    torch.manual_seed(0)
    return Net()


def not_a_module():
    return 3
"""


def test_py_constructor(tmp_path, image_items) -> None:
    path = tmp_path / "zoo.py"
    path.write_text(textwrap.dedent(PY_MODULE))
    ckpt = load_checkpoint(f"py:{path}:build")
    p = ckpt.preprocessing
    assert (p.image_size, p.mean, p.std) == (24, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    x = ckpt.prepare(image_items)
    out = ckpt.forward(x)
    net = ckpt.module
    with torch.no_grad():
        manual = torch.relu(net.hidden(net.conv(x).mean((2, 3))))  # input of the last Linear
    assert (
        ckpt.has_head
        and out.features.shape == (3, 6) == (3, ckpt.num_features)
        and out.logits.shape == (3, 3)
    )
    torch.testing.assert_close(out.features, manual, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(out.logits, net.head(manual), rtol=1e-6, atol=1e-6)
    # Weights from a file replace the constructor's.
    sd = {k: torch.randn_like(v) for k, v in net.state_dict().items()}
    wpath = tmp_path / "w.safetensors"
    save_file(sd, str(wpath))
    loaded = load_checkpoint(f"py:{path}:build?weights={wpath}")
    torch.testing.assert_close(loaded.module.head.weight, sd["head.weight"])
    assert loaded.weights_fingerprint() != ckpt.weights_fingerprint()
    no_head = load_checkpoint(f"py:{path}:build?head=0")
    assert not no_head.has_head and no_head.forward(x).features.shape == (3, 3)
    layer = load_checkpoint(f"py:{path}:build@conv").forward(x)
    torch.testing.assert_close(layer.features, net.conv(x).mean((2, 3)), rtol=1e-6, atol=1e-6)
    assert layer.logits is None


TEXT_MODULE = """
import torch
from torch import nn


class BagOfChars(nn.Module):
    preprocessing = {"modality": "text", "max_length": 8}

    def __init__(self):
        super().__init__()
        self.embed = nn.EmbeddingBag(128, 4, mode="mean")

    def prepare(self, texts):
        ids = [[min(ord(c), 127) for c in t[:8]] or [0] for t in texts]
        width = max(len(r) for r in ids)
        return {"ids": torch.tensor([r + [0] * (width - len(r)) for r in ids])}

    def forward(self, ids):
        return self.embed(ids)


def build():
    torch.manual_seed(0)
    return BagOfChars()
"""


def test_py_text_module(tmp_path) -> None:
    path = tmp_path / "text_zoo.py"
    path.write_text(TEXT_MODULE)
    ckpt = load_checkpoint(f"py:{path}:build?modality=text")
    assert ckpt.modality == "text" and ckpt.preprocessing.max_length == 8 and not ckpt.has_head
    texts = ["abc", "hello world", ""]
    out = ckpt.forward(ckpt.prepare(texts))
    with torch.no_grad():
        expected = ckpt.module(**ckpt.module.prepare(texts))
    assert out.features.shape == (3, 4) and out.logits is None
    torch.testing.assert_close(out.features, expected)


def test_py_bad_inputs(tmp_path) -> None:
    path = tmp_path / "zoo.py"
    path.write_text(textwrap.dedent(PY_MODULE))
    with pytest.raises(CheckpointError, match=r"has no function 'biuld'.*Did you mean 'build'"):
        load_checkpoint(f"py:{path}:biuld")
    with pytest.raises(CheckpointError, match=r"returned a int, not a torch\.nn\.Module"):
        load_checkpoint(f"py:{path}:not_a_module")
    with pytest.raises(CheckpointError, match="cannot import module 'no_such_module_xyz'"):
        load_checkpoint("py:no_such_module_xyz:build")
    with pytest.raises(CheckpointError, match=r"write py:package\.module:function"):
        load_checkpoint("py:justaname")
    with pytest.raises(CheckpointError, match="Python file not found"):
        load_checkpoint(f"py:{tmp_path / 'missing.py'}:build")
    with pytest.raises(CheckpointError, match=r"do not fit architecture py:.*1 unexpected"):
        save_file(
            {
                "conv.weight": torch.zeros(4, 3, 3, 3),
                "conv.bias": torch.zeros(4),
                "hidden.weight": torch.zeros(6, 4),
                "hidden.bias": torch.zeros(6),
                "head.weight": torch.zeros(3, 6),
                "head.bias": torch.zeros(3),
                "x": torch.zeros(1),
            },
            str(tmp_path / "extra.safetensors"),
        )
        load_checkpoint(f"py:{path}:build?weights={tmp_path / 'extra.safetensors'}")
    assert py_module_import_name_is_stable(path)


def py_module_import_name_is_stable(path) -> bool:
    """Loading the same file twice reuses one module object (no duplicate imports)."""
    a = load_checkpoint(f"py:{path}:build").module
    b = load_checkpoint(f"py:{path}:build").module
    return type(a) is type(b)


def test_file_bad_inputs(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint file not found"):
        load_checkpoint(f"file:{tmp_path / 'nope.safetensors'}")
    odd = tmp_path / "model.xyz"
    odd.write_bytes(b"1")
    with pytest.raises(CheckpointError, match=r"unsupported checkpoint file type '.xyz'.*\.onnx"):
        load_checkpoint(f"file:{odd}")
    with pytest.raises(CheckpointError, match="use hf: or st: for model folders"):
        load_checkpoint(f"file:{tmp_path}")
    with pytest.raises(CheckpointError, match="must read timm:NAME or torchvision:NAME"):
        save_file({"w": torch.zeros(1)}, str(tmp_path / "w.safetensors"))
        load_checkpoint(f"file:{tmp_path / 'w.safetensors'}?arch=resnet18")


def test_py_preprocessing_options_and_the_default_is_stated(tmp_path) -> None:
    path = tmp_path / "m.py"
    path.write_text(
        "import torch\n"
        "def build():\n"
        "    nn = torch.nn\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())\n"
    )
    plain = load_checkpoint(f"py:{path}:build")
    assert plain.preprocessing.image_size == 224 and plain.preprocessing.mean == (0.485, 0.456, 0.406)
    assert any("no preprocessing declared" in note for note in plain.card["notes"])
    small = load_checkpoint(f"py:{path}:build?size=28&mean=0.5&std=0.25,0.25,0.25")
    prep = small.preprocessing
    assert (prep.image_size, prep.resize_size, prep.mean, prep.std) == (28, 32, (0.5,) * 3, (0.25,) * 3)
    assert "notes" not in small.card
    with pytest.raises(CheckpointError, match=r"std needs 1 or 3 numbers above 0, got '0'"):
        load_checkpoint(f"py:{path}:build?std=0")


def test_the_default_preprocessing_note_reaches_the_ranking(tmp_path) -> None:
    import ckptrank

    path = tmp_path / "m.py"
    path.write_text(
        "import torch\n"
        "def build():\n"
        "    nn = torch.nn\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())\n"
    )
    frame = ckptrank.rank(
        "builtin:digits",
        [f"py:{path}:build?size=16"],
        per_class=3,
        measures="logme",
        progress=False,
        cache_dir=tmp_path / "cache",
    )
    assert not any("no preprocessing declared" in n for n in frame.attrs["notes"])
    frame = ckptrank.rank(
        "builtin:digits",
        [f"py:{path}:build"],
        per_class=3,
        measures="logme",
        progress=False,
        cache_dir=tmp_path / "cache",
    )
    assert any("no preprocessing declared: images are resized to 224 px" in n for n in frame.attrs["notes"])
