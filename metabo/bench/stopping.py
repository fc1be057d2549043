"""The cost-aware benchmark: replay a target task's recorded learning curves under a search
method and a stopping rule, and charge each trial the training it did.

A trial that runs to the end costs 1 (one full training run) and reveals its final score (the
best of its curve); a trial stopped after k of L evaluations costs k / L and is told to the
search as ``Optimizer.report`` tells it: at the curve model's predicted median of its final
score when the watch has a model (whatever rule stopped it), else at its best score so far (a
lower bound). Regret at a cost is the pool's best final score minus the best final score of the
trials run to completion within that cost (what the user can deploy), normalized by the pool's
range. The pool is the target's complete curves (failures left out, as ``metabo benchmark``
leaves them out of its pools).

``cost_benchmark`` runs it leave-one-task-out (the prior and the curve model pre-trained on the
other tasks only); ``cost_markdown`` and ``plot_cost`` report it. ``metabo reproduce`` (``CostExperiment``
entries in a configs file's QUICK or FULL) and ``metabo benchmark --curves`` call them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from metabo.curves import Curves
from metabo.data import TuningLog
from metabo.precision import float64
from metabo.stopping.model import complete_scores, fit_curve_model, task_subset
from metabo.stopping.rules import RULES, StoppingRule
from metabo.stopping.watch import CurveWatch


class CostTrace(NamedTuple):
    """One replay: per trial, the cumulative cost after it [T], the best complete final score
    so far [T] (NaN before the first complete run), and whether it was stopped [T]."""

    cost: np.ndarray
    best_final: np.ndarray
    stopped: np.ndarray


def replay(
    propose: Callable[[np.ndarray, np.ndarray, np.ndarray], int],
    pool_unit: np.ndarray,
    pool_scores: np.ndarray,
    rule: StoppingRule | CurveWatch,
    budget: float,
) -> CostTrace:
    """Run a search on a pool of recorded curves until ``budget`` training runs are spent.

    Decisions go through ``CurveWatch`` (what ``Optimizer.report`` and the Optuna pruner run):
    each report of a running trial is shown to it with the earlier trials' curves as far as they
    trained and the complete runs' finals; a stopped trial is told to the search at the watch's
    predicted final score (its curve model's median), or at its best score so far without a model.

    Args:
      propose: (x told [n, d], scores told [n], observed [m] bool) -> the next pool index.
      pool_unit: [m, d] configurations; pool_scores: [m, L] their curves in score units.
      rule: a ``CurveWatch``, or a ``StoppingRule`` (watched at its model's checkpoints, or
        ``metabo.stopping.model.CHECKPOINTS``).
      budget: total cost in full training runs.
    """
    m, length = pool_scores.shape
    watch = rule if isinstance(rule, CurveWatch) else CurveWatch(rule, evaluations=length)
    if watch.evaluations != length:
        raise ValueError(f"the watch expects {watch.evaluations} reports per run; the pool's curves have {length}")
    observed = np.zeros(m, dtype=bool)
    told_x, told_y = [], []
    finals: list[float] = []
    trained: list[np.ndarray] = []  # every started trial's curve, as far as it trained
    cost, costs, bests, stopped = 0.0, [], [], []
    while cost < budget and not observed.all():
        index = int(propose(np.asarray(told_x).reshape(-1, pool_unit.shape[1]), np.asarray(told_y), observed.copy()))
        if observed[index]:
            raise ValueError(f"the method proposed pool index {index} twice")
        observed[index] = True
        curve, unit = pool_scores[index], pool_unit[index]
        stop_at = next(
            (k for k in sorted(watch.checkpoints) if k < length and watch.should_stop(curve[:k], unit, trained, finals)),
            None,
        )
        if stop_at is None:
            cost += 1.0
            finals.append(float(curve.max()))
            told = float(curve.max())
            trained.append(curve)
        else:
            cost += stop_at / length
            predicted = watch.predicted_final(curve[:stop_at], unit)
            told = float(curve[:stop_at].max()) if predicted is None else predicted
            trained.append(curve[:stop_at])
        told_x.append(unit)
        told_y.append(told)
        costs.append(cost)
        bests.append(max(finals) if finals else np.nan)
        stopped.append(stop_at is not None)
    return CostTrace(np.asarray(costs), np.asarray(bests), np.asarray(stopped))


def regret_at(trace: CostTrace, pool_finals: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Normalized regret at each cost of ``grid`` [G]: of the best complete run within that cost
    (1 before the first one)."""
    best, worst = float(np.max(pool_finals)), float(np.min(pool_finals))
    spread = best - worst if best > worst else 1.0
    out = np.ones(len(grid))
    for g, c in enumerate(grid):
        done = trace.cost <= c + 1e-12
        if done.any() and np.isfinite(trace.best_final[done]).any():
            out[g] = (best - np.nanmax(trace.best_final[done])) / spread
    return out


def cost_to_reach(regret: np.ndarray, grid: np.ndarray, target: float) -> float:
    """The smallest cost of ``grid`` at which ``regret`` [G] is at most ``target`` (inf: never)."""
    hit = np.flatnonzero(regret <= target + 1e-12)
    return float(grid[hit[0]]) if hit.size else float("inf")


# BO under a fixed prior on a finite pool repeats its sequence whatever the seed (the reproduction's
# ``deterministic_methods`` finds hyperbo so): run it once per target and rule.
SINGLE_SEED = ("hyperbo",)
SHOWN_COSTS = (5, 10, 25, 50, 100)


@dataclass(frozen=True)
class CostExperiment:
    """One cost-aware comparison (an entry of a configs file's QUICK or FULL for ``metabo reproduce``).

    Attributes:
      name: output folder under the reproduction's folder.
      data: data set name or path (as ``ExperimentConfig.data``); part: the rows used
        (``matched`` or ``unmatched``), for pre-training and for the target pools.
      curves: the curves file (``Curves.save``), relative to the data folder.
      targets: target tasks (``None``: every task of the curves).
      methods, rules, budget, seeds, p_min, method_options: as ``cost_benchmark``.
    """

    name: str
    data: str
    curves: str
    part: str = "matched"
    targets: tuple[str, ...] | None = None
    methods: tuple[str, ...] = ("hyperbo", "random")
    rules: tuple[str, ...] = RULES
    budget: float = 50.0
    seeds: int = 3
    p_min: float = 0.05
    method_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@float64  # the methods' GP work, whatever the caller's JAX setting (as run_unit)
def cost_benchmark(
    log: TuningLog,
    curves: Curves,
    targets: Sequence[str] | None = None,
    *,
    methods: Sequence[str] = ("hyperbo", "random"),
    rules: Sequence[str] = RULES,
    budget: float = 50.0,
    seeds: int = 3,
    p_min: float | Sequence[float] = 0.05,
    seed: int = 0,
    method_options: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Leave-one-task-out replays of every (target, method, rule, seed).

    For each target the methods that learn from other tasks get ``log`` without the target, and
    the curve model (``fit_curve_model``) is pre-trained on the other tasks' curves; every rule
    watches with that model, as ``Optimizer(stopping=rule, curve_model=model)`` does. Methods in
    ``SINGLE_SEED`` run once; the others ``seeds`` times. A list of ``p_min`` values runs one
    curve rule per value (labelled ``curve p<P``).

    Returns one row per replay: ``target, method, rule, seed, trials, stopped, seconds`` and the
    normalized regret ``r1 .. rB`` at each whole cost up to the budget.
    """
    from metabo.baselines import get_method

    thresholds = [float(p_min)] if np.isscalar(p_min) else [float(p) for p in p_min]
    unknown = sorted(set(rules) - set(RULES))
    if unknown:
        raise ValueError(f"unknown stopping rule(s) {unknown}; expected some of {RULES}")
    tasks = list(targets) if targets is not None else curves.tasks
    missing = sorted(set(tasks) - set(log.tasks))
    if missing:
        raise ValueError(f"target task(s) {missing} are not in the tuning log")
    grid = np.arange(1.0, float(budget) + 1e-9, 1.0)
    options = dict(method_options or {})
    rows = []
    for target in tasks:
        model = fit_curve_model(task_subset(curves, [t for t in curves.tasks if t != target]))
        _, scores, unit = complete_scores(task_subset(curves, [target]))
        if len(scores) == 0:
            raise ValueError(f"target {target!r} has no complete curves")
        finals = scores.max(axis=1)
        train = log.without([target])
        watches = {}
        for name in rules:
            for p in thresholds if name == "curve" else thresholds[:1]:
                label = f"curve p<{p:g}" if name == "curve" and len(thresholds) > 1 else name
                watches[label] = CurveWatch(StoppingRule(name, p_min=p, model=model), evaluations=scores.shape[1])
        for method in methods:
            method_cls = get_method(method)
            for run_seed in range(1 if method in SINGLE_SEED else int(seeds)):
                searcher = method_cls(
                    log.space, train if method_cls.uses_training_tasks else None, seed=seed + run_seed,
                    **dict(options.get(method, {})),
                )
                searcher.setup()  # once per seed: the prior does not depend on the rule
                for label, watch in watches.items():
                    step = iter(range(10**9))

                    def propose(x, y, observed, searcher=searcher, step=step, unit=unit):
                        return searcher.propose_finite(x, y, unit, observed, next(step))

                    start = time.perf_counter()
                    trace = replay(propose, unit, scores, watch, float(budget))
                    regret = regret_at(trace, finals, grid)
                    rows.append(
                        {"target": target, "method": method, "rule": label, "seed": run_seed, "trials": len(trace.cost),
                         "stopped": int(trace.stopped.sum()), "seconds": time.perf_counter() - start,
                         **{f"r{int(c)}": r for c, r in zip(grid, regret, strict=True)}}
                    )
                    if progress is not None:
                        progress(f"{target} {method} {label} seed {run_seed}: {len(trace.cost)} trials, "
                                 f"{int(trace.stopped.sum())} stopped, regret@{budget:g} {regret[-1]:.4f}")
    return pd.DataFrame(rows)


def regret_columns(rows: pd.DataFrame) -> list[str]:
    """The ``r<cost>`` columns of ``cost_benchmark``'s rows, in cost order."""
    return sorted((c for c in rows.columns if c.startswith("r") and c[1:].isdigit()), key=lambda c: int(c[1:]))


def cost_summary(rows: pd.DataFrame, reference: tuple[str, str] = ("hyperbo", "none")) -> pd.DataFrame:
    """Per (method, rule): mean normalized regret at each cost (over targets, a target's seeds
    averaged first), and per target the cost to reach the ``reference`` (method, rule)'s final
    regret on that target: its median over targets and the share of targets reached within half
    the budget (``reach_median``, ``reach_half``; inf: not within the budget)."""
    columns = regret_columns(rows)
    grid = np.array([float(c[1:]) for c in columns])
    per = rows.groupby(["method", "rule", "target"])[columns].mean()
    if reference not in per.droplevel("target").index:
        raise ValueError(f"the rows have no {reference} runs to compare with")
    ref = per.loc[reference][columns[-1]]
    out = per.groupby(["method", "rule"]).mean()
    reach = {}
    for (method, rule, target), row in per.iterrows():
        reach.setdefault((method, rule), []).append(cost_to_reach(row.to_numpy(), grid, float(ref[target])))
    out["reach_median"] = [float(np.median(reach[k])) for k in out.index]
    out["reach_half"] = [float(np.mean(np.asarray(reach[k]) <= grid[-1] / 2)) for k in out.index]
    counts = rows.groupby(["method", "rule"])[["trials", "stopped"]].mean()
    return out.join(counts)


def cost_markdown(rows: pd.DataFrame, reference: tuple[str, str] = ("hyperbo", "none")) -> str:
    """The cost table: mean regret at the shown costs, reach of the reference's final regret."""
    summary = cost_summary(rows, reference)
    budget = int(regret_columns(rows)[-1][1:])
    shown = [c for c in SHOWN_COSTS if c <= budget]
    head = (
        "| search | stopping rule | " + " | ".join(f"regret @ cost {c}" for c in shown)
        + f" | cost to reach {reference[0]}/{reference[1]}'s final regret (median over targets) "
        f"| targets reached within cost {budget / 2:g} | trials | stopped |"
    )
    lines = [head, "| --- | --- | " + " | ".join("---:" for _ in shown) + " | ---: | ---: | ---: | ---: |"]
    for (method, rule), row in summary.iterrows():
        reach = row["reach_median"]
        lines.append(
            f"| {method} | {rule} | " + " | ".join(f"{row[f'r{c}']:.4f}" for c in shown)
            + f" | {'not within the budget' if not np.isfinite(reach) else f'{reach:g} ({reach / budget:.0%})'} "
            f"| {row['reach_half']:.0%} | {row['trials']:.0f} | {row['stopped']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot_cost(rows: pd.DataFrame, path) -> None:
    """Mean normalized regret against cost, one panel per search method, one line per rule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = regret_columns(rows)
    grid = np.array([float(c[1:]) for c in columns])
    per = rows.groupby(["method", "rule", "target"])[columns].mean().groupby(["method", "rule"]).mean()
    methods = list(dict.fromkeys(rows["method"]))
    fig, axes = plt.subplots(1, len(methods), figsize=(5 * len(methods), 3.8), sharey=True, squeeze=False)
    for ax, method in zip(axes[0], methods, strict=True):
        for rule in dict.fromkeys(rows.loc[rows["method"] == method, "rule"]):
            ax.plot(grid, per.loc[(method, rule), columns].to_numpy(), label=rule)
        ax.set_title(f"{method}: regret against training cost")
        ax.set_xlabel("cost (full training runs)")
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("mean normalized regret")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


COST_TABLE = "table.md"
COST_ROWS = "rows.csv"
COST_PLOT = "cost.png"


def write_cost_outputs(rows: pd.DataFrame, out, preamble: str, reference: str = "hyperbo") -> str:
    """Write ``rows`` (rows.csv), the table under ``preamble`` (table.md; reach measured against
    ``reference`` without stopping) and the plot (cost.png) into the folder ``out``; returns the
    table."""
    from pathlib import Path

    from metabo.io import atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / COST_ROWS, rows.to_csv(index=False))
    table = cost_markdown(rows, (reference, "none"))
    atomic_write_text(out / COST_TABLE, f"{preamble.rstrip()}\n\n{table}")
    plot_cost(rows, out / COST_PLOT)
    return table


def read_cost_rows(out) -> pd.DataFrame | None:
    """The rows a ``write_cost_outputs`` folder holds, or None."""
    from pathlib import Path

    path = Path(out) / COST_ROWS
    return pd.read_csv(path) if path.exists() else None


__all__ = [
    "COST_PLOT",
    "COST_ROWS",
    "COST_TABLE",
    "CostExperiment",
    "CostTrace",
    "SINGLE_SEED",
    "cost_benchmark",
    "cost_markdown",
    "cost_summary",
    "cost_to_reach",
    "plot_cost",
    "read_cost_rows",
    "regret_at",
    "regret_columns",
    "replay",
    "write_cost_outputs",
]
