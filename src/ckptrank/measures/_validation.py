"""Input validation shared by every measure.

Each public measure calls these checkers on its first line. They accept numpy arrays,
array-likes and torch tensors (on any device), always return fresh float64 / int64
numpy arrays (so a measure can never mutate the caller's data), and raise a one-line
:class:`ValueError` that names the offending numbers and the fix.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DegenerateInputWarning",
    "LabelInfo",
    "check_features",
    "check_features_and_labels",
    "check_labels",
    "check_magnitude",
    "check_random_state",
    "check_source_probs",
    "to_numpy",
    "warn_degenerate",
    "warn_small_classes",
]

try:  # torch is a hard dependency of the package, but keep validation importable without it
    import torch

    _TORCH_NUMPY_FLOATS: tuple = (torch.float32, torch.float64)
except ImportError:  # pragma: no cover
    _TORCH_NUMPY_FLOATS = ()


class DegenerateInputWarning(UserWarning):
    """The input is in a regime where the measure is defined but weak or saturated.

    Examples: a class with a single sample, more feature dimensions than samples
    (H-score saturates), a GMM with more components than half the samples. The measure
    still returns its documented, principled value; the warning says why to distrust it.
    """


def warn_degenerate(message: str, *, stacklevel: int = 3) -> None:
    """Emit a :class:`DegenerateInputWarning`."""
    warnings.warn(message, DegenerateInputWarning, stacklevel=stacklevel)


@dataclass(frozen=True)
class LabelInfo:
    """Target labels re-indexed to ``0..C-1``.

    Attributes
    ----------
    y : ndarray of shape (n_samples,), int64
        Re-indexed labels.
    classes : ndarray of shape (n_classes,)
        Original label values, sorted; ``classes[y]`` recovers the input.
    counts : ndarray of shape (n_classes,), int64
        Number of samples per class.
    """

    y: np.ndarray
    classes: np.ndarray
    counts: np.ndarray

    @property
    def n_samples(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.classes.shape[0])

    @property
    def priors(self) -> np.ndarray:
        """Class frequencies ``n_c / n``, shape (n_classes,)."""
        return self.counts / self.counts.sum()

    def one_hot(self) -> np.ndarray:
        """One-hot matrix of shape (n_samples, n_classes), float64."""
        out = np.zeros((self.n_samples, self.n_classes))
        out[np.arange(self.n_samples), self.y] = 1.0
        return out

    def entropy(self) -> float:
        """Entropy of the empirical label distribution, ``-sum_c pi_c log pi_c`` (nats)."""
        p = self.priors
        return float(-(p * np.log(p)).sum())


def to_numpy(x: Any, *, name: str) -> np.ndarray:
    """Convert an array-like or a torch tensor (any device) to a numpy array without copying when possible."""
    if x is None:
        raise ValueError(f"{name} is None; pass an array of shape (n_samples, ...)")
    module = type(x).__module__
    if module.startswith("torch"):
        x = x.detach()
        if x.dtype.is_floating_point and x.dtype not in _TORCH_NUMPY_FLOATS:
            x = x.float()  # bfloat16 / float16 have no exact numpy twin on every platform
        return x.cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as err:  # ragged lists and the like
        raise ValueError(f"{name} could not be converted to an array ({err}); pass a numpy array") from None


def check_features(features: Any, *, name: str = "features", min_samples: int = 2) -> np.ndarray:
    """Validate a feature matrix and return a float64 copy.

    Parameters
    ----------
    features : array-like or torch.Tensor of shape (n_samples, n_features)
        Feature matrix. A 1-D array is read as a single feature column.
    name : str
        Name used in error messages.
    min_samples : int
        Fewest rows accepted.

    Returns
    -------
    ndarray of shape (n_samples, n_features), float64
        A new array; the input is never modified.

    Raises
    ------
    ValueError
        If the array is not numeric, has the wrong number of dimensions, too few rows,
        no columns, or contains NaN or infinite values.
    """
    arr = to_numpy(features, name=name)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}; pass a float array of features")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} is complex; pass real-valued features")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}; "
            "flatten or pool the trailing dimensions first"
        )
    n, d = arr.shape
    if n < min_samples:
        raise ValueError(f"{name} has {n} rows; at least {min_samples} samples are needed")
    if d == 0:
        raise ValueError(f"{name} has {n} rows but 0 columns; pass at least one feature dimension")
    out = np.array(arr, dtype=np.float64, copy=True, order="C")
    finite = np.isfinite(out)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.all(axis=1))
        n_nan = int(np.isnan(out).sum())
        n_inf = int((~finite).sum()) - n_nan
        raise ValueError(
            f"{name} contains {n_nan} NaN and {n_inf} infinite values in {bad_rows.size} of {n} rows "
            f"(first bad row: {bad_rows[0]}); drop or impute those samples before scoring"
        )
    return out


def check_labels(labels: Any, *, n_samples: int | None = None, name: str = "labels") -> LabelInfo:
    """Validate target labels of any hashable type and re-index them to ``0..C-1``.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        Labels: integers with gaps, strings, or any sortable values. A column vector of
        shape (n_samples, 1) is accepted.
    n_samples : int, optional
        Expected number of samples (rows of the features).
    name : str
        Name used in error messages.

    Returns
    -------
    LabelInfo

    Raises
    ------
    ValueError
        On multi-label input, missing (NaN/None) labels, a length mismatch, fewer than two
        classes, or when every class holds a single sample.
    """
    arr = to_numpy(labels, name=name)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (n_samples,), got shape {arr.shape}; multi-label targets are not "
            "supported: convert them to one label per sample (e.g. argmax of the label vector)"
        )
    if n_samples is not None and arr.shape[0] != n_samples:
        raise ValueError(
            f"features has {n_samples} rows but {name} has {arr.shape[0]}; "
            "they must describe the same samples"
        )
    if arr.dtype.kind == "f":
        n_missing = int(np.isnan(arr).sum())
        if n_missing:
            raise ValueError(f"{name} contains {n_missing} NaN values; drop the unlabelled samples")
    elif arr.dtype == object:
        missing = [i for i, v in enumerate(arr) if v is None or (isinstance(v, float) and np.isnan(v))]
        if missing:
            raise ValueError(
                f"{name} contains {len(missing)} missing values (first at row {missing[0]}); "
                "drop the unlabelled samples"
            )
    try:
        classes, y, counts = np.unique(arr, return_inverse=True, return_counts=True)
    except TypeError:
        # Mixed, unorderable types: order classes by first appearance instead.
        lookup: dict[Any, int] = {}
        y = np.array([lookup.setdefault(v, len(lookup)) for v in arr.tolist()], dtype=np.int64)
        classes = np.empty(len(lookup), dtype=object)
        classes[:] = list(lookup)
        counts = np.bincount(y, minlength=len(lookup))
    n_classes = classes.shape[0]
    if n_classes < 2:
        only = f" (every label is {classes.tolist()[0]!r})" if n_classes == 1 else ""
        raise ValueError(
            f"{name} has {n_classes} distinct class{only}; transferability needs at least 2 classes"
        )
    if counts.max() < 2:
        raise ValueError(
            f"every one of the {n_classes} classes in {name} has a single sample ({arr.shape[0]} samples); "
            "transferability needs at least 2 samples in some class - collect more samples per class"
        )
    return LabelInfo(y=np.asarray(y, dtype=np.int64).ravel(), classes=classes, counts=counts.astype(np.int64))


def check_magnitude(X: np.ndarray, measure: str, *, low: float = 1e-100, high: float = 1e100) -> None:
    """Refuse features whose largest magnitude would overflow or underflow a scale-dependent measure.

    All-zero features pass (measures handle them as documented).

    Raises
    ------
    ValueError
        When ``max |X|`` lies outside ``[low, high]``.
    """
    top = float(np.abs(X).max())
    if top != 0.0 and not low <= top <= high:
        raise ValueError(
            f"{measure}: the largest feature magnitude is {top:.3g}, outside [{low:g}, {high:g}]; "
            "float64 statistics of such features overflow or underflow - rescale the features"
        )


def power_of_two_scaled(X: np.ndarray) -> np.ndarray:
    """``X`` times a power of two (exact) so that its largest magnitude lies in [0.5, 1); zeros unchanged.

    For scale-invariant measures: removes overflow and underflow without changing the score.
    """
    top = float(np.abs(X).max())
    if top == 0.0:
        return X
    return np.ldexp(X, -int(np.frexp(top)[1]))


def check_features_and_labels(features: Any, labels: Any) -> tuple[np.ndarray, LabelInfo]:
    """Validate features and labels together (shapes, lengths, values)."""
    X = check_features(features)
    info = check_labels(labels, n_samples=X.shape[0])
    return X, info


#: Machine epsilon of bfloat16 (8 significant bits), the coarsest float format accepted.
_BFLOAT16_EPS = 2.0**-7


def _storage_epsilon(x: Any) -> float:
    """Machine epsilon of ``x``'s floating dtype as given (before any conversion); 0 for other types.

    torch tensors and numpy arrays report their own dtype (``torch.bfloat16``: 2**-7,
    ``float16``: 2**-10, ``float32``: 2**-23); lists and other array-likes report 0.
    """
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        return 0.0
    if type(x).__module__.startswith("torch"):
        return float(torch.finfo(dtype).eps) if dtype.is_floating_point else 0.0
    try:
        return float(np.finfo(dtype).eps)
    except (TypeError, ValueError):  # integer, bool or non-numeric dtypes
        return 0.0


def check_source_probs(
    source_probs: Any, *, n_samples: int | None = None, atol: float = 1e-3, name: str = "source_probs"
) -> np.ndarray:
    """Validate source-class probabilities (rows of a softmax) and return a float64 copy.

    Parameters
    ----------
    source_probs : array-like or torch.Tensor of shape (n_samples, n_source_classes)
        Probabilities of the checkpoint's own head for every target sample, in any float
        dtype (bfloat16 and float16 tensors included).
    n_samples : int, optional
        Expected number of rows.
    atol : float
        Tolerance on each row sum, raised to the machine epsilon of the input's dtype when
        that is larger (see Notes); rows are renormalised exactly after the check.
    name : str
        Name used in error messages.

    Returns
    -------
    ndarray of shape (n_samples, n_source_classes), float64
        The probabilities, each row divided by its sum.

    Raises
    ------
    ValueError
        On NaN/inf, negative entries, or rows that do not sum to one (e.g. logits passed
        instead of probabilities).

    Notes
    -----
    The row sums are computed in float64. Rounding exact probabilities to a float format
    with unit roundoff ``u`` changes each entry ``p`` by at most ``u * p``, hence a row sum
    by at most ``u``; the tolerance ``max(atol, 2 u)`` (``2 u`` is the machine epsilon)
    therefore accepts every rounded softmax with a factor-two margin. For bfloat16
    (8 significant bits, ``u = 2**-8``) it is ``2**-7 = 0.0078``; float16 (``2**-10``) and
    float32 keep the default 1e-3. Logits or unnormalised scores still fail.
    """
    atol = max(atol, _storage_epsilon(source_probs))
    P = check_features(source_probs, name=name, min_samples=1)
    if n_samples is not None and P.shape[0] != n_samples:
        raise ValueError(
            f"{name} has {P.shape[0]} rows but labels has {n_samples}; they must describe the same samples"
        )
    if P.shape[1] < 2:
        raise ValueError(f"{name} has {P.shape[1]} column; a source head has at least 2 classes")
    n_neg = int((P < 0).sum())
    if n_neg:
        raise ValueError(
            f"{name} has {n_neg} negative entries (min {P.min():.3g}); pass softmax probabilities, not logits"
        )
    sums = P.sum(axis=1)
    deviation = np.abs(sums - 1.0)
    off = deviation > atol
    if off.any():
        i = int(np.flatnonzero(off)[0])
        if deviation.max() <= _BFLOAT16_EPS:
            fix = (
                "they look rounded to bfloat16/float16 and then upcast: pass the half-precision tensor "
                f"itself (its tolerance is {_BFLOAT16_EPS:g}) or renormalise the rows"
            )
        else:
            fix = "pass softmax probabilities (scipy.special.softmax(logits, axis=1)), not logits or scores"
        raise ValueError(
            f"{int(off.sum())} rows of {name} do not sum to 1 (row {i} sums to {sums[i]:.6g}); {fix}"
        )
    return P / sums[:, None]


def check_random_state(random_state: int | np.random.Generator | None) -> np.random.Generator:
    """Turn ``random_state`` into a :class:`numpy.random.Generator` (``None`` means seed 0)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None:
        return np.random.default_rng(0)
    if isinstance(random_state, (int, np.integer)):
        return np.random.default_rng(int(random_state))
    raise ValueError(
        f"random_state must be an int, None or a numpy Generator, got {type(random_state).__name__}"
    )


def warn_small_classes(info: LabelInfo, measure: str, *, min_count: int = 2) -> None:
    """Warn when some classes have fewer than ``min_count`` samples."""
    small = np.flatnonzero(info.counts < min_count)
    if small.size:
        names = ", ".join(repr(c) for c in info.classes[small[:5]].tolist())
        more = "" if small.size <= 5 else f" and {small.size - 5} more"
        warn_degenerate(
            f"{measure}: {small.size} of {info.n_classes} classes have fewer than {min_count} samples "
            f"({names}{more}); their within-class spread is undefined and handled as documented",
            stacklevel=4,
        )
