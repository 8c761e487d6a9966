"""SFDA: Self-challenging Fisher Discriminant Analysis.

W. Shao, X. Zhao, Y. Ge, Z. Zhang, L. Yang, X. Wang, Y. Shan, P. Luo, "Not All Models Are Equal:
Predicting Model Transferability in a Self-challenging Fisher Space", ECCV 2022,
https://arxiv.org/abs/2207.03036 (reference code: https://github.com/TencentARC/SFDA).

The score is the in-sample accuracy (mean probability of the true class) of a regularised
Fisher discriminant, refitted after a confidence-aware mix (ConfMix) pulls every sample towards
the centre of the other classes. The private helpers are shared with :mod:`ckptrank.ensemble`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import linalg, sparse
from scipy.special import log_softmax

from ._registry import register_measure
from ._validation import LabelInfo, check_features_and_labels, check_magnitude, warn_degenerate

__all__ = ["sfda"]

#: Below this shrinkage strength a rank-deficient within-class scatter (d > n - C) makes the
#: in-sample posteriors saturate; :func:`sfda` then warns.
_SATURATION_LAMBDA = 0.1


def check_sfda_options(a: float, lambda_floor: float, power_iterations: int, shrinkage: float | None) -> None:
    """Raise a one-line ValueError for out-of-range SFDA options."""
    if not np.isfinite(a) or a < 0:
        raise ValueError(f"a must be a finite number >= 0 (lambda = exp(-a * sigma_max)), got {a}")
    if not 0.0 <= lambda_floor <= 1.0:
        raise ValueError(f"lambda_floor must lie in [0, 1], got {lambda_floor}")
    if isinstance(power_iterations, bool) or not isinstance(power_iterations, (int, np.integer)):
        raise ValueError(f"power_iterations must be an int >= 1, got {power_iterations!r}")
    if power_iterations < 1:
        raise ValueError(f"power_iterations must be >= 1, got {power_iterations}")
    if shrinkage is not None and not (np.isfinite(shrinkage) and 0.0 <= shrinkage <= 1.0):
        raise ValueError(f"shrinkage must be None or a number in [0, 1], got {shrinkage}")


def standardize_features(X: np.ndarray) -> np.ndarray:
    """Z-score every column (population std); constant columns become zero."""
    Xc = X - X.mean(axis=0)
    std = Xc.std(axis=0)
    std[std == 0.0] = 1.0
    return Xc / std


def _largest_eigenvalue(S: np.ndarray, n_iter: int) -> float:
    """Power-iteration estimate of the largest eigenvalue of the PSD matrix ``S``.

    Starts from ``S @ 1`` and runs ``n_iter`` double steps ``u = Sv/|Sv|, v = Su/|Su|``, then
    returns ``v^T S u`` (the SFDA reference recipe). If ``S @ 1`` vanishes although ``S`` does
    not (the all-ones vector lies in its null space), it starts from the column of ``S`` with
    the largest diagonal entry instead.
    """
    v = S.sum(axis=1)
    if not np.any(v):
        diag = np.diag(S)
        if diag.max() <= 0.0:
            return 0.0
        v = S[:, int(np.argmax(diag))].copy()
    u = v
    for _ in range(n_iter):
        t = S @ v
        norm = np.linalg.norm(t)
        if norm == 0.0:
            return 0.0
        u = t / norm
        t = S @ u
        norm = np.linalg.norm(t)
        if norm == 0.0:
            return 0.0
        v = t / norm
    return float(v @ S @ u)


def _shrinkage_strength(Sw: np.ndarray, a: float, lambda_floor: float, power_iterations: int) -> float:
    """``lambda = max(exp(-a * sigma_max(Sw)), lambda_floor)``, at most 1."""
    sigma_max = max(_largest_eigenvalue(Sw, power_iterations), 0.0)
    return float(min(max(np.exp(-a * sigma_max), lambda_floor), 1.0))


def _shrink(M: np.ndarray, lam: float) -> np.ndarray:
    """``S(M) = (1 - lam) M + lam tr(M)/d I`` (a new array)."""
    d = M.shape[0]
    out = (1.0 - lam) * M
    out.flat[:: d + 1] += lam * np.trace(M) / d
    return out


def _cholesky(S: np.ndarray, total_var: float) -> tuple[np.ndarray, bool]:
    """Lower Cholesky factor of ``S``; on failure add a growing ridge and report it."""
    try:
        return linalg.cholesky(S, lower=True, check_finite=False), False
    except linalg.LinAlgError:
        pass
    d = S.shape[0]
    scale = max(np.trace(S) / d, total_var, 0.0) or 1.0
    for power in range(-12, 1, 2):
        try:
            ridged = S.copy()
            ridged.flat[:: d + 1] += scale * 10.0**power
            return linalg.cholesky(ridged, lower=True, check_finite=False), True
        except linalg.LinAlgError:
            continue
    raise ValueError(  # pragma: no cover - a ridge of the total variance always factorises
        "the regularised within-class covariance could not be factorised; check the features"
    )


def _class_sums(R: np.ndarray, info: LabelInfo) -> np.ndarray:
    """Per-class sums of the rows of ``R`` in O(n d) (sparse indicator product), shape (C, d)."""
    n = info.n_samples
    indicator = sparse.csr_matrix((np.ones(n), (info.y, np.arange(n))), shape=(info.n_classes, n))
    return np.asarray(indicator @ R)


def _add_class_rows(R: np.ndarray, y: np.ndarray, V: np.ndarray, scale: np.ndarray | None = None) -> None:
    """In place ``R[i] += scale[i] * V[y[i]]``, in row blocks to bound the temporary memory."""
    block = max(1, (1 << 22) // max(R.shape[1], 1))
    for start in range(0, R.shape[0], block):
        rows = V[y[start : start + block]]
        if scale is not None:
            rows *= scale[start : start + block, None]
        R[start : start + block] += rows


def _to_residuals(X: np.ndarray, info: LabelInfo) -> tuple[np.ndarray, np.ndarray]:
    """Class means and, in place of ``X``, the within-class residuals ``x_i - mu_{y_i}``."""
    means = _class_sums(X, info) / info.counts[:, None]
    _add_class_rows(X, info.y, -means)
    return X, means


def _lda_log_posteriors(
    R: np.ndarray,
    means: np.ndarray,
    info: LabelInfo,
    *,
    lam: float | None,
    a: float,
    lambda_floor: float,
    power_iterations: int,
) -> tuple[np.ndarray, float, bool]:
    """Shrinkage-LDA log posteriors ``log p(c | x_i)`` of the training samples.

    The samples are given in residual form, ``x_i = R[i] + means[y_i]``, so that the within-class
    covariance ``Sigma_w = R^T R / n`` needs no further copy. ``Sigma_w^lam = S(Sigma_w)``;
    ``s_c(x) = x^T W mu_c - mu_c^T W mu_c / 2 + log pi_c`` with ``W = (Sigma_w^lam)^{-1}`` applied
    through one Cholesky solve of the ``C`` class means. This equals the reference code's
    posterior computed with all eigenvectors ``V`` of the generalised problem
    ``Sigma_b v = rho Sigma_w^lam v`` (``V V^T = W``).

    Returns
    -------
    log_proba : ndarray of shape (n_samples, n_classes)
    lam : float
        The shrinkage strength used (computed from ``Sigma_w`` when ``lam`` is None).
    ridged : bool
        Whether a jitter had to be added to factorise ``Sigma_w^lam``.
    """
    n, d = R.shape
    # The posterior is translation invariant; centring the means keeps the logits small.
    centred = means - info.priors @ means
    Sw = R.T @ R / n
    if lam is None:
        lam = _shrinkage_strength(Sw, a, lambda_floor, power_iterations)
    total_var = float(np.trace(Sw) + info.priors @ np.einsum("cd,cd->c", centred, centred)) / d
    L, ridged = _cholesky(_shrink(Sw, lam), total_var)
    B = linalg.cho_solve((L, True), centred.T, check_finite=False)  # W mu_c, shape (d, C)
    mB = centred @ B  # mu_c'^T W mu_c, shape (C, C)
    logits = R @ B
    logits += mB[info.y]
    logits += np.log(info.priors) - 0.5 * np.diag(mB)
    return log_softmax(logits, axis=1), lam, ridged


def confmix_weights(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """ConfMix self-weights ``q_i = softmax(p_i)[y_i]`` (softmax of the probability vector).

    For probability rows over ``C`` classes, ``q_i`` lies in ``[1/(C-1+e), e/(C-1+e)]``.
    """
    e = np.exp(proba)  # entries in [0, 1]: no overflow
    return e[np.arange(y.shape[0]), y] / e.sum(axis=1)


def _confmix(
    R: np.ndarray, means: np.ndarray, info: LabelInfo, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """ConfMix ``x~_i = q_i x_i + (1 - q_i) a_{y_i}`` in residual form (``R`` is overwritten).

    ``a_c`` is the unweighted mean of the other classes' means (before mixing). With
    ``x_i = r_i + mu_c`` and ``delta_c = mu_c - a_c``, ``x~_i = q_i r_i + a_c + q_i delta_c``, so
    the mixed class mean is ``g_c + a_c + qbar_c delta_c`` with ``g_c`` the class mean of
    ``q_i r_i``, and the mixed residual is ``q_i r_i - g_c + (q_i - qbar_c) delta_c``.
    """
    C = info.n_classes
    anchors = (means.sum(axis=0, keepdims=True) - means) / (C - 1)
    delta = means - anchors
    qbar = np.bincount(info.y, weights=weights, minlength=C) / info.counts
    R *= weights[:, None]
    g = _class_sums(R, info) / info.counts[:, None]
    _add_class_rows(R, info.y, -g)
    _add_class_rows(R, info.y, delta, scale=weights - qbar[info.y])
    return R, g + anchors + qbar[:, None] * delta


def _mean_true_class(log_proba: np.ndarray, y: np.ndarray, use_log: bool) -> float:
    true = log_proba[np.arange(y.shape[0]), y]
    return float(true.mean() if use_log else np.exp(true).mean())


def _warn_if_saturated(X: np.ndarray, info: LabelInfo, lam: float, ridged: bool) -> None:
    n, d = X.shape
    if ridged:
        warn_degenerate(
            f"sfda: the regularised within-class covariance (lambda={lam:.3g}) is numerically singular; "
            "a small ridge was added. Reduce the dimension (PCA) or pass shrinkage=",
            stacklevel=5,
        )
    elif d > n - info.n_classes and lam < _SATURATION_LAMBDA:
        warn_degenerate(
            f"sfda: {d} feature dimensions exceed n - C = {n - info.n_classes}, so the within-class "
            f"covariance is rank deficient and lambda={lam:.3g} barely regularises it: in-sample "
            "posteriors saturate and scores of different checkpoints converge. Reduce the dimension "
            "(e.g. PCA to <= n/2) or pass shrinkage=",
            stacklevel=5,
        )


def sfda_scores(
    X: np.ndarray,
    info: LabelInfo,
    *,
    a: float = 5.0,
    lambda_floor: float = 1e-10,
    power_iterations: int = 3,
    use_log: bool = False,
    shrinkage: float | None = None,
    confmix: bool = True,
    mix_weights: np.ndarray | None = None,
) -> dict[str, Any]:
    """Both SFDA passes on validated float64 features. ``X`` is overwritten (pass a copy).

    ``mix_weights`` (n_samples,) replaces the samples' own ConfMix confidences (used by
    :func:`ckptrank.ensemble.select_ensemble` with ``method="confmix_coupled"``).

    Returns a dict with ``score``, ``first_score``, ``first_log_proba`` and ``lam``.
    """
    R, means = _to_residuals(X, info)
    log_p, lam, ridged = _lda_log_posteriors(
        R, means, info, lam=shrinkage, a=a, lambda_floor=lambda_floor, power_iterations=power_iterations
    )
    _warn_if_saturated(R, info, lam, ridged)
    first = _mean_true_class(log_p, info.y, use_log)
    out: dict[str, Any] = {"score": first, "first_score": first, "first_log_proba": log_p, "lam": lam}
    if not confmix:
        return out
    weights = confmix_weights(np.exp(log_p), info.y) if mix_weights is None else mix_weights
    R, means = _confmix(R, means, info, weights)
    log_p2, _, ridged = _lda_log_posteriors(
        R, means, info, lam=lam, a=a, lambda_floor=lambda_floor, power_iterations=power_iterations
    )
    if ridged:
        _warn_if_saturated(R, info, lam, ridged)
    out["score"] = _mean_true_class(log_p2, info.y, use_log)
    return out


@register_measure(
    "sfda",
    requires=("features",),
    higher_is_better=True,
    citation=(
        "Shao et al., Not All Models Are Equal: Predicting Model Transferability in a "
        "Self-challenging Fisher Space, ECCV 2022, arXiv:2207.03036"
    ),
    invariances=("sample_order", "label_permutation", "translation"),
    score_range="[0, 1] (use_log=True: (-inf, 0])",
)
def sfda(
    features: Any,
    labels: Any,
    *,
    a: float = 5.0,
    lambda_floor: float = 1e-10,
    power_iterations: int = 3,
    use_log: bool = False,
    shrinkage: float | None = None,
    confmix: bool = True,
    standardize: bool = False,
) -> float:
    r"""Self-challenging Fisher Discriminant Analysis (SFDA) score.

    .. math::

        \Sigma_w^\lambda = (1-\lambda)\Sigma_w + \lambda \tfrac{\operatorname{tr}\Sigma_w}{d} I,
        \qquad \lambda = \max\!\big(e^{-a\,\hat\sigma_{\max}(\Sigma_w)},\ \lambda_{\min}\big),

        p(c \mid x) = \operatorname{softmax}_c\big(x^\top W\mu_c - \tfrac12 \mu_c^\top W \mu_c
        + \log\pi_c\big), \quad W = (\Sigma_w^\lambda)^{-1},

        q_i = \operatorname{softmax}\big(p(\cdot \mid x_i)\big)_{y_i}, \qquad
        \tilde x_i = q_i x_i + (1-q_i)\,\tfrac{1}{C-1}\textstyle\sum_{c \ne y_i} \mu_c,

        \mathrm{SFDA} = \frac1n \sum_i \tilde p(y_i \mid \tilde x_i),

    where :math:`\tilde p` is the same discriminant refitted on :math:`\tilde x` with the same
    :math:`\lambda`, :math:`\Sigma_w = \frac1n\sum_i (x_i-\mu_{y_i})(x_i-\mu_{y_i})^\top` and
    :math:`\hat\sigma_{\max}` is a power-iteration estimate started at :math:`\Sigma_w \mathbf 1`.

    Parameters
    ----------
    features : array-like or torch.Tensor of shape (n_samples, n_features)
        Penultimate-layer features of the target training samples.
    labels : array-like of shape (n_samples,)
        Target labels (any hashable values; re-indexed internally).
    a : float, default=5.0
        Decay of the shrinkage strength with the largest within-class eigenvalue.
    lambda_floor : float, default=1e-10
        Smallest shrinkage strength.
    power_iterations : int, default=3
        Double power-iteration steps used to estimate :math:`\sigma_{\max}(\Sigma_w)`.
    use_log : bool, default=False
        Average :math:`\log \tilde p(y_i \mid \tilde x_i)` (the paper's equation) instead of the
        probability (the reference code).
    shrinkage : float in [0, 1], optional
        Fix :math:`\lambda` instead of deriving it from :math:`\Sigma_w` (removes the dependence
        of :math:`\lambda` on the feature scale).
    confmix : bool, default=True
        Run the ConfMix second pass. ``False`` returns the first-pass (plain regularised FDA)
        score, for ablations.
    standardize : bool, default=False
        Z-score every feature column first (makes the score independent of per-dimension scale).

    Returns
    -------
    float
        Mean probability of the true class after ConfMix, in [0, 1] (``use_log=True``: mean log
        probability, <= 0). Higher is better.

    Raises
    ------
    ValueError
        On invalid features or labels (NaN/inf, one class, length mismatch) or out-of-range
        options (``a < 0``, ``lambda_floor`` or ``shrinkage`` outside [0, 1],
        ``power_iterations < 1``).

    Warns
    -----
    DegenerateInputWarning
        When ``n_features > n_samples - n_classes`` and :math:`\lambda < 0.1`: the within-class
        covariance is rank deficient, in-sample posteriors saturate towards 1 and checkpoints
        become indistinguishable; also when a ridge had to be added to factorise
        :math:`\Sigma_w^\lambda`.

    Notes
    -----
    The reference code solves the generalised eigenproblem
    :math:`\Sigma_b v = \rho\,\Sigma_w^\lambda v` and scores with *all* eigenvectors; since
    :math:`V^\top\Sigma_w^\lambda V = I` with :math:`V` square, :math:`VV^\top = (\Sigma_w^\lambda)^{-1}`
    and the posterior is exactly the shrinkage-LDA posterior (independent of :math:`\Sigma_b`).
    It is computed here with one Cholesky factorisation and a solve of the ``C`` class means,
    :math:`O(nd^2 + d^3 + ndC)` per pass. The ConfMix anchors are the unweighted means of the
    other classes' means, computed before mixing; :math:`\lambda` of the first pass is reused in
    the second. Unlike the reference code the caller's array is never modified and nothing is
    printed.

    Degenerate cases: a class with one sample contributes no within-class scatter (the score
    stays finite). The score depends on the feature scale through :math:`\lambda` (typical
    pooled CNN features give :math:`\lambda` = ``lambda_floor``); use ``standardize=True`` or
    ``shrinkage=`` to remove this. Power iteration starts at :math:`\Sigma_w\mathbf 1`, so the
    score is rotation invariant only up to that start vector. If :math:`\Sigma_w\mathbf 1 = 0`
    with :math:`\Sigma_w \ne 0` (the reference code returns NaN), the iteration starts from the
    column of :math:`\Sigma_w` with the largest diagonal entry. If :math:`\Sigma_w^\lambda` cannot
    be Cholesky-factorised, a ridge of 1e-12 (growing by 100x as needed) times the mean variance
    is added, with a warning.

    References
    ----------
    .. [1] W. Shao et al., "Not All Models Are Equal: Predicting Model Transferability in a
       Self-challenging Fisher Space", ECCV 2022, https://arxiv.org/abs/2207.03036

    Examples
    --------
    >>> from ckptrank.measures.sfda import sfda
    >>> from ckptrank.testing.synthetic import blobs
    >>> X, y = blobs(200, 8, 4, 4.0, random_state=0)
    >>> X0, _ = blobs(200, 8, 4, 0.0, random_state=0)
    >>> bool(sfda(X, y) > sfda(X0, y))
    True
    >>> 0.0 <= round(sfda(X, y), 3) <= 1.0
    True
    """
    X, info = check_features_and_labels(features, labels)
    check_magnitude(X, "sfda")
    check_sfda_options(a, lambda_floor, power_iterations, shrinkage)
    if standardize:
        X = standardize_features(X)
    result = sfda_scores(
        X,
        info,
        a=a,
        lambda_floor=lambda_floor,
        power_iterations=power_iterations,
        use_log=use_log,
        shrinkage=shrinkage,
        confmix=confmix,
    )
    return float(result["score"])
