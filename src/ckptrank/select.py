"""Select a checkpoint: screen every checkpoint, then fine-tune the shortlist briefly, within a budget.

Two stages (issue 14):

1. **Screen.** :func:`ckptrank.rank` with its defaults ranks every checkpoint; the candidates are
   its shortlist (the smallest set that holds the best with 90 % probability), topped up from the
   ranking to at least 2 and cut to at most ``max_candidates``.
2. **Fine-tune by successive halving.** A stratified validation split is carved from the user's
   *training* data (:func:`ckptrank.bench.finetune.stratified_split`, seeded; the test data are
   never loaded). Every candidate starts the project's ``full`` fine-tuning protocol
   (:mod:`ckptrank.bench.finetune`: LP-FT head probe, then the whole network with SGD and a cosine
   schedule over the protocol's full length) as a :class:`FinetuneRun`. In every round each
   survivor gets a slice of optimizer steps (or seconds), its stage signal is read on the
   validation split, and the worse half is dropped; survivors continue from where they stopped
   (model, optimizer, schedule, batch order and random state kept in memory), until one is left.

Budget accounting. A budget in steps counts the *fine-tuning* optimizer steps of the backbone
(the LP-FT head probe on frozen features, loading and evaluation are not counted: they are
recorded in seconds). With ``R = ceil(log2 n)`` rounds for ``n`` candidates, round ``r`` gives each
of its ``n_r`` survivors ``floor((B - used) / ((R - r) n_r))`` further steps (at least 1, never past
the protocol's full length), so what a capped or diverged run leaves over goes to later rounds.
A budget in seconds (or GPU-hours, counted as wall seconds on the device used) covers the whole
selection: stage 1, loading, the LP-FT probe, training, evaluation; round ``r`` splits what is
left the same way, and a survivor trains until its slice is spent (at least one step per round,
so a tiny time budget can be overrun; the result says by how much).

Resumable. Everything is recorded in ``select.sqlite`` under the output folder (stage 1, every
(round, candidate) unit, every decision), each row in its own transaction, after the unit's
model and optimizer state is written (atomically) to ``state/`` as safetensors plus a JSON card.
A re-run with the same settings skips recorded units and restores survivors from their state; a
run continued from disk is step-for-step the run that was not interrupted (same batches, same
random state). A folder recorded under other settings is an error, never silently reused.

The units are the (round, candidate) jobs (:func:`run_stage`), keyed and idempotent, handed to an
executor (``ckptrank.executors``): locally a survivor continues in memory; on Ray every unit
restores its run from the state the previous round saved (step-for-step the same run under a step
budget; under a time budget the restore is part of the slice's time), so the output folder must be
on storage every worker sees. Only this process writes ``select.sqlite``.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import hashlib
import html
import io
import json
import logging
import math
import os
import re
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ckptrank.bench.finetune import FinetuneConfig

__all__ = [
    "SIGNALS",
    "Budget",
    "FinetuneRun",
    "SelectionResult",
    "check_step_budget",
    "default_select_config",
    "halving_rounds",
    "halving_schedule",
    "order_by_signal",
    "parse_budget",
    "pick_candidates",
    "plot_curves",
    "select_checkpoint",
    "selection_records",
]

logger = logging.getLogger(__name__)

#: Stage signals: early validation accuracy; beta_eff of the neural-capacitance probe trained on the
#: run's current features (the toolkit reading); the mean of their two within-round ranks.
SIGNALS = ("val_accuracy", "beta_eff", "combined")

#: Files the selection writes in its folder (``overwrite`` removes exactly these).
_STORE_NAME = "select.sqlite"
_STATE_DIR = "state"
_OUTPUTS = ("selection.json", "curves.png", "report.html")
_STATE_FORMAT = "ckptrank-select-state-v1"


# ---------------------------------------------------------------------------------------------------------
# budgets


@dataclass(frozen=True)
class Budget:
    """A selection budget: optimizer steps or seconds.

    Attributes
    ----------
    kind : {"steps", "seconds"}
    value : float
        Steps (a whole number) or seconds.
    text : str
        The budget as given (``"30m"``, ``"2000steps"``, ``"0.5gpuh"``).
    unit : str
        The unit as given, normalised: ``steps``, ``s``, ``m``, ``h`` or ``gpuh``.
    """

    kind: str
    value: float
    text: str
    unit: str

    def describe(self) -> str:
        """``2000 steps`` or ``1800 s (30m)``."""
        if self.kind == "steps":
            return f"{int(self.value)} steps"
        return f"{self.value:g} s ({self.text})"


_UNITS = {
    "steps": ("steps", 1.0),
    "step": ("steps", 1.0),
    "s": ("s", 1.0),
    "sec": ("s", 1.0),
    "secs": ("s", 1.0),
    "second": ("s", 1.0),
    "seconds": ("s", 1.0),
    "m": ("m", 60.0),
    "min": ("m", 60.0),
    "mins": ("m", 60.0),
    "minute": ("m", 60.0),
    "minutes": ("m", 60.0),
    "h": ("h", 3600.0),
    "hr": ("h", 3600.0),
    "hour": ("h", 3600.0),
    "hours": ("h", 3600.0),
    "gpuh": ("gpuh", 3600.0),
    "gpu-h": ("gpuh", 3600.0),
    "gpuhour": ("gpuh", 3600.0),
    "gpuhours": ("gpuh", 3600.0),
    "gpu-hour": ("gpuh", 3600.0),
    "gpu-hours": ("gpuh", 3600.0),
}
_BUDGET_FORMS = "a number and a unit: 2000steps, 90s, 30m, 1.5h or 0.5gpuh"
_BUDGET_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z][A-Za-z-]*)\s*$")


def parse_budget(text: str | Budget) -> Budget:
    """Parse a budget: optimizer steps, seconds, minutes, hours or GPU-hours.

    Parameters
    ----------
    text : str or Budget
        ``"2000steps"``, ``"2000 steps"``, ``"90s"``, ``"30m"``, ``"1.5h"``, ``"0.5gpuh"``.

    Returns
    -------
    Budget

    Raises
    ------
    ValueError
        No unit, an unknown unit, a value that is not positive and finite, or steps that are not a
        whole number.

    Examples
    --------
    >>> parse_budget("30m").value
    1800.0
    >>> parse_budget("2000steps").kind
    'steps'
    """
    if isinstance(text, Budget):
        return text
    raw = str(text)
    match = _BUDGET_RE.match(raw)
    if match is None:
        raise ValueError(f"budget {raw!r} is not {_BUDGET_FORMS}")
    number, unit_text = float(match.group(1)), match.group(2).lower()
    if unit_text not in _UNITS:
        raise ValueError(f"budget {raw!r} has an unknown unit {match.group(2)!r}; give {_BUDGET_FORMS}")
    unit, factor = _UNITS[unit_text]
    if not (number > 0 and math.isfinite(number)):
        raise ValueError(f"budget {raw!r} must be positive; give {_BUDGET_FORMS}")
    if unit == "steps":
        if not float(number).is_integer():
            raise ValueError(f"budget {raw!r}: optimizer steps must be a whole number, got {number:g}")
        return Budget("steps", float(int(number)), raw.strip(), unit)
    return Budget("seconds", number * factor, raw.strip(), unit)


def halving_rounds(n_candidates: int) -> int:
    """Rounds of successive halving for ``n`` candidates, ``ceil(log2 n)`` (keeping ``ceil(n_r / 2)``)."""
    return max(1, math.ceil(math.log2(n_candidates))) if n_candidates >= 2 else 1


def _kept(n: int) -> int:
    return max(1, math.ceil(n / 2))


def _allot(left: float, rounds_left: int, survivors: int) -> float:
    """Each survivor's share of what is left for this round."""
    return left / (rounds_left * survivors)


def halving_schedule(n_candidates: int, budget_steps: int, max_steps: int) -> list[dict[str, int]]:
    """Successive-halving schedule of a step budget, when no run diverges.

    Round ``r`` gives each of its ``n_r`` survivors ``max(1, floor((B - used) / ((R - r) n_r)))``
    further steps, capped at ``max_steps`` in all; ``ceil(n_r / 2)`` survive it.

    Parameters
    ----------
    n_candidates : int
        At least 2.
    budget_steps : int
        ``B``, optimizer steps over all candidates and rounds; at least ``R * n_candidates``.
    max_steps : int
        The protocol's full length (steps of one complete fine-tuning run).

    Returns
    -------
    list of dict
        One per round: ``round``, ``survivors`` (trained in it), ``steps_from``, ``steps_to`` (per
        survivor, cumulative) and ``kept`` (how many go on).

    Raises
    ------
    ValueError
        Fewer than 2 candidates, or a budget below one step per candidate and round.

    Examples
    --------
    >>> [r["steps_to"] for r in halving_schedule(4, 40, 100)]
    [5, 15]
    """
    check_step_budget(n_candidates, budget_steps)
    rounds = halving_rounds(n_candidates)
    out = []
    n, at, used = n_candidates, 0, 0
    for r in range(rounds):
        share = max(1, math.floor(_allot(budget_steps - used, rounds - r, n)))
        to = min(at + share, max_steps)
        used += n * (to - at)
        out.append({"round": r, "survivors": n, "steps_from": at, "steps_to": to, "kept": _kept(n)})
        n, at = _kept(n), to
    return out


def check_step_budget(n_candidates: int, budget_steps: int) -> None:
    """Raise a one-line ValueError when a step budget cannot give one step per candidate and round."""
    if n_candidates < 2:
        raise ValueError(f"successive halving needs at least 2 candidates, got {n_candidates}")
    rounds = halving_rounds(n_candidates)
    if budget_steps < rounds * n_candidates:
        raise ValueError(
            f"a budget of {budget_steps} steps cannot give each of {n_candidates} candidates one step in "
            f"each of {rounds} halving rounds (at least {rounds * n_candidates} steps); raise --budget or "
            "give fewer candidates (--max-candidates)"
        )


# ---------------------------------------------------------------------------------------------------------
# one candidate's run


def default_select_config(
    *,
    lr: float = 0.03,
    weight_decay: float = 0.0,
    epochs: int = 10,
    batch_size: int = 32,
    val_fraction: float = 0.2,
    device: str = "cpu",
) -> FinetuneConfig:
    """The fine-tuning settings :func:`select_checkpoint` uses unless given.

    The ``full`` protocol of the neucrab-mini v1 ground truth (LP-FT probe of 30 epochs, head at 30x
    the learning rate, frozen batch-norm statistics, gradient norm clipped at 1, 10 epochs) with one
    configuration: learning rate 0.03 (the one the ground truth selects for 34 of 39 image pairs)
    and no weight decay.
    """
    return FinetuneConfig(
        protocol="full",
        lrs=(float(lr),),
        weight_decays=(float(weight_decay),),
        epochs=int(epochs),
        batch_size=int(batch_size),
        val_fraction=float(val_fraction),
        seeds=(0,),
        device=device,
    )


def _check_config(config: FinetuneConfig) -> None:
    if config.protocol != "full":
        raise ValueError(
            f"select fine-tunes whole checkpoints (protocol 'full'), got protocol {config.protocol!r}"
        )
    if len(config.lrs) != 1 or len(config.weight_decays) != 1:
        raise ValueError(
            f"select trains one configuration per candidate; give one learning rate and one weight decay "
            f"(got lrs {list(config.lrs)}, weight_decays {list(config.weight_decays)})"
        )


class FinetuneRun:
    """One candidate's ``full``-protocol fine-tuning run, advanced a slice of optimizer steps at a time.

    The run is the protocol of :mod:`ckptrank.bench.finetune` (its trainer prepares the inputs, the
    head's input normalisation and the LP-FT probe) with one ``(lr, weight_decay)``: advancing it by
    ``a`` then ``b`` steps gives exactly the run advanced by ``a + b`` steps, and advancing it to
    :attr:`total_steps` gives the protocol's own run (same batches, same schedule, same seed).

    Parameters
    ----------
    checkpoint : str or Checkpoint
        A checkpoint spec (loaded with :func:`ckptrank.adapters.load_checkpoint`) or a loaded
        PyTorch checkpoint (it is trained in place).
    pool : TargetDataset
        The training data (image or text); the validation split is carved from it.
    config : FinetuneConfig
        Protocol ``full`` with one learning rate and one weight decay.
    seed : int, default 0
        Head initialisation, dropout and batch order.
    split_seed : int, default 0
        Seed of the stratified validation split.
    trust_checkpoint : bool, default False
        Passed to the loader.
    restoring : bool, default False
        Skip the LP-FT probe (the state is about to be loaded with :meth:`load_state`).

    Attributes
    ----------
    step : int
        Fine-tuning steps done.
    total_steps : int
        The protocol's full length.
    n_train, n_val : int
        Sizes of the training part and the validation split.
    diverged : bool
        A non-finite loss stopped the run (it is evaluated as it stands).
    setup_seconds : float
        Wall time of loading, preparing and the LP-FT probe.
    """

    def __init__(
        self,
        checkpoint: Any,
        pool: Any,
        config: FinetuneConfig,
        *,
        seed: int = 0,
        split_seed: int = 0,
        trust_checkpoint: bool = False,
        restoring: bool = False,
    ) -> None:
        import torch
        from torch import nn

        # the project's own trainer and schedule, reused as they are (see the module notes)
        from ckptrank.bench.finetune import FinetuneTask, FullTrainer, cosine_schedule, sgd_optimizer

        t0 = time.perf_counter()
        _check_config(config)
        if getattr(pool, "modality", None) == "features":
            raise ValueError(
                "select fine-tunes checkpoints on raw samples; the target data are precomputed features "
                "(use 'ckptrank rank' for those)"
            )
        if isinstance(checkpoint, str):
            from ckptrank.adapters import load_checkpoint

            self.spec = checkpoint
            ckpt = load_checkpoint(checkpoint, trust_checkpoint=trust_checkpoint, device=config.device)
        else:
            ckpt = checkpoint
            self.spec = str(getattr(ckpt, "spec", "checkpoint"))
        if getattr(ckpt, "modality", None) != pool.modality:
            raise ValueError(
                f"checkpoint {self.spec!r} takes {getattr(ckpt, 'modality', '?')} inputs but the target "
                f"data hold {pool.modality} samples"
            )
        self.fingerprint = str(ckpt.weights_fingerprint())
        self.config = config
        self.seed = int(seed)
        self.split_seed = int(split_seed)
        # The trainer's test slot holds one *training* sample and is never evaluated: select does
        # not load or read the user's test data.
        task = FinetuneTask(str(pool.name), pool, pool.select([0]), int(split_seed))
        self._trainer = trainer = FullTrainer(ckpt, task, config)
        self._device = trainer.device
        self.n_train = int(trainer.train_idx.size)
        self.n_val = int(trainer.val_idx.size)
        self.total_steps = int(trainer._n_steps())
        lr, wd = config.lrs[0], config.weight_decays[0]
        head_lr = lr * config.head_lr_multiplier
        module = trainer.module
        for p in module.parameters():
            p.requires_grad_(True)
        with self._rng(fresh=True):
            head = nn.Linear(trainer.num_features, task.n_classes).to(self._device)
            trainer.head = head
            if config.probe_epochs and not restoring:
                trainer._probe(head, head_lr, wd, self.seed)
        groups = [
            {"params": list(module.parameters())},
            {"params": list(head.parameters()), "lr": head_lr},
        ]
        self._params = [p for g in groups for p in g["params"]]
        self._opt = sgd_optimizer(groups, lr, wd, config)
        self._sched = torch.optim.lr_scheduler.LambdaLR(self._opt, cosine_schedule(self.total_steps))
        self._batches = trainer._batches(self.seed)
        self.step = 0
        self.diverged = False
        module.eval()
        self.setup_seconds = time.perf_counter() - t0

    # -- random state: the run's own, restored around every slice (as the protocol's one fork) --------
    @contextlib.contextmanager
    def _rng(self, fresh: bool = False) -> Iterator[None]:
        import torch

        cuda = self._device.type == "cuda"
        with torch.random.fork_rng(devices=[self._device] if cuda else []):
            if fresh:
                torch.manual_seed(self.seed)
            else:
                torch.set_rng_state(self._cpu_rng)
                if cuda and self._cuda_rng is not None:
                    torch.cuda.set_rng_state(self._cuda_rng, self._device)
            yield
            self._cpu_rng = torch.get_rng_state()
            self._cuda_rng = torch.cuda.get_rng_state(self._device) if cuda else None

    def advance(self, steps: int | None = None, *, deadline: float | None = None) -> int:
        """Train up to ``steps`` more steps (never past :attr:`total_steps`), or until ``deadline``.

        Parameters
        ----------
        steps : int, optional
            Steps to add (None: until the deadline or the end of the run).
        deadline : float, optional
            A :func:`time.perf_counter` time; training stops after the step that passes it (at least
            one step is taken).

        Returns
        -------
        int
            Steps taken (0 once the run is complete or diverged).
        """
        import torch
        from torch import nn
        from torch.nn import functional

        if steps is None and deadline is None:
            raise ValueError("give steps or a deadline")
        limit = (
            self.total_steps - self.step if steps is None else min(int(steps), self.total_steps - self.step)
        )
        if limit <= 0 or self.diverged:
            return 0
        trainer = self._trainer
        module = trainer.module
        taken = 0
        with self._rng():
            module.train()
            if self.config.freeze_batchnorm:
                for sub in module.modules():
                    if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                        sub.eval()
            try:
                while taken < limit:
                    idx = next(self._batches)
                    x = trainer._inputs(trainer.x_pool, idx)
                    y = trainer.y_pool[torch.as_tensor(idx)].to(self._device)
                    loss = functional.cross_entropy(trainer._head(trainer.ckpt.trainable_features(x)), y)
                    if not torch.isfinite(loss):
                        self.diverged = True
                        break
                    self._opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if self.config.max_grad_norm is not None:
                        torch.nn.utils.clip_grad_norm_(self._params, self.config.max_grad_norm)
                    self._opt.step()
                    self._sched.step()
                    taken += 1
                    self.step += 1
                    if deadline is not None and time.perf_counter() >= deadline:
                        break
            finally:
                module.eval()
        return taken

    def evaluate(self) -> tuple[float, float]:
        """Validation accuracy and mean cross-entropy of the run as it stands.

        Returns
        -------
        accuracy : float in [0, 1], higher is better
        loss : float, inf when the logits are not finite
        """
        return self._trainer._evaluate("val")

    def beta_eff(self, *, random_state: int = 0, **options: Any) -> float:
        """beta_eff of the neural-capacitance probe trained on the run's current features.

        The toolkit reading (:func:`ckptrank.beff` with its defaults, a probe trained on the frozen
        features of the training part under the run's current weights). It is NaN when the probe
        fails (diverging or degenerate features).
        """
        from ckptrank.measures.beff import beff

        trainer = self._trainer
        features = trainer._features(trainer.x_pool, trainer.train_idx).numpy()
        labels = np.asarray(trainer.y_pool)[trainer.train_idx]
        if not np.isfinite(features).all():
            return math.nan
        try:
            return float(beff(features, labels, random_state=random_state, **options))
        except ValueError:
            return math.nan

    # -- state on disk ------------------------------------------------------------------------------
    def _tensors(self) -> dict[str, Any]:
        import torch

        out: dict[str, Any] = {}
        for key, value in self._trainer.module.state_dict().items():
            out[f"module/{key}"] = value.detach().cpu().contiguous().clone()
        for key, value in self._trainer.head.state_dict().items():
            out[f"head/{key}"] = value.detach().cpu().contiguous().clone()
        for index, state in self._opt.state_dict()["state"].items():
            buffer = state.get("momentum_buffer")
            if isinstance(buffer, torch.Tensor):
                out[f"optim/{index}/momentum_buffer"] = buffer.detach().cpu().contiguous().clone()
        out["rng/cpu"] = self._cpu_rng.clone()
        if self._cuda_rng is not None:
            out["rng/cuda"] = self._cuda_rng.clone()
        return out

    def card(self) -> dict[str, Any]:
        """The JSON side of the state: step, schedule and optimizer settings, identity."""
        groups = [
            {k: v for k, v in g.items() if k != "params"} for g in self._opt.state_dict()["param_groups"]
        ]
        sched = {k: v for k, v in self._sched.state_dict().items() if k != "lr_lambdas"}
        return {
            "format": _STATE_FORMAT,
            "checkpoint": self.spec,
            "weights_fingerprint": self.fingerprint,
            "step": self.step,
            "total_steps": self.total_steps,
            "diverged": self.diverged,
            "seed": self.seed,
            "split_seed": self.split_seed,
            "param_groups": groups,
            "scheduler": sched,
            "head_input": "logits = head((features - head_input/mean) / head_input/scale)",
        }

    def save_state(self, path: str | Path) -> Path:
        """Write the run's state: ``PATH`` (safetensors) and ``PATH.json``, each atomically."""
        from safetensors.torch import save_file

        path = Path(path)
        tensors = self._tensors()
        tensors["head_input/mean"] = self._trainer.mean.detach().cpu().contiguous().clone()
        tensors["head_input/scale"] = self._trainer.std.detach().cpu().reshape(1).contiguous().clone()
        card = self.card()
        _atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"format": _STATE_FORMAT}))
        _atomic_write(
            Path(f"{path}.json"),
            lambda tmp: tmp.write_text(json.dumps(card, indent=2, default=_json_default)),
        )
        return path

    def load_state(self, path: str | Path) -> None:
        """Restore a state written by :meth:`save_state` into a run built with ``restoring=True``.

        Raises
        ------
        ValueError
            The state belongs to another checkpoint, other weights or another run length.
        """
        import torch
        from safetensors.torch import load_file

        path = Path(path)
        card = json.loads(Path(f"{path}.json").read_text())
        if card.get("format") != _STATE_FORMAT:
            raise ValueError(f"{path}.json is not a select state card (format {card.get('format')!r})")
        for key, mine in (
            ("weights_fingerprint", self.fingerprint),
            ("total_steps", self.total_steps),
            ("seed", self.seed),
        ):
            if card.get(key) != mine:
                raise ValueError(
                    f"state {path} was saved with {key} {card.get(key)!r}, not {mine!r}; it belongs to "
                    "another run: re-run with --overwrite"
                )
        tensors = load_file(str(path))
        module_sd = {k[len("module/") :]: v for k, v in tensors.items() if k.startswith("module/")}
        head_sd = {k[len("head/") :]: v for k, v in tensors.items() if k.startswith("head/")}
        self._trainer.module.load_state_dict(module_sd)
        self._trainer.head.load_state_dict(head_sd)
        state = {
            int(k.split("/")[1]): {"momentum_buffer": v.to(self._device)}
            for k, v in tensors.items()
            if k.startswith("optim/")
        }
        groups = [
            dict(g, params=ref["params"])
            for g, ref in zip(card["param_groups"], self._opt.state_dict()["param_groups"], strict=True)
        ]
        self._opt.load_state_dict({"state": state, "param_groups": groups})
        self._sched.load_state_dict({**self._sched.state_dict(), **card["scheduler"]})
        self._cpu_rng = tensors["rng/cpu"].to(torch.uint8)
        self._cuda_rng = tensors["rng/cuda"].to(torch.uint8) if "rng/cuda" in tensors else None
        self.step = int(card["step"])
        self.diverged = bool(card["diverged"])
        self._batches = self._trainer._batches(self.seed)
        for _ in range(self.step):
            next(self._batches)

    def save_weights(self, folder: str | Path, *, extra: Mapping[str, Any] | None = None) -> list[Path]:
        """Write the fine-tuned model: ``model.safetensors`` and ``model.json`` in ``folder``.

        ``model.safetensors`` holds the checkpoint's weights (``backbone.*``), the new head
        (``head.weight``, ``head.bias``) and its fixed input normalisation (``head_input.mean``,
        ``head_input.scale``): ``logits = head((features - mean) / scale)`` with ``features`` the
        checkpoint's penultimate features (``TorchCheckpoint.trainable_features``).
        """
        from safetensors.torch import save_file

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {
            f"backbone.{k}": v.detach().cpu().contiguous().clone()
            for k, v in self._trainer.module.state_dict().items()
        }
        tensors.update(
            {
                f"head.{k}": v.detach().cpu().contiguous().clone()
                for k, v in self._trainer.head.state_dict().items()
            }
        )
        tensors["head_input.mean"] = self._trainer.mean.detach().cpu().contiguous().clone()
        tensors["head_input.scale"] = self._trainer.std.detach().cpu().reshape(1).contiguous().clone()
        classes = list(getattr(self._trainer.task.pool, "classes", None) or [])
        card = {
            "checkpoint": self.spec,
            "weights_fingerprint_before": self.fingerprint,
            "steps": self.step,
            "total_steps": self.total_steps,
            "classes": classes,
            "usage": "logits = head((features - head_input.mean) / head_input.scale); features = the "
            "checkpoint's penultimate features (ckptrank TorchCheckpoint.trainable_features)",
            "recipe": self.config.recipe(),
            **dict(extra or {}),
        }
        weights, info = out / "model.safetensors", out / "model.json"
        _atomic_write(weights, lambda tmp: save_file(tensors, str(tmp), metadata={"checkpoint": self.spec}))
        _atomic_write(info, lambda tmp: tmp.write_text(json.dumps(card, indent=2, default=_json_default)))
        return [weights, info]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    """Write through a temporary file in the same folder, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------------------
# the selection's store


_SCHEMA = """
CREATE TABLE IF NOT EXISTS selection (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    config_id TEXT NOT NULL,
    config TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS stage1 (
    checkpoint TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    rank REAL,
    p_best REAL,
    ranker_score REAL,
    shortlist INTEGER,
    candidate INTEGER NOT NULL,
    status TEXT,
    error TEXT,
    seconds REAL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS stage1_done (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seconds REAL NOT NULL,
    notes TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS points (
    checkpoint TEXT NOT NULL,
    step INTEGER NOT NULL,
    val_accuracy REAL,
    val_loss REAL,
    beta_eff REAL,
    created REAL NOT NULL,
    PRIMARY KEY (checkpoint, step)
);
CREATE TABLE IF NOT EXISTS stages (
    round INTEGER NOT NULL,
    checkpoint TEXT NOT NULL,
    steps_from INTEGER NOT NULL,
    steps_to INTEGER NOT NULL,
    val_accuracy REAL,
    val_loss REAL,
    beta_eff REAL,
    diverged INTEGER NOT NULL,
    seconds REAL NOT NULL,
    train_seconds REAL NOT NULL,
    weights_fingerprint TEXT,
    error TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (round, checkpoint)
);
CREATE TABLE IF NOT EXISTS decisions (
    round INTEGER PRIMARY KEY,
    signal TEXT NOT NULL,
    order_ TEXT NOT NULL,
    kept TEXT NOT NULL,
    signal_values TEXT NOT NULL,
    created REAL NOT NULL
);
"""


class _Store:
    """The selection's own SQLite file (WAL; one transaction per recorded unit)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(str(path), timeout=60.0, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as err:
            raise ValueError(
                f"selection store {path} cannot be opened ({err}); move it aside or re-run with --overwrite"
            ) from None

    def close(self) -> None:
        self._conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        cursor = self._conn.execute(sql, list(params))
        names = [d[0] for d in cursor.description]
        return pd.DataFrame.from_records(cursor.fetchall(), columns=names, coerce_float=True)

    def one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(sql, list(params)).fetchone()


# ---------------------------------------------------------------------------------------------------------
# the result


@dataclass
class SelectionResult:
    """The outcome of :func:`select_checkpoint`.

    Attributes
    ----------
    chosen : str
        The selected checkpoint spec.
    signal : str
    budget : Budget
    candidates : pandas.DataFrame
        One row per candidate, stage-1 order: ``checkpoint``, ``stage1_rank``, ``p_best``,
        ``outcome`` (``chosen``, ``dropped in round r``, ``failed``), ``rounds``, ``steps``,
        ``seconds``, ``val_accuracy`` and ``beta_eff`` (at its last stage), ``error``.
    stages : pandas.DataFrame
        One row per (round, candidate): ``round``, ``checkpoint``, ``steps_from``, ``steps_to``,
        ``val_accuracy``, ``val_loss``, ``beta_eff``, ``signal`` (the value the decision used),
        ``kept``, ``diverged``, ``seconds``, ``train_seconds``.
    curves : pandas.DataFrame
        Validation curve points: ``checkpoint``, ``step``, ``val_accuracy``, ``val_loss``,
        ``beta_eff`` (step 0 = after the LP-FT head probe).
    stage1 : pandas.DataFrame
        Every checkpoint's stage-1 result: ``checkpoint``, ``rank``, ``p_best``, ``ranker_score``,
        ``shortlist``, ``candidate``, ``status``, ``error``, ``seconds``.
    used : dict
        ``steps`` (fine-tuning steps), ``seconds`` (stage 1 plus every recorded unit), ``stage1_seconds``,
        ``budget_steps`` or ``budget_seconds``, ``over_budget_seconds``.
    n_train, n_val : int
        Sizes of the training part and the validation split.
    notes : list of str
    out : pathlib.Path
        The selection's folder (store, states, outputs).
    files : dict of str to pathlib.Path
    config : dict
        The resolved settings (what the store is keyed on).
    """

    chosen: str
    signal: str
    budget: Budget
    candidates: pd.DataFrame
    stages: pd.DataFrame
    curves: pd.DataFrame
    stage1: pd.DataFrame
    used: dict[str, Any]
    n_train: int
    n_val: int
    notes: list[str]
    out: Path
    files: dict[str, Path] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for row in frame.to_dict(orient="records"):
        clean = {}
        for key, value in row.items():
            if isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            clean[str(key)] = value
        rows.append(clean)
    return rows


def selection_records(result: SelectionResult) -> dict[str, Any]:
    """The result as a JSON-ready object (``--format json`` and ``selection.json``)."""
    return {
        "chosen": result.chosen,
        "signal": result.signal,
        "budget": {"kind": result.budget.kind, "value": result.budget.value, "text": result.budget.text},
        "used": {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in result.used.items()
        },
        "validation": {"n_train": result.n_train, "n_val": result.n_val},
        "candidates": _records(result.candidates),
        "stages": _records(result.stages),
        "curves": _records(result.curves),
        "stage1": _records(result.stage1),
        "notes": list(result.notes),
        "out": str(result.out),
        "files": {k: str(v) for k, v in result.files.items()},
        "config": result.config,
    }


# ---------------------------------------------------------------------------------------------------------
# the selection


def _slug(spec: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", spec)[:60]
    return f"{safe}-{hashlib.sha256(spec.encode()).hexdigest()[:8]}"


def _state_path(out: Path, spec: str, step: int) -> Path:
    return out / _STATE_DIR / f"{_slug(spec)}.step{step}.safetensors"


def _remove_states(out: Path, spec: str, keep: Path | None = None) -> None:
    folder = out / _STATE_DIR
    if not folder.is_dir():
        return
    prefix = f"{_slug(spec)}.step"
    for path in folder.iterdir():
        if path.name.startswith(prefix) and (
            keep is None or path.name not in (keep.name, f"{keep.name}.json")
        ):
            path.unlink(missing_ok=True)


def _discard(out: Path) -> None:
    """``overwrite``: remove exactly the files a selection writes in ``out``."""
    for name in (
        _STORE_NAME,
        f"{_STORE_NAME}-wal",
        f"{_STORE_NAME}-shm",
        f"{_STORE_NAME}-journal",
        *_OUTPUTS,
    ):
        (out / name).unlink(missing_ok=True)
    state = out / _STATE_DIR
    if state.is_dir():
        shutil.rmtree(state)


def order_by_signal(
    signal: str, rows: pd.DataFrame, stage1_rank: Mapping[str, float] | None = None
) -> tuple[list[str], dict[str, float]]:
    """Order a round's trained survivors by a stage signal, best first (the halving decision).

    Parameters
    ----------
    signal : {"val_accuracy", "beta_eff", "combined"}
    rows : pandas.DataFrame
        One row per survivor: ``checkpoint``, ``val_accuracy``, ``val_loss``, ``beta_eff`` (NaN when
        not read) and ``diverged``.
    stage1_rank : mapping of str to float, optional
        Stage-1 ranks, the last tie-break.

    Returns
    -------
    order : list of str
        Best first. Diverged runs go last; then the signal (higher accuracy, higher beta_eff, or
        the lower mean of the two within-round ranks for ``combined``); ties: higher validation
        accuracy, lower validation loss, better stage-1 rank.
    values : dict of str to float
        The signal value of each (for ``combined`` the mean rank, lower is better; NaN when not read).
    """
    if signal not in SIGNALS:
        raise ValueError(f"unknown signal {signal!r}; choose one of {', '.join(SIGNALS)}")
    ranks = dict(stage1_rank or {})
    frame = rows.set_index("checkpoint")
    acc = frame["val_accuracy"].astype(float)
    loss = frame["val_loss"].astype(float).fillna(math.inf)
    beta = frame["beta_eff"].astype(float)
    diverged = frame["diverged"].astype(bool)
    if signal == "val_accuracy":
        value = acc
        primary = -acc
    elif signal == "beta_eff":
        value = beta
        primary = -beta
    else:
        r_acc = (-acc).rank(method="average")
        r_beta = (-beta).rank(method="average", na_option="bottom")
        value = primary = (r_acc + r_beta) / 2
    keys = {}
    for spec in frame.index:
        first = float(primary[spec])
        accuracy = float(acc[spec])
        keys[str(spec)] = (
            bool(diverged[spec]),
            first if math.isfinite(first) else math.inf,
            -accuracy if math.isfinite(accuracy) else math.inf,
            float(loss[spec]),
            float(ranks.get(str(spec), math.inf)),
        )
    order = sorted(keys, key=lambda s: keys[s])
    return order, {str(s): float(value[s]) for s in frame.index}


def pick_candidates(frame: pd.DataFrame, min_candidates: int, max_candidates: int) -> list[str]:
    """Stage 2's candidates from a ranking: its shortlist, cut and topped up in rank order.

    Parameters
    ----------
    frame : pandas.DataFrame
        A result of :func:`ckptrank.rank` (``checkpoint``, ``rank``, ``shortlist``, ``status``).
    min_candidates, max_candidates : int

    Returns
    -------
    list of str
        The shortlisted checkpoints best first, at most ``max_candidates``, topped up with the next
        ranked ones to ``min_candidates`` (as far as there are ranked checkpoints).
    """
    ok = frame[frame["status"] == "ok"].sort_values("rank", kind="stable")
    shortlist = (
        [str(s) for s in ok.loc[ok["shortlist"].astype(bool), "checkpoint"]] if "shortlist" in ok else []
    )
    chosen = shortlist[:max_candidates]
    for spec in ok["checkpoint"]:
        if len(chosen) >= min_candidates:
            break
        if str(spec) not in chosen:
            chosen.append(str(spec))
    return chosen


def select_checkpoint(
    data: Any,
    models: str | Path | Sequence[str],
    *,
    budget: str | Budget,
    signal: str = "val_accuracy",
    max_candidates: int = 8,
    min_candidates: int = 2,
    per_class: int | None = None,
    seed: int = 0,
    config: FinetuneConfig | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    save_best: str | Path | None = None,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    batch_size: int = 64,
    trust_checkpoint: bool = False,
    allow_code: bool = False,
    progress: Any = False,
    callback: Callable[[str, dict[str, Any]], None] | None = None,
    log: Callable[[str], None] | None = None,
    executor: Any = None,
) -> SelectionResult:
    """Screen every checkpoint with the default ranker, then fine-tune the shortlist by successive halving.

    Parameters
    ----------
    data : str or TargetDataset
        Target data spec (its training split only) or a loaded data set of raw samples.
    models : str, path or sequence of str
        Checkpoint specs, as for :func:`ckptrank.rank` (at least 2).
    budget : str or Budget
        ``"2000steps"``, ``"30m"``, ``"0.5gpuh"`` ... (:func:`parse_budget`; see the module notes for
        what counts).
    signal : {"val_accuracy", "beta_eff", "combined"}, default "val_accuracy"
        What drops the worse half after every round.
    max_candidates : int, default 8
        At most this many shortlisted checkpoints go to stage 2.
    min_candidates : int, default 2
        At least this many go (the shortlist topped up in rank order), at most ``max_candidates``.
    per_class : int, optional
        Use at most this many training samples per class (seeded subsample; ``data`` a spec).
    seed : int, default 0
        Seed of the subsample, of stage 1's stochastic measures, of the validation split and of
        every fine-tuning run.
    config : FinetuneConfig, optional
        Protocol ``full`` with one learning rate and one weight decay; default
        :func:`default_select_config` (its ``device`` is replaced by ``device`` when given).
    out : str or path, optional
        The selection's folder (store, states, ``selection.json``, ``curves.png``,
        ``report.html``); default ``select/<settings hash>`` in the cache folder, so the same
        call resumes.
    overwrite : bool, default False
        Discard a selection recorded in ``out`` under other settings (only the files a selection
        writes are removed).
    save_best : str or path, optional
        Write the winner's fine-tuned weights there (:meth:`FinetuneRun.save_weights`).
    cache_dir, device, batch_size, trust_checkpoint, allow_code, progress
        Passed to :func:`ckptrank.rank` (``device`` also to the fine-tuning runs).
    callback : callable, optional
        ``callback(event, info)`` after stage 1 (``"stage1"``), every recorded unit (``"unit"``) and
        every decision (``"decision"``); an exception it raises stops the selection, which a re-run
        resumes.
    log : callable, optional
        Receives one line per event (default: this module's logger).
    executor : {"local", "ray"}, Executor or None
        Runs stage 1's units and every (round, candidate) job (:func:`run_stage`); default local.
        On Ray, ``out`` and ``cache_dir`` must be on storage every worker sees.

    Returns
    -------
    SelectionResult

    Raises
    ------
    ValueError
        A bad budget, signal or option; fewer than 2 checkpoints ranked; a budget too small for the
        candidates; a folder recorded under other settings; no candidate that can be fine-tuned.
    """
    say = log or logger.info
    budget = parse_budget(budget)
    if signal not in SIGNALS:
        raise ValueError(f"unknown signal {signal!r}; choose one of {', '.join(SIGNALS)}")
    if not isinstance(max_candidates, int | np.integer) or max_candidates < 2:
        raise ValueError(f"max_candidates must be an integer of at least 2, got {max_candidates!r}")
    if not isinstance(min_candidates, int | np.integer) or not 2 <= min_candidates <= max_candidates:
        raise ValueError(
            f"min_candidates must be an integer from 2 to max_candidates ({max_candidates}), "
            f"got {min_candidates!r}"
        )
    from ckptrank.ranking import rank
    from ckptrank.specs import parse_models

    cfg = config if config is not None else default_select_config(device=device or "cpu")
    if config is not None and device is not None and config.device != device:
        cfg = dataclasses.replace(config, device=device)
    _check_config(cfg)
    specs = parse_models(models, allow_code=allow_code or trust_checkpoint)
    if len(specs) < 2:
        raise ValueError(f"select compares checkpoints: give at least 2 in models, got {len(specs)}")

    if isinstance(data, str | Path):
        from ckptrank.data import load_dataset

        pool = load_dataset(str(data), split="train", per_class=per_class, seed=seed)
    else:
        if per_class is not None:
            raise ValueError(
                "per_class applies only when data is a data spec; subsample the dataset yourself"
            )
        pool = data
    if getattr(pool, "modality", None) == "features":
        raise ValueError(
            "select fine-tunes checkpoints on raw samples; the target data are precomputed features "
            "(use 'ckptrank rank' for those)"
        )
    if np.unique(np.asarray(pool.labels)).size < 2:
        raise ValueError(
            "the target data hold fewer than 2 classes; select needs labelled samples of 2 or more"
        )

    settings = {
        "data": pool.fingerprint(),
        "data_name": str(getattr(pool, "name", "dataset")),
        "n_samples": len(pool),
        "models": list(specs),
        "per_class": per_class,
        "seed": int(seed),
        "signal": signal,
        "budget": {"kind": budget.kind, "value": budget.value},
        "max_candidates": int(max_candidates),
        "min_candidates": int(min_candidates),
        "recipe": cfg.recipe(),
    }
    config_id = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
    if out is None:
        from ckptrank._cachedir import default_cache_dir

        base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        folder = base / "select" / config_id
    else:
        folder = Path(out).expanduser()
    folder = folder.resolve()  # absolute: Ray workers may run in another working folder
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out {str(folder)!r} exists and is not a folder; choose a folder path")
    if overwrite:
        _discard(folder)
    from ckptrank.executors import resolve_executor

    runner, own_executor = resolve_executor(executor)
    store = _Store(folder / _STORE_NAME)
    try:
        return _run_selection(
            store=store,
            folder=folder,
            pool=pool,
            specs=specs,
            cfg=cfg,
            budget=budget,
            signal=signal,
            candidate_range=(int(min_candidates), int(max_candidates)),
            seed=int(seed),
            settings=settings,
            config_id=config_id,
            save_best=save_best,
            rank=lambda: rank(
                pool,
                specs,
                seed=seed,
                cache_dir=cache_dir,
                device=device,
                batch_size=batch_size,
                progress=progress,
                trust_checkpoint=trust_checkpoint,
                allow_code=allow_code,
                executor=runner,
            ),
            trust_checkpoint=trust_checkpoint,
            callback=callback,
            say=say,
            executor=runner,
        )
    finally:
        store.close()
        if own_executor:
            runner.close()


def _check_settings(store: _Store, config_id: str, settings: dict[str, Any]) -> None:
    row = store.one("SELECT config_id, config FROM selection WHERE id = 1")
    if row is None:
        with store.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO selection VALUES (1, ?, ?, ?)",
                (config_id, json.dumps(settings, sort_keys=True, default=str), time.time()),
            )
        row = store.one("SELECT config_id, config FROM selection WHERE id = 1")
    if row[0] == config_id:
        return
    recorded = json.loads(row[1])
    differ = [
        k
        for k in settings
        if json.dumps(recorded.get(k), sort_keys=True, default=str)
        != json.dumps(settings[k], sort_keys=True, default=str)
    ]
    shown = ", ".join(_difference(k, recorded.get(k), settings[k]) for k in differ[:2]) or "settings"
    raise ValueError(
        f"{store.path.parent} holds a selection made with other settings ({shown}); pass another --out, "
        "or --overwrite to discard it"
    )


def _difference(key: str, before: Any, now: Any) -> str:
    if isinstance(before, dict) and isinstance(now, dict) and key != "budget":
        changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        return f"{key} ({', '.join(changed[:4])})"
    return f"{key} {before!r} vs {now!r} now"


def _stage1(
    store: _Store,
    rank: Callable[[], pd.DataFrame],
    candidate_range: tuple[int, int],
    say: Callable[[str], None],
) -> tuple[pd.DataFrame, float, list[str]]:
    done = store.one("SELECT seconds, notes FROM stage1_done WHERE id = 1")
    if done is None:
        t0 = time.perf_counter()
        frame = rank()
        seconds = time.perf_counter() - t0
        candidates = set(pick_candidates(frame, *candidate_range))
        notes = [str(n) for n in frame.attrs.get("notes", [])]
        with store.transaction() as conn:
            for position, row in enumerate(frame.to_dict(orient="records")):
                conn.execute(
                    "INSERT OR REPLACE INTO stage1 VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        str(row["checkpoint"]),
                        position,
                        _finite_or_none(row.get("rank")),
                        _finite_or_none(row.get("p_best")),
                        _finite_or_none(row.get("ranker_score")),
                        int(bool(row.get("shortlist", False))),
                        int(str(row["checkpoint"]) in candidates),
                        str(row.get("status", "ok")),
                        None if _missing(row.get("error")) else str(row.get("error")),
                        _finite_or_none(row.get("seconds")),
                        time.time(),
                    ),
                )
            conn.execute(
                "INSERT OR IGNORE INTO stage1_done VALUES (1, ?, ?, ?)",
                (seconds, json.dumps(notes), time.time()),
            )
        say(
            f"stage 1: ranked {len(frame)} checkpoints in {seconds:.1f} s; "
            f"candidates: {', '.join(sorted(candidates))}"
        )
    else:
        seconds, notes = float(done[0]), json.loads(done[1])
        say(f"stage 1: recorded ({seconds:.1f} s), not re-run")
    stage1 = store.frame(
        "SELECT checkpoint, rank, p_best, ranker_score, shortlist, candidate, status, error, seconds "
        "FROM stage1 ORDER BY position"
    )
    stage1["shortlist"] = stage1["shortlist"].astype(bool)
    stage1["candidate"] = stage1["candidate"].astype(bool)
    return stage1, seconds, notes


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _nan_if_none(value: Any) -> float:
    number = _finite_or_none(value)
    return math.nan if number is None else number


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class StageJob:
    """One (round, candidate) unit of successive halving: continue one run by one slice.

    Attributes
    ----------
    round : int
    spec : str
        The candidate checkpoint.
    at_step : int
        The fine-tuning step the run continues from (0: a fresh run, else its saved state).
    share : float
        The slice: optimizer steps (a step budget) or seconds (a time budget).
    """

    round: int
    spec: str
    at_step: int
    share: float


class RunMemory:
    """The survivors' runs, kept in memory between rounds by the process that ran them.

    Locally a survivor then continues in memory, as it always did; a pickled copy (what a Ray task
    receives) starts empty, so a remote unit restores the run from its saved state, which is
    step-for-step the same run.
    """

    def __init__(self) -> None:
        self.runs: dict[str, FinetuneRun] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.runs = {}


def run_stage(
    job: StageJob,
    *,
    pool: Any,
    cfg: FinetuneConfig,
    seed: int,
    folder: Path,
    budget_kind: str,
    need_beta: bool,
    trust_checkpoint: bool,
    memory: RunMemory | None = None,
) -> dict[str, Any]:
    """Run one :class:`StageJob`: restore (or start) the run, train its slice, read the signal, save.

    The unit ``select`` hands to its executor. Its only side effect is the run's state file at its
    new step (written atomically, named by checkpoint and step), so a retried unit rewrites the
    same file and returns the same numbers; the caller records the outcome and removes older states.

    Parameters
    ----------
    job : StageJob
    pool : TargetDataset
        The user's training data (the validation split is carved from it).
    cfg : FinetuneConfig
    seed : int
        Seed of the run and of the validation split.
    folder : Path
        The selection's output folder (its ``state/``; shared storage on a cluster).
    budget_kind : {"steps", "seconds"}
    need_beta : bool
        Also read beta_eff.
    trust_checkpoint : bool
    memory : RunMemory, optional
        Runs kept in memory by this process.

    Returns
    -------
    dict
        ``step``, ``val_accuracy``, ``val_loss``, ``beta_eff``, ``diverged``, ``seconds``,
        ``train_seconds``, ``fingerprint``, ``total_steps``, ``state`` (path), ``point0`` (the
        fresh run's step-0 reading, or None), ``restored`` (state file name, or None), and
        ``error`` (why a fresh run could not start, or None).
    """
    t0 = time.perf_counter()
    spec, at = job.spec, job.at_step
    runs = memory.runs if memory is not None else {}
    run = runs.get(spec)
    point0 = None
    restored = None
    if run is None or run.step != at:
        if at == 0:
            try:
                run = FinetuneRun(
                    spec, pool, cfg, seed=seed, split_seed=seed, trust_checkpoint=trust_checkpoint
                )
                acc0, loss0 = run.evaluate()
                beta0 = run.beta_eff(random_state=seed) if need_beta else None
            except (ValueError, RuntimeError, OSError, KeyError) as err:
                return {"error": " ".join(str(err).split()), "seconds": time.perf_counter() - t0}
            point0 = (acc0, loss0, beta0)
        else:
            path = _state_path(folder, spec, at)
            if not path.is_file():
                raise ValueError(
                    f"the state of {spec} at step {at} ({path}) is missing from {folder}; the folder "
                    "was changed by hand: re-run with --overwrite"
                )
            run = FinetuneRun(
                spec, pool, cfg, seed=seed, split_seed=seed, trust_checkpoint=trust_checkpoint, restoring=True
            )
            run.load_state(path)
            restored = path.name
        runs[spec] = run
    t_train = time.perf_counter()
    if budget_kind == "steps":
        run.advance(int(job.share))
    else:
        run.advance(None, deadline=t0 + job.share)
    train_seconds = time.perf_counter() - t_train
    acc, loss = run.evaluate()
    beta = run.beta_eff(random_state=seed) if need_beta else None
    state = run.save_state(_state_path(folder, spec, run.step))
    return {
        "error": None,
        "step": run.step,
        "total_steps": run.total_steps,
        "val_accuracy": acc,
        "val_loss": loss,
        "beta_eff": beta,
        "diverged": bool(run.diverged),
        "seconds": time.perf_counter() - t0,
        "train_seconds": train_seconds,
        "fingerprint": run.fingerprint,
        "state": str(state),
        "point0": point0,
        "restored": restored,
    }


def _run_selection(
    *,
    store: _Store,
    folder: Path,
    pool: Any,
    specs: list[str],
    cfg: FinetuneConfig,
    budget: Budget,
    signal: str,
    candidate_range: tuple[int, int],
    seed: int,
    settings: dict[str, Any],
    config_id: str,
    save_best: str | Path | None,
    rank: Callable[[], pd.DataFrame],
    trust_checkpoint: bool,
    callback: Callable[[str, dict[str, Any]], None] | None,
    say: Callable[[str], None],
    executor: Any = None,
) -> SelectionResult:
    notify = callback or (lambda event, info: None)
    _check_settings(store, config_id, settings)
    stage1, stage1_seconds, rank_notes = _stage1(store, rank, candidate_range, say)
    notify(
        "stage1", {"seconds": stage1_seconds, "candidates": list(stage1.loc[stage1.candidate, "checkpoint"])}
    )
    if int((stage1["status"] == "ok").sum()) < 2:
        bad = stage1[stage1["status"] != "ok"]
        reason = f"; {bad['checkpoint'].iloc[0]}: {bad['error'].iloc[0]}" if len(bad) else ""
        raise ValueError(
            f"stage 1 ranked fewer than 2 checkpoints, so there is nothing to select from{reason}"
        )
    candidates = [str(s) for s in stage1.loc[stage1.candidate, "checkpoint"]]
    stage1_rank = {
        str(r.checkpoint): float(r.rank)
        for r in stage1.itertuples()
        if r.rank is not None and math.isfinite(r.rank)
    }
    n = len(candidates)
    rounds = halving_rounds(n)
    if budget.kind == "steps":
        check_step_budget(n, int(budget.value))
    need_beta = signal in ("beta_eff", "combined")
    memory = RunMemory()
    runs = memory.runs
    notes: list[str] = []

    def recorded(round_: int | None = None) -> pd.DataFrame:
        sql = (
            "SELECT * FROM stages"
            + (" WHERE round = ?" if round_ is not None else "")
            + " ORDER BY round, created"
        )
        return store.frame(sql, [] if round_ is None else [round_])

    from ckptrank.executors import resolve_executor

    runner, own_executor = resolve_executor(executor)
    unit = functools.partial(
        run_stage,
        pool=pool,
        cfg=cfg,
        seed=seed,
        folder=folder,
        budget_kind=budget.kind,
        need_beta=need_beta,
        trust_checkpoint=trust_checkpoint,
        memory=memory,
    )
    gpu = str(cfg.device).startswith("cuda")

    try:
        survivors = list(candidates)
        over_budget = 0.0
        for r in range(rounds):
            decision = store.one("SELECT kept FROM decisions WHERE round = ?", [r])
            if decision is not None:
                kept = json.loads(decision[0])
                for spec in survivors:
                    if spec not in kept:
                        runs.pop(spec, None)
                survivors = kept
                continue
            before = recorded()
            before = before[before["round"] < r]
            done_now = recorded(r)
            done_specs = set(done_now["checkpoint"])
            rounds_left = rounds - r
            trained = [s for s in survivors if not _failed(before, s)]
            if budget.kind == "steps":
                left = budget.value - float((before["steps_to"] - before["steps_from"]).sum())
                share: float = max(1, math.floor(_allot(left, rounds_left, max(len(trained), 1))))
            else:
                left = budget.value - stage1_seconds - float(before["seconds"].sum())
                share = max(0.0, _allot(left, rounds_left, max(len(trained), 1)))
            jobs = []
            for spec in trained:
                if spec in done_specs:
                    continue
                previous = before[before["checkpoint"] == spec]
                at = int(previous["steps_to"].max()) if len(previous) else 0
                jobs.append(StageJob(r, spec, at, float(share)))
            if jobs:  # (a resumed round may have nothing left to run)
                # closing: an error while recording stops reading (and running, locally) the other units
                with contextlib.closing(runner.imap(unit, jobs, gpu=gpu)) as outcomes:
                    for job, out in zip(jobs, outcomes, strict=True):
                        _record_stage(store, folder, job, out, say=say, notify=notify)
            rows = recorded(r)
            ok_rows = rows[rows["error"].isna()]
            if len(ok_rows) == 0:
                errors = "; ".join(
                    f"{a}: {b}" for a, b in zip(rows["checkpoint"], rows["error"], strict=True)
                )
                raise ValueError(f"no candidate could be fine-tuned ({errors})")
            order, values = order_by_signal(signal, ok_rows, stage1_rank)
            kept = order[: _kept(len(order))] if r < rounds - 1 else order[:1]
            with store.transaction() as conn:
                conn.execute(
                    "INSERT OR IGNORE INTO decisions VALUES (?,?,?,?,?,?)",
                    (
                        r,
                        signal,
                        json.dumps(order),
                        json.dumps(kept),
                        json.dumps(values, default=_json_default),
                        time.time(),
                    ),
                )
            for spec in survivors:
                if spec not in kept:
                    runs.pop(spec, None)
                    _remove_states(folder, spec)
            say(f"round {r}: kept {', '.join(kept)} of {len(order)} by {signal}")
            notify("decision", {"round": r, "kept": kept, "order": order})
            survivors = kept
            if len(survivors) == 1 and r < rounds - 1:
                break  # failures left one candidate: it is the choice
    finally:
        if own_executor:
            runner.close()
    chosen = survivors[0]
    all_rows = recorded()
    if budget.kind == "seconds":
        over_budget = max(0.0, stage1_seconds + float(all_rows["seconds"].sum()) - budget.value)
    return _finish(
        store=store,
        folder=folder,
        pool=pool,
        cfg=cfg,
        chosen=chosen,
        candidates=candidates,
        stage1=stage1,
        stage1_seconds=stage1_seconds,
        rank_notes=rank_notes,
        budget=budget,
        signal=signal,
        over_budget=over_budget,
        runs=runs,
        save_best=save_best,
        seed=seed,
        trust_checkpoint=trust_checkpoint,
        settings=settings,
        notes=notes,
        say=say,
    )


def _record_stage(
    store: _Store,
    folder: Path,
    job: StageJob,
    out: Mapping[str, Any],
    *,
    say: Callable[[str], None],
    notify: Callable[[str, dict[str, Any]], None],
) -> None:
    """Write one finished :class:`StageJob` to the selection's store (only the driver writes)."""
    r, spec, at = job.round, job.spec, job.at_step
    if out["error"] is not None:
        with store.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO stages VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (r, spec, 0, 0, None, None, None, 0, out["seconds"], 0.0, None, out["error"], time.time()),
            )
        say(f"round {r}: {spec} cannot be fine-tuned: {out['error']}")
        notify("unit", {"round": r, "checkpoint": spec, "error": out["error"]})
        return
    if out["restored"] is not None:
        say(f"{spec}: restored at step {at} from {out['restored']}")
    acc, loss, beta = out["val_accuracy"], out["val_loss"], out["beta_eff"]
    with store.transaction() as conn:
        if out["point0"] is not None:
            acc0, loss0, beta0 = out["point0"]
            conn.execute(
                "INSERT OR REPLACE INTO points VALUES (?,?,?,?,?,?)",
                (spec, 0, acc0, _finite_or_none(loss0), _finite_or_none(beta0), time.time()),
            )
        conn.execute(
            "INSERT OR IGNORE INTO stages VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                r,
                spec,
                at,
                out["step"],
                acc,
                _finite_or_none(loss),
                _finite_or_none(beta),
                int(out["diverged"]),
                out["seconds"],
                out["train_seconds"],
                out["fingerprint"],
                None,
                time.time(),
            ),
        )
        conn.execute(
            "INSERT OR REPLACE INTO points VALUES (?,?,?,?,?,?)",
            (spec, out["step"], acc, _finite_or_none(loss), _finite_or_none(beta), time.time()),
        )
    _remove_states(folder, spec, keep=Path(out["state"]))
    beta_text = f" beta_eff {beta:.4g}" if beta is not None else ""
    say(
        f"round {r}: {spec} steps {at}->{out['step']} of {out['total_steps']}: val {acc:.4f}{beta_text} "
        f"({out['seconds']:.1f} s){' DIVERGED' if out['diverged'] else ''}"
    )
    notify("unit", {"round": r, "checkpoint": spec, "steps": out["step"], "val_accuracy": acc})


def _failed(rows: pd.DataFrame, spec: str) -> bool:
    mine = rows[rows["checkpoint"] == spec]
    return bool(len(mine) and mine["error"].notna().any())


def _finish(
    *,
    store: _Store,
    folder: Path,
    pool: Any,
    cfg: FinetuneConfig,
    chosen: str,
    candidates: list[str],
    stage1: pd.DataFrame,
    stage1_seconds: float,
    rank_notes: list[str],
    budget: Budget,
    signal: str,
    over_budget: float,
    runs: dict[str, FinetuneRun],
    save_best: str | Path | None,
    seed: int,
    trust_checkpoint: bool,
    settings: dict[str, Any],
    notes: list[str],
    say: Callable[[str], None],
) -> SelectionResult:
    from ckptrank.bench.finetune import stratified_split

    rows = store.frame("SELECT * FROM stages ORDER BY round, created")
    decisions = store.frame("SELECT * FROM decisions ORDER BY round")
    curves = store.frame(
        "SELECT checkpoint, step, val_accuracy, val_loss, beta_eff FROM points ORDER BY checkpoint, step"
    )
    kept_in = {int(d.round): set(json.loads(d.kept)) for d in decisions.itertuples()}
    values_in = {int(d.round): json.loads(d.signal_values) for d in decisions.itertuples()}
    stages = rows[
        [
            "round",
            "checkpoint",
            "steps_from",
            "steps_to",
            "val_accuracy",
            "val_loss",
            "beta_eff",
            "diverged",
            "seconds",
            "train_seconds",
            "error",
        ]
    ].copy()
    stages["signal"] = [
        values_in.get(int(r.round), {}).get(r.checkpoint, math.nan) for r in stages.itertuples()
    ]
    stages["kept"] = [r.checkpoint in kept_in.get(int(r.round), set()) for r in stages.itertuples()]
    stages["diverged"] = stages["diverged"].astype(bool)
    train_idx, val_idx = stratified_split(np.asarray(pool.labels), cfg.val_fraction, seed)
    n_train, n_val = int(train_idx.size), int(val_idx.size)
    table = []
    for spec in candidates:
        mine = stages[stages["checkpoint"] == spec]
        s1 = stage1[stage1["checkpoint"] == spec].iloc[0]
        error = next((e for e in mine["error"] if isinstance(e, str)), None)
        if error is not None:
            outcome = "failed"
        elif spec == chosen:
            outcome = "chosen"
        elif len(mine):
            outcome = f"dropped in round {int(mine['round'].max())}"
        else:
            outcome = "not trained"
        last = mine.iloc[-1] if len(mine) else None
        table.append(
            {
                "checkpoint": spec,
                "stage1_rank": s1["rank"],
                "p_best": s1["p_best"],
                "outcome": outcome,
                "rounds": len(mine),
                "steps": int(mine["steps_to"].max()) if len(mine) else 0,
                "seconds": float(mine["seconds"].sum()),
                "val_accuracy": _nan_if_none(None if last is None else last["val_accuracy"]),
                "beta_eff": _nan_if_none(None if last is None else last["beta_eff"]),
                "error": error,
            }
        )
    cand_frame = pd.DataFrame(table)
    used_steps = int((stages["steps_to"] - stages["steps_from"]).sum())
    used_seconds = stage1_seconds + float(stages["seconds"].sum())
    used: dict[str, Any] = {
        "steps": used_steps,
        "seconds": round(used_seconds, 3),
        "stage1_seconds": round(stage1_seconds, 3),
        "train_seconds": round(float(stages["train_seconds"].sum()), 3),
    }
    if budget.kind == "steps":
        used["budget_steps"] = int(budget.value)
    else:
        used["budget_seconds"] = budget.value
        used["over_budget_seconds"] = round(over_budget, 3)
    notes = [*rank_notes, *notes]
    notes.append(
        f"validation split: {n_val} samples carved from the {len(pool)} training samples "
        f"({cfg.val_fraction:g} of every class, seed {seed}); test data are never used"
    )
    if n_val < 200:
        spread = 100 * math.sqrt(0.25 / n_val) if n_val else math.inf
        notes.append(
            f"the validation split holds {n_val} samples: one sample is {100 / max(n_val, 1):.1f} accuracy "
            f"points and the binomial standard error is up to {spread:.1f} points, so close candidates "
            "are not told apart reliably; give more samples per class"
        )
    if budget.unit == "gpuh" and not cfg.device.startswith("cuda"):
        notes.append(
            f"the budget is in GPU-hours but the runs used device {cfg.device!r}: counted as its wall time"
        )
    if over_budget > 0:
        notes.append(
            f"the selection took {over_budget:.1f} s more than the budget: every survivor trains at least "
            "one step per round"
        )
    failed = cand_frame[cand_frame["outcome"] == "failed"]
    for row in failed.itertuples():
        notes.append(f"{row.checkpoint} could not be fine-tuned and was dropped: {row.error}")
    files: dict[str, Path] = {}
    result = SelectionResult(
        chosen=chosen,
        signal=signal,
        budget=budget,
        candidates=cand_frame,
        stages=stages.drop(columns=["error"]),
        curves=curves,
        stage1=stage1,
        used=used,
        n_train=n_train,
        n_val=n_val,
        notes=notes,
        out=folder,
        files=files,
        config=settings,
    )
    if save_best is not None:
        winner = runs.get(chosen)
        final_step = int(stages.loc[stages["checkpoint"] == chosen, "steps_to"].max())
        if winner is None or winner.step != final_step:
            winner = FinetuneRun(
                chosen,
                pool,
                cfg,
                seed=seed,
                split_seed=seed,
                trust_checkpoint=trust_checkpoint,
                restoring=True,
            )
            winner.load_state(_state_path(folder, chosen, final_step))
        written = winner.save_weights(
            save_best,
            extra={
                "val_accuracy": float(
                    cand_frame.loc[cand_frame.checkpoint == chosen, "val_accuracy"].iloc[0]
                ),
                "signal": signal,
            },
        )
        files["best_weights"] = written[0]
        say(f"wrote the fine-tuned weights of {chosen} to {written[0]}")
    png_bytes: bytes | None = None
    try:
        buffer = io.BytesIO()
        plot_curves(result).savefig(buffer, format="png")
        png_bytes = buffer.getvalue()
        png = folder / "curves.png"
        _atomic_write(png, lambda tmp: tmp.write_bytes(png_bytes or b""))
        files["curves"] = png
    except ImportError:
        notes.append("curves.png not drawn: matplotlib is missing (pip install 'ckptrank[report]')")
    report = folder / "report.html"
    _atomic_write(report, lambda tmp: tmp.write_text(_html(result, png_bytes), encoding="utf-8"))
    files["report"] = report
    summary = folder / "selection.json"
    files["json"] = summary
    _atomic_write(
        summary,
        lambda tmp: tmp.write_text(json.dumps(selection_records(result), indent=2, default=_json_default)),
    )
    return result


# ---------------------------------------------------------------------------------------------------------
# outputs


_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666")


def plot_curves(result: SelectionResult, *, dpi: int = 110) -> Any:
    """Validation curves of every candidate (accuracy against fine-tuning steps), and beta_eff if read.

    Each candidate is one line from step 0 (after the LP-FT head probe) through the end of every
    round it trained in; a cross marks where it was dropped, a star the chosen one.

    Returns
    -------
    matplotlib.figure.Figure
        Drawn with the Agg renderer (no pyplot).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curves = result.curves
    with_beta = bool(curves["beta_eff"].notna().any()) if len(curves) else False
    panels = 2 if with_beta else 1
    fig = Figure(figsize=(6.4 * panels, 4.2), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    order = list(result.candidates["checkpoint"])
    for index, spec in enumerate(order):
        mine = curves[curves["checkpoint"] == spec].sort_values("step")
        if not len(mine):
            continue
        color = _COLORS[index % len(_COLORS)]
        outcome = result.candidates.loc[result.candidates.checkpoint == spec, "outcome"].iloc[0]
        label = f"{spec} ({outcome})"
        for ax, column, scale in (
            (axes[0], "val_accuracy", 100.0),
            *(((axes[1], "beta_eff", 1.0),) if with_beta else ()),
        ):
            values = mine[column].astype(float) * scale
            ax.plot(
                mine["step"],
                values,
                marker="o",
                ms=3,
                color=color,
                label=label,
                lw=2.2 if spec == result.chosen else 1.2,
            )
            marker = "*" if spec == result.chosen else "x"
            ax.plot(
                mine["step"].iloc[-1],
                values.iloc[-1],
                marker=marker,
                ms=11 if marker == "*" else 8,
                color=color,
                ls="none",
            )
    boundaries = sorted(set(result.stages["steps_to"].astype(int)))
    for ax in axes:
        for b in boundaries:
            ax.axvline(b, color="#dddddd", lw=0.6, zorder=0)
        ax.set_xlabel("fine-tuning steps (after the LP-FT head probe)")
        ax.grid(axis="y", color="#eeeeee")
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    axes[0].set_ylabel(f"validation accuracy (%), {result.n_val} samples")
    if with_beta:
        axes[1].set_ylabel("beta_eff (toolkit reading)")
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(
        f"ckptrank select: {result.chosen} chosen by {result.signal}, budget {result.budget.describe()}",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def _html_table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for value in row:
            if isinstance(value, float):
                text = "" if not math.isfinite(value) else f"{value:.4g}"
            else:
                text = "" if value is None else str(value)
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _html(result: SelectionResult, png: bytes | None) -> str:
    """A self-contained HTML report: summary, the curves (inline PNG), the candidates and stages tables."""
    if png is None:
        image = "<p>(curves not drawn: matplotlib is missing)</p>"
    else:
        encoded = base64.b64encode(png).decode()
        image = f'<img alt="validation curves" src="data:image/png;base64,{encoded}">'
    used = result.used
    budget_line = (
        f"{used['steps']} of {int(result.budget.value)} fine-tuning steps"
        if result.budget.kind == "steps"
        else f"{used['seconds']:.1f} of {result.budget.value:g} s"
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>ckptrank select</title><style>"
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;font-size:13px;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}th{background:#f3f3f3}"
        "img{max-width:100%}</style></head><body>"
        f"<h1>ckptrank select: {html.escape(result.chosen)}</h1>"
        f"<p>Signal <b>{html.escape(result.signal)}</b>; budget {html.escape(result.budget.text)}: used "
        f"{html.escape(budget_line)} (stage 1: {used['stage1_seconds']:.1f} s). Validation split: "
        f"{result.n_val} samples of the training data ({result.n_train} train).</p>"
        f"{image}<h2>Candidates</h2>{_html_table(result.candidates)}"
        f"<h2>Stages</h2>{_html_table(result.stages)}"
        f"<h2>Stage 1 (every checkpoint)</h2>{_html_table(result.stage1)}"
        f"<h2>Notes</h2><ul>{notes}</ul></body></html>"
    )
