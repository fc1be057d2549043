"""Zero-shot portfolio: greedy order against brute force, known shared optima, transfer gains."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metabo.baselines import get_method
from metabo.baselines.common import match_rows
from metabo.baselines.zeroshot import greedy_portfolio, normalized_regret
from metabo.bench.synthetic import synthetic_log
from metabo.data import read_log
from metabo.space import halton


def bump_family(seed, num_tasks=5, num_points=40, dim=2, matched=True, center=None, height=2.0, width=0.15):
    """Tasks = one shared bump at ``center`` + independent GP draws (signal 0.25): related tasks."""
    log = synthetic_log(seed, num_tasks, num_points, dim, matched=matched, mean=0.0, signal=0.25)
    if center is None:
        center = np.random.default_rng(seed + 1000).uniform(0.2, 0.8, dim)
    frame = log.frame.copy()
    x = frame[list(log.space.names)].to_numpy()
    frame["objective"] += height * np.exp(-np.sum((x - center) ** 2, axis=1) / (2 * width**2))
    return read_log(frame, log.space), center


def replay(method, x, y, steps):
    """Run ``method`` on the pool (x [m, d], y [m]); return picks and normalized regret per step."""
    observed = np.zeros(len(y), dtype=bool)
    picks = []
    for step in range(steps):
        index = method.propose_finite(x[picks], y[picks], x, observed.copy(), step)
        assert 0 <= index < len(y) and not observed[index], "re-proposed an observed candidate"
        observed[index] = True
        picks.append(index)
    best = np.maximum.accumulate(y[picks])
    return np.asarray(picks), (y.max() - best) / (y.max() - y.min())


def test_normalized_regret_closed_form():
    values = np.array([[1.0, 3.0, 2.0], [5.0, 5.0, 5.0]])
    np.testing.assert_allclose(normalized_regret(values), [[1.0, 0.0, 0.5], [0.0, 0.0, 0.0]])


def test_greedy_prefers_complementary_over_average():
    # Candidate 2 is second best on average, but candidate 1 solves the task candidate 0 misses.
    regret = np.array([[0.0, 1.0, 0.4], [0.0, 1.0, 0.4], [1.0, 0.0, 0.4]])
    np.testing.assert_array_equal(greedy_portfolio(regret), [0, 1, 2])
    # Tie on the portfolio criterion: the candidate with the better own average comes first.
    regret = np.array([[0.0, 1.0, 0.4], [1.0, 0.0, 0.4]])
    np.testing.assert_array_equal(greedy_portfolio(regret), [2, 0, 1])


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.integers(0, 10_000), st.integers(0, 6))
def test_greedy_matches_brute_force(tasks, m, seed, size):
    regret = normalized_regret(np.random.default_rng(seed).random((tasks, m)))
    order = greedy_portfolio(regret, size)
    assert sorted(order.tolist()) == list(range(m))
    current = np.ones(tasks)
    for k, pick in enumerate(order[: min(size, m)]):
        # Independent check: no remaining candidate gives a smaller summed portfolio regret.
        remaining = [c for c in range(m) if c not in order[:k]]
        best = min(np.minimum(current, regret[:, c]).sum() for c in remaining)
        assert np.minimum(current, regret[:, pick]).sum() == pytest.approx(best, abs=1e-12)
        current = np.minimum(current, regret[:, pick])
    rest = order[min(size, m) :]
    assert np.all(np.diff(regret.sum(axis=0)[rest]) >= -1e-12)


def test_matched_first_pick_is_shared_optimum():
    points = halton(40, 2)
    log, _ = bump_family(0, center=points[17], height=5.0, width=0.1)
    train = log.without("task0")
    method = get_method("zeroshot")(log.space, train, seed=0)
    method.setup()
    picks, _ = replay(method, points, log.task_arrays("task0")[1], steps=1)
    assert picks[0] == 17


def test_unmatched_first_pick_is_shared_optimum_through_surrogates():
    # Training tasks saw other points than the target's candidates: GP means score them.
    candidates = halton(40, 2)
    log, _ = bump_family(1, matched=False, center=candidates[11], height=5.0, width=0.15)
    train = log.without("task0")
    assert (match_rows(candidates, train.task_arrays("task1")[0]) < 0).all()
    method = get_method("zeroshot")(log.space, train, seed=0)
    method.setup()
    values = method.task_values(candidates)
    assert values.shape == (4, 40)
    np.testing.assert_array_equal(np.argmax(values, axis=1), [11] * 4)
    observed = np.zeros(40, dtype=bool)
    assert method.propose_finite(np.zeros((0, 2)), np.zeros(0), candidates, observed, 0) == 11


def test_known_failure_counts_as_worst():
    log, _ = bump_family(2)
    frame = log.frame.copy()
    names = list(log.space.names)
    # task1's best configuration diverged on task1 and on task2 (matched: the same point).
    rows1 = frame.index[frame["task"] == "task1"]
    top = frame.loc[rows1[np.argmax(frame.loc[rows1, "objective"].to_numpy())], names].to_numpy(dtype=float)
    same = np.all(frame[names].to_numpy() == top, axis=1) & frame["task"].isin(["task1", "task2"]).to_numpy()
    assert same.sum() == 2
    frame.loc[same, "status"] = "diverged"
    train = read_log(frame, log.space).without("task0")
    method = get_method("zeroshot")(log.space, train, seed=0)
    method.setup()
    values = method.task_values(train.space.to_unit(top[None, :]))
    for t, task in enumerate(("task1", "task2")):
        assert values[t, 0] == pytest.approx(train.task_arrays(task)[1].min())


def test_matched_values_are_the_observations():
    log, _ = bump_family(3)
    train = log.without("task0")
    method = get_method("zeroshot")(log.space, train, seed=0)
    method.setup()
    x, _ = log.task_arrays("task0")
    values = method.task_values(x)
    for t, task in enumerate(train.tasks):
        np.testing.assert_allclose(values[t], train.task_arrays(task)[1])


def test_box_mode_walks_the_training_configurations():
    # Matched training tasks: the box-mode set is their 40 shared points, and the walk is the
    # greedy portfolio (checked against brute force above) of the observed scores, built here
    # from the log rather than from the method's own ``order``.
    log, _ = bump_family(5)
    train = log.without("task0")
    method = get_method("zeroshot")(log.space, train, seed=0)
    method.setup()
    points = train.task_arrays(train.tasks[0])[0]
    hits = [match_rows(points, train.task_arrays(t)[0]) for t in train.tasks]
    assert all((h >= 0).all() for h in hits)  # every task scored every shared point
    scores = np.stack([train.task_arrays(t)[1][h] for t, h in zip(train.tasks, hits, strict=True)])
    expected = points[greedy_portfolio(normalized_regret(scores))[:5]]
    proposals = []
    for step in range(5):
        x_obs = np.asarray(proposals).reshape(-1, 2)
        proposals.append(method.propose_box(x_obs, np.zeros(len(x_obs)), step))
    np.testing.assert_allclose(np.asarray(proposals), expected, rtol=0, atol=1e-12)


def test_beats_random_search_on_related_tasks():
    regrets = {"zeroshot": [], "random": []}
    for seed, matched in itertools.product(range(3), (True, False)):
        log, _ = bump_family(10 + seed, matched=matched)
        train = log.without("task0")
        x, y = log.task_arrays("task0")
        for name in regrets:
            method = get_method(name)(log.space, train, seed=seed, surrogate_steps=50, surrogate_restarts=1)
            method.setup()
            regrets[name].append(replay(method, x, y, steps=5)[1][-1])
    assert np.mean(regrets["zeroshot"]) < 0.5 * np.mean(regrets["random"])


def test_needs_training_tasks():
    log, _ = bump_family(0)
    method = get_method("zeroshot")(log.space, None)
    with pytest.raises(ValueError, match="training tasks"):
        method.setup()
