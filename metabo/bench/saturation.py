"""Is a benchmark data set hard enough to tell methods apart? Two checks on its target pools.

A leave-one-task-out comparison cannot rank methods on data where everything finds the best
point at once. The data card of a collection prints:

- ``random_search_regret``: random search's expected normalized regret after ``budget``
  evaluations, averaged over tasks, in closed form (uniform draws without replacement from the
  task's pool, as ``random`` in the benchmark);
- ``zero_shot_solved``: the tasks on which the zero-shot portfolio (trained on all other tasks,
  the benchmark's ``zeroshot`` through ``run_unit``) reaches normalized regret 0 within ``budget``
  evaluations.

Pools are what the benchmark uses: ``TuningLog.task_arrays(task, failures)``. From a shell:
``python -m metabo.bench.saturation data/pd1_mini.parquet`` prints both checks per part as JSON.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from metabo.data import TuningLog


def expected_min_without_replacement(values: np.ndarray, draws: int) -> float:
    """E[min of ``draws`` values drawn uniformly without replacement from ``values``].

    With the values sorted ascending, v_1 <= ... <= v_N, the minimum is at least v_i exactly
    when all draws fall among the last N - i + 1 values: P = prod_j (N - i + 1 - j) / (N - j).
    """
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = v.size
    if n == 0:
        raise ValueError("values is empty")
    k = min(int(draws), n)
    if k < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    remaining = np.arange(n, 0, -1, dtype=np.float64)  # N - i + 1 for i = 1..N
    j = np.arange(k, dtype=np.float64)
    # survival[i] = P(min >= v_i); zero once fewer than k values remain.
    ratios = np.clip((remaining[:, None] - j[None, :]) / (n - j[None, :]), 0.0, None)
    survival = np.prod(ratios, axis=1)
    point = survival - np.append(survival[1:], 0.0)  # P(min == v_i) (by position)
    return float(np.dot(point, v))


def random_search_regret(pool_y: np.ndarray, budget: int) -> float:
    """Expected normalized regret of random search after ``budget`` evaluations of a pool.

    pool_y: [m] scores (maximized). 0 for a constant pool."""
    y = np.asarray(pool_y, dtype=np.float64)
    span = y.max() - y.min()
    if span <= 0:
        return 0.0
    return expected_min_without_replacement((y.max() - y) / span, budget)


def zero_shot_first_hit(log: TuningLog, task: str, budget: int, failures: str = "drop", pool=None) -> int | None:
    """The evaluation (1-based) at which ``zeroshot``, trained on every other task of ``log``,
    first evaluates ``task``'s best pool point; None if not within ``budget``. ``pool``: the
    task's ``(x, y)`` when the caller already has them."""
    from metabo.baselines import get_method
    from metabo.bench.runner import run_unit

    pool_x, pool_y = log.task_arrays(task, failures) if pool is None else pool
    frame = run_unit(
        get_method("zeroshot"),
        log.space,
        log.without(task),
        pool_x,
        pool_y,
        method="zeroshot",
        task=task,
        seed=0,
        unit_seed=0,
        budget=budget,
        failures=failures,
    )
    hits = np.flatnonzero(frame["normalized_regret"].to_numpy() <= 0.0)
    return int(hits[0]) + 1 if hits.size else None


def saturation(
    log: TuningLog,
    random_budget: int = 25,
    zero_shot_budget: int = 10,
    failures: str = "drop",
    tasks: Sequence[str] | None = None,
) -> dict:
    """Both checks on ``log`` (JSON-ready). ``tasks``: the targets (default: all)."""
    tasks = list(log.tasks if tasks is None else tasks)
    per_task = []
    for task in tasks:
        pool_x, pool_y = log.task_arrays(task, failures)
        per_task.append(
            {
                "task": task,
                "pool": int(pool_y.size),
                "random_search_regret": random_search_regret(pool_y, random_budget),
                "zero_shot_first_hit": zero_shot_first_hit(log, task, zero_shot_budget, failures, (pool_x, pool_y)),
            }
        )
    solved = [t["task"] for t in per_task if t["zero_shot_first_hit"] is not None]
    return {
        "random_budget": int(random_budget),
        "zero_shot_budget": int(zero_shot_budget),
        "failures": failures,
        "random_search_regret": float(np.mean([t["random_search_regret"] for t in per_task])),
        "zero_shot_solved": solved,
        "zero_shot_solved_share": len(solved) / len(per_task) if per_task else 0.0,
        "tasks": per_task,
    }


def part_saturation(frame, space, random_budget: int = 25, zero_shot_budget: int = 10) -> dict:
    """``saturation`` of each ``part`` of a bundled log frame (``part`` column: matched and/or
    unmatched; the zero-shot check on the matched part only, where the portfolio reads each
    configuration's results on the other tasks directly). -> {part: saturation dict}."""
    from metabo.data import read_log

    out = {}
    for part in ("matched", "unmatched"):
        rows = frame[frame["part"] == part] if "part" in frame.columns else frame.iloc[:0]
        if rows.empty:
            continue
        log = read_log(rows.reset_index(drop=True), space)
        if part == "matched":
            out[part] = saturation(log, random_budget, zero_shot_budget)
        else:
            pools = [log.task_arrays(t)[1] for t in log.tasks]
            out[part] = {
                "random_budget": int(random_budget),
                "random_search_regret": float(np.mean([random_search_regret(y, random_budget) for y in pools])),
            }
    return out


def main(argv=None) -> int:
    import argparse
    import json
    from pathlib import Path

    import pandas as pd

    from metabo.space import load_space

    parser = argparse.ArgumentParser(prog="python -m metabo.bench.saturation", description=__doc__.splitlines()[0])
    parser.add_argument("log", help="a bundled log (.parquet) with a part column and its _space.json beside it")
    args = parser.parse_args(argv)
    path = Path(args.log)
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    space = load_space(path.with_name(f"{path.stem}_space.json"))
    result = part_saturation(frame, space)  # run_unit runs the GP work in float64
    for part in result.values():
        part.pop("tasks", None)
    print(json.dumps(result, indent=2))
    return 0


__all__ = [
    "expected_min_without_replacement",
    "part_saturation",
    "random_search_regret",
    "saturation",
    "zero_shot_first_hit",
]


if __name__ == "__main__":
    raise SystemExit(main())
