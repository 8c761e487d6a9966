"""``num_parameters`` of ``MODEL@layer`` counts only the part of the network that computes the layer.

Each case builds a small real architecture offline (transformers / timm configs with random weights,
``py:`` modules, an ONNX export) and compares the count with an independent one: the sum of the
sizes of the named submodules that, by the architecture's definition, run before the layer's output.
"""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from ckptrank.adapters import CheckpointError, load_checkpoint
from ckptrank.adapters._torch import parameters_used

from .conftest import TEXTS


def _size(*modules: nn.Module | nn.Parameter) -> int:
    total = 0
    for m in modules:
        total += m.numel() if isinstance(m, nn.Parameter) else sum(p.numel() for p in m.parameters())
    return total


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory) -> Path:
    """A 4-layer BertModel (32 wide, pooler included) with a word-level vocabulary, saved as a folder."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from ckptrank.adapters.hf_source import quiet_transformers

    folder = tmp_path_factory.mktemp("bert4")
    words = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "in", "park", "today", "hello"]
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=5 + len(words),
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    with quiet_transformers():
        BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(folder)
        BertModel(config).eval().save_pretrained(folder)
    return folder


@pytest.mark.parametrize("layer", [0, 1, 3])
def test_bert_layer_counts_embeddings_and_layers_up_to_it(bert_folder, layer) -> None:
    from transformers import BertModel

    ref = BertModel.from_pretrained(bert_folder, local_files_only=True)
    expected = _size(ref.embeddings, *ref.encoder.layer[: layer + 1])
    ckpt = load_checkpoint(f"hf:{bert_folder}@encoder.layer.{layer}")
    assert ckpt.num_parameters() == expected
    assert ckpt.num_parameters() < _size(ref)  # later layers and the pooler are not run
    assert ckpt.card["num_parameters_scope"].startswith(f"up to layer encoder.layer.{layer} ")
    # The count does not disturb extraction: features are those of the layer.
    batch = ckpt.prepare(TEXTS)
    assert ckpt.forward(batch).features.shape == (3, 32)


def test_whole_checkpoint_count_and_scope_unchanged(bert_folder) -> None:
    from transformers import BertModel

    ref = BertModel.from_pretrained(bert_folder, local_files_only=True)
    ckpt = load_checkpoint(f"hf:{bert_folder}")
    assert ckpt.num_parameters() == _size(ref)  # pooler included: the whole checkpoint
    assert ckpt.card["num_parameters_scope"] == "whole checkpoint"


def test_timm_vit_block_counts_top_level_tokens_but_not_the_final_norm_or_head(tmp_path) -> None:
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    torch.manual_seed(1)
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, num_classes=4).eval()
    path = tmp_path / "vit.safetensors"
    save_file(ref.state_dict(), str(path))
    ckpt = load_checkpoint(f"timm:vit_tiny_patch16_224@blocks.1?weights={path}&size=32")
    # cls_token and pos_embed are parameters of the top-level module itself, read before block 0.
    expected = _size(ref.patch_embed, ref.cls_token, ref.pos_embed, ref.blocks[0], ref.blocks[1])
    assert ckpt.num_parameters() == expected
    assert expected < _size(ref) - _size(ref.head) - _size(ref.norm)


def test_timm_resnet_stage(tmp_path) -> None:
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    torch.manual_seed(0)
    ref = timm.create_model("resnet18", pretrained=False, num_classes=7).eval()
    path = tmp_path / "resnet18.safetensors"
    save_file(ref.state_dict(), str(path))
    ckpt = load_checkpoint(f"timm:resnet18@layer2?weights={path}&size=32")
    assert ckpt.num_parameters() == _size(ref.conv1, ref.bn1, ref.layer1, ref.layer2)


_PY_MODELS = textwrap.dedent(
    """
    import torch
    from torch import nn


    class Tied(nn.Module):
        # The same Linear runs twice (weights shared), then a head.
        preprocessing = {"image_size": 16, "resize_size": 16}

        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 3)
            self.shared = nn.Linear(4, 4)
            self.block = nn.Sequential(self.shared, nn.ReLU(), self.shared)
            self.after = nn.Linear(4, 4)
            self.head = nn.Linear(4, 3)

        def forward(self, x):
            h = self.stem(x).mean((2, 3))
            return self.head(self.after(self.block(h)))


    class LateParameter(nn.Module):
        # A parameter of the top-level module that is read only after the chosen layer.
        preprocessing = {"image_size": 16, "resize_size": 16}

        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 3)
            self.mid = nn.Linear(4, 5)
            self.scale = nn.Parameter(torch.ones(5))
            self.unused = nn.Linear(100, 100)

        def forward(self, x):
            return self.mid(self.stem(x).mean((2, 3))) * self.scale


    def tied():
        torch.manual_seed(0)
        return Tied()


    def late():
        torch.manual_seed(0)
        return LateParameter()
    """
)


@pytest.fixture(scope="module")
def py_models(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("py") / "models.py"
    path.write_text(_PY_MODELS)
    return path


def test_tied_weights_count_once(py_models) -> None:
    ckpt = load_checkpoint(f"py:{py_models}:tied@block")
    # stem (4*3*3*3 + 4) + shared (4*4 + 4) once; `after` and `head` run after the layer.
    assert ckpt.num_parameters() == (108 + 4) + (16 + 4)
    whole = load_checkpoint(f"py:{py_models}:tied")
    assert whole.num_parameters() == 112 + 20 + 20 + 15  # the shared Linear once


def test_unused_and_later_parameters_are_not_counted(py_models) -> None:
    ckpt = load_checkpoint(f"py:{py_models}:late@mid?head=0")
    assert ckpt.num_parameters() == (108 + 4) + (20 + 5)  # not `scale` (read after mid), not `unused`
    whole = load_checkpoint(f"py:{py_models}:late?head=0")
    assert whole.num_parameters() == 112 + 25 + 5 + 10100


def test_parameters_used_counts_operator_and_list_arguments() -> None:
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4, batch_first=True)
    bias = nn.Parameter(torch.zeros(4))
    holder = nn.Module()
    holder.lstm, holder.bias = lstm, bias
    never = nn.Linear(2, 2)
    holder.never = never

    def run() -> None:
        out, _ = lstm(torch.randn(2, 5, 3))
        _ = out + bias  # an operator on a parameter

    used = parameters_used(holder, run)
    assert sum(p.numel() for p in used) == _size(lstm) + 4
    assert not any(p is never.weight for p in used)


def test_layer_that_does_not_run_is_a_checkpoint_error(py_models) -> None:
    ckpt = load_checkpoint(f"py:{py_models}:late@unused?head=0")
    with pytest.raises(CheckpointError, match="did not run"):
        ckpt.num_parameters()


def test_onnx_output_counts_only_the_initializers_it_depends_on(tmp_path) -> None:
    pytest.importorskip("onnx")

    class TwoHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.fc = nn.Linear(8, 5)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            feats = self.conv(x).mean((2, 3))
            return feats, self.fc(feats)

    model = TwoHead().eval()
    path = tmp_path / "two.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.randn(1, 3, 16, 16),),
            str(path),
            input_names=["pixels"],
            output_names=["features", "logits"],
            dynamic_axes={"pixels": {0: "n"}, "features": {0: "n"}, "logits": {0: "n"}},
            dynamo=False,
        )
    whole = load_checkpoint(f"file:{path}")
    assert whole.num_parameters() == _size(model) and whole.card["num_parameters_scope"] == "whole checkpoint"
    cut = load_checkpoint(f"file:{path}@features")
    assert cut.num_parameters() == _size(model.conv)
    assert cut.card["num_parameters_scope"].startswith("up to output features ")
    assert load_checkpoint(f"file:{path}@logits").num_parameters() == _size(model)
