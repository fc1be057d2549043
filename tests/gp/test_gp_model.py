"""GPModel structure, parameter constraints, kernels and means against numpy/scipy."""

import gp_reference as ref
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gp_fixtures import DIM, FEATURES, KERNEL_NAMES, MEAN_NAMES, M, N, data, model_and_params

from metabo.gp import KERNELS, MEANS, GPModel, GPParams, inverse_softplus, softplus
from metabo.gp import kernels as kernel_fns

RTOL = 1e-8


# ---- structure -------------------------------------------------------------------------------
def test_registered_names_are_the_documented_ones():
    assert set(KERNELS) == set(KERNEL_NAMES)
    assert set(MEANS) == set(MEAN_NAMES)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mean": "quadratic"}, "unknown mean"),
        ({"kernel": "rbf"}, "unknown kernel"),
        ({"feature_sizes": (4, 0)}, "positive"),
        ({"mean_hidden": (-1,)}, "positive"),
        ({"share_features": True}, "share_features needs feature_sizes"),
    ],
)
def test_model_rejects_bad_structure(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GPModel(**kwargs)


def test_model_dict_round_trip_and_hashable():
    model = GPModel(mean="mlp", kernel="dot", feature_sizes=[8, 3], mean_hidden=[5], share_features=True)
    again = GPModel.from_dict(model.to_dict())
    assert again == model
    assert hash(again) == hash(model)  # usable as a jit static argument
    assert isinstance(again.feature_sizes, tuple)


@pytest.mark.parametrize("kernel", KERNEL_NAMES)
@pytest.mark.parametrize("mean", MEAN_NAMES)
@pytest.mark.parametrize("deep", [False, True])
def test_init_shapes(kernel, mean, deep):
    fs = FEATURES if deep else ()
    model = GPModel(mean=mean, kernel=kernel, feature_sizes=fs, mean_hidden=(4, 3))
    params = model.init(jax.random.PRNGKey(1), DIM, y_mean=0.7, y_var=2.0)
    assert isinstance(params, GPParams)
    p = FEATURES[-1] if deep else DIM
    assert params.raw_lengthscale.shape == (p,)
    assert params.mean_weights.shape == ((DIM,) if mean == "linear" else (0,))
    assert len(params.features) == len(fs)
    assert len(params.mean_mlp) == (3 if mean == "mlp" else 0)
    if mean == "mlp":
        assert params.mean_mlp[-1][0].shape == (3, 1)
    assert float(params.mean_constant) == (0.0 if mean == "zero" else 0.7)
    for leaf in jax.tree_util.tree_leaves(params):
        assert leaf.dtype == jnp.float64
        assert np.all(np.isfinite(leaf))


def test_init_is_deterministic_in_the_key():
    model = GPModel(mean="mlp", feature_sizes=FEATURES, mean_hidden=(4,))
    a = model.init(jax.random.PRNGKey(3), DIM)
    b = model.init(jax.random.PRNGKey(3), DIM)
    c = model.init(jax.random.PRNGKey(4), DIM)
    assert all(
        np.array_equal(u, v)
        for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    )
    assert not np.array_equal(a.features[0][0], c.features[0][0])


# ---- constraints -----------------------------------------------------------------------------
def test_softplus_and_its_inverse():
    raw = np.linspace(-30.0, 60.0, 91)
    np.testing.assert_allclose(softplus(raw), np.logaddexp(0.0, raw), rtol=1e-12)
    values = np.array([1e-8, 1e-3, 0.5, 1.0, 7.0, 40.0, 1e4])
    np.testing.assert_allclose(softplus(inverse_softplus(values)), values, rtol=1e-10)
    np.testing.assert_allclose(
        inverse_softplus(softplus(raw[raw > -15])), raw[raw > -15], rtol=1e-9, atol=1e-9
    )


def test_hyper_respects_floors_for_any_raw_value():
    model = GPModel(kernel="dot", lengthscale_floor=1e-3, signal_floor=1e-6, noise_floor=1e-5)
    params = model.init(jax.random.PRNGKey(0), DIM)
    very_negative = jax.tree_util.tree_map(lambda a: jnp.full_like(a, -1e3), params)
    h = model.hyper(very_negative)
    np.testing.assert_array_equal(h.lengthscale, 1e-3)
    assert float(h.signal) == 1e-6 and float(h.noise) == 1e-5 and float(h.bias) == 0.0
    # The floor is added on top of softplus: strictly above it for finite raw values.
    h = model.hyper(params)
    assert np.all(h.lengthscale > 1e-3) and h.signal > 1e-6 and h.noise > 1e-5 and h.bias > 0


def test_with_hyper_inverts_hyper():
    model = GPModel(kernel="dot", noise_floor=1e-4)
    params = model.init(jax.random.PRNGKey(0), DIM)
    target = dict(lengthscale=jnp.array([0.1, 0.7, 3.0]), signal=2.5, noise=3e-4, bias=0.2)
    h = model.hyper(model.with_hyper(params, **target))
    np.testing.assert_allclose(h.lengthscale, target["lengthscale"], rtol=1e-10)
    np.testing.assert_allclose([h.signal, h.noise, h.bias], [2.5, 3e-4, 0.2], rtol=1e-10)
    np.testing.assert_allclose(model.noise(model.with_hyper(params, noise=0.05)), 0.05, rtol=1e-12)


def test_init_uses_data_statistics():
    model = GPModel(kernel="se", mean="constant")
    params = model.init(
        jax.random.PRNGKey(0), DIM, y_mean=-2.0, y_var=4.0, lengthscale=0.25, noise_fraction=0.2
    )
    h = model.hyper(params)
    assert float(params.mean_constant) == -2.0
    np.testing.assert_allclose(h.lengthscale, 0.25, rtol=1e-9)
    np.testing.assert_allclose(h.signal, 0.8 * 4.0, rtol=1e-5)
    np.testing.assert_allclose(h.noise, 0.2 * 4.0, rtol=1e-5)


# ---- kernels ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kernel", KERNEL_NAMES)
@pytest.mark.parametrize("deep", [False, True], ids=["inputs", "mlp-features"])
def test_kernel_matrix_matches_scipy(kernel, deep):
    model, params = model_and_params(kernel=kernel, feature_sizes=FEATURES if deep else ())
    x1, _ = data(N, seed=1)
    x2, _ = data(M, seed=2)
    expected = ref.cov(model, params, x1, x2)
    got = np.asarray(model.cov(params, jnp.asarray(x1), jnp.asarray(x2)))
    assert got.shape == (N, M)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=1e-14)


@pytest.mark.parametrize("kernel", KERNEL_NAMES)
@pytest.mark.parametrize("deep", [False, True], ids=["inputs", "mlp-features"])
def test_gram_is_symmetric_positive_definite_and_matches_cov_diag(kernel, deep):
    model, params = model_and_params(kernel=kernel, feature_sizes=FEATURES if deep else (), seed=3)
    x, _ = data(seed=4)
    gram = np.asarray(model.cov(params, x, x))
    np.testing.assert_allclose(gram, gram.T, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.diag(gram), model.cov_diag(params, x), rtol=1e-10)
    eigenvalues = np.linalg.eigvalsh(gram)
    # Stationary kernels on distinct points: strictly PD. Dot product: PSD of low rank.
    assert eigenvalues.min() > -1e-10 * eigenvalues.max()
    if kernel != "dot":
        assert eigenvalues.min() > 0
    noisy = gram + float(model.noise(params)) * np.eye(len(x))
    assert np.linalg.eigvalsh(noisy).min() > 0
    np.linalg.cholesky(noisy)  # raises LinAlgError if not PD


@pytest.mark.parametrize("kernel", ["se", "matern32", "matern52"])
def test_stationary_kernels_closed_form_values(kernel):
    # One pair at distance r in scaled units: the textbook formulas, by hand.
    r = 0.8
    z1, z2 = jnp.zeros((1, 2)), jnp.array([[0.0, r]])
    value = float(kernel_fns.KERNELS[kernel](z1, z2, 2.0)[0, 0])
    expected = {
        "se": 2.0 * np.exp(-(r**2) / 2),
        "matern32": 2.0 * (1 + np.sqrt(3) * r) * np.exp(-np.sqrt(3) * r),
        "matern52": 2.0 * (1 + np.sqrt(5) * r + 5 * r**2 / 3) * np.exp(-np.sqrt(5) * r),
    }[kernel]
    assert value == pytest.approx(expected, rel=1e-12)
    # At zero distance every stationary kernel equals the signal variance.
    assert float(kernel_fns.KERNELS[kernel](z2, z2, 2.0)[0, 0]) == pytest.approx(2.0, rel=1e-12)


@pytest.mark.parametrize("kernel", ["matern32", "matern52"])
def test_kernel_gradient_finite_at_zero_distance(kernel):
    # sqrt at 0 has an infinite derivative; the double-where keeps the kernel's gradient finite.
    def k(z):
        return kernel_fns.KERNELS[kernel](z, z, 1.0).sum()

    z, _ = data()
    z[-1] = z[0]  # a repeated point: zero distance off the diagonal too
    grad = jax.grad(k)(jnp.asarray(z))
    assert np.all(np.isfinite(grad))


def test_squared_distance_matches_cdist_and_is_nonnegative():
    rng = np.random.default_rng(5)
    z1, z2 = rng.standard_normal((6, 4)), rng.standard_normal((7, 4))
    np.testing.assert_allclose(
        kernel_fns.squared_distance(z1, z2), ref.cdist(z1, z2, "sqeuclidean"), rtol=1e-10, atol=1e-12
    )
    same = kernel_fns.squared_distance(z1, z1)
    assert np.all(np.asarray(same) >= 0)
    np.testing.assert_allclose(np.diag(same), 0.0, atol=1e-12)


# ---- means -----------------------------------------------------------------------------------
@pytest.mark.parametrize("mean", MEAN_NAMES)
@pytest.mark.parametrize("share", [False, True], ids=["own-inputs", "shared-features"])
def test_mean_matches_numpy(mean, share):
    model, params = model_and_params(mean=mean, feature_sizes=FEATURES, share_features=share)
    x, _ = data(seed=6)
    got = np.asarray(model.mean_fn(params, jnp.asarray(x)))
    assert got.shape == (N,)
    np.testing.assert_allclose(got, ref.mean(model, params, x), rtol=RTOL, atol=1e-14)
    if mean in ("linear", "mlp"):
        assert np.ptp(got) > 1e-6  # the randomized parameters make the mean depend on x


def test_linear_mean_closed_form():
    model = GPModel(mean="linear", kernel="se")
    params = model.init(jax.random.PRNGKey(0), 2)._replace(
        mean_constant=jnp.asarray(0.5), mean_weights=jnp.array([2.0, -1.0])
    )
    x = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.25, 1.0]])
    np.testing.assert_allclose(model.mean_fn(params, x), [0.5, 2.5, 0.0], rtol=1e-15)


def test_with_hyper_refuses_values_at_or_below_the_floors():
    model = GPModel(mean="constant", kernel="matern52")
    params = model.init(jax.random.PRNGKey(0), 2)
    for name, value in (("lengthscale", [0.5, model.lengthscale_floor]), ("signal", 0.0), ("noise", -1.0)):
        with pytest.raises(ValueError, match=f"{name} must be above its floor"):
            model.with_hyper(params, **{name: value})
    with pytest.raises(ValueError, match="lengthscale must be above"):
        model.with_hyper(params, lengthscale=[float("nan"), 0.5])
    # Just above the floor is fine, and hyper() inverts it.
    updated = model.with_hyper(params, lengthscale=[2e-3, 0.5])
    np.testing.assert_allclose(model.hyper(updated).lengthscale, [2e-3, 0.5], rtol=1e-9)


@pytest.mark.parametrize("kernel", ["matern52", "dot"])
@pytest.mark.parametrize("mean", MEAN_NAMES)
@pytest.mark.parametrize("scale", [1e-12, 3.0, 1e12])
def test_rescaled_is_the_same_gp_for_scaled_scores(kernel, mean, scale):
    from metabo.gp import negative_log_likelihood, posterior

    model, params = model_and_params(kernel=kernel, mean=mean)
    x, y = data()
    mask = np.ones(len(y), dtype=bool)
    scaled_model, scaled_params = model.rescaled(params, scale)
    # Densities of y * scale pick up the Jacobian: NLL' = NLL + n log(scale).
    nll = float(negative_log_likelihood(model, params, x, y, mask))
    scaled_nll = float(negative_log_likelihood(scaled_model, scaled_params, x, y * scale, mask))
    assert scaled_nll == pytest.approx(nll + len(y) * np.log(scale), rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(scaled_model.mean_fn(scaled_params, x), scale * model.mean_fn(params, x), rtol=1e-9)
    np.testing.assert_allclose(
        scaled_model.cov(scaled_params, x, x), scale**2 * model.cov(params, x, x), rtol=1e-9, atol=0
    )
    assert float(scaled_model.noise(scaled_params)) == pytest.approx(scale**2 * float(model.noise(params)), rel=1e-9)
    assert scaled_model.noise_floor == pytest.approx(model.noise_floor * scale**2)
    x_new = np.random.default_rng(4).random((5, x.shape[1]))
    mu, var = posterior(model, params, x, y, x_new, mask)
    scaled_mu, scaled_var = posterior(scaled_model, scaled_params, x, y * scale, x_new, mask)
    np.testing.assert_allclose(scaled_mu, scale * mu, rtol=1e-7)
    np.testing.assert_allclose(scaled_var, scale**2 * var, rtol=1e-7)


def test_rescaled_rejects_bad_scales():
    model, params = model_and_params()
    for bad in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="scale"):
            model.rescaled(params, bad)
