"""Never unpickle by default: payload pickles are refused before they run; corrupt files fail cleanly."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from ckptrank.adapters import CheckpointError, UntrustedCheckpointError, load_checkpoint


class Payload:
    """Unpickling this object runs ``touch MARKER`` (a stand-in for arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def evil(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"conv1.weight": torch.zeros(1), "payload": Payload(marker)}, path)
    assert b"system" in path.read_bytes()  # the payload really is in the file
    return path, marker


def _refused(spec: str, marker: Path) -> str:
    with pytest.raises(UntrustedCheckpointError) as info:
        load_checkpoint(spec)
    assert not marker.exists(), "the pickle payload ran"
    message = str(info.value)
    assert "\n" not in message and "trust_checkpoint=True" in message
    return message


def test_file_source_refuses_payload_pickle(evil) -> None:
    path, marker = evil
    message = _refused(f"file:{path}", marker)
    assert "system" in message and str(path) in message
    _refused(f"file:{path}?arch=timm:resnet18", marker)


@pytest.mark.parametrize("template", ["torchvision:resnet18?weights={}", "timm:resnet18?weights={}"])
def test_weights_option_refuses_payload_pickle(evil, template: str) -> None:
    path, marker = evil
    _refused(template.format(path), marker)


def test_legacy_and_plain_pickles_are_refused(tmp_path) -> None:
    marker = tmp_path / "pwned"
    legacy = tmp_path / "legacy.pth"
    torch.save({"w": torch.zeros(1), "p": Payload(marker)}, legacy, _use_new_zipfile_serialization=False)
    _refused(f"file:{legacy}", marker)
    plain = tmp_path / "plain.bin"
    plain.write_bytes(pickle.dumps({"w": Payload(marker)}))
    _refused(f"file:{plain}", marker)


def test_a_payload_in_py_weights_is_refused(evil, tmp_path) -> None:
    path, marker = evil
    (tmp_path / "m.py").write_text("from torch import nn\ndef build():\n    return nn.Linear(2, 2)\n")
    _refused(f"py:{tmp_path / 'm.py'}:build?weights={path}", marker)


def test_trusted_full_pickle_of_a_module_loads(tmp_path) -> None:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
    path = tmp_path / "full.pt"
    torch.save(module, path)
    message = _refused(f"file:{path}", tmp_path / "never")
    assert "Sequential" in message
    ckpt = load_checkpoint(f"file:{path}?size=16", trust_checkpoint=True)
    x = torch.randn(2, 3, 16, 16)
    out = ckpt.forward(x)
    assert ckpt.has_head and out.features.shape == (2, 4) and out.logits.shape == (2, 2)
    with torch.no_grad():
        torch.testing.assert_close(out.features, module[:3](x), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(out.logits, module(x), rtol=1e-6, atol=1e-6)


def test_corrupt_and_truncated_files(tmp_path) -> None:
    good = {"fc.weight": torch.randn(4, 3), "fc.bias": torch.randn(4)}
    st = tmp_path / "good.safetensors"
    save_file(good, str(st))
    data = st.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    pt = tmp_path / "good.pt"
    torch.save(good, pt)
    data = pt.read_bytes()
    cut_pt = tmp_path / "cut.pt"
    cut_pt.write_bytes(data[: len(data) // 2])
    junk = tmp_path / "junk.pth"
    junk.write_bytes(os.urandom(64))
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    onnx = tmp_path / "bad.onnx"
    onnx.write_bytes(b"not a protobuf")
    for path in (cut, cut_pt, junk, empty):
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(f"torchvision:resnet18?weights={path}")
        assert str(path) in str(info.value) and "\n" not in str(info.value)
        assert not isinstance(info.value, UntrustedCheckpointError)
    with pytest.raises(CheckpointError, match=r"cannot load ONNX file .*bad.onnx"):
        load_checkpoint(f"file:{onnx}")
    with pytest.raises(CheckpointError, match=r"safetensors file .*cut\.safetensors.*corrupt or truncated"):
        load_checkpoint(f"file:{cut}?arch=timm:resnet18")


def test_non_tensor_contents_are_reported(tmp_path) -> None:
    path = tmp_path / "meta.pt"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(CheckpointError, match=r"holds no tensors \(top-level keys: epoch, lr\)"):
        load_checkpoint(f"file:{path}?arch=timm:resnet18")
