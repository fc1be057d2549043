"""Metrics on hand-made curves and unit frames: regret, aggregation, ranks, the efficiency ratio,
evaluations to the top 1%, their geometric-mean ratio, deterministic methods and the bootstrap."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from metabo.bench.metrics import (
    DEFAULT_BUDGETS,
    aggregate,
    average_rank,
    bootstrap_min_speedup,
    bootstrap_top_speedup,
    bootstrap_weights,
    counted_runs,
    curve_matrix,
    deterministic_methods,
    efficiency_table,
    evaluations_to_reach,
    evaluations_to_top,
    first_step_reaching,
    per_task_evaluations,
    percentile_interval,
    regret_trace,
    speedup,
    top_fraction_threshold,
    top_speedup,
)


def test_regret_trace_closed_form():
    trace = regret_trace(np.array([1.0, 3.0, 2.0, 5.0]), pool_best=5.0, pool_worst=0.0)
    np.testing.assert_array_equal(trace.best_so_far, [1, 3, 3, 5])
    np.testing.assert_array_equal(trace.simple_regret, [4, 2, 2, 0])
    np.testing.assert_allclose(trace.normalized_regret, [0.8, 0.4, 0.4, 0.0])


def test_regret_trace_counts_a_failed_pick_as_the_pools_worst():
    # Failures first (nothing found yet: the worst, regret 1), then a success, then a failure.
    trace = regret_trace(np.array([np.nan, np.nan, 3.0, np.nan, 4.0]), pool_best=5.0, pool_worst=1.0)
    np.testing.assert_allclose(trace.best_so_far, [1.0, 1.0, 3.0, 3.0, 4.0])
    np.testing.assert_allclose(trace.normalized_regret, [1.0, 1.0, 0.5, 0.5, 0.25])


def test_regret_trace_flat_pool_and_bad_input():
    np.testing.assert_array_equal(regret_trace(np.array([2.0, 2.0]), 2.0, 2.0).normalized_regret, [0, 0])
    with pytest.raises(ValueError, match="above pool_best"):
        regret_trace(np.array([1.0]), 0.0, 1.0)
    with pytest.raises(ValueError, match="non-empty"):
        regret_trace(np.array([]), 1.0, 0.0)


def g(steps):
    """A strictly decreasing regret curve."""
    return np.exp(-np.asarray(steps, dtype=float) / 20.0)


def test_twice_as_fast_gives_speedup_two():
    steps = np.arange(1, 101)
    baseline = g(steps)
    reference = g(2 * steps)  # reaches any regret level in half the evaluations
    result = speedup(reference, baseline)
    assert set(result) == {10, 25, 50, 100}
    assert result[10] == pytest.approx(2.0)
    assert result[50] == pytest.approx(2.0)
    assert result[100] == pytest.approx(2.0)
    # Steps are whole evaluations: reaching g(25) takes ceil(25 / 2) = 13 steps.
    assert result[25] == pytest.approx(25 / 13)


def test_min_over_baselines_and_budgets_above_t_left_out():
    steps = np.arange(1, 61)
    curves = {"ref": g(4 * steps), "slow": g(steps), "less_slow": g(2 * steps)}
    table, minimum = efficiency_table(curves, "ref")
    assert set(table) == {"slow", "less_slow"}
    assert set(minimum) == {10, 25, 50}  # T = 60 < 100
    assert table["slow"][50] == pytest.approx(50 / 13)  # 4x faster, in whole steps: ceil(50 / 4)
    assert table["less_slow"][50] == pytest.approx(2.0)
    assert minimum[50] == pytest.approx(2.0)
    assert minimum[25] == pytest.approx(min(25 / 7, 25 / 13))
    assert minimum[10] == pytest.approx(min(10 / 3, 10 / 5))  # ceil(10 / 4), ceil(10 / 2)


def test_unreached_regret_gives_none_and_none_minimum():
    steps = np.arange(1, 101)
    curves = {"ref": g(steps) + 0.5, "good": g(steps), "bad": np.full(100, 2.0)}
    table, minimum = efficiency_table(curves, "ref")
    # ref never gets as low as "good" after 25 or more steps; g(10) it reaches at step 45.
    assert {s: table["good"][s] for s in (25, 50, 100)} == {25: None, 50: None, 100: None}
    assert table["good"][10] == pytest.approx(10 / 45)  # g(45) + 0.5 <= g(10) < g(44) + 0.5
    assert table["bad"][100] == pytest.approx(100.0)  # ref is below 2 from step 1
    assert {s: minimum[s] for s in (25, 50, 100)} == {25: None, 50: None, 100: None}
    assert minimum[10] == pytest.approx(10 / 45)
    with pytest.raises(KeyError, match="reference"):
        efficiency_table(curves, "missing")


def test_first_step_reaching_is_one_based():
    curve = np.array([0.9, 0.5, 0.5, 0.1])
    assert first_step_reaching(curve, 0.5) == 2
    assert first_step_reaching(curve, 1.0) == 1
    assert first_step_reaching(curve, 0.05) is None


def _long_frame(method, task, seed, values):
    return pd.DataFrame(
        {
            "method": method,
            "task": task,
            "seed": seed,
            "step": np.arange(1, len(values) + 1),
            "normalized_regret": values,
        }
    )


def test_curve_matrix_forward_fills_short_runs_and_marks_missing():
    frame = pd.concat(
        [
            _long_frame("a", "t1", 0, [0.5, 0.2, 0.1, 0.0]),
            _long_frame("a", "t2", 0, [0.6, 0.0]),  # pool of 2: exhausted after step 2
            _long_frame("b", "t1", 0, [0.7, 0.7, 0.3, 0.3]),
        ]
    )
    curves = curve_matrix(frame, budget=4)
    assert curves.methods == ["a", "b"]
    assert curves.runs == [("t1", 0), ("t2", 0)]
    np.testing.assert_array_equal(curves.values[0, 1], [0.6, 0.0, 0.0, 0.0])
    assert np.all(np.isnan(curves.values[1, 1]))  # b has no result on t2


def test_pipeline_from_runs_twice_as_fast():
    # Per-run curves at different rates; the mean curves inherit the factor of two exactly.
    steps = np.arange(1, 101)
    rows = []
    for task, rate in (("t1", 10.0), ("t2", 30.0)):
        for seed in range(2):
            shift = 0.01 * seed
            rows.append(_long_frame("base", task, seed, np.exp(-steps / rate) * (1 - shift)))
            rows.append(_long_frame("ref", task, seed, np.exp(-2 * steps / rate) * (1 - shift)))
    curves = curve_matrix(pd.concat(rows), methods=["ref", "base"])
    means = {m: aggregate(curves.values[i])["mean"] for i, m in enumerate(curves.methods)}
    table, minimum = efficiency_table(means, "ref")
    assert table["base"][50] == pytest.approx(2.0)
    assert minimum[100] == pytest.approx(2.0)


def test_aggregate_matches_numpy():
    rng = np.random.default_rng(0)
    values = rng.random((7, 5))
    values[2, 3] = np.nan  # a missing run at one step
    stats = aggregate(values)
    column = values[~np.isnan(values[:, 3]), 3]
    assert stats["mean"][3] == pytest.approx(column.mean())
    assert stats["median"][3] == pytest.approx(np.median(column))
    assert stats["q25"][3] == pytest.approx(np.quantile(column, 0.25))
    assert stats["q75"][0] == pytest.approx(np.quantile(values[:, 0], 0.75))
    assert stats["sem"][0] == pytest.approx(values[:, 0].std(ddof=1) / np.sqrt(7))
    assert stats["count"].tolist() == [7, 7, 7, 6, 7]


def test_average_rank_matches_scipy_and_skips_incomplete_runs():
    rng = np.random.default_rng(1)
    values = rng.integers(0, 3, size=(3, 6, 4)).astype(float)  # many ties on purpose
    values[2, 5, 1] = np.nan  # run 5 is incomplete: left out of every step
    ranks = average_rank(values)
    expected = np.zeros((3, 4))
    for step in range(4):
        per_run = [rankdata(values[:, run, step]) for run in range(5)]
        expected[:, step] = np.mean(per_run, axis=0)
    np.testing.assert_allclose(ranks, expected)
    # A uniformly better method ranks first everywhere.
    dominated = np.stack([np.full((2, 3), 0.1), np.full((2, 3), 0.2)])
    np.testing.assert_array_equal(average_rank(dominated), [[1, 1, 1], [2, 2, 2]])


# ---- evaluations to the top 1%, geometric mean, deterministic methods, bootstrap ----------------


def test_default_budgets_include_ten():
    assert DEFAULT_BUDGETS == (10, 25, 50, 100)


def test_top_fraction_threshold_is_the_kth_best_score():
    rng = np.random.default_rng(0)
    assert top_fraction_threshold(rng.permutation(100)) == 99  # k = 1: the best
    assert top_fraction_threshold(rng.permutation(250)) == 247  # k = ceil(2.5) = 3
    assert top_fraction_threshold(rng.permutation(300)) == 297  # k = 3, not ceil(3.0000000000000004)
    assert top_fraction_threshold([2.0, 7.0, 7.0, 1.0]) == 7.0  # ties: any point at the threshold counts
    with pytest.raises(ValueError, match="finite"):
        top_fraction_threshold([np.nan])


def test_evaluations_to_reach_is_one_based_and_inf_when_never():
    best = np.maximum.accumulate([1.0, 4.0, 4.0, 9.0])
    assert evaluations_to_reach(best, 4.0) == 2
    assert evaluations_to_reach(best, 9.0) == 4
    assert evaluations_to_reach(best, 0.0) == 1
    assert evaluations_to_reach(best, 10.0) == np.inf


def unit(method, task, seed, indices, pool_y):
    """One unit's rows as the runner stores them (the columns the metrics read)."""
    indices = np.asarray(indices, dtype=np.int64)
    y = np.asarray(pool_y, dtype=float)[indices]
    best = np.maximum.accumulate(y)
    spread = np.max(pool_y) - np.min(pool_y)
    return pd.DataFrame(
        {
            "method": method,
            "task": task,
            "seed": seed,
            "step": np.arange(1, len(indices) + 1),
            "index": indices,
            "y": y,
            "best_so_far": best,
            "simple_regret": np.max(pool_y) - best,
            "normalized_regret": (np.max(pool_y) - best) / spread,
        }
    )


POOL = np.arange(100.0)  # top 1% of 100 points: the best one, index 99


def test_evaluations_to_top_per_run_and_per_task_with_not_reached():
    frame = pd.concat(
        [
            unit("a", "t1", 0, [5, 99, 3, 4], POOL),  # reaches at step 2
            unit("a", "t1", 1, [99, 5, 3, 4], POOL),  # step 1
            unit("a", "t2", 0, [1, 2, 3, 4], POOL),  # never within T = 4
            unit("a", "t2", 1, [1, 2, 3, 99], POOL),  # step 4
            unit("b", "t1", 0, [1, 2, 3, 4], POOL),  # never
        ]
    )
    runs = evaluations_to_top(frame, {"t1": 99.0, "t2": 99.0})
    lookup = {(m, t, s): e for m, t, s, e in runs[["method", "task", "seed", "evaluations"]].itertuples(index=False)}
    assert lookup[("a", "t1", 0)] == 2 and lookup[("a", "t1", 1)] == 1
    assert lookup[("a", "t2", 0)] == np.inf and lookup[("a", "t2", 1)] == 4
    per_task = per_task_evaluations(runs)
    assert per_task.loc[("a", "t1"), "evaluations"] == pytest.approx(1.5)
    # Not reached counts as T + 1 = 5: (5 + 4) / 2.
    assert per_task.loc[("a", "t2"), "evaluations"] == pytest.approx(4.5)
    assert per_task.loc[("a", "t2"), "reached"] == 1 and per_task.loc[("a", "t2"), "runs"] == 2
    assert per_task.loc[("b", "t1"), "reached"] == 0 and per_task.loc[("b", "t1"), "evaluations"] == pytest.approx(5.0)


def test_geometric_mean_speedup_with_a_not_reached_task():
    steps = 10
    never = list(range(steps))  # indices 0..9: the best (index 99) is never found
    frame = pd.concat(
        [
            unit("ref", "t1", 0, [0, 99] + list(range(1, 9)), POOL),  # 2 evaluations
            unit("ref", "t2", 0, [0, 1, 2, 3, 99] + list(range(4, 9)), POOL),  # 5
            unit("base", "t1", 0, list(range(7)) + [99, 7, 8], POOL),  # 8
            unit("base", "t2", 0, never, POOL),  # not reached: counts as 11
        ]
    )
    per_task = per_task_evaluations(evaluations_to_top(frame, {"t1": 99.0, "t2": 99.0}))
    result = top_speedup(per_task, "ref", ["base"])
    assert result["base"] == pytest.approx(np.sqrt((8 / 2) * (11 / 5)))
    assert top_speedup(per_task, "ref", ["missing"]) == {"missing": None}


def test_deterministic_methods_detected_from_index_sequences():
    frame = pd.concat(
        [
            unit("grid", "t1", 0, [3, 1, 2], POOL),
            unit("grid", "t1", 1, [3, 1, 2], POOL),
            unit("grid", "t2", 0, [7, 8, 9], POOL),
            unit("grid", "t2", 1, [7, 8, 9], POOL),
            unit("random", "t1", 0, [3, 1, 2], POOL),
            unit("random", "t1", 1, [3, 1, 2], POOL),
            unit("random", "t2", 0, [7, 8, 9], POOL),
            unit("random", "t2", 1, [7, 9, 8], POOL),  # differs on one task: not deterministic
            unit("single", "t1", 0, [1, 2, 3], POOL),  # one seed: cannot tell
        ]
    )
    assert deterministic_methods(frame) == ["grid"]
    kept = counted_runs(frame, ["grid"])
    assert sorted(kept[kept["method"] == "grid"]["seed"]) == [0, 0]  # once per task, lowest seed
    assert len(kept[kept["method"] == "random"]) == 4
    # Counted once in the per-task averages too.
    per_task = per_task_evaluations(evaluations_to_top(frame, {"t1": 3.0, "t2": 9.0}, deterministic=["grid"]))
    assert per_task.loc[("grid", "t1"), "runs"] == 1 and per_task.loc[("random", "t1"), "runs"] == 2
    assert per_task.loc[("grid", "t2"), "evaluations"] == pytest.approx(3.0)


def test_bootstrap_weights_resample_tasks_with_replacement():
    weights = bootstrap_weights(5, resamples=300, seed=1)
    assert weights.shape == (300, 5)
    np.testing.assert_array_equal(weights.sum(axis=1), 5)
    assert (weights.max(axis=1) > 1).any()  # some task drawn twice
    np.testing.assert_array_equal(weights, bootstrap_weights(5, resamples=300, seed=1))  # fixed seed


def test_percentile_interval_order_statistics_and_below_bound():
    samples = np.arange(1.0, 101.0)
    low, high = percentile_interval(samples, 0.9)
    assert 4 <= low <= 6 and 95 <= high <= 97
    assert percentile_interval(np.full(7, 2.5)) == (2.5, 2.5)
    assert percentile_interval([np.nan, np.nan]) is None
    low, _ = percentile_interval(np.r_[np.full(20, -np.inf), np.arange(80.0)], 0.9)
    assert low == -np.inf


def _per_task_ratio_frame(ratios, ref_steps=4, steps=60):
    """The reference reaches the best (index 99) at ref_steps, the baseline at ratio * ref_steps."""
    rows = []
    for i, r in enumerate(ratios):
        task = f"t{i}"
        for method, at in (("ref", ref_steps), ("base", int(round(r * ref_steps)))):
            order = list(range(at - 1)) + [99] + list(range(at - 1, steps - 1))
            rows.append(unit(method, task, 0, order, POOL))
    return pd.concat(rows)


def test_top_speedup_bootstrap_contains_point_and_is_degenerate_for_equal_ratios():
    tasks = [f"t{i}" for i in range(6)]
    weights = bootstrap_weights(len(tasks), 2000, 0)
    thresholds = dict.fromkeys(tasks, 99.0)

    equal = per_task_evaluations(evaluations_to_top(_per_task_ratio_frame([2.0] * 6), thresholds))
    point = top_speedup(equal, "ref", ["base"])["base"]
    samples, minimum = bootstrap_top_speedup(equal, "ref", ["base"], tasks, weights)
    low, high = percentile_interval(samples["base"])
    assert point == pytest.approx(2.0)
    assert low == pytest.approx(2.0) and high == pytest.approx(2.0) and high - low == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(minimum, samples["base"])

    varied = per_task_evaluations(evaluations_to_top(_per_task_ratio_frame([1.5, 2.0, 2.5, 3.0, 2.0, 4.0]), thresholds))
    point = top_speedup(varied, "ref", ["base"])["base"]
    samples, _ = bootstrap_top_speedup(varied, "ref", ["base"], tasks, weights)
    low, high = percentile_interval(samples["base"])
    assert low < point < high and high - low > 0.1


def _curves_frame(rates, steps=40):
    """Per task a smooth regret curve; the reference is twice as fast there as the baseline."""
    t = np.arange(1, steps + 1)
    rows = []
    for i, rate in enumerate(rates):
        for seed in range(2):
            rows.append(_long_frame("base", f"t{i}", seed, np.exp(-t / rate)))
            rows.append(_long_frame("ref", f"t{i}", seed, np.exp(-2 * t / rate)))
    return pd.concat(rows)


def test_min_speedup_bootstrap_degenerate_for_identical_tasks_and_contains_point():
    curves = curve_matrix(_curves_frame([10.0] * 5), methods=["ref", "base"])
    weights = bootstrap_weights(5, 2000, 0)
    samples = bootstrap_min_speedup(curves, "ref", DEFAULT_BUDGETS, weights)
    assert set(samples) == {10, 25}  # T = 40
    means = {m: aggregate(curves.values[i])["mean"] for i, m in enumerate(curves.methods)}
    _, point = efficiency_table(means, "ref")
    for s in (10, 25):
        low, high = percentile_interval(samples[s])
        assert low == pytest.approx(point[s]) and high == pytest.approx(point[s])

    curves = curve_matrix(_curves_frame([6.0, 8.0, 10.0, 14.0, 20.0]), methods=["ref", "base"])
    samples = bootstrap_min_speedup(curves, "ref", DEFAULT_BUDGETS, weights)
    means = {m: aggregate(curves.values[i])["mean"] for i, m in enumerate(curves.methods)}
    _, point = efficiency_table(means, "ref")
    for s in (10, 25):
        low, high = percentile_interval(samples[s])
        assert low <= point[s] <= high


def test_min_speedup_bootstrap_marks_unreached_as_below_bound():
    t = np.arange(1, 21)
    frame = pd.concat([_long_frame("ref", "t0", 0, 0.5 + 0 * t), _long_frame("base", "t0", 0, np.exp(-t))])
    curves = curve_matrix(frame, methods=["ref", "base"])
    samples = bootstrap_min_speedup(curves, "ref", DEFAULT_BUDGETS, bootstrap_weights(1, 50, 0))
    assert np.all(samples[10] == -np.inf)
    assert percentile_interval(samples[10]) == (-np.inf, -np.inf)
