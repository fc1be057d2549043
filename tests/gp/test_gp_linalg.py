"""Linear algebra: the custom-gradient Gaussian NLL, masked Gram matrices, adaptive jitter."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.linalg import solve_triangular
from jax.test_util import check_grads
from scipy.stats import multivariate_normal

from metabo.gp import cholesky_adaptive, gaussian_nll, mask_gram, warn_jitter


def spd(n, seed, ridge=0.5):
    """A random symmetric positive definite matrix [n, n] with moderate conditioning."""
    a = np.random.default_rng(seed).standard_normal((n, n))
    return a @ a.T / n + ridge * np.eye(n)


def plain_nll(gram, residual):
    """The same quantity, differentiated by JAX through a plain Cholesky factorization."""
    chol = jnp.linalg.cholesky(gram)
    w = solve_triangular(chol, residual, lower=True)
    return 0.5 * w @ w + jnp.sum(jnp.log(jnp.diagonal(chol)))


def test_gaussian_nll_value_matches_scipy():
    gram, r = spd(7, 0), np.random.default_rng(1).standard_normal(7)
    expected = -multivariate_normal.logpdf(r, mean=np.zeros(7), cov=gram) - 0.5 * 7 * np.log(2 * np.pi)
    assert float(gaussian_nll(gram, r)) == pytest.approx(expected, rel=1e-10)


def test_gaussian_nll_gradient_equals_autodiff_through_cholesky():
    gram, r = jnp.asarray(spd(7, 2)), jnp.asarray(np.random.default_rng(3).standard_normal(7))
    got = jax.grad(gaussian_nll, argnums=(0, 1))(gram, r)
    want = jax.grad(plain_nll, argnums=(0, 1))(gram, r)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-9, atol=1e-12)
    # The closed form the custom rule implements: dNLL/dK = 1/2 (K^-1 - a a^T), dNLL/dr = a.
    inv = np.linalg.inv(np.asarray(gram))
    alpha = inv @ np.asarray(r)
    np.testing.assert_allclose(got[0], 0.5 * (inv - np.outer(alpha, alpha)), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got[1], alpha, rtol=1e-9)


def test_gaussian_nll_gradient_through_a_parametrized_gram():
    # The way the loss uses it: K(theta) built from parameters, chain rule through the custom VJP.
    x = jnp.linspace(0.0, 1.0, 7)

    def gram_of(theta):
        ls, sig, noise = jnp.exp(theta)
        return sig * jnp.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / ls**2) + noise * jnp.eye(7)

    r = jnp.sin(4 * x)
    theta = jnp.log(jnp.array([0.4, 1.3, 0.05]))
    got = jax.grad(lambda t: gaussian_nll(gram_of(t), r))(theta)
    want = jax.grad(lambda t: plain_nll(gram_of(t), r))(theta)
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_gaussian_nll_check_grads():
    gram, r = jnp.asarray(spd(7, 4, ridge=1.0)), jnp.asarray(np.random.default_rng(5).standard_normal(7))
    # custom_vjp: reverse mode only.
    check_grads(gaussian_nll, (gram, r), order=1, modes=["rev"])


def test_gaussian_nll_under_vmap_and_jit():
    grams = jnp.stack([jnp.asarray(spd(7, s)) for s in range(3)])
    rs = jnp.asarray(np.random.default_rng(9).standard_normal((3, 7)))
    batched = jax.jit(jax.vmap(jax.value_and_grad(gaussian_nll, argnums=(0, 1))))(grams, rs)
    for i in range(3):
        value, (g_gram, g_r) = jax.value_and_grad(plain_nll, argnums=(0, 1))(grams[i], rs[i])
        np.testing.assert_allclose(batched[0][i], value, rtol=1e-12)
        np.testing.assert_allclose(batched[1][0][i], g_gram, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(batched[1][1][i], g_r, rtol=1e-9, atol=1e-12)


def test_gaussian_nll_is_nan_when_not_positive_definite():
    gram = jnp.array([[1.0, 2.0], [2.0, 1.0]])  # eigenvalues 3 and -1
    assert np.isnan(float(gaussian_nll(gram, jnp.ones(2))))


def test_mask_gram():
    gram = jnp.asarray(spd(7, 6))
    real, pad = [0, 2, 3, 6], [1, 4, 5]
    mask = jnp.asarray(np.isin(np.arange(7), real))
    out = np.asarray(mask_gram(gram, mask))
    np.testing.assert_array_equal(out[np.ix_(real, real)], np.asarray(gram)[np.ix_(real, real)])
    np.testing.assert_array_equal(out[np.ix_(pad, pad)], np.eye(3))
    np.testing.assert_array_equal(out[np.ix_(real, pad)], 0.0)
    np.testing.assert_array_equal(out[np.ix_(pad, real)], 0.0)


def test_cholesky_adaptive_adds_nothing_to_a_pd_matrix():
    gram = spd(7, 7)
    chol, jitter = cholesky_adaptive(jnp.asarray(gram))
    assert float(jitter) == 0.0
    np.testing.assert_allclose(chol, np.linalg.cholesky(gram), rtol=1e-12, atol=1e-14)


def test_cholesky_adaptive_recovers_a_singular_matrix():
    # Rank one: a plain Cholesky fails; the smallest jitter on the ladder that works is used.
    v = np.arange(1.0, 8.0)
    gram = jnp.asarray(np.outer(v, v))
    assert not np.all(np.isfinite(jnp.linalg.cholesky(gram)))
    chol, jitter = cholesky_adaptive(gram, initial=1e-10)
    jitter = float(jitter)
    scale = np.mean(v**2)
    ladder = 1e-10 * scale * 10.0 ** np.arange(10)
    assert jitter > 0 and np.isclose(ladder, jitter, rtol=1e-12).any()
    assert np.all(np.isfinite(chol))
    np.testing.assert_allclose(chol @ chol.T, np.asarray(gram) + jitter * np.eye(7), rtol=1e-8, atol=1e-10)
    # Smaller rungs really failed (the smallest working jitter was chosen).
    smaller = ladder[ladder < jitter * (1 - 1e-9)]
    for j in smaller:
        assert not np.all(np.isfinite(jnp.linalg.cholesky(gram + j * jnp.eye(7))))


def test_cholesky_adaptive_gives_up_with_nan_after_max_tries():
    gram = jnp.array([[1.0, 3.0], [3.0, 1.0]])  # eigenvalue -2: no small jitter makes this PD
    chol, jitter = cholesky_adaptive(gram, max_tries=3)
    assert not np.all(np.isfinite(chol))
    assert float(jitter) == pytest.approx(1e-10 * 10.0**2, rel=1e-12)  # the last rung tried


def test_cholesky_adaptive_jit_and_vmap_give_per_matrix_jitter():
    v = np.arange(1.0, 8.0)
    grams = jnp.stack([jnp.asarray(spd(7, 8)), jnp.asarray(np.outer(v, v))])
    chol_b, jitter_b = jax.jit(jax.vmap(cholesky_adaptive))(grams)
    for i in range(2):
        chol, jitter = cholesky_adaptive(grams[i])
        assert float(jitter_b[i]) == float(jitter)
        np.testing.assert_allclose(chol_b[i], chol, rtol=1e-12, atol=1e-14)
    assert float(jitter_b[0]) == 0.0 and float(jitter_b[1]) > 0.0


def test_warn_jitter_warns_only_when_jitter_was_added():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_jitter(jnp.zeros(3))
    with pytest.warns(RuntimeWarning, match="added jitter 1e-06"):
        warn_jitter(jnp.array([0.0, 1e-6]), where="posterior")
