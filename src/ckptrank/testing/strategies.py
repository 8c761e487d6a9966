"""Hypothesis strategies for property tests of transferability measures.

The strategies draw only *sizes and seeds* with hypothesis and build the arrays with a
seeded :func:`numpy.random.default_rng`, so every example is a well-conditioned,
realistic problem (no pathological floats such as ``1e308`` or subnormals) and
shrinking acts on the sizes. Keep problems small: every registered measure must run
in milliseconds on them.

Examples
--------
>>> from hypothesis import given, settings
>>> from ckptrank.testing.strategies import classification_problems
>>> @settings(max_examples=5, deadline=None)
... @given(classification_problems(max_samples=30))
... def test_shapes(problem):
...     X, y, P = problem
...     assert X.shape[0] == y.shape[0] == P.shape[0]
>>> test_shapes()
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    from hypothesis import strategies as st
except ImportError as err:  # pragma: no cover
    raise ImportError("ckptrank.testing.strategies needs hypothesis: pip install 'ckptrank[test]'") from err

__all__ = [
    "ClassificationProblem",
    "classification_problems",
    "make_problem",
    "orthogonal_matrices",
    "seeds",
]

_MAX_SEED = 2**32 - 1


class ClassificationProblem(tuple):
    """One synthetic target task, unpackable as ``features, labels, source_probs = problem``.

    Its ``repr`` is the :func:`make_problem` call that rebuilds it, so a falsifying example
    printed by hypothesis can be reproduced by copy and paste.

    Attributes
    ----------
    features : ndarray of shape (n_samples, n_features), float64
        Gaussian features with label-dependent class means.
    labels : ndarray of shape (n_samples,), int64
        Labels in ``0..n_classes-1``; every class holds at least two samples.
    source_probs : ndarray of shape (n_samples, n_source_classes), float64
        Softmax probabilities of a simulated source head, informative about the labels.
    recipe : str
        Keyword arguments of the :func:`make_problem` call that built the problem.
    """

    recipe: str

    def __new__(
        cls, features: np.ndarray, labels: np.ndarray, source_probs: np.ndarray, *, recipe: str = ""
    ) -> ClassificationProblem:
        self = super().__new__(cls, (features, labels, source_probs))
        self.recipe = recipe
        return self

    def __getnewargs_ex__(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return tuple(self), {"recipe": self.recipe}

    def __repr__(self) -> str:
        return f"make_problem({self.recipe})" if self.recipe else f"ClassificationProblem{tuple(self)!r}"

    @property
    def features(self) -> np.ndarray:
        return self[0]

    @property
    def labels(self) -> np.ndarray:
        return self[1]

    @property
    def source_probs(self) -> np.ndarray:
        return self[2]

    @property
    def n_samples(self) -> int:
        return int(self[1].shape[0])

    @property
    def n_features(self) -> int:
        return int(self[0].shape[1])

    @property
    def n_classes(self) -> int:
        return int(np.unique(self[1]).size)

    @property
    def n_source_classes(self) -> int:
        return int(self[2].shape[1])


def seeds() -> st.SearchStrategy[int]:
    """Seeds for :func:`numpy.random.default_rng` (0 .. 2**32 - 1)."""
    return st.integers(min_value=0, max_value=_MAX_SEED)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    expd = np.exp(shifted)
    return expd / expd.sum(axis=1, keepdims=True)


def make_problem(
    *,
    seed: int,
    n_samples: int,
    n_features: int,
    n_classes: int,
    n_source_classes: int,
    separation: float = 1.0,
    source_strength: float = 1.0,
    balanced: bool = False,
) -> ClassificationProblem:
    """Build the problem that :func:`classification_problems` draws, from its recipe.

    Parameters
    ----------
    seed : int
        Seed of the numpy generator.
    n_samples, n_features, n_classes, n_source_classes : int
        Sizes; ``n_samples >= 2 * n_classes``.
    separation : float
        Typical distance between class means in units of the (unit) noise.
    source_strength : float
        Logit boost of the source class that each target class maps to (0: uninformative).
    balanced : bool
        Equal class sizes (up to one) instead of uniformly drawn labels.

    Returns
    -------
    ClassificationProblem
        Features ``N(0, I) + mean[y] + offset`` (a global offset, so features are not centred),
        labels with every class present at least twice, and softmax source probabilities
        whose boosted class follows a random map of the labels.

    Examples
    --------
    >>> X, y, P = make_problem(seed=0, n_samples=12, n_features=3, n_classes=3, n_source_classes=4)
    >>> X.shape, y.shape, P.shape, sorted(set(y.tolist()))
    ((12, 3), (12,), (12, 4), [0, 1, 2])
    """
    if n_samples < 2 * n_classes:
        raise ValueError(f"n_samples={n_samples} must be at least 2 * n_classes = {2 * n_classes}")
    rng = np.random.default_rng(seed)
    # Every class gets two samples; the rest are spread uniformly (or evenly when balanced).
    base = np.repeat(np.arange(n_classes), 2)
    n_rest = n_samples - base.size
    rest = np.arange(n_rest) % n_classes if balanced else rng.integers(0, n_classes, n_rest)
    y = rng.permutation(np.concatenate([base, rest])).astype(np.int64)
    # Class means at distance ~separation along random directions; unit Gaussian noise.
    means = separation * rng.standard_normal((n_classes, n_features)) / np.sqrt(n_features)
    offset = rng.normal(0.0, 2.0, size=n_features)
    X = rng.standard_normal((n_samples, n_features)) + means[y] + offset
    # A source head whose boosted class follows a (many-to-one or one-to-one) map of the labels.
    mapping = rng.integers(0, n_source_classes, n_classes)
    logits = rng.standard_normal((n_samples, n_source_classes))
    logits[np.arange(n_samples), mapping[y]] += source_strength
    recipe = (
        f"seed={seed}, n_samples={n_samples}, n_features={n_features}, n_classes={n_classes}, "
        f"n_source_classes={n_source_classes}, separation={separation!r}, "
        f"source_strength={source_strength!r}, balanced={balanced}"
    )
    return ClassificationProblem(X, y, _softmax(logits), recipe=recipe)


@st.composite
def classification_problems(
    draw: st.DrawFn,
    *,
    min_samples: int = 10,
    max_samples: int = 60,
    min_features: int = 1,
    max_features: int = 12,
    min_classes: int = 2,
    max_classes: int = 5,
    min_source_classes: int = 2,
    max_source_classes: int = 8,
    well_conditioned: bool = True,
) -> ClassificationProblem:
    """Small classification problems: features, labels and source probabilities.

    Sizes, the class separation and the array seed are drawn by hypothesis; the arrays
    are generated with numpy from that seed.

    Parameters
    ----------
    min_samples, max_samples : int
        Range of ``n_samples``; ``max_samples`` should stay <= 80 so every measure is fast.
        ``n_samples`` is raised to at least ``2 * n_classes`` (every class gets two samples).
    min_features, max_features : int
        Range of ``n_features`` (keep <= 12).
    min_classes, max_classes : int
        Range of the number of target classes (>= 2).
    min_source_classes, max_source_classes : int
        Range of the number of source-head classes (>= 2).
    well_conditioned : bool
        If True, ``n_samples >= n_features + n_classes + 2`` so that the total and
        within-class covariances are full rank (no ``d >= n - 1`` saturation regime).

    Returns
    -------
    SearchStrategy of ClassificationProblem
        Tuples ``(features, labels, source_probs)``: float64 ``(n, d)``, int64 ``(n,)`` with
        labels ``0..C-1`` each present at least twice, float64 ``(n, C_s)`` rows summing to one.
    """
    if min_classes < 2 or max_classes < min_classes:
        raise ValueError(f"need 2 <= min_classes <= max_classes, got {min_classes}, {max_classes}")
    if min_features < 1 or max_features < min_features:
        raise ValueError(f"need 1 <= min_features <= max_features, got {min_features}, {max_features}")
    if min_source_classes < 2 or max_source_classes < min_source_classes:
        raise ValueError(
            f"need 2 <= min_source_classes <= max_source_classes, got {min_source_classes}, "
            f"{max_source_classes}"
        )
    n_classes = draw(st.integers(min_classes, max_classes))
    d = draw(st.integers(min_features, max_features))
    lowest = max(min_samples, 2 * n_classes)
    if well_conditioned:
        lowest = max(lowest, d + n_classes + 2)
    if lowest > max_samples:
        raise ValueError(
            f"max_samples={max_samples} is too small for {n_classes} classes and {d} features "
            f"(need at least {lowest}); raise max_samples or lower max_features/max_classes"
        )
    n = draw(st.integers(lowest, max_samples))
    n_source = draw(st.integers(min_source_classes, max_source_classes))
    separation = draw(st.sampled_from([0.0, 1.0, 3.0, 8.0]))
    source_strength = draw(st.sampled_from([0.0, 1.0, 4.0]))
    balanced = draw(st.booleans())
    seed = draw(seeds())
    return make_problem(
        seed=seed,
        n_samples=n,
        n_features=d,
        n_classes=n_classes,
        n_source_classes=n_source,
        separation=separation,
        source_strength=source_strength,
        balanced=balanced,
    )


@st.composite
def orthogonal_matrices(draw: st.DrawFn, dim: int) -> np.ndarray:
    """Random ``dim x dim`` orthogonal matrices (Haar measure, from a drawn seed)."""
    rng = np.random.default_rng(draw(seeds()))
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))
