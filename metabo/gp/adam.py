"""Adam on one GP's loss that keeps the best iterate and steps over failed factorizations."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax


def adam_keep_best(
    loss: Callable,
    params,
    steps: int,
    learning_rate,
    project: Callable | None = None,
):
    """``steps`` Adam steps on ``loss(params) -> scalar`` from ``params``, inside one lax.scan.

    Returns (best_params, best_loss): the iterate with the smallest finite loss, the starting
    point and the last iterate included (inf loss when none was finite). A non-finite loss or
    gradient (a failed Cholesky) gives no direction, so that step's update is skipped rather
    than letting NaN into Adam's moments. ``project`` (params -> params) is applied after each
    update, e.g. to clip raw hyperparameters to a box. Traceable: call it inside jit or vmap.
    """
    optimizer = optax.adam(learning_rate)
    value_and_grad = jax.value_and_grad(loss)
    project = project if project is not None else (lambda p: p)

    def keep_better(best_params, best_loss, candidate, value):
        better = jnp.isfinite(value) & (value < best_loss)
        best_params = jax.tree.map(lambda b, c: jnp.where(better, c, b), best_params, candidate)
        return best_params, jnp.where(better, value, best_loss)

    def step(carry, _):
        current, opt_state, best_params, best_loss = carry
        value, grad = value_and_grad(current)
        best_params, best_loss = keep_better(best_params, best_loss, current, value)
        ok = jnp.isfinite(value)
        grad = jax.tree.map(lambda g: jnp.where(ok & jnp.isfinite(g), g, 0.0), grad)
        updates, opt_state = optimizer.update(grad, opt_state, current)
        return (project(optax.apply_updates(current, updates)), opt_state, best_params, best_loss), None

    inf = jnp.asarray(jnp.inf, dtype=jnp.result_type(*jax.tree.leaves(params)))
    init = (params, optimizer.init(params), params, inf)
    (last, _, best_params, best_loss), _ = jax.lax.scan(step, init, None, length=steps)
    return keep_better(best_params, best_loss, last, loss(last))
