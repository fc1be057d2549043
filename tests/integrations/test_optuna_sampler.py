"""PretrainedGPSampler inside real Optuna studies."""

from dataclasses import dataclass

import jax
import numpy as np
import optuna
import pytest
from integration_helpers import matern52

from metabo.gp import GPModel, GPParams
from metabo.integrations.optuna import IncompatibleStudyError, PretrainedGPSampler, UnsupportedParameterError
from metabo.space import Objective, Parameter, Space

optuna.logging.set_verbosity(optuna.logging.ERROR)

# One space and one model for every test, so the BO step compiles once per session.
SPACE = Space(
    (
        Parameter("lr", "real", 1e-4, 1.0, log=True),
        Parameter("units", "int", 8, 256, log=True),
        Parameter("dropout", "real", 0.0, 0.5),
    ),
    Objective("loss", "minimize"),
)
LENGTHSCALE = np.array([0.3, 0.4, 0.5])
WEIGHTS = np.array([2.0, 0.0, -1.0])  # the prior's mean score rises with lr, falls with dropout


@dataclass(frozen=True)
class FakePrior:
    """What the sampler needs of a metabo.Prior: model, params, space."""

    model: GPModel
    params: GPParams
    space: Space


@pytest.fixture(scope="module")
def prior():
    model = GPModel(mean="linear", kernel="matern52")
    params = model.init(jax.random.key(0), SPACE.dim)
    params = model.with_hyper(params, lengthscale=LENGTHSCALE, signal=0.25, noise=1e-4)
    return FakePrior(model, params._replace(mean_weights=WEIGHTS, mean_constant=np.asarray(0.0)), SPACE)


def _matern52(x1, x2):
    return matern52(x1, x2, LENGTHSCALE, 0.25)


def _task(seed):
    """A score function on the unit cube drawn (approximately) from the prior: mean + GP sample."""
    rng = np.random.default_rng(seed)
    anchors = rng.random((150, SPACE.dim))
    gram = _matern52(anchors, anchors) + 1e-8 * np.eye(len(anchors))
    values = np.linalg.cholesky(gram) @ rng.standard_normal(len(anchors))
    weights = np.linalg.solve(gram, values)
    return lambda unit: float(unit @ WEIGHTS + _matern52(unit[None], anchors)[0] @ weights)


def _objective(score):
    def objective(trial):
        config = [
            trial.suggest_float("lr", 1e-4, 1.0, log=True),
            trial.suggest_int("units", 8, 256, log=True),
            trial.suggest_float("dropout", 0.0, 0.5),
        ]
        return -score(SPACE.to_unit(np.asarray([config]))[0])  # loss = -score, minimized

    return objective


def test_study_runs_and_beats_random_search_on_prior_draws(prior):
    ours, random = [], []
    for seed in range(4):
        score = _task(100 + seed)
        study = optuna.create_study(direction="minimize", sampler=PretrainedGPSampler(prior, seed=seed))
        study.optimize(_objective(score), n_trials=15)
        baseline = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=seed))
        baseline.optimize(_objective(score), n_trials=15)
        ours.append(-study.best_value)
        random.append(-baseline.best_value)
        for trial in study.trials:
            assert 1e-4 <= trial.params["lr"] <= 1.0 and 0.0 <= trial.params["dropout"] <= 0.5
            assert isinstance(trial.params["units"], int) and 8 <= trial.params["units"] <= 256
        configs = {tuple(t.params.values()) for t in study.trials}
        assert len(configs) == 15  # never proposes a configuration twice
    assert np.mean(ours) > np.mean(random)
    assert sum(o > r for o, r in zip(ours, random, strict=True)) >= 3


def test_first_trial_follows_the_prior(prior):
    study = optuna.create_study(direction="minimize", sampler=PretrainedGPSampler(prior, seed=0))
    study.optimize(_objective(_task(0)), n_trials=1)
    unit = SPACE.to_unit(np.asarray([[study.trials[0].params[n] for n in SPACE.names]]))[0]
    # The prior mean 2 u_lr - u_dropout peaks at the largest lr and no dropout.
    assert unit[0] > 0.9 and unit[2] < 0.1


def test_same_seed_same_study(prior):
    runs = []
    for _ in range(2):
        study = optuna.create_study(direction="minimize", sampler=PretrainedGPSampler(prior, seed=7))
        study.optimize(_objective(_task(1)), n_trials=4)
        runs.append([t.params for t in study.trials])
    assert runs[0] == runs[1]


def test_narrower_stepped_ranges_and_renamed_parameters(prior):
    def objective(trial):
        lr = trial.suggest_float("learning_rate", 1e-3, 1e-1, log=True)
        units = trial.suggest_int("units", 16, 128, step=16)
        dropout = trial.suggest_float("dropout", 0.1, 0.3, step=0.05)
        return -_task(2)(SPACE.to_unit(np.asarray([[lr, units, dropout]]))[0])

    sampler = PretrainedGPSampler(prior, seed=0, mapping={"learning_rate": "lr"})
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.optimize(objective, n_trials=6)
    for trial in study.trials:
        p = trial.params
        assert 1e-3 <= p["learning_rate"] <= 1e-1
        assert p["units"] in range(16, 129, 16)
        assert min(abs(p["dropout"] - v) for v in (0.1, 0.15, 0.2, 0.25, 0.3)) < 1e-9
    # Following the prior inside the narrower box: the largest learning rate, the least dropout.
    first = study.trials[0].params
    assert first["learning_rate"] > 0.05 and first["dropout"] <= 0.15


def test_categorical_parameters_outside_the_prior_go_to_the_independent_sampler(prior):
    def objective(trial):
        trial.suggest_float("lr", 1e-4, 1.0, log=True)
        trial.suggest_int("units", 8, 256, log=True)
        trial.suggest_float("dropout", 0.0, 0.5)
        return 0.0 if trial.suggest_categorical("optimizer", ["sgd", "adam"]) == "sgd" else 1.0

    study = optuna.create_study(direction="minimize", sampler=PretrainedGPSampler(prior, seed=0))
    with pytest.warns(UserWarning, match="'optimizer' is not in the prior's space"):
        study.optimize(objective, n_trials=3)
    assert {t.params["optimizer"] for t in study.trials} <= {"sgd", "adam"}


CHOICE_SPACE = Space(
    (Parameter("x", "real", -2.0, 2.0), Parameter("optimizer", "categorical", choices=["adam", "sgd", "rmsprop"])),
    Objective("loss", "minimize"),
)
CHOICE_CENTER = {"adam": 1.0, "sgd": -1.0, "rmsprop": 0.0}
CHOICE_OFFSET = {"adam": 0.0, "sgd": 0.5, "rmsprop": 1.0}


def _choice_loss(trial, choices=("adam", "sgd", "rmsprop"), low=-2.0, high=2.0):
    x = trial.suggest_float("x", low, high)
    choice = trial.suggest_categorical("optimizer", list(choices))
    return (x - CHOICE_CENTER[choice]) ** 2 + CHOICE_OFFSET[choice]


def test_categorical_parameters_of_the_space_are_modelled():
    study = optuna.create_study(sampler=PretrainedGPSampler(None, space=CHOICE_SPACE, seed=0))
    study.optimize(_choice_loss, n_trials=16)
    assert {t.params["optimizer"] for t in study.trials} == {"adam", "sgd", "rmsprop"}  # the initial design
    # The best configuration is adam at x = 1 (loss 0); the GP finds it among the unordered choices.
    assert study.best_params["optimizer"] == "adam" and study.best_value < 0.01
    # Each claim is the trial's one-hot point.
    for trial in study.trials:
        claim = trial.system_attrs["metabo:claim"]
        np.testing.assert_allclose(claim[1:], np.eye(3)[["adam", "sgd", "rmsprop"].index(trial.params["optimizer"])])


def test_fewer_choices_than_the_space_search_only_those():
    study = optuna.create_study(sampler=PretrainedGPSampler(None, space=CHOICE_SPACE, seed=0))
    study.optimize(lambda t: _choice_loss(t, choices=("sgd", "rmsprop")), n_trials=8)
    assert {t.params["optimizer"] for t in study.trials} == {"sgd", "rmsprop"}


@pytest.mark.parametrize(
    "objective, message",
    [
        (lambda t: t.suggest_float("x", -2, 2) + t.suggest_float("optimizer", 0, 1), "with suggest_float / suggest_int but the prior's parameter 'optimizer' is categorical"),
        (lambda t: t.suggest_categorical("x", [0, 1]) + len(t.suggest_categorical("optimizer", ["adam"])), "'x': the study samples it with suggest_categorical but the prior's parameter 'x' is real"),
        (lambda t: t.suggest_float("x", -2, 2) + len(t.suggest_categorical("optimizer", ["adam", "lion"])), r"choice\(s\) \['lion'\] are not among the prior's \['adam', 'sgd', 'rmsprop'\]"),
    ],
)
def test_categorical_mismatches_are_one_line_errors(objective, message):
    study = optuna.create_study(sampler=PretrainedGPSampler(None, space=CHOICE_SPACE, seed=0))
    with pytest.raises(UnsupportedParameterError, match=message):
        study.optimize(objective, n_trials=1)


def test_direction_and_objectives_must_match_the_prior(prior):
    study = optuna.create_study(direction="maximize", sampler=PretrainedGPSampler(prior, seed=0))
    with pytest.raises(IncompatibleStudyError, match="prior was trained to minimize 'loss'"):
        study.optimize(_objective(_task(0)), n_trials=1)
    multi = optuna.create_study(directions=["minimize", "minimize"], sampler=PretrainedGPSampler(prior, seed=0))
    with pytest.raises(IncompatibleStudyError, match="the study has 2 objective"):
        multi.optimize(lambda t: (t.suggest_float("lr", 1e-4, 1.0, log=True), 0.0), n_trials=1)


def test_unknown_parameters_go_to_the_independent_sampler(prior):
    def objective(trial):
        extra = trial.suggest_float("momentum", 0.5, 0.99)
        return _objective(_task(3))(trial) + 0.0 * extra

    study = optuna.create_study(direction="minimize", sampler=PretrainedGPSampler(prior, seed=0))
    with pytest.warns(UserWarning, match="'momentum' is not in the prior's space"):
        study.optimize(objective, n_trials=3)
    assert all(0.5 <= t.params["momentum"] <= 0.99 for t in study.trials)


def test_history_scores_failures_and_pending_trials(prior):
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=0))
    trials = []
    for _ in range(4):
        trial = study.ask()
        trial.suggest_float("lr", 1e-4, 1.0, log=True)
        trial.suggest_int("units", 8, 256, log=True)
        trial.suggest_float("dropout", 0.0, 0.5)
        trials.append(trial)
    # Parameters were sampled at random; the expected values are read back from the trials.
    study.tell(trials[0], 2.0)
    study.tell(trials[1], 1.0)
    study.tell(trials[2], state=optuna.trial.TrialState.FAIL)
    # trials[3] stays RUNNING
    sampler = PretrainedGPSampler(prior, seed=0)
    x, scores, pending = sampler._history(study, current=-1)
    params = [study.trials[i].params for i in range(4)]
    unit = SPACE.to_unit(np.asarray([[p[n] for n in SPACE.names] for p in params]))
    np.testing.assert_allclose(x, unit[[0, 1, 2]])
    # scores = -loss; the failure is NaN here (the BO core imputes it)
    np.testing.assert_allclose(scores, [-2.0, -1.0, np.nan])
    np.testing.assert_allclose(pending, unit[[3]])  # the running trial is pending


def test_constructor_checks(prior):
    with pytest.raises(TypeError, match="model, params and space"):
        PretrainedGPSampler(object())
    with pytest.raises(ValueError, match="not parameters of the prior's space"):
        PretrainedGPSampler(prior, mapping={"a": "b"})
    with pytest.raises(ValueError, match="candidates"):
        PretrainedGPSampler(prior, candidates=np.zeros((2, 7)))


@pytest.mark.slow
def test_really_pretrained_prior_beats_random_search():
    from metabo.bench.synthetic import synthetic_log, true_gp
    from metabo.pretrain import pretrain

    prior = pretrain(synthetic_log(seed=0, num_tasks=8, num_points=40, dim=2, matched=False), steps=300, seed=0)
    model, params = true_gp(2)
    hyper = model.hyper(params)

    def task(seed):
        # A new task from the GP the training tasks came from (mean 1, Matern 5/2, lengthscale 0.25).
        rng = np.random.default_rng(seed)
        anchors = rng.random((200, 2))
        kernel = lambda a, b: matern52(a, b, np.asarray(hyper.lengthscale), float(hyper.signal))  # noqa: E731
        gram = kernel(anchors, anchors) + 1e-8 * np.eye(200)
        weights = np.linalg.solve(gram, np.linalg.cholesky(gram) @ rng.standard_normal(200))

        def objective(trial):
            x = np.asarray([[trial.suggest_float("x0", 0.0, 1.0), trial.suggest_float("x1", 0.0, 1.0)]])
            return float(1.0 + kernel(x, anchors)[0] @ weights)

        return objective

    ours, random = [], []
    for seed in range(5):
        study = optuna.create_study(direction="maximize", sampler=PretrainedGPSampler(prior, seed=seed))
        study.optimize(task(50 + seed), n_trials=15)
        baseline = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed))
        baseline.optimize(task(50 + seed), n_trials=15)
        ours.append(study.best_value)
        random.append(baseline.best_value)
    assert np.mean(ours) > np.mean(random)


def test_each_trial_records_the_prior_prediction_for_it(prior):
    """The user attributes optuna-dashboard shows: the posterior at the suggested point given the
    trials told before it, checked against an independent numpy GP (the prior has no output
    warp, so score = -loss exactly)."""
    study = optuna.create_study(direction="minimize", sampler=PretrainedGPSampler(prior, seed=0))
    study.optimize(_objective(_task(5)), n_trials=6)
    hyper = prior.model.hyper(prior.params)
    noise = float(hyper.noise)
    for k, trial in enumerate(study.trials):
        attrs = trial.user_attrs
        assert attrs["metabo:model"] == "prior"
        y = -np.asarray([t.value for t in study.trials[:k]])
        xq = SPACE.to_unit(np.asarray([[trial.params[n] for n in SPACE.names]]))
        mean_q = xq @ WEIGHTS
        if k:
            x = SPACE.to_unit(np.asarray([[t.params[n] for n in SPACE.names] for t in study.trials[:k]]))
            gram = _matern52(x, x) + noise * np.eye(k)
            cross = _matern52(xq, x)
            mean_q = mean_q + cross @ np.linalg.solve(gram, y - x @ WEIGHTS)
            var_q = 0.25 - np.sum(cross * np.linalg.solve(gram, cross.T).T, axis=1)
        else:
            var_q = np.array([0.25])
        assert attrs["metabo:predicted_value"] == pytest.approx(-mean_q[0], rel=1e-6, abs=1e-9)
        low, high = attrs["metabo:predicted_interval"]
        std_q = np.sqrt(var_q[0])
        assert low == pytest.approx(-mean_q[0] - std_q, rel=1e-6, abs=1e-9)
        assert high == pytest.approx(-mean_q[0] + std_q, rel=1e-6, abs=1e-9)


def test_hedge_nominations_are_kept_in_the_trials(prior):
    # The sampler keeps no state between suggestions: GP-Hedge's nominations travel in each
    # trial's system attributes, so later suggestions learn from them (the gains move).
    from metabo.integrations.optuna import HEDGE_KEY

    sampler = PretrainedGPSampler(prior, seed=0, acquisition="hedge")
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.optimize(_objective(_task(3)), n_trials=5)
    records = [t.system_attrs[HEDGE_KEY] for t in study.trials]
    assert all(r["members"] == ["ucb", "pi"] and len(r["nominees"]) == 2 for r in records)
    assert records[0]["gains"] == [0.0, 0.0] and records[0]["probabilities"] == [0.5, 0.5]
    assert any(abs(r["gains"][0]) > 1e-6 for r in records[1:])
    assert abs(sum(records[-1]["probabilities"]) - 1.0) < 1e-12
    _, _, _, nominees = sampler._history(study, current=-1, with_nominees=True)
    assert nominees == records
