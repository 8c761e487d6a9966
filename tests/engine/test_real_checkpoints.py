"""Integration: the real built-in checkpoints through load_dataset -> extract -> cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ckptrank.adapters import load_checkpoint
from ckptrank.data import load_dataset
from ckptrank.engine import FeatureCache, extract


@pytest.mark.slow
def test_efficientnet_lite0_on_fashion_mnist(tmp_path: Path) -> None:
    ckpt = load_checkpoint("efficientnet-lite0")
    ds = load_dataset("builtin:fashion-mnist", split="test", per_class=2, seed=0)
    cache = FeatureCache(tmp_path)
    out = extract(ckpt, ds, batch_size=8, cache=cache, progress=False)
    assert out.features.shape == (20, 1280) and out.features.dtype == np.float32
    assert np.all(np.isfinite(out.features)) and out.features.std() > 0
    assert out.source_probs is not None and out.source_probs.shape == (20, 1000)
    np.testing.assert_allclose(out.source_probs.sum(axis=1), 1.0, atol=1e-5)
    again = extract(ckpt, ds, batch_size=8, cache=cache, progress=False)
    assert again.from_cache and again.key == out.key
    np.testing.assert_array_equal(again.features, out.features)
    entry = cache.ls()[0]
    assert (entry.checkpoint, entry.dataset, entry.split) == ("efficientnet-lite0", "fashion-mnist", "test")


@pytest.mark.slow
def test_all_minilm_l6_v2_on_wordnet_supersenses() -> None:
    ckpt = load_checkpoint("all-minilm-l6-v2")
    ds = load_dataset("builtin:wordnet-supersense", per_class=1, seed=0)
    out = extract(ckpt, ds, batch_size=16, progress=False)
    assert out.features.shape == (26, 384) and out.source_probs is None
    np.testing.assert_allclose(np.linalg.norm(out.features, axis=1), 1.0, atol=1e-4)  # L2-normalised
    # the same text gives the same embedding regardless of its batch
    single = extract(ckpt, ds.select([3]), batch_size=1, progress=False)
    np.testing.assert_allclose(single.features[0], out.features[3], atol=1e-5)
