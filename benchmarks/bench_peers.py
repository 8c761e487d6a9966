"""Time ckptrank's static measures side by side with plain re-implementations of the peers' algorithms.

Usage::

    python benchmarks/bench_peers.py                 # both shapes, 3 runs, DEFAULT_MEASURES (~2-3 min)
    python benchmarks/bench_peers.py --all           # every static measure (ckptrank-only rows too)
    python benchmarks/bench_peers.py --quick         # CI-size shapes (10-30 s)
    python benchmarks/bench_peers.py --runs 5 --measures leep,nce

Each peer below is written here from its paper's algorithm, in the plain numpy/scikit-learn style of
the authors' reference code (float64 arithmetic, the algorithm as published, no fast paths); nothing
is copied from any reference repository. Inputs are those ``bench_measures.py`` uses: clustered
float32 features (``realistic_features``) and float32 1000-way source probabilities informative
about the labels. For every measure the ckptrank call and the peer call alternate within each of
``--runs`` rounds in one process (the order flips every round), after one untimed warm-up on a small
input, so both see the same machine load. The table gives the medians, their ratio (below 1:
ckptrank is faster), the ratio of the fastest runs (steadier under load) and both scores (they
measure the same thing; the notes below name where the definitions differ on purpose). ckptrank is
timed through its public functions, so input validation is included.

Peers
-----
leep        Nguyen et al. 2020: joint P(y, z) by per-class sums, P(y | z), EEP = theta @ P(y|z)^T.
nce         Tran et al. 2019: hard source labels argmax(theta), plug-in H(Y | Z).
logme       You et al. 2021: MacKay's fixed point for (alpha, beta) per class on the eigenpairs of
            F^T F (n > D) or the SVD of F, at most 11 iterations, tolerance 1e-3 on alpha / beta.
hscore      Bao et al. 2019: tr(pinv(cov(f)) cov(E[f | y])) with numpy covariances and pinv.
reg_hscore  Ibrahim et al. 2022: H-score with scikit-learn's Ledoit-Wolf shrunk covariance.
transrate   Huang et al. 2022: coding rates as d x d log-determinants, uniform class weights.
gbc         Pandy et al. 2022: PCA to 64 (scikit-learn default solver), spherical class Gaussians,
            minus the sum of the pairwise Bhattacharyya coefficients.
parc        Bolya et al. 2021: PCA to 32, per-dimension standardisation, 1 - Pearson RDMs of features and
            one-hot labels, 100 x Spearman; on a random subset of 3000 samples as ckptrank's default
            (ckptrank's subset is stratified, so the scores differ slightly).
knn         leave-one-out 1-NN accuracy with blocked Euclidean distances (Euclidean, all samples).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

SHAPES = {
    "n=10k d=2048 C=100": dict(n=10_000, d=2_048, n_classes=100),
    "n=5k d=768 C=10": dict(n=5_000, d=768, n_classes=10),
}
QUICK_SHAPES = {
    "n=2k d=256 C=20": dict(n=2_000, d=256, n_classes=20),
    "n=1k d=128 C=5": dict(n=1_000, d=128, n_classes=5),
}
N_SOURCE = 1000
QUICK_N_SOURCE = 100
SOURCE_MEASURES = ("leep", "nce")
HEADER = (
    "| measure | runs | ckptrank s | peer s | ckptrank/peer | ratio of minima "
    "| ckptrank score | peer score |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|"
)
#: Timed by default, so that a default run stays within about 3 minutes on a loaded 2-core machine
#: (with ``--max-seconds``). ``--all`` adds gbc, knn, parc, reg_hscore and transrate (the plain peers of the
#: last two take 20-60 s a call at n=10k d=2048: d x d inverses and log-determinants per class) and the
#: measures without a peer here (linear_probe, nleep, sfda).
DEFAULT_MEASURES = ("leep", "nce", "logme", "hscore")
#: A timed sample of a fast measure is the mean of enough back-to-back calls to last this long.
MIN_SAMPLE_SECONDS = 0.25


# ----------------------------------------------------------------------------------------------
# Peers: the published algorithms, written plainly (labels are 0..C-1 integers here)
# ----------------------------------------------------------------------------------------------


def peer_leep(probs: np.ndarray, labels: np.ndarray) -> float:
    """LEEP: mean log expected empirical prediction (Nguyen et al., ICML 2020)."""
    n = labels.shape[0]
    n_classes = int(labels.max()) + 1
    joint = np.zeros((n_classes, probs.shape[1]))
    for c in range(n_classes):
        joint[c] = probs[labels == c].sum(axis=0) / n
    conditional = joint / joint.sum(axis=0, keepdims=True)
    eep = probs @ conditional.T
    return float(np.mean(np.log(eep[np.arange(n), labels])))


def peer_nce(probs: np.ndarray, labels: np.ndarray) -> float:
    """NCE: minus the conditional entropy of the labels given the argmax source class (Tran et al. 2019)."""
    z = probs.argmax(axis=1)
    n_classes = int(labels.max()) + 1
    joint = np.bincount(z * n_classes + labels, minlength=probs.shape[1] * n_classes).astype(np.float64)
    joint = joint.reshape(probs.shape[1], n_classes) / labels.shape[0]
    p_z = joint.sum(axis=1, keepdims=True)
    seen = joint > 0
    return float(np.sum(joint[seen] * np.log((joint / np.maximum(p_z, 1e-300))[seen])))


def peer_logme(features: np.ndarray, labels: np.ndarray, max_iter: int = 11, tol: float = 1e-3) -> float:
    """LogME: per-class maximum log evidence of Bayesian linear regression, averaged (You et al. 2021)."""
    F = features.astype(np.float64)
    n, D = F.shape
    if n > D:
        s, V = np.linalg.eigh(F.T @ F)  # s = squared singular values
    else:
        _, sv, Vt = np.linalg.svd(F, full_matrices=False)
        s, V = sv**2, Vt.T
    keep = s > s.max() * max(n, D) * np.finfo(np.float64).eps
    s, V = s[keep], V[:, keep]
    k = s.shape[0]
    targets = (labels[:, None] == np.arange(int(labels.max()) + 1)[None, :]).astype(np.float64)
    proj = V.T @ (F.T @ targets)  # sigma_i * x_i, x = U^T t
    total = 0.0
    for c in range(targets.shape[1]):
        x2 = proj[:, c] ** 2 / s
        t2 = float(targets[:, c] @ targets[:, c])
        outside = t2 - x2.sum()  # part of t outside the column space of F
        alpha, beta = 1.0, 1.0
        for _ in range(max_iter):
            den = alpha + beta * s
            gamma = float(np.sum(beta * s / den))
            m2 = float(np.sum(beta**2 * s * x2 / den**2))
            res2 = outside + float(np.sum((alpha / den) ** 2 * x2))
            new_alpha, new_beta = gamma / m2, (n - gamma) / res2
            change = abs(new_alpha / new_beta - alpha / beta) / (alpha / beta)
            alpha, beta = new_alpha, new_beta
            if change < tol:
                break
        den = alpha + beta * s
        m2 = float(np.sum(beta**2 * s * x2 / den**2))
        res2 = outside + float(np.sum((alpha / den) ** 2 * x2))
        log_det = float(np.sum(np.log(den))) + (D - k) * np.log(alpha)
        evidence = (
            D / 2 * np.log(alpha)
            + n / 2 * np.log(beta)
            - n / 2 * np.log(2 * np.pi)
            - beta / 2 * res2
            - alpha / 2 * m2
            - log_det / 2
        )
        total += evidence / n
    return total / targets.shape[1]


def _class_mean_features(F: np.ndarray, labels: np.ndarray) -> np.ndarray:
    G = np.empty_like(F)
    for c in range(int(labels.max()) + 1):
        rows = labels == c
        G[rows] = F[rows].mean(axis=0)
    return G


def peer_hscore(features: np.ndarray, labels: np.ndarray) -> float:
    """H-score: tr(cov(f)^+ cov(E[f | y])) (Bao et al., ICIP 2019)."""
    F = features.astype(np.float64)
    cov_f = np.cov(F, rowvar=False, bias=True)
    cov_g = np.cov(_class_mean_features(F, labels), rowvar=False, bias=True)
    return float(np.trace(np.linalg.pinv(cov_f, rcond=1e-15) @ cov_g))


def peer_reg_hscore(features: np.ndarray, labels: np.ndarray) -> float:
    """Shrinkage H-score with the Ledoit-Wolf covariance (Ibrahim, Ponomareva, Mazumder 2022)."""
    from sklearn.covariance import ledoit_wolf

    F = features.astype(np.float64)
    F = F - F.mean(axis=0)
    cov_shrunk, alpha = ledoit_wolf(F)
    cov_g = np.cov(_class_mean_features(F, labels), rowvar=False, bias=True)
    return float(np.trace(np.linalg.pinv(cov_shrunk, rcond=1e-15) @ ((1 - alpha) * cov_g)))


def peer_transrate(features: np.ndarray, labels: np.ndarray, eps: float = 1e-4) -> float:
    """TransRate: coding rate of the features minus the mean class coding rate (Huang et al., ICML 2022)."""

    def rate(A: np.ndarray) -> float:
        m, d = A.shape
        return 0.5 * float(np.linalg.slogdet(np.eye(d) + A.T @ A / (m * eps))[1])

    Z = features.astype(np.float64)
    Z = Z - Z.mean(axis=0)
    n_classes = int(labels.max()) + 1
    return rate(Z) - sum(rate(Z[labels == c]) for c in range(n_classes)) / n_classes


def peer_gbc(features: np.ndarray, labels: np.ndarray, n_components: int = 64, floor: float = 1e-4) -> float:
    """GBC: minus the pairwise Bhattacharyya coefficients of spherical class Gaussians (Pandy et al. 2022)."""
    from sklearn.decomposition import PCA

    Z = PCA(n_components=n_components).fit_transform(features.astype(np.float64))
    n_classes = int(labels.max()) + 1
    means = np.stack([Z[labels == c].mean(axis=0) for c in range(n_classes)])
    var = np.array([np.maximum(Z[labels == c].var(axis=0), floor).mean() for c in range(n_classes)])
    pair_var = (var[:, None] + var[None, :]) / 2
    sq_dist = ((means[:, None, :] - means[None, :, :]) ** 2).sum(axis=2)
    distance = sq_dist / (8 * pair_var) + 0.5 * np.log(pair_var / np.sqrt(var[:, None] * var[None, :]))
    coefficients = np.exp(-distance)
    return float(-(coefficients.sum() - np.trace(coefficients)))


def peer_parc(features: np.ndarray, labels: np.ndarray, n_components: int = 32, n_probe: int = 3000) -> float:
    """PARC: Spearman correlation of feature and label dissimilarity matrices, x 100 (Bolya et al. 2021)."""
    from scipy.stats import spearmanr
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    subset = np.sort(rng.choice(labels.shape[0], size=min(n_probe, labels.shape[0]), replace=False))
    Z = PCA(n_components=n_components, svd_solver="randomized", iterated_power=1, random_state=1919)
    Z = Z.fit_transform(features[subset].astype(np.float64))
    Z = (Z - Z.mean(axis=0)) / Z.std(axis=0)
    onehot = np.eye(int(labels.max()) + 1)[labels[subset]]
    upper = np.triu_indices(subset.shape[0], k=1)
    rdm_features = 1 - np.corrcoef(Z)
    rdm_labels = 1 - np.corrcoef(onehot)
    return float(100 * spearmanr(rdm_features[upper], rdm_labels[upper])[0])


def peer_knn(features: np.ndarray, labels: np.ndarray, block: int = 2048) -> float:
    """Leave-one-out 1-nearest-neighbour accuracy with Euclidean distances."""
    F = features.astype(np.float64)
    sq = (F**2).sum(axis=1)
    n = F.shape[0]
    correct = 0
    for start in range(0, n, block):
        rows = np.arange(start, min(start + block, n))
        dist = sq[rows, None] - 2 * F[rows] @ F.T + sq[None, :]
        dist[np.arange(rows.shape[0]), rows] = np.inf
        correct += int((labels[dist.argmin(axis=1)] == labels[rows]).sum())
    return correct / n


PEERS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "leep": peer_leep,
    "nce": peer_nce,
    "logme": peer_logme,
    "hscore": peer_hscore,
    "reg_hscore": peer_reg_hscore,
    "transrate": peer_transrate,
    "gbc": peer_gbc,
    "parc": peer_parc,
    "knn": peer_knn,
}


# ----------------------------------------------------------------------------------------------
# Harness
# ----------------------------------------------------------------------------------------------


def _inputs(cfg: dict[str, int], n_source: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from ckptrank.testing.synthetic import realistic_features, source_probs_for

    X, y = realistic_features(cfg["n"], cfg["d"], cfg["n_classes"], random_state=0)
    P = source_probs_for(y, n_source, strength=3.0, random_state=1).astype(np.float32)
    return X, np.asarray(y, dtype=np.int64), P


def _timed(fn: Callable[[], float], repeat: int = 1) -> tuple[float, float]:
    """Mean seconds per call over ``repeat`` back-to-back calls, and the value."""
    start = time.perf_counter()
    for _ in range(repeat):
        value = fn()
    return (time.perf_counter() - start) / repeat, value


def _calls(name: str, X: np.ndarray, y: np.ndarray, P: np.ndarray) -> tuple[Callable, Callable | None]:
    import ckptrank

    data = P if name in SOURCE_MEASURES else X
    measure = ckptrank.get_measure(name).func
    peer = PEERS.get(name)
    return (lambda: measure(data, y)), ((lambda: peer(data, y)) if peer else None)


def bench_shape(
    cfg: dict[str, int], names: list[str], runs: int, n_source: int, max_seconds: float
) -> list[dict[str, Any]]:
    """Median seconds of ckptrank and of the peer for each measure on one shape (interleaved runs).

    A measure stops before ``runs`` rounds when the next round would end past ``max_seconds``
    (at least one round always runs); the row records how many ran. A sample of a fast call
    is the mean of back-to-back calls lasting ``MIN_SAMPLE_SECONDS``.
    """
    X, y, P = _inputs(cfg, n_source)
    per_class = max(5, -(-200 // cfg["n_classes"]))  # >= 200 warm-up rows (GBC's PCA keeps 64)
    few = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(cfg["n_classes"])])
    rows = []
    for name in names:
        ours, peer = _calls(name, X, y, P)
        with warnings.catch_warnings():  # the warm-up only loads modules; 5 samples a class is degenerate
            warnings.simplefilter("ignore")
            for warm in _calls(name, X[few], y[few], P[few]):
                if warm is not None:
                    warm()
        calls = {"ours": ours, "peer": peer} if peer is not None else {"ours": ours}
        times: dict[str, list[float]] = {k: [] for k in calls}
        values: dict[str, float] = {}
        repeat: dict[str, int] = {}
        started = time.perf_counter()
        for key, fn in calls.items():  # first call: a sample when slow, a calibration when fast
            seconds, values[key] = _timed(fn)
            repeat[key] = max(1, math.ceil(MIN_SAMPLE_SECONDS / seconds))
            if repeat[key] == 1:
                times[key].append(seconds)
        done = 1  # rounds so far, the first call included
        while any(len(t) < runs for t in times.values()):
            elapsed = time.perf_counter() - started
            if all(times.values()) and elapsed * (done + 1) / done > max_seconds:
                break  # the next round would end past the budget
            for key in list(calls) if done % 2 else list(calls)[::-1]:
                if len(times[key]) < runs:
                    seconds, values[key] = _timed(calls[key], repeat[key])
                    times[key].append(seconds)
            done += 1
        t_ours, t_peer = times["ours"], times.get("peer", [])
        v_ours, v_peer = values["ours"], values.get("peer", float("nan"))
        row = {
            "measure": name,
            "ours": statistics.median(t_ours),
            "ours_min": min(t_ours),
            "runs": len(t_ours),
            "ours_value": v_ours,
        }
        if t_peer:
            row.update(peer=statistics.median(t_peer), peer_min=min(t_peer), peer_value=v_peer)
        rows.append(row)
        print(_line(row), file=sys.stderr, flush=True)
    return rows


def _line(row: dict[str, Any]) -> str:
    if "peer" not in row:
        head = f"| {row['measure']} | {row['runs']} | {row['ours']:.3f}"
        return f"{head} | - | - | - | {row['ours_value']:.6g} | - |"
    ratio, ratio_min = row["ours"] / row["peer"], row["ours_min"] / row["peer_min"]
    return (
        f"| {row['measure']} | {row['runs']} | {row['ours']:.3f} | {row['peer']:.3f} | {ratio:.2f} | "
        f"{ratio_min:.2f} | "
        f"{row['ours_value']:.6g} | {row['peer_value']:.6g} |"
    )


def _machine() -> str:
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            model = re.search(r"model name\s*:\s*(.+)", fh.read())
            cpu = model.group(1).strip() if model else cpu
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, numpy {np.__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="timed runs per measure and peer (median)")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=60.0,
        help="skip a measure's next round when it would end past this many seconds (default 60; "
        "at least one round runs; the table shows the rounds)",
    )
    parser.add_argument("--quick", action="store_true", help="CI-size shapes (10-30 s in all)")
    parser.add_argument("--all", action="store_true", help="every static measure, with or without a peer")
    parser.add_argument("--measures", default=None, help="comma list of measures (overrides --all)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs is {args.runs}; it must be at least 1")

    import ckptrank

    static = ckptrank.list_measures(kind="static")
    if args.measures:
        names = args.measures.split(",")
        unknown = sorted(set(names) - set(static))
        if unknown:
            parser.error(f"unknown or non-static measures {unknown}; choose from {static}")
    else:
        names = [m for m in static if args.all or m in DEFAULT_MEASURES]
    shapes, n_source = (QUICK_SHAPES, QUICK_N_SOURCE) if args.quick else (SHAPES, N_SOURCE)
    started = time.perf_counter()
    print(
        f"Machine: {_machine()}; median of {args.runs} interleaved runs; {n_source}-way source "
        f"probabilities for {', '.join(SOURCE_MEASURES)}.\n"
    )
    for label, cfg in shapes.items():
        rows = bench_shape(cfg, names, args.runs, n_source, args.max_seconds)
        print(f"### {label}\n")
        print(HEADER)
        for row in rows:
            print(_line(row))
        print(
            f"\nLoad average (1 min) after this shape: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.\n"
        )
    print(f"Total wall time: {time.perf_counter() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
