"""The generic API (``ckptrank.score``, ``get_measure``, ``list_measures``, ``register_measure``)
and meta-tests that every registered measure is documented, tested, exported and listed."""

from __future__ import annotations

import functools
import inspect
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptrank
from ckptrank import get_measure, list_measures, register_measure
from ckptrank.capacitance.backbone import ModelInput
from ckptrank.measures import _registry
from ckptrank.measures._validation import check_features_and_labels, check_labels, check_source_probs
from ckptrank.testing.strategies import make_problem

ROOT = Path(__file__).resolve().parents[2]
MEASURES = list_measures()

#: The static measures of ALGORITHMS.md section 2 (everything but neural capacitance).
EXPECTED_STATIC = {
    "linear_probe",
    "knn",
    "leep",
    "nce",
    "nleep",
    "logme",
    "hscore",
    "reg_hscore",
    "sfda",
    "gbc",
    "transrate",
    "parc",
}


#: Small probes for the dynamic measures, whose defaults train for seconds.
FAST_OPTIONS: dict[str, dict[str, Any]] = {
    name: {"epochs": 1, "widths": (8, 8, 4)}
    for name in ("beff", "probe_accuracy", "beff_finetune", "probe_accuracy_finetune")
}


@functools.cache
def _model() -> ModelInput:
    """A real (zoo) checkpoint and 30 random grey images: the input of the measures that train it."""
    import ckptrank.zoo  # noqa: F401  # registers zoo:
    from ckptrank.adapters import load_checkpoint

    images = np.random.default_rng(0).integers(0, 256, size=(30, 28, 28), dtype=np.uint8)
    return ModelInput(load_checkpoint("zoo:cnn-fm04"), images)


def _problem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y, P = make_problem(
        seed=7, n_samples=30, n_features=4, n_classes=3, n_source_classes=4, separation=2.0
    )
    return X, y, P


# ----------------------------------------------------------------------------------------------
# A private registry with stand-in measures
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A copy of the registry holding the real measures plus three stand-ins; restored afterwards."""
    monkeypatch.setattr(_registry, "_MEASURES", dict(_registry._MEASURES))

    @register_measure("dummy_feat", requires=("features",), citation="Nobody, 2024")
    def dummy_feat(features: Any, labels: Any, *, scale: float = 1.0, shift: float = 0.0) -> float:
        X, _ = check_features_and_labels(features, labels)
        return np.float64(scale * X.mean() + shift)  # a numpy scalar: score() must convert it

    @register_measure(
        "dummy_src",
        requires=("source_probs",),
        citation="Nobody, 2024",
        kind="dynamic",
        higher_is_better=False,
    )
    def dummy_src(source_probs: Any, labels: Any) -> float:
        P = check_source_probs(source_probs)
        check_labels(labels, n_samples=P.shape[0])
        return float(P[:, 0].mean())

    @register_measure("dummy_both", requires=("features", "source_probs"), citation="Nobody, 2024")
    def dummy_both(features: Any, source_probs: Any, labels: Any, **kwargs: Any) -> float:
        X, _ = check_features_and_labels(features, labels)
        check_source_probs(source_probs, n_samples=X.shape[0])
        return 1  # an int: score() must return a float

    return _registry._MEASURES


# ----------------------------------------------------------------------------------------------
# ckptrank.score dispatch
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MEASURES)
def test_score_equals_the_measure_function(name: str) -> None:
    X, y, P = _problem()
    spec = get_measure(name)
    inputs = {"features": X, "source_probs": P, "model": _model()}
    options = FAST_OPTIONS.get(name, {})
    direct = spec.func(*[inputs[r] for r in spec.requires], y, **options)
    result = ckptrank.score(name, X, y, source_probs=P, model=_model(), **options)
    assert type(result) is float
    assert result == direct


def test_score_passes_inputs_in_order_and_options(registry: dict[str, Any]) -> None:
    X, y, P = _problem()
    assert ckptrank.score("dummy_feat", X, y) == pytest.approx(X.mean())
    assert ckptrank.score("dummy_feat", X, y, scale=2.0, shift=1.0) == pytest.approx(2 * X.mean() + 1)
    assert ckptrank.score("dummy_src", labels=y, source_probs=P) == pytest.approx(P[:, 0].mean())
    # features go first, source_probs second; the stand-in validates both shapes.
    assert ckptrank.score("dummy_both", X, y, source_probs=P) == 1.0
    # **kwargs measures accept any option.
    assert ckptrank.score("dummy_both", X, y, source_probs=P, anything=3) == 1.0


def test_score_returns_a_python_float(registry: dict[str, Any]) -> None:
    X, y, P = _problem()
    assert type(ckptrank.score("dummy_feat", X, y)) is float
    assert type(ckptrank.score("dummy_both", X, y, source_probs=P)) is float


def test_unknown_measure_lists_names_and_closest_match(registry: dict[str, Any]) -> None:
    with pytest.raises(KeyError, match="Did you mean 'dummy_feat'") as excinfo:
        ckptrank.score("dummy_faet", np.zeros((4, 2)), [0, 0, 1, 1])
    message = str(excinfo.value)
    assert "'dummy_faet'" in message
    for name in list_measures():
        assert name in message
    with pytest.raises(KeyError, match="Did you mean 'dummy_src'"):
        get_measure("dumy_src")


def test_unknown_measure_without_close_match(registry: dict[str, Any]) -> None:
    with pytest.raises(KeyError, match="unknown measure 'zzzzzzzz'") as excinfo:
        get_measure("zzzzzzzz")
    assert "Did you mean" not in str(excinfo.value)
    assert "dummy_src" in str(excinfo.value)


@pytest.mark.parametrize("name", MEASURES)
def test_real_measure_typo_suggests_it(name: str) -> None:
    typo = name[:-1] + ("x" if name[-1] != "x" else "y")
    with pytest.raises(KeyError, match="Did you mean"):
        ckptrank.score(typo, *_problem()[:2])


def test_missing_inputs_are_named(registry: dict[str, Any]) -> None:
    X, y, P = _problem()
    with pytest.raises(ValueError, match="needs features"):
        ckptrank.score("dummy_feat", None, y)
    with pytest.raises(ValueError, match="needs source_probs"):
        ckptrank.score("dummy_src", X, y)
    with pytest.raises(ValueError, match="needs source_probs"):
        ckptrank.score("dummy_both", X, y)
    with pytest.raises(ValueError, match="needs features"):
        ckptrank.score("dummy_both", None, y, source_probs=P)
    with pytest.raises(ValueError, match="needs labels"):
        ckptrank.score("dummy_feat", X)


@pytest.mark.parametrize("name", MEASURES)
def test_real_measure_missing_inputs_are_named(name: str) -> None:
    X, y, P = _problem()
    inputs = {"features": X, "source_probs": P, "model": _model()}
    for missing in get_measure(name).requires:
        given = {**inputs, missing: None}
        with pytest.raises(ValueError, match=f"needs {missing}"):
            ckptrank.score(
                name, given["features"], y, source_probs=given["source_probs"], model=given["model"]
            )
    with pytest.raises(ValueError, match="needs labels"):
        ckptrank.score(name, X, None, source_probs=P, model=_model())


def test_unknown_option_lists_the_valid_ones(registry: dict[str, Any]) -> None:
    X, y, _ = _problem()
    with pytest.raises(ValueError, match="has no option 'scal'") as excinfo:
        ckptrank.score("dummy_feat", X, y, scal=2.0)
    assert "scale" in str(excinfo.value)
    assert "shift" in str(excinfo.value)
    with pytest.raises(ValueError, match=r"options are: \(none\)"):
        ckptrank.score("dummy_src", labels=y, source_probs=_problem()[2], scale=1.0)


@pytest.mark.parametrize("name", MEASURES)
def test_real_measure_unknown_option_lists_the_valid_ones(name: str) -> None:
    X, y, P = _problem()
    params = inspect.signature(get_measure(name).func).parameters.values()
    options = [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
    with pytest.raises(ValueError, match="has no option 'not_an_option'") as excinfo:
        ckptrank.score(name, X, y, source_probs=P, model=_model(), not_an_option=1)
    for option in options:
        assert option in str(excinfo.value)


# ----------------------------------------------------------------------------------------------
# list_measures / get_measure / register_measure
# ----------------------------------------------------------------------------------------------


def test_list_measures_filters(registry: dict[str, Any]) -> None:
    names = list_measures()
    assert names == sorted(names)
    assert set(names) == set(registry)
    assert "dummy_src" in list_measures(kind="dynamic")
    assert "dummy_src" not in list_measures(kind="static")
    assert {"dummy_feat", "dummy_both"} <= set(list_measures(kind="static"))
    assert {"dummy_src", "dummy_both"} <= set(list_measures(requires="source_probs"))
    assert "dummy_src" not in list_measures(requires="features")
    assert list_measures(kind="dynamic", requires="features") == [
        n for n in names if registry[n].kind == "dynamic" and "features" in registry[n].requires
    ]
    assert list_measures(kind="no_such_kind") == []


def test_list_measures_filters_on_the_real_registry() -> None:
    for kind in ("static", "dynamic"):
        assert all(get_measure(n).kind == kind for n in list_measures(kind=kind))
    requirements = ("features", "source_probs", "model")
    for requirement in requirements:
        assert all(requirement in get_measure(n).requires for n in list_measures(requires=requirement))
    by_kind = set(list_measures(kind="static")) | set(list_measures(kind="dynamic"))
    by_input = set().union(*(list_measures(requires=r) for r in requirements))
    assert by_kind == by_input == set(MEASURES)


def test_expected_static_measures_are_registered() -> None:
    missing = sorted(EXPECTED_STATIC - set(list_measures(kind="static")))
    assert not missing, f"static measures not registered: {missing}"


def test_get_measure_returns_the_spec(registry: dict[str, Any]) -> None:
    spec = get_measure("dummy_src")
    assert spec.name == "dummy_src"
    assert spec.requires == ("source_probs",)
    assert spec.kind == "dynamic"
    assert spec.higher_is_better is False
    assert spec.invariances == frozenset()
    assert spec.summary == ""


def test_duplicate_registration_raises(registry: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="'dummy_feat' is already registered"):

        @register_measure("dummy_feat", requires=("features",), citation="x")
        def again(features: Any, labels: Any) -> float:  # pragma: no cover
            return 0.0

    if MEASURES:
        with pytest.raises(ValueError, match="already registered"):
            register_measure(MEASURES[0], requires=("features",), citation="x")


def test_unknown_invariance_tag_raises(registry: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"unknown invariance tags \['scaling'\]"):
        register_measure("dummy_tags", requires=("features",), citation="x", invariances=("scaling",))
    assert "dummy_tags" not in list_measures()


def test_unknown_requirement_raises(registry: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="unknown requirement 'logits'"):
        register_measure("dummy_req", requires=("logits",), citation="x")  # type: ignore[arg-type]
    assert "dummy_req" not in list_measures()


def test_registered_specs_are_consistent() -> None:
    for name in MEASURES:
        spec = get_measure(name)
        assert spec.name == name
        assert spec.invariances <= _registry.INVARIANCE_TAGS
        assert spec.requires and set(spec.requires) <= {"features", "source_probs", "model"}
        params = list(inspect.signature(spec.func).parameters.values())
        positional = [p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
        assert positional == [*spec.requires, "labels"], f"{name}: positional arguments {positional}"
        if spec.stochastic:
            assert "random_state" in inspect.signature(spec.func).parameters, (
                f"{name} is stochastic but has no random_state option"
            )


# ----------------------------------------------------------------------------------------------
# Meta-tests: every registered measure is documented, cited, tested, exported and listed
# ----------------------------------------------------------------------------------------------


def _section(doc: str, title: str) -> bool:
    return re.search(rf"^{title}\n-{{{len(title)}}}\s*$", doc, flags=re.MULTILINE) is not None


@pytest.mark.parametrize("name", MEASURES)
def test_measure_has_a_numpydoc_docstring(name: str) -> None:
    doc = inspect.getdoc(get_measure(name).func) or ""
    assert get_measure(name).summary, f"{name} has no summary line"
    missing = [s for s in ("Parameters", "Returns", "References", "Examples") if not _section(doc, s)]
    assert not missing, f"{name}'s docstring lacks the numpydoc sections {missing}"
    assert ">>>" in doc.split("Examples", 1)[1], f"{name}'s Examples section has no doctest"
    for param in list(inspect.signature(get_measure(name).func).parameters)[1:]:
        if param != "kwargs":
            documented = re.search(rf"^(\w+, )*{param}(, \w+)*,?( :.*)?$", doc, flags=re.MULTILINE)
            assert documented, f"{name}: parameter {param!r} is not in the Parameters section"


@pytest.mark.parametrize("name", MEASURES)
def test_measure_has_a_citation(name: str) -> None:
    citation = get_measure(name).citation
    assert citation.strip(), f"{name} has no citation"
    assert re.search(r"\b(19|20)\d\d\b", citation), f"{name}'s citation {citation!r} has no year"


@pytest.mark.parametrize("name", MEASURES)
def test_measure_has_a_test_module(name: str) -> None:
    module = get_measure(name).func.__module__.rsplit(".", 1)[-1]
    path = ROOT / "tests" / "measures" / f"test_{module}.py"
    assert path.is_file(), f"{name} is defined in {module}.py but {path.relative_to(ROOT)} does not exist"
    assert re.search(rf"\b{re.escape(name)}\b", path.read_text()), f"{path.name} never mentions {name!r}"


@pytest.mark.parametrize("name", MEASURES)
def test_measure_is_exported(name: str) -> None:
    func = get_measure(name).func
    assert func.__name__ in ckptrank.__all__, f"add {func.__name__!r} to ckptrank.__all__"
    assert getattr(ckptrank, func.__name__) is func


@pytest.mark.parametrize("name", MEASURES)
def test_measure_is_in_the_readme_table(name: str) -> None:
    readme = ROOT / "README.md"
    assert readme.is_file(), "README.md is missing"
    rows = [line for line in readme.read_text().splitlines() if line.lstrip().startswith("|")]
    pattern = re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])")
    assert any(pattern.search(row) for row in rows), f"{name} is not in README.md's measures table"
