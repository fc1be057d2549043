"""Recovery: pre-training on draws from a known GP finds that GP's parameters.

30 tasks, each a draw of GP(1.5, Matern52 ARD(lengthscales 0.15, 0.4; signal variance 2)) plus
N(0, 0.05) noise at its own 40 uniform random inputs in [0, 1]^2 (seeded). With this much data the
maximum-likelihood estimates sit close to the truth; the tolerances below are about 3x the
errors seen over several seeds (mean +-0.1, lengthscales +-7%, signal -17%, noise +-5%):

- constant mean within 0.3 (absolute),
- each lengthscale within 20% (relative),
- signal variance within 35%, noise variance within 15%.

Tolerances are wide for the signal variance because 30 tasks are only 30 draws of the function's
overall level and amplitude.
"""

import jax
import numpy as np
import pandas as pd
import pytest
from pretrain_helpers import np_task_nll, sample_gp_tasks

from metabo.data import pad_arrays, read_log
from metabo.gp import GPModel
from metabo.pretrain import Prior, evaluate, pretrain
from metabo.space import Objective, Parameter, Space

TRUE = dict(mean=1.5, lengthscale=np.array([0.15, 0.4]), signal=2.0, noise=0.05)
SPACE = Space(
    (Parameter("a", "real", 0.0, 1.0), Parameter("b", "real", 0.0, 1.0)), Objective("y", "maximize")
)


def as_log(xs, ys, prefix):
    frames = [
        pd.DataFrame({"task": f"{prefix}{i}", "a": x[:, 0], "b": x[:, 1], "y": y})
        for i, (x, y) in enumerate(zip(xs, ys, strict=True))
    ]
    return read_log(pd.concat(frames, ignore_index=True), SPACE)


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(2024)
    xs, ys = sample_gp_tasks(rng, 30, 40, 2, **TRUE)
    prior = pretrain(
        as_log(xs, ys, "train"),
        model=GPModel("constant", "matern52"),
        steps=1000,
        seed=0,
        progress=False,
        batch_size=None,
        warp="none",  # recovering the generating GP needs the scores as they are
    )
    test_xs, test_ys = sample_gp_tasks(rng, 10, 25, 2, **TRUE)
    return prior, (xs, ys), (test_xs, test_ys)


def test_recovers_the_generating_parameters(fitted):
    prior, _, _ = fitted
    h = prior.hyperparameters()
    assert abs(h["mean_constant"] - TRUE["mean"]) < 0.3
    np.testing.assert_allclose(h["lengthscale"], TRUE["lengthscale"], rtol=0.2)
    np.testing.assert_allclose(h["signal"], TRUE["signal"], rtol=0.35)
    np.testing.assert_allclose(h["noise"], TRUE["noise"], rtol=0.15)
    assert prior.info["stop_reason"] == "steps" and prior.tasks == tuple(f"train{i}" for i in range(30))


def test_reaches_the_maximum_likelihood(fitted):
    # The fit must be at least as likely as the truth on its own training data (an MLE is), which
    # checks convergence of the optimizer, computed with the independent NumPy reference.
    prior, (xs, ys), _ = fitted
    h = prior.hyperparameters()
    points = sum(len(y) for y in ys)
    learned = (
        sum(
            np_task_nll(x, y, h["mean_constant"], h["lengthscale"], h["signal"], h["noise"])
            for x, y in zip(xs, ys, strict=True)
        )
        / points
    )
    truth = (
        sum(
            np_task_nll(x, y, TRUE["mean"], TRUE["lengthscale"], TRUE["signal"], TRUE["noise"])
            for x, y in zip(xs, ys, strict=True)
        )
        / points
    )
    assert learned <= truth + 1e-6
    np.testing.assert_allclose(prior.losses["train_nll"], learned, rtol=1e-8)


def test_learned_prior_beats_the_default_on_heldout_tasks(fitted):
    prior, _, (test_xs, test_ys) = fitted
    heldout = pad_arrays(test_xs, test_ys)
    default = Prior.default(SPACE)
    learned_nll = evaluate(prior.model, prior.params, heldout)["nll"]
    default_nll = evaluate(default.model, default.params, heldout)["nll"]
    points = sum(len(y) for y in test_ys)
    truth_nll = (
        sum(
            np_task_nll(x, y, TRUE["mean"], TRUE["lengthscale"], TRUE["signal"], TRUE["noise"])
            for x, y in zip(test_xs, test_ys, strict=True)
        )
        / points
    )
    assert learned_nll < default_nll - 0.5  # nats per observation: clearly better
    assert abs(learned_nll - truth_nll) < 0.05  # and close to the true prior


def pathological_task(kind: str, rng: np.random.Generator) -> pd.DataFrame:
    if kind == "constant":  # no variation at all
        x = rng.random((30, 2))
        return pd.DataFrame({"task": "bad", "a": x[:, 0], "b": x[:, 1], "y": 0.7})
    if kind == "near-duplicates":  # 30 trials of one configuration, 1e-13 apart, with noisy values
        x = np.clip(0.3 + 1e-13 * rng.random((30, 2)), 0, 1)
        return pd.DataFrame({"task": "bad", "a": x[:, 0], "b": x[:, 1], "y": 1.5 + 0.2 * rng.standard_normal(30)})
    assert kind == "one-point"
    return pd.DataFrame({"task": "bad", "a": [0.5], "b": [0.5], "y": [2.0]})  # a task of one trial


@pytest.mark.parametrize("kind", ["constant", "near-duplicates", "one-point"])
def test_one_pathological_task_does_not_spoil_pretraining_on_the_rest(kind):
    rng = np.random.default_rng(5)
    xs, ys = sample_gp_tasks(rng, 12, 30, 2, **TRUE)
    healthy = as_log(xs, ys, "t")
    frame = pd.concat([healthy.frame, pathological_task(kind, rng)], ignore_index=True)
    spoiled = read_log(frame, SPACE, duplicates="keep")
    # The fit itself on raw scores (the warp would hide the pathology): the settings of this test.
    settings = dict(
        steps=300, seed=0, progress=False, warp="none", batch_size=None, model=GPModel("constant", "matern52")
    )
    clean_prior = pretrain(healthy, **settings)
    prior = pretrain(spoiled, **settings)
    assert prior.info["steps_run"] == 300 and np.isfinite(prior.losses["train"])
    padded, _ = healthy.to_padded()
    clean = evaluate(clean_prior.model, clean_prior.params, padded)["nll"]
    with_bad = evaluate(prior.model, prior.params, padded)["nll"]
    # Per point, the healthy tasks fit about as well as without the bad task (clean: about 1.1).
    assert np.isfinite(with_bad) and with_bad < clean + 0.1, (clean, with_bad)


def test_an_interrupt_inside_the_host_lapack_call_stops_the_fit_cleanly(monkeypatch):
    """Ctrl-C (or the CLI's SIGTERM) landing inside the step's host LAPACK callback: the fit
    stops as interrupted with the parameters of the last completed step, instead of dying with
    XLA's INTERNAL error."""
    from metabo.gp import lapack
    from metabo.pretrain.fit import fit

    rng = np.random.default_rng(4)
    n = lapack.LAPACK_MIN_POINTS + 6  # large enough for the host LAPACK path
    xs = [rng.random((n, 2)) for _ in range(3)]
    ys = [np.sin(4 * x[:, 0]) + x[:, 1] for x in xs]
    padded = pad_arrays(xs, ys)
    model = GPModel(mean="constant", kernel="matern52")
    real = lapack.host_nll_batch
    calls = {"n": 0}

    def interrupted_on_a_later_call(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:  # inside a later step's forward or backward pass
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(lapack, "host_nll_batch", interrupted_on_a_later_call)
    result = fit(model, padded, steps=50, seed=0, progress=False)
    assert result.stop_reason == "interrupted"
    assert 1 <= result.best_step < 50 and np.all(np.isfinite(result.losses))
    monkeypatch.setattr(lapack, "host_nll_batch", real)
    # The parameters are those after the completed steps: the same as an uninterrupted fit's.
    short = fit(model, padded, steps=result.best_step, seed=0, progress=False)
    for got, want in zip(jax.tree_util.tree_leaves(result.params), jax.tree_util.tree_leaves(short.params), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-9, atol=1e-12)
    with lapack.callback_interrupts():  # nothing left over: it would raise on leaving
        pass


def test_an_interrupt_in_jaxs_own_callback_wrapper_also_stops_the_fit_cleanly(monkeypatch):
    """The signal can land in JAX's wrapper around the host callback, outside metabo's code: XLA
    then raises its INTERNAL error with the KeyboardInterrupt's traceback in the message."""
    from metabo.gp import lapack
    from metabo.pretrain.fit import fit

    rng = np.random.default_rng(5)
    n = lapack.LAPACK_MIN_POINTS + 7  # shapes of its own: the step is traced anew
    xs = [rng.random((n, 2)) for _ in range(2)]
    padded = pad_arrays(xs, [np.cos(3 * x[:, 0]) for x in xs])
    model = GPModel(mean="constant", kernel="matern52")
    real = lapack._host_nll
    calls = {"n": 0}

    def wrapper_interrupted(*args, **kwargs):  # stands in for JAX's wrapper: no except of ours runs
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(lapack, "_host_nll", wrapper_interrupted)
    result = fit(model, padded, steps=50, seed=0, progress=False)
    assert result.stop_reason == "interrupted"
    assert 1 <= result.best_step < 50
    assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in jax.tree_util.tree_leaves(result.params))
