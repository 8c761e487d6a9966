"""Neural capacitance on neucrab-mini v1: beta_eff beside the early-accuracy baseline and the static measures.

Usage::

    python benchmarks/bench_beff.py                       # frozen backbone, full-protocol truth
    python benchmarks/bench_beff.py --protocol linear     # against the linear-probe ground truth
    python benchmarks/bench_beff.py --finetune            # also the fine-tuned-backbone measures
    python benchmarks/bench_beff.py --write               # replace the section of RESULTS.md

Scores go through ``ckptrank.bench.score_suite`` (so the results store keeps them and a re-run only
evaluates). For every early-training budget it evaluates, per checkpoint and task of the suite:

* ``beff`` (raw ``beta_eff`` after ``--epochs``), ``beff[within_run_brr]`` (Bayesian ridge within
  the run) and the cross-model predictions ``beff[cross_model_brr]`` and
  ``beff+probe_accuracy[cross_model_brr]``, each task's candidates ranked by one fit on the other
  tasks (``ckptrank.bench.cross_model``, leave one task out);
* the natural baseline with the same budget, ``probe_accuracy`` (and its cross-model twin);
* with ``--finetune``, the same two with the backbone fine-tuned (``beff_finetune``,
  ``probe_accuracy_finetune``, ``--finetune-epochs``);
* the static measures for scale (their scores are usually in the store from ``ckptrank bench``).

Weighted Kendall tau is ``scipy.stats.weightedtau``'s default, averaged over tasks, with a 95 %
bootstrap interval over checkpoints; cost is the median scoring time per checkpoint.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

RESULTS = Path(__file__).with_name("RESULTS.md")
STATIC = ["linear_probe", "knn", "logme", "nleep", "sfda", "parc", "gbc", "hscore", "leep"]


def _score(
    suite: Any,
    measures: list[str],
    options: dict[str, dict[str, Any]] | None,
    rename: dict[str, str] | None = None,
    tasks: list[str] | None = None,
) -> pd.DataFrame:
    """The suite's scores of ``measures`` (from the store where present), measures renamed."""
    from ckptrank.bench.harness import score_suite

    result = score_suite(suite, measures, measure_options=options, progress=False, tasks=tasks)
    scores = result.scores.copy()
    if rename:
        scores["measure"] = scores["measure"].replace(rename)
    return scores


def _share_cost(scores: pd.DataFrame, payer: str, reader: str) -> pd.DataFrame:
    """Give ``reader``'s rows the time of ``payer``'s row of the same (task, checkpoint)."""
    cost = scores[scores["measure"] == payer].set_index(["task", "checkpoint"])["seconds"]
    rows = scores["measure"] == reader
    keys = list(zip(scores.loc[rows, "task"], scores.loc[rows, "checkpoint"], strict=True))
    out = scores.copy()
    out.loc[rows, "seconds"] = [cost.get(key, float("nan")) for key in keys]
    return out


def _duplicate_rows(table: pd.DataFrame) -> dict[str, str]:
    """Rows equal to an earlier-listed row on every task (NaN where it is NaN): row -> the row kept.

    Of two equal rows the one with the shorter name is kept (the plain reading, not its ridge twin).
    """
    kept: dict[tuple[Any, ...], str] = {}
    duplicates: dict[str, str] = {}
    for measure in sorted(table.index, key=lambda m: (len(m), m)):
        key = tuple("nan" if pd.isna(v) else round(float(v), 9) for v in table.loc[measure])
        if key in kept:
            duplicates[measure] = kept[key]
        else:
            kept[key] = measure
    return duplicates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="full")
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 5])
    parser.add_argument(
        "--coupling-epochs",
        type=int,
        nargs="*",
        default=[],
        help="budgets at which beff is also scored with weighting=gradient_coupling",
    )
    parser.add_argument("--finetune", action="store_true")
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument(
        "--finetune-tasks", default=None, help="comma-separated tasks for the fine-tuned-backbone measures"
    )
    parser.add_argument("--bootstrap", type=int, default=300)
    parser.add_argument("--static", default=",".join(STATIC))
    parser.add_argument("--write", action="store_true", help="replace this script's section of RESULTS.md")
    args = parser.parse_args()

    from ckptrank.bench.cross_model import leave_one_out_cross_model
    from ckptrank.bench.evaluate import evaluate_suite
    from ckptrank.bench.suite import get_suite

    suite = get_suite("neucrab-mini-v1")
    truth = suite.truth(suite.resolve_protocol(args.protocol))
    parts = []
    started = time.perf_counter()
    static = [m for m in args.static.split(",") if m]
    if static:
        parts.append(_score(suite, static, None))
    for epochs in args.epochs:
        budget = {"epochs": epochs}
        tag = f"@{epochs}ep"
        raw = _score(
            suite,
            ["beff", "probe_accuracy"],
            {"beff": budget, "probe_accuracy": budget},
            rename={"beff": f"beff{tag}", "probe_accuracy": f"probe_accuracy{tag}"},
        )
        within = _score(
            suite,
            ["beff"],
            {"beff": {**budget, "mode": "within_run_brr"}},
            rename={"beff": f"beff[within_run_brr]{tag}"},
        )
        # probe_accuracy reads beff's cached training run, so its own call costs nothing: charge it
        # the same training time (equal budget, equal cost).
        raw = _share_cost(raw, f"beff{tag}", f"probe_accuracy{tag}")
        parts += [raw, within]
        for inputs in ([f"beff{tag}"], [f"probe_accuracy{tag}"], [f"beff{tag}", f"probe_accuracy{tag}"]):
            parts.append(leave_one_out_cross_model(raw, truth, inputs))
    for epochs in args.coupling_epochs:
        tag = f"[gradient_coupling]@{epochs}ep"
        coupled = _score(
            suite,
            ["beff"],
            {"beff": {"epochs": epochs, "weighting": "gradient_coupling"}},
            rename={"beff": f"beff{tag}"},
        )
        parts += [coupled, leave_one_out_cross_model(coupled, truth, [f"beff{tag}"])]
    if args.finetune:
        budget = {"epochs": args.finetune_epochs}
        tag = f"@{args.finetune_epochs}ep"
        ft = _score(
            suite,
            ["beff_finetune", "probe_accuracy_finetune"],
            {"beff_finetune": budget, "probe_accuracy_finetune": budget},
            rename={
                "beff_finetune": f"beff_finetune{tag}",
                "probe_accuracy_finetune": f"probe_accuracy_finetune{tag}",
            },
            tasks=args.finetune_tasks.split(",") if args.finetune_tasks else None,
        )
        ft = _share_cost(ft, f"beff_finetune{tag}", f"probe_accuracy_finetune{tag}")
        parts.append(ft)
        parts.append(leave_one_out_cross_model(ft, truth, [f"beff_finetune{tag}"]))
    scores = pd.concat(parts, ignore_index=True)
    higher = dict.fromkeys(scores["measure"].unique(), True)
    evaluation = evaluate_suite(
        suite,
        scores[["task", "checkpoint", "measure", "score", "seconds"]],
        protocol=args.protocol,
        higher_is_better=higher,
        n_bootstrap=args.bootstrap,
    )
    summary = evaluation.summary
    table = evaluation.task_table("weighted_tau")
    lines = [
        f"neucrab-mini v1, `{args.protocol}` ground truth; `python benchmarks/bench_beff.py --protocol "
        f"{args.protocol} --epochs {' '.join(map(str, args.epochs))}"
        + (f" --coupling-epochs {' '.join(map(str, args.coupling_epochs))}" if args.coupling_epochs else "")
        + (f" --finetune --finetune-epochs {args.finetune_epochs}" if args.finetune else "")
        + (f" --finetune-tasks {args.finetune_tasks}" if args.finetune and args.finetune_tasks else "")
        + f" --bootstrap {args.bootstrap}`; {platform.machine()}, {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d')}; seed agreement {evaluation.mean_seed_agreement():.3f}.",
        "",
        "| measure | "
        + " | ".join(table.columns)
        + " | 95 % CI of mean | s / checkpoint | beats best baseline |",
        "|---|" + "---|" * (len(table.columns) + 3),
    ]
    order = [m for m in summary.sort_values("weighted_tau", ascending=False).index if m in table.index]
    duplicates = _duplicate_rows(table.loc[order])
    for measure in order:
        if measure in duplicates:
            continue
        row = summary.loc[measure]
        cells = " | ".join("" if pd.isna(v) else f"{v:.3f}" for v in table.loc[measure])
        ci = (
            f"[{row['weighted_tau_ci_low']:.2f}, {row['weighted_tau_ci_high']:.2f}]"
            if "weighted_tau_ci_low" in row and pd.notna(row.get("weighted_tau_ci_low"))
            else ""
        )
        seconds = "" if pd.isna(row.get("seconds")) else f"{row['seconds']:.2f}"
        beats = "" if row["kind"] == "baseline" else ("yes" if row.get("beats_baseline") else "no")
        lines.append(f"| {measure} | {cells} | {ci} | {seconds} | {beats} |")
    lines.append("")
    if duplicates:
        lines.append(
            "Rows left out because they equal another row on every task (the same ranking of every task's "
            "checkpoints, so the same weighted tau): "
            + "; ".join(f"`{dup}` = `{kept}`" for dup, kept in duplicates.items())
            + ". A one-input cross-model ridge is a monotone map of its input, and a one-epoch within-run "
            "ridge returns the early accuracy itself."
        )
        lines.append("")
    lines.append(f"Wall time of this script: {time.perf_counter() - started:.0f} s.")
    text = "\n".join(lines)
    sys.stdout.write(text + "\n")
    if args.write:
        start, end = f"<!-- bench_beff:{args.protocol}:start -->", f"<!-- bench_beff:{args.protocol}:end -->"
        current = RESULTS.read_text()
        title = f"## Neural capacitance on neucrab-mini v1, `{args.protocol}` ground truth (bench_beff.py)"
        block = f"{start}\n{title}\n\n{text}\n{end}"
        if start in current:
            head, rest = current.split(start, 1)
            current = head + block + rest.split(end, 1)[1]
        else:
            current = current.rstrip() + "\n\n" + block + "\n"
        RESULTS.write_text(current)


if __name__ == "__main__":
    main()
