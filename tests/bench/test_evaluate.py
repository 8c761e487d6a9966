"""Evaluation of score tables against a ground truth: statistics, intervals, baselines, bad input.

References: scipy.stats directly (weightedtau, kendalltau, pearsonr, spearmanr), the fixtures of
ALGORITHMS.md section 3, slow loops written here, and ckptrank.bench.stats (the loop-based
bootstrap) for the vectorised intervals.
"""

from __future__ import annotations

import io
import math
import time
import warnings
import zlib

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from ckptrank.bench import stats
from ckptrank.bench.evaluate import (
    batch_statistics,
    compare_reported,
    evaluate,
    evaluate_suite,
    read_scores,
)
from ckptrank.bench.suite import Suite

CKPTS = [f"c{i}" for i in range(8)]
QUALITY = np.array([0.1, 0.9, 0.4, 0.7, 0.2, 0.8, 0.5, 0.3])


def _truth(tasks=("t0", "t1", "t2"), seeds=3, noise=0.02, rng_seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(rng_seed)
    rows = []
    for t, task in enumerate(tasks):
        for i, name in enumerate(CKPTS):
            for seed in range(seeds):
                rows.append(
                    (task, name, seed, 60 + 30 * QUALITY[i] + t + noise * 100 * rng.standard_normal())
                )
    return pd.DataFrame(rows, columns=["task", "checkpoint", "seed", "accuracy"])


def _scores(measures: dict[str, float], tasks=("t0", "t1", "t2"), rng_seed=1) -> pd.DataFrame:
    """measure -> noise level: score = quality + noise * N(0, 1)."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for measure, noise in measures.items():
        for task in tasks:
            for i, name in enumerate(CKPTS):
                rows.append(
                    (task, name, measure, QUALITY[i] + noise * rng.standard_normal(), 0.01 * (1 + noise))
                )
    return pd.DataFrame(rows, columns=["task", "checkpoint", "measure", "score", "seconds"])


# --- vectorised statistics vs scipy ----------------------------------------------------------------------


def test_batch_statistics_equal_scipy_with_ties():
    rng = np.random.default_rng(7)
    S = rng.integers(0, 4, (200, 7)).astype(float)
    A = rng.integers(0, 5, (200, 7)).astype(float) + 1.0
    out = batch_statistics(S, A)
    checked = 0
    for b in range(S.shape[0]):
        s, a = S[b], A[b]
        if np.ptp(s) == 0 or np.ptp(a) == 0:
            assert math.isnan(out["weighted_tau"][b]) and math.isnan(out["pearson"][b])
            continue
        checked += 1
        assert out["weighted_tau"][b] == pytest.approx(sps.weightedtau(s, a).statistic, abs=1e-12)
        assert out["kendall_tau"][b] == pytest.approx(sps.kendalltau(s, a).statistic, abs=1e-12)
        assert out["pearson"][b] == pytest.approx(sps.pearsonr(s, a).statistic, abs=1e-12)
        assert out["spearman"][b] == pytest.approx(sps.spearmanr(s, a).statistic, abs=1e-12)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", stats.RankingTieWarning)
            for k in (1, 3):
                assert out[f"rel@{k}"][b] == pytest.approx(stats.rel_at_k(s, a, k))
                assert out[f"hit@{k}"][b] == stats.hit_at_k(s, a, k)
            assert out["top1_regret"][b] == pytest.approx(stats.top1_regret(s, a))
    assert checked > 150


def test_batch_statistics_section3_fixtures():
    s = np.array([[1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [0.1, 0.4, 0.35, 0.8, 0.8]], dtype=float)[:2]
    a = np.array([[1, 2, 3, 5, 4], [2, 1, 3, 4, 5]], dtype=float)
    out = batch_statistics(s, a)
    assert out["weighted_tau"] == pytest.approx([0.6715328467, 0.9014598540], abs=1e-10)
    assert out["kendall_tau"][0] == pytest.approx(0.8)
    out = batch_statistics(np.array([[0.1, 0.4, 0.35, 0.8]]), np.array([[1.0, 2, 3, 4]]))
    assert out["weighted_tau"][0] == pytest.approx(0.7333333333, abs=1e-10)
    assert out["kendall_tau"][0] == pytest.approx(0.6666666667, abs=1e-10)
    assert out["pearson"][0] == pytest.approx(0.9133691347, abs=1e-10)
    out = batch_statistics(np.array([[0.9, 0.1, 0.5]]), np.array([[80.0, 90, 85]]), ks=(1,))
    assert out["rel@1"][0] == pytest.approx(80 / 90)
    assert out["top1_regret"][0] == pytest.approx(10.0)
    assert out["hit@1"][0] == 0.0


def test_batch_statistics_large_checkpoint_count_is_chunked():
    rng = np.random.default_rng(3)
    S = rng.standard_normal((30, 70))
    A = rng.standard_normal((30, 70)) + 0.5 * S
    out = batch_statistics(S, A)
    for b in (0, 17, 29):
        assert out["weighted_tau"][b] == pytest.approx(sps.weightedtau(S[b], A[b]).statistic, abs=1e-12)


# --- evaluate ------------------------------------------------------------------------------------------


def test_point_values_equal_scipy_and_means_over_tasks():
    gt = _truth()
    sc = _scores({"good": 0.05, "noisy": 0.6})
    ev = evaluate(sc, gt, n_bootstrap=200)
    mean_truth = gt.groupby(["task", "checkpoint"])["accuracy"].mean()
    for measure in ("good", "noisy"):
        taus = []
        for task in ("t0", "t1", "t2"):
            rows = sc[(sc.measure == measure) & (sc.task == task)].set_index("checkpoint")["score"]
            truth = mean_truth.loc[task].loc[rows.index]
            expected = sps.weightedtau(rows.to_numpy(), truth.to_numpy()).statistic
            got = ev.per_task.query("measure == @measure and task == @task and statistic == 'weighted_tau'")
            assert got["value"].item() == pytest.approx(expected, abs=1e-12)
            assert got["n_checkpoints"].item() == 8
            taus.append(expected)
        assert ev.summary.loc[measure, "weighted_tau"] == pytest.approx(np.mean(taus))
        assert ev.summary.loc[measure, "n_tasks"] == 3
    assert ev.summary.loc["good", "weighted_tau"] > ev.summary.loc["noisy", "weighted_tau"]
    assert ev.measures == ["good", "noisy"] and ev.tasks == ["t0", "t1", "t2"]
    # cost = median seconds per checkpoint
    assert ev.summary.loc["good", "seconds"] == pytest.approx(0.01 * 1.05)


def test_intervals_cover_point_and_match_loop_bootstrap():
    gt = _truth(tasks=("t0",))
    sc = _scores({"m": 0.3}, tasks=("t0",))
    ev = evaluate(sc, gt, n_bootstrap=2000, random_state=3)
    row = ev.per_task.query("measure == 'm' and task == 't0' and statistic == 'weighted_tau'").iloc[0]
    assert row.ci_low <= row.value <= row.ci_high
    # the same percentile bootstrap with independent draws and a per-resample scipy loop
    s = sc.set_index("checkpoint")["score"].loc[CKPTS].to_numpy()
    a = gt.groupby("checkpoint")["accuracy"].mean().loc[CKPTS].to_numpy()
    low, high = stats.bootstrap_interval(
        lambda idx: stats.weighted_tau(s[idx], a[idx]) if np.ptp(s[idx]) > 0 else math.nan,
        len(s),
        n_resamples=2000,
        random_state=11,
    )
    assert row.ci_low == pytest.approx(low, abs=0.08)
    assert row.ci_high == pytest.approx(high, abs=0.08)
    # seed interval: the scores stay fixed, the truth is the mean over resampled seeds
    assert row.seed_ci_low <= row.value + 1e-12 and row.seed_ci_high >= row.value - 0.2


def test_intervals_are_deterministic_and_zero_bootstrap_gives_none():
    gt, sc = _truth(), _scores({"m": 0.3})
    a = evaluate(sc, gt, n_bootstrap=300, random_state=5).per_task
    b = evaluate(sc, gt, n_bootstrap=300, random_state=5).per_task
    c = evaluate(sc, gt, n_bootstrap=300, random_state=6).per_task
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["ci_low"].to_numpy(), c["ci_low"].to_numpy(), equal_nan=True)
    none = evaluate(sc, gt, n_bootstrap=0).per_task
    assert none[["ci_low", "ci_high", "seed_ci_low", "seed_ci_high"]].isna().all().all()


def test_seed_agreement_and_reliability_per_task():
    gt = _truth(noise=0.05)
    ev = evaluate(_scores({"m": 0.3}), gt, n_bootstrap=50)
    for task in ("t0", "t1", "t2"):
        table = gt[gt.task == task].pivot(index="seed", columns="checkpoint", values="accuracy")
        pairs = [
            sps.weightedtau(table.iloc[i].to_numpy(), table.iloc[j].to_numpy()).statistic
            for i in range(3)
            for j in range(i + 1, 3)
        ]
        got = ev.seed_agreement.set_index("task").loc[task]
        assert got["seed_agreement"] == pytest.approx(np.mean(pairs), abs=1e-12)
        assert got["reliability"] == pytest.approx(stats.split_half_reliability(table.to_numpy()), abs=1e-12)
        assert got["n_seeds"] == 3 and got["n_checkpoints"] == 8
    assert ev.mean_seed_agreement() == pytest.approx(ev.seed_agreement["seed_agreement"].mean())
    assert ev.mean_reliability() == pytest.approx(ev.seed_agreement["reliability"].mean())
    assert ev.mean_reliability() > ev.mean_seed_agreement()  # the 3-seed mean beats one seed
    # the deprecated names read the seed agreement
    assert ev.noise_ceiling["noise_ceiling"].tolist() == ev.seed_agreement["seed_agreement"].tolist()
    assert ev.mean_noise_ceiling() == ev.mean_seed_agreement()
    assert ev.to_dict()["mean_reliability"] == pytest.approx(ev.mean_reliability())


def test_single_seed_has_no_seed_interval_agreement_or_reliability():
    ev = evaluate(_scores({"m": 0.3}), _truth(seeds=1), n_bootstrap=100)
    assert ev.per_task["seed_ci_low"].isna().all()
    assert ev.seed_agreement[["seed_agreement", "reliability"]].isna().all().all()
    assert math.isnan(ev.mean_seed_agreement()) and math.isnan(ev.mean_reliability())
    assert any("single ground-truth seed" in note for note in ev.notes)


def test_baselines_evaluated_and_weaker_measures_marked():
    gt = _truth(seeds=2)
    sc = _scores({"strong": 0.01, "weak": 1.5})
    # an imperfect baseline: four of the eight checkpoints out of place
    params = (QUALITY + np.array([0.6, -0.5, 0.45, -0.4, 0.0, 0.0, 0.0, 0.0])) * 1e6
    baselines = pd.DataFrame({"num_parameters": params, "source_accuracy": np.full(8, np.nan)}, index=CKPTS)
    ev = evaluate(sc, gt, baselines=baselines, n_bootstrap=300)
    assert ev.baselines == ["num_parameters"]  # all-NaN source_accuracy is not a baseline
    base_tau = ev.summary.loc["num_parameters", "weighted_tau"]
    mean_truth = gt.groupby(["task", "checkpoint"])["accuracy"].mean()
    expected = np.mean(
        [
            sps.weightedtau(
                baselines["num_parameters"].to_numpy(), mean_truth.loc[t].loc[CKPTS].to_numpy()
            ).statistic
            for t in ("t0", "t1", "t2")
        ]
    )
    assert base_tau == pytest.approx(expected)
    assert ev.summary.loc["strong", "beats_baseline"] is True and not ev.summary.loc["strong", "marked"]
    assert ev.summary.loc["strong", "verdict"] == "better" and ev.summary.loc["strong", "diff_ci_low"] > 0
    assert ev.summary.loc["weak", "beats_baseline"] is False and ev.summary.loc["weak", "marked"]
    assert ev.summary.loc["weak", "best_baseline"] == "num_parameters"
    assert ev.summary.loc["strong", "p_beats_baseline"] > ev.summary.loc["weak", "p_beats_baseline"]
    assert 0.0 <= ev.summary.loc["weak", "p_beats_baseline"] <= 1.0
    assert ev.summary.loc["num_parameters", "kind"] == "baseline"
    # no interval, no verdict: nothing is marked as beating the baseline
    none = evaluate(sc, gt, baselines=baselines, n_bootstrap=0).summary
    assert none.loc["strong", "verdict"] is None and none.loc["strong", "beats_baseline"] is False
    assert none.loc["strong", "diff_vs_baseline"] == pytest.approx(
        ev.summary.loc["strong", "diff_vs_baseline"]
    )


def test_lower_is_better_measures_are_negated():
    gt = _truth(seeds=1)
    sc = _scores({"m": 0.2})
    flipped = sc.assign(score=-sc["score"], measure="neg")
    both = pd.concat([sc, flipped])
    ev = evaluate(both, gt, higher_is_better={"neg": False}, n_bootstrap=0)
    assert ev.summary.loc["neg", "weighted_tau"] == pytest.approx(ev.summary.loc["m", "weighted_tau"])
    # pairs keep the scores as given
    assert (ev.pairs.query("measure == 'neg'")["score"] < 0).sum() > 0


def test_missing_truth_and_scores_use_the_intersection_with_notes():
    gt = _truth(seeds=1)
    gt = gt[~((gt.task == "t0") & (gt.checkpoint == "c1"))]
    sc = _scores({"m": 0.2})
    sc = sc[~((sc.task == "t1") & (sc.checkpoint == "c2"))]
    sc.loc[(sc.task == "t2") & (sc.checkpoint == "c3"), "score"] = np.nan
    ev = evaluate(sc, gt, n_bootstrap=0)
    n = ev.per_task.query("statistic == 'weighted_tau' and task != 'mean'").set_index("task")["n_checkpoints"]
    assert n.to_dict() == {"t0": 7, "t1": 7, "t2": 7}
    text = " | ".join(ev.notes)
    assert "task t0: no ground truth for 1 scored checkpoint(s) (c1)" in text
    assert "m on t1: 1 checkpoint(s) with ground truth were not scored (c2)" in text
    assert "m on t2: no score for 1 checkpoint(s) (c3)" in text


def test_tasks_with_too_few_checkpoints_are_skipped_and_none_left_is_an_error():
    gt = _truth(seeds=1)
    sc = _scores({"m": 0.2})
    sc = sc[(sc.task != "t0") | sc.checkpoint.isin(["c0", "c1"])]
    ev = evaluate(sc, gt, n_bootstrap=0)
    assert ev.tasks == ["t1", "t2"]
    assert any("m on t0: skipped, only 2 checkpoint(s)" in note for note in ev.notes)
    tiny = sc[sc.checkpoint.isin(["c0", "c1"])]
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate(tiny, gt, n_bootstrap=0)
    ev = evaluate(tiny, gt, n_bootstrap=0, min_checkpoints=2)
    assert ev.per_task["n_checkpoints"].max() == 2


def test_ties_are_noted():
    gt = _truth(tasks=("t0",), seeds=1)
    sc = _scores({"m": 0.0}, tasks=("t0",))
    sc["score"] = np.round(sc["score"] * 2) / 2  # many ties, among them at the top
    ev = evaluate(sc, gt, n_bootstrap=20)
    assert any("tie" in note and "pessimistically" in note for note in ev.notes)
    constant = sc.assign(score=1.0)
    ev = evaluate(constant, gt, n_bootstrap=0)
    assert math.isnan(ev.summary.loc["m", "weighted_tau"])
    assert any("same score" in note for note in ev.notes)


def test_bad_options_and_duplicates():
    gt, sc = _truth(seeds=1), _scores({"m": 0.2})
    with pytest.raises(ValueError, match="duplicate"):
        evaluate(pd.concat([sc, sc.iloc[:1]]), gt)
    with pytest.raises(ValueError, match="n_bootstrap"):
        evaluate(sc, gt, n_bootstrap=-1)
    with pytest.raises(ValueError, match="confidence"):
        evaluate(sc, gt, confidence=1.5)
    with pytest.raises(ValueError, match="min_checkpoints"):
        evaluate(sc, gt, min_checkpoints=1)
    with pytest.raises(ValueError, match="lacks column"):
        evaluate(sc.drop(columns="score"), gt)


def test_speed_of_a_12_by_5_suite_with_1000_resamples():
    rng = np.random.default_rng(0)
    names = [f"k{i}" for i in range(12)]
    q = rng.normal(size=12)
    tasks = [f"t{i}" for i in range(5)]
    gt = pd.DataFrame(
        [
            (t, c, s, 70 + 5 * q[i] + rng.normal())
            for t in tasks
            for i, c in enumerate(names)
            for s in range(3)
        ],
        columns=["task", "checkpoint", "seed", "accuracy"],
    )
    sc = pd.DataFrame(
        [
            (t, c, f"m{m}", q[i] + rng.normal() * m * 0.3)
            for t in tasks
            for i, c in enumerate(names)
            for m in range(8)
        ],
        columns=["task", "checkpoint", "measure", "score"],
    )
    base = pd.DataFrame(
        {"num_parameters": rng.random(12), "source_accuracy": q + rng.normal(size=12)}, index=names
    )
    start = time.perf_counter()
    ev = evaluate(sc, gt, baselines=base, n_bootstrap=1000)
    elapsed = time.perf_counter() - start
    assert elapsed < 8.0, f"evaluation took {elapsed:.1f} s"
    assert ev.summary["weighted_tau_ci_low"].notna().all()
    assert ev.summary["weighted_tau_seed_ci_low"].notna().all()


# --- reported values -----------------------------------------------------------------------------------


def test_compare_reported_matches_names_and_flags():
    per_task = pd.DataFrame(
        {
            "measure": ["NLEEP", "NLEEP", "hscore"],
            "kind": "measure",
            "task": ["a", "b", "a"],
            "statistic": ["weighted_tau", "weighted_tau", "pearson"],
            "value": [0.5, 0.3, 0.7],
        }
    )
    reported = pd.DataFrame(
        {
            "task": ["a", "b", "a", "a"],
            "measure": ["N-LEEP", "n_leep", "H-Score", "SFDA"],
            "statistic": ["Weighted Tau", "weighted_tau", "Pearson Corr", "weighted_tau"],
            "value": [0.501, 0.31, 0.7, 0.9],
        }
    )
    out = compare_reported(per_task, reported, tolerance=0.0015)
    assert out["agrees"].tolist() == [True, False, True, None]
    assert out["flagged"].tolist() == [False, True, False, False]
    assert out["diff"].iloc[0] == pytest.approx(-0.001)
    assert out["statistic"].tolist() == ["weighted_tau", "weighted_tau", "pearson", "weighted_tau"]
    assert math.isnan(out["recomputed"].iloc[3])


# --- score tables ---------------------------------------------------------------------------------------


def test_read_scores_long_wide_and_synonyms(tmp_path):
    long = tmp_path / "long.csv"
    long.write_text("dataset,model,metric,value\npets,resnet50,LogME,1.5\npets,vit,LogME,2\n")
    frame = read_scores(long)
    assert list(frame.columns) == ["task", "checkpoint", "measure", "score"]
    assert frame["score"].tolist() == [1.5, 2.0]
    wide = tmp_path / "wide.tsv"
    wide.write_text("task\tcheckpoint\tlogme\tsfda\trank\tseconds\na\tx\t1\t2\t1\t0.5\n")
    frame = read_scores(wide)
    assert sorted(frame["measure"]) == ["logme", "sfda"]  # rank / seconds are not measures
    js = tmp_path / "s.json"
    js.write_text('[{"task": "a", "checkpoint": "x", "measure": "m", "score": 1, "seconds": 0.2}]')
    frame = read_scores(js)
    assert frame["seconds"].tolist() == [0.2]
    assert read_scores(pd.read_csv(io.StringIO("task,checkpoint,m\na,x,1\n")))["measure"].tolist() == ["m"]


def test_read_scores_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        read_scores(tmp_path / "missing.csv")
    bad = tmp_path / "s.txt"
    bad.write_text("x")
    with pytest.raises(ValueError, match="unknown type"):
        read_scores(bad)
    nocol = tmp_path / "n.csv"
    nocol.write_text("model,score\na,1\n")
    with pytest.raises(ValueError, match=r"task column .* columns found: model, score"):
        read_scores(nocol)
    nomeasure = tmp_path / "m.csv"
    nomeasure.write_text("task,checkpoint,note\na,b,text\n")
    with pytest.raises(ValueError, match="no measure"):
        read_scores(nomeasure)
    dup = tmp_path / "d.csv"
    dup.write_text("task,checkpoint,measure,score\na,b,m,1\na,b,m,2\n")
    with pytest.raises(ValueError, match=r"duplicate .*\(a/b/m\)"):
        read_scores(dup)


# --- suites ---------------------------------------------------------------------------------------------


def _suite() -> Suite:
    return Suite(
        name="test-eval",
        ground_truth=_truth(seeds=2),
        baselines=pd.DataFrame({"num_parameters": QUALITY}, index=CKPTS),
        checkpoint_aliases={"first": "c0"},
    )


def test_evaluate_suite_unknown_names_error_or_ignore():
    suite = _suite()
    sc = _scores({"m": 0.2})
    extra = pd.DataFrame(
        {"task": ["t0", "t9"], "checkpoint": ["c99", "c1"], "measure": "m", "score": [1.0, 2.0]}
    )
    with pytest.raises(ValueError, match=r"1 unknown task\(s\): 't9'.*1 unknown checkpoint\(s\): 'c99'"):
        evaluate_suite(suite, pd.concat([sc, extra]), n_bootstrap=0)
    ev = evaluate_suite(suite, pd.concat([sc, extra]), n_bootstrap=0, on_unknown="ignore")
    assert any("ignored 1 unknown checkpoint(s): 'c99'" in note for note in ev.notes)
    assert len(ev.pairs.query("measure == 'm'")) == 24


def test_evaluate_suite_aliases_normalised_names_and_task_filter():
    suite = _suite()
    sc = _scores({"m": 0.2})
    sc["checkpoint"] = sc["checkpoint"].replace({"c0": "first", "c1": "C-1"})
    ev = evaluate_suite(suite, sc, n_bootstrap=0)
    assert set(ev.pairs["checkpoint"]) == set(CKPTS)
    ev = evaluate_suite(suite, sc, n_bootstrap=0, tasks=["t1"])
    assert ev.tasks == ["t1"]
    with pytest.raises(ValueError, match="no task 'nope'"):
        evaluate_suite(suite, sc, tasks=["nope"])


def test_evaluate_suite_registered_measure_direction_and_baselines_only():
    suite = _suite()
    ev = evaluate_suite(suite, None, n_bootstrap=0)
    assert ev.measures == [] and ev.baselines == ["num_parameters"]
    assert ev.summary.loc["num_parameters", "weighted_tau"] > 0.5


# --- paired comparisons ---------------------------------------------------------------------------------


def _one_task(truth: dict[str, float], measure: dict[str, float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    gt = pd.DataFrame({"task": "t", "checkpoint": list(truth), "seed": 0, "accuracy": list(truth.values())})
    sc = pd.DataFrame(
        {"task": "t", "checkpoint": list(measure), "measure": "A", "score": list(measure.values())}
    )
    return gt, sc


def test_paired_difference_by_hand_where_the_unpaired_comparison_disagrees():
    # A scores c1..c3 only; the baseline also covers c4 and c5, the best checkpoints, and gets them right.
    truth = {"c1": 1.0, "c2": 2.0, "c3": 3.0, "c4": 4.0, "c5": 5.0}
    gt, sc = _one_task(truth, {"c1": 2.0, "c2": 1.0, "c3": 3.0})  # bottom two swapped
    params = pd.DataFrame({"num_parameters": [1.0, 3.0, 2.0, 4.0, 5.0]}, index=list(truth))  # c2/c3 swapped
    ev = evaluate(sc, gt, baselines=params, n_bootstrap=200)
    row = ev.summary.loc["A"]
    # By hand (hyperbolic weights 1/(r+1), ranked by each side in turn): a swap of the bottom two of
    # three gives 6/11, a swap of the top two 2/11 (tests/bench/test_stats.py derives the first).
    assert row["weighted_tau"] == pytest.approx(6 / 11, abs=1e-14)
    # unpaired, the baseline (on all five) looks better than A (on three) ...
    unpaired = ev.summary.loc["num_parameters", "weighted_tau"]
    assert unpaired == pytest.approx(sps.weightedtau([1.0, 3, 2, 4, 5], [1.0, 2, 3, 4, 5]).statistic)
    assert unpaired > row["weighted_tau"]
    # ... paired on c1..c3 the baseline has 2/11 and A is better by 4/11: that is what is reported
    assert row["best_baseline"] == "num_parameters"
    assert row["best_baseline_tau"] == pytest.approx(2 / 11, abs=1e-14)
    assert row["weighted_tau_common"] == pytest.approx(6 / 11, abs=1e-14)
    assert row["diff_vs_baseline"] == pytest.approx(4 / 11, abs=1e-14)
    assert (row["n_common_tasks"], row["n_common_pairs"]) == (1, 3)
    # three checkpoints cannot settle it: the interval contains 0, so no mark either way
    assert row["diff_ci_low"] <= 0 <= row["diff_ci_high"]
    assert row["verdict"] == "tie" and row["beats_baseline"] is False
    cmp = ev.comparison("num_parameters", "A")
    assert cmp["diff"] == pytest.approx(-4 / 11) and cmp["verdict"] == "tie"
    assert (cmp["ci_low"], cmp["ci_high"]) == (-row["diff_ci_high"], -row["diff_ci_low"])


def _extra_easy_case(n_common: int = 16, n_swaps: int = 7, n_tasks: int = 3):
    """A on k01..k(n_common); the baseline on all, right on the 3 best (extra) checkpoints.

    Both swap the two best of the common checkpoints; the baseline also swaps ``n_swaps`` bottom pairs.
    """
    n = n_common + 3
    names = [f"k{i:02d}" for i in range(1, n + 1)]
    q = np.arange(1.0, n + 1)
    a = q[:n_common].copy()
    a[[n_common - 1, n_common - 2]] = a[[n_common - 2, n_common - 1]]
    b = q.copy()
    b[[n_common - 1, n_common - 2]] = b[[n_common - 2, n_common - 1]]
    for k in range(n_swaps):
        b[[2 * k, 2 * k + 1]] = b[[2 * k + 1, 2 * k]]
    tasks = [f"t{j}" for j in range(n_tasks)]
    gt = pd.DataFrame(
        [(t, name, 0, 50 + q[i] + 0.1 * j) for j, t in enumerate(tasks) for i, name in enumerate(names)],
        columns=["task", "checkpoint", "seed", "accuracy"],
    )
    sc = pd.DataFrame(
        [(t, name, "A", a[i]) for t in tasks for i, name in enumerate(names[:n_common])],
        columns=["task", "checkpoint", "measure", "score"],
    )
    return gt, sc, pd.DataFrame({"num_parameters": b}, index=names), names, q, a, b


def test_mark_follows_the_paired_interval_and_resamples_are_shared():
    gt, sc, params, names, q, a, b = _extra_easy_case()
    n_boot = 300
    ev = evaluate(sc, gt, baselines=params, n_bootstrap=n_boot, random_state=4)
    row = ev.summary.loc["A"]
    common = len(a)
    tau_a = sps.weightedtau(a, q[:common]).statistic
    tau_b_common = sps.weightedtau(b[:common], q[:common]).statistic
    tau_b_all = sps.weightedtau(b, q).statistic
    # unpaired (the old report) the baseline wins; paired A is better, and significantly
    assert ev.summary.loc["num_parameters", "weighted_tau"] == pytest.approx(tau_b_all)
    assert row["weighted_tau"] == pytest.approx(tau_a) and tau_b_all > tau_a
    assert row["best_baseline_tau"] == pytest.approx(tau_b_common)
    assert row["diff_vs_baseline"] == pytest.approx(tau_a - tau_b_common)
    assert row["n_common_pairs"] == 3 * common
    assert row["diff_ci_low"] > 0 and row["verdict"] == "better"
    assert row["beats_baseline"] is True and not row["marked"]
    # independent reference: the same index draws for both rows (the checkpoint set's stream), a
    # scipy loop per resample, the difference of the task means, its percentile interval
    key = zlib.crc32("\x00".join(names[:common]).encode())
    idx = np.random.default_rng([4, 0, key]).integers(0, common, (n_boot, common))
    truth = q[:common]
    diffs = []
    for draw in idx:
        per_task = []
        for j in range(3):
            t = truth[draw] + 0.1 * j
            per_task.append(
                sps.weightedtau(a[draw], t).statistic - sps.weightedtau(b[:common][draw], t).statistic
            )
        diffs.append(np.mean(per_task))
    diffs = np.array(diffs)
    low, high = np.quantile(diffs[np.isfinite(diffs)], [0.025, 0.975])
    assert row["diff_ci_low"] == pytest.approx(low, abs=1e-12)
    assert row["diff_ci_high"] == pytest.approx(high, abs=1e-12)
    assert row["p_beats_baseline"] == pytest.approx(np.mean(diffs[np.isfinite(diffs)] > 0))


def test_comparisons_cover_every_pair_and_use_the_common_pairs():
    gt = _truth(seeds=2)
    sc = _scores({"good": 0.05, "noisy": 0.6})
    sc = sc[~((sc.measure == "noisy") & (sc.task == "t2"))]  # noisy misses a task
    sc = sc[~((sc.measure == "good") & (sc.checkpoint == "c1"))]  # good misses a checkpoint
    base = pd.DataFrame({"num_parameters": QUALITY[::-1]}, index=CKPTS)
    ev = evaluate(sc, gt, baselines=base, n_bootstrap=100)
    pairs = set(zip(ev.comparisons["a"], ev.comparisons["b"], strict=True))
    assert pairs == {("good", "noisy"), ("good", "num_parameters"), ("noisy", "num_parameters")}
    row = ev.comparison("good", "noisy")
    assert row["n_tasks"] == 2 and row["n_pairs"] == 14  # t0, t1 without c1
    mean = gt.groupby(["task", "checkpoint"])["accuracy"].mean()
    expected = []
    for m in ("good", "noisy"):
        taus = []
        for t in ("t0", "t1"):
            s = sc[(sc.measure == m) & (sc.task == t) & (sc.checkpoint != "c1")].set_index("checkpoint")[
                "score"
            ]
            taus.append(sps.weightedtau(s.to_numpy(), mean.loc[t].loc[s.index].to_numpy()).statistic)
        expected.append(np.mean(taus))
    assert row["tau_a"] == pytest.approx(expected[0]) and row["tau_b"] == pytest.approx(expected[1])
    assert row["diff"] == pytest.approx(expected[0] - expected[1])
    assert row["verdict"] == "better" and row["p_a_better"] > 0.95
    # each row's own mean is over its own tasks, shown with their number
    assert ev.summary.loc["noisy", "n_tasks"] == 2 and ev.summary.loc["good", "n_tasks"] == 3
    assert not ev.summary.loc["noisy", "covers_all_tasks"] and ev.summary.loc["good", "covers_all_tasks"]
    versus = ev.versus("num_parameters")
    assert list(versus.index) == ["good", "noisy"] and versus.loc["good", "verdict"] == "better"
    assert versus.loc["noisy", "diff"] == ev.comparison("noisy", "num_parameters")["diff"]
    assert versus.loc["noisy", "tau_other"] == ev.comparison("num_parameters", "noisy")["tau_a"]


# --- random-init controls and tracks --------------------------------------------------------------------


def test_random_init_controls_are_left_out_and_checked():
    gt = _truth(seeds=2)
    sc = _scores({"m": 0.05})
    # c0 and c4 are controls; m scores c0 lowest everywhere but c4 above c0 and below the rest;
    # the baseline gives c4 the largest value
    base = pd.DataFrame({"num_parameters": np.array([1, 5, 3, 4, 9, 6, 7, 2], dtype=float)}, index=CKPTS)
    ev = evaluate(sc, gt, baselines=base, controls=["c0", "c4"], n_bootstrap=50)
    pretrained = [c for c in CKPTS if c not in ("c0", "c4")]
    mean = gt.groupby(["task", "checkpoint"])["accuracy"].mean()
    got = ev.per_task.query("measure == 'm' and task == 't0' and statistic == 'weighted_tau'")
    s = sc[(sc.measure == "m") & (sc.task == "t0")].set_index("checkpoint")["score"].loc[pretrained]
    assert got["value"].item() == pytest.approx(
        sps.weightedtau(s.to_numpy(), mean.loc["t0"].loc[pretrained]).statistic
    )
    assert got["n_checkpoints"].item() == 6
    assert set(ev.seed_agreement["n_checkpoints"]) == {6}
    controls = ev.controls.set_index(["measure", "task"])
    # QUALITY of c0 (0.1) and c4 (0.2) are the lowest: m (quality + small noise) puts them last
    assert controls.loc[("m", "t0"), "below_all"] and controls.loc[("m", "t0"), "ordered"] == 1.0
    assert controls.loc[("ground truth", "t0"), "below_all"]
    # the baseline scores c4 (9) above every pre-trained checkpoint: first, ordered half the pairs
    row = controls.loc[("num_parameters", "t1")]
    assert not row["below_all"] and row["top_control"] == "c4" and row["top_control_rank"] == 1
    assert row["ordered"] == pytest.approx(0.5)  # c0 below all 6, c4 above all 6
    assert ev.summary.loc["m", "controls_below"] == 3 and ev.summary.loc["m", "controls_tasks"] == 3
    assert ev.summary.loc["num_parameters", "controls_below"] == 0
    assert ev.pairs.query("measure == 'm' and task == 't0'")["control"].sum() == 2
    assert any("2 random-initialised control(s) (c0, c4) are left out" in n for n in ev.notes)


def test_suite_marks_controls_and_tracks():
    from ckptrank.bench.suite import SuiteCheckpoint, Task, infer_tracks

    assert SuiteCheckpoint(group="random-init").is_control
    assert SuiteCheckpoint(spec="timm:efficientnet_lite0?init=random&size=112").is_control
    assert not SuiteCheckpoint(spec="timm:efficientnet_lite0?size=112", group="imagenet").is_control
    assert not SuiteCheckpoint(group="random-init", control=False).is_control
    image = _truth(tasks=("i0", "i1"), seeds=2)
    text = _truth(tasks=("w0",), seeds=2).assign(checkpoint=lambda f: "w" + f["checkpoint"])
    gt = pd.concat([image, text], ignore_index=True)
    assert infer_tracks(gt) == {"i0": "track 1", "i1": "track 1", "w0": "track 2"}
    assert set(infer_tracks(image).values()) == {""}
    suite = Suite(
        name="test-tracks",
        tasks={"i0": Task(track="image"), "i1": Task(track="image"), "w0": Task(track="text")},
        checkpoints={
            **{c: {"group": "random-init" if c == "c0" else "x"} for c in CKPTS},
            **{f"w{c}": {} for c in CKPTS},
        },
        ground_truth=gt,
    )
    assert suite.controls() == ["c0"]
    sc = pd.concat(
        [
            _scores({"m": 0.1, "img": 0.2}, tasks=("i0", "i1")),
            _scores({"m": 0.3}, tasks=("w0",)).assign(checkpoint=lambda f: "w" + f["checkpoint"]),
        ],
        ignore_index=True,
    )
    ev = evaluate_suite(suite, sc, n_bootstrap=50)
    assert ev.track_names == ["image", "text"]
    assert list(ev.task_table().columns) == ["i0", "i1", "w0", "mean", "mean:image", "mean:text"]
    taus = ev.task_table()
    assert taus.loc["m", "mean:image"] == pytest.approx(taus.loc["m", ["i0", "i1"]].mean())
    assert taus.loc["m", "mean:text"] == pytest.approx(taus.loc["m", "w0"])
    assert taus.loc["m", "mean"] == pytest.approx(taus.loc["m", ["i0", "i1", "w0"]].mean())
    assert ev.summary.loc["m", "weighted_tau:image"] == pytest.approx(taus.loc["m", "mean:image"])
    assert ev.summary.loc["img", "n_tasks:text"] == 0 and math.isnan(
        ev.summary.loc["img", "weighted_tau:text"]
    )
    assert ev.pairs.query("task == 'i0' and measure == 'm'")["control"].sum() == 1
    scopes = ev.comparisons.set_index(["scope", "a", "b"])
    assert ("image", "m", "img") in scopes.index and ("text", "m", "img") not in scopes.index
    assert scopes.loc[("all", "m", "img"), "n_tasks"] == 2  # the comparison uses the common tasks
    assert ev.mean_reliability("text") == pytest.approx(
        ev.seed_agreement.set_index("task").loc["w0", "reliability"]
    )


def test_test_set_noise_widens_the_truth_interval_and_stays_paired():
    """Identical seeds: the seed interval is a point; with n_test it carries the binomial noise."""
    truth = _truth(seeds=2, noise=0.0)
    scores = _scores({"good": 0.05, "copy": 0.05}, rng_seed=3)
    scores.loc[scores["measure"] == "copy", "score"] = scores.loc[
        scores["measure"] == "good", "score"
    ].to_numpy()
    plain = evaluate(scores, truth, n_bootstrap=300).summary.loc["good"]
    assert plain["weighted_tau_seed_ci_low"] == pytest.approx(plain["weighted_tau_seed_ci_high"])
    noisy_truth = truth.assign(n_test=50)
    noisy = evaluate(scores, noisy_truth, n_bootstrap=300).summary
    row = noisy.loc["good"]
    # accuracies 63-90%: binomial errors of 4.4-6.8 points on 50 test samples, against gaps of 3 points
    assert row["weighted_tau_seed_ci_high"] - row["weighted_tau_seed_ci_low"] > 0.2
    assert row["weighted_tau"] == pytest.approx(plain["weighted_tau"])  # the point value is unchanged
    # the same noise draws for every row: identical scores get identical intervals
    copy = noisy.loc["copy"]
    assert copy["weighted_tau_seed_ci_low"] == row["weighted_tau_seed_ci_low"]
    assert copy["weighted_tau_seed_ci_high"] == row["weighted_tau_seed_ci_high"]
    # a huge test set makes the noise negligible again
    big = evaluate(scores, truth.assign(n_test=10**9), n_bootstrap=300).summary.loc["good"]
    assert big["weighted_tau_seed_ci_high"] - big["weighted_tau_seed_ci_low"] < 1e-6


def test_partial_test_sizes_and_a_single_seed_say_what_the_interval_holds():
    truth = _truth(seeds=2, noise=0.0).assign(n_test=50.0)
    truth.loc[truth["checkpoint"] == "c0", "n_test"] = np.nan  # one checkpoint without a test-set size
    scores = _scores({"good": 0.05}, rng_seed=3)
    result = evaluate(scores, truth, n_bootstrap=200)
    row = result.summary.loc["good"]
    assert row["weighted_tau_seed_ci_high"] - row["weighted_tau_seed_ci_low"] > 0.05  # noise still added
    assert any("test-set noise left out" in note and "t0" in note for note in result.notes)
    single = evaluate(scores, _truth(seeds=1, noise=0.0).assign(n_test=50.0), n_bootstrap=200)
    assert any("interval over seeds holds the test set's noise only" in note for note in single.notes)
    bare = evaluate(scores, _truth(seeds=1, noise=0.0), n_bootstrap=200)
    assert any("no interval over seeds" in note for note in bare.notes)
    assert np.isnan(bare.summary.loc["good", "weighted_tau_seed_ci_low"])
