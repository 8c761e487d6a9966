"""extract(): exact outputs against a by-definition forward pass, batching, OOM shrink, cache use."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ckptrank.data import TargetDataset, load_dataset
from ckptrank.engine import CacheCorruptionWarning, Extracted, FeatureCache, extract, extraction_key
from ckptrank.engine.progress import DISABLE_ENV_VAR, progress_bar, progress_enabled

from .fakes import BagOfChars, TinyCNN, array_dataset


def _softmax64(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def test_features_and_probs_match_a_by_definition_forward() -> None:
    model = TinyCNN()
    ds = array_dataset(23)
    out = extract(model, ds, batch_size=5, progress=False)
    assert isinstance(out, Extracted)
    ref_feats, ref_logits = model.reference(ds.items)
    assert out.features.dtype == np.float32 and out.features.shape == (23, 4)
    np.testing.assert_allclose(out.features, ref_feats, rtol=1e-5, atol=1e-6)
    assert out.source_probs is not None and out.source_probs.dtype == np.float32
    assert ref_logits is not None
    np.testing.assert_allclose(out.source_probs, _softmax64(ref_logits), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out.source_probs.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(out.labels, ds.labels)
    assert not out.from_cache and out.key is None and out.batches_computed == 5 and out.batch_size == 5
    assert model.forward_sizes == [5, 5, 5, 5, 3]
    assert out.precision == "fp32" and out.seconds > 0


def test_softmax_is_stable_for_huge_logits() -> None:
    model = TinyCNN()
    with torch.no_grad():
        model.head.weight.mul_(1e6)  # logits of order 1e5: a naive float32 exp overflows
    out = extract(model, array_dataset(6), progress=False)
    assert out.source_probs is not None and np.all(np.isfinite(out.source_probs))
    np.testing.assert_allclose(out.source_probs.sum(axis=1), 1.0, atol=1e-6)


def test_result_does_not_depend_on_batch_size_or_workers() -> None:
    ds = array_dataset(17)
    a = extract(TinyCNN(), ds, batch_size=1, progress=False)
    b = extract(TinyCNN(), ds, batch_size=64, progress=False)
    c = extract(TinyCNN(), ds, batch_size=4, num_workers=1, progress=False)
    np.testing.assert_allclose(a.features, b.features, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.features, c.features, rtol=1e-6, atol=1e-7)


def test_image_files_and_pil_items(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    arrays = rng.integers(0, 256, size=(6, 12, 12), dtype=np.uint8)
    for i, a in enumerate(arrays):
        (tmp_path / f"c{i % 2}").mkdir(exist_ok=True)
        Image.fromarray(a).save(tmp_path / f"c{i % 2}" / f"{i}.png")
    ds = load_dataset(str(tmp_path))
    out = extract(TinyCNN(), ds, batch_size=4, num_workers="auto", progress=False)
    pil = TargetDataset(items=[Image.fromarray(a) for a in arrays], labels=[0, 1] * 3, modality="image")
    out_pil = extract(TinyCNN(), pil, progress=False)
    order = [0, 2, 4, 1, 3, 5]  # folder order: c0/0, c0/2, c0/4, c1/1, ...
    np.testing.assert_allclose(out.features, out_pil.features[order], rtol=1e-6)


def test_text_model_without_head() -> None:
    ds = TargetDataset(items=["abc", "zzz", "hello world", ""], labels=[0, 1, 0, 1], modality="text")
    model = BagOfChars()
    out = extract(model, ds, batch_size=3, progress=False)
    assert out.source_probs is None and out.features.shape == (4, 8)
    with torch.no_grad():
        expected = model.linear(model.prepare(ds.items)).numpy()
    np.testing.assert_allclose(out.features, expected, rtol=1e-6)


def test_features_dataset_is_returned_directly() -> None:
    feats = np.random.default_rng(0).normal(size=(5, 3))
    ds = TargetDataset(items=feats, labels=[0, 1, 0, 1, 1], modality="features", features=feats)
    out = extract(None, ds)
    np.testing.assert_array_equal(out.features, feats.astype(np.float32))
    assert out.source_probs is None and out.batches_computed == 0


def test_out_of_memory_halves_the_batch_and_retries() -> None:
    ds = array_dataset(37)
    model = TinyCNN(oom_above=5)
    out = extract(model, ds, batch_size=16, progress=False)
    ref = extract(TinyCNN(), ds, batch_size=16, progress=False)
    np.testing.assert_allclose(out.features, ref.features, rtol=1e-5, atol=1e-6)
    assert ref.source_probs is not None
    np.testing.assert_allclose(out.source_probs, ref.source_probs, rtol=1e-5, atol=1e-7)
    assert out.batch_size == 4 and max(model.forward_sizes) == 4 and sum(model.forward_sizes) == 37


def test_runtime_error_with_out_of_memory_text_also_shrinks() -> None:
    class CpuOOM(TinyCNN):
        def forward(self, batch):  # type: ignore[no-untyped-def]
            if batch.shape[0] > 2:
                raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB")
            return super().forward(batch)

    out = extract(CpuOOM(), array_dataset(19), batch_size=8, progress=False)
    assert out.features.shape == (19, 4) and out.batch_size == 2


class _DictBatchText(BagOfChars):
    """prepare returns a mapping (like a tokenizer's output); OOM above 2 items."""

    def prepare(self, items):  # type: ignore[no-untyped-def]
        return {"counts": super().prepare(items), "meta": "kept"}

    def forward(self, batch):  # type: ignore[no-untyped-def]
        if batch["counts"].shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        assert batch["meta"] == "kept"
        return super().forward(batch["counts"])


class _OpaqueBatchText(BagOfChars):
    """prepare returns an object the engine cannot slice: chunks are prepared again from items."""

    class Batch:
        def __init__(self, counts: torch.Tensor) -> None:
            self._counts = counts

    def prepare(self, items):  # type: ignore[no-untyped-def]
        return self.Batch(super().prepare(items))

    def forward(self, batch):  # type: ignore[no-untyped-def]
        if batch._counts.shape[0] > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return super().forward(batch._counts)


@pytest.mark.parametrize("model_cls", [_DictBatchText, _OpaqueBatchText])
def test_out_of_memory_with_mapping_and_opaque_batches(model_cls: type) -> None:
    texts = [f"text number {i} " + "ab" * i for i in range(11)]
    ds = TargetDataset(items=texts, labels=[i % 2 for i in range(11)], modality="text")
    out = extract(model_cls(), ds, batch_size=8, progress=False)
    ref = extract(BagOfChars(), ds, batch_size=8, progress=False)
    np.testing.assert_allclose(out.features, ref.features, rtol=1e-6)
    assert out.batch_size == 2  # 8 -> 4 -> 2


def test_out_of_memory_at_batch_one_is_a_one_line_error() -> None:
    with pytest.raises(
        RuntimeError, match=r"^out of memory on cpu even with a batch of 1 item for checkpoint test"
    ):
        extract(TinyCNN(oom_above=0), array_dataset(3), batch_size=4, progress=False)


def test_other_runtime_errors_propagate() -> None:
    class Broken(TinyCNN):
        def forward(self, batch):  # type: ignore[no-untyped-def]
            raise RuntimeError("shape mismatch in conv")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        extract(Broken(), array_dataset(3), progress=False)


def test_bad_arguments_and_inputs() -> None:
    ds = array_dataset(3)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        extract(TinyCNN(), ds, batch_size=0)
    with pytest.raises(ValueError, match="num_workers must be a non-negative integer or 'auto'"):
        extract(TinyCNN(), ds, num_workers=-1)
    with pytest.raises(ValueError, match="amp must be 'auto', True or False"):
        extract(TinyCNN(), ds, amp="fp16")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="takes text inputs but dataset 'random-arrays' holds image"):
        extract(BagOfChars(), ds)
    with pytest.raises(ValueError, match="dataset must be a TargetDataset"):
        extract(TinyCNN(), [1, 2, 3])  # type: ignore[arg-type]

    class Wrong(TinyCNN):
        def forward(self, batch):  # type: ignore[no-untyped-def]
            out = super().forward(batch)
            out.features = out.features[:1]
            return out

    with pytest.raises(ValueError, match=r"returned features of shape \(1, 4\) for a batch of 3 items"):
        extract(Wrong(), ds, progress=False)


def test_amp_is_cpu_noop_and_device_argument_moves_the_model() -> None:
    model = TinyCNN()
    out = extract(model, array_dataset(4), amp=True, device="cpu", progress=False)
    assert out.precision == "fp32" and model.device == torch.device("cpu")


def test_cache_hit_equals_first_run_and_skips_the_model(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    ds = array_dataset(20)
    first = extract(TinyCNN(), ds, batch_size=8, cache=cache, progress=False)
    model = TinyCNN()
    second = extract(model, ds, batch_size=8, cache=cache, progress=False)
    assert not first.from_cache and second.from_cache and model.forward_sizes == []
    assert first.key == second.key == extraction_key(model, ds)
    np.testing.assert_array_equal(first.features, second.features)
    np.testing.assert_array_equal(first.source_probs, second.source_probs)
    entry = cache.ls()[0]
    assert (entry.checkpoint, entry.dataset, entry.n_samples, entry.n_features) == (
        "test:tiny-cnn-0",
        ds.name,
        20,
        4,
    )
    assert entry.n_source_classes == 3 and entry.manifest["precision"] == "fp32"
    # the whole result is in the complete entry; the partial shards were cleared
    assert not (tmp_path / "partial").exists() or not any((tmp_path / "partial").iterdir())


def test_cache_key_changes_with_weights_data_and_subsample(tmp_path: Path) -> None:
    ds = array_dataset(12)
    base = extraction_key(TinyCNN(seed=0), ds)
    assert extraction_key(TinyCNN(seed=0), array_dataset(12)) == base
    assert extraction_key(TinyCNN(seed=1), ds) != base
    assert extraction_key(TinyCNN(seed=0), array_dataset(12, seed=1)) != base
    sub = ds.select(range(6), subsample={"per_class": 2, "seed": 0})
    assert extraction_key(TinyCNN(), sub) != base
    assert extraction_key(TinyCNN(), ds, precision="amp-bf16") != base


def test_corrupt_cache_entry_is_recomputed_with_a_warning(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    ds = array_dataset(10)
    first = extract(TinyCNN(), ds, cache=cache, progress=False)
    assert first.key is not None
    npz = cache.path_for(first.key)
    npz.write_bytes(npz.read_bytes()[:-40])
    model = TinyCNN()
    with pytest.warns(CacheCorruptionWarning, match="checksum mismatch"):
        again = extract(model, ds, cache=cache, progress=False)
    assert not again.from_cache and model.forward_sizes
    np.testing.assert_array_equal(again.features, first.features)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert extract(TinyCNN(), ds, cache=cache, progress=False).from_cache  # repaired


def test_resume_from_partial_shards_in_process(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    ds = array_dataset(30)
    ref = extract(TinyCNN(), ds, batch_size=4, progress=False)
    key = extraction_key(TinyCNN(), ds)
    cache.put_partial(key, 0, 8, features=ref.features[:8], source_probs=ref.source_probs[:8])
    cache.put_partial(key, 8, 16, features=ref.features[8:16], source_probs=ref.source_probs[8:16])
    model = TinyCNN()
    out = extract(model, ds, batch_size=4, cache=cache, progress=False)
    assert out.resumed_from == 16 and out.batches_computed == 4 and sum(model.forward_sizes) == 14
    np.testing.assert_array_equal(out.features, ref.features)
    np.testing.assert_array_equal(out.source_probs, ref.source_probs)


def test_progress_bar_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DISABLE_ENV_VAR, raising=False)
    assert progress_enabled(True) and not progress_enabled(False)
    assert progress_enabled(None) is False  # pytest captures stderr: not a terminal
    monkeypatch.setenv(DISABLE_ENV_VAR, "1")
    assert not progress_enabled(True)
    with progress_bar(total=3, desc="x", enabled=True) as bar:
        assert bar.disable
    monkeypatch.setenv(DISABLE_ENV_VAR, "0")
    assert progress_enabled(True)


def test_extract_is_the_function_whatever_was_imported_first():
    """The lazy package never hands out a submodule in place of the function of the same role."""
    import importlib

    importlib.import_module("ckptrank.engine.extraction")
    from ckptrank import engine

    assert callable(engine.extract) and engine.extract is extract
