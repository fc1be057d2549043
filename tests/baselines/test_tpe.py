"""TPE through Optuna's ask/tell: bookkeeping of the study, mapping to candidates, performance."""

import numpy as np
import optuna
import pytest
from synthetic_helpers import expected_random_regret, family, leave_one_out, replay

from metabo.baselines.tpe import TPE, nearest_unobserved
from metabo.bench.synthetic import unit_space

SPACE = unit_space(2)


def test_nearest_unobserved_skips_observed_candidates():
    candidates = np.array([[0.0, 0.0], [0.5, 0.5], [0.52, 0.5], [1.0, 1.0]])
    observed = np.array([False, True, False, False])
    assert nearest_unobserved(np.array([0.49, 0.5]), candidates, observed) == 2
    assert nearest_unobserved(np.array([0.9, 0.9]), candidates, observed) == 3
    with pytest.raises(ValueError, match="observed"):
        nearest_unobserved(np.zeros(2), candidates, np.ones(4, dtype=bool))


def test_finite_history_is_reported_as_the_evaluated_points():
    log = family(0, num_tasks=1, num_points=60)
    x, y = log.task_arrays("task0")
    method = TPE(SPACE, None, seed=0, n_startup_trials=3)
    picks, _ = replay(method, x, y, 12)
    method._sync(x[picks], y[picks])  # report the last evaluation too
    trials = method._study.trials
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    # Every evaluated candidate is a completed trial with its own coordinates and score; every
    # asked point (mapped to a candidate) is closed as failed.
    assert len(complete) == 12 and len(failed) == 12
    got = np.array([[t.params["u0"], t.params["u1"], t.value] for t in complete])
    np.testing.assert_allclose(got, np.column_stack([x[picks], y[picks]]))


def test_box_tells_the_asked_trials_and_a_foreign_history_is_added():
    method = TPE(SPACE, None, seed=1, n_startup_trials=2)
    start = np.array([[0.1, 0.2], [0.8, 0.3]])  # an initial design TPE did not propose
    xs, ys = list(start), [-np.sum((p - 0.3) ** 2) for p in start]
    for step in range(2, 10):
        point = method.propose_box(np.asarray(xs), np.asarray(ys), step)
        assert point.shape == (2,) and np.all((point >= 0) & (point <= 1))
        xs.append(point)
        ys.append(-np.sum((point - 0.3) ** 2) if step != 5 else np.nan)  # one failed evaluation
    method._sync(np.asarray(xs), np.asarray(ys))
    states = [t.state for t in method._study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 9
    assert states.count(optuna.trial.TrialState.FAIL) == 1
    assert len(states) == 10  # asked trials were told, not duplicated


def test_seed_is_used_and_restarts_on_a_foreign_history():
    # Same seed, same picks: the contract test (test_contract.py). Here: the seed is used.
    log = family(1, num_tasks=1, num_points=50)
    x, y = log.task_arrays("task0")
    picks_a, _ = replay(TPE(SPACE, None, seed=4, n_startup_trials=3), x, y, 10)
    picks_c, _ = replay(TPE(SPACE, None, seed=5, n_startup_trials=3), x, y, 10)
    assert not np.array_equal(picks_a, picks_c)
    method = TPE(SPACE, None, seed=4)
    method.propose_finite(x[:3], y[:3], x, np.isin(np.arange(50), [0, 1, 2]), 3)
    # A history that is not an extension of the one seen rebuilds the study from it.
    method.propose_finite(x[5:7], y[5:7], x, np.isin(np.arange(50), [5, 6]), 2)
    assert len(method._told) == 2


def test_beats_random_search_after_its_startup():
    log = family(2, num_tasks=6, num_points=80)
    ours, random = [], []
    for task in log.tasks:
        _, x, y = leave_one_out(log, task)
        for seed in range(3):
            _, regret = replay(TPE(SPACE, None, seed=seed, n_startup_trials=5), x, y, 25)
            ours.append(regret)
            random.append(expected_random_regret(y, 25))
    ours, random = np.asarray(ours), np.asarray(random)
    assert ours[:, -1].mean() < 0.7 * random[:, -1].mean()
    assert ours[:, 10:].mean() < random[:, 10:].mean()


def test_rejects_bad_options():
    with pytest.raises(ValueError, match="unknown option"):
        TPE(SPACE, None, n_startup=3)
    with pytest.raises(ValueError, match="gamma_fraction"):
        TPE(SPACE, None, gamma_fraction=1.5)


@pytest.mark.slow
def test_beats_random_search_with_default_startup():
    log = family(3, num_tasks=8, num_points=100)
    ours, random = [], []
    for task in log.tasks:
        _, x, y = leave_one_out(log, task)
        for seed in range(3):
            _, regret = replay(TPE(SPACE, None, seed=seed), x, y, 40)
            ours.append(regret)
            random.append(expected_random_regret(y, 40))
    assert np.mean(ours, axis=0)[-1] < np.mean(random, axis=0)[-1]
