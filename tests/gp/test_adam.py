"""The fitting loop: converges on a closed-form minimum, keeps the best iterate, and skips
non-finite steps without touching parameters or Adam's moments."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from metabo.gp.adam import adam_keep_best, minimize, skip_nonfinite


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


def _old_zeroing_step(optimizer, grad, state, params, value):
    """What gp/adam.py did before: zero a non-finite gradient, then update anyway."""
    ok = jnp.isfinite(value)
    grad = jax.tree.map(lambda g: jnp.where(ok & jnp.isfinite(g), g, 0.0), grad)
    updates, state = optimizer.update(grad, state, params)
    return optax.apply_updates(params, updates), state


def _warm_adam_state():
    # A few real steps so that Adam's moments are non-zero (a fresh state would hide the bug).
    optimizer = skip_nonfinite(optax.adam(0.1))
    params = {"a": jnp.asarray([0.5, -0.2]), "b": jnp.asarray(1.0)}
    state = optimizer.init(params)
    for _ in range(3):
        value, grad = jax.value_and_grad(quadratic)(params)
        updates, state = optimizer.update(grad, state, params, value=value)
        params = optax.apply_updates(params, updates)
    return optimizer, params, state


def test_a_nan_loss_step_leaves_params_and_moments_exactly_unchanged():
    optimizer, params, state = _warm_adam_state()
    mu, nu = state.inner[0].mu, state.inner[0].nu
    assert float(jnp.abs(mu["b"])) > 0  # moments are live
    # A NaN loss with a finite (zero) gradient: what jnp.where(bad, nan, f) differentiates to.
    zero_grad = jax.tree.map(jnp.zeros_like, params)
    updates, new_state = jax.jit(lambda g, s, p: optimizer.update(g, s, p, value=jnp.nan))(
        zero_grad, state, params
    )
    new_params = optax.apply_updates(params, updates)
    # Unchanged means bit-for-bit: nothing was recomputed.
    for new, old in zip(jax.tree.leaves((new_params, new_state.inner)), jax.tree.leaves((params, state.inner)), strict=True):
        np.testing.assert_array_equal(np.asarray(new), np.asarray(old))
    assert int(new_state.skipped) == 1 and not bool(new_state.last_ok)

    # The old mechanism moves both the parameters and the moments on that step.
    old_params, old_state = _old_zeroing_step(optax.adam(0.1), zero_grad, state.inner, params, jnp.nan)
    assert float(jnp.abs(old_params["b"] - params["b"])) > 1e-4
    assert float(jnp.abs(old_state[0].mu["b"] - mu["b"])) > 1e-6
    del nu


def test_a_nan_gradient_step_is_skipped_too():
    optimizer, params, state = _warm_adam_state()
    grad = {"a": jnp.asarray([jnp.nan, 1.0]), "b": jnp.asarray(2.0)}
    updates, new_state = optimizer.update(grad, state, params, value=jnp.asarray(1.0))
    for new, old in zip(jax.tree.leaves(new_state.inner), jax.tree.leaves(state.inner), strict=True):
        np.testing.assert_array_equal(np.asarray(new), np.asarray(old))
    assert all(float(jnp.max(jnp.abs(u))) == 0.0 for u in jax.tree.leaves(updates))


def test_minimize_never_moves_from_a_nan_start():
    result = minimize(lambda p: jnp.nan * p, jnp.asarray(0.25), 5, optax.adam(0.1), lambda p: p + 1.0)
    np.testing.assert_array_equal(np.asarray(result.last), 0.25)
    assert np.isinf(float(result.best_loss)) and np.all(np.isnan(np.asarray(result.losses)))


def test_minimize_with_per_step_inputs_matches_a_python_loop():
    # loss(p, x) with one x per step: the scan must see the same sequence as a plain loop.
    xs = jnp.linspace(-1.0, 1.0, 7)

    def loss(p, x):
        return (p - x) ** 2

    optimizer = optax.adam(0.2)
    p, state, expected = jnp.asarray(0.0), optax.adam(0.2).init(jnp.asarray(0.0)), []
    for x in xs:
        value, grad = jax.value_and_grad(loss)(p, x)
        expected.append(float(value))
        updates, state = optimizer.update(grad, state, p)
        p = optax.apply_updates(p, updates)
    result = jax.jit(lambda p0: minimize(loss, p0, len(xs), optax.adam(0.2), xs=xs))(jnp.asarray(0.0))
    np.testing.assert_allclose(np.asarray(result.losses), expected, rtol=1e-12)
    np.testing.assert_allclose(float(result.last), float(p), rtol=1e-12)
