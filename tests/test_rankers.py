"""The rankers: centred ranks, pairwise fitting, the agreement ranker, their files and the shipped default."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import rankdata

from ckptrank.combine import DEFAULT_MEASURES, answer_column, default_ranker
from ckptrank.measures import get_measure, list_measures
from ckptrank.rankers import (
    HAS_HEAD,
    PARAMETERS,
    AgreementRanker,
    PairwiseRanker,
    centred_ranks,
    feature_matrix,
    ranker_from_dict,
)


def test_centred_ranks_exact():
    assert centred_ranks(np.array([3.0, 1.0, np.nan, 2.0])).tolist() == [1.0, -1.0, 0.0, 0.0]
    assert centred_ranks(np.array([5.0, 5.0, 1.0])).tolist() == [0.5, 0.5, -1.0]
    assert centred_ranks(np.array([np.nan, 7.0])).tolist() == [0.0, 0.0]


def _tasks(rng, n_tasks=6, n=8):
    """Truth = 2 * a - b; c is noise."""
    tasks = []
    for _ in range(n_tasks):
        a, b, c = rng.normal(size=(3, n))
        X = feature_matrix({"a": a, "b": b, "c": c}, ["a", "b", "c"])
        truth = 2 * X[:, 0] - X[:, 1]
        tasks.append((X, truth))
    return tasks


def test_pairwise_ranker_learns_the_direction_and_orders_a_new_task():
    rng = np.random.default_rng(0)
    ranker = PairwiseRanker(features=["a", "b", "c"], C=10.0).fit(_tasks(rng))
    w = ranker.weights
    assert w[0] > 0 > w[1] and abs(w[2]) < 0.25 * w[0]
    X, truth = _tasks(rng, n_tasks=1)[0]
    assert (rankdata(-ranker.predict(X)) == rankdata(-truth)).mean() >= 0.75


def test_ranker_json_round_trip_and_damaged_file(tmp_path):
    ranker = PairwiseRanker(features=["a", "b"], weights=np.array([0.5, -1.0]), C=0.3, info={"x": 1})
    path = ranker.save(tmp_path / "r.json")
    again = PairwiseRanker.load(path)
    assert again.features == ["a", "b"] and again.weights.tolist() == [0.5, -1.0] and again.info == {"x": 1}
    data = json.loads(path.read_text())
    data["weights"] = [1.0]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="holds 1 weights for 2 features; it is damaged"):
        PairwiseRanker.load(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read ranker file"):
        PairwiseRanker.load(path)


def test_no_pairs_to_learn_from_is_one_clear_error():
    X = np.zeros((3, 1))
    with pytest.raises(ValueError, match="no pair of checkpoints with different ground truth"):
        PairwiseRanker(features=["a"]).fit([(X, np.ones(3))])


def test_shipped_default_ranker_matches_the_default_measures_and_records_its_figures():
    ranker = default_ranker()
    assert isinstance(ranker, AgreementRanker)
    measures = [f for f in ranker.features if f not in (PARAMETERS, HAS_HEAD)]
    assert tuple(measures) == DEFAULT_MEASURES and ranker.features[-1] == PARAMETERS
    assert set(measures) <= set(list_measures(kind="static"))
    held = ranker.info["held_out"]["leave_one_task_out"]
    assert held["ci_low"] <= held["weighted_tau"] <= held["ci_high"]
    # the figures README.md and benchmarks/RESULTS.md quote (refit: python scripts/fit_default_ranker.py)
    assert held["n_tasks"] == 41 and round(held["weighted_tau"], 3) == 0.591
    assert held["with_measures"] == {"n_tasks": 30, "weighted_tau": pytest.approx(0.584, abs=5e-4)}
    # round 8: the standardised score, no rank-step multiplier (benchmarks/RESULTS.md)
    assert (
        round(ranker.info["p_best"]["temperature"], 2) == 1.62
        and ranker.info["p_best"]["scale"] == "standardised"
    )
    assert ranker.info["p_best"]["with_measures"]["coverage"] == 0.9
    # label-free: fitted on no task, so every suite it was evaluated on is held out entirely
    assert ranker.info["fitted_on"]["suites"] == [] and ranker.info["fitted_on"]["n_pairs"] == 0
    assert ranker.info["held_out_only"] == ranker.info["evaluated_on"]["suites"]
    assert len(ranker.info["evaluated_on"]["sha256"]) == 64


def test_answer_column_applies_the_ranker_with_notes_for_missing_inputs():
    ranker = PairwiseRanker(features=["logme", "nce", PARAMETERS], weights=np.array([1.0, 1.0, 0.5]))
    scores = {"logme": np.array([1.0, 2.0, 3.0, np.nan]), "nce": np.array([-3.0, -2.0, -1.0, -0.5])}
    directions = {"logme": True, "nce": get_measure("nce").higher_is_better}
    column = answer_column(
        scores, directions, num_parameters=np.array([10.0, 1e6, np.nan, 1e3]), ranker=ranker
    )
    # centred: logme over its 3 scores [-1, 0, 1, 0]; nce [-1, -1/3, 1/3, 1]; params [-1, 1, 0, 0]
    expected = np.array([-1 - 1 - 0.5, 0 - 1 / 3 + 0.5, 1 + 1 / 3 + 0, 0 + 1 + 0])
    np.testing.assert_allclose(column.ranker_score, expected)
    assert column.rank.tolist() == [4.0, 3.0, 1.0, 2.0]
    assert any("logme did not score 1 checkpoint(s)" in n for n in column.notes)
    assert any("parameter count of 1 checkpoint(s) is unknown" in n for n in column.notes)
    assert column.method.startswith("default ranker")


def test_p_best_is_a_softmax_of_the_score_and_the_shortlist_reaches_the_level():
    ranker = PairwiseRanker(
        features=["logme"],
        weights=np.array([1.0]),
        info={"p_best": {"temperature": 0.5, "shortlist_level": 0.9}},
    )
    scores = {"logme": np.array([1.0, 2.0, 3.0, 4.0])}
    column = answer_column(scores, {"logme": True}, num_parameters=np.full(4, np.nan), ranker=ranker)
    centred = np.array([-1.0, -1 / 3, 1 / 3, 1.0])
    # in rank steps: 4 checkpoints -> x (4 - 1) / 2, then / T
    expected = np.exp(centred * 1.5 / 0.5) / np.exp(centred * 1.5 / 0.5).sum()
    np.testing.assert_allclose(column.p_best, expected)
    # p = 0.0021, 0.0158, 0.1171, 0.8650: the top one holds 0.865 < 0.9, the top two 0.982 >= 0.9
    np.testing.assert_allclose(column.p_best, [0.00214, 0.01584, 0.11706, 0.86495], atol=5e-5)
    assert column.shortlist.tolist() == [False, False, True, True]
    assert (
        answer_column(
            scores,
            {"logme": True},
            num_parameters=np.full(4, np.nan),
            ranker=PairwiseRanker(["logme"], np.ones(1)),
        ).p_best
        is None
    )


def test_p_best_scales_rank_steps_and_standardised():
    """Rank steps (files written before round 8): two checkpoints one rank step apart get the same odds
    in a zoo of 3 or of 11. Standardised (the shipped agreement ranker): the odds of two scores depend on
    their difference only, whatever the zoo, so neighbours in a larger zoo are closer."""
    from ckptrank.rankers import probability_best

    five = probability_best(np.linspace(1.0, -1.0, 5), 0.7)
    eleven = probability_best(np.linspace(1.0, -1.0, 11), 0.7)
    assert five[0] / five[1] == pytest.approx(eleven[0] / eleven[1]) == pytest.approx(np.exp(1.0 / 0.7))
    three = probability_best(np.array([1.0, 0.0, -1.0]), 0.7, scale="standardised")
    eleven = probability_best(np.linspace(1.0, -1.0, 11), 0.7, scale="standardised")
    assert three[0] / three[1] == pytest.approx(np.exp(1.0 / 0.7))
    assert eleven[0] / eleven[1] == pytest.approx(np.exp(0.2 / 0.7))
    with pytest.raises(ValueError, match="p_best scale must be one of rank_steps, standardised, got 'z'"):
        probability_best(np.zeros(2), 1.0, scale="z")


def test_measure_catalogue_matches_the_registry():
    """ckptrank measures reads a catalogue instead of importing the measures: it must not go stale."""
    from ckptrank._catalog import read_catalog
    from ckptrank.measures import catalog_rows

    assert read_catalog() == catalog_rows(), "run `python -m ckptrank.measures` to rewrite the catalogue"


def test_held_out_summary_names_both_bases():
    """The line under every default ranking: all held-out tasks, and those where measure scores existed."""
    from ckptrank.combine import held_out_summary

    held = {"weighted_tau": 0.4801, "ci_low": 0.3521, "ci_high": 0.5824, "n_tasks": 41}
    both = PairwiseRanker(
        features=["logme"],
        info={
            "held_out": {
                "leave_one_task_out": held | {"with_measures": {"weighted_tau": 0.7039, "n_tasks": 21}}
            }
        },
    )
    assert held_out_summary(both) == (
        "held-out weighted tau 0.70 on the 21 tasks where it had measure scores, as here (0.48 [0.35, 0.58] "
        "over 41 tasks it was not fitted on, including 20 where it saw only model size)"
    )
    plain = PairwiseRanker(features=["logme"], info={"held_out": {"leave_one_task_out": held}})
    assert (
        held_out_summary(plain)
        == "held-out weighted tau 0.48 [0.35, 0.58] over 41 tasks it was not fitted on"
    )
    assert held_out_summary(PairwiseRanker(features=["logme"])) == ""
    # every held-out task had measure scores: one figure, the overall one with its interval
    every = PairwiseRanker(
        features=["logme"],
        info={
            "held_out": {
                "leave_one_task_out": held | {"with_measures": {"weighted_tau": 0.4801, "n_tasks": 41}}
            }
        },
    )
    assert (
        held_out_summary(every)
        == "held-out weighted tau 0.48 [0.35, 0.58] over 41 tasks it was not fitted on"
    )


def _plain_tasks(rng, n_tasks=6, n=9):
    """Truth = 1.5 a + 0.5 b - 0.4 c + noise, features as raw values (no centring needed here)."""
    tasks = []
    for _ in range(n_tasks):
        X = rng.normal(size=(n, 3))
        tasks.append((X, X @ np.array([1.5, 0.5, -0.4]) + 0.8 * rng.normal(size=n)))
    return tasks


def test_nonnegative_fit_equals_scikit_learn_where_the_bound_is_inactive():
    tasks = _plain_tasks(np.random.default_rng(1))
    free = PairwiseRanker(features=["a", "b", "c"], C=3.0).fit(tasks)
    assert free.weights[0] > 0 and free.weights[2] < 0
    bounded = PairwiseRanker(features=["a", "b", "c"], C=3.0, nonnegative=["a"]).fit(tasks)
    np.testing.assert_allclose(bounded.weights, free.weights, atol=2e-5)


def test_nonnegative_fit_at_the_bound_is_scikit_learns_fit_without_that_feature():
    tasks = _plain_tasks(np.random.default_rng(2))
    bounded = PairwiseRanker(features=["a", "b", "c"], C=3.0, nonnegative=["a", "b", "c"]).fit(tasks)
    assert bounded.weights[2] == 0.0
    # with c's weight at 0, a and b take the unconstrained optimum of the loss without c
    without_c = PairwiseRanker(features=["a", "b"], C=3.0).fit([(X[:, :2], y) for X, y in tasks])
    np.testing.assert_allclose(bounded.weights[:2], without_c.weights, atol=2e-5)


def test_a_task_weight_of_two_is_the_task_given_twice():
    tasks = _plain_tasks(np.random.default_rng(3), n_tasks=4)
    weighted = PairwiseRanker(features=["a", "b", "c"], C=1.0).fit(tasks, task_weights=[2, 1, 1, 1])
    repeated = PairwiseRanker(features=["a", "b", "c"], C=1.0).fit([tasks[0], *tasks])
    np.testing.assert_allclose(weighted.weights, repeated.weights, atol=1e-4)


def test_bad_task_weights_and_unknown_nonnegative_names_are_clear_errors():
    tasks = _plain_tasks(np.random.default_rng(4), n_tasks=2)
    with pytest.raises(ValueError, match="task_weights must be 2 positive finite numbers, got 1"):
        PairwiseRanker(features=["a", "b", "c"]).fit(tasks, task_weights=[1.0])
    with pytest.raises(ValueError, match="task_weights must be 2 positive finite numbers"):
        PairwiseRanker(features=["a", "b", "c"]).fit(tasks, task_weights=[1.0, 0.0])
    with pytest.raises(ValueError, match=r"nonnegative names \['z'\] that are not features"):
        PairwiseRanker(features=["a", "b", "c"], nonnegative=["z"]).fit(tasks)


def test_json_round_trip_keeps_the_nonnegative_features_and_old_files_have_none(tmp_path):
    ranker = PairwiseRanker(features=["a", "b"], weights=np.array([0.5, 0.0]), nonnegative=["a", "b"])
    again = PairwiseRanker.load(ranker.save(tmp_path / "r.json"))
    assert again.nonnegative == ["a", "b"]
    plain = PairwiseRanker(features=["a"], weights=np.array([1.0]))
    assert "nonnegative" not in json.loads(plain.save(tmp_path / "p.json").read_text())
    assert PairwiseRanker.load(tmp_path / "p.json").nonnegative == []


def test_agreement_ranker_weighs_by_agreement_and_lets_size_disagree():
    """Two measures that agree, size reversed: the correlation matrix is [[1, 1, -1], [1, 1, -1],
    [-1, -1, 1]], whose leading eigenvector is (1, 1, -1) / sqrt(3)."""
    ranker = AgreementRanker(features=["logme", "nleep", PARAMETERS])
    table = {
        "logme": np.array([1.0, 2.0, 3.0, 4.0]),
        "nleep": np.array([10.0, 20.0, 30.0, 40.0]),
        PARAMETERS: np.array([9.0, 8.0, 7.0, 6.0]),
    }
    loadings = ranker.loadings(table)
    assert loadings == pytest.approx({"logme": 3**-0.5, "nleep": 3**-0.5, PARAMETERS: -(3**-0.5)})
    z = (np.arange(4) - 1.5) / np.std(np.arange(4) - 1.5)  # the standardised ranks
    np.testing.assert_allclose(ranker.score_table(table), 3 * z / 3**0.5)
    # measures that disagree with the truth cannot be detected without labels: the sign follows them
    flipped = {k: -v for k, v in table.items()}
    np.testing.assert_allclose(ranker.score_table(flipped), -ranker.score_table(table))


def test_agreement_ranker_leaves_out_what_cannot_be_compared():
    ranker = AgreementRanker(features=["logme", "leep", "nleep", PARAMETERS])
    table = {
        "logme": np.array([1.0, 3.0, 2.0, 4.0, 5.0]),
        "leep": np.array([np.nan, np.nan, np.nan, 1.0, 2.0]),  # two headed checkpoints: left out
        "nleep": np.full(5, 0.5),  # constant: left out
        PARAMETERS: np.array([1.0, 2.0, 3.0, 4.0, np.nan]),  # unknown size: the middle rank
    }
    loadings = ranker.loadings(table)
    assert set(loadings) == {"logme", PARAMETERS}
    # two columns: equal weights, signed by their correlation (positive here)
    assert loadings["logme"] == pytest.approx(2**-0.5) and loadings[PARAMETERS] == pytest.approx(2**-0.5)
    # no measure to compare with: the parameter count decides (the parameter-count baseline)
    only_size = {"logme": np.array([np.nan, 1.0, np.nan, np.nan, 2.0]), PARAMETERS: table[PARAMETERS]}
    assert ranker.loadings(only_size) == {}
    size_ranks = centred_ranks(table[PARAMETERS])  # [-1, -1/3, 1/3, 1, 0]: unknown size at the middle
    np.testing.assert_allclose(ranker.score_table(only_size), size_ranks / size_ranks.std(), atol=1e-12)
    # two checkpoints, no correlation to read: the measures' mean centred rank, size left out
    two = {"logme": np.array([1.0, 2.0]), "nleep": np.array([5.0, 3.0]), PARAMETERS: np.array([9.0, 1.0])}
    np.testing.assert_allclose(ranker.score_table(two), [0.0, 0.0])
    two["nleep"] = np.array([3.0, 5.0])
    np.testing.assert_allclose(ranker.score_table(two), [-1.0, 1.0])


def test_ranker_files_by_kind(tmp_path):
    agreement = AgreementRanker(features=["logme", PARAMETERS], info={"p_best": {"temperature": 2.0}})
    again = ranker_from_dict(json.loads(agreement.save(tmp_path / "a.json").read_text()))
    assert isinstance(again, AgreementRanker) and again.features == ["logme", PARAMETERS]
    assert again.info == {"p_best": {"temperature": 2.0}}
    pairwise = PairwiseRanker(features=["a"], weights=np.ones(1))
    assert isinstance(ranker_from_dict(pairwise.to_dict()), PairwiseRanker)
    with pytest.raises(ValueError, match="unknown ranker kind 'forest'"):
        ranker_from_dict({"kind": "forest"})
    with pytest.raises(ValueError, match="lists no features; it is damaged"):
        ranker_from_dict({"kind": "agreement", "features": []})


def test_answer_column_with_the_agreement_ranker_notes_its_weights():
    ranker = AgreementRanker(features=["logme", "nleep", PARAMETERS])
    scores = {"logme": np.array([1.0, 2.0, 3.0, 4.0]), "nleep": np.array([1.0, 2.0, 4.0, 3.0])}
    column = answer_column(
        scores,
        {"logme": True, "nleep": True},
        num_parameters=np.array([1e9, 1e8, 1e7, 1e6]),
        ranker=ranker,
    )
    assert column.rank.tolist() == [4.0, 3.0, 2.0, 1.0]  # size agrees with the measures in reverse
    note = next(n for n in column.notes if n.startswith("default ranker: weights on this task"))
    assert f"{PARAMETERS} -" in note and "size counts against a checkpoint" in note
    assert column.method.startswith("default ranker (label-free agreement of logme, nleep, log_parameters)")


def test_size_only_fallback_needs_three_known_counts_and_the_note_says_so():
    """No usable measure and 2 of 5 parameter counts known: the agreement ranker uses no size either (as
    its columns need 3 values), so every checkpoint scores 0 and the note says the count was left out;
    the pairwise ranker uses a count once 2 are known (one alone has no rank to compare)."""
    ranker = AgreementRanker(features=["logme", PARAMETERS], info={"p_best": {"temperature": 1.0}})
    scores = {"logme": np.array([1.0, 2.0, np.nan, np.nan, np.nan])}
    params = np.array([1e6, 1e9, np.nan, np.nan, np.nan])
    column = answer_column(scores, {"logme": True}, num_parameters=params, ranker=ranker)
    np.testing.assert_allclose(column.ranker_score, np.zeros(5))
    assert any("of 3 checkpoint(s) is unknown and of 2 known; it is left out" in n for n in column.notes)
    pairwise = PairwiseRanker(features=["logme", PARAMETERS], weights=np.array([1.0, 1.0]))
    one = answer_column(
        scores, {"logme": True}, num_parameters=np.array([1e6] + [np.nan] * 4), ranker=pairwise
    )
    assert any("of 4 checkpoint(s) is unknown and of 1 known; it is left out" in n for n in one.notes)
    two = answer_column(scores, {"logme": True}, num_parameters=params, ranker=pairwise)
    assert any("of 3 checkpoint(s) is unknown; they sit at the middle" in n for n in two.notes)


def test_a_ranker_file_with_an_unknown_p_best_scale_is_refused_when_read():
    data = AgreementRanker(
        features=["logme"], info={"p_best": {"temperature": 1.0, "scale": "ranks"}}
    ).to_dict()
    with pytest.raises(
        ValueError, match="p_best scale 'ranks' is not one of rank_steps, standardised; it is damaged"
    ):
        ranker_from_dict(data)


def test_answer_column_says_when_the_parameter_count_is_left_out_and_when_it_sits_at_the_middle():
    ranker = AgreementRanker(features=["logme", "nleep", PARAMETERS])
    scores = {"logme": np.array([1.0, 2.0, 3.0, 4.0]), "nleep": np.array([1.0, 2.0, 4.0, 3.0])}
    flags = {"logme": True, "nleep": True}
    for params, known in ((np.full(4, np.nan), 0), (np.array([1e6, 1e7, np.nan, np.nan]), 2)):
        column = answer_column(scores, flags, num_parameters=params, ranker=ranker)
        expected = f"of {4 - known} checkpoint(s) is unknown and of {known} known; it is left out"
        assert expected in " ".join(column.notes)
        # the ranking is the measures' alone: the same as with no parameter column at all
        alone = answer_column(scores, flags, num_parameters=np.full(4, np.nan), ranker=ranker)
        np.testing.assert_allclose(column.ranker_score, alone.ranker_score)
    column = answer_column(scores, flags, num_parameters=np.array([1e6, 1e7, 1e8, np.nan]), ranker=ranker)
    assert any("of 1 checkpoint(s) is unknown; they sit at the middle" in n for n in column.notes)


def test_agreement_ranker_at_an_exact_split_orients_by_the_first_largest_measure():
    """a and b are exact opposites and size follows a: the eigenvector is (1, -1, 1) / sqrt(3) up to sign,
    the measures' entries sum to 0, and the tie-break makes a (the first of two equal weights) positive."""
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    table = {"a": a, "b": -a, PARAMETERS: a}
    loadings = AgreementRanker(features=["a", "b", PARAMETERS]).loadings(table)
    assert loadings == pytest.approx({"a": 3**-0.5, "b": -(3**-0.5), PARAMETERS: 3**-0.5})
    swapped = AgreementRanker(features=["b", "a", PARAMETERS]).loadings(table)
    assert swapped == pytest.approx({"b": 3**-0.5, "a": -(3**-0.5), PARAMETERS: -(3**-0.5)})


def test_agreement_ranker_on_three_checkpoints_and_with_has_head_in_the_table():
    ranker = AgreementRanker(features=["logme", "nleep", PARAMETERS])
    table = {
        "logme": np.array([1.0, 2.0, 3.0]),
        "nleep": np.array([3.0, 1.0, 2.0]),
        PARAMETERS: np.array([1.0, 2.0, 3.0]),
    }
    # centred ranks: logme and size (-1, 0, 1), nleep (1, -1, 0): corr(logme, nleep) = -1/2, so the
    # correlation matrix [[1, -1/2, 1], [-1/2, 1, -1/2], [1, -1/2, 1]] has the leading eigenvalue
    # (3 + sqrt 3) / 2 with eigenvector ((1 + sqrt 3) / 2, -1, (1 + sqrt 3) / 2), normalised; the
    # measures' entries sum to (sqrt 3 - 1) / 2 > 0
    expected = np.array([(1 + 3**0.5) / 2, -1.0, (1 + 3**0.5) / 2])
    expected /= np.linalg.norm(expected)
    assert list(ranker.loadings(table).values()) == pytest.approx(expected.tolist())
    z = np.array([-1.0, 0.0, 1.0]) / np.sqrt(2 / 3)
    zn = np.array([1.0, -1.0, 0.0]) / np.sqrt(2 / 3)
    np.testing.assert_allclose(ranker.score_table(table), (expected[0] + expected[2]) * z + expected[1] * zn)
    # has_head is never one of its features, whatever the table holds
    headed = table | {HAS_HEAD: np.array([1.0, 0.0, 1.0])}
    np.testing.assert_allclose(ranker.score_table(headed), ranker.score_table(table))


def test_agreement_ranker_on_two_checkpoints_without_measure_scores_falls_back_to_size():
    ranker = AgreementRanker(features=["logme", "leep", PARAMETERS])
    table = {"logme": np.full(2, np.nan), "leep": np.full(2, np.nan), PARAMETERS: np.array([5.0, 9.0])}
    np.testing.assert_allclose(ranker.score_table(table), [-1.0, 1.0])
    assert ranker.loadings(table) == {}


def test_answer_column_with_the_agreement_ranker_averages_p_best_over_resamples_and_warns_of_a_split():
    from ckptrank.rankers import probability_best

    scores = {"logme": np.array([1.0, 2.0, 3.0, 4.0]), "nleep": np.array([1.0, 2.0, 4.0, 3.0])}
    params = np.array([1e6, 1e7, 1e8, 1e9])
    resampled = {"logme": np.array([[1.0, 2.0, 4.0, 3.0], [2.0, 1.0, 3.0, 4.0]])}
    # with 4 checkpoints the two scales differ: each resample's probability uses the file's scale
    for info, scale in (
        ({"temperature": 2.0}, "rank_steps"),
        ({"temperature": 2.0, "scale": "standardised"}, "standardised"),
    ):
        ranker = AgreementRanker(features=["logme", "nleep", PARAMETERS], info={"p_best": info})
        column = answer_column(
            scores, {"logme": True, "nleep": True}, num_parameters=params, ranker=ranker, resampled=resampled
        )
        expected = np.mean(
            [
                probability_best(
                    ranker.score_table(
                        {"logme": row, "nleep": scores["nleep"], PARAMETERS: np.log10(params)}
                    ),
                    2.0,
                    scale,
                )
                for row in resampled["logme"]
            ],
            axis=0,
        )
        np.testing.assert_allclose(column.p_best, expected)
        assert not np.allclose(
            column.p_best,
            np.mean(
                [
                    probability_best(
                        ranker.score_table(
                            {"logme": row, "nleep": scores["nleep"], PARAMETERS: np.log10(params)}
                        ),
                        2.0,
                        "standardised" if scale == "rank_steps" else "rank_steps",
                    )
                    for row in resampled["logme"]
                ],
                axis=0,
            ),
        )
    assert not any("split into two camps" in n for n in column.notes)
    # two measures that order the checkpoints in reverse, size with neither: the weights cancel
    split = answer_column(
        {"logme": np.array([1.0, 2.0, 3.0, 4.0]), "nleep": np.array([4.0, 3.0, 2.0, 1.0])},
        {"logme": True, "nleep": True},
        num_parameters=np.array([2e6, 1e6, 4e6, 3e6]),
        ranker=ranker,
    )
    assert any("the measures split into two camps here (logme against nleep)" in n for n in split.notes)
