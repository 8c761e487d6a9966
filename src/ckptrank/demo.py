"""The built-in demo: rank real offline checkpoints on a real built-in task, and explain the table.

Two tasks are built in. ``"image"`` (the default) ranks the three ImageNet EfficientNet-Lite
checkpoints, two intermediate layers of Lite0 and a random-initialised Lite0 (a control that
every sensible measure should put last) on Fashion-MNIST. ``"text"`` ranks the
all-MiniLM-L6-v2 sentence encoder, two of its inner layers, its token-embedding layer and GloVe
word vectors on WordNet noun supersenses. Both run offline on a CPU in a few minutes with a cold
feature cache, and in seconds from a warm one.
"""

from __future__ import annotations

import shutil
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .ranking import rank

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEMO_TASKS", "DemoResult", "DemoTask", "explain", "run_demo"]


@dataclass(frozen=True)
class DemoTask:
    """A built-in demo task: the data, the checkpoints and what each checkpoint is."""

    name: str
    data: str
    per_class: int
    models: tuple[str, ...]
    roles: dict[str, str]
    task_description: str
    example: str = ""
    control: str | None = None
    measures: tuple[str, ...] | None = None
    measure_note: str = ""


_RANDOM_LITE0 = "timm:efficientnet_lite0?init=random&size=112"

DEMO_TASKS: dict[str, DemoTask] = {
    "image": DemoTask(
        name="image",
        data="builtin:fashion-mnist",
        per_class=40,
        models=(
            "efficientnet-lite0",
            "efficientnet-lite1",
            "efficientnet-lite2",
            "efficientnet-lite0@_blocks.10",
            "efficientnet-lite0@_blocks.4",
            _RANDOM_LITE0,
        ),
        roles={
            "efficientnet-lite0": "ImageNet-1k EfficientNet-Lite0, final pooled features (1280-d)",
            "efficientnet-lite1": "ImageNet-1k EfficientNet-Lite1, final pooled features (1280-d)",
            "efficientnet-lite2": "ImageNet-1k EfficientNet-Lite2, final pooled features (1280-d)",
            "efficientnet-lite0@_blocks.10": "Lite0 cut after block 10 of 16 (mid-level features, 112-d)",
            "efficientnet-lite0@_blocks.4": "Lite0 cut after block 4 of 16 (low-level features, 40-d)",
            _RANDOM_LITE0: "the Lite0 architecture with random weights (control: no pre-training)",
        },
        task_description="Fashion-MNIST (10 kinds of clothing, 28x28 grey images, upscaled to 112 px)",
        example="ckptrank rank --data ./images_by_class --models efficientnet-lite0,timm:NAME?weights=FILE",
        control=_RANDOM_LITE0,
        measure_note="These are the default ranker's measures, as ckptrank rank uses them. A measure that "
        "saturates on a checkpoint (H-score with more feature dimensions than samples) or cannot score it "
        "(LEEP and NCE without a head) is read as missing for it, and the notes say so.",
    ),
    "text": DemoTask(
        name="text",
        data="builtin:wordnet-supersense",
        per_class=40,
        models=(
            "all-minilm-l6-v2",
            "all-minilm-l6-v2@encoder.layer.3",
            "all-minilm-l6-v2@encoder.layer.1",
            "all-minilm-l6-v2@embeddings",
            "glove-6b-50d",
        ),
        roles={
            "all-minilm-l6-v2": "all-MiniLM-L6-v2 sentence encoder, final embedding (384-d)",
            "all-minilm-l6-v2@encoder.layer.3": "the same encoder cut after layer 4 of 6",
            "all-minilm-l6-v2@encoder.layer.1": "the same encoder cut after layer 2 of 6",
            "all-minilm-l6-v2@embeddings": "its token embeddings only, mean-pooled (no context)",
            "glove-6b-50d": "GloVe 6B 50-d word vectors, averaged over the words",
        },
        task_description="WordNet noun glosses labelled with their supersense (26 classes)",
        measure_note="These are the default ranker's measures, as ckptrank rank uses them. None of these "
        "encoders has a classification head, so LEEP and NCE are missing for all of them and the ranker "
        "leans on the other measures and on each checkpoint's size.",
        example="ckptrank rank --data texts.csv --models all-minilm-l6-v2,glove-6b-50d,st:/path/to/model",
    ),
}


@dataclass
class DemoResult:
    """What :func:`run_demo` did."""

    task: DemoTask
    frame: pd.DataFrame
    seconds: float
    check: pd.DataFrame | None = None
    check_seconds: float = 0.0


def run_demo(
    task: str = "image",
    *,
    per_class: int | None = None,
    cache_dir: str | Path | None = None,
    progress: Any = None,
    seed: int = 0,
    check: bool = False,
    check_per_class: int = 30,
) -> DemoResult:
    """Rank the built-in checkpoints of a demo task (see :data:`DEMO_TASKS`).

    Parameters
    ----------
    task : {"image", "text"}
    per_class : int, optional
        Training samples per class (default: the task's, 40).
    cache_dir : str or path, optional
        Feature cache (default: ckptrank's cache, so a second run is fast).
    progress : bool or ProgressLines, optional
        Extraction progress: bars (default: when stderr is a terminal), ``False`` for none, or a
        :class:`~ckptrank.engine.progress.ProgressLines` for one line per checkpoint (logs).
    seed : int
        Subsample seed.
    check : bool
        Also run :func:`reality_check` (held-out linear-probe accuracy; about doubles the time).
    check_per_class : int
        Test samples per class for the reality check.

    Raises
    ------
    ValueError
        Unknown task.
    """
    if task not in DEMO_TASKS:
        raise ValueError(f"unknown demo task {task!r}; choose one of {', '.join(DEMO_TASKS)}")
    spec = DEMO_TASKS[task]
    start = time.perf_counter()
    frame = rank(
        spec.data,
        list(spec.models),
        measures=list(spec.measures) if spec.measures else None,
        per_class=per_class or spec.per_class,
        seed=seed,
        cache_dir=cache_dir,
        progress=progress,
    )
    frame.attrs["config"]["demo_task"] = spec.name
    frame.attrs["config"]["roles"] = dict(spec.roles)
    result = DemoResult(task=spec, frame=frame, seconds=time.perf_counter() - start)
    if check:
        start = time.perf_counter()
        result.check = reality_check(
            result,
            per_class=per_class or spec.per_class,
            test_per_class=check_per_class,
            seed=seed,
            cache_dir=cache_dir,
            progress=progress,
        )
        result.check_seconds = time.perf_counter() - start
    return result


def reality_check(
    result: DemoResult,
    *,
    per_class: int,
    test_per_class: int = 30,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    progress: Any = None,
) -> pd.DataFrame:
    """Held-out linear-probe accuracy of every ranked checkpoint: a cheap stand-in for fine-tuning.

    A multinomial logistic regression (standardised features, ``C=0.1``) is trained on the same
    training samples the measures scored and tested on ``test_per_class`` samples per class of the
    test split. Returns one row per checkpoint in the ranking's order with ``rank``,
    ``checkpoint``, ``probe_accuracy`` and ``probe_rank``; ``attrs["kendall_tau"]`` is Kendall's
    tau-b between the ranking's ``rank`` column (what the user sees) and the probe accuracies (1 = same
    order).
    """
    import pandas as pd
    from scipy.stats import kendalltau
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ckptrank.adapters import load_checkpoint
    from ckptrank.data import load_dataset
    from ckptrank.engine import FeatureCache, extract

    from .combine import measure_ranks

    data = result.task.data
    train = load_dataset(data, split="train", per_class=per_class, seed=seed)
    test = load_dataset(data, split="test", per_class=test_per_class, seed=seed + 1)
    cache = FeatureCache(cache_dir)
    ok = result.frame[result.frame["status"] == "ok"]
    rows = []
    for row in ok.itertuples():
        checkpoint = load_checkpoint(row.checkpoint)
        fit = extract(checkpoint, train, cache=cache, progress=progress)
        held_out = extract(checkpoint, test, cache=cache, progress=progress)
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
        probe.fit(fit.features, fit.labels)
        accuracy = float(probe.score(held_out.features, held_out.labels))
        rows.append(
            {
                "rank": row.rank,
                "checkpoint": row.checkpoint,
                "consensus_rank": row.consensus_rank,
                "probe_accuracy": accuracy,
            }
        )
    check = pd.DataFrame(rows)
    check["probe_rank"] = measure_ranks(check["probe_accuracy"].to_numpy(dtype=float), higher_is_better=True)
    tau = kendalltau(-check["rank"].to_numpy(dtype=float), check["probe_accuracy"].to_numpy())
    check.attrs["kendall_tau"] = float(tau.statistic) if np.isfinite(tau.statistic) else None
    check.attrs["n_test"] = len(test)
    check.attrs["n_train"] = len(train)
    return check


def introduction(
    task: str = "image", per_class: int | None = None, *, check: bool = False, width: int | None = None
) -> str:
    """What the demo is about to do (printed before it runs), wrapped to ``width`` columns."""
    spec = DEMO_TASKS[task]
    width = width or _text_width()
    test = (
        "the measures never see the test split; the reality check at the end uses it"
        if check
        else "the test split is never touched"
    )
    lines = [
        _wrap(
            f"ckptrank demo: which of {len(spec.models)} real pre-trained checkpoints would transfer best to "
            f"{spec.task_description}?",
            width,
        ),
        _wrap(
            f"Target data: {spec.data}, {per_class or spec.per_class} training samples per class ({test}).",
            width,
        ),
        "Candidates:",
    ]
    name_width = max(len(model) for model in spec.models)
    for model in spec.models:
        role = spec.roles.get(model, "")
        first = f"  {model:<{name_width}}  "
        if len(first) + 30 > width:  # too narrow for the two columns: the role goes below the name
            lines.append(f"  {model}")
            lines.append(_wrap(role, width, "      ", "      "))
        else:
            lines.append(_wrap(role, width, first, " " * len(first)))
    lines.append(
        _wrap(
            "Each checkpoint runs once over the data (features are cached, a second run takes seconds), "
            "then each measure scores the features.",
            width,
        )
    )
    return "\n".join(lines)


def _text_width() -> int:
    """Width of the demo's prose: the terminal's (or ``$COLUMNS``), 100 when not a terminal; 60 to 110."""
    return max(60, min(shutil.get_terminal_size((100, 24)).columns, 110))


def _wrap(text: str, width: int, first: str = "", rest: str | None = None) -> str:
    return textwrap.fill(
        text,
        width=width,
        initial_indent=first,
        subsequent_indent=" " * len(first) if rest is None else rest,
        break_on_hyphens=False,
        break_long_words=False,
    )


def _control_sentence(ok: pd.DataFrame, control: str) -> str:
    """Where the random-initialised control landed, ties included."""
    ranks = ok.set_index("checkpoint")["rank"].astype(float)
    mine = ranks[control]
    tied = [str(spec) for spec, r in ranks.items() if r == mine and spec != control]
    below = [str(spec) for spec, r in ranks.items() if r > mine]
    text = f"the random-initialised control ranked {int(mine)} of {len(ranks)}"
    if tied:
        text += f", tied with {', '.join(tied)}"
    if below:
        text += f"; ranked below it, {', '.join(below)} {'is' if len(below) == 1 else 'are'} predicted to "
        text += "gain nothing from pre-training on this task"
    elif not tied:
        text += ": every pre-trained checkpoint is predicted to beat random weights"
    else:
        text += ": predicted no better than random weights"
    return text + "."


def explain(result: DemoResult, width: int | None = None) -> str:
    """How to read the demo's table, with what this run found (wrapped to ``width`` columns)."""
    from ckptrank.measures import get_measure

    width = width or _text_width()
    frame = result.frame
    names = list(frame.attrs.get("measures", []))
    consensus = list(frame.attrs.get("consensus_measures", names))
    ok = frame[frame["status"] == "ok"].reset_index(drop=True)
    bullet = "  - "
    out = ["How to read the table:"]
    out.append(
        _wrap(
            "Each measure column is a transferability score computed from the checkpoint's features on "
            "the labelled training data. For every measure, HIGHER = predicted to transfer better. Scales "
            "differ: compare values within a column, never across columns.",
            width,
            bullet,
        )
    )
    for name in names:
        spec = get_measure(name)
        needs = " Needs the checkpoint's own classification head." if "source_probs" in spec.requires else ""
        out.append(_wrap(f"{name}: {spec.summary}{needs}", width, "      ", "        "))
    if result.task.measure_note:
        out.append(_wrap(result.task.measure_note, width, "      ", "      "))
    if "p_best" in frame and frame["p_best"].notna().any():
        out.append(
            _wrap(
                "rank = the default ranker: it weighs these measures and the checkpoint's size by how "
                "well each agrees with the others on your data (a note lists the weights), so size counts "
                f"only where the measures bear it out ({frame.attrs.get('ranker', '')}). p(best) = its "
                "probability that the checkpoint fine-tunes best; ★ marks the shortlist holding the best "
                "with 90% probability.",
                width,
                bullet,
            )
        )
    else:
        out.append(
            _wrap(
                f"consensus = the mean of each checkpoint's ranks under {', '.join(consensus)} (1 = best; "
                "ties share the average rank); the rank column orders it. A measure that could not score "
                "every checkpoint is shown but left out of the consensus.",
                width,
                bullet,
            )
        )
    out.append(
        _wrap(
            "params and src acc are target-blind baselines: the biggest model, or the best stated source "
            "accuracy, is what you would pick without looking at your data (#n = the rank each implies). "
            "Where the ranking disagrees with them, the measures saw something in your data that they "
            "cannot.",
            width,
            bullet,
        )
    )
    out.append(
        _wrap(
            "time s = seconds spent on the checkpoint (loading, feature extraction, scoring); a re-run reads "
            "the features from the cache.",
            width,
            bullet,
        )
    )
    if len(ok):
        out.append("What this run found:")
        top = ok.loc[0, "checkpoint"]
        out.append(
            _wrap(f"predicted best: {top} ({result.task.roles.get(top, 'see above')}).", width, bullet)
        )
        control = result.task.control
        if control is not None and control in set(ok["checkpoint"]):
            out.append(_wrap(_control_sentence(ok, control), width, bullet))
    out.append(
        _wrap(
            "A rank is a PREDICTION of which checkpoint will fine-tune best, made from one forward pass over "
            "your data; it is not a fine-tuning result. Fine-tune the top two or three to confirm.",
            width,
        )
    )
    out.append("On your own data:")
    out.append(f"  {result.task.example}")
    out.append(f"Demo finished in {result.seconds:.0f} s.")
    return "\n".join(out)
