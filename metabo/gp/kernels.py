"""Covariance functions on pre-scaled inputs (inputs already divided by ARD lengthscales).

The one definition of every kernel. Each kernel is a pure function
``(z1 [n, p], z2 [m, p], signal [], bias []) -> [n, m]``. A stationary kernel is
``signal * profile(d2)`` of the squared distance d2 = |z1 - z2|^2, and its profile lives in
``STATIONARY`` together with ``slope(d2) = profile'(d2) / profile(d2)``, which the hand-written
gradients of ``metabo.gp.lapack`` use: fast backends import these definitions, they do not
write the formulas again.

Squared distances use matrix products (fast on CPU), clamped at zero; ``safe_sqrt`` has a
double-``where`` derivative, so that neither its value nor its gradient at zero distance is NaN
or infinite.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

SQRT3 = 3.0**0.5
SQRT5 = 5.0**0.5


def squared_distance(z1, z2):
    """z1: [n, p], z2: [m, p] -> [n, m] squared Euclidean distances (>= 0)."""
    sq1 = jnp.sum(z1 * z1, axis=-1)[:, None]
    sq2 = jnp.sum(z2 * z2, axis=-1)[None, :]
    return jnp.maximum(sq1 + sq2 - 2.0 * (z1 @ z2.T), 0.0)


@jax.custom_jvp
def safe_sqrt(x):
    """sqrt(x) for x >= 0 [...] -> [...], with value 0 and gradient 0 (not inf) at x <= 0.

    The value is sqrt(max(x, 0)): one elementwise pass with no branch, so it is finite even for
    the tiny negative rounding errors of a squared distance and costs nothing extra in the
    fused kernel passes of ``metabo.gp.lapack``. The derivative is tinygp's double ``where``
    (``kernels/distance.py``): the outer one gives slope 0 where x is below the smallest normal
    number, the inner one (a maximum) keeps 1 / sqrt finite on the branch not taken, so no
    branch is NaN or inf forward or backward. Keeping the ``where`` out of the value matters:
    XLA may recompute x in several fusions with different rounding, so two predicates on an x
    of order 1e-17 can disagree; with the textbook ``where(x > 0, sqrt(where(x > 0, x, 1)), 0)``
    as the value, jit(value_and_grad) of a Matern NLL with zero distances returned wrong values
    and NaN under JAX 0.10.2 (the inner fallback 1 leaked into the result).
    """
    return jnp.sqrt(jnp.maximum(x, 0.0))


@safe_sqrt.defjvp
def _safe_sqrt_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    tiny = jnp.finfo(jnp.result_type(x, float)).tiny
    slope = jnp.where(x >= tiny, 0.5 / jnp.sqrt(jnp.maximum(x, tiny)), 0.0)
    return safe_sqrt(x), slope * dx


# ---- stationary profiles: k(d2) / signal and its logarithmic slope -----------------------------
def se_profile(d2):
    """exp(-d2 / 2). d2: [...] -> [...]."""
    return jnp.exp(-0.5 * d2)


def se_slope(d2):
    """d/dd2 log exp(-d2 / 2) = -1/2. d2: [...] -> [...]."""
    return jnp.full_like(d2, -0.5)


def matern32_profile(d2):
    """(1 + r) exp(-r), r = sqrt(3 d2). d2: [...] -> [...]."""
    r = SQRT3 * safe_sqrt(d2)
    return (1.0 + r) * jnp.exp(-r)


def matern32_slope(d2):
    """k'(d2) / k(d2) = -3/2 / (1 + r) for the Matern 3/2 profile. d2: [...] -> [...]."""
    return -1.5 / (1.0 + SQRT3 * safe_sqrt(d2))


def matern52_profile(d2):
    """(1 + r + r^2 / 3) exp(-r), r = sqrt(5 d2). d2: [...] -> [...]."""
    r = SQRT5 * safe_sqrt(d2)
    return (1.0 + r + (5.0 / 3.0) * d2) * jnp.exp(-r)


def matern52_slope(d2):
    """k'(d2) / k(d2) = -5/6 (1 + r) / (1 + r + r^2 / 3) for the Matern 5/2 profile."""
    r = SQRT5 * safe_sqrt(d2)
    return (-5.0 / 6.0) * (1.0 + r) / (1.0 + r + (5.0 / 3.0) * d2)


class Stationary(NamedTuple):
    """A stationary kernel as functions of the squared distance d2 [...] -> [...]:
    ``profile(d2)`` with profile(0) = 1, and ``slope(d2) = profile'(d2) / profile(d2)``."""

    profile: Callable
    slope: Callable


STATIONARY = {
    "se": Stationary(se_profile, se_slope),
    "matern32": Stationary(matern32_profile, matern32_slope),
    "matern52": Stationary(matern52_profile, matern52_slope),
}


def squared_exponential(z1, z2, signal, bias=0.0):
    return signal * se_profile(squared_distance(z1, z2))


def matern32(z1, z2, signal, bias=0.0):
    return signal * matern32_profile(squared_distance(z1, z2))


def matern52(z1, z2, signal, bias=0.0):
    return signal * matern52_profile(squared_distance(z1, z2))


def dot_product(z1, z2, signal, bias=0.0):
    """bias + signal * <z1, z2> (a Bayesian linear model in the scaled inputs)."""
    return bias + signal * (z1 @ z2.T)


KERNELS = {
    "se": squared_exponential,
    "matern32": matern32,
    "matern52": matern52,
    "dot": dot_product,
}
