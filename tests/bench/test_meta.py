"""Meta-dataset and held-out evaluation of the rankers (pairwise and agreement), on synthetic suites."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import weightedtau

from ckptrank.bench.meta import (
    BEST_SINGLE,
    DEFAULT_DESIGN,
    LEARNED,
    PAIRWISE,
    Design,
    _fit,
    _inner_folds,
    _task_tables,
    default_held_out,
    fit_default_ranker,
    held_out_evaluation,
    meta_table,
)
from ckptrank.bench.suite import Suite, Task, register_suite, unregister_suite
from ckptrank.rankers import HAS_HEAD, AgreementRanker, PairwiseRanker

N_CKPT = 8


def _suite(name: str, tasks: list[str], seed: int) -> tuple[Suite, pd.DataFrame]:
    """Truth = quality; logme = quality + noise; nce = noise; params = quality + large noise."""
    rng = np.random.default_rng(seed)
    names = [f"c{i}" for i in range(N_CKPT)]
    truth_rows, score_rows = [], []
    params = {}
    for task in tasks:
        quality = rng.normal(size=N_CKPT)
        for i, c in enumerate(names):
            for s in range(2):
                truth_rows.append((task, c, s, 70 + 5 * quality[i] + 0.1 * rng.normal()))
            score_rows.append((task, c, "logme", quality[i] + 0.3 * rng.normal()))
            score_rows.append((task, c, "nce", rng.normal()))
    for c in names:
        params[c] = 10 ** (5 + rng.uniform())
    suite = Suite(
        name=name,
        tasks={t: Task() for t in tasks},
        checkpoints=names,
        ground_truth=pd.DataFrame(truth_rows, columns=["task", "checkpoint", "seed", "accuracy"]),
        baselines=pd.DataFrame({"num_parameters": params}),
    )
    scores = pd.DataFrame(score_rows, columns=["task", "checkpoint", "measure", "score"])
    return suite, scores


@pytest.fixture()
def suites():
    made = [_suite("test:meta-a", ["t1", "t2", "t3", "t4"], 1), _suite("test:meta-b", ["u1", "u2", "u3"], 2)]
    for suite, _ in made:
        register_suite(suite.name, lambda suite=suite: suite)
    yield made
    for suite, _ in made:
        unregister_suite(suite.name)


def test_meta_table_rows_and_truth(suites):
    rows, truth = meta_table([s.name for s, _ in suites], scores={s.name: sc for s, sc in suites})
    assert len(rows) == 7 * N_CKPT and set(rows["suite"]) == {"test:meta-a", "test:meta-b"}
    assert rows["key"].iloc[0] == "test:meta-a/t1"
    assert {"logme", "nce", "log_parameters", "has_head", "truth", "control"} <= set(rows.columns)
    first = rows[(rows["key"] == "test:meta-a/t1") & (rows["checkpoint"] == "c0")].iloc[0]
    seeds = truth[(truth["task"] == "test:meta-a/t1") & (truth["checkpoint"] == "c0")]["accuracy"]
    assert first["truth"] == pytest.approx(seeds.mean()) and len(seeds) == 2


def test_meta_table_descriptors_source_accuracy_and_saturation():
    """Stated source accuracy comes with its number of classes; ties at a measure's top are flagged."""
    names = ["a", "b", "c"]
    suite = Suite(
        name="test:meta-descriptors",
        tasks={"t": Task()},
        checkpoints=names,
        ground_truth=pd.DataFrame(
            [("t", c, 0, acc) for c, acc in zip(names, [70.0, 80.0, 90.0], strict=True)],
            columns=["task", "checkpoint", "seed", "accuracy"],
        ),
        baselines=pd.DataFrame(
            {
                "num_parameters": [1e5, 2e5, 3e5],
                "source_accuracy": [75.0, np.nan, 91.0],
                "source_classes": [1000, 0, 5],
            },
            index=names,
        ),
    )
    # H-score declares a maximum: a and c tie at the top (saturated); LogME's equal values are not flagged
    scores = pd.DataFrame(
        [("t", "a", "hscore", 9.0), ("t", "b", "hscore", 7.5), ("t", "c", "hscore", 9.0)]
        + [("t", c, "logme", 0.5) for c in names],
        columns=["task", "checkpoint", "measure", "score"],
    )
    register_suite(suite.name, lambda: suite)
    try:
        rows, _ = meta_table([suite.name], scores={suite.name: scores})
    finally:
        unregister_suite(suite.name)
    rows = rows.set_index("checkpoint")
    assert rows["source_accuracy"].tolist()[0] == 75.0 and np.isnan(rows.loc["b", "source_accuracy"])
    assert rows.loc["a", "source_classes"] == 1000 and rows.loc["c", "source_classes"] == 5
    assert np.isnan(rows.loc["b", "source_classes"])  # no accuracy stated: no class count either
    assert rows["saturated"].tolist() == ["hscore", "", "hscore"]


def test_meta_table_takes_stable_transfers_published_scores_under_ckptranks_names():
    """Four published measures (signed: higher predicts better), every Keras checkpoint has a head
    (LEEP scored it), and the element-wise "hscore" of the source stays out."""
    rows, truth = meta_table(["published:stable-transfer"])
    assert len(rows) == 9 * 19 and set(truth["task"].str.split("/").str[0]) == {"published:stable-transfer"}
    assert {"gbc", "leep", "nleep", "logme"} <= set(rows.columns) and "hscore" not in rows.columns
    assert rows[["gbc", "leep", "nleep", "logme"]].notna().all().all()
    assert (rows["has_head"] == 1.0).all()
    first = rows[(rows["task"] == "sun397") & (rows["checkpoint"] == "resnet50")].iloc[0]
    assert first["logme"] == 1.7732532024383545 and first["gbc"] == -277.8551330566406
    assert first["truth"] == 0.6595402359962463  # the fine-tuned backbone's test accuracy


def test_held_out_ranker_learns_the_signal_and_never_sees_the_held_out_task(suites):
    rows, truth = meta_table([s.name for s, _ in suites], scores={s.name: sc for s, sc in suites})
    held = held_out_evaluation(rows, truth, features=["logme", "nce", "log_parameters"], n_bootstrap=200)
    summary = held.evaluation.summary
    assert summary.loc[LEARNED, "n_tasks"] == 7
    assert summary.loc[LEARNED, "weighted_tau"] > 0.6 > summary.loc["num_parameters", "weighted_tau"]
    assert (held.chosen["best_single"] == "logme").all()
    # changing the held-out task's truth cannot change its held-out prediction
    changed = rows.copy()
    target = changed["key"] == "test:meta-b/u2"
    changed.loc[target, "truth"] = -changed.loc[target, "truth"]
    again = held_out_evaluation(changed, truth, features=["logme", "nce", "log_parameters"], n_bootstrap=0)
    pick = (held.scores["task"] == "test:meta-b/u2") & (held.scores["measure"] == LEARNED)
    pick2 = (again.scores["task"] == "test:meta-b/u2") & (again.scores["measure"] == LEARNED)
    np.testing.assert_allclose(held.scores.loc[pick, "score"], again.scores.loc[pick2, "score"])
    # ...while the predictions of the other tasks, fitted on it, do change
    other = (held.scores["task"] == "test:meta-a/t1") & (held.scores["measure"] == LEARNED)
    other2 = (again.scores["task"] == "test:meta-a/t1") & (again.scores["measure"] == LEARNED)
    assert not np.allclose(held.scores.loc[other, "score"], again.scores.loc[other2, "score"])
    assert BEST_SINGLE in set(held.scores["measure"])


def test_leave_one_suite_out_and_bad_scheme(suites):
    rows, truth = meta_table([s.name for s, _ in suites], scores={s.name: sc for s, sc in suites})
    held = held_out_evaluation(rows, truth, features=["logme", "nce"], scheme="suite", n_bootstrap=0)
    assert held.evaluation.track_names == ["test:meta-a", "test:meta-b"]
    with pytest.raises(ValueError, match="scheme must be 'task' or 'suite'"):
        held_out_evaluation(rows, truth, scheme="checkpoint")


def test_shortlist_calibration_fits_the_temperature_without_the_task(suites):
    from ckptrank.bench.meta import calibrate_shortlist, shortlist_size

    assert shortlist_size(np.array([0.5, 0.3, 0.15, 0.05])) == 3
    assert shortlist_size(np.array([0.95, 0.05])) == 1
    rows, truth = meta_table([s.name for s, _ in suites], scores={s.name: sc for s, sc in suites})
    held = held_out_evaluation(rows, truth, features=["logme", "nce"], n_bootstrap=0)
    temperature, table = calibrate_shortlist(held)
    assert temperature > 0 and len(table) == 7
    assert (table["size"] >= 1).all() and (table["size"] <= N_CKPT).all()
    assert table["temperature"].nunique() > 1  # each task's temperature is fitted without it
    assert table["covered"].mean() >= 0.5


def test_a_held_out_suite_is_evaluated_but_never_fitted_on(suites):
    """train_suites: suite b's tasks are ranked by the ranker fitted on suite a alone, and their truth
    changes neither the final ranker nor any prediction; the temperature uses every held-out task."""
    from ckptrank.bench.meta import calibrate_shortlist, fit_default_ranker

    features = ["logme", "nce", "log_parameters"]
    rows, truth = meta_table([s.name for s, _ in suites], scores={s.name: sc for s, sc in suites})
    held = held_out_evaluation(rows, truth, features=features, n_bootstrap=0, train_suites=["test:meta-a"])
    assert held.evaluation.summary.loc[LEARNED, "n_tasks"] == 7
    only_a = rows[rows["suite"] == "test:meta-a"]
    reference = held_out_evaluation(only_a, truth, features=features, n_bootstrap=0)
    np.testing.assert_allclose(held.final.weights, reference.final.weights)
    # every task of b is predicted by the ranker fitted on all of a, which is the final one
    b1 = held.scores[(held.scores["task"] == "test:meta-b/u1") & (held.scores["measure"] == LEARNED)]
    X = rows[rows["key"] == "test:meta-b/u1"]
    np.testing.assert_allclose(b1["score"], held.final.score_table({f: X[f].to_numpy() for f in features}))
    changed = rows.copy()
    changed.loc[changed["suite"] == "test:meta-b", "truth"] *= -1
    again = held_out_evaluation(
        changed, truth, features=features, n_bootstrap=0, train_suites=["test:meta-a"]
    )
    learned = held.scores["measure"] == LEARNED
    np.testing.assert_allclose(
        held.scores.loc[learned, "score"], again.scores.loc[again.scores["measure"] == LEARNED, "score"]
    )
    _, table = calibrate_shortlist(held)
    assert len(table) == 7
    with pytest.raises(ValueError, match="leaves no training task"):
        held_out_evaluation(rows, truth, features=features, scheme="suite", train_suites=["test:meta-a"])
    with pytest.raises(ValueError, match="no task of the training suites"):
        held_out_evaluation(rows, truth, features=features, train_suites=["test:nowhere"])
    third, third_scores = _suite("test:meta-c", ["v1", "v2"], 3)
    register_suite(third.name, lambda: third)
    try:
        names = [s.name for s, _ in suites] + [third.name]
        scores = {s.name: sc for s, sc in suites} | {third.name: third_scores}
        rows, truth = meta_table(names, scores=scores)
    finally:
        unregister_suite(third.name)
    ranker, _, by_suite = fit_default_ranker(
        rows,
        truth,
        features=features,
        n_bootstrap=0,
        train_suites=["test:meta-a", "test:meta-c"],
        design=Design(),
    )
    assert ranker.info["fitted_on"]["suites"] == ["test:meta-a", "test:meta-c"]
    assert ranker.info["held_out_only"] == ["test:meta-b"]
    assert ranker.info["fitted_on"]["n_pairs"] == 6 * N_CKPT and ranker.info["p_best"]["n_tasks"] == 9
    assert by_suite.evaluation.summary.loc[LEARNED, "n_tasks"] == 9


def test_the_temperature_is_fitted_on_tasks_with_measure_scores_and_checks_the_others(suites):
    """A suite with descriptors only (no measure scores, like SFDA's group 1) is checked, not fitted on."""
    from ckptrank.bench.meta import _fit_temperature, calibrate_shortlist

    blind, _ = _suite("test:meta-blind", ["w1", "w2", "w3"], 4)
    register_suite(blind.name, lambda: blind)
    try:
        names = [s.name for s, _ in suites] + [blind.name]
        rows, truth = meta_table(names, scores={s.name: sc for s, sc in suites})
    finally:
        unregister_suite(blind.name)
    features = ["logme", "nce", "log_parameters"]
    held = held_out_evaluation(rows, truth, features=features, n_bootstrap=0)
    has = dict(zip(held.chosen["task"], held.chosen["has_measures"], strict=True))
    assert [k for k, v in has.items() if not v] == [
        "test:meta-blind/w1",
        "test:meta-blind/w2",
        "test:meta-blind/w3",
    ]
    temperature, table = calibrate_shortlist(held)
    every, _ = calibrate_shortlist(held, fit_on="all")
    assert len(table) == 10 and table["has_measures"].sum() == 7
    # by hand: the maximum-likelihood temperature of the 7 tasks with measures only
    learned = held.scores[held.scores["measure"] == LEARNED]
    pairs = held.evaluation.pairs.set_index(["task", "checkpoint", "measure"])["truth"]
    data = []
    for key, group in learned.groupby("task", sort=False):
        if has[key]:
            y = [pairs[(key, c, LEARNED)] for c in group["checkpoint"]]
            data.append((group["score"].to_numpy(), np.asarray(y)))
    assert temperature == pytest.approx(_fit_temperature(data)) and temperature != pytest.approx(every)
    with pytest.raises(ValueError, match="fit_on must be"):
        calibrate_shortlist(held, fit_on="some")


def test_suite_balance_is_each_suites_tasks_repeated_to_equal_totals(suites):
    """Suite a has 4 tasks, b 3: balancing the suites equals giving a's tasks 3 copies and b's 4."""
    rows, _ = meta_table([s.name for s, _ in suites], scores={s.name: sc for s, sc in suites})
    features = ["logme", "nce", "log_parameters"]
    tables = _task_tables(rows, features)
    keys = list(tables)
    balanced = _fit(tables, keys, features, 1.0, Design(balance="suite"))
    copies = [(tables[k][1], tables[k][0]["truth"].to_numpy(dtype=float)) for k in keys]
    repeated = [
        task for key, task in zip(keys, copies, strict=True) for _ in range(3 if "meta-a" in key else 4)
    ]
    # total weight 7 (one per task) against 24 (one per copy): the same loss with C scaled by 7 / 24
    reference = PairwiseRanker(features=features, C=7 / 24).fit(repeated)
    np.testing.assert_allclose(balanced.weights, reference.weights, atol=1e-4)
    assert not np.allclose(balanced.weights, _fit(tables, keys, features, 1.0).weights, atol=1e-3)


def test_inner_folds_hold_out_a_suite_or_a_task(suites):
    rows, _ = meta_table([s.name for s, _ in suites], scores={s.name: sc for s, sc in suites})
    tables = _task_tables(rows, ["logme"])
    keys = list(tables)
    assert _inner_folds(tables, keys, Design(balance="suite")) == [keys[:4], keys[4:]]
    assert _inner_folds(tables, keys, Design()) == [[k] for k in keys]
    # a single training suite cannot be held out: one task at a time
    assert _inner_folds(tables, keys[:4], Design(balance="suite")) == [[k] for k in keys[:4]]
    with pytest.raises(ValueError, match="balance must be 'task' or 'suite', got 'checkpoint'"):
        Design(balance="checkpoint")
    with pytest.raises(ValueError, match="balance and nonnegative apply to the pairwise ranker only"):
        Design(kind="agreement", nonnegative=True)
    with pytest.raises(ValueError, match="kind must be 'pairwise' or 'agreement', got 'forest'"):
        Design(kind="forest")


def test_a_suite_balanced_non_negative_design_is_evaluated_and_recorded(suites):
    rows, truth = meta_table([s.name for s, _ in suites], scores={s.name: sc for s, sc in suites})
    features = ["logme", "nce", "log_parameters", HAS_HEAD]
    design = Design(balance="suite", nonnegative=True)
    ranker, by_task, _ = fit_default_ranker(rows, truth, features=features, n_bootstrap=0, design=design)
    assert ranker.nonnegative == ["logme", "nce", "log_parameters"]
    weights = by_task.chosen[[f"w:{f}" for f in ranker.nonnegative]].to_numpy()
    assert (weights >= 0).all() and (ranker.weights[:3] >= 0).all()
    assert by_task.evaluation.summary.loc[LEARNED, "weighted_tau"] > 0.6
    assert ranker.info["design"] == {"kind": "pairwise", "balance": "suite", "nonnegative": True}
    assert ranker.info["regularisation"].startswith("C chosen by leave-one-suite-out")


def test_the_agreement_ranker_is_held_out_everywhere_and_compared_with_the_pairwise_ranker(suites):
    rows, truth = meta_table([s.name for s, _ in suites], scores={s.name: sc for s, sc in suites})
    features = ["logme", "nce", "log_parameters"]
    by_task = default_held_out(rows, truth, features=features, n_bootstrap=0, train_suites=["test:meta-a"])
    # leave one suite out: the pairwise ranker needs two training suites
    both = ["test:meta-a", "test:meta-b"]
    by_suite = default_held_out(
        rows, truth, scheme="suite", features=features, n_bootstrap=0, train_suites=both
    )
    learned = by_task.scores[by_task.scores["measure"] == LEARNED]
    # its scores are AgreementRanker's on each task's own rows, the same under both schemes
    for key, group in rows.groupby("key"):
        got = learned[learned["task"] == key]["score"].to_numpy()
        expected = AgreementRanker(features=features).score_table({f: group[f].to_numpy() for f in features})
        np.testing.assert_allclose(got, expected)
    suite_scores = by_suite.scores[by_suite.scores["measure"] == LEARNED]["score"].to_numpy()
    np.testing.assert_allclose(learned["score"].to_numpy(), suite_scores)
    # beside it, the learned pairwise ranker fitted on suite a only (b is never fitted on)
    pairwise = by_task.scores[by_task.scores["measure"] == PAIRWISE]
    only_a = default_held_out(
        rows, truth, features=features, n_bootstrap=0, design=Design(), train_suites=["test:meta-a"]
    )
    reference = only_a.scores[only_a.scores["measure"] == LEARNED]
    np.testing.assert_allclose(pairwise["score"].to_numpy(), reference["score"].to_numpy())
    assert PAIRWISE in by_task.evaluation.summary.index


def test_fit_default_ranker_makes_the_agreement_ranker_fitted_on_nothing(suites):
    rows, truth = meta_table([s.name for s, _ in suites], scores={s.name: sc for s, sc in suites})
    ranker, by_task, _ = fit_default_ranker(
        rows,
        truth,
        features=["logme", "nce", "log_parameters"],
        n_bootstrap=0,
        train_suites=["test:meta-a", "test:meta-b"],
    )
    assert isinstance(ranker, AgreementRanker) and DEFAULT_DESIGN.kind == "agreement"
    assert ranker.info["fitted_on"]["suites"] == [] and ranker.info["held_out_only"] == [
        "test:meta-a",
        "test:meta-b",
    ]
    assert ranker.info["regularisation"].startswith("none: label-free")
    # its mean weighted tau is the mean over tasks of scipy's weightedtau of its scores on each task
    expected = np.mean(
        [
            weightedtau(
                ranker.score_table({f: g[f].to_numpy() for f in ranker.features}), g["truth"]
            ).statistic
            for _, g in rows.groupby("key")
        ]
    )
    assert by_task.evaluation.summary.loc[LEARNED, "weighted_tau"] == pytest.approx(expected, abs=1e-12)
    # round 8: its p_best uses the standardised score, fitted by the rule on the held-out tasks
    from ckptrank.bench.meta import _fit_temperature, _held_out_tasks, calibrate_shortlist

    assert ranker.info["p_best"]["scale"] == "standardised"
    tasks = list(_held_out_tasks(by_task).values())
    assert ranker.info["p_best"]["temperature"] == pytest.approx(_fit_temperature(tasks, "standardised"))
    assert calibrate_shortlist(by_task)[0] == pytest.approx(
        calibrate_shortlist(by_task, scale="standardised")[0]
    )


def test_shortlist_table_applies_one_temperature_to_every_task_by_hand(suites):
    """At a given temperature, each task's shortlist is the fewest top checkpoints whose p_best sums to
    0.9 (by hand below); the scale defaults to the ranker's (rank steps for the pairwise ranker)."""
    from ckptrank.bench.meta import p_best_scale_of, shortlist_table

    rows, truth = meta_table([s.name for s, _ in suites], scores={s.name: sc for s, sc in suites})
    pairwise = held_out_evaluation(rows, truth, features=["logme", "nce"], n_bootstrap=0)
    agreement = default_held_out(
        rows, truth, features=["logme", "nce"], n_bootstrap=0, train_suites=["test:meta-a"]
    )
    assert p_best_scale_of(pairwise) == "rank_steps" and p_best_scale_of(agreement) == "standardised"
    table = shortlist_table(agreement, 0.7).set_index("task")
    learned = agreement.scores[agreement.scores["measure"] == LEARNED]
    for key, group in rows.groupby("key"):
        s = learned[learned["task"] == key]["score"].to_numpy()
        y = group["truth"].to_numpy()
        p = np.exp((s - s.max()) / 0.7)
        p /= p.sum()
        order = np.argsort(-p, kind="stable")
        size = int(np.searchsorted(np.cumsum(p[order]), 0.9 - 1e-12) + 1)
        assert table.loc[key, "size"] == size and table.loc[key, "covered"] == (np.argmax(y) in order[:size])
        assert table.loc[key, "p_true_best"] == pytest.approx(p[np.argmax(y)])
