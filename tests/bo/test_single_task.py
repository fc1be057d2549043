"""Single-task fits (type-II ML and MAP): invariance to the units of y, likelihood at least that
of the true parameters, local optimality under an independent NumPy objective, the prior's closed
form, bounds, degenerate inputs, and one compilation per size bucket.

Sizes stay within one bucket (n <= 16, d = 2) so the whole file compiles the fit once."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metabo.bo import single_task
from metabo.bo.single_task import DEFAULT_MODEL, fit_single_task, unstandardize
from metabo.gp import GPModel, condition, negative_log_likelihood, predict
from metabo.gp.padding import bucket_size

DIM = 2


@jax.jit
def posterior(params, x, y, xq):
    """Posterior mean and noisy variance at xq under the default model (compiled once per shape:
    op-by-op eager execution is slow here)."""
    return predict(DEFAULT_MODEL, params, condition(DEFAULT_MODEL, params, x, y), xq, include_noise=True)


nll = jax.jit(lambda params, x, y: negative_log_likelihood(DEFAULT_MODEL, params, x, y))


def gp_draw(n, seed, lengthscale=(0.25, 0.6), signal=2.0, noise=0.01, constant=5.0):
    """x: [n, 2] uniform, y: [n] drawn from the default model with known hyperparameters."""
    model = DEFAULT_MODEL
    true = model.with_hyper(
        model.init(jax.random.PRNGKey(0), DIM),
        lengthscale=jnp.asarray(lengthscale),
        signal=signal,
        noise=noise,
    )._replace(mean_constant=jnp.asarray(constant))
    rng = np.random.default_rng(seed)
    x = rng.random((n, DIM))
    gram = np.asarray(model.cov(true, x, x)) + noise * np.eye(n)
    y = constant + np.linalg.cholesky(gram) @ rng.standard_normal(n)
    return x, y, true


def test_bucket_size():
    assert [bucket_size(n) for n in (0, 1, 16, 17, 32, 33, 100)] == [16, 16, 16, 32, 32, 64, 128]
    assert bucket_size(3, minimum=4) == 4


def test_fit_is_equivariant_to_the_units_of_y():
    # Standardizing inside means y and a*y + b get the same fit, expressed in their own units:
    # predictions scale as a*mean + b and a^2*var. This checks the rescaling of every parameter.
    x, y, _ = gp_draw(14, seed=1)
    xq = np.random.default_rng(2).random((5, DIM))
    key = jax.random.PRNGKey(3)
    a, b = 250.0, -3.0
    p1 = fit_single_task(x, y, key)
    p2 = fit_single_task(x, a * y + b, key)
    m1, v1 = posterior(p1, x, y, xq)
    m2, v2 = posterior(p2, x, a * y + b, xq)
    np.testing.assert_allclose(m2, a * np.asarray(m1) + b, rtol=1e-7)
    np.testing.assert_allclose(v2, a * a * np.asarray(v1), rtol=1e-6)


def test_fit_reaches_at_least_the_likelihood_of_the_true_parameters():
    for seed in (4, 5):
        x_all, y_all, true = gp_draw(56, seed=seed)
        x, y = x_all[:16], y_all[:16]
        fitted = fit_single_task(x, y, jax.random.PRNGKey(seed))
        nll_fit = float(nll(fitted, x, y))
        nll_true = float(nll(true, x, y))
        # Maximum likelihood beats the truth on the data it was fitted to (up to optimizer slack).
        assert nll_fit <= nll_true + 0.05, (nll_fit, nll_true)
        # And it predicts held-out values of the same function nearly as well as the true prior
        # (16 points leave the hyperparameters uncertain, hence the slack).
        mse = {}
        for name, params in (("fit", fitted), ("true", true)):
            mean, _ = posterior(params, x, y, x_all[16:])
            mse[name] = float(np.mean((np.asarray(mean) - y_all[16:]) ** 2))
        assert mse["fit"] < 2.5 * mse["true"]
        assert mse["fit"] < 0.75 * np.var(y_all[16:])


def test_bounds_hold_on_pure_noise_and_tiny_data():
    rng = np.random.default_rng(6)
    x = rng.random((12, DIM))
    y = 3.0 * rng.standard_normal(12)
    fitted = DEFAULT_MODEL.hyper(fit_single_task(x, y, jax.random.PRNGKey(0)))
    variance = np.var(y)
    assert np.all(np.asarray(fitted.lengthscale) <= 20.0 * 1.0001)
    assert np.all(np.asarray(fitted.lengthscale) >= 0.01 * 0.999)
    assert 1e-5 * variance * 0.999 <= float(fitted.noise) <= 2.0 * variance * 1.001
    assert 0.05 * variance * 0.999 <= float(fitted.signal) <= 20.0 * variance * 1.001


def test_degenerate_histories():
    key = jax.random.PRNGKey(0)
    x = np.random.default_rng(7).random((5, DIM))
    for y in (np.full(5, 2.5), np.array([1.0])):
        params = fit_single_task(x[: len(y)], y, key)
        leaves = jax.tree.leaves(params)
        assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in leaves)
        mean, _ = posterior(params, x[: len(y)], y, x)
        np.testing.assert_allclose(mean[: len(y)], y, atol=0.05 * max(1.0, abs(y[0])))
    empty = fit_single_task(np.zeros((0, DIM)), np.zeros(0), key)
    assert jax.tree.structure(empty) == jax.tree.structure(DEFAULT_MODEL.init(key, DIM))
    with pytest.raises(ValueError, match="finite"):
        fit_single_task(x, np.array([1.0, np.nan, 2.0, 3.0, 4.0]), key)
    with pytest.raises(ValueError, match="expected x"):
        fit_single_task(x, np.ones(4), key)


def test_growing_history_within_a_bucket_does_not_recompile():
    x, y, _ = gp_draw(16, seed=8)
    def programs():
        # Executables of the fit's step: metabo.aot's (with a cache directory) plus jax.jit's.
        step = single_task._losses_and_grad
        return len(step._loaded) + step.jitted._cache_size()

    fit_single_task(x[:9], y[:9], jax.random.PRNGKey(0))
    size = programs()
    assert size >= 1
    for n in (10, 13, 16):
        fit_single_task(x[:n], y[:n], jax.random.PRNGKey(n))
    assert programs() == size


@pytest.mark.parametrize(
    "model",
    [
        GPModel(mean="zero", kernel="se"),
        GPModel(mean="linear", kernel="matern32"),
        GPModel(mean="mlp", kernel="dot", mean_hidden=(3,)),
    ],
)
def test_unstandardize_rescales_mean_and_covariance(model):
    params = model.init(jax.random.PRNGKey(1), DIM, y_mean=0.2, y_var=1.3)
    params = params._replace(mean_weights=params.mean_weights + 0.7)
    x = np.random.default_rng(9).random((4, DIM))
    offset, scale = 3.0, 7.0
    scaled = unstandardize(model, params, offset, scale)
    expected_offset = 0.0 if model.mean == "zero" else offset
    np.testing.assert_allclose(
        model.mean_fn(scaled, x), expected_offset + scale * np.asarray(model.mean_fn(params, x)), rtol=1e-10
    )
    np.testing.assert_allclose(
        model.cov(scaled, x, x), scale**2 * np.asarray(model.cov(params, x, x)), rtol=1e-8
    )
    np.testing.assert_allclose(model.noise(scaled), scale**2 * float(model.noise(params)), rtol=1e-8)


def test_lengthscale_prior_is_the_dimension_scaled_log_normal():
    from scipy.stats import lognorm

    prior = single_task.LengthscalePrior()
    a, b = np.array([0.2, 1.5, 3.0]), np.array([0.7, 0.05, 9.0])
    mu = np.sqrt(2.0) + 0.5 * np.log(3)
    # Densities agree up to the normalizing constant: compare differences of -log p.
    expected = -np.sum(lognorm.logpdf(a, s=np.sqrt(3.0), scale=np.exp(mu))) + np.sum(
        lognorm.logpdf(b, s=np.sqrt(3.0), scale=np.exp(mu))
    )
    got = float(prior.negative_log_density(jnp.asarray(a)) - prior.negative_log_density(jnp.asarray(b)))
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def numpy_objective(x, y, lengthscale, signal, noise, constant, prior=None):
    """Matern 5/2 NLL (+ the log-normal lengthscale prior) by NumPy alone, standardized y."""
    z = x / lengthscale
    r = np.sqrt(np.maximum(np.sum((z[:, None, :] - z[None, :, :]) ** 2, axis=-1), 0.0))
    s5 = np.sqrt(5.0) * r
    gram = signal * (1.0 + s5 + s5**2 / 3.0) * np.exp(-s5) + noise * np.eye(len(y))
    residual = y - constant
    _, logdet = np.linalg.slogdet(gram)
    value = 0.5 * residual @ np.linalg.solve(gram, residual) + 0.5 * logdet + 0.5 * len(y) * np.log(2 * np.pi)
    if prior is not None:
        log_l = np.log(lengthscale)
        mean = prior.loc + 0.5 * np.log(len(lengthscale))
        value += np.sum(log_l + 0.5 * ((log_l - mean) / prior.scale) ** 2)
    return value


@pytest.mark.parametrize("prior", [None, single_task.LengthscalePrior()], ids=["ml", "map"])
def test_fit_is_a_local_optimum_of_an_independent_objective(prior):
    # L-BFGS-B stops at a (bounded) optimum: no small move of any hyperparameter, in log space,
    # lowers an independently written objective (NumPy Matern 5/2 NLL, plus the prior).
    x, y, _ = gp_draw(16, seed=11)
    y = (y - y.mean()) / y.std()
    params = fit_single_task(x, y, jax.random.PRNGKey(2), lengthscale_prior=prior)
    h = DEFAULT_MODEL.hyper(params)
    theta = {"lengthscale": np.asarray(h.lengthscale), "signal": float(h.signal), "noise": float(h.noise)}
    constant = float(params.mean_constant)
    bounds = single_task.FitBounds()
    base = numpy_objective(x, y, theta["lengthscale"], theta["signal"], theta["noise"], constant, prior)
    for name, (lo, hi) in (("lengthscale", bounds.lengthscale), ("signal", bounds.signal), ("noise", bounds.noise)):
        for index in range(np.size(theta[name])):
            for factor in (0.97, 1.03):
                moved = {k: np.array(v, dtype=float, copy=True) for k, v in theta.items()}
                flat = moved[name].reshape(-1)
                flat[index] = np.clip(flat[index] * factor, lo, hi)
                value = numpy_objective(x, y, moved["lengthscale"], float(moved["signal"]), float(moved["noise"]), constant, prior)
                assert value >= base - 1e-6, (name, index, factor, value, base)
    for shift in (-0.02, 0.02):
        assert numpy_objective(x, y, theta["lengthscale"], theta["signal"], theta["noise"], constant + shift, prior) >= base - 1e-6



def test_the_fit_computes_in_float64_whatever_the_callers_setting():
    x, y, _ = gp_draw(12, seed=3)
    with jax.enable_x64(False):  # a caller that never switched x64 on
        params = fit_single_task(x, y, jax.random.PRNGKey(0))
    assert {np.asarray(leaf).dtype for leaf in jax.tree.leaves(params)} == {np.dtype(np.float64)}
    np.testing.assert_allclose(
        float(nll(params, x, y)), float(nll(fit_single_task(x, y, jax.random.PRNGKey(0)), x, y)), rtol=1e-9
    )
