"""The NumPy references of scripts/bench_peers.py, against metabo and scikit-learn.

The benchmark scores every library's fit and every maximizer's optimum with these functions, so
they must be right on their own: the log marginal likelihood against metabo's NLL (closed form,
no optimization), its reading of scikit-learn's normalize_y parametrization against
scikit-learn's own value, and the log EI against metabo's far into the tail.
"""

import importlib.util
import os

import numpy as np
import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "bench_peers.py")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_peers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_log_marginal_likelihood_matches_metabo(bench):
    import jax
    import jax.numpy as jnp

    from metabo.gp import GPModel
    from metabo.gp.posterior import negative_log_likelihood

    rng = np.random.default_rng(0)
    x = rng.random((30, 3))
    y = np.sin(4 * x[:, 0]) + x[:, 1] ** 2 + 0.1 * rng.standard_normal(30)
    model = GPModel(mean="constant", kernel="matern52")
    lengthscale, signal, noise, constant = np.array([0.3, 0.7, 2.0]), 1.7, 0.02, 0.4
    params = model.with_hyper(
        model.init(jax.random.PRNGKey(0), 3), lengthscale=lengthscale, signal=signal, noise=noise
    )._replace(mean_constant=jnp.asarray(constant))
    ours = bench.log_marginal_likelihood(x, y, lengthscale, signal, noise, constant)
    theirs = -float(negative_log_likelihood(model, params, jnp.asarray(x), jnp.asarray(y)))
    assert ours == pytest.approx(theirs, rel=1e-10)


def test_sklearn_parametrization(bench):
    pytest.importorskip("sklearn")
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    rng = np.random.default_rng(1)
    x = rng.random((25, 2))
    y = 3.0 + 2.0 * np.cos(3 * x[:, 0]) * x[:, 1] + 0.05 * rng.standard_normal(25)
    kernel = ConstantKernel(1.3) * Matern(length_scale=[0.4, 0.9], nu=2.5) + WhiteKernel(0.01)
    gp = GaussianProcessRegressor(kernel, normalize_y=True, optimizer=None).fit(x, y)
    standardized = (y - y.mean()) / y.std()
    ours = bench.log_marginal_likelihood(x, standardized, [0.4, 0.9], 1.3, 0.01 + gp.alpha, 0.0)
    assert ours == pytest.approx(gp.log_marginal_likelihood_value_, rel=1e-10)


def test_log_ei_matches_metabo_into_the_tail(bench):
    import jax
    import jax.numpy as jnp

    from metabo.bo.acquisitions import log_ei

    z = np.concatenate([np.linspace(-30.0, 6.0, 145), [-1.0, -0.999, -1.001]])
    std = np.full_like(z, 0.7)
    mean = 0.2 + z * std
    with jax.enable_x64(True):
        theirs = np.asarray(log_ei(jnp.asarray(mean), jnp.asarray(std), 0.2))
    np.testing.assert_allclose(bench.numpy_log_ei(mean, std, 0.2), theirs, rtol=1e-9)
