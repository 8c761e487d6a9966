"""``ckptrank demo``: rank built-in real checkpoints on a built-in real task, offline, and explain."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ._errors import run_with_error_mapping
from .rank import (
    OfflineOpt,
    VerboseOpt,
    check_out_writable,
    epilog,
    print_notes,
    progress_for,
    render_table,
    table_console,
)

__all__ = ["register"]

EXAMPLES = ["ckptrank demo", "ckptrank demo --out demo-results/", "ckptrank demo --task text"]


def demo_command(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Also write ranking.csv, ranking.json, config.json and scores.png here."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Allow --out to name a non-empty folder.")
    ] = False,
    task: Annotated[
        str, typer.Option("--task", help="image (EfficientNet-Lite on Fashion-MNIST) or text (WordNet).")
    ] = "image",
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Also train a linear probe on the same training samples and test it on held-out test "
            "samples, a cheap stand-in for fine-tuning, to see how well the ranking predicted it "
            "(about doubles the time).",
        ),
    ] = False,
    per_class: Annotated[int | None, typer.Option("--per-class", min=1, hidden=True)] = None,
    check_per_class: Annotated[int, typer.Option("--check-per-class", min=1, hidden=True)] = 30,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir", hidden=True)] = None,
    offline: OfflineOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Rank real pre-trained checkpoints on a real built-in task (offline, a few minutes on a CPU).

    Prints what it does, the ranking, and how to read it.
    """

    def run() -> None:
        from ckptrank.demo import DEMO_TASKS, explain, introduction, run_demo
        from ckptrank.ranking_output import check_output_dir, save_ranking

        if task not in DEMO_TASKS:
            raise ValueError(f"unknown demo task {task!r}; choose one of {', '.join(DEMO_TASKS)}")
        if out is not None:
            check_output_dir(out, overwrite=overwrite)
            check_out_writable(out)
        typer.echo(introduction(task, per_class, check=check))
        typer.echo("")
        result = run_demo(
            task,
            per_class=per_class,
            cache_dir=cache_dir,
            check=check,
            check_per_class=check_per_class,
            progress=progress_for("human", list(DEMO_TASKS[task].models)),
        )
        render_table(result.frame)
        typer.echo("")
        typer.echo(explain(result))
        if result.check is not None:
            typer.echo("")
            _render_check(result.check, result.check_seconds)
        notes = list(result.frame.attrs.get("notes", []))
        if notes:
            typer.echo("")
        print_notes(notes, verbose=verbose)
        if out is not None:
            written = save_ranking(result.frame, out, overwrite=overwrite)
            typer.echo(f"wrote {', '.join(p.name for p in written.values())} to {out}")
            if "plot" not in written:
                print_notes(["scores.png not drawn: matplotlib is missing (pip install 'ckptrank[report]')"])

    run_with_error_mapping(run)


def _render_check(check: Any, seconds: float) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title=f"Reality check: linear probe trained on the {check.attrs['n_train']} training samples, "
        f"tested on {check.attrs['n_test']} held-out test samples",
        caption_justify="left",
        caption=f"Kendall tau between the predicted order and the probe accuracies: "
        f"{_fmt_tau(check.attrs.get('kendall_tau'))} (1 = same order, 0 = unrelated). A linear probe is a "
        f"stand-in for fine-tuning, not the real thing. Took {seconds:.0f} s.",
    )
    for column in ("rank", "checkpoint", "probe accuracy", "probe rank"):
        if column == "checkpoint":
            table.add_column(column, overflow="fold")
        else:
            table.add_column(column, justify="right", no_wrap=True)
    for row in check.itertuples():
        table.add_row(
            str(row.rank), escape(row.checkpoint), f"{row.probe_accuracy:.3f}", f"{row.probe_rank:g}"
        )
    table_console().print(table)


def _fmt_tau(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def register(app: typer.Typer) -> None:
    """Attach ``ckptrank demo`` to the app."""
    app.command("demo", epilog=epilog(EXAMPLES))(demo_command)
