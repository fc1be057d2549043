"""The constrained acquisition of the BO core: log EI / log PI + log P(ok) against its closed form
(a numpy / scipy GP posterior and the probit predictive by hand), on the finite set and the box;
UCB untouched; the Designer's use of a prior's failure model."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from metabo import failure as fm
from metabo.bo import engine
from metabo.bo.engine import Acquisition
from metabo.bo.single_task import DEFAULT_MODEL

DIM, M = 2, 200
LENGTHSCALE = np.array([0.2, 0.35])
SIGNAL, NOISE, CONSTANT = 1.7, 1e-3, 0.4


def prior():
    model = DEFAULT_MODEL
    params = model.with_hyper(
        model.init(jax.random.PRNGKey(0), DIM), lengthscale=jnp.asarray(LENGTHSCALE), signal=SIGNAL, noise=NOISE
    )
    return model, params._replace(mean_constant=jnp.asarray(CONSTANT))


def numpy_posterior(x, y, xq):
    """Textbook GP posterior (Matern 5/2, latent f) with scipy's Cholesky. -> mean [m], std [m]."""
    from scipy.linalg import cho_factor, cho_solve

    def kernel(a, b):
        r = math.sqrt(5) * np.sqrt(np.sum(((a[:, None, :] - b[None, :, :]) / LENGTHSCALE) ** 2, axis=-1))
        return SIGNAL * (1 + r + r * r / 3) * np.exp(-r)

    factor = cho_factor(kernel(x, x) + NOISE * np.eye(len(x)), lower=True)
    cross = kernel(xq, x)
    mean = CONSTANT + cross @ cho_solve(factor, y - CONSTANT)
    var = SIGNAL - np.sum(cross * cho_solve(factor, cross.T).T, axis=1)
    return mean, np.sqrt(np.maximum(var, 0))


def data(n, seed=0, m=M):
    rng = np.random.default_rng(seed)
    x = rng.random((n, DIM))
    # Best near u0 = 1, where the failure model below says runs fail.
    y = np.sin(3 * x[:, 0]) * np.cos(3 * x[:, 1]) + 0.5 + x[:, 0]
    return x, y, rng.random((m, DIM))

# P(fail) rises steeply with u0: the logit is 8 * z0 (z0 = 2 u0 - 1), plus a fixed uncertainty.
WEIGHTS = np.zeros(fm.num_features(DIM))
WEIGHTS[1] = 8.0
COV = 0.2 * np.eye(len(WEIGHTS))


def failure_posterior():
    return fm.FailurePosterior(jnp.asarray(WEIGHTS), jnp.asarray(COV))


def log_p_ok_by_hand(u):
    z = 2 * u - 1
    phi = np.column_stack([np.ones(len(u)), z, z[:, 0] ** 2, z[:, 0] * z[:, 1], z[:, 1] ** 2])
    mu = phi @ WEIGHTS
    var = np.einsum("ip,pq,iq->i", phi, COV, phi)
    return -np.logaddexp(0.0, mu / np.sqrt(1 + math.pi * var / 8))  # log sigmoid(-kappa mu)


def test_finite_constrained_ei_and_pi_match_the_closed_form():
    model, params = prior()
    x, y, candidates = data(9)
    mean, std = numpy_posterior(x, y, candidates)
    best = y.max()
    z = (mean - best) / std
    log_ei = np.log(std * (z * norm.cdf(z) + norm.pdf(z)))
    log_ok = log_p_ok_by_hand(candidates)
    failure = failure_posterior()
    np.testing.assert_allclose(
        engine.score_candidates(model, params, x, y, candidates, "ei", failure=failure), log_ei + log_ok, rtol=1e-7
    )
    log_pi = norm.logcdf((mean - best - 0.05) / std)
    np.testing.assert_allclose(
        engine.score_candidates(model, params, x, y, candidates, Acquisition("pi", zeta=0.05), failure=failure),
        log_pi + log_ok,
        rtol=1e-7,
    )
    # UCB is not a probability or an expected gain: the failure model leaves it as it was.
    np.testing.assert_allclose(
        engine.score_candidates(model, params, x, y, candidates, "ucb", failure=failure),
        engine.score_candidates(model, params, x, y, candidates, "ucb"),
        rtol=1e-12,
    )
    # The pick is the argmax of the constrained values, and it differs from plain EI's here.
    index = engine.suggest_finite(model, params, x, y, candidates, None, "ei", failure=failure)
    assert index == int(np.argmax(log_ei + log_ok))


def test_box_maximizes_the_constrained_acquisition():
    model, params = prior()
    x, y, _ = data(9)
    failure = failure_posterior()
    key = jax.random.PRNGKey(0)
    point = engine.suggest_box(model, params, x, y, key, "ei", failure=failure)
    dense = np.random.default_rng(3).random((10, M, DIM))
    best_dense = max(engine.score_candidates(model, params, x, y, chunk, "ei", failure=failure).max() for chunk in dense)
    at_point = engine.score_candidates(
        model, params, x, y, np.concatenate([point[None], dense[0, 1:]]), "ei", failure=failure
    )[0]
    assert at_point >= best_dense - 1e-6
    assert fm.failure_probability(failure, point[None])[0] < 0.5


def test_designer_uses_the_priors_failure_model_and_the_tasks_statuses():
    from metabo.bo.designer import Designer
    from metabo.pretrain import Prior
    from metabo.space import Parameter, Space

    space = Space(tuple(Parameter(f"p{j}", "real", 0.0, 1.0) for j in range(DIM)))
    model, params = prior()
    base = Prior(model, params, space)
    with_failure = Prior(model, params, space, failure=fm.FailureParams(WEIGHTS, np.asarray(1.0)))
    x, y, candidates = data(9)
    scores = y.copy()
    scores[[2, 5]] = np.nan  # two failures of the task's own

    def pick(prior, **options):
        designer = Designer(space, prior, candidates=candidates, **options)
        designer.update(x, scores)
        return designer, designer.suggest_indices(1)[0]

    plain, plain_index = pick(base)
    off, off_index = pick(with_failure)  # off by default
    on, on_index = pick(with_failure, failure_model=True)
    assert plain.failure is None and off.failure is None and plain_index == off_index
    expected = fm.update(with_failure.failure, x, np.isnan(scores))
    np.testing.assert_allclose(np.asarray(on.failure.mean), np.asarray(expected.mean), rtol=1e-10)
    np.testing.assert_allclose(on.failure_probability(candidates), fm.failure_probability(expected, candidates), rtol=1e-10)
    assert off.failure_probability(candidates) is None
    # The constrained pick is the argmax of log EI + log P(ok) under the updated model.
    x_model, y_model = on.model_scores()
    values = engine.score_candidates(model, params, x_model, y_model, candidates, "ei", failure=expected)
    assert on_index == int(np.argmax(values))
    # Here plain EI's pick lies where this task is more likely to fail than the constrained one's.
    p_fail = on.failure_probability(candidates)
    assert on_index != plain_index and p_fail[on_index] < p_fail[plain_index]


@pytest.mark.parametrize("acquisition", ["ucb", "ts"])
def test_designer_ignores_the_failure_model_for_ucb_and_thompson(acquisition):
    from metabo.bo.designer import Designer
    from metabo.pretrain import Prior
    from metabo.space import Parameter, Space

    space = Space(tuple(Parameter(f"p{j}", "real", 0.0, 1.0) for j in range(DIM)))
    model, params = prior()
    x, y, candidates = data(9)
    picks = []
    for failure in (None, fm.FailureParams(WEIGHTS, np.asarray(1.0))):
        designer = Designer(space, Prior(model, params, space, failure=failure), acquisition=acquisition,
                            candidates=candidates, seed=4, failure_model=True)
        designer.update(x, y)
        picks.append(designer.suggest_indices(1)[0])
    assert picks[0] == picks[1]


def test_optimizer_and_sampler_pass_the_option_to_the_core():
    from metabo.bo.designer import Designer
    from metabo.bo.optimizer import Optimizer
    from metabo.pretrain import Prior
    from metabo.space import Objective, Parameter, Space

    space = Space(tuple(Parameter(f"p{j}", "real", 0.0, 1.0) for j in range(DIM)), Objective("y", "maximize"))
    model, params = prior()
    with_failure = Prior(model, params, space, failure=fm.FailureParams(WEIGHTS, np.asarray(1.0)))
    x, y, candidates = data(9)
    scores = y.copy()
    scores[[2, 5]] = np.nan
    for failure_model in (True, False):
        designer = Designer(space, with_failure, candidates=candidates, failure_model=failure_model)
        designer.update(x, scores)
        expected = candidates[designer.suggest_indices(1)[0]]
        opt = Optimizer(space, prior=with_failure, candidates=candidates, failure_model=failure_model)
        for point, score in zip(x, scores, strict=True):
            config = dict(zip(space.names, point, strict=True))
            opt.tell(config, None if np.isnan(score) else float(score), status="failed" if np.isnan(score) else "ok")
        asked = opt.ask()
        np.testing.assert_allclose([asked[n] for n in space.names], expected, rtol=1e-12)
    optuna = pytest.importorskip("optuna")  # noqa: F841
    from metabo.integrations.optuna import PretrainedGPSampler

    assert PretrainedGPSampler(with_failure).failure_model is False
    assert PretrainedGPSampler(with_failure, failure_model=True).failure_model is True
