"""Published suites: ground truths, score tables and reported statistics of other projects.

The tables under ``published_data/`` are verbatim copies of numbers published in public
repositories (``published_data/PROVENANCE.md`` names repository, path and commit of each). Each is
exposed as a suite named ``published:NAME``:

==========================================  ================================================================
``published:tllib``                         10 ImageNet CNNs x 8 tasks (LogME's ground truth, thuml/TLLIB):
                                            published HScore/LEEP/LogME/NCE scores, reported Pearson and
                                            weighted tau
``published:sfda-group1``                   11 supervised ImageNet CNNs x 11 tasks (SFDA): reported weighted
                                            tau of LEEP, LogME, NLEEP, PARC, SFDA
``published:sfda-group2``                   12 self-supervised ResNet-50s x 11 tasks (SFDA): reported
                                            weighted tau from PED's README
``published:modelspider``                   10 ImageNet CNNs x 8 tasks (Model Spider's copy of LogME's
                                            ground truth): published scores of 9 measures, reported weighted
                                            tau
``published:emms-vit``                      13 ViT-family models x 11 tasks (EMMS / SFDA ViT table)
``published:parc``                          32 (architecture, source) models x 7 targets (PARC, controlled)
``published:stable-transfer``               19 Keras architectures x 9 targets, fine-tuned and linear
                                            protocols; published GBC/LEEP/NLEEP/LogME scores; parameter
                                            counts of the backbones, from the Keras documentation
``published:stable-transfer-segmentation``  stable_transfer's semantic segmentation source selection: 17
                                            HRNet checkpoints (one per source dataset) x 17 targets, test
                                            mean IoU; published GBC/LEEP/NLEEP/LogME scores; no static
                                            baseline
``published:transfergraph-image``           TransferGraph's Hugging Face image zoo: 137-145 hub checkpoints x
                                            8 datasets, fine-tuned accuracy; published LogME and regularised
                                            H-score; recorded parameter counts
==========================================  ================================================================

Task names are the lower-case SFDA names (``aircraft``, ``cars``, ``pets``, ...), checkpoint
names the torchvision names (``resnet50``, ``inception_v3``, ...); the source's own spellings
are accepted as aliases in score files. The static baselines of the torchvision checkpoints are
their documented ImageNet top-1 accuracy (torchvision 0.29.1 weights metadata,
``published_data/torchvision_imagenet1k_v1.csv``) and the parameter count of the architecture,
counted on the network torchvision builds (:func:`architecture_parameters`: ``weights=None`` on
PyTorch's meta device, offline, no weights; the network as run at inference, without the
training-only auxiliary classifiers of GoogLeNet and Inception-v3). The weights metadata's
``num_params`` is not used for it: it counts Inception-v3 with its auxiliary classifier (27.2 M
instead of the 23.8 M that run) and GoogLeNet without, and on the Model Spider table that one
number moves the parameter-count baseline from 0.680 to 0.740 mean weighted tau. Without
torchvision the metadata count is used, with a note. Every published ground truth has a single
fine-tuning seed, so there is no interval over seeds and no seed agreement or reliability.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from importlib import resources

import pandas as pd

from .suite import Suite, SuiteCheckpoint, Task, register_suite

__all__ = [
    "PUBLISHED_NAMES",
    "PUBLISHED_SUITES",
    "architecture_parameters",
    "data_files",
    "read_published_table",
]

#: Published metric names -> ckptrank measures that compute the same quantity.
PUBLISHED_NAMES = {
    "LogME": "logme",
    "H-Score": "hscore",
    "HScore": "hscore",
    "LEEP": "leep",
    "NLEEP": "nleep",
    "N-LEEP": "nleep",
    "NCE": "nce",
    "GBC": "gbc",
    "SFDA": "sfda",
    "TransRate": "transrate",
    "PARC": "parc",
}

_PACKAGE = "ckptrank.bench"
_FOLDER = "published_data"

SFDA_TASKS = (
    "aircraft",
    "caltech101",
    "cars",
    "cifar10",
    "cifar100",
    "dtd",
    "flowers",
    "food",
    "pets",
    "sun397",
    "voc2007",
)
_SFDA_METRIC = {
    "aircraft": "mean per-class accuracy (%)",
    "caltech101": "mean per-class accuracy (%)",
    "flowers": "mean per-class accuracy (%)",
    "pets": "mean per-class accuracy (%)",
    "voc2007": "11-point mAP (%)",
}
_TASK_ALIASES = {
    "Aircraft": "aircraft",
    "Caltech101": "caltech101",
    "CIFAR10": "cifar10",
    "CIFAR100": "cifar100",
    "DTD": "dtd",
    "OxfordIIITPets": "pets",
    "OxfordIIITPet": "pets",
    "Pet": "pets",
    "StanfordCars": "cars",
    "Cars": "cars",
    "SUN397": "sun397",
    "Flowers102": "flowers",
    "Food101": "food",
    "VOC2007": "voc2007",
}
_TLLIB_MODELS = {
    "GoogleNet": "googlenet",
    "Inception V3": "inception_v3",
    "ResNet50": "resnet50",
    "ResNet101": "resnet101",
    "ResNet152": "resnet152",
    "DenseNet121": "densenet121",
    "DenseNet169": "densenet169",
    "Densenet201": "densenet201",
    "MobileNet V2": "mobilenet_v2",
    "MNasNet": "mnasnet1_0",
}
_EMMS_ALIASES = {
    "vit_t_16": "deit_tiny",
    "vit_s_16": "deit_small",
    "vit_b_16": "deit_base",
    "pvt_t": "pvt_tiny",
    "pvt_s": "pvt_small",
    "pvt_m": "pvt_medium",
    "mocov3_vits16": "mocov3_small",
    "dino_vits16": "dino_small",
}
_MODELSPIDER_METHODS = {"N-LEEP": "NLEEP", "PACTran": "PACTranDirichlet"}
_TORCHVISION_SOURCE = (
    "Baselines: ImageNet-1K top-1 (%) of the torchvision IMAGENET1K_V1 weights (torchvision 0.29.1 weights "
    "metadata, the numbers of the torchvision documentation), and the parameter count of the torchvision "
    "architecture, counted on the network built with weights=None (offline, random-initialised, on the meta "
    "device) as run at inference: GoogLeNet and Inception-v3 without their training-only auxiliary "
    "classifiers (the weights metadata counts Inception-v3's, 27,161,264 instead of 23,834,568)."
)
_SINGLE_SEED = (
    "published ground truth: one fine-tuning seed per pair (no interval over seeds, no seed agreement or "
    "reliability)"
)
#: Constructor options that build torchvision's inference network for architectures that add
#: training-only auxiliary classifiers by default (``init_weights=False``: no initialisation is
#: needed to count, and it silences torchvision's warning about that option's default).
_INFERENCE_OPTIONS = {
    "googlenet": {"aux_logits": False, "init_weights": False},
    "inception_v3": {"aux_logits": False, "init_weights": False},
}
_METADATA_FALLBACK = (
    "torchvision is not installed: num_parameters is torchvision's weights metadata (it counts "
    "Inception-v3's auxiliary classifier); pip install 'ckptrank[vision]' to count the architectures"
)


def data_files() -> list[str]:
    """Names of the packaged data files."""
    folder = resources.files(_PACKAGE) / _FOLDER
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".csv", ".md")))


def read_published_table(name: str) -> pd.DataFrame:
    """A packaged CSV as a DataFrame.

    Raises
    ------
    FileNotFoundError
        No packaged file of that name (the message lists them).
    """
    path = resources.files(_PACKAGE) / _FOLDER / name
    if not path.is_file():
        raise FileNotFoundError(f"no packaged table {name!r}; tables: {', '.join(data_files())}")
    return pd.read_csv(io.StringIO(path.read_text(encoding="utf-8")))


def _provenance(*files: str, extra: str = "") -> str:
    text = resources.files(_PACKAGE) / _FOLDER / "PROVENANCE.md"
    lines = [line for line in text.read_text(encoding="utf-8").splitlines() if line.startswith("| `")]
    picked = []
    for file in files:
        for line in lines:
            if line.startswith(f"| `{file}`"):
                cells = [c.strip() for c in line.strip("|").split("|")]
                picked.append(f"{cells[0].strip('`')}: {cells[1]}, {cells[2]}")
    return "\n".join([*picked, *([extra] if extra else [])])


def _wide_truth(
    frame: pd.DataFrame, *, model: str = "model", rename_models: dict[str, str] | None = None
) -> pd.DataFrame:
    long = frame.melt(id_vars=[model], var_name="task", value_name="accuracy").rename(
        columns={model: "checkpoint"}
    )
    long["task"] = long["task"].map(lambda t: _TASK_ALIASES.get(t, t))
    if rename_models:
        long["checkpoint"] = long["checkpoint"].map(lambda m: rename_models.get(m, m))
    long["seed"] = 0
    long["protocol"] = "finetune"
    return long.dropna(subset=["accuracy"])[["task", "checkpoint", "seed", "accuracy", "protocol"]]


def _wide_reported(frame: pd.DataFrame, statistic: str, rename: dict[str, str] | None = None) -> pd.DataFrame:
    frame = frame.drop(columns=[c for c in frame.columns if c == "mean"])
    long = frame.melt(id_vars=["method"], var_name="task", value_name="value").rename(
        columns={"method": "measure"}
    )
    long["task"] = long["task"].map(lambda t: _TASK_ALIASES.get(t, t))
    if rename:
        long["measure"] = long["measure"].map(lambda m: rename.get(m, m))
    long["statistic"] = statistic
    return long[["task", "measure", "statistic", "value"]]


@functools.cache
def _count_parameters(name: str) -> int:
    import torch
    from torchvision import models

    with torch.device("meta"):
        network = models.get_model(name, weights=None, **_INFERENCE_OPTIONS.get(name, {}))
    return int(sum(p.numel() for p in network.parameters()))


def architecture_parameters(names: Sequence[str]) -> pd.Series:
    """Parameter count of torchvision classification architectures, counted on the built network.

    Each network is built by ``torchvision.models.get_model(name, weights=None)`` on PyTorch's
    meta device (no memory, no weights, no download; its code is torchvision's own), in the form
    that runs at inference: GoogLeNet and Inception-v3 without their training-only auxiliary
    classifiers. The count includes the ImageNet classifier. Counts are cached per process.

    Parameters
    ----------
    names : sequence of str
        torchvision model names (``"resnet50"``, ``"inception_v3"``, ...).

    Returns
    -------
    pandas.Series
        Name -> parameter count (float), in the order given.

    Raises
    ------
    ImportError
        torchvision is not installed (one line, with the install command).
    ValueError
        A name torchvision does not know.

    Examples
    --------
    >>> architecture_parameters(["resnet18", "inception_v3"]).astype(int).tolist()
    [11689512, 23834568]
    """
    try:
        from torchvision import models
    except ImportError:
        raise ImportError(
            "counting torchvision architectures needs torchvision; pip install 'ckptrank[vision]'"
        ) from None
    known = set(models.list_models(module=models))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(
            f"torchvision has no classification architecture {', '.join(map(repr, unknown))}; "
            "see torchvision.models.list_models()"
        )
    return pd.Series({n: float(_count_parameters(n)) for n in names}, dtype=float)


def _parameter_counts(names: list[str]) -> tuple[pd.Series, list[str]]:
    """Architecture counts, or (without torchvision) the weights metadata's, with a note."""
    try:
        return architecture_parameters(names), []
    except ImportError:
        table = read_published_table("torchvision_imagenet1k_v1.csv").set_index("model")
        return table.loc[names, "num_params"].astype(float), [_METADATA_FALLBACK]


def _torchvision_baselines(names: list[str]) -> tuple[pd.DataFrame, list[str]]:
    table = read_published_table("torchvision_imagenet1k_v1.csv").set_index("model")
    known = [n for n in names if n in table.index]
    params, notes = _parameter_counts(known)
    frame = pd.DataFrame(
        {
            "num_parameters": params.loc[known].to_numpy(dtype=float),
            "source_accuracy": table.loc[known, "imagenet_top1"].to_numpy(dtype=float),
            # torchvision's IMAGENET1K_V1 weights: top-1 on the 1,000 ImageNet-1k classes
            "source_classes": [1000.0] * len(known),
            "source_label_set": ["ImageNet-1k"] * len(known),
        },
        index=pd.Index(known),
    )
    return frame, notes


def _torchvision_checkpoints(names: list[str], group: str) -> dict[str, SuiteCheckpoint]:
    return {name: SuiteCheckpoint(spec=f"torchvision:{name}", group=group) for name in names}


def _sfda_tasks() -> dict[str, Task]:
    return {task: Task(metric=_SFDA_METRIC.get(task, "top-1 accuracy (%)")) for task in SFDA_TASKS}


def _load_tllib() -> Suite:
    truth = _wide_truth(read_published_table("tllib_finetune_acc.csv"), rename_models=_TLLIB_MODELS)
    scores = read_published_table("tllib_metric_scores.csv").rename(
        columns={"dataset": "task", "model": "checkpoint", "metric": "measure"}
    )
    scores["task"] = scores["task"].map(lambda t: _TASK_ALIASES.get(t, t))
    scores["checkpoint"] = scores["checkpoint"].map(lambda m: _TLLIB_MODELS.get(m, m))
    reported = read_published_table("tllib_reported_correlations.csv").rename(
        columns={"dataset": "task", "metric": "measure"}
    )
    reported["task"] = reported["task"].map(lambda t: _TASK_ALIASES.get(t, t))
    reported["statistic"] = reported["statistic"].map(
        {"Pearson Corr": "pearson", "Weighted Tau": "weighted_tau"}
    )
    names = list(dict.fromkeys(truth["checkpoint"]))
    baselines, baseline_notes = _torchvision_baselines(names)
    return Suite(
        name="published:tllib",
        description="LogME's ground truth (10 ImageNet CNNs x 8 tasks) with the HScore, LEEP, LogME and NCE "
        "scores and the Pearson / weighted tau that thuml/Transfer-Learning-Library publishes",
        tasks={t: Task(metric="fine-tuned top-1 accuracy (%)") for t in dict.fromkeys(truth["task"])},
        checkpoints=_torchvision_checkpoints(names, "supervised ImageNet CNN"),
        ground_truth=truth,
        baselines=baselines,
        provenance=_provenance(
            "tllib_finetune_acc.csv",
            "tllib_metric_scores.csv",
            "tllib_reported_correlations.csv",
            "torchvision_imagenet1k_v1.csv",
            extra=_TORCHVISION_SOURCE,
        ),
        default_protocol="finetune",
        published_scores=scores[["task", "checkpoint", "measure", "score"]],
        reported=reported[["task", "measure", "statistic", "value"]],
        checkpoint_aliases=_TLLIB_MODELS,
        task_aliases=_TASK_ALIASES,
        notes=[
            _SINGLE_SEED,
            "tllib's DTD NCE scores duplicate its DTD LogME scores (a copy error upstream)",
            *baseline_notes,
        ],
    )


def _load_sfda_group1() -> Suite:
    truth = _wide_truth(read_published_table("sfda_group1_finetune_acc.csv"))
    names = list(dict.fromkeys(truth["checkpoint"]))
    baselines, baseline_notes = _torchvision_baselines(names)
    return Suite(
        name="published:sfda-group1",
        description="SFDA's group 1: 11 supervised ImageNet CNNs (torchvision V1) x 11 tasks, with the "
        "weighted tau SFDA reports for LEEP, LogME, NLEEP, PARC and SFDA (no score table is published)",
        tasks=_sfda_tasks(),
        checkpoints=_torchvision_checkpoints(names, "supervised ImageNet CNN"),
        ground_truth=truth,
        baselines=baselines,
        provenance=_provenance(
            "sfda_group1_finetune_acc.csv",
            "sfda_reported_weighted_tau_group1.csv",
            "torchvision_imagenet1k_v1.csv",
            extra=_TORCHVISION_SOURCE,
        ),
        default_protocol="finetune",
        reported=_wide_reported(
            read_published_table("sfda_reported_weighted_tau_group1.csv"), "weighted_tau"
        ),
        task_aliases=_TASK_ALIASES,
        notes=[_SINGLE_SEED, *baseline_notes],
    )


def _load_sfda_group2() -> Suite:
    truth = _wide_truth(read_published_table("sfda_group2_finetune_acc.csv"))
    names = list(dict.fromkeys(truth["checkpoint"]))
    return Suite(
        name="published:sfda-group2",
        description="SFDA's group 2: 12 self-supervised ResNet-50s x 11 tasks, with the weighted tau PED "
        "reports on this hub (no score table is published)",
        tasks=_sfda_tasks(),
        checkpoints={name: SuiteCheckpoint(group="self-supervised ResNet-50") for name in names},
        ground_truth=truth,
        provenance=_provenance(
            "sfda_group2_finetune_acc.csv",
            "ped_reported_weighted_tau_ssl.csv",
            extra="No static baseline: every checkpoint is a ResNet-50 (same parameter count) and no source "
            "accuracy is packaged.",
        ),
        default_protocol="finetune",
        reported=_wide_reported(read_published_table("ped_reported_weighted_tau_ssl.csv"), "weighted_tau"),
        task_aliases=_TASK_ALIASES,
        notes=[_SINGLE_SEED, "reported values from PED's README (its tw.py holds the same ground truth)"],
    )


def _load_modelspider() -> Suite:
    raw = read_published_table("modelspider_single_source_finetune.csv")
    raw = raw[
        raw["dataset"].isin(["Aircraft", "Caltech101", "Cars", "CIFAR10", "CIFAR100", "DTD", "Pet", "SUN397"])
    ]
    truth = pd.DataFrame(
        {
            "task": raw["dataset"].map(lambda t: _TASK_ALIASES.get(t, t)),
            "checkpoint": raw["model"],
            "seed": 0,
            "accuracy": raw["finetune_score"].astype(float),
            "protocol": "finetune",
        }
    )
    wide = read_published_table("modelspider_baseline_metric_scores.csv")
    scores = wide.melt(id_vars=["Dataset", "Model"], var_name="measure", value_name="score").rename(
        columns={"Dataset": "task", "Model": "checkpoint"}
    )
    scores["task"] = scores["task"].map(lambda t: _TASK_ALIASES.get(t, t))
    names = list(dict.fromkeys(truth["checkpoint"]))
    baselines, baseline_notes = _torchvision_baselines(names)
    return Suite(
        name="published:modelspider",
        description="Model Spider's single-source zoo (10 ImageNet CNNs x 8 classification tasks, LogME's "
        "ground truth) with the scores of 9 measures it publishes and the weighted tau it reports",
        tasks={t: Task(metric="fine-tuned top-1 accuracy (%)") for t in dict.fromkeys(truth["task"])},
        checkpoints=_torchvision_checkpoints(names, "supervised ImageNet CNN"),
        ground_truth=truth,
        baselines=baselines,
        provenance=_provenance(
            "modelspider_single_source_finetune.csv",
            "modelspider_baseline_metric_scores.csv",
            "modelspider_reported_weighted_tau.csv",
            "torchvision_imagenet1k_v1.csv",
            extra=_TORCHVISION_SOURCE
            + " The regression tasks dSprites and UTKFace of the source are left out.",
        ),
        default_protocol="finetune",
        published_scores=scores[["task", "checkpoint", "measure", "score"]],
        reported=_wide_reported(
            read_published_table("modelspider_reported_weighted_tau.csv"),
            "weighted_tau",
            _MODELSPIDER_METHODS,
        ),
        checkpoint_aliases=dict(_TLLIB_MODELS),
        task_aliases=_TASK_ALIASES,
        notes=[
            _SINGLE_SEED,
            "Model Spider's own scores are not published: its learned ranker appears only as a reported "
            "value (no paired comparison possible)",
            *baseline_notes,
        ],
    )


def _load_emms_vit() -> Suite:
    truth = _wide_truth(read_published_table("emms_vit_finetune_acc.csv"))
    names = list(dict.fromkeys(truth["checkpoint"]))
    return Suite(
        name="published:emms-vit",
        description="13 ViT-family models (DeiT, DINO, MoCo-v3, PVT, PVTv2, Swin) x 11 tasks, the "
        "SFDA-protocol fine-tuning table of EMMS (ground truth only)",
        tasks=_sfda_tasks(),
        checkpoints={name: SuiteCheckpoint(group=name.split("_")[0]) for name in names},
        ground_truth=truth,
        provenance=_provenance("emms_vit_finetune_acc.csv"),
        default_protocol="finetune",
        checkpoint_aliases=_EMMS_ALIASES,
        task_aliases=_TASK_ALIASES,
        notes=[_SINGLE_SEED],
    )


def _load_parc() -> Suite:
    raw = read_published_table("parc_oracle_controlled.csv")
    names = (raw["Architecture"] + "/" + raw["Source Dataset"]).tolist()
    truth = pd.DataFrame(
        {
            "task": raw["Target Dataset"],
            "checkpoint": names,
            "seed": 0,
            "accuracy": raw["Oracle"].astype(float),
            "protocol": "finetune",
        }
    )
    ordered = list(dict.fromkeys(names))
    architectures = list(dict.fromkeys(n.split("/")[0] for n in ordered))
    params, baseline_notes = _parameter_counts(architectures)
    baselines = pd.DataFrame(
        {"num_parameters": [float(params.get(n.split("/")[0], float("nan"))) for n in ordered]}, index=ordered
    )
    return Suite(
        name="published:parc",
        description="PARC's controlled benchmark: 4 architectures x 8 source datasets fine-tuned on 7 "
        "targets (oracle test accuracy; source == target pairs absent)",
        tasks={t: Task(metric="fine-tuned test accuracy (%)") for t in dict.fromkeys(truth["task"])},
        checkpoints={n: SuiteCheckpoint(group=n.split("/")[0]) for n in ordered},
        ground_truth=truth,
        baselines=baselines,
        provenance=_provenance(
            "parc_oracle_controlled.csv",
            "torchvision_imagenet1k_v1.csv",
            extra="Baseline: parameter count of the torchvision architecture (with its ImageNet head), "
            "counted on the network built with weights=None as run at inference (GoogLeNet without "
            "auxiliary classifiers).",
        ),
        default_protocol="finetune",
        notes=[_SINGLE_SEED, *baseline_notes],
    )


#: The measures of stable-transfer's score table that compute what ckptrank's measures of the same name
#: compute (its config: GBC with spherical Gaussians on 64 PCA components, as ckptrank's default; NLEEP
#: with a GMM of 5 components per class). Its ``hscore`` is not the H-score (see the suite's notes).
_STABLE_TRANSFER_MEASURES = {"gbc": "GBC", "leep": "LEEP", "nleep": "NLEEP", "logme": "LogME"}


#: Why both stable_transfer suites leave the published ``hscore`` column out.
_ELEMENTWISE_HSCORE = (
    "the published hscore column is left out: stable_transfer's hscore.py multiplies pinv(Cov) and "
    "the between-class covariance element-wise before the trace, which is not the H-score of Bao "
    "et al. (published_data/PROVENANCE.md)"
)


def _stable_transfer_scores(
    frame: pd.DataFrame, *, task: str, checkpoint: str, metric: str, score: str
) -> pd.DataFrame:
    """A stable_transfer score table's rows of :data:`_STABLE_TRANSFER_MEASURES`, in the long form of
    :attr:`Suite.published_scores` (``task, checkpoint, measure, score``); the arguments name its columns."""
    kept = frame[frame[metric].isin(_STABLE_TRANSFER_MEASURES)]
    return pd.DataFrame(
        {
            "task": kept[task],
            "checkpoint": kept[checkpoint],
            "measure": kept[metric].map(_STABLE_TRANSFER_MEASURES),
            "score": kept[score].astype(float),
        }
    ).reset_index(drop=True)


def _load_stable_transfer() -> Suite:
    raw = read_published_table("stable_transfer_source_architectures_acc.csv")
    parts = []
    for column, protocol in (
        ("finetuned_backbone_test_acc", "finetune"),
        ("frozen_backbone_test_acc", "linear"),
    ):
        parts.append(
            pd.DataFrame(
                {
                    "task": raw["target_dataset"],
                    "checkpoint": raw["architecture"],
                    "seed": 0,
                    "accuracy": raw[column].astype(float),
                    "protocol": protocol,
                }
            )
        )
    truth = pd.concat(parts, ignore_index=True)
    keras = read_published_table("keras_applications_parameters.csv").set_index("model")
    baselines = pd.DataFrame({"num_parameters": keras["num_params"].astype(float)})
    scores = _stable_transfer_scores(
        read_published_table("stable_transfer_source_architectures_scores.csv"),
        task="target_dataset",
        checkpoint="architecture",
        metric="metric",
        score="score",
    )
    return Suite(
        name="published:stable-transfer",
        description="google-research stable_transfer: 19 Keras ImageNet architectures x 9 targets, test "
        "accuracy with a fine-tuned (protocol finetune) and a frozen backbone (protocol linear), and the "
        "GBC, LEEP, NLEEP and LogME scores it publishes",
        tasks={t: Task(metric="test accuracy (fraction)") for t in dict.fromkeys(truth["task"])},
        checkpoints={n: SuiteCheckpoint(group="Keras ImageNet") for n in dict.fromkeys(truth["checkpoint"])},
        ground_truth=truth,
        baselines=baselines,
        provenance=_provenance(
            "stable_transfer_source_architectures_acc.csv",
            "stable_transfer_source_architectures_scores.csv",
            "keras_applications_parameters.csv",
        ),
        default_protocol="finetune",
        published_scores=scores,
        notes=[
            _SINGLE_SEED,
            _ELEMENTWISE_HSCORE,
            "num_parameters: the backbone that stable-transfer fine-tunes (the Keras architecture without "
            "its ImageNet classifier, include_top=False; published_data/PROVENANCE.md)",
        ],
    )


#: The packaged copy of stable_transfer's segmentation source-selection table (see PROVENANCE.md).
_SEGMENTATION_SOURCE = "stable_transfer_source_datasets_table.csv"


def _load_stable_transfer_segmentation() -> Suite:
    raw = read_published_table(_SEGMENTATION_SOURCE)
    first = raw[raw["Transferability Metric"] == raw["Transferability Metric"].iloc[0]]
    truth = pd.DataFrame(
        {
            "task": first["Target Dataset"],
            "checkpoint": first["Source Dataset"],
            "seed": 0,
            "accuracy": first["Test Mean IoU"].astype(float),
            "protocol": "finetune",
        }
    ).reset_index(drop=True)
    scores = _stable_transfer_scores(
        raw,
        task="Target Dataset",
        checkpoint="Source Dataset",
        metric="Transferability Metric",
        score="Transferability Metric Score",
    )
    return Suite(
        name="published:stable-transfer-segmentation",
        description="google-research stable_transfer, source selection for semantic segmentation: 17 HRNet "
        "checkpoints, each trained on one dataset, fine-tuned on each of the 16 others (test mean IoU), "
        "with the GBC, LEEP, NLEEP and LogME scores it publishes",
        tasks={t: Task(metric="fine-tuned test mean IoU (fraction)") for t in dict.fromkeys(truth["task"])},
        checkpoints={n: SuiteCheckpoint(group="HRNet") for n in dict.fromkeys(truth["checkpoint"])},
        ground_truth=truth,
        provenance=_provenance(
            _SEGMENTATION_SOURCE,
            extra="No static baseline: every checkpoint is the same HRNet architecture (the same parameter "
            "count) trained on a different source dataset.",
        ),
        default_protocol="finetune",
        published_scores=scores,
        notes=[
            _SINGLE_SEED,
            "semantic segmentation: the scores come from stable_transfer's pixel-level pipeline (150 target "
            "images, 1,000 class-balanced pixels each), not from ckptrank's extraction",
            "its GBC uses diagonal Gaussians (the classification table's, spherical ones) and its NLEEP a "
            "PCA keeping 80% of the variance (config_transferability_source_selection_segmentation.py): the "
            "measures of the GBC and NLEEP papers, in other configurations than ckptrank's defaults",
            _ELEMENTWISE_HSCORE,
        ],
    )


#: TransferGraph's metric names -> ckptrank measures that compute the same quantity (its REG_H_SCORE is
#: the Ledoit-Wolf regularised H-score of Ibrahim et al., ckptrank's ``reg_hscore``).
_TRANSFERGRAPH_MEASURES = {
    "TransferabilityMethod.LOG_ME": "logme",
    "TransferabilityMethod.REG_H_SCORE": "reg_hscore",
}
#: A task of the TransferGraph suite needs at least this many checkpoints with a result and a score.
_TRANSFERGRAPH_MIN_CHECKPOINTS = 5


def _load_transfergraph_image() -> Suite:
    records = read_published_table("transfergraph_image_records.csv")
    raw = read_published_table("transfergraph_image_scores.csv")
    # two source lines are truncated (no model or no metric): left out
    raw = raw.dropna(subset=["model", "target_dataset", "metric", "score"])
    raw = raw[raw["metric"].isin(_TRANSFERGRAPH_MEASURES)]
    # DTD's scores were computed twice for 60 checkpoints (median relative difference 0.2%, at most 6.1%):
    # their mean
    scores = (
        raw.assign(measure=raw["metric"].map(_TRANSFERGRAPH_MEASURES))
        .groupby(["target_dataset", "model", "measure"], sort=False)["score"]
        .mean()
        .reset_index()
        .rename(columns={"target_dataset": "task", "model": "checkpoint"})
    )
    truth = (
        records.dropna(subset=["eval_accuracy"])
        .groupby(["finetuned_dataset", "model"], sort=False)["eval_accuracy"]
        .mean()
        .reset_index()
        .rename(columns={"finetuned_dataset": "task", "model": "checkpoint", "eval_accuracy": "accuracy"})
    )
    scored = set(zip(scores["task"], scores["checkpoint"], strict=True))
    truth = truth[[pair in scored for pair in zip(truth["task"], truth["checkpoint"], strict=True)]]
    sizes = truth.groupby("task")["checkpoint"].transform("size")
    truth = truth[sizes >= _TRANSFERGRAPH_MIN_CHECKPOINTS].assign(seed=0, protocol="finetune")
    truth = truth.reset_index(drop=True)
    kept = set(zip(truth["task"], truth["checkpoint"], strict=True))
    scores = scores[[pair in kept for pair in zip(scores["task"], scores["checkpoint"], strict=True)]]
    models = read_published_table("transfergraph_image_models.csv").set_index("model")
    names = list(dict.fromkeys(truth["checkpoint"]))
    baselines = pd.DataFrame(
        {"num_parameters": models["number_of_parameters"].reindex(names).astype(float)}, index=names
    )
    return Suite(
        name="published:transfergraph-image",
        description="TransferGraph's Hugging Face image zoo: 137-145 hub checkpoints (ViT, DeiT, Swin, "
        "ConvNeXt, BEiT, VAN and community fine-tunes) x 8 image datasets, accuracy after fine-tuning, with "
        "the LogME and regularised H-score it publishes and the parameter counts it records",
        tasks={
            t: Task(metric="fine-tuned accuracy on the validation slice (fraction)")
            for t in dict.fromkeys(truth["task"])
        },
        checkpoints={n: SuiteCheckpoint(group=n.split("/")[0]) for n in names},
        ground_truth=truth[["task", "checkpoint", "seed", "accuracy", "protocol"]],
        baselines=baselines,
        provenance=_provenance(
            "transfergraph_image_records.csv",
            "transfergraph_image_scores.csv",
            "transfergraph_image_models.csv",
            extra="Baseline: number_of_parameters as TransferGraph records it (the whole Hugging Face model, "
            "its classifier included).",
        ),
        default_protocol="finetune",
        published_scores=scores[["task", "checkpoint", "measure", "score"]],
        notes=[
            _SINGLE_SEED,
            "truth: eval_accuracy of one fine-tuning run per pair (30 epochs, learning rate 0.01, the "
            "70%/20% train/validation slices of TransferGraph's records.csv); some runs diverged (accuracy "
            "near chance) and stay in the truth, as a user would meet them",
            "scores: TransferGraph's LogME and regularised H-score; DTD's were computed twice for 60 "
            "checkpoints and are averaged; two truncated source lines are left out; tasks whose records have "
            "no published score (diabetic_retinopathy_detection, eurosat, food101, kitti, "
            "smallnorb_label_azimuth) are not part of the suite",
            "some checkpoints were fine-tuned on the target dataset before (for example a CIFAR-100 ViT on "
            "cifar100): they stay, as in a user's hub zoo",
        ],
    )


#: Published suite name -> loader.
PUBLISHED_SUITES = {
    "published:tllib": _load_tllib,
    "published:sfda-group1": _load_sfda_group1,
    "published:sfda-group2": _load_sfda_group2,
    "published:modelspider": _load_modelspider,
    "published:emms-vit": _load_emms_vit,
    "published:parc": _load_parc,
    "published:stable-transfer": _load_stable_transfer,
    "published:stable-transfer-segmentation": _load_stable_transfer_segmentation,
    "published:transfergraph-image": _load_transfergraph_image,
}

for _name, _loader in PUBLISHED_SUITES.items():
    register_suite(_name, _loader, replace=True)
