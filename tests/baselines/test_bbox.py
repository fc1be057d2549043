"""Bounding-box search-space pruning: the box, proposals inside it, transfer gains."""

import numpy as np
import pytest

from metabo.baselines import get_method
from metabo.baselines.bbox import Box, best_configurations, bounding_box, in_box_free
from metabo.bench.synthetic import synthetic_log
from metabo.data import read_log


def bump_family(seed, num_tasks=5, num_points=40, dim=2, matched=True, height=2.0, width=0.15):
    """Tasks = one shared bump at a random center + independent GP draws (signal 0.25)."""
    log = synthetic_log(seed, num_tasks, num_points, dim, matched=matched, mean=0.0, signal=0.25)
    center = np.random.default_rng(seed + 1000).uniform(0.2, 0.8, dim)
    frame = log.frame.copy()
    x = frame[list(log.space.names)].to_numpy()
    frame["objective"] += height * np.exp(-np.sum((x - center) ** 2, axis=1) / (2 * width**2))
    return read_log(frame, log.space)


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


def test_bounding_box_closed_form():
    points = np.array([[0.2, 0.5], [0.4, 0.1], [0.3, 0.3]])
    box = bounding_box(points)
    np.testing.assert_allclose(box.lower, [0.2, 0.1])
    np.testing.assert_allclose(box.upper, [0.4, 0.5])
    wide = bounding_box(points, margin=0.5)
    np.testing.assert_allclose(wide.lower, [0.1, 0.0])  # 0.1 - 0.2 clipped to the cube
    np.testing.assert_allclose(wide.upper, [0.5, 0.7])
    assert box.contains(points).all()
    assert not box.contains(np.array([[0.41, 0.3], [0.3, 0.05]])).any()
    with pytest.raises(ValueError, match="margin"):
        bounding_box(points, margin=-1)


def test_best_configurations_top_k():
    log = synthetic_log(0, num_tasks=5, num_points=40, dim=2)
    for k in (1, 3):
        best = best_configurations(log, top_k=k)
        assert best.shape == (5 * k, 2)
    for task, row in zip(log.tasks, best_configurations(log), strict=True):
        x, y = log.task_arrays(task)
        np.testing.assert_allclose(row, x[np.argmax(y)])


def test_box_contains_best_points_and_is_smaller_than_space():
    log = bump_family(1)
    train = log.without("task0")
    method = get_method("bbox")(log.space, train, seed=0)
    method.setup()
    for task in train.tasks:
        x, y = train.task_arrays(task)
        assert method.box.contains(x[np.argmax(y)][None, :])[0]
    assert np.prod(method.box.width) < 0.25
    samples = np.stack([method.propose_box(None, None, s) for s in range(200)])
    assert method.box.contains(samples).all()
    # Uniform in the box: each coordinate's mean is near the box center (4 sigma of 200 draws).
    center = (method.box.lower + method.box.upper) / 2
    assert np.all(np.abs(samples.mean(axis=0) - center) <= 4 * method.box.width / np.sqrt(12 * 200) + 1e-12)


def test_finite_proposals_stay_in_box_then_fall_back():
    box = Box(np.array([0.0, 0.0]), np.array([0.5, 0.5]))
    candidates = np.array([[0.1, 0.1], [0.4, 0.2], [0.9, 0.9], [0.7, 0.1]])
    observed = np.array([False, False, False, False])
    np.testing.assert_array_equal(in_box_free(box, candidates, observed), [True, True, False, False])
    observed[:2] = True  # the box is exhausted: the rest of the set is allowed
    np.testing.assert_array_equal(in_box_free(box, candidates, observed), [False, False, True, True])

    log = bump_family(2)
    train = log.without("task0")
    x, y = log.task_arrays("task0")
    method = get_method("bbox")(log.space, train, seed=0)
    method.setup()
    inside = int(method.box.contains(x).sum())
    assert 0 < inside < len(y)
    picks, _ = replay(method, x, y, steps=len(y))
    assert method.box.contains(x[picks[:inside]]).all()
    assert sorted(picks) == list(range(len(y)))


def test_picks_depend_on_the_seed():
    # Same seed, same picks: the contract test (test_contract.py). Here: the seed is used.
    log = bump_family(3)
    train = log.without("task0")
    x, y = log.task_arrays("task0")
    runs = [replay(get_method("bbox")(log.space, train, seed=s), x, y, steps=10)[0] for s in (7, 8)]
    assert not np.array_equal(runs[0], runs[1])


def test_beats_random_search_on_related_tasks():
    regrets = {"bbox": [], "random": []}
    for seed in range(4):
        log = bump_family(20 + seed, matched=seed % 2 == 0)
        train = log.without("task0")
        x, y = log.task_arrays("task0")
        for name in regrets:
            for run in range(3):
                method = get_method(name)(log.space, train, seed=run)
                method.setup()
                regrets[name].append(replay(method, x, y, steps=5)[1][-1])
    assert np.mean(regrets["bbox"]) < 0.6 * np.mean(regrets["random"])


def test_needs_training_tasks():
    log = synthetic_log(0, num_tasks=5, num_points=40, dim=2)
    with pytest.raises(ValueError, match="training tasks"):
        get_method("bbox")(log.space, None).setup()


MY_METHODS = ["zeroshot", "bbox", "bbox-stbo", "stbo", "stboh", "hyperbo", "hyperbo-ekl", "hyperbo-empirical"]


def test_methods_are_registered():
    from metabo.baselines import available_methods

    assert set(MY_METHODS) <= set(available_methods())
    assert not get_method("stbo").uses_training_tasks and not get_method("stboh").uses_training_tasks
    assert all(get_method(m).uses_training_tasks for m in MY_METHODS if not m.startswith("stbo"))


@pytest.mark.parametrize("name", MY_METHODS)
def test_benchmark_runner_runs_each_method(name):
    # The runner hands out read-only candidates and checks every proposal.
    from metabo.bench.runner import run_unit

    log = synthetic_log(0, num_tasks=5, num_points=40, dim=2)
    pool_x, pool_y = log.task_arrays("task0")
    frame = run_unit(
        get_method(name), log.space, log.without("task0"), pool_x, pool_y, method=name, task="task0", seed=0,
        unit_seed=11, budget=6, options={"pretrain_steps": 50, "fit_steps": 50, "fit_restarts": 2},
    )
    assert len(frame) == 6 and frame["index"].nunique() == 6
    assert np.all(np.diff(frame["normalized_regret"].to_numpy()) <= 1e-12)
