"""Batched EM for Gaussian mixtures in torch (full, diagonal and spherical covariances).

The algorithm is scikit-learn's :class:`~sklearn.mixture.GaussianMixture` (same
initialisation from hard k-means labels, ``reg_covar`` added to the diagonal, the
``10 * eps`` added to the component counts, convergence when the mean log-likelihood
changes by less than ``tol``, best of ``n_init`` runs, a final E-step), rewritten so that
no step loops over the components in Python:

* E-step: all n x K log-densities from the expanded quadratic form
  :math:`x^\\top P_k x - 2 x^\\top P_k \\mu_k + \\mu_k^\\top P_k \\mu_k` as ONE GEMM of the
  design rows :math:`[\\mathrm{vech}(x x^\\top), x, 1]` (n, d(d+1)/2 + d + 1) with the packed
  coefficients (K, d(d+1)/2 + d + 1). That is half the flops of a per-component
  ``(x - mu) @ L`` and runs at BLAS speed. The data are centred first, which keeps the
  cancellation of the expanded form at the level of float64 rounding (precisions are
  bounded by ``1 / reg_covar``).
* M-step: second moments, means and counts of all components from one GEMM
  ``resp.T @ design`` (a sparse product when most responsibilities are exactly zero, as
  with hard k-means labels or collapsed components), then one batched Cholesky.
* Initialisation: seeded k-means (greedy k-means++ seeding as in scikit-learn, then Lloyd
  iterations) written in torch, or scikit-learn's own ``KMeans`` for bit-level
  compatibility (``init="sklearn-kmeans"``).

Everything runs on any torch device in float64 by default (``dtype``/``device`` options).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from ._validation import check_random_state, warn_degenerate

__all__ = [
    "COVARIANCE_TYPES",
    "GMM_INITS",
    "GaussianMixtureFit",
    "check_gmm_options",
    "fit_gaussian_mixture",
    "kmeans",
]

CovarianceType = Literal["full", "diag", "spherical"]
InitMethod = Literal["kmeans", "k-means++", "random", "random_from_data", "sklearn-kmeans"]

#: Supported covariance structures.
COVARIANCE_TYPES = ("full", "diag", "spherical")
#: Supported initialisations (scikit-learn's ``init_params`` names; ``"kmeans"`` is our torch k-means).
GMM_INITS = ("kmeans", "k-means++", "random", "random_from_data", "sklearn-kmeans")

#: Largest number of elements of the cached design [vech(x x^T), x, 1] (256 MiB in float64);
#: above it the design is rebuilt chunk by chunk in every iteration.
_PACKED_BUDGET = 2**25
#: Largest fraction of non-zero responsibilities for which the M-step sums only the non-zero terms.
_SPARSE_FRACTION = 0.02
#: Elements of the (rows, K) blocks processed at once by the E-step and k-means (cache sized).
_BLOCK_ELEMENTS = 2**18
_KMEANS_MAX_ITER = 300
_KMEANS_TOL = 1e-4
_MAX_JITTER_STEPS = 12


@dataclass(frozen=True)
class GaussianMixtureFit:
    """A fitted Gaussian mixture (numpy arrays in the dtype of the fit, original coordinates).

    Attributes
    ----------
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray
        (n_components, n_features, n_features) for "full", (n_components, n_features) for
        "diag", (n_components,) for "spherical"; ``reg_covar`` (and any jitter) included.
    covariance_type : {"full", "diag", "spherical"}
    resp : ndarray of shape (n_samples, n_components)
        Posterior responsibilities under the returned parameters (scikit-learn's
        ``predict_proba`` after ``fit``).
    lower_bound : float
        Mean log-likelihood per sample of the best run at its last EM iteration.
    n_iter : int
        EM iterations of the best run.
    converged : bool
        Whether the best run met ``tol`` within ``max_iter`` iterations.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    covariance_type: str
    resp: np.ndarray
    lower_bound: float
    n_iter: int
    converged: bool

    @property
    def precisions_cholesky(self) -> np.ndarray:
        """scikit-learn's ``precisions_cholesky_``, computed on demand.

        Upper-triangular ``U_k`` with ``U_k U_k^T`` the precision ("full"), or
        ``1 / sqrt(variance)`` ("diag", "spherical").
        """
        if self.covariance_type == "full":
            return np.linalg.inv(np.linalg.cholesky(self.covariances)).transpose(0, 2, 1)
        return 1.0 / np.sqrt(self.covariances)


@dataclass
class _Params:
    """Mixture parameters in centred coordinates, with what the E-step needs precomputed."""

    weights: torch.Tensor  # (K,)
    means: torch.Tensor  # (K, d)
    covariances: torch.Tensor  # (K, d, d) | (K, d) | (K,)
    precisions: torch.Tensor  # same shapes as covariances
    half_log_det_precision: torch.Tensor  # (K,)


class _Design:
    """The centred data expanded into the features that make both EM steps single GEMMs.

    Row i of the design is ``[q(x_i), x_i, 1]`` with ``q(x) = vech(x x^T)`` (upper triangle,
    "full"), ``x * x`` ("diag") or ``||x||^2`` ("spherical"). Then every log-density is
    ``design @ coef.T`` for coefficients ``[-P/2 (packed), P mu, log-normaliser]``, and
    ``resp.T @ design`` gives the second moments, first moments and counts of the M-step.
    """

    def __init__(self, X: torch.Tensor, covariance_type: str) -> None:
        self.X = X
        self.n, self.d = X.shape
        self.covariance_type = covariance_type
        self.sq_norms = (X * X).sum(dim=1)
        rows, cols = torch.triu_indices(self.d, self.d, device=X.device)
        self.rows, self.cols = rows, cols
        # Off-diagonal entries of a symmetric matrix appear twice in x^T P x.
        self.multiplicity = torch.where(rows == cols, 1.0, 2.0).to(X.dtype)
        self.n_second = {"full": rows.shape[0], "diag": self.d, "spherical": 1}[covariance_type]
        self.width = self.n_second + self.d + 1
        self.chunk = max(1, _PACKED_BUDGET // self.width)
        self.cached = self._expand(X) if self.n * self.width <= _PACKED_BUDGET else None

    def _expand(self, X: torch.Tensor) -> torch.Tensor:
        if self.covariance_type == "full":
            second = X[:, self.rows] * X[:, self.cols]
        elif self.covariance_type == "diag":
            second = X * X
        else:
            second = (X * X).sum(dim=1, keepdim=True)
        return torch.cat([second, X, torch.ones_like(X[:, :1])], dim=1)

    def block(self, rows: slice) -> torch.Tensor:
        """Design rows ``rows`` (from the cache, or expanded on the fly)."""
        return self.cached[rows] if self.cached is not None else self._expand(self.X[rows])

    def row_blocks(self, n_columns: int) -> Iterator[tuple[slice, torch.Tensor]]:
        """Cache-sized row blocks for outputs with ``n_columns`` columns, with their design rows."""
        for rows in _row_blocks(self.n, n_columns):
            yield rows, self.block(rows)

    def _chunks(self) -> Iterator[tuple[slice, torch.Tensor]]:
        """The whole design at once when cached, else chunks within the memory budget."""
        step = self.n if self.cached is not None else self.chunk
        for start in range(0, self.n, step):
            rows = slice(start, start + step)
            yield rows, self.block(rows)

    def weighted_sums(self, resp: torch.Tensor) -> torch.Tensor:
        """``resp.T @ design``, shape (K, width): second moments, first moments and counts.

        When most responsibilities are exactly zero (hard k-means labels, or the collapsed
        components of the many-component regime) only the non-zero terms are summed, which
        is exact and much cheaper than the dense GEMM.
        """
        acc = self.X.new_zeros((resp.shape[1], self.width))
        sparse = int(torch.count_nonzero(resp)) <= _SPARSE_FRACTION * resp.numel()
        for rows, chunk in self._chunks():
            block = resp[rows]
            if sparse:
                sample, component = torch.nonzero(block, as_tuple=True)
                block_t = torch.sparse_coo_tensor(
                    torch.stack([component, sample]),
                    block[sample, component],
                    (block.shape[1], block.shape[0]),
                    check_invariants=False,
                )
                acc += torch.sparse.mm(block_t, chunk)
            else:
                acc.addmm_(block.T, chunk)
        return acc

    def unpack(self, packed: torch.Tensor) -> torch.Tensor:
        """Symmetric (K, d, d) matrices from their packed upper triangles (K, d(d+1)/2)."""
        out = packed.new_zeros((packed.shape[0], self.d, self.d))
        out[:, self.rows, self.cols] = packed
        out[:, self.cols, self.rows] = packed
        return out


# --------------------------------------------------------------------------------------------
# k-means initialisation
# --------------------------------------------------------------------------------------------


def _sq_distances_to(X: torch.Tensor, sq_norms: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (m, n) from the rows of ``centers`` to the rows of X, clipped at 0."""
    center_norms = (centers * centers).sum(dim=1, keepdim=True)
    d2 = torch.addmm(sq_norms[None, :], centers, X.T, alpha=-2.0)
    return d2.add_(center_norms).clamp_min_(0.0)


@contextlib.contextmanager
def _cpu_threads(num_threads: int | None, device: torch.device) -> Iterator[None]:
    """Run torch CPU ops with ``num_threads`` intra-op threads inside the block, then restore.

    ``None`` (or a non-CPU device) leaves torch's setting alone. The EM issues many small
    ops; on a busy machine each multi-threaded op waits for all its threads to be scheduled,
    which made tiny ops up to 1000x (and whole fits 5-20x) slower than with one thread.
    """
    previous = torch.get_num_threads()
    if num_threads is None or device.type != "cpu" or previous == num_threads:
        yield
        return
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _kmeans_plusplus(
    X: torch.Tensor, sq_norms: torch.Tensor, n_clusters: int, rng: np.random.Generator
) -> torch.Tensor:
    """Greedy k-means++ seeding (scikit-learn's variant, 2 + log K trials per step); returns indices."""
    n = X.shape[0]
    n_trials = 2 + int(math.log(n_clusters))
    first = int(rng.integers(n))
    draws = torch.as_tensor(rng.random((max(n_clusters - 1, 0), n_trials)), dtype=X.dtype, device=X.device)
    chosen = X.new_empty(n_clusters, dtype=torch.long)
    chosen[0] = first
    closest = _sq_distances_to(X, sq_norms, X[first : first + 1])[0]
    for c in range(1, n_clusters):
        cumulative = torch.cumsum(closest, dim=0)
        # When every point already coincides with a centre the potential is 0 and any choice is a duplicate.
        candidates = torch.searchsorted(cumulative, draws[c - 1] * cumulative[-1]).clamp_(max=n - 1)
        dist = torch.minimum(_sq_distances_to(X, sq_norms, X[candidates]), closest)
        best = torch.argmin(dist.sum(dim=1))
        closest = dist[best]
        chosen[c] = candidates[best]
    return chosen


def _row_blocks(n: int, n_columns: int) -> list[slice]:
    """Row blocks whose (rows, n_columns) float64 slab stays in cache (about 2 MiB)."""
    step = max(256, _BLOCK_ELEMENTS // max(n_columns, 1))
    return [slice(s, s + step) for s in range(0, n, step)]


def _nearest(X: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centre for every row of X (n,), computed block by block."""
    center_norms = (centers * centers).sum(dim=1)[None, :]
    labels = torch.empty(X.shape[0], dtype=torch.long, device=X.device)
    for rows in _row_blocks(X.shape[0], centers.shape[0]):
        partial = torch.addmm(center_norms, X[rows], centers.T, alpha=-2.0)  # distance - ||x||^2
        torch.argmin(partial, dim=1, out=labels[rows])
    return labels


def kmeans(
    X: torch.Tensor,
    n_clusters: int,
    rng: np.random.Generator,
    *,
    max_iter: int = _KMEANS_MAX_ITER,
    tol: float = _KMEANS_TOL,
) -> torch.Tensor:
    """Seeded k-means (k-means++ seeding then Lloyd iterations); returns the labels (n,), int64.

    Stops when the labels no longer change, when the total squared centre shift is at most
    ``tol`` times the mean feature variance (scikit-learn's rule), or after ``max_iter``
    iterations. An empty cluster is moved to the point farthest from its centre.
    """
    sq_norms = (X * X).sum(dim=1)
    centers = X[_kmeans_plusplus(X, sq_norms, n_clusters, rng)]
    threshold = tol * float(X.var(dim=0, unbiased=False).mean())
    previous: torch.Tensor | None = None
    for _ in range(max_iter):
        labels = _nearest(X, centers)
        if previous is not None and torch.equal(labels, previous):
            return labels
        counts = torch.bincount(labels, minlength=n_clusters)
        sums = X.new_zeros((n_clusters, X.shape[1])).index_add_(0, labels, X)
        new_centers = sums / counts.clamp_min(1)[:, None].to(X.dtype)
        empty = torch.nonzero(counts == 0).flatten()
        if empty.numel():
            own = ((X - centers[labels]) ** 2).sum(dim=1)
            far = torch.argsort(own, descending=True, stable=True)[: empty.numel()]
            new_centers[empty] = X[far]
        shift = float(((new_centers - centers) ** 2).sum())
        centers, previous = new_centers, labels
        if shift <= threshold:
            break
    return _nearest(X, centers)


# --------------------------------------------------------------------------------------------
# EM steps
# --------------------------------------------------------------------------------------------


def _log_prob_coefficients(design: _Design, params: _Params) -> torch.Tensor:
    """Coefficients (K, width) with ``design @ coef.T = log w_k + log N(x_i | mu_k, Sigma_k)``."""
    means, prec = params.means, params.precisions
    # log N = -0.5 * (d log 2 pi + x'Px - 2 x'P mu + mu'P mu) + 0.5 log|P|
    if design.covariance_type == "full":
        linear = torch.einsum("kab,kb->ka", prec, means)  # P_k mu_k
        quadratic = prec[:, design.rows, design.cols] * design.multiplicity
    elif design.covariance_type == "diag":
        linear, quadratic = means * prec, prec
    else:
        linear, quadratic = means * prec[:, None], prec[:, None]
    constant = (linear * means).sum(dim=1)
    log_normaliser = (
        torch.log(params.weights)
        + params.half_log_det_precision
        - 0.5 * (design.d * math.log(2 * math.pi) + constant)
    )
    return torch.cat([-0.5 * quadratic, linear, log_normaliser[:, None]], dim=1)


def _e_step(design: _Design, params: _Params) -> tuple[torch.Tensor, float]:
    """Responsibilities (n, K) and the mean log-likelihood.

    Works block by block: one GEMM of the design rows with the coefficients, then an
    in-place log-sum-exp normalisation while the block is still in cache.
    """
    coef = _log_prob_coefficients(design, params)
    resp = design.X.new_empty((design.n, coef.shape[0]))
    total = design.X.new_zeros(())
    for rows, block in design.row_blocks(coef.shape[0]):
        out = resp[rows]
        torch.mm(block, coef.T, out=out)
        row_max = out.max(dim=1, keepdim=True).values
        out.sub_(row_max).exp_()
        row_sum = out.sum(dim=1, keepdim=True)
        out.div_(row_sum)
        total += (row_max + torch.log(row_sum)).sum()
    return resp, float(total) / design.n


def _cholesky_with_jitter(cov: torch.Tensor, issues: dict[str, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched Cholesky of (K, d, d); adds growing jitter to the diagonals of failing matrices.

    The number of repaired matrices and the largest jitter are recorded in ``issues`` (the
    fit warns once at the end).
    """
    chol, info = torch.linalg.cholesky_ex(cov)
    bad = info > 0
    if not bool(bad.any()):
        return chol, cov
    cov = cov.clone()
    eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
    scale = torch.diagonal(cov, dim1=-2, dim2=-1).abs().mean(dim=-1).clamp_min(torch.finfo(cov.dtype).tiny)
    jitter = scale * (10.0 * torch.finfo(cov.dtype).eps)
    n_bad = int(bad.sum())
    for _ in range(_MAX_JITTER_STEPS):
        idx = torch.nonzero(bad).flatten()
        cov[idx] += jitter[idx, None, None] * eye
        chol_bad, info_bad = torch.linalg.cholesky_ex(cov[idx])
        chol[idx] = chol_bad
        bad[idx] = info_bad > 0
        if not bool(bad.any()):
            issues["jittered"] = max(issues.get("jittered", 0), n_bad)
            issues["jitter"] = max(issues.get("jitter", 0.0), float(jitter.max()))
            return chol, cov
        jitter = jitter * 10.0
    raise ValueError(
        f"Gaussian mixture: {int(bad.sum())} covariance matrices stay singular even with jitter; the data "
        "are degenerate (collapsed samples or non-finite values) - increase reg_covar or use fewer components"
    )


def _floor_variances(var: torch.Tensor, issues: dict[str, float]) -> torch.Tensor:
    """Replace non-positive variances (only possible with reg_covar=0) by a small positive floor."""
    bad = var <= 0
    if not bool(bad.any()):
        return var
    positive = var[~bad]
    floor = (float(positive.mean()) if positive.numel() else 1.0) * 10.0 * torch.finfo(var.dtype).eps
    issues["floored"] = max(issues.get("floored", 0), int(bad.sum()))
    issues["floor"] = floor
    return torch.where(bad, torch.full_like(var, floor), var)


def _warn_issues(issues: dict[str, float], n_components: int) -> None:
    if "jittered" in issues:
        warn_degenerate(
            f"Gaussian mixture: up to {int(issues['jittered'])} of {n_components} covariance matrices were "
            f"not positive definite after adding reg_covar; added jitter up to {issues['jitter']:.3g} to "
            "their diagonal. Increase reg_covar, use fewer components or a simpler covariance_type",
            stacklevel=4,
        )
    if "floored" in issues:
        warn_degenerate(
            f"Gaussian mixture: up to {int(issues['floored'])} variances were not positive after adding "
            f"reg_covar; floored at {issues['floor']:.3g}. Increase reg_covar or use fewer components",
            stacklevel=4,
        )


def _params_from_covariances(
    weights: torch.Tensor,
    means: torch.Tensor,
    covariances: torch.Tensor,
    covariance_type: str,
    issues: dict[str, float],
) -> _Params:
    if covariance_type == "full":
        chol, covariances = _cholesky_with_jitter(covariances, issues)
        precisions = torch.cholesky_inverse(chol)
        half_log_det = -torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(dim=-1)
    else:
        covariances = _floor_variances(covariances, issues)
        precisions = 1.0 / covariances
        half_log_det = -0.5 * torch.log(covariances)
        half_log_det = (
            half_log_det.sum(dim=-1) if covariance_type == "diag" else means.shape[1] * half_log_det
        )
    return _Params(weights, means, covariances, precisions, half_log_det)


def _estimate_parameters(
    design: _Design, resp: torch.Tensor, reg_covar: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Counts (K,), means (K, d) and covariances from responsibilities (scikit-learn's formulas)."""
    sums = design.weighted_sums(resp)
    second, first, resp_sums = sums[:, : design.n_second], sums[:, design.n_second : -1], sums[:, -1]
    nk = resp_sums + 10.0 * torch.finfo(resp.dtype).eps
    means = first / nk[:, None]
    second = second / nk[:, None]
    if design.covariance_type == "full":
        # sum_i r_ik (x_i - mu_k)(x_i - mu_k)^T / nk = S_k / nk - (2 - sum_i r_ik / nk) mu_k mu_k^T
        outer = means[:, :, None] * means[:, None, :]
        cov = design.unpack(second) - (2.0 - resp_sums / nk)[:, None, None] * outer
        cov.diagonal(dim1=-2, dim2=-1).add_(reg_covar)
    elif design.covariance_type == "diag":
        cov = second - means * means + reg_covar  # scikit-learn's formula
    else:
        cov = (second[:, 0] - (means * means).sum(dim=1)) / design.d + reg_covar
    return nk, means, cov


def _m_step(design: _Design, resp: torch.Tensor, reg_covar: float, issues: dict[str, float]) -> _Params:
    nk, means, cov = _estimate_parameters(design, resp, reg_covar)
    return _params_from_covariances(nk / nk.sum(), means, cov, design.covariance_type, issues)


# --------------------------------------------------------------------------------------------
# Initialisation
# --------------------------------------------------------------------------------------------


def _one_hot(labels: torch.Tensor, n_components: int, dtype: torch.dtype) -> torch.Tensor:
    resp = torch.zeros((labels.shape[0], n_components), dtype=dtype, device=labels.device)
    resp[torch.arange(labels.shape[0], device=labels.device), labels] = 1.0
    return resp


def _initial_responsibilities(
    design: _Design,
    X_original: Any,
    n_components: int,
    init: str,
    rng: np.random.Generator,
    sklearn_state: np.random.RandomState | None,
) -> torch.Tensor:
    X = design.X
    n = design.n
    if init == "kmeans":
        return _one_hot(kmeans(X, n_components, rng), n_components, X.dtype)
    if init == "sklearn-kmeans":
        from sklearn.cluster import KMeans
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=torch.get_num_threads()):  # the thread count chosen for the fit
            km = KMeans(n_clusters=n_components, n_init=1, random_state=sklearn_state).fit(X_original)
        labels = torch.as_tensor(km.labels_.astype(np.int64), device=X.device)
        return _one_hot(labels, n_components, X.dtype)
    if init == "k-means++":
        resp = X.new_zeros((n, n_components))
        idx = _kmeans_plusplus(X, design.sq_norms, n_components, rng)
        resp[idx, torch.arange(n_components, device=X.device)] = 1.0
        return resp
    if init == "random_from_data":
        resp = X.new_zeros((n, n_components))
        idx = torch.as_tensor(rng.choice(n, size=n_components, replace=False), device=X.device)
        resp[idx, torch.arange(n_components, device=X.device)] = 1.0
        return resp
    resp = torch.as_tensor(rng.random((n, n_components)), dtype=X.dtype, device=X.device)
    return resp / resp.sum(dim=1, keepdim=True)


def _user_parameters(
    weights_init: Any,
    means_init: Any,
    precisions_init: Any,
    *,
    n_components: int,
    n_features: int,
    covariance_type: str,
    center: torch.Tensor,
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Validate and convert user-given initial weights, means and precisions."""
    like = {"dtype": center.dtype, "device": center.device}
    weights = means = covariances = None
    if weights_init is not None:
        weights = torch.as_tensor(np.asarray(weights_init, dtype=np.float64), **like)
        if weights.shape != (n_components,) or bool((weights < 0).any()):
            raise ValueError(
                f"weights_init must be {n_components} non-negative numbers, got shape {tuple(weights.shape)}"
            )
        if abs(float(weights.sum()) - 1.0) > 1e-6:
            raise ValueError(f"weights_init must sum to 1, got {float(weights.sum()):.6g}")
    if means_init is not None:
        means = torch.as_tensor(np.asarray(means_init, dtype=np.float64), **like)
        if means.shape != (n_components, n_features):
            raise ValueError(
                f"means_init must have shape ({n_components}, {n_features}), got {tuple(means.shape)}"
            )
        means = means - center
    if precisions_init is not None:
        prec = torch.as_tensor(np.asarray(precisions_init, dtype=np.float64), **like)
        expected = {
            "full": (n_components, n_features, n_features),
            "diag": (n_components, n_features),
            "spherical": (n_components,),
        }[covariance_type]
        if prec.shape != expected:
            raise ValueError(
                f"precisions_init for covariance_type={covariance_type!r} must have shape {expected}, "
                f"got {tuple(prec.shape)}"
            )
        if covariance_type == "full":
            chol, info = torch.linalg.cholesky_ex(prec)
            if bool((info > 0).any()):
                raise ValueError("precisions_init must hold symmetric positive definite matrices")
            covariances = torch.cholesky_inverse(chol)
        else:
            if bool((prec <= 0).any()):
                raise ValueError("precisions_init must be positive")
            covariances = 1.0 / prec
    return weights, means, covariances


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------


def check_gmm_options(
    covariance_type: str, reg_covar: float, tol: float, max_iter: int, n_init: int, init: str
) -> None:
    """Validate the EM options (one-line ValueErrors)."""
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"unknown covariance_type {covariance_type!r}; use one of {', '.join(COVARIANCE_TYPES)}"
        )
    if init not in GMM_INITS:
        raise ValueError(f"unknown init {init!r}; use one of {', '.join(GMM_INITS)}")
    for name, number in (("reg_covar", reg_covar), ("tol", tol)):
        real = isinstance(number, (int, float, np.integer, np.floating)) and not isinstance(number, bool)
        if not real or not 0 <= number < math.inf:
            raise ValueError(f"{name} must be a finite number >= 0, got {number!r}")
    for name, value, low in (("max_iter", max_iter, 0), ("n_init", n_init, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _run_em(
    design: _Design,
    X_original: Any,
    n_components: int,
    *,
    user_parameters: tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None],
    init: str,
    rng: np.random.Generator,
    sklearn_state: np.random.RandomState | None,
    reg_covar: float,
    tol: float,
    max_iter: int,
    n_init: int,
    issues: dict[str, float],
) -> tuple[float, _Params, int, bool]:
    """EM from ``n_init`` initialisations; the (lower bound, parameters, n_iter, converged) of the best."""
    user_weights, user_means, user_cov = user_parameters
    best: tuple[float, _Params, int, bool] | None = None
    for _ in range(n_init):
        weights, means, cov = user_weights, user_means, user_cov
        if weights is None or means is None or cov is None:
            resp = _initial_responsibilities(design, X_original, n_components, init, rng, sklearn_state)
            nk, resp_means, resp_cov = _estimate_parameters(design, resp, reg_covar)
            weights = nk / design.n if weights is None else weights
            means = resp_means if means is None else means
            cov = resp_cov if cov is None else cov
        params = _params_from_covariances(weights, means, cov, design.covariance_type, issues)
        lower_bound, n_iter, converged = -math.inf, 0, False
        for n_iter in range(1, max_iter + 1):  # noqa: B007 - n_iter is reported after the loop
            previous = lower_bound
            resp, lower_bound = _e_step(design, params)
            params = _m_step(design, resp, reg_covar, issues)
            if abs(lower_bound - previous) < tol:
                converged = True
                break
        if best is None or lower_bound > best[0]:
            best = (lower_bound, params, n_iter, converged)
    assert best is not None
    return best


def fit_gaussian_mixture(
    X: Any,
    n_components: int,
    *,
    covariance_type: CovarianceType = "full",
    reg_covar: float = 1e-6,
    tol: float = 1e-3,
    max_iter: int = 100,
    n_init: int = 1,
    init: InitMethod = "kmeans",
    weights_init: Any = None,
    means_init: Any = None,
    precisions_init: Any = None,
    random_state: int | np.random.Generator | None = 0,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device | None = None,
    num_threads: int | None = 1,
) -> GaussianMixtureFit:
    """Fit a Gaussian mixture by EM, with scikit-learn's ``GaussianMixture`` semantics.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features)
        Finite data (not validated here beyond shapes; measures validate their inputs).
    n_components : int
        Number of components K, at most ``n_samples``.
    covariance_type : {"full", "diag", "spherical"}, default="full"
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance (absolute, hence scale dependent).
    tol : float, default=1e-3
        Stop when the mean log-likelihood per sample changes by less than ``tol``.
    max_iter : int, default=100
        EM iterations per run (0 returns the initial parameters).
    n_init : int, default=1
        Independent initialisations; the run with the highest final mean log-likelihood wins.
    init : {"kmeans", "k-means++", "random", "random_from_data", "sklearn-kmeans"}, default="kmeans"
        Initial responsibilities: hard labels of our seeded torch k-means (greedy k-means++
        seeding and Lloyd iterations, as scikit-learn's ``KMeans`` but a different random
        stream); one-hot on the k-means++ seeds; uniform random; one-hot on random points;
        or scikit-learn's ``KMeans(n_init=1, random_state=RandomState(random_state))``, which
        reproduces ``GaussianMixture(random_state=random_state)`` exactly (slower).
    weights_init, means_init, precisions_init : array-like, optional
        Initial parameters, as in scikit-learn (precisions, not covariances: (K, d, d) for
        "full", (K, d) for "diag", (K,) for "spherical"). Missing ones are estimated from
        the ``init`` responsibilities; with all three given no initialisation is run.
    random_state : int, numpy Generator or None, default=0
        Seed of the initialisation (``None`` means 0). For ``"sklearn-kmeans"`` an int.
    dtype : torch.dtype, default=torch.float64
    device : str or torch.device, optional
        Where to compute (default: CPU).
    num_threads : int or None, default=1
        Torch intra-op CPU threads during the fit (restored afterwards); ``None`` keeps
        torch's setting. One thread is the default because the EM issues many small ops,
        which multi-threaded torch ran 5-20x slower on a busy 2-core machine, while two
        threads gained little on its largest GEMMs.

    Returns
    -------
    GaussianMixtureFit

    Raises
    ------
    ValueError
        On invalid options or initial parameters, more components than samples, or
        covariances that stay singular even after jitter.

    Warns
    -----
    DegenerateInputWarning
        When covariances had to be jittered (singular even with ``reg_covar``).
    sklearn.exceptions.ConvergenceWarning
        When the best run did not converge within ``max_iter``.
    """
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise ValueError(f"n_components must be a positive integer, got {n_components!r}")
    check_gmm_options(covariance_type, reg_covar, tol, max_iter, n_init, init)
    if num_threads is not None and (
        isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) or num_threads < 1
    ):
        raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")
    if isinstance(X, torch.Tensor):
        X_original: Any = X.detach().cpu().numpy()
        Xt = X.detach().to(device=device or "cpu", dtype=dtype)
    else:
        X_original = np.asarray(X)
        Xt = torch.as_tensor(np.asarray(X, dtype=np.float64), device=device).to(dtype)
    if Xt.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {tuple(Xt.shape)}")
    n, d = Xt.shape
    if n < n_components:
        raise ValueError(
            f"a Gaussian mixture with {n_components} components needs at least as many samples, got {n}"
        )
    center = Xt.mean(dim=0)
    design = _Design(Xt - center, covariance_type)
    user_weights, user_means, user_cov = _user_parameters(
        weights_init,
        means_init,
        precisions_init,
        n_components=n_components,
        n_features=d,
        covariance_type=covariance_type,
        center=center,
    )
    rng = check_random_state(random_state)
    sklearn_state = None
    if init == "sklearn-kmeans":
        seed = 0 if random_state is None else random_state
        if not isinstance(seed, (int, np.integer)):
            raise ValueError("init='sklearn-kmeans' needs an integer random_state")
        sklearn_state = np.random.RandomState(int(seed))

    issues: dict[str, float] = {}
    with _cpu_threads(num_threads, Xt.device):
        lower_bound, params, n_iter, converged = _run_em(
            design,
            X_original,
            n_components,
            user_parameters=(user_weights, user_means, user_cov),
            init=init,
            rng=rng,
            sklearn_state=sklearn_state,
            reg_covar=reg_covar,
            tol=tol,
            max_iter=max_iter,
            n_init=n_init,
            issues=issues,
        )
        resp, _ = _e_step(design, params)
    _warn_issues(issues, n_components)
    if not converged and max_iter > 0:
        from sklearn.exceptions import ConvergenceWarning

        warnings.warn(
            f"Gaussian mixture EM did not converge in max_iter={max_iter} iterations (tol={tol}); "
            "increase max_iter or tol",
            ConvergenceWarning,
            stacklevel=2,
        )
    return GaussianMixtureFit(
        weights=params.weights.cpu().numpy(),
        means=(params.means + center).cpu().numpy(),
        covariances=params.covariances.cpu().numpy(),
        covariance_type=covariance_type,
        resp=resp.cpu().numpy(),
        lower_bound=float(lower_bound),
        n_iter=n_iter,
        converged=converged,
    )
