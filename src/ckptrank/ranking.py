"""Rank checkpoints for a target task: extract features through the cache, score, combine.

:func:`rank` is the library behind ``ckptrank rank``: it loads the target data (training
split), runs every checkpoint once over it (features, plus source-class probabilities when the
checkpoint has a head), scores the outputs with each requested measure and returns one row per
checkpoint with the per-measure scores, the rank and two target-blind baselines (parameter
count, and the source accuracy the checkpoint's card states).

Rank column
    With the default measures, :func:`ckptrank.combine.answer_column` (the learned default
    ranker over the measures and the descriptors); with measures the user chose,
    :func:`ckptrank.combine.consensus_column` (their mean rank). The benchmark evaluates the
    same functions.

Failures
    A checkpoint that cannot be loaded or run is kept as a row with ``status="failed"`` and the
    reason in ``error`` and the notes; the others are still ranked. :func:`rank` raises only
    when every checkpoint failed, or when no requested measure could score any checkpoint.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import functools
import inspect
import json
import logging
import math
import platform
import re
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ckptrank import pipeline
from ckptrank._atomic import replace_file, replace_text
from ckptrank.combine import DEFAULT_MEASURES

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_MEASURES",
    "EnsembleChoice",
    "check_output_dir",
    "choose_ensemble",
    "csv_frame",
    "on_unreadable_default",
    "parse_models",
    "rank",
    "ranking_records",
    "resolve_measures",
    "save_ranking",
]

logger = logging.getLogger(__name__)


#: Columns that precede and follow the per-measure score columns of a ranking.
LEADING_COLUMNS = ("rank", "checkpoint")
TRAILING_COLUMNS = (
    "consensus_rank",
    "ranker_score",
    "p_best",
    "shortlist",
    "seconds",
    "num_parameters",
    "source_accuracy",
    "num_parameters_rank",
    "source_accuracy_rank",
    "status",
    "error",
    "has_head",
    "feature_dim",
    "from_cache",
    "extract_seconds",
    "score_seconds",
)

OnError = Literal["record", "raise"]
OnUnreadable = Literal["fail", "skip"]

#: What :func:`_load_target` does with unreadable image files when the caller does not say
#: (set for a block with :func:`on_unreadable_default`, e.g. around the benchmark harness).
_ON_UNREADABLE: contextvars.ContextVar[OnUnreadable] = contextvars.ContextVar(
    "ckptrank_on_unreadable", default="fail"
)

#: Suffixes of checkpoint weight files: such a file given as ``models`` is a checkpoint, never a list.
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".onnx", ".ckpt", ".ts")


# --------------------------------------------------------------------------------------------
# Seams to the other layers (imported lazily, so that ``import ckptrank`` stays light and tests
# can replace them).


def _load_dataset(
    spec: str, *, per_class: int | None, seed: int, on_unreadable: OnUnreadable | None = None
) -> Any:
    from ckptrank.data import load_dataset

    policy = _ON_UNREADABLE.get() if on_unreadable is None else on_unreadable
    return load_dataset(spec, split="train", per_class=per_class, seed=seed, on_unreadable=policy)


@contextlib.contextmanager
def on_unreadable_default(policy: OnUnreadable) -> Iterator[None]:
    """Within the block, data specs loaded without an explicit ``on_unreadable`` use ``policy``.

    For callers that load target data through code they do not control the arguments of (the
    benchmark harness); :func:`rank` and :func:`choose_ensemble` take ``on_unreadable`` directly.

    Parameters
    ----------
    policy : {"fail", "skip"}
        Raise on missing or unreadable image files, or drop them with a note.
    """
    if policy not in ("fail", "skip"):
        raise ValueError(f"on_unreadable must be 'fail' or 'skip', not {policy!r}")
    token = _ON_UNREADABLE.set(policy)
    try:
        yield
    finally:
        _ON_UNREADABLE.reset(token)


def _load_checkpoint(spec: str, *, trust_checkpoint: bool, device: str | None) -> Any:
    return pipeline.load_checkpoint(spec, trust_checkpoint=trust_checkpoint, device=device)


def _check_spec(spec: str) -> None:
    """Fail fast on a spec that names no checkpoint (unknown prefix or built-in name, bad syntax)."""
    from ckptrank.adapters import list_builtin_checkpoints
    from ckptrank.adapters._source import get_source, parse_spec

    parsed = parse_spec(spec, list_builtin_checkpoints())
    get_source(parsed.prefix, spec)


def _make_cache(cache_dir: str | Path | None) -> Any:
    """The feature cache, after checking that entries can be written there (one clear error if not)."""
    return pipeline.open_cache(cache_dir)


def _extract(
    checkpoint: Any, dataset: Any, *, batch_size: int, device: str | None, cache: Any, progress: bool | None
) -> Any:
    return pipeline.extract_features(
        checkpoint, dataset, batch_size=batch_size, device=device, cache=cache, progress=progress
    )


#: One checkpoint's pass over the target data (see :class:`ckptrank.pipeline.CheckpointRun`).
_Run = pipeline.CheckpointRun


# --------------------------------------------------------------------------------------------
# Argument parsing shared by the API and the CLI.


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


def _check_specs(specs: Sequence[str]) -> None:
    """Raise one error for every spec that names no checkpoint, before any work starts."""
    errors: list[ValueError] = []
    for spec in specs:
        try:
            _check_spec(spec)
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


def _resolve_options(
    names: Sequence[str], measure_options: Mapping[str, Mapping[str, Any]] | None, seed: int
) -> dict[str, dict[str, Any]]:
    """Per-measure keyword options; stochastic measures get ``random_state=seed`` unless given."""
    from ckptrank.measures import get_measure
    from ckptrank.measures._registry import unknown_name_message

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


# --------------------------------------------------------------------------------------------
# Running the checkpoints.


def _iter_runs(
    dataset: Any,
    specs: Sequence[str],
    *,
    needs_features: bool,
    cache: Any,
    device: str | None,
    batch_size: int,
    progress: Any,
    trust_checkpoint: bool,
    on_error: OnError,
    needs_model: bool = False,
) -> Iterator[_Run]:
    """Load and run each checkpoint in turn (:func:`ckptrank.pipeline.run_checkpoint`); a failing
    one yields a ``failed`` run.

    With ``needs_model`` the yielded run also holds the loaded checkpoint and the raw samples
    (``run.model``, a :class:`~ckptrank.capacitance.backbone.ModelInput`) until the next one loads.
    """
    for spec in specs:
        run = pipeline.run_checkpoint(
            dataset,
            spec,
            needs_features=needs_features,
            cache=cache,
            device=device,
            batch_size=batch_size,
            progress=progress,
            trust_checkpoint=trust_checkpoint,
            on_error=on_error,
            needs_model=needs_model,
            load=_load_checkpoint,
            extract=_extract,
        )
        yield run
        run.model = None


def _load_target(
    data: Any, per_class: int | None, seed: int, on_unreadable: OnUnreadable | None = None
) -> Any:
    if per_class is not None and (not isinstance(per_class, int | np.integer) or per_class < 1):
        raise ValueError(f"per_class must be a positive integer, got {per_class!r}")
    if isinstance(data, str | Path):
        dataset = _load_dataset(str(data), per_class=per_class, seed=seed, on_unreadable=on_unreadable)
    else:
        if per_class is not None:
            raise ValueError(
                "per_class applies only when data is a data spec; subsample the dataset yourself"
            )
        dataset = data
    labels = np.asarray(dataset.labels)
    classes = np.unique(labels)
    if labels.size == 0:
        raise ValueError(f"the target data {_data_name(data, dataset)!r} has no labelled samples")
    if classes.size < 2:
        names = getattr(dataset, "classes", None)
        code = classes[0].item() if hasattr(classes[0], "item") else classes[0]
        known = names is not None and isinstance(code, int) and code < len(names)
        shown = names[int(code)] if known else code
        raise ValueError(
            f"the target data {_data_name(data, dataset)!r} has {classes.size} class "
            f"({shown!r}, {labels.size} samples); ranking needs labelled samples of at least 2 classes"
        )
    return dataset


def _data_name(data: Any, dataset: Any = None) -> str:
    if isinstance(data, str | Path):
        return str(data)
    return str(getattr(dataset, "name", None) or getattr(data, "name", "dataset"))


def _dataset_notes(dataset: Any, per_class: int | None, seed: int) -> list[str]:
    notes = [str(note) for note in (getattr(dataset, "notes", None) or [])]
    split = getattr(dataset, "split", "train")
    if split in (None, "train"):
        if not any("training split" in note for note in notes):
            notes.append("scored on the training split only (no test labels leak into the scores)")
    elif split == "all":
        if not any("split 'all'" in note or "no split" in note for note in notes):
            notes.append(
                "the data has no train/test split: every sample was scored; keep a test set apart yourself"
            )
    else:
        notes.append(f"scored on the {split!r} split")
    if per_class is not None and not any("per class" in note or "per_class" in note for note in notes):
        notes.append(f"subsampled to at most {per_class} samples per class (seed {seed})")
    return notes


def _dataset_summary(data: Any, dataset: Any) -> dict[str, Any]:
    labels = np.asarray(dataset.labels)
    classes, counts = np.unique(labels, return_counts=True)
    return {
        "name": _data_name(data, dataset),
        "split": getattr(dataset, "split", None),
        "modality": getattr(dataset, "modality", None),
        "n_samples": int(labels.size),
        "n_classes": int(classes.size),
        "min_class_count": int(counts.min()),
        "max_class_count": int(counts.max()),
    }


# --------------------------------------------------------------------------------------------
# Scoring and ranking.


def _score_run(
    run: _Run,
    names: Sequence[str],
    options: Mapping[str, Mapping[str, Any]],
    on_error: OnError,
) -> tuple[dict[str, float], float]:
    """Score one run with every measure; skipped or failed measures give NaN and a note."""
    return pipeline.score_run(run, names, options, on_error)


def _versions() -> dict[str, str]:
    import ckptrank

    versions = {
        "ckptrank": ckptrank.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    for module in ("torch", "scipy", "pandas"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:  # pragma: no cover - torch is a dependency
            versions[module] = "not installed"
    return versions


def rank(
    data: Any,
    models: str | Path | Sequence[str],
    *,
    measures: str | Sequence[str] | None = None,
    per_class: int | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    batch_size: int = 64,
    measure_options: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Any = None,
    trust_checkpoint: bool = False,
    on_error: OnError = "record",
    allow_code: bool = False,
    on_unreadable: OnUnreadable = "fail",
    executor: Any = None,
) -> pd.DataFrame:
    """Rank checkpoints for a target task by transferability measures.

    Parameters
    ----------
    data : str or dataset
        Target data spec (e.g. ``"builtin:fashion-mnist"``, an image folder, a CSV of texts, a
        ``.npz`` of features), or an already loaded dataset with ``.labels``. Only its training
        split is used.
    models : str, path or sequence of str
        Checkpoint specs: a list, a comma-separated string, or a file with one spec per line
        (``#`` comments); see :func:`parse_models` for the splitting rules.
    measures : str or sequence of str, optional
        Measure names (comma-separated or a list; ``"all"`` = every static measure). Default
        :data:`DEFAULT_MEASURES`, combined by the shipped default ranker
        (:func:`ckptrank.combine.answer_column`); given measures are combined by their
        consensus (mean rank). Measures needing source probabilities are skipped, with a note,
        for checkpoints without a classification head.
    per_class : int, optional
        Use at most this many training samples per class (seeded subsample).
    seed : int
        Seed of the subsample and ``random_state`` of the stochastic measures (unless given in
        ``measure_options``).
    cache_dir : str or path, optional
        Feature-cache folder (default: the cache's own default, ``$CKPTRANK_CACHE``). It must be
        writable; this is checked before any work.
    device : str, optional
        Where the checkpoints run (default CPU).
    batch_size : int
        Extraction batch size.
    measure_options : dict, optional
        ``{measure: {option: value}}`` passed to the measures.
    progress : optional
        Passed to the extraction engine (None = its default).
    trust_checkpoint : bool
        Allow loading checkpoint files that execute code (pickles); implies ``allow_code``.
    on_error : {"record", "raise"}
        ``"record"`` keeps a failing checkpoint or measure as a note; ``"raise"`` re-raises.
    allow_code : bool
        Allow ``py:`` specs read from a models file (they run Python code the file names).
    on_unreadable : {"fail", "skip"}
        Missing or unreadable image files of the target data: raise, or drop them with a note.
    executor : {"local", "ray"}, Executor or None
        What runs the per-checkpoint units (:func:`ckptrank.pipeline.checkpoint_unit`): None or
        ``"local"`` runs them in turn in this process; ``"ray"`` or a
        :class:`~ckptrank.executors.RayExecutor` runs them as Ray tasks (then ``cache_dir`` must be
        on storage every worker sees). The result is the same whatever runs them.

    Returns
    -------
    pandas.DataFrame
        One row per checkpoint, best first, with columns ``rank``, ``checkpoint``, one per
        measure (the score; NaN when skipped or failed), ``consensus_rank`` (mean per-measure
        rank), ``ranker_score`` (the default ranker's score, higher = better; NaN when
        ``measures`` was given and the rank is the consensus of those measures), ``p_best``
        and ``shortlist`` (the decision: probability of being the best to fine-tune, and the
        smallest set holding the best with 90% probability; default ranker only), ``seconds``
        (load + extraction + scoring), ``num_parameters``, ``source_accuracy`` (from the
        checkpoint card, a fraction; NaN when not stated), the ranks these two baselines would
        imply, ``status`` (``"ok"``, ``"failed"`` or ``"skipped"``) and ``error``. ``df.attrs``
        holds ``notes`` (list of str), ``measures``, ``measure_ranks``, ``checkpoint_notes``,
        ``run_notes``, ``ranker`` (what made the rank column, with its held-out figure),
        ``dataset`` and ``config`` (the resolved configuration).

    Raises
    ------
    KeyError
        Unknown measure name.
    ValueError
        Bad options, fewer than 2 target classes, every checkpoint failed, or no requested measure
        could score any checkpoint.
    FileNotFoundError
        The data or the models file does not exist.
    CacheNotWritableError
        The feature cache folder cannot be written (an ``OSError``).
    """
    if on_error not in ("record", "raise"):
        raise ValueError(f"on_error must be 'record' or 'raise', got {on_error!r}")
    if not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    specs = parse_models(models, allow_code=allow_code or trust_checkpoint)
    _check_specs(specs)
    names = resolve_measures(measures)
    options = _resolve_options(names, measure_options, seed)
    from ckptrank.measures import get_measure

    measure_specs = {name: get_measure(name) for name in names}
    needs_features = any("features" in s.requires for s in measure_specs.values())
    needs_model = any("model" in s.requires for s in measure_specs.values())
    run_notes: list[str] = []
    if measures is None:
        missing = [name for name in DEFAULT_MEASURES if name not in names]
        if missing:
            run_notes.append(f"default measures not available in this installation: {', '.join(missing)}")

    cache = _make_cache(cache_dir)  # an unwritable cache is one error now, not a failure per checkpoint
    dataset = _load_target(data, per_class, seed, on_unreadable)
    run_notes.extend(_dataset_notes(dataset, per_class, seed))
    if getattr(dataset, "modality", None) == "features" and len(specs) > 1:
        run_notes.append(
            "the target data are precomputed features: every checkpoint is scored on the same features"
        )

    from ckptrank.executors import resolve_executor

    runner, own_executor = resolve_executor(executor)
    unit = functools.partial(
        pipeline.checkpoint_unit,
        dataset,
        names=names,
        options=options,
        cache=cache,
        device=device,
        batch_size=batch_size,
        # bars drawn in worker processes would only clutter their logs
        progress=False if runner.remote else progress,
        trust_checkpoint=trust_checkpoint,
        on_error=on_error,
        needs_features=needs_features,
        needs_model=needs_model,
        load=_load_checkpoint,
        extract=_extract,
        score=_score_run,
    )
    try:
        if runner.remote and callable(getattr(dataset, "fingerprint", None)):
            dataset.fingerprint()  # memoised: computed once here, not in every task
        results = runner.map(unit, specs, gpu=str(device or "cpu").startswith("cuda"))
    finally:
        if own_executor:
            runner.close()
    rows: list[dict[str, Any]] = []
    checkpoint_notes: dict[str, list[str]] = {}
    resolved: dict[str, dict[str, str | None]] = {}
    for result in results:
        row, notes = _row_for(result, names)
        rows.append(row)
        checkpoint_notes[result.spec] = list(dict.fromkeys(notes))
        resolved[result.spec] = {"name": result.name, "weights": result.weights, "revision": result.revision}
    frame, consensus_measures, ranks_by_checkpoint, combined = _combine(
        rows,
        names,
        measure_specs,
        checkpoint_notes,
        run_notes,
        use_default_ranker=measures is None,
        n_classes=int(np.unique(np.asarray(dataset.labels)).size),
        options=options,
    )

    flat_notes = run_notes + _grouped_notes(checkpoint_notes)

    config = {
        "data": _data_name(data, dataset),
        "split": getattr(dataset, "split", "train"),
        "models": specs,
        "checkpoints": resolved,
        "measures": names,
        "measure_options": options,
        "consensus_measures": consensus_measures,
        "ranker": combined.method,
        "per_class": per_class,
        "seed": seed,
        "batch_size": batch_size,
        "device": device or "cpu",
        "cache_dir": _cache_root(cache, cache_dir),
        "trust_checkpoint": trust_checkpoint,
        "allow_code": allow_code,
        "on_unreadable": on_unreadable,
        "versions": _versions(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    frame.attrs["notes"] = flat_notes
    frame.attrs["run_notes"] = run_notes
    frame.attrs["checkpoint_notes"] = checkpoint_notes
    frame.attrs["measures"] = names
    frame.attrs["consensus_measures"] = consensus_measures
    frame.attrs["ranker"] = combined.method
    frame.attrs["higher_is_better"] = {name: measure_specs[name].higher_is_better for name in names}
    frame.attrs["measure_ranks"] = ranks_by_checkpoint
    frame.attrs["dataset"] = _dataset_summary(data, dataset)
    frame.attrs["config"] = config
    return frame


def _row_for(result: pipeline.CheckpointScores, names: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """The table row of one checkpoint unit's result, and the checkpoint's notes."""
    notes = list(result.notes)
    scores = dict.fromkeys(names, math.nan)
    score_seconds = 0.0
    if result.status == "ok":
        scores.update(result.scores)
        score_seconds = result.score_seconds
    elif result.status == "skipped":
        notes.append(
            f"not run: every requested measure ({', '.join(names)}) needs a classification head, "
            "which this checkpoint does not have"
        )
    else:
        notes.append(f"failed: {result.error}")
    ok = result.status == "ok"
    row = {
        "checkpoint": result.spec,
        **scores,
        "seconds": result.load_seconds + result.extract_seconds + score_seconds if ok else math.nan,
        "num_parameters": result.num_parameters,
        "source_accuracy": result.source_accuracy if result.source_accuracy is not None else math.nan,
        "status": result.status,
        "error": result.error,
        "has_head": result.has_head,
        "feature_dim": result.feature_dim,
        "from_cache": result.from_cache,
        "extract_seconds": result.extract_seconds if ok else math.nan,
        "score_seconds": score_seconds if ok else math.nan,
    }
    return row, notes


def _combine(
    rows: list[dict[str, Any]],
    names: Sequence[str],
    measure_specs: Mapping[str, Any],
    checkpoint_notes: Mapping[str, list[str]],
    run_notes: list[str],
    use_default_ranker: bool = False,
    n_classes: int | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[pd.DataFrame, list[str], dict[str, dict[str, Any]], Any]:
    """Per-measure ranks, the rank column (default ranker or consensus), baselines and final
    order; appends run-level notes."""
    import pandas as pd

    if all(row["status"] == "failed" for row in rows):
        reasons = "; ".join(f"{row['checkpoint']}: {row['error']}" for row in rows)
        what = "the checkpoint" if len(rows) == 1 else f"all {len(rows)} checkpoints"
        raise ValueError(f"{what} failed: {reasons}")
    frame = pd.DataFrame(rows)
    ok = (frame["status"] == "ok").to_numpy()
    scored = {name: np.isfinite(frame[name].to_numpy(dtype=float)) & ok for name in names}
    if not any(mask.any() for mask in scored.values()):
        raise ValueError(_nothing_scored_message(names, measure_specs, frame, checkpoint_notes))
    from ckptrank.combine import answer_column, consensus_column, measure_ranks
    from ckptrank.measures import snap_saturated

    dims = pd.to_numeric(frame["feature_dim"], errors="coerce").to_numpy(dtype=float)
    for name in names:
        # scores at a measure's maximum tie exactly instead of being ordered by round-off
        try:
            snapped, note = snap_saturated(
                name,
                frame[name].to_numpy(dtype=float),
                n_classes=n_classes,
                n_features=dims,
                options=(options or {}).get(name, {}),
            )
        except ValueError:
            continue
        frame[name] = snapped
        if note:
            run_notes.append(note)
    measure_scores = {name: frame[name].to_numpy(dtype=float) for name in names}
    directions = {name: measure_specs[name].higher_is_better for name in names}
    if use_default_ranker:
        combined = answer_column(
            measure_scores,
            directions,
            num_parameters=frame["num_parameters"].to_numpy(dtype=float, na_value=np.nan),
            has_head=np.array([np.nan if h is None else float(h) for h in frame["has_head"]]),
            ok=ok,
        )
    else:
        combined = consensus_column(measure_scores, directions, ok)
    run_notes.insert(0, f"rank: {combined.method}")
    run_notes.extend(combined.notes)
    ranks_by_checkpoint = {
        spec: {name: _none_if_nan(combined.ranks[name][i]) for name in names}
        for i, spec in enumerate(frame["checkpoint"])
    }
    consensus_measures = combined.measures
    frame["consensus_rank"] = combined.consensus
    frame["ranker_score"] = combined.ranker_score if combined.ranker_score is not None else np.nan
    frame["p_best"] = combined.p_best if combined.p_best is not None else np.nan
    frame["shortlist"] = combined.shortlist if combined.shortlist is not None else False
    frame["rank"] = combined.rank
    for column in ("num_parameters", "source_accuracy"):
        values = frame[column].to_numpy(dtype=float, na_value=np.nan)
        frame[f"{column}_rank"] = measure_ranks(np.where(ok, values, np.nan), higher_is_better=True)
    position = np.nan_to_num(frame["rank"].to_numpy(dtype=float), nan=np.inf)
    frame = frame.iloc[np.lexsort((np.arange(len(frame)), position))].reset_index(drop=True)
    frame["num_parameters"] = frame["num_parameters"].astype("Int64")
    frame["rank"] = frame["rank"].astype("Int64")
    ordered = frame[[*LEADING_COLUMNS, *names, *TRAILING_COLUMNS]]
    return ordered, consensus_measures, ranks_by_checkpoint, combined


def _grouped_notes(checkpoint_notes: Mapping[str, list[str]]) -> list[str]:
    """``"a, b: text"`` for each distinct note, naming every checkpoint it applies to (first-seen order)."""
    owners: dict[str, list[str]] = {}
    for spec, notes in checkpoint_notes.items():
        for note in notes:
            owners.setdefault(note, []).append(spec)
    return [f"{', '.join(specs)}: {note}" for note, specs in owners.items()]


def _cache_root(cache: Any, cache_dir: str | Path | None) -> str | None:
    root = getattr(cache, "root", None) or cache_dir
    return None if root is None else str(root)


def _none_if_nan(value: Any) -> Any:
    if value is None:
        return None
    try:
        if isinstance(value, float | np.floating) and not math.isfinite(float(value)):
            return None
    except TypeError:
        return value
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _nothing_scored_message(
    names: Sequence[str], specs: Mapping[str, Any], frame: Any, notes: Mapping[str, list[str]]
) -> str:
    head_only = all("source_probs" in specs[name].requires for name in names)
    if head_only:
        return (
            f"{', '.join(names)} need{'s' if len(names) == 1 else ''} the source-class probabilities of a "
            "classification head, and none of the checkpoints has one (or an intermediate layer was chosen); "
            "choose a feature-based measure such as logme or sfda"
        )
    reasons = []
    for spec in frame["checkpoint"]:
        for note in notes.get(spec, []):
            reasons.append(f"{spec}: {note}")
    detail = "; ".join(reasons[:4]) or "no details"
    return f"no requested measure could score any checkpoint ({detail})"


# --------------------------------------------------------------------------------------------
# Output.


def ranking_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The ranking as JSON-ready objects, one per checkpoint, best first.

    Each object has ``rank``, ``checkpoint``, ``revision`` (the hub commit the checkpoint was
    pinned to, or None), ``status``, ``error``, ``scores`` (measure -> value
    or None when skipped), ``measure_ranks``, ``consensus_rank``, ``ranker_score`` (the default
    ranker's score, None when ``--measures`` chose a consensus), ``p_best`` (probability of being
    the best to fine-tune), ``shortlist`` (in the smallest set holding the best with 90%
    probability), ``seconds``,
    ``num_parameters``, ``source_accuracy``, ``baseline_ranks`` and ``notes`` (the run-level
    notes followed by this checkpoint's own).
    """
    names = list(frame.attrs.get("measures", []))
    run_notes = list(frame.attrs.get("run_notes", []))
    checkpoint_notes = frame.attrs.get("checkpoint_notes", {})
    measure_ranks = frame.attrs.get("measure_ranks", {})
    resolved = frame.attrs.get("config", {}).get("checkpoints", {})
    records = []
    for row in frame.to_dict(orient="records"):
        spec = row["checkpoint"]
        records.append(
            {
                "rank": _none_if_nan(_maybe_int(row["rank"])),
                "checkpoint": spec,
                "revision": resolved.get(spec, {}).get("revision"),
                "status": row["status"],
                "error": _none_if_nan(row["error"]),
                "scores": {name: _none_if_nan(row[name]) for name in names},
                "measure_ranks": measure_ranks.get(spec, {}),
                "consensus_rank": _none_if_nan(row["consensus_rank"]),
                "ranker_score": _round(row["ranker_score"], 6),
                "p_best": _round(row["p_best"], 4),
                "shortlist": bool(row["shortlist"]),
                "seconds": _round(row["seconds"]),
                "extract_seconds": _round(row["extract_seconds"]),
                "score_seconds": _round(row["score_seconds"]),
                "from_cache": _none_if_nan(row["from_cache"]),
                "num_parameters": _none_if_nan(_maybe_int(row["num_parameters"])),
                "source_accuracy": _none_if_nan(row["source_accuracy"]),
                "baseline_ranks": {
                    "num_parameters": _none_if_nan(row["num_parameters_rank"]),
                    "source_accuracy": _none_if_nan(row["source_accuracy_rank"]),
                },
                "has_head": _none_if_nan(row["has_head"]),
                "feature_dim": _none_if_nan(_maybe_int(row["feature_dim"])),
                "notes": run_notes + list(checkpoint_notes.get(spec, [])),
            }
        )
    return records


def _maybe_int(value: Any) -> Any:
    import pandas as pd

    if value is None or value is pd.NA:
        return None
    if isinstance(value, float | np.floating) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return value


def _round(value: Any, digits: int = 3) -> float | None:
    value = _none_if_nan(value)
    return None if value is None else round(float(value), digits)


def csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The ranking as written to CSV: the main columns, without the bookkeeping ones."""
    names = list(frame.attrs.get("measures", []))
    columns = [
        *LEADING_COLUMNS,
        *names,
        "consensus_rank",
        "ranker_score",
        "p_best",
        "shortlist",
        "seconds",
        "num_parameters",
        "source_accuracy",
        "num_parameters_rank",
        "source_accuracy_rank",
        "status",
        "error",
    ]
    return frame[columns]


def check_output_dir(out: str | Path, *, overwrite: bool = False) -> Path:
    """Refuse a non-empty output folder unless ``overwrite``; return it as a Path.

    Raises
    ------
    ValueError
        ``out`` is a file, or a non-empty folder and ``overwrite`` is False.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {str(path)!r} exists and is not a folder; choose a folder path")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ValueError(
            f"output folder {str(path)!r} is not empty; choose another folder or pass --overwrite "
            "(overwrite=True) to replace its files"
        )
    return path


def save_ranking(
    frame: pd.DataFrame, out: str | Path, *, overwrite: bool = False, plot: bool = True
) -> dict[str, Path]:
    """Write ``ranking.csv``, ``ranking.json``, ``config.json`` and ``scores.png`` to ``out``.

    Parameters
    ----------
    frame : pandas.DataFrame
        A result of :func:`rank`.
    out : str or path
        Output folder, created if missing.
    overwrite : bool
        Allow writing into a non-empty folder (its files of the same names are replaced).
    plot : bool
        Draw ``scores.png`` (needs matplotlib, ``pip install ckptrank[report]``; without it the
        other files are still written and ``"plot"`` is missing from the result).

    Returns
    -------
    dict
        File kind (``"csv"``, ``"json"``, ``"config"``, ``"plot"``) -> path written.

    Raises
    ------
    ValueError
        ``out`` is not empty and ``overwrite`` is False.

    Notes
    -----
    Every file is written to a temporary file in ``out`` and moved onto its name with
    :func:`os.replace`, so a reader never sees half a file, and a name that is a symbolic link
    is replaced by the new file: the link's target is never written through.
    """
    path = check_output_dir(out, overwrite=overwrite)
    path.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    written["csv"] = replace_text(path / "ranking.csv", csv_frame(frame).to_csv(index=False))
    records = json.dumps(ranking_records(frame), indent=2) + "\n"
    written["json"] = replace_text(path / "ranking.json", records)
    config = dict(frame.attrs.get("config", {}))
    config["dataset"] = frame.attrs.get("dataset")
    config["notes"] = list(frame.attrs.get("notes", []))
    written["config"] = replace_text(path / "config.json", json.dumps(config, indent=2, default=str) + "\n")
    if plot:
        try:
            from ckptrank.plotting import plot_scores

            written["plot"] = replace_file(path / "scores.png", lambda tmp: plot_scores(frame, tmp))
        except ImportError as err:  # matplotlib is an optional extra
            logger.warning("scores.png not drawn: %s", err)
    return written


# --------------------------------------------------------------------------------------------
# Ensemble selection.


@dataclass
class EnsembleChoice:
    """Result of :func:`choose_ensemble`.

    Attributes
    ----------
    selected : list of str
        Chosen checkpoints, in the order they were picked.
    individual_scores : dict
        Checkpoint -> its own SFDA score.
    ensemble_scores : list of float
        SFDA score of the ensemble after each pick (``ensemble_scores[i]`` for the first ``i+1``).
    failed : dict
        Checkpoint -> reason, for checkpoints that could not be run.
    notes : list of str
    config : dict
    """

    selected: list[str]
    individual_scores: dict[str, float]
    ensemble_scores: list[float]
    failed: dict[str, str]
    notes: list[str]
    config: dict[str, Any]
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "selected": [
                {
                    "order": i + 1,
                    "checkpoint": spec,
                    "individual_score": _none_if_nan(self.individual_scores.get(spec, math.nan)),
                    "ensemble_score": _none_if_nan(
                        self.ensemble_scores[i] if i < len(self.ensemble_scores) else None
                    ),
                }
                for i, spec in enumerate(self.selected)
            ],
            "individual_scores": {k: _none_if_nan(v) for k, v in self.individual_scores.items()},
            "failed": self.failed,
            "notes": self.notes,
            "seconds": round(self.seconds, 3),
            "config": self.config,
        }


def _select_ensemble(features_by_checkpoint: dict[str, Any], labels: Any, k: int, **options: Any) -> Any:
    from ckptrank.ensemble import select_ensemble

    return select_ensemble(features_by_checkpoint, labels, k, **options)


def choose_ensemble(
    data: Any,
    models: str | Path | Sequence[str],
    *,
    k: int = 3,
    method: str = "greedy_concat",
    pca_dims: int | float | None = None,
    standardize: bool = True,
    per_class: int | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    batch_size: int = 64,
    progress: Any = None,
    trust_checkpoint: bool = False,
    on_error: OnError = "record",
    allow_code: bool = False,
    on_unreadable: OnUnreadable = "fail",
) -> EnsembleChoice:
    """Pick ``k`` complementary checkpoints by SFDA ensemble selection.

    Runs each checkpoint over the target training data (through the feature cache) and calls
    :func:`ckptrank.ensemble.select_ensemble` (greedy forward selection on SFDA). ``method``,
    ``pca_dims`` and ``standardize`` are passed to it; the other parameters (``allow_code``
    and ``on_unreadable`` included) are as in :func:`rank`.

    Raises
    ------
    ValueError
        ``k`` is not in ``1..number of checkpoints that ran``, fewer than 2 target classes, or
        every checkpoint failed.
    """
    if not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    specs = parse_models(models, allow_code=allow_code or trust_checkpoint)
    _check_specs(specs)
    if k > len(specs):
        raise ValueError(f"k={k} but only {len(specs)} checkpoints were given; choose k <= {len(specs)}")
    start = time.perf_counter()
    cache = _make_cache(cache_dir)
    dataset = _load_target(data, per_class, seed, on_unreadable)
    notes = _dataset_notes(dataset, per_class, seed)
    features: dict[str, Any] = {}
    failed: dict[str, str] = {}
    labels = None
    for run in _iter_runs(
        dataset,
        specs,
        needs_features=True,
        cache=cache,
        device=device,
        batch_size=batch_size,
        progress=progress,
        trust_checkpoint=trust_checkpoint,
        on_error=on_error,
    ):
        if run.status != "ok":
            failed[run.spec] = run.error or run.status
            notes.append(f"{run.spec}: failed: {run.error}")
            continue
        if labels is None:
            labels = np.asarray(run.labels)
        elif not np.array_equal(labels, np.asarray(run.labels)):
            raise ValueError(
                f"checkpoint {run.spec!r} returned the target samples in another order or number; "
                "ensemble selection needs the same samples for every checkpoint"
            )
        features[run.spec] = run.features
    if not features:
        reasons = "; ".join(f"{spec}: {reason}" for spec, reason in failed.items())
        raise ValueError(f"all {len(specs)} checkpoints failed: {reasons}")
    if k > len(features):
        raise ValueError(
            f"k={k} but only {len(features)} checkpoint(s) ran ({len(failed)} failed); "
            f"choose k <= {len(features)}"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _select_ensemble(
            features, labels, int(k), method=method, pca_dims=pca_dims, standardize=standardize
        )
    for warning in caught:
        note = " ".join(str(warning.message).split())
        if note not in notes:
            notes.append(note)
    selected = [str(s) for s in _get(result, "selected")]
    individual = _get(result, "individual_scores", None)
    if individual is None:
        from ckptrank.measures import score

        individual = {spec: score("sfda", feats, labels) for spec, feats in features.items()}
    ensemble_scores = _get(result, "ensemble_scores", None)
    if ensemble_scores is None:
        ensemble_scores = _get(result, "scores", [])
    config = {
        "data": _data_name(data, dataset),
        "models": specs,
        "k": int(k),
        "measure": "sfda",
        "method": method,
        "pca_dims": pca_dims,
        "standardize": standardize,
        "per_class": per_class,
        "on_unreadable": on_unreadable,
        "seed": seed,
        "batch_size": batch_size,
        "device": device or "cpu",
        "versions": _versions(),
    }
    return EnsembleChoice(
        selected=selected,
        individual_scores={str(key): float(value) for key, value in dict(individual).items()},
        ensemble_scores=[float(v) for v in ensemble_scores],
        failed=failed,
        notes=notes,
        config=config,
        seconds=time.perf_counter() - start,
    )


def _get(obj: Any, name: str, *default: Any) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, *default) if default else obj[name]
    return getattr(obj, name, *default)
