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
