"""pretrain(): tuning log in, Prior out, for each objective, with failures and held-out tasks."""

import numpy as np
import pandas as pd
import pytest

from metabo.data import read_log
from metabo.defaults import model_spec
from metabo.gp import GPModel
from metabo.pretrain import PretrainError, evaluate, pretrain
from metabo.pretrain.objectives import ekl_objective, pad_blocks
from metabo.pretrain.train import warp_log
from metabo.space import Objective, Parameter, Space

SPACE = Space(
    (Parameter("lr", "real", 1e-3, 1.0, log=True), Parameter("wd", "real", 0.0, 0.1)),
    Objective("error", "minimize", "neg_log"),
)


def make_log(matched=True, seed=0):
    """5 tasks; with ``matched`` the first 12 configurations are shared by every task."""
    rng = np.random.default_rng(seed)
    shared = np.column_stack([10 ** rng.uniform(-3, 0, 12), rng.uniform(0, 0.1, 12)])
    rows = []
    for t in range(5):
        own = np.column_stack([10 ** rng.uniform(-3, 0, 10), rng.uniform(0, 0.1, 10)])
        configs = np.vstack([shared, own]) if matched else own
        for lr, wd in configs:
            error = 0.1 + 0.5 * (np.log10(lr) + 1.5) ** 2 / 3 + wd + 0.02 * t + 0.01 * rng.random()
            rows.append({"task": f"t{t}", "lr": lr, "wd": wd, "error": min(error, 0.95), "status": "ok"})
    rows.append({"task": "t0", "lr": 0.5, "wd": 0.05, "error": np.nan, "status": "diverged"})
    return read_log(pd.DataFrame(rows), SPACE)


@pytest.fixture(scope="module")
def log():
    return make_log()


@pytest.mark.parametrize("objective", ["nll", "ekl", "nll+ekl"])
def test_each_objective_produces_a_prior(log, objective):
    prior = pretrain(log, objective=objective, steps=30, seed=1, ekl_weight=0.5, progress=False)
    assert prior.tasks == ("t0", "t1", "t2", "t3", "t4")
    assert prior.space == SPACE and prior.model == GPModel(**model_spec())
    info = prior.info
    assert info["objective"] == objective and info["steps_run"] == 30 and info["seed"] == 1
    assert info["points"] == 5 * 22  # the diverged trial is dropped
    assert info["matched_blocks"] == 1  # reported for every objective, used by ekl ones
    assert info["metabo_version"] and info["time_s"] > 0
    losses = prior.losses
    warped = warp_log(log, prior.warp)  # the losses are on the warped scores the prior was fitted to
    padded, _ = warped.to_padded()
    np.testing.assert_allclose(
        losses["train_nll"], evaluate(prior.model, prior.params, padded)["nll"], rtol=1e-10
    )
    if objective == "nll":
        assert losses["train"] == losses["train_nll"] and "train_ekl" not in losses
    else:
        blocks = warped.matched_blocks()
        assert blocks[0].y.shape == (5, 12)
        b = pad_blocks(blocks)
        ekl = float(ekl_objective(prior.model, prior.params, b.x, b.y, b.point_mask, b.task_mask))
        np.testing.assert_allclose(losses["train_ekl"], ekl, rtol=1e-10)
        expected = ekl if objective == "ekl" else losses["train_nll"] + 0.5 * ekl
        np.testing.assert_allclose(losses["train"], expected, rtol=1e-10)
    assert np.isfinite(losses["train"]) and losses["train"] < info["loss_curve"][0]


def test_heldout_tasks_and_failure_policy(log):
    prior = pretrain(log, steps=40, heldout=["t4"], failures="impute_worst", eval_every=5, progress=False)
    assert prior.tasks == ("t0", "t1", "t2", "t3")
    assert prior.info["heldout_tasks"] == ["t4"]
    assert prior.info["points"] == 4 * 22 + 1  # the diverged trial imputed with the worst score
    heldout, _ = warp_log(log, prior.warp).select(["t4"]).to_padded()
    np.testing.assert_allclose(
        prior.losses["heldout_nll"], evaluate(prior.model, prior.params, heldout)["nll"], rtol=1e-10
    )


def test_clear_errors(log):
    with pytest.raises(PretrainError, match="matched blocks"):
        pretrain(make_log(matched=False), objective="ekl", steps=5, progress=False)
    with pytest.raises(PretrainError, match="not in the log"):
        pretrain(log, heldout=["nope"], steps=5, progress=False)
    with pytest.raises(PretrainError, match="no training tasks"):
        pretrain(log, heldout=log.tasks, steps=5, progress=False)
    with pytest.raises(PretrainError, match="unknown objective"):
        pretrain(log, objective="kl", progress=False)
    with pytest.raises(PretrainError, match="needs its search space"):
        pretrain(log.frame, progress=False)
    with pytest.raises(PretrainError, match="TuningLog, a path or a DataFrame"):
        pretrain(42, progress=False)


@pytest.mark.parametrize("scale", [1e-12, 1e12])
def test_scores_far_from_unit_scale_give_the_same_prior_in_their_units(scale, tmp_path):
    """Objectives of 1e-12 or 1e12 scale: the fit is the unit-scale one, re-expressed exactly."""
    from metabo.pretrain import Prior

    space = Space(SPACE.parameters, Objective("error", "minimize", None))
    rng = np.random.default_rng(2)
    rows = []
    for t in range(4):
        for lr, wd in zip(10 ** rng.uniform(-3, 0, 15), rng.uniform(0, 0.1, 15), strict=True):
            rows.append({"task": f"t{t}", "lr": lr, "wd": wd, "error": (np.log10(lr) + 1.5) ** 2 + 3 * wd + 0.05 * t})
    frame = pd.DataFrame(rows)
    # Without a warp: the point is how raw scores far from unit scale are fitted.
    settings = dict(steps=150, progress=False, warp="none")
    base = pretrain(read_log(frame, space), **settings)
    scaled_log = read_log(frame.assign(error=frame.error * scale), space)
    prior = pretrain(scaled_log, **settings)
    assert base.info["score_unit"] == 1.0 and prior.info["score_unit"] == pytest.approx(scale)
    assert prior.losses["train_nll"] == pytest.approx(base.losses["train_nll"] + np.log(scale), rel=1e-7)
    b, p = base.model.hyper(base.params), prior.model.hyper(prior.params)
    np.testing.assert_allclose(p.lengthscale, b.lengthscale, rtol=1e-6)
    assert float(p.signal) == pytest.approx(scale**2 * float(b.signal), rel=1e-6)
    assert float(p.noise) == pytest.approx(scale**2 * float(b.noise), rel=1e-6)
    assert float(prior.params.mean_constant) == pytest.approx(scale * float(base.params.mean_constant), rel=1e-6)
    prior.save(tmp_path / "prior.npz")
    loaded = Prior.load(tmp_path / "prior.npz")
    assert loaded.model == prior.model and float(loaded.model.hyper(loaded.params).noise) == float(p.noise)


def test_failure_model_is_pre_trained_when_the_log_has_failures(log):
    from metabo.failure import failure_probability, num_features, update

    prior = pretrain(log, steps=5, progress=False)
    assert prior.failure is not None and np.shape(prior.failure.weights) == (num_features(2),)
    record = prior.info["failure_model"]
    assert record["points"] == 5 * 22 + 1 and record["tasks"] == 5
    np.testing.assert_allclose(record["failure_rate"], 1 / 111, rtol=1e-12)
    # The one diverged trial (lr 0.5, the largest learning rates) is where failures are predicted.
    corner = SPACE.to_unit(np.array([[0.5, 0.05]]))
    elsewhere = SPACE.to_unit(np.array([[1e-3, 0.05]]))
    p = failure_probability(update(prior.failure, np.zeros((0, 2)), np.zeros(0)), np.vstack([corner, elsewhere]))
    assert p[0] > p[1]
    assert pretrain(log, steps=5, progress=False, failure_model=False).failure is None
    no_failures = read_log(log.frame[log.frame["status"] == "ok"], SPACE)
    clean = pretrain(no_failures, steps=5, progress=False)
    assert clean.failure is None and "failure_model" not in clean.info
