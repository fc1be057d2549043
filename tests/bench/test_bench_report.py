"""Report text of `metabo benchmark`: counts in the right number ("1 seed", not "1 seeds"), and the
tie-free measures (evaluations to the top 1%, their geometric-mean ratio, bootstrap intervals,
deterministic methods, the s = 10 column) on hand-built units."""

import json

import numpy as np
import pandas as pd
import pytest

from metabo.bench.report import (
    COST_KEYS,
    efficiency_markdown,
    markdown_report,
    plural,
    summarize,
    write_report,
)
from metabo.bench.runner import BenchmarkConfig, Plan


def _summary(tasks, seeds, failures, excluded):
    methods = ["random"]
    return {
        "methods": methods,
        "reference": None,
        "tasks": [f"t{i}" for i in range(tasks)],
        "seeds": seeds,
        "budget": 1,
        "requested_budget": 1,
        "mean_normalized_regret": {"random": [0.5]},
        "median_normalized_regret": {"random": [0.5]},
        "average_rank": {"random": [1.0]},
        "speedup": {},
        "min_speedup": {},
        "speedup_upper_bound": {},
        "speedup_definition": "-",
        "no_results": [],
        "runs": {"random": tasks * seeds},
        "failures": [{"method": "random", "task": "t0", "seed": s, "error": "boom"} for s in range(failures)],
        "capped_tasks": {},
        "excluded_related": {f"t{i}": ["x"] for i in range(excluded)},
        "cost": {"random": dict.fromkeys(COST_KEYS)},
        "plots": [],
    }


@pytest.mark.parametrize(
    "count, word, many, expected",
    [(1, "seed", None, "1 seed"), (0, "seed", None, "0 seeds"), (3, "task", None, "3 tasks"), (2, "matrix", "matrices", "2 matrices")],
)
def test_plural(count, word, many, expected):
    assert plural(count, word, many) == expected


def test_report_says_one_seed_and_one_task_in_the_singular():
    text = markdown_report(_summary(tasks=1, seeds=1, failures=1, excluded=1))
    assert "over 1 target task, 1 seed, budget 1 evaluation " in text
    assert "for 1 target (see" in text
    assert "(s)" not in text.split("## Cost")[0]


def test_report_says_several_in_the_plural():
    text = markdown_report(_summary(tasks=3, seeds=2, failures=2, excluded=2))
    assert "over 3 target tasks, 2 seeds, budget 1 evaluation " in text
    assert "for 2 targets (see" in text


# ---- tie-free measures in summary.json and report.md, on hand-built units --------------------

BUDGET = 20
POOL = np.arange(100.0)[::-1].copy()  # index 0 holds the best score (the top 1% of 100 points)


def _unit(method, task, seed, order):
    order = np.asarray(order, dtype=np.int64)
    y = POOL[order]
    best = np.maximum.accumulate(y)
    simple = POOL.max() - best
    return pd.DataFrame(
        {
            "method": method,
            "task": task,
            "seed": seed,
            "unit_seed": seed,
            "step": np.arange(1, len(order) + 1),
            "index": order,
            "y": y,
            "best_so_far": best,
            "simple_regret": simple,
            "normalized_regret": simple / (POOL.max() - POOL.min()),
            "pool_size": len(POOL),
            "budget": len(order),
            "setup_seconds": 0.1,
            "propose_seconds": 0.01,
        }
    )


def _finding_best_at(step, filler_start):
    """An order of BUDGET distinct indices that picks index 0 (the best) at ``step`` (None: never)."""
    filler = list(range(filler_start, filler_start + BUDGET))
    if step is None:
        return filler[:BUDGET]
    return filler[: step - 1] + [0] + filler[step - 1 : BUDGET - 1]


def _scenario():
    """3 tasks x 2 seeds. hyperbo finds the best at step 2; random at 8 or never; grid (the
    same order with both seeds: deterministic) at 16."""
    rows = []
    for t in ("t0", "t1", "t2"):
        for seed in range(2):
            rows.append(_unit("hyperbo", t, seed, _finding_best_at(2, 1 + 30 * seed)))
            rows.append(_unit("random", t, seed, _finding_best_at(8 if seed == 0 else None, 1 + 40 * seed)))
            rows.append(_unit("grid", t, seed, _finding_best_at(16, 50)))
    results = pd.concat(rows, ignore_index=True)
    config = BenchmarkConfig(methods=("hyperbo", "random", "grid"), budget=BUDGET, seeds=2, reference="hyperbo")
    units = [(m, t, s) for t in ("t0", "t1", "t2") for m in config.methods for s in range(2)]
    plan = Plan(units, [], len(units), {t: len(POOL) for t in ("t0", "t1", "t2")}, {})
    return results, config, plan


def test_summary_has_top1_measures_deterministic_methods_and_intervals():
    results, config, plan = _scenario()
    pools = {t: POOL for t in plan.pool_sizes}
    summary = summarize(results, config, plan, [], pool_scores=pools)
    assert summary["deterministic_methods"] == ["grid"]
    assert summary["top1_threshold_source"] == "pool scores"
    assert summary["top1_threshold"] == {"t0": 99.0, "t1": 99.0, "t2": 99.0}
    ev = summary["evaluations_to_top1"]
    assert ev["hyperbo"]["t0"] == pytest.approx(2.0)
    assert ev["random"]["t1"] == pytest.approx((8 + BUDGET + 1) / 2)  # one seed never: counts as 21
    assert summary["top1_reached"]["random"]["t1"] == [1, 2]
    assert ev["grid"]["t2"] == pytest.approx(16.0) and summary["top1_reached"]["grid"]["t2"] == [1, 1]  # one seed
    # Every task gives the same ratios, so the intervals have no width.
    top = summary["top1_speedup"]
    assert top["grid"] == pytest.approx(8.0) and top["random"] == pytest.approx(14.5 / 2)
    low, high = summary["top1_speedup_interval"]["random"]
    assert low == pytest.approx(top["random"]) and high == pytest.approx(top["random"])
    assert summary["min_top1_speedup"] == pytest.approx(7.25)
    assert summary["min_top1_speedup_interval"][0] == pytest.approx(7.25)
    assert summary["top1_speedup_tasks"] == {"random": 3, "grid": 3}
    # s = 10 is in the efficiency table (T = 20), with a degenerate interval around the minimum.
    assert set(summary["speedup"]["random"]) == {"10"} and set(summary["min_speedup"]) == {"10"}
    low, high = summary["min_speedup_interval"]["10"]
    assert low == pytest.approx(summary["min_speedup"]["10"]) and high == pytest.approx(low)
    assert summary["bootstrap"] == {"resamples": 2000, "level": 0.9, "seed": 0, "over": "tasks"}
    json.dumps(summary, allow_nan=False)  # strict JSON


def test_thresholds_without_pool_scores_come_from_evaluated_points():
    results, config, plan = _scenario()
    summary = summarize(results, config, plan, [])
    assert summary["top1_threshold_source"] == "evaluated points"
    assert summary["top1_threshold"]["t0"] == pytest.approx(99.0)  # the best was evaluated


def test_efficiency_markdown_prints_the_s10_column_and_marks_deterministic():
    results, config, plan = _scenario()
    summary = summarize(results, config, plan, [], pool_scores={t: POOL for t in plan.pool_sizes})
    text = efficiency_markdown(summary)
    header = next(line for line in text.splitlines() if line.startswith("| baseline | s = "))
    assert header == "| baseline | s = 10 |"
    assert "| grid (deterministic: seeds repeat) |" in text
    assert "90% interval of the min" in text and "top-1% speedup" in text
    assert "7.25x" in text


def test_report_md_has_top1_section(tmp_path):
    results, config, plan = _scenario()
    summary = write_report(tmp_path, results, config, plan, [], pool_scores={t: POOL for t in plan.pool_sizes})
    text = (tmp_path / "report.md").read_text()
    assert "## Evaluations to the pool's top 1%" in text
    assert "| t1 | 2.0 | >= 14.5 (1/2) | 16.0 |" in text
    assert "deterministic: seeds repeat" in text
    stored = json.loads((tmp_path / "summary.json").read_text())
    assert stored["deterministic_methods"] == ["grid"] and "min_speedup_interval" in stored
    assert summary["top1_speedup"]["grid"] == pytest.approx(stored["top1_speedup"]["grid"])


def test_report_without_top1_keys_still_renders():
    text = markdown_report(_summary(tasks=2, seeds=1, failures=0, excluded=0))
    assert "## Evaluations to the pool's top 1%" in text and "No per-task measures" in text
