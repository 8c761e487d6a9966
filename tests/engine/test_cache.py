"""FeatureCache: keys, atomic no-pickle storage, integrity checks, maintenance, crashes and races."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ckptrank.engine import CacheCorruptionWarning, FeatureCache, cache_key, default_cache_dir, extract
from ckptrank.engine import cache as cache_module

from . import fakes
from .fakes import TinyCNN, array_dataset

KEY_A = "a" * 64
KEY_B = "ab" + "0" * 62
KEY_C = "c" * 64


def _put(
    cache: FeatureCache, key: str, n: int = 5, d: int = 3, probs: bool = True, **meta: object
) -> np.ndarray:
    rng = np.random.default_rng(len(key) + n)
    feats = rng.normal(size=(n, d)).astype(np.float32)
    p = rng.dirichlet(np.ones(4), size=n) if probs else None
    cache.put(key, features=feats, source_probs=p, labels=np.arange(n) % 2, meta={"checkpoint": "m", **meta})
    return feats


# ------------------------------------------------------------------------------------------ keys and roots


def test_cache_key_covers_every_component() -> None:
    base = {
        "weights_fingerprint": "w",
        "layer": None,
        "dataset_fingerprint": "d",
        "preprocessing": {"image_size": 224, "mean": [0.5]},
        "subsample": {"per_class": 10, "seed": 0},
    }
    key = cache_key(**base)
    assert len(key) == 64 and key == cache_key(**dict(base))
    changes = [
        {"weights_fingerprint": "w2"},
        {"layer": "layer3"},
        {"dataset_fingerprint": "d2"},
        {"preprocessing": {"image_size": 112, "mean": [0.5]}},
        {"subsample": {"per_class": 10, "seed": 1}},
        {"subsample": None},
        {"precision": "amp-bf16"},
    ]
    keys = {cache_key(**{**base, **change}) for change in changes}
    assert len(keys) == len(changes) and key not in keys
    # dict order does not matter
    assert cache_key(**{**base, "preprocessing": {"mean": [0.5], "image_size": 224}}) == key


def test_format_version_is_part_of_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    args = {"weights_fingerprint": "w", "layer": None, "dataset_fingerprint": "d", "preprocessing": {}}
    before = cache_key(**args)
    monkeypatch.setattr(cache_module, "CACHE_FORMAT_VERSION", cache_module.CACHE_FORMAT_VERSION + 1)
    assert cache_key(**args) != before


def test_cache_root_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CKPTRANK_CACHE", str(tmp_path / "env"))
    assert FeatureCache().root == tmp_path / "env" == default_cache_dir()
    assert FeatureCache(tmp_path / "arg").root == tmp_path / "arg"
    monkeypatch.delenv("CKPTRANK_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert FeatureCache().root == tmp_path / "home" / ".cache" / "ckptrank"


# ---------------------------------------------------------------------------------------------- storage


def test_put_get_roundtrip_without_pickle(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    assert cache.get(KEY_A) is None and KEY_A not in cache
    feats = _put(cache, KEY_A, dataset="ds", split="train")
    hit = cache.get(KEY_A)
    assert hit is not None and KEY_A in cache
    np.testing.assert_array_equal(hit.features, feats)
    assert (
        hit.features.dtype == np.float32 and hit.source_probs is not None and hit.source_probs.shape == (5, 4)
    )
    assert hit.labels is not None and hit.labels.tolist() == [0, 1, 0, 1, 0]
    manifest = json.loads((tmp_path / "features" / f"{KEY_A}.json").read_text())
    assert manifest["dataset"] == "ds" and manifest["shapes"]["features"] == [5, 3]
    assert manifest["format_version"] == 1 and len(manifest["sha256"]) == 64 and manifest["created"]
    with np.load(tmp_path / "features" / f"{KEY_A}.npz", allow_pickle=False) as z:  # plain npz
        assert sorted(z.files) == ["features", "labels", "source_probs"]
    assert not list((tmp_path / "features").glob(".*"))  # no temp files left


def test_writes_are_deterministic(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    _put(cache, KEY_A)
    first = (tmp_path / "features" / f"{KEY_A}.npz").read_bytes()
    time.sleep(1.1)  # zip timestamps would differ
    _put(cache, KEY_A)
    assert (tmp_path / "features" / f"{KEY_A}.npz").read_bytes() == first


def test_put_rejects_bad_keys_and_shapes(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    with pytest.raises(ValueError, match="64 lowercase hex"):
        cache.put("../../etc", features=np.ones((2, 2)))
    with pytest.raises(ValueError, match="features must be 2-D"):
        cache.put(KEY_A, features=np.ones(3))
    with pytest.raises(ValueError, match=r"source_probs must have shape \(2, n_source_classes\)"):
        cache.put(KEY_A, features=np.ones((2, 2)), source_probs=np.ones((3, 2)))


def test_failed_write_leaves_no_entry_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = FeatureCache(tmp_path)

    def explode(f: object, arrays: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(cache_module, "_write_npz", explode)
    with pytest.raises(OSError, match="disk full"):
        cache.put(KEY_A, features=np.ones((2, 2)))
    assert list((tmp_path / "features").iterdir()) == []
    assert cache.get(KEY_A) is None


# ---------------------------------------------------------------------------------------------- corruption


def test_truncated_entry_is_a_miss_with_warning_and_found_by_verify(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    _put(cache, KEY_A)
    _put(cache, KEY_C)
    npz = cache.path_for(KEY_A)
    npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    with pytest.warns(CacheCorruptionWarning, match=r"entry aaaaaaaaaaaa .* corrupt \(checksum mismatch"):
        assert cache.get(KEY_A) is None
    results = {r.key: r for r in cache.verify()}
    assert not results[KEY_A].ok and "checksum mismatch" in (results[KEY_A].problem or "")
    assert results[KEY_C].ok
    assert npz.exists()  # verify without delete only reports
    fixed = {r.key: r for r in cache.verify(delete=True)}
    assert fixed[KEY_A].deleted and not npz.exists()
    assert [r.key for r in cache.verify()] == [KEY_C]


def test_corrupt_archive_with_matching_checksum_is_still_refused(tmp_path: Path) -> None:
    """A manifest rewritten to match damaged bytes: the archive itself must still load."""
    cache = FeatureCache(tmp_path)
    _put(cache, KEY_A)
    npz = cache.path_for(KEY_A)
    npz.write_bytes(b"PK\x03\x04 garbage")
    manifest_path = tmp_path / "features" / f"{KEY_A}.json"
    manifest = json.loads(manifest_path.read_text())
    import hashlib

    manifest["sha256"] = hashlib.sha256(npz.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    with pytest.warns(CacheCorruptionWarning, match="features file unreadable"):
        assert cache.get(KEY_A) is None
    assert "unreadable" in (cache.verify()[0].problem or "")


def test_flipped_byte_and_missing_files(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    _put(cache, KEY_A)
    _put(cache, KEY_B)
    _put(cache, KEY_C)
    npz = cache.path_for(KEY_A)
    data = bytearray(npz.read_bytes())
    data[-100] ^= 0xFF
    npz.write_bytes(bytes(data))
    (tmp_path / "features" / f"{KEY_B}.json").unlink()  # features without manifest (killed writer)
    cache.path_for(KEY_C).unlink()  # manifest without features
    problems = {r.key: r.problem for r in cache.verify()}
    assert "checksum mismatch" in problems[KEY_A]
    assert problems[KEY_B] == "manifest missing"
    assert problems[KEY_C] == "features file missing"
    assert cache.get(KEY_B) is None  # silently a miss: no manifest, no entry
    with pytest.warns(CacheCorruptionWarning, match="features file missing"):
        assert cache.get(KEY_C) is None
    cache.verify(delete=True)
    assert cache.verify() == []


# ------------------------------------------------------------------------------------------ partial shards


def test_partial_shards_prefix_gaps_and_corruption(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    assert cache.load_partial(KEY_A) is None
    cache.put_partial(KEY_A, 0, 4, features=x[:4], meta={"checkpoint": "m", "n_features": 2})
    cache.put_partial(KEY_A, 4, 6, features=x[4:6])
    cache.put_partial(KEY_A, 8, 10, features=x[8:10])  # a gap: 6..8 missing
    partial = cache.load_partial(KEY_A)
    assert partial is not None and partial.n_done == 6 and partial.n_shards == 2
    np.testing.assert_array_equal(partial.features, x[:6])
    assert partial.source_probs is None
    entry = cache.ls()[0]
    assert (entry.status, entry.checkpoint, entry.n_samples, entry.n_features) == ("partial", "m", 8, 2)
    shard = next(p for p in (tmp_path / "partial" / KEY_A).iterdir() if p.name.startswith("000000000004"))
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.warns(CacheCorruptionWarning, match="partial shard 000000000004"):
        partial = cache.load_partial(KEY_A)
    assert partial is not None and partial.n_done == 4
    result = cache.verify(delete=True)
    assert result[0].status == "partial" and "1 corrupt partial shard" in (result[0].problem or "")
    assert not shard.exists()
    cache.clear_partial(KEY_A)
    assert cache.load_partial(KEY_A) is None and cache.ls() == []


# ---------------------------------------------------------------------------------------------- ls / rm


def test_ls_and_rm(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    assert cache.ls() == []
    _put(cache, KEY_A, n=7, d=2, probs=False, dataset="dd", split="train")
    _put(cache, KEY_B)
    _put(cache, KEY_C)
    entries = {e.key: e for e in cache.ls()}
    assert set(entries) == {KEY_A, KEY_B, KEY_C}
    a = entries[KEY_A]
    assert (a.status, a.n_samples, a.n_features, a.n_source_classes, a.dataset, a.split) == (
        "complete",
        7,
        2,
        None,
        "dd",
        "train",
    )
    assert a.size_bytes > 7 * 2 * 4 and a.to_dict()["key"] == KEY_A
    with pytest.raises(ValueError, match=r"'a' matches 2 cache entries \(aaaaaaaaaaaa, ab0000000000\)"):
        cache.rm("a")
    with pytest.raises(ValueError, match=r"no cache entry .* starting with 'ff'"):
        cache.rm("ff")
    with pytest.raises(ValueError, match="is not a cache key prefix"):
        cache.rm("zz")
    removed = cache.rm("aa")
    assert removed.keys == [KEY_A] and removed.freed_bytes > 0
    assert {e.key for e in cache.ls()} == {KEY_B, KEY_C}
    cache.put_partial(KEY_A, 0, 2, features=np.ones((2, 2)))
    removed = cache.rm("all")
    assert sorted(removed.keys) == sorted([KEY_A, KEY_B, KEY_C]) and cache.ls() == []


# ---------------------------------------------------------------------------------------------- processes


def _child(args: list[str]) -> None:
    import torch

    torch.set_num_threads(1)  # as in DataLoader workers: OpenMP pools are not fork-safe
    os.environ["CKPTRANK_DISABLE_PROGRESS_BARS"] = "1"
    fakes.main(args)


def _spawn(root: Path, n: int, delay: float, batch: int, shard_batches: int) -> mp.process.BaseProcess:
    """A writer process (forked: no second interpreter start-up and torch import)."""
    proc = mp.get_context("fork").Process(
        target=_child, args=([str(root), str(n), str(delay), str(batch), str(shard_batches)],)
    )
    proc.start()
    return proc


def _shard_count(root: Path) -> int:
    return sum(1 for _ in (root / "partial").glob("*/*.npz")) if (root / "partial").exists() else 0


def test_killed_writer_resumes_from_finished_shards(tmp_path: Path) -> None:
    n, batch = 40, 2
    proc = _spawn(tmp_path, n, delay=0.2, batch=batch, shard_batches=1)
    deadline = time.monotonic() + 60
    while _shard_count(tmp_path) < 3 and proc.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.is_alive(), f"writer ended early with exit code {proc.exitcode}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert proc.exitcode == -signal.SIGKILL
    cache = FeatureCache(tmp_path)
    assert not (tmp_path / "features").exists() or not list((tmp_path / "features").glob("*.npz"))
    key = next((tmp_path / "partial").iterdir()).name
    done_before = cache.load_partial(key)
    assert done_before is not None and 3 * batch <= done_before.n_done < n

    model = TinyCNN()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheCorruptionWarning)
        resumed = extract(model, array_dataset(n), batch_size=batch, cache=cache, progress=False)
    assert resumed.key == key and resumed.resumed_from == done_before.n_done
    assert resumed.batches_computed == (n - done_before.n_done) // batch < n // batch
    uninterrupted = extract(TinyCNN(), array_dataset(n), batch_size=batch, progress=False)
    np.testing.assert_array_equal(resumed.features, uninterrupted.features)
    np.testing.assert_array_equal(resumed.source_probs, uninterrupted.source_probs)
    stored = cache.get(key)
    assert stored is not None
    np.testing.assert_array_equal(stored.features, uninterrupted.features)
    assert [r.ok for r in cache.verify()] == [True] and _shard_count(tmp_path) == 0


def test_two_processes_filling_the_same_entry_leave_one_valid_entry(tmp_path: Path) -> None:
    n, batch = 48, 4
    procs = [_spawn(tmp_path, n, delay=0.05, batch=batch, shard_batches=1) for _ in range(2)]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    cache = FeatureCache(tmp_path)
    results = cache.verify()
    assert len(results) == 1 and results[0].ok and results[0].status == "complete"
    assert len(cache.ls()) == 1 and _shard_count(tmp_path) == 0
    hit = cache.get(results[0].key)
    ref = extract(TinyCNN(), array_dataset(n), batch_size=batch, progress=False)
    assert hit is not None
    np.testing.assert_array_equal(hit.features, ref.features)
    assert [p.name for p in tmp_path.rglob(".*.tmp")] == []


def test_npz_is_a_plain_zip_of_npy_members(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    _put(cache, KEY_A)
    with zipfile.ZipFile(cache.path_for(KEY_A)) as zf:
        assert zf.testzip() is None
        assert sorted(zf.namelist()) == ["features.npy", "labels.npy", "source_probs.npy"]


# ------------------------------------------------------------------------------------------ writability


def test_check_writable_creates_the_folders_and_leaves_no_probe(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "new" / "cache")
    cache.check_writable()
    root = tmp_path / "new" / "cache"
    assert sorted(p.name for p in root.iterdir()) == ["features", "locks", "partial"]
    assert [p for p in root.rglob("*") if p.is_file()] == []
    _put(cache, KEY_A)
    cache.check_writable()  # an existing, populated cache passes
    assert [e.key for e in cache.ls()] == [KEY_A]


@pytest.mark.parametrize("where", ["root is a file", "parent is a file", "features is a file"])
def test_check_writable_names_the_file_in_the_way(tmp_path: Path, where: str) -> None:
    blocker = tmp_path / "blocker"
    if where == "features is a file":
        root = tmp_path / "cache"
        root.mkdir()
        blocker = root / "features"
    else:
        root = blocker if where == "root is a file" else blocker / "sub"
    blocker.write_text("a file")
    with pytest.raises(cache_module.CacheNotWritableError) as info:
        FeatureCache(root).check_writable()
    assert isinstance(info.value, OSError)
    assert str(info.value) == (
        f"the feature cache folder {str(root)!r} is not writable ({str(blocker)!r} is a file, not a folder); "
        "choose a writable folder with --cache-dir DIR (cache_dir=...) or the CKPTRANK_CACHE environment "
        "variable"
    )
    assert blocker.read_text() == "a file"


def test_check_writable_reports_an_os_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only folder (root ignores chmod, so the refusal is simulated at the temp-file call)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(kwargs.get("dir")))

    monkeypatch.setattr(cache_module.tempfile, "mkstemp", refuse)
    with pytest.raises(
        cache_module.CacheNotWritableError, match=r"\(Permission denied: .*features\); choose"
    ):
        FeatureCache(tmp_path / "c").check_writable()
