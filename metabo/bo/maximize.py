"""Maximizing an acquisition: over a finite candidate set, or over the unit box.

Finite sets: a masked argmax that never returns an already observed candidate.

The box ``[0, 1]^d``: a quasi-random sweep (a Halton sequence with a random shift), then
multi-start gradient ascent (Adam, projected onto the box) from the best sweep points, vmapped
over the starts and compiled once per (acquisition function, sizes). Integer rounding and the
map back to user units happen in the caller (``metabo.bo.engine``, ``Space.round_unit``), which
re-scores the rounded points.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from metabo.space import halton


class AllObservedError(ValueError):
    """Every candidate of a finite set has been observed: there is nothing left to suggest."""


def masked_argmax(scores, observed):
    """Index of the best unobserved candidate (jittable).

    scores: [m] (NaN counts as -inf), observed: [m] bool -> [] int. When every unobserved score
    is -inf or NaN, the first unobserved index; when all are observed, index 0 (check
    ``observed`` first, or use ``maximize_finite``).
    """
    masked = jnp.where(observed | jnp.isnan(scores), -jnp.inf, scores)
    best = jnp.argmax(masked)
    # argmax of an all -inf vector is 0, which may be observed: fall back to the first free one.
    first_free = jnp.argmax(~observed)
    return jnp.where(jnp.isneginf(masked[best]), first_free, best)


def maximize_finite(scores, observed) -> int:
    """argmax of ``scores`` [m] over the candidates with ``observed`` [m] False.

    Never returns an observed candidate; raises ``AllObservedError`` when all are observed.
    """
    observed = np.asarray(observed, dtype=bool)
    if observed.all():
        raise AllObservedError(f"all {observed.size} candidates have been observed; add candidates or stop")
    return int(masked_argmax(jnp.asarray(scores), jnp.asarray(observed)))


class BoxResult(NamedTuple):
    """Local optima found by ``maximize_box``, best first.

    x: [num_starts, d] points in the unit box; value: [num_starts] their acquisition values.
    """

    x: jax.Array
    value: jax.Array


def maximize_box(
    acq_fn: Callable,
    dim: int,
    key: jax.Array,
    args=None,
    num_sweep: int = 2048,
    num_starts: int = 16,
    steps: int = 100,
    learning_rate: float = 0.02,
) -> BoxResult:
    """Maximize ``acq_fn`` over ``[0, 1]^dim`` by multi-start projected Adam.

    Args:
      acq_fn: ``acq_fn(x [n, dim], args) -> [n]``, pure and differentiable in ``x``, each row
        scored independently. Pass a function defined once (a module-level function, not a new
        lambda per call): it is a static argument, so a new function object recompiles.
      dim: the box dimension.
      key: PRNG key for the random shift of the sweep.
      args: a pytree of arrays ``acq_fn`` reads (a conditioned posterior, the incumbent...);
        traced, so new values reuse the compiled code.
      num_sweep: quasi-random points scored first.
      num_starts: how many of the best sweep points gradient ascent starts from.
      steps: Adam steps per start.
      learning_rate: Adam step size (in unit-box coordinates).

    Returns: ``BoxResult`` with the best point seen along each start's path, sorted best first.
    """
    num_starts = min(int(num_starts), int(num_sweep))
    return maximize_box_traced(acq_fn, int(dim), key, args, int(num_sweep), num_starts, int(steps), learning_rate)


@functools.lru_cache(maxsize=32)
def _sweep_base(num_sweep: int, dim: int) -> np.ndarray:
    return halton(num_sweep, dim)


@functools.partial(jax.jit, static_argnames=("acq_fn", "dim", "num_sweep", "num_starts", "steps"))
def maximize_box_traced(acq_fn, dim, key, args, num_sweep, num_starts, steps, learning_rate):
    """The jitted body of ``maximize_box``, callable from inside another jitted function.

    Same arguments as ``maximize_box``, all required; ``dim``, ``num_sweep``, ``num_starts``
    (at most ``num_sweep``) and ``steps`` must be Python ints (static), ``acq_fn`` a function
    defined once. Returns ``BoxResult``.
    """
    # Cranley-Patterson rotation: a Halton sweep shifted by a random vector (mod 1), so repeated
    # calls explore different points while keeping the sweep's even coverage.
    shift = jax.random.uniform(key, (dim,))
    sweep = (jnp.asarray(_sweep_base(num_sweep, dim)) + shift) % 1.0
    values = acq_fn(sweep, args)
    values = jnp.where(jnp.isnan(values), -jnp.inf, values)
    start_values, index = jax.lax.top_k(values, num_starts)
    starts = sweep[index]

    def single(x):
        return acq_fn(x[None, :], args)[0]

    value_and_grad = jax.vmap(jax.value_and_grad(single))
    optimizer = optax.adam(learning_rate)

    def step(carry, _):
        x, opt_state, best_x, best_v = carry
        v, g = value_and_grad(x)
        improved = v > best_v
        best_x = jnp.where(improved[:, None], x, best_x)
        best_v = jnp.where(improved, v, best_v)
        # A start sitting where the acquisition is flat or undefined just stays put.
        g = jnp.where(jnp.isfinite(g), g, 0.0)
        updates, opt_state = optimizer.update(-g, opt_state, x)
        x = jnp.clip(optax.apply_updates(x, updates), 0.0, 1.0)
        return (x, opt_state, best_x, best_v), None

    init = (starts, optimizer.init(starts), starts, start_values)
    (x, _, best_x, best_v), _ = jax.lax.scan(step, init, None, length=steps)
    v = jax.vmap(single)(x)
    improved = v > best_v
    best_x = jnp.where(improved[:, None], x, best_x)
    best_v = jnp.where(improved, v, best_v)
    order = jnp.argsort(-best_v)
    return BoxResult(best_x[order], best_v[order])


__all__ = ["AllObservedError", "BoxResult", "masked_argmax", "maximize_finite", "maximize_box", "maximize_box_traced"]
