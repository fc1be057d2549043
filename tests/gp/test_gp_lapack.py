"""The LAPACK NLL backend (metabo.gp.lapack) agrees with the XLA backend (values and gradients)
for every kernel and mean, and jit(value_and_grad) equals eager on padded tasks."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from metabo.data import pad_arrays
from metabo.gp import GPModel, gaussian_nll, lapack, noisy_gram
from metabo.pretrain.objectives import nll_objective, per_task_nll


def tasks(sizes, dim, seed=0, duplicate=False):
    rng = np.random.default_rng(seed)
    xs = [rng.random((n, dim)) for n in sizes]
    if duplicate:  # an exact repeat: zero distance, where sqrt-based kernels need care
        xs[0][1] = xs[0][0]
    ys = [np.sin(4 * x[:, 0]) - x[:, -1] + 0.1 * rng.standard_normal(len(x)) for x in xs]
    return pad_arrays(xs, ys)


def perturbed_params(model, dim, seed=1):
    # Away from the symmetric initial values, so every gradient component is exercised.
    params = model.init(jax.random.PRNGKey(seed), dim, y_mean=0.2, y_var=1.3)
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda a: a + 0.2 * rng.standard_normal(np.shape(a)), params)


def assert_trees_close(a, b, rtol):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-10)


@pytest.mark.parametrize(
    "model",
    [
        GPModel("constant", "matern52"),
        GPModel("linear", "matern32"),
        GPModel("zero", "se"),
        GPModel("constant", "dot"),
        GPModel("mlp", "matern52", feature_sizes=(5, 3), mean_hidden=(4,), share_features=True),
    ],
    ids=["const-m52", "linear-m32", "zero-se", "const-dot", "deep-m52"],
)
def test_fast_value_and_gradient_equal_reference(model):
    padded = tasks([9, 5, 12], 3, duplicate=True)
    params = perturbed_params(model, 3)

    def objective(method):
        return jax.jit(
            jax.value_and_grad(
                lambda p: nll_objective(model, p, padded.x, padded.y, padded.mask, method=method)
            )
        )

    value, grad = objective("auto")(params)
    ref_value, ref_grad = objective("reference")(params)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    assert_trees_close(grad, ref_grad, rtol=1e-8)


@pytest.mark.parametrize("backend", ["lapack", "xla"])
@pytest.mark.parametrize("kernel", ["se", "matern32", "matern52"])
def test_jit_value_and_grad_of_small_padded_tasks_is_finite_and_equals_eager(kernel, backend):
    # Padded rows (all-zero inputs) and an exact duplicate give zero distances on and off the
    # diagonal. With a double-where sqrt whose inner fallback was 1, XLA's recomputation of the
    # distances in different fusions made jit(value_and_grad) wrong (NaN) under JAX 0.10.2.
    from metabo.gp import negative_log_likelihood

    model = GPModel("constant", kernel)
    padded = tasks([9, 5, 12], 3, duplicate=True)
    params = perturbed_params(model, 3)
    x, y, mask = (jnp.asarray(a) for a in (padded.x, padded.y, padded.mask))

    def total(p):
        per_task = jax.vmap(lambda xi, yi, mi: negative_log_likelihood(model, p, xi, yi, mi, backend=backend))
        return jnp.sum(per_task(x, y, mask))

    value, grad = jax.jit(jax.value_and_grad(total))(params)
    eager_value, eager_grad = jax.value_and_grad(total)(params)
    assert np.isfinite(float(value))
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grad))
    np.testing.assert_allclose(value, eager_value, rtol=1e-12)
    assert_trees_close(grad, eager_grad, rtol=1e-10)
    # And one task on its own, unvmapped (the shape pre-training's small tasks see).
    one = jax.jit(jax.value_and_grad(lambda p: negative_log_likelihood(model, p, x[1], y[1], mask[1], backend)))
    np.testing.assert_allclose(one(params)[0], negative_log_likelihood(model, params, x[1], y[1], mask[1]), rtol=1e-12)


@pytest.mark.parametrize("kernel", ["se", "matern32", "matern52"])
def test_stationary_gram_value_and_check_grads(kernel):
    rng = np.random.default_rng(2)
    z = rng.random((7, 2)) * 2
    mask = np.array([True] * 5 + [False] * 2)
    model = GPModel("zero", kernel)
    params = model.with_hyper(
        model.init(jax.random.PRNGKey(0), 2), lengthscale=np.ones(2), signal=1.7, noise=0.2
    )
    np.testing.assert_allclose(
        lapack.stationary_gram(kernel, z, 1.7, 0.2, mask), noisy_gram(model, params, z, mask), rtol=1e-12
    )
    # A random, non-symmetric cotangent: the hand-written rule must not assume symmetry.
    weights = rng.standard_normal((7, 7))

    def f(z, signal, noise):
        return jnp.sum(weights * lapack.stationary_gram(kernel, z, signal, noise, mask))

    check_grads(f, (z, 1.7, 0.2), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_lapack_nll_equals_xla_nll_and_gradients():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 70, 70)) / 8
    r = rng.standard_normal((4, 70))

    def gram(a):
        return a @ jnp.swapaxes(a, -1, -2) + 0.3 * jnp.eye(70)

    ours = jax.jit(jax.vmap(lapack.lapack_gaussian_nll))(gram(a), r)
    ref = jax.vmap(gaussian_nll)(gram(a), r)
    np.testing.assert_allclose(ours, ref, rtol=1e-12)
    # unbatched call, then gradients through an SPD parametrisation
    np.testing.assert_allclose(lapack.lapack_gaussian_nll(gram(a[0]), r[0]), ref[0], rtol=1e-12)
    g_ours = jax.grad(
        lambda a, r: jnp.sum(jax.vmap(lapack.lapack_gaussian_nll)(gram(a), r)), argnums=(0, 1)
    )(a, r)
    g_ref = jax.grad(lambda a, r: jnp.sum(jax.vmap(gaussian_nll)(gram(a), r)), argnums=(0, 1))(a, r)
    assert_trees_close(g_ours, g_ref, rtol=1e-9)
    check_grads(
        lambda a, r: lapack.lapack_gaussian_nll(gram(a), r),
        (a[1], r[1]),
        order=1,
        modes=["rev"],
        atol=1e-6,
        rtol=1e-6,
    )


def test_lapack_nll_is_nan_for_non_positive_definite():
    bad = np.eye(70)
    bad[5, 5] = -1.0
    batch = np.stack([np.eye(70), bad])
    values = jax.jit(jax.vmap(lapack.lapack_gaussian_nll))(batch, np.ones((2, 70)))
    assert np.isfinite(values[0]) and np.isnan(values[1])
    grad = jax.grad(lambda k: jnp.sum(jax.vmap(lapack.lapack_gaussian_nll)(k, np.ones((2, 70)))))(batch)
    assert np.all(np.isfinite(grad[0])) and np.all(np.isnan(grad[1]))


def test_large_tasks_take_the_lapack_path_in_chunks_and_agree(monkeypatch):
    # 3 tasks of 80 padded points: LAPACK on CPU, and (with a small chunk budget) lax.map chunks.
    from metabo.pretrain import objectives

    model = GPModel()
    padded = tasks([80, 41, 66], 2, seed=5)
    params = perturbed_params(model, 2)
    assert lapack.use_lapack(80) == (jax.default_backend() == "cpu")
    per_task = jax.jit(per_task_nll, static_argnums=0, static_argnames="method")
    ref = per_task(model, params, padded.x, padded.y, padded.mask, method="reference")
    np.testing.assert_allclose(per_task(model, params, padded.x, padded.y, padded.mask), ref, rtol=1e-12)

    def value_and_grad(method):
        return jax.jit(
            jax.value_and_grad(
                lambda p: nll_objective(model, p, padded.x, padded.y, padded.mask, method=method)
            )
        )

    ref_value, ref_grad = value_and_grad("reference")(params)
    # Two tasks per chunk: one full chunk and a remainder (read when the function is traced).
    monkeypatch.setattr(objectives, "CHUNK_BYTES", 2 * 8 * 80 * 80)
    value, grad = value_and_grad("auto")(params)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    assert_trees_close(grad, ref_grad, rtol=1e-8)


@pytest.mark.parametrize("kernel", ["se", "matern32", "matern52"])
def test_fused_stationary_nll_equals_gram_then_nll(kernel):
    # 3 tasks of 24 padded points (the rule works at any size; pre-training uses it from
    # LAPACK_MIN_POINTS on), one with padding and an exact duplicate input.
    rng = np.random.default_rng(7)
    z = rng.random((3, 24, 3)) * 2
    z[0, 1] = z[0, 0]
    mask = np.ones((3, 24), dtype=bool)
    mask[1, 17:] = False
    residual = np.where(mask, rng.standard_normal((3, 24)), 0.0)
    mask = jnp.asarray(mask)  # closed over under jit: custom_vjp rules reject NumPy constants

    def fused(z, signal, noise, r):
        one = lambda zi, mi, ri: lapack.stationary_lapack_nll(kernel, zi, signal, noise, mi, ri)  # noqa: E731
        return jnp.sum(jnp.arange(1.0, 4.0) * jax.vmap(one)(z, mask, r))

    def separate(z, signal, noise, r):
        def one(zi, mi, ri):
            return gaussian_nll(lapack.stationary_gram(kernel, zi, signal, noise, mi), ri)

        return jnp.sum(jnp.arange(1.0, 4.0) * jax.vmap(one)(z, mask, r))

    args = (z, 1.3, 0.07, residual)
    np.testing.assert_allclose(jax.jit(fused)(*args), separate(*args), rtol=1e-12)
    ours = jax.jit(jax.grad(fused, argnums=(0, 1, 2, 3)))(*args)
    ref = jax.grad(separate, argnums=(0, 1, 2, 3))(*args)
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    check_grads(
        lambda z, s, n: lapack.stationary_lapack_nll(kernel, z, s, n, mask[1], residual[1]),
        (z[1], 1.3, 0.07),
        order=1,
        modes=["rev"],
        atol=1e-6,
        rtol=1e-6,
    )


@pytest.mark.parametrize("threads", ["1", "3"])
def test_host_lapack_threads_give_identical_results(monkeypatch, threads):
    from threadpoolctl import threadpool_info

    rng = np.random.default_rng(8)
    a = rng.standard_normal((5, 80, 80)) / 9
    grams = a @ np.swapaxes(a, -1, -2) + 0.2 * np.eye(80)
    grams[3, 4, 4] = -1.0  # not positive definite: NaN for that task only
    r = rng.standard_normal((5, 80))
    import scipy.linalg.lapack  # noqa: F401  (SciPy's BLAS loaded before the count, as in a full run)

    blas_before = [lib["num_threads"] for lib in threadpool_info()]

    def value_and_grad():
        return jax.jit(
            jax.value_and_grad(
                lambda k: jnp.sum(jnp.arange(1.0, 6.0) * jax.vmap(lapack.lapack_gaussian_nll)(k, r))
            )
        )(grams)

    monkeypatch.setenv(lapack.LAPACK_THREADS_ENV, threads)
    assert lapack.lapack_threads() == int(threads)
    value, grad = value_and_grad()
    # The callback reads the thread count each time it runs: no recompilation needed (and
    # jax.clear_caches() made every later test in this process compile its programs again).
    monkeypatch.setenv(lapack.LAPACK_THREADS_ENV, "1")
    value_1, grad_1 = value_and_grad()
    assert np.isnan(value) and np.isnan(value_1)
    assert np.all(np.isnan(grad[3])) and np.all(np.isfinite(np.delete(np.asarray(grad), 3, axis=0)))
    # Same LAPACK calls per task (BLAS's own threading may order sums differently).
    np.testing.assert_allclose(grad, grad_1, rtol=1e-12, atol=1e-14)
    # Each finite task against the XLA reference.
    for t in (0, 1, 2, 4):
        np.testing.assert_allclose(
            jax.grad(lambda k, t=t: (t + 1.0) * gaussian_nll(k, r[t]))(grams[t]),
            grad[t],
            rtol=1e-9,
            atol=1e-12,
        )
    # The BLAS thread limit of the callback is lifted again afterwards.
    assert [lib["num_threads"] for lib in threadpool_info()] == blas_before


def test_lapack_threads_setting(monkeypatch):
    monkeypatch.delenv(lapack.LAPACK_THREADS_ENV, raising=False)
    assert lapack.lapack_threads() == len(os.sched_getaffinity(0))
    monkeypatch.setenv(lapack.LAPACK_THREADS_ENV, "0")
    assert lapack.lapack_threads() == 1
    monkeypatch.setenv(lapack.LAPACK_THREADS_ENV, "two")
    with pytest.raises(ValueError, match="METABO_LAPACK_THREADS must be a positive integer"):
        lapack.lapack_threads()
