"""On-disk cache of extracted features: content-addressed, atomic, never pickled.

Layout under the cache root (``FeatureCache(root)``, else ``$CKPTRANK_CACHE``, else
``~/.cache/ckptrank``)::

    features/<key>.npz     arrays features (float32), labels (int64), source_probs (float32, optional)
    features/<key>.json    manifest: checkpoint spec, dataset, shapes, created time, sha256 of the npz
    partial/<key>/         shards of an unfinished extraction, <start>-<stop>-<sha256[:16]>.npz
    locks/<key>.lock       fcntl.flock lock (exclusive for writers, shared for readers)

Every file is written to a temporary file in the same folder, fsynced and moved into place
with ``os.replace``, so a reader never sees a half-written file. The ``.npz`` files are written
deterministically (fixed zip timestamps), so two processes writing the same key write the same
bytes. Reads verify the sha256 from the manifest; a corrupt entry is a cache miss with a
:class:`CacheCorruptionWarning`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX: atomic replace only, no locking
    fcntl = None  # type: ignore[assignment]

from ckptrank._cachedir import CACHE_ENV_VAR, CacheCorruptionWarning, default_cache_dir

__all__ = [
    "CACHE_ENV_VAR",
    "CACHE_FORMAT_VERSION",
    "CacheCorruptionWarning",
    "CacheEntry",
    "CacheNotWritableError",
    "CachedFeatures",
    "FeatureCache",
    "PartialFeatures",
    "RemoveResult",
    "VerifyResult",
    "cache_key",
    "default_cache_dir",
]

logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
_KEY_RE = re.compile(r"^[0-9a-f]{64}$")
_SHARD_RE = re.compile(r"^(\d{12})-(\d{12})-([0-9a-f]{16})\.npz$")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_STALE_TEMP_SECONDS = 24 * 3600


class CacheNotWritableError(OSError):
    """The cache folder cannot hold new entries (read-only, or a path component is a file)."""


def cache_key(
    *,
    weights_fingerprint: str,
    layer: str | None,
    dataset_fingerprint: str,
    preprocessing: dict[str, Any],
    subsample: dict[str, int] | None = None,
    precision: str = "fp32",
) -> str:
    """The sha256 (hex) of everything that determines the extracted features.

    Parameters
    ----------
    weights_fingerprint : str
        Content hash of the checkpoint's weights.
    layer : str or None
        Chosen intermediate layer (None = penultimate).
    dataset_fingerprint : str
        :meth:`TargetDataset.fingerprint` of the data.
    preprocessing : dict
        The checkpoint's preprocessing description (``Preprocessing.to_dict()``).
    subsample : dict, optional
        ``{"per_class": N, "seed": s}`` of a stratified subsample.
    precision : str, default "fp32"
        ``"fp32"`` or the mixed-precision dtype used (``"amp-bf16"``, ``"amp-fp16"``), since
        mixed precision changes the features.
    """
    payload = {
        "format_version": CACHE_FORMAT_VERSION,
        "weights": weights_fingerprint,
        "layer": layer,
        "dataset": dataset_fingerprint,
        "preprocessing": preprocessing,
        "subsample": subsample,
        "precision": precision,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class CachedFeatures:
    """A cache hit."""

    key: str
    features: np.ndarray
    source_probs: np.ndarray | None
    labels: np.ndarray | None
    manifest: dict[str, Any]


@dataclass(frozen=True)
class PartialFeatures:
    """The completed prefix of an unfinished extraction: rows ``0..n_done-1``."""

    key: str
    n_done: int
    features: np.ndarray
    source_probs: np.ndarray | None
    n_shards: int


@dataclass(frozen=True)
class CacheEntry:
    """One entry as listed by :meth:`FeatureCache.ls`."""

    key: str
    status: str  # "complete" or "partial"
    size_bytes: int
    created: str
    checkpoint: str
    dataset: str
    split: str
    n_samples: int
    n_features: int
    n_source_classes: int | None
    manifest: dict[str, Any] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "status": self.status,
            "size_bytes": self.size_bytes,
            "created": self.created,
            "checkpoint": self.checkpoint,
            "dataset": self.dataset,
            "split": self.split,
            "n_samples": self.n_samples,
            "n_features": self.n_features,
            "n_source_classes": self.n_source_classes,
        }


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of checking one entry (``problem`` is None when it is intact)."""

    key: str
    status: str
    problem: str | None
    deleted: bool = False

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "status": self.status,
            "ok": self.ok,
            "problem": self.problem,
            "deleted": self.deleted,
        }


@dataclass(frozen=True)
class RemoveResult:
    """What :meth:`FeatureCache.rm` removed."""

    keys: list[str]
    freed_bytes: int


# ---------------------------------------------------------------------------------------------------------
# file helpers


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> str:
    """Write ``path`` via a fsynced temp file + ``os.replace``; return the sha256 of the bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w+b") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            f.seek(0)
            digest = _sha256_stream(f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return digest


def _sha256_stream(f: BinaryIO) -> str:
    h = hashlib.sha256()
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
    return h.hexdigest()


def _write_npz(f: BinaryIO, arrays: dict[str, np.ndarray]) -> None:
    """An uncompressed ``.npz`` with fixed timestamps (same arrays -> same bytes); no pickles."""
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_STORED
            with zf.open(info, "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.ascontiguousarray(array), allow_pickle=False)


def _read_npz(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def _json_bytes(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, indent=1, sort_keys=True, default=str).encode()


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise ValueError(f"cache key must be 64 lowercase hex characters, got {key!r}")
    return key


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _arrays(features: Any, source_probs: Any | None, labels: Any | None) -> dict[str, np.ndarray]:
    feats = np.asarray(features, dtype=np.float32)
    if feats.ndim != 2:
        raise ValueError(f"features must be 2-D (n_samples, n_features), got shape {feats.shape}")
    arrays = {"features": feats}
    if source_probs is not None:
        probs = np.asarray(source_probs, dtype=np.float32)
        if probs.ndim != 2 or len(probs) != len(feats):
            raise ValueError(
                f"source_probs must have shape ({len(feats)}, n_source_classes), got {probs.shape}"
            )
        arrays["source_probs"] = probs
    if labels is not None:
        lab = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(lab) != len(feats):
            raise ValueError(f"labels has {len(lab)} entries but features has {len(feats)} rows")
        arrays["labels"] = lab
    return arrays


class FeatureCache:
    """Content-addressed store of extracted features.

    Parameters
    ----------
    root : str or Path, optional
        Cache folder; default ``$CKPTRANK_CACHE``, else ``~/.cache/ckptrank``.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> cache = FeatureCache(tempfile.mkdtemp())
    >>> key = "ab" * 32
    >>> _ = cache.put(key, features=np.ones((3, 2)), meta={"checkpoint": "demo"})
    >>> cache.get(key).features.shape
    (3, 2)
    >>> [e.checkpoint for e in cache.ls()]
    ['demo']
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.root)!r})"

    # -- paths ----------------------------------------------------------------------------------------------
    @property
    def _features_dir(self) -> Path:
        return self.root / "features"

    @property
    def _partial_root(self) -> Path:
        return self.root / "partial"

    @property
    def _locks_dir(self) -> Path:
        return self.root / "locks"

    def _npz(self, key: str) -> Path:
        return self._features_dir / f"{key}.npz"

    def _manifest(self, key: str) -> Path:
        return self._features_dir / f"{key}.json"

    def _partial_dir(self, key: str) -> Path:
        return self._partial_root / key

    def path_for(self, key: str) -> Path:
        """Where the features of ``key`` are (or would be) stored."""
        return self._npz(_check_key(key))

    @contextlib.contextmanager
    def _lock(self, key: str, *, shared: bool = False) -> Iterator[None]:
        if fcntl is None:  # pragma: no cover
            yield
            return
        try:
            self._locks_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._locks_dir / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            if not shared:
                raise
            yield  # read-only cache folder: readers go without the lock
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def check_writable(self) -> None:
        """Check that new entries can be stored: create the cache folders and a probe file in each.

        Call it once before long work, so that an unusable cache is one clear error rather than
        a failure of every extraction that tries to store its result.

        Raises
        ------
        CacheNotWritableError
            A folder cannot be created or written (the message names the path and the fix).
        """
        for folder in (self._features_dir, self._partial_root, self._locks_dir):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-check.", suffix=".tmp")
                os.close(fd)
                os.unlink(probe)
            except OSError as err:
                blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
                if blocker is not None:
                    reason = f"{str(blocker)!r} is a file, not a folder"
                else:
                    reason = f"{err.strerror or type(err).__name__}: {err.filename or folder}"
                raise CacheNotWritableError(
                    f"the feature cache folder {str(self.root)!r} is not writable ({reason}); choose a "
                    f"writable folder with --cache-dir DIR (cache_dir=...) or the {CACHE_ENV_VAR} "
                    "environment variable"
                ) from None

    # -- complete entries -----------------------------------------------------------------------------------
    def _load_entry(self, key: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Manifest and arrays of an entry; raises ValueError with the problem when it is corrupt."""
        manifest_path, npz_path = self._manifest(key), self._npz(key)
        try:
            manifest = json.loads(manifest_path.read_text())
        except FileNotFoundError:
            raise ValueError("manifest missing") from None
        except (OSError, ValueError, UnicodeDecodeError) as err:
            raise ValueError(f"manifest unreadable ({type(err).__name__})") from None
        try:
            data = npz_path.read_bytes()
        except FileNotFoundError:
            raise ValueError("features file missing") from None
        if hashlib.sha256(data).hexdigest() != manifest.get("sha256"):
            raise ValueError(f"checksum mismatch (features file changed or truncated, {len(data)} bytes)")
        try:
            arrays = _read_npz(data)
        except Exception as err:  # numpy/zipfile raise several types for damaged archives
            raise ValueError(f"features file unreadable ({type(err).__name__})") from None
        shapes = manifest.get("shapes", {})
        for name, shape in shapes.items():
            if name not in arrays or list(arrays[name].shape) != list(shape):
                raise ValueError(f"array {name!r} does not match the manifest shape {shape}")
        if "features" not in arrays:
            raise ValueError("features array missing")
        return manifest, arrays

    def get(self, key: str) -> CachedFeatures | None:
        """The cached features of ``key``, or None on a miss.

        A corrupt entry (checksum mismatch, unreadable archive, missing file) is never returned:
        it counts as a miss and emits a :class:`CacheCorruptionWarning`.
        """
        _check_key(key)
        if not self._manifest(key).exists():
            return None
        with self._lock(key, shared=True):
            try:
                manifest, arrays = self._load_entry(key)
            except ValueError as err:
                warnings.warn(
                    f"feature cache entry {key[:12]} in {self.root} is corrupt ({err}); "
                    "treating it as a miss. Run `ckptrank cache verify --delete` to remove corrupt entries.",
                    CacheCorruptionWarning,
                    stacklevel=2,
                )
                return None
        return CachedFeatures(
            key=key,
            features=arrays["features"],
            source_probs=arrays.get("source_probs"),
            labels=arrays.get("labels"),
            manifest=manifest,
        )

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and bool(_KEY_RE.match(key)) and self._manifest(key).exists()

    def put(
        self,
        key: str,
        *,
        features: Any,
        source_probs: Any | None = None,
        labels: Any | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Path:
        """Store an entry atomically (under the key's exclusive lock); returns the ``.npz`` path.

        ``meta`` goes into the JSON manifest (e.g. ``checkpoint``, ``dataset``, ``split``).
        """
        _check_key(key)
        arrays = _arrays(features, source_probs, labels)
        with self._lock(key):
            digest = _atomic_write(self._npz(key), lambda f: _write_npz(f, arrays))
            manifest = {
                **(meta or {}),
                "key": key,
                "format_version": CACHE_FORMAT_VERSION,
                "created": _now(),
                "sha256": digest,
                "size_bytes": self._npz(key).stat().st_size,
                "shapes": {name: list(a.shape) for name, a in arrays.items()},
            }
            _atomic_write(self._manifest(key), lambda f: f.write(_json_bytes(manifest)))
        return self._npz(key)

    # -- partial shards -------------------------------------------------------------------------------------
    def put_partial(
        self,
        key: str,
        start: int,
        stop: int,
        *,
        features: Any,
        source_probs: Any | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Path | None:
        """Store rows ``start..stop-1`` of an unfinished extraction as a self-verifying shard.

        Best effort: shards only save time, so a failed write (full disk, or another process
        that finished the same entry and removed the shard folder) is logged and returns None.
        """
        _check_key(key)
        arrays = _arrays(features, source_probs, None)
        if stop - start != len(arrays["features"]) or start < 0:
            raise ValueError(f"shard {start}..{stop} does not match {len(arrays['features'])} feature rows")
        folder = self._partial_dir(key)
        buffer = io.BytesIO()
        _write_npz(buffer, arrays)
        data = buffer.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        path = folder / f"{start:012d}-{stop:012d}-{digest[:16]}.npz"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            meta_path = folder / "meta.json"
            if meta is not None and not meta_path.exists():
                info = _json_bytes({**meta, "key": key, "created": _now()})
                _atomic_write(meta_path, lambda f: f.write(info))
            _atomic_write(path, lambda f: f.write(data))
        except OSError as err:
            logger.warning("could not save partial shard %s of %s: %s", path.name, key[:12], err)
            return None
        return path

    def _shards(self, key: str) -> list[tuple[int, int, str, Path]]:
        try:
            paths = list(self._partial_dir(key).iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return []
        shards = []
        for path in paths:
            match = _SHARD_RE.match(path.name)
            if match:
                shards.append((int(match[1]), int(match[2]), match[3], path))
        return sorted(shards)

    @staticmethod
    def _read_shard(path: Path, digest: str) -> dict[str, np.ndarray]:
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest()[:16] != digest:
            raise ValueError("checksum mismatch")
        try:
            return _read_npz(data)
        except Exception as err:
            raise ValueError(f"unreadable ({type(err).__name__})") from None

    def load_partial(self, key: str) -> PartialFeatures | None:
        """The longest run of intact shards starting at row 0, or None if there is none."""
        _check_key(key)
        feats: list[np.ndarray] = []
        probs: list[np.ndarray] = []
        n_done = 0
        for start, stop, digest, path in self._shards(key):
            if start != n_done:
                if start < n_done:
                    continue  # overlapping shard from a run with another batch size
                break
            try:
                arrays = self._read_shard(path, digest)
            except FileNotFoundError:
                break  # removed meanwhile by a process that finished the same entry
            except (OSError, ValueError) as err:
                warnings.warn(
                    f"partial shard {path.name} of cache entry {key[:12]} is corrupt ({err}); "
                    "recomputing from there",
                    CacheCorruptionWarning,
                    stacklevel=2,
                )
                break
            if feats and (
                arrays["features"].shape[1] != feats[0].shape[1] or ("source_probs" in arrays) != bool(probs)
            ):
                break
            feats.append(arrays["features"])
            if "source_probs" in arrays:
                probs.append(arrays["source_probs"])
            n_done = stop
        if not feats:
            return None
        return PartialFeatures(
            key=key,
            n_done=n_done,
            features=np.concatenate(feats),
            source_probs=np.concatenate(probs) if probs else None,
            n_shards=len(feats),
        )

    def clear_partial(self, key: str) -> None:
        """Remove the shards of ``key`` (after the complete entry was written)."""
        shutil.rmtree(self._partial_dir(_check_key(key)), ignore_errors=True)

    # -- listing and maintenance ----------------------------------------------------------------------------
    def _keys(self) -> dict[str, set[str]]:
        """Every key present, with the kinds of files found: manifest, npz, partial."""
        found: dict[str, set[str]] = {}
        if self._features_dir.is_dir():
            for path in self._features_dir.iterdir():
                if path.suffix in (".npz", ".json") and _KEY_RE.match(path.stem):
                    found.setdefault(path.stem, set()).add("manifest" if path.suffix == ".json" else "npz")
        if self._partial_root.is_dir():
            for path in self._partial_root.iterdir():
                if path.is_dir() and _KEY_RE.match(path.name):
                    found.setdefault(path.name, set()).add("partial")
        return found

    def _size(self, key: str) -> int:
        total = 0
        for path in (self._npz(key), self._manifest(key)):
            with contextlib.suppress(OSError):
                total += path.stat().st_size
        with contextlib.suppress(OSError):
            for path in self._partial_dir(key).iterdir():
                with contextlib.suppress(OSError):
                    total += path.stat().st_size
        return total

    def ls(self) -> list[CacheEntry]:
        """Every complete entry and every unfinished (partial) extraction, newest first."""
        entries = []
        for key, kinds in self._keys().items():
            if "manifest" in kinds:
                status = "complete"
                try:
                    manifest = json.loads(self._manifest(key).read_text())
                except (OSError, ValueError):
                    manifest = {}
                shapes = manifest.get("shapes", {})
                n, d = (shapes.get("features") or [0, 0])[:2]
                probs = shapes.get("source_probs")
                n_source = probs[1] if probs else None
            elif "partial" in kinds:
                status = "partial"
                try:
                    manifest = json.loads((self._partial_dir(key) / "meta.json").read_text())
                except (OSError, ValueError):
                    manifest = {}
                shards = self._shards(key)
                n = sum(stop - start for start, stop, _, _ in shards)
                d = int(manifest.get("n_features", 0) or 0)
                n_source = manifest.get("n_source_classes")
            else:
                continue  # a features file without manifest: reported by verify()
            entries.append(
                CacheEntry(
                    key=key,
                    status=status,
                    size_bytes=self._size(key),
                    created=str(manifest.get("created", "")),
                    checkpoint=str(manifest.get("checkpoint", "?")),
                    dataset=str(manifest.get("dataset", "?")),
                    split=str(manifest.get("split", "?")),
                    n_samples=int(n),
                    n_features=int(d),
                    n_source_classes=None if n_source is None else int(n_source),
                    manifest=manifest,
                )
            )
        return sorted(entries, key=lambda e: (e.created, e.key), reverse=True)

    def _remove(self, key: str) -> None:
        for path in (self._manifest(key), self._npz(key)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        shutil.rmtree(self._partial_dir(key), ignore_errors=True)

    def rm(self, key_prefix: str) -> RemoveResult:
        """Remove the entry whose key starts with ``key_prefix``, or everything with ``"all"``.

        Raises
        ------
        ValueError
            No entry matches, or the prefix matches several entries (the message lists them).
        """
        keys = sorted(self._keys())
        if key_prefix == "all":
            chosen = keys
        else:
            prefix = key_prefix.strip().lower()
            if not prefix or not re.fullmatch(r"[0-9a-f]{1,64}", prefix):
                raise ValueError(
                    f"{key_prefix!r} is not a cache key prefix; give hex characters of a key or 'all'"
                )
            chosen = [k for k in keys if k.startswith(prefix)]
            if not chosen:
                raise ValueError(f"no cache entry in {self.root} has a key starting with {prefix!r}")
            if len(chosen) > 1:
                shown = ", ".join(k[:12] for k in chosen[:5])
                raise ValueError(
                    f"{prefix!r} matches {len(chosen)} cache entries ({shown}); give more characters or 'all'"
                )
        freed = 0
        for key in chosen:
            freed += self._size(key)
            with self._lock(key):
                self._remove(key)
            with contextlib.suppress(OSError):
                (self._locks_dir / f"{key}.lock").unlink()
        if key_prefix == "all":
            self._remove_stale_temps(max_age=0.0)
        return RemoveResult(keys=chosen, freed_bytes=freed)

    def _remove_stale_temps(self, *, max_age: float) -> int:
        import time

        removed = 0
        now = time.time()
        for folder in (self._features_dir, self._partial_root):
            if not folder.is_dir():
                continue
            for path in folder.rglob(".*.tmp"):
                with contextlib.suppress(OSError):
                    if now - path.stat().st_mtime >= max_age:
                        path.unlink()
                        removed += 1
        return removed

    def verify(self, *, delete: bool = False) -> list[VerifyResult]:
        """Check every entry (manifest, checksum, archive, shapes) and every partial shard.

        Parameters
        ----------
        delete : bool, default False
            Remove corrupt entries (and corrupt shards, and temporary files older than a day).

        Returns
        -------
        list of VerifyResult
            One per complete entry and per unfinished extraction; ``problem`` is None when intact.
        """
        results = []
        for key, kinds in sorted(self._keys().items()):
            if "manifest" in kinds or "npz" in kinds:
                with self._lock(key, shared=True):
                    try:
                        self._load_entry(key)
                        problem = None
                    except ValueError as err:
                        problem = str(err)
                deleted = False
                if problem is not None and delete:
                    with self._lock(key):
                        for path in (self._manifest(key), self._npz(key)):
                            with contextlib.suppress(FileNotFoundError):
                                path.unlink()
                    deleted = True
                results.append(VerifyResult(key=key, status="complete", problem=problem, deleted=deleted))
            if "partial" in kinds:
                bad = []
                for _, _, digest, path in self._shards(key):
                    try:
                        self._read_shard(path, digest)
                    except (OSError, ValueError) as err:
                        bad.append((path, str(err)))
                problem = None
                if bad:
                    problem = f"{len(bad)} corrupt partial shard(s): {bad[0][0].name} ({bad[0][1]})"
                    if delete:
                        for path, _ in bad:
                            with contextlib.suppress(FileNotFoundError):
                                path.unlink()
                results.append(
                    VerifyResult(key=key, status="partial", problem=problem, deleted=bool(bad) and delete)
                )
        if delete:
            self._remove_stale_temps(max_age=_STALE_TEMP_SECONDS)
        return results
