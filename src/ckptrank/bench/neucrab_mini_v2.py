"""``neucrab-mini-v2``: the second version of the built-in real suite (bigger pools, more tasks, 112 px,
intermediate layers, a bracketing learning-rate grid, validation curves).

It is the current version: ``neucrab-mini`` names it (``ckptrank bench --suite neucrab-mini``). Same
offline data as ``neucrab-mini-v1`` (which stays as it is, loadable for comparison), run through the same
machinery (:class:`ckptrank.bench.neucrab_mini.SuiteSpec`); only the definition differs:

* **Tasks (8).** Image: ``fashion-mnist`` (10-way), ``fashion-tops`` (T-shirt/top, Pullover, Coat,
  Shirt), ``fashion-footwear`` (Sandal, Sneaker, Bag, Ankle boot), ``digits`` (UCI 8x8). Text (WordNet
  3.0 noun glosses): ``wordnet-nouns`` (26 supersenses), ``wordnet-concrete`` (8 concrete),
  ``wordnet-abstract`` (act, attribute, cognition, communication, event, feeling, state, time) and
  ``wordnet-residual`` (group, object, phenomenon, possession, process, quantity, relation, shape: the
  other supersenses with at least 270 training glosses). Pools of 100 per class (150 for
  fashion-tops) where the data allow, so the 20 % validation split holds at least 20 per class; test
  sets of at least 50 per class where available. No WordNet *verb* task: the zoo's ``bow-wnverb`` was
  pre-trained on verb glosses.
* **Checkpoints.** Image (15): EfficientNet-Lite0/1/2 at 112 px, two intermediate blocks of Lite0
  (``_blocks.4``: end of the 40-channel stage, stride 8; ``_blocks.10``: end of the 112-channel stage,
  stride 16), v1's zoo models and random-initialised controls (EfficientNet-Lite0-random at 112 px).
  Text (10): all-mpnet-base-v2 and its transformer layers 3 and 7, all-MiniLM-L6-v2 and its layers 1
  and 3, GloVe-6B-50d, ``bow-wnverb`` and the random controls ``minilm-random``, ``bow-random``.
* **Protocols.** ``linear``: learning rates 0.0001 .. 3 in half-decade steps x weight decay {0, 1e-3},
  100 epochs (the cosine schedule ends at 0, so the curves flatten). ``full``: LP-FT as in v1 with
  learning rates 0.001 .. 0.03 (four, 30x span); defined, built only on request (on a GPU: it needs
  hundreds of CPU-hours, PROVENANCE.md).
  3 seeds (grid on seed 0). The CSVs add ``n_val``, ``n_test`` (binomial standard error of a test
  accuracy ``p``: ``sqrt(p (1 - p) / n_test)``) and ``val_curve`` (validation accuracy after every
  epoch, JSON) to v1's columns.

Build or resume: ``ckptrank finetune --suite neucrab-mini-v2 --protocol linear --threads 1`` (files
``ground_truth/neucrab_mini_v2_{image,text}.csv``, baselines ``neucrab_mini_v2_baselines.csv``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from . import neucrab_mini as v1
from .finetune import FinetuneConfig
from .neucrab_mini import MiniCheckpoint, MiniTask, SuiteSpec

__all__ = [
    "CHECKPOINTS",
    "CSV_COLUMNS",
    "CURRENT_NAME",
    "PROTOCOL_CONFIGS",
    "SPEC",
    "SUITE_NAME",
    "TASKS",
    "grid_diagnostics",
    "load_suite",
]

SUITE_NAME = "neucrab-mini-v2"

#: The unversioned name, which means the current version of the suite (this one).
CURRENT_NAME = "neucrab-mini"
CSV_COLUMNS = (*v1.CSV_COLUMNS, *v1.EXTRA_COLUMNS)

_FOOTWEAR = (5, 7, 8, 9)  # Sandal, Sneaker, Bag, Ankle boot
_ABSTRACT = (
    "noun.act",
    "noun.attribute",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.state",
    "noun.time",
)
_RESIDUAL = (
    "noun.group",
    "noun.object",
    "noun.phenomenon",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
)

_DATASETS: dict[str, Callable[[str], Any]] = {
    **v1._DATASETS,
    "neucrab-fashion-footwear": lambda split: v1._fashion(split, _FOOTWEAR, "neucrab-fashion-footwear"),
    "neucrab-wordnet-abstract": lambda split: v1._wordnet_subset(
        split, _ABSTRACT, "neucrab-wordnet-abstract"
    ),
    "neucrab-wordnet-residual": lambda split: v1._wordnet_subset(
        split, _RESIDUAL, "neucrab-wordnet-residual"
    ),
}

_VAL = "validation: 20 % of every class of the pool"
TASKS: dict[str, MiniTask] = {
    "fashion-mnist": MiniTask(
        "image",
        "builtin:neucrab-fashion-mnist",
        100,
        100,
        0,
        f"Fashion-MNIST, 10 classes; pool: 100 per class from the TARGET half of the training file ({_VAL}: "
        "20); test: 100 per class of the official test file (1,000)",
    ),
    "fashion-tops": MiniTask(
        "image",
        "builtin:neucrab-fashion-tops",
        150,
        150,
        0,
        "Fashion-MNIST T-shirt/top, Pullover, Coat, Shirt (confusable); pool: 150 per class from the TARGET "
        f"half ({_VAL}: 30); test: 150 per class of the official test file (600)",
    ),
    "fashion-footwear": MiniTask(
        "image",
        "builtin:neucrab-fashion-footwear",
        100,
        100,
        0,
        "Fashion-MNIST Sandal, Sneaker, Bag, Ankle boot; pool: 100 per class from the TARGET half "
        f"({_VAL}: 20); test: 100 per class of the official test file (400)",
    ),
    "digits": MiniTask(
        "image",
        "builtin:digits",
        100,
        None,
        0,
        f"UCI optdigits 8x8 (scikit-learn), 10 classes; pool: 100 per class of its train split ({_VAL}: 20; "
        "the split has 122-128 per class); test: all 540 (52-55 per class)",
    ),
    "wordnet-nouns": MiniTask(
        "text",
        "builtin:wordnet-supersense",
        100,
        50,
        0,
        f"WordNet 3.0 noun glosses, 26 supersenses; pool: 100 per class ({_VAL}: 20), except noun.motive "
        "(all 32: 6 validation) and noun.Tops (all 40: 8 validation); test: 50 per class, all 10 of "
        "noun.motive and all 11 of noun.Tops",
    ),
    "wordnet-concrete": MiniTask(
        "text",
        "builtin:neucrab-wordnet-concrete",
        100,
        50,
        0,
        "WordNet noun glosses of 8 concrete supersenses (animal, artifact, body, food, location, person, "
        f"plant, substance); pool: 100 per class ({_VAL}: 20); test: 50 per class",
    ),
    "wordnet-abstract": MiniTask(
        "text",
        "builtin:neucrab-wordnet-abstract",
        100,
        50,
        0,
        "WordNet noun glosses of 8 abstract supersenses (act, attribute, cognition, communication, event, "
        f"feeling, state, time); pool: 100 per class ({_VAL}: 20); test: 50 per class",
    ),
    "wordnet-residual": MiniTask(
        "text",
        "builtin:neucrab-wordnet-residual",
        100,
        50,
        0,
        "WordNet noun glosses of the 8 other supersenses with at least 270 training glosses (group, object, "
        f"phenomenon, possession, process, quantity, relation, shape); pool: 100 per class ({_VAL}: 20); "
        "test: 50 per class",
    ),
}


def _from_v1(*names: str) -> dict[str, MiniCheckpoint]:
    """v1's checkpoints that v2 keeps as they are."""
    return {name: v1.CHECKPOINTS[name] for name in names}


CHECKPOINTS: dict[str, MiniCheckpoint] = {
    # image track
    "efficientnet-lite0": MiniCheckpoint("efficientnet-lite0?size=112", "imagenet", "image"),
    "efficientnet-lite1": MiniCheckpoint("efficientnet-lite1?size=112", "imagenet", "image"),
    "efficientnet-lite2": MiniCheckpoint("efficientnet-lite2?size=112", "imagenet", "image"),
    "efficientnet-lite0@block4": MiniCheckpoint("efficientnet-lite0@_blocks.4?size=112", "layers", "image"),
    "efficientnet-lite0@block10": MiniCheckpoint("efficientnet-lite0@_blocks.10?size=112", "layers", "image"),
    **_from_v1(
        "cnn-fm59",
        "resnet-fm04",
        "mlp-fm04",
        "cnn-rot",
        "cnn-fm04-e1",
        "cnn-fm04-e3",
        "cnn-fm04",
        "cnn-random",
        "resnet-random",
    ),
    "efficientnet-lite0-random": MiniCheckpoint(
        "zoo:efficientnet-lite0-random?size=112", "random-init", "image"
    ),
    # text track
    "all-mpnet-base-v2": MiniCheckpoint("all-mpnet-base-v2", "pretrained", "text"),
    **_from_v1("all-minilm-l6-v2", "glove-6b-50d"),
    "all-mpnet-base-v2@layer3": MiniCheckpoint("all-mpnet-base-v2@0.model.encoder.layer.3", "layers", "text"),
    "all-mpnet-base-v2@layer7": MiniCheckpoint("all-mpnet-base-v2@0.model.encoder.layer.7", "layers", "text"),
    **_from_v1(
        "all-minilm-l6-v2@layer3", "all-minilm-l6-v2@layer1", "bow-wnverb", "minilm-random", "bow-random"
    ),
}

#: ``linear`` is built; ``full`` is defined the same way but not built (hundreds of CPU-hours; PROVENANCE.md).
PROTOCOL_CONFIGS: dict[str, FinetuneConfig] = {
    # v1's protocols with a grid that brackets the optimum and enough epochs to plateau
    "linear": dataclasses.replace(
        v1.PROTOCOL_CONFIGS["linear"],
        lrs=(0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0),
        epochs=100,
    ),
    "full": dataclasses.replace(v1.PROTOCOL_CONFIGS["full"], lrs=(0.001, 0.003, 0.01, 0.03), epochs=15),
}

SPEC = SuiteSpec(
    name=SUITE_NAME,
    tasks=TASKS,
    checkpoints=CHECKPOINTS,
    protocol_configs=PROTOCOL_CONFIGS,
    csv_stem="neucrab_mini_v2",
    csv_columns=CSV_COLUMNS,
    store_name="neucrab-mini-v2-ground-truth.sqlite",
    baselines_file="neucrab_mini_v2_baselines.csv",
    description=(
        "neucrab-mini v2: 15 image checkpoints (EfficientNet-Lite at 112 px and two of Lite0's blocks, "
        "self-trained zoo, stages, random-init) on 4 image tasks, 10 text checkpoints (MPNet, MiniLM and "
        "their layers, GloVe, zoo, random-init) on 4 WordNet noun tasks; linear-probe ground truth over a "
        "bracketing learning-rate grid with 3 seeds (full fine-tuning defined, not built)"
    ),
    datasets=_DATASETS,
    # the full protocol needs a GPU (hundreds of CPU-hours): built only when asked for by name
    build_protocols=("linear",),
    notes=(
        "Image and text checkpoints are ranked only on the tasks of their own track.",
        "Scores are computed on the task's training pool (per_class samples, seed 0), which includes the "
        "validation part used to select the fine-tuning configuration; the test split is never scored.",
        "Test sets have 400-1,221 samples per task (n_test in the CSVs): a test accuracy p carries a "
        "binomial standard error sqrt(p (1 - p) / n_test) of up to 1.5-2.5 points besides the seed spread.",
    ),
)


def load_suite(directory: Path | None = None) -> Any:
    """The ``neucrab-mini-v2`` :class:`~ckptrank.bench.suite.Suite` from its committed files."""
    return v1.load_suite(directory, SPEC)


def grid_diagnostics(protocol: str = "linear", directory: Path | None = None) -> dict[str, Any]:
    """Whether the recorded ground truth of ``protocol`` brackets its optimum and has converged.

    Returns
    -------
    dict
        ``pairs`` (pairs with a selected grid run), ``edge_fraction`` (share whose selected learning
        rate is the grid's smallest or largest, :func:`ckptrank.bench.neucrab_mini.lr_edge_fraction`;
        target at most 0.2), ``edge_pairs`` (those pairs: task, checkpoint, lr, edge),
        ``lr_counts`` (selected learning rate -> pairs), and the plateau statistic of the selected
        runs (:func:`ckptrank.bench.neucrab_mini.plateau_gain` over the last 20 % of epochs):
        ``late_gain_mean``, ``late_gain_median``, ``late_gain_max``, ``late_gain_share_over_2pts``
        (share of selected runs that still gained more than 0.02 validation accuracy).
    """
    if protocol not in PROTOCOL_CONFIGS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOL_CONFIGS)}, not {protocol!r}")
    runs = v1.load_ground_truth(directory, SPEC)
    runs = runs[runs["protocol"] == protocol] if len(runs) else runs
    cfg = PROTOCOL_CONFIGS[protocol]
    edges = v1.lr_edges(runs, cfg.lrs, cfg.seeds[0]) if len(runs) else pd.DataFrame(columns=["edge", "lr"])
    sel = runs[runs["selected"].astype(bool)] if len(runs) else runs
    gains = v1.plateau_gain(sel)["late_gain"] if len(sel) else pd.Series(dtype=float)
    return {
        "protocol": protocol,
        "pairs": len(edges),
        "edge_fraction": float((edges["edge"] != "").mean()) if len(edges) else float("nan"),
        "edge_pairs": edges[edges["edge"] != ""].to_dict(orient="records"),
        "lr_counts": {float(k): int(v) for k, v in edges["lr"].value_counts().sort_index().items()},
        "late_gain_mean": float(gains.mean()) if len(gains) else float("nan"),
        "late_gain_median": float(gains.median()) if len(gains) else float("nan"),
        "late_gain_max": float(gains.max()) if len(gains) else float("nan"),
        "late_gain_share_over_2pts": float((gains > 0.02).mean()) if len(gains) else float("nan"),
    }


def _register_suite() -> None:
    from .suite import register_suite

    register_suite(SUITE_NAME, load_suite, replace=True)
    register_suite(CURRENT_NAME, load_suite, replace=True)


v1.register_datasets(SPEC)
_register_suite()
