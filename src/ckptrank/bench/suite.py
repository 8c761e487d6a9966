"""Benchmark suites: target tasks, checkpoints, ground truth, static baselines and provenance.

A :class:`Suite` is everything needed to judge a ranking measure: which checkpoints are ranked on
which target tasks, the fine-tuned accuracy of every (task, checkpoint) pair under one or more
seeds (the ground truth), the target-blind baselines a measure must beat (parameter count and
source accuracy of each checkpoint), and where every number came from.

Suites are registered by name with a *loader* (a function returning the suite), so that naming a
suite costs nothing until it is used::

    register_suite("my-suite", lambda: Suite(...))
    suite = get_suite("my-suite")

The built-in suites register themselves when the registry is first used: the published tables
(``published:tllib``, ``published:sfda-group1``, ..., see :mod:`ckptrank.bench.published`) and the
project's own suite ``neucrab-mini`` (module ``ckptrank.bench.neucrab_mini``, when present). A
suite can also be read from a JSON file (:meth:`Suite.from_file`), and :func:`get_suite` accepts
the path of one.

Ground truth
    A long table with columns ``task``, ``checkpoint``, ``seed``, ``accuracy`` and optionally
    ``protocol`` (e.g. ``"finetune"`` and ``"linear"``). Accuracies are on the scale the source
    reports (percent for the published tables); only their order matters, except for top-1
    regret, which is in the same units.
"""

from __future__ import annotations

import difflib
import importlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "BASELINE_COLUMNS",
    "BASELINE_INFO_COLUMNS",
    "GROUND_TRUTH_COLUMNS",
    "Suite",
    "SuiteCheckpoint",
    "Task",
    "check_code_allowed",
    "get_suite",
    "infer_tracks",
    "list_suites",
    "normalize_name",
    "register_suite",
    "unregister_suite",
]

#: Required columns of a ground-truth table (``protocol`` is optional).
GROUND_TRUTH_COLUMNS = ("task", "checkpoint", "seed", "accuracy")

#: Target-blind static baselines, each used as a score (higher = predicted better).
BASELINE_COLUMNS = ("num_parameters", "source_accuracy")

#: Descriptive columns a baselines table may carry beside the scores, never used as scores: the
#: number of source classes of the head that ``source_accuracy`` was measured on, and a name of
#: its source label set (e.g. ``"ImageNet-1k"``, ``"fashion-mnist-0-4"``); see
#: :meth:`Suite.comparable_source_accuracy`.
BASELINE_INFO_COLUMNS = ("source_classes", "source_label_set")

#: Modules that register built-in suites when imported. A missing optional module is skipped.
_BUILTIN_MODULES = (
    "ckptrank.bench.published",
    "ckptrank.bench.neucrab_mini",
    "ckptrank.bench.neucrab_mini_v2",
)

logger = logging.getLogger(__name__)

_LOADERS: dict[str, Callable[[], Suite]] = {}
_LOADED: dict[str, Suite] = {}
_BROKEN: dict[str, str] = {}
_BUILTINS_IMPORTED = False


def normalize_name(name: object) -> str:
    """Lower-case alphanumeric form of a name, for forgiving matches (``"ResNet-50"`` -> ``"resnet50"``)."""
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


@dataclass(frozen=True)
class Task:
    """One target task of a suite.

    Attributes
    ----------
    data : str or None
        Data spec for :func:`ckptrank.data.load_dataset` (e.g. ``"builtin:fashion-mnist"``), or a
        template containing ``{checkpoint}`` naming a ``.npz`` of precomputed features per
        checkpoint (``"feats/{checkpoint}/pets.npz"``). None for published suites, whose data are
        not available: such a suite can only be evaluated from score tables.
    per_class : int or None
        Score on at most this many training samples per class.
    seed : int
        Seed of that subsample.
    metric : str
        What the ground-truth number measures (``"accuracy"``, ``"mean per-class accuracy"``...).
    description : str
    track : str
        The group of tasks whose checkpoints are ranked together (``"image"``, ``"text"``): the
        evaluation reports means per track beside the overall mean. Empty: inferred from the
        ground truth (:meth:`Suite.task_tracks`).
    """

    data: str | None = None
    per_class: int | None = None
    seed: int = 0
    metric: str = "accuracy"
    description: str = ""
    track: str = ""

    @property
    def per_checkpoint(self) -> bool:
        """Whether :attr:`data` names one precomputed-feature file per checkpoint."""
        return self.data is not None and "{checkpoint}" in self.data


#: Checkpoint groups (normalised with :func:`normalize_name`) that mark random-initialised controls.
CONTROL_GROUPS = frozenset(
    {"randominit", "random", "randominitialised", "randominitialized", "control", "randomcontrol"}
)


@dataclass(frozen=True)
class SuiteCheckpoint:
    """One checkpoint of a suite: its spec (for :func:`ckptrank.adapters.load_checkpoint`) and group.

    Attributes
    ----------
    spec : str or None
    group : str
    control : bool or None
        Whether the checkpoint is a random-initialised control (kept out of the headline
        statistics and checked separately). None: inferred (:attr:`is_control`).
    """

    spec: str | None = None
    group: str = ""
    control: bool | None = None

    @property
    def is_control(self) -> bool:
        """A random-initialised control: ``control`` if set, else a group such as ``random-init``
        (:data:`CONTROL_GROUPS`) or a spec with the option ``init=random``."""
        if self.control is not None:
            return bool(self.control)
        if normalize_name(self.group) in CONTROL_GROUPS:
            return True
        query = (self.spec or "").partition("?")[2]
        return "init=random" in query.split("&")


def _as_task(name: str, value: Any) -> Task:
    if isinstance(value, Task):
        return value
    if value is None or isinstance(value, str):
        return Task(data=value)
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"data", "per_class", "seed", "metric", "description", "track"})
        if unknown:
            raise ValueError(
                f"task {name!r} has unknown field(s) {', '.join(unknown)}; "
                "use data, per_class, seed, metric, description, track"
            )
        return Task(**dict(value))
    raise ValueError(
        f"task {name!r} must be a Task, a data spec string or a mapping, not {type(value).__name__}"
    )


def _as_checkpoint(name: str, value: Any) -> SuiteCheckpoint:
    if isinstance(value, SuiteCheckpoint):
        return value
    if value is None or isinstance(value, str):
        return SuiteCheckpoint(spec=value)
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"spec", "group", "control"})
        if unknown:
            raise ValueError(
                f"checkpoint {name!r} has unknown field(s) {', '.join(unknown)}; use spec, group, control"
            )
        return SuiteCheckpoint(**dict(value))
    raise ValueError(
        f"checkpoint {name!r} must be a SuiteCheckpoint, a spec string or a mapping, "
        f"not {type(value).__name__}"
    )


def _listing(names: Iterable[object], limit: int = 8) -> str:
    names = [str(n) for n in names]
    text = ", ".join(names[:limit])
    return text + (f" and {len(names) - limit} more" if len(names) > limit else "")


@dataclass
class Suite:
    """A benchmark suite.

    Parameters
    ----------
    name : str
    description : str
    tasks : mapping
        Task name -> :class:`Task` (or a data spec string, or a mapping of Task fields). When
        empty, the tasks of the ground truth are used (without data).
    checkpoints : mapping or sequence
        Checkpoint name -> :class:`SuiteCheckpoint` (or a spec string, or a mapping with ``spec``
        and ``group``); a sequence of names means checkpoints without specs. When empty, the
        checkpoints of the ground truth are used.
    ground_truth : pandas.DataFrame
        Long table with columns ``task``, ``checkpoint``, ``seed``, ``accuracy`` and optionally
        ``protocol``; one row per fine-tuning result.
    baselines : pandas.DataFrame, optional
        Indexed by checkpoint name, with columns among ``num_parameters`` and ``source_accuracy``
        (NaN where unknown), used as target-blind scores, and optionally the descriptive
        ``source_classes`` and ``source_label_set`` (:data:`BASELINE_INFO_COLUMNS`), which say on
        which source label set each source accuracy was measured.
    provenance : str
        Where the ground truth and the baselines come from, and how to regenerate them.
    default_protocol : str, optional
        Protocol evaluated when the ground truth holds several and none is chosen.
    published_scores : pandas.DataFrame, optional
        Scores published with the suite: columns ``task``, ``checkpoint``, ``measure``, ``score``.
    reported : pandas.DataFrame, optional
        Ranking statistics the source reports: columns ``task``, ``measure``, ``statistic``
        (``weighted_tau``, ``pearson``, ...), ``value``.
    checkpoint_aliases, task_aliases : mapping, optional
        Other names -> canonical name, accepted in score tables.
    notes : list of str
        Caveats about the data shown with every evaluation.

    Raises
    ------
    ValueError
        Missing ground-truth columns, non-finite accuracies, duplicate (task, checkpoint,
        protocol, seed) rows, or ground truth for tasks or checkpoints the suite does not list.
    """

    name: str
    description: str = ""
    tasks: Mapping[str, Any] = field(default_factory=dict)
    checkpoints: Mapping[str, Any] | Iterable[str] = field(default_factory=dict)
    ground_truth: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=list(GROUND_TRUTH_COLUMNS))
    )
    baselines: pd.DataFrame | None = None
    provenance: str = ""
    default_protocol: str | None = None
    published_scores: pd.DataFrame | None = None
    reported: pd.DataFrame | None = None
    checkpoint_aliases: Mapping[str, str] = field(default_factory=dict)
    task_aliases: Mapping[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: The JSON file the suite was read from (its ``py:`` checkpoints then need ``allow_code``).
    source_file: str | None = None

    def __post_init__(self) -> None:
        self.ground_truth = self._check_ground_truth(self.ground_truth)
        gt = self.ground_truth
        if not self.tasks:
            self.tasks = {str(t): Task() for t in dict.fromkeys(gt["task"])}
        else:
            self.tasks = {str(k): _as_task(str(k), v) for k, v in dict(self.tasks).items()}
        if isinstance(self.checkpoints, Mapping):
            checkpoints = {str(k): _as_checkpoint(str(k), v) for k, v in self.checkpoints.items()}
        else:
            checkpoints = {str(k): SuiteCheckpoint() for k in self.checkpoints}
        if not checkpoints:
            checkpoints = {str(c): SuiteCheckpoint() for c in dict.fromkeys(gt["checkpoint"])}
        self.checkpoints = checkpoints
        for column, known, what in (
            ("task", self.tasks, "tasks"),
            ("checkpoint", self.checkpoints, "checkpoints"),
        ):
            extra = [v for v in dict.fromkeys(gt[column]) if v not in known]
            if extra:
                raise ValueError(
                    f"suite {self.name!r}: the ground truth names {len(extra)} {what} the suite does not "
                    f"list ({_listing(extra)}); add them to the suite's {what} or drop those rows"
                )
        if self.baselines is not None:
            self.baselines = self._check_baselines(self.baselines)
        if self.published_scores is not None:
            missing = {"task", "checkpoint", "measure", "score"} - set(self.published_scores.columns)
            if missing:
                raise ValueError(
                    f"suite {self.name!r}: published_scores lacks column(s) {', '.join(sorted(missing))}"
                )
        if self.reported is not None:
            missing = {"task", "measure", "statistic", "value"} - set(self.reported.columns)
            if missing:
                raise ValueError(
                    f"suite {self.name!r}: reported lacks column(s) {', '.join(sorted(missing))}"
                )
        protocols = self.protocols
        if self.default_protocol is not None and self.default_protocol not in protocols:
            raise ValueError(
                f"suite {self.name!r}: default_protocol {self.default_protocol!r} is not in the ground truth "
                f"(protocols: {_listing(protocols)})"
            )
        self.checkpoint_aliases = dict(self.checkpoint_aliases)
        self.task_aliases = dict(self.task_aliases)
        self.notes = list(self.notes)

    # -- validation -------------------------------------------------------------------------------
    def _check_ground_truth(self, frame: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(frame, pd.DataFrame):
            raise ValueError(f"suite {self.name!r}: ground_truth must be a pandas DataFrame")
        missing = [c for c in GROUND_TRUTH_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(
                f"suite {self.name!r}: the ground truth lacks column(s) {', '.join(missing)}; "
                f"it needs {', '.join(GROUND_TRUTH_COLUMNS)} (and optionally protocol)"
            )
        gt = frame.copy()
        gt["task"] = gt["task"].astype(str)
        gt["checkpoint"] = gt["checkpoint"].astype(str)
        if "protocol" not in gt.columns:
            gt["protocol"] = "default"
        gt["protocol"] = gt["protocol"].fillna("default").astype(str)
        seeds = pd.to_numeric(gt["seed"], errors="coerce")
        if seeds.isna().any() or not np.all(np.mod(seeds, 1) == 0):
            raise ValueError(f"suite {self.name!r}: ground-truth seeds must be integers")
        gt["seed"] = seeds.astype(np.int64)
        acc = pd.to_numeric(gt["accuracy"], errors="coerce").astype(float)
        bad = ~np.isfinite(acc.to_numpy())
        if bad.any():
            rows = gt.loc[bad, ["task", "checkpoint"]].astype(str).agg("/".join, axis=1)
            raise ValueError(
                f"suite {self.name!r}: {int(bad.sum())} ground-truth accuracies are missing or not finite "
                f"({_listing(rows)}); drop those rows"
            )
        gt["accuracy"] = acc
        keys = ["task", "checkpoint", "protocol", "seed"]
        dup = gt.duplicated(keys, keep=False)
        if dup.any():
            rows = gt.loc[dup, keys].astype(str).agg("/".join, axis=1).unique()
            raise ValueError(
                f"suite {self.name!r}: duplicate ground-truth rows for {_listing(rows)}; "
                "keep one accuracy per (task, checkpoint, protocol, seed)"
            )
        columns = [*GROUND_TRUTH_COLUMNS, "protocol"]
        return gt[columns + [c for c in gt.columns if c not in columns]].reset_index(drop=True)

    def _check_baselines(self, frame: pd.DataFrame) -> pd.DataFrame:
        base = frame.copy()
        if "checkpoint" in base.columns:
            base = base.set_index("checkpoint")
        base.index = base.index.astype(str)
        known = (*BASELINE_COLUMNS, *BASELINE_INFO_COLUMNS)
        unknown = [c for c in base.columns if c not in known]
        if unknown:
            raise ValueError(
                f"suite {self.name!r}: unknown baseline column(s) {', '.join(map(str, unknown))}; "
                f"use {', '.join(known)}"
            )
        extra = [c for c in base.index if c not in self.checkpoints]
        if extra:
            raise ValueError(f"suite {self.name!r}: baselines name unknown checkpoints ({_listing(extra)})")
        for column in base.columns:
            if column == "source_label_set":
                labels = base[column].astype(object)
                base[column] = labels.where(labels.notna() & (labels.astype(str).str.strip() != ""), None)
            else:
                base[column] = pd.to_numeric(base[column], errors="coerce").astype(float)
        return base

    # -- views ------------------------------------------------------------------------------------
    @property
    def protocols(self) -> list[str]:
        """Fine-tuning protocols present in the ground truth."""
        return list(dict.fromkeys(self.ground_truth["protocol"]))

    def resolve_protocol(self, protocol: str | None = None) -> str | None:
        """The protocol to evaluate: ``protocol``, else the default, else the only one present.

        Raises
        ------
        ValueError
            Unknown protocol, or several protocols and no default.
        """
        protocols = self.protocols
        if not protocols:
            return protocol
        if protocol is not None:
            if protocol not in protocols:
                raise ValueError(
                    f"suite {self.name!r} has no ground truth for protocol {protocol!r}; protocols: "
                    f"{', '.join(protocols)}"
                )
            return protocol
        if self.default_protocol is not None:
            return self.default_protocol
        if len(protocols) > 1:
            raise ValueError(
                f"suite {self.name!r} has ground truth for several protocols ({', '.join(protocols)}); "
                "choose one"
            )
        return protocols[0]

    def truth(self, protocol: str | None = None) -> pd.DataFrame:
        """Ground-truth rows of one protocol (see :meth:`resolve_protocol`)."""
        chosen = self.resolve_protocol(protocol)
        gt = self.ground_truth
        return gt[gt["protocol"] == chosen].reset_index(drop=True) if chosen is not None else gt

    def truth_by_seed(self, task: str, protocol: str | None = None) -> pd.DataFrame:
        """Accuracies of one task as a (seeds x checkpoints) table; NaN where a seed is missing."""
        gt = self.truth(protocol)
        rows = gt[gt["task"] == task]
        table = rows.pivot_table(index="seed", columns="checkpoint", values="accuracy", aggfunc="first")
        order = [c for c in self.checkpoints if c in table.columns]
        return table[order]

    def mean_truth(self, protocol: str | None = None) -> pd.DataFrame:
        """Mean accuracy over the seeds as a (tasks x checkpoints) table; NaN where missing."""
        gt = self.truth(protocol)
        table = gt.groupby(["task", "checkpoint"], sort=False)["accuracy"].mean().unstack("checkpoint")
        tasks = [t for t in self.tasks if t in table.index]
        checkpoints = [c for c in self.checkpoints if c in table.columns]
        return table.loc[tasks, checkpoints]

    @property
    def can_score(self) -> bool:
        """Whether the suite can be scored here: every task has data and every checkpoint a spec."""
        if not self.tasks:
            return False
        for task in self.tasks.values():
            if task.data is None:
                return False
        if all(task.per_checkpoint for task in self.tasks.values()):
            return True
        return all(c.spec is not None for c in self.checkpoints.values())

    def controls(self) -> list[str]:
        """Names of the random-initialised control checkpoints (:attr:`SuiteCheckpoint.is_control`)."""
        return [name for name, ckpt in self.checkpoints.items() if ckpt.is_control]

    def task_tracks(self) -> dict[str, str]:
        """Task -> track: the task's ``track`` where given, else inferred with :func:`infer_tracks`."""
        inferred = infer_tracks(self.ground_truth, list(self.tasks))
        return {name: task.track or inferred.get(name, "") for name, task in self.tasks.items()}

    def groups(self) -> dict[str, list[str]]:
        """Checkpoint group -> checkpoint names."""
        out: dict[str, list[str]] = {}
        for name, ckpt in self.checkpoints.items():
            out.setdefault(ckpt.group or "", []).append(name)
        return out

    def resolve_checkpoint(self, name: str) -> str | None:
        """Canonical checkpoint name for ``name`` (exact, alias, or same normalised form), else None."""
        return self._resolve(name, self.checkpoints, self.checkpoint_aliases)

    def resolve_task(self, name: str) -> str | None:
        """Canonical task name for ``name`` (exact, alias, or same normalised form), else None."""
        return self._resolve(name, self.tasks, self.task_aliases)

    @staticmethod
    def _resolve(name: str, known: Mapping[str, Any], aliases: Mapping[str, str]) -> str | None:
        name = str(name)
        if name in known:
            return name
        if name in aliases:
            return aliases[name]
        key = normalize_name(name)
        for candidate in known:
            if normalize_name(candidate) == key:
                return candidate
        for alias, target in aliases.items():
            if normalize_name(alias) == key:
                return target
        return None

    def comparable_source_accuracy(
        self,
        checkpoints: Iterable[str] | None = None,
        *,
        label_set: str | None = None,
        baselines: pd.DataFrame | None = None,
    ) -> pd.Series | None:
        """``source_accuracy`` of the checkpoints that share one source label set; NaN for the others.

        A source accuracy says how well a checkpoint's head solves its own source task, so two
        of them rank checkpoints only when the source task is the same: 96 % on a 4-way rotation
        task and 75 % top-1 on 1000-way ImageNet measure different things, and ranking by them
        would reward easy source tasks. The set of a checkpoint is the pair
        (``source_label_set``, ``source_classes``) of the baselines table; a checkpoint without a
        ``source_label_set`` is comparable with none. A table with neither column states that
        every source accuracy of the suite is on one label set (as the published suites, all
        ImageNet-1k top-1); with only ``source_classes``, checkpoints with the same number of
        source classes are taken as comparable.

        Parameters
        ----------
        checkpoints : iterable of str, optional
            The checkpoints ranked together (default: every checkpoint of the suite).
        label_set : str, optional
            Keep this ``source_label_set``. Default: the set shared by the most of
            ``checkpoints`` with a finite source accuracy; between sets shared by as many, the
            one whose first checkpoint comes first in suite order. This choice keeps the
            baseline defined on as many checkpoints as one comparison allows.
        baselines : pandas.DataFrame, optional
            The table to read ``source_accuracy`` from (default :attr:`baselines`), e.g. the
            suite's baselines combined with those collected while scoring; the
            :data:`BASELINE_INFO_COLUMNS` missing from it are read from :attr:`baselines`.

        Returns
        -------
        pandas.Series or None
            Indexed by ``checkpoints``: the source accuracy on the chosen set, NaN elsewhere,
            with ``attrs["source_label_set"]`` and ``attrs["source_classes"]`` naming the set
            (None when the table does not say). None when fewer than 2 of ``checkpoints`` share
            a set (no order to compare) or no table has ``source_accuracy``.

        Raises
        ------
        ValueError
            ``label_set`` is not the set of any of ``checkpoints``.
        """
        table = self._baseline_table(baselines)
        names = list(self.checkpoints) if checkpoints is None else [str(c) for c in checkpoints]
        if table is None or "source_accuracy" not in table.columns:
            return None
        rows = table.reindex(names)
        accuracy = pd.to_numeric(rows["source_accuracy"], errors="coerce").astype(float)
        has_sets = "source_label_set" in rows.columns
        has_classes = "source_classes" in rows.columns
        keys: dict[str, tuple[Any, ...]] = {}
        for name in names:
            if not np.isfinite(accuracy[name]):
                continue
            value = rows.at[name, "source_label_set"] if has_sets else "all"
            if not has_sets and not has_classes:
                value = None  # one label set for the whole suite
            elif value is None or (isinstance(value, float) and np.isnan(value)):
                continue
            classes = float(rows.at[name, "source_classes"]) if has_classes else np.nan
            keys[name] = (value, None if np.isnan(classes) else int(classes))
        groups: dict[tuple[Any, ...], list[str]] = {}
        for name, key in keys.items():
            groups.setdefault(key, []).append(name)
        if label_set is not None:
            chosen = [key for key in groups if key[0] == label_set]
            if not chosen:
                present = sorted({str(key[0]) for key in groups})
                raise ValueError(
                    f"suite {self.name!r}: no checkpoint among those given has source label set "
                    f"{label_set!r}; sets: {', '.join(present) or 'none'}"
                )
            key = max(chosen, key=lambda k: len(groups[k]))
        elif groups:
            key = max(groups, key=lambda k: len(groups[k]))  # max keeps the first of equal sizes
        else:
            return None
        if len(groups[key]) < 2:
            return None
        out = accuracy.where(accuracy.index.isin(groups[key]))
        out.name = "source_accuracy"
        out.attrs["source_label_set"] = key[0] if key[0] != "all" else None
        out.attrs["source_classes"] = key[1]
        return out

    def like_with_like_baselines(self, baselines: pd.DataFrame | None = None) -> pd.DataFrame | None:
        """The baselines table with ``source_accuracy`` kept only where it compares like with like.

        Within each track (:meth:`task_tracks`; the whole suite when it has one), the checkpoints
        with ground truth there keep their source accuracy when their source label set is the
        one :meth:`comparable_source_accuracy` chooses for them, and get NaN otherwise (a
        checkpoint in several tracks must be chosen in every one). Other columns are unchanged.
        ``attrs["notes"]`` says, per track, which set was kept and how many checkpoints it has.

        Parameters
        ----------
        baselines : pandas.DataFrame, optional
            Default :attr:`baselines`; pass the table that will be evaluated (e.g. combined with
            the baselines collected while scoring) so that no value is filled in again afterwards.

        Returns
        -------
        pandas.DataFrame or None
            None when there is no table.
        """
        table = self._baseline_table(baselines)
        if table is None:
            return None
        out = table.copy()
        out.attrs = {"notes": []}
        if "source_accuracy" not in out.columns:
            return out
        tracks = self.task_tracks()
        gt = self.ground_truth
        keep = pd.Series(True, index=out.index)
        notes = []
        order = list(dict.fromkeys(tracks.values())) or [""]
        for track in order:
            tasks = [t for t, tr in tracks.items() if tr == track]
            members = set(gt.loc[gt["task"].isin(tasks), "checkpoint"])
            names = [c for c in self.checkpoints if c in members and c in out.index]
            if not names:
                continue
            chosen = self.comparable_source_accuracy(names, baselines=out)
            kept = [] if chosen is None else [c for c in names if np.isfinite(chosen[c])]
            keep.loc[[c for c in names if c not in kept]] = False
            where = f"{track} track: " if track else ""
            stated = int(np.isfinite(pd.to_numeric(out.loc[names, "source_accuracy"], errors="coerce")).sum())
            if chosen is None:
                if stated == 1:
                    notes.append(f"source_accuracy: {where}only 1 checkpoint states one; left out")
                elif stated:
                    notes.append(
                        f"source_accuracy: {where}no two of the {stated} checkpoints with a source accuracy "
                        "share a source label set; left out"
                    )
                continue
            label = chosen.attrs["source_label_set"]
            classes = chosen.attrs["source_classes"]
            what = " ".join(
                part
                for part in (
                    "one source label set" if label is None else f"source label set {label!r}",
                    "" if classes is None else f"({classes} classes)",
                )
                if part
            )
            dropped = stated - len(kept)
            notes.append(
                f"source_accuracy: {where}compared like with like over the {len(kept)} checkpoints on {what}"
                + (f"; {dropped} with other source label sets left out" if dropped else "")
            )
        accuracy = pd.to_numeric(out["source_accuracy"], errors="coerce").astype(float)
        out["source_accuracy"] = accuracy.where(keep.reindex(out.index, fill_value=True))
        out.attrs["notes"] = notes
        return out

    def _baseline_table(self, baselines: pd.DataFrame | None) -> pd.DataFrame | None:
        """``baselines`` (indexed by checkpoint) with the info columns it lacks taken from the suite's."""
        if baselines is None:
            return self.baselines
        table = baselines.copy()
        if "checkpoint" in table.columns:
            table = table.set_index("checkpoint")
        table.index = table.index.astype(str)
        if self.baselines is not None:
            for column in BASELINE_INFO_COLUMNS:
                if column in self.baselines.columns and column not in table.columns:
                    table[column] = self.baselines[column].reindex(table.index)
        return table

    def summary(self) -> dict[str, Any]:
        """JSON-ready description (no tables)."""
        gt = self.ground_truth
        seeds = gt.groupby(["task", "checkpoint", "protocol"])["seed"].nunique()
        return {
            "name": self.name,
            "description": self.description,
            "tasks": {
                name: {
                    "data": t.data,
                    "per_class": t.per_class,
                    "seed": t.seed,
                    "metric": t.metric,
                    "description": t.description,
                    "track": t.track,
                }
                for name, t in self.tasks.items()
            },
            "checkpoints": {
                name: {"spec": c.spec, "group": c.group, "control": c.is_control}
                for name, c in self.checkpoints.items()
            },
            "protocols": self.protocols,
            "default_protocol": self.default_protocol,
            "seeds_per_pair": int(seeds.min()) if len(seeds) else 0,
            "has_published_scores": self.published_scores is not None,
            "has_reported": self.reported is not None,
            "baselines": []
            if self.baselines is None
            else [c for c in self.baselines.columns if c in BASELINE_COLUMNS],
            "can_score": self.can_score,
            "provenance": self.provenance,
            "notes": list(self.notes),
        }

    # -- files ------------------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path) -> Suite:
        """Read a suite from a JSON file.

        The file holds ``name``, ``description``, ``tasks`` (name -> data spec or
        ``{"data", "per_class", "seed", "metric", "track"}``), ``checkpoints`` (name -> spec or
        ``{"spec", "group", "control"}``), ``ground_truth`` (path of a CSV with columns task, checkpoint,
        seed, accuracy[, protocol]), optionally ``baselines`` (CSV with checkpoint,
        num_parameters, source_accuracy and optionally source_classes, source_label_set),
        ``provenance``, ``default_protocol`` and ``notes``.
        Relative paths (the CSVs, and data specs that name existing files) resolve against the
        JSON file's folder.

        Raises
        ------
        FileNotFoundError
            The file or one of its CSVs does not exist.
        ValueError
            Invalid JSON or content.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"suite file {str(path)!r} not found")
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(
                f"suite file {path.name} is not valid JSON: {err.msg} (line {err.lineno})"
            ) from None
        if not isinstance(spec, dict):
            raise ValueError(f"suite file {path.name} must hold a JSON object")
        allowed = {
            "name",
            "description",
            "tasks",
            "checkpoints",
            "ground_truth",
            "baselines",
            "provenance",
            "default_protocol",
            "notes",
        }
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise ValueError(
                f"suite file {path.name}: unknown key(s) {', '.join(unknown)}; "
                f"use {', '.join(sorted(allowed))}"
            )
        if "ground_truth" not in spec:
            raise ValueError(f"suite file {path.name} needs a 'ground_truth' CSV path")
        root = path.parent

        def csv(key: str) -> pd.DataFrame:
            file = Path(spec[key])
            file = file if file.is_absolute() else root / file
            if not file.is_file():
                raise FileNotFoundError(f"suite file {path.name}: {key} file {str(file)!r} not found")
            return pd.read_csv(file)

        def data_spec(value: Any) -> Any:
            if isinstance(value, str) and not value.startswith("builtin:") and not Path(value).is_absolute():
                candidate = root / value
                if candidate.exists() or "{checkpoint}" in value:
                    return str(candidate)
            return value

        tasks = {}
        for name, value in dict(spec.get("tasks", {})).items():
            if isinstance(value, Mapping):
                value = {**value, "data": data_spec(value.get("data"))}
            else:
                value = data_spec(value)
            tasks[name] = value
        return cls(
            name=str(spec.get("name", path.stem)),
            description=str(spec.get("description", "")),
            tasks=tasks,
            checkpoints=spec.get("checkpoints", {}),
            ground_truth=csv("ground_truth"),
            baselines=csv("baselines") if spec.get("baselines") else None,
            provenance=str(spec.get("provenance", f"read from {path}")),
            default_protocol=spec.get("default_protocol"),
            notes=list(spec.get("notes", [])),
            source_file=str(path),
        )


def infer_tracks(ground_truth: pd.DataFrame, tasks: Iterable[str] | None = None) -> dict[str, str]:
    """Tracks as the groups of tasks connected by shared checkpoints in the ground truth.

    Two tasks are in the same track when a chain of checkpoints with ground truth on both links
    them (a suite whose image checkpoints are fine-tuned only on image tasks has an image and a
    text track). One group: every task gets the track ``""`` (no breakdown); several: ``"track
    1"``, ``"track 2"``, ... in task order. Name tracks explicitly with :attr:`Task.track`.

    Parameters
    ----------
    ground_truth : pandas.DataFrame
        Columns ``task`` and ``checkpoint``.
    tasks : iterable of str, optional
        Task order (default: order of appearance); tasks without ground truth get ``""``.

    Returns
    -------
    dict
        Task -> track.
    """
    pairs = ground_truth[["task", "checkpoint"]].astype(str).drop_duplicates()
    order = list(dict.fromkeys([*(tasks or []), *pairs["task"]]))
    parent = {task: task for task in order}

    def root(task: str) -> str:
        while parent[task] != task:
            parent[task] = parent[parent[task]]
            task = parent[task]
        return task

    for _, rows in pairs.groupby("checkpoint", sort=False):
        linked = [root(t) for t in rows["task"]]
        for other in linked[1:]:
            parent[root(other)] = root(linked[0])
    with_truth = set(pairs["task"])
    components: dict[str, str] = {}
    for task in order:
        if task in with_truth:
            components.setdefault(root(task), f"track {len(components) + 1}")
    if len(components) < 2:
        return dict.fromkeys(order, "")
    return {task: components[root(task)] if task in with_truth else "" for task in order}


# ------------------------------------------------------------------------------------------------
# Registry


def _import_builtins() -> None:
    global _BUILTINS_IMPORTED
    if _BUILTINS_IMPORTED:
        return
    _BUILTINS_IMPORTED = True
    for module in _BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:  # a real import error inside the module
                _BROKEN[module] = f"{type(err).__name__}: {err}"
        except Exception as err:  # a broken optional suite must not hide the others
            if module == _BUILTIN_MODULES[0]:
                raise
            _BROKEN[module] = f"{type(err).__name__}: {' '.join(str(err).split())}"
            logger.warning("suite module %s failed to import: %s", module, _BROKEN[module])


def register_suite(name: str, loader: Callable[[], Suite], *, replace: bool = False) -> None:
    """Register ``loader`` (called without arguments, returning a :class:`Suite`) under ``name``.

    Raises
    ------
    ValueError
        ``name`` is taken and ``replace`` is False, or ``loader`` is not callable.
    """
    if not callable(loader):
        raise ValueError(f"the loader of suite {name!r} must be callable (returning a Suite)")
    if name in _LOADERS and not replace:
        raise ValueError(f"a suite named {name!r} is already registered; pass replace=True to replace it")
    _LOADERS[name] = loader
    _LOADED.pop(name, None)


def unregister_suite(name: str) -> None:
    """Remove a registered suite (no error when it is not registered)."""
    _LOADERS.pop(name, None)
    _LOADED.pop(name, None)


def list_suites() -> list[str]:
    """Names of the registered suites, sorted."""
    _import_builtins()
    return sorted(_LOADERS)


def get_suite(name: str | Path | Suite) -> Suite:
    """The suite registered under ``name`` (loaded once), or read from a ``.json`` suite file.

    Raises
    ------
    KeyError
        Unknown name; the message lists the registered suites and the closest match.
    ValueError
        The loader returned something other than a :class:`Suite`.
    """
    if isinstance(name, Suite):
        return name
    _import_builtins()
    text = str(name)
    if text in _LOADED:
        return _LOADED[text]
    if text in _LOADERS:
        suite = _LOADERS[text]()
        if not isinstance(suite, Suite):
            raise ValueError(f"the loader of suite {text!r} returned {type(suite).__name__}, not a Suite")
        _LOADED[text] = suite
        return suite
    if text.lower().endswith(".json") or Path(text).is_file():
        return Suite.from_file(text)
    valid = sorted(_LOADERS)
    close = difflib.get_close_matches(text, valid, n=1, cutoff=0.5)
    if not close and ":" not in text:
        close = difflib.get_close_matches(f"published:{text}", valid, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    broken = "".join(f" Module {module} failed to import ({why})." for module, why in _BROKEN.items())
    raise KeyError(
        f"unknown suite {text!r}.{hint} Valid suites: {', '.join(valid) or 'none'} "
        f"(or the path of a suite .json file).{broken}"
    )


def check_code_allowed(suite: Suite, allow_code: bool) -> None:
    """Refuse ``py:`` checkpoints of a suite read from a file unless code is allowed.

    A ``py:`` spec imports and runs a Python file; in a suite file (like in a models file for
    ``ckptrank rank``) it needs an explicit ``allow_code`` (CLI: ``--allow-code``).

    Raises
    ------
    ValueError
        The suite file names ``py:`` checkpoints and ``allow_code`` is False.
    """
    if allow_code or suite.source_file is None:
        return
    code = [name for name, c in suite.checkpoints.items() if (c.spec or "").startswith("py:")]
    if code:
        raise ValueError(
            f"suite file {Path(suite.source_file).name} names {len(code)} py: checkpoint(s) "
            f"({', '.join(code[:3])}{', ...' if len(code) > 3 else ''}), which run Python code; "
            "pass --allow-code to run them"
        )
