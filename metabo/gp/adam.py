"""The one fitting loop of metabo: optax steps that skip non-finite steps entirely.

A failed Cholesky factorization makes a loss (or its gradient) NaN. Zeroing that gradient is
not a skip: Adam's moments still decay and move the parameters on a step that has no
direction. ``skip_nonfinite`` wraps any optax transformation (as optax's ``apply_if_finite``
does) so that such a step returns zero updates AND the inner state unchanged; unlike
``apply_if_finite`` it also looks at the loss value, because a NaN loss may come with a finite
(for example zero) gradient, and it never gives up skipping after a number of bad steps.

``minimize`` runs such an optimizer inside one ``lax.scan`` and tracks the best iterate;
``adam_keep_best`` is its common use. Every fitter (single-task GPs, pre-training, the
baselines) steps through ``skip_nonfinite``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class SkipState(NamedTuple):
    """State of ``skip_nonfinite``: the inner state, the number of skipped steps, and whether
    the last step was applied (bool [])."""

    inner: Any
    skipped: jax.Array
    last_ok: jax.Array


def all_finite(tree) -> jax.Array:
    """True when every leaf of ``tree`` is finite everywhere (True for an empty tree). -> []."""
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def skip_nonfinite(inner: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    """``inner`` with non-finite steps skipped: params and ``inner``'s state left exactly as they
    were when the gradient, the ``value`` extra argument (the loss, when passed) or the updates
    are not all finite.

    Extra arguments (``value``, and L-BFGS's ``grad`` / ``value_fn``) are passed on to ``inner``.
    """
    inner = optax.with_extra_args_support(inner)

    def init(params):
        return SkipState(inner.init(params), jnp.zeros((), jnp.int32), jnp.asarray(True))

    def update(grads, state: SkipState, params=None, **extra):
        updates, new_inner = inner.update(grads, state.inner, params, **extra)
        ok = all_finite(grads) & all_finite(updates)
        if extra.get("value") is not None:
            ok = ok & jnp.all(jnp.isfinite(extra["value"]))
        # where, not cond: both branches are already computed and this stays vmappable.
        updates = jax.tree.map(lambda u: jnp.where(ok, u, jnp.zeros_like(u)), updates)
        new_inner = jax.tree.map(lambda new, old: jnp.where(ok, new, old), new_inner, state.inner)
        return updates, SkipState(new_inner, state.skipped + jnp.where(ok, 0, 1).astype(jnp.int32), ok)

    return optax.GradientTransformationExtraArgs(init, update)


class MinimizeResult(NamedTuple):
    """last: the final iterate; best: the iterate with the smallest finite loss (starting point
    and final iterate included); best_loss: [] (inf when none was finite); losses: [steps], the
    loss at the start of each step."""

    last: Any
    best: Any
    best_loss: jax.Array
    losses: jax.Array


def minimize(
    loss: Callable,
    params,
    steps: int,
    optimizer: optax.GradientTransformation,
    project: Callable | None = None,
    xs=None,
) -> MinimizeResult:
    """``steps`` steps of ``skip_nonfinite(optimizer)`` on ``loss`` from ``params``, in one lax.scan.

    ``loss(params) -> []``, or ``loss(params, x) -> []`` with ``x`` the step's slice of ``xs``
    (e.g. a PRNG key per step, leading axis ``steps``). ``project`` (params -> params) is
    applied after each applied update, e.g. to clip raw hyperparameters to a box. Traceable:
    call it inside jit or vmap.
    """
    guarded = skip_nonfinite(optimizer)
    value_and_grad = jax.value_and_grad(loss if xs is not None else (lambda p, _: loss(p)))
    project = project if project is not None else (lambda p: p)

    def keep_better(best, best_loss, candidate, value):
        better = jnp.isfinite(value) & (value < best_loss)
        best = jax.tree.map(lambda b, c: jnp.where(better, c, b), best, candidate)
        return best, jnp.where(better, value, best_loss)

    def step(carry, x):
        current, state, best, best_loss = carry
        value, grad = value_and_grad(current, x)
        best, best_loss = keep_better(best, best_loss, current, value)
        updates, state = guarded.update(grad, state, current, value=value)
        moved = project(optax.apply_updates(current, updates))
        # A skipped step must not move the parameters through the projection either.
        current = jax.tree.map(lambda m, c: jnp.where(state.last_ok, m, c), moved, current)
        return (current, state, best, best_loss), value

    inf = jnp.asarray(jnp.inf, dtype=jnp.result_type(*jax.tree.leaves(params)))
    init = (params, guarded.init(params), params, inf)
    (last, _, best, best_loss), losses = jax.lax.scan(
        step, init, xs, length=None if xs is not None else steps
    )
    if xs is None:
        best, best_loss = keep_better(best, best_loss, last, loss(last))
    return MinimizeResult(last, best, best_loss, losses)


def adam_keep_best(
    loss: Callable,
    params,
    steps: int,
    learning_rate,
    project: Callable | None = None,
):
    """``steps`` Adam steps on ``loss(params) -> scalar`` from ``params``, inside one lax.scan.

    Returns (best_params, best_loss): the iterate with the smallest finite loss, the starting
    point and the last iterate included (inf loss when none was finite). A step whose loss or
    gradient is not finite (a failed Cholesky) is skipped: parameters and Adam's moments stay
    as they were (``skip_nonfinite``). ``learning_rate``: a number or an optax schedule.
    ``project`` as in ``minimize``. Traceable: call it inside jit or vmap.
    """
    result = minimize(loss, params, steps, optax.adam(learning_rate), project)
    return result.best, result.best_loss


__all__ = ["SkipState", "MinimizeResult", "all_finite", "skip_nonfinite", "minimize", "adam_keep_best"]
