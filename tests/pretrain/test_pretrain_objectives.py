"""Objectives against direct NumPy/SciPy computations, gradients, padding and subsets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from pretrain_helpers import np_gaussian_nll, np_kl_gauss, np_matern52, np_task_nll

from metabo.data import MatchedBlock, pad_arrays
from metabo.gp import GPModel
from metabo.pretrain.objectives import (
    PretrainError,
    combined_objective,
    ekl_block,
    ekl_objective,
    gaussian_nll_multi,
    nll_objective,
    pad_blocks,
    per_task_nll,
    subsample,
)

MODEL = GPModel(mean="constant", kernel="matern52")
# Jitted once per shape: eager execution of these small programs is slower than compiling them.
ekl_block_jit = jax.jit(ekl_block, static_argnums=0)
ekl_objective_jit = jax.jit(ekl_objective, static_argnums=0, static_argnames="normalize")
TRUE = dict(mean=0.7, lengthscale=np.array([0.3, 0.6, 0.45]), signal=1.3, noise=0.05)
DIM = 3


def params_for(model=MODEL, **hyper):
    h = {**TRUE, **hyper}
    params = model.init(jax.random.PRNGKey(0), DIM)
    params = model.with_hyper(params, lengthscale=h["lengthscale"], signal=h["signal"], noise=h["noise"])
    return params._replace(mean_constant=jnp.asarray(h["mean"]))


@pytest.fixture(scope="module")
def tasks():
    rng = np.random.default_rng(3)
    sizes = [7, 12, 3, 9]
    xs = [rng.random((n, DIM)) for n in sizes]
    ys = [np.sin(3 * x[:, 0]) + x[:, 1] + 0.1 * rng.standard_normal(len(x)) for x in xs]
    return xs, ys


def test_nll_matches_numpy_sum_over_tasks_of_different_sizes(tasks):
    xs, ys = tasks
    padded = pad_arrays(xs, ys)
    params = params_for()
    expected = [
        np_task_nll(x, y, TRUE["mean"], TRUE["lengthscale"], TRUE["signal"], TRUE["noise"])
        for x, y in zip(xs, ys, strict=True)
    ]
    per_task = jax.jit(per_task_nll, static_argnums=0)(MODEL, params, padded.x, padded.y, padded.mask)
    np.testing.assert_allclose(per_task, expected, rtol=1e-10)
    objective = jax.jit(nll_objective, static_argnums=0, static_argnames="normalize")
    total = objective(MODEL, params, padded.x, padded.y, padded.mask, normalize=False)
    np.testing.assert_allclose(total, sum(expected), rtol=1e-10)
    per_point = objective(MODEL, params, padded.x, padded.y, padded.mask)
    np.testing.assert_allclose(per_point, sum(expected) / sum(len(y) for y in ys), rtol=1e-10)


def test_nll_ignores_padding_and_empty_tasks(tasks):
    xs, ys = tasks
    params = params_for()
    tight = pad_arrays(xs, ys)
    loose = pad_arrays(xs, ys, bucket=16)
    assert loose.x.shape[1] == 16
    # An extra task made only of padding (e.g. bucketing the task count) contributes nothing.
    x = np.concatenate([loose.x, np.full((1, 16, DIM), 0.5)])
    y = np.concatenate([loose.y, np.full((1, 16), 7.0)])
    mask = np.concatenate([loose.mask, np.zeros((1, 16), bool)])
    a = nll_objective(MODEL, params, tight.x, tight.y, tight.mask)
    b = nll_objective(MODEL, params, x, y, mask)
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_nll_jit_equals_eager_and_gradients_check(tasks):
    xs, ys = tasks
    padded = pad_arrays(xs, ys)
    params = params_for()
    eager = nll_objective(MODEL, params, padded.x, padded.y, padded.mask)
    jitted = jax.jit(nll_objective, static_argnums=0)(MODEL, params, padded.x, padded.y, padded.mask)
    np.testing.assert_allclose(eager, jitted, rtol=1e-12)
    f = jax.jit(lambda p: nll_objective(MODEL, p, padded.x, padded.y, padded.mask))
    check_grads(f, (params,), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_nll_gradient_matches_finite_differences_of_numpy(tasks):
    # d/d(mean) of the summed NLL from the NumPy reference, independent of JAX autodiff.
    xs, ys = tasks
    padded = pad_arrays(xs, ys)
    grad = jax.grad(lambda p: nll_objective(MODEL, p, padded.x, padded.y, padded.mask, normalize=False))(
        params_for()
    )

    def np_total(mean):
        return sum(
            np_task_nll(x, y, mean, TRUE["lengthscale"], TRUE["signal"], TRUE["noise"])
            for x, y in zip(xs, ys, strict=True)
        )

    eps = 1e-6
    fd = (np_total(TRUE["mean"] + eps) - np_total(TRUE["mean"] - eps)) / (2 * eps)
    np.testing.assert_allclose(grad.mean_constant, fd, rtol=1e-6)


def test_subsample_draws_real_points_without_replacement():
    rng = np.random.default_rng(0)
    sizes = [30, 5, 12]
    xs = [rng.random((n, 2)) for n in sizes]
    ys = [np.arange(n, dtype=float) + 100 * t for t, n in enumerate(sizes)]
    padded = pad_arrays(xs, ys)
    x, y, mask = subsample(jax.random.PRNGKey(1), padded.x, padded.y, padded.mask, 8)
    assert x.shape == (3, 8, 2) and y.shape == (3, 8) and mask.shape == (3, 8)
    for t, n in enumerate(sizes):
        chosen = np.asarray(y[t])[np.asarray(mask[t])]
        assert len(chosen) == min(n, 8)
        assert len(set(chosen)) == len(chosen)  # no repeats
        assert set(chosen) <= set(ys[t])  # only this task's real points
        # inputs travel with their scores
        rows = np.asarray(chosen - 100 * t, dtype=int)
        np.testing.assert_array_equal(np.asarray(x[t])[np.asarray(mask[t])], xs[t][rows])
    # small tasks keep every point
    assert sorted(np.asarray(y[1])[np.asarray(mask[1])]) == sorted(ys[1])
    # no subsetting when the batch covers the padded width
    same = subsample(jax.random.PRNGKey(1), padded.x, padded.y, padded.mask, 30)
    assert same[0] is padded.x
    with pytest.raises(PretrainError):
        subsample(jax.random.PRNGKey(1), padded.x, padded.y, padded.mask, 0)


def test_subsample_is_uniform():
    # Each of 20 points is picked with probability 5/20 per draw: over 2000 draws the counts are
    # Binomial(2000, 0.25) with sd ~19; allow 5 sd.
    padded = pad_arrays([np.zeros((20, 1))], [np.arange(20.0)])
    keys = jax.random.split(jax.random.PRNGKey(0), 2000)
    draw = jax.jit(jax.vmap(lambda k: subsample(k, padded.x, padded.y, padded.mask, 5)[1]))
    picks = np.asarray(draw(keys)).astype(int).ravel()
    counts = np.bincount(picks, minlength=20)
    assert np.all(np.abs(counts - 500) < 5 * np.sqrt(2000 * 0.25 * 0.75))


# ---- EKL ---------------------------------------------------------------------------------------
def block_data(tasks, points, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((points, DIM))
    y = np.cos(4 * x[:, 0])[None, :] + 0.5 * rng.standard_normal((tasks, points))
    return x, y


def np_ekl_dropped(x, y, params_hyper):
    """1/2 [tr(K^-1 S) + (mu - m)^T K^-1 (mu - m) - M + log det K], built from S explicitly."""
    h = params_hyper
    m = y.mean(axis=0)
    centered = y - m
    s = centered.T @ centered / y.shape[0]
    k = np_matern52(x, x, h["lengthscale"], h["signal"]) + h["noise"] * np.eye(len(x))
    mu = np.full(len(x), h["mean"])
    trace = np.trace(np.linalg.solve(k, s))
    quad = (mu - m) @ np.linalg.solve(k, mu - m)
    return 0.5 * (trace + quad - len(x) + np.linalg.slogdet(k)[1])


@pytest.mark.parametrize("tasks,points", [(3, 10), (12, 5)])
def test_ekl_matches_numpy(tasks, points):
    # (3, 10): S has rank 2 < 10 (rank-deficient); (12, 5): S is full rank.
    x, y = block_data(tasks, points)
    params = params_for()
    value = ekl_block_jit(MODEL, params, x, y)
    np.testing.assert_allclose(value, np_ekl_dropped(x, y, TRUE), rtol=1e-10)
    np.testing.assert_allclose(ekl_objective_jit(MODEL, params, x, y), value / points, rtol=1e-12)
    np.testing.assert_allclose(ekl_objective_jit(MODEL, params, x, y, normalize=False), value, rtol=1e-12)


def test_ekl_plus_half_logdet_s_is_the_full_kl_when_s_has_full_rank():
    x, y = block_data(40, 4)
    params = params_for()
    m = y.mean(axis=0)
    s = (y - m).T @ (y - m) / y.shape[0]
    k = np_matern52(x, x, TRUE["lengthscale"], TRUE["signal"]) + TRUE["noise"] * np.eye(len(x))
    kl = np_kl_gauss(m, s, np.full(len(x), TRUE["mean"]), k)
    value = ekl_block_jit(MODEL, params, x, y)
    np.testing.assert_allclose(value - 0.5 * np.linalg.slogdet(s)[1], kl, rtol=1e-10)


def test_ekl_equals_mean_task_nll_up_to_constants():
    # 1/N sum_i NLL_i = EKL + M/2 log 2 pi + M/2 (with log det S dropped): the two objectives agree
    # on matched data, which is why per-point normalization puts them on one scale.
    x, y = block_data(6, 8, seed=4)
    params = params_for()
    cov = np_matern52(x, x, TRUE["lengthscale"], TRUE["signal"]) + TRUE["noise"] * np.eye(8)
    mean_nll = np.mean([np_gaussian_nll(row, np.full(8, TRUE["mean"]), cov) for row in y])
    np.testing.assert_allclose(
        ekl_block_jit(MODEL, params, x, y) + 4 * np.log(2 * np.pi) + 4, mean_nll, rtol=1e-10
    )


def test_ekl_padded_blocks_equal_separate_blocks():
    params = params_for()
    (x1, y1), (x2, y2) = block_data(3, 10, seed=1), block_data(5, 6, seed=2)
    blocks = pad_blocks([MatchedBlock(("a", "b", "c"), x1, y1), MatchedBlock(tuple("vwxyz"), x2, y2)])
    assert blocks.x.shape == (2, 10, DIM) and blocks.y.shape == (2, 5, 10)
    total = ekl_objective_jit(
        MODEL, params, blocks.x, blocks.y, blocks.point_mask, blocks.task_mask, normalize=False
    )
    separate = ekl_block_jit(MODEL, params, x1, y1) + ekl_block_jit(MODEL, params, x2, y2)
    np.testing.assert_allclose(total, separate, rtol=1e-10)
    per_point = ekl_objective_jit(MODEL, params, blocks.x, blocks.y, blocks.point_mask, blocks.task_mask)
    np.testing.assert_allclose(per_point, separate / 16, rtol=1e-10)
    assert pad_blocks([]) is None


def test_ekl_gradients_check():
    x, y = block_data(3, 10)
    f = jax.jit(lambda p: ekl_objective(MODEL, p, x, y))
    check_grads(f, (params_for(),), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_gaussian_nll_multi_value_and_gradient():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((6, 6))
    residuals = rng.standard_normal((4, 6))

    def f(a, r):
        gram = a @ a.T + 0.5 * jnp.eye(6)  # SPD for any a, so finite differences stay valid
        return gaussian_nll_multi(gram, r)

    gram = a @ a.T + 0.5 * np.eye(6)
    expected = sum(np_gaussian_nll(r, np.zeros(6), gram) - 3 * np.log(2 * np.pi) for r in residuals)
    expected -= 1.5 * np.linalg.slogdet(gram)[1]  # 1/2 log det K once, not once per residual (4)
    np.testing.assert_allclose(f(a, residuals), expected, rtol=1e-10)
    check_grads(f, (a, residuals), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_combined_is_weighted_sum(tasks):
    xs, ys = tasks
    padded = pad_arrays(xs, ys)
    x, y = block_data(3, 10)
    blocks = pad_blocks([MatchedBlock(("a", "b", "c"), x, y)])
    params = params_for()
    nll = nll_objective(MODEL, params, padded.x, padded.y, padded.mask)
    ekl = ekl_objective_jit(MODEL, params, x, y)
    value = jax.jit(combined_objective, static_argnums=0)(
        MODEL, params, padded.x, padded.y, padded.mask, blocks, ekl_weight=0.3
    )
    np.testing.assert_allclose(value, nll + 0.3 * ekl, rtol=1e-12)
