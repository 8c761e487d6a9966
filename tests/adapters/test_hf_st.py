"""``hf:`` and ``st:`` sources on tiny random transformers saved locally with ``save_pretrained``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ckptrank.adapters import CheckpointError, load_checkpoint

from .conftest import TEXTS

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "in", "park", "today", "hello", "car", "stock"]


def _quiet_save(obj, path: Path) -> None:
    from ckptrank.adapters.hf_source import quiet_transformers

    with quiet_transformers():
        obj.save_pretrained(path)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer, 16-wide BertModel with a word-level vocabulary, saved as a folder."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("bert")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(folder)
    torch.manual_seed(0)
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


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory) -> Path:
    """A 2-layer ViTForImageClassification on 32-px images with 5 classes, plus its image processor."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    folder = tmp_path_factory.mktemp("vit")
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


def _masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    total = torch.zeros(hidden.shape[0], hidden.shape[2])
    for i in range(hidden.shape[0]):
        rows = [hidden[i, t] for t in range(hidden.shape[1]) if mask[i, t] == 1]
        total[i] = torch.stack(rows).mean(0)
    return total


def test_hf_text_mean_pooled_last_hidden_state(tiny_bert) -> None:
    from transformers import AutoModel, AutoTokenizer

    ckpt = load_checkpoint(f"hf:{tiny_bert}")
    assert ckpt.modality == "text" and not ckpt.has_head and ckpt.num_features == 16
    assert ckpt.card["num_source_classes"] == 0 and ckpt.preprocessing.max_length == 64
    batch = ckpt.prepare(TEXTS)
    assert set(batch) >= {"input_ids", "attention_mask"}
    out = ckpt.forward(batch)
    assert out.features.shape == (3, 16) and out.logits is None
    ref = AutoModel.from_pretrained(tiny_bert, local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(tiny_bert, local_files_only=True)
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = ref(**enc).last_hidden_state
    torch.testing.assert_close(
        out.features, _masked_mean(hidden, enc["attention_mask"]), rtol=1e-5, atol=1e-5
    )
    cls = load_checkpoint(f"hf:{tiny_bert}?pool=cls&normalize=1").forward(batch).features
    torch.testing.assert_close(cls, torch.nn.functional.normalize(hidden[:, 0], dim=1), rtol=1e-5, atol=1e-5)
    pooler = load_checkpoint(f"hf:{tiny_bert}?pool=pooler").forward(batch).features
    with torch.no_grad():
        torch.testing.assert_close(pooler, ref(**enc).pooler_output, rtol=1e-5, atol=1e-5)
    # A layer's 3-D output is mean-pooled over the unmasked tokens.
    layer = load_checkpoint(f"hf:{tiny_bert}@encoder.layer.0").forward(batch)
    with torch.no_grad():
        h0 = ref(**enc, output_hidden_states=True).hidden_states[1]
    torch.testing.assert_close(layer.features, _masked_mean(h0, enc["attention_mask"]), rtol=1e-5, atol=1e-5)
    a = ckpt.weights_fingerprint()
    assert a == load_checkpoint(f"hf:{tiny_bert}").weights_fingerprint()
    assert ckpt.num_parameters() == sum(p.numel() for p in ref.parameters())


def test_hf_vision_classifier_head(tiny_vit, image_items) -> None:
    from transformers import ViTForImageClassification

    ckpt = load_checkpoint(f"hf:{tiny_vit}")
    p = ckpt.preprocessing
    assert ckpt.modality == "image" and ckpt.has_head and ckpt.card["num_source_classes"] == 5
    assert (p.image_size, p.resize_size, p.mean, p.extra["resize_mode"]) == (
        32,
        32,
        (0.5, 0.5, 0.5),
        "square",
    )
    x = ckpt.prepare(image_items)
    out = ckpt.forward(x)
    assert out.features.shape == (3, 16) == (3, ckpt.num_features) and out.logits.shape == (3, 5)
    ref = ViTForImageClassification.from_pretrained(tiny_vit, local_files_only=True).eval()
    with torch.no_grad():
        cls_token = ref.vit(pixel_values=x).last_hidden_state[:, 0]  # the classifier's input
        torch.testing.assert_close(out.features, cls_token, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out.logits, ref(pixel_values=x).logits, rtol=1e-5, atol=1e-5)
    headless = load_checkpoint(f"hf:{tiny_vit}?head=0")  # AutoModel: CLS token by default, no logits
    h_out = headless.forward(x)
    assert not headless.has_head and h_out.logits is None
    torch.testing.assert_close(h_out.features, cls_token, rtol=1e-5, atol=1e-5)
    # The pooler is absent from the checkpoint (random): tolerated, and kept out of the fingerprint.
    assert headless.weights_fingerprint() == load_checkpoint(f"hf:{tiny_vit}?head=0").weights_fingerprint()
    with pytest.raises(CheckpointError, match=r"1 missing|2 missing keys \(pooler"):
        load_checkpoint(f"hf:{tiny_vit}?head=0&pool=pooler")


def test_hf_image_preprocessing_close_to_hf_processor(tiny_vit, image_items) -> None:
    from transformers import AutoImageProcessor

    ours = load_checkpoint(f"hf:{tiny_vit}").prepare(image_items[1:2])
    theirs = AutoImageProcessor.from_pretrained(tiny_vit, local_files_only=True)(
        image_items[1:2], return_tensors="pt"
    )["pixel_values"]
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().mean() < 0.05  # both bilinear to 32x32; resampling kernels differ slightly


def test_hf_bad_inputs(tiny_bert, tmp_path) -> None:
    with pytest.raises(CheckpointError, match=r"not in the local Hugging Face cache .* hub access is off"):
        load_checkpoint("hf:no-such-org/no-such-model")
    with pytest.raises(CheckpointError, match="folder not found"):
        load_checkpoint(f"hf:{tmp_path / 'missing'}")
    with pytest.raises(CheckpointError, match=r"unknown layer 'encoder.layer.9'.*'encoder.layer.\d'"):
        load_checkpoint(f"hf:{tiny_bert}@encoder.layer.9")
    with pytest.raises(ValueError, match="text item 1 is a int"):
        load_checkpoint(f"hf:{tiny_bert}").prepare(["ok", 3])


# -- sentence-transformers --------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_st(tiny_bert, tmp_path_factory) -> Path:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models

    from ckptrank.adapters.hf_source import quiet_transformers

    folder = tmp_path_factory.mktemp("st")
    with quiet_transformers():
        word = models.Transformer(str(tiny_bert), max_seq_length=32)
        pool = models.Pooling(16, pooling_mode="mean")
        SentenceTransformer(modules=[word, pool], device="cpu").save(str(folder))
    return folder


def test_st_embeddings_equal_encode(tiny_st) -> None:
    from sentence_transformers import SentenceTransformer

    ckpt = load_checkpoint(f"st:{tiny_st}")
    assert ckpt.modality == "text" and not ckpt.has_head and ckpt.num_features == 16
    assert ckpt.preprocessing.max_length == 32
    batch = ckpt.prepare(TEXTS)
    assert all(isinstance(v, torch.Tensor) for v in batch.values())
    out = ckpt.forward(batch)
    ref = SentenceTransformer(str(tiny_st), device="cpu", local_files_only=True)
    expected = ref.encode(TEXTS, convert_to_tensor=True, normalize_embeddings=False)
    assert out.features.shape == (3, 16) and out.logits is None
    torch.testing.assert_close(out.features, expected, rtol=1e-5, atol=1e-5)
    normed = load_checkpoint(f"st:{tiny_st}?normalize=1").forward(batch).features
    torch.testing.assert_close(normed.norm(dim=1), torch.ones(3), rtol=1e-6, atol=1e-6)
    layer = load_checkpoint(f"st:{tiny_st}@0.model.encoder.layer.1").forward(batch).features
    torch.testing.assert_close(
        layer, out.features, rtol=1e-5, atol=1e-5
    )  # last layer + mean pool = embedding
    assert ckpt.weights_fingerprint() == load_checkpoint(f"st:{tiny_st}").weights_fingerprint()


def test_st_bad_inputs(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="folder not found"):
        load_checkpoint(f"st:{tmp_path / 'missing'}")
    with pytest.raises(CheckpointError, match=r"not in the local Hugging Face cache .* hub access is off"):
        load_checkpoint("st:no-such-org/no-such-model")


def _long_texts() -> list[str]:
    """Texts of 5, 40, 70 and 100 whole words; each known word is one token, plus [CLS] and [SEP]."""
    return [" ".join(WORDS[i % len(WORDS)] for i in range(n)) for n in (5, 40, 70, 100)]


def test_token_limit_counts_the_texts_it_cuts(tiny_bert, tiny_st) -> None:
    texts = _long_texts()
    hf = load_checkpoint(f"hf:{tiny_bert}").count_tokens(texts)  # limit 64 (max_position_embeddings)
    assert (hf.n_texts, hf.n_over, hf.longest, hf.limit, hf.model_limit) == (4, 2, 102, 64, 64)
    assert hf.note() == (
        "2 of 4 texts are longer than the 64-token limit and were cut (the longest has 102 tokens); "
        "64 tokens is the most this model takes"
    )
    lower = load_checkpoint(f"hf:{tiny_bert}?max_length=16").count_tokens(texts)
    assert lower.note().endswith("; the spec option ?max_length=N raises the limit up to the model's 64")
    st = load_checkpoint(f"st:{tiny_st}").count_tokens(texts)  # limit 32 (max_seq_length)
    assert (st.n_over, st.longest, st.limit) == (3, 102, 32)
    short = load_checkpoint(f"hf:{tiny_bert}?max_length=64").count_tokens(texts[:1])
    assert short.note() is None and short.longest is None  # 18 bytes cannot make 64 tokens: not tokenised
    with pytest.raises(CheckpointError, match=r"max_length=65 is outside 1\.\.64, the token limit of this"):
        load_checkpoint(f"hf:{tiny_bert}?max_length=65")


def test_truncation_is_said_in_the_run_notes(tiny_bert) -> None:
    from ckptrank.data import TargetDataset
    from ckptrank.pipeline import run_checkpoint

    def run(texts: list[str]):
        ds = TargetDataset(items=texts, labels=[i % 2 for i in range(len(texts))], modality="text")
        kwargs = dict(needs_features=True, cache=None, device=None, batch_size=8, progress=None)
        return run_checkpoint(ds, f"hf:{tiny_bert}", trust_checkpoint=False, on_error="raise", **kwargs)

    cut = [note for note in run(_long_texts()).notes if "token limit" in note]
    assert cut == [
        "2 of 4 texts are longer than the 64-token limit and were cut (the longest has 102 tokens); "
        "64 tokens is the most this model takes"
    ]
    assert not [note for note in run([*TEXTS, "a dog"]).notes if "token limit" in note]
