"""``ckptrank rank``: rank checkpoints for a target task (a thin layer over :func:`ckptrank.rank`)."""

from __future__ import annotations

import contextlib
import enum
import json
import math
import os
import re
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import quote

import typer

from ._errors import debug_enabled, run_with_error_mapping

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    from ckptrank.engine.progress import ProgressLines

__all__ = [
    "LOG_WIDTH",
    "NOTE_LINES",
    "OFFLINE_HELP",
    "RANK_STEPS",
    "AllowCodeOpt",
    "BatchSizeOpt",
    "CacheDirOpt",
    "DataOpt",
    "DeviceOpt",
    "ExecutorOpt",
    "LabelColumnOpt",
    "ModelsOpt",
    "OfflineOpt",
    "OnUnreadable",
    "OnUnreadableOpt",
    "PathColumnOpt",
    "PerClassOpt",
    "RayAddressOpt",
    "SeedOpt",
    "TextColumnOpt",
    "TrustOpt",
    "VerboseOpt",
    "add_budget_options",
    "check_out_writable",
    "cli_flag_names",
    "data_with_columns",
    "epilog",
    "fit_table",
    "group_notes",
    "model_specs",
    "needed_width",
    "not_shown",
    "on_unreadable_policy",
    "parse_measure_options",
    "plain_message",
    "print_notes",
    "progress_for",
    "register",
    "release_min_widths",
    "render_table",
    "set_offline",
    "table_console",
    "table_style",
]

# Shared option aliases (also used by ``ckptrank ensemble`` and ``ckptrank demo``).
DataOpt = Annotated[
    str,
    typer.Option(
        "--data",
        help="Target data: builtin:NAME (fashion-mnist, digits, wordnet-supersense), an image folder "
        "(one sub-folder per class), a .csv/.jsonl of texts or image paths (columns text or path, and "
        "label; others with --text-column, --path-column, --label-column), or a .npz of features. "
        "Only the training split is scored.",
    ),
]
ModelsOpt = Annotated[
    str,
    typer.Option(
        "--models",
        help="Checkpoints, separated by ',' or ';' (e.g. efficientnet-lite0,timm:resnet18,file:model.pt), "
        "or a file with one checkpoint per line (# comments; py: lines need --allow-code). "
        "NAME@LAYER picks an intermediate layer. Inside a spec's ?KEY=VALUE options a ',' belongs to the "
        "value (?mean=0.5,0.5,0.5) unless the text after it starts a new spec (PREFIX:, a built-in "
        "name or an existing path); ';' always separates, and a quoted spec (\"...\" or '...') is taken "
        "as it is.",
    ),
]
PerClassOpt = Annotated[
    int | None, typer.Option("--per-class", min=1, help="Use at most N training samples per class.")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the subsample and of stochastic measures.")]
CacheDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir", help="Feature cache folder (default: $CKPTRANK_CACHE, else the user cache folder)."
    ),
]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="Device for the checkpoints, e.g. cpu, cuda:0.")
]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Extraction batch size.")]
TrustOpt = Annotated[
    bool,
    typer.Option(
        "--trust-checkpoint",
        help="Allow checkpoint files that execute code when loaded (pickled .pt); only for files you trust.",
    ),
]

AllowCodeOpt = Annotated[
    bool,
    typer.Option(
        "--allow-code",
        help="Allow py: checkpoints read from a --models file (they run the Python code the file "
        "names); py: specs typed in --models itself are always allowed.",
    ),
]


LabelColumnOpt = Annotated[
    str | None,
    typer.Option(
        "--label-column",
        help="Column of a .csv/.jsonl --data holding the labels (default 'label'); same as "
        "appending ?label=COLUMN to --data.",
    ),
]
TextColumnOpt = Annotated[
    str | None,
    typer.Option(
        "--text-column",
        help="Column of a .csv/.jsonl --data holding the texts (default 'text'); same as ?text=COLUMN.",
    ),
]
PathColumnOpt = Annotated[
    str | None,
    typer.Option(
        "--path-column",
        help="Column of a .csv/.jsonl --data holding image paths (default 'path'; relative paths start "
        "at the file's folder); same as ?path=COLUMN.",
    ),
]
#: At most this many note lines unless ``--verbose``.
NOTE_LINES = 15

VerboseOpt = Annotated[
    bool,
    typer.Option(
        "--verbose",
        "-v",
        help="Print every note (by default repeated notes are grouped, with counts, and at most "
        f"{NOTE_LINES} lines are shown).",
    ),
]


def data_with_columns(
    data: str,
    *,
    label_column: str | None = None,
    text_column: str | None = None,
    path_column: str | None = None,
) -> str:
    """``--data`` with the column flags appended as spec options: ``texts.csv?text=review&label=stars``.

    Column names are percent-encoded, so names holding ``&``, ``=``, ``?`` or ``%`` survive.
    """
    given = [("label", label_column), ("text", text_column), ("path", path_column)]
    options = "&".join(f"{key}={quote(value, safe='')}" for key, value in given if value is not None)
    if not options:
        return data
    has_options = "?" in data and not Path(data).expanduser().exists()
    return f"{data}{'&' if has_options else '?'}{options}"


class OnUnreadable(enum.StrEnum):
    """Choices of ``--on-unreadable``."""

    error = "error"
    skip = "skip"


OnUnreadableOpt = Annotated[
    OnUnreadable,
    typer.Option(
        "--on-unreadable",
        case_sensitive=False,
        help="Missing or unreadable image files in --data: error (default) stops with their list, "
        "skip drops them with a note.",
    ),
]

OFFLINE_HELP = (
    "never touch the network: hub checkpoints load from the local cache only (also HF_HUB_OFFLINE=1)"
)


def set_offline(offline: bool) -> bool:
    """``--offline``: set ``HF_HUB_OFFLINE=1`` in this process, before any checkpoint loads."""
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    return offline


ExecutorOpt = Annotated[
    str,
    typer.Option(
        "--executor",
        help="What runs the per-checkpoint units: local (default) or ray (Ray tasks on a cluster; "
        "pip install 'ckptrank[ray]'; see docs/cluster.md).",
    ),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="Ray cluster for --executor ray: auto, HOST:6379 or ray://HOST:10001 (default $RAY_ADDRESS, "
        "else a local Ray instance).",
    ),
]
OfflineOpt = Annotated[
    bool, typer.Option("--offline", help=OFFLINE_HELP, callback=set_offline, is_eager=True)
]

#: Library keywords named in error messages, and the CLI flags that set them.
_CLI_FLAGS = {
    "on_unreadable='skip'": "--on-unreadable skip",
    "on_unreadable='fail'": "--on-unreadable error",
    "the spec option label=": "--label-column ",
    "the spec option text=": "--text-column ",
    "the spec option path=": "--path-column ",
    "resamples=": "--resamples ",
}


def on_unreadable_policy(value: OnUnreadable | str) -> Literal["fail", "skip"]:
    """The library's ``on_unreadable`` value for ``--on-unreadable`` (error -> "fail")."""
    return "skip" if OnUnreadable(value) is OnUnreadable.skip else "fail"


#: A numpy scalar's repr in a message (``np.int64(0)``, ``np.str_('cat')``): shown as its plain value.
_NUMPY_REPR = re.compile(r"\bnp\.(?:u?int\d*|float\d*|bool_?|str_|bytes_)\(((?:[^()]|\([^()]*\))*)\)")


def plain_message(message: str) -> str:
    """``message`` with library keywords as their CLI flags and numpy scalars as plain values."""
    for keyword, flag in _CLI_FLAGS.items():
        message = message.replace(keyword, flag)
    return _NUMPY_REPR.sub(r"\1", message)


@contextlib.contextmanager
def cli_flag_names() -> Iterator[None]:
    """Re-raise a ValueError that names a library keyword (``on_unreadable='skip'``) with its CLI flag.

    A numpy scalar in the message (``np.int64(0)``) is shown as its plain value (``0``).
    """
    try:
        yield
    except ValueError as err:
        message = str(err)
        renamed = plain_message(message)
        if renamed == message:
            raise
        raise ValueError(renamed) from err


FORMATS = ("human", "json", "csv", "quiet")

EXAMPLES = [
    "ckptrank rank --data builtin:fashion-mnist --per-class 40 "
    "--models efficientnet-lite0,efficientnet-lite2",
    "ckptrank rank --data ./photos --models models.txt --measures logme,sfda --out results/",
    "ckptrank rank --data texts.csv --models all-minilm-l6-v2,glove-6b-50d --format json",
    "ckptrank rank --data reviews.csv --text-column review --label-column stars "
    "--models all-minilm-l6-v2,glove-6b-50d",
    "ckptrank rank --data feats.npz --models a,b --option nleep.random_state=1 --format csv",
    "ckptrank rank --data builtin:digits --models efficientnet-lite0,efficientnet-lite1 "
    "--measures beff,probe_accuracy --epochs 5 --time-budget 60",
]


def epilog(examples: list[str], extra: str = "") -> str:
    """A typer epilog listing examples (kept as separate paragraphs so the help keeps the lines)."""
    text = "Examples:\n\n" + "\n\n".join(f"  {example}" for example in examples)
    return f"{text}\n\n{extra}" if extra else text


def check_format(value: str, allowed: tuple[str, ...] = FORMATS) -> str:
    """Validate ``--format`` with a one-line error."""
    value = value.strip().lower()
    if value not in allowed:
        raise ValueError(f"unknown --format {value!r}; choose one of {', '.join(allowed)}")
    return value


def _parse_value(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def add_budget_options(
    options: dict[str, dict[str, Any]],
    measures: str | None,
    *,
    epochs: int | None,
    time_budget: float | None,
) -> None:
    """Give every requested dynamic measure the ``--epochs`` / ``--time-budget`` training budget."""
    if epochs is None and time_budget is None:
        return
    from ckptrank import get_measure, list_measures

    requested = [m.strip() for m in (measures or "").split(",") if m.strip()]
    dynamic = [m for m in requested if m in list_measures(kind="dynamic")]
    if not dynamic:
        raise ValueError(
            "--epochs/--time-budget apply to dynamic measures only; request one with --measures "
            f"(dynamic measures: {', '.join(list_measures(kind='dynamic'))})"
        )
    for name in dynamic:
        get_measure(name)
        if epochs is not None:
            options.setdefault(name, {}).setdefault("epochs", epochs)
            options[name].setdefault("max_epochs", max(epochs, 50))
        if time_budget is not None:
            options.setdefault(name, {}).setdefault("time_budget", time_budget)


def parse_measure_options(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """``["nleep.random_state=1", "sfda.use_log=true"]`` -> ``{"nleep": {"random_state": 1}, ...}``."""
    options: dict[str, dict[str, Any]] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        measure, dot, option = key.strip().partition(".")
        if not sep or not dot or not measure or not option:
            raise ValueError(
                f"--option {item!r} must look like MEASURE.OPTION=VALUE, e.g. nleep.random_state=1"
            )
        options.setdefault(measure.lower(), {})[option] = _parse_value(value)
    return options


def progress_for(output_format: str, specs: Sequence[str] | None = None) -> bool | ProgressLines | None:
    """How extraction shows progress: bars in a terminal, one line per checkpoint in a log.

    Only in human mode (``False`` otherwise). ``None`` lets the engine draw its bars (stderr is a
    terminal); when stderr is a file, a pipe or a CI log, or bars are disabled by
    ``CKPTRANK_DISABLE_PROGRESS_BARS``, a :class:`~ckptrank.engine.progress.ProgressLines` that
    writes ``[i/n] SPEC: extracted N samples in S s`` to stderr (``i/n`` from ``specs``).
    """
    if output_format != "human":
        return False
    from ckptrank.engine.progress import ProgressLines, progress_enabled

    if progress_enabled():
        return None
    return ProgressLines(specs)


def model_specs(models: str, *, allow_code: bool) -> list[str] | None:
    """The checkpoint specs of ``--models`` in run order, for the progress lines (None if unreadable)."""
    from ckptrank.specs import parse_models

    try:
        return parse_models(models, allow_code=allow_code)
    except (ValueError, KeyError, OSError):
        return None  # rank() reports the problem itself


def group_notes(notes: Sequence[str], *, shown_owners: int = 3) -> list[str]:
    """Notes that differ only in the name before their first ``": "`` as one line with a count.

    ``["a: no head", "b: no head", "c: no head", "d: other"]`` ->
    ``["no head (3 times: a, b, c)", "d: other"]``; a note that is not repeated stays as it is.
    The groups keep the order of their first note.
    """
    groups: dict[str, list[str]] = {}
    for note in dict.fromkeys(str(n) for n in notes):
        owner, sep, text = note.partition(": ")
        key = text if sep and owner.strip() and text.strip() else note
        groups.setdefault(key, []).append(owner if key == text else note)
    lines = []
    for text, owners in groups.items():
        if len(owners) == 1:
            lines.append(owners[0] if owners[0] == text else f"{owners[0]}: {text}")
            continue
        named = ", ".join(owners[:shown_owners])
        more = f" and {len(owners) - shown_owners} more" if len(owners) > shown_owners else ""
        lines.append(f"{text} ({len(owners)} times: {named}{more})")
    return lines


def print_notes(notes: Sequence[str], *, verbose: bool = False) -> None:
    """Notes to stderr (after what is already on stdout): repeats grouped, at most :data:`NOTE_LINES` lines.

    With ``verbose`` every note is printed as it is.
    """
    sys.stdout.flush()
    lines = [str(n) for n in notes] if verbose else group_notes(notes)
    if not verbose and len(lines) > NOTE_LINES:
        hidden = len(lines) - (NOTE_LINES - 1)
        lines = [*lines[: NOTE_LINES - 1], f"{hidden} more notes not shown; --verbose prints every note"]
    width = terminal_width(sys.stderr)
    for line in lines:
        text = f"note: {line}"
        if width is not None:  # a terminal: wrap at its width, continuation lines indented
            text = textwrap.fill(
                text, width, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False
            )
        typer.echo(text, err=True)


def terminal_width(stream: Any) -> int | None:
    """Columns of the terminal ``stream`` writes to; None for a log or a pipe.

    ``$COLUMNS``, when set, is taken as that width whatever the stream, as for the tables (a user
    who sets it asks for that width). Notes are wrapped at this width and kept one per line in a
    log (easy to grep).
    """
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    isatty = getattr(stream, "isatty", None)
    if callable(isatty) and isatty():
        import shutil

        return shutil.get_terminal_size().columns
    return None


def check_out_writable(out: Path, flag: str = "--out") -> None:
    """Refuse an output folder that cannot be created or written, before any computation.

    Writes (and removes) a probe file in ``out``, or in its nearest existing parent folder when
    ``out`` does not exist yet.

    Raises
    ------
    ValueError
        A parent of ``out`` is a file, or the folder cannot be written (permissions, read-only
        file system).
    """
    path = Path(out).expanduser()
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{flag} {str(out)!r} cannot be created: {existing} is a file, not a folder")
    try:
        handle, probe = tempfile.mkstemp(prefix=".ckptrank-write-test-", dir=existing)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        where = "" if existing == path else f" (its parent {existing} exists)"
        raise ValueError(
            f"{flag} {str(out)!r} is not writable{where}: {reason}; choose a folder you can write to"
        ) from None
    os.close(handle)
    os.unlink(probe)


# --- tables -------------------------------------------------------------------------------------------------

#: Width of the tables on stdout when it is not a terminal (a log, a file, a pipe) and $COLUMNS is unset.
LOG_WIDTH = 140


def table_console() -> Console:
    """The console tables are printed on: the terminal's width (or ``$COLUMNS``), else :data:`LOG_WIDTH`."""
    from rich.console import Console

    console = Console(soft_wrap=False)
    if console.is_terminal or os.environ.get("COLUMNS", "").strip().isdigit():
        return console
    return Console(soft_wrap=False, width=LOG_WIDTH)


def needed_width(console: Console, table: Table) -> int:
    """Columns ``table`` needs with its wrapping columns (those with a ``min_width``) at that width."""
    from rich.measure import Measurement

    squeezable = [c for c in table.columns if not c.no_wrap and c.min_width is not None]
    saved = [c.max_width for c in squeezable]
    try:
        for column in squeezable:
            column.max_width = column.min_width
        return Measurement.get(console, console.options.update(max_width=100_000), table).maximum
    finally:
        for column, width in zip(squeezable, saved, strict=True):
            column.max_width = width


def fit_table(
    build: Callable[[frozenset[str]], Table], steps: Sequence[str], console: Console
) -> tuple[Table, list[str], bool]:
    """``build(dropped)`` with as few of ``steps`` (in order) dropped as make it fit ``console``.

    Returns the table, the steps that narrowed it (a step that changes nothing, such as a
    column the table does not have, is not listed) and whether it fits; when even every step
    leaves it too wide, the table of every step (rich then narrows its columns and crops what
    still does not fit).
    """
    taken: list[str] = []
    narrowing: list[str] = []
    table = build(frozenset())
    width = needed_width(console, table)
    for step in steps:
        if width <= console.width:
            break
        taken.append(step)
        table = build(frozenset(taken))
        narrower = needed_width(console, table)
        if narrower < width:
            narrowing.append(step)
        width = narrower
    release_min_widths(table)
    return table, narrowing, width <= console.width


def release_min_widths(table: Table) -> Table:
    """Clear the ``min_width`` of wrapping columns (used only by :func:`needed_width`) before printing.

    rich narrows a too-wide table below those widths and then widens the columns back to them,
    which makes the table overflow the console.
    """
    for column in table.columns:
        if not column.no_wrap:
            column.min_width = None
    return table


def table_style(dropped: Sequence[str] | frozenset[str]) -> dict[str, Any]:
    """Table keywords: rich's default boxes, or (step ``"compact"``) no edges and no column rules."""
    if "compact" not in dropped:
        return {}
    from rich import box

    return {"box": box.SIMPLE_HEAD, "show_edge": False, "pad_edge": False}


def not_shown(dropped: Sequence[str], labels: dict[str, str], width: int, fits: bool = True) -> str:
    """The caption sentence saying which columns were left out to fit ``width`` (empty when none were)."""
    gone = [labels[step] for step in dropped if step in labels]
    text = ""
    if gone:
        text = (
            f" Left out to fit {width} columns: {', '.join(gone)} (a wider terminal, "
            "--format csv or --format json shows them)."
        )
    if not fits:
        text += f" Still wider than {width} columns: some cells are cut; --format csv shows every value."
    return text


def _fmt_score(value: Any) -> str:
    if _is_missing(value):
        return "—"
    return f"{float(value):.4g}"


def _fmt_params(value: Any) -> str:
    if _is_missing(value):
        return "—"
    n = float(value)
    for scale, suffix, digits in ((1e9, "B", 2), (1e6, "M", 2), (1e3, "k", 1)):
        if n >= scale:
            return f"{n / scale:.{digits}f}{suffix}"
    return f"{int(n)}"


def _na() -> Any:
    import pandas as pd

    return pd.NA


def _is_missing(value: Any) -> bool:
    if value is None or value is _na():
        return True
    try:
        return isinstance(value, float) and not math.isfinite(value)
    except TypeError:
        return True


def _uses_ranker_row(row: dict[str, Any]) -> bool:
    return not _is_missing(row.get("p_best"))


def uses_default_ranker(frame: pd.DataFrame) -> bool:
    """Whether the default ranker (with its p_best) made the ranking's rank column."""
    return "p_best" in frame.columns and bool(frame["p_best"].notna().any())


def decision_line(frame: pd.DataFrame) -> str | None:
    """``"Fine-tune these 3: a, b, c (...)"`` from the shortlist, or None without the default ranker."""
    if not uses_default_ranker(frame):
        return None
    chosen = frame[frame["shortlist"].astype(bool)]
    if chosen.empty:
        return None
    total = float(chosen["p_best"].sum())
    names = ", ".join(str(c) for c in chosen["checkpoint"])
    resamples = int((frame.attrs.get("config") or {}).get("resamples") or 0)
    source = "the default ranker's held-out error"
    if resamples:
        source += f" and {resamples} resamples of the target set"
    return (
        f"Fine-tune {'this' if len(chosen) == 1 else f'these {len(chosen)}'}: {names} "
        f"(probability {total:.0%} that the best is {'this one' if len(chosen) == 1 else 'among them'}, "
        f"from {source})."
    )


def _row_cells(row: dict[str, Any], names: list[str], *, baseline_ranks: bool = True) -> list[str]:
    """Plain-text cells of one ranking row (no markup)."""
    if row.get("status", "ok") != "ok":
        cells = ["—", f"{row['checkpoint']} ({row.get('status')})"] + ["—"] * (len(names) + 2)
    else:
        cells = ["—" if _is_missing(row["rank"]) else str(int(row["rank"])), str(row["checkpoint"])]
        cells += [_fmt_score(row[name]) for name in names]
        if _uses_ranker_row(row):
            star = " ★" if row.get("shortlist") else ""
            cells.append(f"{100 * row['p_best']:.0f}%{star}")
        else:
            cells.append("—" if _is_missing(row["consensus_rank"]) else f"{row['consensus_rank']:.2f}")
        cells.append("—" if _is_missing(row["seconds"]) else f"{row['seconds']:.1f}")
    params = _fmt_params(row["num_parameters"])
    if baseline_ranks and params != "—" and not _is_missing(row.get("num_parameters_rank")):
        params += f" #{row['num_parameters_rank']:g}"
    accuracy = "—" if _is_missing(row["source_accuracy"]) else f"{100 * row['source_accuracy']:.1f}%"
    if baseline_ranks and accuracy != "—" and not _is_missing(row.get("source_accuracy_rank")):
        accuracy += f" #{row['source_accuracy_rank']:g}"
    return [*cells, params, accuracy]


#: What ``rank``'s table gives up, in this order, to fit the width: rules and edges, then the
#: least useful columns; then, last measure first, score columns (rank, checkpoint and consensus stay).
RANK_STEPS = ("compact", "time s", "#n", "src acc", "params")
#: Long checkpoint names fold over lines down to this width before columns are left out.
_NAME_MIN_WIDTH = 20
_RANK_LABELS = {
    "time s": "time s",
    "#n": "the baselines' implied ranks (#n)",
    "src acc": "src acc",
    "params": "params",
}


def _rank_table(frame: pd.DataFrame, title: str, dropped: frozenset[str]) -> Table:
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    names = list(frame.attrs.get("measures", []))
    consensus_measures = list(frame.attrs.get("consensus_measures", names))
    records = frame.to_dict(orient="records")
    rows = [_row_cells(row, names, baseline_ranks="#n" not in dropped) for row in records]
    ranker = uses_default_ranker(frame)
    middle = "p(best)" if ranker else "consensus"
    headers = ["rank", "checkpoint", *names, middle, "time s", "params", "src acc"]
    keep = [header not in dropped or header in ("rank", "checkpoint", middle) for header in headers]
    if ranker:
        caption = (
            "Scores: higher = predicted more transferable, each measure on its own scale. "
            f"rank = {frame.attrs.get('ranker', 'the default ranker')}. p(best) = probability that it "
            "fine-tunes best; ★ = the shortlist holding the best with 90% probability."
        )
    else:
        caption = (
            "Scores: higher = predicted more transferable, each measure on its own scale. "
            f"consensus = mean of the per-measure ranks ({', '.join(consensus_measures)}; 1 = best)."
        )
    baselines = [h for h in ("params", "src acc") if h not in dropped]
    if baselines:
        verb = "are target-blind baselines" if len(baselines) > 1 else "is a target-blind baseline"
        caption += f" {' and '.join(baselines)} {verb}"
        caption += " (#n = the rank they imply)." if "#n" not in dropped else "."
    table = Table(title=escape(title), caption=caption, caption_justify="left", **table_style(dropped))
    for i, header in enumerate(headers):
        if not keep[i]:
            continue
        widest = max([len(header), *(len(cells[i]) for cells in rows)])
        if header == "checkpoint":
            table.add_column(header, overflow="fold", min_width=min(widest, _NAME_MIN_WIDTH))
        else:
            table.add_column(header, justify="right", no_wrap=True, min_width=widest)
    for cells in rows:
        shown = [cell for cell, kept in zip(cells, keep, strict=True) if kept]
        table.add_row(*(Text(cell, style="red" if cell.endswith("(failed)") else "") for cell in shown))
    return table


def render_table(frame: pd.DataFrame, *, title: str | None = None, console: Console | None = None) -> None:
    """Print the ranking as a rich table on stdout, fitted to the terminal (or :data:`LOG_WIDTH` in a log).

    To fit, the table drops its rules, then the columns of :data:`RANK_STEPS` (saying so in its
    caption), and folds long checkpoint names.
    """
    dataset = frame.attrs.get("dataset") or {}
    if title is None:
        title = (
            f"ckptrank: {len(frame)} checkpoints on {dataset.get('name', 'the target data')} "
            f"({dataset.get('n_samples', '?')} samples, {dataset.get('n_classes', '?')} classes)"
        )
    console = console or table_console()
    names = [str(name) for name in frame.attrs.get("measures", [])]
    steps = (*RANK_STEPS, *reversed(names))
    table, dropped, fits = fit_table(lambda d: _rank_table(frame, title, d), steps, console)
    labels = {**_RANK_LABELS, **{name: f"scores of {name}" for name in names}}
    table.caption = f"{table.caption}{not_shown(dropped, labels, console.width, fits)}"
    if fits:
        _widen_names(table, frame, console)
    console.print(table)


def _widen_names(table: Table, frame: pd.DataFrame, console: Console) -> None:
    """Give the checkpoint column all the width the other columns leave (fewer names folded)."""
    column = next(c for c in table.columns if c.header == "checkpoint")
    widest = max([len("checkpoint"), *(len(str(name)) + 9 for name in frame["checkpoint"])])  # "(failed)"
    column.min_width = _NAME_MIN_WIDTH
    spare = console.width - needed_width(console, table)
    column.min_width = None
    if spare > 0:
        column.width = min(widest, _NAME_MIN_WIDTH + spare)


def emit(frame: pd.DataFrame, output_format: str, *, verbose: bool = False) -> None:
    """Print a ranking in the chosen format (stdout), with notes on stderr in human/csv mode."""
    from ckptrank.ranking_output import csv_frame, ranking_records

    if output_format == "json":
        typer.echo(json.dumps(ranking_records(frame), indent=2))
        return
    if output_format == "csv":
        typer.echo(csv_frame(frame).to_csv(index=False), nl=False)
        print_notes(list(frame.attrs.get("notes", [])), verbose=verbose)
        return
    if output_format == "quiet":
        for row in frame.to_dict(orient="records"):
            if row["status"] == "ok":
                typer.echo(row["checkpoint"])
        return
    render_table(frame)
    decision = decision_line(frame)
    if decision:
        width = terminal_width(sys.stdout)
        if width is not None:  # wrapped at the terminal's width, never inside a checkpoint's name
            decision = textwrap.fill(decision, width, break_long_words=False, break_on_hyphens=False)
        typer.echo(decision)  # in a log: one line with whole names (scripts read it)
    notes = [n for n in frame.attrs.get("notes", []) if not n.startswith("rank: default ranker")]
    print_notes(notes, verbose=verbose)


def rank_command(
    data: DataOpt,
    models: ModelsOpt,
    label_column: LabelColumnOpt = None,
    text_column: TextColumnOpt = None,
    path_column: PathColumnOpt = None,
    measures: Annotated[
        str | None,
        typer.Option(
            "--measures",
            help="Comma-separated measures (see `ckptrank measures`), or 'all' for every static measure; "
            "their consensus (mean rank) orders the checkpoints. Default: the default ranker over "
            "logme,hscore,leep,nce,nleep,gbc and the parameter count, with p(best) and a shortlist. "
            "Measures needing a classification head are skipped, with a note, for checkpoints without one.",
        ),
    ] = None,
    resamples: Annotated[
        int | None,
        typer.Option(
            "--resamples",
            min=0,
            help="Resamples (80% subsamples, at most 2,000 samples) of the target set behind p(best) and "
            "the shortlist (default 5 with the default ranker; 0 = the ranker's held-out error alone, "
            "faster).",
        ),
    ] = None,
    per_class: PerClassOpt = None,
    seed: SeedOpt = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write ranking.csv, ranking.json, config.json and scores.png to this folder."
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Allow --out to name a non-empty folder.")
    ] = False,
    output_format: Annotated[str, typer.Option("--format", help="human, json, csv or quiet.")] = "human",
    cache_dir: CacheDirOpt = None,
    device: DeviceOpt = None,
    batch_size: BatchSizeOpt = 64,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option", help="Measure option MEASURE.OPTION=VALUE (repeatable), e.g. nleep.random_state=1."
        ),
    ] = None,
    trust_checkpoint: TrustOpt = False,
    allow_code: AllowCodeOpt = False,
    on_unreadable: OnUnreadableOpt = OnUnreadable.error,
    offline: OfflineOpt = False,
    epochs: Annotated[
        int | None,
        typer.Option(
            "--epochs",
            min=1,
            help="Training budget of dynamic measures (beff, probe_accuracy): early epochs run.",
        ),
    ] = None,
    time_budget: Annotated[
        float | None,
        typer.Option(
            "--time-budget", min=0.0, help="Seconds of training per checkpoint for dynamic measures."
        ),
    ] = None,
    verbose: VerboseOpt = False,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
) -> None:
    """Rank checkpoints for your target task by transferability measures.

    Every checkpoint runs once over the target training data (features are cached), each measure
    scores it, and the default ranker (the measures and the size weighted by their agreement on
    your data; held-out figures in its caption) orders them, with each one's probability of being
    the best and the shortlist to fine-tune; with --measures, the consensus (mean rank) of those
    measures orders them. A checkpoint that fails to load is reported and the others are still
    ranked; the exit code is 0 unless every checkpoint failed.
    """

    def run() -> None:
        from ckptrank.ranking import rank
        from ckptrank.ranking_output import check_output_dir, save_ranking

        fmt = check_format(output_format)
        options = parse_measure_options(option)
        add_budget_options(options, measures, epochs=epochs, time_budget=time_budget)
        if out is not None:  # refuse before spending minutes on extraction
            check_output_dir(out, overwrite=overwrite)
            check_out_writable(out)
        spec = data_with_columns(
            data, label_column=label_column, text_column=text_column, path_column=path_column
        )
        specs = model_specs(models, allow_code=allow_code or trust_checkpoint) if fmt == "human" else None
        from ckptrank.executors import get_executor

        runner = get_executor(executor, address=ray_address)
        with cli_flag_names(), contextlib.closing(runner):
            frame = rank(
                spec,
                models,
                measures=measures,
                per_class=per_class,
                seed=seed,
                cache_dir=cache_dir,
                device=device,
                batch_size=batch_size,
                measure_options=options,
                progress=progress_for(fmt, specs),
                trust_checkpoint=trust_checkpoint,
                on_error="raise" if debug_enabled() else "record",
                allow_code=allow_code,
                on_unreadable=on_unreadable_policy(on_unreadable),
                executor=runner,
                resamples=resamples,
            )
        emit(frame, fmt, verbose=verbose)
        if out is not None:
            written = save_ranking(frame, out, overwrite=overwrite)
            if fmt in ("human", "csv"):
                typer.echo(f"wrote {', '.join(p.name for p in written.values())} to {out}", err=True)
            if "plot" not in written:
                print_notes(["scores.png not drawn: matplotlib is missing (pip install 'ckptrank[report]')"])

    run_with_error_mapping(run)


def register(app: typer.Typer) -> None:
    """Attach ``ckptrank rank`` to the app."""
    app.command(
        "rank",
        epilog=epilog(
            EXAMPLES,
            "Exit code: 0 when at least one checkpoint was ranked (failed ones are listed with their "
            "reason), 1 on an error.",
        ),
    )(rank_command)
