"""Acquisitions on hand-made posteriors (mean, std), against closed forms computed with scipy,
asymptotic series in the far tail, and finite-difference gradient checks."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy.special import erfcx
from scipy.stats import norm

from metabo.bo import acquisitions as acq

# Compiled once per shape: eager execution dispatches the continued fraction op by op.
log_ei = jax.jit(acq.log_ei)
expected_improvement = jax.jit(acq.expected_improvement)
log_pi = jax.jit(acq.log_probability_of_improvement)
pi = jax.jit(acq.probability_of_improvement)


def scipy_ei(mean, std, best):
    z = (mean - best) / std
    return std * (z * norm.cdf(z) + norm.pdf(z))


def test_ei_matches_closed_form_on_moderate_inputs():
    # |z| <= 6, where the textbook formula has no cancellation to speak of.
    rng = np.random.default_rng(0)
    std = np.exp(rng.uniform(-2, 2, size=200))
    best = 0.3
    mean = best + std * rng.uniform(-6, 6, size=200)
    expected = scipy_ei(mean, std, best)
    np.testing.assert_allclose(expected_improvement(mean, std, best), expected, rtol=1e-10)
    np.testing.assert_allclose(log_ei(mean, std, best), np.log(expected), rtol=1e-10)


def test_log_h_agrees_with_erfcx_form_across_the_switch():
    # log h(z) = log phi(z) + log1p(z sqrt(pi/2) erfcx(-z/sqrt2)): an independent formula that is
    # accurate to ~1e-12 for |z| <= 30.
    z = np.linspace(-30.0, 30.0, 1201)
    expected = norm.logpdf(z) + np.log1p(z * np.sqrt(np.pi / 2) * erfcx(-z / np.sqrt(2)))
    got = np.asarray(log_ei(jnp.asarray(z), 1.0, 0.0))
    np.testing.assert_allclose(got, expected, rtol=1e-11)


@pytest.mark.parametrize("u", [40.0, 1e3, 1e6, 1e20, 1e60, 1e99])
def test_log_ei_far_tail_matches_asymptotic_series(u):
    # For z = -u, h(z) = phi(z) u^-2 (1 - 3 u^-2 + 15 u^-4 - 105 u^-6 + 945 u^-8 - 10395 u^-10 ...),
    # the terms being (-1)^k (2k+1)!!; six terms are exact to float64 for u >= 40.
    v = u**-2
    series = v * (1 - 3 * v + 15 * v**2 - 105 * v**3 + 945 * v**4 - 10395 * v**5) if u < 1e50 else v
    log_series = math.log(series) if series > 0 else -2 * math.log(u)
    expected = -0.5 * u * u - 0.5 * math.log(2 * math.pi) + log_series
    got = float(log_ei(-u, 1.0, 0.0))
    assert got == pytest.approx(expected, rel=1e-13)


def test_log_ei_large_positive_z_is_the_mean_gap():
    # For z >> 0, EI = mean - best (+ a vanishing tail).
    assert float(log_ei(1e50, 1.0, 0.0)) == pytest.approx(math.log(1e50), rel=1e-15)
    assert float(log_ei(5.0, 1e-100, 2.0)) == pytest.approx(math.log(3.0), rel=1e-15)
    assert float(log_ei(1e100, 1e-100, -1e100)) == pytest.approx(math.log(2e100), rel=1e-15)


EXTREMES = [-1e100, -1e10, -1.0, -1e-100, 0.0, 1e-100, 1.0, 1e10, 1e100]
STDS = [1e-100, 1e-10, 1.0, 1e10, 1e100]


def test_log_ei_and_pi_are_finite_with_finite_gradients_at_extremes():
    points = np.array(list(itertools.product(EXTREMES, STDS, [-1e100, -1.0, 0.0, 1.0, 1e100])))
    mean, std, best = (jnp.asarray(points[:, i]) for i in range(3))
    for fn in (acq.log_ei, acq.log_probability_of_improvement):
        values = np.asarray(jax.jit(fn)(mean, std, best))
        grads = jax.jit(jax.vmap(jax.grad(fn, argnums=(0, 1, 2))))(mean, std, best)
        assert np.all(np.isfinite(values)), points[~np.isfinite(values)]
        for g in grads:
            assert np.all(np.isfinite(np.asarray(g))), (fn.__name__, points[~np.isfinite(np.asarray(g))])


def test_log_ei_is_monotone_in_mean_and_std():
    fn = jax.jit(acq.log_ei)
    mean = jnp.linspace(-60.0, 60.0, 601)
    values = np.asarray(fn(mean, jnp.ones(601), 0.0))
    assert np.all(np.diff(values) > 0)
    std = jnp.logspace(-3, 3, 601)
    values = np.asarray(fn(jnp.zeros(601), std, 1.0))
    assert np.all(np.diff(values) > 0)


# One compiled function shared by the parametrized gradient checks (eager ops are slow here).
_log_ei_jit = jax.jit(lambda m, s: acq.log_ei(m, s, 0.0))


@pytest.mark.parametrize("mean", [-30.0, -5.0, -4.9, 0.3, 12.0, 39.0, 41.0])
def test_log_ei_gradient_check(mean):
    # Both branches, their switch at z = -5, and the far branch at z = 40.
    check_grads(_log_ei_jit, (mean, 1.0), order=1, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)


def test_log_ei_gradient_matches_closed_form_in_tail():
    # d log EI / d mean = Phi(z) / (std h(z)), both from their asymptotic series at z = -u
    # (Phi/phi = u^-1 (1 - v + 3v^2 - 15v^3 ...), h/phi = v (1 - 3v + 15v^2 ...), v = u^-2).
    grad = jax.jit(jax.vmap(jax.grad(acq.log_ei), in_axes=(0, None, None)))
    us = np.array([50.0, 1e4, 1e8])
    got = np.asarray(grad(jnp.asarray(-us), 1.0, 0.0))
    for u, g in zip(us, got, strict=True):
        v = u**-2
        mills = (1 - v + 3 * v**2 - 15 * v**3 + 105 * v**4 - 945 * v**5) / u
        h = v * (1 - 3 * v + 15 * v**2 - 105 * v**3 + 945 * v**4 - 10395 * v**5)
        assert g == pytest.approx(mills / h, rel=1e-12)


def test_pi_matches_closed_form():
    rng = np.random.default_rng(1)
    mean, std = rng.normal(size=50), np.exp(rng.normal(size=50))
    best, zeta = 0.2, 0.1
    expected = norm.cdf((mean - best - zeta) / std)
    np.testing.assert_allclose(pi(mean, std, best, zeta), expected, rtol=1e-12)
    np.testing.assert_allclose(
        log_pi(mean, std, best, zeta),
        norm.logcdf((mean - best - zeta) / std),
        rtol=1e-12,
        atol=1e-15,  # jax's log_ndtr near 0 is exact only in absolute terms
    )
    check_grads(
        jax.jit(lambda m: acq.log_probability_of_improvement(m, 0.7, 0.2, 0.1)), (jnp.asarray(mean),), order=1
    )


def test_ucb_and_gp_ucb_beta():
    np.testing.assert_allclose(acq.ucb(jnp.array([1.0, 2.0]), jnp.array([0.5, 2.0]), 4.0), [2.0, 6.0])
    # Srinivas et al. Theorem 1: 2 log(|D| t^2 pi^2 / (6 delta)).
    assert float(acq.gp_ucb_beta(7, num_candidates=1000, delta=0.1)) == pytest.approx(
        2 * math.log(1000 * 49 * math.pi**2 / 0.6)
    )
    assert float(acq.gp_ucb_beta(7, dim=4, delta=0.1)) == pytest.approx(2 * math.log(7**4 * math.pi**2 / 0.3))
    betas = np.asarray([acq.gp_ucb_beta(t, num_candidates=50) for t in range(1, 20)])
    assert np.all(np.diff(betas) > 0)
    with pytest.raises(ValueError, match="exactly one"):
        acq.gp_ucb_beta(3)
    with pytest.raises(ValueError, match="delta"):
        acq.gp_ucb_beta(3, dim=2, delta=1.5)


def test_thompson_samples_have_the_right_moments():
    mean = jnp.array([0.5, -1.0, 2.0])
    a = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 0.3, 0.2]])
    cov = jnp.asarray(a @ a.T)
    sample = jax.jit(acq.thompson_sample, static_argnames="num_samples")
    draws = np.asarray(sample(jax.random.PRNGKey(0), mean, cov, num_samples=40000))
    assert draws.shape == (40000, 3)
    np.testing.assert_allclose(draws.mean(0), mean, atol=0.03)
    np.testing.assert_allclose(np.cov(draws.T), cov, atol=0.03)
    one = sample(jax.random.PRNGKey(1), mean, cov)
    assert one.shape == (3,)
    # Same key, same draw; a singular covariance still samples (adaptive jitter).
    np.testing.assert_array_equal(one, sample(jax.random.PRNGKey(1), mean, cov))
    singular = jnp.ones((3, 3))
    draw = np.asarray(sample(jax.random.PRNGKey(2), mean, singular))
    assert np.all(np.isfinite(draw))
    np.testing.assert_allclose(draw - np.asarray(mean), (draw - np.asarray(mean))[0], atol=1e-4)


def test_jit_equals_eager():
    mean, std = jnp.linspace(-40, 5, 9), jnp.linspace(0.1, 3, 9)
    np.testing.assert_allclose(jax.jit(acq.log_ei)(mean, std, 0.5), acq.log_ei(mean, std, 0.5), rtol=1e-14)
