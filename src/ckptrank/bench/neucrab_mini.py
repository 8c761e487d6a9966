"""``neucrab-mini-v1``: the built-in real benchmark suite, its target tasks, and its ground-truth build.

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
``builtin:neucrab-wordnet-concrete``) and the suite as ``neucrab-mini-v1`` (the name ``neucrab-mini``
now means the current version, :mod:`ckptrank.bench.neucrab_mini_v2`).

Ground truth: both protocols of :mod:`ckptrank.bench.finetune` (``full``, the default, and
``linear``) with 3 seeds, committed as ``ground_truth/neucrab_mini_{image,text}.csv`` (every grid
run, ``selected`` marks the ground-truth rows) with ``ground_truth/PROVENANCE.md``. The build
(:func:`build_ground_truth`, ``ckptrank finetune --suite neucrab-mini-v1``) is resumable: it loads
the committed CSV into a results store, skips every recorded key, and rewrites the CSV
atomically after each run.

Everything that defines a version of the suite is one :class:`SuiteSpec` (:func:`suite_spec` for this
one); ``neucrab-mini-v2`` (:mod:`ckptrank.bench.neucrab_mini_v2`) is another spec run through the same
functions (each takes ``spec=``), with validation curves and the grid diagnostics :func:`lr_edge_fraction`
and :func:`plateau_gain`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .finetune import FinetuneConfig, FinetuneTask, finetune, finetune_checkpoint, load_task

__all__ = [
    "CHECKPOINTS",
    "CSV_COLUMNS",
    "EXTRA_COLUMNS",
    "GROUND_TRUTH_DIR",
    "PROTOCOL_CONFIGS",
    "SUITE_NAME",
    "TASKS",
    "TRACKS",
    "MiniCheckpoint",
    "MiniTask",
    "SuiteSpec",
    "baseline_row",
    "build_ground_truth",
    "ground_truth_csv",
    "ground_truth_status",
    "load_ground_truth",
    "load_suite",
    "load_suite_task",
    "lr_edge_fraction",
    "lr_edges",
    "plateau_gain",
    "register_datasets",
    "suite_spec",
    "write_baselines",
]

logger = logging.getLogger(__name__)

SUITE_NAME = "neucrab-mini-v1"
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


@dataclass(frozen=True)
class SuiteSpec:
    """Everything that tells one version of the suite from another; the build, the files and the loaded
    :class:`~ckptrank.bench.suite.Suite` are functions of it.

    Attributes
    ----------
    name : str
        Suite name (registry and results-store key).
    tasks, checkpoints : mapping
        :class:`MiniTask` and :class:`MiniCheckpoint` by name, in build and file order.
    protocol_configs : mapping
        :class:`~ckptrank.bench.finetune.FinetuneConfig` by protocol name.
    csv_stem : str
        The tracks' ground-truth files are ``{csv_stem}_{track}.csv``.
    csv_columns : tuple of str
        Columns of those files: :data:`CSV_COLUMNS`, optionally followed by ``n_val``, ``n_test``
        (sizes of the run's validation and test sets) and ``val_curve`` (JSON list of the validation
        accuracy after every epoch).
    store_name : str
        File name of the default results store in the cache folder.
    baselines_file : str
        File name of the target-blind baselines.
    description : str
    datasets : mapping
        Task data sets to register as ``builtin:NAME`` (name -> loader of a split).
    notes : tuple of str
        Caveats shown with every evaluation.
    build_protocols : tuple of str
        The protocols ``ckptrank finetune --suite`` builds when no ``--protocol`` is given.
    """

    name: str
    tasks: Mapping[str, MiniTask]
    checkpoints: Mapping[str, MiniCheckpoint]
    protocol_configs: Mapping[str, FinetuneConfig]
    csv_stem: str
    csv_columns: tuple[str, ...] = CSV_COLUMNS
    store_name: str = "neucrab-mini-ground-truth.sqlite"
    baselines_file: str = "baselines.csv"
    description: str = ""
    datasets: Mapping[str, Callable[[str], Any]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    build_protocols: tuple[str, ...] = ("linear", "full")


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


def _wordnet_subset(split: str, lexnames: tuple[str, ...], name: str) -> Any:
    """The WordNet noun glosses of the supersenses ``lexnames`` (in the order of the noun lexnames)."""
    from ckptrank.data.builtins import WORDNET_NOUN_LEXNAMES, load_builtin
    from ckptrank.data.dataset import TargetDataset

    full = load_builtin("wordnet-supersense", split)
    wanted = np.asarray([WORDNET_NOUN_LEXNAMES.index(c) for c in lexnames])
    if np.any(np.diff(wanted) <= 0):
        raise ValueError(f"builtin:{name}: list the supersenses in WordNet's order, got {list(lexnames)}")
    labels = np.asarray(full.labels)
    idx = np.flatnonzero(np.isin(labels, wanted))
    return TargetDataset(
        items=[full.items[i] for i in idx],
        labels=np.searchsorted(wanted, labels[idx]).astype(np.int64),
        modality="text",
        name=name,
        split=split,
        classes=lexnames,
        source=f"builtin:{name}",
    )


def _wordnet_concrete(split: str) -> Any:
    return _wordnet_subset(split, _CONCRETE, "neucrab-wordnet-concrete")


_DATASETS: dict[str, Callable[[str], Any]] = {
    "neucrab-fashion-mnist": lambda split: _fashion(split, None, "neucrab-fashion-mnist"),
    "neucrab-fashion-tops": lambda split: _fashion(split, _TOPS, "neucrab-fashion-tops"),
    "neucrab-wordnet-concrete": _wordnet_concrete,
}


def suite_spec() -> SuiteSpec:
    """The :class:`SuiteSpec` of ``neucrab-mini`` (v1), read from this module's globals at call time."""
    return SuiteSpec(
        name=SUITE_NAME,
        tasks=TASKS,
        checkpoints=CHECKPOINTS,
        protocol_configs=PROTOCOL_CONFIGS,
        csv_stem="neucrab_mini",
        description=(
            "NeuCRaB-style real suite: 13 image checkpoints (EfficientNet-Lite ImageNet, self-trained zoo, "
            "stages of one run, random-init) on 3 image tasks, 7 text checkpoints on 2 WordNet tasks; full "
            "fine-tuning and linear-probe ground truth with 3 seeds"
        ),
        datasets=_DATASETS,
        notes=(
            "Image and text checkpoints are ranked only on the tasks of their own track.",
            "Scores are computed on the task's training pool (per_class samples, seed 0), which includes the "
            "validation part used to select the fine-tuning configuration; the test split is never scored.",
        ),
    )


def register_datasets(spec: SuiteSpec | None = None) -> None:
    """Make the suite's task data sets loadable as ``builtin:NAME`` (idempotent)."""
    from ckptrank.data import builtins

    datasets = (spec or suite_spec()).datasets
    for name, loader in datasets.items():
        if name not in builtins.list_builtin_datasets():
            builtins.register_builtin_dataset(name, loader)


def load_suite_task(name: str, spec: SuiteSpec | None = None) -> FinetuneTask:
    """The fine-tuning task ``name`` of the suite (pool and test set, as the ground truth used them)."""
    spec = spec or suite_spec()
    if name not in spec.tasks:
        raise ValueError(f"unknown {spec.name} task {name!r}; tasks: {', '.join(spec.tasks)}")
    register_datasets(spec)
    t = spec.tasks[name]
    return load_task(t.data, name=name, per_class=t.per_class, test_per_class=t.test_per_class, seed=t.seed)


# ---------------------------------------------------------------------------------------------------------
# ground truth files


def ground_truth_csv(track: str, directory: Path | None = None, spec: SuiteSpec | None = None) -> Path:
    """The ground-truth file of ``track`` (``{csv_stem}_{track}.csv`` in ``directory``)."""
    if track not in TRACKS:
        raise ValueError(f"track must be one of {', '.join(TRACKS)}, not {track!r}")
    stem = (spec or suite_spec()).csv_stem
    return Path(directory or GROUND_TRUTH_DIR) / f"{stem}_{track}.csv"


def load_ground_truth(directory: Path | None = None, spec: SuiteSpec | None = None) -> pd.DataFrame:
    """Every recorded run of both tracks (long format, the spec's ``csv_columns``); empty when none."""
    spec = spec or suite_spec()
    frames = []
    for track in TRACKS:
        path = ground_truth_csv(track, directory, spec)
        if path.is_file():
            frames.append(pd.read_csv(path))
    if not frames:
        return pd.DataFrame(columns=list(spec.csv_columns))
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


#: Optional columns a spec may add after :data:`CSV_COLUMNS`; they come from the run's recorded config.
EXTRA_COLUMNS = ("n_val", "n_test", "val_curve")


def _curve_text(curve: Any) -> str:
    """A validation curve as the compact JSON list of the CSVs (``""`` when none was recorded)."""
    if curve is None or (isinstance(curve, float) and math.isnan(curve)):
        return ""
    return json.dumps([float(v) for v in curve], separators=(",", ":"))


def _store_rows(store: Any, track: str, spec: SuiteSpec | None = None) -> pd.DataFrame:
    spec = spec or suite_spec()
    columns = list(spec.csv_columns)
    runs = store.table("finetune_runs", suite=spec.name)
    tasks = [n for n, t in spec.tasks.items() if t.track == track]
    runs = runs[runs.task.isin(tasks) & runs.checkpoint.isin(list(spec.checkpoints))].copy()
    if len(runs) == 0:
        return pd.DataFrame(columns=columns)
    cfg = runs["config"].map(json.loads)
    runs["val_loss"] = cfg.map(lambda c: c.get("val_loss"))
    runs["config_id"] = cfg.map(lambda c: c.get("config_id"))
    for column in ("n_val", "n_test"):
        if column in columns:
            runs[column] = cfg.map(lambda c, k=column: c.get(k)).astype("Int64")
    if "val_curve" in columns:
        runs["val_curve"] = cfg.map(lambda c: _curve_text(c.get("val_curve")))
    runs["selected"] = runs["selected"].astype(int)
    task_order = {n: i for i, n in enumerate(spec.tasks)}
    ckpt_order = {n: i for i, n in enumerate(spec.checkpoints)}
    runs["_t"] = runs.task.map(task_order)
    runs["_c"] = runs.checkpoint.map(ckpt_order)
    runs = runs.sort_values(["protocol", "_t", "_c", "seed", "lr", "weight_decay"])
    return runs[columns].reset_index(drop=True)


def write_csv(store: Any, track: str, directory: Path | None = None, spec: SuiteSpec | None = None) -> Path:
    """Rewrite the track's CSV atomically from the store's rows of this suite."""
    path = ground_truth_csv(track, directory, spec)
    rows = _store_rows(store, track, spec)
    _atomic_write_text(path, rows.to_csv(index=False, float_format="%.9g"))
    return path


def import_csv(store: Any, track: str, directory: Path | None = None, spec: SuiteSpec | None = None) -> int:
    """Copy the committed CSV's runs into the store (recorded keys are left alone); returns how many."""
    spec = spec or suite_spec()
    path = ground_truth_csv(track, directory, spec)
    if not path.is_file():
        return 0
    added = 0
    frame = pd.read_csv(path)
    for row in frame.itertuples(index=False):
        config = spec.protocol_configs[str(row.protocol)].recipe()
        config.update(
            {"config_id": row.config_id, "val_loss": float(row.val_loss), "imported_from": path.name}
        )
        for column in ("n_val", "n_test"):
            if column in frame.columns and not pd.isna(getattr(row, column)):
                config[column] = int(getattr(row, column))
        if "val_curve" in frame.columns and not pd.isna(row.val_curve):
            config["val_curve"] = json.loads(str(row.val_curve))
        key = dict(
            suite=spec.name,
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


def _default_store_path(spec: SuiteSpec | None = None) -> Path:
    root = os.environ.get("CKPTRANK_CACHE") or str(Path.home() / ".cache" / "ckptrank")
    return Path(root) / (spec or suite_spec()).store_name


def _cost_tier(name: str, spec: SuiteSpec | None = None) -> int:
    """0: small zoo models, 1: GloVe, 2: EfficientNet-Lite and MiniLM (real or random-initialised),
    3: MPNet."""
    ckpt_spec = (spec or suite_spec()).checkpoints[name].spec
    if "mpnet" in ckpt_spec:
        return 3
    if "efficientnet" in ckpt_spec or "minilm" in ckpt_spec:
        return 2
    return 1 if "glove" in ckpt_spec else 0


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
    spec: SuiteSpec | None = None,
) -> pd.DataFrame:
    """Build (or resume) the suite's ground truth; returns the summary of the selected runs.

    ``spec`` picks the suite version (default: ``neucrab-mini-v1``, :func:`suite_spec`); its runs are
    keyed by its name in the store and written to its own CSVs.

    ``executor`` (``"local"``, ``"ray"`` or an executor) runs the fine-tuning jobs
    (:func:`ckptrank.bench.finetune.run_job`): locally pair by pair in the order above, on a remote
    executor every checkpoint's grid of a task in one wave. This process alone writes the store and
    the CSVs.

    Order: the linear protocol first (cheap), then full fine-tuning; within a protocol and track, the
    cheapest checkpoints (small zoo models) on every task first, then GloVe, then EfficientNet-Lite
    and MiniLM (real and random-initialised), then MPNet, tasks in suite order.
    After every run the track's CSV is rewritten atomically, so a killed build loses at most the run
    in progress and a later call (in any session) resumes from the CSV.
    """
    import dataclasses

    import ckptrank.zoo  # noqa: F401  # registers the zoo: checkpoint source
    from ckptrank.executors import resolve_executor

    from .finetune import summarize_runs
    from .store import ResultsStore

    spec = spec or suite_spec()
    say = log or logger.info
    register_datasets(spec)
    store = ResultsStore(store_path or _default_store_path(spec))
    runner, own_executor = resolve_executor(executor)
    try:
        for track in tracks:
            added = import_csv(store, track, directory, spec)
            if added:
                say(
                    f"imported {added} recorded runs of the {track} track from "
                    f"{ground_truth_csv(track, directory, spec).name}"
                )
        for protocol in protocols:
            cfg = dataclasses.replace(spec.protocol_configs[protocol], device=device)
            for track in tracks:
                names = [
                    n
                    for n, c in spec.checkpoints.items()
                    if c.track == track and (not checkpoints or n in checkpoints)
                ]
                task_names = [
                    n for n, t in spec.tasks.items() if t.track == track and (not tasks or n in tasks)
                ]
                pairs = sorted(
                    ((t, n) for t in task_names for n in names),
                    key=lambda p: (_cost_tier(p[1], spec), task_names.index(p[0]), names.index(p[1])),
                )
                if runner.remote:
                    # a cluster: every checkpoint's grid of a task in one wave (finetune's own plan)
                    for task_name in task_names:
                        t0 = time.perf_counter()
                        finetune(
                            {name: spec.checkpoints[name].spec for name in names},
                            [load_suite_task(task_name, spec)],
                            cfg,
                            store,
                            suite=spec.name,
                            cache=cache,
                            on_change=lambda track=track: write_csv(store, track, directory, spec),
                            log=say,
                            executor=runner,
                        )
                        say(f"done {task_name} | {protocol} ({time.perf_counter() - t0:.0f} s)")
                    continue
                loaded: dict[str, FinetuneTask] = {}
                for task_name, name in pairs:
                    if task_name not in loaded:
                        loaded[task_name] = load_suite_task(task_name, spec)
                    task = loaded[task_name]
                    t0 = time.perf_counter()
                    finetune_checkpoint(
                        spec.checkpoints[name].spec,
                        task,
                        cfg,
                        store,
                        suite=spec.name,
                        checkpoint=name,
                        cache=cache,
                        on_change=lambda track=track: write_csv(store, track, directory, spec),
                        log=say,
                        executor=runner,
                    )
                    say(f"done {task_name} | {name} | {protocol} ({time.perf_counter() - t0:.0f} s)")
        runs = store.table("finetune_runs", suite=spec.name)
        return summarize_runs(runs)
    finally:
        if own_executor:
            runner.close()
        store.close()


def ground_truth_status(directory: Path | None = None, spec: SuiteSpec | None = None) -> pd.DataFrame:
    """Per protocol and track: finished (task, checkpoint) pairs (every seed recorded) out of all, and runs.

    A pair is finished when it has one selected run per seed of its protocol.
    """
    spec = spec or suite_spec()
    runs = load_ground_truth(directory, spec)
    rows = []
    for protocol, cfg in spec.protocol_configs.items():
        for track in TRACKS:
            tasks = [n for n, t in spec.tasks.items() if t.track == track]
            ckpts = [n for n, c in spec.checkpoints.items() if c.track == track]
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


# ---------------------------------------------------------------------------------------------------------
# grid and convergence diagnostics


def lr_edges(runs: pd.DataFrame, lrs: Sequence[float], grid_seed: int = 0) -> pd.DataFrame:
    """Where each (task, checkpoint, protocol) pair's selected learning rate sits in the grid ``lrs``.

    Parameters
    ----------
    runs : pandas.DataFrame
        Runs of one protocol (columns ``task``, ``checkpoint``, ``protocol``, ``seed``, ``lr``,
        ``selected``), e.g. :func:`load_ground_truth` filtered on ``protocol``.
    lrs : sequence of float
        The protocol's learning-rate grid.
    grid_seed : int, default 0
        The seed the grid was searched with (its selected row gives the pair's learning rate).

    Returns
    -------
    pandas.DataFrame
        One row per pair with a selected grid-seed run (n_pairs rows): ``task``, ``checkpoint``,
        ``protocol``, ``lr`` and ``edge`` (``"low"``, ``"high"`` or ``""`` inside the grid).
    """
    if len(lrs) == 0:
        raise ValueError("lrs must hold at least one learning rate")
    lo, hi = min(lrs), max(lrs)
    if len(runs) == 0:
        return pd.DataFrame(columns=["task", "checkpoint", "protocol", "lr", "edge"])
    sel = runs[runs["selected"].astype(bool) & (runs["seed"].astype(int) == int(grid_seed))]
    out = sel[["task", "checkpoint", "protocol", "lr"]].drop_duplicates(["task", "checkpoint", "protocol"])
    lr = out["lr"].astype(float)
    edge = np.where(np.isclose(lr, lo), "low", np.where(np.isclose(lr, hi), "high", ""))
    return out.assign(edge=edge).reset_index(drop=True)


def lr_edge_fraction(runs: pd.DataFrame, lrs: Sequence[float], grid_seed: int = 0) -> float:
    """Fraction of pairs whose selected learning rate is the smallest or the largest of ``lrs``.

    A selection at an edge means the grid may not bracket the optimum. NaN when no pair is selected.

    >>> runs = pd.DataFrame({"task": ["t", "t"], "checkpoint": ["a", "b"], "protocol": ["linear"] * 2,
    ...                      "seed": [0, 0], "lr": [0.1, 1.0], "selected": [1, 1]})
    >>> lr_edge_fraction(runs, (0.01, 0.1, 1.0))
    0.5
    """
    edges = lr_edges(runs, lrs, grid_seed)
    if len(edges) == 0:
        return math.nan
    return float((edges["edge"] != "").mean())


def _curve(value: Any) -> list[float]:
    if isinstance(value, list | tuple):
        return [float(v) for v in value]
    if value is None or (isinstance(value, float) and math.isnan(value)) or str(value) == "":
        return []
    return [float(v) for v in json.loads(str(value))]


def plateau_gain(runs: pd.DataFrame, fraction: float = 0.2) -> pd.DataFrame:
    """Validation accuracy gained over the last ``fraction`` of each run's epochs (its ``val_curve``).

    For a curve ``c`` of ``n`` epochs and ``k = max(1, round(fraction * n))``: ``c[n-1] - c[n-1-k]``
    (accuracy after the last epoch minus after epoch ``n - k``). About 0 when training has
    plateaued; clearly positive when more epochs would still help.

    Parameters
    ----------
    runs : pandas.DataFrame
        Runs with a ``val_curve`` column (JSON list text, as in the CSVs, or a list); rows without a
        curve of at least 2 epochs are left out.
    fraction : float, default 0.2

    Returns
    -------
    pandas.DataFrame
        The runs kept (n_runs rows; the columns of ``runs``) with ``epochs_in_curve`` and ``late_gain``.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie strictly between 0 and 1, got {fraction}")
    if "val_curve" not in runs.columns:
        raise ValueError("runs have no val_curve column (only neucrab-mini-v2's files record curves)")
    curves = runs["val_curve"].map(_curve)
    keep = curves.map(len) >= 2
    out = runs[keep].copy()
    curves = curves[keep]
    k = curves.map(lambda c: max(1, round(fraction * len(c))))
    out["epochs_in_curve"] = curves.map(len).astype(int)
    out["late_gain"] = [c[-1] - c[-1 - min(kk, len(c) - 1)] for c, kk in zip(curves, k, strict=True)]
    return out.reset_index(drop=True)


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


def write_baselines(directory: Path | None = None, spec: SuiteSpec | None = None) -> Path:
    """Write the spec's baselines file (one :func:`baseline_row` per checkpoint), loading every checkpoint."""
    import ckptrank.zoo  # noqa: F401
    from ckptrank.adapters import load_checkpoint

    spec = spec or suite_spec()
    rows = [baseline_row(name, load_checkpoint(c.spec)) for name, c in spec.checkpoints.items()]
    path = Path(directory or GROUND_TRUTH_DIR) / spec.baselines_file
    _atomic_write_text(path, pd.DataFrame(rows).to_csv(index=False))
    return path


# ---------------------------------------------------------------------------------------------------------
# the suite


def load_suite(directory: Path | None = None, spec: SuiteSpec | None = None) -> Any:
    """The suite (default ``neucrab-mini-v1``) as a :class:`~ckptrank.bench.suite.Suite` from its files.

    Ground truth: the selected runs (one per seed), accuracy = 100 x test accuracy, protocols
    ``full`` and ``linear``. Pairs whose build has not finished yet are simply absent. The default
    protocol is v1's ``full``; for later versions, ``full`` once it covers every (task, checkpoint)
    pair, else ``linear``, with a note naming what is missing.
    """
    import ckptrank.zoo  # noqa: F401  # registers the zoo: checkpoint source the suite's specs use

    from .suite import Suite, Task

    spec = spec or suite_spec()
    register_datasets(spec)
    root = Path(directory or GROUND_TRUTH_DIR)
    runs = load_ground_truth(root, spec)
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
    if "n_test" in sel.columns:
        # the test-set size lets the evaluation carry the test set's sampling noise into the truth
        gt["n_test"] = pd.to_numeric(sel["n_test"], errors="coerce").astype(float)
    baselines = None
    if (root / spec.baselines_file).is_file():
        baselines = pd.read_csv(root / spec.baselines_file)
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
        for name, t in spec.tasks.items()
    }
    pairs = {p: set(zip(g["task"], g["checkpoint"], strict=True)) for p, g in gt.groupby("protocol")}
    wanted = set().union(*pairs.values()) if pairs else set()
    # a protocol is the default only once every (task, checkpoint) pair has its truth: a partly
    # built full protocol must not silently replace a complete linear one
    complete = [p for p in ("full", "linear") if p in pairs and pairs[p] >= wanted]
    default = complete[0] if complete else ("full" if "full" in pairs else None)
    if spec.name == SUITE_NAME:
        default = "full" if "full" in pairs else None  # v1 as it always was
    notes = list(spec.notes)
    unbuilt = [name for name in spec.protocol_configs if name not in pairs]
    partial = [p for p in pairs if p not in complete]
    if default is not None and (unbuilt or partial):
        missing = [f"{p} is defined but not built yet" for p in unbuilt]
        missing += [
            f"{p} is built for {len(pairs[p])} of {len(wanted)} (task, checkpoint) pairs" for p in partial
        ]
        notes.insert(
            0,
            f"the ground truth is the {default} protocol's: {'; '.join(missing)} (ckptrank finetune --suite "
            f"{spec.name} --protocol {(unbuilt or partial)[0]}; see PROVENANCE.md)",
        )
    return Suite(
        name=spec.name,
        description=spec.description,
        tasks=tasks,
        checkpoints={name: {"spec": c.spec, "group": c.group} for name, c in spec.checkpoints.items()},
        ground_truth=gt,
        baselines=baselines,
        provenance=provenance,
        default_protocol=default,
        notes=notes,
    )


def _register_suite() -> None:
    from .suite import register_suite

    register_suite(SUITE_NAME, load_suite, replace=True)


register_datasets()
_register_suite()
