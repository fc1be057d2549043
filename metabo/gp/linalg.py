"""Linear algebra for GPs: masked Gram matrices, Cholesky with adaptive jitter, and the
Gaussian negative log likelihood with a hand-written gradient (its XLA backend).

The NLL gradient uses dNLL/dK = 1/2 (K^-1 - alpha alpha^T), alpha = K^-1 r, from one Cholesky
factor, instead of differentiating through the factorization (several times cheaper).
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve, solve_triangular

LOG_2PI = math.log(2 * math.pi)


def mask_gram(gram, mask):
    """Make padded rows/columns of a Gram matrix [n, n] the identity. mask: [n] bool."""
    pair = mask[:, None] & mask[None, :]
    return jnp.where(pair, gram, 0.0) + jnp.diag(jnp.where(mask, 0.0, 1.0))


def gaussian_nll(gram, residual):
    """-log N(residual | 0, gram) without the 2 pi term: 1/2 r^T K^-1 r + 1/2 log det K.

    gram: [n, n] SPD, residual: [n] -> []. NaN when the Cholesky factorization fails. The XLA
    backend (``metabo.gp.lapack`` has the LAPACK one): ``gaussian_nll_multi`` with one residual.
    """
    return gaussian_nll_multi(gram, residual[None, :])


@jax.custom_vjp
def gaussian_nll_multi(gram, residuals):
    """``1/2 sum_i r_i^T K^-1 r_i + 1/2 log det K`` for several residuals sharing one K.

    gram: [M, M] SPD, residuals: [N, M] -> []. NaN when the Cholesky factorization fails.
    The gradient uses dL/dK = 1/2 (K^-1 - A A^T), A = K^-1 R^T, from one factorization.
    """
    value, _ = _nll_fwd(gram, residuals)
    return value


def _nll_fwd(gram, residuals):
    chol = jnp.linalg.cholesky(gram)
    solved = cho_solve((chol, True), residuals.T)  # [M, N]
    value = 0.5 * jnp.sum(residuals.T * solved) + jnp.sum(jnp.log(jnp.diagonal(chol)))
    return value, (chol, solved)


def _nll_bwd(saved, g):
    chol, solved = saved
    eye = jnp.eye(chol.shape[-1], dtype=chol.dtype)
    chol_inv = solve_triangular(chol, eye, lower=True)
    gram_inv = chol_inv.T @ chol_inv
    return g * 0.5 * (gram_inv - solved @ solved.T), g * solved.T


gaussian_nll_multi.defvjp(_nll_fwd, _nll_bwd)


def cholesky_adaptive(gram, max_tries: int = 10, initial: float = 1e-10):
    """Cholesky factor of ``gram + jitter I`` with the smallest jitter in
    ``0, initial * s, 10 * initial * s, ...`` (s = mean diagonal) that succeeds.

    Jittable. Returns (chol [n, n], jitter []); jitter 0 means none was added. After
    ``max_tries`` the factor may still contain NaN.
    """
    n = gram.shape[-1]
    eye = jnp.eye(n, dtype=gram.dtype)
    scale = jnp.maximum(jnp.mean(jnp.diagonal(gram)), 1e-300)

    def attempt(jitter):
        return jnp.linalg.cholesky(gram + jitter * eye)

    def failed(chol):
        return ~jnp.all(jnp.isfinite(chol))

    def cond(state):
        tries, _, chol = state
        return (tries < max_tries) & failed(chol)

    def body(state):
        tries, _, _ = state
        jitter = initial * scale * 10.0**tries
        return tries + 1, jitter, attempt(jitter)

    zero = jnp.zeros((), gram.dtype)
    _, jitter, chol = jax.lax.while_loop(cond, body, (jnp.array(0), zero, attempt(zero)))
    return chol, jitter


def warn_jitter(jitter, where: str = "GP") -> None:
    """Warn (outside jit) when ``cholesky_adaptive`` had to add jitter."""
    value = float(jnp.max(jitter))
    if value > 0:
        warnings.warn(
            f"{where}: covariance matrix was not numerically positive definite; added jitter "
            f"{value:.3g} to its diagonal (near-duplicate inputs or tiny noise)",
            RuntimeWarning,
            stacklevel=3,
        )
