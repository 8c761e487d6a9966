"""Published suites: packaged data, provenance, and the recomputed-vs-reported comparison.

The recomputations are done here independently, straight from the packaged CSVs with
``scipy.stats.weightedtau`` / ``pearsonr``, and compared with what the harness reports.
"""

from __future__ import annotations

import hashlib
import math
import re
from importlib import resources

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from ckptrank.bench.evaluate import reported_summary
from ckptrank.bench.harness import PUBLISHED_ROW, PUBLISHED_ROW_IN_SAMPLE, bench
from ckptrank.bench.published import PUBLISHED_SUITES, data_files, read_published_table
from ckptrank.bench.report import recommendation
from ckptrank.bench.suite import Suite, get_suite, list_suites

DATA = resources.files("ckptrank.bench") / "published_data"
TOL = 0.0015


def _provenance_rows() -> dict[str, list[str]]:
    rows = {}
    for line in (DATA / "PROVENANCE.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0].strip("`")] = cells
    return rows


def test_every_packaged_file_has_provenance_and_its_checksum():
    rows = _provenance_rows()
    csvs = [name for name in data_files() if name.endswith(".csv")]
    assert sorted(rows) == sorted(csvs)
    for name, cells in rows.items():
        digest = hashlib.sha256((DATA / name).read_bytes()).hexdigest()
        assert cells[3] == digest, name
        if name not in ("torchvision_imagenet1k_v1.csv", "keras_applications_parameters.csv"):  # written here
            assert re.search(r"[\w.-]+/[\w.-]+ @ [0-9a-f]{40}", cells[1]), cells[1]  # repo @ commit
            assert cells[2], name  # path in the repository


def test_torchvision_baseline_table_matches_torchvision_metadata():
    from torchvision import models

    table = read_published_table("torchvision_imagenet1k_v1.csv")
    for row in table.itertuples(index=False):
        meta = models.get_model_weights(row.model)["IMAGENET1K_V1"].meta
        assert meta["num_params"] == row.num_params
        assert meta["_metrics"]["ImageNet-1K"]["acc@1"] == pytest.approx(row.imagenet_top1)


def test_keras_parameter_counts_agree_with_torchvision_where_it_builds_the_same_architecture():
    """An independent check of the transcribed Keras counts on the 13 of the 19 architectures that torchvision
    also builds (counted on the meta device): the whole network against ``num_params_include_top``, and the
    network without its classifier (``fc`` or ``classifier``) against ``num_params``, the backbone that
    stable-transfer fine-tunes. Within 4%: Keras adds convolution biases in some blocks."""
    import torch
    from torchvision import models

    keras = read_published_table("keras_applications_parameters.csv").set_index("model")
    assert (keras["num_params_include_top"] - keras["top_params"] == keras["num_params"]).all()
    same = {
        "resnet50": "resnet50",
        "resnet101": "resnet101",
        "vgg16": "vgg16",
        "vgg19": "vgg19",
        "densenet121": "densenet121",
        "densenet169": "densenet169",
        "densenet201": "densenet201",
        "mobilenetv2": "mobilenet_v2",
        "mobilenetv3": "mobilenet_v3_large",
        "efficientnetb0": "efficientnet_b0",
        "efficientnetb1": "efficientnet_b1",
        "efficientnetb2": "efficientnet_b2",
        "efficientnetb3": "efficientnet_b3",
    }
    for keras_name, torch_name in same.items():
        with torch.device("meta"):
            network = models.get_model(torch_name, weights=None)
        head = getattr(network, "fc", None) or network.classifier
        whole = sum(p.numel() for p in network.parameters())
        backbone = whole - sum(p.numel() for p in head.parameters())
        assert keras.loc[keras_name, "num_params_include_top"] == pytest.approx(whole, rel=0.04), keras_name
        assert keras.loc[keras_name, "num_params"] == pytest.approx(backbone, rel=0.04), keras_name
    # VGG's convolutions are the same in both libraries, to the parameter
    assert keras.loc["vgg16", "num_params"] == 14_714_688
    suite = get_suite("published:stable-transfer")
    assert set(suite.baselines.index) == set(suite.checkpoints) and len(suite.checkpoints) == 19
    assert suite.baselines.loc["vgg19", "num_parameters"] == keras.loc["vgg19", "num_params"]


def test_stable_transfer_publishes_four_measures_for_every_pair_and_leaves_its_elementwise_hscore_out():
    raw = read_published_table("stable_transfer_source_architectures_scores.csv")
    assert len(raw) == 855 and not raw.duplicated(["target_dataset", "architecture", "metric"]).any()
    assert list(dict.fromkeys(raw["metric"])) == ["gbc", "leep", "nleep", "logme", "hscore"]
    suite = get_suite("published:stable-transfer")
    scores = suite.published_scores
    assert sorted(set(scores["measure"])) == ["GBC", "LEEP", "LogME", "NLEEP"]
    assert len(scores) == 9 * 19 * 4 and np.isfinite(scores["score"]).all()
    truth_pairs = set(zip(suite.ground_truth["task"], suite.ground_truth["checkpoint"], strict=True))
    assert set(zip(scores["task"], scores["checkpoint"], strict=True)) == truth_pairs
    # values as published (source rows 0, 38, 76, 114 and 210: resnet50 on sun397, xception on stanford_dogs)
    got = scores.set_index(["task", "checkpoint", "measure"])["score"]
    assert got["sun397", "resnet50", "GBC"] == -277.8551330566406
    assert got["sun397", "resnet50", "LEEP"] == -3.097930908203125
    assert got["sun397", "resnet50", "NLEEP"] == -1.6807841062545776
    assert got["sun397", "resnet50", "LogME"] == 1.7732532024383545
    assert got["stanford_dogs", "xception", "GBC"] == -4.390489101409912
    assert any("element-wise" in note for note in suite.notes)


def test_stable_transfer_measures_evaluated_against_an_independent_recomputation():
    truth = pd.read_csv(DATA / "stable_transfer_source_architectures_acc.csv")
    raw = pd.read_csv(DATA / "stable_transfer_source_architectures_scores.csv")
    expected = {}
    for metric, name in (("logme", "LogME"), ("nleep", "NLEEP"), ("gbc", "GBC"), ("leep", "LEEP")):
        taus = []
        for task, rows in truth.groupby("target_dataset", sort=False):
            s = raw[(raw.target_dataset == task) & (raw.metric == metric)].set_index("architecture")["score"]
            a = rows.set_index("architecture")["finetuned_backbone_test_acc"].loc[s.index]
            taus.append(sps.weightedtau(s.to_numpy(), a.to_numpy()).statistic)
        expected[name] = float(np.mean(taus))
    tau = bench("published:stable-transfer", n_bootstrap=0).evaluation.summary["weighted_tau"]
    for name, value in expected.items():
        assert tau[name] == pytest.approx(value, abs=1e-12), name


def test_segmentation_suite_publishes_four_measures_for_every_pair_and_no_static_baseline():
    raw = read_published_table("stable_transfer_source_datasets_table.csv")
    assert len(raw) == 5 * 17 * 16 and raw.iloc[:, 0].tolist() == list(range(len(raw)))  # the source's index
    assert list(dict.fromkeys(raw["Transferability Metric"])) == ["leep", "nleep", "gbc", "hscore", "logme"]
    assert not (raw["Source Dataset"] == raw["Target Dataset"]).any()  # never its own source
    # every metric's block states the same test mean IoU for a pair
    iou = raw.pivot_table(
        index=["Target Dataset", "Source Dataset"], columns="Transferability Metric", values="Test Mean IoU"
    )
    assert iou.shape == (272, 5) and (iou.max(axis=1) == iou.min(axis=1)).all()
    suite = get_suite("published:stable-transfer-segmentation")
    assert suite.baselines is None and suite.default_protocol == "finetune"
    scores = suite.published_scores
    assert sorted(set(scores["measure"])) == ["GBC", "LEEP", "LogME", "NLEEP"]
    assert len(scores) == 272 * 4 and np.isfinite(scores["score"]).all()
    truth_pairs = set(zip(suite.ground_truth["task"], suite.ground_truth["checkpoint"], strict=True))
    assert set(zip(scores["task"], scores["checkpoint"], strict=True)) == truth_pairs
    # values as published: source rows 0 (leep, city -> isprs) and 54 (leep, coco -> pvoc)
    got = scores.set_index(["task", "checkpoint", "measure"])["score"]
    assert got["isprs", "city", "LEEP"] == -1.231469988822937
    assert got["pvoc", "coco", "LEEP"] == -0.3993972539901733
    gt = suite.ground_truth.set_index(["task", "checkpoint"])["accuracy"]
    assert gt["isprs", "city"] == 0.4564622938632965 and gt["pvoc", "coco"] == 0.7060430645942688
    assert any("element-wise" in note for note in suite.notes)


def test_segmentation_measures_evaluated_against_an_independent_recomputation():
    raw = pd.read_csv(DATA / "stable_transfer_source_datasets_table.csv", index_col=0)
    expected = {}
    for metric, name in (("logme", "LogME"), ("nleep", "NLEEP"), ("gbc", "GBC"), ("leep", "LEEP")):
        block = raw[raw["Transferability Metric"] == metric]
        taus = [
            sps.weightedtau(rows["Transferability Metric Score"], rows["Test Mean IoU"]).statistic
            for _, rows in block.groupby("Target Dataset")
        ]
        expected[name] = float(np.mean(taus))
    tau = bench("published:stable-transfer-segmentation", n_bootstrap=0).evaluation.summary["weighted_tau"]
    for name, value in expected.items():
        assert tau[name] == pytest.approx(value, abs=1e-12), name
    assert expected["LogME"] == pytest.approx(0.638, abs=5e-4)  # benchmarks/RESULTS.md, round 7


def test_default_row_on_the_segmentation_suite_is_the_leading_eigenvector_of_the_four_measures_by_hand():
    """Round 7's outside check (benchmarks/RESULTS.md): no parameter count, so the default ranker
    projects the four measures' standardised ranks on the leading eigenvector of their correlation
    matrix, signed so that the weights sum to more than 0."""
    raw = pd.read_csv(DATA / "stable_transfer_source_datasets_table.csv", index_col=0)
    wide = raw[raw["Transferability Metric"] != "hscore"].pivot_table(
        index=["Target Dataset", "Source Dataset"],
        columns="Transferability Metric",
        values="Transferability Metric Score",
    )
    iou = raw.groupby(["Target Dataset", "Source Dataset"])["Test Mean IoU"].first()
    taus = []
    for task, block in wide.groupby(level=0):
        z = np.column_stack([sps.rankdata(block[m]) for m in block.columns])
        z = (z - z.mean(axis=0)) / z.std(axis=0)
        _, vectors = np.linalg.eigh(np.corrcoef(z, rowvar=False))
        w = vectors[:, -1] * (1 if vectors[:, -1].sum() > 0 else -1)
        taus.append(sps.weightedtau(z @ w, iou.loc[task].loc[block.index.get_level_values(1)]).statistic)
    tau = bench("published:stable-transfer-segmentation", n_bootstrap=0).evaluation.summary["weighted_tau"]
    assert tau[PUBLISHED_ROW] == pytest.approx(float(np.mean(taus)), abs=1e-12)
    assert tau[PUBLISHED_ROW] == pytest.approx(0.593, abs=5e-4)


def _transfergraph_by_hand() -> tuple[pd.DataFrame, pd.Series]:
    """TransferGraph's image zoo straight from the packaged copies: (task, checkpoint) -> LogME and
    regularised H-score (repeated scores averaged), and the mean fine-tuned eval accuracy."""
    raw = pd.read_csv(DATA / "transfergraph_image_scores.csv", index_col=0)
    raw = raw[raw["metric"].isin(["TransferabilityMethod.LOG_ME", "TransferabilityMethod.REG_H_SCORE"])]
    scores = raw.pivot_table(
        index=["target_dataset", "model"], columns="metric", values="score", aggfunc="mean"
    )
    records = pd.read_csv(DATA / "transfergraph_image_records.csv", index_col=0)
    truth = records.groupby(["finetuned_dataset", "model"])["eval_accuracy"].mean()
    common = scores.index.intersection(truth.index)
    return scores.loc[common], truth.loc[common]


def test_transfergraph_suite_is_the_scored_pairs_of_the_records_with_repeated_scores_averaged():
    raw = read_published_table("transfergraph_image_scores.csv")
    assert len(raw) == 2468 and raw["metric"].isna().sum() == 2  # two truncated source lines
    suite = get_suite("published:transfergraph-image")
    scores = suite.published_scores.set_index(["task", "checkpoint", "measure"])["score"]
    assert sorted(set(suite.published_scores["measure"])) == ["logme", "reg_hscore"]
    dtd = raw[(raw["target_dataset"] == "dtd") & (raw["metric"] == "TransferabilityMethod.LOG_ME")]
    repeated = dtd[dtd.duplicated("model", keep=False)]
    assert repeated["model"].nunique() == 60  # scored twice on DTD: the suite keeps their mean
    name = repeated["model"].iloc[0]
    assert scores["dtd", name, "logme"] == pytest.approx(
        repeated.loc[repeated["model"] == name, "score"].mean()
    )
    expected, truth = _transfergraph_by_hand()
    assert len(expected) == 1145 and len(suite.ground_truth) == 1145
    gt = suite.ground_truth.set_index(["task", "checkpoint"])["accuracy"]
    assert gt.loc[truth.index].to_numpy() == pytest.approx(truth.to_numpy())
    # tasks whose records have no published score are not tasks of the suite
    assert "eurosat" not in suite.tasks and set(suite.tasks) == set(truth.index.get_level_values(0))
    models = read_published_table("transfergraph_image_models.csv").set_index("model")
    assert suite.baselines.loc["google/vit-large-patch16-224", "num_parameters"] == 304326632
    assert set(suite.baselines.index) == set(suite.checkpoints) <= set(models.index)


def test_transfergraph_measures_and_the_two_feature_default_ranker_against_a_recomputation_by_hand():
    """With LogME and the parameter count only, the agreement ranker's leading eigenvector is
    (1, sign r) / sqrt(2), r the correlation of their ranks: the score is z(LogME) + sign(r) z(size)
    up to a positive factor (benchmarks/RESULTS.md, round 7's third check)."""
    from ckptrank.bench.meta import DEFAULT_DESIGN, LEARNED, held_out_evaluation, meta_table

    scores, truth = _transfergraph_by_hand()
    params = read_published_table("transfergraph_image_models.csv").set_index("model")["number_of_parameters"]
    logme_taus, default_taus = [], []
    for task, block in scores.groupby(level=0):
        models = block.index.get_level_values(1)
        y = truth.loc[task].loc[models].to_numpy()
        logme = block["TransferabilityMethod.LOG_ME"].to_numpy()
        z = np.column_stack([sps.rankdata(logme), sps.rankdata(np.log10(params.loc[models].to_numpy()))])
        z = (z - z.mean(axis=0)) / z.std(axis=0)
        r = np.corrcoef(z, rowvar=False)[0, 1]
        logme_taus.append(sps.weightedtau(logme, y).statistic)
        default_taus.append(sps.weightedtau(z[:, 0] + np.sign(r) * z[:, 1], y).statistic)
    tau = bench("published:transfergraph-image", n_bootstrap=0).evaluation.summary["weighted_tau"]
    assert tau["logme"] == pytest.approx(float(np.mean(logme_taus)), abs=1e-12)
    assert tau["logme"] == pytest.approx(0.321, abs=5e-4)
    rows, gt = meta_table(["published:transfergraph-image"])
    held = held_out_evaluation(rows, gt, n_bootstrap=0, design=DEFAULT_DESIGN)
    got = held.evaluation.summary.loc[LEARNED, "weighted_tau"]
    assert got == pytest.approx(float(np.mean(default_taus)), abs=1e-12)
    assert got == pytest.approx(0.306, abs=5e-4)


def test_every_published_suite_loads_with_its_shape():
    assert set(PUBLISHED_SUITES) <= set(list_suites())
    shapes = {
        "published:tllib": (8, 10, 80),
        "published:sfda-group1": (11, 11, 121),
        "published:sfda-group2": (11, 12, 132),
        "published:modelspider": (8, 10, 80),
        "published:emms-vit": (11, 13, 143),
        "published:parc": (7, 32, 196),
        "published:stable-transfer": (9, 19, 342),
        "published:stable-transfer-segmentation": (17, 17, 272),
        "published:transfergraph-image": (8, 145, 1145),
    }
    for name, (tasks, checkpoints, rows) in shapes.items():
        suite = get_suite(name)
        assert (len(suite.tasks), len(suite.checkpoints), len(suite.ground_truth)) == (
            tasks,
            checkpoints,
            rows,
        )
        assert suite.provenance and "@" in suite.provenance
        assert not suite.can_score
    assert get_suite("published:stable-transfer").protocols == ["finetune", "linear"]


# --- tllib: 37 of 64 reported values agree --------------------------------------------------------------


def _tllib_independent() -> pd.DataFrame:
    gt = pd.read_csv(DATA / "tllib_finetune_acc.csv").set_index("model")
    scores = pd.read_csv(DATA / "tllib_metric_scores.csv")
    reported = pd.read_csv(DATA / "tllib_reported_correlations.csv")
    rows = []
    for r in reported.itertuples(index=False):
        s = scores[(scores.dataset == r.dataset) & (scores.metric == r.metric)].set_index("model")["score"]
        a = gt.loc[s.index, r.dataset]
        if r.statistic == "Weighted Tau":
            value = sps.weightedtau(s.to_numpy(), a.to_numpy()).statistic
        else:
            value = sps.pearsonr(s.to_numpy(), a.to_numpy()).statistic
        rows.append((r.dataset, r.metric, r.statistic, r.value, value))
    return pd.DataFrame(rows, columns=["dataset", "metric", "statistic", "reported", "recomputed"])


def test_tllib_recomputed_vs_reported_counts():
    independent = _tllib_independent()
    agree = (independent["recomputed"] - independent["reported"]).abs() <= TOL
    assert len(independent) == 64 and int(agree.sum()) == 37
    aircraft = independent[independent.dataset == "Aircraft"]
    assert not ((aircraft["recomputed"] - aircraft["reported"]).abs() <= TOL).any()  # all 8 far off
    assert (aircraft["recomputed"] - aircraft["reported"]).abs().max() > 0.4

    result = bench("published:tllib", n_bootstrap=0)
    rep = result.evaluation.reported
    assert len(rep) == 64 and int(rep["agrees"].astype(bool).sum()) == 37
    assert int(rep["flagged"].sum()) == 27
    tasks = {"Aircraft": "aircraft", "OxfordIIITPets": "pets", "StanfordCars": "cars"}
    merged = independent.assign(
        task=independent.dataset.map(lambda d: tasks.get(d, d.lower())),
        stat=independent.statistic.map({"Weighted Tau": "weighted_tau", "Pearson Corr": "pearson"}),
    ).merge(rep, left_on=["task", "metric", "stat"], right_on=["task", "measure", "statistic"])
    assert len(merged) == 64
    np.testing.assert_allclose(merged["recomputed_x"], merged["recomputed_y"], atol=1e-12)
    # the DTD NCE column duplicates LogME upstream: identical recomputed values
    dtd = rep[(rep.task == "dtd") & (rep.statistic == "weighted_tau")].set_index("measure")["recomputed"]
    assert dtd["NCE"] == dtd["LogME"]


def test_tllib_baselines_match_landscape():
    summary = bench("published:tllib", n_bootstrap=0).evaluation.summary
    assert summary.loc["source_accuracy", "weighted_tau"] == pytest.approx(0.724, abs=5e-4)
    assert summary.loc["LogME", "weighted_tau"] == pytest.approx(
        np.mean(_tllib_independent().query("metric == 'LogME' and statistic == 'Weighted Tau'")["recomputed"])
    )
    # no published measure beats the best target-blind baseline on this table
    assert summary.loc[["HScore", "LEEP", "LogME", "NCE"], "marked"].all()


# --- Model Spider: 4 of 72 -------------------------------------------------------------------------------


def test_modelspider_recomputed_vs_reported_counts():
    gt = pd.read_csv(DATA / "modelspider_single_source_finetune.csv")
    scores = pd.read_csv(DATA / "modelspider_baseline_metric_scores.csv")
    reported = pd.read_csv(DATA / "modelspider_reported_weighted_tau.csv").set_index("method")
    datasets = {"aircraft": "Aircraft", "caltech101": "Caltech101", "cars": "Cars", "cifar10": "CIFAR10"}
    datasets |= {"cifar100": "CIFAR100", "dtd": "DTD", "pets": "Pet", "sun397": "SUN397"}
    columns = {"H-Score": "H-Score", "NCE": "NCE", "LEEP": "LEEP", "N-LEEP": "NLEEP", "LogME": "LogME"}
    columns |= {"PACTran": "PACTranDirichlet", "OTCE": "OTCE", "LFC": "LFC", "GBC": "GBC"}
    agree = total = 0
    for method, column in columns.items():
        for task, dataset in datasets.items():
            s = scores[scores.Dataset == dataset].set_index("Model")[column]
            a = gt[gt.dataset == dataset].set_index("model")["finetune_score"].loc[s.index]
            value = sps.weightedtau(s.to_numpy(), a.to_numpy()).statistic
            total += 1
            agree += abs(value - reported.loc[method, task]) <= TOL
    assert (agree, total) == (4, 72)

    rep = bench("published:modelspider", n_bootstrap=0).evaluation.reported
    compared = rep[rep["agrees"].notna()]
    assert len(compared) == 72 and int(compared["agrees"].astype(bool).sum()) == 4
    assert set(rep.loc[rep["agrees"].isna(), "measure"]) == {"ModelSpider"}  # reported only, no scores


def test_modelspider_parameter_count_beats_every_published_metric():
    result = bench("published:modelspider", n_bootstrap=300)
    ev = result.evaluation
    tau = ev.summary["weighted_tau"]
    # the figures, and an independent recomputation of the baseline from the packaged truth
    gt = pd.read_csv(DATA / "modelspider_single_source_finetune.csv")
    gt = gt[~gt.dataset.isin(["dSprites", "UTKFace"])].pivot(
        index="model", columns="dataset", values="finetune_score"
    )
    counted = {n: _inference_parameters(n) for n in gt.index}
    assert tau["num_parameters"] == pytest.approx(_mean_tau(gt, counted), abs=1e-12)
    assert round(tau["num_parameters"], 3) == 0.680
    assert (round(tau["LogME"], 3), round(tau["H-Score"], 3), round(tau["NCE"], 3)) == (0.675, 0.657, 0.655)
    # the 9 published metrics, after the default ranker's row on them
    assert ev.measures[0] == PUBLISHED_ROW  # held out: the default ranker is fitted on no task
    measures = ev.measures[1:]
    assert len(measures) == 9 and (tau[measures] < tau["num_parameters"]).all()
    # paired comparisons with the parameter count, on the same 80 (task, checkpoint) pairs
    versus = ev.versus("num_parameters").loc[measures]
    assert (versus["n_pairs"] == 80).all()
    np.testing.assert_allclose(versus["diff"], tau[measures] - tau["num_parameters"], atol=1e-12)
    assert (versus["verdict"] != "better").all()  # none is significantly better than the parameter count
    assert versus.loc["LogME", "verdict"] == "tie" and versus.loc["LFC", "verdict"] == "worse"
    # Model Spider's learned ranker: reported only (0.800), set beside the baselines computed here
    means = reported_summary(ev).set_index("measure")
    assert means.loc["ModelSpider", "reported"] == pytest.approx(0.800, abs=5e-4)
    assert math.isnan(means.loc["ModelSpider", "recomputed"])
    assert means.loc["ModelSpider", "num_parameters"] == pytest.approx(tau["num_parameters"])


# --- SFDA group 1: baselines and the reported table --------------------------------------------------------


def _inference_parameters(name: str) -> int:
    """Parameters of a torchvision architecture built on the CPU as it runs at inference (no aux heads)."""
    from torchvision import models

    options = {"aux_logits": False, "init_weights": False} if name in ("googlenet", "inception_v3") else {}
    return sum(p.numel() for p in models.get_model(name, weights=None, **options).parameters())


def _mean_tau(truth: pd.DataFrame, values: dict[str, float]) -> float:
    """Mean over tasks of scipy's weighted tau of ``values`` against a (model x task) truth table."""
    names = list(truth.index)
    score = np.array([values[n] for n in names], dtype=float)
    return float(np.mean([sps.weightedtau(score, truth[t].to_numpy()).statistic for t in truth.columns]))


def test_parameter_count_baseline_is_counted_on_the_architectures():
    from ckptrank.bench.published import architecture_parameters

    names = ["googlenet", "inception_v3", "resnet50", "mobilenet_v2"]
    counts = architecture_parameters(names)
    assert counts.to_dict() == {n: float(_inference_parameters(n)) for n in names}
    assert counts["inception_v3"] == 23_834_568
    # torchvision's weights metadata counts Inception-v3 with its auxiliary classifier, GoogLeNet without
    meta = read_published_table("torchvision_imagenet1k_v1.csv").set_index("model")["num_params"]
    from torchvision import models

    full = models.get_model("inception_v3", weights=None, init_weights=False)
    with_aux = sum(p.numel() for p in full.parameters())
    assert meta["inception_v3"] == with_aux != counts["inception_v3"]
    assert meta["googlenet"] == counts["googlenet"]
    with pytest.raises(ValueError, match="no classification architecture 'resnet5'"):
        architecture_parameters(["resnet5"])


def test_sfda_group1_baselines_and_reported_values():
    result = bench("published:sfda-group1", n_bootstrap=0)
    summary = result.evaluation.summary
    assert result.source == "none" and result.evaluation.measures == []
    assert summary.loc["source_accuracy", "weighted_tau"] == pytest.approx(0.654, abs=5e-4)
    # the figure, recomputed independently: counted architectures, scipy on the packaged truth
    truth = pd.read_csv(DATA / "sfda_group1_finetune_acc.csv").set_index("model")
    counted = {n: _inference_parameters(n) for n in truth.index}
    assert _mean_tau(truth, counted) == pytest.approx(0.609, abs=5e-4)
    assert summary.loc["num_parameters", "weighted_tau"] == pytest.approx(
        _mean_tau(truth, counted), abs=1e-12
    )
    # with the weights metadata's count (Inception-v3 with its auxiliary classifier) it would read 0.578
    meta = read_published_table("torchvision_imagenet1k_v1.csv").set_index("model")["num_params"]
    assert _mean_tau(truth, meta.to_dict()) == pytest.approx(0.578, abs=5e-4)
    rep = result.evaluation.reported
    assert len(rep) == 55 and rep["agrees"].isna().all()
    sfda_mean = rep[rep.measure == "SFDA"]["reported"].mean()
    assert sfda_mean == pytest.approx(0.710, abs=5e-4)  # ALGORITHMS.md 5.1
    # LANDSCAPE.md 3.1: the target-blind ImageNet accuracy beats every reported measure but SFDA
    means = reported_summary(result.evaluation).set_index("measure")
    assert means["best_baseline"].eq("source_accuracy").all()
    assert means["beats_baseline"].to_dict() == {
        "LEEP": False,
        "LogME": False,
        "NLEEP": False,
        "PARC": False,
        "SFDA": True,
    }
    assert means.loc["NLEEP", "reported"] == pytest.approx(0.61145, abs=1e-5)
    # every reported mean sits beside both baselines computed here on the same 11 tasks
    assert (
        means["num_parameters"].round(3).eq(0.609).all() and means["source_accuracy"].round(3).eq(0.654).all()
    )


def test_user_scores_against_a_published_suite_are_compared_with_reported(tmp_path):
    gt = read_published_table("sfda_group1_finetune_acc.csv").set_index("model")
    # a "measure" that is the ground truth itself: weighted tau 1 on every task
    rows = [(task, model, "SFDA", gt.loc[model, task]) for task in gt.columns for model in gt.index]
    path = tmp_path / "scores.csv"
    pd.DataFrame(rows, columns=["task", "checkpoint", "measure", "score"]).to_csv(path, index=False)
    result = bench("published:sfda-group1", scores=path, n_bootstrap=200)
    assert result.evaluation.summary.loc["SFDA", "weighted_tau"] == pytest.approx(1.0)
    assert not result.evaluation.summary.loc["SFDA", "marked"]
    assert result.evaluation.summary.loc["SFDA", "verdict"] == "better"
    assert result.evaluation.summary.loc["SFDA", "n_common_pairs"] == 121
    rep = result.evaluation.reported
    sfda = rep[rep.measure == "SFDA"]
    assert len(sfda) == 11 and sfda["flagged"].all()
    np.testing.assert_allclose(sfda["recomputed"], 1.0, atol=1e-12)


def test_two_published_ground_truths_disagree_as_landscape_says():
    tllib = get_suite("published:tllib").mean_truth()
    sfda = get_suite("published:sfda-group1").mean_truth()
    shared_tasks = [t for t in tllib.index if t in sfda.index]
    shared_models = [m for m in tllib.columns if m in sfda.columns]
    assert len(shared_tasks) == 8 and len(shared_models) == 10
    taus = [
        sps.weightedtau(
            tllib.loc[t, shared_models].to_numpy(), sfda.loc[t, shared_models].to_numpy()
        ).statistic
        for t in shared_tasks
    ]
    assert np.mean(taus) == pytest.approx(0.541, abs=5e-4)


def test_published_suite_without_scores_or_baselines_asks_for_a_score_file():
    with pytest.raises(ValueError, match=r"no published score table and no static baseline.*--scores FILE"):
        bench("published:sfda-group2")
    with pytest.raises(ValueError, match="has no measure 'sfda'; measures: HScore, LEEP, LogME, NCE"):
        bench("published:tllib", measures="sfda")
    result = bench("published:tllib", measures="logme,nce", n_bootstrap=0)
    # the default ranker's row is always evaluated, as on suites ckptrank scores
    assert result.evaluation.measures == [PUBLISHED_ROW, "LogME", "NCE"]


def test_the_default_rankers_row_on_a_published_table_is_its_held_out_figure():
    """stable-transfer was never fitted on: the row's mean weighted tau is the held-out figure that the
    meta-dataset's evaluation (another code path: meta.held_out_evaluation) recorded in the shipped ranker."""
    from ckptrank.combine import default_ranker

    result = bench("published:stable-transfer", n_bootstrap=0)
    ev = result.evaluation
    assert ev.measures[0] == PUBLISHED_ROW and ev.summary.loc[PUBLISHED_ROW, "kind"] == "default"
    held = default_ranker().info["held_out"]["leave_one_task_out"]["per_suite"]["published:stable-transfer"]
    assert ev.summary.loc[PUBLISHED_ROW, "weighted_tau"] == pytest.approx(held["weighted_tau"], abs=1e-12)
    missing = [n for n in result.notes if n.startswith(f"'{PUBLISHED_ROW}'") and "left out" in n]
    assert len(missing) == 1 and "hscore, nce are left out of it" in missing[0]
    weights = [n for n in result.notes if n.startswith(f"'{PUBLISHED_ROW}'") and "agreement" in n]
    assert len(weights) == 1 and weights[0].endswith("counted against size, on 6 of 9 task(s)")
    assert not any("was not scored" in n or "scored no checkpoint" in n for n in result.notes)  # said once


def test_the_default_rankers_row_is_in_sample_on_a_table_with_its_training_truth(monkeypatch):
    """A default ranker fitted on Model Spider's table (as the learned pairwise ranker, the default until
    round 6, was; its weights) is in-sample there and on LogME's table (published:tllib), whose truth is
    Model Spider's: the row says so, and the recommendation passes over it."""
    import ckptrank.combine as combine
    from ckptrank.rankers import HAS_HEAD, PARAMETERS, PairwiseRanker

    assert combine.default_ranker().info["fitted_on"]["suites"] == []  # the shipped one: held out everywhere
    assert PUBLISHED_ROW in bench("published:modelspider", n_bootstrap=0).evaluation.measures
    fitted = PairwiseRanker(
        features=[*combine.DEFAULT_MEASURES, PARAMETERS, HAS_HEAD],
        weights=np.array([0.26, 0.69, -0.36, 1.27, 0.59, -0.16, 1.50, -0.20]),
        info={"fitted_on": {"suites": ["published:modelspider"]}},
    )
    monkeypatch.setattr(combine, "default_ranker", lambda: fitted)
    result = bench("published:tllib", n_bootstrap=0)
    tllib = result.evaluation
    assert PUBLISHED_ROW_IN_SAMPLE in tllib.measures and PUBLISHED_ROW not in tllib.measures
    assert any(
        "80 of the 80 ground-truth results of published:tllib are published:modelspider's" in n
        for n in result.notes
    )
    spider = bench("published:modelspider", n_bootstrap=200).evaluation
    assert PUBLISHED_ROW_IN_SAMPLE in spider.measures
    # an in-sample row is never recommended (its figure flatters it): the best measure is
    tau = spider.summary["weighted_tau"]
    assert tau[PUBLISHED_ROW_IN_SAMPLE] > tau["LogME"]
    assert "or by LogME, which does no worse" in recommendation(spider)


def _synthetic_published(measures: list[str], with_baselines: bool) -> Suite:
    """6 checkpoints x 2 tasks; the published measures all agree with the truth."""
    names = [f"m{i}" for i in range(6)]
    truth = pd.DataFrame(
        [(t, c, 0, 50.0 + i) for t in ("t1", "t2") for i, c in enumerate(names)],
        columns=["task", "checkpoint", "seed", "accuracy"],
    )
    scores = pd.DataFrame(
        [(t, c, m, float(i)) for t in ("t1", "t2") for i, c in enumerate(names) for m in measures],
        columns=["task", "checkpoint", "measure", "score"],
    )
    baselines = pd.DataFrame({"num_parameters": [1e6 * (6 - i) for i in range(6)]}, index=names)
    return Suite(
        name="test:published-synthetic",
        ground_truth=truth,
        published_scores=scores,
        baselines=baselines if with_baselines else None,
    )


def test_the_default_rankers_row_needs_half_of_its_measures_in_the_table():
    too_few = bench(_synthetic_published(["LEEP", "GBC"], with_baselines=True), n_bootstrap=0)
    assert PUBLISHED_ROW not in too_few.evaluation.measures
    assert any(n.startswith(f"no '{PUBLISHED_ROW}' row: the score table has no") for n in too_few.notes)
    half = bench(_synthetic_published(["LogME", "H-Score", "NCE"], with_baselines=False), n_bootstrap=0)
    ev = half.evaluation
    assert ev.measures[0] == PUBLISHED_ROW  # 3 of 6, no parameter counts: the measures alone decide
    assert ev.summary.loc[PUBLISHED_ROW, "weighted_tau"] == pytest.approx(1.0)
    assert any("leep, nleep, gbc are left out of it" in n for n in half.notes)
    assert any("the parameter count of 6 checkpoint(s) is unknown" in n for n in half.notes)


def test_stable_transfer_protocols():
    linear = bench(
        "published:stable-transfer",
        scores=pd.DataFrame(
            {"task": ["cifar10"] * 3, "checkpoint": ["resnet50", "vgg16", "xception"]}
        ).assign(measure="m", score=[1.0, 2.0, 3.0]),
        protocol="linear",
        n_bootstrap=0,
    )
    assert linear.config["protocol"] == "linear"
    with pytest.raises(ValueError, match="no ground truth for protocol 'full'"):
        bench("published:stable-transfer", scores=linear.scores, protocol="full")


def test_in_sample_is_judged_on_the_protocol_evaluated_and_the_one_fitted_on(monkeypatch):
    """For a default ranker fitted on v1 (as the learned pairwise ranker was), a suite holding v1's
    fitted ('full') truth is in-sample when that protocol is evaluated, not when its other protocol is;
    v1's 'linear' truth alone, which the ranker was not fitted on, is not."""
    import ckptrank.combine as combine
    from ckptrank.bench.harness import _fitted_on_note
    from ckptrank.rankers import PairwiseRanker

    assert _fitted_on_note(get_suite("neucrab-mini-v1")) is None  # the shipped ranker: fitted on nothing
    fitted = PairwiseRanker(features=["logme"], info={"fitted_on": {"suites": ["neucrab-mini-v1"]}})
    monkeypatch.setattr(combine, "default_ranker", lambda: fitted)

    v1 = get_suite("neucrab-mini-v1").ground_truth
    full = v1[v1["protocol"] == "full"]
    other = full.assign(protocol="other", accuracy=full["accuracy"] + 1.0)
    both = Suite(
        name="test:v1-copy", ground_truth=pd.concat([full, other, other.assign(seed=other["seed"] + 10)])
    )
    assert "are neucrab-mini-v1's" in _fitted_on_note(both, protocol="full")
    assert _fitted_on_note(both, protocol="other") is None
    linear = Suite(name="test:v1-linear", ground_truth=v1[v1["protocol"] == "linear"])
    assert _fitted_on_note(linear) is None


class _StubEvaluation:
    """What :func:`recommendation` reads: a summary, the confidence and a paired comparison (a tie)."""

    def __init__(self, rows: dict[str, tuple[str, float]]) -> None:
        self.config = {"confidence": 0.95}
        self.summary = pd.DataFrame(
            [
                {
                    "weighted_tau": tau,
                    "kind": kind,
                    "n_tasks": 4,
                    "best_baseline": None if kind == "baseline" else "num_parameters",
                    "best_baseline_tau": 0.1,
                    "diff_vs_baseline": tau - 0.1,
                    "diff_ci_low": 0.05,
                    "diff_ci_high": 0.6,
                    "verdict": None if kind == "baseline" else "better",
                }
                for tau, kind in ((t, k) for k, t in rows.values())
            ],
            index=list(rows),
        )

    def comparison(self, a: str, b: str) -> dict[str, object]:
        return {"verdict": "tie", "ci_low": -0.1, "ci_high": 0.2}


def test_the_rankers_published_row_competes_like_a_measure_the_exact_default_keeps_its_preference():
    published = _StubEvaluation(
        {PUBLISHED_ROW: ("default", 0.5), "NLEEP": ("measure", 0.6), "num_parameters": ("baseline", 0.1)}
    )
    assert recommendation(published).startswith("Use NLEEP:")
    exact = _StubEvaluation(
        {
            "ckptrank rank (default)": ("default", 0.5),
            "nleep": ("measure", 0.6),
            "num_parameters": ("baseline", 0.1),
        }
    )
    assert recommendation(exact).startswith("Use the default ranker (ckptrank rank):")
