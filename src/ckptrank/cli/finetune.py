"""``ckptrank finetune``: ground-truth fine-tuning (full or linear protocol), resumable."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from .rank import ExecutorOpt, OfflineOpt, RayAddressOpt, table_console

__all__ = ["register"]

_FORMATS = ("human", "json", "quiet")

_EXAMPLES = """Examples:

  ckptrank finetune zoo:cnn-fm04 efficientnet-lite0?size=64 --data builtin:digits --per-class 20

  ckptrank finetune timm:resnet50?weights=r50.safetensors --data ./pets --protocol linear --lr 0.01 --lr 0.1

  ckptrank finetune MODEL --data ./pets --epochs 30 --per-class 100 --image-size 224 --device cuda

  ckptrank finetune --suite neucrab-mini --protocol linear --threads 1   (v2's linear ground truth)

  ckptrank finetune --suite neucrab-mini-v1 --track image --threads 1   (build or resume v1)
"""


def _check_format(output_format: str) -> str:
    if output_format not in _FORMATS:
        raise ValueError(f"--format must be one of {', '.join(_FORMATS)}, not {output_format!r}")
    return output_format


_BUILDABLE = ("neucrab-mini", "neucrab-mini-v1", "neucrab-mini-v2")


def _suite_spec(name: str) -> Any:
    """The :class:`~ckptrank.bench.neucrab_mini.SuiteSpec` of a buildable built-in suite."""
    if name in ("neucrab-mini", "neucrab-mini-v2"):  # the unversioned name is the current version
        from ckptrank.bench.neucrab_mini_v2 import SPEC

        return SPEC
    from ckptrank.bench.neucrab_mini import suite_spec

    return suite_spec()


def _with_size(spec: str, size: int | None) -> str:
    """Add ``size=N`` to a spec's options (for sources that take an input size: EfficientNet, zoo, file)."""
    if size is None:
        return spec
    head, _, query = spec.partition("?")
    options = [p for p in query.split("&") if p and not p.startswith("size=")]
    return f"{head}?{'&'.join([*options, f'size={size}'])}"


def finetune_command(
    checkpoints: Annotated[
        list[str] | None, typer.Argument(help="Checkpoint specs (see 'ckptrank rank --help' for the forms).")
    ] = None,
    data: Annotated[
        str | None, typer.Option("--data", help="Dataset spec with train and test splits.")
    ] = None,
    protocol: Annotated[
        str | None, typer.Option("--protocol", help="full or linear (default full; with --suite: both).")
    ] = None,
    lr: Annotated[
        list[float] | None, typer.Option("--lr", help="Learning rate of the grid (repeatable).")
    ] = None,
    wd: Annotated[
        list[float] | None, typer.Option("--wd", help="Weight decay of the grid (repeatable).")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", min=1, help="Epochs (default 10 full, 30 linear).")
    ] = None,
    seeds: Annotated[
        int, typer.Option("--seeds", min=1, help="Number of seeds (0..N-1); the grid uses seed 0.")
    ] = 3,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    per_class: Annotated[
        int | None, typer.Option("--per-class", min=2, help="Training pool per class (train + validation).")
    ] = 20,
    test_per_class: Annotated[
        int | None, typer.Option("--test-per-class", min=1, help="Test samples per class.")
    ] = 50,
    val_fraction: Annotated[
        float, typer.Option("--val-fraction", help="Validation share of every class.")
    ] = 0.2,
    data_seed: Annotated[int, typer.Option("--data-seed", help="Seed of the subsamples and the split.")] = 0,
    image_size: Annotated[
        int | None, typer.Option("--image-size", min=8, help="Input size, passed to the spec as ?size=N.")
    ] = None,
    no_nesterov: Annotated[
        bool, typer.Option("--no-nesterov", help="Plain momentum instead of Nesterov.")
    ] = False,
    head_lr_multiplier: Annotated[
        float, typer.Option("--head-lr-multiplier", help="full: the new head learns at lr x this.")
    ] = 30.0,
    probe_epochs: Annotated[
        int,
        typer.Option("--probe-epochs", min=0, help="full: epochs training the head alone first (0: none)."),
    ] = 30,
    max_grad_norm: Annotated[
        float, typer.Option("--max-grad-norm", help="full: clip each step's gradient norm (0: no clipping).")
    ] = 1.0,
    train_batchnorm: Annotated[
        bool,
        typer.Option("--train-batchnorm", help="full: update batch-norm statistics (frozen by default)."),
    ] = False,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1, mps ...")] = "cpu",
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="torch CPU threads.")] = None,
    results: Annotated[
        Path | None,
        typer.Option(
            "--results",
            help="Results store (default: $CKPTRANK_RESULTS, else results.sqlite in the cache folder: "
            "--cache-dir, $CKPTRANK_CACHE or ~/.cache/ckptrank).",
        ),
    ] = None,
    suite_name: Annotated[
        str | None,
        typer.Option(
            "--suite",
            help="Build a built-in suite's ground truth (neucrab-mini = neucrab-mini-v2, neucrab-mini-v1).",
        ),
    ] = None,
    track: Annotated[
        list[str] | None, typer.Option("--track", help="Suite track: image, text (repeatable).")
    ] = None,
    task: Annotated[
        list[str] | None, typer.Option("--task", help="Only these suite tasks (repeatable).")
    ] = None,
    checkpoint: Annotated[
        list[str] | None, typer.Option("--checkpoint", help="Only these suite checkpoints (repeatable).")
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Feature cache (linear protocol).")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not use the feature cache.")] = False,
    output_format: Annotated[str, typer.Option("--format", help="human, json or quiet.")] = "human",
    offline: OfflineOpt = False,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
) -> None:
    """Fine-tune checkpoints on a target task to get ground-truth accuracies (grid search + seeds).

    Every run is recorded in the results store as soon as it finishes; re-running the same command
    skips recorded runs, so an interrupted job resumes where it stopped.
    """
    import torch

    from ckptrank.bench.finetune import FinetuneConfig, finetune, load_task

    _check_format(output_format)
    from ckptrank.executors import get_executor

    runner = get_executor(executor, address=ray_address)  # an unknown name fails before any work
    if threads is not None:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()

    def log(message: str) -> None:
        if output_format == "human":
            typer.echo(f"[{time.perf_counter() - t0:7.1f} s] {message}", err=True)

    cache = None
    if not no_cache:
        from ckptrank.engine import FeatureCache

        cache = FeatureCache(cache_dir)

    if suite_name is not None:
        if checkpoints or data:
            raise ValueError(
                "--suite builds a suite's own checkpoints and tasks; do not give CHECKPOINTS or --data"
            )
        if suite_name not in _BUILDABLE:
            raise ValueError(
                f"--suite {suite_name!r}: only the built-in suites {', '.join(map(repr, _BUILDABLE))} have a "
                "ground-truth build"
            )
        from ckptrank.bench.neucrab_mini import TRACKS, build_ground_truth

        spec = _suite_spec(suite_name)
        for label, given, valid in (
            ("--track", track, TRACKS),
            ("--task", task, spec.tasks),
            ("--checkpoint", checkpoint, spec.checkpoints),
        ):
            bad = [v for v in given or () if v not in valid]
            if bad:
                raise ValueError(f"{label} {bad[0]!r} is not in {spec.name}; valid: {', '.join(valid)}")
        if protocol is not None and protocol not in ("full", "linear"):
            raise ValueError(f"--protocol must be full or linear, not {protocol!r}")
        protocols = [protocol] if protocol is not None else list(spec.build_protocols)
        skipped = [p for p in spec.protocol_configs if p not in protocols]
        if protocol is None and skipped:
            log(
                f"building {spec.name}'s {', '.join(protocols)} protocol; "
                f"{', '.join(skipped)} is built only with --protocol"
            )
        try:
            summary = build_ground_truth(
                spec=spec,
                tracks=tuple(track or TRACKS),
                protocols=protocols,
                tasks=task,
                checkpoints=checkpoint,
                store_path=results,
                cache=cache,
                device=device,
                log=log,
                executor=runner,
            )
        finally:
            runner.close()
    else:
        if not checkpoints or not data:
            raise ValueError("give CHECKPOINT specs and --data SPEC (or --suite neucrab-mini)")
        from ckptrank.bench.store import default_store_path, open_store

        config = FinetuneConfig(
            protocol=protocol or "full",
            lrs=tuple(lr) if lr else FinetuneConfig.lrs,
            weight_decays=tuple(wd) if wd else FinetuneConfig.weight_decays,
            epochs=epochs,
            batch_size=batch_size,
            nesterov=not no_nesterov,
            head_lr_multiplier=head_lr_multiplier,
            freeze_batchnorm=not train_batchnorm,
            probe_epochs=probe_epochs,
            max_grad_norm=max_grad_norm if max_grad_norm > 0 else None,
            seeds=tuple(range(seeds)),
            val_fraction=val_fraction,
            device=device,
        )
        target = load_task(data, per_class=per_class, test_per_class=test_per_class, seed=data_seed)
        specs = {spec: _with_size(spec, image_size) for spec in checkpoints}
        store = open_store(results if results is not None else default_store_path(cache_dir))
        try:
            summary = finetune(
                specs, [target], config, store, suite="custom", cache=cache, log=log, executor=runner
            )
        finally:
            store.close()
            runner.close()
    _print(summary, output_format)


def _print(summary: object, output_format: str) -> None:
    import pandas as pd

    frame = summary if isinstance(summary, pd.DataFrame) else pd.DataFrame(summary)
    if output_format == "json":
        typer.echo(json.dumps(frame.to_dict(orient="records"), indent=2))
        return
    if output_format == "quiet":
        for row in frame.itertuples(index=False):
            typer.echo(f"{row.task}\t{row.checkpoint}\t{row.protocol}\t{row.mean:.4f}")
        return
    table = Table(title="fine-tuned test accuracy (selected configuration, mean over seeds)")
    for column in ("task", "checkpoint", "protocol", "lr", "wd", "seeds", "accuracy", "min-max"):
        table.add_column(column)
    for row in frame.itertuples(index=False):
        table.add_row(
            str(row.task),
            str(row.checkpoint),
            str(row.protocol),
            f"{row.lr:g}",
            f"{row.weight_decay:g}",
            str(row.seeds),
            f"{100 * row.mean:.2f} ± {100 * row.std:.2f}",
            f"{100 * row.min:.2f}-{100 * row.max:.2f}",
        )
    table_console().print(table)


def register(app: typer.Typer) -> None:
    """Attach the ``finetune`` command to the root app."""
    app.command("finetune", epilog=_EXAMPLES)(finetune_command)
