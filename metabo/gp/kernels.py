"""Covariance functions on pre-scaled inputs (inputs already divided by ARD lengthscales).

Each kernel is a pure function ``(z1 [n, p], z2 [m, p], signal [], bias []) -> [n, m]``.
Squared distances use matrix products (fast on CPU), clamped at zero; ``sqrt`` goes through a
double ``where`` so its gradient at zero distance is finite.
"""

from __future__ import annotations

import jax.numpy as jnp

SQRT3 = 3.0**0.5
SQRT5 = 5.0**0.5


def squared_distance(z1, z2):
    """z1: [n, p], z2: [m, p] -> [n, m] squared Euclidean distances (>= 0)."""
    sq1 = jnp.sum(z1 * z1, axis=-1)[:, None]
    sq2 = jnp.sum(z2 * z2, axis=-1)[None, :]
    return jnp.maximum(sq1 + sq2 - 2.0 * (z1 @ z2.T), 0.0)


def safe_sqrt(x):
    """sqrt with a zero (not infinite) gradient at 0."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def squared_exponential(z1, z2, signal, bias=0.0):
    return signal * jnp.exp(-0.5 * squared_distance(z1, z2))


def matern32(z1, z2, signal, bias=0.0):
    r = SQRT3 * safe_sqrt(squared_distance(z1, z2))
    return signal * (1.0 + r) * jnp.exp(-r)


def matern52(z1, z2, signal, bias=0.0):
    d2 = squared_distance(z1, z2)
    r = SQRT5 * safe_sqrt(d2)
    return signal * (1.0 + r + (5.0 / 3.0) * d2) * jnp.exp(-r)


def dot_product(z1, z2, signal, bias=0.0):
    """bias + signal * <z1, z2> (a Bayesian linear model in the scaled inputs)."""
    return bias + signal * (z1 @ z2.T)


KERNELS = {
    "se": squared_exponential,
    "matern32": matern32,
    "matern52": matern52,
    "dot": dot_product,
}
