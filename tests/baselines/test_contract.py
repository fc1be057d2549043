"""The contract of every registered comparison method (``metabo.baselines.base.Method``), checked
once for all of them: finite proposals are valid indices of unobserved candidates (the mask is
read-only), never repeated, so a pool is used up exactly once; the same seed gives the same
proposals; box proposals are unit-cube points of the right shape, not an observed point.

Method-specific behaviour (closed forms, transfer, options) stays in the per-method files."""

import numpy as np
import pytest
from synthetic_helpers import replay

from metabo.baselines import available_methods, get_method
from metabo.bench.synthetic import synthetic_log

# Small settings per method keep the run short; the shipped defaults are larger.
FAST = {
    "ablr": {"iterations": 300},
    "bbox-stbo": {"fit_steps": 50, "fit_restarts": 2},
    "fsbo": {"meta_steps": 200, "finetune_steps": 20},
    "hyperbo": {"pretrain_steps": 100},
    "hyperbo-ekl": {"pretrain_steps": 100},
    "mtgp": {"fit_steps": 100, "target_steps": 20},
    "rgpe": {"fit_steps": 100, "num_samples": 300},
    "stbo": {"fit_steps": 50, "fit_restarts": 2},
    "stboh": {"fit_steps": 50, "fit_restarts": 2},
    "tpe": {"n_startup_trials": 3},
}
METHODS = available_methods()
POOL = 6  # candidates of the target task: every method uses the whole pool up
# Meta-training or fitting dominates these (10-40 s a case on two busy cores): run with -m slow.
SLOW = {"ablr", "fsbo", "mtgp", "rgpe", "hyperbo", "hyperbo-ekl", "bbox-stbo"}


def _params(names):
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in names]


@pytest.fixture(scope="module")
def log():
    # Matched tasks, so that the regret-bounded empirical variant applies too.
    return synthetic_log(0, num_tasks=4, num_points=POOL, dim=2, matched=True)


def build(name, log, seed):
    cls = get_method(name)
    train = log.without("task0") if cls.uses_training_tasks else None
    method = cls(log.space, train, seed=seed, **FAST.get(name, {}))
    method.setup()
    return method


def test_every_listed_module_registers_a_method():
    assert {"random", "hyperbo", "stbo", "tpe", "zeroshot"} <= set(METHODS)
    assert set(FAST) <= set(METHODS)  # no settings for a method that no longer exists


@pytest.mark.parametrize("name", _params(METHODS))
def test_finite_proposals_use_the_pool_once_and_repeat_per_seed(log, name):
    x, y = log.task_arrays("task0")
    # replay checks each index: an integer, inside the pool, not observed (the mask is read-only).
    picks = replay(build(name, log, seed=3), x, y, steps=POOL)[0]
    assert sorted(picks) == list(range(POOL))  # every candidate exactly once
    again = replay(build(name, log, seed=3), x, y, steps=3)[0]
    np.testing.assert_array_equal(again, picks[:3])


@pytest.mark.parametrize("name", _params([n for n in METHODS if get_method(n).supports_box]))
def test_box_proposals_are_new_unit_cube_points_and_repeat_per_seed(log, name):
    x, y = log.task_arrays("task0")
    points = []
    for _ in range(2):
        method = build(name, log, seed=5)
        first = method.propose_box(np.zeros((0, 2)), np.zeros(0), 0)
        later = method.propose_box(x[:3], y[:3], 3)
        for p in (first, later):
            assert p.shape == (2,) and np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))
        assert np.min(np.max(np.abs(x[:3] - later), axis=1)) > 1e-9  # not an observed point
        points.append(np.concatenate([first, later]))
    np.testing.assert_allclose(points[0], points[1], rtol=0, atol=1e-12)
