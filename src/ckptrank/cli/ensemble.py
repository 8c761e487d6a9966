"""``ckptrank ensemble``: pick complementary checkpoints by SFDA ensemble selection."""

from __future__ import annotations

import contextlib
import json
from typing import Annotated

import typer

from ._errors import debug_enabled, run_with_error_mapping
from .rank import (
    AllowCodeOpt,
    BatchSizeOpt,
    CacheDirOpt,
    DataOpt,
    DeviceOpt,
    ExecutorOpt,
    LabelColumnOpt,
    ModelsOpt,
    OfflineOpt,
    OnUnreadable,
    OnUnreadableOpt,
    PathColumnOpt,
    PerClassOpt,
    RayAddressOpt,
    SeedOpt,
    TextColumnOpt,
    TrustOpt,
    VerboseOpt,
    check_format,
    cli_flag_names,
    data_with_columns,
    epilog,
    model_specs,
    on_unreadable_policy,
    print_notes,
    progress_for,
    table_console,
)

__all__ = ["register"]

EXAMPLES = [
    "ckptrank ensemble --data builtin:fashion-mnist --per-class 40 "
    "--models efficientnet-lite0,efficientnet-lite1,efficientnet-lite2 --k 2",
    "ckptrank ensemble --data feats.npz --models models.txt --k 3 --format json",
]


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def ensemble_command(
    data: DataOpt,
    models: ModelsOpt,
    label_column: LabelColumnOpt = None,
    text_column: TextColumnOpt = None,
    path_column: PathColumnOpt = None,
    k: Annotated[int, typer.Option("--k", min=1, help="Number of checkpoints to select.")] = 3,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="greedy_concat (SFDA of the concatenated features) or confmix_coupled "
            "(a low-confidence reading of the paper).",
        ),
    ] = "greedy_concat",
    pca_dims: Annotated[
        float | None,
        typer.Option(
            "--pca-dims", help="Reduce each checkpoint to N principal components (0<N<1: variance)."
        ),
    ] = None,
    per_class: PerClassOpt = None,
    seed: SeedOpt = 0,
    output_format: Annotated[str, typer.Option("--format", help="human, json or quiet.")] = "human",
    cache_dir: CacheDirOpt = None,
    device: DeviceOpt = None,
    batch_size: BatchSizeOpt = 64,
    trust_checkpoint: TrustOpt = False,
    allow_code: AllowCodeOpt = False,
    on_unreadable: OnUnreadableOpt = OnUnreadable.error,
    offline: OfflineOpt = False,
    verbose: VerboseOpt = False,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
) -> None:
    """Select K complementary checkpoints for an ensemble (greedy SFDA selection).

    The first pick is the checkpoint with the best SFDA score; each next pick is the checkpoint
    whose features, joined to those already picked, give the best ensemble SFDA score.
    """

    def run() -> None:
        from rich.markup import escape
        from rich.table import Table

        from ckptrank.ensemble_choice import choose_ensemble

        fmt = check_format(output_format, ("human", "json", "quiet"))
        spec = data_with_columns(
            data, label_column=label_column, text_column=text_column, path_column=path_column
        )
        specs = model_specs(models, allow_code=allow_code or trust_checkpoint) if fmt == "human" else None
        from ckptrank.executors import get_executor

        runner = get_executor(executor, address=ray_address)
        with cli_flag_names(), contextlib.closing(runner):
            choice = choose_ensemble(
                spec,
                models,
                k=k,
                method=method,
                pca_dims=int(pca_dims) if pca_dims is not None and pca_dims >= 1 else pca_dims,
                per_class=per_class,
                seed=seed,
                cache_dir=cache_dir,
                device=device,
                batch_size=batch_size,
                progress=progress_for(fmt, specs),
                trust_checkpoint=trust_checkpoint,
                on_error="raise" if debug_enabled() else "record",
                allow_code=allow_code,
                on_unreadable=on_unreadable_policy(on_unreadable),
                executor=runner,
            )
        result = choice.to_dict()
        if fmt == "json":
            typer.echo(json.dumps(result, indent=2))
            return
        if fmt == "quiet":
            typer.echo("\n".join(choice.selected))
            return
        table = Table(
            title=f"ckptrank ensemble: {len(choice.selected)} of {len(choice.config['models'])} checkpoints",
            caption="SFDA: higher = predicted more transferable. 'ensemble SFDA' scores the concatenated "
            "features of the checkpoints picked so far.",
            caption_justify="left",
        )
        table.add_column("pick", justify="right", no_wrap=True)
        table.add_column("checkpoint", overflow="fold")
        table.add_column("own SFDA", justify="right", no_wrap=True)
        table.add_column("ensemble SFDA", justify="right", no_wrap=True)
        for entry in result["selected"]:
            table.add_row(
                str(entry["order"]),
                escape(entry["checkpoint"]),
                _fmt(entry["individual_score"]),
                _fmt(entry["ensemble_score"]),
            )
        table_console().print(table)
        others = [spec for spec in result["individual_scores"] if spec not in choice.selected]
        if others:
            scored = ", ".join(f"{spec} ({_fmt(result['individual_scores'][spec])})" for spec in others)
            typer.echo(f"not selected: {scored}")
        print_notes(choice.notes, verbose=verbose)

    run_with_error_mapping(run)


def register(app: typer.Typer) -> None:
    """Attach ``ckptrank ensemble`` to the app."""
    app.command("ensemble", epilog=epilog(EXAMPLES))(ensemble_command)
