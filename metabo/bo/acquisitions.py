"""Acquisition functions: pure functions of a posterior mean and standard deviation.

Everything is maximized: scores are maximized (``metabo.space.Objective.to_score``) and so is
every acquisition here. Inputs broadcast against each other; shapes below are for ``m``
candidates (``mean: [m]``, ``std: [m]``), scalars for the rest.

Expected improvement is computed in log space (``log_ei``), which stays finite and has finite
gradients far in the tails, where ``log(EI)`` underflows to ``-inf``: with
``z = (mean - best) / std``, ``EI = std * h(z)`` and ``h(z) = phi(z) + z Phi(z)``. For ``z > -5``,
``h`` is computed directly (no cancellation there); below, ``h(z) = phi(z) (1 + z Phi(z)/phi(z))``
and the bracket, a difference of two nearly equal numbers, is rewritten exactly through
Laplace's continued fraction for the Mills ratio, so no digits are lost at any ``z``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr, ndtr

# Standard deviations below this are treated as this (a deterministic prediction): keeps
# z = (mean - best) / std finite for |mean - best| up to ~1e200.
STD_FLOOR = 1e-100
# |z| beyond this has log h(z) ~ -z^2/2 < -5e199: nothing is gained by going further, and the
# gradient with respect to std (~ z^2 / std) would overflow.
Z_LIMIT = 1e100
# Below this z, h(z) goes through the continued fraction (see the module docstring).
_Z_SWITCH = -5.0
# Above this z, EI equals mean - best to float64 precision.
_Z_FAR = 40.0
# Terms of the continued fraction; at |z| >= 5, 40 terms are exact to float64 rounding.
_CF_TERMS = 40
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _standardize(mean, std, target):
    std = jnp.maximum(std, STD_FLOOR)
    z = (mean - target) / std
    return jnp.clip(z, -Z_LIMIT, Z_LIMIT), std


def _log_h_parts(z):
    """log h(z) and d log h / dz = Phi(z) / h(z), both without cancellation. z: [...] -> 2 x [...]."""
    # Direct branch (z > -5). Inputs are made safe with a double `where` so the unused branch
    # never produces inf/NaN.
    upper = z > _Z_SWITCH
    z_up = jnp.where(upper, z, 0.0)
    z_pdf = jnp.minimum(z_up, 40.0)  # phi(40) underflows anyway; avoids z^2 overflow
    cdf = ndtr(z_up)
    h_up = jnp.exp(-0.5 * z_pdf * z_pdf - _LOG_SQRT_2PI) + z_up * cdf
    # Tail branch (z <= -5): u = -z, Phi(z)/phi(z) = 1 / (u + c1) with c_k = k / (u + c_{k+1});
    # then 1 + z Phi(z)/phi(z) = c1 / (u + c1) and Phi(z)/h(z) = 1 / c1, no cancellation.
    u = jnp.where(upper, -_Z_SWITCH, -z)
    c = jnp.zeros_like(u)
    for k in range(_CF_TERMS, 0, -1):
        c = k / (u + c)
    log_low = -0.5 * u * u - _LOG_SQRT_2PI + jnp.log(c) - jnp.log(u + c)
    value = jnp.where(upper, jnp.log(h_up), log_low)
    slope = jnp.where(upper, cdf / h_up, 1.0 / c)
    return value, slope


@jax.custom_jvp
def _log_h(z):
    """log(phi(z) + z Phi(z)) for any finite z, with finite gradients. z: [...] -> [...]."""
    return _log_h_parts(z)[0]


@_log_h.defjvp
def _log_h_jvp(primals, tangents):
    # The exact derivative from the same pieces: differentiating through the continued
    # fraction would be slower to compile and run, and no more accurate.
    (z,), (z_dot,) = primals, tangents
    value, slope = _log_h_parts(z)
    return value, slope * z_dot


def log_ei(mean, std, best):
    """log expected improvement over ``best``: log E[max(f - best, 0)], f ~ N(mean, std^2).

    mean: [m], std: [m] (>= 0), best: [] -> [m]. Finite (and with finite gradients) for means
    and standard deviations from 1e-100 to 1e100; ``std`` is floored at ``STD_FLOOR``.
    """
    z, std = _standardize(mean, std, best)
    # Far above the incumbent EI is the gap itself (the Gaussian tail is below 1e-300 of it);
    # computing it directly keeps huge z (clipped by _standardize) exact.
    far = z > _Z_FAR
    gap = jnp.where(far, mean - best, 1.0)
    return jnp.where(far, jnp.log(gap), jnp.log(std) + _log_h(jnp.where(far, 0.0, z)))


def expected_improvement(mean, std, best):
    """Expected improvement E[max(f - best, 0)]. mean: [m], std: [m], best: [] -> [m].

    Underflows to 0 far in the tail; maximize ``log_ei`` instead.
    """
    return jnp.exp(log_ei(mean, std, best))


def log_probability_of_improvement(mean, std, best, zeta=0.0):
    """log P(f > best + zeta). mean: [m], std: [m], best: [], zeta: [] -> [m]."""
    z, _ = _standardize(mean, std, best + zeta)
    return log_ndtr(z)


def probability_of_improvement(mean, std, best, zeta=0.0):
    """P(f > best + zeta) for f ~ N(mean, std^2): PI with target ``best + zeta``.

    mean: [m], std: [m], best: [], zeta: [] (>= 0 asks for a margin of improvement) -> [m].
    """
    z, _ = _standardize(mean, std, best + zeta)
    return ndtr(z)


def ucb(mean, std, beta):
    """Upper confidence bound ``mean + sqrt(beta) * std``. mean: [m], std: [m], beta: [] -> [m]."""
    return mean + jnp.sqrt(beta) * std


def gp_ucb_beta(t, num_candidates=None, dim=None, delta=0.1):
    """GP-UCB's exploration weight beta_t (Srinivas et al., 2010) at step ``t >= 1``.

    Finite set of ``num_candidates`` points (their Theorem 1):
        beta_t = 2 log(|D| t^2 pi^2 / (6 delta)).
    Continuous box of dimension ``dim`` (their Theorem 2 with the problem constants absorbed,
    the form Brochu et al. 2010 recommend):
        beta_t = 2 log(t^(d/2 + 2) pi^2 / (3 delta)).
    Give exactly one of ``num_candidates`` and ``dim``. Works on Python numbers and JAX arrays.
    """
    if (num_candidates is None) == (dim is None):
        raise ValueError("gp_ucb_beta needs exactly one of num_candidates (finite set) or dim (box)")
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    t = jnp.maximum(jnp.asarray(t, dtype=float), 1.0)
    if num_candidates is not None:
        return 2.0 * jnp.log(num_candidates * t**2 * math.pi**2 / (6.0 * delta))
    return 2.0 * ((dim / 2.0 + 2.0) * jnp.log(t) + math.log(math.pi**2 / (3.0 * delta)))


def thompson_sample(key, mean, cov, num_samples=None):
    """Joint posterior draws on a finite set. mean: [m], cov: [m, m] -> [m] (or [s, m]).

    ``num_samples=None`` draws one sample of shape [m]; an integer draws [num_samples, m].
    The covariance is factorized with adaptive jitter (it is often numerically singular, e.g.
    at observed points).
    """
    from metabo.gp.linalg import cholesky_adaptive

    chol, _ = cholesky_adaptive(cov)
    shape = (mean.shape[-1],) if num_samples is None else (num_samples, mean.shape[-1])
    noise = jax.random.normal(key, shape, dtype=mean.dtype)
    return mean + noise @ chol.T


__all__ = [
    "STD_FLOOR",
    "Z_LIMIT",
    "log_ei",
    "expected_improvement",
    "log_probability_of_improvement",
    "probability_of_improvement",
    "ucb",
    "gp_ucb_beta",
    "thompson_sample",
]
