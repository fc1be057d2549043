"""The failure model (metabo.failure): features, the MAP fit against scikit-learn, the Laplace
Hessian against JAX's, the target update, the probit predictive by hand, the pooled fit."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metabo import failure as fm


def logistic_data(n, dim=2, seed=0):
    """Failures where u0 + 0.5 u1 is large, with label noise. -> (u [n, d], failed [n] bool)."""
    rng = np.random.default_rng(seed)
    u = rng.random((n, dim))
    logit = 6.0 * (u[:, 0] + 0.5 * u[:, 1] - 1.0)
    failed = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    return u, failed


def test_features_by_hand():
    u = np.array([[0.25, 1.0, 0.5]])
    z = 2 * u[0] - 1  # -0.5, 1, 0
    expected = [1.0, *z, z[0] * z[0], z[0] * z[1], z[0] * z[2], z[1] * z[1], z[1] * z[2], z[2] * z[2]]
    phi = np.asarray(fm.features(jnp.asarray(u)))
    assert phi.shape == (1, fm.num_features(3)) == (1, 10)
    np.testing.assert_allclose(phi[0], expected, rtol=1e-15)


def test_map_fit_matches_scikit_learn_with_the_same_penalty():
    from sklearn.linear_model import LogisticRegression

    u, failed = logistic_data(300)
    phi = np.asarray(fm.features(jnp.asarray(u)))
    precision = 2.0
    w, _ = fm.map_weights(
        jnp.asarray(phi), jnp.asarray(failed, dtype=float), jnp.ones(len(u), bool), jnp.zeros(phi.shape[1]), precision
    )
    # sklearn minimizes C * sum(logloss) + |w|^2 / 2: C = 1 / precision; the constant feature
    # is in phi, so no separate (unpenalized) intercept.
    reference = LogisticRegression(C=1.0 / precision, fit_intercept=False, tol=1e-12, max_iter=10_000)
    reference.fit(phi, failed)
    np.testing.assert_allclose(np.asarray(w), reference.coef_[0], rtol=1e-5, atol=1e-6)


def test_laplace_hessian_and_masking():
    u, failed = logistic_data(40, seed=1)
    phi = jnp.asarray(fm.features(jnp.asarray(u)))
    f = jnp.asarray(failed, dtype=float)
    mask = jnp.asarray(np.arange(40) < 30)  # the last 10 rows are padding
    prior_mean = jnp.full(phi.shape[1], 0.3)
    w, hess = fm.map_weights(phi, f, mask, prior_mean, 0.5)

    def neg_log_posterior(v):  # written out independently of the module
        a = phi[:30] @ v
        return jnp.sum(jnp.log1p(jnp.exp(a)) - f[:30] * a) + 0.25 * jnp.sum((v - prior_mean) ** 2)

    # Compiled: eager differentiation would compile each small operation on its own.
    grad, expected = jax.jit(lambda v: (jax.grad(neg_log_posterior)(v), jax.hessian(neg_log_posterior)(v)))(w)
    np.testing.assert_allclose(np.asarray(grad), 0.0, atol=1e-9)
    np.testing.assert_allclose(np.asarray(hess), np.asarray(expected), rtol=1e-9, atol=1e-12)


def test_prediction_is_the_probit_approximation_by_hand():
    rng = np.random.default_rng(2)
    p = fm.num_features(2)
    mean = rng.normal(size=p)
    root = rng.normal(size=(p, p)) * 0.3
    cov = root @ root.T
    u = rng.random((7, 2))
    phi = np.asarray(fm.features(jnp.asarray(u)))
    mu = phi @ mean
    var = np.einsum("ip,pq,iq->i", phi, cov, phi)
    p_fail = 1.0 / (1.0 + np.exp(-mu / np.sqrt(1.0 + math.pi * var / 8.0)))
    posterior = fm.FailurePosterior(jnp.asarray(mean), jnp.asarray(cov))
    np.testing.assert_allclose(np.asarray(fm.log_p_ok(posterior, jnp.asarray(u))), np.log1p(-p_fail), rtol=1e-12)
    np.testing.assert_allclose(fm.failure_probability(posterior, u), p_fail, rtol=1e-12)


def test_update_without_trials_is_the_prior_and_trials_move_it_the_right_way():
    weights = np.zeros(fm.num_features(2))
    weights[0] = -2.0  # about 12% failures everywhere before the task's own trials
    params = fm.FailureParams(weights, np.asarray(1.0))
    empty = fm.update(params, np.zeros((0, 2)), np.zeros(0))
    np.testing.assert_allclose(np.asarray(empty.mean), weights, atol=1e-12)
    np.testing.assert_allclose(np.asarray(empty.cov), np.eye(len(weights)), atol=1e-12)

    # The task fails in its high-u0 corner and works at low u0.
    rng = np.random.default_rng(3)
    bad = np.column_stack([rng.uniform(0.85, 1.0, 6), rng.random(6)])
    good = np.column_stack([rng.uniform(0.0, 0.4, 10), rng.random(10)])
    x = np.concatenate([bad, good])
    failed = np.concatenate([np.ones(6, bool), np.zeros(10, bool)])
    posterior = fm.update(params, x, failed)
    probe = np.array([[0.95, 0.5], [0.15, 0.5]])
    before = fm.failure_probability(empty, probe)
    after = fm.failure_probability(posterior, probe)
    assert after[0] > before[0] + 0.2  # where it failed: much more likely to fail
    assert after[1] < before[1]  # where it worked: less likely
    # More evidence, less uncertainty on the logit at the observed corner.
    phi = np.asarray(fm.features(jnp.asarray(probe)))
    assert phi[0] @ np.asarray(posterior.cov) @ phi[0] < phi[0] @ np.asarray(empty.cov) @ phi[0]


def test_update_rejects_a_dimension_mismatch():
    params = fm.FailureParams(np.zeros(fm.num_features(2)), np.asarray(1.0))
    with pytest.raises(ValueError, match="do not fit 3-D inputs"):
        fm.update(params, np.zeros((2, 3)), np.zeros(2))


def test_pooled_fit_finds_the_shared_region_and_a_task_scale():
    # Three tasks sharing one failure boundary, one more offset: the pooled weights predict the
    # shared region, and the evidence prefers a finite task scale on the grid.
    xs, fs = [], []
    for t in range(4):
        u, failed = logistic_data(120, seed=10 + t)
        if t == 3:
            failed = (u[:, 0] + 0.5 * u[:, 1]) > 1.2
        xs.append(u)
        fs.append(failed)
    x = np.stack(xs)
    f = np.stack(fs)
    mask = np.ones(f.shape, bool)
    mask[0, 100:] = False  # padding rows are ignored
    params, record = fm.fit_failure_model(x, f, mask)
    assert float(params.scale) in fm.SCALE_GRID and record["scale"] == float(params.scale)
    assert len(record["evidence"]) == len(fm.SCALE_GRID) and np.all(np.isfinite(record["evidence"]))
    assert record["points"] == 4 * 120 - 20
    prior = fm.update(params, np.zeros((0, 2)), np.zeros(0))
    p = fm.failure_probability(prior, np.array([[0.95, 0.95], [0.1, 0.1]]))
    assert p[0] > 0.7 and p[1] < 0.1
