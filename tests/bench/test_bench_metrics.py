"""Metrics on hand-made curves: regret, aggregation, ranks and the efficiency ratio."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from metabo.bench.metrics import (
    aggregate,
    average_rank,
    curve_matrix,
    efficiency_table,
    first_step_reaching,
    regret_trace,
    speedup,
)


def test_regret_trace_closed_form():
    trace = regret_trace(np.array([1.0, 3.0, 2.0, 5.0]), pool_best=5.0, pool_worst=0.0)
    np.testing.assert_array_equal(trace.best_so_far, [1, 3, 3, 5])
    np.testing.assert_array_equal(trace.simple_regret, [4, 2, 2, 0])
    np.testing.assert_allclose(trace.normalized_regret, [0.8, 0.4, 0.4, 0.0])


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
    assert result[50] == pytest.approx(2.0)
    assert result[100] == pytest.approx(2.0)
    # Steps are whole evaluations: reaching g(25) takes ceil(25 / 2) = 13 steps.
    assert result[25] == pytest.approx(25 / 13)


def test_min_over_baselines_and_budgets_above_t_left_out():
    steps = np.arange(1, 61)
    curves = {"ref": g(4 * steps), "slow": g(steps), "less_slow": g(2 * steps)}
    table, minimum = efficiency_table(curves, "ref")
    assert set(table) == {"slow", "less_slow"}
    assert set(minimum) == {25, 50}  # T = 60 < 100
    assert table["slow"][50] == pytest.approx(50 / 13)  # 4x faster, in whole steps: ceil(50 / 4)
    assert table["less_slow"][50] == pytest.approx(2.0)
    assert minimum[50] == pytest.approx(2.0)
    assert minimum[25] == pytest.approx(min(25 / 7, 25 / 13))


def test_unreached_regret_gives_none_and_none_minimum():
    steps = np.arange(1, 101)
    curves = {"ref": g(steps) + 0.5, "good": g(steps), "bad": np.full(100, 2.0)}
    table, minimum = efficiency_table(curves, "ref")
    assert table["good"] == {25: None, 50: None, 100: None}  # ref never gets as low as "good"
    assert table["bad"][100] == pytest.approx(100.0)  # ref is below 2 from step 1
    assert minimum == {25: None, 50: None, 100: None}
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
