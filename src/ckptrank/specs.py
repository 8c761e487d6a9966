"""What the user asked for: the checkpoint specs and the measures, parsed and checked before any work.

:func:`parse_models` splits ``--models`` (a list, a separated string or a models file) into
checkpoint specs; :func:`check_specs` fails fast, with one error, on specs that name no
checkpoint; :func:`resolve_measures` and :func:`resolve_measure_options` validate the measure
names and their keyword options. :func:`ckptrank.ranking.rank`, the ensemble choice and the
benchmark harness share them, so every entry point reads its arguments the same way.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ckptrank.combine import DEFAULT_MEASURES

__all__ = [
    "WEIGHT_SUFFIXES",
    "check_spec",
    "check_specs",
    "parse_models",
    "resolve_measure_options",
    "resolve_measures",
]

#: Suffixes of checkpoint weight files: such a file given as ``models`` is a checkpoint, never a list.
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".onnx", ".ckpt", ".ts")


def parse_models(models: str | Path | Sequence[str], *, allow_code: bool = False) -> list[str]:
    """Checkpoint specs from a list, a separated string, or a file with one spec per line.

    A string is split into specs with these rules (the same as ``--models``):

    - ``;`` always separates two specs;
    - ``,`` separates two specs, except inside the ``?KEY=VALUE&...`` options of a spec, where
      it belongs to the option value unless the text after it (up to the next ``,`` or ``;``)
      starts a new spec: a ``PREFIX:`` (``timm:``, ``file:``, ...), a built-in checkpoint name,
      a quote, or an existing path. So ``py:m:f?mean=0.5,0.5,0.5&std=0.2,0.2,0.2,efficientnet-lite0``
      is two specs, the first with ``mean=0.5,0.5,0.5`` and ``std=0.2,0.2,0.2``;
    - a spec in quotes (``"..."`` or ``'...'``, the quote opening the spec) is taken verbatim,
      separators included; use quotes or ``;`` when an option value could read as a spec.

    A string (or path) naming an existing file is read as a models file, one spec per line;
    blank lines and everything after ``#`` are ignored. ``py:`` lines run Python code named by
    the file, so they need ``allow_code=True``. A file with a weights suffix (``.safetensors``,
    ``.pt``, ``.pth``, ``.bin``, ``.onnx``, ``.ckpt``, ``.ts``) is a checkpoint, not a list.
    Duplicates are dropped (first occurrence kept). A sequence is taken as one spec per item.

    Parameters
    ----------
    models : str, path or sequence of str
        The checkpoints.
    allow_code : bool, default False
        Allow ``py:`` specs read from a models file (``py:`` specs in a string or a sequence are
        the caller's own choice and always allowed).

    Returns
    -------
    list of str
        The specs, in order, without duplicates.

    Raises
    ------
    FileNotFoundError
        ``models`` looks like a list file (``.txt``, ``.lst``, ``.list``) that does not exist.
    ValueError
        No checkpoint is given, an unterminated quote, a models file that is not text, or a
        ``py:`` line in a models file without ``allow_code``.

    Examples
    --------
    >>> parse_models("efficientnet-lite0, efficientnet-lite1")
    ['efficientnet-lite0', 'efficientnet-lite1']
    >>> parse_models("py:m:f?mean=0.5,0.5,0.5&std=0.2,0.2,0.2;'file:a,b.pt'")
    ['py:m:f?mean=0.5,0.5,0.5&std=0.2,0.2,0.2', 'file:a,b.pt']
    """
    if isinstance(models, str | Path):
        path = Path(models).expanduser()
        if _is_file(path):
            if path.suffix.lower() in WEIGHT_SUFFIXES:
                return [str(models).strip()]  # a weights file: the checkpoint itself
            return _read_models_file(path, allow_code=allow_code)
        if not _SEPARATORS.search(str(models)) and path.suffix.lower() in (".txt", ".lst", ".list"):
            raise FileNotFoundError(
                f"models file {str(path)!r} not found; give an existing file (one checkpoint per line) "
                "or a comma-separated list of checkpoints"
            )
    if isinstance(models, str | Path):
        specs = _split_specs(str(models))
    else:
        specs = [str(part).strip() for part in models]
    specs = [spec for spec in specs if spec]
    if not specs:
        raise ValueError("no checkpoint given; pass --models A,B,... or a file with one checkpoint per line")
    return _dedupe(specs)


_SEPARATORS = re.compile(r"[,;\"']")
_PREFIX = re.compile(r"[A-Za-z][\w.+-]*:")
_QUOTES = "\"'"
_MAX_MODELS_FILE_BYTES = 4 << 20


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False


def _split_specs(text: str) -> list[str]:
    """Split a models string by the rules in :func:`parse_models`."""
    specs: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in _QUOTES and not "".join(current).strip():
            end = text.find(char, i + 1)
            if end < 0:
                raise ValueError(f"unterminated {char} quote in the models {text!r}; close the quote")
            after = re.match(r"\s*(?:[,;]|$)", text[end + 1 :])
            if after is None:
                raise ValueError(
                    f"text after the quoted spec {text[i : end + 1]} in the models {text!r}; "
                    "separate checkpoints with ',' or ';'"
                )
            specs.append(text[i + 1 : end].strip())
            current = []
            i = end + 1 + after.end()
            continue
        if char == "," and "?" in "".join(current):
            following = re.split(r"[,;]", text[i + 1 :], maxsplit=1)[0]
            if not _starts_spec(following):
                current.append(char)
                i += 1
                continue
        if char in ",;":
            specs.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        i += 1
    specs.append("".join(current).strip())
    return specs


def _starts_spec(text: str) -> bool:
    """Whether ``text`` (what follows a comma inside a spec's options) begins a new spec."""
    text = text.strip()
    if not text or text[0] in _QUOTES or _PREFIX.match(text):
        return True
    head = re.split(r"[?@]", text, maxsplit=1)[0]
    if head.lower() in _builtin_names():
        return True
    try:
        return Path(head).expanduser().exists()
    except (OSError, ValueError):
        return False


def _builtin_names() -> set[str]:
    try:
        from ckptrank.adapters import list_builtin_checkpoints
    except ImportError:  # pragma: no cover - the adapters are part of the package
        return set()
    return {name.lower() for name in list_builtin_checkpoints()}


def _read_models_file(path: Path, *, allow_code: bool) -> list[str]:
    """The specs of a models file (one per line, ``#`` comments), refusing binary files and ``py:``."""
    size = path.stat().st_size
    data = path.read_bytes() if size <= _MAX_MODELS_FILE_BYTES else b"\0"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = "\0"
    if "\0" in text:
        raise ValueError(
            f"the models file {str(path)!r} is not text ({size} bytes of binary data); to rank a weights "
            f"file give it as a checkpoint: file:{path}?arch=timm:NAME (or ?arch=torchvision:NAME; "
            ".onnx and TorchScript files need no arch); a models file lists one checkpoint per line"
        )
    specs = []
    for number, line in enumerate(text.splitlines(), start=1):
        spec = line.split("#", 1)[0].strip()
        if len(spec) >= 2 and spec[0] in _QUOTES and spec[-1] == spec[0]:
            spec = spec[1:-1].strip()
        if not spec:
            continue
        if spec.lower().startswith("py:") and not allow_code:
            raise ValueError(
                f"{str(path)!r} line {number}: {spec!r} runs Python code named by the models file; "
                "pass --allow-code (allow_code=True) or --trust-checkpoint (trust_checkpoint=True) if you "
                "trust this file"
            )
        specs.append(spec)
    if not specs:
        raise ValueError(f"the models file {str(path)!r} lists no checkpoint (one per line, # comments)")
    return _dedupe(specs)


def check_spec(spec: str) -> None:
    """Fail fast on a spec that names no checkpoint (unknown prefix or built-in name, bad syntax).

    Only the spec's text is checked (prefix, name, ``?KEY=VALUE`` options, ``@layer``); nothing is
    downloaded or loaded, so a spec that passes may still fail when its checkpoint loads.

    Parameters
    ----------
    spec : str
        One checkpoint spec, e.g. ``"timm:resnet18"`` or ``"efficientnet-lite0@blocks.3"``.

    Raises
    ------
    ValueError
        The spec names no checkpoint (a :class:`~ckptrank.adapters.CheckpointError` whose
        message names the spec and what is wrong with it).
    """
    from ckptrank.adapters import list_builtin_checkpoints
    from ckptrank.adapters.toolkit import get_source, parse_spec

    parsed = parse_spec(spec, list_builtin_checkpoints())
    get_source(parsed.prefix, spec)


def check_specs(specs: Sequence[str]) -> None:
    """Check every spec with :func:`check_spec`; raise one error naming all the bad ones.

    Parameters
    ----------
    specs : sequence of str
        Checkpoint specs, as :func:`parse_models` returns them.

    Raises
    ------
    ValueError
        One or more specs name no checkpoint: a single bad spec raises its own error; several
        raise one error whose message joins theirs with ``"; "``.
    """
    errors: list[ValueError] = []
    for spec in specs:
        try:
            check_spec(spec)
        except ValueError as err:
            errors.append(err)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ValueError("; ".join(" ".join(str(err).split()) for err in errors)) from errors[0]


def _dedupe(specs: list[str]) -> list[str]:
    return list(dict.fromkeys(specs))


def resolve_measures(measures: str | Sequence[str] | None) -> list[str]:
    """Validated measure names: None -> :data:`DEFAULT_MEASURES`; ``"all"`` -> every static measure.

    Raises
    ------
    KeyError
        A name is not registered (the message lists the valid names and the closest match).
    ValueError
        The list is empty.
    """
    from ckptrank.measures import get_measure, list_measures

    if measures is None:
        names = [name for name in DEFAULT_MEASURES if name in list_measures()]
    else:
        parts = measures.split(",") if isinstance(measures, str) else list(measures)
        names = []
        for part in (str(p).strip().lower() for p in parts):
            if part == "all":
                names.extend(list_measures(kind="static"))
            elif part:
                names.append(part)
    names = _dedupe(names)
    if not names:
        raise ValueError(f"no measure given; choose from {', '.join(list_measures())}")
    for name in names:
        get_measure(name)  # raises KeyError with the valid names and the closest match
    return names


def resolve_measure_options(
    names: Sequence[str], measure_options: Mapping[str, Mapping[str, Any]] | None, seed: int
) -> dict[str, dict[str, Any]]:
    """Per-measure keyword options; stochastic measures get ``random_state=seed`` unless given.

    Parameters
    ----------
    names : sequence of str
        The requested measures, as :func:`resolve_measures` returns them.
    measure_options : mapping, optional
        ``{measure: {option: value}}`` given by the caller; every option must be a keyword-only
        parameter of its measure's function.
    seed : int
        ``random_state`` of the measures that take one and were not given one.

    Returns
    -------
    dict
        Measure name -> its keyword options, one entry per name in ``names`` (in that order).

    Raises
    ------
    ValueError
        Options were given for a measure not in ``names``, or a measure has no such option (the
        message lists its options and the closest match).
    """
    from ckptrank.measures import get_measure
    from ckptrank.measures.toolkit import unknown_name_message

    measure_options = dict(measure_options or {})
    for name in measure_options:
        if name not in names:
            raise ValueError(
                f"options were given for measure {name!r}, which is not among the requested measures "
                f"({', '.join(names)})"
            )
    resolved: dict[str, dict[str, Any]] = {}
    for name in names:
        spec = get_measure(name)
        params = inspect.signature(spec.func).parameters
        keyword_only = [p.name for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        options = dict(measure_options.get(name, {}))
        for option in options:
            if option not in keyword_only and not accepts_any:
                message = unknown_name_message(f"option of measure {name!r}", option, keyword_only)
                raise ValueError(message)
        if "random_state" in keyword_only and "random_state" not in options:
            options["random_state"] = seed
        resolved[name] = options
    return resolved
