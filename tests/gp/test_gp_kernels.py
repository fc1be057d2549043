"""Kernel definitions: closed forms, the safe square root at zero, and the slopes that the
LAPACK backend's hand-written gradients use agree with automatic differentiation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from metabo.gp import kernels


def test_safe_sqrt_value_and_gradient_at_zero_and_away():
    # 0, a negative rounding error, a subnormal (below the inner fallback), and ordinary values.
    x = jnp.asarray([0.0, -1e-17, 1e-310, 1e-300, 4.0, 2.25])
    np.testing.assert_allclose(kernels.safe_sqrt(x), [0.0, 0.0, 0.0, 1e-150, 2.0, 1.5], rtol=1e-12, atol=2e-154)
    grad = jax.vmap(jax.grad(kernels.safe_sqrt))(x)
    assert np.all(np.isfinite(np.asarray(grad)))
    np.testing.assert_allclose(grad, [0.0, 0.0, 0.0, 0.5e150, 0.25, 1.0 / 3.0], rtol=1e-12)
    # Second derivatives are finite at and below zero too (the inner branch never sees x <= 0).
    second = jax.vmap(jax.grad(jax.grad(kernels.safe_sqrt)))(x[:3])
    np.testing.assert_array_equal(np.asarray(second), 0.0)


@pytest.mark.parametrize(
    "name, closed_form",
    [
        ("se", lambda r: np.exp(-0.5 * r * r)),
        ("matern32", lambda r: (1 + np.sqrt(3) * r) * np.exp(-np.sqrt(3) * r)),
        ("matern52", lambda r: (1 + np.sqrt(5) * r + 5 * r * r / 3) * np.exp(-np.sqrt(5) * r)),
    ],
)
def test_kernels_match_closed_forms(name, closed_form):
    rng = np.random.default_rng(0)
    z1, z2 = rng.random((5, 3)), rng.random((4, 3))
    z2[0] = z1[0]  # a zero distance
    r = np.sqrt(((z1[:, None, :] - z2[None, :, :]) ** 2).sum(-1))
    np.testing.assert_allclose(kernels.KERNELS[name](z1, z2, 1.7), 1.7 * closed_form(r), rtol=1e-12)


@pytest.mark.parametrize("name", ["se", "matern32", "matern52"])
def test_slope_is_the_log_derivative_of_the_profile(name):
    stationary = kernels.STATIONARY[name]
    d2 = jnp.asarray([1e-6, 0.01, 0.3, 1.0, 4.0, 25.0])
    autodiff = jax.vmap(jax.grad(lambda t: jnp.log(stationary.profile(t))))(d2)
    np.testing.assert_allclose(stationary.slope(d2), autodiff, rtol=1e-10)
    # At zero distance the slope is the right-hand limit (finite), not NaN.
    assert np.isfinite(float(stationary.slope(jnp.asarray(0.0))))


@pytest.mark.parametrize("name", ["se", "matern32", "matern52", "dot"])
def test_kernel_gradients_check_and_are_finite_at_duplicates(name):
    rng = np.random.default_rng(1)
    z = jnp.asarray(rng.random((4, 2)))
    z = z.at[1].set(z[0])  # duplicate row: zero distance off the diagonal

    def total(z):
        return jnp.sum(jnp.sin(jnp.arange(16.0).reshape(4, 4)) * kernels.KERNELS[name](z, z, 1.3, 0.2))

    grad = jax.jit(jax.grad(total))(z)
    assert np.all(np.isfinite(np.asarray(grad)))
    check_grads(lambda s: kernels.KERNELS[name](z + s, z, 1.3, 0.2), (jnp.asarray(0.1),), order=2, modes=["rev"])
