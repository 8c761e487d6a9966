"""``ckptrank bench``: evaluate transferability measures on a benchmark suite (thin layer over
:func:`ckptrank.bench.harness.bench`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._errors import debug_enabled, run_with_error_mapping
from .rank import (
    BatchSizeOpt,
    CacheDirOpt,
    DeviceOpt,
    OfflineOpt,
    OnUnreadable,
    OnUnreadableOpt,
    SeedOpt,
    TrustOpt,
    check_format,
    cli_flag_names,
    epilog,
    on_unreadable_policy,
    parse_measure_options,
    print_notes,
    progress_for,
)

if TYPE_CHECKING:
    from ckptrank.bench.harness import BenchResult

__all__ = ["bench_command", "register"]

FORMATS = ("human", "json", "csv")

EXAMPLES = [
    "ckptrank bench --list",
    "ckptrank bench --suite neucrab-mini --report bench-report/",
    "ckptrank bench --suite neucrab-mini --measures logme,sfda,nleep --bootstrap 2000",
    "ckptrank bench --suite published:tllib",
    "ckptrank bench --suite published:sfda-group1 --scores my_scores.csv --format json",
    "ckptrank bench --suite my_suite.json --results results.sqlite",
]


def _missing(value: Any) -> bool:
    """None, NaN or pandas NA (pandas may turn None into NaN in object/string columns)."""
    if value is None:
        return True
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _fmt(value: Any, digits: int = 3) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "—"
    return f"{number:.{digits}f}" if math.isfinite(number) else "—"


def _ci(low: Any, high: Any) -> str:
    if _fmt(low) == "—" or _fmt(high) == "—":
        return "—"
    return f"[{float(low):.2f}, {float(high):.2f}]"


def _seconds(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "—"
    if not math.isfinite(number):
        return "—"
    return "0" if number == 0 else f"{number:.3g}"


def _print(table: Any) -> None:
    """Print a rich table at its natural width when stdout is not a terminal (never squeezed)."""
    from rich.console import Console
    from rich.measure import Measurement

    console = Console(soft_wrap=False)
    natural = Measurement.get(console, console.options.update(max_width=1000), table).maximum
    if natural > console.width or not console.is_terminal:
        console = Console(soft_wrap=False, width=max(80, min(natural, 260)))
    console.print(table)


def _versus(row: Any) -> str:
    """The paired comparison with the best baseline: ``+0.05 [-0.02, +0.11] ≈ num_parameters``."""
    if _missing(row["best_baseline"]):
        return "no baseline"
    diff = row["diff_vs_baseline"]
    text = f"{float(diff):+.3f}" if _fmt(diff) != "—" else "—"
    if _fmt(row["diff_ci_low"]) != "—" and _fmt(row["diff_ci_high"]) != "—":
        text += f" [{float(row['diff_ci_low']):+.2f}, {float(row['diff_ci_high']):+.2f}]"
    mark = {"better": "✓ >", "worse": "✗ <", "tie": "≈"}.get(str(row["verdict"]), "?")
    return f"{text} {mark} {row['best_baseline']}"


def _controls(row: Any) -> str:
    total = row.get("controls_tasks", 0)
    if _missing(total) or not int(total):
        return "—"
    return f"{int(row['controls_below'])}/{int(total)}"


def _summary_table(result: BenchResult) -> Any:
    from rich.table import Table
    from rich.text import Text

    ev = result.evaluation
    conf = round(100 * ev.config.get("confidence", 0.95))
    tracks = ev.track_names
    n_tasks = len(ev.tasks)
    summary = ev.summary
    # columns that would be empty for every row are left out (e.g. seeds of a single-seed truth)
    show = {
        "CI seeds": bool(summary["weighted_tau_seed_ci_low"].notna().any()),
        "s/ckpt": bool(summary.loc[summary["kind"] != "baseline", "seconds"].notna().any()),
        "controls below": bool((summary.get("controls_tasks", 0) > 0).any()),
    }
    table = Table(
        title=f"ckptrank bench: {result.suite.name} — {n_tasks} task(s), "
        f"{len(result.suite.checkpoints)} checkpoints",
        caption=(
            "wτ = weighted Kendall tau with the fine-tuned accuracy (scipy.stats.weightedtau), mean over the "
            f"row's own tasks (column 'tasks'){'; per track beside it' if tracks else ''}. "
            f"CIs: {conf}% bootstrap over checkpoints / over ground-truth seeds. Italic rows: target-blind "
            "baselines. 'vs best baseline': mean wτ difference on exactly the (task, checkpoint) pairs both "
            "have, same resamples (paired); ✓/✗ only when its interval excludes 0, ≈ otherwise. "
            + (
                "'controls below': tasks on which every random-init control is scored below every "
                "pre-trained checkpoint (controls are left out of every other figure). "
                if show["controls below"]
                else ""
            )
            + "s/ckpt = median seconds to score one checkpoint (extraction excluded). Rel@1 and regret "
            "(accuracy points) of the top-scored checkpoint."
        ),
        caption_justify="left",
    )
    headers = ["measure", "wτ", "tasks", "CI ckpts", "CI seeds"]
    headers += [f"wτ {track}" for track in tracks]
    headers += ["Rel@1", "regret", "s/ckpt", "vs best baseline (paired)", "controls below"]
    keep = [show.get(header, True) for header in headers]
    for header, kept in zip(headers, keep, strict=True):
        if kept:
            left = header in ("measure", "vs best baseline (paired)")
            table.add_column(header, justify="left" if left else "right", no_wrap=True)
    for name, row in summary.iterrows():
        baseline = row["kind"] == "baseline"
        cells = [
            str(name),
            _fmt(row["weighted_tau"]),
            f"{int(row['n_tasks'])}/{n_tasks}",
            _ci(row["weighted_tau_ci_low"], row["weighted_tau_ci_high"]),
            _ci(row["weighted_tau_seed_ci_low"], row["weighted_tau_seed_ci_high"]),
            *[_fmt(row.get(f"weighted_tau:{track}")) for track in tracks],
            _fmt(row.get("rel@1")),
            _fmt(row["top1_regret"], 2),
            "free" if baseline else _seconds(row["seconds"]),
            "" if baseline else _versus(row),
            _controls(row),
        ]
        if baseline:
            style = "italic dim"
        elif row["kind"] == "default":
            style = "bold"
        elif row["verdict"] == "worse":
            style = "dark_orange"
        else:
            style = ""
        table.add_row(*(Text(cell, style=style) for cell, kept in zip(cells, keep, strict=True) if kept))
    return table


def _truth_line(result: BenchResult) -> str:
    """How much the seed-mean ground truth can be trusted, overall and per track."""
    ev = result.evaluation
    parts = []
    for track in [None, *ev.track_names]:
        agreement, reliability = ev.mean_seed_agreement(track), ev.mean_reliability(track)
        if not (math.isfinite(agreement) or math.isfinite(reliability)):
            continue
        where = "all tasks" if track is None else track
        parts.append(f"{where}: seed agreement {_fmt(agreement)}, reliability {_fmt(reliability)}")
    if not parts:
        return "Ground truth: one fine-tuning seed per pair, so no seed agreement or reliability."
    return (
        "Ground truth (mean over seeds) — "
        + "; ".join(parts)
        + ". Seed agreement = mean wτ between single seeds; reliability = split-half wτ of the seed means, "
        "Spearman-Brown corrected to all seeds (what a perfect measure could reach against this truth)."
    )


def _task_table(result: BenchResult) -> Any:
    from rich.table import Table
    from rich.text import Text

    ev = result.evaluation
    tau = ev.task_table("weighted_tau")
    table = Table(title="weighted tau per task", caption_justify="left")
    table.add_column("measure", no_wrap=True)
    for column in tau.columns:
        label = str(column).replace("mean:", "mean ")
        table.add_column(label, justify="right", no_wrap=True)
    kinds = ev.summary["kind"]
    for name, row in tau.iterrows():
        style = "italic dim" if kinds.get(name) == "baseline" else ""
        table.add_row(
            *(Text(c, style=style) for c in [str(name), *[_fmt(v) for v in row.to_numpy(dtype=float)]])
        )
    truth = ev.seed_agreement.set_index("task")
    for column, label in (("seed_agreement", "seed agreement"), ("reliability", "truth reliability")):
        values = truth[column]
        if not values.notna().any():
            continue
        cells = [label]
        for task in tau.columns:
            if task == "mean":
                value = ev.mean_seed_agreement() if column == "seed_agreement" else ev.mean_reliability()
            elif str(task).startswith("mean:"):
                track = str(task)[len("mean:") :]
                value = (
                    ev.mean_seed_agreement(track)
                    if column == "seed_agreement"
                    else ev.mean_reliability(track)
                )
            else:
                value = values.get(task)
            cells.append(_fmt(value))
        table.add_row(*(Text(c, style="bold cyan") for c in cells))
    return table


_STAT_LABELS = {"weighted_tau": "wτ", "pearson": "Pearson", "kendall_tau": "Kendall", "spearman": "Spearman"}


def _reported_tables(result: BenchResult) -> list[Any]:
    """The reported means beside the baselines, and (when recomputed) every value side by side."""
    from rich.table import Table
    from rich.text import Text

    from ckptrank.bench.evaluate import reported_summary

    rep = result.evaluation.reported
    if rep is None or rep.empty:
        return []
    tol = result.evaluation.config.get("tolerance", 0.0015)
    summary = reported_summary(result.evaluation)
    means = Table(
        title="reported by the source (mean over its tasks) vs recomputed and vs the best static baseline",
        caption="Baseline columns: each target-blind baseline's mean wτ on the same tasks. ✗ = the reported "
        "mean does not exceed the best of them (a comparison of means: published scores without "
        "per-checkpoint values allow no paired interval).",
        caption_justify="left",
    )
    baselines = list(result.evaluation.baselines)
    for header in ("measure", "statistic", "tasks", "reported", "recomputed", *baselines, "verdict"):
        means.add_column(header, justify="left" if header in ("measure", "statistic") else "right")
    for row in summary.itertuples(index=False):
        if _missing(row.beats_baseline):
            verdict, style = "", ""
        elif row.beats_baseline:
            verdict, style = "✓", "green"
        else:
            verdict, style = "✗", "dark_orange"
        if not _missing(row.best_baseline):
            verdict = f"{verdict} vs {row.best_baseline}"
        record = row._asdict()
        means.add_row(
            row.measure,
            _STAT_LABELS.get(row.statistic, row.statistic),
            str(row.n_tasks),
            _fmt(row.reported),
            _fmt(row.recomputed),
            *[_fmt(record.get(name)) if row.statistic == "weighted_tau" else "" for name in baselines],
            Text(verdict, style=style),
        )
    tables = [means]
    compared = rep[rep["agrees"].notna()]
    if compared.empty:
        return tables
    agree = int(compared["agrees"].astype(bool).sum())
    stats_order = list(dict.fromkeys(rep["statistic"]))
    detail = Table(
        title=f"recomputed vs reported: {agree} of {len(compared)} agree within {tol:g}",
        caption=f"✗ = |recomputed - reported| > {tol:g}. {len(rep) - len(compared)} reported value(s) cannot "
        "be recomputed (no scores for them).",
        caption_justify="left",
    )
    detail.add_column("task")
    detail.add_column("measure")
    for stat in stats_order:
        label = _STAT_LABELS.get(stat, stat)
        detail.add_column(f"{label} reported", justify="right")
        detail.add_column(f"{label} recomputed", justify="right")
    cells = {(r.task, r.measure, r.statistic): r for r in rep.itertuples(index=False)}
    for task, measure in dict.fromkeys(zip(rep["task"], rep["measure"], strict=True)):
        row_cells: list[Any] = [task, measure]
        for stat in stats_order:
            r = cells.get((task, measure, stat))
            if r is None:
                row_cells += ["", ""]
                continue
            if _missing(r.agrees):
                text, style = "—", "dim"
            elif bool(r.agrees):
                text, style = _fmt(r.recomputed, 4), "green"
            else:
                text, style = f"{_fmt(r.recomputed, 4)} ✗", "bold red"
            row_cells += [_fmt(r.reported), Text(text, style=style)]
        detail.add_row(*row_cells)
    tables.append(detail)
    return tables


def emit(result: BenchResult, output_format: str) -> None:
    """Print a benchmark result (stdout), with notes on stderr in human/csv mode."""
    notes = list(dict.fromkeys([*result.notes, *result.evaluation.notes]))
    if output_format == "json":
        typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
        return
    if output_format == "csv":
        typer.echo(result.evaluation.per_task.to_csv(index=False), nl=False)
        print_notes(notes)
        return
    _print(_summary_table(result))
    typer.echo(_truth_line(result))
    _print(_task_table(result))
    for table in _reported_tables(result):
        _print(table)
    print_notes(notes)


def _list_suites(output_format: str) -> None:
    from rich.table import Table

    from ckptrank.bench.suite import get_suite, list_suites

    rows = []
    for name in list_suites():
        suite = get_suite(name)
        rows.append(
            {
                "name": name,
                "tasks": len(suite.tasks),
                "checkpoints": len(suite.checkpoints),
                "seeds": suite.summary()["seeds_per_pair"],
                "can_score": suite.can_score,
                "published_scores": suite.published_scores is not None,
                "reported": suite.reported is not None,
                "description": suite.description,
            }
        )
    if output_format == "json":
        typer.echo(json.dumps(rows, indent=2))
        return
    if output_format == "csv":
        import pandas as pd

        typer.echo(pd.DataFrame(rows).to_csv(index=False), nl=False)
        return
    table = Table(title="ckptrank benchmark suites")
    for column in ("name", "tasks", "ckpts", "seeds", "evaluates", "description"):
        table.add_column(column, justify="right" if column in ("tasks", "ckpts", "seeds") else "left")
    for row in rows:
        if row["can_score"]:
            what = "scores here"
        elif row["published_scores"]:
            what = "published scores"
        else:
            what = "--scores FILE"
        if row["reported"]:
            what += " + reported"
        table.add_row(
            row["name"],
            str(row["tasks"]),
            str(row["checkpoints"]),
            str(row["seeds"]),
            what,
            row["description"],
        )
    _print(table)


def bench_command(
    suite: Annotated[
        str | None,
        typer.Option(
            "--suite",
            help="Suite to evaluate: a registered name (see --list; e.g. neucrab-mini, published:tllib) or "
            "a suite .json file.",
        ),
    ] = None,
    measures: Annotated[
        str | None,
        typer.Option(
            "--measures",
            help="Comma-separated measures to score (default: every static measure) or to keep from the "
            "score table.",
        ),
    ] = None,
    scores: Annotated[
        Path | None,
        typer.Option(
            "--scores",
            help="Evaluate this score table instead of scoring: CSV/TSV/parquet/JSON, long (task, "
            "checkpoint, measure, score) or wide (task, checkpoint, one column per measure).",
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Write report.html, figures/*.png and the tables to this folder."),
    ] = None,
    output_format: Annotated[str, typer.Option("--format", help="human, json or csv.")] = "human",
    results: Annotated[
        str | None,
        typer.Option(
            "--results",
            help="Results database (path or sqlite:///PATH) for scores and evaluations "
            "[default when scoring: $CKPTRANK_RESULTS or ~/.cache/ckptrank/results.sqlite].",
        ),
    ] = None,
    cache_dir: CacheDirOpt = None,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples for the intervals (0 = none).")
    ] = 1000,
    protocol: Annotated[
        str | None, typer.Option("--protocol", help="Ground-truth protocol (default: the suite's).")
    ] = None,
    tasks: Annotated[
        str | None, typer.Option("--tasks", help="Comma-separated tasks to score (default: all).")
    ] = None,
    ignore_unknown: Annotated[
        bool,
        typer.Option(
            "--ignore-unknown",
            help="Drop score rows whose task or checkpoint the suite does not know (noted).",
        ),
    ] = False,
    lower_is_better: Annotated[
        str | None,
        typer.Option(
            "--lower-is-better",
            help="Comma-separated measures of the score table for which lower predicts better "
            "(registered measures know their direction).",
        ),
    ] = None,
    min_checkpoints: Annotated[
        int, typer.Option("--min-checkpoints", min=2, help="Skip a task with fewer evaluable checkpoints.")
    ] = 3,
    list_only: Annotated[bool, typer.Option("--list", help="List the available suites and exit.")] = False,
    seed: SeedOpt = 0,
    device: DeviceOpt = None,
    batch_size: BatchSizeOpt = 64,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", help="Measure option MEASURE.OPTION=VALUE (repeatable)."),
    ] = None,
    trust_checkpoint: TrustOpt = False,
    on_unreadable: OnUnreadableOpt = OnUnreadable.error,
    offline: OfflineOpt = False,
) -> None:
    """Evaluate transferability measures against fine-tuning ground truth on a benchmark suite.

    Scores every checkpoint of the suite on every task (through the feature cache; every score is
    recorded in the results database, so a re-run resumes), then reports per measure the weighted
    Kendall tau, Kendall, Pearson, Spearman, Rel@k, hit@k and top-1 regret, averaged over tasks with
    bootstrap intervals over checkpoints and over ground-truth seeds, beside the static baselines
    (parameter count, source accuracy), compared with the best baseline on the same (task,
    checkpoint) pairs (paired bootstrap; a mark only when the interval excludes 0), with the
    ground truth's seed agreement and reliability and a random-init sanity check. Published
    suites (published:*) evaluate their published score table, or --scores FILE, and show
    recomputed vs reported values with disagreements flagged.
    """

    def run() -> None:
        from ckptrank.bench.harness import bench
        from ckptrank.ranking import on_unreadable_default

        fmt = check_format(output_format, FORMATS)
        if list_only:
            _list_suites(fmt)
            return
        if suite is None:
            raise ValueError("choose a suite with --suite NAME (see ckptrank bench --list)")
        if report is not None and report.exists() and not report.is_dir():
            raise ValueError(f"--report {str(report)!r} exists and is not a folder; choose a folder path")
        direction = {}
        for name in (lower_is_better or "").split(","):
            if name.strip():
                direction[name.strip()] = False

        def say(message: str) -> None:
            if fmt == "human":
                typer.echo(f"scoring {message}", err=True)

        with cli_flag_names(), on_unreadable_default(on_unreadable_policy(on_unreadable)):
            result = bench(
                suite,
                measures=measures,
                scores=scores,
                store=results,
                protocol=protocol,
                on_unknown="ignore" if ignore_unknown else "error",
                higher_is_better=direction or None,
                n_bootstrap=bootstrap,
                min_checkpoints=min_checkpoints,
                tasks=[t.strip() for t in tasks.split(",") if t.strip()] if tasks else None,
                cache_dir=cache_dir,
                device=device,
                batch_size=batch_size,
                measure_options=parse_measure_options(option),
                seed=seed,
                progress=progress_for(fmt),
                trust_checkpoint=trust_checkpoint,
                on_error="raise" if debug_enabled() else "record",
                on_progress=say,
            )
        emit(result, fmt)
        if report is not None:
            from ckptrank.bench.report import write_report

            written = write_report(result, report)
            if fmt in ("human", "csv"):
                typer.echo(f"wrote {written['html']} and {len(written) - 1} more file(s)", err=True)

    run_with_error_mapping(run)


def register(app: typer.Typer) -> None:
    """Attach ``ckptrank bench`` to the app."""
    app.command(
        "bench",
        epilog=epilog(
            EXAMPLES,
            "Exit code: 0 on success, 1 on an error (unknown suite, measure, task or checkpoint names, "
            "nothing to evaluate).",
        ),
    )(bench_command)
