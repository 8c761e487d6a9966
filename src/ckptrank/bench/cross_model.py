"""Cross-model prediction of fine-tuned accuracy from early-training scores, evaluated held-out.

The third way of turning ``beta_eff`` into a ranking (ALGORITHMS.md 2.13.3, ``cross_model_brr``)
needs reference checkpoints whose final accuracy is known. On a benchmark suite every checkpoint
has one, so the evaluation holds references out:

* ``scheme="task"`` (default): the checkpoints of each task are predicted by one Bayesian ridge
  fitted on the (early scores, ground truth) pairs of all *other* tasks, so every candidate of a
  task is ranked by the same fit (what a user does with references from earlier projects).
* ``scheme="checkpoint"``: each checkpoint is predicted from the other checkpoints of its own task.
  Beware: when the fit shrinks to the intercept (a weak relation), each prediction is close to the
  mean of the *other* checkpoints' truth, which falls as the held-out truth rises, so the ranking
  tends to weighted tau -1 whatever the scores. It is kept to show that artefact, not to rank.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from ckptrank.measures.beff import cross_model_prediction

__all__ = ["leave_one_out_cross_model"]


def leave_one_out_cross_model(
    scores: pd.DataFrame,
    ground_truth: pd.DataFrame,
    inputs: Sequence[str],
    *,
    name: str | None = None,
    scheme: Literal["task", "checkpoint"] = "task",
) -> pd.DataFrame:
    """Held-out Bayesian-ridge predictions of the ground truth from early scores.

    Parameters
    ----------
    scores : pandas.DataFrame
        Long table ``task, checkpoint, measure, score`` (and optionally ``seconds``) holding the
        measures named in ``inputs``.
    ground_truth : pandas.DataFrame
        Long table ``task, checkpoint, accuracy`` (any number of seeds: their mean is used).
    inputs : sequence of str
        Measures whose scores are the regression's input columns, e.g. ``["beff"]`` or
        ``["beff", "probe_accuracy"]``.
    name : str, optional
        Measure name of the predictions (default ``"+".join(inputs) + "[cross_model_brr]"``).
    scheme : {"task", "checkpoint"}, default="task"
        Hold out a whole task (fit on the other tasks) or one checkpoint (fit on the other
        checkpoints of its task); see the module docstring for the bias of the latter.

    Returns
    -------
    pandas.DataFrame
        Long table ``task, checkpoint, measure, score, seconds``: each checkpoint that has every
        input score and a ground truth gets the prediction of a
        :func:`~ckptrank.measures.beff.cross_model_prediction` fitted on the held-out references;
        ``seconds`` is the sum of its inputs' (the regression itself is free). Tasks with fewer
        than 3 such checkpoints (or, for ``scheme="task"``, no other task) are left out.

    Raises
    ------
    ValueError
        Missing columns, no inputs, or an input measure absent from ``scores``.
    """
    if not inputs:
        raise ValueError("give at least one input measure")
    if scheme not in ("task", "checkpoint"):
        raise ValueError(f"unknown scheme {scheme!r}; use 'task' or 'checkpoint'")
    for table, what, needed in (
        (scores, "scores", {"task", "checkpoint", "measure", "score"}),
        (ground_truth, "ground_truth", {"task", "checkpoint", "accuracy"}),
    ):
        missing = needed - set(table.columns)
        if missing:
            raise ValueError(f"{what} lacks the columns {sorted(missing)}")
    absent = [m for m in inputs if m not in set(scores["measure"])]
    if absent:
        raise ValueError(f"scores have no rows for {absent}; score those measures first")
    label = name or "+".join(inputs) + "[cross_model_brr]"
    chosen = scores[scores["measure"].isin(inputs)]
    wide = chosen.pivot_table(
        index=["task", "checkpoint"], columns="measure", values="score", aggfunc="first"
    )
    wide = wide.reindex(columns=list(inputs))
    seconds = (
        chosen.pivot_table(index=["task", "checkpoint"], values="seconds", aggfunc="sum")["seconds"]
        if "seconds" in chosen.columns
        else pd.Series(np.nan, index=wide.index)
    )
    truth = ground_truth.groupby(["task", "checkpoint"])["accuracy"].mean()
    wide = wide.join(truth, how="inner").dropna()
    rows = []
    tasks = wide.index.get_level_values("task")
    for task, block in wide.groupby(level="task", sort=False):
        if len(block) < 3:
            continue
        X = block[list(inputs)].to_numpy(dtype=np.float64)
        y = block["accuracy"].to_numpy(dtype=np.float64)
        if scheme == "task":
            references = wide[tasks != task]
            if len(references) < 2:
                continue
            shared = cross_model_prediction(
                references[list(inputs)].to_numpy(dtype=np.float64),
                references["accuracy"].to_numpy(dtype=np.float64),
                X,
            )
        for i, (_, checkpoint) in enumerate(block.index):
            if scheme == "task":
                predicted = shared[i]
            else:
                others = np.arange(len(block)) != i
                predicted = cross_model_prediction(X[others], y[others], X[i : i + 1])[0]
            rows.append(
                {
                    "task": task,
                    "checkpoint": checkpoint,
                    "measure": label,
                    "score": float(predicted),
                    "seconds": float(seconds.get((task, checkpoint), np.nan)),
                }
            )
    return pd.DataFrame(rows, columns=["task", "checkpoint", "measure", "score", "seconds"])
