"""HyperBO methods: pre-trained prior (NLL, EKL) and the regret-bounded empirical variant."""

import numpy as np
import pandas as pd
import pytest
from synthetic_helpers import expected_random_regret, replay, transfer_vs_random

from metabo.baselines import get_method
from metabo.baselines.common import match_rows
from metabo.baselines.hyperbo import (
    EmpiricalNotApplicable,
    ekl_plan,
    thin_matched,
)
from metabo.bench.synthetic import synthetic_log
from metabo.bo.empirical import EmpiricalPrior
from metabo.data import read_log

# Small pre-trainings keep the tests fast; the shipped default is larger.
FAST = {"pretrain_steps": 100}


@pytest.fixture(scope="module")
def matched():
    return synthetic_log(0, num_tasks=7, num_points=40, dim=2, matched=True)


@pytest.fixture(scope="module")
def unmatched():
    return synthetic_log(1, num_tasks=7, num_points=40, dim=2, matched=False)


def build(name, log, seed=0, **options):
    method = get_method(name)(log.space, log, seed=seed, **{**FAST, **options})
    method.setup()
    return method


@pytest.mark.parametrize("part", ["matched", "unmatched"])
def test_hyperbo_beats_random_search(part, request):
    log = request.getfixturevalue(part)
    ours, random = transfer_vs_random(
        lambda train, seed: get_method("hyperbo")(log.space, train, seed=seed, **FAST), log, ["task0", "task3"], [0], steps=10
    )
    assert ours[:, -1].mean() < 0.6 * random[:, -1].mean(), (ours, random)
    assert ours[:, 3:].sum() < random[:, 3:].sum()


def test_pretraining_is_shared_by_seeds_and_keyed_by_content(matched):
    train = matched.without("task0")
    a = get_method("hyperbo")(matched.space, train, seed=1, **FAST)
    b = get_method("hyperbo")(matched.space, train, seed=2, **FAST)
    a.setup(), b.setup()
    assert a.prior is b.prior
    assert a.prior.info["seed"] == 0  # pre-training's seed is the option, not the method's seed
    # Same task names and size, different values: a different pre-training...
    frame = train.frame.copy()
    frame["objective"] = 3.0 + frame["objective"] * 2.0
    doubled = read_log(frame, matched.space)
    other = get_method("hyperbo")(matched.space, doubled, seed=1, **FAST)
    other.setup()
    assert other.prior is not a.prior
    # ...which, on per-task warped scores, finds the same prior (the default warp is invariant to
    # increasing maps of a task's scores),
    np.testing.assert_allclose(other.prior.hyperparameters()["lengthscale"], a.prior.hyperparameters()["lengthscale"])
    # while on raw scores the variances scale with the square of the factor.
    raw = [get_method("hyperbo")(matched.space, log, seed=1, warp="none", **FAST) for log in (train, doubled)]
    for method in raw:
        method.setup()
    ratio = raw[1].prior.hyperparameters()["signal"] / raw[0].prior.hyperparameters()["signal"]
    assert 3.0 < ratio < 5.0


def test_first_proposal_maximizes_the_prior_mean(matched):
    # With no observations EI's incumbent is the best prior mean and the prior std is the same
    # everywhere (stationary kernel), so EI is largest where the prior mean is.
    method = build("hyperbo", matched.without("task0"))
    x, _ = matched.task_arrays("task0")
    observed = np.zeros(len(x), dtype=bool)
    index = method.propose_finite(np.zeros((0, 2)), np.zeros(0), x, observed, 0)
    assert index == int(np.argmax(method.prior.mean(x)))
    # Once it is observed, the next proposal is the best prior mean among the others.
    observed[index] = True
    mean = np.where(observed, -np.inf, method.prior.mean(x))
    assert method.propose_finite(np.zeros((0, 2)), np.zeros(0), x, observed, 0) == int(np.argmax(mean))


def test_ekl_objective_choice(matched, unmatched):
    assert ekl_plan(matched) == ("ekl", matched)
    assert ekl_plan(unmatched) == ("nll", unmatched)
    # A matched log plus one task on its own points: EKL covers only part of the data.
    solo = unmatched.frame[unmatched.frame["task"] == "task1"].assign(task="solo")
    partly = read_log(pd.concat([matched.frame, solo], ignore_index=True), matched.space)
    assert ekl_plan(partly)[0] == "nll+ekl"
    method = build("hyperbo-ekl", matched.without("task0"))
    assert method.objective_used == "ekl" and method.prior.info["objective"] == "ekl"
    method = build("hyperbo-ekl", unmatched.without("task0"))
    assert method.objective_used == "nll" and method.prior.info["objective"] == "nll"


def test_ekl_beats_random_search_on_matched(matched):
    ours, random = transfer_vs_random(
        lambda train, seed: get_method("hyperbo-ekl")(matched.space, train, seed=seed, **FAST), matched, ["task1"], [0], steps=10
    )
    assert ours[:, -1].mean() < 0.6 * random[:, -1].mean()


def test_box_mode_proposals(unmatched):
    method = build("hyperbo", unmatched.without("task0"))
    f = lambda p: -np.sum((p - 0.4) ** 2, axis=-1)  # noqa: E731
    xs = []
    for step in range(3):
        x_obs = np.asarray(xs).reshape(-1, 2)
        xs.append(method.propose_box(x_obs, f(x_obs), step))
    xs = np.asarray(xs)
    assert np.all((xs >= 0) & (xs <= 1)) and len(np.unique(xs.round(12), axis=0)) == 3


# ---- hyperbo-empirical ------------------------------------------------------------------------
def test_empirical_follows_the_paper_within_budget(matched):
    train = matched.without("task0")
    x, y = matched.task_arrays("task0")
    method = build("hyperbo-empirical", train)
    block = train.matched_blocks()[0]
    prior = EmpiricalPrior.from_block(block)
    assert prior.num_tasks == 6 and np.allclose(block.x, x)
    picks = []
    for step in range(prior.max_steps()):
        observed = np.zeros(len(y), dtype=bool)
        observed[picks] = True
        index = method.propose_finite(x[picks], y[picks], x, observed, step)
        # Candidates are the block's points in the same order here: indices agree.
        assert index == prior.suggest(picks, y[picks], "gp-ucb", delta=0.05)
        picks.append(index)


def test_empirical_unbiased_covariance_and_mean(matched):
    train = matched.without("task0")
    method = build("hyperbo-empirical", train)
    x, _ = matched.task_arrays("task0")
    prior, index = method.empirical_prior(x)
    ys = np.stack([train.task_arrays(t)[1] for t in train.tasks])  # [N, M]
    np.testing.assert_allclose(prior.mean[index], ys.mean(axis=0))
    np.testing.assert_allclose(prior.cov[np.ix_(index, index)], np.cov(ys, rowvar=False, ddof=1))


def test_empirical_runs_past_its_budget_and_beats_random(matched):
    regrets, random = [], []
    for target in ("task0", "task4"):
        train, (x, y) = matched.without(target), matched.task_arrays(target)
        method = build("hyperbo-empirical", train, seed=0)
        _, regret = replay(method, x, y, steps=15)  # N - 2 = 4 corrected steps, then uncorrected
        regrets.append(regret)
        random.append(expected_random_regret(y, 15))
    assert np.mean(regrets, axis=0)[-1] < 0.6 * np.mean(random, axis=0)[-1]


def test_empirical_matched_candidates_first_then_the_rest(matched):
    train = matched.without("task0")
    x, y = matched.task_arrays("task0")
    extra = np.array([[0.123456, 0.654321], [0.2222, 0.9999]])
    candidates = np.concatenate([x[:6], extra])
    method = build("hyperbo-empirical", train)
    picks, _ = replay(method, candidates, np.concatenate([y[:6], [0.0, 0.0]]), steps=8)
    assert set(picks[:6]) == set(range(6)) and set(picks[6:]) == {6, 7}


def test_empirical_refuses_unmatched(unmatched, matched):
    with pytest.raises(EmpiricalNotApplicable, match="shared"):
        build("hyperbo-empirical", unmatched.without("task0"))
    method = build("hyperbo-empirical", matched.without("task0"))
    far = np.random.default_rng(0).random((10, 2))
    with pytest.raises(EmpiricalNotApplicable, match="candidates"):
        method.propose_finite(np.zeros((0, 2)), np.zeros(0), far, np.zeros(10, dtype=bool), 0)


def test_thin_matched_keeps_blocks_matched(matched, unmatched):
    solo = unmatched.frame[unmatched.frame["task"] == "task1"].assign(task="solo")
    log = read_log(pd.concat([matched.frame, solo], ignore_index=True), matched.space)
    thin = thin_matched(log, max_points=16, seed=0)
    (block,) = thin.matched_blocks()
    assert block.y.shape == (7, 16)
    assert np.all(match_rows(block.x, matched.task_arrays("task0")[0]) >= 0)
    np.testing.assert_array_equal(thin.task_arrays("solo")[1], log.task_arrays("solo")[1])
    assert thin_matched(log, max_points=40) is log  # nothing to cut


def test_thin_matched_removes_fragments(matched):
    # Diverged trials split a matched design into blocks of different task sets: here task1
    # failed at 3 configurations, which form a 3-point block of the other 6 tasks.
    frame = matched.frame.copy()
    rows = frame.index[frame["task"] == "task1"][:3]
    frame.loc[rows, "status"] = "diverged"
    log = read_log(frame, matched.space)
    sizes = sorted(len(b.x) for b in log.matched_blocks())
    assert sizes == [3, 37]
    thin = thin_matched(log)
    assert [len(b.x) for b in thin.matched_blocks()] == [37]
    assert len(thin.task_arrays("task2")[1]) == 37
    assert ekl_plan(log)[0] == "ekl"


def test_core_options_share_one_pre_training(matched):
    plain = build("hyperbo", matched)
    guarded = build("hyperbo", matched, transfer_guard=True, guard_margin=0.5, acquisition="ucb")
    assert guarded.prior is plain.prior  # the same cached pre-training
    longer = build("hyperbo", matched, pretrain_steps=101)
    assert longer.prior is not plain.prior and longer.prior.info["steps"] == 101
