"""``ckptrank cache``: list, remove and verify cached features."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from .rank import table_console

if TYPE_CHECKING:
    from ckptrank.engine.cache import FeatureCache

__all__ = ["register"]

_FORMATS = ("human", "json", "quiet")

_LS_EXAMPLES = """Examples:

  ckptrank cache ls

  ckptrank cache ls --format json

  ckptrank cache ls --cache-dir /data/ckptrank-cache
"""

_RM_EXAMPLES = """Examples:

  ckptrank cache rm 3f9a1c      (the entry whose key starts with 3f9a1c)

  ckptrank cache rm all --yes   (everything, without asking)
"""

_VERIFY_EXAMPLES = """Examples:

  ckptrank cache verify

  ckptrank cache verify --delete

  ckptrank cache verify --format json
"""

CacheDirOpt = Annotated[
    Path | None,
    typer.Option("--cache-dir", help="Cache folder (default: $CKPTRANK_CACHE, else ~/.cache/ckptrank)."),
]
FormatOpt = Annotated[str, typer.Option("--format", help="human, json or quiet.")]


def _cache(cache_dir: Path | None) -> FeatureCache:
    from ckptrank.engine.cache import FeatureCache

    return FeatureCache(cache_dir)


def _check_format(output_format: str) -> str:
    if output_format not in _FORMATS:
        raise ValueError(f"--format must be one of {', '.join(_FORMATS)}, not {output_format!r}")
    return output_format


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def _assets(root: Path) -> list[tuple[str, int]]:
    """Assembled model folders in ``<cache>/assets`` (the built-in all-mpnet-base-v2) and their sizes."""
    folder = root / "assets"
    if not folder.is_dir():
        return []
    out = []
    for item in sorted(folder.iterdir()):
        if item.is_dir() and not item.name.startswith("."):
            size = sum(f.stat().st_size for f in item.rglob("*") if f.is_file() and not f.is_symlink())
            out.append((item.name, size))
    return out


def ls_command(
    cache_dir: CacheDirOpt = None,
    output_format: FormatOpt = "human",
) -> None:
    """List cached feature sets (complete and unfinished) with their size, date and checkpoint."""
    _check_format(output_format)
    cache = _cache(cache_dir)
    entries = cache.ls()
    if output_format == "json":
        assets = [{"name": name, "size_bytes": size} for name, size in _assets(Path(cache.root))]
        payload = {"root": str(cache.root), "entries": [e.to_dict() for e in entries], "assets": assets}
        typer.echo(json.dumps(payload, indent=2))
        return
    if output_format == "quiet":
        for entry in entries:
            typer.echo(entry.key)
        return
    console = table_console()
    assets = _assets(Path(cache.root))
    if assets:
        listed = ", ".join(f"{name} ({_size(size)})" for name, size in assets)
        console.print(f"Assembled model assets in {Path(cache.root) / 'assets'}: {listed}.")
    if not entries:
        console.print(f"The feature cache at {cache.root} is empty.")
        return
    table = Table(title=f"Feature cache {cache.root}")
    for column in ("key", "status", "checkpoint", "dataset", "split", "samples x dims", "source classes"):
        table.add_column(column)
    table.add_column("size", justify="right")
    table.add_column("created")
    for e in entries:
        table.add_row(
            e.key[:12],
            e.status,
            e.checkpoint,
            e.dataset,
            e.split,
            f"{e.n_samples} x {e.n_features}",
            "-" if e.n_source_classes is None else str(e.n_source_classes),
            _size(e.size_bytes),
            e.created.replace("T", " ").replace("+00:00", " UTC"),
        )
    console.print(table)
    total = sum(e.size_bytes for e in entries)
    console.print(f"{len(entries)} entries, {_size(total)}")


def rm_command(
    key: Annotated[str, typer.Argument(help="A key prefix (from `ckptrank cache ls`) or 'all'.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before removing everything.")] = False,
    cache_dir: CacheDirOpt = None,
    output_format: FormatOpt = "human",
) -> None:
    """Remove one cached feature set (by key prefix) or all of them."""
    _check_format(output_format)
    cache = _cache(cache_dir)
    if key == "all" and not yes:
        if output_format != "human":
            raise ValueError("removing every entry needs --yes when --format is json or quiet")
        typer.confirm(f"Remove every entry of the feature cache at {cache.root}?", abort=True)
    removed = cache.rm(key)
    if output_format == "json":
        typer.echo(json.dumps({"removed": removed.keys, "freed_bytes": removed.freed_bytes}, indent=2))
    elif output_format == "quiet":
        for k in removed.keys:
            typer.echo(k)
    else:
        table_console().print(
            f"Removed {len(removed.keys)} entries ({_size(removed.freed_bytes)}) from {cache.root}."
        )


def verify_command(
    delete: Annotated[bool, typer.Option("--delete", help="Remove the corrupt entries found.")] = False,
    cache_dir: CacheDirOpt = None,
    output_format: FormatOpt = "human",
) -> None:
    """Recompute the checksum of every cached feature set and report corrupt ones.

    Exits with status 1 when corrupt entries remain (that is, without --delete).
    """
    _check_format(output_format)
    cache = _cache(cache_dir)
    results = cache.verify(delete=delete)
    bad = [r for r in results if not r.ok]
    if output_format == "json":
        payload = {
            "root": str(cache.root),
            "checked": len(results),
            "results": [r.to_dict() for r in results],
        }
        typer.echo(json.dumps(payload, indent=2))
    elif output_format == "quiet":
        for r in bad:
            typer.echo(r.key)
    else:
        console = table_console()
        if bad:
            table = Table(title="Corrupt cache entries")
            for column in ("key", "status", "problem", "deleted"):
                table.add_column(column)
            for r in bad:
                table.add_row(r.key[:12], r.status, r.problem or "", "yes" if r.deleted else "no")
            console.print(table)
        hint = "" if delete or not bad else "; run `ckptrank cache verify --delete` to remove them"
        console.print(f"Checked {len(results)} entries in {cache.root}: {len(bad)} corrupt{hint}.")
    if bad and not delete:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Attach the ``cache`` command group to the root app."""
    group = typer.Typer(
        name="cache",
        help="Inspect and clean the feature cache.",
        no_args_is_help=True,
        add_completion=False,
    )
    group.command("ls", epilog=_LS_EXAMPLES)(ls_command)
    group.command("rm", epilog=_RM_EXAMPLES)(rm_command)
    group.command("verify", epilog=_VERIFY_EXAMPLES)(verify_command)
    app.add_typer(group, name="cache")
