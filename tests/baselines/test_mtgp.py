"""Multi-task GP: the conditional machinery against a dense joint GP in NumPy, transfer, contract."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal
from synthetic_helpers import family, matern52, related_family, transfer_vs_random

from metabo.baselines.mtgp import (
    KAPPA_FLOOR,
    LENGTHSCALE_FLOOR,
    NOISE_FLOOR,
    MultiTaskGP,
    SharedParams,
    TargetParams,
    TargetPrior,
    Training,
    _condition_training,
    fit_target,
    latent_projections,
    predict_at,
    project_target,
    target_moments,
)
from metabo.gp.model import inverse_softplus, softplus

FAST = dict(fit_steps=150, target_steps=30)
LOG = related_family(0, own=1.0)


def small_problem(seed=0, tasks=3, per_task=6, rank=2, dim=2, n_target=5):
    """A random training block (fixed hyperparameters), its conditioning, and target data."""
    rng = np.random.default_rng(seed)
    x = rng.random((tasks * per_task, dim))
    task = np.repeat(np.arange(tasks), per_task)
    params = SharedParams(
        raw_lengthscale=inverse_softplus(jnp.asarray(rng.uniform(0.2, 0.6, dim))),
        raw_noise=inverse_softplus(jnp.asarray(0.01)),
        weights=jnp.asarray(rng.standard_normal((tasks, rank))),
        raw_kappa=inverse_softplus(jnp.asarray(rng.uniform(0.1, 0.5, tasks))),
        means=jnp.asarray(rng.standard_normal(tasks)),
    )
    y = rng.standard_normal(tasks * per_task)
    chol_inv, z = _condition_training(params, jnp.asarray(x), jnp.asarray(y), jnp.asarray(task))
    prior = TargetPrior(jnp.zeros(rank), jnp.ones(rank), jnp.asarray(0.0), jnp.asarray(1.0))
    train = Training(jnp.asarray(x), jnp.asarray(task), params, chol_inv, z, prior)
    theta = TargetParams(jnp.asarray(rng.standard_normal(rank)), inverse_softplus(jnp.asarray(0.3)), jnp.asarray(0.4))
    xt = rng.random((n_target, dim))
    yt = rng.standard_normal(n_target)
    return train, theta, x, y, task, xt, yt


def dense_joint(train, theta, x, task, xt, xq):
    """Dense NumPy joint Gram over training points, target points and queries (target task)."""
    p = train.params
    ls = np.asarray(softplus(p.raw_lengthscale)) + LENGTHSCALE_FLOOR
    w_all = np.concatenate([np.asarray(p.weights), np.asarray(theta.w)[None]])
    kappa = np.concatenate([np.asarray(softplus(p.raw_kappa)), [float(softplus(theta.raw_kappa))]]) + KAPPA_FLOOR
    b = w_all @ w_all.T + np.diag(kappa)
    target = len(kappa) - 1
    pts = np.concatenate([x, xt, xq])
    ids = np.concatenate([task, np.full(len(xt) + len(xq), target)])
    cov = b[ids][:, ids] * matern52(pts / ls, pts / ls, 1.0)
    means = np.concatenate([np.asarray(p.means), [float(theta.mean)]])[ids]
    return cov, means


def test_target_moments_equal_dense_conditioning():
    train, theta, x, y, task, xt, yt = small_problem()
    noise = float(softplus(train.params.raw_noise)) + NOISE_FLOOR
    cov, means = dense_joint(train, theta, x, task, xt, np.zeros((0, 2)))
    n = len(x)
    k_tt = cov[:n, :n] + noise * np.eye(n)
    gain = cov[n:, :n] @ np.linalg.inv(k_tt)
    expected_mean = means[n:] + gain @ (y - means[:n])
    expected_cov = cov[n:, n:] - gain @ cov[:n, n:]
    _, gram_proj, proj_z, kxx = project_target(train, jnp.asarray(xt))
    mean, moment_cov = target_moments(train, theta, gram_proj, proj_z, kxx)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(moment_cov, expected_cov, rtol=1e-8, atol=1e-10)


def test_posterior_prediction_equals_dense_joint_gp():
    train, theta, x, y, task, xt, yt = small_problem(1)
    xq = np.random.default_rng(9).random((7, 2))
    noise = float(softplus(train.params.raw_noise)) + NOISE_FLOOR
    cov, means = dense_joint(train, theta, x, task, xt, xq)
    n_obs = len(x) + len(xt)
    k_oo = cov[:n_obs, :n_obs] + noise * np.eye(n_obs)
    k_qo = cov[n_obs:, :n_obs]
    residual = np.concatenate([y, yt]) - means[:n_obs]
    expected_mean = means[n_obs:] + k_qo @ np.linalg.solve(k_oo, residual)
    expected_var = np.diag(cov[n_obs:, n_obs:] - k_qo @ np.linalg.solve(k_oo, k_qo.T))

    # Zero Adam steps: the posterior is built at exactly ``theta``; pad the target to 8 rows.
    x_pad = np.concatenate([xt, np.zeros((3, 2))])
    y_pad = np.concatenate([yt, np.zeros(3)])
    mask = jnp.arange(8) < len(xt)
    _, post = fit_target(train, theta, jnp.asarray(x_pad), jnp.asarray(y_pad), mask, 0, 0.1)
    mean, var = predict_at(train, post, jnp.asarray(xq), latent_projections(train, jnp.asarray(xq)))
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(var, expected_var, rtol=1e-6, atol=1e-9)


def test_target_fit_increases_the_conditional_likelihood():
    train, theta, x, y, task, xt, yt = small_problem(2, n_target=8)
    noise = float(softplus(train.params.raw_noise)) + NOISE_FLOOR

    def conditional_loglik(t):
        cov, means = dense_joint(train, t, x, task, xt, np.zeros((0, 2)))
        n = len(x)
        k_tt = cov[:n, :n] + noise * np.eye(n)
        gain = cov[n:, :n] @ np.linalg.inv(k_tt)
        mean = means[n:] + gain @ (y - means[:n])
        c = cov[n:, n:] - gain @ cov[:n, n:] + noise * np.eye(len(xt))
        return multivariate_normal(mean, c).logpdf(yt)

    fitted, _ = fit_target(train, theta, jnp.asarray(xt), jnp.asarray(yt), jnp.ones(8, dtype=bool), 200, 0.05)
    assert conditional_loglik(fitted) > conditional_loglik(theta) + 1.0
    assert math.isfinite(float(fitted.mean))


# Transfer against random search on synthetic families: 10-30 s each (compilation), so in
# `make test-slow`; the benchmark measures these methods on the bundled data.
@pytest.mark.slow
def test_beats_random_search_on_related_tasks():
    ours, random = transfer_vs_random(lambda train, seed: MultiTaskGP(LOG.space, train, seed=seed, **FAST), LOG,
                                      LOG.tasks[:3], [0, 1, 2], steps=15)
    assert ours.mean() < 0.7 * random.mean()
    assert ours[:, -1].mean() < random[:, -1].mean()


def test_learns_task_correlations():
    # Strongly related tasks: the fitted task covariance has large off-diagonal correlations.
    method = MultiTaskGP(LOG.space, related_family(0).without("task0"), seed=0, **FAST)
    method.setup()
    p = method.training.params
    b = np.asarray(p.weights @ p.weights.T) + np.diag(np.asarray(softplus(p.raw_kappa)))
    corr = b / np.sqrt(np.outer(np.diag(b), np.diag(b)))
    assert np.mean(corr[~np.eye(len(b), dtype=bool)]) > 0.5


def test_rejects_bad_options():
    with pytest.raises(ValueError, match="unknown option"):
        MultiTaskGP(LOG.space, LOG, rnk=2)
    with pytest.raises(ValueError, match="rank"):
        MultiTaskGP(LOG.space, LOG, rank=0)
    with pytest.raises(ValueError, match="training tasks"):
        MultiTaskGP(LOG.space, None).setup()


@pytest.mark.slow
def test_beats_random_search_on_independent_draws_from_one_gp():
    # Tasks are independent draws from one GP: what transfers is the prior (scale, smoothness),
    # not the location of the optimum. Final simple regret over 4 targets x 3 seeds.
    log = family(0)
    ours, random = transfer_vs_random(lambda train, seed: MultiTaskGP(log.space, train, seed=seed), log, log.tasks[:4],
                                      [0, 1, 2], steps=20)
    assert ours[:, -1].mean() < random[:, -1].mean()
