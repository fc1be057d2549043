"""Log marginal likelihood: scipy agreement, gradients, masking, vmap over tasks, jit."""

import gp_reference as ref
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gp_fixtures import DIM, FEATURES, KERNEL_NAMES, MEAN_NAMES, PAD, N, data, model_and_params
from jax.test_util import check_grads

from metabo.data import pad_arrays
from metabo.gp import log_marginal_likelihood, negative_log_likelihood, noisy_gram

RTOL = 1e-8


@pytest.mark.parametrize("kernel", KERNEL_NAMES)
@pytest.mark.parametrize("mean", MEAN_NAMES)
def test_log_marginal_likelihood_matches_scipy(kernel, mean):
    model, params = model_and_params(kernel=kernel, mean=mean)
    x, y = data()
    expected = ref.log_marginal_likelihood(model, params, x, y)
    got = float(log_marginal_likelihood(model, params, jnp.asarray(x), jnp.asarray(y)))
    assert got == pytest.approx(expected, rel=RTOL)
    assert float(negative_log_likelihood(model, params, x, y)) == pytest.approx(-expected, rel=RTOL)


@pytest.mark.parametrize("kernel", KERNEL_NAMES)
def test_log_marginal_likelihood_on_mlp_features_matches_scipy(kernel):
    model, params = model_and_params(kernel=kernel, mean="mlp", feature_sizes=FEATURES, share_features=True)
    x, y = data(seed=1)
    got = float(log_marginal_likelihood(model, params, x, y))
    assert got == pytest.approx(ref.log_marginal_likelihood(model, params, x, y), rel=RTOL)


def test_noisy_gram_matches_reference():
    model, params = model_and_params(kernel="matern32")
    x, _ = data()
    _, _, noise, _ = ref.hyper(model, params)
    expected = ref.cov(model, params, x, x) + noise * np.eye(N)
    np.testing.assert_allclose(noisy_gram(model, params, x), expected, rtol=RTOL)


# Every parameter leaf is checked on its own, on models where each leaf matters: the dot kernel
# uses the bias, the MLP mean uses mean_mlp, the deep kernel uses the feature layers, and the
# linear mean (on shared features) uses mean_weights.
GRAD_CASES = [
    dict(kernel="se", mean="linear", feature_sizes=FEATURES, share_features=True),
    dict(kernel="matern32", mean="mlp", feature_sizes=FEATURES),
    dict(kernel="matern52", mean="constant"),
    dict(kernel="dot", mean="linear"),
    dict(kernel="dot", mean="mlp", feature_sizes=FEATURES),
]


@pytest.mark.parametrize(
    "case", GRAD_CASES, ids=lambda c: f"{c['kernel']}-{c['mean']}-{len(c.get('feature_sizes', ()))}"
)
def test_nll_check_grads_for_every_parameter(case):
    model, params = model_and_params(**case, seed=2)
    x, y = data(seed=3)
    paths_and_leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    leaves = [leaf for _, leaf in paths_and_leaves]

    # Eager on purpose: eager ops are compiled once per shape and reused across leaves and cases,
    # whereas differentiating a jitted function compiles a new program for every leaf.
    def nll(p):
        return negative_log_likelihood(model, p, x, y)

    full_grad = jax.tree_util.tree_leaves(jax.grad(nll)(params))
    for i, (path, leaf) in enumerate(paths_and_leaves):
        if leaf.size == 0:
            continue
        name = jax.tree_util.keystr(path)

        def of_leaf(value, i=i):
            swapped = list(leaves)
            swapped[i] = value
            return nll(jax.tree_util.tree_unflatten(treedef, swapped))

        check_grads(of_leaf, (leaf,), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)
        if name != ".raw_bias" or model.kernel == "dot":  # the bias is unused by stationary kernels
            assert np.any(np.abs(full_grad[i]) > 0), f"{name} has an all-zero gradient"


def test_nll_gradient_matches_autodiff_through_plain_cholesky():
    model, params = model_and_params(kernel="matern52", mean="mlp", feature_sizes=FEATURES, seed=4)
    x, y = data(seed=5)

    def plain(p):
        gram = noisy_gram(model, p, x)
        r = y - model.mean_fn(p, x)
        chol = jnp.linalg.cholesky(gram)
        w = jax.scipy.linalg.solve_triangular(chol, r, lower=True)
        return 0.5 * w @ w + jnp.sum(jnp.log(jnp.diagonal(chol))) + 0.5 * len(y) * np.log(2 * np.pi)

    value, grad = jax.value_and_grad(lambda p: negative_log_likelihood(model, p, x, y))(params)
    value_ref, grad_ref = jax.value_and_grad(plain)(params)
    assert float(value) == pytest.approx(float(value_ref), rel=1e-12)
    for g, h in zip(jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(grad_ref), strict=True):
        np.testing.assert_allclose(g, h, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("kernel", ["se", "dot"])
def test_masked_likelihood_equals_unpadded(kernel):
    model, params = model_and_params(kernel=kernel, mean="linear", seed=6)
    x, y = data(seed=7)
    # Padding rows hold garbage on purpose: the mask alone must remove them.
    rng = np.random.default_rng(8)
    order = rng.permutation(PAD)
    xp = np.concatenate([x, rng.random((PAD - N, x.shape[1])) * 5])[order]
    yp = np.concatenate([y, rng.standard_normal(PAD - N) * 100])[order]
    mask = np.concatenate([np.ones(N, bool), np.zeros(PAD - N, bool)])[order]

    def value_and_grad(*args):
        return jax.value_and_grad(lambda p: negative_log_likelihood(model, p, *args))(params)

    v0, g0 = value_and_grad(x, y)
    v1, g1 = jax.jit(value_and_grad)(xp, yp, mask)  # jit: one compile beats many eager ones here
    assert float(v1) == pytest.approx(float(v0), rel=1e-12)
    for a, b in zip(jax.tree_util.tree_leaves(g0), jax.tree_util.tree_leaves(g1), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_vmap_over_padded_tasks_equals_per_task_sum():
    model, params = model_and_params(kernel="matern52", mean="constant", seed=9)
    # Includes a task with no observations: it must add exactly nothing, value or gradient.
    tasks = [data(n, seed=10 + n) for n in (3, N, 0, 5)]
    padded = pad_arrays([t[0] for t in tasks], [t[1] for t in tasks], bucket=PAD)
    assert padded.x.shape == (4, PAD, DIM)

    @jax.jit
    def per_task(p, x, y, mask):
        return jax.vmap(negative_log_likelihood, in_axes=(None, None, 0, 0, 0))(model, p, x, y, mask)

    values = per_task(params, padded.x, padded.y, padded.mask)
    expected = [-ref.log_marginal_likelihood(model, params, x, y) if len(y) else 0.0 for x, y in tasks]
    np.testing.assert_allclose(values, expected, rtol=RTOL, atol=1e-12)
    grads = jax.jacrev(per_task)(params, padded.x, padded.y, padded.mask)
    for leaf in jax.tree_util.tree_leaves(grads):
        np.testing.assert_array_equal(leaf[2], 0.0)


def test_jit_equals_eager_and_does_not_recompile():
    model, params = model_and_params(kernel="matern32", mean="mlp", feature_sizes=FEATURES, seed=11)
    x, y = data(seed=12)
    eager = jax.value_and_grad(lambda p, y: negative_log_likelihood(model, p, x, y))
    jitted = jax.jit(eager)
    v0, g0 = eager(params, y)
    v1, g1 = jitted(params, y)
    assert float(v1) == pytest.approx(float(v0), rel=1e-12)
    for a, b in zip(jax.tree_util.tree_leaves(g0), jax.tree_util.tree_leaves(g1), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    jitted(params, y + 1.0)  # new values, same shapes
    assert jitted._cache_size() == 1
