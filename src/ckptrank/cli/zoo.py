"""``ckptrank zoo``: build, list and inspect the self-trained checkpoint zoo."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .rank import table_console

__all__ = ["register"]

_FORMATS = ("human", "json", "quiet")

_BUILD_EXAMPLES = """Examples:

  ckptrank zoo build                      (train every missing checkpoint into the committed folder)

  ckptrank zoo build --only cnn-fm04 --force

  ckptrank zoo build --out /tmp/zoo --epochs 1 --max-samples 500   (a quick, tiny zoo)
"""

_LS_EXAMPLES = """Examples:

  ckptrank zoo ls

  ckptrank zoo ls --dir /tmp/zoo --format json
"""

_CARD_EXAMPLES = """Examples:

  ckptrank zoo card cnn-fm04-e3
"""

FormatOpt = Annotated[str, typer.Option("--format", help="human, json or quiet.")]
DirOpt = Annotated[Path | None, typer.Option("--dir", help="Zoo folder (default: the committed one).")]


def _check_format(output_format: str) -> str:
    if output_format not in _FORMATS:
        raise ValueError(f"--format must be one of {', '.join(_FORMATS)}, not {output_format!r}")
    return output_format


def build_command(
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Build only this run (repeatable); default: every run.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: the committed zoo).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild runs whose files already exist.")] = False,
    epochs: Annotated[
        int | None, typer.Option("--epochs", min=1, help="Override every run's epochs.")
    ] = None,
    max_samples: Annotated[
        int | None, typer.Option("--max-samples", min=10, help="Train on at most this many source samples.")
    ] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="torch CPU threads.")] = None,
    output_format: FormatOpt = "human",
) -> None:
    """Pre-train the zoo's checkpoints on real source data (safetensors + JSON card each)."""
    from ckptrank.zoo import CHECKPOINT_DIR, build_zoo

    _check_format(output_format)
    t0 = time.perf_counter()

    def log(message: str) -> None:
        if output_format == "human":
            typer.echo(f"[{time.perf_counter() - t0:7.1f} s] {message}", err=True)

    folder = out or CHECKPOINT_DIR
    done = build_zoo(
        only, folder, force=force, epochs=epochs, max_samples=max_samples, threads=threads, log=log
    )
    if output_format == "json":
        typer.echo(json.dumps({k: [str(p) for p in v] for k, v in done.items()}, indent=2))
    elif output_format == "human":
        for name, paths in done.items():
            state = "skipped (exists; --force rebuilds)" if not paths else ", ".join(p.name for p in paths)
            typer.echo(f"{name}: {state}")
        typer.echo(
            f"zoo in {folder} ({time.perf_counter() - t0:.0f} s); "
            f"command: ckptrank {shlex.join(sys.argv[1:])}"
        )


def ls_command(directory: DirOpt = None, output_format: FormatOpt = "human") -> None:
    """List the zoo's checkpoints with their source task, stage and source accuracy."""
    from ckptrank.zoo import ARCH_RANDOM, CHECKPOINT_DIR, ZOO

    _check_format(output_format)
    folder = directory or CHECKPOINT_DIR
    rows = []
    for entry in ZOO.values():
        for name in entry.outputs:
            card_file = folder / f"{name}.json"
            card = json.loads(card_file.read_text()) if card_file.is_file() else None
            rows.append(
                {
                    "name": name,
                    "architecture": entry.arch,
                    "source_task": entry.source_task,
                    "stage": card.get("stage") if card else "not built",
                    "source_accuracy": card.get("source_accuracy") if card else None,
                    "num_parameters": card.get("num_parameters") if card else None,
                    "spec": f"zoo:{name}",
                }
            )
    for name, description in ARCH_RANDOM.items():
        rows.append(
            {
                "name": name,
                "architecture": description.split(",")[0],
                "source_task": None,
                "stage": "random-init (built on the fly)",
                "source_accuracy": None,
                "num_parameters": None,
                "spec": f"zoo:{name}",
            }
        )
    if output_format == "json":
        typer.echo(json.dumps(rows, indent=2))
        return
    if output_format == "quiet":
        typer.echo("\n".join(r["spec"] for r in rows))
        return
    table = Table(title=f"ckptrank zoo ({folder})")
    for column in ("spec", "architecture", "source task", "stage", "source acc. %", "params"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["spec"],
            r["architecture"],
            r["source_task"] or "-",
            r["stage"],
            "-" if r["source_accuracy"] is None else f"{r['source_accuracy']:.2f}",
            "-" if r["num_parameters"] is None else f"{r['num_parameters']:,}",
        )
    table_console().print(table)


def card_command(
    name: Annotated[str, typer.Argument(help="Zoo checkpoint name, e.g. cnn-fm04.")],
    directory: DirOpt = None,
) -> None:
    """Print the JSON card of a saved zoo checkpoint."""
    from ckptrank.zoo import read_card

    typer.echo(json.dumps(read_card(name, directory), indent=2, sort_keys=True))


def register(app: typer.Typer) -> None:
    """Attach the ``zoo`` command group to the root app."""
    group = typer.Typer(
        name="zoo",
        help="Build and inspect the self-trained checkpoint zoo (zoo:NAME checkpoints).",
        no_args_is_help=True,
        add_completion=False,
    )
    group.command("build", epilog=_BUILD_EXAMPLES)(build_command)
    group.command("ls", epilog=_LS_EXAMPLES)(ls_command)
    group.command("card", epilog=_CARD_EXAMPLES)(card_command)
    app.add_typer(group, name="zoo")
