"""``ckptrank rank``: rank checkpoints for a target task (a thin layer over :func:`ckptrank.rank`)."""

from __future__ import annotations

import contextlib
import enum
import json
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from ._errors import debug_enabled, run_with_error_mapping

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "OFFLINE_HELP",
    "AllowCodeOpt",
    "BatchSizeOpt",
    "CacheDirOpt",
    "DataOpt",
    "DeviceOpt",
    "ModelsOpt",
    "OfflineOpt",
    "OnUnreadable",
    "OnUnreadableOpt",
    "PerClassOpt",
    "SeedOpt",
    "TrustOpt",
    "add_budget_options",
    "cli_flag_names",
    "epilog",
    "on_unreadable_policy",
    "parse_measure_options",
    "print_notes",
    "register",
    "set_offline",
]

# Shared option aliases (also used by ``ckptrank ensemble`` and ``ckptrank demo``).
DataOpt = Annotated[
    str,
    typer.Option(
        "--data",
        help="Target data: builtin:NAME (fashion-mnist, digits, wordnet-supersense), an image folder "
        "(one sub-folder per class), a CSV of texts, or a .npz of features. "
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


OfflineOpt = Annotated[
    bool, typer.Option("--offline", help=OFFLINE_HELP, callback=set_offline, is_eager=True)
]

#: Library keywords named in error messages, and the CLI flags that set them.
_CLI_FLAGS = {
    "on_unreadable='skip'": "--on-unreadable skip",
    "on_unreadable='fail'": "--on-unreadable error",
}


def on_unreadable_policy(value: OnUnreadable | str) -> Literal["fail", "skip"]:
    """The library's ``on_unreadable`` value for ``--on-unreadable`` (error -> "fail")."""
    return "skip" if OnUnreadable(value) is OnUnreadable.skip else "fail"


@contextlib.contextmanager
def cli_flag_names() -> Iterator[None]:
    """Re-raise a ValueError that names a library keyword (``on_unreadable='skip'``) with its CLI flag."""
    try:
        yield
    except ValueError as err:
        message = str(err)
        renamed = message
        for keyword, flag in _CLI_FLAGS.items():
            renamed = renamed.replace(keyword, flag)
        if renamed == message:
            raise
        raise ValueError(renamed) from err


FORMATS = ("human", "json", "csv", "quiet")

EXAMPLES = [
    "ckptrank rank --data builtin:fashion-mnist --per-class 40 "
    "--models efficientnet-lite0,efficientnet-lite2",
    "ckptrank rank --data ./photos --models models.txt --measures logme,sfda --out results/",
    "ckptrank rank --data texts.csv --models all-minilm-l6-v2,glove-6b-50d --format json",
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


def progress_for(output_format: str) -> bool | None:
    """Progress bars only in human mode (None lets the engine decide, honouring the env var)."""
    return None if output_format == "human" else False


def print_notes(notes: list[str]) -> None:
    """Notes to stderr, one per line (after what is already on stdout)."""
    sys.stdout.flush()
    for note in notes:
        typer.echo(f"note: {note}", err=True)


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


def _row_cells(row: dict[str, Any], names: list[str]) -> list[str]:
    """Plain-text cells of one ranking row (no markup)."""
    if row.get("status", "ok") != "ok":
        cells = ["—", f"{row['checkpoint']} ({row.get('status')})"] + ["—"] * (len(names) + 2)
    else:
        cells = ["—" if _is_missing(row["rank"]) else str(int(row["rank"])), str(row["checkpoint"])]
        cells += [_fmt_score(row[name]) for name in names]
        cells.append("—" if _is_missing(row["consensus_rank"]) else f"{row['consensus_rank']:.2f}")
        cells.append("—" if _is_missing(row["seconds"]) else f"{row['seconds']:.1f}")
    params = _fmt_params(row["num_parameters"])
    if params != "—" and not _is_missing(row.get("num_parameters_rank")):
        params += f" #{row['num_parameters_rank']:g}"
    accuracy = "—" if _is_missing(row["source_accuracy"]) else f"{100 * row['source_accuracy']:.1f}%"
    if accuracy != "—" and not _is_missing(row.get("source_accuracy_rank")):
        accuracy += f" #{row['source_accuracy_rank']:g}"
    return [*cells, params, accuracy]


def render_table(frame: pd.DataFrame, *, title: str | None = None) -> None:
    """Print the ranking as a rich table on stdout (at its natural width when not a terminal)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.measure import Measurement
    from rich.table import Table
    from rich.text import Text

    names = list(frame.attrs.get("measures", []))
    consensus_measures = list(frame.attrs.get("consensus_measures", names))
    dataset = frame.attrs.get("dataset") or {}
    if title is None:
        title = (
            f"ckptrank: {len(frame)} checkpoints on {dataset.get('name', 'the target data')} "
            f"({dataset.get('n_samples', '?')} samples, {dataset.get('n_classes', '?')} classes)"
        )
    rows = [_row_cells(row, names) for row in frame.to_dict(orient="records")]
    headers = ["rank", "checkpoint", *names, "consensus", "time s", "params", "src acc"]
    table = Table(
        title=escape(title),
        caption=(
            "Scores: higher = predicted more transferable, each measure on its own scale. "
            f"consensus = mean of the per-measure ranks ({', '.join(consensus_measures)}; 1 = best). "
            "params and src acc are target-blind baselines (#n = the rank they imply)."
        ),
        caption_justify="left",
    )
    for i, header in enumerate(headers):
        widest = max([len(header), *(len(cells[i]) for cells in rows)])
        if header == "checkpoint":
            table.add_column(header, overflow="fold", min_width=min(widest, 28))
        else:
            table.add_column(header, justify="right", no_wrap=True, min_width=widest)
    for cells in rows:
        table.add_row(*(Text(cell, style="red" if cell.endswith("(failed)") else "") for cell in cells))
    console = Console(soft_wrap=False)
    natural = Measurement.get(console, console.options.update(max_width=1000), table).maximum
    if natural > console.width or not console.is_terminal:
        # Never squeeze columns away: print at the table's natural width (a narrow terminal wraps lines).
        console = Console(soft_wrap=False, width=max(80, min(natural, 240)))
    console.print(table)


def emit(frame: pd.DataFrame, output_format: str) -> None:
    """Print a ranking in the chosen format (stdout), with notes on stderr in human/csv mode."""
    from ckptrank.ranking import csv_frame, ranking_records

    if output_format == "json":
        typer.echo(json.dumps(ranking_records(frame), indent=2))
        return
    if output_format == "csv":
        typer.echo(csv_frame(frame).to_csv(index=False), nl=False)
        print_notes(list(frame.attrs.get("notes", [])))
        return
    if output_format == "quiet":
        for row in frame.to_dict(orient="records"):
            if row["status"] == "ok":
                typer.echo(row["checkpoint"])
        return
    render_table(frame)
    print_notes(list(frame.attrs.get("notes", [])))


def rank_command(
    data: DataOpt,
    models: ModelsOpt,
    measures: Annotated[
        str | None,
        typer.Option(
            "--measures",
            help="Comma-separated measures (see `ckptrank measures`), or 'all' for every static measure "
            "(default: logme,sfda,reg_hscore,nleep,leep). Measures needing a classification head are "
            "skipped, with a note, for checkpoints without one.",
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
) -> None:
    """Rank checkpoints for your target task by transferability measures.

    Every checkpoint runs once over the target training data (features are cached), each measure
    scores it, and the table lists the checkpoints by consensus rank (mean of the per-measure ranks).
    A checkpoint that fails to load is reported and the others are still ranked; the exit code is 0
    unless every checkpoint failed.
    """

    def run() -> None:
        from ckptrank.ranking import check_output_dir, rank, save_ranking

        fmt = check_format(output_format)
        options = parse_measure_options(option)
        add_budget_options(options, measures, epochs=epochs, time_budget=time_budget)
        if out is not None:
            check_output_dir(out, overwrite=overwrite)  # refuse before spending minutes on extraction
        with cli_flag_names():
            frame = rank(
                data,
                models,
                measures=measures,
                per_class=per_class,
                seed=seed,
                cache_dir=cache_dir,
                device=device,
                batch_size=batch_size,
                measure_options=options,
                progress=progress_for(fmt),
                trust_checkpoint=trust_checkpoint,
                on_error="raise" if debug_enabled() else "record",
                allow_code=allow_code,
                on_unreadable=on_unreadable_policy(on_unreadable),
            )
        emit(frame, fmt)
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
