"""The import structure of ``ckptrank`` runs one way.

Every module under ``src/ckptrank`` is parsed with :mod:`ast`; every ``import`` and ``from ... import``
statement counts, wherever it sits (module level, inside a function, under ``if TYPE_CHECKING:``).
A module belongs to a *unit*: its subpackage (``ckptrank.measures.leep`` -> ``measures``) or, for a
top-level module, the module itself (``ckptrank.ranking`` -> ``ranking``). Units sit in layers, lowest
first; a unit may import its own layer and the layers below, never a layer above:

====  =========================================  ==========================================================
layer units                                      role
====  =========================================  ==========================================================
0     ``_cachedir``, ``_atomic``, ``_catalog``,  leaves: import nothing of ckptrank
      ``plotting``, ``testing``, ``executors``
1     ``data``                                   target datasets
2     ``adapters``, ``zoo``                      checkpoint loading (``zoo`` is an in-package source)
3     ``engine``                                 feature extraction and the feature cache
4     ``measures``                               every measure, including the beta_eff machinery
                                                 (``measures/_beff_*.py``) that the ``beff`` measures need
5     ``capacitance``                            public namespace of the neural-capacitance toolkit; it
                                                 imports ``measures``, ``measures`` never imports it
6     ``rankers``, ``combine``, ``ensemble``,    rankers, consensus, ensemble selection, the
      ``pipeline``                               units of work (extract one checkpoint, score it)
7     ``specs``, ``targets``                     what the user asked for (checkpoint specs, measures and
                                                 their options), the target data
8     ``ranking``                                the ranking pipeline: run, score and rank the checkpoints
9     ``ranking_output``, ``ensemble_choice``    a ranking as files and records; choosing an ensemble of
                                                 checkpoints (runs them as ``ranking`` does)
10    ``bench``, ``demo``, ``select``            benchmark harness, guided demo, checkpoint selection
11    ``cli``                                    the command line
====  =========================================  ==========================================================

The package root ``ckptrank/__init__.py`` is the lazy public facade, outside the layers: ``import
ckptrank`` (for ``__version__``) is allowed anywhere, and ``from ckptrank import NAME`` counts as an
import of the unit that defines ``NAME`` (the root's lazy map, or the submodule of that name).
Besides the order, the graph of units has no cycle at all, within a layer included.
A new unit fails :func:`test_every_unit_has_a_layer` until it is given a layer here.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "ckptrank"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("_cachedir", "_atomic", "_catalog", "plotting", "testing", "executors"),
    ("data",),
    ("adapters", "zoo"),
    ("engine",),
    ("measures",),
    ("capacitance",),
    ("rankers", "combine", "ensemble", "pipeline"),
    ("specs", "targets"),
    ("ranking",),
    ("ranking_output", "ensemble_choice"),
    ("bench", "demo", "select"),
    ("cli",),
)
LAYER_OF = {unit: i for i, units in enumerate(LAYERS) for unit in units}


@dataclass(frozen=True)
class Edge:
    """One import statement from a module of unit ``src`` of a module of unit ``dst``."""

    src: str
    dst: str
    path: str
    line: int
    target: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.target} ({self.src} -> {self.dst})"


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        name, is_package = _module_name(path)
        found[name] = (path, is_package)
    return found


MODULES = _modules()


def _unit(module: str) -> str | None:
    """The unit of a ``ckptrank`` module name, None for the package root."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _root_names() -> dict[str, str]:
    """Names the package root serves lazily, each mapped to the module that defines it."""
    root = importlib.import_module(PACKAGE)
    lazy = getattr(root, "_LAZY", {})
    return {name: module for name, module in lazy.items() if isinstance(module, str)}


ROOT_NAMES = _root_names()


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The ``ckptrank`` modules (or root names, as ``ckptrank:NAME``) one statement imports."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name == PACKAGE or a.name.startswith(PACKAGE + ".")]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        parent = ".".join(base + ([node.module] if node.module else []))
    else:
        parent = node.module or ""
    if parent != PACKAGE and not parent.startswith(PACKAGE + "."):
        return []
    out = []
    for alias in node.names:
        sub = f"{parent}.{alias.name}"
        if sub in MODULES:
            out.append(sub)  # ``from pkg import module``
        elif parent == PACKAGE:
            out.append(f"{PACKAGE}:{alias.name}")  # a name of the root facade
        else:
            out.append(parent)
    return out


def _resolve(target: str) -> str | None:
    """The unit a target belongs to; None when it is the root itself (``import ckptrank``)."""
    if target.startswith(PACKAGE + ":"):
        name = target.split(":", 1)[1]
        if name in ROOT_NAMES:
            return _unit(ROOT_NAMES[name])
        if name.startswith("__") or name == "*":
            return None  # ``__version__`` and the like are defined in the root itself
        raise AssertionError(
            f"'from {PACKAGE} import {name}': {name!r} is neither a submodule nor a lazy name of the root; "
            f"extend tests/test_layering.py to resolve it"
        )
    return _unit(target)


def _edges() -> list[Edge]:
    edges = []
    for module, (path, is_package) in MODULES.items():
        src = _unit(module)
        if src is None:
            continue  # the root facade is outside the layers
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in _targets(node, module, is_package):
                dst = _resolve(target)
                if dst is not None and dst != src:
                    rel = path.relative_to(SRC.parent).as_posix()
                    edges.append(Edge(src, dst, rel, node.lineno, target.replace(":", ".")))
    return list(dict.fromkeys(edges))  # one edge per statement and target


EDGES = _edges()


def _strongly_connected(nodes: set[str], graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the strongly connected components with more than one unit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return components


def test_the_parser_sees_imports_everywhere() -> None:
    """Self-check: relative, function-level and root imports are all resolved."""
    source = (
        "from . import _registry\n"
        "from ..capacitance import probe\n"
        "def f():\n"
        "    from ckptrank import ranking, __version__\n"
        "    import ckptrank.bench.stats\n"
    )
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found += [_resolve(t) for t in _targets(node, "ckptrank.measures.leep", False)]
    assert found == ["measures", "capacitance", "ranking", None, "bench"]
    assert len(EDGES) > 50, f"only {len(EDGES)} imports between units found; the parser is broken"


def test_every_unit_has_a_layer() -> None:
    units = {_unit(m) for m in MODULES} - {None}
    missing = sorted(units - set(LAYER_OF))
    assert not missing, f"units without a layer: {missing}; add each to LAYERS in tests/test_layering.py"
    stale = sorted(set(LAYER_OF) - units)
    assert not stale, f"LAYERS names units that no longer exist: {stale}; remove them"


def test_no_import_cycle_between_units() -> None:
    graph: dict[str, set[str]] = {}
    for e in EDGES:
        graph.setdefault(e.src, set()).add(e.dst)
    units = {_unit(m) for m in MODULES} - {None}
    cycles = _strongly_connected(units, graph)
    report = []
    for component in cycles:
        members = set(component)
        report.append(f"cycle among {component}:")
        report += [f"  {e}" for e in EDGES if e.src in members and e.dst in members]
    assert not cycles, "\n".join(report)


def test_lower_layers_never_import_higher_ones() -> None:
    upward = [e for e in EDGES if LAYER_OF.get(e.dst, -1) > LAYER_OF.get(e.src, len(LAYERS))]
    report = [f"{e} [layer {LAYER_OF[e.src]} -> layer {LAYER_OF[e.dst]}]" for e in upward]
    assert not upward, f"{len(upward)} imports point up the layers:\n" + "\n".join(report)


@pytest.mark.parametrize(("lower", "higher"), [("measures", "capacitance"), ("engine", "measures")])
def test_named_directions(lower: str, higher: str) -> None:
    """The directions this file documents, stated directly: ``lower`` never imports ``higher``."""
    wrong = [str(e) for e in EDGES if e.src == lower and e.dst == higher]
    assert not wrong, "\n".join(wrong)
