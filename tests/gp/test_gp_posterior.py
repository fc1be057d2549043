"""GP posterior: agreement with a scipy computation, noise handling, interpolation, masks, jit."""

import gp_reference as ref
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gp_fixtures import FEATURES, KERNEL_NAMES, MEAN_NAMES, PAD, M, N, data, model_and_params

from metabo.gp import condition, posterior, predict, predict_cov

RTOL = 1e-8


@pytest.mark.parametrize("kernel", KERNEL_NAMES)
@pytest.mark.parametrize("mean", MEAN_NAMES)
@pytest.mark.parametrize("include_noise", [False, True], ids=["latent", "noisy"])
def test_posterior_matches_scipy(kernel, mean, include_noise):
    model, params = model_and_params(kernel=kernel, mean=mean, seed=1)
    x, y = data(seed=2)
    xq, _ = data(M, seed=3)
    mu_ref, cov_ref = ref.posterior(model, params, x, y, xq, include_noise=include_noise)

    state = condition(model, params, x, y)
    assert float(state.jitter) == 0.0
    mu, var = predict(model, params, state, xq, include_noise=include_noise)
    np.testing.assert_allclose(mu, mu_ref, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(var, np.diag(cov_ref), rtol=1e-7, atol=1e-12)

    mu_c, cov = predict_cov(model, params, state, xq, include_noise=include_noise)
    np.testing.assert_allclose(mu_c, mu_ref, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(cov, cov_ref, rtol=1e-7, atol=1e-12)
    np.testing.assert_array_equal(cov, np.asarray(cov).T)


@pytest.mark.parametrize("kernel", KERNEL_NAMES)
def test_posterior_on_mlp_features_matches_scipy(kernel):
    model, params = model_and_params(kernel=kernel, mean="linear", feature_sizes=FEATURES, seed=4)
    x, y = data(seed=5)
    xq, _ = data(M, seed=6)
    mu_ref, cov_ref = ref.posterior(model, params, x, y, xq)
    mu, var = posterior(model, params, x, y, xq)
    np.testing.assert_allclose(mu, mu_ref, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(var, np.diag(cov_ref), rtol=1e-7, atol=1e-12)


def test_observation_noise_adds_exactly_the_noise_variance():
    model, params = model_and_params(kernel="matern52", mean="constant", seed=7)
    x, y = data(seed=8)
    xq, _ = data(M, seed=9)
    state = condition(model, params, x, y)
    mu0, var0 = predict(model, params, state, xq)
    mu1, var1 = predict(model, params, state, xq, include_noise=True)
    np.testing.assert_array_equal(mu0, mu1)
    np.testing.assert_allclose(np.asarray(var1) - np.asarray(var0), float(model.noise(params)), rtol=1e-10)


@pytest.mark.parametrize("kernel", ["se", "matern32", "matern52"])
def test_noise_free_posterior_interpolates(kernel):
    model, params = model_and_params(kernel=kernel, mean="linear", seed=10)
    x, y = data(seed=11)
    state = condition(model, params, x, y, noise=0.0)
    mu, var = predict(model, params, state, x)
    assert float(state.jitter) < 1e-9  # distinct points: at most a token jitter
    tol = 1e-6
    np.testing.assert_allclose(mu, y, atol=tol)
    np.testing.assert_allclose(var, 0.0, atol=tol)
    # Away from the data the posterior is uncertain again.
    far = 8.0 + data(M, seed=12)[0]
    _, var_far = predict(model, params, state, far)
    np.testing.assert_allclose(var_far, float(model.hyper(params).signal), rtol=1e-6)


def test_noisy_posterior_shrinks_but_does_not_interpolate():
    model, params = model_and_params(kernel="se", mean="zero", seed=12)
    params = model.with_hyper(params, noise=0.5)
    x, y = data(seed=13)
    mu, var = posterior(model, params, x, y, x)
    assert np.all(np.asarray(var) < float(model.hyper(params).signal))
    assert np.max(np.abs(np.asarray(mu) - y)) > 1e-2


def test_duplicate_inputs_without_noise_use_jitter_and_stay_finite():
    model, params = model_and_params(kernel="se", mean="zero", seed=14)
    x, y = data(seed=15)
    x = np.concatenate([x[:-1], x[:1]])  # the last point repeats the first
    y = np.concatenate([y[:-1], y[:1]])
    state = condition(model, params, x, y, noise=0.0)
    assert float(state.jitter) > 0
    mu, var = predict(model, params, state, x)
    assert np.all(np.isfinite(mu)) and np.all(np.isfinite(var))
    np.testing.assert_allclose(mu, y, atol=1e-3)


def test_masked_conditioning_equals_unpadded():
    model, params = model_and_params(kernel="matern32", mean="linear", seed=16)
    x, y = data(seed=17)
    xq, _ = data(M, seed=18)
    rng = np.random.default_rng(19)
    order = rng.permutation(PAD)
    xp = np.concatenate([x, 3.0 + rng.random((PAD - N, x.shape[1]))])[order]
    yp = np.concatenate([y, 50.0 * rng.standard_normal(PAD - N)])[order]
    mask = np.concatenate([np.ones(N, bool), np.zeros(PAD - N, bool)])[order]

    def run(x, y, mask=None):
        return predict_cov(model, params, condition(model, params, x, y, mask), xq)

    mu0, cov0 = run(x, y)
    mu1, cov1 = jax.jit(run)(xp, yp, mask)  # jit: one compile beats many eager ones here
    np.testing.assert_allclose(mu1, mu0, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cov1, cov0, rtol=1e-9, atol=1e-12)


def test_posterior_jit_equals_eager():
    model, params = model_and_params(kernel="matern52", mean="mlp", feature_sizes=FEATURES, seed=20)
    x, y = data(seed=21)
    xq, _ = data(M, seed=22)

    def run(p, x, y, xq):
        state = condition(model, p, x, y)
        return predict(model, p, state, xq, include_noise=True), predict_cov(model, p, state, xq)

    eager = run(params, x, y, xq)
    jitted = jax.jit(run)(params, x, y, xq)
    for a, b in zip(jax.tree_util.tree_leaves(eager), jax.tree_util.tree_leaves(jitted), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def test_conditioned_state_vmaps_over_tasks():
    model, params = model_and_params(kernel="se", mean="constant", seed=23)
    xq, _ = data(M, seed=24)
    tasks = [data(seed=25 + i) for i in range(3)]
    xs = jnp.stack([jnp.asarray(t[0]) for t in tasks])
    ys = jnp.stack([jnp.asarray(t[1]) for t in tasks])
    mu_b, var_b = jax.jit(jax.vmap(lambda x, y: posterior(model, params, x, y, xq)))(xs, ys)
    for i, (x, y) in enumerate(tasks):
        mu_ref, cov_ref = ref.posterior(model, params, x, y, xq)
        np.testing.assert_allclose(mu_b[i], mu_ref, rtol=RTOL, atol=1e-12)
        np.testing.assert_allclose(var_b[i], np.diag(cov_ref), rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("kernel", ["se", "matern52"])
def test_fast_path_plain_cholesky_and_precomputed_inverse_match_the_reference(kernel):
    from metabo.gp.posterior import chol_inverse, factorized, predict_with_inverse

    model, params = model_and_params(kernel=kernel, mean="constant", seed=1)
    x, y = data(seed=2)
    xq, _ = data(M, seed=3)
    plain = condition(model, params, x, y, adaptive=False)
    assert bool(factorized(plain))
    mean, var = jax.jit(predict_with_inverse, static_argnums=0)(model, params, plain, chol_inverse(plain.chol), xq)
    ref_mean, ref_cov = ref.posterior(model, params, x, y, xq)
    np.testing.assert_allclose(mean, ref_mean, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(var, np.diag(ref_cov), rtol=1e-7, atol=1e-12)


def test_jitter_fallback_runs_the_adaptive_path_only_on_failure_and_warns():
    from metabo.gp import GPModel
    from metabo.gp.posterior import factorized, with_jitter_fallback

    model = GPModel("zero", "se")
    params = model.init(jax.random.PRNGKey(0), 1)
    x = jnp.zeros((3, 1))  # identical inputs, no noise: the plain Cholesky fails
    calls = []

    def fn(x, adaptive):
        calls.append(adaptive)
        state = condition(model, params, x, jnp.ones(3), noise=0.0, adaptive=adaptive)
        return state.alpha, state.jitter, factorized(state)

    with pytest.warns(RuntimeWarning, match="jitter"):
        (alpha,) = with_jitter_fallback("test", fn, x)
    assert calls == [False, True] and np.all(np.isfinite(np.asarray(alpha)))
    calls.clear()
    with_jitter_fallback("test", fn, jnp.asarray([[0.0], [0.5], [1.0]]))
    assert calls == [False]


@pytest.mark.parametrize("mean", MEAN_NAMES)
def test_leave_one_out_density_equals_n_separate_fits(mean):
    from scipy.stats import norm

    from metabo.gp import leave_one_out_log_density

    model, params = model_and_params(kernel="matern52", mean=mean, seed=7)
    x, y = data(seed=8)
    expected = []
    for i in range(len(y)):  # condition on the others, predict y_i with noise: the scipy reference
        keep = np.arange(len(y)) != i
        mu, cov = ref.posterior(model, params, x[keep], y[keep], x[i : i + 1], include_noise=True)
        expected.append(norm.logpdf(y[i], mu[0], np.sqrt(cov[0, 0])))
    np.testing.assert_allclose(leave_one_out_log_density(model, params, x, y), expected, rtol=1e-8)

    # Padded rows contribute 0 and leave the real ones unchanged.
    xp = np.concatenate([x, np.zeros((PAD - len(x), x.shape[1]))])
    yp = np.concatenate([y, np.zeros(PAD - len(y))])
    mask = np.arange(PAD) < len(y)
    padded = leave_one_out_log_density(model, params, jnp.asarray(xp), jnp.asarray(yp), jnp.asarray(mask))
    np.testing.assert_allclose(padded[: len(y)], expected, rtol=1e-8)
    np.testing.assert_allclose(padded[len(y) :], 0.0)
