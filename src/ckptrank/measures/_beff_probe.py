"""The neural-capacitance probe (NCP): a small MLP trained briefly on a checkpoint's features.

Following the patent's procedure (ALGORITHMS.md 2.13.1), the checkpoint's output layer is
removed and a randomly initialised multi-layer probe plus a new head for the target classes
is trained on the target training split. This module implements the frozen-backbone mode:
the probe trains on the checkpoint's (cached) penultimate features, so a run costs seconds.
After every epoch it records the probe's weight matrices, their ``beta_eff`` and the
validation accuracy on a stratified hold-out part of the training split.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from ._beff_line_graph import beta_eff, beta_eff_from_couplings
from ._validation import check_features_and_labels, warn_degenerate

__all__ = [
    "InputMap",
    "ProbeRun",
    "build_probe",
    "check_probe_options",
    "fit_input_map",
    "gradient_couplings",
    "graph_layers",
    "graph_matrices",
    "probe_split",
    "run_probe_epochs",
    "train_probe",
]


@dataclass(frozen=True)
class ProbeRun:
    """Record of one probe training run.

    Attributes
    ----------
    beta : ndarray of shape (n_epochs,)
        ``beta_eff`` after every epoch: of the probe's weights, or of the measured couplings with
        ``weighting="gradient_coupling"``.
    val_accuracy : ndarray of shape (n_epochs,)
        Hold-out accuracy after every epoch.
    train_loss : ndarray of shape (n_epochs,)
        Mean training cross-entropy of every epoch.
    weights : list of list of ndarray
        Every linear layer's weights (probe layers, then the head, input side first) after every epoch.
    seconds : float
        Wall-clock training time.
    options : dict
        The resolved training options.
    """

    beta: np.ndarray
    val_accuracy: np.ndarray
    train_loss: np.ndarray
    weights: list[list[np.ndarray]] = field(repr=False)
    seconds: float
    options: dict[str, Any]


@dataclass(frozen=True)
class InputMap:
    """A fixed affine map of a checkpoint's features to the probe's input.

    ``(X - offset) / scale``, then ``@ projection`` when there is one.

    Attributes
    ----------
    offset, scale : ndarray of shape (n_features,)
    projection : ndarray of shape (n_features, width) or None
    """

    offset: np.ndarray
    scale: np.ndarray
    projection: np.ndarray | None

    @property
    def width(self) -> int:
        """Number of probe inputs."""
        return int(self.offset.size if self.projection is None else self.projection.shape[1])

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """Map features of shape (n_samples, n_features) to shape (n_samples, width)."""
        Z = (X - self.offset) / self.scale
        return Z if self.projection is None else Z @ self.projection


def fit_input_map(train: np.ndarray, *, standardize: bool, input_dim: int | None) -> InputMap:
    """The probe's input map, fitted on the training part's features.

    Standardise with the training part's statistics (``standardize``); then, when ``input_dim``
    is set, project on the training part's top principal directions (at most ``input_dim``),
    embed them with a fixed seeded orthonormal map when fewer exist, and scale so that the mean
    column variance on the training part is 1. Every candidate's probe then has the same shape
    and input scale, so its capacity to fit (and the capacitance that grows with it) does not
    depend on the checkpoint's feature width or scale.

    Parameters
    ----------
    train : ndarray of shape (n_train, n_features)
    standardize : bool
    input_dim : int or None

    Returns
    -------
    InputMap
    """
    d = train.shape[1]
    offset = np.zeros(d)
    scale = np.ones(d)
    if standardize:
        offset = train.mean(axis=0)
        scale = train.std(axis=0)
        scale[scale == 0] = 1.0
    if input_dim is None:
        return InputMap(offset, scale, None)
    Z = (train - offset) / scale
    centre = Z.mean(axis=0)
    _, _, Vt = np.linalg.svd(Z - centre, full_matrices=False)
    k = min(input_dim, Vt.shape[0])
    basis = Vt[:k]
    signs = np.sign(basis[np.arange(k), np.abs(basis).argmax(axis=1)])
    basis = basis * np.where(signs == 0, 1.0, signs)[:, None]
    projection = basis.T
    if k < input_dim:
        embed, _ = np.linalg.qr(np.random.default_rng(12345).standard_normal((input_dim, k)))
        projection = projection @ embed.T
    offset = offset + scale * centre
    spread = (((train - offset) / scale) @ projection).var(axis=0).mean()
    return InputMap(offset, scale, projection / np.sqrt(spread) if spread > 0 else projection)


def probe_split(info: Any, val_fraction: float, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/validation indices of the probe run (shared by the frozen and backbone modes)."""
    n_classes = info.n_classes
    stratify = info.y if info.counts.min() >= 2 else None
    n_val = max(round(val_fraction * info.n_samples), n_classes)
    if info.n_samples - n_val < n_classes:
        raise ValueError(
            f"{info.n_samples} samples are too few to hold out {n_val} for validation with "
            f"{n_classes} classes; collect more samples or lower val_fraction"
        )
    if stratify is None:
        warn_degenerate("probe: some classes have a single sample; the validation split is not stratified")
    train_idx, val_idx = train_test_split(
        np.arange(info.n_samples), test_size=n_val, stratify=stratify, random_state=random_state
    )
    return np.asarray(train_idx), np.asarray(val_idx)


WEIGHTINGS = ("abs_product", "unweighted", "gradient_coupling")


def check_probe_options(
    widths: Sequence[int],
    epochs: int,
    max_epochs: int,
    graph: str,
    weighting: str = "abs_product",
    freeze_probe: bool = False,
    orientation: str = "forward",
) -> None:
    """Reject probe options that cannot give a meaningful beta_eff, before any training."""
    graph_matrices([np.zeros((1, 1))] * 4, graph)
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {weighting!r}; use one of {', '.join(map(repr, WEIGHTINGS))}")
    if orientation not in ("forward", "symmetric"):
        raise ValueError(f"unknown orientation {orientation!r}; use 'forward' or 'symmetric'")
    if freeze_probe and weighting != "gradient_coupling" and graph == "probe":
        raise ValueError(
            f"freeze_probe=True with weighting={weighting!r} and graph='probe' reads only the frozen probe's "
            "weights, which are the same for every candidate (same initialisation); use "
            "weighting='gradient_coupling' or a graph that includes the trained head ('fixed_shape', 'all')"
        )
    if len(widths) < 3:
        raise ValueError(
            f"the probe needs at least 3 layers for a non-zero beta_eff, got widths={tuple(widths)}"
        )
    if epochs < 1 or max_epochs < epochs:
        raise ValueError(f"need 1 <= epochs <= max_epochs, got epochs={epochs}, max_epochs={max_epochs}")


def build_probe(d: int, widths: Sequence[int], n_classes: int, init_seed: int) -> torch.nn.Sequential:
    """Probe layers plus a new head, each initialised from its own seeded stream.

    Every layer draws PyTorch's default ``nn.Linear`` distribution, U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    from a generator seeded by ``(init_seed, layer index)``, so candidates with different feature
    widths still share identical hidden-layer initialisations.
    """
    layers: list[torch.nn.Module] = []
    sizes = [d, *widths, n_classes]
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        linear = torch.nn.Linear(fan_in, fan_out).double()
        rng = np.random.default_rng([init_seed, index])
        bound = 1.0 / np.sqrt(fan_in)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(rng.uniform(-bound, bound, size=(fan_out, fan_in))))
            linear.bias.copy_(torch.from_numpy(rng.uniform(-bound, bound, size=fan_out)))
        layers.append(linear)
        if index < len(widths):
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def layer_matrices(model: torch.nn.Sequential) -> list[np.ndarray]:
    """Every linear layer's weights (probe layers, then the head), input side first."""
    return [m.weight.detach().cpu().double().numpy().copy() for m in model if isinstance(m, torch.nn.Linear)]


def graph_layers(n_layers: int, graph: str) -> list[int]:
    """Indices of the linear layers (probe layers, then the head) that form the line graph."""
    chosen = graph_matrices(list(range(n_layers)), graph)  # type: ignore[arg-type]
    return [int(i) for i in chosen]


def gradient_couplings(
    probe: torch.nn.Sequential,
    loss_of: Callable[[torch.Tensor], torch.Tensor],
    batch: torch.Tensor,
    layers: Sequence[int],
) -> list[np.ndarray]:
    """Data-dependent arc weights of the line graph: ``|E_x[h_a phi'(z_b) delta_c]|`` per layer pair.

    For edges ``a -> b`` of linear layer ``l`` and ``b -> c`` of layer ``l + 1``, back-propagation
    gives the velocity of ``w_ab`` as a sum over ``c`` of ``w_bc`` times the coefficient
    ``sum_n h_a(n) phi'(z_b(n)) delta_c(n)`` on a batch, with ``h`` the layer's input, ``z_b`` the
    pre-activation of ``b``, ``phi'`` the ReLU derivative (1 where no ReLU follows) and
    ``delta_c`` the gradient of the batch's mean loss with respect to the pre-activation of ``c``
    (ALGORITHMS.md 2.13.3, ``gradient_coupling``; whether the paper uses it is unverified).

    Parameters
    ----------
    probe : torch.nn.Sequential
        Linear layers with ReLUs between them (from :func:`build_probe`).
    loss_of : callable
        Mini-batch indices to the mean loss, computed through ``probe``.
    batch : torch.Tensor
        The fixed rows on which the couplings are measured.
    layers : sequence of int
        Consecutive indices of the linear layers forming the graph (:func:`graph_layers`).

    Returns
    -------
    list of ndarray, each of shape (n_b, n_a, n_c)
        One tensor per pair of consecutive graph layers (input to
        :func:`ckptrank.capacitance.line_graph.beta_eff_from_couplings`).
    """
    linears = [m for m in probe if isinstance(m, torch.nn.Linear)]
    followed_by_relu = [
        i + 1 < len(probe) and isinstance(probe[i + 1], torch.nn.ReLU)
        for i, m in enumerate(probe)
        if isinstance(m, torch.nn.Linear)
    ]
    inputs: dict[int, torch.Tensor] = {}
    outputs: dict[int, torch.Tensor] = {}

    def hook(index: int) -> Callable[..., None]:
        def capture(_module: torch.nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> None:
            inputs[index] = args[0].detach()
            outputs[index] = out

        return capture

    handles = [linears[i].register_forward_hook(hook(i)) for i in layers]
    try:
        loss = loss_of(batch)
        grads = torch.autograd.grad(loss, [outputs[i] for i in layers])
    finally:
        for handle in handles:
            handle.remove()
    deltas = {i: g.detach().double() for i, g in zip(layers, grads, strict=True)}
    tensors = []
    for first, second in itertools.pairwise(layers):
        h = inputs[first].double()
        z = outputs[first].detach().double()
        slope = (z > 0).double() if followed_by_relu[first] else torch.ones_like(z)
        coupling = torch.einsum("na,nb,nc->bac", h, slope, deltas[second]).abs()
        tensors.append(coupling.cpu().numpy())
    return tensors


def graph_matrices(matrices: Sequence[np.ndarray], graph: str) -> list[np.ndarray]:
    """The weight matrices whose line graph gives beta_eff.

    Parameters
    ----------
    matrices : sequence of ndarray
        All layers of the probe model: the probe's layers, then the head.
    graph : {"probe", "fixed_shape", "all"}
        ``probe``: the probe's own layers (the patent's reading; comparable across candidates when
        the input is projected to a common width, ``input_dim``). ``fixed_shape``: drops the probe's
        input layer, whose width is the checkpoint's feature width when ``input_dim`` is None.
        ``all``: every layer including the head.
    """
    if graph == "fixed_shape":
        return list(matrices[1:])
    if graph == "probe":
        return list(matrices[:-1])
    if graph == "all":
        return list(matrices)
    raise ValueError(f"unknown graph {graph!r}; use 'fixed_shape', 'probe' or 'all'")


def train_probe(
    features: Any,
    labels: Any,
    *,
    widths: Sequence[int] = (256, 128, 64),
    epochs: int = 5,
    max_epochs: int = 50,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    batch_size: int = 32,
    val_fraction: float = 0.2,
    standardize: bool = True,
    weighting: str = "abs_product",
    orientation: str = "forward",
    graph: str = "probe",
    input_dim: int | None = 64,
    freeze_probe: bool = False,
    init_seed: int = 0,
    random_state: int = 0,
    time_budget: float | None = None,
    device: str | None = None,
) -> ProbeRun:
    """Train the neural-capacitance probe on features for a few epochs and record its dynamics.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        Penultimate features of the target training split (frozen backbone).
    labels : array-like of shape (n_samples,)
    widths : sequence of int, default=(256, 128, 64)
        Probe widths; at least 3 layers are needed for a non-zero forward ``beta_eff``.
    epochs : int, default=5
        Early-training budget ``T_early`` actually run.
    max_epochs : int, default=50
        Nominal budget ``E_max`` of the cosine schedule (the early epochs see its start).
    lr, momentum, weight_decay, batch_size : SGD settings.
    val_fraction : float, default=0.2
        Stratified hold-out part of the training split for the per-epoch accuracy.
    standardize : bool, default=True
        Standardise features with training-part statistics, so probe weights of checkpoints with
        different feature scales are comparable (beta_eff is not scale invariant).
    weighting : {"abs_product", "unweighted", "gradient_coupling"}, default="abs_product"
        Arc weights of the line graph: ``|w(e)| |w(e')|``, 1, or the data-dependent
        back-propagation coupling ``|E_x[h_a phi'(z_b) delta_c]|`` measured on a fixed batch of 256
        training samples after every epoch (:func:`gradient_couplings`).
    orientation : {"forward", "symmetric"}, default="forward"
        Passed to :func:`ckptrank.beta_eff`.
    graph : {"probe", "fixed_shape", "all"}, default="probe"
        Which layers form the line graph (see :func:`graph_matrices`).
    input_dim : int or None, default=64
        Project the (standardised) features on their top ``input_dim`` principal directions of the
        training part, zero-padded to exactly that width, so every candidate's probe has the same
        shape (toolkit choice: without it, a wide checkpoint's probe memorises more and its
        capacitance grows with the feature width, not with transferability). None keeps raw width.
    freeze_probe : bool, default=False
        Keep the probe's layers at their random initialisation and train only the head (one
        reading of the patent's "adjacency matrix from the initialized NCP unit", ALGORITHMS.md
        2.13.2 b). The frozen probe's weights are the same for every candidate, so this needs
        ``weighting="gradient_coupling"`` (or a ``graph`` that includes the head: "fixed_shape", "all").
    init_seed : int, default=0
        Seed of the probe initialisation, shared by every candidate.
    random_state : int, default=0
        Seed of the split and of the mini-batch order.
    time_budget : float, optional
        Seconds; training stops after the last epoch that fits. A budget too small for one epoch
        raises.
    device : str, optional
        Torch device (default CPU).

    Returns
    -------
    ProbeRun

    Raises
    ------
    ValueError
        Invalid inputs, fewer than 3 probe layers, ``epochs < 1``, a time budget too small for one
        epoch, or training that diverges (non-finite loss).
    """
    X, info = check_features_and_labels(features, labels)
    check_probe_options(widths, epochs, max_epochs, graph, weighting, freeze_probe, orientation)
    train_idx, val_idx = probe_split(info, val_fraction, random_state)
    X = fit_input_map(X[train_idx], standardize=standardize, input_dim=input_dim)(X)
    dev = torch.device(device or "cpu")
    Xt = torch.from_numpy(X).to(dev)
    yt = torch.from_numpy(info.y).to(dev)
    model = build_probe(X.shape[1], widths, info.n_classes, init_seed).to(dev)
    trained = model[-1].parameters() if freeze_probe else model.parameters()
    optimiser = torch.optim.SGD(trained, lr=lr, momentum=momentum, weight_decay=weight_decay)

    def loss_of(batch: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(model(Xt[batch]), yt[batch])

    def val_predictions() -> np.ndarray:
        with torch.no_grad():
            return model(Xt[val_idx]).argmax(dim=1).cpu().numpy()

    options = dict(
        widths=tuple(widths),
        epochs=epochs,
        max_epochs=max_epochs,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        batch_size=batch_size,
        val_fraction=val_fraction,
        standardize=standardize,
        weighting=weighting,
        orientation=orientation,
        graph=graph,
        input_dim=input_dim,
        freeze_probe=freeze_probe,
        init_seed=init_seed,
        random_state=random_state,
        train_backbone=False,
    )
    return run_probe_epochs(
        model,
        optimiser,
        loss_of=loss_of,
        val_predictions=val_predictions,
        y_val=info.y[val_idx],
        train_idx=train_idx,
        options=options,
        time_budget=time_budget,
        device=dev,
    )


def run_probe_epochs(
    probe: torch.nn.Sequential,
    optimiser: torch.optim.Optimizer,
    *,
    loss_of: Callable[[torch.Tensor], torch.Tensor],
    val_predictions: Callable[[], np.ndarray],
    y_val: np.ndarray,
    train_idx: np.ndarray,
    options: dict[str, Any],
    time_budget: float | None,
    device: torch.device,
    set_training: Callable[[bool], None] | None = None,
    coupling_loss_of: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> ProbeRun:
    """The training loop shared by the frozen and backbone modes.

    Trains for ``options["epochs"]`` epochs of a cosine schedule over ``options["max_epochs"]``,
    mini-batches of ``options["batch_size"]`` in a seeded order, and records after every epoch the
    probe's weights, their ``beta_eff`` and the validation accuracy.

    Parameters
    ----------
    probe : torch.nn.Sequential
        The probe and its head (from :func:`build_probe`); its weights are recorded.
    optimiser : torch.optim.Optimizer
        Optimiser over everything that trains (the probe, and the backbone in backbone mode).
    loss_of : callable
        Mini-batch indices (a LongTensor of rows of the training data) to the mean loss.
    val_predictions : callable
        Predicted classes of the validation samples, shape (n_val,).
    y_val : ndarray of shape (n_val,)
    train_idx : ndarray of shape (n_train,)
    options : dict
        The resolved options (recorded with the run).
    time_budget : float or None
    device : torch.device
    set_training : callable, optional
        Called with True before an epoch's training and False before its evaluation.
    coupling_loss_of : callable, optional
        The loss on which ``gradient_coupling`` is measured (default ``loss_of``); the backbone
        mode passes one that runs the backbone without gradients, since only the probe's
        pre-activation gradients are needed.

    Returns
    -------
    ProbeRun

    Raises
    ------
    ValueError
        Non-finite loss, or a time budget too small for one epoch.
    """
    epochs, batch_size, lr = options["epochs"], options["batch_size"], options["lr"]
    max_grad_norm = options.get("max_grad_norm")
    params = [p for group in optimiser.param_groups for p in group["params"]]
    # A chance-level predictor's cross-entropy is log C; a hundred times that means the weights blew
    # up even when the loss is still a finite number.
    n_classes = int(probe[-1].out_features)
    diverged_above = 100.0 * math.log(max(n_classes, 2))
    coupled = options["weighting"] == "gradient_coupling"
    n_linear = sum(isinstance(m, torch.nn.Linear) for m in probe)
    coupling_layers = graph_layers(n_linear, options["graph"])
    coupling_batch = torch.from_numpy(
        np.random.default_rng([options["random_state"], 1]).permutation(train_idx)[:256]
    ).to(device)
    steps_per_epoch = int(np.ceil(train_idx.size / batch_size))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimiser, T_max=options["max_epochs"] * steps_per_epoch
    )
    generator = np.random.default_rng(options["random_state"])
    toggle = set_training or (lambda training: probe.train(training))
    betas, accs, losses, weights = [], [], [], []
    start = time.perf_counter()
    for epoch in range(epochs):
        epoch_start = time.perf_counter()
        toggle(True)
        order = torch.from_numpy(generator.permutation(train_idx)).to(device)
        total = 0.0
        for step in range(steps_per_epoch):
            batch = order[step * batch_size : (step + 1) * batch_size]
            loss = loss_of(batch)
            if not torch.isfinite(loss) or loss.item() > diverged_above:
                raise ValueError(
                    f"probe training diverged at epoch {epoch + 1} (loss {loss.item():.4g}, chance level "
                    f"{math.log(n_classes):.3g}); lower lr (now {lr})"
                )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            optimiser.step()
            schedule.step()
            total += loss.item() * batch.numel()
            if epoch == 0 and step == min(1, steps_per_epoch - 1) and time_budget is not None:
                estimate = (time.perf_counter() - epoch_start) / (step + 1) * steps_per_epoch
                if estimate > time_budget:
                    raise ValueError(
                        f"time budget {time_budget:.3g} s is too small for one probe epoch "
                        f"(about {estimate:.3g} s for {train_idx.size} samples); "
                        "raise the budget or subsample the data"
                    )
        toggle(False)
        pred = val_predictions()
        mats = layer_matrices(probe)
        weights.append(mats)
        if coupled:
            couplings = gradient_couplings(
                probe, coupling_loss_of or loss_of, coupling_batch, coupling_layers
            )
            betas.append(beta_eff_from_couplings(couplings, orientation=options["orientation"]))
        else:
            betas.append(
                beta_eff(
                    graph_matrices(mats, options["graph"]),
                    weighting=options["weighting"],
                    orientation=options["orientation"],
                )
            )
        accs.append(float((pred == y_val).mean()))
        losses.append(total / train_idx.size)
        if time_budget is not None and time.perf_counter() - start > time_budget and epoch + 1 < epochs:
            elapsed = time.perf_counter() - start
            warn_degenerate(
                f"probe: time budget {time_budget:.3g} s reached after {epoch + 1} of {epochs} epochs "
                f"({elapsed:.3g} s); scores use the epochs run"
            )
            break
    return ProbeRun(
        beta=np.array(betas),
        val_accuracy=np.array(accs),
        train_loss=np.array(losses),
        weights=weights,
        seconds=time.perf_counter() - start,
        options=options,
    )
