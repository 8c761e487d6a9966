"""Checkpoint spec parsing and the registry of checkpoint sources.

A spec reads ``PREFIX:NAME[@LAYER][?KEY=VALUE&KEY=VALUE...]``, e.g.
``timm:resnet18@layer3?weights=/ckpt/resnet18.safetensors``. A spec without a prefix is a
built-in checkpoint name (``efficientnet-lite0``), or an existing local path (a file goes to
``file:``, a folder to ``st:`` when it holds ``modules.json`` and to ``hf:`` otherwise).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from ._base import CheckpointError

if TYPE_CHECKING:
    from ._base import Checkpoint

__all__ = [
    "ParsedSpec",
    "SourceInfo",
    "check_options",
    "closest_hint",
    "get_source",
    "list_source_infos",
    "opt_bool",
    "opt_choice",
    "opt_float_tuple",
    "opt_int",
    "parse_spec",
    "register_source",
    "resolve_path",
]

Loader = Callable[["ParsedSpec", bool], "Checkpoint"]


@dataclass(frozen=True)
class ParsedSpec:
    """A checkpoint spec split into its parts.

    Attributes
    ----------
    spec : str
        The string as given.
    prefix : str
        Source prefix (``"timm"``, ``"builtin"``, ...).
    name : str
        What follows the prefix, without the layer and the options.
    layer : str or None
        Module name after ``@``.
    options : dict of str to str
        ``?key=value`` pairs (percent-decoded, ``+`` kept as is).
    revision : str or None
        Hub revision (branch, tag or commit) of ``hf:ORG/NAME@REVISION`` and
        ``st:ORG/NAME@REVISION``; None for the default branch and for local paths.
    """

    spec: str
    prefix: str
    name: str
    layer: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    revision: str | None = None


@dataclass(frozen=True)
class SourceInfo:
    """A registered checkpoint source.

    Attributes
    ----------
    prefix : str
        The ``PREFIX`` of ``PREFIX:NAME``.
    syntax : str
        Example spec.
    description : str
        One line.
    options : dict of str to str
        Accepted ``?key=value`` options and what they do.
    requires : str
        The pip package(s) the source needs beyond ckptrank's own dependencies ("" if none).
    """

    prefix: str
    syntax: str
    description: str
    options: Mapping[str, str]
    requires: str
    loader: Loader = field(repr=False, compare=False)


_SOURCES: dict[str, SourceInfo] = {}
#: Sources defined by other parts of the package, registered when first needed (importing them
#: from ``ckptrank.adapters`` itself would be circular).
_IN_PACKAGE_SOURCES = {"zoo": "ckptrank.zoo.loader"}


def _register_in_package_sources() -> None:
    import importlib

    for prefix, module in _IN_PACKAGE_SOURCES.items():
        if prefix not in _SOURCES:
            importlib.import_module(module)


def register_source(
    prefix: str, *, syntax: str, description: str, options: Mapping[str, str], requires: str = ""
) -> Callable[[Loader], Loader]:
    """Register ``loader(parsed_spec, trust_checkpoint) -> Checkpoint`` under ``prefix`` (decorator)."""
    if prefix in _SOURCES:
        raise ValueError(f"a checkpoint source with prefix {prefix!r} is already registered")

    def decorator(loader: Loader) -> Loader:
        _SOURCES[prefix] = SourceInfo(prefix, syntax, description, dict(options), requires, loader)
        return loader

    return decorator


def list_source_infos() -> list[SourceInfo]:
    """Registered sources, sorted by prefix."""
    _register_in_package_sources()
    return [_SOURCES[p] for p in sorted(_SOURCES)]


def closest_hint(name: str, valid: list[str], *, n: int = 1) -> str:
    """``" Did you mean 'x'?"`` for the closest valid names, or ``""``."""
    close = difflib.get_close_matches(name, valid, n=n, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"


def get_source(prefix: str, spec: str) -> SourceInfo:
    """The source registered under ``prefix``; a CheckpointError lists the valid prefixes."""
    if prefix not in _SOURCES:
        _register_in_package_sources()
    try:
        return _SOURCES[prefix]
    except KeyError:
        valid = sorted(_SOURCES)
        raise CheckpointError(
            f"unknown checkpoint source {prefix!r} in {spec!r}.{closest_hint(prefix, valid)} "
            f"Valid prefixes: {', '.join(p + ':' for p in valid)}."
        ) from None


def _split_options(spec: str, text: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for part in text.split("&"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise CheckpointError(f"bad option {part!r} in {spec!r}; options read ?key=value&key=value")
        if key in options:
            raise CheckpointError(f"option {key!r} given twice in {spec!r}")
        options[key] = unquote(value)
    return options


def _split_layer(head: str) -> tuple[str, str | None]:
    """Split ``NAME@LAYER``; an ``@`` that belongs to a path is kept in the name."""
    name, sep, layer = head.rpartition("@")
    if not sep or "/" in layer or os.sep in layer or Path(head).expanduser().exists():
        return head, None
    if not layer:
        raise CheckpointError(f"empty layer name after '@' in {head!r}")
    return name, layer


def parse_spec(spec: str, builtin_names: list[str]) -> ParsedSpec:
    """Split ``spec`` into prefix, name, layer and options.

    Raises
    ------
    CheckpointError
        For an empty name, malformed options, or a prefix-less name that is neither a
        built-in checkpoint nor an existing path.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise CheckpointError(f"a checkpoint spec must be a non-empty string, got {spec!r}")
    text = spec.strip()
    head, _, query = text.partition("?")
    options = _split_options(spec, query)
    prefix, sep, rest = head.partition(":")
    if not sep or "/" in prefix or os.sep in prefix or prefix == "":
        # No prefix: a built-in name, or a local path.
        name, layer = _split_layer(head)
        if name in builtin_names:
            return ParsedSpec(spec, "builtin", name, layer, options)
        path = Path(name).expanduser()
        if path.is_file():
            return ParsedSpec(spec, "file", name, layer, options)
        if path.is_dir():
            prefix = "st" if (path / "modules.json").is_file() else "hf"
            return ParsedSpec(spec, prefix, name, layer, options)
        raise CheckpointError(
            f"unknown built-in checkpoint {name!r}.{closest_hint(name, builtin_names)} "
            f"Built-in names: {', '.join(builtin_names)}; other checkpoints read PREFIX:NAME "
            f"with a prefix from {', '.join(p + ':' for p in sorted(_SOURCES))}."
        )
    if prefix in _HUB_PREFIXES and not _is_local(rest):
        return _parse_hub(spec, prefix, rest, options)
    name, layer = _split_layer(rest)
    if not name:
        raise CheckpointError(f"empty checkpoint name in {spec!r}; write {prefix}:NAME")
    return ParsedSpec(spec, prefix, name, layer, options)


#: Prefixes whose names are hub repository ids, written ``ORG/NAME[@REVISION][@LAYER]``.
_HUB_PREFIXES = ("hf", "st")


def _is_local(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or Path(name.split("@")[0]).expanduser().exists()


def _parse_hub(spec: str, prefix: str, rest: str, options: dict[str, str]) -> ParsedSpec:
    """``ORG/NAME[@REVISION][@LAYER]``: the first ``@`` names the revision, a second the layer."""
    name, *parts = rest.split("@")
    if not name:
        raise CheckpointError(f"empty checkpoint name in {spec!r}; write {prefix}:ORG/NAME")
    if len(parts) > 2:
        raise CheckpointError(
            f"too many '@' in {spec!r}; hub checkpoints read {prefix}:ORG/NAME[@REVISION][@LAYER]"
        )
    revision = parts[0] if parts else None
    layer = parts[1] if len(parts) > 1 else None
    if revision == "" or layer == "":
        raise CheckpointError(
            f"empty revision or layer in {spec!r}; hub checkpoints read {prefix}:ORG/NAME[@REVISION][@LAYER] "
            f"(a layer of the default branch: {prefix}:{name}@main@LAYER)"
        )
    if revision is not None and "revision" in options:
        raise CheckpointError(f"{spec!r} gives the revision twice (@{revision} and ?revision=); give one")
    revision = revision or options.pop("revision", None)
    return ParsedSpec(spec, prefix, name, layer, options, revision)


def check_options(parsed: ParsedSpec, allowed: Mapping[str, str]) -> None:
    """Raise a CheckpointError for an option the source does not know."""
    for key in parsed.options:
        if key not in allowed:
            valid = sorted(allowed)
            listed = ", ".join(valid) if valid else "none"
            raise CheckpointError(
                f"unknown option {key!r} for {parsed.prefix}: checkpoints in {parsed.spec!r}."
                f"{closest_hint(key, valid)} Valid options: {listed}."
            )


def opt_int(parsed: ParsedSpec, key: str, default: int | None = None, *, minimum: int = 1) -> int | None:
    """Integer option ``key`` (at least ``minimum``), or ``default``."""
    raw = parsed.options.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise CheckpointError(f"option {key}={raw!r} in {parsed.spec!r} must be an integer") from None
    if value < minimum:
        raise CheckpointError(f"option {key}={value} in {parsed.spec!r} must be at least {minimum}")
    return value


def opt_bool(parsed: ParsedSpec, key: str, default: bool) -> bool:
    """Boolean option ``key`` (1/0, true/false, yes/no, on/off), or ``default``."""
    raw = parsed.options.get(key)
    if raw is None:
        return default
    low = raw.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise CheckpointError(
        f"option {key}={raw!r} in {parsed.spec!r} must be 1/0, true/false, yes/no or on/off"
    )


def opt_choice(parsed: ParsedSpec, key: str, choices: tuple[str, ...], default: str) -> str:
    """Option ``key`` restricted to ``choices``, or ``default``."""
    raw = parsed.options.get(key, default)
    if raw not in choices:
        raise CheckpointError(
            f"option {key}={raw!r} in {parsed.spec!r} must be one of {', '.join(choices)}."
            f"{closest_hint(raw, list(choices))}"
        )
    return raw


def opt_float_tuple(parsed: ParsedSpec, key: str, default: tuple[float, ...]) -> tuple[float, ...]:
    """Comma-separated floats (e.g. ``mean=0.5,0.5,0.5``), or ``default``."""
    raw = parsed.options.get(key)
    if raw is None:
        return default
    try:
        values = tuple(float(v) for v in raw.split(","))
    except ValueError:
        raise CheckpointError(
            f"option {key}={raw!r} in {parsed.spec!r} must be comma-separated numbers"
        ) from None
    if len(values) not in (1, 3):
        raise CheckpointError(
            f"option {key}={raw!r} in {parsed.spec!r} needs 1 or 3 numbers, got {len(values)}"
        )
    return values * 3 if len(values) == 1 else values


def resolve_path(raw: str, what: str, *, spec: str) -> Path:
    """An existing local path (``~`` expanded); a CheckpointError when it does not exist."""
    path = Path(raw).expanduser()
    if not path.exists():
        raise CheckpointError(f"{what} not found: {str(path)!r} (from {spec!r})")
    return path.resolve()
