"""``neucrab-mini``: the built-in real benchmark suite, its target tasks, and its ground-truth build.

A NeuCRaB-style suite small enough to regenerate on a 2-core CPU machine in about two hours.

Image track (28-64 px, Fashion-MNIST TARGET half and UCI digits), 13 checkpoints in 4 groups:

* ``imagenet``: the real EfficientNet-Lite0/1/2 ImageNet-1k checkpoints, run at 64 px;
* ``self-trained``: zoo models pre-trained by ``ckptrank zoo build`` on the Fashion-MNIST SOURCE
  half with other architectures or source tasks (``cnn-fm59``, ``resnet-fm04``, ``mlp-fm04``,
  ``cnn-rot``);
* ``stages``: one training run of the small CNN on classes 0-4 after 1, 3 and 6 epochs;
* ``random-init``: random-initialised small CNN, small ResNet and EfficientNet-Lite0.

Text track (WordNet noun glosses), 7 checkpoints in 4 groups: all-MiniLM-L6-v2 and GloVe-6B-50d
(``pretrained``), MiniLM's transformer layers 1 and 3 (``layers``), a bag-of-words encoder trained
on WordNet *verb* supersenses (``self-trained``), and random-initialised MiniLM and bag-of-words
(``random-init``).

Target tasks: ``fashion-mnist`` (10-way), ``fashion-tops`` (the confusable T-shirt/top, Pullover,
Coat, Shirt), ``digits`` (UCI 8x8 digits), ``wordnet-nouns`` (26 noun supersenses) and
``wordnet-concrete`` (8 concrete supersenses). The Fashion-MNIST tasks read only the TARGET half
of the official training file (images 30,000-59,999; the zoo pre-trains on the first half) and
the official test file. Importing this module registers the task data sets as built-ins
(``builtin:neucrab-fashion-mnist``, ``builtin:neucrab-fashion-tops``,
``builtin:neucrab-wordnet-concrete``) and the suite as ``neucrab-mini``.

Ground truth: both protocols of :mod:`ckptrank.bench.finetune` (``full``, the default, and
``linear``) with 3 seeds, committed as ``ground_truth/neucrab_mini_{image,text}.csv`` (every grid
run, ``selected`` marks the ground-truth rows) with ``ground_truth/PROVENANCE.md``. The build
(:func:`build_ground_truth`, ``ckptrank finetune --suite neucrab-mini``) is resumable: it loads
the committed CSV into a results store, skips every recorded key, and rewrites the CSV
atomically after each run.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .finetune import FinetuneConfig, FinetuneTask, finetune, finetune_checkpoint, load_task

__all__ = [
    "CHECKPOINTS",
    "CSV_COLUMNS",
    "GROUND_TRUTH_DIR",
    "PROTOCOL_CONFIGS",
    "SUITE_NAME",
    "TASKS",
    "TRACKS",
    "MiniCheckpoint",
    "MiniTask",
    "baseline_row",
    "build_ground_truth",
    "ground_truth_csv",
    "ground_truth_status",
    "load_ground_truth",
    "load_suite",
    "load_suite_task",
    "register_datasets",
    "write_baselines",
]

logger = logging.getLogger(__name__)

SUITE_NAME = "neucrab-mini"
TRACKS = ("image", "text")
GROUND_TRUTH_DIR = Path(__file__).with_name("ground_truth")
CSV_COLUMNS = (
    "task",
    "checkpoint",
    "protocol",
    "seed",
    "lr",
    "weight_decay",
    "val_accuracy",
    "test_accuracy",
    "selected",
    "val_loss",
    "epochs",
    "seconds",
    "config_id",
)


@dataclass(frozen=True)
class MiniTask:
    """A target task of the suite (data spec, pool and test sizes per class, seed)."""

    track: str
    data: str
    per_class: int | None
    test_per_class: int | None
    seed: int
    description: str


@dataclass(frozen=True)
class MiniCheckpoint:
    """A checkpoint of the suite: its spec, group and track."""

    spec: str
    group: str
    track: str


TASKS: dict[str, MiniTask] = {
    "fashion-mnist": MiniTask(
        "image",
        "builtin:neucrab-fashion-mnist",
        40,
        50,
        0,
        "Fashion-MNIST, 10 classes; pool: 40 per class from the TARGET half of the training file; "
        "test: 50 per class of the official test file",
    ),
    "fashion-tops": MiniTask(
        "image",
        "builtin:neucrab-fashion-tops",
        80,
        100,
        0,
        "Fashion-MNIST T-shirt/top, Pullover, Coat, Shirt (confusable); pool: 80 per class from the "
        "TARGET half; test: 100 per class of the official test file",
    ),
    "digits": MiniTask(
        "image",
        "builtin:digits",
        40,
        None,
        0,
        "UCI optdigits 8x8 (scikit-learn), 10 classes; pool: 40 per class of its train split; test: all 540",
    ),
    "wordnet-nouns": MiniTask(
        "text",
        "builtin:wordnet-supersense",
        12,
        30,
        0,
        "WordNet 3.0 noun glosses, 26 supersenses; pool: 12 per class; test: 30 per class",
    ),
    "wordnet-concrete": MiniTask(
        "text",
        "builtin:neucrab-wordnet-concrete",
        32,
        50,
        0,
        "WordNet noun glosses of 8 concrete supersenses (animal, artifact, body, food, location, person, "
        "plant, substance); pool: 32 per class; test: 50 per class",
    ),
}

CHECKPOINTS: dict[str, MiniCheckpoint] = {
    # image track
    "efficientnet-lite0": MiniCheckpoint("efficientnet-lite0?size=64", "imagenet", "image"),
    "efficientnet-lite1": MiniCheckpoint("efficientnet-lite1?size=64", "imagenet", "image"),
    "efficientnet-lite2": MiniCheckpoint("efficientnet-lite2?size=64", "imagenet", "image"),
    "cnn-fm59": MiniCheckpoint("zoo:cnn-fm59", "self-trained", "image"),
    "resnet-fm04": MiniCheckpoint("zoo:resnet-fm04", "self-trained", "image"),
    "mlp-fm04": MiniCheckpoint("zoo:mlp-fm04", "self-trained", "image"),
    "cnn-rot": MiniCheckpoint("zoo:cnn-rot", "self-trained", "image"),
    "cnn-fm04-e1": MiniCheckpoint("zoo:cnn-fm04-e1", "stages", "image"),
    "cnn-fm04-e3": MiniCheckpoint("zoo:cnn-fm04-e3", "stages", "image"),
    "cnn-fm04": MiniCheckpoint("zoo:cnn-fm04", "stages", "image"),
    "cnn-random": MiniCheckpoint("zoo:cnn-random", "random-init", "image"),
    "resnet-random": MiniCheckpoint("zoo:resnet-random", "random-init", "image"),
    "efficientnet-lite0-random": MiniCheckpoint(
        "zoo:efficientnet-lite0-random?size=64", "random-init", "image"
    ),
    # text track
    "all-minilm-l6-v2": MiniCheckpoint("all-minilm-l6-v2", "pretrained", "text"),
    "glove-6b-50d": MiniCheckpoint("glove-6b-50d", "pretrained", "text"),
    "all-minilm-l6-v2@layer3": MiniCheckpoint("all-minilm-l6-v2@encoder.layer.3", "layers", "text"),
    "all-minilm-l6-v2@layer1": MiniCheckpoint("all-minilm-l6-v2@encoder.layer.1", "layers", "text"),
    "bow-wnverb": MiniCheckpoint("zoo:bow-wnverb", "self-trained", "text"),
    "minilm-random": MiniCheckpoint("zoo:minilm-random", "random-init", "text"),
    "bow-random": MiniCheckpoint("zoo:bow-random", "random-init", "text"),
}

#: The protocol settings of the committed ground truth (sized for a 2-core CPU; see PROVENANCE.md).
PROTOCOL_CONFIGS: dict[str, FinetuneConfig] = {
    "full": FinetuneConfig(
        protocol="full",
        lrs=(0.01, 0.03),
        weight_decays=(0.0, 1e-3),
        epochs=10,
        batch_size=32,
        head_lr_multiplier=30.0,
        freeze_batchnorm=True,
        probe_epochs=30,
        max_grad_norm=1.0,
        seeds=(0, 1, 2),
    ),
    "linear": FinetuneConfig(
        protocol="linear",
        lrs=(0.01, 0.1),
        weight_decays=(0.0, 1e-3),
        epochs=30,
        batch_size=32,
        seeds=(0, 1, 2),
    ),
}


# ---------------------------------------------------------------------------------------------------------
# task data sets


_TOPS = (0, 2, 4, 6)  # T-shirt/top, Pullover, Coat, Shirt
_CONCRETE = (
    "noun.animal",
    "noun.artifact",
    "noun.body",
    "noun.food",
    "noun.location",
    "noun.person",
    "noun.plant",
    "noun.substance",
)


def _fashion(split: str, classes: tuple[int, ...] | None, name: str) -> Any:
    from ckptrank.data.builtins import FASHION_MNIST_CLASSES, load_builtin
    from ckptrank.data.dataset import TargetDataset
    from ckptrank.zoo.data import FASHION_TARGET_HALF

    if split not in ("train", "test"):
        raise ValueError(f"builtin:{name} has splits train, test; got split={split!r}")
    full = load_builtin("fashion-mnist", split)
    images, labels = np.asarray(full.items), np.asarray(full.labels)
    idx = np.arange(*FASHION_TARGET_HALF) if split == "train" else np.arange(len(labels))
    names = FASHION_MNIST_CLASSES
    if classes is not None:
        idx = idx[np.isin(labels[idx], classes)]
        codes = np.searchsorted(np.asarray(classes), labels[idx])
        names = tuple(FASHION_MNIST_CLASSES[c] for c in classes)
    else:
        codes = labels[idx]
    return TargetDataset(
        items=images[idx],
        labels=codes.astype(np.int64),
        modality="image",
        name=name,
        split=split,
        classes=names,
        source=f"builtin:{name}",
    )


def _wordnet_concrete(split: str) -> Any:
    from ckptrank.data.builtins import WORDNET_NOUN_LEXNAMES, load_builtin
    from ckptrank.data.dataset import TargetDataset

    full = load_builtin("wordnet-supersense", split)
    wanted = np.asarray([WORDNET_NOUN_LEXNAMES.index(c) for c in _CONCRETE])
    labels = np.asarray(full.labels)
    idx = np.flatnonzero(np.isin(labels, wanted))
    return TargetDataset(
        items=[full.items[i] for i in idx],
        labels=np.searchsorted(wanted, labels[idx]).astype(np.int64),
        modality="text",
        name="neucrab-wordnet-concrete",
        split=split,
        classes=_CONCRETE,
        source="builtin:neucrab-wordnet-concrete",
    )


_DATASETS: dict[str, Callable[[str], Any]] = {
    "neucrab-fashion-mnist": lambda split: _fashion(split, None, "neucrab-fashion-mnist"),
    "neucrab-fashion-tops": lambda split: _fashion(split, _TOPS, "neucrab-fashion-tops"),
    "neucrab-wordnet-concrete": _wordnet_concrete,
}


def register_datasets() -> None:
    """Make the suite's task data sets loadable as ``builtin:NAME`` (idempotent)."""
    from ckptrank.data import builtins

    for name, loader in _DATASETS.items():
        if name not in builtins.list_builtin_datasets():
            builtins.register_builtin_dataset(name, loader)


def load_suite_task(name: str) -> FinetuneTask:
    """The fine-tuning task ``name`` of the suite (pool and test set, as the ground truth used them)."""
    if name not in TASKS:
        raise ValueError(f"unknown {SUITE_NAME} task {name!r}; tasks: {', '.join(TASKS)}")
    register_datasets()
    t = TASKS[name]
    return load_task(t.data, name=name, per_class=t.per_class, test_per_class=t.test_per_class, seed=t.seed)


# ---------------------------------------------------------------------------------------------------------
# ground truth files


def ground_truth_csv(track: str, directory: Path | None = None) -> Path:
    if track not in TRACKS:
        raise ValueError(f"track must be one of {', '.join(TRACKS)}, not {track!r}")
    return Path(directory or GROUND_TRUTH_DIR) / f"neucrab_mini_{track}.csv"


def load_ground_truth(directory: Path | None = None) -> pd.DataFrame:
    """Every recorded run of both tracks (long format, :data:`CSV_COLUMNS`); empty when none."""
    frames = []
    for track in TRACKS:
        path = ground_truth_csv(track, directory)
        if path.is_file():
            frames.append(pd.read_csv(path))
    if not frames:
        return pd.DataFrame(columns=list(CSV_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _store_rows(store: Any, track: str) -> pd.DataFrame:
    runs = store.table("finetune_runs", suite=SUITE_NAME)
    tasks = [n for n, t in TASKS.items() if t.track == track]
    runs = runs[runs.task.isin(tasks) & runs.checkpoint.isin(list(CHECKPOINTS))].copy()
    if len(runs) == 0:
        return pd.DataFrame(columns=list(CSV_COLUMNS))
    cfg = runs["config"].map(json.loads)
    runs["val_loss"] = cfg.map(lambda c: c.get("val_loss"))
    runs["config_id"] = cfg.map(lambda c: c.get("config_id"))
    runs["selected"] = runs["selected"].astype(int)
    task_order = {n: i for i, n in enumerate(TASKS)}
    ckpt_order = {n: i for i, n in enumerate(CHECKPOINTS)}
    runs["_t"] = runs.task.map(task_order)
    runs["_c"] = runs.checkpoint.map(ckpt_order)
    runs = runs.sort_values(["protocol", "_t", "_c", "seed", "lr", "weight_decay"])
    return runs[list(CSV_COLUMNS)].reset_index(drop=True)


def write_csv(store: Any, track: str, directory: Path | None = None) -> Path:
    """Rewrite the track's CSV atomically from the store's rows of this suite."""
    path = ground_truth_csv(track, directory)
    rows = _store_rows(store, track)
    _atomic_write_text(path, rows.to_csv(index=False, float_format="%.9g"))
    return path


def import_csv(store: Any, track: str, directory: Path | None = None) -> int:
    """Copy the committed CSV's runs into the store (recorded keys are left alone); returns how many."""
    path = ground_truth_csv(track, directory)
    if not path.is_file():
        return 0
    added = 0
    frame = pd.read_csv(path)
    for row in frame.itertuples(index=False):
        config = PROTOCOL_CONFIGS[str(row.protocol)].recipe()
        config.update(
            {"config_id": row.config_id, "val_loss": float(row.val_loss), "imported_from": path.name}
        )
        key = dict(
            suite=SUITE_NAME,
            task=str(row.task),
            checkpoint=str(row.checkpoint),
            protocol=str(row.protocol),
            seed=int(row.seed),
            lr=float(row.lr),
            weight_decay=float(row.weight_decay),
        )
        if store.add_run(
            **key,
            val_accuracy=float(row.val_accuracy),
            test_accuracy=float(row.test_accuracy),
            selected=bool(row.selected),
            epochs=int(row.epochs),
            seconds=float(row.seconds),
            config=config,
        ):
            added += 1
    return added


# ---------------------------------------------------------------------------------------------------------
# the build


def _default_store_path() -> Path:
    root = os.environ.get("CKPTRANK_CACHE") or str(Path.home() / ".cache" / "ckptrank")
    return Path(root) / "neucrab-mini-ground-truth.sqlite"


def _cost_tier(name: str) -> int:
    """0: small zoo models, 1: GloVe, 2: EfficientNet-Lite and MiniLM (real or random-initialised)."""
    spec = CHECKPOINTS[name].spec
    if "efficientnet" in spec or "minilm" in spec:
        return 2
    return 1 if "glove" in spec else 0


def build_ground_truth(
    *,
    tracks: Sequence[str] = TRACKS,
    protocols: Sequence[str] = ("linear", "full"),
    tasks: Sequence[str] | None = None,
    checkpoints: Sequence[str] | None = None,
    store_path: str | Path | None = None,
    directory: Path | None = None,
    cache: Any = None,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
    executor: Any = None,
) -> pd.DataFrame:
    """Build (or resume) the suite's ground truth; returns the summary of the selected runs.

    ``executor`` (``"local"``, ``"ray"`` or an executor) runs the fine-tuning jobs
    (:func:`ckptrank.bench.finetune.run_job`): locally pair by pair in the order above, on a remote
    executor every checkpoint's grid of a task in one wave. This process alone writes the store and
    the CSVs.

    Order: the linear protocol first (cheap), then full fine-tuning; within a protocol and track, the
    cheapest checkpoints (small zoo models) on every task first, then GloVe, then EfficientNet-Lite
    and MiniLM (real and random-initialised), tasks in suite order.
    After every run the track's CSV is rewritten atomically, so a killed build loses at most the run
    in progress and a later call (in any session) resumes from the CSV.
    """
    import dataclasses

    import ckptrank.zoo  # noqa: F401  # registers the zoo: checkpoint source
    from ckptrank.executors import resolve_executor

    from .finetune import summarize_runs
    from .store import ResultsStore

    say = log or logger.info
    register_datasets()
    store = ResultsStore(store_path or _default_store_path())
    runner, own_executor = resolve_executor(executor)
    try:
        for track in tracks:
            added = import_csv(store, track, directory)
            if added:
                say(
                    f"imported {added} recorded runs of the {track} track from "
                    f"{ground_truth_csv(track, directory).name}"
                )
        for protocol in protocols:
            cfg = dataclasses.replace(PROTOCOL_CONFIGS[protocol], device=device)
            for track in tracks:
                names = [
                    n
                    for n, c in CHECKPOINTS.items()
                    if c.track == track and (not checkpoints or n in checkpoints)
                ]
                task_names = [n for n, t in TASKS.items() if t.track == track and (not tasks or n in tasks)]
                pairs = sorted(
                    ((t, n) for t in task_names for n in names),
                    key=lambda p: (_cost_tier(p[1]), task_names.index(p[0]), names.index(p[1])),
                )
                if runner.remote:
                    # a cluster: every checkpoint's grid of a task in one wave (finetune's own plan)
                    for task_name in task_names:
                        t0 = time.perf_counter()
                        finetune(
                            {name: CHECKPOINTS[name].spec for name in names},
                            [load_suite_task(task_name)],
                            cfg,
                            store,
                            suite=SUITE_NAME,
                            cache=cache,
                            on_change=lambda track=track: write_csv(store, track, directory),
                            log=say,
                            executor=runner,
                        )
                        say(f"done {task_name} | {protocol} ({time.perf_counter() - t0:.0f} s)")
                    continue
                loaded: dict[str, FinetuneTask] = {}
                for task_name, name in pairs:
                    if task_name not in loaded:
                        loaded[task_name] = load_suite_task(task_name)
                    task = loaded[task_name]
                    t0 = time.perf_counter()
                    finetune_checkpoint(
                        CHECKPOINTS[name].spec,
                        task,
                        cfg,
                        store,
                        suite=SUITE_NAME,
                        checkpoint=name,
                        cache=cache,
                        on_change=lambda track=track: write_csv(store, track, directory),
                        log=say,
                        executor=runner,
                    )
                    say(f"done {task_name} | {name} | {protocol} ({time.perf_counter() - t0:.0f} s)")
        runs = store.table("finetune_runs", suite=SUITE_NAME)
        return summarize_runs(runs)
    finally:
        if own_executor:
            runner.close()
        store.close()


def ground_truth_status(directory: Path | None = None) -> pd.DataFrame:
    """Per protocol and track: finished (task, checkpoint) pairs (every seed recorded) out of all, and runs.

    A pair is finished when it has one selected run per seed of its protocol.
    """
    runs = load_ground_truth(directory)
    rows = []
    for protocol, cfg in PROTOCOL_CONFIGS.items():
        for track in TRACKS:
            tasks = [n for n, t in TASKS.items() if t.track == track]
            ckpts = [n for n, c in CHECKPOINTS.items() if c.track == track]
            mine = runs[(runs.protocol == protocol) & runs.task.isin(tasks)] if len(runs) else runs
            sel = mine[mine.selected.astype(bool)] if len(mine) else mine
            per_pair = (
                sel.groupby(["task", "checkpoint"]).seed.nunique() if len(sel) else pd.Series(dtype=int)
            )
            finished = int((per_pair >= len(cfg.seeds)).sum())
            expected_runs = len(tasks) * len(ckpts) * (len(cfg.grid) + len(cfg.seeds) - 1)
            rows.append(
                {
                    "protocol": protocol,
                    "track": track,
                    "pairs_finished": finished,
                    "pairs": len(tasks) * len(ckpts),
                    "runs": len(mine),
                    "runs_expected": expected_runs,
                }
            )
    return pd.DataFrame(rows)


def baseline_row(name: str, ckpt: Any) -> dict[str, Any]:
    """The ``baselines.csv`` row of a loaded checkpoint.

    Columns: ``num_parameters`` (of the part of the network that computes the features: for
    ``MODEL@layer`` only what runs up to the layer, see the card's ``num_parameters_scope``),
    ``source_accuracy`` (percent, stated by the card for the whole network's head; empty for an
    intermediate layer or without a head), ``source_classes`` (classes of that head, 0 without
    one) and ``source_label_set`` (the card's ``source_task``, else its ``source_dataset``; empty
    without a head). Source accuracies are compared only within one (``source_label_set``,
    ``source_classes``): :meth:`ckptrank.bench.suite.Suite.comparable_source_accuracy`.
    """
    card = ckpt.card
    whole = getattr(ckpt, "layer", None) is None
    classes = int(card.get("num_source_classes") or 0) if whole and ckpt.has_head else 0
    return {
        "checkpoint": name,
        "num_parameters": int(ckpt.num_parameters()),
        "source_accuracy": card.get("source_accuracy") if classes else None,
        "source_classes": classes,
        "source_label_set": (card.get("source_task") or card.get("source_dataset")) if classes else None,
    }


def write_baselines(directory: Path | None = None) -> Path:
    """Write ``baselines.csv`` (one :func:`baseline_row` per checkpoint) by loading every checkpoint."""
    import ckptrank.zoo  # noqa: F401
    from ckptrank.adapters import load_checkpoint

    rows = [baseline_row(name, load_checkpoint(c.spec)) for name, c in CHECKPOINTS.items()]
    path = Path(directory or GROUND_TRUTH_DIR) / "baselines.csv"
    _atomic_write_text(path, pd.DataFrame(rows).to_csv(index=False))
    return path


# ---------------------------------------------------------------------------------------------------------
# the suite


def load_suite(directory: Path | None = None) -> Any:
    """The ``neucrab-mini`` :class:`~ckptrank.bench.suite.Suite` from the committed files.

    Ground truth: the selected runs (one per seed), accuracy = 100 x test accuracy, protocols
    ``full`` (default) and ``linear``. Pairs whose build has not finished yet are simply absent.
    """
    import ckptrank.zoo  # noqa: F401  # registers the zoo: checkpoint source the suite's specs use

    from .suite import Suite, Task

    register_datasets()
    root = Path(directory or GROUND_TRUTH_DIR)
    runs = load_ground_truth(root)
    sel = runs[runs["selected"].astype(bool)] if len(runs) else runs
    gt = pd.DataFrame(
        {
            "task": sel["task"].astype(str),
            "checkpoint": sel["checkpoint"].astype(str),
            "seed": sel["seed"].astype(int),
            "accuracy": 100.0 * sel["test_accuracy"].astype(float),
            "protocol": sel["protocol"].astype(str),
        }
    )
    baselines = None
    if (root / "baselines.csv").is_file():
        baselines = pd.read_csv(root / "baselines.csv")
    provenance = (root / "PROVENANCE.md").read_text() if (root / "PROVENANCE.md").is_file() else ""
    tasks = {
        name: Task(
            data=t.data,
            per_class=t.per_class,
            seed=t.seed,
            metric="top-1 accuracy (%)",
            description=t.description,
            track=t.track,
        )
        for name, t in TASKS.items()
    }
    return Suite(
        name=SUITE_NAME,
        description=(
            "NeuCRaB-style real suite: 13 image checkpoints (EfficientNet-Lite ImageNet, self-trained zoo, "
            "stages of one run, random-init) on 3 image tasks, 7 text checkpoints on 2 WordNet tasks; full "
            "fine-tuning and linear-probe ground truth with 3 seeds"
        ),
        tasks=tasks,
        checkpoints={name: {"spec": c.spec, "group": c.group} for name, c in CHECKPOINTS.items()},
        ground_truth=gt,
        baselines=baselines,
        provenance=provenance,
        default_protocol="full" if (gt["protocol"] == "full").any() else None,
        notes=[
            "Image and text checkpoints are ranked only on the tasks of their own track.",
            "Scores are computed on the task's training pool (per_class samples, seed 0), which includes the "
            "validation part used to select the fine-tuning configuration; the test split is never scored.",
        ],
    )


def _register_suite() -> None:
    from .suite import register_suite

    register_suite(SUITE_NAME, load_suite, replace=True)


register_datasets()
_register_suite()
