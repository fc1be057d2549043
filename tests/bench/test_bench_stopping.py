"""The cost-aware replay: what each trial costs, what the search is told, the regret by cost."""

import numpy as np

from metabo.bench.stopping import cost_to_reach, regret_at, replay
from metabo.stopping.rules import StoppingRule

# Three recorded curves of 10 evaluations (scores, maximized): checkpoints after 1, 2 (rounded
# from 2.5) and 5 evaluations.
POOL_SCORES = np.array(
    [
        np.linspace(0.1, 1.0, 10),  # good, rising
        np.full(10, 0.05),  # bad from the start
        np.linspace(0.0, 0.5, 10),  # middling
    ]
)
POOL_UNIT = np.array([[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]])


def in_order(x, y, observed):
    return int(np.flatnonzero(~observed)[0])


def test_without_stopping_each_trial_costs_one_run_and_reveals_its_final():
    told = []

    def propose(x, y, observed):
        told.append(y.copy())
        return in_order(x, y, observed)

    trace = replay(propose, POOL_UNIT, POOL_SCORES, StoppingRule("none"), budget=10)
    np.testing.assert_allclose(trace.cost, [1, 2, 3])
    np.testing.assert_allclose(trace.best_final, [1.0, 1.0, 1.0])
    assert not trace.stopped.any()
    np.testing.assert_allclose(told[-1], [1.0, 0.05])  # the search was told the finals


def test_stopped_trials_cost_the_evaluations_they_trained():
    told = []

    def propose(x, y, observed):
        told.append(y.copy())
        return in_order(x, y, observed)

    # The median rule after one trial: trial 1 (0.05 < 0.1 after 1 evaluation) stops at the
    # first checkpoint: cost 1/10, told its best so far; trial 2 (0.0 after 1 < median 0.075 of
    # trials 0 and 1) stops there too.
    trace = replay(propose, POOL_UNIT, POOL_SCORES, StoppingRule("median", startup=1), budget=10)
    np.testing.assert_allclose(trace.cost, [1.0, 1.1, 1.2])
    assert trace.stopped.tolist() == [False, True, True]
    np.testing.assert_allclose(told[-1], [1.0, 0.05])
    # The budget ends the search once spent: 1.05 runs admit the second trial, not the third.
    short = replay(in_order, POOL_UNIT, POOL_SCORES, StoppingRule("median", startup=1), budget=1.05)
    np.testing.assert_allclose(short.cost, [1.0, 1.1])


def test_regret_by_cost_counts_only_complete_runs():
    trace = replay(in_order, POOL_UNIT[[2, 0]], POOL_SCORES[[2, 0]], StoppingRule("none"), budget=5)
    finals = POOL_SCORES.max(axis=1)  # pool best 1.0, worst 0.05
    grid = np.array([0.5, 1.0, 1.5, 2.0])
    regret = regret_at(trace, finals, grid)
    np.testing.assert_allclose(regret, [1.0, (1.0 - 0.5) / 0.95, (1.0 - 0.5) / 0.95, 0.0])
    assert cost_to_reach(regret, grid, 0.0) == 2.0
    assert cost_to_reach(regret, grid, -1.0) == float("inf")


def test_cost_summary_reach_is_per_target_against_the_reference():
    import pandas as pd

    from metabo.bench.stopping import cost_markdown, cost_summary

    # Regret at costs 1..4. Reference (hyperbo, none) ends at 0.2 on target a and 0.0 on b; the
    # median rule reaches 0.2 on a at cost 2 and 0.0 on b at cost 4; ASHA never reaches b's 0.
    def row(target, rule, regret):
        return {"target": target, "method": "hyperbo", "rule": rule, "seed": 0, "trials": 4, "stopped": 0,
                **{f"r{c + 1}": v for c, v in enumerate(regret)}}

    rows = pd.DataFrame([
        row("a", "none", [1.0, 0.5, 0.3, 0.2]),
        row("b", "none", [1.0, 0.4, 0.1, 0.0]),
        row("a", "median", [0.6, 0.2, 0.2, 0.1]),
        row("b", "median", [0.5, 0.3, 0.1, 0.0]),
        row("a", "asha", [0.2, 0.2, 0.2, 0.2]),
        row("b", "asha", [0.5, 0.3, 0.1, 0.1]),
    ])
    summary = cost_summary(rows)
    np.testing.assert_allclose(summary.loc[("hyperbo", "none"), ["r1", "r4"]].to_numpy(float), [1.0, 0.1])
    assert summary.loc[("hyperbo", "none"), "reach_median"] == 4.0  # its own finals: at cost 4 on both
    assert summary.loc[("hyperbo", "median"), "reach_median"] == 3.0  # a at 2, b at 4
    assert summary.loc[("hyperbo", "median"), "reach_half"] == 0.5  # within cost 2: a only
    assert summary.loc[("hyperbo", "asha"), "reach_median"] == float("inf")  # a at 1, b never
    assert "not within the budget" in cost_markdown(rows)
