"""Benchmark metrics: regret per step, aggregate curves, average rank, the efficiency ratio.

Pure NumPy/pandas; no JAX. Conventions (DESIGN.md section 4):

- Steps are 1-based counts of evaluations: step ``s`` is the state after ``s`` evaluations;
  curves are arrays ``[T]`` whose entry ``s - 1`` belongs to step ``s``.
- Scores are maximized. On a target task with pool scores ``y_pool``,
  simple regret at step s = ``max(y_pool) - max(y_1..y_s)``, and normalized regret divides it
  by ``max(y_pool) - min(y_pool)`` (0 when the pool is flat), so it lies in [0, 1].
- A run is one (task, seed) pair. A run shorter than the budget (its pool had fewer points than
  ``T``) has evaluated its whole pool, so its regret stays at its last value (0) for the
  remaining steps; curves are forward-filled with it.

Efficiency ratio ("speedup"): for a baseline b at budget s, with ``r_b(s)`` its mean normalized
regret and ``t_R(r)`` the first step at which the reference (pre-trained) method's mean
normalized regret is ``<= r``, ``speedup_b(s) = s / t_R(r_b(s))``. When the reference never
reaches ``r_b(s)`` within the ``T`` steps run, ``t_R > T`` and so ``speedup_b(s) < s / T``: the
value is reported as ``None`` (JSON ``null``, shown as ``< s/T`` in reports) together with that
upper bound. Any defined speedup is ``>= s / T``, so a ``None`` is always the smallest value and
the minimum over baselines is ``None`` too when any baseline's is.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd

DEFAULT_BUDGETS = (25, 50, 100)
# Mean curves are averages of the same per-run values; a tolerance keeps "equal" equal.
_REACH_TOLERANCE = 1e-12


class RegretTrace(NamedTuple):
    """One run's trace. All arrays are [T] over steps 1..T."""

    best_so_far: np.ndarray
    simple_regret: np.ndarray
    normalized_regret: np.ndarray


class Curves(NamedTuple):
    """Per-run curves of several methods on a common grid of runs and steps.

    methods: M method names.
    runs: R (task, seed) pairs.
    values: [M, R, T]; NaN where a method has no result for a run (a failed unit).
    """

    methods: list[str]
    runs: list[tuple[str, int]]
    values: np.ndarray


def regret_trace(y_chosen: np.ndarray, pool_best: float, pool_worst: float) -> RegretTrace:
    """Regret of one run from the scores it revealed, in order.

    Args:
      y_chosen: [T] scores of the evaluated points (maximized), step 1 first.
      pool_best, pool_worst: the best and worst score in the target task's pool.
    """
    y_chosen = np.asarray(y_chosen, dtype=np.float64)
    if y_chosen.ndim != 1 or y_chosen.size == 0:
        raise ValueError(f"y_chosen must be a non-empty 1-D array, got shape {y_chosen.shape}")
    if pool_worst > pool_best:
        raise ValueError(f"pool_worst ({pool_worst}) is above pool_best ({pool_best})")
    best_so_far = np.maximum.accumulate(y_chosen)
    simple = pool_best - best_so_far
    spread = pool_best - pool_worst
    # A flat pool has nothing to find: every evaluation is optimal.
    normalized = simple / spread if spread > 0 else np.zeros_like(simple)
    return RegretTrace(best_so_far, simple, normalized)


def curve_matrix(results: pd.DataFrame, column: str = "normalized_regret", budget: int | None = None, methods=None) -> Curves:
    """Long results (one row per method, task, seed, step) -> ``Curves`` of ``column``.

    ``budget`` is the number of steps T (default: the longest run). Runs shorter than T are
    forward-filled with their last value (their pool is exhausted); methods missing a run get NaN.
    ``methods`` fixes the method order (default: order of first appearance).
    """
    needed = {"method", "task", "seed", "step", column}
    missing = needed - set(results.columns)
    if missing:
        raise ValueError(f"results lack column(s) {sorted(missing)}")
    if methods is None:
        methods = list(pd.unique(results["method"]))
    methods = [str(m) for m in methods]
    runs_frame = results[["task", "seed"]].drop_duplicates().sort_values(["task", "seed"], kind="stable")
    runs = [(str(t), int(s)) for t, s in runs_frame.itertuples(index=False)]
    steps = results["step"].to_numpy()
    if len(steps) and steps.min() < 1:
        raise ValueError("steps are 1-based; found a step < 1")
    width = int(budget if budget is not None else (steps.max() if len(steps) else 0))
    values = np.full((len(methods), len(runs), width), np.nan)
    if width == 0 or not runs:
        return Curves(methods, runs, values)

    # Scatter rows into [method, run, step] by integer codes, then forward-fill along steps.
    method_index = {m: i for i, m in enumerate(methods)}
    keep = results["method"].astype(str).isin(method_index).to_numpy() & (steps <= width)
    rows = results[keep]
    mi = rows["method"].astype(str).map(method_index).to_numpy()
    keys = pd.DataFrame(runs, columns=["task", "seed"]).assign(run=np.arange(len(runs)))
    located = rows[["task", "seed"]].astype({"task": str, "seed": np.int64}).merge(keys, how="left", on=["task", "seed"])
    ri = located["run"].to_numpy(dtype=np.int64)
    si = rows["step"].to_numpy(dtype=np.int64) - 1
    values[mi, ri, si] = rows[column].to_numpy(dtype=np.float64)
    return Curves(methods, runs, _forward_fill(values))


def _forward_fill(values: np.ndarray) -> np.ndarray:
    """Fill NaNs along the last axis with the last finite value before them (leading NaNs stay)."""
    positions = np.where(np.isnan(values), 0, np.arange(values.shape[-1]))
    last = np.maximum.accumulate(positions, axis=-1)
    filled = np.take_along_axis(values, last, axis=-1)
    # Position 0 may itself be NaN (no result at all): it stays NaN.
    return filled


def aggregate(values: np.ndarray, quantiles=(0.25, 0.75)) -> dict[str, np.ndarray]:
    """Across-run statistics of curves ``values: [R, T]`` (NaN runs ignored) -> each [T].

    Keys: ``mean``, ``median``, ``sem`` (standard error of the mean), ``count`` (runs with a
    value), and ``q25``/``q75`` style keys for ``quantiles``.
    """
    values = np.asarray(values, dtype=np.float64)
    count = np.sum(np.isfinite(values), axis=0)
    out: dict[str, np.ndarray] = {"count": count}
    # All-NaN steps (no run has a value) give NaN by design; NumPy's warnings about them are noise.
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        out["mean"] = np.nanmean(values, axis=0)
        out["median"] = np.nanmedian(values, axis=0)
        std = np.nanstd(values, axis=0, ddof=1) if values.shape[0] > 1 else np.zeros(values.shape[1])
        out["sem"] = np.where(count > 1, std / np.sqrt(np.maximum(count, 1)), 0.0)
        for q in quantiles:
            out[f"q{round(100 * q):02d}"] = np.nanquantile(values, q, axis=0)
    return out


def average_rank(values: np.ndarray) -> np.ndarray:
    """Average rank of methods per step: ``values: [M, R, T]`` (lower is better) -> [M, T].

    At each (run, step) the methods are ranked 1..M by their value (ties share the average rank),
    then ranks are averaged over runs. Only runs where every method has a value are used, so the
    ranks compare methods on the same tasks and seeds; all NaN if there is no such run.
    """
    values = np.asarray(values, dtype=np.float64)
    num_methods = values.shape[0]
    complete = np.all(np.isfinite(values), axis=(0, 2))
    if not complete.any():
        return np.full((num_methods, values.shape[2]), np.nan)
    v = values[:, complete, :]
    # Rank with ties averaged: rank_i = 1 + #(v_j < v_i) + (#(v_j == v_i) - 1) / 2.
    less = np.sum(v[None, :, :, :] < v[:, None, :, :], axis=1)
    equal = np.sum(v[None, :, :, :] == v[:, None, :, :], axis=1)
    ranks = 1.0 + less + (equal - 1) / 2.0
    return ranks.mean(axis=1)


def first_step_reaching(curve: np.ndarray, level: float) -> int | None:
    """First 1-based step ``t`` with ``curve[t - 1] <= level``; ``None`` if there is none."""
    curve = np.asarray(curve, dtype=np.float64)
    hits = np.flatnonzero(curve <= level + _REACH_TOLERANCE * max(1.0, abs(level)))
    return int(hits[0]) + 1 if hits.size else None


def speedup(reference: np.ndarray, baseline: np.ndarray, budgets=DEFAULT_BUDGETS) -> dict[int, float | None]:
    """``speedup_b(s) = s / t_R(r_b(s))`` for each budget ``s <= T`` (see the module docstring).

    Args:
      reference: [T] mean normalized regret of the pre-trained (reference) method.
      baseline: [T'] mean normalized regret of a baseline.
      budgets: the budgets s; those above the shorter curve's length are left out.
    Returns: budget -> speedup, or ``None`` where the reference never reaches the baseline's
      regret within its T steps (then the speedup is below ``s / T``).
    """
    reference = np.asarray(reference, dtype=np.float64)
    baseline = np.asarray(baseline, dtype=np.float64)
    horizon = min(reference.size, baseline.size)
    out: dict[int, float | None] = {}
    for s in budgets:
        if s > horizon or s < 1:
            continue
        level = baseline[s - 1]
        if not np.isfinite(level):
            out[int(s)] = None
            continue
        t = first_step_reaching(reference[:horizon], level)
        out[int(s)] = None if t is None else s / t
    return out


def efficiency_table(mean_curves: dict[str, np.ndarray], reference: str, budgets=DEFAULT_BUDGETS):
    """Speedup of ``reference`` over every other method, and the minimum over them.

    Args:
      mean_curves: method -> [T] mean normalized regret.
      reference: the pre-trained method's name (a key of ``mean_curves``).
    Returns: (speedups: baseline -> {budget: value or None}, minimum: {budget: value or None}).
      The minimum is ``None`` at a budget where any baseline's speedup is ``None`` (the smallest
      possible value, see the module docstring); empty when there are no baselines.
    """
    if reference not in mean_curves:
        raise KeyError(f"reference method {reference!r} has no curve; methods: {sorted(mean_curves)}")
    table = {
        name: speedup(mean_curves[reference], curve, budgets) for name, curve in mean_curves.items() if name != reference
    }
    minimum: dict[int, float | None] = {}
    if table:
        shared = set.intersection(*(set(v) for v in table.values()))
        for s in sorted(shared):
            column = [row[s] for row in table.values()]
            minimum[s] = None if any(v is None for v in column) else min(column)
    return table, minimum


def reachable_budgets(budgets, horizon: int) -> list[int]:
    """The budgets that fit in ``horizon`` steps."""
    return [int(s) for s in budgets if 1 <= s <= horizon]


__all__ = [
    "DEFAULT_BUDGETS",
    "RegretTrace",
    "Curves",
    "regret_trace",
    "curve_matrix",
    "aggregate",
    "average_rank",
    "first_step_reaching",
    "speedup",
    "efficiency_table",
    "reachable_budgets",
]
