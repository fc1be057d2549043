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

Measures that do not hide behind ties (DESIGN.md section 4). Mean regret curves tie at 0 once a
method finds the pool's best, which makes the ratio jump; these per-task measures sit beside it:

- Evaluations to the top 1%: on a target with ``m`` pool scores, the threshold is the
  ``k``-th largest score, ``k = max(1, ceil(0.01 m))`` (``top_fraction_threshold``); a run's
  evaluations to the top 1% is the first step whose best-so-far is ``>=`` it, ``inf`` when it
  never is within the run (``evaluations_to_reach``). **Not-reached rule**: for averages and
  ratios a not-reached run counts as ``T + 1`` evaluations, with ``T`` the steps it ran (the
  budget, capped by the pool size), the fewest it could have needed; a per-task average that
  involves such a run is therefore a lower bound, and a task where no counted run reached the
  top is reported as not reached (``None``).
- Top-1% speedup of the reference over baseline b: the geometric mean over tasks of
  (b's mean evaluations to the top 1%) / (the reference's), both with the rule above, over the
  tasks where both have finished runs (``top_speedup``). A task where neither reaches the top
  gives ratio 1 (no evidence either way).
- Deterministic methods: a method whose seeds choose the same index sequence on every task
  (``deterministic_methods``; it needs a task with two seeds to tell) is counted once, with its
  lowest finished seed, in the per-task averages and the bootstrap (``counted_runs``), so its
  repeated seeds do not pose as independent evidence.
- Bootstrap over tasks (``bootstrap_weights``): tasks are resampled with replacement
  (``BOOTSTRAP_RESAMPLES`` times, fixed ``BOOTSTRAP_SEED``); the ``BOOTSTRAP_LEVEL`` interval
  is the percentile interval of the statistic over resamples, taken at order statistics
  (``percentile_interval``). For the minimum-over-baselines speedup each resample recomputes
  the mean curves over the resampled tasks' counted runs (``bootstrap_min_speedup``); a
  resample where some baseline's regret is not reached by the reference is "below s/T" and
  an interval end that falls on one is ``None``.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd

DEFAULT_BUDGETS = (10, 25, 50, 100)
TOP_FRACTION = 0.01
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_LEVEL = 0.9
BOOTSTRAP_SEED = 0
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
      y_chosen: [T] scores of the evaluated points (maximized), step 1 first; NaN for a failed
        trial (a pool that keeps its failures), which counts as the pool's worst score.
      pool_best, pool_worst: the best and worst score in the target task's pool.
    """
    y_chosen = np.asarray(y_chosen, dtype=np.float64)
    if y_chosen.ndim != 1 or y_chosen.size == 0:
        raise ValueError(f"y_chosen must be a non-empty 1-D array, got shape {y_chosen.shape}")
    if pool_worst > pool_best:
        raise ValueError(f"pool_worst ({pool_worst}) is above pool_best ({pool_best})")
    best_so_far = np.maximum.accumulate(np.where(np.isnan(y_chosen), pool_worst, y_chosen))
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


# ---- measures that do not hide behind ties ---------------------------------------------------


def top_fraction_threshold(pool_scores, fraction: float = TOP_FRACTION) -> float:
    """The score a run must reach to be in the pool's top ``fraction``: the ``k``-th largest pool
    score, ``k = max(1, ceil(fraction * m))`` for ``m`` scores (maximized)."""
    scores = np.asarray(pool_scores, dtype=np.float64).ravel()
    scores = scores[np.isfinite(scores)]
    if scores.size == 0:
        raise ValueError("no finite pool scores")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    k = max(1, math.ceil(fraction * scores.size - 1e-9))
    return float(np.sort(scores)[::-1][k - 1])


def evaluations_to_reach(best_so_far, threshold: float) -> float:
    """First 1-based step with ``best_so_far >= threshold``; ``inf`` if there is none."""
    best = np.asarray(best_so_far, dtype=np.float64)
    hits = np.flatnonzero(best >= threshold - _REACH_TOLERANCE * max(1.0, abs(threshold)))
    return float(hits[0] + 1) if hits.size else math.inf


def deterministic_methods(results: pd.DataFrame, methods=None) -> list[str]:
    """Methods whose seeds chose the same index sequence on every task.

    Needs the columns ``method, task, seed, step, index``. A method counts as deterministic when
    at least one task has two or more of its seeds and, on every task, all its seeds' sequences
    (ordered by step) are identical; with one seed per task nothing can be told (not listed).
    """
    needed = {"method", "task", "seed", "step", "index"}
    missing = needed - set(results.columns)
    if missing:
        raise ValueError(f"results lack column(s) {sorted(missing)}")
    if methods is None:
        methods = list(pd.unique(results["method"]))
    out = []
    ordered = results.sort_values(["method", "task", "seed", "step"], kind="stable")
    for m in methods:
        rows = ordered[ordered["method"].astype(str) == str(m)]
        compared, same = False, True
        for _, task_rows in rows.groupby("task", sort=False):
            sequences = {tuple(g["index"].to_numpy(dtype=np.int64)) for _, g in task_rows.groupby("seed", sort=False)}
            if task_rows["seed"].nunique() > 1:
                compared = True
            if len(sequences) > 1:
                same = False
                break
        if compared and same:
            out.append(str(m))
    return out


def counted_runs(results: pd.DataFrame, deterministic=()) -> pd.DataFrame:
    """The (method, task, seed) runs that count as evidence: all of them, except that a
    deterministic method counts once per task, with its lowest finished seed."""
    runs = results[["method", "task", "seed"]].drop_duplicates()
    runs = runs.astype({"method": str, "task": str, "seed": np.int64})
    once = runs["method"].isin([str(m) for m in deterministic])
    first = runs[once].sort_values("seed", kind="stable").drop_duplicates(["method", "task"])
    return pd.concat([runs[~once], first]).sort_values(["method", "task", "seed"], kind="stable").reset_index(drop=True)


def evaluations_to_top(results: pd.DataFrame, thresholds: dict, deterministic=()) -> pd.DataFrame:
    """Evaluations each counted run needs to reach its task's threshold.

    Args:
      results: unit rows (``method, task, seed, step, best_so_far``).
      thresholds: task -> score to reach (``top_fraction_threshold``); tasks without one are skipped.
      deterministic: methods counted once per task (``counted_runs``).
    Returns: one row per counted run: ``method, task, seed, steps`` (steps it ran),
      ``evaluations`` (``inf`` when not reached).
    """
    keep = counted_runs(results, deterministic)
    rows = results.astype({"method": str, "task": str}).merge(keep, on=["method", "task", "seed"])
    records = []
    for (method, task, seed), unit in rows.groupby(["method", "task", "seed"], sort=True):
        if task not in thresholds or thresholds[task] is None:
            continue
        unit = unit.sort_values("step", kind="stable")
        records.append(
            (method, task, int(seed), int(unit["step"].max()), evaluations_to_reach(unit["best_so_far"], thresholds[task]))
        )
    return pd.DataFrame(records, columns=["method", "task", "seed", "steps", "evaluations"])


def per_task_evaluations(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (method, task) from ``evaluations_to_top`` rows: ``evaluations`` = mean over runs with
    a not-reached run counted as ``steps + 1`` (the not-reached rule), ``reached`` (runs that
    reached), ``runs`` (counted runs). Index: (method, task)."""
    if runs.empty:
        return pd.DataFrame(
            {"evaluations": pd.Series(dtype=float), "reached": pd.Series(dtype=int), "runs": pd.Series(dtype=int)},
            index=pd.MultiIndex.from_arrays([[], []], names=["method", "task"]),
        )
    finite = np.isfinite(runs["evaluations"].to_numpy())
    counted = np.where(finite, runs["evaluations"].to_numpy(), runs["steps"].to_numpy() + 1.0)
    frame = runs.assign(counted=counted, hit=finite.astype(int))
    grouped = frame.groupby(["method", "task"], sort=False)
    return pd.DataFrame(
        {"evaluations": grouped["counted"].mean(), "reached": grouped["hit"].sum(), "runs": grouped["hit"].size()}
    )


def top_log_ratios(per_task: pd.DataFrame, reference: str, baseline: str) -> pd.Series:
    """task -> log(baseline's evaluations / reference's), over the tasks both have."""
    if per_task.empty:
        return pd.Series(dtype=float)
    ev = per_task["evaluations"]
    methods = ev.index.get_level_values("method")
    if reference not in set(methods) or baseline not in set(methods):
        return pd.Series(dtype=float)
    ref, base = ev.xs(reference, level="method"), ev.xs(baseline, level="method")
    common = [t for t in base.index if t in ref.index]
    return pd.Series(np.log(base[common].to_numpy() / ref[common].to_numpy()), index=common, dtype=float)


def top_speedup(per_task: pd.DataFrame, reference: str, baselines) -> dict[str, float | None]:
    """Geometric mean over tasks of (baseline's / reference's evaluations to the top); ``None``
    when the two share no task."""
    out: dict[str, float | None] = {}
    for b in baselines:
        logs = top_log_ratios(per_task, reference, b)
        out[str(b)] = float(np.exp(logs.mean())) if len(logs) else None
    return out


def bootstrap_weights(num_tasks: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """[resamples, num_tasks] multiplicities of each task in resamples drawn with replacement."""
    weights = np.zeros((int(resamples), int(num_tasks)))
    if num_tasks == 0:
        return weights
    draws = np.random.default_rng(seed).integers(0, num_tasks, size=(int(resamples), int(num_tasks)))
    np.add.at(weights, (np.repeat(np.arange(int(resamples)), num_tasks), draws.ravel()), 1.0)
    return weights


def percentile_interval(samples, level: float = BOOTSTRAP_LEVEL) -> tuple[float, float] | None:
    """The central ``level`` percentile interval of bootstrap ``samples``, at order statistics.

    NaN samples (undefined statistic) are dropped; ``-inf`` samples (below any reportable
    value, e.g. a speedup below s/T) sort first and come back as ``-inf``. ``None`` when no
    sample is defined.
    """
    samples = np.asarray(samples, dtype=np.float64)
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return None
    tail = (1.0 - level) / 2.0
    low = float(np.quantile(samples, tail, method="inverted_cdf"))
    high = float(np.quantile(samples, 1.0 - tail, method="inverted_cdf"))
    return low, high


def bootstrap_top_speedup(per_task: pd.DataFrame, reference: str, baselines, tasks, weights: np.ndarray):
    """Bootstrap samples of the geometric-mean top speedup per baseline and of its minimum over
    baselines. ``weights``: [B, len(tasks)] from ``bootstrap_weights`` over ``tasks``.
    Returns (baseline -> [B] samples, [B] minimum); NaN where a resample has none of its tasks."""
    position = {str(t): i for i, t in enumerate(tasks)}
    samples = {}
    for b in baselines:
        logs = top_log_ratios(per_task, reference, b)
        columns = [position[t] for t in logs.index if t in position]
        values = logs[[t for t in logs.index if t in position]].to_numpy()
        w = weights[:, columns]
        total = w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            samples[str(b)] = np.exp(np.where(total > 0, (w @ values) / np.where(total > 0, total, 1.0), np.nan))
    if samples:
        stacked = np.stack(list(samples.values()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)
            minimum = np.nanmin(stacked, axis=0)
    else:
        minimum = np.full(weights.shape[0], np.nan)
    return samples, minimum


def bootstrap_min_speedup(curves: Curves, reference: str, budgets, weights: np.ndarray, counted=None, baselines=None):
    """Bootstrap samples of the minimum-over-baselines speedup at each budget.

    Each resample (a row of ``weights``, [B, N] over the N tasks of ``curves.runs`` in order of
    first appearance) gives each task's counted runs that weight in the mean curves, and the
    speedups are recomputed as in ``efficiency_table``. ``counted``: [M, R] bool, the runs
    that count (default all; see ``counted_runs``). ``baselines``: the methods compared
    (default all but the reference).
    Returns budget -> [B] samples: the minimum speedup, ``-inf`` where some baseline's regret is
    not reached by the reference (below s/T), NaN where no baseline has runs in the resample.
    """
    methods = list(curves.methods)
    ref = methods.index(reference)
    if baselines is None:
        baselines = [m for m in methods if m != reference]
    base_index = [methods.index(b) for b in baselines]
    values = np.asarray(curves.values, dtype=np.float64)
    num_methods, num_runs, horizon = values.shape
    if counted is None:
        counted = np.ones((num_methods, num_runs), dtype=bool)
    tasks = list(dict.fromkeys(t for t, _ in curves.runs))
    task_of = np.array([tasks.index(t) for t, _ in curves.runs], dtype=np.int64)
    # Per-task sums and counts of the counted runs: [M, N, T].
    use = counted[:, :, None] & np.isfinite(values)
    onehot = (task_of[:, None] == np.arange(len(tasks))[None, :]).astype(np.float64)  # [R, N]
    sums = np.einsum("mrt,rn->mnt", np.where(use, values, 0.0), onehot)
    counts = np.einsum("mrt,rn->mnt", use.astype(np.float64), onehot)
    out = {}
    chosen = [m for m in [ref] + base_index]
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.einsum("bn,mnt->bmt", weights, sums[chosen]) / np.einsum("bn,mnt->bmt", weights, counts[chosen])
    reference_curve = means[:, 0, :]  # [B, T]
    for s in budgets:
        if not 1 <= s <= horizon or not base_index:
            continue
        levels = means[:, 1:, s - 1]  # [B, nb]
        slack = _REACH_TOLERANCE * np.maximum(1.0, np.abs(levels))
        hits = reference_curve[:, None, :] <= (levels + slack)[:, :, None]  # [B, nb, T]
        reached = hits.any(axis=2)
        first = hits.argmax(axis=2) + 1
        ratio = np.where(reached, s / first, -np.inf)
        ratio = np.where(np.isfinite(levels), ratio, np.nan)  # no runs of that baseline: left out
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)
            minimum = np.nanmin(ratio, axis=1)
        # A resample where the reference has no runs has no ratio at all.
        minimum = np.where(np.isnan(reference_curve).all(axis=1), np.nan, minimum)
        out[int(s)] = minimum
    return out


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
    "TOP_FRACTION",
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_LEVEL",
    "BOOTSTRAP_SEED",
    "top_fraction_threshold",
    "evaluations_to_reach",
    "deterministic_methods",
    "counted_runs",
    "evaluations_to_top",
    "per_task_evaluations",
    "top_log_ratios",
    "top_speedup",
    "bootstrap_weights",
    "percentile_interval",
    "bootstrap_top_speedup",
    "bootstrap_min_speedup",
]
