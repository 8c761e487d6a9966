"""Multinomial L2-regularised logistic regression in torch (full batch, float64 by default).

The objective is exactly scikit-learn's ``LogisticRegression(C=C_reg)`` (lbfgs solver, L2
penalty, unpenalised intercept):

.. math::

    \\min_{W, b}\\; \\sum_{i=1}^n -\\log \\operatorname{softmax}(W x_i + b)_{y_i}
    + \\frac{1}{2 C_{reg}} \\lVert W \\rVert_F^2 .

For two classes scikit-learn fits the binomial model ``sigma(w.x + b0)`` with penalty
``||w||^2 / (2 C_reg)``. It equals the two-column multinomial model with ``C_reg / 2`` (the
optimal pair is ``W = (-w/2, w/2)``, whose squared norm is ``||w||^2 / 2``), which is what is
solved here: ``coef[1] - coef[0]`` is scikit-learn's ``coef_[0]`` and
``intercept[1] - intercept[0]`` its ``intercept_[0]``.

The solver is limited-memory BFGS with a backtracking Armijo line search (the objective is
strictly convex, so every accepted step has ``s.y > 0``), run on the per-sample-averaged
objective like scikit-learn's, on centred features (exact: the unpenalised intercept absorbs
the shift). It works in *preconditioned* coordinates ``W = P U`` with
``P = V diag(h)^{-1/2} V^T + h_tail^{-1/2} (I - V V^T)``, where ``V, e`` are the leading
eigenpairs of the feature covariance and ``h = e / K + 1 / (n C_reg)`` approximates the
Hessian of the averaged objective at uniform class probabilities (curvature ``1/K`` per
class); the remaining directions share the next eigenvalue. This change of variables is
exact, so the optimum is unchanged; it only tames the ill-conditioning of decaying feature
spectra. The intercept is scaled by ``sqrt(K)`` for the same reason. The stopping test
certifies the distance to the optimum (see ``tol`` of :func:`fit_logistic`), so the result
does not depend on the solver's path. With warm starts, a regularisation path or a
cross-validation loop costs a few dozen gradient evaluations per fit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = [
    "LogisticFit",
    "Preconditioner",
    "fit_logistic",
    "logistic_objective",
    "logistic_path",
    "resolve_device",
]

_DEFAULT_HISTORY = 10


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` means the CPU; anything else is passed to :class:`torch.device`."""
    return torch.device("cpu") if device is None else torch.device(device)


def _as_tensor(x: Any, *, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)


def _as_labels(y: Any, *, device: torch.device) -> torch.Tensor:
    if isinstance(y, torch.Tensor):
        return y.detach().to(device=device, dtype=torch.int64)
    return torch.as_tensor(np.asarray(y), dtype=torch.int64, device=device)


@dataclass(frozen=True)
class Preconditioner:
    """Spectral preconditioner built from the centred covariance of the training features.

    Attributes
    ----------
    basis : torch.Tensor of shape (n_features, rank)
        Orthonormal leading eigenvectors of the covariance.
    eigvals : torch.Tensor of shape (rank,)
        Matching eigenvalues (per-sample variances, divisor ``n``), descending.
    tail : float
        Variance assumed on the orthogonal complement of ``basis``: the next eigenvalue when
        the spectrum was truncated at ``max_rank``, else 0.
    """

    basis: torch.Tensor
    eigvals: torch.Tensor
    tail: float = 0.0

    @classmethod
    def from_features(cls, X: torch.Tensor, *, max_rank: int | None = 64) -> Preconditioner:
        """Leading eigenpairs of the covariance of ``X``.

        ``max_rank`` keeps the leading eigenvectors only, which makes applying the
        preconditioner cost ``O(d * max_rank * K)`` per gradient instead of ``O(d^2 K)``.
        Small problems use an exact eigendecomposition (of the Gram matrix of the rows when
        ``d > n``); when ``min(n, d) >= 10 * (max_rank + 16)`` a seeded randomized subspace
        iteration (4 power steps, 16 extra vectors) is cheaper and accurate enough for a
        preconditioner. Either way the result is deterministic.
        """
        n, d = X.shape
        Xc = X - X.mean(dim=0)
        width = None if max_rank is None else max_rank + 16
        if width is not None and min(n, d) >= 10 * width:
            generator = torch.Generator(device=X.device).manual_seed(0)
            Q = torch.randn(d, width, generator=generator, dtype=X.dtype, device=X.device)
            for _ in range(4):
                Q = torch.linalg.qr(Xc.T @ torch.linalg.qr(Xc @ Q).Q).Q
            B = Xc @ Q
            evals, small = torch.linalg.eigh(B.T @ B / n)
            evecs = Q @ small
        elif d <= n:
            evals, evecs = torch.linalg.eigh(Xc.T @ Xc / n)
        else:  # dual: eigenvectors u of the n x n Gram matrix give v = Xc^T u / sqrt(n e)
            evals, U = torch.linalg.eigh(Xc @ Xc.T / n)
            evecs = Xc.T @ U / torch.sqrt(n * evals.clamp_min(torch.finfo(X.dtype).tiny))
        evals, evecs = evals.flip(0), evecs.flip(1)
        rank = int((evals > evals[0].clamp_min(torch.finfo(X.dtype).tiny) * 1e-12).sum())
        tail = 0.0
        if max_rank is not None and rank > max_rank:
            tail = float(evals[max_rank])
            rank = max_rank
        return cls(basis=evecs[:, :rank].contiguous(), eigvals=evals[:rank].contiguous(), tail=tail)

    def scales(self, curvature: float, ridge: float) -> tuple[torch.Tensor, float]:
        """Inverse square roots of the approximate Hessian on the basis and on its complement."""
        return torch.rsqrt(curvature * self.eigvals + ridge), (curvature * self.tail + ridge) ** -0.5


@dataclass(frozen=True)
class LogisticFit:
    """A fitted multinomial logistic regression.

    Attributes
    ----------
    coef : torch.Tensor of shape (n_classes, n_features)
    intercept : torch.Tensor of shape (n_classes,)
        Centred to sum to zero (the unpenalised intercept is defined up to a shift).
    C_reg : float
        Inverse regularisation strength it was fitted with.
    n_iter : int
        L-BFGS iterations.
    n_evals : int
        Objective/gradient evaluations.
    converged : bool
        Whether a stopping test was met before ``max_iter``: the tolerance, or the float
        precision limit (no measurable decrease of the objective any more).
    objective : float
        Value of the scikit-learn (summed) objective at the solution.
    """

    coef: torch.Tensor
    intercept: torch.Tensor
    C_reg: float
    n_iter: int
    n_evals: int
    converged: bool
    objective: float

    def decision_function(self, X: torch.Tensor) -> torch.Tensor:
        """Class scores ``X W^T + b``, shape (n_samples, n_classes)."""
        return X @ self.coef.T + self.intercept

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """Most probable class (lowest index on exact ties), shape (n_samples,)."""
        return self.decision_function(X).argmax(dim=1)

    def predict_proba(self, X: torch.Tensor) -> torch.Tensor:
        """Class probabilities, shape (n_samples, n_classes)."""
        return torch.softmax(self.decision_function(X), dim=1)


def _effective_c(C_reg: float, n_classes: int) -> float:
    # Binary problems: scikit-learn's binomial model == two-column multinomial with C / 2.
    return C_reg / 2.0 if n_classes == 2 else C_reg


def logistic_objective(
    X: Any, y: Any, coef: Any, intercept: Any, C_reg: float, *, n_classes: int | None = None
) -> float:
    """scikit-learn's objective ``sum_i CE_i + ||W||^2 / (2 C_reg)`` (binomial form for 2 classes).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,), labels in ``0..K-1``
    coef : array-like of shape (K, n_features)
        For ``K = 2`` any pair whose difference is the binomial weight vector; it is
        evaluated at the symmetric pair ``(-w/2, w/2)``, the form scikit-learn's value uses.
    intercept : array-like of shape (K,)
    C_reg : float
    n_classes : int, optional
        Defaults to ``coef.shape[0]``.
    """
    dtype = torch.float64
    device = coef.device if isinstance(coef, torch.Tensor) else torch.device("cpu")
    X = _as_tensor(X, device=device, dtype=dtype)
    yt = _as_labels(y, device=device)
    W = _as_tensor(coef, device=device, dtype=dtype)
    b = _as_tensor(intercept, device=device, dtype=dtype)
    K = W.shape[0] if n_classes is None else n_classes
    if K == 2:
        W = W - W.mean(dim=0, keepdim=True)
    Z = X @ W.T + b
    ce = torch.logsumexp(Z, dim=1) - Z.gather(1, yt[:, None])[:, 0]
    return float(ce.sum() + (W * W).sum() / (2.0 * _effective_c(C_reg, K)))


def _lbfgs(
    fun: Callable[[torch.Tensor], tuple[float, torch.Tensor, bool]],
    x0: torch.Tensor,
    *,
    max_iter: int,
    ftol: float,
    history_size: int,
) -> tuple[torch.Tensor, int, int, bool]:
    """Minimise a smooth strictly convex function of a flat vector.

    ``fun(x)`` returns the value, the gradient and whether ``x`` meets the caller's
    convergence test. The run also stops when an iteration decreases the value by at most
    ``ftol * max(1, |f|)`` or when no decrease is measurable any more (float precision).
    Returns ``(x, n_iter, n_evals, converged)``.
    """
    x = x0.clone()
    f, g, done = fun(x)
    n_evals = 1
    history: list[tuple[torch.Tensor, torch.Tensor, float]] = []  # (s, y, 1 / s.y)
    gamma = 1.0
    for it in range(max_iter):
        if done:
            return x, it, n_evals, True
        # two-loop recursion: direction = -H g
        q = g.clone()
        alphas = []
        for s, yv, rho in reversed(history):
            a = rho * float(torch.dot(s, q))
            q.add_(yv, alpha=-a)
            alphas.append(a)
        direction = q.mul_(gamma)
        for (s, yv, rho), a in zip(history, reversed(alphas), strict=True):
            direction.add_(s, alpha=a - rho * float(torch.dot(yv, direction)))
        direction.neg_()
        gd = float(torch.dot(g, direction))
        if not gd < 0:  # numerical trouble: restart from steepest descent
            history.clear()
            direction, gd = -g, -float(torch.dot(g, g))
        # backtracking Armijo line search with safeguarded quadratic interpolation
        t = 1.0
        for _ in range(40):
            x_new = torch.add(x, direction, alpha=t)
            f_new, g_new, done_new = fun(x_new)
            n_evals += 1
            if f_new <= f + 1e-4 * t * gd:
                break
            denom = 2.0 * (f_new - f - t * gd)
            t_quad = -gd * t * t / denom if denom > 0 else 0.5 * t
            t = min(max(t_quad, 0.1 * t), 0.5 * t)
        else:  # no decrease is measurable any more: the iterate is optimal to float precision
            return x, it, n_evals, True
        s, yv = x_new - x, g_new - g
        sy = float(torch.dot(s, yv))
        yy = float(torch.dot(yv, yv))
        if sy > 1e-12 * math.sqrt(float(torch.dot(s, s)) * yy):
            if len(history) == history_size:
                history.pop(0)
            history.append((s, yv, 1.0 / sy))
            gamma = sy / yy
        decrease = f - f_new
        x, f, g, done = x_new, f_new, g_new, done_new
        if decrease <= ftol * max(abs(f), 1.0):
            return x, it + 1, n_evals, True
    return x, max_iter, n_evals, done


def fit_logistic(
    X: Any,
    y: Any,
    C_reg: float,
    *,
    n_classes: int | None = None,
    tol: float = 1e-6,
    gtol: float = 0.0,
    ftol: float = 64 * float(np.finfo(np.float64).eps),
    max_iter: int = 1000,
    init: LogisticFit | None = None,
    preconditioner: Preconditioner | str | None = "auto",
    history_size: int = _DEFAULT_HISTORY,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
) -> LogisticFit:
    """Fit multinomial L2 logistic regression with scikit-learn's objective.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features)
        Training features (already standardised if wanted).
    y : array-like of shape (n_samples,)
        Labels in ``0..n_classes-1``.
    C_reg : float
        Inverse regularisation strength, ``> 0``.
    n_classes : int, optional
        Number of classes (default ``max(y) + 1``). A class absent from ``y`` has no
        optimum (its intercept drifts to minus infinity until the float-precision stop), so
        re-index the labels to the classes present, as the linear probe does.
    tol : float
        Certified relative accuracy of the weights. The per-sample-averaged objective is
        strongly convex in ``W`` with modulus ``alpha = 1 / (C_reg n)``, so
        ``||W - W*|| <= ||grad f|| / alpha``; the fit stops when
        ``||grad f||_2 <= tol * alpha * ||W||_F`` (gradient with respect to ``W`` and ``b``),
        i.e. when ``W`` is within a relative distance ``tol`` of the optimum (exact when the
        unpenalised intercept is optimal, a close approximation otherwise). Unlike a plain
        gradient threshold this does not stop early on weakly regularised, nearly
        separable problems. Below about ``1e-7`` the float-precision stop (``ftol``, or no
        measurable decrease) usually comes first.
    gtol : float
        Also stop when the largest absolute gradient entry is at most ``gtol``
        (scikit-learn's lbfgs criterion; 0 disables it).
    ftol : float
        Also stop when one iteration decreases the averaged objective by at most
        ``ftol * max(1, |f|)`` (scikit-learn's lbfgs uses ``64 * eps``).
    max_iter : int
        Maximum L-BFGS iterations.
    init : LogisticFit, optional
        Warm start (e.g. the fit at the previous value of a regularisation path).
    preconditioner : Preconditioner, "auto" or None
        ``"auto"`` builds :class:`Preconditioner` from ``X``; ``None`` solves in the original
        coordinates (plain L-BFGS).
    history_size : int
        L-BFGS memory.
    device : str or torch.device, optional
        Where to compute; ``None`` is the CPU.
    dtype : torch.dtype
        Floating type of the computation (float64 by default).

    Returns
    -------
    LogisticFit
    """
    if not C_reg > 0 or not math.isfinite(C_reg):
        raise ValueError(f"C_reg must be a positive finite number, got {C_reg}; try C_reg=1.0")
    dev = resolve_device(device)
    Xt = _as_tensor(X, device=dev, dtype=dtype)
    yt = _as_labels(y, device=dev)
    n, d = Xt.shape
    K = int(yt.max()) + 1 if n_classes is None else int(n_classes)
    if K < 2:
        raise ValueError(f"logistic regression needs at least 2 classes, got {K}")
    # Centre the features (exact: the unpenalised intercept absorbs the shift, b = b_c - mu W)
    # so that the intercept is decoupled from W and the preconditioner sees every direction.
    mu = Xt.mean(dim=0)
    Xt = Xt - mu
    if preconditioner == "auto":
        preconditioner = Preconditioner.from_features(Xt)
    elif isinstance(preconditioner, str):
        raise ValueError(f"preconditioner must be 'auto', None or a Preconditioner, got {preconditioner!r}")
    ridge = 1.0 / (_effective_c(C_reg, K) * n)  # penalty of the averaged objective
    curvature = 1.0 / K
    b_scale = math.sqrt(K)
    if preconditioner is None:

        def to_w(U: torch.Tensor) -> torch.Tensor:
            return U

        b_scale = 1.0
    else:
        V = preconditioner.basis.to(device=dev, dtype=dtype)
        inner, outer = preconditioner.scales(curvature, ridge)
        inner = (inner.to(device=dev, dtype=dtype) - outer)[:, None]

        def to_w(U: torch.Tensor) -> torch.Tensor:  # P U with P symmetric
            return V @ (inner * (V.T @ U)) + outer * U

    rows = torch.arange(n, device=dev)
    shape = (d + 1, K)

    def fun(flat: torch.Tensor) -> tuple[float, torch.Tensor, bool]:
        theta = flat.view(shape)
        W = to_w(theta[:d])
        b = theta[d] * b_scale
        Z = torch.addmm(b, Xt, W)
        lse = torch.logsumexp(Z, dim=1)
        f = float((lse.sum() - Z[rows, yt].sum()) / n + 0.5 * ridge * torch.dot(W.view(-1), W.view(-1)))
        R = Z.sub_(lse[:, None]).exp_()  # softmax probabilities, in place
        R[rows, yt] -= 1.0
        R.div_(n)
        grad_w = torch.addmm(W, Xt.T, R, beta=ridge)
        grad_b = R.sum(dim=0)
        grad = torch.empty(shape, dtype=dtype, device=dev)
        grad[:d] = to_w(grad_w)
        grad[d] = grad_b * b_scale
        gnorm2 = float(torch.dot(grad_w.view(-1), grad_w.view(-1)) + torch.dot(grad_b, grad_b))
        done = math.sqrt(gnorm2) <= tol * ridge * float(torch.linalg.vector_norm(W)) or (
            gtol > 0 and max(float(grad_w.abs().max()), float(grad_b.abs().max())) <= gtol
        )
        return f, grad.view(-1), done

    theta0 = torch.zeros(d + 1, K, dtype=dtype, device=dev)
    if init is not None:
        W0 = init.coef.to(device=dev, dtype=dtype).T
        if preconditioner is None:
            theta0[:d] = W0
        else:  # U = P^{-1} W: invert the scales
            theta0[:d] = V @ ((1.0 / (inner + outer) - 1.0 / outer) * (V.T @ W0)) + W0 / outer
        theta0[d] = (init.intercept.to(device=dev, dtype=dtype) + mu @ W0) / b_scale
    flat, n_iter, n_evals, converged = _lbfgs(
        fun, theta0.view(-1), max_iter=max_iter, ftol=ftol, history_size=history_size
    )
    theta = flat.view(shape)
    W = to_w(theta[:d]).T.contiguous()
    b = theta[d] * b_scale
    b = b - b.mean()
    Z = Xt @ W.T + b
    b = b - W @ mu
    b = b - b.mean()  # W has zero class-sum at the optimum; keep the convention exact
    ce = torch.logsumexp(Z, dim=1) - Z.gather(1, yt[:, None])[:, 0]
    objective = float(ce.sum() + 0.5 * ridge * n * (W * W).sum())
    return LogisticFit(
        coef=W,
        intercept=b,
        C_reg=float(C_reg),
        n_iter=n_iter,
        n_evals=n_evals,
        converged=converged,
        objective=objective,
    )


def logistic_path(
    X: Any,
    y: Any,
    Cs: Sequence[float],
    *,
    n_classes: int | None = None,
    preconditioner: Preconditioner | str | None = "auto",
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
    **options: Any,
) -> list[LogisticFit]:
    """Fit along a regularisation path, each fit warm-started from the previous one.

    ``Cs`` is used in the given order (ascending, strong to weak regularisation, is the
    cheapest). ``options`` go to :func:`fit_logistic`. The preconditioner is built once.
    """
    dev = resolve_device(device)
    Xt = _as_tensor(X, device=dev, dtype=dtype)
    yt = _as_labels(y, device=dev)
    if preconditioner == "auto":
        preconditioner = Preconditioner.from_features(Xt)
    fits: list[LogisticFit] = []
    for C_reg in Cs:
        fits.append(
            fit_logistic(
                Xt,
                yt,
                float(C_reg),
                n_classes=n_classes,
                init=fits[-1] if fits else None,
                preconditioner=preconditioner,
                device=dev,
                dtype=dtype,
                **options,
            )
        )
    return fits
