"""Leave-one-checkpoint-out cross-model prediction (beta_eff's cross_model_brr mode on a suite)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ckptrank.bench.cross_model import leave_one_out_cross_model
from ckptrank.measures.beff import cross_model_prediction


def _tables(n: int = 6) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    rows, truth = [], []
    for task in ("a", "b"):
        beta = rng.uniform(0.5, 3.0, n)
        early = rng.uniform(0.2, 0.9, n)
        for i in range(n):
            rows.append((task, f"c{i}", "beff", beta[i], 1.0))
            rows.append((task, f"c{i}", "probe_accuracy", early[i], 1.0))
            for seed, noise in enumerate((-0.01, 0.01)):
                truth.append((task, f"c{i}", seed, 0.2 + 0.1 * beta[i] + 0.3 * early[i] + noise))
    scores = pd.DataFrame(rows, columns=["task", "checkpoint", "measure", "score", "seconds"])
    return scores, pd.DataFrame(truth, columns=["task", "checkpoint", "seed", "accuracy"])


def test_each_prediction_comes_from_the_other_checkpoints_only() -> None:
    scores, truth = _tables()
    out = leave_one_out_cross_model(scores, truth, ["beff", "probe_accuracy"], scheme="checkpoint")
    assert len(out) == 12 and set(out["measure"]) == {"beff+probe_accuracy[cross_model_brr]"}
    assert (out["seconds"] == 2.0).all()
    mean = truth.groupby(["task", "checkpoint"])["accuracy"].mean()
    wide = scores.pivot_table(index=["task", "checkpoint"], columns="measure", values="score")
    for row in out.itertuples():
        block = wide.loc[row.task]
        others = block.drop(index=row.checkpoint)
        expected = cross_model_prediction(
            others[["beff", "probe_accuracy"]].to_numpy(),
            mean.loc[row.task].drop(index=row.checkpoint).to_numpy(),
            block.loc[[row.checkpoint], ["beff", "probe_accuracy"]].to_numpy(),
        )[0]
        assert row.score == pytest.approx(expected, rel=1e-12)
        # The relation is exactly linear in the inputs, so held-out predictions hit the truth.
        assert row.score == pytest.approx(mean.loc[(row.task, row.checkpoint)], abs=2e-3)


def test_changing_a_held_out_truth_does_not_change_its_prediction() -> None:
    scores, truth = _tables()

    def run(table: pd.DataFrame) -> pd.DataFrame:
        out = leave_one_out_cross_model(scores, table, ["beff"], scheme="checkpoint")
        return out.set_index(["task", "checkpoint"])

    before = run(truth)
    moved = truth.copy()
    moved.loc[(moved["task"] == "a") & (moved["checkpoint"] == "c0"), "accuracy"] = 0.99
    after = run(moved)
    assert after.loc[("a", "c0"), "score"] == before.loc[("a", "c0"), "score"]
    assert after.loc[("a", "c1"), "score"] != before.loc[("a", "c1"), "score"]


def test_small_tasks_and_bad_inputs() -> None:
    scores, truth = _tables(n=2)
    assert leave_one_out_cross_model(scores, truth, ["beff"]).empty
    with pytest.raises(ValueError, match="no rows for"):
        leave_one_out_cross_model(scores, truth, ["logme"])
    with pytest.raises(ValueError, match="at least one input"):
        leave_one_out_cross_model(scores, truth, [])
    with pytest.raises(ValueError, match="lacks the columns"):
        leave_one_out_cross_model(scores, truth.drop(columns="accuracy"), ["beff"])


def test_task_scheme_fits_once_on_the_other_tasks() -> None:
    scores, truth = _tables()
    out = leave_one_out_cross_model(scores, truth, ["beff", "probe_accuracy"])
    mean = truth.groupby(["task", "checkpoint"])["accuracy"].mean()
    wide = scores.pivot_table(index=["task", "checkpoint"], columns="measure", values="score")
    for task, other in (("a", "b"), ("b", "a")):
        expected = cross_model_prediction(
            wide.loc[other, ["beff", "probe_accuracy"]].to_numpy(),
            mean.loc[other].to_numpy(),
            wide.loc[task, ["beff", "probe_accuracy"]].to_numpy(),
        )
        got = out[out["task"] == task].set_index("checkpoint").loc[wide.loc[task].index, "score"]
        np.testing.assert_allclose(got.to_numpy(), expected, rtol=1e-12)
        # Same linear law in both tasks: the other task's fit predicts this one's truth.
        np.testing.assert_allclose(got.to_numpy(), mean.loc[task].to_numpy(), atol=3e-3)
    one_task = leave_one_out_cross_model(scores[scores["task"] == "a"], truth, ["beff"])
    assert one_task.empty  # no other task to learn from
    with pytest.raises(ValueError, match="unknown scheme"):
        leave_one_out_cross_model(scores, truth, ["beff"], scheme="fold")


def test_checkpoint_scheme_shows_the_shrinkage_artefact() -> None:
    # Scores unrelated to the truth: the fit shrinks to the intercept and each held-out prediction
    # is the mean of the others, which ranks the checkpoints in exactly the reverse order.
    from scipy.stats import weightedtau

    rng = np.random.default_rng(1)
    n = 8
    scores = pd.DataFrame(
        {
            "task": "a",
            "checkpoint": [f"c{i}" for i in range(n)],
            "measure": "beff",
            "score": rng.normal(size=n),
        }
    )
    truth = pd.DataFrame(
        {"task": "a", "checkpoint": scores["checkpoint"], "accuracy": rng.uniform(0.5, 0.9, n)}
    )
    out = leave_one_out_cross_model(scores, truth, ["beff"], scheme="checkpoint")
    assert weightedtau(out["score"], truth["accuracy"]).statistic < -0.9
