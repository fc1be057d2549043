"""Benchmark outputs: ``summary.json``, ``report.md`` and PNG plots from the collected results.

``summary.json`` keys (lists have one value per step 1..budget; ``null`` where undefined):
  methods, reference, tasks, seeds, budget (steps reported: the requested budget capped at the
  largest pool), requested_budget, mean_normalized_regret, median_normalized_regret,
  q25_normalized_regret, q75_normalized_regret, sem_normalized_regret, mean_simple_regret
  (method -> list), average_rank (method -> list), speedup (baseline -> {"25": x, "50": x,
  "100": x}), min_speedup ({"25": x, ...}), speedup_upper_bound ({"25": 25/T, ...}: the bound
  a ``null`` speedup lies below), speedup_definition, no_results (methods without any finished
  unit, left out of the comparison), runs (method -> finished units), failures,
  capped_tasks, excluded_related, cost (method -> timing), plots.
Budgets (10, 25, 50, 100) above the reported budget are left out of the speedup tables.

Measures beside the ratio that do not hide behind ties (``metabo.bench.metrics``):
  deterministic_methods (methods whose seeds repeat the same index sequence on every task;
  counted once per task below), top1_fraction (0.01), top1_threshold (task -> score to reach),
  top1_threshold_source ("pool scores", or "evaluated points" when no pool scores were passed:
  the k-th best point any stored run evaluated, a lower bound on the pool's threshold),
  evaluations_to_top1 (method -> {task: mean evaluations over counted seeds, not-reached seeds
  counted as T + 1; null when no counted seed reached}), top1_reached (method -> {task:
  [seeds reached, seeds counted]}), top1_speedup (baseline -> geometric mean over tasks of
  baseline's / reference's evaluations_to_top1, same rule), top1_speedup_tasks (baseline ->
  tasks used), top1_speedup_interval (baseline -> [low, high]), min_top1_speedup and
  min_top1_speedup_interval (minimum over baselines), min_speedup_interval ({"10": [low, high],
  ...}; a null end lies below s/T), bootstrap (resamples, level, seed, over), top1_definition.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from metabo.bench.metrics import (
    BOOTSTRAP_LEVEL,
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    DEFAULT_BUDGETS,
    TOP_FRACTION,
    aggregate,
    average_rank,
    bootstrap_min_speedup,
    bootstrap_top_speedup,
    bootstrap_weights,
    counted_runs,
    curve_matrix,
    deterministic_methods,
    efficiency_table,
    evaluations_to_top,
    per_task_evaluations,
    percentile_interval,
    top_fraction_threshold,
    top_log_ratios,
    top_speedup,
)
from metabo.io import atomic_write_text, atomic_write_with

SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.md"
REGRET_PLOT = "regret.png"
RANK_PLOT = "rank.png"
# Log-scale plots cannot show 0 (the pool's best was found); such values are drawn at this floor.
PLOT_FLOOR = 1e-4

SPEEDUP_DEFINITION = (
    "speedup_b(s) = s / t_R(r_b(s)), where r_b(s) is baseline b's mean normalized regret after s "
    "evaluations and t_R(r) the first step (1-based) at which the reference method's mean normalized "
    "regret is <= r. null: the reference does not reach r_b(s) within the budget T, so the speedup "
    "is below s/T (speedup_upper_bound). min_speedup is the minimum over baselines (null if any is null)."
)
TOP1_DEFINITION = (
    "Evaluations to the top 1%: the first step whose best-so-far is >= the k-th best score of the target's "
    "pool, k = max(1, ceil(0.01 * pool size)). Not reached within a run's T steps: counted as T + 1 "
    "evaluations (so an average or ratio involving it is a bound); a task where no counted seed reached "
    "it is 'not reached'. top1_speedup_b = geometric mean over tasks of b's / the reference's mean "
    "evaluations. Deterministic methods (seeds repeat the same index sequence on every task) count one seed "
    "per task. Intervals: 90% percentile bootstrap over tasks (2000 resamples with replacement, seed 0)."
)
DETERMINISTIC_MARK = "deterministic: seeds repeat"


def plural(count, word: str, many: str | None = None) -> str:
    """``count`` and ``word`` in the right number: ``plural(1, "seed")`` -> ``"1 seed"``, else "3 seeds"."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def _clean(value):
    """NaN/inf -> None and NumPy scalars -> Python, recursively, for strict JSON."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def summarize(results: pd.DataFrame, config, plan, failures, budgets=DEFAULT_BUDGETS, pool_scores=None) -> dict:
    """The benchmark's numbers as a JSON-ready dict (see the module docstring).

    ``pool_scores``: task -> the target pool's scores (maximized), for the top-1% thresholds;
    without it they are estimated from the points the stored runs evaluated.
    """
    methods = list(config.methods)
    tasks = list(plan.pool_sizes)
    largest_pool = max(plan.pool_sizes.values()) if plan.pool_sizes else 0
    horizon = int(min(int(config.budget), largest_pool))
    normalized = curve_matrix(results, "normalized_regret", budget=horizon, methods=methods)
    simple = curve_matrix(results, "simple_regret", budget=horizon, methods=methods)

    stats = {m: aggregate(normalized.values[i]) for i, m in enumerate(methods)}
    simple_mean = {m: aggregate(simple.values[i])["mean"] for i, m in enumerate(methods)}
    ranks = average_rank(normalized.values) if horizon else np.zeros((len(methods), 0))
    mean_curves = {m: stats[m]["mean"] for m in methods}

    speedups: dict = {}
    minimum: dict = {}
    upper: dict = {}
    # Methods without any finished unit have no curve: they are listed, not compared.
    no_results = [m for m in methods if not np.isfinite(mean_curves[m]).any()]
    if config.reference is not None and horizon and config.reference not in no_results:
        compared = {m: c for m, c in mean_curves.items() if m not in no_results}
        table, low = efficiency_table(compared, config.reference, budgets)
        speedups = {b: {str(s): v for s, v in row.items()} for b, row in table.items()}
        minimum = {str(s): v for s, v in low.items()}
        upper = {str(s): s / horizon for s in budgets if s <= horizon}

    tie_free = _tie_free_measures(results, config, plan, normalized, no_results, budgets, horizon, pool_scores)

    finished = results[["method", "task", "seed"]].drop_duplicates().groupby("method").size()
    capped = {t: n for t, n in plan.pool_sizes.items() if n < int(config.budget)}
    return _clean(
        {
            "methods": methods,
            "reference": config.reference,
            "tasks": tasks,
            "seeds": int(config.seeds),
            "budget": horizon,
            "requested_budget": int(config.budget),
            "mean_normalized_regret": mean_curves,
            "median_normalized_regret": {m: stats[m]["median"] for m in methods},
            "q25_normalized_regret": {m: stats[m]["q25"] for m in methods},
            "q75_normalized_regret": {m: stats[m]["q75"] for m in methods},
            "sem_normalized_regret": {m: stats[m]["sem"] for m in methods},
            "mean_simple_regret": simple_mean,
            "average_rank": {m: ranks[i] for i, m in enumerate(methods)},
            "speedup": speedups,
            "min_speedup": minimum,
            "speedup_upper_bound": upper,
            "speedup_definition": SPEEDUP_DEFINITION,
            "no_results": no_results,
            "runs": {m: int(finished.get(m, 0)) for m in methods},
            "failures": [
                {"method": f.method, "task": f.task, "seed": f.seed, "error": f.error} for f in failures
            ],
            **tie_free,
            "capped_tasks": capped,
            "excluded_related": {t: r for t, r in plan.related.items()},
            "cost": _cost(results, methods),
            "config": {
                "seed": int(config.seed),
                "failures": config.failures,
                "exclude_related": bool(config.exclude_related),
                "method_options": {m: config.options_for(m) for m in methods},
            },
        }
    )


def _top1_thresholds(results: pd.DataFrame, tasks, pool_sizes, pool_scores):
    """task -> top-1% threshold, and where it came from."""
    if pool_scores is not None:
        out = {}
        for t in tasks:
            scores = np.asarray(pool_scores.get(t, []), dtype=np.float64)
            out[t] = top_fraction_threshold(scores, TOP_FRACTION) if np.isfinite(scores).any() else None
        return out, "pool scores"
    # Without the pools: the k-th best of the distinct points the stored runs evaluated (k from the
    # pool size), a lower bound on the pool's threshold (exact when its top k were all evaluated).
    out = {}
    for t in tasks:
        rows = results[results["task"].astype(str) == str(t)] if len(results) else results
        size = int(pool_sizes.get(t, 0))
        if not len(rows) or size < 1:
            out[t] = None
            continue
        seen = rows.drop_duplicates("index")["y"].to_numpy(dtype=np.float64)
        k = max(1, math.ceil(TOP_FRACTION * size - 1e-9))
        seen = np.sort(seen[np.isfinite(seen)])[::-1]
        out[t] = float(seen[k - 1]) if seen.size >= k else None
    return out, "evaluated points"


def _interval(samples):
    """Bootstrap samples -> [low, high] with -inf (below s/T) as null; None if undefined."""
    bounds = percentile_interval(samples, BOOTSTRAP_LEVEL)
    if bounds is None:
        return None
    return [b if math.isfinite(b) else None for b in bounds]


def _tie_free_measures(results, config, plan, normalized, no_results, budgets, horizon, pool_scores) -> dict:
    """The summary keys of the top-1% measures, deterministic methods and bootstrap intervals."""
    methods = list(config.methods)
    tasks = list(plan.pool_sizes)
    empty = not len(results) or not {"index", "best_so_far", "y"} <= set(results.columns)
    deterministic = [] if empty else deterministic_methods(results, methods)
    thresholds, source = _top1_thresholds(results, tasks, plan.pool_sizes, pool_scores) if not empty else ({}, None)
    per_task = per_task_evaluations(evaluations_to_top(results, thresholds, deterministic)) if not empty else None
    evaluations: dict = {m: {} for m in methods}
    reached: dict = {m: {} for m in methods}
    if per_task is not None:
        for (m, t), row in per_task.iterrows():
            if m in evaluations:
                evaluations[m][t] = float(row["evaluations"]) if row["reached"] > 0 else None
                reached[m][t] = [int(row["reached"]), int(row["runs"])]

    out = {
        "deterministic_methods": deterministic,
        "top1_fraction": TOP_FRACTION,
        "top1_threshold": thresholds,
        "top1_threshold_source": source,
        "evaluations_to_top1": evaluations,
        "top1_reached": reached,
        "top1_speedup": {},
        "top1_speedup_tasks": {},
        "top1_speedup_interval": {},
        "min_top1_speedup": None,
        "min_top1_speedup_interval": None,
        "min_speedup_interval": {},
        "bootstrap": {"resamples": BOOTSTRAP_RESAMPLES, "level": BOOTSTRAP_LEVEL, "seed": BOOTSTRAP_SEED, "over": "tasks"},
        "top1_definition": TOP1_DEFINITION,
    }
    reference = config.reference
    if reference is None or not horizon or reference in no_results or empty:
        return out
    baselines = [m for m in methods if m != reference and m not in no_results]
    if not baselines:
        return out
    run_tasks = list(dict.fromkeys(t for t, _ in normalized.runs))
    weights = bootstrap_weights(len(run_tasks), BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED)

    geo = top_speedup(per_task, reference, baselines)
    out["top1_speedup"] = geo
    out["top1_speedup_tasks"] = {b: int(len(top_log_ratios(per_task, reference, b))) for b in baselines}
    samples, minimum = bootstrap_top_speedup(per_task, reference, baselines, run_tasks, weights)
    out["top1_speedup_interval"] = {b: _interval(samples[b]) for b in baselines}
    defined = [v for v in geo.values() if v is not None]
    out["min_top1_speedup"] = min(defined) if defined else None
    out["min_top1_speedup_interval"] = _interval(minimum)

    keep = counted_runs(results, deterministic)
    kept = set(zip(keep["method"], keep["task"], keep["seed"], strict=True))
    counted = np.array([[(m, t, s) in kept for t, s in normalized.runs] for m in normalized.methods], dtype=bool)
    per_budget = bootstrap_min_speedup(normalized, reference, budgets, weights, counted=counted, baselines=baselines)
    out["min_speedup_interval"] = {str(s): _interval(v) for s, v in per_budget.items()}
    return out


def _cost(results: pd.DataFrame, methods) -> dict:
    """Wall-time costs per method.

    ``median_setup_seconds``: median over target tasks of the task's largest ``setup()`` time.
    Seeds of one task share seed-independent meta-training (``cached_setup``), so the largest
    is the run that did it. ``median_propose_seconds`` / ``max_propose_seconds``: per proposal
    (the maximum includes one-off compilation). ``mean_unit_seconds``: setup plus all proposals
    of one (task, seed) run, averaged.
    """
    out = {}
    for m in methods:
        rows = results[results["method"] == m] if len(results) else results
        if not len(rows):
            out[m] = dict.fromkeys(COST_KEYS)
            continue
        units = rows.groupby(["task", "seed"])
        setup = units["setup_seconds"].first()
        out[m] = {
            "median_setup_seconds": float(np.median(setup.groupby(level="task").max())),
            "median_propose_seconds": float(np.median(rows["propose_seconds"])),
            "max_propose_seconds": float(np.max(rows["propose_seconds"])),
            "mean_unit_seconds": float(np.mean(setup + units["propose_seconds"].sum())),
        }
    return out


COST_KEYS = ("median_setup_seconds", "median_propose_seconds", "max_propose_seconds", "mean_unit_seconds")


# ---- markdown --------------------------------------------------------------------------------


def format_speedup(value, bound) -> str:
    if value is None:
        return f"< {bound:.2f}" if bound is not None else "n/a"
    return f"{value:.2f}x"


def _label(summary: dict, method: str) -> str:
    """A method's name in tables, marked when its seeds repeat."""
    return f"{method} ({DETERMINISTIC_MARK})" if method in summary.get("deterministic_methods", []) else method


def _format_interval(bounds, bound=None) -> str:
    if not bounds:
        return "n/a"
    return f"[{format_speedup(bounds[0], bound)}, {format_speedup(bounds[1], bound)}]"


def efficiency_markdown(summary: dict) -> str:
    """The efficiency-ratio table (one row per baseline plus the minimum and its bootstrap interval,
    one column per budget), then the geometric-mean speedup to the pool's top 1% when present."""
    budgets = list(summary.get("speedup_upper_bound", {}))
    if not summary.get("reference") or not budgets or not summary.get("speedup"):
        return (
            "_No efficiency ratio: it needs a reference method and at least one baseline with finished "
            "units, and a budget of at least the smallest ratio budget (10)._\n"
        )
    bounds = summary["speedup_upper_bound"]
    lines = [
        f"Speedup of `{summary['reference']}` over each baseline (evaluations the baseline needs / "
        "evaluations the reference needs to reach the same mean normalized regret):",
        "",
        "| baseline | " + " | ".join(f"s = {s}" for s in budgets) + " |",
        "| --- | " + " | ".join("---:" for _ in budgets) + " |",
    ]
    for baseline, row in summary["speedup"].items():
        lines.append(
            f"| {_label(summary, baseline)} | "
            + " | ".join(format_speedup(row.get(s), bounds[s]) for s in budgets)
            + " |"
        )
    minimum = summary.get("min_speedup", {})
    lines.append("| **min over baselines** | " + " | ".join(f"**{format_speedup(minimum.get(s), bounds[s])}**" for s in budgets) + " |")
    intervals = summary.get("min_speedup_interval") or {}
    level = round(100 * summary.get("bootstrap", {}).get("level", 0.9))
    if intervals:
        lines.append(
            f"| {level}% interval of the min (bootstrap over tasks) | "
            + " | ".join(_format_interval(intervals.get(s), bounds[s]) for s in budgets)
            + " |"
        )
    lines.append("")
    lines.append(
        "`< x`: the reference never reaches that baseline's regret within the budget, so the speedup is "
        "below x (= s / T)."
    )
    top = summary.get("top1_speedup") or {}
    if top:
        tasks = summary.get("top1_speedup_tasks", {})
        lines += [
            "",
            f"Per task, evaluations to reach the pool's top 1%: geometric mean over tasks of baseline / "
            f"`{summary['reference']}` (not reached within the budget counts as budget + 1):",
            "",
            f"| baseline | top-1% speedup | {level}% interval (bootstrap over tasks) | tasks |",
            "| --- | ---: | ---: | ---: |",
        ]
        intervals = summary.get("top1_speedup_interval", {})
        for baseline, value in top.items():
            lines.append(
                f"| {_label(summary, baseline)} | {format_speedup(value, None)} | "
                f"{_format_interval(intervals.get(baseline))} | {tasks.get(baseline, 'n/a')} |"
            )
        lines.append(
            f"| **min over baselines** | **{format_speedup(summary.get('min_top1_speedup'), None)}** | "
            f"**{_format_interval(summary.get('min_top1_speedup_interval'))}** | |"
        )
    deterministic = summary.get("deterministic_methods") or []
    if deterministic:
        lines += [
            "",
            f"Marked _{DETERMINISTIC_MARK}_: {', '.join(f'`{m}`' for m in deterministic)} chose the same "
            "points with every seed on every task; one seed per task is counted in the intervals and the "
            "per-task averages.",
        ]
    return "\n".join(lines) + "\n"


def _evaluations_cell(value, reached) -> str:
    if not reached:
        return "n/a"
    hit, runs = reached
    if value is None or hit == 0:
        return "not reached"
    if hit < runs:
        return f">= {value:.1f} ({hit}/{runs})"
    return f"{value:.1f}"


def top1_markdown(summary: dict) -> str:
    """Per task, each method's mean evaluations to the pool's top 1%."""
    evaluations = summary.get("evaluations_to_top1") or {}
    methods = [m for m in summary["methods"] if evaluations.get(m)]
    if not methods:
        return "_No per-task measures: no finished unit._\n"
    source = summary.get("top1_threshold_source")
    lines = [
        "Mean evaluations (over seeds) until the best point found is in the pool's top 1%. "
        "`>= x (k/n)`: only k of n seeds got there; the others count as budget + 1. "
        "`not reached`: no seed did within the budget.",
        "",
    ]
    if source == "evaluated points":
        lines += [
            "_The pools' scores were not available: each threshold is the k-th best point any stored run "
            "evaluated, at or below the pool's true threshold, so these counts may be low._",
            "",
        ]
    lines += [
        "| task | " + " | ".join(_label(summary, m) for m in methods) + " |",
        "| --- | " + " | ".join("---:" for _ in methods) + " |",
    ]
    reached = summary.get("top1_reached", {})
    for t in summary["tasks"]:
        cells = [_evaluations_cell(evaluations[m].get(t), reached.get(m, {}).get(t)) for m in methods]
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _at(curve, step, digits=4):
    if curve is None or step > len(curve) or curve[step - 1] is None:
        return "n/a"
    return f"{curve[step - 1]:.{digits}f}"


def markdown_report(summary: dict) -> str:
    budget = summary["budget"]
    checkpoints = sorted({s for s in (1, 10, 25, 50, 100) if s <= budget} | ({budget} if budget else set()))
    methods = summary["methods"]
    lines = [
        "# Benchmark report",
        "",
        f"Leave-one-task-out over {plural(len(summary['tasks']), 'target task')}, {plural(summary['seeds'], 'seed')}, "
        f"budget {plural(budget, 'evaluation')} (requested {summary['requested_budget']}); "
        f"methods: {', '.join(f'`{m}`' for m in methods)}.",
        "",
        "## Efficiency ratio",
        "",
        efficiency_markdown(summary),
        "## Evaluations to the pool's top 1%",
        "",
        top1_markdown(summary),
        "## Normalized regret",
        "",
        "Mean (median) normalized regret after s evaluations; 0 = the best point of the pool found.",
        "",
        "| method | " + " | ".join(f"s = {s}" for s in checkpoints) + " |",
        "| --- | " + " | ".join("---:" for _ in checkpoints) + " |",
    ]
    for m in methods:
        mean, median = summary["mean_normalized_regret"][m], summary["median_normalized_regret"][m]
        lines.append(
            f"| {_label(summary, m)} | " + " | ".join(f"{_at(mean, s)} ({_at(median, s)})" for s in checkpoints) + " |"
        )
    lines += [
        "",
        "## Average rank",
        "",
        "Rank of each method per (task, seed) by normalized regret (1 = best, ties shared), averaged over "
        "the runs every method finished.",
        "",
        "| method | " + " | ".join(f"s = {s}" for s in checkpoints) + " |",
        "| --- | " + " | ".join("---:" for _ in checkpoints) + " |",
    ]
    for m in methods:
        ranks = summary["average_rank"][m]
        lines.append(f"| {_label(summary, m)} | " + " | ".join(_at(ranks, s, digits=2) for s in checkpoints) + " |")
    lines += [
        "",
        "## Cost",
        "",
        "Wall time: setup = meta-training per target task (shared by its seeds); a proposal = one BO step "
        "(the maximum includes one-off compilation); a run = setup plus all proposals of one (task, seed).",
        "",
        "| method | finished runs | median setup (s) | median proposal (s) | max proposal (s) | mean run (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in methods:
        c = summary["cost"][m]
        cells = ["n/a" if c[k] is None else f"{c[k]:.3g}" for k in COST_KEYS]
        lines.append(f"| {m} | {summary['runs'][m]} | " + " | ".join(cells) + " |")
    lines += ["", "## Plots", ""]
    for name, caption in (
        (REGRET_PLOT, "Normalized regret: mean with standard-error band (left), median with 25-75% band (right)"),
        (RANK_PLOT, "Average rank per step"),
    ):
        if name in summary.get("plots", []):
            lines.append(f"![{caption}]({name})")
            lines.append("")
    lines += ["## Notes", ""]
    lines.append(f"- Efficiency ratio: {summary['speedup_definition']}")
    if summary.get("top1_definition"):
        lines.append(f"- Top 1%: {summary['top1_definition']}")
    lines.append(
        f"- Regret plots use a log scale; values below {PLOT_FLOOR:g} (including 0, the pool's best found) are "
        f"drawn at {PLOT_FLOOR:g}."
    )
    if summary["capped_tasks"]:
        capped = ", ".join(f"`{t}` ({n})" for t, n in summary["capped_tasks"].items())
        lines.append(
            f"- The budget was capped at the pool size on: {capped}. Those runs evaluated their whole pool; "
            "their regret stays at its final value (0) for the remaining steps."
        )
    if summary["excluded_related"]:
        lines.append(f"- Related tasks were left out of training for {plural(len(summary['excluded_related']), 'target')} (see summary.json).")
    if summary["no_results"]:
        lines.append(
            f"- No finished unit, left out of every table: {', '.join(f'`{m}`' for m in summary['no_results'])}."
        )
    failures = summary["failures"]
    if failures:
        lines.append(f"- **{len(failures)} unit(s) failed** and are missing from the curves (rerun to retry them):")
        for f in failures[:20]:
            lines.append(f"  - `{f['method']}` on `{f['task']}` seed {f['seed']}: {f['error']}")
        if len(failures) > 20:
            lines.append(f"  - ... and {len(failures) - 20} more (see summary.json and units/*.error.txt)")
    return "\n".join(lines) + "\n"


# ---- plots -----------------------------------------------------------------------------------


def _colors(methods, reference):
    from matplotlib import colormaps

    palette = colormaps["tab20"] if len(methods) > 10 else colormaps["tab10"]
    colors, k = {}, 0
    for m in methods:
        if m == reference:
            colors[m] = "black"
        else:
            colors[m] = palette(k % palette.N)
            k += 1
    return colors


def _array(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _save(fig, path: Path) -> None:
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))


def plot_regret(summary: dict, path) -> None:
    """Normalized regret curves on a log scale: mean +- standard error, median with 25-75% band."""
    from matplotlib.figure import Figure  # the object-oriented API renders with Agg, no display

    methods, reference = summary["methods"], summary["reference"]
    colors = _colors(methods, reference)
    steps = np.arange(1, summary["budget"] + 1)
    fig = Figure(figsize=(12, 4.5))
    left, right = fig.subplots(1, 2, sharey=True)
    for m in methods:
        mean = _array(summary["mean_normalized_regret"][m])
        sem = _array(summary["sem_normalized_regret"][m])
        median = _array(summary["median_normalized_regret"][m])
        q25, q75 = _array(summary["q25_normalized_regret"][m]), _array(summary["q75_normalized_regret"][m])
        if not np.isfinite(mean).any():
            continue
        width = 2.2 if m == reference else 1.3
        floor = lambda v: np.maximum(v, PLOT_FLOOR)  # noqa: E731
        left.plot(steps, floor(mean), color=colors[m], lw=width, label=m)
        left.fill_between(steps, floor(mean - sem), floor(mean + sem), color=colors[m], alpha=0.15, lw=0)
        right.plot(steps, floor(median), color=colors[m], lw=width, label=m)
        right.fill_between(steps, floor(q25), floor(q75), color=colors[m], alpha=0.15, lw=0)
    for ax, title in ((left, "mean (band: ±1 standard error)"), (right, "median (band: 25-75% quantiles)")):
        ax.set_yscale("log")
        ax.set_xlabel("evaluations")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    left.set_ylabel("normalized regret")
    if right.lines:
        right.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.suptitle(f"{plural(len(summary['tasks']), 'task')} x {plural(summary['seeds'], 'seed')}")
    _save(fig, Path(path))


def plot_rank(summary: dict, path) -> None:
    """Average rank per step (1 = best)."""
    from matplotlib.figure import Figure

    methods, reference = summary["methods"], summary["reference"]
    colors = _colors(methods, reference)
    steps = np.arange(1, summary["budget"] + 1)
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for m in methods:
        ranks = _array(summary["average_rank"][m])
        if np.isfinite(ranks).any():
            ax.plot(steps, ranks, color=colors[m], lw=2.2 if m == reference else 1.3, label=m)
    ax.set_xlabel("evaluations")
    ax.set_ylabel("average rank (1 = best)")
    ax.set_ylim(0.8, len(methods) + 0.2)
    ax.grid(True, alpha=0.3)
    if ax.lines:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    _save(fig, Path(path))


def write_report(out, results: pd.DataFrame, config, plan, failures, pool_scores=None) -> dict:
    """Write ``summary.json``, ``report.md`` and the plots under ``out``; return the summary.

    ``pool_scores`` (task -> pool scores) makes the top-1% thresholds exact (see ``summarize``).
    """
    out = Path(out)
    summary = summarize(results, config, plan, failures, pool_scores=pool_scores)
    plots = []
    if summary["budget"] and len(results):
        plot_regret(summary, out / REGRET_PLOT)
        plot_rank(summary, out / RANK_PLOT)
        plots = [REGRET_PLOT, RANK_PLOT]
    summary["plots"] = plots
    atomic_write_text(out / SUMMARY_FILE, json.dumps(summary, indent=1, allow_nan=False) + "\n")
    atomic_write_text(out / REPORT_FILE, markdown_report(summary))
    return summary


def load_summary(out: str | os.PathLike) -> dict:
    with open(Path(out) / SUMMARY_FILE, encoding="utf-8") as fh:
        return json.load(fh)


__all__ = [
    "summarize",
    "write_report",
    "markdown_report",
    "efficiency_markdown",
    "top1_markdown",
    "TOP1_DEFINITION",
    "plot_regret",
    "plot_rank",
    "load_summary",
    "SPEEDUP_DEFINITION",
]
