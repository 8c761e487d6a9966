"""The ``ckptrank`` command."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from ._errors import run_with_error_mapping
from .rank import OfflineOpt, table_console

app = typer.Typer(
    name="ckptrank",
    help="Rank pre-trained checkpoints for your target task, and benchmark the ranking measures.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from ckptrank import __version__

        typer.echo(f"ckptrank {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    offline: OfflineOpt = False,
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Rank pre-trained checkpoints for your target task, and benchmark the ranking measures."""


@app.command("measures", epilog="Examples:\n\n  ckptrank measures\n\n  ckptrank measures --format json")
def measures_command(
    output_format: str = typer.Option("human", "--format", help="human, json or quiet."),
) -> None:
    """List the registered transferability measures."""
    from ckptrank import get_measure, list_measures

    specs = [get_measure(name) for name in list_measures()]
    if output_format == "json":
        rows = [
            {
                "name": s.name,
                "requires": list(s.requires),
                "higher_is_better": s.higher_is_better,
                "kind": s.kind,
                "range": s.score_range,
                "citation": s.citation,
            }
            for s in specs
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    if output_format == "quiet":
        typer.echo("\n".join(s.name for s in specs))
        return
    table = Table(title="ckptrank measures")
    for column in ("name", "needs", "range", "summary"):
        table.add_column(column)
    for s in specs:
        table.add_row(s.name, "+".join(s.requires), s.score_range, s.summary)
    table_console().print(table)


def _register_subcommands() -> None:
    """Attach command groups defined in sibling modules (each exposes ``register(app)``)."""
    import importlib
    import pkgutil

    from ckptrank import cli

    for module in pkgutil.iter_modules(cli.__path__):
        if module.name.startswith("_") or module.name == "main":
            continue
        mod = importlib.import_module(f"ckptrank.cli.{module.name}")
        register = getattr(mod, "register", None)
        if register is not None:
            register(app)


_register_subcommands()


def main() -> None:
    """Console-script entry point."""
    from ._downloads import report_downloads

    report_downloads()
    run_with_error_mapping(lambda: app(standalone_mode=True))


if __name__ == "__main__":  # pragma: no cover
    main()
