"""``ckptrank select``: rank every checkpoint, then fine-tune the shortlist by successive halving."""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ._errors import run_with_error_mapping
from .rank import (
    AllowCodeOpt,
    BatchSizeOpt,
    CacheDirOpt,
    DataOpt,
    ExecutorOpt,
    LabelColumnOpt,
    ModelsOpt,
    OfflineOpt,
    PathColumnOpt,
    PerClassOpt,
    RayAddressOpt,
    TextColumnOpt,
    TrustOpt,
    VerboseOpt,
    check_format,
    check_out_writable,
    cli_flag_names,
    data_with_columns,
    epilog,
    print_notes,
    progress_for,
    table_console,
)

__all__ = ["register", "select_command"]

FORMATS = ("human", "json", "quiet")

EXAMPLES = [
    "ckptrank select --data builtin:digits --per-class 40 "
    "--models zoo:cnn-fm04,zoo:resnet-fm04,zoo:mlp-fm04,efficientnet-lite0?size=64 --budget 10m",
    "ckptrank select --data ./photos --models models.txt --budget 2000steps --out sel/ --save-best best/",
    "ckptrank select --data ./photos --models models.txt --budget 0.5gpuh --device cuda --format json",
]

_EXTRA = (
    "Stage 1 ranks every checkpoint with the default ranker (as 'ckptrank rank'); its shortlist (at "
    "least --min-candidates, at most --max-candidates) is fine-tuned with the project's full protocol "
    "on a validation split carved from the training data, by successive halving: every round each "
    "survivor trains a slice of the budget, the worse half by --signal is dropped, survivors continue "
    "where they stopped. A step budget counts fine-tuning steps; a time budget (s, m, h, gpuh) the wall "
    "time of the whole selection. Re-running the same command resumes from its folder (--out, default "
    "a folder in the cache named by the settings)."
)


def _fmt(value: Any, spec: str = "{:.4f}") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return spec.format(value)


def _print_human(result: Any) -> None:
    from rich.table import Table

    used = result.used
    if result.budget.kind == "steps":
        spent = f"{used['steps']} of {int(result.budget.value)} fine-tuning steps"
    else:
        spent = f"{used['seconds']:.0f} of {result.budget.value:g} s"
    table = Table(
        title=f"ckptrank select: {result.chosen} "
        f"(signal {result.signal}; budget {result.budget.text}: {spent})",
        caption=f"validation accuracy on {result.n_val} training samples held out "
        f"({result.n_train} train); stage 1 took {used['stage1_seconds']:.1f} s",
    )
    for column in ("checkpoint", "stage 1", "p_best", "rounds: steps → val acc", "steps", "s", "outcome"):
        table.add_column(column, overflow="fold")
    stages = result.stages
    for row in result.candidates.itertuples(index=False):
        mine = stages[stages["checkpoint"] == row.checkpoint]
        path = " · ".join(f"{int(s.steps_to)}→{_fmt(s.val_accuracy, '{:.3f}')}" for s in mine.itertuples())
        table.add_row(
            str(row.checkpoint),
            _fmt(row.stage1_rank, "{:.0f}"),
            _fmt(row.p_best, "{:.3f}"),
            path or "—",
            str(int(row.steps)),
            _fmt(row.seconds, "{:.1f}"),
            str(row.outcome) if row.outcome != "failed" else f"failed: {row.error}",
        )
    table_console().print(table)
    typer.echo(f"chosen: {result.chosen}")


def select_command(
    data: DataOpt,
    models: ModelsOpt,
    budget: Annotated[
        str,
        typer.Option(
            "--budget",
            help="Stage-2 budget: fine-tuning steps (2000steps) or time for the whole selection "
            "(90s, 30m, 1.5h, 0.5gpuh).",
        ),
    ],
    signal: Annotated[
        str, typer.Option("--signal", help="Stage signal: val_accuracy (default), beta_eff or combined.")
    ] = "val_accuracy",
    max_candidates: Annotated[
        int, typer.Option("--max-candidates", min=2, help="At most this many shortlisted checkpoints.")
    ] = 8,
    min_candidates: Annotated[
        int,
        typer.Option("--min-candidates", min=2, help="At least this many (shortlist topped up by rank)."),
    ] = 2,
    label_column: LabelColumnOpt = None,
    text_column: TextColumnOpt = None,
    path_column: PathColumnOpt = None,
    per_class: PerClassOpt = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the subsample, the validation split and the runs.")
    ] = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder of the selection: store, states, selection.json, curves.png, report.html "
            "(default: a folder in the cache named by the settings; the same command resumes).",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Discard a selection recorded in --out with other settings.")
    ] = False,
    save_best: Annotated[
        Path | None,
        typer.Option(
            "--save-best", help="Write the winner's fine-tuned weights (safetensors) to this folder."
        ),
    ] = None,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate of the pre-trained part.")] = 0.03,
    weight_decay: Annotated[float, typer.Option("--weight-decay", help="Weight decay.")] = 0.0,
    epochs: Annotated[
        int, typer.Option("--epochs", min=1, help="Length of a complete run (the cosine schedule's horizon).")
    ] = 10,
    train_batch_size: Annotated[
        int, typer.Option("--train-batch-size", min=1, help="Fine-tuning batch size.")
    ] = 32,
    val_fraction: Annotated[
        float, typer.Option("--val-fraction", help="Validation share of every class of the training data.")
    ] = 0.2,
    output_format: Annotated[str, typer.Option("--format", help="human, json or quiet.")] = "human",
    cache_dir: CacheDirOpt = None,
    device: Annotated[str | None, typer.Option("--device", help="cpu, cuda, cuda:1, mps ...")] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="torch CPU threads.")] = None,
    batch_size: BatchSizeOpt = 64,
    trust_checkpoint: TrustOpt = False,
    allow_code: AllowCodeOpt = False,
    offline: OfflineOpt = False,
    verbose: VerboseOpt = False,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
) -> None:
    """Select a checkpoint: rank every one, then fine-tune the shortlist briefly within a budget."""

    def run() -> None:
        from ckptrank.select import default_select_config, parse_budget, select_checkpoint, selection_records

        fmt = check_format(output_format, FORMATS)
        parsed = parse_budget(budget)  # a bad budget is one line before any work
        for folder, flag in ((out, "--out"), (save_best, "--save-best")):
            if folder is not None:
                if folder.exists() and not folder.is_dir():
                    raise ValueError(
                        f"{flag} {str(folder)!r} exists and is not a folder; choose a folder path"
                    )
                check_out_writable(folder, flag)
        config = default_select_config(
            lr=lr,
            weight_decay=weight_decay,
            epochs=epochs,
            batch_size=train_batch_size,
            val_fraction=val_fraction,
            device=device or "cpu",
        )
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        t0 = time.perf_counter()

        def log(message: str) -> None:
            if fmt == "human":
                typer.echo(f"[{time.perf_counter() - t0:7.1f} s] {message}", err=True)

        spec = data_with_columns(
            data, label_column=label_column, text_column=text_column, path_column=path_column
        )
        from ckptrank.executors import get_executor

        runner = get_executor(executor, address=ray_address)
        with cli_flag_names(), contextlib.closing(runner):
            result = select_checkpoint(
                spec,
                models,
                budget=parsed,
                signal=signal,
                max_candidates=max_candidates,
                min_candidates=min_candidates,
                per_class=per_class,
                seed=seed,
                config=config,
                out=out,
                overwrite=overwrite,
                save_best=save_best,
                cache_dir=cache_dir,
                device=device,
                batch_size=batch_size,
                trust_checkpoint=trust_checkpoint,
                allow_code=allow_code,
                progress=progress_for(fmt),
                log=log,
                executor=runner,
            )
        if fmt == "json":
            typer.echo(json.dumps(selection_records(result), indent=2, default=str))
            return
        if fmt == "quiet":
            typer.echo(result.chosen)
            return
        _print_human(result)
        written = [p.name for key, p in result.files.items() if key != "best_weights"]
        typer.echo(f"wrote {', '.join(written)} to {result.out}", err=True)
        if "best_weights" in result.files:
            typer.echo(
                f"wrote the fine-tuned weights of {result.chosen} to {result.files['best_weights']}", err=True
            )
        print_notes(result.notes, verbose=verbose)

    run_with_error_mapping(run)


def register(app: typer.Typer) -> None:
    """Attach ``ckptrank select`` to the app."""
    app.command("select", epilog=epilog(EXAMPLES, _EXTRA))(select_command)
