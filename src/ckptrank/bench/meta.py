"""The meta-dataset and the held-out evaluation of rankers on it.

:func:`meta_table` collects one row per (suite, task, checkpoint) from the suites that have
scores: ckptrank's own scores on neucrab-mini v1 and v2 (from the results store, scored if missing) and the
published score tables (Model Spider's 9 metrics, stable-transfer's GBC, LEEP, NLEEP and LogME, mapped to
ckptrank's names where ckptrank implements the same measure), beside target-blind descriptors (log
parameter count, whether the checkpoint has a classification head) and the fine-tuned truth. Suites
without scores (SFDA's group 1) contribute their descriptors only. Missing values (no head, a
measure a source did not publish) stay NaN: the pairwise ranker treats them as the middle rank, the
agreement ranker leaves a feature with fewer than 3 scores out.

:func:`held_out_evaluation` fits :class:`ckptrank.rankers.PairwiseRanker` only on tasks other
than the one it ranks (leave one task out, and leave one suite out; suites outside
``train_suites`` are never fitted on), or applies the label-free
:class:`ckptrank.rankers.AgreementRanker` (the default ranker, fitted on no task;
:func:`default_held_out` sets the learned pairwise ranker's held-out predictions beside it), and
evaluates it with
:func:`ckptrank.bench.evaluate.evaluate` beside (a) the best single measure chosen on the
training tasks only, (b) the parameter count and (c) today's consensus of the default measures,
so every comparison is paired on the same (task, checkpoint) pairs and bootstrap resamples.
Random-initialised controls are left out of fitting and of the statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ckptrank.rankers import (
    HAS_HEAD,
    PARAMETERS,
    AgreementRanker,
    PairwiseRanker,
    Ranker,
    feature_matrix,
    probability_best,
    shortlist_size,
)

from .evaluate import Evaluation, evaluate
from .published import PUBLISHED_NAMES
from .suite import Suite, get_suite

__all__ = [
    "AGREEMENT_FEATURES",
    "DEFAULT_DESIGN",
    "DEFAULT_SUITES",
    "HELD_OUT_SUITES",
    "PAIRWISE",
    "PAIRWISE_DESIGN",
    "SHARED_FEATURES",
    "Design",
    "HeldOut",
    "calibrate_shortlist",
    "default_held_out",
    "fit_default_ranker",
    "held_out_evaluation",
    "meta_table",
    "p_best_scale_of",
    "shortlist_table",
    "summarise",
]

#: Suites the learned pairwise ranker (the default until round 6) is fitted on, each with its default
#: protocol; the default agreement ranker is fitted on none and evaluated on these and
#: :data:`HELD_OUT_SUITES`.
DEFAULT_SUITES: tuple[str, ...] = ("neucrab-mini-v1", "published:modelspider", "published:sfda-group1")

#: Suites the learned pairwise ranker is evaluated on but never fitted on: every task there is held
#: out from it (and from the choice of its regularisation). neucrab-mini v2 has only its linear-probe
#: truth (fitting on it lowered the held-out figures of the fine-tuning suites, benchmarks/RESULTS.md);
#: its held-out predictions join the temperature fit of ``p_best``. stable-transfer (19 Keras
#: architectures, fine-tuning truth) publishes GBC, LEEP, NLEEP and LogME scores: the only suite with
#: fine-tuning truth and measure scores that the ranker never saw, so it stays held out; its held-out
#: predictions join the temperature fit too (:func:`calibrate_shortlist`).
HELD_OUT_SUITES: tuple[str, ...] = ("neucrab-mini-v2", "published:stable-transfer")


#: Features of the learned pairwise ranker: measures scored on more than one suite, and descriptors.
SHARED_FEATURES: tuple[str, ...] = ("logme", "hscore", "leep", "nce", "nleep", "gbc", PARAMETERS, HAS_HEAD)

#: Descriptor columns of the meta-dataset (not features of either ranker).
SOURCE_ACCURACY = "source_accuracy"
SOURCE_CLASSES = "source_classes"
SATURATED = "saturated"

#: Regularisation strengths tried (chosen on the training tasks by an inner leave-one-task-out).
C_GRID: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0, 3.0)


def _measure_direction(name: str) -> bool:
    from ckptrank.measures import get_measure, list_measures

    return get_measure(name).higher_is_better if name in list_measures() else True


def _suite_rows(suite: Suite, scores: pd.DataFrame | None, protocol: str | None) -> pd.DataFrame:
    """Wide rows (task, checkpoint, measures..., log_parameters, has_head, control, truth)."""
    gt = suite.ground_truth
    chosen = suite.resolve_protocol(protocol)
    if chosen is not None and "protocol" in gt:
        gt = gt[gt["protocol"] == chosen]
    truth = gt.groupby(["task", "checkpoint"], sort=False)["accuracy"].mean().rename("truth").reset_index()
    frame = truth.copy()
    if scores is not None and len(scores):
        table = scores.copy()
        table["measure"] = table["measure"].map(lambda m: PUBLISHED_NAMES.get(m, m))
        table = table[table["measure"].isin(_known_measures())]
        table["score"] = [
            s if _measure_direction(m) else -s
            for s, m in zip(table["score"].astype(float), table["measure"], strict=True)
        ]
        wide = table.pivot_table(
            index=["task", "checkpoint"], columns="measure", values="score", aggfunc="first", dropna=False
        ).reset_index()
        wide.columns.name = None
        frame = frame.merge(wide, on=["task", "checkpoint"], how="left")
    params = suite.baselines["num_parameters"] if suite.baselines is not None else pd.Series(dtype=float)
    frame[PARAMETERS] = np.log10(frame["checkpoint"].map(params).astype(float))
    if "leep" in frame:
        # a checkpoint LEEP scored has a head; in a task where LEEP scored none, unknown
        scored = frame.groupby("task")["leep"].transform(lambda v: v.notna().any())
        frame[HAS_HEAD] = np.where(frame["leep"].notna(), 1.0, np.where(scored, 0.0, np.nan))
    else:
        frame[HAS_HEAD] = np.nan
    frame[SOURCE_ACCURACY], frame[SOURCE_CLASSES] = _source_descriptors(suite, frame["checkpoint"])
    frame[SATURATED] = _saturation_flags(frame)
    controls = set(suite.controls())
    frame["control"] = frame["checkpoint"].isin(controls)
    tracks = suite.task_tracks()
    frame["track"] = frame["task"].map(lambda t: tracks.get(t) or "")
    frame.insert(0, "suite", suite.name)
    return frame


def _source_descriptors(suite: Suite, checkpoints: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Stated source accuracy (percent) and the number of source classes it was measured on (NaN: none)."""
    base = suite.baselines
    n = len(checkpoints)
    if base is None or "source_accuracy" not in base:
        return np.full(n, np.nan), np.full(n, np.nan)
    accuracy = checkpoints.map(base["source_accuracy"]).astype(float).to_numpy()
    if "source_classes" in base:
        classes = checkpoints.map(base["source_classes"]).astype(float).to_numpy()
    else:
        classes = np.full(n, np.nan)
    classes = np.where(np.isfinite(accuracy) & (classes > 0), classes, np.nan)
    return accuracy, classes


def _saturation_flags(frame: pd.DataFrame) -> list[str]:
    """Per row, the measures (comma-separated) at which several checkpoints of the task tie at the top.

    Scored suites have their saturated scores snapped to the measure's maximum
    (:func:`ckptrank.measures.snap_saturated`), so a saturated measure shows as an exact tie at
    the task's highest score among checkpoints (signed scores: higher = better).
    """
    from ckptrank.measures import get_measure, list_measures

    registered = set(list_measures())
    flags = [[] for _ in range(len(frame))]
    for name in frame.columns:
        if name not in registered or get_measure(name).saturation is None:
            continue
        for _, group in frame.groupby("task", sort=False):
            values = group[name].to_numpy(dtype=float)
            finite = np.isfinite(values)
            if finite.sum() < 2:
                continue
            top = values[finite].max()
            at_top = finite & (values == top)
            if at_top.sum() >= 2:
                for position in np.flatnonzero(at_top):
                    flags[frame.index.get_loc(group.index[position])].append(name)
    return [",".join(f) for f in flags]


def _known_measures() -> set[str]:
    from ckptrank.measures import list_measures

    return set(list_measures(kind="static"))


def meta_table(
    suites: Sequence[str] = DEFAULT_SUITES,
    *,
    store: Any = None,
    scores: dict[str, pd.DataFrame] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The meta-dataset: one row per (suite, task, checkpoint), and the ground truth per seed.

    Parameters
    ----------
    suites : sequence of str
        Registered suites. Scorable suites are scored through the results store (a warm store
        costs seconds); published suites use their published score table, or none.
    store : ResultsStore, str or path, optional
        Results store for the scorable suites (default: the default store).
    scores : dict, optional
        Suite -> long score table to use instead.

    Returns
    -------
    rows : pandas.DataFrame
        Columns ``suite, task, checkpoint, truth``, one per measure (signed so that higher
        predicts better; NaN when missing), ``log_parameters``, ``has_head``,
        ``source_accuracy`` (stated, percent) with ``source_classes`` (its number of source
        classes; NaN when none is stated), ``saturated`` (the measures tied at their maximum
        for this checkpoint, comma-separated), ``control``, ``track``; ``key`` = ``"suite/task"``.
    ground_truth : pandas.DataFrame
        ``task`` (the key), ``checkpoint``, ``seed``, ``accuracy`` of the chosen protocols.
    """
    from .harness import score_suite

    frames, truths = [], []
    for name in suites:
        suite = get_suite(name)
        table = (scores or {}).get(name)
        if table is None:
            if suite.can_score:
                table = score_suite(suite, "all", store=store).scores
            else:
                table = suite.published_scores
        rows = _suite_rows(suite, table, None)
        frames.append(rows)
        gt = suite.ground_truth
        chosen = suite.resolve_protocol(None)
        if chosen is not None and "protocol" in gt:
            gt = gt[gt["protocol"] == chosen]
        gt = gt[["task", "checkpoint", "seed", "accuracy"]].copy()
        gt["task"] = suite.name + "/" + gt["task"].astype(str)
        truths.append(gt)
    rows = pd.concat(frames, ignore_index=True)
    rows.insert(0, "key", rows["suite"] + "/" + rows["task"].astype(str))
    return rows, pd.concat(truths, ignore_index=True)


def _suite_names(names: Sequence[str]) -> set[str]:
    """The suites' own names (alias ``neucrab-mini`` -> ``neucrab-mini-v2``; unknown names are kept)."""
    out = set()
    for name in names:
        try:
            out.add(get_suite(name).name)
        except KeyError:
            out.add(str(name))
    return out


def _task_tables(rows: pd.DataFrame, features: Sequence[str]) -> dict[str, tuple[pd.DataFrame, np.ndarray]]:
    """Key -> (pre-trained rows of the task, feature matrix)."""
    out = {}
    for key, group in rows[~rows["control"]].groupby("key", sort=False):
        table = {f: group[f].to_numpy(dtype=float) for f in features if f in group}
        out[str(key)] = (group, feature_matrix(table, features))
    return out


def _weighted_tau(score: np.ndarray, truth: np.ndarray) -> float:
    from . import stats

    return float(stats.weighted_tau(score, truth))


@dataclass(frozen=True)
class Design:
    """How a ranker is made: what :func:`held_out_evaluation` varies besides the features.

    Attributes
    ----------
    kind : {"pairwise", "agreement"}
        ``"pairwise"``: :class:`ckptrank.rankers.PairwiseRanker`, fitted on the training tasks.
        ``"agreement"``: :class:`ckptrank.rankers.AgreementRanker`, label-free, fitted on no task
        (``balance`` and ``nonnegative`` do not apply; ``has_head`` is not one of its features).
    balance : {"task", "suite"}
        ``"task"``: every training task weighs the same (the learned pairwise ranker that was the
        default until round 6). ``"suite"``: every
        training suite weighs the same in total, its tasks equally within it; the regularisation
        is then chosen by an inner leave one suite out (leave one task out while the training
        tasks come from a single suite).
    nonnegative : bool
        Constrain the weights of every feature but ``has_head`` to be >= 0.
    """

    balance: str = "task"
    nonnegative: bool = False
    kind: str = "pairwise"

    def __post_init__(self) -> None:
        if self.kind not in ("pairwise", "agreement"):
            raise ValueError(f"kind must be 'pairwise' or 'agreement', got {self.kind!r}")
        if self.balance not in ("task", "suite"):
            raise ValueError(f"balance must be 'task' or 'suite', got {self.balance!r}")
        if self.kind == "agreement" and (self.balance != "task" or self.nonnegative):
            raise ValueError(
                "the agreement ranker is fitted on no task: balance and nonnegative apply to the pairwise "
                "ranker only"
            )

    def describe(self) -> dict[str, Any]:
        """JSON-ready form, recorded in a ranker file's ``info["design"]``."""
        if self.kind == "agreement":
            return {"kind": self.kind}
        return {"kind": self.kind, "balance": self.balance, "nonnegative": self.nonnegative}


#: The learned pairwise ranker's design (the default ranker until round 6, benchmarks/RESULTS.md).
PAIRWISE_DESIGN = Design()

#: The shipped default ranker's design: label-free agreement of the measures and the size.
DEFAULT_DESIGN = Design(kind="agreement")

#: Features of the shipped agreement ranker: the six default measures and log-parameters.
AGREEMENT_FEATURES: tuple[str, ...] = tuple(f for f in SHARED_FEATURES if f != HAS_HEAD)


def _suite_of(tables: dict[str, tuple[pd.DataFrame, np.ndarray]], key: str) -> str:
    """The suite of a task key of :func:`_task_tables`."""
    return str(tables[key][0]["suite"].iloc[0])


def _fit(
    tables: dict[str, tuple[pd.DataFrame, np.ndarray]],
    keys: Sequence[str],
    features: Sequence[str],
    C: float,
    design: Design = PAIRWISE_DESIGN,
) -> PairwiseRanker:
    data = [(tables[k][1], tables[k][0]["truth"].to_numpy(dtype=float)) for k in keys]
    task_weights = None
    if design.balance == "suite":
        suites = [_suite_of(tables, k) for k in keys]
        counts = {name: suites.count(name) for name in suites}
        # every suite weighs len(keys) / n_suites in total, so C means what it means task-balanced
        task_weights = [len(keys) / (len(counts) * counts[name]) for name in suites]
    nonnegative = [f for f in features if f != HAS_HEAD] if design.nonnegative else []
    return PairwiseRanker(features=list(features), C=C, nonnegative=nonnegative).fit(
        data, task_weights=task_weights
    )


def _inner_folds(
    tables: dict[str, tuple[pd.DataFrame, np.ndarray]], keys: Sequence[str], design: Design
) -> list[list[str]]:
    """The held-out groups of keys of the inner cross-validation that chooses the regularisation."""
    if design.balance == "suite":
        by_suite: dict[str, list[str]] = {}
        for key in keys:
            by_suite.setdefault(_suite_of(tables, key), []).append(key)
        if len(by_suite) >= 2:
            return list(by_suite.values())
    return [[key] for key in keys]


def _choose_regularisation(
    tables: dict[str, tuple[pd.DataFrame, np.ndarray]],
    keys: Sequence[str],
    features: Sequence[str],
    design: Design = PAIRWISE_DESIGN,
) -> float:
    """C with the best inner held-out mean weighted tau on the training tasks (see :class:`Design`)."""
    best_C, best = C_GRID[0], -np.inf
    folds = _inner_folds(tables, keys, design)
    for C in C_GRID:
        taus = []
        for fold in folds:
            train = [k for k in keys if k not in fold]
            ranker = _fit(tables, train, features, C, design)
            for held in fold:
                group, X = tables[held]
                taus.append(_weighted_tau(ranker.predict(X), group["truth"].to_numpy(dtype=float)))
        value = float(np.nanmean(taus))
        if value > best + 1e-12:
            best_C, best = C, value
    return best_C


def _best_single(
    tables: dict[str, tuple[pd.DataFrame, np.ndarray]],
    train: Sequence[str],
    candidates: Sequence[str],
    test_group: pd.DataFrame,
) -> str | None:
    """The candidate with the best mean weighted tau on the training tasks (it must score the test task)."""
    best_name, best = None, -np.inf
    for name in candidates:
        if name not in test_group or test_group[name].notna().sum() < 2:
            continue
        taus = []
        for key in train:
            group = tables[key][0]
            if name in group and group[name].notna().sum() >= 3:
                mask = group[name].notna().to_numpy()
                taus.append(
                    _weighted_tau(
                        group[name].to_numpy(dtype=float)[mask], group["truth"].to_numpy(dtype=float)[mask]
                    )
                )
        if taus and np.nanmean(taus) > best:
            best_name, best = name, float(np.nanmean(taus))
    return best_name


#: The default measures before the learned ranker (ckptrank 0.x): their consensus is compared.
PREVIOUS_DEFAULT: tuple[str, ...] = ("logme", "sfda", "reg_hscore", "nleep", "leep")


def _consensus(group: pd.DataFrame) -> np.ndarray | None:
    from ckptrank.combine import consensus_column

    present = [m for m in PREVIOUS_DEFAULT if m in group and group[m].notna().any()]
    if not present:
        return None
    # the scores are already signed (higher = better)
    column = consensus_column(
        {m: group[m].to_numpy(dtype=float) for m in present}, dict.fromkeys(present, True)
    )
    return -column.rank


@dataclass
class HeldOut:
    """Result of :func:`held_out_evaluation`.

    Attributes
    ----------
    evaluation : Evaluation
        Paired evaluation of every held-out row (tracks = suites).
    scores : pandas.DataFrame
        The held-out predictions: ``task`` (key), ``checkpoint``, ``measure``, ``score``.
    chosen : pandas.DataFrame
        Per held-out task and scheme: the regularisation chosen, the best single measure chosen
        on the training tasks, the ranker's weights.
    final : PairwiseRanker or AgreementRanker
        The ranker fitted on every task (what would ship; an agreement ranker is fitted on none).
    """

    evaluation: Evaluation
    scores: pd.DataFrame
    chosen: pd.DataFrame
    final: Ranker
    notes: list[str] = field(default_factory=list)


#: Row of the ranker under evaluation.
LEARNED = "ranker"
BEST_SINGLE = "best single measure (chosen on training tasks)"
CONSENSUS = "consensus of logme, sfda, reg_hscore, nleep, leep (earlier default)"
#: Row of the learned pairwise ranker's held-out predictions beside the default agreement ranker.
PAIRWISE = "learned pairwise ranker (default until round 6)"


def held_out_evaluation(
    rows: pd.DataFrame,
    ground_truth: pd.DataFrame,
    *,
    features: Sequence[str] = SHARED_FEATURES,
    scheme: str = "task",
    n_bootstrap: int = 1000,
    random_state: int = 0,
    train_suites: Sequence[str] | None = None,
    design: Design = PAIRWISE_DESIGN,
    comparators: pd.DataFrame | None = None,
) -> HeldOut:
    """Leave-one-task-out (``scheme="task"``) or leave-one-suite-out (``"suite"``) evaluation.

    For every held-out task the ranker (its regularisation chosen by an inner leave-one-task-out
    on the training tasks) and the best single measure are chosen on the training tasks only.

    Parameters
    ----------
    rows, ground_truth : pandas.DataFrame
        From :func:`meta_table`.
    features : sequence of str
    scheme : {"task", "suite"}
    n_bootstrap, random_state
        See :func:`ckptrank.bench.evaluate.evaluate`.
    train_suites : sequence of str, optional
        Suites whose tasks may be training tasks (default: every suite in ``rows``), as registered
        names or aliases (``neucrab-mini`` is ``neucrab-mini-v2``). Tasks of the other suites are
        evaluated but never trained on (see :data:`HELD_OUT_SUITES`), and the final ranker is
        fitted on the training suites only.
    design : Design
        How the ranker is made (default: the learned pairwise ranker). An agreement ranker is
        fitted on no task, so its scores are the same under both schemes.
    comparators : pandas.DataFrame, optional
        More held-out predictions to compare on the same pairs (``task`` key, ``checkpoint``,
        ``measure``, ``score``), such as another ranker's :attr:`HeldOut.scores` renamed.

    Returns
    -------
    HeldOut

    Raises
    ------
    ValueError
        An unknown ``scheme``; no task of the training suites in ``rows``; or a leave-one-suite-out
        that leaves a task without any training task (a single training suite).
    """
    if scheme not in ("task", "suite"):
        raise ValueError(f"scheme must be 'task' or 'suite', got {scheme!r}")
    tables = _task_tables(rows, features)
    keys = list(tables)
    suite_of = {k: str(tables[k][0]["suite"].iloc[0]) for k in keys}
    training = None if train_suites is None else _suite_names(train_suites)
    pool = keys if training is None else [k for k in keys if suite_of[k] in training]
    if not pool:
        raise ValueError(
            f"no task of the training suites {', '.join(train_suites or [])} is in the meta-dataset "
            f"(its suites: {', '.join(sorted(set(suite_of.values())))})"
        )
    candidates = [f for f in features if f != HAS_HEAD]
    predictions, chosen = [], []
    for held in keys:
        if scheme == "task":
            train = [k for k in pool if k != held]
        else:
            train = [k for k in pool if suite_of[k] != suite_of[held]]
        if not train:
            raise ValueError(
                f"holding out {held!r} leaves no training task (training suites: "
                f"{', '.join(sorted({suite_of[k] for k in pool}))}); leave one suite out needs two"
            )
        group, X = tables[held]
        if design.kind == "agreement":
            C = None
            agreement = AgreementRanker(features=[f for f in features if f != HAS_HEAD])
            table = {f: group[f].to_numpy(dtype=float) for f in agreement.features if f in group}
            score, loadings = agreement.score_with_loadings(table)
            weights = [loadings.get(f, 0.0) for f in features]
            entries = {LEARNED: score}
        else:
            C = _choose_regularisation(tables, train, features, design)
            ranker = _fit(tables, train, features, C, design)
            weights = list(ranker.weights)
            entries = {LEARNED: ranker.predict(X)}
        single = _best_single(tables, train, candidates, group)
        if single is not None:
            entries[BEST_SINGLE] = group[single].to_numpy(dtype=float)
        consensus = _consensus(group)
        if consensus is not None:
            entries[CONSENSUS] = consensus
        for name, values in entries.items():
            predictions.append(
                pd.DataFrame(
                    {
                        "task": held,
                        "checkpoint": group["checkpoint"].to_numpy(),
                        "measure": name,
                        "score": values,
                    }
                )
            )
        chosen.append(
            {
                "task": held,
                "C": C,
                "best_single": single,
                # whether the ranker had any measure's score here (rank always has; SFDA g1 has not)
                "has_measures": bool(
                    group[[f for f in features if f not in (PARAMETERS, HAS_HEAD) and f in group]]
                    .notna()
                    .any()
                    .any()
                ),
                **{f"w:{f}": w for f, w in zip(features, weights, strict=True)},
            }
        )
    scores = pd.concat(predictions, ignore_index=True)
    pretrained = rows[~rows["control"]]
    # parameter count per task key (checkpoint names may repeat across suites with other counts)
    param_scores = pd.DataFrame(
        {
            "task": pretrained["key"],
            "checkpoint": pretrained["checkpoint"],
            "measure": "num_parameters",
            "score": pretrained[PARAMETERS],
        }
    )
    scores = pd.concat([scores, param_scores], ignore_index=True)
    extra_kinds: dict[str, str] = {}
    if comparators is not None and len(comparators):
        extra = comparators[comparators["task"].isin(keys)][["task", "checkpoint", "measure", "score"]]
        scores = pd.concat([scores, extra], ignore_index=True)
        extra_kinds = dict.fromkeys(extra["measure"].unique(), "ranker")
    tracks = {k: suite_of[k] for k in keys}
    truth = ground_truth[ground_truth["task"].isin(keys)]
    truth = truth[~truth["checkpoint"].isin(set(rows.loc[rows["control"], "checkpoint"]))]
    evaluation = evaluate(
        scores,
        truth,
        n_bootstrap=n_bootstrap,
        random_state=random_state,
        tracks=tracks,
        task_order=keys,
        kinds={LEARNED: "ranker", BEST_SINGLE: "ranker", CONSENSUS: "ranker", **extra_kinds},
    )
    final: Ranker
    if design.kind == "agreement":
        final = AgreementRanker(features=[f for f in features if f != HAS_HEAD])
    else:
        final = _fit(tables, pool, features, _choose_regularisation(tables, pool, features, design), design)
    return HeldOut(evaluation=evaluation, scores=scores, chosen=pd.DataFrame(chosen), final=final)


def summarise(held: HeldOut) -> dict[str, Any]:
    """JSON-ready figures of a held-out evaluation: the ranker's mean weighted tau with its interval,
    per suite, and its paired difference with every comparator (overall and per suite)."""
    ev = held.evaluation
    row = ev.summary.loc[LEARNED]
    out: dict[str, Any] = {
        "weighted_tau": float(row["weighted_tau"]),
        "ci_low": float(row["weighted_tau_ci_low"]),
        "ci_high": float(row["weighted_tau_ci_high"]),
        "n_tasks": int(row["n_tasks"]),
        "per_suite": {},
        "versus": {},
    }
    for scope in ["all", *ev.track_names]:
        table = ev.versus(LEARNED, scope=scope)
        versus = {
            str(name): {
                "ranker": float(r["tau_other"]),
                "other": float(r["tau"]),
                "diff": float(r["tau_other"] - r["tau"]),
                "ci_low": float(-r["ci_high"]),
                "ci_high": float(-r["ci_low"]),
                "n_tasks": int(r["n_tasks"]),
            }
            for name, r in table.iterrows()
        }
        if scope == "all":
            out["versus"] = versus
        else:
            hit = ev.per_task[
                (ev.per_task["measure"] == LEARNED)
                & (ev.per_task["task"] == f"mean:{scope}")
                & (ev.per_task["statistic"] == "weighted_tau")
            ]
            out["per_suite"][scope] = {
                "weighted_tau": float(hit["value"].iloc[0]) if len(hit) else None,
                "ci_low": float(hit["ci_low"].iloc[0]) if len(hit) else None,
                "ci_high": float(hit["ci_high"].iloc[0]) if len(hit) else None,
                "n_tasks": int(hit["n_tasks"].iloc[0]) if len(hit) else 0,
                "versus": versus,
            }
    return out


def default_held_out(
    rows: pd.DataFrame,
    ground_truth: pd.DataFrame,
    *,
    scheme: str = "task",
    n_bootstrap: int = 1000,
    features: Sequence[str] | None = None,
    design: Design = DEFAULT_DESIGN,
    train_suites: Sequence[str] | None = None,
) -> HeldOut:
    """The held-out evaluation of a default ranker, beside the learned pairwise ranker's.

    For the agreement ranker (:data:`DEFAULT_DESIGN`, fitted on no task) the comparators are the
    learned pairwise ranker's held-out predictions (row :data:`PAIRWISE`: fitted on
    ``train_suites``, default :data:`DEFAULT_SUITES`, without the held-out task or suite; never on
    :data:`HELD_OUT_SUITES`), the best single measure chosen on the other tasks of every suite, the
    parameter count and the earlier consensus. For a pairwise design it is
    :func:`held_out_evaluation` with ``train_suites`` (default :data:`DEFAULT_SUITES`).

    Parameters
    ----------
    rows, ground_truth : pandas.DataFrame
        From :func:`meta_table`.
    scheme : {"task", "suite"}
    n_bootstrap : int
    features : sequence of str, optional
        Default :data:`AGREEMENT_FEATURES` for an agreement ranker, :data:`SHARED_FEATURES` else.
    design : Design
    train_suites : sequence of str, optional

    Returns
    -------
    HeldOut
    """
    trained_on = DEFAULT_SUITES if train_suites is None else tuple(train_suites)
    if design.kind != "agreement":
        return held_out_evaluation(
            rows,
            ground_truth,
            features=SHARED_FEATURES if features is None else features,
            scheme=scheme,
            n_bootstrap=n_bootstrap,
            train_suites=trained_on,
            design=design,
        )
    pairwise = held_out_evaluation(
        rows, ground_truth, features=SHARED_FEATURES, scheme=scheme, n_bootstrap=0, train_suites=trained_on
    )
    learned = pairwise.scores[pairwise.scores["measure"] == LEARNED].assign(measure=PAIRWISE)
    return held_out_evaluation(
        rows,
        ground_truth,
        features=AGREEMENT_FEATURES if features is None else features,
        scheme=scheme,
        n_bootstrap=n_bootstrap,
        design=design,
        comparators=learned,
    )


def fit_default_ranker(
    rows: pd.DataFrame,
    ground_truth: pd.DataFrame,
    *,
    features: Sequence[str] | None = None,
    n_bootstrap: int = 1000,
    train_suites: Sequence[str] | None = None,
    design: Design = DEFAULT_DESIGN,
) -> tuple[Ranker, HeldOut, HeldOut]:
    """The default ranker with its leave-one-task-out and leave-one-suite-out figures and the
    calibration of its probability of being the best (:func:`calibrate_shortlist`).

    Parameters
    ----------
    rows, ground_truth : pandas.DataFrame
        From :func:`meta_table`.
    features : sequence of str, optional
        Default :data:`AGREEMENT_FEATURES` for an agreement ranker, :data:`SHARED_FEATURES` else.
    n_bootstrap : int
    train_suites : sequence of str, optional
        A pairwise ranker: the suites it is fitted on (default: every suite in ``rows``); the
        others are held out entirely, evaluated and never fitted on (their tasks with measure
        scores also enter the temperature fit, :func:`calibrate_shortlist`). The agreement ranker
        is fitted on no suite; there ``train_suites`` (default :data:`DEFAULT_SUITES`) are those
        of the learned pairwise ranker it is compared with (:func:`default_held_out`).
    design : Design
        How the ranker is made (default: the shipped agreement ranker).

    Returns
    -------
    ranker : PairwiseRanker or AgreementRanker
        ``info`` records the tasks it was fitted on (none for the agreement ranker) with a digest
        of their data, the regularisation, the suites held out entirely, both held-out summaries
        (:func:`summarise`) and the temperature of ``p_best`` with its held-out calibration.
    by_task, by_suite : HeldOut
    """
    import datetime

    import ckptrank
    from ckptrank.rankers import digest

    agreement = design.kind == "agreement"
    if features is None:
        features = AGREEMENT_FEATURES if agreement else SHARED_FEATURES
    # the agreement ranker is evaluated beside the learned pairwise ranker (default_held_out)
    evaluation = default_held_out if agreement else held_out_evaluation
    by_task, by_suite = (
        evaluation(
            rows,
            ground_truth,
            features=features,
            scheme=scheme,
            n_bootstrap=n_bootstrap,
            train_suites=train_suites,
            design=design,
        )
        for scheme in ("task", "suite")
    )
    ranker = by_task.final
    temperature, calibration = calibrate_shortlist(by_task)
    pretrained = rows[~rows["control"]]
    if agreement:
        used = pretrained.iloc[:0]
    elif train_suites is None:
        used = pretrained
    else:
        used = pretrained[pretrained["suite"].isin(_suite_names(train_suites))]
    columns = ["key", "checkpoint", "truth", *[f for f in features if f in pretrained]]
    ranker.info = {
        "fitted_on": {
            "suites": sorted(set(used["suite"])),
            "tasks": list(dict.fromkeys(used["key"])),
            "n_pairs": len(used),
            "sha256": digest(used[columns].round(10).to_dict(orient="list")),
            "controls": "random-initialised controls left out",
        },
        "evaluated_on": {
            "suites": sorted(set(pretrained["suite"])),
            "n_tasks": int(pretrained["key"].nunique()),
            "n_pairs": len(pretrained),
            "sha256": digest(pretrained[columns].round(10).to_dict(orient="list")),
        },
        "held_out_only": sorted(set(pretrained["suite"]) - set(used["suite"])),
        "design": design.describe(),
        "regularisation": (
            "none: label-free, fitted on no task"
            if agreement
            else "C chosen by leave-one-"
            + ("suite" if design.balance == "suite" else "task")
            + "-out on the training tasks from "
            + str(list(C_GRID))
        ),
        "held_out": {
            "leave_one_task_out": summarise(by_task) | {"with_measures": _with_measures(by_task)},
            "leave_one_suite_out": summarise(by_suite) | {"with_measures": _with_measures(by_suite)},
        },
        "p_best": {
            "method": "softmax(ranker score "
            + ("as it is (standardised)" if agreement else "in rank steps")
            + " / temperature), ckptrank.rankers.probability_best; "
            "temperature fitted by maximum likelihood of the true best on the held-out scores ("
            + (
                "the ranker is fitted on no task, so every score is held out"
                if agreement
                else "leave one task out, and every task of the suites held out entirely"
            )
            + ") of the tasks where the ranker had measure scores, as ckptrank rank always has",
            "temperature": temperature,
            "scale": p_best_scale_of(by_task),
            "shortlist_level": 0.9,
            "held_out_coverage": float(calibration["covered"].mean()),
            "held_out_mean_size": float(calibration["size"].mean()),
            "mean_checkpoints": float(calibration["n_checkpoints"].mean()),
            "n_tasks": len(calibration),
            "with_measures": _calibration_summary(calibration[calibration["has_measures"]]),
            "descriptors_only": _calibration_summary(calibration[~calibration["has_measures"]]),
        },
        "ckptrank": ckptrank.__version__,
        "created": datetime.date.today().isoformat(),
        "command": "python scripts/fit_default_ranker.py",
    }
    return ranker, by_task, by_suite


def _with_measures(held: HeldOut) -> dict[str, float | int | None]:
    """Mean held-out weighted tau of the ranker over the tasks where it had measure scores (as rank has)."""
    per_task = held.evaluation.per_task
    values = per_task[
        (per_task["measure"] == LEARNED)
        & (per_task["statistic"] == "weighted_tau")
        & ~per_task["task"].astype(str).str.startswith("mean")
    ].set_index("task")["value"]
    keys = [k for k, has in zip(held.chosen["task"], held.chosen["has_measures"], strict=True) if has]
    chosen = values.reindex(keys).dropna()
    return {"weighted_tau": float(chosen.mean()) if len(chosen) else None, "n_tasks": len(chosen)}


def _calibration_summary(table: pd.DataFrame) -> dict[str, float | int | None]:
    """Coverage, mean shortlist size and mean zoo size of some rows of a calibration table (None: no row)."""
    means = {"coverage": "covered", "mean_size": "size", "mean_checkpoints": "n_checkpoints"}
    return {"n_tasks": len(table)} | {
        key: float(table[column].mean()) if len(table) else None for key, column in means.items()
    }


def _fit_temperature(tasks: Sequence[tuple[np.ndarray, np.ndarray]], scale: str = "rank_steps") -> float:
    """Temperature maximising the likelihood of the true best under :func:`probability_best` at ``scale``."""
    from scipy.optimize import minimize_scalar

    def loss(log_t: float) -> float:
        t = float(np.exp(log_t))
        return -sum(
            float(np.log(probability_best(s, t, scale)[int(np.argmax(y))] + 1e-300)) for s, y in tasks
        )

    result = minimize_scalar(loss, bounds=(np.log(1e-3), np.log(1e3)), method="bounded")
    return float(np.exp(result.x))


def _held_out_tasks(held: HeldOut) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Task -> (the ranker's held-out scores, truth) of the checkpoints with a truth (at least 2)."""
    learned = held.scores[held.scores["measure"] == LEARNED]
    truth = held.evaluation.pairs
    truth = truth[truth["measure"] == LEARNED].set_index(["task", "checkpoint"])["truth"]
    tasks: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for key, group in learned.groupby("task", sort=False):
        index = list(zip([key] * len(group), group["checkpoint"], strict=True))
        y = truth.reindex(index).to_numpy(dtype=float)
        keep = np.isfinite(y)
        if keep.sum() >= 2:
            tasks[str(key)] = (group["score"].to_numpy(dtype=float)[keep], y[keep])
    return tasks


def _shortlist_row(
    s: np.ndarray, y: np.ndarray, temperature: float, scale: str, level: float
) -> dict[str, Any]:
    """One task's shortlist at ``level``: its size, whether it holds the true best, p_best of the best."""
    p = probability_best(s, temperature, scale)
    size = shortlist_size(p, level)
    best = int(np.argmax(y))
    return {
        "n_checkpoints": len(s),
        "size": size,
        "covered": bool(best in np.argsort(-p, kind="stable")[:size]),
        "p_true_best": float(p[best]),
    }


def p_best_scale_of(held: HeldOut) -> str:
    """The ``p_best`` scale of the ranker ``held`` evaluates: standardised for the agreement ranker
    (round 8), rank steps for the pairwise ranker."""
    from ckptrank.rankers import AgreementRanker

    return "standardised" if isinstance(held.final, AgreementRanker) else "rank_steps"


def shortlist_table(
    held: HeldOut, temperature: float, scale: str | None = None, level: float = 0.9
) -> pd.DataFrame:
    """The ``level`` shortlist of every task of ``held`` at one given temperature (no refit).

    Parameters
    ----------
    held : HeldOut
        From :func:`held_out_evaluation` or :func:`default_held_out`.
    temperature : float
        A temperature fitted elsewhere (a ranker file's, or :func:`calibrate_shortlist`'s).
    scale : {"rank_steps", "standardised"}, optional
        Default: the scale of ``held``'s ranker (:func:`p_best_scale_of`).
    level : float

    Returns
    -------
    pandas.DataFrame
        Per task: ``task``, ``n_checkpoints``, ``size``, ``covered``, ``p_true_best``.
    """
    scale = p_best_scale_of(held) if scale is None else scale
    rows = [
        {"task": key} | _shortlist_row(s, y, temperature, scale, level)
        for key, (s, y) in _held_out_tasks(held).items()
    ]
    return pd.DataFrame(rows, columns=["task", "n_checkpoints", "size", "covered", "p_true_best"])


def calibrate_shortlist(
    held: HeldOut, level: float = 0.9, *, fit_on: str = "with measures", scale: str | None = None
) -> tuple[float, pd.DataFrame]:
    """Temperature of ``p_best`` (:func:`ckptrank.rankers.probability_best`) and its held-out calibration.

    The ranker's held-out scores are the data. The temperature is fitted, by maximum likelihood of
    the true best, on the tasks where the ranker had at least one measure's score
    (``fit_on="with measures"``, the default: ``ckptrank rank`` always scores the measures, so
    those are the tasks like its use; tasks with descriptors only, such as SFDA's group 1, are
    checked but not fitted on) or on every task (``"all"``). For each task it is fitted on the
    *other* such tasks only, and the task's shortlist (the fewest checkpoints whose ``p_best``
    sums to ``level``) is checked: does it contain the truly best checkpoint?

    Parameters
    ----------
    held : HeldOut
        From :func:`held_out_evaluation`.
    level : float
        Probability the shortlist must hold (0.9: the 90% shortlist).
    fit_on : {"with measures", "all"}
        Falls back to every task when fewer than two tasks have measure scores, or when ``held``
        does not record which tasks had them.
    scale : {"rank_steps", "standardised"}, optional
        The :func:`ckptrank.rankers.probability_best` rule the temperature is fitted for; default
        the scale of ``held``'s ranker (:func:`p_best_scale_of`).

    Returns
    -------
    temperature : float
        Fitted on all the ``fit_on`` tasks (what ships).
    table : pandas.DataFrame
        Per task: ``n_checkpoints``, ``has_measures``, ``temperature`` (fitted without the
        task), ``size``, ``covered``, ``p_true_best``.

    Raises
    ------
    ValueError
        An unknown ``fit_on``, or fewer than three tasks with a truth (a temperature fitted
        without a task needs two others).
    """
    if fit_on not in ("with measures", "all"):
        raise ValueError(f"fit_on must be 'with measures' or 'all', got {fit_on!r}")
    scale = p_best_scale_of(held) if scale is None else scale
    measured = (
        dict(zip(held.chosen["task"], held.chosen["has_measures"], strict=True))
        if "has_measures" in held.chosen
        else {}
    )
    tasks = _held_out_tasks(held)
    if len(tasks) < 3:
        raise ValueError(f"calibrating p_best needs at least 3 held-out tasks with a truth, got {len(tasks)}")
    fitted = [k for k in tasks if fit_on == "all" or measured.get(k, False)]
    if len(fitted) < 2:
        fitted = list(tasks)
    rows = []
    for key, (s, y) in tasks.items():
        t = _fit_temperature([tasks[k] for k in fitted if k != key], scale)
        row = _shortlist_row(s, y, t, scale, level)
        # the calibration table's columns: the shortlist's, with the task's measures and temperature
        rows.append(
            {
                "task": key,
                "n_checkpoints": row.pop("n_checkpoints"),
                "has_measures": bool(measured.get(key, False)),
            }
            | {"temperature": t}
            | row
        )
    return _fit_temperature([tasks[k] for k in fitted], scale), pd.DataFrame(rows)
