"""The functional BO core against an independent numpy/scipy GP + acquisition computation."""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.linalg import cho_factor, cho_solve
from scipy.stats import norm

from metabo.bo import engine
from metabo.bo.engine import Acquisition, AllObservedError
from metabo.bo.single_task import DEFAULT_MODEL
from metabo.space import Parameter, Space

DIM = 2
LENGTHSCALE = np.array([0.2, 0.35])
SIGNAL, NOISE, CONSTANT = 1.7, 1e-3, 0.4


def prior():
    model = DEFAULT_MODEL
    params = model.with_hyper(
        model.init(jax.random.PRNGKey(0), DIM),
        lengthscale=jnp.asarray(LENGTHSCALE),
        signal=SIGNAL,
        noise=NOISE,
    )
    return model, params._replace(mean_constant=jnp.asarray(CONSTANT))


def numpy_matern52(a, b):
    d = np.sqrt(np.sum(((a[:, None, :] - b[None, :, :]) / LENGTHSCALE) ** 2, axis=-1))
    r = math.sqrt(5) * d
    return SIGNAL * (1 + r + r * r / 3) * np.exp(-r)


def numpy_posterior(x, y, xq):
    """Textbook GP posterior (latent f) with scipy's Cholesky. -> mean [m], std [m]."""
    factor = cho_factor(numpy_matern52(x, x) + NOISE * np.eye(len(x)), lower=True)
    cross = numpy_matern52(xq, x)
    mean = CONSTANT + cross @ cho_solve(factor, y - CONSTANT)
    var = SIGNAL - np.sum(cross * cho_solve(factor, cross.T).T, axis=1)
    return mean, np.sqrt(np.maximum(var, 0))


M = 200  # one candidate-set size throughout: each new size would compile again


def data(n, seed=0, m=M):
    rng = np.random.default_rng(seed)
    x = rng.random((n, DIM))
    y = np.sin(5 * x[:, 0]) * np.cos(3 * x[:, 1]) + 0.5
    candidates = rng.random((m, DIM))
    return x, y, candidates


def test_finite_ei_and_gp_ucb_match_numpy_scipy():
    model, params = prior()
    x, y, candidates = data(9)
    mean, std = numpy_posterior(x, y, candidates)
    best = y.max()
    z = (mean - best) / std
    ei = std * (z * norm.cdf(z) + norm.pdf(z))
    np.testing.assert_allclose(
        np.exp(engine.score_candidates(model, params, x, y, candidates, "ei")), ei, rtol=1e-7, atol=1e-12
    )
    observed = np.zeros(len(candidates), dtype=bool)
    observed[np.argsort(-ei)[:3]] = True  # the three best are taken: the fourth must come out
    index = engine.suggest_finite(model, params, x, y, candidates, observed, "ei")
    assert index == int(np.argsort(-ei)[3])
    # GP-UCB at step t = n + 1 with Srinivas et al.'s finite-set beta_t.
    beta = 2 * math.log(len(candidates) * (len(x) + 1) ** 2 * math.pi**2 / (6 * 0.1))
    np.testing.assert_allclose(
        engine.score_candidates(model, params, x, y, candidates, "gp-ucb"),
        mean + math.sqrt(beta) * std,
        rtol=1e-8,
    )
    pi = norm.logcdf((mean - best - 0.05) / std)
    np.testing.assert_allclose(
        engine.score_candidates(model, params, x, y, candidates, Acquisition("pi", zeta=0.05)), pi, rtol=1e-7
    )


def test_posterior_mean_and_std_match_numpy_scipy():
    model, params = prior()
    x, y, candidates = data(9)
    mean, std = engine.posterior(model, params, x, y, candidates)
    expected_mean, expected_std = numpy_posterior(x, y, candidates)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(std, expected_std, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(engine.posterior_mean(model, params, x, y, candidates), expected_mean, rtol=1e-9, atol=1e-12)


def test_no_observations_use_the_best_prior_mean_as_incumbent():
    model, params = prior()
    _, _, candidates = data(0)
    values = engine.score_candidates(model, params, np.zeros((0, DIM)), np.zeros(0), candidates, "ei")
    # Constant prior: every candidate has mean = best and std = sqrt(signal): EI = std phi(0).
    np.testing.assert_allclose(np.exp(values), math.sqrt(SIGNAL) * norm.pdf(0.0), rtol=1e-10)


def test_finite_suggestions_never_repeat():
    model, params = prior()
    x, y, candidates = data(6, seed=1)
    observed = np.zeros(M, dtype=bool)
    observed[:-20] = True
    for _ in range(19):
        index = engine.suggest_finite(model, params, x, y, candidates, observed, "ei")
        assert not observed[index]
        observed[index] = True
    with pytest.raises(AllObservedError):
        engine.suggest_finite(model, params, x, y, candidates, np.ones(M, dtype=bool))
    with pytest.raises(ValueError, match="key"):
        engine.suggest_finite(model, params, x, y, candidates, None, "ts")


def test_thompson_sampling_on_a_finite_set_follows_the_posterior():
    # With a near-certain posterior, the draw's argmax is the posterior mean's argmax.
    model, params = prior()
    x, y, _ = data(9)
    # Candidates right next to the observed points, where the posterior is sharp.
    candidates = x[np.arange(M) % 9] + 1e-5 * np.random.default_rng(0).random((M, DIM))
    for i in range(5):
        pick = engine.suggest_finite(model, params, x, y, candidates, None, "ts", key=jax.random.PRNGKey(i))
        assert pick % 9 == int(np.argmax(y))


def test_growing_history_reuses_compiled_code():
    model, params = prior()
    x, y, candidates = data(12)
    engine.suggest_finite(model, params, x[:3], y[:3], candidates)
    size = engine._finite_scores._cache_size()
    for n in range(4, 13):
        engine.suggest_finite(model, params, x[:n], y[:n], candidates)
    assert engine._finite_scores._cache_size() == size


def test_box_suggestion_beats_a_dense_random_sweep_and_respects_rounding():
    model, params = prior()
    x, y, _ = data(9)
    key = jax.random.PRNGKey(0)
    point = engine.suggest_box(model, params, x, y, key, "ei")
    assert point.shape == (DIM,) and np.all((point >= 0) & (point <= 1))
    dense = np.random.default_rng(3).random((20, M, DIM))
    best_dense = max(engine.score_candidates(model, params, x, y, chunk, "ei").max() for chunk in dense)
    at_point = engine.score_candidates(
        model, params, x, y, np.concatenate([point[None], dense[0, 1:]]), "ei"
    )[0]
    assert at_point >= best_dense - 1e-6
    # An integer parameter: the suggestion lies on its grid (unit values k/4 for 0..4).
    space = Space((Parameter("a", "int", 0, 4), Parameter("b", "real", 0.0, 1.0)))
    rounded = engine.suggest_box(model, params, x, y, key, "ei", round_fn=space.round_unit)
    assert rounded[0] * 4 == pytest.approx(round(rounded[0] * 4), abs=1e-12)
    # Excluded points are never returned, even when they are the optimum.
    again = engine.suggest_box(
        model, params, x, y, key, "ei", round_fn=space.round_unit, exclude=np.concatenate([x, rounded[None]])
    )
    assert np.max(np.abs(again - rounded)) > 1e-9


def test_acquisition_parsing():
    assert Acquisition.parse("GP_UCB").name == "gp-ucb"
    assert Acquisition.parse({"name": "ucb", "beta": 2}).beta == 2.0
    with pytest.raises(ValueError, match="unknown acquisition"):
        Acquisition.parse("nope")
    with pytest.raises(ValueError, match="unknown acquisition setting"):
        Acquisition.parse({"name": "ei", "xi": 1})
    with pytest.raises(ValueError, match="delta"):
        Acquisition("gp-ucb", delta=2.0)


def test_singular_gram_falls_back_to_adaptive_jitter_with_a_warning():
    from metabo.gp import GPModel

    model = GPModel(mean="constant", kernel="matern52", noise_floor=0.0)
    params = model.with_hyper(
        model.init(jax.random.PRNGKey(0), DIM),
        lengthscale=jnp.asarray(LENGTHSCALE),
        signal=SIGNAL,
        noise=1e-300,
    )
    x, y, candidates = data(6)
    x, y = np.concatenate([x, x[:3]]), np.concatenate([y, y[:3]])  # exact repeats: singular
    with pytest.warns(RuntimeWarning, match="jitter"):
        values = engine.score_candidates(model, params, x, y, candidates, "ei")
    assert np.all(np.isfinite(values))


@pytest.mark.parametrize(
    "lengthscale, noise",
    [(1.001e-3, 1e-3), (1e4, 1e-3), (0.2, 1e-12), (1e4, 1e-12)],
    ids=["lengthscale-at-its-floor", "huge-lengthscale", "tiny-noise", "huge-lengthscale-tiny-noise"],
)
@pytest.mark.parametrize("acquisition", ["ei", "pi", "gp-ucb"])
def test_extreme_hyperparameters_and_near_duplicates_never_give_nan_suggestions(lengthscale, noise, acquisition):
    from metabo.gp import GPModel

    model = GPModel(mean="constant", kernel="matern52", noise_floor=0.0)
    params = model.with_hyper(
        model.init(jax.random.PRNGKey(0), DIM), lengthscale=jnp.full(DIM, lengthscale), signal=SIGNAL, noise=noise
    )
    x, y, candidates = data(8)
    # Near-duplicates: points 1e-13 apart with different values (an exactly singular Gram up to noise).
    x = np.concatenate([x, x[:3] + 1e-13])
    y = np.concatenate([y, y[:3] + 0.01])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the jitter warning is expected here
        scores = engine.score_candidates(model, params, x, y, candidates, acquisition)
        index = engine.suggest_finite(model, params, x, y, candidates, acquisition=acquisition)
        point = engine.suggest_box(model, params, x, y, jax.random.PRNGKey(1), acquisition=acquisition, steps=20, num_starts=4)
    assert not np.isnan(scores).any() and 0 <= index < M and scores[index] == np.max(scores)
    assert point.shape == (DIM,) and np.all(np.isfinite(point)) and np.all((point >= 0) & (point <= 1))


def test_prior_mean_matches_the_model_and_compiles_once_per_bucket():
    from metabo.gp.model import GPModel

    model = GPModel(mean="mlp", kernel="matern52")
    params = model.init(jax.random.PRNGKey(3), DIM)
    x, _, _ = data(70, seed=5)
    np.testing.assert_allclose(engine.prior_mean(model, params, x[:5]), np.asarray(model.mean_fn(params, jnp.asarray(x[:5]))), rtol=1e-12, atol=1e-12)
    size = engine._prior_mean._cache_size()
    for n in range(6, 40):  # the same bucket as 5 rows: nothing new to compile
        np.testing.assert_allclose(engine.prior_mean(model, params, x[:n]), np.asarray(model.mean_fn(params, jnp.asarray(x[:n]))), rtol=1e-12, atol=1e-12)
    assert engine._prior_mean._cache_size() == size
    assert engine.prior_mean(model, params, x[:70]).shape == (70,)
