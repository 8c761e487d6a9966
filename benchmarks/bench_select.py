"""Does ``ckptrank select`` pick the true best checkpoint? Regret against budget on neucrab-mini v1 (image).

Usage::

    python benchmarks/bench_select.py --quick                 # small: see --help for what it cuts
    python benchmarks/bench_select.py                         # 3 image tasks, 3 seeds, 4 budgets, 3 signals
    python benchmarks/bench_select.py --check                 # also run the real select once and compare

What it measures. For every task of the neucrab-mini v1 image track and every selection seed ``s``:

1. **Stage 1** is :func:`ckptrank.rank` (defaults, ``seed=s``) on the task's training pool; its
   candidates are :func:`ckptrank.select.pick_candidates` (shortlist, at least 2, at most
   ``--max-candidates``).
2. **Curves.** Every candidate runs the ``full`` protocol of :func:`ckptrank.select.FinetuneRun`
   (``seed=s``, validation split seeded by ``s``, carved from the pool) and its validation accuracy
   (and ``beta_eff`` when a signal needs it) is read at every step any strategy below looks at.
   A run continued in slices is step-for-step the uninterrupted run (tested in
   ``tests/test_select.py``), so one run per candidate gives the stage results of every budget.
3. **Strategies**, for budgets of ``f`` times the cost of fine-tuning every candidate fully
   (``f * n * T`` fine-tuning steps, ``T`` the protocol's full length):

   * ``select[signal]``: successive halving with :func:`ckptrank.select.halving_schedule` and the
     library's own decision rule (:func:`ckptrank.select.order_by_signal`);
   * ``even``: the same budget spread evenly, ``f * T`` steps per candidate, best validation
     accuracy kept;
   * ``static``: stage 1's top checkpoint (no fine-tuning);
   * ``random``: a checkpoint drawn uniformly among *all* the suite's checkpoints (exact expectation).

4. **Scored against the ground truth** (``src/ckptrank/bench/ground_truth/neucrab_mini_image.csv``,
   protocol ``full``, mean test accuracy of the selected configuration over its 3 seeds): whether the
   choice is the true best of all checkpoints, and the top-1 regret (best minus chosen, accuracy
   points). Per task the values are averaged over seeds; the table gives the mean over tasks with a
   95 % percentile bootstrap interval over tasks (few tasks: a wide, rough interval), and the paired
   differences ``select[SIGNAL] - static`` for every signal, ``select[val_accuracy] - even`` and
   ``select[beta_eff] - select[val_accuracy]``.

The curves are kept in ``--out`` (one JSON file per task, seed and checkpoint), so a killed run
resumes. With ``--check`` the real :func:`ckptrank.select.select_checkpoint` runs once (first task,
first seed, smallest budget) and must agree with the simulation.

The ground truth searched a 2 x 2 grid of learning rate and weight decay; ``select`` trains one
configuration (lr 0.03, no weight decay: the one the ground truth selects most often). A full run here
is therefore not the ground-truth run, and "the cost of fine-tuning fully" counts one configuration.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

IMAGE_TASKS = ("digits", "fashion-mnist", "fashion-tops")
FRACTIONS = (0.05, 0.10, 0.25, 0.50)
SIGNALS = ("val_accuracy", "beta_eff", "combined")


# ---------------------------------------------------------------------------------------------------------
# ground truth


def ground_truth() -> pd.DataFrame:
    """Mean test accuracy (points) of every (task, checkpoint) under the full protocol."""
    from ckptrank.bench.neucrab_mini import CHECKPOINTS, ground_truth_csv

    runs = pd.read_csv(ground_truth_csv("image"))
    runs = runs[(runs["protocol"] == "full") & (runs["selected"] == 1)]
    table = runs.groupby(["task", "checkpoint"], as_index=False)["test_accuracy"].mean()
    table["accuracy"] = 100 * table["test_accuracy"]
    table["spec"] = table["checkpoint"].map(lambda c: CHECKPOINTS[c].spec)
    return table[["task", "checkpoint", "spec", "accuracy"]]


# ---------------------------------------------------------------------------------------------------------
# stage 1 and the curves (resumable)


def _read(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _write(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)


def stage1(task: Any, specs: list[str], seed: int, max_candidates: int, out: Path) -> dict[str, Any]:
    """Stage 1 of one (task, seed): the ranking and the candidates (cached in ``out``, per shipped ranker).

    The cache key holds a digest of the shipped default ranker file, so a new default ranker (or a new
    ``p_best`` rule in it) never reuses the candidates of the previous one.
    """
    from ckptrank import rank
    from ckptrank.combine import default_ranker
    from ckptrank.rankers import digest
    from ckptrank.select import pick_candidates

    ranker = digest(default_ranker().to_dict())[:12]
    path = out / "stage1" / f"{task.name}-seed{seed}-k{max_candidates}-{ranker}.json"
    cached = _read(path)
    if cached is not None:
        return cached
    t0 = time.perf_counter()
    frame = rank(task.pool, specs, seed=seed, progress=False)
    seconds = time.perf_counter() - t0
    payload = {
        "candidates": pick_candidates(frame, 2, max_candidates),
        "ranking": [str(s) for s in frame.loc[frame["status"] == "ok"].sort_values("rank")["checkpoint"]],
        "shortlist": [str(s) for s in frame.loc[frame["shortlist"].astype(bool), "checkpoint"]],
        "ranks": {str(r.checkpoint): float(r.rank) for r in frame.itertuples() if math.isfinite(r.rank)},
        "seconds": seconds,
    }
    _write(path, payload)
    return payload


def needed_steps(n: int, total: int, fractions: tuple[float, ...]) -> list[int]:
    """Every step a strategy looks at, for ``n`` candidates of ``total`` steps each."""
    from ckptrank.select import halving_rounds, halving_schedule

    steps: set[int] = set()
    for f in fractions:
        budget = round(f * n * total)
        steps.add(min(max(1, math.floor(budget / n)), total))
        if budget >= halving_rounds(n) * n:
            steps.update(r["steps_to"] for r in halving_schedule(n, budget, total))
    return sorted(steps)


def curve(
    task: Any, spec: str, seed: int, config: Any, n: int, fractions: tuple[float, ...], beta: bool, out: Path
) -> dict[str, Any]:
    """One candidate's validation accuracy (and beta_eff) at every needed step (cached in ``out``)."""
    from ckptrank.select import FinetuneRun

    safe = spec.replace(":", "_").replace("?", "_").replace("=", "_").replace("/", "_")
    path = out / "curves" / f"{task.name}-seed{seed}-{safe}.json"
    cached = _read(path)
    if cached is not None and (not beta or all(p.get("beta_eff") is not None for p in cached["points"])):
        steps_cached = {p["step"] for p in cached["points"]}
        if set(needed_steps(n, cached["total_steps"], fractions)) <= steps_cached:
            return cached
    t0 = time.perf_counter()
    run = FinetuneRun(spec, task.pool, config, seed=seed, split_seed=seed)
    setup = time.perf_counter() - t0
    points = []
    train_seconds = 0.0
    for step in needed_steps(n, run.total_steps, fractions):
        t1 = time.perf_counter()
        run.advance(step - run.step)
        train_seconds += time.perf_counter() - t1
        acc, loss = run.evaluate()
        value = run.beta_eff(random_state=seed) if beta else None
        points.append(
            {
                "step": run.step if not run.diverged else step,
                "val_accuracy": acc,
                "val_loss": loss if math.isfinite(loss) else None,
                "beta_eff": value if value is None or math.isfinite(value) else None,
                "diverged": run.diverged,
            }
        )
    payload = {
        "task": task.name,
        "checkpoint": spec,
        "seed": seed,
        "total_steps": run.total_steps,
        "n_val": run.n_val,
        "points": points,
        "setup_seconds": setup,
        "train_seconds": train_seconds,
        "seconds": time.perf_counter() - t0,
    }
    _write(path, payload)
    return payload


# ---------------------------------------------------------------------------------------------------------
# strategies


def _rows_at(curves: dict[str, dict[str, Any]], specs: list[str], step: int) -> pd.DataFrame:
    rows = []
    for spec in specs:
        point = next(
            p for p in curves[spec]["points"] if p["step"] == step or (p["diverged"] and p["step"] <= step)
        )
        rows.append(
            {
                "checkpoint": spec,
                "val_accuracy": point["val_accuracy"],
                "val_loss": math.inf if point["val_loss"] is None else point["val_loss"],
                "beta_eff": math.nan if point["beta_eff"] is None else point["beta_eff"],
                "diverged": point["diverged"],
            }
        )
    return pd.DataFrame(rows)


def simulate_halving(
    curves: dict[str, dict[str, Any]],
    candidates: list[str],
    budget: int,
    signal: str,
    ranks: dict[str, float],
) -> str:
    """The choice of successive halving with the library's schedule and decision rule."""
    from ckptrank.select import halving_schedule, order_by_signal

    total = curves[candidates[0]]["total_steps"]
    survivors = list(candidates)
    for round_ in halving_schedule(len(candidates), budget, total):
        order, _ = order_by_signal(signal, _rows_at(curves, survivors, round_["steps_to"]), ranks)
        survivors = order[: round_["kept"]]
    return survivors[0]


def simulate_even(
    curves: dict[str, dict[str, Any]], candidates: list[str], budget: int, ranks: dict[str, float]
) -> str:
    from ckptrank.select import order_by_signal

    total = curves[candidates[0]]["total_steps"]
    step = min(max(1, math.floor(budget / len(candidates))), total)
    order, _ = order_by_signal("val_accuracy", _rows_at(curves, candidates, step), ranks)
    return order[0]


# ---------------------------------------------------------------------------------------------------------
# statistics


def bootstrap(values: np.ndarray, n_boot: int, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of the mean, resampling the rows (tasks)."""
    values = np.asarray(values, dtype=float)
    if values.size < 2 or n_boot <= 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_boot, values.size))].mean(axis=1)
    return (float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)))


def summarize(choices: pd.DataFrame, n_boot: int) -> pd.DataFrame:
    """Per (strategy, fraction): P(true best) and regret, mean over tasks (of the mean over seeds)."""
    keys = ["strategy", "fraction", "task"]
    per_task = choices.groupby(keys, as_index=False, dropna=False, sort=False)[["best", "regret"]].mean()
    rows = []
    for (strategy, fraction), group in per_task.groupby(["strategy", "fraction"], sort=False, dropna=False):
        p_lo, p_hi = bootstrap(group["best"].to_numpy(), n_boot)
        r_lo, r_hi = bootstrap(group["regret"].to_numpy(), n_boot)
        rows.append(
            {
                "strategy": strategy,
                "fraction": fraction,
                "tasks": len(group),
                "p_best": group["best"].mean(),
                "p_best_ci": (p_lo, p_hi),
                "regret": group["regret"].mean(),
                "regret_ci": (r_lo, r_hi),
            }
        )
    return pd.DataFrame(rows)


def paired(choices: pd.DataFrame, a: str, b: str, n_boot: int) -> pd.DataFrame:
    """Regret of ``a`` minus regret of ``b`` per fraction (paired by task and seed), mean over tasks."""
    rows = []
    for fraction in sorted(choices["fraction"].dropna().unique()):
        left = choices[(choices.strategy == a) & (choices.fraction == fraction)].set_index(["task", "seed"])
        right = choices[(choices.strategy == b) & ((choices.fraction == fraction) | choices.fraction.isna())]
        right = right.set_index(["task", "seed"])
        joined = left[["regret"]].rename(columns={"regret": "regret_a"})
        joined = joined.join(right[["regret"]].rename(columns={"regret": "regret_b"}), how="inner")
        if not len(joined):
            continue
        diff = (joined["regret_a"] - joined["regret_b"]).groupby(level="task").mean()
        lo, hi = bootstrap(diff.to_numpy(), n_boot)
        rows.append(
            {"a": a, "b": b, "fraction": fraction, "tasks": len(diff), "diff": diff.mean(), "ci": (lo, hi)}
        )
    return pd.DataFrame(rows)


def _ci(pair: tuple[float, float], digits: int = 2) -> str:
    lo, hi = pair
    return "—" if not (math.isfinite(lo) and math.isfinite(hi)) else f"[{lo:.{digits}f}, {hi:.{digits}f}]"


def markdown(summary: pd.DataFrame, diffs: pd.DataFrame) -> str:
    lines = [
        "| strategy | budget (share of full fine-tuning of every candidate) | tasks | P(true best) | 95% CI "
        "| top-1 regret (points) | 95% CI |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in summary.itertuples():
        budget = "—" if not math.isfinite(row.fraction) else f"{100 * row.fraction:g}%"
        lines.append(
            f"| {row.strategy} | {budget} | {row.tasks} | {row.p_best:.2f} | {_ci(row.p_best_ci)} "
            f"| {row.regret:.2f} | {_ci(row.regret_ci)} |"
        )
    if len(diffs):
        lines += [
            "",
            "| paired regret difference | budget | tasks | mean (points) | 95% CI |",
            "|---|---|---|---|---|",
        ]
        for row in diffs.itertuples():
            lines.append(
                f"| {row.a} - {row.b} | {100 * row.fraction:g}% | {row.tasks} | {row.diff:+.2f} "
                f"| {_ci(row.ci)} |"
            )
    return "\n".join(lines)


def plot(summary: pd.DataFrame, path: Path) -> None:
    """Regret against budget, one line per strategy (Figure + Agg, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for strategy, group in summary.groupby("strategy", sort=False):
        if group["fraction"].isna().all():
            style = {"static": ("#444444", "--"), "random": ("#999999", ":")}.get(strategy, ("#1b7837", "-."))
            ax.axhline(group["regret"].iloc[0], color=style[0], ls=style[1], lw=1, label=strategy)
            continue
        group = group.sort_values("fraction")
        x = 100 * group["fraction"]
        ax.plot(x, group["regret"], marker="o", label=strategy)
        lo = [c[0] for c in group["regret_ci"]]
        hi = [c[1] for c in group["regret_ci"]]
        if all(math.isfinite(v) for v in lo + hi):
            ax.fill_between(x, lo, hi, alpha=0.12)
    ax.set_xlabel("budget (% of fine-tuning every candidate fully)")
    ax.set_ylabel("top-1 regret (accuracy points, mean over tasks)")
    ax.set_xscale("log")
    ax.minorticks_off()
    ticks = sorted({round(100 * f, 6) for f in summary["fraction"].dropna()})
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.legend(fontsize=7)
    ax.set_title("ckptrank select on neucrab-mini v1 (image)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png")


# ---------------------------------------------------------------------------------------------------------
# driver


def _choice(
    strategy: str, fraction: float, choice: str, *, task: str, seed: int, n: int, gt: pd.Series, best: float
) -> dict[str, Any]:
    return {
        "task": task,
        "seed": seed,
        "strategy": strategy,
        "fraction": fraction,
        "choice": choice,
        "candidates": n,
        "best": float(gt[choice] == best),
        "regret": best - float(gt[choice]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="2 tasks (digits, fashion-tops), 3 seeds, 4 candidates at most"
    )
    parser.add_argument(
        "--tasks", nargs="*", default=None, help=f"image tasks (default {', '.join(IMAGE_TASKS)})"
    )
    parser.add_argument("--seeds", type=int, default=3, help="selection seeds 0..N-1 (default 3)")
    parser.add_argument("--max-candidates", type=int, default=8)
    parser.add_argument("--fractions", default=",".join(str(f) for f in FRACTIONS))
    parser.add_argument("--signals", default=",".join(SIGNALS))
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--check", action="store_true", help="run the real select once and compare")
    parser.add_argument("--out", type=Path, default=None, help="folder of the cached curves and the results")
    args = parser.parse_args(argv)

    import torch

    from ckptrank.bench.neucrab_mini import CHECKPOINTS, load_suite_task
    from ckptrank.select import default_select_config, halving_rounds

    if args.threads:
        torch.set_num_threads(args.threads)
    tasks = args.tasks or (["digits", "fashion-tops"] if args.quick else list(IMAGE_TASKS))
    max_candidates = min(args.max_candidates, 4) if args.quick else args.max_candidates
    fractions = tuple(float(f) for f in args.fractions.split(","))
    signals = tuple(s for s in args.signals.split(",") if s)
    out = (
        args.out
        or Path(os.environ.get("CKPTRANK_CACHE", Path.home() / ".cache" / "ckptrank")) / "bench_select"
    )
    out.mkdir(parents=True, exist_ok=True)
    config = default_select_config()
    truth = ground_truth()
    specs = [c.spec for c in CHECKPOINTS.values() if c.track == "image"]
    need_beta = any(s in ("beta_eff", "combined") for s in signals)
    t_start = time.perf_counter()

    choices = []
    timings = []
    for name in tasks:
        task = load_suite_task(name)
        gt = truth[truth.task == name].set_index("spec")["accuracy"]
        best = float(gt.max())
        n_best_all = int((gt == best).sum())
        for seed in range(args.seeds):
            s1 = stage1(task, specs, seed, max_candidates, out)
            candidates = s1["candidates"]
            ranks = s1["ranks"]
            n = len(candidates)
            curves = {}
            for spec in candidates:
                curves[spec] = curve(task, spec, seed, config, n, fractions, need_beta, out)
                timings.append(
                    {"task": name, "seed": seed, "checkpoint": spec, "seconds": curves[spec]["seconds"]}
                )
                print(
                    f"[{time.perf_counter() - t_start:7.0f} s] {name} seed {seed} {spec}: "
                    f"{len(curves[spec]['points'])} points, {curves[spec]['seconds']:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
            total = curves[candidates[0]]["total_steps"]

            def record(strategy: str, fraction: float, choice: str, context: dict[str, Any]) -> None:
                choices.append(_choice(strategy, fraction, choice, **context))

            context = {"task": name, "seed": seed, "n": n, "gt": gt, "best": best}
            record("static", math.nan, s1["ranking"][0], context)
            choices.append(
                {
                    "task": name,
                    "seed": seed,
                    "strategy": "random",
                    "fraction": math.nan,
                    "choice": None,
                    "candidates": len(gt),
                    "best": n_best_all / len(gt),
                    "regret": float((best - gt).mean()),
                }
            )
            shortlist_best = max(candidates, key=lambda c: gt[c])
            record("best in candidates", math.nan, shortlist_best, context)
            for fraction in fractions:
                budget = round(fraction * n * total)
                record("even", fraction, simulate_even(curves, candidates, budget, ranks), context)
                if budget < halving_rounds(n) * n:
                    continue
                for signal in signals:
                    choice = simulate_halving(curves, candidates, budget, signal, ranks)
                    record(f"select[{signal}]", fraction, choice, context)

    frame = pd.DataFrame(choices)
    frame.to_csv(out / "choices.csv", index=False)
    summary = summarize(frame, args.bootstrap)
    diffs = pd.concat(
        [
            *(paired(frame, f"select[{signal}]", "static", args.bootstrap) for signal in signals),
            paired(frame, "select[val_accuracy]", "even", args.bootstrap),
            *(
                [paired(frame, "select[beta_eff]", "select[val_accuracy]", args.bootstrap)]
                if "beta_eff" in signals
                else []
            ),
            *(
                [paired(frame, "select[combined]", "select[val_accuracy]", args.bootstrap)]
                if "combined" in signals
                else []
            ),
        ],
        ignore_index=True,
    )
    text = markdown(summary, diffs)
    elapsed = time.perf_counter() - t_start
    cost = pd.DataFrame(timings)
    header = (
        f"tasks {', '.join(tasks)}; seeds {args.seeds}; candidates at most {max_candidates} "
        f"(per task and seed: {frame.loc[frame.strategy == 'static', 'candidates'].tolist()}); "
        f"fractions {list(fractions)}; signals {list(signals)}; "
        f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}; "
        f"wall {elapsed:.0f} s (curve runs: {cost['seconds'].sum():.0f} s if computed now)"
    )
    (out / "results.md").write_text(header + "\n\n" + text + "\n")
    try:
        plot(summary, out / "regret_vs_budget.png")
    except ImportError:
        print("regret_vs_budget.png not drawn: matplotlib is missing", file=sys.stderr)
    print(header)
    print()
    print(text)

    if args.check:
        check(tasks[0], specs, fractions, max_candidates, config, out)
    return 0


def check(
    name: str, specs: list[str], fractions: tuple[float, ...], max_candidates: int, config: Any, out: Path
) -> None:
    """Run the real selection once (seed 0) and compare its stages with the simulation's curves."""
    from ckptrank.bench.neucrab_mini import load_suite_task
    from ckptrank.select import select_checkpoint

    task = load_suite_task(name)
    s1 = stage1(task, specs, 0, max_candidates, out)
    n = len(s1["candidates"])
    fraction = min(fractions)
    curves = {spec: curve(task, spec, 0, config, n, fractions, False, out) for spec in s1["candidates"]}
    total = curves[s1["candidates"][0]]["total_steps"]
    budget = round(fraction * n * total)
    expected = simulate_halving(curves, s1["candidates"], budget, "val_accuracy", s1["ranks"])
    result = select_checkpoint(
        task.pool,
        specs,
        budget=f"{budget}steps",
        seed=0,
        max_candidates=max_candidates,
        config=config,
        out=out / "check",
        overwrite=True,
    )
    agree = 0
    for row in result.stages.itertuples():
        point = next(p for p in curves[row.checkpoint]["points"] if p["step"] == row.steps_to)
        agree += int(point["val_accuracy"] == row.val_accuracy)
    print(
        f"check: {name}, budget {budget} steps: select chose {result.chosen}, the simulation {expected}; "
        f"{agree} of {len(result.stages)} stage accuracies identical to the curves"
    )


if __name__ == "__main__":
    raise SystemExit(main())
