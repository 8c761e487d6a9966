"""Pre-train the zoo's checkpoints on real source data; save safetensors plus a JSON card.

Recipe (every supervised and self-supervised run): SGD with Nesterov momentum 0.9, batch 128,
cosine learning-rate schedule from ``lr`` to 0 over all steps (no warm-up), weight decay 5e-4;
images get a random horizontal flip; the rotation task rotates every image by a random multiple
of 90 degrees per batch. Initialisation and batch order come from the entry's seed. Each saved
checkpoint gets a card ``NAME.json`` beside ``NAME.safetensors``: architecture, source task and
its data provenance, epochs trained, source accuracy on the held-out source split, seed, the
command that regenerates it, the file's sha256, and timing.

Runs are deterministic for a given seed, thread count and torch build; the committed files and
their sha256 are authoritative.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from .catalog import ZOO, ZooEntry
from .data import SourceData, build_vocab, load_source_task
from .models import ARCHITECTURES, build_model

__all__ = [
    "CHECKPOINT_DIR",
    "IMAGE_MEAN",
    "IMAGE_STD",
    "build_zoo",
    "card_path",
    "encode_texts",
    "pretrain",
    "read_card",
    "sha256_file",
]

logger = logging.getLogger(__name__)

#: Where the committed zoo checkpoints live.
CHECKPOINT_DIR = Path(__file__).with_name("checkpoints")

#: Fashion-MNIST pixel statistics (training file, pixels scaled to [0, 1]); the zoo's normalisation.
IMAGE_MEAN = 0.2860
IMAGE_STD = 0.3530
IMAGE_SIZE = 28
MAX_TOKENS = 64
VOCAB_SIZE = 6000

_RECIPE = {
    "optimizer": "SGD",
    "momentum": 0.9,
    "nesterov": True,
    "schedule": "cosine to 0 over all steps, no warm-up",
    "batch_size": 128,
    "weight_decay": 5e-4,
    "lr": {"image": 0.05, "text": 2.0},
    "augmentation": {"image": "random horizontal flip", "text": "none"},
}


def card_path(directory: Path, name: str) -> Path:
    return Path(directory) / f"{name}.json"


def read_card(name: str, directory: str | Path | None = None) -> dict[str, Any]:
    """The JSON card of saved zoo checkpoint ``name`` (from the committed folder by default)."""
    path = card_path(Path(directory) if directory is not None else CHECKPOINT_DIR, name)
    if not path.is_file():
        raise FileNotFoundError(
            f"zoo card {str(path)!r} not found; build the zoo with 'ckptrank zoo build' (or --out DIR)"
        )
    return json.loads(path.read_text())


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def encode_texts(
    texts: Sequence[str], vocab: Sequence[str], max_tokens: int = MAX_TOKENS
) -> dict[str, torch.Tensor]:
    """Token ids (``<unk>`` = 1, padded with 0) and the attention mask of texts, for BagOfWords."""
    from ckptrank.adapters.builtin_source import glove_tokens

    index = {w: i for i, w in enumerate(vocab)}
    rows = [[index.get(t, 1) for t in glove_tokens(text)][:max_tokens] for text in texts]
    width = max(1, max((len(r) for r in rows), default=1))
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def _images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (n, 28, 28) -> normalised float (n, 1, 28, 28); expanded to 3 channels per batch."""
    x = torch.tensor(np.asarray(images), dtype=torch.float32).div_(255.0)
    return x.sub_(IMAGE_MEAN).div_(IMAGE_STD).unsqueeze(1)


def _rotate(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    out = x.clone()
    for turns in range(1, 4):
        sel = k == turns
        if sel.any():
            out[sel] = torch.rot90(x[sel], turns, dims=(2, 3))
    return out


class _Batches:
    """Model inputs and targets of a source task (rotation targets drawn per batch)."""

    def __init__(self, data: SourceData, vocab: Sequence[str] | None, rotation: bool) -> None:
        self.modality = data.modality
        self.rotation = rotation
        self.vocab = vocab
        if data.modality == "image":
            self.train_x: Any = _images_to_tensor(np.asarray(data.train_items))
            self.hold_x: Any = _images_to_tensor(np.asarray(data.holdout_items))
        else:
            self.train_x = list(data.train_items)  # type: ignore[arg-type]
            self.hold_x = list(data.holdout_items)  # type: ignore[arg-type]
        self.train_y = torch.tensor(np.asarray(data.train_labels), dtype=torch.long)
        self.hold_y = torch.tensor(np.asarray(data.holdout_labels), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.train_y)

    def train_batch(self, idx: torch.Tensor, gen: torch.Generator) -> tuple[Any, torch.Tensor]:
        if self.modality == "text":
            return encode_texts([self.train_x[i] for i in idx.tolist()], self.vocab or ()), self.train_y[idx]
        x = self.train_x[idx]
        flip = torch.rand(len(idx), generator=gen) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        y = self.train_y[idx]
        if self.rotation:
            y = torch.randint(0, 4, (len(idx),), generator=gen)
            x = _rotate(x, y)
        return x.expand(-1, 3, -1, -1), y

    def holdout_batches(self, batch_size: int) -> Any:
        for start in range(0, len(self.hold_y), batch_size):
            sl = slice(start, start + batch_size)
            y = self.hold_y[sl]
            if self.modality == "text":
                yield encode_texts(self.hold_x[sl], self.vocab or ()), y
            else:
                x = self.hold_x[sl]
                if self.rotation:
                    x = _rotate(x, y)
                yield x.expand(-1, 3, -1, -1), y


def _call(model: nn.Module, x: Any) -> torch.Tensor:
    return model(**x) if isinstance(x, dict) else model(x)


def _holdout_accuracy(model: nn.Module, batches: _Batches) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in batches.holdout_batches(512):
            correct += int((_call(model, x).argmax(1) == y).sum())
            total += len(y)
    model.train()
    return correct / max(total, 1)


def _subsample(data: SourceData, max_samples: int | None, seed: int) -> SourceData:
    if max_samples is None:
        return data
    rng = np.random.default_rng(seed)

    def take(items: Any, labels: np.ndarray, n: int) -> tuple[Any, np.ndarray]:
        if len(labels) <= n:
            return items, labels
        idx = np.sort(rng.choice(len(labels), size=n, replace=False))
        picked = items[idx] if isinstance(items, np.ndarray) else [items[i] for i in idx]
        return picked, labels[idx]

    tr_x, tr_y = take(data.train_items, data.train_labels, max_samples)
    ho_x, ho_y = take(data.holdout_items, data.holdout_labels, max(1, max_samples // 4))
    return SourceData(data.name, data.modality, tr_x, tr_y, ho_x, ho_y, data.classes, data.description)


def _preprocessing(modality: str) -> dict[str, Any]:
    if modality == "image":
        return {
            "modality": "image",
            "image_size": IMAGE_SIZE,
            "resize_size": IMAGE_SIZE,
            "mean": [IMAGE_MEAN] * 3,
            "std": [IMAGE_STD] * 3,
            "interpolation": "bilinear",
        }
    return {
        "modality": "text",
        "max_length": MAX_TOKENS,
        "extra": {"tokenizer": "ckptrank glove_tokens + zoo vocab"},
    }


def _save(
    model: nn.Module,
    name: str,
    out_dir: Path,
    card: dict[str, Any],
    vocab: Sequence[str] | None,
) -> Path:
    from safetensors.torch import save

    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    path = out_dir / f"{name}.safetensors"
    _atomic_write_bytes(path, save(state, metadata={"name": name, "format": "pt"}))
    card = dict(card)
    card["name"] = name
    card["weights_file"] = path.name
    card["sha256"] = sha256_file(path)
    card["num_parameters"] = int(sum(p.numel() for p in model.parameters()))
    if vocab is not None:
        vocab_path = out_dir / f"{name}.vocab.txt"
        _atomic_write_bytes(vocab_path, ("\n".join(vocab) + "\n").encode("utf-8"))
        card["vocab_file"] = vocab_path.name
    _atomic_write_bytes(
        card_path(out_dir, name), (json.dumps(card, indent=2, sort_keys=True) + "\n").encode()
    )
    return path


def pretrain(
    entry: ZooEntry | str,
    out_dir: str | Path = CHECKPOINT_DIR,
    *,
    epochs: int | None = None,
    max_samples: int | None = None,
    threads: int | None = None,
    command: str | None = None,
    log: Callable[[str], None] | None = None,
) -> list[Path]:
    """Train (or, for a random control, initialise) one zoo entry and save its checkpoints.

    Parameters
    ----------
    entry : ZooEntry or str
        The run (or its name in :data:`~ckptrank.zoo.catalog.ZOO`).
    out_dir : path, default the committed ``zoo/checkpoints`` folder
    epochs : int, optional
        Override the entry's epochs (stages beyond it are dropped). For quick tests.
    max_samples : int, optional
        Train on at most this many source samples (held-out: a quarter of it). For quick tests.
    threads : int, optional
        ``torch.set_num_threads`` for the run (restored afterwards).
    command : str, optional
        The command line recorded in the cards (default: the ``ckptrank zoo build`` that rebuilds it).
    log : callable, optional
        Receives one progress line per epoch.

    Returns
    -------
    list of Path
        The saved ``.safetensors`` files (stages first).
    """
    if isinstance(entry, str):
        if entry not in ZOO:
            raise ValueError(f"unknown zoo entry {entry!r}; valid: {', '.join(ZOO)}")
        entry = ZOO[entry]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_epochs = entry.epochs if epochs is None else int(epochs)
    if entry.source_task is None:
        n_epochs = 0
    stages = tuple(e for e in entry.stages if e < n_epochs)
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        return _pretrain(entry, out, n_epochs, stages, max_samples, command, log or logger.info)
    finally:
        torch.set_num_threads(old_threads)


def _pretrain(
    entry: ZooEntry,
    out: Path,
    n_epochs: int,
    stages: tuple[int, ...],
    max_samples: int | None,
    command: str | None,
    log: Callable[[str], None],
) -> list[Path]:
    t0 = time.perf_counter()
    modality = ARCHITECTURES[entry.arch][1]
    vocab: tuple[str, ...] | None = None
    arch_kwargs = dict(entry.arch_kwargs)
    if modality == "text":
        vocab_task = load_source_task(entry.vocab_from or "wordnet-verbs")
        vocab = build_vocab(list(vocab_task.train_items), max_size=VOCAB_SIZE)  # type: ignore[arg-type]
        arch_kwargs["vocab_size"] = len(vocab)
    data = None
    if entry.source_task is not None:
        data = _subsample(load_source_task(entry.source_task), max_samples, entry.seed)
    num_classes = len(data.classes) if data is not None else 1
    with torch.random.fork_rng(devices=[]):  # seeded initialisation; the caller's RNG is untouched
        torch.manual_seed(entry.seed)
        model = build_model(entry.arch, num_classes, **arch_kwargs)
    regenerate = command or f"ckptrank zoo build --only {entry.name} --force"
    base_card: dict[str, Any] = {
        "architecture": entry.arch,
        "arch_kwargs": arch_kwargs,
        "num_classes": num_classes,
        "has_head": data is not None,
        "modality": modality,
        "preprocessing": _preprocessing(modality),
        "seed": entry.seed,
        "run": entry.name,
        "run_epochs": n_epochs,
        "description": entry.description,
        "command": regenerate,
        "recipe": _RECIPE if data is not None else None,
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores",
    }
    if data is None:
        card = {
            **base_card,
            "source_task": None,
            "source_classes": [],
            "data_provenance": "none: random initialisation (untrained)",
            "epochs": 0,
            "stage": "random-init",
            "source_accuracy": None,
            "source_accuracy_metric": None,
            "train_samples": 0,
            "seconds": round(time.perf_counter() - t0, 2),
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }
        return [_save(model, entry.name, out, card, vocab)]

    batches = _Batches(data, vocab, rotation=entry.source_task == "fashion-mnist-rotation")
    batch_size = int(_RECIPE["batch_size"])
    lr = float(_RECIPE["lr"][modality])  # type: ignore[index]
    steps_per_epoch = max(1, -(-len(batches) // batch_size))
    total = steps_per_epoch * max(n_epochs, 1)
    opt = torch.optim.SGD(
        model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=float(_RECIPE["weight_decay"])
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1.0 + np.cos(np.pi * min(s, total) / total))
    )
    gen = torch.Generator().manual_seed(entry.seed)
    saved: list[Path] = []
    model.train()
    for epoch in range(1, n_epochs + 1):
        order = torch.randperm(len(batches), generator=gen)
        running = 0.0
        for start in range(0, len(order), batch_size):
            x, y = batches.train_batch(order[start : start + batch_size], gen)
            loss = functional.cross_entropy(_call(model, x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += float(loss.detach()) * len(y)
        log(f"{entry.name}: epoch {epoch}/{n_epochs} loss {running / len(batches):.4f}")
        if epoch in stages or epoch == n_epochs:
            acc = _holdout_accuracy(model, batches)
            name = entry.name if epoch == n_epochs else f"{entry.name}-e{epoch}"
            card = {
                **base_card,
                "source_task": data.name,
                "source_classes": list(data.classes),
                "data_provenance": data.description,
                "epochs": epoch,
                "stage": "final" if epoch == n_epochs else f"epoch {epoch} of {n_epochs} (same run)",
                "source_accuracy": round(100.0 * acc, 2),
                "source_accuracy_metric": (
                    f"top-1 accuracy (%) on the held-out source split ({len(batches.hold_y)} samples)"
                ),
                "train_samples": len(batches),
                "seconds": round(time.perf_counter() - t0, 2),
                "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            }
            saved.append(_save(model, name, out, card, vocab))
            log(f"{entry.name}: saved {name} (source accuracy {100 * acc:.2f}%)")
    return saved


def build_zoo(
    names: Sequence[str] | None = None,
    out_dir: str | Path = CHECKPOINT_DIR,
    *,
    force: bool = False,
    epochs: int | None = None,
    max_samples: int | None = None,
    threads: int | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, list[Path]]:
    """Build the zoo's runs (all, or ``names``); runs whose every output exists are skipped unless ``force``.

    Returns
    -------
    dict
        Run name -> saved files (empty for a skipped run).
    """
    chosen = list(ZOO) if not names else list(names)
    unknown = [n for n in chosen if n not in ZOO]
    if unknown:
        raise ValueError(f"unknown zoo entry {unknown[0]!r}; valid: {', '.join(ZOO)}")
    out = Path(out_dir)
    done: dict[str, list[Path]] = {}
    for name in chosen:
        entry = ZOO[name]
        exists = all(
            (out / f"{o}.safetensors").is_file() and card_path(out, o).is_file() for o in entry.outputs
        )
        if exists and not force:
            done[name] = []
            continue
        done[name] = pretrain(entry, out, epochs=epochs, max_samples=max_samples, threads=threads, log=log)
    return done
