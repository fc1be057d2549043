"""Single-task GP BO (stbo, stboh) and the bounding-box variant (bbox-stbo)."""

import jax
import numpy as np
import pytest
from synthetic_helpers import expected_random_regret, replay

from metabo.baselines import get_method
from metabo.baselines.stbo import handset_params, refine_single_task
from metabo.bench.synthetic import synthetic_log, true_gp
from metabo.bo.single_task import DEFAULT_MODEL, fit_single_task
from metabo.gp import negative_log_likelihood


@pytest.fixture(scope="module")
def gp_tasks():
    """Five tasks drawn from one GP (lengthscale 0.25) on 40 shared points in 2-D."""
    return synthetic_log(0, num_tasks=5, num_points=40, dim=2)


def nll(params, x, y):
    return float(negative_log_likelihood(DEFAULT_MODEL, params, x, y))


def refine_repeatedly(x, y, params, rounds):
    """``rounds`` x 30 refinement steps (one compiled program, whatever the number of rounds)."""
    for _ in range(rounds):
        params = refine_single_task(x, y, params, steps=30)
    return params


def test_refine_improves_likelihood_and_keeps_units():
    log = synthetic_log(1, num_tasks=1, num_points=40, dim=2)
    x, y = log.task_arrays("task0")
    y = 3.0 + 5.0 * y  # units far from standardized: the refit must undo and redo the scaling
    start = handset_params(y, dim=2, lengthscale=1.5, noise=0.3)
    refined = refine_single_task(x, y, start, steps=30)
    assert nll(refined, x, y) < nll(start, x, y) - 1.0
    # Never worse than its start, even with one step.
    assert nll(refine_single_task(x, y, start, steps=1), x, y) <= nll(start, x, y) + 1e-9
    # Warm-started from the maximum-likelihood fit, refinement stays near it.
    fitted = fit_single_task(x, y, jax.random.key(0), steps=50, restarts=2)
    again = refine_single_task(x, y, fitted, steps=30)
    assert nll(again, x, y) <= nll(fitted, x, y) + 1e-9
    h0, h1 = DEFAULT_MODEL.hyper(fitted), DEFAULT_MODEL.hyper(again)
    np.testing.assert_allclose(np.log(h1.lengthscale), np.log(h0.lengthscale), atol=0.5)


def test_refine_recovers_true_lengthscale():
    # 60 points of one task from a GP with lengthscale 0.25: refinement from a poor start
    # (lengthscale 2) moves the lengthscales to the truth's neighbourhood.
    log = synthetic_log(2, num_tasks=1, num_points=60, dim=2, lengthscale=0.25, mean=0.0)
    x, y = log.task_arrays("task0")
    start = handset_params(y, dim=2, lengthscale=2.0, noise=0.1)
    refined = refine_repeatedly(x, y, start, rounds=6)
    lengthscale = np.asarray(DEFAULT_MODEL.hyper(refined).lengthscale)
    assert np.all((lengthscale > 0.1) & (lengthscale < 0.6)), lengthscale
    model, truth = true_gp(2, mean=0.0)
    # Within a few nats of the true parameters' likelihood (60 points: the ML fit is close).
    assert nll(refined, x, y) <= float(negative_log_likelihood(model, truth, x, y)) + 5.0
    assert nll(refined, x, y) < nll(start, x, y) - 10.0


def test_handset_prior_is_fixed_in_standardized_units():
    y = np.array([1.0, 3.0, 5.0])
    params = handset_params(y, dim=3, lengthscale=0.3, noise=0.01)
    h = DEFAULT_MODEL.hyper(params)
    scale = np.std(y)
    np.testing.assert_allclose(np.asarray(h.lengthscale), 0.3, rtol=1e-9)
    np.testing.assert_allclose(float(h.signal), scale**2, rtol=1e-9)
    np.testing.assert_allclose(float(h.noise), 0.01 * scale**2, rtol=1e-6)
    np.testing.assert_allclose(float(params.mean_constant), 3.0, rtol=1e-12)


@pytest.mark.parametrize("name", ["stbo", "stboh", "bbox-stbo"])
def test_initial_design_depends_on_the_seed(gp_tasks, name):
    # Same seed, same picks: the contract test (test_contract.py). Here: the seed is used.
    train = gp_tasks.without("task0")
    x, y = gp_tasks.task_arrays("task0")
    runs = []
    for seed in (4, 5):
        method = get_method(name)(gp_tasks.space, train, seed=seed, fit_steps=50, fit_restarts=2)
        method.setup()
        runs.append(replay(method, x, y, steps=3)[0])  # the 3 random initial points
    assert not np.array_equal(runs[0], runs[1])


def test_initial_design_then_model():
    log = synthetic_log(3, num_tasks=2, num_points=40, dim=2)
    x, y = log.task_arrays("task0")
    method = get_method("stboh")(log.space, None, seed=0, initial_points=2)
    picks, _ = replay(method, x, y, steps=4)
    # After the design, EI under the fixed prior: a deterministic function of the history.
    again = get_method("stboh")(log.space, None, seed=123, initial_points=2)
    observed = np.zeros(len(y), dtype=bool)
    observed[picks[:2]] = True
    assert again.propose_finite(x[picks[:2]], y[picks[:2]], x, observed, 2) == picks[2]


def test_failed_observations_are_skipped_not_fatal(gp_tasks):
    x, y = gp_tasks.task_arrays("task1")
    method = get_method("stbo")(gp_tasks.space, None, seed=0, fit_steps=50, fit_restarts=2)
    observed = np.zeros(len(y), dtype=bool)
    observed[:5] = True
    y_obs = y[:5].copy()
    y_obs[1] = np.nan
    index = method.propose_finite(x[:5], y_obs, x, observed, 5)
    assert not observed[index]


def test_bbox_stbo_box_mode_stays_in_the_box(gp_tasks):
    train = gp_tasks.without("task0")
    method = get_method("bbox-stbo")(gp_tasks.space, train, seed=0, fit_steps=50, fit_restarts=2)
    method.setup()
    f = lambda p: -np.sum((p - 0.5) ** 2, axis=-1)  # noqa: E731
    xs = []
    for step in range(5):
        x_obs = np.asarray(xs).reshape(-1, 2)
        xs.append(method.propose_box(x_obs, f(x_obs), step))
    assert method.box.contains(np.asarray(xs)).all()


def test_gp_bo_beats_random_search():
    # Tasks drawn from one GP: a GP model (fitted or hand-set) finds good points faster than
    # random search; random search's expected regret is exact (no Monte Carlo noise).
    log = synthetic_log(5, num_tasks=4, num_points=40, dim=2)
    for name in ("stbo", "stboh"):
        ours, random = [], []
        for task in log.tasks:
            x, y = log.task_arrays(task)
            method = get_method(name)(log.space, None, seed=0, fit_steps=50, fit_restarts=2)
            ours.append(replay(method, x, y, steps=12)[1])
            random.append(expected_random_regret(y, 12))
        ours, random = np.mean(ours, axis=0), np.mean(random, axis=0)
        assert ours[-1] < 0.6 * random[-1], (name, ours, random)
        assert ours[4:].sum() < random[4:].sum(), (name, ours, random)
