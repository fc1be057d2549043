"""Saturation checks of a benchmark data set: closed form against enumeration and simulation,
and the zero-shot check on logs whose answer is known."""

import itertools

import numpy as np
import pytest

from metabo.bench.saturation import expected_min_without_replacement, random_search_regret, saturation
from metabo.bench.synthetic import synthetic_log
from metabo.data import read_log


@pytest.mark.parametrize("draws", [1, 2, 3, 7])
def test_expected_minimum_matches_enumeration_of_all_subsets(draws):
    values = np.array([0.3, 0.0, 0.9, 0.3, 1.0, 0.55, 0.2])  # with a tie
    subsets = list(itertools.combinations(values, draws))
    brute = np.mean([min(s) for s in subsets])
    assert expected_min_without_replacement(values, draws) == pytest.approx(brute, rel=1e-12)


def test_random_search_regret_matches_simulation():
    rng = np.random.default_rng(0)
    pool = rng.gamma(2.0, size=300)
    span = pool.max() - pool.min()
    draws = [(pool.max() - pool[rng.choice(300, 25, replace=False)].max()) / span for _ in range(20000)]
    # 20,000 runs: the standard error of the mean is ~1% of it here; 4 standard errors allowed.
    stderr = np.std(draws) / np.sqrt(len(draws))
    assert abs(random_search_regret(pool, 25) - np.mean(draws)) < 4 * stderr
    assert random_search_regret(np.full(5, 2.0), 3) == 0.0
    assert random_search_regret(pool, 300) == pytest.approx(0.0, abs=1e-15)  # the whole pool


def test_zero_shot_solves_related_tasks_and_not_an_opposite_one():
    base = synthetic_log(0, 4, 30, 2, matched=True, mean=0.0, signal=1.0)
    frame = base.frame.copy()
    first = frame["task"] == base.tasks[0]
    shared = frame.loc[first, "objective"].to_numpy()
    for i, task in enumerate(base.tasks):
        rows = frame["task"] == task
        # Tasks 0-2 share one objective (up to scale); task 3 is its negative.
        frame.loc[rows, "objective"] = -shared if i == 3 else shared * (1.0 + i)
    log = read_log(frame, base.space)
    result = saturation(log, random_budget=5, zero_shot_budget=3)
    by_task = {t["task"]: t for t in result["tasks"]}
    for task in base.tasks[:3]:
        assert by_task[task]["zero_shot_first_hit"] == 1  # the others' best is its best
    assert by_task[base.tasks[3]]["zero_shot_first_hit"] is None  # the others' best is its worst
    assert result["zero_shot_solved_share"] == pytest.approx(0.75)
    _, y = log.task_arrays(base.tasks[0])
    assert by_task[base.tasks[0]]["random_search_regret"] == pytest.approx(random_search_regret(y, 5))
