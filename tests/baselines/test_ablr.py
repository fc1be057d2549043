"""ABLR: the BLR evidence and predictive against NumPy/SciPy, the head fit, transfer on synthetic tasks."""

import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy.optimize import minimize
from scipy.stats import multivariate_normal
from synthetic_helpers import family, related_family, transfer_vs_random

from metabo.baselines import ablr
from metabo.baselines.ablr import (
    ABLR,
    fit_head,
    head_predict,
    log_evidence,
)

# The defaults (stated, so a change of defaults does not silently change the tests).
FAST = dict(iterations=300)


def blr_data(seed=0, n=12, dim=5):
    rng = np.random.default_rng(seed)
    phi = rng.standard_normal((n, dim))
    y = phi @ rng.standard_normal(dim) + 0.3 * rng.standard_normal(n)
    return phi, y


def test_log_evidence_matches_marginal_gaussian():
    # y ~ N(0, Phi Phi^T / alpha + I / beta) after integrating the weights out.
    phi, y = blr_data()
    log_alpha, log_beta = 0.3, 1.1
    cov = phi @ phi.T / np.exp(log_alpha) + np.eye(len(y)) / np.exp(log_beta)
    expected = multivariate_normal(np.zeros(len(y)), cov).logpdf(y)
    mask = jnp.ones(len(y), dtype=bool)
    got = log_evidence(jnp.asarray(phi), jnp.asarray(y), mask, log_alpha, log_beta)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_log_evidence_ignores_padding_and_has_correct_gradients():
    phi, y = blr_data(1, n=9)
    padded_phi = np.concatenate([phi, np.full((3, phi.shape[1]), 7.0)])
    padded_y = np.concatenate([y, [5.0, -2.0, 1.0]])
    mask = jnp.arange(12) < 9
    full = log_evidence(jnp.asarray(phi), jnp.asarray(y), jnp.ones(9, dtype=bool), 0.1, 0.2)
    padded = log_evidence(jnp.asarray(padded_phi), jnp.asarray(padded_y), mask, 0.1, 0.2)
    np.testing.assert_allclose(padded, full, rtol=1e-12)
    check_grads(lambda p, a, b: log_evidence(p, jnp.asarray(y), jnp.ones(9, dtype=bool), a, b),
                (jnp.asarray(phi), 0.1, 0.2), order=1, modes=("rev",))


def test_head_predictive_matches_direct_blr_and_map_is_optimal():
    phi, y = blr_data(2, n=15, dim=4)
    mask = jnp.ones(15, dtype=bool)
    center = jnp.array([0.0, 1.0])
    head = fit_head(jnp.asarray(phi), jnp.asarray(y), mask, center, 1.0)

    # The two-level grid lands on the MAP found by a continuous optimizer (to the fine grid's step).
    def neg_posterior(t):
        prior = ((t[0] - center[0]) ** 2 + (t[1] - center[1]) ** 2) / 2.0
        return -(float(log_evidence(jnp.asarray(phi), jnp.asarray(y), mask, t[0], t[1])) - prior)

    best = minimize(neg_posterior, np.asarray(center), method="Nelder-Mead", options=dict(xatol=1e-6, fatol=1e-10)).x
    np.testing.assert_allclose([head.log_alpha, head.log_beta], best, atol=0.02)

    # Predictive of the fitted head equals the textbook BLR posterior.
    alpha, beta = np.exp(float(head.log_alpha)), np.exp(float(head.log_beta))
    precision = beta * phi.T @ phi + alpha * np.eye(4)
    weights = beta * np.linalg.solve(precision, phi.T @ y)
    query = np.random.default_rng(3).standard_normal((6, 4))
    mean, var = head_predict(head, jnp.asarray(query))
    np.testing.assert_allclose(mean, query @ weights, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(var, 1 / beta + np.sum(query @ np.linalg.inv(precision) * query, axis=1), rtol=1e-8)


# One family for the method-level tests: every training set has the same shape (6 tasks), so the
# meta-training compiles once, and the leave-one-out setups are shared through cached_setup.
LOG = related_family(0, own=1.0)


def test_meta_training_fits_the_training_tasks():
    train = LOG.without("task0")
    method = ABLR(LOG.space, train, seed=0, **FAST)
    method.setup()
    # The shared features explain each training task far better than no model: the evidence per
    # point of standardized scores under N(0, 1) is -1.42.
    padded, _ = train.to_padded()
    params = method.meta.params
    for t in range(len(train.tasks)):
        y = padded.y[t]
        z = (y - y.mean()) / y.std()
        phi = ablr.features(params.layers, jnp.asarray(padded.x[t]))
        per_point = log_evidence(phi, jnp.asarray(z), jnp.ones(len(z), dtype=bool), params.log_alpha[t],
                                 params.log_beta[t]) / len(z)
        assert float(per_point) > -1.0


# Transfer against random search on synthetic families: 10-30 s each (compilation), so in
# `make test-slow`; the benchmark measures these methods on the bundled data.
@pytest.mark.slow
def test_beats_random_search_on_related_tasks():
    ours, random = transfer_vs_random(lambda train, seed: ABLR(LOG.space, train, seed=seed, **FAST), LOG,
                                      LOG.tasks[:3], [0, 1, 2], steps=15)
    assert ours.mean() < 0.7 * random.mean()  # area under the regret curve
    assert ours[:, -1].mean() < random[:, -1].mean()


def test_rejects_bad_options_and_missing_training_data():
    with pytest.raises(ValueError, match="unknown option"):
        ABLR(LOG.space, LOG, hiddn=(3,))
    with pytest.raises(ValueError, match="training tasks"):
        ABLR(LOG.space, None).setup()


@pytest.mark.slow
def test_beats_random_search_on_independent_draws_from_one_gp():
    # Tasks are independent draws from one GP: what transfers is the prior (scale, smoothness),
    # not the location of the optimum. Final simple regret over 4 targets x 3 seeds.
    log = family(0)
    ours, random = transfer_vs_random(lambda train, seed: ABLR(log.space, train, seed=seed), log, log.tasks[:4],
                                      [0, 1, 2], steps=20)
    assert ours[:, -1].mean() < random[:, -1].mean()
