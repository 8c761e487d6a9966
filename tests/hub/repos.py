"""Tiny real model repositories for the loopback hub: built with each library, saved to folders."""

from __future__ import annotations

import json
from pathlib import Path

import torch

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "in", "park", "today", "hello", "car", "stock"]
#: Where the malicious repositories' code would leave its mark if it ever ran.
MARKER_NAME = "remote-code-ran.txt"


def _quiet_save(obj: object, path: Path) -> None:
    from ckptrank.adapters.hf_source import quiet_transformers

    with quiet_transformers():
        obj.save_pretrained(path)  # type: ignore[attr-defined]


def tiny_bert(folder: Path, *, seed: int = 0) -> Path:
    """A 2-layer, 16-wide BertModel with a word-level vocabulary (safetensors weights)."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(folder)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=5 + len(WORDS),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    _quiet_save(BertModel(config).eval(), folder)
    return folder


def tiny_vit(folder: Path) -> Path:
    """A 2-layer ViTForImageClassification on 32-px images with 5 classes, plus its processor."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(1)
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=5,
    )
    _quiet_save(ViTForImageClassification(config).eval(), folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def tiny_st(folder: Path, bert: Path) -> Path:
    """A sentence-transformers model (tiny BERT + mean pooling) saved as a folder."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules

    from ckptrank.adapters.hf_source import quiet_transformers

    with quiet_transformers():
        word = modules.Transformer(str(bert), max_seq_length=32)
        pool = modules.Pooling(16, pooling_mode="mean")
        SentenceTransformer(modules=[word, pool], device="cpu").save(str(folder))
    return folder


def timm_test_resnet(folder: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """timm's ``test_resnet`` with seeded random weights as ``model.safetensors`` (a timm hub repo)."""
    import timm
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(5)
    model = timm.create_model("test_resnet", pretrained=False)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"architecture": "test_resnet", "num_classes": 1000}))
    return folder, state


def remote_code_repo(folder: Path, marker: Path) -> Path:
    """A repository whose config maps its model to its own Python files, which would write ``marker``.

    Its ``model_type`` is unknown to transformers, so loading it needs that code.
    """
    bert = tiny_bert(folder)
    config = json.loads((bert / "config.json").read_text())
    config.update(
        model_type="evil-bert",
        architectures=["EvilModel"],
        auto_map={"AutoConfig": "configuration_evil.EvilConfig", "AutoModel": "modeling_evil.EvilModel"},
    )
    (folder / "config.json").write_text(json.dumps(config))
    payload = f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
    (folder / "configuration_evil.py").write_text(
        payload
        + "from transformers import BertConfig\nclass EvilConfig(BertConfig):\n    model_type = 'evil-bert'\n"
    )
    (folder / "modeling_evil.py").write_text(
        payload + "from transformers import BertModel\nclass EvilModel(BertModel):\n    pass\n"
    )
    return folder


def pickled_weights_repo(folder: Path, *, malicious: Path | None = None) -> Path:
    """A tiny BERT whose only weights are ``pytorch_model.bin``: plain tensors, or, with
    ``malicious``, a pickle that would write that marker when unpickled."""
    bert = tiny_bert(folder, seed=3)
    from safetensors.torch import load_file

    state = load_file(str(bert / "model.safetensors"))
    (bert / "model.safetensors").unlink()
    if malicious is None:
        torch.save(state, bert / "pytorch_model.bin")
    else:
        torch.save(_Exploit(malicious), bert / "pytorch_model.bin")
    return folder


class _Exploit:
    """Unpickling this runs ``pathlib.Path(marker).write_text('ran')``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        import builtins

        code = f"__import__('pathlib').Path({self.marker!r}).write_text('ran')"
        return (builtins.exec, (code,))
