"""``ckptrank bench``: evaluate transferability measures on a benchmark suite (thin layer over
:func:`ckptrank.bench.harness.bench`)."""

from __future__ import annotations

import contextlib
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
    ExecutorOpt,
    OfflineOpt,
    OnUnreadable,
    OnUnreadableOpt,
    RayAddressOpt,
    SeedOpt,
    TrustOpt,
    VerboseOpt,
    check_format,
    check_out_writable,
    cli_flag_names,
    epilog,
    fit_table,
    needed_width,
    not_shown,
    on_unreadable_policy,
    parse_measure_options,
    print_notes,
    progress_for,
    release_min_widths,
    table_console,
    table_style,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

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


def _print(table: Any, console: Console | None = None) -> None:
    """Print a rich table on the table console (the terminal's width, or LOG_WIDTH in a log)."""
    (console or table_console()).print(table)


def _versus(row: Any, short: bool = False) -> str:
    """The paired comparison with the best baseline: ``+0.05 [-0.02, +0.11] ≈ num_parameters``."""
    if _missing(row["best_baseline"]):
        return "no baseline"
    diff = row["diff_vs_baseline"]
    text = f"{float(diff):+.3f}" if _fmt(diff) != "—" else "—"
    if _fmt(row["diff_ci_low"]) != "—" and _fmt(row["diff_ci_high"]) != "—":
        text += f" [{float(row['diff_ci_low']):+.2f}, {float(row['diff_ci_high']):+.2f}]"
    mark = {"better": "✓ >", "worse": "✗ <", "tie": "≈"}.get(str(row["verdict"]), "?")
    baseline = str(row["best_baseline"])
    return f"{text} {mark} {_SHORT_BASELINES.get(baseline, baseline) if short else baseline}"


def _controls(row: Any) -> str:
    total = row.get("controls_tasks", 0)
    if _missing(total) or not int(total):
        return "—"
    return f"{int(row['controls_below'])}/{int(total)}"


#: Shorter names of the static baselines, for narrow terminals.
_SHORT_BASELINES = {"num_parameters": "params", "source_accuracy": "src acc"}
_VERSUS = "vs best baseline (paired)"
#: What the summary gives up, in this order, to fit the width (wτ, its CI over checkpoints, the
#: per-track wτ and the comparison with the best baseline always stay).
SUMMARY_STEPS = (
    "compact",
    "controls below",
    "s/ckpt",
    "short names",
    "wrap",
    "CI seeds",
    "regret",
    "Rel@1",
    "tasks",
)
_SUMMARY_LABELS = {
    "controls below": "controls below",
    "s/ckpt": "s/ckpt",
    "CI seeds": "CI seeds",
    "regret": "regret",
    "Rel@1": "Rel@1",
    "tasks": "tasks",
}


def _summary_table(result: BenchResult, dropped: frozenset[str] = frozenset()) -> Table:
    from rich.table import Table
    from rich.text import Text

    ev = result.evaluation
    conf = round(100 * ev.config.get("confidence", 0.95))
    tracks = ev.track_names
    n_tasks = len(ev.tasks)
    protocol = f" ({result.config['protocol']} protocol)" if result.config.get("protocol") else ""
    summary = ev.summary
    # columns that would be empty for every row are left out (e.g. seeds of a single-seed truth)
    show = {
        "CI seeds": bool(summary["weighted_tau_seed_ci_low"].notna().any()),
        "s/ckpt": bool(summary.loc[summary["kind"] != "baseline", "seconds"].notna().any()),
        "controls below": bool((summary.get("controls_tasks", 0) > 0).any()),
    }
    for step in dropped:
        if step in _SUMMARY_LABELS:
            show[step] = False
    short = "short names" in dropped
    wrap = "wrap" in dropped
    seeds = " / over ground-truth seeds (and test-set noise where n_test is known)"
    caption = (
        "wτ = weighted Kendall tau with the fine-tuned accuracy (scipy.stats.weightedtau), mean over the "
        f"row's own tasks{' (column tasks)' if show.get('tasks', True) else ''}"
        f"{'; per track beside it' if tracks else ''}. CIs: {conf}% bootstrap over checkpoints"
        f"{seeds if show['CI seeds'] else ''}. Italic rows: target-blind baselines. "
        "'vs best baseline': mean wτ difference on exactly the (task, checkpoint) pairs both have, same "
        "resamples (paired); ✓/✗ only when its interval excludes 0, ≈ otherwise."
    )
    if short:
        caption += " params = num_parameters, src acc = source_accuracy."
    if show["controls below"]:
        caption += (
            " 'controls below': tasks on which every random-init control is scored below every "
            "pre-trained checkpoint (controls are left out of every other figure)."
        )
    if show["s/ckpt"]:
        caption += " s/ckpt = median seconds to score one checkpoint (extraction excluded)."
    kept_stats = [h for h in ("Rel@1", "regret") if show.get(h, True)]
    if kept_stats:
        caption += (
            f" {' and '.join(kept_stats)}{' (accuracy points)' if 'regret' in kept_stats else ''} "
            "of the top-scored checkpoint."
        )
    table = Table(
        title=f"ckptrank bench: {result.suite.name}{protocol} — {n_tasks} task(s), "
        f"{len(result.suite.checkpoints)} checkpoints",
        caption=caption,
        caption_justify="left",
        **table_style(dropped),
    )
    headers = ["measure", "wτ", "tasks", "CI ckpts", "CI seeds"]
    headers += [f"wτ {track}" for track in tracks]
    headers += ["Rel@1", "regret", "s/ckpt", _VERSUS, "controls below"]
    keep = [show.get(header, True) for header in headers]
    for header, kept in zip(headers, keep, strict=True):
        if not kept:
            continue
        if header == "measure":
            # wrapped, a long name (the default ranker's rows) gives way to the paired comparison
            table.add_column(
                header, min_width=12 if wrap else None, max_width=16 if wrap else None, no_wrap=not wrap
            )
        elif header == _VERSUS:
            table.add_column(header, min_width=22 if wrap else None, no_wrap=not wrap)
        else:
            table.add_column(header, justify="right", no_wrap=True)
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
            "" if baseline else _versus(row, short=short),
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


def _print_summary(result: BenchResult, console: Console) -> None:
    table, dropped, fits = fit_table(lambda d: _summary_table(result, d), SUMMARY_STEPS, console)
    table.caption = f"{table.caption}{not_shown(dropped, _SUMMARY_LABELS, console.width, fits)}"
    console.print(table)


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


def _task_tables(result: BenchResult, console: Console) -> list[Table]:
    """The per-task wτ table; split by columns into as few tables as fit the width when it is too wide.

    A split table shows the means (over all tasks, per track) first, then the tasks.
    """
    columns = [str(c) for c in result.evaluation.task_table("weighted_tau").columns]
    tables = [_task_table(result, columns, compact=False)]
    if needed_width(console, tables[0]) <= console.width:
        return tables
    tables = [_task_table(result, columns, compact=True)]
    if needed_width(console, tables[0]) <= console.width:
        return tables
    means = [c for c in columns if c == "mean" or c.startswith("mean:")]
    ordered = means + [c for c in columns if c not in means]
    for n_tables in range(2, len(ordered) + 1):
        size = math.ceil(len(ordered) / n_tables)
        groups = [ordered[i : i + size] for i in range(0, len(ordered), size)]
        tables = [
            _task_table(result, group, compact=True, part=(i + 1, len(groups)))
            for i, group in enumerate(groups)
        ]
        if all(needed_width(console, table) <= console.width for table in tables):
            break
    return tables


def _task_table(
    result: BenchResult, columns: list[str], *, compact: bool, part: tuple[int, int] | None = None
) -> Table:
    from rich.table import Table
    from rich.text import Text

    ev = result.evaluation
    tau = ev.task_table("weighted_tau")
    by_name = {str(c): c for c in tau.columns}
    tau = tau[[by_name[c] for c in columns]]
    title = "weighted tau per task"
    if part is not None:
        title += f", part {part[0]} of {part[1]}"
    table = Table(title=title, caption_justify="left", **table_style(("compact",) if compact else ()))
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


def _reported_tables(result: BenchResult, console: Console | None = None) -> list[Any]:
    """The reported means beside the baselines, and (when recomputed) every value side by side."""
    from rich.table import Table
    from rich.text import Text

    rep = result.evaluation.reported
    if rep is None or rep.empty:
        return []
    console = console or table_console()
    tol = result.evaluation.config.get("tolerance", 0.0015)
    means, _, _ = fit_table(lambda d: _reported_means(result, d), ("compact", "short names"), console)
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
    detail.add_column("task", min_width=8)
    detail.add_column("measure", min_width=8)
    for stat in stats_order:
        label = _STAT_LABELS.get(stat, stat)
        detail.add_column(f"{label}\nreported", justify="right", no_wrap=True)
        detail.add_column(f"{label}\nrecomputed", justify="right", no_wrap=True)
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
    if needed_width(console, detail) > console.width:
        detail.box, detail.show_edge, detail.pad_edge = table_style(("compact",)).values()
    tables.append(release_min_widths(detail))
    return tables


def _reported_means(result: BenchResult, dropped: frozenset[str]) -> Table:
    """Reported mean per measure and statistic, recomputed, and each baseline's mean wτ."""
    from rich.table import Table
    from rich.text import Text

    from ckptrank.bench.evaluate import reported_summary

    summary = reported_summary(result.evaluation)
    short = "short names" in dropped
    caption = (
        "Baseline columns: each target-blind baseline's mean wτ on the same tasks. ✗ = the reported "
        "mean does not exceed the best of them (a comparison of means: published scores without "
        "per-checkpoint values allow no paired interval)."
    )
    if short:
        caption += " params = num_parameters, src acc = source_accuracy."
    means = Table(
        title="reported by the source (mean over its tasks) vs recomputed and vs the best static baseline",
        caption=caption,
        caption_justify="left",
        **table_style(dropped),
    )
    baselines = list(result.evaluation.baselines)
    for header in ("measure", "statistic", "tasks", "reported", "recomputed", *baselines, "verdict"):
        label = _SHORT_BASELINES.get(header, header) if short else header
        if header in ("measure", "statistic"):
            means.add_column(label, min_width=8)
        elif header == "verdict":
            means.add_column(label, justify="left", no_wrap=True)
        else:
            means.add_column(label, justify="right", no_wrap=True)
    for row in summary.itertuples(index=False):
        if _missing(row.beats_baseline):
            verdict, style = "", ""
        elif row.beats_baseline:
            verdict, style = "✓", "green"
        else:
            verdict, style = "✗", "dark_orange"
        if not _missing(row.best_baseline):
            best = str(row.best_baseline)
            verdict = f"{verdict} vs {_SHORT_BASELINES.get(best, best) if short else best}"
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
    return means


def emit(
    result: BenchResult, output_format: str, *, verbose: bool = False, console: Console | None = None
) -> None:
    """Print a benchmark result (stdout), with notes on stderr in human/csv mode.

    The tables fit ``console`` (default: the terminal's width, or LOG_WIDTH in a log).
    """
    notes = list(dict.fromkeys([*result.notes, *result.evaluation.notes]))
    if output_format == "json":
        typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
        return
    if output_format == "csv":
        typer.echo(result.evaluation.per_task.to_csv(index=False), nl=False)
        print_notes(notes, verbose=verbose)
        return
    from rich.text import Text

    from ckptrank.bench.report import recommendation

    console = console or table_console()
    _print_summary(result, console)
    console.print(Text(recommendation(result.evaluation)), soft_wrap=False, overflow="fold", highlight=False)
    console.print(Text(_truth_line(result)), soft_wrap=False, overflow="fold", highlight=False)
    for table in _task_tables(result, console):
        console.print(table)
    for table in _reported_tables(result, console):
        console.print(table)
    print_notes(notes, verbose=verbose)


def _list_suites(output_format: str, console: Console | None = None) -> None:

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
    from rich.text import Text

    console = console or table_console()
    table, dropped, _ = fit_table(lambda d: _suites_table(rows, d), ("compact", "description"), console)
    _print(table, console)
    if "description" in dropped:  # too narrow for a readable description column: one paragraph each
        for row in rows:
            console.print(
                Text.assemble((f"{row['name']}: ", "bold"), str(row["description"])), highlight=False
            )


def _suites_table(rows: list[dict[str, Any]], dropped: frozenset[str]) -> Table:
    """``bench --list``: one line per suite but for the description (left out to fit a narrow width)."""
    from rich.markup import escape
    from rich.table import Table

    describe = "description" not in dropped
    table = Table(
        title="ckptrank benchmark suites",
        caption="evaluates: scores here = scored on this machine (ckptrank bench --suite NAME); published = "
        "the score table published with the suite; --scores FILE = your own score table; + reported = "
        "the source's reported values are compared with the recomputed ones."
        + ("" if describe else " The descriptions follow the table."),
        caption_justify="left",
        **table_style(dropped),
    )
    table.add_column("name", no_wrap=True)
    for column in ("tasks", "ckpts", "seeds"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("evaluates", no_wrap=True)
    if describe:
        table.add_column("description", min_width=40)
    for row in rows:
        if row["can_score"]:
            what = "scores here"
        elif row["published_scores"]:
            what = "published"
        else:
            what = "--scores FILE"
        if row["reported"]:
            what += " + reported"
        cells = [row["name"], str(row["tasks"]), str(row["checkpoints"]), str(row["seeds"]), what]
        table.add_row(*cells, *([escape(str(row["description"]))] if describe else []))
    return table


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
            "(default when scoring: $CKPTRANK_RESULTS, else results.sqlite in the cache folder: "
            "--cache-dir, $CKPTRANK_CACHE or ~/.cache/ckptrank).",
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
    verbose: VerboseOpt = False,
    allow_code: Annotated[
        bool,
        typer.Option(
            "--allow-code", help="Allow py: checkpoints of a suite .json file (they run Python code)."
        ),
    ] = False,
    held_out: Annotated[
        bool,
        typer.Option(
            "--held-out",
            help="Evaluate the default ranker (label-free, fitted on no task) on the 41 benchmark tasks with "
            "truth (neucrab-mini v1 and v2, the published suites), paired with the learned pairwise ranker "
            "(the default until round 6) left one task out and one suite out, the best single measure "
            "chosen on the other tasks, the parameter count and the earlier consensus; with the held-out "
            "calibration of p(best).",
        ),
    ] = False,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
) -> None:
    """Evaluate transferability measures against fine-tuning ground truth on a benchmark suite.

    Scores every checkpoint of the suite on every task (through the feature cache; every score is
    recorded in the results database, so a re-run resumes), then reports per measure the weighted
    Kendall tau, Kendall, Pearson, Spearman, Rel@k, hit@k and top-1 regret, averaged over tasks with
    bootstrap intervals over checkpoints and over ground-truth seeds, beside the static baselines
    (parameter count, source accuracy), compared with the best baseline on the same (task,
    checkpoint) pairs (paired bootstrap; a mark only when the interval excludes 0), with the
    ground truth's seed agreement and reliability and a random-init sanity check. Published
    suites (published:*) evaluate their published score table (with the default ranker's row on
    it, the measures the table lacks left out), or --scores FILE, and show recomputed vs
    reported values with disagreements flagged.
    """

    def run() -> None:
        from ckptrank.bench.harness import bench
        from ckptrank.targets import on_unreadable_default

        fmt = check_format(output_format, FORMATS)
        if list_only:
            _list_suites(fmt)
            return
        if held_out:
            other = [
                flag
                for flag, value in (("--suite", suite), ("--scores", scores), ("--report", report))
                if value
            ]
            if other or executor != "local" or fmt == "csv":
                given = (
                    other
                    + (["--executor"] if executor != "local" else [])
                    + (["--format csv"] if fmt == "csv" else [])
                )
                raise ValueError(
                    f"--held-out evaluates the default ranker on its own suites; {', '.join(given)} "
                    "do(es) not apply (use --format human or json, --results, --cache-dir, --bootstrap)"
                )
            _held_out(fmt, results, cache_dir, bootstrap)
            return
        if suite is None:
            raise ValueError("choose a suite with --suite NAME (see ckptrank bench --list)")
        if report is not None:
            if report.exists() and not report.is_dir():
                raise ValueError(f"--report {str(report)!r} exists and is not a folder; choose a folder path")
            check_out_writable(report, "--report")
        from ckptrank.bench.store import default_store_path
        from ckptrank.bench.suite import get_suite

        chosen = get_suite(suite)
        store = results
        if scores is None and chosen.can_score:
            if (
                store is None
            ):  # $CKPTRANK_RESULTS, else beside the feature cache (--cache-dir, $CKPTRANK_CACHE)
                store = str(default_store_path(cache_dir))
            if fmt == "human":
                typer.echo(
                    f"results store: {store} (scores recorded there are reused; --results picks another)",
                    err=True,
                )
        direction = {}
        for name in (lower_is_better or "").split(","):
            if name.strip():
                direction[name.strip()] = False

        def say(message: str) -> None:
            if fmt == "human":
                typer.echo(f"scoring {message}", err=True)

        from ckptrank.executors import get_executor

        runner = get_executor(executor, address=ray_address)
        with (
            cli_flag_names(),
            on_unreadable_default(on_unreadable_policy(on_unreadable)),
            contextlib.closing(runner),
        ):
            result = bench(
                chosen,
                measures=measures,
                scores=scores,
                store=store,
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
                **({"allow_code": True} if allow_code and chosen.can_score and scores is None else {}),
                executor=runner,
            )
        emit(result, fmt, verbose=verbose)
        if report is not None:
            from ckptrank.bench.report import write_report

            written = write_report(result, report)
            if fmt in ("human", "csv"):
                typer.echo(f"wrote {written['html']} and {len(written) - 1} more file(s)", err=True)

    run_with_error_mapping(run)


def _held_out(fmt: str, results: str | None, cache_dir: Path | None, bootstrap: int) -> None:
    """``ckptrank bench --held-out``: the default ranker's held-out evaluation, both schemes."""
    from rich.table import Table

    from ckptrank.bench.meta import (
        DEFAULT_SUITES,
        HELD_OUT_SUITES,
        LEARNED,
        calibrate_shortlist,
        default_held_out,
        meta_table,
    )
    from ckptrank.bench.store import default_store_path

    store = results or str(default_store_path(cache_dir))
    rows, truth = meta_table([*DEFAULT_SUITES, *HELD_OUT_SUITES], store=store)
    out: dict[str, Any] = {}
    for scheme, title in (("task", "leave one task out"), ("suite", "leave one suite out")):
        held = default_held_out(rows, truth, scheme=scheme, n_bootstrap=bootstrap)
        if scheme == "task":
            _, calibration = calibrate_shortlist(held)
            calibration["suite"] = calibration["task"].str.rpartition("/")[0]
            if fmt == "json":
                out["shortlist_calibration"] = json.loads(calibration.to_json(orient="records"))
        ev = held.evaluation
        versus = {scope: ev.versus(LEARNED, scope=scope) for scope in ["all", *ev.track_names]}
        if fmt == "json":
            out[scheme] = {
                "summary": json.loads(ev.summary.reset_index().to_json(orient="records")),
                "versus": {
                    k: json.loads(v.reset_index().to_json(orient="records")) for k, v in versus.items()
                },
            }
            continue
        table = Table(
            title=f"default ranker, held out ({title}): mean weighted tau",
            caption=f"{LEARNED} = the default ranker, vs each comparator on the same (task, checkpoint) "
            "pairs: diff [95% paired bootstrap interval], ✓/✗ when it excludes 0, ≈ otherwise. The default "
            "ranker is label-free (fitted on no task), so both schemes give it the same figures; the learned "
            "pairwise ranker and the best single measure are chosen without the held-out task (or suite).",
            caption_justify="left",
        )
        table.add_column("ranker / comparator")
        scopes = ["all", *ev.track_names]
        for scope in scopes:
            table.add_column(scope, justify="right")
        for name, row in ev.summary.iterrows():
            cells = [str(name)]
            for scope in scopes:
                tau = row["weighted_tau"] if scope == "all" else row.get(f"weighted_tau:{scope}")
                text = _fmt(tau)
                hit = versus[scope]
                if name != LEARNED and name in hit.index:
                    r = hit.loc[name]
                    mark = {"better": "✗", "worse": "✓", "tie": "≈"}.get(str(r["verdict"]), "")
                    text += f" ({-r['diff']:+.2f} [{-r['ci_high']:+.2f}, {-r['ci_low']:+.2f}] {mark})"
                cells.append(text)
            table.add_row(*cells)
        _print(table)
    if fmt != "json":
        _print(_calibration_table(calibration))
    if fmt == "json":
        typer.echo(json.dumps(out, indent=2, default=str))


def _calibration_table(calibration: Any) -> Any:
    """The held-out check of the 90% shortlist: per suite and overall, coverage and mean size."""
    from rich.table import Table

    table = Table(
        title="default ranker, held out (leave one task out): the 90% shortlist, p(best) from its error",
        caption="covers = tasks whose shortlist holds the checkpoint that did best in the suite's ground "
        "truth (target: at least 90%). The temperature of p(best) is fitted without the task, on the tasks "
        "where the ranker had measure scores (ckptrank rank always has them); tasks with descriptors only "
        "(the parameter count) are checked, not fitted on. Resampling the target set needs features, which "
        "published suites lack: benchmarks/bench_p_best.py measures it on neucrab-mini-v1 and v2.",
        caption_justify="left",
    )
    for column in ("suite", "tasks", "covers", "coverage", "mean size", "mean checkpoints"):
        table.add_column(column, justify="left" if column == "suite" else "right")
    groups = [(str(suite), group) for suite, group in calibration.groupby("suite", sort=False)]
    groups.append(("tasks with measure scores", calibration[calibration["has_measures"]]))
    groups.append(("tasks with descriptors only", calibration[~calibration["has_measures"]]))
    for suite, group in [*[g for g in groups if len(g[1])], ("all", calibration)]:
        table.add_row(
            suite,
            str(len(group)),
            f"{int(group['covered'].sum())}/{len(group)}",
            f"{group['covered'].mean():.3f}",
            f"{group['size'].mean():.2f}",
            f"{group['n_checkpoints'].mean():.1f}",
        )
    return table


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
