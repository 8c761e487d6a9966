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
    """List the built-in transferability measures (read from their catalogue, without importing them)."""
    from ckptrank._catalog import read_catalog

    def run() -> None:
        rows = read_catalog()
        if output_format == "json":
            typer.echo(
                json.dumps([{k: v for k, v in row.items() if k != "summary"} for row in rows], indent=2)
            )
            return
        if output_format == "quiet":
            typer.echo("\n".join(row["name"] for row in rows))
            return
        table = Table(title="ckptrank measures")
        for column in ("name", "needs", "range", "summary"):
            table.add_column(column)
        for row in rows:
            table.add_row(row["name"], "+".join(row["requires"]), row["range"], row["summary"])
        table_console().print(table)

    run_with_error_mapping(run)


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
