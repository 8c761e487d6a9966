"""Neural capacitance ``beta_eff`` as a (dynamic) transferability measure, and its early-accuracy baseline.

Jiang, Pedapati, Chen, Sun, Gao, "Neural Capacitance: A New Perspective of Neural Network
Selection via Edge Dynamics", arXiv:2201.04194 (2022); journal version "Network properties
determine neural network performance", Nature Communications 15 (2024).
Unlike the static measures, these train a small probe network on the features for a few
epochs (:func:`ckptrank.capacitance.probe.train_probe`), so they carry a training budget.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from sklearn.linear_model import BayesianRidge

from ._beff_probe import ProbeRun, train_probe
from ._registry import register_measure
from ._validation import check_features_and_labels, check_labels

__all__ = [
    "beff",
    "beff_finetune",
    "cross_model_prediction",
    "extrapolate_beta",
    "probe_accuracy",
    "probe_accuracy_finetune",
    "within_run_prediction",
]

_CITATION = (
    "C. Jiang, T. Pedapati, P.-Y. Chen, Y. Sun, J. Gao. Neural Capacitance: A New Perspective of Neural "
    "Network Selection via Edge Dynamics. arXiv:2201.04194, 2022"
)
_RUNS: OrderedDict[str, ProbeRun] = OrderedDict()
_MAX_CACHED_RUNS = 16


def _remember(key: str, train: Any) -> ProbeRun:
    if key in _RUNS:
        _RUNS.move_to_end(key)
        return _RUNS[key]
    run = train()
    _RUNS[key] = run
    while len(_RUNS) > _MAX_CACHED_RUNS:
        _RUNS.popitem(last=False)
    return run


def _cached_run(features: Any, labels: Any, options: dict[str, Any]) -> ProbeRun:
    """Train once per (features, labels, options): ``beff`` and ``probe_accuracy`` share the run."""
    X, info = check_features_and_labels(features, labels)
    digest = hashlib.sha256(X.tobytes())
    digest.update(info.y.tobytes())
    digest.update(repr(sorted(options.items())).encode())
    return _remember(digest.hexdigest(), lambda: train_probe(X, info.y, **options))


def _cached_backbone_run(model: Any, labels: Any, options: dict[str, Any]) -> ProbeRun:
    """Train once per (checkpoint, samples, labels, options) with the backbone fine-tuned."""
    from ._beff_backbone import ModelInput, train_probe_backbone

    if not isinstance(model, ModelInput):
        raise ValueError(
            f"model must be a ckptrank.capacitance.backbone.ModelInput (checkpoint and raw samples), "
            f"got {type(model).__name__}"
        )
    from ckptrank.data.dataset import items_fingerprint

    info = check_labels(labels)
    checkpoint = model.checkpoint

    def train() -> ProbeRun:
        return train_probe_backbone(checkpoint, model.items, info.y, **options)

    weights = getattr(checkpoint, "weights_fingerprint", None)
    preprocessing = getattr(checkpoint, "preprocessing", None)
    modality = getattr(checkpoint, "modality", "image")
    try:
        samples = model.fingerprint or items_fingerprint(model.items, modality)
    except ValueError:
        samples = None
    if not callable(weights) or samples is None:
        return train()  # nothing stable to key a shared run on: train afresh
    digest = hashlib.sha256(info.y.tobytes())
    digest.update(
        repr(
            (
                weights(),
                getattr(checkpoint, "spec", None),  # spec options (?size=, ?pool=) change the features
                getattr(checkpoint, "layer", None),
                preprocessing.to_dict() if hasattr(preprocessing, "to_dict") else repr(preprocessing),
                samples,
                sorted(options.items()),
            )
        ).encode()
    )
    return _remember(digest.hexdigest(), train)


def extrapolate_beta(beta: Sequence[float], target_epoch: int) -> float:
    """Extrapolate ``beta_eff(t)`` to ``t = target_epoch`` with a least-squares fit linear in ``log t``."""
    b = np.asarray(beta, dtype=np.float64)
    if b.size == 1:
        return float(b[0])
    t = np.log(np.arange(1, b.size + 1, dtype=np.float64))
    slope, intercept = np.polyfit(t, b, 1)
    return float(intercept + slope * np.log(target_epoch))


def within_run_prediction(beta: Sequence[float], accuracy: Sequence[float], target_epoch: int) -> float:
    """Predict the accuracy at ``target_epoch`` from one run's early ``(beta_eff, accuracy)`` pairs.

    Fits scikit-learn's :class:`~sklearn.linear_model.BayesianRidge` (defaults) of accuracy on
    ``beta_eff`` over the recorded epochs, then evaluates it at the extrapolated
    ``beta_eff(target_epoch)`` (:func:`extrapolate_beta`), clipped to [0, 1].
    """
    b = np.asarray(beta, dtype=np.float64)
    a = np.asarray(accuracy, dtype=np.float64)
    if b.size < 2 or np.ptp(b) == 0:
        return float(a[-1])
    model = BayesianRidge().fit(b[:, None], a)
    return float(np.clip(model.predict(np.array([[extrapolate_beta(b, target_epoch)]]))[0], 0.0, 1.0))


#: The arguments of the measures below that configure the probe's training (passed on to
#: train_probe / train_probe_backbone and part of the shared run's key).
_TRAINING_OPTIONS = frozenset(
    {
        "epochs",
        "max_epochs",
        "widths",
        "weighting",
        "orientation",
        "lr",
        "backbone_lr_multiplier",
        "batch_size",
        "standardize",
        "freeze_probe",
        "init_seed",
        "random_state",
        "time_budget",
        "device",
    }
)


def _training_options(arguments: dict[str, Any]) -> dict[str, Any]:
    """The training options among a measure's arguments (call with ``locals()`` on entry)."""
    return {
        name: tuple(value) if name == "widths" else value
        for name, value in arguments.items()
        if name in _TRAINING_OPTIONS
    }


def _check_modes(mode: str, epochs_used: str) -> None:
    if mode not in ("raw", "within_run_brr"):
        hint = (
            "; cross-model prediction needs reference accuracies: use cross_model_prediction"
            if mode == "cross_model_brr"
            else ""
        )
        raise ValueError(f"unknown mode {mode!r}; use 'raw' or 'within_run_brr'{hint}")
    if epochs_used not in ("last", "mean_last2"):
        raise ValueError(f"unknown epochs_used {epochs_used!r}; use 'last' or 'mean_last2'")


def _read_beta(run: ProbeRun, mode: str, epochs_used: str, max_epochs: int) -> float:
    """The score of a run: its last (or last two epochs') beta_eff, or the within-run prediction."""
    if mode == "within_run_brr":
        return within_run_prediction(run.beta, run.val_accuracy, max_epochs)
    return float(run.beta[-2:].mean() if epochs_used == "mean_last2" else run.beta[-1])


@register_measure(
    "beff",
    requires=("features",),
    higher_is_better=True,
    citation=_CITATION,
    kind="dynamic",
    stochastic=True,
    invariances=(),
    score_range="[0, inf)",
)
def beff(
    features: Any,
    labels: Any,
    *,
    epochs: int = 5,
    max_epochs: int = 50,
    widths: Sequence[int] = (256, 128, 64),
    mode: Literal["raw", "within_run_brr"] = "raw",
    epochs_used: Literal["last", "mean_last2"] = "last",
    weighting: Literal["abs_product", "unweighted", "gradient_coupling"] = "abs_product",
    orientation: Literal["forward", "symmetric"] = "forward",
    lr: float = 0.1,
    batch_size: int = 32,
    standardize: bool = True,
    freeze_probe: bool = False,
    init_seed: int = 0,
    random_state: int = 0,
    time_budget: float | None = None,
    device: str | None = None,
) -> float:
    """Neural capacitance beta_eff of a probe trained briefly on the checkpoint's features.

    A probe MLP (``widths``, ReLU, the same initialisation seed for every candidate) plus a new
    head is trained on the features for ``epochs`` of a nominal ``max_epochs`` cosine schedule;
    the probe's weights are mapped to their line graph and its capacitance is read:

    .. math::

        \\beta_{\\mathrm{eff}} = \\frac{\\sum_e s_{out}(e)\\, s_{in}(e)}{\\sum_e s_{in}(e)}.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        Penultimate features of the target training split (frozen backbone).
    labels : array-like of shape (n_samples,)
    epochs : int, default=5
        Early-training budget ``T_early``.
    max_epochs : int, default=50
        Nominal full budget ``E_max`` (schedule length; extrapolation target).
    widths : sequence of int, default=(256, 128, 64)
        Probe widths (>= 3 layers).
    mode : {"raw", "within_run_brr"}, default="raw"
        ``raw``: the capacitance itself. ``within_run_brr``: Bayesian-ridge prediction of the
        accuracy at ``max_epochs`` from the run's early ``(beta_eff, accuracy)`` pairs.
    epochs_used : {"last", "mean_last2"}, default="last"
        Which recorded epochs give the raw score.
    weighting : {"abs_product", "unweighted", "gradient_coupling"}, default="abs_product"
        Arc weights of the line graph (unverified in the paper, ALGORITHMS.md 2.13.2 a):
        ``|w(e)| |w(e')|``, pure topology, or the data-dependent back-propagation coupling
        (see :func:`ckptrank.capacitance.probe.gradient_couplings`).
    orientation : {"forward", "symmetric"}, default="forward"
        Line-graph orientation (see :func:`ckptrank.beta_eff`).
    lr, batch_size, standardize, freeze_probe, init_seed, random_state, time_budget, device
        Training options (see :func:`ckptrank.capacitance.probe.train_probe`); ``freeze_probe``
        trains only the head (ALGORITHMS.md 2.13.2 b) and needs ``weighting="gradient_coupling"``.

    Returns
    -------
    float
        ``beta_eff`` (>= 0) in ``raw`` mode, a predicted accuracy in [0, 1] otherwise. Higher is
        taken as better (the sign of the relation in the paper is unverified: ALGORITHMS.md 2.13.2 f).

    Raises
    ------
    ValueError
        Invalid inputs, diverging training, or a time budget too small for one epoch.

    Notes
    -----
    Frozen-backbone mode (toolkit default): the probe trains on cached features, so a candidate
    costs seconds. The run is shared with :func:`probe_accuracy` (same options, same data).

    References
    ----------
    .. [1] C. Jiang et al., "Neural Capacitance: A New Perspective of Neural Network Selection via
       Edge Dynamics", arXiv:2201.04194, 2022.

    Examples
    --------
    >>> from ckptrank.testing.synthetic import blobs
    >>> X, y = blobs(200, 8, 3, 3.0)
    >>> beff(X, y, epochs=2, widths=(16, 8, 4)) > 0
    True
    """
    _check_modes(mode, epochs_used)
    run = _cached_run(
        features,
        labels,
        _training_options(locals()),
    )
    return _read_beta(run, mode, epochs_used, max_epochs)


@register_measure(
    "probe_accuracy",
    requires=("features",),
    higher_is_better=True,
    citation="Early-stopping baseline for learning-curve prediction (same budget as beff); " + _CITATION,
    kind="dynamic",
    stochastic=True,
    invariances=(),
    score_range="[0, 1]",
)
def probe_accuracy(
    features: Any,
    labels: Any,
    *,
    epochs: int = 5,
    max_epochs: int = 50,
    widths: Sequence[int] = (256, 128, 64),
    weighting: Literal["abs_product", "unweighted", "gradient_coupling"] = "abs_product",
    orientation: Literal["forward", "symmetric"] = "forward",
    lr: float = 0.1,
    batch_size: int = 32,
    standardize: bool = True,
    freeze_probe: bool = False,
    init_seed: int = 0,
    random_state: int = 0,
    time_budget: float | None = None,
    device: str | None = None,
) -> float:
    """Validation accuracy of the beff probe after the same early-training budget (the natural baseline).

    .. math::

        \\mathrm{acc}(T_{early}) = \\frac{1}{|V|} \\sum_{i \\in V} [\\hat y_i = y_i].

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
    epochs, max_epochs, widths, weighting, orientation, lr, batch_size, standardize, freeze_probe,
    init_seed, random_state, time_budget, device
        As for :func:`beff`; with equal options both read the same training run.

    Returns
    -------
    float
        Hold-out accuracy in [0, 1] after ``epochs`` epochs; higher is better.

    Raises
    ------
    ValueError
        As for :func:`beff`.

    References
    ----------
    .. [1] B. Baker et al., "Accelerating Neural Architecture Search using Performance Prediction",
       ICLR workshop 2018 (early accuracy as a learning-curve baseline).

    Examples
    --------
    >>> from ckptrank.testing.synthetic import blobs
    >>> X, y = blobs(200, 8, 3, 6.0)
    >>> probe_accuracy(X, y, epochs=3, widths=(16, 8, 4)) > 0.5
    True
    """
    run = _cached_run(
        features,
        labels,
        _training_options(locals()),
    )
    return float(run.val_accuracy[-1])


def cross_model_prediction(
    reference_scores: Any,
    reference_accuracies: Any,
    candidate_scores: Any,
) -> np.ndarray:
    """Predict candidates' final accuracy from reference checkpoints trained to the end (``cross_model_brr``).

    ALGORITHMS.md 2.13.3 mode 3: a set of reference checkpoints gives pairs (early score, final
    accuracy); scikit-learn's :class:`~sklearn.linear_model.BayesianRidge` (defaults) is fitted
    once on them and predicts the candidates' final accuracy from their early scores. The early
    score is one column (``beta_eff``) or several (e.g. ``beta_eff`` and the early accuracy), so
    the relation's sign, unverified in the paper (2.13.2 f), is learnt from the references.

    Parameters
    ----------
    reference_scores : array-like of shape (n_references,) or (n_references, n_inputs)
        Early-training scores of the reference checkpoints.
    reference_accuracies : array-like of shape (n_references,)
        Their final (fine-tuned) accuracies.
    candidate_scores : array-like of shape (n_candidates,) or (n_candidates, n_inputs)
        Early-training scores of the candidates, same columns as the references.

    Returns
    -------
    ndarray of shape (n_candidates,)
        Predicted final accuracies in the references' unit, clipped to [0, 1] (fractions) or
        [0, 100] (percentages, when some reference accuracy exceeds 1).

    Raises
    ------
    ValueError
        Fewer than 2 references, mismatched shapes, or non-finite values.

    Examples
    --------
    >>> cross_model_prediction([1.0, 2.0, 3.0], [0.5, 0.6, 0.7], [4.0]).round(2)
    array([0.8])
    """
    refs = np.asarray(reference_scores, dtype=np.float64)
    accs = np.asarray(reference_accuracies, dtype=np.float64)
    cands = np.asarray(candidate_scores, dtype=np.float64)
    refs = refs[:, None] if refs.ndim == 1 else refs
    cands = cands[:, None] if cands.ndim == 1 else cands
    if refs.ndim != 2 or cands.ndim != 2 or accs.ndim != 1:
        raise ValueError("scores must be 1-D or 2-D (one row per checkpoint) and accuracies 1-D")
    if refs.shape[0] != accs.shape[0]:
        raise ValueError(
            f"{refs.shape[0]} reference scores but {accs.shape[0]} reference accuracies; "
            "give one accuracy per reference checkpoint"
        )
    if refs.shape[0] < 2:
        raise ValueError(
            f"cross-model prediction needs at least 2 reference checkpoints, got {refs.shape[0]}"
        )
    if refs.shape[1] != cands.shape[1]:
        raise ValueError(
            f"references have {refs.shape[1]} score columns but candidates {cands.shape[1]}; use the same"
        )
    for name, values in (
        ("reference scores", refs),
        ("reference accuracies", accs),
        ("candidate scores", cands),
    ):
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{name} contain NaN or inf; drop those checkpoints first")
    model = BayesianRidge().fit(refs, accs)
    top = 1.0 if accs.max() <= 1.0 else 100.0  # fractions or percentages
    return np.clip(model.predict(cands), 0.0, top)


@register_measure(
    "beff_finetune",
    requires=("model",),
    higher_is_better=True,
    citation=_CITATION,
    kind="dynamic",
    stochastic=True,
    invariances=(),
    score_range="[0, inf)",
)
def beff_finetune(
    model: Any,
    labels: Any,
    *,
    epochs: int = 5,
    max_epochs: int = 50,
    widths: Sequence[int] = (256, 128, 64),
    mode: Literal["raw", "within_run_brr"] = "raw",
    epochs_used: Literal["last", "mean_last2"] = "last",
    weighting: Literal["abs_product", "unweighted", "gradient_coupling"] = "abs_product",
    orientation: Literal["forward", "symmetric"] = "forward",
    lr: float = 0.1,
    backbone_lr_multiplier: float = 0.1,
    batch_size: int = 32,
    standardize: bool = True,
    freeze_probe: bool = False,
    init_seed: int = 0,
    random_state: int = 0,
    time_budget: float | None = None,
) -> float:
    """Neural capacitance beta_eff of a probe trained while the checkpoint's backbone is fine-tuned.

    Parameters
    ----------
    model : ckptrank.capacitance.backbone.ModelInput
        The loaded PyTorch checkpoint and the raw target training samples.
    labels : array-like of shape (n_samples,)
    epochs, max_epochs, widths, mode, epochs_used, weighting, orientation, lr, batch_size,
    standardize, freeze_probe, init_seed, random_state, time_budget
        As for :func:`beff`.
    backbone_lr_multiplier : float, default=0.1
        The backbone trains with ``lr * backbone_lr_multiplier``.

    Returns
    -------
    float
        As for :func:`beff`.

    Raises
    ------
    ValueError
        A checkpoint that is not a PyTorch network, invalid inputs, diverging training, or a time
        budget too small for one epoch.

    Notes
    -----
    Unlike :func:`beff`, the checkpoint's backbone is fine-tuned with the probe (the patent's
    procedure, ALGORITHMS.md 2.13.1 step 4;
    :func:`ckptrank.capacitance.backbone.train_probe_backbone`), so a candidate costs ``epochs``
    epochs of fine-tuning rather than seconds. The probe input map, split, initialisation and
    schedule are those of the frozen mode. The run is shared with :func:`probe_accuracy_finetune`
    (same options, same data).

    References
    ----------
    .. [1] C. Jiang et al., "Neural Capacitance: A New Perspective of Neural Network Selection via
       Edge Dynamics", arXiv:2201.04194, 2022.
    .. [2] "Neural capacitance: neural network selection via edge dynamics", IBM, US patent
       12,450,495 B2 (the probe is inserted and the bottom layers are fine-tuned).

    Examples
    --------
    >>> import numpy as np, ckptrank.zoo
    >>> from ckptrank.adapters import load_checkpoint
    >>> from ckptrank.capacitance.backbone import ModelInput
    >>> images = np.random.default_rng(0).integers(0, 256, size=(40, 28, 28), dtype=np.uint8)
    >>> model = ModelInput(load_checkpoint("zoo:cnn-fm04"), images)
    >>> beff_finetune(model, np.repeat([0, 1], 20), epochs=1, widths=(16, 8, 4)) > 0
    True
    """
    _check_modes(mode, epochs_used)
    run = _cached_backbone_run(
        model,
        labels,
        _training_options(locals()),
    )
    return _read_beta(run, mode, epochs_used, max_epochs)


@register_measure(
    "probe_accuracy_finetune",
    requires=("model",),
    higher_is_better=True,
    citation="Early-stopping baseline for learning-curve prediction (same budget as beff_finetune); "
    + _CITATION,
    kind="dynamic",
    stochastic=True,
    invariances=(),
    score_range="[0, 1]",
)
def probe_accuracy_finetune(
    model: Any,
    labels: Any,
    *,
    epochs: int = 5,
    max_epochs: int = 50,
    widths: Sequence[int] = (256, 128, 64),
    weighting: Literal["abs_product", "unweighted", "gradient_coupling"] = "abs_product",
    orientation: Literal["forward", "symmetric"] = "forward",
    lr: float = 0.1,
    backbone_lr_multiplier: float = 0.1,
    batch_size: int = 32,
    standardize: bool = True,
    freeze_probe: bool = False,
    init_seed: int = 0,
    random_state: int = 0,
    time_budget: float | None = None,
) -> float:
    """Validation accuracy after the same fine-tuning budget as :func:`beff_finetune` (its baseline).

    Parameters
    ----------
    model : ckptrank.capacitance.backbone.ModelInput
    labels : array-like of shape (n_samples,)
    epochs, max_epochs, widths, weighting, orientation, lr, backbone_lr_multiplier, batch_size,
    standardize, freeze_probe, init_seed, random_state, time_budget
        As for :func:`beff_finetune`; with equal options both read the same training run.

    Returns
    -------
    float
        Hold-out accuracy in [0, 1] after ``epochs`` epochs; higher is better.

    Raises
    ------
    ValueError
        As for :func:`beff_finetune`.

    References
    ----------
    .. [1] C. Jiang et al., "Neural Capacitance: A New Perspective of Neural Network Selection via
       Edge Dynamics", arXiv:2201.04194, 2022.
    .. [2] "Neural capacitance: neural network selection via edge dynamics", IBM, US patent
       12,450,495 B2 (the probe is inserted and the bottom layers are fine-tuned).

    Examples
    --------
    >>> import numpy as np, ckptrank.zoo
    >>> from ckptrank.adapters import load_checkpoint
    >>> from ckptrank.capacitance.backbone import ModelInput
    >>> images = np.random.default_rng(0).integers(0, 256, size=(40, 28, 28), dtype=np.uint8)
    >>> model = ModelInput(load_checkpoint("zoo:cnn-fm04"), images)
    >>> probe_accuracy_finetune(model, np.repeat([0, 1], 20), epochs=1, widths=(16, 8, 4)) <= 1
    True
    """
    run = _cached_backbone_run(
        model,
        labels,
        _training_options(locals()),
    )
    return float(run.val_accuracy[-1])
