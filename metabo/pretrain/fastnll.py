"""A faster NLL gradient for pre-training on CPU, same values as ``metabo.gp``.

Two pieces, each with a hand-written reverse-mode rule, used by ``objectives.task_nll`` unless
``method="reference"``:

- ``stationary_gram``: the masked noisy Gram matrix of an SE / Matern 3/2 / Matern 5/2 kernel on
  pre-scaled inputs z = features(x) / lengthscale. Its value comes from ``metabo.gp.kernels``; the
  gradient needs one pass over the n x n cotangent and two thin matrix products,
  z_bar = 2 (z * (rowsum H + colsum H) - H z - H^T z), H = G o s k'(d^2), with s k'(d^2) written
  in terms of the kernel values already computed (no second exp). Automatic differentiation of
  the kernel keeps several n x n intermediates alive and costs a few times more.
- ``lapack_gaussian_nll``: 1/2 r^T K^-1 r + 1/2 log det K with the factorization (potrf), solve
  (potrs) and inverse (potri) done by LAPACK on the host through a buffer callback (SciPy works
  in place on XLA's own input and output buffers: no copies, and no transfer for the callback to
  wait on, which with ``jax.pure_callback`` could deadlock XLA's CPU thread pool); the
  gradient is dL/dK = 1/2 (K^-1 - alpha alpha^T), alpha = K^-1 r. XLA's CPU Cholesky, triangular
  solve and matrix product reach a fraction of LAPACK's speed on 100s-of-points matrices. Used
  only on the CPU backend and for tasks with at least ``LAPACK_MIN_POINTS`` (padded) points;
  otherwise ``metabo.gp.gaussian_nll`` (pure XLA) is used.

Both are verified against ``metabo.gp`` (values and gradients) in the tests.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from metabo.gp import kernels
from metabo.gp.linalg import mask_gram

STATIONARY_KERNELS = ("se", "matern32", "matern52")
# Below this many (padded) points per task the host round trip costs more than it saves.
LAPACK_MIN_POINTS = 64


def use_lapack(points: int) -> bool:
    """Whether ``lapack_gaussian_nll`` pays off for matrices of this size on this backend."""
    return jax.default_backend() == "cpu" and points >= LAPACK_MIN_POINTS


# ---- Gram matrix ------------------------------------------------------------------------------
def stationary_gram(kernel: str, z, signal, noise, mask):
    """Masked noisy Gram matrix k(z, z) + noise I of a stationary kernel.

    kernel: ``"se" | "matern32" | "matern52"``; z: [n, p] inputs divided by lengthscales;
    signal, noise: [] variances; mask: [n] bool (padded rows/columns become the identity). -> [n, n].
    """
    if kernel not in STATIONARY_KERNELS:
        raise ValueError(f"stationary_gram: kernel must be one of {STATIONARY_KERNELS}, got {kernel!r}")
    # Arrays, not NumPy constants, cross the custom_vjp boundary (JAX requires canonical values).
    return _stationary_gram(
        kernel, jnp.asarray(z), jnp.asarray(signal), jnp.asarray(noise), jnp.asarray(mask, dtype=bool)
    )


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _stationary_gram(kernel, z, signal, noise, mask):
    return _gram(kernel, z, signal, noise, mask)


def _gram(kernel, z, signal, noise, mask):
    gram = kernels.KERNELS[kernel](z, z, signal) + noise * jnp.eye(z.shape[0], dtype=z.dtype)
    return mask_gram(gram, mask)


def _gram_fwd(kernel, z, signal, noise, mask):
    gram = _gram(kernel, z, signal, noise, mask)
    return gram, (z, signal, noise, mask, gram)


def _scaled_derivative(kernel, kf, d2):
    """s * dk/d(d^2) from the kernel values kf = s k(d^2) [n, n] and d^2 [n, n]."""
    if kernel == "se":  # k = exp(-d2 / 2)
        return -0.5 * kf
    if kernel == "matern32":  # k = (1 + r) e^-r, r = sqrt(3 d2): dk/dd2 = -3/2 e^-r
        r = kernels.SQRT3 * jnp.sqrt(d2)
        return -1.5 * kf / (1.0 + r)
    # matern52: k = (1 + r + r^2/3) e^-r, r = sqrt(5 d2): dk/dd2 = -5/6 (1 + r) e^-r
    r = kernels.SQRT5 * jnp.sqrt(d2)
    return (-5.0 / 6.0) * kf * (1.0 + r) / (1.0 + r + r * r / 3.0)


def _gram_bwd(kernel, saved, cotangent):
    z, signal, noise, mask, gram = saved
    n = z.shape[0]
    eye = jnp.eye(n, dtype=bool)
    pair = mask[:, None] & mask[None, :]
    g = jnp.where(pair, cotangent, 0.0)
    # The kernel part of the Gram matrix: remove the noise from the diagonal.
    kf = gram - jnp.where(eye, noise, 0.0)
    d2 = kernels.squared_distance(z, z)
    h = g * _scaled_derivative(kernel, kf, d2)
    # No transposed copy of h: colsum and h^T z read it in place.
    spread = jnp.sum(h, axis=1) + jnp.sum(h, axis=0)
    z_bar = 2.0 * (z * spread[:, None] - h @ z - h.T @ z)
    signal_bar = jnp.sum(g * kf) / signal
    noise_bar = jnp.sum(jnp.where(mask, jnp.diagonal(cotangent), 0.0))
    return z_bar, signal_bar, noise_bar, None


_stationary_gram.defvjp(_gram_fwd, _gram_bwd)


# ---- LAPACK NLL -------------------------------------------------------------------------------
def _lapack(dtype):
    from scipy.linalg.lapack import get_lapack_funcs

    return get_lapack_funcs(("potrf", "potrs", "potri"), dtype=dtype)


def _host_nll(ctx, out, gram, residual, with_inverse: bool):
    """Host side, writing into XLA's output buffers: gram [..., n, n], residual [..., n] ->
    value [...] (and alpha [..., n], W [..., n, n]).

    W holds K^-1 in its upper triangle and diagonal (C order); the strict lower triangle is left
    over input. Non-positive-definite matrices give NaN.
    """
    del ctx
    gram = np.asarray(gram)
    residual = np.asarray(residual)
    n = gram.shape[-1]
    potrf, potrs, potri = _lapack(gram.dtype)
    grams = gram.reshape(-1, n, n)
    residuals = residual.reshape(-1, n)
    if with_inverse:
        value_out, alpha_out, work_out = (np.asarray(o) for o in out)
        alphas, work = alpha_out.reshape(-1, n), work_out.reshape(-1, n, n)
    else:
        value_out = np.asarray(out)
        alphas, work = np.empty_like(residuals), np.empty((len(grams), n, n), dtype=gram.dtype)
    values = value_out.reshape(-1)
    for i in range(len(grams)):
        # K is symmetric, so K^T (a Fortran-ordered view) is K: LAPACK works in place on the
        # transposed view of our C-ordered buffer, with no transposing copies.
        a = work[i].T
        np.copyto(a, grams[i].T)
        chol, info = potrf(a, lower=1, overwrite_a=1, clean=0)
        if info != 0:
            values[i], alphas[i], work[i] = np.nan, np.nan, np.nan
            continue
        alpha, _ = potrs(chol, residuals[i], lower=1)
        values[i] = 0.5 * residuals[i] @ alpha + np.sum(np.log(np.diagonal(chol)))
        alphas[i] = alpha
        if with_inverse:
            # In place (lower triangle of ``a`` = upper of work[i]) unless SciPy had to copy.
            inverse, _ = potri(chol, lower=1, overwrite_c=1)
            if not np.shares_memory(inverse, work[i]):
                np.copyto(a, inverse)


def _callback(gram, residual, with_inverse: bool):
    from jax.experimental.buffer_callback import buffer_callback

    dtype = gram.dtype
    value = jax.ShapeDtypeStruct(gram.shape[:-2], dtype)
    shapes = (
        (value, jax.ShapeDtypeStruct(residual.shape, dtype), jax.ShapeDtypeStruct(gram.shape, dtype))
        if with_inverse
        else value
    )
    host = buffer_callback(partial(_host_nll, with_inverse=with_inverse), shapes, vmap_method="broadcast_all")
    return host(gram, residual)


def lapack_gaussian_nll(gram, residual):
    """-log N(residual | 0, gram) without the 2 pi term, by LAPACK on the host.

    gram: [n, n] SPD, residual: [n] -> []; NaN when gram is not positive definite. Same value and
    gradient as ``metabo.gp.gaussian_nll``; jittable and vmappable (one host call per batch).
    """
    return _lapack_gaussian_nll(jnp.asarray(gram), jnp.asarray(residual))


@jax.custom_vjp
def _lapack_gaussian_nll(gram, residual):
    return _callback(gram, residual, with_inverse=False)


def _nll_fwd(gram, residual):
    value, alpha, work = _callback(gram, residual, with_inverse=True)
    return value, (alpha, work)


def _nll_bwd(saved, g):
    alpha, work = saved
    # K^-1 from its upper triangle; the transpose fuses into the same elementwise pass.
    inverse = jnp.triu(work) + jnp.triu(work, 1).T
    return g * 0.5 * (inverse - jnp.outer(alpha, alpha)), g * alpha


_lapack_gaussian_nll.defvjp(_nll_fwd, _nll_bwd)


__all__ = ["stationary_gram", "lapack_gaussian_nll", "use_lapack", "STATIONARY_KERNELS", "LAPACK_MIN_POINTS"]
