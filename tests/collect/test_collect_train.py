"""The training loop: PD1's schedule and optimizer, divergence, determinism."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metabo.collect.tasks import TaskSpec, load_dataset
from metabo.collect.train import (
    ChunkTrainer,
    batch_order,
    decay_steps,
    nesterov_sgd,
    polynomial_lr,
    train_plan,
)

# A tiny task: 142 wine examples, batches of 16 -> 9 steps per epoch; 2 epochs -> 20 steps.
TINY = TaskSpec("wine", "mlp_large", 16, 2)


def formula(t, init, power, d):
    """lr(t) = (init - end)(1 - min(t, D)/D)^power + end, end = 0.01 init (DESIGN.md section 2)."""
    end = 0.01 * init
    return (init - end) * (1 - min(t, d) / d) ** power + end


@pytest.mark.parametrize("init,power,factor", [(0.1, 1.0, 0.5), (3.0, 0.1, 0.99), (1e-4, 2.0, 0.01), (10.0, 0.5, 0.3)])
def test_schedule_matches_formula(init, power, factor):
    total = 40
    d = int(decay_steps(factor, total))
    assert d == max(int(factor * total), 1)
    steps = np.arange(total + 5)
    got = np.asarray(jax.jit(polynomial_lr)(steps, init, power, d))
    want = np.array([formula(int(t), init, power, d) for t in steps])
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert got.dtype == np.float32
    # Starts at init, ends (and stays) at 1% of init.
    np.testing.assert_allclose(got[0], init, rtol=1e-6)
    np.testing.assert_allclose(got[d:], 0.01 * init, rtol=1e-5)


def test_decay_steps_is_at_least_one():
    np.testing.assert_array_equal(decay_steps([0.01, 0.5, 0.99], 20), [1, 10, 19])
    np.testing.assert_array_equal(decay_steps([0.01], 50), [1])  # int(0.5) = 0 -> guarded to 1


def test_optimizer_applies_nesterov_momentum_and_schedule():
    """Updates for a constant gradient follow u_t = -lr(t) (g + mu m_t), m_t = g + mu m_{t-1}."""
    init, omm, power, d = 0.5, 0.1, 1.5, 6
    mu = 1 - omm
    opt = nesterov_sgd(init, omm, power, d)
    params = {"w": jnp.zeros(3, jnp.float32)}
    state = opt.init(params)
    grad = {"w": jnp.ones(3, jnp.float32)}
    m = 0.0
    for t in range(10):
        updates, state = opt.update(grad, state, params)
        m = 1.0 + mu * m
        want = -formula(t, init, power, d) * (1.0 + mu * m)
        np.testing.assert_allclose(np.asarray(updates["w"]), want, rtol=1e-5)


def test_train_plan_and_batch_order():
    plan = train_plan(142, 16, 2, 10)
    assert plan.steps_per_epoch == 9 and plan.total_steps == 20 and plan.steps_per_eval == 2
    np.testing.assert_array_equal(plan.eval_steps, np.arange(2, 21, 2))
    order = batch_order(142, 16, 20, [0, 1])
    assert order.shape == (20, 16) and order.dtype == np.int32
    # Each epoch is a permutation: the first 142 indices are all distinct.
    assert len(set(order.ravel()[:142].tolist())) == 142
    np.testing.assert_array_equal(order, batch_order(142, 16, 20, [0, 1]))
    assert not np.array_equal(order, batch_order(142, 16, 20, [1, 1]))


@pytest.fixture(scope="module")
def trainer():
    return ChunkTrainer(TINY, size=4, num_evals=5, data=load_dataset("wine"))


def test_learning_rate_10_diverges_and_is_recorded(trainer):
    from metabo.collect.runner import trial_rows

    # lr 10 held almost constant (power 0.1, decay over 99% of training), several momenta.
    hps = np.array([[10.0, omm, 0.1, 0.99] for omm in (1e-3, 0.01, 0.1)] + [[0.01, 0.1, 1.0, 0.5]])
    keys = jax.random.split(jax.random.key(0), 4)
    curves = trainer(hps, keys, [0, 0])
    np.testing.assert_array_equal(curves.diverged, [True, True, True, False])
    assert np.all(curves.diverged_step[:3] >= 0) and curves.diverged_step[3] == -1
    assert np.all(np.isnan(curves.final_error[:3]))
    assert np.isfinite(curves.final_error[3]) and 0 <= curves.final_error[3] <= 1

    rows = trial_rows(TINY, "matched", np.arange(4), hps, curves, trainer.plan.total_steps)
    assert len(rows) == 4  # diverged runs are kept, not dropped
    assert rows["status"].tolist() == ["diverged"] * 3 + ["ok"]
    assert rows["final_objective"].iloc[:3].isna().all()
    # objective: the best error before diverging, NaN only if none was measured.
    for i in range(3):
        curve = np.asarray(rows["valid_error_curve"].iloc[i])
        finite = curve[np.isfinite(curve)]
        if finite.size:
            # The curve is stored in float32, the objective in float64.
            assert rows["objective"].iloc[i] == pytest.approx(float(finite.min()), rel=1e-6)
        else:
            assert np.isnan(rows["objective"].iloc[i])


def test_same_seed_gives_identical_results(trainer):
    hps = np.array([[0.05, 0.1, 1.0, 0.5], [0.5, 0.01, 0.5, 0.9], [1e-3, 0.5, 2.0, 0.1], [3.0, 0.3, 1.0, 0.5]])
    keys = jax.random.split(jax.random.key(7), 4)
    a = trainer(hps, keys, [3, 4])
    b = trainer(hps, keys, [3, 4])
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    # A different seed for the weights or the batch order changes the results.
    c = trainer(hps, jax.random.split(jax.random.key(8), 4), [3, 4])
    d = trainer(hps, keys, [3, 5])
    assert not np.array_equal(a.train_loss, c.train_loss, equal_nan=True)
    assert not np.array_equal(a.train_loss, d.train_loss, equal_nan=True)


def test_curves_are_error_rates(trainer):
    hps = np.array([[0.05, 0.1, 1.0, 0.5]] * 4)
    curves = trainer(hps, jax.random.split(jax.random.key(1), 4), [0, 0])
    n_valid = len(load_dataset("wine").y_valid)
    assert curves.valid_error.shape == (4, 5) and curves.train_loss.shape == (4, 5)
    # Exact multiples of 1 / n_valid.
    np.testing.assert_allclose(curves.valid_error * n_valid, np.round(curves.valid_error * n_valid), atol=1e-9)
    np.testing.assert_array_equal(curves.best_error, np.min(curves.valid_error, axis=1))


def test_trainer_checks_chunk_shape(trainer):
    with pytest.raises(ValueError, match="shape"):
        trainer(np.zeros((3, 4)), jax.random.split(jax.random.key(0), 3), 0)
