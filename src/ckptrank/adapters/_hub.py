"""Hugging Face Hub repositories: download through ``huggingface_hub``, pinned to a commit, no code.

:func:`fetch_repo` turns ``ORG/NAME`` plus an optional revision (branch, tag or commit) into a
local snapshot folder of the standard Hugging Face cache (``HF_HOME`` / ``HF_HUB_CACHE``, the
endpoint from ``HF_ENDPOINT``, the token from ``HF_TOKEN`` or ``hf auth login``), and the commit
hash it resolved to. It downloads only what a model needs to load without running code:

- configuration, tokenizer and processor files (``*.json``, ``*.txt``, ``*.model``, ...);
- weights: ``*.safetensors`` when the repository has any, else pickled ``*.bin``/``*.pt`` files
  (which the loaders then read with ``torch.load(weights_only=True)``);
- never a Python file, and nothing from exporter folders (``onnx/``, ``openvino/``, ...).

A repository whose configuration asks for its own Python code (``auto_map`` for a model type
that transformers does not ship, or a sentence-transformers module outside
``sentence_transformers``) is refused with :class:`RemoteCodeError` before any weights are
downloaded: ckptrank never runs a checkpoint's code.

Offline (``HF_HUB_OFFLINE=1``, which ``ckptrank --offline`` sets) nothing touches the network:
the snapshot comes from the cache, or a one-line error names the model and how to fetch it.
Online but unreachable, the first connection failure is remembered for the process, so a list
of hub checkpoints gives one quick error each instead of a storm of retries; a repository that
is already cached is then used from the cache.

Each file that is actually downloaded is reported on the ``ckptrank.download`` logger (INFO), so
a log gets one line per file; ``huggingface_hub``'s own progress bars show in a terminal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ._base import CheckpointError

__all__ = [
    "HubSnapshot",
    "ModelFolder",
    "RemoteCodeError",
    "check_no_remote_code",
    "fetch_files",
    "fetch_repo",
    "hub_offline",
    "is_hub_id",
    "pinned_fingerprint",
    "resolve_model_folder",
    "torch_hub_file",
]

download_logger = logging.getLogger("ckptrank.download")

RepoKind = Literal["transformers", "sentence-transformers"]

_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
#: Small files a model needs besides its weights (configuration, tokenizer, processor).
_METADATA_SUFFIXES = (".json", ".txt", ".model", ".vocab", ".spm", ".tiktoken", ".merges")
_WEIGHT_SUFFIXES = (".safetensors",)
_PICKLED_SUFFIXES = (".bin", ".pt", ".pth")
#: Folders of other runtimes' exports, never needed by a PyTorch load.
_EXPORT_FOLDERS = ("onnx", "openvino", "coreml", "tflite", "tf", "flax", "jax", "mlx", "gguf", "rust")
#: Files whose ``auto_map`` points at the repository's own Python code.
_CODE_MAP_FILES = (
    "config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "image_processor_config.json",
    "tokenizer_config.json",
    "feature_extractor_config.json",
)
_TRUE = ("1", "true", "yes", "on")
#: Endpoints that failed to connect in this process: later fetches fail fast (no retry storm).
_UNREACHABLE: dict[str, str] = {}


class RemoteCodeError(CheckpointError):
    """The repository needs its own Python code to load, and ckptrank never runs it."""


@dataclass(frozen=True)
class HubSnapshot:
    """A repository's files in the local Hugging Face cache, pinned to one commit.

    Attributes
    ----------
    repo_id : str
        ``ORG/NAME``.
    revision : str
        The revision asked for (``"main"`` when none was given).
    commit : str
        The 40-character commit hash the revision resolved to.
    folder : pathlib.Path
        The snapshot folder (``.../models--ORG--NAME/snapshots/COMMIT``).
    files : tuple of str
        The repository-relative paths present in ``folder``.
    downloaded : tuple of str
        The files this call downloaded (empty when everything came from the cache).
    """

    repo_id: str
    revision: str
    commit: str
    folder: Path
    files: tuple[str, ...]
    downloaded: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelFolder:
    """Where a checkpoint's files are: a local folder, or a hub snapshot pinned to a commit.

    Attributes
    ----------
    path : str
        The local folder to load from.
    repo_id : str or None
        The hub repository id (None for a local folder).
    commit : str or None
        The commit hash the hub revision resolved to (None for a local folder).
    """

    path: str
    repo_id: str | None = None
    commit: str | None = None


def resolve_model_folder(
    name: str, revision: str | None, spec: str, *, kind: RepoKind, label: str
) -> ModelFolder:
    """A local folder as given, or the hub repository downloaded (or found in the cache).

    Raises
    ------
    CheckpointError
        A missing local folder, a hub failure (one line), or a repository that needs its own code.
    """
    path = Path(name).expanduser()
    if name.startswith(("/", ".", "~")) or path.exists():
        if not path.is_dir():
            raise CheckpointError(f"model folder not found: {str(path)!r} (from {spec!r})")
        if revision is not None:
            raise CheckpointError(
                f"{spec!r}: a revision applies to hub ids, not to the local folder {name!r}"
            )
        check_no_remote_code(path, label)
        return ModelFolder(str(path.resolve()))
    snapshot = fetch_repo(name, revision=revision, kind=kind, label=label)
    return ModelFolder(str(snapshot.folder), snapshot.repo_id, snapshot.commit)


def pinned_fingerprint(content: str, folder: ModelFolder) -> str:
    """The weights' content hash, tied to the hub commit they came from (unchanged for local folders)."""
    if folder.commit is None:
        return content
    return hashlib.sha256(f"{folder.repo_id}@{folder.commit}:{content}".encode()).hexdigest()


def hub_offline() -> bool:
    """Whether hub access is switched off (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` set true)."""
    return any(
        os.environ.get(var, "").strip().lower() in _TRUE for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def is_hub_id(name: str) -> bool:
    """Whether ``name`` reads as a hub repository id (``ORG/NAME`` or ``NAME``) rather than a path."""
    if name.startswith(("/", ".", "~")) or Path(name).expanduser().exists():
        return False
    return bool(_REPO_ID_RE.match(name)) and ".." not in name and not name.endswith((".", "-"))


def _endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT).rstrip("/")


def _brief(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__


def _fetch_hint(what: str, repo_id: str, revision: str | None) -> str:
    rev = f" --revision {revision}" if revision else ""
    return (
        f"fetch it on a machine that is online (`hf download {repo_id}{rev}`, or any ckptrank run "
        f"without --offline) {what}"
    )


def _offline_error(label: str, repo_id: str, revision: str | None) -> CheckpointError:
    return CheckpointError(
        f"{label} is not in the local Hugging Face cache ({_cache_dir()}) and hub access is off "
        f"(--offline / HF_HUB_OFFLINE=1); {_fetch_hint('into the same HF_HOME', repo_id, revision)}"
    )


def _cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _is_connection_error(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(
        names
        & {
            "ConnectError",
            "ConnectTimeout",
            "TimeoutException",
            "ReadTimeout",
            "NetworkError",
            "ConnectionError",
            "ProxyError",
        }
    )


def _classify(exc: BaseException, label: str, repo_id: str, revision: str | None) -> CheckpointError:
    """A one-line CheckpointError for a hub failure."""
    name = type(exc).__name__
    if name == "RevisionNotFoundError":
        return CheckpointError(f"{label}: revision {revision!r} not found in {repo_id!r} on {_endpoint()}")
    if name in ("GatedRepoError",):
        return CheckpointError(
            f"{label}: {repo_id!r} is gated on {_endpoint()}; accept its terms on the hub and log in "
            "(`hf auth login` or HF_TOKEN)"
        )
    if name == "RepositoryNotFoundError":
        return CheckpointError(
            f"{label}: no model repository {repo_id!r} on {_endpoint()} (or it is private: log in with "
            "`hf auth login` or set HF_TOKEN)"
        )
    if name in ("RemoteEntryNotFoundError", "EntryNotFoundError"):
        return CheckpointError(f"{label}: a file is missing from {repo_id!r} ({_brief(exc)})")
    if _is_connection_error(exc):
        return CheckpointError(
            f"{label}: cannot reach {_endpoint()} to download {repo_id!r} ({_brief(exc)}); connect, or "
            f"run with --offline once it is cached ({_fetch_hint('', repo_id, revision).rstrip()})"
        )
    return CheckpointError(f"{label}: download of {repo_id!r} from {_endpoint()} failed ({_brief(exc)})")


def _wanted(files: Iterable[str], kind: RepoKind) -> tuple[list[str], list[str], list[str]]:
    """(metadata files, safetensors weights, pickled weights) among a repository's files."""
    metadata, safe, pickled = [], [], []
    for name in files:
        parts = name.split("/")
        if parts[0].lower() in _EXPORT_FOLDERS or any(p.startswith(".") for p in parts):
            continue
        low = name.lower()
        if low.endswith(".py"):
            continue
        if low.endswith(_METADATA_SUFFIXES):
            metadata.append(name)
        elif low.endswith(_WEIGHT_SUFFIXES):
            safe.append(name)
        elif low.endswith(_PICKLED_SUFFIXES) and not low.endswith(("training_args.bin", "optimizer.pt")):
            pickled.append(name)
    if kind == "transformers":
        # Sentence-transformers sub-modules (1_Pooling/...) are not needed by a transformers load.
        metadata = [m for m in metadata if "/" not in m]
        safe = [s for s in safe if "/" not in s]
        pickled = [p for p in pickled if "/" not in p]
    return metadata, safe, pickled


def check_no_remote_code(folder: Path, label: str) -> None:
    """Refuse a model folder whose configuration asks for its own Python code.

    Parameters
    ----------
    folder : pathlib.Path
        A local model folder or hub snapshot.
    label : str
        How to name the checkpoint in the message.

    Raises
    ------
    RemoteCodeError
        ``auto_map`` in a configuration file whose model type transformers does not ship, a
        tokenizer or processor class that exists only as repository code, or a
        sentence-transformers module outside the ``sentence_transformers`` package.
    """
    known_types = _known_model_types()
    for fname in _CODE_MAP_FILES:
        data = _read_json(folder / fname)
        if not isinstance(data, dict) or not data.get("auto_map"):
            continue
        auto_map = data["auto_map"]
        targets = sorted({str(v if isinstance(v, str) else next(iter(v), "")) for v in auto_map.values()})
        model_type = data.get("model_type") if fname == "config.json" else None
        if fname == "config.json" and model_type in known_types:
            continue  # transformers ships this architecture: trust_remote_code=False loads its own class
        if fname != "config.json" and _has_builtin_class(data):
            continue
        raise RemoteCodeError(
            f"{label} needs the repository's own Python code (auto_map in {fname}: "
            f"{', '.join(targets)[:120]}); ckptrank never runs a checkpoint's code "
            "(trust_remote_code=False): choose a checkpoint whose architecture transformers ships"
        )
    modules = _read_json(folder / "modules.json")
    if isinstance(modules, list):
        for module in modules:
            kind = str(module.get("type", "")) if isinstance(module, dict) else ""
            if kind and not kind.startswith("sentence_transformers."):
                raise RemoteCodeError(
                    f"{label} needs code outside sentence-transformers (module type {kind!r} in "
                    "modules.json); ckptrank never runs a checkpoint's code"
                )


def _known_model_types() -> set[str]:
    try:
        from transformers import CONFIG_MAPPING
    except ImportError:  # transformers absent: every auto_map is refused
        return set()
    return set(CONFIG_MAPPING.keys())


def _has_builtin_class(data: dict[str, Any]) -> bool:
    """Whether a tokenizer/processor config names a class that transformers itself provides."""
    try:
        import transformers
    except ImportError:
        return False
    for key in ("tokenizer_class", "image_processor_type", "processor_class", "feature_extractor_type"):
        name = data.get(key)
        if isinstance(name, str) and name and hasattr(transformers, name.removesuffix("Fast")):
            return True
    return False


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _cached_snapshot(repo_id: str, revision: str | None) -> Path | None:
    """The cached snapshot folder of ``repo_id`` at ``revision`` (no network), or None."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


def _listing(folder: Path) -> tuple[str, ...]:
    names = (str(p.relative_to(folder)).replace(os.sep, "/") for p in folder.rglob("*") if p.is_file())
    return tuple(sorted(names))


def _missing(repo_id: str, commit: str, names: list[str]) -> list[str]:
    """The files of ``names`` not yet in the cache at ``commit``."""
    from huggingface_hub import try_to_load_from_cache

    return [n for n in names if not isinstance(try_to_load_from_cache(repo_id, n, revision=commit), str)]


def _download(repo_id: str, commit: str, names: list[str], label: str, *, done: int, total: int) -> None:
    """Download ``names`` at ``commit``, one log line per file (numbered ``done + 1 .. total``)."""
    from huggingface_hub import hf_hub_download

    for i, name in enumerate(names, done + 1):
        download_logger.info("downloading %s: %s (file %d of %d)", label, name, i, total)
        hf_hub_download(repo_id, name, revision=commit)


def fetch_files(
    repo_id: str, filenames: Iterable[str], *, revision: str | None = None, label: str | None = None
) -> tuple[dict[str, Path], str]:
    """Download the first of ``filenames`` that the repository has, pinned to a commit.

    Parameters
    ----------
    repo_id : str
        ``ORG/NAME``.
    filenames : iterable of str
        Candidate file names in order of preference (e.g. ``model.safetensors`` first).
    revision : str, optional
        Branch, tag or commit (default: the repository's default branch).
    label : str, optional
        How to name the checkpoint in messages (default: ``repo_id``).

    Returns
    -------
    (dict of str to pathlib.Path, str)
        ``{filename: local path}`` holding the one file found, and the commit hash.

    Raises
    ------
    CheckpointError
        Not cached while offline, unreachable, no such repository/revision, or none of the files.
    """
    label = label or repo_id
    wanted = list(filenames)
    snapshot = _resolve(repo_id, revision, label, lambda files: [f for f in wanted if f in files][:1])
    for name in wanted:
        if name in snapshot.files:
            return {name: snapshot.folder / name}, snapshot.commit
    raise CheckpointError(
        f"{label}: {repo_id!r} at {snapshot.commit[:12]} has none of {', '.join(wanted)}"
        + ("" if not hub_offline() else " in the local cache (hub access is off)")
    )


def fetch_repo(
    repo_id: str, *, revision: str | None = None, kind: RepoKind, label: str | None = None
) -> HubSnapshot:
    """Download (or find in the cache) what a model repository needs to load, without code.

    Parameters
    ----------
    repo_id : str
        ``ORG/NAME``.
    revision : str, optional
        Branch, tag or 40-character commit hash; default the repository's default branch.
    kind : {"transformers", "sentence-transformers"}
        Which library will load the folder (sentence-transformers also needs its module folders).
    label : str, optional
        How to name the checkpoint in messages (default: ``repo_id``).

    Returns
    -------
    HubSnapshot
        The snapshot folder and the commit it is pinned to.

    Raises
    ------
    RemoteCodeError
        The repository needs its own Python code.
    CheckpointError
        Not cached while offline (names how to fetch it), unreachable, no such repository or
        revision, or no weights file.
    """
    label = label or repo_id

    def choose(files: tuple[str, ...]) -> list[str]:
        metadata, safe, pickled = _wanted(files, kind)
        return metadata + (safe or pickled)

    snapshot = _resolve(repo_id, revision, label, choose, check_code=True)
    _, safe, pickled = _wanted(snapshot.files, kind)
    if not safe and not pickled:
        raise CheckpointError(
            f"{label}: no PyTorch weights (*.safetensors, pytorch_model.bin) in {repo_id!r} at "
            f"{snapshot.commit[:12]}"
        )
    return snapshot


def _resolve(
    repo_id: str,
    revision: str | None,
    label: str,
    choose: Any,
    *,
    check_code: bool = False,
) -> HubSnapshot:
    """Resolve ``revision`` to a commit and make the files ``choose(all_files)`` picks local."""
    asked = revision or "main"
    if hub_offline():
        folder = _cached_snapshot(repo_id, revision)
        if folder is None:
            raise _offline_error(label, repo_id, revision)
        files = _listing(folder)
        if check_code:
            check_no_remote_code(folder, label)
        return HubSnapshot(repo_id, asked, folder.name, folder, files)
    endpoint = _endpoint()
    if endpoint in _UNREACHABLE:
        return _fallback(repo_id, revision, label, _UNREACHABLE[endpoint], check_code)
    try:
        from huggingface_hub import HfApi

        info = HfApi().model_info(repo_id, revision=revision, timeout=15)
        commit = str(info.sha or "")
        files = tuple(s.rfilename for s in (info.siblings or []))
        if not _COMMIT_RE.match(commit):
            raise CheckpointError(f"{label}: {endpoint} returned no commit hash for {repo_id!r}")
        chosen = choose(files)
        downloaded = _missing(repo_id, commit, chosen)
        metadata = [f for f in downloaded if f.lower().endswith(_METADATA_SUFFIXES)]
        weights = [f for f in downloaded if f not in metadata]
        _download(repo_id, commit, metadata, label, done=0, total=len(downloaded))
        folder = _snapshot_folder(repo_id, commit, chosen)
        if check_code and folder is not None:
            check_no_remote_code(folder, label)
        _download(repo_id, commit, weights, label, done=len(metadata), total=len(downloaded))
    except CheckpointError:
        raise
    except Exception as exc:  # one line per failure, whatever the HTTP stack raised
        if _is_connection_error(exc):
            _UNREACHABLE[endpoint] = _brief(exc)
            return _fallback(repo_id, revision, label, _UNREACHABLE[endpoint], check_code)
        raise _classify(exc, label, repo_id, revision) from None
    folder = _snapshot_folder(repo_id, commit, chosen)
    if folder is None:
        raise CheckpointError(f"{label}: {repo_id!r} at {commit[:12]} has no files to load")
    if asked != commit:
        _record_ref(folder, asked, commit)
    return HubSnapshot(repo_id, asked, commit, folder, _listing(folder), tuple(downloaded))


def _record_ref(snapshot: Path, revision: str, commit: str) -> None:
    """Write ``refs/REVISION`` (the commit it resolved to) beside the snapshots, as the hub client
    does, so an offline run resolves the same name; atomic, and skipped when unchanged."""
    ref = snapshot.parent.parent / "refs" / revision
    try:
        if ref.is_file() and ref.read_text().strip() == commit:
            return
        ref.parent.mkdir(parents=True, exist_ok=True)
        tmp = ref.with_name(f".{ref.name}.{os.getpid()}.tmp")
        tmp.write_text(commit)
        os.replace(tmp, ref)
    except OSError as exc:  # a read-only cache still loads; offline runs then need the commit
        download_logger.warning("could not record %s -> %s in %s: %s", revision, commit, ref, exc)


def _snapshot_folder(repo_id: str, commit: str, names: list[str]) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    for name in names:
        found = try_to_load_from_cache(repo_id, name, revision=commit)
        if isinstance(found, str):
            path = Path(found)
            return path.parents[len(Path(name).parts) - 1]
    return None


def _fallback(repo_id: str, revision: str | None, label: str, reason: str, check_code: bool) -> HubSnapshot:
    """The cached snapshot when the hub cannot be reached, else a one-line error."""
    folder = _cached_snapshot(repo_id, revision)
    if folder is None:
        raise CheckpointError(
            f"{label}: cannot reach {_endpoint()} to download {repo_id!r} ({reason}) and it is not in the "
            f"local cache; connect, or {_fetch_hint('and copy HF_HOME here', repo_id, revision)}"
        )
    download_logger.info(
        "%s: %s is unreachable; using the cached snapshot %s", label, _endpoint(), folder.name
    )
    if check_code:
        check_no_remote_code(folder, label)
    return HubSnapshot(repo_id, revision or "main", folder.name, folder, _listing(folder))


def torch_hub_file(url: str, label: str) -> Path:
    """The ``torch.hub`` cache file of ``url`` (``$TORCH_HOME/hub/checkpoints``), downloaded if absent.

    A download is checked against the sha256 prefix in the file name when it has one (as
    torchvision's weight URLs do) and written atomically by ``torch.hub``. With hub access off,
    a missing file is a one-line error.

    Raises
    ------
    CheckpointError
        Missing while offline, or the download failed (unreachable, HTTP error, bad hash).
    """
    import sys
    from urllib.parse import urlparse

    import torch

    filename = os.path.basename(urlparse(url).path)
    target = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if target.is_file():
        return target
    if hub_offline():
        raise CheckpointError(
            f"{label}: weights file {filename!r} is not in {target.parent} and hub access is off "
            "(--offline / HF_HUB_OFFLINE=1); run once online (TORCH_HOME decides the folder), or pass "
            "?weights=PATH"
        )
    match = torch.hub.HASH_REGEX.search(filename)
    download_logger.info("downloading %s: %s", label, url)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(
            url, str(target), hash_prefix=match.group(1) if match else None, progress=sys.stderr.isatty()
        )
    except Exception as exc:  # URLError, HTTPError, OSError, RuntimeError (hash): one line
        raise CheckpointError(f"{label}: download of {url} failed ({_brief(exc)})") from None
    return target
