"""adam_keep_best: converges on a closed-form minimum, keeps the best iterate, skips NaN steps."""

import jax
import jax.numpy as jnp
import numpy as np

from metabo.gp.adam import adam_keep_best


def quadratic(p):
    return jnp.sum((p["a"] - 3.0) ** 2) + (p["b"] + 1.0) ** 2


def test_reaches_the_closed_form_minimum():
    params = {"a": jnp.zeros(3), "b": jnp.asarray(0.0)}
    best, value = jax.jit(lambda p: adam_keep_best(quadratic, p, 2000, 0.05))(params)
    np.testing.assert_allclose(best["a"], 3.0, atol=1e-4)
    np.testing.assert_allclose(best["b"], -1.0, atol=1e-4)
    np.testing.assert_allclose(value, quadratic(best), rtol=0, atol=1e-12)


def test_returns_the_best_iterate_of_a_reference_loop():
    # A step far too large for p^4 makes Adam bounce around: the best iterate is not the last.
    import optax

    def loss(p):
        return p**4 - p

    optimizer = optax.adam(1.5)
    p, state, trajectory = jnp.asarray(0.3), None, []
    state = optimizer.init(p)
    for _ in range(25):
        trajectory.append((float(loss(p)), float(p)))
        updates, state = optimizer.update(jax.grad(loss)(p), state, p)
        p = optax.apply_updates(p, updates)
    trajectory.append((float(loss(p)), float(p)))
    best_loss, best_p = min(trajectory)
    assert best_p != trajectory[-1][1]  # the case this test is about
    best, value = adam_keep_best(loss, jnp.asarray(0.3), 25, 1.5)
    np.testing.assert_allclose([float(value), float(best)], [best_loss, best_p], rtol=1e-12)


def test_non_finite_steps_are_skipped_not_propagated():
    # NaN for p > 1: the optimum of (p - 2)^2 lies there, so the run must stop at the edge
    # without ever letting NaN into Adam's moments.
    def loss(p):
        return jnp.where(p > 1.0, jnp.nan, (p - 2.0) ** 2)

    best, value = adam_keep_best(loss, jnp.asarray(0.0), 300, 0.1)
    assert np.isfinite(float(best)) and np.isfinite(float(value))
    assert 0.7 < float(best) <= 1.0
    np.testing.assert_allclose(value, (best - 2.0) ** 2)


def test_projection_is_applied_after_every_update():
    best, _ = adam_keep_best(lambda p: (p - 5.0) ** 2, jnp.asarray(0.0), 500, 0.1, lambda p: jnp.clip(p, -1.0, 2.0))
    np.testing.assert_allclose(best, 2.0, atol=1e-12)


def test_vmaps_over_restarts():
    starts = jnp.asarray([-4.0, 0.0, 4.0])
    best, values = jax.vmap(lambda s: adam_keep_best(lambda p: (p - 1.0) ** 2, s, 1500, 0.05))(starts)
    np.testing.assert_allclose(best, 1.0, atol=1e-4)
    assert values.shape == (3,)
