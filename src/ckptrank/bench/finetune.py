"""Ground-truth fine-tuning: the ``full`` and ``linear`` protocols, grid search, seeds, resumable.

The protocol follows the seed papers (ALGORITHMS.md 4.1-4.2), scaled by options:

* **Data.** A target task is a training *pool* and a test set. A validation split is carved from
  the pool, stratified per class and seeded by the task's data seed (``val_fraction`` of every
  class, at least one sample when the class has two or more); the rest trains. The same split
  serves every checkpoint and every seed, so checkpoints are compared on identical data.
* **full.** The whole checkpoint is fine-tuned together with a new linear head on its
  penultimate features (or on the pooled output of the ``@layer`` it names; every parameter is
  trainable, including frozen-by-default ones such as GloVe's table), in two stages (LP-FT, Kumar
  et al., ICLR 2022): the head is first trained alone on the frozen pre-trained features for
  ``probe_epochs``, then everything is fine-tuned for ``epochs``. The head reads the features
  centred by the mean of the pre-trained features on the training part and divided by their
  root-mean-square norm (fixed constants: a re-parametrised linear head whose input starts with
  norm about 1), so one learning-rate grid suits checkpoints whose feature scales differ by orders
  of magnitude; the head learns at ``head_lr_multiplier`` times the learning rate. Batch-norm
  statistics stay frozen (``freeze_batchnorm``) and the gradient norm of every fine-tuning step is
  clipped (``max_grad_norm``). Model inputs are prepared once by the checkpoint's own
  preprocessing; no augmentation.
* **linear.** Features are extracted once (through the feature cache when given), standardised
  with the mean and standard deviation of the training part, and a linear head is trained on them.
* **Optimisation (both).** SGD, momentum 0.9 (Nesterov by default), weight decay applied to every
  parameter, learning rate following a cosine schedule from ``lr`` to 0 over all steps (no
  warm-up), mini-batches reshuffled every epoch, cross-entropy loss.
* **Selection.** The ``lr x weight_decay`` grid is searched once, with the first seed; the
  configuration with the highest validation accuracy is selected (ties: lower validation loss,
  then grid order). The selected configuration is then re-run with every other seed. A seed fixes
  the head's initialisation, dropout and the batch order; the data split stays fixed.
* **Result.** Test accuracy on the task's test split of the model trained on the training part
  (no re-training on train + validation: a deviation from SFDA/NeuCRaB that keeps the cost at one
  run per seed; the validation accuracy of every run is recorded too).

Every run is recorded in the :class:`~ckptrank.bench.store.ResultsStore` as soon as it finishes,
keyed by (suite, task, checkpoint, protocol, seed, lr, weight_decay): a re-run skips recorded keys,
and a killed run leaves no partial row, so it redoes only the run that was interrupted. A recorded
run whose configuration (or, once the checkpoint is loaded, whose weights fingerprint) differs from
the current one is an error, never silently reused.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional

from ckptrank.data import TargetDataset, load_dataset

from .store import ResultsStore

__all__ = [
    "DEFAULT_EPOCHS",
    "PROTOCOLS",
    "FinetuneConfig",
    "FinetuneTask",
    "RunResult",
    "finetune",
    "finetune_checkpoint",
    "load_task",
    "select_config",
    "stratified_split",
    "summarize_runs",
]

logger = logging.getLogger(__name__)

PROTOCOLS = ("full", "linear")
#: Epochs when none are given: full fine-tuning is expensive, a linear head on cached features is not.
DEFAULT_EPOCHS = {"full": 10, "linear": 30}


# ---------------------------------------------------------------------------------------------------------
# configuration and data


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of one fine-tuning protocol (everything but the checkpoint and the task).

    Parameters
    ----------
    protocol : {"full", "linear"}
    lrs : tuple of float, default (0.01, 0.03)
        Learning-rate grid.
    weight_decays : tuple of float, default (0.0, 1e-3)
        Weight-decay grid (searched as the product ``lrs x weight_decays``).
    epochs : int, optional
        Passes over the training part; default :data:`DEFAULT_EPOCHS` of the protocol.
    batch_size : int, default 32
    momentum : float, default 0.9
    nesterov : bool, default True
    seeds : tuple of int, default (0, 1, 2)
        The grid is searched with the first; the selected configuration is re-run with the others.
    val_fraction : float, default 0.2
        Share of every class of the training pool held out for selection.
    freeze_batchnorm : bool, default True
        Protocol ``full`` only: keep batch-norm layers in evaluation mode while fine-tuning (their
        running statistics stay the pre-trained ones; their scale and shift still learn). With
        small batches of a target domain far from the source, batch statistics make training-mode
        features disagree with evaluation-mode ones; False uses batch statistics as usual.
    probe_epochs : int, default 30
        Protocol ``full`` only: epochs of a first stage that trains the new head alone on the frozen
        pre-trained features (at the head's learning rate) before everything is fine-tuned: LP-FT
        (Kumar et al., ICLR 2022). 0 fine-tunes from a randomly initialised head.
    max_grad_norm : float or None, default 1.0
        Protocol ``full`` only: clip the global gradient norm of each fine-tuning step to this value
        (None: no clipping).
    head_lr_multiplier : float, default 30
        Protocol ``full`` only: the new head learns at ``lr * head_lr_multiplier`` (the pre-trained
        part at ``lr``). The head's input has norm about 1 (see the module notes), so it needs a far
        larger step than the pre-trained weights to train in a short schedule; 1 is the seed papers'
        single learning rate.
    device : str, default "cpu"
    eval_batch_size : int, default 128
    """

    protocol: str = "full"
    lrs: tuple[float, ...] = (0.01, 0.03)
    weight_decays: tuple[float, ...] = (0.0, 1e-3)
    epochs: int | None = None
    batch_size: int = 32
    momentum: float = 0.9
    nesterov: bool = True
    seeds: tuple[int, ...] = (0, 1, 2)
    val_fraction: float = 0.2
    freeze_batchnorm: bool = True
    probe_epochs: int = 30
    max_grad_norm: float | None = 1.0
    head_lr_multiplier: float = 30.0
    device: str = "cpu"
    eval_batch_size: int = 128

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {self.protocol!r}")
        for label, grid in (("lrs", self.lrs), ("weight_decays", self.weight_decays), ("seeds", self.seeds)):
            if len(grid) == 0:
                raise ValueError(f"{label} must hold at least one value")
            if len(set(grid)) != len(grid):
                raise ValueError(f"{label} has duplicate values: {list(grid)}")
        if any(not (lr > 0 and math.isfinite(lr)) for lr in self.lrs):
            raise ValueError(f"learning rates must be positive and finite, got {list(self.lrs)}")
        if any(not (wd >= 0 and math.isfinite(wd)) for wd in self.weight_decays):
            raise ValueError(f"weight decays must be non-negative and finite, got {list(self.weight_decays)}")
        if self.max_grad_norm is not None and not (
            self.max_grad_norm > 0 and math.isfinite(self.max_grad_norm)
        ):
            raise ValueError(f"max_grad_norm must be positive and finite (or None), got {self.max_grad_norm}")
        if self.probe_epochs < 0:
            raise ValueError(f"probe_epochs must be at least 0, got {self.probe_epochs}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError("batch sizes must be at least 1")
        if not (self.head_lr_multiplier > 0 and math.isfinite(self.head_lr_multiplier)):
            raise ValueError(f"head_lr_multiplier must be positive and finite, got {self.head_lr_multiplier}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must lie strictly between 0 and 1, got {self.val_fraction}")
        object.__setattr__(self, "lrs", tuple(float(v) for v in self.lrs))
        object.__setattr__(self, "weight_decays", tuple(float(v) for v in self.weight_decays))
        object.__setattr__(self, "seeds", tuple(int(v) for v in self.seeds))

    @property
    def resolved_epochs(self) -> int:
        return int(self.epochs if self.epochs is not None else DEFAULT_EPOCHS[self.protocol])

    @property
    def grid(self) -> list[tuple[float, float]]:
        """The ``(lr, weight_decay)`` pairs in search order."""
        return [(lr, wd) for lr in self.lrs for wd in self.weight_decays]

    def recipe(self) -> dict[str, Any]:
        """The settings that define a result (everything but the seeds and the device)."""
        out = asdict(self)
        for key in ("seeds", "device", "eval_batch_size"):
            out.pop(key)
        out["epochs"] = self.resolved_epochs
        if self.protocol == "linear":
            out.pop("head_lr_multiplier")
            out.pop("freeze_batchnorm")
            out.pop("probe_epochs")
            out.pop("max_grad_norm")
        else:
            out["head_input"] = "(features - mean) / rms norm, pre-trained training-part constants"
        out["lrs"] = list(self.lrs)
        out["weight_decays"] = list(self.weight_decays)
        out["schedule"] = "cosine to 0 over all steps, no warm-up"
        out["optimizer"] = "SGD"
        return out


@dataclass
class FinetuneTask:
    """A target task: a training pool (train + validation) and a test set.

    Attributes
    ----------
    name : str
    pool : TargetDataset
        Training pool; the validation split is carved from it (:func:`stratified_split`).
    test : TargetDataset
    split_seed : int
        Seed of the validation split (and of the subsamples that built the pool and the test set).
    spec : dict
        How the task was built (data spec, per-class counts), recorded with every run.
    """

    name: str
    pool: TargetDataset
    test: TargetDataset
    split_seed: int = 0
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return int(self.pool.n_classes)


def load_task(
    data: str,
    *,
    name: str | None = None,
    per_class: int | None = None,
    test_per_class: int | None = None,
    seed: int = 0,
) -> FinetuneTask:
    """Build a task from a dataset spec: its ``train`` split (subsampled) and ``test`` split.

    Parameters
    ----------
    data : str
        Spec for :func:`ckptrank.data.load_dataset`; it must have ``train`` and ``test`` splits.
    per_class, test_per_class : int, optional
        Stratified subsample sizes of the pool and of the test set (None: everything).
    seed : int, default 0
        Seed of both subsamples and of the validation split.
    """
    pool = load_dataset(data, split="train", per_class=per_class, seed=seed)
    test = load_dataset(data, split="test", per_class=test_per_class, seed=seed)
    if pool.split != "train" or test.split != "test":
        raise ValueError(
            f"dataset {data!r} has no train/test split structure (got {pool.split!r}/{test.split!r}); "
            "fine-tuning needs both"
        )
    if tuple(pool.classes or ()) != tuple(test.classes or ()):
        raise ValueError(f"dataset {data!r}: the train and test splits list different classes")
    spec = {"data": data, "per_class": per_class, "test_per_class": test_per_class, "seed": int(seed)}
    return FinetuneTask(name or pool.name, pool, test, int(seed), spec)


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices: ``round(val_fraction * n_c)`` of every class ``c`` (at least 1
    when ``n_c >= 2``, never all), drawn with ``default_rng([seed, c])``; both sorted.

    >>> tr, va = stratified_split(np.array([0, 0, 0, 0, 1, 1, 1, 1, 1]), 0.25, seed=0)
    >>> len(tr), len(va)
    (7, 2)
    """
    labels = np.asarray(labels)
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    for code in np.unique(labels):
        idx = np.flatnonzero(labels == code)
        n_val = round(val_fraction * idx.size)
        n_val = min(max(n_val, 1), idx.size - 1) if idx.size >= 2 else 0
        perm = np.random.default_rng([int(seed), int(code)]).permutation(idx)
        val.append(perm[:n_val])
        train.append(perm[n_val:])
    return np.sort(np.concatenate(train)).astype(np.int64), np.sort(np.concatenate(val)).astype(np.int64)


def _config_id(recipe: Mapping[str, Any], task: FinetuneTask, spec: str) -> str:
    text = json.dumps({"recipe": recipe, "task": task.spec, "checkpoint": spec}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------------------
# training


@dataclass(frozen=True)
class RunResult:
    """Outcome of one fine-tuning run."""

    val_accuracy: float
    val_loss: float
    test_accuracy: float
    seconds: float
    cpu_seconds: float
    n_train: int
    n_val: int
    n_test: int
    steps: int
    #: Validation accuracy after every epoch (of the fine-tuning stage for ``full``), rounded to 6
    #: decimals; shorter than the epochs when the run diverged.
    val_curve: tuple[float, ...] = ()


def cosine_schedule(total_steps: int) -> Callable[[int], float]:
    """The learning-rate factor at each step: cosine from 1 to 0 over ``total_steps`` (then 0)."""
    return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))


def sgd_optimizer(params: Any, lr: float, wd: float, cfg: FinetuneConfig) -> torch.optim.SGD:
    """SGD over ``params`` (a parameter list or a list of param-group dicts)."""
    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=wd)


def _move(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: _move(v, device) for k, v in batch.items()}
    return batch


class Trainer:
    """Loads what one (checkpoint, task) pair needs once; :meth:`run` trains one configuration."""

    def __init__(self, task: FinetuneTask, cfg: FinetuneConfig) -> None:
        self.task = task
        self.cfg = cfg
        self.device = torch.device(cfg.device)
        self.train_idx, self.val_idx = stratified_split(task.pool.labels, cfg.val_fraction, task.split_seed)
        if self.train_idx.size == 0 or self.val_idx.size == 0:
            raise ValueError(
                f"task {task.name!r}: the pool of {len(task.pool)} samples is too small for a validation "
                f"split of {cfg.val_fraction:g}; give more samples per class"
            )
        self.y_pool = torch.tensor(np.asarray(task.pool.labels), dtype=torch.long)
        self.y_test = torch.tensor(np.asarray(task.test.labels), dtype=torch.long)
        self._curve: list[float] = []

    def run(self, lr: float, wd: float, seed: int) -> RunResult:
        t0, c0 = time.perf_counter(), time.process_time()
        self._curve = []
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(seed)
            steps = self._train(lr, wd, seed)
            val_acc, val_loss = self._evaluate("val")
            test_acc, _ = self._evaluate("test")
        return RunResult(
            val_accuracy=val_acc,
            val_loss=val_loss,
            test_accuracy=test_acc,
            seconds=time.perf_counter() - t0,
            cpu_seconds=time.process_time() - c0,
            n_train=int(self.train_idx.size),
            n_val=int(self.val_idx.size),
            n_test=len(self.y_test),
            steps=steps,
            val_curve=tuple(self._curve),
        )

    def _batches(self, seed: int) -> Any:
        gen = torch.Generator().manual_seed(int(seed))
        n = self.train_idx.size
        for _ in range(self.cfg.resolved_epochs):
            order = self.train_idx[torch.randperm(n, generator=gen).numpy()]
            for start in range(0, n, self.cfg.batch_size):
                yield order[start : start + self.cfg.batch_size]

    def _n_steps(self) -> int:
        return self.cfg.resolved_epochs * math.ceil(self.train_idx.size / self.cfg.batch_size)

    def _steps_per_epoch(self) -> int:
        return math.ceil(self.train_idx.size / self.cfg.batch_size)

    def _end_of_epoch(self) -> None:
        """Record the validation accuracy of the model as it stands (no randomness, no state change)."""
        self._curve.append(round(self._evaluate("val")[0], 6))

    def _train(self, lr: float, wd: float, seed: int) -> int:
        raise NotImplementedError

    def _evaluate(self, which: str) -> tuple[float, float]:
        raise NotImplementedError


class LinearTrainer(Trainer):
    """Linear head on standardised, cached features."""

    def __init__(
        self, ckpt: Any, task: FinetuneTask, cfg: FinetuneConfig, cache: Any, batch_size: int
    ) -> None:
        super().__init__(task, cfg)
        from ckptrank.engine import extract

        pool = extract(ckpt, task.pool, cache=cache, batch_size=batch_size, device=cfg.device).features
        test = extract(ckpt, task.test, cache=cache, batch_size=batch_size, device=cfg.device).features
        pool64 = np.asarray(pool, dtype=np.float64)
        mean = pool64[self.train_idx].mean(axis=0)
        std = pool64[self.train_idx].std(axis=0)
        # A feature is constant when its spread is negligible next to the largest one (the scale of the
        # features themselves is irrelevant: an untrained network may output values near 1e-8).
        std = np.where(std > 1e-6 * float(std.max(initial=0.0)), std, 1.0)
        self.x_pool = torch.as_tensor((pool64 - mean) / std, dtype=torch.float32, device=self.device)
        self.x_test = torch.as_tensor(
            (np.asarray(test, np.float64) - mean) / std, dtype=torch.float32, device=self.device
        )
        self.head: nn.Linear | None = None

    def _train(self, lr: float, wd: float, seed: int) -> int:
        head = nn.Linear(self.x_pool.shape[1], self.task.n_classes).to(self.device)
        opt = sgd_optimizer(head.parameters(), lr, wd, self.cfg)
        total = self._n_steps()
        sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_schedule(total))
        y = self.y_pool.to(self.device)
        self.head = head
        per_epoch = self._steps_per_epoch()
        for step, idx in enumerate(self._batches(seed), start=1):
            loss = functional.cross_entropy(head(self.x_pool[idx]), y[idx])
            if not torch.isfinite(loss):
                break  # diverged: evaluated as it is (selection will not pick it)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % per_epoch == 0:
                self._end_of_epoch()
        return total

    def _evaluate(self, which: str) -> tuple[float, float]:
        assert self.head is not None
        if which == "val":
            x, y = self.x_pool[self.val_idx], self.y_pool[self.val_idx]
        else:
            x, y = self.x_test, self.y_test
        with torch.no_grad():
            logits = self.head(x).cpu()
        return _scores(logits, y)


def _scores(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Accuracy and mean cross-entropy; non-finite logits (a diverged run) count as wrong, loss inf."""
    finite = torch.isfinite(logits).all(1)
    correct = (logits.argmax(1) == y) & finite
    loss = float(functional.cross_entropy(logits, y)) if bool(finite.all()) else math.inf
    return float(correct.float().mean()), loss


class FullTrainer(Trainer):
    """The whole checkpoint plus a new linear head, restored to the pre-trained weights before every run."""

    def __init__(self, ckpt: Any, task: FinetuneTask, cfg: FinetuneConfig) -> None:
        super().__init__(task, cfg)
        from ckptrank.adapters.toolkit import TorchCheckpoint

        if not isinstance(ckpt, TorchCheckpoint):
            raise ValueError(
                f"protocol 'full' needs a PyTorch checkpoint; {ckpt.spec!r} is a {type(ckpt).__name__} "
                "(use protocol 'linear')"
            )
        self.ckpt = ckpt
        self.module: nn.Module = ckpt.module
        ckpt.to(self.device)
        self.initial = copy.deepcopy(self.module.state_dict())
        self.text = ckpt.modality == "text"
        self.x_pool = self._prepare(task.pool.items)
        self.x_test = self._prepare(task.test.items)
        self.head: nn.Module | None = None
        # The head's input is centred by the pre-trained features' mean on the training part and divided
        # by their root-mean-square norm (one scalar: per-feature scaling would blow up near-constant
        # features as soon as fine-tuning moves them), so it starts with norm about 1 whatever the
        # checkpoint. Fixed for the run: a re-parametrised linear head.
        self.module.eval()
        feats = self._features(self.x_pool, self.train_idx).double()
        mean = feats.mean(0)
        scale = float(((feats - mean) ** 2).sum(1).mean().sqrt())
        self.mean = mean.float().to(self.device)
        self.std = torch.tensor(scale if scale > 1e-12 else 1.0, dtype=torch.float32, device=self.device)
        self.num_features = int(feats.shape[1])
        self.probe_x = ((feats - mean) / float(self.std)).float().to(self.device)  # rows of train_idx

    def _prepare(self, items: Any) -> Any:
        if self.text:
            return list(items)
        chunks = [self.ckpt.prepare(items[i : i + 256]) for i in range(0, len(items), 256)]
        return torch.cat(chunks)

    def _inputs(self, source: Any, idx: np.ndarray) -> Any:
        if self.text:
            return _move(self.ckpt.prepare([source[int(i)] for i in idx]), self.device)
        return source[torch.as_tensor(idx, dtype=torch.long)].to(self.device)

    def _features(self, source: Any, idx: np.ndarray) -> torch.Tensor:
        """Features in eval mode without gradients (batches of ``eval_batch_size``), on the CPU."""
        parts = []
        with torch.no_grad():
            for start in range(0, idx.size, self.cfg.eval_batch_size):
                x = self._inputs(source, idx[start : start + self.cfg.eval_batch_size])
                parts.append(self.ckpt.trainable_features(x).float().cpu())
        return torch.cat(parts)

    def _head(self, features: torch.Tensor) -> torch.Tensor:
        assert self.head is not None
        return self.head((features - self.mean) / self.std)

    def _probe(self, head: nn.Linear, lr: float, wd: float, seed: int) -> None:
        """Stage 1 (LP-FT): train the head alone on the frozen pre-trained features."""
        epochs = self.cfg.probe_epochs
        n = self.probe_x.shape[0]
        steps_per_epoch = math.ceil(n / self.cfg.batch_size)
        opt = sgd_optimizer(head.parameters(), lr, wd, self.cfg)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_schedule(epochs * steps_per_epoch))
        gen = torch.Generator().manual_seed(int(seed) + 1_000_003)
        y = self.y_pool[torch.as_tensor(self.train_idx)].to(self.device)
        for _ in range(epochs):
            order = torch.randperm(n, generator=gen)
            for start in range(0, n, self.cfg.batch_size):
                idx = order[start : start + self.cfg.batch_size]
                loss = functional.cross_entropy(head(self.probe_x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()

    def _train(self, lr: float, wd: float, seed: int) -> int:
        self.module.load_state_dict(self.initial)
        for p in self.module.parameters():
            p.requires_grad_(True)
        head = nn.Linear(self.num_features, self.task.n_classes).to(self.device)
        self.head = head
        if self.cfg.probe_epochs:
            self._probe(head, lr * self.cfg.head_lr_multiplier, wd, seed)
        groups = [
            {"params": list(self.module.parameters())},
            {"params": list(head.parameters()), "lr": lr * self.cfg.head_lr_multiplier},
        ]
        params = [p for g in groups for p in g["params"]]
        opt = sgd_optimizer(groups, lr, wd, self.cfg)
        total = self._n_steps()
        sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_schedule(total))
        self._train_mode()
        per_epoch = self._steps_per_epoch()
        for step, idx in enumerate(self._batches(seed), start=1):
            x = self._inputs(self.x_pool, idx)
            y = self.y_pool[torch.as_tensor(idx)].to(self.device)
            loss = functional.cross_entropy(self._head(self.ckpt.trainable_features(x)), y)
            if not torch.isfinite(loss):
                break  # diverged: evaluated as it is (selection will not pick it)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm)
            opt.step()
            sched.step()
            if step % per_epoch == 0:
                self.module.eval()  # evaluation mode uses no randomness: the run is unchanged by it
                self._end_of_epoch()
                self._train_mode()
        self.module.eval()
        return total

    def _train_mode(self) -> None:
        self.module.train()
        if self.cfg.freeze_batchnorm:
            for sub in self.module.modules():
                if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                    sub.eval()

    def _evaluate(self, which: str) -> tuple[float, float]:
        assert self.head is not None
        if which == "val":
            source, idx, y = self.x_pool, self.val_idx, self.y_pool[torch.as_tensor(self.val_idx)]
        else:
            source, idx, y = self.x_test, np.arange(len(self.y_test)), self.y_test
        parts = []
        with torch.no_grad():
            for start in range(0, idx.size, self.cfg.eval_batch_size):
                x = self._inputs(source, idx[start : start + self.cfg.eval_batch_size])
                parts.append(self._head(self.ckpt.trainable_features(x)).float().cpu())
        return _scores(torch.cat(parts), y)


# ---------------------------------------------------------------------------------------------------------
# selection, the store, the driver


def select_config(
    runs: pd.DataFrame, grid: Sequence[tuple[float, float]] | None = None
) -> tuple[float, float]:
    """The selected ``(lr, weight_decay)`` among the grid runs of one seed.

    Highest ``val_accuracy``; ties broken by lower ``val_loss`` (when the column is present), then
    by the order of ``grid`` (default: ascending lr, then weight decay).

    >>> runs = pd.DataFrame({"lr": [0.01, 0.1], "weight_decay": [0.0, 0.0], "val_accuracy": [0.5, 0.7]})
    >>> select_config(runs)
    (0.1, 0.0)
    """
    if len(runs) == 0:
        raise ValueError("no runs to select from")
    order = (
        list(grid)
        if grid is not None
        else sorted({(float(a), float(b)) for a, b in zip(runs.lr, runs.weight_decay, strict=True)})
    )
    rank = {pair: i for i, pair in enumerate(order)}
    best_key: tuple[float, float, int] | None = None
    best: tuple[float, float] | None = None
    for row in runs.itertuples(index=False):
        pair = (float(row.lr), float(row.weight_decay))
        loss = getattr(row, "val_loss", None)
        loss = float(loss) if loss is not None and np.isfinite(loss) else math.inf
        key = (-float(row.val_accuracy), loss, rank.get(pair, len(rank)))
        if best_key is None or key < best_key:
            best_key, best = key, pair
    assert best is not None
    return best


def _runs(store: ResultsStore, suite: str, task: str, checkpoint: str, protocol: str) -> pd.DataFrame:
    rows = store.table("finetune_runs", suite=suite, task=task, checkpoint=checkpoint, protocol=protocol)
    if len(rows):
        cfg = rows["config"].map(json.loads)
        rows["val_loss"] = cfg.map(lambda c: c.get("val_loss", math.nan)).astype(float)
        rows["config_id"] = cfg.map(lambda c: c.get("config_id"))
    return rows


def _check_recorded(rows: pd.DataFrame, config_id: str, what: str, store: ResultsStore) -> None:
    stale = rows[rows["config_id"] != config_id]
    if len(stale):
        raise ValueError(
            f"the results store {store.path} already holds {len(stale)} run(s) of {what} recorded under "
            f"another configuration (config_id {stale['config_id'].iloc[0]} vs {config_id} now: different "
            "epochs, grid, data or checkpoint spec); use another results file or suite name, or delete "
            "those rows"
        )


@dataclass(frozen=True)
class FinetuneJob:
    """One fine-tuning configuration of one checkpoint: the unit of work of :func:`finetune`.

    Attributes
    ----------
    spec : str
        Checkpoint spec (:func:`ckptrank.adapters.load_checkpoint`).
    lr, weight_decay : float
        The configuration.
    seed : int
        Seed of the head's initialisation and of the batch order.
    recorded_fingerprint : str, optional
        Weights fingerprint of the runs already recorded for this checkpoint: a checkpoint whose
        weights changed since is refused as soon as it is loaded, before any training.
    recorded_in : str
        Where those runs are recorded (for the message).
    """

    spec: str
    lr: float
    weight_decay: float
    seed: int
    recorded_fingerprint: str | None = None
    recorded_in: str = ""


@dataclass(frozen=True)
class JobOutcome:
    """What one :class:`FinetuneJob` returns to the process that records it.

    Attributes
    ----------
    result : RunResult
    fingerprint : str or None
        Weights fingerprint of the checkpoint (None for a task of precomputed features).
    threads : int
        Torch CPU threads of the process that ran it.
    """

    result: RunResult
    fingerprint: str | None
    threads: int


class TrainerReuse:
    """Keeps the trainer of the last checkpoint a unit used, for the next unit in the same process.

    Consecutive jobs of one checkpoint then load it (and, for the linear protocol, extract its
    features) once, as a sequential loop would. The kept trainer never travels: a pickled copy
    (what a Ray task receives) starts empty, so each remote unit builds its own.
    """

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._value: tuple[Trainer, str | None] | None = None

    def get(
        self, key: tuple[Any, ...], make: Callable[[], tuple[Trainer, str | None]]
    ) -> tuple[Trainer, str | None]:
        if self._key != key or self._value is None:
            self._key, self._value = None, None  # free the previous model before loading the next
            self._value = make()
            self._key = key
        return self._value

    def clear(self) -> None:
        self._key, self._value = None, None

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._key, self._value = None, None


def _make_trainer(
    spec: str, task: FinetuneTask, config: FinetuneConfig, cache: Any, batch_size: int
) -> tuple[Trainer, str | None]:
    """Load the checkpoint and build the protocol's trainer; also the weights fingerprint."""
    if task.pool.modality == "features":
        if config.protocol != "linear":
            raise ValueError(
                f"task {task.name!r} holds precomputed features: only protocol 'linear' applies to it"
            )
        return LinearTrainer(None, task, config, None, batch_size), None
    from ckptrank.adapters import load_checkpoint

    ckpt = load_checkpoint(spec)
    if ckpt.modality != task.pool.modality:
        raise ValueError(
            f"checkpoint {spec!r} takes {ckpt.modality} inputs but task {task.name!r} holds "
            f"{task.pool.modality} samples"
        )
    fingerprint = ckpt.weights_fingerprint()
    if config.protocol == "linear":
        return LinearTrainer(ckpt, task, config, cache, batch_size), fingerprint
    return FullTrainer(ckpt, task, config), fingerprint


def run_job(
    job: FinetuneJob,
    *,
    task: FinetuneTask,
    config: FinetuneConfig,
    cache: Any = None,
    batch_size: int = 64,
    reuse: TrainerReuse | None = None,
) -> JobOutcome:
    """Run one fine-tuning configuration: the unit of work an executor runs.

    A pure function of its inputs (the same job gives the same accuracies), so a retried unit
    gives what the first attempt would have; it writes nothing (the caller records the outcome).

    Parameters
    ----------
    job : FinetuneJob
    task : FinetuneTask
    config : FinetuneConfig
    cache : FeatureCache, optional
        Feature cache of the linear protocol's extraction (shared storage on a cluster).
    batch_size : int, default 64
        Extraction batch size (linear protocol).
    reuse : TrainerReuse, optional
        Keeps the loaded checkpoint for the next job of the same checkpoint in this process.

    Returns
    -------
    JobOutcome
    """
    key = (job.spec, _config_id(config.recipe(), task, job.spec))
    make = functools.partial(_make_trainer, job.spec, task, config, cache, batch_size)
    trainer, fingerprint = reuse.get(key, make) if reuse is not None else make()
    recorded = job.recorded_fingerprint
    if recorded is not None and fingerprint is not None and fingerprint != recorded:
        raise ValueError(
            f"the results store {job.recorded_in} holds runs of {job.spec} on {task.name} made with other "
            f"weights (fingerprint {recorded[:12]} vs {fingerprint[:12]} now); use another results file, "
            "suite or checkpoint name, or delete those rows"
        )
    result = trainer.run(job.lr, job.weight_decay, job.seed)
    return JobOutcome(result=result, fingerprint=fingerprint, threads=torch.get_num_threads())


@dataclass
class _PairPlan:
    """The driver's view of one (task, checkpoint) pair: what is recorded, what to run next."""

    name: str
    spec: str
    task: FinetuneTask
    config_id: str
    base: dict[str, Any]
    rows: pd.DataFrame
    done: set[tuple[int, float, float]]
    selected: tuple[float, float] | None = None

    def recorded_fingerprints(self) -> set[str]:
        """Weights fingerprints of the runs recorded for this pair (none for precomputed features)."""
        if not len(self.rows):
            return set()
        found = {c.get("weights_fingerprint") for c in self.rows["config"].map(json.loads)}
        return {f for f in found if f is not None}

    def job(self, lr: float, weight_decay: float, seed: int, store: ResultsStore) -> FinetuneJob:
        """The unit that runs one configuration of this pair, carrying the recorded fingerprint."""
        recorded = self.recorded_fingerprints()
        return FinetuneJob(
            self.spec, lr, weight_decay, seed, min(recorded) if recorded else None, str(store.path)
        )


def _plan_pair(
    name: str, spec: str, task: FinetuneTask, config: FinetuneConfig, store: ResultsStore, suite: str
) -> _PairPlan:
    base = dict(suite=suite, task=task.name, checkpoint=name, protocol=config.protocol)
    rows = _runs(store, **base)
    config_id = _config_id(config.recipe(), task, spec)
    if len(rows):
        _check_recorded(rows, config_id, f"{name} on {task.name} ({config.protocol})", store)
    done = {(int(r.seed), float(r.lr), float(r.weight_decay)) for r in rows.itertuples()}
    return _PairPlan(name, spec, task, config_id, base, rows, done)


def _record(
    plan: _PairPlan,
    job: FinetuneJob,
    outcome: JobOutcome,
    *,
    config: FinetuneConfig,
    store: ResultsStore,
    selected: bool,
    say: Callable[[str], None],
) -> None:
    """Write one finished job to the store (the driver alone writes), after checking its weights."""
    what = f"{plan.name} on {plan.task.name} ({config.protocol})"
    recorded = plan.recorded_fingerprints()
    if recorded and outcome.fingerprint is not None and recorded != {outcome.fingerprint}:
        raise ValueError(
            f"the results store {store.path} holds runs of {what} made with other weights "
            f"(fingerprint {sorted(recorded)[0][:12]} vs {outcome.fingerprint[:12]} now); use another "
            "results file, suite or checkpoint name, or delete those rows"
        )
    result = outcome.result
    run_config = {
        **config.recipe(),
        "config_id": plan.config_id,
        "checkpoint_spec": plan.spec,
        "weights_fingerprint": outcome.fingerprint,
        "task": plan.task.spec,
        "grid_seed": config.seeds[0],
        "val_loss": result.val_loss,
        "n_train": result.n_train,
        "n_val": result.n_val,
        "n_test": result.n_test,
        "steps": result.steps,
        "val_curve": list(result.val_curve),
        "cpu_seconds": round(result.cpu_seconds, 3),
        "device": config.device,
        "torch": torch.__version__,
        "threads": outcome.threads,
    }
    store.add_run(
        **plan.base,
        seed=job.seed,
        lr=job.lr,
        weight_decay=job.weight_decay,
        val_accuracy=result.val_accuracy,
        test_accuracy=result.test_accuracy,
        selected=selected,
        epochs=config.resolved_epochs,
        seconds=round(result.seconds, 3),
        config=run_config,
    )
    plan.done.add((job.seed, job.lr, job.weight_decay))
    plan.rows = _runs(store, **plan.base)
    say(
        f"{plan.task.name} | {plan.name} | {config.protocol} seed {job.seed} lr {job.lr:g} "
        f"wd {job.weight_decay:g}: val {result.val_accuracy:.4f} test {result.test_accuracy:.4f} "
        f"({result.seconds:.1f} s)"
    )


def _run_plan(
    plans: Sequence[_PairPlan],
    task: FinetuneTask,
    config: FinetuneConfig,
    store: ResultsStore,
    *,
    cache: Any,
    batch_size: int,
    executor: Any,
    on_change: Callable[[], None] | None,
    say: Callable[[str], None],
) -> None:
    """The protocol for the pairs ``plans`` of one task, as jobs handed to ``executor``.

    Two waves: the grid with the first seed for every checkpoint of ``plans`` (then each pair's
    selection is marked), and the selected configuration with every other seed. Jobs are listed
    checkpoint by checkpoint in grid order; each is recorded as it returns. Given one pair, this is
    the order of the protocol itself (grid, selection, seeds), and consecutive jobs reuse the loaded
    checkpoint in this process.
    """
    from ckptrank.executors import resolve_executor

    runner, own = resolve_executor(executor)
    reuse = TrainerReuse()
    unit = functools.partial(
        run_job, task=task, config=config, cache=cache, batch_size=batch_size, reuse=reuse
    )
    gpu = str(config.device).startswith("cuda")
    grid_seed = config.seeds[0]

    def wave(jobs: list[tuple[_PairPlan, FinetuneJob]], selected: bool) -> None:
        if not jobs:
            return  # nothing left to run: do not start (or join) a cluster for nothing
        # closing: an error while recording stops reading (and running, locally) the other jobs
        with contextlib.closing(runner.imap(unit, [job for _, job in jobs], gpu=gpu)) as outcomes:
            for (plan, job), outcome in zip(jobs, outcomes, strict=True):
                _record(plan, job, outcome, config=config, store=store, selected=selected, say=say)
                if on_change is not None:
                    on_change()

    try:
        wave(
            [
                (plan, plan.job(lr, wd, grid_seed, store))
                for plan in plans
                for lr, wd in config.grid
                if (grid_seed, lr, wd) not in plan.done
            ],
            selected=False,
        )
        for plan in plans:
            rows = plan.rows
            grid_rows = rows[
                (rows.seed == grid_seed) & rows.apply(lambda r: (r.lr, r.weight_decay) in config.grid, axis=1)
            ]
            plan.selected = select_config(grid_rows, config.grid)
            lr_s, wd_s = plan.selected
            chosen = grid_rows[(grid_rows.lr == lr_s) & (grid_rows.weight_decay == wd_s)]
            if not bool(chosen.selected.iloc[0]):
                store.mark_selected(**plan.base, seed=grid_seed, lr=lr_s, weight_decay=wd_s)
                plan.rows = _runs(store, **plan.base)
                if on_change is not None:
                    on_change()
        wave(
            [
                (plan, plan.job(plan.selected[0], plan.selected[1], seed, store))
                for plan in plans
                if plan.selected is not None
                for seed in config.seeds[1:]
                if (seed, plan.selected[0], plan.selected[1]) not in plan.done
            ],
            selected=True,
        )
    finally:
        reuse.clear()
        if own:
            runner.close()


def _picked(plan: _PairPlan, config: FinetuneConfig) -> pd.DataFrame:
    rows = plan.rows
    assert plan.selected is not None
    lr_s, wd_s = plan.selected
    picked = rows[(rows.lr == lr_s) & (rows.weight_decay == wd_s) & rows.seed.isin(config.seeds)]
    return (
        picked[["seed", "lr", "weight_decay", "val_accuracy", "test_accuracy"]]
        .sort_values("seed")
        .reset_index(drop=True)
    )


def finetune_checkpoint(
    spec: str,
    task: FinetuneTask,
    config: FinetuneConfig,
    store: ResultsStore,
    *,
    suite: str = "custom",
    checkpoint: str | None = None,
    cache: Any = None,
    batch_size: int = 64,
    on_change: Callable[[], None] | None = None,
    log: Callable[[str], None] | None = None,
    executor: Any = None,
) -> pd.DataFrame:
    """Run (or resume) the protocol for one checkpoint on one task; every run goes to ``store``.

    Parameters
    ----------
    spec : str
        Checkpoint spec for :func:`ckptrank.adapters.load_checkpoint` (loaded only if a run is missing;
        unused when the task holds precomputed features, which only the linear protocol accepts).
    task : FinetuneTask
    config : FinetuneConfig
    store : ResultsStore
    suite : str, default "custom"
        Suite name in the store's key.
    checkpoint : str, optional
        Checkpoint name in the store's key (default: ``spec``).
    cache : FeatureCache, optional
        Feature cache for the linear protocol's extraction.
    batch_size : int, default 64
        Extraction batch size (linear protocol).
    on_change : callable, optional
        Called after every recorded run and after the selection is marked (e.g. to rewrite a CSV).
    log : callable, optional
        Receives one line per finished run.
    executor : {"local", "ray"}, Executor or None
        Runs the jobs (:func:`run_job`); default local, in this process.

    Returns
    -------
    pandas.DataFrame
        The selected runs (one per seed) with columns lr, weight_decay, seed, val_accuracy,
        test_accuracy.

    Raises
    ------
    ValueError
        A recorded run of this key has a different configuration or weights; bad task or checkpoint.
    """
    plan = _plan_pair(checkpoint or spec, spec, task, config, store, suite)
    _run_plan(
        [plan], task, config, store, cache=cache, batch_size=batch_size, executor=executor,
        on_change=on_change, say=log or logger.info,
    )  # fmt: skip
    return _picked(plan, config)


def finetune(
    checkpoints: Mapping[str, str] | Sequence[str],
    tasks: Sequence[FinetuneTask],
    config: FinetuneConfig,
    store: ResultsStore,
    *,
    suite: str = "custom",
    cache: Any = None,
    on_change: Callable[[], None] | None = None,
    log: Callable[[str], None] | None = None,
    executor: Any = None,
) -> pd.DataFrame:
    """Run the protocol for every (task, checkpoint) pair; returns :func:`summarize_runs` of the store.

    ``checkpoints`` maps names to specs (or is a list of specs used as names). Every configuration
    is one job (:func:`run_job`) handed to ``executor`` (``"local"``, ``"ray"`` or an executor;
    default local). Locally the pairs run one after the other (each checkpoint loaded once per
    task, as a plain loop would); on a remote executor all checkpoints' grids of a task go out in
    one wave, then their other seeds. Only this process writes the store, so an interrupted run
    resumes from it on any executor.
    """
    from ckptrank.executors import resolve_executor

    named = dict(checkpoints) if isinstance(checkpoints, Mapping) else {s: s for s in checkpoints}
    runner, own = resolve_executor(executor)
    try:
        for task in tasks:
            plans = [_plan_pair(name, spec, task, config, store, suite) for name, spec in named.items()]
            for group in [plans] if runner.remote else [[plan] for plan in plans]:
                _run_plan(
                    group, task, config, store, cache=cache, batch_size=64, executor=runner,
                    on_change=on_change, say=log or logger.info,
                )  # fmt: skip
    finally:
        if own:
            runner.close()
    runs = store.table("finetune_runs", suite=suite, protocol=config.protocol)
    runs = runs[runs.task.isin([t.name for t in tasks]) & runs.checkpoint.isin(list(named))]
    return summarize_runs(runs)


def summarize_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (task, checkpoint, protocol): the selected lr and weight decay, the number of seeds, and the
    mean, standard deviation, minimum and maximum test accuracy of the selected runs."""
    sel = runs[runs["selected"].astype(bool)]
    if len(sel) == 0:
        return pd.DataFrame(
            columns=[
                "task",
                "checkpoint",
                "protocol",
                "lr",
                "weight_decay",
                "seeds",
                "mean",
                "std",
                "min",
                "max",
            ]
        )
    grouped = sel.groupby(["task", "checkpoint", "protocol"], sort=False)
    out = grouped.agg(
        lr=("lr", "first"),
        weight_decay=("weight_decay", "first"),
        seeds=("seed", "nunique"),
        mean=("test_accuracy", "mean"),
        std=("test_accuracy", lambda s: float(np.std(s, ddof=1)) if len(s) > 1 else 0.0),
        min=("test_accuracy", "min"),
        max=("test_accuracy", "max"),
    )
    return out.reset_index()
