"""Marginal likelihood and posterior of a GP with a given prior (model, params).

All functions are pure and jittable (``model`` static). Observations may be padded: ``mask``
[n] marks the real ones, padded rows are ignored exactly (their Gram block is the identity and
their residual is zero).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve, solve_triangular

from metabo.gp import lapack
from metabo.gp.linalg import LOG_2PI, cholesky_adaptive, gaussian_nll, mask_gram, warn_jitter
from metabo.gp.model import GPModel, GPParams


def _full_mask(x, mask):
    return jnp.ones(x.shape[0], dtype=bool) if mask is None else mask


def noisy_gram(model: GPModel, params: GPParams, x, mask=None):
    """K(x, x) + noise I, padded rows as identity. x: [n, d] -> [n, n]."""
    mask = _full_mask(x, mask)
    gram = model.cov(params, x, x) + model.noise(params) * jnp.eye(x.shape[0], dtype=x.dtype)
    return mask_gram(gram, mask)


NLL_BACKENDS = ("xla", "lapack")


def negative_log_likelihood(model: GPModel, params: GPParams, x, y, mask=None, backend: str = "xla"):
    """-log p(y | x) under the prior. x: [n, d], y: [n], mask: [n] -> [] (real points only).

    ``backend``: ``"xla"`` differentiates through the kernel and factorizes with XLA;
    ``"lapack"`` gives the same value and gradient faster on CPU (``metabo.gp.lapack``: a
    hand-written Gram-matrix gradient for stationary kernels, and host LAPACK for the
    factorization when ``lapack.use_lapack(n)``, i.e. on CPU from ``LAPACK_MIN_POINTS`` points).
    """
    if backend not in NLL_BACKENDS:
        raise ValueError(f"unknown NLL backend {backend!r}; expected one of {NLL_BACKENDS}")
    mask = _full_mask(x, mask)
    residual = jnp.where(mask, y - model.mean_fn(params, x), 0.0)
    constant = 0.5 * jnp.sum(mask) * LOG_2PI
    if backend == "xla":
        return gaussian_nll(noisy_gram(model, params, x, mask), residual) + constant
    if model.kernel in lapack.STATIONARY_KERNELS:
        h = model.hyper(params)
        z = model.features(params, x) / h.lengthscale
        return lapack.stationary_nll(model.kernel, z, h.signal, h.noise, mask, residual) + constant
    return lapack.dense_nll(noisy_gram(model, params, x, mask), residual) + constant


def log_marginal_likelihood(model: GPModel, params: GPParams, x, y, mask=None):
    """log p(y | x). x: [n, d], y: [n], mask: [n] -> []."""
    return -negative_log_likelihood(model, params, x, y, mask)


def leave_one_out_log_density(model: GPModel, params: GPParams, x, y, mask=None):
    """log p(y_i | y_-i, x) for each observation, hyperparameters fixed. -> [n] (0 on padding).

    Closed form (Rasmussen & Williams, eq. 5.12): with K the noisy Gram matrix and
    alpha = K^-1 (y - mu), the held-out predictive of y_i has mean y_i - alpha_i / [K^-1]_ii and
    variance 1 / [K^-1]_ii, so all n folds cost one factorization.
    """
    mask = _full_mask(x, mask)
    gram = noisy_gram(model, params, x, mask)
    residual = jnp.where(mask, y - model.mean_fn(params, x), 0.0)
    chol, alpha, _ = factorize(gram, residual)
    inverse = cho_solve((chol, True), jnp.eye(x.shape[0], dtype=gram.dtype))
    precision = jnp.diagonal(inverse)  # 1 / held-out predictive variance
    error = alpha / precision  # y_i minus its held-out predictive mean
    density = 0.5 * (jnp.log(precision) - LOG_2PI - precision * error**2)
    return jnp.where(mask, density, 0.0)


class Conditioned(NamedTuple):
    """A GP conditioned on observations (a pytree; reuse it for many predictions).

    x: [n, d] observed inputs; mask: [n]; chol: [n, n] Cholesky factor of the noisy Gram matrix
    (with jitter); alpha: [n] = K^-1 (y - mu); jitter: [] added to the diagonal (0 if none).
    """

    x: jax.Array
    mask: jax.Array
    chol: jax.Array
    alpha: jax.Array
    jitter: jax.Array


def factorize(gram, residual, adaptive: bool = True):
    """Cholesky factor of a (masked) Gram matrix [n, n] and alpha = K^-1 residual [n].

    ``adaptive=False`` is a plain Cholesky (it compiles in about half the time of the adaptive
    loop; check ``factorized`` and redo with ``adaptive=True`` only on failure, see
    ``with_jitter_fallback``); ``adaptive=True`` adds the smallest jitter that makes it succeed
    (``cholesky_adaptive``). -> (chol [n, n], alpha [n], jitter []).
    """
    if adaptive:
        chol, jitter = cholesky_adaptive(gram)
    else:
        chol, jitter = jnp.linalg.cholesky(gram), jnp.zeros((), dtype=gram.dtype)
    return chol, cho_solve((chol, True), residual), jitter


def condition(
    model: GPModel, params: GPParams, x, y, mask=None, noise=None, adaptive: bool = True
) -> Conditioned:
    """Condition the prior on (x [n, d], y [n]). Adds jitter only if the factorization fails.

    ``noise`` overrides the model's observation noise variance (for example 0 for exact
    interpolation, where the adaptive jitter then keeps things finite). ``adaptive=False``: a
    plain Cholesky, NaN on failure (see ``factorize``).
    """
    mask = _full_mask(x, mask)
    noise = model.noise(params) if noise is None else noise
    gram = model.cov(params, x, x) + noise * jnp.eye(x.shape[0], dtype=x.dtype)
    residual = jnp.where(mask, y - model.mean_fn(params, x), 0.0)
    chol, alpha, jitter = factorize(mask_gram(gram, mask), residual, adaptive)
    return Conditioned(x, mask, chol, alpha, jitter)


def factorized(state: Conditioned):
    """Whether the factorization succeeded (all finite). -> bool []."""
    return jnp.all(jnp.isfinite(state.chol))


def chol_inverse(chol):
    """L^-1 [n, n] of a lower Cholesky factor [n, n] (padded rows stay the identity)."""
    eye = jnp.eye(chol.shape[0], dtype=chol.dtype)
    return solve_triangular(chol, eye, lower=True)


def predict_from_cross(prior_mean, prior_var, cross, alpha, chol_inv):
    """Posterior mean and variance from the prior at m query points and their cross-covariance
    with the n observations: prior_mean [m], prior_var [m], cross [m, n] (0 on padded
    columns), alpha [n], chol_inv [n, n] = L^-1 -> ([m], [m]).

    With L^-1 computed once per conditioning, each query costs a matrix product instead of a
    triangular solve (several times faster for thousands of candidates on CPU)."""
    v = cross @ chol_inv.T
    return prior_mean + cross @ alpha, jnp.maximum(prior_var - jnp.sum(v * v, axis=-1), 0.0)


def predict_with_inverse(model: GPModel, params: GPParams, state: Conditioned, chol_inv, xq):
    """``predict`` (without noise) with L^-1 = ``chol_inverse(state.chol)`` precomputed.
    xq: [m, d] -> ([m], [m])."""
    cross = _cross(model, params, state, xq)
    return predict_from_cross(model.mean_fn(params, xq), model.cov_diag(params, xq), cross, state.alpha, chol_inv)


def with_jitter_fallback(where: str, fn, *args, **static):
    """Run a compiled ``fn(*args, adaptive=..., **static)`` that returns ``(*result, jitter,
    ok)``: first with a plain Cholesky, and only if that failed (``ok`` false) again with
    adaptive jitter, warning (``warn_jitter``) with ``where``. -> the result list."""
    with lapack.callback_interrupts():
        *result, jitter, ok = fn(*args, adaptive=False, **static)
        if not bool(ok):
            *result, jitter, ok = fn(*args, adaptive=True, **static)
            warn_jitter(jitter, where)
    return result


def _cross(model, params, state: Conditioned, xq):
    return jnp.where(state.mask[None, :], model.cov(params, xq, state.x), 0.0)


def predict(model: GPModel, params: GPParams, state: Conditioned, xq, include_noise: bool = False):
    """Posterior mean and variance at xq: [m, d] -> ([m], [m])."""
    cross = _cross(model, params, state, xq)
    mean = model.mean_fn(params, xq) + cross @ state.alpha
    v = solve_triangular(state.chol, cross.T, lower=True)
    var = model.cov_diag(params, xq) - jnp.sum(v * v, axis=0)
    var = jnp.maximum(var, 0.0)
    if include_noise:
        var = var + model.noise(params)
    return mean, var


def predict_cov(model: GPModel, params: GPParams, state: Conditioned, xq, include_noise: bool = False):
    """Posterior mean [m] and full covariance [m, m] at xq: [m, d]."""
    cross = _cross(model, params, state, xq)
    mean = model.mean_fn(params, xq) + cross @ state.alpha
    v = solve_triangular(state.chol, cross.T, lower=True)
    cov = model.cov(params, xq, xq) - v.T @ v
    cov = 0.5 * (cov + cov.T)
    if include_noise:
        cov = cov + model.noise(params) * jnp.eye(xq.shape[0], dtype=xq.dtype)
    return mean, cov


def posterior(model: GPModel, params: GPParams, x, y, xq, mask=None, include_noise: bool = False):
    """Convenience: condition on (x, y) and predict mean and variance at xq. -> ([m], [m])."""
    return predict(model, params, condition(model, params, x, y, mask), xq, include_noise)
