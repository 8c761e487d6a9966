"""Select a small ensemble of checkpoints with SFDA.

SFDA's paper (Shao et al., ECCV 2022, https://arxiv.org/abs/2207.03036) states that the measure
"can easily select multiple pre-trained models for the model ensemble" but the procedure is not
published with the code. This module implements two readings behind one interface
(ALGORITHMS.md section 2.9):

* ``"greedy_concat"`` (default): greedy forward selection. Start with the checkpoint of highest
  SFDA; then repeatedly add the candidate that maximises SFDA computed on the concatenation of
  the selected checkpoints' features with the candidate's.
* ``"confmix_coupled"`` (a low-confidence reading of the paper, which says the selected
  models' confidences drive the ConfMix of the next candidate): the first-pass posterior of
  the already-selected ensemble (SFDA's regularised FDA on their concatenated features) sets
  the ConfMix weights ``q_i = softmax(p_ensemble(. | x_i))[y_i]`` of every candidate, whose own
  features are then mixed and re-scored as in SFDA (with the candidate's own shrinkage).

  Caveat: ConfMix removes most of the class signal of the samples it weights low, so a
  candidate is judged mainly on the samples the ensemble already classifies confidently. On
  synthetic checkpoints this reading prefers a redundant copy of the selected checkpoint over
  a complementary one (a candidate identical to the ensemble simply gets its own SFDA), i.e.
  it does not reward complementarity; use ``"greedy_concat"`` for that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .measures.sfda import check_sfda_options, confmix_weights, sfda_scores, standardize_features
from .measures.toolkit import LabelInfo, check_features, check_labels, pca_project

__all__ = ["EnsembleSelection", "select_ensemble"]

_METHODS = ("greedy_concat", "confmix_coupled")
_SFDA_OPTIONS = ("a", "lambda_floor", "power_iterations", "use_log", "shrinkage", "confmix")


@dataclass(frozen=True)
class EnsembleSelection:
    """Result of :func:`select_ensemble`.

    Attributes
    ----------
    selected : list of str
        Checkpoint names in the order they were added.
    individual_scores : dict of str to float
        SFDA of every checkpoint on its own (after the same preprocessing).
    ensemble_scores : list of float
        Score after each addition: ``ensemble_scores[0]`` is the first checkpoint's SFDA;
        for ``"greedy_concat"`` entry ``j`` is the SFDA of the first ``j + 1`` selected
        checkpoints' concatenated features; for ``"confmix_coupled"`` it is the ``j``-th
        checkpoint's SFDA with ConfMix weights taken from the first ``j`` checkpoints.
    method : str
        ``"greedy_concat"`` or ``"confmix_coupled"``.
    """

    selected: list[str]
    individual_scores: dict[str, float]
    ensemble_scores: list[float]
    method: str


def _prepare(
    features_by_checkpoint: Mapping[str, Any],
    labels: Any,
    *,
    standardize: bool,
    pca_dims: int | float | None,
) -> tuple[dict[str, np.ndarray], LabelInfo]:
    """Validate every checkpoint's features and preprocess them (PCA, then z-scoring)."""
    if not isinstance(features_by_checkpoint, Mapping):
        raise ValueError(
            "features_by_checkpoint must be a mapping {checkpoint name: (n_samples, n_features) array}, "
            f"got {type(features_by_checkpoint).__name__}"
        )
    if len(features_by_checkpoint) == 0:
        raise ValueError("features_by_checkpoint is empty; pass at least one checkpoint's features")
    info = check_labels(labels)
    prepared: dict[str, np.ndarray] = {}
    for name, feats in features_by_checkpoint.items():
        X = check_features(feats, name=f"features of checkpoint {name!r}")
        if X.shape[0] != info.n_samples:
            raise ValueError(
                f"checkpoint {name!r} has features for {X.shape[0]} samples but labels has "
                f"{info.n_samples}; every checkpoint must describe the same samples"
            )
        if pca_dims is not None:
            X = pca_project(X, pca_dims, solver="full")
        if standardize:
            X = standardize_features(X)
        prepared[str(name)] = X
    return prepared, info


def _concat(prepared: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    return np.concatenate([prepared[name] for name in names], axis=1)  # always a new array


def select_ensemble(
    features_by_checkpoint: Mapping[str, Any],
    labels: Any,
    k: int,
    *,
    method: Literal["greedy_concat", "confmix_coupled"] = "greedy_concat",
    standardize: bool = True,
    pca_dims: int | float | None = None,
    **sfda_options: Any,
) -> EnsembleSelection:
    r"""Choose ``k`` complementary checkpoints by greedy forward selection with SFDA.

    .. math::

        m_1 = \arg\max_m \mathrm{SFDA}(X_m), \qquad
        m_{j+1} = \arg\max_{m \notin S_j} \mathrm{SFDA}\big([X_{m_1}, \dots, X_{m_j}, X_m]\big)

    for ``method="greedy_concat"``; for ``method="confmix_coupled"`` the second step is
    :math:`\arg\max_m \mathrm{SFDA}_{q(S_j)}(X_m)`, SFDA of :math:`X_m` whose ConfMix weights
    :math:`q_i = \operatorname{softmax}(p_{S_j}(\cdot \mid x_i))_{y_i}` come from the first-pass
    posterior of the selected checkpoints' concatenated features.

    Parameters
    ----------
    features_by_checkpoint : mapping of str to array-like of shape (n_samples, n_features_m)
        Features of the same target samples (same order) from every candidate checkpoint; the
        widths may differ.
    labels : array-like of shape (n_samples,)
        Target labels.
    k : int
        Number of checkpoints to select, ``1 <= k <= len(features_by_checkpoint)``.
    method : {"greedy_concat", "confmix_coupled"}, default="greedy_concat"
        Selection rule (see the module docstring; ``"confmix_coupled"`` is a low-confidence
        reading of the paper that, unlike ``"greedy_concat"``, does not reward complementary
        checkpoints in synthetic tests).
    standardize : bool, default=True
        Z-score every feature column of every checkpoint, so that no checkpoint dominates the
        concatenation (and SFDA's scale-dependent shrinkage) by its feature scale.
    pca_dims : int or float, optional
        Reduce every checkpoint to this many principal components first (a float in (0, 1)
        keeps that fraction of the variance). Recommended when the summed width approaches the
        number of samples (SFDA then saturates).
    **sfda_options
        ``a``, ``lambda_floor``, ``power_iterations``, ``use_log``, ``shrinkage``, ``confmix``
        of :func:`ckptrank.measures.sfda.sfda`.

    Returns
    -------
    EnsembleSelection

    Raises
    ------
    ValueError
        If the mapping is empty, ``k`` is out of range, a checkpoint's sample count differs
        from the labels (the message names it), the features or labels are invalid, ``method``
        or an SFDA option is unknown, or ``confmix=False`` is combined with
        ``method="confmix_coupled"``.

    Notes
    -----
    Ties are broken by the order of the mapping. The preprocessing (optional PCA with the full
    SVD, then z-scoring) is applied to each checkpoint separately and also to the individual
    scores, so ``ensemble_scores[0] == individual_scores[selected[0]]``. Selecting ``k`` of
    ``M`` checkpoints costs about ``k * M`` SFDA evaluations on up to ``k`` concatenated
    feature blocks. SFDA warns when the concatenated width exceeds ``n - C``.

    Examples
    --------
    >>> import numpy as np
    >>> from ckptrank.ensemble import select_ensemble
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(np.arange(4), 50)
    >>> a = rng.standard_normal((200, 4)) + 3.0 * (y[:, None] == np.arange(4)) * (y < 2)[:, None]
    >>> b = rng.standard_normal((200, 4)) + 2.0 * (y[:, None] == np.arange(4)) * (y >= 2)[:, None]
    >>> rotated = a @ np.linalg.qr(rng.standard_normal((4, 4)))[0]
    >>> result = select_ensemble({"a": a, "a_rotated": rotated, "b": b}, y, k=2)
    >>> result.selected[1]
    'b'
    """
    if method not in _METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(map(repr, _METHODS))}")
    unknown = sorted(set(sfda_options) - set(_SFDA_OPTIONS))
    if unknown:
        raise ValueError(
            f"unknown SFDA option(s) {', '.join(map(repr, unknown))}; valid: {', '.join(_SFDA_OPTIONS)}"
        )
    if method == "confmix_coupled" and sfda_options.get("confmix", True) is False:
        raise ValueError("method='confmix_coupled' needs the ConfMix pass; drop confmix=False")
    check_sfda_options(
        sfda_options.get("a", 5.0),
        sfda_options.get("lambda_floor", 1e-10),
        sfda_options.get("power_iterations", 3),
        sfda_options.get("shrinkage"),
    )
    n_checkpoints = len(features_by_checkpoint) if isinstance(features_by_checkpoint, Mapping) else 0
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k must be an int, got {k!r}")
    if n_checkpoints and not 1 <= k <= n_checkpoints:
        raise ValueError(f"k must lie in [1, {n_checkpoints}] (the number of checkpoints), got {k}")
    prepared, info = _prepare(features_by_checkpoint, labels, standardize=standardize, pca_dims=pca_dims)

    individual = {
        name: float(sfda_scores(X.copy(), info, **sfda_options)["score"]) for name, X in prepared.items()
    }
    names = list(prepared)
    first = max(names, key=lambda name: (individual[name], -names.index(name)))
    selected, ensemble_scores = [first], [individual[first]]
    while len(selected) < k:
        candidates = [name for name in names if name not in selected]
        if method == "greedy_concat":
            scores = [
                float(sfda_scores(_concat(prepared, [*selected, cand]), info, **sfda_options)["score"])
                for cand in candidates
            ]
        else:
            first_pass = sfda_scores(_concat(prepared, selected), info, **{**sfda_options, "confmix": False})
            weights = confmix_weights(np.exp(first_pass["first_log_proba"]), info.y)
            scores = [
                float(sfda_scores(prepared[cand].copy(), info, mix_weights=weights, **sfda_options)["score"])
                for cand in candidates
            ]
        best = int(np.argmax(scores))  # first maximum: ties follow the mapping order
        selected.append(candidates[best])
        ensemble_scores.append(scores[best])
    return EnsembleSelection(
        selected=selected, individual_scores=individual, ensemble_scores=ensemble_scores, method=method
    )
