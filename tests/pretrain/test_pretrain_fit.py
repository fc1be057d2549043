"""The fitting loop: one compilation, optimizers, non-finite losses, early stopping, options."""

import jax
import numpy as np
import pytest
from pretrain_helpers import sample_gp_tasks

from metabo.data import PaddedTasks, pad_arrays
from metabo.gp import GPModel
from metabo.pretrain import PretrainError, evaluate, fit, initial_params
from metabo.pretrain.fit import TRACES, StepConfig

MODEL = GPModel()
HYPER = dict(mean=1.0, lengthscale=np.array([0.3, 0.5]), signal=1.5, noise=0.05)


@pytest.fixture(scope="module")
def padded():
    xs, ys = sample_gp_tasks(np.random.default_rng(0), 8, [12, 20, 16, 9, 20, 14, 18, 20], 2, **HYPER)
    return pad_arrays(xs, ys)


def test_step_compiles_once_per_run_and_is_reused(padded):
    first = fit(MODEL, padded, steps=15, learning_rate=0.0123, progress=False)
    assert first.traces == 1
    assert first.steps_run == 15 and first.losses.shape == (15,) and first.stop_reason == "steps"
    second = fit(MODEL, padded, steps=5, learning_rate=0.0123, seed=3, progress=False)
    assert second.traces == 0  # same shapes and configuration: the compiled step is reused
    assert TRACES[StepConfig(MODEL, learning_rate=0.0123)] == 1


def test_adam_decreases_loss_and_lbfgs_finds_the_same_optimum(padded):
    adam = fit(MODEL, padded, steps=400, learning_rate=0.05, progress=False)
    assert adam.losses[-1] < adam.losses[0] - 0.1
    lbfgs = fit(MODEL, padded, steps=60, optimizer="lbfgs", progress=False)
    assert lbfgs.stop_reason in ("steps", "converged")
    a = evaluate(MODEL, adam.params, padded)["nll"]
    b = evaluate(MODEL, lbfgs.params, padded)["nll"]
    assert abs(a - b) < 2e-3
    # L-BFGS never does worse than its own start and does at least as well as Adam here
    assert b <= lbfgs.losses[0] and b <= a + 1e-4


def test_initial_params_from_pooled_statistics(padded):
    params = initial_params(MODEL, 2, padded)
    y = padded.y[padded.mask]
    h = MODEL.hyper(params)
    np.testing.assert_allclose(params.mean_constant, y.mean())
    np.testing.assert_allclose(h.signal + h.noise, y.var(), atol=1e-5)  # + floors
    np.testing.assert_allclose(h.lengthscale, 0.5, atol=1e-5)
    with pytest.raises(PretrainError):
        initial_params(GPModel(mean="mlp"), 2, padded)


def test_stops_on_nonfinite_loss_and_keeps_last_good_params():
    # Exact duplicates, noiseless targets and no noise floor: a huge learning rate drives the
    # noise variance to 0 in a few steps, the Gram matrix becomes singular and the NLL NaN.
    model = GPModel(noise_floor=0.0)
    x = np.repeat(np.linspace(0, 1, 6)[:, None], 2, axis=0)
    y = np.sin(5 * x[:, 0])
    padded = pad_arrays([x], [y])
    result = fit(model, padded, steps=200, learning_rate=50.0, progress=False)
    assert result.stop_reason == "nonfinite"
    assert result.steps_run < 200
    assert not np.isfinite(result.losses[-1])
    assert np.all(np.isfinite(result.losses[:-1]))
    leaves = jax.tree_util.tree_leaves(result.params)
    assert all(np.all(np.isfinite(np.asarray(v))) for v in leaves)
    kept = evaluate(model, result.params, padded)["nll"]
    assert np.isfinite(kept)
    # the kept parameters are the ones the last finite loss was computed at
    np.testing.assert_allclose(kept, result.losses[result.best_step], rtol=1e-8)


def test_heldout_early_stopping_keeps_best_heldout_params(padded):
    # Held-out tasks from a very different GP: as training fits the training tasks, the held-out
    # NLL eventually rises and training stops; the returned parameters are the best held-out ones.
    xs, ys = sample_gp_tasks(
        np.random.default_rng(1), 3, 15, 2, mean=4.0, lengthscale=[2.0, 2.0], signal=0.05, noise=0.01
    )
    heldout = pad_arrays(xs, ys)
    result = fit(
        MODEL,
        padded,
        steps=2000,
        learning_rate=0.05,
        heldout=heldout,
        eval_every=5,
        patience=4,
        progress=False,
    )
    assert result.stop_reason == "early_stopping"
    assert result.steps_run < 2000
    best = np.argmin(result.heldout_losses)
    assert result.best_step == result.heldout_steps[best]
    np.testing.assert_allclose(
        evaluate(MODEL, result.params, heldout)["nll"], result.heldout_losses[best], rtol=1e-10
    )
    assert (
        len(result.heldout_losses) - 1 - best == 4
    )  # stopped after `patience` evaluations without improvement


def test_batch_size_subsets_are_reproducible(padded):
    a = fit(MODEL, padded, steps=20, batch_size=6, seed=7, progress=False)
    b = fit(MODEL, padded, steps=20, batch_size=6, seed=7, progress=False)
    c = fit(MODEL, padded, steps=20, batch_size=6, seed=8, progress=False)
    np.testing.assert_array_equal(a.losses, b.losses)
    assert not np.array_equal(a.losses, c.losses)
    assert np.all(np.isfinite(a.losses))
    # the first loss is the per-point NLL of a subset, not of all the data
    full = fit(MODEL, padded, steps=1, seed=7, progress=False)
    assert a.losses[0] != full.losses[0]


def test_progress_bar_quiet_when_not_a_terminal(padded, capsys):
    fit(MODEL, padded, steps=3, progress=None)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(objective="mse"), "unknown objective"),
        (dict(optimizer="sgd"), "unknown optimizer"),
        (dict(steps=-1), "steps"),
        (dict(learning_rate=-0.1), "learning_rate"),
        (dict(batch_size=0), "batch_size"),
        (dict(optimizer="lbfgs", batch_size=4), "adam"),
        (dict(objective="ekl"), "matched blocks"),
        (dict(ekl_weight=float("nan")), "ekl_weight"),
    ],
)
def test_bad_options_raise_clear_errors(padded, kwargs, message):
    with pytest.raises(PretrainError, match=message):
        fit(MODEL, padded, progress=False, **kwargs)


def test_bad_data_raise_clear_errors(padded):
    bad = PaddedTasks(padded.x, np.where(padded.mask, np.nan, 0.0), padded.mask)
    with pytest.raises(PretrainError, match="non-finite"):
        fit(MODEL, bad, steps=1, progress=False)
    with pytest.raises(PretrainError, match="no observations"):
        fit(MODEL, PaddedTasks(padded.x, padded.y, np.zeros_like(padded.mask)), steps=1, progress=False)
    with pytest.raises(PretrainError, match="held-out"):
        fit(MODEL, padded, steps=1, heldout=pad_arrays([np.zeros((3, 5))], [np.zeros(3)]), progress=False)


def test_blas_thread_limit_is_scoped():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from metabo.pretrain.fit import blas_thread_limit

    def blas_threads():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]

    import scipy.linalg.lapack  # noqa: F401  (SciPy's BLAS loaded, as during a fit)

    # Two threads to start from: the tests' environment gives BLAS one (conftest).
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        assert all(n == 2 for n in before)
        with blas_thread_limit(1):
            assert blas_threads() and all(n == 1 for n in blas_threads())
        assert blas_threads() == before  # restored
        with blas_thread_limit(None):
            assert blas_threads() == before
